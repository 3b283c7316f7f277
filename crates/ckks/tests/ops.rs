//! Precision of every operation against plaintext complex arithmetic at an INSECURE test preset.

use ckks::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

struct Ctx {
    params: Params,
    sk: SecretKey,
    enc: Encryptor,
    eval: Evaluator,
    rng: ChaCha20Rng,
}

fn setup(lit: ParamsLiteral, rots: &[isize]) -> Ctx {
    let params = Params::new(lit).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(42);
    let sk = SecretKey::generate(&params, &mut rng);
    let kg = KeyGenerator::new(&params, &sk).unwrap();
    let mut els: Vec<usize> = rots.iter().map(|&k| params.galois_element(k)).collect();
    els.push(params.conjugation_element());
    let keys = kg.evaluation_keys(&els, &mut rng).unwrap();
    let pk = kg.public_key(&mut rng);
    let enc = Encryptor::with_public_key(&params, &pk).unwrap();
    let eval = Evaluator::new(&params, keys).unwrap();
    Ctx {
        params,
        sk,
        enc,
        eval,
        rng,
    }
}

fn rand_vec(rng: &mut impl Rng, n: usize) -> Vec<Complex> {
    (0..n)
        .map(|_| Complex::new(rng.gen_range(-1.0..1.0), rng.gen_range(-1.0..1.0)))
        .collect()
}

/// -log2 of the maximum absolute error.
fn precision(got: &[Complex], want: &[Complex]) -> f64 {
    let e = got
        .iter()
        .zip(want)
        .map(|(a, b)| (*a - *b).abs())
        .fold(0.0, f64::max);
    -e.log2()
}

fn check(c: &Ctx, ct: &Ciphertext, want: &[Complex], min_bits: f64, what: &str) {
    let dec = Decryptor::new(&c.params, &c.sk).unwrap();
    let got = dec.decrypt(ct).unwrap();
    let p = precision(&got, want);
    assert!(p >= min_bits, "{what}: {p:.1} bits < {min_bits}");
}

#[test]
fn encrypt_add_mul_rescale() {
    let mut c = setup(presets::insecure_test_n11(), &[]);
    let slots = c.params.max_slots();
    let x = rand_vec(&mut c.rng, slots);
    let y = rand_vec(&mut c.rng, slots);
    let cx = c.enc.encrypt_values(&x, slots, &mut c.rng).unwrap();
    let cy = c.enc.encrypt_values(&y, slots, &mut c.rng).unwrap();
    check(&c, &cx, &x, 24.0, "fresh");
    let ev = &c.eval;
    let s: Vec<Complex> = x.iter().zip(&y).map(|(a, b)| *a + *b).collect();
    check(&c, &ev.add(&cx, &cy).unwrap(), &s, 22.0, "add");
    let d: Vec<Complex> = x.iter().zip(&y).map(|(a, b)| *a - *b).collect();
    check(&c, &ev.sub(&cx, &cy).unwrap(), &d, 22.0, "sub");
    let p: Vec<Complex> = x.iter().zip(&y).map(|(a, b)| *a * *b).collect();
    let m = ev.mul_relin_rescale(&cx, &cy).unwrap();
    assert_eq!(m.level(), c.params.max_level() - 1);
    check(&c, &m, &p, 20.0, "mul+relin+rescale");
    // ct × pt
    let pt = c
        .params
        .encode(
            &y,
            slots,
            c.params.max_level(),
            c.params.q()[c.params.max_level()] as f64,
        )
        .unwrap();
    let mp = ev.rescale(&ev.mul_plain(&cx, &pt).unwrap()).unwrap();
    assert!(scale_eq(mp.scale(), cx.scale()));
    check(&c, &mp, &p, 20.0, "ct*pt");
    // Σ ct ⊙ pt in one accumulation: the same ring elements as the products added, and the
    // decrypted dot product; an empty sum and a level mismatch are refused.
    let pt2 = c
        .params
        .encode(
            &x,
            slots,
            c.params.max_level(),
            c.params.q()[c.params.max_level()] as f64,
        )
        .unwrap();
    let dot = ev.dot_plain(&[(&cx, &pt), (&cy, &pt2)]).unwrap();
    let sum = ev
        .add(
            &ev.mul_plain(&cx, &pt).unwrap(),
            &ev.mul_plain(&cy, &pt2).unwrap(),
        )
        .unwrap();
    let bytes = |ct: &Ciphertext| ckks::serialize::ciphertext_to_bytes(&c.params, ct);
    assert_eq!(bytes(&dot), bytes(&sum));
    let want: Vec<Complex> = x.iter().zip(&y).map(|(a, b)| *a * *b + *b * *a).collect();
    check(&c, &ev.rescale(&dot).unwrap(), &want, 19.0, "dot_plain");
    assert!(ev.dot_plain(&[]).is_err());
    assert!(ev.dot_plain(&[(&cx, &pt), (&m, &pt2)]).is_err());
    // ct × const (complex), ct + const
    let k = Complex::new(0.75, -1.25);
    let mk = ev
        .mul_const_to(&cx, k, c.params.max_level() - 1, c.params.default_scale())
        .unwrap();
    let want: Vec<Complex> = x.iter().map(|a| *a * k).collect();
    check(&c, &mk, &want, 20.0, "ct*const");
    let ak = ev.add_const(&cx, k).unwrap();
    let want: Vec<Complex> = x.iter().map(|a| *a + k).collect();
    check(&c, &ak, &want, 22.0, "ct+const");
    // depth: x^8 by repeated squaring, down to level max-3
    let mut t = cx.clone();
    let mut want = x.clone();
    for _ in 0..3 {
        t = ev.mul_relin_rescale(&t, &t).unwrap();
        want = want.iter().map(|a| *a * *a).collect();
    }
    assert_eq!(t.level(), c.params.max_level() - 3);
    check(&c, &t, &want, 16.0, "x^8");
}

