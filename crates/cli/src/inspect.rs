//! `privinfer inspect MODEL.onnx [--json] [--plan]`: the layer table (op, shapes, MACs, ReLUs,
//! parameters) and totals of an imported model; with `--plan`, the 2PC plan instead: per layer
//! the protocol chosen, the cost model's prediction, the estimated time of every protocol that
//! applies (why the planner chose as it did), and the model digest.

use std::path::PathBuf;

use anyhow::Context;

#[derive(clap::Args)]
pub struct Args {
    /// ONNX model file.
    model: PathBuf,
    /// One JSON object per line (one per layer, then `{"total": ...}`).
    #[arg(long)]
    json: bool,
    /// Show the private-inference plan (protocol and predicted cost per layer).
    #[arg(long)]
    plan: bool,
    /// Ring bit width ℓ for `--plan`.
    #[arg(long, default_value_t = 37)]
    ell: u32,
    /// Fractional bits s for `--plan`.
    #[arg(long, default_value_t = 12)]
    scale: u32,
    /// Linear-layer protocols for `--plan` (as `privinfer bench --protocol`).
    #[arg(long, default_value = "auto")]
    protocol: engine::LinearPolicy,
    /// Bandwidth (Mbit/s) the planner assumes for `--plan`.
    #[arg(long, default_value_t = 400)]
    plan_mbps: u64,
    /// `fhe`: the FHE-mode program (layouts, levels, rotations against MPCNN's formula,
    /// bootstraps) from a dry run on clear slots.
    #[arg(long, value_enum, default_value = "2pc")]
    mode: crate::fhe_mode::Mode,
    #[command(flatten)]
    fhe: crate::fhe_mode::FheOpts,
}

