//! Private inference end to end against the fixed-point reference executor.

use std::path::PathBuf;
use std::thread;

use privinfer_engine::{run_client, run_server, Outcome, PlanConfig, ServerModel};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use transport::MemoryChannel;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
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
