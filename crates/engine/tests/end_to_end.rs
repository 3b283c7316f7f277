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
        let (out, _report) =
            run_client(&plan, label, input, &mut cc, &mut rng, &mut |_, _| {}).unwrap();
        h.join().unwrap();
        out
    })
}

#[test]
fn resnet20_matches_the_fixed_point_reference() {
    let model = nn::load(repo().join("models/resnet20.onnx")).unwrap();
    let cfg = PlanConfig::default();
    let fixed = nn::FixedConfig::new(cfg.ell, cfg.scale).unwrap();
    let server = ServerModel::new(&model, &cfg).unwrap();
    let img = repo().join("models/samples/cifar10_00_3.png");
    let x = nn::data::load_image(&img, 32, 32).unwrap();
    let xq: Vec<u64> = x.iter().map(|&v| fixed.encode(v)).collect();
    let reference = nn::fixed::run(&model, &x, fixed).unwrap();
    match private_logits(&server, xq, false, 7) {
        Outcome::Logits(l) => assert_eq!(l, reference.data),
        o => panic!("unexpected {o:?}"),
    }
}
