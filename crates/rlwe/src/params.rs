//! Parameters: a public literal, checked into immutable [`Params`].
//!
//! Security: the total modulus `log2(Q·P)` — counted as the sum of the primes'
//! bit lengths, as SEAL does — must not exceed the HomomorphicEncryption.org
//! standard's 128-bit classical bound for uniform ternary secrets and error
//! σ ≈ 3.2 [HES18, Table 1]. Anything else needs the explicitly named
//! [`SecurityLevel::InsecureTestOnly`].

use crate::keyswitch::KeySwitcher;
use crate::RlweError;
use math::prime::generate_primes;
use math::{Modulus, RnsContext, ScaleRounder};
use std::sync::Arc;

/// Maximum `log2(QP)` for 128-bit classical security with uniform ternary
/// secrets [HomomorphicEncryption.org standard, 2018, Table 1 (ternary)].
pub const HES_128_TERNARY: [(u32, u32); 6] = [
    (10, 27),
    (11, 54),
    (12, 109),
    (13, 218),
    (14, 438),
    (15, 881),
];

/// The 128-bit bound on `log2(QP)` for `N = 2^log_n`, if tabulated.
pub fn max_log_qp_128(log_n: u32) -> Option<u32> {
    HES_128_TERNARY
        .iter()
        .find(|(l, _)| *l == log_n)
        .map(|(_, b)| *b)
}

/// Security target checked by `TryFrom<ParamsLiteral>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SecurityLevel {
    /// 128-bit classical (HomomorphicEncryption.org table); the default.
    Classical128,
    /// No security check. For tests and toy examples only: never for real data.
    InsecureTestOnly,
}

/// Distribution of the secret key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SecretDistribution {
    /// Uniform over {-1, 0, 1}^N.
    Ternary,
    /// Exactly `hamming_weight` non-zero ±1 coefficients. The HES table does not
    /// cover sparse secrets, so they are refused at [`SecurityLevel::Classical128`].
    SparseTernary { hamming_weight: usize },
}

/// Distribution of encryption errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorDistribution {
    /// Centered binomial `CBD(η)`: variance η/2, support `[-η, η]`. `η = 21`: σ ≈ 3.24.
    Cbd { eta: u32 },
}

impl ErrorDistribution {
    /// Worst-case absolute value of one error coefficient.
    pub fn bound(&self) -> u64 {
        match self {
            Self::Cbd { eta } => *eta as u64,
        }
    }
    /// Standard deviation.
    pub fn sigma(&self) -> f64 {
        match self {
            Self::Cbd { eta } => (*eta as f64 / 2.0).sqrt(),
        }
    }
}

/// Unchecked, public description of a parameter set.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ParamsLiteral {
    /// `N = 2^log_n`.
    pub log_n: u32,
    /// Ciphertext primes `q_0, …, q_{L-1}` (modulus switching drops from the end).
    pub q: Vec<u64>,
    /// Special primes for hybrid key switching (may be empty: then no
    /// relinearization or rotation).
    pub p: Vec<u64>,
    /// Plaintext modulus `t ≥ 2` (any, including `2^ℓ`), `t < 2^62`.
    pub t: u64,
    pub secret: SecretDistribution,
    pub error: ErrorDistribution,
    pub security: SecurityLevel,
}

impl ParamsLiteral {
    /// Literal whose primes are the largest NTT-friendly ones of the given bit
    /// sizes (distinct, excluding `t`), ternary secret, CBD(21) error, 128-bit.
    pub fn from_bit_sizes(
        log_n: u32,
        q_bits: &[u32],
        p_bits: &[u32],
        t: u64,
    ) -> Result<Self, RlweError> {
        let n = 1usize << log_n;
        let mut used = vec![t];
        let mut pick = |bits: u32| -> Result<u64, RlweError> {
            let q = generate_primes(bits, n, 1, &used)?[0];
            used.push(q);
            Ok(q)
        };
        let q = q_bits
            .iter()
            .map(|&b| pick(b))
            .collect::<Result<Vec<_>, _>>()?;
        let p = p_bits
            .iter()
            .map(|&b| pick(b))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            log_n,
            q,
            p,
            t,
            secret: SecretDistribution::Ternary,
            error: ErrorDistribution::Cbd {
                eta: math::sample::CBD_ETA,
            },
            security: SecurityLevel::Classical128,
        })
    }

    /// Same literal marked [`SecurityLevel::InsecureTestOnly`].
    pub fn insecure_test_only(mut self) -> Self {
        self.security = SecurityLevel::InsecureTestOnly;
        self
    }

    /// Sum of the primes' bit lengths (`Q` and `P`).
    pub fn log_qp(&self) -> u32 {
        self.q
            .iter()
            .chain(&self.p)
            .map(|q| 64 - q.leading_zeros())
            .sum()
    }
}

