//! # privinfer-rlwe
//!
//! RLWE layer (`math → rlwe → ckks`): checked parameters with 128-bit security
//! by default, keys, BFV-style encryption for any plaintext modulus `t ≥ 2`
//! (including `t = 2^ℓ`, Cheetah's share ring), coefficient and SIMD
//! encodings, plaintext/ciphertext products, hybrid key switching (reusable by
//! CKKS), Galois automorphisms, modulus switching, noise flooding, LWE
//! extraction and PackLWEs, and validated serialization.
//!
//! The Cheetah linear-layer flow:
//! ```
//! use rlwe::*;
//! use rand::SeedableRng;
//! let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
//! let params = Params::new(presets::cheetah_n4096_q109_t2l(37).unwrap()).unwrap();
//! let sk = SecretKey::generate(&params, &mut rng);
//! let pk = PublicKey::generate(&sk, &mut rng).unwrap();
//! let ev = Evaluator::new(&params);
//! // client: encrypt its share (seeded: c1 travels as 32 bytes)
//! let x = Plaintext::from_unsigned(&params, &[5, 7]).unwrap();
//! let ct = sk.encrypt(&x, &mut rng).unwrap();
//! let bytes = serialize::ciphertext_to_bytes(&ct, serialize::Form::Seeded).unwrap();
//! // server: ct × w + mask, switch down, flood, send chosen coefficients
//! let mut ct = serialize::ciphertext_from_bytes(&params, &bytes).unwrap();
//! let w = PlaintextNtt::from_signed(&params, &[3, 1], ct.num_moduli()).unwrap(); // 3 + X
//! ev.mul_plain_assign(&mut ct, &w).unwrap();
//! let mask = Plaintext::from_unsigned(&params, &[11, 13, 17]).unwrap();
//! ev.sub_plain_assign(&mut ct, &mask).unwrap();
//! // re-randomize: fresh c1 and noise flooding hiding |noise| ≤ 2^8 at 40-bit statistical security
//! let cfg = FloodingConfig { stat_sec_bits: 40, noise_bits: 8.0, revealed_coeffs: 3 };
//! ev.flood(&mut ct, &pk, &cfg, &mut rng).unwrap();
//! ev.mod_switch_to(&mut ct, 1).unwrap();
//! let keep = [0usize, 1, 2];
//! let resp = serialize::ciphertext_to_bytes_selected(&ct, &keep).unwrap();
//! // client: decrypt the kept coefficients → its share of x·w
//! let part = serialize::selected_from_bytes(&params, &resp, &keep).unwrap();
//! let y = part.decrypt(&sk).unwrap();
//! let t = 1u64 << 37;
//! assert_eq!(y, vec![(15 + t - 11) % t, (5 + 21 + t - 13) % t, (7 + t - 17) % t]);
//! ```
//! The most compact response, as `privinfer-linear` sends it: Δ-encoded masks added in place
//! ([`Params::add_scaled_at`]), [`Evaluator::rerandomize`], Gaussian flooding of the returned
//! coefficients only ([`Evaluator::flood_gaussian`]), [`Evaluator::mod_switch_to`] one prime,
//! then [`Evaluator::switch_to_compact`] (c₁ at k bits, kept c₀ at b ≤ k bits) and the
//! headerless many-ciphertext codec of [`compact`] with its decryption.
//! The query that precedes it: [`SeededEncryptor`] encrypts many inputs under one 32-byte seed
//! (ChaCha20 stream `i` for input `i`, handed out in order so no `(seed, stream)` is reused; the
//! receiver re-expands `a_i` with [`expand_seeded_a`]), and [`DroppedCodec`] writes and reads
//! each `c_0` headerless with `D` low bits dropped over an optional public support
//! ([`dropped_len`] counts its bytes from the prime widths alone).
//!
//! The `N = 4096` preset has room for 40-bit flooding only of small products
//! (see `docs/params.md`); [`presets::bfv_n8192_q180_t2l`] has room for any
//! Cheetah layer. [`noise`] gives the bound to pass as `noise_bits`.

pub mod batch;
pub mod compact;
mod core;
pub mod dropped;
pub mod eval;
pub mod keyswitch;
pub mod lwe;
pub mod noise;
pub mod params;
pub mod seeded;
pub mod serialize;
pub mod small;

pub use crate::core::{
    max_centered_log2, Ciphertext, Plaintext, PlaintextNtt, PublicKey, SecretKey,
};
pub use batch::BatchEncoder;
pub use compact::{compact_response_len, Pow2Response};
pub use dropped::{dropped_len, DroppedCodec};
pub use eval::{
    galois_element_for_rotation, reduce_flooding_sample, sample_flooding_gaussian, Evaluator,
    FloodingConfig, GaloisKeys, RelinKey,
};
pub use keyswitch::{KeySwitcher, KeySwitchingKey};
pub use lwe::{LweCiphertext, PackingKeys};
pub use math::{Poly, Representation};
pub use params::{
    presets, ErrorDistribution, Params, ParamsLiteral, SecretDistribution, SecurityLevel,
};
pub use seeded::{expand_seeded_a, SeededEncryptor};
pub use small::SmallModCiphertext;

