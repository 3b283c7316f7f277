//! The committed ResNet-20 fixture (models/resnet20.onnx, exported from the pretrained
//! checkpoint with its BatchNorm nodes kept) against outputs computed independently:
//! onnxruntime float32 logits and the numpy fixed-point reference
//! (python/privinfer_models/fixedpoint.py), on the 20 lossless CIFAR-10 test images.

use std::path::PathBuf;

use privinfer_nn as nn;

use nn::fixed::{FixedConfig, FixedModel};
use nn::{Model, Op};
use serde_json::Value;

fn models_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models")
}

fn load() -> (Model, Value) {
    let model = nn::load(models_dir().join("resnet20.onnx")).expect("fixture imports");
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(models_dir().join("resnet20_expected.json"))
            .expect("expected outputs"),
    )
    .expect("valid JSON");
    (model, expected)
}

#[test]
fn structure_and_counts() {
    let (m, _) = load();
    assert_eq!(m.input_shape(), &[1, 3, 32, 32]);
    assert_eq!(m.output_shape(), &[1, 10]);
    let count = |f: fn(&Op) -> bool| m.nodes.iter().filter(|n| f(&n.op)).count();
    // 19 convolutions with every BatchNorm folded in, 19 ReLUs, 9 residual adds,
    // 2 option-A shortcuts (strided slice + channel padding), one FC.
    assert_eq!(count(|o| matches!(o, Op::Conv(_))), 19);
    assert_eq!(count(|o| matches!(o, Op::BatchNorm(_))), 0);
    assert_eq!(count(|o| matches!(o, Op::Relu)), 19);
    assert_eq!(count(|o| matches!(o, Op::Add)), 9);
    assert_eq!(count(|o| matches!(o, Op::Pad(_))), 2);
    assert_eq!(count(|o| matches!(o, Op::Linear(_))), 1);
    // MACs from the architecture: conv 3→16 on 32², 6 convs 16→16 on 32², in stage 2 one
    // 16→32 stride-2 conv and 5 convs 32→32 on 16², in stage 3 one 32→64 and 5 convs 64→64
    // on 8², then FC 64→10.
    let conv = |ci: u64, co: u64, hw: u64| ci * co * 9 * hw * hw;
    let macs = conv(3, 16, 32)
        + 6 * conv(16, 16, 32)
        + conv(16, 32, 16)
        + 5 * conv(32, 32, 16)
        + conv(32, 64, 8)
        + 5 * conv(64, 64, 8)
        + 64 * 10;
    let t = m.total_counts();
    assert_eq!(t.macs, macs);
    // ReLUs: 7 on 16·32², 6 on 32·16², 6 on 64·8².
    assert_eq!(t.relus, 7 * 16 * 1024 + 6 * 32 * 256 + 6 * 64 * 64);
    assert!(m
        .metadata_value("weights")
        .unwrap_or("")
        .starts_with("pretrained"));
}

fn image(file: &str) -> Vec<f32> {
    nn::data::load_image(models_dir().join(file), 32, 32).expect("sample image")
}

