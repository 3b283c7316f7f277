//! `privinfer bench ckks`: CKKS operation and bootstrapping timings, single-threaded and with all
//! cores, at the secure `N = 2^16` preset `N16_LogQP1534_H192_H32` (or a small insecure test
//! preset with `--preset test-n12`).
//!
//! With `--json`, one line per measurement: `{"op", "n", "threads", "ms", ...}`; the bootstrap
//! line also carries `precision_bits` (mean over slots of −log2|error|), `min_precision_bits`,
//! `levels_left`, `peak_mib` (peak resident memory of the process during bootstrapping, with the
//! bootstrapping keys and transforms resident; the operation benchmarks' keys are freed first)
//! and `cpu_ms` (process CPU time, which tracks the work better than wall time on a busy machine).

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use ckks::{
    presets, BootstrapConfig, Bootstrapper, Ciphertext, Complex, Decryptor, Encryptor, Evaluator,
    KeyGenerator, ParamsLiteral, SecretKey,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

#[derive(clap::Args)]
pub struct Args {
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
    /// Thread counts to measure with, comma-separated (0 = all cores).
    #[arg(long, value_delimiter = ',', default_value = "1,0")]
    threads: Vec<usize>,
    /// `n16` (128-bit, N = 2^16, full slots), `n16-10` (128-bit, N = 2^16, 10 levels left) or
    /// `test-n12` (INSECURE, N = 2^12).
    #[arg(long, default_value = "n16")]
    preset: String,
    /// Skip bootstrapping (operations only).
    #[arg(long)]
    no_bootstrap: bool,
    /// Skip the operation benchmarks (bootstrapping only; its peak memory then excludes
    /// anything the operation benchmarks left in the allocator).
    #[arg(long)]
    no_ops: bool,
    /// Repetitions per operation (the median is reported).
    #[arg(long, default_value_t = 5)]
    reps: usize,
    /// Bootstrap with sparse packing of this many slots (a power of two below the preset's;
    /// its values repeat `N/2/slots` times over the full slot vector).
    #[arg(long)]
    slots: Option<usize>,
}

fn preset(name: &str) -> anyhow::Result<(ParamsLiteral, BootstrapConfig)> {
    Ok(match name {
        "n16" => (
            presets::n16_logqp1534_h192_h32(),
            presets::n16_logqp1534_h192_h32_config(),
        ),
        "n16-10" => (
            presets::n16_logqp1545_h192_h32(),
            presets::n16_logqp1545_h192_h32_config(),
        ),
        "test-n12" => (
            presets::insecure_boot_n12(),
            presets::insecure_boot_n12_config(),
        ),
        _ => bail!("unknown preset {name} (n16, n16-10, test-n12)"),
    })
}

/// Peak resident set size of this process in MiB (Linux `VmHWM`).
fn peak_mib() -> Option<u64> {
    math::alloc::peak_resident_bytes().map(|b| b >> 20)
}

/// CPU time (user + system, all threads) of this process in milliseconds (Linux
/// `/proc/self/stat`, clock ticks of 10 ms). Under contention from other processes, CPU time
/// tracks the work done better than wall-clock time.
fn cpu_ms() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks * 10.0)
}

