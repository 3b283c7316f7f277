//! Keys, plaintexts, ciphertexts, encryption and decryption (BFV-style, any `t ≥ 2`).
//!
//! A message `m ∈ Z_t[X]/(X^N+1)` is encrypted at level `l` (primes
//! `q_0…q_{l-1}`, `Q_l` their product) as `(c_0, c_1)` with
//! `c_0 + c_1·s = ⌊Q_l·m/t⌉ + e (mod Q_l)` [FV12 §4, with SEAL's rounding of
//! the scaled message]: `⌊Q_l·m/t⌉ = Δ·m + ⌊(r_t·m + ⌊t/2⌋)/t⌋` where
//! `Δ = ⌊Q_l/t⌋` and `r_t = Q_l mod t`, so `t ∤ Q_l` (e.g. `t = 2^ℓ` with odd
//! primes) costs no extra error at encryption. Decryption computes
//! `⌊t·[c_0 + c_1·s]_{Q_l}/Q_l⌉ mod t`, correct while the noise stays below
//! `Q_l/(2t)` minus `r_t/2` per unit of plaintext carry.

use crate::{Params, RlweError};
use math::baseconv::{centered_log2, crt_reconstruct, modulus_product};
use math::sample::{cbd, expand_seed, poly_from_i128, sparse_ternary, ternary};
use math::{Poly, Representation};
use rand_core::{CryptoRng, RngCore};
use std::sync::Arc;
use zeroize::{Zeroize, Zeroizing};

use crate::params::{ErrorDistribution, SecretDistribution};

pub(crate) fn same(a: &Arc<Params>, b: &Arc<Params>) -> Result<(), RlweError> {
    if Arc::ptr_eq(a, b) || **a == **b {
        Ok(())
    } else {
        Err(RlweError::ParamsMismatch)
    }
}

pub(crate) fn error_poly<R: RngCore + CryptoRng + ?Sized>(
    params: &Params,
    ctx: &Arc<math::RnsContext>,
    num_moduli: usize,
    rng: &mut R,
) -> Poly {
    let ErrorDistribution::Cbd { eta } = params.literal().error;
    let e = cbd(params.n(), eta, rng);
    Poly::from_signed(ctx, num_moduli, &e)
}

/// A plaintext polynomial with coefficients in `[0, t)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plaintext {
    pub(crate) params: Arc<Params>,
    pub(crate) coeffs: Vec<u64>,
}

impl Plaintext {
    pub fn zero(params: &Arc<Params>) -> Self {
        Self {
            params: params.clone(),
            coeffs: vec![0; params.n()],
        }
    }

    /// Unsigned encoding: `values[i] < t` become coefficient `i` (zero-padded to `N`).
    pub fn from_unsigned(params: &Arc<Params>, values: &[u64]) -> Result<Self, RlweError> {
        let t = params.t().value();
        if values.len() > params.n() {
            return Err(RlweError::TooManyValues {
                count: values.len(),
                max: params.n(),
            });
        }
        if let Some(&v) = values.iter().find(|&&v| v >= t) {
            return Err(RlweError::PlaintextOutOfRange { value: v, t });
        }
        let mut coeffs = values.to_vec();
        coeffs.resize(params.n(), 0);
        Ok(Self {
            params: params.clone(),
            coeffs,
        })
    }

    /// Signed encoding: each value is reduced modulo `t` (two's complement for `t = 2^ℓ`).
    pub fn from_signed(params: &Arc<Params>, values: &[i64]) -> Result<Self, RlweError> {
        if values.len() > params.n() {
            return Err(RlweError::TooManyValues {
                count: values.len(),
                max: params.n(),
            });
        }
        let t = params.t();
        let mut coeffs: Vec<u64> = values.iter().map(|&v| t.reduce_i64(v)).collect();
        coeffs.resize(params.n(), 0);
        Ok(Self {
            params: params.clone(),
            coeffs,
        })
    }

