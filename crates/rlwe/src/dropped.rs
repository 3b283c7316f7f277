//! `c_0` with its low bits dropped, over an optional support: the headerless codec of a seeded
//! query [docs/security.md, "Query size"; Cheetah §3 sends the seed and `c_0` only].
//!
//! A coefficient `c ∈ [0, Q_l)` of `c_0` is written in mixed radix over the primes,
//! `c = x_0 + q_0·x_1 + q_0q_1·x_2 + …` with `x_i ∈ [0, q_i)`. Dropping `D` low bits splits
//! `D = Σ_{i<j_0} bits(q_i) + d` with `d < bits(q_{j_0})`: the digits below `j_0` are
//! not sent, `x_{j_0}` loses its `d` low bits, the digits above go in full (the top digit is
//! always sent, so `D ≤` [`max_drop_bits`]). The reader puts each missing part at its midpoint
//! (`⌊q_i/2⌋` for a dropped digit, `2^{d−1}` below the kept bits), so it gets `c + δ` with
//! `|δ| ≤ q_0⋯q_{j_0−1}·(2^{d−1} + 1)` ([`drop_error_bound`]): one more noise term of the
//! ciphertext. Rounding is a public function of an RLWE sample, so what is sent stays
//! pseudorandom.
//!
//! Wire form, headerless (both parties know the primes, `D` and the support): the coefficients
//! of the support `S` (increasing; all `N` without one), digit-major — the kept top bits of
//! `x_{j_0}` for every coefficient of `S` at `bits(q_{j_0}) − d` bits, then `x_{j_0+1}` for all at
//! `bits(q_{j_0+1})` bits, … — one bit stream per digit, each zero-padded to a byte. With nothing
//! dropped the digits are the RNS residues themselves. Its length is [`dropped_len`].

use std::sync::Arc;

use math::pack::{pack_bits, packed_len, unpack_bits};
use math::{Poly, Representation, RnsContext};

use crate::RlweError;

/// `(j_0, d)` for `drop_bits ≤` [`max_drop_bits`]: digits fully dropped, bits dropped from
/// digit `j_0` (`d < bits(q_{j_0})`).
fn split(bits: &[u32], drop_bits: u32) -> Result<(usize, u32), RlweError> {
    let max = max_drop_bits(bits);
    if bits.is_empty() || drop_bits > max {
        return Err(RlweError::DropTooLarge {
            drop_bits,
            max_bits: max,
        });
    }
    let (mut j0, mut d) = (0, drop_bits);
    while j0 + 1 < bits.len() && d >= bits[j0] {
        d -= bits[j0];
        j0 += 1;
    }
    Ok((j0, d))
}

/// Largest number of low bits that may be dropped for primes of widths `prime_bits` (all but the
/// top digit).
pub fn max_drop_bits(prime_bits: &[u32]) -> u32 {
    prime_bits.iter().rev().skip(1).sum()
}

/// Bytes of `count` coefficients with `drop_bits` low bits dropped, for primes of widths
/// `prime_bits` (`bits(q_i)`, in chain order): computed from the widths alone.
pub fn dropped_len(prime_bits: &[u32], drop_bits: u32, count: usize) -> Result<usize, RlweError> {
    let (j0, d) = split(prime_bits, drop_bits)?;
    Ok(packed_len(count, prime_bits[j0] - d)
        + prime_bits[j0 + 1..]
            .iter()
            .map(|&b| packed_len(count, b))
            .sum::<usize>())
}

/// Bound on `|δ|`, the reader's error per coefficient, for the primes `moduli` and `drop_bits`
/// (0 when nothing is dropped): `q_0⋯q_{j_0−1}·(2^{d−1} + 1)` (`2^{d−1}` read as 0 for `d = 0`).
pub fn drop_error_bound(moduli: &[math::Modulus], drop_bits: u32) -> Result<f64, RlweError> {
    let bits: Vec<u32> = moduli.iter().map(|m| m.bits()).collect();
    let (j0, d) = split(&bits, drop_bits)?;
    if drop_bits == 0 {
        return Ok(0.0);
    }
    let low: f64 = moduli[..j0].iter().map(|m| m.value() as f64).product();
    let part = if d > 0 { 2f64.powi(d as i32 - 1) } else { 0.0 };
    Ok(low * (part + 1.0))
}

/// Support validation: strictly increasing, every index `< n`.
fn check_support(support: &[usize], n: usize) -> Result<(), RlweError> {
    for (pos, w) in support.windows(2).enumerate() {
        if w[1] <= w[0] {
            return Err(RlweError::UnsortedIndices { position: pos + 1 });
        }
    }
    match support.last() {
        Some(&index) if index >= n => Err(RlweError::IndexOutOfRange { index, n }),
        _ => Ok(()),
    }
}

