//! The private-inference verbs: `demo`, `serve`, `infer` and `bench --model`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use engine::handshake::Reveal;
use engine::{
    EngineError, Inference, ModelService, Outcome, Plan, PlanConfig, Server, ServerConfig,
    ServerModel,
};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use nn::FixedConfig;
use transport::{NetworkModel, TcpConfig};

/// The bundled demo model: ResNet-20 for CIFAR-10 with its pretrained weights (models/README.md).
const DEMO_MODEL: &[u8] = include_bytes!("../../../models/resnet20.onnx");
/// The bundled demo image: CIFAR-10 test image 0 (a cat), lossless.
pub(crate) const DEMO_IMAGE: &[u8] = include_bytes!("../../../models/samples/cifar10_00_3.png");
const DEMO_IMAGE_NAME: &str = "cifar10_00_3.png";

/// Options shared by the verbs that build a server model.
#[derive(clap::Args, Clone)]
pub struct ModelOpts {
    /// Ring bit width ℓ of the shares.
    #[arg(long, default_value_t = 37)]
    ell: u32,
    /// Fractional bits s of the fixed-point encoding.
    #[arg(long, default_value_t = 12)]
    scale: u32,
    /// Reveal only the top-1 label to the client (private argmax), not the logits.
    #[arg(long)]
    label_only: bool,
    /// Bandwidth (Mbit/s) the planner assumes when it trades computation for bytes in the
    /// linear layers: a small value chooses packed HE responses (fewer bytes, more key switches).
    #[arg(long, default_value_t = 400)]
    plan_mbps: u64,
    /// Round-trip time (ms) the planner assumes with --plan-mbps: it decides which rescales take
    /// the flat form (fewer flights for more bits).
    #[arg(long, default_value_t = 40.0)]
    plan_rtt_ms: f64,
    /// Linear-layer protocols: auto (per layer, the lowest estimated time), cheetah, simd (slot
    /// encoding over a prime field), hyena (its padded channel-minor convolution), falcon (dense
    /// packing of depthwise and grouped convs), circulant (block-circulant convs and FCs,
    /// declared by the model or found in the weights), cirencode (the same layers by PrivCirNet's
    /// NTT encoding on simd), ot (every layer by correlated OT) or winograd (3×3 stride-1 convs by Winograd on
    /// the OT product, the largest tile the ring's headroom allows; ot elsewhere); simd, hyena,
    /// falcon, circulant and cirencode run wherever they apply, Cheetah elsewhere.
    #[arg(long, default_value = "auto")]
    protocol: engine::LinearPolicy,
    /// Bytes the falcon layers may send: free (what the estimated time favours), cheetah (each
    /// no more than the Cheetah plan of the same layer) or cheetah-total (together no more than
    /// Cheetah's plans of them).
    #[arg(long, default_value = "free", value_parser = crate::parse_dense_bytes)]
    dense_bytes: linear::DenseBytes,
}

impl ModelOpts {
    fn plan_config(&self) -> anyhow::Result<PlanConfig> {
        if self.plan_mbps == 0 {
            bail!("--plan-mbps must be at least 1");
        }
        let mut cfg = PlanConfig {
            ell: self.ell,
            scale: self.scale,
            linear: self.protocol,
            ..PlanConfig::default()
        };
        if !(self.plan_rtt_ms.is_finite() && (0.0..=60_000.0).contains(&self.plan_rtt_ms)) {
            bail!("--plan-rtt-ms must be between 0 and 60000");
        }
        cfg.cheetah.bandwidth_bytes_per_s = self.plan_mbps.saturating_mul(1_000_000 / 8);
        cfg.rtt_us = (self.plan_rtt_ms * 1e3).round() as u64;
        cfg.cheetah.dense_bytes = self.dense_bytes;
        Ok(cfg)
    }
    fn reveal(&self) -> Reveal {
        if self.label_only {
            Reveal::Label
        } else {
            Reveal::Logits
        }
    }
}

