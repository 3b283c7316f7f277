//! Long-lived key material of a session: the client's RLWE secret keys (never sent) and the public
//! keys the server uses to re-randomize its responses.
//!
//! Setup message, client → server, one per parameter set:
//! `[tag: u8][seed: 32 bytes][pk₀ in NTT form, residues bit-packed per prime]`, with
//! pk = (pk₀, a) = (−a·s + e, a) and a expanded from the seed.

use std::collections::BTreeMap;
use std::sync::Arc;

use math::pack::{pack_bits, packed_len, unpack_bits};
use math::sample::{cbd, expand_seed, ternary};
use math::{Poly, Representation, RnsContext};
use rand_core::CryptoRngCore;
use transport::Channel;
use zeroize::Zeroize;

use crate::cheetah::params::{HeParamsId, CBD_ETA};
use crate::{Cost, LinearError};

/// A piece of key material a layer needs.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum KeyRequest {
    /// An RLWE secret key at the client, its public key at the server.
    Rlwe(HeParamsId),
}

fn math_err(e: math::MathError) -> LinearError {
    LinearError::Math(e.to_string())
}

/// Appends an RNS polynomial's residues, each packed at its prime's bit width.
pub(crate) fn write_poly(p: &Poly, out: &mut Vec<u8>) {
    for (i, m) in p.moduli().iter().enumerate() {
        pack_bits(p.residue(i), m.bits(), out);
    }
}

/// Bytes of a full-modulus polynomial on the wire.
pub(crate) fn poly_bytes(p: HeParamsId) -> usize {
    p.prime_bits().iter().map(|&b| packed_len(p.n(), b)).sum()
}

/// Reads a polynomial written by [`write_poly`], validating every residue against its prime.
pub(crate) fn read_poly(
    ctx: &Arc<RnsContext>,
    repr: Representation,
    bytes: &[u8],
    what: &'static str,
) -> Result<Poly, LinearError> {
    let n = ctx.n();
    let mut data = Vec::with_capacity(n * ctx.len());
    let mut off = 0;
    for m in ctx.moduli() {
        let len = packed_len(n, m.bits());
        let chunk = bytes
            .get(off..off + len)
            .ok_or(LinearError::MessageLength {
                what,
                expected: off + len,
                got: bytes.len(),
            })?;
        data.extend(
            unpack_bits(chunk, m.bits(), n).map_err(|_| LinearError::MessageRange { what })?,
        );
        off += len;
    }
    if off != bytes.len() {
        return Err(LinearError::MessageLength {
            what,
            expected: off,
            got: bytes.len(),
        });
    }
    Poly::from_residues(ctx, ctx.len(), repr, data).map_err(|_| LinearError::MessageRange { what })
}

/// The client's secret key for one parameter set. No `Debug`, no serialization; zeroized on drop.
pub(crate) struct SecretKey {
    /// Ternary coefficients.
    pub(crate) s: Vec<i64>,
    /// s in NTT form over every prime.
    pub(crate) s_ntt: Poly,
    /// s in NTT form over the first two primes (decryption of mod-2^k responses).
    pub(crate) s_ntt2: Poly,
}

impl Drop for SecretKey {
    fn drop(&mut self) {
        self.s.zeroize();
        self.s_ntt.zeroize();
        self.s_ntt2.zeroize();
    }
}

/// The client's keys of a session.
pub struct ClientKeys {
    sets: BTreeMap<HeParamsId, SecretKey>,
}

/// The server's copy of the client's public keys.
pub struct ServerKeys {
    sets: BTreeMap<HeParamsId, PublicKey>,
}

pub(crate) struct PublicKey {
    pub(crate) pk0: Poly,
    pub(crate) a: Poly,
}

fn normalized(requests: &[KeyRequest]) -> Vec<HeParamsId> {
    let mut ids: Vec<HeParamsId> = requests.iter().map(|KeyRequest::Rlwe(p)| *p).collect();
    ids.sort();
    ids.dedup();
    ids
}

