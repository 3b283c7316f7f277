//! ONNX import: decodes a `ModelProto` with `prost` (official onnx.proto) and lowers its graph
//! to the IR, folding BatchNorm into the preceding convolution, fusing bias Adds into Linear
//! layers, folding constant shape arithmetic, and checking every shape statically.
//!
//! Supported default-domain opsets: 13..=20 (PyTorch exports). Every rejection names the node
//! (`name`, or `#index` when the node is unnamed) and the reason.

use std::collections::HashMap;
use std::path::Path;

use prost::Message;

use crate::error::{NnError, Result};
use crate::ir::{
    broadcast_index_map, broadcast_shapes, numel, ChannelAffine, Conv2d, LayerNorm, Linear, Model,
    Node, NodeId, Op, Pad, Pool, Slice, Tensor,
};
use crate::onnx_proto as pb;

/// Lowest supported opset of the default ONNX domain.
pub const MIN_OPSET: i64 = 13;
/// Highest supported opset of the default ONNX domain.
pub const MAX_OPSET: i64 = 20;

/// Largest tensor (elements) the importer accepts.
pub const MAX_ELEMENTS: usize = 1 << 28;
/// Largest single dimension, pad, stride or kernel size the importer accepts.
pub const MAX_DIM: usize = 1 << 24;

/// Number of elements of a shape, `None` when it exceeds [`MAX_ELEMENTS`].
fn checked_numel(shape: &[usize]) -> Option<usize> {
    shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .filter(|&n| n <= MAX_ELEMENTS)
}

/// Options of [`load_with`] / [`from_bytes`].
#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    /// The input shape the caller will feed (with batch dimension). Must agree with every
    /// static dimension of the ONNX input; resolves dynamic ones.
    pub input_shape: Option<Vec<usize>>,
}

/// Imports an ONNX file with default options.
pub fn load(path: impl AsRef<Path>) -> Result<Model> {
    load_with(path, &ImportOptions::default())
}

/// Imports an ONNX file.
pub fn load_with(path: impl AsRef<Path>, opts: &ImportOptions) -> Result<Model> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|source| NnError::Io {
        path: path.display().to_string(),
        source,
    })?;
    from_bytes(&bytes, opts)
}

/// Imports an ONNX model from its serialized bytes.
pub fn from_bytes(bytes: &[u8], opts: &ImportOptions) -> Result<Model> {
    let model = pb::ModelProto::decode(bytes).map_err(|source| NnError::NotOnnx { source })?;
    if model.ir_version.is_none() {
        return Err(NnError::MissingField { what: "ir_version" });
    }
    let graph = model
        .graph
        .as_ref()
        .ok_or(NnError::MissingField { what: "graph" })?;
    if graph.node.is_empty() {
        return Err(NnError::MissingField {
            what: "graph nodes",
        });
    }
    let opset = model
        .opset_import
        .iter()
        .find(|o| matches!(o.domain.as_deref(), None | Some("") | Some("ai.onnx")))
        .and_then(|o| o.version)
        .ok_or(NnError::MissingField {
            what: "opset_import of the default domain",
        })?;
    if !(MIN_OPSET..=MAX_OPSET).contains(&opset) {
        return Err(NnError::UnsupportedOpset {
            domain: "ai.onnx".into(),
            version: opset,
            min: MIN_OPSET,
            max: MAX_OPSET,
        });
    }
    let nodes = fuse_gelu(graph);
    let mut b = Builder::new(graph, &nodes, opts)?;
    for (k, node) in nodes.iter().enumerate() {
        b.lower(k, node)?;
    }
    let mut m = b.finish(graph)?;
    m.metadata = model
        .metadata_props
        .iter()
        .map(|p| {
            (
                p.key.clone().unwrap_or_default(),
                p.value.clone().unwrap_or_default(),
            )
        })
        .collect();
    m.circulant_blocks()?;
    Ok(m)
}

/// A constant known at import time.
#[derive(Clone, Debug)]
enum Const {
    F32(Tensor<f32>),
    I64(Tensor<i64>),
}

impl Const {
    fn shape(&self) -> &[usize] {
        match self {
            Const::F32(t) => &t.shape,
            Const::I64(t) => &t.shape,
        }
    }
    fn to_f32(&self) -> Tensor<f32> {
        match self {
            Const::F32(t) => t.clone(),
            Const::I64(t) => {
                Tensor::new(t.shape.clone(), t.data.iter().map(|&v| v as f32).collect())
            }
        }
    }
    fn to_i64(&self) -> Vec<i64> {
        match self {
            Const::F32(t) => t.data.iter().map(|&v| v as i64).collect(),
            Const::I64(t) => t.data.clone(),
        }
    }
    fn with_shape(&self, shape: Vec<usize>) -> Const {
        match self {
            Const::F32(t) => Const::F32(Tensor::new(shape, t.data.clone())),
            Const::I64(t) => Const::I64(Tensor::new(shape, t.data.clone())),
        }
    }
}

#[derive(Clone, Debug)]
enum Value {
    Act(NodeId),
    Const(Const),
}

fn tensor_from_proto(t: &pb::TensorProto) -> Result<Const> {
    let name = t.name.clone().unwrap_or_default();
    let shape_i64 = t.dims.clone();
    if shape_i64
        .iter()
        .any(|&d| d < 0 || d as u64 > MAX_DIM as u64)
        || checked_numel(&shape_i64.iter().map(|&d| d as usize).collect::<Vec<_>>()).is_none()
    {
        return Err(NnError::TensorData {
            name,
            len: 0,
            shape: shape_i64,
        });
    }
    if t.data_location == Some(pb::tensor_proto::DataLocation::External as i32) {
        return Err(NnError::TensorType {
            name,
            data_type: t.data_type.unwrap_or(0),
        });
    }
    let shape: Vec<usize> = shape_i64.iter().map(|&d| d as usize).collect();
    let n = numel(&shape);
    let raw = t.raw_data.as_deref();
    let dt = t.data_type.unwrap_or(0);
    let bad_len = |len: usize| NnError::TensorData {
        name: name.clone(),
        len,
        shape: shape_i64.clone(),
    };
    // Element values come from `raw_data` (little-endian, W bytes each) when present, else from
    // the typed repeated field; either way exactly `n` of them.
    fn elements<T, const W: usize>(
        raw: Option<&[u8]>,
        n: usize,
        from_le: impl Fn([u8; W]) -> T,
        typed: impl FnOnce() -> Vec<T>,
    ) -> std::result::Result<Vec<T>, usize> {
        let data: Vec<T> = match raw {
            Some(r) if r.len() != W * n => return Err(r.len() / W),
            Some(r) => r
                .chunks_exact(W)
                .map(|c| from_le(c.try_into().expect("chunk of W bytes")))
                .collect(),
            None => typed(),
        };
        if data.len() != n {
            return Err(data.len());
        }
        Ok(data)
    }
    use pb::tensor_proto::DataType as D;
    let c = if dt == D::Float as i32 {
        let data = elements(raw, n, f32::from_le_bytes, || t.float_data.clone());
        Const::F32(Tensor::new(shape, data.map_err(bad_len)?))
    } else if dt == D::Double as i32 {
        let data = elements(
            raw,
            n,
            |b| f64::from_le_bytes(b) as f32,
            || t.double_data.iter().map(|&v| v as f32).collect(),
        );
        Const::F32(Tensor::new(shape, data.map_err(bad_len)?))
    } else if dt == D::Int64 as i32 {
        let data = elements(raw, n, i64::from_le_bytes, || t.int64_data.clone());
        Const::I64(Tensor::new(shape, data.map_err(bad_len)?))
    } else if dt == D::Int32 as i32 {
        let data = elements(
            raw,
            n,
            |b| i32::from_le_bytes(b) as i64,
            || t.int32_data.iter().map(|&v| v as i64).collect(),
        );
        Const::I64(Tensor::new(shape, data.map_err(bad_len)?))
    } else {
        return Err(NnError::TensorType {
            name,
            data_type: dt,
        });
    };
    Ok(c)
}

/// Context of the node being lowered, for error messages.
struct Ctx<'a> {
    name: String,
    op: &'a str,
    node: &'a pb::NodeProto,
}

impl Ctx<'_> {
    fn unsupported(&self, reason: impl Into<String>) -> NnError {
        NnError::UnsupportedAttribute {
            node: self.name.clone(),
            op: self.op.to_string(),
            reason: reason.into(),
        }
    }
    fn shape_err(&self, reason: impl Into<String>) -> NnError {
        NnError::ShapeMismatch {
            node: self.name.clone(),
            op: self.op.to_string(),
            reason: reason.into(),
        }
    }
    fn attr(&self, name: &str) -> Option<&pb::AttributeProto> {
        self.node
            .attribute
            .iter()
            .find(|a| a.name.as_deref() == Some(name))
    }
    fn int(&self, name: &str, default: i64) -> i64 {
        self.attr(name).and_then(|a| a.i).unwrap_or(default)
    }
    fn float(&self, name: &str, default: f32) -> f32 {
        self.attr(name).and_then(|a| a.f).unwrap_or(default)
    }
    fn ints(&self, name: &str) -> Option<Vec<i64>> {
        self.attr(name).map(|a| a.ints.clone())
    }
    fn string(&self, name: &str) -> Option<String> {
        self.attr(name)
            .and_then(|a| a.s.as_ref())
            .map(|s| String::from_utf8_lossy(s).into_owned())
    }
    /// A non-negative attribute list, or an error naming it.
    fn usizes(&self, name: &str) -> Result<Option<Vec<usize>>> {
        match self.ints(name) {
            None => Ok(None),
            Some(v) => {
                if v.iter().any(|&x| x < 0 || x as u64 > MAX_DIM as u64) {
                    return Err(self.unsupported(format!("{name} = {v:?} out of range")));
                }
                Ok(Some(v.into_iter().map(|x| x as usize).collect()))
            }
        }
    }
}

struct Builder {
    nodes: Vec<Node>,
    env: HashMap<String, Value>,
    /// How many times each value name is consumed (node inputs and graph outputs).
    uses: HashMap<String, usize>,
    input_name: String,
}

