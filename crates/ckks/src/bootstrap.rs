//! CKKS bootstrapping [CHKKS18; Han–Ki 2020; Bossuat et al. Eurocrypt 2021 and 2022]:
//! ModRaise → CoeffsToSlots → EvalMod → SlotsToCoeffs, with sparse-secret encapsulation.
//!
//! * **Encapsulation** [Bossuat–Troncoso-Pastoriza–Hubaux 2022]: at level 0 the ciphertext is
//!   switched from the dense secret `s` to an ephemeral secret `s'` of Hamming weight `h'` (the
//!   switching key lives only modulo `q_0·P`); after ModRaise it is switched back to `s` at the top
//!   level. With `c_0, c_1 ∈ (−q_0/2, q_0/2]`, `|c_0 + c_1·s'| ≤ (h' + 1)·q_0/2`, so the overflow
//!   `I` in `c_0 + c_1 s' = m + q_0·I` satisfies `|I| ≤ ⌊(h'+1)/2⌉` with certainty: with `h' = 32`,
//!   `|I| ≤ 16`, and EvalMod on `[−K, K]`, `K = 17`, never fails (failure probability 0 from `I`).
//! * **ModRaise**: the residues modulo `q_0`, centered, are read modulo the whole chain `Q_L`.
//!   The ciphertext is declared at scale `q_0`, so its slots hold `V·fold(m + q_0 I)/q_0`.
//! * **CoeffsToSlots**: `R·V^{-1}` (`R` the bit-reversal) as the product of the inverse butterfly
//!   stages of the special FFT, grouped into a few levels, each a BSGS linear transform;
//!   `1/(2K)` is folded into the first group. Conjugation then splits real and imaginary parts:
//!   `re = w + w̄`, `im = −i(w − w̄)`, each holding `y = (m + q_0 I)/(q_0 K) ∈ [−1, 1]` per
//!   coefficient.
//! * **EvalMod**: `sin(2πKy) = sin(2π m/q_0) ≈ 2π m/q_0` as a Chebyshev interpolant of the even
//!   function `cos(2πKy'/2^r)`, `y' = y − 1/(4K)`, followed by `r` double angles
//!   `cos 2θ = 2cos²θ − 1`. The result is
//!   relabeled to scale `2π Δ_in s/q_0`, which makes its value `m/Δ_in` at no cost.
//! * **SlotsToCoeffs**: `V·R` as the product of the forward butterfly stages, grouped likewise.
//! * **Sparse packing, one EvalMod** (`n ≤ N/4` slots): the `2n` real coefficients fit the
//!   slots of one ciphertext viewed with `2n` slots. The last CoeffsToSlots group writes only the
//!   first `n` of them (its diagonals masked on the output rows: no level), so `re` and `im`
//!   are `[·, 0]`, and `z = re + R_n(im) = [Re w, Im w]` goes through EvalMod once. The first
//!   SlotsToCoeffs group reads `z + i·R_n(z) = [w, ·]` through diagonals confined to the first
//!   half (rows and columns), and `+ R_n` of its result restores the `n`-periodic (sparse)
//!   vector. The rotation by `n` is the trace's first rotation: no new key.
//!
//! Slot order inside the procedure is bit-reversed; EvalMod is slot-wise, so `R` cancels.

use std::f64::consts::PI;

use math::{Poly, Representation};
use rand_core::{CryptoRng, RngCore};

use crate::chebyshev::ChebyshevSeries;
use crate::encoder::Complex;
use crate::error::CkksError;
use crate::evaluator::Evaluator;
use crate::keys::{EvaluationKeys, KeyGenerator, SecretKey, SwitchingKey};
use crate::linear::{DiagMatrix, LinearTransform};
use crate::params::{Params, SecretDist};
use crate::polyeval;
use crate::ring;
use crate::scheme::Ciphertext;

