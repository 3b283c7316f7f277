//! Load and abuse generators for soak tests and `privinfer bench serve`: connections that stay
//! idle, trickle their hello one byte a second, or send garbage, each reopened as soon as the
//! server drops it, from their own loopback source addresses; and clients that vanish in the
//! middle of a session. Every loop is bounded in time and in count, and targets only the address
//! it is given (a server of ours on this machine).

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use transport::{Channel, Stats, TcpChannel, TcpConfig, TransportError};

use crate::handshake::{self, ClientHello};
use crate::{EngineError, Inference};

/// Opens a TCP connection to `addr` from the local address `src` (any port), e.g. one of the
/// loopback range 127.0.0.0/8, so that a test can act as several client hosts.
pub fn connect_from(
    src: IpAddr,
    addr: SocketAddr,
    timeout: Duration,
) -> std::io::Result<TcpStream> {
    let domain = match addr {
        SocketAddr::V4(_) => socket2::Domain::IPV4,
        SocketAddr::V6(_) => socket2::Domain::IPV6,
    };
    let s = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
    s.bind(&SocketAddr::new(src, 0).into())?;
    s.connect_timeout(&addr.into(), timeout)?;
    Ok(s.into())
}

/// How an abusive connection behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Abuse {
    /// Connects and never sends a byte.
    Idle,
    /// Sends a valid hello one byte a second.
    Slow,
    /// Sends a random frame (random length up to 4 KiB, random bytes), then waits.
    Garbage,
}

/// Abusive connections kept open against a server until stopped.
pub struct AbuseLoad {
    stop: Arc<AtomicBool>,
    opened: Arc<AtomicU64>,
    threads: Vec<thread::JoinHandle<()>>,
}

/// Most connections one abuse thread opens (a bound on the loop, whatever the server does).
const MAX_REOPEN: u64 = 100_000;

impl AbuseLoad {
    /// Starts `count` connections of `kind` from `src` to `addr`, each reopened (at most every
    /// 100 ms) when the server drops it, until [`AbuseLoad::stop`] or `limit` has passed.
    pub fn start(
        addr: SocketAddr,
        src: IpAddr,
        kind: Abuse,
        count: usize,
        limit: Duration,
    ) -> AbuseLoad {
        let stop = Arc::new(AtomicBool::new(false));
        let opened = Arc::new(AtomicU64::new(0));
        let until = Instant::now() + limit;
        let threads = (0..count)
            .map(|k| {
                let (stop, opened) = (stop.clone(), opened.clone());
                thread::spawn(move || {
                    let mut seed = 0x9E37_79B9_7F4A_7C15u64 ^ (k as u64) << 32;
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) && Instant::now() < until && n < MAX_REOPEN
                    {
                        let t0 = Instant::now();
                        if let Ok(s) = connect_from(src, addr, Duration::from_secs(2)) {
                            n += 1;
                            opened.fetch_add(1, Ordering::Relaxed);
                            abuse_one(s, kind, &stop, until, &mut seed);
                        }
                        if let Some(rest) = Duration::from_millis(100).checked_sub(t0.elapsed()) {
                            thread::sleep(rest);
                        }
                    }
                })
            })
            .collect();
        AbuseLoad {
            stop,
            opened,
            threads,
        }
    }

    /// Stops every connection and waits for the threads; returns the connections opened.
    pub fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
        self.opened.load(Ordering::Relaxed)
    }
}

