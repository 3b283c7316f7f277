//! Cheetah's linear layers (Huang et al., USENIX Security 2022, §4) on additive shares over
//! Z_{2^ℓ}: coefficient-encoded HomConv / HomFC / element-wise scale, BFV-style RLWE with t = 2^ℓ.
//!
//! One execution, for shares x = x_C + x_S and the server's W, b:
//! 1. Client: for each input polynomial x̂_C,i (encoding of its share) sends
//!    c₀ = −a_i·s + e + ⌊Q·x̂_C,i/t⌉ with a_i expanded from a 32-byte seed (sent once).
//! 2. Server: adds ⌊Q·x̂_S,i/t⌉ to c₀ (now an encryption of x̂_i), computes each output polynomial
//!    Σ_i ct_i·ŵ_{o,i} in NTT form, re-randomizes with a public-key encryption of zero, adds the
//!    mask ⌊Q·r/t⌉ and Gaussian flooding noise on the output coefficients, switches the modulus
//!    down the RNS chain and then to 2^k, and returns c₁ in full and only the output coefficients
//!    of c₀ (all bit-packed at k bits).
//! 3. Client decrypts the output coefficients: its share is W·x + r; the server's is b − r.
//!
//! Packed responses (on the key-switching set): G output polynomials whose outputs sit at
//! multiples of G are merged into one before re-randomization (`Packer`), so G − 1 key switches
//! replace G − 1 returned ciphertexts. The planner ([`Cheetah::plan`]) chooses parameters,
//! encoding and G per layer by estimated time ([`estimated_seconds`]).
//!
//! Truncated queries ([`CheetahConfig::truncate_query`]): output polynomial o returns only its
//! coefficients K_o, and coefficient k of c₀,i·ŵ_{o,i} in Z_Q[X]/(X^N + 1) is
//! Σ_p ±c₀,i[p]·ŵ_{o,i}[(k − p) mod N], so it reads c₀,i only at K_o ⊖ supp(ŵ_{o,i}). The client
//! sends c₀,i only at S_i = ∪_o K_o ⊖ supp(ŵ_{o,i}) ([`Layout::query_support`], from the
//! structural support of the encoder, never the weights' values); the server puts 0 elsewhere
//! (c₁ = a_i is complete, from the seed). Every product is then the same element of Z_Q at every
//! kept coefficient, so noise, mask, flooding and response are unchanged. Packing preserves
//! this: a merge R = (A + X^D·B) + σ(A − X^D·B) has R[i] = 2A[i] for i ≡ 0 and R[i] = 2B[i − D]
//! for i ≡ D (mod 2D) (σ fixes resp. negates those classes and the other term cancels), so a
//! kept c₀ coefficient of a packed response is a fixed linear function of kept c₀ coefficients
//! of its members (the key switch reads c₁ only); re-randomization adds terms independent of
//! the query, and the modulus switches act coefficient-wise.
//!
//! Bytes on the wire (both exact, see [`Cheetah::plan`] and [`layout_cost`]):
//! c→s `[tag][seed][c₀ of each input ct at its support S_i (all N untruncated), per prime packed
//! at the prime's width]`,
//! s→c `[c₁ (N values) of every returned ct, at k bits][kept c₀ values of every returned ct, at
//! b ≤ k bits]` (b: [`ResponseNoise::c0_bits`]; docs/security.md derives both).

pub mod conv;
pub mod fc;
pub mod layout;
pub mod noise;
pub mod params;
pub mod polyphase;
pub mod query;

use std::sync::Arc;

use math::sample::uniform_poly;
use math::{Poly, Representation, RnsContext};
use rand_chacha::ChaCha20Rng;
use rand_core::{CryptoRngCore, SeedableRng};
use rayon::prelude::*;
use transport::Channel;

use crate::keys::{ClientKeys, KeyRequest, ServerKeys};
use crate::layer::{via_matmul_conv, LayerShape, LayerSpec, LayerWeights, Ring};
use crate::protocol::{LinearProtocol, PendingAnswer};
use crate::{Cost, LinearError};
pub use layout::Layout;
use mpc::Session;
pub use noise::ResponseNoise;
pub use params::HeParamsId;

/// `LinearError::Length` unless `x` has `len` elements.
pub(crate) fn check_len(what: &'static str, x: &[u64], len: usize) -> Result<(), LinearError> {
    if x.len() != len {
        return Err(LinearError::Length {
            what,
            expected: len,
            got: x.len(),
        });
    }
    Ok(())
}

/// One 32-byte seed per response, drawn from `rng` in order: each response is then masked,
/// re-randomized and flooded from its own `ChaCha20Rng::from_seed` stream, so responses can be
/// computed in parallel and a seeded `rng` still fixes every one of them.
pub(crate) fn response_seeds(
    count: usize,
    rng: &mut dyn CryptoRngCore,
) -> Vec<zeroize::Zeroizing<[u8; 32]>> {
    (0..count)
        .map(|_| {
            let mut seed = zeroize::Zeroizing::new([0u8; 32]);
            rng.fill_bytes(&mut seed[..]);
            seed
        })
        .collect()
}

/// Largest share ring the presets can carry (t = 2^ℓ must leave room for flooding).
pub const MAX_PLAINTEXT_BITS: u32 = 45;

/// Tunable knobs of the Cheetah protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct CheetahConfig {
    /// Statistical security of noise flooding per layer response, in bits.
    pub flood_bits: u32,
    /// Restrict planning to one parameter set (None: choose the cheapest secure one).
    pub params: Option<HeParamsId>,
    /// Noise flooding of responses. Anything but [`Flooding::Gaussian`] leaks the weights.
    pub flooding: Flooding,
    /// Allow packed responses (false: Cheetah's own protocol, the comparison baseline).
    pub packing: bool,
    /// Send each kept c₀ value at b < k bits ([`ResponseNoise::c0_bits`]; false: at k bits,
    /// as Cheetah does).
    pub short_c0: bool,
    /// Drop low bits of the query's c₀ where the noise budget allows ([`query`]; false: send
    /// it in full, as Cheetah does).
    pub short_query: bool,
    /// Bandwidth assumed when ranking plans, bytes per second (default: WAN, 400 Mbit/s).
    /// A small value makes the planner trade compute (key switches) for bytes.
    pub bandwidth_bytes_per_s: u64,
    /// Strided convolutions by space-to-depth ([`polyphase`]): when the planner may run a
    /// stride-s conv as a stride-1 conv on its s² input phases.
    #[serde(default)]
    pub polyphase: Polyphase,
    /// Send the query's c₀ only at the coefficients some returned output depends on
    /// ([`Layout::query_support`]; false: all N coefficients of every input polynomial, as
    /// Cheetah does).
    #[serde(default = "default_true")]
    pub truncate_query: bool,
    /// What the server puts in c₀ outside the query's support (test hook; anything but
    /// [`OutsideSupport::Zero`] is for tests only).
    #[serde(default)]
    pub outside_support: OutsideSupport,
    /// Also plan grouped and depthwise convolutions (and scales) by dense packing
    /// ([`crate::falcon`]: several groups per input and several filters per weight polynomial),
    /// the fastest by estimated time kept. The `falcon` protocol is Cheetah with this set.
    #[serde(default)]
    pub dense: bool,
    /// With `dense`: the bytes a dense plan may send (a dense layout trades query bytes, k times
    /// its data, for products and key switches, see [`crate::falcon`]).
    #[serde(default)]
    pub dense_bytes: DenseBytes,
    /// Also plan block-circulant FC layers by several output blocks per product
    /// ([`crate::circulant::CircTiling`]); only correct for block-circulant weights, which the
    /// `circulant` protocol checks.
    #[serde(default)]
    pub circulant: bool,
}

/// The byte budget of a dense plan ([`CheetahConfig::dense_bytes`]).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum DenseBytes {
    /// Whatever the estimated time ([`estimated_seconds`] at the configured bandwidth) favours.
    #[default]
    Free,
    /// No more than the plan without dense layouts sends on the same layer (none fits: no dense
    /// plan).
    AtMostCheetah,
    /// The dense layers of a whole plan together no more than their plans without dense layouts:
    /// the planner of the network (`engine`, `privinfer bench linear`) lowers the bandwidth of
    /// those layers until they fit (`falcon::bandwidth_at_cheetah_bytes`); per layer this plans as
    /// [`DenseBytes::Free`] at that bandwidth.
    AtMostCheetahTotal,
}

fn default_true() -> bool {
    true
}