/// What [`ClientKeys::setup`] sends: one message per parameter set, client → server.
pub fn setup_cost(requests: &[KeyRequest]) -> Cost {
    let ids = normalized(requests);
    let bytes: usize = ids.iter().map(|&p| 1 + 32 + poly_bytes(p)).sum();
    Cost {
        bytes_c2s: bytes as u64,
        messages_c2s: ids.len() as u64,
        rounds: u64::from(!ids.is_empty()),
        ntts: ids.iter().map(|p| 2 * p.prime_bits().len() as u64).sum(),
        ..Cost::default()
    }
}

impl ClientKeys {
    /// Generates a secret key per requested parameter set and sends the public keys.
    pub fn setup(
        requests: &[KeyRequest],
        ch: &mut dyn Channel,
        rng: &mut dyn CryptoRngCore,
    ) -> Result<Self, LinearError> {
        let mut sets = BTreeMap::new();
        for p in normalized(requests) {
            let ctx = p.context()?;
            let n = ctx.n();
            let s = ternary(n, rng);
            let mut s_ntt = Poly::from_signed(&ctx, ctx.len(), &s);
            s_ntt.ntt_forward();
            let mut s_ntt2 = s_ntt.clone();
            s_ntt2.drop_to(2).map_err(math_err)?;
            let mut seed = [0u8; 32];
            rng.fill_bytes(&mut seed);
            let a = expand_seed(&ctx, ctx.len(), &seed);
            let mut pk0 = Poly::from_signed(&ctx, ctx.len(), &cbd(n, CBD_ETA, rng));
            pk0.ntt_forward();
            let mut as_ = a.clone();
            as_.mul_assign(&s_ntt).map_err(math_err)?;
            pk0.sub_assign(&as_).map_err(math_err)?;
            let mut msg = Vec::with_capacity(1 + 32 + poly_bytes(p));
            msg.push(p.tag());
            msg.extend_from_slice(&seed);
            write_poly(&pk0, &mut msg);
            ch.send(&msg)?;
            sets.insert(p, SecretKey { s, s_ntt, s_ntt2 });
        }
        ch.flush()?;
        Ok(ClientKeys { sets })
    }

    pub(crate) fn get(&self, p: HeParamsId) -> Result<&SecretKey, LinearError> {
        self.sets
            .get(&p)
            .ok_or(LinearError::MissingKey { params: p.name() })
    }

    /// Parameter sets this client holds keys for.
    pub fn params(&self) -> Vec<HeParamsId> {
        self.sets.keys().copied().collect()
    }
}

impl ServerKeys {
    /// Receives and validates the public keys sent by [`ClientKeys::setup`] for the same requests.
    pub fn setup(requests: &[KeyRequest], ch: &mut dyn Channel) -> Result<Self, LinearError> {
        let mut sets = BTreeMap::new();
        for p in normalized(requests) {
            let ctx = p.context()?;
            let msg = ch.recv()?;
            let expected = 1 + 32 + poly_bytes(p);
            if msg.len() != expected {
                return Err(LinearError::MessageLength {
                    what: "public key",
                    expected,
                    got: msg.len(),
                });
            }
            if msg[0] != p.tag() {
                return Err(LinearError::ParamsMismatch {
                    expected: p.tag() as u32,
                    got: msg[0] as u32,
                });
            }
            let seed: [u8; 32] = msg[1..33].try_into().expect("length checked");
            let a = expand_seed(&ctx, ctx.len(), &seed);
            let pk0 = read_poly(&ctx, Representation::Ntt, &msg[33..], "public key")?;
            sets.insert(p, PublicKey { pk0, a });
        }
        Ok(ServerKeys { sets })
    }

    pub(crate) fn get(&self, p: HeParamsId) -> Result<&PublicKey, LinearError> {
        self.sets
            .get(&p)
            .ok_or(LinearError::MissingKey { params: p.name() })
    }
}
