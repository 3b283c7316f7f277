//! Homomorphic operations on [`Ciphertext`]s: add/sub/negate, plaintext
//! products, modulus switching, noise flooding, Galois automorphisms with key
//! switching, and ct × ct with relinearization.

use crate::core::same;
use crate::keyswitch::KeySwitchingKey;
use crate::{Ciphertext, Params, Plaintext, PlaintextNtt, PublicKey, RlweError, SecretKey};
use math::prime::generate_primes;
use math::sample::{poly_from_i128, uniform_signed_bits};
use math::{BaseConverter, ConversionMode, Modulus, Poly, Representation, RnsContext};
use rand_core::{CryptoRng, RngCore};
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

/// Stateless evaluator bound to one parameter set.
#[derive(Clone, Debug)]
pub struct Evaluator {
    params: Arc<Params>,
    mul: Arc<OnceLock<Vec<MulLevel>>>,
}

/// Largest `|z|` of the flooding sampler: Box–Muller with uniforms `u₁ ≥ 2^-54` gives
/// `|z| ≤ √(2·54·ln 2) < 8.66`, so a flooding sample is bounded by `8.66·σ` (rounded).
pub const FLOOD_GAUSSIAN_Z_MAX: f64 = 8.66;
/// Largest flooding width accepted, `σ ≤ 2^200`: beyond the flooding any 128-bit-secure `Q`
/// up to `N = 2^14` can carry (Cheetah's responses flood with σ from 2^60 to beyond 2^130 on the
/// larger sets, so samples do not fit a 64- or 128-bit integer).
pub const FLOOD_GAUSSIAN_MAX_SIGMA_LOG2: u32 = 200;

fn check_flooding_sigma(sigma: f64) -> Result<(), RlweError> {
    // NaN fails the range test: rejected.
    if !(0.0..=2f64.powi(FLOOD_GAUSSIAN_MAX_SIGMA_LOG2 as i32)).contains(&sigma) {
        return Err(RlweError::FloodingSigmaOutOfRange {
            max_log2: FLOOD_GAUSSIAN_MAX_SIGMA_LOG2,
        });
    }
    Ok(())
}

/// One sample of the rounded Gaussian `⌊σ·z⌉`, `z ~ N(0, 1)` by Box–Muller
/// `z = √(−2 ln u₁)·cos(2π u₂)` with 53-bit uniforms `uᵢ = (x + ½)/2^53 ∈ (0, 1)` drawn from two
/// `next_u64` (top 53 bits each), returned as an integer-valued `f64` (exact: every `f64` of
/// magnitude `≥ 2^52` is an integer; reduce it with [`reduce_flooding_sample`]). The tail is
/// bounded: `|z| < ` [`FLOOD_GAUSSIAN_Z_MAX`]. `0 ≤ σ ≤ 2^200`.
///
/// Precision: `σ·z` is an `f64`, so for `σ > 2^53` the samples lie on a grid of spacing
/// `≤ 2^{−52}·|σ·z|` (`< 2^{−48}·σ`) — a flooding sampler, not an exact discrete Gaussian. Used
/// as in Cheetah, the flooded ciphertext is switched from `Q` down to a modulus `2^k` with
/// `Q/2^k ≫ 2^{−48}·σ`, so the decryptor only sees the sample rounded far above that grid, where
/// its distribution is the Gaussian's up to a relative `2^{−48}` (docs/security.md).
pub fn sample_flooding_gaussian<R: RngCore + ?Sized>(
    sigma: f64,
    rng: &mut R,
) -> Result<f64, RlweError> {
    check_flooding_sigma(sigma)?;
    Ok(gaussian_unchecked(sigma, rng))
}

