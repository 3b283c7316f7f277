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

/// One JSON value per line of a command's output.
fn json_lines(out: &str) -> Vec<serde_json::Value> {
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn inspect_prints_layers_and_totals() {
    let (ok, out, err) = run(&["inspect", "models/resnet20.onnx", "--json"]);
    assert!(ok, "{err}");
    let lines = json_lines(&out);
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
    // --every 3: the samples 0, 3, 6, each named by its index, with its label.
    let (ok, out, err) = run(&[
        "eval",
        "--model",
        "models/resnet20.onnx",
        "--data",
        "models/samples",
        "--every",
        "3",
        "--limit",
        "3",
        "--json",
        "--logits",
    ]);
    assert!(ok, "{err}");
    let rows = json_lines(&out);
    let names: Vec<String> = {
        let mut v: Vec<String> = std::fs::read_dir(repo().join("models/samples"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".png"))
            .collect();
        v.sort();
        v
    };
    for (k, r) in rows[..3].iter().enumerate() {
        assert_eq!(r["image"], 3 * k, "{r}");
        let label = names[3 * k]
            .trim_end_matches(".png")
            .rsplit('_')
            .next()
            .unwrap();
        assert_eq!(r["label"].to_string(), label, "{r}");
    }
    assert_eq!(rows[3]["images"], 3);
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

/// FHE mode on the tiny AESPA-style ResNet (INSECURE test parameters): `inspect` and `bench`
/// report the program, the encrypted logits match the float executor, `eval` agrees with float,
/// and a model with ops FHE mode does not lower is refused with a one-line reason.
#[test]
fn fhe_mode_inspect_bench_eval() {
    let m = "models/tiny/tiny_fhe.onnx";
    let (ok, out, err) = run(&[
        "inspect",
        m,
        "--mode",
        "fhe",
        "--fhe-params",
        "test-n12",
        "--json",
    ]);
    assert!(ok, "{err}");
    let lines = json_lines(&out);
    let total = &lines.last().unwrap()["total"];
    let rows = &lines[..lines.len() - 1];
    let rot: u64 = rows.iter().map(|r| r["rotations"].as_u64().unwrap()).sum();
    assert_eq!(total["rotations"].as_u64().unwrap(), rot);
    let boots = rows.iter().filter(|r| r["op"] == "bootstrap").count() as u64;
    assert!(boots >= 1);
    assert_eq!(total["bootstraps"].as_u64().unwrap(), boots);
    assert!(
        total["conv_rotations"].as_u64().unwrap() < total["mpcnn_conv_rotations"].as_u64().unwrap()
    );

    let (ok, out, err) = run(&[
        "bench",
        "--model",
        m,
        "--mode",
        "fhe",
        "--fhe-params",
        "test-n12",
        // The evaluation's own precision: no flooding (the output is still re-randomized).
        "--fhe-flood-bits",
        "0",
        "--json",
    ]);
    assert!(ok, "{err}");
    let lines = json_lines(&out);
    let total = &lines.last().unwrap()["total"];
    for key in [
        "ms",
        "bootstraps",
        "rotations",
        "eval_key_bytes",
        "ciphertext_bytes_c2s",
        "ciphertext_bytes_s2c",
        "peak_rss_bytes",
        "precision_bits",
        "matches_float",
    ] {
        assert!(!total[key].is_null(), "{key} missing: {total}");
    }
    assert_eq!(total["matches_float"], true);
    assert!(total["precision_bits"].as_f64().unwrap() > 12.0, "{total}");
    assert!(total["flood_bits"].is_null(), "{total}");
    assert_eq!(total["bootstraps"].as_u64().unwrap(), boots);
    assert!(lines[..lines.len() - 1]
        .iter()
        .all(|r| r["protocol"] == "fhe"));

    // Two 8×8 images for the tiny model.
    let dir = std::env::temp_dir().join(format!("privinfer-fhe-eval-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (i, label) in [(0u8, 3), (1, 7)] {
        let img = image::RgbImage::from_fn(8, 8, |x, y| {
            image::Rgb([(x * 30) as u8, (y * 30) as u8, 90 + 60 * i])
        });
        img.save(dir.join(format!("img{i}_{label}.png"))).unwrap();
    }
    let d = dir.to_string_lossy().into_owned();
    let journal = dir.with_extension("journal.jsonl");
    let j = journal.to_string_lossy().into_owned();
    // `eval --mode fhe` of the two images on the test preset, plus `extra`; `fhe_eval`
    // journals in `j`.
    let fhe_run = |extra: &[&str]| {
        let mut args = vec![
            "eval",
            "--model",
            m,
            "--data",
            &d,
            "--mode",
            "fhe",
            "--fhe-params",
            "test-n12",
        ];
        args.extend_from_slice(extra);
        run(&args)
    };
    let fhe_eval = |extra: &[&str]| fhe_run(&[&["--journal", j.as_str()], extra].concat());
    let eval = |limit: &str| fhe_eval(&["--limit", limit, "--fhe-flood-sweep", "0,1,30", "--json"]);
    let summary = |out: &str| -> serde_json::Value {
        serde_json::from_str(out.lines().last().unwrap()).unwrap()
    };
    // The first image, then both: the journal's image is not evaluated again.
    let (ok, out, err) = eval("1");
    assert!(ok, "{err}");
    assert_eq!(summary(&out)["images"], 1);
    let (ok, out, err) = eval("2");
    assert!(ok, "{err}");
    let v = summary(&out);
    assert_eq!(
        (v["images"].as_u64(), v["evaluated_now"].as_u64()),
        (Some(2), Some(1)),
        "{v}"
    );
    assert_eq!(v["agreement"], 1.0, "{v}");
    // Both images stay within the range in float.
    assert_eq!(
        (
            v["out_of_range"].as_array().map(Vec::len),
            v["in_range_agreement"].as_f64()
        ),
        (Some(0), Some(1.0)),
        "{v}"
    );
    // The sweep: unflooded and 2^-30 agree with float; 2^-1 of the range is as large as the
    // values, which the precision shows.
    let sweep = v["sweep"].as_array().unwrap();
    let bits = |k: usize| sweep[k]["min_precision_bits"].as_f64().unwrap();
    assert_eq!(
        (
            sweep[0]["agreement"].as_f64(),
            sweep[2]["agreement"].as_f64()
        ),
        (Some(1.0), Some(1.0)),
        "{v}"
    );
    assert!(bits(1) < 4.0 && bits(0) > 10.0 && bits(2) > 10.0, "{v}");
    // A last line cut short by a stop is dropped and its image evaluated again.
    let text = std::fs::read_to_string(&journal).unwrap();
    assert_eq!(text.lines().count(), 3, "{text}");
    std::fs::write(&journal, &text[..text.len() - 20]).unwrap();
    let (ok, out, err) = eval("2");
    assert!(ok, "{err}");
    assert_eq!(summary(&out)["evaluated_now"], 1);
    assert_eq!(
        std::fs::read_to_string(&journal).unwrap().lines().count(),
        4
    );
    // A journal written with other settings is refused in one line.
    let (ok, _, err) = fhe_eval(&["--fhe-flood-bits", "14"]);
    assert!(
        !ok && err.contains("use another --journal") && err.lines().count() == 1,
        "{err}"
    );
    // A range below the float trace's values: the image is listed as leaving it, with its
    // largest |value|, and no in-range agreement is claimed.
    let (ok, out, err) = fhe_run(&["--fhe-range", "0.5", "--limit", "1", "--json"]);
    assert!(ok, "{err}");
    let v = summary(&out);
    let outside = v["out_of_range"].as_array().unwrap();
    assert!(
        outside.len() == 1
            && outside[0]["max_abs"].as_f64().unwrap() > 0.5
            && v["in_range_agreement"].is_null(),
        "{v}"
    );
    // Two images at once (`--jobs 2`) into a fresh journal: both journaled, the same results.
    std::fs::remove_file(&journal).unwrap();
    let (ok, out, err) = fhe_eval(&["--jobs", "2", "--json"]);
    assert!(ok, "{err}");
    let v = summary(&out);
    assert_eq!(
        (v["evaluated_now"].as_u64(), v["agreement"].as_f64()),
        (Some(2), Some(1.0)),
        "{v}"
    );
    assert_eq!(
        std::fs::read_to_string(&journal).unwrap().lines().count(),
        3
    );
    let _ = (
        std::fs::remove_dir_all(&dir),
        std::fs::remove_file(&journal),
    );

    let (ok, _, err) = run(&[
        "inspect",
        "models/tiny/tiny_cnn.onnx",
        "--mode",
        "fhe",
        "--fhe-params",
        "test-n12",
    ]);
    assert!(!ok);
    assert!(
        err.contains("FHE mode cannot lower") && err.lines().count() == 1,
        "{err}"
    );

    // The composite sign's degrees: fewer levels per ReLU, fewer bootstraps; bad ones refused.
    let inspect_relu = |degrees: &str| {
        run(&[
            "inspect",
            "models/tiny/tiny_fhe_relu.onnx",
            "--mode",
            "fhe",
            "--fhe-params",
            "test-n12",
            "--relu-degrees",
            degrees,
            "--json",
        ])
    };
    let boots = |degrees: &str| -> u64 {
        let (ok, out, err) = inspect_relu(degrees);
        assert!(ok, "{err}");
        let last: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
        last["total"]["bootstraps"].as_u64().unwrap()
    };
    assert!(boots("63,63") < boots("15,15,27"));
    for bad in ["4", "15,16", "0"] {
        let (ok, _, err) = inspect_relu(bad);
        assert!(
            !ok && err.contains("--relu-degrees") && err.lines().count() == 1,
            "{err}"
        );
    }
}
