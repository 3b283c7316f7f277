//! Helpers shared by the engine's session tests: a tiny CNN, its input, short timeouts, a server
//! on an ephemeral port and a well-behaved client.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use nn::ir::{Conv2d, Linear, Pool};
use nn::{FixedConfig, Model, Node, Op};
use privinfer_engine::handshake::{self, ClientHello, Queued, Reveal};
use privinfer_engine::{
    infer_queued, EngineError, ModelService, Outcome, PlanConfig, Server, ServerConfig,
    ServerModel, StatsHandle,
};
use transport::{Channel, TcpChannel, TcpConfig};

/// A small CNN: conv 3→4 (3×3, pad 1) → ReLU → max-pool 2 → global average → FC 4→3.
pub fn tiny_model() -> Model {
    let w = |n: usize, k: f32| {
        (0..n)
            .map(|i| ((i as f32 * 0.37 + k).sin()) * 0.5)
            .collect::<Vec<f32>>()
    };
    let node = |name: &str, op: Op, inputs: Vec<usize>, shape: Vec<usize>| Node {
        name: name.into(),
        op,
        inputs,
        shape,
    };
    Model {
        name: "tiny".into(),
        input_name: "x".into(),
        nodes: vec![
            node("x", Op::Input, vec![], vec![1, 3, 8, 8]),
            node(
                "conv",
                Op::Conv(Conv2d {
                    in_shape: [3, 8, 8],
                    out_shape: [4, 8, 8],
                    kernel: [3, 3],
                    stride: [1, 1],
                    pads: [1, 1, 1, 1],
                    groups: 1,
                    weight: w(4 * 3 * 9, 0.1),
                    bias: w(4, 0.7),
                }),
                vec![0],
                vec![1, 4, 8, 8],
            ),
            node("relu", Op::Relu, vec![1], vec![1, 4, 8, 8]),
            node(
                "pool",
                Op::MaxPool(Pool {
                    kernel: [2, 2],
                    stride: [2, 2],
                    pads: [0; 4],
                    count_include_pad: false,
                }),
                vec![2],
                vec![1, 4, 4, 4],
            ),
            node("gap", Op::GlobalAvgPool, vec![3], vec![1, 4, 1, 1]),
            node("flat", Op::Reshape, vec![4], vec![1, 4]),
            node(
                "fc",
                Op::Linear(Linear {
                    in_features: 4,
                    out_features: 3,
                    rows: 1,
                    weight: w(12, 0.3),
                    bias: w(3, 0.9),
                }),
                vec![5],
                vec![1, 3],
            ),
        ],
        output: 6,
        metadata: vec![],
    }
}

pub fn input(model: &Model) -> Vec<f32> {
    let n: usize = model.input_shape().iter().product();
    (0..n)
        .map(|i| ((i * 7919) % 1000) as f32 / 250.0 - 2.0)
        .collect()
}

pub fn short() -> TcpConfig {
    TcpConfig {
        timeout: Duration::from_secs(3),
        connect_timeout: Duration::from_secs(3),
        ..TcpConfig::default()
    }
}

pub fn start_server(
    model: &Model,
    reveal: Reveal,
    max_clients: usize,
    max_sessions: usize,
) -> (SocketAddr, thread::JoinHandle<()>, String) {
    let cfg = ServerConfig {
        max_sessions,
        tcp: short(),
        ..ServerConfig::default()
    };
    let (addr, h, digest, _, _) = start_server_with(model, reveal, Some(max_clients), cfg);
    (addr, h, digest)
}

/// A server with the given limits; also returns its stop flag and counters.
pub fn start_server_with(
    model: &Model,
    reveal: Reveal,
    max_clients: Option<usize>,
    cfg: ServerConfig,
) -> (
    SocketAddr,
    thread::JoinHandle<()>,
    String,
    Arc<std::sync::atomic::AtomicBool>,
    StatsHandle,
) {
    let sm = ServerModel::new(model, &PlanConfig::default()).unwrap();
    let service = Arc::new(ModelService::new(sm, reveal).unwrap());
    let digest = service.digest().to_string();
    let server = Server::bind("127.0.0.1:0", cfg).unwrap();
    let addr = server.local_addr().unwrap();
    let (stop, stats) = (server.stop_handle(), server.stats_handle());
    let h = thread::spawn(move || server.run(service, max_clients).unwrap());
    (addr, h, digest, stop, stats)
}

pub fn good_client(
    addr: SocketAddr,
    model: &Model,
    digest: Option<&str>,
) -> Result<Outcome, EngineError> {
    good_client_queued(addr, model, digest, &mut |_| {})
}

/// As [`good_client`], reporting the queue positions the server sends.
pub fn good_client_queued(
    addr: SocketAddr,
    model: &Model,
    digest: Option<&str>,
    on_queued: &mut dyn FnMut(&Queued),
) -> Result<Outcome, EngineError> {
    let x = input(model);
    let r = infer_queued(
        addr,
        short(),
        digest,
        &mut |plan| {
            let f = FixedConfig::new(plan.ell, plan.scale)?;
            Ok(x.iter().map(|&v| f.encode(v)).collect())
        },
        &mut |_, _| {},
        on_queued,
    )?;
    // Setup generated exactly the COTs the plan predicts (argmax included when only the label
    // is revealed), and the run used exactly those.
    assert_eq!(
        (r.report.ot.used_send, r.report.ot.used_recv),
        (r.report.ot.predicted_send, r.report.ot.predicted_recv)
    );
    Ok(r.outcome)
}

/// The fixed-point reference logits of the tiny model on its input.
pub fn reference(model: &Model) -> Vec<u64> {
    nn::fixed::run(model, &input(model), FixedConfig::new(37, 12).unwrap())
        .unwrap()
        .data
}

/// A client hello of protocol `version`, serialized.
pub fn hello_bytes(version: u32) -> Vec<u8> {
    serde_json::to_vec(&ClientHello {
        magic: handshake::MAGIC.into(),
        version,
    })
    .unwrap()
}

/// A client that sends its hello, takes the server's hello and then says nothing: it holds a
/// session slot until a server deadline ends its session.
pub fn stalled_session(addr: SocketAddr) -> TcpChannel {
    let mut ch = TcpChannel::connect(addr, short()).unwrap();
    ch.send(&hello_bytes(handshake::PROTOCOL_VERSION)).unwrap();
    let hello: serde_json::Value = serde_json::from_slice(&ch.recv().unwrap()).unwrap();
    assert!(hello.get("model_digest").is_some(), "{hello}");
    ch
}
