//! A multi-client TCP server that stays usable under load and abuse.
//!
//! A connection goes through three phases, each bounded in time and in what it holds:
//! 1. **Accept**: the acceptor refuses at once (with a one-line reason) a connection beyond
//!    [`ServerConfig::max_connections`] or beyond [`ServerConfig::max_per_address`] from one IP.
//! 2. **Handshake**: on its own thread, with a small message limit
//!    ([`handshake::MAX_CLIENT_HELLO`]) and an overall deadline
//!    ([`ServerConfig::handshake_timeout`]): an idle, slow or garbage connection is dropped when
//!    the deadline passes and never holds a session slot or a large allocation.
//! 3. **Admission**, then the session: a valid client takes a slot if one is free (and the
//!    predicted memory of one more session fits [`ServerConfig::memory_budget`]), else waits in a
//!    bounded FIFO queue, told its position; past the queue bound or
//!    [`ServerConfig::queue_wait`] it is refused with a "retry after N s" hint. A session runs
//!    under the per-message bound ([`transport::TcpConfig::timeout`]) and the overall
//!    [`ServerConfig::session_timeout`].
//!
//! A misbehaving client (garbage, oversized messages, disconnects, even a panic in its session)
//! ends only its own connection. Every limit is logged when it triggers. When the last session
//! ends, freed memory is handed back to the operating system (`math::alloc::release_free_memory`),
//! so the process returns to its idle size.

use std::collections::{HashMap, VecDeque};
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use transport::{TcpChannel, TcpConfig};

use crate::handshake;
use crate::EngineError;

/// Limits of a server.
#[derive(Clone, Copy, Debug)]
pub struct ServerConfig {
    /// Sessions served at the same time.
    pub max_sessions: usize,
    /// Clients with a valid hello that may wait for a slot; one more is refused as busy.
    pub max_queue: usize,
    /// Longest a client waits in the queue before it is refused as busy.
    pub queue_wait: Duration,
    /// Interval of the position updates sent to a waiting client (they also detect a client
    /// that hung up); keep it below the clients' per-message timeout.
    pub queue_heartbeat: Duration,
    /// Time from accept to a complete, valid client hello.
    pub handshake_timeout: Duration,
    /// Overall bound on one admitted session (the per-message bound is `tcp.timeout`).
    pub session_timeout: Duration,
    /// Connections open at once from one IP address (all phases).
    pub max_per_address: usize,
    /// Connections open at once in total (all phases).
    pub max_connections: usize,
    /// Bytes the server may use in all: its idle footprint plus the predicted peak of each
    /// running session ([`SessionHandler::session_memory`]). `None`: no budget.
    pub memory_budget: Option<u64>,
    /// Per-connection limits (message size, per-message timeout).
    pub tcp: TcpConfig,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_sessions: 4,
            max_queue: 32,
            queue_wait: Duration::from_secs(300),
            queue_heartbeat: Duration::from_secs(2),
            handshake_timeout: Duration::from_secs(10),
            session_timeout: Duration::from_secs(3600),
            max_per_address: 16,
            max_connections: 256,
            memory_budget: None,
            tcp: TcpConfig::default(),
        }
    }
}

impl ServerConfig {
    /// Checks the limits are usable.
    pub fn validate(&self) -> Result<(), EngineError> {
        let bad = |what: &'static str| Err(EngineError::Config { what });
        if self.max_sessions == 0 {
            return bad("max_sessions must be at least 1");
        }
        if self.max_per_address == 0 || self.max_connections == 0 {
            return bad("connection limits must be at least 1");
        }
        if self.handshake_timeout.is_zero()
            || self.session_timeout.is_zero()
            || self.tcp.timeout.is_zero()
        {
            return bad("timeouts must be positive");
        }
        if self.queue_heartbeat.is_zero() {
            return bad("queue_heartbeat must be positive");
        }
        Ok(())
    }
}

/// What a server does with a connection; the server itself owns the phases and the limits.
pub trait SessionHandler: Send + Sync + 'static {
    /// Phase 2: reads and checks the client's hello. The channel is bounded by the handshake
    /// deadline and [`handshake::MAX_CLIENT_HELLO`].
    fn hello(&self, ch: &mut TcpChannel) -> Result<(), EngineError>;
    /// Phase 3: serves one admitted client (the server's hello, then the session).
    fn serve(&self, ch: &mut TcpChannel) -> Result<(), EngineError>;
    /// Predicted peak memory of one session, in bytes (checked against the memory budget).
    fn session_memory(&self) -> u64;
}

