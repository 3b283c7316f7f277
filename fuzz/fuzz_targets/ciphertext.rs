//! Ciphertexts (full, seeded, selected), plaintexts and LWE ciphertexts from
//! untrusted bytes: any input must give Ok or a typed error, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rlwe::{presets, serialize, Params};
use std::sync::{Arc, OnceLock};

fn params() -> &'static Arc<Params> {
    static P: OnceLock<Arc<Params>> = OnceLock::new();
    P.get_or_init(|| Params::new(presets::insecure_test_only(4, 17).unwrap()).unwrap())
}

fuzz_target!(|data: &[u8]| {
    let p = params();
    let _ = serialize::ciphertext_from_bytes(p, data);
    let _ = serialize::selected_from_bytes(p, data, &[0, 3, 15]);
    let _ = serialize::plaintext_from_bytes(p, data);
    let _ = serialize::lwe_from_bytes(p, data);
    let _ = rlwe::SmallModCiphertext::from_bytes(p, data, 1 << 20, &[0, 3, 15]);
});
