//! OT-based product of a server-held matrix with a shared vector [CrypTFlow2 (Rathee et al., CCS
//! 2020) §5, the OT linear layers of SCI; Gilboa's product from correlated OT].
//!
//! y = M·x mod 2^ℓ with M known to P0 (the server) and x additively shared. P0 computes M·x₀ on
//! its own share; the cross term M·x₁ is shared bit by bit of P1's share: for input j and bit i
//! of x₁[j], one correlated OT whose correlation is the column M[·, j] (only its non-zeros,
//! whose positions are public). Since that term enters as 2^i·c·M[·, j], the OT's group is
//! Z_{2^{ℓ−i}}: bit i costs nnz_j·(ℓ−i) bits, input j costs nnz_j·ℓ(ℓ+1)/2 bits in all.
//!
//! Message flow (one round trip): P1 sends every derandomization bit e = c ⊕ b (ℓ bits per
//! input); P0 answers with y = p₀ − p₁ + M[·, j] for every (j, i), in messages of at most
//! [`CHUNK_BITS`] bits split at input boundaries. P0's pads come from the COT's two strings
//! q, q ⊕ Δ; P1 knows only p_b. Each pad is a tweakable circular-correlation-robust hash of
//! the COT string expanded over the tweaks (COT index, block k): every tweak serves one COT.
//!
//! Security (semi-honest): P0 sees e only, uniform because b is; P1 sees y = p_b' ± … where
//! p_{1−b} is pseudorandom to it, so y is uniform given its view (CrypTFlow2 Lemma, Gilboa).

use ot::hash::Aes;
use ot::Block;
use std::sync::OnceLock;
use transport::Channel;
use zeroize::Zeroize;

use crate::bits::{mask, recv_bits, BitReader, BitWriter};
use crate::ring::Ring;
use crate::session::{Party, Session};
use crate::{MpcError, Result};

/// Largest message P0 sends (bits): bounds what either party buffers at once.
pub const CHUNK_BITS: u64 = 1 << 25;

/// The public structure of a linear map x ↦ M·x, column by column.
pub trait Columns: Sync {
    /// Inputs (columns of M).
    fn n_in(&self) -> usize;
    /// Outputs (rows of M).
    fn n_out(&self) -> usize;
    /// Number of rows column `j` reaches.
    fn nnz(&self, j: usize) -> usize;
    /// Replaces `out` with the rows column `j` reaches, each < `n_out`, in the order in which
    /// P0's weights for it are listed.
    fn rows(&self, j: usize, out: &mut Vec<usize>);
}

/// What one product costs: COTs (P0 sender, P1 receiver) and the bytes each way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProductCost {
    pub cots: u64,
    /// P1 → P0 (client to server).
    pub bytes_c2s: u64,
    /// P0 → P1.
    pub bytes_s2c: u64,
    pub messages_c2s: u64,
    pub messages_s2c: u64,
}

/// Bits P0 sends for column `j` of `nnz` rows: nnz · ℓ(ℓ+1)/2.
fn column_bits(nnz: usize, ell: u32) -> u64 {
    nnz as u64 * (ell as u64 * (ell as u64 + 1) / 2)
}

/// The inputs of each of P0's messages (consecutive ranges, at most [`CHUNK_BITS`] each
/// unless one column alone is larger), and their sizes in bits.
fn chunks(cols: &dyn Columns, ell: u32) -> Vec<(std::ops::Range<usize>, u64)> {
    let mut out = Vec::new();
    let (mut start, mut bits) = (0usize, 0u64);
    for j in 0..cols.n_in() {
        let b = column_bits(cols.nnz(j), ell);
        if j > start && bits + b > CHUNK_BITS {
            out.push((start..j, bits));
            start = j;
            bits = 0;
        }
        bits += b;
    }
    if cols.n_in() > start {
        out.push((start..cols.n_in(), bits));
    }
    out
}

/// The exact cost of [`Session::product_server`] / [`Session::product_client`] on `cols`.
pub fn product_cost(cols: &dyn Columns, ell: u32) -> ProductCost {
    let n = cols.n_in() as u64;
    if n == 0 {
        return ProductCost::default();
    }
    let ch = chunks(cols, ell);
    ProductCost {
        cots: n * ell as u64,
        bytes_c2s: (n * ell as u64).div_ceil(8),
        bytes_s2c: ch.iter().map(|(_, b)| b.div_ceil(8)).sum(),
        messages_c2s: 1,
        messages_s2c: ch.len() as u64,
    }
}