#[test]
fn mismatches_are_errors() {
    let mut c = setup(presets::insecure_test_n11(), &[]);
    let slots = 8;
    let x = rand_vec(&mut c.rng, slots);
    let cx = c.enc.encrypt_values(&x, slots, &mut c.rng).unwrap();
    let low = c.eval.drop_to_level(&cx, 3).unwrap();
    assert!(matches!(
        c.eval.add(&cx, &low),
        Err(CkksError::LevelMismatch { .. })
    ));
    let sq = c.eval.mul_relin_rescale(&cx, &cx).unwrap();
    let cx2 = c.eval.drop_to_level(&cx, sq.level()).unwrap();
    assert!(matches!(
        c.eval.add(&sq, &cx2),
        Err(CkksError::ScaleMismatch { .. })
    ));
    let other = c.enc.encrypt_values(&x, 16, &mut c.rng).unwrap();
    assert!(matches!(
        c.eval.add(&cx, &other),
        Err(CkksError::SlotsMismatch { .. })
    ));
    assert!(matches!(
        c.eval.rotate(&cx, 3),
        Err(CkksError::MissingGaloisKey { .. })
    ));
    let mut z = c.eval.drop_to_level(&cx, 0).unwrap();
    assert!(matches!(
        c.eval.rescale_assign(&mut z),
        Err(CkksError::NoLevelLeft)
    ));
}

