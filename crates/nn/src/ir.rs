//! The model IR: a DAG of typed ops with static shapes.
//!
//! A [`Model`] is a list of [`Node`]s in topological order. Every node produces exactly one
//! value, identified by its index ([`NodeId`]); `nodes[0]` is the graph input. Shapes are full
//! ONNX shapes with the batch dimension (always 1), e.g. `[1, 3, 32, 32]`; layouts are
//! row-major (NCHW for images), the same layout the 2PC shares use.
//!
//! Weights are stored in float (BatchNorm already folded into the preceding convolution where
//! possible); the fixed-point executor quantizes them with [`crate::fixed::quantize_weight`]
//! and [`crate::fixed::quantize_bias`], and [`Conv2d::weight_q`] / [`Linear::weight_q`] give
//! the quantized values directly.

use serde::Serialize;

/// Index of a node (and of the value it produces) in [`Model::nodes`].
pub type NodeId = usize;

/// A dense row-major tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor<T> {
    pub shape: Vec<usize>,
    pub data: Vec<T>,
}

impl<T> Tensor<T> {
    /// Builds a tensor; `data.len()` must equal the product of `shape`.
    pub fn new(shape: Vec<usize>, data: Vec<T>) -> Self {
        assert_eq!(
            numel(&shape),
            data.len(),
            "tensor data does not match its shape"
        );
        Tensor { shape, data }
    }
}

/// Number of elements of a shape.
pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// Row-major strides of a shape.
pub fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// A 2-D convolution (NCHW), grouped or depthwise, with bias (zero when the ONNX node had none;
/// BatchNorm folded in when it followed).
#[derive(Clone, Debug)]
pub struct Conv2d {
    /// Input shape `[C, H, W]` (batch 1).
    pub in_shape: [usize; 3],
    /// Output shape `[O, OH, OW]`.
    pub out_shape: [usize; 3],
    /// Kernel `[kh, kw]`.
    pub kernel: [usize; 2],
    /// Stride `[sh, sw]`.
    pub stride: [usize; 2],
    /// Zero padding `[top, left, bottom, right]`.
    pub pads: [usize; 4],
    /// Groups; `groups == C == O` is depthwise.
    pub groups: usize,
    /// Weights `[O, C / groups, kh, kw]`, row-major.
    pub weight: Vec<f32>,
    /// Bias, length `O`.
    pub bias: Vec<f32>,
}

impl Conv2d {
    pub fn in_channels(&self) -> usize {
        self.in_shape[0]
    }
    pub fn out_channels(&self) -> usize {
        self.out_shape[0]
    }
    /// Input channels seen by one output channel.
    pub fn channels_per_group(&self) -> usize {
        self.in_shape[0] / self.groups
    }
    pub fn is_depthwise(&self) -> bool {
        self.groups > 1 && self.groups == self.in_shape[0] && self.groups == self.out_shape[0]
    }
    /// Weights quantized at scale 2^s (see docs/fixed-point.md), as elements of Z_{2^ℓ}.
    pub fn weight_q(&self, cfg: crate::fixed::FixedConfig) -> Vec<u64> {
        self.weight
            .iter()
            .map(|&w| cfg.quantize_weight(w))
            .collect()
    }
    /// Bias quantized at scale 2^{2s}, as elements of Z_{2^ℓ}.
    pub fn bias_q(&self, cfg: crate::fixed::FixedConfig) -> Vec<u64> {
        self.bias.iter().map(|&b| cfg.quantize_bias(b)).collect()
    }
    /// Multiply-accumulates of one evaluation.
    pub fn macs(&self) -> u64 {
        let [o, oh, ow] = self.out_shape;
        (o * oh * ow * self.channels_per_group() * self.kernel[0] * self.kernel[1]) as u64
    }
}

/// A fully connected layer on the last axis: `y[.., o] = Σ_i x[.., i] · W[o, i] + b[o]`
/// (ONNX Gemm, or MatMul with a constant right operand, with the following bias Add fused).
#[derive(Clone, Debug)]
pub struct Linear {
    pub in_features: usize,
    pub out_features: usize,
    /// Number of rows the layer is applied to (product of the leading dimensions).
    pub rows: usize,
    /// Weights `[out_features, in_features]`, row-major.
    pub weight: Vec<f32>,
    /// Bias, length `out_features` (zeros when absent).
    pub bias: Vec<f32>,
}

