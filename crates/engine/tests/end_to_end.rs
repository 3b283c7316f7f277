//! Private inference end to end against the fixed-point reference executor.

use std::path::PathBuf;
use std::thread;

use privinfer_engine::{run_client, run_server, LinearPolicy, Outcome, PlanConfig, ServerModel};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use transport::MemoryChannel;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A graph node of a hand-built model.
fn node(name: &str, op: nn::Op, inputs: Vec<usize>, shape: Vec<usize>) -> nn::Node {
    nn::Node {
        name: name.into(),
        op,
        inputs,
        shape,
    }
}

/// `n` deterministic weights of amplitude `a` (a sine with phase `k`).
fn wave(n: usize, k: f32, a: f32) -> Vec<f32> {
    (0..n).map(|i| ((i as f32 * 0.37 + k).sin()) * a).collect()
}

/// Runs both parties over an in-memory channel and returns what the client learns.
fn private_logits(server: &ServerModel, input: Vec<u64>, label: bool, seed: u64) -> Outcome {
    let (mut cs, mut cc) = MemoryChannel::pair();
    let plan = server.plan.clone();
    thread::scope(|s| {
        let h = s.spawn(move || {
            let mut rng = ChaCha20Rng::seed_from_u64(seed);
            run_server(server, label, &mut cs, &mut rng, &mut |_, _| {}).unwrap()
        });
        let mut rng = ChaCha20Rng::seed_from_u64(seed + 1);
        let (out, report) =
            run_client(&plan, label, input, &mut cc, &mut rng, &mut |_, _| {}).unwrap();
        let server_report = h.join().unwrap();
        // The setup generated exactly the COTs the plan predicts, and the run used exactly those.
        for ot in [report.ot, server_report.ot] {
            assert_eq!(
                (ot.used_send, ot.used_recv),
                (ot.predicted_send, ot.predicted_recv)
            );
        }
        assert_eq!(report.ot.used_send, server_report.ot.used_recv);
        assert_eq!(report.ot.left_send, server_report.ot.left_recv);
        out
    })
}

