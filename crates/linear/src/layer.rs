//! Crate-local description of a linear layer, its weights, and the direct integer oracle.
//!
//! Values live in the share ring Z_{2^ℓ} as `u64` (two's complement, reduced mod 2^ℓ); layouts are
//! NCHW row-major with batch 1, the same as the fixed-point reference executor
//! (docs/fixed-point.md): a linear layer computes y = W·x + b mod 2^ℓ with W at scale 2^s, x at 2^s
//! and b at 2^{2s}, and no truncation.

use serde::{Deserialize, Serialize};

use crate::LinearError;

/// The share ring Z_{2^ℓ}, 2 ≤ ℓ ≤ 62.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Ring {
    ell: u32,
}

impl Ring {
    /// Largest supported ℓ: plaintext products are formed in u64 with wrapping arithmetic.
    pub const MAX_BITS: u32 = 62;

    pub fn new(ell: u32) -> Result<Ring, LinearError> {
        if !(2..=Self::MAX_BITS).contains(&ell) {
            return Err(LinearError::RingBits {
                ell,
                max: Self::MAX_BITS,
            });
        }
        Ok(Ring { ell })
    }

    pub fn bits(&self) -> u32 {
        self.ell
    }

    pub fn mask(&self) -> u64 {
        (1u64 << self.ell) - 1
    }

    pub fn reduce(&self, x: u64) -> u64 {
        x & self.mask()
    }

    /// Signed (centered) lift of x mod 2^ℓ into [−2^{ℓ−1}, 2^{ℓ−1}).
    pub fn signed(&self, x: u64) -> i64 {
        let x = x & self.mask();
        let half = 1u64 << (self.ell - 1);
        if x >= half {
            x as i64 - (1i64 << self.ell)
        } else {
            x as i64
        }
    }

    /// Embeds a signed integer into the ring.
    pub fn from_signed(&self, v: i64) -> u64 {
        (v as u64) & self.mask()
    }

    /// Whether every element is reduced mod 2^ℓ.
    pub fn check(&self, what: &'static str, xs: &[u64]) -> Result<(), LinearError> {
        match xs.iter().position(|&x| x > self.mask()) {
            Some(index) => Err(LinearError::NotReduced {
                what,
                index,
                ell: self.ell,
            }),
            None => Ok(()),
        }
    }
}

/// A 2-D convolution on a C×H×W input, M output channels, kh×kw kernel, symmetric zero padding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Conv2dSpec {
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub m: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: usize,
    pub padding: usize,
    pub groups: usize,
    /// Public structure: for every kernel tap, every `block`×`block` block of the (M, C) weight
    /// matrix is circulant (PrivCirNet's block-circulant convolutions, `linear::circulant`);
    /// 1 for dense weights. Only with groups = 1. Protocols that ignore it are correct for any
    /// weights; those that use it check them.
    #[serde(default = "one")]
    pub block: usize,
}

impl Conv2dSpec {
    /// A conv on a square C×H×H input with a square k×k kernel.
    pub fn square(
        c: usize,
        h: usize,
        m: usize,
        k: usize,
        stride: usize,
        padding: usize,
        groups: usize,
    ) -> Conv2dSpec {
        Conv2dSpec {
            c,
            h,
            w: h,
            m,
            kh: k,
            kw: k,
            stride,
            padding,
            groups,
            block: 1,
        }
    }

    pub fn out_h(&self) -> usize {
        (self.h + 2 * self.padding - self.kh) / self.stride + 1
    }
    pub fn out_w(&self) -> usize {
        (self.w + 2 * self.padding - self.kw) / self.stride + 1
    }
    /// Input channels seen by one output channel.
    pub fn c_per_group(&self) -> usize {
        self.c / self.groups
    }
    pub fn m_per_group(&self) -> usize {
        self.m / self.groups
    }
    /// The group of output channel `m`.
    pub fn group_of_output(&self, m: usize) -> usize {
        m / self.m_per_group()
    }
}

