//! Baby-step/giant-step evaluation of Chebyshev series on encrypted values, written against an
//! abstract leveled arithmetic ([`LeveledArith`]) so that the same code runs on ciphertexts and on a
//! plaintext simulation (the test oracle).
//!
//! Algorithm [Bossuat–Mouchet–Troncoso-Pastoriza–Hubaux, Eurocrypt 2021, §4.2; Han–Ki 2020]:
//! with `m = ⌈log2(d + 1)⌉` and `l = ⌊m/2⌋`, compute the baby steps `T_0 … T_{2^l}` and the giant
//! steps `T_{2^l}, T_{2^{l+1}}, …, T_{2^{m−1}}` by `T_{a+b} = 2·T_a·T_b − T_{|a−b|}`; split
//! `p = q·T_g + r` recursively with `g` the largest giant step `≤ deg p`, using
//! `T_{g+i} = 2·T_g·T_i − T_{g−i}`; leaves (degree `≤ 2^l`) are linear combinations of baby steps.
//!
//! Scale management is top-down ("scale-invariant" evaluation): a subtree is asked for a result
//! at a given `(level, scale)`. A leaf multiplies each `T_j` by the constant `c_j` encoded so that,
//! after one rescale, the term lands exactly at that `(level, scale)`; the quotient `q` of a split
//! is asked for `(λ + 1, S·q_{λ+1}/s_g)` so that `q·T_g` rescaled lands at `(λ, S)`. Every addition
//! therefore adds operands of equal level and scale, which the scheme checks.
//!
//! Depth: `⌈log2(d + 1)⌉ + 1` levels (the `+1` is the constant multiplication in the leaves), plus
//! one for the affine change of variable when the interval is not `[-1, 1]`.

use std::collections::BTreeMap;

use crate::chebyshev::{ChebyshevSeries, Composite};
use crate::encoder::Complex;
use crate::error::CkksError;

/// The leveled operations the polynomial evaluator needs. Levels count down; level `ℓ` has
/// modulus `q_0 ⋯ q_ℓ`.
pub trait LeveledArith {
    type Value: Clone;
    fn level(&self, x: &Self::Value) -> usize;
    fn scale(&self, x: &Self::Value) -> f64;
    /// `q_level` as a float (the prime a rescale at that level divides by).
    fn prime(&self, level: usize) -> f64;
    /// `a · b`, relinearized and rescaled once: level `min(ℓ_a, ℓ_b) − 1`, scale `s_a·s_b/q`.
    fn mul_rescale(&self, a: &Self::Value, b: &Self::Value) -> Result<Self::Value, CkksError>;
    /// `a + b`, both at the same level and scale.
    fn add(&self, a: &Self::Value, b: &Self::Value) -> Result<Self::Value, CkksError>;
    /// `a − b`, both at the same level and scale.
    fn sub(&self, a: &Self::Value, b: &Self::Value) -> Result<Self::Value, CkksError>;
    /// `c · a` delivered at exactly `(level, scale)`, `level < level(a)`: one rescale.
    fn mul_const_to(
        &self,
        a: &Self::Value,
        c: Complex,
        level: usize,
        scale: f64,
    ) -> Result<Self::Value, CkksError>;
    /// `a + c` (scale and level unchanged).
    fn add_const(&self, a: &Self::Value, c: Complex) -> Result<Self::Value, CkksError>;
    /// `Σ c_i·a_i` delivered at exactly `(level, scale)` (every `a_i` above `level`). The default
    /// rescales each term; implementations may accumulate first and rescale once.
    fn lin_comb_to(
        &self,
        terms: &[(&Self::Value, Complex)],
        level: usize,
        scale: f64,
    ) -> Result<Self::Value, CkksError> {
        let mut acc: Option<Self::Value> = None;
        for (a, c) in terms {
            let t = self.mul_const_to(a, *c, level, scale)?;
            acc = Some(match acc {
                None => t,
                Some(x) => self.add(&x, &t)?,
            });
        }
        acc.ok_or(CkksError::NotEnoughLevels {
            degree: 0,
            needed: 0,
            available: 0,
        })
    }
}

/// Levels consumed by [`evaluate`] for a series of degree `d` on `[-1, 1]`.
pub fn depth(degree: usize) -> usize {
    if degree == 0 {
        return 0;
    }
    ceil_log2(degree + 1) + 1
}

fn ceil_log2(x: usize) -> usize {
    (usize::BITS - (x - 1).leading_zeros()) as usize
}

