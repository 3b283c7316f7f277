//! The privinfer engine: plans a model into per-layer protocols and runs client and server
//! sessions over a `Channel`. This crate and the CLI are the stable facade; the layers below may
//! change freely.
//!
//! - [`Plan`]: compiled from an `nn::Model`, public and deterministic; its digest identifies the
//!   model in the handshake.
//! - [`run_server`] / [`run_client`]: one inference, each side over any `Channel`.
//! - [`handshake`], [`Server`]: sessions over TCP with version and digest checks.

pub mod approx;
pub mod handshake;
mod local;
pub mod plan;
pub mod run;
pub mod server;
pub mod service;
pub mod soak;

pub use plan::{LinearChoice, LinearPolicy, Plan, PlanConfig, Step, StepKind};
pub use run::{run_client, run_server, OtReport, Outcome, Report, ServerModel, StepReport};
pub use server::{Server, ServerConfig, ServerStats, SessionHandler, StatsHandle};
pub use service::{
    infer, infer_channel, infer_channel_queued, infer_queued, Inference, ModelService,
};

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
    #[error("the server is busy: {reason}; retry after {retry_after_s} s")]
    Busy { reason: String, retry_after_s: u64 },
    #[error("node {node} ({op}) cannot run privately: {reason}")]
    Unsupported {
        node: String,
        op: String,
        reason: String,
    },
    #[error("invalid plan at step {step}: {reason}")]
    InvalidPlan { step: usize, reason: String },
    #[error("server limits: {what}")]
    Config { what: &'static str },
    #[error("memory budget of {} MiB is below the server's idle {} MiB plus one session's predicted {} MiB", budget >> 20, idle >> 20, session >> 20)]
    MemoryBudget {
        budget: u64,
        idle: u64,
        session: u64,
    },
    #[error("input has {got} elements, the model expects shape {expected:?}")]
    InputShape { expected: Vec<usize>, got: usize },
}
