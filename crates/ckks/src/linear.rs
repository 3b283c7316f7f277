//! Linear transforms on slots in diagonal form, evaluated with baby-step/giant-step rotations
//! [Halevi–Shoup 2014/2018; Bossuat et al. 2021 §6].
//!
//! With `R_k` the left rotation by `k` (`(R_k x)_p = x_{p+k}`), a matrix is
//! `M = Σ_k diag(d_k)·R_k` with `d_k[p] = M[p][p+k]`. Writing `k = g + b` with `g` a multiple of
//! the baby-step count `n1` and `b < n1`:
//! `M·x = Σ_g R_g( Σ_b R_{−g}(d_{g+b}) ⊙ R_b(x) )`, so the baby rotations `R_b(x)` are computed
//! once (hoisted) and only one giant rotation per `g` is needed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use math::Poly;

use crate::encoder::Complex;
use crate::error::CkksError;
use crate::evaluator::Evaluator;
use crate::params::Params;
use crate::ring;
use crate::scheme::{Ciphertext, Plaintext};

/// A matrix on `n` slots as a map from rotation offset `k ∈ [0, n)` to diagonal `d_k`.
#[derive(Clone, Debug, PartialEq)]
pub struct DiagMatrix {
    pub n: usize,
    pub diags: BTreeMap<usize, Vec<Complex>>,
}

fn rot_vec(v: &[Complex], k: usize) -> Vec<Complex> {
    let n = v.len();
    (0..n).map(|p| v[(p + k) % n]).collect()
}

impl DiagMatrix {
    pub fn identity(n: usize) -> Self {
        DiagMatrix {
            n,
            diags: BTreeMap::from([(0, vec![Complex::ONE; n])]),
        }
    }

    /// Diagonals of a dense square matrix (zero diagonals omitted).
    pub fn from_dense(m: &[Vec<Complex>]) -> Result<Self, CkksError> {
        let n = m.len();
        if m.iter().any(|r| r.len() != n) {
            return Err(CkksError::MatrixShape {
                rows: n,
                cols: m.first().map_or(0, |r| r.len()),
                slots: n,
            });
        }
        let mut diags = BTreeMap::new();
        for k in 0..n {
            let d: Vec<Complex> = (0..n).map(|p| m[p][(p + k) % n]).collect();
            if d.iter().any(|x| *x != Complex::ZERO) {
                diags.insert(k, d);
            }
        }
        Ok(DiagMatrix { n, diags })
    }

    /// `M·x` in the clear.
    pub fn apply(&self, x: &[Complex]) -> Vec<Complex> {
        let mut out = vec![Complex::ZERO; self.n];
        for (&k, d) in &self.diags {
            for p in 0..self.n {
                out[p] += d[p] * x[(p + k) % self.n];
            }
        }
        out
    }

    /// `self · other`: `diag(α)R_a · diag(β)R_b = diag(α ⊙ R_a β) R_{a+b}`.
    pub fn mul(&self, other: &DiagMatrix) -> DiagMatrix {
        let n = self.n;
        let mut diags: BTreeMap<usize, Vec<Complex>> = BTreeMap::new();
        for (&a, da) in &self.diags {
            for (&b, db) in &other.diags {
                let rb = rot_vec(db, a);
                let e = diags
                    .entry((a + b) % n)
                    .or_insert_with(|| vec![Complex::ZERO; n]);
                for p in 0..n {
                    e[p] += da[p] * rb[p];
                }
            }
        }
        diags.retain(|_, d| d.iter().any(|x| x.abs() > 1e-300));
        DiagMatrix { n, diags }
    }

    pub fn scale(&mut self, c: Complex) {
        for d in self.diags.values_mut() {
            d.iter_mut().for_each(|x| *x *= c);
        }
    }
}

