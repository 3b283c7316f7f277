//! Compact responses modulo a power of two [Cheetah §4.1 "modulus switching" and its response
//! form; docs/security.md "Response size"].
//!
//! A single-prime ciphertext `(c_0, c_1)` mod `q_0` with `c_0 + c_1·s = (q_0/t)·m + ν` is
//! switched to `c_1' = ⌊2^k·c_1/q_0⌉ mod 2^k` (all `N` coefficients) and, at the kept indices
//! only, `c_0' = ⌊2^b·c_0/q_0⌉ mod 2^b` with `b ≤ k` ([`Evaluator::switch_to_compact`]). For
//! `t = 2^ℓ` the decryptor computes
//!
//! `m = ⌊(2^{k−b}·c_0' + c_1'·s mod 2^k) / 2^{k−ℓ}⌉ mod 2^ℓ`,
//!
//! exact while `|ν|·2^k/q_0 + |τ_0 + τ_1·s| + 2^{k−b−1} < 2^{k−ℓ−1}` (`|τ_i| ≤ ½` the roundings of
//! the switch, `2^{k−b−1}` the extra rounding of `c_0` at `b` bits). For any other `t` (a
//! batching prime) it computes `m = ⌊t·d/2^k⌉ mod t`, `d` the numerator above, exact while the
//! same sum is below `2^k/(2t)`.
//!
//! Wire form, headerless (both parties know `N`, `k`, `b` and the indices from public data): for
//! `R` responses, all `c_1'` first (`R·N` values at `k` bits, response after response), then all
//! kept `c_0'` (at `b` bits, response after response), one bit stream each, zero-padded to a
//! byte. Its length is [`compact_response_len`]; `N·k` is a multiple of 8 (`N ≥ 16` a power of
//! two), so every response's `c_1'` starts on a byte.

use crate::core::same;
use crate::{Ciphertext, Evaluator, RlweError, SecretKey};
use math::pack::{pack_bits, packed_len, unpack_bits};
use math::{Poly, Representation};

/// Largest response modulus `2^k` supported (`k ≤ 62`: `2^{k−b}·c_0'` and `c_1'·s` fit the
/// arithmetic below).
pub const MAX_RESPONSE_BITS: u32 = 62;

/// A ciphertext modulo `2^k`: all of `c_1` at `k` bits and the kept coefficients of `c_0` at
/// `b ≤ k` bits. The indices are public (never on the wire).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pow2Response {
    k: u32,
    b: u32,
    indices: Vec<usize>,
    c0: Vec<u64>,
    c1: Vec<u64>,
}

fn check_widths(k: u32, b: u32) -> Result<(), RlweError> {
    if b == 0 || b > k || k > MAX_RESPONSE_BITS {
        return Err(RlweError::InvalidResponseWidths { k, b, ell: 0 });
    }
    Ok(())
}

fn check_indices(indices: &[usize], n: usize) -> Result<(), RlweError> {
    match indices.iter().find(|&&i| i >= n) {
        Some(&index) => Err(RlweError::IndexOutOfRange { index, n }),
        None => Ok(()),
    }
}

/// `⌊2^k·c/q⌉ mod 2^k` for `c ∈ [0, q)`, `k ≤ 62`, `q < 2^62`: exact in `u128`.
#[inline]
fn switch_value(c: u64, q: u64, k: u32) -> u64 {
    ((((c as u128) << k) + (q as u128 / 2)) / q as u128) as u64 & ((1u64 << k) - 1)
}

/// Bytes of `responses` compact responses of degree `n` with `kept` kept coefficients in all,
/// `c_1` at `k` bits and `c_0` at `b` bits (the wire form in the module documentation).
pub fn compact_response_len(n: usize, responses: usize, kept: usize, k: u32, b: u32) -> usize {
    packed_len(responses * n, k) + packed_len(kept, b)
}

