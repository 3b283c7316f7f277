//! Slot-encoded (SIMD) linear layers of the Gazelle / SCI-HE / Bolt family on additive shares
//! over Z_t, t a batching prime (docs/protocols/simd.md).
//!
//! One execution, for shares x = x_C + x_S mod t and the server's W, b:
//! 1. Client: packs its share into slot vectors (the kernel's layout: [`ConvLayout::pack_input`],
//!    the FC input repeated with period n_i, or channel maps side by side for a scale) and
//!    sends each as a seeded secret-key encryption at the top level (c₀ plus a 32-byte seed).
//! 2. Server: adds its own packed share (now Enc(x)), runs the kernel ([`Conv`] or [`MatVec`]),
//!    subtracts a uniform mask r (every slot of both rows), re-randomizes with a public-key
//!    encryption of zero, adds Gaussian flooding noise to every coefficient of c₀, switches
//!    down to q₀ and then to 2^k, and returns c₁ at k bits and c₀ at b ≤ k bits.
//! 3. Client decrypts every coefficient, decodes the slots and reads its outputs: its share is
//!    (W·x − r) at the output slots; the server's is r + b there.
//!
//! Bytes on the wire (exact, [`Simd::cost`]): c→s `in_cts ×` `rlwe::serialize` seeded
//! ciphertext (14-byte header, c₀ bit-packed per prime, 32-byte seed); s→c
//! `rlwe::write_compact_responses` of `out_cts` responses with all N coefficients of c₀ kept.

pub(crate) mod kernels;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

pub use kernels::{baby_steps, Conv, ConvLayout, MatVec};

use math::pack::packed_len;
use rand_chacha::ChaCha20Rng;
use rand_core::{CryptoRngCore, SeedableRng};
use rayon::prelude::*;
use rlwe::{BatchEncoder, Evaluator, Plaintext};
use transport::Channel;

use crate::cheetah::noise::{FLOOD_Z_MAX, TAIL_Z};
use crate::cheetah::params::ERROR_SIGMA;
use crate::keys::{ClientKeys, KeyRequest, ServerKeys};
use crate::layer::{via_matmul_conv, LayerShape, LayerSpec, LayerWeights, Ring};
use crate::protocol::LinearProtocol;
use crate::{Cost, LinearError};

/// Knobs of the SIMD protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct SimdConfig {
    /// Statistical security of noise flooding per layer response, in bits (≥ 40).
    pub flood_bits: u32,
    /// How convolutions multiply by their weights.
    #[serde(default)]
    pub kernel: ConvKernel,
}

/// The convolution kernel of the SIMD protocol family.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum ConvKernel {
    /// Gazelle / SCI-HE: one encoded weight plaintext per product (`simd`).
    #[default]
    Conventional,
    /// Padded convolution with channel-minor packing: per-channel weights as plaintexts of 2p
    /// coefficients, lazy multiply-accumulates (`hyena`, [`crate::hyena`]); convolutions,
    /// scales and token × weight products only.
    Padded,
}

impl Default for SimdConfig {
    fn default() -> Self {
        SimdConfig {
            flood_bits: 40,
            kernel: ConvKernel::Conventional,
        }
    }
}

impl SimdConfig {
    /// The padded channel-minor kernel (`hyena`).
    pub fn hyena() -> SimdConfig {
        SimdConfig {
            kernel: ConvKernel::Padded,
            ..SimdConfig::default()
        }
    }
}

/// The SIMD parameter sets: `rlwe::presets::bfv_simd_q158_p60` at N = 8192 or 16384, with t
/// the largest (ℓ + 1)-bit batching prime, so that 2^ℓ < t < 2^{ℓ+1}: the share conversions
/// of the fixed-point range need t ≥ 2^ℓ − 1 (`mpc::Session::field_to_ring_in_range`).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum SimdParamsId {
    N8192,
    N16384,
    /// `bfv_simd_n16384_q330_p60`.
    N16384Q330,
}

/// Largest share ring ℓ the SIMD presets carry (t of ℓ + 1 ≤ 45 bits).
pub const MAX_SIMD_RING_BITS: u32 = 44;

impl SimdParamsId {
    /// In the order a layer tries them (cheapest first).
    pub const ALL: [SimdParamsId; 3] = [
        SimdParamsId::N8192,
        SimdParamsId::N16384,
        SimdParamsId::N16384Q330,
    ];

    pub fn log_n(self) -> u32 {
        match self {
            SimdParamsId::N8192 => 13,
            SimdParamsId::N16384 | SimdParamsId::N16384Q330 => 14,
        }
    }

    pub fn n(self) -> usize {
        1 << self.log_n()
    }

