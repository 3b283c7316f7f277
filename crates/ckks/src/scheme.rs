//! Plaintexts, ciphertexts, encoding, encryption and decryption.

use math::{Poly, Representation};
use rand_core::{CryptoRng, RngCore, SeedableRng};

use crate::encoder::Complex;
use crate::error::CkksError;
use crate::keys::{PublicKey, SecretKey, SIGMA};
use crate::params::Params;
use crate::ring;

/// An encoded message: NTT form modulo `q_0 ⋯ q_level`, with its scale and slot count.
#[derive(Clone, Debug)]
pub struct Plaintext {
    pub(crate) poly: Poly,
    pub(crate) level: usize,
    pub(crate) scale: f64,
    pub(crate) slots: usize,
    pub(crate) params_id: u64,
}

impl Plaintext {
    pub fn level(&self) -> usize {
        self.level
    }
    pub fn scale(&self) -> f64 {
        self.scale
    }
    pub fn slots(&self) -> usize {
        self.slots
    }
}

/// A CKKS ciphertext `(c_0, c_1[, c_2])`, NTT form modulo `q_0 ⋯ q_level`, decrypting to
/// `Σ c_i s^i ≈ Δ·m` with `Δ` = `scale`.
#[derive(Clone, Debug)]
pub struct Ciphertext {
    pub(crate) c: Vec<Poly>,
    pub(crate) level: usize,
    pub(crate) scale: f64,
    pub(crate) slots: usize,
    pub(crate) params_id: u64,
}

impl Ciphertext {
    /// A ciphertext with `a`'s level, scale, slots and parameters and the polynomials `c`.
    pub(crate) fn with_polys(a: &Ciphertext, c: Vec<Poly>) -> Ciphertext {
        Ciphertext {
            c,
            level: a.level,
            scale: a.scale,
            slots: a.slots,
            params_id: a.params_id,
        }
    }

    pub fn level(&self) -> usize {
        self.level
    }
    pub fn scale(&self) -> f64 {
        self.scale
    }
    pub fn slots(&self) -> usize {
        self.slots
    }
    /// Degree (number of components minus one).
    pub fn degree(&self) -> usize {
        self.c.len() - 1
    }
    /// Overrides the tracked scale (for callers that know the exact factor, e.g. after
    /// multiplying by an integer constant).
    pub fn set_scale(&mut self, scale: f64) {
        self.scale = scale;
    }
    /// Reads the same ring element with `slots` slots (a power of two up to `N/2`). A message
    /// with `d` slots is `f(X^{N/2d})`: with more slots it repeats with period `d`; with fewer,
    /// `slots` must be a period of the message for the reading to mean anything (bootstrapping
    /// with `slots` then keeps exactly that periodic part, by its subring trace).
    pub fn set_slots(&mut self, slots: usize, params: &Params) -> Result<(), CkksError> {
        params.encoder().check_slots(slots)?;
        self.slots = slots;
        Ok(())
    }
    pub fn memory_bytes(&self) -> usize {
        self.c.iter().map(|p| 8 * p.data().len()).sum()
    }
}

impl Params {
    /// Encodes `values` into `slots` slots at `level` and `scale`.
    pub fn encode(
        &self,
        values: &[Complex],
        slots: usize,
        level: usize,
        scale: f64,
    ) -> Result<Plaintext, CkksError> {
        self.check_level(level)?;
        let coeffs = self.encoder().embed(values, slots)?;
        let poly = self.encode_coeffs(&coeffs, level, scale)?;
        Ok(Plaintext {
            poly,
            level,
            scale,
            slots,
            params_id: self.id(),
        })
    }

