//! Padded convolution with channel packing and scalar weights (Hyena's idea; design, proof and
//! departures in docs/protocols/hyena.md).
//!
//! **Layout (channel-minor).** In row ρ of a ciphertext, slot `s = pos·c_n + c` holds channel `c`
//! of the row's `c_n` channels at position `pos = h'·W' + w'` of its zero-padded H'×W' map. A slot
//! vector that depends only on (row, `s mod p`), `p = max(c_n, 2)`, is the plaintext
//! `g(X^{N/2p})` with `2p` coefficients (the slots of a row are the powers of the generator 3
//! modulo 2N, and those of one class mod p are a coset of the subgroup that fixes `X^{N/2p}`):
//! per-channel weights are a polynomial of `2p` terms instead of N, its NTT form takes one value
//! per run of `N/2p` coefficients (computed from the `2p` weights by two small transforms, never
//! encoded), and `‖g‖₁ ≤ 2p·t/2` where a conventional plaintext has `N·t/2`.
//!
//! **Convolution.** Output slot (pos, c_o) of `rot_r(X)` reads input slot `pos·c_n + c_o + r`:
//! channel `(c_o + r) mod c_n` at position `pos + ⌊(c_o + r)/c_n⌋`. So each pair (input channel
//! c_i, tap offset d = a·W' + b) of output channel c_o is reached by exactly one rotation
//! `r = d·c_n + c_i − c_o`, and one rotated copy serves every output channel at once:
//!
//! ```text
//! y = Σ_r rot_r(X) ⊙ P_r,     P_r[row, c_o] = w[o, c_i, tap(d)]   (0 where no such pair)
//! ```
//!
//! BSGS: `r = base + γ + β` with `β = (r − base) mod B`, γ a multiple of B and base 0 (the
//! babies, and so their keys, the same for every layer with that B) or r_min when that saves
//! enough rotations;
//! `rot_r(X) ⊙ P = rot_γ(rot_β(X) ⊙ rot_{−γ}(P))` and `rot_{−γ}(P)` is again per-channel. The B
//! baby rotations of each input copy (as sent, and row-swapped when output and input channels sit
//! in different rows) are hoisted; each output ciphertext rotates once per giant step it uses.
//! Every product is a multiply-accumulate over the runs of the plaintext's NTT form
//! (`math::lazy`: Shoup products on AVX-512, 128-bit sums reduced once per output elsewhere).

use math::lazy::LazyAcc;
use math::{Modulus, Representation};
use rayon::prelude::*;
use rlwe::{BatchEncoder, Ciphertext, Evaluator, GaloisKeys, PlaintextNtt};

use crate::{Conv2dSpec, LinearError};

/// A hoisted rotation's time relative to a plain one (BENCHMARKS.md § Lattice core), for
/// choosing the baby-step count.
const HOISTED_COST: f64 = 0.52;

/// The rotation time babies aligned to a layer's own r_min must save before they are preferred
/// to babies at r mod B, whose Galois keys every layer with the same B shares.
pub const ALIGNED_MARGIN: f64 = 0.15;

/// Operation counts of [`PaddedConv::apply`], from the shape alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PaddedCounts {
    /// Lazy multiply-accumulates (each over 2·L·N words): the present (output ciphertext,
    /// rotation, input copy) triples.
    pub terms: usize,
    /// The most terms summed into one output ciphertext (for the noise bound).
    pub max_terms_per_output: usize,
    /// Key-switched rotations: hoisted baby steps and per-output giant steps.
    pub rotations: usize,
    /// The most giant-step rotations on one output's path.
    pub max_giants_per_output: usize,
    /// Hoisted baby-step rotations per input ciphertext (the babies some term reads, less the
    /// identity).
    pub hoisted_per_input: usize,
    /// The most terms of one giant step over all outputs (their run values are held at once).
    pub max_terms_per_giant: usize,
}

/// The channel-minor layout of one convolution: which (output ciphertext v, rotation r, input
/// ciphertext u, copy s) terms exist, decided by the shape and groups, never by weight values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PaddedLayout {
    spec: Conv2dSpec,
    /// Slots per row (N/2).
    n: usize,
    /// Channels per row (a power of two).
    c_n: usize,
    /// 2: row ρ of a ciphertext carries channels ρ·c_n.. of its 2·c_n; 1: both rows alike.
    rows: usize,
    /// Input copies: 2 when some output reads an input of the other row (row-swapped copy).
    copies: usize,
    in_cts: usize,
    out_cts: usize,
    baby: usize,
    /// The smallest rotation, −(c_n − 1); rotations span `r_min..r_min + span`.
    r_min: i64,
    /// The babies' base: rotation r is base + γ + b with b = (r − base) mod B.
    base: i64,
    span: usize,
    /// `used[((v·in_cts + u)·copies + s)·span + (r − r_min)]`.
    used: Vec<bool>,
    /// `read[s·span + (r − r_min)]`: some term reads copy s at rotation r.
    read: Vec<bool>,
    /// `wanted[v·span + (r − r_min)]`: output ciphertext v has a term at rotation r (the index
    /// the baby-step search and the giant-step counts scan).
    wanted: Vec<bool>,
}

