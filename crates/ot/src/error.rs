//! Errors of the OT layer.

use transport::TransportError;

/// Everything that can go wrong in an OT protocol. Malformed bytes from the peer map to
/// [`OtError::BadMessage`] or [`OtError::InvalidPoint`]; a vanished or silent peer to
/// [`OtError::Transport`].
#[derive(Debug, thiserror::Error)]
pub enum OtError {
    /// The channel failed (peer closed, timeout, oversized frame, I/O).
    #[error("transport: {0}")]
    Transport(#[from] TransportError),
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
    /// A base-OT message held an encoding that is not a valid Ristretto point, or the identity.
    #[error("base OT: element {index} of the {what} message is not a valid non-identity Ristretto point")]
    InvalidPoint { what: &'static str, index: usize },
    /// A message width outside what the API supports.
    #[error("message width of {bits} bits is outside 1..={max}")]
    InvalidBitWidth { bits: u32, max: u32 },
    /// `log2 N` of a 1-of-N OT outside the supported range.
    #[error("1-of-N OT with log2 N = {log_n} is outside 1..={max}")]
    InvalidLogN { log_n: u32, max: u32 },
    /// A 1-of-N choice not below N.
    #[error("1-of-N choice {choice} at index {index} is not below N = {n}")]
    ChoiceOutOfRange { index: usize, choice: u32, n: u32 },
    /// A chosen message wider than the declared width.
    #[error("message {value:#x} at index {index} does not fit in {bits} bits")]
    ValueOutOfRange { index: usize, value: u64, bits: u32 },
    /// Two input slices that must have the same length do not.
    #[error("{what}: lengths {left} and {right} differ")]
    LengthMismatch {
        what: &'static str,
        left: usize,
        right: usize,
    },
    /// One request for more OTs than a single call may produce.
    #[error("request for {requested} OTs exceeds the per-call limit of {max}")]
    TooMany { requested: usize, max: usize },
    /// A silent-OT iteration computing on its own thread did not finish (its thread panicked).
    #[error("silent OT: the background LPN iteration failed")]
    Background,
    /// The peer announced parameters that differ from ours.
    #[error("{what}: peer announced {got}, expected {expected}")]
    ParameterMismatch {
        what: &'static str,
        expected: u64,
        got: u64,
    },
}

/// Result of the OT layer.
pub type Result<T, E = OtError> = std::result::Result<T, E>;