fn load_model(path: Option<&Path>) -> anyhow::Result<(nn::Model, String)> {
    match path {
        Some(p) => Ok((
            nn::load(p).with_context(|| format!("loading {}", p.display()))?,
            p.display().to_string(),
        )),
        None => Ok((
            nn::import::from_bytes(DEMO_MODEL, &nn::ImportOptions::default())
                .context("bundled model")?,
            "bundled ResNet-20 (CIFAR-10)".into(),
        )),
    }
}

/// Reads an image (or the bundled one) as a normalized input of the model's input shape,
/// fitting other sizes unless `strict` (and saying so on stderr).
fn load_input(
    image: Option<&Path>,
    shape: &[usize],
    strict: bool,
) -> anyhow::Result<(Vec<f32>, String)> {
    let (h, w) = match shape {
        [1, 3, h, w] => (*h, *w),
        s => bail!("the model input {s:?} is not a [1, 3, H, W] image"),
    };
    let mode = if strict {
        nn::data::Resize::Strict
    } else {
        nn::data::Resize::Fit
    };
    let (x, fit, name) = match image {
        Some(p) => {
            let (x, fit) = nn::data::load_image_as(p, h, w, mode)?;
            (x, fit, p.display().to_string())
        }
        None => {
            let (x, fit) = nn::data::image_from_bytes_as(DEMO_IMAGE, DEMO_IMAGE_NAME, h, w, mode)?;
            (x, fit, DEMO_IMAGE_NAME.to_string())
        }
    };
    if let Some(f) = fit {
        eprintln!("{name}: {f} to the model's {w}×{h} input (--no-resize refuses instead)");
    }
    Ok((x, name))
}

fn quantize(x: &[f32], plan: &Plan) -> Result<Vec<u64>, EngineError> {
    let f = FixedConfig::new(plan.ell, plan.scale)?;
    Ok(x.iter().map(|&v| f.encode(v)).collect())
}

fn progress_bar(quiet: bool, what: &str) -> ProgressBar {
    let pb = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr())
    };
    pb.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] layer {pos}/{len} {elapsed}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    pb.set_message(what.to_string());
    pb
}

fn argmax(v: &[f64]) -> usize {
    v.iter()
        .enumerate()
        .fold(0, |best, (i, &x)| if x > v[best] { i } else { best })
}

fn class_name(plan: &Plan, i: usize) -> String {
    let classes: usize = plan.steps[plan.output].shape.iter().product();
    if classes == 10 {
        format!("{i} ({})", nn::data::CIFAR10_CLASSES[i])
    } else {
        i.to_string()
    }
}

