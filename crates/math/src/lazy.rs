//! Lazy modular reduction for multiply-accumulates of residues by small signed integers (a
//! convolution whose weights are scalars: docs/protocols/hyena.md).
//!
//! `Σ_j c_j·x_j mod q` with residues `x_j < 2^64` and `|c_j| < 2^32` is accumulated exactly in two
//! 128-bit sums per coefficient, one for positive and one for negative scalars (each term
//! `< 2^96`, so `2^32` terms cannot overflow), and reduced once at the end by Barrett on 128 bits
//! ([`Modulus::reduce_u128`]): one word multiply-add per term instead of a modular product.
//! [`mac_reduced`] is the term-by-term reference it is tested against.

use crate::{MathError, Modulus};

/// Bits of the largest scalar magnitude, and of the largest term count, a [`LazyAcc`] takes.
pub const MAX_SCALAR_BITS: u32 = 32;

/// Exact 128-bit sums of `c·x` over the terms added, per coefficient.
#[derive(Clone, Debug, Default)]
pub struct LazyAcc {
    pos: Vec<u128>,
    neg: Vec<u128>,
    terms: u64,
}

impl LazyAcc {
    /// An empty accumulator of `len` coefficients.
    pub fn new(len: usize) -> LazyAcc {
        LazyAcc {
            pos: vec![0; len],
            neg: vec![0; len],
            terms: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.pos.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pos.is_empty()
    }

    /// Terms added so far.
    pub fn terms(&self) -> u64 {
        self.terms
    }

    /// `acc += c·x` coefficient-wise, exactly (no reduction). Refuses `|c| ≥ 2^32`, a length
    /// other than [`LazyAcc::len`], and a term beyond the `2^32`-th.
    pub fn mac(&mut self, x: &[u64], c: i64) -> Result<(), MathError> {
        if x.len() != self.pos.len() {
            return Err(MathError::InvalidLength {
                expected: self.pos.len(),
                found: x.len(),
            });
        }
        if c.unsigned_abs() >> MAX_SCALAR_BITS != 0 || self.terms >> MAX_SCALAR_BITS != 0 {
            return Err(MathError::LazyOverflow {
                scalar: c,
                max_bits: MAX_SCALAR_BITS,
            });
        }
        self.terms += 1;
        if c == 0 {
            return Ok(());
        }
        let (acc, m) = if c > 0 {
            (&mut self.pos, c as u128)
        } else {
            (&mut self.neg, c.unsigned_abs() as u128)
        };
        for (a, &v) in acc.iter_mut().zip(x) {
            *a += v as u128 * m;
        }
        Ok(())
    }

    /// `(Σ_pos − Σ_neg) mod q` per coefficient into `out`.
    pub fn reduce_into(&self, q: &Modulus, out: &mut [u64]) -> Result<(), MathError> {
        if out.len() != self.pos.len() {
            return Err(MathError::InvalidLength {
                expected: self.pos.len(),
                found: out.len(),
            });
        }
        for ((o, &p), &n) in out.iter_mut().zip(&self.pos).zip(&self.neg) {
            *o = q.sub(q.reduce_u128(p), q.reduce_u128(n));
        }
        Ok(())
    }

    /// Back to zero, keeping the length.
    pub fn clear(&mut self) {
        self.pos.iter_mut().for_each(|a| *a = 0);
        self.neg.iter_mut().for_each(|a| *a = 0);
        self.terms = 0;
    }
}

/// The term-by-term reference: `acc = acc + c·x mod q` with one modular product per coefficient
/// (`x` and `acc` reduced mod `q`).
pub fn mac_reduced(acc: &mut [u64], x: &[u64], c: i64, q: &Modulus) {
    let cq = q.reduce_i64(c);
    for (a, &v) in acc.iter_mut().zip(x) {
        *a = q.add(*a, q.mul(v, cq));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prime::generate_primes;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha20Rng;

    /// Random residues and scalars of every sign and size up to the limit, on primes of 30 to 61
    /// bits: the lazy sums reduce to exactly what the term-by-term reference computes.
    #[test]
    fn lazy_equals_term_by_term() {
        let mut r = ChaCha20Rng::seed_from_u64(3);
        for bits in [30u32, 50, 60, 61] {
            let q = Modulus::new(generate_primes(bits, 16, 1, &[]).unwrap()[0]).unwrap();
            let n = 64;
            let mut lazy = LazyAcc::new(n);
            let mut reference = vec![0u64; n];
            for k in 0..300 {
                let x: Vec<u64> = (0..n).map(|_| r.gen_range(0..q.value())).collect();
                let c: i64 = match k % 4 {
                    0 => r.gen_range(-(1i64 << 31)..(1i64 << 31)),
                    1 => (1i64 << 32) - 1,
                    2 => -((1i64 << 32) - 1),
                    _ => r.gen_range(-3..=3),
                };
                lazy.mac(&x, c).unwrap();
                mac_reduced(&mut reference, &x, c, &q);
            }
            let mut got = vec![0u64; n];
            lazy.reduce_into(&q, &mut got).unwrap();
            assert_eq!(got, reference, "{bits}-bit prime");
            assert_eq!(lazy.terms(), 300);
            lazy.clear();
            lazy.reduce_into(&q, &mut got).unwrap();
            assert!(got.iter().all(|&v| v == 0));
        }
    }

    #[test]
    fn refuses_what_could_overflow() {
        let mut a = LazyAcc::new(4);
        assert!(a.mac(&[1, 2, 3, 4], 1i64 << 32).is_err());
        assert!(a.mac(&[1, 2, 3, 4], i64::MIN).is_err());
        assert!(a.mac(&[1, 2, 3], 1).is_err());
        let q = Modulus::new(97).unwrap();
        assert!(a.reduce_into(&q, &mut [0; 3]).is_err());
        // The worst-case sum at the term limit still fits: (2^64 − 1)(2^32 − 1)·2^32 < 2^128.
        let worst = (u64::MAX as u128) * ((1u128 << 32) - 1);
        assert!(worst.checked_mul(1u128 << 32).is_some());
    }
}
