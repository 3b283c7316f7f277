//! Cheetah end to end: reconstructed output shares equal the integer oracle exactly, and the cost
//! model's bytes equal the bytes counted on the channel.

mod common;

use common::{check_layer, conv};
use linear::{shapes, Cheetah, LayerSpec, LinearProtocol, Ring};

fn cheetah() -> Cheetah {
    Cheetah::default()
}

#[test]
fn small_conv_and_fc() {
    let ring = Ring::new(37).unwrap();
    check_layer(
        &cheetah(),
        &LayerSpec::conv(conv(3, 8, 4, 3, 1, 1, 1), 12),
        ring,
        1,
    );
    check_layer(&cheetah(), &LayerSpec::fc(100, 10, 12), ring, 2);
    check_layer(&cheetah(), &LayerSpec::scale(4, 5, 5, 12), ring, 3);
    check_layer(&cheetah(), &LayerSpec::matmul(65, 128, 384, 12), ring, 4);
    check_layer(&cheetah(), &LayerSpec::matmul(7, 20, 9, 12), ring, 5);
}

fn check_model(name: &str, layers: Vec<(String, LayerSpec)>, ring: Ring) {
    for (i, (lname, layer)) in shapes::distinct(&layers).iter().enumerate() {
        let t = std::time::Instant::now();
        let out = check_layer(&cheetah(), layer, ring, i as u64);
        eprintln!(
            "{name} {lname}: {} outputs exact, {} + {} bytes, {:.2?}",
            out.y.len(),
            out.predicted.bytes_c2s,
            out.predicted.bytes_s2c,
            t.elapsed()
        );
    }
}

#[test]
fn resnet_cifar_shapes() {
    // ResNet-20, -32 and -56 share the same distinct shapes; the table is checked for each depth.
    for depth in [20, 32, 56] {
        let layers = shapes::resnet_cifar(depth, 13);
        assert_eq!(layers.len(), 6 * ((depth - 2) / 6) + 2);
        if depth == 20 {
            check_model("resnet20", layers, Ring::new(37).unwrap());
        } else {
            let d20 = shapes::distinct(&shapes::resnet_cifar(20, 13));
            let dn = shapes::distinct(&layers);
            assert_eq!(
                dn.iter().map(|l| l.1).collect::<Vec<_>>(),
                d20.iter().map(|l| l.1).collect::<Vec<_>>()
            );
        }
    }
}

#[test]
fn resnet18_64_shapes() {
    check_model(
        "resnet18-64",
        shapes::resnet18(64, 200, 12),
        Ring::new(37).unwrap(),
    );
}

#[test]
fn mobilenet_v2_32_shapes() {
    check_model(
        "mobilenetv2-32",
        shapes::mobilenet_v2(32, 10, 12),
        Ring::new(37).unwrap(),
    );
}

#[test]
#[ignore = "ImageNet-size layers: minutes; run with --ignored"]
fn resnet18_224_shapes() {
    check_model(
        "resnet18-224",
        shapes::resnet18(224, 1000, 12),
        Ring::new(37).unwrap(),
    );
}

#[test]
#[ignore = "ImageNet-size layers: minutes; run with --ignored"]
fn mobilenet_v2_224_shapes() {
    check_model(
        "mobilenetv2-224",
        shapes::mobilenet_v2(224, 1000, 12),
        Ring::new(37).unwrap(),
    );
}

