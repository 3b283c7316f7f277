use ckks::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use std::f64::consts::PI;
#[test]
#[ignore]
fn exp() {
    for (secret, r, deg) in [
        (SecretDist::Ternary, 2, 63),
        (SecretDist::Sparse { h: 192 }, 2, 63),
        (SecretDist::Sparse { h: 192 }, 3, 31),
        (SecretDist::Sparse { h: 192 }, 1, 127),
    ] {
        let mut lit = presets::insecure_boot_n12();
        lit.secret = secret;
        let params = Params::new(lit).unwrap();
        let mut cfg = presets::insecure_boot_n12_config();
        cfg.double_angle = r;
        cfg.cheb_degree = deg;
        eprintln!("{secret:?} r={r} deg={deg}");
        let bs = Bootstrapper::new(&params, cfg.clone()).unwrap();
        let mut rng = ChaCha20Rng::seed_from_u64(11);
        let sk = SecretKey::generate(&params, &mut rng);
        let (keys, encaps) = bs.generate_keys(&sk, &mut rng).unwrap();
        let eval = Evaluator::new(&params, keys).unwrap();
        let enc = Encryptor::with_secret_key(&params, &sk).unwrap();
        let dec = Decryptor::new(&params, &sk).unwrap();
        let slots = params.max_slots();
        let x: Vec<Complex> = (0..slots)
            .map(|_| Complex::new(rng.gen_range(-1.0..1.0), rng.gen_range(-1.0..1.0)))
            .collect();
        let pt = params.encode(&x, slots, 0, params.default_scale()).unwrap();
        let ct = enc.encrypt(&pt, &mut rng).unwrap();
        let mut stages: Vec<(String, Vec<Complex>)> = Vec::new();
        let (out, _) = bs
            .run(&eval, encaps.as_ref(), &ct, &mut |name, c| {
                stages.push((name.to_string(), dec.decrypt(c).unwrap()))
            })
            .unwrap();
        let get = |n: &str| stages.iter().find(|s| s.0 == n).unwrap().1.clone();
        // raised: slots = V fold(P')/q0. Expected y (bit-reversed) = fold(P')/(q0 K): Re part.
        let mut w = get("raised");
        params.encoder().ifft_special(&mut w);
        encoder::bit_reverse(&mut w);
        let re = get("re");
        let e_y = re
            .iter()
            .zip(&w)
            .map(|(a, b)| (a.re - b.re / cfg.k).abs() + a.im.abs())
            .fold(0.0, f64::max);
        eprintln!("y error after CtS: 2^{:.1}", e_y.log2());
        let re_mod = get("re_mod");
        let e_s = re_mod
            .iter()
            .zip(&re)
            .map(|(a, b)| (a.re - (2.0 * PI * cfg.k * b.re).sin()).abs())
            .fold(0.0, f64::max);
        eprintln!(
            "sin error after EvalMod (vs its decrypted input): 2^{:.1}",
            e_s.log2()
        );
        let got = dec.decrypt(&out).unwrap();
        let e = got
            .iter()
            .zip(&x)
            .map(|(a, b)| (*a - *b).abs())
            .fold(0.0, f64::max);
        eprintln!("final max error 2^{:.1}", e.log2());
    }
}
