//! Secret, public and evaluation (switching) keys, with lazily generated Galois keys.
//!
//! A switching key from `s'` to `s` for hybrid key switching [Han–Ki 2020, §3] holds, per digit
//! `j`, an RLWE encryption under `s` modulo `QP` of `P·g_j·s'`, where `g_j ≡ 1` modulo the primes
//! of digit `j` and `≡ 0` modulo the other primes of `Q` (the CRT gadget):
//! `(b_j, a_j) = (−a_j·s + e_j + P·g_j·s', a_j)`, `a_j` uniform, `e_j` rounded Gaussian σ = 3.2.
//!
//! Every switching key's `a` parts (as stored) are expanded from a fresh 32-byte seed
//! ([`expand_a`]), so a key travels as its seed and its `b` parts: half the bytes. The `a_j` are
//! public in any case; a seed from the CSPRNG makes them pseudorandom instead of random, the
//! standard compression of RLWE keys (SEAL, OpenFHE, Lattigo).

use std::collections::BTreeMap;

use math::{Poly, Representation};
use rand_chacha::ChaCha20Rng;
use rand_core::{CryptoRng, RngCore, SeedableRng};
use zeroize::Zeroize;

use crate::error::CkksError;
use crate::params::{Params, SecretDist};
use crate::ring;

/// Error standard deviation (HomomorphicEncryption.org).
pub const SIGMA: f64 = 3.2;

/// The secret key `s`, in NTT form modulo `Q` and `P`. No `Debug`, no serialization, zeroized on
/// drop.
pub struct SecretKey {
    pub(crate) coeffs: Vec<i64>,
    pub(crate) s_q: Poly,
    pub(crate) s_p: Poly,
    pub(crate) params_id: u64,
}

impl Drop for SecretKey {
    fn drop(&mut self) {
        self.coeffs.zeroize();
        self.s_q.zeroize();
        self.s_p.zeroize();
    }
}

impl SecretKey {
    /// Samples `s` from the parameters' secret distribution.
    pub fn generate<R: RngCore + CryptoRng>(params: &Params, rng: &mut R) -> Self {
        let coeffs = match params.secret_dist() {
            SecretDist::Ternary => math::sample::ternary(params.n(), rng),
            SecretDist::Sparse { h } => math::sample::sparse_ternary(params.n(), h, rng),
        };
        Self::from_coeffs(params, coeffs)
    }

    /// A secret with given small coefficients (e.g. an ephemeral sparse secret).
    pub(crate) fn from_coeffs(params: &Params, coeffs: Vec<i64>) -> Self {
        let mut s_q = Poly::from_signed(params.ctx_q(), params.max_level() + 1, &coeffs);
        let mut s_p = Poly::from_signed(params.ctx_p(), params.p().len(), &coeffs);
        ring::ntt_forward(&mut s_q);
        ring::ntt_forward(&mut s_p);
        SecretKey {
            coeffs,
            s_q,
            s_p,
            params_id: params.id(),
        }
    }

    /// `σ_k(s)` (the secret a Galois key switches from).
    pub(crate) fn automorphism(&self, params: &Params, k: usize) -> Result<Self, CkksError> {
        let n = params.n();
        let mut c = vec![0i64; n];
        for (j, &v) in self.coeffs.iter().enumerate() {
            let e = (j * k) % (2 * n);
            if e < n {
                c[e] = v;
            } else {
                c[e - n] = -v;
            }
        }
        Ok(Self::from_coeffs(params, c))
    }
}

/// A public key `(b, a) = (−a·s + e, a)` modulo `Q` (NTT form).
#[derive(Clone)]
pub struct PublicKey {
    pub(crate) b: Poly,
    pub(crate) a: Poly,
    pub(crate) params_id: u64,
}

/// A hybrid key-switching key (see module doc): `parts[j] = [(b_q, b_p), (a_q, a_p)]`, NTT form.
/// A Galois key for `g` holds `σ_g^{-1}` of the key from `σ_g(s)` (its NTT slots permuted; see
/// [`KeyGenerator::galois_key_at`]).
#[derive(Clone)]
pub struct SwitchingKey {
    pub(crate) parts: Vec<[(Poly, Poly); 2]>,
    /// The stored `a` parts are `expand_a(params, seed, level, digits)`.
    pub(crate) seed: [u8; 32],
}