/// Checked, immutable parameters. Every ciphertext and key holds an `Arc` of
/// them and operations refuse objects of different parameters.
pub struct Params {
    lit: ParamsLiteral,
    n: usize,
    id: u64,
    ctx_q: Arc<RnsContext>,
    ctx_qp: Arc<RnsContext>,
    t: Modulus,
    /// per level `l` (1-based count of primes): Δ_l = floor(Q_l/t) mod q_i and `Q_l mod t`
    delta: Vec<Vec<u64>>,
    q_mod_t: Vec<u64>,
    decrypt: Vec<ScaleRounder>,
    keyswitch: Option<KeySwitcher>,
}

impl std::fmt::Debug for Params {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Params")
            .field("literal", &self.lit)
            .field("id", &self.id)
            .finish()
    }
}

impl PartialEq for Params {
    fn eq(&self, o: &Self) -> bool {
        self.lit == o.lit
    }
}
impl Eq for Params {}

impl TryFrom<ParamsLiteral> for Params {
    type Error = RlweError;

    fn try_from(lit: ParamsLiteral) -> Result<Self, RlweError> {
        if !(4..=17).contains(&lit.log_n) {
            return Err(RlweError::InvalidDegree { log_n: lit.log_n });
        }
        let n = 1usize << lit.log_n;
        if lit.q.is_empty() {
            return Err(RlweError::EmptyModulus);
        }
        if lit.t < 2 || lit.t >> 62 != 0 {
            return Err(RlweError::InvalidPlaintextModulus { t: lit.t });
        }
        if lit.q.contains(&lit.t) || lit.p.contains(&lit.t) {
            return Err(RlweError::InvalidPlaintextModulus { t: lit.t });
        }
        if lit.q.len() + lit.p.len() > 255 {
            return Err(RlweError::TooManyModuli {
                count: lit.q.len() + lit.p.len(),
            });
        }
        match lit.error {
            ErrorDistribution::Cbd { eta } if !(1..=32).contains(&eta) => {
                return Err(RlweError::InvalidErrorDistribution { eta })
            }
            _ => {}
        }
        if let SecretDistribution::SparseTernary { hamming_weight } = lit.secret {
            if hamming_weight == 0 || hamming_weight > n {
                return Err(RlweError::InvalidHammingWeight { hamming_weight, n });
            }
        }
        if lit.security == SecurityLevel::Classical128 {
            let bound =
                max_log_qp_128(lit.log_n).ok_or(RlweError::NoSecurityBound { log_n: lit.log_n })?;
            if lit.log_qp() > bound {
                return Err(RlweError::InsecureParameters {
                    log_n: lit.log_n,
                    log_qp: lit.log_qp(),
                    max_log_qp: bound,
                });
            }
            if let SecretDistribution::SparseTernary { hamming_weight } = lit.secret {
                return Err(RlweError::SparseSecretNotCovered { hamming_weight });
            }
            match lit.error {
                ErrorDistribution::Cbd { eta } if eta < 20 => {
                    return Err(RlweError::InsecureErrorDistribution { eta })
                }
                _ => {}
            }
        }
        let all: Vec<u64> = lit.q.iter().chain(&lit.p).copied().collect();
        let ctx_qp = RnsContext::new(n, &all)?;
        let ctx_q = RnsContext::new(n, &lit.q)?;
        let t = Modulus::new(lit.t)?;
        let l = lit.q.len();
        let mut delta = vec![Vec::new()];
        let mut q_mod_t = vec![0];
        let mut decrypt = Vec::with_capacity(l);
        for k in 1..=l {
            let mods = &ctx_q.moduli()[..k];
            // Q_k mod t, and floor(Q_k / t) mod q_i = (Q_k - (Q_k mod t)) · t^{-1} mod q_i
            let qmt = mods
                .iter()
                .fold(1u64, |acc, m| t.mul(acc, t.reduce(m.value())));
            q_mod_t.push(qmt);
            delta.push(
                mods.iter()
                    .map(|m| {
                        let tinv = m
                            .inv(lit.t)
                            .ok_or(RlweError::InvalidPlaintextModulus { t: lit.t })?;
                        Ok(m.mul(m.neg(m.reduce(qmt)), tinv))
                    })
                    .collect::<Result<Vec<_>, RlweError>>()?,
            );
            decrypt.push(ScaleRounder::new(mods, t));
        }
        let keyswitch = if lit.p.is_empty() {
            None
        } else {
            Some(KeySwitcher::new(ctx_q.clone(), ctx_qp.clone()))
        };
        // parameter id: FNV-1a over the literal's numbers
        let mut h: u64 = 0xcbf29ce484222325;
        let mut eat = |x: u64| {
            for b in x.to_le_bytes() {
                h ^= b as u64;
                h = h.wrapping_mul(0x100000001b3);
            }
        };
        eat(lit.log_n as u64);
        eat(lit.t);
        eat(lit.q.len() as u64);
        lit.q.iter().for_each(|&q| eat(q));
        eat(lit.p.len() as u64);
        lit.p.iter().for_each(|&q| eat(q));
        eat(match lit.secret {
            SecretDistribution::Ternary => 0,
            SecretDistribution::SparseTernary { hamming_weight } => 1 + hamming_weight as u64,
        });
        let ErrorDistribution::Cbd { eta } = lit.error;
        eat(eta as u64);
        Ok(Self {
            n,
            id: h,
            ctx_q,
            ctx_qp,
            t,
            delta,
            q_mod_t,
            decrypt,
            keyswitch,
            lit,
        })
    }
}

