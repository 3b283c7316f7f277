#![allow(clippy::needless_range_loop)]
//! A peer that disconnects, stays silent, or sends malformed or oversized messages makes the
//! other side return an error within its timeout: no panic, no hang. Also: the protocols over
//! TCP loopback.

mod common;
use privinfer_mpc as mpc;

use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use common::*;
use mpc::{plain, MpcError, Party, Ring, Session, Shares};
use transport::{Channel, MemoryChannel, TcpChannel, TcpConfig, TransportError};

fn setup_pair<C: Channel + Send + 'static>(c0: C, c1: C) -> ((Session, C), (Session, C)) {
    let h = std::thread::spawn(move || {
        let mut c1 = c1;
        let s = Session::setup_with(&mut c1, Party::P1, &mut rng(9), test_config()).unwrap();
        (s, c1)
    });
    let mut c0 = c0;
    let s0 = Session::setup_with(&mut c0, Party::P0, &mut rng(10), test_config()).unwrap();
    ((s0, c0), h.join().unwrap())
}

fn input(ring: Ring, n: usize) -> Shares {
    Shares::new(
        ring,
        12,
        (0..n as u64)
            .map(|i| ring.reduce(i.wrapping_mul(0x9e37_79b9_7f4a_7c15)))
            .collect(),
    )
    .unwrap()
}

#[test]
fn peer_disconnect_is_an_error() {
    let ring = Ring::new(37).unwrap();
    for step in 0..3 {
        let (c0, c1) = MemoryChannel::pair_with(1 << 24, Duration::from_secs(5));
        let ((mut s0, mut c0), (mut s1, mut c1)) = setup_pair(c0, c1);
        let h = std::thread::spawn(move || {
            // P1 runs part of a ReLU and vanishes.
            match step {
                0 => {}
                1 => {
                    let _ = s1.drelu(&mut c1, ring, &input(ring, 64).data);
                }
                _ => {
                    let _ = c1.recv();
                }
            }
            drop(c1);
        });
        let t = Instant::now();
        let r = s0.relu(&mut c0, &input(ring, 64));
        assert!(r.is_err(), "step {step}");
        assert!(
            t.elapsed() < Duration::from_secs(7),
            "error only after the 5 s timeout"
        );
        h.join().unwrap();
        let _ = &mut s0;
    }
}

#[test]
fn silent_peer_times_out() {
    let ring = Ring::new(37).unwrap();
    let (c0, c1) = MemoryChannel::pair_with(1 << 24, Duration::from_secs(3));
    let ((mut s0, mut c0), (_s1, c1)) = setup_pair(c0, c1);
    let t = Instant::now();
    let r = s0.trunc(&mut c0, &input(ring, 16), 12);
    assert!(
        matches!(
            r,
            Err(MpcError::Transport(TransportError::Timeout(_))) | Err(MpcError::Ot(_))
        ),
        "{r:?}"
    );
    assert!(t.elapsed() < Duration::from_secs(6));
    drop(c1);
}

#[test]
fn garbage_from_peer_is_an_error() {
    let ring = Ring::new(41).unwrap();
    for garbage in [vec![], vec![0xffu8; 3], vec![7u8; 100_000]] {
        let (c0, c1) = MemoryChannel::pair_with(1 << 24, Duration::from_secs(2));
        let ((mut s0, mut c0), (_s1, mut c1)) = setup_pair(c0, c1);
        let h = std::thread::spawn(move || {
            // Answer every message with garbage until the other side gives up.
            while c1.recv().is_ok() {
                if c1.send(&garbage).is_err() {
                    break;
                }
                let _ = c1.flush();
            }
        });
        let r = s0.relu(&mut c0, &input(ring, 32));
        assert!(r.is_err());
        drop(c0);
        h.join().unwrap();
    }
}

