//! The CKKS canonical embedding and its special FFT.
//!
//! For `n` slots (a power of two, `n ≤ N/2`), a message `z ∈ C^n` is the image of a real polynomial
//! `m'(Y)` of degree `< 2n` under evaluation at the primitive `4n`-th roots `ζ^{5^j}`,
//! `ζ = exp(2πi/4n)`, `j = 0..n` [CKKS17 §3.1; CHKKS18 §3, sparse packing]. The ring polynomial is
//! `m(X) = m'(X^{N/2n})`, so that rotations by `X ↦ X^{5^k}` rotate the slots.
//!
//! Writing `w_k = a_k + i·a_{k+n}` (`k < n`) for the coefficients `a` of `m'`, and using
//! `ζ^{n·5^j} = i`, we get `z_j = Σ_k w_k ζ^{k·5^j}`: an `n × n` "twisted DFT" `V`.
//! `V/√n` is unitary, so the inverse is `V^H / n`. Both directions run in `O(n log n)`
//! by the special FFT [CHKKS18 Alg. 1]: a radix-2 Cooley–Tukey butterfly in which the twiddle of
//! butterfly `j` in a stage of length `len` is `ζ_{4·len}^{5^j mod 4·len}`.

use std::f64::consts::PI;
use std::ops::{Add, AddAssign, Mul, MulAssign, Neg, Sub, SubAssign};

use crate::error::CkksError;

/// A complex number in double precision (what a CKKS slot holds).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Complex {
    pub re: f64,
    pub im: f64,
}

impl Complex {
    pub const ZERO: Complex = Complex { re: 0.0, im: 0.0 };
    pub const ONE: Complex = Complex { re: 1.0, im: 0.0 };
    pub const I: Complex = Complex { re: 0.0, im: 1.0 };

    #[inline]
    pub const fn new(re: f64, im: f64) -> Self {
        Complex { re, im }
    }
    #[inline]
    pub fn from_polar(r: f64, theta: f64) -> Self {
        Complex {
            re: r * theta.cos(),
            im: r * theta.sin(),
        }
    }
    #[inline]
    pub fn conj(self) -> Self {
        Complex {
            re: self.re,
            im: -self.im,
        }
    }
    #[inline]
    pub fn norm_sqr(self) -> f64 {
        self.re * self.re + self.im * self.im
    }
    #[inline]
    pub fn abs(self) -> f64 {
        self.re.hypot(self.im)
    }
    #[inline]
    pub fn scale(self, s: f64) -> Self {
        Complex {
            re: self.re * s,
            im: self.im * s,
        }
    }
}

impl Add for Complex {
    type Output = Complex;
    #[inline]
    fn add(self, o: Complex) -> Complex {
        Complex {
            re: self.re + o.re,
            im: self.im + o.im,
        }
    }
}
impl Sub for Complex {
    type Output = Complex;
    #[inline]
    fn sub(self, o: Complex) -> Complex {
        Complex {
            re: self.re - o.re,
            im: self.im - o.im,
        }
    }
}
impl Mul for Complex {
    type Output = Complex;
    #[inline]
    fn mul(self, o: Complex) -> Complex {
        Complex {
            re: self.re * o.re - self.im * o.im,
            im: self.re * o.im + self.im * o.re,
        }
    }
}
impl Neg for Complex {
    type Output = Complex;
    #[inline]
    fn neg(self) -> Complex {
        Complex {
            re: -self.re,
            im: -self.im,
        }
    }
}
impl AddAssign for Complex {
    #[inline]
    fn add_assign(&mut self, o: Complex) {
        *self = *self + o;
    }
}
impl SubAssign for Complex {
    #[inline]
    fn sub_assign(&mut self, o: Complex) {
        *self = *self - o;
    }
}
impl MulAssign for Complex {
    #[inline]
    fn mul_assign(&mut self, o: Complex) {
        *self = *self * o;
    }
}
impl From<f64> for Complex {
    fn from(re: f64) -> Self {
        Complex { re, im: 0.0 }
    }
}