/// ResNet-20 on the 20 lossless CIFAR-10 test images (committed copies in models/samples): the
/// private logits equal the fixed-point reference's exactly, and with them the top-1 labels.
#[test]
fn resnet20_on_the_lossless_images_matches_the_fixed_point_reference() {
    let model = nn::load(repo().join("models/resnet20.onnx")).unwrap();
    let cfg = PlanConfig::default();
    let fixed = nn::FixedConfig::new(cfg.ell, cfg.scale).unwrap();
    let server = ServerModel::new(&model, &cfg).unwrap();
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("models/samples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "png"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 20);
    let mut correct = 0;
    for (k, img) in files.iter().enumerate() {
        let x = nn::data::load_image(img, 32, 32).unwrap();
        let xq: Vec<u64> = x.iter().map(|&v| fixed.encode(v)).collect();
        let reference = nn::fixed::run(&model, &x, fixed).unwrap();
        let Outcome::Logits(l) = private_logits(&server, xq, false, 100 + 2 * k as u64) else {
            panic!()
        };
        assert_eq!(l, reference.data, "{}", img.display());
        let vals: Vec<i64> = l.iter().map(|&v| fixed.signed(v)).collect();
        let top = (0..vals.len()).fold(0, |b, i| if vals[i] > vals[b] { i } else { b });
        let label: usize = img
            .file_stem()
            .unwrap()
            .to_str()
            .unwrap()
            .rsplit('_')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        correct += usize::from(top == label);
    }
    println!("private ResNet-20: {correct}/20 lossless images classified correctly");
}

/// A MobileNet-style stack (conv → ReLU6 → depthwise conv → ReLU6 → 1×1 conv → global average →
/// FC) with weights large enough that both clamps of ReLU6 are hit: the plan fuses each ReLU6
/// with the rescale before it, and the private logits equal the reference's exactly.
#[test]
fn fused_relu6_matches_the_fixed_point_reference() {
    use nn::ir::{Conv2d, Linear};
    use nn::{Model, Op};
    let conv = |cin: usize, cout: usize, k: usize, groups: usize, hw: usize, seed: f32| {
        Op::Conv(Conv2d {
            in_shape: [cin, hw, hw],
            out_shape: [cout, hw, hw],
            kernel: [k, k],
            stride: [1, 1],
            pads: [k / 2; 4],
            groups,
            weight: wave(cout * cin / groups * k * k, seed, 1.5),
            bias: wave(cout, seed + 0.5, 2.0),
        })
    };
    let model = Model {
        name: "mini-mobilenet".into(),
        input_name: "x".into(),
        nodes: vec![
            node("x", Op::Input, vec![], vec![1, 3, 8, 8]),
            node("conv", conv(3, 8, 3, 1, 8, 0.1), vec![0], vec![1, 8, 8, 8]),
            node("relu6", Op::Relu6, vec![1], vec![1, 8, 8, 8]),
            node("dw", conv(8, 8, 3, 8, 8, 0.4), vec![2], vec![1, 8, 8, 8]),
            node("relu6b", Op::Relu6, vec![3], vec![1, 8, 8, 8]),
            node("pw", conv(8, 4, 1, 1, 8, 0.8), vec![4], vec![1, 4, 8, 8]),
            node("gap", Op::GlobalAvgPool, vec![5], vec![1, 4, 1, 1]),
            node("flat", Op::Reshape, vec![6], vec![1, 4]),
            node(
                "fc",
                Op::Linear(Linear {
                    in_features: 4,
                    out_features: 3,
                    rows: 1,
                    weight: wave(12, 0.3, 0.5),
                    bias: wave(3, 0.9, 0.5),
                }),
                vec![7],
                vec![1, 3],
            ),
        ],
        output: 8,
        metadata: vec![],
    };
    for linear in [
        LinearPolicy::Auto,
        LinearPolicy::Simd,
        LinearPolicy::Hyena,
        LinearPolicy::Falcon,
    ] {
        check_mini_mobilenet(
            &model,
            PlanConfig {
                linear,
                ..PlanConfig::default()
            },
        );
    }
    // Falcon within Cheetah's bytes over the plan's falcon steps.
    let mut cfg = PlanConfig {
        linear: LinearPolicy::Falcon,
        ..PlanConfig::default()
    };
    cfg.cheetah.dense_bytes = linear::DenseBytes::AtMostCheetahTotal;
    check_mini_mobilenet(&model, cfg);
}

fn check_mini_mobilenet(model: &nn::Model, cfg: PlanConfig) {
    use privinfer_engine::plan::{Epilogue, StepKind};
    let linear = cfg.linear;
    let fixed = nn::FixedConfig::new(cfg.ell, cfg.scale).unwrap();
    let server = ServerModel::new(model, &cfg).unwrap();
    if linear == LinearPolicy::Simd {
        assert!(server.plan.steps.iter().all(|s| match &s.kind {
            StepKind::Linear { choice, .. } => choice.name() == "simd",
            _ => true,
        }));
    }
    if linear == LinearPolicy::Falcon {
        // The depthwise conv by falcon, the rest by Cheetah; within the byte budget if asked.
        use linear::LinearProtocol;
        let cheetah = linear::Cheetah::new(cfg.cheetah);
        for s in &server.plan.steps {
            if let StepKind::Linear {
                choice,
                layer,
                cost,
                ..
            } = &s.kind
            {
                let grouped = matches!(layer.shape, linear::LayerShape::Conv2d(c) if c.groups > 1);
                assert_eq!(choice.name(), if grouped { "falcon" } else { "cheetah" });
                if grouped && cfg.cheetah.dense_bytes == linear::DenseBytes::AtMostCheetahTotal {
                    let ring = linear::Ring::new(cfg.ell).unwrap();
                    assert!(cost.bytes() <= cheetah.cost(layer, ring).unwrap().bytes());
                }
            }
        }
    }
    if linear == LinearPolicy::Hyena {
        // Every conv by hyena; the FC (not a convolution) by Cheetah.
        for s in &server.plan.steps {
            if let StepKind::Linear { choice, layer, .. } = &s.kind {
                let fc = matches!(layer.shape, linear::LayerShape::Fc(_));
                assert_eq!(choice.name(), if fc { "cheetah" } else { "hyena" });
            }
        }
    }
    let fused = server
        .plan
        .steps
        .iter()
        .filter(|s| {
            matches!(
                s.kind,
                StepKind::Linear {
                    epilogue: Epilogue::RescaleRelu6,
                    ..
                }
            )
        })
        .count();
    assert_eq!(fused, 2);
    let x: Vec<f32> = (0..3 * 64)
        .map(|i| ((i * 7919) % 1000) as f32 / 250.0 - 2.0)
        .collect();
    // Both clamps occur in the reference: some ReLU6 inputs are negative, some above 6.
    let xq: Vec<u64> = x.iter().map(|&v| fixed.encode(v)).collect();
    let trace = nn::fixed::run_trace(model, &xq, fixed).unwrap();
    assert_eq!(trace.total_overflows(), 0);
    let six = 6i64 << cfg.scale;
    let (mut lo, mut hi) = (0, 0);
    for id in [2usize, 4] {
        for &v in &trace.values[id] {
            let v = fixed.signed(v);
            lo += usize::from(v == 0);
            hi += usize::from(v == six);
        }
    }
    assert!(lo > 0 && hi > 0, "clamps hit: {lo} at 0, {hi} at 6");
    let reference = nn::fixed::run(model, &x, fixed).unwrap();
    let Outcome::Logits(l) = private_logits(&server, xq, false, 7) else {
        panic!()
    };
    assert_eq!(l, reference.data, "{linear:?}");
}

/// ResNet-20 with every linear layer by the SIMD protocol (shares converted to Z_t and back
/// around each): the private logits equal the fixed-point reference's exactly.
#[test]
fn resnet20_through_simd_matches_the_fixed_point_reference() {
    let model = nn::load(repo().join("models/resnet20.onnx")).unwrap();
    let cfg = PlanConfig {
        linear: LinearPolicy::Simd,
        ..PlanConfig::default()
    };
    let fixed = nn::FixedConfig::new(cfg.ell, cfg.scale).unwrap();
    let server = ServerModel::new(&model, &cfg).unwrap();
    let img = repo().join("models/samples/cifar10_00_3.png");
    let x = nn::data::load_image(&img, 32, 32).unwrap();
    let xq: Vec<u64> = x.iter().map(|&v| fixed.encode(v)).collect();
    let reference = nn::fixed::run(&model, &x, fixed).unwrap();
    let Outcome::Logits(l) = private_logits(&server, xq, false, 11) else {
        panic!()
    };
    assert_eq!(l, reference.data);
}

/// The planner's choice (`LinearPolicy::Auto`) on 40 parallel 1×1 stride-2 convs 256 → 512 on
/// 8×8 (ResNet-18's layer4 downsample, where the slot-encoded kernels are measured faster than
/// Cheetah's packed responses, BENCHMARKS.md § SIMD linear layers), summed: at 400 Mbit/s their
/// estimated saving (≈ 0.06 s each) outweighs the one set of Galois keys they share (≈ 50 MB,
/// 1 s) and they go to the SIMD family — `hyena`, estimated (and measured, 1.0–1.2×) a little
/// faster than `simd` on such 1×1 convs and with fewer keys (its baby steps are shared); at
/// 50 Mbit/s the keys cost more than the layers save and the plan keeps Cheetah (at 100 Mbit/s
/// hyena's smaller key set already pays); a single such layer never pays for its keys. Forced
/// policies are obeyed.
#[test]
fn auto_policy_weighs_layer_time_against_key_setup() {
    use nn::ir::Conv2d;
    use nn::{Model, Node, Op};
    use privinfer_engine::plan::StepKind;
    let model = |branches: usize| {
        let mut nodes = vec![Node {
            name: "x".into(),
            op: Op::Input,
            inputs: vec![],
            shape: vec![1, 256, 8, 8],
        }];
        for b in 0..branches {
            nodes.push(Node {
                name: format!("ds{b}"),
                op: Op::Conv(Conv2d {
                    in_shape: [256, 8, 8],
                    out_shape: [512, 4, 4],
                    kernel: [1, 1],
                    stride: [2, 2],
                    pads: [0; 4],
                    groups: 1,
                    weight: (0..512 * 256)
                        .map(|i| (((i + b) % 7) as f32 - 3.0) / 8.0)
                        .collect(),
                    bias: vec![0.0; 512],
                }),
                inputs: vec![0],
                shape: vec![1, 512, 4, 4],
            });
        }
        let mut last = 1;
        for b in 1..branches {
            nodes.push(Node {
                name: format!("add{b}"),
                op: Op::Add,
                inputs: vec![last, b + 1],
                shape: vec![1, 512, 4, 4],
            });
            last = nodes.len() - 1;
        }
        Model {
            name: "downsamples".into(),
            input_name: "x".into(),
            nodes,
            output: last,
            metadata: vec![],
        }
    };
    let protocols = |branches: usize, linear: LinearPolicy, mbps: u64| {
        let mut cfg = PlanConfig {
            linear,
            ..PlanConfig::default()
        };
        cfg.cheetah.bandwidth_bytes_per_s = mbps * 1_000_000 / 8;
        let plan = privinfer_engine::Plan::compile(&model(branches), &cfg).unwrap();
        let mut names: Vec<&str> = plan
            .steps
            .iter()
            .filter_map(|s| match &s.kind {
                StepKind::Linear { choice, .. } => Some(choice.name()),
                _ => None,
            })
            .collect();
        names.dedup();
        names
    };
    assert_eq!(protocols(40, LinearPolicy::Auto, 400), ["hyena"]);
    assert_eq!(protocols(40, LinearPolicy::Auto, 50), ["cheetah"]);
    assert_eq!(protocols(1, LinearPolicy::Auto, 400), ["cheetah"]);
    assert_eq!(protocols(1, LinearPolicy::Cheetah, 400), ["cheetah"]);
    assert_eq!(protocols(1, LinearPolicy::Simd, 400), ["simd"]);
    assert_eq!(protocols(1, LinearPolicy::Hyena, 400), ["hyena"]);
}

/// A token × weight product on 5 rows with deterministic weights (phase `k`).
fn token_linear(i: usize, o: usize, k: f32) -> nn::Op {
    let w = |n: usize, k: f32| {
        (0..n)
            .map(|j| ((j as f32 * 0.61 + k).sin()) * 0.8)
            .collect::<Vec<f32>>()
    };
    nn::Op::Linear(nn::ir::Linear {
        in_features: i,
        out_features: o,
        rows: 5,
        weight: w(i * o, k),
        bias: w(o, k + 0.3),
    })
}

/// A transformer's token × weight products (a Linear node on 5 rows, as the ViT exports have):
/// two of them with a ReLU between, under Cheetah and under SIMD, equal the fixed-point
/// reference exactly.
#[test]
fn token_by_weight_products_match_the_fixed_point_reference() {
    use nn::{Model, Op};
    let model = Model {
        name: "tokens".into(),
        input_name: "x".into(),
        nodes: vec![
            node("x", Op::Input, vec![], vec![1, 5, 8]),
            node("fc1", token_linear(8, 6, 0.2), vec![0], vec![1, 5, 6]),
            node("relu", Op::Relu, vec![1], vec![1, 5, 6]),
            node("fc2", token_linear(6, 3, 0.7), vec![2], vec![1, 5, 3]),
        ],
        output: 3,
        metadata: vec![],
    };
    for linear in [LinearPolicy::Cheetah, LinearPolicy::Simd] {
        let cfg = PlanConfig {
            linear,
            ..PlanConfig::default()
        };
        let fixed = nn::FixedConfig::new(cfg.ell, cfg.scale).unwrap();
        let server = ServerModel::new(&model, &cfg).unwrap();
        let x: Vec<f32> = (0..40)
            .map(|i| ((i * 37) % 17) as f32 / 4.0 - 2.0)
            .collect();
        let xq: Vec<u64> = x.iter().map(|&v| fixed.encode(v)).collect();
        let reference = nn::fixed::run(&model, &x, fixed).unwrap();
        let Outcome::Logits(l) = private_logits(&server, xq, false, 13) else {
            panic!()
        };
        assert_eq!(l, reference.data, "{linear:?}");
    }
}

/// The private logits of `server` on a deterministic input of `n` values equal the fixed-point
/// reference that fuses what the plan fuses (node 2, a linear layer with its LayerNorm).
fn matches_fused_reference(model: &nn::Model, server: &ServerModel, n: usize, seed: u64) {
    let cfg = PlanConfig::default();
    let fixed = nn::FixedConfig::new(cfg.ell, cfg.scale).unwrap();
    let x: Vec<f32> = (0..n).map(|i| ((i * 37) % 17) as f32 / 4.0 - 2.0).collect();
    let xq: Vec<u64> = x.iter().map(|&v| fixed.encode(v)).collect();
    let fm = nn::fixed::FixedModel::with_fused(model, fixed, &server.plan.fused_pairs()).unwrap();
    assert_eq!(fm.fused(), [2]);
    assert_eq!(fm.run_trace(&xq).unwrap().total_overflows(), 0);
    let reference = fm.run(&x).unwrap();
    let Outcome::Logits(l) = private_logits(server, xq, false, seed) else {
        panic!()
    };
    assert_eq!(
        l,
        reference.data,
        "{:?}",
        server.plan.steps[2].kind.protocol()
    );
}

/// LayerNorm read by one linear layer runs fused with it, LayerNorm read twice (by a linear
/// layer and a residual add) alone; under Cheetah and under SIMD (whose fused layer runs on
/// Cheetah, the protocol that splits) the private logits equal the fixed-point reference.
#[test]
fn layernorms_fused_and_alone_match_the_fixed_point_reference() {
    use nn::ir::LayerNorm;
    use nn::{Model, Op};
    let ln = |d: usize| {
        Op::LayerNorm(LayerNorm {
            epsilon: 1e-5,
            gamma: vec![1.0; d],
            beta: vec![0.0; d],
        })
    };
    let model = Model {
        name: "norms".into(),
        input_name: "x".into(),
        nodes: vec![
            node("x", Op::Input, vec![], vec![1, 5, 8]),
            node("ln1", ln(8), vec![0], vec![1, 5, 8]),
            node("fc1", token_linear(8, 6, 0.2), vec![1], vec![1, 5, 6]),
            node("ln2", ln(6), vec![2], vec![1, 5, 6]),
            node("fc2", token_linear(6, 6, 0.7), vec![3], vec![1, 5, 6]),
            node("add", Op::Add, vec![3, 4], vec![1, 5, 6]),
        ],
        output: 5,
        metadata: vec![],
    };
    assert_eq!(model.norm_before(2), Some(1));
    assert_eq!(model.norm_before(4), None);
    for linear in [LinearPolicy::Cheetah, LinearPolicy::Simd] {
        let cfg = PlanConfig {
            linear,
            ..PlanConfig::default()
        };
        let server = ServerModel::new(&model, &cfg).unwrap();
        let kinds: Vec<&str> = server
            .plan
            .steps
            .iter()
            .map(|s| s.kind.protocol())
            .collect();
        assert_eq!(
            kinds[1..4],
            ["fused", "layernorm+cheetah", "layernorm"],
            "{linear:?}"
        );
        matches_fused_reference(&model, &server, 40, 17);
    }
}

/// An MLP whose first FC has block-circulant weights (b = 8, every 8×8 block circulant): the
/// planner finds b in the weights, `circulant` runs that layer (Cheetah the dense classifier) and
/// the private logits equal the fixed-point reference's.
#[test]
fn block_circulant_fc_found_in_the_weights_matches_the_reference() {
    use nn::ir::Linear;
    use nn::{Model, Op};
    use privinfer_engine::plan::StepKind;
    let (n, m, b) = (64usize, 32usize, 8usize);
    // W[ib + r][jb + c] = v[i][j][(c − r) mod b]: circulant blocks.
    let v = |i: usize, j: usize, d: usize| ((i * 31 + j * 17 + d * 7) as f32 * 0.37).sin() * 0.5;
    let mut w1 = vec![0f32; m * n];
    for row in 0..m {
        for col in 0..n {
            w1[row * n + col] = v(row / b, col / b, (col % b + b - row % b) % b);
        }
    }
    let lin = |inf: usize, outf: usize, weight: Vec<f32>, bias: Vec<f32>| {
        Op::Linear(Linear {
            in_features: inf,
            out_features: outf,
            rows: 1,
            weight,
            bias,
        })
    };
    let model = Model {
        name: "circulant-mlp".into(),
        input_name: "x".into(),
        nodes: vec![
            node("x", Op::Input, vec![], vec![1, n]),
            node(
                "fc1",
                lin(n, m, w1, (0..m).map(|i| (i as f32 * 0.3).cos()).collect()),
                vec![0],
                vec![1, m],
            ),
            node("relu", Op::Relu, vec![1], vec![1, m]),
            node(
                "fc2",
                lin(
                    m,
                    10,
                    (0..10 * m).map(|i| (i as f32 * 0.11).sin() * 0.4).collect(),
                    vec![0.1; 10],
                ),
                vec![2],
                vec![1, 10],
            ),
        ],
        output: 3,
        metadata: vec![],
    };
    for policy in [LinearPolicy::Circulant, LinearPolicy::Cheetah] {
        let cfg = PlanConfig {
            linear: policy,
            ..PlanConfig::default()
        };
        let fixed = nn::FixedConfig::new(cfg.ell, cfg.scale).unwrap();
        let server = ServerModel::new(&model, &cfg).unwrap();
        let names: Vec<&str> = server
            .plan
            .steps
            .iter()
            .filter_map(|s| match &s.kind {
                StepKind::Linear { choice, layer, .. } => {
                    if let linear::LayerShape::Fc(f) = layer.shape {
                        // b is found in fc1's weights (8 here: 16 would need 16×16 circulant blocks).
                        assert_eq!(f.block, if s.name == "fc1" { b } else { 1 }, "{}", s.name);
                    }
                    Some(choice.name())
                }
                _ => None,
            })
            .collect();
        let want = if policy == LinearPolicy::Circulant {
            vec!["circulant", "cheetah"]
        } else {
            vec!["cheetah", "cheetah"]
        };
        assert_eq!(names, want);
        let x: Vec<f32> = (0..n)
            .map(|i| ((i * 7919) % 1000) as f32 / 250.0 - 2.0)
            .collect();
        let xq: Vec<u64> = x.iter().map(|&v| fixed.encode(v)).collect();
        let reference = nn::fixed::run(&model, &x, fixed).unwrap();
        let Outcome::Logits(l) = private_logits(&server, xq, false, 21) else {
            panic!()
        };
        assert_eq!(l, reference.data, "{policy:?}");
    }
}

/// A transformer's block-circulant token × weight products (PrivCirNet's ViT layers): fc1
/// (16 → 16 on 5 tokens, b = 8, declared in `privinfer.circulant_blocks`) read from a LayerNorm
/// and run fused with it, then fc2 (16 → 8, b = 4, found in the weights). Under `circulant`
/// both run by the circulant protocol (the fused one splitting its query into the LayerNorm's
/// flight), under Cheetah densely; the private logits equal the fixed-point reference.
#[test]
fn block_circulant_token_products_fused_and_alone_match_the_reference() {
    use nn::ir::{LayerNorm, Linear};
    use nn::{Model, Op};
    use privinfer_engine::plan::StepKind;
    // W[ib + r][jb + c] = v(i, j, (c − r) mod b): circulant b×b blocks.
    let circulant = |o: usize, i: usize, b: usize, k: f32| {
        let v = |bi: usize, bj: usize, d: usize| {
            ((bi * 31 + bj * 17 + d * 7) as f32 * 0.37 + k).sin() * 0.5
        };
        let mut w = vec![0f32; o * i];
        for row in 0..o {
            for col in 0..i {
                w[row * i + col] = v(row / b, col / b, (col % b + b - row % b) % b);
            }
        }
        w
    };
    let lin = |i: usize, o: usize, weight: Vec<f32>| {
        Op::Linear(Linear {
            in_features: i,
            out_features: o,
            rows: 5,
            weight,
            bias: (0..o).map(|j| (j as f32 * 0.3).cos() * 0.2).collect(),
        })
    };
    let ln = Op::LayerNorm(LayerNorm {
        epsilon: 1e-5,
        gamma: vec![1.0; 16],
        beta: vec![0.0; 16],
    });
    let model = Model {
        name: "circulant-tokens".into(),
        input_name: "x".into(),
        nodes: vec![
            node("x", Op::Input, vec![], vec![1, 5, 16]),
            node("ln1", ln, vec![0], vec![1, 5, 16]),
            node(
                "fc1",
                lin(16, 16, circulant(16, 16, 8, 0.0)),
                vec![1],
                vec![1, 5, 16],
            ),
            node("relu", Op::Relu, vec![2], vec![1, 5, 16]),
            node(
                "fc2",
                lin(16, 8, circulant(8, 16, 4, 0.9)),
                vec![3],
                vec![1, 5, 8],
            ),
        ],
        output: 4,
        metadata: vec![(nn::ir::CIRCULANT_BLOCKS_KEY.into(), r#"{"fc1": 8}"#.into())],
    };
    assert_eq!(model.norm_before(2), Some(1));
    for policy in [
        LinearPolicy::Circulant,
        LinearPolicy::Cheetah,
        LinearPolicy::Auto,
    ] {
        let cfg = PlanConfig {
            linear: policy,
            ..PlanConfig::default()
        };
        let server = ServerModel::new(&model, &cfg).unwrap();
        let mut blocks = Vec::new();
        for s in &server.plan.steps {
            if let StepKind::Linear { layer, .. } = &s.kind {
                let linear::LayerShape::MatMul(m) = layer.shape else {
                    panic!("{}: a token × weight product", s.name)
                };
                blocks.push(m.block);
            }
        }
        assert_eq!(blocks, [8, 4], "{policy:?}");
        let kinds: Vec<&str> = server
            .plan
            .steps
            .iter()
            .map(|s| s.kind.protocol())
            .collect();
        match policy {
            LinearPolicy::Circulant => {
                assert_eq!(
                    kinds[1..],
                    ["fused", "layernorm+circulant", "relu", "circulant"]
                )
            }
            LinearPolicy::Cheetah => {
                assert_eq!(
                    kinds[1..],
                    ["fused", "layernorm+cheetah", "relu", "cheetah"]
                )
            }
            _ => {}
        }
        matches_fused_reference(&model, &server, 80, 23);
    }
}

/// A residual stack (conv → ReLU → conv → + x → ReLU → strided conv → ReLU → global average →
/// FC) under the all-OT plans: `ot` on every layer, and `winograd` (Winograd F(2,3) on the
/// 3×3 stride-1 convs at ℓ = 37, F(4,3) at ℓ = 44, `ot` elsewhere), its 2^e carried through
/// the deferred residual sum into the fused truncation. The private logits equal the
/// fixed-point reference's exactly, and the plan's COT prediction is what the run used.
#[test]
fn ot_and_winograd_plans_match_the_fixed_point_reference() {
    use nn::ir::{Conv2d, Linear};
    use nn::{Model, Op};
    use privinfer_engine::plan::StepKind;
    let conv = |cin: usize, cout: usize, stride: usize, hw: usize, seed: f32| {
        Op::Conv(Conv2d {
            in_shape: [cin, hw, hw],
            out_shape: [cout, hw / stride, hw / stride],
            kernel: [3, 3],
            stride: [stride, stride],
            pads: [1; 4],
            groups: 1,
            weight: wave(cout * cin * 9, seed, 0.4),
            bias: wave(cout, seed + 0.5, 0.5),
        })
    };
    let model = Model {
        name: "mini-resnet".into(),
        input_name: "x".into(),
        nodes: vec![
            node("x", Op::Input, vec![], vec![1, 3, 8, 8]),
            node("c1", conv(3, 6, 1, 8, 0.1), vec![0], vec![1, 6, 8, 8]),
            node("r1", Op::Relu, vec![1], vec![1, 6, 8, 8]),
            node("c2", conv(6, 6, 1, 8, 0.3), vec![2], vec![1, 6, 8, 8]),
            node("add", Op::Add, vec![3, 2], vec![1, 6, 8, 8]),
            node("r2", Op::Relu, vec![4], vec![1, 6, 8, 8]),
            node("c3", conv(6, 5, 2, 8, 0.7), vec![5], vec![1, 5, 4, 4]),
            node("r3", Op::Relu, vec![6], vec![1, 5, 4, 4]),
            node("gap", Op::GlobalAvgPool, vec![7], vec![1, 5, 1, 1]),
            node("flat", Op::Reshape, vec![8], vec![1, 5]),
            node(
                "fc",
                Op::Linear(Linear {
                    in_features: 5,
                    out_features: 3,
                    rows: 1,
                    weight: wave(15, 0.3, 0.5),
                    bias: wave(3, 0.9, 0.5),
                }),
                vec![9],
                vec![1, 3],
            ),
        ],
        output: 10,
        metadata: vec![],
    };
    let x: Vec<f32> = (0..3 * 64)
        .map(|i| ((i * 7919) % 1000) as f32 / 250.0 - 2.0)
        .collect();
    for (linear, ell, want) in [
        (LinearPolicy::Ot, 37, ["ot", "ot", "ot", "ot"]),
        (
            LinearPolicy::Winograd,
            37,
            ["winograd2", "winograd2", "ot", "ot"],
        ),
        (
            LinearPolicy::Winograd,
            44,
            ["winograd4", "winograd4", "ot", "ot"],
        ),
    ] {
        let cfg = PlanConfig {
            linear,
            ell,
            ..PlanConfig::default()
        };
        let fixed = nn::FixedConfig::new(cfg.ell, cfg.scale).unwrap();
        let server = ServerModel::new(&model, &cfg).unwrap();
        let names: Vec<&str> = server
            .plan
            .steps
            .iter()
            .filter_map(|s| match &s.kind {
                StepKind::Linear { choice, .. } => Some(choice.name()),
                _ => None,
            })
            .collect();
        assert_eq!(names, want, "{linear:?} at ell {ell}");
        assert!(server
            .plan
            .steps
            .iter()
            .any(|s| s.kind == StepKind::AddAligned));
        let xq: Vec<u64> = x.iter().map(|&v| fixed.encode(v)).collect();
        let trace = nn::fixed::run_trace(&model, &xq, fixed).unwrap();
        assert_eq!(trace.total_overflows(), 0);
        let reference = nn::fixed::run(&model, &x, fixed).unwrap();
        let Outcome::Logits(l) = private_logits(&server, xq, false, 21) else {
            panic!()
        };
        assert_eq!(l, reference.data, "{linear:?} at ell {ell}");
    }
}

/// Two block-circulant convolutions: conv1 (8 → 16, 3×3, b = 4) carries no metadata and is found
/// in its weights; conv2 (16 → 16, 3×3, stride 2, b = 8) is declared in the model's
/// `privinfer.circulant_blocks` metadata, as the python toolkit writes it. Under `circulant`,
/// `cirencode` and the planner's own choice the private output equals the fixed-point reference; a
/// declaration the weights do not satisfy, or a malformed one, is refused with its reason.
#[test]
fn block_circulant_convs_match_the_reference_with_and_without_metadata() {
    use nn::ir::Conv2d;
    use nn::{Model, Op};
    use privinfer_engine::plan::StepKind;
    // W[ib + r][jb + c][k] = v(i, j, (c − r) mod b, k): circulant blocks for every tap.
    let circulant = |o: usize, c: usize, b: usize, seed: f32| {
        let mut w = vec![0f32; o * c * 9];
        for row in 0..o {
            for col in 0..c {
                for k in 0..9 {
                    let d = (col % b + b - row % b) % b;
                    let z = ((row / b) * 131 + (col / b) * 37 + d * 11 + k * 3) as f32;
                    w[(row * c + col) * 9 + k] = (z * 0.173 + seed).sin() * 0.3;
                }
            }
        }
        w
    };
    let conv = |c: usize, h: usize, o: usize, stride: usize, weight: Vec<f32>| {
        Op::Conv(Conv2d {
            in_shape: [c, h, h],
            out_shape: [o, (h + 2 - 3) / stride + 1, (h + 2 - 3) / stride + 1],
            kernel: [3, 3],
            stride: [stride, stride],
            pads: [1; 4],
            groups: 1,
            weight,
            bias: (0..o).map(|i| (i as f32 * 0.7).cos() * 0.2).collect(),
        })
    };
    let model = |meta: Option<&str>| Model {
        name: "circulant-convs".into(),
        input_name: "x".into(),
        nodes: vec![
            node("x", Op::Input, vec![], vec![1, 8, 8, 8]),
            node(
                "conv1",
                conv(8, 8, 16, 1, circulant(16, 8, 4, 0.1)),
                vec![0],
                vec![1, 16, 8, 8],
            ),
            node("relu", Op::Relu, vec![1], vec![1, 16, 8, 8]),
            node(
                "conv2",
                conv(16, 8, 16, 2, circulant(16, 16, 8, 0.9)),
                vec![2],
                vec![1, 16, 4, 4],
            ),
        ],
        output: 3,
        metadata: meta
            .map(|m| vec![(nn::CIRCULANT_BLOCKS_KEY.to_string(), m.to_string())])
            .unwrap_or_default(),
    };
    let declared = model(Some(r#"{"conv2": 8}"#));
    assert_eq!(declared.circulant_blocks().unwrap().get("conv2"), Some(&8));
    for policy in [
        LinearPolicy::Circulant,
        LinearPolicy::CirEncode,
        LinearPolicy::Auto,
    ] {
        let cfg = PlanConfig {
            linear: policy,
            ..PlanConfig::default()
        };
        let fixed = nn::FixedConfig::new(cfg.ell, cfg.scale).unwrap();
        let server = ServerModel::new(&declared, &cfg).unwrap();
        let blocks: Vec<(usize, &str)> = server
            .plan
            .steps
            .iter()
            .filter_map(|s| match &s.kind {
                StepKind::Linear { choice, layer, .. } => match layer.shape {
                    linear::LayerShape::Conv2d(c) => Some((c.block, choice.name())),
                    _ => None,
                },
                _ => None,
            })
            .collect();
        assert_eq!(blocks.iter().map(|b| b.0).collect::<Vec<_>>(), [4, 8]);
        match policy {
            LinearPolicy::Circulant => assert!(blocks.iter().all(|b| b.1 == "circulant")),
            LinearPolicy::CirEncode => assert!(blocks.iter().all(|b| b.1 == "cirencode")),
            _ => {}
        }
        let x: Vec<f32> = (0..512)
            .map(|i| ((i * 7919) % 1000) as f32 / 250.0 - 2.0)
            .collect();
        let xq: Vec<u64> = x.iter().map(|&v| fixed.encode(v)).collect();
        let reference = nn::fixed::run(&declared, &x, fixed).unwrap();
        let Outcome::Logits(l) = private_logits(&server, xq, false, 23) else {
            panic!()
        };
        assert_eq!(l, reference.data, "{policy:?}");
    }
    // conv2's weights are 8-circulant, not 16-circulant: refused with the layer named.
    let cfg = PlanConfig::default();
    let err = ServerModel::new(&model(Some(r#"{"conv2": 16}"#)), &cfg)
        .err()
        .expect("a wrong declaration is refused")
        .to_string();
    assert!(
        err.contains("conv2") && err.contains("not block-circulant"),
        "{err}"
    );
    for bad in [
        r#"{"conv9": 4}"#,
        r#"{"conv1": 3}"#,
        r#"{"relu": 2}"#,
        "[4]",
        "{",
    ] {
        let err = model(Some(bad))
            .circulant_blocks()
            .expect_err(bad)
            .to_string();
        assert!(
            err.starts_with("metadata privinfer.circulant_blocks"),
            "{err}"
        );
    }
}

/// The tiny ViT fixture (patch embedding, class token, position embedding, pre-norm attention
/// with two heads, GELU MLP, class-token head): privately, with LayerNorm, softmax and GELU on
/// shares and the attention products as two ciphertext × plaintext cross terms, the logits
/// equal the fixed-point reference's.
/// `tiny_te_vit` is a ViT written with torch.nn.TransformerEncoderLayer (norm-first, GELU) and
/// exported with opset 17 by the toolkit.
#[test]
fn tiny_vit_matches_the_fixed_point_reference() {
    for name in ["tiny_vit", "tiny_te_vit"] {
        vit_matches(name);
    }
}

/// The shipped `models/vit_cifar10_circulant.onnx` (PrivCirNet's ViT, b = 4 in q/k/v, proj,
/// fc1 and fc2 of its four blocks, no metadata): the default plan finds b in the weights and
/// runs all 16 products by `circulant`, the 8 after a LayerNorm fused with it; the private
/// logits equal the fixed-point reference of that plan.
#[test]
fn shipped_circulant_vit_matches_the_fixed_point_reference() {
    use privinfer_engine::plan::StepKind;
    let model = nn::load(repo().join("models/vit_cifar10_circulant.onnx")).unwrap();
    let cfg = PlanConfig::default();
    let fixed = nn::FixedConfig::new(cfg.ell, cfg.scale).unwrap();
    let server = ServerModel::new(&model, &cfg).unwrap();
    let mut kinds = std::collections::BTreeMap::new();
    for s in &server.plan.steps {
        if let StepKind::Linear { layer, .. } = &s.kind {
            if let linear::LayerShape::MatMul(m) = layer.shape {
                *kinds.entry((s.kind.protocol(), m.block)).or_insert(0) += 1;
            }
        }
    }
    assert_eq!(
        kinds.get(&("layernorm+circulant", 4)),
        Some(&8),
        "{kinds:?}"
    );
    assert_eq!(kinds.get(&("circulant", 4)), Some(&8), "{kinds:?}");
    let x: Vec<f32> = (0..3 * 32 * 32)
        .map(|i| ((i * 7919) % 1000) as f32 / 250.0 - 2.0)
        .collect();
    let xq: Vec<u64> = x.iter().map(|&v| fixed.encode(v)).collect();
    let fm = nn::fixed::FixedModel::with_fused(&model, fixed, &server.plan.fused_pairs()).unwrap();
    let reference = fm.run(&x).unwrap();
    let Outcome::Logits(l) = private_logits(&server, xq, false, 31) else {
        panic!()
    };
    assert_eq!(l, reference.data);
}

fn vit_matches(name: &str) {
    use privinfer_engine::plan::StepKind;
    let model = nn::load(repo().join(format!("models/tiny/{name}.onnx"))).unwrap();
    // The shared attention products under both protocols that run them (the default plan
    // picks one of them by estimated time); the rescales in their flat form (the default link)
    // and as trees (no round trip to save: `rtt_us` 0).
    for (seed, policy, shared, rtt_us) in [
        (0u64, LinearPolicy::Cheetah, "cheetah_shared", 40_000),
        (1, LinearPolicy::Falcon, "falcon_shared", 40_000),
        (2, LinearPolicy::Falcon, "falcon_shared", 0),
    ] {
        let cfg = PlanConfig {
            linear: policy,
            rtt_us,
            ..PlanConfig::default()
        };
        let fixed = nn::FixedConfig::new(cfg.ell, cfg.scale).unwrap();
        let server = ServerModel::new(&model, &cfg).unwrap();
        // Every rescale of these small shapes is flat on the default link, none without delay.
        let flat = server.plan.flat_rescale_max;
        assert_eq!(
            flat > 10_000,
            rtt_us > 0,
            "flat_rescale_max {flat} at {rtt_us} µs"
        );
        let kinds: Vec<&str> = server
            .plan
            .steps
            .iter()
            .map(|s| s.kind.protocol())
            .collect();
        // Every LayerNorm here is read by one linear layer and every softmax by its product by
        // V: with a round trip to save all run fused; without, only the head's LayerNorm (fewer
        // outputs than inputs: fewer bits).
        let fused_softmax = format!("softmax+{shared}");
        // GELU in its Signed form where four hops are worth its bits (these small calls, with
        // a round trip), else its Abs form.
        let gelu = if rtt_us > 0 { "gelu_signed" } else { "gelu" };
        for p in [gelu, "layernorm+cheetah", shared] {
            assert!(kinds.contains(&p), "{p} missing from {kinds:?}");
        }
        assert_eq!(kinds.contains(&"layernorm"), rtt_us == 0, "{kinds:?}");
        assert_eq!(kinds.contains(&"softmax"), rtt_us == 0, "{kinds:?}");
        assert_eq!(
            kinds.contains(&fused_softmax.as_str()),
            rtt_us > 0,
            "{kinds:?}"
        );
        assert!(server
            .plan
            .steps
            .iter()
            .any(|s| matches!(s.kind, StepKind::Constant)));
        let x: Vec<f32> = (0..3 * 8 * 8)
            .map(|i| ((i as u64 * 37 + seed * 11) % 23) as f32 / 6.0 - 1.9)
            .collect();
        let xq: Vec<u64> = x.iter().map(|&v| fixed.encode(v)).collect();
        // The reference fuses the pairs the plan fuses.
        let fused = server.plan.fused_pairs();
        assert_eq!(
            fused,
            privinfer_engine::plan::fused_pairs(&model, &cfg).unwrap()
        );
        let reference = nn::fixed::run_fused(&model, &x, fixed, &fused).unwrap();
        let Outcome::Logits(l) = private_logits(&server, xq, false, 21 + seed) else {
            panic!()
        };
        assert_eq!(l, reference.data, "{name} {shared}");
    }
}