#[test]
fn oversized_message_is_refused() {
    let ring = Ring::new(37).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // P0 accepts at most 800 kB per message: enough for OT setup and refills.
    let small = TcpConfig {
        max_message: 800_000,
        timeout: Duration::from_secs(5),
        ..TcpConfig::default()
    };
    let big = TcpConfig {
        timeout: Duration::from_secs(5),
        ..TcpConfig::default()
    };
    let h = std::thread::spawn(move || {
        let mut c1 = TcpChannel::from_stream(TcpStream::connect(addr).unwrap(), big).unwrap();
        let _s1 = Session::setup_with(&mut c1, Party::P1, &mut rng(1), test_config()).unwrap();
        // Instead of its next protocol message, send 2 MB.
        let _ = c1.send(&vec![0u8; 2 << 20]);
        let _ = c1.flush();
        let _ = c1.recv();
    });
    let mut c0 = TcpChannel::from_stream(listener.accept().unwrap().0, small).unwrap();
    let mut s0 = Session::setup_with(&mut c0, Party::P0, &mut rng(2), test_config()).unwrap();
    // A small ReLU: its COTs come from the OT buffers, so P0 first waits for leaf choices.
    let r = s0.relu(&mut c0, &input(ring, 16));
    let too_large = |e: &MpcError| {
        matches!(
            e,
            MpcError::Transport(TransportError::TooLarge { .. })
                | MpcError::Ot(ot::OtError::Transport(TransportError::TooLarge { .. }))
        )
    };
    assert!(r.as_ref().is_err_and(too_large), "{r:?}");
    c0.shutdown();
    h.join().unwrap();
}

#[test]
fn protocols_over_tcp_loopback() {
    // Every protocol once over TCP (silent OT), on edge and random values.
    let ring = Ring::new(41).unwrap();
    let mut r = rng(11);
    let vals: Vec<u64> = into_known_sign_range(ring, edge_values(ring, 12, 300, &mut r));
    let (xs, s0, s1) = sharings(ring, &vals, &mut r);
    let n = xs.len();
    let p = mpc::FieldModulus::new((1 << 61) - 1).unwrap();
    let (c0, c1) = TcpChannel::loopback_pair(TcpConfig::default()).unwrap();
    let (o0, o1) = run_with(c0, c1, 12, silent_config(), move |party, sess, ch| {
        let x = Shares::new(
            ring,
            12,
            if party == Party::P0 {
                s0.clone()
            } else {
                s1.clone()
            },
        )
        .unwrap();
        let d = sess.drelu(ch, ring, &x.data).unwrap();
        let mut out = vec![
            sess.relu(ch, &x).unwrap().data,
            sess.relu6(ch, &x).unwrap().data,
            sess.trunc(ch, &x, 12).unwrap().data,
            sess.trunc_known_sign(ch, &x, 12).unwrap().data,
            sess.trunc_relu(ch, &x, 12).unwrap().data,
            sess.mux(ch, ring, &d, &x.data).unwrap(),
            sess.b2a(ch, ring, &d).unwrap(),
            sess.mul(ch, &x, &x).unwrap().data,
            sess.maxpool(
                ch,
                &x,
                mpc::PoolShape {
                    channels: 1,
                    height: 1,
                    width: n,
                },
                mpc::PoolSpec {
                    kernel: (1, 4),
                    stride: (1, 4),
                    pads: (0, 0, 0, 0),
                },
            )
            .unwrap()
            .data,
        ];
        let (idx, _) = sess.argmax(ch, &x, 4).unwrap();
        out.push(idx);
        let f = sess.ring_to_field(ch, ring, &x.data, p).unwrap();
        out.push(sess.field_to_ring(ch, p, &f, ring).unwrap());
        (out, d)
    });
    let add = |k: usize, i: usize| ring.add(o0.0[k][i], o1.0[k][i]);
    for i in 0..n {
        let x = xs[i];
        assert_eq!(o0.1[i] ^ o1.1[i], plain::drelu(ring, x));
        assert_eq!(add(0, i), plain::relu(ring, x));
        assert_eq!(add(1, i), plain::relu6(ring, x, 12));
        assert_eq!(add(2, i), plain::trunc(ring, x, 12));
        assert_eq!(add(3, i), plain::trunc(ring, x, 12));
        assert_eq!(add(4, i), plain::relu(ring, plain::trunc(ring, x, 12)));
        assert_eq!(add(5, i), plain::mux(ring, plain::drelu(ring, x), x));
        assert_eq!(add(6, i), plain::drelu(ring, x) as u64);
        assert_eq!(add(7, i), ring.mul(x, x));
        assert_eq!(add(10, i), x, "Z_2^l -> Z_p -> Z_2^l round trip");
    }
    for (j, w) in xs.chunks(4).enumerate() {
        if w.len() == 4 {
            assert_eq!(add(8, j), plain::max(ring, w));
        }
    }
    for (j, row) in xs.chunks(n / 4).enumerate() {
        assert_eq!(add(9, j), plain::argmax(ring, row) as u64);
    }
}
