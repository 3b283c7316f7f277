//! The ring Z_{2^ℓ} of two's-complement fixed-point values, and additive shares over it.

use rand_core::RngCore;

use crate::{MpcError, Result};

/// The ring Z_{2^ℓ}, 2 ≤ ℓ ≤ 64. Elements are `u64` reduced below 2^ℓ; the signed value of `x`
/// is `x − 2^ℓ` when bit ℓ−1 is set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ring {
    bits: u32,
}

impl Ring {
    /// Z_{2^bits}; fails outside 2..=64.
    pub fn new(bits: u32) -> Result<Ring> {
        if !(2..=64).contains(&bits) {
            return Err(MpcError::InvalidBitWidth { bits });
        }
        Ok(Ring { bits })
    }

    /// ℓ.
    #[inline]
    pub fn bits(self) -> u32 {
        self.bits
    }

    /// 2^ℓ − 1.
    #[inline]
    pub fn mask(self) -> u64 {
        if self.bits == 64 {
            u64::MAX
        } else {
            (1u64 << self.bits) - 1
        }
    }

    /// x mod 2^ℓ.
    #[inline]
    pub fn reduce(self, x: u64) -> u64 {
        x & self.mask()
    }

    #[inline]
    pub fn add(self, a: u64, b: u64) -> u64 {
        a.wrapping_add(b) & self.mask()
    }

    #[inline]
    pub fn sub(self, a: u64, b: u64) -> u64 {
        a.wrapping_sub(b) & self.mask()
    }

    #[inline]
    pub fn neg(self, a: u64) -> u64 {
        a.wrapping_neg() & self.mask()
    }

    #[inline]
    pub fn mul(self, a: u64, b: u64) -> u64 {
        a.wrapping_mul(b) & self.mask()
    }

    /// Bit ℓ−1 (the sign bit).
    #[inline]
    pub fn msb(self, x: u64) -> u8 {
        ((x >> (self.bits - 1)) & 1) as u8
    }

    /// The two's-complement value of a reduced element.
    #[inline]
    pub fn to_signed(self, x: u64) -> i64 {
        let sh = 64 - self.bits;
        ((x << sh) as i64) >> sh
    }

    /// A signed integer mod 2^ℓ.
    #[inline]
    pub fn from_signed(self, v: i64) -> u64 {
        (v as u64) & self.mask()
    }

    /// Largest signed value 2^{ℓ−1} − 1.
    pub fn max_signed(self) -> i64 {
        (self.mask() >> 1) as i64
    }

    /// Smallest signed value −2^{ℓ−1}.
    pub fn min_signed(self) -> i64 {
        -(self.max_signed()) - 1
    }

    /// A uniform element.
    pub fn random<R: RngCore + ?Sized>(self, rng: &mut R) -> u64 {
        rng.next_u64() & self.mask()
    }

    /// Checks that every value is reduced.
    pub fn check(self, what: &'static str, xs: &[u64]) -> Result<()> {
        let m = self.mask();
        match xs.iter().position(|&x| x & !m != 0) {
            None => Ok(()),
            Some(index) => Err(MpcError::ValueOutOfRange {
                what,
                index,
                value: xs[index],
                bits: self.bits,
            }),
        }
    }
}

/// One party's additive shares of a fixed-point tensor: the value is the sum of both parties'
/// `data` mod 2^ℓ, at scale 2^`scale`, laid out NCHW row-major like the reference executor.
/// `Debug` shows the shape only, never the share values.
#[derive(Clone)]
pub struct Shares {
    pub ring: Ring,
    pub scale: u32,
    pub data: Vec<u64>,
}

impl std::fmt::Debug for Shares {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shares")
            .field("ring", &self.ring)
            .field("scale", &self.scale)
            .field("len", &self.data.len())
            .finish()
    }
}

impl Shares {
    /// Shares with a check that every element is reduced.
    pub fn new(ring: Ring, scale: u32, data: Vec<u64>) -> Result<Shares> {
        ring.check("shares", &data)?;
        Ok(Shares { ring, scale, data })
    }

    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

/// Splits plaintext ring elements into two uniformly random additive sharings.
pub fn share<R: RngCore + ?Sized>(ring: Ring, values: &[u64], rng: &mut R) -> (Vec<u64>, Vec<u64>) {
    let s0: Vec<u64> = values.iter().map(|_| ring.random(rng)).collect();
    let s1 = values
        .iter()
        .zip(&s0)
        .map(|(&v, &a)| ring.sub(v, a))
        .collect();
    (s0, s1)
}

/// The plaintext from both parties' shares.
pub fn reconstruct(ring: Ring, s0: &[u64], s1: &[u64]) -> Result<Vec<u64>> {
    if s0.len() != s1.len() {
        return Err(MpcError::LengthMismatch {
            what: "reconstruct",
            expected: s0.len(),
            got: s1.len(),
        });
    }
    Ok(s0.iter().zip(s1).map(|(&a, &b)| ring.add(a, b)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_round_trip_and_bounds() {
        for bits in [2, 32, 37, 41, 63, 64] {
            let r = Ring::new(bits).unwrap();
            for v in [0i64, 1, -1, r.max_signed(), r.min_signed()] {
                assert_eq!(r.to_signed(r.from_signed(v)), v);
            }
            assert_eq!(r.msb(r.from_signed(-1)), 1);
            assert_eq!(r.msb(r.from_signed(r.max_signed())), 0);
        }
        assert!(Ring::new(1).is_err());
        assert!(Ring::new(65).is_err());
    }
}