/// Maximal runs of consecutive NTT slots on which every polynomial in `X^{N/2d}` is constant.
///
/// A slot vector with period `d` (`v_{p+d} = v_p`) is fixed by the rotation by `d`, so its
/// encoding lies in the subring `Z[X^{N/2d}]` (sparse packing with `d` slots, [CHKKS18 §4.3]).
/// Such a polynomial `f(X^{N/2d})` takes at NTT slot `i` (evaluation at `ψ^{e_i}`) the value
/// `f(ψ^{e_i·N/2d})`, which depends only on `e_i mod 4d`: `2d` classes. In the NTT order of the
/// `math` layer the classes form few runs, so such a diagonal is stored as `2d` residues per prime
/// and multiplied run by run with a constant.
struct Runs {
    classes: usize,
    /// `(start, len, class)`.
    runs: Vec<(u32, u32, u32)>,
}

impl Runs {
    /// The runs for period `d`, or `None` when they are too fragmented to pay off.
    fn new(params: &Params, d: usize) -> Option<Self> {
        let n = params.n();
        let table = params.ctx_q().ntt_table();
        let m4 = 4 * d;
        let mut runs: Vec<(u32, u32, u32)> = Vec::new();
        for i in 0..n {
            let c = ((table.exponent(i) as usize % m4) >> 1) as u32;
            match runs.last_mut() {
                Some((_, len, cl)) if *cl == c => *len += 1,
                _ => {
                    if runs.len() >= n / 16 {
                        return None;
                    }
                    runs.push((i as u32, 1, c));
                }
            }
        }
        Some(Runs {
            classes: 2 * d,
            runs,
        })
    }
}

/// An encoded diagonal: every residue in NTT form, or (periodic diagonals) the `2d` distinct
/// NTT values per residue.
enum Diag {
    Full(Plaintext),
    Compact {
        runs: Arc<Runs>,
        /// `vals[i·2d + c]`: value of class `c` modulo `q_i`, and its Shoup constant.
        vals: Vec<u64>,
        shoup: Vec<u64>,
    },
}

/// The smallest power-of-two period of `v` (its length when none is shorter).
fn period(v: &[Complex]) -> usize {
    let n = v.len();
    let tol = v.iter().map(|x| x.abs()).fold(0.0, f64::max) * 1e-13;
    let mut d = 1;
    while d < n {
        if (d..n).all(|p| (v[p] - v[p % d]).abs() <= tol) {
            return d;
        }
        d *= 2;
    }
    n
}

impl Diag {
    fn encode(
        params: &Params,
        v: &[Complex],
        level: usize,
        scale: f64,
        cache: &mut BTreeMap<usize, Option<Arc<Runs>>>,
    ) -> Result<Self, CkksError> {
        let slots = v.len();
        let d = period(v);
        if 2 * d < params.n() {
            let runs = cache
                .entry(d)
                .or_insert_with(|| Runs::new(params, d).map(Arc::new))
                .clone();
            if let Some(runs) = runs {
                // The d-slot encoding is `f(X^{N/2d})`: constant on each run (checked).
                let pt = params.encode(&v[..d], d, level, scale)?;
                let n = params.n();
                let k = level + 1;
                let mut vals = vec![0u64; k * runs.classes];
                let mut ok = true;
                for i in 0..k {
                    let r = &pt.poly.data()[i * n..(i + 1) * n];
                    for &(s, len, c) in &runs.runs {
                        let x = r[s as usize];
                        ok &= r[s as usize..(s + len) as usize].iter().all(|&y| y == x);
                        vals[i * runs.classes + c as usize] = x;
                    }
                }
                if ok {
                    let moduli = params.ctx_q().moduli();
                    let shoup = vals
                        .iter()
                        .enumerate()
                        .map(|(j, &x)| moduli[j / runs.classes].shoup(x))
                        .collect();
                    return Ok(Diag::Compact { runs, vals, shoup });
                }
            }
        }
        Ok(Diag::Full(params.encode(v, slots, level, scale)?))
    }

    fn memory_bytes(&self) -> usize {
        match self {
            Diag::Full(pt) => 8 * pt.poly.data().len(),
            Diag::Compact { vals, shoup, .. } => 8 * (vals.len() + shoup.len()),
        }
    }