    /// Scales real coefficients, rounds them and reduces them modulo `q_0 ⋯ q_level` (NTT form).
    pub(crate) fn encode_coeffs(
        &self,
        coeffs: &[f64],
        level: usize,
        scale: f64,
    ) -> Result<Poly, CkksError> {
        if !(scale.is_finite() && scale >= 1.0) {
            return Err(CkksError::InvalidScale { log2: scale.log2() });
        }
        let mut ints = Vec::with_capacity(coeffs.len());
        let mut max = 0f64;
        for &c in coeffs {
            let v = (c * scale).round();
            if !v.is_finite() || v.abs() >= 2f64.powi(126) {
                return Err(CkksError::ValueTooLarge {
                    value: c,
                    max_log2: 126,
                });
            }
            max = max.max(v.abs());
            ints.push(v);
        }
        // Integers below 2^52 (every plaintext of a network: weights at scale ≈ q_ℓ) are
        // reduced in floating point, where the loop vectorizes; below 2^63 the 64-bit
        // reduction; the 128-bit one is several times slower per residue. All three give the
        // exact residues.
        let mut p = if max < 2f64.powi(52) {
            let n = coeffs.len();
            let k = level + 1;
            let mut data = vec![0u64; k * n];
            for (m, out) in self.ctx_q().moduli()[..k]
                .iter()
                .zip(data.chunks_exact_mut(n))
            {
                residues_of_exact_f64(&ints, m.value(), max, out);
            }
            Poly::from_residues(self.ctx_q(), k, Representation::Coefficient, data)
                .expect("k residues of N coefficients")
        } else if max < 2f64.powi(63) {
            let small: Vec<i64> = ints.iter().map(|&v| v as i64).collect();
            Poly::from_signed(self.ctx_q(), level + 1, &small)
        } else {
            let wide: Vec<i128> = ints.iter().map(|&v| v as i128).collect();
            ring::from_i128(self.ctx_q(), level + 1, &wide)
        };
        ring::ntt_forward(&mut p);
        Ok(p)
    }

    /// Decodes a plaintext polynomial (coefficient form, `≥ 1` residues) to slot values.
    pub(crate) fn decode_poly(
        &self,
        p: &Poly,
        scale: f64,
        slots: usize,
    ) -> Result<Vec<Complex>, CkksError> {
        let n = self.n();
        let ctx = self.ctx_q();
        let m0 = ctx.moduli()[0];
        let coeffs: Vec<f64> = if p.num_moduli() >= 2 {
            // Two-prime CRT (Garner): x = r0 + q0·((r1 − r0)·q0^{-1} mod q1), centered mod q0·q1.
            let m1 = ctx.moduli()[1];
            let q0 = m0.value();
            let q0inv = m1.inv(q0 % m1.value()).expect("distinct primes");
            let big = q0 as u128 * m1.value() as u128;
            (0..n)
                .map(|i| {
                    let r0 = p.data()[i];
                    let r1 = p.data()[n + i];
                    let t = m1.mul(m1.sub(r1, m1.reduce(r0)), q0inv);
                    let x = r0 as u128 + q0 as u128 * t as u128;
                    let v = if x > big / 2 {
                        -((big - x) as f64)
                    } else {
                        x as f64
                    };
                    v / scale
                })
                .collect()
        } else {
            p.data()[..n]
                .iter()
                .map(|&r| m0.center(r) as f64 / scale)
                .collect()
        };
        self.encoder().project(&coeffs, slots)
    }

    pub fn decode(&self, pt: &Plaintext) -> Result<Vec<Complex>, CkksError> {
        let mut p = pt.poly.prefix((pt.level + 1).min(2));
        ring::ntt_inverse(&mut p);
        self.decode_poly(&p, pt.scale, pt.slots)
    }
}

/// Encrypts with the secret key or a public key.
pub struct Encryptor {
    params: Params,
    key: EncKey,
}

enum EncKey {
    Public(PublicKey),
    Secret(Poly),
}

/// A secret-key encryption whose `c1` is the expansion of `seed` ([`Encryptor::encrypt_seeded`]).
pub struct SeededCiphertext {
    pub(crate) ct: Ciphertext,
    pub(crate) seed: [u8; 32],
}

impl SeededCiphertext {
    pub fn ciphertext(&self) -> &Ciphertext {
        &self.ct
    }
    pub fn into_ciphertext(self) -> Ciphertext {
        self.ct
    }
}

/// `c1` of a seeded encryption at `level`: ChaCha20 from `seed`, the residues of the `level + 1`
/// primes of `Q` by [`math::sample::uniform_poly`] (rejection sampling), NTT form. Both parties
/// run this same code.
pub(crate) fn expand_c1(params: &Params, seed: &[u8; 32], level: usize) -> Poly {
    let mut rng = rand_chacha::ChaCha20Rng::from_seed(*seed);
    math::sample::uniform_poly(params.ctx_q(), level + 1, Representation::Ntt, &mut rng)
}

impl Encryptor {
    pub fn with_public_key(params: &Params, pk: &PublicKey) -> Result<Self, CkksError> {
        if pk.params_id != params.id() {
            return Err(CkksError::ParamsMismatch {
                a: pk.params_id,
                b: params.id(),
            });
        }
        Ok(Encryptor {
            params: params.clone(),
            key: EncKey::Public(pk.clone()),
        })
    }

