//! The privinfer engine: plans a model into per-layer protocols and runs client and server
//! sessions over a `Channel`. This crate and the CLI are the stable facade; the layers below may
//! change freely.
//!
//! - [`Plan`]: compiled from an `nn::Model`, public and deterministic; its digest identifies the
//!   model in the handshake.
//! - [`run_server`] / [`run_client`]: one inference, each side over any `Channel`.
//! - [`handshake`], [`Server`]: sessions over TCP with version and digest checks.

pub mod handshake;
mod local;
pub mod plan;
pub mod run;
pub mod server;
pub mod service;

pub use plan::{LinearChoice, Plan, PlanConfig, Step, StepKind};
pub use run::{run_client, run_server, OtReport, Outcome, Report, ServerModel, StepReport};
pub use server::{Server, ServerConfig, SessionHandler};
pub use service::{infer, infer_channel, Inference, ModelService};

/// Errors of planning and running a private inference session.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Transport(#[from] transport::TransportError),
    #[error(transparent)]
    Model(#[from] nn::NnError),
    #[error("linear layer: {0}")]
    Linear(#[from] linear::LinearError),
    #[error("non-linear layer: {0}")]
    Mpc(#[from] mpc::MpcError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("malformed {what} from the peer: {reason}")]
    Malformed { what: &'static str, reason: String },
    #[error("protocol version mismatch: we speak {ours}, the peer speaks {theirs}")]
    VersionMismatch { ours: u32, theirs: u32 },
    #[error("model digest mismatch: expected {expected}, the server offers {offered}")]
    DigestMismatch { expected: String, offered: String },
    #[error("the server refused the session: {0}")]
    Refused(String),
    #[error("node {node} ({op}) cannot run privately: {reason}")]
    Unsupported {
        node: String,
        op: String,
        reason: String,
    },
    #[error("invalid plan at step {step}: {reason}")]
    InvalidPlan { step: usize, reason: String },
    #[error("input has {got} elements, the model expects shape {expected:?}")]
    InputShape { expected: Vec<usize>, got: usize },
}
