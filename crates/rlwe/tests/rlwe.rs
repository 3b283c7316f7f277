//! Integration tests: every operation against plaintext arithmetic.

use math::{Modulus, PolyMultiplier, Wrap};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use rlwe::serialize::{self, Form};
use rlwe::*;
use std::sync::Arc;

fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

fn params(log_n: u32, t: u64) -> Arc<Params> {
    Params::new(presets::insecure_test_only(log_n, t).unwrap()).unwrap()
}

fn random_pt(p: &Arc<Params>, r: &mut ChaCha20Rng) -> Plaintext {
    let t = p.t().value();
    let v: Vec<u64> = (0..p.n()).map(|_| r.gen_range(0..t)).collect();
    Plaintext::from_unsigned(p, &v).unwrap()
}

/// Negacyclic product mod t (independent oracle: exact 3-prime convolution).
fn negacyclic(p: &Params, a: &[u64], b: &[u64]) -> Vec<u64> {
    PolyMultiplier::new(p.n(), p.t().value(), Wrap::Negacyclic)
        .unwrap()
        .mul(a, b)
        .unwrap()
}

const T_POW2: u64 = 1 << 37;
const T_PRIME: u64 = 65537; // ≡ 1 mod 2·256 and mod 2·1024? 65536 = 2^16, so yes for N ≤ 2^15

#[test]
fn encrypt_decrypt_sk_pk_any_t() {
    let mut r = rng(1);
    for t in [2u64, 3, 255, T_PRIME, T_POW2, (1 << 45) - 1] {
        let p = params(8, t);
        let sk = SecretKey::generate(&p, &mut r);
        let pk = PublicKey::generate(&sk, &mut r).unwrap();
        for l in 1..=p.max_level() {
            if p.log_q(l) - (t as f64).log2() < 25.0 {
                continue; // no room for fresh noise (≈ 2^12 for pk at N = 256)
            }
            let m = random_pt(&p, &mut r);
            let c = sk.encrypt_at(&m, l, &mut r).unwrap();
            assert_eq!(sk.decrypt(&c).unwrap(), m, "sk t={t} l={l}");
            let c = pk.encrypt_at(&m, l, &mut r).unwrap();
            assert_eq!(sk.decrypt(&c).unwrap(), m, "pk t={t} l={l}");
        }
    }
    // the Cheetah preset itself
    let p = Params::new(presets::cheetah_n4096_q109_t2l(37).unwrap()).unwrap();
    let sk = SecretKey::generate(&p, &mut r);
    let m = random_pt(&p, &mut r);
    assert_eq!(sk.decrypt(&sk.encrypt(&m, &mut r).unwrap()).unwrap(), m);
    // wrong key does not decrypt
    let sk2 = SecretKey::generate(&p, &mut r);
    assert_ne!(sk2.decrypt(&sk.encrypt(&m, &mut r).unwrap()).unwrap(), m);
}

#[test]
fn signed_encoding_roundtrip() {
    let p = params(8, T_POW2);
    let v: Vec<i64> = vec![-1, 5, -(1 << 36), (1 << 36) - 1, 0];
    let pt = Plaintext::from_signed(&p, &v).unwrap();
    assert_eq!(&pt.to_signed()[..5], &v[..]);
    assert!(Plaintext::from_unsigned(&p, &[T_POW2]).is_err());
    assert!(Plaintext::from_unsigned(&p, &vec![0; 257]).is_err());
}

#[test]
fn additive_ops_match_plaintext() {
    let mut r = rng(2);
    for t in [T_POW2, T_PRIME] {
        let p = params(8, t);
        let tm = Modulus::new(t).unwrap();
        let sk = SecretKey::generate(&p, &mut r);
        let ev = Evaluator::new(&p);
        let (a, b, c) = (
            random_pt(&p, &mut r),
            random_pt(&p, &mut r),
            random_pt(&p, &mut r),
        );
        let mut ca = sk.encrypt(&a, &mut r).unwrap();
        let mut cb = sk.encrypt(&b, &mut r).unwrap();
        cb.to_representation(Representation::Coefficient); // mixed representations
        ev.add_assign(&mut ca, &cb).unwrap();
        ev.sub_plain_assign(&mut ca, &c).unwrap();
        let mut cc = sk.encrypt(&c, &mut r).unwrap();
        ev.neg_assign(&mut cc).unwrap();
        ev.sub_assign(&mut ca, &cc).unwrap();
        ev.add_plain_assign(&mut ca, &a).unwrap();
        // a + b − c + c + a
        let want: Vec<u64> = (0..p.n())
            .map(|i| {
                tm.add(
                    tm.add(tm.add(a.coeffs()[i], b.coeffs()[i]), a.coeffs()[i]),
                    0,
                )
            })
            .collect();
        assert_eq!(sk.decrypt(&ca).unwrap().coeffs(), &want[..]);
    }
}

