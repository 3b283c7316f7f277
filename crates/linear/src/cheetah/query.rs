//! The query's c₀ with its low bits dropped [docs/security.md, "Query size"].
//!
//! The client's c₀ = −a·s + e + ⌊Q·x̂/t⌉ is an integer in [0, Q). Written in mixed radix over the
//! RNS primes, c₀ = x₀ + q₀·x₁ + q₀q₁·x₂ + … with xᵢ ∈ [0, qᵢ); dropping D low bits means sending
//! no digit below j₀ and only the top bits(q_{j₀}) − d bits of x_{j₀} (D = Σ_{i<j₀} bits(qᵢ) + d).
//! The server puts the midpoint in the place of what was dropped, so its c₀' = c₀ + δ with
//! |δ| ≤ q₀⋯q_{j₀−1}·(2^{d−1} + 1): one more input-noise term, which the weights multiply by at most
//! ‖w‖₁ and the flooding hides like the rest ([`super::noise::response_noise`]). Rounding is a
//! public function of an RLWE sample, so the query stays pseudorandom.

use std::sync::Arc;

use math::pack::{pack_bits, packed_len, unpack_bits};
use math::{Poly, Representation, RnsContext};

use super::params::HeParamsId;
use crate::LinearError;

/// (j₀, d): digits fully dropped, bits dropped from digit j₀.
fn split(bits: &[u32], drop_bits: u32) -> (usize, u32) {
    let (mut j0, mut d) = (0, drop_bits);
    while j0 + 1 < bits.len() && d >= bits[j0] {
        d -= bits[j0];
        j0 += 1;
    }
    (j0, d.min(bits[j0]))
}

/// Bytes of one input polynomial's c₀ with `drop_bits` low bits dropped.
pub fn query_poly_bytes(p: HeParamsId, drop_bits: u32) -> usize {
    query_bytes(p, drop_bits, p.n())
}

/// Bytes of `count` coefficients of c₀ with `drop_bits` low bits dropped (a truncated query
/// sends the coefficients of its support S only: `count` = |S|).
pub fn query_bytes(p: HeParamsId, drop_bits: u32, count: usize) -> usize {
    let bits = p.prime_bits();
    let (j0, d) = split(bits, drop_bits);
    let partial = bits[j0] - d;
    (if partial > 0 {
        packed_len(count, partial)
    } else {
        0
    }) + bits[j0 + 1..]
        .iter()
        .map(|&b| packed_len(count, b))
        .sum::<usize>()
}

/// Largest number of bits that may be dropped (the top digit is always sent in full).
pub fn max_drop_bits(p: HeParamsId) -> u32 {
    let bits = p.prime_bits();
    bits[..bits.len() - 1].iter().sum()
}

/// Bound on |δ| = |c₀' − c₀| for `drop_bits` dropped bits (0 when none).
pub fn drop_error_bound(p: HeParamsId, drop_bits: u32) -> Result<f64, LinearError> {
    if drop_bits == 0 {
        return Ok(0.0);
    }
    let ctx = p.context()?;
    let (j0, d) = split(p.prime_bits(), drop_bits);
    let low: f64 = ctx.moduli()[..j0]
        .iter()
        .map(|m| m.value() as f64)
        .product();
    let part = if d > 0 { 2f64.powi(d as i32 - 1) } else { 0.0 };
    Ok(low * (part + 1.0))
}

/// Encoder/decoder of compressed query polynomials for one parameter set and drop.
pub struct QueryCodec {
    ctx: Arc<RnsContext>,
    j0: usize,
    d: u32,
    /// inv[i][a] = q_a⁻¹ mod qᵢ (a < i).
    inv: Vec<Vec<u64>>,
    /// prefix[m][i] = q₀⋯q_{i−1} mod q_m.
    prefix: Vec<Vec<u64>>,
}

impl QueryCodec {
    pub fn new(p: HeParamsId, drop_bits: u32) -> Result<QueryCodec, LinearError> {
        let ctx = p.context()?;
        let (j0, d) = split(p.prime_bits(), drop_bits);
        let ms = ctx.moduli();
        let l = ms.len();
        let inv = (0..l)
            .map(|i| {
                (0..i)
                    .map(|a| {
                        ms[i]
                            .inv(ms[i].reduce(ms[a].value()))
                            .expect("distinct primes")
                    })
                    .collect()
            })
            .collect();
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
        Ok(QueryCodec {
            ctx,
            j0,
            d,
            inv,
            prefix,
        })
    }

