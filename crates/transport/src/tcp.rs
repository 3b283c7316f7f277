//! TCP channel: 4-byte little-endian length prefix, then the payload.
//!
//! Time bounds: each message (one `recv`, counted from when it starts waiting to its last byte, or
//! one `send`/`flush`) must complete within [`TcpConfig::timeout`], and all I/O fails once the
//! optional overall deadline ([`TcpChannel::set_deadline`]) has passed. Both are enforced on every
//! socket read and write with the time that remains, so a peer trickling one byte at a time cannot
//! stretch a message past its bound.
//!
//! Full duplex: `send` only queues; `recv` writes what is queued while it reads (on a scoped
//! thread when the queue exceeds [`SYNC_WRITE_MAX`]), so both parties may send before receiving —
//! a simultaneous exchange — with messages of any size and no deadlock: neither side can block in
//! a write that waits for the other side to read.

use std::io::{BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use crate::{Channel, Meter, Result, Stats, TransportError, DEFAULT_MAX_MESSAGE, DEFAULT_TIMEOUT};

/// Limits and timeouts of a TCP channel.
#[derive(Clone, Copy, Debug)]
pub struct TcpConfig {
    /// Largest message accepted or sent, in bytes.
    pub max_message: usize,
    /// Per-message bound: one `recv` (waiting included) or one `send`/`flush` fails after this
    /// long, however the bytes trickle in.
    pub timeout: Duration,
    /// Timeout for establishing a connection.
    pub connect_timeout: Duration,
}

impl Default for TcpConfig {
    fn default() -> Self {
        TcpConfig {
            max_message: DEFAULT_MAX_MESSAGE,
            timeout: DEFAULT_TIMEOUT,
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// A socket whose every read and write is bounded by `until`: the socket timeout is set to the
/// time that remains before each call, and a call after `until` fails with `TimedOut`.
struct Timed {
    stream: TcpStream,
    until: Option<Instant>,
}

impl Timed {
    fn remaining(&self) -> std::io::Result<Option<Duration>> {
        match self.until {
            None => Ok(None),
            Some(t) => match t.checked_duration_since(Instant::now()) {
                // A zero socket timeout means "block forever": never pass one.
                Some(d) if d >= Duration::from_millis(1) => Ok(Some(d)),
                _ => Err(std::io::Error::from(ErrorKind::TimedOut)),
            },
        }
    }
}

impl Read for Timed {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let d = self.remaining()?;
        self.stream.set_read_timeout(d)?;
        self.stream.read(buf)
    }
}

impl Write for Timed {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let d = self.remaining()?;
        self.stream.set_write_timeout(d)?;
        self.stream.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.stream.flush()
    }
}

/// Largest queue written before reading on the calling thread: far below the socket buffers
/// (Linux: 16 KiB send buffer plus the peer's ≥ 64 KiB receive window), so that write completes
/// whether or not the peer is reading. Larger queues are written concurrently with the read.
const SYNC_WRITE_MAX: usize = 16 << 10;

/// A buffered TCP connection to the other party, with `TCP_NODELAY` set.
pub struct TcpChannel {
    reader: BufReader<Timed>,
    writer: Timed,
    /// Frames queued by `send`, not yet written.
    out: Vec<u8>,
    meter: Meter,
    cfg: TcpConfig,
    peer: Option<SocketAddr>,
    /// Overall deadline and the bound it was set from (for the error message).
    deadline: Option<(Instant, Duration)>,
}

/// Maps socket errors to the transport's typed errors.
fn io_err(e: std::io::Error, timeout: Duration) -> TransportError {
    match e.kind() {
        ErrorKind::WouldBlock | ErrorKind::TimedOut => TransportError::Timeout(timeout),
        ErrorKind::UnexpectedEof
        | ErrorKind::ConnectionReset
        | ErrorKind::ConnectionAborted
        | ErrorKind::BrokenPipe
        | ErrorKind::NotConnected => TransportError::Closed,
        _ => TransportError::Io(e),
    }
}

impl TcpChannel {
    /// Wraps an accepted or connected stream.
    pub fn from_stream(stream: TcpStream, cfg: TcpConfig) -> Result<TcpChannel> {
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(cfg.timeout))?;
        stream.set_write_timeout(Some(cfg.timeout))?;
        let peer = stream.peer_addr().ok();
        let reader = BufReader::with_capacity(
            1 << 16,
            Timed {
                stream: stream.try_clone()?,
                until: None,
            },
        );
        let writer = Timed {
            stream,
            until: None,
        };
        Ok(TcpChannel {
            reader,
            writer,
            out: Vec::new(),
            meter: Meter::default(),
            cfg,
            peer,
            deadline: None,
        })
    }

    /// Sets (or clears) the overall deadline: every later read and write fails once `bound` has
    /// passed from now, whatever the per-message timeout.
    pub fn set_deadline(&mut self, bound: Option<Duration>) {
        self.deadline = bound.map(|b| (Instant::now() + b, b));
    }

    /// Changes the per-message bound (see [`TcpConfig::timeout`]).
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.cfg.timeout = timeout;
    }

    /// Changes the largest message accepted or sent.
    pub fn set_max_message(&mut self, max: usize) {
        self.cfg.max_message = max;
    }

    /// The instant the operation starting now must end by: the per-message bound, or the overall
    /// deadline when it comes first.
    fn op_until(&self) -> Instant {
        let msg = Instant::now() + self.cfg.timeout;
        match self.deadline {
            Some((d, _)) if d < msg => d,
            _ => msg,
        }
    }

    /// Maps an I/O error, telling an overall-deadline expiry from a per-message timeout.
    fn err(&self, e: std::io::Error) -> TransportError {
        match self.deadline {
            Some((d, bound))
                if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
                    && Instant::now() + Duration::from_millis(1) >= d =>
            {
                TransportError::Deadline(bound)
            }
            _ => io_err(e, self.cfg.timeout),
        }
    }

    /// Connects to `addr`, trying each resolved address once within `cfg.connect_timeout`.
    pub fn connect(addr: impl ToSocketAddrs, cfg: TcpConfig) -> Result<TcpChannel> {
        let mut last = None;
        for a in addr.to_socket_addrs()? {
            match TcpStream::connect_timeout(&a, cfg.connect_timeout) {
                Ok(s) => return Self::from_stream(s, cfg),
                Err(e) => last = Some(e),
            }
        }
        Err(TransportError::Io(last.unwrap_or_else(|| {
            std::io::Error::new(ErrorKind::InvalidInput, "address resolved to nothing")
        })))
    }

    /// Two channels connected over 127.0.0.1 on an ephemeral port (for benchmarks and tests).
    pub fn loopback_pair(cfg: TcpConfig) -> Result<(TcpChannel, TcpChannel)> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let client = TcpStream::connect_timeout(&addr, cfg.connect_timeout)?;
        let (server, _) = listener.accept()?;
        Ok((
            Self::from_stream(server, cfg)?,
            Self::from_stream(client, cfg)?,
        ))
    }

    /// The peer's address, when known.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.peer
    }

    /// Shuts both directions down; the peer's next `recv` fails with `Closed`.
    pub fn shutdown(&mut self) {
        // Bounded like any write, so a peer that stopped reading cannot hold us here.
        let _ = self.flush();
        let _ = self.writer.stream.shutdown(std::net::Shutdown::Both);
    }
}