/// The server's fill of the query's c₀ outside the sent support S_i. No returned coefficient
/// depends on those positions, so any fill gives the same response; the test variants show it
/// (random fill: still exact) and that S_i is needed (one position of S_i replaced: not exact).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum OutsideSupport {
    /// Zeros (the protocol).
    #[default]
    Zero,
    /// Uniform values mod Q from a ChaCha20 stream seeded with `seed`. Tests only.
    RandomForTests { seed: u64 },
    /// As `RandomForTests`, and also a uniform value in place of the received one at the
    /// `nth` position of S_poly (input polynomial `poly`). Tests only.
    RandomAndOneReplacedForTests { seed: u64, poly: usize, nth: usize },
}

/// When a strided convolution runs as the stride-1 convolution of its input phases
/// ([`polyphase`]). Both parties derive the choice from the public layer shape and config.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum Polyphase {
    /// When its estimated time ([`estimated_seconds`]) is lower than the direct plan's.
    #[default]
    Auto,
    /// Never (Cheetah as published: all stride-1 outputs computed, 1 in s² kept).
    Off,
    /// Always, for every conv with stride > 1.
    Force,
}

impl CheetahConfig {
    /// Cheetah as published: no packed responses.
    pub fn unpacked() -> CheetahConfig {
        CheetahConfig {
            packing: false,
            short_c0: false,
            short_query: false,
            polyphase: Polyphase::Off,
            truncate_query: false,
            ..CheetahConfig::default()
        }
    }
}

/// How the server re-randomizes the noise of its responses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Flooding {
    /// Gaussian flooding with `flood_bits` of statistical security (docs/security.md).
    Gaussian,
    /// No flooding: **insecure**, the response noise depends on the weights. Tests only (the
    /// circuit-privacy test uses it as the control that must be distinguishable).
    InsecureNoneForTests,
}

impl Default for CheetahConfig {
    fn default() -> Self {
        CheetahConfig {
            flood_bits: 40,
            params: None,
            flooding: Flooding::Gaussian,
            packing: true,
            short_c0: true,
            short_query: true,
            bandwidth_bytes_per_s: 50_000_000,
            polyphase: Polyphase::Auto,
            truncate_query: true,
            outside_support: OutsideSupport::Zero,
            dense: false,
            dense_bytes: DenseBytes::Free,
            circulant: false,
        }
    }
}

/// Everything decided for one layer before running it: public and deterministic.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CheetahPlan {
    pub params: HeParamsId,
    pub layout: Layout,
    /// Response polynomials packed per returned ciphertext (1: Cheetah's unpacked responses).
    pub pack: usize,
    pub noise: ResponseNoise,
    /// Low bits of each query coefficient the client does not send ([`query`]).
    pub query_drop_bits: u32,
    /// The query carries c₀ only at each input polynomial's support
    /// ([`Layout::query_support`]).
    #[serde(default)]
    pub truncated_query: bool,
    /// The stride-1 convolution actually run when a strided conv is computed by space-to-depth
    /// ([`polyphase`]); `layout`, `noise` and `cost` are then those of this layer.
    pub polyphase: Option<LayerSpec>,
    pub cost: Cost,
}

/// Cheetah's protocol with a given configuration.
#[derive(Clone, Copy, Debug, Default)]
pub struct Cheetah {
    pub config: CheetahConfig,
}

fn math_err(e: math::MathError) -> LinearError {
    LinearError::Math(e)
}

/// Predicted cost of running `layout` on `params` with response moduli `noise` (c₁ at k bits, c₀
/// at b bits), packing `pack` response polynomials per returned ciphertext (1: none); with
/// `truncated_query` the query carries |S_i| coefficients of input polynomial i
/// ([`Layout::query_support_lens`]), otherwise N.
pub fn layout_cost(
    params: HeParamsId,
    layout: &Layout,
    noise: &ResponseNoise,
    query_drop_bits: u32,
    pack: usize,
    truncated_query: bool,
) -> Result<Cost, LinearError> {
    let n = params.n() as u64;
    let l = params.prime_bits().len() as u64;
    let ins = layout.input_cts() as u64;
    let groups = layout.response_count(pack) as u64;
    // Every output is returned exactly once.
    let kept = layout.outputs() as u64;
    let products = layout.products() as u64;
    let weights = layout.used_weight_keys() as u64;
    // Packing: G − 1 merges (one key switch and two monomial products each) per returned
    // ciphertext; NTTs of the monomials X^D.
    let (ks, pack_ntts, pack_mults) = if pack > 1 {
        // Σ over groups of (members − 1): every output polynomial is a member of one group.
        let merges = (layout.output_cts() - layout.response_count(pack)) as u64;
        (merges, pack.trailing_zeros() as u64 * l, 2 * merges)
    } else {
        (0, 0, 0)
    };
    Ok(Cost {
        ciphertexts_c2s: ins,
        ciphertexts_s2c: groups,
        bytes_c2s: 1 + 32 + query_body_bytes(params, layout, query_drop_bits, truncated_query)?,
        bytes_s2c: rlwe::compact_response_len(
            n as usize,
            groups as usize,
            kept as usize,
            noise.response_bits,
            noise.c0_bits,
        ) as u64,
        messages_c2s: 1,
        messages_s2c: 1,
        rounds: 1,
        // Two products (c₀ and c₁) per (input, weight) pair, two for re-randomization per returned
        // ciphertext, two per packed member (the monomial shift X^j in NTT form).
        ct_pt_mults: 2 * products + 2 * groups + pack_mults,
        // Client: one inverse NTT per prime per input (c₀ = INTT(−a·ŝ) + ...), forward and inverse
        // over two primes per returned ciphertext (c₁·s). Server: forward per input and per weight
        // plaintext, forward of u and two inverses per returned ciphertext, per prime; the NTT of
        // the monomials X^j when packing. Key switches are counted in `rotations`.
        ntts: ins * l + groups * 4 + ins * l + weights * l + groups * 3 * l + pack_ntts,
        rotations: ks,
        cots: 0,
    })
}

/// Bytes of the query after its tag and seed: Σ_i bytes(|S_i| coefficients) when truncated,
/// #in · bytes(N) otherwise ([`query::query_bytes`]).
fn query_body_bytes(
    params: HeParamsId,
    layout: &Layout,
    drop: u32,
    truncated: bool,
) -> Result<u64, LinearError> {
    if !truncated {
        return Ok(layout.input_cts() as u64 * query::query_poly_bytes(params, drop)? as u64);
    }
    let mut total = 0u64;
    for (c, mult) in layout.query_support_counts() {
        total += mult as u64 * query::query_bytes(params, drop, c)? as u64;
    }
    Ok(total)
}

/// A lower bound on the bytes of any protocol of this shape — a coefficient-encoded RLWE query
/// carrying every input once, 40-bit-style Gaussian flooding of every output as derived in
/// docs/security.md, a response carrying every output's c₀ — returned as (query, query +
/// responses' c₀). Per query coefficient: the query modulus must leave ℓ + 1 bits above the
/// flooded noise, B_tot ≥ 8.66·2^{λ−1}·√n·B_hide, while the noise hidden includes the query's own
/// rounding times ‖w‖₁ (≤ T·2^{weight_bits}), so bits(Q) − bits dropped ≥
/// λ + ℓ + log₂ 8.66 + ½·log₂ n + log₂ T + weight_bits. Each output needs ≥ ℓ + 1 bits of c₀.
/// The c₁ of the responses (≥ N·k bits each) is not counted, so the bound is not tight.
pub fn bytes_lower_bound(layer: &LayerSpec, ring: Ring, flood_bits: u32) -> (u64, u64) {
    let taps = match layer.shape {
        LayerShape::Fc(f) => f.inputs,
        LayerShape::MatMul(m) => m.inputs,
        LayerShape::Scale(_) => 1,
        LayerShape::Conv2d(c) => c.c_per_group() * c.kh * c.kw,
    } as f64;
    let n_out = layer.output_len() as f64;
    let bits_per_coef = (flood_bits + ring.bits()) as f64
        + noise::FLOOD_Z_MAX.log2()
        + 0.5 * n_out.log2()
        + taps.log2()
        + layer.weight_bits as f64;
    let query = 33 + (layer.input_len() as f64 * bits_per_coef / 8.0).ceil() as u64;
    let c0 = (n_out * (ring.bits() + 1) as f64 / 8.0).ceil() as u64;
    (query, query + c0)
}