#[test]
fn plaintext_products_match_negacyclic_oracle() {
    let mut r = rng(3);
    for t in [T_POW2, T_PRIME] {
        let p = params(8, t);
        let sk = SecretKey::generate(&p, &mut r);
        let ev = Evaluator::new(&p);
        let x = random_pt(&p, &mut r);
        // small signed weights (what Cheetah multiplies by)
        let w: Vec<i64> = (0..p.n()).map(|_| r.gen_range(-4096..4096)).collect();
        let wpt = Plaintext::from_signed(&p, &w).unwrap();
        let ct = sk.encrypt(&x, &mut r).unwrap();
        let wn = PlaintextNtt::from_signed(&p, &w, ct.num_moduli()).unwrap();
        let mut prod = ct.clone();
        ev.mul_plain_assign(&mut prod, &wn).unwrap();
        let want = negacyclic(&p, x.coeffs(), wpt.coeffs());
        assert_eq!(sk.decrypt(&prod).unwrap().coeffs(), &want[..], "t = {t}");
        // reusable prepared plaintext from a Plaintext (centered lift); accumulate two products
        let wn2 = PlaintextNtt::new(&wpt, ct.num_moduli()).unwrap();
        let mut acc = ev.zero(ct.num_moduli(), Representation::Ntt).unwrap();
        ev.mul_plain_acc(&mut acc, &ct, &wn2).unwrap();
        ev.mul_plain_acc(&mut acc, &ct, &wn).unwrap();
        let tm = Modulus::new(t).unwrap();
        let want2: Vec<u64> = want.iter().map(|&v| tm.add(v, v)).collect();
        assert_eq!(sk.decrypt(&acc).unwrap().coeffs(), &want2[..]);
    }
}

#[test]
fn mod_switch_keeps_message() {
    let mut r = rng(4);
    for t in [T_POW2, T_PRIME, 2] {
        let p = params(8, t);
        let sk = SecretKey::generate(&p, &mut r);
        let ev = Evaluator::new(&p);
        let m = random_pt(&p, &mut r);
        let mut ct = sk.encrypt(&m, &mut r).unwrap();
        let w: Vec<i64> = (0..p.n()).map(|_| r.gen_range(-100..100)).collect();
        ev.mul_plain_assign(&mut ct, &PlaintextNtt::from_signed(&p, &w, 3).unwrap())
            .unwrap();
        let want = sk.decrypt(&ct).unwrap();
        ev.mod_switch_to_next(&mut ct).unwrap();
        assert_eq!(ct.num_moduli(), 2);
        assert_eq!(sk.decrypt(&ct).unwrap(), want);
        ev.mod_switch_to(&mut ct, 1).unwrap();
        assert_eq!(sk.decrypt(&ct).unwrap(), want);
        assert!(ev.mod_switch_to_next(&mut ct).is_err());
    }
}

#[test]
fn flooding_preserves_message_and_checks_budget() {
    let mut r = rng(5);
    let p = params(8, 1 << 20);
    let sk = SecretKey::generate(&p, &mut r);
    let pk = PublicKey::generate(&sk, &mut r).unwrap();
    let ev = Evaluator::new(&p);
    let m = random_pt(&p, &mut r);
    let mut ct = sk.encrypt(&m, &mut r).unwrap();
    let noise = sk.noise_log2(&ct, &m).unwrap();
    let cfg = FloodingConfig {
        stat_sec_bits: 40,
        noise_bits: noise,
        revealed_coeffs: p.n(),
    };
    let b = ev.flood(&mut ct, &pk, &cfg, &mut r).unwrap();
    assert_eq!(sk.decrypt(&ct).unwrap(), m);
    let after = sk.noise_log2(&ct, &m).unwrap();
    // the flooding term dominates: noise ≈ b bits
    assert!(
        after > b as f64 - 2.0 && after <= b as f64 + 0.5,
        "{after} vs {b}"
    );
    assert!(ct.seed().is_none());
    // at one prime (50 bits) with t = 2^20 there is no room for 40-bit flooding
    ev.mod_switch_to(&mut ct, 1).unwrap();
    assert!(matches!(
        ev.flood(&mut ct, &pk, &cfg, &mut r),
        Err(RlweError::FloodingExceedsBudget { .. })
    ));
    let weak = FloodingConfig {
        stat_sec_bits: 30,
        ..cfg
    };
    assert!(ev.flood(&mut ct, &pk, &weak, &mut r).is_err());
}

