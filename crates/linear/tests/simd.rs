//! The slot-encoded matrix–vector product (diagonal method, BSGS, hoisted baby steps) against
//! plaintext arithmetic mod t, with its rotation and product counts.

use std::sync::Arc;

use linear::simd::{baby_steps, MatVec};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use rlwe::{presets, BatchEncoder, Evaluator, GaloisKeys, Params, SecretKey};

fn check(p: &Arc<Params>, n_out: usize, n_in: usize, seed: u64) {
    let mut r = ChaCha20Rng::seed_from_u64(seed);
    let t = p.t().value();
    let half = p.n() / 2;
    let enc = BatchEncoder::new(p).unwrap();
    let sk = SecretKey::generate(p, &mut r);
    let ev = Evaluator::new(p);
    let w: Vec<u64> = (0..n_out * n_in).map(|_| r.gen_range(0..t)).collect();
    let x: Vec<u64> = (0..n_in).map(|_| r.gen_range(0..t)).collect();
    // x repeated with period n_in over both rows.
    let slots: Vec<u64> = (0..2 * half).map(|s| x[s % n_in]).collect();
    let ct = sk.encrypt(&enc.encode(&slots).unwrap(), &mut r).unwrap();
    let mv = MatVec::new(&enc, &w, n_out, n_in, ct.num_moduli()).unwrap();
    let gk = GaloisKeys::for_rotations(&sk, &mv.rotation_steps(), false, &mut r).unwrap();
    let y = mv.apply(&ev, &ct, &gk).unwrap();
    let got = enc.decode(&sk.decrypt(&y).unwrap()).unwrap();
    for i in 0..n_out {
        let want = (0..n_in).fold(0u128, |acc, j| {
            (acc + w[i * n_in + j] as u128 * x[j] as u128) % t as u128
        }) as u64;
        assert_eq!(got[i], want, "row {i} of {n_out}x{n_in}");
    }
    // Rotations: (B − 1) hoisted baby steps + (G − 1) giant steps, with B = the power of two
    // nearest √n_in from above (Halevi–Shoup BSGS count), and one product per diagonal.
    let b = baby_steps(n_in).min(n_in);
    assert_eq!(mv.rotations(), (b - 1) + (n_in.div_ceil(b) - 1));
    assert_eq!(mv.rotation_steps().len(), mv.rotations());
    assert_eq!(mv.products(), n_in);
}

#[test]
fn matvec_matches_plaintext_products() {
    let p = Params::new(presets::insecure_test_only(10, 65537).unwrap()).unwrap();
    for (k, (n_out, n_in)) in [(1, 1), (3, 4), (8, 8), (10, 64), (64, 64), (5, 512)]
        .into_iter()
        .enumerate()
    {
        check(&p, n_out, n_in, 40 + k as u64);
    }
}

#[test]
fn matvec_on_the_secure_simd_preset() {
    // N = 8192, a 40-bit batching prime: ResNet-20's FC shape (10 × 64).
    let p = Params::new(presets::bfv_simd_n8192_q218(40).unwrap()).unwrap();
    check(&p, 10, 64, 7);
}

#[test]
fn bad_shapes_are_refused() {
    let p = Params::new(presets::insecure_test_only(10, 65537).unwrap()).unwrap();
    let enc = BatchEncoder::new(&p).unwrap();
    assert!(
        MatVec::new(&enc, &[0; 11], 3, 4, 3).is_err(),
        "too few weights"
    );
    assert!(MatVec::new(&enc, &[0; 12], 3, 4, 3).is_ok());
    assert!(
        MatVec::new(&enc, &[0; 18], 3, 6, 3).is_err(),
        "n_in not a power of two"
    );
    assert!(
        MatVec::new(&enc, &[0; 20], 5, 4, 3).is_err(),
        "n_out > n_in"
    );
    assert!(
        MatVec::new(&enc, &vec![0; 1024], 1, 1024, 3).is_err(),
        "n_in > N/2"
    );
}
