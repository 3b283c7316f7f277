//! CKKS parameters: a literal with public fields, checked into immutable [`Params`].
//!
//! The ciphertext modulus is `Q = q_0 ⋯ q_L` (level `ℓ` uses `q_0 ⋯ q_ℓ`), the key-switching
//! modulus is `P = p_0 ⋯ p_{K−1}`. Hybrid key switching [Han–Ki, CT-RSA 2020, §3] splits the
//! `Q` primes into `dnum` digits of `α = ⌈(L+1)/dnum⌉` consecutive primes.
//!
//! Security: `log2(QP)` must not exceed the HomomorphicEncryption.org 128-bit classical bound for
//! `N` and a uniform ternary secret (σ = 3.2 errors) [HES18 Table 1]; a sparse secret of Hamming
//! weight `h` is accepted only for `h ≥ 192` and with the bound reduced by 10%, the margin
//! Lattigo's `N16QP1546H192H32` preset takes. `Security::InsecureForTests` skips the check and is
//! meant only for tests.

use std::sync::Arc;

use math::{BaseConverter, Modulus, RnsContext};

use crate::encoder::Encoder;
use crate::error::{CkksError, ModuliProblem};

/// The secret-key distribution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecretDist {
    /// Uniform over `{−1, 0, 1}^N` (the standard's distribution).
    Ternary,
    /// Exactly `h` coefficients in `{−1, 1}`, the rest zero.
    Sparse { h: usize },
}

/// Whether the 128-bit security check applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Security {
    Bits128,
    /// No security check: for tests with small rings only.
    InsecureForTests,
}

/// Unchecked description of a parameter set.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamsLiteral {
    pub log_n: u32,
    /// Bit sizes of `q_0, …, q_L`.
    pub log_q: Vec<u32>,
    /// Bit sizes of the special primes `p_0, …, p_{K−1}`.
    pub log_p: Vec<u32>,
    /// Default encoding scale `Δ = 2^log_scale`.
    pub log_scale: u32,
    pub secret: SecretDist,
    /// Number of key-switching digits `dnum` (`None`: `⌈(L+1)/K⌉`, so that `P` ≥ each digit).
    pub digits: Option<usize>,
    pub security: Security,
}

/// 128-bit classical bound on `log2(QP)` for uniform ternary secrets [HES18, Table 1].
pub fn max_log_qp_128(log_n: u32) -> Option<u32> {
    Some(match log_n {
        10 => 27,
        11 => 54,
        12 => 109,
        13 => 218,
        14 => 438,
        15 => 881,
        16 => 1772,
        17 => 3544,
        _ => return None,
    })
}

/// Checked, immutable parameters. Cheap to clone (an `Arc`).
#[derive(Clone, Debug)]
pub struct Params(pub(crate) Arc<ParamsInner>);

#[derive(Debug)]
pub(crate) struct ParamsInner {
    pub log_n: u32,
    pub n: usize,
    pub q: Vec<u64>,
    pub p: Vec<u64>,
    pub ctx_q: Arc<RnsContext>,
    pub ctx_p: Arc<RnsContext>,
    pub encoder: Encoder,
    pub default_scale: f64,
    pub secret: SecretDist,
    pub security: Security,
    pub dnum: usize,
    pub alpha: usize,
    pub id: u64,
    pub log_qp: f64,
    /// `modup[ℓ][j]`: digit `j`'s primes (at level `ℓ`) → the other `Q_ℓ` primes, then `P`.
    pub modup: Vec<Vec<BaseConverter>>,
    /// `moddown[ℓ]`: `P` → `q_0 … q_ℓ`.
    pub moddown: Vec<BaseConverter>,
    /// `P mod q_i` and `P^{-1} mod q_i` (with Shoup constants).
    pub p_mod_q: Vec<u64>,
    pub p_inv_mod_q: Vec<(u64, u64)>,
}

impl TryFrom<ParamsLiteral> for Params {
    type Error = CkksError;
    fn try_from(lit: ParamsLiteral) -> Result<Self, CkksError> {
        Params::new(lit)
    }
}

