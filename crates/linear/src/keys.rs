//! Long-lived key material of a session: the client's RLWE secret keys (never sent) and the public
//! keys the server uses to re-randomize its responses.
//!
//! Both are `rlwe` keys on every parameter set (`HeParamsId::rlwe_params`, t = 2^ℓ): the secret
//! key s ternary, the public key pk = (pk₀, a) = (−a·s + e, a) with a expanded from a seed
//! [FV12 §4]. Setup message, client → server, one per (parameter set, ℓ):
//! `[tag: u8][rlwe::serialize::public_key_to_raw: seed (32 bytes), pk₀ in NTT form, residues
//! bit-packed per prime]`.

use std::collections::BTreeMap;

use math::pack::packed_len;
use rand_core::CryptoRngCore;
use transport::Channel;

use crate::cheetah::params::HeParamsId;
use crate::simd::SimdParamsId;
use crate::{Cost, LinearError};

/// A piece of key material a layer needs.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum KeyRequest {
    /// An RLWE secret key at the client, its public key at the server, for the set's `rlwe`
    /// parameters with t = 2^ℓ.
    Rlwe { params: HeParamsId, ell: u32 },
    /// Galois keys for X → X^{2N/2^i + 1}, i = 1..=log_g (partial traces for packing G = 2^log_g
    /// responses), on a key-switching set ([`HeParamsId::can_pack`]), for t = 2^ℓ. Implies the
    /// matching `Rlwe` key.
    Galois {
        params: HeParamsId,
        ell: u32,
        log_g: u32,
    },
    /// An RLWE secret key at the client, its public key at the server, for a SIMD set with
    /// t the batching prime of ℓ + 1 bits.
    SimdRlwe { params: SimdParamsId, ell: u32 },
    /// The Galois key of X → X^element on a SIMD set: a row rotation, the row swap, or both
    /// (one per distinct element the layers use, all sent in one message). Implies the matching
    /// `SimdRlwe` key.
    SimdGalois {
        params: SimdParamsId,
        ell: u32,
        element: usize,
    },
}

/// The Galois elements a partial trace Tr_{K_N/K_{N/G}} uses: 2N/2^i + 1 for i = 1..=log₂ G.
pub(crate) fn trace_elements(n: usize, log_g: u32) -> Vec<usize> {
    (1..=log_g).map(|i| 2 * n / (1usize << i) + 1).collect()
}

/// The client's keys of a session.
pub struct ClientKeys {
    sets: BTreeMap<(HeParamsId, u32), rlwe::SecretKey>,
    simd: BTreeMap<(SimdParamsId, u32), rlwe::SecretKey>,
}

/// The server's copy of the client's public keys.
pub struct ServerKeys {
    sets: BTreeMap<(HeParamsId, u32), rlwe::PublicKey>,
    galois: BTreeMap<(HeParamsId, u32), rlwe::GaloisKeys>,
    simd: BTreeMap<(SimdParamsId, u32), (rlwe::PublicKey, rlwe::GaloisKeys)>,
}

/// Galois key sets: (params, ℓ, log G).
type GaloisSets = Vec<(HeParamsId, u32, u32)>;

/// Key sets of a list of requests: RLWE keys by (params, ℓ), Galois keys by (params, ℓ) with the
/// largest log G, each implying its RLWE key.
fn normalized(requests: &[KeyRequest]) -> (Vec<(HeParamsId, u32)>, GaloisSets) {
    let mut rlwe = Vec::new();
    let mut galois: BTreeMap<(HeParamsId, u32), u32> = BTreeMap::new();
    for r in requests {
        match *r {
            KeyRequest::Rlwe { params, ell } => rlwe.push((params, ell)),
            KeyRequest::Galois { params, ell, log_g } => {
                rlwe.push((params, ell));
                let e = galois.entry((params, ell)).or_insert(0);
                *e = (*e).max(log_g);
            }
            KeyRequest::SimdRlwe { .. } | KeyRequest::SimdGalois { .. } => {}
        }
    }
    rlwe.sort();
    rlwe.dedup();
    (
        rlwe,
        galois
            .into_iter()
            .filter(|&(_, g)| g > 0)
            .map(|((p, ell), g)| (p, ell, g))
            .collect(),
    )
}

