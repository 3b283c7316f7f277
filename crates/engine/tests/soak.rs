//! A short soak on loopback (its own test binary, so thread and descriptor counts are this test's
//! alone): honest clients started together while idle, slow and garbage connections keep being
//! opened from other addresses and some clients vanish mid-session. Every honest client gets the
//! exact reference output with no retry, and the process returns to its idle thread and
//! descriptor counts. The long version is `privinfer bench serve` (BENCHMARKS.md § Serving).

use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant};

use privinfer_engine::handshake::Reveal;
use privinfer_engine::soak::{self, Abuse, AbuseLoad, CutAfter};
use privinfer_engine::{Outcome, ServerConfig};

mod common;
use common::{input, reference, short, start_server_with, tiny_model};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn honest_clients_are_all_served_exactly_under_abuse_and_nothing_leaks() {
    let pid = std::process::id();
    // rayon's pool (the protocols' data-parallel workers) lives as long as the process: count
    // from after it exists, so the check below is about sessions and sockets.
    rayon::broadcast(|_| ());
    let (threads0, fds0) = soak::process_counts(pid).unwrap();
    let model = tiny_model();
    let want = reference(&model);
    let config = ServerConfig {
        max_sessions: 2,
        handshake_timeout: Duration::from_secs(1),
        queue_heartbeat: Duration::from_millis(500),
        tcp: short(),
        ..ServerConfig::default()
    };
    let (addr, server, _, stop, stats) = start_server_with(&model, Reveal::Logits, None, config);
    let limit = Duration::from_secs(60);
    let abuse = [
        AbuseLoad::start(addr, ip("127.0.0.2"), Abuse::Idle, 3, limit),
        AbuseLoad::start(addr, ip("127.0.0.3"), Abuse::Slow, 3, limit),
        AbuseLoad::start(addr, ip("127.0.0.4"), Abuse::Garbage, 3, limit),
    ];
    thread::sleep(Duration::from_millis(300));
    let t0 = Instant::now();
    // Two clients that vanish after a few messages of their session.
    let killed: Vec<_> = (0..2)
        .map(|k| {
            let model = model.clone();
            thread::spawn(move || {
                let ch = soak::channel_from(ip(&format!("127.0.2.{k}")), addr, short()).unwrap();
                let mut ch = CutAfter::new(ch, 4 + 3 * k);
                soak::infer_input(&mut ch, &input(&model)).is_err()
            })
        })
        .collect();
    let honest: Vec<_> = (0..6)
        .map(|k| {
            let model = model.clone();
            thread::spawn(move || {
                let mut ch =
                    soak::channel_from(ip(&format!("127.0.1.{k}")), addr, short()).unwrap();
                soak::infer_input(&mut ch, &input(&model)).map(|(inf, _)| inf)
            })
        })
        .collect();
    for h in honest {
        match h.join().unwrap() {
            Ok(inf) => assert_eq!(inf.outcome, Outcome::Logits(want.clone())),
            Err(e) => panic!("an honest client was not served: {e}"),
        }
    }
    for k in killed {
        assert!(k.join().unwrap(), "a cut client cannot finish");
    }
    let served_in = t0.elapsed();
    let opened: Vec<u64> = abuse.into_iter().map(AbuseLoad::stop).collect();
    stop.store(true, Ordering::SeqCst);
    server.join().unwrap();
    let st = stats.get();
    assert_eq!(st.sessions_ok, 6, "{st:?}");
    assert_eq!(st.sessions_failed, 2, "{st:?}");
    assert_eq!(st.refused_busy, 0, "{st:?}");
    assert!(opened.iter().all(|&n| n >= 3), "{opened:?}");
    assert!(st.handshakes_failed >= 9, "{st:?}");
    assert!(served_in < Duration::from_secs(60), "{served_in:?}");
    // Threads and descriptors back to where they were (give closing sockets a moment).
    let mut now = soak::process_counts(pid).unwrap();
    for _ in 0..20 {
        if now == (threads0, fds0) {
            break;
        }
        thread::sleep(Duration::from_millis(100));
        now = soak::process_counts(pid).unwrap();
    }
    assert_eq!(
        now,
        (threads0, fds0),
        "threads and fds before: {:?}",
        (threads0, fds0)
    );
}