#[test]
fn packed_responses_conv_and_fc() {
    use linear::{CheetahConfig, HeParamsId};
    let ring = Ring::new(37).unwrap();
    let unpacked = Cheetah::new(CheetahConfig::unpacked());
    // Both key-switching sets; a bandwidth-bound setting (1 MB/s) makes the planner trade key
    // switches for bytes.
    for (params, layer) in [HeParamsId::N8192Q180P38, HeParamsId::N8192Q120P60]
        .into_iter()
        .flat_map(|p| packed_layers().into_iter().map(move |l| (p, l)))
    {
        let packed = Cheetah::new(CheetahConfig {
            params: Some(params),
            bandwidth_bytes_per_s: 1_000_000,
            ..CheetahConfig::default()
        });
        let plan = packed.plan(&layer, ring).unwrap();
        assert!(plan.pack > 1, "{layer:?}: packing not chosen");
        let out = check_layer(&packed, &layer, ring, 9);
        // Key switches: one per packed member beyond the first of its group (a partial last
        // group, as for 12 channels in groups of 8, spends none on its padding).
        let groups = plan.layout.response_groups(plan.pack);
        let members: usize = groups.iter().map(Vec::len).sum();
        assert_eq!(plan.cost.rotations as usize, members - groups.len());
        let base = unpacked.cost(&layer, ring).unwrap().bytes();
        eprintln!(
            "{} {layer:?}: pack {} → {} + {} bytes (Cheetah formula {base})",
            params.name(),
            plan.pack,
            out.predicted.bytes_c2s,
            out.predicted.bytes_s2c
        );
    }
}

fn packed_layers() -> Vec<LayerSpec> {
    vec![
        LayerSpec::conv(conv(64, 8, 64, 3, 1, 1, 1), 12),
        LayerSpec::conv(conv(32, 16, 64, 3, 2, 1, 1), 12),
        LayerSpec::conv(conv(96, 4, 96, 3, 1, 1, 96), 12),
        LayerSpec::fc(512, 100, 12),
        LayerSpec::conv(conv(16, 8, 12, 3, 1, 1, 1), 12),
    ]
}

#[test]
#[ignore = "packed responses on every distinct ResNet-20 / MobileNetV2-32 shape: minutes"]
fn cifar_shapes_packed() {
    use linear::CheetahConfig;
    let ring = Ring::new(37).unwrap();
    let packed = Cheetah::new(CheetahConfig {
        bandwidth_bytes_per_s: 1_000_000,
        ..CheetahConfig::default()
    });
    let mut layers = shapes::distinct(&shapes::resnet_cifar(20, 12));
    layers.extend(shapes::distinct(&shapes::mobilenet_v2(32, 10, 12)));
    for (i, (name, layer)) in layers.iter().enumerate() {
        let out = check_layer(&packed, layer, ring, 100 + i as u64);
        let plan = packed.plan(layer, ring).unwrap();
        eprintln!(
            "{name}: pack {} · {} bytes exact",
            plan.pack,
            out.predicted.bytes()
        );
    }
}

mod random_shapes {
    use super::*;
    use linear::CheetahConfig;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 8, .. ProptestConfig::default() })]
        /// The full protocol (default and bandwidth-bound plans) on random conv shapes, strides,
        /// paddings and groups: exact outputs and exact byte predictions.
        #[test]
        fn random_conv_through_the_protocol(
            g in 1usize..=4, cpg in 1usize..=8, mpg in 1usize..=8, h in 1usize..=20, k in 1usize..=5,
            stride in 1usize..=3, padding in 0usize..=2, packed in any::<bool>(), seed in any::<u64>(),
        ) {
            let k = k.min(h + 2 * padding);
            let layer = LayerSpec::conv(conv(g * cpg, h, g * mpg, k, stride, padding, g), 10);
            let cfg = if packed {
                CheetahConfig {
                    bandwidth_bytes_per_s: 100_000,
                    params: Some(if seed % 2 == 0 {
                        linear::HeParamsId::N8192Q180P38
                    } else {
                        linear::HeParamsId::N8192Q120P60
                    }),
                    ..CheetahConfig::default()
                }
            } else {
                CheetahConfig::default()
            };
            let proto = Cheetah::new(cfg);
            let pack = proto.plan(&layer, Ring::new(37).unwrap()).unwrap().pack;
            eprintln!("{layer:?}: pack {pack}");
            check_layer(&proto, &layer, Ring::new(37).unwrap(), seed);
        }
    }
}

/// Strided convolutions by space-to-depth ([`linear::cheetah::polyphase`]).
mod strided {
    use super::*;
    use linear::{CheetahConfig, LayerShape, Polyphase};
    use proptest::prelude::*;

