//! Block-circulant FC and convolution layers in Cheetah's coefficient encoding over Z_{2^ℓ}
//! (PrivCirNet's structure, our own ring: issue 13's "variant on our own ring";
//! docs/protocols/privcirnet.md).
//!
//! W (out × in, for every kernel tap) is made of b×b circulant blocks C_ij,
//! C_ij[r][c] = W[ib][jb + (c − r) mod b] (row 0 of the block determines it), so
//! y_i = Σ_j C_ij·x_j is a sum of length-b **cyclic convolutions** along the channel axis. With
//! each input block extended circularly to length 2b − 1, x̃_j[t] = x_j[t mod b], and the kernel
//! K[i][j][l] = W[ib][jb + l]:
//!
//!   Σ_l K[i][j][l]·x̃_j[q + l] = Σ_l W[ib][jb + l]·x_j[(q + l) mod b] = Σ_c C_ij[q][c]·x_j[c]
//!
//! (substitute c = (q + l) mod b: l = (c − q) mod b). So the channel axis becomes one more
//! *valid convolution* axis: a product of polynomials computes b output channels at once
//! ([`CircTiling`]). For FC layers it is also the valid 1-D convolution of in/b channels of
//! length 2b − 1 with (out/b) × (in/b) kernels of width b, output (i, q) at index i·b + q —
//! Cheetah's HomConv with no new encoding ([`as_conv`]). Each party extends its own share (the
//! map is linear); the server builds the kernels from row 0 of each block after checking every
//! block is circulant, and adds the bias to its output share.

use rand_core::CryptoRngCore;
use transport::Channel;

use crate::cheetah::conv::{needed, put_monomial, read_tile, with_tallest, ConvTiling};
use crate::cheetah::{Cheetah, CheetahConfig, CheetahPlan};
use crate::keys::{ClientKeys, KeyRequest, ServerKeys};
use crate::layer::{Conv2dSpec, FcSpec, LayerShape, LayerSpec, LayerWeights, Ring};
use crate::{Cost, LinearError, LinearProtocol, PendingAnswer};

/// The block-circulant FC `layer`'s spec, if it is one (block > 1).
fn circulant_fc(layer: &LayerSpec) -> Option<FcSpec> {
    match layer.shape {
        LayerShape::Fc(f) if f.block > 1 => Some(f),
        _ => None,
    }
}

/// Whether `layer` is a block-circulant conv or token × weight product (block > 1): both run
/// by [`CircTiling`], the product as its 1×1 convolution over the tokens
/// ([`LayerSpec::matmul_as_conv`]).
fn by_blocks(layer: &LayerSpec) -> bool {
    match layer.shape {
        LayerShape::Conv2d(c) => c.block > 1,
        LayerShape::MatMul(m) => m.block > 1,
        _ => false,
    }
}

/// The FC `f` as the 1×1 convolution on a 1×1 input with the same weights, block kept: the form
/// [`CircTiling`] encodes.
pub fn fc_as_1x1(f: &FcSpec) -> Conv2dSpec {
    Conv2dSpec {
        c: f.inputs,
        h: 1,
        w: 1,
        m: f.outputs,
        kh: 1,
        kw: 1,
        stride: 1,
        padding: 0,
        groups: 1,
        block: f.block,
    }
}

/// The 1-D convolution that computes the block-circulant FC `f` (module docs).
pub fn as_conv(f: &FcSpec) -> Conv2dSpec {
    let b = f.block;
    Conv2dSpec {
        c: f.inputs / b,
        h: 1,
        w: 2 * b - 1,
        m: f.outputs / b,
        kh: 1,
        kw: b,
        stride: 1,
        padding: 0,
        groups: 1,
        block: 1,
    }
}

/// One party's share of x extended circularly per block: x̃_j[t] = x_j[t mod b], t < 2b − 1.
pub fn extend_input(f: &FcSpec, x: &[u64]) -> Vec<u64> {
    let b = f.block;
    let mut out = Vec::with_capacity(f.inputs / b * (2 * b - 1));
    for xj in x.chunks(b) {
        out.extend((0..2 * b - 1).map(|t| xj[t % b]));
    }
    out
}

/// Whether, for each of the `taps` kernel taps, every b×b block of the `outputs` × `inputs`
/// matrix is circulant: W[ib + r][jb + c][k] equals W[ib][jb + (c − r) mod b][k] (weights
/// `[outputs][inputs][taps]`, the conv layout; taps = 1 for an FC).
pub fn is_block_circulant(outputs: usize, inputs: usize, taps: usize, b: usize, w: &[u64]) -> bool {
    if b == 0 || w.len() != outputs * inputs * taps {
        return false;
    }
    let at = |row: usize, col: usize, k: usize| w[(row * inputs + col) * taps + k];
    (0..outputs).all(|row| {
        let (i, r) = (row / b, row % b);
        (0..inputs).all(|col| {
            let (j, c) = (col / b, col % b);
            (0..taps).all(|k| at(row, col, k) == at(i * b, j * b + (c + b - r) % b, k))
        })
    })
}

