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

/// An error unless W is block-circulant with the layer's block size (both encodings read only
/// row 0 of every block).
fn check_circulant(f: &FcSpec, w: &LayerWeights) -> Result<(), LinearError> {
    if is_block_circulant(f, &w.weights) {
        Ok(())
    } else {
        Err(LinearError::BadShape {
            reason: "circulant: the weights are not block-circulant with the layer's block size",
        })
    }
}

/// The kernels K[i][j][0][l] = W[ib][jb + l] (zero bias), or an error if W is not
/// block-circulant.
pub fn conv_weights(f: &FcSpec, w: &LayerWeights) -> Result<LayerWeights, LinearError> {
    check_circulant(f, w)?;
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

/// A block-circulant FC by Cheetah, either as the 1-D convolution of the extended input (module
/// docs) or directly with several output blocks per product ([`CircTiling`]), whichever has the
/// lower estimated time. Applies to FC layers with block > 1; the `cost` of any other layer is
/// an error.
#[derive(Clone, Copy, Debug, Default)]
pub struct Circulant {
    cheetah: Cheetah,
}

/// How a layer runs.
enum Path {
    Conv(LayerSpec),
    Blocks,
}

impl Circulant {
    pub fn new(config: CheetahConfig) -> Circulant {
        Circulant {
            cheetah: Cheetah::new(config),
        }
    }

    /// Cheetah planning the FC itself with the several-blocks encodings among its candidates.
    fn direct(&self) -> Cheetah {
        Cheetah::new(CheetahConfig {
            circulant: true,
            ..self.cheetah.config
        })
    }

    fn path(&self, layer: &LayerSpec, ring: Ring) -> Result<Path, LinearError> {
        let conv = Self::conv(layer)?;
        let bw = self.cheetah.config.bandwidth_bytes_per_s as f64;
        let by_conv = self.cheetah.estimated_seconds(&conv, ring, bw)?;
        let plan = self.direct().plan(layer, ring)?;
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
            reason: "circulant: only FC layers with a circulant block size > 1",
        })?;
        layer.validate()?;
        Ok(LayerSpec::conv(as_conv(&f), layer.weight_bits))
    }

    /// The plan that runs `layer` (of its convolution, or of the FC itself).
    pub fn plan(&self, layer: &LayerSpec, ring: Ring) -> Result<CheetahPlan, LinearError> {
        match self.path(layer, ring)? {
            Path::Conv(conv) => self.cheetah.plan(&conv, ring),
            Path::Blocks => self.direct().plan(layer, ring),
        }
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
        match self.path(layer, ring)? {
            Path::Conv(conv) => self.cheetah.weight_bytes(&conv, ring),
            Path::Blocks => self.direct().weight_bytes(layer, ring),
        }
    }

    fn keys_needed(&self, layer: &LayerSpec, ring: Ring) -> Result<Vec<KeyRequest>, LinearError> {
        match self.path(layer, ring)? {
            Path::Conv(conv) => self.cheetah.keys_needed(&conv, ring),
            Path::Blocks => self.direct().keys_needed(layer, ring),
        }
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
        let path = self.path(layer, ring)?;
        crate::cheetah::check_len("client input share", x, layer.input_len())?;
        let f = circulant_fc(layer).expect("checked by path");
        match path {
            Path::Conv(conv) => {
                self.cheetah
                    .client(&conv, ring, keys, &extend_input(&f, x), ch, rng)
            }
            Path::Blocks => self.direct().client(layer, ring, keys, x, ch, rng),
        }
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
        let f = circulant_fc(layer).expect("checked by path");
        let conv = match path {
            Path::Blocks => {
                check_circulant(&f, weights)?;
                return self.direct().server(layer, ring, keys, weights, x, ch, rng);
            }
            Path::Conv(conv) => conv,
        };
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

/// Several output blocks per weight polynomial (the "b× fewer products" encoding): input tile
/// ci holds c_t circularly extended channels of length L = 2b − 1 at stride L; the weight
/// polynomial (og, ci) holds, for each of n_o output blocks oo, the kernels of its c_t channels
/// at period P = c_t·L: K[i][j][l] at oo·P + O − jj·L − l with O = (c_t − 1)·L + b − 1; output
/// (i, q) of block oo lands on oo·P + O + q.
///
/// Non-interference: within block oo, Cheetah's conv argument (|t − l − q| < L forces the same
/// channel and t = q + l); block oo's terms occupy oo·P + [0, (2c_t − 1)·L + b − 2], which ends
/// one before block oo + 1's first output ((oo + 1)·P + O) and starts after block oo − 1's last
/// ((oo − 1)·P + O + b − 1 = oo·P − L + 2b − 2 < oo·P); with n_o·P ≤ N a wrapped term lands below
/// O, under block 0's outputs, and every output stays below N (no sign flip).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct CircTiling {
    pub n: usize,
    /// Channels (input blocks) per input polynomial and output blocks per weight polynomial.
    pub c_t: usize,
    pub n_o: usize,
    /// Channel tiles and output groups.
    pub n_c: usize,
    pub n_g: usize,
}

