//! `--mode fhe` of `bench`, `inspect` and `eval`: HyPHEN-style non-interactive inference on CKKS
//! (crate `fhe`, docs/protocols/hyphen.md).

use std::time::Instant;

use anyhow::{bail, Context};
use ckks::{presets, serialize, BootstrapConfig, ParamsLiteral};
use fhe::lower::Kind;
use fhe::{mpcnn_rotations, Deployment};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use rayon::prelude::*;
use serde_json::json;

/// Which kind of private inference.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Mode {
    /// Hybrid HE/2PC (the default).
    #[default]
    #[value(name = "2pc")]
    TwoPc,
    /// Non-interactive FHE (CKKS with bootstrapping).
    Fhe,
}

/// Options of FHE mode.
#[derive(clap::Args, Clone, Debug)]
pub struct FheOpts {
    /// CKKS parameters of FHE mode: `n16-10` (128-bit, N = 2^16, 10 levels after
    /// bootstrapping: two residual blocks per bootstrap), `n16` (128-bit, 9 levels) or
    /// `test-n12` (INSECURE, N = 2^12, 8 levels: quick checks only).
    #[arg(long, default_value = "n16-10")]
    pub fhe_params: String,
    /// Every value of the network is held divided by this range, which must bound |x| at the
    /// bootstrapping points (default: the model's `privinfer.fhe_range` metadata, else twice the
    /// largest |value| of the float executor on the input).
    #[arg(long)]
    pub fhe_range: Option<f64>,
    /// Convolutions: `auto` (per convolution reading P, ConvD — P → P by diagonals — where
    /// its estimated cost is clearly lower, else the pair; the default), `pair` (ConvA/ConvB
    /// alternating), `diag` (ConvD for every convolution reading P), `shift` (ConvS, shifted
    /// input copies, for the stride-1 ones with copies, ConvD for the rest) or `mpcnn` (MPCNN's
    /// multiplexed parallel convolution, P → P, the baseline).
    #[arg(long, value_enum, default_value = "auto")]
    pub fhe_conv: ConvArg,
    /// Odd degrees of the minimax composite sign behind ReLU, comma-separated (MPCNN's
    /// 15,15,27 by default): fewer levels per ReLU for a looser error bound.
    #[arg(long, value_delimiter = ',', default_value = "15,15,27")]
    pub relu_degrees: Vec<usize>,
    /// Flooding noise on the returned ciphertexts: standard deviation 2^-B of the range per
    /// slot (1–40; 0: re-randomization only). Hides the evaluation's noise and the masked
    /// slots' residues from the client at the cost of output precision (docs/security.md).
    #[arg(long, default_value_t = fhe::FLOOD_BITS)]
    pub fhe_flood_bits: u32,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvArg {
    Pair,
    Diag,
    Shift,
    Auto,
    Mpcnn,
}

/// Metadata key of the range the toolkit measured on training images.
pub const RANGE_KEY: &str = "privinfer.fhe_range";

fn params(name: &str) -> anyhow::Result<(ParamsLiteral, BootstrapConfig)> {
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
            presets::insecure_boot_n12_deep(),
            presets::insecure_boot_n12_config(),
        ),
        _ => bail!("unknown --fhe-params {name} (n16, n16-10, test-n12)"),
    })
}

/// The range: option, metadata, or from the float trace of `x`.
pub fn range(
    model: &nn::Model,
    opts: &FheOpts,
    x: Option<&[f32]>,
) -> anyhow::Result<(f64, &'static str)> {
    if let Some(r) = opts.fhe_range {
        return Ok((r, "option"));
    }
    if let Some(v) = model.metadata_value(RANGE_KEY) {
        let r: f64 = v
            .trim()
            .parse()
            .with_context(|| format!("metadata {RANGE_KEY} = {v:?} is not a number"))?;
        return Ok((r, "metadata"));
    }
    match x {
        Some(x) => Ok((
            2.0 * trace_max_abs(model, x)?,
            "2 × max |value| on the input",
        )),
        None => Ok((32.0, "default")),
    }
}

/// The largest |value| of the float executor's trace on `x` (input, every node's output).
fn trace_max_abs(model: &nn::Model, x: &[f32]) -> anyhow::Result<f64> {
    Ok(nn::float::run_trace(model, x)?
        .iter()
        .flatten()
        .fold(0f64, |a, &v| a.max((v as f64).abs())))
}

