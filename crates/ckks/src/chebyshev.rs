//! Chebyshev interpolation and series on an interval `[a, b]`.
//!
//! A series is `p(x) = Σ_{j=0}^{d} c_j T_j(y)`, `y = (2x − a − b)/(b − a)`, with `T_j` the Chebyshev
//! polynomials of the first kind. Interpolation at the `d + 1` Chebyshev nodes
//! `y_k = cos(π(k + ½)/(d + 1))` gives `c_j = (2 − [j = 0])/(d + 1) · Σ_k f(x_k) T_j(y_k)`, which is
//! near-minimax for smooth `f` [Trefethen, ATAP ch. 4] and reproduces polynomials of degree `≤ d`
//! exactly.

use std::collections::BTreeMap;
use std::f64::consts::PI;

use crate::encoder::Complex;
use crate::error::CkksError;

/// A polynomial in the Chebyshev basis on `[a, b]` (complex coefficients allowed).
#[derive(Clone, Debug, PartialEq)]
pub struct ChebyshevSeries {
    pub a: f64,
    pub b: f64,
    pub coeffs: Vec<Complex>,
}

impl ChebyshevSeries {
    /// Interpolates `f` at the `degree + 1` Chebyshev nodes of `[a, b]`.
    pub fn interpolate(
        f: impl Fn(f64) -> f64,
        a: f64,
        b: f64,
        degree: usize,
    ) -> Result<Self, CkksError> {
        if !(a.is_finite() && b.is_finite() && a < b) {
            return Err(CkksError::InvalidInterval { a, b });
        }
        let n = degree + 1;
        let nodes: Vec<f64> = (0..n)
            .map(|k| (PI * (k as f64 + 0.5) / n as f64).cos())
            .collect();
        let values: Vec<f64> = nodes
            .iter()
            .map(|&y| f(0.5 * (b - a) * y + 0.5 * (a + b)))
            .collect();
        let coeffs = (0..n)
            .map(|j| {
                let s: f64 = (0..n)
                    .map(|k| values[k] * (PI * j as f64 * (k as f64 + 0.5) / n as f64).cos())
                    .sum();
                let w = if j == 0 { 1.0 } else { 2.0 };
                Complex::from(w * s / n as f64)
            })
            .collect();
        Ok(ChebyshevSeries { a, b, coeffs })
    }

    /// The series with real coefficients `c` on `[a, b]`.
    pub fn from_real(a: f64, b: f64, c: &[f64]) -> Result<Self, CkksError> {
        if !(a.is_finite() && b.is_finite() && a < b) {
            return Err(CkksError::InvalidInterval { a, b });
        }
        Ok(ChebyshevSeries {
            a,
            b,
            coeffs: c.iter().map(|&x| Complex::from(x)).collect(),
        })
    }

    /// Converts a polynomial in the power basis (`Σ p_i x^i`) on `[a, b]` into this basis
    /// (interpolation of degree `deg p` is exact up to rounding).
    pub fn from_power_basis(a: f64, b: f64, p: &[f64]) -> Result<Self, CkksError> {
        let deg = p.len().saturating_sub(1);
        Self::interpolate(
            |x| p.iter().rev().fold(0.0, |acc, &c| acc * x + c),
            a,
            b,
            deg,
        )
    }

    pub fn degree(&self) -> usize {
        // Trailing zero coefficients do not count.
        let mut d = self.coeffs.len().saturating_sub(1);
        while d > 0 && self.coeffs[d] == Complex::ZERO {
            d -= 1;
        }
        d
    }

    /// Maps `x ∈ [a, b]` to `y ∈ [-1, 1]`.
    pub fn to_unit(&self, x: f64) -> f64 {
        (2.0 * x - self.a - self.b) / (self.b - self.a)
    }

    /// Clenshaw evaluation at a real point (the plaintext oracle of the homomorphic evaluator).
    pub fn eval(&self, x: f64) -> Complex {
        self.eval_unit(Complex::from(self.to_unit(x)))
    }