    fn forced() -> Cheetah {
        Cheetah::new(CheetahConfig {
            polyphase: Polyphase::Force,
            ..CheetahConfig::default()
        })
    }

    fn strided(layers: Vec<(String, LayerSpec)>) -> Vec<(String, LayerSpec)> {
        shapes::distinct(&layers)
            .into_iter()
            .filter(|(_, l)| matches!(l.shape, LayerShape::Conv2d(c) if c.stride > 1))
            .collect()
    }

    /// Every strided conv of the model, with the rewrite forced and as chosen by the planner:
    /// exact outputs, predicted bytes equal to the channel's.
    fn check_strided(name: &str, layers: Vec<(String, LayerSpec)>) {
        let ring = Ring::new(37).unwrap();
        let layers = strided(layers);
        assert!(!layers.is_empty(), "{name}: no strided conv");
        let (auto, off) = (
            Cheetah::default(),
            Cheetah::new(CheetahConfig {
                polyphase: Polyphase::Off,
                ..CheetahConfig::default()
            }),
        );
        for (i, (lname, layer)) in layers.iter().enumerate() {
            let fp = forced().plan(layer, ring).unwrap();
            assert!(fp.polyphase.is_some(), "{lname}: rewrite not applied");
            let out = check_layer(&forced(), layer, ring, 300 + i as u64);
            let ap = auto.plan(layer, ring).unwrap();
            if ap.polyphase.is_some() {
                check_layer(&auto, layer, ring, 400 + i as u64);
            }
            eprintln!(
                "{name} {lname}: forced {} bytes, planner {} ({}), direct {} bytes",
                out.predicted.bytes(),
                ap.cost.bytes(),
                if ap.polyphase.is_some() {
                    "polyphase"
                } else {
                    "direct"
                },
                off.cost(layer, ring).unwrap().bytes()
            );
        }
    }

    #[test]
    fn resnet_cifar_strided() {
        for depth in [20, 32, 56] {
            check_strided(&format!("resnet{depth}"), shapes::resnet_cifar(depth, 13));
        }
    }

    #[test]
    fn resnet18_64_strided() {
        check_strided("resnet18-64", shapes::resnet18(64, 200, 12));
    }

    #[test]
    fn mobilenet_v2_32_strided() {
        check_strided("mobilenetv2-32", shapes::mobilenet_v2(32, 10, 12));
    }

    #[test]
    #[ignore = "ImageNet-size layers: minutes; run with --ignored"]
    fn resnet18_224_strided() {
        check_strided("resnet18-224", shapes::resnet18(224, 1000, 12));
    }

    #[test]
    #[ignore = "ImageNet-size layers: minutes; run with --ignored"]
    fn mobilenet_v2_224_strided() {
        check_strided("mobilenetv2-224", shapes::mobilenet_v2(224, 1000, 12));
    }

