//! The fixed-point reference executor over Z_{2^ℓ}: the oracle every private protocol is
//! tested against. The semantics are those of `docs/fixed-point.md`:
//!
//! - values are ℓ-bit two's-complement integers, real value `signed(x) / 2^s`;
//! - inputs `round_half_away(x · 2^s)`, weights `round(w · 2^s)`, biases `round(b · 2^{2s})`;
//! - a linear layer (conv, FC, unfolded BN) computes `W·x + b mod 2^ℓ` at scale 2^{2s} with no
//!   truncation ([`conv2d_ring`], [`linear_ring`], [`channel_affine_ring`]), then
//!   [`FixedConfig::truncate`] `t(y) = (signed(y + 2^{s−1} mod 2^ℓ) >> s) mod 2^ℓ`;
//! - ReLU / ReLU6 / MaxPool on signed values, exact data movement, average pooling as
//!   `t(sum · round(2^s / k))`.
//!
//! Elements of Z_{2^ℓ} are `u64` in `[0, 2^ℓ)`; arithmetic is u64 wrapping, reduced mod 2^ℓ.

use crate::error::{NnError, Result};
use crate::ir::{
    broadcast_index_map, gather_map, numel, ChannelAffine, Conv2d, Linear, Model, NodeId, Op, Pool,
    Tensor,
};
use crate::kernels;

/// Ring size ℓ and fractional bits s. Checked: `1 <= s`, `2s + 2 <= ℓ <= 64`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct FixedConfig {
    ell: u32,
    scale: u32,
}

impl Default for FixedConfig {
    /// ℓ = 37, s = 12 (Cheetah's defaults).
    fn default() -> Self {
        FixedConfig { ell: 37, scale: 12 }
    }
}

impl FixedConfig {
    /// A checked configuration: products at scale 2^{2s} must fit the ring with the two
    /// headroom bits the truncation range assumption needs.
    pub fn new(ell: u32, scale: u32) -> Result<Self> {
        let err = |reason| NnError::FixedConfig { ell, scale, reason };
        if ell > 64 {
            return Err(err("ell must be at most 64"));
        }
        if scale == 0 {
            return Err(err("s must be at least 1"));
        }
        if 2 * scale + 2 > ell {
            return Err(err(
                "need 2s + 2 <= ell (products at scale 2^{2s} plus headroom)",
            ));
        }
        Ok(FixedConfig { ell, scale })
    }
    /// ℓ, the ring bit width.
    pub fn ell(&self) -> u32 {
        self.ell
    }
    /// s, the number of fractional bits.
    pub fn scale(&self) -> u32 {
        self.scale
    }
    /// 2^ℓ − 1.
    pub fn mask(&self) -> u64 {
        if self.ell == 64 {
            u64::MAX
        } else {
            (1u64 << self.ell) - 1
        }
    }
    /// The signed value of a ring element (two's complement on ℓ bits).
    pub fn signed(&self, x: u64) -> i64 {
        let sh = 64 - self.ell;
        ((x << sh) as i64) >> sh
    }
    /// The ring element of a signed integer (reduction mod 2^ℓ).
    pub fn from_signed(&self, v: i64) -> u64 {
        (v as u64) & self.mask()
    }
    /// Input encoding `round_half_away(x · 2^s) mod 2^ℓ`.
    pub fn encode(&self, x: f32) -> u64 {
        self.from_signed((x as f64 * (1u64 << self.scale) as f64).round() as i64)
    }
    /// Real value `signed(x) / 2^s`.
    pub fn decode(&self, x: u64) -> f64 {
        self.signed(x) as f64 / (1u64 << self.scale) as f64
    }
    /// Weight encoding `round(w · 2^s)` (half away from zero).
    pub fn quantize_weight(&self, w: f32) -> u64 {
        self.encode(w)
    }
    /// Bias encoding `round(b · 2^{2s})` (half away from zero).
    pub fn quantize_bias(&self, b: f32) -> u64 {
        self.from_signed((b as f64 * (1u64 << (2 * self.scale)) as f64).round() as i64)
    }
    /// The rescale after a linear layer: `t(y) = (signed((y + 2^{s−1}) mod 2^ℓ) >> s) mod 2^ℓ`,
    /// floor division of the signed value, i.e. rounding half up. The flag is true when the
    /// range assumption `|y + 2^{s−1}| < 2^{ℓ−2}` is violated.
    pub fn truncate(&self, y: u64) -> (u64, bool) {
        let v = self.signed(y.wrapping_add(1u64 << (self.scale - 1)) & self.mask());
        let overflow = v.unsigned_abs() >= 1u64 << (self.ell - 2);
        (self.from_signed(v >> self.scale), overflow)
    }
    /// [`FixedConfig::truncate`] on every element, in place; returns the overflow count.
    pub fn truncate_in_place(&self, y: &mut [u64]) -> u64 {
        let mut over = 0;
        for v in y.iter_mut() {
            let (t, o) = self.truncate(*v);
            *v = t;
            over += o as u64;
        }
        over
    }
    /// 6 · 2^s, the upper clamp of ReLU6.
    pub fn six(&self) -> u64 {
        6u64 << self.scale
    }
    /// The public average-pooling constant `round(2^s / k)`.
    pub fn avg_constant(&self, k: usize) -> u64 {
        ((1u64 << self.scale) as f64 / k as f64).round() as u64
    }
    fn reduce(&self, v: &mut [u64]) {
        let m = self.mask();
        v.iter_mut().for_each(|x| *x &= m);
    }
}

