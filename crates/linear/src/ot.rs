//! OT-based linear layers (CrypTFlow2's OT linear layers, the comparison row of CoPriv): the
//! layer's matrix product on shares by correlated OT ([`mpc::Session::product_server`]), one
//! COT per bit of each element of the client's share with the weights that element meets as
//! the correlation. No HE, no keys; the cost is COTs and their correlation bits
//! (docs/protocols/copriv.md § OT linear layers).
//!
//! Every layer shape is a column map x ↦ W·x ([`LayerColumns`]): a conv input pixel reaches
//! the outputs of its group at each kernel tap that lands inside the output (im2col's entries,
//! counted once per pixel and tap, zero padding skipped: padding is public and costs nothing).

use rand_core::CryptoRngCore;
use transport::Channel;

use crate::keys::{ClientKeys, KeyRequest, ServerKeys};
use crate::layer::{Conv2dSpec, LayerShape, LayerSpec, LayerWeights, Ring};
use crate::{Cost, LinearError, LinearProtocol};

/// Compute per byte the server sends (pad expansion with AES, packing, accumulation) and per
/// COT consumed (hashing the COT strings, the per-column work), fitted on the OT and Winograd
/// rows of `privinfer bench linear --model resnet20 --only layer1.0.conv1` (2-core EPYC:
/// 806 ms for 606 k COTs and 199 MB, 633 ms for 2.42 M COTs and 92 MB; BENCHMARKS.md § OT and
/// Winograd linear layers).
pub const SECONDS_PER_BYTE: f64 = 3.7e-9;
pub const SECONDS_PER_COT: f64 = 120e-9;

/// Silent-OT generation per COT (large LPN set: ≈ 0.45 bits on the wire; 85–180 ns per COT in
/// the same runs, by where the LPN iterations fall).
pub const COT_GENERATION_SECONDS: f64 = 150e-9;
pub const COT_BITS: f64 = 0.45;

/// The column structure of a layer: which outputs each input element reaches, and with which
/// weight (index into [`LayerWeights::weights`]).
pub(crate) enum LayerColumns {
    Conv(Conv2dSpec),
    Fc {
        inputs: usize,
        outputs: usize,
    },
    MatMul {
        rows: usize,
        inputs: usize,
        outputs: usize,
    },
}

impl LayerColumns {
    pub fn new(layer: &LayerSpec) -> Result<LayerColumns, LinearError> {
        layer.validate()?;
        Ok(match layer.shape {
            LayerShape::Conv2d(_) | LayerShape::Scale(_) => {
                LayerColumns::Conv(layer.as_conv().expect("conv or scale"))
            }
            LayerShape::Fc(f) => LayerColumns::Fc {
                inputs: f.inputs,
                outputs: f.outputs,
            },
            LayerShape::MatMul(m) => LayerColumns::MatMul {
                rows: m.rows,
                inputs: m.inputs,
                outputs: m.outputs,
            },
        })
    }

    /// Calls `f(row, weight index)` for every output input `j` reaches, in a fixed order.
    fn for_each(&self, j: usize, mut f: impl FnMut(usize, usize)) {
        match *self {
            LayerColumns::Conv(c) => {
                let (ho, wo) = (c.out_h(), c.out_w());
                let (cg, mg) = (c.c_per_group(), c.m_per_group());
                let (ch, r, q) = (j / (c.h * c.w), (j / c.w) % c.h, j % c.w);
                let (g, cc) = (ch / cg, ch % cg);
                for l in 0..c.kh {
                    // Output row i reads input row i·stride + l − padding.
                    let rp = r + c.padding;
                    if rp < l || (rp - l) % c.stride != 0 || (rp - l) / c.stride >= ho {
                        continue;
                    }
                    let i = (rp - l) / c.stride;
                    for l2 in 0..c.kw {
                        let qp = q + c.padding;
                        if qp < l2 || (qp - l2) % c.stride != 0 || (qp - l2) / c.stride >= wo {
                            continue;
                        }
                        let jj = (qp - l2) / c.stride;
                        for m in g * mg..(g + 1) * mg {
                            f(
                                (m * ho + i) * wo + jj,
                                ((m * cg + cc) * c.kh + l) * c.kw + l2,
                            );
                        }
                    }
                }
            }
            LayerColumns::Fc { inputs, outputs } => {
                for o in 0..outputs {
                    f(o, o * inputs + j);
                }
            }
            LayerColumns::MatMul {
                inputs, outputs, ..
            } => {
                let (r, i) = (j / inputs, j % inputs);
                for o in 0..outputs {
                    f(r * outputs + o, o * inputs + i);
                }
            }
        }
    }
}

