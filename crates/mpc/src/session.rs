//! One party's protocol session: both directions of random correlated OT, and message helpers.

use ot::{CotConfig, CotPair, Role};
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
    cot: CotPair,
    usage: OtUsage,
    send_pool: Pool,
    recv_pool: Pool,
    refill: usize,
}

/// COTs fetched from the OT layer but not yet used, and the stream index (tweak) of the next one.
#[derive(Default)]
struct Pool {
    blocks: Vec<ot::Block>,
    pos: usize,
    next_index: u64,
}

impl Pool {
    fn available(&self) -> usize {
        self.blocks.len() - self.pos
    }

    fn push(&mut self, more: Vec<ot::Block>) {
        if self.pos > 0 {
            self.blocks.drain(..self.pos);
            self.pos = 0;
        }
        self.blocks.extend(more);
    }

    /// The next `n` COTs and the stream index of the first.
    fn take(&mut self, n: usize) -> (Vec<ot::Block>, u64) {
        let out = self.blocks[self.pos..self.pos + n].to_vec();
        for b in &mut self.blocks[self.pos..self.pos + n] {
            *b = ot::Block::ZERO;
        }
        self.pos += n;
        let idx = self.next_index;
        self.next_index += n as u64;
        (out, idx)
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        for b in &mut self.blocks {
            *b = ot::Block::ZERO;
        }
    }
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
        let role = match party {
            Party::P0 => Role::Leader,
            Party::P1 => Role::Follower,
        };
        let cot = CotPair::setup(ch, rng, role, cfg.cot)?;
        let mut sess = Session {
            party,
            cot,
            usage: OtUsage::default(),
            send_pool: Pool::default(),
            recv_pool: Pool::default(),
            refill: 1,
        };
        // Bootstrap both COT sources now (for silent OT: the IKNP reserve and a first
        // iteration), so that one-time costs are part of setup, not of the first protocol.
        drop(sess.cots(ch, 1, 1)?);
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
        self.fill(ch, n_send, n_recv)?;
        self.usage.cots_sent += n_send as u64;
        self.usage.cots_received += n_recv as u64;
        let (q, si) = self.send_pool.take(n_send);
        let (t, ri) = self.recv_pool.take(n_recv);
        Ok((
            SendCots::new(self.cot.sender.delta(), q, si as u128 | my_dir),
            RecvCots::new(t, ri as u128 | peer_dir),
        ))
    }

    /// Makes sure at least `n_send` COTs with this party as sender and `n_recv` with it as
    /// receiver are pooled, fetching from the OT layer now (the peer calls it with the mirror
    /// image). Lets an application generate COTs ahead, e.g. while the other party computes.
    pub fn prefetch<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        n_send: usize,
        n_recv: usize,
    ) -> Result<()> {
        self.fill(ch, n_send, n_recv)
    }

    fn fill<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        n_send: usize,
        n_recv: usize,
    ) -> Result<()> {
        // Refill both pools by the same deterministic rule on both sides, so the peer's extend
        // calls mirror ours one-to-one.
        let need_s = n_send.saturating_sub(self.send_pool.available());
        let need_r = n_recv.saturating_sub(self.recv_pool.available());
        let get_s = if need_s > 0 {
            need_s.max(self.refill)
        } else {
            0
        };
        let get_r = if need_r > 0 {
            need_r.max(self.refill)
        } else {
            0
        };
        let before = ch.stats();
        let t0 = std::time::Instant::now();
        match self.party {
            Party::P0 => {
                if get_s > 0 {
                    let q = self.cot.sender.extend(ch, get_s)?;
                    self.send_pool.push(q);
                }
                if get_r > 0 {
                    let t = self.cot.receiver.extend(ch, get_r)?;
                    self.recv_pool.push(t);
                }
            }
            Party::P1 => {
                if get_r > 0 {
                    let t = self.cot.receiver.extend(ch, get_r)?;
                    self.recv_pool.push(t);
                }
                if get_s > 0 {
                    let q = self.cot.sender.extend(ch, get_s)?;
                    self.send_pool.push(q);
                }
            }
        }
        ch.flush()?;
        let d = ch.stats().since(&before);
        self.usage.bytes_sent += d.bytes_sent;
        self.usage.bytes_received += d.bytes_received;
        self.usage.time += t0.elapsed();
        Ok(())
    }

    /// Sends `mine` and receives the peer's message of exactly `peer_bits` bits. P0 sends first
    /// and P1 answers, so large messages never block both sides in `send` at once.
    pub(crate) fn exchange<C: Channel + ?Sized>(
        &self,
        ch: &mut C,
        mine: Vec<u8>,
        peer_bits: u64,
        what: &'static str,
    ) -> Result<Vec<u8>> {
        match self.party {
            Party::P0 => {
                ch.send(&mine)?;
                ch.flush()?;
                recv_bits(ch, peer_bits, what)
            }
            Party::P1 => {
                let got = recv_bits(ch, peer_bits, what)?;
                ch.send(&mine)?;
                ch.flush()?;
                Ok(got)
            }
        }
    }

    /// Sends one message and flushes.
    pub(crate) fn send<C: Channel + ?Sized>(&self, ch: &mut C, msg: Vec<u8>) -> Result<()> {
        ch.send(&msg)?;
        ch.flush()?;
        Ok(())
    }
}