/// Convolution over Z_{2^ℓ} at scale 2^{2s}: `y = W·x + b mod 2^ℓ`, no truncation. `w_q` is
/// [`Conv2d::weight_q`] (or any weights in that layout, e.g. one party's view), `b_q` the bias
/// at scale 2^{2s} or `None`. This is exactly what the linear protocols return shares of.
///
/// # Panics
/// If `w_q` or `x` does not have the layer's length (a caller bug, not input data).
pub fn conv2d_ring(
    conv: &Conv2d,
    w_q: &[u64],
    b_q: Option<&[u64]>,
    x: &[u64],
    cfg: FixedConfig,
) -> Vec<u64> {
    assert_eq!(w_q.len(), conv.weight.len(), "conv2d_ring: weight length");
    assert_eq!(x.len(), numel(&conv.in_shape), "conv2d_ring: input length");
    let mut y = kernels::conv2d(conv, w_q, b_q.unwrap_or(&[]), x);
    cfg.reduce(&mut y);
    y
}

/// Fully connected layer over Z_{2^ℓ} at scale 2^{2s}: `y[r, o] = Σ_i W[o, i] x[r, i] + b[o]`.
///
/// # Panics
/// If `w_q` or `x` does not have the layer's length.
pub fn linear_ring(
    l: &Linear,
    w_q: &[u64],
    b_q: Option<&[u64]>,
    x: &[u64],
    cfg: FixedConfig,
) -> Vec<u64> {
    assert_eq!(w_q.len(), l.weight.len(), "linear_ring: weight length");
    assert_eq!(x.len(), l.rows * l.in_features, "linear_ring: input length");
    let mut y = kernels::linear(
        l.rows,
        l.in_features,
        l.out_features,
        w_q,
        b_q.unwrap_or(&[]),
        x,
    );
    cfg.reduce(&mut y);
    y
}

/// Unfolded BatchNorm over Z_{2^ℓ} at scale 2^{2s}: `y = x · a_q[c] + b_q[c]` with `a_q` at
/// scale 2^s and `b_q` at 2^{2s}; `channels` is the size of axis 1 and `inner` the number of
/// elements per channel.
pub fn channel_affine_ring(
    a_q: &[u64],
    b_q: Option<&[u64]>,
    inner: usize,
    x: &[u64],
    cfg: FixedConfig,
) -> Vec<u64> {
    let c = a_q.len();
    let mut y: Vec<u64> = x
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let ch = (i / inner) % c;
            let b = b_q.map_or(0, |b| b[ch]);
            v.wrapping_mul(a_q[ch]).wrapping_add(b)
        })
        .collect();
    cfg.reduce(&mut y);
    y
}

/// Batched product of two activations `[B, M, K] × [B, K, N]` over Z_{2^ℓ} at scale 2^{2s}.
pub fn matmul_ring(
    batch: usize,
    m: usize,
    k: usize,
    n: usize,
    a: &[u64],
    b: &[u64],
    cfg: FixedConfig,
) -> Vec<u64> {
    let mut y = kernels::matmul(batch, m, k, n, a, b);
    cfg.reduce(&mut y);
    y
}

/// The result of one node: its value and how many truncations violated the range assumption.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeOutput {
    pub value: Vec<u64>,
    pub overflows: u64,
}