#[test]
fn rotations_conjugation_hoisting() {
    let mut bad = presets::insecure_test_n11();
    bad.digits = Some(1);
    assert!(matches!(
        Params::new(bad),
        Err(CkksError::InvalidModuli { .. })
    ));
    for digits in [4usize, 8] {
        let mut lit = presets::insecure_test_n11();
        lit.digits = Some(digits);
        let rots = [1isize, 2, 5, -1, 100];
        let mut c = setup(lit, &rots);
        let slots = c.params.max_slots();
        let x = rand_vec(&mut c.rng, slots);
        let cx = c.enc.encrypt_values(&x, slots, &mut c.rng).unwrap();
        for &k in &rots {
            let r = c.eval.rotate(&cx, k).unwrap();
            let want: Vec<Complex> = (0..slots)
                .map(|i| x[(i as isize + k).rem_euclid(slots as isize) as usize])
                .collect();
            check(&c, &r, &want, 20.0, &format!("rotate {k} (dnum {digits})"));
        }
        let hs = c.eval.rotate_hoisted(&cx, &rots).unwrap();
        for (&k, r) in rots.iter().zip(&hs) {
            let want: Vec<Complex> = (0..slots)
                .map(|i| x[(i as isize + k).rem_euclid(slots as isize) as usize])
                .collect();
            check(&c, r, &want, 20.0, &format!("hoisted rotate {k}"));
        }
        // Σ rot_k(a) with one ModDown: two ciphertexts, two rotations of one, the identity.
        let y = rand_vec(&mut c.rng, slots);
        let cy = c.enc.encrypt_values(&y, slots, &mut c.rng).unwrap();
        let terms = [(&cx, 1isize), (&cx, 2), (&cy, 5), (&cx, -1), (&cy, 0)];
        let got = c.eval.rotate_sum(&terms).unwrap();
        let at = |v: &[Complex], i: usize, k: isize| {
            v[(i as isize + k).rem_euclid(slots as isize) as usize]
        };
        let want: Vec<Complex> = (0..slots)
            .map(|i| at(&x, i, 1) + at(&x, i, 2) + at(&y, i, 5) + at(&x, i, -1) + y[i])
            .collect();
        check(
            &c,
            &got,
            &want,
            19.0,
            &format!("rotate_sum (dnum {digits})"),
        );
        assert!(c.eval.rotate_sum(&[]).is_err());
        let low = c
            .eval
            .rescale(&c.eval.mul_relin_rescale(&cx, &cy).unwrap())
            .ok();
        if let Some(low) = low {
            assert!(c.eval.rotate_sum(&[(&cx, 1), (&low, 2)]).is_err());
        }
        let cj = c.eval.conjugate(&cx).unwrap();
        let want: Vec<Complex> = x.iter().map(|a| a.conj()).collect();
        check(&c, &cj, &want, 20.0, "conjugate");
        // sparse slots: rotation within 16 slots
        let y = rand_vec(&mut c.rng, 16);
        let cy = c.enc.encrypt_values(&y, 16, &mut c.rng).unwrap();
        let r = c.eval.rotate(&cy, 5).unwrap();
        let want: Vec<Complex> = (0..16).map(|i| y[(i + 5) % 16]).collect();
        check(&c, &r, &want, 20.0, "sparse rotate");
    }
}

#[test]
fn linear_transform_matches_dense_product() {
    let params = Params::new(presets::insecure_test_n11()).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    for slots in [1024usize, 64] {
        // A dense random matrix, and a sparse one with a few diagonals.
        let dense: Vec<Vec<Complex>> = (0..slots).map(|_| rand_vec(&mut rng, slots)).collect();
        let mut banded = vec![vec![Complex::ZERO; slots]; slots];
        for p in 0..slots {
            for k in [0usize, 1, 7, slots - 3] {
                banded[p][(p + k) % slots] =
                    Complex::new(rng.gen_range(-1.0..1.0), rng.gen_range(-1.0..1.0));
            }
        }
        // Diagonals with period 8 in the slots (stored compactly: 16 NTT values per prime).
        let mut periodic = vec![vec![Complex::ZERO; slots]; slots];
        for k in [0usize, 2, 5, slots - 1] {
            let v = rand_vec(&mut rng, 8);
            for p in 0..slots {
                periodic[p][(p + k) % slots] = v[p % 8];
            }
        }
        for (m, horner) in [
            (dense.clone(), false),
            (banded.clone(), false),
            (dense, true),
            (banded, true),
            (periodic.clone(), false),
            (periodic, true),
        ] {
            let dm = DiagMatrix::from_dense(&m).unwrap();
            let level = params.max_level();
            let q = params.q()[level] as f64;
            let lt = if horner {
                LinearTransform::new_horner(&params, &dm, level, q, None).unwrap()
            } else {
                LinearTransform::new(&params, &dm, level, q, None).unwrap()
            };
            // Slot counts below N/2 make every diagonal periodic in the full ring.
            if slots < params.max_slots() || dm.diags.len() == 4 && m[0][0] == m[8][8] {
                assert_eq!(lt.compact_diagonals(), lt.diagonals());
            }
            let mut c = setup(presets::insecure_test_n11(), &lt.rotations());
            let x = rand_vec(&mut rng, slots);
            let cx = c.enc.encrypt_values(&x, slots, &mut c.rng).unwrap();
            let y = c
                .eval
                .rescale(&c.eval.linear_transform(&cx, &lt).unwrap())
                .unwrap();
            let want: Vec<Complex> = (0..slots)
                .map(|p| (0..slots).fold(Complex::ZERO, |acc, j| acc + m[p][j] * x[j]))
                .collect();
            // Entries of M·x have magnitude up to ~√slots; compare relative to that.
            let dec = Decryptor::new(&c.params, &c.sk).unwrap();
            let got = dec.decrypt(&y).unwrap();
            let p = precision(&got, &want);
            assert!(p >= 15.0, "slots {slots}: {p:.1} bits");
            assert!(scale_eq(y.scale(), cx.scale()));
        }
    }
}

