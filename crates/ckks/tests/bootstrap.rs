//! Bootstrapping at an INSECURE test preset restores a level-0 ciphertext to the documented level
//! with the documented precision.

use std::time::Instant;

use ckks::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

#[test]
fn bootstrap_restores_levels_and_precision() {
    let params = Params::new(presets::insecure_boot_n12()).unwrap();
    let cfg = presets::insecure_boot_n12_config();
    let t = Instant::now();
    let bs = Bootstrapper::new(&params, cfg).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(11);
    let sk = SecretKey::generate(&params, &mut rng);
    let (keys, encaps) = bs.generate_keys(&sk, &mut rng).unwrap();
    // Keys travel serialized from the client: round-trip them and bootstrap with the copies.
    let keys = serialize::evaluation_keys_from_bytes(
        &params,
        &serialize::evaluation_keys_to_bytes(&params, &keys),
    )
    .unwrap();
    let eb = serialize::encapsulation_keys_to_bytes(&params, encaps.as_ref().unwrap());
    assert!(serialize::encapsulation_keys_from_bytes(&params, &eb[..eb.len() - 1]).is_err());
    let encaps = Some(serialize::encapsulation_keys_from_bytes(&params, &eb).unwrap());
    eprintln!(
        "setup {:?}, {} Galois keys, {} MiB",
        t.elapsed(),
        keys.galois_elements().len(),
        keys.memory_bytes() >> 20
    );
    let eval = Evaluator::new(&params, keys).unwrap();
    let enc = Encryptor::with_secret_key(&params, &sk).unwrap();
    let dec = Decryptor::new(&params, &sk).unwrap();
    let slots = params.max_slots();
    let x: Vec<Complex> = (0..slots)
        .map(|_| Complex::new(rng.gen_range(-1.0..1.0), rng.gen_range(-1.0..1.0)))
        .collect();
    let pt = params.encode(&x, slots, 0, params.default_scale()).unwrap();
    let ct = enc.encrypt(&pt, &mut rng).unwrap();
    let t = Instant::now();
    let (out, phases) = bs.bootstrap_timed(&eval, encaps.as_ref(), &ct).unwrap();
    eprintln!("bootstrap {:?} {phases:?}", t.elapsed());
    // The EvalMod input y = (m + q_0·I)/(q_0·K) stays inside [−1, 1]: with the weight-32
    // ephemeral secret |I| ≤ 16, so |y| ≤ 16.5/17 (the deterministic bound of docs/ckks.md).
    let mut max_y: f64 = 0.0;
    bs.run(&eval, encaps.as_ref(), &ct, &mut |name, c| {
        if name == "re" || name == "im" {
            for v in dec.decrypt(c).unwrap() {
                max_y = max_y.max(v.re.abs());
            }
        }
    })
    .unwrap();
    eprintln!("max |y| = {max_y:.4}");
    assert!(max_y <= 16.5 / 17.0 + 1e-6, "max |y| = {max_y}");
    assert!(max_y > 1.0 / 17.0, "the overflow I is not trivially zero");
    assert_eq!(out.level(), bs.output_level());
    assert_eq!(out.level(), 2);
    assert!(scale_eq(out.scale(), ct.scale()));
    let got = dec.decrypt(&out).unwrap();
    let errs: Vec<f64> = got.iter().zip(&x).map(|(a, b)| (*a - *b).abs()).collect();
    let mean_bits = -(errs.iter().map(|e| e.log2()).sum::<f64>() / errs.len() as f64);
    let min_bits = -errs.iter().cloned().fold(0.0, f64::max).log2();
    eprintln!("precision: mean {mean_bits:.1} bits, min {min_bits:.1} bits");
    assert!(
        mean_bits >= 20.0 && min_bits >= 15.0,
        "mean {mean_bits:.1}, min {min_bits:.1}"
    );
    // The refreshed ciphertext computes: one more multiplication.
    let sq = eval.mul_relin_rescale(&out, &out).unwrap();
    let got = dec.decrypt(&sq).unwrap();
    for (a, b) in got.iter().zip(&x) {
        assert!((*a - *b * *b).abs() < 1e-3);
    }
}