impl PaddedLayout {
    /// The layout of `spec` in rows of `n` slots, with the cheapest baby-step count B (a power
    /// of two) and base: babies at r mod B (base 0: the same rotations, hence Galois keys, for
    /// every layer with this B) unless babies aligned to r_min save more than
    /// [`ALIGNED_MARGIN`] of the rotation time.
    pub fn new(spec: Conv2dSpec, n: usize) -> Result<PaddedLayout, LinearError> {
        let mut l = Self::shape(spec, n)?;
        let mut best = [(f64::INFINITY, 1); 2];
        for (i, base) in [0, l.r_min].into_iter().enumerate() {
            l.base = base;
            let mut b = 1;
            while b <= l.span.next_power_of_two() {
                l.baby = b;
                let c = l.rotation_cost();
                if c < best[i].0 {
                    best[i] = (c, b);
                }
                b *= 2;
            }
        }
        let aligned = best[1].0 < (1.0 - ALIGNED_MARGIN) * best[0].0;
        l.base = if aligned { l.r_min } else { 0 };
        l.baby = best[usize::from(aligned)].1;
        Ok(l)
    }

    /// As [`PaddedLayout::new`] with `baby` baby steps (≥ 1) based at 0, or at r_min when
    /// `aligned`.
    pub fn with(
        spec: Conv2dSpec,
        n: usize,
        baby: usize,
        aligned: bool,
    ) -> Result<PaddedLayout, LinearError> {
        if baby == 0 {
            return Err(LinearError::BadShape {
                reason: "hyena: at least one baby step",
            });
        }
        let mut l = Self::shape(spec, n)?;
        l.baby = baby;
        l.base = if aligned { l.r_min } else { 0 };
        Ok(l)
    }