/// Machine model used to rank plans: estimated seconds = bytes / bandwidth + compute. Compute
/// counts length-N NTTs over one prime, a hybrid key switch as [`key_switch_ntts`] such NTTs, and
/// a pointwise product as a quarter NTT. The "NTT" is an effective unit: the protocol's other
/// per-polynomial work (sampling, encoding, bit packing, allocation) scales with the NTT count and
/// is folded into it. Calibrated on the development machine (2-core AMD EPYC with AVX-512,
/// 2026-11-21, release build) with `cargo run --release --example plan_time -p privinfer-linear`,
/// which prints measured and estimated compute of the unpacked and packed plans of a layer. With
/// [`NTT_4096_SECONDS`] = 25 µs and 10 NTTs per key switch on N8192Q120P60 the estimated
/// packed/unpacked ratio matches the measured one within 7 % on ResNet-50 layer4.0.downsample
/// (1.21 vs 1.20), ResNet-18 layer4.0.conv2 (1.20 vs 1.13), ResNet-50 layer1.0.conv2 (1.00 vs
/// 0.98), ResNet-20 layer3.0.conv2 (1.02 vs 1.06) and layer1.0.conv1 (1.91 vs 2.0), and the
/// absolute estimate within ±30 % at load average 3, all with glibc's default malloc settings
/// (a bare NTT(4096) takes 5.3 µs in release, 37 µs in the dev profile with debug assertions; an
/// automorphism + key switch, `examples/ks_time`, 0.68 ms on N8192Q120P60 and 0.98 ms on
/// N8192Q180P38, or 0.26 ms and 0.41 ms when `math::alloc::retain_large_allocations` keeps freed
/// buffers in the heap, as `privinfer bench linear` does; the constants stay at the slower,
/// conservative values).
pub fn estimated_seconds(cost: &Cost, params: HeParamsId, bandwidth_bytes_per_s: f64) -> f64 {
    let n = params.n() as f64;
    let t_ntt = NTT_4096_SECONDS * (n / 4096.0) * (n.log2() / 12.0);
    cost.bytes() as f64 / bandwidth_bytes_per_s
        + cost.ntts as f64 * t_ntt
        + cost.rotations as f64 * key_switch_ntts(params) * t_ntt
        + cost.ct_pt_mults as f64 * t_ntt / 4.0
}

/// Seconds of one length-4096 NTT over one prime (effective unit, see [`estimated_seconds`]).
pub const NTT_4096_SECONDS: f64 = 25e-6;

/// One automorphism + hybrid key switch on a packing set, in effective NTTs of the same degree
/// (N8192Q120P60: ≈ 0.5 ms in the protocol with glibc's default malloc; N8192Q180P38: three
/// digits).
pub fn key_switch_ntts(params: HeParamsId) -> f64 {
    match params {
        HeParamsId::N8192Q120P60 => 10.0,
        _ => 30.0,
    }
}

impl Cheetah {
    pub fn new(config: CheetahConfig) -> Cheetah {
        Cheetah { config }
    }

    /// Whether `layer` is a token × weight product planned row by row ([`Layout::Rows`]) rather
    /// than as its 1×1 convolution.
    fn runs_rows(&self, layer: &LayerSpec, ring: Ring) -> Result<bool, LinearError> {
        Ok(matches!(layer.shape, LayerShape::MatMul(_))
            && matches!(self.plan(layer, ring)?.layout, Layout::Rows { .. }))
    }

    /// Chooses parameters, encoding and packing for a layer: among the secure presets where the
    /// flooded response still decrypts exactly, the candidate with the lowest estimated time
    /// ([`estimated_seconds`] at the configured bandwidth). With `packing` off this is Cheetah's
    /// own protocol (unpacked responses). A strided conv is also planned as the stride-1 conv of
    /// its input phases ([`polyphase`], per [`CheetahConfig::polyphase`]) and the faster of the two
    /// kept.
    pub fn plan(&self, layer: &LayerSpec, ring: Ring) -> Result<CheetahPlan, LinearError> {
        // Plans are a pure function of (config, layer, ring); both parties and the cost model
        // ask for the same ones repeatedly, so they are memoized (errors are not).
        type Key = (CheetahConfig, LayerSpec, Ring);
        static CACHE: std::sync::OnceLock<
            std::sync::Mutex<std::collections::HashMap<Key, CheetahPlan>>,
        > = std::sync::OnceLock::new();
        let key = (self.config, *layer, ring);
        let cache = CACHE.get_or_init(Default::default);
        if let Some(p) = cache.lock().expect("plan cache").get(&key) {
            return Ok(*p);
        }
        let plan = self.plan_uncached(layer, ring)?;
        cache.lock().expect("plan cache").insert(key, plan);
        Ok(plan)
    }

    fn plan_uncached(&self, layer: &LayerSpec, ring: Ring) -> Result<CheetahPlan, LinearError> {
        layer.validate()?;
        // A token × weight product runs row by row as FCs ([`Layout::Rows`]) or as its 1×1
        // convolution on the transposed input ([`LayerSpec::matmul_as_conv`]), the faster.
        if let Some(conv) = layer.matmul_as_conv() {
            let rows = self.plan_direct(layer, ring, None);
            let conv = self.plan(&conv, ring);
            let bw = self.config.bandwidth_bytes_per_s as f64;
            let score = |p: &CheetahPlan| estimated_seconds(&p.cost, p.params, bw);
            return match (rows, conv) {
                (Ok(r), Ok(c)) => Ok(if score(&r) <= score(&c) { r } else { c }),
                (Ok(r), Err(_)) => Ok(r),
                (Err(_), c) => c,
            };
        }
        let cap = match (self.config.dense, self.config.dense_bytes) {
            (true, DenseBytes::AtMostCheetah) => {
                let plain = Cheetah::new(CheetahConfig {
                    dense: false,
                    ..self.config
                });
                Some(plain.plan(layer, ring)?.cost.bytes())
            }
            _ => None,
        };
        let direct = self.plan_direct(layer, ring, cap);
        let rw = match (self.config.polyphase, polyphase::rewrite(layer)) {
            (Polyphase::Off, _) | (_, None) => return direct,
            (_, Some(rw)) => rw,
        };
        let via = self.plan_direct(&rw, ring, cap).map(|mut p| {
            p.polyphase = Some(rw);
            p
        });
        if self.config.polyphase == Polyphase::Force {
            return via;
        }
        let bw = self.config.bandwidth_bytes_per_s as f64;
        match (direct, via) {
            (Ok(d), Ok(v)) => {
                let score = |p: &CheetahPlan| estimated_seconds(&p.cost, p.params, bw);
                Ok(if score(&v) < score(&d) { v } else { d })
            }
            (Ok(d), Err(_)) => Ok(d),
            (Err(_), Ok(v)) => Ok(v),
            (Err(e), Err(_)) => Err(e),
        }
    }

    /// [`Cheetah::plan`] without the space-to-depth rewrite.
    /// With `cap`, candidates sending more bytes are skipped.
    fn plan_direct(
        &self,
        layer: &LayerSpec,
        ring: Ring,
        cap: Option<u64>,
    ) -> Result<CheetahPlan, LinearError> {
        layer.validate()?;
        if ring.bits() > MAX_PLAINTEXT_BITS {
            return Err(LinearError::PlaintextTooLarge {
                ell: ring.bits(),
                max: MAX_PLAINTEXT_BITS,
            });
        }
        let presets: Vec<HeParamsId> = match self.config.params {
            Some(p) => vec![p],
            None => HeParamsId::ALL.to_vec(),
        };
        let mut best: Option<(f64, CheetahPlan)> = None;
        let mut last_err = None;
        for p in presets {
            // (layout, pack) candidates: Cheetah's encodings unpacked; interleaved/shifted ones
            // packed by every power of two dividing their output stride.
            let trunc = self.config.truncate_query;
            let dense = if self.config.dense {
                Layout::dense_candidates(layer, p.n())
            } else {
                Vec::new()
            };
            let mut cands: Vec<(Layout, usize)> = Layout::candidates(layer, p.n())
                .into_iter()
                .filter(|l| trunc || !l.needs_truncation())
                .map(|l| (l, 1))
                .collect();
            let circ = if self.config.circulant {
                Layout::circ_candidates(layer, p.n())
            } else {
                Vec::new()
            };
            // Dense and block-circulant encodings, packed by every power of two dividing their
            // output stride.
            for l in dense.into_iter().chain(circ) {
                cands.push((l, 1));
                let mut g = 2;
                while p.can_pack() && self.config.packing && g <= l.output_stride() {
                    cands.push((l, g));
                    g *= 2;
                }
            }
            if trunc {
                // With truncated queries an interleaved tiling with c_t above the real channel
                // count costs no query bytes for its empty channels: a candidate even unpacked.
                cands.extend(
                    Layout::packable_candidates(layer, p.n())
                        .into_iter()
                        .map(|l| (l, 1)),
                );
            }
            if p.can_pack() && self.config.packing {
                for l in Layout::packable_candidates(layer, p.n()) {
                    let mut g = 2;
                    while g <= l.output_stride() {
                        cands.push((l, g));
                        g *= 2;
                    }
                }
            }
            // Per packing factor: the response noise and query drop, or why none fits.
            type NoiseFor = Result<(ResponseNoise, u32), ()>;
            let mut noise_by_pack: Vec<(usize, NoiseFor)> = Vec::new();
            for (layout, pack) in cands {
                let nz = match noise_by_pack.iter().find(|(g, _)| *g == pack) {
                    Some((_, r)) => *r,
                    None => {
                        let r = self
                            .response_noise(p, layer, ring, &layout, pack)
                            .map_err(|e| last_err = Some(e));
                        noise_by_pack.push((pack, r));
                        r
                    }
                };
                let Ok((nz, query_drop_bits)) = nz else {
                    continue;
                };
                let cost = layout_cost(p, &layout, &nz, query_drop_bits, pack, trunc)?;
                if cap.is_some_and(|c| cost.bytes() > c) {
                    continue;
                }
                let score = estimated_seconds(&cost, p, self.config.bandwidth_bytes_per_s as f64);
                if best.as_ref().is_none_or(|(b, _)| score < *b) {
                    best = Some((
                        score,
                        CheetahPlan {
                            params: p,
                            layout,
                            pack,
                            noise: nz,
                            query_drop_bits,
                            truncated_query: trunc,
                            polyphase: None,
                            cost,
                        },
                    ));
                }
            }
        }
        best.map(|(_, plan)| plan).ok_or_else(|| {
            last_err.unwrap_or(LinearError::BadShape {
                reason: "no encoding fits the ring degree",
            })
        })
    }

