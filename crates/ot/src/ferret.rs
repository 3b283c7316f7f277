//! Silent correlated OT, Ferret-style [Yang–Weng–Lan–Zhang–Wang, "Ferret: Fast Extension for
//! coRRElated oT with small communication", CCS 2020], semi-honest variant.
//!
//! One *iteration* with LPN parameters (n, k, t, h = log2(n/t)) turns `k + t·h` reserved COTs into
//! `n` new ones with the same Δ:
//! 1. **Regular-noise SPCOT** [Ferret §4, Fig. 6, without the malicious consistency check]: for each
//!    of the t bins of 2^h positions the sender expands a GGM tree from a fresh seed (children
//!    `AES_{k0}(s) ⊕ s`, `AES_{k1}(s) ⊕ s`) into leaves `v`, and for each level l sends
//!    `K_l^0 ⊕ H(q_l)` and `K_l^1 ⊕ H(q_l ⊕ Δ)` (K^b = XOR of the level's b-children, q_l a
//!    reserved COT) plus `Δ ⊕ ⊕_i v_i`. The receiver's reserved choice bits `b_l` *define* its
//!    punctured point (`α_l = ¬b_l`), so no derandomization is sent; it rebuilds every leaf but
//!    `α` and gets `w = v ⊕ e_α·Δ`.
//! 2. **Primal LPN with a local linear code** [Ferret §5; d = 10 per column]: with the reserved
//!    `k` COTs (`w_k = v_k ⊕ u·Δ`), output `i` is `y_i = v_i ⊕ ⊕_{j∈N(i)} v_k[j]` (sender) and
//!    `z_i = w_i ⊕ ⊕_{j∈N(i)} w_k[j]` (receiver), so `z = y ⊕ (e ⊕ u·A)·Δ`; the receiver's new
//!    choice vector `e ⊕ u·A` is pseudorandom under regular-noise LPN. `N(i)` is drawn from
//!    fixed-key AES on `i` (a public code, the same every iteration).
//!
//! Every COT block is kept normalized (`lsb` of the sender's block 0, of the receiver's block its
//! choice bit); XOR combinations keep that, so choice bits never need a separate array.
//!
//! The first reserve comes from IKNP; afterwards each iteration sets aside `k + t·h` of its outputs
//! for the next one. Traffic per iteration: one flight sender → receiver of `t·(2h + 1)` blocks,
//! cut into messages of [`TREES_PER_MESSAGE`] trees.

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

use transport::Channel;

use crate::hash::{tccr, Aes};
use crate::iknp::{IknpReceiver, IknpSender};
use crate::{Block, OtError, Result};

/// Non-zero entries per column of the local linear code [Ferret §5.2].
pub const LPN_D: usize = 10;

/// Regular-noise primal LPN parameters: `n` outputs in `t` bins of `2^log_bin`, secret length `k`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LpnParams {
    /// Output COTs per iteration (`t · 2^log_bin`).
    pub n: usize,
    /// LPN secret length (reserved COTs consumed by the code).
    pub k: usize,
    /// Noise weight = number of bins.
    pub t: usize,
    /// log2 of the bin size (GGM tree depth).
    pub log_bin: u32,
}

impl LpnParams {
    /// Ferret's small set (128-bit security, regular noise, d = 10), as in Ferret's reference
    /// implementation (emp-ot `ferret/constants.h`): n = 649,728, k = 36,288, t = 1,269, bins of
    /// 2^9. Net 602,019 COTs per iteration, 3.09 Mbit of traffic (≈ 5.1 bits per COT).
    pub const FERRET_SMALL: LpnParams = LpnParams {
        n: 649_728,
        k: 36_288,
        t: 1_269,
        log_bin: 9,
    };
    /// Ferret's large set (128-bit security, same source): n = 10,608,640, k = 589,824,
    /// t = 1,295, bins of 2^13. Net 10,001,981 COTs per iteration, 4.48 Mbit (≈ 0.45 bits per COT).
    pub const FERRET_LARGE: LpnParams = LpnParams {
        n: 10_608_640,
        k: 589_824,
        t: 1_295,
        log_bin: 13,
    };

    /// Reserved COTs one iteration consumes: `k + t·log_bin`.
    pub const fn reserve(&self) -> usize {
        self.k + self.t * self.log_bin as usize
    }

    /// New COTs one iteration adds beyond replacing its reserve.
    pub const fn net(&self) -> usize {
        self.n - self.reserve()
    }

    /// Bytes of the sender's flight per iteration (all its messages).
    pub const fn message_bytes(&self) -> usize {
        self.t * (2 * self.log_bin as usize + 1) * 16
    }
}

/// GGM trees per SPCOT message: an iteration's single flight is cut into messages of this many
/// trees so that the receiver works on the first trees while the sender expands the rest.
pub const TREES_PER_MESSAGE: usize = 128;

/// Bytes one tree adds to the SPCOT flight: 2h level keys and the final correction word.
const fn tree_bytes(p: &LpnParams) -> usize {
    (2 * p.log_bin as usize + 1) * 16
}

/// Shortfall from which iterations of the large set are run instead of small ones. From 1 Mi
/// on, the large set's 11× less traffic per COT outweighs its one-time cost (a small iteration
/// to fill its 606,659-COT reserve) and its slower LPN encoding (its secret does not fit in L2).
pub const LARGE_THRESHOLD: usize = 1 << 20;

/// Which parameter set a refill uses. Invariant: one iteration of `small` yields at least the
/// reserve of `large`, and `small` yields more than its own reserve.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Policy {
    small: LpnParams,
    large: LpnParams,
    threshold: usize,
}

impl Policy {
    const FERRET: Policy = Policy {
        small: LpnParams::FERRET_SMALL,
        large: LpnParams::FERRET_LARGE,
        threshold: LARGE_THRESHOLD,
    };
    const FERRET_SMALL_ONLY: Policy = Policy {
        small: LpnParams::FERRET_SMALL,
        large: LpnParams::FERRET_SMALL,
        threshold: usize::MAX,
    };

    /// The large set when this refill falls short by at least the threshold, or when the session
    /// has already been served that many COTs (a heavy session amortizes large iterations).
    fn params_for(&self, shortfall: usize, served: u64) -> LpnParams {
        if shortfall >= self.threshold || served >= self.threshold as u64 {
            self.large
        } else {
            self.small
        }
    }
}

/// Bins an iteration of `p` runs so that, with `reserve` COTs reserved beforehand, it adds at
/// least `shortfall` COTs to the buffer after setting aside a full reserve for the next one:
/// each bin yields `2^h` outputs for `h` reserved COTs, and the code's secret costs `k`.
/// At least 1 and at most `p.t`.
///
/// Running fewer than `t` bins keeps the security of the full set: the outputs are the first
/// `bins·2^h` samples of the same regular-noise LPN instance (the same code rows, the noise of
/// the first `bins` bins), and an attacker on the prefix is an attacker on the full instance
/// that ignores the remaining samples [Ferret §5; fewer samples never help an LPN attacker].
///
/// A shortfall beyond one full iteration is split evenly over the iterations it needs, so the
/// last one is not a sliver that pays the code's `k` for little output.
fn bins_for(p: &LpnParams, shortfall: usize, reserve: usize) -> usize {
    let h = p.log_bin as usize;
    let iterations = shortfall.div_ceil(p.net()).max(1);
    let target = shortfall.div_ceil(iterations);
    let need = (target + p.reserve() + p.k).saturating_sub(reserve);
    need.div_ceil((1 << h) - h).clamp(1, p.t)
}

