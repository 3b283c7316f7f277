//! `privinfer bench ot`: correlated-OT throughput and traffic, both parties in one process over
//! TCP loopback, one thread each. The OT sender (holder of Δ) plays the server, the receiver the
//! client: `bytes_c2s` is what the receiver sent.

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use ot::{CotBackend, CotConfig, CotReceiver, CotSender};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use transport::{Channel, Stats, TcpChannel, TcpConfig};

#[derive(clap::Args)]
pub struct Args {
    /// log2 of the COT counts to measure (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = vec![16u32, 18, 20, 22])]
    log_sizes: Vec<u32>,
    /// Which extension to run: silent, silent-small, iknp, or all.
    #[arg(long, default_value = "all")]
    backend: String,
    /// Also measure the silent steady state (one large LPN iteration after a warm-up).
    #[arg(long)]
    steady: bool,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
}

/// Nanoseconds the calling thread has spent on a CPU (Linux `schedstat`; `None` elsewhere), so
/// the per-core rate can be read off even when other processes share the cores.
fn thread_cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

struct Measure {
    setup: Duration,
    extend: Duration,
    /// CPU time of the sender's and the receiver's thread during `extend`.
    cpu: Option<(Duration, Duration)>,
    server: Stats,
    client: Stats,
    setup_bytes: u64,
}

/// One fresh session: setup (base OTs), an untimed `extend(warm)` when `warm > 0`, then one timed
/// `extend(buffered + n)` on each side. With `warm = 0` this is the cold cost of `n` COTs (for the
/// silent backend: its IKNP bootstrap and every LPN iteration the request needs); after a warm-up
/// it is the cost of producing `n` new COTs on top of the buffer.
fn measure(backend: CotBackend, warm: usize, n: usize) -> anyhow::Result<Measure> {
    let cfg = TcpConfig {
        max_message: 1 << 28,
        timeout: Duration::from_secs(120),
        ..TcpConfig::default()
    };
    let (mut server, mut client) = TcpChannel::loopback_pair(cfg)?;
    let config = CotConfig { backend };
    let barrier = Arc::new(Barrier::new(2));
    let b2 = barrier.clone();
    let recv = std::thread::spawn(
        move || -> anyhow::Result<(Stats, Stats, Vec<ot::Block>, Option<u64>)> {
            let mut r =
                CotReceiver::setup_with(&mut client, &mut ChaCha20Rng::from_entropy(), config)?;
            r.extend(&mut client, warm)?;
            let before = client.stats();
            let n = r.buffered() + n;
            b2.wait();
            let c0 = thread_cpu_ns();
            let t = r.extend(&mut client, n)?;
            let cpu = c0.and_then(|c0| Some(thread_cpu_ns()? - c0));
            b2.wait();
            Ok((before, client.stats(), t, cpu))
        },
    );
    let t0 = Instant::now();
    let mut s = CotSender::setup_with(&mut server, &mut ChaCha20Rng::from_entropy(), config)?;
    s.extend(&mut server, warm)?;
    let before = server.stats();
    let n = s.buffered() + n;
    barrier.wait();
    let setup = t0.elapsed();
    let t1 = Instant::now();
    let c0 = thread_cpu_ns();
    let q = s.extend(&mut server, n)?;
    let cpu_s = c0.and_then(|c0| Some(thread_cpu_ns()? - c0));
    barrier.wait();
    let extend = t1.elapsed();
    let (cb, ca, t, cpu_r) = recv
        .join()
        .map_err(|_| anyhow::anyhow!("receiver thread panicked"))??;
    // The outputs must be correlated OTs: t_i = q_i ⊕ lsb(t_i)·Δ.
    anyhow::ensure!(
        q.len() == n && t.len() == n,
        "got {} and {} COTs for {n}",
        q.len(),
        t.len()
    );
    let delta = s.delta();
    let bad = q
        .iter()
        .zip(&t)
        .filter(|(q, t)| **t != **q ^ delta.and_bit(t.lsb()))
        .count();
    anyhow::ensure!(bad == 0, "{bad} of {n} COTs violate the correlation");
    let cpu = match (cpu_s, cpu_r) {
        (Some(a), Some(b)) => Some((Duration::from_nanos(a), Duration::from_nanos(b))),
        _ => None,
    };
    Ok(Measure {
        setup,
        extend,
        cpu,
        server: server.stats().since(&before),
        client: ca.since(&cb),
        setup_bytes: before.bytes_sent + before.bytes_received,
    })
}

