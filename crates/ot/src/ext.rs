//! OTs derived from random correlated OT: random OT, chosen-message OT, correlated additive OT
//! over Z_{2^ℓ}, and 1-out-of-N OT.
//!
//! COT `i` of a call (global index `g = consumed + i`) gives the sender the two keys `q_i` and
//! `q_i ⊕ Δ` and the receiver `t_i = q_i ⊕ b_i·Δ`. Hashing with the tweakable correlation-robust
//! hash `H(·, g)` ([`crate::hash::tccr`]) turns them into a random OT [IKNP03 §3; GKWY20 §7].
//! Chosen choices `c_i` are imposed by one derandomization bit `d_i = c_i ⊕ b_i` per OT sent by the
//! receiver [Beaver 1995]: the sender's key for message `j` is `q_i ⊕ (d_i ⊕ j)·Δ`, so the receiver
//! holds exactly the key of message `c_i`.

use transport::Channel;

use crate::bits::{mask, pack_bools, pack_into, packed_len, unpack, unpack_bools};
use crate::hash::{tccr_batch, tccr_expand};
use crate::{Block, CotReceiver, CotSender, OtError, Result};

/// Widest message of the ℓ-bit OTs, in bits.
pub const MAX_BITS: u32 = 64;
/// Largest `log2 N` of the 1-of-N OT.
pub const MAX_LOG_N: u32 = 8;

/// Largest single message of a derived-OT step; longer payloads travel as several messages (same
/// flight), so any channel limit of at least 4 MiB works for any batch size.
pub const MAX_PAYLOAD_MESSAGE: usize = 1 << 22;

/// Sends `bytes` as ⌈len / MAX_PAYLOAD_MESSAGE⌉ messages (one empty message when empty).
fn send_chunked<C: Channel + ?Sized>(ch: &mut C, bytes: &[u8]) -> Result<()> {
    if bytes.is_empty() {
        ch.send(&[])?;
    }
    for c in bytes.chunks(MAX_PAYLOAD_MESSAGE) {
        ch.send(c)?;
    }
    ch.flush()?;
    Ok(())
}

/// Receives exactly `total` bytes sent by [`send_chunked`], checking every piece's length.
fn recv_chunked<C: Channel + ?Sized>(
    ch: &mut C,
    total: usize,
    what: &'static str,
) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(total);
    loop {
        let expected = (total - out.len()).min(MAX_PAYLOAD_MESSAGE);
        let m = ch.recv()?;
        if m.len() != expected {
            return Err(OtError::BadMessage {
                what,
                expected,
                got: m.len(),
            });
        }
        out.extend_from_slice(&m);
        if out.len() == total {
            return Ok(out);
        }
    }
}

fn check_bits(bits: u32) -> Result<()> {
    if bits == 0 || bits > MAX_BITS {
        return Err(OtError::InvalidBitWidth {
            bits,
            max: MAX_BITS,
        });
    }
    Ok(())
}

fn check_log_n(log_n: u32) -> Result<()> {
    if log_n == 0 || log_n > MAX_LOG_N {
        return Err(OtError::InvalidLogN {
            log_n,
            max: MAX_LOG_N,
        });
    }
    Ok(())
}

/// `(H(q_i, g_i), H(q_i ⊕ Δ, g_i))` for a batch of COTs starting at global index `g0`.
fn hash_pairs(q: &[Block], delta: Block, g0: u64) -> (Vec<Block>, Vec<Block>) {
    let mut h0 = vec![Block::ZERO; q.len()];
    let mut h1 = vec![Block::ZERO; q.len()];
    tccr_batch(q, g0 as u128, &mut h0);
    let q1: Vec<Block> = q.iter().map(|&x| x ^ delta).collect();
    tccr_batch(&q1, g0 as u128, &mut h1);
    (h0, h1)
}

fn hash_one_side(t: &[Block], g0: u64) -> Vec<Block> {
    let mut h = vec![Block::ZERO; t.len()];
    tccr_batch(t, g0 as u128, &mut h);
    h
}