    /// Clenshaw evaluation at a complex point already mapped to the unit interval.
    pub fn eval_unit(&self, y: Complex) -> Complex {
        let mut b1 = Complex::ZERO;
        let mut b2 = Complex::ZERO;
        for &c in self.coeffs.iter().skip(1).rev() {
            let t = c + y.scale(2.0) * b1 - b2;
            b2 = b1;
            b1 = t;
        }
        self.coeffs.first().copied().unwrap_or(Complex::ZERO) + y * b1 - b2
    }
}

/// A composition `p_k ∘ … ∘ p_1` of Chebyshev series (each applied to the previous output).
#[derive(Clone, Debug, PartialEq)]
pub struct Composite {
    pub stages: Vec<ChebyshevSeries>,
}

impl Composite {
    pub fn eval(&self, x: f64) -> f64 {
        self.stages.iter().fold(x, |v, p| p.eval(v).re)
    }
}

/// Headroom between one stage of a composite sign and the domain `[−1, 1]` of the next: a stage
/// ends in `[−1/2, 1/2]`. A minimax polynomial grows fast outside `[−1, 1]` (for 15, 15, 27 the
/// first stage divided by its maximum is 0.02 at 1 and −1.6 at 1.01), and the tiny ReLU network
/// at the N = 2^12 test preset diverges with margins of 1/16 and 1/4 (errors ~10^4) and is
/// within 4·10^−5 with this one (`tiny_relu_network_on_ciphertexts`); the price is about 1.3
/// bits of ReLU precision.
const SIGN_MARGIN: f64 = 1.0;

/// `T_0(x), …, T_d(x)` by the three-term recurrence (stable on `[−1, 1]`).
fn cheb_all(d: usize, x: f64) -> Vec<f64> {
    let mut t = vec![1.0; d + 1];
    if d >= 1 {
        t[1] = x;
    }
    for k in 2..=d {
        t[k] = 2.0 * x * t[k - 1] - t[k - 2];
    }
    t
}

/// Value at `x` of the odd polynomial `Σ_j c_j T_{2j+1}(x)` (Clenshaw's recurrence).
fn odd_eval(c: &[f64], x: f64) -> f64 {
    let (mut b1, mut b2) = (0.0, 0.0);
    for k in (1..2 * c.len()).rev() {
        let ck = if k % 2 == 1 { c[k / 2] } else { 0.0 };
        let t = ck + 2.0 * x * b1 - b2;
        b2 = b1;
        b1 = t;
    }
    x * b1 - b2
}

/// `2m + 2` points of `[lo, 1]`, sorted: geometric (dense near `lo`, where the error of a sign
/// approximation oscillates fastest) and uniform.
fn sign_grid(lo: f64, m: usize) -> Vec<f64> {
    let mut g: Vec<f64> = (0..=m)
        .flat_map(|i| {
            let s = i as f64 / m as f64;
            [lo * (1.0 / lo).powf(s), lo + (1.0 - lo) * s]
        })
        .collect();
    g.sort_by(f64::total_cmp);
    g.dedup();
    g
}

/// Solves the square system `a·z = b` by Gaussian elimination with partial pivoting.
fn solve(mut a: Vec<Vec<f64>>, mut b: Vec<f64>) -> Option<Vec<f64>> {
    let n = b.len();
    for col in 0..n {
        let piv = (col..n).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        if a[piv][col].abs() < 1e-300 {
            return None;
        }
        a.swap(col, piv);
        b.swap(col, piv);
        let (top, rest) = a.split_at_mut(col + 1);
        let pivot = &top[col];
        for (r, row) in rest.iter_mut().enumerate() {
            let f = row[col] / pivot[col];
            for (x, &p) in row[col..].iter_mut().zip(&pivot[col..]) {
                *x -= f * p;
            }
            b[col + 1 + r] -= f * b[col];
        }
    }
    let mut z = vec![0.0; n];
    for r in (0..n).rev() {
        let s: f64 = (r + 1..n).map(|k| a[r][k] * z[k]).sum();
        z[r] = (b[r] - s) / a[r][r];
    }
    Some(z)
}

