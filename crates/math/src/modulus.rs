//! Arithmetic modulo a single word-sized modulus `q < 2^62`.
//!
//! Multiplication uses Barrett reduction with the 128-bit constant
//! `floor(2^128 / q)`; fixed multiplicands use Shoup's precomputation
//! `w' = floor(w · 2^64 / q)`, valid for `q < 2^63`.

use crate::MathError;

/// Largest supported modulus bit width (tfhe-ntt's fast path needs `q < 2^62`).
pub const MAX_MODULUS_BITS: u32 = 62;

/// A modulus `2 ≤ q < 2^62` with precomputed Barrett constants.
///
/// Invariant: every function taking residues expects them in `[0, q)` and
/// returns values in `[0, q)` unless named `lazy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Modulus {
    q: u64,
    /// `floor(2^64 / q)`: Shoup constant of 1, for branch-free word reduction.
    one_shoup: u64,
    ratio_lo: u64,
    ratio_hi: u64,
}

impl Modulus {
    /// Builds a modulus; any `2 ≤ q < 2^62` (prime or not) is accepted.
    pub fn new(q: u64) -> Result<Self, MathError> {
        if q < 2 || q >> MAX_MODULUS_BITS != 0 {
            return Err(MathError::InvalidModulus { modulus: q });
        }
        // floor((2^128 - 1) / q) equals floor(2^128 / q) unless q | 2^128; the
        // final correction loop of `reduce_u128` absorbs that one-unit gap.
        let ratio = u128::MAX / q as u128;
        Ok(Self {
            q,
            one_shoup: ((1u128 << 64) / q as u128) as u64,
            ratio_lo: ratio as u64,
            ratio_hi: (ratio >> 64) as u64,
        })
    }

    /// The modulus value.
    #[inline(always)]
    pub fn value(&self) -> u64 {
        self.q
    }

    /// Bit length of `q`.
    pub fn bits(&self) -> u32 {
        64 - self.q.leading_zeros()
    }

    #[inline(always)]
    pub fn add(&self, a: u64, b: u64) -> u64 {
        let s = a + b;
        if s >= self.q {
            s - self.q
        } else {
            s
        }
    }

    #[inline(always)]
    pub fn sub(&self, a: u64, b: u64) -> u64 {
        if a >= b {
            a - b
        } else {
            a + self.q - b
        }
    }

    #[inline(always)]
    pub fn neg(&self, a: u64) -> u64 {
        if a == 0 {
            0
        } else {
            self.q - a
        }
    }

    /// Barrett reduction of any 128-bit value.
    #[inline(always)]
    pub fn reduce_u128(&self, x: u128) -> u64 {
        let x0 = x as u64;
        let x1 = (x >> 64) as u64;
        // quotient estimate floor(x · ratio / 2^128); it undershoots by at most 2.
        let p00 = (x0 as u128 * self.ratio_lo as u128) >> 64;
        let p01 = x0 as u128 * self.ratio_hi as u128;
        let p10 = x1 as u128 * self.ratio_lo as u128;
        let mid = p00 + (p01 as u64 as u128) + (p10 as u64 as u128);
        let hi = x1
            .wrapping_mul(self.ratio_hi)
            .wrapping_add((p01 >> 64) as u64)
            .wrapping_add((p10 >> 64) as u64)
            .wrapping_add((mid >> 64) as u64);
        let mut r = x0.wrapping_sub(hi.wrapping_mul(self.q));
        while r >= self.q {
            r -= self.q;
        }
        r
    }

    /// Reduction of any 64-bit word (Shoup multiplication by 1, branch-free).
    #[inline(always)]
    pub fn reduce(&self, x: u64) -> u64 {
        let qhat = ((x as u128 * self.one_shoup as u128) >> 64) as u64;
        let r = x.wrapping_sub(qhat.wrapping_mul(self.q));
        r.min(r.wrapping_sub(self.q))
    }

    /// Maps a signed integer to `[0, q)`.
    #[inline(always)]
    pub fn reduce_i64(&self, x: i64) -> u64 {
        if x >= 0 {
            self.reduce(x as u64)
        } else {
            self.neg(self.reduce(x.unsigned_abs()))
        }
    }

    /// Maps a signed 128-bit integer to `[0, q)`.
    #[inline(always)]
    pub fn reduce_i128(&self, x: i128) -> u64 {
        if x >= 0 {
            self.reduce_u128(x as u128)
        } else {
            self.neg(self.reduce_u128(x.unsigned_abs()))
        }
    }

