//! Time of one encoding of 2^15 complex slots at the 128-bit N = 2^16 preset of FHE mode, at
//! levels 2, 6 and 10 (3, 7 and 11 primes): the cost behind every plaintext product of FHE
//! mode's convolutions. Run with `RAYON_NUM_THREADS=1` for one thread.
//!
//! `cargo run --release -p privinfer-ckks --example encode_time`

use ckks::{presets, Complex, Params};
use std::time::Instant;

fn main() {
    let p = Params::new(presets::n16_logqp1545_h192_h32()).expect("the preset is valid");
    let n = p.n() / 2;
    let v: Vec<Complex> = (0..n)
        .map(|i| {
            Complex::new(
                ((i * 7919) % 1000) as f64 / 1000.0 - 0.5,
                ((i * 104_729) % 997) as f64 / 997.0 - 0.5,
            )
        })
        .collect();
    for level in [2usize, 6, 10] {
        let reps = 40;
        let _ = p.encode(&v, n, level, 2f64.powi(40)).expect("encodes");
        let t = Instant::now();
        for _ in 0..reps {
            let _ = p.encode(&v, n, level, 2f64.powi(40)).expect("encodes");
        }
        let ms = t.elapsed().as_secs_f64() / reps as f64 * 1e3;
        println!("level {level}: {ms:.2} ms");
    }
}