/// The largest power-of-two block b ≤ `max_block` (b > 1) dividing both dimensions for which
/// W (`[outputs][inputs][taps]`) is block-circulant, or 1: the structure a model's weights carry
/// whatever tool exported them.
pub fn detect_block(
    outputs: usize,
    inputs: usize,
    taps: usize,
    w: &[u64],
    max_block: usize,
) -> usize {
    let b = max_block.min(inputs).min(outputs);
    if b < 2 || w.len() != inputs * outputs * taps {
        return 1;
    }
    let mut b = 1 << b.ilog2();
    while b > 1 {
        if inputs.is_multiple_of(b)
            && outputs.is_multiple_of(b)
            && is_block_circulant(outputs, inputs, taps, b, w)
        {
            return b;
        }
        b /= 2;
    }
    1
}

/// W (`[outputs][inputs][taps]`) made block-circulant by copying row 0 of every block, for
/// seeded benchmark weights.
pub fn project(outputs: usize, inputs: usize, taps: usize, b: usize, w: &[u64]) -> Vec<u64> {
    let mut out = vec![0u64; w.len()];
    for row in 0..outputs {
        let (i, r) = (row / b, row % b);
        for col in 0..inputs {
            let (j, c) = (col / b, col % b);
            for k in 0..taps {
                out[(row * inputs + col) * taps + k] =
                    w[((i * b) * inputs + j * b + (c + b - r) % b) * taps + k];
            }
        }
    }
    out
}

/// An error unless the weights of `layer` are block-circulant with its block size (the
/// encodings read only row 0 of every block).
pub(crate) fn check_circulant(layer: &LayerSpec, w: &LayerWeights) -> Result<(), LinearError> {
    let ok = match layer.shape {
        LayerShape::Fc(f) => is_block_circulant(f.outputs, f.inputs, 1, f.block, &w.weights),
        LayerShape::Conv2d(c) => is_block_circulant(c.m, c.c, c.kh * c.kw, c.block, &w.weights),
        LayerShape::MatMul(m) => is_block_circulant(m.outputs, m.inputs, 1, m.block, &w.weights),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(LinearError::BadShape {
            reason: "circulant: the weights are not block-circulant with the layer's block size",
        })
    }
}

/// The kernels K[i][j][0][l] = W[ib][jb + l] of the FC's 1-D convolution (zero bias), or an
/// error if W is not block-circulant.
pub fn conv_weights(f: &FcSpec, w: &LayerWeights) -> Result<LayerWeights, LinearError> {
    check_circulant(
        &LayerSpec::circulant_fc(f.inputs, f.outputs, f.block, 62),
        w,
    )?;
    let (b, n) = (f.block, f.inputs);
    let mut k = Vec::with_capacity(f.outputs / b * n);
    for i in 0..f.outputs / b {
        k.extend_from_slice(&w.weights[i * b * n..i * b * n + n]);
    }
    Ok(LayerWeights {
        weights: k,
        bias: vec![0; f.outputs / b],
    })
}

/// Block-circulant layers by Cheetah: a conv by [`CircTiling`] (Cheetah's planner choosing the
/// tiling, the polyphase rewrite included); an FC either as the 1-D convolution of the extended
/// input (module docs) or by [`CircTiling`], whichever has the lower estimated time; a token ×
/// weight product (a transformer's linear layer) as its 1×1 convolution over the tokens by
/// [`CircTiling`] or row by row as Cheetah's FCs, whichever Cheetah's planner estimates faster.
/// Applies to conv, FC and token × weight layers with block > 1; the `cost` of any other layer
/// is an error. Splits like Cheetah (its query can ride with a LayerNorm's flight).
#[derive(Clone, Copy, Debug)]
pub struct Circulant {
    /// Cheetah with the several-blocks encodings among its candidates (`circulant: true`); on a
    /// layer of block 1 (the FC's 1-D convolution) it plans exactly as plain Cheetah, whose
    /// candidates those are not.
    cheetah: Cheetah,
}

impl Default for Circulant {
    fn default() -> Circulant {
        Circulant::new(CheetahConfig::default())
    }
}

/// How a layer runs.
enum Path {
    Conv(LayerSpec),
    Blocks,
}

impl Path {
    /// The layer Cheetah runs for `layer`: the FC's 1-D convolution, or `layer` itself.
    fn runs<'a>(&'a self, layer: &'a LayerSpec) -> &'a LayerSpec {
        match self {
            Path::Conv(conv) => conv,
            Path::Blocks => layer,
        }
    }
}

