//! `linear`'s parsers of the other party's bytes, never a panic whatever the bytes:
//! the server's query codec on every parameter set and dropped-bit count, the server's whole step
//! of a small FC layer on a fuzzed query, the client's step on a fuzzed response, and the server's
//! key setup on fuzzed key messages.
#![no_main]
use libfuzzer_sys::fuzz_target;
use linear::cheetah::params::HeParamsId;
use linear::cheetah::query::{max_drop_bits, QueryCodec};
use linear::{Cheetah, ClientKeys, LayerSpec, LayerWeights, LinearProtocol, Ring, ServerKeys};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use transport::{Channel, MemoryChannel};

struct Fixture {
    proto: Cheetah,
    layer: LayerSpec,
    ring: Ring,
    ck: ClientKeys,
    sk: ServerKeys,
}

fn fixture() -> Fixture {
    let ring = Ring::new(37).unwrap();
    let layer = LayerSpec::fc(20, 5, 8);
    let proto = Cheetah::default();
    let req = proto.keys_needed(&layer, ring).unwrap();
    let (mut a, mut b) = MemoryChannel::pair();
    let ck = ClientKeys::setup(&req, &mut a, &mut ChaCha20Rng::seed_from_u64(1)).unwrap();
    let sk = ServerKeys::setup(&req, &mut b).unwrap();
    Fixture { proto, layer, ring, ck, sk }
}

thread_local! {
    static FX: Fixture = fixture();
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let (sel, body) = (data[0], &data[2..]);
    match sel % 4 {
        0 => {
            // The query codec alone, any set and drop.
            let p = HeParamsId::ALL[(data[1] as usize) % HeParamsId::ALL.len()];
            let drop = (data[1] as u32 >> 3) % (max_drop_bits(p) + 1);
            if let Ok(codec) = QueryCodec::new(p, drop) {
                let _ = codec.decode(body, "fuzz query");
            }
        }
        1 => FX.with(|f| {
            // The server's step on a fuzzed query.
            let (mut c, mut s) = MemoryChannel::pair();
            c.send(body).unwrap();
            drop(c);
            let w = LayerWeights {
                weights: vec![1; 100],
                bias: vec![0; 5],
            };
            let _ = f.proto.server(
                &f.layer,
                f.ring,
                &f.sk,
                &w,
                &[0u64; 20],
                &mut s,
                &mut ChaCha20Rng::seed_from_u64(2),
            );
        }),
        2 => FX.with(|f| {
            // The client's step on a fuzzed response.
            let (mut c, mut s) = MemoryChannel::pair();
            s.send(body).unwrap();
            let _ = f.proto.client(
                &f.layer,
                f.ring,
                &f.ck,
                &[0u64; 20],
                &mut c,
                &mut ChaCha20Rng::seed_from_u64(3),
            );
        }),
        _ => FX.with(|f| {
            // The server's key setup on fuzzed key messages (split at data[1]).
            let req = f.proto.keys_needed(&f.layer, f.ring).unwrap();
            let (mut c, mut s) = MemoryChannel::pair();
            let cut = (data[1] as usize).min(body.len());
            c.send(&body[..cut]).unwrap();
            c.send(&body[cut..]).unwrap();
            drop(c);
            let _ = ServerKeys::setup(&req, &mut s);
        }),
    }
});
