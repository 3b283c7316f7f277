//! TCP channel: 4-byte little-endian length prefix, then the payload.

use std::io::{BufReader, BufWriter, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::time::Duration;

use crate::{Channel, Meter, Result, Stats, TransportError, DEFAULT_MAX_MESSAGE, DEFAULT_TIMEOUT};

/// Limits and timeouts of a TCP channel.
#[derive(Clone, Copy, Debug)]
pub struct TcpConfig {
    /// Largest message accepted or sent, in bytes.
    pub max_message: usize,
    /// Read and write timeout: a silent peer makes `recv` fail after this long.
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

/// A buffered TCP connection to the other party, with `TCP_NODELAY` set.
pub struct TcpChannel {
    reader: BufReader<TcpStream>,
    writer: BufWriter<TcpStream>,
    meter: Meter,
    cfg: TcpConfig,
    peer: Option<SocketAddr>,
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
        let reader = BufReader::with_capacity(1 << 16, stream.try_clone()?);
        let writer = BufWriter::with_capacity(1 << 16, stream);
        Ok(TcpChannel {
            reader,
            writer,
            meter: Meter::default(),
            cfg,
            peer,
        })
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
        let _ = self.writer.flush();
        let _ = self.writer.get_ref().shutdown(std::net::Shutdown::Both);
    }
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
        let t = self.cfg.timeout;
        self.writer
            .write_all(&(len as u32).to_le_bytes())
            .map_err(|e| io_err(e, t))?;
        self.writer.write_all(msg).map_err(|e| io_err(e, t))?;
        self.meter.on_send(len);
        Ok(())
    }

    fn recv(&mut self) -> Result<Vec<u8>> {
        // Whatever we queued must reach the peer before we wait for its answer.
        self.flush()?;
        let t = self.cfg.timeout;
        let mut hdr = [0u8; 4];
        self.reader.read_exact(&mut hdr).map_err(|e| io_err(e, t))?;
        let len = u32::from_le_bytes(hdr) as usize;
        if len > self.cfg.max_message {
            return Err(TransportError::TooLarge {
                len,
                max: self.cfg.max_message,
            });
        }
        // Grow with the data actually received, so a lying header cannot force a huge allocation.
        let mut buf = Vec::with_capacity(len.min(1 << 20));
        let got = (&mut self.reader)
            .take(len as u64)
            .read_to_end(&mut buf)
            .map_err(|e| io_err(e, t))?;
        if got != len {
            return Err(TransportError::Closed);
        }
        self.meter.on_recv(len);
        Ok(buf)
    }

    fn flush(&mut self) -> Result<()> {
        let t = self.cfg.timeout;
        self.writer.flush().map_err(|e| io_err(e, t))
    }

    fn stats(&self) -> Stats {
        self.meter.stats
    }
}
