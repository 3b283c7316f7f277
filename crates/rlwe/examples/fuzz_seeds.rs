//! Writes valid serialized objects for the fuzz targets' parameters
//! (`presets::insecure_test_only(4, 17)`) as seed inputs, so that libFuzzer
//! starts past the header checks:
//! `cargo run -p privinfer-rlwe --example fuzz_seeds -- fuzz/seeds`.
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use rlwe::serialize::{self, Form};
use rlwe::*;
use std::path::Path;

fn write(dir: &Path, target: &str, name: &str, bytes: &[u8]) {
    let d = dir.join(target);
    std::fs::create_dir_all(&d).expect("create seed folder");
    std::fs::write(d.join(name), bytes).expect("write seed");
}

fn main() {
    let out = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "fuzz/seeds".into());
    let dir = Path::new(&out);
    let p = Params::new(presets::insecure_test_only(4, 17).expect("literal")).expect("params");
    let mut r = ChaCha20Rng::seed_from_u64(1);
    let sk = SecretKey::generate(&p, &mut r);
    let pk = PublicKey::generate(&sk, &mut r).expect("pk");
    let ev = Evaluator::new(&p);
    let m = Plaintext::from_unsigned(
        &p,
        &(0..p.n()).map(|_| r.gen_range(0..17)).collect::<Vec<_>>(),
    )
    .expect("pt");
    let ct = sk.encrypt(&m, &mut r).expect("encrypt");
    let sel = [0usize, 3, 15];
    let ct_pk = pk.encrypt(&m, &mut r).expect("encrypt");
    let mut low = ct_pk.clone();
    ev.mod_switch_to_next(&mut low).expect("mod switch");
    let c = "ciphertext";
    let full = serialize::ciphertext_to_bytes(&ct, Form::Full).expect("full");
    write(dir, c, "ct_full", &full);
    let seeded = serialize::ciphertext_to_bytes(&ct, Form::Seeded).expect("seeded");
    write(dir, c, "ct_seeded", &seeded);
    let low = serialize::ciphertext_to_bytes(&low, Form::Full).expect("low level");
    write(dir, c, "ct_level2", &low);
    let s = serialize::ciphertext_to_bytes_selected(&ct_pk, &sel).expect("selected");
    write(dir, c, "ct_selected", &s);
    write(dir, c, "plaintext", &serialize::plaintext_to_bytes(&m));
    let lwe = LweCiphertext::extract(&ct_pk, 3).expect("extract");
    write(dir, c, "lwe", &serialize::lwe_to_bytes(&lwe));
    let small = ev
        .switch_to_small_modulus(&ct_pk, 1 << 20, &sel)
        .expect("small modulus");
    write(dir, c, "small_mod", &small.to_bytes());

    let k = "keys";
    write(dir, k, "public_key", &serialize::public_key_to_bytes(&pk));
    let gk = GaloisKeys::generate(&sk, &[3, 31], &mut r).expect("galois keys");
    write(dir, k, "galois_keys", &serialize::galois_keys_to_bytes(&gk));
    let rk = RelinKey::generate(&sk, &mut r).expect("relin key");
    write(dir, k, "relin_key", &serialize::relin_key_to_bytes(&rk));
    println!("seeds written under {}", dir.display());
}