fn mib(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

/// Starts a server for one client on an ephemeral loopback port; returns its address and thread.
fn loopback_server(
    model: ServerModel,
    reveal: Reveal,
) -> anyhow::Result<(std::net::SocketAddr, thread::JoinHandle<anyhow::Result<()>>)> {
    let tcp = TcpConfig {
        timeout: Duration::from_secs(600),
        ..TcpConfig::default()
    };
    let server = Server::bind(
        "127.0.0.1:0",
        ServerConfig {
            max_sessions: 1,
            // Large models plan and set up for a while on small machines.
            handshake_timeout: Duration::from_secs(600),
            tcp,
            ..ServerConfig::default()
        },
    )?;
    let addr = server.local_addr()?;
    let service = Arc::new(ModelService::new(model, reveal)?);
    let h = thread::spawn(move || -> anyhow::Result<()> {
        server.run(service, Some(1))?;
        Ok(())
    });
    Ok((addr, h))
}

/// Runs one private inference against a fresh loopback server, or, with `net`, both parties over
/// an emulated link (transport::emulate) around a TCP loopback pair.
fn private_run(
    model: &nn::Model,
    opts: &ModelOpts,
    x: &[f32],
    quiet: bool,
    net: Option<&NetworkModel>,
) -> anyhow::Result<Inference> {
    let server_model = ServerModel::new(model, &opts.plan_config()?)?;
    let steps = server_model.plan.steps.len();
    if let Some(net) = net {
        let service = ModelService::new(server_model, opts.reveal())?;
        let tcp = TcpConfig {
            timeout: Duration::from_secs(600),
            ..TcpConfig::default()
        };
        let (sc, cc) = transport::TcpChannel::loopback_pair(tcp)?;
        let (mut sc, mut cc) = transport::emulate(sc, cc, net);
        let pb = progress_bar(quiet, "private inference");
        pb.set_length(steps as u64);
        let (inf, served) = thread::scope(|s| {
            // Both ends stay open until both parties are done (dropped on return).
            let h = s.spawn(|| service.serve_channel(&mut sc));
            let inf =
                engine::infer_channel(&mut cc, None, &mut |plan| quantize(x, plan), &mut |i, _| {
                    pb.set_position(i as u64)
                });
            (inf, h.join())
        });
        pb.finish_and_clear();
        let inf = inf?;
        served.map_err(|_| anyhow!("server thread panicked"))??;
        return Ok(inf);
    }
    let (addr, server) = loopback_server(server_model, opts.reveal())?;
    let pb = progress_bar(quiet, "private inference");
    pb.set_length(steps as u64);
    let tcp = TcpConfig {
        timeout: Duration::from_secs(600),
        ..TcpConfig::default()
    };
    let result = engine::infer(
        addr,
        tcp,
        None,
        &mut |plan| quantize(x, plan),
        &mut |i, _| pb.set_position(i as u64),
    );
    pb.finish_and_clear();
    let inf = result?;
    server
        .join()
        .map_err(|_| anyhow!("server thread panicked"))??;
    Ok(inf)
}

fn print_table(inf: &Inference) {
    // Hops are counted only where both ends share an emulated link (`privinfer bench`).
    let counted = inf.report.total().hops > 0;
    let hops = |h: u64| if counted { h.to_string() } else { "-".into() };
    println!(
        "{:>6}  {:<28} {:<14} {:<8} {:>9} {:>11} {:>11} {:>6} {:>6}",
        "layer", "name", "op", "protocol", "ms", "c2s KiB", "s2c KiB", "rounds", "hops"
    );
    for s in &inf.report.steps {
        let name: String = s.name.chars().take(28).collect();
        println!(
            "{:>6}  {:<28} {:<14} {:<8} {:>9.1} {:>11.1} {:>11.1} {:>6} {:>6}",
            s.layer,
            name,
            s.op,
            s.protocol,
            s.ms,
            s.bytes_c2s as f64 / 1024.0,
            s.bytes_s2c as f64 / 1024.0,
            s.rounds,
            hops(s.hops)
        );
    }
}

/// The totals; over loopback (`link` None) also the LAN and WAN estimates from them (over an
/// emulated or real link the latency already includes its delays).
fn print_summary(inf: &Inference, link: Option<String>) {
    let t = inf.report.total();
    println!(
        "latency {:.2} s (compute and {}), client→server {:.2} MiB, server→client {:.2} MiB, {} rounds{}",
        inf.seconds,
        link.as_deref().unwrap_or("loopback"),
        mib(t.bytes_c2s),
        mib(t.bytes_s2c),
        t.rounds,
        if t.hops > 0 {
            format!(", {} hops", t.hops)
        } else {
            String::new()
        }
    );
    if link.is_some() {
        return;
    }
    for net in [NetworkModel::LAN, NetworkModel::WAN] {
        let (compute, bytes) = (
            Duration::from_secs_f64(inf.seconds),
            t.bytes_c2s + t.bytes_s2c,
        );
        // Hops where the link counted them (one-way delays), else rounds × RTT.
        let e = if t.hops > 0 {
            net.estimate_hops(compute, bytes, t.hops)
        } else {
            net.estimate(compute, bytes, t.rounds)
        };
        println!(
            "{} estimate ({:.1} Gbps, {:.1} ms RTT): {:.2} s",
            e.network,
            net.bandwidth_bps / 1e9,
            net.rtt.as_secs_f64() * 1e3,
            e.seconds
        );
    }
}

#[derive(clap::Args)]
pub struct DemoArgs {
    /// ONNX model (default: the bundled ResNet-20).
    #[arg(long)]
    model: Option<PathBuf>,
    /// PNG/JPEG image (default: the bundled CIFAR-10 sample); other sizes are resized and
    /// centre-cropped to the model's input.
    #[arg(long)]
    image: Option<PathBuf>,
    /// Refuse an image whose size is not the model's input size instead of resizing it.
    #[arg(long)]
    no_resize: bool,
    #[command(flatten)]
    opts: ModelOpts,
}

/// `privinfer demo`: server and client in one process over TCP loopback.
pub fn demo(a: DemoArgs) -> anyhow::Result<()> {
    let (model, model_name) = load_model(a.model.as_deref())?;
    let (x, image_name) = load_input(a.image.as_deref(), model.input_shape(), a.no_resize)?;
    println!("privinfer demo: {model_name}, image {image_name}");
    let plain = nn::float::run(&model, &x)?;
    let plain: Vec<f64> = plain.data.iter().map(|&v| v as f64).collect();
    // Over a delay-free emulated link on TCP loopback, which counts the latency hops: the LAN
    // and WAN estimates then price one-way delays, not round trips.
    let inf = private_run(&model, &a.opts, &x, false, Some(&NetworkModel::LOOPBACK))?;
    let fixed = FixedConfig::new(a.opts.ell, a.opts.scale)?;
    let private = match &inf.outcome {
        Outcome::Logits(l) => argmax(&l.iter().map(|&v| fixed.decode(v)).collect::<Vec<_>>()),
        Outcome::Label(l) => *l,
    };
    let expected = argmax(&plain);
    print_table(&inf);
    println!();
    println!("private prediction:   {}", class_name(&inf.plan, private));
    println!("plaintext prediction: {}", class_name(&inf.plan, expected));
    print_summary(&inf, None);
    if private != expected {
        bail!("the private prediction differs from the plaintext one");
    }
    Ok(())
}

#[derive(clap::Args)]
pub struct ServeArgs {
    /// ONNX model to serve.
    #[arg(long)]
    model: PathBuf,
    /// Address to listen on, e.g. 127.0.0.1:7000.
    #[arg(long)]
    listen: String,
    /// Sessions served at the same time.
    #[arg(long, default_value_t = 4)]
    max_sessions: usize,
    /// Clients that may wait for a session slot (told their position); one more is refused as
    /// busy with a retry hint.
    #[arg(long, default_value_t = 32)]
    max_queue: usize,
    /// Seconds a client may wait in the queue before it is refused as busy.
    #[arg(long, default_value_t = 300)]
    queue_wait: u64,
    /// Seconds from connect to a complete, valid client hello; slower connections are dropped
    /// without ever holding a session slot.
    #[arg(long, default_value_t = 10)]
    handshake_timeout: u64,
    /// Seconds one message of a running session may take (waiting for the peer included).
    #[arg(long, default_value_t = 300)]
    timeout: u64,
    /// Seconds one whole session may take.
    #[arg(long, default_value_t = 3600)]
    session_timeout: u64,
    /// Connections open at once from one IP address.
    #[arg(long, default_value_t = 16)]
    max_per_address: usize,
    /// Connections open at once in total.
    #[arg(long, default_value_t = 256)]
    max_connections: usize,
    /// Memory the server may use in all, e.g. 2G or 512M: its idle size plus each running
    /// session's predicted peak; clients wait in the queue until their session fits.
    #[arg(long, value_parser = parse_size)]
    memory_budget: Option<u64>,
    /// Stop after this many connections (default: serve until killed).
    #[arg(long)]
    max_clients: Option<usize>,
    /// `fhe`: serve the non-interactive FHE mode (one session at a time; the 2PC limits
    /// above do not apply).
    #[arg(long, value_enum, default_value = "2pc")]
    mode: crate::fhe_mode::Mode,
    #[command(flatten)]
    fhe: crate::fhe_mode::FheOpts,
    #[command(flatten)]
    opts: ModelOpts,
}

/// A byte count with an optional K, M, G or T suffix (powers of 1024), e.g. `512M`, `2G`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, mul) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let shift = match c.to_ascii_uppercase() {
                'K' => 10,
                'M' => 20,
                'G' => 30,
                'T' => 40,
                _ => return Err(format!("{s:?}: unknown size suffix (use K, M, G or T)")),
            };
            (&t[..i], 1u64 << shift)
        }
        _ => (t, 1),
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a size such as 512M or 2G"))?;
    if !(v.is_finite() && v > 0.0) {
        return Err(format!("{s:?}: a size must be positive"));
    }
    Ok((v * mul as f64) as u64)
}