fn next(seed: &mut u64) -> u64 {
    // xorshift64*: enough for garbage bytes.
    *seed ^= *seed >> 12;
    *seed ^= *seed << 25;
    *seed ^= *seed >> 27;
    seed.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

/// One abusive connection until the server closes it, `stop`, or `until`.
fn abuse_one(mut s: TcpStream, kind: Abuse, stop: &AtomicBool, until: Instant, seed: &mut u64) {
    let _ = s.set_read_timeout(Some(Duration::from_millis(100)));
    let mut pending: Vec<u8> = match kind {
        Abuse::Idle => Vec::new(),
        Abuse::Slow => {
            let hello = serde_json::to_vec(&ClientHello {
                magic: handshake::MAGIC.into(),
                version: handshake::PROTOCOL_VERSION,
            })
            .expect("a hello serializes");
            let mut f = (hello.len() as u32).to_le_bytes().to_vec();
            f.extend(hello);
            f
        }
        Abuse::Garbage => {
            let len = (next(seed) % 4096) as usize;
            let mut f = (next(seed) as u32).to_le_bytes().to_vec();
            f.extend((0..len).map(|_| next(seed) as u8));
            f
        }
    };
    pending.reverse();
    let mut last_byte = Instant::now() - Duration::from_secs(1);
    let mut buf = [0u8; 1024];
    while !stop.load(Ordering::Relaxed) && Instant::now() < until {
        let send_now = match kind {
            Abuse::Idle => 0,
            Abuse::Slow if last_byte.elapsed() >= Duration::from_secs(1) => 1,
            Abuse::Slow => 0,
            Abuse::Garbage => pending.len(),
        };
        if send_now > 0 {
            let chunk: Vec<u8> = (0..send_now).filter_map(|_| pending.pop()).collect();
            if s.write_all(&chunk).is_err() {
                return;
            }
            last_byte = Instant::now();
        }
        // The server's refusal or close ends this connection.
        match s.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return,
        }
    }
}

/// A channel that fails after sending `left` more messages: a client killed in the middle of a
/// session. Only sends count: a client waiting in the server's queue receives heartbeats but
/// sends nothing after its hello, so a cut after k ≥ 2 sends always falls inside the session,
/// whatever the queueing. Dropping it closes the connection.
pub struct CutAfter {
    inner: TcpChannel,
    left: usize,
}

impl CutAfter {
    pub fn new(inner: TcpChannel, messages: usize) -> CutAfter {
        CutAfter {
            inner,
            left: messages,
        }
    }
    fn tick(&mut self) -> transport::Result<()> {
        if self.left == 0 {
            self.inner.shutdown();
            return Err(TransportError::Closed);
        }
        self.left -= 1;
        Ok(())
    }
}

impl Channel for CutAfter {
    fn send(&mut self, msg: &[u8]) -> transport::Result<()> {
        self.tick()?;
        self.inner.send(msg)
    }
    fn recv(&mut self) -> transport::Result<Vec<u8>> {
        if self.left == 0 {
            self.inner.shutdown();
            return Err(TransportError::Closed);
        }
        self.inner.recv()
    }
    fn flush(&mut self) -> transport::Result<()> {
        self.inner.flush()
    }
    fn stats(&self) -> Stats {
        self.inner.stats()
    }
}

/// A client TCP channel to `addr` from `src`.
pub fn channel_from(
    src: IpAddr,
    addr: SocketAddr,
    cfg: TcpConfig,
) -> Result<TcpChannel, TransportError> {
    let s = connect_from(src, addr, cfg.connect_timeout)?;
    TcpChannel::from_stream(s, cfg)
}

/// Threads and open file descriptors of a process (`/proc/<pid>`; `None` elsewhere).
pub fn process_counts(pid: u32) -> Option<(usize, usize)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let threads = status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))?
        .trim()
        .parse()
        .ok()?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count();
    Some((threads, fds))
}

/// Resident and peak resident memory of a process in bytes (`/proc/<pid>/status`).
pub fn process_memory(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb = |key: &str| -> Option<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse::<u64>()
            .ok()
            .map(|v| v * 1024)
    };
    Some((kb("VmRSS:")?, kb("VmHWM:")?))
}

/// One inference over `ch` on the normalized float input `x`, quantized with the fixed point the
/// server's plan names; returns it and how many queue updates the client heard.
pub fn infer_input<C: Channel>(ch: &mut C, x: &[f32]) -> Result<(Inference, usize), EngineError> {
    let mut heard = 0usize;
    let inf = crate::infer_channel_queued(
        ch,
        None,
        &mut |plan| {
            let f = nn::FixedConfig::new(plan.ell, plan.scale)?;
            Ok(x.iter().map(|&v| f.encode(v)).collect())
        },
        &mut |_, _| {},
        &mut |_| heard += 1,
    )?;
    Ok((inf, heard))
}