/// Canonical-embedding encoder for ring degree `N = 2^log_n` (floating-point part: slots ↔ real
/// coefficients; scaling, rounding and RNS reduction happen in the scheme layer).
#[derive(Clone, Debug)]
pub struct Encoder {
    log_n: u32,
    /// `roots[k] = exp(2πi k / 2N)`, `k = 0..=2N` (the last equals the first; kept for symmetry).
    roots: Vec<Complex>,
    /// `rot_group[j] = 5^j mod 2N`, `j < N/2`.
    rot_group: Vec<usize>,
    /// Twiddles of the special FFT, stage by stage: the stage of length `len` (a power of two
    /// `≥ 2`) at `[len/2 − 1, len − 1)`, butterfly `j` holding `roots[(rot_group[j] mod 4·len) ·
    /// 2N/(4·len)]` ([`Encoder::twiddle`]); contiguous so that the butterflies stream them.
    tw_fwd: Vec<Complex>,
    /// The same entries for the inverse: `roots[2N − …]` (the conjugates, read from the table so
    /// that the results do not change).
    tw_inv: Vec<Complex>,
}

impl Encoder {
    /// Smallest and largest supported `log N`.
    pub const MIN_LOG_N: u32 = 2;
    pub const MAX_LOG_N: u32 = 17;

    pub fn new(log_n: u32) -> Result<Self, CkksError> {
        if !(Self::MIN_LOG_N..=Self::MAX_LOG_N).contains(&log_n) {
            return Err(CkksError::InvalidLogN {
                log_n,
                min: Self::MIN_LOG_N,
                max: Self::MAX_LOG_N,
            });
        }
        let n = 1usize << log_n;
        let m = 2 * n;
        let roots: Vec<Complex> = (0..=m)
            .map(|k| Complex::from_polar(1.0, 2.0 * PI * k as f64 / m as f64))
            .collect();
        let mut rot_group = Vec::with_capacity(n / 2);
        let mut g = 1usize;
        for _ in 0..n / 2 {
            rot_group.push(g);
            g = g * 5 % m;
        }
        let (mut tw_fwd, mut tw_inv) = (Vec::with_capacity(n / 2), Vec::with_capacity(n / 2));
        let mut len = 2;
        while len <= n / 2 {
            let lenq = 4 * len;
            for &r in &rot_group[..len / 2] {
                let k = (r % lenq) * (m / lenq);
                tw_fwd.push(roots[k]);
                tw_inv.push(roots[m - k]);
            }
            len *= 2;
        }
        Ok(Encoder {
            log_n,
            roots,
            rot_group,
            tw_fwd,
            tw_inv,
        })
    }

    /// Ring degree `N`.
    pub fn degree(&self) -> usize {
        1 << self.log_n
    }

    /// Maximum slot count `N/2`.
    pub fn max_slots(&self) -> usize {
        1 << (self.log_n - 1)
    }

    /// `5^j mod 2N` for `j < N/2`: slot `j` sits at the root `ζ_{2N}^{5^j}`.
    pub fn rot_group(&self) -> &[usize] {
        &self.rot_group
    }

    /// Twiddle of butterfly `j < len/2` in the special-FFT stage of length `len`:
    /// `ζ_{4·len}^{5^j mod 4·len}` (see [`Encoder::fft_special`]).
    pub fn twiddle(&self, len: usize, j: usize) -> Complex {
        let m = 2 * self.degree();
        let lenq = 4 * len;
        self.roots[(self.rot_group[j] % lenq) * (m / lenq)]
    }

    pub fn check_slots(&self, slots: usize) -> Result<(), CkksError> {
        if slots == 0 || !slots.is_power_of_two() || slots > self.max_slots() {
            return Err(CkksError::InvalidSlots {
                slots,
                max: self.max_slots(),
            });
        }
        Ok(())
    }