/// SIMD key sets: (params, ℓ) → the distinct Galois elements of its rotation steps.
fn simd_sets(requests: &[KeyRequest]) -> BTreeMap<(SimdParamsId, u32), Vec<usize>> {
    let mut out: BTreeMap<(SimdParamsId, u32), Vec<usize>> = BTreeMap::new();
    for r in requests {
        match *r {
            KeyRequest::SimdRlwe { params, ell } => {
                out.entry((params, ell)).or_default();
            }
            KeyRequest::SimdGalois {
                params,
                ell,
                element,
            } => {
                out.entry((params, ell)).or_default().push(element);
            }
            _ => {}
        }
    }
    for els in out.values_mut() {
        els.sort_unstable();
        els.dedup();
    }
    out
}

/// Galois keys per setup message of a SIMD set (the set travels in ⌈keys/16⌉ messages, each
/// ≤ 16 keys: ≤ 18 MB at N = 8192 and ≤ 80 MB on the N = 16384 sets, below the transport's
/// default message bound of 256 MiB, where one message for a ResNet-18's 300+ keys would not be).
pub const SIMD_KEYS_PER_MESSAGE: usize = 16;

/// Bytes of `rlwe`'s serialized Galois keys (`rlwe::serialize::galois_keys_to_bytes`, format
/// version 1): 12-byte header, 4-byte count, per key a 4-byte element, a digit-count byte, dnum
/// polynomials b_j over QP and the 32-byte seed of the a_j. The setup tests compare this with the
/// bytes counted on the channel, so a format change shows up there.
fn galois_bytes(params: &rlwe::Params, count: u32) -> usize {
    let n = params.n();
    let qp: usize = params
        .ctx_qp()
        .moduli()
        .iter()
        .map(|m| packed_len(n, m.bits()))
        .sum();
    let dnum = params.key_switcher().map_or(0, |k| k.dnum());
    12 + 4 + count as usize * (4 + 1 + dnum * qp + 32)
}

/// What [`ClientKeys::setup`] sends: one message per RLWE key and one per Galois key set,
/// client → server.
pub fn setup_cost(requests: &[KeyRequest]) -> Result<Cost, LinearError> {
    let (ids, galois) = normalized(requests);
    let mut bytes = 0usize;
    for &(p, ell) in &ids {
        let params = p.rlwe_params(ell)?;
        bytes += 1 + rlwe::serialize::public_key_raw_len(&params);
    }
    for &(p, ell, log_g) in &galois {
        if !p.can_pack() {
            return Err(LinearError::MissingKey { params: p.name() });
        }
        bytes += galois_bytes(&*p.rlwe_params(ell)?, log_g);
    }
    let simd = simd_sets(requests);
    let mut simd_messages = 0;
    let mut simd_rotations = 0;
    let mut simd_ntts = 0;
    for (&(p, ell), els) in &simd {
        let params = p.rlwe_params(ell)?;
        bytes += 1 + rlwe::serialize::public_key_raw_len(&params);
        simd_messages += 1;
        simd_ntts += 2 * params.max_level() as u64;
        for chunk in els.chunks(SIMD_KEYS_PER_MESSAGE) {
            bytes += galois_bytes(&params, chunk.len() as u32);
            simd_messages += 1;
        }
        simd_rotations += els.len() as u64;
    }
    let messages = (ids.len() + galois.len()) as u64 + simd_messages;
    Ok(Cost {
        bytes_c2s: bytes as u64,
        messages_c2s: messages,
        rounds: u64::from(messages > 0),
        ntts: ids
            .iter()
            .map(|(p, _)| 2 * p.prime_bits().len() as u64)
            .sum::<u64>()
            + simd_ntts,
        rotations: galois.iter().map(|&(_, _, g)| g as u64).sum::<u64>() + simd_rotations,
        ..Cost::default()
    })
}