impl Circulant {
    pub fn new(config: CheetahConfig) -> Circulant {
        Circulant {
            cheetah: Cheetah::new(CheetahConfig {
                circulant: true,
                ..config
            }),
        }
    }

    fn path(&self, layer: &LayerSpec, ring: Ring) -> Result<Path, LinearError> {
        if by_blocks(layer) {
            layer.validate()?;
            return Ok(Path::Blocks);
        }
        let conv = Self::conv(layer)?;
        let bw = self.cheetah.config.bandwidth_bytes_per_s as f64;
        let by_conv = self.cheetah.estimated_seconds(&conv, ring, bw)?;
        let plan = self.cheetah.plan(layer, ring)?;
        let by_blocks = crate::cheetah::estimated_seconds(&plan.cost, plan.params, bw);
        Ok(if by_blocks < by_conv {
            Path::Blocks
        } else {
            Path::Conv(conv)
        })
    }

    pub fn config(&self) -> CheetahConfig {
        self.cheetah.config
    }

    /// The convolution layer that runs `layer`.
    fn conv(layer: &LayerSpec) -> Result<LayerSpec, LinearError> {
        let f = circulant_fc(layer).ok_or(LinearError::BadShape {
            reason: "circulant: only FC, conv and token × weight layers with a circulant block size > 1",
        })?;
        layer.validate()?;
        Ok(LayerSpec::conv(as_conv(&f), layer.weight_bits))
    }

    /// The plan that runs `layer` (of its convolution, or of the FC itself).
    pub fn plan(&self, layer: &LayerSpec, ring: Ring) -> Result<CheetahPlan, LinearError> {
        self.cheetah.plan(self.path(layer, ring)?.runs(layer), ring)
    }
}

impl LinearProtocol for Circulant {
    fn name(&self) -> &'static str {
        "circulant"
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
        Ok(crate::cheetah::estimated_seconds(
            &plan.cost,
            plan.params,
            bandwidth,
        ))
    }

    fn weight_bytes(&self, layer: &LayerSpec, ring: Ring) -> Result<u64, LinearError> {
        self.cheetah
            .weight_bytes(self.path(layer, ring)?.runs(layer), ring)
    }

    fn keys_needed(&self, layer: &LayerSpec, ring: Ring) -> Result<Vec<KeyRequest>, LinearError> {
        self.cheetah
            .keys_needed(self.path(layer, ring)?.runs(layer), ring)
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
        let pending = self.client_send(layer, ring, keys, x, ch, rng)?;
        self.client_receive(pending, ring, keys, ch)
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
        let path = self.path(layer, ring)?;
        crate::cheetah::check_len("client input share", x, layer.input_len())?;
        match path {
            Path::Conv(conv) => {
                let f = circulant_fc(layer).expect("the 1-D convolution path is FC only");
                self.cheetah
                    .client_send(&conv, ring, keys, &extend_input(&f, x), ch, rng)
            }
            Path::Blocks => self.cheetah.client_send(layer, ring, keys, x, ch, rng),
        }
    }

    fn client_receive(
        &self,
        pending: PendingAnswer,
        ring: Ring,
        keys: &ClientKeys,
        ch: &mut dyn Channel,
    ) -> Result<Vec<u64>, LinearError> {
        self.cheetah.client_receive(pending, ring, keys, ch)
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
        let path = self.path(layer, ring)?;
        crate::cheetah::check_len("server input share", x, layer.input_len())?;
        weights.validate(layer, ring)?;
        check_circulant(layer, weights)?;
        let conv = match path {
            Path::Blocks => return self.cheetah.server(layer, ring, keys, weights, x, ch, rng),
            Path::Conv(conv) => conv,
        };
        let f = circulant_fc(layer).expect("the 1-D convolution path is FC only");
        let kernels = conv_weights(&f, weights)?;
        let mut y =
            self.cheetah
                .server(&conv, ring, keys, &kernels, &extend_input(&f, x), ch, rng)?;
        for (v, &b) in y.iter_mut().zip(&weights.bias) {
            *v = ring.reduce(v.wrapping_add(b));
        }
        Ok(y)
    }
}

