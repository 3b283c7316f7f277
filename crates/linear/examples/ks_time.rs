//! Times one automorphism + hybrid key switch and NTTs on the packing set (planner constants):
//! `cargo run --example ks_time -p privinfer-linear`.
use rand::SeedableRng;
fn main() {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
    let p = rlwe::Params::new(rlwe::presets::bfv_n8192_q180_t2l(37).unwrap()).unwrap();
    let sk = rlwe::SecretKey::generate(&p, &mut rng);
    let gk = rlwe::GaloisKeys::generate(&sk, &[8193], &mut rng).unwrap();
    let ks = p.key_switcher().unwrap();
    let mut c = math::sample::uniform_poly(p.ctx_q(), 3, math::Representation::Ntt, &mut rng);
    let t = std::time::Instant::now();
    for _ in 0..20 {
        let a = c.automorphism(8193).unwrap();
        let _ = ks.switch(&a, gk.get(8193).unwrap()).unwrap();
    }
    println!("automorphism+switch: {:?}", t.elapsed() / 20);
    let t = std::time::Instant::now();
    for _ in 0..20 {
        let _ = c.automorphism(8193).unwrap();
    }
    println!("automorphism: {:?}", t.elapsed() / 20);
    let t = std::time::Instant::now();
    for _ in 0..100 {
        c.ntt_inverse();
        c.ntt_forward();
    }
    println!(
        "ntt fwd+inv x3 primes (N=8192, 60-bit): {:?}",
        t.elapsed() / 100
    );
    let ctx = linear::HeParamsId::N4096Q109.context().unwrap();
    let mut c = math::sample::uniform_poly(&ctx, 2, math::Representation::Ntt, &mut rng);
    let t = std::time::Instant::now();
    for _ in 0..100 {
        c.ntt_inverse();
        c.ntt_forward();
    }
    println!(
        "ntt fwd+inv x2 primes (N=4096, 55-bit): {:?}",
        t.elapsed() / 100
    );
}
