//! Sessions against misbehaving peers: each bad input ends with a typed error within the timeout,
//! and a server keeps serving well-behaved clients afterwards.

use std::io::Write;
use std::net::TcpStream;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use nn::ir::{Conv2d, Linear, Pool};
use nn::{FixedConfig, Model, Node, Op};
use privinfer_engine::handshake::{self, ClientHello, Reveal};
use privinfer_engine::{
    infer, infer_channel, EngineError, ModelService, Outcome, PlanConfig, Server, ServerConfig,
    ServerModel,
};
use transport::{Channel, TcpChannel, TcpConfig};

/// A small CNN: conv 3→4 (3×3, pad 1) → ReLU → max-pool 2 → global average → FC 4→3.
fn tiny_model() -> Model {
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

fn input(model: &Model) -> Vec<f32> {
    let n: usize = model.input_shape().iter().product();
    (0..n)
        .map(|i| ((i * 7919) % 1000) as f32 / 250.0 - 2.0)
        .collect()
}

fn short() -> TcpConfig {
    TcpConfig {
        timeout: Duration::from_secs(3),
        connect_timeout: Duration::from_secs(3),
        ..TcpConfig::default()
    }
}

fn start_server(
    model: &Model,
    reveal: Reveal,
    max_clients: usize,
    max_sessions: usize,
) -> (std::net::SocketAddr, thread::JoinHandle<()>, String) {
    let sm = ServerModel::new(model, &PlanConfig::default()).unwrap();
    let service = Arc::new(ModelService::new(sm, reveal).unwrap());
    let digest = service.digest().to_string();
    let server = Server::bind(
        "127.0.0.1:0",
        ServerConfig {
            max_sessions,
            tcp: short(),
        },
    )
    .unwrap();
    let addr = server.local_addr().unwrap();
    let h = thread::spawn(move || server.run(service, Some(max_clients)).unwrap());
    (addr, h, digest)
}

fn good_client(
    addr: std::net::SocketAddr,
    model: &Model,
    digest: Option<&str>,
) -> Result<Outcome, EngineError> {
    let x = input(model);
    let r = infer(
        addr,
        short(),
        digest,
        &mut |plan| {
            let f = FixedConfig::new(plan.ell, plan.scale)?;
            Ok(x.iter().map(|&v| f.encode(v)).collect())
        },
        &mut |_, _| {},
    )?;
    // Setup generated exactly the COTs the plan predicts (argmax included when only the label
    // is revealed), and the run used exactly those.
    assert_eq!(
        (r.report.ot.used_send, r.report.ot.used_recv),
        (r.report.ot.predicted_send, r.report.ot.predicted_recv)
    );
    Ok(r.outcome)
}

#[test]
fn server_survives_misbehaving_clients_and_keeps_serving() {
    let model = tiny_model();
    let reference =
        nn::fixed::run(&model, &input(&model), FixedConfig::new(37, 12).unwrap()).unwrap();
    let (addr, server, digest) = start_server(&model, Reveal::Logits, 6, 8);
    let t0 = Instant::now();

    // 1. Garbage that is not a frame at all, then close.
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    drop(s);
    // 2. A frame header announcing 4 GiB.
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(&u32::MAX.to_le_bytes()).unwrap();
    drop(s);
    // 3. A valid hello, then disconnect in the middle of the session.
    let mut ch = TcpChannel::connect(addr, short()).unwrap();
    ch.send(
        &serde_json::to_vec(&ClientHello {
            magic: handshake::MAGIC.into(),
            version: handshake::PROTOCOL_VERSION,
        })
        .unwrap(),
    )
    .unwrap();
    ch.flush().unwrap();
    let _hello = ch.recv().unwrap();
    ch.send(b"not an OT message").unwrap();
    drop(ch);
    // 4. A client speaking another protocol version is refused with a reason.
    let mut ch = TcpChannel::connect(addr, short()).unwrap();
    ch.send(
        &serde_json::to_vec(&ClientHello {
            magic: handshake::MAGIC.into(),
            version: 99,
        })
        .unwrap(),
    )
    .unwrap();
    ch.flush().unwrap();
    let reply: serde_json::Value = serde_json::from_slice(&ch.recv().unwrap()).unwrap();
    assert!(reply["refused"].as_str().unwrap().contains("version 99"));
    drop(ch);

    // 5. A well-behaved client still gets the exact answer, with the digest pinned.
    match good_client(addr, &model, Some(&digest)).unwrap() {
        Outcome::Logits(l) => assert_eq!(l, reference.data),
        o => panic!("{o:?}"),
    }
    // 6. A client pinning another digest refuses to run.
    let e = good_client(addr, &model, Some(&"0".repeat(64))).unwrap_err();
    assert!(matches!(e, EngineError::DigestMismatch { .. }), "{e}");
    server.join().unwrap();
    assert!(t0.elapsed() < Duration::from_secs(60));
}

#[test]
fn label_only_reveals_the_reference_top1() {
    let model = tiny_model();
    let reference =
        nn::fixed::run(&model, &input(&model), FixedConfig::new(37, 12).unwrap()).unwrap();
    let f = FixedConfig::new(37, 12).unwrap();
    let vals: Vec<i64> = reference.data.iter().map(|&v| f.signed(v)).collect();
    let top = (0..vals.len()).fold(0, |b, i| if vals[i] > vals[b] { i } else { b });
    let (addr, server, _) = start_server(&model, Reveal::Label, 1, 1);
    assert_eq!(
        good_client(addr, &model, None).unwrap(),
        Outcome::Label(top)
    );
    server.join().unwrap();
}

#[test]
fn client_rejects_a_server_that_sends_garbage() {
    for reply in [
        b"\x00\x01garbage".to_vec(),
        b"{\"magic\":\"privinfer\",\"refused\":\"busy\"}".to_vec(),
        vec![b'{'; 1000],
    ] {
        let (mut a, mut b) = TcpChannel::loopback_pair(short()).unwrap();
        let h = thread::spawn(move || {
            let _ = a.recv();
            a.send(&reply).unwrap();
            a.flush().unwrap();
            thread::sleep(Duration::from_millis(200));
        });
        let e = infer_channel(&mut b, None, &mut |_| Ok(vec![]), &mut |_, _| {})
            .err()
            .expect("must fail");
        assert!(
            matches!(e, EngineError::Malformed { .. } | EngineError::Refused(_)),
            "{e}"
        );
        h.join().unwrap();
    }
}

#[test]
fn silent_server_times_out_and_unreachable_server_fails() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let t0 = Instant::now();
    let cfg = TcpConfig {
        timeout: Duration::from_millis(500),
        ..short()
    };
    let e = infer(addr, cfg, None, &mut |_| Ok(vec![]), &mut |_, _| {})
        .err()
        .unwrap();
    assert!(
        matches!(
            e,
            EngineError::Transport(transport::TransportError::Timeout(_))
        ),
        "{e}"
    );
    assert!(t0.elapsed() < Duration::from_secs(5));
    drop(listener);
    let e = infer(addr, short(), None, &mut |_| Ok(vec![]), &mut |_, _| {})
        .err()
        .unwrap();
    assert!(matches!(e, EngineError::Transport(_)), "{e}");
}

