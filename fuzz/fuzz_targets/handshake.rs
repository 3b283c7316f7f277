//! Both ends of the session handshake on arbitrary peer messages: the client's loop over the
//! server's replies (queue updates, refusals with or without a retry hint, hellos) and the
//! server's reading of a client hello. Never a panic, and the client's loop ends when the
//! messages do.
#![no_main]
use libfuzzer_sys::fuzz_target;
use privinfer_engine::handshake;
use std::time::Duration;

use transport::{Channel, MemoryChannel};

/// The input cut into frames: `[len: u8][len bytes]` repeated.
fn frames(mut data: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while let Some((&n, rest)) = data.split_first() {
        let n = (n as usize).min(rest.len());
        out.push(rest[..n].to_vec());
        data = &rest[n..];
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    // The peer stays open so our own messages go out; once the frames run out, recv times out.
    let (mut peer, mut me) = MemoryChannel::pair_with(1 << 20, Duration::from_millis(1));
    for f in frames(rest) {
        let _ = peer.send(&f);
    }
    if sel % 2 == 0 {
        let _ = handshake::client_handshake(&mut me, &mut |q| assert!(q.queued > 0));
    } else {
        let _ = handshake::server_read_hello(&mut me);
    }
});
