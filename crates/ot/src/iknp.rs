//! IKNP OT extension (Ishai–Kilian–Nissim–Petrank, CRYPTO 2003), semi-honest, producing random
//! correlated OTs with a global Δ.
//!
//! Roles are swapped with respect to the base OTs: the COT *sender* (holder of Δ) is the receiver
//! of 128 base OTs with choice bits Δ, the COT *receiver* is their sender with seed pairs
//! `(k_{j,0}, k_{j,1})`. For a batch of `m` COTs [IKNP03 §3, Fig. 1]:
//! - receiver: random choices `r ∈ {0,1}^m`; columns `t_j = G(k_{j,0})`, sends
//!   `u_j = t_j ⊕ G(k_{j,1}) ⊕ r` for j < 128 (one flight, 16·m bytes);
//! - sender: `q_j = G(k_{j,Δ_j}) ⊕ Δ_j·u_j = t_j ⊕ Δ_j·r`;
//! - rows of the transposed matrices satisfy `Q_i = T_i ⊕ r_i·Δ`.
//!
//! `G` is AES-CTR keyed by the seed, resumed across batches. Finally the sender clears `lsb(Q_i)`
//! and the receiver sets `lsb(T_i) = r_i`; with `lsb(Δ) = 1` the correlation still holds and the
//! choice bit travels in the block.

use rand_chacha::ChaCha20Rng;
use rand_core::{CryptoRng, RngCore, SeedableRng};
use transport::Channel;

use crate::hash::Prg;
use crate::{base, Block, OtError, Result};

/// COTs per IKNP message (4 MiB of columns): larger requests are split into several messages of
/// the same flight.
pub const MAX_BATCH: usize = 1 << 18;

/// Transposes a 128×128 bit matrix in place: afterwards bit `j` of `a[i]` is bit `i` of the
/// original `a[j]` (recursive block swap, [Warren, Hacker's Delight §7-3]).
pub(crate) fn transpose128(a: &mut [u128; 128]) {
    const MASKS: [u128; 7] = [
        0x0000_0000_0000_0000_ffff_ffff_ffff_ffff,
        0x0000_0000_ffff_ffff_0000_0000_ffff_ffff,
        0x0000_ffff_0000_ffff_0000_ffff_0000_ffff,
        0x00ff_00ff_00ff_00ff_00ff_00ff_00ff_00ff,
        0x0f0f_0f0f_0f0f_0f0f_0f0f_0f0f_0f0f_0f0f,
        0x3333_3333_3333_3333_3333_3333_3333_3333,
        0x5555_5555_5555_5555_5555_5555_5555_5555,
    ];
    let mut j = 64usize;
    for m in MASKS {
        let mut k = 0usize;
        while k < 128 {
            if k & j == 0 {
                // Swap the high-column half of row k with the low-column half of row k + j.
                let t = ((a[k] >> j) ^ a[k + j]) & m;
                a[k] ^= t << j;
                a[k + j] ^= t;
            }
            k += 1;
        }
        j >>= 1;
    }
}

/// Turns 128 columns of `chunks` blocks each (column j at `cols[j*chunks..]`) into `128·chunks`
/// rows.
fn columns_to_rows(cols: &[Block], chunks: usize, out: &mut Vec<Block>) {
    let mut a = [0u128; 128];
    for c in 0..chunks {
        for (j, x) in a.iter_mut().enumerate() {
            *x = cols[j * chunks + c].0;
        }
        transpose128(&mut a);
        out.extend(a.iter().map(|&x| Block(x)));
    }
}

/// IKNP sender: holds Δ.
pub struct IknpSender {
    delta: Block,
    prgs: Vec<Prg>,
}

/// IKNP receiver: picks the random choice bits.
pub struct IknpReceiver {
    prgs: Vec<[Prg; 2]>,
    rng: ChaCha20Rng,
}

impl IknpSender {
    /// Runs 128 base OTs (as their receiver, choices = bits of Δ). `lsb(Δ)` is forced to 1.
    pub fn setup<C, R>(ch: &mut C, rng: &mut R) -> Result<IknpSender>
    where
        C: Channel + ?Sized,
        R: RngCore + CryptoRng,
    {
        let mut d = [0u8; 16];
        rng.fill_bytes(&mut d);
        let delta = Block::from_bytes(d).with_lsb(true);
        Self::setup_with_delta(ch, rng, delta)
    }

    /// As [`IknpSender::setup`] with a given Δ (whose lsb must be 1).
    fn setup_with_delta<C, R>(ch: &mut C, rng: &mut R, delta: Block) -> Result<IknpSender>
    where
        C: Channel + ?Sized,
        R: RngCore + CryptoRng,
    {
        debug_assert!(delta.lsb(), "lsb(Δ) must be 1");
        let choices: Vec<bool> = (0..128).map(|j| (delta.0 >> j) & 1 == 1).collect();
        let keys = base::receive(ch, rng, &choices)?;
        Ok(IknpSender {
            delta,
            prgs: keys.into_iter().map(Prg::new).collect(),
        })
    }

    /// Δ.
    pub fn delta(&self) -> Block {
        self.delta
    }