pub fn deployment(model: &nn::Model, opts: &FheOpts, r: f64) -> anyhow::Result<Deployment> {
    let (lit, cfg) = params(&opts.fhe_params)?;
    let conv = match opts.fhe_conv {
        ConvArg::Pair => fhe::lower::ConvAlgo::Pair,
        ConvArg::Mpcnn => fhe::lower::ConvAlgo::Mpcnn,
        ConvArg::Diag => fhe::lower::ConvAlgo::Diag,
        ConvArg::Shift => fhe::lower::ConvAlgo::Shift,
        ConvArg::Auto => fhe::lower::ConvAlgo::Auto,
    };
    if opts.relu_degrees.is_empty()
        || opts
            .relu_degrees
            .iter()
            .any(|&d| d % 2 == 0 || !(1..=255).contains(&d))
    {
        anyhow::bail!(
            "--relu-degrees {:?}: need one or more odd degrees from 1 to 255",
            opts.relu_degrees
        );
    }
    Ok(
        Deployment::with_options(model, lit, Some(cfg), r, conv, &opts.relu_degrees)?
            .with_flooding((opts.fhe_flood_bits > 0).then_some(opts.fhe_flood_bits))?,
    )
}

/// Input gap of a convolution step (for MPCNN's formula).
fn conv_gap(dep: &Deployment, s: &fhe::lower::Step) -> Option<(usize, usize)> {
    let (Kind::ConvA(cv)
    | Kind::ConvB(cv)
    | Kind::ConvD(cv, _)
    | Kind::ConvS(cv, _)
    | Kind::ConvMpcnn(cv)) = &s.kind
    else {
        return None;
    };
    let k = dep.prog.layouts[s.inputs[0]].grid()?.k;
    Some((k, mpcnn_rotations(cv, k, dep.prog.n)))
}

/// `privinfer inspect M --mode fhe`: the lowered program from a dry run (no keys).
pub fn inspect(model: &nn::Model, opts: &FheOpts, json_out: bool) -> anyhow::Result<()> {
    let (r, src) = range(model, opts, None)?;
    let dep = deployment(model, opts, r)?;
    let zeros = vec![0f32; dep.prog.input_shape.iter().product()];
    let sim = fhe::backend::Sim::new(dep.prog.n, dep.boot.first().map_or(0, |b| b.output_level()));
    let input: Vec<fhe::backend::SimCt> = dep.prog.layouts[0]
        .pack(
            &zeros.iter().map(|&v| v as f64).collect::<Vec<_>>(),
            dep.prog.n,
        )
        .into_iter()
        .map(|v| fhe::backend::SimCt::real(v, dep.prog.input_level))
        .collect();
    let run = fhe::run(&dep.prog, &sim, input)?;
    let mut tot = fhe::Counts::default();
    let (mut ours_conv, mut mpcnn_conv) = (0usize, 0usize);
    if !json_out {
        println!(
            "{:<34} {:<9} {:<22} {:<22} {:>5} {:>5} {:>5} {:>6} {:>6}",
            "layer", "op", "layout in", "layout out", "lv in", "lvout", "rot", "mpcnn", "ptmul"
        );
    }
    for (s, rep) in dep.prog.steps.iter().zip(&run.steps) {
        tot += rep.counts;
        let mp = conv_gap(&dep, s).map(|(_, m)| m);
        if let Some(m) = mp {
            ours_conv += rep.counts.rotations;
            mpcnn_conv += m;
        }
        if json_out {
            let mut v = serde_json::to_value(rep)?;
            v["protocol"] = json!("fhe");
            v["mpcnn_rotations"] = json!(mp);
            v.as_object_mut().map(|o| o.remove("ms"));
            println!("{v}");
        } else {
            println!(
                "{:<34} {:<9} {:<22} {:<22} {:>5} {:>5} {:>5} {:>6} {:>6}",
                rep.layer,
                rep.op,
                rep.layout_in,
                rep.layout_out,
                rep.level_in,
                rep.level_out,
                rep.counts.rotations,
                mp.map_or(String::new(), |m| m.to_string()),
                rep.counts.pt_mults
            );
        }
    }
    let summary = json!({
        "params": opts.fhe_params, "slots": dep.prog.n, "range": r, "range_source": src,
        "input_level": dep.prog.input_level, "bootstraps": tot.bootstraps, "rotations": tot.rotations,
        "pt_mults": tot.pt_mults, "ct_mults": tot.ct_mults, "rotation_keys": dep.rotations.len(),
        "conv_rotations": ours_conv, "mpcnn_conv_rotations": mpcnn_conv,
    });
    if json_out {
        println!("{}", json!({ "total": summary }));
    } else {
        println!(
            "total: {} bootstraps, {} rotations ({} in convolutions; MPCNN's formula: {}), {} pt×ct, {} ct×ct, {} rotation keys; range {r} ({src}), slots {}",
            tot.bootstraps, tot.rotations, ours_conv, mpcnn_conv, tot.pt_mults, tot.ct_mults, dep.rotations.len(), dep.prog.n
        );
    }
    Ok(())
}