/// Bins of the next iteration of `p` and whether it refills the reserve: with `last` set and a
/// shortfall one iteration covers, the iteration keeps no reserve and runs just the bins the
/// shortfall needs (it consumes `k + bins·h ≤ p.reserve()` reserved COTs, which are there);
/// otherwise [`bins_for`].
fn plan_iteration(p: &LpnParams, shortfall: usize, reserve: usize, last: bool) -> (usize, bool) {
    let bin = 1usize << p.log_bin;
    if last && shortfall <= p.t * bin {
        (shortfall.div_ceil(bin).max(1), false)
    } else {
        (bins_for(p, shortfall, reserve), true)
    }
}

/// What one side of silent OT has done since setup. Counts are equal on both sides; times are
/// this side's own.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SilentStats {
    /// LPN iterations of the small parameter set.
    pub iterations_small: u64,
    /// LPN iterations of the large parameter set.
    pub iterations_large: u64,
    /// GGM trees (bins) expanded over all iterations.
    pub bins: u64,
    /// COTs taken from IKNP to bootstrap the reserve.
    pub iknp_cots: u64,
    /// COTs the iterations made available to callers (beyond replacing their reserve).
    pub made: u64,
    /// COTs handed out; `made − served` are buffered.
    pub served: u64,
    /// Time spent in IKNP (bootstrap).
    pub iknp_time: std::time::Duration,
    /// Time spent in the SPCOT step: GGM trees, their hashes and messages (waiting included).
    pub spcot_time: std::time::Duration,
    /// Time spent in the LPN encoding.
    pub lpn_time: std::time::Duration,
}

/// Public keys of the GGM tree's two PRG halves and of the code's index generator.
const GGM_KEYS: [u128; 2] = [
    0x6a09_e667_f3bc_c908_bb67_ae85_84ca_a73b,
    0x3c6e_f372_fe94_f82b_a54f_f53a_5f1d_36f1,
];
const CODE_KEY: u128 = 0x510e_527f_ade6_82d1_9b05_688c_2b3e_6c1f;
/// Tweak domain of SPCOT hashes (derived OTs use tweaks below 2^64).
const SPCOT_DOMAIN: u128 = 1 << 64;

#[derive(Clone)]
struct Prims {
    ggm: [Aes; 2],
    code: Aes,
}

impl Prims {
    fn new() -> Prims {
        Prims {
            ggm: [Aes::new(Block(GGM_KEYS[0])), Aes::new(Block(GGM_KEYS[1]))],
            code: Aes::new(Block(CODE_KEY)),
        }
    }

    /// Expands level `l` (in `nodes[..size]`) into level `l+1` (in `nodes[..2·size]`), children of
    /// node i at 2i (left) and 2i+1 (right); returns the XORs of left and right children.
    fn expand_level(&self, nodes: &mut [Block], size: usize) -> [Block; 2] {
        self.ggm[0].ggm_level(&self.ggm[1], nodes, size)
    }

    /// `out[i] ^= ⊕_{j ∈ N(i)} secret[j]` for every output i (the local linear code): the 10
    /// indices of output 2p + e are the 32-bit words 10e..10e+9 of `AES_code(5p), …, AES_code(5p+4)`,
    /// each mapped to `[0, k)` by `(w·k) >> 32`.
    fn lpn_encode(&self, secret: &[Block], out: &mut [Block]) {
        let k = secret.len() as u64;
        assert!(
            k > 0 && k <= u32::MAX as u64,
            "LPN secret length out of range"
        );
        let far = std::mem::size_of_val(secret) > NEAR_BYTES;
        const PAIRS: usize = 256; // outputs per batch = 2·PAIRS
        let mut ctr = [Block::ZERO; 5 * PAIRS];
        let mut idx = [0u32; 2 * PAIRS * LPN_D];
        let base_ptr = secret.as_ptr();
        for (p0, chunk) in out.chunks_mut(2 * PAIRS).enumerate() {
            let pairs = chunk.len().div_ceil(2);
            let base = (p0 * PAIRS) as u128 * 5;
            for (j, c) in ctr[..5 * pairs].iter_mut().enumerate() {
                *c = Block(base + j as u128);
            }
            self.code.encrypt_many(&mut ctr[..5 * pairs]);
            for (c, ix) in ctr[..5 * pairs].iter().zip(idx.chunks_exact_mut(4)) {
                let x = c.0;
                for (q, i) in ix.iter_mut().enumerate() {
                    *i = (((x >> (32 * q)) as u32 as u64 * k) >> 32) as u32;
                }
            }
            let len = chunk.len();
            let idx = &idx[..len * LPN_D];
            if far {
                for o in 0..PREFETCH.min(len) {
                    prefetch(base_ptr, &idx[o * LPN_D..(o + 1) * LPN_D]);
                }
            }
            for (o, (x, ix)) in chunk.iter_mut().zip(idx.chunks_exact(LPN_D)).enumerate() {
                if far && o + PREFETCH < len {
                    prefetch(
                        base_ptr,
                        &idx[(o + PREFETCH) * LPN_D..(o + PREFETCH + 1) * LPN_D],
                    );
                }
                let mut acc = *x;
                for &j in ix {
                    // SAFETY: j = (w·k) >> 32 < k = secret.len() for every 32-bit w.
                    acc ^= unsafe { *base_ptr.add(j as usize) };
                }
                *x = acc;
            }
        }
    }
}

/// Secrets up to this size are gathered without prefetching (they stay in L2).
const NEAR_BYTES: usize = 1 << 20;

/// Outputs of the LPN encoding whose secret words are requested ahead of their gather: the
/// gathers are random reads over k·16 bytes (9.4 MB for the large set), beyond L2.
const PREFETCH: usize = 8;

/// Asks the cache for the secret words `ix` (a hint: no effect on the result).
#[inline(always)]
fn prefetch(secret: *const Block, ix: &[u32]) {
    #[cfg(target_arch = "x86_64")]
    for &j in ix {
        // SAFETY: a prefetch never faults; j < the secret's length (see `lpn_encode`).
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                secret.add(j as usize).cast(),
            )
        };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (secret, ix);
}

/// Reserve and buffer bookkeeping shared by both sides (identical on both, so both pick the same
/// parameters and the same reserved COTs).
pub(crate) struct Pool {
    reserve: Vec<Block>,
    /// Buffered COTs oldest first, whole iteration outputs (never copied into one buffer); the
    /// front one is read from `pos`.
    chunks: std::collections::VecDeque<Vec<Block>>,
    pos: usize,
    available: usize,
    /// Emptied chunk allocations, reused for the next iterations' outputs (a fresh 170 MB
    /// buffer costs a page fault per 4 KiB).
    spare: Vec<Vec<Block>>,
    tweak: u128,
    stats: SilentStats,
    /// The last iteration of a [`Side::fill_background`], computing on its own thread; joined
    /// (its outputs queued after `chunks`) by the first request the ready COTs cannot cover.
    background: Option<Background>,
}