fn median_ms(reps: usize, mut f: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<f64> {
    f()?; // warm-up
    let mut t: Vec<Duration> = Vec::with_capacity(reps);
    for _ in 0..reps.max(1) {
        let s = Instant::now();
        f()?;
        t.push(s.elapsed());
    }
    t.sort_unstable();
    Ok(t[t.len() / 2].as_secs_f64() * 1e3)
}

struct Out {
    json: bool,
    n: usize,
}

impl Out {
    fn op(&self, op: &str, threads: usize, level: usize, ms: f64) {
        if self.json {
            println!(
                "{}",
                serde_json::json!({"op": op, "n": self.n, "threads": threads, "level": level, "ms": ms})
            );
        } else {
            println!(
                "{op:<22} N={} threads={threads:<2} level={level:<2} {ms:>10.2} ms",
                self.n
            );
        }
    }
}

/// Resets the process's peak-RSS counter (`VmHWM`), so that a later [`peak_mib`] reports the
/// peak of what follows (Linux ≥ 4.0; harmless elsewhere).
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn pool(threads: usize) -> anyhow::Result<rayon::ThreadPool> {
    Ok(rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()?)
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let (lit, mut cfg) = preset(&a.preset)?;
    if let Some(s) = a.slots {
        let full = cfg.slots;
        cfg = cfg.with_slots(s).with_context(|| {
            format!("--slots {s}: must be a power of two up to {full} that leaves every transform group a stage")
        })?;
    }
    let params = ckks::Params::new(lit).context("parameters")?;
    let out = Out {
        json: a.json,
        n: params.n(),
    };
    let all = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads: Vec<usize> = a
        .threads
        .iter()
        .map(|&t| if t == 0 { all } else { t })
        .collect();
    let mut rng = ChaCha20Rng::seed_from_u64(2026);
    let sk = SecretKey::generate(&params, &mut rng);
    let kg = KeyGenerator::new(&params, &sk)?;
    let slots = params.max_slots();
    let pk = kg.public_key(&mut rng);
    let enc = Encryptor::with_public_key(&params, &pk)?;
    let dec = Decryptor::new(&params, &sk)?;
    let x: Vec<Complex> = (0..slots)
        .map(|_| Complex::new(rng.gen_range(-1.0..1.0), rng.gen_range(-1.0..1.0)))
        .collect();
    let scale = params.default_scale();
    let bs = if a.no_bootstrap {
        None
    } else {
        let t = Instant::now();
        let b = Bootstrapper::new(&params, cfg).context("bootstrapper")?;
        let ms = t.elapsed().as_secs_f64() * 1e3;
        if a.json {
            println!(
                "{}",
                serde_json::json!({"op": "bootstrap_setup", "n": params.n(), "threads": all, "ms": ms, "transforms_mib": b.memory_bytes() >> 20})
            );
        } else {
            println!(
                "bootstrapping setup (encoded transforms, {} MiB) {ms:.0} ms",
                b.memory_bytes() >> 20
            );
        }
        Some(b)
    };
    // Operations run at the level a bootstrapped ciphertext has (where a network computes), and
    // the expensive ones also at the top level.
    let level = bs.as_ref().map_or(params.max_level(), |b| b.output_level());

    // 1. Operations, with their own keys (relinearization, conjugation, rotations 1..=8).
    if !a.no_ops {
        let rots: Vec<isize> = (1..=8).collect();
        let t = Instant::now();
        let mut keys = kg.evaluation_keys(&[], &mut rng)?;
        let mut els: Vec<(usize, usize)> = rots
            .iter()
            .map(|&k| (params.galois_element(k), params.max_level()))
            .collect();
        els.push((params.conjugation_element(), params.max_level()));
        kg.extend_at(&mut keys, &els, &mut rng)?;
        let ms = t.elapsed().as_secs_f64() * 1e3;
        if a.json {
            println!(
                "{}",
                serde_json::json!({"op": "keygen_ops", "n": params.n(), "threads": all, "ms": ms, "key_mib": keys.memory_bytes() >> 20, "log_qp": params.log_qp()})
            );
        }
        let eval = Evaluator::new(&params, keys)?;
        for &threads in &threads {
            pool(threads)?.install(|| -> anyhow::Result<()> {
                let mut r = ChaCha20Rng::seed_from_u64(7);
                let pt = params.encode(&x, slots, level, scale)?;
                let ct: Ciphertext = enc.encrypt(&pt, &mut r)?;
                let ct2 = enc.encrypt(&pt, &mut r)?;
                let ptq = params.encode(&x, slots, level, params.q()[level] as f64)?;
                out.op(
                    "encode",
                    threads,
                    level,
                    median_ms(a.reps, || {
                        params.encode(&x, slots, level, scale)?;
                        Ok(())
                    })?,
                );
                out.op(
                    "encrypt_pk",
                    threads,
                    level,
                    median_ms(a.reps, || {
                        enc.encrypt(&pt, &mut r)?;
                        Ok(())
                    })?,
                );
                out.op(
                    "decrypt_decode",
                    threads,
                    level,
                    median_ms(a.reps, || {
                        dec.decrypt(&ct)?;
                        Ok(())
                    })?,
                );
                out.op(
                    "add",
                    threads,
                    level,
                    median_ms(a.reps, || {
                        eval.add(&ct, &ct2)?;
                        Ok(())
                    })?,
                );
                out.op(
                    "ct_pt_mul_rescale",
                    threads,
                    level,
                    median_ms(a.reps, || {
                        eval.rescale(&eval.mul_plain(&ct, &ptq)?)?;
                        Ok(())
                    })?,
                );
                out.op(
                    "ct_const_mul_rescale",
                    threads,
                    level,
                    median_ms(a.reps, || {
                        eval.mul_const_to(&ct, Complex::new(0.5, 0.25), level - 1, scale)?;
                        Ok(())
                    })?,
                );
                out.op(
                    "ct_ct_mul_relin",
                    threads,
                    level,
                    median_ms(a.reps, || {
                        eval.relinearize(&eval.mul(&ct, &ct2)?)?;
                        Ok(())
                    })?,
                );
                let m = eval.relinearize(&eval.mul(&ct, &ct2)?)?;
                out.op(
                    "rescale",
                    threads,
                    level,
                    median_ms(a.reps, || {
                        eval.rescale(&m)?;
                        Ok(())
                    })?,
                );
                out.op(
                    "rotate",
                    threads,
                    level,
                    median_ms(a.reps, || {
                        eval.rotate(&ct, 1)?;
                        Ok(())
                    })?,
                );
                out.op(
                    "conjugate",
                    threads,
                    level,
                    median_ms(a.reps, || {
                        eval.conjugate(&ct)?;
                        Ok(())
                    })?,
                );
                out.op(
                    "rotate_hoisted_8",
                    threads,
                    level,
                    median_ms(a.reps, || {
                        eval.rotate_hoisted(&ct, &rots)?;
                        Ok(())
                    })?,
                );
                let top = params.max_level();
                let ctt = enc.encrypt(&params.encode(&x, slots, top, scale)?, &mut r)?;
                out.op(
                    "ct_ct_mul_relin",
                    threads,
                    top,
                    median_ms(a.reps, || {
                        eval.relinearize(&eval.mul(&ctt, &ctt)?)?;
                        Ok(())
                    })?,
                );
                out.op(
                    "rotate",
                    threads,
                    top,
                    median_ms(a.reps, || {
                        eval.rotate(&ctt, 1)?;
                        Ok(())
                    })?,
                );
                out.op(
                    "rotate_hoisted_8",
                    threads,
                    top,
                    median_ms(a.reps, || {
                        eval.rotate_hoisted(&ctt, &rots)?;
                        Ok(())
                    })?,
                );
                Ok(())
            })?;
        }
    }

    // 2. Bootstrapping, with exactly the keys it needs (generated lazily from its rotation list).
    let Some(b) = &bs else { return Ok(()) };
    let t = Instant::now();
    let (keys, encaps) = b.generate_keys(&sk, &mut rng)?;
    let ms = t.elapsed().as_secs_f64() * 1e3;
    let key_mib = (keys.memory_bytes() + encaps.as_ref().map_or(0, |e| e.memory_bytes())) >> 20;
    if a.json {
        println!(
            "{}",
            serde_json::json!({"op": "keygen_bootstrap", "n": params.n(), "threads": all, "ms": ms, "key_mib": key_mib, "galois_keys": keys.galois_elements().len(), "log_qp": params.log_qp()})
        );
    } else {
        println!(
            "log QP = {:.1}; bootstrapping keys {ms:.0} ms ({} Galois keys, {key_mib} MiB in all)",
            params.log_qp(),
            keys.galois_elements().len()
        );
    }
    let eval = Evaluator::new(&params, keys)?;
    let bslots = b.config().slots;
    let x = &x[..bslots];
    let ct0 = enc.encrypt(&params.encode(x, bslots, 0, scale)?, &mut rng)?;
    for &threads in &threads {
        pool(threads)?.install(|| -> anyhow::Result<()> {
            reset_peak();
            let cpu0 = cpu_ms();
            let t = Instant::now();
            let (res, ph) = b.bootstrap_timed(&eval, encaps.as_ref(), &ct0)?;
            let ms = t.elapsed().as_secs_f64() * 1e3;
            let cpu = cpu_ms().zip(cpu0).map(|(a, b)| a - b);
            let peak = peak_mib().unwrap_or(0);
            let got = dec.decrypt(&res)?;
            let errs: Vec<f64> = got.iter().zip(x).map(|(g, w)| (*g - *w).abs().max(f64::MIN_POSITIVE)).collect();
            let mean = -(errs.iter().map(|e| e.log2()).sum::<f64>() / errs.len() as f64);
            let min = -errs.iter().cloned().fold(0.0, f64::max).log2();
            if a.json {
                println!("{}", serde_json::json!({
                    "op": "bootstrap", "n": params.n(), "threads": threads, "ms": ms,
                    "precision_bits": mean, "min_precision_bits": min,
                    "levels_left": res.level(), "peak_mib": peak, "slots": bslots, "cpu_ms": cpu,
                    "phases_ms": {
                        "mod_raise": ph.mod_raise.as_secs_f64() * 1e3,
                        "coeffs_to_slots": ph.coeffs_to_slots.as_secs_f64() * 1e3,
                        "eval_mod": ph.eval_mod.as_secs_f64() * 1e3,
                        "slots_to_coeffs": ph.slots_to_coeffs.as_secs_f64() * 1e3,
                    }
                }));
            } else {
                println!(
                    "bootstrap              N={} threads={threads:<2} {ms:>10.0} ms (CPU {:.0} ms), precision mean {mean:.1} / min {min:.1} bits, {} levels left, peak {peak} MiB ({ph:?})",
                    params.n(),
                    cpu.unwrap_or(f64::NAN),
                    res.level()
                );
            }
            Ok(())
        })?;
    }
    Ok(())
}