    pub fn name(self) -> &'static str {
        match self {
            SimdParamsId::N8192 => "SIMD-N8192Q158P60",
            SimdParamsId::N16384 => "SIMD-N16384Q158P60",
            SimdParamsId::N16384Q330 => "SIMD-N16384Q330P60",
        }
    }

    /// Byte tag on the wire (disjoint from `HeParamsId::tag`).
    pub fn tag(self) -> u8 {
        match self {
            SimdParamsId::N8192 => 0x41,
            SimdParamsId::N16384 => 0x42,
            SimdParamsId::N16384Q330 => 0x44,
        }
    }

    /// The `rlwe` parameters for the share ring Z_{2^ℓ} (cached).
    pub fn rlwe_params(self, ell: u32) -> Result<Arc<rlwe::Params>, LinearError> {
        type Cache = Mutex<HashMap<(SimdParamsId, u32), Arc<rlwe::Params>>>;
        static CACHE: OnceLock<Cache> = OnceLock::new();
        if !(16..=MAX_SIMD_RING_BITS).contains(&ell) {
            return Err(LinearError::PlaintextTooLarge {
                ell,
                max: MAX_SIMD_RING_BITS,
            });
        }
        let mut map = CACHE
            .get_or_init(Default::default)
            .lock()
            .expect("params cache");
        if let Some(p) = map.get(&(self, ell)) {
            return Ok(p.clone());
        }
        let lit = match self {
            SimdParamsId::N8192 | SimdParamsId::N16384 => {
                rlwe::presets::bfv_simd_q158_p60(self.log_n(), ell + 1)
            }
            SimdParamsId::N16384Q330 => rlwe::presets::bfv_simd_n16384_q330_p60(ell + 1),
        }?;
        let p = rlwe::Params::new(lit)?;
        map.insert((self, ell), p.clone());
        Ok(p)
    }
}

/// How a layer sits in the slots.
#[derive(Clone, Debug)]
enum Geometry {
    /// Convolutions and scales (a scale is a depthwise 1×1 convolution).
    Conv(ConvLayout),
    /// The same under the padded channel-minor kernel (`hyena`).
    Padded(crate::hyena::PaddedLayout),
    /// y = W·x for W of n_out × n_in padded to n_i × n_i (n_i a power of two ≤ N/2).
    Fc {
        n_in: usize,
        n_out: usize,
        n_i: usize,
    },
}

/// Everything about one layer's execution that follows from public data.
#[derive(Clone, Debug)]
struct LayerPlan {
    params: SimdParamsId,
    geometry: Geometry,
    in_cts: usize,
    out_cts: usize,
    rotations: usize,
    products: usize,
    /// Galois elements of the keys the kernel uses.
    elements: Vec<usize>,
    noise: SimdNoise,
}

/// The flooding width and the response widths of one layer (docs/security.md § SIMD).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SimdNoise {
    /// Bound on the noise that depends on the weights (products, rotations) plus the
    /// re-randomization's, at modulus Q.
    pub hide_bound: f64,
    /// Standard deviation of the Gaussian flooding noise added to every coefficient of c₀.
    pub flood_sigma: f64,
    /// Response modulus bits k (c₁ mod 2^k).
    pub response_bits: u32,
    /// Bits b ≤ k of each c₀ value.
    pub c0_bits: u32,
}

