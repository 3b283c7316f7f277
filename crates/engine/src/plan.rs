//! Planning: an imported model becomes a public, deterministic, serializable plan that names for
//! every node the protocol that runs it and its predicted cost. No keys, no weights: the plan is
//! what the server shows the client in the handshake, and its SHA-256 is the model digest.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use linear::{Conv2dSpec, Cost, LayerSpec, LinearProtocol};
use nn::{FixedConfig, Model, Op};

use crate::EngineError;
use mpc::Party;

/// Fixed part of a server session's memory (see [`Plan::predicted_session_memory`]).
pub const SESSION_BASE: u64 = 24 << 20;
/// Silent OT's LPN secret and iteration state, both directions (2 × 589,824 reserved COTs of
/// Ferret's large set at 16 bytes, rounded up).
pub const SESSION_OT_SLACK: u64 = 24 << 20;
/// Memory of a linear layer's HE working set per byte it sends and receives.
pub const SESSION_HE_FACTOR: u64 = 16;
/// Memory of a non-linear step per 16-byte COT it uses.
pub const SESSION_STEP_FACTOR: u64 = 4;

/// Version of the plan format; part of the digest. 2: the `rescale_relu6` epilogue; 3: the
/// circulant block of conv layers; 5: `flat_rescale_max`; 6: `softmax_wide_max`,
/// `layernorm_flat_max`.
pub const PLAN_VERSION: u32 = 8;
/// Largest circulant block size looked for in conv and FC weights.
pub const MAX_CIRCULANT_BLOCK: usize = 256;
/// Largest plan a client accepts (nodes), so a hostile server cannot make it allocate without bound.
pub const MAX_STEPS: usize = 100_000;
/// Largest tensor a plan may declare (elements).
pub const MAX_ELEMENTS: usize = 1 << 28;

/// The linear-layer techniques a plan can name. A new technique is a new variant and a new
/// module in `linear`; the runner only calls the [`LinearProtocol`] trait.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinearChoice {
    Cheetah(linear::CheetahConfig),
    /// Slot-encoded HE on shares over Z_t, the shares converted from and back to Z_{2^ℓ} around
    /// the layer (`linear::simd`).
    Simd(linear::SimdConfig),
    /// Padded convolution with channel-minor packing and per-channel weights as sparse
    /// plaintexts (`linear::hyena`; Hyena's idea) on the same shares and messages as `Simd`.
    Hyena(linear::SimdConfig),
    /// Cheetah with dense packing of grouped and depthwise convolutions (`linear::falcon`).
    Falcon(linear::CheetahConfig),
    /// Block-circulant conv and FC layers (`linear::circulant`).
    Circulant(linear::CheetahConfig),
    /// Block-circulant conv and FC layers by PrivCirNet's CirEncode: per-block NTTs around a
    /// grouped SIMD layer, on shares over Z_t (`linear::cirencode`).
    CirEncode(linear::SimdConfig),
    /// The layer's matrix product by correlated OT (`linear::ot`, CrypTFlow2's OT layers).
    Ot,
    /// Winograd F(m×m, 3×3) on the OT product, m ∈ {2, 4} (`linear::winograd`, CoPriv).
    Winograd(u8),
}

impl LinearChoice {
    /// The protocol object that runs this choice.
    pub fn protocol(&self) -> Box<dyn LinearProtocol> {
        match self {
            LinearChoice::Cheetah(cfg) => Box::new(linear::Cheetah::new(*cfg)),
            LinearChoice::Simd(cfg) => Box::new(linear::Simd::new(linear::SimdConfig {
                kernel: linear::ConvKernel::Conventional,
                ..*cfg
            })),
            LinearChoice::Hyena(cfg) => Box::new(linear::Simd::new(linear::SimdConfig {
                kernel: linear::ConvKernel::Padded,
                ..*cfg
            })),
            LinearChoice::Falcon(cfg) => Box::new(linear::Falcon::new(*cfg)),
            LinearChoice::Circulant(cfg) => Box::new(linear::Circulant::new(*cfg)),
            LinearChoice::CirEncode(cfg) => Box::new(linear::CirEncode::new(linear::SimdConfig {
                kernel: linear::ConvKernel::Conventional,
                ..*cfg
            })),
            LinearChoice::Ot => Box::new(linear::OtLinear),
            LinearChoice::Winograd(4) => Box::new(linear::Winograd::F4),
            LinearChoice::Winograd(_) => Box::new(linear::Winograd::F2),
        }
    }
    /// Whether it runs on shares over a prime field (the share conversions and the SIMD key
    /// sets come with it).
    pub fn is_field_domain(&self) -> bool {
        matches!(
            self,
            LinearChoice::Simd(_) | LinearChoice::Hyena(_) | LinearChoice::CirEncode(_)
        )
    }

    /// Name shown in reports.
    pub fn name(&self) -> &'static str {
        match self {
            LinearChoice::Cheetah(_) => "cheetah",
            LinearChoice::Simd(_) => "simd",
            LinearChoice::Hyena(_) => "hyena",
            LinearChoice::Falcon(_) => "falcon",
            LinearChoice::Circulant(_) => "circulant",
            LinearChoice::CirEncode(_) => "cirencode",
            LinearChoice::Ot => "ot",
            LinearChoice::Winograd(4) => "winograd4",
            LinearChoice::Winograd(_) => "winograd2",
        }
    }
}

/// Which linear-layer protocols the planner may choose from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinearPolicy {
    /// Per layer, the protocol with the lowest estimated time
    /// ([`linear::LinearProtocol::estimated_seconds`] plus the share conversions a field-domain
    /// protocol needs, at the Cheetah configuration's bandwidth).
    #[default]
    Auto,
    /// Cheetah on every layer.
    Cheetah,
    /// SIMD wherever it applies (Cheetah elsewhere).
    Simd,
    /// The padded channel-minor convolution wherever it applies (Cheetah elsewhere).
    Hyena,
    /// Dense packing on grouped and depthwise convolutions (Cheetah elsewhere).
    Falcon,
    /// Block-circulant conv and FC layers by `linear::circulant` (Cheetah elsewhere).
    Circulant,
    /// Block-circulant conv and FC layers by CirEncode, `linear::cirencode` (Cheetah elsewhere).
    CirEncode,
    /// Every layer by correlated OT (`linear::ot`).
    Ot,
    /// 3×3 stride-1 convolutions by Winograd with the largest tile the ring's headroom allows
    /// ([`winograd_tile`]), every other layer by correlated OT: the all-OT row of CoPriv.
    Winograd,
}

impl std::str::FromStr for LinearPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(LinearPolicy::Auto),
            "cheetah" => Ok(LinearPolicy::Cheetah),
            "simd" => Ok(LinearPolicy::Simd),
            "hyena" => Ok(LinearPolicy::Hyena),
            "falcon" => Ok(LinearPolicy::Falcon),
            "circulant" => Ok(LinearPolicy::Circulant),
            "cirencode" => Ok(LinearPolicy::CirEncode),
            "ot" => Ok(LinearPolicy::Ot),
            "winograd" => Ok(LinearPolicy::Winograd),
            other => Err(format!(
                "unknown protocol {other:?}: expected auto, cheetah, simd, hyena, falcon, circulant, cirencode, ot or winograd"
            )),
        }
    }
}

/// What runs right after a linear layer's protocol, on the same step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Epilogue {
    /// The rescale t(·) back to scale 2^s (docs/fixed-point.md).
    Rescale,
    /// t(·) and ReLU in one protocol (`mpc::Session::trunc_relu`): the following ReLU step is
    /// `Fused`.
    RescaleRelu,
    /// t(·) and ReLU6 in one protocol (`mpc::Session::trunc_relu6`): the following ReLU6 step
    /// is `Fused`.
    RescaleRelu6,
    /// None: the output stays at scale 2^{2s} and is consumed by an `AddAligned` step.
    Deferred,
    /// The layer reads LayerNorm(x) of its input x (a `LayerNorm` step with `into_linear`):
    /// LayerNorm fused with the layer (`mpc::Session::layernorm_linear`, equal to
    /// `nn::approx::LayerNorm::linear_output`), the layer's round trip inside LayerNorm's
    /// flights. Its protocol splits (`LinearProtocol::splits`).
    Normalized,
}

/// How a step is computed on shares.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    /// The client's input (its share is the quantized image, the server's is zero).
    Input,
    /// A linear layer by a 2PC protocol, then its epilogue.
    Linear {
        choice: LinearChoice,
        layer: LayerSpec,
        cost: Cost,
        epilogue: Epilogue,
    },
    /// A ReLU or ReLU6 already computed by the step it reads (a `RescaleRelu` or `RescaleRelu6`
    /// epilogue): passes the value on.
    Fused,
    /// Residual sum of a linear layer's output at scale 2^{2s} (input 0, a `Deferred` epilogue)
    /// and a value at scale 2^s (input 1) lifted by 2^s; local. Exact for the reference because
    /// t(y + x·2^s) = t(y) + x.
    AddAligned,
    /// t(·) and ReLU in one protocol on an `AddAligned` output.
    TruncRelu,
    Relu,
    Relu6,
    MaxPool {
        kernel: [usize; 2],
        stride: [usize; 2],
        pads: [usize; 4],
    },
    /// Sum over each window (local), times round(2^s / k) (local), then t(·).
    AvgPool {
        kernel: [usize; 2],
        stride: [usize; 2],
        pads: [usize; 4],
        count_include_pad: bool,
    },
    GlobalAvgPool,
    /// Residual sum of two same-shape inputs (local).
    Add,
    /// Strided slice (local).
    Slice {
        starts: Vec<usize>,
        steps: Vec<usize>,
    },
    /// Zero padding (local).
    Pad {
        before: Vec<usize>,
        after: Vec<usize>,
    },
    /// Same data, new shape (local).
    Reshape,
    /// Concatenation along an axis (local).
    Concat {
        axis: usize,
    },
    /// A constant the server holds (a class token, a position embedding): the server's share is
    /// its value at scale 2^s, the client's is 0.
    Constant,
    /// Permutation of the axes (local).
    Transpose {
        perm: Vec<usize>,
    },
    /// GELU on shares, exactly `nn::approx::Gelu` (docs/protocols/transformer.md).
    Gelu {
        /// The Signed form (`nn::approx::GeluForm`): four hops fewer for more bits, where the
        /// link pays for it (`fused_pairs`); the Abs form otherwise.
        #[serde(default)]
        signed: bool,
    },
    /// Softmax over the last axis on shares, exactly `nn::approx::Softmax`.
    Softmax {
        /// The product reading it computes it (its `normalized` flag): this step passes its
        /// input on.
        into_matmul: bool,
    },
    /// LayerNorm's normalization over the last axis on shares, exactly
    /// `nn::approx::LayerNorm`; its γ, β are folded into the linear layers that read it.
    LayerNorm {
        epsilon: f32,
        /// The linear layer reading it computes it (its `Normalized` epilogue): this step passes
        /// its input on.
        into_linear: bool,
    },
    /// Product of two shared activations `[.., M, K] × [.., K, N]` for each of `batch` leading
    /// indices (attention's Q·Kᵀ and softmax·V): A·B = A0·B0 + A1·B1 + A0·B1 + (B0ᵀ·A1ᵀ)ᵀ, the
    /// two cross terms by a linear protocol with the server's share as its weights (BumbleBee's
    /// two ciphertext × plaintext products), each for all `batch` indices at once as one
    /// grouped 1×1 convolution ([`LayerSpec::batched_matmul`]; `left`: N rows of B1ᵀ times A0,
    /// `right`: M rows of A1 times B0ᵀ), then t(·). `cost` covers both.
    SharedMatMul {
        batch: usize,
        m: usize,
        k: usize,
        n: usize,
        choice: LinearChoice,
        left: LayerSpec,
        right: LayerSpec,
        cost: Cost,
        /// Its left operand is the softmax before it, computed here fused with the product
        /// (`mpc::Session::softmax_matmul`, equal to `nn::approx::Softmax::matmul_output`; no
        /// rescale of its own).
        #[serde(default)]
        normalized: bool,
        /// No rescale: the softmax that reads it (through identity reshapes) takes the product
        /// at scale 2^{2s} (`Plan::softmax_extra`, `nn::approx::Softmax::eval_row_from`).
        #[serde(default)]
        deferred: bool,
    },
}