/// How the bootstrapping circuit is laid out on the modulus chain.
#[derive(Clone, Debug, PartialEq)]
pub struct BootstrapConfig {
    /// Butterfly stages merged per CoeffsToSlots level, from the top level down (sum = log2 slots).
    pub cts_stages: Vec<usize>,
    /// Butterfly stages merged per SlotsToCoeffs level, in evaluation order (sum = log2 slots).
    pub stc_stages: Vec<usize>,
    /// EvalMod interval `[−K, K]` for `m/q_0 + I`.
    pub k: f64,
    /// Number of double-angle steps `r`.
    pub double_angle: u32,
    /// Degree of the Chebyshev interpolant of the scaled cosine.
    pub cheb_degree: usize,
    /// Hamming weight of the ephemeral secret (`None`: no encapsulation; the main secret must
    /// then be sparse enough for `K`).
    pub ephemeral_h: Option<usize>,
    /// Slots (`N/2` for full packing; fewer for sparse packing, which adds `log2(N/2/slots)`
    /// rotations at the top level for the subring trace).
    pub slots: usize,
    /// Optional arcsine after the sine (odd Taylor degree, e.g. 3 or 5): `EvalMod` then returns
    /// `arcsin(sin(2πm/q_0)) = 2πm/q_0` instead of `sin(2πm/q_0)`, removing the relative error
    /// `(2πm/q_0)²/6` of `sin x ≈ x`, at the cost of `depth(degree)` more levels. It matters only
    /// for coefficients `m` that are a sizeable fraction of `q_0` (see docs/ckks.md).
    pub arcsine_degree: Option<usize>,
}

impl BootstrapConfig {
    /// Levels consumed: CoeffsToSlots + EvalMod + SlotsToCoeffs.
    pub fn depth(&self) -> usize {
        self.cts_stages.len() + self.eval_mod_depth() + self.stc_stages.len()
    }
    /// The same circuit for sparse packing with `slots` (a power of two below the configured
    /// count): the stages a smaller FFT lacks are taken from CoeffsToSlots' first group (the
    /// longest stages, top level) and SlotsToCoeffs' last, so every other group — its diagonals'
    /// offsets and rotations — is the one of the configured circuit and shares its keys.
    /// `None` when `slots` is not a power of two or would empty a group.
    pub fn with_slots(&self, slots: usize) -> Option<BootstrapConfig> {
        if !slots.is_power_of_two() || slots > self.slots {
            return None;
        }
        let cut = (self.slots / slots).trailing_zeros() as usize;
        let (first, last) = (*self.cts_stages.first()?, *self.stc_stages.last()?);
        if cut >= first || cut >= last {
            return None;
        }
        let mut c = self.clone();
        c.cts_stages[0] -= cut;
        *c.stc_stages.last_mut()? -= cut;
        c.slots = slots;
        Some(c)
    }
    /// Level of a ciphertext this circuit bootstraps, on `params`' chain (an error when the
    /// chain is shorter than [`BootstrapConfig::depth`]).
    pub fn output_level(&self, params: &Params) -> Result<usize, CkksError> {
        params
            .max_level()
            .checked_sub(self.depth())
            .ok_or(CkksError::NotEnoughLevels {
                degree: self.cheb_degree,
                needed: self.depth(),
                available: params.max_level(),
            })
    }
    pub fn eval_mod_depth(&self) -> usize {
        polyeval::depth(self.cheb_degree)
            + self.double_angle as usize
            + self.arcsine_degree.map_or(0, polyeval::depth)
    }
}

/// Keys of the encapsulation: `s → s'` (modulo `q_0·P` only) and `s' → s`.
#[derive(Clone)]
pub struct EncapsulationKeys {
    pub(crate) to_sparse: SwitchingKey,
    pub(crate) from_sparse: SwitchingKey,
}

impl EncapsulationKeys {
    /// Samples an ephemeral secret `s'` of Hamming weight `h` and the two switching keys
    /// (client side). `s → s'` exists only modulo `q_0·P`: the sparse secret must never be
    /// exposed at a larger modulus [BTH22 §4].
    pub fn generate<R: RngCore + CryptoRng>(
        params: &Params,
        sk: &SecretKey,
        h: usize,
        rng: &mut R,
    ) -> Result<Self, CkksError> {
        if h == 0 || h > params.n() {
            return Err(CkksError::InvalidModuli {
                reason: crate::error::ModuliProblem::Digits {
                    count: h,
                    levels: params.n(),
                },
            });
        }
        let kg = KeyGenerator::new(params, sk)?;
        let sparse =
            SecretKey::from_coeffs(params, math::sample::sparse_ternary(params.n(), h, rng));
        let kg_sparse = KeyGenerator::new(params, &sparse)?;
        Ok(EncapsulationKeys {
            to_sparse: kg_sparse.switching_key_at(sk, 0, rng),
            from_sparse: kg.switching_key(&sparse, rng),
        })
    }

    pub fn memory_bytes(&self) -> usize {
        self.to_sparse.memory_bytes() + self.from_sparse.memory_bytes()
    }
}

/// Wall-clock time of each bootstrapping phase.
#[derive(Clone, Copy, Debug, Default)]
pub struct PhaseTimes {
    /// Encapsulation, ModRaise and the switch back to the dense secret.
    pub mod_raise: std::time::Duration,
    pub coeffs_to_slots: std::time::Duration,
    pub eval_mod: std::time::Duration,
    pub slots_to_coeffs: std::time::Duration,
}

