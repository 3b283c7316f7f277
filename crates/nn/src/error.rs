//! The crate's one error type.

use crate::ir::NodeId;
use thiserror::Error;

/// Everything that can go wrong in import, execution and data loading.
///
/// Import errors name the ONNX node (its `name`, or `#index` when unnamed) and its op type.
#[derive(Debug, Error)]
pub enum NnError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("not an ONNX model (protobuf decoding failed: {source})")]
    NotOnnx {
        #[source]
        source: prost::DecodeError,
    },
    #[error("not an ONNX model: {what} is missing")]
    MissingField { what: &'static str },
    #[error("unsupported opset {version} for domain \"{domain}\" (supported: {min}..={max})")]
    UnsupportedOpset {
        domain: String,
        version: i64,
        min: i64,
        max: i64,
    },
    #[error("metadata {key}: {reason}")]
    BadMetadata { key: &'static str, reason: String },
    #[error("node {node} ({op}): unsupported op")]
    UnsupportedOp { node: String, op: String },
    #[error("node {node} ({op}): unsupported: {reason}")]
    UnsupportedAttribute {
        node: String,
        op: String,
        reason: String,
    },
    #[error("node {node} ({op}): input {input} is not defined by any earlier node, initializer or graph input")]
    UndefinedInput {
        node: String,
        op: String,
        input: String,
    },
    #[error("node {node} ({op}): input {index} must be a constant (initializer) but is computed at run time")]
    ExpectedConstant {
        node: String,
        op: String,
        index: usize,
    },
    #[error("node {node} ({op}): shape mismatch: {reason}")]
    ShapeMismatch {
        node: String,
        op: String,
        reason: String,
    },
    #[error("graph input {input}: dimension {dim} is dynamic ({symbol}); only static shapes are supported (give an input shape)")]
    DynamicShape {
        input: String,
        dim: usize,
        symbol: String,
    },
    #[error("graph input {input}: wrong input shape {got:?}, the model expects {expected:?}")]
    WrongInputShape {
        input: String,
        expected: Vec<usize>,
        got: Vec<usize>,
    },
    #[error("graph has {count} run-time inputs; exactly one is supported")]
    InputCount { count: usize },
    #[error("graph has {count} outputs; exactly one is supported")]
    OutputCount { count: usize },
    #[error("tensor {name}: unsupported element type {data_type}")]
    TensorType { name: String, data_type: i32 },
    #[error("tensor {name}: {len} values for shape {shape:?}")]
    TensorData {
        name: String,
        len: usize,
        shape: Vec<i64>,
    },
    #[error("input has {got} values, the model expects {expected} (shape {shape:?})")]
    InputLength {
        expected: usize,
        got: usize,
        shape: Vec<usize>,
    },
    #[error("node {node} ({op}) has no fixed-point semantics yet (float executor only)")]
    NoFixedPoint { node: String, op: &'static str },
    #[error(
        "node {node} is not a linear layer reading a LayerNorm alone: it cannot run fused with it"
    )]
    NotFusable { node: NodeId },
    #[error("invalid fixed-point configuration ell = {ell}, s = {scale}: {reason}")]
    FixedConfig {
        ell: u32,
        scale: u32,
        reason: &'static str,
    },
    #[error("node {node}: expected {expected} inputs, got {got}")]
    Arity {
        node: usize,
        expected: usize,
        got: usize,
    },
    #[error("CIFAR-10 file {path}: {len} bytes is not a multiple of the 3073-byte record")]
    CifarLength { path: String, len: usize },
    #[error("CIFAR-10 file {path}: record {index} has label {label} (must be 0..=9)")]
    CifarLabel {
        path: String,
        index: usize,
        label: u8,
    },
    #[error("image {path}: {source}")]
    Image {
        path: String,
        #[source]
        source: image::ImageError,
    },
    #[error("image {path}: size {width}x{height}, the model expects {expected_w}x{expected_h}")]
    ImageSize {
        path: String,
        width: u32,
        height: u32,
        expected_w: usize,
        expected_h: usize,
    },
}

pub type Result<T, E = NnError> = std::result::Result<T, E>;