#[test]
fn diag_matrix_product_matches_dense() {
    let mut rng = ChaCha20Rng::seed_from_u64(6);
    let n = 16;
    let a: Vec<Vec<Complex>> = (0..n).map(|_| rand_vec(&mut rng, n)).collect();
    let b: Vec<Vec<Complex>> = (0..n).map(|_| rand_vec(&mut rng, n)).collect();
    let ab = DiagMatrix::from_dense(&a)
        .unwrap()
        .mul(&DiagMatrix::from_dense(&b).unwrap());
    let x = rand_vec(&mut rng, n);
    let bx: Vec<Complex> = (0..n)
        .map(|p| (0..n).fold(Complex::ZERO, |acc, j| acc + b[p][j] * x[j]))
        .collect();
    let abx: Vec<Complex> = (0..n)
        .map(|p| (0..n).fold(Complex::ZERO, |acc, j| acc + a[p][j] * bx[j]))
        .collect();
    assert!(precision(&ab.apply(&x), &abx) > 40.0);
}

#[test]
fn polynomial_evaluation_on_ciphertexts() {
    let mut c = setup(presets::insecure_test_n11(), &[]);
    let slots = 256;
    let xs: Vec<Complex> = (0..slots)
        .map(|_| Complex::from(c.rng.gen_range(-1.0..1.0)))
        .collect();
    let cx = c.enc.encrypt_values(&xs, slots, &mut c.rng).unwrap();
    // Degree 7 sigmoid-like interpolant: depth 3 + 1 = 4 levels.
    let s = ChebyshevSeries::interpolate(|x| 1.0 / (1.0 + (-4.0 * x).exp()), -1.0, 1.0, 7).unwrap();
    let y = polyeval::evaluate(&c.eval, &cx, &s).unwrap();
    assert_eq!(y.level(), c.params.max_level() - polyeval::depth(7));
    let want: Vec<Complex> = xs.iter().map(|x| s.eval(x.re)).collect();
    check(&c, &y, &want, 18.0, "chebyshev degree 7");
    // Composite sign: degrees 3 ∘ 3 (fits in 7 levels).
    let comp = Composite::sign_minimax(&[3, 3], 0.25).unwrap();
    let y = polyeval::evaluate_composite(&c.eval, &cx, &comp).unwrap();
    let want: Vec<Complex> = xs.iter().map(|x| Complex::from(comp.eval(x.re))).collect();
    check(&c, &y, &want, 16.0, "composite");
}

#[test]
fn keys_below_the_ciphertext_level_are_refused() {
    let params = Params::new(presets::insecure_test_n11()).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(9);
    let sk = SecretKey::generate(&params, &mut rng);
    let kg = KeyGenerator::new(&params, &sk).unwrap();
    let mut keys = kg.evaluation_keys(&[], &mut rng).unwrap();
    let g = params.galois_element(3);
    kg.extend_at(&mut keys, &[(g, 2)], &mut rng).unwrap();
    let eval = Evaluator::new(&params, keys).unwrap();
    let enc = Encryptor::with_secret_key(&params, &sk).unwrap();
    let x = rand_vec(&mut rng, 8);
    let ct = enc.encrypt_values(&x, 8, &mut rng).unwrap();
    assert!(matches!(
        eval.rotate(&ct, 3),
        Err(CkksError::InvalidLevel { .. })
    ));
    let low = eval.drop_to_level(&ct, 2).unwrap();
    let r = eval.rotate(&low, 3).unwrap();
    let dec = Decryptor::new(&params, &sk).unwrap();
    let want: Vec<Complex> = (0..8).map(|i| x[(i + 3) % 8]).collect();
    assert!(precision(&dec.decrypt(&r).unwrap(), &want) > 20.0);
}

