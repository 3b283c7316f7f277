//! AES-based primitives: a fixed-key permutation π, the tweakable correlation-robust hash
//! built from it, and a counter-mode PRG.
//!
//! The `aes` crate selects AES-NI at run time (scalar fallback otherwise); batches of eight
//! blocks keep its pipeline full.

use std::sync::OnceLock;

use aes::cipher::{generic_array::GenericArray, BlockEncrypt, KeyInit};
use aes::Aes128Enc;

use crate::Block;

/// Blocks processed per AES call: AES-NI interleaves eight independent blocks.
const BATCH: usize = 8;

/// AES-128 with a key fixed at construction, applied to [`Block`]s.
#[derive(Clone)]
pub struct Aes {
    cipher: Aes128Enc,
}

impl Aes {
    /// AES-128 keyed with `key`.
    pub fn new(key: Block) -> Aes {
        Aes {
            cipher: Aes128Enc::new(&GenericArray::from(key.to_bytes())),
        }
    }

    /// AES_k(x).
    #[inline]
    pub fn encrypt(&self, x: Block) -> Block {
        let mut b = GenericArray::from(x.to_bytes());
        self.cipher.encrypt_block(&mut b);
        Block::from_bytes(b.into())
    }

    /// In place: `xs[i] = AES_k(xs[i])`.
    #[inline]
    pub fn encrypt_many(&self, xs: &mut [Block]) {
        let mut buf = [GenericArray::default(); BATCH];
        let mut chunks = xs.chunks_exact_mut(BATCH);
        for c in &mut chunks {
            for (d, s) in buf.iter_mut().zip(c.iter()) {
                *d = GenericArray::from(s.to_bytes());
            }
            self.cipher.encrypt_blocks(&mut buf);
            for (d, s) in c.iter_mut().zip(buf.iter()) {
                *d = Block::from_bytes((*s).into());
            }
        }
        for x in chunks.into_remainder() {
            *x = self.encrypt(*x);
        }
    }

    /// Davies–Meyer style `xs[i] = AES_k(xs[i]) ⊕ xs[i]` in place (a PRG/PRF step when `k` is
    /// fixed and public, modelling AES_k as a random permutation).
    #[inline]
    pub fn mmo_many(&self, xs: &mut [Block]) {
        let mut buf = [GenericArray::default(); BATCH];
        let mut chunks = xs.chunks_exact_mut(BATCH);
        for c in &mut chunks {
            for (d, s) in buf.iter_mut().zip(c.iter()) {
                *d = GenericArray::from(s.to_bytes());
            }
            self.cipher.encrypt_blocks(&mut buf);
            for (d, s) in c.iter_mut().zip(buf.iter()) {
                *d ^= Block::from_bytes((*s).into());
            }
        }
        for x in chunks.into_remainder() {
            *x ^= self.encrypt(*x);
        }
    }
}

impl Aes {
    /// Two Davies–Meyer steps under two keys at once (a GGM node's children):
    /// `left[i] = AES_self(x_i) ⊕ x_i`, `right[i] = AES_other(x_i) ⊕ x_i`.
    pub fn mmo_two(&self, other: &Aes, xs: &[Block], left: &mut [Block], right: &mut [Block]) {
        const W: usize = 64;
        assert!(
            xs.len() == left.len() && xs.len() == right.len(),
            "mmo_two: lengths differ"
        );
        let mut a = [GenericArray::default(); W];
        let mut b = [GenericArray::default(); W];
        for ((xc, lc), rc) in xs
            .chunks(W)
            .zip(left.chunks_mut(W))
            .zip(right.chunks_mut(W))
        {
            let c = xc.len();
            for (d, s) in a.iter_mut().zip(xc.iter()) {
                *d = GenericArray::from(s.to_bytes());
            }
            b[..c].copy_from_slice(&a[..c]);
            self.cipher.encrypt_blocks(&mut a[..c]);
            other.cipher.encrypt_blocks(&mut b[..c]);
            for j in 0..c {
                lc[j] = Block::from_bytes(a[j].into()) ^ xc[j];
                rc[j] = Block::from_bytes(b[j].into()) ^ xc[j];
            }
        }
    }
}

