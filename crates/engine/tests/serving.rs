//! The server under load and abuse, over real sockets: each deadline, the admission queue, the
//! per-address limit and the memory budget, asserting what clients observe (served, queued,
//! refused with the stated message).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use privinfer_engine::handshake::{self, Reveal};
use privinfer_engine::{EngineError, Outcome, ServerConfig};
use transport::{Channel, TcpConfig};

mod common;
use common::{
    good_client, good_client_queued, hello_bytes, reference, short, stalled_session,
    start_server_with, tiny_model,
};

fn cfg(max_sessions: usize) -> ServerConfig {
    ServerConfig {
        max_sessions,
        handshake_timeout: Duration::from_secs(1),
        queue_heartbeat: Duration::from_millis(300),
        tcp: short(),
        ..ServerConfig::default()
    }
}

/// Whether the server closes `s` within `within` (a read returns EOF or an error).
fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    s.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 256];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) => {
                return !matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                )
            }
        }
    }
}

fn exact(o: Outcome, want: &[u64]) {
    match o {
        Outcome::Logits(l) => assert_eq!(l, want),
        o => panic!("{o:?}"),
    }
}

#[test]
fn idle_slow_and_garbage_connections_hold_no_slot_and_are_dropped_at_the_handshake_deadline() {
    let model = tiny_model();
    let (addr, server, _, stop, stats) = start_server_with(&model, Reveal::Logits, None, cfg(1));
    // Two idle connections, one trickling a valid hello one byte every 200 ms (it would need
    // ~10 s), one sending a frame header that announces 1 GiB.
    let mut idle: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(addr).unwrap()).collect();
    let mut slow = TcpStream::connect(addr).unwrap();
    let slow_writer = slow.try_clone().unwrap();
    let trickle = thread::spawn(move || {
        let mut w = slow_writer;
        let hello = hello_bytes(handshake::PROTOCOL_VERSION);
        let mut frame = (hello.len() as u32).to_le_bytes().to_vec();
        frame.extend(hello);
        for b in frame {
            if w.write_all(&[b]).is_err() {
                return;
            }
            thread::sleep(Duration::from_millis(200));
        }
    });
    let mut garbage = TcpStream::connect(addr).unwrap();
    garbage.write_all(&(1u32 << 30).to_le_bytes()).unwrap();
    thread::sleep(Duration::from_millis(100));

    // With the only slot free, an honest client is served at once and exactly.
    let t0 = Instant::now();
    exact(good_client(addr, &model, None).unwrap(), &reference(&model));
    assert!(t0.elapsed() < Duration::from_secs(5));

    // The garbage connection is dropped at once, the others at the 1 s handshake deadline.
    assert!(closed_within(&mut garbage, Duration::from_secs(1)));
    for s in idle.iter_mut().chain(std::iter::once(&mut slow)) {
        assert!(closed_within(s, Duration::from_secs(3)));
    }
    trickle.join().unwrap();
    stop.store(true, Ordering::SeqCst);
    server.join().unwrap();
    let st = stats.get();
    assert_eq!(st.handshakes_failed, 4, "{st:?}");
    assert_eq!(st.sessions_ok, 1, "{st:?}");
}

#[test]
fn clients_beyond_the_slots_wait_in_turn_and_are_told_their_position() {
    let model = tiny_model();
    let want = reference(&model);
    let (addr, server, _, stop, stats) = start_server_with(&model, Reveal::Logits, None, cfg(1));
    // The first client holds the only slot for about 1.5 s (until its per-message bound ends it).
    let hold = thread::spawn({
        move || {
            let ch = stalled_session(addr);
            thread::sleep(Duration::from_millis(1500));
            drop(ch);
        }
    });
    thread::sleep(Duration::from_millis(200));
    let positions = Arc::new(Mutex::new(Vec::new()));
    let clients: Vec<_> = (0..3)
        .map(|k| {
            let (model, positions) = (model.clone(), positions.clone());
            thread::sleep(Duration::from_millis(50));
            thread::spawn(move || {
                let mut seen = Vec::new();
                let r = good_client_queued(addr, &model, None, &mut |q| seen.push(q.queued));
                positions.lock().unwrap().push((k, seen));
                r
            })
        })
        .collect();
    for c in clients {
        exact(c.join().unwrap().unwrap(), &want);
    }
    hold.join().unwrap();
    let positions = positions.lock().unwrap();
    // Every waiting client heard its position, and somebody was third in line.
    assert!(
        positions.iter().all(|(_, s)| !s.is_empty()),
        "{positions:?}"
    );
    assert!(
        positions.iter().any(|(_, s)| s.contains(&3)),
        "{positions:?}"
    );
    stop.store(true, Ordering::SeqCst);
    server.join().unwrap();
    let st = stats.get();
    assert_eq!((st.queued, st.sessions_ok), (3, 3), "{st:?}");
}