    /// `acc += x ⊙ diag` on the first `acc.num_moduli()` residues (NTT form) for a run-constant
    /// diagonal; nothing for a full one, which [`ring::dot_into`] sums with the others.
    fn mul_acc_compact(&self, acc: &mut Poly, x: &Poly) {
        match self {
            Diag::Full(_) => {}
            Diag::Compact { runs, vals, shoup } => {
                let ctx = acc.context().clone();
                let n = acc.n();
                let xd = x.data();
                ring::for_limbs(acc, |i, r| {
                    let m = ctx.moduli()[i];
                    let xi = &xd[i * n..(i + 1) * n];
                    let base = i * runs.classes;
                    for &(s, len, c) in &runs.runs {
                        let (s, e) = (s as usize, (s + len) as usize);
                        let j = base + c as usize;
                        math::simd::mul_shoup_acc(&m, &mut r[s..e], &xi[s..e], vals[j], shoup[j]);
                    }
                });
            }
        }
    }
}

/// A [`DiagMatrix`] encoded for evaluation at one level: plaintext diagonals pre-rotated for
/// BSGS, the rotations it needs, and the scale shift it applies.
///
/// Offsets are taken signed (`k − n` for `k ≥ n/2`) and as multiples `j·step` of their gcd, so
/// that structured matrices (the FFT stages of bootstrapping, whose offsets are multiples of a
/// power of two) get a dense baby/giant split: `j − j_min = G·n1 + b`, baby rotation
/// `(c + b)·step`, giant rotation `(G − G_0)·n1·step`, with `G_0 = ⌊−j_min/n1⌋` (when `j_min ≤ 0`)
/// and `c = j_min + G_0·n1 ∈ (−n1, 0]`: centered babies, so that a band of offsets around zero
/// needs no final shift rotation.
pub struct LinearTransform {
    slots: usize,
    level: usize,
    n1: usize,
    /// giant rotation (signed, slots) → baby rotation (slots, ≥ 0) → `R_{−giant}(d_k)` encoded.
    blocks: BTreeMap<isize, BTreeMap<isize, Diag>>,
    /// Scale of the plaintexts.
    pt_scale: f64,
    /// Offset unit (gcd of the signed offsets).
    step: usize,
    /// Giant steps by Horner's rule (see [`LinearTransform::new_horner`]).
    horner: bool,
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

impl LinearTransform {
    /// Encodes `m` for ciphertexts at `level` with `m.n` slots. Plaintexts are encoded at
    /// `pt_scale` (e.g. `q_level`, so that the following rescale restores the input scale).
    /// `n1`: baby-step count (`None` picks the power of two near `√span` that minimizes
    /// `n1 + span/n1`).
    pub fn new(
        params: &Params,
        m: &DiagMatrix,
        level: usize,
        pt_scale: f64,
        n1: Option<usize>,
    ) -> Result<Self, CkksError> {
        let slots = m.n;
        params.encoder().check_slots(slots)?;
        params.check_level(level)?;
        let signed = |k: usize| -> isize {
            if k >= slots / 2 && slots > 1 {
                k as isize - slots as isize
            } else {
                k as isize
            }
        };
        let step = m
            .diags
            .keys()
            .fold(0usize, |g, &k| gcd(g, signed(k).unsigned_abs()))
            .max(1);
        let js: Vec<isize> = m.diags.keys().map(|&k| signed(k) / step as isize).collect();
        let jmin = js.iter().copied().min().unwrap_or(0);
        let span = js.iter().copied().max().unwrap_or(0) - jmin + 1;
        let n1 = match n1 {
            Some(x) => x.max(1),
            None => {
                let mut best = (usize::MAX, 1usize);
                let mut x = 1usize;
                while x <= span as usize {
                    let cost = x + (span as usize).div_ceil(x);
                    if cost < best.0 {
                        best = (cost, x);
                    }
                    x *= 2;
                }
                best.1
            }
        };
        let g0 = if jmin < 0 { -jmin / n1 as isize } else { 0 };
        let c = jmin + g0 * n1 as isize;
        let mut blocks: BTreeMap<isize, BTreeMap<isize, Diag>> = BTreeMap::new();
        let mut runs: BTreeMap<usize, Option<Arc<Runs>>> = BTreeMap::new();
        for ((_, d), &j) in m.diags.iter().zip(&js) {
            let t = (j - jmin) as usize;
            let b = t % n1;
            let giant = ((t / n1) as isize - g0) * (n1 * step) as isize;
            let baby = (c + b as isize) * step as isize;
            let shifted = rot_vec(d, (-giant).rem_euclid(slots as isize) as usize);
            let diag = Diag::encode(params, &shifted, level, pt_scale, &mut runs)?;
            blocks.entry(giant).or_default().insert(baby, diag);
        }
        Ok(LinearTransform {
            slots,
            level,
            n1,
            blocks,
            pt_scale,
            step,
            horner: false,
        })
    }

