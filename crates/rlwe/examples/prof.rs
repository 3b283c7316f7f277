//! Rough timing of the parts of ct × ct and rotation (profiling aid).
use rand::SeedableRng;
use rlwe::*;
use std::time::Instant;

/// Process CPU time (user + system) in microseconds, from /proc/self/stat.
fn cpu_us() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let f: Vec<&str> = s
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks: f64 = f.get(11).and_then(|x| x.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|x| x.parse().ok()).unwrap_or(0.0);
    ticks * 1e4 // 100 ticks per second
}

/// Best wall time of 15 runs, and mean CPU time over the same runs (robust to a loaded machine).
fn best(mut f: impl FnMut()) -> String {
    let mut b = f64::MAX;
    let c0 = cpu_us();
    let reps = 15;
    for _ in 0..reps {
        let t = Instant::now();
        f();
        b = b.min(t.elapsed().as_secs_f64() * 1e6);
    }
    format!("{b:.0} (cpu {:.0})", (cpu_us() - c0) / reps as f64)
}

fn main() {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
    let p = Params::new(if std::env::var("N16K").is_ok() {
        presets::bfv_simd_n16384_q438(20).unwrap()
    } else {
        presets::bfv_simd_n8192_q218(20).unwrap()
    })
    .unwrap();
    let sk = SecretKey::generate(&p, &mut rng);
    let rk = RelinKey::generate(&sk, &mut rng).unwrap();
    let gk = GaloisKeys::for_rotations(&sk, &[1], false, &mut rng).unwrap();
    let ev = Evaluator::new(&p);
    let pt = Plaintext::from_unsigned(&p, &[1, 2, 3]).unwrap();
    let ct = sk.encrypt(&pt, &mut rng).unwrap();
    let c3 = ev.mul_no_relin(&ct, &ct).unwrap();
    println!(
        "mul_no_relin {} us",
        best(|| drop(ev.mul_no_relin(&ct, &ct).unwrap()))
    );
    println!(
        "relinearize  {} us",
        best(|| drop(ev.relinearize(&c3, &rk).unwrap()))
    );
    println!(
        "rotate       {} us",
        best(|| drop(ev.rotate_rows(&ct, 1, &gk).unwrap()))
    );
    let ks = p.key_switcher().unwrap();
    let k = gk.get(3).unwrap();
    println!(
        "switch       {} us",
        best(|| drop(ks.switch(&ct.polys()[1], k).unwrap()))
    );
    let c = p.ctx_q().moduli().to_vec();
    let b = math::prime::generate_primes(61, 8192, 4, &[]).unwrap();
    let bm: Vec<math::Modulus> = b.iter().map(|&q| math::Modulus::new(q).unwrap()).collect();
    let conv = math::BaseConverter::new(&c, &bm);
    let input = ct.polys()[0].data().to_vec();
    let mut out = vec![0u64; 4 * 8192];
    println!(
        "conv 4->4 exact {} us",
        best(|| conv.convert(8192, &input, &mut out, math::ConversionMode::Exact))
    );
    let ctx = p.ctx_q().clone();
    println!(
        "expand_seed {} us",
        best(|| drop(math::sample::expand_seed(&ctx, 4, &[1; 32])))
    );
    println!(
        "cbd {} us",
        best(|| drop(math::sample::cbd(8192, 21, &mut rng)))
    );
    let big = Plaintext::from_unsigned(&p, &vec![12345; 8192]).unwrap();
    println!("scaled {} us", best(|| drop(big.scaled(4).unwrap())));
    println!(
        "encrypt {} us",
        best(|| drop(sk.encrypt(&pt, &mut rng).unwrap()))
    );
    let mut r2 = rand_chacha::ChaCha20Rng::seed_from_u64(3);
    let mut buf = vec![0u8; 8192 * 8 * 4];
    println!(
        "chacha20 256KiB {} us",
        best(|| rand_core::RngCore::fill_bytes(&mut r2, &mut buf))
    );
    println!(
        "conv 4->4 approx {} us",
        best(|| conv.convert(8192, &input, &mut out, math::ConversionMode::Approx))
    );
}

#[allow(dead_code)]
fn unused() {}