/// Longest a dropped channel spends writing what is still queued, so that a peer that stopped
/// reading cannot hold the dropping thread for a whole message timeout.
const DROP_FLUSH: Duration = Duration::from_secs(2);

impl Drop for TcpChannel {
    /// Writes what is still queued, as a buffered writer would, for at most [`DROP_FLUSH`].
    fn drop(&mut self) {
        if !self.out.is_empty() {
            self.writer.until = Some(self.op_until().min(Instant::now() + DROP_FLUSH));
            let _ = self.writer.write_all(&self.out);
        }
    }
}

/// Why reading one frame failed.
enum FrameError {
    Io(std::io::Error),
    TooLarge(usize),
    Short,
}

/// Reads one length-prefixed frame of at most `max` bytes.
fn read_frame(reader: &mut BufReader<Timed>, max: usize) -> Result<Vec<u8>, FrameError> {
    let mut hdr = [0u8; 4];
    reader.read_exact(&mut hdr).map_err(FrameError::Io)?;
    let len = u32::from_le_bytes(hdr) as usize;
    if len > max {
        return Err(FrameError::TooLarge(len));
    }
    // Grow with the data actually received, so a lying header cannot force a huge allocation.
    let mut buf = Vec::with_capacity(len.min(1 << 20));
    let got = reader
        .take(len as u64)
        .read_to_end(&mut buf)
        .map_err(FrameError::Io)?;
    if got != len {
        return Err(FrameError::Short);
    }
    Ok(buf)
}

impl Channel for TcpChannel {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        let len = msg.len();
        if len > self.cfg.max_message || len > u32::MAX as usize {
            return Err(TransportError::TooLarge {
                len,
                max: self.cfg.max_message.min(u32::MAX as usize),
            });
        }
        self.out.extend_from_slice(&(len as u32).to_le_bytes());
        self.out.extend_from_slice(msg);
        self.meter.on_send(len);
        Ok(())
    }

    fn recv(&mut self) -> Result<Vec<u8>> {
        // Whatever we queued must reach the peer; a large queue goes out while we read, since
        // the peer may itself be writing before it reads.
        if self.out.len() <= SYNC_WRITE_MAX {
            self.flush()?;
        }
        let until = self.op_until();
        self.reader.get_mut().until = Some(until);
        let max = self.cfg.max_message;
        let (wrote, read) = if self.out.is_empty() {
            (Ok(()), read_frame(&mut self.reader, max))
        } else {
            self.writer.until = Some(until);
            let (writer, out, reader) = (&mut self.writer, &self.out, &mut self.reader);
            std::thread::scope(|s| {
                let w = s.spawn(move || writer.write_all(out));
                let r = read_frame(reader, max);
                let w = w
                    .join()
                    .unwrap_or_else(|_| Err(std::io::Error::other("writer thread panicked")));
                (w, r)
            })
        };
        self.out.clear();
        wrote.map_err(|e| self.err(e))?;
        let buf = match read {
            Ok(b) => b,
            Err(FrameError::Io(e)) => return Err(self.err(e)),
            Err(FrameError::TooLarge(len)) => return Err(TransportError::TooLarge { len, max }),
            Err(FrameError::Short) => return Err(TransportError::Closed),
        };
        self.meter.on_recv(buf.len());
        Ok(buf)
    }

    fn flush(&mut self) -> Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        self.writer.until = Some(self.op_until());
        let r = self.writer.write_all(&self.out);
        self.out.clear();
        r.map_err(|e| self.err(e))
    }

    fn stats(&self) -> Stats {
        self.meter.stats
    }
}
