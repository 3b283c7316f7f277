//! Prints, per layer of a built-in model, the chosen parameter set, packing, flooding width and
//! response moduli and query drop: `cargo run --example noise_table -p privinfer-linear --
//! resnet20 12 [plan-mbps]`.
use linear::{shapes, Cheetah, Ring};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let model = args.get(1).map(String::as_str).unwrap_or("resnet20");
    let wb: u32 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(12);
    let ring = Ring::new(37).unwrap();
    let mbps: f64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(400.0);
    let proto = Cheetah::new(linear::CheetahConfig {
        bandwidth_bytes_per_s: (mbps * 1e6 / 8.0) as u64,
        ..Default::default()
    });
    println!(
        "| layer | params | pack | log2 B_hide | log2 sigma_f | log2 total noise | log2 Q | k | b (c0) | query bits dropped |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for (name, layer) in shapes::distinct(&shapes::by_name(model, wb).expect("model")) {
        match proto.plan(&layer, ring) {
            Ok(p) => println!(
                "| {name} | {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {} | {} | {} |",
                p.params.name(),
                p.pack,
                p.noise.hide_bound.log2(),
                p.noise.flood_sigma.log2(),
                p.noise.total_log2,
                p.params.log_q().unwrap(),
                p.noise.response_bits,
                p.noise.c0_bits,
                p.query_drop_bits
            ),
            Err(e) => println!("| {name} | error: {e} |"),
        }
    }
}
