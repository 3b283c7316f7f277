//! Errors of the mpc layer.

use transport::TransportError;

/// Everything that can go wrong in a protocol on shares. A vanished, silent or misbehaving peer
/// maps to [`MpcError::Transport`], [`MpcError::Ot`], [`MpcError::BadMessage`] or
/// [`MpcError::NonZeroPadding`], never to a panic.
#[derive(Debug, thiserror::Error)]
pub enum MpcError {
    /// The channel failed (peer closed, timeout, oversized frame, I/O).
    #[error("transport: {0}")]
    Transport(#[from] TransportError),
    /// The correlated-OT layer failed.
    #[error("oblivious transfer: {0}")]
    Ot(#[from] ot::OtError),
    /// A message from the peer had the wrong length for its step.
    #[error("malformed {what} message: expected {expected} bytes, got {got}")]
    BadMessage {
        what: &'static str,
        expected: usize,
        got: usize,
    },
    /// A message from the peer had non-zero padding bits after its packed payload.
    #[error("malformed {what} message: non-zero padding bits")]
    NonZeroPadding { what: &'static str },
    /// A ring bit width outside 2..=64.
    #[error("ring bit width {bits} is outside 2..=64")]
    InvalidBitWidth { bits: u32 },
    /// A fixed-point scale or shift that does not fit the ring.
    #[error("shift of {shift} bits does not fit a {bits}-bit ring (need 1 <= shift <= {max})")]
    InvalidShift { shift: u32, bits: u32, max: u32 },
    /// A comparison width outside 1..=64.
    #[error("comparison width {bits} is outside 1..=64")]
    InvalidCompareWidth { bits: u32 },
    /// A field modulus outside 3..2^62.
    #[error("field modulus {p} is outside 3..2^62")]
    InvalidModulus { p: u64 },
    /// An in-range conversion whose field is too small for the ring's fixed-point range.
    #[error("in-range conversion between a {ell}-bit ring and a {p_bits}-bit prime: needs 3 <= ell and p >= 2^ell - 1 (ring to field: p > 2^(ell-1))")]
    ConversionRange { ell: u32, p_bits: u32 },
    /// Two shared operands (or an operand and the session's expectation) disagree on the ring.
    #[error("ring mismatch: {left}-bit vs {right}-bit")]
    RingMismatch { left: u32, right: u32 },
    /// Two inputs that must have the same length do not.
    #[error("{what}: expected {expected} elements, got {got}")]
    LengthMismatch {
        what: &'static str,
        expected: usize,
        got: usize,
    },
    /// An input value that is not reduced for its ring or comparison width.
    #[error("{what}: value {value:#x} at index {index} does not fit in {bits} bits")]
    ValueOutOfRange {
        what: &'static str,
        index: usize,
        value: u64,
        bits: u32,
    },
    /// A pooling window or tensor shape that is empty or inconsistent.
    #[error("invalid pooling: {what} (value {value})")]
    InvalidPool { what: &'static str, value: usize },
    /// The linear layer run inside a LayerNorm's flights (`Session::layernorm_linear`) failed.
    #[error("linear layer inside LayerNorm: {0}")]
    Interleaved(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A GELU or softmax specification whose parameters or tables do not fit together.
    #[error("invalid {what} specification: {reason}")]
    InvalidSpec {
        what: &'static str,
        reason: &'static str,
    },
}

/// Result with [`MpcError`].
pub type Result<T, E = MpcError> = std::result::Result<T, E>;
