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

/// INSECURE (fuzzing only): N = 2^6, three 30-bit primes, one 31-bit special prime, three
/// digits, so that a fuzzer parses whole objects quickly. `fuzz/fuzz_targets/ckks.rs` and the
/// seed writer `examples/fuzz_seeds.rs` use it.
pub fn insecure_fuzz_n6() -> ParamsLiteral {
    ParamsLiteral {
        log_n: 6,
        log_q: vec![30, 30, 30],
        log_p: vec![31],
        log_scale: 25,
        secret: SecretDist::Ternary,
        digits: Some(3),
        security: Security::InsecureForTests,
    }
}

/// INSECURE (tests only): N = 2^12 bootstrapping set. Chain from the bottom: `q_0` 60 bits, two
/// 45-bit computation levels, two 50-bit SlotsToCoeffs levels, nine 60-bit EvalMod levels, two
/// 58-bit CoeffsToSlots levels; `P` = 3 × 61 bits; uniform ternary secret with a weight-32
/// ephemeral secret for bootstrapping. Use with [`insecure_boot_n12_config`].
pub fn insecure_boot_n12() -> ParamsLiteral {
    let mut log_q = vec![58, 45, 45, 50, 50];
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

/// INSECURE (tests only): [`insecure_boot_n12`] with eight 45-bit computation levels instead of
/// two, so that a bootstrapped ciphertext has room for a residual block of a network (FHE-mode
/// tests). Use with [`insecure_boot_n12_config`]; bootstrapping leaves 8 levels.
pub fn insecure_boot_n12_deep() -> ParamsLiteral {
    let mut lit = insecure_boot_n12();
    let mut log_q = vec![58];
    log_q.extend([45; 8]);
    log_q.extend_from_slice(&lit.log_q[3..]);
    lit.log_q = log_q;
    lit
}

/// Bootstrapping layout for [`insecure_boot_n12`]: 2^11 slots, CoeffsToSlots 6 + 5 stages,
/// EvalMod `K = 17`, even Chebyshev cosine of degree 62 (interpolated at 64 nodes), two double
/// angles (9 levels), SlotsToCoeffs 5 + 6.
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
        arcsine_degree: None,
    }
}

/// `N16_LogQP1534_H192_H32`: bootstrapping parameters with full packing (2^15 slots), secret of
/// Hamming weight 192 and a weight-32 ephemeral secret for bootstrapping — the shape of Lattigo's
/// `N16QP1546H192H32`, whose modulus (1546 bits) Bossuat et al. estimate at 128-bit security for
/// h = 192; ours is 1534 bits (the check below allows sparse secrets up to 90% of the
/// HomomorphicEncryption.org ternary bound, 1594 bits).
///
/// Chain from the bottom: `q_0` 50 bits; nine 40-bit computation levels (scale 2^40, message
/// ratio `q_0/Δ = 2^10`); three 40-bit SlotsToCoeffs levels; nine 59-bit EvalMod levels; three
/// 56-bit CoeffsToSlots levels. `P` = five 61-bit primes; five key-switching digits of five
/// primes. With [`n16_logqp1534_h192_h32_config`] bootstrapping leaves **9 levels**. Failure
/// probability from the modular-reduction range: 0 (`|I| ≤ 16 < K = 17` with certainty for a
/// weight-32 ephemeral secret). Measured precision and time: `docs/ckks.md`, BENCHMARKS.md.
pub fn n16_logqp1534_h192_h32() -> ParamsLiteral {
    let mut log_q = vec![50];
    log_q.extend([40; 9]);
    log_q.extend([40; 3]);
    log_q.extend([59; 9]);
    log_q.extend([56; 3]);
    ParamsLiteral {
        log_n: 16,
        log_q,
        log_p: vec![61; 5],
        log_scale: 40,
        secret: SecretDist::Sparse { h: 192 },
        digits: Some(5),
        security: Security::Bits128,
    }
}

