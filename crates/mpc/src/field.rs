//! Conversion between additive shares over Z_p (after prime-modulus HE) and over Z_{2^ℓ}, and
//! multiplication of two shared values.
//!
//! Z_p → Z_{2^ℓ}: with `h = (p − 1)/2`, P0 adds h so that `u = v + h mod p` lies in [0, p) and
//! `signed(v) = u − h`; the shares wrap (`u0 + u1 = u + w·p`) exactly when
//! `u0 > p − 1 − u1`, one millionaire on ⌈log2 p⌉ bits; `w` is lifted by B2A and
//! `signed(v) = u0 + u1 − w·p − h` is then computed mod 2^ℓ.
//!
//! Z_{2^ℓ} → Z_p: with `u = x + 2^{ℓ−1}` unsigned, `w = [u0 > 2^ℓ − 1 − u1]` (millionaire on ℓ
//! bits), B2A of w mod p, and `x = u0 + u1 − w·2^ℓ − 2^{ℓ−1}` mod p.
//!
//! Multiplication [Gilboa 1999 on COT]: `x·y = x0·y0 + x1·y1 + x0·y1 + x1·y0`; each cross term
//! `x_P·y_Q` is ℓ affine OTs, bit i of `y_Q` choosing between 0 and `x_P·2^i` — computed mod
//! 2^{ℓ−i} and shifted, so its message has ℓ − i bits.

use transport::Channel;

use crate::bits::{mask, BitReader, BitWriter};
use crate::cots::{affine_choose, affine_send, Group};
use crate::session::{Party, Session};
use crate::{MpcError, Result, Ring, Shares};

/// Offset that lifts a value of the fixed-point range |x| < 2^{ℓ−2} into [0, 2^{ℓ−1}) (the
/// in-range conversions below).
fn range_offset(ring: Ring) -> u64 {
    1u64 << (ring.bits() - 2)
}

/// This party's share of `u − w·m − off` in Z_p (`off` subtracted by P0 only) from its shares of
/// the lifted value `u` and of the wrap `w` (`m` = the source modulus reduced mod p).
fn unwrap_mod_p(u: &[u64], w: &[u64], m: u64, off: u64, p0: bool, p: u64) -> Vec<u64> {
    let g = Group::Odd(p);
    let (m, off) = (m % p, off % p);
    u.iter()
        .zip(w)
        .map(|(&ui, &wi)| {
            let t = g.sub(ui % p, ((wi as u128 * m as u128) % p as u128) as u64);
            if p0 {
                g.sub(t, off)
            } else {
                t
            }
        })
        .collect()
}

/// As [`unwrap_mod_p`] in `ring`.
fn unwrap_mod_ring(u: &[u64], w: &[u64], m: u64, off: u64, p0: bool, ring: Ring) -> Vec<u64> {
    u.iter()
        .zip(w)
        .map(|(&ui, &wi)| {
            let t = ring.sub(ring.reduce(ui), ring.mul(wi, ring.reduce(m)));
            if p0 {
                ring.sub(t, ring.reduce(off))
            } else {
                t
            }
        })
        .collect()
}

/// An odd modulus p, 3 ≤ p < 2^62, of Z_p shares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FieldModulus(u64);

impl FieldModulus {
    pub fn new(p: u64) -> Result<FieldModulus> {
        if !(3..1 << 62).contains(&p) || p.is_multiple_of(2) {
            return Err(MpcError::InvalidModulus { p });
        }
        Ok(FieldModulus(p))
    }

    pub fn value(self) -> u64 {
        self.0
    }

    /// Bits of p − 1.
    pub fn bits(self) -> u32 {
        64 - (self.0 - 1).leading_zeros()
    }

    fn check(self, xs: &[u64]) -> Result<()> {
        match xs.iter().position(|&x| x >= self.0) {
            None => Ok(()),
            Some(index) => Err(MpcError::ValueOutOfRange {
                what: "Z_p share",
                index,
                value: xs[index],
                bits: self.bits(),
            }),
        }
    }
}

