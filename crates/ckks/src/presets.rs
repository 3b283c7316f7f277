//! Named parameter presets. Each name states its facts; released presets are never edited.

use crate::bootstrap::BootstrapConfig;
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

/// INSECURE (tests only): N = 2^12 bootstrapping set. Chain from the bottom: `q_0` 60 bits, two
/// 45-bit computation levels, two 50-bit SlotsToCoeffs levels, nine 60-bit EvalMod levels, two
/// 58-bit CoeffsToSlots levels; `P` = 3 × 61 bits; uniform ternary secret with a weight-32
/// ephemeral secret for bootstrapping. Use with [`insecure_boot_n12_config`].
pub fn insecure_boot_n12() -> ParamsLiteral {
    let mut log_q = vec![60, 45, 45, 50, 50];
    log_q.extend([60; 9]);
    log_q.extend([58, 58]);
    ParamsLiteral {
        log_n: 12,
        log_q,
        log_p: vec![61, 61, 61],
        log_scale: 45,
        secret: SecretDist::Ternary,
        digits: None,
        security: Security::InsecureForTests,
    }
}

/// Bootstrapping layout for [`insecure_boot_n12`]: 2^11 slots, CoeffsToSlots 6 + 5 stages,
/// EvalMod `K = 17`, Chebyshev degree 63, two double angles (9 levels), SlotsToCoeffs 5 + 6.
/// Leaves 2 levels.
pub fn insecure_boot_n12_config() -> BootstrapConfig {
    BootstrapConfig {
        cts_stages: vec![6, 5],
        stc_stages: vec![5, 6],
        k: 17.0,
        double_angle: 2,
        cheb_degree: 63,
        ephemeral_h: Some(32),
        slots: 1 << 11,
    }
}