impl StepKind {
    /// Protocol name for reports.
    pub fn protocol(&self) -> &'static str {
        match self {
            StepKind::Linear {
                choice,
                epilogue: Epilogue::Normalized,
                ..
            } => match choice {
                LinearChoice::Cheetah(_) => "layernorm+cheetah",
                LinearChoice::Falcon(_) => "layernorm+falcon",
                LinearChoice::Circulant(_) => "layernorm+circulant",
                _ => "layernorm+linear",
            },
            StepKind::Linear { choice, .. } => choice.name(),
            StepKind::LayerNorm {
                into_linear: true, ..
            } => "fused",
            StepKind::TruncRelu => "trunc_relu",
            StepKind::Fused => "fused",
            StepKind::Relu | StepKind::Relu6 => "relu",
            StepKind::MaxPool { .. } => "maxpool",
            StepKind::AvgPool { .. } | StepKind::GlobalAvgPool => "trunc",
            StepKind::Gelu { signed: true } => "gelu_signed",
            StepKind::Gelu { .. } => "gelu",
            StepKind::Softmax { into_matmul: true } => "fused",
            StepKind::Softmax { .. } => "softmax",
            StepKind::LayerNorm { .. } => "layernorm",
            StepKind::SharedMatMul {
                choice,
                normalized: true,
                ..
            } => match choice {
                LinearChoice::Cheetah(_) => "softmax+cheetah_shared",
                _ => "softmax+falcon_shared",
            },
            StepKind::SharedMatMul { choice, .. } => match choice {
                LinearChoice::Cheetah(_) => "cheetah_shared",
                LinearChoice::Falcon(_) => "falcon_shared",
                _ => "shared",
            },
            _ => "local",
        }
    }
}

/// One node of the model as the plan runs it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// ONNX node name.
    pub name: String,
    /// Op name as in `privinfer inspect`.
    pub op: String,
    /// Indices of earlier steps whose outputs this step reads.
    pub inputs: Vec<usize>,
    /// Output shape (batch 1).
    pub shape: Vec<usize>,
    pub kind: StepKind,
}

/// What the server reveals at the end, and the fixed-point format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanConfig {
    pub ell: u32,
    pub scale: u32,
    pub cheetah: linear::CheetahConfig,
    /// Fuse each ReLU with the rescale before it (after a linear layer, or after a residual add of
    /// a linear layer's output) into one `trunc_relu`: same result, fewer bits.
    pub fuse_relu: bool,
    /// The linear protocols the planner chooses from.
    #[serde(default)]
    pub linear: LinearPolicy,
    /// Knobs of the SIMD protocol.
    #[serde(default)]
    pub simd: linear::SimdConfig,
    /// Round-trip time (µs) the planner assumes, beside `cheetah.bandwidth_bytes_per_s`: it
    /// prices the flights a rescale saves in its flat form ([`Plan::flat_rescale_max`]).
    #[serde(default = "default_rtt_us")]
    pub rtt_us: u64,
}

/// The planner's default round trip: Cheetah's WAN, 40 ms (with its 400 Mbit/s, the default
/// planning bandwidth).
fn default_rtt_us() -> u64 {
    40_000
}

impl Default for PlanConfig {
    fn default() -> Self {
        PlanConfig {
            ell: 37,
            scale: 12,
            cheetah: linear::CheetahConfig::default(),
            fuse_relu: true,
            linear: LinearPolicy::Auto,
            simd: linear::SimdConfig::default(),
            rtt_us: default_rtt_us(),
        }
    }
}

/// Largest rescale (elements) worth its flat form at `cfg`'s bandwidth and round trip: the
/// flights it saves (`mpc::cost::trunc_known_sign_hops`), at half a round trip each, against the
/// time its extra bits take (docs/protocols/nonlinear.md § Flat truncation).
pub fn flat_rescale_max(cfg: &PlanConfig) -> Result<usize, EngineError> {
    use mpc::{cost, TruncForm};
    let ring = mpc::Ring::new(cfg.ell)?;
    let s = cfg.scale;
    let hops = |f| cost::trunc_known_sign_hops(s, f) as f64;
    let saved = hops(TruncForm::Tree) - hops(TruncForm::Flat);
    let bits = |f| cost::trunc_known_sign_form(ring, s, 1, f, Party::P0).bits as f64;
    Ok(priced_max(
        cfg,
        saved,
        bits(TruncForm::Flat) - bits(TruncForm::Tree),
    ))
}

/// Largest element count for which a form that saves `hops` one-way flights (half a round trip
/// each) at `extra` more bits per element is faster on `cfg`'s link.
fn priced_max(cfg: &PlanConfig, hops: f64, extra: f64) -> usize {
    if hops <= 0.0 || extra <= 0.0 {
        return 0;
    }
    let bits_per_s = cfg.cheetah.bandwidth_bytes_per_s as f64 * 8.0;
    let n = hops * cfg.rtt_us as f64 * 1e-6 / 2.0 * bits_per_s / extra;
    n.min(MAX_ELEMENTS as f64) as usize
}

/// Hops a softmax saves with wide tables inside a transformer block, measured on the CIFAR ViT
/// (two per call: the extension's flight pair is on the critical path there; alone, it is
/// not).
const SOFTMAX_WIDE_HOPS: f64 = 2.0;

/// Largest softmax (elements) worth its wide tables at `cfg`'s link.
pub fn softmax_wide_max(cfg: &PlanConfig) -> Result<usize, EngineError> {
    let t = nn::approx::Softmax::new(cfg.scale);
    let bits = |wide: bool| -> Result<f64, EngineError> {
        let spec = crate::approx::softmax_spec(&t, wide, 0);
        Ok(mpc::cost::softmax(&spec, cfg.ell, 1, 1)?.bits as f64)
    };
    Ok(priced_max(
        cfg,
        SOFTMAX_WIDE_HOPS,
        bits(true)? - bits(false)?,
    ))
}

/// Hops a fused pair saves, measured on the CIFAR ViT: the second step's round trip and rescale
/// (four hops per call) ride in the first one's flights.
const FUSED_PAIR_HOPS: f64 = 4.0;

/// Hops a softmax saves by reading Q·Kᵀ unrounded: the product's rescale (two per call).
const DEFERRED_PRODUCT_HOPS: f64 = 2.0;

/// Hops GELU's Signed form saves against its Abs form, measured on the CIFAR ViT (14 → 10 per
/// call after a fused LayerNorm; 20 → 16 alone).
const GELU_SIGNED_HOPS: f64 = 4.0;

/// GELU's form for a step's `signed` flag.
pub fn gelu_form(signed: bool) -> nn::approx::GeluForm {
    if signed {
        nn::approx::GeluForm::Signed
    } else {
        nn::approx::GeluForm::Abs
    }
}