/// Computes [`SimdNoise`] for a layer: `norm2` and `norm1`, the largest sums over the ct × pt
/// products of one output ciphertext of their plaintexts' ‖·‖₂ and ‖·‖₁ in units of t/2 (a
/// plaintext of N centered coefficients: √N and N; the padded kernel's 2p-term plaintexts:
/// √(2p) and 2p), `rotations` key switches on its path at most, `out_cts` responses.
fn simd_noise(
    p: &rlwe::Params,
    norm2: f64,
    norm1: f64,
    rotations: usize,
    out_cts: usize,
    flood_bits: u32,
) -> Result<SimdNoise, LinearError> {
    let n = p.n() as f64;
    let t = p.t().value() as f64;
    let levels = p.max_level();
    let sigma_ks = rlwe::noise::key_switch_sigma(p, levels);
    // Noise at a product's input: the client's fresh error and, on a baby-step rotation, one key
    // switch (both sub-Gaussian, random and independent of the weights: σ_in), plus the two
    // Δ-encodings' roundings (bounded by 1 in all, fixed by the data).
    let sigma_in = (ERROR_SIGMA * ERROR_SIGMA + sigma_ks * sigma_ks).sqrt();
    // Each product multiplies it by a plaintext p with centered coefficients |p_j| ≤ t/2; the
    // carries of m·p beyond t cost nothing with the ⌊Q·m/t⌉ encoding (`rlwe::noise::ct_pt`).
    // Random part: a linear map of sub-Gaussian vectors whose rows have ‖·‖₂ ≤ ‖p‖₂ ≤ √N·t/2
    // per product; the products of one output may read the same input (rotated), so their
    // parameters add (no √ over products). Bounded part: ‖p‖₁ ≤ N·t/2 per product (the padded
    // kernel's: ‖p‖₂ ≤ √(2p)·t/2, ‖p‖₁ ≤ 2p·t/2). Giant-step
    // and output rotations each add one key switch.
    let b_rand = TAIL_Z * sigma_in * norm2 * t / 2.0;
    let b_round = norm1 * t / 2.0;
    let b_prod = b_rand + b_round + rotations as f64 * TAIL_Z * sigma_ks;
    // Re-randomization: e_pk·u + e₁ + e₂·s, u and s ternary.
    let b_pk = TAIL_Z * ERROR_SIGMA * (2.0 * n.sqrt() + 1.0);
    let hide = b_prod + b_pk + 1.0;
    // Gaussian flooding of every returned coefficient (N per response): KL ≤ Σ δ²/(2σ_f²), so
    // SD ≤ √(N·out_cts)·hide/(2σ_f) ≤ 2^-λ (as for Cheetah, docs/security.md).
    let sigma = 2f64.powi(flood_bits as i32 - 1) * (n * out_cts as f64).sqrt() * hide;
    let total = FLOOD_Z_MAX * sigma + hide;
    let log_q = p.log_q(levels);
    let q0 = p.ctx_q().moduli()[0].value() as f64;
    // Switching Q → q₀ → 2^k: the noise ratio stays total/Q, each switch adds a rounding
    // τ₀ + τ₁·s bounded by B_ms = ½ + z·√(N/18) (at most twice in all per modulus).
    let b_ms = 2.0 * (0.5 + TAIL_Z * (n / 18.0).sqrt());
    // Decryption m = ⌊t·d/2^k⌉ is exact while the noise at 2^k is below 2^k/(2t):
    // headroom h = 1/(2t) − total/Q − B_ms/q₀ must cover B_ms/2^k + 2^{−b−1}.
    let headroom = 1.0 / (2.0 * t) - (total.log2() - log_q).exp2() - b_ms / q0;
    let t_bits = 64 - p.t().value().leading_zeros();
    let unfit = |needed: f64| LinearError::NoParameters {
        ell: t_bits - 1,
        weight_bits: 0,
        needed_bits: needed,
        available_bits: log_q,
    };
    if headroom <= 0.0 {
        return Err(unfit(total.log2() + t_bits as f64 + 1.0));
    }
    let k = (2.0 * b_ms / headroom)
        .log2()
        .ceil()
        .max(t_bits as f64 + 1.0) as u32;
    if k + 2 > q0.log2() as u32 {
        return Err(unfit(total.log2() + t_bits as f64 + 1.0));
    }
    let kf = 2f64.powi(k as i32);
    let c0_bits = (t_bits..k)
        .find(|&b| headroom - 2f64.powf(-(b as f64) - 1.0) >= b_ms / kf)
        .unwrap_or(k);
    Ok(SimdNoise {
        hide_bound: hide,
        flood_sigma: sigma,
        response_bits: k,
        c0_bits,
    })
}

/// One rotation (automorphism + hybrid key switch over 4 digits and 5 primes, and its share of
/// the layer's fixed work) in effective NTTs of the same degree per prime of Q, for [`Simd`]'s
/// time estimate. Calibrated with [`SIMD_PRODUCT_NTTS`] so that estimated/measured compute is
/// what it is for Cheetah's `estimated_seconds` on the same machine (0.36, median over the
/// distinct layers of ResNet-20, MobileNetV2 and ResNet-18 at 64×64; a least-squares fit of the
/// measured SIMD times gave 3.4 ms per rotation and 0.58 ms per product at N = 8192 on a 2-core
/// EPYC without AVX-512, within 0.74–1.08× per layer; BENCHMARKS.md § SIMD linear layers).
pub const SIMD_KEY_SWITCH_NTTS: f64 = 5.7;

/// One lazy multiply-accumulate of the padded kernel over a ciphertext (2·N words per prime into
/// 128-bit sums, and its plaintext's 2p run values from the weights), in effective NTTs per
/// prime of Q; see [`SIMD_KEY_SWITCH_NTTS`]. Fitted on the 30 distinct hyena convs of ResNet-20,
/// VGG-16 and MobileNetV1 (2026-12-06, Xeon host): measured/estimated median 1.06, as for `simd`
/// (1.07) and Cheetah (1.05) in the same runs.
pub const SIMD_MAC_NTTS: f64 = 0.25;

/// One ct × pt product with its plaintext encoded on the fly (an inverse NTT mod t, the lift
/// and forward NTTs over Q, the product) in effective NTTs per prime of Q; see
/// [`SIMD_KEY_SWITCH_NTTS`].
pub const SIMD_PRODUCT_NTTS: f64 = 0.97;

/// The SIMD protocol (slot encoding, shares over Z_t).
#[derive(Clone, Copy, Debug, Default)]
pub struct Simd {
    cfg: SimdConfig,
}

/// Bytes of one seeded query ciphertext (`rlwe::serialize::ciphertext_to_bytes`, `Seeded`):
/// 12-byte header, level and form bytes, c₀ bit-packed per prime, the 32-byte seed.
fn query_ct_bytes(p: &rlwe::Params) -> usize {
    let n = p.n();
    14 + p
        .ctx_q()
        .moduli()
        .iter()
        .map(|m| packed_len(n, m.bits()))
        .sum::<usize>()
        + 32
}

