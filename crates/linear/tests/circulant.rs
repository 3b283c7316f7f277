//! Block-circulant FC and conv layers (`linear::circulant`): exact against the integer
//! reference (which multiplies by the dense W), predicted bytes = measured, fewer weights to
//! encode and fewer products than the dense layer, and non-circulant weights refused.

mod common;

use common::run;
use linear::{circulant, Cheetah, Circulant, LayerSpec, LayerWeights, LinearProtocol, Ring};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use transport::Channel;

/// (outputs, inputs, taps, block) of a circulant FC or conv.
fn dims(layer: &LayerSpec) -> (usize, usize, usize, usize) {
    match layer.shape {
        linear::LayerShape::Fc(f) => (f.outputs, f.inputs, 1, f.block),
        linear::LayerShape::Conv2d(c) => (c.m, c.c, c.kh * c.kw, c.block),
        linear::LayerShape::MatMul(m) => (m.outputs, m.inputs, 1, m.block),
        _ => panic!("not a circulant layer"),
    }
}

/// Random block-circulant weights (|w| < 2^bits) in the ring, dense `[out][in][taps]`: random
/// weights with every block replaced by its row 0 made circulant (built here, not by the
/// crate's projection).
fn circulant_weights(layer: &LayerSpec, ring: Ring, rng: &mut impl Rng) -> LayerWeights {
    let (m, n, taps, b) = dims(layer);
    let lim = (1i64 << layer.weight_bits) - 1;
    let rows0: Vec<u64> = (0..m / b * n * taps)
        .map(|_| ring.from_signed(rng.gen_range(-lim..=lim)))
        .collect();
    let mut w = vec![0u64; m * n * taps];
    for row in 0..m {
        let (i, r) = (row / b, row % b);
        for col in 0..n {
            let (j, c) = (col / b, col % b);
            for k in 0..taps {
                w[(row * n + col) * taps + k] = rows0[(i * n + j * b + (c + b - r) % b) * taps + k];
            }
        }
    }
    LayerWeights {
        weights: w,
        bias: (0..m).map(|_| ring.reduce(rng.gen())).collect(),
    }
}

/// Runs a circulant layer under `Circulant` and checks it against the reference and the cost
/// model; returns the products it used.
fn check_layer(proto: &Circulant, layer: &LayerSpec, seed: u64) -> u64 {
    let ring = Ring::new(37).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let w = circulant_weights(layer, ring, &mut rng);
    let (m, n, taps, b) = dims(layer);
    assert!(circulant::is_block_circulant(m, n, taps, b, &w.weights));
    let x: Vec<u64> = (0..layer.input_len())
        .map(|_| ring.from_signed(rng.gen_range(-(1i64 << 14)..(1i64 << 14))))
        .collect();
    let out = run(proto, layer, ring, &w, &x, seed);
    assert_eq!(out.y, out.expected, "{layer:?}");
    assert_eq!(out.client.bytes_sent, out.predicted.bytes_c2s, "{layer:?}");
    assert_eq!(out.server.bytes_sent, out.predicted.bytes_s2c, "{layer:?}");
    out.predicted.ct_pt_mults
}

/// Block-circulant weights for `layer` with weight `at` changed: the server refuses them before
/// it sends anything.
fn refused_before_sending(layer: &LayerSpec, at: usize, rng: &mut ChaCha20Rng) {
    let ring = Ring::new(37).unwrap();
    let mut w = circulant_weights(layer, ring, rng);
    w.weights[at] = ring.reduce(w.weights[at].wrapping_add(1));
    let proto = Circulant::default();
    let req = proto.keys_needed(layer, ring).unwrap();
    let (mut cc, mut sc) = transport::MemoryChannel::pair();
    let req2 = req.clone();
    let client = std::thread::spawn(move || {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        linear::ClientKeys::setup(&req2, &mut cc, &mut rng).unwrap();
        cc
    });
    let keys = linear::ServerKeys::setup(&req, &mut sc).unwrap();
    let _cc = client.join().unwrap();
    let before = sc.stats();
    let x = vec![0u64; layer.input_len()];
    let res = proto.server(layer, ring, &keys, &w, &x, &mut sc, rng);
    assert!(
        res.is_err(),
        "non-circulant weights must be refused: {layer:?}"
    );
    assert_eq!(sc.stats().since(&before).bytes_sent, 0);
}

