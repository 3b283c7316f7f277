//! Sampling from an explicitly passed CSPRNG (`RngCore + CryptoRng`).
//!
//! Secrets: uniform ternary or sparse ternary with fixed Hamming weight. Errors:
//! centered binomial `CBD(η)` (variance `η/2`; `η = 21` gives σ ≈ 3.24, the
//! HomomorphicEncryption.org σ = 3.2 up to 1%, with support bounded by `η`) or a
//! rounded Gaussian tail-cut at 6σ. Seeded uniform polynomials come from
//! ChaCha20 keyed by a 32-byte seed.

use crate::rns::{Poly, Representation, RnsContext};
use rand_chacha::ChaCha20Rng;
use rand_core::{CryptoRng, RngCore, SeedableRng};
use std::sync::Arc;

/// Default CBD parameter: σ = √(21/2) ≈ 3.24.
pub const CBD_ETA: u32 = 21;

/// Uniform residues in every active prime (uniform modulo `Q` by CRT).
pub fn uniform_poly<R: RngCore + CryptoRng + ?Sized>(
    ctx: &Arc<RnsContext>,
    num_moduli: usize,
    repr: Representation,
    rng: &mut R,
) -> Poly {
    let mut p = Poly::zero(ctx, num_moduli, repr);
    let n = ctx.n();
    let mut buf = Vec::new();
    for (i, m) in ctx.moduli()[..num_moduli].iter().enumerate() {
        fill_uniform(m, &mut p.data_mut()[i * n..(i + 1) * n], &mut buf, rng);
    }
    p
}

/// Fills `out` with uniform residues mod `m`, reading `⌈bits/8⌉` random bytes
/// per candidate and rejecting candidates `≥ q` (no bias).
fn fill_uniform<R: RngCore + CryptoRng + ?Sized>(
    m: &crate::Modulus,
    out: &mut [u64],
    buf: &mut Vec<u8>,
    rng: &mut R,
) {
    let q = m.value();
    let bits = m.bits();
    let bytes = bits.div_ceil(8) as usize;
    let mask = u64::MAX >> (64 - bits);
    let mut filled = 0;
    while filled < out.len() {
        let need = out.len() - filled;
        buf.resize(need * bytes + 8, 0);
        rng.fill_bytes(&mut buf[..need * bytes]);
        for k in 0..need {
            let w: [u8; 8] = buf[k * bytes..k * bytes + 8].try_into().expect("8 bytes");
            let x = u64::from_le_bytes(w) & mask;
            if x < q {
                out[filled] = x;
                filled += 1;
            }
        }
    }
}

/// Deterministic uniform polynomial from a 32-byte seed, returned in NTT form
/// (uniform values are uniform in either domain; sampling directly in the NTT
/// domain saves a transform on both ends). The first `num_moduli` residues do
/// not depend on how many primes follow, so a seed expands consistently at any level.
pub fn expand_seed(ctx: &Arc<RnsContext>, num_moduli: usize, seed: &[u8; 32]) -> Poly {
    let mut rng = ChaCha20Rng::from_seed(*seed);
    uniform_poly(ctx, num_moduli, Representation::Ntt, &mut rng)
}

/// As [`expand_seed`] for the `stream`-th polynomial of a family sharing one
/// seed (ChaCha20 stream id = `stream`), e.g. the `a_j` of a key switching key.
pub fn expand_seed_stream(
    ctx: &Arc<RnsContext>,
    num_moduli: usize,
    seed: &[u8; 32],
    stream: u64,
) -> Poly {
    let mut rng = ChaCha20Rng::from_seed(*seed);
    rng.set_stream(stream);
    uniform_poly(ctx, num_moduli, Representation::Ntt, &mut rng)
}

/// Uniform ternary coefficients in {-1, 0, 1}.
pub fn ternary<R: RngCore + CryptoRng + ?Sized>(n: usize, rng: &mut R) -> Vec<i64> {
    let mut out = Vec::with_capacity(n);
    let mut buf = [0u8; 64];
    while out.len() < n {
        rng.fill_bytes(&mut buf);
        for &b in &buf {
            // 255 = 3·85: rejecting 255 leaves b mod 3 uniform.
            if b < 255 && out.len() < n {
                out.push((b % 3) as i64 - 1);
            }
        }
    }
    zeroize::Zeroize::zeroize(&mut buf);
    out
}

/// Ternary with exactly `h` non-zero coefficients (uniform positions and signs).
pub fn sparse_ternary<R: RngCore + CryptoRng + ?Sized>(
    n: usize,
    h: usize,
    rng: &mut R,
) -> Vec<i64> {
    assert!(h <= n && n.is_power_of_two());
    let mut out = vec![0i64; n];
    let mut placed = 0;
    while placed < h {
        let x = rng.next_u64();
        let pos = (x as usize) & (n - 1);
        if out[pos] == 0 {
            out[pos] = if (x >> 63) == 1 { 1 } else { -1 };
            placed += 1;
        }
    }
    out
}