/// Generates a secret key on `params` and queues its public key message on `out`:
/// `[tag][public_key_to_raw]`.
fn new_key(
    params: &std::sync::Arc<rlwe::Params>,
    tag: u8,
    out: &mut Vec<Vec<u8>>,
    rng: &mut dyn CryptoRngCore,
) -> Result<rlwe::SecretKey, LinearError> {
    let sk = rlwe::SecretKey::generate(params, rng);
    let pk = rlwe::PublicKey::generate(&sk, rng)?;
    let mut msg = Vec::with_capacity(1 + rlwe::serialize::public_key_raw_len(params));
    msg.push(tag);
    rlwe::serialize::public_key_to_raw(&pk, &mut msg);
    out.push(msg);
    Ok(sk)
}

/// Receives a public key message of [`ClientKeys::generate`], checking length, tag and every residue.
fn recv_public_key(
    params: &std::sync::Arc<rlwe::Params>,
    tag: u8,
    ch: &mut dyn Channel,
) -> Result<rlwe::PublicKey, LinearError> {
    let msg = ch.recv()?;
    let expected = 1 + rlwe::serialize::public_key_raw_len(params);
    if msg.len() != expected {
        return Err(LinearError::MessageLength {
            what: "public key",
            expected,
            got: msg.len(),
        });
    }
    if msg[0] != tag {
        return Err(LinearError::ParamsMismatch {
            expected: tag as u32,
            got: msg[0] as u32,
        });
    }
    rlwe::serialize::public_key_from_raw(params, &msg[1..])
        .map_err(|_| LinearError::MessageRange { what: "public key" })
}

/// Receives one message of Galois keys holding exactly the elements `want`.
fn recv_galois_keys(
    params: &std::sync::Arc<rlwe::Params>,
    want: &[usize],
    ch: &mut dyn Channel,
) -> Result<rlwe::GaloisKeys, LinearError> {
    let bad = || LinearError::MessageRange {
        what: "Galois keys",
    };
    let msg = ch.recv()?;
    let gk = rlwe::serialize::galois_keys_from_bytes(params, &msg).map_err(|_| bad())?;
    if gk.elements().count() != want.len() || want.iter().any(|&k| gk.get(k).is_none()) {
        return Err(bad());
    }
    Ok(gk)
}

/// The client's public and Galois keys of a session, serialized, not yet sent.
pub struct KeyUpload(Vec<Vec<u8>>);

impl KeyUpload {
    /// Sends the keys (client → server, one flight).
    pub fn send(self, ch: &mut dyn Channel) -> Result<(), LinearError> {
        for msg in &self.0 {
            ch.send(msg)?;
        }
        ch.flush()?;
        Ok(())
    }
}

impl ClientKeys {
    /// Generates a secret key per requested parameter set, sends the public keys, then the Galois
    /// keys (all client → server, one flight).
    pub fn setup(
        requests: &[KeyRequest],
        ch: &mut dyn Channel,
        rng: &mut dyn CryptoRngCore,
    ) -> Result<Self, LinearError> {
        let (keys, upload) = Self::generate(requests, rng)?;
        upload.send(ch)?;
        Ok(keys)
    }

