//! `privinfer inspect MODEL.onnx [--json]`: the layer table (op, shapes, MACs, ReLUs,
//! parameters) and totals of an imported model.

use std::path::PathBuf;

use anyhow::Context;

#[derive(clap::Args)]
pub struct Args {
    /// ONNX model file.
    model: PathBuf,
    /// One JSON object per line (one per layer, then `{"total": ...}`).
    #[arg(long)]
    json: bool,
}

fn shape(s: &[usize]) -> String {
    let inner: Vec<String> = s.iter().map(|d| d.to_string()).collect();
    format!("[{}]", inner.join(","))
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let model = nn::load(&a.model).with_context(|| format!("importing {}", a.model.display()))?;
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