#[test]
fn batching_rotations_and_products() {
    let mut r = rng(6);
    let p = params(8, T_PRIME);
    let n = p.n();
    let half = n / 2;
    let enc = BatchEncoder::new(&p).unwrap();
    let sk = SecretKey::generate(&p, &mut r);
    let ev = Evaluator::new(&p);
    let v: Vec<u64> = (0..n).map(|_| r.gen_range(0..T_PRIME)).collect();
    let u: Vec<u64> = (0..n).map(|_| r.gen_range(0..T_PRIME)).collect();
    let pv = enc.encode(&v).unwrap();
    assert_eq!(enc.decode(&pv).unwrap(), v);
    let gk = GaloisKeys::for_rotations(&sk, &[1, 3, -1], true, &mut r).unwrap();
    let ct = sk.encrypt(&pv, &mut r).unwrap();
    for steps in [1i64, 3, -1] {
        let rot = ev.rotate_rows(&ct, steps, &gk).unwrap();
        let got = enc.decode(&sk.decrypt(&rot).unwrap()).unwrap();
        let want: Vec<u64> = (0..n)
            .map(|s| {
                let (row, col) = (s / half, s % half);
                v[row * half + (col as i64 + steps).rem_euclid(half as i64) as usize]
            })
            .collect();
        assert_eq!(got, want, "steps {steps}");
    }
    let sw = ev.rotate_columns(&ct, &gk).unwrap();
    let got = enc.decode(&sk.decrypt(&sw).unwrap()).unwrap();
    let want: Vec<u64> = (0..n).map(|s| v[(s + half) % n]).collect();
    assert_eq!(got, want);
    assert!(matches!(
        ev.rotate_rows(&ct, 2, &gk),
        Err(RlweError::MissingGaloisKey { .. })
    ));
    // Hoisted: one decomposition for several rotations, each decrypting like the plain one, at
    // the top level and one level down, for a ciphertext in either representation.
    let gk_h = GaloisKeys::for_rotations(&sk, &[1, 3, -1, 5, -7], false, &mut r).unwrap();
    let steps = [1i64, 3, -1, 0, 5, -7, 3];
    let mut lower = ct.clone();
    ev.mod_switch_to_next(&mut lower).unwrap();
    for c in [&ct, &lower] {
        let hoisted = ev.rotate_rows_hoisted(c, &steps, &gk_h).unwrap();
        for (&st, h) in steps.iter().zip(&hoisted) {
            let want: Vec<u64> = (0..n)
                .map(|s| {
                    let (row, col) = (s / half, s % half);
                    v[row * half + (col as i64 + st).rem_euclid(half as i64) as usize]
                })
                .collect();
            assert_eq!(
                enc.decode(&sk.decrypt(h).unwrap()).unwrap(),
                want,
                "steps {st}"
            );
            if st != 0 {
                // Key-switching noise of the same size as the plain rotation's.
                let pw = enc.encode(&want).unwrap();
                let a = sk.noise_log2(h, &pw).unwrap();
                let b = sk
                    .noise_log2(&ev.rotate_rows(c, st, &gk_h).unwrap(), &pw)
                    .unwrap();
                assert!(a <= b + 1.0, "steps {st}: hoisted 2^{a:.1}, plain 2^{b:.1}");
            }
        }
    }
    assert!(matches!(
        ev.rotate_rows_hoisted(&ct, &[1, 2], &gk_h),
        Err(RlweError::MissingGaloisKey { .. })
    ));
    // slot-wise products: ct × pt and ct × ct + relinearization
    let tm = Modulus::new(T_PRIME).unwrap();
    let want: Vec<u64> = v.iter().zip(&u).map(|(&a, &b)| tm.mul(a, b)).collect();
    let pu = enc.encode(&u).unwrap();
    let mut c1 = ct.clone();
    ev.mul_plain_assign(&mut c1, &PlaintextNtt::new(&pu, 3).unwrap())
        .unwrap();
    assert_eq!(enc.decode(&sk.decrypt(&c1).unwrap()).unwrap(), want);
    let rk = RelinKey::generate(&sk, &mut r).unwrap();
    let cu = sk.encrypt(&pu, &mut r).unwrap();
    let c3 = ev.mul_no_relin(&ct, &cu).unwrap();
    assert_eq!(c3.size(), 3);
    assert_eq!(enc.decode(&sk.decrypt(&c3).unwrap()).unwrap(), want);
    let c2 = ev.mul(&ct, &cu, &rk).unwrap();
    assert_eq!(enc.decode(&sk.decrypt(&c2).unwrap()).unwrap(), want);
    // one more level of depth after switching down
    let mut c2s = c2.clone();
    ev.mod_switch_to_next(&mut c2s).unwrap();
    let mut cu2 = cu.clone();
    ev.mod_switch_to_next(&mut cu2).unwrap();
    let c4 = ev.mul(&c2s, &cu2, &rk).unwrap();
    let want4: Vec<u64> = want.iter().zip(&u).map(|(&a, &b)| tm.mul(a, b)).collect();
    assert_eq!(enc.decode(&sk.decrypt(&c4).unwrap()).unwrap(), want4);
}