    /// In place `w ↦ V w`, `(V w)_j = Σ_k w_k ζ_{4n}^{k·5^j}` with `n = w.len()` (coefficients →
    /// slots). `n` must be a power of two `≤ N/2`.
    pub fn fft_special(&self, w: &mut [Complex]) {
        let n = w.len();
        debug_assert!(n.is_power_of_two() && n <= self.max_slots());
        bit_reverse(w);
        let mut len = 2;
        while len <= n {
            let lenh = len / 2;
            let tw = &self.tw_fwd[lenh - 1..len - 1];
            for chunk in w.chunks_exact_mut(len) {
                let (lo, hi) = chunk.split_at_mut(lenh);
                for j in 0..lenh {
                    let t = tw[j];
                    let u = lo[j];
                    let v = hi[j] * t;
                    lo[j] = u + v;
                    hi[j] = u - v;
                }
            }
            len *= 2;
        }
    }

    /// In place `z ↦ V^{-1} z = V^H z / n` (slots → coefficients), the exact inverse of
    /// [`Encoder::fft_special`].
    pub fn ifft_special(&self, z: &mut [Complex]) {
        let n = z.len();
        debug_assert!(n.is_power_of_two() && n <= self.max_slots());
        let mut len = n;
        while len >= 2 {
            let lenh = len / 2;
            // conj(ζ^k) = ζ^{M-k}
            let tw = &self.tw_inv[lenh - 1..len - 1];
            for chunk in z.chunks_exact_mut(len) {
                let (lo, hi) = chunk.split_at_mut(lenh);
                for j in 0..lenh {
                    let t = tw[j];
                    let u = lo[j] + hi[j];
                    let v = (lo[j] - hi[j]) * t;
                    lo[j] = u;
                    hi[j] = v;
                }
            }
            len /= 2;
        }
        bit_reverse(z);
        let inv = 1.0 / n as f64;
        for x in z.iter_mut() {
            *x = x.scale(inv);
        }
    }

    /// Real ring coefficients (length `N`, unscaled) whose embedding is `values` in `slots` slots.
    /// Missing values are zero. Coefficient `k` of `m'` lands at `X^{k·N/(2·slots)}`.
    pub fn embed(&self, values: &[Complex], slots: usize) -> Result<Vec<f64>, CkksError> {
        self.check_slots(slots)?;
        if values.len() > slots {
            return Err(CkksError::TooManyValues {
                got: values.len(),
                max: slots,
            });
        }
        let mut w = vec![Complex::ZERO; slots];
        w[..values.len()].copy_from_slice(values);
        self.ifft_special(&mut w);
        let n = self.degree();
        let gap = n / (2 * slots);
        let mut coeffs = vec![0.0; n];
        for (k, x) in w.iter().enumerate() {
            coeffs[k * gap] = x.re;
            coeffs[(k + slots) * gap] = x.im;
        }
        Ok(coeffs)
    }

    /// Slots (`slots` of them) of the real ring polynomial with coefficients `coeffs` (length `N`).
    /// Coefficients off the `N/(2·slots)` lattice are ignored (they are zero for a sparse encoding
    /// and are projected away otherwise, which is what the trace to the subring does).
    pub fn project(&self, coeffs: &[f64], slots: usize) -> Result<Vec<Complex>, CkksError> {
        self.check_slots(slots)?;
        let n = self.degree();
        if coeffs.len() != n {
            return Err(CkksError::TooManyValues {
                got: coeffs.len(),
                max: n,
            });
        }
        let gap = n / (2 * slots);
        let mut w: Vec<Complex> = (0..slots)
            .map(|k| Complex::new(coeffs[k * gap], coeffs[(k + slots) * gap]))
            .collect();
        self.fft_special(&mut w);
        Ok(w)
    }
}

