//! RNS-CKKS approximate homomorphic encryption (Cheon–Kim–Kim–Song 2017; RNS variant of
//! Cheon–Han–Kim–Kim–Song 2018) with bootstrapping, built on the `math` layer.
//!
//! Layer: `math → rlwe → ckks`. This crate depends on `math` only, never on crates above.

pub mod bootstrap;
pub mod chebyshev;
pub mod encoder;
pub mod error;
pub mod evaluator;
pub mod keys;
pub mod linear;
pub mod params;
pub mod polyeval;
pub mod presets;
mod ring;
pub mod scheme;
pub mod serialize;

pub use bootstrap::{BootstrapConfig, Bootstrapper, EncapsulationKeys};
pub use chebyshev::{ChebyshevSeries, Composite};
pub use encoder::{Complex, Encoder};
pub use error::CkksError;
pub use evaluator::Evaluator;
pub use keys::{EvaluationKeys, KeyGenerator, PublicKey, SecretKey, SwitchingKey};
pub use linear::{DiagMatrix, LinearTransform};
pub use params::{Params, ParamsLiteral, SecretDist, Security};
pub use scheme::{Ciphertext, Decryptor, Encryptor, Plaintext, SeededCiphertext};

/// Two scales are equal when they agree to a relative `2^-40`: scales are tracked in floating
/// point, and a relative scale error of `2^-40` perturbs a value by far less than CKKS noise.
pub fn scale_eq(a: f64, b: f64) -> bool {
    (a - b).abs() <= a.abs().max(b.abs()) * 2f64.powi(-40)
}
