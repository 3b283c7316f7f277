//! The privinfer engine: plans a model into per-layer protocols and runs client and server
//! sessions over a `Channel`. This crate and the CLI are the stable facade; the layers below may
//! change freely.

pub mod handshake;
pub mod server;

pub use server::{Server, ServerConfig, SessionHandler};

/// Errors of planning and running a private inference session.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Transport(#[from] transport::TransportError),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: String, source: std::io::Error },
    #[error("malformed {what} from the peer: {reason}")]
    Malformed { what: &'static str, reason: String },
    #[error("protocol version mismatch: we speak {ours}, the peer speaks {theirs}")]
    VersionMismatch { ours: u32, theirs: u32 },
    #[error("model digest mismatch: expected {expected}, the server offers {offered}")]
    DigestMismatch { expected: String, offered: String },
    #[error("the server refused the session: {0}")]
    Refused(String),
}
