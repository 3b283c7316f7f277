//! A multi-client TCP server: one thread per client, a cap on concurrent sessions, and isolation so
//! a misbehaving client (garbage, oversized messages, disconnects, even a panic in its session)
//! ends only its own session.

use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use transport::{Channel, TcpChannel, TcpConfig};

use crate::EngineError;

/// Limits of a server.
#[derive(Clone, Copy, Debug)]
pub struct ServerConfig {
    /// Sessions served at the same time; a client beyond this is told the server is busy.
    pub max_sessions: usize,
    /// Per-connection limits (message size, timeouts).
    pub tcp: TcpConfig,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_sessions: 4,
            tcp: TcpConfig::default(),
        }
    }
}

/// What one session does on an accepted connection.
pub trait SessionHandler: Send + Sync + 'static {
    /// Serves one client. An error ends this session only.
    fn serve_one(&self, ch: &mut TcpChannel) -> Result<(), EngineError>;
    /// Tells a client that the server is at capacity (best effort, before closing).
    fn refuse_busy(&self, ch: &mut TcpChannel);
}

/// A bound listener. Binding fails with a clear error when the address is in use.
pub struct Server {
    listener: TcpListener,
    cfg: ServerConfig,
    stop: Arc<AtomicBool>,
}

/// Decrements the active-session counter however the session ends (error or panic).
struct ActiveGuard(Arc<AtomicUsize>);
impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Server {
    /// Binds `addr`.
    pub fn bind(
        addr: impl ToSocketAddrs + std::fmt::Display,
        cfg: ServerConfig,
    ) -> Result<Server, EngineError> {
        let shown = addr.to_string();
        let listener = TcpListener::bind(addr).map_err(|e| EngineError::Bind {
            addr: shown,
            source: e,
        })?;
        Ok(Server {
            listener,
            cfg,
            stop: Arc::new(AtomicBool::new(false)),
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> Result<SocketAddr, EngineError> {
        Ok(self
            .listener
            .local_addr()
            .map_err(transport::TransportError::from)?)
    }

    /// A flag that makes `run` return after the next accepted connection or poll tick.
    pub fn stop_handle(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    /// Accepts clients until stopped (or until `max_clients` connections were accepted, if given),
    /// serving each on its own thread. Returns after all started sessions have finished.
    pub fn run<H: SessionHandler>(
        self,
        handler: Arc<H>,
        max_clients: Option<usize>,
    ) -> Result<(), EngineError> {
        let active = Arc::new(AtomicUsize::new(0));
        let mut workers = Vec::new();
        let mut accepted = 0usize;
        self.listener
            .set_nonblocking(true)
            .map_err(transport::TransportError::from)?;
        while !self.stop.load(Ordering::SeqCst) && max_clients.is_none_or(|m| accepted < m) {
            let (stream, peer) = match self.listener.accept() {
                Ok(x) => x,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    thread::sleep(Duration::from_millis(20));
                    continue;
                }
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    continue;
                }
            };
            accepted += 1;
            if let Err(e) = stream.set_nonblocking(false) {
                tracing::warn!("{peer}: {e}");
                continue;
            }
            let mut ch = match TcpChannel::from_stream(stream, self.cfg.tcp) {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!("{peer}: {e}");
                    continue;
                }
            };
            if active.fetch_add(1, Ordering::SeqCst) >= self.cfg.max_sessions {
                active.fetch_sub(1, Ordering::SeqCst);
                tracing::info!("{peer}: refused, {} sessions active", self.cfg.max_sessions);
                handler.refuse_busy(&mut ch);
                let _ = ch.flush();
                continue;
            }
            let guard = ActiveGuard(active.clone());
            let h = handler.clone();
            workers.push(thread::spawn(move || {
                let _guard = guard;
                match h.serve_one(&mut ch) {
                    Ok(()) => tracing::info!("{peer}: session done"),
                    Err(e) => tracing::warn!("{peer}: session ended with an error: {e}"),
                }
                ch.shutdown();
            }));
            workers.retain(|w| !w.is_finished());
        }
        for w in workers {
            // A panicking session must not take the server down; it has already been isolated.
            let _ = w.join();
        }
        Ok(())
    }
}