    pub fn params(&self) -> &Arc<Params> {
        &self.params
    }
    /// Coefficients in `[0, t)` (unsigned lift).
    pub fn coeffs(&self) -> &[u64] {
        &self.coeffs
    }
    /// Centered lift to `[-t/2, t/2)` (`t` even) or `(-t/2, t/2]`... i.e. `v > t/2 ↦ v − t`.
    pub fn to_signed(&self) -> Vec<i64> {
        let t = self.params.t().value();
        self.coeffs
            .iter()
            .map(|&v| {
                if v >= t.div_ceil(2) {
                    v as i64 - t as i64
                } else {
                    v as i64
                }
            })
            .collect()
    }

    /// `⌊Q_l·m/t⌉` over the first `num_moduli` primes, coefficient form.
    pub fn scaled(&self, num_moduli: usize) -> Result<Poly, RlweError> {
        let p = &self.params;
        p.check_level(num_moduli)?;
        let mut out = Poly::zero(p.ctx_q(), num_moduli, Representation::Coefficient);
        let carry = ScaleCarry::new(p, num_moduli);
        let corr: Vec<u64> = self.coeffs.iter().map(|&m| carry.of(m)).collect();
        for (i, m) in p.ctx_q().moduli()[..num_moduli].iter().enumerate() {
            let d = p.delta(num_moduli)[i];
            let ds = m.shoup(d);
            for ((o, &v), &c) in out.residue_mut(i).iter_mut().zip(&self.coeffs).zip(&corr) {
                *o = m.add(m.mul_shoup(v, d, ds), m.reduce(c));
            }
        }
        Ok(out)
    }

    /// The message lifted to `[-t/2, t/2)` over the first `num_moduli` primes (coefficient form).
    pub(crate) fn lifted(&self, num_moduli: usize) -> Result<Poly, RlweError> {
        self.params.check_level(num_moduli)?;
        Ok(Poly::from_signed(
            self.params.ctx_q(),
            num_moduli,
            &self.to_signed(),
        ))
    }
}

/// The rounding carry of the Δ-encoding at level `l`: `⌊Q_l·m/t⌉ = Δ_l·m + c(m)` with
/// `Δ_l = ⌊Q_l/t⌋`, `r_t = Q_l mod t` and `c(m) = ⌊(r_t·m + ⌊t/2⌋)/t⌋` for `m ∈ [0, t)`
/// [FV12 §4, SEAL's rounding of the scaled message]. Exact: `Q_l·m/t = Δ_l·m + r_t·m/t`.
struct ScaleCarry {
    rt: u64,
    t: u64,
    half: u64,
    /// `⌊2^64·r_t/t⌋`: Shoup's quotient estimate of `⌊r_t·m/t⌋` (off by at most one).
    w: u128,
}

impl ScaleCarry {
    fn new(p: &Params, num_moduli: usize) -> Self {
        let t = p.t().value();
        let rt = p.q_mod_t(num_moduli);
        Self {
            rt,
            t,
            half: t / 2,
            w: ((rt as u128) << 64) / t as u128,
        }
    }

    /// `c(m)` for `m < t < 2^62` (so `m·w < 2^126` and `r_t·m < 2^124`).
    #[inline]
    fn of(&self, m: u64) -> u64 {
        let t = self.t;
        let mut q = ((m as u128 * self.w) >> 64) as u64;
        let mut r = (self.rt as u128 * m as u128 - q as u128 * t as u128) as u64;
        if r >= t {
            q += 1;
            r -= t;
        }
        q + (r + self.half >= t) as u64
    }
}

impl Params {
    /// Δ-encoding added in place [FV12 §4]: `poly[positions[j]] += ⌊Q_l·values[j]/t⌉ (mod Q_l)`
    /// for every `j`, where `poly` is in coefficient form over the first `l` primes of `Q`.
    /// The same arithmetic as [`Plaintext::scaled`]; positions may repeat (the encodings add).
    /// Errors: `poly` not over `Q` or in NTT form, a position `≥ N`, a value `≥ t`, or
    /// `positions` and `values` of different lengths.
    pub fn add_scaled_at(
        &self,
        poly: &mut Poly,
        positions: &[usize],
        values: &[u64],
    ) -> Result<(), RlweError> {
        let l = self.check_scaled_target(poly, values)?;
        if positions.len() != values.len() {
            return Err(RlweError::BadLength {
                expected: values.len(),
                found: positions.len(),
            });
        }
        if let Some(&i) = positions.iter().find(|&&i| i >= self.n()) {
            return Err(RlweError::IndexOutOfRange {
                index: i,
                n: self.n(),
            });
        }
        self.add_scaled_pairs(
            poly,
            l,
            positions.iter().copied().zip(values.iter().copied()),
        );
        Ok(())
    }