/// The `a` parts of a switching key with `digits` digits at `level`, from its seed: ChaCha20
/// seeded with `seed`, per digit `a_Q` (the `level + 1` primes of `Q`) then `a_P`, each residue
/// by [`math::sample::uniform_poly`] (rejection sampling, no bias). Both parties run this same
/// code, so the server rebuilds exactly the client's `a` parts.
pub(crate) fn expand_a(
    params: &Params,
    seed: &[u8; 32],
    level: usize,
    digits: usize,
) -> Vec<(Poly, Poly)> {
    let mut rng = ChaCha20Rng::from_seed(*seed);
    let kp = params.p().len();
    (0..digits)
        .map(|_| {
            let a_q = math::sample::uniform_poly(
                params.ctx_q(),
                level + 1,
                Representation::Ntt,
                &mut rng,
            );
            let a_p = math::sample::uniform_poly(params.ctx_p(), kp, Representation::Ntt, &mut rng);
            (a_q, a_p)
        })
        .collect()
}

impl SwitchingKey {
    /// The highest ciphertext level this key switches.
    pub fn max_level(&self) -> usize {
        self.parts[0][0].0.num_moduli() - 1
    }

    /// Bytes held in memory.
    pub fn memory_bytes(&self) -> usize {
        self.parts
            .iter()
            .map(|p| {
                8 * (p[0].0.data().len()
                    + p[0].1.data().len()
                    + p[1].0.data().len()
                    + p[1].1.data().len())
            })
            .sum()
    }
}

/// Evaluation keys: relinearization and the Galois keys generated so far.
#[derive(Clone, Default)]
pub struct EvaluationKeys {
    pub(crate) relin: Option<SwitchingKey>,
    pub(crate) galois: BTreeMap<usize, SwitchingKey>,
    pub(crate) params_id: u64,
}

impl EvaluationKeys {
    pub fn galois_elements(&self) -> Vec<usize> {
        self.galois.keys().copied().collect()
    }
    pub fn has_galois(&self, g: usize) -> bool {
        self.galois.contains_key(&g)
    }
    /// Keys received one at a time (a network's keys exceed one message): the relinearization
    /// key and Galois keys for `params` (each already validated by
    /// [`crate::serialize::switching_key_from_bytes`]).
    pub fn from_parts(
        params: &crate::Params,
        relin: Option<SwitchingKey>,
        galois: BTreeMap<usize, SwitchingKey>,
    ) -> Self {
        EvaluationKeys {
            relin,
            galois,
            params_id: params.id(),
        }
    }
    pub fn relin_key(&self) -> Option<&SwitchingKey> {
        self.relin.as_ref()
    }
    pub fn galois_key(&self, g: usize) -> Option<&SwitchingKey> {
        self.galois.get(&g)
    }
    /// Bytes held by all keys.
    pub fn memory_bytes(&self) -> usize {
        self.relin.as_ref().map_or(0, |k| k.memory_bytes())
            + self
                .galois
                .values()
                .map(|k| k.memory_bytes())
                .sum::<usize>()
    }
}

/// Generates keys from the secret key (client side).
pub struct KeyGenerator<'a> {
    params: Params,
    sk: &'a SecretKey,
}

impl<'a> KeyGenerator<'a> {
    pub fn new(params: &Params, sk: &'a SecretKey) -> Result<Self, CkksError> {
        if sk.params_id != params.id() {
            return Err(CkksError::ParamsMismatch {
                a: sk.params_id,
                b: params.id(),
            });
        }
        Ok(KeyGenerator {
            params: params.clone(),
            sk,
        })
    }

    fn error_poly<R: RngCore + CryptoRng>(
        &self,
        ctx: &std::sync::Arc<math::RnsContext>,
        k: usize,
        rng: &mut R,
    ) -> Poly {
        let e = math::sample::rounded_gaussian(self.params.n(), SIGMA, rng);
        let mut p = Poly::from_signed(ctx, k, &e);
        ring::ntt_forward(&mut p);
        p
    }

    pub fn public_key<R: RngCore + CryptoRng>(&self, rng: &mut R) -> PublicKey {
        let k = self.params.max_level() + 1;
        let ctx = self.params.ctx_q();
        let a = math::sample::uniform_poly(ctx, k, Representation::Ntt, rng);
        let e = self.error_poly(ctx, k, rng);
        let mut b = Poly::zero(ctx, k, Representation::Ntt);
        ring::mul_into(&mut b, &a, &self.sk.s_q);
        ring::neg_assign(&mut b);
        ring::add_assign(&mut b, &e);
        PublicKey {
            b,
            a,
            params_id: self.params.id(),
        }
    }