/// A value of Z_{2^ℓ} (two's complement) as the same signed integer mod t.
pub(crate) fn ring_to_t(ring: Ring, v: u64, t: u64) -> u64 {
    (ring.signed(v) as i128).rem_euclid(t as i128) as u64
}

impl Simd {
    pub fn new(cfg: SimdConfig) -> Simd {
        Simd { cfg }
    }

    pub fn config(&self) -> SimdConfig {
        self.cfg
    }

    /// The geometry of `layer` in rows of `n` slots under `kernel`, if it fits.
    fn geometry(layer: &LayerSpec, n: usize, kernel: ConvKernel) -> Result<Geometry, LinearError> {
        match layer.shape {
            LayerShape::Fc(f) => {
                let n_i = f.inputs.max(f.outputs).next_power_of_two();
                if n_i > n {
                    return Err(LinearError::BadShape {
                        reason: "simd fc: more than N/2 inputs or outputs (blocking not built)",
                    });
                }
                Ok(Geometry::Fc {
                    n_in: f.inputs,
                    n_out: f.outputs,
                    n_i,
                })
            }
            LayerShape::Conv2d(_) | LayerShape::Scale(_) => {
                let c = layer.as_conv().expect("conv or scale");
                Ok(match kernel {
                    ConvKernel::Conventional => Geometry::Conv(ConvLayout::new(c, n)?),
                    ConvKernel::Padded => Geometry::Padded(crate::hyena::PaddedLayout::new(c, n)?),
                })
            }
            LayerShape::MatMul(_) => {
                let conv = layer.matmul_as_conv().expect("a matmul");
                Self::geometry(&conv, n, kernel)
            }
        }
    }

    /// The public execution plan of `layer`: the smallest parameter set it fits.
    fn plan(&self, layer: &LayerSpec, ring: Ring) -> Result<LayerPlan, LinearError> {
        layer.validate()?;
        // A token × weight product runs as its 1×1 convolution ([`LayerSpec::matmul_as_conv`]).
        if let Some(conv) = layer.matmul_as_conv() {
            return self.plan(&conv, ring);
        }
        if self.cfg.flood_bits < 40 {
            return Err(LinearError::BadShape {
                reason: "simd: flooding below 40 bits of statistical security",
            });
        }
        let mut last = None;
        for params in SimdParamsId::ALL {
            let p = params.rlwe_params(ring.bits())?;
            let geometry = match Self::geometry(layer, p.n() / 2, self.cfg.kernel) {
                Ok(g) => g,
                Err(e) => {
                    last = Some(e);
                    continue;
                }
            };
            let n_total = p.n();
            let nf = n_total as f64;
            let (in_cts, out_cts, rotations, products, norms, path_rot, elements) = match &geometry
            {
                Geometry::Padded(l) => {
                    if layer.weight_bits > 31 {
                        return Err(LinearError::BadShape {
                            reason: "hyena: weights need |w| < 2^31",
                        });
                    }
                    let (i, o) = l.ciphertexts();
                    let c = l.counts();
                    let k2 = 2.0 * l.period() as f64;
                    let terms = c.max_terms_per_output as f64;
                    (
                        i,
                        o,
                        c.rotations,
                        c.terms,
                        (terms * k2.sqrt(), terms * k2),
                        c.max_giants_per_output,
                        l.galois_elements(n_total),
                    )
                }
                Geometry::Conv(l) => {
                    let (i, o) = l.ciphertexts();
                    let giant = l.channels() / l.baby_steps();
                    let per = l.max_products_per_output() as f64;
                    (
                        i,
                        o,
                        l.rotations(),
                        l.plaintexts(),
                        (per * nf.sqrt(), per * nf),
                        giant,
                        l.galois_elements(n_total),
                    )
                }
                Geometry::Fc { .. } if self.cfg.kernel == ConvKernel::Padded => {
                    return Err(LinearError::BadShape {
                        reason: "hyena: convolutions and token x weight products only",
                    });
                }
                Geometry::Fc { n_out, n_i, .. } => {
                    let steps = MatVec::steps_for(*n_out, *n_i);
                    let diags = MatVec::diagonals_for(*n_out, *n_i);
                    // On an output's path: the giant steps and the rotate-and-sum.
                    let path = steps.len() - (baby_steps(diags).min(diags) - 1);
                    let elements = steps
                        .iter()
                        .map(|&d| rlwe::eval::galois_element_for_rotation(n_total, d))
                        .collect();
                    let d = diags as f64;
                    (
                        1,
                        1,
                        steps.len(),
                        diags,
                        (d * nf.sqrt(), d * nf),
                        path,
                        elements,
                    )
                }
            };
            let noise =
                match simd_noise(&p, norms.0, norms.1, path_rot, out_cts, self.cfg.flood_bits) {
                    Ok(n) => n,
                    Err(e) => {
                        last = Some(e);
                        continue;
                    }
                };
            return Ok(LayerPlan {
                params,
                geometry,
                in_cts,
                out_cts,
                rotations,
                products,
                elements,
                noise,
            });
        }
        Err(last.unwrap_or(LinearError::BadShape {
            reason: "simd: no parameter set fits the layer",
        }))
    }

