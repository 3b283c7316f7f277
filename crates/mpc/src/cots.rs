//! Random correlated OTs held by one party, and the derandomized OTs built on them.
//!
//! A random COT gives the sender `q` and the global Δ, the receiver a random bit `b = lsb(t)` and
//! `t = q ⊕ b·Δ`. Hashing with [`crate::hash::tccr_many`] turns it into a random OT with pads
//! `p_0 = H(q)`, `p_1 = H(q ⊕ Δ)`, of which the receiver knows `p_b = H(t)`. Two kinds of chosen
//! OT are built on that, each a sans-IO core: the caller moves the bytes.
//!
//! * **Affine 1-of-2 OT** (one COT): the receiver has a choice bit `c`, the sender a function `f`
//!   on {0, 1} (any such function is affine over the group); they end with shares of `f(c)`. The
//!   sender's single message `y = p_0 − p_1 + f(1) − f(0)` does not depend on the receiver's
//!   derandomization bit `e = c ⊕ b`, so both messages travel in the same flight: the parties
//!   first share `f(b)` and then fix the shares with `e` (`f(b ⊕ 1) = f(0) + f(1) − f(b)`).
//!   Cost: 1 bit + one group element. [CrypTFlow2 §3 (COT); Gilboa's correlated OT]
//! * **1-of-N OT**, N = 2^m, from m COTs: pads `P_j = Σ_k H(x_{k,j_k}, τ_k ‖ ⌊j/per⌋)[j mod per]`
//!   with `x_{k,0} = q_k`, `x_{k,1} = q_k ⊕ Δ` and `[s]` the s-th group-sized slice of the 128-bit
//!   hash (per = how many fit, 1 for Z_p) [Naor–Pinkas 1-out-of-N from 1-out-of-2; the tweak and
//!   the slice bind every pad to its index j]. For j ≠ c' some digit k has j_k ≠ c'_k, and the
//!   slice (k, ⌊j/per⌋, j mod per) of the hash the receiver cannot compute enters P_j and no other
//!   pad, so the N − 1 pads it does not know are jointly uniform. The sender hashes each
//!   (k, block, b) once: 2m hashes per instance for N ≤ per (the comparison leaves) instead of
//!   N·m. The receiver sends `e = c ⊕ c'` (m bits, c' its random
//!   index); the sender takes its share `σ = P_e + f(0)` and sends `y_v = P_{v⊕e} + f(v) − σ` for
//!   v = 1..N−1 (`y_0 = 0` is implied). Cost: m bits + (N−1) group elements.
//!
//! The group is XOR on w-bit strings (Boolean shares) or addition mod 2^w or mod an odd p
//! (arithmetic shares), see [`Group`].

use ot::Block;

use rayon::prelude::*;

use crate::bits::{mask, BitReader, BitWriter};
use crate::hash::{tccr_many, tccr_seq};

/// Instances hashed per chunk (stack buffers).
const HCH: usize = 256;

/// Instances per parallel block (a multiple of [`HCH`] and [`CH`], so hash batches stay full).
const PAR: usize = 8192;

/// Runs `f(range, writer)` over consecutive blocks of [`PAR`] instances, in parallel when there
/// are several; appends the blocks' writers to `out` in order and returns their results in order.
/// The messages are those of one sequential pass: every instance's hashes use its own tweak.
fn par_blocks<T: Send>(
    n: usize,
    out: &mut BitWriter,
    f: impl Fn(std::ops::Range<usize>, &mut BitWriter) -> T + Sync,
) -> Vec<T> {
    if n <= PAR {
        return vec![f(0..n, out)];
    }
    let blocks: Vec<(T, BitWriter)> = (0..n.div_ceil(PAR))
        .into_par_iter()
        .map(|b| {
            let mut w = BitWriter::default();
            let t = f(b * PAR..((b + 1) * PAR).min(n), &mut w);
            (t, w)
        })
        .collect();
    blocks
        .into_iter()
        .map(|(t, w)| {
            out.append(w);
            t
        })
        .collect()
}
use crate::{MpcError, Result};

/// Tweak bit marking COTs whose sender is P1 (P0's COTs have it clear), so the two directions
/// never share a tweak.
pub(crate) const DIR_P1: u128 = 1 << 127;