impl Params {
    /// Checks a literal and wraps it in an `Arc` (the form every object holds).
    pub fn new(lit: ParamsLiteral) -> Result<Arc<Self>, RlweError> {
        Ok(Arc::new(Self::try_from(lit)?))
    }

    pub fn literal(&self) -> &ParamsLiteral {
        &self.lit
    }
    pub fn n(&self) -> usize {
        self.n
    }
    pub fn log_n(&self) -> u32 {
        self.lit.log_n
    }
    /// 64-bit identifier written into every serialized object.
    pub fn id(&self) -> u64 {
        self.id
    }
    /// Context of the ciphertext primes `Q`.
    pub fn ctx_q(&self) -> &Arc<RnsContext> {
        &self.ctx_q
    }
    /// Context of `Q ∪ P` (ciphertext primes first, then special primes).
    pub fn ctx_qp(&self) -> &Arc<RnsContext> {
        &self.ctx_qp
    }
    /// Number of ciphertext primes `L` (the top level).
    pub fn max_level(&self) -> usize {
        self.lit.q.len()
    }
    pub fn num_special(&self) -> usize {
        self.lit.p.len()
    }
    pub fn t(&self) -> &Modulus {
        &self.t
    }
    /// `log2 Q_l` for a ciphertext with `num_moduli` primes.
    pub fn log_q(&self, num_moduli: usize) -> f64 {
        self.ctx_q.log2_product(num_moduli)
    }
    /// `floor(Q_l / t) mod q_i` for `i < l`.
    pub fn delta(&self, num_moduli: usize) -> &[u64] {
        &self.delta[num_moduli]
    }
    /// `Q_l mod t`.
    pub fn q_mod_t(&self, num_moduli: usize) -> u64 {
        self.q_mod_t[num_moduli]
    }
    pub(crate) fn decrypt_rounder(&self, num_moduli: usize) -> &ScaleRounder {
        &self.decrypt[num_moduli - 1]
    }
    /// Hybrid key switching context (`None` without special primes).
    pub fn key_switcher(&self) -> Option<&KeySwitcher> {
        self.keyswitch.as_ref()
    }
    pub(crate) fn check_level(&self, num_moduli: usize) -> Result<(), RlweError> {
        if num_moduli == 0 || num_moduli > self.max_level() {
            return Err(RlweError::InvalidLevel {
                level: num_moduli,
                max: self.max_level(),
            });
        }
        Ok(())
    }
}

