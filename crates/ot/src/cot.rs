//! The session-level source of random correlated OT: [`CotSender`] and [`CotReceiver`].

use rand_core::{CryptoRng, RngCore};
use transport::Channel;

use crate::ferret::{FerretReceiver, FerretSender, Side, SilentStats};
use crate::iknp::{IknpReceiver, IknpSender};
use crate::{Block, OtError, Result};

/// Most COTs one `extend` call may return (2^26 blocks = 1 GiB per party).
pub const MAX_EXTEND: usize = 1 << 26;

/// Which extension protocol produces the COTs. Both parties must pick the same.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum CotBackend {
    /// IKNP: 128 bits of traffic per COT, one flight per `extend` call. For comparison and
    /// bootstrapping.
    Iknp,
    /// Ferret-style silent OT (regular-noise LPN with a local linear code + GGM-tree single-point
    /// COT), bootstrapped from IKNP: about 0.45 bits of traffic per COT with the large parameter set
    /// (used once a call is 4 Mi COTs short or the session has been served 4 Mi), 5.1 with the
    /// small one. Keeps a buffer and refills it lazily, one flight sender → receiver per refill;
    /// calls served from the buffer cost nothing.
    #[default]
    Silent,
    /// Ferret with the small parameter set only (`LpnParams::FERRET_SMALL`): about 5.1 bits of
    /// traffic per COT, but 1.3–1.7× less CPU time per COT than the large set, whose LPN secret
    /// (9.4 MB) does not fit in the L2 cache. For fast networks where compute dominates.
    SilentSmall,
}

/// Session options of a COT source. Both parties must use equal configurations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct CotConfig {
    /// The extension protocol.
    pub backend: CotBackend,
}

/// The extension step of an IKNP endpoint (sender or receiver).
trait IknpSide {
    fn extend<C: Channel + ?Sized>(&mut self, ch: &mut C, n: usize) -> Result<Vec<Block>>;
}

impl IknpSide for IknpSender {
    fn extend<C: Channel + ?Sized>(&mut self, ch: &mut C, n: usize) -> Result<Vec<Block>> {
        IknpSender::extend(self, ch, n)
    }
}

impl IknpSide for IknpReceiver {
    fn extend<C: Channel + ?Sized>(&mut self, ch: &mut C, n: usize) -> Result<Vec<Block>> {
        IknpReceiver::extend(self, ch, n)
    }
}

/// One side's COT engine: IKNP with COTs extended ahead by `fill` (served first), or silent OT.
enum Engine<I, S> {
    Iknp(Box<I>, Vec<Block>, SilentStats),
    Silent(Box<S>),
}

/// The session bookkeeping shared by [`CotSender`] and [`CotReceiver`]: request limits, the
/// COT index, and dispatch to the engine. Sender and receiver calls are mirror images, so one
/// implementation serves both.
struct Endpoint<I, S> {
    engine: Engine<I, S>,
    consumed: u64,
}

impl<I: IknpSide, S: Side> Endpoint<I, S> {
    fn new(engine: Engine<I, S>) -> Self {
        Endpoint {
            engine,
            consumed: 0,
        }
    }

    fn buffered(&self) -> usize {
        match &self.engine {
            Engine::Iknp(_, buf, _) => buf.len(),
            Engine::Silent(s) => s.buffered(),
        }
    }

    fn extend<C: Channel + ?Sized>(&mut self, ch: &mut C, n: usize) -> Result<Vec<Block>> {
        check_request(n)?;
        if n == 0 {
            return Ok(Vec::new());
        }
        let out = match &mut self.engine {
            Engine::Iknp(s, buf, st) => iknp_take(buf, st, n, |m| s.extend(ch, m))?,
            Engine::Silent(s) => s.extend(ch, n)?,
        };
        self.consumed += n as u64;
        Ok(out)
    }

    fn fill<C: Channel + ?Sized>(&mut self, ch: &mut C, n: usize, last: bool) -> Result<()> {
        check_request(n)?;
        match &mut self.engine {
            Engine::Iknp(s, buf, st) => iknp_fill(buf, st, n, |m| s.extend(ch, m)),
            Engine::Silent(s) if last => s.fill_last(ch, n),
            Engine::Silent(s) => s.fill(ch, n),
        }
    }