#[test]
fn serialization_round_trips_and_rejects_bad_bytes() {
    let mut c = setup(presets::insecure_test_n11(), &[1]);
    let x = rand_vec(&mut c.rng, 64);
    let ct = c.enc.encrypt_values(&x, 64, &mut c.rng).unwrap();
    let ct = c.eval.drop_to_level(&ct, 3).unwrap();
    let bytes = serialize::ciphertext_to_bytes(&c.params, &ct);
    assert!(bytes.len() < ct.memory_bytes()); // bit-packed below 64 bits per residue
    let back = serialize::ciphertext_from_bytes(&c.params, &bytes).unwrap();
    check(&c, &back, &x, 22.0, "deserialized");
    // Truncation, trailing bytes, wrong version, wrong params, out-of-range residue: errors.
    for cut in [0, 1, 10, bytes.len() / 2, bytes.len() - 1] {
        assert!(serialize::ciphertext_from_bytes(&c.params, &bytes[..cut]).is_err());
    }
    let mut long = bytes.clone();
    long.push(0);
    assert!(matches!(
        serialize::ciphertext_from_bytes(&c.params, &long),
        Err(CkksError::Decode(_))
    ));
    let mut v = bytes.clone();
    v[0] = 9;
    assert!(serialize::ciphertext_from_bytes(&c.params, &v).is_err());
    let other = Params::new(presets::insecure_boot_n12()).unwrap();
    assert!(serialize::ciphertext_from_bytes(&other, &bytes).is_err());
    let mut big = bytes.clone();
    let first_residue = 2 + 8 + 2 + 1 + 4 + 8;
    for b in &mut big[first_residue..first_residue + 8] {
        *b = 0xff; // first residue = 2^50 − 1 ≥ q_0
    }
    assert!(serialize::ciphertext_from_bytes(&c.params, &big).is_err());
    // Random garbage never panics.
    let mut rng = ChaCha20Rng::seed_from_u64(99);
    for _ in 0..200 {
        let len = rng.gen_range(0..64);
        let junk: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
        let _ = serialize::ciphertext_from_bytes(&c.params, &junk);
        let _ = serialize::evaluation_keys_from_bytes(&c.params, &junk);
    }
    // Evaluation keys round trip and still rotate.
    let kb = serialize::evaluation_keys_to_bytes(&c.params, c.eval.keys());
    assert_eq!(
        kb.len(),
        serialize::evaluation_keys_len(&c.params, c.eval.keys())
    );
    let keys = serialize::evaluation_keys_from_bytes(&c.params, &kb).unwrap();
    assert_eq!(keys.memory_bytes(), c.eval.keys().memory_bytes());
    let ev2 = Evaluator::new(&c.params, keys).unwrap();
    let r = ev2.rotate(&ct, 1).unwrap();
    let want: Vec<Complex> = (0..64).map(|i| x[(i + 1) % 64]).collect();
    check(&c, &r, &want, 20.0, "rotation with deserialized keys");
    assert!(serialize::evaluation_keys_from_bytes(&c.params, &kb[..kb.len() - 3]).is_err());
}

