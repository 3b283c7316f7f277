//! Sessions over TCP: the server side of `privinfer serve` and the client side of
//! `privinfer infer`, each a handshake followed by one private inference.

use std::net::ToSocketAddrs;
use std::sync::Mutex;
use std::time::Instant;

use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use transport::{Channel, TcpChannel, TcpConfig};

use crate::handshake::{self, Queued, Reveal, ServerHello};
use crate::run::{run_client, run_server, Outcome, Report, ServerModel};
use crate::server::SessionHandler;
use crate::{EngineError, Plan};

/// A model served to any number of clients, one session each.
pub struct ModelService {
    model: ServerModel,
    reveal: Reveal,
    hello: ServerHello,
    /// Reports of finished sessions (for logs and tests).
    pub finished: Mutex<Vec<Report>>,
}

impl ModelService {
    pub fn new(model: ServerModel, reveal: Reveal) -> Result<ModelService, EngineError> {
        // The linear and OT layers run their independent ciphertexts and hash blocks on rayon's
        // global pool, whose workers live as long as the process: start them with the service,
        // so its idle thread count is its steady one from the start.
        rayon::broadcast(|_| ());
        let plan = serde_json::to_value(&model.plan).map_err(|e| EngineError::Malformed {
            what: "plan",
            reason: e.to_string(),
        })?;
        let hello = ServerHello {
            magic: handshake::MAGIC.into(),
            version: handshake::PROTOCOL_VERSION,
            model_digest: model.plan.digest(),
            reveal,
            plan,
        };
        Ok(ModelService {
            model,
            reveal,
            hello,
            finished: Mutex::new(Vec::new()),
        })
    }

    /// The digest clients can pin.
    pub fn digest(&self) -> &str {
        &self.hello.model_digest
    }

    /// Predicted peak memory of one server session (`Plan::predicted_session_memory`).
    pub fn session_memory(&self) -> u64 {
        self.model
            .plan
            .predicted_session_memory(self.reveal == Reveal::Label)
    }

    /// Serves one client on an established channel: its hello, then the session.
    pub fn serve_channel(&self, ch: &mut impl Channel) -> Result<Report, EngineError> {
        handshake::server_read_hello(ch)?;
        self.serve_admitted(ch)
    }

    /// Serves a client whose hello was read and checked: the server's hello, then the session.
    pub fn serve_admitted(&self, ch: &mut impl Channel) -> Result<Report, EngineError> {
        handshake::server_send_hello(ch, &self.hello)?;
        // A fresh CSPRNG per session, seeded from the OS.
        let mut rng = ChaCha20Rng::from_entropy();
        run_server(
            &self.model,
            self.reveal == Reveal::Label,
            ch,
            &mut rng,
            &mut |_, _| {},
        )
    }
}

impl SessionHandler for ModelService {
    fn hello(&self, ch: &mut TcpChannel) -> Result<(), EngineError> {
        handshake::server_read_hello(ch).map(|_| ())
    }
    fn serve(&self, ch: &mut TcpChannel) -> Result<(), EngineError> {
        let r = self.serve_admitted(ch)?;
        if let Ok(mut f) = self.finished.lock() {
            f.push(r);
        }
        Ok(())
    }
    fn session_memory(&self) -> u64 {
        ModelService::session_memory(self)
    }
}

/// What a client gets from a session.
pub struct Inference {
    pub outcome: Outcome,
    pub report: Report,
    pub plan: Plan,
    pub digest: String,
    pub seconds: f64,
}

/// Client side on an established channel: handshake, plan checks, then one inference.
/// `input` maps the plan (input shape, fixed-point format) to the quantized input.
pub fn infer_channel(
    ch: &mut impl Channel,
    expect_digest: Option<&str>,
    input: &mut dyn FnMut(&Plan) -> Result<Vec<u64>, EngineError>,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Inference, EngineError> {
    infer_channel_queued(ch, expect_digest, input, progress, &mut |_| {})
}

/// As [`infer_channel`], reporting each queue position the server sends while the client waits
/// for a session slot.
pub fn infer_channel_queued(
    ch: &mut impl Channel,
    expect_digest: Option<&str>,
    input: &mut dyn FnMut(&Plan) -> Result<Vec<u64>, EngineError>,
    progress: &mut dyn FnMut(usize, usize),
    on_queued: &mut dyn FnMut(&Queued),
) -> Result<Inference, EngineError> {
    let t0 = Instant::now();
    let hello = handshake::client_handshake(ch, on_queued)?;
    let plan: Plan = serde_json::from_value(hello.plan).map_err(|e| EngineError::Malformed {
        what: "plan",
        reason: e.to_string(),
    })?;
    plan.validate()?;
    let digest = plan.digest();
    if digest != hello.model_digest {
        return Err(EngineError::Malformed {
            what: "server hello",
            reason: "model digest does not match the plan".into(),
        });
    }
    if let Some(want) = expect_digest {
        if !want.eq_ignore_ascii_case(&digest) {
            return Err(EngineError::DigestMismatch {
                expected: want.to_string(),
                offered: digest,
            });
        }
    }
    let x = input(&plan)?;
    let mut rng = ChaCha20Rng::from_entropy();
    let (outcome, report) = run_client(
        &plan,
        hello.reveal == Reveal::Label,
        x,
        ch,
        &mut rng,
        progress,
    )?;
    Ok(Inference {
        outcome,
        report,
        plan,
        digest,
        seconds: t0.elapsed().as_secs_f64(),
    })
}

/// Connects to a server and runs one inference.
pub fn infer(
    addr: impl ToSocketAddrs,
    cfg: TcpConfig,
    expect_digest: Option<&str>,
    input: &mut dyn FnMut(&Plan) -> Result<Vec<u64>, EngineError>,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Inference, EngineError> {
    infer_queued(addr, cfg, expect_digest, input, progress, &mut |_| {})
}

/// As [`infer`], reporting queue positions (see [`infer_channel_queued`]).
pub fn infer_queued(
    addr: impl ToSocketAddrs,
    cfg: TcpConfig,
    expect_digest: Option<&str>,
    input: &mut dyn FnMut(&Plan) -> Result<Vec<u64>, EngineError>,
    progress: &mut dyn FnMut(usize, usize),
    on_queued: &mut dyn FnMut(&Queued),
) -> Result<Inference, EngineError> {
    let mut ch = TcpChannel::connect(addr, cfg)?;
    let r = infer_channel_queued(&mut ch, expect_digest, input, progress, on_queued);
    ch.shutdown();
    r
}
