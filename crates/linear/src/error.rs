//! The crate's error type.

use transport::TransportError;

/// Errors of the linear-layer protocols. Values are carried in the variants.
#[derive(Debug, thiserror::Error)]
pub enum LinearError {
    #[error("share ring Z_2^{ell} unsupported (need 2 <= ell <= {max})")]
    RingBits { ell: u32, max: u32 },
    #[error("{what}[{index}] is not reduced mod 2^{ell}")]
    NotReduced {
        what: &'static str,
        index: usize,
        ell: u32,
    },
    #[error("bad layer shape: {reason}")]
    BadShape { reason: &'static str },
    #[error("{what}: expected {expected} elements, got {got}")]
    Length {
        what: &'static str,
        expected: usize,
        got: usize,
    },
    #[error("weights need {bits} bits but the layer declares weight_bits = {declared}")]
    WeightBound { bits: u32, declared: u32 },
    #[error(
        "no secure parameter set fits this layer: ell = {ell}, weight_bits = {weight_bits} \
         (noise flooding needs {needed_bits:.1} bits of headroom, the largest preset gives {available_bits:.1})"
    )]
    NoParameters {
        ell: u32,
        weight_bits: u32,
        needed_bits: f64,
        available_bits: f64,
    },
    #[error("the plaintext ring Z_2^{ell} is too large for HE parameters of t <= 2^{max}")]
    PlaintextTooLarge { ell: u32, max: u32 },
    #[error("missing key material for parameter set {params}")]
    MissingKey { params: &'static str },
    #[error("malformed message from the peer: {what} (expected {expected} bytes, got {got})")]
    MessageLength {
        what: &'static str,
        expected: usize,
        got: usize,
    },
    #[error("malformed message from the peer: {what} has a value out of range")]
    MessageRange { what: &'static str },
    #[error("the peer announced parameter set {got}, expected {expected}")]
    ParamsMismatch { expected: u32, got: u32 },
    #[error("math layer: {0}")]
    Math(#[from] math::MathError),
    #[error("rlwe layer: {0}")]
    Rlwe(#[from] rlwe::RlweError),
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("2PC layer: {0}")]
    Mpc(#[from] mpc::MpcError),
    #[error("the {protocol} protocol draws correlated OTs: run it with a session (client_in / server_in)")]
    NeedsSession { protocol: &'static str },
    #[error("the {protocol} protocol is not one query and one answer: it cannot run split")]
    NotSplit { protocol: &'static str },
    #[error("{protocol} does not apply to this layer: {reason}")]
    NotApplicable {
        protocol: &'static str,
        reason: &'static str,
    },
}
