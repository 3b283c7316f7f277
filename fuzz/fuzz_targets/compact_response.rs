//! The headerless readers `privinfer-linear` takes from `rlwe`: the compact response codec
//! (`rlwe::compact::read_compact_responses`, then decryption of what it accepts) and the raw
//! public key (`serialize::public_key_from_raw`).
//!
//! Input: `[selector][k][b][responses][degree][payload…]`. An even selector feeds the payload to
//! `public_key_from_raw`; an odd one to `read_compact_responses` with widths `k`, `b` (any byte:
//! out-of-range widths must be refused), `responses % 4` responses, response `r` keeping every
//! `(r + 1)`-th coefficient, and degree 16, 64 or 48 (`degree % 3`; 48 is not a power of two and
//! must be refused); accepted responses are decrypted with a fixed key (t = 2^10, so `k ≤ 10` and
//! `b < 10` are refused there).
#![no_main]
use libfuzzer_sys::fuzz_target;
use rand_chacha::rand_core::SeedableRng;
use rlwe::compact::read_compact_responses;
use rlwe::{presets, serialize, Params, SecretKey};
use std::sync::{Arc, OnceLock};

fn setup() -> &'static (Arc<Params>, SecretKey) {
    static S: OnceLock<(Arc<Params>, SecretKey)> = OnceLock::new();
    S.get_or_init(|| {
        let p = Params::new(presets::insecure_test_only(4, 1 << 10).unwrap()).unwrap();
        let sk = SecretKey::generate(&p, &mut rand_chacha::ChaCha20Rng::seed_from_u64(1));
        (p, sk)
    })
}

fuzz_target!(|data: &[u8]| {
    let (p, sk) = setup();
    if data.len() < 5 {
        return;
    }
    let payload = &data[5..];
    if data[0] % 2 == 0 {
        let _ = serialize::public_key_from_raw(p, payload);
        return;
    }
    let (k, b) = (data[1] as u32, data[2] as u32);
    let n = [16usize, 64, 48][data[4] as usize % 3];
    let indices: Vec<Vec<usize>> = (0..data[3] as usize % 4)
        .map(|r| (0..n).step_by(r + 1).collect())
        .collect();
    if let Ok(resps) = read_compact_responses(payload, n, k, b, &indices) {
        for r in &resps {
            let _ = r.decrypt_with_noise(sk);
        }
    }
});