/// The odd polynomial `p(x) = Σ_{j<n} c_j T_{2j+1}(x)` of degree `d = 2n − 1` minimizing
/// `max_{x ∈ [lo, 1]} |p(x) − 1|` (so, by oddness, the best approximation of `sign` on
/// `[−1, −lo] ∪ [lo, 1]`), by the Remez exchange [Remez 1934; Lee–Lee–Lee–Kim–No, "Minimax
/// approximation of sign function by composite polynomial for homomorphic comparison", IEEE
/// TDSC 2021, §3]: solve `p(x_i) + (−1)^i E = 1` on `n + 1` reference points, move the reference
/// to the alternating extrema of the error, repeat until they level. Returns `(c, max error)`.
fn remez_odd_one(d: usize, lo: f64) -> Result<(Vec<f64>, f64), CkksError> {
    // Starting references: Chebyshev extrema spread in log x (the error of a steep sign
    // oscillates near lo), in x, and in √x; the first that levels is the minimax polynomial
    // (it is unique), else the best iterate.
    let mut best: Option<(Vec<f64>, f64)> = None;
    let mut last = None;
    for start in [Start::Log, Start::Linear, Start::Sqrt] {
        match remez_from(d, lo, start) {
            Ok((c, e, true)) => return Ok((c, e)),
            Ok((c, e, false)) => {
                if best.as_ref().is_none_or(|b| e < b.1) {
                    best = Some((c, e));
                }
            }
            Err(e) => last = Some(e),
        }
    }
    match (best, last) {
        (Some(b), _) => Ok(b),
        (None, Some(e)) => Err(e),
        (None, None) => unreachable!("three starts"),
    }
}

#[derive(Clone, Copy)]
enum Start {
    Log,
    Linear,
    Sqrt,
}

