//! Base OT: the "simplest OT" of Chou and Orlandi (LATINCRYPT 2015) over the Ristretto group,
//! semi-honest, with keys hashed together with the transcript and the OT index.
//!
//! Message flow for `n` OTs (two flights):
//! 1. sender → receiver: `A = a·G` (32 bytes).
//! 2. receiver → sender: `B_i = b_i·G + c_i·A` for each choice bit `c_i` (32·n bytes).
//!
//! Keys: sender `k_{i,0} = H(i, A, B_i, a·B_i)`, `k_{i,1} = H(i, A, B_i, a·(B_i − A))`;
//! receiver `k_{i,c_i} = H(i, A, B_i, b_i·A)`. Every received point is decoded and checked
//! (canonical encoding, not the identity) before use.

use curve25519_dalek::constants::RISTRETTO_BASEPOINT_TABLE;
use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::Identity;
use rand_core::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};
use subtle::{Choice, ConditionallySelectable};
use transport::Channel;
use zeroize::Zeroize;

use crate::{Block, OtError, Result};

/// Most base OTs one call may run (a guard against absurd allocations).
pub const MAX_BASE_OTS: usize = 1 << 16;

fn key(i: usize, a: &CompressedRistretto, b: &[u8], p: &RistrettoPoint) -> Block {
    let mut h = Sha256::new();
    h.update(b"privinfer/ot/base/chou-orlandi/v1");
    h.update((i as u64).to_le_bytes());
    h.update(a.as_bytes());
    h.update(b);
    h.update(p.compress().as_bytes());
    let d = h.finalize();
    Block::from_bytes(d[..16].try_into().expect("16 bytes"))
}

fn decode(bytes: &[u8], what: &'static str, index: usize) -> Result<RistrettoPoint> {
    let c = CompressedRistretto::from_slice(bytes)
        .map_err(|_| OtError::InvalidPoint { what, index })?;
    let p = c
        .decompress()
        .ok_or(OtError::InvalidPoint { what, index })?;
    if p == RistrettoPoint::identity() {
        return Err(OtError::InvalidPoint { what, index });
    }
    Ok(p)
}

/// Sender side of `n` base OTs: returns `(k_{i,0}, k_{i,1})` for each i.
pub fn send<C, R>(ch: &mut C, rng: &mut R, n: usize) -> Result<Vec<[Block; 2]>>
where
    C: Channel + ?Sized,
    R: RngCore + CryptoRng,
{
    send_start(ch, rng, n)?.finish(ch)
}

/// The sender's flight of `n` base OTs (A, queued): the peer may run other base OTs before it
/// replies, so a party can start its sender's OTs, answer the peer's, then finish its own.
pub fn send_start<C, R>(ch: &mut C, rng: &mut R, n: usize) -> Result<BaseSender>
where
    C: Channel + ?Sized,
    R: RngCore + CryptoRng,
{
    if n > MAX_BASE_OTS {
        return Err(OtError::TooMany {
            requested: n,
            max: MAX_BASE_OTS,
        });
    }
    let a = Scalar::random(rng);
    let big_a = &a * RISTRETTO_BASEPOINT_TABLE;
    let a_c = big_a.compress();
    ch.send(a_c.as_bytes())?;
    Ok(BaseSender { a, big_a, a_c, n })
}

/// A base-OT sender between its flight and the receiver's reply ([`send_start`]); its secret
/// scalar is zeroized on drop.
pub struct BaseSender {
    a: Scalar,
    big_a: RistrettoPoint,
    a_c: CompressedRistretto,
    n: usize,
}