/// `--plan`: the plan as the server would show it to a client, with predicted linear-layer costs.
fn show_plan(a: &Args, model: &nn::Model) -> anyhow::Result<()> {
    let mut cfg = engine::PlanConfig {
        ell: a.ell,
        scale: a.scale,
        linear: a.protocol,
        ..engine::PlanConfig::default()
    };
    cfg.cheetah.bandwidth_bytes_per_s = a.plan_mbps * 1_000_000 / 8;
    let plan = engine::Plan::compile(model, &cfg)?;
    let ring = linear::Ring::new(a.ell)?;
    // Per linear step: every applicable protocol's estimated ms at the planning bandwidth.
    let estimates = |k: &engine::StepKind| -> Vec<(&'static str, f64)> {
        match k {
            engine::StepKind::Linear { layer, .. } => {
                let mut v: Vec<(&'static str, f64)> = engine::plan::candidates(layer, ring, &cfg)
                    .into_iter()
                    .map(|(c, t)| (c.name(), t * 1e3))
                    .collect();
                v.sort_by(|x, y| x.1.total_cmp(&y.1));
                v
            }
            _ => Vec::new(),
        }
    };
    let digest = plan.digest();
    let predicted = |k: &engine::StepKind| match k {
        engine::StepKind::Linear { cost, .. } => Some(*cost),
        _ => None,
    };
    if a.json {
        // Non-linear traffic per step (exact bits, COTs), the output's last: what a network
        // optimization weighs (python/privinfer_models/copriv.py).
        let nonlinear = plan.nonlinear_costs(false)?;
        for (i, s) in plan.steps.iter().enumerate() {
            let c = predicted(&s.kind);
            let nl = nonlinear[i];
            let est: serde_json::Map<String, serde_json::Value> = estimates(&s.kind)
                .into_iter()
                .map(|(n, ms)| {
                    (
                        n.to_string(),
                        serde_json::json!((ms * 100.0).round() / 100.0),
                    )
                })
                .collect();
            println!(
                "{}",
                serde_json::json!({"layer": i, "name": s.name, "op": s.op, "protocol": s.kind.protocol(),
                    "shape": s.shape, "predicted": c, "estimated_ms": est,
                    "nonlinear": {"bytes": nl.bits.div_ceil(8), "cots": nl.cots()}})
            );
        }
        let t = plan.predicted_linear_cost();
        println!(
            "{}",
            serde_json::json!({"layer": "total", "model_digest": digest, "ell": plan.ell, "scale": plan.scale,
                "predicted_linear": t})
        );
        return Ok(());
    }
    println!(
        "plan for {} (ℓ = {}, s = {}), model digest {digest}",
        a.model.display(),
        plan.ell,
        plan.scale
    );
    println!(
        "{:>5}  {:<14} {:<9} {:<18} {:>11} {:>11} {:>6} {:>7}  estimated ms at {} Mbit/s, fastest first",
        "layer", "op", "protocol", "output", "c2s bytes", "s2c bytes", "rounds", "ct×pt", a.plan_mbps
    );
    for (i, s) in plan.steps.iter().enumerate() {
        let (c2s, s2c, r, m) = predicted(&s.kind)
            .map(|c| {
                (
                    c.bytes_c2s.to_string(),
                    c.bytes_s2c.to_string(),
                    c.rounds.to_string(),
                    c.ct_pt_mults.to_string(),
                )
            })
            .unwrap_or_default();
        let est: Vec<String> = estimates(&s.kind)
            .iter()
            .map(|(n, ms)| format!("{n} {ms:.1}"))
            .collect();
        println!(
            "{:>5}  {:<14} {:<9} {:<18} {:>11} {:>11} {:>6} {:>7}  {}",
            i,
            s.op,
            s.kind.protocol(),
            shape(&s.shape),
            c2s,
            s2c,
            r,
            m,
            est.join(", ")
        );
    }
    let t = plan.predicted_linear_cost();
    println!(
        "linear layers (predicted): {} B client→server, {} B server→client, {} rounds; non-linear layers are measured by `privinfer bench --model`",
        t.bytes_c2s, t.bytes_s2c, t.rounds
    );
    Ok(())
}

fn shape(s: &[usize]) -> String {
    let inner: Vec<String> = s.iter().map(|d| d.to_string()).collect();
    format!("[{}]", inner.join(","))
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let model = nn::load(&a.model).with_context(|| format!("importing {}", a.model.display()))?;
    if a.mode == crate::fhe_mode::Mode::Fhe {
        return crate::fhe_mode::inspect(&model, &a.fhe, a.json);
    }
    if a.plan {
        return show_plan(&a, &model);
    }
    let rows = model.layer_table();
    let total = model.total_counts();
    if a.json {
        for r in &rows {
            println!("{}", serde_json::to_string(r)?);
        }
        println!(
            "{}",
            serde_json::json!({
                "model": model.name,
                "input": model.input_shape(),
                "output": model.output_shape(),
                "layers": rows.len(),
                "metadata": model.metadata.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
                "total": total,
            })
        );
        return Ok(());
    }
    println!(
        "model {}  input {}  output {}",
        a.model.display(),
        shape(model.input_shape()),
        shape(model.output_shape())
    );
    for (k, v) in &model.metadata {
        println!("  {k}: {v}");
    }
    println!(
        "{:>5}  {:<14} {:<26} {:<18} {:>13} {:>9} {:>10}",
        "layer", "op", "input", "output", "MACs", "ReLUs", "params"
    );
    for r in &rows {
        let ins: Vec<String> = r.inputs.iter().map(|s| shape(s)).collect();
        println!(
            "{:>5}  {:<14} {:<26} {:<18} {:>13} {:>9} {:>10}",
            r.layer,
            r.op,
            ins.join(" "),
            shape(&r.output),
            r.counts.macs,
            r.counts.relus,
            r.counts.params
        );
    }
    println!(
        "total: {} layers, {} MACs, {} ReLUs, {} comparisons, {} truncations, {} parameters",
        rows.len(),
        total.macs,
        total.relus,
        total.comparisons,
        total.truncations,
        total.params
    );
    Ok(())
}
