//! `privinfer-fhe`: non-interactive FHE inference of whole CNNs on our CKKS (HyPHEN-style;
//! design and proofs in docs/protocols/hyphen.md).
//!
//! - [`layout`]: the slot layouts of feature maps (`P`, `I`, vector).
//! - [`lower`]: an imported [`nn::Model`] to a [`lower::Program`]: alternating ConvA / ConvB,
//!   per-channel polynomial activations, option-A shortcuts, pooling + FC, bootstrap placement.
//! - [`backend`]: the operations on clear slot vectors ([`backend::Sim`], the layout oracle and
//!   the dry run) and on CKKS ciphertexts ([`backend::Ckks`]).
//! - [`exec`]: runs a program on a backend, counting rotations, products and bootstraps.
//!
//! Layer: `ckks, nn → fhe`; no crate above.

pub mod backend;
pub mod diag;
pub mod error;
pub mod exec;
pub mod layout;
pub mod lower;
pub mod party;
pub mod session;

pub use error::{FheError, Result};
pub use exec::{run, Counts, Run, StepReport};
pub use layout::{Grid, Layout};
pub use lower::{mpcnn_rotations, Options, Program};
pub use session::{Client, ClientKeys, Deployment, Offer, FLOOD_BITS};