/// `privinfer serve`: serve a model to clients (see engine::server for the phases and limits).
pub fn serve(a: ServeArgs) -> anyhow::Result<()> {
    let (model, _) = load_model(Some(&a.model))?;
    if a.mode == crate::fhe_mode::Mode::Fhe {
        return crate::fhe_mode::serve(
            &model,
            &a.listen,
            &a.fhe,
            Duration::from_secs(a.timeout.max(1)),
        );
    }
    let server_model = ServerModel::new(&model, &a.opts.plan_config()?)?;
    let service = Arc::new(ModelService::new(server_model, a.opts.reveal())?);
    let secs = |s: u64| Duration::from_secs(s.max(1));
    let cfg = ServerConfig {
        max_sessions: a.max_sessions,
        max_queue: a.max_queue,
        queue_wait: Duration::from_secs(a.queue_wait),
        handshake_timeout: secs(a.handshake_timeout),
        session_timeout: secs(a.session_timeout),
        max_per_address: a.max_per_address,
        max_connections: a.max_connections,
        memory_budget: a.memory_budget,
        tcp: TcpConfig {
            timeout: secs(a.timeout),
            ..TcpConfig::default()
        },
        ..ServerConfig::default()
    };
    let session = service.session_memory();
    let idle = math::alloc::resident_bytes().unwrap_or(0);
    let memory_slots = Server::memory_slots(&cfg, idle, session)?;
    let server = Server::bind(a.listen.as_str(), cfg)?;
    eprintln!(
        "serving {} on {} (model digest {})",
        a.model.display(),
        server.local_addr()?,
        service.digest()
    );
    let limit = match (memory_slots, a.memory_budget) {
        (Some(m), Some(b)) if m < a.max_sessions => format!(
            "; memory budget {:.0} MiB (idle {:.0} MiB) allows {m}",
            mib(b),
            mib(idle)
        ),
        _ => String::new(),
    };
    eprintln!(
        "{} sessions at once{limit}, {} queued at most; one session's predicted peak {:.0} MiB",
        a.max_sessions.min(memory_slots.unwrap_or(usize::MAX)),
        a.max_queue,
        mib(session)
    );
    server.run(service, a.max_clients)?;
    Ok(())
}

