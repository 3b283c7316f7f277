//! FHE mode's parsers of the other party's bytes: the server hello (client side) and the
//! message prefixes: any input must give Ok or a typed error, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = fhe::party::parse_hello(data) {
        // A valid offer can be packed without panicking.
        let n = h.offer.slots;
        let [c, hh, ww] = h.offer.input_shape;
        let _ = h.offer.input.pack(&vec![0.0; c * hh * ww], n);
    }
});