/// The nodes that run fused with the LayerNorm or softmax they read (docs/protocols/
/// transformer.md § LayerNorm → linear layer, § Softmax → product by V), and the softmaxes that
/// read the product before them unrounded (§ Softmax of an unrounded product), at `cfg`'s
/// link: each pair of [`nn::Model::norm_before`], [`nn::Model::softmax_before`] or
/// [`nn::Model::product_before_softmax`] whose extra bits (the per-output product and rescale
/// against the first step's per-input tail and the second's rescale; the softmax's wider
/// comparisons against the product's rescale) take less time at the planning bandwidth than
/// the hops saved at half the planning round trip each. The fixed-point reference follows this
/// choice (`nn::fixed::FixedModel::with_fused`): it is part of what the plan computes.
pub fn fused_pairs(model: &nn::Model, cfg: &PlanConfig) -> Result<Vec<nn::NodeId>, EngineError> {
    use mpc::cost;
    let ring = mpc::Ring::new(cfg.ell)?;
    let (flat_rescale, flat_ln) = (flat_rescale_max(cfg)?, layernorm_flat_max(cfg)?);
    let wide_max = softmax_wide_max(cfg)?;
    let sm = nn::approx::Softmax::new(cfg.scale);
    let form = |n: usize, max: usize| {
        if n <= max {
            mpc::TruncForm::Flat
        } else {
            mpc::TruncForm::Tree
        }
    };
    // (fused bits, the first step's bits alone, outputs of the second), where the pair applies.
    let price = |id: usize| -> Result<Option<(u64, u64, usize)>, EngineError> {
        let node = &model.nodes[id];
        if let Some(n) = model.norm_before(id) {
            let (nn::Op::LayerNorm(norm), nn::Op::Linear(l)) = (&model.nodes[n].op, &node.op)
            else {
                return Ok(None);
            };
            let d = l.in_features;
            let f = nn::approx::Function::LayerNorm;
            if f.unsupported(cfg.scale, cfg.ell, d).is_some() {
                return Ok(None);
            }
            let ln = nn::approx::LayerNorm::new(cfg.scale, cfg.ell, d, norm.epsilon);
            let (n_in, n_out) = (l.rows * d, l.rows * l.out_features);
            // (The mean's chooser moves COTs between directions, not bits.)
            let alone = crate::approx::layernorm_spec(&ln, form(n_in, flat_ln), Party::P0);
            let fused = crate::approx::layernorm_spec(&ln, form(n_out, flat_ln), Party::P0);
            // A ring too narrow for the fused rescale: not fusable.
            let Ok(fused) = cost::layernorm_linear(&fused, cfg.ell, n_in, l.out_features) else {
                return Ok(None);
            };
            return Ok(Some((
                fused.bits,
                cost::layernorm(&alone, cfg.ell, n_in)?.bits,
                n_out,
            )));
        }
        let Some(n) = model.softmax_before(id) else {
            return Ok(None);
        };
        let xs = &model.nodes[n].shape;
        let row = *xs.last().unwrap_or(&0);
        let f = nn::approx::Function::Softmax;
        if f.unsupported(cfg.scale, cfg.ell, row).is_some() {
            return Ok(None);
        }
        let (n_in, n_out): (usize, usize) = (xs.iter().product(), node.shape.iter().product());
        let spec = crate::approx::softmax_spec(&sm, n_in <= wide_max, 0);
        let fused = cost::softmax_matmul(&spec, cfg.ell, n_in, row, n_out / (n_in / row))?;
        Ok(Some((
            fused.bits,
            cost::softmax(&spec, cfg.ell, n_in, row)?.bits,
            n_out,
        )))
    };
    // The softmax `id` reading its product unrounded: (extra bits, hops saved).
    let deferral = |id: usize| -> Result<Option<f64>, EngineError> {
        if model.product_before_softmax(id).is_none() {
            return Ok(None);
        }
        let xs = &model.nodes[id].shape;
        let row = *xs.last().unwrap_or(&0);
        let f = nn::approx::Function::Softmax;
        if f.unsupported(cfg.scale, cfg.ell, row).is_some() {
            return Ok(None);
        }
        let n: usize = xs.iter().product();
        let bits = |extra| {
            let spec = crate::approx::softmax_spec(&sm, n <= wide_max, extra);
            cost::softmax(&spec, cfg.ell, n, row).map(|c| c.bits)
        };
        // A ring too narrow for the wider comparisons: not deferrable.
        let Ok(with) = bits(cfg.scale) else {
            return Ok(None);
        };
        let rescale =
            cost::trunc_known_sign_form(ring, cfg.scale, n, form(n, flat_rescale), Party::P0);
        Ok(Some(with as f64 - (bits(0)? + rescale.bits) as f64))
    };
    // GELU's Signed form against its Abs form: extra bits per element.
    let gelu_extra = {
        let f = nn::approx::Function::Gelu;
        if f.unsupported(cfg.scale, cfg.ell, 1).is_some() {
            None
        } else {
            let bits = |form| -> Result<f64, EngineError> {
                let g = nn::approx::Gelu::new(cfg.scale, form);
                let spec = crate::approx::gelu_spec(&g, Party::P0);
                Ok(cost::gelu(&spec, cfg.ell, 1)?.bits as f64)
            };
            Some(bits(nn::approx::GeluForm::Signed)? - bits(nn::approx::GeluForm::Abs)?)
        }
    };
    let mut out = Vec::new();
    for id in 0..model.nodes.len() {
        if let (nn::Op::Gelu, Some(extra)) = (&model.nodes[id].op, gelu_extra) {
            let n: usize = model.nodes[id].shape.iter().product();
            if extra <= 0.0 || priced_max(cfg, GELU_SIGNED_HOPS, extra) >= n {
                out.push(id);
            }
            continue;
        }
        if let Some(extra) = deferral(id)? {
            if extra <= 0.0 || priced_max(cfg, DEFERRED_PRODUCT_HOPS, extra) >= 1 {
                out.push(id);
            }
            continue;
        }
        let Some((fused, first, n_out)) = price(id)? else {
            continue;
        };
        let rescale = cost::trunc_known_sign_form(
            ring,
            cfg.scale,
            n_out,
            form(n_out, flat_rescale),
            Party::P0,
        );
        let extra = fused as f64 - (first + rescale.bits) as f64;
        if extra <= 0.0 || priced_max(cfg, FUSED_PAIR_HOPS, extra) >= 1 {
            out.push(id);
        }
    }
    Ok(out)
}

/// Largest LayerNorm (elements) worth its flat last truncation at `cfg`'s link.
pub fn layernorm_flat_max(cfg: &PlanConfig) -> Result<usize, EngineError> {
    use mpc::{cost, TruncForm};
    let hops = |f| cost::layernorm_tail_hops(f) as f64;
    let bits =
        |f| -> Result<f64, EngineError> { Ok(cost::layernorm_tail(cfg.ell, 1, f)?.bits as f64) };
    Ok(priced_max(
        cfg,
        hops(TruncForm::Tree) - hops(TruncForm::Flat),
        bits(TruncForm::Flat)? - bits(TruncForm::Tree)?,
    ))
}

/// Integer bits a pre-rescale value keeps above the scale 2^{2s} after Winograd's extra 2^e
/// for the planner to use it: values up to 2^8 = 256 in real terms (the largest pre-activation
/// of the CIFAR ResNets is below 2^6, docs/protocols/copriv.md § ring width).
pub const WINOGRAD_MIN_INTEGER_BITS: u32 = 8;

/// The largest Winograd output tile m the ring's range assumption leaves room for: the
/// rescale reads 2^e·(y + 2^{s−1}) with |·| < 2^{ℓ−2}, y at scale 2^{2s}, so
/// ℓ − 2 − 2s − e ≥ [`WINOGRAD_MIN_INTEGER_BITS`] (e = 6 for m = 4, 2 for m = 2).
pub fn winograd_tile(ell: u32, scale: u32) -> Option<u8> {
    let room = ell.saturating_sub(2 + 2 * scale);
    [(4u8, 6u32), (2, 2)]
        .into_iter()
        .find(|&(_, e)| room >= e + WINOGRAD_MIN_INTEGER_BITS)
        .map(|(m, _)| m)
}

/// Winograd with the largest tile the ring admits, where the layer is a 3×3 stride-1 conv.
fn winograd_choice(layer: &LayerSpec, cfg: &PlanConfig) -> Option<LinearChoice> {
    winograd_tile(cfg.ell, cfg.scale)
        .map(LinearChoice::Winograd)
        .filter(|_| linear::Winograd::applies(layer))
}

/// Every protocol that applies to `layer` with its estimated seconds ([`estimated_seconds`] at
/// the Cheetah configuration's bandwidth): what `LinearPolicy::Auto` chooses the minimum of, and
/// what `privinfer inspect --plan` shows as the reason for a choice.
pub fn candidates(
    layer: &LayerSpec,
    ring: linear::Ring,
    cfg: &PlanConfig,
) -> Vec<(LinearChoice, f64)> {
    let bw = cfg.cheetah.bandwidth_bytes_per_s as f64;
    [
        LinearChoice::Cheetah(cfg.cheetah),
        LinearChoice::Simd(cfg.simd),
        LinearChoice::Hyena(cfg.simd),
        LinearChoice::Falcon(cfg.cheetah),
        LinearChoice::Circulant(cfg.cheetah),
        LinearChoice::CirEncode(cfg.simd),
        LinearChoice::Ot,
    ]
    .into_iter()
    .chain(winograd_choice(layer, cfg))
    .filter_map(|c| estimated_seconds(&c, layer, ring, bw).ok().map(|t| (c, t)))
    .collect()
}

/// Estimated seconds of one layer under `choice`: the protocol's own estimate plus, for a
/// field-domain protocol, the bytes of the two share conversions at `bandwidth` bytes/s.
pub fn estimated_seconds(
    choice: &LinearChoice,
    layer: &LayerSpec,
    ring: linear::Ring,
    bandwidth: f64,
) -> Result<f64, EngineError> {
    let proto = choice.protocol();
    let mut s = proto.estimated_seconds(layer, ring, bandwidth)?;
    if let Some(t) = proto.share_modulus(layer, ring)? {
        let mring = mpc::Ring::new(ring.bits())?;
        let p_bits = 64 - t.leading_zeros();
        let bits = mpc::cost::ring_to_field_in_range(mring, p_bits, layer.input_len()).bits
            + mpc::cost::field_to_ring_in_range(mring, layer.output_len()).bits;
        s += bits as f64 / 8.0 / bandwidth;
    }
    Ok(s)
}

/// A compiled model: public, deterministic, serializable.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub version: u32,
    pub model: String,
    pub ell: u32,
    pub scale: u32,
    pub steps: Vec<Step>,
    /// Index of the step whose value is the model output.
    pub output: usize,
    /// Rescales without an activation of at most this many elements run in the flat form
    /// (`mpc::TruncForm::Flat`: fewer flights, more bits); larger ones as a tree. 0: none.
    #[serde(default)]
    pub flat_rescale_max: usize,
    /// Softmax steps of at most this many elements look up their exponential's digits in the
    /// product ring (`mpc::SoftmaxSpec::wide_tables`: no extension flight pair, more bits). 0:
    /// none.
    #[serde(default)]
    pub softmax_wide_max: usize,
    /// LayerNorm steps of at most this many elements take their last truncation in the flat
    /// form (`mpc::LayerNormSpec::tail`). 0: none.
    #[serde(default)]
    pub layernorm_flat_max: usize,
}

fn unsupported(node: &str, op: &str, reason: impl Into<String>) -> EngineError {
    EngineError::Unsupported {
        node: node.to_string(),
        op: op.to_string(),
        reason: reason.into(),
    }
}

impl Plan {
    /// Compiles `model` for 2PC inference: every linear layer by the cheapest available protocol
    /// (today Cheetah), with its cost predicted from shapes alone.
    pub fn compile(model: &Model, cfg: &PlanConfig) -> Result<Plan, EngineError> {
        let fixed = FixedConfig::new(cfg.ell, cfg.scale)?;
        Self::compile_quantized(&nn::fixed::FixedModel::new(model, fixed), cfg)
    }

