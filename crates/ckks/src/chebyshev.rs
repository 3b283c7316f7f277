//! Chebyshev interpolation and series on an interval `[a, b]`.
//!
//! A series is `p(x) = Σ_{j=0}^{d} c_j T_j(y)`, `y = (2x − a − b)/(b − a)`, with `T_j` the Chebyshev
//! polynomials of the first kind. Interpolation at the `d + 1` Chebyshev nodes
//! `y_k = cos(π(k + ½)/(d + 1))` gives `c_j = (2 − [j = 0])/(d + 1) · Σ_k f(x_k) T_j(y_k)`, which is
//! near-minimax for smooth `f` [Trefethen, ATAP ch. 4] and reproduces polynomials of degree `≤ d`
//! exactly.

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

    /// Composite sign approximation with the odd polynomials
    /// `f_n(x) = Σ_{i=0}^{n} 4^{-i} C(2i, i) · x (1 − x²)^i` of degree `2n + 1`
    /// [Cheon–Kim–Kim–Lee, "Efficient homomorphic comparison methods with optimal complexity",
    /// Asiacrypt 2020, §3]: each stage maps `[-1, 1]` into `[-1, 1]` and pushes values towards ±1.
    /// `degrees` are the odd degrees of the stages, e.g. `[15, 15, 27]` (those of Lee et al.'s
    /// ReLU, although Lee et al. use minimax polynomials of those degrees).
    pub fn sign(degrees: &[usize]) -> Result<Self, CkksError> {
        let mut stages = Vec::with_capacity(degrees.len());
        for &d in degrees {
            if d % 2 == 0 {
                return Err(CkksError::InvalidInterval {
                    a: -1.0,
                    b: d as f64,
                });
            }
            let n = (d - 1) / 2;
            let f = move |x: f64| {
                let mut acc = 0.0;
                let mut binom = 1.0; // 4^{-i} C(2i, i)
                let mut pw = x; // x (1 − x²)^i
                for i in 0..=n {
                    acc += binom * pw;
                    binom *= (2 * i + 1) as f64 / (2 * i + 2) as f64;
                    pw *= 1.0 - x * x;
                }
                acc
            };
            // Interpolation of degree d reproduces the degree-d polynomial exactly.
            stages.push(ChebyshevSeries::interpolate(f, -1.0, 1.0, d)?);
        }
        Ok(Composite { stages })
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

    #[test]
    fn composite_sign_is_close_to_sign() {
        let c = Composite::sign(&[15, 15, 27]).unwrap();
        // f_7∘f_7∘f_13(0.1) = 0.99999971 (computed independently in double precision).
        assert!((c.eval(0.1) - 0.999_999_715).abs() < 1e-8);
        for i in 10..=100 {
            let x = 0.01 * i as f64;
            assert!((c.eval(x) - 1.0).abs() < 1e-3, "x = {x}: {}", c.eval(x));
            assert!((c.eval(-x) + 1.0).abs() < 1e-3);
        }
        assert!(Composite::sign(&[4]).is_err());
        assert!(ChebyshevSeries::interpolate(|x| x, 1.0, 1.0, 3).is_err());
    }
}
