//! Batched tweakable circular correlation-robust hash for turning random COTs into random OTs:
//! `H(x, τ) = π(π(x) ⊕ τ) ⊕ π(x)` with π a fixed-key AES [Guo–Katz–Wang–Yu, S&P 2020, §7.4],
//! the same construction as `ot::hash::tccr`, evaluated many blocks at a time so that AES runs
//! pipelined.
//!
//! Security contract: each tweak is used with the inputs of one COT only (`q` and `q ⊕ Δ`);
//! [`crate::cots`] derives tweaks from the session-unique COT index, the direction, and the
//! 1-of-N hash block.

use std::sync::OnceLock;

use ot::hash::Aes;
use ot::Block;

/// Fixed public AES key of π (any constant works; distinct from the ot crate's by choice).
const FIXED_KEY: u128 = 0x6d70_635f_7463_6372_5f66_6978_6564_5f6b;

fn pi() -> &'static Aes {
    static PI: OnceLock<Aes> = OnceLock::new();
    PI.get_or_init(|| Aes::new(Block(FIXED_KEY)))
}

const CHUNK: usize = 256;

/// `xs[i] ← H(xs[i], tweaks[i])`.
pub(crate) fn tccr_many(xs: &mut [u128], tweaks: &[u128]) {
    debug_assert_eq!(xs.len(), tweaks.len());
    let pi = pi();
    let mut p = [Block::ZERO; CHUNK];
    let mut u = [Block::ZERO; CHUNK];
    for (xc, tc) in xs.chunks_mut(CHUNK).zip(tweaks.chunks(CHUNK)) {
        let k = xc.len();
        for j in 0..k {
            p[j] = Block(xc[j]);
        }
        pi.encrypt_many(&mut p[..k]);
        for j in 0..k {
            u[j] = Block(p[j].0 ^ tc[j]);
        }
        pi.encrypt_many(&mut u[..k]);
        for j in 0..k {
            xc[j] = u[j].0 ^ p[j].0;
        }
    }
}

/// `out[i] ← H(xs[i] ⊕ mask, tweak0 + i)` (consecutive tweaks, no allocation).
pub(crate) fn tccr_seq(xs: &[u128], mask: u128, tweak0: u128, out: &mut [u128]) {
    debug_assert_eq!(xs.len(), out.len());
    let pi = pi();
    let mut p = [Block::ZERO; CHUNK];
    let mut u = [Block::ZERO; CHUNK];
    let mut tw = tweak0;
    for (xc, oc) in xs.chunks(CHUNK).zip(out.chunks_mut(CHUNK)) {
        let k = xc.len();
        for j in 0..k {
            p[j] = Block(xc[j] ^ mask);
        }
        pi.encrypt_many(&mut p[..k]);
        for j in 0..k {
            u[j] = Block(p[j].0 ^ (tw + j as u128));
        }
        pi.encrypt_many(&mut u[..k]);
        for j in 0..k {
            oc[j] = u[j].0 ^ p[j].0;
        }
        tw += k as u128;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_definition_and_depends_on_tweak() {
        let mut xs = vec![1u128, 1, 2];
        tccr_many(&mut xs, &[7, 8, 7]);
        let pi = pi();
        let p = pi.encrypt(Block(1));
        assert_eq!(xs[0], (pi.encrypt(Block(p.0 ^ 7)).0) ^ p.0);
        assert_ne!(xs[0], xs[1]);
        assert_ne!(xs[0], xs[2]);
        let mut seq = [0u128; 2];
        tccr_seq(&[1 ^ 9, 1 ^ 9], 9, 7, &mut seq);
        assert_eq!(seq, [xs[0], xs[1]]);
    }
}