impl CircTiling {
    /// Balanced channel tiles × the most output blocks that fit, at degree n.
    pub fn candidates(f: &FcSpec, n: usize) -> Vec<CircTiling> {
        let b = f.block;
        if b < 2 {
            return Vec::new();
        }
        let (chans, blocks, l) = (f.inputs / b, f.outputs / b, 2 * b - 1);
        let mut out = Vec::new();
        let mut last = 0;
        for n_c in 1..=chans {
            let c_t = chans.div_ceil(n_c);
            if c_t == last || c_t * l > n {
                continue;
            }
            last = c_t;
            let max_o = (n / (c_t * l)).min(blocks);
            let n_g = blocks.div_ceil(max_o);
            out.push(CircTiling {
                n,
                c_t,
                n_o: blocks.div_ceil(n_g),
                n_c: chans.div_ceil(c_t),
                n_g,
            });
        }
        out
    }

    fn len(b: usize) -> usize {
        2 * b - 1
    }

    /// Input polynomial ci from the FC input x (not extended).
    pub fn encode_input(&self, f: &FcSpec, x: &[u64], ci: usize) -> Vec<u64> {
        let (b, l) = (f.block, Self::len(f.block));
        let mut poly = vec![0u64; self.n];
        for jj in 0..self.c_t {
            let j = ci * self.c_t + jj;
            if j >= f.inputs / b {
                break;
            }
            for t in 0..l {
                poly[jj * l + t] = x[j * b + t % b];
            }
        }
        poly
    }

    /// Weight polynomial key = og·n_c + ci from the dense W (row 0 of each block), signed.
    pub fn encode_weights(&self, f: &FcSpec, ring: Ring, w: &[u64], key: usize) -> Vec<i64> {
        let (b, l, n) = (f.block, Self::len(f.block), f.inputs);
        let (og, ci) = (key / self.n_c, key % self.n_c);
        let (p, o) = (self.c_t * l, (self.c_t - 1) * l + b - 1);
        let mut poly = vec![0i64; self.n];
        for oo in 0..self.n_o {
            let i = og * self.n_o + oo;
            if i >= f.outputs / b {
                break;
            }
            for jj in 0..self.c_t {
                let j = ci * self.c_t + jj;
                if j >= n / b {
                    break;
                }
                for ll in 0..b {
                    poly[oo * p + o - jj * l - ll] = ring.signed(w[i * b * n + j * b + ll]);
                }
            }
        }
        poly
    }

    /// Output blocks of group og.
    fn blocks_of(&self, f: &FcSpec, og: usize) -> usize {
        self.n_o.min(f.outputs / f.block - og * self.n_o)
    }

