//! Fixed point on additive secret shares and the two-party non-linear protocols.
//!
//! Values are two's-complement integers in Z_{2^ℓ} (see [`Ring`]), additively shared between two
//! semi-honest parties [`Party::P0`] and [`Party::P1`]. Every protocol is a method of
//! [`Session`], which owns both directions of random correlated OT (COT) from the `ot` crate and
//! runs one party's side over any [`transport::Channel`]. The two parties call the same method
//! with their own shares in the same order.
//!
//! Protocols are built from random COTs plus short derandomization messages (docs/protocols/
//! nonlinear.md gives each message flow and its exact cost in bits):
//! - [`Session::millionaire`]: CrypTFlow2's comparison tree with 1-of-4 OT leaves and AND gates
//!   from COTs;
//! - [`Session::drelu`], [`Session::relu`], [`Session::relu6`], [`Session::relu_approx`];
//! - [`Session::trunc`] (exact floor of signed values), [`Session::trunc_known_sign`] (exact,
//!   under the range assumption |x| < 2^{ℓ−2});
//! - [`Session::mux`], [`Session::b2a`], [`Session::mul`];
//! - [`Session::maxpool`], [`Session::argmax`];
//! - [`Session::field_to_ring`], [`Session::ring_to_field`].
//!
//! [`plain`] holds the plaintext functions every protocol is tested against.

mod bits;
mod cots;
mod error;
mod field;
mod hash;
mod millionaire;
mod nonlinear;
pub mod plain;
mod pool;
mod ring;
mod session;
mod trunc;

pub use error::{MpcError, Result};
pub use field::FieldModulus;
pub use pool::{PoolShape, PoolSpec};
pub use ring::{reconstruct, share, Ring, Shares};
pub use session::{OtUsage, Party, Session, SessionConfig, DEFAULT_REFILL};