impl Builder {
    fn new(
        graph: &pb::GraphProto,
        graph_nodes: &[pb::NodeProto],
        opts: &ImportOptions,
    ) -> Result<Self> {
        let mut env = HashMap::new();
        for init in &graph.initializer {
            let name = init.name.clone().unwrap_or_default();
            env.insert(name, Value::Const(tensor_from_proto(init)?));
        }
        let runtime: Vec<&pb::ValueInfoProto> = graph
            .input
            .iter()
            .filter(|i| !env.contains_key(i.name.as_deref().unwrap_or("")))
            .collect();
        if runtime.len() != 1 {
            return Err(NnError::InputCount {
                count: runtime.len(),
            });
        }
        let input = runtime[0];
        let input_name = input.name.clone().unwrap_or_default();
        let tensor_type = match input.r#type.as_ref().and_then(|t| t.value.as_ref()) {
            Some(pb::type_proto::Value::TensorType(t)) => t,
            _ => {
                return Err(NnError::MissingField {
                    what: "tensor type of the graph input",
                })
            }
        };
        if tensor_type.elem_type != Some(pb::tensor_proto::DataType::Float as i32) {
            return Err(NnError::TensorType {
                name: input_name,
                data_type: tensor_type.elem_type.unwrap_or(0),
            });
        }
        let dims = tensor_type
            .shape
            .as_ref()
            .ok_or(NnError::MissingField {
                what: "shape of the graph input",
            })?
            .dim
            .clone();
        let mut shape = Vec::with_capacity(dims.len());
        for (i, d) in dims.iter().enumerate() {
            use pb::tensor_shape_proto::dimension::Value as DV;
            let given = opts.input_shape.as_ref().and_then(|s| s.get(i).copied());
            match (&d.value, given) {
                (Some(DV::DimValue(v)), _) if *v > 0 && *v as u64 <= MAX_DIM as u64 => {
                    shape.push(*v as usize)
                }
                (_, Some(g)) => shape.push(g),
                (Some(DV::DimParam(p)), None) => {
                    return Err(NnError::DynamicShape {
                        input: input_name,
                        dim: i,
                        symbol: p.clone(),
                    })
                }
                (_, None) => {
                    return Err(NnError::DynamicShape {
                        input: input_name,
                        dim: i,
                        symbol: "?".into(),
                    })
                }
            }
        }
        if checked_numel(&shape).is_none() {
            return Err(NnError::WrongInputShape {
                input: input_name,
                expected: vec![],
                got: shape,
            });
        }
        if let Some(given) = &opts.input_shape {
            if given != &shape || shape.first() != Some(&1) {
                return Err(NnError::WrongInputShape {
                    input: input_name,
                    expected: shape,
                    got: given.clone(),
                });
            }
        }
        if shape.first() != Some(&1) {
            return Err(NnError::WrongInputShape {
                input: input_name,
                expected: {
                    let mut s = shape.clone();
                    if let Some(f) = s.first_mut() {
                        *f = 1;
                    }
                    s
                },
                got: shape,
            });
        }
        let mut uses: HashMap<String, usize> = HashMap::new();
        for n in graph_nodes {
            for i in &n.input {
                *uses.entry(i.clone()).or_default() += 1;
            }
        }
        for o in &graph.output {
            *uses.entry(o.name.clone().unwrap_or_default()).or_default() += 1;
        }
        let nodes = vec![Node {
            name: input_name.clone(),
            op: Op::Input,
            inputs: vec![],
            shape,
        }];
        env.insert(input_name.clone(), Value::Act(0));
        Ok(Builder {
            nodes,
            env,
            uses,
            input_name,
        })
    }

    /// Resolves the graph output and drops nodes that do not reach it.
    fn finish(self, graph: &pb::GraphProto) -> Result<Model> {
        if graph.output.len() != 1 {
            return Err(NnError::OutputCount {
                count: graph.output.len(),
            });
        }
        let out_name = graph.output[0].name.clone().unwrap_or_default();
        let out = match self.env.get(&out_name) {
            Some(Value::Act(id)) => *id,
            _ => {
                return Err(NnError::UndefinedInput {
                    node: "graph output".into(),
                    op: "Output".into(),
                    input: out_name,
                })
            }
        };
        let (mut nodes, out) = patch_linears(self.nodes, out);
        fold_layernorm_affines(&mut nodes);
        sink_layernorms(&mut nodes);
        fold_attention_scales(&mut nodes);
        let (nodes, out) = merge_sibling_linears(nodes, out);
        let n = nodes.len();
        let mut live = vec![false; n];
        live[0] = true;
        live[out] = true;
        for i in (0..n).rev() {
            if live[i] {
                for &j in &nodes[i].inputs {
                    live[j] = true;
                }
            }
        }
        let mut remap = vec![usize::MAX; n];
        let mut kept = Vec::with_capacity(n);
        for (i, mut node) in nodes.into_iter().enumerate() {
            if live[i] {
                node.inputs = node.inputs.iter().map(|&j| remap[j]).collect();
                remap[i] = kept.len();
                kept.push(node);
            }
        }
        Ok(Model {
            name: graph.name.clone().unwrap_or_default(),
            input_name: self.input_name,
            nodes: kept,
            output: remap[out],
            metadata: vec![],
        })
    }

    fn push(&mut self, name: &str, op: Op, inputs: Vec<NodeId>, shape: Vec<usize>) -> NodeId {
        self.nodes.push(Node {
            name: name.to_string(),
            op,
            inputs,
            shape,
        });
        self.nodes.len() - 1
    }

    fn shape(&self, id: NodeId) -> &[usize] {
        &self.nodes[id].shape
    }

    fn value(&self, ctx: &Ctx, idx: usize) -> Result<Option<Value>> {
        let Some(name) = ctx.node.input.get(idx) else {
            return Ok(None);
        };
        if name.is_empty() {
            return Ok(None);
        }
        match self.env.get(name) {
            Some(v) => Ok(Some(v.clone())),
            None => Err(NnError::UndefinedInput {
                node: ctx.name.clone(),
                op: ctx.op.to_string(),
                input: name.clone(),
            }),
        }
    }

    fn required(&self, ctx: &Ctx, idx: usize) -> Result<Value> {
        self.value(ctx, idx)?
            .ok_or_else(|| NnError::UndefinedInput {
                node: ctx.name.clone(),
                op: ctx.op.to_string(),
                input: format!("#{idx} (missing)"),
            })
    }

    fn act(&self, ctx: &Ctx, idx: usize) -> Result<NodeId> {
        match self.required(ctx, idx)? {
            Value::Act(id) => Ok(id),
            Value::Const(_) => Err(ctx.unsupported(format!(
                "input {idx} is a constant where an activation is expected"
            ))),
        }
    }

    fn constant(&self, ctx: &Ctx, idx: usize) -> Result<Option<Const>> {
        match self.value(ctx, idx)? {
            None => Ok(None),
            Some(Value::Const(c)) => Ok(Some(c)),
            Some(Value::Act(_)) => Err(NnError::ExpectedConstant {
                node: ctx.name.clone(),
                op: ctx.op.to_string(),
                index: idx,
            }),
        }
    }

    fn required_constant(&self, ctx: &Ctx, idx: usize) -> Result<Const> {
        self.constant(ctx, idx)?
            .ok_or_else(|| NnError::UndefinedInput {
                node: ctx.name.clone(),
                op: ctx.op.to_string(),
                input: format!("#{idx} (missing)"),
            })
    }

    fn output(&mut self, ctx: &Ctx, v: Value) {
        if let Some(out) = ctx.node.output.first() {
            self.env.insert(out.clone(), v);
        }
    }

    fn const_node(&mut self, name: &str, c: &Const) -> NodeId {
        let t = c.to_f32();
        let shape = t.shape.clone();
        self.push(name, Op::Constant(t), vec![], shape)
    }

    /// Number of consumers of the value produced by output 0 of the node whose input `idx`
    /// this is.
    fn uses_of_input(&self, ctx: &Ctx, idx: usize) -> usize {
        ctx.node
            .input
            .get(idx)
            .and_then(|n| self.uses.get(n))
            .copied()
            .unwrap_or(0)
    }

    /// Lowers one ONNX node, then checks that every tensor it created has a bounded size.
    fn lower(&mut self, k: usize, node: &pb::NodeProto) -> Result<()> {
        let before = self.nodes.len();
        self.lower_node(k, node)?;
        for n in &self.nodes[before..] {
            if checked_numel(&n.shape).is_none_or(|e| e == 0) {
                return Err(NnError::ShapeMismatch {
                    node: n.name.clone(),
                    op: node.op_type.clone().unwrap_or_default(),
                    reason: format!(
                        "output shape {:?} is empty or exceeds {MAX_ELEMENTS} elements",
                        n.shape
                    ),
                });
            }
        }
        Ok(())
    }

    fn lower_node(&mut self, k: usize, node: &pb::NodeProto) -> Result<()> {
        let op_type = node.op_type.clone().unwrap_or_default();
        let name = match node.name.as_deref() {
            Some(n) if !n.is_empty() => n.to_string(),
            _ => format!("#{k}"),
        };
        let ctx = Ctx {
            name: name.clone(),
            op: &op_type,
            node,
        };
        if !matches!(node.domain.as_deref(), None | Some("") | Some("ai.onnx")) {
            return Err(NnError::UnsupportedOp {
                node: name,
                op: format!("{}::{}", node.domain.as_deref().unwrap_or(""), op_type),
            });
        }
        // Extra outputs (e.g. MaxPool indices, BatchNorm running stats) must be unused.
        for extra in node.output.iter().skip(1) {
            if !extra.is_empty() && self.uses.get(extra).copied().unwrap_or(0) > 0 {
                return Err(ctx.unsupported(format!(
                    "output {extra} is used; only output 0 is supported"
                )));
            }
        }
        match op_type.as_str() {
            "Conv" => self.conv(&ctx),
            "BatchNormalization" => self.batchnorm(&ctx),
            "Relu" => self.unary(&ctx, Op::Relu),
            "Clip" => self.clip(&ctx),
            "MaxPool" => self.pool(&ctx, true),
            "AveragePool" => self.pool(&ctx, false),
            "GlobalAveragePool" => {
                let x = self.act(&ctx, 0)?;
                let s = self.shape(x).to_vec();
                if s.len() != 4 {
                    return Err(ctx.shape_err(format!("input shape {s:?} is not NCHW")));
                }
                let id = self.push(&name, Op::GlobalAvgPool, vec![x], vec![1, s[1], 1, 1]);
                self.output(&ctx, Value::Act(id));
                Ok(())
            }
            "Add" | "Sub" | "Mul" | "Div" => self.binary(&ctx),
            "Slice" => self.slice(&ctx),
            "Pad" => self.pad(&ctx),
            "Flatten" => self.flatten(&ctx),
            "Reshape" | "Squeeze" | "Unsqueeze" => self.reshape(&ctx),
            "Gemm" => self.gemm(&ctx),
            "MatMul" => self.matmul(&ctx),
            "Concat" => self.concat(&ctx),
            "Transpose" => self.transpose(&ctx),
            "LayerNormalization" => self.layernorm(&ctx),
            "Softmax" => {
                let x = self.act(&ctx, 0)?;
                let s = self.shape(x).to_vec();
                let axis = norm_axis(ctx.int("axis", -1), s.len())
                    .ok_or_else(|| ctx.shape_err("axis out of range"))?;
                if axis + 1 != s.len() {
                    return Err(ctx.unsupported(format!(
                        "softmax over axis {axis}; only the last axis is supported"
                    )));
                }
                self.unary(&ctx, Op::Softmax)
            }
            "Gelu" => {
                let approx = ctx.string("approximate").unwrap_or_else(|| "none".into());
                if approx != "none" {
                    return Err(ctx.unsupported(format!("approximate = {approx}")));
                }
                self.unary(&ctx, Op::Gelu)
            }
            "Identity" | "Dropout" => {
                let v = self.required(&ctx, 0)?;
                self.output(&ctx, v);
                Ok(())
            }
            "Constant" => self.constant_node(&ctx),
            "Shape" => {
                let v = self.required(&ctx, 0)?;
                let s: Vec<i64> = match &v {
                    Value::Act(id) => self.shape(*id).iter().map(|&d| d as i64).collect(),
                    Value::Const(c) => c.shape().iter().map(|&d| d as i64).collect(),
                };
                let n = s.len();
                self.output(&ctx, Value::Const(Const::I64(Tensor::new(vec![n], s))));
                Ok(())
            }
            "Gather" => self.gather(&ctx),
            // Shape arithmetic of exported graphs (PyTorch's expand of a class token, the
            // split points of a packed projection): folded when every operand is constant.
            "Equal" | "Where" | "Expand" => {
                let mut cs = Vec::with_capacity(ctx.node.input.len());
                for k in 0..ctx.node.input.len() {
                    match self.constant(&ctx, k)? {
                        Some(c) => cs.push(c),
                        None => {
                            return Err(ctx.unsupported(
                                "only on constants (shape arithmetic), not on activations",
                            ))
                        }
                    }
                }
                let c = fold_select(&ctx, &cs)?;
                self.output(&ctx, Value::Const(c));
                Ok(())
            }
            "ConstantOfShape" => {
                let shape: Vec<usize> = self
                    .required_constant(&ctx, 0)?
                    .to_i64()
                    .iter()
                    .map(|&d| {
                        usize::try_from(d)
                            .map_err(|_| ctx.shape_err(format!("negative dimension {d}")))
                    })
                    .collect::<Result<_>>()?;
                if checked_numel(&shape).is_none() {
                    return Err(ctx.shape_err(format!("shape {shape:?} too large")));
                }
                let fill = match ctx.attr("value").and_then(|a| a.t.as_ref()) {
                    Some(t) => tensor_from_proto(t)?,
                    None => Const::F32(Tensor::new(vec![1], vec![0.0])),
                };
                let n = numel(&shape);
                let c = match fill {
                    Const::F32(t) => Const::F32(Tensor::new(
                        shape,
                        vec![t.data.first().copied().unwrap_or(0.0); n],
                    )),
                    Const::I64(t) => Const::I64(Tensor::new(
                        shape,
                        vec![t.data.first().copied().unwrap_or(0); n],
                    )),
                };
                self.output(&ctx, Value::Const(c));
                Ok(())
            }
            "Cast" => {
                let v = self.required(&ctx, 0)?;
                let to = ctx.int("to", 1);
                let out = match v {
                    Value::Act(id) if to == pb::tensor_proto::DataType::Float as i32 as i64 => {
                        Value::Act(id)
                    }
                    Value::Const(c) if to == pb::tensor_proto::DataType::Float as i32 as i64 => {
                        Value::Const(Const::F32(c.to_f32()))
                    }
                    Value::Const(c) if to == pb::tensor_proto::DataType::Int64 as i32 as i64 => {
                        let t = Tensor::new(c.shape().to_vec(), c.to_i64());
                        Value::Const(Const::I64(t))
                    }
                    _ => return Err(ctx.unsupported(format!("cast to data type {to}"))),
                };
                self.output(&ctx, out);
                Ok(())
            }
            _ => Err(NnError::UnsupportedOp {
                node: name,
                op: op_type.clone(),
            }),
        }
    }

    fn constant_node(&mut self, ctx: &Ctx) -> Result<()> {
        let a = ctx
            .node
            .attribute
            .first()
            .ok_or_else(|| ctx.unsupported("Constant without a value"))?;
        let c = match a.name.as_deref().unwrap_or("") {
            "value" => tensor_from_proto(
                a.t.as_ref()
                    .ok_or_else(|| ctx.unsupported("value without a tensor"))?,
            )?,
            "value_float" => Const::F32(Tensor::new(vec![], vec![a.f.unwrap_or(0.0)])),
            "value_floats" => Const::F32(Tensor::new(vec![a.floats.len()], a.floats.clone())),
            "value_int" => Const::I64(Tensor::new(vec![], vec![a.i.unwrap_or(0)])),
            "value_ints" => Const::I64(Tensor::new(vec![a.ints.len()], a.ints.clone())),
            other => return Err(ctx.unsupported(format!("Constant attribute {other}"))),
        };
        self.output(ctx, Value::Const(c));
        Ok(())
    }

    /// Gather with constant indices: folded on constants; on an activation only a scalar
    /// index (`x[:, k]`), lowered to Slice + Reshape.
    fn gather(&mut self, ctx: &Ctx) -> Result<()> {
        let data = self.required(ctx, 0)?;
        let ind = self.required_constant(ctx, 1)?;
        let ishape = ind.shape().to_vec();
        let shape = match &data {
            Value::Act(id) => self.shape(*id).to_vec(),
            Value::Const(c) => c.shape().to_vec(),
        };
        let r = shape.len();
        let axis =
            norm_axis(ctx.int("axis", 0), r).ok_or_else(|| ctx.shape_err("axis out of range"))?;
        let d = shape[axis] as i64;
        let idx: Vec<usize> = ind
            .to_i64()
            .iter()
            .map(|&i| {
                let i = if i < 0 { i + d } else { i };
                if (0..d).contains(&i) {
                    Ok(i as usize)
                } else {
                    Err(ctx.shape_err(format!("index {i} out of range for axis of size {d}")))
                }
            })
            .collect::<Result<_>>()?;
        let mut out: Vec<usize> = shape[..axis].to_vec();
        out.extend(&ishape);
        out.extend(&shape[axis + 1..]);
        match data {
            Value::Const(c) => {
                let outer = numel(&shape[..axis]);
                let inner = numel(&shape[axis + 1..]);
                let mut pos = Vec::with_capacity(numel(&out));
                for o in 0..outer {
                    for &i in &idx {
                        for j in 0..inner {
                            pos.push((o * shape[axis] + i) * inner + j);
                        }
                    }
                }
                let v = match c {
                    Const::F32(t) => {
                        Const::F32(Tensor::new(out, pos.iter().map(|&p| t.data[p]).collect()))
                    }
                    Const::I64(t) => {
                        Const::I64(Tensor::new(out, pos.iter().map(|&p| t.data[p]).collect()))
                    }
                };
                self.output(ctx, Value::Const(v));
                Ok(())
            }
            Value::Act(x) => {
                if !ishape.is_empty() || axis == 0 {
                    return Err(ctx.unsupported(
                        "Gather on an activation (only a scalar index on a non-batch axis)",
                    ));
                }
                let mut starts = vec![0; r];
                starts[axis] = idx[0];
                let mut sliced = shape.clone();
                sliced[axis] = 1;
                let sl = self.push(
                    &format!("{}/slice", ctx.name),
                    Op::Slice(Slice {
                        starts,
                        steps: vec![1; r],
                    }),
                    vec![x],
                    sliced,
                );
                let id = self.push(&ctx.name, Op::Reshape, vec![sl], out);
                self.output(ctx, Value::Act(id));
                Ok(())
            }
        }
    }

    fn unary(&mut self, ctx: &Ctx, op: Op) -> Result<()> {
        let x = self.act(ctx, 0)?;
        let s = self.shape(x).to_vec();
        let id = self.push(&ctx.name, op, vec![x], s);
        self.output(ctx, Value::Act(id));
        Ok(())
    }

    fn conv(&mut self, ctx: &Ctx) -> Result<()> {
        let x = self.act(ctx, 0)?;
        let w = self.required_constant(ctx, 1)?.to_f32();
        let b = self.constant(ctx, 2)?.map(|c| c.to_f32());
        let xs = self.shape(x).to_vec();
        if xs.len() != 4 || w.shape.len() != 4 {
            return Err(ctx.unsupported(format!(
                "only 2-D convolutions (input {xs:?}, weight {:?})",
                w.shape
            )));
        }
        if let Some(p) = ctx.string("auto_pad") {
            if p != "NOTSET" {
                return Err(ctx.unsupported(format!("auto_pad = {p}")));
            }
        }
        if let Some(d) = ctx.ints("dilations") {
            if d.iter().any(|&v| v != 1) {
                return Err(ctx.unsupported(format!("dilations = {d:?}")));
            }
        }
        let group = ctx.int("group", 1);
        if group < 1 {
            return Err(ctx.unsupported(format!("group = {group}")));
        }
        let groups = group as usize;
        let [o, ci, kh, kw] = [w.shape[0], w.shape[1], w.shape[2], w.shape[3]];
        if let Some(ks) = ctx.usizes("kernel_shape")? {
            if ks != [kh, kw] {
                return Err(ctx.shape_err(format!("kernel_shape {ks:?} vs weight {:?}", w.shape)));
            }
        }
        let stride = ctx.usizes("strides")?.unwrap_or(vec![1, 1]);
        let pads = ctx.usizes("pads")?.unwrap_or(vec![0, 0, 0, 0]);
        if stride.len() != 2 || pads.len() != 4 || stride.contains(&0) {
            return Err(ctx.unsupported(format!("strides {stride:?} / pads {pads:?}")));
        }
        let (c, h, wd) = (xs[1], xs[2], xs[3]);
        if ci * groups != c || o % groups != 0 {
            return Err(ctx.shape_err(format!(
                "input has {c} channels, weight {:?} with group {groups}",
                w.shape
            )));
        }
        let hp = h + pads[0] + pads[2];
        let wp = wd + pads[1] + pads[3];
        if hp < kh || wp < kw {
            return Err(ctx.shape_err(format!(
                "kernel {kh}x{kw} larger than padded input {hp}x{wp}"
            )));
        }
        let oh = (hp - kh) / stride[0] + 1;
        let ow = (wp - kw) / stride[1] + 1;
        let bias = match b {
            None => vec![0.0; o],
            Some(b) if b.data.len() == o => b.data,
            Some(b) => {
                return Err(
                    ctx.shape_err(format!("bias shape {:?} for {o} output channels", b.shape))
                )
            }
        };
        let conv = Conv2d {
            in_shape: [c, h, wd],
            out_shape: [o, oh, ow],
            kernel: [kh, kw],
            stride: [stride[0], stride[1]],
            pads: [pads[0], pads[1], pads[2], pads[3]],
            groups,
            weight: w.data,
            bias,
        };
        let id = self.push(&ctx.name, Op::Conv(conv), vec![x], vec![1, o, oh, ow]);
        self.output(ctx, Value::Act(id));
        Ok(())
    }

    fn batchnorm(&mut self, ctx: &Ctx) -> Result<()> {
        let x = self.act(ctx, 0)?;
        if ctx.int("training_mode", 0) != 0 {
            return Err(ctx.unsupported("training_mode = 1"));
        }
        let eps = ctx.float("epsilon", 1e-5) as f64;
        let p: Vec<Vec<f32>> = (1..5)
            .map(|i| self.required_constant(ctx, i).map(|c| c.to_f32().data))
            .collect::<Result<_>>()?;
        let xs = self.shape(x).to_vec();
        let c = xs.get(1).copied().unwrap_or(0);
        if xs.len() < 2 || p.iter().any(|v| v.len() != c) {
            return Err(ctx.shape_err(format!(
                "input {xs:?} vs parameters of length {}",
                p[0].len()
            )));
        }
        // y = (x − mean) / sqrt(var + eps) · gamma + beta = x · a + b.
        let a: Vec<f64> = (0..c)
            .map(|i| p[0][i] as f64 / (p[3][i] as f64 + eps).sqrt())
            .collect();
        let sh: Vec<f64> = (0..c)
            .map(|i| p[1][i] as f64 - p[2][i] as f64 * a[i])
            .collect();
        let foldable = matches!(self.nodes[x].op, Op::Conv(_)) && self.uses_of_input(ctx, 0) == 1;
        if foldable {
            // Fold into the convolution: W'[o] = W[o] · a[o], b'[o] = b[o] · a[o] + shift[o].
            if let Op::Conv(conv) = &mut self.nodes[x].op {
                let per_o = conv.weight.len() / c;
                for o in 0..c {
                    for w in &mut conv.weight[o * per_o..(o + 1) * per_o] {
                        *w = (*w as f64 * a[o]) as f32;
                    }
                    conv.bias[o] = (conv.bias[o] as f64 * a[o] + sh[o]) as f32;
                }
            }
            self.output(ctx, Value::Act(x));
        } else {
            let aff = ChannelAffine {
                scale: a.iter().map(|&v| v as f32).collect(),
                shift: sh.iter().map(|&v| v as f32).collect(),
            };
            let id = self.push(&ctx.name, Op::BatchNorm(aff), vec![x], xs);
            self.output(ctx, Value::Act(id));
        }
        Ok(())
    }

    fn clip(&mut self, ctx: &Ctx) -> Result<()> {
        let scalar = |c: Option<Const>| -> Option<f32> {
            c.map(|c| c.to_f32().data.first().copied().unwrap_or(f32::NAN))
        };
        let lo = scalar(self.constant(ctx, 1)?);
        let hi = scalar(self.constant(ctx, 2)?);
        match (lo, hi) {
            (Some(l), Some(h)) if l == 0.0 && h == 6.0 => {
                // PyTorch exports ReLU6 as Relu then Clip(0, 6); relu6(relu(x)) = relu6(x), so
                // a Relu feeding only this Clip becomes the Relu6 (one comparison pair, not three).
                let x = self.act(ctx, 0)?;
                if matches!(self.nodes[x].op, Op::Relu) && self.uses_of_input(ctx, 0) == 1 {
                    self.nodes[x].op = Op::Relu6;
                    self.output(ctx, Value::Act(x));
                    Ok(())
                } else {
                    self.unary(ctx, Op::Relu6)
                }
            }
            (Some(0.0), None) => self.unary(ctx, Op::Relu),
            _ => Err(ctx.unsupported(format!(
                "Clip(min = {lo:?}, max = {hi:?}); only (0, 6) and (0, none)"
            ))),
        }
    }

    fn pool(&mut self, ctx: &Ctx, max: bool) -> Result<()> {
        let x = self.act(ctx, 0)?;
        let xs = self.shape(x).to_vec();
        if xs.len() != 4 {
            return Err(ctx.shape_err(format!("input {xs:?} is not NCHW")));
        }
        if let Some(p) = ctx.string("auto_pad") {
            if p != "NOTSET" {
                return Err(ctx.unsupported(format!("auto_pad = {p}")));
            }
        }
        if ctx.int("ceil_mode", 0) != 0 {
            return Err(ctx.unsupported("ceil_mode = 1"));
        }
        if let Some(d) = ctx.ints("dilations") {
            if d.iter().any(|&v| v != 1) {
                return Err(ctx.unsupported(format!("dilations = {d:?}")));
            }
        }
        let kernel = ctx
            .usizes("kernel_shape")?
            .ok_or_else(|| ctx.unsupported("missing kernel_shape"))?;
        let stride = ctx.usizes("strides")?.unwrap_or(vec![1, 1]);
        let pads = ctx.usizes("pads")?.unwrap_or(vec![0, 0, 0, 0]);
        if kernel.len() != 2
            || stride.len() != 2
            || pads.len() != 4
            || stride.contains(&0)
            || kernel.contains(&0)
        {
            return Err(ctx.unsupported(format!(
                "kernel {kernel:?} strides {stride:?} pads {pads:?}"
            )));
        }
        let hp = xs[2] + pads[0] + pads[2];
        let wp = xs[3] + pads[1] + pads[3];
        if hp < kernel[0]
            || wp < kernel[1]
            || pads[0] >= kernel[0]
            || pads[2] >= kernel[0]
            || pads[1] >= kernel[1]
            || pads[3] >= kernel[1]
        {
            return Err(ctx.shape_err(format!(
                "kernel {kernel:?} and pads {pads:?} on input {xs:?}"
            )));
        }
        let oh = (hp - kernel[0]) / stride[0] + 1;
        let ow = (wp - kernel[1]) / stride[1] + 1;
        let pool = Pool {
            kernel: [kernel[0], kernel[1]],
            stride: [stride[0], stride[1]],
            pads: [pads[0], pads[1], pads[2], pads[3]],
            count_include_pad: ctx.int("count_include_pad", 0) != 0,
        };
        let op = if max {
            Op::MaxPool(pool)
        } else {
            Op::AvgPool(pool)
        };
        let id = self.push(&ctx.name, op, vec![x], vec![1, xs[1], oh, ow]);
        self.output(ctx, Value::Act(id));
        Ok(())
    }

    fn binary(&mut self, ctx: &Ctx) -> Result<()> {
        let a = self.required(ctx, 0)?;
        let b = self.required(ctx, 1)?;
        let op = ctx.op;
        match (a, b) {
            (Value::Const(ca), Value::Const(cb)) => {
                let v = fold_binary(ctx, op, &ca, &cb)?;
                self.output(ctx, Value::Const(v));
                Ok(())
            }
            (Value::Act(x), Value::Act(y)) => {
                let bop = match op {
                    "Add" => Op::Add,
                    "Mul" => Op::Mul,
                    _ => return Err(ctx.unsupported(format!("{op} of two activations"))),
                };
                let s = broadcast_shapes(self.shape(x), self.shape(y)).ok_or_else(|| {
                    ctx.shape_err(format!(
                        "cannot broadcast {:?} and {:?}",
                        self.shape(x),
                        self.shape(y)
                    ))
                })?;
                let id = self.push(&ctx.name, bop, vec![x, y], s);
                self.output(ctx, Value::Act(id));
                Ok(())
            }
            (Value::Const(c), Value::Act(x)) if op == "Add" || op == "Mul" => {
                self.act_const(ctx, op, x, c)
            }
            (Value::Act(x), Value::Const(c)) => {
                let c = c.to_f32();
                let (op2, c2) = match op {
                    "Sub" => ("Add", c.data.iter().map(|v| -v).collect()),
                    "Div" => ("Mul", c.data.iter().map(|v| 1.0 / v).collect()),
                    _ => (op, c.data.clone()),
                };
                self.act_const(ctx, op2, x, Const::F32(Tensor::new(c.shape.clone(), c2)))
            }
            _ => Err(ctx.unsupported(format!(
                "{op} with a constant left operand and an activation right operand"
            ))),
        }
    }

    /// `x (+|·) c` with `c` constant: a bias Add right after a Linear or Conv with a single
    /// consumer is fused into its bias; otherwise a Constant node feeds an Add / Mul.
    fn act_const(&mut self, ctx: &Ctx, op: &str, x: NodeId, c: Const) -> Result<()> {
        let c = c.to_f32();
        let xs = self.shape(x).to_vec();
        let out = broadcast_shapes(&xs, &c.shape)
            .ok_or_else(|| ctx.shape_err(format!("cannot broadcast {xs:?} and {:?}", c.shape)))?;
        let single_use = {
            let which = if matches!(self.env.get(&ctx.node.input[0]), Some(Value::Act(id)) if *id == x)
            {
                0
            } else {
                1
            };
            self.uses_of_input(ctx, which) == 1
        };
        if op == "Add" && out == xs && single_use {
            match &mut self.nodes[x].op {
                Op::Linear(l)
                    if numel(&c.shape) == l.out_features
                        && c.shape.last() == Some(&l.out_features) =>
                {
                    for (b, v) in l.bias.iter_mut().zip(&c.data) {
                        *b += v;
                    }
                    self.output(ctx, Value::Act(x));
                    return Ok(());
                }
                Op::Conv(conv)
                    if numel(&c.shape) == conv.out_shape[0] && {
                        let r = c.shape.len();
                        r >= 3 && c.shape[r - 3] == conv.out_shape[0]
                    } =>
                {
                    for (b, v) in conv.bias.iter_mut().zip(&c.data) {
                        *b += v;
                    }
                    self.output(ctx, Value::Act(x));
                    return Ok(());
                }
                _ => {}
            }
        }
        let cid = self.const_node(&format!("{}/const", ctx.name), &Const::F32(c));
        let bop = if op == "Add" { Op::Add } else { Op::Mul };
        let id = self.push(&ctx.name, bop, vec![x, cid], out);
        self.output(ctx, Value::Act(id));
        Ok(())
    }

    fn slice(&mut self, ctx: &Ctx) -> Result<()> {
        let data = self.required(ctx, 0)?;
        let starts = self.required_constant(ctx, 1)?.to_i64();
        let ends = self.required_constant(ctx, 2)?.to_i64();
        let shape = match &data {
            Value::Act(id) => self.shape(*id).to_vec(),
            Value::Const(c) => c.shape().to_vec(),
        };
        let r = shape.len();
        let axes = match self.constant(ctx, 3)? {
            Some(c) => c.to_i64(),
            None => (0..starts.len() as i64).collect(),
        };
        let steps = match self.constant(ctx, 4)? {
            Some(c) => c.to_i64(),
            None => vec![1; starts.len()],
        };
        if ends.len() != starts.len() || axes.len() != starts.len() || steps.len() != starts.len() {
            return Err(ctx.shape_err("starts, ends, axes and steps differ in length"));
        }
        let mut st = vec![0i64; r];
        let mut sp = vec![1i64; r];
        let mut out = shape.clone();
        for i in 0..starts.len() {
            let a = norm_axis(axes[i], r)
                .ok_or_else(|| ctx.shape_err(format!("axis {} out of range", axes[i])))?;
            let step = steps[i];
            if step == 0 || (step < 0 && matches!(data, Value::Act(_))) {
                return Err(
                    ctx.unsupported(format!("step {step} (only positive steps on activations)"))
                );
            }
            let d = shape[a] as i64;
            let wrap = |v: i64| if v < 0 { v.saturating_add(d) } else { v };
            // [ONNX Slice]: clamp to [0, d] for positive steps, [−1, d − 1] for negative ones.
            let (s0, len) = if step > 0 {
                let (s0, e0) = (wrap(starts[i]).clamp(0, d), wrap(ends[i]).clamp(0, d));
                (s0, if e0 > s0 { (e0 - s0 - 1) / step + 1 } else { 0 })
            } else {
                let (s0, e0) = (
                    wrap(starts[i]).clamp(-1, d - 1),
                    wrap(ends[i]).clamp(-1, d - 1),
                );
                (
                    s0,
                    if s0 > e0 {
                        (s0 - e0 - 1) / step.saturating_neg() + 1
                    } else {
                        0
                    },
                )
            };
            if len == 0 {
                return Err(ctx.shape_err(format!("empty slice on axis {a}")));
            }
            st[a] = s0;
            sp[a] = step;
            out[a] = len as usize;
        }
        match data {
            Value::Act(x) => {
                let sl = Slice {
                    starts: st.iter().map(|&v| v as usize).collect(),
                    steps: sp.iter().map(|&v| v as usize).collect(),
                };
                let id = self.push(&ctx.name, Op::Slice(sl), vec![x], out);
                self.output(ctx, Value::Act(id));
            }
            Value::Const(c) => {
                let v = fold_slice(&c, &st, &sp, &out);
                self.output(ctx, Value::Const(v));
            }
        }
        Ok(())
    }

    fn pad(&mut self, ctx: &Ctx) -> Result<()> {
        let x = self.act(ctx, 0)?;
        let mode = ctx.string("mode").unwrap_or_else(|| "constant".into());
        if mode != "constant" {
            return Err(ctx.unsupported(format!("mode = {mode}")));
        }
        let pads = self.required_constant(ctx, 1)?.to_i64();
        if let Some(v) = self.constant(ctx, 2)? {
            let v = v.to_f32();
            if v.data.iter().any(|&c| c != 0.0) {
                return Err(
                    ctx.unsupported(format!("constant_value {:?} (only zero padding)", v.data))
                );
            }
        }
        let xs = self.shape(x).to_vec();
        let r = xs.len();
        let axes: Vec<usize> = match self.constant(ctx, 3)? {
            Some(a) => a
                .to_i64()
                .iter()
                .map(|&v| {
                    norm_axis(v, r).ok_or_else(|| ctx.shape_err(format!("axis {v} out of range")))
                })
                .collect::<Result<_>>()?,
            None => (0..r).collect(),
        };
        if pads.len() != 2 * axes.len() {
            return Err(ctx.shape_err(format!("{} pads for {} axes", pads.len(), axes.len())));
        }
        if pads.iter().any(|&p| p < 0 || p as u64 > MAX_DIM as u64) {
            return Err(ctx.unsupported(format!("negative pads {pads:?}")));
        }
        let mut before = vec![0; r];
        let mut after = vec![0; r];
        let mut out = xs.clone();
        for (i, &a) in axes.iter().enumerate() {
            before[a] = pads[i] as usize;
            after[a] = pads[i + axes.len()] as usize;
            out[a] += before[a] + after[a];
        }
        let id = self.push(&ctx.name, Op::Pad(Pad { before, after }), vec![x], out);
        self.output(ctx, Value::Act(id));
        Ok(())
    }

    fn reshape_to(&mut self, ctx: &Ctx, v: Value, out: Vec<usize>) -> Result<()> {
        match v {
            Value::Act(x) => {
                if numel(&out) != numel(self.shape(x)) {
                    return Err(
                        ctx.shape_err(format!("cannot reshape {:?} to {out:?}", self.shape(x)))
                    );
                }
                // Any leading dimension: attention reshapes tokens × heads into the leading axes
                // (batch 1 stays implicit; the image ops check their own NCHW inputs).
                let id = self.push(&ctx.name, Op::Reshape, vec![x], out);
                self.output(ctx, Value::Act(id));
            }
            Value::Const(c) => {
                if numel(&out) != numel(c.shape()) {
                    return Err(ctx.shape_err(format!("cannot reshape {:?} to {out:?}", c.shape())));
                }
                self.output(ctx, Value::Const(c.with_shape(out)));
            }
        }
        Ok(())
    }

    fn flatten(&mut self, ctx: &Ctx) -> Result<()> {
        let v = self.required(ctx, 0)?;
        let s = match &v {
            Value::Act(id) => self.shape(*id).to_vec(),
            Value::Const(c) => c.shape().to_vec(),
        };
        let axis = norm_axis_incl(ctx.int("axis", 1), s.len())
            .ok_or_else(|| ctx.shape_err("axis out of range"))?;
        let out = vec![numel(&s[..axis]), numel(&s[axis..])];
        self.reshape_to(ctx, v, out)
    }

    fn reshape(&mut self, ctx: &Ctx) -> Result<()> {
        let v = self.required(ctx, 0)?;
        let s = match &v {
            Value::Act(id) => self.shape(*id).to_vec(),
            Value::Const(c) => c.shape().to_vec(),
        };
        let out = match ctx.op {
            "Reshape" => {
                let spec = self.required_constant(ctx, 1)?.to_i64();
                if ctx.int("allowzero", 0) != 0 && spec.contains(&0) {
                    return Err(ctx.unsupported("allowzero = 1 with zero dimensions"));
                }
                let mut out = Vec::with_capacity(spec.len());
                let mut infer = None;
                for (i, &d) in spec.iter().enumerate() {
                    match d {
                        0 => out.push(
                            *s.get(i)
                                .ok_or_else(|| ctx.shape_err("0 beyond input rank"))?,
                        ),
                        -1 if infer.is_none() => {
                            infer = Some(i);
                            out.push(1);
                        }
                        d if d > 0 && d as u64 <= MAX_DIM as u64 => out.push(d as usize),
                        _ => return Err(ctx.shape_err(format!("invalid shape {spec:?}"))),
                    }
                }
                if let Some(i) = infer {
                    let known = checked_numel(&out).unwrap_or(0);
                    if known == 0 || numel(&s) % known != 0 {
                        return Err(ctx.shape_err(format!("cannot reshape {s:?} to {spec:?}")));
                    }
                    out[i] = numel(&s) / known;
                }
                out
            }
            "Squeeze" => {
                let axes: Vec<usize> = match self.constant(ctx, 1)? {
                    Some(a) => a
                        .to_i64()
                        .iter()
                        .filter_map(|&v| norm_axis(v, s.len()))
                        .collect(),
                    None => (0..s.len()).filter(|&i| s[i] == 1).collect(),
                };
                if axes.iter().any(|&a| s[a] != 1) {
                    return Err(
                        ctx.shape_err(format!("squeeze of non-unit axes {axes:?} of {s:?}"))
                    );
                }
                (0..s.len())
                    .filter(|i| !axes.contains(i))
                    .map(|i| s[i])
                    .collect()
            }
            _ => {
                // Unsqueeze: axes index the output.
                let axes = self.required_constant(ctx, 1)?.to_i64();
                let r = s.len() + axes.len();
                let axes: Vec<usize> = axes
                    .iter()
                    .map(|&v| {
                        norm_axis(v, r)
                            .ok_or_else(|| ctx.shape_err(format!("axis {v} out of range")))
                    })
                    .collect::<Result<_>>()?;
                let mut it = s.iter();
                (0..r)
                    .map(|i| {
                        if axes.contains(&i) {
                            1
                        } else {
                            *it.next().unwrap_or(&1)
                        }
                    })
                    .collect()
            }
        };
        self.reshape_to(ctx, v, out)
    }

    fn linear_node(
        &mut self,
        ctx: &Ctx,
        x: NodeId,
        weight: Vec<f32>,
        out_f: usize,
        bias: Vec<f32>,
    ) -> Result<()> {
        let xs = self.shape(x).to_vec();
        let in_f = *xs.last().unwrap_or(&0);
        if xs.len() < 2 || weight.len() != in_f * out_f {
            return Err(ctx.shape_err(format!(
                "input {xs:?} vs weight with {} values for {out_f} outputs",
                weight.len()
            )));
        }
        let rows = numel(&xs) / in_f;
        let mut out = xs.clone();
        *out.last_mut().expect("rank >= 2") = out_f;
        let l = Linear {
            in_features: in_f,
            out_features: out_f,
            rows,
            weight,
            bias,
        };
        let id = self.push(&ctx.name, Op::Linear(l), vec![x], out);
        self.output(ctx, Value::Act(id));
        Ok(())
    }

    fn gemm(&mut self, ctx: &Ctx) -> Result<()> {
        let x = self.act(ctx, 0)?;
        let w = self.required_constant(ctx, 1)?.to_f32();
        let c = self.constant(ctx, 2)?.map(|c| c.to_f32());
        if ctx.float("alpha", 1.0) != 1.0
            || ctx.float("beta", 1.0) != 1.0
            || ctx.int("transA", 0) != 0
        {
            return Err(ctx.unsupported("alpha != 1, beta != 1 or transA = 1"));
        }
        if self.shape(x).len() != 2 || w.shape.len() != 2 {
            return Err(ctx.shape_err(format!(
                "A {:?}, B {:?} must be matrices",
                self.shape(x),
                w.shape
            )));
        }
        let (weight, out_f) = if ctx.int("transB", 0) != 0 {
            (w.data.clone(), w.shape[0])
        } else {
            (transpose2(&w.data, w.shape[0], w.shape[1]), w.shape[1])
        };
        let bias = match c {
            None => vec![0.0; out_f],
            Some(c) if c.data.len() == out_f => c.data,
            Some(c) if c.data.len() == 1 => vec![c.data[0]; out_f],
            Some(c) => return Err(ctx.shape_err(format!("C {:?} for {out_f} outputs", c.shape))),
        };
        self.linear_node(ctx, x, weight, out_f, bias)
    }

    fn matmul(&mut self, ctx: &Ctx) -> Result<()> {
        let a = self.required(ctx, 0)?;
        let b = self.required(ctx, 1)?;
        match (a, b) {
            (Value::Act(x), Value::Const(w)) => {
                let w = w.to_f32();
                if w.shape.len() != 2 {
                    return Err(ctx
                        .unsupported(format!("constant right operand of rank {}", w.shape.len())));
                }
                let out_f = w.shape[1];
                let weight = transpose2(&w.data, w.shape[0], w.shape[1]);
                self.linear_node(ctx, x, weight, out_f, vec![0.0; out_f])
            }
            (Value::Act(x), Value::Act(y)) => {
                let (xs, ys) = (self.shape(x).to_vec(), self.shape(y).to_vec());
                let r = xs.len();
                if r < 2 || ys.len() != r || xs[..r - 2] != ys[..r - 2] || xs[r - 1] != ys[r - 2] {
                    return Err(ctx.shape_err(format!("cannot multiply {xs:?} by {ys:?}")));
                }
                let mut out = xs.clone();
                out[r - 1] = ys[r - 1];
                let id = self.push(&ctx.name, Op::MatMul, vec![x, y], out);
                self.output(ctx, Value::Act(id));
                Ok(())
            }
            _ => Err(ctx.unsupported("MatMul with a constant left operand")),
        }
    }

    fn concat(&mut self, ctx: &Ctx) -> Result<()> {
        let vals: Vec<Value> = (0..ctx.node.input.len())
            .map(|i| self.required(ctx, i))
            .collect::<Result<_>>()?;
        let shapes: Vec<Vec<usize>> = vals
            .iter()
            .map(|v| match v {
                Value::Act(id) => self.shape(*id).to_vec(),
                Value::Const(c) => c.shape().to_vec(),
            })
            .collect();
        if shapes.is_empty() {
            return Err(ctx.shape_err("no inputs"));
        }
        let r = shapes[0].len();
        let axis =
            norm_axis(ctx.int("axis", 0), r).ok_or_else(|| ctx.shape_err("axis out of range"))?;
        let mut out = shapes[0].clone();
        out[axis] = 0;
        for s in &shapes {
            if s.len() != r || (0..r).any(|a| a != axis && s[a] != shapes[0][a]) {
                return Err(ctx.shape_err(format!("cannot concatenate {shapes:?} on axis {axis}")));
            }
            out[axis] += s[axis];
        }
        if vals.iter().all(|v| matches!(v, Value::Const(_))) {
            // Constant shape arithmetic (e.g. the target shape of a Reshape).
            if r != 1 {
                return Err(ctx.unsupported("concatenation of constants of rank > 1"));
            }
            let mut data = Vec::new();
            let mut any_f32 = false;
            for v in &vals {
                if let Value::Const(c) = v {
                    any_f32 |= matches!(c, Const::F32(_));
                    data.extend(c.to_i64());
                }
            }
            if any_f32 {
                let f: Vec<f32> = vals
                    .iter()
                    .flat_map(|v| match v {
                        Value::Const(c) => c.to_f32().data,
                        Value::Act(_) => vec![],
                    })
                    .collect();
                self.output(ctx, Value::Const(Const::F32(Tensor::new(out, f))));
            } else {
                self.output(ctx, Value::Const(Const::I64(Tensor::new(out, data))));
            }
            return Ok(());
        }
        let mut ids = Vec::with_capacity(vals.len());
        for (i, v) in vals.iter().enumerate() {
            ids.push(match v {
                Value::Act(id) => *id,
                Value::Const(c) => self.const_node(&format!("{}/const{i}", ctx.name), c),
            });
        }
        let id = self.push(&ctx.name, Op::Concat { axis }, ids, out);
        self.output(ctx, Value::Act(id));
        Ok(())
    }

    fn transpose(&mut self, ctx: &Ctx) -> Result<()> {
        let v = self.required(ctx, 0)?;
        let xs = match &v {
            Value::Act(id) => self.shape(*id).to_vec(),
            Value::Const(c) => c.shape().to_vec(),
        };
        let r = xs.len();
        let perm: Vec<usize> = match ctx.ints("perm") {
            Some(p) => p
                .iter()
                .map(|&v| norm_axis(v, r).unwrap_or(usize::MAX))
                .collect(),
            None => (0..r).rev().collect(),
        };
        let mut seen = vec![false; r];
        for &p in &perm {
            if p >= r || seen[p] {
                return Err(ctx.shape_err(format!("invalid permutation {perm:?} for rank {r}")));
            }
            seen[p] = true;
        }
        let out: Vec<usize> = perm.iter().map(|&p| xs[p]).collect();
        let x = match v {
            Value::Const(c) => {
                // Fold: output index i reads input index Σ_a i_a · stride_in[perm[a]].
                let ist = crate::ir::strides(&xs);
                let n = numel(&out);
                let mut idx = vec![0usize; r];
                let mut pos = Vec::with_capacity(n);
                for _ in 0..n {
                    pos.push((0..r).map(|a| idx[a] * ist[perm[a]]).sum::<usize>());
                    for a in (0..r).rev() {
                        idx[a] += 1;
                        if idx[a] < out[a] {
                            break;
                        }
                        idx[a] = 0;
                    }
                }
                let folded = match c {
                    Const::F32(t) => {
                        Const::F32(Tensor::new(out, pos.iter().map(|&p| t.data[p]).collect()))
                    }
                    Const::I64(t) => {
                        Const::I64(Tensor::new(out, pos.iter().map(|&p| t.data[p]).collect()))
                    }
                };
                self.output(ctx, Value::Const(folded));
                return Ok(());
            }
            Value::Act(x) => x,
        };
        // A permutation that only moves axes of size 1 keeps the data order: a reshape (e.g.
        // nn.MultiheadAttention's batch-first ↔ sequence-first swap at batch 1).
        let moved: Vec<usize> = perm.iter().copied().filter(|&p| xs[p] != 1).collect();
        if moved.windows(2).all(|w| w[0] < w[1]) {
            let id = self.push(&ctx.name, Op::Reshape, vec![x], out);
            self.output(ctx, Value::Act(id));
            return Ok(());
        }
        let id = self.push(&ctx.name, Op::Transpose { perm }, vec![x], out);
        self.output(ctx, Value::Act(id));
        Ok(())
    }

    fn layernorm(&mut self, ctx: &Ctx) -> Result<()> {
        let x = self.act(ctx, 0)?;
        let xs = self.shape(x).to_vec();
        let axis = norm_axis(ctx.int("axis", -1), xs.len())
            .ok_or_else(|| ctx.shape_err("axis out of range"))?;
        if axis + 1 != xs.len() {
            return Err(ctx.unsupported(format!(
                "normalization from axis {axis}; only the last axis"
            )));
        }
        let d = xs[axis];
        let gamma = self.required_constant(ctx, 1)?.to_f32().data;
        let beta = match self.constant(ctx, 2)? {
            Some(b) => b.to_f32().data,
            None => vec![0.0; d],
        };
        if gamma.len() != d || beta.len() != d {
            return Err(ctx.shape_err(format!(
                "scale/bias of length {}/{} for {d} features",
                gamma.len(),
                beta.len()
            )));
        }
        let ln = LayerNorm {
            epsilon: ctx.float("epsilon", 1e-5),
            gamma,
            beta,
        };
        let id = self.push(&ctx.name, Op::LayerNorm(ln), vec![x], xs);
        self.output(ctx, Value::Act(id));
        Ok(())
    }
}

