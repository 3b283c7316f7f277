//! Block-circulant FC layers by Cheetah's convolution (`linear::circulant`): exact against the
//! integer reference (which multiplies by the dense W), predicted bytes = measured, fewer
//! weights to encode than the dense FC, and non-circulant weights refused.

mod common;

use common::run;
use linear::{circulant, Cheetah, Circulant, LayerSpec, LayerWeights, LinearProtocol, Ring};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

/// Random block-circulant weights (|w| < 2^bits) in the ring, dense `[out][in]`.
fn circulant_weights(layer: &LayerSpec, ring: Ring, rng: &mut impl Rng) -> LayerWeights {
    let linear::LayerShape::Fc(f) = layer.shape else {
        panic!()
    };
    let (b, n) = (f.block, f.inputs);
    let lim = (1i64 << layer.weight_bits) - 1;
    let rows0: Vec<u64> = (0..f.outputs / b * n)
        .map(|_| ring.from_signed(rng.gen_range(-lim..=lim)))
        .collect();
    let mut w = vec![0u64; f.outputs * n];
    for row in 0..f.outputs {
        let (i, r) = (row / b, row % b);
        for col in 0..n {
            let (j, c) = (col / b, col % b);
            w[row * n + col] = rows0[i * n + j * b + (c + b - r) % b];
        }
    }
    LayerWeights {
        weights: w,
        bias: (0..f.outputs).map(|_| ring.reduce(rng.gen())).collect(),
    }
}

fn check(inputs: usize, outputs: usize, block: usize, seed: u64) {
    let ring = Ring::new(37).unwrap();
    let layer = LayerSpec::circulant_fc(inputs, outputs, block, 8);
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let w = circulant_weights(&layer, ring, &mut rng);
    let linear::LayerShape::Fc(f) = layer.shape else {
        panic!()
    };
    assert!(circulant::is_block_circulant(&f, &w.weights));
    let x: Vec<u64> = (0..inputs)
        .map(|_| ring.from_signed(rng.gen_range(-(1i64 << 16)..(1i64 << 16))))
        .collect();
    let out = run(&Circulant::default(), &layer, ring, &w, &x, seed);
    assert_eq!(out.y, out.expected, "{inputs}x{outputs} b={block}");
    assert_eq!(out.client.bytes_sent, out.predicted.bytes_c2s);
    assert_eq!(out.server.bytes_sent, out.predicted.bytes_s2c);
}

#[test]
fn block_circulant_fcs_are_exact() {
    for (i, &(n, m, b)) in [
        (64, 32, 8),
        (256, 128, 16),
        (512, 512, 64),
        (96, 48, 16),
        (8, 8, 8),
    ]
    .iter()
    .enumerate()
    {
        check(n, m, b, i as u64);
    }
}

/// The server encodes out·in/b kernel weights (row 0 of each block), b times fewer than the FC.
#[test]
fn kernels_hold_b_times_fewer_weights() {
    let ring = Ring::new(37).unwrap();
    for (n, m, b) in [(512, 512, 16), (1024, 256, 32)] {
        let layer = LayerSpec::circulant_fc(n, m, b, 8);
        let w = circulant_weights(&layer, ring, &mut ChaCha20Rng::seed_from_u64(1));
        let linear::LayerShape::Fc(f) = layer.shape else {
            panic!()
        };
        let k = circulant::conv_weights(&f, &w).unwrap();
        assert_eq!(k.weights.len() * b, n * m);
        assert!(Circulant::default().cost(&layer, ring).is_ok());
        assert!(Cheetah::default()
            .cost(&LayerSpec::fc(n, m, 8), ring)
            .is_ok());
    }
}

#[test]
fn non_circulant_weights_and_other_layers_are_refused() {
    let ring = Ring::new(37).unwrap();
    let layer = LayerSpec::circulant_fc(32, 16, 8, 8);
    let mut rng = ChaCha20Rng::seed_from_u64(9);
    let mut w = circulant_weights(&layer, ring, &mut rng);
    let linear::LayerShape::Fc(f) = layer.shape else {
        panic!()
    };
    w.weights[5] = w.weights[5].wrapping_add(1) % (1 << 37);
    assert!(!circulant::is_block_circulant(&f, &w.weights));
    assert!(circulant::conv_weights(&f, &w).is_err());
    assert!(Circulant::default()
        .cost(&LayerSpec::fc(32, 16, 8), ring)
        .is_err());
    assert!(LayerSpec::circulant_fc(32, 16, 3, 8).validate().is_err());
    assert!(LayerSpec::circulant_fc(32, 12, 8, 8).validate().is_err());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, .. ProptestConfig::default() })]
    #[test]
    fn random_block_circulant_fcs(lb in 0u32..=5, ni in 1usize..=6, no in 1usize..=6, seed in any::<u64>()) {
        let b = 1usize << lb;
        if b > 1 {
            check(ni * b, no * b, b, seed);
        }
    }
}

/// Both paths run exactly: several output blocks per product (the planner's choice at the
/// default bandwidth) and the 1-D convolution (chosen when bytes are dear).
#[test]
fn both_paths_are_exact() {
    use linear::cheetah::Layout;
    let ring = Ring::new(37).unwrap();
    let layer = LayerSpec::circulant_fc(1024, 512, 16, 8);
    let mut kinds = Vec::new();
    for bw in [50_000_000u64, 10_000] {
        let proto = Circulant::new(linear::CheetahConfig {
            bandwidth_bytes_per_s: bw,
            ..linear::CheetahConfig::default()
        });
        kinds.push(match proto.plan(&layer, ring).unwrap().layout {
            Layout::Circ { .. } => "blocks",
            Layout::Conv { .. } => "conv",
            _ => "other",
        });
        let mut rng = ChaCha20Rng::seed_from_u64(bw);
        let w = circulant_weights(&layer, ring, &mut rng);
        let x: Vec<u64> = (0..1024)
            .map(|_| ring.from_signed(rng.gen_range(-(1i64 << 16)..(1i64 << 16))))
            .collect();
        let out = run(&proto, &layer, ring, &w, &x, bw);
        assert_eq!(out.y, out.expected);
        assert_eq!(out.client.bytes_sent, out.predicted.bytes_c2s);
        assert_eq!(out.server.bytes_sent, out.predicted.bytes_s2c);
    }
    assert_eq!(kinds, ["blocks", "conv"]);
}
