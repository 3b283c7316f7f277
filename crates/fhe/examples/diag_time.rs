//! Time to build one ConvD diagonal (`fhe::diag::diagonal`) at 2^15 slots on the shape of
//! ResNet-18's first stage at 64×64 (64 → 64 channels, 3×3, one copy, eight channels per
//! ciphertext): the per-slot work behind each plaintext product of ConvD, before its encoding.
//!
//! `cargo run --release -p privinfer-fhe --example diag_time`

use fhe::{diag, Grid, Layout};
use std::time::Instant;

fn main() {
    let n = 1 << 15;
    let (c, o, hw) = (64usize, 64usize, 64usize);
    let cv = nn::ir::Conv2d {
        in_shape: [c, hw, hw],
        out_shape: [o, hw, hw],
        kernel: [3, 3],
        stride: [1, 1],
        pads: [1; 4],
        groups: 1,
        weight: (0..o * c * 9).map(|i| 1.0 + (i % 7) as f32).collect(),
        bias: vec![0.0; o],
    };
    let lin = Layout::dense_p(c, Grid { h: hw, w: hw, k: 1 }, n).expect("fits");
    let plan = diag::DiagPlan::new(&cv, &lin, &lin, n);
    let offsets = &plan.offsets[0][0];
    let t = Instant::now();
    let table = diag::SlotTable::new(&lin, 0, n);
    let table_ms = t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    let mut check = 0.0;
    for &d in offsets {
        let v = diag::diagonal(&cv, &lin, (&table, &table), d, d - d % plan.step);
        check += v.iter().sum::<f64>();
    }
    let per = t.elapsed().as_secs_f64() * 1e3 / offsets.len() as f64;
    println!(
        "{} diagonals of one part pair: {per:.3} ms each, slot table {table_ms:.2} ms (sum {check})",
        offsets.len()
    );
}