    /// As [`Plan::compile`], from a model already quantized with `cfg`'s ℓ and s.
    pub fn compile_quantized(
        fm: &nn::fixed::FixedModel<'_>,
        cfg: &PlanConfig,
    ) -> Result<Plan, EngineError> {
        let model = fm.model();
        if fm.config() != FixedConfig::new(cfg.ell, cfg.scale)? {
            return Err(EngineError::InvalidPlan {
                step: 0,
                reason: "quantized with another ℓ or s".into(),
            });
        }
        let ring = linear::Ring::new(cfg.ell)?;
        let declared = model.circulant_blocks()?;
        // A block-circulant layer's b: the one the model declares (checked against the
        // quantized weights), else found in the weights themselves, whatever exported the
        // model. b is public like a shape; the weights stay secret.
        let block_of = |id: usize, name: &str, m: usize, c: usize, taps: usize, wq: &[u64]| {
            match declared
            .get(name)
        {
            Some(&b) if linear::circulant::is_block_circulant(m, c, taps, b, wq) => Ok(b),
            Some(&b) => Err(EngineError::InvalidPlan {
                step: id,
                reason: format!(
                    "layer {name}: the model declares circulant block {b} but its weights are not block-circulant"
                ),
            }),
            None => Ok(linear::circulant::detect_block(
                m,
                c,
                taps,
                wq,
                MAX_CIRCULANT_BLOCK,
            )),
        }
        };
        let mut steps = Vec::with_capacity(model.nodes.len());
        for (id, node) in model.nodes.iter().enumerate() {
            let name = node.name.as_str();
            let opname = node.op.name();
            let input_shape = |k: usize| &model.nodes[node.inputs[k]].shape;
            let kind = match &node.op {
                Op::Input => StepKind::Input,
                Op::Conv(c) => {
                    if c.stride[0] != c.stride[1] || c.pads.iter().any(|&p| p != c.pads[0]) {
                        return Err(unsupported(name, opname, "asymmetric stride or padding"));
                    }
                    let [cin, h, w] = c.in_shape;
                    let (wq, _) = fm.params(id);
                    let (m, taps) = (c.out_shape[0], c.kernel[0] * c.kernel[1]);
                    let block = if c.groups == 1 {
                        block_of(id, name, m, cin, taps, wq)?
                    } else {
                        1
                    };
                    let spec = Conv2dSpec {
                        c: cin,
                        h,
                        w,
                        m,
                        kh: c.kernel[0],
                        kw: c.kernel[1],
                        stride: c.stride[0],
                        padding: c.pads[0],
                        groups: c.groups,
                        block,
                    };
                    let layer = LayerSpec::conv(spec, linear::weight_bits_of(wq, ring));
                    Self::linear_step(layer, ring, cfg)?
                }
                Op::Linear(l) => {
                    let (wq, _) = fm.params(id);
                    let bits = linear::weight_bits_of(wq, ring);
                    // One row: a matrix–vector product; more (a transformer's tokens): the
                    // token × weight product, rows × in row-major like the reference's.
                    let b = block_of(id, name, l.out_features, l.in_features, 1, wq)?;
                    let layer = if l.rows == 1 {
                        LayerSpec::circulant_fc(l.in_features, l.out_features, b, bits)
                    } else {
                        LayerSpec::circulant_matmul(l.rows, l.in_features, l.out_features, b, bits)
                    };
                    Self::linear_step(layer, ring, cfg)?
                }
                Op::BatchNorm(_) => {
                    let s = &node.shape;
                    if s.len() != 4 {
                        return Err(unsupported(
                            name,
                            opname,
                            "batch norm on a tensor that is not NCHW",
                        ));
                    }
                    let (wq, _) = fm.params(id);
                    let layer =
                        LayerSpec::scale(s[1], s[2], s[3], linear::weight_bits_of(wq, ring));
                    Self::linear_step(layer, ring, cfg)?
                }
                Op::Relu => StepKind::Relu,
                Op::Relu6 => StepKind::Relu6,
                Op::MaxPool(p) => StepKind::MaxPool {
                    kernel: p.kernel,
                    stride: p.stride,
                    pads: p.pads,
                },
                Op::AvgPool(p) => StepKind::AvgPool {
                    kernel: p.kernel,
                    stride: p.stride,
                    pads: p.pads,
                    count_include_pad: p.count_include_pad,
                },
                Op::GlobalAvgPool => StepKind::GlobalAvgPool,
                Op::Add => {
                    if input_shape(0) != input_shape(1) {
                        return Err(unsupported(
                            name,
                            opname,
                            "broadcasting add (only same-shape residual adds run privately)",
                        ));
                    }
                    StepKind::Add
                }
                Op::Slice(s) => StepKind::Slice {
                    starts: s.starts.clone(),
                    steps: s.steps.clone(),
                },
                Op::Pad(p) => StepKind::Pad {
                    before: p.before.clone(),
                    after: p.after.clone(),
                },
                Op::Reshape => StepKind::Reshape,
                Op::Concat { axis } => StepKind::Concat { axis: *axis },
                Op::Constant(_) => StepKind::Constant,
                Op::Transpose { perm } => StepKind::Transpose { perm: perm.clone() },
                Op::Gelu | Op::Softmax | Op::LayerNorm(_) => {
                    let f = nn::approx::Function::of(&node.op).expect("a transformer op");
                    let d = *node.shape.last().unwrap_or(&0);
                    if let Some(why) = f.unsupported(cfg.scale, cfg.ell, d) {
                        return Err(unsupported(name, opname, why));
                    }
                    match &node.op {
                        Op::LayerNorm(l) if !l.is_identity() => {
                            return Err(unsupported(
                                name,
                                opname,
                                "γ/β not folded: a reader of this LayerNorm is not a linear layer",
                            ));
                        }
                        Op::LayerNorm(l) => StepKind::LayerNorm {
                            epsilon: l.epsilon,
                            into_linear: false,
                        },
                        Op::Softmax => StepKind::Softmax { into_matmul: false },
                        _ => StepKind::Gelu { signed: false },
                    }
                }
                Op::MatMul => {
                    let (a, b) = (input_shape(0), input_shape(1));
                    let r = a.len();
                    let (m, k, n) = (a[r - 2], a[r - 1], b[r - 1]);
                    let batch: usize = a[..r - 2].iter().product();
                    // The weights of the cross terms are shares: any element of Z_{2^ℓ}.
                    let left = LayerSpec::batched_matmul(batch, n, k, m, cfg.ell);
                    let right = LayerSpec::batched_matmul(batch, m, k, n, cfg.ell);
                    let choice = Self::shared_choice(&left, &right, ring, cfg)?;
                    let cost = choice.protocol().cost(&left, ring)?
                        + choice.protocol().cost(&right, ring)?;
                    StepKind::SharedMatMul {
                        batch,
                        m,
                        k,
                        n,
                        choice,
                        left,
                        right,
                        cost,
                        normalized: false,
                        deferred: false,
                    }
                }
                Op::Mul => {
                    return Err(unsupported(
                        name,
                        opname,
                        "product with a server constant the import could not fold into a linear layer",
                    ));
                }
            };
            steps.push(Step {
                name: node.name.clone(),
                op: opname.to_string(),
                inputs: node.inputs.clone(),
                shape: node.shape.clone(),
                kind,
            });
        }
        if cfg.cheetah.dense_bytes == linear::DenseBytes::AtMostCheetahTotal {
            Self::fit_dense_budget(&mut steps, ring, cfg)?;
        }
        if cfg.linear == LinearPolicy::Auto {
            Self::weigh_key_setup(&mut steps, ring, cfg)?;
        }
        // LayerNorm → linear pairs first: a linear layer that computes its LayerNorm keeps that
        // epilogue, and a ReLU after it runs alone.
        Self::fuse_pairs(&mut steps, model, ring, cfg)?;
        if cfg.fuse_relu {
            Self::fuse_relus(&mut steps, model.output);
        }
        let plan = Plan {
            version: PLAN_VERSION,
            model: model.name.clone(),
            ell: cfg.ell,
            scale: cfg.scale,
            steps,
            output: model.output,
            flat_rescale_max: flat_rescale_max(cfg)?,
            softmax_wide_max: softmax_wide_max(cfg)?,
            layernorm_flat_max: layernorm_flat_max(cfg)?,
        };
        plan.validate()?;
        Ok(plan)
    }

    /// The protocol of both cross terms of a shared product: one that runs on Z_{2^ℓ} shares
    /// with the server's share as weights — Cheetah, or Falcon's dense packing of the grouped
    /// convolution (several heads per product) — the faster by estimated time unless the
    /// policy names one.
    fn shared_choice(
        left: &LayerSpec,
        right: &LayerSpec,
        ring: linear::Ring,
        cfg: &PlanConfig,
    ) -> Result<LinearChoice, EngineError> {
        let cheetah = LinearChoice::Cheetah(cfg.cheetah);
        let falcon = LinearChoice::Falcon(cfg.cheetah);
        let bw = cfg.cheetah.bandwidth_bytes_per_s as f64;
        let time = |c: &LinearChoice| -> Result<f64, EngineError> {
            Ok(estimated_seconds(c, left, ring, bw)? + estimated_seconds(c, right, ring, bw)?)
        };
        Ok(match cfg.linear {
            LinearPolicy::Cheetah => cheetah,
            LinearPolicy::Falcon => falcon,
            _ if time(&falcon)? < time(&cheetah)? => falcon,
            _ => cheetah,
        })
    }

    fn linear_step(
        layer: LayerSpec,
        ring: linear::Ring,
        cfg: &PlanConfig,
    ) -> Result<StepKind, EngineError> {
        let cheetah = LinearChoice::Cheetah(cfg.cheetah);
        let simd = LinearChoice::Simd(cfg.simd);
        let hyena = LinearChoice::Hyena(cfg.simd);
        let falcon = LinearChoice::Falcon(cfg.cheetah);
        let circulant = LinearChoice::Circulant(cfg.cheetah);
        let cirencode = LinearChoice::CirEncode(cfg.simd);
        let ot = LinearChoice::Ot;
        let winograd = winograd_choice(&layer, cfg);
        let applies = |c: LinearChoice| c.protocol().cost(&layer, ring).is_ok();
        let choice = match cfg.linear {
            LinearPolicy::Cheetah => cheetah,
            LinearPolicy::Simd if applies(simd) => simd,
            LinearPolicy::Hyena if applies(hyena) => hyena,
            LinearPolicy::Falcon if applies(falcon) => falcon,
            LinearPolicy::Circulant if applies(circulant) => circulant,
            LinearPolicy::CirEncode if applies(cirencode) => cirencode,
            LinearPolicy::Ot => ot,
            LinearPolicy::Winograd => winograd.unwrap_or(ot),
            LinearPolicy::Simd
            | LinearPolicy::Hyena
            | LinearPolicy::Falcon
            | LinearPolicy::Circulant
            | LinearPolicy::CirEncode => cheetah,
            LinearPolicy::Auto => candidates(&layer, ring, cfg)
                .into_iter()
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .map_or(cheetah, |(c, _)| c),
        };
        let cost = choice.protocol().cost(&layer, ring)?;
        Ok(StepKind::Linear {
            choice,
            layer,
            cost,
            epilogue: Epilogue::Rescale,
        })
    }

    /// `DenseBytes::AtMostCheetahTotal`: the falcon steps together send no more than Cheetah's
    /// plans of the same layers. Their planning bandwidth is lowered until they fit
    /// (`linear::falcon::bandwidth_at_cheetah_bytes`); if even the lowest does not, they run by
    /// Cheetah.
    fn fit_dense_budget(
        steps: &mut [Step],
        ring: linear::Ring,
        cfg: &PlanConfig,
    ) -> Result<(), EngineError> {
        let layers: Vec<LayerSpec> = steps
            .iter()
            .filter_map(|s| match &s.kind {
                StepKind::Linear {
                    choice: LinearChoice::Falcon(_),
                    layer,
                    ..
                } => Some(*layer),
                _ => None,
            })
            .collect();
        if layers.is_empty() {
            return Ok(());
        }
        let bw = linear::falcon::bandwidth_at_cheetah_bytes(&layers, ring, cfg.cheetah)?;
        for s in steps.iter_mut() {
            if let StepKind::Linear {
                choice,
                layer,
                cost,
                ..
            } = &mut s.kind
            {
                if let LinearChoice::Falcon(c) = *choice {
                    *choice = match bw {
                        Some(bw) => LinearChoice::Falcon(linear::CheetahConfig {
                            bandwidth_bytes_per_s: bw,
                            ..c
                        }),
                        None => LinearChoice::Cheetah(cfg.cheetah),
                    };
                    *cost = choice.protocol().cost(layer, ring)?;
                }
            }
        }
        Ok(())
    }

