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
///
/// Batches run on VAES (four blocks per AVX-512 instruction, 32 in flight) where the CPU has it,
/// otherwise on the `aes` crate (AES-NI, or its constant-time software fallback). Both compute
/// FIPS-197 AES-128; the tests compare them block for block.
#[derive(Clone)]
pub struct Aes {
    cipher: Aes128Enc,
    /// Round keys for the VAES path (`None` where VAES is absent). Zeroized on drop: PRG keys
    /// are secrets.
    #[cfg(target_arch = "x86_64")]
    round_keys: Option<vaes::RoundKeys>,
}

impl Aes {
    /// AES-128 keyed with `key`.
    pub fn new(key: Block) -> Aes {
        Aes {
            cipher: Aes128Enc::new(&GenericArray::from(key.to_bytes())),
            #[cfg(target_arch = "x86_64")]
            round_keys: vaes::RoundKeys::new(key),
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
        #[cfg(target_arch = "x86_64")]
        if let Some(rk) = &self.round_keys {
            rk.encrypt_many(xs, false);
            return;
        }
        self.encrypt_many_portable(xs);
    }

    /// [`Aes::encrypt_many`] on the `aes` crate.
    fn encrypt_many_portable(&self, xs: &mut [Block]) {
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
        #[cfg(target_arch = "x86_64")]
        if let Some(rk) = &self.round_keys {
            rk.encrypt_many(xs, true);
            return;
        }
        let mut buf = [Block::ZERO; BATCH];
        for c in xs.chunks_mut(BATCH) {
            let k = c.len();
            buf[..k].copy_from_slice(c);
            self.encrypt_many_portable(&mut buf[..k]);
            for (x, e) in c.iter_mut().zip(&buf) {
                *x ^= *e;
            }
        }
    }
}

impl Aes {
    /// Two Davies–Meyer steps under two keys at once (a GGM node's children):
    /// `left[i] = AES_self(x_i) ⊕ x_i`, `right[i] = AES_other(x_i) ⊕ x_i`.
    pub fn mmo_two(&self, other: &Aes, xs: &[Block], left: &mut [Block], right: &mut [Block]) {
        assert!(
            xs.len() == left.len() && xs.len() == right.len(),
            "mmo_two: lengths differ"
        );
        left.copy_from_slice(xs);
        right.copy_from_slice(xs);
        self.mmo_many(left);
        other.mmo_many(right);
    }
}

impl Aes {
    /// One GGM level in place: parents `nodes[..size]` become children `nodes[..2·size]`,
    /// `nodes[2i] = AES_self(p_i) ⊕ p_i` and `nodes[2i+1] = AES_other(p_i) ⊕ p_i` (the same PRG as
    /// [`Aes::mmo_two`]); returns the XORs of all left and of all right children. Parents are
    /// read in chunks from the end, each chunk before its children overwrite anything it needs.
    pub fn ggm_level(&self, other: &Aes, nodes: &mut [Block], size: usize) -> [Block; 2] {
        const W: usize = 64;
        assert!(nodes.len() >= 2 * size, "ggm_level: nodes too short");
        #[cfg(target_arch = "x86_64")]
        if let (Some(a), Some(b)) = (&self.round_keys, &other.round_keys) {
            return a.ggm_level(b, &mut nodes[..2 * size], size);
        }
        let mut a = [Block::ZERO; W];
        let mut b = [Block::ZERO; W];
        let (mut k0, mut k1) = (Block::ZERO, Block::ZERO);
        let mut i = size;
        while i > 0 {
            let c = i.min(W);
            let start = i - c;
            // Children [2·start, 2·i) overwrite only parents ≥ 2·start ≥ start: those of this chunk
            // (copied here first) and of chunks already done.
            a[..c].copy_from_slice(&nodes[start..i]);
            b[..c].copy_from_slice(&nodes[start..i]);
            self.mmo_many(&mut a[..c]);
            other.mmo_many(&mut b[..c]);
            for (j, pair) in nodes[2 * start..2 * i].chunks_exact_mut(2).enumerate() {
                pair[0] = a[j];
                pair[1] = b[j];
                k0 ^= a[j];
                k1 ^= b[j];
            }
            i = start;
        }
        [k0, k1]
    }
}

/// AES-128 on VAES: the round keys broadcast to 512-bit lanes, eight vectors (32 blocks) per
/// round in flight.
#[cfg(target_arch = "x86_64")]
mod vaes {
    use std::arch::x86_64::*;
    use std::sync::OnceLock;

