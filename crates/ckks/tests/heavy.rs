//! Heavy bootstrapping runs (ignored by default): `cargo test -p privinfer-ckks --release --test heavy -- --ignored --nocapture`.
//! `n16_secure` runs the 128-bit N = 2^16 preset (about 8 GB of memory); `n14_scaled_like_n16`
//! the same chain at N = 2^14. Environment: `PROBE=1` prints the error after CoeffsToSlots and of
//! EvalMod, `CONST=1` bootstraps all-ones slots, `LOGQ0` overrides the base prime (N = 2^14 run).
use ckks::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use std::time::Instant;

fn cpu_ms() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap();
    let rest = &s[s.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) * 10.0
}

fn run(lit: ParamsLiteral, cfg: BootstrapConfig) {
    if std::env::var("NO_TUNING").is_err() {
        math::alloc::retain_large_allocations();
    }
    let t = Instant::now();
    let params = Params::new(lit).unwrap();
    eprintln!(
        "N = 2^{}, log QP = {:.1}, {} + {} primes, digits {}",
        params.log_n(),
        params.log_qp(),
        params.q().len(),
        params.p().len(),
        params.digits()
    );
    let bs = Bootstrapper::new(&params, cfg).unwrap();
    eprintln!(
        "encode transforms {:?}, {} Galois keys needed",
        t.elapsed(),
        bs.galois_elements().len()
    );
    let t = Instant::now();
    let mut rng = ChaCha20Rng::seed_from_u64(11);
    let sk = SecretKey::generate(&params, &mut rng);
    let (keys, encaps) = bs.generate_keys(&sk, &mut rng).unwrap();
    eprintln!(
        "keygen {:?}: {} MiB of evaluation keys",
        t.elapsed(),
        (keys.memory_bytes() + encaps.as_ref().map_or(0, |e| e.memory_bytes())) >> 20
    );
    let eval = Evaluator::new(&params, keys).unwrap();
    let enc = Encryptor::with_secret_key(&params, &sk).unwrap();
    let dec = Decryptor::new(&params, &sk).unwrap();
    let slots = params.max_slots();
    let x: Vec<Complex> = if std::env::var("CONST").is_ok() {
        vec![Complex::new(1.0, 0.0); slots]
    } else {
        (0..slots)
            .map(|_| Complex::new(rng.gen_range(-1.0..1.0), rng.gen_range(-1.0..1.0)))
            .collect()
    };
    let pt = params.encode(&x, slots, 0, params.default_scale()).unwrap();
    let ct = enc.encrypt(&pt, &mut rng).unwrap();
    let t = Instant::now();
    let c0 = cpu_ms();
    let (out, ph) = bs.bootstrap_timed(&eval, encaps.as_ref(), &ct).unwrap();
    eprintln!(
        "bootstrap {:?} (CPU {:.0} ms) {ph:?}",
        t.elapsed(),
        cpu_ms() - c0
    );
    if std::env::var("PROBE").is_ok() {
        let k = bs.config().k;
        let mut stages: Vec<(String, Vec<Complex>)> = Vec::new();
        bs.run(&eval, encaps.as_ref(), &ct, &mut |name, c| {
            stages.push((name.to_string(), dec.decrypt(c).unwrap()))
        })
        .unwrap();
        let get = |n: &str| stages.iter().find(|s| s.0 == n).unwrap().1.clone();
        let mut w = get("raised");
        params.encoder().ifft_special(&mut w);
        encoder::bit_reverse(&mut w);
        let re = get("re");
        let e_y = re
            .iter()
            .zip(&w)
            .map(|(a, b)| (a.re - b.re / k).abs() + a.im.abs())
            .fold(0.0, f64::max);
        let re_mod = get("re_mod");
        let e_s = re_mod
            .iter()
            .zip(&re)
            .map(|(a, b)| (a.re - (2.0 * std::f64::consts::PI * k * b.re).sin()).abs())
            .fold(0.0, f64::max);
        eprintln!(
            "y error after CtS 2^{:.1}; EvalMod error 2^{:.1}",
            e_y.log2(),
            e_s.log2()
        );
    }
    let got = dec.decrypt(&out).unwrap();
    let errs: Vec<f64> = got.iter().zip(&x).map(|(a, b)| (*a - *b).abs()).collect();
    let mean_bits = -(errs.iter().map(|e| e.log2()).sum::<f64>() / errs.len() as f64);
    let min_bits = -errs.iter().cloned().fold(0.0, f64::max).log2();
    eprintln!(
        "level {} precision mean {mean_bits:.1} min {min_bits:.1}",
        out.level()
    );
}

#[test]
#[ignore]
fn n14_scaled_like_n16() {
    let mut lit = presets::n16_logqp1534_h192_h32();
    lit.log_n = 14;
    lit.security = Security::InsecureForTests;
    if let Ok(v) = std::env::var("LOGQ0") {
        lit.log_q[0] = v.parse().unwrap();
    }
    let mut cfg = presets::n16_logqp1534_h192_h32_config();
    cfg.slots = 1 << 13;
    cfg.cts_stages = vec![5, 4, 4];
    cfg.stc_stages = vec![4, 4, 5];
    run(lit, cfg);
}

#[test]
#[ignore]
fn n16_secure() {
    run(
        presets::n16_logqp1534_h192_h32(),
        presets::n16_logqp1534_h192_h32_config(),
    );
}