/// One encrypted inference with its costs.
pub struct Inference {
    pub logits: Vec<f64>,
    pub run: fhe::Run<ckks::Ciphertext>,
    pub server_ms: f64,
    pub encrypt_ms: f64,
    pub decrypt_ms: f64,
    pub c2s: usize,
    pub s2c: usize,
    /// RMS of the output slots that hold no logit (held units).
    pub empty_slot_rms: f64,
    /// The logits the client would decrypt at each flooding of the sweep (same evaluation).
    pub sweep_logits: Vec<Vec<f64>>,
}

pub fn infer_once(
    dep: &Deployment,
    keys: &fhe::ClientKeys,
    eval: &ckks::Evaluator,
    x: &[f32],
    sweep: &[Option<u32>],
    rng: &mut ChaCha20Rng,
) -> anyhow::Result<Inference> {
    let t = Instant::now();
    let input = dep.encrypt_seeded(&keys.sk, x, rng)?;
    let encrypt_ms = t.elapsed().as_secs_f64() * 1e3;
    // The client's ciphertexts travel serialized (seeded); the server validates them.
    let wire: Vec<Vec<u8>> = input
        .iter()
        .map(|c| serialize::seeded_ciphertext_to_bytes(&dep.params, c))
        .collect();
    let c2s = wire.iter().map(Vec::len).sum();
    let input = wire
        .iter()
        .map(|b| serialize::ciphertext_from_seeded_bytes(&dep.params, b))
        .collect::<Result<Vec<_>, _>>()?;
    let zero = serialize::ciphertext_from_seeded_bytes(
        &dep.params,
        &serialize::seeded_ciphertext_to_bytes(&dep.params, &keys.zero),
    )?;
    let t = Instant::now();
    let (run, swept) = dep.evaluate_sweep(eval, keys.encaps.as_ref(), &zero, input, sweep, rng)?;
    let server_ms = t.elapsed().as_secs_f64() * 1e3;
    let back: Vec<Vec<u8>> = run
        .output
        .iter()
        .map(|c| serialize::ciphertext_to_bytes(&dep.params, c))
        .collect();
    let s2c = back.iter().map(Vec::len).sum();
    let t = Instant::now();
    let out = back
        .iter()
        .map(|b| serialize::ciphertext_from_bytes(&dep.params, b))
        .collect::<Result<Vec<_>, _>>()?;
    let client = dep.client();
    let slots = client.decrypt_slots(&keys.sk, &out)?;
    let logits = client.logits(&slots);
    let decrypt_ms = t.elapsed().as_secs_f64() * 1e3;
    let empty_slot_rms = client.empty_slot_rms(&slots);
    let sweep_logits = swept
        .iter()
        .map(|cts| Ok(client.logits(&client.decrypt_slots(&keys.sk, cts)?)))
        .collect::<anyhow::Result<_>>()?;
    Ok(Inference {
        sweep_logits,
        logits,
        run,
        server_ms,
        encrypt_ms,
        decrypt_ms,
        c2s,
        s2c,
        empty_slot_rms,
    })
}