/// A convolution whose kernel tiles its input (kernel = stride > 1 pixel, no padding, one
/// group: a ViT's patch embedding) is a matrix product of the image's patches: the patches are a
/// permutation of the input, so the rewrite Reshape → Transpose → Reshape → Linear → Transpose →
/// Reshape computes the same sums (the same fixed-point values: every output is Σ w·x + b at
/// 2^{2s}, then the rescale) with the data movement local on shares, and the linear layer runs as
/// a row-wise product (one HE matrix product, no rotations) instead of a strided convolution.
/// The last node keeps the convolution's name and shape.
fn patch_linears(nodes: Vec<Node>, out: NodeId) -> (Vec<Node>, NodeId) {
    let tiles = |c: &crate::ir::Conv2d| {
        let [ch, h, w] = c.in_shape;
        let [kh, kw] = c.kernel;
        c.groups == 1
            && c.kernel == c.stride
            && kh * kw > 1
            && c.pads == [0; 4]
            && h % kh == 0
            && w % kw == 0
            && c.out_shape[1..] == [h / kh, w / kw]
            && c.weight.len() == c.out_shape[0] * ch * kh * kw
    };
    if !nodes
        .iter()
        .any(|n| matches!(&n.op, Op::Conv(c) if tiles(c)))
    {
        return (nodes, out);
    }
    let mut remap = vec![usize::MAX; nodes.len()];
    let mut kept: Vec<Node> = Vec::with_capacity(nodes.len() + 8);
    for (i, node) in nodes.into_iter().enumerate() {
        let inputs: Vec<NodeId> = node.inputs.iter().map(|&j| remap[j]).collect();
        match node.op {
            Op::Conv(c) if tiles(&c) => {
                let [ch, h, w] = c.in_shape;
                let [kh, kw] = c.kernel;
                let (oh, ow, o) = (h / kh, w / kw, c.out_shape[0]);
                let mut push = |suffix: &str, op: Op, input: NodeId, shape: Vec<usize>| {
                    kept.push(Node {
                        name: format!("{}{suffix}", node.name),
                        op,
                        inputs: vec![input],
                        shape,
                    });
                    kept.len() - 1
                };
                let a = push(
                    "/tiles",
                    Op::Reshape,
                    inputs[0],
                    vec![1, ch, oh, kh, ow, kw],
                );
                let perm = vec![0, 2, 4, 1, 3, 5];
                let b = push(
                    "/patches",
                    Op::Transpose { perm },
                    a,
                    vec![1, oh, ow, ch, kh, kw],
                );
                let r = push("/rows", Op::Reshape, b, vec![1, oh * ow, ch * kh * kw]);
                let lin = Op::Linear(crate::ir::Linear {
                    in_features: ch * kh * kw,
                    out_features: o,
                    rows: oh * ow,
                    weight: c.weight,
                    bias: c.bias,
                });
                let l = push("/linear", lin, r, vec![1, oh * ow, o]);
                let t = push(
                    "/channels",
                    Op::Transpose {
                        perm: vec![0, 2, 1],
                    },
                    l,
                    vec![1, o, oh * ow],
                );
                push("", Op::Reshape, t, node.shape.clone());
            }
            op => kept.push(Node {
                name: node.name,
                op,
                inputs,
                shape: node.shape,
            }),
        }
        remap[i] = kept.len() - 1;
    }
    (kept, remap[out])
}

