//! RNS-CKKS approximate homomorphic encryption (Cheon–Kim–Kim–Song 2017; RNS variant of
//! Cheon–Han–Kim–Kim–Song 2018) with bootstrapping, built on the `math` layer.
//!
//! Layer: `math → rlwe → ckks`. This crate may depend on `math` (and `rlwe`), never on crates above.

pub mod chebyshev;
pub mod encoder;
pub mod error;
pub mod polyeval;

pub use encoder::{Complex, Encoder};
pub use error::CkksError;

/// Two scales are equal when they agree to a relative `2^-40`: scales are tracked in floating
/// point, and a relative scale error of `2^-40` perturbs a value by far less than CKKS noise.
pub fn scale_eq(a: f64, b: f64) -> bool {
    (a - b).abs() <= a.abs().max(b.abs()) * 2f64.powi(-40)
}