fn pi() -> &'static Aes {
    static PI: OnceLock<Aes> = OnceLock::new();
    // Distinct from the other fixed keys of the workspace by choice; any constant works.
    PI.get_or_init(|| Aes::new(Block(0x7072_6f64_7563_745f_6f74_5f70_6164_7321)))
}

/// Pad blocks `H(x, τ | k << 64)`, k = 0..out.len(), with the TCCR hash
/// H(x, τ) = π(π(x) ⊕ τ) ⊕ π(x) [Guo–Katz–Wang–Yu, S&P 2020, §7.4]. `tweak` is the COT's
/// session-unique index and direction (bits 64..96 clear), so every tweak serves one COT.
fn expand(x: u128, tweak: u128, out: &mut [Block]) {
    let p = pi().encrypt(Block(x));
    for (k, o) in out.iter_mut().enumerate() {
        *o = Block(p.0 ^ tweak ^ ((k as u128) << 64));
    }
    pi().encrypt_many(out);
    for o in out.iter_mut() {
        o.0 ^= p.0;
    }
}

/// Reads consecutive `w`-bit fields from pad blocks.
struct PadBits<'a> {
    blocks: &'a [Block],
    pos: u64,
}

impl PadBits<'_> {
    #[inline]
    fn get(&mut self, w: u32) -> u64 {
        let (b, o) = ((self.pos / 128) as usize, (self.pos % 128) as u32);
        self.pos += w as u64;
        let lo = self.blocks[b].0 >> o;
        let v = if o + w > 128 {
            lo | (self.blocks[b + 1].0 << (128 - o))
        } else {
            lo
        };
        (v as u64) & mask(w)
    }
}

/// Overwrites pad blocks with zeros (volatile writes: not elided before the buffer is freed).
fn wipe(blocks: &mut [Block]) {
    for b in blocks.iter_mut() {
        b.0.zeroize();
    }
}

fn check_len(what: &'static str, expected: usize, got: usize) -> Result<()> {
    if expected != got {
        return Err(MpcError::LengthMismatch {
            what,
            expected,
            got,
        });
    }
    Ok(())
}