/// Block-circulant layers with the channel axis as a valid-convolution axis and several output
/// blocks per weight polynomial (the "b× fewer products" encoding; FC layers as 1×1 convolutions,
/// [`fc_as_1x1`]).
///
/// A tile of the zero-padded input holds c_t input blocks, each extended circularly to
/// L = 2b − 1 channels, × h_t rows × w_t columns: x̃[(jj·L + t)·A + r·w_t + q] with A = h_t·w_t.
/// Weight polynomial (og, ci) holds, for each of n_o output blocks oo at period P = c_t·L·A,
/// K[i][j][l][dh][dw] = W[ib][jb + l][dh][dw] at oo·P + O − (jj·L + l)·A − dh·w_t − dw, with
/// O = ((c_t − 1)·L + b − 1)·A + (kh − 1)·w_t + kw − 1. Output channel ib + q, stride-1 pixel
/// (r, q′) of the tile, lands on oo·P + O + q·A + r·w_t + q′.
///
/// Non-interference (docs/protocols/privcirnet.md § Convolutions):
/// * inside block oo, Cheetah's conv argument on three axes: a term x̃[(jj·L + t)·A + r′·w_t + q″]
///   times the tap (jj′, l, dh, dw) lands on O + ((jj − jj′)·L + t − l)·A + (r′ − dh)·w_t +
///   (q″ − dw); equal to a kept output forces q″ − dw = q′ and r′ − dh = r (the column and row
///   remainders lie in (−w_t, w_t) and (−A, A)), then (jj − jj′)·L = q − t + l, which lies in
///   [−(2b − 2), 2b − 2], forces jj = jj′ (L = 2b − 1) and t = q + l: the cyclic product above;
/// * block oo's terms occupy oo·P + [0, P − 1 + O]: below block oo + 1's first output
///   (oo + 1)·P + O, and above block oo − 1's last output (oo − 1)·P + P − 1;
/// * with n_o·P ≤ N a wrapped term lands below O, under block 0's outputs, and every output stays
///   below N (no sign flip).
///
/// **Block-minor (interleaved) tilings** (`interleaved`, c_t a power of two, n_o = 1) put input
/// block jj of the tile at x̃[((t·h_t + r)·w_t + q)·c_t + jj] and the tap (jj, l, dh, dw) at
/// (B − l·A − dh·w_t − dw)·c_t − jj, B = (b − 1)·A + (kh − 1)·w_t + kw − 1 (a negative index e
/// stored as −w at N + e, which is w·X^e in Z[X]/(X^N + 1)), so that every output sits at a
/// multiple of c_t and up to c_t response polynomials pack into one ciphertext (Cheetah's
/// interleaved conv with the input blocks in place of its channels):
/// * a term lands on (B + (t − l)·A + (r′ − dh)·w_t + (q″ − dw))·c_t + (jj − jj′), an integer in
///   (−c_t, (B + L·A)·c_t); only jj = jj′ gives a multiple of c_t (|jj − jj′| < c_t, and N is a
///   multiple of c_t, so wrapping keeps the residue mod c_t);
/// * output channel ib + q, stride-1 pixel (r, q′), sits at (B + q·A + r·w_t + q′)·c_t, in
///   [B·c_t, L·A·c_t) ⊆ [0, N); a term with jj = jj′ reaches it only with q″ − dw = q′,
///   r′ − dh = r and t − l = q (the column and row remainders lie in (−w_t, w_t) and (−A, A)):
///   the cyclic product above;
/// * a term wraps past N only from [N, (B + L·A)·c_t), onto [0, B·c_t) (L·A·c_t ≤ N), below
///   every output; one below 0 (jj < jj′) wraps onto a non-multiple of c_t.
///
/// Its query support is V = {blocks of the tile} × {L extended channels} × {rows read} ×
/// {columns read} with no translates, and its weight polynomials each hold one output block.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct CircTiling {
    pub n: usize,
    /// Input blocks per input polynomial and output blocks per weight polynomial.
    pub c_t: usize,
    pub n_o: usize,
    /// Padded-input rows and columns per tile (including the kh − 1 / kw − 1 overlap).
    pub h_t: usize,
    pub w_t: usize,
    /// Channel tiles, output groups and spatial tiles along each axis.
    pub n_c: usize,
    pub n_g: usize,
    pub n_h: usize,
    pub n_w: usize,
    /// Block-minor encoding, one output block per weight polynomial: outputs at multiples of
    /// c_t (above).
    #[serde(default)]
    pub interleaved: bool,
}

impl CircTiling {
    /// Balanced block tiles × balanced row splits, widest columns that fit, the most output
    /// blocks per product that fit, at degree n.
    pub fn candidates(spec: &Conv2dSpec, n: usize) -> Vec<CircTiling> {
        if spec.block < 2 || spec.groups != 1 {
            return Vec::new();
        }
        let chans = spec.c / spec.block;
        let mut c_ts: Vec<usize> = (1..=chans).map(|k| chans.div_ceil(k)).collect();
        c_ts.dedup();
        Self::tilings(spec, n, &c_ts, false)
    }

    /// Block-minor tilings (above): c_t a power of two ≥ 2 (above the input block count it pads
    /// with empty blocks, which lets c_t output blocks share a response), balanced row splits,
    /// widest columns that fit, one output block per product.
    pub fn interleaved_candidates(spec: &Conv2dSpec, n: usize) -> Vec<CircTiling> {
        if spec.block < 2 || spec.groups != 1 {
            return Vec::new();
        }
        let (b, taps) = (spec.block, spec.kh * spec.kw);
        let most = 2 * (spec.c / b).max(spec.m / b);
        let c_ts: Vec<usize> = (1..usize::BITS)
            .map(|e| 1usize << e)
            .take_while(|&c_t| c_t * Self::len(b) * taps <= n && c_t < most)
            .collect();
        Self::tilings(spec, n, &c_ts, true)
    }