/// An iteration whose messages have been exchanged and whose local work (the receiver's GGM
/// rebuild, both sides' LPN encoding) is left for later: queued, then running on a thread of its
/// own once started ([`Side::start_background`]). It yields its outputs and the time its SPCOT
/// and LPN steps took.
struct Background {
    /// Its outputs (tests ask).
    #[cfg(test)]
    len: usize,
    job: Job,
}

type Done = (Vec<Block>, std::time::Duration, std::time::Duration);

type Work = Box<dyn FnOnce() -> Done + Send>;

enum Job {
    Queued(Work),
    Running(std::thread::JoinHandle<Option<Done>>),
}

impl Background {
    /// Hands the work to a new thread; where the system has none to give, it stays queued and
    /// runs where its COTs are first needed.
    fn started(mut self) -> Background {
        self.job = match self.job {
            Job::Queued(work) => {
                let (tx, rx) = std::sync::mpsc::channel::<Work>();
                let spawned = std::thread::Builder::new()
                    .name("silent-ot".into())
                    .spawn(move || rx.recv().ok().map(|w| w()));
                match spawned {
                    // A thread that lost its sender returns None: joined, that is an error.
                    Ok(handle) => {
                        let _ = tx.send(work);
                        Job::Running(handle)
                    }
                    Err(_) => Job::Queued(work),
                }
            }
            running => running,
        };
        self
    }

    /// The outputs, computed here if the work was never started; `None` if its thread panicked.
    fn finish(self) -> Option<Done> {
        match self.job {
            Job::Queued(work) => Some(work()),
            Job::Running(handle) => handle.join().ok().flatten(),
        }
    }
}

impl Pool {
    fn new() -> Pool {
        Pool {
            reserve: Vec::new(),
            chunks: std::collections::VecDeque::new(),
            pos: 0,
            available: 0,
            spare: Vec::new(),
            tweak: SPCOT_DOMAIN,
            stats: SilentStats::default(),
            background: None,
        }
    }

    /// Queues the background iteration's outputs (waiting for its thread), if there is one.
    fn join(&mut self) -> Result<()> {
        let Some(bg) = self.background.take() else {
            return Ok(());
        };
        let (out, spcot, lpn) = bg.finish().ok_or(OtError::Background)?;
        self.stats.spcot_time += spcot;
        self.stats.lpn_time += lpn;
        self.stats.made += out.len() as u64;
        if !out.is_empty() {
            self.available += out.len();
            self.chunks.push_back(out);
        }
        Ok(())
    }

    /// Starts the background iteration's thread, if one is queued.
    fn start(&mut self) {
        self.background = self.background.take().map(Background::started);
    }

    /// COTs of the background iteration, not yet ready.
    #[cfg(test)]
    fn pending(&self) -> usize {
        self.background.as_ref().map_or(0, |b| b.len)
    }

    fn available(&self) -> usize {
        self.available
    }

    /// Takes the COTs an iteration of `p` with `bins` bins consumes off the reserve: the code's
    /// secret (k) and the SPCOT COTs (bins·h).
    fn take(&mut self, p: &LpnParams, bins: usize) -> Vec<Block> {
        let at = self.reserve.len() - (p.k + bins * p.log_bin as usize);
        self.reserve.split_off(at)
    }

    /// Refills the reserve for a full iteration of `p` from the tail of `out` (when
    /// `keep_reserve`) and queues the rest.
    fn store(&mut self, p: &LpnParams, mut out: Vec<Block>, keep_reserve: bool) {
        let need = if keep_reserve {
            p.reserve()
                .saturating_sub(self.reserve.len())
                .min(out.len())
        } else {
            0
        };
        let keep = out.len() - need;
        self.reserve.extend_from_slice(&out[keep..]);
        out[keep..].fill(Block::ZERO);
        out.truncate(keep);
        self.stats.made += keep as u64;
        if keep > 0 {
            self.available += keep;
            self.chunks.push_back(out);
        }
    }

    fn count_iteration(&mut self, policy: &Policy, p: &LpnParams, bins: usize) {
        if *p == policy.large && policy.large != policy.small {
            self.stats.iterations_large += 1;
        } else {
            self.stats.iterations_small += 1;
        }
        self.stats.bins += bins as u64;
    }

    /// A zeroed buffer of `n` blocks, reusing an emptied chunk when there is one.
    fn output_buffer(&mut self, n: usize) -> Vec<Block> {
        let mut v = self.spare.pop().unwrap_or_default();
        v.clear();
        v.resize(n, Block::ZERO);
        v
    }

    fn serve(&mut self, n: usize) -> Vec<Block> {
        debug_assert!(n <= self.available);
        self.stats.served += n as u64;
        self.available -= n;
        // A request for most of the front chunk takes the chunk itself and leaves a copy of
        // its (shorter) tail, so a large request copies the smaller part.
        if self.pos == 0 {
            if let Some(front) = self.chunks.front_mut() {
                if front.len() == n {
                    return self.chunks.pop_front().expect("front exists");
                }
                if front.len() > n && front.len() - n <= n {
                    let rest = front[n..].to_vec();
                    front[n..].fill(Block::ZERO);
                    front.truncate(n);
                    let mine = std::mem::replace(front, rest);
                    return mine;
                }
            }
        }
        let mut v = Vec::with_capacity(n);
        while v.len() < n {
            let front = self.chunks.front_mut().expect("enough buffered");
            let m = (n - v.len()).min(front.len() - self.pos);
            v.extend_from_slice(&front[self.pos..self.pos + m]);
            self.pos += m;
            if self.pos == front.len() {
                let mut used = self.chunks.pop_front().expect("front exists");
                if self.spare.len() < 2 {
                    // Overwritten by the next iteration, zeroized with the pool otherwise.
                    used.clear();
                    self.spare.push(used);
                } else {
                    zeroize::Zeroize::zeroize(&mut used);
                }
                self.pos = 0;
            }
        }
        v
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        if let Some(Background {
            job: Job::Running(handle),
            ..
        }) = self.background.take()
        {
            if let Ok(Some((mut out, ..))) = handle.join() {
                zeroize::Zeroize::zeroize(&mut out);
            }
        }
        zeroize::Zeroize::zeroize(&mut self.reserve);
        for c in self.chunks.iter_mut().chain(self.spare.iter_mut()) {
            zeroize::Zeroize::zeroize(c);
        }
    }
}