    /// `n` COTs buffered or computing, `lead` of them buffered (IKNP: all `n` buffered).
    fn fill_background<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        lead: usize,
        n: usize,
    ) -> Result<()> {
        check_request(n)?;
        match &mut self.engine {
            Engine::Iknp(s, buf, st) => iknp_fill(buf, st, n, |m| s.extend(ch, m)),
            Engine::Silent(s) => s.fill_background(ch, lead, n),
        }
    }

    /// The IKNP step of a fill of `n` COTs on its own (IKNP: the whole fill).
    fn top_up<C: Channel + ?Sized>(&mut self, ch: &mut C, n: usize) -> Result<()> {
        check_request(n)?;
        match &mut self.engine {
            Engine::Iknp(s, buf, st) => iknp_fill(buf, st, n, |m| s.extend(ch, m)),
            Engine::Silent(s) => s.top_up(ch, n),
        }
    }

    fn start_background(&mut self) {
        if let Engine::Silent(s) = &mut self.engine {
            s.start_background();
        }
    }

    fn stats(&self) -> SilentStats {
        match &self.engine {
            Engine::Iknp(_, _, st) => *st,
            Engine::Silent(s) => s.stats(),
        }
    }
}

fn check_request(n: usize) -> Result<()> {
    if n > MAX_EXTEND {
        return Err(OtError::TooMany {
            requested: n,
            max: MAX_EXTEND,
        });
    }
    Ok(())
}

/// The sender of random correlated OT (holder of the global Δ).
///
/// After [`CotSender::setup`] (128 base OTs, run once per session and direction), every
/// [`CotSender::extend`]`(ch, n)` returns `n` fresh blocks `q_i` such that the peer's
/// [`CotReceiver::extend`]`(ch, n)` returns `t_i = q_i ⊕ b_i·Δ` for random choice bits `b_i` that
/// only the receiver knows. Invariants: `lsb(Δ) = 1`, `lsb(q_i) = 0`, hence `b_i = lsb(t_i)`
/// (point-and-permute). Calls must be paired one-to-one with the receiver's, with equal `n`.
///
/// The COT index `consumed()` before a call, plus `i`, is the session-unique tweak to use with
/// [`crate::hash::tccr`] when turning COT `i` into a random OT.
pub struct CotSender(Endpoint<IknpSender, FerretSender>);

/// The receiver of random correlated OT: see [`CotSender`].
pub struct CotReceiver(Endpoint<IknpReceiver, FerretReceiver>);

impl CotSender {
    /// Sets up a sender with the default configuration (silent OT) over `ch`, drawing all secrets
    /// from `rng`. The peer runs [`CotReceiver::setup`] at the same time.
    pub fn setup<C, R>(ch: &mut C, rng: &mut R) -> Result<CotSender>
    where
        C: Channel + ?Sized,
        R: RngCore + CryptoRng,
    {
        Self::setup_with(ch, rng, CotConfig::default())
    }

    /// As [`CotSender::setup`] with an explicit configuration.
    pub fn setup_with<C, R>(ch: &mut C, rng: &mut R, cfg: CotConfig) -> Result<CotSender>
    where
        C: Channel + ?Sized,
        R: RngCore + CryptoRng,
    {
        let iknp = IknpSender::setup(ch, rng)?;
        let engine = match cfg.backend {
            CotBackend::Iknp => Engine::Iknp(Box::new(iknp), Vec::new(), SilentStats::default()),
            CotBackend::Silent | CotBackend::SilentSmall => {
                let mut seed = [0u8; 32];
                rng.fill_bytes(&mut seed);
                Engine::Silent(Box::new(if cfg.backend == CotBackend::SilentSmall {
                    FerretSender::new_small_only(iknp, seed)
                } else {
                    FerretSender::new(iknp, seed)
                }))
            }
        };
        Ok(CotSender(Endpoint::new(engine)))
    }

    /// The global correlation Δ (secret; `lsb(Δ) = 1`).
    pub fn delta(&self) -> Block {
        match &self.0.engine {
            Engine::Iknp(s, ..) => s.delta(),
            Engine::Silent(s) => s.delta(),
        }
    }

    /// Number of COTs handed out so far in this session (the next COT's tweak).
    pub fn consumed(&self) -> u64 {
        self.0.consumed
    }

    /// COTs the next `extend` can serve without any traffic (silent backend's buffer; 0 for IKNP).
    /// Equal on both sides.
    pub fn buffered(&self) -> usize {
        self.0.buffered()
    }