impl mpc::Columns for LayerColumns {
    fn n_in(&self) -> usize {
        match *self {
            LayerColumns::Conv(c) => c.c * c.h * c.w,
            LayerColumns::Fc { inputs, .. } => inputs,
            LayerColumns::MatMul { rows, inputs, .. } => rows * inputs,
        }
    }
    fn n_out(&self) -> usize {
        match *self {
            LayerColumns::Conv(c) => c.m * c.out_h() * c.out_w(),
            LayerColumns::Fc { outputs, .. } => outputs,
            LayerColumns::MatMul { rows, outputs, .. } => rows * outputs,
        }
    }
    fn nnz(&self, j: usize) -> usize {
        let mut n = 0;
        self.for_each(j, |_, _| n += 1);
        n
    }
    fn rows(&self, j: usize, out: &mut Vec<usize>) {
        out.clear();
        self.for_each(j, |r, _| out.push(r));
    }
}

/// The im2col matrix of a convolution as an OT product's columns (CrypTFlow2's OT convolution:
/// one element per (input channel, tap, output pixel), zero padding included, each reaching the
/// outputs of its group at that pixel). Only for comparison rows: [`OtLinear`] skips the
/// padding entries, which are public zeros.
struct Im2col(Conv2dSpec);

impl mpc::Columns for Im2col {
    fn n_in(&self) -> usize {
        let c = self.0;
        c.c * c.kh * c.kw * c.out_h() * c.out_w()
    }
    fn n_out(&self) -> usize {
        let c = self.0;
        c.m * c.out_h() * c.out_w()
    }
    fn nnz(&self, _j: usize) -> usize {
        self.0.m_per_group()
    }
    fn rows(&self, j: usize, out: &mut Vec<usize>) {
        let c = self.0;
        let pix = c.out_h() * c.out_w();
        let (ch, p) = (j / (c.kh * c.kw * pix), j % pix);
        let g = ch / c.c_per_group();
        let mg = c.m_per_group();
        out.clear();
        out.extend((g * mg..(g + 1) * mg).map(|o| o * pix + p));
    }
}

/// What CrypTFlow2's im2col OT convolution costs on a conv layer (`None` for other shapes):
/// the comparison row of CoPriv's Winograd (docs/protocols/copriv.md).
pub fn im2col_cost(layer: &LayerSpec, ring: Ring) -> Result<Option<Cost>, LinearError> {
    layer.validate()?;
    Ok(match layer.shape {
        LayerShape::Conv2d(c) => Some(product_layer_cost(mpc::product_cost(
            &Im2col(c),
            ring.bits(),
        ))),
        _ => None,
    })
}

/// The cost of an OT product with `p` (bytes, messages, COTs) as a layer cost: one round trip.
pub(crate) fn product_layer_cost(p: mpc::ProductCost) -> Cost {
    Cost {
        bytes_c2s: p.bytes_c2s,
        bytes_s2c: p.bytes_s2c,
        messages_c2s: p.messages_c2s,
        messages_s2c: p.messages_s2c,
        rounds: 1,
        cots: p.cots,
        ..Cost::default()
    }
}