/// Named parameter sets. Each is fixed forever once released; add new ones
/// rather than editing these.
pub mod presets {
    use super::*;

    /// Cheetah's linear-layer parameters [Cheetah, USENIX Sec'22, §5]: `N = 4096`,
    /// `Q = q_0·q_1` with 60- and 49-bit primes (`log QP = 109`, the 128-bit
    /// bound at this `N`), plaintext modulus `t = 2^ℓ` (`2 ≤ ℓ ≤ 45`), no special
    /// primes (coefficient encoding needs no rotations). Ternary secret, CBD(21).
    pub fn cheetah_n4096_q109_t2l(ell: u32) -> Result<ParamsLiteral, RlweError> {
        if !(2..=45).contains(&ell) {
            return Err(RlweError::InvalidPlaintextModulus {
                t: 1u64.checked_shl(ell).unwrap_or(0),
            });
        }
        ParamsLiteral::from_bit_sizes(12, &[60, 49], &[], 1 << ell)
    }

    /// Larger-headroom variant for 2^ℓ plaintexts with noise flooding at 40 bits:
    /// `N = 8192`, `Q` = three 60-bit primes (180 bits), one 38-bit special
    /// prime (`log QP = 218`), `t = 2^ℓ`.
    pub fn bfv_n8192_q180_t2l(ell: u32) -> Result<ParamsLiteral, RlweError> {
        if !(2..=60).contains(&ell) {
            return Err(RlweError::InvalidPlaintextModulus {
                t: 1u64.checked_shl(ell).unwrap_or(0),
            });
        }
        ParamsLiteral::from_bit_sizes(13, &[60, 60, 60], &[38], 1 << ell)
    }

    /// Fast key switching for 2^ℓ plaintexts: `N = 8192`, `Q` = two 60-bit primes (120
    /// bits), one 60-bit special prime (`log QP = 180 ≤ 218`), `t = 2^ℓ`. With `P` as large as a
    /// digit, a hybrid key switch adds noise ≈ `σ·√(2N)` only, and costs two digits instead of
    /// three on [`bfv_n8192_q180_t2l`] (Cheetah's packed responses: many key switches per layer).
    pub fn bfv_n8192_q120_p60_t2l(ell: u32) -> Result<ParamsLiteral, RlweError> {
        if !(2..=58).contains(&ell) {
            return Err(RlweError::InvalidPlaintextModulus {
                t: 1u64.checked_shl(ell).unwrap_or(0),
            });
        }
        ParamsLiteral::from_bit_sizes(13, &[60, 60], &[60], 1 << ell)
    }

    /// Cheetah's linear layers with both primes near 2^54.5 (the set `privinfer-linear` calls
    /// `N4096Q109`): `N = 4096`, `Q` = the largest 55-bit and 54-bit NTT primes
    /// (`log QP = 109`, the 128-bit bound at this `N`), no special primes, `t = 2^ℓ`
    /// (`2 ≤ ℓ ≤ 45`). Balanced primes keep `q_0` (the last modulus of a response) large.
    pub fn cheetah_n4096_q55_54_t2l(ell: u32) -> Result<ParamsLiteral, RlweError> {
        check_ell(ell, 45)?;
        ParamsLiteral::from_bit_sizes(12, &[55, 54], &[], 1 << ell)
    }

    /// Coefficient-encoded linear layers at `N = 8192` without key switching (`N8192Q165` in
    /// `privinfer-linear`): `Q` = the three largest 55-bit NTT primes (`log QP = 165 ≤ 218`),
    /// `t = 2^ℓ` (`2 ≤ ℓ ≤ 45`).
    pub fn cheetah_n8192_q165_t2l(ell: u32) -> Result<ParamsLiteral, RlweError> {
        check_ell(ell, 45)?;
        ParamsLiteral::from_bit_sizes(13, &[55, 55, 55], &[], 1 << ell)
    }