#[test]
fn key_switching_with_several_special_primes_at_every_level() {
    // α = 2 special primes: digits {q0, q1}, {q2, q3}, {q4}; rotations and
    // relinearization at every level (partial digits included)
    let mut r = rng(13);
    let lit = ParamsLiteral::from_bit_sizes(7, &[40, 40, 40, 40, 40], &[45, 45], T_PRIME)
        .unwrap()
        .insecure_test_only();
    let p = Params::new(lit).unwrap();
    assert_eq!(p.key_switcher().unwrap().dnum(), 3);
    let n = p.n();
    let enc = BatchEncoder::new(&p).unwrap();
    let sk = SecretKey::generate(&p, &mut r);
    let gk = GaloisKeys::for_rotations(&sk, &[1], false, &mut r).unwrap();
    let rk = RelinKey::generate(&sk, &mut r).unwrap();
    let ev = Evaluator::new(&p);
    let v: Vec<u64> = (0..n).map(|_| r.gen_range(0..T_PRIME)).collect();
    let tm = Modulus::new(T_PRIME).unwrap();
    let half = n / 2;
    let rot: Vec<u64> = (0..n)
        .map(|s| v[(s / half) * half + (s % half + 1) % half])
        .collect();
    let sq: Vec<u64> = v.iter().map(|&a| tm.mul(a, a)).collect();
    for l in 1..=p.max_level() {
        let ct = sk.encrypt_at(&enc.encode(&v).unwrap(), l, &mut r).unwrap();
        let c = ev.rotate_rows(&ct, 1, &gk).unwrap();
        assert_eq!(
            enc.decode(&sk.decrypt(&c).unwrap()).unwrap(),
            rot,
            "rotation at level {l}"
        );
        if l >= 2 {
            let c = ev.mul(&ct, &ct, &rk).unwrap();
            assert_eq!(
                enc.decode(&sk.decrypt(&c).unwrap()).unwrap(),
                sq,
                "product at level {l}"
            );
        }
    }
}

#[test]
fn ct_ct_product_power_of_two_t() {
    // coefficient-encoded product for t = 2^ℓ (no batching): negacyclic product mod t
    let mut r = rng(7);
    let p = params(8, 1 << 16);
    let sk = SecretKey::generate(&p, &mut r);
    let rk = RelinKey::generate(&sk, &mut r).unwrap();
    let ev = Evaluator::new(&p);
    let a = random_pt(&p, &mut r);
    let b = random_pt(&p, &mut r);
    let c = ev
        .mul(
            &sk.encrypt(&a, &mut r).unwrap(),
            &sk.encrypt(&b, &mut r).unwrap(),
            &rk,
        )
        .unwrap();
    assert_eq!(
        sk.decrypt(&c).unwrap().coeffs(),
        &negacyclic(&p, a.coeffs(), b.coeffs())[..]
    );
}