/// Precomputed bootstrapping circuit (public data only: no keys).
pub struct Bootstrapper {
    params: Params,
    config: BootstrapConfig,
    cts: Vec<LinearTransform>,
    stc: Vec<LinearTransform>,
    series: ChebyshevSeries,
    arcsine: Option<ChebyshevSeries>,
    /// Sparse packing with `2·slots ≤ N/2`: real and imaginary parts share one EvalMod.
    packed: bool,
}

/// The butterfly stage of length `len` of the special FFT on `n` slots, or its inverse.
pub fn butterfly(params: &Params, n: usize, len: usize, inverse: bool) -> DiagMatrix {
    let h = len / 2;
    let enc = params.encoder();
    let mut m = DiagMatrix {
        n,
        diags: Default::default(),
    };
    let zero = vec![Complex::ZERO; n];
    let mut put = |k: usize, p: usize, v: Complex| {
        m.diags.entry(k % n).or_insert_with(|| zero.clone())[p] += v;
    };
    for p in 0..n {
        let j = p % len;
        if j < h {
            let t = enc.twiddle(len, j);
            if inverse {
                put(0, p, Complex::new(0.5, 0.0));
                put(h, p, Complex::new(0.5, 0.0));
            } else {
                put(0, p, Complex::ONE);
                put(h, p, t);
            }
        } else {
            let t = enc.twiddle(len, j - h);
            if inverse {
                put(0, p, -t.conj().scale(0.5));
                put(n - h, p, t.conj().scale(0.5));
            } else {
                put(0, p, -t);
                put(n - h, p, Complex::ONE);
            }
        }
    }
    m
}

/// Plaintext scales `Δ_i` for consecutive transforms at primes `q_i` such that
/// `Π Δ_i/q_i = factor` and `Δ_i·max|M_i|` is the same for every `i`.
fn balanced_scales(mats: &[DiagMatrix], qs: &[f64], factor: f64) -> Vec<f64> {
    let maxes: Vec<f64> = mats
        .iter()
        .map(|m| {
            m.diags
                .values()
                .flat_map(|d| d.iter())
                .map(|x| x.abs())
                .fold(0.0, f64::max)
                .max(1e-300)
        })
        .collect();
    let log_t = (factor.log2()
        + qs.iter().map(|q| q.log2()).sum::<f64>()
        + maxes.iter().map(|m| m.log2()).sum::<f64>())
        / mats.len() as f64;
    maxes.iter().map(|m| 2f64.powf(log_t - m.log2())).collect()
}

/// Groups of merged butterfly stages: CoeffsToSlots applies the inverse stages from the longest
/// to the shortest; SlotsToCoeffs the forward stages from the shortest to the longest.
fn grouped(
    params: &Params,
    n: usize,
    groups: &[usize],
    inverse: bool,
) -> Result<Vec<DiagMatrix>, CkksError> {
    let log = n.trailing_zeros() as usize;
    if groups.iter().sum::<usize>() != log || groups.contains(&0) {
        return Err(CkksError::InvalidSlots {
            slots: n,
            max: params.max_slots(),
        });
    }
    let mut lens: Vec<usize> = (1..=log).map(|i| 1usize << i).collect(); // 2, 4, …, n
    if inverse {
        lens.reverse();
    }
    let mut out = Vec::new();
    let mut it = lens.into_iter();
    for &g in groups {
        let mut acc: Option<DiagMatrix> = None;
        for _ in 0..g {
            let len = it.next().expect("sum checked");
            let b = butterfly(params, n, len, inverse);
            // Applying b after acc: b · acc.
            acc = Some(match acc {
                None => b,
                Some(a) => b.mul(&a),
            });
        }
        out.push(acc.expect("g ≥ 1"));
    }
    Ok(out)
}

/// Stores the time since `clock` in `slot` and restarts `clock`.
fn lap(clock: &mut std::time::Instant, slot: &mut std::time::Duration) {
    let now = std::time::Instant::now();
    *slot = now - *clock;
    *clock = now;
}

/// The signed offset of diagonal `k` of an `n`-slot matrix, in `(−n/2, n/2]`.
fn signed_offset(k: usize, n: usize) -> isize {
    if 2 * k > n {
        k as isize - n as isize
    } else {
        k as isize
    }
}

