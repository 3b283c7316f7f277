//! Measured noise after each operation against the bounds of `rlwe::noise`
//! (documented in docs/params.md § Noise): the measured `log2 ‖v‖_∞` must lie
//! in `[bound − 2.5, bound]` bits, i.e. within a factor 2^2.5 ≈ 5.7 below the
//! bound. Inputs are fresh public-key encryptions of uniform messages, so the
//! bounds are evaluated at `σ_v = noise::fresh_pk_sigma`.

use math::{Modulus, PolyMultiplier, Wrap};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use rlwe::*;
use std::sync::Arc;

/// Largest allowed gap between bound and measurement, in bits.
const FACTOR_BITS: f64 = 2.5;

fn check(name: &str, measured: f64, bound: f64) {
    let lb = bound.log2();
    println!(
        "{name:>26}: measured {measured:7.2} bits, bound {lb:7.2} bits, gap {:5.2}",
        lb - measured
    );
    assert!(measured <= lb, "{name}: measured {measured} > bound {lb}");
    assert!(
        measured >= lb - FACTOR_BITS,
        "{name}: measured {measured} more than {FACTOR_BITS} bits below bound {lb}"
    );
}

fn random_pt(p: &Arc<Params>, r: &mut ChaCha20Rng) -> Plaintext {
    let t = p.t().value();
    Plaintext::from_unsigned(
        p,
        &(0..p.n()).map(|_| r.gen_range(0..t)).collect::<Vec<_>>(),
    )
    .unwrap()
}

/// Plaintext oracle: negacyclic product mod t (schoolbook-checked in `math`).
fn negacyclic(p: &Arc<Params>, a: &[u64], b: &[u64]) -> Plaintext {
    let mul = PolyMultiplier::new(p.n(), p.t().value(), Wrap::Negacyclic).unwrap();
    Plaintext::from_unsigned(p, &mul.mul(a, b).unwrap()).unwrap()
}

fn pt_add(p: &Arc<Params>, a: &Plaintext, b: &Plaintext, sub: bool) -> Plaintext {
    let tm = Modulus::new(p.t().value()).unwrap();
    let v: Vec<u64> = a
        .coeffs()
        .iter()
        .zip(b.coeffs())
        .map(|(&x, &y)| if sub { tm.sub(x, y) } else { tm.add(x, y) })
        .collect();
    Plaintext::from_unsigned(p, &v).unwrap()
}