/// Either side of silent OT. The two sides run the same iteration schedule (mirror calls),
/// differing only in IKNP's role and one iteration's messages, so the buffer, refill and
/// serving logic is written once here; each side supplies the required methods.
pub(crate) trait Side: Sized {
    fn pool_ref(&self) -> &Pool;
    fn pool(&mut self) -> &mut Pool;
    fn policy(&self) -> Policy;
    fn iknp_extend<C: Channel + ?Sized>(&mut self, ch: &mut C, m: usize) -> Result<Vec<Block>>;
    fn iterate<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        p: &LpnParams,
        bins: usize,
    ) -> Result<Vec<Block>>;
    /// As [`Side::iterate`], with the iteration's messages exchanged now and its local work
    /// queued ([`Pool::background`]); no other iteration may be in the background.
    fn iterate_background<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        p: &LpnParams,
        bins: usize,
    ) -> Result<()>;

    /// COTs available without communication.
    fn buffered(&self) -> usize {
        self.pool_ref().available()
    }

    /// `n` COTs from the buffer, refilled by as many iterations as needed.
    fn extend<C: Channel + ?Sized>(&mut self, ch: &mut C, n: usize) -> Result<Vec<Block>> {
        self.fill(ch, n)?;
        Ok(self.pool().serve(n))
    }

    /// Runs LPN iterations until at least `n` COTs are buffered, each sized to the shortfall
    /// ([`bins_for`]); the peer makes the mirror call. Nothing is sent when `n` are buffered.
    fn fill<C: Channel + ?Sized>(&mut self, ch: &mut C, n: usize) -> Result<()> {
        fill_with(self, ch, n, false)
    }

    /// As [`Side::fill`] for the last COTs a session needs: the final iteration keeps no reserve
    /// for a next one, so all its outputs are buffered (a later request rebuilds the reserve from
    /// IKNP). The peer makes the mirror call.
    fn fill_last<C: Channel + ?Sized>(&mut self, ch: &mut C, n: usize) -> Result<()> {
        fill_with(self, ch, n, true)
    }

    /// As [`Side::fill_last`], but only `lead` COTs are made ready now: the last iteration, of the
    /// large set, exchanges its messages now and queues its local work, to compute on a thread
    /// ([`Side::start_background`]) while the caller goes on with the COTs it has; the first
    /// request those cannot cover waits for it (or computes it, if never started). Where the
    /// shortfall beyond `lead` is not one large iteration, this is `fill_last(n)`. The peer makes
    /// the mirror call.
    fn fill_background<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        lead: usize,
        n: usize,
    ) -> Result<()> {
        self.pool().join()?;
        let available = self.pool().available();
        if available >= n {
            return Ok(());
        }
        let p = self
            .policy()
            .params_for(n - available, self.pool().stats.served);
        let bin = 1usize << p.log_bin;
        let beyond = n.saturating_sub(available.max(lead));
        if p != self.policy().large || p == self.policy().small || beyond > p.t * bin {
            return fill_with(self, ch, n, true);
        }
        // Foreground: the lead and the large iteration's reserve — by a large iteration that
        // keeps its reserve where the lead alone calls for the large set, else by small ones.
        let lead = lead.min(n);
        if self
            .policy()
            .params_for(lead.saturating_sub(available), self.pool().stats.served)
            == p
        {
            fill_with(self, ch, lead, false)?;
        }
        ensure_reserve(self, ch, &p, lead)?;
        let short = n.saturating_sub(self.pool().available());
        if short > 0 {
            self.iterate_background(ch, &p, short.div_ceil(bin))?;
        }
        Ok(())
    }

    /// The IKNP step of a fill of `n` COTs run on its own: tops the reserve up to the small
    /// set's when the fill will iterate (fewer than `n` COTs buffered, a background iteration
    /// joined). The fill that follows ([`Side::fill`], [`Side::fill_last`],
    /// [`Side::fill_background`]) then never extends IKNP, so the sender's only sends and the
    /// receiver's only receives. The peer makes the mirror call.
    fn top_up<C: Channel + ?Sized>(&mut self, ch: &mut C, n: usize) -> Result<()> {
        if self.pool().available() < n {
            self.pool().join()?;
        }
        if self.pool().available() < n {
            iknp_top_up(self, ch)?;
        }
        Ok(())
    }

    /// Starts the work of the iteration [`Side::fill_background`] left queued on a thread of its
    /// own (separately, so that a party runs both directions' foreground iterations first).
    fn start_background(&mut self) {
        self.pool().start()
    }

    /// Counts and timings since setup.
    fn stats(&self) -> SilentStats {
        self.pool_ref().stats
    }
}

/// Runs LPN iterations until at least `n` COTs are buffered, each sized to the shortfall
/// ([`bins_for`]); `last`: the final iteration keeps no reserve for a next one.
fn fill_with<S: Side, C: Channel + ?Sized>(
    s: &mut S,
    ch: &mut C,
    n: usize,
    last: bool,
) -> Result<()> {
    if s.pool().available() < n {
        s.pool().join()?;
    }
    while s.pool().available() < n {
        let shortfall = n - s.pool().available();
        let served = s.pool().stats.served;
        let p = s.policy().params_for(shortfall, served);
        ensure_reserve(s, ch, &p, 0)?;
        // The reserve's small iteration may have buffered a surplus.
        let shortfall = n.saturating_sub(s.pool().available());
        if shortfall == 0 {
            break;
        }
        let (bins, keep) = plan_iteration(&p, shortfall, s.pool().reserve.len(), last);
        let out = s.iterate(ch, &p, bins)?;
        s.pool().store(&p, out, keep);
    }
    Ok(())
}

/// Tops the reserve up to the small set's by IKNP (one flight receiver → sender), if short.
fn iknp_top_up<S: Side, C: Channel + ?Sized>(s: &mut S, ch: &mut C) -> Result<()> {
    let r = s.pool().reserve.len();
    let want = s.policy().small.reserve();
    if r < want {
        let t0 = std::time::Instant::now();
        let more = s.iknp_extend(ch, want - r)?;
        let pool = s.pool();
        pool.reserve.extend(more);
        pool.stats.iknp_cots += (want - r) as u64;
        pool.stats.iknp_time += t0.elapsed();
    }
    Ok(())
}

/// Makes the reserve hold a full iteration of `p` and at least `lead` COTs ready: IKNP tops the
/// reserve up to the small set's, and small iterations (sized to the need) cover the rest, their
/// outputs filling the reserve first.
fn ensure_reserve<S: Side, C: Channel + ?Sized>(
    s: &mut S,
    ch: &mut C,
    p: &LpnParams,
    lead: usize,
) -> Result<()> {
    let small = s.policy().small;
    loop {
        let (r, ready) = (s.pool().reserve.len(), s.pool().available());
        if r >= p.reserve() && ready >= lead {
            return Ok(());
        }
        if r < small.reserve() {
            iknp_top_up(s, ch)?;
            continue;
        }
        // b bins leave r − k − b·h reserved and add b·2^h: with b·(2^h − h) ≥ k + the reserve's
        // and the lead's deficits, both are covered (the large set's reserve exceeds the small
        // one's, so only the large set and a lead get here).
        let h = small.log_bin as usize;
        let need = p.reserve().saturating_sub(r) + lead.saturating_sub(ready) + small.k;
        let bins = need.div_ceil((1 << h) - h).clamp(1, small.t);
        let out = s.iterate(ch, &small, bins)?;
        s.pool().store(p, out, true);
    }
}

