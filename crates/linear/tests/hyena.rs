//! The padded channel-minor (Hyena-style) convolution kernel against a direct convolution mod t:
//! one and two channel sets per ciphertext, every baby-step count, strides, paddings, groups and
//! kernel sizes, on a small test ring and on the secure SIMD preset.

mod common;

use std::sync::Arc;

use linear::hyena::{PaddedConv, PaddedLayout};
use linear::Conv2dSpec;
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use rlwe::{presets, BatchEncoder, Evaluator, GaloisKeys, Params, SecretKey};

/// Runs the kernel on random inputs and 12-bit weights and checks the outputs against a direct
/// convolution mod t; returns the largest output noise (log₂, at modulus Q).
fn check(p: &Arc<Params>, spec: Conv2dSpec, seed: u64, baby: Option<(usize, bool)>) -> f64 {
    check_with(p, spec, seed, baby, 4095)
}

/// [`check`] with weights of magnitude up to `wmax` (beyond 2^15 − 1 the kernel keeps them
/// 32-bit, below 16-bit).
fn check_with(
    p: &Arc<Params>,
    spec: Conv2dSpec,
    seed: u64,
    baby: Option<(usize, bool)>,
    wmax: i64,
) -> f64 {
    let mut r = ChaCha20Rng::seed_from_u64(seed);
    let t = p.t().value();
    let enc = BatchEncoder::new(p).unwrap();
    let sk = SecretKey::generate(p, &mut r);
    let ev = Evaluator::new(p);
    let taps = spec.kh * spec.kw;
    let cg = spec.c_per_group();
    // Weights of either sign up to `wmax`, inputs anywhere in Z_t.
    let w: Vec<i64> = (0..spec.m * cg * taps)
        .map(|_| r.gen_range(-wmax..=wmax))
        .collect();
    let x: Vec<u64> = (0..spec.c * spec.h * spec.w)
        .map(|_| r.gen_range(0..t))
        .collect();
    let layout = match baby {
        Some((b, aligned)) => PaddedLayout::with(spec, p.n() / 2, b, aligned).unwrap(),
        None => PaddedLayout::new(spec, p.n() / 2).unwrap(),
    };
    let conv = PaddedConv::new(layout.clone(), &w).unwrap();
    let cts: Vec<_> = layout
        .pack_input(&x)
        .iter()
        .map(|v| sk.encrypt(&enc.encode(v).unwrap(), &mut r).unwrap())
        .collect();
    let gk = GaloisKeys::generate(&sk, &layout.galois_elements(p.n()), &mut r).unwrap();
    let outs = conv.apply(&enc, &ev, &cts, &gk).unwrap();
    let slots: Vec<Vec<u64>> = outs
        .iter()
        .map(|c| enc.decode(&sk.decrypt(c).unwrap()).unwrap())
        .collect();
    let got = layout.unpack_output(&slots);
    assert_eq!(
        got,
        common::direct_conv_mod_t(&spec, &x, &w, t),
        "{spec:?} rows {} baby {}",
        layout.rows(),
        layout.baby_steps()
    );
    let c = layout.counts();
    let (_, n_out) = layout.ciphertexts();
    assert!(c.max_terms_per_output * n_out >= c.terms);
    outs.iter()
        .map(|ct| sk.noise_log2(ct, &sk.decrypt(ct).unwrap()).unwrap())
        .fold(f64::NEG_INFINITY, f64::max)
}

/// Weights beyond 16 bits (stored 32-bit) give the same exact convolution.
#[test]
fn wide_weights_match_a_direct_convolution() {
    let p = Params::new(presets::insecure_test_only(11, 65537).unwrap()).unwrap();
    check_with(&p, Conv2dSpec::square(2, 5, 3, 3, 1, 1, 1), 7, None, 40_000);
}

#[test]
fn matches_a_direct_convolution() {
    let p = Params::new(presets::insecure_test_only(11, 65537).unwrap()).unwrap();
    for (k, spec) in [
        Conv2dSpec::square(2, 5, 3, 3, 1, 1, 1),
        Conv2dSpec::square(6, 4, 5, 3, 2, 1, 1),
        Conv2dSpec::square(40, 4, 36, 3, 1, 2, 1),
        Conv2dSpec::square(8, 5, 8, 3, 1, 1, 8),
        Conv2dSpec::square(8, 5, 12, 3, 2, 1, 4),
        Conv2dSpec::square(3, 20, 4, 5, 1, 2, 1),
        Conv2dSpec::square(5, 30, 2, 3, 1, 1, 1),
    ]
    .into_iter()
    .enumerate()
    {
        for baby in [
            Some((1, false)),
            Some((2, false)),
            Some((7, false)),
            Some((2, true)),
            Some((7, true)),
            Some((1 << 12, true)),
            None,
        ] {
            check(&p, spec, 80 + k as u64, baby);
        }
    }
}

/// ResNet-20's 16 → 16 conv at 32×32 and a 64-channel 8×8 one on the SIMD set the protocol plans
/// for them (N = 8192, t of 38 bits at ℓ = 37): exact, and the output noise below the bound the
/// flooding is sized from (docs/security.md § SIMD layers, the padded kernel's ‖P‖ ≤ 2p·t/2),
/// which is itself below `simd`'s for the same layer.
#[test]
fn on_the_secure_simd_preset() {
    let p = Params::new(presets::bfv_simd_q158_p60(13, 38).unwrap()).unwrap();
    let ring = linear::Ring::new(37).unwrap();
    for (i, spec) in [
        Conv2dSpec::square(16, 32, 16, 3, 1, 1, 1),
        Conv2dSpec::square(64, 8, 64, 3, 1, 1, 1),
    ]
    .into_iter()
    .enumerate()
    {
        let measured = check(&p, spec, 9 + i as u64, None);
        let layer = linear::LayerSpec::conv(spec, 12);
        let hyena = linear::Simd::new(linear::SimdConfig::hyena());
        assert_eq!(
            hyena.params_for(&layer, ring).unwrap(),
            linear::SimdParamsId::N8192
        );
        let bound = hyena.noise(&layer, ring).unwrap().hide_bound.log2();
        let simd = linear::Simd::default()
            .noise(&layer, ring)
            .unwrap()
            .hide_bound
            .log2();
        assert!(
            measured < bound,
            "{spec:?}: noise 2^{measured:.1} above the bound 2^{bound:.1}"
        );
        assert!(
            bound < simd,
            "{spec:?}: bound 2^{bound:.1} not below simd's 2^{simd:.1}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    #[test]
    fn random_shapes(
        g in 1usize..4, cpg in 1usize..6, mpg in 1usize..6, h in 2usize..9,
        k in prop::sample::select(vec![1usize, 3, 5]), stride in 1usize..3, pad in 0usize..3,
        seed in 0u64..1000,
    ) {
        let pad = pad.min(k / 2 + 1);
        prop_assume!(h + 2 * pad >= k);
        let p = Params::new(presets::insecure_test_only(10, 65537).unwrap()).unwrap();
        prop_assume!((h + 2 * pad) * (h + 2 * pad) <= p.n() / 2);
        check(&p, Conv2dSpec::square(g * cpg, h, g * mpg, k, stride, pad, g), seed, None);
    }
}