impl Linear {
    /// Weights quantized at scale 2^s, as elements of Z_{2^ℓ}.
    pub fn weight_q(&self, cfg: crate::fixed::FixedConfig) -> Vec<u64> {
        self.weight
            .iter()
            .map(|&w| cfg.quantize_weight(w))
            .collect()
    }
    /// Bias quantized at scale 2^{2s}, as elements of Z_{2^ℓ}.
    pub fn bias_q(&self, cfg: crate::fixed::FixedConfig) -> Vec<u64> {
        self.bias.iter().map(|&b| cfg.quantize_bias(b)).collect()
    }
    pub fn macs(&self) -> u64 {
        (self.rows * self.in_features * self.out_features) as u64
    }
}

/// A per-channel affine map on axis 1, `y = x · scale[c] + shift[c]`: a BatchNorm that could
/// not be folded into a convolution.
#[derive(Clone, Debug)]
pub struct ChannelAffine {
    pub scale: Vec<f32>,
    pub shift: Vec<f32>,
}

/// Window of a 2-D max or average pooling (NCHW).
#[derive(Clone, Debug)]
pub struct Pool {
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    /// `[top, left, bottom, right]`; padded positions never win a max and, for average
    /// pooling, count in the divisor only when `count_include_pad`.
    pub pads: [usize; 4],
    pub count_include_pad: bool,
}

/// Strided slicing: output element `i` on axis `a` is input element `starts[a] + i · steps[a]`.
#[derive(Clone, Debug)]
pub struct Slice {
    pub starts: Vec<usize>,
    pub steps: Vec<usize>,
}

/// Zero padding per axis (e.g. the channel padding of an option-A shortcut).
#[derive(Clone, Debug)]
pub struct Pad {
    pub before: Vec<usize>,
    pub after: Vec<usize>,
}

/// Layer normalization over the last axis with affine parameters.
#[derive(Clone, Debug)]
pub struct LayerNorm {
    pub epsilon: f32,
    pub gamma: Vec<f32>,
    pub beta: Vec<f32>,
}

impl LayerNorm {
    /// γ = 1 and β = 0: the normalization alone (after the import folded the affine part into
    /// the linear layers that read it).
    pub fn is_identity(&self) -> bool {
        self.gamma.iter().all(|&g| g == 1.0) && self.beta.iter().all(|&b| b == 0.0)
    }
}

/// The op of a node. Each op's shape rules are checked at import; the node's output shape is
/// in [`Node::shape`].
#[derive(Clone, Debug)]
pub enum Op {
    /// The graph input (always node 0).
    Input,
    /// A constant tensor used as an operand of an elementwise op or Concat.
    Constant(Tensor<f32>),
    Conv(Conv2d),
    Linear(Linear),
    /// Unfolded BatchNorm (per-channel affine on axis 1).
    BatchNorm(ChannelAffine),
    Relu,
    /// `min(max(x, 0), 6)`.
    Relu6,
    MaxPool(Pool),
    AvgPool(Pool),
    /// Mean over H and W, output `[1, C, 1, 1]`.
    GlobalAvgPool,
    /// Elementwise sum of two inputs with numpy broadcasting (residual connections).
    Add,
    /// Elementwise product of two inputs with numpy broadcasting.
    Mul,
    Slice(Slice),
    Pad(Pad),
    /// Flatten / Reshape / Squeeze / Unsqueeze: same data, new shape.
    Reshape,
    Concat {
        axis: usize,
    },
    /// Product of two activations `[.., M, K] × [.., K, N]` with equal leading dimensions.
    MatMul,
    Transpose {
        perm: Vec<usize>,
    },
    LayerNorm(LayerNorm),
    /// Softmax over the last axis.
    Softmax,
    /// GELU with the exact erf form.
    Gelu,
}