/// A fully connected layer y = W·x + b with W of shape out×in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FcSpec {
    pub inputs: usize,
    pub outputs: usize,
    /// Public structure: every `block`×`block` block of W is circulant (PrivCirNet's
    /// block-circulant layers, `linear::circulant`); 1 for a dense W. Protocols that ignore it
    /// are correct for any W; those that use it check the weights.
    #[serde(default = "one")]
    pub block: usize,
}

fn one() -> usize {
    1
}

/// An element-wise per-channel scale `y[c,h,w] = γ[c]·x[c,h,w] + β[c]` (a batch norm that could not
/// be folded into a convolution).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ScaleSpec {
    pub c: usize,
    pub h: usize,
    pub w: usize,
}

/// A token × weight product Y = X·Wᵀ + b (a transformer's linear layer): X of `rows` × `inputs`
/// (row-major, one row per token), W of `outputs` × `inputs`, Y of `rows` × `outputs`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MatMulSpec {
    pub rows: usize,
    pub inputs: usize,
    pub outputs: usize,
    /// Public structure, as [`FcSpec::block`]: every `block`×`block` block of W is circulant
    /// (PrivCirNet's block-circulant transformer layers); 1 for a dense W.
    #[serde(default = "one")]
    pub block: usize,
}

/// The shape of a linear layer: public (the architecture is public in the threat model).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LayerShape {
    Conv2d(Conv2dSpec),
    Fc(FcSpec),
    Scale(ScaleSpec),
    MatMul(MatMulSpec),
}

/// A linear layer as the protocols see it: its shape, plus the public bound on the weights'
/// magnitude (|w| < 2^weight_bits as signed integers), which fixes the noise-flooding width.
///
/// `weight_bits` is public like the architecture: it reveals at most the bit length of the largest
/// weight of the layer (see docs/security.md). [`weight_bits_of`] computes the tightest value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LayerSpec {
    pub shape: LayerShape,
    pub weight_bits: u32,
}

impl LayerSpec {
    pub fn conv(c: Conv2dSpec, weight_bits: u32) -> LayerSpec {
        LayerSpec {
            shape: LayerShape::Conv2d(c),
            weight_bits,
        }
    }
    pub fn fc(inputs: usize, outputs: usize, weight_bits: u32) -> LayerSpec {
        LayerSpec {
            shape: LayerShape::Fc(FcSpec {
                inputs,
                outputs,
                block: 1,
            }),
            weight_bits,
        }
    }
    /// An FC whose `block`×`block` weight blocks are circulant (`block` a power of two dividing
    /// both dimensions).
    pub fn circulant_fc(
        inputs: usize,
        outputs: usize,
        block: usize,
        weight_bits: u32,
    ) -> LayerSpec {
        LayerSpec {
            shape: LayerShape::Fc(FcSpec {
                inputs,
                outputs,
                block,
            }),
            weight_bits,
        }
    }
    pub fn matmul(rows: usize, inputs: usize, outputs: usize, weight_bits: u32) -> LayerSpec {
        LayerSpec::circulant_matmul(rows, inputs, outputs, 1, weight_bits)
    }
    /// A token × weight product whose `block`×`block` weight blocks are circulant (`block` a
    /// power of two dividing both feature counts).
    pub fn circulant_matmul(
        rows: usize,
        inputs: usize,
        outputs: usize,
        block: usize,
        weight_bits: u32,
    ) -> LayerSpec {
        LayerSpec {
            shape: LayerShape::MatMul(MatMulSpec {
                rows,
                inputs,
                outputs,
                block,
            }),
            weight_bits,
        }
    }

    /// `batch` independent token × weight products (rows × inputs times outputs × inputs
    /// weights each) as one grouped 1×1 convolution: group h holds product h, its input channel
    /// i at pixel r is feature i of token r (the input is each product's transposed input,
    /// stacked), its output channel o at pixel r is output o of token r (the output is each
    /// product's transposed output, stacked); weights `[batch·outputs][inputs]`.
    pub fn batched_matmul(
        batch: usize,
        rows: usize,
        inputs: usize,
        outputs: usize,
        weight_bits: u32,
    ) -> LayerSpec {
        LayerSpec::conv(
            Conv2dSpec {
                c: batch * inputs,
                h: rows,
                w: 1,
                m: batch * outputs,
                kh: 1,
                kw: 1,
                stride: 1,
                padding: 0,
                groups: batch,
                block: 1,
            },
            weight_bits,
        )
    }