    /// `n` fresh random COTs `q_i` (with `lsb(q_i) = 0`). Pairs with the receiver's
    /// `extend(ch, n)`.
    pub fn extend<C: Channel + ?Sized>(&mut self, ch: &mut C, n: usize) -> Result<Vec<Block>> {
        self.0.extend(ch, n)
    }

    /// Generates COTs ahead so that at least `n` are buffered (the peer makes the mirror call);
    /// later `extend` calls up to that many send nothing. With the silent backend the LPN
    /// iterations are sized to the shortfall, so asking for exactly what a session will use
    /// wastes no generation.
    pub fn fill<C: Channel + ?Sized>(&mut self, ch: &mut C, n: usize) -> Result<()> {
        self.0.fill(ch, n, false)
    }

    /// As [`CotSender::fill`] for the last COTs a session needs: silent OT keeps no reserve for
    /// further iterations (a later request rebuilds it from IKNP). Pairs with the receiver's
    /// `fill_last`.
    pub fn fill_last<C: Channel + ?Sized>(&mut self, ch: &mut C, n: usize) -> Result<()> {
        self.0.fill(ch, n, true)
    }

    /// As [`CotSender::fill_last`], with only `lead` of the `n` COTs generated now: the last
    /// silent-OT iteration (of the large set) exchanges its messages now and queues its local
    /// work, which [`CotSender::start_background`] runs on a thread of its own, so the caller can
    /// use the first `lead` COTs meanwhile; the first request beyond the buffered ones waits for
    /// it. Pairs with the receiver's `fill_background`.
    pub fn fill_background<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        lead: usize,
        n: usize,
    ) -> Result<()> {
        self.0.fill_background(ch, lead, n)
    }

    /// The part of a later `fill`, `fill_last` or `fill_background` of `n` COTs that reads from
    /// the receiver (IKNP extending the silent-OT reserve, or the whole fill under IKNP), run
    /// first: the fill itself then only sends. With the receiver's `top_up` queued before it,
    /// a party can top up both directions in one flight each way and then queue its sender's
    /// fill before reading its receiver's. Pairs with the receiver's `top_up`.
    pub fn top_up<C: Channel + ?Sized>(&mut self, ch: &mut C, n: usize) -> Result<()> {
        self.0.top_up(ch, n)
    }

    /// Starts the thread of the iteration `fill_background` left queued (no communication; a
    /// request that needs its COTs before this computes them in place).
    pub fn start_background(&mut self) {
        self.0.start_background()
    }

    /// Generation counts and timings since setup.
    pub fn stats(&self) -> SilentStats {
        self.0.stats()
    }
}

impl CotReceiver {
    /// Sets up a receiver with the default configuration (silent OT) over `ch`, drawing all
    /// secrets (including every future choice bit) from `rng`.
    pub fn setup<C, R>(ch: &mut C, rng: &mut R) -> Result<CotReceiver>
    where
        C: Channel + ?Sized,
        R: RngCore + CryptoRng,
    {
        Self::setup_with(ch, rng, CotConfig::default())
    }

    /// As [`CotReceiver::setup`] with an explicit configuration.
    pub fn setup_with<C, R>(ch: &mut C, rng: &mut R, cfg: CotConfig) -> Result<CotReceiver>
    where
        C: Channel + ?Sized,
        R: RngCore + CryptoRng,
    {
        let iknp = IknpReceiver::setup(ch, rng)?;
        Ok(Self::from_iknp(iknp, cfg))
    }

    /// The receiver over a set-up IKNP receiver.
    fn from_iknp(iknp: IknpReceiver, cfg: CotConfig) -> CotReceiver {
        let engine = match cfg.backend {
            CotBackend::Iknp => Engine::Iknp(Box::new(iknp), Vec::new(), SilentStats::default()),
            CotBackend::Silent | CotBackend::SilentSmall => {
                Engine::Silent(Box::new(if cfg.backend == CotBackend::SilentSmall {
                    FerretReceiver::new_small_only(iknp)
                } else {
                    FerretReceiver::new(iknp)
                }))
            }
        };
        CotReceiver(Endpoint::new(engine))
    }

    /// Number of COTs handed out so far in this session (the next COT's tweak).
    pub fn consumed(&self) -> u64 {
        self.0.consumed
    }

    /// COTs the next `extend` can serve without any traffic. Equal on both sides.
    pub fn buffered(&self) -> usize {
        self.0.buffered()
    }