/// Writer and validating reader of `c_0` with dropped low bits, for one ring, level and drop
/// (module documentation).
pub struct DroppedCodec {
    ctx: Arc<RnsContext>,
    /// Primes used: the first `l` of the context.
    l: usize,
    j0: usize,
    d: u32,
    /// `inv[i][a] = q_a⁻¹ mod q_i` (`a < i`).
    inv: Vec<Vec<u64>>,
    /// `prefix[m][i] = q_0⋯q_{i−1} mod q_m`.
    prefix: Vec<Vec<u64>>,
}

impl DroppedCodec {
    /// The codec of polynomials over the first `num_moduli` primes of `ctx` with `drop_bits` low
    /// bits dropped (at most [`max_drop_bits`] of those primes).
    pub fn new(
        ctx: &Arc<RnsContext>,
        num_moduli: usize,
        drop_bits: u32,
    ) -> Result<DroppedCodec, RlweError> {
        if num_moduli == 0 || num_moduli > ctx.len() {
            return Err(RlweError::InvalidLevel {
                level: num_moduli,
                max: ctx.len(),
            });
        }
        let ms = &ctx.moduli()[..num_moduli];
        let bits: Vec<u32> = ms.iter().map(|m| m.bits()).collect();
        let (j0, d) = split(&bits, drop_bits)?;
        let l = num_moduli;
        let mut inv = Vec::with_capacity(l);
        for i in 0..l {
            let mut row = Vec::with_capacity(i);
            for a in 0..i {
                row.push(
                    ms[i]
                        .inv(ms[i].reduce(ms[a].value()))
                        .ok_or(RlweError::BadField {
                            field: "prime chain (repeated prime)",
                            value: ms[a].value(),
                        })?,
                );
            }
            inv.push(row);
        }
        let prefix = (0..l)
            .map(|m| {
                let mut acc = 1u64;
                (0..l)
                    .map(|i| {
                        let v = acc;
                        acc = ms[m].mul(acc, ms[m].reduce(ms[i].value()));
                        v
                    })
                    .collect()
            })
            .collect();
        Ok(DroppedCodec {
            ctx: ctx.clone(),
            l,
            j0,
            d,
            inv,
            prefix,
        })
    }

    /// Bytes of `count` coefficients ([`dropped_len`]).
    pub fn len(&self, count: usize) -> usize {
        let ms = &self.ctx.moduli()[..self.l];
        packed_len(count, ms[self.j0].bits() - self.d)
            + ms[self.j0 + 1..]
                .iter()
                .map(|m| packed_len(count, m.bits()))
                .sum::<usize>()
    }

    fn coefs<'s>(&self, support: Option<&'s [usize]>, all: &'s mut Vec<usize>) -> &'s [usize] {
        match support {
            Some(s) => s,
            None => {
                *all = (0..self.ctx.n()).collect();
                all
            }
        }
    }

    /// Appends `c0` (coefficient form, this codec's level) with the low bits dropped, at the
    /// coefficients of `support` (strictly increasing, each `< N`; `None`: all `N`) in order.
    pub fn encode(
        &self,
        c0: &Poly,
        support: Option<&[usize]>,
        out: &mut Vec<u8>,
    ) -> Result<(), RlweError> {
        if c0.representation() != Representation::Coefficient {
            return Err(RlweError::BadField {
                field: "representation",
                value: 1,
            });
        }
        if c0.num_moduli() != self.l || **c0.context() != *self.ctx {
            return Err(RlweError::LevelMismatch {
                lhs: c0.num_moduli(),
                rhs: self.l,
            });
        }
        if let Some(s) = support {
            check_support(s, self.ctx.n())?;
        }
        let mut all = Vec::new();
        let coefs = self.coefs(support, &mut all);
        let (ms, l, cnt) = (&self.ctx.moduli()[..self.l], self.l, coefs.len());
        out.reserve(self.len(cnt));
        if self.j0 == 0 && self.d == 0 {
            for (i, m) in ms.iter().enumerate() {
                let res = c0.residue(i);
                let vals: Vec<u64> = coefs.iter().map(|&c| res[c]).collect();
                pack_bits(&vals, m.bits(), out);
            }
            return Ok(());
        }
        // Mixed-radix digits, digit-major:
        // x_i = (…((r_i − x_0)·q_0⁻¹ − x_1)·q_1⁻¹ − …)·q_{i−1}⁻¹ mod q_i.
        let mut x = vec![0u64; l * cnt];
        for (t, &c) in coefs.iter().enumerate() {
            for i in 0..l {
                let m = ms[i];
                let mut v = c0.residue(i)[c];
                for a in 0..i {
                    v = m.mul(m.sub(v, m.reduce(x[a * cnt + t])), self.inv[i][a]);
                }
                x[i * cnt + t] = v;
            }
        }
        let top: Vec<u64> = x[self.j0 * cnt..(self.j0 + 1) * cnt]
            .iter()
            .map(|&v| v >> self.d)
            .collect();
        pack_bits(&top, ms[self.j0].bits() - self.d, out);
        for (i, m) in ms.iter().enumerate().skip(self.j0 + 1) {
            pack_bits(&x[i * cnt..(i + 1) * cnt], m.bits(), out);
        }
        Ok(())
    }

