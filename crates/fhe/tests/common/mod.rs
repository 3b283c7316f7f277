//! Fixtures shared by the FHE-mode tests: the tiny models of `models/tiny/` with their seeded
//! inputs and onnxruntime outputs (`tiny_expected.json`).
#![allow(dead_code)]

/// One seeded input and onnxruntime's output for it.
pub type Case = (Vec<f32>, Vec<f64>);

/// The model `models/tiny/{name}.onnx` and its cases.
pub fn tiny(name: &str) -> (nn::Model, Vec<Case>) {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../models/tiny/");
    let m = nn::load(format!("{dir}{name}.onnx")).unwrap();
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{dir}tiny_expected.json")).unwrap())
            .unwrap();
    let nums = |v: &serde_json::Value| -> Vec<f64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect()
    };
    let cases = j["models"][name]["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                nums(&c["input"]).into_iter().map(|v| v as f32).collect(),
                nums(&c["float"]),
            )
        })
        .collect();
    (m, cases)
}

/// Largest |value| of any node of the float executor on `x`.
pub fn max_abs_trace(m: &nn::Model, x: &[f32]) -> f64 {
    nn::float::run_trace(m, x)
        .unwrap()
        .iter()
        .flatten()
        .fold(0f64, |a, &v| a.max((v as f64).abs()))
}

/// Largest |a_i − b_i|.
pub fn max_err(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).fold(0f64, |m, (p, q)| m.max((p - q).abs()))
}

/// One encrypted inference of `x` under `dep` with fresh keys from `seed`: the decrypted output
/// and the run's report.
pub fn run_encrypted(
    dep: &fhe::Deployment,
    x: &[f32],
    seed: u64,
) -> (Vec<f64>, fhe::Run<ckks::Ciphertext>) {
    use rand::SeedableRng;
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
    let keys = dep.keygen(&mut rng).unwrap();
    let input = dep.encrypt(&keys.sk, x, &mut rng).unwrap();
    let eval = ckks::Evaluator::new(&dep.params, keys.eval).unwrap();
    let zero = keys.zero.ciphertext().clone();
    let run = dep
        .evaluate(&eval, keys.encaps.as_ref(), &zero, input, &mut rng)
        .unwrap();
    (dep.decrypt(&keys.sk, &run.output).unwrap(), run)
}
