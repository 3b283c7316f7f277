//! A link emulator around any pair of connected channels: per direction a bandwidth and a one-way
//! latency, so that wall time measured over it is the time on that network, not a model of it.
//!
//! Timing rule, per direction, with one clock shared by both ends: a message of `b` payload bytes
//! sent at time `t` starts serializing at `s = max(t, free)`, where `free` is when the link finished
//! the previous message in that direction; the link is then busy until `free' = s + 8b / bandwidth`,
//! and the peer cannot read the message before `free' + latency`. Back-to-back messages therefore
//! queue behind each other, and the two directions are independent (full duplex).
//!
//! Design: the two ends are wrapped together ([`emulate`]) and share one [`LinkState`] behind a
//! mutex. The sender computes the arrival time and appends it to its direction's FIFO before handing
//! the message to the inner channel; the receiver takes the message from the inner channel, pops the
//! matching arrival time (channels are FIFO, so the order agrees) and sleeps until it. Nothing is
//! added to the bytes on the inner channel, so `stats()` is exactly the inner channel's but for
//! `hops`, which the link keeps beside the arrival times (exact over any inner channel). The shared
//! clock is a [`Clock`]: [`RealClock`] (a monotonic `Instant` taken when the link is created) for
//! benchmarks, or any test clock. Both ends must live in one process (in-process `MemoryChannel`
//! pairs, or `TcpChannel::loopback_pair`); two processes would need a clock they agree on, which
//! this wrapper does not attempt.
//!
//! Only payload bytes are timed (the 4-byte TCP length prefix and TCP/IP headers are not), matching
//! `Stats` and the cost model. The receive side adds no processing time of its own.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::{Channel, NetworkModel, Result, Stats};

/// One direction of a link: its bandwidth and one-way latency.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkSpec {
    /// Bits per second; must be positive.
    pub bandwidth_bps: u64,
    /// One-way propagation delay.
    pub latency: Duration,
}

impl LinkSpec {
    /// One direction of a symmetric network: its bandwidth and half its round-trip time.
    pub fn from_model(net: &NetworkModel) -> LinkSpec {
        LinkSpec {
            bandwidth_bps: net.bandwidth_bps.round().max(1.0) as u64,
            latency: net.rtt / 2,
        }
    }

    /// Time to put `bytes` on the wire: ⌈8·bytes·10⁹ / bandwidth⌉ ns (exact integer arithmetic).
    pub fn serialization(&self, bytes: u64) -> Duration {
        let bps = u128::from(self.bandwidth_bps.max(1));
        let ns = (u128::from(bytes) * 8 * 1_000_000_000).div_ceil(bps);
        Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))
    }
}

/// The timing state of one direction: when the link is next free, and the arrival times of the
/// messages sent but not yet received, oldest first.
#[derive(Clone, Debug)]
pub struct Direction {
    spec: LinkSpec,
    free_at: Duration,
    in_flight: VecDeque<Duration>,
}

impl Direction {
    /// An idle direction.
    pub fn new(spec: LinkSpec) -> Direction {
        Direction {
            spec,
            free_at: Duration::ZERO,
            in_flight: VecDeque::new(),
        }
    }

    /// Schedules a message of `bytes` sent at `now`; returns when the peer may read it:
    /// `max(now, free) + 8·bytes/bandwidth + latency`. The link is busy until the serialization ends.
    pub fn send(&mut self, now: Duration, bytes: u64) -> Duration {
        let start = now.max(self.free_at);
        self.free_at = start + self.spec.serialization(bytes);
        let arrival = self.free_at + self.spec.latency;
        self.in_flight.push_back(arrival);
        arrival
    }

    /// The arrival time of the oldest message not yet received, removing it.
    pub fn recv(&mut self) -> Option<Duration> {
        self.in_flight.pop_front()
    }

    /// When the link finishes serializing what it has been given.
    pub fn free_at(&self) -> Duration {
        self.free_at
    }

    /// The direction's bandwidth and latency.
    pub fn spec(&self) -> LinkSpec {
        self.spec
    }
}

/// Both directions of one emulated link. `dirs[0]` carries messages from end A to end B;
/// `hops[d]` the sender's hop count of each message in flight on `dirs[d]`, oldest first.
#[derive(Debug)]
struct LinkState {
    dirs: [Direction; 2],
    hops: [VecDeque<u64>; 2],
}

/// Time as both ends of an emulated link see it.
pub trait Clock: Send + Sync {
    /// Time since the clock's origin (monotonic).
    fn now(&self) -> Duration;
    /// Blocks the calling thread until `now() >= t` (returns at once when that already holds).
    fn sleep_until(&self, t: Duration);
}

/// The monotonic wall clock, with its origin when it was created.
#[derive(Clone, Copy, Debug)]
pub struct RealClock {
    origin: Instant,
}

