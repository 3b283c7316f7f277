//! The SIMD (slot-encoded) layer protocol end to end: shares over Z_t reconstruct to the integer
//! oracle exactly, and the cost model's bytes equal the bytes counted on the channel.

mod common;

use common::{check_layer_field, conv};
use linear::{shapes, LayerSpec, Ring, Simd};

#[test]
fn small_conv_fc_and_scale() {
    let ring = Ring::new(37).unwrap();
    let p = Simd::default();
    for (i, layer) in [
        LayerSpec::conv(conv(3, 8, 4, 3, 1, 1, 1), 8),
        LayerSpec::conv(conv(5, 7, 6, 3, 2, 1, 1), 8),
        LayerSpec::conv(conv(8, 6, 8, 3, 1, 1, 8), 8),
        LayerSpec::fc(100, 10, 8),
        LayerSpec::fc(10, 40, 8),
        LayerSpec::scale(4, 5, 5, 8),
    ]
    .iter()
    .enumerate()
    {
        let out = check_layer_field(&p, layer, ring, i as u64);
        eprintln!(
            "{layer:?}: exact, {} + {} bytes, {} rotations",
            out.predicted.bytes_c2s, out.predicted.bytes_s2c, out.predicted.rotations
        );
    }
}

#[test]
fn resnet20_shapes() {
    let ring = Ring::new(37).unwrap();
    let p = Simd::default();
    let layers = shapes::by_name("resnet20", 8).unwrap();
    for (i, (name, layer)) in shapes::distinct(&layers).iter().enumerate() {
        let t = std::time::Instant::now();
        let out = check_layer_field(&p, layer, ring, i as u64);
        eprintln!(
            "resnet20 {name}: {} outputs exact, {} + {} bytes, {} rot, {:.2?}",
            out.y.len(),
            out.predicted.bytes_c2s,
            out.predicted.bytes_s2c,
            out.predicted.rotations,
            t.elapsed()
        );
    }
}