/// The values of every node of one run.
#[derive(Clone, Debug)]
pub struct Trace {
    /// `values[id]` is the value of node `id` (scale 2^s); empty for a LayerNorm that the
    /// linear layer after it evaluates ([`Model::norm_before`]).
    pub values: Vec<Vec<u64>>,
    /// Range-assumption violations per node.
    pub overflows: Vec<u64>,
}

impl Trace {
    pub fn total_overflows(&self) -> u64 {
        self.overflows.iter().sum()
    }
}

/// A model with its weights quantized once for a configuration.
pub struct FixedModel<'m> {
    model: &'m Model,
    cfg: FixedConfig,
    /// Per node: quantized weights (scale 2^s) and biases (scale 2^{2s}) of linear layers, or
    /// the encoded constant.
    params: Vec<(Vec<u64>, Vec<u64>)>,
    /// Per node: the LayerNorm or softmax it is evaluated fused with
    /// ([`FixedModel::with_fused`]).
    fused: Vec<Option<NodeId>>,
    /// Per node: a product of two activations left unrounded for the softmax that reads it
    /// ([`Model::product_before_softmax`]).
    deferred: Vec<bool>,
    /// Per node: a softmax reading such a product (at scale 2^{2s}).
    unrounded_input: Vec<bool>,
    /// Per node: a GELU in its Signed form (`approx::GeluForm`; Abs otherwise).
    signed_gelu: Vec<bool>,
}

impl<'m> FixedModel<'m> {
    pub fn new(model: &'m Model, cfg: FixedConfig) -> Self {
        let params = (0..model.nodes.len())
            .map(|id| quantize_node(model, id, cfg))
            .collect();
        Self::with_params(model, cfg, params)
    }

    /// The model with these quantized parameters per node, nothing fused.
    fn with_params(model: &'m Model, cfg: FixedConfig, params: Vec<(Vec<u64>, Vec<u64>)>) -> Self {
        let n = model.nodes.len();
        FixedModel {
            model,
            cfg,
            params,
            fused: vec![None; n],
            deferred: vec![false; n],
            unrounded_input: vec![false; n],
            signed_gelu: vec![false; n],
        }
    }

    /// As [`FixedModel::new`], with the nodes `ids` evaluated fused with the LayerNorm or
    /// softmax they read (docs/fixed-point.md § LayerNorm → linear layer, § Softmax → product),
    /// or, for a softmax, reading the product before it unrounded (§ Softmax of an unrounded
    /// product), or, for a GELU, in its Signed form (§ GELU; Abs otherwise): the plan's choice
    /// (`engine::plan::fused_pairs`), which the reference must follow. Each must be a pair of
    /// [`Model::norm_before`], [`Model::softmax_before`] or [`Model::product_before_softmax`],
    /// or a GELU.
    pub fn with_fused(model: &'m Model, cfg: FixedConfig, ids: &[NodeId]) -> Result<Self> {
        let mut fm = FixedModel::new(model, cfg);
        for &id in ids {
            if matches!(model.nodes.get(id).map(|n| &n.op), Some(Op::Gelu)) {
                fm.signed_gelu[id] = true;
                continue;
            }
            if let Some(p) = model.product_before_softmax(id) {
                fm.deferred[p] = true;
                fm.unrounded_input[id] = true;
                continue;
            }
            let partner = model.norm_before(id).or(model.softmax_before(id));
            fm.fused[id] = Some(partner.ok_or(NnError::NotFusable { node: id })?);
        }
        Ok(fm)
    }

    /// The nodes evaluated fused with their LayerNorm or softmax, and the softmaxes reading
    /// their product unrounded, increasing (the `ids` of [`FixedModel::with_fused`]).
    pub fn fused(&self) -> Vec<NodeId> {
        (0..self.fused.len())
            .filter(|&i| self.fused[i].is_some() || self.signed_gelu[i] || self.unrounded_input[i])
            .collect()
    }

    /// Bits of scale beyond 2^s of the softmax `id`'s input: s when it reads its product
    /// unrounded, else 0.
    fn softmax_extra(&self, id: NodeId) -> u32 {
        if self.unrounded_input[id] {
            self.cfg.scale()
        } else {
            0
        }
    }

    pub fn model(&self) -> &Model {
        self.model
    }

    fn no_fixed_point(&self, id: NodeId) -> NnError {
        let node = &self.model.nodes[id];
        NnError::NoFixedPoint {
            node: node.name.clone(),
            op: node.op.name(),
        }
    }