/// Silent COT sender (holder of Δ).
pub struct FerretSender {
    iknp: IknpSender,
    policy: Policy,
    prims: Prims,
    pool: Pool,
    rng: ChaCha20Rng,
}

/// Silent COT receiver.
pub struct FerretReceiver {
    iknp: IknpReceiver,
    policy: Policy,
    prims: Prims,
    pool: Pool,
}

impl Side for FerretSender {
    fn pool_ref(&self) -> &Pool {
        &self.pool
    }
    fn pool(&mut self) -> &mut Pool {
        &mut self.pool
    }
    fn policy(&self) -> Policy {
        self.policy
    }
    fn iknp_extend<C: Channel + ?Sized>(&mut self, ch: &mut C, m: usize) -> Result<Vec<Block>> {
        self.iknp.extend(ch, m)
    }
    fn iterate<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        p: &LpnParams,
        bins: usize,
    ) -> Result<Vec<Block>> {
        self.iterate_bins(ch, p, bins)
    }
    fn iterate_background<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        p: &LpnParams,
        bins: usize,
    ) -> Result<()> {
        self.iterate_bins_background(ch, p, bins)
    }
}

impl FerretSender {
    /// Wraps an IKNP sender (whose Δ becomes the silent Δ) and a seed for the GGM trees.
    pub fn new(iknp: IknpSender, seed: [u8; 32]) -> FerretSender {
        Self::with_policy(iknp, seed, Policy::FERRET)
    }

    /// As [`FerretSender::new`], refilling with [`LpnParams::FERRET_SMALL`] only.
    pub fn new_small_only(iknp: IknpSender, seed: [u8; 32]) -> FerretSender {
        Self::with_policy(iknp, seed, Policy::FERRET_SMALL_ONLY)
    }

    fn with_policy(iknp: IknpSender, seed: [u8; 32], policy: Policy) -> FerretSender {
        FerretSender {
            iknp,
            policy,
            prims: Prims::new(),
            pool: Pool::new(),
            rng: ChaCha20Rng::from_seed(seed),
        }
    }

    /// Δ.
    pub fn delta(&self) -> Block {
        self.iknp.delta()
    }

    /// One iteration of `p` over its first `bins` bins.
    fn iterate_bins<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        p: &LpnParams,
        bins: usize,
    ) -> Result<Vec<Block>> {
        let t0 = std::time::Instant::now();
        let (r, mut out) = self.spcot(ch, p, bins)?;
        encode_timed(&self.prims, &mut self.pool.stats, &r[..p.k], &mut out, t0);
        Ok(out)
    }

    /// The SPCOT step of an iteration of `p` over its first `bins` bins: the GGM trees, their
    /// messages sent. Returns the reserved COTs it took (the code's secret first) and the leaves.
    fn spcot<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        p: &LpnParams,
        bins: usize,
    ) -> Result<(Vec<Block>, Vec<Block>)> {
        self.pool.count_iteration(&self.policy, p, bins);
        let r = self.pool.take(p, bins);
        let spcot = &r[p.k..];
        let h = p.log_bin as usize;
        let bin = 1usize << h;
        let delta = self.delta();
        let mut out = self.pool.output_buffer(bins << h);
        let mut msg = Vec::with_capacity(TREES_PER_MESSAGE * tree_bytes(p));
        let mut keys = vec![Block::ZERO; 2 * h];
        let mut hashed = vec![Block::ZERO; 2 * h];
        let mut masks = vec![Block::ZERO; 2 * h];
        for (j, leaves) in out.chunks_exact_mut(bin).enumerate() {
            let mut s = [0u8; 16];
            self.rng.fill_bytes(&mut s);
            leaves[0] = Block::from_bytes(s);
            for l in 0..h {
                let k = self.prims.expand_level(leaves, 1 << l);
                keys[2 * l] = k[0];
                keys[2 * l + 1] = k[1];
            }
            // [Ferret Fig. 6, step 3]: level keys under H(q_l), H(q_l ⊕ Δ), one tweak per COT.
            let q = &spcot[j * h..(j + 1) * h];
            for l in 0..h {
                masks[2 * l] = q[l];
                masks[2 * l + 1] = q[l] ^ delta;
            }
            let tw = self.pool.tweak;
            for l in 0..h {
                hashed[2 * l] = tccr(masks[2 * l], tw + l as u128);
                hashed[2 * l + 1] = tccr(masks[2 * l + 1], tw + l as u128);
            }
            self.pool.tweak += h as u128;
            for l in 0..2 * h {
                msg.extend_from_slice(&(keys[l] ^ hashed[l]).to_bytes());
            }
            let mut sum = delta;
            for v in leaves.iter() {
                sum ^= *v;
            }
            msg.extend_from_slice(&sum.to_bytes());
            for v in leaves.iter_mut() {
                *v = v.with_lsb(false);
            }
            // Ship every TREES_PER_MESSAGE trees, so the receiver rebuilds while we expand
            // (where the channel flushes: a session filling both directions at once queues
            // them until it reads, `mpc::Session`).
            if (j + 1) % TREES_PER_MESSAGE == 0 || j + 1 == bins {
                ch.send(&msg)?;
                ch.flush()?;
                msg.clear();
            }
        }
        Ok((r, out))
    }

    /// [`FerretSender::iterate_bins`] with the LPN encoding on a thread.
    fn iterate_bins_background<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        p: &LpnParams,
        bins: usize,
    ) -> Result<()> {
        let t0 = std::time::Instant::now();
        let (mut r, mut out) = self.spcot(ch, p, bins)?;
        let spcot = t0.elapsed();
        let (prims, k) = (self.prims.clone(), p.k);
        let work = move || {
            let t1 = std::time::Instant::now();
            prims.lpn_encode(&r[..k], &mut out);
            zeroize::Zeroize::zeroize(&mut r);
            (out, spcot, t1.elapsed())
        };
        self.pool.background = Some(Background {
            #[cfg(test)]
            len: bins << p.log_bin,
            job: Job::Queued(Box::new(work)),
        });
        Ok(())
    }
}

impl Side for FerretReceiver {
    fn pool_ref(&self) -> &Pool {
        &self.pool
    }
    fn pool(&mut self) -> &mut Pool {
        &mut self.pool
    }
    fn policy(&self) -> Policy {
        self.policy
    }
    fn iknp_extend<C: Channel + ?Sized>(&mut self, ch: &mut C, m: usize) -> Result<Vec<Block>> {
        self.iknp.extend(ch, m)
    }
    fn iterate<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        p: &LpnParams,
        bins: usize,
    ) -> Result<Vec<Block>> {
        self.iterate_bins(ch, p, bins)
    }
    fn iterate_background<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        p: &LpnParams,
        bins: usize,
    ) -> Result<()> {
        self.iterate_bins_background(ch, p, bins)
    }
}

impl FerretReceiver {
    /// Wraps an IKNP receiver.
    pub fn new(iknp: IknpReceiver) -> FerretReceiver {
        Self::with_policy(iknp, Policy::FERRET)
    }

