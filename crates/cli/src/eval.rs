//! `privinfer eval --model M --data D [--fixed-point] [--limit K] [--json]`: top-1 accuracy of
//! the float executor and, with `--fixed-point`, of the fixed-point reference executor and the
//! fraction of images on which both predict the same class.
//!
//! `--data` is the CIFAR-10 binary file, or a directory of PNG/JPEG images whose names end in
//! `_<label>.png` / `_<label>.jpg` (e.g. the lossless `cifar10_II_L.png` set).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use nn::data::Cifar10;
use nn::fixed::{FixedConfig, FixedModel};
use rayon::prelude::*;

#[derive(clap::Args)]
pub struct Args {
    /// ONNX model file.
    #[arg(long)]
    model: PathBuf,
    /// CIFAR-10 binary file, or a directory of `*_<label>.png` images.
    #[arg(long)]
    data: PathBuf,
    /// Also run the fixed-point reference executor and report agreement with float.
    #[arg(long)]
    fixed_point: bool,
    /// Evaluate only the first K images (of those `--every` keeps).
    #[arg(long)]
    limit: Option<usize>,
    /// Keep every S-th image of the data (0, S, 2S, …). The CIFAR-10 test file is grouped by
    /// class, so `--every 10 --limit 1000` is 100 images of each class.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    every: u64,
    /// Ring bit width ℓ of the fixed-point executor.
    #[arg(long, default_value_t = 37)]
    ell: u32,
    /// Fractional bits s of the fixed-point executor.
    #[arg(long, default_value_t = 12)]
    scale: u32,
    /// Print one JSON object (the last line).
    #[arg(long)]
    json: bool,
    /// With --json: first print one line per image with its float (and fixed-point) outputs.
    #[arg(long, requires = "json")]
    logits: bool,
    /// `fhe`: encrypted inference of every image (CKKS, crate `fhe`): accuracy and agreement
    /// with the float executor.
    #[arg(long, value_enum, default_value = "2pc")]
    mode: crate::fhe_mode::Mode,
    #[command(flatten)]
    fhe: crate::fhe_mode::FheOpts,
    #[command(flatten)]
    fhe_eval: crate::fhe_mode::EvalOpts,
}

/// The PNG/JPEG files of a directory, sorted.
fn image_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("png" | "jpg" | "jpeg")
            )
        })
        .collect();
    files.sort();
    Ok(files)
}