impl Pow2Response {
    /// Response bits `k` (`c_1` is mod `2^k`).
    pub fn k(&self) -> u32 {
        self.k
    }
    /// Bits `b ≤ k` of every kept `c_0` value.
    pub fn c0_bits(&self) -> u32 {
        self.b
    }
    pub fn indices(&self) -> &[usize] {
        &self.indices
    }
    /// Kept `c_0'` values mod `2^b`, in `indices` order.
    pub fn c0(&self) -> &[u64] {
        &self.c0
    }
    /// `c_1'` mod `2^k`, all `N` coefficients.
    pub fn c1(&self) -> &[u64] {
        &self.c1
    }

    /// Decrypts the kept coefficients: messages mod `t`, in `indices` order, `m = ⌊t·d/2^k⌉ mod t`
    /// for `d = 2^{k−b}·c_0' + c_1'·s mod 2^k` (for `t = 2^ℓ`: `⌊d/2^{k−ℓ}⌉`). Needs `ℓ < k` and
    /// `ℓ ≤ b` for `ℓ` the bits of `t` (`t = 2^ℓ`, or `2^{ℓ−1} < t < 2^ℓ`).
    pub fn decrypt(&self, sk: &SecretKey) -> Result<Vec<u64>, RlweError> {
        Ok(self.decrypt_with_noise(sk)?.0)
    }

    /// [`Self::decrypt`], also returning each kept coefficient's noise at modulus `2^k`: the
    /// centered `(2^{k−b}·c_0' + c_1'·s) − 2^{k−ℓ}·m mod 2^k` (the decryptor's view; what a
    /// circuit-privacy test compares).
    ///
    /// `c_1'·s` is computed exactly over the integers in NTT form over the key's first two primes
    /// (`|c_1'·s|_∞ ≤ N·(2^k − 1) < q_0·q_1/2` is checked), then reduced mod `2^k`.
    pub fn decrypt_with_noise(&self, sk: &SecretKey) -> Result<(Vec<u64>, Vec<i64>), RlweError> {
        let params = sk.params();
        let n = params.n();
        let (k, b) = (self.k, self.b);
        if self.c1.len() != n {
            return Err(RlweError::BadLength {
                expected: n,
                found: self.c1.len(),
            });
        }
        let t = params.t().value();
        // ℓ: bits of the largest message (t = 2^ℓ, or t < 2^ℓ for any other t).
        let ell = if t.is_power_of_two() {
            t.trailing_zeros()
        } else {
            64 - t.leading_zeros()
        };
        if ell >= k || ell > b {
            return Err(RlweError::InvalidResponseWidths { k, b, ell });
        }
        let ctx = params.ctx_q();
        if ctx.len() < 2
            || (ctx.moduli()[0].value() as u128 * ctx.moduli()[1].value() as u128)
                <= (n as u128) << (k + 1)
        {
            return Err(RlweError::ResponseTooWideForKey { k });
        }
        let mut prod = Poly::from_unsigned(ctx, 2, &self.c1);
        prod.ntt_forward();
        prod.mul_assign_prefix(sk.poly_q_ntt_top())?;
        prod.ntt_inverse();
        let (p0, p1) = (ctx.moduli()[0], ctx.moduli()[1]);
        let p0_inv = p1
            .inv(p1.reduce(p0.value()))
            .expect("distinct primes are coprime");
        let big = p0.value() as i128 * p1.value() as i128;
        let kmask = (1u64 << k) - 1;
        let mut msgs = Vec::with_capacity(self.indices.len());
        let mut noise = Vec::with_capacity(self.indices.len());
        for (&j, &c0) in self.indices.iter().zip(&self.c0) {
            // CRT of (r₀, r₁) to the centered integer v ∈ (−q₀q₁/2, q₀q₁/2].
            let (r0, r1) = (prod.residue(0)[j], prod.residue(1)[j]);
            let h = p1.mul(p1.sub(r1, p1.reduce(r0)), p0_inv);
            let mut v = r0 as i128 + p0.value() as i128 * h as i128;
            if v > big / 2 {
                v -= big;
            }
            let d = ((c0 << (k - b)) as i128 + v) as u64 & kmask;
            // m = ⌊t·d/2^k⌉ mod t, noise d − ⌊2^k·m/t⌉ (for t = 2^ℓ: ⌊d/2^{k−ℓ}⌉ and m·2^{k−ℓ}).
            let m = ((((d as u128) * t as u128 + (1u128 << (k - 1))) >> k) % t as u128) as u64;
            let scaled = ((((m as u128) << k) + t as u128 / 2) / t as u128) as u64;
            let e = d.wrapping_sub(scaled) & kmask;
            msgs.push(m);
            noise.push(if e >> (k - 1) == 1 {
                e as i64 - (1i64 << k)
            } else {
                e as i64
            });
        }
        Ok((msgs, noise))
    }
}