    fn shape(spec: Conv2dSpec, n: usize) -> Result<PaddedLayout, LinearError> {
        let bad = |reason: &'static str| Err(LinearError::BadShape { reason });
        if spec.groups == 0
            || !spec.c.is_multiple_of(spec.groups)
            || !spec.m.is_multiple_of(spec.groups)
        {
            return bad("hyena: groups must divide C and M");
        }
        if spec.stride == 0 || spec.kh == 0 || spec.kw == 0 {
            return bad("hyena: zero stride or kernel");
        }
        let (hp, wp) = (spec.h + 2 * spec.padding, spec.w + 2 * spec.padding);
        if hp < spec.kh || wp < spec.kw {
            return bad("hyena: kernel larger than the padded map");
        }
        if !n.is_power_of_two() || hp * wp > n {
            return bad("hyena: a padded channel map does not fit one ciphertext row");
        }
        let mut c_n = 1;
        while c_n * 2 * hp * wp <= n && c_n < spec.c.max(spec.m) {
            c_n *= 2;
        }
        let rows = if spec.c.max(spec.m) > c_n { 2 } else { 1 };
        let per = rows * c_n;
        let (in_cts, out_cts) = (spec.c.div_ceil(per), spec.m.div_ceil(per));
        let d_max = (spec.kh - 1) * wp + spec.kw - 1;
        let r_min = -(c_n as i64 - 1);
        let span = d_max * c_n + 2 * c_n - 1;
        let mut l = PaddedLayout {
            spec,
            n,
            c_n,
            rows,
            copies: rows,
            in_cts,
            out_cts,
            baby: 1,
            r_min,
            base: 0,
            span,
            used: vec![false; out_cts * in_cts * rows * span],
            read: Vec::new(),
            wanted: Vec::new(),
        };
        let (cg, mg) = (spec.c_per_group(), spec.m_per_group());
        for v in 0..out_cts {
            for u in 0..in_cts {
                for s in 0..rows {
                    let at = ((v * in_cts + u) * rows + s) * span;
                    for row in 0..rows {
                        let row_in = row ^ s;
                        for c_o in 0..c_n {
                            let o = v * per + row * c_n + c_o;
                            if o >= spec.m {
                                break;
                            }
                            // The input channels of o's group in this ciphertext row.
                            let (g, base) = (o / mg, u * per + row_in * c_n);
                            let lo = (g * cg).max(base) - base;
                            let hi = ((g + 1) * cg).min(spec.c).min(base + c_n);
                            for c_i in lo..hi.saturating_sub(base) {
                                for a in 0..spec.kh {
                                    for b in 0..spec.kw {
                                        let d = a * wp + b;
                                        let r = (d * c_n + c_i) as i64 - c_o as i64;
                                        l.used[at + (r - r_min) as usize] = true;
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        if rows == 2 {
            let cross = (0..out_cts * in_cts)
                .any(|vu| l.used[(vu * 2 + 1) * span..(vu * 2 + 2) * span].contains(&true));
            if !cross {
                // No output reads the other row: drop the row-swapped copy.
                let mut used = Vec::with_capacity(out_cts * in_cts * span);
                for vu in 0..out_cts * in_cts {
                    used.extend_from_slice(&l.used[vu * 2 * span..(vu * 2 + 1) * span]);
                }
                l.used = used;
                l.copies = 1;
            }
        }
        l.read = vec![false; l.copies * span];
        l.wanted = vec![false; out_cts * span];
        for (i, &x) in l.used.iter().enumerate() {
            if x {
                let (vus, r) = (i / span, i % span);
                l.read[(vus % l.copies) * span + r] = true;
                l.wanted[vus / (in_cts * l.copies) * span + r] = true;
            }
        }
        Ok(l)
    }

    fn used(&self, v: usize, u: usize, s: usize, r_idx: usize) -> bool {
        self.used[((v * self.in_cts + u) * self.copies + s) * self.span + r_idx]
    }

    /// The first giant step: γ_g = (g + g_min)·B, g_min = ⌊(r_min − base)/B⌋.
    fn g_min(&self) -> i64 {
        (self.r_min - self.base).div_euclid(self.baby as i64)
    }

    /// Giant-step count (g < giants()).
    fn giants(&self) -> usize {
        let r_max = self.r_min + self.span as i64 - 1;
        ((r_max - self.base).div_euclid(self.baby as i64) - self.g_min() + 1) as usize
    }

    /// The giant rotation γ of step g (a multiple of B, 0 for one step: no rotation).
    fn gamma(&self, g: usize) -> i64 {
        (g as i64 + self.g_min()) * self.baby as i64
    }

    /// The rotation indices r − r_min of giant step g: base + γ_g + [0, B), clipped to the span.
    fn giant_range(&self, g: usize) -> std::ops::Range<usize> {
        let start = self.base + self.gamma(g) - self.r_min;
        let lo = start.max(0) as usize;
        let hi = ((start + self.baby as i64).max(0) as usize).min(self.span);
        lo.min(hi)..hi
    }

    /// Whether output ciphertext v has a term in giant step g.
    fn giant_used(&self, v: usize, g: usize) -> bool {
        let range = self.giant_range(g);
        self.wanted[v * self.span + range.start..v * self.span + range.end].contains(&true)
    }

    /// Giant-step rotations of output ciphertext v (the steps it uses, less γ = 0).
    fn giant_rotations(&self, v: usize) -> usize {
        (0..self.giants())
            .filter(|&g| self.gamma(g) != 0 && self.giant_used(v, g))
            .count()
    }

    /// The baby steps some term reads, as (copy s, β) for the rotation β ∈ [0, B) (the same
    /// rotations, hence keys, for every layer with this B), copy major: the hoisted rotations of
    /// each input ciphertext (a depthwise conv reads few).
    fn babies(&self) -> Vec<(usize, usize)> {
        let b = self.baby as i64;
        let mut read = vec![false; self.copies * self.baby];
        for s in 0..self.copies {
            for r_idx in 0..self.span {
                if self.read[s * self.span + r_idx] {
                    let beta = (self.r_min + r_idx as i64 - self.base).rem_euclid(b) as usize;
                    read[s * self.baby + beta] = true;
                }
            }
        }
        (0..self.copies * self.baby)
            .filter(|&i| read[i])
            .map(|i| (i / self.baby, i % self.baby))
            .collect()
    }

    /// Key-switched rotations per input ciphertext: the babies read, less the identity.
    fn hoisted_per_input(&self) -> usize {
        self.babies()
            .iter()
            .filter(|&&(s, b)| s != 0 || self.base + b as i64 != 0)
            .count()
    }

    fn rotation_cost(&self) -> f64 {
        let hoisted = self.in_cts * self.hoisted_per_input();
        let giants: usize = (0..self.out_cts).map(|v| self.giant_rotations(v)).sum();
        hoisted as f64 * HOISTED_COST + giants as f64
    }

    /// Operation counts of one application.
    pub fn counts(&self) -> PaddedCounts {
        let (mut terms, mut max_terms, mut max_giants, mut giants) = (0, 0, 0, 0);
        for v in 0..self.out_cts {
            let t: usize = (0..self.in_cts * self.copies)
                .map(|us| {
                    let at = (v * self.in_cts * self.copies + us) * self.span;
                    self.used[at..at + self.span].iter().filter(|&&x| x).count()
                })
                .sum();
            let g = self.giant_rotations(v);
            terms += t;
            max_terms = max_terms.max(t);
            max_giants = max_giants.max(g);
            giants += g;
        }
        let per_input = self.hoisted_per_input();
        let max_terms_per_giant = (0..self.giants())
            .map(|g| {
                let range = self.giant_range(g);
                (0..self.out_cts * self.in_cts * self.copies)
                    .map(|vus| {
                        let at = vus * self.span;
                        self.used[at + range.start..at + range.end]
                            .iter()
                            .filter(|&&x| x)
                            .count()
                    })
                    .sum::<usize>()
            })
            .max()
            .unwrap_or(0);
        PaddedCounts {
            terms,
            max_terms_per_output: max_terms,
            rotations: self.in_cts * per_input + giants,
            max_giants_per_output: max_giants,
            hoisted_per_input: per_input,
            max_terms_per_giant,
        }
    }

    /// The Galois elements of [`PaddedLayout::babies`], in order (the identity as 1).
    fn baby_elements(&self, n_total: usize) -> Vec<usize> {
        let sw = crate::simd::kernels::swap_element(n_total);
        self.babies()
            .into_iter()
            .map(|(s, b)| {
                let e = rlwe::eval::galois_element_for_rotation(n_total, self.base + b as i64);
                if s == 1 {
                    e * sw % (2 * n_total)
                } else {
                    e
                }
            })
            .collect()
    }

    /// The Galois elements [`PaddedConv::apply`] needs keys for, for ring degree `n_total`.
    pub fn galois_elements(&self, n_total: usize) -> Vec<usize> {
        let mut e: Vec<usize> = self
            .baby_elements(n_total)
            .into_iter()
            .filter(|&k| k != 1)
            .collect();
        e.extend(
            (0..self.giants())
                .filter(|&g| self.gamma(g) != 0 && (0..self.out_cts).any(|v| self.giant_used(v, g)))
                .map(|g| rlwe::eval::galois_element_for_rotation(n_total, self.gamma(g))),
        );
        e.sort_unstable();
        e.dedup();
        e
    }

    /// The weight index (into M × C/groups × k_h × k_w) that output (row, c_o) of ciphertext v
    /// takes from copy s of input ciphertext u at rotation r, if any.
    #[allow(clippy::too_many_arguments)]
    fn weight_index(
        &self,
        v: usize,
        u: usize,
        s: usize,
        r: i64,
        row: usize,
        c_o: usize,
    ) -> Option<usize> {
        let (sp, c_n) = (&self.spec, self.c_n as i64);
        let wp = sp.w + 2 * sp.padding;
        let q = c_o as i64 + r;
        let (c_i, d) = (q.rem_euclid(c_n) as usize, q.div_euclid(c_n));
        if d < 0 {
            return None;
        }
        let (a, b) = (d as usize / wp, d as usize % wp);
        if a >= sp.kh || b >= sp.kw {
            return None;
        }
        let (row, row_in) = if self.rows == 1 {
            (0, 0)
        } else {
            (row, row ^ s)
        };
        let per = self.rows * self.c_n;
        let o = v * per + row * self.c_n + c_o;
        let ci = u * per + row_in * self.c_n + c_i;
        if o >= sp.m || ci >= sp.c {
            return None;
        }
        let cg = sp.c_per_group();
        let g = sp.group_of_output(o);
        (ci / cg == g).then(|| (o * cg + ci - g * cg) * sp.kh * sp.kw + a * sp.kw + b)
    }

    /// Slot classes per row: p = max(c_n, 2) (a row's slots mod 2 separate even for c_n = 1).
    pub fn period(&self) -> usize {
        self.c_n.max(2)
    }

    pub fn channels(&self) -> usize {
        self.c_n
    }

    pub fn baby_steps(&self) -> usize {
        self.baby
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn copies(&self) -> usize {
        self.copies
    }

    pub fn spec(&self) -> Conv2dSpec {
        self.spec
    }

    /// Input and output ciphertext counts.
    pub fn ciphertexts(&self) -> (usize, usize) {
        (self.in_cts, self.out_cts)
    }

    /// Input ciphertexts' slot values (2·n each) from C × H × W values, zero-padded.
    pub fn pack_input(&self, x: &[u64]) -> Vec<Vec<u64>> {
        let c_n = self.c_n;
        crate::simd::kernels::pack_maps(&self.spec, self.rows, c_n, self.n, x, |c, pos| {
            pos * c_n + c
        })
    }

    /// The slot (of its output ciphertext's 2·n) of each of the M × H_out × W_out outputs.
    pub fn output_slots(&self) -> Vec<(usize, usize)> {
        let c_n = self.c_n;
        crate::simd::kernels::map_slots(&self.spec, self.rows, c_n, self.n, |c, pos| pos * c_n + c)
    }

    /// M × H_out × W_out values from the output ciphertexts' decoded slots.
    pub fn unpack_output(&self, slots: &[Vec<u64>]) -> Vec<u64> {
        self.output_slots()
            .into_iter()
            .map(|(v, s)| slots[v][s])
            .collect()
    }
}

/// A cyclic DFT of size `a.len()` (a power of two) over `q` with the primitive root `omega`, in
/// natural order (iterative radix 2: bit reversal, then butterflies).
fn small_dft(a: &mut [u64], omega: u64, q: &Modulus) {
    let n = a.len();
    let bits = n.trailing_zeros();
    if n <= 1 {
        return;
    }
    for i in 0..n {
        let j = i.reverse_bits() >> (usize::BITS - bits);
        if i < j {
            a.swap(i, j);
        }
    }
    let mut len = 2;
    while len <= n {
        let w_len = q.pow(omega, (n / len) as u64);
        let half = len / 2;
        let mut tw = Vec::with_capacity(half);
        let mut w = 1u64;
        for _ in 0..half {
            tw.push(w);
            w = q.mul(w, w_len);
        }
        for chunk in a.chunks_mut(len) {
            let (lo, hi) = chunk.split_at_mut(half);
            for ((x, y), &w) in lo.iter_mut().zip(hi.iter_mut()).zip(&tw) {
                let t = q.mul(*y, w);
                *y = q.sub(*x, t);
                *x = q.add(*x, t);
            }
        }
        len *= 2;
    }
}

/// The evaluation points of a negacyclic transform of size M as powers of one of them: given the
/// M primitive 2M-th roots `points` (any order), ψ = points[0] and for each k the index j with
/// points[k] = ψ·(ψ²)^j.
fn point_order(points: &[u64], q: &Modulus) -> Option<(u64, Vec<usize>)> {
    let m = points.len();
    let psi = points[0];
    let omega = q.mul(psi, psi);
    let mut at = std::collections::HashMap::with_capacity(m);
    let mut x = psi;
    for j in 0..m {
        at.insert(x, j);
        x = q.mul(x, omega);
    }
    let order: Option<Vec<usize>> = points.iter().map(|y| at.get(y).copied()).collect();
    let order = order?;
    let mut seen = vec![false; m];
    for &j in &order {
        if std::mem::replace(&mut seen[j], true) {
            return None;
        }
    }
    Some((psi, order))
}

/// The transforms from a per-class slot vector to the NTT form of its plaintext g(X^{N/2p}), for
/// one ring and level. M = 2p classes (class k = row·p + c). Over Z_t, the slot values of class
/// k are g's values at a primitive 2M-th root z_k (read off the encoder: the slots of X^{N/2p});
/// per prime q_i, run k of the NTT form holds g's value at y_k (read off the NTT of X^{N/2p}).
/// Both point sets are ψ·(ψ²)^j in some order, so each direction is a twist and a cyclic DFT of
/// size M: O(M log M) per plaintext and prime.
struct Classes {
    m: usize,
    t: Modulus,
    /// ψ_t² ^ −1 (the inverse DFT's root), ψ_t^{−a}·M^{−1} (the untwist), class k → DFT index.
    t_omega_inv: u64,
    t_untwist: Vec<u64>,
    t_order: Vec<usize>,
    /// Per prime: ψ_i² (the DFT root), ψ_i^a (the twist), run k → DFT index.
    q_omega: Vec<u64>,
    q_twist: Vec<Vec<u64>>,
    q_order: Vec<Vec<usize>>,
    moduli: Vec<Modulus>,
}

impl Classes {
    fn new(
        enc: &BatchEncoder,
        params: &std::sync::Arc<rlwe::Params>,
        p: usize,
        num_moduli: usize,
    ) -> Result<Classes, LinearError> {
        let n_total = params.n();
        let (half, m_cls) = (n_total / 2, 2 * p);
        let stride = n_total / m_cls;
        let t = *params.t();
        let not_cosets = || LinearError::BadShape {
            reason: "hyena: the slot classes are not cosets of X^(N/2p)",
        };
        let mut xm = vec![0i64; n_total];
        xm[stride] = 1;
        // Over Z_t: the slots of X^{N/2p}, constant on each class.
        let slots = enc.decode(&rlwe::Plaintext::from_signed(params, &xm)?)?;
        let mut z = Vec::with_capacity(m_cls);
        for k in 0..m_cls {
            let (row, c) = (k / p, k % p);
            let v = slots[row * half + c];
            if (c..half).step_by(p).any(|s| slots[row * half + s] != v) {
                return Err(not_cosets());
            }
            z.push(v);
        }
        let (psi_t, t_order) = point_order(&z, &t).ok_or_else(not_cosets)?;
        let psi_inv = t.inv(psi_t).ok_or_else(not_cosets)?;
        let m_inv = t.inv(m_cls as u64 % t.value()).ok_or_else(not_cosets)?;
        let mut t_untwist = Vec::with_capacity(m_cls);
        let mut x = m_inv;
        for _ in 0..m_cls {
            t_untwist.push(x);
            x = t.mul(x, psi_inv);
        }
        let t_omega_inv = t.mul(psi_inv, psi_inv);
        // Per prime: the NTT of X^{N/2p}, constant on each run of N/2p coefficients.
        let ntt = PlaintextNtt::from_signed(params, &xm, num_moduli)?;
        let moduli: Vec<Modulus> = params.ctx_q().moduli()[..num_moduli].to_vec();
        let (mut q_omega, mut q_twist, mut q_order) = (Vec::new(), Vec::new(), Vec::new());
        for (i, q) in moduli.iter().enumerate() {
            let y = ntt.poly().residue(i);
            let mut pts = Vec::with_capacity(m_cls);
            for k in 0..m_cls {
                let yk = y[k * stride];
                if y[k * stride..(k + 1) * stride].iter().any(|&v| v != yk) {
                    return Err(not_cosets());
                }
                pts.push(yk);
            }
            let (psi, order) = point_order(&pts, q).ok_or_else(not_cosets)?;
            let mut tw = Vec::with_capacity(m_cls);
            let mut x = 1u64;
            for _ in 0..m_cls {
                tw.push(x);
                x = q.mul(x, psi);
            }
            q_omega.push(q.mul(psi, psi));
            q_twist.push(tw);
            q_order.push(order);
        }
        Ok(Classes {
            m: m_cls,
            t,
            t_omega_inv,
            t_untwist,
            t_order,
            q_omega,
            q_twist,
            q_order,
            moduli,
        })
    }

    /// The NTT form's run values (M per prime, prime major) of the plaintext whose slots hold
    /// `w[k]` on class k (signed, reduced mod t).
    fn run_values(&self, w: &[i64], out: &mut [u64]) {
        let m = self.m;
        // g from its values: V[order(k)] = w_k, inverse DFT, untwist; centered, |g_a| ≤ t/2.
        let mut v = vec![0u64; m];
        for (k, &x) in w.iter().enumerate() {
            v[self.t_order[k]] = self.t.reduce_i64(x);
        }
        small_dft(&mut v, self.t_omega_inv, &self.t);
        let g: Vec<i64> = v
            .iter()
            .zip(&self.t_untwist)
            .map(|(&x, &u)| self.t.center(self.t.mul(x, u)))
            .collect();
        let mut h = vec![0u64; m];
        for (i, q) in self.moduli.iter().enumerate() {
            for ((hj, &ga), &tw) in h.iter_mut().zip(&g).zip(&self.q_twist[i]) {
                *hj = q.mul(q.reduce_i64(ga), tw);
            }
            small_dft(&mut h, self.q_omega[i], q);
            for (k, o) in out[i * m..(i + 1) * m].iter_mut().enumerate() {
                *o = h[self.q_order[i][k]];
            }
        }
    }
}

/// A [`PaddedLayout`] with its weights as 16-bit signed integers where every |w| < 2^15 (the
/// layer's `weight_bits` ≤ 15), else 32-bit: all the server holds besides the two class
/// transforms.
pub struct PaddedConv {
    layout: PaddedLayout,
    w: Stored,
}

/// The weights as the server keeps them ([`PaddedConv`]).
enum Stored {
    Narrow(Vec<i16>),
    Wide(Vec<i32>),
}

impl Stored {
    fn get(&self, i: usize) -> i64 {
        match self {
            Stored::Narrow(w) => i64::from(w[i]),
            Stored::Wide(w) => i64::from(w[i]),
        }
    }
}

/// Bytes per weight [`PaddedConv`] stores for weights of `weight_bits` bits (|w| < 2^bits).
pub(crate) fn stored_weight_bytes(weight_bits: u32) -> u64 {
    if weight_bits <= 15 {
        2
    } else {
        4
    }
}

impl PaddedConv {
    /// Binds the weights `w` (M × C/groups × k_h × k_w, signed, |w| < 2^31) to `layout`.
    pub fn new(layout: PaddedLayout, w: &[i64]) -> Result<PaddedConv, LinearError> {
        let spec = layout.spec;
        if w.len() != spec.m * spec.c_per_group() * spec.kh * spec.kw {
            return Err(LinearError::BadShape {
                reason: "hyena: need M*(C/groups)*kh*kw weights",
            });
        }
        let w = match w.iter().map(|&x| i16::try_from(x)).collect() {
            Ok(narrow) => Stored::Narrow(narrow),
            Err(_) => Stored::Wide(
                w.iter()
                    .map(|&x| i32::try_from(x))
                    .collect::<Result<Vec<i32>, _>>()
                    .map_err(|_| LinearError::BadShape {
                        reason: "hyena: weights must be below 2^31 in magnitude",
                    })?,
            ),
        };
        Ok(PaddedConv { layout, w })
    }

    pub fn layout(&self) -> &PaddedLayout {
        &self.layout
    }

    /// The class values of term (v, r, u, s) pre-rotated by −γ: class (row, c') holds the
    /// weight of output c_o = (c' − γ) mod c_n.
    fn term_weights(&self, v: usize, u: usize, s: usize, r: i64, gamma: i64, p: usize) -> Vec<i64> {
        let l = &self.layout;
        let c_n = l.c_n as i64;
        (0..2 * p)
            .map(|k| {
                let (row, c) = (k / p, (k % p) as i64);
                let c_o = (c - gamma).rem_euclid(c_n) as usize;
                l.weight_index(v, u, s, r, row, c_o)
                    .map_or(0, |i| self.w.get(i))
            })
            .collect()
    }

    /// The output ciphertexts (NTT form) from the packed input ciphertexts.
    pub fn apply(
        &self,
        enc: &BatchEncoder,
        ev: &Evaluator,
        cts: &[Ciphertext],
        gk: &GaloisKeys,
    ) -> Result<Vec<Ciphertext>, LinearError> {
        let l = &self.layout;
        if cts.len() != l.in_cts {
            return Err(LinearError::BadShape {
                reason: "hyena: wrong number of input ciphertexts",
            });
        }
        let params = ev.params();
        let n_total = params.n();
        if 2 * l.n != n_total {
            return Err(LinearError::BadShape {
                reason: "hyena: layout made for another ring degree",
            });
        }
        let num_moduli = cts[0].num_moduli();
        let p = l.period();
        let classes = Classes::new(enc, params, p, num_moduli)?;
        let elements = l.baby_elements(n_total);
        let mut at = vec![usize::MAX; l.copies * l.baby];
        for (i, (s, b)) in l.babies().into_iter().enumerate() {
            at[s * l.baby + b] = i;
        }
        // rotated[u][at[s·B + b]]: copy s of input u rotated by base + b, all from one
        // decomposition.
        let rotated: Vec<Vec<Ciphertext>> = cts
            .par_iter()
            .map(|ct| {
                let mut r = ev.apply_galois_hoisted(ct, &elements, gk)?;
                for c in &mut r {
                    c.to_representation(Representation::Ntt);
                }
                Ok(r)
            })
            .collect::<Result<_, LinearError>>()?;
        let k2 = 2 * p;
        let run = n_total / k2;
        // Per giant step: each output's terms (a rotated copy and its plaintext's run values),
        // summed a block of coefficients at a time over all outputs of the step — every output
        // of the step reads the same baby-step copies, which then stay in cache — and in
        // parallel over blocks; then each sum is reduced, rotated by γ and added to its output.
        let chunk = 256.min(n_total);
        let mut outs: Vec<Option<Ciphertext>> = vec![None; l.out_cts];
        for g in 0..l.giants() {
            let vs: Vec<usize> = (0..l.out_cts).filter(|&v| l.giant_used(v, g)).collect();
            if vs.is_empty() {
                continue;
            }
            let gamma = l.gamma(g);
            // (output index, copy, rotation) of every term of the step; run values in parallel.
            let mut specs = Vec::new();
            for (ti, &v) in vs.iter().enumerate() {
                for r_idx in l.giant_range(g) {
                    let b = (r_idx as i64 + l.r_min - l.base - gamma) as usize;
                    for u in 0..l.in_cts {
                        for s in 0..l.copies {
                            if l.used(v, u, s, r_idx) {
                                specs.push((ti, v, b, u, s, l.r_min + r_idx as i64));
                            }
                        }
                    }
                }
            }
            let vals: Vec<Vec<u64>> = specs
                .par_iter()
                .map(|&(_, v, _, u, s, r)| {
                    let w = self.term_weights(v, u, s, r, gamma, p);
                    let mut vals = vec![0u64; 2 * num_moduli * k2];
                    classes.run_values(&w, &mut vals[..num_moduli * k2]);
                    // Their Shoup quotients, once per term (the vector multiply-accumulate's).
                    for i in 0..num_moduli {
                        let q = &classes.moduli[i];
                        for k in 0..k2 {
                            vals[(num_moduli + i) * k2 + k] = q.shoup(vals[i * k2 + k]);
                        }
                    }
                    vals
                })
                .collect();
            let mut terms: Vec<Vec<(&Ciphertext, &[u64])>> = vec![Vec::new(); vs.len()];
            for (&(ti, _, b, u, s, _), vals) in specs.iter().zip(&vals) {
                terms[ti].push((&rotated[u][at[s * l.baby + b]], vals));
            }
            let per_task = 2 * num_moduli * chunk;
            let blocks: Vec<Vec<u64>> = (0..n_total / chunk)
                .into_par_iter()
                .map(|c| -> Result<Vec<u64>, LinearError> {
                    let (start, end) = (c * chunk, (c + 1) * chunk);
                    let runs = if chunk <= run {
                        start / run..start / run + 1
                    } else {
                        start / run..end / run
                    };
                    let mut out = vec![0u64; vs.len() * per_task];
                    let mut accs: Vec<LazyAcc> = classes
                        .moduli
                        .iter()
                        .map(|q| LazyAcc::new(q, chunk))
                        .collect();
                    for pi in 0..2 {
                        for (i, acc) in accs.iter_mut().enumerate() {
                            for (ti, tv) in terms.iter().enumerate() {
                                acc.clear();
                                let pairs: Vec<(&[u64], &[u64])> = tv
                                    .iter()
                                    .map(|(x, vals)| {
                                        (
                                            &x.polys()[pi].residue(i)[start..end],
                                            &vals[i * k2 + runs.start..i * k2 + runs.end],
                                        )
                                    })
                                    .collect();
                                let shoups: Vec<&[u64]> = tv
                                    .iter()
                                    .map(|(_, vals)| {
                                        let at = (num_moduli + i) * k2;
                                        &vals[at + runs.start..at + runs.end]
                                    })
                                    .collect();
                                acc.mac_all_with(&pairs, Some(&shoups))?;
                                let at = ti * per_task + (pi * num_moduli + i) * chunk;
                                acc.reduce_into(&mut out[at..at + chunk])?;
                            }
                        }
                    }
                    Ok(out)
                })
                .collect::<Result<_, LinearError>>()?;
            let parts: Vec<Ciphertext> = (0..vs.len())
                .into_par_iter()
                .map(|ti| -> Result<Ciphertext, LinearError> {
                    let mut z = ev.zero(num_moduli, Representation::Ntt)?;
                    for (pi, poly) in z.polys_mut().iter_mut().enumerate() {
                        for i in 0..num_moduli {
                            let dst = poly.residue_mut(i);
                            let at = ti * per_task + (pi * num_moduli + i) * chunk;
                            for (c, block) in blocks.iter().enumerate() {
                                dst[c * chunk..(c + 1) * chunk]
                                    .copy_from_slice(&block[at..at + chunk]);
                            }
                        }
                    }
                    Ok(if gamma == 0 {
                        z
                    } else {
                        ev.rotate_rows(&z, gamma, gk)?
                    })
                })
                .collect::<Result<_, LinearError>>()?;
            for (&v, c) in vs.iter().zip(parts) {
                match outs[v].as_mut() {
                    None => outs[v] = Some(c),
                    Some(o) => ev.add_assign(o, &c)?,
                }
            }
        }
        // No term at all (an output group with no input): an encryption of zero (trivial; the
        // layer protocol re-randomizes every response).
        outs.into_iter()
            .map(|o| match o {
                Some(o) => Ok(o),
                None => Ok(ev.zero(num_moduli, Representation::Ntt)?),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The radix-2 DFT equals the definition Σ_i a_i·ω^{ij} for every size up to 512.
    #[test]
    fn small_dft_is_the_dft() {
        let q = Modulus::new(65537).unwrap();
        for log in 0..10 {
            let n = 1usize << log;
            // 3 generates Z_65537^*: ω = 3^{65536/n} has order n.
            let omega = q.pow(3, (65536 / n) as u64);
            let a: Vec<u64> = (0..n as u64).map(|i| (i * 7919 + 13) % 65537).collect();
            let mut fast = a.clone();
            small_dft(&mut fast, omega, &q);
            for (j, &f) in fast.iter().enumerate() {
                let want = a.iter().enumerate().fold(0, |acc, (i, &x)| {
                    q.add(acc, q.mul(x, q.pow(omega, (i * j) as u64)))
                });
                assert_eq!(f, want, "n {n} j {j}");
            }
        }
    }

    /// Every (output, input channel, tap) pair of a group is reached by exactly one present
    /// term, and every present term serves at least one pair, on dense, grouped and depthwise
    /// shapes, one and two rows, strides and paddings.
    #[test]
    fn terms_cover_every_pair_once() {
        let mut checked = 0;
        for (c, m, hw, k, stride, pad, groups) in [
            (16, 16, 32, 3, 1, 1, 1),
            (3, 16, 32, 3, 1, 1, 1),
            (24, 144, 8, 1, 1, 0, 1),
            (37, 70, 8, 3, 2, 1, 1),
            (144, 144, 8, 3, 1, 1, 144),
            (48, 96, 8, 3, 1, 1, 4),
            (8, 8, 5, 5, 1, 2, 1),
        ] {
            let spec = Conv2dSpec::square(c, hw, m, k, stride, pad, groups);
            for (baby, aligned) in [(1, false), (4, false), (4, true), (1 << 12, true)] {
                let l = PaddedLayout::with(spec, 4096, baby, aligned).unwrap();
                let mut seen = vec![0u32; spec.m * spec.c_per_group() * k * k];
                let mut terms = 0;
                for v in 0..l.out_cts {
                    for u in 0..l.in_cts {
                        for s in 0..l.copies {
                            for r_idx in 0..l.span {
                                let r = l.r_min + r_idx as i64;
                                let mut any = false;
                                for row in 0..l.rows {
                                    for c_o in 0..l.c_n {
                                        if let Some(i) = l.weight_index(v, u, s, r, row, c_o) {
                                            seen[i] += 1;
                                            any = true;
                                        }
                                    }
                                }
                                assert_eq!(any, l.used(v, u, s, r_idx), "{spec:?}");
                                terms += usize::from(any);
                            }
                        }
                    }
                }
                assert!(
                    seen.iter().all(|&x| x == 1),
                    "{spec:?}: a pair missed or doubled"
                );
                assert_eq!(l.counts().terms, terms);
                checked += 1;
            }
        }
        assert_eq!(checked, 28);
    }
}