    /// As [`LinearTransform::new`], with the giant steps evaluated by Horner's rule:
    /// `Σ_{G≥0} R_{G·n1·step}(u_G) = u_0 + R_{n1·step}(u_1 + R_{n1·step}(…))`, and likewise with
    /// `R_{−n1·step}` for the blocks `G < 0`.
    /// Same number of key switches, but only two giant-step keys instead of one per giant step
    /// (the memory of bootstrapping keys at `N = 2^16` is dominated by them).
    pub fn new_horner(
        params: &Params,
        m: &DiagMatrix,
        level: usize,
        pt_scale: f64,
        n1: Option<usize>,
    ) -> Result<Self, CkksError> {
        let mut lt = Self::new(params, m, level, pt_scale, n1)?;
        lt.horner = true;
        Ok(lt)
    }

    /// Rotations (in slots) this transform performs.
    pub fn rotations(&self) -> Vec<isize> {
        let n = self.slots as isize;
        let mut r: BTreeSet<isize> = BTreeSet::new();
        for bs in self.blocks.values() {
            for &b in bs.keys() {
                if b.rem_euclid(n) != 0 {
                    r.insert(b);
                }
            }
        }
        if self.horner {
            let giant = (self.n1 * self.step) as isize;
            if giant.rem_euclid(n) != 0 {
                if self.blocks.keys().any(|&g| g > 0) {
                    r.insert(giant);
                }
                if self.blocks.keys().any(|&g| g < 0) {
                    r.insert(-giant);
                }
            }
        } else {
            for &g in self.blocks.keys() {
                if g.rem_euclid(n) != 0 {
                    r.insert(g);
                }
            }
        }
        r.into_iter().collect()
    }

    /// Galois elements of [`LinearTransform::rotations`] (for lazy key generation).
    pub fn galois_elements(&self, params: &Params) -> Vec<usize> {
        self.rotations()
            .into_iter()
            .map(|k| params.galois_element(k))
            .collect()
    }

    pub fn level(&self) -> usize {
        self.level
    }
    /// Slots of the ciphertexts it applies to.
    pub fn slots(&self) -> usize {
        self.slots
    }
    pub fn pt_scale(&self) -> f64 {
        self.pt_scale
    }
    pub fn baby_steps(&self) -> usize {
        self.n1
    }
    /// Number of plaintext diagonals.
    pub fn diagonals(&self) -> usize {
        self.blocks.values().map(|b| b.len()).sum()
    }
    /// Bytes held by the encoded diagonals.
    pub fn memory_bytes(&self) -> usize {
        self.blocks
            .values()
            .flat_map(|b| b.values())
            .map(Diag::memory_bytes)
            .sum()
    }