/// `privinfer bench --model M --mode fhe`.
pub fn bench(model: &nn::Model, x: &[f32], opts: &FheOpts, json_out: bool) -> anyhow::Result<()> {
    let (r, src) = range(model, opts, Some(x))?;
    let t = Instant::now();
    let dep = deployment(model, opts, r)?;
    let plan_ms = t.elapsed().as_secs_f64() * 1e3;
    let mut rng = ChaCha20Rng::from_entropy();
    let t = Instant::now();
    let mut keys = dep.keygen(&mut rng)?;
    let keygen_ms = t.elapsed().as_secs_f64() * 1e3;
    let eval_key_bytes = serialize::evaluation_keys_len(&dep.params, &keys.eval)
        + keys.encaps.as_ref().map_or(0, |e| {
            serialize::encapsulation_keys_to_bytes(&dep.params, e).len()
        })
        + serialize::seeded_ciphertext_to_bytes(&dep.params, &keys.zero).len();
    // The keys move to the server's evaluator (one copy in memory).
    let eval = ckks::Evaluator::new(&dep.params, std::mem::take(&mut keys.eval))?;
    let inf = infer_once(&dep, &keys, &eval, x, &[], &mut rng)?;
    let float = nn::float::run(model, x)?.data;
    let err = inf
        .logits
        .iter()
        .zip(&float)
        .fold(0f64, |a, (p, &q)| a.max((p - q as f64).abs()));
    let fmax = float
        .iter()
        .fold(0f64, |a, &v| a.max((v as f64).abs()))
        .max(f64::MIN_POSITIVE);
    let precision_bits = -(err / fmax).log2();
    let ours: Vec<f32> = inf.logits.iter().map(|&v| v as f32).collect();
    let matches_float = nn::argmax(&ours) == nn::argmax(&float);
    let mut tot = fhe::Counts::default();
    let (mut conv_rot, mut mpcnn_rot) = (0, 0);
    for (s, rep) in dep.prog.steps.iter().zip(&inf.run.steps) {
        tot += rep.counts;
        let mp = conv_gap(&dep, s).map(|(_, m)| m);
        if let Some(m) = mp {
            conv_rot += rep.counts.rotations;
            mpcnn_rot += m;
        }
        if json_out {
            let mut v = serde_json::to_value(rep)?;
            v["protocol"] = json!("fhe");
            v["mpcnn_rotations"] = json!(mp);
            println!("{v}");
        } else {
            println!(
                "{:<34} {:<9} {:<22} lv {:>2}→{:<2} rot {:>4}{} ptmul {:>4} {:>9.1} ms",
                rep.layer,
                rep.op,
                rep.layout_out,
                rep.level_in,
                rep.level_out,
                rep.counts.rotations,
                mp.map_or(String::new(), |m| format!(" (mpcnn {m})")),
                rep.counts.pt_mults,
                rep.ms
            );
        }
    }
    let total = json!({
        "protocol": "fhe", "conv": format!("{:?}", opts.fhe_conv).to_lowercase(), "params": opts.fhe_params, "ms": inf.server_ms, "bootstraps": tot.bootstraps,
        "rotations": tot.rotations, "conv_rotations": conv_rot, "mpcnn_conv_rotations": mpcnn_rot,
        "pt_mults": tot.pt_mults, "ct_mults": tot.ct_mults, "rotation_keys": dep.rotations.len(),
        "eval_key_bytes": eval_key_bytes, "ciphertext_bytes_c2s": inf.c2s, "ciphertext_bytes_s2c": inf.s2c,
        "peak_rss_bytes": math::alloc::peak_resident_bytes(), "precision_bits": precision_bits, "matches_float": matches_float,
        "max_abs_err": err, "flood_bits": dep.offer.flood_bits, "empty_slot_rms": inf.empty_slot_rms, "range": r, "range_source": src, "plan_ms": plan_ms, "keygen_ms": keygen_ms,
        "encrypt_ms": inf.encrypt_ms, "decrypt_ms": inf.decrypt_ms, "logits": inf.logits, "float_logits": float,
    });
    if json_out {
        println!("{}", json!({ "total": total }));
    } else {
        println!(
            "total: {:.1} s server, {} bootstraps, {} rotations ({} in convolutions, MPCNN's formula {}), eval keys {:.1} MiB, c2s {:.1} MiB, s2c {:.1} MiB, peak RSS {:.2} GiB, precision {:.1} bits, top-1 {} float",
            inf.server_ms / 1e3,
            tot.bootstraps,
            tot.rotations,
            conv_rot,
            mpcnn_rot,
            eval_key_bytes as f64 / 1048576.0,
            inf.c2s as f64 / 1048576.0,
            inf.s2c as f64 / 1048576.0,
            math::alloc::peak_resident_bytes().unwrap_or(0) as f64 / (1u64 << 30) as f64,
            precision_bits,
            if matches_float { "=" } else { "≠" }
        );
    }
    Ok(())
}