/// The group of an OT message and of the shares it produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Group {
    /// w-bit strings under XOR, 1 ≤ w ≤ 64.
    Xor(u32),
    /// Z_{2^w} under addition, 1 ≤ w ≤ 64.
    Pow2(u32),
    /// Z_p under addition, 3 ≤ p < 2^62.
    Odd(u64),
}

impl Group {
    /// Bits of one element on the wire.
    #[inline]
    pub fn width(self) -> u32 {
        match self {
            Group::Xor(w) | Group::Pow2(w) => w,
            Group::Odd(p) => 64 - (p - 1).leading_zeros(),
        }
    }

    /// A pad from a 128-bit hash (for Z_p, statistically 2^{-66}-close to uniform).
    #[inline]
    pub fn pad(self, h: u128) -> u64 {
        match self {
            Group::Xor(w) | Group::Pow2(w) => (h as u64) & mask(w),
            Group::Odd(p) => (h % p as u128) as u64,
        }
    }

    #[inline]
    pub fn add(self, a: u64, b: u64) -> u64 {
        match self {
            Group::Xor(_) => a ^ b,
            Group::Pow2(w) => a.wrapping_add(b) & mask(w),
            Group::Odd(p) => {
                let s = a + b;
                if s >= p {
                    s - p
                } else {
                    s
                }
            }
        }
    }

    #[inline]
    pub fn neg(self, a: u64) -> u64 {
        match self {
            Group::Xor(_) => a,
            Group::Pow2(w) => a.wrapping_neg() & mask(w),
            Group::Odd(p) => {
                if a == 0 {
                    0
                } else {
                    p - a
                }
            }
        }
    }

    #[inline]
    pub fn sub(self, a: u64, b: u64) -> u64 {
        self.add(a, self.neg(b))
    }

    /// Reads one element sent by the peer, rejecting non-reduced values mod p.
    #[inline]
    fn read(self, r: &mut BitReader<'_>, what: &'static str, index: usize) -> Result<u64> {
        let v = r.get(self.width());
        if let Group::Odd(p) = self {
            if v >= p {
                return Err(MpcError::ValueOutOfRange {
                    what,
                    index,
                    value: v,
                    bits: self.width(),
                });
            }
        }
        Ok(v)
    }
}

/// A batch of random COTs on the sender side, consumed front to back.
pub(crate) struct SendCots {
    delta: u128,
    q: Vec<u128>,
    /// Tweak of `q[0]`: the session-unique COT index plus the direction bit.
    base: u128,
    pos: usize,
}

/// A batch of random COTs on the receiver side, consumed front to back.
pub(crate) struct RecvCots {
    t: Vec<u128>,
    base: u128,
    pos: usize,
}

impl SendCots {
    pub fn new(delta: Block, q: Vec<Block>, base: u128) -> SendCots {
        SendCots {
            delta: delta.0,
            q: q.into_iter().map(|b| b.0).collect(),
            base,
            pos: 0,
        }
    }

    /// Δ, the correlation of every COT of the batch.
    pub fn delta(&self) -> u128 {
        self.delta
    }

    /// The next `n` COTs: their `q` and the tweak of the first.
    pub fn take(&mut self, n: usize) -> (&[u128], u128) {
        assert!(
            self.pos + n <= self.q.len(),
            "COT pool exhausted: protocol cost accounting is wrong"
        );
        let s = &self.q[self.pos..self.pos + n];
        let tw = self.base + self.pos as u128;
        self.pos += n;
        (s, tw)
    }

    pub fn is_exhausted(&self) -> bool {
        self.pos == self.q.len()
    }

    /// Moves the next `n` COTs into a batch of their own (same tweaks).
    pub fn split_front(&mut self, n: usize) -> SendCots {
        let delta = self.delta;
        let (q, tw) = self.take(n);
        SendCots {
            delta,
            q: q.to_vec(),
            base: tw,
            pos: 0,
        }
    }
}

impl Drop for SendCots {
    fn drop(&mut self) {
        // Secrets: the sender's COT strings and Δ.
        for x in self.q.iter_mut() {
            *x = 0;
        }
        self.delta = 0;
    }
}

