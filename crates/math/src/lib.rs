//! # privinfer-math
//!
//! Bottom layer of the lattice stack: arithmetic modulo word-sized primes
//! (Barrett, Shoup), NTT-friendly prime generation, RNS polynomials of
//! `Z_Q[X]/(X^N + 1)` with explicit representation (coefficient / NTT) and
//! level (count of active primes), negacyclic NTT via `tfhe-ntt`, exact cyclic
//! and negacyclic products modulo any `q`, CRT and fast base conversion,
//! sampling from an explicit CSPRNG, and bit-packing.
//!
//! ```
//! use math::{prime::generate_primes, Poly, Representation, RnsContext};
//! let primes = generate_primes(50, 1024, 2, &[]).unwrap();
//! let ctx = RnsContext::new(1024, &primes).unwrap();
//! let mut a = Poly::from_signed(&ctx, 2, &[1, 2, 3]);
//! let mut b = Poly::from_signed(&ctx, 2, &[0, 1]); // X
//! a.ntt_forward();
//! b.ntt_forward();
//! a.mul_assign(&b).unwrap();
//! a.ntt_inverse();
//! assert_eq!(a, Poly::from_signed(&ctx, 2, &[0, 1, 2, 3]));
//! ```

pub mod alloc;
pub mod baseconv;
pub mod conv;
pub mod lazy;
pub mod modulus;
pub mod ntt;
pub mod pack;
pub mod prime;
pub mod rns;
pub mod sample;
pub mod simd;

pub use baseconv::{BaseConverter, ConversionMode, ScaleRounder};
pub use conv::{PolyMultiplier, Wrap};
pub use modulus::{Modulus, MAX_MODULUS_BITS};
pub use ntt::{NttPlan, NttTable};
pub use rns::{Poly, Representation, RnsContext};

/// Errors of the math layer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MathError {
    #[error("invalid modulus {modulus}: need 2 <= q < 2^62")]
    InvalidModulus { modulus: u64 },
    #[error("invalid ring degree {degree}: need a power of two in [16, 2^17]")]
    InvalidDegree { degree: usize },
    #[error("modulus {modulus} is not an NTT-friendly prime for degree {degree} (need prime q = 1 mod 2N)")]
    NotNttFriendly { modulus: u64, degree: usize },
    #[error("modulus {modulus} appears twice in the basis")]
    DuplicateModulus { modulus: u64 },
    #[error("empty RNS basis")]
    EmptyBasis,
    #[error("not enough {bits}-bit primes = 1 mod 2*{degree} for {count} moduli")]
    NotEnoughPrimes {
        bits: u32,
        degree: usize,
        count: usize,
    },
    #[error("polynomials belong to different RNS contexts")]
    ContextMismatch,
    #[error("moduli count mismatch: {lhs} vs {rhs}")]
    ModuliCountMismatch { lhs: usize, rhs: usize },
    #[error("invalid moduli count {count} (max {max})")]
    InvalidModuliCount { count: usize, max: usize },
    #[error("representation mismatch: expected {expected:?}, found {found:?}")]
    RepresentationMismatch {
        expected: Representation,
        found: Representation,
    },
    #[error("invalid length: expected {expected}, found {found}")]
    InvalidLength { expected: usize, found: usize },
    #[error("value {value} out of range for modulus {modulus}")]
    ValueOutOfRange { value: u64, modulus: u64 },
    #[error("invalid Galois element {element} for degree {degree} (need odd, < 2N)")]
    InvalidGaloisElement { element: usize, degree: usize },
    #[error("invalid bit width {bits}")]
    InvalidBitWidth { bits: u32 },
    #[error("non-zero padding bits in packed data")]
    NonZeroPadding,
}