/// `pack`: also check PackLWEs (`log2 N + 127` key switches plus the packing
/// keys; skipped at N = 16384 to keep the suite fast).
fn run(params: Arc<Params>, seed: u64, pack: bool) {
    let mut r = ChaCha20Rng::seed_from_u64(seed);
    let n = params.n();
    let sk = SecretKey::generate(&params, &mut r);
    let pk = PublicKey::generate(&sk, &mut r).unwrap();
    let ev = Evaluator::new(&params);
    let l = params.max_level();
    let s_pk = noise::fresh_pk_sigma(&params);
    let m = random_pt(&params, &mut r);
    let m2 = random_pt(&params, &mut r);

    // fresh encryptions
    let c = sk.encrypt(&m, &mut r).unwrap();
    check(
        "fresh sk",
        sk.noise_log2(&c, &m).unwrap(),
        noise::fresh_sk(&params),
    );
    let c = pk.encrypt(&m, &mut r).unwrap();
    let v_pk = sk.noise_log2(&c, &m).unwrap();
    check("fresh pk", v_pk, noise::fresh_pk(&params));
    let c2 = pk.encrypt(&m2, &mut r).unwrap();

    // ct ± ct
    let mut sum = c.clone();
    ev.add_assign(&mut sum, &c2).unwrap();
    let want = pt_add(&params, &m, &m2, false);
    check(
        "ct + ct",
        sk.noise_log2(&sum, &want).unwrap(),
        noise::add(s_pk, s_pk),
    );
    let mut diff = c.clone();
    ev.sub_assign(&mut diff, &c2).unwrap();
    let want = pt_add(&params, &m, &m2, true);
    check(
        "ct - ct",
        sk.noise_log2(&diff, &want).unwrap(),
        noise::add(s_pk, s_pk),
    );

    // −ct: the noise is negated
    let mut ng = c.clone();
    ev.neg_assign(&mut ng).unwrap();
    let want = pt_add(&params, &Plaintext::zero(&params), &m, true);
    check(
        "-ct",
        sk.noise_log2(&ng, &want).unwrap(),
        noise::fresh_pk(&params),
    );

    // ct ± pt (worst-case bound from the measured input noise)
    let mut cp = c.clone();
    ev.add_plain_assign(&mut cp, &m2).unwrap();
    let want = pt_add(&params, &m, &m2, false);
    check(
        "ct + pt",
        sk.noise_log2(&cp, &want).unwrap(),
        noise::add_plain(v_pk.exp2()),
    );
    let mut cp = c.clone();
    ev.sub_plain_assign(&mut cp, &m2).unwrap();
    let want = pt_add(&params, &m, &m2, true);
    check(
        "ct - pt",
        sk.noise_log2(&cp, &want).unwrap(),
        noise::add_plain(v_pk.exp2()),
    );

    // ct × pt with uniform weights in [-B, B]
    let b = 1i64 << 10;
    let w: Vec<i64> = (0..n).map(|_| r.gen_range(-b..=b)).collect();
    let sigma_p = (b as f64) / 3f64.sqrt();
    let wn = PlaintextNtt::from_signed(&params, &w, l).unwrap();
    let mut prod = c.clone();
    ev.mul_plain_assign(&mut prod, &wn).unwrap();
    let expected = {
        let wp = Plaintext::from_signed(&params, &w).unwrap();
        negacyclic(&params, m.coeffs(), wp.coeffs())
    };
    let v_prod = sk.noise_log2(&prod, &expected).unwrap();
    let b_prod = noise::ct_pt(&params, s_pk, sigma_p);
    check("ct x pt", v_prod, b_prod);

    // mod switch (bound from the measured input noise)
    let mut sw = prod.clone();
    ev.mod_switch_to_next(&mut sw).unwrap();
    check(
        "mod switch",
        sk.noise_log2(&sw, &expected).unwrap(),
        noise::mod_switch(&params, l, v_prod.exp2()),
    );
    assert_eq!(sk.decrypt(&sw).unwrap(), expected);

    // noise flooding of the ct × pt result (one revealed coefficient keeps b
    // within every preset's budget)
    let cfg = FloodingConfig {
        stat_sec_bits: 40,
        noise_bits: b_prod.log2(),
        revealed_coeffs: 1,
    };
    let mut fl = prod.clone();
    let fb = ev.flood(&mut fl, &pk, &cfg, &mut r).unwrap();
    check(
        "flooding",
        sk.noise_log2(&fl, &expected).unwrap(),
        noise::flood(&params, fb, b_prod),
    );
    assert_eq!(sk.decrypt(&fl).unwrap(), expected);

    // LWE extraction: the largest noise over 128 extracted coefficients
    let idx: Vec<usize> = (0..128).map(|j| j * (n / 128) + j % 7).collect();
    let lwes = LweCiphertext::extract_many(&c, &idx).unwrap();
    let v_lwe = lwes
        .iter()
        .zip(&idx)
        .map(|(lw, &i)| lw.noise_log2(&sk, m.coeffs()[i]).unwrap())
        .fold(f64::NEG_INFINITY, f64::max);
    check(
        "LWE extraction",
        v_lwe,
        noise::lwe_extract(noise::fresh_pk(&params)),
    );

    // BFV tensor product (all presets; exact RNS computation needs no keys)
    let want_mul = negacyclic(&params, m.coeffs(), m2.coeffs());
    let c3 = ev.mul_no_relin(&c, &c2).unwrap();
    check(
        "ct x ct (tensor)",
        sk.noise_log2(&c3, &want_mul).unwrap(),
        noise::TAIL * noise::ct_ct_tensor_sigma(&params, s_pk, s_pk) + 0.5,
    );

    // tensor of secret-key encryptions: noise independent of s, so the
    // bound's worst case (all noise of the form f·s) overestimates by √2
    let (ca, cb) = (
        sk.encrypt(&m, &mut r).unwrap(),
        sk.encrypt(&m2, &mut r).unwrap(),
    );
    let s_sk = noise::fresh_sk_sigma(&params);
    check(
        "ct x ct (tensor, sk)",
        sk.noise_log2(&ev.mul_no_relin(&ca, &cb).unwrap(), &want_mul)
            .unwrap(),
        noise::TAIL * noise::ct_ct_tensor_sigma(&params, s_sk, s_sk) + 0.5,
    );

    if params.num_special() > 0 {
        // ct × ct + relinearization
        let rk = RelinKey::generate(&sk, &mut r).unwrap();
        let cm = ev.relinearize(&c3, &rk).unwrap();
        check(
            "ct x ct + relin",
            sk.noise_log2(&cm, &want_mul).unwrap(),
            noise::ct_ct(&params, l, s_pk, s_pk),
        );
        assert_eq!(sk.decrypt(&cm).unwrap(), want_mul);

        // depth 2: both operands switched down one prime, multiplied again;
        // input σ taken from the mod-switch bounds (σ = bound / 6)
        let b_cm = noise::ct_ct(&params, l, s_pk, s_pk);
        let mut a2 = cm.clone();
        ev.mod_switch_to_next(&mut a2).unwrap();
        let mut b2 = c2.clone();
        ev.mod_switch_to_next(&mut b2).unwrap();
        let want2 = negacyclic(&params, want_mul.coeffs(), m2.coeffs());
        let c4 = ev.mul(&a2, &b2, &rk).unwrap();
        check(
            "ct x ct + relin, depth 2",
            sk.noise_log2(&c4, &want2).unwrap(),
            noise::ct_ct(
                &params,
                l - 1,
                noise::mod_switch(&params, l, b_cm) / noise::TAIL,
                noise::mod_switch(&params, l, noise::fresh_pk(&params)) / noise::TAIL,
            ),
        );
        assert_eq!(sk.decrypt(&c4).unwrap(), want2);

        // key switching (X → X^3 on a fresh pk ciphertext)
        let gk = GaloisKeys::generate(&sk, &[3], &mut r).unwrap();
        let rot = ev.apply_galois(&c, 3, &gk).unwrap();
        let want = {
            let t = params.t().value();
            let tm = Modulus::new(t).unwrap();
            let mut v = vec![0u64; n];
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
        check(
            "rotation (key switch)",
            sk.noise_log2(&rot, &want).unwrap(),
            noise::add(s_pk, noise::key_switch_sigma(&params, l)),
        );
    }
    if params.num_special() > 0 && pack {
        // PackLWEs of 128 coefficients of a fresh secret-key encryption at
        // level 2 (where packing is used: after switching down; also 9× cheaper)
        let lp = 2.min(l);
        let c_low = sk.encrypt_at(&m, lp, &mut r).unwrap();
        let lwes = LweCiphertext::extract_many(&c_low, &idx).unwrap();
        let keys = PackingKeys::generate(&sk, &mut r).unwrap();
        let packed = ev.pack_lwes(&lwes, &keys).unwrap();
        let stride = n / lwes.len();
        let mut v = vec![0u64; n];
        for (j, &i) in idx.iter().enumerate() {
            v[j * stride] = m.coeffs()[i];
        }
        let want = Plaintext::from_unsigned(&params, &v).unwrap();
        check(
            "PackLWEs (128, level 2)",
            sk.noise_log2(&packed, &want).unwrap(),
            noise::pack_lwes(&params, lp, noise::fresh_sk_sigma(&params)),
        );
        assert_eq!(sk.decrypt(&packed).unwrap(), want);
    }

    // everything above stays far below the decryption capacity
    assert!(v_prod < noise::capacity(&params, l).log2());
}

#[test]
fn noise_matches_documented_bounds_pow2_t() {
    run(
        Params::new(presets::bfv_n8192_q180_t2l(37).unwrap()).unwrap(),
        1,
        true,
    );
}

/// The fast key-switching preset (P as large as a digit) is used for Galois automorphisms only
/// (Cheetah's packed responses; no ct × ct at t = 2^37 fits two primes): the rotation noise on a
/// fresh public-key encryption, and X → X^{N+1} (a partial-trace step), against the bound.
#[test]
fn noise_key_switch_q120_p60() {
    let params = Params::new(presets::bfv_n8192_q120_p60_t2l(37).unwrap()).unwrap();
    let mut r = ChaCha20Rng::seed_from_u64(5);
    let n = params.n();
    let sk = SecretKey::generate(&params, &mut r);
    let pk = PublicKey::generate(&sk, &mut r).unwrap();
    let ev = Evaluator::new(&params);
    let l = params.max_level();
    let m = random_pt(&params, &mut r);
    let c = pk.encrypt(&m, &mut r).unwrap();
    check(
        "fresh pk",
        sk.noise_log2(&c, &m).unwrap(),
        noise::fresh_pk(&params),
    );
    let tm = Modulus::new(params.t().value()).unwrap();
    for k in [3usize, n + 1] {
        let gk = GaloisKeys::generate(&sk, &[k], &mut r).unwrap();
        let rot = ev.apply_galois(&c, k, &gk).unwrap();
        let mut v = vec![0u64; n];
        for (j, &x) in m.coeffs().iter().enumerate() {
            let e = (k * j) % (2 * n);
            if e < n {
                v[e] = x
            } else {
                v[e - n] = tm.neg(x)
            }
        }
        let want = Plaintext::from_unsigned(&params, &v).unwrap();
        check(
            "rotation (key switch)",
            sk.noise_log2(&rot, &want).unwrap(),
            noise::add(
                noise::fresh_pk_sigma(&params),
                noise::key_switch_sigma(&params, l),
            ),
        );
        assert_eq!(sk.decrypt(&rot).unwrap(), want);
    }
}

#[test]
fn noise_matches_documented_bounds_prime_t() {
    run(
        Params::new(presets::bfv_simd_n8192_q218(20).unwrap()).unwrap(),
        2,
        true,
    );
}

#[test]
fn noise_matches_documented_bounds_simd_n16384() {
    run(
        Params::new(presets::bfv_simd_n16384_q438(30).unwrap()).unwrap(),
        4,
        false,
    );
}

#[test]
fn noise_cheetah_preset() {
    run(
        Params::new(presets::cheetah_n4096_q109_t2l(37).unwrap()).unwrap(),
        3,
        true,
    );
}