    /// Appends c₀ (coefficient form, all primes) with the low bits dropped, at the coefficients
    /// `support` (increasing; `None`: all N), in that order.
    pub fn encode(&self, c0: &Poly, support: Option<&[usize]>, out: &mut Vec<u8>) {
        let (ms, l) = (self.ctx.moduli(), self.ctx.len());
        let all: Vec<usize>;
        let coefs = match support {
            Some(s) => s,
            None => {
                all = (0..self.ctx.n()).collect();
                &all
            }
        };
        let cnt = coefs.len();
        if self.j0 == 0 && self.d == 0 {
            for (i, m) in ms.iter().enumerate() {
                let res = c0.residue(i);
                let vals: Vec<u64> = coefs.iter().map(|&c| res[c]).collect();
                pack_bits(&vals, m.bits(), out);
            }
            return;
        }
        // Mixed-radix digits, digit-major: x_i = (…((r_i − x₀)q₀⁻¹ − x₁)q₁⁻¹ − …)q_{i−1}⁻¹ mod q_i.
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
        let partial = ms[self.j0].bits() - self.d;
        if partial > 0 {
            let top: Vec<u64> = x[self.j0 * cnt..(self.j0 + 1) * cnt]
                .iter()
                .map(|&v| v >> self.d)
                .collect();
            pack_bits(&top, partial, out);
        }
        for (i, m) in ms.iter().enumerate().skip(self.j0 + 1) {
            pack_bits(&x[i * cnt..(i + 1) * cnt], m.bits(), out);
        }
    }