impl Op {
    /// Short name used in tables and JSON.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Input => "Input",
            Op::Constant(_) => "Constant",
            Op::Conv(c) if c.is_depthwise() => "DepthwiseConv",
            Op::Conv(_) => "Conv",
            Op::Linear(_) => "Linear",
            Op::BatchNorm(_) => "BatchNorm",
            Op::Relu => "Relu",
            Op::Relu6 => "Relu6",
            Op::MaxPool(_) => "MaxPool",
            Op::AvgPool(_) => "AvgPool",
            Op::GlobalAvgPool => "GlobalAvgPool",
            Op::Add => "Add",
            Op::Mul => "Mul",
            Op::Slice(_) => "Slice",
            Op::Pad(_) => "Pad",
            Op::Reshape => "Reshape",
            Op::Concat { .. } => "Concat",
            Op::MatMul => "MatMul",
            Op::Transpose { .. } => "Transpose",
            Op::LayerNorm(_) => "LayerNorm",
            Op::Softmax => "Softmax",
            Op::Gelu => "Gelu",
        }
    }

    /// Whether the op is linear in its (single) activation input with secret weights: the
    /// layers run by the linear 2PC protocols (output at scale 2^{2s} before truncation).
    pub fn is_linear_layer(&self) -> bool {
        matches!(self, Op::Conv(_) | Op::Linear(_) | Op::BatchNorm(_))
    }

    /// Whether the fixed-point executor applies the rescale t(·) to this op's result (its
    /// result is at scale 2^{2s}); see docs/fixed-point.md.
    pub fn truncates(&self) -> bool {
        matches!(
            self,
            Op::Conv(_)
                | Op::Linear(_)
                | Op::BatchNorm(_)
                | Op::Mul
                | Op::MatMul
                | Op::AvgPool(_)
                | Op::GlobalAvgPool
        )
    }
}

/// One node: an op, its input values and its output shape.
#[derive(Clone, Debug)]
pub struct Node {
    /// The ONNX node name (or output name) this node came from.
    pub name: String,
    pub op: Op,
    pub inputs: Vec<NodeId>,
    /// Output shape (with batch dimension 1).
    pub shape: Vec<usize>,
}

/// Per-op costs that matter for private inference.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct OpCounts {
    /// Multiply-accumulates (weights × activations, or activation × activation).
    pub macs: u64,
    /// ReLU / ReLU6 evaluations (one per element).
    pub relus: u64,
    /// Secure comparisons: 1 per ReLU, 2 per ReLU6, k − 1 per max-pool window of k.
    pub comparisons: u64,
    /// Trained parameters (weights and biases).
    pub params: u64,
    /// Fixed-point truncations t(·) (one per element after each linear layer, product or
    /// average pooling).
    pub truncations: u64,
}

impl std::ops::AddAssign for OpCounts {
    fn add_assign(&mut self, o: Self) {
        self.macs += o.macs;
        self.relus += o.relus;
        self.comparisons += o.comparisons;
        self.params += o.params;
        self.truncations += o.truncations;
    }
}

/// Metadata key of a model's block-circulant block sizes ([`Model::circulant_blocks`]).
pub const CIRCULANT_BLOCKS_KEY: &str = "privinfer.circulant_blocks";

/// A whole model: the DAG, its input and output, and the ONNX metadata.
#[derive(Clone, Debug)]
pub struct Model {
    /// ONNX graph name.
    pub name: String,
    /// Name of the graph input.
    pub input_name: String,
    /// Topologically ordered nodes; `nodes[0]` is [`Op::Input`].
    pub nodes: Vec<Node>,
    /// The node whose value is the model output.
    pub output: NodeId,
    /// ONNX `metadata_props` (e.g. `weights = random-seeded`).
    pub metadata: Vec<(String, String)>,
}

impl Model {
    /// Shape of the model input, e.g. `[1, 3, 32, 32]`.
    pub fn input_shape(&self) -> &[usize] {
        &self.nodes[0].shape
    }
    /// Shape of the model output, e.g. `[1, 10]`.
    pub fn output_shape(&self) -> &[usize] {
        &self.nodes[self.output].shape
    }