/// One exchange from `start`: `(c, max error, levelled)`.
fn remez_from(d: usize, lo: f64, start: Start) -> Result<(Vec<f64>, f64, bool), CkksError> {
    let fail = |reason| CkksError::Minimax {
        degree: d,
        lo,
        reason,
    };
    if d.is_multiple_of(2) || d > 255 || !(lo > 0.0 && lo < 1.0) {
        return Err(fail("needs an odd degree ≤ 255 and 0 < lo < 1"));
    }
    let n = d.div_ceil(2);
    let grid = sign_grid(lo, 4000);
    let mut refs: Vec<f64> = (0..=n)
        .map(|i| {
            let s = 0.5 - 0.5 * (PI * i as f64 / n as f64).cos();
            match start {
                Start::Log => lo * (1.0 / lo).powf(s),
                Start::Linear => lo + (1.0 - lo) * s,
                Start::Sqrt => {
                    let r = lo.sqrt() + (1.0 - lo.sqrt()) * s;
                    r * r
                }
            }
        })
        .collect();
    let mut best: Option<(Vec<f64>, f64)> = None;
    let mut levelled = false;
    for it in 0..40 {
        let a: Vec<Vec<f64>> = refs
            .iter()
            .enumerate()
            .map(|(i, &x)| {
                let t = cheb_all(d, x);
                let mut row: Vec<f64> = (0..n).map(|j| t[2 * j + 1]).collect();
                row.push(if i % 2 == 0 { 1.0 } else { -1.0 });
                row
            })
            .collect();
        let z = solve(a, vec![1.0; n + 1]).ok_or_else(|| fail("singular reference"))?;
        let c = z[..n].to_vec();
        let err = |x: f64| odd_eval(&c, x) - 1.0;
        // Local extrema of the error on the grid (endpoints included), refined by golden
        // section on the neighbouring grid cell.
        let e: Vec<f64> = grid.iter().map(|&x| err(x)).collect();
        let mut ext: Vec<(f64, f64)> = Vec::new();
        for i in 0..grid.len() {
            let left = i == 0 || (e[i] - e[i - 1]) * e[i].signum() >= 0.0;
            let right = i + 1 == grid.len() || (e[i] - e[i + 1]) * e[i].signum() >= 0.0;
            if !(left && right) {
                continue;
            }
            let (mut x, mut v) = (grid[i], e[i]);
            if i > 0 && i + 1 < grid.len() {
                let s = e[i].signum();
                let (mut l, mut r) = (grid[i - 1], grid[i + 1]);
                let g = 0.5 * (5f64.sqrt() - 1.0);
                for _ in 0..32 {
                    let (x1, x2) = (r - g * (r - l), l + g * (r - l));
                    if s * err(x1) > s * err(x2) {
                        r = x2;
                    } else {
                        l = x1;
                    }
                }
                let xm = 0.5 * (l + r);
                if s * err(xm) > s * v {
                    x = xm;
                    v = err(xm);
                }
            }
            ext.push((x, v));
        }
        // Alternating sequence: of consecutive extrema of one sign keep the largest.
        let mut alt: Vec<(f64, f64)> = Vec::new();
        for (x, v) in ext {
            match alt.last_mut() {
                Some(last) if last.1.signum() == v.signum() => {
                    if v.abs() > last.1.abs() {
                        *last = (x, v);
                    }
                }
                _ => alt.push((x, v)),
            }
        }
        if alt.len() < n + 1 {
            // At rounding level the error no longer alternates: the polynomial is exact.
            let worst = e.iter().map(|v| v.abs()).fold(0.0, f64::max);
            if worst < 1e-9 {
                return Ok((c, worst, true));
            }
            return Err(fail("error does not alternate"));
        }
        while alt.len() > n + 1 {
            if alt[0].1.abs() < alt[alt.len() - 1].1.abs() {
                alt.remove(0);
            } else {
                alt.pop();
            }
        }
        let hi = alt.iter().map(|p| p.1.abs()).fold(0.0, f64::max);
        let low = alt.iter().map(|p| p.1.abs()).fold(f64::INFINITY, f64::min);
        let worst = e.iter().map(|v| v.abs()).fold(hi, f64::max);
        if best.as_ref().is_none_or(|b| worst < b.1) {
            best = Some((c, worst));
        }
        refs = alt.iter().map(|p| p.0).collect();
        // Levelled, or at rounding level (far below any CKKS precision).
        if hi - low <= 1e-9 * hi || hi < 1e-11 {
            levelled = true;
            break;
        }
        if it >= 12 && worst > 2.0 {
            // Still worse than p = 0 (error 1): this start does not converge.
            return Err(fail("the exchange diverges"));
        }
    }
    best.map(|(c, e)| (c, e, levelled))
        .ok_or_else(|| fail("no iterate"))
}

impl Composite {
    /// The minimax composite sign of Lee et al. [IEEE TDSC 2021; used for ReLU by MPCNN, Lee et
    /// al. ICML 2022] for inputs with `ε ≤ |x| ≤ 1`: stage 1 is the odd minimax polynomial of
    /// its degree for `sign` on `[ε, 1]` (error `δ_1`); each later stage is the minimax
    /// polynomial on the image of the previous one, `[(1 − δ)/M, 1]` once the previous stage
    /// is divided by its maximum `M` on `[−1, 1]` (so every stage maps `[−1, 1]` into itself).
    /// The last stage is not divided: its error bounds `|p(x) − sign x|` on the domain.
    pub fn sign_minimax(degrees: &[usize], eps: f64) -> Result<Self, CkksError> {
        if degrees.is_empty() || !(eps > 0.0 && eps < 1.0) {
            return Err(CkksError::Minimax {
                degree: degrees.first().copied().unwrap_or(0),
                lo: eps,
                reason: "needs at least one stage and 0 < ε < 1",
            });
        }
        let mut lo = eps;
        let mut stages = Vec::with_capacity(degrees.len());
        for (i, &d) in degrees.iter().enumerate() {
            if d.is_multiple_of(2) {
                return Err(CkksError::Minimax {
                    degree: d,
                    lo,
                    reason: "stage degrees must be odd",
                });
            }
            // On a narrow image interval the full degree is ill-conditioned and not needed:
            // then the lowest degree that reaches rounding level, or the best that converges.
            let (c, delta) = match remez_odd_one(d, lo) {
                Ok(r) => r,
                Err(e) => {
                    let mut best: Option<(Vec<f64>, f64)> = None;
                    for dd in (1..d).step_by(2) {
                        if let Ok(r) = remez_odd_one(dd, lo) {
                            let done = r.1 < 1e-12;
                            if best.as_ref().is_none_or(|b| r.1 < b.1) {
                                best = Some(r);
                            }
                            if done {
                                break;
                            }
                        }
                    }
                    best.ok_or(e)?
                }
            };
            let mut full = vec![0.0; 2 * c.len()];
            for (j, &cj) in c.iter().enumerate() {
                full[2 * j + 1] = cj;
            }
            if i + 1 < degrees.len() {
                // Maximum of |p| on [0, 1] (p is odd) with the margin: the next stage sees at
                // most 1/(1 + SIGN_MARGIN), so evaluation and bootstrapping errors below that
                // keep its input inside [−1, 1].
                let steps = 20000;
                let mx = (0..=steps)
                    .map(|k| odd_eval(&c, k as f64 / steps as f64).abs())
                    .fold(1.0 + delta, f64::max)
                    * (1.0 + SIGN_MARGIN);
                for v in &mut full {
                    *v /= mx;
                }
                lo = (1.0 - delta) / mx;
                if !(lo > 0.0 && lo < 1.0) {
                    return Err(CkksError::Minimax {
                        degree: d,
                        lo,
                        reason: "the stage's error leaves no margin for the next",
                    });
                }
            }
            stages.push(ChebyshevSeries::from_real(-1.0, 1.0, &full)?);
        }
        Ok(Composite { stages })
    }