    /// The flooding width and response widths the layer uses (for the security tests).
    pub fn noise(&self, layer: &LayerSpec, ring: Ring) -> Result<SimdNoise, LinearError> {
        Ok(self.plan(layer, ring)?.noise)
    }

    /// Lazy multiply-accumulates of the layer (each over 2·L·N words; 0 for the conventional
    /// kernel, whose products encode their plaintexts).
    pub fn macs(&self, layer: &LayerSpec, ring: Ring) -> Result<usize, LinearError> {
        Ok(match self.plan(layer, ring)?.geometry {
            Geometry::Padded(l) => l.counts().terms,
            _ => 0,
        })
    }

    /// The baby-step count of the layer's kernel.
    pub fn baby_steps(&self, layer: &LayerSpec, ring: Ring) -> Result<usize, LinearError> {
        Ok(match self.plan(layer, ring)?.geometry {
            Geometry::Conv(l) => l.baby_steps(),
            Geometry::Padded(l) => l.baby_steps(),
            Geometry::Fc { n_out, n_i, .. } => {
                let d = MatVec::diagonals_for(n_out, n_i);
                baby_steps(d).min(d)
            }
        })
    }

    /// The published rotation count of the layer's kernel with this layer's numbers in it:
    /// conv (Gazelle, hoisted BSGS; copies = 2 when both batching rows carry channels and some
    /// pair crosses rows, the second copy of each tap rotation reading the row-swapped input)
    /// `in_cts·(k_h·k_w·copies·B − 1) + out_cts·(c_n/B − 1)`, which a grouped conv undercuts by
    /// leaving out unused giant steps and row-swapped copies; FC (Halevi–Shoup BSGS over the
    /// D = next_pow2(n_out) extended diagonals of Gazelle's hybrid method, then its
    /// rotate-and-sum) `(B − 1) + (⌈D/B⌉ − 1) + log₂(n_i/D)`.
    pub fn rotation_formula(&self, layer: &LayerSpec, ring: Ring) -> Result<String, LinearError> {
        Ok(match self.plan(layer, ring)?.geometry {
            Geometry::Conv(l) => {
                let (i, o) = l.ciphertexts();
                let (b, c, r) = (l.baby_steps(), l.channels(), l.copies());
                let k = layer.as_conv().map_or(1, |c| c.kh * c.kw);
                format!(
                    "in_cts*(k*copies*B-1)+out_cts*(c_n/B-1) = {i}*({k}*{r}*{b}-1)+{o}*({c}/{b}-1) = {}",
                    i * (k * r * b - 1) + o * (c / b - 1)
                )
            }
            Geometry::Padded(l) => {
                let (i, _) = l.ciphertexts();
                let c = l.counts();
                let h = c.hoisted_per_input;
                format!(
                    "in_cts*(babies read-identity)+giant steps used = {i}*{h}+{} = {}",
                    c.rotations - i * h,
                    c.rotations
                )
            }
            Geometry::Fc { n_out, n_i, .. } => {
                let d = MatVec::diagonals_for(n_out, n_i);
                let b = baby_steps(d).min(d);
                let g = d.div_ceil(b);
                let sum = (n_i / d).trailing_zeros() as usize;
                format!(
                    "(B-1)+(D/B-1)+log2(n_i/D) = ({b}-1)+({g}-1)+{sum} = {}",
                    b - 1 + g - 1 + sum
                )
            }
        })
    }

    /// The parameter set the layer runs on.
    pub fn params_for(&self, layer: &LayerSpec, ring: Ring) -> Result<SimdParamsId, LinearError> {
        Ok(self.plan(layer, ring)?.params)
    }

    /// Slot vectors (2·n values each, both rows alike) of a share of the layer's input.
    fn pack(plan: &LayerPlan, x: &[u64], n: usize) -> Vec<Vec<u64>> {
        match &plan.geometry {
            Geometry::Conv(l) => l.pack_input(x),
            Geometry::Padded(l) => l.pack_input(x),
            Geometry::Fc { n_in, n_i, .. } => {
                let v: Vec<u64> = (0..2 * n)
                    .map(|s| {
                        let j = s % n_i;
                        if j < *n_in {
                            x[j]
                        } else {
                            0
                        }
                    })
                    .collect();
                vec![v]
            }
        }
    }

    /// Output values from the decoded slot vectors of the responses.
    fn unpack(plan: &LayerPlan, slots: &[Vec<u64>]) -> Vec<u64> {
        match &plan.geometry {
            Geometry::Conv(l) => l.unpack_output(slots),
            Geometry::Padded(l) => l.unpack_output(slots),
            Geometry::Fc { n_out, .. } => slots[0][..*n_out].to_vec(),
        }
    }

    fn check_field(what: &'static str, xs: &[u64], t: u64, len: usize) -> Result<(), LinearError> {
        if xs.len() != len {
            return Err(LinearError::Length {
                what,
                expected: len,
                got: xs.len(),
            });
        }
        if xs.iter().any(|&v| v >= t) {
            return Err(LinearError::BadShape {
                reason: "simd: a share is not reduced mod t",
            });
        }
        Ok(())
    }
}