    pub fn config(&self) -> FixedConfig {
        self.cfg
    }

    /// Quantized weights (scale 2^s) and bias (scale 2^{2s}) of a Conv / Linear / BatchNorm
    /// node (empty for other ops).
    pub fn params(&self, id: NodeId) -> (&[u64], &[u64]) {
        (&self.params[id].0, &self.params[id].1)
    }

    /// Encodes a float input and runs the whole model.
    pub fn run(&self, input: &[f32]) -> Result<Tensor<u64>> {
        let x: Vec<u64> = input.iter().map(|&v| self.cfg.encode(v)).collect();
        let mut t = self.run_trace(&x)?;
        let out = std::mem::take(&mut t.values[self.model.output]);
        Ok(Tensor::new(self.model.output_shape().to_vec(), out))
    }

    /// Runs the model on an encoded input and returns every node's value.
    pub fn run_trace(&self, input: &[u64]) -> Result<Trace> {
        let expected = numel(self.model.input_shape());
        if input.len() != expected {
            return Err(NnError::InputLength {
                expected,
                got: input.len(),
                shape: self.model.input_shape().to_vec(),
            });
        }
        let n = self.model.nodes.len();
        let mut values: Vec<Vec<u64>> = Vec::with_capacity(n);
        let mut overflows = Vec::with_capacity(n);
        // A LayerNorm or softmax fused into the node reading it is evaluated by that node.
        let mut absorbed = vec![false; n];
        for &k in self.fused.iter().flatten() {
            absorbed[k] = true;
        }
        for (id, &absorbed) in absorbed.iter().enumerate() {
            if absorbed {
                values.push(Vec::new());
                overflows.push(0);
                continue;
            }
            if id == 0 {
                values.push(input.iter().map(|&v| v & self.cfg.mask()).collect());
                overflows.push(0);
                continue;
            }
            let node = &self.model.nodes[id];
            let o = match self.fused[id] {
                Some(k) => {
                    let x = &values[self.model.nodes[k].inputs[0]];
                    match self.model.nodes[k].op {
                        Op::LayerNorm(_) => self.eval_norm_linear(id, k, x),
                        _ => self.eval_softmax_matmul(id, x, &values[node.inputs[1]]),
                    }
                }
                None => {
                    let ins: Vec<&[u64]> = self.model.nodes[id]
                        .inputs
                        .iter()
                        .map(|&i| values[i].as_slice())
                        .collect();
                    self.eval_node(id, &ins)?
                }
            };
            values.push(o.value);
            overflows.push(o.overflows);
        }
        Ok(Trace { values, overflows })
    }

    /// For a linear layer (Conv, Linear, BatchNorm): its output at scale 2^{2s} before
    /// truncation, `W·x + b mod 2^ℓ`. `None` for other ops.
    pub fn linear_pre_truncation(&self, id: NodeId, x: &[u64]) -> Option<Vec<u64>> {
        let node = &self.model.nodes[id];
        let (w, b) = (&self.params[id].0, &self.params[id].1);
        match &node.op {
            Op::Conv(c) => Some(conv2d_ring(c, w, Some(b), x, self.cfg)),
            Op::Linear(l) => Some(linear_ring(l, w, Some(b), x, self.cfg)),
            Op::BatchNorm(_) => {
                let inner = x.len() / w.len();
                Some(channel_affine_ring(w, Some(b), inner, x, self.cfg))
            }
            _ => None,
        }
    }

    /// The linear layer `id` fused with the LayerNorm `n` before it ([`Model::norm_before`]) on
    /// the LayerNorm's input `x`: per row, c and R by `LayerNorm::row_root`, u = W·c without
    /// bias, then `LayerNorm::linear_output`. Overflows: the LayerNorm's range and the fused
    /// product's (an element outside it counts and is 0).
    fn eval_norm_linear(&self, id: NodeId, n: NodeId, x: &[u64]) -> NodeOutput {
        let cfg = self.cfg;
        let (Op::Linear(l), Op::LayerNorm(norm)) =
            (&self.model.nodes[id].op, &self.model.nodes[n].op)
        else {
            unreachable!("Model::norm_before pairs a Linear with a LayerNorm")
        };
        let d = l.in_features;
        let ln = crate::approx::LayerNorm::new(cfg.scale(), cfg.ell(), d, norm.epsilon);
        let (w, b) = (&self.params[id].0, &self.params[id].1);
        let lim = 1i64 << (ln.m - 2);
        let mut overflows = 0u64;
        let mut value = Vec::with_capacity(l.rows * l.out_features);
        for row in x.chunks(d) {
            let v: Vec<i64> = row.iter().map(|&e| cfg.signed(e)).collect();
            let mean = v.iter().sum::<i64>() / d as i64;
            overflows += v.iter().filter(|&&e| (e - mean).abs() >= lim - 2).count() as u64;
            let (c, r) = ln.row_root(cfg.ell(), row);
            let one = Linear {
                rows: 1,
                ..l.clone()
            };
            let u = linear_ring(&one, w, None, &c, cfg);
            for (j, &uj) in u.iter().enumerate() {
                let y = ln.linear_output(cfg.ell(), uj, r, b[j]);
                overflows += y.is_none() as u64;
                value.push(y.unwrap_or(0));
            }
        }
        NodeOutput { value, overflows }
    }

