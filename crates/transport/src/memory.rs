//! In-process duplex channel for tests and single-process benchmarks.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::Duration;

use crate::{Channel, Meter, Result, Stats, TransportError, DEFAULT_MAX_MESSAGE, DEFAULT_TIMEOUT};

/// One end of an in-memory duplex link. Dropping it closes the link: the peer's `recv` fails with
/// [`TransportError::Closed`] and its `send` too.
pub struct MemoryChannel {
    /// Messages with the sender's hop count (`Stats::hops`).
    tx: Sender<(Vec<u8>, u64)>,
    rx: Receiver<(Vec<u8>, u64)>,
    meter: Meter,
    max_message: usize,
    timeout: Duration,
}

impl MemoryChannel {
    /// Two connected ends with the default limits.
    pub fn pair() -> (MemoryChannel, MemoryChannel) {
        Self::pair_with(DEFAULT_MAX_MESSAGE, DEFAULT_TIMEOUT)
    }

    /// Two connected ends with a given maximum message size and receive timeout.
    pub fn pair_with(max_message: usize, timeout: Duration) -> (MemoryChannel, MemoryChannel) {
        let (tx_a, rx_b) = mpsc::channel();
        let (tx_b, rx_a) = mpsc::channel();
        let end = |tx, rx| MemoryChannel {
            tx,
            rx,
            meter: Meter::default(),
            max_message,
            timeout,
        };
        (end(tx_a, rx_a), end(tx_b, rx_b))
    }
}

impl Channel for MemoryChannel {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        if msg.len() > self.max_message {
            return Err(TransportError::TooLarge {
                len: msg.len(),
                max: self.max_message,
            });
        }
        self.tx
            .send((msg.to_vec(), self.meter.stats.hops))
            .map_err(|_| TransportError::Closed)?;
        self.meter.on_send(msg.len());
        Ok(())
    }

    fn recv(&mut self) -> Result<Vec<u8>> {
        let (msg, sent) = match self.rx.recv_timeout(self.timeout) {
            Ok(m) => m,
            Err(RecvTimeoutError::Timeout) => return Err(TransportError::Timeout(self.timeout)),
            Err(RecvTimeoutError::Disconnected) => return Err(TransportError::Closed),
        };
        if msg.len() > self.max_message {
            return Err(TransportError::TooLarge {
                len: msg.len(),
                max: self.max_message,
            });
        }
        self.meter.on_recv(msg.len());
        self.meter.on_hop(sent);
        Ok(msg)
    }

    fn flush(&mut self) -> Result<()> {
        Ok(())
    }

    fn stats(&self) -> Stats {
        self.meter.stats
    }
}
