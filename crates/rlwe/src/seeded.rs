//! Seeded secret-key encryption of a family of messages from one 32-byte seed [Cheetah §3,
//! "seeded" symmetric encryption; the same trick as SEAL's seeded ciphertexts].
//!
//! The `i`-th ciphertext of a family has `c_1 = a_i`, uniform in NTT form over `Q`, expanded
//! from the family's seed with ChaCha20 stream id `i` ([`expand_seeded_a`]), and
//! `c_0 = −a_i·s + e_i + ⌊Q·m_i/t⌉` (`e_i` fresh CBD noise, the Δ-encoding of
//! [`Params::add_scaled`]). Only the seed and the `c_0` travel; the receiver re-expands `a_i`.
//!
//! Invariant: an `a_i` is used for one encryption only. Two `c_0` under the same `(seed, i)`
//! differ by `e_i − e'_i + Δ(m_i − m'_i)`, which reveals `m_i − m'_i`. [`SeededEncryptor`]
//! enforces it: it draws the seed itself from a cryptographic RNG and hands out stream ids
//! `0, 1, 2, …` in order, so no API path encrypts twice under one `(seed, stream)`.

use std::sync::Arc;

use math::sample::expand_seed_stream;
use math::Poly;
use rand_core::{CryptoRng, RngCore};

use crate::core::error_poly;
use crate::{Params, RlweError, SecretKey};

/// Encrypts messages `m_0, m_1, …` (in that order) under one fresh seed (module documentation).
pub struct SeededEncryptor<'a> {
    sk: &'a SecretKey,
    seed: [u8; 32],
    next: u64,
}

impl<'a> SeededEncryptor<'a> {
    /// A new family: its seed is the next 32 bytes of `rng` (nothing else is drawn).
    pub fn new<R: RngCore + CryptoRng + ?Sized>(sk: &'a SecretKey, rng: &mut R) -> Self {
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        SeededEncryptor { sk, seed, next: 0 }
    }

    /// The family's public seed (sent once, ahead of the `c_0`).
    pub fn seed(&self) -> &[u8; 32] {
        &self.seed
    }

    /// The stream id the next [`Self::encrypt_next`] uses (the number encrypted so far).
    pub fn next_stream(&self) -> u64 {
        self.next
    }

    /// `c_0 = −a·s + e + ⌊Q·m/t⌉` at the top level, in coefficient form, for `a` =
    /// [`expand_seeded_a`]`(params, seed, self.next_stream())`; `values` (each `< t`, at most
    /// `N`) are the coefficients of `m` from degree 0. Draws `e` (CBD, `N` samples) from `rng`.
    /// The stream id advances only on success.
    pub fn encrypt_next<R: RngCore + CryptoRng + ?Sized>(
        &mut self,
        values: &[u64],
        rng: &mut R,
    ) -> Result<Poly, RlweError> {
        let p = self.sk.params();
        if values.len() > p.n() {
            return Err(RlweError::TooManyValues {
                count: values.len(),
                max: p.n(),
            });
        }
        let l = p.max_level();
        let mut c0 = expand_seeded_a(p, &self.seed, self.next);
        c0.mul_assign(self.sk.poly_q_ntt_top())?;
        c0.neg_assign();
        c0.ntt_inverse();
        let e = error_poly(p, p.ctx_q(), l, rng);
        c0.add_assign(&e)?;
        p.add_scaled(&mut c0, values)?;
        self.next += 1;
        Ok(c0)
    }
}

/// The public `a` of stream `stream` of the family with `seed`: uniform over all of `Q`, NTT
/// form (ChaCha20 keyed by the seed, stream id `stream`, [`math::sample::expand_seed_stream`]).
pub fn expand_seeded_a(params: &Arc<Params>, seed: &[u8; 32], stream: u64) -> Poly {
    expand_seed_stream(params.ctx_q(), params.max_level(), seed, stream)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::presets;
    use math::baseconv::{centered_log2, crt_reconstruct, modulus_product};
    use math::Representation;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    /// c₀ + a·s − ⌊Q·m/t⌉ is the CBD noise (|e| ≤ η), with a re-expanded from the seed and the
    /// stream id; streams differ; the encryptor's seed is the RNG's first 32 bytes.
    #[test]
    fn phase_is_small_noise() {
        let params = Params::new(presets::cheetah_n4096_q55_54_t2l(37).unwrap()).unwrap();
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        let sk = SecretKey::generate(&params, &mut rng);
        let mut probe = rng.clone();
        let mut enc = SeededEncryptor::new(&sk, &mut rng);
        let mut want = [0u8; 32];
        probe.fill_bytes(&mut want);
        assert_eq!(enc.seed(), &want);
        let ms = params.ctx_q().moduli().to_vec();
        let q = modulus_product(&ms);
        let t = 1u64 << 37;
        for stream in 0..3u64 {
            let values: Vec<u64> = (0..params.n() as u64)
                .map(|i| (i * 7919 + stream) % t)
                .collect();
            assert_eq!(enc.next_stream(), stream);
            let c0 = enc.encrypt_next(&values, &mut rng).unwrap();
            assert_eq!(c0.representation(), Representation::Coefficient);
            let a = expand_seeded_a(&params, enc.seed(), stream);
            let mut ph = a.clone();
            ph.mul_assign(sk.poly_q_ntt_top()).unwrap();
            ph.ntt_inverse();
            ph.add_assign(&c0).unwrap();
            let mut scaled = Poly::zero(params.ctx_q(), ms.len(), Representation::Coefficient);
            params.add_scaled(&mut scaled, &values).unwrap();
            ph.sub_assign(&scaled).unwrap();
            let eta = math::sample::CBD_ETA as f64;
            for c in 0..params.n() {
                let r: Vec<u64> = (0..ms.len()).map(|i| ph.residue(i)[c]).collect();
                let v = crt_reconstruct(&ms, &r);
                assert!(
                    centered_log2(&v, &q) <= eta.log2(),
                    "stream {stream} coef {c}"
                );
            }
            if stream > 0 {
                assert_ne!(a, expand_seeded_a(&params, enc.seed(), stream - 1));
            }
        }
        let too_many = vec![0u64; params.n() + 1];
        assert!(enc.encrypt_next(&too_many, &mut rng).is_err());
        assert_eq!(enc.next_stream(), 3);
    }
}