impl BaseSender {
    /// Reads the receiver's reply and returns `(k_{i,0}, k_{i,1})` for each i.
    pub fn finish<C: Channel + ?Sized>(self, ch: &mut C) -> Result<Vec<[Block; 2]>> {
        let n = self.n;
        let msg = ch.recv()?;
        if msg.len() != 32 * n {
            return Err(OtError::BadMessage {
                what: "base OT receiver",
                expected: 32 * n,
                got: msg.len(),
            });
        }
        let mut out = Vec::with_capacity(n);
        for (i, enc) in msg.chunks_exact(32).enumerate() {
            let b = decode(enc, "base OT receiver", i)?;
            let ab = self.a * b;
            let ab_minus = ab - self.a * self.big_a;
            out.push([
                key(i, &self.a_c, enc, &ab),
                key(i, &self.a_c, enc, &ab_minus),
            ]);
        }
        Ok(out)
    }
}

impl Drop for BaseSender {
    fn drop(&mut self) {
        self.a.zeroize();
    }
}

/// Receiver side of base OTs with the given choice bits: returns `k_{i,c_i}` for each i.
pub fn receive<C, R>(ch: &mut C, rng: &mut R, choices: &[bool]) -> Result<Vec<Block>>
where
    C: Channel + ?Sized,
    R: RngCore + CryptoRng,
{
    let n = choices.len();
    if n > MAX_BASE_OTS {
        return Err(OtError::TooMany {
            requested: n,
            max: MAX_BASE_OTS,
        });
    }
    let msg = ch.recv()?;
    if msg.len() != 32 {
        return Err(OtError::BadMessage {
            what: "base OT sender",
            expected: 32,
            got: msg.len(),
        });
    }
    let big_a = decode(&msg, "base OT sender", 0)?;
    let a_c = big_a.compress();
    let mut reply = Vec::with_capacity(32 * n);
    let mut keys = Vec::with_capacity(n);
    for (i, &c) in choices.iter().enumerate() {
        let mut b = Scalar::random(rng);
        let bg = &b * RISTRETTO_BASEPOINT_TABLE;
        // B = b·G + c·A, selected without a branch on the secret choice bit.
        let big_b = RistrettoPoint::conditional_select(&bg, &(bg + big_a), Choice::from(c as u8));
        let enc = big_b.compress();
        reply.extend_from_slice(enc.as_bytes());
        keys.push(key(i, &a_c, enc.as_bytes(), &(b * big_a)));
        b.zeroize();
    }
    ch.send(&reply)?;
    ch.flush()?;
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::rand_core::SeedableRng;
    use rand_chacha::ChaCha20Rng;
    use transport::MemoryChannel;

    #[test]
    fn base_ot_delivers_the_chosen_key_only() {
        let (mut c0, mut c1) = MemoryChannel::pair();
        let choices: Vec<bool> = (0..40).map(|i| (i * 7 + 3) % 5 < 2).collect();
        let ch2 = choices.clone();
        let h = std::thread::spawn(move || {
            receive(&mut c1, &mut ChaCha20Rng::seed_from_u64(2), &ch2).unwrap()
        });
        let pairs = send(&mut c0, &mut ChaCha20Rng::seed_from_u64(1), 40).unwrap();
        let got = h.join().unwrap();
        for i in 0..40 {
            assert_eq!(got[i], pairs[i][choices[i] as usize]);
            assert_ne!(got[i], pairs[i][!choices[i] as usize]);
        }
    }

    #[test]
    fn invalid_points_are_rejected() {
        let (mut c0, mut c1) = MemoryChannel::pair();
        c1.send(&[0xffu8; 32]).unwrap();
        let e = receive(&mut c0, &mut ChaCha20Rng::seed_from_u64(2), &[true]).unwrap_err();
        assert!(matches!(e, OtError::InvalidPoint { .. }), "{e}");
        // The identity is refused too.
        c1.send(RistrettoPoint::identity().compress().as_bytes())
            .unwrap();
        let e = receive(&mut c0, &mut ChaCha20Rng::seed_from_u64(2), &[true]).unwrap_err();
        assert!(matches!(e, OtError::InvalidPoint { .. }), "{e}");
    }
}