    /// Reads [`Self::encode`] output for the same `support`: checks the support (strictly
    /// increasing, each `< N`), the exact length, the zero padding and every digit's range, and
    /// returns `c_0 + δ` in coefficient form, zero outside the support. Never panics.
    pub fn decode(&self, bytes: &[u8], support: Option<&[usize]>) -> Result<Poly, RlweError> {
        let n = self.ctx.n();
        if let Some(s) = support {
            check_support(s, n)?;
        }
        let mut all = Vec::new();
        let coefs = self.coefs(support, &mut all);
        let (ms, l, cnt) = (&self.ctx.moduli()[..self.l], self.l, coefs.len());
        let expected = self.len(cnt);
        if bytes.len() != expected {
            return Err(RlweError::BadLength {
                expected,
                found: bytes.len(),
            });
        }
        let partial = ms[self.j0].bits() - self.d;
        let mut x = vec![0u64; l * cnt];
        let mut off = 0;
        let mut take = |len: usize| -> &[u8] {
            let s = &bytes[off..off + len];
            off += len;
            s
        };
        // Dropped digits: the midpoint; the partial digit: its top bits and the midpoint below.
        for i in 0..self.j0 {
            x[i * cnt..(i + 1) * cnt].fill(ms[i].value() / 2);
        }
        let q = ms[self.j0].value();
        let top = unpack_bits(take(packed_len(cnt, partial)), partial, cnt)?;
        let half = if self.d > 0 { 1u64 << (self.d - 1) } else { 0 };
        for (dst, t) in x[self.j0 * cnt..(self.j0 + 1) * cnt].iter_mut().zip(top) {
            let v = t << self.d;
            if v >= q {
                return Err(RlweError::ValueOutOfRange {
                    value: v,
                    modulus: q,
                });
            }
            *dst = v + half;
        }
        for i in self.j0 + 1..l {
            let m = ms[i];
            let v = unpack_bits(take(packed_len(cnt, m.bits())), m.bits(), cnt)?;
            if let Some(&value) = v.iter().find(|&&d| d >= m.value()) {
                return Err(RlweError::ValueOutOfRange {
                    value,
                    modulus: m.value(),
                });
            }
            x[i * cnt..(i + 1) * cnt].copy_from_slice(&v);
        }
        let mut data = vec![0u64; l * n];
        if self.j0 == 0 && self.d == 0 {
            // Nothing dropped: the digits are the residues themselves, as `encode` wrote them.
            for mi in 0..l {
                for (t, &c) in coefs.iter().enumerate() {
                    data[mi * n + c] = x[mi * cnt + t];
                }
            }
        } else {
            // c_0' mod q_m = Σ_i x_i·(q_0⋯q_{i−1} mod q_m).
            for (mi, m) in ms.iter().enumerate() {
                let pre = &self.prefix[mi];
                for (t, &c) in coefs.iter().enumerate() {
                    let mut acc = 0u64;
                    for i in 0..l {
                        acc = m.add(acc, m.mul(m.reduce(x[i * cnt + t]), pre[i]));
                    }
                    data[mi * n + c] = acc;
                }
            }
        }
        Ok(Poly::from_residues(
            &self.ctx,
            l,
            Representation::Coefficient,
            data,
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{presets, Params};
    use math::baseconv::crt_reconstruct;
    use math::Modulus;
    use rand_chacha::ChaCha20Rng;
    use rand_core::{RngCore, SeedableRng};

    // Independent big-integer oracle (little-endian u64 limbs): the digits by long division.
    fn divmod(x: &[u64], q: u64) -> (Vec<u64>, u64) {
        let mut out = vec![0u64; x.len()];
        let mut r = 0u128;
        for i in (0..x.len()).rev() {
            let cur = (r << 64) | x[i] as u128;
            out[i] = (cur / q as u128) as u64;
            r = cur % q as u128;
        }
        (out, r as u64)
    }
    fn mul_add(x: &[u64], m: u64, a: u64) -> Vec<u64> {
        let mut out = Vec::with_capacity(x.len() + 1);
        let mut carry = a as u128;
        for &l in x {
            let t = l as u128 * m as u128 + carry;
            out.push(t as u64);
            carry = t >> 64;
        }
        out.push(carry as u64);
        out
    }
    fn add(x: &[u64], y: &[u64]) -> Vec<u64> {
        let mut out = Vec::new();
        let mut carry = 0u128;
        for i in 0..x.len().max(y.len()) + 1 {
            let t = *x.get(i).unwrap_or(&0) as u128 + *y.get(i).unwrap_or(&0) as u128 + carry;
            out.push(t as u64);
            carry = t >> 64;
        }
        out
    }
    fn to_f64(x: &[u64]) -> f64 {
        x.iter()
            .rev()
            .fold(0.0, |acc, &l| acc * 2f64.powi(64) + l as f64)
    }

    /// (reader's expected value as an integer, δ) for one coefficient `x` ∈ [0, Q_l):
    /// x = low + P·(x_j + q_j·hi) with P = q_0⋯q_{j−1}; sent ⌊x_j/2^d⌋ and hi; read
    /// M + P·(⌊x_j/2^d⌋·2^d + 2^{d−1}) + P·q_j·hi, M = Σ_{i<j} ⌊q_i/2⌋·q_0⋯q_{i−1}.
    fn oracle(x: &[u64], ms: &[Modulus], j0: usize, d: u32) -> (Vec<u64>, f64) {
        let (mut h, mut low, mut mid, mut p) = (x.to_vec(), vec![0u64], vec![0u64], vec![1u64]);
        for m in &ms[..j0] {
            let (quot, r) = divmod(&h, m.value());
            h = quot;
            low = add(&low, &mul_add(&p, r, 0));
            mid = add(&mid, &mul_add(&p, m.value() / 2, 0));
            p = mul_add(&p, m.value(), 0);
        }
        let (hi, xj) = divmod(&h, ms[j0].value());
        let half = if d > 0 { 1u64 << (d - 1) } else { 0 };
        let v = ((xj >> d) << d) + half;
        // P·q_j·hi, as products by single limbs.
        let mut top = hi;
        for m in ms[..=j0].iter().rev() {
            top = mul_add(&top, m.value(), 0);
        }
        let read = add(&add(&mid, &mul_add(&p, v, 0)), &top);
        let delta = to_f64(&mid) - to_f64(&low) + to_f64(&p) * (v as i128 - xj as i128) as f64;
        (read, delta)
    }

    fn preset_params() -> Vec<std::sync::Arc<Params>> {
        [
            presets::cheetah_n4096_q55_54_t2l(37),
            presets::cheetah_n8192_q165_t2l(37),
            presets::cheetah_n8192_q218_t2l(37),
            presets::bfv_n8192_q120_p60_t2l(37),
            presets::bfv_n8192_q180_t2l(37),
        ]
        .into_iter()
        .map(|l| Params::new(l.unwrap()).unwrap())
        .collect()
    }

    /// Every preset linear uses, every level: the reader returns exactly the oracle's value at
    /// every coefficient, |δ| ≤ bound and max |δ| ≥ bound/4, for no drop, drops inside the first
    /// digit, at and across a digit boundary and the largest; lengths as [`dropped_len`].
    #[test]
    fn round_trip_matches_big_integer_oracle() {
        let mut rng = ChaCha20Rng::seed_from_u64(11);
        for params in preset_params() {
            let ctx = params.ctx_q();
            for l in 1..=ctx.len() {
                let ms = &ctx.moduli()[..l];
                let bits: Vec<u32> = ms.iter().map(|m| m.bits()).collect();
                let c0 = math::sample::uniform_poly(ctx, l, Representation::Coefficient, &mut rng);
                // A sparse support keeps the oracle fast; one case uses every coefficient.
                let support: Vec<usize> = (0..ctx.n()).filter(|c| c % 5 == 1).collect();
                let max = max_drop_bits(&bits);
                let mut drops = vec![0, 1, 13, bits[0] - 1, bits[0], bits[0] + 7, max];
                drops.retain(|&d| d <= max);
                drops.dedup();
                for drop in drops {
                    let codec = DroppedCodec::new(ctx, l, drop).unwrap();
                    let (j0, d) = split(&bits, drop).unwrap();
                    let full = drop == 13 && l == ctx.len();
                    let sup = (!full).then_some(support.as_slice());
                    let mut bytes = Vec::new();
                    codec.encode(&c0, sup, &mut bytes).unwrap();
                    let cnt = if full { ctx.n() } else { support.len() };
                    assert_eq!(bytes.len(), dropped_len(&bits, drop, cnt).unwrap());
                    assert_eq!(bytes.len(), codec.len(cnt));
                    let back = codec.decode(&bytes, sup).unwrap();
                    let bound = drop_error_bound(ms, drop).unwrap();
                    let mut worst = 0f64;
                    for c in 0..ctx.n() {
                        let inside = full || c % 5 == 1;
                        let r: Vec<u64> = (0..l).map(|i| c0.residue(i)[c]).collect();
                        for (i, m) in ms.iter().enumerate() {
                            let want = if inside {
                                let (read, _) = oracle(&crt_reconstruct(ms, &r), ms, j0, d);
                                divmod(&read, m.value()).1
                            } else {
                                0
                            };
                            assert_eq!(back.residue(i)[c], want, "l {l} drop {drop} coef {c}");
                        }
                        if inside {
                            let (_, delta) = oracle(&crt_reconstruct(ms, &r), ms, j0, d);
                            worst = worst.max(delta.abs());
                        }
                    }
                    let name = format!("N{} l {l} drop {drop}", ctx.n());
                    if drop == 0 {
                        assert_eq!(worst, 0.0, "{name}");
                    } else {
                        assert!(worst <= bound, "{name}: {worst} > {bound}");
                        assert!(worst >= bound / 4.0, "{name}: {worst} < {bound}/4");
                    }
                }
            }
        }
    }

    /// The reader's typed errors: length, digit out of range (partial and full digits), support
    /// unsorted, repeated or out of range, drop too large, nonzero padding; never a panic.
    #[test]
    fn reader_rejects() {
        let mut rng = ChaCha20Rng::seed_from_u64(12);
        let params = &preset_params()[0];
        let ctx = params.ctx_q();
        let bits: Vec<u32> = ctx.moduli().iter().map(|m| m.bits()).collect();
        let c0 = math::sample::uniform_poly(ctx, 2, Representation::Coefficient, &mut rng);
        assert!(matches!(
            DroppedCodec::new(ctx, 2, 56),
            Err(RlweError::DropTooLarge {
                drop_bits: 56,
                max_bits: 55
            })
        ));
        assert!(dropped_len(&bits, 56, 10).is_err());
        for drop in [0u32, 4, 55] {
            let codec = DroppedCodec::new(ctx, 2, drop).unwrap();
            let sup = [0usize, 3, 9, 4095];
            let mut bytes = Vec::new();
            codec.encode(&c0, Some(&sup), &mut bytes).unwrap();
            assert!(matches!(
                codec.decode(&bytes[1..], Some(&sup)),
                Err(RlweError::BadLength { .. })
            ));
            assert!(matches!(
                codec.decode(&bytes, Some(&[0, 9, 3, 4095])),
                Err(RlweError::UnsortedIndices { position: 2 })
            ));
            assert!(matches!(
                codec.decode(&bytes, Some(&[0, 3, 3, 4095])),
                Err(RlweError::UnsortedIndices { position: 2 })
            ));
            assert!(matches!(
                codec.decode(&bytes, Some(&[0, 3, 9, 4096])),
                Err(RlweError::IndexOutOfRange {
                    index: 4096,
                    n: 4096
                })
            ));
            assert!(codec.encode(&c0, Some(&[1, 0]), &mut Vec::new()).is_err());
            // Top digit all ones: 2^54 − 1 ≥ q_1.
            let mut bad = bytes.clone();
            let len = bad.len();
            bad[len - 7..].fill(0xff);
            assert!(matches!(
                codec.decode(&bad, Some(&sup)),
                Err(RlweError::ValueOutOfRange { .. })
            ));
            // The partial digit all ones (first bytes): out of range for q_0 when its top bits
            // alone exceed it.
            let mut bad = bytes.clone();
            bad[..4].fill(0xff);
            bad[4..7].fill(0xff);
            assert!(codec.decode(&bad, Some(&sup)).is_err());
            // Arbitrary bytes of the right length: an error or a value, never a panic.
            for _ in 0..20 {
                let junk: Vec<u8> = (0..bytes.len()).map(|_| rng.next_u32() as u8).collect();
                let _ = codec.decode(&junk, Some(&sup));
            }
        }
    }
}
