use math::{prime::generate_primes, sample::uniform_poly, Representation, RnsContext};
use rand::SeedableRng;
use std::time::Instant;
fn main() {
    let n = 8192;
    let mut ps = generate_primes(43, n, 2, &[]).unwrap();
    ps.extend(generate_primes(44, n, 2, &[]).unwrap());
    let ctx = RnsContext::new(n, &ps).unwrap();
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
    let p = uniform_poly(&ctx, 4, Representation::Ntt, &mut rng);
    for _ in 0..3 {
        let mut best = u128::MAX;
        for _ in 0..200 {
            let mut q = p.clone();
            let t = Instant::now();
            q.rescale_last().unwrap();
            best = best.min(t.elapsed().as_nanos());
        }
        let mut best2 = u128::MAX;
        let mut q = p.clone();
        for _ in 0..200 {
            let t = Instant::now();
            q.ntt_inverse();
            q.ntt_forward();
            best2 = best2.min(t.elapsed().as_nanos());
        }
        println!("rescale (1 poly) min {best} ns; 4-prime inv+fwd {best2} ns");
    }
}
