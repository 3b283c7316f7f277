//! `privinfer bench nonlinear` (alias `relu`): the non-linear protocols of the `mpc` crate with
//! both parties in one process over TCP loopback, one thread each. P0 plays the server, P1 the
//! client, so `bytes_c2s` is what P1 sent. Every result is checked against the plaintext function
//! (`exact` in the rows). `ring_to_field` / `field_to_ring` are the share conversions between
//! Z_{2^ℓ} and a batching prime Z_p for values of the fixed-point range (one OT per element).
//! `gelu` and `softmax65` / `softmax257` (rows of 65 and 257) are the transformer functions of
//! `nn::approx`, checked against that fixed-point definition and measured against float
//! (`max_abs_err`); their inputs are typical ones (GELU uniform in [−8, 8), softmax rows uniform
//! in [−12, 12), LayerNorm rows of 256 uniform in [−3, 4)), the others uniform over the
//! fixed-point range. `layernorm256` is the normalization without γ, β (a channel-affine linear
//! op).

use std::sync::{Arc, Barrier};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use mpc::{
    plain, FieldModulus, GeluSpec, LayerNormSpec, Party, Ring, Session, Shares, SoftmaxSpec,
};
use nn::approx::{Gelu, GeluForm, LayerNorm, Softmax};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use transport::{Channel, EmulatedChannel, NetworkModel, Stats, TcpChannel, TcpConfig};

#[derive(clap::Args)]
pub struct Args {
    /// Number of elements.
    #[arg(long, default_value_t = 1 << 16)]
    elements: usize,
    /// Ring bit width ℓ.
    #[arg(long, default_value_t = 37)]
    ell: u32,
    /// Fixed-point scale s (truncation shift, approximate-ReLU cut).
    #[arg(long, default_value_t = 12)]
    scale: u32,
    /// Elements per protocol call (larger batches use more memory, fewer rounds).
    #[arg(long, default_value_t = 1 << 17)]
    batch: usize,
    /// Bits of the prime p of the conversions: the largest prime below 2^bits with
    /// p ≡ 1 (mod 2·8192), a batching prime for N = 8192 (default ℓ + 1).
    #[arg(long)]
    prime_bits: Option<u32>,
    /// Least COTs fetched from the OT layer per refill and direction.
    #[arg(long, default_value_t = mpc::DEFAULT_REFILL)]
    refill: usize,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
}

/// The four ops, then extras (among them the latency forms the planner takes on a slow
/// link: `softmax65_wide`, its exponential's tables in the product ring; `layernorm256_flat`, its
/// last truncation flat): the known-sign truncation in its flat form (fewer flights,
/// more bits), the fused exact truncation + ReLU, Cheetah's one-bit-error known-sign truncation
/// (not the binding semantics), and the fused truncation + ReLU6 (inputs read at scale 2^{2s};
/// run when 2s + 5 ≤ ℓ, see [`ops`]).
const OPS: [&str; 17] = [
    "relu",
    "relu_approx",
    "trunc",
    "trunc_known_sign",
    "trunc_known_sign_flat",
    "trunc_relu",
    "trunc_known_sign_approx",
    "trunc_relu6",
    "ring_to_field",
    "field_to_ring",
    "gelu",
    "softmax65",
    "softmax257",
    "layernorm256",
    "softmax65_wide",
    "layernorm256_flat",
    "gelu_signed",
];

/// Row length of a softmax or LayerNorm op (`softmax65` → 65), 1 for the element-wise ops.
fn row_len(op: &str) -> usize {
    let op = op.split('_').next().unwrap_or(op);
    op.strip_prefix("softmax")
        .or_else(|| op.strip_prefix("layernorm"))
        .and_then(|r| r.parse().ok())
        .unwrap_or(1)
}

/// The transformer functions' tables (public, built by both parties from `nn::approx`), for
/// the ops this ring and scale run ([`ops`]).
struct Tables {
    gelu: Option<Gelu>,
    gelu_signed: Option<Gelu>,
    softmax: Option<Softmax>,
    layernorm: Option<LayerNorm>,
}