    /// [`Self::add_scaled_at`] at positions `0, 1, …, values.len() − 1` (`values.len() ≤ N`);
    /// zero values are skipped (their encoding is 0).
    pub fn add_scaled(&self, poly: &mut Poly, values: &[u64]) -> Result<(), RlweError> {
        let l = self.check_scaled_target(poly, values)?;
        if values.len() > self.n() {
            return Err(RlweError::TooManyValues {
                count: values.len(),
                max: self.n(),
            });
        }
        self.add_scaled_pairs(poly, l, values.iter().copied().enumerate());
        Ok(())
    }

    /// `poly[j] += ⌊Q_l·v/t⌉` for every (checked) pair `(j, v)`: ⌊Q_l/t⌋·v + c(v) per prime,
    /// c(v) = ⌊(r_t·v + ⌊t/2⌋)/t⌋ computed once per value; zero values encode to 0 and are skipped.
    fn add_scaled_pairs(
        &self,
        poly: &mut Poly,
        l: usize,
        pairs: impl Iterator<Item = (usize, u64)>,
    ) {
        let carry = ScaleCarry::new(self, l);
        let items: Vec<(usize, u64, u64)> = pairs
            .filter(|&(_, v)| v != 0)
            .map(|(j, v)| (j, v, carry.of(v)))
            .collect();
        for (i, m) in self.ctx_q().moduli()[..l].iter().enumerate() {
            let d = self.delta(l)[i];
            let ds = m.shoup(d);
            let res = poly.residue_mut(i);
            for &(j, v, c) in &items {
                res[j] = m.add(res[j], m.add(m.mul_shoup(v, d, ds), m.reduce(c)));
            }
        }
    }

    /// Level of a Δ-encoding target, after checking its context, form and the values.
    fn check_scaled_target(&self, poly: &Poly, values: &[u64]) -> Result<usize, RlweError> {
        if **poly.context() != **self.ctx_q()
            || poly.representation() != Representation::Coefficient
        {
            return Err(RlweError::ParamsMismatch);
        }
        let l = poly.num_moduli();
        self.check_level(l)?;
        let t = self.t().value();
        if let Some(&v) = values.iter().find(|&&v| v >= t) {
            return Err(RlweError::PlaintextOutOfRange { value: v, t });
        }
        Ok(l)
    }
}

/// A plaintext prepared for `ct × pt`: the centered lift of `m` in NTT form at a
/// given level. Build once, multiply many times.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlaintextNtt {
    pub(crate) params: Arc<Params>,
    pub(crate) poly: Poly,
}

impl PlaintextNtt {
    /// From a plaintext (coefficients mod `t`, centered lift).
    pub fn new(pt: &Plaintext, num_moduli: usize) -> Result<Self, RlweError> {
        let mut poly = pt.lifted(num_moduli)?;
        poly.ntt_forward();
        Ok(Self {
            params: pt.params.clone(),
            poly,
        })
    }

    /// From signed integer coefficients used as they are (not reduced mod `t`),
    /// e.g. fixed-point weights; `|v|` should stay well below `t` for noise.
    pub fn from_signed(
        params: &Arc<Params>,
        values: &[i64],
        num_moduli: usize,
    ) -> Result<Self, RlweError> {
        params.check_level(num_moduli)?;
        if values.len() > params.n() {
            return Err(RlweError::TooManyValues {
                count: values.len(),
                max: params.n(),
            });
        }
        let mut poly = Poly::from_signed(params.ctx_q(), num_moduli, values);
        poly.ntt_forward();
        Ok(Self {
            params: params.clone(),
            poly,
        })
    }

    pub fn num_moduli(&self) -> usize {
        self.poly.num_moduli()
    }
    pub fn poly(&self) -> &Poly {
        &self.poly
    }
}