    /// The response noise of `layout` packed by `pack` on `p`, and the query bits to drop: the
    /// most that leave the response moduli k and b as they are without dropping
    /// ([`query::drop_error_bound`] enters the hidden input noise; the bound grows with the drop,
    /// so k and b are monotone in it and a bisection finds the largest).
    fn response_noise(
        &self,
        p: HeParamsId,
        layer: &LayerSpec,
        ring: Ring,
        layout: &Layout,
        pack: usize,
    ) -> Result<(ResponseNoise, u32), LinearError> {
        let at = |drop: u32| -> Result<ResponseNoise, LinearError> {
            let mut nz = noise::response_noise(
                p,
                &noise::NoiseInputs {
                    ell: ring.bits(),
                    weight_bits: layer.weight_bits,
                    taps: layout.taps(),
                    outputs: layer.output_len(),
                    flood_bits: self.config.flood_bits,
                    pack,
                    query_drop: query::drop_error_bound(p, drop)?,
                },
            )?;
            if !self.config.short_c0 {
                nz.c0_bits = nz.response_bits;
            }
            Ok(nz)
        };
        let base = at(0)?;
        if !self.config.short_query {
            return Ok((base, 0));
        }
        let same = |d: u32| {
            at(d).is_ok_and(|nz| {
                nz.response_bits == base.response_bits && nz.c0_bits == base.c0_bits
            })
        };
        let (mut lo, mut hi) = (0u32, query::max_drop_bits(p));
        if same(hi) {
            lo = hi;
        }
        while hi - lo > 1 {
            let mid = (lo + hi) / 2;
            if same(mid) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        Ok((at(lo)?, lo))
    }

    /// The client's half, also returning the noise of each decrypted output at modulus 2^k (its
    /// own view of the response; used by the circuit-privacy test and noise measurements).
    pub fn client_with_noise(
        &self,
        layer: &LayerSpec,
        ring: Ring,
        keys: &ClientKeys,
        x: &[u64],
        ch: &mut dyn Channel,
        rng: &mut dyn CryptoRngCore,
    ) -> Result<(Vec<u64>, Vec<i64>), LinearError> {
        let plan = self.plan(layer, ring)?;
        if let Some(rw) = plan.polyphase {
            // [space-to-depth] the client rewrites its own share; the rewritten layer's plan is
            // `plan` (stride 1, so planned directly).
            check_len("client input share", x, layer.input_len())?;
            let xr = rewrite_share(layer, &rw, x);
            return self.client_with_noise(&rw, ring, keys, &xr, ch, rng);
        }
        let msg = self.query(layer, ring, keys, x, rng)?;
        ch.send(&msg)?;
        ch.flush()?;
        self.answer(layer, ring, keys, &ch.recv()?)
    }

    /// The client's query for `layer` (planned without a polyphase rewrite): validates its share
    /// and encrypts it.
    fn query(
        &self,
        layer: &LayerSpec,
        ring: Ring,
        keys: &ClientKeys,
        x: &[u64],
        rng: &mut dyn CryptoRngCore,
    ) -> Result<Vec<u8>, LinearError> {
        let plan = self.plan(layer, ring)?;
        debug_assert!(plan.polyphase.is_none());
        if x.len() != layer.input_len() {
            return Err(LinearError::Length {
                what: "client input share",
                expected: layer.input_len(),
                got: x.len(),
            });
        }
        ring.check("client input share", x)?;
        let sk = keys.get(plan.params, ring.bits())?;
        let msg = encrypt_query(&plan, sk, x, rng)?;
        debug_assert_eq!(msg.len() as u64, plan.cost.bytes_c2s);
        Ok(msg)
    }

    /// The client's output share (and noise) from the server's response `resp` to its query for
    /// `layer` (planned without a polyphase rewrite).
    fn answer(
        &self,
        layer: &LayerSpec,
        ring: Ring,
        keys: &ClientKeys,
        resp: &[u8],
    ) -> Result<(Vec<u64>, Vec<i64>), LinearError> {
        let plan = self.plan(layer, ring)?;
        let sk = keys.get(plan.params, ring.bits())?;
        let n = plan.params.context()?.n();
        let layout = plan.layout;
        // Response: c₁ (N values) of every returned ct at k bits, then their kept c₀ values at
        // b bits (`rlwe::compact`).
        let (k, b) = (plan.noise.response_bits, plan.noise.c0_bits);
        let responses = responses(&layout, plan.pack);
        let kept_total: usize = responses.iter().map(|r| r.1.len()).sum();
        let expected = rlwe::compact_response_len(n, responses.len(), kept_total, k, b);
        if resp.len() != expected {
            return Err(LinearError::MessageLength {
                what: "linear response",
                expected,
                got: resp.len(),
            });
        }
        let coefs: Vec<Vec<usize>> = responses
            .iter()
            .map(|(_, pos)| pos.iter().map(|&(c, _)| c).collect())
            .collect();
        let cts = rlwe::compact::read_compact_responses(resp, n, k, b, &coefs).map_err(|_| {
            LinearError::MessageRange {
                what: "linear response",
            }
        })?;
        let mut y = vec![0u64; layer.output_len()];
        let mut noise = vec![0i64; layer.output_len()];
        let plain: Vec<_> = cts.par_iter().map(|ct| ct.decrypt_with_noise(sk)).collect();
        for (dec, (_, pos)) in plain.into_iter().zip(&responses) {
            let (m, e) = dec?;
            for ((&(_, out), m), e) in pos.iter().zip(m).zip(e) {
                y[out] = m;
                noise[out] = e;
            }
        }
        Ok((y, noise))
    }

    /// The layer and client share a call runs as: a token × weight product planned as its 1×1
    /// convolution on the transposed share, a strided conv planned as its polyphase rewrite; with
    /// the (rows, outputs) to transpose the output share back in the first case.
    fn direct(&self, layer: &LayerSpec, ring: Ring, x: &[u64]) -> Result<Direct, LinearError> {
        check_len("client input share", x, layer.input_len())?;
        if let (LayerShape::MatMul(m), false) = (layer.shape, self.runs_rows(layer, ring)?) {
            if let Some(conv) = layer.matmul_as_conv() {
                let xt = crate::layer::transpose(x, m.rows, m.inputs);
                let (l, x, _) = self.direct(&conv, ring, &xt)?;
                return Ok((l, x, Some((m.outputs, m.rows))));
            }
        }
        match self.plan(layer, ring)?.polyphase {
            Some(rw) => {
                let xr = rewrite_share(layer, &rw, x);
                self.direct(&rw, ring, &xr)
            }
            None => Ok((*layer, x.to_vec(), None)),
        }
    }

    /// [`LinearProtocol::client_batch`] for Cheetah (and the protocols that run on it): every
    /// query, then every answer.
    pub(crate) fn client_batch_direct(
        &self,
        calls: &[(&LayerSpec, &[u64])],
        ring: Ring,
        keys: &ClientKeys,
        ch: &mut dyn Channel,
        rng: &mut dyn CryptoRngCore,
    ) -> Result<Vec<Vec<u64>>, LinearError> {
        let pending = calls
            .iter()
            .map(|(l, x)| self.client_send(l, ring, keys, x, ch, rng))
            .collect::<Result<Vec<_>, _>>()?;
        ch.flush()?;
        pending
            .into_iter()
            .map(|p| self.client_receive(p, ring, keys, ch))
            .collect()
    }
}

/// A call as it runs: the layer, the client's share, and the (rows, columns) to transpose the
/// output share back (a token × weight product run as its 1×1 convolution).
type Direct = (LayerSpec, Vec<u64>, Option<(usize, usize)>);

/// One party's share of the input of `rw` (the space-to-depth rewrite of the conv `layer`).
fn rewrite_share(layer: &LayerSpec, rw: &LayerSpec, x: &[u64]) -> Vec<u64> {
    match (layer.shape, rw.shape) {
        (LayerShape::Conv2d(c), LayerShape::Conv2d(r)) => polyphase::rewrite_input(&c, &r, x),
        _ => unreachable!("polyphase plans only rewrite convolutions"),
    }
}

/// The client's query: `[tag][seed][c₀ of each input polynomial]` with
/// c₀ = −a_i·s + e + ⌊Q·x̂_C,i/t⌉, a_i from the seed's stream i ([`rlwe::SeededEncryptor`]), each
/// c₀ with the plan's low bits dropped at its support ([`rlwe::DroppedCodec`])
/// [Cheetah §3, seeded encryption].
fn encrypt_query(
    plan: &CheetahPlan,
    sk: &rlwe::SecretKey,
    x: &[u64],
    rng: &mut dyn CryptoRngCore,
) -> Result<Vec<u8>, LinearError> {
    let mut enc = rlwe::SeededEncryptor::new(sk, rng);
    let mut msg = Vec::with_capacity(plan.cost.bytes_c2s as usize);
    msg.push(plan.params.tag());
    msg.extend_from_slice(enc.seed());
    let codec = query::codec(plan.params, plan.query_drop_bits)?;
    for idx in 0..plan.layout.input_cts() {
        debug_assert_eq!(enc.next_stream(), idx as u64);
        let support = plan.truncated_query.then(|| plan.layout.query_support(idx));
        let c0 = enc.encrypt_next(&plan.layout.encode_input(x, idx), rng)?;
        codec.encode(&c0, support.as_deref(), &mut msg)?;
    }
    Ok(msg)
}

/// Validates and parses a query, adds the server's share: (c₀, c₁) per input polynomial, NTT form,
/// encrypting x̂_C,i + x̂_S,i at every coefficient of its support (c₀ is `fill` elsewhere, zero
/// in the protocol: no returned output depends on those coefficients).
fn parse_query(
    plan: &CheetahPlan,
    ctx: &Arc<RnsContext>,
    enc: &Arc<rlwe::Params>,
    x: &[u64],
    msg: &[u8],
    fill: OutsideSupport,
) -> Result<Vec<(Poly, Poly)>, LinearError> {
    let layout = &plan.layout;
    let codec = query::codec(plan.params, plan.query_drop_bits)?;
    let lens: Vec<usize> = if plan.truncated_query {
        layout.query_support_lens()
    } else {
        vec![ctx.n(); layout.input_cts()]
    };
    let sizes: Vec<usize> = lens.iter().map(|&c| codec.len(c)).collect();
    let expected = 1 + 32 + sizes.iter().sum::<usize>();
    if msg.len() != expected {
        return Err(LinearError::MessageLength {
            what: "linear query",
            expected,
            got: msg.len(),
        });
    }
    if msg[0] != plan.params.tag() {
        return Err(LinearError::ParamsMismatch {
            expected: plan.params.tag() as u32,
            got: msg[0] as u32,
        });
    }
    let seed: [u8; 32] = msg[1..33].try_into().expect("length checked");
    let mut fill_rng = match fill {
        OutsideSupport::Zero => None,
        OutsideSupport::RandomForTests { seed }
        | OutsideSupport::RandomAndOneReplacedForTests { seed, .. } => {
            Some(ChaCha20Rng::seed_from_u64(seed))
        }
    };
    let offsets: Vec<usize> = sizes
        .iter()
        .scan(33, |off, &size| {
            let at = *off;
            *off += size;
            Some(at)
        })
        .collect();
    let one =
        |idx: usize, fill_rng: Option<&mut ChaCha20Rng>| -> Result<(Poly, Poly), LinearError> {
            let body = &msg[offsets[idx]..offsets[idx] + sizes[idx]];
            let support = plan.truncated_query.then(|| layout.query_support(idx));
            let mut c0 =
                codec
                    .decode(body, support.as_deref())
                    .map_err(|_| LinearError::MessageRange {
                        what: "linear query",
                    })?;
            if let (Some(rng), Some(sup)) = (fill_rng, support.as_deref()) {
                fill_outside(ctx, &mut c0, sup, fill, idx, rng);
            }
            enc.add_scaled(&mut c0, &layout.encode_input(x, idx))?;
            c0.ntt_forward();
            Ok((c0, rlwe::expand_seeded_a(enc, &seed, idx as u64)))
        };
    // Input ciphertexts are independent (parallel); the test hook's fill stream is sequential.
    match fill_rng.as_mut() {
        None => (0..sizes.len())
            .into_par_iter()
            .map(|i| one(i, None))
            .collect(),
        Some(rng) => (0..sizes.len()).map(|i| one(i, Some(&mut *rng))).collect(),
    }
}

/// Test hook ([`OutsideSupport`]): uniform residues at every coefficient outside `support`, and
/// at its `nth` position for input polynomial `poly` when asked.
fn fill_outside(
    ctx: &Arc<RnsContext>,
    c0: &mut Poly,
    support: &[usize],
    fill: OutsideSupport,
    idx: usize,
    rng: &mut ChaCha20Rng,
) {
    let n = ctx.n();
    let mut inside = vec![false; n];
    support.iter().for_each(|&c| inside[c] = true);
    if let OutsideSupport::RandomAndOneReplacedForTests { poly, nth, .. } = fill {
        if poly == idx {
            if let Some(&c) = support.get(nth) {
                inside[c] = false;
            }
        }
    }
    let r = uniform_poly(ctx, ctx.len(), Representation::Coefficient, rng);
    for i in 0..ctx.len() {
        let src = r.residue(i).to_vec();
        let dst = c0.residue_mut(i);
        for c in (0..n).filter(|&c| !inside[c]) {
            dst[c] = src[c];
        }
    }
}

/// One returned ciphertext: its member output polynomials (member j shifted by X^j) and its
/// (coefficient, output index) pairs.
type Response = (Vec<usize>, Vec<(usize, usize)>);

/// The returned ciphertexts, in wire order.
fn responses(layout: &Layout, pack: usize) -> Vec<Response> {
    if pack <= 1 {
        return (0..layout.output_cts())
            .map(|o| (vec![o], layout.positions(o)))
            .collect();
    }
    layout
        .response_groups(pack)
        .into_iter()
        .map(|members| {
            let pos = members
                .iter()
                .enumerate()
                .flat_map(|(j, &o)| {
                    layout
                        .positions(o)
                        .into_iter()
                        .map(move |(c, out)| (c + j, out))
                })
                .collect();
            (members, pos)
        })
        .collect()
}

/// Packs G = 2^g response polynomials whose outputs sit at multiples of G into one, member j's
/// coefficient aG landing on aG + j [Chen–Dai–Kim–Song 2020, Alg. 2, adapted to keep every
/// multiple of G; BumbleBee's interleaving]. One merge at distance D (data of A and B at
/// multiples of 2D, garbage elsewhere):
///   R = (A + X^D·B) + σ_{N/D+1}(A − X^D·B).
/// σ_{N/D+1} fixes X^i for i ≡ 0 (mod 2D), negates it for i ≡ D (mod 2D), and maps the other
/// positions among themselves (N/D + 1 is odd, a unit mod D), so R holds 2A at multiples of 2D,
/// 2B at multiples of 2D plus D, and garbage only off the multiples of D. Merging recursively
/// (D = G/2, …, 1) costs G − 1 key switches and multiplies every datum by G, cancelled by
/// pre-scaling the weights by G⁻¹ mod Q (Q odd). Key-switching noise: ≤ (G − 1)·B_ks.
struct Packer<'k> {
    params: Arc<rlwe::Params>,
    gk: &'k rlwe::GaloisKeys,
    g_inv: Vec<u64>,
    /// X^D in NTT form for D = 1, 2, 4, …, G/2 (index log₂ D).
    monomials: Vec<Poly>,
}