impl Params {
    pub fn new(lit: ParamsLiteral) -> Result<Self, CkksError> {
        let encoder = Encoder::new(lit.log_n)?;
        if lit.log_n < 4 {
            return Err(CkksError::InvalidLogN {
                log_n: lit.log_n,
                min: 4,
                max: 17,
            });
        }
        let n = 1usize << lit.log_n;
        if lit.log_q.is_empty() || lit.log_p.is_empty() {
            return Err(CkksError::InvalidModuli {
                reason: ModuliProblem::Empty,
            });
        }
        for &b in lit.log_q.iter().chain(&lit.log_p) {
            if !(20..=61).contains(&b) {
                return Err(CkksError::InvalidModuli {
                    reason: ModuliProblem::PrimeSize { bits: b },
                });
            }
        }
        // Distinct primes: for each bit size take the largest unused NTT-friendly primes.
        let mut used: Vec<u64> = Vec::new();
        let mut pick = |bits: u32| -> Result<u64, CkksError> {
            let p = math::prime::generate_primes(bits, n, 1, &used).map_err(|_| {
                CkksError::InvalidModuli {
                    reason: ModuliProblem::NotEnoughPrimes { bits },
                }
            })?[0];
            used.push(p);
            Ok(p)
        };
        let q = lit
            .log_q
            .iter()
            .map(|&b| pick(b))
            .collect::<Result<Vec<_>, _>>()?;
        let p = lit
            .log_p
            .iter()
            .map(|&b| pick(b))
            .collect::<Result<Vec<_>, _>>()?;
        let log_qp: f64 = q.iter().chain(&p).map(|&x| (x as f64).log2()).sum();
        if lit.security == Security::Bits128 {
            let bound = max_log_qp_128(lit.log_n).ok_or(CkksError::InvalidLogN {
                log_n: lit.log_n,
                min: 10,
                max: 17,
            })?;
            let (bound, name) = match lit.secret {
                SecretDist::Ternary => (bound, "uniform ternary secret"),
                SecretDist::Sparse { h } if h >= 192 => (bound * 9 / 10, "sparse secret, h >= 192"),
                SecretDist::Sparse { .. } => (0, "sparse secret with h < 192"),
            };
            if log_qp.ceil() as u32 > bound {
                return Err(CkksError::Insecure {
                    log_qp: log_qp.ceil() as u32,
                    bound,
                    log_n: lit.log_n,
                    secret: name,
                });
            }
        }
        if let SecretDist::Sparse { h } = lit.secret {
            if h == 0 || h > n {
                return Err(CkksError::InvalidModuli {
                    reason: ModuliProblem::Digits {
                        count: h,
                        levels: n,
                    },
                });
            }
        }
        let levels = q.len();
        let dnum = lit.digits.unwrap_or(levels.div_ceil(p.len()));
        if dnum == 0 || dnum > levels {
            return Err(CkksError::InvalidModuli {
                reason: ModuliProblem::Digits {
                    count: dnum,
                    levels,
                },
            });
        }
        let alpha = levels.div_ceil(dnum);
        // Key-switching noise is about `max_j Q_j · e / P`: require `P ≥ Q_j` for every digit.
        let log_p: f64 = p.iter().map(|&x| (x as f64).log2()).sum();
        for j in 0..dnum {
            let hi = ((j + 1) * alpha).min(levels);
            let log_qj: f64 = q[j * alpha..hi].iter().map(|&x| (x as f64).log2()).sum();
            if log_qj > log_p + 1.0 {
                return Err(CkksError::InvalidModuli {
                    reason: ModuliProblem::Digits {
                        count: dnum,
                        levels,
                    },
                });
            }
        }
        let ctx_q = RnsContext::new(n, &q)?;
        let ctx_p = RnsContext::new(n, &p)?;
        let qm: Vec<Modulus> = ctx_q.moduli().to_vec();
        let pm: Vec<Modulus> = ctx_p.moduli().to_vec();
        let mut modup = Vec::with_capacity(levels);
        let mut moddown = Vec::with_capacity(levels);
        for l in 0..levels {
            let mut per = Vec::new();
            for j in 0..dnum {
                let lo = j * alpha;
                if lo > l {
                    break;
                }
                let hi = ((j + 1) * alpha).min(l + 1);
                let to: Vec<Modulus> = qm[..=l]
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| *i < lo || *i >= hi)
                    .map(|(_, m)| *m)
                    .chain(pm.iter().copied())
                    .collect();
                per.push(BaseConverter::new(&qm[lo..hi], &to));
            }
            modup.push(per);
            moddown.push(BaseConverter::new(&pm, &qm[..=l]));
        }
        let mut p_mod_q = Vec::with_capacity(levels);
        let mut p_inv_mod_q = Vec::with_capacity(levels);
        for m in &qm {
            let pq = p.iter().fold(1u64, |acc, &x| m.mul(acc, m.reduce(x)));
            let inv = m.inv(pq).expect("distinct primes");
            p_mod_q.push(pq);
            p_inv_mod_q.push((inv, m.shoup(inv)));
        }
        // Parameter id: FNV-1a over N, the primes, the scale and the secret distribution.
        let mut id: u64 = 0xcbf2_9ce4_8422_2325;
        let mut feed = |x: u64| {
            for b in x.to_le_bytes() {
                id ^= b as u64;
                id = id.wrapping_mul(0x0000_0100_0000_01b3);
            }
        };
        feed(n as u64);
        q.iter().chain(&p).for_each(|&x| feed(x));
        feed(lit.log_scale as u64);
        feed(dnum as u64);
        feed(match lit.secret {
            SecretDist::Ternary => 0,
            SecretDist::Sparse { h } => h as u64,
        });
        Ok(Params(Arc::new(ParamsInner {
            log_n: lit.log_n,
            n,
            q,
            p,
            ctx_q,
            ctx_p,
            encoder,
            default_scale: 2f64.powi(lit.log_scale as i32),
            secret: lit.secret,
            security: lit.security,
            dnum,
            alpha,
            id,
            log_qp,
            modup,
            moddown,
            p_mod_q,
            p_inv_mod_q,
        })))
    }

    pub fn log_n(&self) -> u32 {
        self.0.log_n
    }
    pub fn n(&self) -> usize {
        self.0.n
    }
    pub fn max_slots(&self) -> usize {
        self.0.n / 2
    }
    /// The highest level `L` (a fresh ciphertext's level).
    pub fn max_level(&self) -> usize {
        self.0.q.len() - 1
    }
    pub fn q(&self) -> &[u64] {
        &self.0.q
    }
    pub fn p(&self) -> &[u64] {
        &self.0.p
    }
    pub fn default_scale(&self) -> f64 {
        self.0.default_scale
    }
    /// Whether the parameters passed the 128-bit check (`false` for insecure test sets).
    pub fn is_secure(&self) -> bool {
        self.0.security == Security::Bits128
    }
    pub fn digits(&self) -> usize {
        self.0.dnum
    }
    pub fn secret_dist(&self) -> SecretDist {
        self.0.secret
    }
    pub fn id(&self) -> u64 {
        self.0.id
    }
    pub fn log_qp(&self) -> f64 {
        self.0.log_qp
    }
    pub fn encoder(&self) -> &Encoder {
        &self.0.encoder
    }
    pub fn ctx_q(&self) -> &Arc<RnsContext> {
        &self.0.ctx_q
    }
    pub fn ctx_p(&self) -> &Arc<RnsContext> {
        &self.0.ctx_p
    }
    /// Digits active at level `ℓ` (the last one possibly truncated).
    pub fn digits_at(&self, level: usize) -> usize {
        level / self.0.alpha + 1
    }
    /// `5^k mod 2N` for a rotation by `k` slots to the left (negative `k`: to the right).
    pub fn galois_element(&self, k: isize) -> usize {
        let m = 2 * self.0.n;
        let order = self.0.n / 2; // 5 has order N/2 modulo 2N
        let e = k.rem_euclid(order as isize) as u64;
        let mut r = 1u64;
        let mut b = 5u64;
        let mut e2 = e;
        while e2 > 0 {
            if e2 & 1 == 1 {
                r = r * b % m as u64;
            }
            b = b * b % m as u64;
            e2 >>= 1;
        }
        r as usize
    }
    /// The Galois element of complex conjugation, `2N − 1`.
    pub fn conjugation_element(&self) -> usize {
        2 * self.0.n - 1
    }
    pub(crate) fn check_level(&self, level: usize) -> Result<(), CkksError> {
        if level > self.max_level() {
            return Err(CkksError::InvalidLevel {
                level,
                max: self.max_level(),
            });
        }
        Ok(())
    }
}

impl PartialEq for Params {
    fn eq(&self, o: &Params) -> bool {
        self.0.id == o.0.id
    }
}