/// Prints one result line.
fn report(json: bool, op: &str, n: usize, m: &Measure) {
    let ms = m.extend.as_secs_f64() * 1e3;
    let c2s = m.client.bytes_sent;
    let s2c = m.server.bytes_sent;
    let rounds = m.server.rounds().max(m.client.rounds());
    let cot_per_s = n as f64 / m.extend.as_secs_f64();
    let bits = 8.0 * (c2s + s2c) as f64 / n as f64;
    // Per core: COTs per second of the busier party's CPU time.
    let (cpu_s, cpu_r) = m
        .cpu
        .map(|(a, b)| (a.as_secs_f64() * 1e3, b.as_secs_f64() * 1e3))
        .unzip();
    let per_core = m.cpu.map(|(a, b)| n as f64 / a.max(b).as_secs_f64());
    if json {
        println!(
            "{}",
            serde_json::json!({
                "op": op, "elements": n, "ms": ms, "bytes_c2s": c2s, "bytes_s2c": s2c,
                "rounds": rounds, "cot_per_s": cot_per_s, "bits_per_cot": bits,
                "setup_ms": m.setup.as_secs_f64() * 1e3, "setup_bytes": m.setup_bytes,
                "cpu_ms_sender": cpu_s, "cpu_ms_receiver": cpu_r, "cot_per_cpu_s": per_core,
            })
        );
    } else {
        println!(
            "{op:>17} n={n:<9} {ms:>9.1} ms {:>7.2} M COT/s ({:.2} M per CPU-second) {bits:>8.3} bits/COT  c2s {c2s} B  s2c {s2c} B  rounds {rounds}  (setup {:.1} ms, {} B)",
            cot_per_s / 1e6,
            per_core.unwrap_or(f64::NAN) / 1e6,
            m.setup.as_secs_f64() * 1e3,
            m.setup_bytes
        );
    }
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let backends: Vec<(&str, CotBackend)> = match a.backend.as_str() {
        "silent" => vec![("silent_cot", CotBackend::Silent)],
        "silent-small" => vec![("silent_small_cot", CotBackend::SilentSmall)],
        "iknp" => vec![("iknp_cot", CotBackend::Iknp)],
        "all" => vec![
            ("silent_cot", CotBackend::Silent),
            ("silent_small_cot", CotBackend::SilentSmall),
            ("iknp_cot", CotBackend::Iknp),
        ],
        other => anyhow::bail!("unknown --backend {other:?} (silent, silent-small, iknp, all)"),
    };
    for &lg in &a.log_sizes {
        anyhow::ensure!(
            (1..=26).contains(&lg),
            "--log-sizes entries must be in 1..=26, got {lg}"
        );
        let n = 1usize << lg;
        for &(op, backend) in &backends {
            report(a.json, op, n, &measure(backend, 0, n)?);
        }
    }
    if a.steady && backends.iter().any(|b| b.1 == CotBackend::Silent) {
        // Steady state: after a warm-up, one iteration of the large LPN set (its net output).
        let net = ot::ferret::LpnParams::FERRET_LARGE.net();
        report(
            a.json,
            "silent_cot_steady",
            net,
            &measure(CotBackend::Silent, ot::ferret::LARGE_THRESHOLD, net)?,
        );
    }
    Ok(())
}