    /// `n` fresh random COTs `t_i = q_i ⊕ b_i·Δ`; the choice bit is `b_i = lsb(t_i)` (see
    /// [`crate::choice_bits`]). Pairs with the sender's `extend(ch, n)`.
    pub fn extend<C: Channel + ?Sized>(&mut self, ch: &mut C, n: usize) -> Result<Vec<Block>> {
        self.0.extend(ch, n)
    }

    /// Generates COTs ahead: see [`CotSender::fill`].
    pub fn fill<C: Channel + ?Sized>(&mut self, ch: &mut C, n: usize) -> Result<()> {
        self.0.fill(ch, n, false)
    }

    /// Generates the last COTs a session needs: see [`CotSender::fill_last`].
    pub fn fill_last<C: Channel + ?Sized>(&mut self, ch: &mut C, n: usize) -> Result<()> {
        self.0.fill(ch, n, true)
    }

    /// Generates the last COTs a session needs, partly in the background: see
    /// [`CotSender::fill_background`].
    pub fn fill_background<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        lead: usize,
        n: usize,
    ) -> Result<()> {
        self.0.fill_background(ch, lead, n)
    }

    /// The part of a later fill of `n` COTs that sends to the sender (see
    /// [`CotSender::top_up`]): the fill itself then only receives.
    pub fn top_up<C: Channel + ?Sized>(&mut self, ch: &mut C, n: usize) -> Result<()> {
        self.0.top_up(ch, n)
    }

    /// Starts the queued background iteration: see [`CotSender::start_background`].
    pub fn start_background(&mut self) {
        self.0.start_background()
    }

    /// Generation counts and timings since setup.
    pub fn stats(&self) -> SilentStats {
        self.0.stats()
    }
}

/// Extends an IKNP buffer to `n` COTs.
fn iknp_fill(
    buf: &mut Vec<Block>,
    st: &mut SilentStats,
    n: usize,
    extend: impl FnOnce(usize) -> Result<Vec<Block>>,
) -> Result<()> {
    if buf.len() < n {
        let t0 = std::time::Instant::now();
        let m = n - buf.len();
        buf.extend(extend(m)?);
        st.iknp_cots += m as u64;
        st.made += m as u64;
        st.iknp_time += t0.elapsed();
    }
    Ok(())
}

/// `n` COTs from an IKNP buffer (extended first if short), oldest first.
fn iknp_take(
    buf: &mut Vec<Block>,
    st: &mut SilentStats,
    n: usize,
    extend: impl FnOnce(usize) -> Result<Vec<Block>>,
) -> Result<Vec<Block>> {
    iknp_fill(buf, st, n, extend)?;
    st.served += n as u64;
    if buf.len() == n {
        return Ok(std::mem::take(buf));
    }
    let out = buf[..n].to_vec();
    buf.copy_within(n.., 0);
    let left = buf.len() - n;
    buf[left..].fill(Block::ZERO);
    buf.truncate(left);
    Ok(out)
}

/// Both directions of correlated OT for one party: its own sender (its Δ) and its receiver (the
/// peer's Δ). One party must be [`Role::Leader`], the other [`Role::Follower`].
pub struct CotPair {
    /// This party as COT sender.
    pub sender: CotSender,
    /// This party as COT receiver.
    pub receiver: CotReceiver,
}

impl CotPair {
    /// Sets up both directions in two flights each way, both parties making the same calls:
    /// this party's receiver sends its base OTs' first flight (as their sender), its sender
    /// answers the peer's, then the receiver reads the answer to its own.
    pub fn setup<C, R>(ch: &mut C, rng: &mut R, cfg: CotConfig) -> Result<CotPair>
    where
        C: Channel + ?Sized,
        R: RngCore + CryptoRng,
    {
        let pending = IknpReceiver::start(ch, rng)?;
        let sender = CotSender::setup_with(ch, rng, cfg)?;
        let receiver = CotReceiver::from_iknp(pending.finish(ch)?, cfg);
        Ok(CotPair { sender, receiver })
    }
}

// Debug shows the public state only: Δ, seeds and buffered COTs are secrets.
impl std::fmt::Debug for CotSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CotSender")
            .field("consumed", &self.consumed())
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for CotReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CotReceiver")
            .field("consumed", &self.consumed())
            .finish_non_exhaustive()
    }
}