    pub fn with_secret_key(params: &Params, sk: &SecretKey) -> Result<Self, CkksError> {
        if sk.params_id != params.id() {
            return Err(CkksError::ParamsMismatch {
                a: sk.params_id,
                b: params.id(),
            });
        }
        Ok(Encryptor {
            params: params.clone(),
            key: EncKey::Secret(sk.s_q.clone()),
        })
    }

    fn small<R: RngCore + CryptoRng>(&self, k: usize, rng: &mut R) -> Poly {
        let e = math::sample::rounded_gaussian(self.params.n(), SIGMA, rng);
        let mut p = Poly::from_signed(self.params.ctx_q(), k, &e);
        ring::ntt_forward(&mut p);
        p
    }

    /// Encrypts a plaintext under the secret key with `c1` the expansion of a fresh seed
    /// ([`expand_c1`]), so that it travels as its seed and `c0`
    /// ([`crate::serialize::seeded_ciphertext_to_bytes`]): half the bytes of a ciphertext. `c1`
    /// is public in any case; from a seed it is pseudorandom instead of random.
    pub fn encrypt_seeded<R: RngCore + CryptoRng>(
        &self,
        pt: &Plaintext,
        rng: &mut R,
    ) -> Result<SeededCiphertext, CkksError> {
        let EncKey::Secret(s) = &self.key else {
            return Err(CkksError::NotSecretKey);
        };
        self.check(pt)?;
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        let a = expand_c1(&self.params, &seed, pt.level);
        let (c0, c1) = self.secret_parts(s, a, rng);
        Ok(SeededCiphertext {
            ct: self.finish(pt, c0, c1),
            seed,
        })
    }

    fn check(&self, pt: &Plaintext) -> Result<(), CkksError> {
        if pt.params_id != self.params.id() {
            return Err(CkksError::ParamsMismatch {
                a: pt.params_id,
                b: self.params.id(),
            });
        }
        Ok(())
    }

    /// `(−a·s + e, a)`.
    fn secret_parts<R: RngCore + CryptoRng>(&self, s: &Poly, a: Poly, rng: &mut R) -> (Poly, Poly) {
        let k = a.num_moduli();
        let mut c0 = Poly::zero(self.params.ctx_q(), k, Representation::Ntt);
        ring::mul_into(&mut c0, &a, s);
        ring::neg_assign(&mut c0);
        ring::add_assign(&mut c0, &self.small(k, rng));
        (c0, a)
    }

    fn finish(&self, pt: &Plaintext, mut c0: Poly, c1: Poly) -> Ciphertext {
        ring::add_assign(&mut c0, &pt.poly);
        Ciphertext {
            c: vec![c0, c1],
            level: pt.level,
            scale: pt.scale,
            slots: pt.slots,
            params_id: self.params.id(),
        }
    }

    /// Encrypts a plaintext at its level.
    pub fn encrypt<R: RngCore + CryptoRng>(
        &self,
        pt: &Plaintext,
        rng: &mut R,
    ) -> Result<Ciphertext, CkksError> {
        if pt.params_id != self.params.id() {
            return Err(CkksError::ParamsMismatch {
                a: pt.params_id,
                b: self.params.id(),
            });
        }
        let k = pt.level + 1;
        let ctx = self.params.ctx_q();
        let (c0, c1) = match &self.key {
            EncKey::Secret(s) => {
                let a = math::sample::uniform_poly(ctx, k, Representation::Ntt, rng);
                self.secret_parts(s, a, rng)
            }
            EncKey::Public(pk) => {
                let v = math::sample::ternary(self.params.n(), rng);
                let mut v = Poly::from_signed(ctx, k, &v);
                ring::ntt_forward(&mut v);
                let mut c0 = Poly::zero(ctx, k, Representation::Ntt);
                ring::mul_into(&mut c0, &v, &pk.b);
                ring::add_assign(&mut c0, &self.small(k, rng));
                let mut c1 = Poly::zero(ctx, k, Representation::Ntt);
                ring::mul_into(&mut c1, &v, &pk.a);
                ring::add_assign(&mut c1, &self.small(k, rng));
                (c0, c1)
            }
        };
        Ok(self.finish(pt, c0, c1))
    }

    /// Encodes at the top level with the default scale, then encrypts.
    pub fn encrypt_values<R: RngCore + CryptoRng>(
        &self,
        values: &[Complex],
        slots: usize,
        rng: &mut R,
    ) -> Result<Ciphertext, CkksError> {
        let pt = self.params.encode(
            values,
            slots,
            self.params.max_level(),
            self.params.default_scale(),
        )?;
        self.encrypt(&pt, rng)
    }
}