    /// Consumes the receiver's column message for `n` COTs and returns `q_i` (with `lsb = 0`).
    pub fn process(&mut self, msg: &[u8], n: usize) -> Result<Vec<Block>> {
        let chunks = n.div_ceil(128);
        let expected = 128 * chunks * 16;
        if msg.len() != expected {
            return Err(OtError::BadMessage {
                what: "IKNP columns",
                expected,
                got: msg.len(),
            });
        }
        let mut cols = vec![Block::ZERO; 128 * chunks];
        for (j, prg) in self.prgs.iter_mut().enumerate() {
            let col = &mut cols[j * chunks..(j + 1) * chunks];
            prg.fill(col);
            if (self.delta.0 >> j) & 1 == 1 {
                let u = &msg[j * chunks * 16..(j + 1) * chunks * 16];
                for (c, b) in col.iter_mut().zip(u.chunks_exact(16)) {
                    *c ^= Block::from_bytes(b.try_into().expect("16 bytes"));
                }
            }
        }
        let mut q = Vec::with_capacity(128 * chunks);
        columns_to_rows(&cols, chunks, &mut q);
        q.truncate(n);
        for x in q.iter_mut() {
            *x = x.with_lsb(false);
        }
        Ok(q)
    }

    /// Driver: receives one column message per batch of at most [`MAX_BATCH`] and returns `n` COTs.
    pub fn extend<C: Channel + ?Sized>(&mut self, ch: &mut C, n: usize) -> Result<Vec<Block>> {
        let mut out = Vec::with_capacity(n);
        let mut left = n;
        while left > 0 {
            let m = left.min(MAX_BATCH);
            let msg = ch.recv()?;
            out.extend(self.process(&msg, m)?);
            left -= m;
        }
        Ok(out)
    }
}

impl Drop for IknpSender {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.delta);
    }
}

/// An IKNP receiver whose base OTs await the peer's reply ([`IknpReceiver::start`]).
pub struct IknpReceiverSetup {
    base: base::BaseSender,
    rng: ChaCha20Rng,
}

impl IknpReceiverSetup {
    /// Reads the base OTs' reply: the receiver, ready to extend.
    pub fn finish<C: Channel + ?Sized>(self, ch: &mut C) -> Result<IknpReceiver> {
        let pairs = self.base.finish(ch)?;
        let prgs = pairs
            .into_iter()
            .map(|[k0, k1]| [Prg::new(k0), Prg::new(k1)])
            .collect();
        Ok(IknpReceiver {
            prgs,
            rng: self.rng,
        })
    }
}

impl IknpReceiver {
    /// Runs 128 base OTs as their sender.
    pub fn setup<C, R>(ch: &mut C, rng: &mut R) -> Result<IknpReceiver>
    where
        C: Channel + ?Sized,
        R: RngCore + CryptoRng,
    {
        Self::start(ch, rng)?.finish(ch)
    }

    /// The first flight of [`IknpReceiver::setup`] (queued); [`IknpReceiverSetup::finish`]
    /// reads the reply, so the peer's own setup can run between the two.
    pub fn start<C, R>(ch: &mut C, rng: &mut R) -> Result<IknpReceiverSetup>
    where
        C: Channel + ?Sized,
        R: RngCore + CryptoRng,
    {
        let base = base::send_start(ch, rng, 128)?;
        Ok(IknpReceiverSetup {
            base,
            rng: ChaCha20Rng::from_rng(rng).expect("ChaCha seeding from a CSPRNG"),
        })
    }

    /// Produces the column message for `n` COTs and the receiver's `t_i` (with `lsb(t_i) = r_i`).
    pub fn prepare(&mut self, n: usize) -> (Vec<u8>, Vec<Block>) {
        let chunks = n.div_ceil(128);
        let mut r = vec![Block::ZERO; chunks];
        for x in r.iter_mut() {
            let mut b = [0u8; 16];
            self.rng.fill_bytes(&mut b);
            *x = Block::from_bytes(b);
        }
        let mut cols = vec![Block::ZERO; 128 * chunks];
        let mut msg = Vec::with_capacity(128 * chunks * 16);
        let mut tmp = vec![Block::ZERO; chunks];
        for (j, [g0, g1]) in self.prgs.iter_mut().enumerate() {
            let col = &mut cols[j * chunks..(j + 1) * chunks];
            g0.fill(col);
            g1.fill(&mut tmp);
            for c in 0..chunks {
                msg.extend_from_slice(&(col[c] ^ tmp[c] ^ r[c]).to_bytes());
            }
        }
        let mut t = Vec::with_capacity(128 * chunks);
        columns_to_rows(&cols, chunks, &mut t);
        t.truncate(n);
        for (i, x) in t.iter_mut().enumerate() {
            let ri = (r[i / 128].0 >> (i % 128)) & 1 == 1;
            *x = x.with_lsb(ri);
        }
        (msg, t)
    }

    /// Driver: sends one column message per batch of at most [`MAX_BATCH`] and returns `n` COTs.
    pub fn extend<C: Channel + ?Sized>(&mut self, ch: &mut C, n: usize) -> Result<Vec<Block>> {
        let mut out = Vec::with_capacity(n);
        let mut left = n;
        while left > 0 {
            let m = left.min(MAX_BATCH);
            let (msg, t) = self.prepare(m);
            ch.send(&msg)?;
            out.extend(t);
            left -= m;
        }
        ch.flush()?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::needless_range_loop)]
    fn transpose_matches_naive() {
        let mut a = [0u128; 128];
        let mut s = 0x1234_5678_9abc_def0u128;
        for x in a.iter_mut() {
            s = s
                .wrapping_mul(0x2545_f491_4f6c_dd1d_9e37_79b9_7f4a_7c15)
                .wrapping_add(1);
            *x = s ^ (s >> 61);
        }
        let orig = a;
        transpose128(&mut a);
        for i in 0..128 {
            for j in 0..128 {
                assert_eq!((a[i] >> j) & 1, (orig[j] >> i) & 1, "({i},{j})");
            }
        }
    }
}