    /// As [`FerretReceiver::new`], refilling with [`LpnParams::FERRET_SMALL`] only.
    pub fn new_small_only(iknp: IknpReceiver) -> FerretReceiver {
        Self::with_policy(iknp, Policy::FERRET_SMALL_ONLY)
    }

    fn with_policy(iknp: IknpReceiver, policy: Policy) -> FerretReceiver {
        FerretReceiver {
            iknp,
            policy,
            prims: Prims::new(),
            pool: Pool::new(),
        }
    }

    /// One iteration of `p` over its first `bins` bins: each message's trees rebuilt as it
    /// arrives, then the LPN encoding.
    fn iterate_bins<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        p: &LpnParams,
        bins: usize,
    ) -> Result<Vec<Block>> {
        let t0 = std::time::Instant::now();
        let (r, tweak) = self.begin(p, bins);
        let mut out = self.pool.output_buffer(bins << p.log_bin);
        for first in (0..bins).step_by(TREES_PER_MESSAGE) {
            let msg = recv_trees(ch, p, bins, first)?;
            rebuild(&self.prims, p, &r, tweak, first, &msg, &mut out);
        }
        encode_timed(&self.prims, &mut self.pool.stats, &r[..p.k], &mut out, t0);
        Ok(out)
    }

    /// [`FerretReceiver::iterate_bins`] with the messages read now and the rebuild and the LPN
    /// encoding on a thread.
    fn iterate_bins_background<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        p: &LpnParams,
        bins: usize,
    ) -> Result<()> {
        let t0 = std::time::Instant::now();
        let (mut r, tweak) = self.begin(p, bins);
        let msgs = (0..bins)
            .step_by(TREES_PER_MESSAGE)
            .map(|first| recv_trees(ch, p, bins, first))
            .collect::<Result<Vec<_>>>()?;
        let waited = t0.elapsed();
        let mut out = self.pool.output_buffer(bins << p.log_bin);
        let (prims, p) = (self.prims.clone(), *p);
        let work = move || {
            let t1 = std::time::Instant::now();
            for (m, msg) in msgs.iter().enumerate() {
                rebuild(&prims, &p, &r, tweak, m * TREES_PER_MESSAGE, msg, &mut out);
            }
            let t2 = std::time::Instant::now();
            prims.lpn_encode(&r[..p.k], &mut out);
            zeroize::Zeroize::zeroize(&mut r);
            (out, waited + (t2 - t1), t2.elapsed())
        };
        self.pool.background = Some(Background {
            #[cfg(test)]
            len: bins << p.log_bin,
            job: Job::Queued(Box::new(work)),
        });
        Ok(())
    }

    /// An iteration of `p` over `bins` bins begins: counted, its reserved COTs taken (the code's
    /// secret first), and the SPCOT tweak of its first tree (h per tree).
    fn begin(&mut self, p: &LpnParams, bins: usize) -> (Vec<Block>, u128) {
        self.pool.count_iteration(&self.policy, p, bins);
        let r = self.pool.take(p, bins);
        let tweak = self.pool.tweak;
        self.pool.tweak += (bins * p.log_bin as usize) as u128;
        (r, tweak)
    }
}

/// The LPN encoding of an iteration whose SPCOT step began at `t0`, both steps' times counted.
fn encode_timed(
    prims: &Prims,
    stats: &mut SilentStats,
    secret: &[Block],
    out: &mut [Block],
    t0: std::time::Instant,
) {
    let t1 = std::time::Instant::now();
    prims.lpn_encode(secret, out);
    stats.spcot_time += t1 - t0;
    stats.lpn_time += t1.elapsed();
}

/// The SPCOT message holding trees `first..` (up to [`TREES_PER_MESSAGE`]) of an iteration of `p`
/// over `bins` bins, its length checked.
fn recv_trees<C: Channel + ?Sized>(
    ch: &mut C,
    p: &LpnParams,
    bins: usize,
    first: usize,
) -> Result<Vec<u8>> {
    let msg = ch.recv()?;
    let expected = TREES_PER_MESSAGE.min(bins - first) * tree_bytes(p);
    if msg.len() != expected {
        return Err(OtError::BadMessage {
            what: "silent OT (SPCOT)",
            expected,
            got: msg.len(),
        });
    }
    Ok(msg)
}

