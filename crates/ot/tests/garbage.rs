//! Arbitrary peer bytes at every step of every protocol: each call returns `Ok` (semi-honest
//! protocols cannot detect well-formed lies) or a typed error, and never panics.

mod common;

use std::collections::VecDeque;

use common::{rng, ScriptedPeer};
use privinfer_ot::{CotBackend, CotConfig, CotReceiver, CotSender, OtError};
use rand::{Rng, RngCore};

/// A random message: mostly of a plausible length (a valid point, an exact payload size), sometimes
/// of any length.
fn message(g: &mut (impl RngCore + rand::CryptoRng), plausible: &[usize]) -> Vec<u8> {
    let len = if g.gen_bool(0.7) {
        plausible[g.gen_range(0..plausible.len())]
    } else {
        g.gen_range(0..5000)
    };
    let mut m = vec![0u8; len];
    g.fill_bytes(&mut m);
    if g.gen_bool(0.3) && len >= 32 {
        // A valid Ristretto point where a base-OT message is expected.
        let p = curve25519_dalek::RistrettoPoint::random(g).compress();
        m[..32].copy_from_slice(p.as_bytes());
    }
    m
}

/// `points` valid Ristretto points (a well-formed base-OT message), then random messages.
fn script(
    g: &mut (impl RngCore + rand::CryptoRng),
    points: usize,
    steps: usize,
    plausible: &[usize],
) -> ScriptedPeer {
    let mut first = Vec::with_capacity(32 * points);
    for _ in 0..points {
        first.extend_from_slice(
            curve25519_dalek::RistrettoPoint::random(g)
                .compress()
                .as_bytes(),
        );
    }
    let mut script: VecDeque<Vec<u8>> = (0..steps).map(|_| message(g, plausible)).collect();
    script.push_front(first);
    ScriptedPeer {
        script,
        stats: Default::default(),
    }
}

fn ok_or_typed<T>(r: Result<T, OtError>) {
    if let Err(e) = r {
        // Every error renders (no panic in Display either).
        let _ = e.to_string();
    }
}

#[test]
fn random_peer_bytes_never_panic() {
    let mut g = rng(0xfa11);
    let n = 40usize;
    // Plausible lengths: base-OT points (32, 32·128), IKNP columns, derandomization bits, payloads,
    // the small silent set's SPCOT messages.
    let plausible = [
        32,
        32 * 128,
        128 * 16,
        1,
        5,
        10,
        80,
        160,
        320,
        640,
        128 * 19 * 16,
        117 * 19 * 16,
        47_709usize.div_ceil(128) * 128 * 16,
    ];
    let mut past_setup = 0;
    for round in 0..30 {
        let backend = if round % 2 == 0 {
            CotBackend::Iknp
        } else {
            CotBackend::Silent
        };
        let cfg = CotConfig { backend };
        // Receiver side against a scripted sender.
        let mut ch = script(&mut g, 128, 6, &plausible);
        if let Ok(mut r) = CotReceiver::setup_with(&mut ch, &mut rng(round), cfg) {
            past_setup += 1;
            match round % 4 {
                0 => ok_or_typed(r.recv_chosen(&mut ch, &vec![true; n], 8)),
                1 => ok_or_typed(r.recv_correlated(&mut ch, &vec![false; n], 37)),
                2 => ok_or_typed(r.recv_1_of_n(&mut ch, 4, &vec![5u8; n], 2)),
                _ => ok_or_typed(r.recv_correlated_random(&mut ch, n, 64)),
            }
        }
        // Sender side against a scripted receiver.
        let mut ch = script(&mut g, 1, 6, &plausible);
        if let Ok(mut s) = CotSender::setup_with(&mut ch, &mut rng(round), cfg) {
            past_setup += 1;
            match round % 3 {
                0 => ok_or_typed(s.send_chosen(&mut ch, &vec![1; n], &vec![0; n], 8)),
                1 => ok_or_typed(s.send_correlated(&mut ch, &vec![3; n], 37)),
                _ => ok_or_typed(s.send_1_of_n(&mut ch, 4, &vec![1; 16 * n], 2)),
            }
        }
    }
    assert_eq!(
        past_setup, 60,
        "well-formed base-OT messages must be accepted"
    );
}