    /// The product `id` of two activations fused with the softmax that is its left operand
    /// ([`Model::softmax_before`]), on the softmax's input `x` and the right operand `v`: per
    /// row, E and R by `Softmax::row_parts`, p = E·V without rescale, then
    /// `Softmax::matmul_output`. Overflows: the softmax's spread and the fused product's range.
    fn eval_softmax_matmul(&self, id: NodeId, x: &[u64], v: &[u64]) -> NodeOutput {
        let cfg = self.cfg;
        let s = &self.model.nodes[id].shape;
        let r = s.len();
        let (m, nn_) = (s[r - 2], s[r - 1]);
        let k = self.model.nodes[self.model.nodes[id].inputs[1]].shape[r - 2];
        let sm = crate::approx::Softmax::new(cfg.scale());
        let extra = self.softmax_extra(self.model.nodes[id].inputs[0]);
        let mut value = Vec::with_capacity(numel(s));
        let mut overflows = 0u64;
        for (h, rows) in x.chunks(m * k).enumerate() {
            let vb = &v[h * k * nn_..(h + 1) * k * nn_];
            for row in rows.chunks(k) {
                let sv: Vec<i64> = row.iter().map(|&e| cfg.signed(e)).collect();
                let spread = sv.iter().max().unwrap_or(&0) - sv.iter().min().unwrap_or(&0);
                overflows += (spread >= 1i64 << (sm.m + extra - 1)) as u64 * nn_ as u64;
                let (e, rr) = sm.row_parts_from(row, extra);
                for c in 0..nn_ {
                    let p = (0..k).fold(0u64, |a, j| {
                        a.wrapping_add(e[j].wrapping_mul(vb[j * nn_ + c]))
                    });
                    let y = sm.matmul_output(cfg.ell(), p & cfg.mask(), rr);
                    overflows += y.is_none() as u64;
                    value.push(y.unwrap_or(0));
                }
            }
        }
        NodeOutput { value, overflows }
    }