/// Inputs (normalized), labels and each one's index in the data.
fn load_data(
    path: &Path,
    shape: &[usize],
    every: usize,
    limit: Option<usize>,
) -> anyhow::Result<Vec<(Vec<f32>, usize, usize)>> {
    let (h, w) = match shape {
        [1, 3, h, w] => (*h, *w),
        s => bail!("model input {s:?} is not a [1, 3, H, W] image"),
    };
    let mut out = Vec::new();
    if path.is_dir() {
        let files = image_files(path)?.into_iter().enumerate().step_by(every);
        for (idx, f) in files.take(limit.unwrap_or(usize::MAX)) {
            let stem = f.file_stem().and_then(|s| s.to_str()).unwrap_or("");
            let label: usize = stem
                .rsplit('_')
                .next()
                .and_then(|l| l.parse().ok())
                .with_context(|| format!("{}: name does not end in _<label>", f.display()))?;
            out.push((nn::data::load_image(&f, h, w)?, label, idx));
        }
    } else {
        if (h, w) != (32, 32) {
            bail!("CIFAR-10 images are 32x32; the model expects {h}x{w}");
        }
        let c = Cifar10::load(path)?;
        for i in (0..c.len())
            .step_by(every)
            .take(limit.unwrap_or(usize::MAX))
        {
            out.push((c.image(i), c.label(i) as usize, i));
        }
    }
    if out.is_empty() {
        bail!("no images in {}", path.display());
    }
    Ok(out)
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let model = nn::load(&a.model).with_context(|| format!("importing {}", a.model.display()))?;
    let cfg = FixedConfig::new(a.ell, a.scale)?;
    let data = load_data(&a.data, model.input_shape(), a.every as usize, a.limit)?;
    if a.mode == crate::fhe_mode::Mode::Fhe {
        // A journal's results are tied to the model file's and the data's contents (the data
        // file, or a directory's image names and contents), not to --limit.
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        h.update(std::fs::read(&a.model)?);
        if a.data.is_dir() {
            for f in image_files(&a.data)? {
                h.update(
                    f.file_name()
                        .map(|n| n.as_encoded_bytes())
                        .unwrap_or_default(),
                );
                h.update(std::fs::read(&f).unwrap_or_default());
            }
        } else {
            h.update(std::fs::read(&a.data)?);
        }
        let id: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
        return crate::fhe_mode::eval(&model, &data, &a.fhe, &a.fhe_eval, &id, a.json);
    }
    if !a.fhe_eval.fhe_flood_sweep.is_empty() || a.fhe_eval.journal.is_some() {
        bail!("--fhe-flood-sweep and --journal belong to --mode fhe");
    }
    // The fixed-point semantics the private run computes: LayerNorm → linear pairs fused as
    // the default plan fuses them (engine::plan::fused_pairs at its planning link).
    let plan_cfg = engine::PlanConfig {
        ell: a.ell,
        scale: a.scale,
        ..engine::PlanConfig::default()
    };
    let fused = engine::plan::fused_pairs(&model, &plan_cfg)?;
    let fixed = FixedModel::with_fused(&model, cfg, &fused)?;
    let pb = if a.json {
        ProgressBar::with_draw_target(Some(data.len() as u64), ProgressDrawTarget::hidden())
    } else {
        ProgressBar::new(data.len() as u64)
    };
    pb.set_style(
        ProgressStyle::with_template(
            "{bar:40} {pos}/{len} images [{elapsed_precise} < {eta_precise}]",
        )
        .expect("valid template"),
    );
    let start = Instant::now();
    // Per image: (label, float top-1, fixed top-1, overflows), and the outputs for --logits.
    type Row = (
        (usize, usize, Option<usize>, u64),
        Option<(Vec<f32>, Option<Vec<f32>>)>,
    );
    let rows: Vec<Row> = data
        .par_iter()
        .map(|(x, label, _)| -> anyhow::Result<Row> {
            let f = nn::float::run(&model, x)?;
            let pf = nn::argmax(&f.data);
            let fx = if a.fixed_point {
                let xq: Vec<u64> = x.iter().map(|&v| cfg.encode(v)).collect();
                let t = fixed.run_trace(&xq)?;
                let out = nn::fixed::decode_all(&t.values[model.output], cfg);
                Some((out, t.total_overflows()))
            } else {
                None
            };
            pb.inc(1);
            let summary = (
                *label,
                pf,
                fx.as_ref().map(|v| nn::argmax(&v.0)),
                fx.as_ref().map_or(0, |v| v.1),
            );
            let outputs = a.logits.then(|| (f.data, fx.map(|v| v.0)));
            Ok((summary, outputs))
        })
        .collect::<anyhow::Result<_>>()?;
    pb.finish_and_clear();
    if a.logits {
        for ((s, o), (_, _, i)) in rows.iter().zip(&data) {
            let (float, fixed) = o.as_ref().expect("outputs kept under --logits");
            println!(
                "{}",
                serde_json::json!({"image": i, "label": s.0, "float": float, "fixed": fixed})
            );
        }
    }
    let results: Vec<(usize, usize, Option<usize>, u64)> = rows.into_iter().map(|r| r.0).collect();
    let secs = start.elapsed().as_secs_f64();
    let n = results.len() as f64;
    let float_acc = results.iter().filter(|r| r.0 == r.1).count() as f64 / n;
    let (fixed_acc, agreement, overflows) = if a.fixed_point {
        (
            Some(results.iter().filter(|r| r.2 == Some(r.0)).count() as f64 / n),
            Some(results.iter().filter(|r| r.2 == Some(r.1)).count() as f64 / n),
            results.iter().map(|r| r.3).sum::<u64>(),
        )
    } else {
        (None, None, 0)
    };
    let accuracy = fixed_acc.unwrap_or(float_acc);
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "model": a.model.display().to_string(),
                "data": a.data.display().to_string(),
                "ell": cfg.ell(),
                "scale": cfg.scale(),
                "float_accuracy": float_acc,
                "fixed_accuracy": fixed_acc,
                "overflows": overflows,
                "seconds": secs,
                "images": results.len(),
                "accuracy": accuracy,
                "agreement": agreement,
            })
        );
    } else {
        println!("images:          {}", results.len());
        println!("float accuracy:  {:.2} %", 100.0 * float_acc);
        if let (Some(fa), Some(ag)) = (fixed_acc, agreement) {
            println!(
                "fixed accuracy:  {:.2} % (ell = {}, s = {})",
                100.0 * fa,
                cfg.ell(),
                cfg.scale()
            );
            println!(
                "agreement:       {:.2} % (fixed vs float top-1)",
                100.0 * ag
            );
            println!("overflows:       {overflows} (truncation range violations)");
        }
        println!("time:            {secs:.1} s");
    }
    Ok(())
}
