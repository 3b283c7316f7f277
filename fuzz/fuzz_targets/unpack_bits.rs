//! Bit-unpacking with arbitrary widths and counts.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let bits = data[0] as u32;
    let count = u16::from_le_bytes([data[1], data[2]]) as usize;
    if let Ok(v) = math::pack::unpack_bits(&data[3..], bits, count) {
        let mut out = Vec::new();
        math::pack::pack_bits(&v, bits, &mut out);
        assert_eq!(out, &data[3..], "canonical encoding must round-trip");
    }
});
