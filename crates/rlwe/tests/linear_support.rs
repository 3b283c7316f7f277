//! The pieces `privinfer-linear` builds Cheetah's layers from, each against an independent
//! oracle: Δ-encoding in place (multi-limb integer arithmetic), the flooding Gaussian (moments and
//! tail), re-randomization and flooding (plaintext decryption and exact noise accounting), the
//! headerless public key, and the linear presets (primes re-derived from `generate_primes`).

use math::baseconv::modulus_product;
use math::prime::generate_primes;
use math::{Poly, Representation};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use rlwe::*;

/// ⌊Q·m/2^ℓ⌉ mod q by schoolbook limb arithmetic: Q (little-endian 64-bit limbs) times m, plus
/// 2^{ℓ−1}, shifted right by ℓ, reduced by Horner's rule in u128.
fn scaled_oracle(q_limbs: &[u64], m: u64, ell: u32, q: u64) -> u64 {
    let mut prod = vec![0u64; q_limbs.len() + 1];
    let mut carry = 0u128;
    for (i, &l) in q_limbs.iter().enumerate() {
        let v = l as u128 * m as u128 + carry;
        prod[i] = v as u64;
        carry = v >> 64;
    }
    prod[q_limbs.len()] = carry as u64;
    // + 2^{ℓ−1}
    let mut add = 1u128 << (ell - 1);
    for limb in prod.iter_mut() {
        let v = *limb as u128 + add;
        *limb = v as u64;
        add = v >> 64;
    }
    // >> ℓ (ℓ < 64)
    let len = prod.len();
    let shifted: Vec<u64> = (0..len)
        .map(|i| {
            let hi = if i + 1 < len {
                prod[i + 1] << (64 - ell)
            } else {
                0
            };
            (prod[i] >> ell) | hi
        })
        .collect();
    shifted
        .iter()
        .rev()
        .fold(0u128, |acc, &l| ((acc << 64) | l as u128) % q as u128) as u64
}

#[test]
fn add_scaled_matches_big_integer_oracle() {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    for (lit, ell) in [
        (presets::cheetah_n4096_q55_54_t2l(37).unwrap(), 37),
        (presets::cheetah_n8192_q218_t2l(41).unwrap(), 41),
        (presets::bfv_n8192_q180_t2l(13).unwrap(), 13),
    ] {
        let p = Params::new(lit).unwrap();
        let t = 1u64 << ell;
        for level in 1..=p.max_level() {
            let moduli = &p.ctx_q().moduli()[..level];
            let q_limbs = modulus_product(moduli);
            let base =
                math::sample::uniform_poly(p.ctx_q(), level, Representation::Coefficient, &mut rng);
            // Sparse positions (with a repeat) and the dense form.
            let pos = [0usize, 17, 17, p.n() - 1];
            let vals = [t - 1, 1, rng.next_u64() % t, rng.next_u64() % t];
            let mut got = base.clone();
            p.add_scaled_at(&mut got, &pos, &vals).unwrap();
            let dense: Vec<u64> = (0..100)
                .map(|i| if i % 3 == 0 { 0 } else { rng.next_u64() % t })
                .collect();
            let mut got_dense = base.clone();
            p.add_scaled(&mut got_dense, &dense).unwrap();
            for (i, m) in moduli.iter().enumerate() {
                let q = m.value();
                let mut want = base.residue(i).to_vec();
                for (&j, &v) in pos.iter().zip(&vals) {
                    want[j] = m.add(want[j], scaled_oracle(&q_limbs, v, ell, q));
                }
                assert_eq!(got.residue(i), &want[..], "sparse, level {level}");
                let mut want = base.residue(i).to_vec();
                for (j, &v) in dense.iter().enumerate() {
                    want[j] = m.add(want[j], scaled_oracle(&q_limbs, v, ell, q));
                }
                assert_eq!(got_dense.residue(i), &want[..], "dense, level {level}");
            }
            // Same arithmetic as Plaintext::scaled.
            let pt = Plaintext::from_unsigned(&p, &dense).unwrap();
            let mut z = Poly::zero(p.ctx_q(), level, Representation::Coefficient);
            p.add_scaled(&mut z, &dense).unwrap();
            assert_eq!(z, pt.scaled(level).unwrap());
        }
        // Refusals.
        let mut z = Poly::zero(p.ctx_q(), 1, Representation::Coefficient);
        assert!(p.add_scaled_at(&mut z, &[0], &[t]).is_err());
        assert!(p.add_scaled_at(&mut z, &[p.n()], &[1]).is_err());
        assert!(p.add_scaled_at(&mut z, &[0, 1], &[1]).is_err());
        assert!(p.add_scaled(&mut z, &vec![1; p.n() + 1]).is_err());
        let mut zn = Poly::zero(p.ctx_q(), 1, Representation::Ntt);
        assert!(p.add_scaled(&mut zn, &[1]).is_err());
    }
}