/// What the server has done so far (for logs, tests and benchmarks).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServerStats {
    pub accepted: u64,
    pub sessions_ok: u64,
    pub sessions_failed: u64,
    pub handshakes_failed: u64,
    pub queued: u64,
    pub refused_busy: u64,
    pub refused_address: u64,
    pub refused_connections: u64,
}

#[derive(Default)]
struct Counters {
    accepted: AtomicU64,
    sessions_ok: AtomicU64,
    sessions_failed: AtomicU64,
    handshakes_failed: AtomicU64,
    queued: AtomicU64,
    refused_busy: AtomicU64,
    refused_address: AtomicU64,
    refused_connections: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> ServerStats {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ServerStats {
            accepted: g(&self.accepted),
            sessions_ok: g(&self.sessions_ok),
            sessions_failed: g(&self.sessions_failed),
            handshakes_failed: g(&self.handshakes_failed),
            queued: g(&self.queued),
            refused_busy: g(&self.refused_busy),
            refused_address: g(&self.refused_address),
            refused_connections: g(&self.refused_connections),
        }
    }
}

fn bump(a: &AtomicU64) {
    a.fetch_add(1, Ordering::Relaxed);
}

/// Session slots and the FIFO queue in front of them.
struct Admission {
    active: usize,
    /// Tickets of waiting clients, oldest first.
    queue: VecDeque<u64>,
    next_ticket: u64,
    /// Sessions that may run at once: `max_sessions`, lowered by the memory budget.
    slots: usize,
    /// Mean duration of finished sessions (exponential average), for the retry hint.
    mean_session: Duration,
}

impl Admission {
    fn position(&self, ticket: u64) -> Option<usize> {
        self.queue.iter().position(|&t| t == ticket).map(|p| p + 1)
    }
    fn remove(&mut self, ticket: u64) {
        self.queue.retain(|&t| t != ticket);
    }
    /// Seconds until a client joining now is likely to get a slot.
    fn retry_after_s(&self) -> u64 {
        let rounds = (self.queue.len() / self.slots.max(1)) as u32 + 1;
        (self.mean_session * rounds).as_secs().max(1)
    }
}

/// The limits whose triggers are logged.
#[derive(Clone, Copy, Debug)]
enum Limit {
    Connections,
    Address,
    Handshake,
    Sessions,
    Memory,
    QueueFull,
    QueueWait,
    Session,
}

const LIMITS: usize = 8;

/// Logs each limit when it triggers, at warn level (visible by default), at most one line per
/// limit per second: the triggers in between are counted into the next line, so an attack cannot
/// flood the log.
#[derive(Default)]
struct LimitLog {
    last: Mutex<[(Option<Instant>, u64); LIMITS]>,
}

impl LimitLog {
    fn hit(&self, kind: Limit, line: impl FnOnce() -> String) {
        let mut last = lock(&self.last);
        let (at, suppressed) = &mut last[kind as usize];
        if at.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
            *suppressed += 1;
            return;
        }
        let more = std::mem::take(suppressed);
        *at = Some(Instant::now());
        drop(last);
        if more > 0 {
            tracing::warn!(
                "{} (and {more} more like it since the last such line)",
                line()
            );
        } else {
            tracing::warn!("{}", line());
        }
    }
}

struct Shared {
    cfg: ServerConfig,
    log: LimitLog,
    adm: Mutex<Admission>,
    freed: Condvar,
    /// Open connections per client IP, and in total.
    open: Mutex<(HashMap<IpAddr, usize>, usize)>,
    counters: Arc<Counters>,
    /// Memory limit on the slots, for the log line when it is what holds a client back.
    memory_slots: Option<usize>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking session must not poison the server: the state it guards stays consistent
    // because every update is a single statement under the lock.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A held session slot; released however the session ends (error or panic).
struct Slot {
    shared: Arc<Shared>,
    start: Instant,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let idle = {
            let mut a = lock(&self.shared.adm);
            a.active -= 1;
            let d = self.start.elapsed();
            a.mean_session = (a.mean_session * 3 + d) / 4;
            a.active == 0 && a.queue.is_empty()
        };
        self.shared.freed.notify_all();
        if idle {
            math::alloc::release_free_memory();
        }
    }
}

/// An open connection, counted per address and in total until dropped.
struct Conn {
    shared: Arc<Shared>,
    ip: IpAddr,
}