/// An RLWE ciphertext `(c_0, c_1[, c_2])` over `Q_l`; all parts share one
/// representation. `seed` is set while `c_1` is still the expansion of a
/// 32-byte seed (fresh secret-key encryptions), enabling the seeded wire form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ciphertext {
    pub(crate) params: Arc<Params>,
    pub(crate) polys: Vec<Poly>,
    pub(crate) seed: Option<[u8; 32]>,
}

impl Ciphertext {
    /// From parts (≥ 2 polynomials over `Q_l`, same level and representation).
    pub fn from_polys(params: &Arc<Params>, polys: Vec<Poly>) -> Result<Self, RlweError> {
        if polys.len() < 2 {
            return Err(RlweError::InvalidCiphertextSize { size: polys.len() });
        }
        let (l, r) = (polys[0].num_moduli(), polys[0].representation());
        params.check_level(l)?;
        for p in &polys {
            if **p.context() != **params.ctx_q() || p.num_moduli() != l || p.representation() != r {
                return Err(RlweError::ParamsMismatch);
            }
        }
        Ok(Self {
            params: params.clone(),
            polys,
            seed: None,
        })
    }
    pub fn params(&self) -> &Arc<Params> {
        &self.params
    }
    pub fn num_moduli(&self) -> usize {
        self.polys[0].num_moduli()
    }
    pub fn representation(&self) -> Representation {
        self.polys[0].representation()
    }
    /// Number of polynomials (2, or 3 after an unrelinearized product).
    pub fn size(&self) -> usize {
        self.polys.len()
    }
    pub fn polys(&self) -> &[Poly] {
        &self.polys
    }
    /// Mutable access to the parts (clears the seed).
    pub fn polys_mut(&mut self) -> &mut [Poly] {
        self.seed = None;
        &mut self.polys
    }
    pub fn seed(&self) -> Option<&[u8; 32]> {
        self.seed.as_ref()
    }
    pub fn to_representation(&mut self, repr: Representation) {
        for p in &mut self.polys {
            p.to_representation(repr);
        }
    }
}

/// The secret key `s`. Not `Debug`, `Clone`, `PartialEq` or serializable;
/// zeroized on drop.
pub struct SecretKey {
    pub(crate) params: Arc<Params>,
    coeffs: Vec<i64>,
    /// `s` in NTT form over `Q` and over `Q ∪ P`.
    pub(crate) s_q: Poly,
    pub(crate) s_qp: Poly,
}

impl Drop for SecretKey {
    fn drop(&mut self) {
        self.coeffs.zeroize();
        self.s_q.zeroize();
        self.s_qp.zeroize();
    }
}

impl SecretKey {
    pub fn generate<R: RngCore + CryptoRng + ?Sized>(params: &Arc<Params>, rng: &mut R) -> Self {
        let n = params.n();
        let coeffs = match params.literal().secret {
            SecretDistribution::Ternary => ternary(n, rng),
            SecretDistribution::SparseTernary { hamming_weight } => {
                sparse_ternary(n, hamming_weight, rng)
            }
        };
        Self::from_coeffs(params, coeffs)
    }

    fn from_coeffs(params: &Arc<Params>, coeffs: Vec<i64>) -> Self {
        let mut s_q = Poly::from_signed(params.ctx_q(), params.max_level(), &coeffs);
        s_q.ntt_forward();
        let mut s_qp = Poly::from_signed(params.ctx_qp(), params.ctx_qp().len(), &coeffs);
        s_qp.ntt_forward();
        Self {
            params: params.clone(),
            coeffs,
            s_q,
            s_qp,
        }
    }

    pub fn params(&self) -> &Arc<Params> {
        &self.params
    }

    /// Secret coefficients (for key derivations such as `s²` or `σ_k(s)` in
    /// other schemes; handle with care).
    pub fn coeffs(&self) -> &[i64] {
        &self.coeffs
    }
    /// `s` in NTT form over all of `Q ∪ P` (for [`crate::KeySwitchingKey::generate`]).
    pub fn poly_qp_ntt(&self) -> &Poly {
        &self.s_qp
    }
    /// `s` in NTT form over the first `num_moduli` primes of `Q` (a copy that
    /// is zeroized when dropped).
    pub fn poly_q_ntt(&self, num_moduli: usize) -> Zeroizing<Poly> {
        let mut s = Zeroizing::new(self.s_q.clone());
        s.drop_to(num_moduli).expect("level checked by caller");
        s
    }

