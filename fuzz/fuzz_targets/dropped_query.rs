//! `rlwe::dropped::DroppedCodec::decode`, the headerless reader of a seeded query's c₀ with low
//! bits dropped (the server's parser of the client's query in `privinfer-linear`).
//!
//! Input: `[set][level][drop][support][payload…]`. `set % 5` picks one of the presets linear
//! uses, `level` the number of primes (1..=L), `drop` the dropped bits (any byte: more than the
//! level allows must be refused at construction), `support`: 0 → all N coefficients, odd →
//! every `support`-th, otherwise a support read from the first 2·(support/2 % 16) payload bytes
//! as big-endian u16 (unsorted, repeated or out-of-range indices must be refused). Accepted
//! bytes are re-encoded and must come back identical.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rlwe::{presets, DroppedCodec, Params};
use std::sync::{Arc, OnceLock};

fn sets() -> &'static Vec<Arc<Params>> {
    static S: OnceLock<Vec<Arc<Params>>> = OnceLock::new();
    S.get_or_init(|| {
        [
            presets::cheetah_n4096_q55_54_t2l(37),
            presets::cheetah_n8192_q165_t2l(37),
            presets::cheetah_n8192_q218_t2l(37),
            presets::bfv_n8192_q120_p60_t2l(37),
            presets::bfv_n8192_q180_t2l(37),
        ]
        .into_iter()
        .map(|l| Params::new(l.unwrap()).unwrap())
        .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let p = &sets()[data[0] as usize % 5];
    let ctx = p.ctx_q();
    let level = 1 + data[1] as usize % ctx.len();
    let Ok(codec) = DroppedCodec::new(ctx, level, data[2] as u32) else {
        return;
    };
    let mut payload = &data[4..];
    let support: Option<Vec<usize>> = match data[3] {
        0 => None,
        s if s % 2 == 1 => Some((0..ctx.n()).step_by(s as usize).collect()),
        s => {
            let k = (s as usize / 2) % 16;
            if payload.len() < 2 * k {
                return;
            }
            let idx = payload[..2 * k]
                .chunks(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]) as usize)
                .collect();
            payload = &payload[2 * k..];
            Some(idx)
        }
    };
    if let Ok(c0) = codec.decode(payload, support.as_deref()) {
        // Re-encoding an accepted message has its length; with nothing dropped (digits = the
        // residues) it is the same bytes.
        let mut again = Vec::new();
        codec
            .encode(&c0, support.as_deref(), &mut again)
            .expect("decoded polynomial re-encodes");
        assert_eq!(again.len(), payload.len());
        if data[2] == 0 {
            assert_eq!(again, payload);
        }
    }
});