    /// Centered representative in `(-q/2, q/2]`.
    #[inline(always)]
    pub fn center(&self, a: u64) -> i64 {
        if a > self.q / 2 {
            a as i64 - self.q as i64
        } else {
            a as i64
        }
    }

    #[inline(always)]
    pub fn mul(&self, a: u64, b: u64) -> u64 {
        self.reduce_u128(a as u128 * b as u128)
    }

    /// Shoup precomputation `floor(w · 2^64 / q)` for a fixed multiplicand `w < q`.
    #[inline(always)]
    pub fn shoup(&self, w: u64) -> u64 {
        (((w as u128) << 64) / self.q as u128) as u64
    }

    /// `a · w mod q` with `w_shoup = self.shoup(w)`; `a` may be any u64.
    #[inline(always)]
    pub fn mul_shoup(&self, a: u64, w: u64, w_shoup: u64) -> u64 {
        let r = self.mul_shoup_lazy(a, w, w_shoup);
        if r >= self.q {
            r - self.q
        } else {
            r
        }
    }

    /// As [`Self::mul_shoup`] but the result lies in `[0, 2q)`.
    #[inline(always)]
    pub fn mul_shoup_lazy(&self, a: u64, w: u64, w_shoup: u64) -> u64 {
        let qhat = ((a as u128 * w_shoup as u128) >> 64) as u64;
        a.wrapping_mul(w).wrapping_sub(qhat.wrapping_mul(self.q))
    }

    pub fn pow(&self, mut base: u64, mut e: u64) -> u64 {
        let mut acc = 1 % self.q;
        base = self.reduce(base);
        while e > 0 {
            if e & 1 == 1 {
                acc = self.mul(acc, base);
            }
            base = self.mul(base, base);
            e >>= 1;
        }
        acc
    }

    /// Inverse of `a` modulo `q` (extended Euclid), `None` when `gcd(a, q) ≠ 1`.
    pub fn inv(&self, a: u64) -> Option<u64> {
        let (mut r0, mut r1) = (self.q as i128, self.reduce(a) as i128);
        let (mut t0, mut t1) = (0i128, 1i128);
        while r1 != 0 {
            let k = r0 / r1;
            (r0, r1) = (r1, r0 - k * r1);
            (t0, t1) = (t1, t0 - k * t1);
        }
        if r0 != 1 {
            return None;
        }
        Some(self.reduce_i128(t0))
    }

    /// Uniform residue from a 64-bit random source (rejection sampling, no bias).
    #[inline]
    pub fn sample_uniform<R: rand_core::RngCore + ?Sized>(&self, rng: &mut R) -> u64 {
        let mask = u64::MAX >> (self.q - 1).leading_zeros();
        loop {
            let x = rng.next_u64() & mask;
            if x < self.q {
                return x;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn mul_matches_u128(q in 2u64..(1 << 62), a: u64, b: u64) {
            let m = Modulus::new(q).unwrap();
            let (a, b) = (a % q, b % q);
            prop_assert_eq!(m.mul(a, b) as u128, a as u128 * b as u128 % q as u128);
            let ws = m.shoup(b);
            prop_assert_eq!(m.mul_shoup(a, b, ws), m.mul(a, b));
        }

        #[test]
        fn reduce_u64_matches(q in 2u64..(1 << 62), x: u64) {
            let m = Modulus::new(q).unwrap();
            prop_assert_eq!(m.reduce(x), x % q);
        }

        #[test]
        fn reduce_u128_matches(q in 2u64..(1 << 62), x: u128) {
            let m = Modulus::new(q).unwrap();
            prop_assert_eq!(m.reduce_u128(x) as u128, x % q as u128);
        }

        #[test]
        fn inverse(q in 3u64..(1 << 62), a in 1u64..u64::MAX) {
            let m = Modulus::new(q).unwrap();
            if let Some(ai) = m.inv(a) {
                prop_assert_eq!(m.mul(ai, a % q), 1);
            }
        }
    }

    #[test]
    fn power_of_two_modulus() {
        let m = Modulus::new(1 << 40).unwrap();
        assert_eq!(m.mul((1 << 40) - 1, (1 << 40) - 1), 1);
        assert_eq!(m.reduce_i64(-1), (1 << 40) - 1);
        assert!(Modulus::new(1 << 62).is_err());
        assert!(Modulus::new(1).is_err());
    }
}
