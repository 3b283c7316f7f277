//! `privinfer bench he`: timings of the lattice core's basic operations.
//!
//! Parameters mirror SEAL's 128-bit `BFVDefault` coefficient moduli at each `N`
//! (the last prime is the special prime), with a 20-bit batching prime `t`, so
//! that `bench/seal/bench_seal.py` measures the same operations at the same
//! `N` and modulus size. Each figure is the median of repeated runs.

use anyhow::{bail, Context};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use rlwe::serialize::{self, Form};
use rlwe::{
    BatchEncoder, Evaluator, GaloisKeys, Params, ParamsLiteral, PlaintextNtt, RelinKey,
    Representation, SecretKey,
};
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct Args {
    /// Ring degrees, comma-separated (4096, 8192, 16384).
    #[arg(long, value_delimiter = ',', default_value = "4096,8192")]
    n: Vec<usize>,
    /// One JSON object per line: {"op", "n", "log_q", "ns"}.
    #[arg(long)]
    json: bool,
    /// Target time spent per operation, in milliseconds.
    #[arg(long, default_value_t = 300)]
    budget_ms: u64,
}

/// SEAL 4.x `CoeffModulus::BFVDefault(N)` bit sizes (128-bit); the last is the special prime.
fn seal_default_bits(n: usize) -> anyhow::Result<(Vec<u32>, u32)> {
    Ok(match n {
        4096 => (vec![36, 36], 37),
        8192 => (vec![43, 43, 44, 44], 44),
        16384 => (vec![48, 48, 48, 49, 49, 49, 49, 49], 49),
        _ => bail!("unsupported N = {n} (choose 4096, 8192 or 16384)"),
    })
}

/// Median over repetitions of `op(setup())`, timing only `op`.
fn median<T>(budget: Duration, mut setup: impl FnMut() -> T, mut op: impl FnMut(T)) -> u128 {
    for _ in 0..2 {
        op(setup());
    }
    let probe = {
        let x = setup();
        let t = Instant::now();
        op(x);
        t.elapsed()
    };
    let reps = (budget.as_nanos() / probe.as_nanos().max(1)).clamp(7, 2001) as usize;
    let mut times = Vec::with_capacity(reps);
    for _ in 0..reps {
        let x = setup();
        let t = Instant::now();
        op(x);
        times.push(t.elapsed().as_nanos());
    }
    times.sort_unstable();
    times[reps / 2]
}

fn report(out: &mut dyn std::io::Write, json: bool, op: &str, n: usize, log_q: u32, ns: u128) {
    let r = if json {
        writeln!(
            out,
            "{}",
            serde_json::json!({"op": op, "n": n, "log_q": log_q, "ns": ns as u64})
        )
    } else {
        writeln!(
            out,
            "{op:>22}  N={n:<6} log_q={log_q:<4} {:>12.3} us",
            ns as f64 / 1e3
        )
    };
    r.expect("write report");
}

pub fn run(a: Args) -> anyhow::Result<()> {
    run_to(a, &mut std::io::stdout().lock())
}