/// The deserializers of the fuzz target (`fuzz/fuzz_targets/ckks.rs`) on truncations, bit flips,
/// byte overwrites and random bytes of valid objects of every kind: `Ok` or a typed error, never
/// a panic (the stable counterpart of `cargo +nightly fuzz run ckks`).
#[test]
fn deserializers_survive_mutated_bytes() {
    let params = Params::new(presets::insecure_fuzz_n6()).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(77);
    let sk = SecretKey::generate(&params, &mut rng);
    let kg = KeyGenerator::new(&params, &sk).unwrap();
    let keys = kg
        .evaluation_keys(&[params.galois_element(1)], &mut rng)
        .unwrap();
    let enc = Encryptor::with_secret_key(&params, &sk).unwrap();
    let x = rand_vec(&mut rng, params.max_slots());
    let ct = enc
        .encrypt_values(&x, params.max_slots(), &mut rng)
        .unwrap();
    let encaps = EncapsulationKeys::generate(&params, &sk, 8, &mut rng).unwrap();
    let relin = kg.relin_key(&mut rng);
    let pt = params
        .encode(
            &x,
            params.max_slots(),
            params.max_level(),
            params.default_scale(),
        )
        .unwrap();
    let seeded = enc.encrypt_seeded(&pt, &mut rng).unwrap();
    let valid = [
        serialize::ciphertext_to_bytes(&params, &ct),
        serialize::seeded_ciphertext_to_bytes(&params, &seeded),
        serialize::evaluation_keys_to_bytes(&params, &keys),
        serialize::switching_key_to_bytes(&params, &relin),
        serialize::encapsulation_keys_to_bytes(&params, &encaps),
    ];
    let parse_all = |b: &[u8]| -> usize {
        [
            serialize::ciphertext_from_bytes(&params, b).is_ok(),
            serialize::ciphertext_from_seeded_bytes(&params, b).is_ok(),
            serialize::evaluation_keys_from_bytes(&params, b).is_ok(),
            serialize::switching_key_from_bytes(&params, b).is_ok(),
            serialize::encapsulation_keys_from_bytes(&params, b).is_ok(),
        ]
        .iter()
        .filter(|&&ok| ok)
        .count()
    };
    for v in &valid {
        assert_eq!(
            parse_all(v),
            1,
            "each valid object parses as exactly one kind"
        );
        for cut in 0..v.len().min(64) {
            assert_eq!(parse_all(&v[..cut]), 0);
        }
        assert_eq!(parse_all(&v[..v.len() - 1]), 0);
        for _ in 0..300 {
            let mut m = v.clone();
            for _ in 0..rng.gen_range(1..4) {
                let i = rng.gen_range(0..m.len());
                if rng.gen_bool(0.5) {
                    m[i] ^= 1 << rng.gen_range(0..8);
                } else {
                    m[i] = rng.gen();
                }
            }
            parse_all(&m);
        }
    }
    for _ in 0..500 {
        let len = rng.gen_range(0..200);
        let junk: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
        assert_eq!(parse_all(&junk), 0);
    }
}

/// Output sanitization: the re-randomized ciphertext decrypts to the same values plus the
/// flooding (per-slot error ≈ σ_f·√N / Δ), its `c1` differs from the input's in every
/// coefficient range, and bad operands are refused.
#[test]
fn rerandomize_with_flooding() {
    let mut c = setup(presets::insecure_test_n11(), &[]);
    let slots = c.params.max_slots();
    let x = rand_vec(&mut c.rng, slots);
    let cx = c.enc.encrypt_values(&x, slots, &mut c.rng).unwrap();
    let cx = c.eval.drop_to_level(&cx, 1).unwrap();
    let zero = c
        .enc
        .encrypt_values(&vec![Complex::new(0.0, 0.0); slots], slots, &mut c.rng)
        .unwrap();
    let dec = Decryptor::new(&c.params, &c.sk).unwrap();
    // No flooding: the same precision as a fresh ciphertext.
    let r0 = c.eval.rerandomize(&cx, &zero, 0.0, &mut c.rng).unwrap();
    check(&c, &r0, &x, 18.0, "re-randomized");
    assert_ne!(
        ckks::serialize::ciphertext_to_bytes(&c.params, &r0),
        ckks::serialize::ciphertext_to_bytes(&c.params, &cx)
    );
    // Flooding of 2^-12 per slot: σ_f = 2^-12·Δ/√N.
    let n = c.params.n() as f64;
    let sigma = 2f64.powi(-12) * cx.scale() / n.sqrt();
    let r = c.eval.rerandomize(&cx, &zero, sigma, &mut c.rng).unwrap();
    let got = dec.decrypt(&r).unwrap();
    let rms = (got
        .iter()
        .zip(&x)
        .map(|(a, b)| (*a - *b).abs().powi(2))
        .sum::<f64>()
        / slots as f64)
        .sqrt();
    let want = 2f64.powi(-12);
    assert!(
        rms > 0.8 * want && rms < 1.25 * want,
        "slot error rms {rms:e}, flooding predicts {want:e}"
    );
    // Refused: a zero below the ciphertext's level, a degree-2 operand, a bad deviation.
    let low = c.eval.drop_to_level(&zero, 0).unwrap();
    assert!(c.eval.rerandomize(&cx, &low, 0.0, &mut c.rng).is_err());
    assert!(c
        .eval
        .rerandomize(&cx, &zero, f64::NAN, &mut c.rng)
        .is_err());
    assert!(c.eval.rerandomize(&cx, &zero, -1.0, &mut c.rng).is_err());
    let sq = c.eval.mul(&cx, &cx).unwrap();
    assert!(c.eval.rerandomize(&sq, &zero, 0.0, &mut c.rng).is_err());
}