/// Number of baby steps `2^l` used for degree `d`.
fn baby_log(degree: usize) -> usize {
    (ceil_log2(degree + 1) / 2).max(1)
}

/// The Chebyshev power basis `T_j(x)` computed so far.
struct PowerBasis<A: LeveledArith> {
    t: BTreeMap<usize, A::Value>,
}

impl<A: LeveledArith> PowerBasis<A> {
    /// Computes `T_n` from `T_a T_b` with `a = 2^⌊log2 n⌋ ... ` (`a + b = n`, `a ≥ b`, `a` a power of
    /// two or the largest half), memoized.
    fn get(&mut self, ar: &A, n: usize) -> Result<A::Value, CkksError> {
        if let Some(v) = self.t.get(&n) {
            return Ok(v.clone());
        }
        // n ≥ 2: split n = a + b with a a power of two ≥ b to keep depth ⌈log2 n⌉.
        let a = if n.is_power_of_two() {
            n / 2
        } else {
            1 << (usize::BITS - 1 - n.leading_zeros())
        };
        let b = n - a;
        let ta = self.get(ar, a)?;
        let tb = self.get(ar, b)?;
        let prod = ar.mul_rescale(&ta, &tb)?;
        let two = ar.add(&prod, &prod)?;
        let lvl = ar.level(&two);
        let sc = ar.scale(&two);
        let v = if a == b {
            ar.add_const(&two, Complex::from(-1.0))?
        } else {
            let tdiff = self.get(ar, a - b)?;
            let adj = ar.mul_const_to(&tdiff, Complex::ONE, lvl, sc)?;
            ar.sub(&two, &adj)?
        };
        self.t.insert(n, v.clone());
        Ok(v)
    }
}

/// Evaluates `series` at the encrypted `x` (each slot must lie in `[a, b]`). The result is at level
/// `level(x) − depth`, at the scale of `x` when no change of variable is needed.
pub fn evaluate<A: LeveledArith>(
    ar: &A,
    x: &A::Value,
    series: &ChebyshevSeries,
) -> Result<A::Value, CkksError> {
    evaluate_to(ar, x, series, None)
}

/// As [`evaluate`], delivering the result at `target_scale` when given.
pub fn evaluate_to<A: LeveledArith>(
    ar: &A,
    x: &A::Value,
    series: &ChebyshevSeries,
    target_scale: Option<f64>,
) -> Result<A::Value, CkksError> {
    let degree = series.degree();
    let affine = series.a != -1.0 || series.b != 1.0;
    let needed = depth(degree) + affine as usize;
    let lvl = ar.level(x);
    if lvl < needed {
        return Err(CkksError::NotEnoughLevels {
            degree,
            needed,
            available: lvl,
        });
    }
    let scale = ar.scale(x);
    // y = (2x − a − b)/(b − a), one constant multiplication.
    let y = if affine {
        let s = 2.0 / (series.b - series.a);
        let t = ar.mul_const_to(x, Complex::from(s), lvl - 1, scale)?;
        ar.add_const(
            &t,
            Complex::from(-(series.a + series.b) / (series.b - series.a)),
        )?
    } else {
        x.clone()
    };
    let coeffs = &series.coeffs[..=degree];
    let target_level = ar.level(&y) - depth(degree);
    let target_scale = target_scale.unwrap_or(scale);
    if degree == 0 {
        // A constant: c·y·0 + c. Multiply by zero to land at the target, then add.
        let z = ar.mul_const_to(&y, Complex::ZERO, ar.level(&y) - 1, target_scale)?;
        return ar.add_const(&z, coeffs[0]);
    }
    let mut basis = PowerBasis::<A> { t: BTreeMap::new() };
    basis.t.insert(1, y);
    // Baby and giant steps are computed on demand (memoized): for an even or odd series only
    // the powers of that parity (and the giant powers of two) are ever formed.
    let l = baby_log(degree);
    eval_rec(ar, &mut basis, coeffs, l, target_level, target_scale)
}