#[test]
fn flooding_gaussian_moments_and_tail() {
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    for sigma in [3.0f64, 2f64.powi(40), 2f64.powi(140)] {
        const S: usize = 40_000;
        let xs: Vec<f64> = (0..S)
            .map(|_| sample_flooding_gaussian(sigma, &mut rng).unwrap() / sigma)
            .collect();
        let mean = xs.iter().sum::<f64>() / S as f64;
        let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / S as f64;
        let kurt = xs.iter().map(|x| (x - mean).powi(4)).sum::<f64>() / S as f64 / (var * var);
        // Standard errors: mean 1/√S = 0.005, variance √(2/S) = 0.007, kurtosis √(24/S) = 0.025;
        // bounds at ≈ 5 standard errors (σ = 3 adds the rounding variance 1/12/9 ≈ 0.009).
        assert!(mean.abs() < 0.025, "σ {sigma}: mean {mean}");
        assert!((var - 1.0).abs() < 0.045, "σ {sigma}: variance {var}");
        assert!((kurt - 3.0).abs() < 0.15, "σ {sigma}: kurtosis {kurt}");
        assert!(xs
            .iter()
            .all(|x| x.abs() <= eval::FLOOD_GAUSSIAN_Z_MAX + 0.5 / sigma));
    }
    // The extreme uniform: u₁ = 2^-54 (all-zero draw) gives |z| = √(108 ln 2) < 8.66.
    struct Zero;
    impl RngCore for Zero {
        fn next_u32(&mut self) -> u32 {
            0
        }
        fn next_u64(&mut self) -> u64 {
            0
        }
        fn fill_bytes(&mut self, d: &mut [u8]) {
            d.fill(0)
        }
        fn try_fill_bytes(&mut self, d: &mut [u8]) -> Result<(), rand::Error> {
            d.fill(0);
            Ok(())
        }
    }
    let v = sample_flooding_gaussian(1e6, &mut Zero).unwrap();
    assert!(v <= eval::FLOOD_GAUSSIAN_Z_MAX * 1e6 && v > 8.6 * 1e6 && v.fract() == 0.0);
    for bad in [-1.0, f64::NAN, 2f64.powi(201), f64::INFINITY] {
        assert!(matches!(
            sample_flooding_gaussian(bad, &mut rng),
            Err(RlweError::FloodingSigmaOutOfRange { .. })
        ));
    }
}

/// Reduction of integer-valued samples of any size against u128 limb arithmetic: v = ±m·2^e
/// reduced by repeated doubling mod q.
#[test]
fn reduce_flooding_sample_oracle() {
    let q = math::Modulus::new(generate_primes(55, 4096, 1, &[]).unwrap()[0]).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(6);
    let oracle = |v: f64| -> u64 {
        let (neg, a) = (v < 0.0, v.abs());
        let e = a.log2().floor() as i32 - 52;
        let (m, e) = if e > 0 {
            ((a / 2f64.powi(e)) as u128, e)
        } else {
            (a as u128, 0)
        };
        let mut r = m % q.value() as u128;
        for _ in 0..e {
            r = (r * 2) % q.value() as u128;
        }
        let r = r as u64;
        if neg && r != 0 {
            q.value() - r
        } else {
            r
        }
    };
    for sigma in [
        1e3,
        2f64.powi(70),
        2f64.powi(125),
        2f64.powi(135),
        2f64.powi(200),
    ] {
        for _ in 0..200 {
            let v = sample_flooding_gaussian(sigma, &mut rng).unwrap();
            if v == 0.0 {
                continue;
            }
            assert_eq!(reduce_flooding_sample(v, &q), oracle(v), "{v:e}");
        }
    }
    assert_eq!(reduce_flooding_sample(-0.0, &q), 0);
    assert_eq!(reduce_flooding_sample(-1.0, &q), q.value() - 1);
}

