//! The OT product's messages (`mpc::Session::product_client` / `product_server`, through the
//! `ot` and `winograd` linear layers): after an honest session setup (IKNP COTs), one party's
//! product messages are replaced by fuzzed bytes. The property: the other party returns `Ok`
//! or an error; it never panics, hangs or allocates without bound.
#![no_main]

use libfuzzer_sys::fuzz_target;
use linear::{
    ClientKeys, Conv2dSpec, LayerSpec, LayerWeights, LinearProtocol, OtLinear, Ring, ServerKeys,
    Winograd,
};
use mpc::{Party, Session, SessionConfig};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use transport::{Channel, MemoryChannel};

fn config() -> SessionConfig {
    SessionConfig {
        refill: 1 << 10,
        cot: ot::CotConfig {
            backend: ot::CotBackend::Iknp,
        },
    }
}

// Input: `[selector][layer][len u16 LE][bytes]…`: even selector: the client reads fuzzed
// server messages; odd: the server reads a fuzzed client message. `layer % 4`: an FC 5→3 and
// a 3×3 conv by `ot`, the conv by Winograd F(2,3) and F(4,3).
fuzz_target!(|data: &[u8]| {
    let [sel, which, rest @ ..] = data else { return };
    let mut msgs = Vec::new();
    let mut r = rest;
    while r.len() >= 2 {
        let len = u16::from_le_bytes([r[0], r[1]]) as usize;
        r = &r[2..];
        let take = len.min(r.len());
        msgs.push(r[..take].to_vec());
        r = &r[take..];
    }
    let conv = LayerSpec::conv(Conv2dSpec::square(2, 4, 2, 3, 1, 1, 1), 4);
    let (proto, layer): (Box<dyn LinearProtocol>, LayerSpec) = match which % 4 {
        0 => (Box::new(OtLinear), LayerSpec::fc(5, 3, 4)),
        1 => (Box::new(OtLinear), conv),
        2 => (Box::new(Winograd::F2), conv),
        _ => (Box::new(Winograd::F4), conv),
    };
    let ring = Ring::new(37).unwrap();
    let cots = proto.cost(&layer, ring).unwrap().cots as usize;
    let w = LayerWeights {
        weights: vec![3; layer.weight_len()],
        bias: vec![1; layer.bias_len()],
    };
    let x = vec![5u64; layer.input_len()];
    let fuzz_client = sel % 2 == 0;
    let (c0, c1) = MemoryChannel::pair();
    let (mut mine, mut theirs) = if fuzz_client { (c1, c0) } else { (c0, c1) };
    std::thread::scope(|s| {
        let msgs = &msgs;
        let peer = s.spawn(move || {
            // The honest-setup, scripted-protocol side.
            let party = if fuzz_client { Party::P0 } else { Party::P1 };
            let mut rng = ChaCha20Rng::seed_from_u64(1);
            let ch = &mut theirs;
            let Ok(mut sess) = Session::setup_with(ch, party, &mut rng, config()) else { return };
            let (ns, nr) = if fuzz_client { (cots, 0) } else { (0, cots) };
            if sess.prefetch(ch, ns, nr).is_err() {
                return;
            }
            if fuzz_client {
                // Read the client's bits, answer with the fuzzed messages.
                let _ = ch.recv();
            }
            for m in msgs {
                if ch.send(m).is_err() {
                    return;
                }
            }
            let _ = ch.flush();
        });
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        if fuzz_client {
            if let Ok(mut sess) = Session::setup_with(&mut mine, Party::P1, &mut rng, config()) {
                if sess.prefetch(&mut mine, 0, cots).is_ok() {
                    let keys = ClientKeys::setup(&[], &mut mine, &mut rng).unwrap();
                    let _ = proto.client_in(&layer, ring, &keys, &x, &mut sess, &mut mine, &mut rng);
                }
            }
            drop(mine);
        } else {
            if let Ok(mut sess) = Session::setup_with(&mut mine, Party::P0, &mut rng, config()) {
                if sess.prefetch(&mut mine, cots, 0).is_ok() {
                    let keys = ServerKeys::setup(&[], &mut mine).unwrap();
                    let _ =
                        proto.server_in(&layer, ring, &keys, &w, &x, &mut sess, &mut mine, &mut rng);
                }
            }
            drop(mine);
        }
        let _ = peer.join();
    });
});
