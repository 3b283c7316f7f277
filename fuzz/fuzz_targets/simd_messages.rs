//! The SIMD protocol's parsers of the other party's bytes, never a panic whatever the bytes:
//! `Simd::server` on a fuzzed query (seeded ciphertexts: header, level, form, residues, seed),
//! `Simd::client` on a fuzzed response (compact responses at the planned widths), and
//! `ServerKeys::setup` on fuzzed SIMD key messages (public key, Galois keys for the layers'
//! rotation steps), for the layers of `linear::shapes::simd_fuzz_layers` at ℓ = 37.
//!
//! Input: `[selector][layer][payload…]`: selector % 3 = 1 server, 2 client, 0 keys (payload:
//! the first message's length as u32 little-endian, then both messages); selector bit 3 runs
//! the server and client with the padded kernel (`hyena`) where it applies.
#![no_main]
use libfuzzer_sys::fuzz_target;
use linear::{
    ClientKeys, KeyRequest, LayerSpec, LayerWeights, LinearProtocol, Ring, ServerKeys, Simd,
};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use transport::{Channel, MemoryChannel};

struct Fixture {
    /// The conventional kernel (`simd`) and the padded one (`hyena`), same messages.
    protos: [Simd; 2],
    layers: Vec<LayerSpec>,
    ring: Ring,
    req: Vec<KeyRequest>,
    ck: ClientKeys,
    sk: ServerKeys,
}

fn fixture() -> Fixture {
    let ring = Ring::new(37).unwrap();
    let protos = [Simd::default(), Simd::new(linear::SimdConfig::hyena())];
    let layers: Vec<LayerSpec> = linear::shapes::simd_fuzz_layers()
        .into_iter()
        .map(|(_, l)| l)
        .collect();
    let mut req: Vec<KeyRequest> = protos
        .iter()
        .flat_map(|p| layers.iter().filter_map(|l| p.keys_needed(l, ring).ok()))
        .flatten()
        .collect();
    req.sort();
    req.dedup();
    let (mut a, mut b) = MemoryChannel::pair();
    let ck = ClientKeys::setup(&req, &mut a, &mut ChaCha20Rng::seed_from_u64(1)).unwrap();
    let sk = ServerKeys::setup(&req, &mut b).unwrap();
    Fixture {
        protos,
        layers,
        ring,
        req,
        ck,
        sk,
    }
}

fn proto_applies(p: &Simd, l: &LayerSpec, ring: Ring) -> bool {
    p.cost(l, ring).is_ok()
}

thread_local! {
    static FX: Fixture = fixture();
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let (sel, body) = (data[0], &data[2..]);
    FX.with(|f| {
        let layer = f.layers[data[1] as usize % f.layers.len()];
        // Bit 3 of the selector: the scalar-weight kernel (where it applies: not the FC).
        let proto =
            &f.protos[usize::from(sel & 8 != 0 && proto_applies(&f.protos[1], &layer, f.ring))];
        match sel % 3 {
            1 => {
                let (mut c, mut s) = MemoryChannel::pair();
                c.send(body).unwrap();
                drop(c);
                let w = LayerWeights {
                    weights: vec![1; layer.weight_len()],
                    bias: vec![0; layer.bias_len()],
                };
                let _ = proto.server(
                    &layer,
                    f.ring,
                    &f.sk,
                    &w,
                    &vec![0u64; layer.input_len()],
                    &mut s,
                    &mut ChaCha20Rng::seed_from_u64(2),
                );
            }
            2 => {
                let (mut c, mut s) = MemoryChannel::pair();
                s.send(body).unwrap();
                let _ = proto.client(
                    &layer,
                    f.ring,
                    &f.ck,
                    &vec![0u64; layer.input_len()],
                    &mut c,
                    &mut ChaCha20Rng::seed_from_u64(3),
                );
            }
            _ => {
                if body.len() < 4 {
                    return;
                }
                let cut = u32::from_le_bytes(body[..4].try_into().unwrap()) as usize;
                let rest = &body[4..];
                let cut = cut.min(rest.len());
                let (mut c, mut s) = MemoryChannel::pair();
                c.send(&rest[..cut]).unwrap();
                c.send(&rest[cut..]).unwrap();
                drop(c);
                let _ = ServerKeys::setup(&f.req, &mut s);
            }
        }
    });
});