/// `m` (on `n` slots) lifted to `2n` slots for an `n`-periodic input, its rows `≥ n` zero:
/// `[M x; 0]` for `x = [x; x]`. Each diagonal keeps its signed offset, so the transform
/// rotates by the same amounts (same keys, same baby and giant steps).
fn lift_output_half(m: &DiagMatrix) -> DiagMatrix {
    let n = m.n;
    let diags = m
        .diags
        .iter()
        .map(|(&k, d)| {
            let mut d2 = d.clone();
            d2.resize(2 * n, Complex::ZERO);
            (signed_offset(k, n).rem_euclid(2 * n as isize) as usize, d2)
        })
        .collect();
    DiagMatrix { n: 2 * n, diags }
}

/// `m` (on `n` slots) lifted to `2n` slots reading and writing only the first half:
/// `[M x₁; 0]` for `x = [x₁; x₂]`. Requires every entry of `m` to stay inside `[0, n)` at its
/// diagonal's signed offset (true of butterfly groups shorter than `n`); `None` otherwise.
fn lift_first_half(m: &DiagMatrix) -> Option<DiagMatrix> {
    let n = m.n;
    let mut diags = std::collections::BTreeMap::new();
    for (&k, d) in &m.diags {
        let sk = signed_offset(k, n);
        let mut d2 = vec![Complex::ZERO; 2 * n];
        for (p, &v) in d.iter().enumerate() {
            if v != Complex::ZERO {
                let col = p as isize + sk;
                if col < 0 || col >= n as isize {
                    return None;
                }
                d2[p] = v;
            }
        }
        diags.insert(sk.rem_euclid(2 * n as isize) as usize, d2);
    }
    Some(DiagMatrix { n: 2 * n, diags })
}

impl Bootstrapper {
    /// Encodes the linear transforms for `params` (the chain must have at least
    /// `config.depth()` levels above the result level).
    pub fn new(params: &Params, config: BootstrapConfig) -> Result<Self, CkksError> {
        let n = config.slots;
        params.encoder().check_slots(n)?;
        let top = params.max_level();
        config.output_level(params)?;
        let q = |l: usize| params.q()[l] as f64;
        // CoeffsToSlots: input declared at scale q_0, output at the scale of the first EvalMod
        // prime. The plaintext scales are balanced so that every level's integer diagonals have
        // the same magnitude (their rounding error, multiplied by the large `q_0·I`, dominates).
        let mut cts_m = grouped(params, n, &config.cts_stages, true)?;
        // 1/(2K), and 1/gap for the subring trace of sparse packing.
        let gap = params.max_slots() / n;
        cts_m[0].scale(Complex::from(1.0 / (2.0 * config.k * gap as f64)));
        let packed = gap >= 2;
        if packed {
            let last = cts_m.len() - 1;
            cts_m[last] = lift_output_half(&cts_m[last]);
        }
        let cts_levels: Vec<usize> = (0..cts_m.len()).map(|i| top - i).collect();
        let cts_out = q(top - cts_m.len());
        let cts_scales = balanced_scales(
            &cts_m,
            &cts_levels.iter().map(|&l| q(l)).collect::<Vec<_>>(),
            cts_out / q(0),
        );
        let mut cts = Vec::new();
        for ((m, &l), &s) in cts_m.iter().zip(&cts_levels).zip(&cts_scales) {
            cts.push(LinearTransform::new_horner(params, m, l, s, None)?);
        }
        // EvalMod occupies the next levels and ends at scale S_out = q_{ℓ+1}; the result is
        // relabeled to S_out·2πΔ/q_0 (value m/Δ), and SlotsToCoeffs lands at Δ = default scale.
        let level = top - cts_m.len() - config.eval_mod_depth();
        let mut stc_m = grouped(params, n, &config.stc_stages, false)?;
        if packed {
            stc_m[0] = lift_first_half(&stc_m[0]).ok_or(CkksError::InvalidSlots {
                slots: n,
                max: params.max_slots(),
            })?;
        }
        let stc_levels: Vec<usize> = (0..stc_m.len()).map(|i| level - i).collect();
        let factor = q(0) / (2.0 * PI * q(level + 1));
        let stc_scales = balanced_scales(
            &stc_m,
            &stc_levels.iter().map(|&l| q(l)).collect::<Vec<_>>(),
            factor,
        );
        let mut stc = Vec::new();
        for ((m, &l), &s) in stc_m.iter().zip(&stc_levels).zip(&stc_scales) {
            stc.push(LinearTransform::new_horner(params, m, l, s, None)?);
        }
        let (k, r) = (config.k, config.double_angle);
        // cos(2πK·y'/2^r) with y' = y − 1/(4K) ∈ [−1, 1] (|y| ≤ (h'+1)/(2K) < 1 − 1/(4K)): an even
        // function, so only even Chebyshev coefficients (and even powers T_j) are needed.
        let mut series = ChebyshevSeries::interpolate(
            move |y| (2.0 * PI * k * y / 2f64.powi(r as i32)).cos(),
            -1.0,
            1.0,
            config.cheb_degree,
        )?;
        for (j, c) in series.coeffs.iter_mut().enumerate() {
            if j % 2 == 1 {
                *c = Complex::ZERO;
            }
        }
        // arcsin(s) = Σ_k (2k)!/(4^k (k!)² (2k+1)) s^{2k+1}, truncated at the configured odd
        // degree; as a polynomial it is carried exactly by the Chebyshev basis on [−1, 1]
        // (no change of variable, so no extra level).
        let arcsine = match config.arcsine_degree {
            None => None,
            Some(d) if d % 2 == 1 && d <= 15 => {
                let mut p = vec![0.0; d + 1];
                let mut c = 1.0; // (2k)!/(4^k (k!)²)
                for k in 0..=(d - 1) / 2 {
                    if k > 0 {
                        c *= (2 * k - 1) as f64 / (2 * k) as f64;
                    }
                    p[2 * k + 1] = c / (2 * k + 1) as f64;
                }
                let mut s = ChebyshevSeries::from_power_basis(-1.0, 1.0, &p)?;
                for (j, c) in s.coeffs.iter_mut().enumerate() {
                    if j % 2 == 0 {
                        *c = Complex::ZERO; // odd function: rounding residue only
                    }
                }
                Some(s)
            }
            Some(d) => {
                return Err(CkksError::InvalidDegree {
                    degree: d,
                    expected: 3,
                })
            }
        };
        Ok(Bootstrapper {
            params: params.clone(),
            config,
            cts,
            stc,
            series,
            arcsine,
            packed,
        })
    }