/// Sparse packing (`n ≤ N/4`: real and imaginary parts through one EvalMod, the circuit
/// derived by `with_slots`) against the message, down to 2^8 of the 2^11 slots.
#[test]
fn bootstrap_sparse_slots() {
    let params = Params::new(presets::insecure_boot_n12()).unwrap();
    let full = presets::insecure_boot_n12_config();
    assert!(full.with_slots(1 << 5).is_none(), "would empty a group");
    assert!(full.with_slots(3 << 8).is_none(), "not a power of two");
    let mut rng = ChaCha20Rng::seed_from_u64(12);
    let sk = SecretKey::generate(&params, &mut rng);
    let enc = Encryptor::with_secret_key(&params, &sk).unwrap();
    let dec = Decryptor::new(&params, &sk).unwrap();
    for slots in [1 << 10, 1 << 8] {
        let cfg = full.with_slots(slots).unwrap();
        let bs = Bootstrapper::new(&params, cfg).unwrap();
        let (keys, encaps) = bs.generate_keys(&sk, &mut rng).unwrap();
        let eval = Evaluator::new(&params, keys).unwrap();
        let x: Vec<Complex> = (0..slots)
            .map(|_| Complex::new(rng.gen_range(-1.0..1.0), rng.gen_range(-1.0..1.0)))
            .collect();
        let pt = params.encode(&x, slots, 0, params.default_scale()).unwrap();
        let ct = enc.encrypt(&pt, &mut rng).unwrap();
        let mut probes = vec![];
        let (out, _) = bs
            .run(&eval, encaps.as_ref(), &ct, &mut |name, _| {
                probes.push(name.to_string())
            })
            .unwrap();
        assert!(probes.contains(&"re_im_mod".to_string()), "{probes:?}");
        assert!(!probes.contains(&"im_mod".to_string()), "one EvalMod");
        assert_eq!(out.level(), 2);
        assert_eq!(out.slots(), slots);
        let got = dec.decrypt(&out).unwrap();
        let errs: Vec<f64> = got.iter().zip(&x).map(|(a, b)| (*a - *b).abs()).collect();
        let mean_bits = -(errs.iter().map(|e| e.log2()).sum::<f64>() / errs.len() as f64);
        let min_bits = -errs.iter().cloned().fold(0.0, f64::max).log2();
        eprintln!("sparse {slots} slots: mean {mean_bits:.1} bits, min {min_bits:.1} bits");
        assert!(
            mean_bits >= 20.0 && min_bits >= 15.0,
            "{slots} slots: mean {mean_bits:.1}, min {min_bits:.1}"
        );
        // The result is a sparse encoding: read with all 2^11 slots it repeats with period
        // `slots`.
        let mut wide = out.clone();
        wide.set_slots(params.max_slots(), &params).unwrap();
        let w = dec.decrypt(&wide).unwrap();
        for (p, v) in w.iter().enumerate() {
            assert!((*v - x[p % slots]).abs() < 1e-3, "slot {p}");
        }
    }
}

/// EvalMod's arcsine removes the `sin x ≈ x` error for coefficients that are a sizeable fraction
/// of `q_0` (here a constant vector, whose energy sits in one coefficient, encoded at a message
/// ratio `q_0/Δ = 2^6`); for random slots, whose coefficients are `~2^-5` of the slot values, it
/// still helps at this small ratio (measured: 9.7 → 17.9 bits constant, 20.7 → 30.2 random).
#[test]
fn bootstrap_arcsine_for_large_coefficients() {
    let mut lit = presets::insecure_boot_n12();
    // Three more EvalMod primes for the degree-3 arcsine (depth 3).
    lit.log_q.splice(5..5, [60, 60, 60]);
    let params = Params::new(lit).unwrap();
    let base = presets::insecure_boot_n12_config();
    let with = BootstrapConfig {
        arcsine_degree: Some(3),
        ..base.clone()
    };
    let bs_plain = Bootstrapper::new(&params, base).unwrap();
    let bs_asin = Bootstrapper::new(&params, with).unwrap();
    assert_eq!(bs_plain.output_level(), bs_asin.output_level() + 3);
    let mut rng = ChaCha20Rng::seed_from_u64(12);
    let sk = SecretKey::generate(&params, &mut rng);
    let (keys, encaps) = bs_asin.generate_keys(&sk, &mut rng).unwrap();
    let eval = Evaluator::new(&params, keys).unwrap();
    let enc = Encryptor::with_secret_key(&params, &sk).unwrap();
    let dec = Decryptor::new(&params, &sk).unwrap();
    let slots = params.max_slots();
    let scale = params.q()[0] as f64 / 64.0;
    let mean_bits = |bs: &Bootstrapper, x: &[Complex], rng: &mut ChaCha20Rng| -> f64 {
        let pt = params.encode(x, slots, 0, scale).unwrap();
        let ct = enc.encrypt(&pt, rng).unwrap();
        let out = bs.bootstrap(&eval, encaps.as_ref(), &ct).unwrap();
        assert_eq!(out.level(), bs.output_level());
        let got = dec.decrypt(&out).unwrap();
        -(got
            .iter()
            .zip(x)
            .map(|(a, b)| (*a - *b).abs().log2())
            .sum::<f64>()
            / slots as f64)
    };
    let constant = vec![Complex::new(0.9, 0.0); slots];
    let p_plain = mean_bits(&bs_plain, &constant, &mut rng);
    let p_asin = mean_bits(&bs_asin, &constant, &mut rng);
    let random: Vec<Complex> = (0..slots)
        .map(|_| Complex::new(rng.gen_range(-1.0..1.0), rng.gen_range(-1.0..1.0)))
        .collect();
    let r_plain = mean_bits(&bs_plain, &random, &mut rng);
    let r_asin = mean_bits(&bs_asin, &random, &mut rng);
    eprintln!(
        "constant 0.9: {p_plain:.1} bits without arcsine, {p_asin:.1} with; \
         random: {r_plain:.1} / {r_asin:.1}"
    );
    // sin x ≈ x at x = 2π·0.9/64 errs by x³/6 relative to 2π/64: 2^-9.7.
    assert!(p_plain < 11.0, "{p_plain}");
    assert!(p_asin >= 15.0, "{p_asin}");
    assert!(r_plain >= 15.0 && r_asin >= r_plain);
}