impl RealClock {
    pub fn new() -> RealClock {
        RealClock {
            origin: Instant::now(),
        }
    }
}

impl Default for RealClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for RealClock {
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }
    /// `thread::sleep` (it may oversleep by the scheduler's granularity, typically tens of µs; no
    /// spinning, so the waiting party leaves the CPU to the other one).
    fn sleep_until(&self, t: Duration) {
        let now = self.now();
        if t > now {
            std::thread::sleep(t - now);
        }
    }
}

/// One end of an emulated link around an inner channel `C`. Made by [`emulate`] or
/// [`emulate_with`]; the peer end shares its timing state and clock.
pub struct EmulatedChannel<C> {
    inner: C,
    link: Arc<Mutex<LinkState>>,
    clock: Arc<dyn Clock>,
    /// Index of the direction this end sends on (0 for end A, 1 for end B).
    out: usize,
    /// This end's latency hops (`Stats::hops`), kept by the link whatever the inner channel.
    hops: u64,
}

/// Wraps two connected ends `a` and `b` in a symmetric link with the bandwidth and RTT of `net`
/// (each direction gets the full bandwidth and half the RTT), on the real monotonic clock.
pub fn emulate<A: Channel, B: Channel>(
    a: A,
    b: B,
    net: &NetworkModel,
) -> (EmulatedChannel<A>, EmulatedChannel<B>) {
    let d = LinkSpec::from_model(net);
    emulate_with(a, b, d, d, Arc::new(RealClock::new()))
}

/// Wraps two connected ends in a link with `a_to_b` and `b_to_a` as the two directions, timed by
/// `clock` (shared by both ends).
pub fn emulate_with<A: Channel, B: Channel>(
    a: A,
    b: B,
    a_to_b: LinkSpec,
    b_to_a: LinkSpec,
    clock: Arc<dyn Clock>,
) -> (EmulatedChannel<A>, EmulatedChannel<B>) {
    let link = Arc::new(Mutex::new(LinkState {
        dirs: [Direction::new(a_to_b), Direction::new(b_to_a)],
        hops: [VecDeque::new(), VecDeque::new()],
    }));
    (
        EmulatedChannel {
            inner: a,
            link: link.clone(),
            clock: clock.clone(),
            out: 0,
            hops: 0,
        },
        EmulatedChannel {
            inner: b,
            link,
            clock,
            out: 1,
            hops: 0,
        },
    )
}

impl<C> EmulatedChannel<C> {
    /// The shared state; a poisoned lock (a peer thread panicked while holding it) still holds
    /// consistent timing data, so it is used as is.
    fn state(&self) -> MutexGuard<'_, LinkState> {
        self.link.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The inner channel.
    pub fn get_ref(&self) -> &C {
        &self.inner
    }

    /// Unwraps the inner channel; messages still in flight lose their emulated delay.
    pub fn into_inner(self) -> C {
        self.inner
    }

    /// When the link in this end's sending direction is next idle, on the shared clock.
    pub fn send_free_at(&self) -> Duration {
        self.state().dirs[self.out].free_at()
    }
}

impl<C: Channel> Channel for EmulatedChannel<C> {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        let now = self.clock.now();
        // The link's timeline, one event per message (`privinfer bench --net … -vvv`): which
        // end sent (a: the first end given to `emulate`), at which hop of the critical path,
        // how many bytes, when on the link's clock.
        tracing::trace!(
            end = if self.out == 0 { "a" } else { "b" },
            hop = self.hops,
            bytes = msg.len(),
            at_us = now.as_micros() as u64,
            "emulated send"
        );
        // Scheduled before the inner send so the arrival time is queued before the peer can see the
        // message; undone if the inner channel refuses it.
        let saved = {
            let mut st = self.state();
            let d = &mut st.dirs[self.out];
            let free = d.free_at;
            d.send(now, msg.len() as u64);
            st.hops[self.out].push_back(self.hops);
            free
        };
        if let Err(e) = self.inner.send(msg) {
            let mut st = self.state();
            let d = &mut st.dirs[self.out];
            d.in_flight.pop_back();
            d.free_at = saved;
            st.hops[self.out].pop_back();
            return Err(e);
        }
        Ok(())
    }

    fn recv(&mut self) -> Result<Vec<u8>> {
        let msg = self.inner.recv()?;
        let (arrival, sent) = {
            let mut st = self.state();
            (
                st.dirs[1 - self.out].recv(),
                st.hops[1 - self.out].pop_front(),
            )
        };
        if let Some(h) = sent {
            self.hops = self.hops.max(h + 1);
        }
        if let Some(t) = arrival {
            self.clock.sleep_until(t);
        }
        Ok(msg)
    }

    fn flush(&mut self) -> Result<()> {
        self.inner.flush()
    }

    fn stats(&self) -> Stats {
        Stats {
            hops: self.hops,
            ..self.inner.stats()
        }
    }
}
