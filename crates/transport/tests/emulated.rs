//! The emulated link: arrival-time arithmetic on a fake clock (exact), and one real-time check with
//! generous bounds.

use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use privinfer_transport::{
    emulate, emulate_with, Channel, Clock, Direction, LinkSpec, MemoryChannel, NetworkModel,
    TcpChannel, TcpConfig, TransportError,
};

/// A clock that only moves when told to: `sleep_until` jumps to the requested time (and records
/// it), so arrival times can be read off exactly in one thread.
#[derive(Default)]
struct FakeClock {
    now: Mutex<Duration>,
    sleeps: Mutex<Vec<Duration>>,
}

impl FakeClock {
    fn set(&self, t: Duration) {
        *self.now.lock().unwrap() = t;
    }
    fn get(&self) -> Duration {
        *self.now.lock().unwrap()
    }
}

impl Clock for FakeClock {
    fn now(&self) -> Duration {
        self.get()
    }
    fn sleep_until(&self, t: Duration) {
        self.sleeps.lock().unwrap().push(t);
        let mut now = self.now.lock().unwrap();
        *now = (*now).max(t);
    }
}

const MS: Duration = Duration::from_millis(1);
const US: Duration = Duration::from_micros(1);

/// 8 Mbit/s: one byte per µs, so serialization times are whole microseconds.
fn spec(latency: Duration) -> LinkSpec {
    LinkSpec {
        bandwidth_bps: 8_000_000,
        latency,
    }
}

#[test]
fn serialization_is_exact_and_rounds_up() {
    let s = spec(Duration::ZERO);
    assert_eq!(s.serialization(0), Duration::ZERO);
    assert_eq!(s.serialization(1), US);
    assert_eq!(s.serialization(1_000_000), Duration::from_secs(1));
    // 3 bytes at 7 bit/s: 24/7 s = 3.428571428571… s, rounded up to the next nanosecond.
    let odd = LinkSpec {
        bandwidth_bps: 7,
        latency: Duration::ZERO,
    };
    assert_eq!(odd.serialization(3), Duration::from_nanos(3_428_571_429));
    // The presets: 1 MB on WAN (400 Mbit/s) is 20 ms, on LAN (3 Gbit/s) 2.666… ms.
    let wan = LinkSpec::from_model(&NetworkModel::WAN);
    assert_eq!(wan.latency, 20 * MS);
    assert_eq!(wan.serialization(1_000_000), 20 * MS);
    let lan = LinkSpec::from_model(&NetworkModel::LAN);
    assert_eq!(lan.latency, Duration::from_micros(150));
    assert_eq!(
        lan.serialization(1_000_000),
        Duration::from_nanos(2_666_667)
    );
}

#[test]
fn direction_single_message() {
    let mut d = Direction::new(spec(10 * MS));
    // Sent at 5 ms, 1000 bytes: on the wire 5..6 ms, readable at 16 ms.
    assert_eq!(d.send(5 * MS, 1000), 16 * MS);
    assert_eq!(d.free_at(), 6 * MS);
    assert_eq!(d.recv(), Some(16 * MS));
    assert_eq!(d.recv(), None);
}

#[test]
fn direction_back_to_back_messages_queue() {
    let mut d = Direction::new(spec(10 * MS));
    // Three messages at t = 0: serialized one after the other (0..2, 2..3, 3..7 ms).
    assert_eq!(d.send(Duration::ZERO, 2000), 12 * MS);
    assert_eq!(d.send(Duration::ZERO, 1000), 13 * MS);
    assert_eq!(d.send(Duration::from_micros(500), 4000), 17 * MS);
    assert_eq!(d.free_at(), 7 * MS);
    // A message after the link went idle starts at its own send time.
    assert_eq!(d.send(20 * MS, 1000), 31 * MS);
    // Arrivals come out in send order.
    let got: Vec<_> = std::iter::from_fn(|| d.recv()).collect();
    assert_eq!(got, vec![12 * MS, 13 * MS, 17 * MS, 31 * MS]);
}

#[test]
fn direction_zero_size_message_costs_latency_only() {
    let mut d = Direction::new(spec(10 * MS));
    assert_eq!(d.send(3 * MS, 0), 13 * MS);
    assert_eq!(d.free_at(), 3 * MS);
    // ... but still waits behind a message being serialized.
    d.send(3 * MS, 5000);
    assert_eq!(d.send(4 * MS, 0), 18 * MS);
}

#[test]
fn channel_delivers_at_arrival_time_on_fake_clock() {
    let clock = Arc::new(FakeClock::default());
    let (m0, m1) = MemoryChannel::pair();
    let (mut a, mut b) = emulate_with(m0, m1, spec(10 * MS), spec(10 * MS), clock.clone());
    a.send(&[1u8; 1000]).unwrap();
    a.flush().unwrap();
    assert_eq!(b.recv().unwrap(), vec![1u8; 1000]);
    assert_eq!(clock.get(), 11 * MS);
    // Received late: no extra wait.
    a.send(&[2u8; 1000]).unwrap(); // sent at 11 ms, readable at 22 ms
    clock.set(30 * MS);
    b.recv().unwrap();
    assert_eq!(clock.get(), 30 * MS);
    assert_eq!(*clock.sleeps.lock().unwrap(), vec![11 * MS, 22 * MS]);
}

