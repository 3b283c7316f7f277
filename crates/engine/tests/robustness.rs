//! Sessions against misbehaving peers: each bad input ends with a typed error within the timeout,
//! and a server keeps serving well-behaved clients afterwards.

use std::io::Write;
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use nn::FixedConfig;
use privinfer_engine::handshake::{self, Reveal};
use privinfer_engine::{
    infer, infer_channel, EngineError, Outcome, PlanConfig, Server, ServerConfig,
};
use transport::{Channel, TcpChannel, TcpConfig};

mod common;
use common::{good_client, hello_bytes, input, short, start_server, tiny_model};

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
    ch.send(&hello_bytes(handshake::PROTOCOL_VERSION)).unwrap();
    ch.flush().unwrap();
    let _hello = ch.recv().unwrap();
    ch.send(b"not an OT message").unwrap();
    drop(ch);
    // 4. A client speaking another protocol version is refused with a reason.
    let mut ch = TcpChannel::connect(addr, short()).unwrap();
    ch.send(&hello_bytes(99)).unwrap();
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

/// The client's handshake loop on mutated server replies (queue updates, busy refusals, hellos):
/// a typed error or a hello, never a panic or a hang. The fuzz target `handshake` runs the same
/// parsers on arbitrary bytes.
#[test]
fn client_handshake_survives_mutated_replies() {
    use privinfer_engine::handshake::{refusal, Queued, MAGIC};
    use transport::MemoryChannel;
    let queued = serde_json::to_vec(&Queued {
        magic: MAGIC.into(),
        queued: 2,
        sessions: 1,
    })
    .unwrap();
    let busy = serde_json::to_vec(&refusal("busy", Some(7))).unwrap();
    let mut rng = 0x1234_5678_9abc_def0u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut parsed = 0;
    for round in 0..400 {
        let mut msgs = vec![queued.clone(), queued.clone(), busy.clone()];
        let m = (next() % 3) as usize;
        let msg = &mut msgs[m];
        match round % 3 {
            0 => {
                let i = (next() as usize) % msg.len();
                msg[i] ^= 1 << (next() % 8);
            }
            1 => msg.truncate((next() as usize) % msg.len()),
            _ => msg.insert((next() as usize) % msg.len(), next() as u8),
        }
        // The peer stays open (the client's own hello must go out); once the replies run out
        // the client's recv times out.
        let (mut peer, mut me) = MemoryChannel::pair_with(1 << 20, Duration::from_millis(5));
        for f in &msgs {
            peer.send(f).unwrap();
        }
        let mut positions = Vec::new();
        let r = handshake::client_handshake(&mut me, &mut |q| positions.push(q.queued));
        assert!(r.is_err(), "no hello was sent");
        assert!(positions.iter().all(|&p| p > 0));
        parsed += positions.len();
        assert!(peer.recv().is_ok(), "the client's hello went out");
    }
    // Most rounds leave the first update intact, so the loop did read past it.
    assert!(parsed > 200, "{parsed}");
    // Unmutated: two positions heard, then the busy refusal with its hint.
    let (mut peer, mut me) = MemoryChannel::pair();
    for f in [&queued, &queued, &busy] {
        peer.send(f).unwrap();
    }
    let mut positions = Vec::new();
    let e = handshake::client_handshake(&mut me, &mut |q| positions.push(q.queued)).unwrap_err();
    assert_eq!(positions, vec![2, 2]);
    assert!(
        matches!(&e, EngineError::Busy { reason, retry_after_s: 7 } if reason == "busy"),
        "{e}"
    );
}