/// Centered binomial `Σ_{i<η} (a_i − b_i)`, `η ≤ 32`.
pub fn cbd<R: RngCore + CryptoRng + ?Sized>(n: usize, eta: u32, rng: &mut R) -> Vec<i64> {
    assert!((1..=32).contains(&eta));
    // 2η random bits per coefficient, read from a byte stream
    let bytes_per = (2 * eta as usize).div_ceil(8);
    let mask = (1u64 << eta) - 1;
    // 8 spare bytes so that every coefficient can read one unaligned 8-byte window
    let mut buf = vec![0u8; n * bytes_per + 8];
    rng.fill_bytes(&mut buf[..n * bytes_per]);
    let out = (0..n)
        .map(|k| {
            let w: [u8; 8] = buf[k * bytes_per..k * bytes_per + 8]
                .try_into()
                .expect("8 bytes");
            let x = u64::from_le_bytes(w);
            (x & mask).count_ones() as i64 - ((x >> eta) & mask).count_ones() as i64
        })
        .collect();
    zeroize::Zeroize::zeroize(&mut buf);
    out
}

/// Rounded Gaussian of standard deviation `sigma`, rejecting beyond `6σ`.
pub fn rounded_gaussian<R: RngCore + CryptoRng + ?Sized>(
    n: usize,
    sigma: f64,
    rng: &mut R,
) -> Vec<i64> {
    let unif = |rng: &mut R| ((rng.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    let bound = (6.0 * sigma).floor() as i64;
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        // Box–Muller
        let (u1, u2) = (unif(rng), unif(rng));
        let r = (-2.0 * u1.ln()).sqrt() * sigma;
        let th = 2.0 * std::f64::consts::PI * u2;
        for z in [r * th.cos(), r * th.sin()] {
            let v = z.round() as i64;
            if v.abs() <= bound && out.len() < n {
                out.push(v);
            }
        }
    }
    out
}

/// Uniform integers in `[-2^bits, 2^bits)` (`bits ≤ 126`), as `i128`.
pub fn uniform_signed_bits<R: RngCore + CryptoRng + ?Sized>(
    n: usize,
    bits: u32,
    rng: &mut R,
) -> Vec<i128> {
    assert!(bits <= 126);
    let mask: u128 = (1u128 << (bits + 1)) - 1;
    (0..n)
        .map(|_| {
            let x = ((rng.next_u64() as u128) << 64 | rng.next_u64() as u128) & mask;
            x as i128 - (1i128 << bits)
        })
        .collect()
}

/// Coefficient-form polynomial from `i128` coefficients.
pub fn poly_from_i128(ctx: &Arc<RnsContext>, num_moduli: usize, coeffs: &[i128]) -> Poly {
    let mut p = Poly::zero(ctx, num_moduli, Representation::Coefficient);
    let n = ctx.n();
    for (i, m) in ctx.moduli()[..num_moduli].iter().enumerate() {
        for (d, &c) in p.data_mut()[i * n..][..coeffs.len()].iter_mut().zip(coeffs) {
            *d = m.reduce_i128(c);
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prime::generate_primes;

    #[test]
    fn distributions() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        let n = 1 << 16;
        let t = ternary(n, &mut rng);
        let counts = [-1, 0, 1].map(|v| t.iter().filter(|&&x| x == v).count() as f64 / n as f64);
        assert!(
            counts.iter().all(|c| (c - 1.0 / 3.0).abs() < 0.01),
            "{counts:?}"
        );
        let s = sparse_ternary(4096, 192, &mut rng);
        assert_eq!(s.iter().filter(|&&x| x != 0).count(), 192);
        for e in [
            cbd(n, CBD_ETA, &mut rng),
            rounded_gaussian(n, 3.2, &mut rng),
        ] {
            let mean = e.iter().sum::<i64>() as f64 / n as f64;
            let var = e.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n as f64;
            assert!(
                mean.abs() < 0.05 && (var.sqrt() - 3.22).abs() < 0.1,
                "{mean} {var}"
            );
            assert!(e.iter().all(|x| x.abs() <= 21));
        }
        let u = uniform_signed_bits(1000, 100, &mut rng);
        assert!(u
            .iter()
            .all(|&x| (-(1i128 << 100)..1i128 << 100).contains(&x)));
        assert!(u.iter().any(|&x| x.unsigned_abs() > 1u128 << 98));
    }

    #[test]
    fn seed_expansion_is_deterministic_and_prefix_stable() {
        let ctx = RnsContext::new(64, &generate_primes(40, 64, 3, &[]).unwrap()).unwrap();
        let a = expand_seed(&ctx, 3, &[7; 32]);
        let b = expand_seed(&ctx, 2, &[7; 32]);
        assert_eq!(&a.data()[..128], b.data());
        assert_ne!(expand_seed(&ctx, 3, &[8; 32]), a);
        assert_ne!(expand_seed_stream(&ctx, 3, &[7; 32], 1), a);
        assert_eq!(expand_seed_stream(&ctx, 3, &[7; 32], 0), a);
        assert_eq!(a.representation(), Representation::Ntt);
    }
}
