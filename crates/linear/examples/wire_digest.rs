//! Writes every message of seeded Cheetah runs (key setup, query, response) to one file per run,
//! so the wire bytes of two builds can be compared byte for byte (e.g. with `sha256sum`): an FC,
//! a conv on N4096Q109 and a packed conv on N8192Q120P60, each with truncated and full queries.
//!
//!     cargo run --release -p privinfer-linear --example wire_digest -- /tmp/wire

use linear::{Cheetah, CheetahConfig, Polyphase};
use linear::{
    ClientKeys, Conv2dSpec, HeParamsId, LayerSpec, LayerWeights, LinearProtocol, Ring, ServerKeys,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use std::sync::{Arc, Mutex};
use transport::{Channel, MemoryChannel, Stats};

/// A channel that appends every message it sends to a shared log.
struct Recording {
    inner: MemoryChannel,
    log: Arc<Mutex<Vec<u8>>>,
    tag: u8,
}

impl Channel for Recording {
    fn send(&mut self, msg: &[u8]) -> transport::Result<()> {
        let mut log = self.log.lock().expect("log");
        log.push(self.tag);
        log.extend_from_slice(&(msg.len() as u64).to_le_bytes());
        log.extend_from_slice(msg);
        self.inner.send(msg)
    }
    fn recv(&mut self) -> transport::Result<Vec<u8>> {
        self.inner.recv()
    }
    fn flush(&mut self) -> transport::Result<()> {
        self.inner.flush()
    }
    fn stats(&self) -> Stats {
        self.inner.stats()
    }
}

fn run(proto: Cheetah, layer: LayerSpec, ring: Ring, seed: u64) -> (Vec<u8>, Vec<u8>) {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let lim = (1i64 << layer.weight_bits) - 1;
    let w = LayerWeights {
        weights: (0..layer.weight_len())
            .map(|_| ring.from_signed(rng.gen_range(-lim..=lim)))
            .collect(),
        bias: (0..layer.bias_len())
            .map(|_| ring.reduce(rng.gen()))
            .collect(),
    };
    let xc: Vec<u64> = (0..layer.input_len())
        .map(|_| ring.reduce(rng.gen()))
        .collect();
    let xs: Vec<u64> = (0..layer.input_len())
        .map(|_| ring.reduce(rng.gen()))
        .collect();
    let req = proto.keys_needed(&layer, ring).expect("keys");
    let (c, s) = MemoryChannel::pair();
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut cc = Recording {
        inner: c,
        log: log.clone(),
        tag: b'c',
    };
    let mut sc = Recording {
        inner: s,
        log: log.clone(),
        tag: b's',
    };
    let req2 = req.clone();
    let server = std::thread::spawn(move || {
        let mut rng = ChaCha20Rng::seed_from_u64(seed ^ 0x5e);
        let keys = ServerKeys::setup(&req2, &mut sc).expect("server setup");
        proto
            .server(&layer, ring, &keys, &w, &xs, &mut sc, &mut rng)
            .expect("server")
    });
    let mut crng = ChaCha20Rng::seed_from_u64(seed ^ 0xc1);
    let keys = ClientKeys::setup(&req, &mut cc, &mut crng).expect("client setup");
    let yc = proto
        .client(&layer, ring, &keys, &xc, &mut cc, &mut crng)
        .expect("client");
    let ys = server.join().expect("server thread");
    let out: Vec<u8> = yc.iter().chain(&ys).flat_map(|v| v.to_le_bytes()).collect();
    let wire = log.lock().expect("log").clone();
    (wire, out)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "/tmp/wire".into());
    std::fs::create_dir_all(&dir)?;
    let ring = Ring::new(37)?;
    let conv = |c, h, m, k, stride, padding| Conv2dSpec::square(c, h, m, k, stride, padding, 1);
    let cases = [
        ("fc", LayerSpec::fc(300, 40, 12), None, 50_000_000u64),
        (
            "conv_n4096",
            LayerSpec::conv(conv(16, 16, 16, 3, 1, 1), 12),
            Some(HeParamsId::N4096Q109),
            50_000_000,
        ),
        (
            "conv_packed_n8192q120",
            LayerSpec::conv(conv(16, 16, 16, 3, 1, 1), 12),
            Some(HeParamsId::N8192Q120P60),
            100_000,
        ),
    ];
    for (i, (name, layer, params, bw)) in cases.into_iter().enumerate() {
        for truncate in [true, false] {
            let proto = Cheetah::new(CheetahConfig {
                params,
                bandwidth_bytes_per_s: bw,
                truncate_query: truncate,
                polyphase: Polyphase::Off,
                ..CheetahConfig::default()
            });
            let plan = proto.plan(&layer, ring)?;
            let (wire, out) = run(proto, layer, ring, 900 + i as u64);
            let tag = if truncate { "trunc" } else { "full" };
            std::fs::write(format!("{dir}/{name}_{tag}.wire"), &wire)?;
            std::fs::write(format!("{dir}/{name}_{tag}.out"), &out)?;
            println!(
                "{name} {tag}: {} pack {} drop {} truncated {} c2s {} s2c {} wire {} B",
                plan.params.name(),
                plan.pack,
                plan.query_drop_bits,
                plan.truncated_query,
                plan.cost.bytes_c2s,
                plan.cost.bytes_s2c,
                wire.len()
            );
        }
    }
    Ok(())
}