    /// For each c_t: balanced row splits and the widest columns that fit, with the most output
    /// blocks per product that fit (one when `interleaved`).
    fn tilings(spec: &Conv2dSpec, n: usize, c_ts: &[usize], interleaved: bool) -> Vec<CircTiling> {
        let (chans, blocks, l) = (
            spec.c / spec.block,
            spec.m / spec.block,
            Self::len(spec.block),
        );
        let (hf, wf) = needed(spec);
        let mut h_ts: Vec<usize> = (1..=hf).map(|k| hf.div_ceil(k) + spec.kh - 1).collect();
        h_ts.dedup();
        let mut out = Vec::new();
        for &c_t in c_ts {
            for h_t in with_tallest(&h_ts, spec, n, c_t * l) {
                let room = n / (c_t * l * h_t);
                if room < spec.kw {
                    continue;
                }
                let w_max = room.min(wf + spec.kw - 1);
                let n_w = wf.div_ceil(w_max - spec.kw + 1);
                let w_t = wf.div_ceil(n_w) + spec.kw - 1;
                let n_g = if interleaved {
                    blocks
                } else {
                    blocks.div_ceil((n / (c_t * l * h_t * w_t)).min(blocks))
                };
                out.push(CircTiling {
                    n,
                    c_t,
                    n_o: blocks.div_ceil(n_g),
                    h_t,
                    w_t,
                    n_c: chans.div_ceil(c_t),
                    n_g,
                    n_h: hf.div_ceil(h_t - spec.kh + 1),
                    n_w,
                    interleaved,
                });
            }
        }
        out
    }

    /// The power of two every output coefficient index is a multiple of (1 if none).
    pub fn output_stride(&self) -> usize {
        if self.interleaved {
            self.c_t
        } else {
            1
        }
    }

    /// Coefficient of extended channel t of tile block jj at tile position (r, q).
    fn input_index(&self, l: usize, jj: usize, t: usize, r: usize, q: usize) -> usize {
        if self.interleaved {
            ((t * self.h_t + r) * self.w_t + q) * self.c_t + jj
        } else {
            (jj * l + t) * self.area() + r * self.w_t + q
        }
    }

    /// B = (b − 1)·A + (kh − 1)·w_t + kw − 1 of the block-minor encoding.
    fn inner_offset(&self, spec: &Conv2dSpec) -> usize {
        (spec.block - 1) * self.area() + (spec.kh - 1) * self.w_t + spec.kw - 1
    }

    fn len(b: usize) -> usize {
        2 * b - 1
    }

    fn area(&self) -> usize {
        self.h_t * self.w_t
    }

    /// Period of the output blocks in a weight polynomial: P = c_t·L·A.
    fn period(&self, spec: &Conv2dSpec) -> usize {
        self.c_t * Self::len(spec.block) * self.area()
    }

    /// O = ((c_t − 1)·L + b − 1)·A + (kh − 1)·w_t + kw − 1.
    fn offset(&self, spec: &Conv2dSpec) -> usize {
        let l = Self::len(spec.block);
        ((self.c_t - 1) * l + spec.block - 1) * self.area() + (spec.kh - 1) * self.w_t + spec.kw - 1
    }

    fn step_h(&self, spec: &Conv2dSpec) -> usize {
        self.h_t - spec.kh + 1
    }

    fn step_w(&self, spec: &Conv2dSpec) -> usize {
        self.w_t - spec.kw + 1
    }

    pub fn spatial_tiles(&self) -> usize {
        self.n_h * self.n_w
    }

    pub fn input_cts(&self) -> usize {
        self.n_c * self.spatial_tiles()
    }

    pub fn output_cts(&self) -> usize {
        self.n_g * self.spatial_tiles()
    }

    /// Input blocks present in channel tile ci.
    fn blocks_in(&self, spec: &Conv2dSpec, ci: usize) -> usize {
        self.c_t.min(spec.c / spec.block - ci * self.c_t)
    }

    /// Input polynomial idx = (ci·n_h + hi)·n_w + wi from the unpadded input x (C×H×W).
    pub fn encode_input(&self, spec: &Conv2dSpec, x: &[u64], idx: usize) -> Vec<u64> {
        let (b, l) = (spec.block, Self::len(spec.block));
        let (wi, hi, ci) = (
            idx % self.n_w,
            (idx / self.n_w) % self.n_h,
            idx / (self.n_w * self.n_h),
        );
        let (r0, q0) = (hi * self.step_h(spec), wi * self.step_w(spec));
        let mut poly = vec![0u64; self.n];
        for jj in 0..self.blocks_in(spec, ci) {
            let j = ci * self.c_t + jj;
            for t in 0..l {
                read_tile(
                    spec,
                    x,
                    j * b + t % b,
                    (r0, q0),
                    (self.h_t, self.w_t),
                    |r, q, v| {
                        poly[self.input_index(l, jj, t, r, q)] = v;
                    },
                );
            }
        }
        poly
    }