/// Options of `privinfer eval --mode fhe` beyond [`FheOpts`].
#[derive(clap::Args, Clone, Debug, Default)]
pub struct EvalOpts {
    /// Also decrypt each evaluation re-sanitized at these floodings (bits as
    /// `--fhe-flood-bits`, 0: re-randomization only) and report the agreement at each: the
    /// flooding's cost measured on the same evaluations.
    #[arg(long, value_delimiter = ',')]
    pub fhe_flood_sweep: Vec<u32>,
    /// Append one JSON line per image to this file and, when it exists, resume: images it
    /// already holds are not evaluated again, and the summary covers all of them. Its first
    /// line records the model, data and settings; a journal written for others is refused.
    #[arg(long)]
    pub journal: Option<std::path::PathBuf>,
    /// Images evaluated at once, sharing the keys (each adds its own working set, about
    /// 3.5 GiB for ResNet-20): more throughput where one evaluation leaves cores idle; the
    /// per-image server times then overlap.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=16))]
    pub jobs: u16,
}

/// One image's outcome in an FHE evaluation (a journal line).
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq)]
struct ImageResult {
    image: usize,
    label: usize,
    float: usize,
    fhe: usize,
    bits: f64,
    /// Top-1 and precision at each flooding of the sweep, in its order.
    sweep_fhe: Vec<usize>,
    sweep_bits: Vec<f64>,
    server_ms: f64,
}

/// Precision of `ours` against `f`: −log2(max error / max |f|).
fn precision_bits(ours: &[f64], f: &[f32]) -> f64 {
    let err = ours
        .iter()
        .zip(f)
        .fold(0f64, |a, (x, &y)| a.max((x - y as f64).abs()));
    let fmax = f
        .iter()
        .fold(0f64, |a, v| a.max(v.abs() as f64))
        .max(f64::MIN_POSITIVE);
    -(err / fmax).log2()
}

fn argmax64(v: &[f64]) -> usize {
    nn::argmax(&v.iter().map(|&x| x as f32).collect::<Vec<_>>())
}

/// The journal's first line: what its results are results of.
fn journal_header(id: &str, opts: &FheOpts, sweep: &[u32], r: f64) -> serde_json::Value {
    json!({
        "journal": 1, "setup": id, "params": opts.fhe_params, "conv": format!("{:?}", opts.fhe_conv),
        "relu_degrees": opts.relu_degrees, "flood_bits": opts.fhe_flood_bits,
        "sweep": sweep, "range": r,
    })
}

/// Reads a journal: its results, after checking its header against `header`. A last line cut
/// short (the process stopped while writing) is dropped; any other bad line is an error.
fn read_journal(
    path: &std::path::Path,
    header: &serde_json::Value,
) -> anyhow::Result<Vec<ImageResult>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let lines: Vec<&str> = text.lines().collect();
    let Some(first) = lines.first() else {
        return Ok(Vec::new());
    };
    let h: serde_json::Value = serde_json::from_str(first)
        .with_context(|| format!("{}: first line is not a journal header", path.display()))?;
    if &h != header {
        bail!(
            "{} was written for another model, data or settings ({h}); use another --journal",
            path.display()
        );
    }
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate().skip(1) {
        match serde_json::from_str::<ImageResult>(l) {
            Ok(r) => out.push(r),
            Err(_) if i + 1 == lines.len() && !text.ends_with('\n') => {}
            Err(e) => bail!("{} line {}: {e}", path.display(), i + 1),
        }
    }
    Ok(out)
}

/// The order in which an evaluation visits `len` images: position `m·a mod len`, with `a` the
/// integer nearest `0.618·len` that is coprime to `len` (a golden-ratio stride, a permutation),
/// so that the images a stopped run has done are spread over the whole sample (the CIFAR-10
/// file is grouped by class).
fn spread_order(len: usize) -> Vec<usize> {
    fn gcd(a: usize, b: usize) -> usize {
        if b == 0 {
            a
        } else {
            gcd(b, a % b)
        }
    }
    let mut a = ((len as f64) * 0.618).round().max(1.0) as usize;
    while gcd(a, len) != 1 && a < len {
        a += 1;
    }
    (0..len).map(|m| (m * a) % len.max(1)).collect()
}

