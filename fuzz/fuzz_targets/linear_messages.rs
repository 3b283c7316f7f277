//! `linear`'s parsers of the other party's bytes, never a panic whatever the bytes:
//! the server's query codec (`rlwe::DroppedCodec` on linear's sets) on every parameter set, dropped-bit count and a sparse support (a
//! truncated query), the server's whole step on a fuzzed query and the client's on a fuzzed
//! response for several layouts (FC block and strided splits, one-tile and multi-tile convs, a
//! strided conv: truncated queries of different supports; depthwise convs by `Falcon`'s dense
//! tilings; a block-circulant FC by `Circulant`), and the server's key setup on fuzzed key
//! messages.
#![no_main]
use libfuzzer_sys::fuzz_target;
use linear::cheetah::params::HeParamsId;
use linear::cheetah::query::{codec, max_drop_bits};
use linear::{
    Cheetah, Circulant, ClientKeys, Falcon, KeyRequest, LayerSpec, LayerWeights, LinearProtocol, Ring,
    ServerKeys,
};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use transport::{Channel, MemoryChannel};

/// The layers the server and client steps run (data[1] picks one): `linear::shapes::fuzz_layers`,
/// the list the seeds are written from.
pub fn layers() -> Vec<LayerSpec> {
    linear::shapes::fuzz_layers()
        .into_iter()
        .map(|(_, l)| l)
        .collect()
}

struct Fixture {
    /// Per layer: `Falcon` or `Circulant` where they apply, `Cheetah` elsewhere (as the seeds are
    /// written).
    protos: Vec<Box<dyn LinearProtocol>>,
    layers: Vec<LayerSpec>,
    ring: Ring,
    req: Vec<KeyRequest>,
    ck: ClientKeys,
    sk: ServerKeys,
}

fn fixture() -> Fixture {
    let ring = Ring::new(37).unwrap();
    let layers = layers();
    let protos: Vec<Box<dyn LinearProtocol>> = layers
        .iter()
        .map(|l| -> Box<dyn LinearProtocol> {
            if Falcon::applies(l) {
                Box::new(Falcon::default())
            } else if Circulant::default().cost(l, ring).is_ok() {
                Box::new(Circulant::default())
            } else {
                Box::new(Cheetah::default())
            }
        })
        .collect();
    let mut req: Vec<KeyRequest> = layers
        .iter()
        .zip(&protos)
        .flat_map(|(l, p)| p.keys_needed(l, ring).unwrap())
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
            // The query codec alone, any set and drop, on every s-th coefficient (s from data[0]).
            let p = HeParamsId::ALL[(data[1] as usize) % HeParamsId::ALL.len()];
            let drop = (data[1] as u32 >> 3) % (max_drop_bits(p) + 1);
            let step = 1 + (sel as usize >> 2) % 8;
            let support: Vec<usize> = (0..p.n()).step_by(step).collect();
            if let Ok(codec) = codec(p, drop) {
                let _ = codec.decode(body, Some(&support));
                let _ = codec.decode(body, None);
            }
        }
        1 => FX.with(|f| {
            // The server's step on a fuzzed query.
            let i = data[1] as usize % f.layers.len();
            let layer = f.layers[i];
            let (mut c, mut s) = MemoryChannel::pair();
            c.send(body).unwrap();
            drop(c);
            let w = LayerWeights {
                weights: vec![1; layer.weight_len()],
                bias: vec![0; layer.bias_len()],
            };
            let _ = f.protos[i].server(
                &layer,
                f.ring,
                &f.sk,
                &w,
                &vec![0u64; layer.input_len()],
                &mut s,
                &mut ChaCha20Rng::seed_from_u64(2),
            );
        }),
        2 => FX.with(|f| {
            // The client's step on a fuzzed response.
            let i = data[1] as usize % f.layers.len();
            let layer = f.layers[i];
            let (mut c, mut s) = MemoryChannel::pair();
            s.send(body).unwrap();
            let _ = f.protos[i].client(
                &layer,
                f.ring,
                &f.ck,
                &vec![0u64; layer.input_len()],
                &mut c,
                &mut ChaCha20Rng::seed_from_u64(3),
            );
        }),
        _ => FX.with(|f| {
            // The server's key setup on fuzzed key messages (split at data[1]).
            let (mut c, mut s) = MemoryChannel::pair();
            let cut = (data[1] as usize).min(body.len());
            c.send(&body[..cut]).unwrap();
            c.send(&body[cut..]).unwrap();
            drop(c);
            let _ = ServerKeys::setup(&f.req, &mut s);
        }),
    }
});