impl<'k> Packer<'k> {
    fn new(
        p: HeParamsId,
        ell: u32,
        g: usize,
        gk: &'k rlwe::GaloisKeys,
    ) -> Result<Self, LinearError> {
        let params = p.rlwe_params(ell)?;
        let ctx = p.context()?;
        if params.key_switcher().is_none() {
            return Err(LinearError::MissingKey { params: p.name() });
        }
        let n = ctx.n();
        for k in crate::keys::trace_elements(n, g.trailing_zeros()) {
            if gk.get(k).is_none() {
                return Err(LinearError::MissingKey {
                    params: "Galois keys",
                });
            }
        }
        let g_inv = ctx
            .moduli()
            .iter()
            .map(|m| m.inv(m.reduce(g as u64)).expect("Q odd"))
            .collect();
        let monomials = (0..g.trailing_zeros())
            .map(|i| {
                let d = 1usize << i;
                let mut c = vec![0i64; d + 1];
                c[d] = 1;
                let mut p = Poly::from_signed(&ctx, ctx.len(), &c);
                p.ntt_forward();
                p
            })
            .collect();
        Ok(Packer {
            params,
            gk,
            g_inv,
            monomials,
        })
    }

    /// Packs the leaves at positions `idx` (NTT form; a power-of-two count; `None`: padding, only
    /// after the members) so the leaf at relative position j ends at offset j·step. A merge whose odd half is all padding returns 2A without a
    /// key switch: the slots ≡ D (mod 2D) it leaves unclean belong to padding and are never read,
    /// and every later merge maps slots of the same residue class onto themselves. Leaves are
    /// produced on demand by `leaf(j)` (j: position in the group; `None` past the members), depth
    /// first, so at most O(log G) partial results are alive at a time.
    fn pack(
        &self,
        idx: &[usize],
        step: usize,
        leaf: &mut dyn FnMut(usize) -> Result<Option<(Poly, Poly)>, LinearError>,
    ) -> Result<Option<(Poly, Poly)>, LinearError> {
        if idx.len() == 1 {
            return leaf(idx[0]);
        }
        let even: Vec<usize> = idx.iter().copied().step_by(2).collect();
        let odd: Vec<usize> = idx.iter().copied().skip(1).step_by(2).collect();
        let Some((a0, a1)) = self.pack(&even, 2 * step, leaf)? else {
            return Ok(None);
        };
        let Some((b0, b1)) = self.pack(&odd, 2 * step, leaf)? else {
            let (mut d0, mut d1) = (a0.clone(), a1.clone());
            d0.add_assign(&a0).map_err(math_err)?;
            d1.add_assign(&a1).map_err(math_err)?;
            return Ok(Some((d0, d1)));
        };
        let x = &self.monomials[step.trailing_zeros() as usize];
        let n = a0.n();
        // X^D·B, then A ± X^D·B.
        let mut xb0 = Poly::zero(a0.context(), a0.num_moduli(), Representation::Ntt);
        let mut xb1 = xb0.clone();
        xb0.mul_acc(&b0, x).map_err(math_err)?;
        xb1.mul_acc(&b1, x).map_err(math_err)?;
        let (mut p0, mut p1) = (a0.clone(), a1.clone());
        p0.add_assign(&xb0).map_err(math_err)?;
        p1.add_assign(&xb1).map_err(math_err)?;
        let (mut m0, mut m1) = (a0, a1);
        m0.sub_assign(&xb0).map_err(math_err)?;
        m1.sub_assign(&xb1).map_err(math_err)?;
        // σ_k(m₀ + m₁·s) = σ_k(m₀) + σ_k(m₁)·σ_k(s); switch σ_k(s) back to s.
        let k = n / step + 1;
        let key = self.gk.get(k).ok_or(LinearError::MissingKey {
            params: "Galois keys",
        })?;
        let ks = self.params.key_switcher().expect("checked in new");
        let r0 = m0.automorphism(k).map_err(math_err)?;
        let r1 = m1.automorphism(k).map_err(math_err)?;
        let (u0, u1) = ks.switch(&r1, key).map_err(LinearError::from)?;
        p0.add_assign(&r0).map_err(math_err)?;
        p0.add_assign(&u0).map_err(math_err)?;
        p1.add_assign(&u1).map_err(math_err)?;
        Ok(Some((p0, p1)))
    }
}