/// `if c { b } else { a }` without a branch or a secret-dependent index.
#[inline]
fn ct_select(a: u64, b: u64, c: bool) -> u64 {
    let m = (c as u64).wrapping_neg();
    (a & !m) | (b & m)
}

/// All ones if `x == c`, else zero, without a branch.
#[inline]
fn ct_eq_mask(x: usize, c: usize) -> u64 {
    let d = (x ^ c) as u64;
    // d | -d has its top bit set iff d ≠ 0.
    ((d | d.wrapping_neg()) >> 63).wrapping_sub(1)
}

/// Bits `[x·bits, (x+1)·bits)` of the little-endian bit string `e`.
#[inline]
fn chunk(e: &[Block], x: usize, bits: u32) -> u64 {
    let off = x * bits as usize;
    let (w, sh) = (off / 128, (off % 128) as u32);
    let mut v = e[w].0 >> sh;
    if sh + bits > 128 {
        v |= e[w + 1].0 << (128 - sh);
    }
    v as u64 & mask(bits)
}

impl CotSender {
    /// Random 1-of-2 OT of `bits`-bit messages (1 ≤ bits ≤ 64): returns `[m_{i,0}, m_{i,1}]`;
    /// the receiver's [`CotReceiver::recv_random`] gets a random `b_i` and `m_{i,b_i}`. No traffic
    /// beyond the COT extension.
    pub fn send_random<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        n: usize,
        bits: u32,
    ) -> Result<Vec<[u64; 2]>> {
        check_bits(bits)?;
        let g0 = self.consumed();
        let q = self.extend(ch, n)?;
        let (h0, h1) = hash_pairs(&q, self.delta(), g0);
        let m = mask(bits);
        Ok(h0
            .iter()
            .zip(&h1)
            .map(|(a, b)| [a.low_u64() & m, b.low_u64() & m])
            .collect())
    }

    /// Chosen-message 1-of-2 OT: the receiver, with choice `c_i`, learns `m_c[i]` (each message
    /// below 2^bits, 1 ≤ bits ≤ 64) and nothing about the other. Traffic: n bits receiver → sender,
    /// then 2·n·bits bits sender → receiver.
    pub fn send_chosen<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        m0: &[u64],
        m1: &[u64],
        bits: u32,
    ) -> Result<()> {
        check_bits(bits)?;
        if m0.len() != m1.len() {
            return Err(OtError::LengthMismatch {
                what: "chosen OT messages",
                left: m0.len(),
                right: m1.len(),
            });
        }
        let mk = mask(bits);
        for (index, &value) in m0.iter().chain(m1).enumerate() {
            if value & !mk != 0 {
                return Err(OtError::ValueOutOfRange {
                    index: index % m0.len(),
                    value,
                    bits,
                });
            }
        }
        let n = m0.len();
        let g0 = self.consumed();
        let q = self.extend(ch, n)?;
        let d = unpack_bools(
            &recv_chunked(ch, n.div_ceil(8), "chosen OT derandomization")?,
            n,
            "chosen OT derandomization",
        )?;
        let (h0, h1) = hash_pairs(&q, self.delta(), g0);
        let mut out = Vec::with_capacity(packed_len(2 * n, bits));
        let ys = (0..n).flat_map(|i| {
            let (k0, k1) = if d[i] { (h1[i], h0[i]) } else { (h0[i], h1[i]) };
            [m0[i] ^ k0.low_u64(), m1[i] ^ k1.low_u64()]
        });
        pack_into(ys, bits, &mut out);
        send_chunked(ch, &out)?;
        Ok(())
    }

    /// Correlated additive OT over Z_{2^bits}: returns random `x_i`; the receiver with choice `c_i`
    /// gets `x_i + c_i·corr_i mod 2^bits` ([`CotReceiver::recv_correlated`]). `corr` is taken mod
    /// 2^bits. Traffic: n bits receiver → sender, then n·bits bits sender → receiver.
    pub fn send_correlated<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        corr: &[u64],
        bits: u32,
    ) -> Result<Vec<u64>> {
        check_bits(bits)?;
        let n = corr.len();
        let g0 = self.consumed();
        let q = self.extend(ch, n)?;
        let d = unpack_bools(
            &recv_chunked(ch, n.div_ceil(8), "correlated OT derandomization")?,
            n,
            "correlated OT derandomization",
        )?;
        let (h0, h1) = hash_pairs(&q, self.delta(), g0);
        let mk = mask(bits);
        let mut xs = Vec::with_capacity(n);
        let mut ys = Vec::with_capacity(n);
        for i in 0..n {
            let (k0, k1) = if d[i] { (h1[i], h0[i]) } else { (h0[i], h1[i]) };
            let x = k0.low_u64() & mk;
            ys.push(k1.low_u64().wrapping_sub(x).wrapping_sub(corr[i]) & mk);
            xs.push(x);
        }
        let mut out = Vec::with_capacity(packed_len(n, bits));
        pack_into(ys, bits, &mut out);
        send_chunked(ch, &out)?;
        Ok(xs)
    }

    /// Correlated additive OT with the receiver's *random* choice bits (no derandomization, one
    /// flight): returns `x_i`; the receiver gets `b_i` and `x_i + b_i·corr_i mod 2^bits`
    /// ([`CotReceiver::recv_correlated_random`]). Traffic: n·bits bits sender → receiver.
    pub fn send_correlated_random<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        corr: &[u64],
        bits: u32,
    ) -> Result<Vec<u64>> {
        check_bits(bits)?;
        let n = corr.len();
        let g0 = self.consumed();
        let q = self.extend(ch, n)?;
        let (h0, h1) = hash_pairs(&q, self.delta(), g0);
        let mk = mask(bits);
        let xs: Vec<u64> = h0.iter().map(|h| h.low_u64() & mk).collect();
        let ys = (0..n).map(|i| h1[i].low_u64().wrapping_sub(xs[i]).wrapping_sub(corr[i]) & mk);
        let mut out = Vec::with_capacity(packed_len(n, bits));
        pack_into(ys, bits, &mut out);
        send_chunked(ch, &out)?;
        Ok(xs)
    }

    /// 1-out-of-N OT, N = 2^log_n (1 ≤ log_n ≤ 8), of `bits`-bit messages: `msgs` holds n·N values,
    /// row-major (`msgs[i·N + x]` is message x of OT i); the receiver learns `msgs[i·N + c_i]` only.
    ///
    /// Built from log_n random COTs per OT [Naor–Pinkas 1999 "1-out-of-N from log N 1-of-2",
    /// as used by CrypTFlow2 §3]: with keys `k_{j,0}, k_{j,1}` of COT j (after derandomization), the
    /// pad of message x is `⊕_j F(k_{j,x_j})[x]`, where `F(k)` is `H(k, ·)` expanded to N·bits bits
    /// and `[x]` its x-th `bits`-bit chunk. For x ≠ c some key `k_{j,x_j}` is unknown to the
    /// receiver, so the pad is pseudorandom. Traffic: n·log_n bits receiver → sender, then
    /// n·N·bits bits sender → receiver.
    pub fn send_1_of_n<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        log_n: u32,
        msgs: &[u64],
        bits: u32,
    ) -> Result<()> {
        check_bits(bits)?;
        check_log_n(log_n)?;
        let big_n = 1usize << log_n;
        if msgs.len() & (big_n - 1) != 0 {
            return Err(OtError::LengthMismatch {
                what: "1-of-N messages (a multiple of N)",
                left: msgs.len(),
                right: big_n,
            });
        }
        let mk = mask(bits);
        for (index, &value) in msgs.iter().enumerate() {
            if value & !mk != 0 {
                return Err(OtError::ValueOutOfRange { index, value, bits });
            }
        }
        let n = msgs.len() / big_n;
        let m = log_n as usize;
        let g0 = self.consumed();
        let q = self.extend(ch, n * m)?;
        let d = unpack_bools(
            &recv_chunked(ch, (n * m).div_ceil(8), "1-of-N OT derandomization")?,
            n * m,
            "1-of-N OT derandomization",
        )?;
        let delta = self.delta();
        let blocks = (big_n * bits as usize).div_ceil(128);
        // e[(j·2 + b)·blocks ..] holds F(k_{j,b}) for the current OT.
        let mut e = vec![Block::ZERO; 2 * m * blocks];
        let mut ys = Vec::with_capacity(n * big_n);
        for i in 0..n {
            for j in 0..m {
                let idx = i * m + j;
                let k0 = q[idx] ^ delta.and_bit(d[idx]);
                let tweak = (g0 + idx as u64) as u128;
                tccr_expand(k0, tweak, &mut e[(2 * j) * blocks..(2 * j + 1) * blocks]);
                tccr_expand(
                    k0 ^ delta,
                    tweak,
                    &mut e[(2 * j + 1) * blocks..(2 * j + 2) * blocks],
                );
            }
            for x in 0..big_n {
                let mut pad = 0u64;
                for j in 0..m {
                    let b = (x >> j) & 1;
                    pad ^= chunk(&e[(2 * j + b) * blocks..(2 * j + b + 1) * blocks], x, bits);
                }
                ys.push(msgs[i * big_n + x] ^ pad);
            }
        }
        let mut out = Vec::with_capacity(packed_len(n * big_n, bits));
        pack_into(ys, bits, &mut out);
        send_chunked(ch, &out)?;
        Ok(())
    }
}

