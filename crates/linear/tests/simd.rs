//! The slot-encoded matrix–vector product (diagonal method, BSGS, hoisted baby steps) against
//! plaintext arithmetic mod t, with its rotation and product counts.

mod common;

use std::sync::Arc;

use linear::simd::{baby_steps, MatVec};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use rlwe::{presets, BatchEncoder, Evaluator, GaloisKeys, Params, SecretKey};

fn check(p: &Arc<Params>, n_out: usize, n_in: usize, seed: u64) {
    let mut r = ChaCha20Rng::seed_from_u64(seed);
    let t = p.t().value();
    let half = p.n() / 2;
    let enc = BatchEncoder::new(p).unwrap();
    let sk = SecretKey::generate(p, &mut r);
    let ev = Evaluator::new(p);
    let w: Vec<u64> = (0..n_out * n_in).map(|_| r.gen_range(0..t)).collect();
    let x: Vec<u64> = (0..n_in).map(|_| r.gen_range(0..t)).collect();
    // x repeated with period n_in over both rows.
    let slots: Vec<u64> = (0..2 * half).map(|s| x[s % n_in]).collect();
    let ct = sk.encrypt(&enc.encode(&slots).unwrap(), &mut r).unwrap();
    let mv = MatVec::new(&enc, &w, n_out, n_in, ct.num_moduli()).unwrap();
    let gk = GaloisKeys::for_rotations(&sk, &mv.rotation_steps(), false, &mut r).unwrap();
    let y = mv.apply(&ev, &ct, &gk).unwrap();
    let got = enc.decode(&sk.decrypt(&y).unwrap()).unwrap();
    for i in 0..n_out {
        let want = (0..n_in).fold(0u128, |acc, j| {
            (acc + w[i * n_in + j] as u128 * x[j] as u128) % t as u128
        }) as u64;
        assert_eq!(got[i], want, "row {i} of {n_out}x{n_in}");
    }
    // Rotations: (B − 1) hoisted baby steps + (G − 1) giant steps over the D = next_pow2(n_out)
    // extended diagonals, with B = the power of two nearest √D from above (Halevi–Shoup BSGS
    // count), then log₂(n_in/D) for Gazelle's rotate-and-sum; one product per diagonal.
    let d = n_out.next_power_of_two().min(n_in);
    let b = baby_steps(d).min(d);
    assert_eq!(
        mv.rotations(),
        (b - 1) + (d.div_ceil(b) - 1) + (n_in / d).trailing_zeros() as usize
    );
    assert_eq!(mv.rotation_steps().len(), mv.rotations());
    assert_eq!(mv.products(), d);
}

#[test]
fn matvec_matches_plaintext_products() {
    let p = Params::new(presets::insecure_test_only(10, 65537).unwrap()).unwrap();
    for (k, (n_out, n_in)) in [
        (1, 1),
        (3, 4),
        (8, 8),
        (10, 64),
        (64, 64),
        (5, 512),
        (1, 256),
        (100, 128),
    ]
    .into_iter()
    .enumerate()
    {
        check(&p, n_out, n_in, 40 + k as u64);
    }
}

#[test]
fn matvec_on_the_secure_simd_preset() {
    // N = 8192, a 40-bit batching prime: ResNet-20's FC shape (10 × 64).
    let p = Params::new(presets::bfv_simd_n8192_q218(40).unwrap()).unwrap();
    check(&p, 10, 64, 7);
}

#[test]
fn bad_shapes_are_refused() {
    let p = Params::new(presets::insecure_test_only(10, 65537).unwrap()).unwrap();
    let enc = BatchEncoder::new(&p).unwrap();
    assert!(
        MatVec::new(&enc, &[0; 11], 3, 4, 3).is_err(),
        "too few weights"
    );
    assert!(MatVec::new(&enc, &[0; 12], 3, 4, 3).is_ok());
    assert!(
        MatVec::new(&enc, &[0; 18], 3, 6, 3).is_err(),
        "n_in not a power of two"
    );
    assert!(
        MatVec::new(&enc, &[0; 20], 5, 4, 3).is_err(),
        "n_out > n_in"
    );
    assert!(
        MatVec::new(&enc, &vec![0; 1024], 1, 1024, 3).is_err(),
        "n_in > N/2"
    );
}