impl Tables {
    fn new(ops: &[&str], ell: u32, s: u32) -> Tables {
        let has = |p: &str| ops.iter().any(|o| o.starts_with(p));
        Tables {
            gelu: has("gelu").then(|| Gelu::new(s, GeluForm::Abs)),
            gelu_signed: has("gelu_signed").then(|| Gelu::new(s, GeluForm::Signed)),
            softmax: has("softmax").then(|| Softmax::new(s)),
            layernorm: has("layernorm").then(|| LayerNorm::new(s, ell, 256, 1e-5)),
        }
    }
    /// The bits-first form, or for `gelu_signed` the Signed form.
    fn gelu(&self, op: &str) -> &Gelu {
        match op {
            "gelu_signed" => self.gelu_signed.as_ref(),
            _ => self.gelu.as_ref(),
        }
        .expect("gelu is in the op list")
    }
    fn softmax(&self) -> &Softmax {
        self.softmax.as_ref().expect("softmax is in the op list")
    }
    fn layernorm(&self) -> &LayerNorm {
        self.layernorm
            .as_ref()
            .expect("layernorm is in the op list")
    }
    fn gelu_spec(&self, op: &str) -> GeluSpec<'_> {
        engine::approx::gelu_spec(self.gelu(op), mpc::Party::P0)
    }
    /// The bits-first form, or for `layernorm256_flat` the flat last truncation.
    fn layernorm_spec(&self, op: &str) -> LayerNormSpec<'_> {
        let tail = if op.ends_with("_flat") {
            mpc::TruncForm::Flat
        } else {
            mpc::TruncForm::Tree
        };
        // Fresh input shares: neither party knows its share first.
        engine::approx::layernorm_spec(self.layernorm(), tail, mpc::Party::P1)
    }
    /// The bits-first form, or for `softmax65_wide` the wide tables.
    fn softmax_spec(&self, op: &str) -> SoftmaxSpec<'_> {
        engine::approx::softmax_spec(self.softmax(), op.ends_with("_wide"), 0)
    }
}

/// The ops this ring and shift support.
fn ops(ell: u32, s: u32) -> Vec<&'static str> {
    OPS.iter()
        .copied()
        .filter(|&op| op != "trunc_relu6" || 2 * s + 5 <= ell)
        .filter(|&op| {
            let f = match op {
                o if o.starts_with("gelu") => nn::approx::Function::Gelu,
                o if o.starts_with("softmax") => nn::approx::Function::Softmax,
                o if o.starts_with("layernorm") => nn::approx::Function::LayerNorm,
                _ => return true,
            };
            f.unsupported(s, ell, row_len(op)).is_none()
        })
        .collect()
}

/// This thread's CPU time so far (Linux `/proc/thread-self/schedstat`, first field in ns), for
/// per-party CPU figures that a loaded machine inflates far less than wall time.
fn thread_cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

/// The cost model of one benchmarked op.
fn op_cost(
    ring: Ring,
    s: u32,
    p: FieldModulus,
    tables: &Tables,
    op: &str,
    n: usize,
) -> Result<mpc::cost::Cost> {
    use mpc::cost;
    Ok(match op {
        o if o.starts_with("gelu") => cost::gelu(&tables.gelu_spec(o), ring.bits(), n)?,
        o if o.starts_with("layernorm") => {
            cost::layernorm(&tables.layernorm_spec(o), ring.bits(), n)?
        }
        o if o.starts_with("softmax") => {
            cost::softmax(&tables.softmax_spec(o), ring.bits(), n, row_len(o))?
        }
        "ring_to_field" => cost::ring_to_field_in_range(ring, p.bits(), n),
        "field_to_ring" => cost::field_to_ring_in_range(ring, n),
        "relu" => cost::relu(ring, n),
        "relu_approx" => cost::relu_approx(ring, s, n),
        "trunc" => cost::trunc(ring, s, n),
        "trunc_known_sign" => cost::trunc_known_sign(ring, s, n),
        "trunc_known_sign_flat" => {
            cost::trunc_known_sign_form(ring, s, n, mpc::TruncForm::Flat, mpc::Party::P1)
        }
        "trunc_relu" => cost::trunc_relu(ring, s, n),
        "trunc_relu6" => cost::trunc_relu6(ring, s, n),
        _ => cost::trunc_known_sign_approx(ring, s, n),
    })
}