/// The server's per-response work at the full modulus Q.
struct Responder<'a> {
    ctx: &'a Arc<RnsContext>,
    /// The set's `rlwe` parameters for t = 2^ℓ (Δ-encoding of the masks).
    params: &'a Arc<rlwe::Params>,
    ev: rlwe::Evaluator,
    pk: &'a rlwe::PublicKey,
    ring: Ring,
    sigma: f64,
}

impl<'a> Responder<'a> {
    fn new(
        ctx: &'a Arc<RnsContext>,
        params: &'a Arc<rlwe::Params>,
        pk: &'a rlwe::PublicKey,
        ring: Ring,
        sigma: f64,
    ) -> Self {
        Responder {
            ctx,
            params,
            ev: rlwe::Evaluator::new(params),
            pk,
            ring,
            sigma,
        }
    }

    /// Σ_i ct_i ⊙ ŵ_{o,i} (NTT form) for output polynomial `o`.
    fn products(
        &self,
        layout: &Layout,
        o: usize,
        cts: &[(Poly, Poly)],
        wpt: &[Option<Poly>],
    ) -> Result<(Poly, Poly), LinearError> {
        let mut acc0 = Poly::zero(self.ctx, self.ctx.len(), Representation::Ntt);
        let mut acc1 = Poly::zero(self.ctx, self.ctx.len(), Representation::Ntt);
        for (i, key) in layout.terms(o) {
            let w = wpt[key]
                .as_ref()
                .expect("terms only name existing plaintexts");
            acc0.mul_acc(&cts[i].0, w).map_err(math_err)?;
            acc1.mul_acc(&cts[i].1, w).map_err(math_err)?;
        }
        Ok((acc0, acc1))
    }

    /// Re-randomizes an NTT-form response with a public-key encryption of zero (a fresh c₁
    /// independent of the weights), then adds the masks ⌊Q·r/t⌉ and the Gaussian flooding noise
    /// at the returned coefficients `pos` [Cheetah §4.1; docs/security.md]; returns the
    /// ciphertext (coefficient form) and the masks r.
    fn finish(
        &self,
        acc0: Poly,
        acc1: Poly,
        pos: &[(usize, usize)],
        rng: &mut dyn CryptoRngCore,
    ) -> Result<(rlwe::Ciphertext, Vec<u64>), LinearError> {
        let mut ct = rlwe::Ciphertext::from_polys(self.params, vec![acc0, acc1])?;
        self.ev.rerandomize(&mut ct, self.pk, rng)?;
        let coefs: Vec<usize> = pos.iter().map(|&(c, _)| c).collect();
        // Per returned coefficient: its mask, then its flooding sample.
        let mut masks = Vec::with_capacity(pos.len());
        let mut flood = Vec::with_capacity(pos.len());
        for _ in pos {
            masks.push(self.ring.reduce(rng.next_u64()));
            flood.push(rlwe::sample_flooding_gaussian(self.sigma, rng)?);
        }
        self.params
            .add_scaled_at(&mut ct.polys_mut()[0], &coefs, &masks)?;
        self.ev.add_flooding_at(&mut ct, &coefs, &flood)?;
        Ok((ct, masks))
    }

    /// Switches a finished response Q → q₀ (exact RNS rescaling), then q₀ → 2^k (c₁) and 2^b
    /// (the kept c₀ values) [Cheetah §4.1 "modulus switching"; `rlwe::compact`].
    fn compact(
        &self,
        mut ct: rlwe::Ciphertext,
        pos: &[(usize, usize)],
        noise: &ResponseNoise,
    ) -> Result<rlwe::Pow2Response, LinearError> {
        self.ev.mod_switch_to(&mut ct, 1)?;
        let coefs: Vec<usize> = pos.iter().map(|&(c, _)| c).collect();
        Ok(self
            .ev
            .switch_to_compact(&ct, noise.response_bits, noise.c0_bits, &coefs)?)
    }
}