/// Consumers of every node.
/// Token × weight products (Linear with rows > 1) that read the same node — a transformer's q,
/// k, v projections — merged into one with their outputs side by side, each replaced by a Slice
/// (of the same name) of its part of the last axis: the same values (every output is its own
/// row · weight product), one private linear step instead of several, so one round trip and one
/// rescale. Returns the nodes and the new output index.
fn merge_sibling_linears(nodes: Vec<Node>, out: NodeId) -> (Vec<Node>, NodeId) {
    let cons = consumers(&nodes);
    // First sibling → (all siblings, in order); other siblings → first.
    let mut group: Vec<Option<Vec<NodeId>>> = vec![None; nodes.len()];
    let mut merged_into = vec![None; nodes.len()];
    for c in &cons {
        let lin: Vec<NodeId> = c
            .iter()
            .copied()
            .filter(|&i| matches!(&nodes[i].op, Op::Linear(l) if l.rows > 1))
            .collect();
        if lin.len() < 2 {
            continue;
        }
        for &i in &lin[1..] {
            merged_into[i] = Some(lin[0]);
        }
        let first = lin[0];
        group[first] = Some(lin);
    }
    let mut remap = vec![usize::MAX; nodes.len()];
    let mut merged_at = vec![usize::MAX; nodes.len()];
    let mut offset = vec![0usize; nodes.len()];
    let mut kept: Vec<Node> = Vec::with_capacity(nodes.len() + 4);
    for (i, node) in nodes.iter().enumerate() {
        let slice_of = |at: NodeId, start: usize, shape: &[usize], name: &str| Node {
            name: name.to_string(),
            op: Op::Slice(crate::ir::Slice {
                starts: (0..shape.len())
                    .map(|a| if a + 1 == shape.len() { start } else { 0 })
                    .collect(),
                steps: vec![1; shape.len()],
            }),
            inputs: vec![at],
            shape: shape.to_vec(),
        };
        if let Some(g) = &group[i] {
            let parts: Vec<&crate::ir::Linear> = g
                .iter()
                .map(|&j| match &nodes[j].op {
                    Op::Linear(l) => l,
                    _ => unreachable!("grouped nodes are Linear"),
                })
                .collect();
            let mut start = 0;
            for (&j, l) in g.iter().zip(&parts) {
                offset[j] = start;
                start += l.out_features;
            }
            let merged = crate::ir::Linear {
                in_features: parts[0].in_features,
                out_features: start,
                rows: parts[0].rows,
                weight: parts
                    .iter()
                    .flat_map(|l| l.weight.iter().copied())
                    .collect(),
                bias: parts.iter().flat_map(|l| l.bias.iter().copied()).collect(),
            };
            let mut shape = node.shape.clone();
            if let Some(last) = shape.last_mut() {
                *last = start;
            }
            let names: Vec<&str> = g.iter().map(|&j| nodes[j].name.as_str()).collect();
            kept.push(Node {
                name: names.join("+"),
                op: Op::Linear(merged),
                inputs: vec![remap[node.inputs[0]]],
                shape,
            });
            merged_at[i] = kept.len() - 1;
            kept.push(slice_of(merged_at[i], 0, &node.shape, &node.name));
        } else if let Some(first) = merged_into[i] {
            kept.push(slice_of(
                merged_at[first],
                offset[i],
                &node.shape,
                &node.name,
            ));
        } else {
            let mut n = node.clone();
            n.inputs = n.inputs.iter().map(|&j| remap[j]).collect();
            kept.push(n);
        }
        remap[i] = kept.len() - 1;
    }
    (kept, remap[out])
}