/// `privinfer eval --mode fhe`: accuracy and agreement with the float executor on `data`
/// (input, label, index in the data file). `id` names the model and data (their digests) for
/// the journal, whose lines name images by their index in the data file.
pub fn eval(
    model: &nn::Model,
    data: &[(Vec<f32>, usize, usize)],
    opts: &FheOpts,
    eopts: &EvalOpts,
    id: &str,
    json_out: bool,
) -> anyhow::Result<()> {
    use std::io::Write;
    let (r, src) = range(model, opts, data.first().map(|d| d.0.as_slice()))?;
    let sweep: Vec<Option<u32>> = eopts
        .fhe_flood_sweep
        .iter()
        .map(|&b| (b > 0).then_some(b))
        .collect();
    let header = journal_header(id, opts, &eopts.fhe_flood_sweep, r);
    let mut results = match &eopts.journal {
        Some(p) => read_journal(p, &header)?,
        None => Vec::new(),
    };
    let done: std::collections::HashSet<usize> = results.iter().map(|x| x.image).collect();
    let mut journal = match &eopts.journal {
        Some(p) => {
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .with_context(|| format!("opening {}", p.display()))?;
            if f.metadata()?.len() == 0 {
                writeln!(f, "{header}")?;
            } else if !std::fs::read(p)?.ends_with(b"\n") {
                // A line cut short by a stop: end it so the next result starts a line.
                writeln!(f)?;
            }
            Some(f)
        }
        None => None,
    };
    let todo: Vec<&(Vec<f32>, usize, usize)> = spread_order(data.len())
        .into_iter()
        .map(|p| &data[p])
        .filter(|d| !done.contains(&d.2))
        .collect();
    let t = Instant::now();
    if !todo.is_empty() {
        let dep = deployment(model, opts, r)?;
        let mut rng = ChaCha20Rng::from_entropy();
        let mut keys = dep.keygen(&mut rng)?;
        let eval = ckks::Evaluator::new(&dep.params, std::mem::take(&mut keys.eval))?;
        for chunk in todo.chunks(usize::from(eopts.jobs.max(1))) {
            let rngs = chunk
                .iter()
                .map(|_| ChaCha20Rng::from_rng(&mut rng))
                .collect::<Result<Vec<_>, _>>()?;
            // The images of a chunk run together (rayon shares the cores between their
            // parallel steps); each result is journaled even when another one failed.
            let outs: Vec<anyhow::Result<ImageResult>> = chunk
                .par_iter()
                .zip(rngs)
                .map(|(&(x, label, i), mut rng)| {
                    let inf = infer_once(&dep, &keys, &eval, x, &sweep, &mut rng)?;
                    let f = nn::float::run(model, x)?.data;
                    Ok(ImageResult {
                        image: *i,
                        label: *label,
                        float: nn::argmax(&f),
                        fhe: argmax64(&inf.logits),
                        bits: precision_bits(&inf.logits, &f),
                        sweep_fhe: inf.sweep_logits.iter().map(|l| argmax64(l)).collect(),
                        sweep_bits: inf
                            .sweep_logits
                            .iter()
                            .map(|l| precision_bits(l, &f))
                            .collect(),
                        server_ms: inf.server_ms,
                    })
                })
                .collect();
            let mut failed = None;
            for out in outs {
                let res = match out {
                    Ok(res) => res,
                    Err(e) => {
                        failed.get_or_insert(e);
                        continue;
                    }
                };
                if let Some(j) = journal.as_mut() {
                    writeln!(j, "{}", serde_json::to_string(&res)?)?;
                    j.flush()?;
                }
                if !json_out {
                    eprintln!(
                        "image {}: label {}, fhe {}, float {}, {:.1} bits, {:.1} s",
                        res.image,
                        res.label,
                        res.fhe,
                        res.float,
                        res.bits,
                        res.server_ms / 1e3
                    );
                }
                results.push(res);
            }
            if let Some(e) = failed {
                return Err(e);
            }
        }
    }
    let wanted: std::collections::HashSet<usize> = data.iter().map(|d| d.2).collect();
    results.retain(|x| wanted.contains(&x.image));
    // Images whose float trace leaves the range (docs/protocols/hyphen.md § Range): FHE mode
    // holds every value divided by it, so there its answer is not bound to float's (a network
    // with quadratic activations diverges on such inputs). Listed apart, with the agreement on
    // the other images.
    let inputs: std::collections::HashMap<usize, &[f32]> =
        data.iter().map(|d| (d.2, d.0.as_slice())).collect();
    let out_of_range: Vec<(usize, f64)> = results
        .par_iter()
        .map(|x| Ok((x.image, trace_max_abs(model, inputs[&x.image])?)))
        .collect::<anyhow::Result<Vec<_>>>()?
        .into_iter()
        .filter(|&(_, m)| m > r)
        .collect();
    let outside: std::collections::HashSet<usize> = out_of_range.iter().map(|x| x.0).collect();
    let n = results.len() as f64;
    let count = |f: &dyn Fn(&ImageResult) -> bool| results.iter().filter(|x| f(x)).count() as f64;
    let worst =
        |f: &dyn Fn(&ImageResult) -> f64| results.iter().map(f).fold(f64::INFINITY, f64::min);
    let accuracy = count(&|x| x.fhe == x.label) / n;
    let float_accuracy = count(&|x| x.float == x.label) / n;
    let agreement = count(&|x| x.fhe == x.float) / n;
    let in_range = n - outside.len() as f64;
    let in_range_agreement = (in_range > 0.0)
        .then(|| count(&|x| x.fhe == x.float && !outside.contains(&x.image)) / in_range);
    let worst_bits = worst(&|x| x.bits);
    let by_flood: Vec<serde_json::Value> = eopts
        .fhe_flood_sweep
        .iter()
        .enumerate()
        .map(|(k, b)| {
            json!({
                "flood_bits": b,
                "accuracy": count(&|x| x.sweep_fhe[k] == x.label) / n,
                "agreement": count(&|x| x.sweep_fhe[k] == x.float) / n,
                "min_precision_bits": worst(&|x| x.sweep_bits[k]),
            })
        })
        .collect();
    let out = json!({
        "images": results.len(), "accuracy": accuracy, "float_accuracy": float_accuracy,
        "agreement": agreement, "min_precision_bits": worst_bits, "flood_bits": opts.fhe_flood_bits,
        "sweep": by_flood, "evaluated_now": todo.len(), "range": r, "range_source": src,
        "out_of_range": out_of_range.iter().map(|&(i, m)| json!({"image": i, "max_abs": m})).collect::<Vec<_>>(),
        "in_range_agreement": in_range_agreement,
        "seconds": t.elapsed().as_secs_f64(),
        "mean_server_ms": results.iter().map(|x| x.server_ms).sum::<f64>() / n,
        "mode": "fhe", "params": opts.fhe_params,
    });
    if json_out {
        println!("{out}");
    } else {
        println!(
            "{} images ({} now): FHE top-1 {:.2} %, float {:.2} %, agreement {:.2} %, worst precision {:.1} bits",
            results.len(),
            todo.len(),
            100.0 * accuracy,
            100.0 * float_accuracy,
            100.0 * agreement,
            worst_bits
        );
        for v in &by_flood {
            println!(
                "  flooding {}: agreement {:.2} %, worst {:.1} bits",
                v["flood_bits"],
                100.0 * v["agreement"].as_f64().unwrap_or(0.0),
                v["min_precision_bits"].as_f64().unwrap_or(0.0)
            );
        }
        if !out_of_range.is_empty() {
            let list: Vec<String> = out_of_range
                .iter()
                .map(|(i, m)| format!("{i} ({m:.3e})"))
                .collect();
            let rest = match in_range_agreement {
                Some(a) => format!("agreement on the other {in_range}: {:.2} %", 100.0 * a),
                None => "no other image".to_string(),
            };
            println!(
                "  {} image(s) leave the range {r} in float (image, largest |value|): {}; {rest}",
                out_of_range.len(),
                list.join(", "),
            );
        }
    }
    Ok(())
}

