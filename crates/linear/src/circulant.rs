//! Block-circulant FC layers in Cheetah's coefficient encoding over Z_{2^ℓ} (PrivCirNet's
//! structure, our own ring: issue 13's "variant on our own ring"; docs/protocols/privcirnet.md).
//!
//! W (out × in) is made of b×b circulant blocks C_ij, C_ij[r][c] = W[ib][jb + (c − r) mod b]
//! (row 0 of the block determines it), so y_i = Σ_j C_ij·x_j is a sum of length-b **cyclic
//! convolutions**. With each input block extended circularly to length 2b − 1,
//! x̃_j[t] = x_j[t mod b], and the kernel K[i][j][l] = W[ib][jb + l]:
//!
//!   Σ_l K[i][j][l]·x̃_j[q + l] = Σ_l W[ib][jb + l]·x_j[(q + l) mod b] = Σ_c C_ij[q][c]·x_j[c]
//!
//! (substitute c = (q + l) mod b: l = (c − q) mod b). So the layer is the valid 1-D convolution of
//! in/b channels of length 2b − 1 with (out/b) × (in/b) kernels of width b, output (i, q) at
//! index i·b + q as in the FC — Cheetah's HomConv with no new encoding. Each party extends its own
//! share (the map is linear); the server builds the kernels from row 0 of each block after
//! checking every block is circulant, and adds the FC bias to its output share. A product then
//! covers b·b weights per kernel instead of one row of a dense block: b times fewer weights to
//! encode and multiply, for a query b·(2b − 1)/b² ≈ 2× the input (the circular extension).

use rand_core::CryptoRngCore;
use transport::Channel;

use crate::cheetah::{Cheetah, CheetahConfig, CheetahPlan};
use crate::keys::{ClientKeys, KeyRequest, ServerKeys};
use crate::layer::{Conv2dSpec, FcSpec, LayerShape, LayerSpec, LayerWeights, Ring};
use crate::{Cost, LinearError, LinearProtocol};

/// The block-circulant FC `layer`'s spec, if it is one (block > 1).
fn circulant_fc(layer: &LayerSpec) -> Option<FcSpec> {
    match layer.shape {
        LayerShape::Fc(f) if f.block > 1 => Some(f),
        _ => None,
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

/// Whether every b×b block of W (`[out][in]`) is circulant: W[ib + r][jb + c] equals
/// W[ib][jb + (c − r) mod b].
pub fn is_block_circulant(f: &FcSpec, w: &[u64]) -> bool {
    let (b, n) = (f.block, f.inputs);
    (0..f.outputs).all(|row| {
        let (i, r) = (row / b, row % b);
        (0..n).all(|col| {
            let (j, c) = (col / b, col % b);
            w[row * n + col] == w[i * b * n + j * b + (c + b - r) % b]
        })
    })
}

/// The largest power-of-two block b ≤ `max_block` (b > 1) dividing both dimensions for which
/// W (`[outputs][inputs]`) is block-circulant, or 1: the structure a model's weights carry
/// whatever tool exported them.
pub fn detect_block(inputs: usize, outputs: usize, w: &[u64], max_block: usize) -> usize {
    let mut b = max_block.min(inputs).min(outputs);
    if b == 0 || w.len() != inputs * outputs {
        return 1;
    }
    b = 1 << b.ilog2();
    while b > 1 {
        let f = FcSpec {
            inputs,
            outputs,
            block: b,
        };
        if inputs.is_multiple_of(b) && outputs.is_multiple_of(b) && is_block_circulant(&f, w) {
            return b;
        }
        b /= 2;
    }
    1
}

/// W made block-circulant by copying row 0 of every block (for seeded benchmark weights).
pub fn project(f: &FcSpec, w: &[u64]) -> Vec<u64> {
    let (b, n) = (f.block, f.inputs);
    let mut out = vec![0u64; w.len()];
    for row in 0..f.outputs {
        let (i, r) = (row / b, row % b);
        for col in 0..n {
            let (j, c) = (col / b, col % b);
            out[row * n + col] = w[i * b * n + j * b + (c + b - r) % b];
        }
    }
    out
}

/// The kernels K[i][j][0][l] = W[ib][jb + l] (zero bias), or an error if W is not
/// block-circulant.
pub fn conv_weights(f: &FcSpec, w: &LayerWeights) -> Result<LayerWeights, LinearError> {
    if !is_block_circulant(f, &w.weights) {
        return Err(LinearError::BadShape {
            reason: "circulant: the weights are not block-circulant with the layer's block size",
        });
    }
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

/// Cheetah on the 1-D convolution of a block-circulant FC (module docs). Applies to FC layers
/// with block > 1; the `cost` of any other layer is an error.
#[derive(Clone, Copy, Debug, Default)]
pub struct Circulant {
    cheetah: Cheetah,
}

impl Circulant {
    pub fn new(config: CheetahConfig) -> Circulant {
        Circulant {
            cheetah: Cheetah::new(config),
        }
    }

    pub fn config(&self) -> CheetahConfig {
        self.cheetah.config
    }

    /// The convolution layer that runs `layer`.
    fn conv(layer: &LayerSpec) -> Result<LayerSpec, LinearError> {
        let f = circulant_fc(layer).ok_or(LinearError::BadShape {
            reason: "circulant: only FC layers with a circulant block size > 1",
        })?;
        layer.validate()?;
        Ok(LayerSpec::conv(as_conv(&f), layer.weight_bits))
    }

    /// Cheetah's plan of the convolution that runs `layer`.
    pub fn plan(&self, layer: &LayerSpec, ring: Ring) -> Result<CheetahPlan, LinearError> {
        self.cheetah.plan(&Self::conv(layer)?, ring)
    }
}

impl LinearProtocol for Circulant {
    fn name(&self) -> &'static str {
        "circulant"
    }

    fn cost(&self, layer: &LayerSpec, ring: Ring) -> Result<Cost, LinearError> {
        self.cheetah.cost(&Self::conv(layer)?, ring)
    }

    fn estimated_seconds(
        &self,
        layer: &LayerSpec,
        ring: Ring,
        bandwidth: f64,
    ) -> Result<f64, LinearError> {
        self.cheetah
            .estimated_seconds(&Self::conv(layer)?, ring, bandwidth)
    }

    fn weight_bytes(&self, layer: &LayerSpec, ring: Ring) -> Result<u64, LinearError> {
        self.cheetah.weight_bytes(&Self::conv(layer)?, ring)
    }

    fn keys_needed(&self, layer: &LayerSpec, ring: Ring) -> Result<Vec<KeyRequest>, LinearError> {
        self.cheetah.keys_needed(&Self::conv(layer)?, ring)
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
        let conv = Self::conv(layer)?;
        crate::cheetah::check_len("client input share", x, layer.input_len())?;
        let f = circulant_fc(layer).expect("checked by conv");
        self.cheetah
            .client(&conv, ring, keys, &extend_input(&f, x), ch, rng)
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
        let conv = Self::conv(layer)?;
        crate::cheetah::check_len("server input share", x, layer.input_len())?;
        weights.validate(layer, ring)?;
        let f = circulant_fc(layer).expect("checked by conv");
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