#[inline]
fn gaussian_unchecked<R: RngCore + ?Sized>(sigma: f64, rng: &mut R) -> f64 {
    let mut unif = || ((rng.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    let (u1, u2) = (unif(), unif());
    let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
    (sigma * z).round()
}

/// `v mod q` for a finite integer-valued `f64` `v` (a [`sample_flooding_gaussian`] output),
/// exactly: `|v| < 2^126` through `i128`; otherwise `v = ±m·2^e` (53-bit `m`, `e > 0`) gives
/// `±(m mod q)·(2^e mod q)`.
pub fn reduce_flooding_sample(v: f64, q: &Modulus) -> u64 {
    if v.abs() < 2f64.powi(126) {
        return q.reduce_i128(v as i128);
    }
    let bits = v.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i64 - 1075;
    let mant = (bits & ((1u64 << 52) - 1)) | (1u64 << 52);
    // |v| ≥ 2^126, so exp ≥ 74 > 0.
    let r = q.mul(q.reduce(mant), q.pow(q.reduce(2), exp as u64));
    if bits >> 63 == 1 {
        q.neg(r)
    } else {
        r
    }
}

/// Noise flooding configuration [Gen09 §21; Cheetah §4.3 "re-randomization"].
///
/// Adding `E` uniform on `[−2^b, 2^b)` to a noise `e` with `|e| ≤ 2^noise_bits`
/// changes the distribution of one coefficient by statistical distance
/// `≤ |e| / 2^(b+1)`; over `revealed_coeffs` coefficients the union bound gives
/// `≤ revealed · 2^(noise_bits − b − 1)`. We take
/// `b = ⌈noise_bits + stat_sec_bits + log2(revealed)⌉`, so the distance is `≤ 2^(−stat_sec−1)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FloodingConfig {
    /// Statistical security parameter (≥ 40).
    pub stat_sec_bits: u32,
    /// Upper bound on `log2 ‖e‖_∞` of the ciphertext's current noise.
    pub noise_bits: f64,
    /// Number of coefficients the decryptor will see (`N` if all).
    pub revealed_coeffs: usize,
}

impl FloodingConfig {
    /// The flooding width `b` (noise is uniform on `[−2^b, 2^b)`).
    pub fn flood_bits(&self) -> u32 {
        (self.noise_bits + self.stat_sec_bits as f64 + (self.revealed_coeffs.max(1) as f64).log2())
            .ceil() as u32
    }
}

impl Evaluator {
    pub fn new(params: &Arc<Params>) -> Self {
        Self {
            params: params.clone(),
            mul: Arc::new(OnceLock::new()),
        }
    }

    pub fn params(&self) -> &Arc<Params> {
        &self.params
    }

    fn check(&self, ct: &Ciphertext) -> Result<(), RlweError> {
        same(&self.params, &ct.params)
    }

    fn check_pair(&self, a: &Ciphertext, b: &Ciphertext) -> Result<(), RlweError> {
        self.check(a)?;
        self.check(b)?;
        if a.num_moduli() != b.num_moduli() {
            return Err(RlweError::LevelMismatch {
                lhs: a.num_moduli(),
                rhs: b.num_moduli(),
            });
        }
        Ok(())
    }

    /// `a += b` (result in `a`'s representation).
    pub fn add_assign(&self, a: &mut Ciphertext, b: &Ciphertext) -> Result<(), RlweError> {
        self.add_sub(a, b, false)
    }

    /// `a −= b`.
    pub fn sub_assign(&self, a: &mut Ciphertext, b: &Ciphertext) -> Result<(), RlweError> {
        self.add_sub(a, b, true)
    }

    fn add_sub(&self, a: &mut Ciphertext, b: &Ciphertext, sub: bool) -> Result<(), RlweError> {
        self.check_pair(a, b)?;
        let repr = a.representation();
        while a.polys.len() < b.polys.len() {
            a.polys
                .push(Poly::zero(self.params.ctx_q(), a.num_moduli(), repr));
        }
        a.seed = None;
        for (x, y) in a.polys.iter_mut().zip(&b.polys) {
            if y.representation() == repr {
                if sub {
                    x.sub_assign(y)?
                } else {
                    x.add_assign(y)?
                }
            } else {
                let mut y2 = y.clone();
                y2.to_representation(repr);
                if sub {
                    x.sub_assign(&y2)?
                } else {
                    x.add_assign(&y2)?
                }
            }
        }
        Ok(())
    }

    pub fn neg_assign(&self, a: &mut Ciphertext) -> Result<(), RlweError> {
        self.check(a)?;
        a.seed = None;
        a.polys.iter_mut().for_each(|p| p.neg_assign());
        Ok(())
    }

    fn scaled_in(&self, ct: &Ciphertext, pt: &Plaintext) -> Result<Poly, RlweError> {
        same(&self.params, &pt.params)?;
        let mut m = pt.scaled(ct.num_moduli())?;
        m.to_representation(ct.representation());
        Ok(m)
    }

    /// `ct += pt` (adds `⌊Q_l m/t⌉` to `c_0`; the seed stays valid).
    pub fn add_plain_assign(&self, ct: &mut Ciphertext, pt: &Plaintext) -> Result<(), RlweError> {
        self.check(ct)?;
        let m = self.scaled_in(ct, pt)?;
        ct.polys[0].add_assign(&m)?;
        Ok(())
    }

    /// `ct −= pt`.
    pub fn sub_plain_assign(&self, ct: &mut Ciphertext, pt: &Plaintext) -> Result<(), RlweError> {
        self.check(ct)?;
        let m = self.scaled_in(ct, pt)?;
        ct.polys[0].sub_assign(&m)?;
        Ok(())
    }

    fn check_pt(&self, ct: &Ciphertext, pt: &PlaintextNtt) -> Result<(), RlweError> {
        same(&self.params, &pt.params)?;
        if pt.num_moduli() != ct.num_moduli() {
            return Err(RlweError::LevelMismatch {
                lhs: ct.num_moduli(),
                rhs: pt.num_moduli(),
            });
        }
        Ok(())
    }

    /// `ct ×= pt` (the ciphertext is moved to NTT form if needed).
    pub fn mul_plain_assign(
        &self,
        ct: &mut Ciphertext,
        pt: &PlaintextNtt,
    ) -> Result<(), RlweError> {
        self.check(ct)?;
        self.check_pt(ct, pt)?;
        ct.to_representation(Representation::Ntt);
        ct.seed = None;
        for p in &mut ct.polys {
            p.mul_assign(&pt.poly)?;
        }
        Ok(())
    }

    /// `acc += ct × pt` with `ct` already in NTT form (the inner loop of
    /// matrix–vector and convolution products; no allocation).
    pub fn mul_plain_acc(
        &self,
        acc: &mut Ciphertext,
        ct: &Ciphertext,
        pt: &PlaintextNtt,
    ) -> Result<(), RlweError> {
        self.check_pair(acc, ct)?;
        self.check_pt(ct, pt)?;
        if ct.representation() != Representation::Ntt || acc.representation() != Representation::Ntt
        {
            return Err(RlweError::Math(math::MathError::RepresentationMismatch {
                expected: Representation::Ntt,
                found: Representation::Coefficient,
            }));
        }
        acc.seed = None;
        for (a, c) in acc.polys.iter_mut().zip(&ct.polys) {
            a.mul_acc(c, &pt.poly)?;
        }
        Ok(())
    }

    /// A zero ciphertext (trivial encryption of 0) to accumulate into.
    pub fn zero(&self, num_moduli: usize, repr: Representation) -> Result<Ciphertext, RlweError> {
        self.params.check_level(num_moduli)?;
        let z = Poly::zero(self.params.ctx_q(), num_moduli, repr);
        Ok(Ciphertext {
            params: self.params.clone(),
            polys: vec![z.clone(), z],
            seed: None,
        })
    }

    /// BFV modulus switching `Q_l → Q_{l−1}`: every part is divided by `q_{l−1}`
    /// with rounding [BGV12 §4.2 / FV12 §5]. The message is unchanged; the noise
    /// becomes `e/q_{l−1}` plus a rounding term `≤ (1 + ‖s‖_1)/2`.
    pub fn mod_switch_to_next(&self, ct: &mut Ciphertext) -> Result<(), RlweError> {
        self.check(ct)?;
        if ct.num_moduli() < 2 {
            return Err(RlweError::InvalidLevel {
                level: 0,
                max: self.params.max_level(),
            });
        }
        ct.seed = None;
        for p in &mut ct.polys {
            p.rescale_last()?;
        }
        Ok(())
    }

    /// Switches down to `num_moduli` primes (repeated [`Self::mod_switch_to_next`]).
    pub fn mod_switch_to(&self, ct: &mut Ciphertext, num_moduli: usize) -> Result<(), RlweError> {
        self.params.check_level(num_moduli)?;
        if num_moduli > ct.num_moduli() {
            return Err(RlweError::InvalidLevel {
                level: num_moduli,
                max: ct.num_moduli(),
            });
        }
        while ct.num_moduli() > num_moduli {
            self.mod_switch_to_next(ct)?;
        }
        Ok(())
    }

    /// Re-randomizes `ct` so that its decryption reveals only the message:
    /// adds a fresh public-key encryption of zero (fresh `c_1`) and flooding
    /// noise uniform on `[−2^b, 2^b)` to `c_0` ([`FloodingConfig`]). Fails with
    /// [`RlweError::FloodingExceedsBudget`] when `b` does not fit below `Q_l/(4t)`.
    /// Returns `b`.
    pub fn flood<R: RngCore + CryptoRng + ?Sized>(
        &self,
        ct: &mut Ciphertext,
        pk: &PublicKey,
        cfg: &FloodingConfig,
        rng: &mut R,
    ) -> Result<u32, RlweError> {
        self.check(ct)?;
        same(&self.params, &pk.params)?;
        if cfg.stat_sec_bits < 40 {
            return Err(RlweError::StatisticalSecurityTooLow {
                bits: cfg.stat_sec_bits,
            });
        }
        let l = ct.num_moduli();
        let b = cfg.flood_bits();
        let avail = self.params.log_q(l) - (self.params.t().value() as f64).log2() - 2.0;
        if b as f64 >= avail || b > 126 {
            return Err(RlweError::FloodingExceedsBudget {
                needed_bits: b,
                available_bits: avail.floor() as u32,
            });
        }
        let zero = Poly::zero(self.params.ctx_q(), l, Representation::Coefficient);
        let z = pk.encrypt_poly(&zero, rng)?;
        let mut e = poly_from_i128(
            self.params.ctx_q(),
            l,
            &uniform_signed_bits(self.params.n(), b, rng),
        );
        e.to_representation(ct.representation());
        ct.seed = None;
        ct.polys[0].add_assign(&e)?;
        let repr = ct.representation();
        for (x, mut y) in ct.polys.iter_mut().zip(z.polys) {
            y.to_representation(repr);
            x.add_assign(&y)?;
        }
        Ok(b)
    }

    /// Re-randomization by a fresh public-key encryption of zero [FV12 §4; Cheetah §4.1]:
    /// `c_0 += p_0·u + e_0`, `c_1 += p_1·u + e_1` with `u` ternary and `e_0, e_1` from the error
    /// distribution (drawn in that order). Afterwards `c_1` is independent of how `ct` was
    /// computed and the noise grows by `e_pk·u + e_0 + e_1·s` ([`crate::noise::fresh_pk`]).
    /// `ct` (size 2) may be in either form; it is returned in coefficient form, and an NTT-form
    /// input costs no extra transform (the products are taken in NTT form before the inverse).
    pub fn rerandomize<R: RngCore + CryptoRng + ?Sized>(
        &self,
        ct: &mut Ciphertext,
        pk: &PublicKey,
        rng: &mut R,
    ) -> Result<(), RlweError> {
        self.check(ct)?;
        same(&self.params, &pk.params)?;
        if ct.size() != 2 {
            return Err(RlweError::InvalidCiphertextSize { size: ct.size() });
        }
        let (p, l) = (&self.params, ct.num_moduli());
        ct.seed = None;
        ct.to_representation(Representation::Ntt);
        let mut u = Poly::from_signed(p.ctx_q(), l, &math::sample::ternary(p.n(), rng));
        u.ntt_forward();
        for (c, key) in ct.polys.iter_mut().zip([&pk.p0, &pk.p1]) {
            if key.num_moduli() == l {
                c.mul_acc(key, &u)?;
            } else {
                let mut k = key.clone();
                k.drop_to(l)?;
                c.mul_acc(&k, &u)?;
            }
            c.ntt_inverse();
        }
        for c in ct.polys.iter_mut() {
            c.add_assign(&crate::core::error_poly(p, p.ctx_q(), l, rng))?;
        }
        Ok(())
    }

    /// Gaussian noise flooding of chosen coefficients [Cheetah §4.1 "noise flooding"; the
    /// Rényi/KL argument of docs/security.md]: adds an independent
    /// [`sample_flooding_gaussian`]`(sigma)` to `c_0` at every index (drawn in index order; an
    /// index may repeat). `ct` is returned in coefficient form. Flooding only the coefficients the
    /// decryptor reads is enough: the others are never revealed (the server drops them).
    pub fn flood_gaussian<R: RngCore + CryptoRng + ?Sized>(
        &self,
        ct: &mut Ciphertext,
        sigma: f64,
        indices: &[usize],
        rng: &mut R,
    ) -> Result<(), RlweError> {
        check_flooding_sigma(sigma)?;
        let f: Vec<f64> = indices
            .iter()
            .map(|_| gaussian_unchecked(sigma, rng))
            .collect();
        self.add_flooding_at(ct, indices, &f)
    }

    /// Adds flooding samples drawn by the caller ([`sample_flooding_gaussian`], e.g. interleaved
    /// with other randomness) to `c_0`: `c_0[indices[j]] += samples[j]`, reduced exactly modulo
    /// every prime ([`reduce_flooding_sample`]). Each sample must be a finite integer-valued `f64`.
    /// `ct` is returned in coefficient form.
    pub fn add_flooding_at(
        &self,
        ct: &mut Ciphertext,
        indices: &[usize],
        samples: &[f64],
    ) -> Result<(), RlweError> {
        self.check(ct)?;
        if indices.len() != samples.len() {
            return Err(RlweError::BadLength {
                expected: indices.len(),
                found: samples.len(),
            });
        }
        if samples.iter().any(|v| !v.is_finite() || v.fract() != 0.0) {
            return Err(RlweError::InvalidFloodingSample);
        }
        let n = self.params.n();
        if let Some(&i) = indices.iter().find(|&&i| i >= n) {
            return Err(RlweError::IndexOutOfRange { index: i, n });
        }
        ct.seed = None;
        ct.to_representation(Representation::Coefficient);
        let c0 = &mut ct.polys[0];
        let moduli: Vec<Modulus> = c0.moduli().to_vec();
        for (i, m) in moduli.iter().enumerate() {
            let res = c0.residue_mut(i);
            for (&j, &f) in indices.iter().zip(samples) {
                res[j] = m.add(res[j], reduce_flooding_sample(f, m));
            }
        }
        Ok(())
    }

    // ---------- Galois automorphisms ----------

    /// Applies `X → X^k` and switches the key back to `s` with `gk`'s key for `k`.
    pub fn apply_galois(
        &self,
        ct: &Ciphertext,
        k: usize,
        gk: &GaloisKeys,
    ) -> Result<Ciphertext, RlweError> {
        self.check(ct)?;
        same(&self.params, &gk.params)?;
        if ct.size() != 2 {
            return Err(RlweError::InvalidCiphertextSize { size: ct.size() });
        }
        let key = gk
            .keys
            .get(&k)
            .ok_or(RlweError::MissingGaloisKey { element: k })?;
        let ks = self
            .params
            .key_switcher()
            .ok_or(RlweError::NoSpecialPrimes)?;
        let c0 = ct.polys[0].automorphism(k)?;
        let c1 = ct.polys[1].automorphism(k)?;
        let (u0, u1) = ks.switch(&c1, key)?;
        let mut c0 = c0;
        c0.ntt_forward();
        c0.add_assign(&u0)?;
        Ok(Ciphertext {
            params: self.params.clone(),
            polys: vec![c0, u1],
            seed: None,
        })
    }

    /// Rotates both rows of the batching layout left by `steps` (negative: right).
    pub fn rotate_rows(
        &self,
        ct: &Ciphertext,
        steps: i64,
        gk: &GaloisKeys,
    ) -> Result<Ciphertext, RlweError> {
        let k = galois_element_for_rotation(self.params.n(), steps);
        self.apply_galois(ct, k, gk)
    }

    /// Rotations of both batching rows of `ct` left by each of `steps`, sharing one ModUp of c₁
    /// (hoisting [Halevi–Shoup 2018, §5]): one decomposition
    /// ([`crate::keyswitch::KeySwitcher::decompose`]), then per rotation a permutation of the
    /// lifted digits, the key products and ModDown. Each result decrypts as [`Self::rotate_rows`]
    /// does, with key-switching noise of the same bound. A step of 0 (mod N/2) returns `ct`.
    pub fn rotate_rows_hoisted(
        &self,
        ct: &Ciphertext,
        steps: &[i64],
        gk: &GaloisKeys,
    ) -> Result<Vec<Ciphertext>, RlweError> {
        let n = self.params.n();
        let elements: Vec<usize> = steps
            .iter()
            .map(|&s| galois_element_for_rotation(n, s))
            .collect();
        self.apply_galois_hoisted(ct, &elements, gk)
    }

    /// [`Self::apply_galois`] for each of `elements` (odd, `< 2N`; 1 returns `ct`), sharing one
    /// ModUp of c₁ as [`Self::rotate_rows_hoisted`] does: row rotations, the row swap
    /// `2N − 1`, and their compositions.
    pub fn apply_galois_hoisted(
        &self,
        ct: &Ciphertext,
        elements: &[usize],
        gk: &GaloisKeys,
    ) -> Result<Vec<Ciphertext>, RlweError> {
        self.check(ct)?;
        same(&self.params, &gk.params)?;
        if ct.size() != 2 {
            return Err(RlweError::InvalidCiphertextSize { size: ct.size() });
        }
        let ks = self
            .params
            .key_switcher()
            .ok_or(RlweError::NoSpecialPrimes)?;
        // Every key needed is checked before the decomposition is paid for.
        if let Some(&k) = elements
            .iter()
            .find(|&&k| k != 1 && !gk.keys.contains_key(&k))
        {
            return Err(RlweError::MissingGaloisKey { element: k });
        }
        let dec = ks.decompose(&ct.polys[1])?;
        let mut c0 = ct.polys[0].clone();
        c0.ntt_forward();
        elements
            .iter()
            .map(|&k| {
                if k == 1 {
                    return Ok(ct.clone());
                }
                let perm = self.params.ctx_q().automorphism_permutation(k)?;
                let (u0, u1) = ks.switch_decomposed(&dec, &gk.keys[&k], Some(&perm))?;
                let mut r0 = Poly::zero(c0.context(), c0.num_moduli(), Representation::Ntt);
                c0.automorphism_ntt_into(&perm, &mut r0)?;
                r0.add_assign(&u0)?;
                Ok(Ciphertext {
                    params: self.params.clone(),
                    polys: vec![r0, u1],
                    seed: None,
                })
            })
            .collect()
    }

    /// Swaps the two rows of the batching layout (`X → X^{2N−1}`).
    pub fn rotate_columns(
        &self,
        ct: &Ciphertext,
        gk: &GaloisKeys,
    ) -> Result<Ciphertext, RlweError> {
        self.apply_galois(ct, 2 * self.params.n() - 1, gk)
    }

    // ---------- ct × ct ----------

    fn mul_levels(&self) -> Result<&Vec<MulLevel>, RlweError> {
        if let Some(v) = self.mul.get() {
            return Ok(v);
        }
        let v = (1..=self.params.max_level())
            .map(|l| MulLevel::new(&self.params, l))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(self.mul.get_or_init(|| v))
    }

    /// BFV tensor product without relinearization: a size-3 ciphertext of
    /// `⌊t/Q_l · (a ⊗ b)⌉` [FV12 §4, computed exactly in RNS as in HPS19 §4:
    /// exact lift to an auxiliary basis `B > 4·t·N·Q_l`, products over `Q_l ∪ B`,
    /// scale-and-round by `t/Q_l` in `B`, exact conversion back to `Q_l`].
    pub fn mul_no_relin(&self, a: &Ciphertext, b: &Ciphertext) -> Result<Ciphertext, RlweError> {
        self.check_pair(a, b)?;
        if a.size() != 2 || b.size() != 2 {
            return Err(RlweError::InvalidCiphertextSize {
                size: a.size().max(b.size()),
            });
        }
        let l = a.num_moduli();
        let ml = &self.mul_levels()?[l - 1];
        let n = self.params.n();
        let nb = ml.ctx_b.len();
        // lift each part to Q_l ∪ B, NTT form: (q residues as Poly, b residues as Poly)
        let lift = |p: &Poly| -> (Poly, Poly) {
            let mut pc = p.clone();
            pc.ntt_inverse();
            let mut pb = Poly::zero(&ml.ctx_b, nb, Representation::Coefficient);
            ml.q_to_b
                .convert(n, pc.data(), pb.data_mut(), ConversionMode::Exact);
            pc.ntt_forward();
            pb.ntt_forward();
            (pc, pb)
        };
        let (a0, a1) = (lift(&a.polys[0]), lift(&a.polys[1]));
        let (b0, b1) = (lift(&b.polys[0]), lift(&b.polys[1]));
        let tensor = |x: &(Poly, Poly), y: &(Poly, Poly)| -> Result<(Poly, Poly), RlweError> {
            let (mut q, mut bb) = (x.0.clone(), x.1.clone());
            q.mul_assign(&y.0)?;
            bb.mul_assign(&y.1)?;
            Ok((q, bb))
        };
        let mut d0 = tensor(&a0, &b0)?;
        let mut d1 = tensor(&a0, &b1)?;
        d1.0.mul_acc(&a1.0, &b0.0)?;
        d1.1.mul_acc(&a1.1, &b0.1)?;
        let mut d2 = tensor(&a1, &b1)?;
        let mut out = Vec::with_capacity(3);
        for d in [&mut d0, &mut d1, &mut d2] {
            d.0.ntt_inverse();
            d.1.ntt_inverse();
            out.push(ml.scale_round(&self.params, &d.0, &d.1)?);
        }
        Ok(Ciphertext {
            params: self.params.clone(),
            polys: out,
            seed: None,
        })
    }

    /// Relinearizes a size-3 ciphertext to size 2 with `rk` (NTT form result).
    pub fn relinearize(&self, ct: &Ciphertext, rk: &RelinKey) -> Result<Ciphertext, RlweError> {
        self.check(ct)?;
        same(&self.params, &rk.params)?;
        if ct.size() != 3 {
            return Err(RlweError::InvalidCiphertextSize { size: ct.size() });
        }
        let ks = self
            .params
            .key_switcher()
            .ok_or(RlweError::NoSpecialPrimes)?;
        let (u0, u1) = ks.switch(&ct.polys[2], &rk.key)?;
        let mut c0 = ct.polys[0].clone();
        let mut c1 = ct.polys[1].clone();
        c0.ntt_forward();
        c1.ntt_forward();
        c0.add_assign(&u0)?;
        c1.add_assign(&u1)?;
        Ok(Ciphertext {
            params: self.params.clone(),
            polys: vec![c0, c1],
            seed: None,
        })
    }

    /// `a × b` followed by relinearization.
    pub fn mul(
        &self,
        a: &Ciphertext,
        b: &Ciphertext,
        rk: &RelinKey,
    ) -> Result<Ciphertext, RlweError> {
        let t = self.mul_no_relin(a, b)?;
        self.relinearize(&t, rk)
    }
}

/// Galois element `3^steps mod 2N` for a row rotation by `steps` (left).
pub fn galois_element_for_rotation(n: usize, steps: i64) -> usize {
    let half = (n / 2) as i64;
    let r = steps.rem_euclid(half) as u64;
    let m = Modulus::new(2 * n as u64).expect("2N ≥ 2");
    m.pow(3, r) as usize
}

/// Per-level precomputation for BFV ct × ct.
#[derive(Debug)]
struct MulLevel {
    ctx_b: Arc<RnsContext>,
    q_to_b: BaseConverter,
    b_to_q: BaseConverter,
    /// `Q_l^{-1} mod b_j`
    q_inv_b: Vec<u64>,
    /// `t mod b_j`, `t mod q_i`
    t_b: Vec<u64>,
    t_q: Vec<u64>,
    /// `⌊Q_l/2⌋ mod b_j`, `mod q_i`
    half_b: Vec<u64>,
    half_q: Vec<u64>,
}

impl MulLevel {
    fn new(p: &Params, l: usize) -> Result<Self, RlweError> {
        let n = p.n();
        let log_q = p.log_q(l);
        let need = log_q + (p.t().value() as f64).log2() + (n as f64).log2() + 3.0;
        let count = (need / 61.0).ceil() as usize;
        let mut exclude: Vec<u64> = p
            .literal()
            .q
            .iter()
            .chain(&p.literal().p)
            .copied()
            .collect();
        exclude.push(p.t().value());
        let primes = generate_primes(61, n, count, &exclude)?;
        let ctx_b = RnsContext::new(n, &primes)?;
        let qm = &p.ctx_q().moduli()[..l];
        let bm = ctx_b.moduli();
        let q_to_b = BaseConverter::new(qm, bm);
        let b_to_q = BaseConverter::new(bm, qm);
        let q_prod_mod = |m: &Modulus| qm.iter().fold(1u64, |a, q| m.mul(a, m.reduce(q.value())));
        let q_inv_b = bm
            .iter()
            .map(|m| m.inv(q_prod_mod(m)).expect("coprime"))
            .collect();
        // ⌊Q/2⌋ = (Q − 1)/2 since Q is odd: mod a prime m: (Q mod m − 1)·2^{-1}
        let half = |m: &Modulus| m.mul(m.sub(q_prod_mod(m), 1), m.inv(2).expect("odd"));
        Ok(Self {
            t_b: bm.iter().map(|m| m.reduce(p.t().value())).collect(),
            t_q: qm.iter().map(|m| m.reduce(p.t().value())).collect(),
            half_b: bm.iter().map(half).collect(),
            half_q: qm.iter().map(half).collect(),
            ctx_b,
            q_to_b,
            b_to_q,
            q_inv_b,
        })
    }

    /// `y = ⌊(t·d + ⌊Q/2⌋)/Q⌋` for `d` given over `Q_l ∪ B` (coefficient form),
    /// returned over `Q_l`.
    fn scale_round(&self, p: &Params, dq: &Poly, db: &Poly) -> Result<Poly, RlweError> {
        let n = p.n();
        let l = dq.num_moduli();
        // e = t·d + ⌊Q/2⌋ over Q and B
        let mut eq = dq.clone();
        for i in 0..l {
            let m = dq.moduli()[i];
            let (w, h) = (self.t_q[i], self.half_q[i]);
            let ws = m.shoup(w);
            for x in eq.residue_mut(i) {
                *x = m.add(m.mul_shoup(*x, w, ws), h);
            }
        }
        let mut eb = db.clone();
        let bm = self.ctx_b.moduli();
        for (j, m) in bm.iter().enumerate() {
            let (w, h) = (self.t_b[j], self.half_b[j]);
            let ws = m.shoup(w);
            for x in eb.residue_mut(j) {
                *x = m.add(m.mul_shoup(*x, w, ws), h);
            }
        }
        // r = [e]_Q lifted (centered) to B; y_B = (e_B − r_B)·Q^{-1}
        let mut rb = vec![0u64; bm.len() * n];
        self.q_to_b
            .convert(n, eq.data(), &mut rb, ConversionMode::Exact);
        for (j, m) in bm.iter().enumerate() {
            let w = self.q_inv_b[j];
            let ws = m.shoup(w);
            let r = &rb[j * n..(j + 1) * n];
            for (x, &rv) in eb.residue_mut(j).iter_mut().zip(r) {
                *x = m.mul_shoup(m.sub(*x, rv), w, ws);
            }
        }
        let mut y = Poly::zero(p.ctx_q(), l, Representation::Coefficient);
        self.b_to_q
            .convert(n, eb.data(), y.data_mut(), ConversionMode::Exact);
        Ok(y)
    }
}

/// Galois keys: one key switching key from `σ_k(s)` to `s` per element `k`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GaloisKeys {
    pub(crate) params: Arc<Params>,
    pub(crate) keys: BTreeMap<usize, KeySwitchingKey>,
}