/// Digest of an FHE deployment: SHA-256 of the parameter preset's name and the offer (shapes,
/// layouts, levels, key list — all public), hex.
pub fn digest(params: &str, dep: &Deployment) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(params.as_bytes());
    h.update(serde_json::to_vec(&dep.offer).expect("an offer serializes"));
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// `privinfer serve --mode fhe`: one session at a time (each holds the client's evaluation
/// keys, gigabytes at N = 2^16); a failed session is reported and the server keeps serving.
pub fn serve(
    model: &nn::Model,
    listen: &str,
    opts: &FheOpts,
    timeout: std::time::Duration,
) -> anyhow::Result<()> {
    let (r, src) = range(model, opts, None)?;
    let dep = deployment(model, opts, r)?;
    let d = digest(&opts.fhe_params, &dep);
    let listener =
        std::net::TcpListener::bind(listen).with_context(|| format!("binding {listen}"))?;
    eprintln!(
        "serving FHE mode on {} (params {}, range {r} from {src}, {} bootstraps, {} keys, digest {d})",
        listener.local_addr()?,
        opts.fhe_params,
        dep.prog.bootstraps(),
        dep.offer.galois.len()
    );
    let cfg = transport::TcpConfig {
        max_message: fhe::party::MAX_MESSAGE,
        timeout,
        ..transport::TcpConfig::default()
    };
    let mut rng = ChaCha20Rng::from_entropy();
    for conn in listener.incoming() {
        let stream = match conn {
            Ok(s) => s,
            Err(e) => {
                eprintln!("accept: {e}");
                continue;
            }
        };
        let peer = stream
            .peer_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let mut ch = match transport::TcpChannel::from_stream(stream, cfg) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("{peer}: {e}");
                continue;
            }
        };
        match fhe::party::serve(&dep, &opts.fhe_params, &d, &mut ch, &mut rng) {
            Ok(rep) => eprintln!("{peer}: {}", serde_json::to_string(&rep)?),
            Err(e) => eprintln!(
                "{peer}: session failed: {}",
                e.to_string().replace('\n', " ")
            ),
        }
    }
    Ok(())
}

