//! Falcon-style dense packing (`linear::falcon`) through the full protocol: exact against the
//! integer reference, predicted bytes = measured, on depthwise layers of MobileNetV2 and an
//! EfficientNet-like net (5×5), 7×7 kernels, strides 1 and 2, grouped convs, and random shapes.

mod common;

use common::check_layer;
use linear::cheetah::Layout;
use linear::{CheetahConfig, Conv2dSpec, Falcon, HeParamsId, LayerSpec, LinearProtocol, Ring};
use proptest::prelude::*;

fn dw(c: usize, h: usize, k: usize, stride: usize) -> LayerSpec {
    LayerSpec::conv(Conv2dSpec::square(c, h, c, k, stride, k / 2, c), 8)
}

/// Filters per weight polynomial of the plan's dense layout (0: a Cheetah encoding won).
fn dense_k(proto: &Falcon, layer: &LayerSpec, ring: Ring) -> usize {
    match proto.plan(layer, ring).expect("plan").layout {
        Layout::Dense { tiling, .. } => tiling.k,
        _ => 0,
    }
}

#[test]
fn mobilenet_v2_depthwise_layers_are_exact() {
    let ring = Ring::new(37).unwrap();
    let proto = Falcon::new(CheetahConfig::default());
    // Every distinct depthwise shape of MobileNetV2 at 32×32 (CIFAR variant).
    let layers: Vec<LayerSpec> = linear::shapes::distinct(&linear::shapes::mobilenet_v2(32, 10, 8))
        .into_iter()
        .filter(|(n, _)| n.ends_with(".dw"))
        .map(|(_, l)| l)
        .collect();
    assert_eq!(layers.len(), 10);
    let mut ks = Vec::new();
    for (i, l) in layers.iter().enumerate() {
        ks.push(dense_k(&proto, l, ring));
        check_layer(&proto, l, ring, 100 + i as u64);
    }
    // The 8×8 and 4×4 layers pack several filters per product.
    assert!(ks.iter().filter(|&&k| k >= 4).count() >= 3, "{ks:?}");
}

#[test]
fn efficientnet_like_5x5_and_7x7_kernels() {
    let ring = Ring::new(37).unwrap();
    let proto = Falcon::new(CheetahConfig::default());
    for (i, l) in [
        dw(144, 8, 5, 2),
        dw(240, 4, 5, 1),
        dw(96, 16, 5, 1),
        dw(32, 8, 7, 1),
        dw(48, 7, 7, 2),
    ]
    .iter()
    .enumerate()
    {
        check_layer(&proto, l, ring, 200 + i as u64);
    }
}

#[test]
fn grouped_and_packed_on_every_packing_set() {
    let ring = Ring::new(37).unwrap();
    let grouped = LayerSpec::conv(Conv2dSpec::square(64, 8, 96, 3, 1, 1, 16), 8);
    for params in [HeParamsId::N8192Q120P60, HeParamsId::N8192Q180P38] {
        for bw in [50_000_000, 100_000] {
            let proto = Falcon::new(CheetahConfig {
                params: Some(params),
                bandwidth_bytes_per_s: bw,
                ..CheetahConfig::default()
            });
            check_layer(&proto, &grouped, ring, bw);
            check_layer(&proto, &dw(256, 4, 3, 1), ring, bw + 1);
        }
    }
}

/// A per-channel scale is a depthwise 1×1 convolution: falcon packs it too.
#[test]
fn scales_are_exact() {
    let ring = Ring::new(37).unwrap();
    let proto = Falcon::default();
    for (i, l) in [
        LayerSpec::scale(96, 8, 8, 8),
        LayerSpec::scale(640, 2, 2, 8),
    ]
    .iter()
    .enumerate()
    {
        check_layer(&proto, l, ring, 400 + i as u64);
    }
}

#[test]
fn other_layers_are_not_applicable() {
    let ring = Ring::new(37).unwrap();
    let proto = Falcon::default();
    let dense_conv = LayerSpec::conv(Conv2dSpec::square(16, 8, 16, 3, 1, 1, 1), 8);
    assert!(proto.cost(&dense_conv, ring).is_err());
    assert!(proto.cost(&LayerSpec::fc(64, 10, 8), ring).is_err());
    assert!(proto.cost(&dw(16, 8, 3, 1), ring).is_ok());
}

/// With the byte cap, a falcon plan never sends more than Cheetah's plan of the layer, and
/// still runs exactly.
#[test]
fn byte_cap_holds() {
    let ring = Ring::new(37).unwrap();
    let capped = Falcon::new(CheetahConfig {
        dense_bytes: linear::DenseBytes::AtMostCheetah,
        ..CheetahConfig::default()
    });
    let free = Falcon::default();
    let cheetah = linear::Cheetah::default();
    let mut freer = 0;
    for (i, l) in [dw(960, 4, 3, 1), dw(384, 8, 3, 1), dw(192, 16, 3, 1)]
        .iter()
        .enumerate()
    {
        let c = cheetah.cost(l, ring).unwrap().bytes();
        assert!(capped.cost(l, ring).unwrap().bytes() <= c);
        freer += usize::from(free.cost(l, ring).unwrap().bytes() > c);
        check_layer(&capped, l, ring, 300 + i as u64);
    }
    // At the default bandwidth the uncapped planner spends bytes for time on these layers.
    assert!(freer > 0);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 10, .. ProptestConfig::default() })]
    /// Random grouped/depthwise shapes, kernels, strides and paddings: exact and bytes as predicted.
    #[test]
    fn random_grouped_convs(
        g in 2usize..=40, cpg in 1usize..=3, mpg in 1usize..=3, h in 1usize..=14, k in 1usize..=7,
        stride in 1usize..=2, padding in 0usize..=3, seed in any::<u64>(),
    ) {
        let k = k.min(h + 2 * padding);
        let layer = LayerSpec::conv(common::conv(g * cpg, h, g * mpg, k, stride, padding, g), 8);
        let ring = Ring::new(37).unwrap();
        let proto = Falcon::default();
        if proto.cost(&layer, ring).is_ok() {
            check_layer(&proto, &layer, ring, seed);
        } else {
            // Only padding ≥ kernel has no dense tiling (space-to-depth removes it when strided).
            prop_assert!(padding >= k && stride == 1);
        }
    }
}