impl LinearProtocol for Simd {
    fn name(&self) -> &'static str {
        match self.cfg.kernel {
            ConvKernel::Conventional => "simd",
            ConvKernel::Padded => "hyena",
        }
    }

    fn share_modulus(&self, layer: &LayerSpec, ring: Ring) -> Result<Option<u64>, LinearError> {
        let p = self.plan(layer, ring)?.params.rlwe_params(ring.bits())?;
        Ok(Some(p.t().value()))
    }

    fn cost(&self, layer: &LayerSpec, ring: Ring) -> Result<Cost, LinearError> {
        let plan = self.plan(layer, ring)?;
        let p = plan.params.rlwe_params(ring.bits())?;
        let n = p.n();
        let levels = p.max_level() as u64;
        let (k, b) = (plan.noise.response_bits, plan.noise.c0_bits);
        let out = plan.out_cts;
        Ok(Cost {
            ciphertexts_c2s: plan.in_cts as u64,
            ciphertexts_s2c: out as u64,
            bytes_c2s: (plan.in_cts * query_ct_bytes(&p)) as u64,
            bytes_s2c: rlwe::compact_response_len(n, out, out * n, k, b) as u64,
            messages_c2s: 1,
            messages_s2c: 1,
            rounds: 1,
            ct_pt_mults: plan.products as u64,
            // Client: encode (1 inverse NTT over Z_t, not counted) and encrypt (one per prime),
            // decrypt (2 per response); server: its share, products and rotations in NTT form,
            // re-randomization (2 per prime and response).
            ntts: plan.in_cts as u64 * levels + out as u64 * (2 + 2 * levels),
            rotations: plan.rotations as u64,
            cots: 0,
        })
    }

    /// Wire time plus NTT-equivalent work in the units of `cheetah::estimated_seconds`: an NTT
    /// per counted transform, and per prime of Q [`SIMD_PRODUCT_NTTS`] per ct × pt product
    /// (mostly encoding its plaintext) and [`SIMD_KEY_SWITCH_NTTS`] per rotation.
    fn estimated_seconds(
        &self,
        layer: &LayerSpec,
        ring: Ring,
        bandwidth: f64,
    ) -> Result<f64, LinearError> {
        let plan = self.plan(layer, ring)?;
        let c = self.cost(layer, ring)?;
        let n = plan.params.n() as f64;
        let levels = plan.params.rlwe_params(ring.bits())?.max_level() as f64;
        let t_ntt = crate::cheetah::NTT_4096_SECONDS * (n / 4096.0) * (n.log2() / 12.0);
        // The padded kernel's products are lazy multiply-accumulates with no encoding.
        let (product, macs) = match self.cfg.kernel {
            ConvKernel::Conventional => (SIMD_PRODUCT_NTTS, 0),
            ConvKernel::Padded => (0.0, self.macs(layer, ring)?),
        };
        Ok(c.bytes() as f64 / bandwidth
            + c.ntts as f64 * t_ntt
            + c.ct_pt_mults as f64 * product * levels * t_ntt
            + macs as f64 * SIMD_MAC_NTTS * levels * t_ntt
            + c.rotations as f64 * SIMD_KEY_SWITCH_NTTS * levels * t_ntt)
    }

    /// The server's peak: the input ciphertexts and their hoisted rotated copies (one per Galois
    /// element of the input side, and the decomposition they share), the output ciphertexts,
    /// and for the padded kernel one giant step's run values and block results; each
    /// ciphertext 2·L·N words.
    fn working_set_bytes(&self, layer: &LayerSpec, ring: Ring) -> Result<u64, LinearError> {
        let plan = self.plan(layer, ring)?;
        let p = plan.params.rlwe_params(ring.bits())?;
        let (n, l) = (p.n() as u64, p.max_level() as u64);
        let ct = 2 * l * n * 8;
        let digits = (p.max_level() + p.num_special()) as u64;
        let (copies, extra) = match &plan.geometry {
            Geometry::Conv(c) => {
                let taps = (c.spec().kh * c.spec().kw * c.baby_steps() * c.copies()) as u64;
                (plan.in_cts as u64 * taps, l * n * 8)
            }
            Geometry::Padded(c) => {
                // Per giant step: its terms' run values and their Shoup quotients (2·2p words
                // per prime) and one block result per output (a ciphertext each, plus the
                // reduced copy).
                let k = c.counts();
                let vals = k.max_terms_per_giant as u64 * l * 4 * c.period() as u64 * 8;
                (
                    plan.in_cts as u64 * (k.hoisted_per_input as u64 + 1),
                    vals + 2 * plan.out_cts as u64 * ct,
                )
            }
            Geometry::Fc { n_out, n_i, .. } => {
                let d = MatVec::diagonals_for(*n_out, *n_i);
                (baby_steps(d).min(d) as u64, l * n * 8)
            }
        };
        let decomposition = digits * (l + p.num_special() as u64) * n * 8;
        Ok((plan.in_cts as u64 + copies + plan.out_cts as u64 + 2) * ct + decomposition + extra)
    }

    fn weight_bytes(&self, layer: &LayerSpec, ring: Ring) -> Result<u64, LinearError> {
        let plan = self.plan(layer, ring)?;
        let p = plan.params.rlwe_params(ring.bits())?;
        // Each plaintext in NTT form at the top level: N words per prime. The padded kernel
        // holds the weights as 2- or 4-byte scalars (`crate::hyena::PaddedConv`) and its class
        // transforms: a twist and an order of 2p words mod t and per prime (`Classes`).
        let pt = (p.n() * p.max_level() * 8) as u64;
        Ok(match &plan.geometry {
            Geometry::Padded(l) => {
                let k2 = (2 * l.period()) as u64;
                let per = crate::hyena::stored_weight_bytes(layer.weight_bits);
                per * layer.weight_len() as u64 + 16 * k2 * (1 + p.max_level() as u64)
            }
            _ => plan.products as u64 * pt,
        })
    }

    fn keys_needed(&self, layer: &LayerSpec, ring: Ring) -> Result<Vec<KeyRequest>, LinearError> {
        let plan = self.plan(layer, ring)?;
        let ell = ring.bits();
        let mut out = vec![KeyRequest::SimdRlwe {
            params: plan.params,
            ell,
        }];
        out.extend(plan.elements.iter().map(|&element| KeyRequest::SimdGalois {
            params: plan.params,
            ell,
            element,
        }));
        Ok(out)
    }

    fn client(
        &self,
        layer: &LayerSpec,
        ring: Ring,
        keys: &ClientKeys,
        x: &[u64],
        ch: &mut dyn Channel,
        rng: &mut dyn CryptoRngCore,
    ) -> Result<Vec<u64>, LinearError> {
        if let Some(y) = via_matmul_conv(layer, x, |conv, xt| {
            self.client(conv, ring, keys, xt, ch, rng)
        }) {
            return y;
        }
        let plan = self.plan(layer, ring)?;
        let sk = keys.simd(plan.params, ring.bits())?;
        let p = sk.params().clone();
        let t = p.t().value();
        Self::check_field("input share", x, t, layer.input_len())?;
        let enc = BatchEncoder::new(&p)?;
        let n = p.n() / 2;
        let mut msg = Vec::with_capacity(plan.in_cts * query_ct_bytes(&p));
        for v in Self::pack(&plan, x, n) {
            let ct = sk.encrypt(&enc.encode(&v)?, rng)?;
            msg.extend(rlwe::serialize::ciphertext_to_bytes(
                &ct,
                rlwe::serialize::Form::Seeded,
            )?);
        }
        ch.send(&msg)?;
        ch.flush()?;
        let resp = ch.recv()?;
        let (k, b) = (plan.noise.response_bits, plan.noise.c0_bits);
        let all: Vec<usize> = (0..p.n()).collect();
        let expected = rlwe::compact_response_len(p.n(), plan.out_cts, plan.out_cts * p.n(), k, b);
        if resp.len() != expected {
            return Err(LinearError::MessageLength {
                what: "simd response",
                expected,
                got: resp.len(),
            });
        }
        let indices = vec![all; plan.out_cts];
        let responses = rlwe::compact::read_compact_responses(&resp, p.n(), k, b, &indices)
            .map_err(|_| LinearError::MessageRange {
                what: "simd response",
            })?;
        let mut slots = Vec::with_capacity(responses.len());
        for r in &responses {
            let coeffs = r.decrypt(sk)?;
            slots.push(enc.decode(&Plaintext::from_unsigned(&p, &coeffs)?)?);
        }
        Ok(Self::unpack(&plan, &slots))
    }

    fn server(
        &self,
        layer: &LayerSpec,
        ring: Ring,
        keys: &ServerKeys,
        weights: &LayerWeights,
        x: &[u64],
        ch: &mut dyn Channel,
        rng: &mut dyn CryptoRngCore,
    ) -> Result<Vec<u64>, LinearError> {
        if let Some(y) = via_matmul_conv(layer, x, |conv, xt| {
            self.server(conv, ring, keys, weights, xt, ch, rng)
        }) {
            return y;
        }
        weights.validate(layer, ring)?;
        let t = self.share_modulus(layer, ring)?.expect("a field protocol");
        let wt: Vec<u64> = weights
            .weights
            .iter()
            .map(|&w| ring_to_t(ring, w, t))
            .collect();
        let bias: Vec<u64> = weights
            .bias
            .iter()
            .map(|&w| ring_to_t(ring, w, t))
            .collect();
        let signed: Vec<i64> = weights.weights.iter().map(|&w| ring.signed(w)).collect();
        self.serve(layer, ring, keys, &wt, &bias, &signed, x, ch, rng)
    }
}