    /// (coefficient, output index) of output polynomial og, increasing.
    pub fn output_positions(&self, f: &FcSpec, og: usize) -> Vec<(usize, usize)> {
        let (b, l) = (f.block, Self::len(f.block));
        let (p, o) = (self.c_t * l, (self.c_t - 1) * l + b - 1);
        let mut out = Vec::new();
        for oo in 0..self.blocks_of(f, og) {
            let i = og * self.n_o + oo;
            for q in 0..b {
                out.push((oo * p + o + q, i * b + q));
            }
        }
        out
    }

    /// Outputs of output polynomial og.
    pub fn kept(&self, f: &FcSpec, og: usize) -> usize {
        self.blocks_of(f, og) * f.block
    }

    /// Query support of input polynomial ci: target − weight position over every output block
    /// pair of a group, (d·P + v) mod N for |d| < n_o and v < (channels of the tile)·L.
    pub fn query_support(&self, f: &FcSpec, ci: usize) -> Vec<usize> {
        let l = Self::len(f.block);
        let chans = self.c_t.min(f.inputs / f.block - ci * self.c_t);
        let p = (self.c_t * l) as i64;
        let mut hit = vec![false; self.n];
        for d in -(self.n_o as i64 - 1)..self.n_o as i64 {
            for v in 0..chans * l {
                hit[(d * p + v as i64).rem_euclid(self.n as i64) as usize] = true;
            }
        }
        (0..self.n).filter(|&c| hit[c]).collect()
    }

    /// Nonzero weights an output meets over its products: n_o blocks × all inputs.
    pub fn taps(&self, f: &FcSpec) -> usize {
        self.n_o * f.inputs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::negacyclic;
    use rand::{Rng, SeedableRng};

    /// Every candidate CircTiling of block-circulant FCs computes W·x exactly as plain negacyclic
    /// products over Z_{2^64} summed over channel tiles, and reads only inside the query support.
    #[test]
    fn several_blocks_per_product_are_exact() {
        let ring = Ring::new(40).unwrap();
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(5);
        for (inputs, outputs, b, n) in [
            (32, 16, 4, 64),
            (48, 64, 8, 128),
            (64, 64, 16, 256),
            (8, 24, 2, 32),
        ] {
            let f = FcSpec {
                inputs,
                outputs,
                block: b,
            };
            let raw: Vec<u64> = (0..inputs * outputs)
                .map(|_| ring.reduce(rng.gen_range(-100i64..100) as u64))
                .collect();
            let w = project(&f, &raw);
            let x: Vec<u64> = (0..inputs).map(|_| rng.gen()).collect();
            let want: Vec<u64> = (0..outputs)
                .map(|r| {
                    (0..inputs).fold(0u64, |a, c| {
                        a.wrapping_add(x[c].wrapping_mul(ring.signed(w[r * inputs + c]) as u64))
                    })
                })
                .collect();
            let cands = CircTiling::candidates(&f, n);
            assert!(cands.iter().any(|t| t.n_o > 1), "{f:?}");
            for t in cands {
                for og in 0..t.n_g {
                    let mut acc = vec![0u64; n];
                    for ci in 0..t.n_c {
                        let xi = t.encode_input(&f, &x, ci);
                        let wp = t.encode_weights(&f, ring, &w, og * t.n_c + ci);
                        for (k, v) in negacyclic(&xi, &wp).into_iter().enumerate() {
                            acc[k] = acc[k].wrapping_add(v);
                        }
                        let support = t.query_support(&f, ci);
                        for (bpos, _) in wp.iter().enumerate().filter(|(_, v)| **v != 0) {
                            for &(c, _) in &t.output_positions(&f, og) {
                                let a = (c + n - bpos) % n;
                                assert!(support.binary_search(&a).is_ok(), "{t:?}");
                            }
                        }
                    }
                    for (c, out) in t.output_positions(&f, og) {
                        assert_eq!(acc[c], want[out], "{t:?} output {out}");
                    }
                }
            }
        }
    }
}
