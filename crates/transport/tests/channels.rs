use std::thread;
use std::time::{Duration, Instant};

use privinfer_transport::{
    Channel, MemoryChannel, NetworkModel, TcpChannel, TcpConfig, TransportError,
};

/// Ping-pong of three messages; both ends count the same bytes and rounds.
fn exchange<C: Channel + Send + 'static>(mut a: C, mut b: C) {
    let h = thread::spawn(move || {
        let m = b.recv().unwrap();
        assert_eq!(m, b"hello");
        b.send_u64s(&[1, 2, u64::MAX]).unwrap();
        b.flush().unwrap();
        let big = b.recv().unwrap();
        assert_eq!(big.len(), 100_000);
        b.stats()
    });
    a.send(b"hello").unwrap();
    a.flush().unwrap();
    assert_eq!(a.recv_u64s(3).unwrap(), vec![1, 2, u64::MAX]);
    a.send(&vec![7u8; 100_000]).unwrap();
    a.flush().unwrap();
    let sb = h.join().unwrap();
    let sa = a.stats();
    assert_eq!(sa.bytes_sent, 5 + 100_000);
    assert_eq!(sa.bytes_received, 24);
    assert_eq!(sa.bytes_sent, sb.bytes_received);
    assert_eq!(sa.bytes_received, sb.bytes_sent);
    assert_eq!(sa.flights, 3);
    assert_eq!(sa.rounds(), 2);
    assert_eq!(sb.rounds(), 2);
}

#[test]
fn memory_exchange() {
    let (a, b) = MemoryChannel::pair();
    exchange(a, b);
}

#[test]
fn tcp_exchange() {
    let (a, b) = TcpChannel::loopback_pair(TcpConfig::default()).unwrap();
    exchange(a, b);
}

/// Both ends send before receiving (a simultaneous exchange), with messages far larger than
/// the socket buffers, several times: no deadlock, every byte delivered in order.
fn simultaneous<C: Channel + Send + 'static>(mut a: C, mut b: C) {
    let sizes = [3usize, 9 << 20, 100, 20_000, 5 << 20];
    let msg = |who: u8, i: usize, n: usize| -> Vec<u8> {
        (0..n)
            .map(|j| (j as u8) ^ who ^ (i as u8).wrapping_mul(31))
            .collect()
    };
    let h = thread::spawn(move || {
        for (i, &n) in sizes.iter().enumerate() {
            b.send(&msg(1, i, sizes[sizes.len() - 1 - i])).unwrap();
            assert_eq!(b.recv().unwrap(), msg(0, i, n));
        }
        b.stats()
    });
    for (i, &n) in sizes.iter().enumerate() {
        a.send(&msg(0, i, n)).unwrap();
        assert_eq!(a.recv().unwrap(), msg(1, i, sizes[sizes.len() - 1 - i]));
    }
    let sb = h.join().unwrap();
    let total: u64 = sizes.iter().map(|&n| n as u64).sum();
    assert_eq!(a.stats().bytes_sent, total);
    assert_eq!(sb.bytes_received, total);
}

#[test]
fn memory_simultaneous_exchange() {
    let (a, b) = MemoryChannel::pair();
    simultaneous(a, b);
}

#[test]
fn tcp_simultaneous_exchange() {
    let (a, b) = TcpChannel::loopback_pair(TcpConfig::default()).unwrap();
    simultaneous(a, b);
}

#[test]
fn tcp_delivers_what_is_queued_when_dropped() {
    let (mut a, mut b) = TcpChannel::loopback_pair(TcpConfig::default()).unwrap();
    let h = thread::spawn(move || b.recv().unwrap());
    a.send(&[5u8; 70_000]).unwrap();
    drop(a);
    assert_eq!(h.join().unwrap(), vec![5u8; 70_000]);
}

#[test]
fn wrong_length_is_an_error() {
    let (mut a, mut b) = MemoryChannel::pair();
    a.send(&[0u8; 15]).unwrap();
    assert!(matches!(
        b.recv_u64s(2),
        Err(TransportError::UnexpectedLength {
            expected: 16,
            got: 15
        })
    ));
}

#[test]
fn closed_peer_is_an_error() {
    let (a, mut b) = MemoryChannel::pair();
    drop(a);
    assert!(matches!(b.recv(), Err(TransportError::Closed)));
    assert!(matches!(b.send(b"x"), Err(TransportError::Closed)));

    let (a, mut b) = TcpChannel::loopback_pair(TcpConfig::default()).unwrap();
    drop(a);
    assert!(matches!(b.recv(), Err(TransportError::Closed)));
}

#[test]
fn silent_peer_times_out() {
    let cfg = TcpConfig {
        timeout: Duration::from_millis(200),
        ..TcpConfig::default()
    };
    let (_a, mut b) = TcpChannel::loopback_pair(cfg).unwrap();
    let t = Instant::now();
    assert!(matches!(b.recv(), Err(TransportError::Timeout(_))));
    assert!(t.elapsed() < Duration::from_secs(5));

    let (_a, mut b) = MemoryChannel::pair_with(1 << 20, Duration::from_millis(100));
    assert!(matches!(b.recv(), Err(TransportError::Timeout(_))));
}