    use zeroize::Zeroize;

    use crate::Block;

    fn available() -> bool {
        static OK: OnceLock<bool> = OnceLock::new();
        *OK.get_or_init(|| {
            std::arch::is_x86_feature_detected!("aes")
                && std::arch::is_x86_feature_detected!("vaes")
                && std::arch::is_x86_feature_detected!("avx512f")
        })
    }

    /// The eleven AES-128 round keys, each a little-endian `u128` (the byte order of
    /// [`Block::to_bytes`]).
    #[derive(Clone)]
    pub(super) struct RoundKeys([u128; 11]);

    impl Drop for RoundKeys {
        fn drop(&mut self) {
            self.0.zeroize();
        }
    }

    impl RoundKeys {
        /// The key schedule of `key`, or `None` without VAES.
        pub(super) fn new(key: Block) -> Option<RoundKeys> {
            // SAFETY: `available` checked the CPU features `expand` is compiled for.
            available().then(|| RoundKeys(unsafe { expand(key.0) }))
        }

        /// `xs[i] = AES(xs[i])`, or `AES(xs[i]) ⊕ xs[i]` with `feed_forward`.
        pub(super) fn encrypt_many(&self, xs: &mut [Block], feed_forward: bool) {
            // SAFETY: a `RoundKeys` exists only where `available()` held.
            unsafe { encrypt(&self.0, xs, feed_forward) }
        }

        /// [`super::Aes::ggm_level`] with `self` for left and `other` for right children, the
        /// children written interleaved straight from the registers. `nodes.len() == 2·size`.
        pub(super) fn ggm_level(
            &self,
            other: &RoundKeys,
            nodes: &mut [Block],
            size: usize,
        ) -> [Block; 2] {
            assert_eq!(nodes.len(), 2 * size, "ggm_level: 2·size nodes");
            // SAFETY: as above; every access stays below 2·size (checked just now).
            unsafe { ggm(&self.0, &other.0, nodes, size) }
        }
    }

    /// Parents per step of [`ggm`]: four vectors per key in flight.
    const GGM_STEP: usize = 16;

    #[target_feature(enable = "aes,vaes,avx512f,sse2")]
    unsafe fn ggm(a: &[u128; 11], b: &[u128; 11], nodes: &mut [Block], size: usize) -> [Block; 2] {
        let load = |k: &u128| _mm_loadu_si128((k as *const u128).cast());
        let (a1, b1) = (a.map(|k| load(&k)), b.map(|k| load(&k)));
        let (ka, kb) = (
            a1.map(|k| _mm512_broadcast_i32x4(k)),
            b1.map(|k| _mm512_broadcast_i32x4(k)),
        );
        // Qwords of (left, right) 4-block vectors into [l0 r0 l1 r1] and [l2 r2 l3 r3].
        let lo_idx = _mm512_setr_epi64(0, 1, 8, 9, 2, 3, 10, 11);
        let hi_idx = _mm512_setr_epi64(4, 5, 12, 13, 6, 7, 14, 15);
        let p = nodes.as_mut_ptr() as *mut u8;
        let (mut s0, mut s1) = (_mm512_setzero_si512(), _mm512_setzero_si512());
        let mut i = size;
        // From the end: a step's children [2·start, 2·start + 32) overwrite only parents of
        // this step (all loaded first) and of steps already done.
        while i >= GGM_STEP {
            let start = i - GGM_STEP;
            let mut x = [_mm512_setzero_si512(); 4];
            let (mut l, mut r) = (x, x);
            for j in 0..4 {
                x[j] = _mm512_loadu_si512(p.add(16 * (start + 4 * j)).cast());
                l[j] = _mm512_xor_si512(x[j], ka[0]);
                r[j] = _mm512_xor_si512(x[j], kb[0]);
            }
            for round in 1..10 {
                for j in 0..4 {
                    l[j] = _mm512_aesenc_epi128(l[j], ka[round]);
                    r[j] = _mm512_aesenc_epi128(r[j], kb[round]);
                }
            }
            for j in 0..4 {
                let lj = _mm512_xor_si512(_mm512_aesenclast_epi128(l[j], ka[10]), x[j]);
                let rj = _mm512_xor_si512(_mm512_aesenclast_epi128(r[j], kb[10]), x[j]);
                s0 = _mm512_xor_si512(s0, lj);
                s1 = _mm512_xor_si512(s1, rj);
                let at = p.add(16 * 2 * (start + 4 * j));
                _mm512_storeu_si512(at.cast(), _mm512_permutex2var_epi64(lj, lo_idx, rj));
                _mm512_storeu_si512(at.add(64).cast(), _mm512_permutex2var_epi64(lj, hi_idx, rj));
            }
            i = start;
        }
        let fold = |v: __m512i| {
            _mm_xor_si128(
                _mm_xor_si128(
                    _mm512_extracti32x4_epi32::<0>(v),
                    _mm512_extracti32x4_epi32::<1>(v),
                ),
                _mm_xor_si128(
                    _mm512_extracti32x4_epi32::<2>(v),
                    _mm512_extracti32x4_epi32::<3>(v),
                ),
            )
        };
        let (mut t0, mut t1) = (fold(s0), fold(s1));
        // The first i < 16 parents, one at a time (parent i − 1's children land at 2(i − 1) ≥ i
        // − 1, on itself or on parents already done).
        while i > 0 {
            i -= 1;
            let x = _mm_loadu_si128(p.add(16 * i).cast());
            let (mut l, mut r) = (_mm_xor_si128(x, a1[0]), _mm_xor_si128(x, b1[0]));
            for round in 1..10 {
                l = _mm_aesenc_si128(l, a1[round]);
                r = _mm_aesenc_si128(r, b1[round]);
            }
            let l = _mm_xor_si128(_mm_aesenclast_si128(l, a1[10]), x);
            let r = _mm_xor_si128(_mm_aesenclast_si128(r, b1[10]), x);
            t0 = _mm_xor_si128(t0, l);
            t1 = _mm_xor_si128(t1, r);
            _mm_storeu_si128(p.add(16 * 2 * i).cast(), l);
            _mm_storeu_si128(p.add(16 * (2 * i + 1)).cast(), r);
        }
        let (mut o0, mut o1) = (0u128, 0u128);
        _mm_storeu_si128((&mut o0 as *mut u128).cast(), t0);
        _mm_storeu_si128((&mut o1 as *mut u128).cast(), t1);
        [Block(o0), Block(o1)]
    }