/// Errors of the RLWE layer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RlweError {
    #[error(transparent)]
    Math(#[from] math::MathError),
    #[error("invalid ring degree 2^{log_n}")]
    InvalidDegree { log_n: u32 },
    #[error("empty ciphertext modulus")]
    EmptyModulus,
    #[error("too many moduli: {count} (max 255)")]
    TooManyModuli { count: usize },
    #[error("invalid plaintext modulus t = {t}: need 2 <= t < 2^62, coprime to Q and P")]
    InvalidPlaintextModulus { t: u64 },
    #[error("invalid CBD parameter eta = {eta}")]
    InvalidErrorDistribution { eta: u32 },
    #[error("error distribution CBD({eta}) is narrower than the HES table's sigma = 3.2 (need eta >= 20)")]
    InsecureErrorDistribution { eta: u32 },
    #[error("invalid Hamming weight {hamming_weight} for N = {n}")]
    InvalidHammingWeight { hamming_weight: usize, n: usize },
    #[error("insecure parameters: log2(QP) = {log_qp} bits exceeds the 128-bit HomomorphicEncryption.org bound of {max_log_qp} bits for N = 2^{log_n} (ternary secret)")]
    InsecureParameters {
        log_n: u32,
        log_qp: u32,
        max_log_qp: u32,
    },
    #[error("no 128-bit security bound tabulated for N = 2^{log_n}")]
    NoSecurityBound { log_n: u32 },
    #[error("sparse ternary secrets (h = {hamming_weight}) are not covered by the HES table; use SecurityLevel::InsecureTestOnly or a ternary secret")]
    SparseSecretNotCovered { hamming_weight: usize },
    #[error("objects belong to different parameter sets")]
    ParamsMismatch,
    #[error("invalid level {level} (max {max})")]
    InvalidLevel { level: usize, max: usize },
    #[error("level mismatch: {lhs} vs {rhs} primes")]
    LevelMismatch { lhs: usize, rhs: usize },
    #[error("too many values: {count} > {max}")]
    TooManyValues { count: usize, max: usize },
    #[error("plaintext value {value} out of range for t = {t}")]
    PlaintextOutOfRange { value: u64, t: u64 },
    #[error("invalid ciphertext size {size}")]
    InvalidCiphertextSize { size: usize },
    #[error("parameters have no special primes: key switching unavailable")]
    NoSpecialPrimes,
    #[error("no Galois key for element {element}")]
    MissingGaloisKey { element: usize },
    #[error("flooding width sigma must lie in [0, 2^{max_log2}]")]
    FloodingSigmaOutOfRange { max_log2: u32 },
    #[error("a flooding sample must be a finite integer-valued f64")]
    InvalidFloodingSample,
    #[error("compact response widths: need 1 <= ell < k, ell <= b <= k <= 62 (k = {k}, b = {b}, ell = {ell})")]
    InvalidResponseWidths { k: u32, b: u32, ell: u32 },
    #[error("compact response decryption needs the key's first two primes above 2N·2^k (k = {k})")]
    ResponseTooWideForKey { k: u32 },
    #[error("Galois key for element {element} given twice")]
    DuplicateGaloisKey { element: usize },
    #[error("statistical security {bits} < 40 bits")]
    StatisticalSecurityTooLow { bits: u32 },
    #[error(
        "flooding needs {needed_bits} bits of noise but only {available_bits} fit below Q/(4t)"
    )]
    FloodingExceedsBudget {
        needed_bits: u32,
        available_bits: u32,
    },
    #[error("batching needs a prime t = 1 mod 2N (t = {t}, N = {n})")]
    BatchingUnsupported { t: u64, n: usize },
    #[error(
        "dropping {drop_bits} low bits: at most {max_bits} (the top prime's digit is always sent)"
    )]
    DropTooLarge { drop_bits: u32, max_bits: u32 },
    #[error("indices not strictly increasing at position {position}")]
    UnsortedIndices { position: usize },
    #[error("coefficient index {index} out of range (N = {n})")]
    IndexOutOfRange { index: usize, n: usize },
    #[error("PackLWEs: {count} ciphertexts (need a power of two <= N)")]
    InvalidPackCount { count: usize },
    #[error("serialization: bad magic or version")]
    BadHeader,
    #[error("serialization: unexpected object kind {found} (expected {expected})")]
    WrongKind { expected: u8, found: u8 },
    #[error("serialization: parameter id {found:#x} does not match {expected:#x}")]
    WrongParamsId { expected: u64, found: u64 },
    #[error("serialization: length {found} (expected {expected})")]
    BadLength { expected: usize, found: usize },
    #[error("serialization: invalid field {field} = {value}")]
    BadField { field: &'static str, value: u64 },
    #[error("serialization: value {value} out of range for modulus {modulus}")]
    ValueOutOfRange { value: u64, modulus: u64 },
}