impl GaloisKeys {
    /// No keys (for a computation that rotates nothing).
    pub fn empty(params: &Arc<Params>) -> Self {
        Self {
            params: params.clone(),
            keys: BTreeMap::new(),
        }
    }

    /// Keys for the given Galois elements (odd, `< 2N`).
    pub fn generate<R: RngCore + CryptoRng + ?Sized>(
        sk: &SecretKey,
        elements: &[usize],
        rng: &mut R,
    ) -> Result<Self, RlweError> {
        let p = sk.params();
        let ks = p.key_switcher().ok_or(RlweError::NoSpecialPrimes)?;
        let crate::params::ErrorDistribution::Cbd { eta } = p.literal().error;
        let mut keys = BTreeMap::new();
        for &k in elements {
            let s_from = zeroize::Zeroizing::new(sk.poly_qp_ntt().automorphism(k)?);
            keys.insert(
                k,
                KeySwitchingKey::generate(ks, sk.poly_qp_ntt(), &s_from, eta, rng)?,
            );
        }
        Ok(Self {
            params: p.clone(),
            keys,
        })
    }

    /// Keys for row rotations by the given steps plus the column swap.
    pub fn for_rotations<R: RngCore + CryptoRng + ?Sized>(
        sk: &SecretKey,
        steps: &[i64],
        column_swap: bool,
        rng: &mut R,
    ) -> Result<Self, RlweError> {
        let n = sk.params().n();
        let mut els: Vec<usize> = steps
            .iter()
            .map(|&s| galois_element_for_rotation(n, s))
            .collect();
        if column_swap {
            els.push(2 * n - 1);
        }
        Self::generate(sk, &els, rng)
    }