#[test]
fn port_in_use_is_a_clear_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let e = Server::bind(addr.as_str(), ServerConfig::default())
        .err()
        .unwrap();
    assert!(
        e.to_string()
            .starts_with(&format!("cannot listen on {addr}")),
        "{e}"
    );
}

#[test]
fn plans_are_deterministic_and_tampering_is_detected() {
    let model = tiny_model();
    let a = privinfer_engine::Plan::compile(&model, &PlanConfig::default()).unwrap();
    let b = privinfer_engine::Plan::compile(&model, &PlanConfig::default()).unwrap();
    assert_eq!(a.digest(), b.digest());
    let mut bad = a.clone();
    bad.steps[2].inputs = vec![5];
    assert!(matches!(
        bad.validate(),
        Err(EngineError::InvalidPlan { step: 2, .. })
    ));
    let mut bad = a.clone();
    bad.steps[1].shape = vec![1, 4, 8, 9];
    assert!(bad.validate().is_err());
    let mut bad = a;
    bad.output = 100;
    assert!(bad.validate().is_err());
}

#[test]
fn a_full_server_refuses_with_a_reason() {
    let model = tiny_model();
    let (addr, server, _) = start_server(&model, Reveal::Logits, 2, 1);
    // The first client holds the only session slot without saying anything.
    let idle = TcpStream::connect(addr).unwrap();
    thread::sleep(Duration::from_millis(300));
    let e = good_client(addr, &model, None).unwrap_err();
    assert!(
        matches!(&e, EngineError::Refused(r) if r.contains("busy")),
        "{e}"
    );
    drop(idle);
    server.join().unwrap();
}
