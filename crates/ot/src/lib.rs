//! Oblivious transfer for two semi-honest parties over a [`transport::Channel`].
//!
//! Layers, bottom up (docs/ot.md has the design, message flows and costs):
//! - [`base`]: Chou–Orlandi base OT over Ristretto (128 per direction and session);
//! - [`iknp`]: IKNP extension to random correlated OT (COT) with a global Δ;
//! - [`CotSender`] / [`CotReceiver`]: the session's COT source (silent or IKNP backend), whose
//!   `extend(ch, n)` may be called any number of times;
//! - OTs derived from COT (module `ext`, as methods on the two types): random OT, chosen-message
//!   OT, correlated additive OT over Z_{2^ℓ}, 1-out-of-N OT;
//! - [`hash`]: fixed-key AES, the tweakable correlation-robust hash, a PRG.
//!
//! Every protocol is one side only and reads the peer's bytes through the channel; malformed or
//! missing bytes become an [`OtError`], never a panic.
//!
//! ```
//! use privinfer_ot::{CotReceiver, CotSender};
//! use rand_chacha::{rand_core::SeedableRng, ChaCha20Rng};
//! use transport::MemoryChannel;
//!
//! let (mut a, mut b) = MemoryChannel::pair();
//! let peer = std::thread::spawn(move || {
//!     let mut r = CotReceiver::setup(&mut b, &mut ChaCha20Rng::seed_from_u64(2)).unwrap();
//!     let t = r.extend(&mut b, 1000).unwrap();
//!     let m = r.recv_chosen(&mut b, &[false, true, true], 37).unwrap();
//!     (t, m)
//! });
//! let mut s = CotSender::setup(&mut a, &mut ChaCha20Rng::seed_from_u64(1)).unwrap();
//! let q = s.extend(&mut a, 1000).unwrap();
//! s.send_chosen(&mut a, &[10, 11, 12], &[20, 21, 22], 37).unwrap();
//! let (t, m) = peer.join().unwrap();
//! // Random COT: t_i = q_i ⊕ b_i·Δ with the choice bit b_i = lsb(t_i).
//! assert!(q.iter().zip(&t).all(|(q, t)| *t == *q ^ s.delta().and_bit(t.lsb())));
//! assert_eq!(m, vec![10, 21, 22]);
//! ```

pub mod base;
mod bits;
mod block;
mod cot;
mod error;
mod ext;
pub mod ferret;
pub mod hash;
pub mod iknp;

pub use block::{choice_bits, Block};
pub use cot::{CotBackend, CotConfig, CotPair, CotReceiver, CotSender, MAX_EXTEND};
pub use error::{OtError, Result};
pub use ext::{MAX_BITS, MAX_LOG_N, MAX_PAYLOAD_MESSAGE};
pub use ferret::SilentStats;