#[derive(clap::Args)]
pub struct InferArgs {
    /// Server address, e.g. 127.0.0.1:7000.
    #[arg(long)]
    connect: String,
    /// PNG or JPEG image; other sizes than the model's input are resized and centre-cropped.
    #[arg(long)]
    image: PathBuf,
    /// Refuse an image whose size is not the model's input size instead of resizing it.
    #[arg(long)]
    no_resize: bool,
    /// Refuse to run unless the server's model digest equals this (hex).
    #[arg(long)]
    expect_digest: Option<String>,
    /// Seconds to wait for the server (large layers take minutes on small machines).
    #[arg(long, default_value_t = 300)]
    timeout: u64,
    /// When the server is busy, try again up to this many times, waiting as it suggests (at
    /// least 1, 2, 4, … s, at most 60 s).
    #[arg(long, default_value_t = 0)]
    retry: u32,
    /// One JSON object.
    #[arg(long)]
    json: bool,
    /// `fhe`: against a server started with `serve --mode fhe`.
    #[arg(long, value_enum, default_value = "2pc")]
    mode: crate::fhe_mode::Mode,
}

/// Seconds to wait before retry `attempt` (1-based) after a busy answer that suggested `hint`.
fn backoff_s(attempt: u32, hint: u64) -> u64 {
    let exp = 1u64 << (attempt.saturating_sub(1)).min(6);
    hint.max(exp).min(60)
}