fn consumers(nodes: &[Node]) -> Vec<Vec<NodeId>> {
    let mut c = vec![Vec::new(); nodes.len()];
    for (i, n) in nodes.iter().enumerate() {
        for &j in &n.inputs {
            c[j].push(i);
        }
    }
    c
}

/// The Linear layers that read node `id` through ops that keep each row's last axis intact
/// (Reshape with the same last dimension, Slice that leaves the last axis whole), if every
/// path from `id` ends in one; None otherwise.
fn row_linear_readers(nodes: &[Node], cons: &[Vec<NodeId>], id: NodeId) -> Option<Vec<NodeId>> {
    let d = *nodes[id].shape.last()?;
    let mut out = Vec::new();
    let mut stack = vec![id];
    while let Some(v) = stack.pop() {
        if cons[v].is_empty() {
            return None;
        }
        for &c in &cons[v] {
            match &nodes[c].op {
                Op::Linear(l) if l.in_features == d => out.push(c),
                _ if keeps_rows(&nodes[c], d) => stack.push(c),
                _ => return None,
            }
        }
    }
    Some(out)
}

/// Whether `node` selects or regroups whole rows of width `d`: a Reshape or a Slice that keeps
/// its last axis of `d` values whole.
fn keeps_rows(node: &Node, d: usize) -> bool {
    node.shape.last() == Some(&d)
        && match &node.op {
            Op::Reshape => true,
            Op::Slice(s) => {
                let a = s.starts.len() - 1;
                s.starts[a] == 0 && s.steps[a] == 1
            }
            _ => false,
        }
}

