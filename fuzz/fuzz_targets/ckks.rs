//! CKKS ciphertexts (full and seeded), switching keys, evaluation keys and bootstrapping encapsulation keys from
//! untrusted bytes: any input must give Ok or a typed error, never a panic.
#![no_main]
use ckks::{presets, serialize, Params};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn params() -> &'static Params {
    static P: OnceLock<Params> = OnceLock::new();
    P.get_or_init(|| Params::new(presets::insecure_fuzz_n6()).unwrap())
}

fuzz_target!(|data: &[u8]| {
    let p = params();
    let _ = serialize::ciphertext_from_bytes(p, data);
    let _ = serialize::ciphertext_from_seeded_bytes(p, data);
    let _ = serialize::switching_key_from_bytes(p, data);
    let _ = serialize::evaluation_keys_from_bytes(p, data);
    let _ = serialize::encapsulation_keys_from_bytes(p, data);
});