#[test]
fn oversized_message_is_refused_on_both_sides() {
    let cfg = TcpConfig {
        max_message: 1000,
        ..TcpConfig::default()
    };
    let (mut a, mut b) = TcpChannel::loopback_pair(cfg).unwrap();
    assert!(matches!(
        a.send(&[0u8; 1001]),
        Err(TransportError::TooLarge {
            len: 1001,
            max: 1000
        })
    ));

    // A peer that lies in the header (claims 4 GiB) is refused before any allocation.
    let raw_cfg = TcpConfig::default();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let h = thread::spawn(move || {
        use std::io::Write;
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.write_all(&u32::MAX.to_le_bytes()).unwrap();
        s.write_all(&[1, 2, 3]).unwrap();
        thread::sleep(Duration::from_millis(100));
    });
    let (s, _) = listener.accept().unwrap();
    let mut victim = TcpChannel::from_stream(
        s,
        TcpConfig {
            max_message: 1 << 20,
            ..raw_cfg
        },
    )
    .unwrap();
    assert!(matches!(
        victim.recv(),
        Err(TransportError::TooLarge { .. })
    ));
    h.join().unwrap();

    // A truncated frame (header says 10 bytes, peer sends 3 and closes) is `Closed`.
    let h = thread::spawn(move || {
        let _ = b.send(&[0u8; 3]);
    });
    h.join().unwrap();
    assert_eq!(a.recv().unwrap().len(), 3);
}

#[test]
fn estimates_follow_the_formula() {
    let e = NetworkModel::WAN.estimate(Duration::from_secs(1), 50_000_000, 10);
    // 1 s + 4e8 bits / 4e8 bps + 10 × 40 ms
    assert!((e.seconds - 2.4).abs() < 1e-9);
    let l = NetworkModel::LAN.estimate(Duration::ZERO, 0, 100);
    assert!((l.seconds - 0.03).abs() < 1e-9);
}

/// A peer that sends one byte every `gap`, forever (until the socket breaks).
fn trickle(mut s: std::net::TcpStream, gap: Duration) {
    use std::io::Write;
    // A frame header announcing 1000 bytes, then the payload one byte at a time.
    let _ = s.write_all(&1000u32.to_le_bytes());
    while s.write_all(&[7u8]).is_ok() {
        thread::sleep(gap);
    }
}

fn trickled_channel(cfg: TcpConfig) -> TcpChannel {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        let (s, _) = listener.accept().unwrap();
        trickle(s, Duration::from_millis(50));
    });
    TcpChannel::connect(addr, cfg).unwrap()
}

#[test]
fn trickling_peer_hits_the_per_message_bound() {
    // Every read gets a byte well within 400 ms, but the whole message may not take longer.
    let cfg = TcpConfig {
        timeout: Duration::from_millis(400),
        ..TcpConfig::default()
    };
    let mut ch = trickled_channel(cfg);
    let t0 = Instant::now();
    let e = ch.recv().unwrap_err();
    let dt = t0.elapsed();
    assert!(matches!(e, TransportError::Timeout(_)), "{e}");
    assert!(
        dt >= Duration::from_millis(380) && dt < Duration::from_secs(3),
        "{dt:?}"
    );
}

#[test]
fn overall_deadline_ends_a_session_whatever_the_message_bound() {
    let cfg = TcpConfig {
        timeout: Duration::from_secs(30),
        ..TcpConfig::default()
    };
    let mut ch = trickled_channel(cfg);
    ch.set_deadline(Some(Duration::from_millis(300)));
    let t0 = Instant::now();
    let e = ch.recv().unwrap_err();
    let dt = t0.elapsed();
    assert!(matches!(e, TransportError::Deadline(_)), "{e}");
    assert!(e.to_string().contains("overall deadline"), "{e}");
    assert!(
        dt >= Duration::from_millis(280) && dt < Duration::from_secs(3),
        "{dt:?}"
    );
    // Once passed, every operation fails at once.
    assert!(matches!(ch.recv(), Err(TransportError::Deadline(_))));
    // Cleared, the channel reads again (the trickle goes on).
    ch.set_deadline(None);
    ch.set_timeout(Duration::from_millis(100));
    assert!(matches!(ch.recv(), Err(TransportError::Timeout(_))));
}

#[test]
fn a_peer_that_never_reads_cannot_block_a_sender_past_the_bound() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let h = thread::spawn(move || {
        let (s, _) = listener.accept().unwrap();
        thread::sleep(Duration::from_secs(4));
        drop(s);
    });
    let cfg = TcpConfig {
        timeout: Duration::from_millis(300),
        max_message: 1 << 30,
        ..TcpConfig::default()
    };
    let mut ch = TcpChannel::connect(addr, cfg).unwrap();
    let big = vec![0u8; 64 << 20];
    let t0 = Instant::now();
    let e = ch.send(&big).and_then(|()| ch.flush()).unwrap_err();
    assert!(matches!(e, TransportError::Timeout(_)), "{e}");
    assert!(t0.elapsed() < Duration::from_secs(3));
    h.join().unwrap();
}