    /// The planner takes the faster of the direct and the rewritten plan; on ResNet-18 (224) it
    /// takes the rewrite for the 7×7 stride-2 conv1 and the 1×1 stride-2 downsample convs (one
    /// phase of four).
    #[test]
    fn planner_chooses_polyphase_where_cheaper() {
        let ring = Ring::new(37).unwrap();
        let auto = Cheetah::default();
        let off = Cheetah::new(CheetahConfig {
            polyphase: Polyphase::Off,
            ..CheetahConfig::default()
        });
        let bw = auto.config.bandwidth_bytes_per_s as f64;
        for (name, layer) in strided(shapes::resnet_cifar(20, 12))
            .into_iter()
            .chain(strided(shapes::resnet18(224, 1000, 12)))
        {
            let (a, d, f) = (
                auto.plan(&layer, ring).unwrap(),
                off.plan(&layer, ring).unwrap(),
                forced().plan(&layer, ring).unwrap(),
            );
            let t =
                |p: &linear::CheetahPlan| linear::cheetah::estimated_seconds(&p.cost, p.params, bw);
            // The chosen plan is the faster of the direct and the rewritten one.
            assert!(t(&a) <= t(&d) && t(&a) <= t(&f), "{name}");
            assert_eq!(a.polyphase.is_some(), t(&f) < t(&d), "{name}");
        }
        // ResNet-18 (224): conv1 (7×7) and the 1×1 downsample convs.
        for (name, layer) in strided(shapes::resnet18(224, 1000, 12)) {
            if name == "conv1" || name.ends_with("downsample") {
                let (a, d) = (
                    auto.plan(&layer, ring).unwrap(),
                    off.plan(&layer, ring).unwrap(),
                );
                assert!(a.polyphase.is_some(), "{name}: rewrite not chosen");
                assert!(a.cost.bytes() < d.cost.bytes(), "{name}");
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 10, .. ProptestConfig::default() })]
        /// Random stride-2/3 convs, kernels 1–7, paddings, groups, with the rewrite forced and as
        /// planned: exact outputs and exact byte predictions.
        #[test]
        fn random_strided_conv(
            g in 1usize..=3, cpg in 1usize..=6, mpg in 1usize..=6, h in 1usize..=20,
            k in 1usize..=7, stride in 2usize..=3, padding in 0usize..=3, seed in any::<u64>(),
        ) {
            let k = k.min(h + 2 * padding);
            let layer = LayerSpec::conv(common::conv(g * cpg, h, g * mpg, k, stride, padding, g), 10);
            let ring = Ring::new(37).unwrap();
            check_layer(&forced(), &layer, ring, seed);
            check_layer(&Cheetah::default(), &layer, ring, seed ^ 1);
        }
    }
}

/// Truncated queries ([`linear::cheetah::Layout::query_support`]): the server's fill of c₀
/// outside each input polynomial's support S_i does not matter, and S_i is not "everything".
mod truncated {
    use super::*;
    use common::{random_weights, run};
    use linear::{CheetahConfig, HeParamsId, OutsideSupport};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha20Rng;

    fn layers() -> Vec<LayerSpec> {
        vec![
            // ResNet-20 conv1 and FC, a strided conv (direct), a grouped conv, a multi-tile conv.
            LayerSpec::conv(conv(3, 32, 16, 3, 1, 1, 1), 12),
            LayerSpec::fc(64, 10, 12),
            LayerSpec::conv(conv(8, 15, 8, 3, 2, 1, 1), 12),
            LayerSpec::conv(conv(8, 9, 8, 3, 1, 1, 4), 12),
            LayerSpec::conv(conv(16, 40, 4, 3, 1, 1, 1), 12),
        ]
    }

    fn with(fill: OutsideSupport, params: Option<HeParamsId>, bw: u64) -> Cheetah {
        Cheetah::new(CheetahConfig {
            outside_support: fill,
            params,
            bandwidth_bytes_per_s: bw,
            polyphase: linear::Polyphase::Off,
            ..CheetahConfig::default()
        })
    }

    /// Uniform values outside S_i (instead of zeros): every output still exact, bytes as
    /// predicted — unpacked on N4096Q109 and packed on N8192Q120P60.
    #[test]
    fn random_fill_outside_the_support_is_exact() {
        let ring = Ring::new(37).unwrap();
        for (i, layer) in layers().iter().enumerate() {
            for (params, bw) in [
                (Some(HeParamsId::N4096Q109), 50_000_000),
                (Some(HeParamsId::N8192Q120P60), 100_000),
            ] {
                let proto = with(
                    OutsideSupport::RandomForTests {
                        seed: 77 + i as u64,
                    },
                    params,
                    bw,
                );
                let plan = proto.plan(layer, ring).unwrap();
                assert!(plan.truncated_query);
                let full = plan.layout.input_cts() * plan.layout.n();
                let sent: usize = plan.layout.query_support_lens().iter().sum();
                assert!(sent < full, "{layer:?}: nothing truncated");
                check_layer(&proto, layer, ring, 500 + i as u64);
            }
        }
    }