    /// Reads [`Self::encode`] output (exact length) for the same `support`, validating every
    /// digit, and returns c₀' in coefficient form: zero outside the support.
    pub fn decode(
        &self,
        bytes: &[u8],
        support: Option<&[usize]>,
        what: &'static str,
    ) -> Result<Poly, LinearError> {
        let (ms, n, l) = (self.ctx.moduli(), self.ctx.n(), self.ctx.len());
        let all: Vec<usize>;
        let coefs = match support {
            Some(s) => s,
            None => {
                all = (0..n).collect();
                &all
            }
        };
        let cnt = coefs.len();
        let bad = || LinearError::MessageRange { what };
        let expected = query_bytes_for(ms.iter().map(|m| m.bits()), self.j0, self.d, cnt);
        if bytes.len() != expected {
            return Err(LinearError::MessageLength {
                what,
                expected,
                got: bytes.len(),
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
        if partial > 0 {
            let top =
                unpack_bits(take(packed_len(cnt, partial)), partial, cnt).map_err(|_| bad())?;
            let max_top = (ms[self.j0].value() - 1) >> self.d;
            let half = if self.d > 0 { 1u64 << (self.d - 1) } else { 0 };
            for (dst, t) in x[self.j0 * cnt..(self.j0 + 1) * cnt].iter_mut().zip(top) {
                if t > max_top {
                    return Err(bad());
                }
                *dst = (t << self.d) + half;
            }
        } else {
            x[self.j0 * cnt..(self.j0 + 1) * cnt].fill(ms[self.j0].value() / 2);
        }
        for i in self.j0 + 1..l {
            let m = ms[i];
            let v =
                unpack_bits(take(packed_len(cnt, m.bits())), m.bits(), cnt).map_err(|_| bad())?;
            if v.iter().any(|&d| d >= m.value()) {
                return Err(bad());
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
            // c₀' mod q_m = Σ_i x_i·(q₀⋯q_{i−1} mod q_m).
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
        Poly::from_residues(&self.ctx, l, Representation::Coefficient, data).map_err(|_| bad())
    }
}

/// [`query_bytes`] from the prime widths and the split (j₀, d).
fn query_bytes_for(bits: impl Iterator<Item = u32>, j0: usize, d: u32, count: usize) -> usize {
    bits.enumerate()
        .map(|(i, b)| match i.cmp(&j0) {
            std::cmp::Ordering::Less => 0,
            std::cmp::Ordering::Equal if b > d => packed_len(count, b - d),
            std::cmp::Ordering::Equal => 0,
            std::cmp::Ordering::Greater => packed_len(count, b),
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    /// Decoding recovers c₀ up to the stated bound, for drops inside the first digit, across a
    /// digit boundary, and none; bytes match `query_poly_bytes`.
    #[test]
    fn round_trip_within_bound() {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        for p in [HeParamsId::N8192Q120P60, HeParamsId::N8192Q180P38] {
            let ctx = p.context().unwrap();
            let c0 =
                math::sample::uniform_poly(&ctx, ctx.len(), Representation::Coefficient, &mut rng);
            for drop in [0u32, 1, 13, 59, 60, 61, 75] {
                let codec = QueryCodec::new(p, drop).unwrap();
                let mut bytes = Vec::new();
                codec.encode(&c0, None, &mut bytes);
                assert_eq!(bytes.len(), query_poly_bytes(p, drop));
                let back = codec.decode(&bytes, None, "test").unwrap();
                let bound = drop_error_bound(p, drop).unwrap();
                let ms = ctx.moduli();
                if drop == 0 {
                    assert_eq!(back, c0, "no drop must be exact");
                } else {
                    let mut worst = f64::NEG_INFINITY;
                    for c in 0..ctx.n() {
                        let diff: Vec<u64> = (0..ctx.len())
                            .map(|i| ms[i].sub(back.residue(i)[c], c0.residue(i)[c]))
                            .collect();
                        let v = math::baseconv::crt_reconstruct(ms, &diff);
                        let q = math::baseconv::modulus_product(ms);
                        worst = worst.max(math::baseconv::centered_log2(&v, &q));
                    }
                    let b = bound.log2();
                    assert!(worst <= b, "{} drop {drop}: 2^{worst} > 2^{b}", p.name());
                    assert!(
                        worst >= b - 2.0,
                        "{} drop {drop}: bound 2^{b} loose",
                        p.name()
                    );
                }
                // A top digit out of range (the last value set to 2^60 − 1 > q) is rejected.
                let mut bad = bytes.clone();
                let len = bad.len();
                bad[len - 8..].fill(0xff);
                assert!(codec.decode(&bad, None, "test").is_err());
                assert!(codec.decode(&bytes[1..], None, "test").is_err());
            }
        }
    }

    /// A sparse support: the coefficients at the support come back as with the full codec
    /// (within the drop bound), zero elsewhere; bytes match `query_bytes`; wrong lengths and
    /// out-of-range digits are rejected.
    #[test]
    fn support_round_trip() {
        let mut rng = ChaCha20Rng::seed_from_u64(4);
        for p in [HeParamsId::N4096Q109, HeParamsId::N8192Q120P60] {
            let ctx = p.context().unwrap();
            let c0 =
                math::sample::uniform_poly(&ctx, ctx.len(), Representation::Coefficient, &mut rng);
            let support: Vec<usize> = (0..ctx.n()).filter(|c| c % 7 == 3 || *c < 5).collect();
            for drop in [0u32, 13, 61] {
                let codec = QueryCodec::new(p, drop).unwrap();
                let (mut full, mut part) = (Vec::new(), Vec::new());
                codec.encode(&c0, None, &mut full);
                codec.encode(&c0, Some(&support), &mut part);
                assert_eq!(part.len(), query_bytes(p, drop, support.len()));
                let a = codec.decode(&full, None, "test").unwrap();
                let b = codec.decode(&part, Some(&support), "test").unwrap();
                let mut inside = vec![false; ctx.n()];
                support.iter().for_each(|&c| inside[c] = true);
                for i in 0..ctx.len() {
                    for (c, &kept) in inside.iter().enumerate() {
                        let want = if kept { a.residue(i)[c] } else { 0 };
                        assert_eq!(b.residue(i)[c], want, "{} drop {drop}", p.name());
                    }
                }
                assert!(codec.decode(&part[1..], Some(&support), "test").is_err());
                assert!(codec.decode(&part, None, "test").is_err());
                let mut bad = part.clone();
                let len = bad.len();
                bad[len - 8..].fill(0xff);
                assert!(codec.decode(&bad, Some(&support), "test").is_err());
            }
        }
    }
}