    /// The largest `N = 8192` ciphertext modulus without special primes (`N8192Q218` in
    /// `privinfer-linear`): `Q` = two 55-bit and two 54-bit NTT primes (`log QP = 218`, the
    /// 128-bit bound), `t = 2^ℓ` (`2 ≤ ℓ ≤ 45`).
    pub fn cheetah_n8192_q218_t2l(ell: u32) -> Result<ParamsLiteral, RlweError> {
        check_ell(ell, 45)?;
        ParamsLiteral::from_bit_sizes(13, &[55, 55, 54, 54], &[], 1 << ell)
    }

    fn check_ell(ell: u32, max: u32) -> Result<(), RlweError> {
        if !(2..=max).contains(&ell) {
            return Err(RlweError::InvalidPlaintextModulus {
                t: 1u64.checked_shl(ell).unwrap_or(0),
            });
        }
        Ok(())
    }

    /// BFV with SIMD batching: `N = 8192`, `Q` = four primes of 44, 44, 43, 43
    /// bits, one 44-bit special prime (`log QP = 218`, SEAL's default layout at
    /// this `N`), `t` = the largest `t_bits`-bit prime `≡ 1 mod 2N`
    /// (`17 ≤ t_bits ≤ 60`).
    pub fn bfv_simd_n8192_q218(t_bits: u32) -> Result<ParamsLiteral, RlweError> {
        if !(17..=60).contains(&t_bits) {
            return Err(RlweError::InvalidPlaintextModulus { t: 0 });
        }
        let t = generate_primes(t_bits, 8192, 1, &[])?[0];
        ParamsLiteral::from_bit_sizes(13, &[44, 44, 43, 43], &[44], t)
    }

    /// `N = 16384`: `Q` = seven 54-bit primes (378 bits) plus one 60-bit
    /// special prime (`log QP = 438`), `t` as for [`bfv_simd_n8192_q218`]
    /// but `≡ 1 mod 2·16384`.
    pub fn bfv_simd_n16384_q438(t_bits: u32) -> Result<ParamsLiteral, RlweError> {
        if !(17..=60).contains(&t_bits) {
            return Err(RlweError::InvalidPlaintextModulus { t: 0 });
        }
        let t = generate_primes(t_bits, 16384, 1, &[])?[0];
        ParamsLiteral::from_bit_sizes(14, &[54; 7], &[60], t)
    }

    /// BFV with SIMD batching for two-party linear layers with responses at one prime
    /// (`privinfer-linear`'s `simd` protocol): `N = 2^log_n` (13 or 14), `Q` = primes of 60, 33,
    /// 33 and 32 bits (158), one 60-bit special prime (`log QP = 218`, within the 128-bit bound
    /// at `N = 8192`), `t` = the largest `t_bits`-bit prime `≡ 1 mod 2N` (`17 ≤ t_bits ≤ 45`).
    /// Every digit of `Q` is below `P`, so a key switch adds little noise; `q_0` = 60 bits is
    /// wide enough to return a response at one prime.
    pub fn bfv_simd_q158_p60(log_n: u32, t_bits: u32) -> Result<ParamsLiteral, RlweError> {
        if !(13..=14).contains(&log_n) || !(17..=45).contains(&t_bits) {
            return Err(RlweError::InvalidPlaintextModulus { t: 0 });
        }
        let t = generate_primes(t_bits, 1 << log_n, 1, &[])?[0];
        ParamsLiteral::from_bit_sizes(log_n, &[60, 33, 33, 32], &[60], t)
    }

    /// `N = 16384` with a long chain for the noisiest SIMD kernels: `Q` = one 60-bit and five
    /// 54-bit primes (330), one 60-bit special prime (`log QP = 390 ≤ 438`, the 128-bit bound at
    /// this `N`), `t` as for [`bfv_simd_q158_p60`] (`17 ≤ t_bits ≤ 45`).
    pub fn bfv_simd_n16384_q330_p60(t_bits: u32) -> Result<ParamsLiteral, RlweError> {
        if !(17..=45).contains(&t_bits) {
            return Err(RlweError::InvalidPlaintextModulus { t: 0 });
        }
        let t = generate_primes(t_bits, 1 << 14, 1, &[])?[0];
        ParamsLiteral::from_bit_sizes(14, &[60, 54, 54, 54, 54, 54], &[60], t)
    }