/// Re-randomization and flooding change only the noise, by exactly what was added: the phase
/// difference is e_pk·u + e₀ + e₁·s (small) plus the flooding values at the chosen indices, and
/// the message decrypts unchanged.
#[test]
fn rerandomize_and_flood_against_plaintext() {
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let p = Params::new(presets::cheetah_n8192_q165_t2l(30).unwrap()).unwrap();
    let sk = SecretKey::generate(&p, &mut rng);
    let pk = PublicKey::generate(&sk, &mut rng).unwrap();
    let ev = Evaluator::new(&p);
    let t = 1u64 << 30;
    let m: Vec<u64> = (0..p.n()).map(|_| rng.next_u64() % t).collect();
    let pt = Plaintext::from_unsigned(&p, &m).unwrap();
    let ct0 = sk.encrypt(&pt, &mut rng).unwrap();
    let mut ct = ct0.clone();
    ev.rerandomize(&mut ct, &pk, &mut rng).unwrap();
    assert_eq!(ct.representation(), Representation::Coefficient);
    assert_ne!(ct.polys()[1], {
        let mut c = ct0.polys()[1].clone();
        c.ntt_inverse();
        c
    });
    assert_eq!(sk.decrypt(&ct).unwrap(), pt);
    let fresh = sk.noise_log2(&ct0, &pt).unwrap();
    let rerand = sk.noise_log2(&ct, &pt).unwrap();
    // e_pk·u + e₁·s: ≤ 9.5·σ·√(2N) ≈ 2^12 at N = 8192.
    assert!(rerand < 13.0 && rerand > fresh, "{fresh} → {rerand}");
    let before = sk.phase(&ct).unwrap();
    let idx = [1usize, 8191, 1];
    let sigma = 2f64.powi(60);
    let mut flood_rng = ChaCha20Rng::seed_from_u64(9);
    ev.flood_gaussian(&mut ct, sigma, &idx, &mut flood_rng)
        .unwrap();
    let after = sk.phase(&ct).unwrap();
    let mut replay = ChaCha20Rng::seed_from_u64(9);
    let f: Vec<i128> = idx
        .iter()
        .map(|_| sample_flooding_gaussian(sigma, &mut replay).unwrap() as i128)
        .collect();
    for (i, md) in p.ctx_q().moduli().iter().enumerate() {
        for j in 0..p.n() {
            let mut want = before.residue(i)[j];
            for (&jj, &v) in idx.iter().zip(&f) {
                if jj == j {
                    want = md.add(want, md.reduce_i128(v));
                }
            }
            assert_eq!(after.residue(i)[j], want);
        }
    }
    assert_eq!(sk.decrypt(&ct).unwrap(), pt);
    assert!(ev
        .flood_gaussian(&mut ct, sigma, &[p.n()], &mut rng)
        .is_err());
    assert!(ev.add_flooding_at(&mut ct, &[0], &[0.5]).is_err());
    assert!(ev.add_flooding_at(&mut ct, &[0], &[f64::NAN]).is_err());
    assert!(ev.add_flooding_at(&mut ct, &[0, 1], &[1.0]).is_err());
    // Keys of another ℓ are refused.
    let p2 = Params::new(presets::cheetah_n8192_q165_t2l(31).unwrap()).unwrap();
    let sk2 = SecretKey::generate(&p2, &mut rng);
    let pk2 = PublicKey::generate(&sk2, &mut rng).unwrap();
    assert!(ev.rerandomize(&mut ct, &pk2, &mut rng).is_err());
}

#[test]
fn public_key_raw_round_trip_and_rejects() {
    let mut rng = ChaCha20Rng::seed_from_u64(4);
    let p = Params::new(presets::cheetah_n4096_q55_54_t2l(37).unwrap()).unwrap();
    let sk = SecretKey::generate(&p, &mut rng);
    let pk = PublicKey::generate(&sk, &mut rng).unwrap();
    let mut raw = Vec::new();
    serialize::public_key_to_raw(&pk, &mut raw);
    assert_eq!(raw.len(), serialize::public_key_raw_len(&p));
    assert_eq!(raw.len(), 32 + 4096 * (55 + 54) / 8);
    // The headered form carries the same seed and p₀ after its 12-byte header.
    let full = serialize::public_key_to_bytes(&pk);
    assert_eq!(&full[12..12 + raw.len() - 32], &raw[32..]);
    assert_eq!(&full[full.len() - 32..], &raw[..32]);
    let back = serialize::public_key_from_raw(&p, &raw).unwrap();
    assert_eq!(back, pk);
    assert!(serialize::public_key_from_raw(&p, &raw[1..]).is_err());
    let mut long = raw.clone();
    long.push(0);
    assert!(serialize::public_key_from_raw(&p, &long).is_err());
    // First residue of p₀ set to 2^55 − 1 ≥ q₀.
    let mut bad = raw.clone();
    bad[32..39].fill(0xff);
    assert!(matches!(
        serialize::public_key_from_raw(&p, &bad),
        Err(RlweError::ValueOutOfRange { .. })
    ));
}

/// The linear presets' primes are the chain of largest NTT primes of the given sizes, each
/// excluding the ones before (how `privinfer-linear` derived them), and within the 128-bit bound.
#[test]
fn linear_presets_primes() {
    for (lit, n, bits) in [
        (
            presets::cheetah_n4096_q55_54_t2l(20).unwrap(),
            4096,
            &[55u32, 54][..],
        ),
        (
            presets::cheetah_n8192_q165_t2l(20).unwrap(),
            8192,
            &[55, 55, 55],
        ),
        (
            presets::cheetah_n8192_q218_t2l(20).unwrap(),
            8192,
            &[55, 55, 54, 54],
        ),
    ] {
        let mut primes: Vec<u64> = Vec::new();
        for &b in bits {
            primes.push(generate_primes(b, n, 1, &primes).unwrap()[0]);
        }
        assert_eq!(lit.q, primes);
        assert!(lit.p.is_empty());
        assert!(Params::new(lit).is_ok());
    }
}