    pub fn config(&self) -> &BootstrapConfig {
        &self.config
    }

    /// Bytes held by the encoded CoeffsToSlots and SlotsToCoeffs diagonals.
    pub fn memory_bytes(&self) -> usize {
        self.cts
            .iter()
            .chain(&self.stc)
            .map(LinearTransform::memory_bytes)
            .sum()
    }

    /// Level of a bootstrapped ciphertext.
    pub fn output_level(&self) -> usize {
        self.params.max_level() - self.config.depth()
    }

    /// Galois elements the circuit needs (rotations of both transforms and conjugation).
    pub fn galois_elements(&self) -> Vec<usize> {
        self.galois_elements_at()
            .into_iter()
            .map(|(g, _)| g)
            .collect()
    }

    /// Each Galois element with the highest level it is used at.
    pub fn galois_elements_at(&self) -> Vec<(usize, usize)> {
        let mut m: std::collections::BTreeMap<usize, usize> = Default::default();
        for lt in self.cts.iter().chain(&self.stc) {
            for g in lt.galois_elements(&self.params) {
                let e = m.entry(g).or_insert(0);
                *e = (*e).max(lt.level());
            }
        }
        let mut step = self.config.slots;
        while step < self.params.max_slots() {
            m.insert(
                self.params.galois_element(step as isize),
                self.params.max_level(),
            );
            step *= 2;
        }
        let conj_level = self.params.max_level() - self.cts.len();
        let e = m.entry(self.params.conjugation_element()).or_insert(0);
        *e = (*e).max(conj_level);
        m.into_iter().collect()
    }

    /// Generates exactly the evaluation keys bootstrapping needs (client side).
    pub fn generate_keys<R: RngCore + CryptoRng>(
        &self,
        sk: &SecretKey,
        rng: &mut R,
    ) -> Result<(EvaluationKeys, Option<EncapsulationKeys>), CkksError> {
        let kg = KeyGenerator::new(&self.params, sk)?;
        let mut ek = kg.evaluation_keys(&[], rng)?;
        kg.extend_at(&mut ek, &self.galois_elements_at(), rng)?;
        let enc = match self.config.ephemeral_h {
            None => None,
            Some(h) => Some(EncapsulationKeys::generate(&self.params, sk, h, rng)?),
        };
        Ok((ek, enc))
    }

    /// `ModRaise`: centered residues modulo `q_0` read modulo `Q_L`.
    fn mod_raise(&self, ct: &Ciphertext) -> Ciphertext {
        let pr = &self.params;
        let k = pr.max_level() + 1;
        let n = pr.n();
        let q0 = pr.ctx_q().moduli()[0];
        let c =
            ct.c.iter()
                .map(|p| {
                    let mut r0 = p.prefix(1);
                    ring::ntt_inverse(&mut r0);
                    let centered: Vec<i64> = r0.data()[..n].iter().map(|&x| q0.center(x)).collect();
                    let mut out = Poly::from_signed(pr.ctx_q(), k, &centered);
                    ring::ntt_forward(&mut out);
                    debug_assert_eq!(out.representation(), Representation::Ntt);
                    out
                })
                .collect();
        Ciphertext {
            c,
            level: k - 1,
            scale: q0.value() as f64,
            slots: ct.slots,
            params_id: ct.params_id,
        }
    }