/// Decrypts with the secret key.
pub struct Decryptor<'a> {
    params: Params,
    sk: &'a SecretKey,
}

impl<'a> Decryptor<'a> {
    pub fn new(params: &Params, sk: &'a SecretKey) -> Result<Self, CkksError> {
        if sk.params_id != params.id() {
            return Err(CkksError::ParamsMismatch {
                a: sk.params_id,
                b: params.id(),
            });
        }
        Ok(Decryptor {
            params: params.clone(),
            sk,
        })
    }

    /// `Σ c_i s^i` modulo the first `min(level + 1, 2)` primes, coefficient form (enough for
    /// messages below `q_0·q_1 / 2`).
    pub fn decrypt_poly(&self, ct: &Ciphertext) -> Result<Poly, CkksError> {
        if ct.params_id != self.params.id() {
            return Err(CkksError::ParamsMismatch {
                a: ct.params_id,
                b: self.params.id(),
            });
        }
        let k = (ct.level + 1).min(2);
        let s = self.sk.s_q.prefix(k);
        let mut acc = ct.c[ct.c.len() - 1].prefix(k);
        for c in ct.c[..ct.c.len() - 1].iter().rev() {
            let mut t = Poly::zero(self.params.ctx_q(), k, Representation::Ntt);
            ring::mul_into(&mut t, &acc, &s);
            ring::add_assign(&mut t, &c.prefix(k));
            acc = t;
        }
        ring::ntt_inverse(&mut acc);
        Ok(acc)
    }

    pub fn decrypt(&self, ct: &Ciphertext) -> Result<Vec<Complex>, CkksError> {
        let p = self.decrypt_poly(ct)?;
        self.params.decode_poly(&p, ct.scale, ct.slots)
    }
}

/// `out[j] = v[j] mod q` for integers `v[j]` held exactly in `f64` with `|v[j]| ≤ max < 2^52`.
/// With `q > max` a negative value only needs `+ q`; otherwise `q ≤ max < 2^52`, so `q`,
/// `k·q` (`|k·q| ≤ |v| + q`) and `v − k·q` are exact in `f64` for `k = ⌊v/q⌋` as rounded, which
/// is off by at most one: `v − k·q ∈ [−q, 2q)`, corrected by one conditional `± q`.
fn residues_of_exact_f64(v: &[f64], q: u64, max: f64, out: &mut [u64]) {
    debug_assert!(max < 2f64.powi(52) && out.len() == v.len());
    let qi = q as i64;
    if q as f64 > max {
        for (o, &x) in out.iter_mut().zip(v) {
            let x = x as i64;
            *o = (x + ((x >> 63) & qi)) as u64;
        }
    } else {
        let qf = q as f64;
        for (o, &x) in out.iter_mut().zip(v) {
            // ⌊x/q⌋ by truncation, one less for negative non-integers (no call to `floor`
            // on targets without a rounding instruction).
            let y = x / qf;
            let t = y as i64 as f64;
            let k = if t > y { t - 1.0 } else { t };
            let r = (x - k * qf) as i64;
            let r = r + ((r >> 63) & qi);
            *o = (r - (((qi - 1 - r) >> 63) & qi)) as u64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::residues_of_exact_f64;
    use math::Modulus;
    use rand::{Rng, SeedableRng};

    /// The floating-point reduction equals the integer one on random and boundary values, for
    /// primes above and below the values' bound.
    #[test]
    fn residues_of_exact_f64_match_integer_reduction() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
        for &bits in &[17u32, 30, 40, 51, 52, 60] {
            let q = math::prime::generate_primes(bits, 1 << 4, 1, &[]).unwrap()[0];
            let m = Modulus::new(q).unwrap();
            for &max_bits in &[10u32, 39, 45, 51] {
                let max = (1u64 << max_bits) as f64;
                let mut v: Vec<f64> = (0..4096)
                    .map(|_| rng.gen_range(-(1i64 << max_bits)..=(1i64 << max_bits)) as f64)
                    .collect();
                v.extend([0.0, -0.0, max, -max, 1.0, -1.0]);
                let qf = q as f64;
                if qf <= max {
                    for k in [1.0, 2.0, 3.0] {
                        if k * qf <= max {
                            v.extend([k * qf, -k * qf, k * qf - 1.0, -k * qf + 1.0]);
                        }
                    }
                }
                let mut out = vec![0u64; v.len()];
                residues_of_exact_f64(&v, q, max, &mut out);
                for (&x, &r) in v.iter().zip(&out) {
                    assert_eq!(r, m.reduce_i64(x as i64), "q {q} x {x}");
                }
            }
        }
    }
}