/// Appends the wire form of `responses` (module documentation): all `c_1'`, then all kept
/// `c_0'`. All must share `N`, `k` and `b`.
pub fn write_compact_responses(
    responses: &[Pow2Response],
    out: &mut Vec<u8>,
) -> Result<(), RlweError> {
    let Some(first) = responses.first() else {
        return Ok(());
    };
    let (n, k, b) = (first.c1.len(), first.k, first.b);
    if let Some(r) = responses.iter().find(|r| r.k != k || r.b != b) {
        return Err(RlweError::InvalidResponseWidths {
            k: r.k,
            b: r.b,
            ell: 0,
        });
    }
    if let Some(r) = responses.iter().find(|r| r.c1.len() != n) {
        return Err(RlweError::BadLength {
            expected: n,
            found: r.c1.len(),
        });
    }
    let kept: usize = responses.iter().map(|r| r.c0.len()).sum();
    out.reserve(compact_response_len(n, responses.len(), kept, k, b));
    // N·k ≡ 0 (mod 8): packing each c₁' on its own equals packing their concatenation.
    for r in responses {
        pack_bits(&r.c1, k, out);
    }
    let c0: Vec<u64> = responses
        .iter()
        .flat_map(|r| r.c0.iter().copied())
        .collect();
    pack_bits(&c0, b, out);
    Ok(())
}

/// Reads [`write_compact_responses`] output: one response per entry of `indices` (its kept
/// coefficients), degree `n`, widths `k` and `b`. Checks the widths, every index `< n`, the
/// exact length ([`compact_response_len`]) and the zero padding; every value is in range by
/// construction (`k` or `b` bits). Never panics on any input.
pub fn read_compact_responses(
    bytes: &[u8],
    n: usize,
    k: u32,
    b: u32,
    indices: &[Vec<usize>],
) -> Result<Vec<Pow2Response>, RlweError> {
    check_widths(k, b)?;
    if !n.is_power_of_two() || n < 16 {
        return Err(RlweError::BadField {
            field: "degree",
            value: n as u64,
        });
    }
    for idx in indices {
        check_indices(idx, n)?;
    }
    let kept: usize = indices.iter().map(Vec::len).sum();
    let want = compact_response_len(n, indices.len(), kept, k, b);
    if bytes.len() != want {
        return Err(RlweError::BadLength {
            expected: want,
            found: bytes.len(),
        });
    }
    let c1_len = packed_len(n, k);
    let c1_total = c1_len * indices.len();
    let mut c0_all = unpack_bits(&bytes[c1_total..], b, kept)?.into_iter();
    indices
        .iter()
        .enumerate()
        .map(|(r, idx)| {
            Ok(Pow2Response {
                k,
                b,
                indices: idx.clone(),
                c0: c0_all.by_ref().take(idx.len()).collect(),
                c1: unpack_bits(&bytes[r * c1_len..(r + 1) * c1_len], k, n)?,
            })
        })
        .collect()
}