    /// The product of two activations whose value the softmax `id` reads, directly or through
    /// identity Reshapes (attention's Q·Kᵀ), when nothing else reads it or them and none is
    /// the model output: the softmax may then read it unrounded, at scale 2^{2s}
    /// (docs/fixed-point.md § Softmax of an unrounded product).
    pub fn product_before_softmax(&self, id: NodeId) -> Option<NodeId> {
        let node = self.nodes.get(id)?;
        if !matches!(node.op, Op::Softmax) {
            return None;
        }
        let readers = |n: NodeId| self.nodes.iter().filter(|m| m.inputs.contains(&n)).count();
        let mut at = *node.inputs.first()?;
        loop {
            if readers(at) != 1 || at == self.output {
                return None;
            }
            let n = &self.nodes[at];
            match n.op {
                Op::MatMul => return Some(at),
                Op::Reshape if n.shape == self.nodes[*n.inputs.first()?].shape => {
                    at = n.inputs[0];
                }
                _ => return None,
            }
        }
    }

    /// The softmax whose output the product of two activations `id` reads as its left operand,
    /// when nothing else reads it (attention's softmax · V): the pair may be evaluated fused
    /// (docs/fixed-point.md § Softmax → product).
    pub fn softmax_before(&self, id: NodeId) -> Option<NodeId> {
        let node = self.nodes.get(id)?;
        if !matches!(node.op, Op::MatMul) {
            return None;
        }
        let &n = node.inputs.first()?;
        let readers = self.nodes.iter().filter(|m| m.inputs.contains(&n)).count();
        (matches!(self.nodes[n].op, Op::Softmax)
            && readers == 1
            && n != self.output
            && node.inputs[1] != n)
            .then_some(n)
    }