    /// [`ClientKeys::setup`] without the communication: the keys and what to send, in the order
    /// [`ServerKeys::setup`] reads it, so that the client can generate them while it waits for
    /// the server.
    pub fn generate(
        requests: &[KeyRequest],
        rng: &mut dyn CryptoRngCore,
    ) -> Result<(Self, KeyUpload), LinearError> {
        let (ids, galois) = normalized(requests);
        let mut out = Vec::new();
        let mut sets = BTreeMap::new();
        for (p, ell) in ids {
            let sk = new_key(&p.rlwe_params(ell)?, p.tag(), &mut out, rng)?;
            sets.insert((p, ell), sk);
        }
        for (p, ell, log_g) in galois {
            let sk = sets
                .get(&(p, ell))
                .ok_or(LinearError::MissingKey { params: p.name() })?;
            let els = trace_elements(sk.params().n(), log_g);
            let gk = rlwe::GaloisKeys::generate(sk, &els, rng).map_err(LinearError::from)?;
            out.push(rlwe::serialize::galois_keys_to_bytes(&gk));
        }
        let mut simd = BTreeMap::new();
        for ((p, ell), els) in simd_sets(requests) {
            let sk = new_key(&p.rlwe_params(ell)?, p.tag(), &mut out, rng)?;
            for chunk in els.chunks(SIMD_KEYS_PER_MESSAGE) {
                let gk = rlwe::GaloisKeys::generate(&sk, chunk, rng)?;
                out.push(rlwe::serialize::galois_keys_to_bytes(&gk));
            }
            simd.insert((p, ell), sk);
        }
        Ok((ClientKeys { sets, simd }, KeyUpload(out)))
    }

    pub(crate) fn simd(&self, p: SimdParamsId, ell: u32) -> Result<&rlwe::SecretKey, LinearError> {
        self.simd
            .get(&(p, ell))
            .ok_or(LinearError::MissingKey { params: p.name() })
    }

    pub(crate) fn get(&self, p: HeParamsId, ell: u32) -> Result<&rlwe::SecretKey, LinearError> {
        self.sets
            .get(&(p, ell))
            .ok_or(LinearError::MissingKey { params: p.name() })
    }

    /// Parameter sets this client holds keys for.
    pub fn params(&self) -> Vec<HeParamsId> {
        self.sets.keys().map(|k| k.0).collect()
    }
}

impl ServerKeys {
    /// Receives and validates the keys sent by [`ClientKeys::setup`] for the same requests.
    pub fn setup(requests: &[KeyRequest], ch: &mut dyn Channel) -> Result<Self, LinearError> {
        let (ids, galois_req) = normalized(requests);
        let mut sets = BTreeMap::new();
        for (p, ell) in ids {
            let pk = recv_public_key(&p.rlwe_params(ell)?, p.tag(), ch)?;
            sets.insert((p, ell), pk);
        }
        let mut galois = BTreeMap::new();
        for (p, ell, log_g) in galois_req {
            let params = p.rlwe_params(ell)?;
            let gk = recv_galois_keys(&params, &trace_elements(params.n(), log_g), ch)?;
            galois.insert((p, ell), gk);
        }
        let mut simd = BTreeMap::new();
        for ((p, ell), els) in simd_sets(requests) {
            let params = p.rlwe_params(ell)?;
            let pk = recv_public_key(&params, p.tag(), ch)?;
            let mut gk = rlwe::GaloisKeys::empty(&params);
            for chunk in els.chunks(SIMD_KEYS_PER_MESSAGE) {
                gk.merge(recv_galois_keys(&params, chunk, ch)?)
                    .map_err(|_| LinearError::MessageRange {
                        what: "Galois keys",
                    })?;
            }
            simd.insert((p, ell), (pk, gk));
        }
        Ok(ServerKeys { sets, galois, simd })
    }

    pub(crate) fn simd(
        &self,
        p: SimdParamsId,
        ell: u32,
    ) -> Result<(&rlwe::PublicKey, &rlwe::GaloisKeys), LinearError> {
        self.simd
            .get(&(p, ell))
            .map(|(pk, gk)| (pk, gk))
            .ok_or(LinearError::MissingKey { params: p.name() })
    }

    pub(crate) fn get(&self, p: HeParamsId, ell: u32) -> Result<&rlwe::PublicKey, LinearError> {
        self.sets
            .get(&(p, ell))
            .ok_or(LinearError::MissingKey { params: p.name() })
    }

    pub(crate) fn galois(&self, p: HeParamsId, ell: u32) -> Result<&rlwe::GaloisKeys, LinearError> {
        self.galois.get(&(p, ell)).ok_or(LinearError::MissingKey {
            params: "Galois keys",
        })
    }
}
