//! Public, Galois and relinearization keys from untrusted bytes.
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
    let _ = serialize::public_key_from_bytes(p, data);
    let _ = serialize::galois_keys_from_bytes(p, data);
    let _ = serialize::relin_key_from_bytes(p, data);
});