    /// A token × weight product as the 1×1 convolution that computes it on the transposed input:
    /// feature i of token r is pixel r of channel i (C = inputs, H = rows, W = 1, M = outputs),
    /// the weights and biases laid out alike, the circulant block kept (the (M, C) matrix of its
    /// one tap is W). The protocols run this and transpose the shares before and after
    /// ([`transpose`]: a public permutation, each party applies it to its own share).
    pub fn matmul_as_conv(&self) -> Option<LayerSpec> {
        match self.shape {
            LayerShape::MatMul(m) => Some(LayerSpec::conv(
                Conv2dSpec {
                    c: m.inputs,
                    h: m.rows,
                    w: 1,
                    m: m.outputs,
                    kh: 1,
                    kw: 1,
                    stride: 1,
                    padding: 0,
                    groups: 1,
                    block: m.block,
                },
                self.weight_bits,
            )),
            _ => None,
        }
    }

    pub fn scale(c: usize, h: usize, w: usize, weight_bits: u32) -> LayerSpec {
        LayerSpec {
            shape: LayerShape::Scale(ScaleSpec { c, h, w }),
            weight_bits,
        }
    }

    /// Checks the shape is well formed.
    pub fn validate(&self) -> Result<(), LinearError> {
        let bad = |reason: &'static str| Err(LinearError::BadShape { reason });
        if self.weight_bits == 0 || self.weight_bits > 62 {
            return bad("weight_bits must be in 1..=62");
        }
        match self.shape {
            LayerShape::Conv2d(c) => {
                if c.c == 0 || c.h == 0 || c.w == 0 || c.m == 0 || c.kh == 0 || c.kw == 0 {
                    return bad("conv dimensions must be positive");
                }
                if c.stride == 0 {
                    return bad("conv stride must be positive");
                }
                if c.groups == 0 || c.c % c.groups != 0 || c.m % c.groups != 0 {
                    return bad("conv groups must divide both C and M");
                }
                if c.h + 2 * c.padding < c.kh || c.w + 2 * c.padding < c.kw {
                    return bad("conv kernel larger than the padded input");
                }
                if !c.block.is_power_of_two()
                    || c.c % c.block != 0
                    || c.m % c.block != 0
                    || (c.block > 1 && c.groups != 1)
                {
                    return bad(
                        "conv circulant block must be a power of two dividing C and M, groups 1",
                    );
                }
                Ok(())
            }
            LayerShape::Fc(f) => {
                if f.inputs == 0 || f.outputs == 0 {
                    return bad("fc dimensions must be positive");
                }
                if !f.block.is_power_of_two() || f.inputs % f.block != 0 || f.outputs % f.block != 0
                {
                    return bad(
                        "fc circulant block must be a power of two dividing both dimensions",
                    );
                }
                Ok(())
            }
            LayerShape::Scale(s) => {
                if s.c == 0 || s.h == 0 || s.w == 0 {
                    return bad("scale dimensions must be positive");
                }
                Ok(())
            }
            LayerShape::MatMul(m) => {
                if m.rows == 0 || m.inputs == 0 || m.outputs == 0 {
                    return bad("matmul dimensions must be positive");
                }
                if !m.block.is_power_of_two() || m.inputs % m.block != 0 || m.outputs % m.block != 0
                {
                    return bad(
                        "matmul circulant block must be a power of two dividing both dimensions",
                    );
                }
                Ok(())
            }
        }
    }

    pub fn input_len(&self) -> usize {
        match self.shape {
            LayerShape::Conv2d(c) => c.c * c.h * c.w,
            LayerShape::Fc(f) => f.inputs,
            LayerShape::Scale(s) => s.c * s.h * s.w,
            LayerShape::MatMul(m) => m.rows * m.inputs,
        }
    }