impl Aes {
    /// One GGM level in place: parents `nodes[..size]` become children `nodes[..2·size]`,
    /// `nodes[2i] = AES_self(p_i) ⊕ p_i` and `nodes[2i+1] = AES_other(p_i) ⊕ p_i` (the same PRG as
    /// [`Aes::mmo_two`]); returns the XORs of all left and of all right children. Parents are
    /// read in chunks from the end, each chunk before its children overwrite anything it needs.
    pub fn ggm_level(&self, other: &Aes, nodes: &mut [Block], size: usize) -> [Block; 2] {
        const W: usize = 32;
        assert!(nodes.len() >= 2 * size, "ggm_level: nodes too short");
        let mut a = [GenericArray::default(); W];
        let mut b = [GenericArray::default(); W];
        let mut p = [Block::ZERO; W];
        let (mut k0, mut k1) = (Block::ZERO, Block::ZERO);
        let mut i = size;
        while i > 0 {
            let c = i.min(W);
            let start = i - c;
            // Children [2·start, 2·i) overwrite only parents ≥ 2·start ≥ start: those of this chunk
            // (copied here first) and of chunks already done.
            p[..c].copy_from_slice(&nodes[start..i]);
            for j in 0..c {
                a[j] = GenericArray::from(p[j].to_bytes());
            }
            b[..c].copy_from_slice(&a[..c]);
            self.cipher.encrypt_blocks(&mut a[..c]);
            other.cipher.encrypt_blocks(&mut b[..c]);
            for (j, pair) in nodes[2 * start..2 * i].chunks_exact_mut(2).enumerate() {
                let l = Block::from_bytes(a[j].into()) ^ p[j];
                let r = Block::from_bytes(b[j].into()) ^ p[j];
                pair[0] = l;
                pair[1] = r;
                k0 ^= l;
                k1 ^= r;
            }
            i = start;
        }
        [k0, k1]
    }
}

/// Public key of the fixed-key permutation π (any fixed value works; it is not a secret).
const FIXED_KEY: u128 = 0x3243_f6a8_885a_308d_3131_98a2_e037_0734; // digits of π

fn fixed() -> &'static Aes {
    static PI: OnceLock<Aes> = OnceLock::new();
    PI.get_or_init(|| Aes::new(Block(FIXED_KEY)))
}

/// Tweakable circular correlation-robust hash
/// `H(x, i) = π(π(x) ⊕ i) ⊕ π(x)` with π a fixed-key AES
/// [Guo–Katz–Wang–Yu, "Efficient and Secure Multiparty Computation from Fixed-Key Block Ciphers",
/// S&P 2020, §7.4].
///
/// Security contract: `H(q ⊕ Δ, i)` looks random given `H(q, i)` for a secret Δ as long as every
/// tweak `i` is used with one `q` only. COT-to-OT conversions in this crate use the global index of
/// the correlated OT as the tweak (see [`crate::CotSender::consumed`]).
#[inline]
pub fn tccr(x: Block, tweak: u128) -> Block {
    let p = fixed().encrypt(x);
    fixed().encrypt(p ^ Block(tweak)) ^ p
}

/// Batched [`tccr`]: `out[i] = H(xs[i], tweak0 + i)`.
pub fn tccr_batch(xs: &[Block], tweak0: u128, out: &mut [Block]) {
    assert_eq!(
        xs.len(),
        out.len(),
        "tccr_batch: input and output lengths differ"
    );
    let pi = fixed();
    let mut p = [Block::ZERO; BATCH];
    let mut u = [Block::ZERO; BATCH];
    let mut tw = tweak0;
    for (xc, oc) in xs.chunks(BATCH).zip(out.chunks_mut(BATCH)) {
        let k = xc.len();
        p[..k].copy_from_slice(xc);
        pi.encrypt_many(&mut p[..k]);
        for j in 0..k {
            u[j] = p[j] ^ Block(tw.wrapping_add(j as u128));
        }
        pi.encrypt_many(&mut u[..k]);
        for j in 0..k {
            oc[j] = u[j] ^ p[j];
        }
        tw = tw.wrapping_add(k as u128);
    }
}

/// Expands `H(x, ·)` into `out.len()` blocks using tweaks `tweak | (j << 96)`, j = 0, 1, …, for
/// messages longer than 128 bits (the caller's `tweak` must leave its top 32 bits zero).
pub fn tccr_expand(x: Block, tweak: u128, out: &mut [Block]) {
    debug_assert!(tweak >> 96 == 0, "tweak must leave its top 32 bits free");
    let pi = fixed();
    let p = pi.encrypt(x);
    for (j, o) in out.iter_mut().enumerate() {
        *o = Block(tweak | ((j as u128) << 96)) ^ p;
    }
    pi.encrypt_many(out);
    for o in out.iter_mut() {
        *o ^= p;
    }
}

