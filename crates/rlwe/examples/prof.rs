//! Rough timing of the parts of ct × ct and rotation (profiling aid).
use rand::SeedableRng;
use rlwe::*;
use std::time::Instant;

fn best(mut f: impl FnMut()) -> f64 {
    let mut b = f64::MAX;
    for _ in 0..15 {
        let t = Instant::now();
        f();
        b = b.min(t.elapsed().as_secs_f64() * 1e6);
    }
    b
}

fn main() {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
    let p = Params::new(presets::bfv_simd_n8192_q218(20).unwrap()).unwrap();
    let sk = SecretKey::generate(&p, &mut rng);
    let rk = RelinKey::generate(&sk, &mut rng).unwrap();
    let gk = GaloisKeys::for_rotations(&sk, &[1], false, &mut rng).unwrap();
    let ev = Evaluator::new(&p);
    let pt = Plaintext::from_unsigned(&p, &[1, 2, 3]).unwrap();
    let ct = sk.encrypt(&pt, &mut rng).unwrap();
    let c3 = ev.mul_no_relin(&ct, &ct).unwrap();
    println!(
        "mul_no_relin {:.0} us",
        best(|| drop(ev.mul_no_relin(&ct, &ct).unwrap()))
    );
    println!(
        "relinearize  {:.0} us",
        best(|| drop(ev.relinearize(&c3, &rk).unwrap()))
    );
    println!(
        "rotate       {:.0} us",
        best(|| drop(ev.rotate_rows(&ct, 1, &gk).unwrap()))
    );
    let ks = p.key_switcher().unwrap();
    let k = gk.get(3).unwrap();
    println!(
        "switch       {:.0} us",
        best(|| drop(ks.switch(&ct.polys()[1], k).unwrap()))
    );
    let c = p.ctx_q().moduli().to_vec();
    let b = math::prime::generate_primes(61, 8192, 4, &[]).unwrap();
    let bm: Vec<math::Modulus> = b.iter().map(|&q| math::Modulus::new(q).unwrap()).collect();
    let conv = math::BaseConverter::new(&c, &bm);
    let input = ct.polys()[0].data().to_vec();
    let mut out = vec![0u64; 4 * 8192];
    println!(
        "conv 4->4 exact {:.0} us",
        best(|| conv.convert(8192, &input, &mut out, math::ConversionMode::Exact))
    );
    let ctx = p.ctx_q().clone();
    println!(
        "expand_seed {:.0} us",
        best(|| drop(math::sample::expand_seed(&ctx, 4, &[1; 32])))
    );
    println!(
        "cbd {:.0} us",
        best(|| drop(math::sample::cbd(8192, 21, &mut rng)))
    );
    let big = Plaintext::from_unsigned(&p, &vec![12345; 8192]).unwrap();
    println!("scaled {:.0} us", best(|| drop(big.scaled(4).unwrap())));
    println!(
        "encrypt {:.0} us",
        best(|| drop(sk.encrypt(&pt, &mut rng).unwrap()))
    );
    let mut r2 = rand_chacha::ChaCha20Rng::seed_from_u64(3);
    let mut buf = vec![0u8; 8192 * 8 * 4];
    println!(
        "chacha20 256KiB {:.0} us",
        best(|| rand_core::RngCore::fill_bytes(&mut r2, &mut buf))
    );
    println!(
        "conv 4->4 approx {:.0} us",
        best(|| conv.convert(8192, &input, &mut out, math::ConversionMode::Approx))
    );
}

#[allow(dead_code)]
fn unused() {}