    /// The per-layer choice ignores key material, which is exchanged once per session and
    /// shared by layers: a field-domain (SIMD) layer needs Galois keys the Cheetah path does not
    /// (tens of MB). Keeps the SIMD choices only if their estimated time saving exceeds the
    /// transfer time of the extra setup bytes at the planning bandwidth; otherwise every such
    /// layer goes back to Cheetah.
    fn weigh_key_setup(
        steps: &mut [Step],
        ring: linear::Ring,
        cfg: &PlanConfig,
    ) -> Result<(), EngineError> {
        let bw = cfg.cheetah.bandwidth_bytes_per_s as f64;
        let cheetah = LinearChoice::Cheetah(cfg.cheetah);
        let (mut saving, mut any, mut with, mut without) = (0.0, false, Vec::new(), Vec::new());
        for s in steps.iter() {
            if let StepKind::Linear { choice, layer, .. } = &s.kind {
                let req = choice.protocol().keys_needed(layer, ring)?;
                if choice.is_field_domain() {
                    any = true;
                    saving += estimated_seconds(&cheetah, layer, ring, bw)?
                        - estimated_seconds(choice, layer, ring, bw)?;
                    without.extend(cheetah.protocol().keys_needed(layer, ring)?);
                } else {
                    without.extend(req.iter().copied());
                }
                with.extend(req);
            }
        }
        if !any {
            return Ok(());
        }
        for v in [&mut with, &mut without] {
            v.sort();
            v.dedup();
        }
        let extra = linear::setup_cost(&with)?.bytes_c2s as f64
            - linear::setup_cost(&without)?.bytes_c2s as f64;
        if extra / bw < saving {
            return Ok(());
        }
        for s in steps.iter_mut() {
            if let StepKind::Linear {
                choice,
                layer,
                cost,
                ..
            } = &mut s.kind
            {
                if choice.is_field_domain() {
                    *choice = cheetah;
                    *cost = cheetah.protocol().cost(layer, ring)?;
                }
            }
        }
        Ok(())
    }

    /// Marks each LayerNorm → linear pair [`fused_pairs`] fuses at `cfg`'s link: the linear
    /// step takes the `Normalized` epilogue, the
    /// LayerNorm step passes its input on. The layer's protocol must split to run inside
    /// LayerNorm's flights: where the choice does not, Cheetah runs it.
    fn fuse_pairs(
        steps: &mut [Step],
        model: &nn::Model,
        ring: linear::Ring,
        cfg: &PlanConfig,
    ) -> Result<(), EngineError> {
        let cheetah = LinearChoice::Cheetah(cfg.cheetah);
        for id in fused_pairs(model, cfg)? {
            if let StepKind::Gelu { signed } = &mut steps[id].kind {
                *signed = true;
                continue;
            }
            if let Some(p) = model.product_before_softmax(id) {
                if let StepKind::SharedMatMul { deferred, .. } = &mut steps[p].kind {
                    *deferred = true;
                }
                continue;
            }
            if let Some(n) = model.softmax_before(id) {
                if let StepKind::SharedMatMul { normalized, .. } = &mut steps[id].kind {
                    *normalized = true;
                }
                if let StepKind::Softmax { into_matmul } = &mut steps[n].kind {
                    *into_matmul = true;
                }
                continue;
            }
            let Some(n) = model.norm_before(id) else {
                continue;
            };
            if let StepKind::Linear {
                choice,
                layer,
                cost,
                epilogue,
            } = &mut steps[id].kind
            {
                if !choice.protocol().splits() {
                    *choice = cheetah;
                    *cost = cheetah.protocol().cost(layer, ring)?;
                }
                *epilogue = Epilogue::Normalized;
            }
            if let StepKind::LayerNorm { into_linear, .. } = &mut steps[n].kind {
                *into_linear = true;
            }
        }
        Ok(())
    }

    /// Rewrites `Linear → ReLU` into `Linear(RescaleRelu) → Fused`, `Linear → ReLU6` into
    /// `Linear(RescaleRelu6) → Fused`, and
    /// `Linear → Add(·, x) → ReLU` into `Linear(Deferred) → AddAligned → TruncRelu`, where the
    /// intermediate values have no other consumer (and are not the model output).
    fn fuse_relus(steps: &mut [Step], output: usize) {
        let mut consumers = vec![0usize; steps.len()];
        for s in steps.iter() {
            for &j in &s.inputs {
                consumers[j] += 1;
            }
        }
        let single = |j: usize, consumers: &[usize]| consumers[j] == 1 && j != output;
        let is_plain_linear = |k: &StepKind| {
            matches!(
                k,
                StepKind::Linear {
                    epilogue: Epilogue::Rescale,
                    ..
                }
            )
        };
        for r in 0..steps.len() {
            if steps[r].kind == StepKind::Relu6 {
                let i = steps[r].inputs[0];
                if is_plain_linear(&steps[i].kind) && single(i, &consumers) {
                    if let StepKind::Linear { epilogue, .. } = &mut steps[i].kind {
                        *epilogue = Epilogue::RescaleRelu6;
                    }
                    steps[r].kind = StepKind::Fused;
                }
                continue;
            }
            if steps[r].kind != StepKind::Relu {
                continue;
            }
            let i = steps[r].inputs[0];
            if is_plain_linear(&steps[i].kind) && single(i, &consumers) {
                if let StepKind::Linear { epilogue, .. } = &mut steps[i].kind {
                    *epilogue = Epilogue::RescaleRelu;
                }
                steps[r].kind = StepKind::Fused;
            } else if steps[i].kind == StepKind::Add && single(i, &consumers) {
                let (a, b) = (steps[i].inputs[0], steps[i].inputs[1]);
                let lin = [a, b]
                    .into_iter()
                    .find(|&j| is_plain_linear(&steps[j].kind) && single(j, &consumers));
                if let Some(j) = lin {
                    let other = if j == a { b } else { a };
                    if let StepKind::Linear { epilogue, .. } = &mut steps[j].kind {
                        *epilogue = Epilogue::Deferred;
                    }
                    steps[i].kind = StepKind::AddAligned;
                    steps[i].inputs = vec![j, other];
                    steps[r].kind = StepKind::TruncRelu;
                }
            }
        }
    }

    /// The form of a rescale without activation of `n` elements ([`Plan::flat_rescale_max`]).
    pub fn rescale_form(&self, n: usize) -> mpc::TruncForm {
        if n <= self.flat_rescale_max {
            mpc::TruncForm::Flat
        } else {
            mpc::TruncForm::Tree
        }
    }

    /// The form of the last truncation of a LayerNorm of `n` elements
    /// ([`Plan::layernorm_flat_max`]).
    pub fn layernorm_tail(&self, n: usize) -> mpc::TruncForm {
        if n <= self.layernorm_flat_max {
            mpc::TruncForm::Flat
        } else {
            mpc::TruncForm::Tree
        }
    }

    /// Who chooses in the sign comparison of GELU step `i`: the party that knows its input
    /// share first — P0 after a rescale (it picked its share before its last message), P1
    /// after LayerNorm fused with a linear layer (measured on the CIFAR ViT: 16 → 14 hops).
    pub fn gelu_chooser(&self, i: usize) -> Party {
        match self.steps[self.steps[i].inputs[0]].kind {
            StepKind::Linear {
                epilogue: Epilogue::Normalized,
                ..
            } => Party::P1,
            _ => Party::P0,
        }
    }

    /// Who chooses in the mean's lookup of LayerNorm step `i`: the party that knows its input
    /// share first. Tracing the input back through local steps (their latest input): P1 after
    /// LayerNorm fused with a linear layer (P0 receives its last flight), else P0 — after a
    /// rescale the server picked its output share before its last message, so its choices
    /// leave with that message (measured on the CIFAR ViT: 20 → 18 hops per LayerNorm).
    pub fn layernorm_chooser(&self, i: usize) -> Party {
        let mut at = match self.steps.get(i).and_then(|s| s.inputs.first()) {
            Some(&j) => j,
            None => return Party::P0,
        };
        for _ in 0..self.steps.len() {
            match &self.steps[at].kind {
                StepKind::Reshape
                | StepKind::Slice { .. }
                | StepKind::Transpose { .. }
                | StepKind::Concat { .. }
                | StepKind::Add
                | StepKind::AddAligned => match self.steps[at].inputs.iter().max() {
                    Some(&j) if j < at => at = j,
                    _ => return Party::P0,
                },
                StepKind::Linear {
                    epilogue: Epilogue::Normalized,
                    ..
                } => return Party::P1,
                _ => return Party::P0,
            }
        }
        Party::P0
    }

    /// The linear layers (node ids) run fused with their LayerNorm: what the fixed-point
    /// reference of this plan fuses (`nn::fixed::FixedModel::with_fused`).
    pub fn fused_pairs(&self) -> Vec<usize> {
        (0..self.steps.len())
            .filter(|&i| {
                matches!(
                    self.steps[i].kind,
                    StepKind::Linear {
                        epilogue: Epilogue::Normalized,
                        ..
                    } | StepKind::SharedMatMul {
                        normalized: true,
                        ..
                    }
                ) || (matches!(self.steps[i].kind, StepKind::Softmax { .. })
                    && self.softmax_extra(i) > 0)
                    || matches!(self.steps[i].kind, StepKind::Gelu { signed: true })
            })
            .collect()
    }

    /// The deferred product (`SharedMatMul { deferred }`) the softmax step `i` reads through
    /// identity reshapes, if any.
    fn deferred_product(&self, i: usize) -> Option<usize> {
        let mut at = *self.steps.get(i)?.inputs.first()?;
        loop {
            match &self.steps[at].kind {
                StepKind::SharedMatMul { deferred: true, .. } => return Some(at),
                StepKind::Reshape => at = *self.steps[at].inputs.first()?,
                _ => return None,
            }
        }
    }

    /// Whether step `i`'s value reaches exactly one softmax and nothing else, through identity
    /// reshapes that nothing else reads (what a deferred product needs).
    fn read_unrounded_by_softmax(&self, i: usize) -> bool {
        let mut at = i;
        for _ in 0..self.steps.len() {
            let readers: Vec<usize> = (at + 1..self.steps.len())
                .filter(|&j| self.steps[j].inputs.contains(&at))
                .collect();
            if readers.len() != 1 || at == self.output {
                return false;
            }
            let r = readers[0];
            match self.steps[r].kind {
                StepKind::Softmax { .. } => return self.steps[r].inputs[0] == at,
                StepKind::Reshape => at = r,
                _ => return false,
            }
        }
        false
    }

    /// Bits of scale beyond 2^s of softmax step `i`'s input: s when it reads a deferred
    /// product (Q·Kᵀ unrounded), else 0.
    pub fn softmax_extra(&self, i: usize) -> u32 {
        match self.deferred_product(i) {
            Some(_) => self.scale,
            None => 0,
        }
    }