    /// Switching key from `s_from` to this generator's secret `s`.
    pub(crate) fn switching_key<R: RngCore + CryptoRng>(
        &self,
        from: &SecretKey,
        rng: &mut R,
    ) -> SwitchingKey {
        self.switching_key_at(from, self.params.max_level(), rng)
    }

    /// A switching key usable for ciphertexts at levels `≤ level` (only the digits and primes of
    /// `Q_level` are generated: smaller keys for operations known to run low in the chain).
    pub(crate) fn switching_key_at<R: RngCore + CryptoRng>(
        &self,
        from: &SecretKey,
        level: usize,
        rng: &mut R,
    ) -> SwitchingKey {
        let level = level.min(self.params.max_level());
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        let a = expand_a(&self.params, &seed, level, self.params.digits_at(level));
        self.switching_key_with(from, level, seed, a, rng)
    }

    /// The switching key whose digits use the given `a` parts (`seed` records where the stored
    /// ones come from; see [`KeyGenerator::galois_key_at`] for keys stored permuted).
    fn switching_key_with<R: RngCore + CryptoRng>(
        &self,
        from: &SecretKey,
        level: usize,
        seed: [u8; 32],
        a: Vec<(Poly, Poly)>,
        rng: &mut R,
    ) -> SwitchingKey {
        let pr = &self.params;
        let kq = level + 1;
        let kp = pr.p().len();
        let alpha = pr.0.alpha;
        let mut parts = Vec::with_capacity(a.len());
        for (j, (a_q, a_p)) in a.into_iter().enumerate() {
            let e = math::sample::rounded_gaussian(pr.n(), SIGMA, rng);
            let mut e_q = Poly::from_signed(pr.ctx_q(), kq, &e);
            let mut e_p = Poly::from_signed(pr.ctx_p(), kp, &e);
            ring::ntt_forward(&mut e_q);
            ring::ntt_forward(&mut e_p);
            let mut b_q = Poly::zero(pr.ctx_q(), kq, Representation::Ntt);
            ring::mul_into(&mut b_q, &a_q, &self.sk.s_q);
            ring::neg_assign(&mut b_q);
            ring::add_assign(&mut b_q, &e_q);
            let mut b_p = Poly::zero(pr.ctx_p(), kp, Representation::Ntt);
            ring::mul_into(&mut b_p, &a_p, &self.sk.s_p);
            ring::neg_assign(&mut b_p);
            ring::add_assign(&mut b_p, &e_p);
            // + P·g_j·s' on the primes of digit j.
            let n = pr.n();
            let lo = j * alpha;
            let hi = ((j + 1) * alpha).min(kq);
            for i in lo..hi {
                let m = pr.ctx_q().moduli()[i];
                let pq = pr.0.p_mod_q[i];
                let (w, ws) = (pq, m.shoup(pq));
                let sf = &from.s_q.data()[i * n..(i + 1) * n];
                for (x, &s) in b_q.data_mut()[i * n..(i + 1) * n].iter_mut().zip(sf) {
                    *x = m.add(*x, m.mul_shoup(s, w, ws));
                }
            }
            parts.push([(b_q, b_p), (a_q, a_p)]);
        }
        SwitchingKey { parts, seed }
    }

    /// The relinearization key (switches from `s²`).
    pub fn relin_key<R: RngCore + CryptoRng>(&self, rng: &mut R) -> SwitchingKey {
        let n = self.params.n();
        // s² as an integer polynomial (negacyclic schoolbook would be O(N²); use NTT modulo Q, P).
        let mut s2_q = Poly::zero(
            self.params.ctx_q(),
            self.params.max_level() + 1,
            Representation::Ntt,
        );
        ring::mul_into(&mut s2_q, &self.sk.s_q, &self.sk.s_q);
        let mut s2_p = Poly::zero(
            self.params.ctx_p(),
            self.params.p().len(),
            Representation::Ntt,
        );
        ring::mul_into(&mut s2_p, &self.sk.s_p, &self.sk.s_p);
        let from = SecretKey {
            coeffs: vec![0; n],
            s_q: s2_q,
            s_p: s2_p,
            params_id: self.params.id(),
        };
        self.switching_key(&from, rng)
    }