#[test]
fn a_full_queue_and_a_long_wait_are_refused_as_busy_with_a_retry_hint() {
    let model = tiny_model();
    let config = ServerConfig {
        max_queue: 1,
        queue_wait: Duration::from_millis(1200),
        tcp: TcpConfig {
            timeout: Duration::from_secs(5),
            ..short()
        },
        ..cfg(1)
    };
    let (addr, server, _, stop, stats) = start_server_with(&model, Reveal::Logits, None, config);
    let held = stalled_session(addr);
    // One client waits in the queue; the next finds the queue full.
    let waiting = thread::spawn({
        let model = model.clone();
        move || good_client(addr, &model, None)
    });
    thread::sleep(Duration::from_millis(300));
    let e = good_client(addr, &model, None).unwrap_err();
    match &e {
        EngineError::Busy {
            reason,
            retry_after_s,
        } => {
            assert!(
                reason.contains("1 running, 1 waiting (queue limit 1)"),
                "{e}"
            );
            assert!(*retry_after_s >= 1);
        }
        _ => panic!("{e}"),
    }
    // The waiting client gives up after the queue wait, with the reason.
    let t0 = Instant::now();
    let e = waiting.join().unwrap().unwrap_err();
    assert!(
        matches!(&e, EngineError::Busy { reason, .. } if reason.contains("no session slot freed within 1 s")),
        "{e}"
    );
    assert!(t0.elapsed() < Duration::from_secs(3));
    drop(held);
    assert_eq!(stats.get().refused_busy, 2);
    stop.store(true, Ordering::SeqCst);
    server.join().unwrap();
}

#[test]
fn running_sessions_are_bounded_per_message_and_overall() {
    let model = tiny_model();
    // Per message: a stalled session ends after the 1 s message bound.
    let config = ServerConfig {
        tcp: TcpConfig {
            timeout: Duration::from_secs(1),
            ..short()
        },
        ..cfg(1)
    };
    let (addr, server, _, stop, stats) = start_server_with(&model, Reveal::Logits, None, config);
    let mut ch = stalled_session(addr);
    let t0 = Instant::now();
    // The server's first setup flight (its base OTs' first message) comes, then nothing: the
    // session ends and the connection closes.
    let end = loop {
        if let Err(e) = ch.recv() {
            break e;
        }
    };
    assert!(matches!(end, transport::TransportError::Closed), "{end}");
    let dt = t0.elapsed();
    assert!(
        dt >= Duration::from_millis(800) && dt < Duration::from_secs(3),
        "{dt:?}"
    );
    stop.store(true, Ordering::SeqCst);
    server.join().unwrap();
    assert_eq!(stats.get().sessions_failed, 1);

    // Overall: a client that keeps each message within the bound but never finishes (it sends a
    // frame header, then one byte every 300 ms) is ended by the 1.5 s session bound.
    let config = ServerConfig {
        session_timeout: Duration::from_millis(1500),
        ..cfg(1)
    };
    let (addr, server, _, stop, stats) = start_server_with(&model, Reveal::Logits, None, config);
    let mut s = TcpStream::connect(addr).unwrap();
    let hello = hello_bytes(handshake::PROTOCOL_VERSION);
    s.write_all(&(hello.len() as u32).to_le_bytes()).unwrap();
    s.write_all(&hello).unwrap();
    let t0 = Instant::now();
    // Read the server's hello frame, then trickle a 1000-byte message.
    let mut hdr = [0u8; 4];
    s.read_exact(&mut hdr).unwrap();
    let mut body = vec![0u8; u32::from_le_bytes(hdr) as usize];
    s.read_exact(&mut body).unwrap();
    s.write_all(&1000u32.to_le_bytes()).unwrap();
    let ended = loop {
        thread::sleep(Duration::from_millis(300));
        if s.write_all(&[1]).is_err() || t0.elapsed() > Duration::from_secs(6) {
            break t0.elapsed();
        }
        if stats.get().sessions_failed == 1 {
            break t0.elapsed();
        }
    };
    // The 1.5 s session bound, not the 3 s message bound, ended it.
    assert!(ended < Duration::from_millis(2700), "{ended:?}");
    stop.store(true, Ordering::SeqCst);
    server.join().unwrap();
    assert_eq!(stats.get().sessions_failed, 1);
}

#[test]
fn connections_beyond_the_per_address_and_total_limits_are_refused_with_the_reason() {
    let model = tiny_model();
    let limits = [
        (
            ServerConfig {
                max_per_address: 2,
                ..cfg(4)
            },
            "too many connections from 127.0.0.1 (limit 2)",
        ),
        (
            ServerConfig {
                max_connections: 2,
                ..cfg(4)
            },
            "server at its limit of 2 open connections",
        ),
    ];
    for (k, (config, why)) in limits.into_iter().enumerate() {
        let (addr, server, _, stop, stats) =
            start_server_with(&model, Reveal::Logits, None, config);
        let idle: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(addr).unwrap()).collect();
        thread::sleep(Duration::from_millis(200));
        let e = good_client(addr, &model, None).unwrap_err();
        assert!(
            matches!(&e, EngineError::Busy { reason, retry_after_s: 2 } if reason == why),
            "{e}"
        );
        // Once the idle ones are gone, the client is served.
        drop(idle);
        thread::sleep(Duration::from_millis(300));
        exact(good_client(addr, &model, None).unwrap(), &reference(&model));
        stop.store(true, Ordering::SeqCst);
        server.join().unwrap();
        let st = stats.get();
        assert_eq!(
            (st.refused_address, st.refused_connections),
            [(1, 0), (0, 1)][k]
        );
    }
}