    /// Modular reduction of one real-valued ciphertext: returns `sin(2πKy)` (or, with the
    /// arcsine, `2π·m/q_0`) at scale `q_{ℓ+1}` (`ℓ` its output level).
    fn eval_mod(&self, eval: &Evaluator, y: &Ciphertext) -> Result<Ciphertext, CkksError> {
        let r = self.config.double_angle as usize;
        let final_level = y.level() - self.config.eval_mod_depth();
        let asin_depth = self.config.arcsine_degree.map_or(0, polyeval::depth);
        // The sine ends `asin_depth` levels above the final level, at the scale of its next prime.
        let out_level = final_level + asin_depth;
        // Scales backwards from the wanted output: s_{i} = sqrt(s_{i+1} · q_{level(i+1)+1}). The
        // sine ends at q_{ℓ+1}, or, followed by the arcsine, at the prime its first product
        // consumes, q_ℓ (so that T_2 of the arcsine keeps the scale).
        let mut s = if self.arcsine.is_some() {
            self.params.q()[out_level] as f64
        } else {
            self.params.q()[out_level + 1] as f64
        };
        for i in 0..r {
            let lvl = out_level + i; // the double angle producing level `lvl` divides by q_{lvl+1}
            s = (s * self.params.q()[lvl + 1] as f64).sqrt();
        }
        let mut c = polyeval::evaluate_to(eval, y, &self.series, Some(s))?;
        for _ in 0..r {
            let sq = eval.mul_relin_rescale(&c, &c)?;
            let two = eval.add(&sq, &sq)?;
            c = eval.add_const(&two, Complex::from(-1.0))?;
        }
        if let Some(asin) = &self.arcsine {
            let target = self.params.q()[final_level + 1] as f64;
            c = polyeval::evaluate_to(eval, &c, asin, Some(target))?;
        }
        Ok(c)
    }

    /// Refreshes `ct` (any level; only its level-0 part is used) to [`Bootstrapper::output_level`]
    /// at the input scale.
    pub fn bootstrap(
        &self,
        eval: &Evaluator,
        encaps: Option<&EncapsulationKeys>,
        ct: &Ciphertext,
    ) -> Result<Ciphertext, CkksError> {
        self.bootstrap_timed(eval, encaps, ct).map(|(c, _)| c)
    }

    /// As [`Bootstrapper::bootstrap`], also returning the time of each phase.
    pub fn bootstrap_timed(
        &self,
        eval: &Evaluator,
        encaps: Option<&EncapsulationKeys>,
        ct: &Ciphertext,
    ) -> Result<(Ciphertext, PhaseTimes), CkksError> {
        self.run(eval, encaps, ct, &mut |_, _| {})
    }

