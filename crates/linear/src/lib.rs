//! # privinfer-linear
//!
//! Two-party linear layers on additive shares over Z_{2^ℓ}: the server holds the weights, both
//! parties hold shares of the input, and each ends with a fresh share of y = W·x + b mod 2^ℓ
//! (at scale 2^{2s}, no truncation; docs/fixed-point.md).
//!
//! * [`LinearProtocol`]: the interface every technique implements (cost model + client + server).
//! * [`cheetah`]: Cheetah's coefficient-encoded HomConv / HomFC / element-wise scale.
//! * [`circulant`]: block-circulant conv and FC layers in Cheetah's encoding (PrivCirNet's structure).
//! * [`cirencode`]: the same layers by PrivCirNet's CirEncode: per-block NTTs over Z_t around a
//!   grouped SIMD layer.
//! * [`falcon`]: dense packing of grouped and depthwise convolutions in Cheetah's encoding.
//! * [`ot`]: OT-based matrix products (CrypTFlow2's linear layers) for every layer shape.
//! * [`winograd`]: Winograd F(2×2,3×3) / F(4×4,3×3) convolutions with OT products (CoPriv).
//! * [`simd`]: slot-encoded (Gazelle / SCI-HE / Bolt) convolutions and matrix products on
//!   shares over a batching prime field Z_t.
//! * [`LayerSpec`], [`LayerWeights`], [`reference()`]: the crate-local layer description and the
//!   direct integer oracle.
//! * [`ClientKeys`] / [`ServerKeys`]: key material exchanged once per session.
//!
//! Layer: above `math` and `transport`; no I/O of its own (everything goes through a `Channel`).

pub mod cheetah;
pub mod circulant;
pub mod cirencode;
mod cost;
mod error;
pub mod falcon;
pub mod hyena;
pub mod keys;
pub mod layer;
pub mod ot;
mod protocol;
pub mod shapes;
pub mod simd;
#[cfg(test)]
mod testutil;
pub mod winograd;

pub use cheetah::{
    bytes_lower_bound, Cheetah, CheetahConfig, CheetahPlan, DenseBytes, Flooding, HeParamsId,
    OutsideSupport, Polyphase,
};
pub use circulant::Circulant;
pub use cirencode::CirEncode;
pub use cost::Cost;
pub use error::LinearError;
pub use falcon::Falcon;
pub use keys::{setup_cost, ClientKeys, KeyRequest, KeyUpload, ServerKeys};
pub use layer::{
    reference, transpose, weight_bits_of, Conv2dSpec, FcSpec, LayerShape, LayerSpec, LayerWeights,
    MatMulSpec, Ring, ScaleSpec,
};
pub use ot::OtLinear;
pub use protocol::{LinearProtocol, PendingAnswer};
pub use simd::{ConvKernel, Simd, SimdConfig, SimdParamsId};
pub use winograd::Winograd;