    #[inline]
    #[target_feature(enable = "aes,sse2")]
    unsafe fn assist(k: __m128i, t: __m128i) -> __m128i {
        let t = _mm_shuffle_epi32::<0xff>(t);
        let k = _mm_xor_si128(k, _mm_slli_si128::<4>(k));
        let k = _mm_xor_si128(k, _mm_slli_si128::<4>(k));
        let k = _mm_xor_si128(k, _mm_slli_si128::<4>(k));
        _mm_xor_si128(k, t)
    }

    /// FIPS-197 §5.2 key expansion for AES-128 by AESKEYGENASSIST.
    #[target_feature(enable = "aes,sse2")]
    unsafe fn expand(key: u128) -> [u128; 11] {
        let mut k = [_mm_setzero_si128(); 11];
        k[0] = _mm_loadu_si128((&key as *const u128).cast());
        macro_rules! round {
            ($i:literal, $rcon:literal) => {
                k[$i] = assist(k[$i - 1], _mm_aeskeygenassist_si128::<$rcon>(k[$i - 1]));
            };
        }
        round!(1, 0x01);
        round!(2, 0x02);
        round!(3, 0x04);
        round!(4, 0x08);
        round!(5, 0x10);
        round!(6, 0x20);
        round!(7, 0x40);
        round!(8, 0x80);
        round!(9, 0x1b);
        round!(10, 0x36);
        let mut out = [0u128; 11];
        for (o, r) in out.iter_mut().zip(&k) {
            _mm_storeu_si128((o as *mut u128).cast(), *r);
        }
        out
    }

    /// Vectors of four blocks per round in flight.
    const LANES: usize = 8;