    /// The LayerNorm a `Normalized` linear step `i` computes (on its input step's rows) and that
    /// step's element count.
    pub fn fused_norm(&self, i: usize) -> Result<(nn::approx::LayerNorm, usize), EngineError> {
        let j = self.steps[i].inputs[0];
        let from = &self.steps[j];
        let StepKind::LayerNorm { epsilon, .. } = from.kind else {
            return Err(EngineError::InvalidPlan {
                step: i,
                reason: "a normalized linear layer must read a LayerNorm".into(),
            });
        };
        let d = *from.shape.last().unwrap_or(&1);
        Ok((
            nn::approx::LayerNorm::new(self.scale, self.ell, d, epsilon),
            from.shape.iter().product(),
        ))
    }

    /// Whether a softmax of `n` elements runs with wide tables ([`Plan::softmax_wide_max`]).
    pub fn softmax_wide(&self, n: usize) -> bool {
        n <= self.softmax_wide_max
    }

    /// What a rescale without activation of `n` elements by `s` bits costs, `chooser` choosing
    /// in its comparison.
    fn rescale_cost(&self, ring: mpc::Ring, s: u32, n: usize, chooser: Party) -> mpc::cost::Cost {
        mpc::cost::trunc_known_sign_form(ring, s, n, self.rescale_form(n), chooser)
    }