    /// The Galois key for `X ↦ X^g` (switches from `σ_g(s)`).
    pub fn galois_key<R: RngCore + CryptoRng>(
        &self,
        g: usize,
        rng: &mut R,
    ) -> Result<SwitchingKey, CkksError> {
        if g.is_multiple_of(2) || g >= 2 * self.params.n() {
            return Err(CkksError::Math(math::MathError::InvalidGaloisElement {
                element: g,
                degree: self.params.n(),
            }));
        }
        self.galois_key_at(g, self.params.max_level(), rng)
    }

    /// The Galois key for `X ↦ X^g`, usable up to `level`.
    pub fn galois_key_at<R: RngCore + CryptoRng>(
        &self,
        g: usize,
        level: usize,
        rng: &mut R,
    ) -> Result<SwitchingKey, CkksError> {
        if g.is_multiple_of(2) || g >= 2 * self.params.n() {
            return Err(CkksError::Math(math::MathError::InvalidGaloisElement {
                element: g,
                degree: self.params.n(),
            }));
        }
        self.params.check_level(level)?;
        let from = self.sk.automorphism(&self.params, g)?;
        // Stored as σ_g^{-1}(key) (NTT slots permuted), so that a rotation takes the inner product
        // with the unpermuted decomposition and permutes only its two outputs:
        // σ_g(D) ⊙ K = σ_g(D ⊙ σ_g^{-1}(K)). The key is generated with a = σ_g(a′), a′ the
        // seed's expansion (uniform, so a is too), so the stored a parts are a′ exactly.
        let m = 2 * self.params.n();
        let g_inv = (1..m)
            .step_by(2)
            .find(|&h| h * g % m == 1)
            .expect("odd g is a unit");
        let perm_q = self.params.ctx_q().automorphism_permutation(g_inv)?;
        let perm_g = self.params.ctx_q().automorphism_permutation(g)?;
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        let a = expand_a(&self.params, &seed, level, self.params.digits_at(level))
            .into_iter()
            .map(|(q, p)| (q.permuted(&perm_g), p.permuted(&perm_g)))
            .collect();
        let mut key = self.switching_key_with(&from, level, seed, a, rng);
        for part in key.parts.iter_mut() {
            for (pq, pp) in part.iter_mut() {
                *pq = pq.permuted(&perm_q);
                *pp = pp.permuted(&perm_q);
            }
        }
        Ok(key)
    }

    /// Evaluation keys with relinearization and the Galois keys for `elements`.
    pub fn evaluation_keys<R: RngCore + CryptoRng>(
        &self,
        elements: &[usize],
        rng: &mut R,
    ) -> Result<EvaluationKeys, CkksError> {
        let mut ek = EvaluationKeys {
            relin: Some(self.relin_key(rng)),
            galois: BTreeMap::new(),
            params_id: self.params.id(),
        };
        self.extend(&mut ek, elements, rng)?;
        Ok(ek)
    }

    /// As [`KeyGenerator::extend`], each key generated only up to the level given with it (a key
    /// already present at a lower level is regenerated at the higher one).
    pub fn extend_at<R: RngCore + CryptoRng>(
        &self,
        keys: &mut EvaluationKeys,
        elements: &[(usize, usize)],
        rng: &mut R,
    ) -> Result<usize, CkksError> {
        let mut made = 0;
        for &(g, level) in elements {
            if g == 1 || keys.galois.get(&g).is_some_and(|k| k.max_level() >= level) {
                continue;
            }
            let k = self.galois_key_at(g, level, rng)?;
            keys.galois.insert(g, k);
            made += 1;
        }
        Ok(made)
    }

    /// Generates only the Galois keys in `elements` that `keys` lacks (lazy key generation: a
    /// computation lists the rotations it needs, and only those keys are ever made).
    pub fn extend<R: RngCore + CryptoRng>(
        &self,
        keys: &mut EvaluationKeys,
        elements: &[usize],
        rng: &mut R,
    ) -> Result<usize, CkksError> {
        let mut made = 0;
        for &g in elements {
            if g == 1 || keys.galois.contains_key(&g) {
                continue;
            }
            let k = self.galois_key(g, rng)?;
            keys.galois.insert(g, k);
            made += 1;
        }
        Ok(made)
    }
}