/// Evaluates `Σ c_j T_j` at exactly `(level, scale)`.
fn eval_rec<A: LeveledArith>(
    ar: &A,
    basis: &mut PowerBasis<A>,
    c: &[Complex],
    l: usize,
    level: usize,
    scale: f64,
) -> Result<A::Value, CkksError> {
    let d = c.len() - 1;
    if d <= (1 << l) {
        // Leaf: Σ_{j≥1} c_j T_j brought to (level, scale) in one rescale, then + c_0.
        // (a constant leaf multiplies T_1 by zero to land at the target level and scale)
        let mut idx: Vec<(usize, Complex)> = (1..=d)
            .filter(|&j| c[j] != Complex::ZERO)
            .map(|j| (j, c[j]))
            .collect();
        if idx.is_empty() {
            idx.push((1, Complex::ZERO));
        }
        let ts: Vec<A::Value> = idx
            .iter()
            .map(|&(j, _)| basis.get(ar, j))
            .collect::<Result<_, _>>()?;
        let terms: Vec<(&A::Value, Complex)> =
            ts.iter().zip(&idx).map(|(t, &(_, cj))| (t, cj)).collect();
        let acc = ar.lin_comb_to(&terms, level, scale)?;
        return ar.add_const(&acc, c[0]);
    }
    // g: the largest power of two ≤ d.
    // p = q·T_g + r: q_0 = c_g, q_i = 2 c_{g+i}; r_{g−i} = c_{g−i} − c_{g+i}.
    let g = 1usize << (usize::BITS - 1 - d.leading_zeros());
    let mut q = Vec::with_capacity(d - g + 1);
    q.push(c[g]);
    for &ci in &c[g + 1..=d] {
        q.push(ci.scale(2.0));
    }
    let mut r = c[..g].to_vec();
    for i in 1..=d - g {
        r[g - i] -= c[g + i];
    }
    let tg = basis.get(ar, g)?;
    let sg = ar.scale(&tg);
    let q_scale = scale * ar.prime(level + 1) / sg;
    let qv = eval_rec(ar, basis, &q, l, level + 1, q_scale)?;
    let prod = ar.mul_rescale(&qv, &tg)?;
    let rv = eval_rec(ar, basis, &r, l, level, scale)?;
    ar.add(&prod, &rv)
}

/// Evaluates the stages of a composite polynomial one after the other.
pub fn evaluate_composite<A: LeveledArith>(
    ar: &A,
    x: &A::Value,
    comp: &Composite,
) -> Result<A::Value, CkksError> {
    let mut v = x.clone();
    for s in &comp.stages {
        v = evaluate(ar, &v, s)?;
    }
    Ok(v)
}

/// Plaintext simulation of a leveled scheme: slots in the clear, levels and scales tracked as the
/// scheme does, constants rounded to integers as the scheme encodes them. The oracle for tests.
pub struct PlainSim {
    pub primes: Vec<f64>,
}

/// A plaintext-simulated ciphertext.
#[derive(Clone, Debug)]
pub struct SimValue {
    pub slots: Vec<Complex>,
    pub level: usize,
    pub scale: f64,
}

impl PlainSim {
    fn same(&self, a: &SimValue, b: &SimValue) -> Result<(), CkksError> {
        if a.level != b.level {
            return Err(CkksError::LevelMismatch {
                a: a.level,
                b: b.level,
            });
        }
        if !crate::scale_eq(a.scale, b.scale) {
            return Err(CkksError::ScaleMismatch {
                a_log2: a.scale.log2(),
                b_log2: b.scale.log2(),
            });
        }
        Ok(())
    }
}

