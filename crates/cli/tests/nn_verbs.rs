//! `privinfer inspect` and `privinfer eval` on the bundled ResNet-20 and its 20 sample images.

use std::path::PathBuf;
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn run(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_privinfer"))
        .args(args)
        .current_dir(repo())
        .output()
        .expect("runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn inspect_prints_layers_and_totals() {
    let (ok, out, err) = run(&["inspect", "models/resnet20.onnx", "--json"]);
    assert!(ok, "{err}");
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let total = &lines.last().unwrap()["total"];
    let layers = &lines[..lines.len() - 1];
    // The totals are the sums of the per-layer rows.
    for key in ["macs", "relus", "params"] {
        let sum: u64 = layers.iter().map(|l| l[key].as_u64().unwrap()).sum();
        assert_eq!(total[key].as_u64().unwrap(), sum, "{key}");
    }
    assert_eq!(layers.iter().filter(|l| l["op"] == "Conv").count(), 19);
    let (ok, text, _) = run(&["inspect", "models/resnet20.onnx"]);
    assert!(ok && text.contains("total:") && text.contains("GlobalAvgPool"));
}

#[test]
fn eval_reports_accuracy_and_agreement() {
    let (ok, out, err) = run(&[
        "eval",
        "--model",
        "models/resnet20.onnx",
        "--data",
        "models/samples",
        "--fixed-point",
        "--limit",
        "5",
        "--json",
    ]);
    assert!(ok, "{err}");
    let last: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(last["images"], 5);
    // The pretrained ResNet-20 classifies all lossless samples correctly, in both executors.
    assert_eq!(last["accuracy"], 1.0);
    assert_eq!(last["agreement"], 1.0);
    assert_eq!(last["overflows"], 0);
}

#[test]
fn bad_inputs_fail_with_a_message() {
    let (ok, _, err) = run(&["inspect", "models/samples/cifar10_00_3.png"]);
    assert!(!ok && err.contains("not an ONNX model"), "{err}");
    let (ok, _, err) = run(&[
        "eval",
        "--model",
        "models/resnet20.onnx",
        "--data",
        "models/resnet20.onnx",
    ]);
    assert!(!ok && err.contains("CIFAR-10"), "{err}");
}