    /// Runs the circuit, handing each intermediate ciphertext to `probe` (for precision analysis in
    /// tests: `"raised"`, `"cts"`, `"re"`, `"im"`, `"re_mod"`, `"im_mod"`; packed: `"re_im"`,
    /// `"re_im_mod"` instead of the four).
    #[doc(hidden)]
    pub fn run(
        &self,
        eval: &Evaluator,
        encaps: Option<&EncapsulationKeys>,
        ct: &Ciphertext,
        probe: &mut dyn FnMut(&str, &Ciphertext),
    ) -> Result<(Ciphertext, PhaseTimes), CkksError> {
        let mut times = PhaseTimes::default();
        let mut clock = std::time::Instant::now();
        if ct.slots() != self.config.slots {
            return Err(CkksError::SlotsMismatch {
                a: ct.slots(),
                b: self.config.slots,
            });
        }
        let delta_in = ct.scale();
        let mut x = eval.drop_to_level(ct, 0)?;
        if self.config.ephemeral_h.is_some() {
            let k = encaps.ok_or(CkksError::MissingRelinKey)?;
            x = eval.switch_key(&x, &k.to_sparse)?;
        }
        let mut x = self.mod_raise(&x);
        if let Some(k) = encaps.filter(|_| self.config.ephemeral_h.is_some()) {
            x = eval.switch_key(&x, &k.from_sparse)?;
        }
        // Sparse packing: the trace to Z[X^{N/2n}] (Σ over the automorphisms X ↦ X^{5^{n·j}},
        // log2(gap) rotations by n·2^i slots) keeps gap·(coefficients at multiples of N/2n) and
        // cancels the overflow q_0·I elsewhere [CHKKS18 §4.3, SubSum].
        let mut step = self.config.slots;
        while step < self.params.max_slots() {
            let r = eval.rotate(&x, step as isize)?;
            eval.add_assign(&mut x, &r)?;
            step *= 2;
        }
        lap(&mut clock, &mut times.mod_raise);
        probe("raised", &x);
        for lt in &self.cts {
            // The packed last group is a 2n-slot transform; an n-periodic vector is a valid
            // 2n-slot encoding.
            x.slots = lt.slots();
            x = eval.linear_transform(&x, lt)?;
            eval.rescale_assign(&mut x)?;
        }
        lap(&mut clock, &mut times.coeffs_to_slots);
        if self.packed {
            return self.finish_packed(eval, x, delta_in, times, clock, probe);
        }
        let xc = eval.conjugate(&x)?;
        let re = eval.add(&x, &xc)?;
        let im = eval.mul_const(&eval.sub(&x, &xc)?, Complex::new(0.0, -1.0), 1.0)?;
        probe("cts", &x);
        probe("re", &re);
        probe("im", &im);
        let shift = Complex::from(-1.0 / (4.0 * self.config.k));
        let (re, im) = (eval.add_const(&re, shift)?, eval.add_const(&im, shift)?);
        // The two halves are independent: run them side by side (coarse-grained parallelism on
        // top of the limb-parallel operations).
        let (re, im) = rayon::join(|| self.eval_mod(eval, &re), || self.eval_mod(eval, &im));
        let (re, im) = (re?, im?);
        probe("re_mod", &re);
        probe("im_mod", &im);
        let mut y = eval.add(&re, &eval.mul_const(&im, Complex::I, 1.0)?)?;
        lap(&mut clock, &mut times.eval_mod);
        let relabeled = y.scale() * 2.0 * PI * delta_in / self.params.q()[0] as f64;
        y.set_scale(relabeled);
        for lt in &self.stc {
            y = eval.linear_transform(&y, lt)?;
            eval.rescale_assign(&mut y)?;
        }
        lap(&mut clock, &mut times.slots_to_coeffs);
        // SlotsToCoeffs multiplies the scale by q_0/(2π S_out) (balanced over its levels), so
        // the result is at Δ_in up to floating-point rounding of the bookkeeping.
        if (y.scale() / delta_in - 1.0).abs() < 1e-9 {
            y.set_scale(delta_in);
        }
        Ok((y, times))
    }

    /// EvalMod and SlotsToCoeffs of the packed circuit: `x = [w, 0]` on `2n` slots.
    fn finish_packed(
        &self,
        eval: &Evaluator,
        x: Ciphertext,
        delta_in: f64,
        mut times: PhaseTimes,
        mut clock: std::time::Instant,
        probe: &mut dyn FnMut(&str, &Ciphertext),
    ) -> Result<(Ciphertext, PhaseTimes), CkksError> {
        let n = self.config.slots as isize;
        probe("cts", &x);
        let xc = eval.conjugate(&x)?;
        let re = eval.add(&x, &xc)?;
        let im = eval.mul_const(&eval.sub(&x, &xc)?, Complex::new(0.0, -1.0), 1.0)?;
        // [Re w, 0] + R_n([Im w, 0]) = [Re w, Im w] (R_n = R_{−n} on 2n slots).
        let z = eval.add(&re, &eval.rotate(&im, n)?)?;
        probe("re_im", &z);
        let z = eval.add_const(&z, Complex::from(-1.0 / (4.0 * self.config.k)))?;
        let z = self.eval_mod(eval, &z)?;
        probe("re_im_mod", &z);
        // [a, b] + i·[b, a]: the first half holds a + i·b.
        let mut y = eval.add(&z, &eval.mul_const(&eval.rotate(&z, n)?, Complex::I, 1.0)?)?;
        lap(&mut clock, &mut times.eval_mod);
        let relabeled = y.scale() * 2.0 * PI * delta_in / self.params.q()[0] as f64;
        y.set_scale(relabeled);
        for (i, lt) in self.stc.iter().enumerate() {
            y = eval.linear_transform(&y, lt)?;
            eval.rescale_assign(&mut y)?;
            if i == 0 {
                // [V₁ w, 0] + R_n(…) = [V₁ w, V₁ w]: n-periodic again.
                y = eval.add(&y, &eval.rotate(&y, n)?)?;
                y.slots = self.config.slots;
            }
        }
        lap(&mut clock, &mut times.slots_to_coeffs);
        if (y.scale() / delta_in - 1.0).abs() < 1e-9 {
            y.set_scale(delta_in);
        }
        Ok((y, times))
    }
}