    #[target_feature(enable = "aes,vaes,avx512f,sse2")]
    unsafe fn encrypt(rk: &[u128; 11], xs: &mut [Block], feed_forward: bool) {
        let mut k = [_mm512_setzero_si512(); 11];
        let mut k1 = [_mm_setzero_si128(); 11];
        for i in 0..11 {
            k1[i] = _mm_loadu_si128((&rk[i] as *const u128).cast());
            k[i] = _mm512_broadcast_i32x4(k1[i]);
        }
        let n = xs.len();
        // `Block` is `repr(transparent)` over `u128`: 16 bytes each, contiguous.
        let p = xs.as_mut_ptr() as *mut u8;
        let mut i = 0;
        while i + 4 * LANES <= n {
            let mut v = [_mm512_setzero_si512(); LANES];
            let mut x = [_mm512_setzero_si512(); LANES];
            for j in 0..LANES {
                x[j] = _mm512_loadu_si512(p.add(16 * (i + 4 * j)).cast());
                v[j] = _mm512_xor_si512(x[j], k[0]);
            }
            for r in &k[1..10] {
                for vj in v.iter_mut() {
                    *vj = _mm512_aesenc_epi128(*vj, *r);
                }
            }
            for j in 0..LANES {
                let mut y = _mm512_aesenclast_epi128(v[j], k[10]);
                if feed_forward {
                    y = _mm512_xor_si512(y, x[j]);
                }
                _mm512_storeu_si512(p.add(16 * (i + 4 * j)).cast(), y);
            }
            i += 4 * LANES;
        }
        while i + 4 <= n {
            let x = _mm512_loadu_si512(p.add(16 * i).cast());
            let mut v = _mm512_xor_si512(x, k[0]);
            for r in &k[1..10] {
                v = _mm512_aesenc_epi128(v, *r);
            }
            let mut y = _mm512_aesenclast_epi128(v, k[10]);
            if feed_forward {
                y = _mm512_xor_si512(y, x);
            }
            _mm512_storeu_si512(p.add(16 * i).cast(), y);
            i += 4;
        }
        while i < n {
            let x = _mm_loadu_si128(p.add(16 * i).cast());
            let mut v = _mm_xor_si128(x, k1[0]);
            for r in &k1[1..10] {
                v = _mm_aesenc_si128(v, *r);
            }
            let mut y = _mm_aesenclast_si128(v, k1[10]);
            if feed_forward {
                y = _mm_xor_si128(y, x);
            }
            _mm_storeu_si128(p.add(16 * i).cast(), y);
            i += 1;
        }
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
    // Chunks of 64: enough blocks per AES call to fill VAES's 32-block pipeline.
    const CHUNK: usize = 64;
    let pi = fixed();
    let mut p = [Block::ZERO; CHUNK];
    let mut u = [Block::ZERO; CHUNK];
    let mut tw = tweak0;
    for (xc, oc) in xs.chunks(CHUNK).zip(out.chunks_mut(CHUNK)) {
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
        let mut hashed = vec![Block::ZERO; many.len()];
        tccr_batch(&many, 77, &mut hashed);
        for (i, (x, o)) in many.iter().zip(&hashed).enumerate() {
            assert_eq!(*o, tccr(*x, 77 + i as u128));
        }
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

    /// Every batch length and both feed-forward forms on the fast path (VAES where present)
    /// equal the `aes` crate's single-block AES, under several keys.
    #[test]
    fn batch_paths_match_the_reference_cipher() {
        for key in [
            0u128,
            1,
            u128::MAX,
            0x0f1e_2d3c_4b5a_6978_8796_a5b4_c3d2_e1f0,
        ] {
            let aes = Aes::new(Block(key));
            let other = Aes::new(Block(key ^ 0x55));
            for n in 0..100usize {
                let xs: Vec<Block> = (0..n as u128)
                    .map(|i| Block(i.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835) ^ key))
                    .collect();
                let mut e = xs.clone();
                aes.encrypt_many(&mut e);
                let mut m = xs.clone();
                aes.mmo_many(&mut m);
                for i in 0..n {
                    assert_eq!(e[i], aes.encrypt(xs[i]), "encrypt_many, n = {n}, i = {i}");
                    assert_eq!(
                        m[i],
                        aes.encrypt(xs[i]) ^ xs[i],
                        "mmo_many, n = {n}, i = {i}"
                    );
                }
                // One GGM level from n parents.
                let mut nodes = xs.clone();
                nodes.resize(2 * n, Block::ZERO);
                let k = aes.ggm_level(&other, &mut nodes, n);
                let (mut k0, mut k1) = (Block::ZERO, Block::ZERO);
                for i in 0..n {
                    let (l, r) = (aes.encrypt(xs[i]) ^ xs[i], other.encrypt(xs[i]) ^ xs[i]);
                    assert_eq!(
                        (nodes[2 * i], nodes[2 * i + 1]),
                        (l, r),
                        "ggm_level, n = {n}"
                    );
                    k0 ^= l;
                    k1 ^= r;
                }
                assert_eq!(k, [k0, k1]);
            }
        }
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