    pub fn elements(&self) -> impl Iterator<Item = usize> + '_ {
        self.keys.keys().copied()
    }
    pub fn get(&self, k: usize) -> Option<&KeySwitchingKey> {
        self.keys.get(&k)
    }

    /// Moves the keys of `other` (same parameters) into `self`, for key sets that travel in
    /// several messages. Refuses an element already present.
    pub fn merge(&mut self, other: GaloisKeys) -> Result<(), RlweError> {
        same(&self.params, &other.params)?;
        for (k, key) in other.keys {
            if self.keys.insert(k, key).is_some() {
                return Err(RlweError::DuplicateGaloisKey { element: k });
            }
        }
        Ok(())
    }
}

/// Relinearization key: switches `s²` to `s`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelinKey {
    pub(crate) params: Arc<Params>,
    pub(crate) key: KeySwitchingKey,
}

impl RelinKey {
    pub fn generate<R: RngCore + CryptoRng + ?Sized>(
        sk: &SecretKey,
        rng: &mut R,
    ) -> Result<Self, RlweError> {
        let p = sk.params();
        let ks = p.key_switcher().ok_or(RlweError::NoSpecialPrimes)?;
        let crate::params::ErrorDistribution::Cbd { eta } = p.literal().error;
        let mut s2 = sk.poly_qp_ntt().clone();
        s2.mul_assign(sk.poly_qp_ntt())?;
        let key = KeySwitchingKey::generate(ks, sk.poly_qp_ntt(), &s2, eta, rng)?;
        zeroize::Zeroize::zeroize(&mut s2);
        Ok(Self {
            params: p.clone(),
            key,
        })
    }
}