/// A LayerNorm whose only reader selects or regroups whole rows (a Slice that keeps the last
/// axis, as a class-token head's; a Reshape that keeps it) moves after that reader: the
/// normalization is per row, so LN(x)[rows] = LN(x[rows]) exactly, in float and fixed point.
/// The LayerNorm then runs on the selected rows only and can reach the linear layer behind them
/// (`Model::norm_before`). The two nodes swap places, so the order stays topological.
fn sink_layernorms(nodes: &mut [Node]) {
    loop {
        let cons = consumers(nodes);
        let swap = (0..nodes.len()).find_map(|id| {
            let Op::LayerNorm(_) = &nodes[id].op else {
                return None;
            };
            let d = *nodes[id].shape.last()?;
            let [c] = cons[id][..] else {
                return None;
            };
            (nodes[c].inputs == [id] && keeps_rows(&nodes[c], d)).then_some((id, c))
        });
        let Some((n, c)) = swap else {
            return;
        };
        // Node n becomes the row op on the LayerNorm's input, node c the LayerNorm on it.
        let x = nodes[n].inputs.clone();
        let (ln_name, ln_op) = (nodes[n].name.clone(), nodes[n].op.clone());
        nodes[n].name = nodes[c].name.clone();
        nodes[n].op = nodes[c].op.clone();
        nodes[n].shape = nodes[c].shape.clone();
        nodes[n].inputs = x;
        nodes[c].name = ln_name;
        nodes[c].op = ln_op;
        nodes[c].inputs = vec![n];
    }
}

/// LayerNorm's γ, β folded into the Linear layers that read it (W·(γ⊙n + β) + b =
/// (W·diag γ)·n + (W·β + b)), so that the normalization alone remains: the 2PC engine runs
/// it on shares and the affine part costs nothing. Left as is where a reader is not linear.
fn fold_layernorm_affines(nodes: &mut [Node]) {
    let cons = consumers(nodes);
    for id in 0..nodes.len() {
        let (gamma, beta) = match &nodes[id].op {
            Op::LayerNorm(l) if !l.is_identity() => (l.gamma.clone(), l.beta.clone()),
            _ => continue,
        };
        let Some(readers) = row_linear_readers(nodes, &cons, id) else {
            continue;
        };
        for r in readers {
            if let Op::Linear(l) = &mut nodes[r].op {
                let k = l.in_features;
                for o in 0..l.out_features {
                    let row = &mut l.weight[o * k..(o + 1) * k];
                    let shift: f32 = row.iter().zip(&beta).map(|(w, b)| w * b).sum();
                    row.iter_mut().zip(&gamma).for_each(|(w, g)| *w *= g);
                    l.bias[o] += shift;
                }
            }
        }
        if let Op::LayerNorm(l) = &mut nodes[id].op {
            l.gamma.iter_mut().for_each(|g| *g = 1.0);
            l.beta.iter_mut().for_each(|b| *b = 0.0);
        }
    }
}

/// A scalar constant multiplying an attention product (Q·Kᵀ · 1/√d) folded into the Linear
/// that produces one operand (through Reshape / Transpose only, each read once): the product
/// then needs no multiplication by a server constant. The Mul becomes a Reshape.
fn fold_attention_scales(nodes: &mut [Node]) {
    let cons = consumers(nodes);
    for id in 0..nodes.len() {
        if !matches!(nodes[id].op, Op::Mul) || nodes[id].inputs.len() != 2 {
            continue;
        }
        let (a, b) = (nodes[id].inputs[0], nodes[id].inputs[1]);
        let scalar = |k: NodeId| match &nodes[k].op {
            Op::Constant(t) if t.data.len() == 1 => Some(t.data[0]),
            _ => None,
        };
        let (prod, c) = match (scalar(a), scalar(b)) {
            (None, Some(c)) => (a, c),
            (Some(c), None) => (b, c),
            _ => continue,
        };
        // After the product (Q·Kᵀ·c): fold into either operand's projection; before it
        // ((c·Q)·Kᵀ, nn.MultiheadAttention's scaled query): into the operand's own projection.
        let (starts, keep): (Vec<NodeId>, NodeId) = if matches!(nodes[prod].op, Op::MatMul) {
            if cons[prod].len() != 1 {
                continue;
            }
            (nodes[prod].inputs.clone(), prod)
        } else {
            if cons[id].len() != 1 || !matches!(nodes[cons[id][0]].op, Op::MatMul) {
                continue;
            }
            (vec![prod], prod)
        };
        let Some((lin, lo, hi)) = starts
            .iter()
            .find_map(|&s| scaled_projection(nodes, &cons, s))
        else {
            continue;
        };
        if let Op::Linear(l) = &mut nodes[lin].op {
            let k = l.in_features;
            l.weight[lo * k..hi * k].iter_mut().for_each(|w| *w *= c);
            l.bias[lo..hi].iter_mut().for_each(|w| *w *= c);
        }
        nodes[id].op = Op::Reshape;
        nodes[id].inputs = vec![keep];
    }
}

