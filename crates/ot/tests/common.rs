//! Test harness: the two parties run on two threads over a channel pair.
#![allow(dead_code)]

use std::time::Duration;

use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use transport::{Channel, MemoryChannel, TcpChannel, TcpConfig};

pub fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

pub fn memory_pair() -> (MemoryChannel, MemoryChannel) {
    MemoryChannel::pair_with(64 << 20, Duration::from_secs(20))
}

pub fn tcp_pair(timeout: Duration) -> (TcpChannel, TcpChannel) {
    let cfg = TcpConfig {
        max_message: 64 << 20,
        timeout,
        connect_timeout: Duration::from_secs(5),
    };
    TcpChannel::loopback_pair(cfg).expect("loopback pair")
}

/// Runs `a` and `b` on two threads with the two ends of a channel and returns both results.
pub fn run2<C, A, B, RA, RB>(pair: (C, C), a: A, b: B) -> (RA, RB)
where
    C: Channel + Send + 'static,
    A: FnOnce(&mut C) -> RA + Send + 'static,
    B: FnOnce(&mut C) -> RB + Send + 'static,
    RA: Send + 'static,
    RB: Send + 'static,
{
    let (mut ca, mut cb) = pair;
    let hb = std::thread::spawn(move || b(&mut cb));
    let ra = a(&mut ca);
    let rb = hb.join().expect("party B panicked");
    (ra, rb)
}

/// A peer played from a script: each `recv` returns the next scripted message (then `Closed`),
/// every `send` is accepted and dropped. For feeding arbitrary bytes to one party.
pub struct ScriptedPeer {
    pub script: std::collections::VecDeque<Vec<u8>>,
    pub stats: transport::Stats,
}

impl Channel for ScriptedPeer {
    fn send(&mut self, msg: &[u8]) -> transport::Result<()> {
        self.stats.bytes_sent += msg.len() as u64;
        Ok(())
    }
    fn recv(&mut self) -> transport::Result<Vec<u8>> {
        self.script
            .pop_front()
            .ok_or(transport::TransportError::Closed)
    }
    fn flush(&mut self) -> transport::Result<()> {
        Ok(())
    }
    fn stats(&self) -> transport::Stats {
        self.stats
    }
}