    pub fn output_len(&self) -> usize {
        match self.shape {
            LayerShape::Conv2d(c) => c.m * c.out_h() * c.out_w(),
            LayerShape::Fc(f) => f.outputs,
            LayerShape::Scale(s) => s.c * s.h * s.w,
            LayerShape::MatMul(m) => m.rows * m.outputs,
        }
    }

    /// Number of weights: conv M×(C/groups)×kh×kw, FC out×in, scale C.
    pub fn weight_len(&self) -> usize {
        match self.shape {
            LayerShape::Conv2d(c) => c.m * c.c_per_group() * c.kh * c.kw,
            LayerShape::Fc(f) => f.inputs * f.outputs,
            LayerShape::Scale(s) => s.c,
            LayerShape::MatMul(m) => m.inputs * m.outputs,
        }
    }

    /// Number of biases: one per output channel (conv, scale) or output (FC).
    pub fn bias_len(&self) -> usize {
        match self.shape {
            LayerShape::Conv2d(c) => c.m,
            LayerShape::Fc(f) => f.outputs,
            LayerShape::Scale(s) => s.c,
            LayerShape::MatMul(m) => m.outputs,
        }
    }

    /// Multiply-accumulates of the layer.
    pub fn macs(&self) -> u64 {
        match self.shape {
            LayerShape::Conv2d(c) => {
                (c.m * c.out_h() * c.out_w() * c.c_per_group() * c.kh * c.kw) as u64
            }
            LayerShape::Fc(f) => (f.inputs * f.outputs) as u64,
            LayerShape::Scale(s) => (s.c * s.h * s.w) as u64,
            LayerShape::MatMul(m) => (m.rows * m.inputs * m.outputs) as u64,
        }
    }

    /// The convolution that computes this layer: a scale is a depthwise 1×1 convolution.
    pub(crate) fn as_conv(&self) -> Option<Conv2dSpec> {
        match self.shape {
            LayerShape::Conv2d(c) => Some(c),
            LayerShape::Scale(s) => Some(Conv2dSpec {
                c: s.c,
                h: s.h,
                w: s.w,
                m: s.c,
                kh: 1,
                kw: 1,
                stride: 1,
                padding: 0,
                groups: s.c,
                block: 1,
            }),
            LayerShape::Fc(_) | LayerShape::MatMul(_) => None,
        }
    }
}

/// For a token × weight product, one protocol half run as its 1×1 convolution
/// ([`LayerSpec::matmul_as_conv`]): `x` (this party's share, rows × inputs) is transposed for
/// `half`, and its output (outputs × rows) transposed back. `None` for any other layer.
pub(crate) fn via_matmul_conv(
    layer: &LayerSpec,
    x: &[u64],
    half: impl FnOnce(&LayerSpec, &[u64]) -> Result<Vec<u64>, LinearError>,
) -> Option<Result<Vec<u64>, LinearError>> {
    let (LayerShape::MatMul(m), Some(conv)) = (layer.shape, layer.matmul_as_conv()) else {
        return None;
    };
    if x.len() != layer.input_len() {
        return Some(Err(LinearError::Length {
            what: "input share",
            expected: layer.input_len(),
            got: x.len(),
        }));
    }
    Some(half(&conv, &transpose(x, m.rows, m.inputs)).map(|y| transpose(&y, m.outputs, m.rows)))
}

/// `x` (row-major `rows` × `cols`) transposed to row-major `cols` × `rows`.
pub fn transpose(x: &[u64], rows: usize, cols: usize) -> Vec<u64> {
    let mut y = vec![0u64; x.len()];
    for r in 0..rows {
        for c in 0..cols {
            y[c * rows + r] = x[r * cols + c];
        }
    }
    y
}

/// The server's secret weights of one layer, in Z_{2^ℓ}: conv weights laid out
/// `[M][C/groups][kh][kw]`, FC and matmul weights `[out][in]`, scale factors `[C]`; biases at
/// scale 2^{2s}.
/// No `Debug`: the weights are the server's secret.
#[derive(Clone)]
pub struct LayerWeights {
    pub weights: Vec<u64>,
    pub bias: Vec<u64>,
}

