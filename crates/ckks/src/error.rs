//! The one error type of the `ckks` crate.

/// Everything that can go wrong in CKKS: bad parameters, mismatched operands, missing keys,
/// malformed bytes. Values are carried in the variants.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CkksError {
    #[error("ring degree 2^{log_n} is outside the supported range 2^{min}..=2^{max}")]
    InvalidLogN { log_n: u32, min: u32, max: u32 },
    #[error("slot count {slots} is not a power of two at most N/2 = {max}")]
    InvalidSlots { slots: usize, max: usize },
    #[error("input has {got} values but at most {max} fit in {max} slots")]
    TooManyValues { got: usize, max: usize },
    #[error("level {level} is above the maximum level {max}")]
    InvalidLevel { level: usize, max: usize },
    #[error("operands are at different levels ({a} and {b})")]
    LevelMismatch { a: usize, b: usize },
    #[error("operands have different scales (2^{a_log2:.4} and 2^{b_log2:.4})")]
    ScaleMismatch { a_log2: f64, b_log2: f64 },
    #[error("operands have different slot counts ({a} and {b})")]
    SlotsMismatch { a: usize, b: usize },
    #[error("operands belong to different parameter sets ({a:#018x} and {b:#018x})")]
    ParamsMismatch { a: u64, b: u64 },
    #[error("ciphertext is at level 0 and cannot be rescaled")]
    NoLevelLeft,
    #[error("ciphertext has degree {degree}; this operation needs degree {expected}")]
    InvalidDegree { degree: usize, expected: usize },
    #[error("scale 2^{log2:.3} is not a positive finite number below the modulus")]
    InvalidScale { log2: f64 },
    #[error("value {value} does not fit: |value · scale| must be below 2^{max_log2}")]
    ValueTooLarge { value: f64, max_log2: u32 },
    #[error("no evaluation key for Galois element {galois}")]
    MissingGaloisKey { galois: usize },
    #[error("no relinearization key")]
    MissingRelinKey,
    #[error("a seeded encryption needs a secret-key encryptor")]
    NotSecretKey,
    #[error("the modulus chain is invalid: {reason}")]
    InvalidModuli { reason: ModuliProblem },
    #[error("log QP = {log_qp} bits exceeds the 128-bit security bound {bound} bits for N = 2^{log_n} ({secret})")]
    Insecure {
        log_qp: u32,
        bound: u32,
        log_n: u32,
        secret: &'static str,
    },
    #[error(
        "polynomial of degree {degree} needs depth {needed} but only {available} levels remain"
    )]
    NotEnoughLevels {
        degree: usize,
        needed: usize,
        available: usize,
    },
    #[error("matrix of dimension {rows}x{cols} does not match {slots} slots")]
    MatrixShape {
        rows: usize,
        cols: usize,
        slots: usize,
    },
    #[error("interval [{a}, {b}] is empty or not finite")]
    InvalidInterval { a: f64, b: f64 },
    #[error("no minimax odd polynomial of degree {degree} for sign on [{lo}, 1]: {reason}")]
    Minimax {
        degree: usize,
        lo: f64,
        reason: &'static str,
    },
    #[error("a sum of no terms")]
    EmptySum,
    #[error("flooding standard deviation {sigma} is outside [0, 2^50]")]
    InvalidFlooding { sigma: f64 },
    #[error("lattice layer: {0}")]
    Math(#[from] math::MathError),
    #[error("malformed bytes: {0}")]
    Decode(DecodeProblem),
}

/// Why a modulus chain is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ModuliProblem {
    #[error("no ciphertext primes")]
    Empty,
    #[error("prime bit size {bits} outside 20..=61")]
    PrimeSize { bits: u32 },
    #[error("not enough NTT-friendly primes of {bits} bits")]
    NotEnoughPrimes { bits: u32 },
    #[error("{count} key-switching digits for {levels} ciphertext primes (need 1..=levels, and P at least as large as every digit)")]
    Digits { count: usize, levels: usize },
}

/// Why bytes are refused by a deserializer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeProblem {
    #[error("truncated input")]
    Truncated,
    #[error("unknown format version {0}")]
    Version(u8),
    #[error("parameter id differs from ours")]
    ParamsId,
    #[error("field out of range")]
    Range,
    #[error("trailing bytes")]
    Trailing,
}