    /// Weight polynomial key = og·n_c + ci from the dense weights `[M][C][kh][kw]` (row 0 of each
    /// block), signed.
    pub fn encode_weights(&self, spec: &Conv2dSpec, ring: Ring, w: &[u64], key: usize) -> Vec<i64> {
        let (b, l, a) = (spec.block, Self::len(spec.block), self.area());
        let (og, ci) = (key / self.n_c, key % self.n_c);
        let (p, o, bo) = (
            self.period(spec),
            self.offset(spec),
            self.inner_offset(spec),
        );
        let taps = spec.kh * spec.kw;
        let mut poly = vec![0i64; self.n];
        for oo in 0..self.blocks_of(spec, og) {
            let i = og * self.n_o + oo;
            for jj in 0..self.blocks_in(spec, ci) {
                let j = ci * self.c_t + jj;
                for ll in 0..b {
                    let base = ((i * b) * spec.c + j * b + ll) * taps;
                    for dh in 0..spec.kh {
                        for dw in 0..spec.kw {
                            let v = ring.signed(w[base + dh * spec.kw + dw]);
                            if self.interleaved {
                                let e = ((bo - ll * a - dh * self.w_t - dw) * self.c_t) as isize
                                    - jj as isize;
                                put_monomial(&mut poly, e, v);
                            } else {
                                let pos = oo * p + o - (jj * l + ll) * a - dh * self.w_t - dw;
                                poly[pos] = v;
                            }
                        }
                    }
                }
            }
        }
        poly
    }

    /// Output blocks of group og.
    fn blocks_of(&self, spec: &Conv2dSpec, og: usize) -> usize {
        self.n_o.min(spec.m / spec.block - og * self.n_o)
    }

    /// (coefficient, output index) of output polynomial o = og·(n_h·n_w) + spatial tile,
    /// increasing.
    pub fn output_positions(&self, spec: &Conv2dSpec, o: usize) -> Vec<(usize, usize)> {
        let (b, a) = (spec.block, self.area());
        let s = self.spatial_tiles();
        let (og, st) = (o / s, o % s);
        let (hi, wi) = (st / self.n_w, st % self.n_w);
        let (p, off, bo) = (
            self.period(spec),
            self.offset(spec),
            self.inner_offset(spec),
        );
        let (sh, sw) = (self.step_h(spec), self.step_w(spec));
        let (ho, wo) = (spec.out_h(), spec.out_w());
        let rows = ConvTiling::kept_range(sh, spec.stride, ho, hi);
        let cols = ConvTiling::kept_range(sw, spec.stride, wo, wi);
        let mut out = Vec::with_capacity(self.kept(spec, o));
        for oo in 0..self.blocks_of(spec, og) {
            let i = og * self.n_o + oo;
            for q in 0..b {
                for oi in rows.clone() {
                    let r = oi * spec.stride - hi * sh;
                    for oj in cols.clone() {
                        let c = oj * spec.stride - wi * sw;
                        let coef = if self.interleaved {
                            (bo + q * a + r * self.w_t + c) * self.c_t
                        } else {
                            oo * p + off + q * a + r * self.w_t + c
                        };
                        out.push((coef, ((i * b + q) * ho + oi) * wo + oj));
                    }
                }
            }
        }
        out
    }

    /// Outputs of output polynomial o.
    pub fn kept(&self, spec: &Conv2dSpec, o: usize) -> usize {
        let s = self.spatial_tiles();
        let (og, st) = (o / s, o % s);
        let (hi, wi) = (st / self.n_w, st % self.n_w);
        self.blocks_of(spec, og)
            * spec.block
            * ConvTiling::kept_range(self.step_h(spec), spec.stride, spec.out_h(), hi).len()
            * ConvTiling::kept_range(self.step_w(spec), spec.stride, spec.out_w(), wi).len()
    }

    /// The products (input polynomial, weight key) summed into output polynomial o: its group's
    /// channel tiles on its spatial tile.
    pub fn terms(&self, o: usize) -> Vec<(usize, usize)> {
        let s = self.spatial_tiles();
        let (og, st) = (o / s, o % s);
        (0..self.n_c)
            .map(|ci| (ci * s + st, og * self.n_c + ci))
            .collect()
    }

