//! Writes one valid serialized object of every CKKS kind for the fuzz target's parameters
//! (`presets::insecure_fuzz_n6`) as seed inputs, so that libFuzzer starts past the header checks:
//! `cargo run -p privinfer-ckks --example fuzz_seeds -- fuzz/seeds` (deterministic, seed 1).
use ckks::*;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use std::path::Path;

fn main() {
    let out = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "fuzz/seeds".into());
    let dir = Path::new(&out).join("ckks");
    std::fs::create_dir_all(&dir).expect("create seed folder");
    let write = |name: &str, bytes: &[u8]| std::fs::write(dir.join(name), bytes).expect("write");
    let params = Params::new(presets::insecure_fuzz_n6()).expect("params");
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let sk = SecretKey::generate(&params, &mut rng);
    let kg = KeyGenerator::new(&params, &sk).expect("keygen");
    let keys = kg
        .evaluation_keys(
            &[params.galois_element(1), params.conjugation_element()],
            &mut rng,
        )
        .expect("keys");
    let enc = Encryptor::with_secret_key(&params, &sk).expect("encryptor");
    let x = vec![Complex::new(0.5, -0.25); params.max_slots()];
    let ct = enc
        .encrypt_values(&x, params.max_slots(), &mut rng)
        .expect("encrypt");
    write("ciphertext", &serialize::ciphertext_to_bytes(&params, &ct));
    let pt = params
        .encode(
            &x,
            params.max_slots(),
            params.max_level(),
            params.default_scale(),
        )
        .expect("encode");
    let seeded = enc.encrypt_seeded(&pt, &mut rng).expect("encrypt");
    write(
        "ciphertext_seeded",
        &serialize::seeded_ciphertext_to_bytes(&params, &seeded),
    );
    let ev = Evaluator::new(&params, keys).expect("evaluator");
    let low = ev.drop_to_level(&ct, 0).expect("drop");
    write(
        "ciphertext_level0",
        &serialize::ciphertext_to_bytes(&params, &low),
    );
    write(
        "evaluation_keys",
        &serialize::evaluation_keys_to_bytes(&params, ev.keys()),
    );
    let ek = EncapsulationKeys::generate(&params, &sk, 8, &mut rng).expect("encapsulation");
    write(
        "encapsulation_keys",
        &serialize::encapsulation_keys_to_bytes(&params, &ek),
    );
    let g = kg
        .galois_key(params.galois_element(2), &mut rng)
        .expect("galois key");
    write(
        "switching_key",
        &serialize::switching_key_to_bytes(&params, &g),
    );
}
