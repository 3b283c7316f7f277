//! Feeds arbitrary bytes as the peer's messages to every OT protocol step (both roles, both
//! backends). The property: each call returns `Ok` or an `OtError`; it never panics, hangs or
//! allocates without bound. Run with `cargo +nightly fuzz run ot_peer_messages` from `fuzz/`.
#![no_main]

use std::collections::VecDeque;

use curve25519_dalek::RistrettoPoint;
use libfuzzer_sys::fuzz_target;
use ot::{CotBackend, CotConfig, CotReceiver, CotSender};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use transport::{Channel, Stats, TransportError};

/// A peer that answers each `recv` with the next scripted message and drops what it is sent.
struct Scripted(VecDeque<Vec<u8>>, Stats);

impl Channel for Scripted {
    fn send(&mut self, msg: &[u8]) -> transport::Result<()> {
        self.1.bytes_sent += msg.len() as u64;
        Ok(())
    }
    fn recv(&mut self) -> transport::Result<Vec<u8>> {
        self.0.pop_front().ok_or(TransportError::Closed)
    }
    fn flush(&mut self) -> transport::Result<()> {
        Ok(())
    }
    fn stats(&self) -> Stats {
        self.1
    }
}

/// Input layout: byte 0 selects role, backend and protocol (bit 4: start with a well-formed
/// base-OT message so that later steps are reached); then messages, each a little-endian u16
/// length followed by that many bytes.
fn split(data: &[u8]) -> VecDeque<Vec<u8>> {
    let mut out = VecDeque::new();
    let mut rest = data;
    while rest.len() >= 2 {
        let len = u16::from_le_bytes([rest[0], rest[1]]) as usize;
        rest = &rest[2..];
        let take = len.min(rest.len());
        out.push_back(rest[..take].to_vec());
        rest = &rest[take..];
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else { return };
    let mut script = split(rest);
    if sel & 16 != 0 {
        // A well-formed base-OT message: one point for a COT sender (base-OT receiver), 128 for a
        // COT receiver (base-OT sender).
        let points = if sel & 2 == 0 { 128 } else { 1 };
        let mut g = ChaCha20Rng::seed_from_u64(0x5eed ^ sel as u64);
        let mut m = Vec::with_capacity(32 * points);
        for _ in 0..points {
            m.extend_from_slice(RistrettoPoint::random(&mut g).compress().as_bytes());
        }
        script.push_front(m);
    }
    let mut ch = Scripted(script, Stats::default());
    let cfg = CotConfig { backend: if sel & 1 == 0 { CotBackend::Iknp } else { CotBackend::Silent } };
    let mut rng = ChaCha20Rng::seed_from_u64(sel as u64);
    let n = 16;
    if sel & 2 == 0 {
        if let Ok(mut r) = CotReceiver::setup_with(&mut ch, &mut rng, cfg) {
            let _ = match (sel >> 2) & 3 {
                0 => r.recv_chosen(&mut ch, &[true; 16], 8).map(drop),
                1 => r.recv_correlated(&mut ch, &[false; 16], 37).map(drop),
                2 => r.recv_1_of_n(&mut ch, 4, &[9; 16], 3).map(drop),
                _ => r.recv_correlated_random(&mut ch, n, 64).map(drop),
            };
        }
    } else if let Ok(mut s) = CotSender::setup_with(&mut ch, &mut rng, cfg) {
        let _ = match (sel >> 2) & 3 {
            0 => s.send_chosen(&mut ch, &[1; 16], &[2; 16], 8),
            1 => s.send_correlated(&mut ch, &[3; 16], 37).map(drop),
            2 => s.send_1_of_n(&mut ch, 4, &[1; 256], 3),
            _ => s.extend(&mut ch, n).map(drop),
        };
    }
});