impl CotReceiver {
    /// Random 1-of-2 OT of `bits`-bit messages: returns the random choice bits `b_i` and
    /// `m_{i,b_i}` (pairs with [`CotSender::send_random`]).
    pub fn recv_random<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        n: usize,
        bits: u32,
    ) -> Result<(Vec<bool>, Vec<u64>)> {
        check_bits(bits)?;
        let g0 = self.consumed();
        let t = self.extend(ch, n)?;
        let h = hash_one_side(&t, g0);
        let m = mask(bits);
        Ok((
            t.iter().map(|x| x.lsb()).collect(),
            h.iter().map(|x| x.low_u64() & m).collect(),
        ))
    }

    /// Chosen-message 1-of-2 OT: returns `m_{c_i}` (pairs with [`CotSender::send_chosen`]).
    pub fn recv_chosen<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        choices: &[bool],
        bits: u32,
    ) -> Result<Vec<u64>> {
        check_bits(bits)?;
        let n = choices.len();
        let g0 = self.consumed();
        let t = self.extend(ch, n)?;
        let d: Vec<bool> = t.iter().zip(choices).map(|(x, &c)| x.lsb() ^ c).collect();
        send_chunked(ch, &pack_bools(&d))?;
        let ys = unpack(
            &recv_chunked(ch, packed_len(2 * n, bits), "chosen OT payload")?,
            2 * n,
            bits,
            "chosen OT payload",
        )?;
        let h = hash_one_side(&t, g0);
        let mk = mask(bits);
        Ok((0..n)
            .map(|i| (ct_select(ys[2 * i], ys[2 * i + 1], choices[i]) ^ h[i].low_u64()) & mk)
            .collect())
    }

    /// Correlated additive OT: returns `x_i + c_i·corr_i mod 2^bits` (pairs with
    /// [`CotSender::send_correlated`]).
    pub fn recv_correlated<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        choices: &[bool],
        bits: u32,
    ) -> Result<Vec<u64>> {
        check_bits(bits)?;
        let n = choices.len();
        let g0 = self.consumed();
        let t = self.extend(ch, n)?;
        let d: Vec<bool> = t.iter().zip(choices).map(|(x, &c)| x.lsb() ^ c).collect();
        send_chunked(ch, &pack_bools(&d))?;
        let ys = unpack(
            &recv_chunked(ch, packed_len(n, bits), "correlated OT payload")?,
            n,
            bits,
            "correlated OT payload",
        )?;
        let h = hash_one_side(&t, g0);
        let mk = mask(bits);
        Ok((0..n)
            .map(|i| {
                let k = h[i].low_u64();
                let y = ys[i] & (choices[i] as u64).wrapping_neg();
                k.wrapping_sub(y) & mk
            })
            .collect())
    }

    /// Correlated additive OT with random choices: returns `(b_i, x_i + b_i·corr_i mod 2^bits)`
    /// (pairs with [`CotSender::send_correlated_random`]).
    pub fn recv_correlated_random<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        n: usize,
        bits: u32,
    ) -> Result<(Vec<bool>, Vec<u64>)> {
        check_bits(bits)?;
        let g0 = self.consumed();
        let t = self.extend(ch, n)?;
        let ys = unpack(
            &recv_chunked(ch, packed_len(n, bits), "correlated OT payload")?,
            n,
            bits,
            "correlated OT payload",
        )?;
        let h = hash_one_side(&t, g0);
        let mk = mask(bits);
        let b: Vec<bool> = t.iter().map(|x| x.lsb()).collect();
        let v = (0..n)
            .map(|i| {
                h[i].low_u64()
                    .wrapping_sub(ys[i] & (b[i] as u64).wrapping_neg())
                    & mk
            })
            .collect();
        Ok((b, v))
    }

    /// 1-out-of-N OT: returns message `c_i` of each OT (pairs with [`CotSender::send_1_of_n`]);
    /// every choice must be below N = 2^log_n.
    pub fn recv_1_of_n<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        log_n: u32,
        choices: &[u8],
        bits: u32,
    ) -> Result<Vec<u64>> {
        check_bits(bits)?;
        check_log_n(log_n)?;
        let big_n = 1usize << log_n;
        for (index, &c) in choices.iter().enumerate() {
            if c as usize >= big_n {
                return Err(OtError::ChoiceOutOfRange {
                    index,
                    choice: c as u32,
                    n: big_n as u32,
                });
            }
        }
        let n = choices.len();
        let m = log_n as usize;
        let g0 = self.consumed();
        let t = self.extend(ch, n * m)?;
        let d: Vec<bool> = (0..n * m)
            .map(|idx| t[idx].lsb() ^ ((choices[idx / m] >> (idx % m)) & 1 == 1))
            .collect();
        send_chunked(ch, &pack_bools(&d))?;
        let ys = unpack(
            &recv_chunked(ch, packed_len(n * big_n, bits), "1-of-N OT payload")?,
            n * big_n,
            bits,
            "1-of-N OT payload",
        )?;
        let blocks = (big_n * bits as usize).div_ceil(128);
        let mut e = vec![Block::ZERO; blocks];
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            let c = choices[i] as usize;
            let mut pad = 0u64;
            for j in 0..m {
                let idx = i * m + j;
                tccr_expand(t[idx], (g0 + idx as u64) as u128, &mut e);
                // Every chunk is read and the chosen one kept by a mask: no secret-indexed access.
                for x in 0..big_n {
                    pad ^= chunk(&e, x, bits) & ct_eq_mask(x, c);
                }
            }
            let mut y = 0u64;
            for (x, &v) in ys[i * big_n..(i + 1) * big_n].iter().enumerate() {
                y |= v & ct_eq_mask(x, c);
            }
            out.push(y ^ pad);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_helpers() {
        for (x, c) in [
            (0usize, 0usize),
            (0, 1),
            (1, 0),
            (255, 255),
            (17, 16),
            (usize::MAX, usize::MAX),
        ] {
            assert_eq!(
                ct_eq_mask(x, c),
                if x == c { u64::MAX } else { 0 },
                "({x}, {c})"
            );
        }
        assert_eq!(ct_select(3, 9, false), 3);
        assert_eq!(ct_select(3, 9, true), 9);
    }

    #[test]
    fn chunk_crosses_block_boundaries() {
        let e = [Block(u128::MAX << 120), Block(0b101)];
        // Bits 120..127 are ones, 128 and 130 are ones: the 11-bit chunk at offset 121 (x = 11).
        assert_eq!(chunk(&e, 11, 11), 0b10_1111_1111);
    }
}