/// The Linear whose outputs `v` is (through single-reader Reshape / Transpose, and at most one
/// Slice of whole rows taking features [lo, hi) of a Linear whose other readers take disjoint
/// feature ranges), with that range: scaling those outputs scales `v` and nothing else.
fn scaled_projection(
    nodes: &[Node],
    cons: &[Vec<NodeId>],
    mut v: NodeId,
) -> Option<(NodeId, usize, usize)> {
    // Feature range of a whole-row slice of `src`'s last axis.
    let range = |s: NodeId| -> Option<(usize, usize)> {
        let Op::Slice(sl) = &nodes[s].op else {
            return None;
        };
        let src = &nodes[nodes[s].inputs[0]].shape;
        let out = &nodes[s].shape;
        let a = src.len() - 1;
        let whole = (0..a).all(|i| sl.starts[i] == 0 && sl.steps[i] == 1 && out[i] == src[i]);
        (whole && sl.steps[a] == 1).then(|| (sl.starts[a], sl.starts[a] + out[a]))
    };
    loop {
        if cons[v].len() != 1 {
            return None;
        }
        match &nodes[v].op {
            Op::Linear(l) => return Some((v, 0, l.out_features)),
            Op::Reshape | Op::Transpose { .. } => v = nodes[v].inputs[0],
            Op::Slice(_) => {
                let (lo, hi) = range(v)?;
                let p = nodes[v].inputs[0];
                if !matches!(nodes[p].op, Op::Linear(_)) {
                    return None;
                }
                let disjoint = cons[p]
                    .iter()
                    .all(|&o| o == v || range(o).is_some_and(|(a, b)| b <= lo || a >= hi));
                return disjoint.then_some((p, lo, hi));
            }
            _ => return None,
        }
    }
}

fn transpose2(d: &[f32], r: usize, c: usize) -> Vec<f32> {
    let mut t = vec![0.0; d.len()];
    for i in 0..r {
        for j in 0..c {
            t[j * r + i] = d[i * c + j];
        }
    }
    t
}

/// Normalizes an axis in `[-r, r)`.
fn norm_axis(a: i64, r: usize) -> Option<usize> {
    let r = r as i64;
    let a = if a < 0 { a + r } else { a };
    (0..r).contains(&a).then_some(a as usize)
}

/// Normalizes an axis in `[-r, r]` (Flatten).
fn norm_axis_incl(a: i64, r: usize) -> Option<usize> {
    let r = r as i64;
    let a = if a < 0 { a + r } else { a };
    (0..=r).contains(&a).then_some(a as usize)
}

fn fold_binary(ctx: &Ctx, op: &str, a: &Const, b: &Const) -> Result<Const> {
    let out = broadcast_shapes(a.shape(), b.shape())
        .filter(|s| checked_numel(s).is_some())
        .ok_or_else(|| {
            ctx.shape_err(format!(
                "cannot broadcast {:?} and {:?}",
                a.shape(),
                b.shape()
            ))
        })?;
    let ma = broadcast_index_map(a.shape(), &out);
    let mb = broadcast_index_map(b.shape(), &out);
    if let (Const::I64(x), Const::I64(y)) = (a, b) {
        let f = |p: i64, q: i64| -> Option<i64> {
            match op {
                "Add" => p.checked_add(q),
                "Sub" => p.checked_sub(q),
                "Mul" => p.checked_mul(q),
                _ => p.checked_div(q),
            }
        };
        let data = ma
            .iter()
            .zip(&mb)
            .map(|(&i, &j)| f(x.data[i], y.data[j]))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| {
                ctx.unsupported("integer overflow or division by zero in constant folding")
            })?;
        return Ok(Const::I64(Tensor::new(out, data)));
    }
    let (x, y) = (a.to_f32(), b.to_f32());
    let data = ma
        .iter()
        .zip(&mb)
        .map(|(&i, &j)| {
            let (p, q) = (x.data[i], y.data[j]);
            match op {
                "Add" => p + q,
                "Sub" => p - q,
                "Mul" => p * q,
                _ => p / q,
            }
        })
        .collect();
    Ok(Const::F32(Tensor::new(out, data)))
}

/// Equal (as 0/1 integers), Where and Expand on constants, with numpy broadcasting.
fn fold_select(ctx: &Ctx, cs: &[Const]) -> Result<Const> {
    let op = ctx.node.op_type.as_deref().unwrap_or_default();
    let arity = if op == "Where" { 3 } else { 2 };
    if cs.len() != arity {
        return Err(ctx.shape_err(format!("{op} needs {arity} inputs")));
    }
    let shapes: Vec<Vec<usize>> = if op == "Expand" {
        let target: Vec<usize> = cs[1]
            .to_i64()
            .iter()
            .map(|&d| usize::try_from(d).map_err(|_| ctx.shape_err(format!("dimension {d}"))))
            .collect::<Result<_>>()?;
        vec![cs[0].shape().to_vec(), target]
    } else {
        cs.iter().map(|c| c.shape().to_vec()).collect()
    };
    let out = shapes
        .iter()
        .skip(1)
        .try_fold(shapes[0].clone(), |acc, s| broadcast_shapes(&acc, s))
        .filter(|s| checked_numel(s).is_some())
        .ok_or_else(|| ctx.shape_err(format!("cannot broadcast {shapes:?}")))?;
    let maps: Vec<Vec<usize>> = shapes
        .iter()
        .map(|s| broadcast_index_map(s, &out))
        .collect();
    let n = numel(&out);
    Ok(match op {
        "Equal" => {
            let (a, b) = (cs[0].to_f32(), cs[1].to_f32());
            let v = (0..n)
                .map(|i| (a.data[maps[0][i]] == b.data[maps[1][i]]) as i64)
                .collect();
            Const::I64(Tensor::new(out, v))
        }
        "Where" => {
            let cond = cs[0].to_i64();
            // Element i of the result: x or y at their broadcast positions.
            fn select<T: Copy>(
                n: usize,
                c: &dyn Fn(usize) -> bool,
                x: &[T],
                y: &[T],
                mx: &[usize],
                my: &[usize],
            ) -> Vec<T> {
                (0..n)
                    .map(|i| if c(i) { x[mx[i]] } else { y[my[i]] })
                    .collect()
            }
            let pick = |i: usize| cond[maps[0][i]] != 0;
            match (&cs[1], &cs[2]) {
                (Const::I64(x), Const::I64(y)) => Const::I64(Tensor::new(
                    out,
                    select(n, &pick, &x.data, &y.data, &maps[1], &maps[2]),
                )),
                (x, y) => {
                    let (x, y) = (x.to_f32(), y.to_f32());
                    Const::F32(Tensor::new(
                        out,
                        select(n, &pick, &x.data, &y.data, &maps[1], &maps[2]),
                    ))
                }
            }
        }
        _ => match &cs[0] {
            Const::I64(x) => Const::I64(Tensor::new(
                out,
                maps[0].iter().map(|&i| x.data[i]).collect(),
            )),
            Const::F32(x) => Const::F32(Tensor::new(
                out,
                maps[0].iter().map(|&i| x.data[i]).collect(),
            )),
        },
    })
}

fn fold_slice(c: &Const, starts: &[i64], steps: &[i64], out: &[usize]) -> Const {
    let in_st = crate::ir::strides(c.shape());
    let n = numel(out);
    let r = out.len();
    let mut idx = vec![0usize; r];
    let mut pos = Vec::with_capacity(n);
    for _ in 0..n {
        pos.push(
            (0..r)
                .map(|a| (starts[a] + idx[a] as i64 * steps[a]) as usize * in_st[a])
                .sum::<usize>(),
        );
        for a in (0..r).rev() {
            idx[a] += 1;
            if idx[a] < out[a] {
                break;
            }
            idx[a] = 0;
        }
    }
    match c {
        Const::F32(t) => Const::F32(Tensor::new(
            out.to_vec(),
            pos.iter().map(|&p| t.data[p]).collect(),
        )),
        Const::I64(t) => Const::I64(Tensor::new(
            out.to_vec(),
            pos.iter().map(|&p| t.data[p]).collect(),
        )),
    }
}

