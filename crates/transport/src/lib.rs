//! Two-party channels with byte and round accounting.
//!
//! Every protocol takes `&mut impl Channel` (or `&mut dyn Channel`) and never opens sockets itself.
//! Bytes from the peer are untrusted: `recv` enforces a maximum message size, and the typed helpers
//! (`recv_u64s`, `recv_exact`) check lengths before anything is parsed.
//!
//! [`emulate`] wraps a connected pair (in-process or TCP loopback) in an emulated link with a
//! bandwidth and one-way latency per direction (e.g. [`NetworkModel::WAN`]), so that wall time
//! measured over it is the time on that network; see the `emulated` module and README.

mod emulated;
mod memory;
mod network;
mod tcp;

pub use emulated::{emulate, emulate_with, Clock, Direction, EmulatedChannel, LinkSpec, RealClock};
pub use memory::MemoryChannel;
pub use network::{Estimate, NetworkModel};
pub use tcp::{TcpChannel, TcpConfig};

use std::time::Duration;

/// Default upper bound on one message (256 MiB): larger frames are refused before allocation.
pub const DEFAULT_MAX_MESSAGE: usize = 256 << 20;
/// Default time to wait for the peer before giving up.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Errors of the transport layer.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("the peer closed the connection")]
    Closed,
    #[error("timed out after {0:?} waiting for the peer")]
    Timeout(Duration),
    #[error("the connection's overall deadline of {0:?} has passed")]
    Deadline(Duration),
    #[error("message of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge { len: usize, max: usize },
    #[error("expected a message of {expected} bytes, got {got}")]
    UnexpectedLength { expected: usize, got: usize },
    #[error("network {spec:?}: expected lan, wan or <mbit/s>:<rtt ms> with a positive bandwidth and a finite, non-negative RTT")]
    InvalidNetwork { spec: String },
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

pub type Result<T, E = TransportError> = std::result::Result<T, E>;

/// What one party has sent and received so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Stats {
    /// Payload bytes sent (length prefixes excluded).
    pub bytes_sent: u64,
    /// Payload bytes received (length prefixes excluded).
    pub bytes_received: u64,
    /// Messages sent; each costs a 4-byte length prefix on the wire.
    pub frames_sent: u64,
    /// Messages received.
    pub frames_received: u64,
    /// Maximal runs of messages in one direction, as seen by this party.
    pub flights: u64,
    /// Latency hops: the longest chain of messages, each sent after the previous one arrived,
    /// that ends at this party (a Lamport clock: receiving a message sent at hop h moves it to
    /// h + 1). A simultaneous exchange is one hop where it is two flights, so the link's latency
    /// costs hops × one-way delay. Kept by in-process and emulated channels; 0 over plain TCP.
    #[serde(default)]
    pub hops: u64,
}

impl Stats {
    /// Round trips: ⌈flights / 2⌉.
    pub fn rounds(&self) -> u64 {
        self.flights.div_ceil(2)
    }

    /// The difference `self - earlier`, for measuring one step of a longer session.
    pub fn since(&self, earlier: &Stats) -> Stats {
        Stats {
            bytes_sent: self.bytes_sent - earlier.bytes_sent,
            bytes_received: self.bytes_received - earlier.bytes_received,
            frames_sent: self.frames_sent - earlier.frames_sent,
            frames_received: self.frames_received - earlier.frames_received,
            flights: self.flights - earlier.flights,
            hops: self.hops.saturating_sub(earlier.hops),
        }
    }
}

/// Direction of the last message, for flight counting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Dir {
    #[default]
    None,
    Send,
    Recv,
}

/// Shared accounting used by every channel implementation.
#[derive(Clone, Copy, Debug, Default)]
struct Meter {
    stats: Stats,
    last: Dir,
}

impl Meter {
    fn on_send(&mut self, len: usize) {
        if self.last != Dir::Send {
            self.stats.flights += 1;
            self.last = Dir::Send;
        }
        self.stats.bytes_sent += len as u64;
        self.stats.frames_sent += 1;
    }
    /// A message sent at the peer's hop `sent` arrived.
    fn on_hop(&mut self, sent: u64) {
        self.stats.hops = self.stats.hops.max(sent + 1);
    }
    fn on_recv(&mut self, len: usize) {
        if self.last != Dir::Recv {
            self.stats.flights += 1;
            self.last = Dir::Recv;
        }
        self.stats.bytes_received += len as u64;
        self.stats.frames_received += 1;
    }
}

/// A blocking, message-oriented duplex link to the other party.
pub trait Channel {
    /// Queues one message. It may be buffered until `flush` or the next `recv`, and must not
    /// block on the peer reading.
    fn send(&mut self, msg: &[u8]) -> Result<()>;
    /// Receives one whole message, refusing any larger than the channel's limit. Messages queued
    /// by `send` reach the peer while this waits, so both parties may send before they receive
    /// (a simultaneous exchange) with messages of any size.
    fn recv(&mut self) -> Result<Vec<u8>>;
    /// Pushes buffered messages to the peer.
    fn flush(&mut self) -> Result<()>;
    /// Counters so far.
    fn stats(&self) -> Stats;

    /// Receives a message that must be exactly `len` bytes long.
    fn recv_exact(&mut self, len: usize) -> Result<Vec<u8>> {
        let msg = self.recv()?;
        if msg.len() != len {
            return Err(TransportError::UnexpectedLength {
                expected: len,
                got: msg.len(),
            });
        }
        Ok(msg)
    }

    /// Sends a vector of `u64` as little-endian words.
    fn send_u64s(&mut self, xs: &[u64]) -> Result<()> {
        let mut buf = Vec::with_capacity(xs.len() * 8);
        for x in xs {
            buf.extend_from_slice(&x.to_le_bytes());
        }
        self.send(&buf)
    }

    /// Receives exactly `n` little-endian `u64` words.
    fn recv_u64s(&mut self, n: usize) -> Result<Vec<u64>> {
        let msg = self.recv_exact(n * 8)?;
        Ok(msg
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("chunk of 8")))
            .collect())
    }
}

impl<C: Channel + ?Sized> Channel for &mut C {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        (**self).send(msg)
    }
    fn recv(&mut self) -> Result<Vec<u8>> {
        (**self).recv()
    }
    fn flush(&mut self) -> Result<()> {
        (**self).flush()
    }
    fn stats(&self) -> Stats {
        (**self).stats()
    }
}

impl<C: Channel + ?Sized> Channel for Box<C> {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        (**self).send(msg)
    }
    fn recv(&mut self) -> Result<Vec<u8>> {
        (**self).recv()
    }
    fn flush(&mut self) -> Result<()> {
        (**self).flush()
    }
    fn stats(&self) -> Stats {
        (**self).stats()
    }
}