    /// A uniform value in place of the received c₀ at one position of S_0 (its first, middle
    /// and last) breaks exactness: every position of S_i reaches some output.
    #[test]
    fn replacing_one_support_position_breaks_exactness() {
        let ring = Ring::new(37).unwrap();
        for (i, layer) in layers().iter().enumerate() {
            let plan = with(OutsideSupport::Zero, None, 50_000_000)
                .plan(layer, ring)
                .unwrap();
            let s0 = plan.layout.query_support(0).len();
            let mut rng = ChaCha20Rng::seed_from_u64(600 + i as u64);
            let w = random_weights(layer, ring, &mut rng);
            let x: Vec<u64> = (0..layer.input_len())
                .map(|_| ring.reduce(rng.gen()))
                .collect();
            for nth in [0, s0 / 2, s0 - 1] {
                let proto = with(
                    OutsideSupport::RandomAndOneReplacedForTests {
                        seed: 5,
                        poly: 0,
                        nth,
                    },
                    None,
                    50_000_000,
                );
                let out = run(&proto, layer, ring, &w, &x, 700 + i as u64);
                let wrong = out
                    .y
                    .iter()
                    .zip(&out.expected)
                    .filter(|(a, b)| a != b)
                    .count();
                assert!(wrong > 0, "{layer:?}: position {nth} of S_0 not needed");
            }
        }
    }

    /// The query is the only message that shrinks: the response bytes equal those of the same
    /// plan without truncation, and the query is 33 + Σ_i bytes(|S_i|).
    #[test]
    fn only_the_query_shrinks() {
        let ring = Ring::new(37).unwrap();
        for layer in layers() {
            let on = with(OutsideSupport::Zero, None, 50_000_000)
                .plan(&layer, ring)
                .unwrap();
            let cost = linear::cheetah::layout_cost(
                on.params,
                &on.layout,
                &on.noise,
                on.query_drop_bits,
                on.pack,
                false,
            )
            .unwrap();
            assert_eq!(cost.bytes_s2c, on.cost.bytes_s2c);
            let q: usize = on
                .layout
                .query_support_lens()
                .into_iter()
                .map(|c| {
                    linear::cheetah::query::query_bytes(on.params, on.query_drop_bits, c).unwrap()
                })
                .sum();
            assert_eq!(on.cost.bytes_c2s, 33 + q as u64);
            assert!(on.cost.bytes_c2s < cost.bytes_c2s, "{layer:?}");
        }
    }
}

/// `weight_bytes` counts exactly the weight plaintexts the server encodes: the keys for which the
/// layout yields a polynomial (zero-overlap keys of grouped convs yield none), each an NTT-form
/// polynomial over every prime of the set.
#[test]
fn weight_bytes_count_the_encoded_plaintexts() {
    let ring = Ring::new(37).unwrap();
    let mut layers: Vec<LayerSpec> = shapes::fuzz_layers().into_iter().map(|(_, l)| l).collect();
    layers.extend(
        shapes::mobilenet_v2(32, 10, 8)
            .into_iter()
            .map(|(_, l)| l)
            .take(12),
    );
    for layer in layers {
        let p = cheetah();
        let plan = p.plan(&layer, ring).unwrap();
        let n_weights = match layer.shape {
            linear::LayerShape::Conv2d(c) => c.m * c.c_per_group() * c.kh * c.kw,
            linear::LayerShape::Fc(f) => f.inputs * f.outputs,
            linear::LayerShape::Scale(s) => s.c,
            linear::LayerShape::MatMul(m) => m.inputs * m.outputs,
        };
        let w = vec![1u64; n_weights];
        let encoded = (0..plan.layout.weight_keys())
            .filter(|&k| plan.layout.encode_weights(ring, &w, k).is_some())
            .count() as u64;
        let words = plan.params.n() as u64 * plan.params.prime_bits().len() as u64;
        assert_eq!(
            p.weight_bytes(&layer, ring).unwrap(),
            encoded * words * 8,
            "{layer:?}"
        );
    }
}