/// `privinfer infer`: the client side against a running server.
pub fn infer(a: InferArgs) -> anyhow::Result<()> {
    if a.mode == crate::fhe_mode::Mode::Fhe {
        return crate::fhe_mode::infer(
            &a.connect,
            &a.image,
            a.no_resize,
            a.expect_digest.as_deref(),
            Duration::from_secs(a.timeout.max(1)),
            a.json,
        );
    }
    // Decode the image before connecting so a bad file fails fast and offline.
    let (rgb, h, w) = nn::data::read_image_rgb(&a.image)?;
    let tcp = TcpConfig {
        timeout: Duration::from_secs(a.timeout.max(1)),
        connect_timeout: Duration::from_secs(a.timeout.clamp(1, 10)),
        ..TcpConfig::default()
    };
    let mut attempt = 0u32;
    let inf = loop {
        let pb = progress_bar(a.json, "private inference");
        let mut last_pos = 0usize;
        let r = engine::infer_queued(
            a.connect.as_str(),
            tcp,
            a.expect_digest.as_deref(),
            &mut |plan| {
                let shape = &plan.steps[0].shape;
                let (mh, mw) = match shape.as_slice() {
                    [1, 3, mh, mw] => (*mh, *mw),
                    _ => {
                        return Err(EngineError::InputShape {
                            expected: shape.clone(),
                            got: 3 * h * w,
                        })
                    }
                };
                if (mh, mw) != (h, w) && a.no_resize {
                    return Err(EngineError::InputShape {
                        expected: shape.clone(),
                        got: 3 * h * w,
                    });
                }
                let (pixels, fit) = nn::data::fit_planar(&rgb, h, w, mh, mw);
                if let Some(f) = fit {
                    pb.suspend(|| {
                        eprintln!(
                            "{}: {f} to the model's {mw}×{mh} input (--no-resize refuses instead)",
                            a.image.display()
                        )
                    });
                }
                pb.set_length(plan.steps.len() as u64);
                quantize(&nn::data::normalize_chw(&pixels), plan)
            },
            &mut |i, _| pb.set_position(i as u64),
            &mut |q| {
                if q.queued != last_pos {
                    last_pos = q.queued;
                    pb.suspend(|| {
                        eprintln!(
                            "queued: position {} ({} sessions running)",
                            q.queued, q.sessions
                        )
                    });
                }
            },
        );
        pb.finish_and_clear();
        match r {
            Err(EngineError::Busy {
                reason,
                retry_after_s,
            }) if attempt < a.retry => {
                attempt += 1;
                let wait = backoff_s(attempt, retry_after_s);
                eprintln!(
                    "server busy ({reason}); retry {attempt} of {} in {wait} s",
                    a.retry
                );
                thread::sleep(Duration::from_secs(wait));
            }
            r => break r.with_context(|| format!("private inference with {}", a.connect))?,
        }
    };
    let fixed = FixedConfig::new(inf.plan.ell, inf.plan.scale)?;
    let (label, logits) = match &inf.outcome {
        Outcome::Logits(l) => {
            let f: Vec<f64> = l.iter().map(|&v| fixed.decode(v)).collect();
            (argmax(&f), Some(f))
        }
        Outcome::Label(l) => (*l, None),
    };
    let t = inf.report.total();
    if a.json {
        println!(
            "{}",
            serde_json::json!({"label": label, "logits": logits, "model_digest": inf.digest, "ms": inf.seconds * 1e3,
                "bytes_c2s": t.bytes_c2s, "bytes_s2c": t.bytes_s2c, "rounds": t.rounds})
        );
    } else {
        println!("prediction: {}", class_name(&inf.plan, label));
        print_summary(&inf, Some("the network".into()));
    }
    Ok(())
}