#[test]
fn lwe_extraction_and_packing() {
    let mut r = rng(8);
    for t in [T_POW2, T_PRIME] {
        let p = params(6, t); // N = 64 keeps PackLWEs quick
        let n = p.n();
        let sk = SecretKey::generate(&p, &mut r);
        let ev = Evaluator::new(&p);
        let m = random_pt(&p, &mut r);
        let ct = sk.encrypt(&m, &mut r).unwrap();
        let idx: Vec<usize> = vec![0, 1, 17, n - 1];
        let lwes = LweCiphertext::extract_many(&ct, &idx).unwrap();
        for (l, &i) in lwes.iter().zip(&idx) {
            assert_eq!(l.decrypt(&sk).unwrap(), m.coeffs()[i]);
        }
        assert!(LweCiphertext::extract(&ct, n).is_err());
        let keys = PackingKeys::generate(&sk, &mut r).unwrap();
        for count in [1usize, 4, n] {
            let sel: Vec<usize> = (0..count).map(|j| (j * 7 + 3) % n).collect();
            let lw = LweCiphertext::extract_many(&ct, &sel).unwrap();
            let packed = ev.pack_lwes(&lw, &keys).unwrap();
            let dec = sk.decrypt(&packed).unwrap();
            let stride = n / count;
            for c in 0..n {
                let want = if c % stride == 0 {
                    m.coeffs()[sel[c / stride]]
                } else {
                    0
                };
                assert_eq!(dec.coeffs()[c], want, "t={t} count={count} coeff={c}");
            }
        }
        assert!(ev.pack_lwes(&lwes[..3], &keys).is_err());
    }
}

#[test]
fn serialization_roundtrips() {
    let mut r = rng(9);
    let p = params(6, T_PRIME);
    let sk = SecretKey::generate(&p, &mut r);
    let pk = PublicKey::generate(&sk, &mut r).unwrap();
    let ev = Evaluator::new(&p);
    let m = random_pt(&p, &mut r);
    let ct = sk.encrypt(&m, &mut r).unwrap();
    let seeded = serialize::ciphertext_to_bytes(&ct, Form::Seeded).unwrap();
    let full = serialize::ciphertext_to_bytes(&ct, Form::Full).unwrap();
    assert!(seeded.len() < full.len() / 2 + 40);
    assert_eq!(serialize::ciphertext_from_bytes(&p, &seeded).unwrap(), ct);
    assert_eq!(
        serialize::ciphertext_from_bytes(&p, &full).unwrap().polys(),
        ct.polys()
    );
    // size: 3 primes of 50 bits, N = 64: 12 + 3 + 2·3·64·50/8 bytes
    assert_eq!(full.len(), 12 + 3 + 2 * 3 * 64 * 50 / 8);
    let mut ctc = ct.clone();
    ctc.to_representation(Representation::Coefficient);
    let b = serialize::ciphertext_to_bytes(&ctc, Form::Seeded).unwrap();
    assert_eq!(
        sk.decrypt(&serialize::ciphertext_from_bytes(&p, &b).unwrap())
            .unwrap(),
        m
    );
    let mut not_fresh = ct.clone();
    ev.add_assign(&mut not_fresh, &ct).unwrap();
    assert!(serialize::ciphertext_to_bytes(&not_fresh, Form::Seeded).is_err());
    // selected coefficients
    let idx = [3usize, 0, 63];
    let sel = serialize::ciphertext_to_bytes_selected(&ct, &idx).unwrap();
    let part = serialize::selected_from_bytes(&p, &sel, &idx).unwrap();
    assert_eq!(
        part.decrypt(&sk).unwrap(),
        vec![m.coeffs()[3], m.coeffs()[0], m.coeffs()[63]]
    );
    assert!(serialize::selected_from_bytes(&p, &sel, &idx[..2]).is_err());
    // plaintext, public key, keys, LWE
    assert_eq!(
        serialize::plaintext_from_bytes(&p, &serialize::plaintext_to_bytes(&m)).unwrap(),
        m
    );
    assert_eq!(
        serialize::public_key_from_bytes(&p, &serialize::public_key_to_bytes(&pk)).unwrap(),
        pk
    );
    let gk = GaloisKeys::for_rotations(&sk, &[1], true, &mut r).unwrap();
    assert_eq!(
        serialize::galois_keys_from_bytes(&p, &serialize::galois_keys_to_bytes(&gk)).unwrap(),
        gk
    );
    let rk = RelinKey::generate(&sk, &mut r).unwrap();
    assert_eq!(
        serialize::relin_key_from_bytes(&p, &serialize::relin_key_to_bytes(&rk)).unwrap(),
        rk
    );
    let lwe = LweCiphertext::extract(&ct, 5).unwrap();
    assert_eq!(
        serialize::lwe_from_bytes(&p, &serialize::lwe_to_bytes(&lwe)).unwrap(),
        lwe
    );
    // other parameters are refused
    let p2 = params(6, 257);
    assert!(matches!(
        serialize::ciphertext_from_bytes(&p2, &full),
        Err(RlweError::WrongParamsId { .. })
    ));
}