    /// Evaluates node `id` on the (scale 2^s) values of its inputs. A linear layer fused with the
    /// LayerNorm before it ([`Model::norm_before`]) reads that LayerNorm's input, so
    /// [`FixedModel::run_trace`] evaluates it; here it is the unfused layer.
    pub fn eval_node(&self, id: NodeId, inputs: &[&[u64]]) -> Result<NodeOutput> {
        let model = self.model;
        let cfg = self.cfg;
        let node = &model.nodes[id];
        if inputs.len() != node.inputs.len() {
            return Err(NnError::Arity {
                node: id,
                expected: node.inputs.len(),
                got: inputs.len(),
            });
        }
        for (&i, x) in node.inputs.iter().zip(inputs) {
            let want = numel(&model.nodes[i].shape);
            if x.len() != want {
                return Err(NnError::InputLength {
                    expected: want,
                    got: x.len(),
                    shape: model.nodes[i].shape.clone(),
                });
            }
        }
        let x = inputs.first().copied().unwrap_or(&[]);
        let exact = |value| {
            Ok(NodeOutput {
                value,
                overflows: 0,
            })
        };
        let truncated = |mut value: Vec<u64>| {
            let overflows = cfg.truncate_in_place(&mut value);
            Ok(NodeOutput { value, overflows })
        };
        match &node.op {
            Op::Input => exact(x.to_vec()),
            Op::Constant(_) => exact(self.params[id].0.clone()),
            Op::Conv(_) | Op::Linear(_) | Op::BatchNorm(_) => {
                truncated(self.linear_pre_truncation(id, x).expect("linear layer"))
            }
            Op::Relu => exact(
                x.iter()
                    .map(|&v| if cfg.signed(v) < 0 { 0 } else { v })
                    .collect(),
            ),
            Op::Relu6 => {
                let six = cfg.signed(cfg.six());
                exact(
                    x.iter()
                        .map(|&v| cfg.from_signed(cfg.signed(v).clamp(0, six)))
                        .collect(),
                )
            }
            Op::MaxPool(p) | Op::AvgPool(p) => {
                let is = &model.nodes[node.inputs[0]].shape;
                let os = &node.shape;
                let wins = kernels::pool_windows(p, is[1], is[2], is[3], os[2], os[3]);
                if matches!(node.op, Op::MaxPool(_)) {
                    exact(
                        wins.iter()
                            .map(|(idx, _)| {
                                let m = idx.iter().map(|&i| cfg.signed(x[i])).max().unwrap_or(0);
                                cfg.from_signed(m)
                            })
                            .collect(),
                    )
                } else {
                    truncated(avg_pool_ring(p, is, os, x, cfg))
                }
            }
            Op::GlobalAvgPool => truncated(global_avg_pool_ring(node.shape[1], x, cfg)),
            Op::Add | Op::Mul => {
                let ma = broadcast_index_map(&model.nodes[node.inputs[0]].shape, &node.shape);
                let mb = broadcast_index_map(&model.nodes[node.inputs[1]].shape, &node.shape);
                let (a, b) = (inputs[0], inputs[1]);
                if matches!(node.op, Op::Add) {
                    exact(
                        ma.iter()
                            .zip(&mb)
                            .map(|(&i, &j)| a[i].wrapping_add(b[j]) & cfg.mask())
                            .collect(),
                    )
                } else {
                    truncated(
                        ma.iter()
                            .zip(&mb)
                            .map(|(&i, &j)| a[i].wrapping_mul(b[j]) & cfg.mask())
                            .collect(),
                    )
                }
            }
            Op::Slice(_) | Op::Pad(_) | Op::Concat { .. } | Op::Transpose { .. } => exact(
                gather_map(model, id)
                    .iter()
                    .map(|m| m.map_or(0, |(k, p)| inputs[k][p]))
                    .collect(),
            ),
            Op::Reshape => exact(x.to_vec()),
            Op::MatMul => {
                let s = &node.shape;
                let r = s.len();
                let k = model.nodes[node.inputs[0]].shape[r - 1];
                let batch = numel(&s[..r - 2]);
                let p = matmul_ring(batch, s[r - 2], k, s[r - 1], inputs[0], inputs[1], cfg);
                if self.deferred[id] {
                    // Unrounded for the softmax that reads it (scale 2^{2s}).
                    exact(p)
                } else {
                    truncated(p)
                }
            }
            Op::Gelu | Op::Softmax | Op::LayerNorm(_)
                if crate::approx::Function::of(&node.op).is_some_and(|f| {
                    f.unsupported(cfg.scale(), cfg.ell(), *node.shape.last().unwrap_or(&0))
                        .is_some()
                }) =>
            {
                Err(self.no_fixed_point(id))
            }
            Op::Gelu => {
                let s = cfg.scale();
                let form = if self.signed_gelu[id] {
                    crate::approx::GeluForm::Signed
                } else {
                    crate::approx::GeluForm::Abs
                };
                let g = crate::approx::Gelu::new(s, form);
                let lim = g.limit();
                let overflows = x.iter().filter(|&&v| cfg.signed(v).abs() >= lim).count() as u64;
                let value = x.iter().map(|&v| g.eval(cfg.ell(), v)).collect();
                Ok(NodeOutput { value, overflows })
            }
            Op::Softmax => {
                let s = cfg.scale();
                let d = *node.shape.last().unwrap_or(&1);
                let sm = crate::approx::Softmax::new(s);
                let extra = self.softmax_extra(id);
                let mut value = Vec::with_capacity(x.len());
                let mut overflows = 0;
                for row in x.chunks(d) {
                    let v: Vec<i64> = row.iter().map(|&e| cfg.signed(e)).collect();
                    let spread = v.iter().max().unwrap_or(&0) - v.iter().min().unwrap_or(&0);
                    overflows += (spread >= 1i64 << (sm.m + extra - 1)) as u64 * row.len() as u64;
                    value.extend(sm.eval_row_from(cfg.ell(), row, extra));
                }
                Ok(NodeOutput { value, overflows })
            }
            Op::LayerNorm(l) => {
                let s = cfg.scale();
                let d = *node.shape.last().unwrap_or(&1);
                let ln = crate::approx::LayerNorm::new(s, cfg.ell(), d, l.epsilon);
                let lim = 1i64 << (ln.m - 2);
                let mut value = Vec::with_capacity(x.len());
                let mut overflows = 0;
                for row in x.chunks(d) {
                    let v: Vec<i64> = row.iter().map(|&e| cfg.signed(e)).collect();
                    let mean = v.iter().sum::<i64>() / d as i64;
                    overflows += v.iter().filter(|&&e| (e - mean).abs() >= lim - 2).count() as u64;
                    value.extend(ln.eval_row(cfg.ell(), row));
                }
                if l.is_identity() {
                    return Ok(NodeOutput { value, overflows });
                }
                // γ·n + β at scale 2^{2s}, then t(·): the channel-affine layer the 2PC engine
                // needs folded into the next linear layer (nn::import folds it when it can).
                let (w, b) = (&self.params[id].0, &self.params[id].1);
                let mut y = channel_affine_last(w, b, &value, cfg);
                let more = cfg.truncate_in_place(&mut y);
                Ok(NodeOutput {
                    value: y,
                    overflows: overflows + more,
                })
            }
        }
    }
}