    /// Query support of input polynomial idx, increasing: a kept output at
    /// oo·P + O + q·A + r·w_t + q′ reads, through tap (jj, l, dh, dw) of block oo′, the input
    /// position (oo − oo′)·P + (jj·L + q + l)·A + (r + dh)·w_t + (q′ + dw) (mod N), so
    /// S = ∪_{|d| < n_o} (d·P + V) mod N with V = {blocks of the tile} × {L extended channels}
    /// × {rows read} × {columns read}.
    pub fn query_support(&self, spec: &Conv2dSpec, idx: usize) -> Vec<usize> {
        let (hit, _) = self.support_of(spec, idx);
        (0..self.n).filter(|&c| hit[c]).collect()
    }

    /// The query support of input polynomial idx as a mask over the N coefficients, with its
    /// size.
    fn support_of(&self, spec: &Conv2dSpec, idx: usize) -> (Vec<bool>, usize) {
        let (blocks, rows, cols) = self.reads(spec, idx);
        self.support_from(spec, blocks, &rows, &cols)
    }

    /// (blocks, rows, columns) input polynomial idx's kept outputs read.
    fn reads(&self, spec: &Conv2dSpec, idx: usize) -> (usize, Vec<usize>, Vec<usize>) {
        let (wi, hi, ci) = (
            idx % self.n_w,
            (idx / self.n_w) % self.n_h,
            idx / (self.n_w * self.n_h),
        );
        let rows =
            ConvTiling::read_lines(self.step_h(spec), spec.stride, spec.out_h(), hi, spec.kh);
        let cols =
            ConvTiling::read_lines(self.step_w(spec), spec.stride, spec.out_w(), wi, spec.kw);
        (self.blocks_in(spec, ci), rows, cols)
    }

    fn support_from(
        &self,
        spec: &Conv2dSpec,
        blocks: usize,
        rows: &[usize],
        cols: &[usize],
    ) -> (Vec<bool>, usize) {
        let l = Self::len(spec.block);
        let p = self.period(spec) as i64;
        let mut hit = vec![false; self.n];
        let mut count = 0;
        for jt in 0..blocks * l {
            for &r in rows {
                for &q in cols {
                    let v = self.input_index(l, jt / l, jt % l, r, q) as i64;
                    for d in -(self.n_o as i64 - 1)..self.n_o as i64 {
                        let h = &mut hit[(d * p + v).rem_euclid(self.n as i64) as usize];
                        count += usize::from(!*h);
                        *h = true;
                    }
                }
            }
        }
        (hit, count)
    }

    /// |S| of every input polynomial, in input order. n_o = 1: S = V, whose points are distinct
    /// and below N; (2·n_o − 1)·P ≤ N: the 2·n_o − 1 translates of V ⊆ [0, P) are disjoint;
    /// otherwise counted once per distinct (blocks, rows, columns) read.
    pub fn query_support_lens(&self, spec: &Conv2dSpec) -> Vec<usize> {
        let l = Self::len(spec.block);
        let disjoint = (2 * self.n_o - 1) * self.period(spec) <= self.n;
        type Reads = (usize, Vec<usize>, Vec<usize>);
        let mut counted: Vec<(Reads, usize)> = Vec::new();
        (0..self.input_cts())
            .map(|idx| {
                let key = self.reads(spec, idx);
                if disjoint {
                    return (2 * self.n_o - 1) * key.0 * l * key.1.len() * key.2.len();
                }
                if let Some((_, len)) = counted.iter().find(|(k, _)| *k == key) {
                    return *len;
                }
                let (_, len) = self.support_from(spec, key.0, &key.1, &key.2);
                counted.push((key, len));
                len
            })
            .collect()
    }