#[test]
fn corrupted_or_truncated_bytes_are_errors() {
    let mut r = rng(10);
    let p = params(4, 17); // N = 16: exhaustive truncation is cheap
    let sk = SecretKey::generate(&p, &mut r);
    let pk = PublicKey::generate(&sk, &mut r).unwrap();
    let m = random_pt(&p, &mut r);
    let ct = sk.encrypt(&m, &mut r).unwrap();
    let gk = GaloisKeys::for_rotations(&sk, &[1], false, &mut r).unwrap();
    let blobs: Vec<(Vec<u8>, u8)> = vec![
        (serialize::ciphertext_to_bytes(&ct, Form::Full).unwrap(), 0),
        (
            serialize::ciphertext_to_bytes(&ct, Form::Seeded).unwrap(),
            0,
        ),
        (
            serialize::ciphertext_to_bytes_selected(&ct, &[1, 2]).unwrap(),
            1,
        ),
        (serialize::plaintext_to_bytes(&m), 2),
        (serialize::public_key_to_bytes(&pk), 3),
        (serialize::galois_keys_to_bytes(&gk), 4),
        (
            serialize::lwe_to_bytes(&LweCiphertext::extract(&ct, 1).unwrap()),
            5,
        ),
    ];
    let parse = |b: &[u8], k: u8| -> bool {
        match k {
            0 => serialize::ciphertext_from_bytes(&p, b).is_ok(),
            1 => serialize::selected_from_bytes(&p, b, &[1, 2]).is_ok(),
            2 => serialize::plaintext_from_bytes(&p, b).is_ok(),
            3 => serialize::public_key_from_bytes(&p, b).is_ok(),
            4 => serialize::galois_keys_from_bytes(&p, b).is_ok(),
            5 => serialize::lwe_from_bytes(&p, b).is_ok(),
            _ => SmallModCiphertext::from_bytes(&p, b, 1 << 20, &[1, 2]).is_ok(),
        }
    };
    for (blob, k) in &blobs {
        assert!(parse(blob, *k));
        for cut in 0..blob.len() {
            assert!(
                !parse(&blob[..cut], *k),
                "truncated to {cut} accepted (kind {k})"
            );
        }
        let mut longer = blob.clone();
        longer.push(0);
        assert!(!parse(&longer, *k));
        // random corruptions: never panic; header/structure corruptions must fail
        for _ in 0..300 {
            let mut c = blob.clone();
            let i = r.gen_range(0..c.len());
            c[i] ^= 1 << r.gen_range(0..8);
            let ok = parse(&c, *k);
            if i < 12 {
                assert!(!ok, "header corruption accepted at byte {i}");
            }
        }
        // all-ones residues exceed every modulus
        let mut c = blob.clone();
        for b in c.iter_mut().skip(16) {
            *b = 0xff;
        }
        assert!(!parse(&c, *k));
    }
}