/// `privinfer infer --mode fhe`: the client; parameters from its own presets by name.
pub fn infer(
    addr: &str,
    image: &std::path::Path,
    no_resize: bool,
    expect_digest: Option<&str>,
    timeout: std::time::Duration,
    json_out: bool,
) -> anyhow::Result<()> {
    let cfg = transport::TcpConfig {
        max_message: fhe::party::MAX_MESSAGE,
        timeout,
        connect_timeout: timeout.min(std::time::Duration::from_secs(10)),
    };
    let mut ch = transport::TcpChannel::connect(addr, cfg)
        .with_context(|| format!("connecting to {addr}"))?;
    let mut rng = ChaCha20Rng::from_entropy();
    let params_of = |name: &str| -> fhe::Result<ckks::Params> {
        let (lit, _) = params(name).map_err(|e| fhe::FheError::BadInput(e.to_string()))?;
        Ok(ckks::Params::new(lit)?)
    };
    let t = Instant::now();
    let (rgb, h, w) = nn::data::read_image_rgb(image)?;
    let fit = |[c, mh, mw]: [usize; 3]| -> fhe::Result<Vec<f32>> {
        if c != 3 || ((mh, mw) != (h, w) && no_resize) {
            return Err(fhe::FheError::BadInput(format!(
                "the model takes {c}×{mh}×{mw}, the image is 3×{h}×{w}"
            )));
        }
        let (pixels, note) = nn::data::fit_planar(&rgb, h, w, mh, mw);
        if let Some(f) = note {
            eprintln!(
                "{}: {f} to the model's {mw}×{mh} input (--no-resize refuses instead)",
                image.display()
            );
        }
        Ok(nn::data::normalize_chw(&pixels))
    };
    let rep = fhe::party::infer(&mut ch, fit, params_of, expect_digest, &mut rng)?;
    let ms = t.elapsed().as_secs_f64() * 1e3;
    let logits: Vec<f32> = rep.logits.iter().map(|&v| v as f32).collect();
    let class = nn::argmax(&logits);
    if json_out {
        let mut v = serde_json::to_value(&rep)?;
        v["class"] = json!(class);
        v["ms"] = json!(ms);
        v["mode"] = json!("fhe");
        println!("{v}");
    } else {
        println!(
            "class {class} (FHE mode, {:.1} s; keys {:.1} MiB up, image {:.1} MiB up, logits {:.1} MiB down; model digest {})",
            ms / 1e3,
            rep.eval_key_bytes as f64 / 1048576.0,
            rep.ciphertext_bytes_c2s as f64 / 1048576.0,
            rep.ciphertext_bytes_s2c as f64 / 1048576.0,
            rep.digest
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn spread_order_is_a_permutation() {
        for len in [1, 2, 3, 10, 30, 999, 1000, 1024] {
            let mut o = super::spread_order(len);
            // 1000 images of ten classes of 100: every ten consecutive visits see ≥ 8 classes.
            if len == 1000 {
                for w in o.chunks(10) {
                    let mut c: Vec<usize> = w.iter().map(|p| p / 100).collect();
                    c.sort();
                    c.dedup();
                    assert!(c.len() >= 8, "{w:?}");
                }
            }
            o.sort();
            assert_eq!(o, (0..len).collect::<Vec<_>>(), "{len}");
        }
    }
}