/// Average pooling before the rescale t(·): each window's sum times round(2^s / k), mod 2^ℓ
/// (docs/fixed-point.md). Linear in `x`, so the 2PC engine applies it to additive shares.
pub fn avg_pool_ring(
    p: &Pool,
    in_shape: &[usize],
    out_shape: &[usize],
    x: &[u64],
    cfg: FixedConfig,
) -> Vec<u64> {
    let wins = kernels::pool_windows(
        p,
        in_shape[1],
        in_shape[2],
        in_shape[3],
        out_shape[2],
        out_shape[3],
    );
    wins.iter()
        .map(|(idx, size)| {
            let k = if p.count_include_pad {
                *size
            } else {
                idx.len()
            };
            let sum = idx.iter().fold(0u64, |a, &i| a.wrapping_add(x[i]));
            sum.wrapping_mul(cfg.avg_constant(k)) & cfg.mask()
        })
        .collect()
}

/// Global average pooling of `channels` planes before the rescale t(·); linear in `x` like
/// [`avg_pool_ring`].
pub fn global_avg_pool_ring(channels: usize, x: &[u64], cfg: FixedConfig) -> Vec<u64> {
    let hw = x.len() / channels;
    let k = cfg.avg_constant(hw);
    x.chunks_exact(hw)
        .map(|ch| {
            ch.iter()
                .fold(0u64, |a, &v| a.wrapping_add(v))
                .wrapping_mul(k)
                & cfg.mask()
        })
        .collect()
}

/// Encodes a float input, runs the model in fixed point and returns the output (ring elements).
pub fn run(model: &Model, input: &[f32], cfg: FixedConfig) -> Result<Tensor<u64>> {
    FixedModel::new(model, cfg).run(input)
}

/// [`run`] with the linear layers `linears` fused with the LayerNorm they read
/// ([`FixedModel::with_fused`]).
pub fn run_fused(
    model: &Model,
    input: &[f32],
    cfg: FixedConfig,
    linears: &[NodeId],
) -> Result<Tensor<u64>> {
    FixedModel::with_fused(model, cfg, linears)?.run(input)
}

/// Runs the model on an encoded input and returns every node's value.
pub fn run_trace(model: &Model, input: &[u64], cfg: FixedConfig) -> Result<Trace> {
    FixedModel::new(model, cfg).run_trace(input)
}

/// Evaluates one node on its encoded inputs (quantizing that node's weights on the fly; use
/// [`FixedModel`] to quantize once).
pub fn eval_node(
    model: &Model,
    id: NodeId,
    inputs: &[&[u64]],
    cfg: FixedConfig,
) -> Result<NodeOutput> {
    let mut params = vec![(vec![], vec![]); model.nodes.len()];
    params[id] = quantize_node(model, id, cfg);
    FixedModel::with_params(model, cfg, params).eval_node(id, inputs)
}