impl RecvCots {
    pub fn new(t: Vec<Block>, base: u128) -> RecvCots {
        RecvCots {
            t: t.into_iter().map(|b| b.0).collect(),
            base,
            pos: 0,
        }
    }

    /// The next `n` COTs: their `t` and the tweak of the first.
    pub fn take(&mut self, n: usize) -> (&[u128], u128) {
        assert!(
            self.pos + n <= self.t.len(),
            "COT pool exhausted: protocol cost accounting is wrong"
        );
        let s = &self.t[self.pos..self.pos + n];
        let tw = self.base + self.pos as u128;
        self.pos += n;
        (s, tw)
    }

    pub fn is_exhausted(&self) -> bool {
        self.pos == self.t.len()
    }

    /// Moves the next `n` COTs into a batch of their own (same tweaks).
    pub fn split_front(&mut self, n: usize) -> RecvCots {
        let (t, tw) = self.take(n);
        RecvCots {
            t: t.to_vec(),
            base: tw,
            pos: 0,
        }
    }
}

impl Drop for RecvCots {
    fn drop(&mut self) {
        for x in self.t.iter_mut() {
            *x = 0;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Affine 1-of-2 OT.

/// Sender state between its message and the receiver's derandomization bits.
pub(crate) struct AffineSender {
    group: Vec<Group>,
    /// Share of f(b) for the receiver's random bit b: f(0) − p_0.
    pre: Vec<u64>,
    /// f(0) + f(1).
    sum: Vec<u64>,
}

/// Receiver state between its derandomization bits and the sender's message.
pub(crate) struct AffineReceiver {
    group: Vec<Group>,
    b: Vec<u8>,
    pad: Vec<u64>,
    e: Vec<u8>,
}

/// Sender: writes `y_i = p_0 − p_1 + f1_i − f0_i` for every instance.
pub(crate) fn affine_send(
    cots: &mut SendCots,
    group: &(dyn Fn(usize) -> Group + Sync),
    f0: &[u64],
    f1: &[u64],
    out: &mut BitWriter,
) -> AffineSender {
    let n = f0.len();
    debug_assert_eq!(n, f1.len());
    let delta = cots.delta;
    let (q, tw) = cots.take(n);
    let parts = par_blocks(n, out, |range, out| {
        let mut st = AffineSender {
            group: Vec::with_capacity(range.len()),
            pre: Vec::with_capacity(range.len()),
            sum: Vec::with_capacity(range.len()),
        };
        let mut h0 = [0u128; HCH];
        let mut h1 = [0u128; HCH];
        for base in range.clone().step_by(HCH) {
            let qc = &q[base..(base + HCH).min(range.end)];
            let k = qc.len();
            tccr_seq(qc, 0, tw + base as u128, &mut h0[..k]);
            tccr_seq(qc, delta, tw + base as u128, &mut h1[..k]);
            for j in 0..k {
                let i = base + j;
                let g = group(i);
                let p0 = g.pad(h0[j]);
                let p1 = g.pad(h1[j]);
                let y = g.add(g.sub(p0, p1), g.sub(f1[i], f0[i]));
                out.put(y, g.width());
                st.pre.push(g.sub(f0[i], p0));
                st.sum.push(g.add(f0[i], f1[i]));
                st.group.push(g);
            }
        }
        st
    });
    let mut st = AffineSender {
        group: Vec::with_capacity(n),
        pre: Vec::with_capacity(n),
        sum: Vec::with_capacity(n),
    };
    for p in parts {
        st.group.extend(p.group);
        st.pre.extend(p.pre);
        st.sum.extend(p.sum);
    }
    st
}

impl AffineSender {
    /// Reads the receiver's bits `e_i` and returns the sender's shares of `f_i(c_i)`.
    pub fn finish(self, r: &mut BitReader<'_>) -> Vec<u64> {
        (0..self.pre.len())
            .map(|i| {
                let e = r.get(1);
                let g = self.group[i];
                if e == 1 {
                    g.sub(self.sum[i], self.pre[i])
                } else {
                    self.pre[i]
                }
            })
            .collect()
    }
}

/// Receiver: writes `e_i = c_i ⊕ b_i` for every instance.
pub(crate) fn affine_choose(
    cots: &mut RecvCots,
    group: &(dyn Fn(usize) -> Group + Sync),
    c: &[u8],
    out: &mut BitWriter,
) -> AffineReceiver {
    let n = c.len();
    let (t, tw) = cots.take(n);
    let parts = par_blocks(n, out, |range, out| {
        let mut st = AffineReceiver {
            group: Vec::with_capacity(range.len()),
            b: Vec::with_capacity(range.len()),
            pad: Vec::with_capacity(range.len()),
            e: Vec::with_capacity(range.len()),
        };
        let mut h = [0u128; HCH];
        for base in range.clone().step_by(HCH) {
            let tc = &t[base..(base + HCH).min(range.end)];
            let k = tc.len();
            tccr_seq(tc, 0, tw + base as u128, &mut h[..k]);
            for j in 0..k {
                let i = base + j;
                let g = group(i);
                let b = (tc[j] & 1) as u8;
                st.pad.push(g.pad(h[j]));
                let e = (c[i] & 1) ^ b;
                out.put(e as u64, 1);
                st.b.push(b);
                st.e.push(e);
                st.group.push(g);
            }
        }
        st
    });
    let mut st = AffineReceiver {
        group: Vec::with_capacity(n),
        b: Vec::with_capacity(n),
        pad: Vec::with_capacity(n),
        e: Vec::with_capacity(n),
    };
    for p in parts {
        st.group.extend(p.group);
        st.b.extend(p.b);
        st.pad.extend(p.pad);
        st.e.extend(p.e);
    }
    st
}

impl AffineReceiver {
    /// Reads the sender's `y_i` and returns the receiver's shares of `f_i(c_i)`.
    pub fn finish(self, r: &mut BitReader<'_>, what: &'static str) -> Result<Vec<u64>> {
        let mut out = Vec::with_capacity(self.pad.len());
        for i in 0..self.pad.len() {
            let g = self.group[i];
            let y = g.read(r, what, i)?;
            let v = if self.b[i] == 1 {
                g.add(self.pad[i], y)
            } else {
                self.pad[i]
            };
            out.push(if self.e[i] == 1 { g.neg(v) } else { v });
        }
        Ok(out)
    }
}

/// Bits on the wire of the sender's messages for instances with these groups.
pub(crate) fn affine_msg_bits(n: usize, group: &(dyn Fn(usize) -> Group + Sync)) -> u64 {
    (0..n).map(|i| group(i).width() as u64).sum()
}

// ---------------------------------------------------------------------------------------------
// 1-of-N OT, N = 2^m.

/// Tweak of COT `idx` for hash block `blk` (blk < 2^16, idx < 2^64).
#[inline]
fn tweak_j(tw: u128, blk: usize) -> u128 {
    tw | ((blk as u128) << 96)
}

const CH: usize = 128;

/// Where the pads of a 1-of-N OT come from. One hash `H(x_{k,b}, τ_k ‖ blk)` yields `per` pads of
/// the group side by side (`per` a power of two, `per·w ≤ 128` for w-bit strings and Z_{2^w};
/// 1 for Z_p, whose pad takes a whole hash), so index j takes slice `j mod per` of block
/// `blk = j / per`: the sender hashes each (k, blk, b) it needs once instead of once per j.
#[derive(Clone, Debug)]
struct PadPlan {
    m: usize,
    /// log2 of the pads per hash.
    log_per: usize,
    /// Hash blocks per COT: N / per.
    blocks: usize,
    w: u32,
}

impl PadPlan {
    fn new(m: u32, group: Group) -> PadPlan {
        let m = m as usize;
        let per_max = match group {
            Group::Xor(w) | Group::Pow2(w) => (128 / w.max(1)) as usize,
            Group::Odd(_) => 1,
        };
        // Largest power of two ≤ per_max, at most N.
        let log_per = (usize::BITS - 1 - per_max.leading_zeros()) as usize;
        let log_per = log_per.min(m);
        PadPlan {
            m,
            log_per,
            blocks: 1 << (m - log_per),
            w: group.width(),
        }
    }

    /// Slice `s` of hash `h` as a pad of `group`.
    #[inline]
    fn slice(&self, group: Group, h: u128, s: usize) -> u64 {
        if self.log_per == 0 {
            group.pad(h)
        } else {
            group.pad(h >> (s as u32 * self.w))
        }
    }

    /// Hashes the sender needs per instance, in the order [`PadPlan::entry`] indexes them: for
    /// digit k below log_per both values of b per block (the block's indices differ in bit k),
    /// else the one value bit k of every index in the block has.
    fn sender_hashes(&self) -> usize {
        self.log_per * 2 * self.blocks + (self.m - self.log_per) * self.blocks
    }

    /// Position of hash (k, blk, b) among an instance's [`PadPlan::sender_hashes`].
    #[inline]
    fn entry(&self, k: usize, blk: usize, b: usize) -> usize {
        if k < self.log_per {
            (k * self.blocks + blk) * 2 + b
        } else {
            self.log_per * 2 * self.blocks + (k - self.log_per) * self.blocks + blk
        }
    }

    /// The sender's (k, blk, b) in entry order.
    fn sender_inputs(&self) -> Vec<(usize, usize, usize)> {
        let mut v = Vec::with_capacity(self.sender_hashes());
        for k in 0..self.log_per {
            for blk in 0..self.blocks {
                v.push((k, blk, 0));
                v.push((k, blk, 1));
            }
        }
        for k in self.log_per..self.m {
            for blk in 0..self.blocks {
                v.push((k, blk, (blk >> (k - self.log_per)) & 1));
            }
        }
        debug_assert!(v
            .iter()
            .enumerate()
            .all(|(e, &(k, blk, b))| self.entry(k, blk, b) == e));
        v
    }
}

/// The sender's pads of one 1-of-N instance, a block of `per` pads at a time: block `blk`'s
/// pads are the lanes (w bits each) of one 128-bit word, the lane-wise group sum over the digits
/// k of hash (k, blk, bit k) — for k below `log_per` bit k varies with the lane, so that digit
/// contributes the lanes of (k, blk, 0) and of (k, blk, 1) under complementary lane masks. The
/// same pads as [`PadPlan::slice`] summed per index, with `m` word operations per block instead
/// of `m` per pad. Only for groups whose pads share a hash (`log_per > 0`: w-bit strings and
/// Z_{2^w}).
struct Lanes {
    group: Group,
    w: u32,
    /// The top bit of every lane (for the carry-free lane-wise addition of Z_{2^w}).
    top: u128,
    /// For digit k < log_per: the lanes whose index has bit k clear, and set.
    masks: Vec<[u128; 2]>,
}

impl Lanes {
    fn new(plan: &PadPlan, group: Group) -> Option<Lanes> {
        if plan.log_per == 0 || matches!(group, Group::Odd(_)) {
            return None;
        }
        let (w, per) = (plan.w, 1usize << plan.log_per);
        let lane = |s: usize| -> u128 { (mask(w) as u128) << (s as u32 * w) };
        let masks = (0..plan.log_per)
            .map(|k| {
                let mut m = [0u128; 2];
                for s in 0..per {
                    m[(s >> k) & 1] |= lane(s);
                }
                m
            })
            .collect();
        let top = (0..per).fold(0u128, |t, s| t | 1u128 << (s as u32 * w + w - 1));
        Some(Lanes {
            group,
            w,
            top,
            masks,
        })
    }

    /// Lane-wise a + b: XOR for strings; for Z_{2^w}, the low w − 1 bits of each lane added
    /// (their sum stays below 2^w, so no carry leaves a lane) and the top bits XORed in.
    #[inline]
    fn add(&self, a: u128, b: u128) -> u128 {
        match self.group {
            Group::Xor(_) => a ^ b,
            _ => (a & !self.top).wrapping_add(b & !self.top) ^ ((a ^ b) & self.top),
        }
    }

    /// Fills `pads` (2^m entries) from the instance's hashes `hs` in [`PadPlan::entry`] order.
    fn pads(&self, plan: &PadPlan, hs: &[u128], pads: &mut [u64]) {
        let (lp, blocks) = (plan.log_per, plan.blocks);
        let per = 1usize << lp;
        let mw = mask(self.w);
        for (blk, out) in pads.chunks_exact_mut(per).enumerate() {
            let mut acc = 0u128;
            for (k, m) in self.masks.iter().enumerate() {
                let e = (k * blocks + blk) * 2;
                acc = self.add(acc, (hs[e] & m[0]) | (hs[e + 1] & m[1]));
            }
            for k in lp..plan.m {
                acc = self.add(acc, hs[plan.entry(k, blk, 0)]);
            }
            for (s, p) in out.iter_mut().enumerate() {
                *p = (acc >> (s as u32 * self.w)) as u64 & mw;
            }
        }
    }
}

/// Receiver state of a 1-of-N batch between its choice message and the sender's answer.
pub(crate) struct OneOfNReceiver {
    m: u32,
    group: Group,
    c: Vec<u64>,
    pad: Vec<u64>,
}

/// Receiver: writes `e_i = c_i ⊕ c'_i` (m bits each). `c_i < 2^m`.
pub(crate) fn one_of_n_choose(
    cots: &mut RecvCots,
    m: u32,
    group: Group,
    c: &[u64],
    out: &mut BitWriter,
) -> OneOfNReceiver {
    let n = c.len();
    let mk = m as usize;
    let plan = PadPlan::new(m, group);
    let (t, tw) = cots.take(n * mk);
    let parts = par_blocks(n, out, |range, out| {
        let mut pad = Vec::with_capacity(range.len());
        let mut xs = Vec::with_capacity(CH * mk);
        let mut tws = Vec::with_capacity(CH * mk);
        let mut cps = Vec::with_capacity(CH);
        for start in range.clone().step_by(CH) {
            let end = (start + CH).min(range.end);
            xs.clear();
            tws.clear();
            cps.clear();
            for i in start..end {
                let ts = &t[i * mk..(i + 1) * mk];
                let cp: usize = ts
                    .iter()
                    .enumerate()
                    .map(|(k, &x)| ((x & 1) as usize) << k)
                    .sum();
                for (k, &x) in ts.iter().enumerate() {
                    xs.push(x);
                    tws.push(tweak_j(tw + (i * mk + k) as u128, cp >> plan.log_per));
                }
                cps.push(cp);
                out.put(c[i] ^ cp as u64, m);
            }
            tccr_many(&mut xs, &tws);
            for (chunk, &cp) in xs.chunks(mk).zip(&cps) {
                let s = cp & ((1 << plan.log_per) - 1);
                pad.push(
                    chunk
                        .iter()
                        .fold(0u64, |acc, &h| group.add(acc, plan.slice(group, h, s))),
                );
            }
        }
        pad
    });
    OneOfNReceiver {
        m,
        group,
        c: c.to_vec(),
        pad: parts.concat(),
    }
}

/// Sender: reads the receiver's `e_i` and writes `y_{i,v}` for v = 1..N−1; returns its shares.
/// `table(i, v)` is f_i(v), an element of `group`.
pub(crate) fn one_of_n_send(
    cots: &mut SendCots,
    m: u32,
    group: Group,
    n: usize,
    r: &mut BitReader<'_>,
    table: &(dyn Fn(usize, u64) -> u64 + Sync),
    out: &mut BitWriter,
) -> Vec<u64> {
    let mk = m as usize;
    let nn = 1usize << m;
    let plan = PadPlan::new(m, group);
    let inputs = plan.sender_inputs();
    let per_inst = inputs.len();
    let per_mask = (1usize << plan.log_per) - 1;
    let delta = cots.delta;
    let (q, tw) = cots.take(n * mk);
    let lanes = Lanes::new(&plan, group);
    let es: Vec<usize> = (0..n).map(|_| r.get(m) as usize).collect();
    let parts = par_blocks(n, out, |range, out| {
        let mut shares = Vec::with_capacity(range.len());
        let mut xs = Vec::with_capacity(CH * per_inst);
        let mut tws = Vec::with_capacity(CH * per_inst);
        let mut pads = vec![0u64; nn];
        for start in range.clone().step_by(CH) {
            let end = (start + CH).min(range.end);
            xs.clear();
            tws.clear();
            for i in start..end {
                let qs = &q[i * mk..(i + 1) * mk];
                for &(k, blk, b) in &inputs {
                    xs.push(if b == 1 { qs[k] ^ delta } else { qs[k] });
                    tws.push(tweak_j(tw + (i * mk + k) as u128, blk));
                }
            }
            tccr_many(&mut xs, &tws);
            for (ii, i) in (start..end).enumerate() {
                let hs = &xs[ii * per_inst..(ii + 1) * per_inst];
                match &lanes {
                    Some(l) => l.pads(&plan, hs, &mut pads),
                    None => {
                        for (j, pj) in pads.iter_mut().enumerate() {
                            let (blk, s) = (j >> plan.log_per, j & per_mask);
                            *pj = (0..mk).fold(0u64, |acc, k| {
                                let h = hs[plan.entry(k, blk, (j >> k) & 1)];
                                group.add(acc, plan.slice(group, h, s))
                            });
                        }
                    }
                }
                let e = es[i];
                let sigma = group.add(pads[e], table(i, 0));
                for v in 1..nn {
                    let y = group.sub(group.add(pads[v ^ e], table(i, v as u64)), sigma);
                    out.put(y, group.width());
                }
                shares.push(sigma);
            }
        }
        shares
    });
    parts.concat()
}

impl OneOfNReceiver {
    /// Reads the sender's answer and returns the receiver's shares of f_i(c_i).
    pub fn finish(self, r: &mut BitReader<'_>, what: &'static str) -> Result<Vec<u64>> {
        let nn = 1usize << self.m;
        let g = self.group;
        if !matches!(g, Group::Odd(_)) {
            // Every w-bit string is an element: read the chosen entry of each instance where
            // it lies (entries v = 1 … N−1, instance after instance) and move past the rest.
            let (w, start) = (g.width() as u64, r.at());
            let per = (nn as u64 - 1) * w;
            let out = self
                .c
                .iter()
                .zip(&self.pad)
                .enumerate()
                .map(|(i, (&c, &pad))| {
                    let yc = if c == 0 {
                        0
                    } else {
                        r.field_at(start + i as u64 * per + (c - 1) * w, w as u32)
                    };
                    g.sub(yc, pad)
                })
                .collect();
            r.skip(self.c.len() as u64 * per);
            return Ok(out);
        }
        let mut out = Vec::with_capacity(self.c.len());
        for i in 0..self.c.len() {
            let mut yc = 0;
            for v in 1..nn {
                let y = g.read(r, what, i)?;
                if v as u64 == self.c[i] {
                    yc = y;
                }
            }
            out.push(g.sub(yc, self.pad[i]));
        }
        Ok(out)
    }
}

/// Bits of the sender's answer for `n` instances.
pub(crate) fn one_of_n_answer_bits(n: usize, m: u32, group: Group) -> u64 {
    n as u64 * ((1u64 << m) - 1) * group.width() as u64
}

#[cfg(test)]
pub(crate) mod dealer {
    //! Test-only source of COT correlations for unit tests of the sans-IO cores. The protocols
    //! themselves always draw COTs from the `ot` crate.
    use super::*;
    use rand::{Rng, SeedableRng};

    pub fn cots(n: usize, seed: u64) -> (SendCots, RecvCots) {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
        let delta: u128 = rng.gen::<u128>() | 1;
        let q: Vec<Block> = (0..n).map(|_| Block(rng.gen::<u128>() & !1)).collect();
        let t: Vec<Block> = q
            .iter()
            .map(|x| Block(if rng.gen::<bool>() { x.0 ^ delta } else { x.0 }))
            .collect();
        (
            SendCots::new(Block(delta), q, 5 << 20),
            RecvCots::new(t, 5 << 20),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// The word-parallel pads equal the per-index sums of slices, for every group with shared
    /// hashes and every m up to 9.
    #[test]
    fn lane_pads_equal_per_index_sums() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(11);
        for group in [
            Group::Xor(1),
            Group::Xor(2),
            Group::Xor(7),
            Group::Pow2(12),
            Group::Pow2(37),
            Group::Pow2(64),
        ] {
            for m in 1..=9u32 {
                let plan = PadPlan::new(m, group);
                let lanes = Lanes::new(&plan, group).expect("shared hashes");
                let hs: Vec<u128> = (0..plan.sender_hashes()).map(|_| rng.gen()).collect();
                let mut pads = vec![0u64; 1 << m];
                lanes.pads(&plan, &hs, &mut pads);
                for (j, &p) in pads.iter().enumerate() {
                    let (blk, s) = (j >> plan.log_per, j & ((1 << plan.log_per) - 1));
                    let want = (0..m as usize).fold(0u64, |acc, k| {
                        let h = hs[plan.entry(k, blk, (j >> k) & 1)];
                        group.add(acc, plan.slice(group, h, s))
                    });
                    assert_eq!(p, want, "{group:?} m {m} j {j}");
                }
            }
        }
    }

    #[test]
    fn affine_ot_core_all_groups() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
        for g in [
            Group::Xor(2),
            Group::Pow2(37),
            Group::Pow2(64),
            Group::Odd((1 << 61) - 1),
        ] {
            for n in [300, 2 * PAR + 77] {
                let (mut s, mut r) = dealer::cots(n, 2);
                let f0: Vec<u64> = (0..n).map(|_| g.pad(rng.gen())).collect();
                let f1: Vec<u64> = (0..n).map(|_| g.pad(rng.gen())).collect();
                let c: Vec<u8> = (0..n).map(|_| rng.gen::<u8>() & 1).collect();
                let gf = |_| g;
                let mut ws = BitWriter::default();
                let st_s = affine_send(&mut s, &gf, &f0, &f1, &mut ws);
                let mut wr = BitWriter::default();
                let st_r = affine_choose(&mut r, &gf, &c, &mut wr);
                let (bs, bits_s) = (ws.bits(), ws.finish());
                let (br, bits_r) = (wr.bits(), wr.finish());
                let out_s = st_s.finish(&mut BitReader::new(&bits_r, br, "e").unwrap());
                let out_r = st_r
                    .finish(&mut BitReader::new(&bits_s, bs, "y").unwrap(), "y")
                    .unwrap();
                for i in 0..n {
                    let want = if c[i] == 1 { f1[i] } else { f0[i] };
                    assert_eq!(g.add(out_s[i], out_r[i]), want, "{g:?} {i}");
                }
            }
        }
    }

    #[test]
    fn one_of_n_core() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(3);
        for (m, g) in [
            (1, Group::Xor(2)),
            (2, Group::Xor(2)),
            (2, Group::Pow2(12)),
            (3, Group::Odd(1_000_003)),
            (4, Group::Xor(1)),
            // Several pads per hash with several hash blocks per COT (per = 2, 4, 64).
            (3, Group::Pow2(64)),
            (6, Group::Pow2(37)),
            (7, Group::Xor(2)),
        ] {
            for n in [200, 2 * PAR + 77] {
                let (mut s, mut r) = dealer::cots(n * m as usize, 4);
                let tab: Vec<Vec<u64>> = (0..n)
                    .map(|_| (0..1 << m).map(|_| g.pad(rng.gen())).collect())
                    .collect();
                let c: Vec<u64> = (0..n).map(|_| rng.gen_range(0..1u64 << m)).collect();
                let mut wr = BitWriter::default();
                let st = one_of_n_choose(&mut r, m, g, &c, &mut wr);
                let (br, er) = (wr.bits(), wr.finish());
                let mut ws = BitWriter::default();
                let sh_s = one_of_n_send(
                    &mut s,
                    m,
                    g,
                    n,
                    &mut BitReader::new(&er, br, "e").unwrap(),
                    &|i, v| tab[i][v as usize],
                    &mut ws,
                );
                assert_eq!(ws.bits(), one_of_n_answer_bits(n, m, g));
                let (bs, ys) = (ws.bits(), ws.finish());
                let sh_r = st
                    .finish(&mut BitReader::new(&ys, bs, "y").unwrap(), "y")
                    .unwrap();
                for i in 0..n {
                    assert_eq!(g.add(sh_s[i], sh_r[i]), tab[i][c[i] as usize]);
                }
            }
        }
    }
}