    /// The composite sign behind `ReLU(x) = x·(1 + sign x)/2` on `[−1, 1]` for the given stage
    /// degrees, with the gap `ε` chosen (in quarter octaves from 2^−4 to 2^−16) to minimize the
    /// bound `max(ε, δ(ε))/2` on `|ReLU'(x) − ReLU(x)|`: below `ε` the error is at most
    /// `|x|/2`, above it `|x|·δ/2`. Returns the composite and `(ε, δ)`.
    pub fn relu_minimax(degrees: &[usize]) -> Result<(Self, f64, f64), CkksError> {
        // δ(ε) falls as ε grows, so max(ε, δ(ε)) is smallest where they cross: bisection on
        // the quarter-octave exponent q (ε = 2^{−q/4}) for the largest q with δ ≤ ε, then the
        // better of it and its neighbour.
        // Each gap's composite is built once (the exchanges of degree 63 take a second).
        let mut seen: BTreeMap<u32, Option<(Composite, f64, f64)>> = BTreeMap::new();
        let mut at = |q: u32| -> Option<(Composite, f64, f64)> {
            seen.entry(q)
                .or_insert_with(|| {
                    let eps = 2f64.powf(-(q as f64) / 4.0);
                    let c = Self::sign_minimax(degrees, eps).ok()?;
                    let delta = c.sign_error(eps);
                    Some((c, eps, delta))
                })
                .clone()
        };
        let mut ok = |q: u32| at(q).is_some_and(|(_, e, d)| d <= e);
        let (mut lo, mut hi) = (16u32, 64u32);
        if !ok(lo) {
            hi = lo;
        } else if ok(hi) {
            lo = hi;
        }
        while hi - lo > 1 {
            let mid = (lo + hi) / 2;
            if ok(mid) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        let cands = [at(lo), at(hi)];
        cands
            .into_iter()
            .flatten()
            .min_by(|a, b| a.1.max(a.2).total_cmp(&b.1.max(b.2)))
            .ok_or(CkksError::Minimax {
                degree: degrees.first().copied().unwrap_or(0),
                lo: 0.0,
                reason: "no gap gives a composite",
            })
    }

    /// Largest `|p(x) − sign x|` over `ε ≤ |x| ≤ 1` (`p` is odd) on a dense geometric and
    /// uniform grid.
    pub fn sign_error(&self, eps: f64) -> f64 {
        sign_grid(eps, 20000)
            .into_iter()
            .map(|x| (self.eval(x) - 1.0).abs())
            .fold(0.0, f64::max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolation_reproduces_polynomials() {
        let p = [0.5, -1.0, 0.25, 2.0, -0.75];
        let s = ChebyshevSeries::from_power_basis(-3.0, 2.0, &p).unwrap();
        for i in 0..50 {
            let x = -3.0 + 5.0 * i as f64 / 49.0;
            let want = p.iter().rev().fold(0.0, |acc, &c| acc * x + c);
            assert!((s.eval(x).re - want).abs() < 1e-10 * want.abs().max(1.0));
        }
        assert_eq!(s.degree(), 4);
    }

    #[test]
    fn interpolation_of_cosine_converges() {
        let s = ChebyshevSeries::interpolate(|x| (6.0 * x).cos(), -1.0, 1.0, 30).unwrap();
        for i in 0..200 {
            let x = -1.0 + 2.0 * i as f64 / 199.0;
            assert!((s.eval(x).re - (6.0 * x).cos()).abs() < 1e-12);
        }
    }

    /// The Remez result equioscillates: `n + 1` alternating extrema of `p − 1` on `[lo, 1]` of
    /// equal size (Chebyshev's criterion for the minimax polynomial of the odd degree-`d`
    /// space), checked on a dense grid independently of the exchange's own search.
    #[test]
    fn minimax_stage_equioscillates() {
        for (d, lo) in [(7usize, 0.1), (15, 1.0 / 512.0), (27, 0.02)] {
            let (c, delta) = remez_odd_one(d, lo).unwrap();
            let xs = sign_grid(lo, 200_000);
            let e: Vec<f64> = xs.iter().map(|&x| odd_eval(&c, x) - 1.0).collect();
            let worst = e.iter().map(|v| v.abs()).fold(0.0, f64::max);
            assert!(
                (worst - delta).abs() <= 1e-6 * delta,
                "d {d}: {worst} vs {delta}"
            );
            // Count sign alternations among points where |e| is within 0.1 % of the maximum.
            let mut signs: Vec<f64> = Vec::new();
            for &v in &e {
                if v.abs() >= worst * 0.999 && signs.last() != Some(&v.signum()) {
                    signs.push(v.signum());
                }
            }
            assert!(
                signs.len() > d.div_ceil(2),
                "d {d}: {} alternations",
                signs.len()
            );
        }
    }

    #[test]
    fn minimax_composite_sign_and_relu() {
        // MPCNN's degrees: from |x| ≥ 2^-7 the sign error is below 2^-11 (measured 2^-11.7).
        let c = Composite::sign_minimax(&[15, 15, 27], 2f64.powi(-7)).unwrap();
        let err = c.sign_error(2f64.powi(-7));
        assert!(err < 2f64.powi(-11), "{err}");
        for i in 0..=2000 {
            let x = -1.0 + i as f64 / 1000.0;
            let want = if x > 0.0 {
                1.0
            } else if x < 0.0 {
                -1.0
            } else {
                0.0
            };
            let got = c.eval(x);
            if x.abs() >= 2f64.powi(-7) {
                assert!((got - want).abs() <= err, "x = {x}: {got}");
            }
            assert!(got.abs() <= 1.0 + err, "x = {x}: {got}");
        }
        let (r, eps, delta) = Composite::relu_minimax(&[15, 15, 27]).unwrap();
        // The crossing of ε and δ(ε): 2^-7.75 and 2^-7.98 (2^-8.75 of ReLU error).
        assert!(eps.max(delta) <= 2f64.powf(-7.5), "ε = {eps}, δ = {delta}");
        for i in 0..=4000 {
            let x = -1.0 + i as f64 / 2000.0;
            let relu = x.max(0.0);
            let approx = x * (1.0 + r.eval(x)) / 2.0;
            assert!(
                (approx - relu).abs() <= eps.max(delta) / 2.0 + 1e-12,
                "x = {x}"
            );
        }
        assert!(Composite::sign_minimax(&[4], 0.1).is_err());
        assert!(Composite::sign_minimax(&[15], 0.0).is_err());
        assert!(ChebyshevSeries::interpolate(|x| x, 1.0, 1.0, 3).is_err());
    }
}
