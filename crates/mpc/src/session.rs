//! One party's protocol session: both directions of random correlated OT, and message helpers.

use ot::{CotConfig, CotPair};
use rand_core::{CryptoRng, RngCore};
use transport::Channel;

use crate::bits::recv_bits;
use crate::cots::{RecvCots, SendCots, DIR_P1};
use crate::Result;

/// Which of the two parties this side plays. Both run the same methods with their own shares;
/// the protocols are asymmetric (P0 is the OT sender in comparisons), so the two must differ.
/// Convention: the server is P0 and the client P1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Party {
    P0,
    P1,
}

impl Party {
    /// The other party.
    pub fn peer(self) -> Party {
        match self {
            Party::P0 => Party::P1,
            Party::P1 => Party::P0,
        }
    }
}

/// A two-party session: the correlated-OT state of one party.
///
/// Built once by [`Session::setup`] (base OTs in both directions, run over the channel); every
/// protocol is then a method taking `&mut self` and the channel, so no protocol can run before
/// setup. Both parties must call the same methods with equal public arguments (ring, sizes,
/// shift) in the same order over the same channel.
pub struct Session {
    party: Party,
    /// The party that chooses in the comparisons' leaf OTs (`set_comparison_chooser`).
    chooser: Party,
    /// The widest leaf of the comparisons' trees (`set_comparison_leaves`).
    leaves: u32,
    cot: CotPair,
    usage: OtUsage,
    refill: usize,
}

/// Options of a session; both parties must use equal values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionConfig {
    /// The correlated-OT backend (silent OT by default).
    pub cot: CotConfig,
    /// Least number of COTs fetched from the OT layer per refill and direction
    /// ([`DEFAULT_REFILL`]). Smaller values save memory, larger ones amortize silent OT better.
    pub refill: usize,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            cot: CotConfig::default(),
            refill: DEFAULT_REFILL,
        }
    }
}

/// COTs fetched from the OT layer at least at a time, per direction: large enough that silent OT
/// runs its large (cheapest per COT) parameter set.
pub const DEFAULT_REFILL: usize = 1 << 23;

/// What this party's random-COT source consumed since setup (both directions), for reports that
/// separate the OT layer's traffic from the protocols' own messages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OtUsage {
    /// COTs with this party as sender.
    pub cots_sent: u64,
    /// COTs with this party as receiver.
    pub cots_received: u64,
    /// Payload bytes this party sent inside COT extension.
    pub bytes_sent: u64,
    /// Payload bytes this party received inside COT extension.
    pub bytes_received: u64,
    /// Wall time spent inside COT extension (generation and its messages).
    pub time: std::time::Duration,
}

/// How [`Session::generate`] fills the COT buffers.
#[derive(Clone, Copy)]
enum Fill {
    /// Keeping silent OT's reserve for further iterations.
    More,
    /// The session's last COTs: no reserve kept.
    Last,
    /// The last COTs, all but (sender, receiver) lead of them computing in the background.
    Background((usize, usize)),
}

impl Session {
    /// Sets up both COT directions with the default (fastest available) OT backend.
    pub fn setup<C, R>(ch: &mut C, party: Party, rng: &mut R) -> Result<Session>
    where
        C: Channel + ?Sized,
        R: RngCore + CryptoRng,
    {
        Self::setup_with(ch, party, rng, SessionConfig::default())
    }

    /// As [`Session::setup`] with an explicit configuration (equal on both sides).
    pub fn setup_with<C, R>(
        ch: &mut C,
        party: Party,
        rng: &mut R,
        cfg: SessionConfig,
    ) -> Result<Session>
    where
        C: Channel + ?Sized,
        R: RngCore + CryptoRng,
    {
        let cot = CotPair::setup(ch, rng, cfg.cot)?;
        let mut sess = Session {
            party,
            chooser: Party::P1,
            leaves: crate::millionaire::LEAF_BITS_MAX,
            cot,
            usage: OtUsage::default(),
            refill: 1,
        };
        // Bootstrap both COT sources now (silent OT: the IKNP reserve of its first iteration,
        // both directions in one flight each way), so that the one-time cost is part of setup,
        // not of the first protocol.
        sess.top_up(ch, (1, 1))?;
        sess.usage = OtUsage::default();
        sess.refill = cfg.refill.max(1);
        Ok(sess)
    }

    /// COTs and COT-extension traffic used so far by this party (excluding setup).
    pub fn ot_usage(&self) -> OtUsage {
        self.usage
    }

    /// This side's party.
    pub fn party(&self) -> Party {
        self.party
    }

    /// Makes `p` the party that chooses in the leaf OTs of the comparisons that follow, and so
    /// sends their first flight (P1 by default; both parties must agree). A party that knows its
    /// inputs before the other — the server after an HE response, whose output share it picked —
    /// should choose: its leaf choices then leave with its previous message, one hop earlier.
    /// The result is the same either way.
    pub fn set_comparison_chooser(&mut self, p: Party) {
        self.chooser = p;
    }