/// The conventional convolution against a direct convolution mod t (zero padding, any stride),
/// plain (B = 1) and in BSGS form, one or two channel sets per ciphertext, with its rotation
/// count ((k²·rows·B − 1) hoisted per input ciphertext + (c_n/B − 1) per output ciphertext) and
/// its plaintext count (at most one per output ciphertext, input copy, output rotation and tap).
fn check_conv(
    p: &Arc<Params>,
    spec: linear::Conv2dSpec,
    seed: u64,
    baby: Option<usize>,
    rows: Option<usize>,
) {
    use linear::simd::{Conv, ConvLayout};
    let mut r = ChaCha20Rng::seed_from_u64(seed);
    let t = p.t().value();
    let enc = BatchEncoder::new(p).unwrap();
    let sk = SecretKey::generate(p, &mut r);
    let ev = Evaluator::new(p);
    let taps = spec.kh * spec.kw;
    let cg = spec.c_per_group();
    let w: Vec<u64> = (0..spec.m * cg * taps).map(|_| r.gen_range(0..t)).collect();
    let x: Vec<u64> = (0..spec.c * spec.h * spec.w)
        .map(|_| r.gen_range(0..t))
        .collect();
    let level = p.max_level();
    let auto = ConvLayout::new(spec, p.n() / 2).unwrap();
    let layout = ConvLayout::with(
        spec,
        p.n() / 2,
        rows.unwrap_or(auto.rows()),
        baby.unwrap_or(auto.baby_steps()),
    )
    .unwrap();
    let conv = Conv::prepare(&enc, layout.clone(), &w, level).unwrap();
    let cts: Vec<_> = conv
        .pack_input(&x)
        .iter()
        .map(|v| sk.encrypt(&enc.encode(v).unwrap(), &mut r).unwrap())
        .collect();
    let gk = GaloisKeys::generate(&sk, &layout.galois_elements(p.n()), &mut r).unwrap();
    let outs = conv.apply(&ev, &cts, &gk).unwrap();
    let slots: Vec<Vec<u64>> = outs
        .iter()
        .map(|c| enc.decode(&sk.decrypt(c).unwrap()).unwrap())
        .collect();
    let got = conv.unpack_output(&slots);
    assert_eq!(
        got,
        common::direct_conv_mod_t(
            &spec,
            &x,
            &w.iter().map(|&v| v as i64).collect::<Vec<_>>(),
            t
        ),
        "{spec:?} rows {} baby {}",
        layout.rows(),
        layout.baby_steps()
    );
    let c_n = ConvLayout::channels_per_ct(&spec, p.n() / 2).unwrap();
    let rw = layout.rows();
    let (ins, outs_n) = (spec.c.div_ceil(rw * c_n), spec.m.div_ceil(rw * c_n));
    assert_eq!(layout.ciphertexts(), (ins, outs_n));
    let b = layout.baby_steps();
    // The published count; fewer when some giant steps meet no channel pair (few outputs,
    // groups), equal when every output ciphertext is full.
    let formula = ins * (taps * layout.copies() * b - 1) + outs_n * (c_n / b - 1);
    assert!(layout.rotations() <= formula);
    if spec.groups == 1 && spec.m.is_multiple_of(rw * c_n) && spec.c >= c_n {
        assert_eq!(layout.rotations(), formula, "{spec:?}");
    }
    assert!(layout.plaintexts() <= outs_n * ins * rw * c_n * taps);
}

#[test]
fn conventional_conv_matches_a_direct_convolution() {
    use linear::Conv2dSpec;
    let p = Params::new(presets::insecure_test_only(11, 65537).unwrap()).unwrap();
    for (k, spec) in [
        Conv2dSpec::square(2, 5, 3, 3, 1, 1, 1), // same padding, C and M below c_n
        Conv2dSpec::square(6, 4, 5, 3, 2, 1, 1), // stride 2
        Conv2dSpec::square(3, 6, 2, 1, 1, 0, 1), // 1×1
        Conv2dSpec::square(40, 4, 36, 3, 1, 2, 1), // padding 2, several input and output ciphertexts
        Conv2dSpec::square(1, 7, 1, 5, 1, 0, 1),   // 5×5, no padding
        Conv2dSpec::square(8, 5, 8, 3, 1, 1, 8),   // depthwise
        Conv2dSpec::square(8, 5, 12, 3, 2, 1, 4),  // grouped, stride 2
    ]
    .into_iter()
    .enumerate()
    {
        let c_n = linear::simd::ConvLayout::channels_per_ct(&spec, p.n() / 2).unwrap();
        for baby in [Some(1), Some(c_n), None] {
            for rows in [Some(1), Some(2), None] {
                check_conv(&p, spec, 60 + k as u64, baby, rows);
            }
        }
    }
}

#[test]
fn bsgs_output_rotations_cut_rotations_where_maps_are_small() {
    use linear::simd::ConvLayout;
    // ResNet-20's last stage, 64 → 64 on 8×8 (10×10 padded): 32 maps per row of 4096 slots.
    let spec = linear::Conv2dSpec::square(64, 8, 64, 3, 1, 1, 1);
    let c_n = ConvLayout::channels_per_ct(&spec, 4096).unwrap();
    assert_eq!(c_n, 32);
    let b = ConvLayout::best_baby(c_n, 2, 2, 9);
    let plain = 2 * (9 - 1) + 2 * (c_n - 1);
    let bsgs = 2 * (9 * b - 1) + 2 * (c_n / b - 1);
    assert!(b > 1 && bsgs < plain, "B = {b}: {bsgs} vs {plain}");
}

#[test]
fn conventional_conv_on_the_secure_simd_preset() {
    // ResNet-20's layer1 conv shape (16 → 16, 3×3, 32×32, pad 1) at N = 8192.
    let p = Params::new(presets::bfv_simd_n8192_q218(40).unwrap()).unwrap();
    check_conv(
        &p,
        linear::Conv2dSpec::square(16, 32, 16, 3, 1, 1, 1),
        9,
        None,
        None,
    );
}

mod random_shapes {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

        /// Random shapes, kernels, strides, paddings and groups, in the layout the planner picks
        /// (rows and baby steps), against the direct convolution mod t.
        #[test]
        fn conv_matches_direct(
            g in 1usize..4, cpg in 1usize..6, mpg in 1usize..6, h in 2usize..9,
            k in prop::sample::select(vec![1usize, 3, 5]), stride in 1usize..3, pad in 0usize..3,
            seed in 0u64..1000,
        ) {
            let pad = pad.min(k / 2 + 1);
            prop_assume!(h + 2 * pad >= k);
            let p = Params::new(presets::insecure_test_only(10, 65537).unwrap()).unwrap();
            let spec = linear::Conv2dSpec::square(g * cpg, h, g * mpg, k, stride, pad, g);
            prop_assume!((h + 2 * pad) * (h + 2 * pad) <= p.n() / 2);
            check_conv(&p, spec, seed, None, None);
        }
    }
}