impl Evaluator {
    /// Switches a single-prime ciphertext (size 2, either form) from `q_0` to `2^k`, keeping
    /// `c_1` in full at `k` bits and `c_0` at `indices` at `b ≤ k` bits, each switched directly
    /// from `q_0` (module documentation; `1 ≤ b ≤ k ≤ 62`). Bring a ciphertext down to one prime
    /// first with [`Evaluator::mod_switch_to`]`(ct, 1)`.
    pub fn switch_to_compact(
        &self,
        ct: &Ciphertext,
        k: u32,
        b: u32,
        indices: &[usize],
    ) -> Result<Pow2Response, RlweError> {
        same(self.params(), ct.params())?;
        check_widths(k, b)?;
        if ct.size() != 2 {
            return Err(RlweError::InvalidCiphertextSize { size: ct.size() });
        }
        if ct.num_moduli() != 1 {
            return Err(RlweError::InvalidLevel {
                level: ct.num_moduli(),
                max: 1,
            });
        }
        check_indices(indices, self.params().n())?;
        let coeff;
        let polys = if ct.representation() == Representation::Coefficient {
            ct.polys()
        } else {
            let mut c = ct.clone();
            c.to_representation(Representation::Coefficient);
            coeff = c;
            coeff.polys()
        };
        let q0 = polys[0].moduli()[0].value();
        let (c0, c1) = (polys[0].residue(0), polys[1].residue(0));
        Ok(Pow2Response {
            k,
            b,
            indices: indices.to_vec(),
            c0: indices
                .iter()
                .map(|&j| switch_value(c0[j], q0, b))
                .collect(),
            c1: c1.iter().map(|&c| switch_value(c, q0, k)).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{presets, Params, Plaintext, PublicKey};
    use rand::{RngCore, SeedableRng};
    use rand_chacha::ChaCha20Rng;

    fn setup(ell: u32) -> (std::sync::Arc<Params>, SecretKey, ChaCha20Rng) {
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        let p = Params::new(presets::cheetah_n4096_q55_54_t2l(ell).unwrap()).unwrap();
        let sk = SecretKey::generate(&p, &mut rng);
        (p, sk, rng)
    }

    /// Switch, write, read and decrypt a batch of responses against the plaintext: the
    /// messages come back exactly, the bytes match `compact_response_len`, and the switched
    /// values match a big-integer oracle `⌊2^k·c/q₀⌉` (f64-free, u128 division).
    #[test]
    fn round_trip_against_plaintext() {
        let ell = 37;
        let (p, sk, mut rng) = setup(ell);
        let pk = PublicKey::generate(&sk, &mut rng).unwrap();
        let ev = Evaluator::new(&p);
        let t = 1u64 << ell;
        let (k, b) = (52u32, 44u32);
        let mut resps = Vec::new();
        let mut want = Vec::new();
        let mut idx_all = Vec::new();
        for r in 0..3 {
            let m: Vec<u64> = (0..p.n()).map(|_| rng.next_u64() % t).collect();
            let pt = Plaintext::from_unsigned(&p, &m).unwrap();
            let mut ct = sk.encrypt(&pt, &mut rng).unwrap();
            ev.rerandomize(&mut ct, &pk, &mut rng).unwrap();
            ev.flood_gaussian(&mut ct, 2f64.powi(30), &[0, 5, 4095], &mut rng)
                .unwrap();
            ev.mod_switch_to(&mut ct, 1).unwrap();
            let idx: Vec<usize> = (0..p.n()).step_by(7 + r).collect();
            let resp = ev.switch_to_compact(&ct, k, b, &idx).unwrap();
            // Oracle for the switch.
            let q0 = ct.polys()[0].moduli()[0].value() as u128;
            for (&j, &v) in idx.iter().zip(resp.c0()) {
                let c = ct.polys()[0].residue(0)[j] as u128;
                let mut x = (c * (1u128 << b)) / q0;
                if (c * (1u128 << b)) % q0 * 2 >= q0 {
                    x += 1;
                }
                assert_eq!(v as u128, x % (1u128 << b));
            }
            want.push(idx.iter().map(|&j| m[j]).collect::<Vec<_>>());
            idx_all.push(idx);
            resps.push(resp);
        }
        let mut bytes = Vec::new();
        write_compact_responses(&resps, &mut bytes).unwrap();
        let kept: usize = idx_all.iter().map(Vec::len).sum();
        assert_eq!(bytes.len(), compact_response_len(p.n(), 3, kept, k, b));
        let back = read_compact_responses(&bytes, p.n(), k, b, &idx_all).unwrap();
        assert_eq!(back, resps);
        for (r, w) in back.iter().zip(&want) {
            let (m, noise) = r.decrypt_with_noise(&sk).unwrap();
            assert_eq!(&m, w);
            // Noise at 2^k: fresh + re-randomization + 2^30 flooding, switched by 2^k/Q ≈ 2^-57,
            // plus rounding ≤ 2^{k−b−1} + N-ish terms: far below 2^{k−ℓ−1} = 2^14.
            assert!(
                noise.iter().all(|&e| e.unsigned_abs() < 1 << 12),
                "{noise:?}"
            );
        }
    }

    /// The reader refuses every malformed input with a typed error.
    #[test]
    fn reader_rejects() {
        let n = 64;
        let idx = vec![vec![0usize, 3], vec![63]];
        let len = compact_response_len(n, 2, 3, 20, 10);
        let ok = vec![0u8; len];
        assert!(read_compact_responses(&ok, n, 20, 10, &idx).is_ok());
        assert!(read_compact_responses(&ok[1..], n, 20, 10, &idx).is_err());
        let mut long = ok.clone();
        long.push(0);
        assert!(read_compact_responses(&long, n, 20, 10, &idx).is_err());
        // 3 values of 10 bits: 30 bits in 4 bytes, the top 2 bits are padding.
        let mut pad = ok.clone();
        *pad.last_mut().unwrap() = 0x80;
        assert!(read_compact_responses(&pad, n, 20, 10, &idx).is_err());
        assert!(read_compact_responses(&ok, n, 10, 20, &idx).is_err());
        assert!(read_compact_responses(&ok, n, 63, 10, &idx).is_err());
        assert!(read_compact_responses(&ok, n, 20, 0, &idx).is_err());
        assert!(read_compact_responses(&ok, 48, 20, 10, &idx).is_err());
        assert!(read_compact_responses(&ok, n, 20, 10, &[vec![64]]).is_err());
    }

    /// Decryption at the edge of the noise margin: a phase of exactly 2^{k−ℓ}·m ± (2^{k−ℓ−1} − 1)
    /// decrypts to m, checked by constructing c₁ = 0 and c₀ directly.
    #[test]
    fn decrypt_margin_oracle() {
        let ell = 20;
        let (p, sk, mut rng) = setup(ell);
        let (k, b) = (30u32, 30u32);
        let n = p.n();
        let t = 1u64 << ell;
        let idx: Vec<usize> = (0..64).collect();
        let ms: Vec<u64> = idx.iter().map(|_| rng.next_u64() % t).collect();
        let half = 1i64 << (k - ell - 1);
        let c0: Vec<u64> = ms
            .iter()
            .enumerate()
            .map(|(i, &m)| {
                let e = if i % 2 == 0 { half - 1 } else { -(half - 1) };
                ((m << (k - ell)) as i64 + e) as u64 & ((1 << k) - 1)
            })
            .collect();
        let resp = Pow2Response {
            k,
            b,
            indices: idx.clone(),
            c0,
            c1: vec![0; n],
        };
        let (m, noise) = resp.decrypt_with_noise(&sk).unwrap();
        assert_eq!(m, ms);
        assert!(noise.iter().all(|&e| e.abs() == half - 1));
        // A key with t = 2^ℓ ≥ k is refused.
        let p2 = Params::new(presets::cheetah_n4096_q55_54_t2l(31).unwrap()).unwrap();
        let sk2 = SecretKey::generate(&p2, &mut rng);
        assert!(resp.decrypt(&sk2).is_err());
    }
}
