//! `privinfer bench serve`: the soak benchmark. Starts `privinfer serve` as a child process (so its
//! memory, threads and descriptors are the server's alone), keeps idle, slow (one byte a second)
//! and garbage connections open against it from their own loopback addresses, and runs honest
//! clients in this process, started together, for each concurrency of a sweep; some clients are
//! cut mid-session. Reports per concurrency the throughput, p50/p99 latency and whether every
//! client got the fixed-point reference output with no retry, and for the server its peak memory
//! against its budget and its idle memory, threads and descriptors before and after.

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use engine::soak::{self, Abuse, AbuseLoad, CutAfter};
use nn::FixedConfig;

use crate::private::parse_size;

#[derive(clap::Args)]
pub struct Args {
    /// ONNX model served (default: the bundled ResNet-20 file models/resnet20.onnx).
    #[arg(long, default_value = "models/resnet20.onnx")]
    model: PathBuf,
    /// Concurrent honest clients, one run each, started together.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8,16")]
    clients: Vec<usize>,
    /// Idle connections kept open (from 127.0.0.2).
    #[arg(long, default_value_t = 8)]
    idle: usize,
    /// Connections sending their hello one byte a second (from 127.0.0.3).
    #[arg(long, default_value_t = 8)]
    slow: usize,
    /// Connections sending garbage (from 127.0.0.4).
    #[arg(long, default_value_t = 8)]
    garbage: usize,
    /// Clients cut mid-session at the largest concurrency (from 127.0.2.x).
    #[arg(long, default_value_t = 2)]
    kill: usize,
    /// The server's --max-sessions.
    #[arg(long, default_value_t = 2)]
    max_sessions: usize,
    /// The server's --memory-budget.
    #[arg(long, default_value = "1536M", value_parser = parse_size)]
    memory_budget: u64,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
}

/// The child server: its address, predicted session memory and stderr line count.
struct ServerProcess {
    child: Child,
    addr: SocketAddr,
    predicted_mib: f64,
    log_lines: Arc<AtomicU64>,
}

