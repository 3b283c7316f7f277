//! Writes the seeds of the `simd_messages` fuzz target (fuzz/README.md): for every layer of
//! `linear::shapes::simd_fuzz_layers`, a real query (the client's message, header and seeds
//! included) and a response of exactly the planned length (zero values, which are in range),
//! each prefixed with the selector bytes the target reads.
//!
//!     cargo run -p privinfer-linear --example simd_fuzz_seeds -- fuzz/seeds/simd_messages

use linear::{ClientKeys, KeyRequest, LinearProtocol, Ring, Simd};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use transport::{Channel, MemoryChannel};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "fuzz/seeds/simd_messages".into());
    std::fs::create_dir_all(&dir)?;
    let ring = Ring::new(37)?;
    let proto = Simd::default();
    let layers = linear::shapes::simd_fuzz_layers();
    let mut req: Vec<KeyRequest> = Vec::new();
    for (_, l) in &layers {
        req.extend(proto.keys_needed(l, ring)?);
    }
    req.sort();
    req.dedup();
    let (mut c, mut s) = MemoryChannel::pair();
    let keys = ClientKeys::setup(&req, &mut c, &mut ChaCha20Rng::seed_from_u64(1))?;
    // The key messages (public key, then Galois keys, ~20 MB: not written; the `keys` and
    // `compact_response` targets seed their parsers) are drained.
    keys_check(&req);
    let _ = (s.recv()?, s.recv()?);
    for (i, (name, layer)) in layers.iter().enumerate() {
        let cost = proto.cost(layer, ring)?;
        let (mut c, mut s) = MemoryChannel::pair();
        let mut r = vec![0u8; cost.bytes_s2c as usize];
        s.send(&r)?;
        let x = vec![0u64; layer.input_len()];
        proto.client(
            layer,
            ring,
            &keys,
            &x,
            &mut c,
            &mut ChaCha20Rng::seed_from_u64(2),
        )?;
        let query = s.recv()?;
        // Real queries (random-looking, 160 KB each) for two layers; the server checks the
        // length per layer, so one of each kind is enough to get past the header.
        if i % 3 == 0 {
            let mut q = vec![1u8, i as u8];
            q.extend_from_slice(&query);
            std::fs::write(format!("{dir}/server_{name}_query"), &q)?;
        }
        r.splice(0..0, [2u8, i as u8]);
        std::fs::write(format!("{dir}/client_{name}_response"), &r)?;
        println!(
            "{name}: query {} B, response {} B",
            cost.bytes_c2s, cost.bytes_s2c
        );
    }
    Ok(())
}

/// The seeds assume all fuzz layers share one SIMD set (two key messages).
fn keys_check(req: &[KeyRequest]) {
    let sets: std::collections::BTreeSet<_> = req
        .iter()
        .filter_map(|r| match r {
            KeyRequest::SimdRlwe { params, .. } => Some(*params),
            _ => None,
        })
        .collect();
    assert_eq!(sets.len(), 1, "one SIMD set");
}