impl LeveledArith for PlainSim {
    type Value = SimValue;
    fn level(&self, x: &SimValue) -> usize {
        x.level
    }
    fn scale(&self, x: &SimValue) -> f64 {
        x.scale
    }
    fn prime(&self, level: usize) -> f64 {
        self.primes[level]
    }
    fn mul_rescale(&self, a: &SimValue, b: &SimValue) -> Result<SimValue, CkksError> {
        let lvl = a.level.min(b.level);
        if lvl == 0 {
            return Err(CkksError::NoLevelLeft);
        }
        Ok(SimValue {
            slots: a.slots.iter().zip(&b.slots).map(|(x, y)| *x * *y).collect(),
            level: lvl - 1,
            scale: a.scale * b.scale / self.primes[lvl],
        })
    }
    fn add(&self, a: &SimValue, b: &SimValue) -> Result<SimValue, CkksError> {
        self.same(a, b)?;
        Ok(SimValue {
            slots: a.slots.iter().zip(&b.slots).map(|(x, y)| *x + *y).collect(),
            ..a.clone()
        })
    }
    fn sub(&self, a: &SimValue, b: &SimValue) -> Result<SimValue, CkksError> {
        self.same(a, b)?;
        Ok(SimValue {
            slots: a.slots.iter().zip(&b.slots).map(|(x, y)| *x - *y).collect(),
            ..a.clone()
        })
    }
    fn mul_const_to(
        &self,
        a: &SimValue,
        c: Complex,
        level: usize,
        scale: f64,
    ) -> Result<SimValue, CkksError> {
        if level >= a.level {
            return Err(CkksError::InvalidLevel {
                level,
                max: a.level.saturating_sub(1),
            });
        }
        // The scheme multiplies by round(c · q_{level+1} · scale / s_a) and divides by q_{level+1}.
        let k = scale * self.primes[level + 1] / a.scale;
        let cr = Complex::new((c.re * k).round() / k, (c.im * k).round() / k);
        Ok(SimValue {
            slots: a.slots.iter().map(|x| *x * cr).collect(),
            level,
            scale,
        })
    }
    fn add_const(&self, a: &SimValue, c: Complex) -> Result<SimValue, CkksError> {
        Ok(SimValue {
            slots: a.slots.iter().map(|x| *x + c).collect(),
            ..a.clone()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha20Rng;

    fn sim(levels: usize) -> PlainSim {
        // Primes near 2^40 that differ from one another, as a real chain does.
        PlainSim {
            primes: (0..=levels)
                .map(|i| 2f64.powi(40) * (1.0 + 1e-5 * i as f64))
                .collect(),
        }
    }

    #[test]
    fn matches_clenshaw_for_many_degrees() {
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        for degree in [
            1usize, 2, 3, 4, 5, 7, 8, 15, 16, 27, 31, 32, 33, 63, 64, 100, 127,
        ] {
            let coeffs: Vec<f64> = (0..=degree).map(|_| rng.gen_range(-1.0..1.0)).collect();
            let s = ChebyshevSeries::from_real(-1.0, 1.0, &coeffs).unwrap();
            let ar = sim(20);
            let xs: Vec<Complex> = (0..64)
                .map(|_| Complex::from(rng.gen_range(-1.0..1.0)))
                .collect();
            let x = SimValue {
                slots: xs.clone(),
                level: 20,
                scale: 2f64.powi(40),
            };
            let y = evaluate(&ar, &x, &s).unwrap();
            assert_eq!(y.level, 20 - depth(degree), "degree {degree}");
            assert!(scale_close(y.scale, x.scale));
            for (xi, yi) in xs.iter().zip(&y.slots) {
                let want = s.eval(xi.re);
                assert!(
                    (want - *yi).abs() < 1e-9,
                    "degree {degree}: {want:?} vs {yi:?}"
                );
            }
        }
    }

    fn scale_close(a: f64, b: f64) -> bool {
        (a / b - 1.0).abs() < 1e-9
    }

    #[test]
    fn interval_change_and_composite() {
        let ar = sim(30);
        let s = ChebyshevSeries::interpolate(|x| (x * 0.7).sin(), -8.0, 8.0, 40).unwrap();
        let xs: Vec<Complex> = (0..32)
            .map(|i| Complex::from(-8.0 + i as f64 / 2.0))
            .collect();
        let x = SimValue {
            slots: xs.clone(),
            level: 30,
            scale: 2f64.powi(40),
        };
        let y = evaluate(&ar, &x, &s).unwrap();
        assert_eq!(y.level, 30 - depth(40) - 1);
        for (xi, yi) in xs.iter().zip(&y.slots) {
            assert!((yi.re - (xi.re * 0.7).sin()).abs() < 1e-9);
        }
        let comp = Composite::sign_minimax(&[15, 15, 27], 2f64.powi(-7)).unwrap();
        let xs: Vec<Complex> = (1..=32)
            .map(|i| Complex::from(i as f64 / 32.0 - 0.51))
            .collect();
        let x = SimValue {
            slots: xs.clone(),
            level: 30,
            scale: 2f64.powi(40),
        };
        let y = evaluate_composite(&ar, &x, &comp).unwrap();
        let levels: usize = comp.stages.iter().map(|st| depth(st.degree())).sum();
        assert_eq!(y.level, 30 - levels);
        for (xi, yi) in xs.iter().zip(&y.slots) {
            assert!((yi.re - comp.eval(xi.re)).abs() < 1e-8);
        }
    }

    #[test]
    fn too_few_levels_is_an_error() {
        let ar = sim(4);
        let s = ChebyshevSeries::from_real(-1.0, 1.0, &[0.0; 32]).unwrap();
        let mut s2 = s.clone();
        s2.coeffs[31] = Complex::ONE;
        let x = SimValue {
            slots: vec![Complex::ZERO; 4],
            level: 4,
            scale: 2f64.powi(40),
        };
        assert!(matches!(
            evaluate(&ar, &x, &s2),
            Err(CkksError::NotEnoughLevels {
                degree: 31,
                needed: 6,
                available: 4
            })
        ));
    }
}