fn run_to(a: Args, out: &mut dyn std::io::Write) -> anyhow::Result<()> {
    let budget = Duration::from_millis(a.budget_ms);
    let mut rng = ChaCha20Rng::seed_from_u64(0x5eed);
    for &n in &a.n {
        let (q_bits, p_bits) = seal_default_bits(n)?;
        let log_n = n.trailing_zeros();
        let t = math::prime::generate_primes(20, n, 1, &[])?[0];
        let lit = ParamsLiteral::from_bit_sizes(log_n, &q_bits, &[p_bits], t)?;
        let log_q: u32 = q_bits.iter().sum();
        let params = Params::new(lit).context("parameters")?;
        let l = params.max_level();
        let sk = SecretKey::generate(&params, &mut rng);
        let ev = Evaluator::new(&params);
        let enc = BatchEncoder::new(&params)?;
        let values: Vec<u64> = (0..n as u64).map(|i| (i * 7919) % t).collect();
        let pt = enc.encode(&values)?;

        // NTT: forward + inverse on one prime, through math's wrapper and raw tfhe-ntt
        let q0 = params.ctx_q().moduli()[0].value();
        let plan = math::NttPlan::new(n, q0)?;
        let mut buf: Vec<u64> = (0..n as u64).map(|i| i % q0).collect();
        let ns = median(
            budget,
            || (),
            |_| {
                plan.forward(&mut buf);
                plan.inverse(&mut buf);
            },
        );
        report(out, a.json, "ntt_fwd_inv", n, log_q, ns);
        let raw = tfhe_ntt::prime64::Plan::try_new(n, q0).context("tfhe-ntt plan")?;
        let ns = median(
            budget,
            || (),
            |_| {
                raw.fwd(&mut buf);
                raw.inv(&mut buf);
                raw.normalize(&mut buf);
            },
        );
        report(out, a.json, "ntt_fwd_inv_raw_tfhe", n, log_q, ns);

        let ns = median(
            budget,
            || (),
            |_| {
                std::hint::black_box(sk.encrypt(&pt, &mut rng).expect("encrypt"));
            },
        );
        report(out, a.json, "encrypt_sk", n, log_q, ns);

        let ct = sk.encrypt(&pt, &mut rng)?;
        let ptn = PlaintextNtt::new(&pt, l)?;
        // ciphertext and plaintext in NTT form (the form ct × pt is used in)
        let mut acc = ct.clone();
        let ns = median(
            budget,
            || (),
            |_| ev.mul_plain_assign(&mut acc, &ptn).expect("mul"),
        );
        report(out, a.json, "ct_pt_mul", n, log_q, ns);
        // from coefficient form and back (SEAL's default BFV path)
        let mut ctc = ct.clone();
        ctc.to_representation(Representation::Coefficient);
        let ns = median(
            budget,
            || ctc.clone(),
            |mut c| {
                ev.mul_plain_assign(&mut c, &ptn).expect("mul");
                c.to_representation(Representation::Coefficient);
                std::hint::black_box(c);
            },
        );
        report(out, a.json, "ct_pt_mul_coeff", n, log_q, ns);

        let rk = RelinKey::generate(&sk, &mut rng)?;
        let ns = median(
            budget,
            || (),
            |_| {
                std::hint::black_box(ev.mul(&ct, &ct, &rk).expect("mul"));
            },
        );
        report(out, a.json, "ct_ct_mul_relin", n, log_q, ns);

        let gk = GaloisKeys::for_rotations(&sk, &[1], false, &mut rng)?;
        let ns = median(
            budget,
            || (),
            |_| {
                std::hint::black_box(ev.rotate_rows(&ct, 1, &gk).expect("rotate"));
            },
        );
        report(out, a.json, "rotate", n, log_q, ns);

        // Eight rotations of one ciphertext, one by one and hoisted (one ModUp shared), per
        // rotation: what a BSGS baby step or a convolution tap costs.
        let steps: Vec<i64> = (1..=8).collect();
        let gk8 = GaloisKeys::for_rotations(&sk, &steps, false, &mut rng)?;
        let ns = median(
            budget,
            || (),
            |_| {
                for &st in &steps {
                    std::hint::black_box(ev.rotate_rows(&ct, st, &gk8).expect("rotate"));
                }
            },
        );
        report(out, a.json, "rotate_x8_per_rotation", n, log_q, ns / 8);
        let ns = median(
            budget,
            || (),
            |_| {
                std::hint::black_box(ev.rotate_rows_hoisted(&ct, &steps, &gk8).expect("rotate"));
            },
        );
        report(
            out,
            a.json,
            "rotate_hoisted_x8_per_rotation",
            n,
            log_q,
            ns / 8,
        );

        // BFV modulus switching Q_L → Q_{L−1}: from coefficient form (SEAL's native
        // BFV form) and from NTT form (ours after ct × pt; includes the transforms)
        let ns = median(
            budget,
            || ctc.clone(),
            |mut c| ev.mod_switch_to_next(&mut c).expect("switch"),
        );
        report(out, a.json, "mod_switch", n, log_q, ns);
        let ns = median(
            budget,
            || ct.clone(),
            |mut c| ev.mod_switch_to_next(&mut c).expect("switch"),
        );
        report(out, a.json, "mod_switch_ntt", n, log_q, ns);

        let mut full = ct.clone();
        ev.add_assign(&mut full, &ct)?; // not seeded: both parts are written
        let ns = median(
            budget,
            || (),
            |_| {
                std::hint::black_box(
                    serialize::ciphertext_to_bytes(&full, Form::Full).expect("ser"),
                );
            },
        );
        report(out, a.json, "serialize_ct", n, log_q, ns);
        let bytes = serialize::ciphertext_to_bytes(&full, Form::Full)?;
        let ns = median(
            budget,
            || (),
            |_| {
                std::hint::black_box(
                    serialize::ciphertext_from_bytes(&params, &bytes).expect("de"),
                );
            },
        );
        report(out, a.json, "deserialize_ct", n, log_q, ns);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_for_every_op() {
        let mut buf = Vec::new();
        run_to(
            Args {
                n: vec![4096],
                json: true,
                budget_ms: 1,
            },
            &mut buf,
        )
        .unwrap();
        let lines: Vec<serde_json::Value> = String::from_utf8(buf)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        for op in [
            "ntt_fwd_inv",
            "encrypt_sk",
            "ct_pt_mul",
            "ct_ct_mul_relin",
            "rotate",
            "rotate_hoisted_x8_per_rotation",
            "mod_switch",
            "serialize_ct",
        ] {
            let l = lines
                .iter()
                .find(|l| l["op"] == op)
                .unwrap_or_else(|| panic!("missing {op}"));
            assert_eq!(l["n"], 4096);
            assert_eq!(l["log_q"], 72);
            assert!(l["ns"].as_u64().unwrap() > 0);
        }
        assert!(run_to(
            Args {
                n: vec![1000],
                json: true,
                budget_ms: 1
            },
            &mut Vec::new()
        )
        .is_err());
    }
}