/// Bootstrapping layout for [`n16_logqp1534_h192_h32`]: CoeffsToSlots 5 + 5 + 5 stages, EvalMod
/// `K = 17` with an even degree-62 Chebyshev cosine and two double angles (9 levels), SlotsToCoeffs
/// 5 + 5 + 5 stages (the same rotations as CoeffsToSlots, so the keys are shared), ephemeral
/// secret weight 32, 2^15 slots.
pub fn n16_logqp1534_h192_h32_config() -> BootstrapConfig {
    BootstrapConfig {
        cts_stages: vec![5, 5, 5],
        stc_stages: vec![5, 5, 5],
        k: 17.0,
        double_angle: 2,
        cheb_degree: 63,
        ephemeral_h: Some(32),
        slots: 1 << 15,
        arcsine_degree: None,
    }
}

/// `N16_LogQP1545_H192_H32`: bootstrapping parameters with **ten** computation levels after
/// bootstrapping, one more than [`n16_logqp1534_h192_h32`], for FHE-mode networks: a residual
/// block of a HyPHEN-style network costs five levels, so ten levels are two whole blocks per
/// bootstrap, where nine leave every other segment three levels short
/// (docs/protocols/hyphen.md § Bootstrap placement). Same secret (Hamming weight 192, a
/// weight-32 ephemeral secret for bootstrapping) and the same `N`; 1545 bits, within the 1546
/// of Lattigo's `N16QP1546H192H32`, which Bossuat et al. estimate at 128-bit security for
/// h = 192.
///
/// Chain from the bottom: `q_0` 50 bits; ten 40-bit computation levels (scale 2^40); three
/// 36-bit SlotsToCoeffs levels; nine 59-bit EvalMod levels; three 52-bit CoeffsToSlots levels.
/// `P` = five 60-bit primes; six key-switching digits of five primes. The bits for the extra
/// level come from the SlotsToCoeffs, CoeffsToSlots and special primes, which bound the
/// bootstrap's precision least (measured at 2^14 slots: 22.3 bits mean, 20.0 minimum, against
/// 23.0 and 20.7 for the 1534-bit preset; EvalMod at 54 bits instead cost 4.5 bits). Use with
/// [`n16_logqp1545_h192_h32_config`].
pub fn n16_logqp1545_h192_h32() -> ParamsLiteral {
    let mut log_q = vec![50];
    log_q.extend([40; 10]);
    log_q.extend([36; 3]);
    log_q.extend([59; 9]);
    log_q.extend([52; 3]);
    ParamsLiteral {
        log_n: 16,
        log_q,
        log_p: vec![60; 5],
        log_scale: 40,
        secret: SecretDist::Sparse { h: 192 },
        digits: Some(6),
        security: Security::Bits128,
    }
}

/// Bootstrapping layout for [`n16_logqp1545_h192_h32`]: the circuit of
/// [`n16_logqp1534_h192_h32_config`], which leaves 10 levels on that chain.
pub fn n16_logqp1545_h192_h32_config() -> BootstrapConfig {
    n16_logqp1534_h192_h32_config()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::Params;

    /// The 128-bit bootstrapping presets pass the security check and leave the levels their
    /// documentation states; the 1545-bit chain is within Lattigo's 1546.
    #[test]
    fn secure_presets_check_and_leave_their_levels() {
        for (lit, cfg, levels, max_bits) in [
            (
                n16_logqp1534_h192_h32(),
                n16_logqp1534_h192_h32_config(),
                9,
                1534.0,
            ),
            (
                n16_logqp1545_h192_h32(),
                n16_logqp1545_h192_h32_config(),
                10,
                1546.0,
            ),
        ] {
            let params = Params::new(lit).unwrap();
            assert_eq!(cfg.output_level(&params).unwrap(), levels);
            let bits: f64 = params
                .q()
                .iter()
                .chain(params.p())
                .map(|&q| (q as f64).log2())
                .sum();
            assert!(bits <= max_bits, "{bits}");
            // The sparse circuit the FHE mode builds (2^14 slots) fits the same chain.
            assert!(cfg
                .with_slots(1 << 14)
                .unwrap()
                .output_level(&params)
                .is_ok());
        }
    }
}