/// One party's measurement of one op.
struct Measure {
    ms: f64,
    stats: Stats,
    ot_sent: u64,
    ot_recv: u64,
    cots: u64,
    ot_ms: f64,
    cpu_ms: Option<f64>,
    out: Vec<u64>,
}

fn party(
    p: Party,
    mut ch: EmulatedChannel<TcpChannel>,
    inputs: Vec<Vec<u64>>,
    xf: Vec<u64>,
    a: &ArgsCopy,
    tables: &Tables,
    bar: Arc<Barrier>,
) -> Result<(Stats, Vec<Measure>)> {
    let ring = Ring::new(a.ell)?;
    let mut rng = ChaCha20Rng::from_entropy();
    let t0 = ch.stats();
    let cfg = mpc::SessionConfig {
        refill: a.refill,
        ..Default::default()
    };
    let mut sess = Session::setup_with(&mut ch, p, &mut rng, cfg)?;
    let setup = ch.stats().since(&t0);
    let mut res = Vec::new();
    for (oi, op) in ops(a.ell, a.scale).into_iter().enumerate() {
        let x = &inputs[oi];
        // Softmax batches hold whole rows.
        let row = row_len(op);
        let batch = (a.batch / row).max(1) * row;
        bar.wait();
        let before = ch.stats();
        let ot_before = sess.ot_usage();
        let t = Instant::now();
        let cpu0 = thread_cpu_ns();
        let mut out = Vec::with_capacity(x.len());
        // COT generation (silent-OT refills) is done ahead of each batch and timed apart, so
        // `ms`/`cpu_ms` are the protocol's own and `ot_ms` the OT layer's.
        let mut pre = std::time::Duration::ZERO;
        let mut pre_cpu = 0u64;
        for (k, chunk) in x.chunks(batch).enumerate() {
            let (send, recv) = op_cost(ring, a.scale, a.p, tables, op, chunk.len())?.cots_for(p);
            let (tp, cp) = (Instant::now(), thread_cpu_ns());
            sess.prefetch(&mut ch, send, recv)?;
            pre += tp.elapsed();
            pre_cpu += thread_cpu_ns().zip(cp).map_or(0, |(b, a)| b - a);
            let xs = Shares::new(ring, a.scale, chunk.to_vec())?;
            if op == "ring_to_field" {
                out.extend(sess.ring_to_field_in_range(&mut ch, ring, chunk, a.p)?);
                continue;
            }
            if op == "field_to_ring" {
                let fc = &xf[k * a.batch..(k * a.batch + chunk.len())];
                out.extend(sess.field_to_ring_in_range(&mut ch, a.p, fc, ring)?);
                continue;
            }
            let y = match op {
                "relu" => sess.relu(&mut ch, &xs)?,
                "relu_approx" => sess.relu_approx(&mut ch, &xs)?,
                "trunc" => sess.trunc(&mut ch, &xs, a.scale)?,
                "trunc_known_sign" => sess.trunc_known_sign(&mut ch, &xs, a.scale)?,
                "trunc_known_sign_flat" => {
                    sess.trunc_known_sign_with(&mut ch, &xs, a.scale, mpc::TruncForm::Flat)?
                }
                "trunc_relu" => sess.trunc_relu(&mut ch, &xs, a.scale)?,
                "trunc_relu6" => sess.trunc_relu6(&mut ch, &xs, a.scale)?,
                o if o.starts_with("gelu") => sess.gelu(&mut ch, &xs, &tables.gelu_spec(o))?,
                o if o.starts_with("layernorm") => {
                    sess.layernorm(&mut ch, &xs, &tables.layernorm_spec(o))?
                }
                o if o.starts_with("softmax") => {
                    sess.softmax(&mut ch, &xs, row, &tables.softmax_spec(o))?
                }
                _ => sess.trunc_known_sign_approx(&mut ch, &xs, a.scale)?,
            };
            out.extend(y.data);
        }
        ch.flush()?;
        let ms = (t.elapsed() - pre).as_secs_f64() * 1e3;
        let cpu_ms = match (cpu0, thread_cpu_ns()) {
            (Some(a), Some(b)) => Some((b - a - pre_cpu) as f64 / 1e6),
            _ => None,
        };
        let ot = sess.ot_usage();
        res.push(Measure {
            ms,
            stats: ch.stats().since(&before),
            ot_sent: ot.bytes_sent - ot_before.bytes_sent,
            ot_recv: ot.bytes_received - ot_before.bytes_received,
            cots: (ot.cots_sent - ot_before.cots_sent)
                + (ot.cots_received - ot_before.cots_received),
            ot_ms: (ot.time - ot_before.time).as_secs_f64() * 1e3,
            cpu_ms,
            out,
        });
    }
    Ok((setup, res))
}