#[derive(clap::Args)]
pub struct BenchModelArgs {
    /// ONNX model.
    #[arg(long)]
    model: Option<PathBuf>,
    /// PNG/JPEG input, resized and centre-cropped to the model's input when its size differs
    /// (default: the bundled CIFAR-10 sample, or a seeded random image of the model's input size
    /// when the sizes differ).
    #[arg(long)]
    image: Option<PathBuf>,
    /// Refuse an image whose size is not the model's input size instead of resizing it.
    #[arg(long)]
    no_resize: bool,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
    /// Run both parties over an emulated link (transport::emulate): lan, wan or
    /// <mbit/s>:<rtt_ms>; `ms` is then the wall time on that link. Default: plain loopback.
    #[arg(long)]
    net: Option<String>,
    /// `2pc` (hybrid HE/2PC, the default) or `fhe` (non-interactive CKKS, crate `fhe`).
    #[arg(long, value_enum, default_value = "2pc")]
    mode: crate::fhe_mode::Mode,
    #[command(flatten)]
    fhe: crate::fhe_mode::FheOpts,
    #[command(flatten)]
    opts: ModelOpts,
}

/// `privinfer bench --model M`: per-layer costs of a private inference over loopback, checked
/// against the fixed-point reference.
pub fn bench_model(a: BenchModelArgs) -> anyhow::Result<()> {
    let path = a
        .model
        .as_deref()
        .ok_or_else(|| anyhow!("bench needs --model M.onnx or a subcommand (see --help)"))?;
    let (model, _) = load_model(Some(path))?;
    // The bundled sample is not resized: benchmarks of other input sizes keep their seeded input.
    let strict = a.no_resize || a.image.is_none();
    let x = match load_input(a.image.as_deref(), model.input_shape(), strict) {
        Ok((x, _)) => x,
        Err(e) if a.image.is_some() => return Err(e),
        Err(_) => {
            // A deterministic pseudo-image of the model's input size (values in [-2, 2)).
            let n: usize = model.input_shape().iter().product();
            (0..n)
                .map(|i| {
                    ((i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) as f32
                        / (1u64 << 24) as f32
                        * 4.0
                        - 2.0
                })
                .collect()
        }
    };
    if a.mode == crate::fhe_mode::Mode::Fhe {
        return crate::fhe_mode::bench(&model, &x, &a.fhe, a.json);
    }
    let mut opts = a.opts.clone();
    opts.label_only = false;
    let net = a.net.as_deref().map(NetworkModel::parse).transpose()?;
    // Without --net an emulated link without delay, which measures the latency hops.
    let link = net.unwrap_or(NetworkModel::LOOPBACK);
    let inf = private_run(&model, &opts, &x, a.json, Some(&link))?;
    let fixed = FixedConfig::new(opts.ell, opts.scale)?;
    // The reference fuses the LayerNorm → linear pairs the plan fuses.
    let fused = engine::plan::fused_pairs(&model, &opts.plan_config()?)?;
    let reference = nn::fixed::run_fused(&model, &x, fixed, &fused)?;
    let Outcome::Logits(private) = &inf.outcome else {
        bail!("expected logits")
    };
    let max_abs_diff = private
        .iter()
        .zip(&reference.data)
        .map(|(&p, &r)| {
            fixed
                .signed(p.wrapping_sub(r) & fixed.mask())
                .unsigned_abs()
        })
        .max()
        .unwrap_or(0);
    let t = inf.report.total();
    if a.json {
        for s in &inf.report.steps {
            println!("{}", serde_json::to_string(s)?);
        }
        println!(
            "{}",
            serde_json::json!({"layer": "total", "net": a.net.as_deref().unwrap_or("loopback").to_ascii_lowercase(), "ms": inf.seconds * 1e3, "bytes_c2s": t.bytes_c2s, "bytes_s2c": t.bytes_s2c,
                "rounds": t.rounds, "hops": t.hops, "matches_reference": max_abs_diff == 0, "max_abs_diff": max_abs_diff,
                "ot_client": inf.report.ot})
        );
    } else {
        print_table(&inf);
        println!();
        print_summary(&inf, a.net.as_ref().map(|n| format!("emulated {n}")));
        println!(
            "matches the fixed-point reference: {} (max |diff| {max_abs_diff} ulp)",
            max_abs_diff == 0
        );
    }
    Ok(())
}
