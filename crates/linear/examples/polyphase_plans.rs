//! Direct vs space-to-depth plans of every strided conv of a built-in model: parameters, layout,
//! bytes, estimated seconds, and the planner's choice. `cargo run --release --example
//! polyphase_plans -p privinfer-linear -- resnet20`.
use linear::{
    cheetah::estimated_seconds, shapes, Cheetah, CheetahConfig, LayerShape, Polyphase, Ring,
};

fn main() {
    let model = std::env::args().nth(1).unwrap_or_else(|| "resnet20".into());
    let ring = Ring::new(37).unwrap();
    let with = |polyphase| {
        Cheetah::new(CheetahConfig {
            polyphase,
            ..CheetahConfig::default()
        })
    };
    let (off, force, auto) = (
        with(Polyphase::Off),
        with(Polyphase::Force),
        with(Polyphase::Auto),
    );
    let bw = auto.config.bandwidth_bytes_per_s as f64;
    for (name, layer) in shapes::distinct(&shapes::by_name(&model, 12).expect("model")) {
        if !matches!(layer.shape, LayerShape::Conv2d(c) if c.stride > 1) {
            continue;
        }
        let d = off.plan(&layer, ring).unwrap();
        let f = force.plan(&layer, ring).unwrap();
        let a = auto.plan(&layer, ring).unwrap();
        let show = |p: &linear::CheetahPlan| {
            format!(
                "{} pack {} {} B ({} in, {} out cts, {} ntts, {} ks) est {:.1} ms",
                p.params.name(),
                p.pack,
                p.cost.bytes(),
                p.cost.ciphertexts_c2s,
                p.cost.ciphertexts_s2c,
                p.cost.ntts,
                p.cost.rotations,
                estimated_seconds(&p.cost, p.params, bw) * 1e3
            )
        };
        println!(
            "{name}: direct {} | polyphase {} | chosen {}",
            show(&d),
            show(&f),
            if a.polyphase.is_some() {
                "polyphase"
            } else {
                "direct"
            }
        );
    }
}
