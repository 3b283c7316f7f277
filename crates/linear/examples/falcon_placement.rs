//! Dense-packing placements on S residue classes (`linear::falcon::placement`): filters per
//! product (outputs of that many channels) and classes the query must carry, for the grid used
//! by `linear::falcon::DenseTiling`, a greedy placement and the exhaustive optimum.
//!
//!     cargo run --release -p privinfer-linear --example falcon_placement

use linear::falcon::placement::{exhaustive, greedy, grid};

fn main() {
    if std::env::args().nth(1).as_deref() == Some("searched") {
        for (s, m, k) in [
            (16, 8, 4),
            (16, 8, 2),
            (32, 16, 4),
            (8, 4, 2),
            (16, 12, 2),
            (32, 24, 4),
        ] {
            println!(
                "S={s} m={m} k={k}: {:?}",
                linear::falcon::placement::searched(s, m, k).map(|p| p.reads)
            );
        }
        return;
    }
    println!("| S | m | grid k / read | greedy k / read | exhaustive k / read | exhaustive units, residues |");
    println!("|---|---|---|---|---|---|");
    for s in [8usize, 16] {
        for m in 2..=8usize.min(s) {
            let (g, gr, ex) = (grid(s, m), greedy(s, m), exhaustive(s, m));
            println!(
                "| {s} | {m} | {} / {} | {} / {} | {} / {} | {:?}, {:?} |",
                g.filters.len(),
                g.classes_read(),
                gr.filters.len(),
                gr.classes_read(),
                ex.filters.len(),
                ex.classes_read(),
                ex.units,
                ex.filters,
            );
        }
    }
}