impl Drop for Conn {
    fn drop(&mut self) {
        let mut o = lock(&self.shared.open);
        if let Some(n) = o.0.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                o.0.remove(&self.ip);
            }
        }
        o.1 -= 1;
    }
}

impl Shared {
    /// Phase 3's entry: a slot now, or a place in the queue until one frees, or a refusal.
    fn admit(self: &Arc<Self>, ch: &mut TcpChannel, peer: SocketAddr) -> Option<Slot> {
        let cfg = &self.cfg;
        let mut a = lock(&self.adm);
        if a.queue.is_empty() && a.active < a.slots {
            a.active += 1;
            return Some(self.slot());
        }
        if a.queue.len() >= cfg.max_queue {
            let (ra, active, queued) = (a.retry_after_s(), a.active, a.queue.len());
            drop(a);
            let why = format!(
                "{active} running, {queued} waiting (queue limit {})",
                cfg.max_queue
            );
            self.refuse_busy(ch, peer, Limit::QueueFull, &why, ra);
            return None;
        }
        let ticket = a.next_ticket;
        a.next_ticket += 1;
        a.queue.push_back(ticket);
        bump(&self.counters.queued);
        if let Some(m) = self
            .memory_slots
            .filter(|&m| a.active >= m && m < cfg.max_sessions)
        {
            let active = a.active;
            self.log.hit(Limit::Memory, || {
                format!("{peer}: memory budget allows {m} sessions, {active} running: queued")
            });
        } else {
            let (active, pos) = (a.active, a.queue.len());
            self.log.hit(Limit::Sessions, || {
                format!("{peer}: {active} sessions running (the limit): queued at position {pos}")
            });
        }
        let until = Instant::now() + cfg.queue_wait;
        let (mut told, mut told_at) = (0usize, Instant::now());
        loop {
            let pos = a.position(ticket).expect("a waiting ticket stays queued");
            if pos == 1 && a.active < a.slots {
                a.queue.pop_front();
                a.active += 1;
                drop(a);
                // The next in line may be able to start too.
                self.freed.notify_all();
                return Some(self.slot());
            }
            let now = Instant::now();
            if now >= until {
                let ra = a.retry_after_s();
                drop(a);
                self.leave_queue(ticket);
                let why = format!(
                    "no session slot freed within {} s",
                    cfg.queue_wait.as_secs()
                );
                self.refuse_busy(ch, peer, Limit::QueueWait, &why, ra);
                return None;
            }
            if pos != told || now >= told_at + cfg.queue_heartbeat {
                let sessions = a.active;
                drop(a);
                // Also detects a client that hung up while waiting.
                if let Err(e) = handshake::send_queued(ch, pos, sessions) {
                    tracing::info!("{peer}: left the queue: {e}");
                    self.leave_queue(ticket);
                    return None;
                }
                (told, told_at) = (pos, Instant::now());
                a = lock(&self.adm);
                continue;
            }
            let wake = (told_at + cfg.queue_heartbeat).min(until);
            a = self
                .freed
                .wait_timeout(a, wake.saturating_duration_since(now))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Takes a waiting client out of the queue and wakes the others (their positions moved).
    fn leave_queue(&self, ticket: u64) {
        lock(&self.adm).remove(ticket);
        self.freed.notify_all();
    }

    /// Refuses a client with a valid hello as busy, with a retry hint; counted and logged.
    fn refuse_busy(
        &self,
        ch: &mut TcpChannel,
        peer: SocketAddr,
        limit: Limit,
        why: &str,
        retry_after_s: u64,
    ) {
        bump(&self.counters.refused_busy);
        self.log
            .hit(limit, || format!("{peer}: refused as busy: {why}"));
        let _ = handshake::refuse_busy(ch, why, retry_after_s);
    }

    fn slot(self: &Arc<Self>) -> Slot {
        Slot {
            shared: self.clone(),
            start: Instant::now(),
        }
    }

    /// Phase 1: counts the connection, or says why it is refused.
    fn open(self: &Arc<Self>, ip: IpAddr) -> Result<Conn, String> {
        let mut o = lock(&self.open);
        if o.1 >= self.cfg.max_connections {
            bump(&self.counters.refused_connections);
            let why = format!(
                "server at its limit of {} open connections",
                self.cfg.max_connections
            );
            self.log
                .hit(Limit::Connections, || format!("{ip}: refused: {why}"));
            return Err(why);
        }
        let n = o.0.entry(ip).or_insert(0);
        if *n >= self.cfg.max_per_address {
            bump(&self.counters.refused_address);
            let why = format!(
                "too many connections from {ip} (limit {})",
                self.cfg.max_per_address
            );
            self.log
                .hit(Limit::Address, || format!("{ip}: refused: {why}"));
            return Err(why);
        }
        *n += 1;
        o.1 += 1;
        Ok(Conn {
            shared: self.clone(),
            ip,
        })
    }
}

/// Connections refused at accept: the refusal is written without blocking, then whatever the
/// client sends is read and dropped until it closes (so it reads the refusal rather than a reset)
/// or [`DRAIN_FOR`] passes.
struct Drain {
    conns: VecDeque<(TcpStream, Instant)>,
}

const DRAIN_FOR: Duration = Duration::from_secs(2);
const DRAIN_MAX: usize = 256;
/// Retry hint of a connection refused at accept.
const DRAIN_RETRY_S: u64 = 2;

impl Drain {
    fn refuse(&mut self, mut s: TcpStream, why: &str) {
        // Both limits are transient: a retry helps once other connections have ended.
        let body = serde_json::to_vec(&handshake::refusal(why, Some(DRAIN_RETRY_S)))
            .expect("a refusal serializes");
        let mut frame = (body.len() as u32).to_le_bytes().to_vec();
        frame.extend_from_slice(&body);
        if s.set_nonblocking(true).is_ok() {
            let _ = s.write_all(&frame);
            let _ = s.shutdown(std::net::Shutdown::Write);
            if self.conns.len() >= DRAIN_MAX {
                self.conns.pop_front();
            }
            self.conns.push_back((s, Instant::now()));
        }
    }

    fn tick(&mut self) {
        let mut buf = [0u8; 4096];
        self.conns.retain_mut(|(s, since)| {
            if since.elapsed() > DRAIN_FOR {
                return false;
            }
            loop {
                match s.read(&mut buf) {
                    Ok(0) => return false,
                    Ok(_) => continue,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
                    Err(_) => return false,
                }
            }
        });
    }
}

/// A bound listener. Binding fails with a clear error when the address is in use.
pub struct Server {
    listener: TcpListener,
    cfg: ServerConfig,
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
}

/// Reads the server's counters while it runs (see [`Server::stats_handle`]).
#[derive(Clone)]
pub struct StatsHandle(Arc<Counters>);

impl StatsHandle {
    /// The counters so far (all zero before `run` starts).
    pub fn get(&self) -> ServerStats {
        self.0.snapshot()
    }
}

impl Server {
    /// Binds `addr` after checking the limits.
    pub fn bind(
        addr: impl ToSocketAddrs + std::fmt::Display,
        cfg: ServerConfig,
    ) -> Result<Server, EngineError> {
        cfg.validate()?;
        let shown = addr.to_string();
        let listener = TcpListener::bind(addr).map_err(|e| EngineError::Bind {
            addr: shown,
            source: e,
        })?;
        Ok(Server {
            listener,
            cfg,
            stop: Arc::new(AtomicBool::new(false)),
            counters: Arc::default(),
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> Result<SocketAddr, EngineError> {
        Ok(self
            .listener
            .local_addr()
            .map_err(transport::TransportError::from)?)
    }

    /// A flag that makes `run` stop accepting within one poll tick.
    pub fn stop_handle(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    /// The server's counters, readable from another thread while `run` runs.
    pub fn stats_handle(&self) -> StatsHandle {
        StatsHandle(self.counters.clone())
    }

    /// How many sessions the memory budget allows, given the process's size now (its idle
    /// footprint: model, plan, code) and the handler's prediction for one session.
    pub fn memory_slots(
        cfg: &ServerConfig,
        idle_bytes: u64,
        session_bytes: u64,
    ) -> Result<Option<usize>, EngineError> {
        let Some(budget) = cfg.memory_budget else {
            return Ok(None);
        };
        let free = budget.saturating_sub(idle_bytes);
        let slots = (free / session_bytes.max(1)) as usize;
        if slots == 0 {
            return Err(EngineError::MemoryBudget {
                budget,
                idle: idle_bytes,
                session: session_bytes,
            });
        }
        Ok(Some(slots))
    }

    /// Accepts clients until stopped (or until `max_clients` connections were accepted, if given),
    /// each on its own thread through the phases above. Returns after every connection has ended.
    pub fn run<H: SessionHandler>(
        self,
        handler: Arc<H>,
        max_clients: Option<usize>,
    ) -> Result<(), EngineError> {
        let session_bytes = handler.session_memory();
        let memory_slots = Self::memory_slots(
            &self.cfg,
            math::alloc::resident_bytes().unwrap_or(0),
            session_bytes,
        )?;
        let slots = memory_slots.map_or(self.cfg.max_sessions, |m| m.min(self.cfg.max_sessions));
        if let Some(m) = memory_slots {
            tracing::info!(
                "memory budget {} MiB: one session needs {} MiB (predicted), so {} run at once",
                self.cfg.memory_budget.unwrap_or(0) >> 20,
                session_bytes >> 20,
                m.min(self.cfg.max_sessions)
            );
        }
        let shared = Arc::new(Shared {
            cfg: self.cfg,
            log: LimitLog::default(),
            adm: Mutex::new(Admission {
                active: 0,
                queue: VecDeque::new(),
                next_ticket: 0,
                slots,
                mean_session: Duration::from_secs(5),
            }),
            freed: Condvar::new(),
            open: Mutex::new((HashMap::new(), 0)),
            counters: self.counters.clone(),
            memory_slots,
        });
        let mut workers: Vec<thread::JoinHandle<()>> = Vec::new();
        let mut drain = Drain {
            conns: VecDeque::new(),
        };
        let mut accepted = 0usize;
        self.listener
            .set_nonblocking(true)
            .map_err(transport::TransportError::from)?;
        while !self.stop.load(Ordering::SeqCst) && max_clients.is_none_or(|m| accepted < m) {
            drain.tick();
            let (stream, peer) = match self.listener.accept() {
                Ok(x) => x,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    thread::sleep(Duration::from_millis(10));
                    continue;
                }
                Err(e) => {
                    // Out of file descriptors, say: back off instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    thread::sleep(Duration::from_millis(50));
                    continue;
                }
            };
            accepted += 1;
            bump(&shared.counters.accepted);
            let conn = match shared.open(peer.ip()) {
                Ok(c) => c,
                Err(why) => {
                    drain.refuse(stream, &why);
                    continue;
                }
            };
            let (shared, handler) = (shared.clone(), handler.clone());
            let spawned = thread::Builder::new()
                .name(format!("client {peer}"))
                .spawn(move || connection(&shared, &*handler, stream, peer, conn));
            match spawned {
                Ok(h) => workers.push(h),
                Err(e) => tracing::warn!("{peer}: cannot start a thread: {e}"),
            }
            workers.retain(|w| !w.is_finished());
        }
        for w in workers {
            // A panicking session must not take the server down; it has already been isolated.
            let _ = w.join();
        }
        Ok(())
    }
}

/// One connection through phases 2 and 3.
fn connection<H: SessionHandler>(
    shared: &Arc<Shared>,
    handler: &H,
    stream: TcpStream,
    peer: SocketAddr,
    _conn: Conn,
) {
    let cfg = &shared.cfg;
    if let Err(e) = stream.set_nonblocking(false) {
        tracing::warn!("{peer}: {e}");
        return;
    }
    let mut ch = match TcpChannel::from_stream(stream, cfg.tcp) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("{peer}: {e}");
            return;
        }
    };
    ch.set_max_message(handshake::MAX_CLIENT_HELLO);
    ch.set_deadline(Some(cfg.handshake_timeout));
    if let Err(e) = handler.hello(&mut ch) {
        bump(&shared.counters.handshakes_failed);
        shared.log.hit(Limit::Handshake, || {
            format!("{peer}: handshake failed: {e}")
        });
        ch.shutdown();
        return;
    }
    ch.set_deadline(None);
    ch.set_max_message(cfg.tcp.max_message);
    let Some(slot) = shared.admit(&mut ch, peer) else {
        ch.shutdown();
        return;
    };
    ch.set_deadline(Some(cfg.session_timeout));
    match handler.serve(&mut ch) {
        Ok(()) => {
            bump(&shared.counters.sessions_ok);
            tracing::info!(
                "{peer}: session done in {:.2} s",
                slot.start.elapsed().as_secs_f64()
            );
        }
        Err(e) => {
            bump(&shared.counters.sessions_failed);
            shared.log.hit(Limit::Session, || {
                format!("{peer}: session ended with an error: {e}")
            });
        }
    }
    ch.shutdown();
    drop(slot);
}