fn start_server(a: &Args) -> Result<ServerProcess> {
    let exe = std::env::current_exe().context("locating the privinfer binary")?;
    let mut child = Command::new(exe)
        .args(["serve", "--listen", "127.0.0.1:0", "--model"])
        .arg(&a.model)
        .args(["--max-sessions", &a.max_sessions.to_string()])
        .args(["--memory-budget", &a.memory_budget.to_string()])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .context("starting privinfer serve")?;
    let stderr = child.stderr.take().expect("piped");
    let (tx, rx) = mpsc::channel();
    let log_lines = Arc::new(AtomicU64::new(0));
    let counted = log_lines.clone();
    thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(|l| l.ok()) {
            if counted.fetch_add(1, Ordering::Relaxed) < 2 {
                let _ = tx.send(line);
            }
        }
    });
    let first = || rx.recv_timeout(Duration::from_secs(120));
    let (l1, l2) = match (first(), first()) {
        (Ok(a), Ok(b)) => (a, b),
        _ => {
            let _ = child.kill();
            bail!("privinfer serve did not start (see its error above)");
        }
    };
    let addr: SocketAddr = l1
        .split(" on ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("unexpected serve output: {l1}"))?;
    let predicted_mib = l2
        .split("predicted peak ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("unexpected serve output: {l2}"))?;
    Ok(ServerProcess {
        child,
        addr,
        predicted_mib,
        log_lines,
    })
}

/// One honest client from `src`: (latency, exact, queue positions heard).
fn honest(
    src: IpAddr,
    addr: SocketAddr,
    x: &[f32],
    want: &[u64],
) -> Result<(Duration, bool, usize)> {
    let t0 = Instant::now();
    let cfg = transport::TcpConfig {
        timeout: Duration::from_secs(600),
        ..Default::default()
    };
    let mut ch = soak::channel_from(src, addr, cfg)?;
    let (inf, heard) = soak::infer_input(&mut ch, x)?;
    ch.shutdown();
    let exact = matches!(&inf.outcome, engine::Outcome::Logits(l) if l == want);
    Ok((t0.elapsed(), exact, heard))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

pub fn run(a: Args) -> Result<()> {
    if a.clients.is_empty() || a.clients.contains(&0) || *a.clients.iter().max().unwrap() > 250 {
        bail!("--clients takes concurrencies between 1 and 250, e.g. 1,2,4,8,16");
    }
    let model = nn::load(&a.model).with_context(|| format!("loading {}", a.model.display()))?;
    let shape = model.input_shape().to_vec();
    let (h, w) = match shape.as_slice() {
        [1, 3, h, w] => (*h, *w),
        s => bail!("the model input {s:?} is not a [1, 3, H, W] image"),
    };
    let (rgb, ih, iw) = nn::data::decode_image_rgb(crate::private::DEMO_IMAGE, "bundled sample")?;
    let x = nn::data::normalize_chw(&nn::data::fit_planar(&rgb, ih, iw, h, w).0);
    let fused = engine::plan::fused_pairs(&model, &engine::PlanConfig::default())?;
    let want = nn::fixed::run_fused(&model, &x, FixedConfig::new(37, 12)?, &fused)?.data;

    let mut server = start_server(&a)?;
    let pid = server.child.id();
    thread::sleep(Duration::from_millis(500));
    let (idle_rss, _) =
        soak::process_memory(pid).ok_or_else(|| anyhow!("cannot read the server's memory"))?;
    let (threads0, fds0) =
        soak::process_counts(pid).ok_or_else(|| anyhow!("cannot read the server's threads"))?;
    // Peak resident memory, sampled every 50 ms (the server's own VmHWM also counts start-up).
    let sampling = Arc::new(AtomicBool::new(true));
    let peak = Arc::new(AtomicU64::new(idle_rss));
    let sampler = {
        let (sampling, peak) = (sampling.clone(), peak.clone());
        thread::spawn(move || {
            while sampling.load(Ordering::Relaxed) {
                if let Some((rss, _)) = soak::process_memory(pid) {
                    peak.fetch_max(rss, Ordering::Relaxed);
                }
                thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let limit = Duration::from_secs(3600);
    let ip = |s: &str| -> IpAddr { s.parse().expect("a loopback address") };
    let abuse = [
        AbuseLoad::start(server.addr, ip("127.0.0.2"), Abuse::Idle, a.idle, limit),
        AbuseLoad::start(server.addr, ip("127.0.0.3"), Abuse::Slow, a.slow, limit),
        AbuseLoad::start(
            server.addr,
            ip("127.0.0.4"),
            Abuse::Garbage,
            a.garbage,
            limit,
        ),
    ];
    thread::sleep(Duration::from_millis(500));

    let largest = *a.clients.iter().max().unwrap();
    let mut rows = Vec::new();
    let mut all_ok = true;
    for &c in &a.clients {
        let t0 = Instant::now();
        let kills = if c == largest { a.kill } else { 0 };
        let cut: Vec<_> = (0..kills)
            .map(|k| {
                let (addr, x) = (server.addr, x.clone());
                thread::spawn(move || -> bool {
                    let cfg = transport::TcpConfig {
                        timeout: Duration::from_secs(600),
                        ..Default::default()
                    };
                    let Ok(ch) = soak::channel_from(ip(&format!("127.0.2.{k}")), addr, cfg) else {
                        return false;
                    };
                    let mut ch = CutAfter::new(ch, 6 + 5 * k);
                    soak::infer_input(&mut ch, &x).is_err()
                })
            })
            .collect();
        let clients: Vec<_> = (0..c)
            .map(|k| {
                let (addr, x, want) = (server.addr, x.clone(), want.clone());
                let src = ip(&format!("127.0.1.{}", k + 1));
                thread::spawn(move || honest(src, addr, &x, &want))
            })
            .collect();
        let mut lat = Vec::new();
        let (mut exact, mut failed, mut queued) = (0usize, Vec::new(), 0usize);
        for h in clients {
            match h.join().map_err(|_| anyhow!("client thread panicked"))? {
                Ok((d, ok, heard)) => {
                    lat.push(d.as_secs_f64() * 1e3);
                    exact += ok as usize;
                    queued += (heard > 0) as usize;
                }
                Err(e) => failed.push(format!("{e:#}")),
            }
        }
        let cut_ok = cut
            .into_iter()
            .map(|h| h.join())
            .filter(|r| matches!(r, Ok(true)))
            .count();
        let wall = t0.elapsed().as_secs_f64();
        lat.sort_by(f64::total_cmp);
        let ok = failed.is_empty() && exact == c && cut_ok == kills;
        all_ok &= ok;
        let row = serde_json::json!({
            "bench": "serve", "clients": c, "served": lat.len(), "exact": exact, "queued": queued,
            "failed": failed, "cut_mid_session": kills, "wall_s": wall,
            "throughput_per_min": lat.len() as f64 / wall * 60.0,
            "p50_ms": percentile(&lat, 50.0), "p99_ms": percentile(&lat, 99.0),
            "server_peak_rss_mib": peak.load(Ordering::Relaxed) as f64 / 1048576.0,
        });
        if a.json {
            println!("{row}");
        } else {
            println!(
                "{c:>3} clients: {}/{c} served exactly ({queued} queued first), {:.1} inferences/min, p50 {:.0} ms, p99 {:.0} ms, server peak {:.0} MiB{}",
                exact,
                row["throughput_per_min"].as_f64().unwrap_or(0.0),
                row["p50_ms"].as_f64().unwrap_or(0.0),
                row["p99_ms"].as_f64().unwrap_or(0.0),
                row["server_peak_rss_mib"].as_f64().unwrap_or(0.0),
                if failed.is_empty() { String::new() } else { format!("; FAILED: {failed:?}") }
            );
        }
        rows.push(row);
    }
    let opened: Vec<u64> = abuse.into_iter().map(AbuseLoad::stop).collect();
    // Let the server drop what is left and hand its memory back.
    let mut after = (0u64, 0usize, 0usize);
    for _ in 0..50 {
        thread::sleep(Duration::from_millis(200));
        let (rss, _) = soak::process_memory(pid).unwrap_or((0, 0));
        let (t, f) = soak::process_counts(pid).unwrap_or((0, 0));
        after = (rss, t, f);
        if (t, f) == (threads0, fds0) && rss <= idle_rss + (idle_rss >> 2) {
            break;
        }
    }
    sampling.store(false, Ordering::Relaxed);
    let _ = sampler.join();
    let peak_rss = peak.load(Ordering::Relaxed);
    let _ = server.child.kill();
    let _ = server.child.wait();
    let mib = |b: u64| b as f64 / 1048576.0;
    let within = peak_rss <= a.memory_budget;
    let total = serde_json::json!({
        "bench": "serve", "layer": "total", "model": a.model.display().to_string(),
        "max_sessions": a.max_sessions, "memory_budget_mib": mib(a.memory_budget),
        "predicted_session_mib": server.predicted_mib,
        "idle_rss_mib_before": mib(idle_rss), "idle_rss_mib_after": mib(after.0),
        "peak_rss_mib": mib(peak_rss), "within_budget": within,
        "threads_before": threads0, "threads_after": after.1, "fds_before": fds0, "fds_after": after.2,
        "abusive_connections_opened": {"idle": opened[0], "slow": opened[1], "garbage": opened[2]},
        "server_log_lines": server.log_lines.load(Ordering::Relaxed),
        "all_served_exactly": all_ok,
    });
    if a.json {
        println!("{total}");
    } else {
        println!(
            "server: peak {:.0} MiB (budget {:.0} MiB, one session predicted {:.0} MiB); idle {:.0} → {:.0} MiB, threads {} → {}, fds {} → {}; abusive connections opened: {} idle, {} slow, {} garbage",
            mib(peak_rss), mib(a.memory_budget), server.predicted_mib, mib(idle_rss), mib(after.0),
            threads0, after.1, fds0, after.2, opened[0], opened[1], opened[2]
        );
    }
    if !all_ok || !within {
        bail!("the soak failed: see the rows above");
    }
    Ok(())
}
