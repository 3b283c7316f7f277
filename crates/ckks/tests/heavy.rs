//! Heavy bootstrapping runs (ignored by default): `cargo test -p privinfer-ckks --release --test heavy -- --ignored --nocapture`.
//! `n16_secure` runs the 128-bit N = 2^16 preset (about 8 GB of memory); `n14_scaled_like_n16`
//! the same chain at N = 2^14. Environment: `PROBE=1` prints the error after CoeffsToSlots and of
//! EvalMod, `CONST=1` bootstraps all-ones slots, `LOGQ0` overrides the base prime (N = 2^14 run),
//! `REPS` repeats the bootstrapping (for profiling), `ARCSINE=3` adds EvalMod's arcsine (fewer
//! levels left), `SCALE` sets log2 of the input scale. `n16_micro` times the kernels and the key
//! switches at the N = 2^16 preset (`MICRO=hoisted`: kernels and hoisted rotations only).
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
    let mut cfg = cfg;
    if let Ok(d) = std::env::var("ARCSINE") {
        cfg.arcsine_degree = Some(d.parse().unwrap());
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
    let scale =
        std::env::var("SCALE").map_or(params.default_scale(), |v| 2f64.powi(v.parse().unwrap()));
    let pt = params.encode(&x, slots, 0, scale).unwrap();
    let ct = enc.encrypt(&pt, &mut rng).unwrap();
    let reps: usize = std::env::var("REPS").map_or(1, |v| v.parse().unwrap());
    let mut out = None;
    for _ in 0..reps {
        let t = Instant::now();
        let c0 = cpu_ms();
        let (o, ph) = bs.bootstrap_timed(&eval, encaps.as_ref(), &ct).unwrap();
        eprintln!(
            "bootstrap {:?} (CPU {:.0} ms) {ph:?}",
            t.elapsed(),
            cpu_ms() - c0
        );
        out = Some(o);
    }
    let out = out.unwrap();
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

/// Per-operation costs at the secure N = 2^16 preset (cost model for the bootstrapping circuit).
#[test]
#[ignore]
fn n16_micro() {
    math::alloc::retain_large_allocations();
    let params = Params::new(presets::n16_logqp1534_h192_h32()).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let sk = SecretKey::generate(&params, &mut rng);
    let kg = KeyGenerator::new(&params, &sk).unwrap();
    let mut keys = kg.evaluation_keys(&[], &mut rng).unwrap();
    kg.extend(&mut keys, &[params.galois_element(1)], &mut rng)
        .unwrap();
    let eval = Evaluator::new(&params, keys).unwrap();
    let enc = Encryptor::with_secret_key(&params, &sk).unwrap();
    let slots = params.max_slots();
    let x: Vec<Complex> = (0..slots)
        .map(|i| Complex::new((i % 7) as f64 / 7.0, 0.0))
        .collect();
    let time = |name: &str, reps: usize, f: &mut dyn FnMut()| {
        f();
        let t = Instant::now();
        let c = cpu_ms();
        for _ in 0..reps {
            f();
        }
        eprintln!(
            "{name:<28} {:>9.3} ms wall {:>9.3} ms CPU",
            t.elapsed().as_secs_f64() * 1e3 / reps as f64,
            (cpu_ms() - c) / reps as f64
        );
    };
    let plan = params.ctx_q().plan(0);
    let mut v: Vec<u64> = (0..params.n() as u64).collect();
    time("ntt forward (1 limb)", 5000, &mut || plan.forward(&mut v));
    time("ntt inverse (1 limb)", 5000, &mut || plan.inverse(&mut v));
    let w = v.clone();
    time("mul_accumulate (1 limb)", 20000, &mut || {
        plan.mul_accumulate(&mut v, &w, &w)
    });
    let m = params.ctx_q().moduli()[0];
    time("mul_shoup_acc (1 limb)", 20000, &mut || {
        math::simd::mul_shoup_acc(&m, &mut v, &w, 3, m.shoup(3))
    });
    let ys: Vec<Vec<u64>> = (0..5)
        .map(|j| (0..params.n() as u64).map(|i| i * 7 + j).collect())
        .collect();
    let yr: Vec<&[u64]> = ys.iter().map(|v| v.as_slice()).collect();
    let ws5 = [3u64, 5, 7, 11, 13];
    let wss: Vec<u64> = ws5.iter().map(|&w| m.shoup(w)).collect();
    time("dot_shoup 5 sources (1 limb)", 5000, &mut || {
        math::simd::dot_shoup(&m, &mut v, &yr, &ws5, &wss)
    });
    for li in [13usize, 24] {
        let pl = params.ctx_q().plan(li);
        let mm = params.ctx_q().moduli()[li];
        let w2: Vec<u64> = w.iter().map(|&x| x % mm.value()).collect();
        let mut v2 = w2.clone();
        time(&format!("mul_accumulate (prime {li})"), 20000, &mut || {
            pl.mul_accumulate(&mut v2, &w2, &w2)
        });
        time(&format!("mul_shoup_acc (prime {li})"), 20000, &mut || {
            math::simd::mul_shoup_acc(&mm, &mut v2, &w2, 3, mm.shoup(3))
        });
        time(&format!("ntt forward (prime {li})"), 5000, &mut || {
            pl.forward(&mut v2)
        });
    }
    if std::env::var("MICRO").as_deref() == Ok("hoisted") {
        let pt = params
            .encode(&x, slots, 24, params.default_scale())
            .unwrap();
        let ct = enc.encrypt(&pt, &mut rng).unwrap();
        time("L24 rotate_hoisted x8", 10, &mut || {
            eval.rotate_hoisted(&ct, &[1; 8]).unwrap();
        });
        return;
    }
    for level in [24usize, 20, 12] {
        let pt = params
            .encode(&x, slots, level, params.default_scale())
            .unwrap();
        let ct = enc.encrypt(&pt, &mut rng).unwrap();
        time(&format!("L{level} rotate"), 10, &mut || {
            eval.rotate(&ct, 1).unwrap();
        });
        time(&format!("L{level} rotate_hoisted x8"), 3, &mut || {
            eval.rotate_hoisted(&ct, &[1; 8]).unwrap();
        });
        time(&format!("L{level} mul"), 50, &mut || {
            eval.mul(&ct, &ct).unwrap();
        });
        let m2 = eval.mul(&ct, &ct).unwrap();
        time(&format!("L{level} relinearize"), 10, &mut || {
            eval.relinearize(&m2).unwrap();
        });
        let r = eval.relinearize(&m2).unwrap();
        time(&format!("L{level} rescale"), 50, &mut || {
            eval.rescale(&r).unwrap();
        });
        time(&format!("L{level} add"), 100, &mut || {
            eval.add(&ct, &ct).unwrap();
        });
    }
}
