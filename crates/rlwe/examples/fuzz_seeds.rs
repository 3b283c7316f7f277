//! Writes valid serialized objects for the fuzz targets' parameters
//! (`presets::insecure_test_only(4, 17)`) as seed inputs, so that libFuzzer
//! starts past the header checks, and real dropped-low-bits query bodies for `dropped_query`
//! (its input layout in `fuzz/fuzz_targets/dropped_query.rs`):
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

    // dropped_query: [set][level − 1][drop][support][payload]; set indices as in the target.
    let sets = [
        presets::cheetah_n4096_q55_54_t2l(37),
        presets::cheetah_n8192_q165_t2l(37),
        presets::cheetah_n8192_q218_t2l(37),
        presets::bfv_n8192_q120_p60_t2l(37),
        presets::bfv_n8192_q180_t2l(37),
    ];
    for (set, level, drop, step) in [
        (0u8, 1u8, 0u8, 0u8),
        (0, 2, 13, 7),
        (3, 2, 12, 1),
        (4, 3, 61, 5),
        (2, 4, 100, 9),
    ] {
        let q = Params::new(sets[set as usize].clone().expect("literal")).expect("params");
        let ctx = q.ctx_q();
        let codec = DroppedCodec::new(ctx, level as usize, drop as u32).expect("codec");
        let c0 =
            math::sample::uniform_poly(ctx, level as usize, Representation::Coefficient, &mut r);
        let support: Option<Vec<usize>> =
            (step > 0).then(|| (0..ctx.n()).step_by(step as usize).collect());
        let mut msg = vec![set, level - 1, drop, step];
        codec
            .encode(&c0, support.as_deref(), &mut msg)
            .expect("encode");
        let name = format!("set{set}_l{level}_drop{drop}_step{step}");
        write(dir, "dropped_query", &name, &msg);
    }
    // An explicit support of three indices (support byte 6: 3 big-endian u16 follow).
    let q = Params::new(sets[0].clone().expect("literal")).expect("params");
    let codec = DroppedCodec::new(q.ctx_q(), 2, 4).expect("codec");
    let c0 = math::sample::uniform_poly(q.ctx_q(), 2, Representation::Coefficient, &mut r);
    let mut msg = vec![0u8, 1, 4, 6, 0, 1, 0, 5, 15, 255];
    codec
        .encode(&c0, Some(&[1, 5, 4095]), &mut msg)
        .expect("encode");
    write(dir, "dropped_query", "set0_l2_drop4_explicit3", &msg);
    println!("seeds written under {}", dir.display());
}