    /// Lets the comparisons' trees use leaves of up to `bits` bits (1-of-2^bits OTs, 3 ≤ bits ≤
    /// 6; 3, the default, is the fewest bits) where wider leaves make the tree shallower: one
    /// flight less per level removed, for larger leaf tables (`cost::*_leaves`).
    pub fn set_comparison_leaves(&mut self, bits: u32) {
        self.leaves = bits.clamp(
            crate::millionaire::LEAF_BITS_MAX,
            crate::millionaire::FLAT_LEAF_MAX,
        );
    }

    /// The widest comparison leaf (`set_comparison_leaves`).
    pub(crate) fn comparison_leaves(&self) -> u32 {
        self.leaves
    }

    /// This party's role in the millionaire protocol: its own, or the peer's when the chooser is
    /// P0 (the protocol's P1 always chooses).
    pub(crate) fn compare_role(&self) -> Party {
        match self.chooser {
            Party::P1 => self.party,
            Party::P0 => self.party.peer(),
        }
    }

    /// `n_send` fresh COTs with this party as sender and `n_recv` with it as receiver. The peer
    /// must ask for the mirror image (its `n_recv` = our `n_send`).
    pub(crate) fn cots<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        n_send: usize,
        n_recv: usize,
    ) -> Result<(SendCots, RecvCots)> {
        let (my_dir, peer_dir) = match self.party {
            Party::P0 => (0, DIR_P1),
            Party::P1 => (DIR_P1, 0),
        };
        let (need_s, need_r) = (
            n_send.saturating_sub(self.cot.sender.buffered()),
            n_recv.saturating_sub(self.cot.receiver.buffered()),
        );
        // Refill by the same deterministic rule on both sides (the buffers mirror each other).
        let more = |need: usize| if need > 0 { need.max(self.refill) } else { 0 };
        let (more_s, more_r) = (more(need_s), more(need_r));
        self.fill(ch, more_s, more_r, Fill::More)?;
        self.usage.cots_sent += n_send as u64;
        self.usage.cots_received += n_recv as u64;
        let si = self.cot.sender.consumed();
        let ri = self.cot.receiver.consumed();
        // Served from the buffers: no traffic.
        let q = self.cot.sender.extend(ch, n_send)?;
        let t = self.cot.receiver.extend(ch, n_recv)?;
        Ok((
            SendCots::new(self.cot.sender.delta(), q, si as u128 | my_dir),
            RecvCots::new(t, ri as u128 | peer_dir),
        ))
    }

    /// Makes sure at least `n_send` COTs with this party as sender and `n_recv` with it as
    /// receiver are buffered, generating exactly the shortfall now (the peer calls it with the
    /// mirror image). With the counts a computation will use (e.g. from [`crate::cost`]), all
    /// COT generation happens here and none is wasted.
    pub fn prefetch<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        n_send: usize,
        n_recv: usize,
    ) -> Result<()> {
        let more_s = n_send.saturating_sub(self.cot.sender.buffered());
        let more_r = n_recv.saturating_sub(self.cot.receiver.buffered());
        self.fill(ch, more_s, more_r, Fill::More)
    }

    /// As [`Session::prefetch`] when these are the last COTs the session will use: silent OT
    /// then keeps no reserve for further iterations (about 0.6 M fewer COTs generated per
    /// direction with its large set). Later requests still work; they rebuild the reserve.
    pub fn prefetch_last<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        n_send: usize,
        n_recv: usize,
    ) -> Result<()> {
        let more_s = n_send.saturating_sub(self.cot.sender.buffered());
        let more_r = n_recv.saturating_sub(self.cot.receiver.buffered());
        self.fill(ch, more_s, more_r, Fill::Last)
    }

    /// As [`Session::prefetch_last`], with only `lead_send` and `lead_recv` of the COTs made
    /// ready now: silent OT's last iteration exchanges its messages now and computes on a thread
    /// of its own while the session goes on with the lead; the first call the ready COTs cannot
    /// cover waits for it. The peer calls it with the mirror image.
    pub fn prefetch_background<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        (lead_send, lead_recv): (usize, usize),
        (n_send, n_recv): (usize, usize),
    ) -> Result<()> {
        self.generate(
            ch,
            (n_send, n_recv),
            Fill::Background((lead_send.min(n_send), lead_recv.min(n_recv))),
        )
    }

    /// COTs buffered (this party as sender, as receiver): generated and not yet used.
    pub fn buffered(&self) -> (usize, usize) {
        (self.cot.sender.buffered(), self.cot.receiver.buffered())
    }

    /// What the OT layer did since setup began (this party as sender, as receiver): LPN
    /// iterations, COTs made and served, and where the time went.
    pub fn ot_generation(&self) -> (ot::SilentStats, ot::SilentStats) {
        (self.cot.sender.stats(), self.cot.receiver.stats())
    }

    /// Generates `more_s` COTs beyond those buffered with this party as sender and `more_r` as
    /// receiver, in an order fixed by the party so the peer's calls mirror ours.
    fn fill<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        more_s: usize,
        more_r: usize,
        mode: Fill,
    ) -> Result<()> {
        if more_s == 0 && more_r == 0 {
            return Ok(());
        }
        let to_s = self.cot.sender.buffered() + more_s;
        let to_r = self.cot.receiver.buffered() + more_r;
        self.generate(ch, (to_s, to_r), mode)
    }

    /// Makes `to.0` COTs with this party as sender and `to.1` as receiver buffered (or, in
    /// [`Fill::Background`], buffered or computing), both directions in an order fixed by the
    /// party so the peer's calls mirror ours.
    fn generate<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        to: (usize, usize),
        mode: Fill,
    ) -> Result<()> {
        let before = ch.stats();
        let t0 = std::time::Instant::now();
        let sender = |s: &mut ot::CotSender, ch: &mut Unflushed<'_, C>| match mode {
            Fill::More => s.fill(ch, to.0),
            Fill::Last => s.fill_last(ch, to.0),
            Fill::Background(lead) => s.fill_background(ch, lead.0, to.0),
        };
        let receiver = |r: &mut ot::CotReceiver, ch: &mut C| match mode {
            Fill::More => r.fill(ch, to.1),
            Fill::Last => r.fill_last(ch, to.1),
            Fill::Background(lead) => r.fill_background(ch, lead.1, to.1),
        };
        // Both directions at once, in one flight each way per stage: first the IKNP top-ups,
        // whose messages go receiver → sender (each party queues its receiver's, then reads its
        // sender's), then the silent-OT iterations, whose messages go sender → receiver (each
        // party queues its sender's, then reads its receiver's), so the two parties' sender
        // work runs at the same time. The queued messages go out while the party reads
        // (`transport::Channel::recv`); flushing them before, while the peer is not reading
        // either, could block on full socket buffers.
        self.top_up(ch, to)?;
        sender(&mut self.cot.sender, &mut Unflushed(&mut *ch))?;
        receiver(&mut self.cot.receiver, ch)?;
        // Both directions' foreground iterations done: only now the background work starts.
        self.cot.sender.start_background();
        self.cot.receiver.start_background();
        ch.flush()?;
        let d = ch.stats().since(&before);
        self.usage.bytes_sent += d.bytes_sent;
        self.usage.bytes_received += d.bytes_received;
        self.usage.time += t0.elapsed();
        Ok(())
    }

    /// The IKNP steps of fills to `to` (as sender, as receiver), both directions in one flight
    /// each way: the receiver's column message queued, then the sender's read.
    fn top_up<C: Channel + ?Sized>(&mut self, ch: &mut C, to: (usize, usize)) -> Result<()> {
        self.cot.receiver.top_up(&mut Unflushed(&mut *ch), to.1)?;
        self.cot.sender.top_up(ch, to.0)?;
        Ok(())
    }

    /// Sends `mine` and receives the peer's message of exactly `peer_bits` bits, both parties
    /// sending first: one one-way latency instead of two. Safe for messages of any size because
    /// every channel's `recv` pushes its queued messages while it waits (`transport::Channel`).
    pub(crate) fn exchange<C: Channel + ?Sized>(
        &self,
        ch: &mut C,
        mine: Vec<u8>,
        peer_bits: u64,
        what: &'static str,
    ) -> Result<Vec<u8>> {
        self.exchange_around(ch, mine, peer_bits, what, &mut |_| Ok(()))
    }

    /// [`Session::exchange`] running `between` after this party's message is queued and before
    /// the peer's is read: another step's messages ride in the same flight.
    pub(crate) fn exchange_around<C: Channel + ?Sized>(
        &self,
        ch: &mut C,
        mine: Vec<u8>,
        peer_bits: u64,
        what: &'static str,
        between: &mut dyn FnMut(&mut C) -> Result<()>,
    ) -> Result<Vec<u8>> {
        ch.send(&mine)?;
        between(ch)?;
        recv_bits(ch, peer_bits, what)
    }

    /// Sends one message and flushes.
    pub(crate) fn send<C: Channel + ?Sized>(&self, ch: &mut C, msg: Vec<u8>) -> Result<()> {
        ch.send(&msg)?;
        ch.flush()?;
        Ok(())
    }
}

/// A channel whose `flush` leaves the queue for the next `recv`, which writes it while it reads:
/// for a stage in which both parties send before they receive.
struct Unflushed<'a, C: ?Sized>(&'a mut C);

impl<C: Channel + ?Sized> Channel for Unflushed<'_, C> {
    fn send(&mut self, msg: &[u8]) -> transport::Result<()> {
        self.0.send(msg)
    }
    fn recv(&mut self) -> transport::Result<Vec<u8>> {
        self.0.recv()
    }
    fn flush(&mut self) -> transport::Result<()> {
        Ok(())
    }
    fn stats(&self) -> transport::Stats {
        self.0.stats()
    }
}