#[derive(Clone, Copy)]
struct ArgsCopy {
    refill: usize,
    ell: u32,
    scale: u32,
    batch: usize,
    p: FieldModulus,
}

pub fn run(args: Args) -> Result<()> {
    let ring = Ring::new(args.ell)?;
    if args.elements == 0 || args.batch == 0 {
        bail!("--elements and --batch must be positive");
    }
    let bits = args.prime_bits.unwrap_or(args.ell + 1);
    let p = math::prime::generate_primes(bits, 8192, 1, &[])
        .ok()
        .and_then(|v| v.first().copied())
        .filter(|&p| (p as u128) >= (1u128 << args.ell) - 1)
        .ok_or_else(|| {
            anyhow::anyhow!(
                "--prime-bits {bits}: no batching prime p ≥ 2^ℓ − 1 below 2^{bits} (ℓ = {})",
                args.ell
            )
        })?;
    let a = ArgsCopy {
        refill: args.refill,
        ell: args.ell,
        scale: args.scale,
        batch: args.batch,
        p: FieldModulus::new(p)?,
    };
    // Inputs within the fixed-point range assumption |x| < 2^{ℓ−2}, randomly shared.
    let mut rng = ChaCha20Rng::from_entropy();
    let lim = 1u64 << (args.ell - 2);
    let values: Vec<u64> = (0..args.elements)
        .map(|_| ring.from_signed((rng.next_u64() % (2 * lim - 1)) as i64 - (lim as i64 - 1)))
        .collect();
    // Typical transformer inputs for GELU and softmax (module documentation).
    let one = (1u64 << args.scale) as f64;
    let uniform = |rng: &mut ChaCha20Rng, lo: f64, hi: f64| {
        let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        ring.from_signed(((lo + (hi - lo) * u) * one).round() as i64)
    };
    let op_list = ops(args.ell, args.scale);
    let op_values: Vec<Vec<u64>> = op_list
        .iter()
        .map(|&op| {
            let row = row_len(op);
            let n = (args.elements / row).max(1) * row;
            match op {
                o if o.starts_with("gelu") => {
                    (0..n).map(|_| uniform(&mut rng, -8.0, 8.0)).collect()
                }
                o if o.starts_with("softmax") => {
                    (0..n).map(|_| uniform(&mut rng, -12.0, 12.0)).collect()
                }
                o if o.starts_with("layernorm") => {
                    (0..n).map(|_| uniform(&mut rng, -3.0, 4.0)).collect()
                }
                _ => values.clone(),
            }
        })
        .collect();
    let (mut in0, mut in1) = (Vec::new(), Vec::new());
    for v in &op_values {
        let (a, b) = mpc::share(ring, v, &mut rng);
        in0.push(a);
        in1.push(b);
    }
    // The same values over Z_p, randomly shared there.
    let fvals: Vec<u64> = values
        .iter()
        .map(|&v| ring.to_signed(v).rem_euclid(p as i64) as u64)
        .collect();
    let f0: Vec<u64> = (0..fvals.len()).map(|_| rng.next_u64() % p).collect();
    let f1: Vec<u64> = fvals
        .iter()
        .zip(&f0)
        .map(|(&v, &a)| (v + p - a) % p)
        .collect();
    let tables = Arc::new(Tables::new(&op_list, args.ell, args.scale));

    let (c0, c1) = TcpChannel::loopback_pair(TcpConfig::default()).context("TCP loopback")?;
    // A link without delay that counts the latency hops.
    let (c0, c1) = transport::emulate(c0, c1, &NetworkModel::LOOPBACK);
    let bar = Arc::new(Barrier::new(2));
    let b1 = bar.clone();
    let t1 = tables.clone();
    let h = std::thread::spawn(move || party(Party::P1, c1, in1, f1, &a, &t1, b1));
    let r0 = party(Party::P0, c0, in0, f0, &a, &tables, bar);
    let r1 = h
        .join()
        .map_err(|_| anyhow::anyhow!("client thread panicked"))?;
    let (setup0, m0) = r0?;
    let (_, m1) = r1?;

    if args.json {
        println!(
            "{{\"op\":\"setup\",\"bytes_c2s\":{},\"bytes_s2c\":{},\"rounds\":{}}}",
            setup0.bytes_received,
            setup0.bytes_sent,
            setup0.rounds()
        );
    } else {
        println!(
            "setup: {} B c2s, {} B s2c, {} rounds",
            setup0.bytes_received,
            setup0.bytes_sent,
            setup0.rounds()
        );
        println!(
            "{:<24} {:>9} {:>10} {:>10} {:>12} {:>12} {:>7} {:>9} {:>9} {:>8}",
            "op",
            "elements",
            "ms",
            "OT ms",
            "bytes_c2s",
            "bytes_s2c",
            "rounds",
            "bits/el",
            "OT bits",
            "COTs/el"
        );
    }
    for (i, op) in op_list.iter().enumerate() {
        let (p0, p1) = (&m0[i], &m1[i]);
        let vals = &op_values[i];
        let got: Vec<u64> = (0..vals.len())
            .map(|j| {
                if *op == "ring_to_field" {
                    (p0.out[j] + p1.out[j]) % p
                } else {
                    ring.add(p0.out[j], p1.out[j])
                }
            })
            .collect();
        // The transformer ops row by row (GELU: rows of one): equal to the fixed-point
        // definition, and the largest |output − float function| (real values).
        let mut max_err: Option<f64> = None;
        if ["gelu", "softmax", "layernorm"]
            .iter()
            .any(|p| op.starts_with(p))
        {
            let row = row_len(op);
            let mut worst = 0f64;
            for (r, (g, x)) in got.chunks(row).zip(vals.chunks(row)).enumerate() {
                let xf: Vec<f64> = x.iter().map(|&v| ring.to_signed(v) as f64 / one).collect();
                let (want, float) = match *op {
                    o if o.starts_with("gelu") => (
                        vec![tables.gelu(o).eval(args.ell, x[0])],
                        vec![nn::approx::gelu_f64(xf[0])],
                    ),
                    o if o.starts_with("softmax") => (
                        tables.softmax().eval_row(args.ell, x),
                        nn::approx::softmax_f64(&xf),
                    ),
                    _ => (
                        tables.layernorm().eval_row(args.ell, x),
                        nn::approx::layernorm_f64(&xf, 1e-5),
                    ),
                };
                if g != want.as_slice() {
                    bail!("{op}: wrong result in row {r}");
                }
                for (gv, f) in g.iter().zip(float) {
                    worst = worst.max((ring.to_signed(*gv) as f64 / one - f).abs());
                }
            }
            max_err = Some(worst);
        }
        for (j, &x) in vals.iter().enumerate() {
            let got = got[j];
            let ok = match *op {
                _ if max_err.is_some() => true,
                "ring_to_field" => got == fvals[j],
                "field_to_ring" => got == x,
                "relu" => got == plain::relu(ring, x),
                "relu_approx" => plain::relu_approx_allowed(ring, x, args.scale).contains(&got),
                "trunc_relu" => got == plain::relu(ring, plain::trunc(ring, x, args.scale)),
                "trunc_relu6" => {
                    got == plain::relu6(ring, plain::trunc(ring, x, args.scale), args.scale)
                }
                "trunc_known_sign_approx" => {
                    plain::trunc_approx_allowed(ring, x, args.scale).contains(&got)
                }
                _ => got == plain::trunc(ring, x, args.scale),
            };
            if !ok {
                bail!("{op}: wrong result at element {j}");
            }
        }
        let n = vals.len() as f64;
        let total = p0.stats.bytes_sent + p0.stats.bytes_received;
        let bits = total as f64 * 8.0 / n;
        let ot_bits = (p0.ot_sent + p0.ot_recv) as f64 * 8.0 / n;
        let cots = p0.cots as f64 / n;
        let ms = p0.ms.max(p1.ms);
        if args.json {
            println!(
                "{{\"op\":\"{op}\",\"elements\":{},\"ell\":{},\"scale\":{},\"exact\":{},\"ms\":{ms:.1},\"ot_ms\":{:.1},\"cpu_ms_p0\":{},\"cpu_ms_p1\":{},\"bytes_c2s\":{},\"bytes_s2c\":{},\"rounds\":{},\"hops\":{},\"bits_per_element\":{bits:.2},\"protocol_bits_per_element\":{:.2},\"formula_bits_per_element\":{:.2},\"ot_bits_per_element\":{ot_bits:.2},\"cots_per_element\":{cots:.2},\"max_abs_err\":{}}}",
                vals.len(),
                args.ell,
                args.scale,
                // Every element was checked: equal to the plaintext function, or for the
                // approximate ops within their documented set (not exact).
                !op.ends_with("_approx"),
                p0.ot_ms.max(p1.ot_ms),
                fmt_opt(p0.cpu_ms),
                fmt_opt(p1.cpu_ms),
                p0.stats.bytes_received,
                p0.stats.bytes_sent,
                p0.stats.rounds(),
                p0.stats.hops.max(p1.stats.hops),
                bits - ot_bits,
                op_cost(ring, args.scale, a.p, &tables, op, vals.len())?.bits as f64 / n,
                max_err.map_or_else(|| "null".to_string(), |e| format!("{e:.3e}"))
            );
        } else {
            println!(
                "{:<24} {:>9} {:>10.1} {:>10.1} {:>12} {:>12} {:>7} {:>9.2} {:>9.2} {:>8.2}",
                op,
                vals.len(),
                ms,
                p0.ot_ms.max(p1.ot_ms),
                p0.stats.bytes_received,
                p0.stats.bytes_sent,
                p0.stats.rounds(),
                bits,
                ot_bits,
                cots
            );
        }
    }
    // Amortized silent-OT cost over the whole run (all ops): measured OT traffic / COTs used.
    let ot_bytes: u64 = m0.iter().map(|m| m.ot_sent + m.ot_recv).sum();
    let cots: u64 = m0.iter().map(|m| m.cots).sum();
    let per_cot = ot_bytes as f64 * 8.0 / cots.max(1) as f64;
    if args.json {
        println!("{{\"op\":\"ot_total\",\"cots\":{cots},\"ot_bytes\":{ot_bytes},\"bits_per_cot\":{per_cot:.3}}}");
    } else {
        println!("OT over all ops: {cots} COTs, {ot_bytes} B, {per_cot:.3} bits/COT");
    }
    Ok(())
}

fn fmt_opt(x: Option<f64>) -> String {
    x.map_or_else(|| "null".to_string(), |v| format!("{v:.1}"))
}