impl LayerWeights {
    /// Checks lengths, reduction mod 2^ℓ and the public magnitude bound |w| < 2^weight_bits.
    pub fn validate(&self, layer: &LayerSpec, ring: Ring) -> Result<(), LinearError> {
        if self.weights.len() != layer.weight_len() {
            return Err(LinearError::Length {
                what: "weights",
                expected: layer.weight_len(),
                got: self.weights.len(),
            });
        }
        if self.bias.len() != layer.bias_len() {
            return Err(LinearError::Length {
                what: "bias",
                expected: layer.bias_len(),
                got: self.bias.len(),
            });
        }
        ring.check("weights", &self.weights)?;
        ring.check("bias", &self.bias)?;
        let bits = weight_bits_of(&self.weights, ring);
        if bits > layer.weight_bits {
            return Err(LinearError::WeightBound {
                bits,
                declared: layer.weight_bits,
            });
        }
        Ok(())
    }
}

/// Smallest b ≥ 1 with |w| < 2^b for every weight (signed lift from Z_{2^ℓ}).
pub fn weight_bits_of(weights: &[u64], ring: Ring) -> u32 {
    let max = weights
        .iter()
        .map(|&w| ring.signed(w).unsigned_abs())
        .max()
        .unwrap_or(0);
    (64 - max.leading_zeros()).max(1)
}

/// Direct integer evaluation of y = W·x + b mod 2^ℓ: the oracle for every protocol in this crate
/// (independent of any encoding), equal to the fixed-point reference's linear kernels.
pub fn reference(layer: &LayerSpec, ring: Ring, w: &LayerWeights, x: &[u64]) -> Vec<u64> {
    match layer.shape {
        LayerShape::MatMul(m) => (0..m.rows * m.outputs)
            .map(|k| {
                let (r, o) = (k / m.outputs, k % m.outputs);
                let row = &w.weights[o * m.inputs..(o + 1) * m.inputs];
                let xr = &x[r * m.inputs..(r + 1) * m.inputs];
                let acc = row.iter().zip(xr).fold(w.bias[o], |a, (&wi, &xi)| {
                    a.wrapping_add(wi.wrapping_mul(xi))
                });
                ring.reduce(acc)
            })
            .collect(),
        LayerShape::Fc(f) => (0..f.outputs)
            .map(|o| {
                let row = &w.weights[o * f.inputs..(o + 1) * f.inputs];
                let acc = row.iter().zip(x).fold(w.bias[o], |a, (&wi, &xi)| {
                    a.wrapping_add(wi.wrapping_mul(xi))
                });
                ring.reduce(acc)
            })
            .collect(),
        LayerShape::Conv2d(_) | LayerShape::Scale(_) => {
            let c = layer.as_conv().expect("conv or scale");
            let (ho, wo) = (c.out_h(), c.out_w());
            let cg = c.c_per_group();
            let mut y = vec![0u64; c.m * ho * wo];
            for m in 0..c.m {
                let g = c.group_of_output(m);
                for i in 0..ho {
                    for j in 0..wo {
                        let mut acc = w.bias[m];
                        for cc in 0..cg {
                            let ch = g * cg + cc;
                            for l in 0..c.kh {
                                let r = (i * c.stride + l) as isize - c.padding as isize;
                                if r < 0 || r >= c.h as isize {
                                    continue;
                                }
                                for l2 in 0..c.kw {
                                    let q = (j * c.stride + l2) as isize - c.padding as isize;
                                    if q < 0 || q >= c.w as isize {
                                        continue;
                                    }
                                    let xv = x[ch * c.h * c.w + r as usize * c.w + q as usize];
                                    let wv = w.weights[((m * cg + cc) * c.kh + l) * c.kw + l2];
                                    acc = acc.wrapping_add(wv.wrapping_mul(xv));
                                }
                            }
                        }
                        y[(m * ho + i) * wo + j] = ring.reduce(acc);
                    }
                }
            }
            y
        }
    }
}
