//! Session handshake: protocol version, model digest and the public architecture.
//!
//! Flow: client → `ClientHello`; server → zero or more `Queued` (the client waits for a session
//! slot), then `ServerHello` or `Refusal`. All are small JSON documents; the channel's size limit
//! bounds them and every field is validated before use.

use serde::{Deserialize, Serialize};
use transport::Channel;

use crate::EngineError;

/// Version of the session protocol. Peers with different versions refuse each other.
/// 2: all COTs of a run generated during setup (`Plan::predicted_nonlinear_cost`).
/// 3: the server may answer a hello with `Queued` updates before its hello, and a busy server's
///    refusal carries `retry_after_s`.
pub const PROTOCOL_VERSION: u32 = 3;
/// Magic string opening every hello, so a stray connection fails fast with a clear error.
pub const MAGIC: &str = "privinfer";
/// Largest server hello accepted (the architecture description is small: no weights).
pub const MAX_HELLO: usize = 4 << 20;
/// Largest client hello a server reads (the channel's limit while the handshake runs, so a
/// connection holds no large allocation before its hello is valid).
pub const MAX_CLIENT_HELLO: usize = 4 << 10;

/// First message of a session, client to server.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ClientHello {
    pub magic: String,
    pub version: u32,
}

/// What the server reveals to the client at the end.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Reveal {
    /// All logits.
    Logits,
    /// Only the index of the largest logit (computed by a private argmax).
    Label,
}

/// The server's answer: everything public the client needs to run its side of the plan.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ServerHello {
    pub magic: String,
    pub version: u32,
    /// SHA-256 of the public plan (architecture, fixed-point format and protocols), hex.
    pub model_digest: String,
    pub reveal: Reveal,
    /// The public plan, serialized; the client checks it against `model_digest`.
    pub plan: serde_json::Value,
}

/// A server's refusal, sent instead of a `ServerHello`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Refusal {
    pub magic: String,
    pub refused: String,
    /// Set when the server is busy: seconds after which a retry is likely to be admitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_s: Option<u64>,
}

/// The client waits for a session slot: `queued` is its position (1 = next), `sessions` the
/// sessions running. Repeated when the position changes and as a heartbeat.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Queued {
    pub magic: String,
    pub queued: usize,
    pub sessions: usize,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ServerReply {
    Hello(ServerHello),
    Refusal(Refusal),
    Queued(Queued),
}

fn send_json<T: Serialize>(ch: &mut impl Channel, v: &T) -> Result<(), EngineError> {
    let bytes = serde_json::to_vec(v).map_err(|e| EngineError::Malformed {
        what: "hello",
        reason: e.to_string(),
    })?;
    ch.send(&bytes)?;
    ch.flush()?;
    Ok(())
}

fn recv_bounded(ch: &mut impl Channel) -> Result<Vec<u8>, EngineError> {
    let msg = ch.recv()?;
    if msg.len() > MAX_HELLO {
        return Err(EngineError::Malformed {
            what: "hello",
            reason: format!("{} bytes, limit {MAX_HELLO}", msg.len()),
        });
    }
    Ok(msg)
}

/// Client side: announce ourselves and read the server's hello, reporting each queue position
/// the server sends while we wait for a session slot.
pub fn client_handshake(
    ch: &mut impl Channel,
    on_queued: &mut dyn FnMut(&Queued),
) -> Result<ServerHello, EngineError> {
    send_json(
        ch,
        &ClientHello {
            magic: MAGIC.into(),
            version: PROTOCOL_VERSION,
        },
    )?;
    loop {
        let msg = recv_bounded(ch)?;
        let reply: ServerReply =
            serde_json::from_slice(&msg).map_err(|e| EngineError::Malformed {
                what: "server hello",
                reason: e.to_string(),
            })?;
        match reply {
            ServerReply::Refusal(r) if r.magic == MAGIC => {
                return Err(match r.retry_after_s {
                    Some(s) => EngineError::Busy {
                        reason: r.refused,
                        retry_after_s: s,
                    },
                    None => EngineError::Refused(r.refused),
                })
            }
            ServerReply::Queued(q) if q.magic == MAGIC && q.queued > 0 => on_queued(&q),
            ServerReply::Hello(h) if h.magic == MAGIC => {
                if h.version != PROTOCOL_VERSION {
                    return Err(EngineError::VersionMismatch {
                        ours: PROTOCOL_VERSION,
                        theirs: h.version,
                    });
                }
                return Ok(h);
            }
            _ => {
                return Err(EngineError::Malformed {
                    what: "server hello",
                    reason: "not a privinfer server".into(),
                })
            }
        }
    }
}

/// Server side: read and check the client's hello.
pub fn server_read_hello(ch: &mut impl Channel) -> Result<ClientHello, EngineError> {
    let msg = recv_bounded(ch)?;
    let hello: ClientHello = serde_json::from_slice(&msg).map_err(|e| EngineError::Malformed {
        what: "client hello",
        reason: e.to_string(),
    })?;
    if hello.magic != MAGIC {
        return Err(EngineError::Malformed {
            what: "client hello",
            reason: "not a privinfer client".into(),
        });
    }
    if hello.version != PROTOCOL_VERSION {
        let _ = refuse(
            ch,
            &format!(
                "protocol version {} is not supported (server speaks {PROTOCOL_VERSION})",
                hello.version
            ),
        );
        return Err(EngineError::VersionMismatch {
            ours: PROTOCOL_VERSION,
            theirs: hello.version,
        });
    }
    Ok(hello)
}

/// Server side: send the hello.
pub fn server_send_hello(ch: &mut impl Channel, hello: &ServerHello) -> Result<(), EngineError> {
    send_json(ch, hello)
}

/// Server side: refuse the session with a reason the client prints.
pub fn refuse(ch: &mut impl Channel, why: &str) -> Result<(), EngineError> {
    send_json(ch, &refusal(why, None))
}

/// Server side: refuse because the server is busy, with a retry hint.
pub fn refuse_busy(
    ch: &mut impl Channel,
    why: &str,
    retry_after_s: u64,
) -> Result<(), EngineError> {
    send_json(ch, &refusal(why, Some(retry_after_s)))
}

/// A refusal as it goes on the wire (the server's acceptor writes it without a channel).
pub fn refusal(why: &str, retry_after_s: Option<u64>) -> Refusal {
    Refusal {
        magic: MAGIC.into(),
        refused: why.into(),
        retry_after_s,
    }
}

/// Server side: tell a waiting client its queue position.
pub fn send_queued(
    ch: &mut impl Channel,
    position: usize,
    sessions: usize,
) -> Result<(), EngineError> {
    send_json(
        ch,
        &Queued {
            magic: MAGIC.into(),
            queued: position,
            sessions,
        },
    )
}