    /// Number of diagonals held in compact (periodic) form.
    pub fn compact_diagonals(&self) -> usize {
        self.blocks
            .values()
            .flat_map(|b| b.values())
            .filter(|d| matches!(d, Diag::Compact { .. }))
            .count()
    }
}

impl Evaluator {
    /// `M·x` (not rescaled: the result has scale `s_x · pt_scale`, at the level of `x`).
    pub fn linear_transform(
        &self,
        x: &Ciphertext,
        lt: &LinearTransform,
    ) -> Result<Ciphertext, CkksError> {
        if x.slots() != lt.slots {
            return Err(CkksError::SlotsMismatch {
                a: x.slots(),
                b: lt.slots,
            });
        }
        if x.level() > lt.level {
            return Err(CkksError::LevelMismatch {
                a: x.level(),
                b: lt.level,
            });
        }
        let babies: BTreeSet<isize> = lt.blocks.values().flat_map(|b| b.keys().copied()).collect();
        let babies: Vec<isize> = babies.into_iter().collect();
        let dec = self.decompose(&x.c[1], x.level());
        let rotated: BTreeMap<isize, Ciphertext> = babies
            .iter()
            .map(|&b| {
                Ok((
                    b,
                    self.rotate_decomposed(x, &dec, self.params().galois_element(b))?,
                ))
            })
            .collect::<Result<_, CkksError>>()?;
        self.recycle(dec);
        let k = x.level() + 1;
        let ctx = self.params().ctx_q().clone();
        let inner = |bs: &BTreeMap<isize, Diag>| -> Ciphertext {
            // Every residue of both is overwritten by `dot_into` below.
            let mut c0 = self.scratch(&ctx, k);
            let mut c1 = self.scratch(&ctx, k);
            // Full diagonals in one sum of products per part, then the run-constant ones.
            let full: Vec<(&Ciphertext, &Plaintext)> = bs
                .iter()
                .filter_map(|(b, diag)| match diag {
                    Diag::Full(pt) => Some((&rotated[b], pt)),
                    Diag::Compact { .. } => None,
                })
                .collect();
            ring::dot_into(&mut c0, full.iter().map(|&(rb, pt)| (&rb.c[0], &pt.poly)));
            ring::dot_into(&mut c1, full.iter().map(|&(rb, pt)| (&rb.c[1], &pt.poly)));
            for (b, diag) in bs {
                let rb = &rotated[b];
                diag.mul_acc_compact(&mut c0, &rb.c[0]);
                diag.mul_acc_compact(&mut c1, &rb.c[1]);
            }
            Ciphertext {
                c: vec![c0, c1],
                level: x.level(),
                scale: x.scale() * lt.pt_scale,
                slots: x.slots(),
                params_id: x.params_id,
            }
        };
        let mut acc: Option<Ciphertext> = None;
        if lt.horner {
            // Blocks G ≥ 0 from the largest down: acc ← u_G + R_{n1·step}^{G'−G}(acc), then down to
            // G = 0; blocks G < 0 likewise with R_{−n1·step}; the two sums are added.
            let giant = (lt.n1 * lt.step) as isize;
            let horner = |blocks: &mut dyn Iterator<Item = (&isize, &BTreeMap<isize, Diag>)>,
                          rot: isize|
             -> Result<Option<Ciphertext>, CkksError> {
                let mut acc: Option<Ciphertext> = None;
                let mut prev: Option<isize> = None;
                for (&g, bs) in blocks {
                    let gi = (g / giant).abs();
                    let u = inner(bs);
                    acc = Some(match (acc, prev) {
                        (Some(mut a), Some(p)) => {
                            for _ in 0..(p - gi) {
                                a = self.rotate(&a, rot)?;
                            }
                            self.add_assign(&mut a, &u)?;
                            a
                        }
                        _ => u,
                    });
                    prev = Some(gi);
                }
                if let (Some(mut a), Some(p)) = (acc.take(), prev) {
                    for _ in 0..p {
                        a = self.rotate(&a, rot)?;
                    }
                    acc = Some(a);
                }
                Ok(acc)
            };
            let pos = horner(&mut lt.blocks.range(0..).rev(), giant)?;
            let neg = horner(&mut lt.blocks.range(..0), -giant)?;
            acc = match (pos, neg) {
                (Some(mut a), Some(b)) => {
                    self.add_assign(&mut a, &b)?;
                    Some(a)
                }
                (a, b) => a.or(b),
            };
        } else {
            for (&g, bs) in &lt.blocks {
                let u = inner(bs);
                let r = if g.rem_euclid(lt.slots as isize) == 0 {
                    u
                } else {
                    self.rotate(&u, g)?
                };
                match &mut acc {
                    None => acc = Some(r),
                    Some(a) => self.add_assign(a, &r)?,
                }
            }
        }
        match acc {
            Some(a) => Ok(a),
            None => Err(CkksError::MatrixShape {
                rows: 0,
                cols: 0,
                slots: lt.slots,
            }),
        }
    }
}