#[test]
fn cheetah_flow_with_small_modulus_response() {
    // client share x, server share y and weights w: client learns (x + y)·w − mask mod 2^ℓ
    let mut r = rng(12);
    let ell = 37;
    let t = 1u64 << ell;
    let p = Params::new(presets::bfv_n8192_q180_t2l(ell).unwrap()).unwrap();
    let n = p.n();
    let sk = SecretKey::generate(&p, &mut r);
    let pk = PublicKey::generate(&sk, &mut r).unwrap();
    let ev = Evaluator::new(&p);
    let x = random_pt(&p, &mut r);
    let y = random_pt(&p, &mut r);
    let mask = random_pt(&p, &mut r);
    let w: Vec<i64> = (0..n).map(|_| r.gen_range(-2048..2048)).collect();
    let bytes =
        serialize::ciphertext_to_bytes(&sk.encrypt(&x, &mut r).unwrap(), Form::Seeded).unwrap();
    assert!(bytes.len() < 3 * n * 60 / 8 + 100);
    // server
    let mut ct = serialize::ciphertext_from_bytes(&p, &bytes).unwrap();
    ev.add_plain_assign(&mut ct, &y).unwrap();
    let wn = PlaintextNtt::from_signed(&p, &w, ct.num_moduli()).unwrap();
    ev.mul_plain_assign(&mut ct, &wn).unwrap();
    ev.sub_plain_assign(&mut ct, &mask).unwrap();
    let keep: Vec<usize> = (0..n).step_by(3).collect();
    let noise_bits = noise::ct_pt(&p, noise::fresh_sk(&p), 2048.0 / 3f64.sqrt()).log2();
    let cfg = FloodingConfig {
        stat_sec_bits: 40,
        noise_bits,
        revealed_coeffs: keep.len(),
    };
    let b = ev.flood(&mut ct, &pk, &cfg, &mut r).unwrap();
    assert!(b < 100);
    let q_prime = 1u64 << 52;
    let small = ev.switch_to_small_modulus(&ct, q_prime, &keep).unwrap();
    let resp = small.to_bytes();
    assert_eq!(resp.len(), 24 + (keep.len() * 52).div_ceil(8) + n * 52 / 8);
    // client
    let got = SmallModCiphertext::from_bytes(&p, &resp, q_prime, &keep)
        .unwrap()
        .decrypt(&sk)
        .unwrap();
    let tm = Modulus::new(t).unwrap();
    let xy: Vec<u64> = (0..n)
        .map(|i| tm.add(x.coeffs()[i], y.coeffs()[i]))
        .collect();
    let wpt = Plaintext::from_signed(&p, &w).unwrap();
    let prod = negacyclic(&p, &xy, wpt.coeffs());
    let want: Vec<u64> = keep
        .iter()
        .map(|&i| tm.sub(prod[i], mask.coeffs()[i]))
        .collect();
    assert_eq!(got, want);
    // validation
    assert!(SmallModCiphertext::from_bytes(&p, &resp, q_prime >> 1, &keep).is_err());
    assert!(SmallModCiphertext::from_bytes(&p, &resp[..resp.len() - 1], q_prime, &keep).is_err());
    assert!(SmallModCiphertext::from_bytes(&p, &resp, q_prime, &keep[1..]).is_err());
    // too small a modulus loses the message
    let tiny = ev.switch_to_small_modulus(&ct, t << 2, &keep).unwrap();
    assert_ne!(tiny.decrypt(&sk).unwrap(), want);
}

#[test]
fn insecure_parameters_refused() {
    let lit = ParamsLiteral::from_bit_sizes(13, &[60, 60, 60, 40], &[], 65537).unwrap();
    match Params::new(lit) {
        Err(e @ RlweError::InsecureParameters { .. }) => assert!(e.to_string().contains("218")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn mismatched_objects_are_errors() {
    let mut r = rng(11);
    let p1 = params(6, 257);
    let p2 = params(6, 65537);
    let sk1 = SecretKey::generate(&p1, &mut r);
    let sk2 = SecretKey::generate(&p2, &mut r);
    let ev = Evaluator::new(&p1);
    let mut c1 = sk1.encrypt(&random_pt(&p1, &mut r), &mut r).unwrap();
    let c2 = sk2.encrypt(&random_pt(&p2, &mut r), &mut r).unwrap();
    assert_eq!(ev.add_assign(&mut c1, &c2), Err(RlweError::ParamsMismatch));
    assert!(sk1.decrypt(&c2).is_err());
    let mut low = c1.clone();
    ev.mod_switch_to_next(&mut low).unwrap();
    assert!(matches!(
        ev.add_assign(&mut c1, &low),
        Err(RlweError::LevelMismatch { .. })
    ));
}