/// Counter-mode PRG: `AES_seed(nonce ‖ 0), AES_seed(nonce ‖ 1), …`, resumable across calls.
#[derive(Clone)]
pub struct Prg {
    aes: Aes,
    counter: u128,
}

impl Prg {
    /// A PRG seeded with `seed` (a secret, uniformly random block).
    pub fn new(seed: Block) -> Prg {
        Prg {
            aes: Aes::new(seed),
            counter: 0,
        }
    }

    /// Fills `out` with the next `out.len()` output blocks.
    pub fn fill(&mut self, out: &mut [Block]) {
        for o in out.iter_mut() {
            *o = Block(self.counter);
            self.counter = self.counter.wrapping_add(1);
        }
        self.aes.encrypt_many(out);
    }

    /// XORs the next `out.len()` output blocks into `out`.
    pub fn xor_into(&mut self, out: &mut [Block]) {
        let mut buf = [Block::ZERO; 64];
        for c in out.chunks_mut(64) {
            let k = c.len();
            self.fill(&mut buf[..k]);
            for (o, b) in c.iter_mut().zip(buf.iter()) {
                *o ^= *b;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aes_matches_fips197_vector() {
        // FIPS-197 Appendix C.1: key 000102…0f, plaintext 00112233…ff.
        let key: [u8; 16] = core::array::from_fn(|i| i as u8);
        let pt: [u8; 16] = core::array::from_fn(|i| (i as u8) * 0x11);
        let ct = Aes::new(Block::from_bytes(key)).encrypt(Block::from_bytes(pt));
        let want = [
            0x69, 0xc4, 0xe0, 0xd8, 0x6a, 0x7b, 0x04, 0x30, 0xd8, 0xcd, 0xb7, 0x80, 0x70, 0xb4,
            0xc5, 0x5a,
        ];
        assert_eq!(ct.to_bytes(), want);
    }

    #[test]
    fn batched_forms_match_scalar_forms() {
        let xs: Vec<Block> = (0..21u128)
            .map(|i| Block(i.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835)))
            .collect();
        let mut out = vec![Block::ZERO; xs.len()];
        tccr_batch(&xs, 1000, &mut out);
        for (i, (x, o)) in xs.iter().zip(&out).enumerate() {
            assert_eq!(*o, tccr(*x, 1000 + i as u128));
        }
        let aes = Aes::new(Block(7));
        let mut m = xs.clone();
        aes.mmo_many(&mut m);
        for (x, y) in xs.iter().zip(&m) {
            assert_eq!(*y, aes.encrypt(*x) ^ *x);
        }
        let other = Aes::new(Block(8));
        let many: Vec<Block> = (0..150u128).map(|i| Block(i * 0x1234_5678_9abc)).collect();
        let (mut l, mut r) = (vec![Block::ZERO; 150], vec![Block::ZERO; 150]);
        aes.mmo_two(&other, &many, &mut l, &mut r);
        for i in 0..150 {
            assert_eq!(l[i], aes.encrypt(many[i]) ^ many[i]);
            assert_eq!(r[i], other.encrypt(many[i]) ^ many[i]);
        }
        let mut e = vec![Block::ZERO; 3];
        tccr_expand(xs[3], 55, &mut e);
        assert_eq!(e[0], tccr(xs[3], 55));
        assert_eq!(e[2], tccr(xs[3], 55 | (2u128 << 96)));
    }

    #[test]
    fn prg_is_resumable() {
        let mut a = Prg::new(Block(42));
        let mut b = Prg::new(Block(42));
        let mut whole = vec![Block::ZERO; 30];
        a.fill(&mut whole);
        let mut p1 = vec![Block::ZERO; 13];
        let mut p2 = vec![Block::ZERO; 17];
        b.fill(&mut p1);
        b.fill(&mut p2);
        assert_eq!(&whole[..13], &p1[..]);
        assert_eq!(&whole[13..], &p2[..]);
        assert_ne!(whole[0], whole[1]);
    }
}