#[test]
fn channel_back_to_back_and_zero_size_on_fake_clock() {
    let clock = Arc::new(FakeClock::default());
    let (m0, m1) = MemoryChannel::pair();
    let (mut a, mut b) = emulate_with(m0, m1, spec(10 * MS), spec(10 * MS), clock.clone());
    a.send(&[0u8; 3000]).unwrap();
    a.send(&[]).unwrap();
    a.send(&[0u8; 2000]).unwrap();
    assert_eq!(b.recv().unwrap().len(), 3000);
    assert_eq!(clock.get(), 13 * MS);
    assert_eq!(b.recv().unwrap().len(), 0);
    assert_eq!(clock.get(), 13 * MS);
    assert_eq!(b.recv().unwrap().len(), 2000);
    assert_eq!(clock.get(), 15 * MS);
}

#[test]
fn channel_directions_are_independent() {
    let clock = Arc::new(FakeClock::default());
    let (m0, m1) = MemoryChannel::pair();
    // A→B: 1 byte/µs, 10 ms; B→A: 0.5 byte/µs (4 Mbit/s), 1 ms.
    let b_to_a = LinkSpec {
        bandwidth_bps: 4_000_000,
        latency: MS,
    };
    let (mut a, mut b) = emulate_with(m0, m1, spec(10 * MS), b_to_a, clock.clone());
    // Both send 4000 bytes at t = 0: A→B busy 0..4 ms, B→A busy 0..8 ms; neither waits for the other.
    a.send(&[0u8; 4000]).unwrap();
    b.send(&[0u8; 4000]).unwrap();
    assert_eq!(a.send_free_at(), 4 * MS);
    assert_eq!(b.send_free_at(), 8 * MS);
    assert_eq!(a.recv().unwrap().len(), 4000);
    assert_eq!(clock.get(), 9 * MS);
    assert_eq!(b.recv().unwrap().len(), 4000);
    assert_eq!(clock.get(), 14 * MS);
}

#[test]
fn stats_are_the_inner_channels() {
    let clock = Arc::new(FakeClock::default());
    let (m0, m1) = MemoryChannel::pair();
    let (mut a, mut b) = emulate_with(m0, m1, spec(MS), spec(MS), clock);
    a.send(b"hello").unwrap();
    b.recv().unwrap();
    b.send_u64s(&[1, 2, 3]).unwrap();
    assert_eq!(a.recv_u64s(3).unwrap(), vec![1, 2, 3]);
    let (sa, sb) = (a.stats(), b.stats());
    assert_eq!(sa, a.get_ref().stats());
    assert_eq!(sb, b.get_ref().stats());
    assert_eq!((sa.bytes_sent, sa.bytes_received, sa.flights), (5, 24, 2));
    assert_eq!((sb.bytes_sent, sb.bytes_received, sb.rounds()), (24, 5, 1));
}

#[test]
fn refused_send_does_not_occupy_the_link() {
    let clock = Arc::new(FakeClock::default());
    let (m0, m1) = MemoryChannel::pair_with(100, Duration::from_secs(5));
    let (mut a, mut b) = emulate_with(m0, m1, spec(MS), spec(MS), clock.clone());
    assert!(matches!(
        a.send(&[0u8; 101]),
        Err(TransportError::TooLarge { len: 101, max: 100 })
    ));
    assert_eq!(a.send_free_at(), Duration::ZERO);
    a.send(&[0u8; 100]).unwrap();
    b.recv().unwrap();
    assert_eq!(clock.get(), MS + 100 * US);
}

#[test]
fn parse_networks() {
    assert_eq!(NetworkModel::parse("wan").unwrap(), NetworkModel::WAN);
    assert_eq!(NetworkModel::parse("LAN").unwrap(), NetworkModel::LAN);
    let n = NetworkModel::parse("100:20").unwrap();
    assert_eq!((n.bandwidth_bps, n.rtt), (100e6, 20 * MS));
    for bad in [
        "", "fast", "100", "0:10", "-5:10", "100:-1", "x:1", "100:nan", "inf:1",
    ] {
        assert!(
            matches!(
                NetworkModel::parse(bad),
                Err(TransportError::InvalidNetwork { .. })
            ),
            "{bad:?} accepted"
        );
    }
}

/// 1 MB at 80 Mbit/s is 100 ms of serialization plus 5 ms one way; the echo of 1 byte comes back
/// after 5 ms more. Lower bounds are exact (sleeps never end early); the upper bound is generous.
fn real_time_roundtrip<A: Channel + Send + 'static, B: Channel + Send + 'static>(a: A, b: B) {
    let net = NetworkModel::custom(80.0, 10.0).unwrap();
    let (mut a, mut b) = emulate(a, b, &net);
    let h = thread::spawn(move || {
        let m = b.recv().unwrap();
        b.send(&m[..1]).unwrap();
        b.flush().unwrap();
        m.len()
    });
    let t = Instant::now();
    a.send(&vec![7u8; 1_000_000]).unwrap();
    a.flush().unwrap();
    assert_eq!(a.recv().unwrap(), vec![7u8]);
    let el = t.elapsed();
    assert_eq!(h.join().unwrap(), 1_000_000);
    assert!(el >= Duration::from_millis(110), "{el:?}");
    assert!(el < Duration::from_secs(10), "{el:?}");
    assert_eq!(a.stats().bytes_sent, 1_000_000);
    assert_eq!(a.stats().bytes_received, 1);
}

#[test]
fn real_time_memory() {
    let (a, b) = MemoryChannel::pair();
    real_time_roundtrip(a, b);
}

#[test]
fn real_time_tcp_loopback() {
    let (a, b) = TcpChannel::loopback_pair(TcpConfig::default()).unwrap();
    real_time_roundtrip(a, b);
}
