//! Tiny committed models covering every IR op (models/tiny/, python/privinfer_models/tiny.py)
//! against onnxruntime float outputs and, for the CNN, the numpy fixed-point reference.

use std::path::PathBuf;

use privinfer_nn as nn;
use serde_json::Value;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/tiny")
}

fn expected() -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir().join("tiny_expected.json")).unwrap())
        .unwrap()
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

#[test]
fn float_executor_matches_onnxruntime() {
    let exp = expected();
    for name in ["tiny_cnn", "tiny_vit", "tiny_te_vit"] {
        let e = &exp["models"][name];
        let m = nn::load(dir().join(e["file"].as_str().unwrap())).unwrap();
        for case in e["cases"].as_array().unwrap() {
            let want = floats(&case["float"]);
            let got = nn::float::run(&m, &floats(&case["input"])).unwrap();
            let scale = want.iter().fold(0f32, |a, v| a.max(v.abs()));
            let err = got
                .data
                .iter()
                .zip(&want)
                .fold(0f32, |a, (g, w)| a.max((g - w).abs()));
            assert!(err <= 1e-4 * scale, "{name}: {err} vs {scale}");
        }
    }
}

#[test]
fn tiny_cnn_lowering_and_fixed_point() {
    let exp = expected();
    let e = &exp["models"]["tiny_cnn"];
    let m = nn::load(dir().join("tiny_cnn.onnx")).unwrap();
    let ops: Vec<&str> = m.nodes.iter().map(|n| n.op.name()).collect();
    // BN after a residual Add stays a BatchNorm; Relu + Clip(0, 6) become one Relu6.
    for op in [
        "BatchNorm",
        "DepthwiseConv",
        "Relu6",
        "MaxPool",
        "AvgPool",
        "Slice",
        "Pad",
        "GlobalAvgPool",
        "Linear",
    ] {
        assert!(ops.contains(&op), "{op} missing from {ops:?}");
    }
    assert_eq!(ops.iter().filter(|o| **o == "Relu6").count(), 2);
    assert_eq!(ops.iter().filter(|o| **o == "Relu").count(), 1);
    let cfg = nn::FixedConfig::default();
    let fm = nn::fixed::FixedModel::new(&m, cfg);
    for case in e["cases"].as_array().unwrap() {
        let x: Vec<u64> = floats(&case["input"])
            .iter()
            .map(|&v| cfg.encode(v))
            .collect();
        let t = fm.run_trace(&x).unwrap();
        let want: Vec<u64> = case["fixed_q"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        assert_eq!(t.values[m.output], want);
        assert_eq!(
            t.total_overflows(),
            case["fixed_overflows"].as_u64().unwrap()
        );
    }
}

/// The tiny ViT after import: LayerNorm affines folded into the linear layers that read them,
/// every LayerNorm next to its linear layer, and the attention scale folded into the query
/// projection; its fixed-point output (GELU,
/// softmax and LayerNorm by `nn::approx`) follows the onnxruntime float output.
#[test]
fn tiny_vit_runs_in_fixed_point_close_to_float() {
    for name in ["tiny_vit", "tiny_te_vit"] {
        vit_fixed_close_to_float(name);
    }
}

/// `tiny_te_vit` is the same kind of model written with torch.nn.TransformerEncoderLayer
/// (packed q/k/v split by Slice, sequence-first transposes, scaled query before the product).
fn vit_fixed_close_to_float(name: &str) {
    let e = expected();
    let m = nn::load(dir().join(format!("{name}.onnx"))).unwrap();
    let ops: Vec<&str> = m.nodes.iter().map(|n| n.op.name()).collect();
    for op in [
        "LayerNorm",
        "Softmax",
        "Gelu",
        "MatMul",
        "Transpose",
        "Concat",
        "Add",
        "Linear",
    ] {
        assert!(ops.contains(&op), "{op} missing from {ops:?}");
    }
    assert!(!ops.contains(&"Mul"), "attention scale not folded: {ops:?}");
    for (id, n) in m.nodes.iter().enumerate() {
        if let nn::Op::LayerNorm(l) = &n.op {
            assert!(l.is_identity(), "{}: affine not folded", n.name);
            // Every LayerNorm reaches the linear layer it feeds (the head's after its
            // class-token slice moved before it), so the pair is evaluated fused.
            assert!(
                (0..m.nodes.len()).any(|k| m.norm_before(k) == Some(id)),
                "{}: not fused",
                n.name
            );
        }
    }
    let cfg = nn::FixedConfig::default();
    // LayerNorms alone, and every one fused with the linear layer it feeds; then also every
    // softmax with its product by V and reading Q·Kᵀ unrounded.
    let pairs: Vec<usize> = (0..m.nodes.len())
        .filter(|&k| m.norm_before(k).is_some())
        .collect();
    let all: Vec<usize> = (0..m.nodes.len())
        .filter(|&k| {
            m.norm_before(k).is_some()
                || m.softmax_before(k).is_some()
                || m.product_before_softmax(k).is_some()
        })
        .collect();
    assert!(all.iter().any(|&k| m.product_before_softmax(k).is_some()));
    for fm in [
        nn::fixed::FixedModel::new(&m, cfg),
        nn::fixed::FixedModel::with_fused(&m, cfg, &pairs).unwrap(),
        nn::fixed::FixedModel::with_fused(&m, cfg, &all).unwrap(),
    ] {
        for case in e["models"][name]["cases"].as_array().unwrap() {
            let x = floats(&case["input"]);
            let want = floats(&case["float"]);
            let xq: Vec<u64> = x.iter().map(|&v| cfg.encode(v)).collect();
            let t = fm.run_trace(&xq).unwrap();
            assert_eq!(t.total_overflows(), 0);
            let got = nn::fixed::decode_all(&t.values[m.output], cfg);
            let scale = want.iter().fold(0f32, |a, v| a.max(v.abs()));
            for (g, w) in got.iter().zip(&want) {
                assert!(
                    (g - w).abs() <= 0.02 * scale + 0.01,
                    "fixed {g} vs float {w} (fused {:?})",
                    fm.fused()
                );
            }
        }
    }
    // A layer that does not read a LayerNorm alone cannot be fused.
    assert!(nn::fixed::FixedModel::with_fused(&m, cfg, &[1]).is_err());
}

/// The zoo ViT's q, k and v projections read the same LayerNorm: the import merges them into
/// one token × weight product (outputs side by side) and slices it back under their names, so
/// the private run has one linear step per attention input instead of three; the float
/// executor still matches onnxruntime (`float_executor_matches_onnxruntime`).
#[test]
fn sibling_token_products_are_merged() {
    let m = nn::load(dir().join("tiny_vit.onnx")).unwrap();
    let merged: Vec<&nn::ir::Node> = m
        .nodes
        .iter()
        .filter(|n| matches!(&n.op, nn::ir::Op::Linear(l) if l.rows > 1 && n.name.contains('+')))
        .collect();
    assert!(!merged.is_empty(), "no merged projection");
    for n in merged {
        let nn::ir::Op::Linear(l) = &n.op else {
            unreachable!()
        };
        let parts: Vec<&str> = n.name.split('+').collect();
        assert!(parts.len() >= 2);
        for p in &parts {
            let s = m.nodes.iter().find(|x| x.name == *p).unwrap();
            assert!(matches!(s.op, nn::ir::Op::Slice(_)), "{p} is not a slice");
        }
        assert_eq!(l.out_features % parts.len(), 0);
        assert_eq!(l.weight.len(), l.in_features * l.out_features);
    }
}
