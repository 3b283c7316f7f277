//! Oblivious transfer for two semi-honest parties over a [`transport::Channel`].
//!
//! Layers, bottom up (docs/ot.md has the design, message flows and costs):
//! - [`base`]: Chou–Orlandi base OT over Ristretto (128 per direction and session);
//! - [`iknp`]: IKNP extension to random correlated OT (COT) with a global Δ;
//! - [`CotSender`] / [`CotReceiver`]: the session's COT source (silent or IKNP backend), whose
//!   `extend(ch, n)` may be called any number of times;
//! - OTs derived from COT (module `ext`, as methods on the two types): random OT, chosen-message
//!   OT, correlated additive OT over Z_{2^ℓ}, 1-out-of-N OT;
//! - [`hash`]: fixed-key AES, the tweakable correlation-robust hash, a PRG.
//!
//! Every protocol is one side only and reads the peer's bytes through the channel; malformed or
//! missing bytes become an [`OtError`], never a panic.

pub mod base;
mod bits;
mod block;
mod cot;
mod error;
mod ext;
pub mod ferret;
pub mod hash;
pub mod iknp;

pub use block::{choice_bits, Block};
pub use cot::{CotBackend, CotConfig, CotPair, CotReceiver, CotSender, Role, MAX_EXTEND};
pub use error::{OtError, Result};
pub use ext::{MAX_BITS, MAX_LOG_N};