    /// Nonzero weights an output meets over its products: n_o blocks × all C·kh·kw taps.
    pub fn taps(&self, spec: &Conv2dSpec) -> usize {
        self.n_o * spec.c * spec.kh * spec.kw
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::negacyclic;
    use rand::{Rng, SeedableRng};

    /// The plain convolution (dense weights) over Z_{2^64}, outputs `[M][Ho][Wo]`.
    fn plain_conv(spec: &Conv2dSpec, ring: Ring, w: &[u64], x: &[u64]) -> Vec<u64> {
        let (ho, wo) = (spec.out_h(), spec.out_w());
        let mut y = vec![0u64; spec.m * ho * wo];
        for m in 0..spec.m {
            for i in 0..ho {
                for j in 0..wo {
                    let mut acc = 0u64;
                    for c in 0..spec.c {
                        for dh in 0..spec.kh {
                            for dw in 0..spec.kw {
                                let r = (i * spec.stride + dh) as isize - spec.padding as isize;
                                let q = (j * spec.stride + dw) as isize - spec.padding as isize;
                                if r < 0 || q < 0 || r >= spec.h as isize || q >= spec.w as isize {
                                    continue;
                                }
                                let wv = w[((m * spec.c + c) * spec.kh + dh) * spec.kw + dw];
                                let xv = x[(c * spec.h + r as usize) * spec.w + q as usize];
                                acc = acc.wrapping_add(xv.wrapping_mul(ring.signed(wv) as u64));
                            }
                        }
                    }
                    y[(m * ho + i) * wo + j] = acc;
                }
            }
        }
        y
    }

    /// Every candidate CircTiling of block-circulant FCs (as 1×1 convolutions) and convolutions
    /// (kernels 1–5, strides 1–2, paddings 0–2), several blocks per product and block-minor,
    /// computes the layer exactly as plain negacyclic products over Z_{2^64} summed over channel
    /// tiles, reads only inside the query support, and puts its outputs at multiples of its
    /// output stride.
    #[test]
    fn several_blocks_per_product_are_exact() {
        let ring = Ring::new(40).unwrap();
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(5);
        let fc = |inputs, outputs, block| {
            fc_as_1x1(&FcSpec {
                inputs,
                outputs,
                block,
            })
        };
        let conv = |c, h, m, k, stride, padding, block| Conv2dSpec {
            block,
            ..Conv2dSpec::square(c, h, m, k, stride, padding, 1)
        };
        let cases = [
            (fc(32, 16, 4), 64),
            (fc(48, 64, 8), 128),
            (fc(64, 64, 16), 256),
            (fc(8, 24, 2), 32),
            (conv(8, 6, 8, 3, 1, 1, 4), 256),
            (conv(8, 7, 16, 3, 2, 1, 2), 512),
            (conv(16, 5, 8, 1, 1, 0, 8), 1024),
            (conv(4, 9, 4, 5, 1, 2, 2), 256),
            (conv(8, 8, 8, 1, 2, 0, 4), 128),
        ];
        for (spec, n) in cases {
            let taps = spec.kh * spec.kw;
            let raw: Vec<u64> = (0..spec.m * spec.c * taps)
                .map(|_| ring.reduce(rng.gen_range(-100i64..100) as u64))
                .collect();
            let w = project(spec.m, spec.c, taps, spec.block, &raw);
            assert!(is_block_circulant(spec.m, spec.c, taps, spec.block, &w));
            let x: Vec<u64> = (0..spec.c * spec.h * spec.w).map(|_| rng.gen()).collect();
            let want = plain_conv(&spec, ring, &w, &x);
            let cands = CircTiling::candidates(&spec, n);
            assert!(!cands.is_empty(), "{spec:?}");
            let interleaved = CircTiling::interleaved_candidates(&spec, n);
            assert!(!interleaved.is_empty(), "{spec:?}");
            for t in cands.into_iter().chain(interleaved) {
                let mut seen = 0;
                for o in 0..t.output_cts() {
                    let mut acc = vec![0u64; n];
                    let positions = t.output_positions(&spec, o);
                    assert_eq!(positions.len(), t.kept(&spec, o));
                    assert!(positions.windows(2).all(|p| p[0].0 < p[1].0));
                    assert!(positions.iter().all(|p| p.0 % t.output_stride() == 0));
                    for (ip, key) in t.terms(o) {
                        let xi = t.encode_input(&spec, &x, ip);
                        let wp = t.encode_weights(&spec, ring, &w, key);
                        for (k, v) in negacyclic(&xi, &wp).into_iter().enumerate() {
                            acc[k] = acc[k].wrapping_add(v);
                        }
                        let support = t.query_support(&spec, ip);
                        assert_eq!(support.len(), t.query_support_lens(&spec)[ip], "{t:?}");
                        for (bpos, _) in wp.iter().enumerate().filter(|(_, v)| **v != 0) {
                            for &(c, _) in &positions {
                                let a = (c + n - bpos) % n;
                                assert!(support.binary_search(&a).is_ok(), "{t:?}");
                            }
                        }
                    }
                    for (c, out) in positions {
                        assert_eq!(acc[c], want[out], "{spec:?} {t:?} output {out}");
                        seen += 1;
                    }
                }
                assert_eq!(seen, want.len(), "{t:?}: every output once");
            }
        }
    }

    #[test]
    fn detection_finds_the_largest_block() {
        let ring = Ring::new(30).unwrap();
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(9);
        let raw: Vec<u64> = (0..16 * 32 * 9)
            .map(|_| ring.reduce(rng.gen_range(-50i64..50) as u64))
            .collect();
        assert_eq!(detect_block(16, 32, 9, &raw, 64), 1);
        for b in [2, 4, 8, 16] {
            let w = project(16, 32, 9, b, &raw);
            assert_eq!(detect_block(16, 32, 9, &w, 64), b);
            // A b-circulant matrix's b/2 sub-blocks are Toeplitz, not circulant.
            assert_eq!(detect_block(16, 32, 9, &w, b / 2), 1);
        }
        assert_eq!(detect_block(16, 32, 9, &raw[1..], 64), 1);
    }
}