fn circ_conv(
    c: usize,
    h: usize,
    m: usize,
    k: usize,
    stride: usize,
    padding: usize,
    block: usize,
) -> LayerSpec {
    LayerSpec::conv(
        linear::Conv2dSpec {
            block,
            ..linear::Conv2dSpec::square(c, h, m, k, stride, padding, 1)
        },
        8,
    )
}

/// ResNet-20's conv shapes (32×32 CIFAR) for b ∈ {2, 4, 8, 16}: exact, bytes as predicted, and
/// fewer products than Cheetah on the dense layer.
#[test]
fn block_circulant_convs_are_exact() {
    let proto = Circulant::default();
    for (i, &(c, h, m, k, s, p)) in [
        (16, 32, 16, 3, 1, 1),
        (16, 32, 32, 3, 2, 1),
        (32, 16, 32, 3, 1, 1),
        (16, 32, 32, 1, 2, 0),
        (64, 8, 64, 3, 1, 1),
    ]
    .iter()
    .enumerate()
    {
        for b in [2, 4, 8, 16] {
            let layer = circ_conv(c, h, m, k, s, p, b);
            let products = check_layer(&proto, &layer, (i * 16 + b) as u64);
            let dense = LayerSpec::conv(linear::Conv2dSpec::square(c, h, m, k, s, p, 1), 8);
            let dense_products = Cheetah::default()
                .cost(&dense, Ring::new(37).unwrap())
                .unwrap()
                .ct_pt_mults;
            if b >= 4 {
                assert!(
                    products < dense_products,
                    "{layer:?}: {products} vs {dense_products}"
                );
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, .. ProptestConfig::default() })]
    #[test]
    fn random_block_circulant_convs(lb in 1u32..=3, nc in 1usize..=3, nm in 1usize..=3,
                                    h in 3usize..=12, k in prop::sample::select(vec![1usize, 3, 5]),
                                    s in 1usize..=2, p in 0usize..=2, seed in any::<u64>()) {
        let b = 1usize << lb;
        let layer = circ_conv(nc * b, h.max(k), nm * b, k, s, p, b);
        prop_assume!(layer.validate().is_ok());
        check_layer(&Circulant::default(), &layer, seed);
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
    assert!(circulant::is_block_circulant(
        f.outputs, f.inputs, 1, f.block, &w.weights
    ));
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
    assert!(!circulant::is_block_circulant(
        f.outputs, f.inputs, 1, f.block, &w.weights
    ));
    assert!(circulant::conv_weights(&f, &w).is_err());
    // A conv: one changed weight of a 4-circulant conv is refused before anything is sent.
    let conv = circ_conv(8, 6, 8, 3, 1, 1, 4);
    refused_before_sending(&conv, 40, &mut rng);
    assert!(circ_conv(8, 6, 8, 3, 1, 1, 3).validate().is_err());
    assert!(circ_conv(8, 6, 12, 3, 1, 1, 8).validate().is_err());
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

/// A transformer's token × weight products with block-circulant W (PrivCirNet's ViT layers;
/// `vit_cifar10`'s q/k/v and fc1 shapes, ViT-Lite's fc2 on fewer tokens): run as the 1×1
/// convolution over the tokens by block tilings, exact against the dense reference, bytes as
/// predicted, fewer products than Cheetah's plan of the same product, at the
/// default bandwidth and where bytes are dear; non-circulant weights refused.
#[test]
fn block_circulant_token_products_are_exact() {
    use linear::cheetah::Layout;
    let ring = Ring::new(37).unwrap();
    for (rows, n, m, b) in [(17, 64, 192, 8), (17, 64, 128, 16), (9, 512, 256, 4)] {
        let layer = LayerSpec::circulant_matmul(rows, n, m, b, 8);
        for bw in [50_000_000u64, 1_250_000] {
            let cfg = linear::CheetahConfig {
                bandwidth_bytes_per_s: bw,
                ..linear::CheetahConfig::default()
            };
            let proto = Circulant::new(cfg);
            let plan = proto.plan(&layer, ring).unwrap();
            assert!(
                matches!(plan.layout, Layout::Circ { .. }),
                "{layer:?} at {bw}: {plan:?}"
            );
            let products = check_layer(&proto, &layer, bw ^ n as u64);
            let dense = Cheetah::new(cfg).plan(&layer, ring).unwrap();
            assert!(products < dense.cost.ct_pt_mults, "{layer:?} at {bw}");
        }
    }
    let layer = LayerSpec::circulant_matmul(17, 64, 64, 8, 8);
    refused_before_sending(&layer, 70, &mut ChaCha20Rng::seed_from_u64(3));
    let proto = Circulant::default();
    assert!(proto.cost(&LayerSpec::matmul(17, 64, 64, 8), ring).is_err());
    assert!(LayerSpec::circulant_matmul(17, 64, 48, 32, 8)
        .validate()
        .is_err());
    assert!(LayerSpec::circulant_matmul(17, 64, 64, 3, 8)
        .validate()
        .is_err());
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

/// Block-minor tilings with packed responses, which the planner picks for small maps where bytes
/// weigh (ResNet-18's 4×4 and 2×2 stages at b = 8, here at 400 and 10 Mbit/s): exact, bytes as
/// predicted, and fewer bytes than the same layer planned without them (several output blocks
/// per product, unpacked).
#[test]
fn packed_block_minor_layers_are_exact() {
    use linear::cheetah::Layout;
    let ring = Ring::new(37).unwrap();
    let mut packed = 0;
    for (i, &(c, h, m, k, s, p, b, bw)) in [
        (256, 2, 256, 3, 1, 1, 8, 1_250_000u64),
        (128, 4, 256, 3, 2, 1, 8, 1_250_000),
        (64, 4, 64, 3, 1, 1, 4, 1_250_000),
        (32, 5, 16, 1, 1, 0, 2, 1_250_000),
    ]
    .iter()
    .enumerate()
    {
        let layer = circ_conv(c, h, m, k, s, p, b);
        let proto = Circulant::new(linear::CheetahConfig {
            bandwidth_bytes_per_s: bw,
            ..linear::CheetahConfig::default()
        });
        let plan = proto.plan(&layer, ring).unwrap();
        if let Layout::Circ { tiling, .. } = plan.layout {
            if tiling.interleaved && plan.pack > 1 {
                packed += 1;
                assert!(plan.pack <= tiling.c_t);
                // The best plan without block-minor tilings: several blocks per product.
                let old = linear::cheetah::Cheetah::new(linear::CheetahConfig {
                    circulant: true,
                    packing: false,
                    ..proto.config()
                })
                .plan(&layer, ring)
                .unwrap();
                let bytes = |c: &linear::Cost| c.bytes_c2s + c.bytes_s2c;
                assert!(
                    bytes(&plan.cost) < bytes(&old.cost),
                    "{layer:?}: {} vs {}",
                    bytes(&plan.cost),
                    bytes(&old.cost)
                );
            }
        }
        check_layer(&proto, &layer, 100 + i as u64);
    }
    assert!(packed >= 3, "only {packed} layers packed");
}

/// CirEncode (per-block NTTs around a grouped SIMD layer, shares over Z_t): ResNet-20 shapes and
/// FCs for b ∈ {2, 4, 8, 16} equal the integer reference, bytes as predicted; non-circulant
/// weights are refused.
#[test]
fn cirencode_layers_are_exact() {
    let proto = linear::CirEncode::default();
    let ring = Ring::new(37).unwrap();
    let mut layers = Vec::new();
    for b in [2, 4, 8, 16] {
        layers.push(circ_conv(16, 32, 16, 3, 1, 1, b));
        layers.push(circ_conv(32, 16, 64, 3, 2, 1, b));
        layers.push(circ_conv(64, 8, 64, 1, 1, 0, b));
        layers.push(LayerSpec::circulant_fc(64, 32, b, 8));
    }
    for (i, layer) in layers.iter().enumerate() {
        let mut rng = ChaCha20Rng::seed_from_u64(i as u64);
        let w = circulant_weights(layer, ring, &mut rng);
        let x: Vec<u64> = (0..layer.input_len())
            .map(|_| ring.from_signed(rng.gen_range(-(1i64 << 12)..(1i64 << 12))))
            .collect();
        let w = LayerWeights {
            bias: w
                .bias
                .iter()
                .map(|&v| ring.from_signed(ring.signed(v) >> 16))
                .collect(),
            ..w
        };
        let out = run(&proto, layer, ring, &w, &x, i as u64);
        assert_eq!(out.y, out.expected, "{layer:?}");
        assert_eq!(out.client.bytes_sent, out.predicted.bytes_c2s, "{layer:?}");
        assert_eq!(out.server.bytes_sent, out.predicted.bytes_s2c, "{layer:?}");
    }
    assert!(proto.cost(&LayerSpec::fc(64, 32, 8), ring).is_err());
}