    /// Small, fast, **insecure** parameters for unit tests: `N = 2^log_n`,
    /// three 50-bit `Q` primes and one 50-bit special prime.
    pub fn insecure_test_only(log_n: u32, t: u64) -> Result<ParamsLiteral, RlweError> {
        Ok(ParamsLiteral::from_bit_sizes(log_n, &[50, 50, 50], &[50], t)?.insecure_test_only())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_check_and_insecure_refused() {
        let p = Params::new(presets::cheetah_n4096_q109_t2l(37).unwrap()).unwrap();
        assert_eq!(p.literal().log_qp(), 109);
        assert_eq!(p.max_level(), 2);
        assert_eq!(
            Params::new(presets::bfv_simd_n8192_q218(20).unwrap())
                .unwrap()
                .literal()
                .log_qp(),
            218
        );
        assert_eq!(
            Params::new(presets::bfv_simd_n16384_q438(30).unwrap())
                .unwrap()
                .literal()
                .log_qp(),
            438
        );
        assert_eq!(
            Params::new(presets::bfv_n8192_q180_t2l(37).unwrap())
                .unwrap()
                .literal()
                .log_qp(),
            218
        );
        assert_eq!(
            Params::new(presets::bfv_n8192_q120_p60_t2l(37).unwrap())
                .unwrap()
                .literal()
                .log_qp(),
            180
        );
        for (lit, bits) in [
            (presets::cheetah_n4096_q55_54_t2l(37).unwrap(), 109),
            (presets::cheetah_n8192_q165_t2l(37).unwrap(), 165),
            (presets::cheetah_n8192_q218_t2l(37).unwrap(), 218),
        ] {
            assert_eq!(Params::new(lit).unwrap().literal().log_qp(), bits);
        }
        assert!(presets::cheetah_n8192_q218_t2l(46).is_err());
        assert!(presets::cheetah_n8192_q165_t2l(1).is_err());
        // one bit too many at N = 4096
        let bad = ParamsLiteral::from_bit_sizes(12, &[60, 50], &[], 1 << 20).unwrap();
        match Params::new(bad.clone()) {
            Err(RlweError::InsecureParameters {
                log_n: 12,
                log_qp: 110,
                max_log_qp: 109,
            }) => {}
            other => panic!("{other:?}"),
        }
        assert!(Params::new(bad.insecure_test_only()).is_ok());
        let mut sparse = presets::cheetah_n4096_q109_t2l(20).unwrap();
        sparse.secret = SecretDistribution::SparseTernary { hamming_weight: 64 };
        assert!(matches!(
            Params::new(sparse),
            Err(RlweError::SparseSecretNotCovered { .. })
        ));
        let mut weak = presets::cheetah_n4096_q109_t2l(20).unwrap();
        weak.error = ErrorDistribution::Cbd { eta: 2 };
        assert!(Params::new(weak).is_err());
        let mut dup = presets::cheetah_n4096_q109_t2l(20).unwrap();
        dup.q[1] = dup.q[0];
        assert!(Params::new(dup).is_err());
        let mut bad_t = presets::cheetah_n4096_q109_t2l(20).unwrap();
        bad_t.t = 1;
        assert!(Params::new(bad_t).is_err());
        let mut not_ntt = presets::cheetah_n4096_q109_t2l(20).unwrap();
        not_ntt.q[0] = (1 << 61) - 1;
        assert!(Params::new(not_ntt).is_err());
        assert!(Params::new(ParamsLiteral::from_bit_sizes(16, &[50], &[], 3).unwrap()).is_err());
    }

    #[test]
    fn ids_differ() {
        let a = Params::new(presets::cheetah_n4096_q109_t2l(37).unwrap()).unwrap();
        let b = Params::new(presets::cheetah_n4096_q109_t2l(36).unwrap()).unwrap();
        assert_ne!(a.id(), b.id());
    }
}
