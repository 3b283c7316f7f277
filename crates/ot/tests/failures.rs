//! A peer that vanishes, stalls, or sends malformed or oversized messages makes the honest side
//! return an error within its timeout: no panic, no hang.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::{rng, run2};
use privinfer_ot::{CotBackend, CotConfig, CotReceiver, CotSender, OtError};
use transport::{Channel, MemoryChannel, TcpChannel, TcpConfig, TransportError};

const SHORT: Duration = Duration::from_millis(300);

fn backends() -> Vec<CotConfig> {
    vec![
        CotConfig {
            backend: CotBackend::Iknp,
        },
        CotConfig {
            backend: CotBackend::Silent,
        },
    ]
}

fn short_memory() -> (MemoryChannel, MemoryChannel) {
    MemoryChannel::pair_with(1 << 20, SHORT)
}

fn short_tcp() -> (TcpChannel, TcpChannel) {
    TcpChannel::loopback_pair(TcpConfig {
        max_message: 1 << 20,
        timeout: SHORT,
        connect_timeout: Duration::from_secs(5),
    })
    .unwrap()
}

fn assert_quick<T>(start: Instant, r: Result<T, OtError>, what: &str) -> OtError {
    let e = match r {
        Ok(_) => panic!("{what}: expected an error"),
        Err(e) => e,
    };
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{what}: took {:?}",
        start.elapsed()
    );
    e
}

#[test]
fn peer_disconnects_after_setup() {
    for cfg in backends() {
        // The receiver sets up and then hangs up: the sender's extension fails.
        let (e, _) = run2(
            short_memory(),
            move |ch| {
                let mut s = CotSender::setup_with(ch, &mut rng(1), cfg).unwrap();
                let t = Instant::now();
                assert_quick(t, s.extend(ch, 1000), "sender after disconnect")
            },
            move |ch| {
                CotReceiver::setup_with(ch, &mut rng(2), cfg).unwrap();
            },
        );
        assert!(
            matches!(e, OtError::Transport(TransportError::Closed)),
            "{e}"
        );
    }
}

#[test]
fn peer_disconnects_mid_protocol_tcp() {
    for cfg in backends() {
        // The sender sets up, then hangs up during a chosen OT: the receiver fails.
        let (_, e) = run2(
            short_tcp(),
            move |ch| {
                let mut s = CotSender::setup_with(ch, &mut rng(1), cfg).unwrap();
                let _ = s.extend(ch, 10);
                ch.shutdown();
            },
            move |ch| {
                let mut r = CotReceiver::setup_with(ch, &mut rng(2), cfg).unwrap();
                let t = Instant::now();
                assert_quick(
                    t,
                    r.recv_chosen(ch, &[true; 10], 8),
                    "receiver after disconnect",
                )
            },
        );
        assert!(matches!(e, OtError::Transport(_)), "{e}");
    }
}

#[test]
fn stalled_peer_times_out() {
    for cfg in backends() {
        let (e, _) = run2(
            short_memory(),
            move |ch| {
                let mut s = CotSender::setup_with(ch, &mut rng(1), cfg).unwrap();
                let t = Instant::now();
                assert_quick(
                    t,
                    s.send_correlated(ch, &[1, 2, 3], 16),
                    "sender with a stalled peer",
                )
            },
            move |ch| {
                let _r = CotReceiver::setup_with(ch, &mut rng(2), cfg).unwrap();
                std::thread::sleep(SHORT * 3);
            },
        );
        assert!(
            matches!(e, OtError::Transport(TransportError::Timeout(_))),
            "{e}"
        );
    }
}

#[test]
fn malformed_setup_messages_are_rejected() {
    // Wrong length for the base-OT sender's point.
    let (mut a, mut b) = short_memory();
    a.send(&[1, 2, 3]).unwrap();
    let e = CotSender::setup(&mut b, &mut rng(1)).unwrap_err();
    assert!(matches!(e, OtError::BadMessage { .. }), "{e}");
    // An invalid point encoding.
    let (mut a, mut b) = short_memory();
    a.send(&[0xee; 32]).unwrap();
    let e = CotSender::setup(&mut b, &mut rng(1)).unwrap_err();
    assert!(matches!(e, OtError::InvalidPoint { .. }), "{e}");
    // The base-OT receiver's reply with a wrong length.
    let (e, _) = run2(
        short_memory(),
        |ch| CotReceiver::setup(ch, &mut rng(1)).err(),
        |ch| {
            let _ = ch.recv();
            ch.send(&[0u8; 31]).unwrap();
        },
    );
    assert!(matches!(e, Some(OtError::BadMessage { .. })), "{e:?}");
}

/// After an honest setup, the peer answers every later message with `bytes`.
fn garbage_after_setup(cfg: CotConfig, bytes: Vec<u8>) -> (OtError, OtError) {
    let b2 = bytes.clone();
    // Honest sender against a receiver that sends garbage.
    let (e_sender, _) = run2(
        short_memory(),
        move |ch| {
            let mut s = CotSender::setup_with(ch, &mut rng(1), cfg).unwrap();
            let t = Instant::now();
            assert_quick(
                t,
                s.send_chosen(ch, &[1; 100], &[2; 100], 8),
                "sender vs garbage",
            )
        },
        move |ch| {
            let _r = CotReceiver::setup_with(ch, &mut rng(2), cfg).unwrap();
            // Queued messages stay readable after the hang-up.
            let _ = ch.send(&b2);
            let _ = ch.send(&b2);
        },
    );
    // Honest receiver against a sender that sends garbage.
    let (_, e_receiver) = run2(
        short_memory(),
        move |ch| {
            let _s = CotSender::setup_with(ch, &mut rng(1), cfg).unwrap();
            let _ = ch.send(&bytes);
            let _ = ch.send(&bytes);
        },
        move |ch| {
            let mut r = CotReceiver::setup_with(ch, &mut rng(2), cfg).unwrap();
            let t = Instant::now();
            assert_quick(t, r.recv_1_of_n(ch, 4, &[3; 100], 4), "receiver vs garbage")
        },
    );
    (e_sender, e_receiver)
}

#[test]
fn malformed_extension_messages_are_rejected() {
    for cfg in backends() {
        for len in [0usize, 1, 17, 4095, 100_000] {
            let (a, b) = garbage_after_setup(cfg, vec![0xa5; len]);
            assert!(
                matches!(a, OtError::BadMessage { .. }),
                "{cfg:?} len {len}: {a}"
            );
            assert!(
                matches!(b, OtError::BadMessage { .. }),
                "{cfg:?} len {len}: {b}"
            );
        }
    }
}

#[test]
fn oversized_message_is_refused() {
    // A raw peer claims a 100 MiB frame; the channel limit (1 MiB) refuses it before allocating.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let h = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.write_all(&(100u32 << 20).to_le_bytes()).unwrap();
        s.write_all(&[0u8; 64]).unwrap();
        std::thread::sleep(SHORT * 2);
    });
    let cfg = TcpConfig {
        max_message: 1 << 20,
        timeout: SHORT,
        connect_timeout: Duration::from_secs(5),
    };
    let mut ch = TcpChannel::connect(addr, cfg).unwrap();
    let t = Instant::now();
    let e = assert_quick(
        t,
        CotSender::setup(&mut ch, &mut rng(1)).map(|_| ()),
        "oversized",
    );
    assert!(
        matches!(e, OtError::Transport(TransportError::TooLarge { .. })),
        "{e}"
    );
    h.join().unwrap();
}
