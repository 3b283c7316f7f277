//! Predicted cost of block-circulant FC layers by `linear::Circulant` (Cheetah's convolution on
//! the circularly extended input) against the dense FC by Cheetah, at the default plan.
//!
//!     cargo run --release -p privinfer-linear --example circulant_costs

use linear::{Cheetah, Circulant, LayerSpec, LinearProtocol, Ring};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let ring = Ring::new(37)?;
    println!("| in × out | b | dense: KB / ct×pt / NTTs / est ms | circulant: KB / ct×pt / NTTs / est ms |");
    println!("|---|---|---|---|");
    for (n, m) in [(512, 512), (1024, 1024), (2048, 512)] {
        let dense = LayerSpec::fc(n, m, 8);
        let cd = Cheetah::default().cost(&dense, ring)?;
        let td = Cheetah::default().estimated_seconds(&dense, ring, 50e6)?;
        for b in [4, 16, 64] {
            let circ = LayerSpec::circulant_fc(n, m, b, 8);
            let cc = Circulant::default().cost(&circ, ring)?;
            let tc = Circulant::default().estimated_seconds(&circ, ring, 50e6)?;
            println!(
                "| {n} × {m} | {b} | {} / {} / {} / {:.1} | {} / {} / {} / {:.1} |",
                cd.bytes() / 1000,
                cd.ct_pt_mults,
                cd.ntts,
                td * 1e3,
                cc.bytes() / 1000,
                cc.ct_pt_mults,
                cc.ntts,
                tc * 1e3
            );
        }
    }
    Ok(())
}