impl LinearProtocol for Cheetah {
    fn name(&self) -> &'static str {
        "cheetah"
    }

    fn cost(&self, layer: &LayerSpec, ring: Ring) -> Result<Cost, LinearError> {
        Ok(self.plan(layer, ring)?.cost)
    }

    fn estimated_seconds(
        &self,
        layer: &LayerSpec,
        ring: Ring,
        bandwidth: f64,
    ) -> Result<f64, LinearError> {
        let plan = self.plan(layer, ring)?;
        Ok(estimated_seconds(&plan.cost, plan.params, bandwidth))
    }

    /// One NTT-form polynomial over every prime of the set per weight plaintext that exists
    /// ([`Layout::used_weight_keys`]: spatial tiles reuse them), 8 bytes a word.
    fn weight_bytes(&self, layer: &LayerSpec, ring: Ring) -> Result<u64, LinearError> {
        let plan = self.plan(layer, ring)?;
        let words = plan.params.n() as u64 * plan.params.prime_bits().len() as u64;
        Ok(plan.layout.used_weight_keys() as u64 * words * 8)
    }

    fn keys_needed(&self, layer: &LayerSpec, ring: Ring) -> Result<Vec<KeyRequest>, LinearError> {
        let plan = self.plan(layer, ring)?;
        let mut req = vec![KeyRequest::Rlwe {
            params: plan.params,
            ell: ring.bits(),
        }];
        if plan.pack > 1 {
            req.push(KeyRequest::Galois {
                params: plan.params,
                ell: ring.bits(),
                log_g: plan.pack.trailing_zeros(),
            });
        }
        Ok(req)
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
        if !self.runs_rows(layer, ring)? {
            if let Some(y) = via_matmul_conv(layer, x, |conv, xt| {
                self.client(conv, ring, keys, xt, ch, rng)
            }) {
                return y;
            }
        }
        Ok(self.client_with_noise(layer, ring, keys, x, ch, rng)?.0)
    }

    fn splits(&self) -> bool {
        true
    }

    fn client_send(
        &self,
        layer: &LayerSpec,
        ring: Ring,
        keys: &ClientKeys,
        x: &[u64],
        ch: &mut dyn Channel,
        rng: &mut dyn CryptoRngCore,
    ) -> Result<PendingAnswer, LinearError> {
        let (layer, x, back) = self.direct(layer, ring, x)?;
        ch.send(&self.query(&layer, ring, keys, &x, rng)?)?;
        Ok(PendingAnswer { layer, back })
    }

    fn client_receive(
        &self,
        pending: PendingAnswer,
        ring: Ring,
        keys: &ClientKeys,
        ch: &mut dyn Channel,
    ) -> Result<Vec<u64>, LinearError> {
        let y = self.answer(&pending.layer, ring, keys, &ch.recv()?)?.0;
        Ok(match pending.back {
            Some((rows, cols)) => crate::layer::transpose(&y, rows, cols),
            None => y,
        })
    }

    fn client_batch(
        &self,
        calls: &[(&LayerSpec, &[u64])],
        ring: Ring,
        keys: &ClientKeys,
        _session: &mut Session,
        ch: &mut dyn Channel,
        rng: &mut dyn CryptoRngCore,
    ) -> Result<Vec<Vec<u64>>, LinearError> {
        self.client_batch_direct(calls, ring, keys, ch, rng)
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
        if !self.runs_rows(layer, ring)? {
            if let Some(y) = via_matmul_conv(layer, x, |conv, xt| {
                self.server(conv, ring, keys, weights, xt, ch, rng)
            }) {
                return y;
            }
        }
        let plan = self.plan(layer, ring)?;
        check_len("server input share", x, layer.input_len())?;
        ring.check("server input share", x)?;
        weights.validate(layer, ring)?;
        if let Some(rw) = plan.polyphase {
            // [space-to-depth] the server rewrites its share and its weights.
            let (LayerShape::Conv2d(c), LayerShape::Conv2d(r)) = (layer.shape, rw.shape) else {
                unreachable!("polyphase plans only rewrite convolutions")
            };
            let wr = polyphase::rewrite_weights(&c, &r, weights);
            let xr = rewrite_share(layer, &rw, x);
            return self.server(&rw, ring, keys, &wr, &xr, ch, rng);
        }
        let pk = keys.get(plan.params, ring.bits())?;
        let ctx = plan.params.context()?;
        let layout = plan.layout;
        // Packing: weights pre-scaled by G⁻¹ mod Q so the partial trace's factor G cancels.
        let packer = if plan.pack > 1 {
            Some(Packer::new(
                plan.params,
                ring.bits(),
                plan.pack,
                keys.galois(plan.params, ring.bits())?,
            )?)
        } else {
            None
        };
        let enc = plan.params.rlwe_params(ring.bits())?;

        // Weight plaintexts in NTT form, reusable across spatial tiles.
        let wpt: Vec<Option<Poly>> = (0..layout.weight_keys())
            .into_par_iter()
            .map(|key| {
                layout.encode_weights(ring, &weights.weights, key).map(|w| {
                    let mut p = Poly::from_signed(&ctx, ctx.len(), &w);
                    p.ntt_forward();
                    if let Some(pk) = &packer {
                        p.mul_scalar_rns_assign(&pk.g_inv);
                    }
                    p
                })
            })
            .collect();

        // Client's ciphertexts; add the server's share: ct_i encrypts x̂_C,i + x̂_S,i = x̂_i.
        let cts = parse_query(
            &plan,
            &ctx,
            &enc,
            x,
            &ch.recv()?,
            self.config.outside_support,
        )?;

        let sigma = match self.config.flooding {
            Flooding::Gaussian => plan.noise.flood_sigma,
            Flooding::InsecureNoneForTests => 0.0,
        };
        let mut share = vec![0u64; layer.output_len()];
        // Output o's bias: FC o, token × weight product o mod outputs, conv o / plane.
        let bias_of = |o: usize| match layer.shape {
            LayerShape::Fc(_) => o,
            LayerShape::MatMul(m) => o % m.outputs,
            _ => {
                let c = layer.as_conv().expect("conv");
                o / (c.out_h() * c.out_w())
            }
        };
        let run = Responder::new(&ctx, &enc, pk, ring, sigma);
        // Returned ciphertexts are independent: computed in parallel ([`response_seeds`]).
        let groups = responses(&layout, plan.pack);
        let seeds = response_seeds(groups.len(), rng);
        let respond = |(members, pos): &(Vec<usize>, Vec<(usize, usize)>),
                       seed: &zeroize::Zeroizing<[u8; 32]>|
         -> Result<(rlwe::Pow2Response, Vec<u64>), LinearError> {
            let (acc0, acc1) = match &packer {
                None => run.products(&layout, members[0], &cts, &wpt)?,
                Some(pk) => {
                    // A partial last group is padded with absent leaves (their slots are never
                    // read); every datum still gets the factor G.
                    let idx: Vec<usize> = (0..plan.pack).collect();
                    let mut leaf = |j: usize| match members.get(j) {
                        Some(&o) => run.products(&layout, o, &cts, &wpt).map(Some),
                        None => Ok(None),
                    };
                    pk.pack(&idx, 1, &mut leaf)?.expect("a group has a member")
                }
            };
            let mut stream = ChaCha20Rng::from_seed(**seed);
            let (ct, masks) = run.finish(acc0, acc1, pos, &mut stream)?;
            Ok((run.compact(ct, pos, &plan.noise)?, masks))
        };
        let done: Vec<Result<(rlwe::Pow2Response, Vec<u64>), LinearError>> = groups
            .par_iter()
            .zip(seeds.par_iter())
            .map(|(g, seed)| respond(g, seed))
            .collect();
        let mut out: Vec<rlwe::Pow2Response> = Vec::with_capacity(groups.len());
        for ((_, pos), res) in groups.iter().zip(done) {
            let (resp, masks) = res?;
            for (&(_, o), r) in pos.iter().zip(masks) {
                share[o] = ring.reduce(weights.bias[bias_of(o)].wrapping_sub(r));
            }
            out.push(resp);
        }
        let mut resp = Vec::with_capacity(plan.cost.bytes_s2c as usize);
        rlwe::compact::write_compact_responses(&out, &mut resp)?;
        debug_assert_eq!(resp.len() as u64, plan.cost.bytes_s2c);
        ch.send(&resp)?;
        ch.flush()?;
        Ok(share)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{ClientKeys, ServerKeys};
    use rand_chacha::ChaCha20Rng;
    use rand_core::{RngCore, SeedableRng};
    use transport::MemoryChannel;

    /// Two-sample Kolmogorov–Smirnov statistic.
    pub(crate) fn ks(a: &mut [i128], b: &mut [i128]) -> f64 {
        a.sort_unstable();
        b.sort_unstable();
        let (mut i, mut j, mut d) = (0usize, 0usize, 0f64);
        while i < a.len() && j < b.len() {
            let v = a[i].min(b[j]);
            while i < a.len() && a[i] == v {
                i += 1;
            }
            while j < b.len() && b[j] == v {
                j += 1;
            }
            d = d.max((i as f64 / a.len() as f64 - j as f64 / b.len() as f64).abs());
        }
        d
    }

    /// Circuit privacy at the full modulus Q, where flooding is what hides the weights: same
    /// input, same client randomness (so the same fresh noise e), two weight sets with the same
    /// output. With flooding the response noise distributions agree (KS below the α = 10⁻³
    /// critical value); without it (control) they are far apart.
    #[test]
    fn flooding_hides_weight_dependent_noise_at_q() {
        const RUNS: usize = 300;
        let ring = Ring::new(37).unwrap();
        let layer = LayerSpec::fc(64, 16, 12);
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        // x is zero on odd coordinates; W2 differs from W1 only there, so W1·x = W2·x, but the
        // noise term e·W differs.
        let x: Vec<u64> = (0..64)
            .map(|i| {
                if i % 2 == 0 {
                    ring.reduce(rng.next_u64())
                } else {
                    0
                }
            })
            .collect();
        let w1: Vec<u64> = (0..64 * 16)
            .map(|_| ring.from_signed((rng.next_u64() % 8191) as i64 - 4095))
            .collect();
        let mut w2 = w1.clone();
        for (i, w) in w2.iter_mut().enumerate() {
            if i % 2 == 1 {
                *w = ring.from_signed(4095 - (i as i64 % 37) * 200);
            }
        }
        let (mut cc, mut sc) = MemoryChannel::pair();
        let req = [KeyRequest::Rlwe {
            params: HeParamsId::N4096Q109,
            ell: 37,
        }];
        let ck = ClientKeys::setup(&req, &mut cc, &mut ChaCha20Rng::seed_from_u64(1)).unwrap();
        let sk_keys = ServerKeys::setup(&req, &mut sc).unwrap();
        let sk = ck.get(HeParamsId::N4096Q109, 37).unwrap();
        let pk = sk_keys.get(HeParamsId::N4096Q109, 37).unwrap();

        let samples = |flooding: Flooding, w: &[u64], server_seed: u64| -> Vec<Vec<i128>> {
            let cfg = CheetahConfig {
                params: Some(HeParamsId::N4096Q109),
                flooding,
                ..CheetahConfig::default()
            };
            let plan = Cheetah::new(cfg).plan(&layer, ring).unwrap();
            let ctx = plan.params.context().unwrap();
            let enc = plan.params.rlwe_params(ring.bits()).unwrap();
            // Same client randomness for both weight sets.
            let msg = encrypt_query(&plan, sk, &x, &mut ChaCha20Rng::seed_from_u64(99)).unwrap();
            let zero = vec![0u64; 64];
            let cts = parse_query(&plan, &ctx, &enc, &zero, &msg, OutsideSupport::Zero).unwrap();
            let wpt: Vec<Option<Poly>> = (0..plan.layout.weight_keys())
                .map(|key| {
                    plan.layout.encode_weights(ring, w, key).map(|v| {
                        let mut p = Poly::from_signed(&ctx, ctx.len(), &v);
                        p.ntt_forward();
                        p
                    })
                })
                .collect();
            let sigma = if flooding == Flooding::Gaussian {
                plan.noise.flood_sigma
            } else {
                0.0
            };
            let run = Responder::new(&ctx, &enc, pk, ring, sigma);
            let (p0, p1) = (ctx.moduli()[0], ctx.moduli()[1]);
            let q = p0.value() as i128 * p1.value() as i128;
            let p0_inv = p1.inv(p1.reduce(p0.value())).unwrap();
            let mut srng = ChaCha20Rng::seed_from_u64(server_seed);
            let mut out = vec![Vec::new(); 16];
            for _ in 0..RUNS {
                let (c0, c1) = run.products(&plan.layout, 0, &cts, &wpt).unwrap();
                let pos = plan.layout.positions(0);
                let (ct, masks) = run.finish(c0, c1, &pos, &mut srng).unwrap();
                // phase = c₀ + c₁·s at Q; noise = phase − ⌊Q·(W·x + r)/t⌉.
                let phase = sk.phase(&ct).unwrap();
                let y = crate::layer::reference(
                    &layer,
                    ring,
                    &LayerWeights {
                        weights: w.to_vec(),
                        bias: vec![0; 16],
                    },
                    &x,
                );
                for (&(coef, o), r) in pos.iter().zip(masks) {
                    let m = ring.reduce(y[o].wrapping_add(r));
                    let mut want = Poly::zero(&ctx, 2, Representation::Coefficient);
                    enc.add_scaled_at(&mut want, &[coef], &[m]).unwrap();
                    let d0 = p0.sub(phase.residue(0)[coef], want.residue(0)[coef]);
                    let d1 = p1.sub(phase.residue(1)[coef], want.residue(1)[coef]);
                    let h = p1.mul(p1.sub(d1, p1.reduce(d0)), p0_inv);
                    let mut v = d0 as i128 + p0.value() as i128 * h as i128;
                    if v > q / 2 {
                        v -= q;
                    }
                    out[o].push(v);
                }
            }
            out
        };
        // Per output coordinate, two-sample KS at α = 10⁻³ with a Bonferroni correction over the
        // 16 outputs: c(α/16) = √(−ln(α/32)/2) = 2.28, critical value 2.28·√(2/RUNS).
        let crit = 2.28 * (2.0 / RUNS as f64).sqrt();
        let max_ks = |a: Vec<Vec<i128>>, b: Vec<Vec<i128>>| {
            a.into_iter()
                .zip(b)
                .map(|(mut a, mut b)| ks(&mut a, &mut b))
                .fold(0.0, f64::max)
        };
        let d_flood = max_ks(
            samples(Flooding::Gaussian, &w1, 11),
            samples(Flooding::Gaussian, &w2, 12),
        );
        let d_none = max_ks(
            samples(Flooding::InsecureNoneForTests, &w1, 11),
            samples(Flooding::InsecureNoneForTests, &w2, 12),
        );
        eprintln!("KS at Q: flooded {d_flood:.4}, unflooded {d_none:.4}, critical {crit:.4}");
        assert!(
            d_flood < crit,
            "flooded noise distinguishable: KS {d_flood} ≥ {crit}"
        );
        assert!(
            d_none > 0.9,
            "control: unflooded noise should reveal the weights (KS {d_none})"
        );
    }

    /// Flooding at Q with σ_f beyond a 128-bit integer (N8192Q180P38's packed plans derive
    /// σ_f ≈ 2^135): the phase minus ⌊Q·(W·x + r)/t⌉ at the returned coefficients, a sum of the
    /// flooding and noise < 2^40, has standard deviation σ_f within ±5 % over 4096 coefficients
    /// (relative standard error 1.1 %) and stays below 8.66·σ_f. A sampler saturating at 2^127
    /// would give ≈ 2^127.
    #[test]
    fn flooding_at_q_beyond_i128() {
        let ring = Ring::new(37).unwrap();
        let p = HeParamsId::N8192Q180P38;
        let req = [KeyRequest::Rlwe { params: p, ell: 37 }];
        let (mut cc, mut sc) = MemoryChannel::pair();
        let ck = ClientKeys::setup(&req, &mut cc, &mut ChaCha20Rng::seed_from_u64(31)).unwrap();
        let skeys = ServerKeys::setup(&req, &mut sc).unwrap();
        let (sk, pk) = (ck.get(p, 37).unwrap(), skeys.get(p, 37).unwrap());
        let ctx = p.context().unwrap();
        let params = p.rlwe_params(37).unwrap();
        let sigma = 2f64.powf(134.7);
        let run = Responder::new(&ctx, &params, pk, ring, sigma);
        // An encryption of zero as the "products", then the server's finishing step.
        let zero = Poly::zero(&ctx, ctx.len(), Representation::Ntt);
        let ct0 = sk
            .encrypt_poly(&zero, &mut ChaCha20Rng::seed_from_u64(32))
            .unwrap();
        let pos: Vec<(usize, usize)> = (0..4096).map(|i| (2 * i, i)).collect();
        let (ct, masks) = run
            .finish(
                ct0.polys()[0].clone(),
                ct0.polys()[1].clone(),
                &pos,
                &mut ChaCha20Rng::seed_from_u64(33),
            )
            .unwrap();
        let mut phase = sk.phase(&ct).unwrap();
        let coefs: Vec<usize> = pos.iter().map(|&(c, _)| c).collect();
        let mut enc = Poly::zero(&ctx, ctx.len(), Representation::Coefficient);
        params.add_scaled_at(&mut enc, &coefs, &masks).unwrap();
        phase.sub_assign(&enc).unwrap();
        let moduli = ctx.moduli();
        let q_limbs = math::baseconv::modulus_product(moduli);
        let to_f64 = |limbs: &[u64]| {
            limbs
                .iter()
                .enumerate()
                .map(|(i, &l)| l as f64 * 2f64.powi(64 * i as i32))
                .sum::<f64>()
        };
        let q = to_f64(&q_limbs);
        let vals: Vec<f64> = coefs
            .iter()
            .map(|&c| {
                let r: Vec<u64> = (0..moduli.len()).map(|i| phase.residue(i)[c]).collect();
                let v = to_f64(&math::baseconv::crt_reconstruct(moduli, &r));
                if v > q / 2.0 {
                    v - q
                } else {
                    v
                }
            })
            .collect();
        let sd = (vals.iter().map(|v| v * v).sum::<f64>() / vals.len() as f64).sqrt();
        let max = vals.iter().fold(0f64, |m, v| m.max(v.abs()));
        eprintln!(
            "σ_f 2^{:.2}: measured sd 2^{:.2}, max 2^{:.2}",
            sigma.log2(),
            sd.log2(),
            max.log2()
        );
        assert!(
            (sd / sigma - 1.0).abs() < 0.05,
            "sd {sd:e} vs σ_f {sigma:e}"
        );
        assert!(max < noise::FLOOD_Z_MAX * sigma);
    }
}