impl Session {
    /// Shares over `ring` of the signed value (centered in (−p/2, p/2)) of Z_p shares `x`.
    pub fn field_to_ring<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        p: FieldModulus,
        x: &[u64],
        ring: Ring,
    ) -> Result<Vec<u64>> {
        p.check(x)?;
        let pv = p.value();
        let h = (pv - 1) / 2;
        let p0 = self.party() == Party::P0;
        let u: Vec<u64> = if p0 {
            x.iter().map(|&a| (a + h) % pv).collect()
        } else {
            x.to_vec()
        };
        let v: Vec<u64> = if p0 {
            u.clone()
        } else {
            u.iter().map(|&b| pv - 1 - b).collect()
        };
        let w = self.millionaire(ch, &v, p.bits())?;
        let wa = self.b2a(ch, ring, &w)?;
        Ok(unwrap_mod_ring(&u, &wa, pv, h, p0, ring))
    }

    /// Z_p shares of the signed value of shares `x` over `ring` (meaningful when |x| < p/2).
    pub fn ring_to_field<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        ring: Ring,
        x: &[u64],
        p: FieldModulus,
    ) -> Result<Vec<u64>> {
        ring.check("ring_to_field input", x)?;
        let l = ring.bits();
        let pv = p.value() as u128;
        let p0 = self.party() == Party::P0;
        let half = 1u64 << (l - 1);
        let u: Vec<u64> = if p0 {
            x.iter().map(|&a| ring.add(a, half)).collect()
        } else {
            x.to_vec()
        };
        let v: Vec<u64> = if p0 {
            u.clone()
        } else {
            u.iter().map(|&b| !b & ring.mask()).collect()
        };
        let w = self.millionaire(ch, &v, l)?;
        // B2A mod p: f(v) = w0 ⊕ v as an integer.
        let g = Group::Odd(p.value());
        let f0: Vec<u64> = w.iter().map(|&b| b as u64).collect();
        let f1: Vec<u64> = w.iter().map(|&b| 1 - b as u64).collect();
        let wa = self.ot_p0_to_p1(ch, x.len(), &|_| g, &f0, &f1, &w)?;
        let two_l = ((1u128 << l) % pv) as u64;
        Ok(unwrap_mod_p(&u, &wa, two_l, half, p0, p.value()))
    }

    /// As [`Session::ring_to_field`] for values in the fixed-point range |x| < 2^{ℓ−2}, which
    /// needs p > 2^{ℓ−1}: one affine OT per element instead of a millionaire.
    ///
    /// With `u = x + 2^{ℓ−2}` (P0 adds the offset) known to lie in [0, 2^{ℓ−1}), the wrap of the
    /// shares, `w = [u0 + u1 ≥ 2^ℓ]`, is `m0 ∨ m1` for `m_i` the top bit of `u_i`: both clear, the
    /// sum is below 2^ℓ; both set, it is at least 2^ℓ; one set and no wrap would make
    /// `u = u0 + u1 ≥ 2^{ℓ−1}`. P0 offers `f(c) = m0 ∨ c`, P1 chooses `c = m1`, both get Z_p
    /// shares of `w`, and `x = u0 + u1 − w·2^ℓ − 2^{ℓ−2}` mod p. Out of range the result is
    /// wrong (by ±2^ℓ mod p), never an error; docs/protocols/nonlinear.md.
    pub fn ring_to_field_in_range<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        ring: Ring,
        x: &[u64],
        p: FieldModulus,
    ) -> Result<Vec<u64>> {
        ring.check("ring_to_field input", x)?;
        let l = ring.bits();
        if l < 3 || p.bits() < l {
            return Err(MpcError::ConversionRange {
                ell: l,
                p_bits: p.bits(),
            });
        }
        let pv = p.value();
        let p0 = self.party() == Party::P0;
        let off = range_offset(ring);
        let u: Vec<u64> = if p0 {
            x.iter().map(|&a| ring.add(a, off)).collect()
        } else {
            x.to_vec()
        };
        let top: Vec<u8> = u.iter().map(|&v| (v >> (l - 1)) as u8).collect();
        let w = self.or_shares(ch, &top, Group::Odd(pv))?;
        let two_l = ((1u128 << l) % pv as u128) as u64;
        Ok(unwrap_mod_p(&u, &w, two_l, off, p0, pv))
    }

    /// As [`Session::field_to_ring`] for values in the fixed-point range |v| < 2^{ℓ−2} of the
    /// target ring, which needs p ≥ 2^ℓ − 1: one affine OT per element instead of a millionaire.
    ///
    /// With `u = v + 2^{ℓ−2}` mod p (P0 adds the offset) known to lie in [0, 2^{ℓ−1}) ⊆
    /// [0, h], h = (p − 1)/2, the wrap `w = [u0 + u1 ≥ p]` is `m0 ∨ m1` for `m_i = [u_i > h]`:
    /// both clear, the sum is at most p − 1; both set, at least p + 1; one set and no wrap would
    /// make `u ≥ u_i > h`. Then `x = u0 + u1 − w·p − 2^{ℓ−2}` mod 2^ℓ.
    pub fn field_to_ring_in_range<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        p: FieldModulus,
        x: &[u64],
        ring: Ring,
    ) -> Result<Vec<u64>> {
        p.check(x)?;
        let l = ring.bits();
        let pv = p.value();
        if l < 3 || (pv as u128) < (1u128 << l) - 1 {
            return Err(MpcError::ConversionRange {
                ell: l,
                p_bits: p.bits(),
            });
        }
        let h = (pv - 1) / 2;
        let p0 = self.party() == Party::P0;
        let off = range_offset(ring);
        let u: Vec<u64> = if p0 {
            x.iter()
                .map(|&a| ((a as u128 + off as u128) % pv as u128) as u64)
                .collect()
        } else {
            x.to_vec()
        };
        let top: Vec<u8> = u.iter().map(|&v| (v > h) as u8).collect();
        let w = self.or_shares(ch, &top, Group::Pow2(l))?;
        Ok(unwrap_mod_ring(&u, &w, pv, off, p0, ring))
    }

    /// Additive shares in `g` of `m0 ∨ m1`, P_i holding the bits `m` (one affine OT each: P0
    /// offers `f(c) = m0 ∨ c`, P1 chooses `c = m1`).
    pub(crate) fn or_shares<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        m: &[u8],
        g: Group,
    ) -> Result<Vec<u64>> {
        let (f0, f1): (Vec<u64>, Vec<u64>) = if self.party() == Party::P0 {
            (m.iter().map(|&b| b as u64).collect(), vec![1; m.len()])
        } else {
            (Vec::new(), Vec::new())
        };
        self.ot_p0_to_p1(ch, m.len(), &|_| g, &f0, &f1, m)
    }

    /// Shares of the product `x·y` mod 2^ℓ of two shared tensors; the result has scale
    /// `x.scale + y.scale` (truncate afterwards).
    pub fn mul<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        x: &Shares,
        y: &Shares,
    ) -> Result<Shares> {
        if x.ring != y.ring {
            return Err(MpcError::RingMismatch {
                left: x.ring.bits(),
                right: y.ring.bits(),
            });
        }
        if x.len() != y.len() {
            return Err(MpcError::LengthMismatch {
                what: "mul",
                expected: x.len(),
                got: y.len(),
            });
        }
        let ring = x.ring;
        ring.check("mul input", &x.data)?;
        ring.check("mul input", &y.data)?;
        let l = ring.bits() as usize;
        let n = x.len();
        let total = n * l;
        let (mut s, mut r) = self.cots(ch, total, total)?;
        // Instance k = j·ℓ + i: element j, bit i; group Z_{2^{ℓ−i}}.
        let group = |k: usize| Group::Pow2((l - k % l) as u32);
        let choice: Vec<u8> = y
            .data
            .iter()
            .flat_map(|&b| (0..l).map(move |i| ((b >> i) & 1) as u8))
            .collect();
        let zero = vec![0u64; total];
        let f1: Vec<u64> = x
            .data
            .iter()
            .flat_map(|&a| (0..l).map(move |i| a & mask((l - i) as u32)))
            .collect();
        let mut w = BitWriter::default();
        let rs = affine_choose(&mut r, &group, &choice, &mut w);
        let ss = affine_send(&mut s, &group, &zero, &f1, &mut w);
        let peer_bits = total as u64 + crate::cots::affine_msg_bits(total, &group);
        let got = self.exchange(ch, w.finish(), peer_bits, "mul")?;
        let mut rd = BitReader::new(&got, peer_bits, "mul")?;
        let sv = ss.finish(&mut rd);
        let rv = rs.finish(&mut rd, "mul")?;
        let data = (0..n)
            .map(|j| {
                let mut acc = ring.mul(x.data[j], y.data[j]);
                for i in 0..l {
                    let k = j * l + i;
                    acc = ring.add(acc, ring.reduce(sv[k].wrapping_add(rv[k]) << i));
                }
                acc
            })
            .collect();
        Ok(Shares {
            ring,
            scale: x.scale + y.scale,
            data,
        })
    }
}