    /// SHA-256 of the canonical JSON of the plan, hex: the model digest of the handshake.
    pub fn digest(&self) -> String {
        let bytes = serde_json::to_vec(self).expect("a plan always serializes");
        let d = Sha256::digest(&bytes);
        d.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Structural checks a client runs on a plan received from the server: every index in range
    /// and pointing backwards, sizes bounded and consistent with each step's kind.
    pub fn validate(&self) -> Result<(), EngineError> {
        let bad = |step: usize, reason: String| EngineError::InvalidPlan { step, reason };
        if self.version != PLAN_VERSION {
            return Err(bad(
                0,
                format!("plan version {} (we read {PLAN_VERSION})", self.version),
            ));
        }
        FixedConfig::new(self.ell, self.scale)?;
        if self.steps.is_empty() || self.steps.len() > MAX_STEPS {
            return Err(bad(0, format!("{} steps", self.steps.len())));
        }
        if self.output >= self.steps.len() {
            return Err(bad(self.output, "output index out of range".into()));
        }
        for (i, s) in self.steps.iter().enumerate() {
            if s.inputs.iter().any(|&j| j >= i) {
                return Err(bad(
                    i,
                    "input index does not point to an earlier step".into(),
                ));
            }
            let n = s
                .shape
                .iter()
                .try_fold(1usize, |a, &d| a.checked_mul(d))
                .unwrap_or(usize::MAX);
            if n == 0 || n > MAX_ELEMENTS {
                return Err(bad(i, format!("shape {:?}", s.shape)));
            }
            let arity = match &s.kind {
                StepKind::Input | StepKind::Constant => 0,
                StepKind::Add | StepKind::AddAligned | StepKind::SharedMatMul { .. } => 2,
                StepKind::Concat { .. } => s.inputs.len().max(1),
                _ => 1,
            };
            if s.inputs.len() != arity || (i == 0) != matches!(s.kind, StepKind::Input) {
                return Err(bad(i, format!("{} inputs for {}", s.inputs.len(), s.op)));
            }
            let in_len = |k: usize| -> usize { self.steps[s.inputs[k]].shape.iter().product() };
            // A value still at scale 2^{2s} may only feed the aligned add built for it.
            for (k, &j) in s.inputs.iter().enumerate() {
                let deferred = matches!(
                    self.steps[j].kind,
                    StepKind::Linear {
                        epilogue: Epilogue::Deferred,
                        ..
                    }
                );
                if deferred && !(s.kind == StepKind::AddAligned && k == 0) {
                    return Err(bad(
                        i,
                        "reads a linear output that has not been rescaled".into(),
                    ));
                }
            }
            // A LayerNorm computed by the linear layer reading it: exactly that one reader.
            let normalized = |k: &StepKind| {
                matches!(
                    k,
                    StepKind::Linear {
                        epilogue: Epilogue::Normalized,
                        ..
                    }
                )
            };
            for (k, &j) in s.inputs.iter().enumerate() {
                let into = matches!(
                    self.steps[j].kind,
                    StepKind::LayerNorm {
                        into_linear: true,
                        ..
                    }
                );
                if into != normalized(&s.kind) || (into && j == self.output) {
                    return Err(bad(
                        i,
                        "a fused LayerNorm must be read by its linear layer alone".into(),
                    ));
                }
                let into_mm = matches!(self.steps[j].kind, StepKind::Softmax { into_matmul: true });
                let reads = k == 0
                    && matches!(
                        s.kind,
                        StepKind::SharedMatMul {
                            normalized: true,
                            ..
                        }
                    );
                if into_mm != reads || (into_mm && j == self.output) {
                    return Err(bad(
                        i,
                        "a fused softmax must be the left operand of its product alone".into(),
                    ));
                }
            }
            if matches!(
                s.kind,
                StepKind::LayerNorm {
                    into_linear: true,
                    ..
                } | StepKind::Softmax { into_matmul: true }
            ) && self.steps.iter().filter(|t| t.inputs.contains(&i)).count() != 1
            {
                return Err(bad(i, "a fused LayerNorm or softmax has one reader".into()));
            }
            match &s.kind {
                StepKind::Linear {
                    layer,
                    choice,
                    epilogue,
                    ..
                } => {
                    layer.validate()?;
                    if *epilogue == Epilogue::Normalized {
                        let d = *self.steps[s.inputs[0]].shape.last().unwrap_or(&0);
                        let ok = match layer.shape {
                            linear::LayerShape::MatMul(m) => m.inputs == d,
                            linear::LayerShape::Fc(f) => f.inputs == d,
                            _ => false,
                        };
                        if !ok || !choice.protocol().splits() {
                            return Err(bad(
                                i,
                                "a fused LayerNorm needs a linear layer over its rows by a protocol that splits".into(),
                            ));
                        }
                    }
                    if matches!(choice, LinearChoice::Winograd(m) if *m != 2 && *m != 4) {
                        return Err(bad(i, "Winograd tile must be 2 or 4".into()));
                    }
                    if layer.input_len() != in_len(0) || layer.output_len() != n {
                        return Err(bad(
                            i,
                            "linear layer shape does not match its neighbours".into(),
                        ));
                    }
                }
                StepKind::Relu | StepKind::Relu6 | StepKind::Reshape | StepKind::TruncRelu => {
                    if matches!(s.kind, StepKind::TruncRelu)
                        && self.steps[s.inputs[0]].kind != StepKind::AddAligned
                    {
                        return Err(bad(i, "trunc_relu must read an aligned add".into()));
                    }
                    if in_len(0) != n {
                        return Err(bad(i, "element count changes".into()));
                    }
                }
                StepKind::Fused => {
                    let from = &self.steps[s.inputs[0]].kind;
                    if !matches!(
                        from,
                        StepKind::Linear {
                            epilogue: Epilogue::RescaleRelu | Epilogue::RescaleRelu6,
                            ..
                        }
                    ) || in_len(0) != n
                    {
                        return Err(bad(
                            i,
                            "a fused step must read a linear layer with a ReLU epilogue".into(),
                        ));
                    }
                }
                StepKind::AddAligned => {
                    let from = &self.steps[s.inputs[0]].kind;
                    if !matches!(
                        from,
                        StepKind::Linear {
                            epilogue: Epilogue::Deferred,
                            ..
                        }
                    ) || self.steps[s.inputs[0]].shape != s.shape
                        || self.steps[s.inputs[1]].shape != s.shape
                    {
                        return Err(bad(i, "an aligned add must read a deferred linear layer and a same-shape value".into()));
                    }
                }
                StepKind::Add => {
                    if self.steps[s.inputs[0]].shape != s.shape
                        || self.steps[s.inputs[1]].shape != s.shape
                    {
                        return Err(bad(i, "add operands differ in shape".into()));
                    }
                }
                StepKind::MaxPool { .. } | StepKind::AvgPool { .. } | StepKind::GlobalAvgPool => {
                    let is = &self.steps[s.inputs[0]].shape;
                    if is.len() != 4 || s.shape.len() != 4 || is[..2] != s.shape[..2] {
                        return Err(bad(
                            i,
                            "pooling needs NCHW input and output with equal N, C".into(),
                        ));
                    }
                    let window = match &s.kind {
                        StepKind::MaxPool {
                            kernel,
                            stride,
                            pads,
                        }
                        | StepKind::AvgPool {
                            kernel,
                            stride,
                            pads,
                            ..
                        } => Some((kernel, stride, pads)),
                        _ => None,
                    };
                    let ok = match window {
                        // Output size (H + pad_top + pad_bottom − k) / stride + 1 per axis, with
                        // every window overlapping the unpadded input.
                        Some((k, st, p)) => (0..2).all(|a| {
                            let padded = is[2 + a] + p[a] + p[a + 2];
                            k[a] >= 1
                                && st[a] >= 1
                                && k[a] <= padded
                                && p[a] < k[a]
                                && p[a + 2] < k[a]
                                && (padded - k[a]) / st[a] + 1 == s.shape[2 + a]
                        }),
                        None => s.shape[2] == 1 && s.shape[3] == 1,
                    };
                    if !ok {
                        return Err(bad(i, "pooling window does not match the shapes".into()));
                    }
                }
                StepKind::Slice { starts, steps } => {
                    let is = &self.steps[s.inputs[0]].shape;
                    let ok = starts.len() == is.len()
                        && steps.len() == is.len()
                        && s.shape.len() == is.len()
                        && (0..is.len()).all(|a| {
                            steps[a] > 0
                                && s.shape[a] > 0
                                && starts[a]
                                    .checked_add((s.shape[a] - 1).saturating_mul(steps[a]))
                                    .is_some_and(|last| last < is[a])
                        });
                    if !ok {
                        return Err(bad(i, "slice out of bounds".into()));
                    }
                }
                StepKind::Pad { before, after } => {
                    let is = &self.steps[s.inputs[0]].shape;
                    let ok = before.len() == is.len()
                        && after.len() == is.len()
                        && s.shape.len() == is.len()
                        && (0..is.len()).all(|a| {
                            is[a]
                                .checked_add(before[a])
                                .and_then(|v| v.checked_add(after[a]))
                                == Some(s.shape[a])
                        });
                    if !ok {
                        return Err(bad(i, "pad does not match shapes".into()));
                    }
                }
                StepKind::Concat { axis } => {
                    let ok = *axis < s.shape.len()
                        && s.inputs.iter().all(|&j| {
                            let js = &self.steps[j].shape;
                            js.len() == s.shape.len()
                                && (0..js.len()).all(|a| a == *axis || js[a] == s.shape[a])
                        })
                        && s.inputs
                            .iter()
                            .map(|&j| self.steps[j].shape[*axis])
                            .sum::<usize>()
                            == s.shape[*axis];
                    if !ok {
                        return Err(bad(i, "concat shapes do not add up".into()));
                    }
                }
                StepKind::Input | StepKind::Constant => {}
                StepKind::Gelu { .. } | StepKind::Softmax { .. } | StepKind::LayerNorm { .. } => {
                    if in_len(0) != n {
                        return Err(bad(i, "element count changes".into()));
                    }
                    let f = match s.kind {
                        StepKind::Gelu { .. } => nn::approx::Function::Gelu,
                        StepKind::Softmax { .. } => nn::approx::Function::Softmax,
                        _ => nn::approx::Function::LayerNorm,
                    };
                    let d = *s.shape.last().unwrap_or(&0);
                    if let Some(why) = f.unsupported(self.scale, self.ell, d) {
                        return Err(bad(i, format!("{}: {why}", s.op)));
                    }
                    if let StepKind::LayerNorm { epsilon, .. } = s.kind {
                        if !(0.0..1.0).contains(&epsilon) {
                            return Err(bad(
                                i,
                                format!("LayerNorm epsilon {epsilon} outside [0, 1)"),
                            ));
                        }
                    }
                }
                StepKind::Transpose { perm } => {
                    let is = &self.steps[s.inputs[0]].shape;
                    let mut seen = vec![false; is.len()];
                    let ok = perm.len() == is.len()
                        && s.shape.len() == is.len()
                        && perm
                            .iter()
                            .all(|&p| p < is.len() && !std::mem::replace(&mut seen[p], true))
                        && (0..is.len()).all(|a| s.shape[a] == is[perm[a]]);
                    if !ok {
                        return Err(bad(i, "transpose does not permute the shape".into()));
                    }
                }
                StepKind::SharedMatMul {
                    batch,
                    m,
                    k,
                    n: cols,
                    left,
                    right,
                    choice,
                    ..
                } => {
                    if !matches!(choice, LinearChoice::Cheetah(_) | LinearChoice::Falcon(_)) {
                        return Err(bad(i, "a shared product runs by cheetah or falcon".into()));
                    }
                    if matches!(s.kind, StepKind::SharedMatMul { deferred: true, .. })
                        && !self.read_unrounded_by_softmax(i)
                    {
                        return Err(bad(
                            i,
                            "a deferred product must be read by one softmax alone".into(),
                        ));
                    }
                    left.validate()?;
                    right.validate()?;
                    let ok = in_len(0) == batch * m * k
                        && in_len(1) == batch * k * cols
                        && n == batch * m * cols
                        && *left == LayerSpec::batched_matmul(*batch, *cols, *k, *m, self.ell)
                        && *right == LayerSpec::batched_matmul(*batch, *m, *k, *cols, self.ell);
                    if !ok {
                        return Err(bad(i, "shared matmul shapes do not match".into()));
                    }
                }
            }
        }
        Ok(())
    }

    /// Predicted peak memory of one server session of this plan, in bytes: what a server adds to
    /// its idle footprint while it runs the session (the admission check of
    /// `ServerConfig::memory_budget`). From the plan alone:
    /// * silent-OT buffers: 16 bytes per COT at the most COTs held at once in each direction
    ///   (the run's prefetch schedule, `run::peak_cot_buffer`), twice that in a direction that
    ///   refills during the run (consumed chunks are kept for reuse while new ones are made),
    ///   plus the LPN state of both directions ([`SESSION_OT_SLACK`]);
    /// * the largest non-linear step: [`SESSION_STEP_FACTOR`] × 16 bytes per COT it uses (its
    ///   COTs served as a copy, and the OT messages derived from them), plus its messages twice;
    /// * the largest linear layer's HE working set: [`SESSION_HE_FACTOR`] times its wire bytes
    ///   (ciphertexts expand from their compact wire form to 8-byte RNS words; the encoded
    ///   weights, products and packing keys sit beside them);
    /// * every step's output shares (8 bytes per element), and [`SESSION_BASE`].
    ///
    /// The constants are upper bounds calibrated against measured peaks of five models, from a
    /// tiny CNN to ResNet-18 (64×64): predicted is 1.2–2.0× measured (BENCHMARKS.md § Serving).
    /// A plan whose costs cannot be computed predicts `u64::MAX`, which no budget admits.
    pub fn predicted_session_memory(&self, reveal_label: bool) -> u64 {
        let Ok(costs) = self.nonlinear_costs(reveal_label) else {
            return u64::MAX;
        };
        let need: Vec<(usize, usize)> = costs.iter().map(|c| c.cots_for(mpc::Party::P0)).collect();
        let (ps, pr) = crate::run::peak_cot_buffer(&need);
        let (ts, tr) = need.iter().fold((0, 0), |(a, b), &(s, r)| (a + s, b + r));
        let held = |peak: usize, total: usize| if total > peak { 2 * peak } else { peak } as u64;
        let step_cots = need.iter().map(|&(a, b)| a + b).max().unwrap_or(0) as u64;
        let ot = 16 * (held(ps, ts) + held(pr, tr)) + SESSION_OT_SLACK;
        let step = SESSION_STEP_FACTOR * 16 * step_cots
            + 2 * costs.iter().map(|c| c.bits / 8).max().unwrap_or(0);
        let Ok(ring) = linear::Ring::new(self.ell) else {
            return u64::MAX;
        };
        // A protocol that holds more than its wire bytes suggest (the SIMD family's rotated input
        // copies and accumulators) says so in `working_set_bytes`.
        let he = self
            .steps
            .iter()
            .filter_map(|s| match &s.kind {
                StepKind::Linear {
                    cost,
                    choice,
                    layer,
                    ..
                } => Some(
                    (cost.bytes() * SESSION_HE_FACTOR).max(
                        choice
                            .protocol()
                            .working_set_bytes(layer, ring)
                            .unwrap_or(u64::MAX),
                    ),
                ),
                StepKind::SharedMatMul { cost, .. } => Some(cost.bytes() * SESSION_HE_FACTOR),
                _ => None,
            })
            .max()
            .unwrap_or(0);
        let shares: u64 = self
            .steps
            .iter()
            .map(|s| 8 * s.shape.iter().product::<usize>() as u64)
            .sum();
        SESSION_BASE + ot + step + he + shares
    }

    /// Predicted communication of all linear layers (the non-linear layers are measured).
    pub fn predicted_linear_cost(&self) -> Cost {
        self.steps
            .iter()
            .filter_map(|s| match &s.kind {
                StepKind::Linear { cost, .. } | StepKind::SharedMatMul { cost, .. } => Some(*cost),
                _ => None,
            })
            .fold(Cost::default(), |a, c| a + c)
    }

    /// Exact cost of all non-linear protocols a run of this plan executes (rescales, ReLUs,
    /// pools; the final argmax when only the label is revealed), from `mpc::cost`: its COT counts
    /// are what the run consumes in each direction.
    pub fn predicted_nonlinear_cost(
        &self,
        reveal_label: bool,
    ) -> Result<mpc::cost::Cost, EngineError> {
        Ok(self
            .nonlinear_costs(reveal_label)?
            .into_iter()
            .fold(mpc::cost::Cost::default(), |a, c| a + c))
    }

    /// Extra power of two (Winograd's 2^e, `LinearProtocol::output_shift`) in the value step
    /// `i` produces before its rescale: a linear step's, passed on by an `AddAligned` step from
    /// its first input; 0 for everything else.
    pub fn extra_bits(&self, i: usize) -> u32 {
        match &self.steps[i].kind {
            StepKind::Linear { choice, layer, .. } => choice.protocol().output_shift(layer),
            StepKind::AddAligned => self.extra_bits(self.steps[i].inputs[0]),
            _ => 0,
        }
    }

    /// [`Plan::predicted_nonlinear_cost`] per step, plus one last entry for the output (the
    /// argmax when only the label is revealed). A run uses these to generate each step's COTs
    /// ahead of it, exactly.
    pub fn nonlinear_costs(&self, reveal_label: bool) -> Result<Vec<mpc::cost::Cost>, EngineError> {
        use mpc::cost;
        let ring = mpc::Ring::new(self.ell)?;
        let mut out = Vec::with_capacity(self.steps.len() + 1);
        for (i, step) in self.steps.iter().enumerate() {
            let n: usize = step.shape.iter().product();
            // The rescale's shift: s, plus Winograd's 2^e where the value carries it.
            let s = self.scale
                + match step.kind {
                    StepKind::TruncRelu => self.extra_bits(step.inputs[0]),
                    _ => self.extra_bits(i),
                };
            let c = match &step.kind {
                StepKind::Linear {
                    epilogue,
                    choice,
                    layer,
                    cost: lcost,
                } => {
                    // An OT-based protocol's COTs, the server (P0) sending.
                    let ot = cost::Cost {
                        cots_p0_sends: lcost.cots,
                        ..cost::Cost::default()
                    };
                    let lring = linear::Ring::new(self.ell)?;
                    let convert = match choice.protocol().share_modulus(layer, lring)? {
                        Some(t) => {
                            cost::ring_to_field_in_range(
                                ring,
                                64 - t.leading_zeros(),
                                layer.input_len(),
                            ) + cost::field_to_ring_in_range(ring, layer.output_len())
                        }
                        None => cost::Cost::default(),
                    };
                    ot + convert
                        + match epilogue {
                            Epilogue::Normalized => {
                                let (ln, n_in) = self.fused_norm(i)?;
                                let spec = crate::approx::layernorm_spec(
                                    &ln,
                                    self.layernorm_tail(n),
                                    self.layernorm_chooser(step.inputs[0]),
                                );
                                cost::layernorm_linear(
                                    &spec,
                                    self.ell,
                                    n_in,
                                    layer.output_len() / (n_in / ln.d),
                                )?
                            }
                            Epilogue::Rescale => self.rescale_cost(ring, s, n, Party::P0),
                            Epilogue::RescaleRelu => cost::trunc_relu_p0_chooses(ring, s, n),
                            Epilogue::RescaleRelu6 => cost::trunc_relu6(ring, s, n),
                            Epilogue::Deferred => cost::Cost::default(),
                        }
                }
                StepKind::TruncRelu => cost::trunc_relu_p0_chooses(ring, s, n),
                StepKind::SharedMatMul {
                    normalized: true,
                    k,
                    n: cols,
                    ..
                } => {
                    let sm = nn::approx::Softmax::new(self.scale);
                    let n_in: usize = self.steps[step.inputs[0]].shape.iter().product();
                    let extra = self.softmax_extra(step.inputs[0]);
                    let spec = crate::approx::softmax_spec(&sm, self.softmax_wide(n_in), extra);
                    cost::softmax_matmul(&spec, self.ell, n_in, *k, *cols)?
                }
                StepKind::SharedMatMul { deferred: true, .. } => cost::Cost::default(),
                StepKind::SharedMatMul { .. } => self.rescale_cost(ring, s, n, Party::P0),
                StepKind::Softmax { into_matmul: true } => cost::Cost::default(),
                StepKind::Gelu { signed } => {
                    let g = nn::approx::Gelu::new(self.scale, gelu_form(*signed));
                    cost::gelu(
                        &crate::approx::gelu_spec(&g, self.gelu_chooser(i)),
                        self.ell,
                        n,
                    )?
                }
                StepKind::Softmax { .. } => {
                    let t = nn::approx::Softmax::new(self.scale);
                    let row = *step.shape.last().unwrap_or(&1);
                    let spec = crate::approx::softmax_spec(
                        &t,
                        self.softmax_wide(n),
                        self.softmax_extra(i),
                    );
                    cost::softmax(&spec, self.ell, n, row)?
                }
                StepKind::LayerNorm {
                    into_linear: true, ..
                } => cost::Cost::default(),
                StepKind::LayerNorm { epsilon, .. } => {
                    let d = *step.shape.last().unwrap_or(&1);
                    let l = nn::approx::LayerNorm::new(self.scale, self.ell, d, *epsilon);
                    let spec = crate::approx::layernorm_spec(
                        &l,
                        self.layernorm_tail(n),
                        self.layernorm_chooser(i),
                    );
                    cost::layernorm(&spec, self.ell, n)?
                }
                StepKind::Relu => cost::relu(ring, n),
                StepKind::Relu6 => cost::relu6(ring, n),
                StepKind::AvgPool { .. } | StepKind::GlobalAvgPool => {
                    self.rescale_cost(ring, s, n, Party::P1)
                }
                StepKind::MaxPool {
                    kernel,
                    stride,
                    pads,
                } => {
                    let is = &self.steps[step.inputs[0]].shape;
                    let shape = mpc::PoolShape {
                        channels: is[0] * is[1],
                        height: is[2],
                        width: is[3],
                    };
                    let spec = mpc::PoolSpec {
                        kernel: (kernel[0], kernel[1]),
                        stride: (stride[0], stride[1]),
                        pads: (pads[0], pads[1], pads[2], pads[3]),
                    };
                    cost::max_windows(ring, spec.windows(&shape)?.iter().map(|w| w.len()))
                }
                _ => cost::Cost::default(),
            };
            out.push(c);
        }
        out.push(if reveal_label {
            let classes: usize = self.steps[self.output].shape.iter().product();
            cost::argmax(ring, 1, classes)
        } else {
            cost::Cost::default()
        });
        Ok(out)
    }

    /// Key material the linear layers need, exchanged once per session.
    pub fn key_requests(&self) -> Result<Vec<linear::KeyRequest>, EngineError> {
        let ring = linear::Ring::new(self.ell)?;
        let mut out = Vec::new();
        for s in &self.steps {
            match &s.kind {
                StepKind::Linear { choice, layer, .. } => {
                    out.extend(choice.protocol().keys_needed(layer, ring)?)
                }
                StepKind::SharedMatMul {
                    choice,
                    left,
                    right,
                    ..
                } => {
                    out.extend(choice.protocol().keys_needed(left, ring)?);
                    out.extend(choice.protocol().keys_needed(right, ring)?);
                }
                _ => {}
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The default planning configuration at another link.
    fn link(mbps: u64, rtt_us: u64) -> PlanConfig {
        let mut cfg = PlanConfig {
            rtt_us,
            ..PlanConfig::default()
        };
        cfg.cheetah.bandwidth_bytes_per_s = mbps * 1_000_000 / 8;
        cfg
    }

    /// LayerNorm → linear and softmax → product fusion is priced by the link (every pair of the
    /// tiny ViT with a round trip to save, only the head's without), and a client refuses a plan
    /// whose fused pairs do not fit together.
    #[test]
    fn fused_pairs_follow_the_link_and_validate() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../models/tiny/tiny_vit.onnx");
        let model = nn::load(path).unwrap();
        let pairs: Vec<usize> = (0..model.nodes.len())
            .filter(|&k| {
                model.norm_before(k).is_some()
                    || model.softmax_before(k).is_some()
                    || model.product_before_softmax(k).is_some()
                    || matches!(model.nodes[k].op, nn::Op::Gelu)
            })
            .collect();
        assert!(pairs.len() >= 6, "{pairs:?}");
        assert_eq!(fused_pairs(&model, &PlanConfig::default()).unwrap(), pairs);
        let lan0 = fused_pairs(&model, &link(3000, 0)).unwrap();
        assert_eq!(
            lan0,
            [*pairs.last().unwrap()],
            "only the head without delay"
        );
        let plan = Plan::compile(&model, &PlanConfig::default()).unwrap();
        assert_eq!(plan.fused_pairs(), pairs);
        let back: Plan = serde_json::from_str(&serde_json::to_string(&plan).unwrap()).unwrap();
        back.validate().unwrap();
        let (lin, ln) = (pairs[0], model.norm_before(pairs[0]).unwrap());
        let prod = *pairs
            .iter()
            .find(|&&k| model.softmax_before(k).is_some())
            .unwrap();
        let sm = model.softmax_before(prod).unwrap();
        // Q·Kᵀ left unrounded for the softmax: its value read by something else, or the
        // softmax's, is refused.
        let qk = model.product_before_softmax(sm).unwrap();
        assert!(matches!(
            plan.steps[qk].kind,
            StepKind::SharedMatMul { deferred: true, .. }
        ));
        assert_eq!(plan.softmax_extra(sm), plan.scale);
        let mut bad = plan.clone();
        bad.steps[prod].inputs[1] = qk;
        assert!(bad.validate().is_err());
        let mut bad = plan.clone();
        if let StepKind::SharedMatMul { deferred, .. } = &mut bad.steps[prod].kind {
            *deferred = true;
        }
        assert!(bad.validate().is_err());
        // A softmax computed alone while its product still expects to compute it, and the
        // reverse.
        let mut bad = plan.clone();
        bad.steps[sm].kind = StepKind::Softmax { into_matmul: false };
        assert!(bad.validate().is_err());
        let mut bad = plan.clone();
        if let StepKind::SharedMatMul { normalized, .. } = &mut bad.steps[prod].kind {
            *normalized = false;
        }
        assert!(bad.validate().is_err());
        // The LayerNorm computed alone while its reader still expects to compute it.
        let mut bad = plan.clone();
        if let StepKind::LayerNorm { into_linear, .. } = &mut bad.steps[ln].kind {
            *into_linear = false;
        }
        assert!(bad.validate().is_err());
        // A LayerNorm that passes its input on to a reader that does not normalize.
        let mut bad = plan.clone();
        if let StepKind::Linear { epilogue, .. } = &mut bad.steps[lin].kind {
            *epilogue = Epilogue::Rescale;
        }
        assert!(bad.validate().is_err());
    }

    /// A client-side check of a tampered transformer plan never panics: every step's fusion
    /// flags toggled and its first input redirected, one at a time; where the plan still
    /// validates, its key requests, costs and memory prediction are computed (the stable twin
    /// of the `server_hello` fuzz target for the fused kinds).
    #[test]
    fn tampered_fused_plans_never_panic() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../models/tiny/tiny_vit.onnx");
        let model = nn::load(path).unwrap();
        let plan = Plan::compile(&model, &PlanConfig::default()).unwrap();
        let check = |p: &Plan| {
            if p.validate().is_ok() {
                let _ = p.key_requests();
                let _ = p.nonlinear_costs(true);
                let _ = p.predicted_session_memory(false);
            }
        };
        for i in 1..plan.steps.len() {
            let mut p = plan.clone();
            match &mut p.steps[i].kind {
                StepKind::LayerNorm { into_linear, .. } => *into_linear = !*into_linear,
                StepKind::Softmax { into_matmul } => *into_matmul = !*into_matmul,
                StepKind::SharedMatMul {
                    normalized,
                    deferred,
                    ..
                } => {
                    *normalized ^= i % 2 == 0;
                    *deferred ^= i % 2 == 1;
                }
                StepKind::Linear { epilogue, .. } => {
                    *epilogue = match epilogue {
                        Epilogue::Normalized => Epilogue::Rescale,
                        _ => Epilogue::Normalized,
                    }
                }
                _ => {}
            }
            check(&p);
            for j in 0..i {
                let mut p = p.clone();
                if let Some(x) = p.steps[i].inputs.first_mut() {
                    *x = j;
                }
                check(&p);
            }
        }
    }

    /// The flat rescale's threshold: the two half round trips it saves against its 241 extra
    /// bits per element (ℓ = 37, s = 12), at the planner's link.
    #[test]
    fn flat_rescale_threshold_prices_the_link() {
        let at = |mbps, rtt_us| flat_rescale_max(&link(mbps, rtt_us)).unwrap();
        // WAN (the default): 2 hops × 20 ms × 400 Mbit/s / 241 bits.
        assert_eq!(at(400, 40_000), 66_390);
        assert_eq!(flat_rescale_max(&PlanConfig::default()).unwrap(), 66_390);
        // LAN: 2 × 0.15 ms × 3 Gbit/s / 241.
        assert_eq!(at(3000, 300), 3_734);
        assert_eq!(at(3000, 0), 0);
    }

    /// Softmax's wide tables and LayerNorm's flat tail: their extra bits against the flights
    /// they save, at the planner's link.
    #[test]
    fn latency_forms_price_the_link() {
        let at = |mbps, rtt_us| softmax_wide_max(&link(mbps, rtt_us)).unwrap();
        // The tables' 12 more bits per entry: (31 + 63)·12 = 1,128 bits per element, less the
        // extension's 2·(26 − 14 + 1) bits and 2 COTs' worth it no longer sends.
        let t = nn::approx::Softmax::new(12);
        let bits = |w| {
            mpc::cost::softmax(&crate::approx::softmax_spec(&t, w, 0), 37, 1, 1)
                .unwrap()
                .bits
        };
        let extra = bits(true) - bits(false);
        assert_eq!(extra, 1_128 - 2 * 13);
        // WAN (the default): 2 hops × 20 ms × 400 Mbit/s / extra; the CIFAR ViT's softmax
        // (1,156 elements) is wide, the ViT-Lite's (16,900) is not.
        let wan = at(400, 40_000);
        assert_eq!(wan, (0.04 * 400e6 / extra as f64) as usize);
        assert!((1_156..16_900).contains(&wan));
        // LAN: 2 × 0.15 ms × 3 Gbit/s / extra: not even the CIFAR ViT's.
        assert!(at(3000, 300) < 1_156);
        assert_eq!(at(3000, 0), 0);
        // LayerNorm's flat tail: every LayerNorm of the CIFAR ViT (17 × 64) and of the ViT-Lite
        // (65 × 256) at the default link; on a LAN, not the latter.
        let ln = layernorm_flat_max(&PlanConfig::default()).unwrap();
        assert!(ln >= 65 * 256, "{ln}");
        assert!(layernorm_flat_max(&link(3000, 300)).unwrap() < 65 * 256);
    }
}