/// In-place bit-reversal permutation of a power-of-two-length slice.
pub fn bit_reverse<T>(v: &mut [T]) {
    let n = v.len();
    if n <= 2 {
        return;
    }
    let bits = n.trailing_zeros();
    for i in 0..n {
        let j = i.reverse_bits() >> (usize::BITS - bits);
        if i < j {
            v.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha20Rng;

    fn random_values(rng: &mut impl Rng, n: usize) -> Vec<Complex> {
        (0..n)
            .map(|_| Complex::new(rng.gen_range(-1.0..1.0), rng.gen_range(-1.0..1.0)))
            .collect()
    }

    /// Naive oracle: evaluate the real polynomial `Σ c_i X^i` at `ζ_{2N}^{5^j}` term by term.
    fn naive_eval(coeffs: &[f64], slots: usize) -> Vec<Complex> {
        let n = coeffs.len();
        let m = 2 * n;
        (0..slots)
            .map(|j| {
                let mut g = 1usize;
                for _ in 0..j {
                    g = g * 5 % m;
                }
                let mut acc = Complex::ZERO;
                for (i, &c) in coeffs.iter().enumerate() {
                    let e = (g * i) % m;
                    acc += Complex::from_polar(c, 2.0 * PI * e as f64 / m as f64);
                }
                acc
            })
            .collect()
    }

    #[test]
    fn embed_matches_naive_evaluation() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        for log_n in [3u32, 5, 8, 10] {
            let enc = Encoder::new(log_n).unwrap();
            let mut slots = 1;
            while slots <= enc.max_slots() {
                let z = random_values(&mut rng, slots);
                let coeffs = enc.embed(&z, slots).unwrap();
                let back = naive_eval(&coeffs, slots);
                for (a, b) in z.iter().zip(&back) {
                    assert!(
                        (*a - *b).abs() < 1e-9,
                        "log_n {log_n} slots {slots}: {a:?} vs {b:?}"
                    );
                }
                // The encoding is real and sparse: only multiples of N/(2·slots) are non-zero.
                let gap = enc.degree() / (2 * slots);
                for (i, c) in coeffs.iter().enumerate() {
                    if i % gap != 0 {
                        assert_eq!(*c, 0.0);
                    }
                }
                slots *= 2;
            }
        }
    }

    #[test]
    fn project_matches_naive_and_inverts_embed() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let enc = Encoder::new(9).unwrap();
        for slots in [1usize, 4, 64, 256] {
            let gap = enc.degree() / (2 * slots);
            let mut coeffs = vec![0.0; enc.degree()];
            for i in (0..enc.degree()).step_by(gap) {
                coeffs[i] = rng.gen_range(-1.0..1.0);
            }
            let fast = enc.project(&coeffs, slots).unwrap();
            let slow = naive_eval(&coeffs, slots);
            for (a, b) in fast.iter().zip(&slow) {
                assert!((*a - *b).abs() < 1e-9);
            }
            let z = random_values(&mut rng, slots);
            let back = enc.project(&enc.embed(&z, slots).unwrap(), slots).unwrap();
            for (a, b) in z.iter().zip(&back) {
                assert!((*a - *b).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn conjugate_symmetry_and_real_slots() {
        // Real slot values give a real polynomial; its evaluation at the conjugate roots
        // ζ^{-5^j} is the conjugate (no imaginary leakage).
        let enc = Encoder::new(6).unwrap();
        let z: Vec<Complex> = (0..32)
            .map(|i| Complex::new(i as f64 / 32.0, 0.0))
            .collect();
        let coeffs = enc.embed(&z, 32).unwrap();
        let back = enc.project(&coeffs, 32).unwrap();
        for (a, b) in z.iter().zip(&back) {
            assert!((*a - *b).abs() < 1e-12);
        }
    }

    #[test]
    fn bad_slot_counts_are_errors() {
        let enc = Encoder::new(5).unwrap();
        assert!(matches!(
            enc.embed(&[], 3),
            Err(CkksError::InvalidSlots { .. })
        ));
        assert!(matches!(
            enc.embed(&[], 32),
            Err(CkksError::InvalidSlots { .. })
        ));
        assert!(matches!(
            enc.embed(&[Complex::ONE; 5], 4),
            Err(CkksError::TooManyValues { got: 5, max: 4 })
        ));
        assert!(Encoder::new(1).is_err());
    }
}