    /// `s` in NTT form over all of `Q` (top level).
    pub fn poly_q_ntt_top(&self) -> &Poly {
        &self.s_q
    }

    /// Seeded symmetric encryption of `pt` at the top level.
    pub fn encrypt<R: RngCore + CryptoRng + ?Sized>(
        &self,
        pt: &Plaintext,
        rng: &mut R,
    ) -> Result<Ciphertext, RlweError> {
        self.encrypt_at(pt, self.params.max_level(), rng)
    }

    /// Seeded symmetric encryption at level `num_moduli`: `c_1 = a` expanded
    /// from a fresh 32-byte seed (NTT form), `c_0 = −a·s + ⌊Q_l m/t⌉ + e`.
    pub fn encrypt_at<R: RngCore + CryptoRng + ?Sized>(
        &self,
        pt: &Plaintext,
        num_moduli: usize,
        rng: &mut R,
    ) -> Result<Ciphertext, RlweError> {
        same(&self.params, &pt.params)?;
        let m = pt.scaled(num_moduli)?;
        self.encrypt_poly(&m, rng)
    }

    /// RLWE encryption of an arbitrary (already scaled) message polynomial
    /// `m` over `Q_l`: `c_0 + c_1·s = m + e`. The building block CKKS uses.
    pub fn encrypt_poly<R: RngCore + CryptoRng + ?Sized>(
        &self,
        m: &Poly,
        rng: &mut R,
    ) -> Result<Ciphertext, RlweError> {
        let p = &self.params;
        let l = m.num_moduli();
        p.check_level(l)?;
        if **m.context() != **p.ctx_q() {
            return Err(RlweError::ParamsMismatch);
        }
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        let a = expand_seed(p.ctx_q(), l, &seed);
        let mut c0 = error_poly(p, p.ctx_q(), l, rng);
        let mut mc = m.clone();
        mc.ntt_inverse();
        c0.add_assign(&mc)?;
        c0.ntt_forward();
        let mut as_ = a.clone();
        as_.mul_assign_prefix(&self.s_q)?;
        c0.sub_assign(&as_)?;
        Ok(Ciphertext {
            params: p.clone(),
            polys: vec![c0, a],
            seed: Some(seed),
        })
    }

    /// `c_0 + c_1·s (+ c_2·s² …)` over `Q_l`, coefficient form.
    pub fn phase(&self, ct: &Ciphertext) -> Result<Poly, RlweError> {
        same(&self.params, &ct.params)?;
        let l = ct.num_moduli();
        let _ = l;
        let mut acc = ct.polys[ct.size() - 1].clone();
        acc.ntt_forward();
        for i in (0..ct.size() - 1).rev() {
            acc.mul_assign_prefix(&self.s_q)?;
            let mut c = ct.polys[i].clone();
            c.ntt_forward();
            acc.add_assign(&c)?;
        }
        acc.ntt_inverse();
        Ok(acc)
    }

    pub fn decrypt(&self, ct: &Ciphertext) -> Result<Plaintext, RlweError> {
        let ph = self.phase(ct)?;
        let n = self.params.n();
        let mut coeffs = vec![0u64; n];
        self.params
            .decrypt_rounder(ct.num_moduli())
            .scale_round(n, ph.data(), &mut coeffs);
        Ok(Plaintext {
            params: self.params.clone(),
            coeffs,
        })
    }

    /// `log2` of the largest noise coefficient `‖[c_0 + c_1 s − ⌊Q_l m/t⌉]_{Q_l}‖_∞`
    /// of `ct` against the expected message (a test/diagnostic helper).
    pub fn noise_log2(&self, ct: &Ciphertext, expected: &Plaintext) -> Result<f64, RlweError> {
        let mut v = self.phase(ct)?;
        v.sub_assign(&expected.scaled(ct.num_moduli())?)?;
        Ok(max_centered_log2(&v))
    }