#[test]
fn float_matches_onnxruntime() {
    let (m, exp) = load();
    for e in exp["images"].as_array().unwrap() {
        let want: Vec<f32> = e["float"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        let got = nn::float::run(&m, &image(e["file"].as_str().unwrap())).unwrap();
        let scale = want.iter().fold(0f32, |a, v| a.max(v.abs()));
        let err = got
            .data
            .iter()
            .zip(&want)
            .fold(0f32, |a, (g, w)| a.max((g - w).abs()));
        assert!(
            err <= 1e-4 * scale,
            "{}: max error {err} vs max |logit| {scale}",
            e["file"]
        );
        assert_eq!(
            nn::argmax(&got.data),
            e["label"].as_u64().unwrap() as usize,
            "{}",
            e["file"]
        );
    }
}

#[test]
fn fixed_point_is_bit_exact_with_numpy_reference() {
    let (m, exp) = load();
    assert_eq!(exp["ell"], 37);
    assert_eq!(exp["scale"], 12);
    let cfg = FixedConfig::default();
    let fm = FixedModel::new(&m, cfg);
    for e in exp["images"].as_array().unwrap() {
        let want: Vec<u64> = e["fixed_q"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        let x = image(e["file"].as_str().unwrap());
        let xq: Vec<u64> = x.iter().map(|&v| cfg.encode(v)).collect();
        let trace = fm.run_trace(&xq).unwrap();
        assert_eq!(trace.values[m.output], want, "{}", e["file"]);
        assert_eq!(
            trace.total_overflows(),
            e["fixed_overflows"].as_u64().unwrap()
        );
        let out = nn::fixed::decode_all(&want, cfg);
        assert_eq!(nn::argmax(&out), e["label"].as_u64().unwrap() as usize);
    }
}

#[test]
fn per_node_evaluation_matches_the_trace() {
    let (m, exp) = load();
    let cfg = FixedConfig::default();
    let file = exp["images"][0]["file"].as_str().unwrap().to_string();
    let xq: Vec<u64> = image(&file).iter().map(|&v| cfg.encode(v)).collect();
    let trace = nn::fixed::run_trace(&m, &xq, cfg).unwrap();
    let fm = FixedModel::new(&m, cfg);
    for id in 1..m.nodes.len() {
        let ins: Vec<&[u64]> = m.nodes[id]
            .inputs
            .iter()
            .map(|&i| trace.values[i].as_slice())
            .collect();
        let one = nn::fixed::eval_node(&m, id, &ins, cfg).unwrap();
        assert_eq!(one.value, trace.values[id], "node {id}");
        // A linear layer is exactly its ring kernel followed by the rescale t(·).
        if m.nodes[id].op.is_linear_layer() {
            let mut pre = fm.linear_pre_truncation(id, ins[0]).unwrap();
            cfg.truncate_in_place(&mut pre);
            assert_eq!(pre, trace.values[id], "node {id}");
        }
    }
}

#[test]
fn wrong_input_shape_is_rejected() {
    let opts = nn::ImportOptions {
        input_shape: Some(vec![1, 3, 64, 64]),
    };
    let err = nn::load_with(models_dir().join("resnet20.onnx"), &opts).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, nn::NnError::WrongInputShape { .. }), "{msg}");
    assert!(
        msg.contains("input") && msg.contains("[1, 3, 32, 32]"),
        "{msg}"
    );
    let m = nn::load(models_dir().join("resnet20.onnx")).unwrap();
    assert!(matches!(
        nn::float::run(&m, &[0.0; 10]),
        Err(nn::NnError::InputLength {
            expected: 3072,
            got: 10,
            ..
        })
    ));
}

#[test]
fn truncated_and_non_onnx_files_are_rejected() {
    let bytes = std::fs::read(models_dir().join("resnet20.onnx")).unwrap();
    for cut in [bytes.len() / 2, bytes.len() - 3, 100] {
        let err = nn::import::from_bytes(&bytes[..cut], &Default::default()).unwrap_err();
        assert!(
            matches!(
                err,
                nn::NnError::NotOnnx { .. } | nn::NnError::MissingField { .. }
            ),
            "cut at {cut}: {err}"
        );
    }
    let png = std::fs::read(models_dir().join("samples/cifar10_00_3.png")).unwrap();
    let err = nn::import::from_bytes(&png, &Default::default()).unwrap_err();
    assert!(
        matches!(
            err,
            nn::NnError::NotOnnx { .. } | nn::NnError::MissingField { .. }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("not an ONNX model"), "{err}");
}

#[test]
fn corrupted_models_never_panic() {
    // Seeded byte mutations of the fixture (structure and data): import either fails with an
    // error or yields a model the executors can run.
    let bytes = std::fs::read(models_dir().join("resnet20.onnx")).unwrap();
    let mut st = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        st ^= st << 13;
        st ^= st >> 7;
        st ^= st << 17;
        st
    };
    // Non-data bytes: the graph structure (node list) is at the start, the initializers' raw
    // data in the middle; mutate both regions.
    for round in 0..300 {
        let mut b = bytes.clone();
        let flips = 1 + (next() % 4) as usize;
        for _ in 0..flips {
            let region = if round % 2 == 0 {
                4096.min(b.len())
            } else {
                b.len()
            };
            let i = (next() as usize) % region;
            b[i] = next() as u8;
        }
        let r = std::panic::catch_unwind(|| {
            if let Ok(m) = nn::import::from_bytes(&b, &Default::default()) {
                let x = vec![0.1f32; nn::ir::numel(m.input_shape()).min(1 << 20)];
                let _ = nn::float::run(&m, &x);
            }
        });
        assert!(r.is_ok(), "round {round} panicked");
    }
}