/// Quantized weights (scale 2^s) and biases (scale 2^{2s}) of a linear layer, or the encoded
/// constant of a Constant node; empty for other ops.
fn quantize_node(model: &Model, id: NodeId, cfg: FixedConfig) -> (Vec<u64>, Vec<u64>) {
    match &model.nodes[id].op {
        Op::Conv(c) => (c.weight_q(cfg), c.bias_q(cfg)),
        Op::Linear(l) => (l.weight_q(cfg), l.bias_q(cfg)),
        Op::BatchNorm(ChannelAffine { scale, shift }) => (
            scale.iter().map(|&a| cfg.quantize_weight(a)).collect(),
            shift.iter().map(|&b| cfg.quantize_bias(b)).collect(),
        ),
        Op::Constant(t) => (t.data.iter().map(|&v| cfg.encode(v)).collect(), vec![]),
        Op::LayerNorm(l) => (
            l.gamma.iter().map(|&a| cfg.quantize_weight(a)).collect(),
            l.beta.iter().map(|&b| cfg.quantize_bias(b)).collect(),
        ),
        _ => (vec![], vec![]),
    }
}

/// `γ_j·x + β_j` for the last axis index j of each element, mod 2^ℓ (scale 2^{2s}).
fn channel_affine_last(w: &[u64], b: &[u64], x: &[u64], cfg: FixedConfig) -> Vec<u64> {
    let d = w.len();
    x.iter()
        .enumerate()
        .map(|(i, &v)| v.wrapping_mul(w[i % d]).wrapping_add(b[i % d]) & cfg.mask())
        .collect()
}

/// Decodes ring elements to reals, `signed(x) / 2^s`.
pub fn decode_all(v: &[u64], cfg: FixedConfig) -> Vec<f32> {
    v.iter().map(|&x| cfg.decode(x) as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_is_checked() {
        assert!(FixedConfig::new(37, 12).is_ok());
        assert!(FixedConfig::new(64, 20).is_ok());
        assert!(FixedConfig::new(65, 12).is_err());
        assert!(FixedConfig::new(37, 0).is_err());
        assert!(FixedConfig::new(25, 12).is_err());
        assert_eq!(FixedConfig::default(), FixedConfig::new(37, 12).unwrap());
    }

    #[test]
    fn encoding_rounds_half_away_and_wraps() {
        let c = FixedConfig::new(16, 4).unwrap();
        assert_eq!(c.encode(1.0), 16);
        assert_eq!(c.encode(1.03125), 17); // 16.5 -> 17
        assert_eq!(c.signed(c.encode(-1.03125)), -17); // -16.5 -> -17
        assert_eq!(c.encode(-1.0), (1 << 16) - 16);
        assert_eq!(c.decode(c.encode(-2.5)), -2.5);
        assert_eq!(c.signed(c.quantize_bias(0.5)), 128); // scale 2^{2s} = 256
    }

    #[test]
    fn truncation_is_floor_of_y_plus_half() {
        // Oracle: floor((y + 2^{s-1}) / 2^s) on integers, for every y in a window.
        let c = FixedConfig::new(20, 4).unwrap();
        for y in -3000i64..3000 {
            let (t, over) = c.truncate(c.from_signed(y));
            assert_eq!(c.signed(t), (y + 8).div_euclid(16), "y = {y}");
            assert!(!over);
        }
        // Half up: 8/16 = 0.5 -> 1, -8/16 = -0.5 -> 0, -24/16 = -1.5 -> -1.
        assert_eq!(c.signed(c.truncate(c.from_signed(8)).0), 1);
        assert_eq!(c.signed(c.truncate(c.from_signed(-8)).0), 0);
        assert_eq!(c.signed(c.truncate(c.from_signed(-24)).0), -1);
        // Range assumption |y + 2^{s-1}| < 2^{l-2} = 2^18.
        assert!(!c.truncate(c.from_signed((1 << 18) - 9)).1);
        assert!(c.truncate(c.from_signed((1 << 18) - 8)).1);
        assert!(c.truncate(c.from_signed(-(1 << 18) - 8)).1);
    }

    #[test]
    fn average_constant() {
        let c = FixedConfig::default();
        assert_eq!(c.avg_constant(64), 64);
        assert_eq!(c.avg_constant(49), 84); // 4096 / 49 = 83.59
        assert_eq!(c.avg_constant(9), 455); // 455.1
                                            // For k = 2^j, t(sum · 2^{s-j}) = (sum + 2^{j-1}) >> j.
        for sum in -500i64..500 {
            let y = c.from_signed(sum).wrapping_mul(c.avg_constant(4)) & c.mask();
            assert_eq!(c.signed(c.truncate(y).0), (sum + 2).div_euclid(4));
        }
    }
}