/// The receiver's leaves of the trees `first..` that `msg` holds [Ferret Fig. 6, step 4]:
/// every leaf but the punctured one from the sibling keys, that one from the correction word,
/// so that `w = v ⊕ e_α·Δ`. `r` is the iteration's reserved COTs (the code's secret, then h per
/// tree), `tweak` the first tree's SPCOT tweak.
fn rebuild(
    prims: &Prims,
    p: &LpnParams,
    r: &[Block],
    tweak: u128,
    first: usize,
    msg: &[u8],
    out: &mut [Block],
) {
    let h = p.log_bin as usize;
    let bin = 1usize << h;
    let tb = tree_bytes(p);
    let mut hashed = vec![Block::ZERO; h];
    for (i, m) in msg.chunks_exact(tb).enumerate() {
        let j = first + i;
        let leaves = &mut out[j * bin..(j + 1) * bin];
        let word =
            |i: usize| Block::from_bytes(m[16 * i..16 * i + 16].try_into().expect("16 bytes"));
        let t = &r[p.k + j * h..p.k + (j + 1) * h];
        let tw = tweak + (j * h) as u128;
        for l in 0..h {
            hashed[l] = tccr(t[l], tw + l as u128);
        }
        // Path from the root: α_l = ¬b_l, most significant bit first.
        let mut path = 0usize;
        leaves[0] = Block::ZERO;
        for l in 0..h {
            let b = t[l].lsb() as usize; // the side whose XOR we can decrypt: the sibling's
            let k = prims.expand_level(leaves, 1 << l);
            let got = word(2 * l + b) ^ hashed[l];
            // Children of the (unknown, zero-filled) path node are garbage: remove them.
            let garbage = leaves[2 * path + b];
            let sibling = got ^ k[b] ^ garbage;
            leaves[2 * path + b] = sibling;
            leaves[2 * path + (1 - b)] = Block::ZERO;
            path = 2 * path + (1 - b);
        }
        let mut sum = word(2 * h);
        for v in leaves.iter() {
            sum ^= *v;
        }
        leaves[path] = sum; // = v_α ⊕ Δ
        for (i, v) in leaves.iter_mut().enumerate() {
            *v = v.with_lsb(i == path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Nanoseconds this thread has spent on a CPU (Linux), so probes ignore other load.
    fn cpu_ns() -> u64 {
        std::fs::read_to_string("/proc/thread-self/schedstat")
            .ok()
            .and_then(|s| s.split_whitespace().next().and_then(|x| x.parse().ok()))
            .unwrap_or(0)
    }

    use crate::iknp::{IknpReceiver, IknpSender};
    use rand_chacha::ChaCha20Rng;
    use transport::MemoryChannel;

    /// Insecure toy sets that exercise every path of the pool quickly (tests only).
    const TOY: Policy = Policy {
        small: LpnParams {
            n: 64 << 6,
            k: 600,
            t: 64,
            log_bin: 6,
        },
        large: LpnParams {
            n: 96 << 8,
            k: 2000,
            t: 96,
            log_bin: 8,
        },
        threshold: 10_000,
    };

    fn session(policy: Policy, sizes: &'static [usize]) {
        assert!(
            policy.large.reserve() <= policy.small.n && policy.small.reserve() < policy.small.n
        );
        let (mut c0, mut c1) = MemoryChannel::pair();
        let h = std::thread::spawn(move || {
            let mut rng = ChaCha20Rng::seed_from_u64(2);
            let iknp = IknpReceiver::setup(&mut c1, &mut rng).unwrap();
            let mut r = FerretReceiver::with_policy(iknp, policy);
            sizes
                .iter()
                .map(|&n| r.extend(&mut c1, n).unwrap())
                .collect::<Vec<_>>()
        });
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let iknp = IknpSender::setup(&mut c0, &mut rng).unwrap();
        let mut s = FerretSender::with_policy(iknp, [7; 32], policy);
        let qs: Vec<Vec<Block>> = sizes
            .iter()
            .map(|&n| s.extend(&mut c0, n).unwrap())
            .collect();
        let ts = h.join().unwrap();
        let delta = s.delta();
        let mut ones = 0usize;
        let mut total = 0usize;
        for ((q, t), &n) in qs.iter().zip(&ts).zip(sizes) {
            assert_eq!((q.len(), t.len()), (n, n));
            for (a, b) in q.iter().zip(t) {
                assert!(!a.lsb());
                assert_eq!(*b, *a ^ delta.and_bit(b.lsb()));
                ones += b.lsb() as usize;
            }
            total += n;
        }
        assert!(
            ones > total * 2 / 5 && ones < total * 3 / 5,
            "choice bits biased: {ones}/{total}"
        );
    }

    #[test]
    fn refills_across_iterations_and_parameter_sets() {
        // Small iterations, a buffer carried across calls, then the large set (its reserve filled
        // by a small iteration) once a call falls short by the threshold and for every refill
        // after the session has been served that many.
        session(TOY, &[1, 3000, 5000, 700, 20_000, 1, 40_000, 7, 9000]);
    }

    /// `fill(n)` runs iterations sized to the shortfall: whatever the request, what is left
    /// buffered after serving it is less than one bin of each set used, plus the rounding of an
    /// even split; and the COTs are still correct.
    #[test]
    fn fill_generates_what_is_asked_and_little_more() {
        let policy = TOY;
        let sizes = [1usize, 5_000, 9_999, 10_000, 31_000, 77_777];
        let (mut c0, mut c1) = MemoryChannel::pair();
        let h = std::thread::spawn(move || {
            let mut rng = ChaCha20Rng::seed_from_u64(4);
            let iknp = IknpReceiver::setup(&mut c1, &mut rng).unwrap();
            let mut r = FerretReceiver::with_policy(iknp, policy);
            let mut out = Vec::new();
            for n in sizes {
                r.fill(&mut c1, n).unwrap();
                out.push((r.buffered(), r.extend(&mut c1, n).unwrap()));
            }
            (out, r.stats())
        });
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let iknp = IknpSender::setup(&mut c0, &mut rng).unwrap();
        let mut s = FerretSender::with_policy(iknp, [9; 32], policy);
        let mut qs = Vec::new();
        let mut seen = Vec::new();
        for n in sizes {
            s.fill(&mut c0, n).unwrap();
            let buffered = s.buffered();
            seen.push(buffered);
            qs.push(s.extend(&mut c0, n).unwrap());
            // Slack: one bin of the large set per iteration the request could need.
            let slack = (1 << policy.large.log_bin) * (1 + n / policy.large.net());
            assert!(
                buffered >= n && buffered < n + slack,
                "asked {n}, buffered {buffered}"
            );
        }
        let (ts, st) = h.join().unwrap();
        assert_eq!(st.served, sizes.iter().sum::<usize>() as u64);
        assert_eq!(st.made - st.served, s.buffered() as u64);
        assert!(st.iterations_large > 0 && st.iterations_small > 0);
        let delta = s.delta();
        for ((q, (b, t)), mine) in qs.iter().zip(&ts).zip(&seen) {
            assert_eq!(b, mine, "both sides buffer the same count");
            for (a, x) in q.iter().zip(t) {
                assert_eq!(*x, *a ^ delta.and_bit(x.lsb()));
            }
        }
    }

    /// `fill_last` buffers less than one bin beyond the request and keeps no full reserve; a
    /// request after it still works (the reserve is rebuilt from IKNP), and every COT is correct.
    #[test]
    fn fill_background_serves_the_lead_then_waits_for_the_rest() {
        // The lead (and the background iteration's reserve) by a large iteration now, the rest by
        // another whose local work runs on a thread; requests within the lead do not wait for
        // it, the first one beyond does, and later ones rebuild the reserve as after fill_last.
        let policy = TOY;
        // The first request, within the lead, already exceeds TOY's threshold of served COTs.
        let (lead, n) = (12_000, 30_000);
        let sizes = [11_000, 2_000, 9_000, 8_000, 4_000];
        let (mut c0, mut c1) = MemoryChannel::pair();
        let h = std::thread::spawn(move || {
            let mut rng = ChaCha20Rng::seed_from_u64(8);
            let iknp = IknpReceiver::setup(&mut c1, &mut rng).unwrap();
            let mut r = FerretReceiver::with_policy(iknp, policy);
            r.fill_background(&mut c1, lead, n).unwrap();
            r.start_background();
            let mut out = vec![r.extend(&mut c1, sizes[0]).unwrap()];
            r.fill_background(&mut c1, lead, n - sizes[0]).unwrap();
            out.extend(sizes[1..].iter().map(|&k| r.extend(&mut c1, k).unwrap()));
            out
        });
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        let iknp = IknpSender::setup(&mut c0, &mut rng).unwrap();
        let mut s = FerretSender::with_policy(iknp, [4; 32], policy);
        s.fill_background(&mut c0, lead, n).unwrap();
        s.start_background();
        let (ready, pending) = (s.buffered(), s.pool.pending());
        assert!(
            ready >= lead && pending > 0,
            "ready {ready}, pending {pending}"
        );
        assert!(ready + pending >= n && ready + pending < n + (1 << policy.large.log_bin));
        // The lead reaches TOY's threshold: one large iteration makes it (and keeps the
        // reserve), the other computes in the background.
        assert_eq!(s.stats().iterations_large, 2);
        let mut qs = Vec::new();
        for (i, &k) in sizes.iter().enumerate() {
            qs.push(s.extend(&mut c0, k).unwrap());
            if i == 0 {
                assert_eq!(
                    s.pool.pending(),
                    pending,
                    "a request within the lead waits for nothing"
                );
                // What is ready or computing covers the rest: this joins and generates nothing.
                let before = s.stats();
                s.fill_background(&mut c0, lead, n - k).unwrap();
                let after = s.stats();
                assert_eq!(s.pool.pending(), 0);
                assert_eq!(
                    (after.iknp_cots, after.bins),
                    (before.iknp_cots, before.bins)
                );
            }
        }
        assert_eq!(s.pool.pending(), 0);
        let ts = h.join().unwrap();
        let delta = s.delta();
        for (q, t) in qs.iter().zip(&ts) {
            assert_eq!(q.len(), t.len());
            for (a, x) in q.iter().zip(t) {
                assert!(!a.lsb());
                assert_eq!(*x, *a ^ delta.and_bit(x.lsb()));
            }
        }
    }

    #[test]
    fn dropping_a_background_iteration_joins_it_or_never_starts_it() {
        let (mut c0, mut c1) = MemoryChannel::pair();
        let h = std::thread::spawn(move || {
            let mut rng = ChaCha20Rng::seed_from_u64(10);
            let iknp = IknpReceiver::setup(&mut c1, &mut rng).unwrap();
            let mut r = FerretReceiver::with_policy(iknp, TOY);
            r.fill_background(&mut c1, 100, 15_000).unwrap();
            r.pool.pending()
        });
        let mut rng = ChaCha20Rng::seed_from_u64(9);
        let iknp = IknpSender::setup(&mut c0, &mut rng).unwrap();
        let mut s = FerretSender::with_policy(iknp, [5; 32], TOY);
        s.fill_background(&mut c0, 100, 15_000).unwrap();
        // A lead below the threshold: small iterations make it and the large reserve.
        assert_eq!(s.stats().iterations_large, 1);
        s.start_background();
        assert_eq!(s.pool.pending(), h.join().unwrap());
        assert!(s.pool.pending() > 0);
        drop(s);
    }

    #[test]
    fn fill_last_keeps_no_reserve_and_later_requests_work() {
        let policy = TOY;
        let (mut c0, mut c1) = MemoryChannel::pair();
        let h = std::thread::spawn(move || {
            let mut rng = ChaCha20Rng::seed_from_u64(6);
            let iknp = IknpReceiver::setup(&mut c1, &mut rng).unwrap();
            let mut r = FerretReceiver::with_policy(iknp, policy);
            r.fill_last(&mut c1, 30_000).unwrap();
            let a = r.extend(&mut c1, 30_000).unwrap();
            let b = r.extend(&mut c1, 5_000).unwrap();
            (a, b)
        });
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        let iknp = IknpSender::setup(&mut c0, &mut rng).unwrap();
        let mut s = FerretSender::with_policy(iknp, [3; 32], policy);
        s.fill_last(&mut c0, 30_000).unwrap();
        let buffered = s.buffered();
        assert!(
            (30_000..30_000 + (1 << policy.large.log_bin)).contains(&buffered),
            "buffered {buffered}"
        );
        assert!(s.pool.reserve.len() < policy.large.reserve());
        let iknp_before = s.stats().iknp_cots;
        let qa = s.extend(&mut c0, 30_000).unwrap();
        let qb = s.extend(&mut c0, 5_000).unwrap();
        assert!(
            s.stats().iknp_cots > iknp_before,
            "reserve rebuilt from IKNP"
        );
        let (ta, tb) = h.join().unwrap();
        let delta = s.delta();
        for (q, t) in [(qa, ta), (qb, tb)] {
            assert_eq!(q.len(), t.len());
            for (a, x) in q.iter().zip(&t) {
                assert_eq!(*x, *a ^ delta.and_bit(x.lsb()));
            }
        }
    }

    /// The in-place level expansion equals the plain definition (children of every parent by
    /// `mmo_two`, left at 2i, right at 2i+1) and returns the XORs of each side.
    #[test]
    fn ggm_level_matches_its_definition() {
        let prims = Prims::new();
        for size in [1usize, 3, 31, 32, 33, 100, 256] {
            let parents: Vec<Block> = (0..size as u128)
                .map(|i| Block(i.wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835) ^ 7))
                .collect();
            let (mut l, mut r) = (vec![Block::ZERO; size], vec![Block::ZERO; size]);
            prims.ggm[0].mmo_two(&prims.ggm[1], &parents, &mut l, &mut r);
            let mut nodes = vec![Block::ZERO; 2 * size];
            nodes[..size].copy_from_slice(&parents);
            let k = prims.expand_level(&mut nodes, size);
            for i in 0..size {
                assert_eq!(
                    (nodes[2 * i], nodes[2 * i + 1]),
                    (l[i], r[i]),
                    "size {size}"
                );
            }
            let x = |v: &[Block]| v.iter().fold(Block::ZERO, |a, &b| a ^ b);
            assert_eq!(k, [x(&l), x(&r)]);
        }
    }

    #[test]
    #[ignore = "full-size Ferret parameters: ~0.5 GiB, seconds"]
    fn full_size_parameters() {
        session(Policy::FERRET, &[1000, LARGE_THRESHOLD + 1, 10]);
    }

    #[test]
    #[ignore = "timing probe"]
    fn probe_component_times() {
        let aes = Aes::new(Block(1));
        let mut v = vec![Block(3); 1 << 22];
        let c = cpu_ns();
        aes.encrypt_many(&mut v);
        eprintln!(
            "AES: {} ns per block (cpu)",
            (cpu_ns() - c) as f64 / (1u64 << 22) as f64
        );
        let mut w = vec![Block(3); 4096];
        let c = cpu_ns();
        for _ in 0..1000 {
            aes.encrypt_many(&mut w);
        }
        eprintln!(
            "AES in L1: {} ns per block (cpu)",
            (cpu_ns() - c) as f64 / (4096.0 * 1000.0)
        );
        let (mut l, mut r) = (vec![Block(0); 4096], vec![Block(0); 4096]);
        let c = cpu_ns();
        for _ in 0..1000 {
            aes.mmo_two(&aes, &w, &mut l, &mut r);
        }
        eprintln!(
            "mmo_two in L1: {} ns per block (cpu)",
            (cpu_ns() - c) as f64 / (4096.0 * 1000.0 * 2.0)
        );
        let p = LpnParams::FERRET_LARGE;
        let prims = Prims::new();
        let mut out = vec![Block::ZERO; p.n];
        let c = cpu_ns();
        for leaves in out.chunks_exact_mut(1 << p.log_bin) {
            leaves[0] = Block(12345);
            for l in 0..p.log_bin as usize {
                prims.expand_level(leaves, 1 << l);
            }
        }
        eprintln!("GGM: {} ms cpu", (cpu_ns() - c) / 1_000_000);
        let secret: Vec<Block> = (0..p.k as u128).map(Block).collect();
        let c = cpu_ns();
        prims.lpn_encode(&secret, &mut out);
        eprintln!("LPN: {} ms cpu", (cpu_ns() - c) / 1_000_000);
        let small: Vec<Block> = (0..36_288u128).map(Block).collect();
        let c = cpu_ns();
        prims.lpn_encode(&small, &mut out);
        eprintln!("LPN (small k): {} ms cpu", (cpu_ns() - c) / 1_000_000);
    }
}