    /// The LayerNorm that the linear layer `id` is fused with (docs/fixed-point.md § LayerNorm
    /// → linear layer): `Some(n)` when `id` is a Linear whose input `n` is a LayerNorm without
    /// affine part (its γ, β folded into this layer) over the layer's input features, read by
    /// nothing else and not the model output. Its value is then
    /// `nn::approx::LayerNorm::linear_output` of W·(x − μ), one rounding instead of two, which
    /// lets the 2PC engine run the layer while the inverse root is computed.
    pub fn norm_before(&self, id: NodeId) -> Option<NodeId> {
        let node = self.nodes.get(id)?;
        let Op::Linear(l) = &node.op else {
            return None;
        };
        let &n = node.inputs.first()?;
        let Op::LayerNorm(ln) = &self.nodes[n].op else {
            return None;
        };
        let readers = self.nodes.iter().filter(|m| m.inputs.contains(&n)).count();
        let d = *self.nodes[n].shape.last()?;
        (ln.is_identity() && readers == 1 && n != self.output && d == l.in_features).then_some(n)
    }
    /// A metadata value by key.
    pub fn metadata_value(&self, key: &str) -> Option<&str> {
        self.metadata
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The block-circulant block sizes the model declares (PrivCirNet; written by the python
    /// toolkit, `privinfer_models.circulant`): metadata key [`CIRCULANT_BLOCKS_KEY`], a JSON
    /// object of node name -> b. Checked: every b is a power of two ≥ 2 dividing both channel
    /// counts of a Conv (groups 1) or a Linear node of that name (an FC, or a transformer's
    /// token × weight product: W's blocks are circulant whatever the rows). The weights are
    /// checked by whoever uses the structure. Empty when the key is absent.
    pub fn circulant_blocks(
        &self,
    ) -> Result<std::collections::BTreeMap<String, usize>, crate::NnError> {
        let key = CIRCULANT_BLOCKS_KEY;
        let Some(text) = self.metadata_value(key) else {
            return Ok(Default::default());
        };
        let bad = |reason: String| crate::NnError::BadMetadata { key, reason };
        let map: std::collections::BTreeMap<String, usize> = serde_json::from_str(text)
            .map_err(|e| bad(format!("expected a JSON object of node name -> block: {e}")))?;
        for (name, &b) in &map {
            let node = self
                .nodes
                .iter()
                .find(|n| &n.name == name)
                .ok_or_else(|| bad(format!("no node named {name:?}")))?;
            let dims = match &node.op {
                Op::Conv(c) if c.groups == 1 => Some((c.in_shape[0], c.out_shape[0])),
                Op::Linear(l) => Some((l.in_features, l.out_features)),
                _ => None,
            }
            .ok_or_else(|| {
                bad(format!(
                    "node {name:?} is not a conv (groups 1) or linear layer"
                ))
            })?;
            if b < 2 || !b.is_power_of_two() || dims.0 % b != 0 || dims.1 % b != 0 {
                return Err(bad(format!(
                    "block {b} of {name:?} is not a power of two ≥ 2 dividing its {} input and {} output channels",
                    dims.0, dims.1
                )));
            }
        }
        Ok(map)
    }

    /// Costs of node `id`.
    pub fn counts(&self, id: NodeId) -> OpCounts {
        let node = &self.nodes[id];
        let out = numel(&node.shape) as u64;
        let mut c = OpCounts::default();
        match &node.op {
            Op::Conv(conv) => {
                c.macs = conv.macs();
                c.params = (conv.weight.len() + conv.bias.len()) as u64;
                c.truncations = out;
            }
            Op::Linear(l) => {
                c.macs = l.macs();
                c.params = (l.weight.len() + l.bias.len()) as u64;
                c.truncations = out;
            }
            Op::BatchNorm(a) => {
                c.macs = out;
                c.params = (a.scale.len() + a.shift.len()) as u64;
                c.truncations = out;
            }
            Op::Relu => {
                c.relus = out;
                c.comparisons = out;
            }
            Op::Relu6 => {
                c.relus = out;
                c.comparisons = 2 * out;
            }
            Op::MaxPool(p) => {
                c.comparisons = out * (p.kernel[0] * p.kernel[1]).saturating_sub(1) as u64;
            }
            Op::AvgPool(_) | Op::GlobalAvgPool => c.truncations = out,
            Op::Mul => {
                c.macs = out;
                c.truncations = out;
            }
            Op::MatMul => {
                let a = &self.nodes[node.inputs[0]].shape;
                c.macs = out * a[a.len() - 1] as u64;
                c.truncations = out;
            }
            Op::LayerNorm(l) => c.params = (l.gamma.len() + l.beta.len()) as u64,
            Op::Constant(t) => c.params = t.data.len() as u64,
            Op::Input
            | Op::Add
            | Op::Slice(_)
            | Op::Pad(_)
            | Op::Reshape
            | Op::Concat { .. }
            | Op::Transpose { .. }
            | Op::Softmax
            | Op::Gelu => {}
        }
        c
    }

    /// Sum of [`Model::counts`] over all nodes.
    pub fn total_counts(&self) -> OpCounts {
        let mut t = OpCounts::default();
        for id in 0..self.nodes.len() {
            t += self.counts(id);
        }
        t
    }

    /// The layer table of `privinfer inspect`: one row per node except the input and
    /// constants.
    pub fn layer_table(&self) -> Vec<LayerRow> {
        self.nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| !matches!(n.op, Op::Input | Op::Constant(_)))
            .map(|(id, n)| LayerRow {
                layer: id,
                name: n.name.clone(),
                op: n.op.name(),
                inputs: n
                    .inputs
                    .iter()
                    .map(|&i| self.nodes[i].shape.clone())
                    .collect(),
                output: n.shape.clone(),
                counts: self.counts(id),
            })
            .collect()
    }
}

/// One row of [`Model::layer_table`].
#[derive(Clone, Debug, Serialize)]
pub struct LayerRow {
    pub layer: NodeId,
    pub name: String,
    pub op: &'static str,
    /// Shapes of the inputs.
    pub inputs: Vec<Vec<usize>>,
    /// Output shape.
    pub output: Vec<usize>,
    #[serde(flatten)]
    pub counts: OpCounts,
}

/// Numpy-style broadcast of two shapes, `None` when incompatible.
pub fn broadcast_shapes(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let n = a.len().max(b.len());
    let mut out = vec![0; n];
    for i in 0..n {
        let da = if i + a.len() >= n {
            a[i + a.len() - n]
        } else {
            1
        };
        let db = if i + b.len() >= n {
            b[i + b.len() - n]
        } else {
            1
        };
        out[i] = if da == db || db == 1 {
            da
        } else if da == 1 {
            db
        } else {
            return None;
        };
    }
    Some(out)
}

/// For each output index of a broadcast to `out`, the index into an operand of shape `shape`.
pub fn broadcast_index_map(shape: &[usize], out: &[usize]) -> Vec<usize> {
    let n = out.len();
    let st = strides(shape);
    // Effective stride per output axis: 0 where the operand is broadcast.
    let mut eff = vec![0usize; n];
    for i in 0..shape.len() {
        let oi = i + n - shape.len();
        eff[oi] = if shape[i] == 1 { 0 } else { st[i] };
    }
    let total = numel(out);
    let mut map = Vec::with_capacity(total);
    let mut idx = vec![0usize; n];
    let mut pos = 0usize;
    for _ in 0..total {
        map.push(pos);
        for a in (0..n).rev() {
            idx[a] += 1;
            pos += eff[a];
            if idx[a] < out[a] {
                break;
            }
            pos -= eff[a] * idx[a];
            idx[a] = 0;
        }
    }
    map
}

/// Applies a data-movement op (Slice, Pad, Concat, Transpose) by computing, for each output
/// element, the input it copies (`None` for zero padding). Shared by both executors so the
/// exact ops are identical in float and fixed point.
pub(crate) fn gather_map(model: &Model, id: NodeId) -> Vec<Option<(usize, usize)>> {
    let node = &model.nodes[id];
    let in_shapes: Vec<&[usize]> = node
        .inputs
        .iter()
        .map(|&i| model.nodes[i].shape.as_slice())
        .collect();
    gather_indices(&node.op, &in_shapes, &node.shape)
}

/// The gather of a data-movement op from shapes alone: for each output element of shape `out`,
/// `(input, flat index)` of the element it copies, or `None` for zero padding. The map is linear,
/// so applying it to additive shares of the inputs gives shares of the output.
///
/// Panics if `op` is not Slice, Pad, Concat or Transpose; shapes must be consistent with the op.
pub fn gather_indices(
    op: &Op,
    in_shapes: &[&[usize]],
    out: &[usize],
) -> Vec<Option<(usize, usize)>> {
    let n = out.len();
    let total = numel(out);
    let mut res = Vec::with_capacity(total);
    let mut idx = vec![0usize; n];
    let in_strides: Vec<Vec<usize>> = in_shapes.iter().map(|s| strides(s)).collect();
    for _ in 0..total {
        let m = match op {
            Op::Slice(sl) => {
                let mut p = 0;
                for a in 0..n {
                    p += (sl.starts[a] + idx[a] * sl.steps[a]) * in_strides[0][a];
                }
                Some((0, p))
            }
            Op::Pad(pd) => {
                let mut p = 0;
                let mut inside = true;
                for a in 0..n {
                    if idx[a] < pd.before[a] || idx[a] >= pd.before[a] + in_shapes[0][a] {
                        inside = false;
                        break;
                    }
                    p += (idx[a] - pd.before[a]) * in_strides[0][a];
                }
                inside.then_some((0, p))
            }
            Op::Concat { axis } => {
                let mut off = idx[*axis];
                let mut which = 0;
                while off >= in_shapes[which][*axis] {
                    off -= in_shapes[which][*axis];
                    which += 1;
                }
                let mut p = 0;
                for a in 0..n {
                    let i = if a == *axis { off } else { idx[a] };
                    p += i * in_strides[which][a];
                }
                Some((which, p))
            }
            Op::Transpose { perm } => {
                let mut p = 0;
                for a in 0..n {
                    p += idx[a] * in_strides[0][perm[a]];
                }
                Some((0, p))
            }
            _ => unreachable!("gather_indices is only called for data-movement ops"),
        };
        res.push(m);
        for a in (0..n).rev() {
            idx[a] += 1;
            if idx[a] < out[a] {
                break;
            }
            idx[a] = 0;
        }
    }
    res
}
