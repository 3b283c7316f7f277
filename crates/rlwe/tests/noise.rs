//! Measured noise after each operation against the bounds of `rlwe::noise`
//! (documented in docs/params.md): the measured `log2 ‖v‖_∞` must lie in
//! `[bound − 2.5, bound]` bits, i.e. within a factor 2^2.5 ≈ 5.7 below the bound.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use rlwe::*;
use std::sync::Arc;

fn check(name: &str, measured: f64, bound: f64) {
    let lb = bound.log2();
    println!("{name:>24}: measured {measured:7.2} bits, bound {lb:7.2} bits");
    assert!(measured <= lb, "{name}: measured {measured} > bound {lb}");
    assert!(
        measured >= lb - 2.5,
        "{name}: measured {measured} far below bound {lb}"
    );
}

fn run(params: Arc<Params>, seed: u64) {
    let mut r = ChaCha20Rng::seed_from_u64(seed);
    let n = params.n();
    let t = params.t().value();
    let sk = SecretKey::generate(&params, &mut r);
    let pk = PublicKey::generate(&sk, &mut r).unwrap();
    let ev = Evaluator::new(&params);
    let l = params.max_level();
    let m = Plaintext::from_unsigned(
        &params,
        &(0..n).map(|_| r.gen_range(0..t)).collect::<Vec<_>>(),
    )
    .unwrap();

    let c = sk.encrypt(&m, &mut r).unwrap();
    check(
        "fresh sk",
        sk.noise_log2(&c, &m).unwrap(),
        noise::fresh_sk(&params),
    );
    let c = pk.encrypt(&m, &mut r).unwrap();
    let v_pk = sk.noise_log2(&c, &m).unwrap();
    check("fresh pk", v_pk, noise::fresh_pk(&params));

    // ct × pt with uniform weights in [-B, B]
    let b = 1i64 << 10;
    let w: Vec<i64> = (0..n).map(|_| r.gen_range(-b..=b)).collect();
    let sigma_p = (b as f64) / 3f64.sqrt();
    let wn = PlaintextNtt::from_signed(&params, &w, l).unwrap();
    let mut prod = c.clone();
    ev.mul_plain_assign(&mut prod, &wn).unwrap();
    let expected = {
        let wp = Plaintext::from_signed(&params, &w).unwrap();
        let mul = math::PolyMultiplier::new(n, t, math::Wrap::Negacyclic).unwrap();
        Plaintext::from_unsigned(&params, &mul.mul(m.coeffs(), wp.coeffs()).unwrap()).unwrap()
    };
    let v_prod = sk.noise_log2(&prod, &expected).unwrap();
    check(
        "ct x pt",
        v_prod,
        noise::ct_pt(&params, noise::fresh_pk_sigma(&params), sigma_p),
    );

    // mod switch
    let mut sw = prod.clone();
    ev.mod_switch_to_next(&mut sw).unwrap();
    let v_sw = sk.noise_log2(&sw, &expected).unwrap();
    let bound = noise::mod_switch(&params, l, v_prod.exp2());
    println!(
        "{:>24}: measured {v_sw:7.2} bits, bound {:7.2} bits",
        "mod switch",
        bound.log2()
    );
    assert!(v_sw <= bound.log2());
    assert_eq!(sk.decrypt(&sw).unwrap(), expected);

    // key switching (rotation by X → X^3 on a fresh sk ciphertext: the input noise ≤ η is negligible)
    if params.num_special() > 0 {
        let gk = GaloisKeys::generate(&sk, &[3], &mut r).unwrap();
        let c = sk.encrypt(&m, &mut r).unwrap();
        let rot = ev.apply_galois(&c, 3, &gk).unwrap();
        let want = {
            // σ_3 on the plaintext
            let mut v = vec![0u64; n];
            let tm = math::Modulus::new(t).unwrap();
            for (j, &x) in m.coeffs().iter().enumerate() {
                let e = (3 * j) % (2 * n);
                if e < n {
                    v[e] = x
                } else {
                    v[e - n] = tm.neg(x)
                }
            }
            Plaintext::from_unsigned(&params, &v).unwrap()
        };
        let v_rot = sk.noise_log2(&rot, &want).unwrap();
        check(
            "rotation (key switch)",
            v_rot,
            noise::key_switch(&params, l) + noise::fresh_sk(&params),
        );
    }

    // capacity: flooding to just below it still decrypts
    let cap = noise::capacity(&params, l);
    assert!(v_prod < cap.log2());
}

#[test]
fn noise_matches_documented_bounds_pow2_t() {
    run(
        Params::new(presets::bfv_n8192_q180_t2l(37).unwrap()).unwrap(),
        1,
    );
}

#[test]
fn noise_matches_documented_bounds_prime_t() {
    run(
        Params::new(presets::bfv_simd_n8192_q218(20).unwrap()).unwrap(),
        2,
    );
}

#[test]
fn noise_cheetah_preset() {
    run(
        Params::new(presets::cheetah_n4096_q109_t2l(37).unwrap()).unwrap(),
        3,
    );
}