/// PyTorch (opset < 20) exports exact GELU as `Mul(Mul(x, Add(Erf(Div(x, √2)), 1)), 0.5)`.
/// This pass replaces each such chain, when its intermediate values have no other consumer,
/// by one ONNX-level `Gelu` node (the opset-20 op) named after the Erf node.
fn fuse_gelu(graph: &pb::GraphProto) -> Vec<pb::NodeProto> {
    let nodes = &graph.node;
    let mut consumers: HashMap<&str, Vec<usize>> = HashMap::new();
    let mut producer: HashMap<&str, usize> = HashMap::new();
    for (k, n) in nodes.iter().enumerate() {
        for i in &n.input {
            consumers.entry(i.as_str()).or_default().push(k);
        }
        for o in &n.output {
            producer.insert(o.as_str(), k);
        }
    }
    for o in &graph.output {
        if let Some(name) = o.name.as_deref() {
            consumers.entry(name).or_default().push(usize::MAX);
        }
    }
    let scalar = |name: &str| -> Option<f32> {
        if let Some(t) = graph
            .initializer
            .iter()
            .find(|t| t.name.as_deref() == Some(name))
        {
            return tensor_from_proto(t)
                .ok()
                .filter(|c| numel(c.shape()) == 1)
                .map(|c| c.to_f32().data[0]);
        }
        let k = *producer.get(name)?;
        let n = &nodes[k];
        if n.op_type.as_deref() != Some("Constant") {
            return None;
        }
        let t = n
            .attribute
            .iter()
            .find(|a| a.name.as_deref() == Some("value"))?
            .t
            .as_ref()?;
        tensor_from_proto(t)
            .ok()
            .filter(|c| numel(c.shape()) == 1)
            .map(|c| c.to_f32().data[0])
    };
    let op = |k: usize| nodes[k].op_type.as_deref().unwrap_or("");
    let only_consumer = |name: &str| -> Option<usize> {
        match consumers.get(name).map(|v| v.as_slice()) {
            Some([k]) if *k != usize::MAX => Some(*k),
            _ => None,
        }
    };
    // The other operand of a binary node, given one of its inputs.
    let other = |k: usize, this: &str| -> Option<String> {
        let n = &nodes[k];
        match n.input.as_slice() {
            [a, b] if a == this => Some(b.clone()),
            [a, b] if b == this => Some(a.clone()),
            _ => None,
        }
    };
    let mut remove = vec![false; nodes.len()];
    let mut replace: HashMap<usize, pb::NodeProto> = HashMap::new();
    for (e, n) in nodes.iter().enumerate() {
        if op(e) != "Erf" || n.input.len() != 1 || n.output.len() != 1 {
            continue;
        }
        let matched = (|| -> Option<(usize, usize, usize, usize, String)> {
            let d = *producer.get(n.input[0].as_str())?;
            let dn = &nodes[d];
            let x = dn.input.first()?.clone();
            let c = scalar(dn.input.get(1)?)?;
            let ok = (op(d) == "Div" && (c - std::f32::consts::SQRT_2).abs() < 1e-5)
                || (op(d) == "Mul" && (c - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-5);
            if !ok || only_consumer(&n.input[0])? != e {
                return None;
            }
            let a = only_consumer(&n.output[0])?;
            if op(a) != "Add" || scalar(&other(a, &n.output[0])?)? != 1.0 {
                return None;
            }
            let m1 = only_consumer(nodes[a].output.first()?)?;
            if op(m1) != "Mul" || other(m1, &nodes[a].output[0])? != x {
                return None;
            }
            let m2 = only_consumer(nodes[m1].output.first()?)?;
            if op(m2) != "Mul" || scalar(&other(m2, &nodes[m1].output[0])?)? != 0.5 {
                return None;
            }
            Some((d, a, m1, m2, x))
        })();
        if let Some((d, a, m1, m2, x)) = matched {
            for k in [d, e, a, m1] {
                remove[k] = true;
            }
            let gelu = pb::NodeProto {
                input: vec![x],
                output: nodes[m2].output.clone(),
                name: Some(
                    n.name
                        .clone()
                        .filter(|s| !s.is_empty())
                        .unwrap_or_else(|| format!("#{e}")),
                ),
                op_type: Some("Gelu".into()),
                ..Default::default()
            };
            replace.insert(m2, gelu);
        }
    }
    nodes
        .iter()
        .enumerate()
        .filter(|(k, _)| !remove[*k])
        .map(|(k, n)| replace.remove(&k).unwrap_or_else(|| n.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A patch-embedding convolution (kernel = stride, no padding) and its rewrite as a row-wise
    /// linear layer between local permutations compute the same values: in float, against the
    /// direct convolution, and bit for bit in fixed point. Other convolutions are left alone.
    #[test]
    fn patch_convolutions_become_row_linears_with_the_same_values() {
        use crate::ir::{Conv2d, Model};
        let conv = |kernel: [usize; 2], stride: [usize; 2], pads: [usize; 4]| {
            let (c, h, w, o) = (3, 8, 12, 5);
            let oh = (h + pads[0] + pads[2] - kernel[0]) / stride[0] + 1;
            let ow = (w + pads[1] + pads[3] - kernel[1]) / stride[1] + 1;
            let n = o * c * kernel[0] * kernel[1];
            Model {
                name: "patch".into(),
                input_name: "x".into(),
                nodes: vec![
                    Node {
                        name: "x".into(),
                        op: Op::Input,
                        inputs: vec![],
                        shape: vec![1, c, h, w],
                    },
                    Node {
                        name: "conv".into(),
                        op: Op::Conv(Conv2d {
                            in_shape: [c, h, w],
                            out_shape: [o, oh, ow],
                            kernel,
                            stride,
                            pads,
                            groups: 1,
                            weight: (0..n).map(|i| ((i * 7 % 13) as f32 - 6.0) / 9.0).collect(),
                            bias: (0..o).map(|i| i as f32 / 4.0 - 0.5).collect(),
                        }),
                        inputs: vec![0],
                        shape: vec![1, o, oh, ow],
                    },
                ],
                output: 1,
                metadata: vec![],
            }
        };
        let x: Vec<f32> = (0..3 * 8 * 12)
            .map(|i| ((i * 5 % 17) as f32 - 8.0) / 5.0)
            .collect();
        let cfg = crate::fixed::FixedConfig::new(37, 12).unwrap();
        for (kernel, rewritten) in [([4, 4], true), ([2, 3], true), ([1, 1], false)] {
            let m = conv(kernel, kernel, [0; 4]);
            let (nodes, out) = patch_linears(m.nodes.clone(), m.output);
            assert_eq!(nodes.len() > 2, rewritten, "{kernel:?}");
            assert_eq!(nodes[out].shape, m.nodes[1].shape);
            assert_eq!(nodes[out].name, "conv");
            let r = Model {
                nodes,
                output: out,
                ..m.clone()
            };
            let (a, b) = (
                crate::float::run(&m, &x).unwrap(),
                crate::float::run(&r, &x).unwrap(),
            );
            assert_eq!(a.shape, b.shape);
            for (u, v) in a.data.iter().zip(&b.data) {
                assert!((u - v).abs() < 1e-4, "{kernel:?}: {u} vs {v}");
            }
            let (a, b) = (
                crate::fixed::run(&m, &x, cfg).unwrap(),
                crate::fixed::run(&r, &x, cfg).unwrap(),
            );
            assert_eq!(a.data, b.data, "{kernel:?}");
        }
        // Overlapping or padded kernels are convolutions, not patches.
        for m in [
            conv([2, 2], [1, 1], [0; 4]),
            conv([2, 2], [2, 2], [1, 1, 1, 1]),
        ] {
            assert_eq!(patch_linears(m.nodes.clone(), m.output).0.len(), 2);
        }
    }

    fn value_info(
        name: &str,
        dims: &[pb::tensor_shape_proto::dimension::Value],
    ) -> pb::ValueInfoProto {
        pb::ValueInfoProto {
            name: Some(name.into()),
            r#type: Some(pb::TypeProto {
                value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                    elem_type: Some(pb::tensor_proto::DataType::Float as i32),
                    shape: Some(pb::TensorShapeProto {
                        dim: dims
                            .iter()
                            .map(|d| pb::tensor_shape_proto::Dimension {
                                value: Some(d.clone()),
                                ..Default::default()
                            })
                            .collect(),
                    }),
                })),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn node(name: &str, op: &str, inputs: &[&str], output: &str) -> pb::NodeProto {
        pb::NodeProto {
            name: Some(name.into()),
            op_type: Some(op.into()),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.into()],
            ..Default::default()
        }
    }

    /// A one-input model `x -> nodes -> y` with `x` of the given dims.
    fn model(
        dims: &[pb::tensor_shape_proto::dimension::Value],
        nodes: Vec<pb::NodeProto>,
        opset: i64,
    ) -> Vec<u8> {
        let m = pb::ModelProto {
            ir_version: Some(8),
            opset_import: vec![pb::OperatorSetIdProto {
                domain: Some(String::new()),
                version: Some(opset),
            }],
            graph: Some(pb::GraphProto {
                name: Some("t".into()),
                node: nodes,
                input: vec![value_info("x", dims)],
                output: vec![value_info("y", &[])],
                ..Default::default()
            }),
            ..Default::default()
        };
        m.encode_to_vec()
    }

    use pb::tensor_shape_proto::dimension::Value::{DimParam, DimValue};

    #[test]
    fn unsupported_op_names_node_and_op() {
        let bytes = model(
            &[DimValue(1), DimValue(4)],
            vec![
                node("relu0", "Relu", &["x"], "h"),
                node("mystery", "Sin", &["h"], "y"),
            ],
            17,
        );
        let err = from_bytes(&bytes, &Default::default()).unwrap_err();
        assert!(
            matches!(&err, NnError::UnsupportedOp { node, op } if node == "mystery" && op == "Sin"),
            "{err}"
        );
        assert_eq!(err.to_string(), "node mystery (Sin): unsupported op");
    }

    #[test]
    fn unsupported_attribute_names_node_and_reason() {
        let mut clip = node("clip3", "Clip", &["x", "lo", "hi"], "y");
        clip.input = vec!["x".into(), "lo".into(), "hi".into()];
        let konst = |name: &str, v: f32| pb::NodeProto {
            op_type: Some("Constant".into()),
            output: vec![name.into()],
            attribute: vec![pb::AttributeProto {
                name: Some("value".into()),
                t: Some(pb::TensorProto {
                    data_type: Some(pb::tensor_proto::DataType::Float as i32),
                    float_data: vec![v],
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        };
        let bytes = model(
            &[DimValue(1), DimValue(4)],
            vec![konst("lo", -1.0), konst("hi", 1.0), clip],
            17,
        );
        let err = from_bytes(&bytes, &Default::default()).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("node clip3 (Clip): unsupported: Clip(min = Some(-1.0)"),
            "{err}"
        );
    }

    #[test]
    fn dynamic_shapes_and_opsets() {
        let relu = || vec![node("r", "Relu", &["x"], "y")];
        let bytes = model(&[DimParam("batch".into()), DimValue(4)], relu(), 17);
        let err = from_bytes(&bytes, &Default::default()).unwrap_err();
        assert!(
            matches!(&err, NnError::DynamicShape { dim: 0, symbol, .. } if symbol == "batch"),
            "{err}"
        );
        // An explicit input shape resolves the dynamic dimension.
        let m = from_bytes(
            &bytes,
            &ImportOptions {
                input_shape: Some(vec![1, 4]),
            },
        )
        .unwrap();
        assert_eq!(m.output_shape(), &[1, 4]);
        let err = from_bytes(
            &model(&[DimValue(1), DimValue(4)], relu(), 9),
            &Default::default(),
        )
        .unwrap_err();
        assert!(
            matches!(err, NnError::UnsupportedOpset { version: 9, .. }),
            "{err}"
        );
        let err = from_bytes(
            &model(
                &[DimValue(1), DimValue(4)],
                vec![node("r", "Relu", &["nowhere"], "y")],
                17,
            ),
            &Default::default(),
        )
        .unwrap_err();
        assert!(
            matches!(&err, NnError::UndefinedInput { node, input, .. } if node == "r" && input == "nowhere"),
            "{err}"
        );
    }

    #[test]
    fn gelu_pattern_is_fused() {
        let scalar = |name: &str, v: f32| pb::NodeProto {
            op_type: Some("Constant".into()),
            output: vec![name.into()],
            attribute: vec![pb::AttributeProto {
                name: Some("value".into()),
                t: Some(pb::TensorProto {
                    data_type: Some(pb::tensor_proto::DataType::Float as i32),
                    float_data: vec![v],
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        };
        let nodes = vec![
            scalar("sqrt2", std::f32::consts::SQRT_2),
            scalar("one", 1.0),
            scalar("half", 0.5),
            node("div", "Div", &["x", "sqrt2"], "d"),
            node("erf", "Erf", &["d"], "e"),
            node("add", "Add", &["e", "one"], "a"),
            node("mul", "Mul", &["x", "a"], "m"),
            node("mul2", "Mul", &["m", "half"], "y"),
        ];
        let m = from_bytes(
            &model(&[DimValue(1), DimValue(3)], nodes, 17),
            &Default::default(),
        )
        .unwrap();
        assert_eq!(m.nodes.len(), 2);
        assert!(matches!(m.nodes[1].op, Op::Gelu));
        let y = crate::float::run(&m, &[-1.0, 0.0, 2.0]).unwrap();
        let gelu = |x: f64| 0.5 * x * (1.0 + crate::float::erf(x / std::f64::consts::SQRT_2));
        for (g, x) in y.data.iter().zip([-1.0, 0.0, 2.0]) {
            assert!((*g as f64 - gelu(x)).abs() < 1e-6);
        }
        // GELU at x = 1 is 0.8413447460685429 (Φ(1)).
        assert!((gelu(1.0) - 0.841_344_746_068_542_9).abs() < 1e-12);
    }

    fn tensor(
        dt: pb::tensor_proto::DataType,
        dims: &[i64],
        raw: Option<Vec<u8>>,
    ) -> pb::TensorProto {
        pb::TensorProto {
            name: Some("w".into()),
            dims: dims.to_vec(),
            data_type: Some(dt as i32),
            raw_data: raw,
            ..Default::default()
        }
    }

    #[test]
    fn tensor_elements_decode_from_raw_and_typed_fields_and_reject_bad_lengths() {
        use pb::tensor_proto::DataType as D;
        let vals = [1.5f64, -2.25, 3.0, 0.125];
        // raw little-endian bytes of each type against the values they were made from
        let f32_raw: Vec<u8> = vals
            .iter()
            .flat_map(|&v| (v as f32).to_le_bytes())
            .collect();
        let f64_raw: Vec<u8> = vals.iter().flat_map(|&v| v.to_le_bytes()).collect();
        let i64_raw: Vec<u8> = [7i64, -9, 1 << 40, 0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let i32_raw: Vec<u8> = [7i32, -9, 1 << 30, 0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let want_f: Vec<f32> = vals.iter().map(|&v| v as f32).collect();
        for (dt, raw) in [(D::Float, f32_raw.clone()), (D::Double, f64_raw.clone())] {
            match tensor_from_proto(&tensor(dt, &[2, 2], Some(raw))).unwrap() {
                Const::F32(t) => assert_eq!(t.data, &want_f[..]),
                Const::I64(_) => panic!("float tensor decoded as integers"),
            }
        }
        for (dt, raw, want) in [
            (D::Int64, i64_raw.clone(), vec![7i64, -9, 1 << 40, 0]),
            (D::Int32, i32_raw.clone(), vec![7i64, -9, 1 << 30, 0]),
        ] {
            match tensor_from_proto(&tensor(dt, &[4], Some(raw))).unwrap() {
                Const::I64(t) => assert_eq!(t.data, &want[..]),
                Const::F32(_) => panic!("integer tensor decoded as floats"),
            }
        }
        // typed repeated fields
        let mut t = tensor(D::Int32, &[2], None);
        t.int32_data = vec![-3, 4];
        match tensor_from_proto(&t).unwrap() {
            Const::I64(t) => assert_eq!(t.data, &[-3, 4]),
            Const::F32(_) => panic!("integer tensor decoded as floats"),
        }
        // one byte short, one element too many, a typed field of the wrong length
        for (dt, mut raw) in [
            (D::Float, f32_raw),
            (D::Double, f64_raw),
            (D::Int64, i64_raw),
            (D::Int32, i32_raw),
        ] {
            raw.pop();
            let e = tensor_from_proto(&tensor(dt, &[4], Some(raw))).err();
            assert!(
                matches!(e, Some(NnError::TensorData { .. })),
                "{dt:?}: {e:?}"
            );
        }
        let mut t = tensor(D::Float, &[3], None);
        t.float_data = vec![1.0, 2.0];
        let e = tensor_from_proto(&t).err();
        assert!(
            matches!(e, Some(NnError::TensorData { len: 2, .. })),
            "{e:?}"
        );
    }
}