impl Params {
    /// Whether the main secret is sparse enough to bootstrap without encapsulation.
    pub fn is_sparse(&self) -> bool {
        matches!(self.secret_dist(), SecretDist::Sparse { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::{ParamsLiteral, Security};
    use rand::{Rng, SeedableRng};

    /// A tiny INSECURE ring for the plaintext transform tests (only its encoder is used).
    fn small_params() -> Params {
        Params::new(ParamsLiteral {
            log_n: 7,
            log_q: vec![40],
            log_p: vec![40],
            log_scale: 30,
            secret: SecretDist::Ternary,
            digits: None,
            security: Security::InsecureForTests,
        })
        .unwrap()
    }

    /// The packed circuit's lifts: `[M x; 0]` for an `n`-periodic input, and `[M x₁; 0]` for
    /// any input when `M` stays inside the first half; a group spanning all `n` slots wraps
    /// around and is refused.
    #[test]
    fn lifted_groups_act_on_the_first_half() {
        let params = small_params();
        let n = 16;
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(5);
        let mut rand_vec = |len: usize| -> Vec<Complex> {
            (0..len)
                .map(|_| Complex::new(rng.gen_range(-1.0..1.0), rng.gen_range(-1.0..1.0)))
                .collect()
        };
        let close =
            |a: &[Complex], b: &[Complex]| a.iter().zip(b).all(|(x, y)| (*x - *y).abs() < 1e-12);
        for groups in [vec![2, 2], vec![3, 1], vec![1, 3]] {
            // Output lift (any group; the circuit lifts CoeffsToSlots' last): x = [x₁; x₁].
            for m in grouped(&params, n, &groups, true).unwrap() {
                let x1 = rand_vec(n);
                let x: Vec<Complex> = x1.iter().chain(&x1).copied().collect();
                let want: Vec<Complex> = m
                    .apply(&x1)
                    .into_iter()
                    .chain(std::iter::repeat_n(Complex::ZERO, n))
                    .collect();
                assert!(close(&lift_output_half(&m).apply(&x), &want));
            }
            // First-half lift of SlotsToCoeffs' first group (its shortest stages): any second
            // half, and every diagonal keeps its signed offset (same rotations, same keys).
            let first = &grouped(&params, n, &groups, false).unwrap()[0];
            let x = rand_vec(2 * n);
            let lifted = lift_first_half(first).expect("stays inside the first half");
            let want: Vec<Complex> = first
                .apply(&x[..n])
                .into_iter()
                .chain(std::iter::repeat_n(Complex::ZERO, n))
                .collect();
            assert!(close(&lifted.apply(&x), &want));
            let mut a: Vec<isize> = first.diags.keys().map(|&k| signed_offset(k, n)).collect();
            let mut b: Vec<isize> = lifted
                .diags
                .keys()
                .map(|&k| signed_offset(k, 2 * n))
                .collect();
            a.sort();
            b.sort();
            assert_eq!(a, b);
        }
        // The longest butterfly (length n) pairs slots n/2 apart in both directions: wraps.
        let whole = butterfly(&params, n, n, false);
        assert!(lift_first_half(&whole).is_none());
    }

    #[test]
    fn grouped_butterflies_are_the_special_fft() {
        let params = small_params();
        let n = 64;
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(3);
        let w: Vec<Complex> = (0..n)
            .map(|_| Complex::new(rng.gen_range(-1.0..1.0), rng.gen_range(-1.0..1.0)))
            .collect();
        let mut vw = w.clone();
        params.encoder().fft_special(&mut vw);
        let mut rw = w.clone();
        crate::encoder::bit_reverse(&mut rw);
        for groups in [vec![6], vec![2, 2, 2], vec![3, 3], vec![1, 1, 1, 1, 1, 1]] {
            let cts = grouped(&params, n, &groups, true).unwrap();
            let mut x = vw.clone();
            for m in &cts {
                x = m.apply(&x);
            }
            for (a, b) in x.iter().zip(&rw) {
                assert!((*a - *b).abs() < 1e-12);
            }
            let stc = grouped(&params, n, &groups, false).unwrap();
            let mut x = rw.clone();
            for m in &stc {
                x = m.apply(&x);
            }
            for (a, b) in x.iter().zip(&vw) {
                assert!((*a - *b).abs() < 1e-12);
            }
        }
    }
}
