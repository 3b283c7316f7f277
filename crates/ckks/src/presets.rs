//! Named parameter presets. Each name states its facts; released presets are never edited.

use crate::params::{ParamsLiteral, SecretDist, Security};

/// INSECURE (tests only): N = 2^11, seven 40-bit levels above a 50-bit base prime, two 50-bit
/// special primes, scale 2^40, three key-switching digits.
pub fn insecure_test_n11() -> ParamsLiteral {
    ParamsLiteral {
        log_n: 11,
        log_q: vec![50, 40, 40, 40, 40, 40, 40, 40],
        log_p: vec![50, 50],
        log_scale: 40,
        secret: SecretDist::Ternary,
        digits: Some(4),
        security: Security::InsecureForTests,
    }
}