/// Estimated seconds of an OT-product layer: wire time (COT generation included) plus the pad
/// work, which scales with the server's bytes.
pub(crate) fn product_seconds(c: &Cost, bandwidth: f64) -> f64 {
    let cot_bytes = c.cots as f64 * COT_BITS / 8.0;
    (c.bytes() as f64 + cot_bytes) / bandwidth
        + c.bytes_s2c as f64 * SECONDS_PER_BYTE
        + c.cots as f64 * (SECONDS_PER_COT + COT_GENERATION_SECONDS)
}

pub(crate) fn mpc_ring(ring: Ring) -> Result<mpc::Ring, LinearError> {
    Ok(mpc::Ring::new(ring.bits())?)
}

/// The OT linear layer for every layer shape.
#[derive(Clone, Copy, Debug, Default)]
pub struct OtLinear;

impl LinearProtocol for OtLinear {
    fn name(&self) -> &'static str {
        "ot"
    }

    fn cost(&self, layer: &LayerSpec, ring: Ring) -> Result<Cost, LinearError> {
        let cols = LayerColumns::new(layer)?;
        Ok(product_layer_cost(mpc::product_cost(&cols, ring.bits())))
    }

    fn estimated_seconds(
        &self,
        layer: &LayerSpec,
        ring: Ring,
        bandwidth: f64,
    ) -> Result<f64, LinearError> {
        Ok(product_seconds(&self.cost(layer, ring)?, bandwidth))
    }

    fn weight_bytes(&self, layer: &LayerSpec, _ring: Ring) -> Result<u64, LinearError> {
        // The weights as they are, one u64 each.
        Ok(layer.weight_len() as u64 * 8)
    }

    fn keys_needed(&self, _layer: &LayerSpec, _ring: Ring) -> Result<Vec<KeyRequest>, LinearError> {
        Ok(Vec::new())
    }

    fn client_in(
        &self,
        layer: &LayerSpec,
        ring: Ring,
        _keys: &ClientKeys,
        x: &[u64],
        session: &mut mpc::Session,
        ch: &mut dyn Channel,
        _rng: &mut dyn CryptoRngCore,
    ) -> Result<Vec<u64>, LinearError> {
        ring.check("input share", x)?;
        let cols = LayerColumns::new(layer)?;
        Ok(session.product_client(ch, mpc_ring(ring)?, &cols, x)?)
    }

    fn server_in(
        &self,
        layer: &LayerSpec,
        ring: Ring,
        _keys: &ServerKeys,
        weights: &LayerWeights,
        x: &[u64],
        session: &mut mpc::Session,
        ch: &mut dyn Channel,
        _rng: &mut dyn CryptoRngCore,
    ) -> Result<Vec<u64>, LinearError> {
        weights.validate(layer, ring)?;
        ring.check("input share", x)?;
        let cols = LayerColumns::new(layer)?;
        let w = &weights.weights;
        let column = |j: usize, out: &mut Vec<u64>| {
            out.clear();
            cols.for_each(j, |_, k| out.push(w[k]));
        };
        let mut y = session.product_server(ch, mpc_ring(ring)?, &cols, &column, x)?;
        add_bias(layer, ring, &weights.bias, &mut y);
        Ok(y)
    }
}

/// y += b per output (channel for convs and scales, feature for FC and token products).
pub(crate) fn add_bias(layer: &LayerSpec, ring: Ring, bias: &[u64], y: &mut [u64]) {
    let per = match layer.shape {
        LayerShape::Conv2d(_) | LayerShape::Scale(_) => {
            let c = layer.as_conv().expect("conv or scale");
            c.out_h() * c.out_w()
        }
        _ => 1,
    };
    let n = bias.len();
    for (k, v) in y.iter_mut().enumerate() {
        *v = ring.reduce(v.wrapping_add(bias[(k / per) % n]));
    }
}
