//! `privinfer-nn`: the crypto-free model layer of privinfer.
//!
//! - [`ir`]: a DAG of typed ops with static shapes and per-op costs ([`ir::Model`]).
//! - [`import`]: ONNX import (official onnx.proto via `prost`), BatchNorm folding.
//! - [`float`]: the float32 executor.
//! - [`fixed`]: the fixed-point reference executor over Z_{2^ℓ}, the oracle of every private
//!   protocol (semantics in `docs/fixed-point.md`), with per-node evaluation and the integer
//!   linear kernels the linear protocols are tested against.
//! - [`data`]: CIFAR-10 binary and PNG/JPEG loaders with the models' normalization.
//!
//! This crate depends on no cryptographic crate (docs/architecture.md).

pub mod approx;
pub mod data;
pub mod error;
pub mod fixed;
pub mod float;
pub mod import;
pub mod ir;
pub mod kernels;

#[allow(clippy::all, missing_docs, rustdoc::all)]
mod onnx_proto;

pub use error::{NnError, Result};
pub use fixed::FixedConfig;
pub use import::{load, load_with, ImportOptions};
pub use ir::{Model, Node, NodeId, Op, OpCounts, Tensor, CIRCULANT_BLOCKS_KEY};

/// Index of the largest value (first one on ties): the predicted class.
pub fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}