impl Simd {
    /// The server's side with the weights and biases already in Z_t (`wt`, `bias`; `signed`:
    /// the weights as signed integers, read by the padded kernel only). Weights other
    /// than small ring values (the circulant layers' transformed weights, [`crate::circulant`])
    /// are any residues mod t: the noise bound already takes every plaintext coefficient up
    /// to t/2.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn serve(
        &self,
        layer: &LayerSpec,
        ring: Ring,
        keys: &ServerKeys,
        wt: &[u64],
        bias: &[u64],
        signed: &[i64],
        x: &[u64],
        ch: &mut dyn Channel,
        rng: &mut dyn CryptoRngCore,
    ) -> Result<Vec<u64>, LinearError> {
        let plan = self.plan(layer, ring)?;
        let (pk, gk) = keys.simd(plan.params, ring.bits())?;
        let p = pk.params().clone();
        let t = p.t().value();
        Self::check_field("input share", x, t, layer.input_len())?;
        Self::check_field("weights", wt, t, layer.weight_len())?;
        Self::check_field("bias", bias, t, layer.bias_len())?;
        let enc = BatchEncoder::new(&p)?;
        let ev = Evaluator::new(&p);
        let n = p.n() / 2;
        let levels = p.max_level();

        let msg = ch.recv()?;
        let per = query_ct_bytes(&p);
        if msg.len() != plan.in_cts * per {
            return Err(LinearError::MessageLength {
                what: "simd query",
                expected: plan.in_cts * per,
                got: msg.len(),
            });
        }
        let mut cts = Vec::with_capacity(plan.in_cts);
        for (chunk, mine) in msg.chunks(per).zip(Self::pack(&plan, x, n)) {
            let mut ct = rlwe::serialize::ciphertext_from_bytes(&p, chunk)
                .map_err(|_| LinearError::MessageRange { what: "simd query" })?;
            // Exactly what an honest client sends: a fresh seeded encryption at the top level,
            // c₀ in NTT form.
            if ct.num_moduli() != levels
                || ct.seed().is_none()
                || ct.representation() != math::Representation::Ntt
            {
                return Err(LinearError::MessageRange { what: "simd query" });
            }
            ev.add_plain_assign(&mut ct, &enc.encode(&mine)?)?;
            cts.push(ct);
        }
        let outs = match &plan.geometry {
            Geometry::Padded(l) => {
                crate::hyena::PaddedConv::new(l.clone(), signed)?.apply(&enc, &ev, &cts, gk)?
            }
            Geometry::Conv(l) => {
                Conv::prepare(&enc, l.clone(), wt, levels)?.apply(&ev, &cts, gk)?
            }
            Geometry::Fc { n_in, n_out, n_i } => {
                let mut w = vec![0u64; n_out * n_i];
                for o in 0..*n_out {
                    w[o * n_i..o * n_i + n_in].copy_from_slice(&wt[o * n_in..(o + 1) * n_in]);
                }
                vec![MatVec::new(&enc, &w, *n_out, *n_i, levels)?.apply(&ev, &cts[0], gk)?]
            }
        };
        let (k, b) = (plan.noise.response_bits, plan.noise.c0_bits);
        let all: Vec<usize> = (0..p.n()).collect();
        // The responses in parallel, each from its own stream (`cheetah::response_seeds`).
        let seeds = crate::cheetah::response_seeds(outs.len(), rng);
        let done: Vec<Result<(rlwe::Pow2Response, Vec<u64>), LinearError>> = outs
            .into_par_iter()
            .zip(seeds.par_iter())
            .map(|(mut ct, seed)| {
                let mut stream = ChaCha20Rng::from_seed(**seed);
                let r: Vec<u64> = (0..p.n()).map(|_| uniform_below(&mut stream, t)).collect();
                ev.sub_plain_assign(&mut ct, &enc.encode(&r)?)?;
                ev.rerandomize(&mut ct, pk, &mut stream)?;
                ev.flood_gaussian(&mut ct, plan.noise.flood_sigma, &all, &mut stream)?;
                ev.mod_switch_to(&mut ct, 1)?;
                Ok((ev.switch_to_compact(&ct, k, b, &all)?, r))
            })
            .collect();
        let mut masks = Vec::with_capacity(done.len());
        let mut responses = Vec::with_capacity(done.len());
        for d in done {
            let (resp, r) = d?;
            responses.push(resp);
            masks.push(r);
        }
        let mut out = Vec::new();
        rlwe::compact::write_compact_responses(&responses, &mut out)?;
        ch.send(&out)?;
        ch.flush()?;
        // Server's share: r + b at the output slots.
        let y = Self::unpack(&plan, &masks);
        let per_bias = layer.output_len() / bias.len();
        Ok(y.iter()
            .enumerate()
            .map(|(i, &r)| {
                let v = r as u128 + bias[i / per_bias] as u128;
                (v % t as u128) as u64
            })
            .collect())
    }
}

/// A uniform value in [0, t) by rejection sampling.
fn uniform_below(rng: &mut dyn CryptoRngCore, t: u64) -> u64 {
    let bits = 64 - t.leading_zeros();
    let mask = if bits == 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    };
    loop {
        let v = rng.next_u64() & mask;
        if v < t {
            return v;
        }
    }
}