    /// Remaining noise budget in bits: `log2(Q_l / (2t)) − noise_log2`.
    pub fn noise_budget(&self, ct: &Ciphertext, expected: &Plaintext) -> Result<f64, RlweError> {
        let l = ct.num_moduli();
        Ok(self.params.log_q(l)
            - (2.0 * self.params.t().value() as f64).log2()
            - self.noise_log2(ct, expected)?)
    }
}

/// `max_i log2 |v_i|` of the centered coefficients of `v` (coefficient form).
pub fn max_centered_log2(v: &Poly) -> f64 {
    let n = v.n();
    let l = v.num_moduli();
    let q = modulus_product(v.moduli());
    let mut res = vec![0u64; l];
    let mut worst = f64::NEG_INFINITY;
    for c in 0..n {
        for (i, r) in res.iter_mut().enumerate() {
            *r = v.data()[i * n + c];
        }
        let x = crt_reconstruct(v.moduli(), &res);
        worst = worst.max(centered_log2(&x, &q));
    }
    worst
}

/// Public key `(p_0, p_1) = (−a·s + e, a)` over `Q` (NTT form).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey {
    pub(crate) params: Arc<Params>,
    pub(crate) p0: Poly,
    pub(crate) p1: Poly,
    pub(crate) seed: [u8; 32],
}

impl PublicKey {
    pub fn generate<R: RngCore + CryptoRng + ?Sized>(
        sk: &SecretKey,
        rng: &mut R,
    ) -> Result<Self, RlweError> {
        let zero = Poly::zero(
            sk.params.ctx_q(),
            sk.params.max_level(),
            Representation::Ntt,
        );
        let ct = sk.encrypt_poly(&zero, rng)?;
        let seed = ct.seed.expect("fresh encryption is seeded");
        let mut it = ct.polys.into_iter();
        Ok(Self {
            params: sk.params.clone(),
            p0: it.next().unwrap(),
            p1: it.next().unwrap(),
            seed,
        })
    }

    pub fn params(&self) -> &Arc<Params> {
        &self.params
    }

    pub fn encrypt<R: RngCore + CryptoRng + ?Sized>(
        &self,
        pt: &Plaintext,
        rng: &mut R,
    ) -> Result<Ciphertext, RlweError> {
        self.encrypt_at(pt, self.params.max_level(), rng)
    }

    pub fn encrypt_at<R: RngCore + CryptoRng + ?Sized>(
        &self,
        pt: &Plaintext,
        num_moduli: usize,
        rng: &mut R,
    ) -> Result<Ciphertext, RlweError> {
        same(&self.params, &pt.params)?;
        let m = pt.scaled(num_moduli)?;
        self.encrypt_poly(&m, rng)
    }

    /// `c_0 = p_0·u + e_0 + m`, `c_1 = p_1·u + e_1` with ternary `u` [FV12 §4].
    pub fn encrypt_poly<R: RngCore + CryptoRng + ?Sized>(
        &self,
        m: &Poly,
        rng: &mut R,
    ) -> Result<Ciphertext, RlweError> {
        let p = &self.params;
        let l = m.num_moduli();
        p.check_level(l)?;
        let mut u = Poly::from_signed(p.ctx_q(), l, &ternary(p.n(), rng));
        u.ntt_forward();
        let mut c0 = error_poly(p, p.ctx_q(), l, rng);
        let mut mc = m.clone();
        mc.ntt_inverse();
        c0.add_assign(&mc)?;
        c0.ntt_forward();
        let mut c1 = error_poly(p, p.ctx_q(), l, rng);
        c1.ntt_forward();
        let (mut p0, mut p1) = (self.p0.clone(), self.p1.clone());
        p0.drop_to(l)?;
        p1.drop_to(l)?;
        c0.mul_acc(&p0, &u)?;
        c1.mul_acc(&p1, &u)?;
        Ok(Ciphertext {
            params: p.clone(),
            polys: vec![c0, c1],
            seed: None,
        })
    }
}

#[allow(dead_code)]
pub(crate) fn poly_i128(params: &Params, num_moduli: usize, v: &[i128]) -> Poly {
    poly_from_i128(params.ctx_q(), num_moduli, v)
}