impl Session {
    /// P0's side of y = M·x: `x0` its share, `weights(j, out)` fills column j's non-zeros in the
    /// order of [`Columns::rows`]. Returns P0's share of y (length `n_out`).
    pub fn product_server<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        ring: Ring,
        cols: &dyn Columns,
        weights: &dyn Fn(usize, &mut Vec<u64>),
        x0: &[u64],
    ) -> Result<Vec<u64>> {
        debug_assert_eq!(self.party(), Party::P0);
        let (n, ell) = (cols.n_in(), ring.bits());
        check_len("product input", n, x0.len())?;
        let mut y = vec![0u64; cols.n_out()];
        if n == 0 {
            return Ok(y);
        }
        let (mut rows, mut w) = (Vec::new(), Vec::new());
        let (mut cots, _) = self.cots(ch, n * ell as usize, 0)?;
        let e_msg = recv_bits(
            ch,
            (n * ell as usize) as u64,
            "product derandomization bits",
        )?;
        let mut e = BitReader::new(&e_msg, (n * ell as usize) as u64, "product bits")?;
        let delta = cots.delta();
        let mut acc = Vec::new();
        let (mut p0, mut p1) = (Vec::new(), Vec::new());
        for (range, bits) in chunks(cols, ell) {
            let mut out = BitWriter::default();
            for j in range {
                cols.rows(j, &mut rows);
                weights(j, &mut w);
                check_len("product column weights", rows.len(), w.len())?;
                // M[·, j]·x0[j], P0's own term, then its shares of the cross term.
                acc.clear();
                acc.extend(w.iter().map(|&wk| wk.wrapping_mul(x0[j])));
                let (q, tw) = cots.take(ell as usize);
                for i in 0..ell {
                    let g = ell - i;
                    let nb = (rows.len() as u64 * g as u64).div_ceil(128) as usize;
                    p0.resize(nb, Block::ZERO);
                    p1.resize(nb, Block::ZERO);
                    let tweak = tw + i as u128;
                    expand(q[i as usize], tweak, &mut p0);
                    expand(q[i as usize] ^ delta, tweak, &mut p1);
                    let (mut r0, mut r1) = (
                        PadBits {
                            blocks: &p0,
                            pos: 0,
                        },
                        PadBits {
                            blocks: &p1,
                            pos: 0,
                        },
                    );
                    let ei = e.get(1) == 1;
                    let m = mask(g);
                    for (k, &wk) in w.iter().enumerate() {
                        let (a, b) = (r0.get(g), r1.get(g));
                        out.put(a.wrapping_sub(b).wrapping_add(wk) & m, g);
                        // Share of c·w: −p₀, or w + p₀ when e = 1 (cots.rs, affine OT).
                        let s = if ei {
                            wk.wrapping_add(a)
                        } else {
                            a.wrapping_neg()
                        };
                        acc[k] = acc[k].wrapping_add((s & m) << i);
                    }
                }
                for (&r, &a) in rows.iter().zip(&acc) {
                    y[r] = y[r].wrapping_add(a);
                }
            }
            debug_assert_eq!(out.bits(), bits);
            ch.send(&out.finish())?;
        }
        ch.flush()?;
        // The pads are secrets of the COTs (as `SendCots` clears its strings on drop).
        wipe(&mut p0);
        wipe(&mut p1);
        Ok(y.into_iter().map(|v| v & ring.mask()).collect())
    }

    /// P1's side of y = M·x: `x1` its share. Returns P1's share of y.
    pub fn product_client<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        ring: Ring,
        cols: &dyn Columns,
        x1: &[u64],
    ) -> Result<Vec<u64>> {
        debug_assert_eq!(self.party(), Party::P1);
        let (n, ell) = (cols.n_in(), ring.bits());
        check_len("product input", n, x1.len())?;
        let mut y = vec![0u64; cols.n_out()];
        if n == 0 {
            return Ok(y);
        }
        let (_, mut cots) = self.cots(ch, 0, n * ell as usize)?;
        let (t, tw0) = cots.take(n * ell as usize);
        let mut ebits = BitWriter::default();
        for (j, &xj) in x1.iter().enumerate() {
            for i in 0..ell as usize {
                let b = (t[j * ell as usize + i] & 1) as u64;
                ebits.put(((xj >> i) & 1) ^ b, 1);
            }
        }
        ch.send(&ebits.finish())?;
        ch.flush()?;
        let mut rows = Vec::new();
        let mut acc = Vec::new();
        let mut pad = Vec::new();
        for (range, bits) in chunks(cols, ell) {
            let msg = recv_bits(ch, bits, "product correlation")?;
            let mut r = BitReader::new(&msg, bits, "product correlation")?;
            for j in range {
                cols.rows(j, &mut rows);
                acc.clear();
                acc.resize(rows.len(), 0u64);
                for i in 0..ell {
                    let g = ell - i;
                    let idx = j * ell as usize + i as usize;
                    let nb = (rows.len() as u64 * g as u64).div_ceil(128) as usize;
                    pad.resize(nb, Block::ZERO);
                    expand(t[idx], tw0 + idx as u128, &mut pad);
                    let mut rp = PadBits {
                        blocks: &pad,
                        pos: 0,
                    };
                    let b = t[idx] & 1 == 1;
                    let e = (((x1[j] >> i) & 1) as u128 ^ (t[idx] & 1)) == 1;
                    let m = mask(g);
                    for a in acc.iter_mut() {
                        let p = rp.get(g);
                        let yv = r.get(g);
                        let v = if b { p.wrapping_add(yv) } else { p };
                        let s = if e { v.wrapping_neg() } else { v };
                        *a = a.wrapping_add((s & m) << i);
                    }
                }
                for (&row, &a) in rows.iter().zip(&acc) {
                    y[row] = y[row].wrapping_add(a);
                }
            }
        }
        wipe(&mut pad);
        Ok(y.into_iter().map(|v| v & ring.mask()).collect())
    }
}
