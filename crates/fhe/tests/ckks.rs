//! FHE mode on real ciphertexts (INSECURE small test parameters with bootstrapping): the tiny
//! AESPA-style ResNet's logits match the float executor (onnxruntime's outputs) within the
//! stated precision, with the planned bootstraps.

mod common;

use fhe::Deployment;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

/// The model at the INSECURE N = 2^12 bootstrapping preset, output re-randomized but not
/// flooded: the tests of the evaluation's own precision.
fn unflooded_n12(m: &nn::Model, range: f64) -> Deployment {
    Deployment::new(
        m,
        ckks::presets::insecure_boot_n12_deep(),
        Some(ckks::presets::insecure_boot_n12_config()),
        range,
    )
    .unwrap()
    .with_flooding(None)
    .unwrap()
}

/// An INSECURE chain at `N = 2^log_n` with `levels` 40-bit primes and no bootstrapping: the
/// tests of whole networks without it.
fn deep_chain(log_n: u32, levels: usize) -> ckks::ParamsLiteral {
    let mut log_q = vec![50];
    log_q.extend(vec![40; levels]);
    ckks::ParamsLiteral {
        log_n,
        log_q,
        log_p: vec![50, 50],
        log_scale: 40,
        secret: ckks::SecretDist::Ternary,
        digits: None,
        security: ckks::Security::InsecureForTests,
    }
}

#[test]
fn tiny_fhe_network_on_ciphertexts_matches_float() {
    let (m, cases) = common::tiny("tiny_fhe");
    let (x, want) = cases[0].clone();
    let range = 2.0 * common::max_abs_trace(&m, &x);
    let dep = unflooded_n12(&m, range);
    assert!(dep.prog.bootstraps() >= 1, "the plan bootstraps");
    let squares = dep
        .prog
        .steps
        .iter()
        .filter(|s| matches!(s.kind, fhe::lower::Kind::Square(_)))
        .count();
    assert!(
        squares >= 1,
        "the AESPA activations take the 1-level square form"
    );
    // Its bootstraps act on copy-major P values, through sparse circuits (one EvalMod).
    let full = dep.params.max_slots();
    assert!(!dep.boot.is_empty());
    assert!(
        dep.boot.iter().all(|b| b.config().slots < full),
        "sparse: {:?}",
        dep.boot
            .iter()
            .map(|b| b.config().slots)
            .collect::<Vec<_>>()
    );
    let (y, _) = common::run_encrypted(&dep, &x, 5);
    let err = common::max_err(&y, &want);
    let scale = want.iter().fold(0f64, |a, v| a.max(v.abs()));
    eprintln!("logits {y:?}\nfloat  {want:?}\nmax error {err:.2e} (max |logit| {scale:.2})");
    // Measured: 3.6e-8 (2^-23 of the logits), square-form activations, sparse bootstraps.
    assert!(err < 1e-4 * scale.max(1.0), "max error {err}");
    assert_eq!(
        nn::argmax(&y.iter().map(|&v| v as f32).collect::<Vec<_>>()),
        nn::argmax(&want.iter().map(|&v| v as f32).collect::<Vec<_>>())
    );
    // Bad input is refused.
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let keys = dep.keygen(&mut rng).unwrap();
    assert!(dep.encrypt(&keys.sk, &x[1..], &mut rng).is_err());
    assert!(dep.decrypt(&keys.sk, &[]).is_err());
}

/// PRCR on ciphertexts: the ResNet-18-shaped tiny net at 2^11 slots, where its 16×16 maps split
/// over two ciphertexts, its projection shortcut returns to P by an
/// identity ConvB and its 12 logits sit two blocks apart (more than the blocks).
#[test]
fn split_maps_and_projection_shortcut_on_ciphertexts() {
    let (m, cases) = common::tiny("tiny_fhe_proj");
    let (x, want) = cases[1].clone();
    let range = 2.0 * common::max_abs_trace(&m, &x);
    let dep = unflooded_n12(&m, range);
    assert_eq!(dep.prog.layouts[dep.prog.output].cts(), 1);
    assert!(
        dep.prog
            .layouts
            .iter()
            .any(|l| matches!(l, fhe::Layout::P { parts: 2, .. })),
        "a split map"
    );
    let (y, run) = common::run_encrypted(&dep, &x, 7);
    let err = common::max_err(&y, &want);
    let scale = want.iter().fold(0f64, |a, v| a.max(v.abs()));
    let boots: usize = run.steps.iter().map(|s| s.counts.bootstraps).sum();
    eprintln!("max error {err:.2e} (max |logit| {scale:.2}), {boots} bootstraps");
    // Ciphertexts are bootstrapped two per circuit (`Backend::pack_pair`; here each bootstrap
    // point refreshes one: `paired_bootstrap_on_ciphertexts` tests the pairs).
    let refreshed: Vec<usize> = dep
        .prog
        .steps
        .iter()
        .filter(|s| matches!(s.kind, fhe::lower::Kind::Bootstrap))
        .map(|s| dep.prog.layouts[s.inputs[0]].cts())
        .collect();
    assert_eq!(
        boots,
        refreshed.iter().map(|c| c.div_ceil(2)).sum::<usize>()
    );
    assert!(
        err < 1e-3 * scale.max(1.0),
        "max error {err}: {y:?} vs {want:?}"
    );
    assert_eq!(
        nn::argmax(&y.iter().map(|&v| v as f32).collect::<Vec<_>>()),
        nn::argmax(&want.iter().map(|&v| v as f32).collect::<Vec<_>>())
    );
}

/// Without bootstrapping, on a deep INSECURE chain at 2^10 slots: the stride-2 ConvA there has
/// two output ciphertexts, computed as one complex pass and split by a conjugation; and the
/// same network with MPCNN's convolution, with ConvD and with ConvS.
#[test]
fn tiny_fhe_network_without_bootstrapping_with_complex_passes() {
    let (m, cases) = common::tiny("tiny_fhe");
    let (x, want) = cases[1].clone();
    let lit = deep_chain(11, 26);
    let dep = Deployment::new(&m, lit.clone(), None, 16.0)
        .unwrap()
        .with_flooding(None)
        .unwrap();
    assert_eq!(dep.prog.bootstraps(), 0);
    assert!(
        dep.offer
            .galois
            .iter()
            .any(|&(g, _)| g == dep.params.conjugation_element()),
        "a complex pass"
    );
    let (y, _) = common::run_encrypted(&dep, &x, 6);
    let err = common::max_err(&y, &want);
    eprintln!("max error {err:.2e}");
    assert!(err < 1e-4, "max error {err}: {y:?} vs {want:?}");
    // MPCNN's convolution (P → P for every layer) on the same parameters.
    let mp = Deployment::with_conv(&m, lit.clone(), None, 16.0, fhe::lower::ConvAlgo::Mpcnn)
        .unwrap()
        .with_flooding(None)
        .unwrap();
    let (y, run) = common::run_encrypted(&mp, &x, 16);
    assert!(run.steps.iter().any(|s| s.op == "conv-mpcnn"));
    let err = common::max_err(&y, &want);
    assert!(err < 1e-4, "MPCNN's convolution: max error {err}");
    // ConvD for every convolution reading P (the strided one too).
    let dg = Deployment::with_conv(&m, lit.clone(), None, 16.0, fhe::lower::ConvAlgo::Diag)
        .unwrap()
        .with_flooding(None)
        .unwrap();
    let (y, run) = common::run_encrypted(&dg, &x, 26);
    assert!(run.steps.iter().any(|s| s.op == "conv-d"));
    assert!(!run.steps.iter().any(|s| s.op == "conv-a"));
    let err = common::max_err(&y, &want);
    assert!(err < 1e-4, "ConvD: max error {err}");
    // ConvS (shifted input copies) for the stride-1 convolutions reading P.
    let sh = Deployment::with_conv(&m, lit.clone(), None, 16.0, fhe::lower::ConvAlgo::Shift)
        .unwrap()
        .with_flooding(None)
        .unwrap();
    let (y, run) = common::run_encrypted(&sh, &x, 27);
    assert!(run.steps.iter().any(|s| s.op == "conv-s"));
    let err = common::max_err(&y, &want);
    assert!(err < 1e-4, "ConvS: max error {err}");
}

/// Row bands on ciphertexts: the 24×24 net (32×32 grid, 1,024-slot blocks) at 2^9 slots,
/// every map in two bands, on a deep INSECURE chain without bootstrapping: the logits match
/// onnxruntime, and the client's hello parser takes the banded input layout and refuses a
/// band count that does not cover the block.
#[test]
fn row_bands_on_ciphertexts() {
    let (m, cases) = common::tiny("tiny_fhe_bands");
    let (x, want) = cases[2].clone();
    let lit = deep_chain(10, 18);
    let range = 2.0 * common::max_abs_trace(&m, &x);
    let dep = Deployment::new(&m, lit, None, range)
        .unwrap()
        .with_flooding(None)
        .unwrap();
    assert_eq!(dep.prog.bootstraps(), 0);
    assert!(matches!(
        dep.offer.input,
        fhe::Layout::P {
            bands: 2,
            parts: 6,
            ..
        }
    ));
    let (y, run) = common::run_encrypted(&dep, &x, 8);
    assert!(run
        .steps
        .iter()
        .all(|s| !s.op.starts_with("conv-") || s.op == "conv-d"));
    let err = common::max_err(&y, &want);
    let scale = want.iter().fold(0f64, |a, v| a.max(v.abs()));
    eprintln!("max error {err:.2e} (max |logit| {scale:.2})");
    assert!(
        err < 1e-4 * scale.max(1.0),
        "max error {err}: {y:?} vs {want:?}"
    );
    let hello = fhe::party::Hello {
        version: fhe::party::VERSION,
        params: "test-n10".into(),
        digest: "d".into(),
        offer: dep.offer.clone(),
    };
    let good = serde_json::to_vec(&hello).unwrap();
    assert!(fhe::party::parse_hello(&good).is_ok());
    let mut v: serde_json::Value = serde_json::from_slice(&good).unwrap();
    for bad in [3, 1, 0] {
        *v.pointer_mut("/offer/input/P/bands").unwrap() = serde_json::json!(bad);
        let e = fhe::party::parse_hello(&serde_json::to_vec(&v).unwrap()).unwrap_err();
        assert!(e.to_string().contains("offer"), "bands {bad}: {e}");
    }
}

/// The two parties over a channel: offer, keys one message each, ciphertexts, logits; a client
/// that sends a garbled key gets the server's one-line reason, and a client expecting another
/// model digest stops before sending anything.
#[test]
fn parties_over_a_channel() {
    use std::time::Duration;
    use transport::MemoryChannel;
    let (m, cases) = common::tiny("tiny_fhe");
    let (x, want) = cases[2].clone();
    let dep = std::sync::Arc::new(
        Deployment::new(
            &m,
            ckks::presets::insecure_boot_n12_deep(),
            Some(ckks::presets::insecure_boot_n12_config()),
            16.0,
        )
        .unwrap(),
    );
    let params_of = |name: &str| -> fhe::Result<ckks::Params> {
        assert_eq!(name, "test-n12");
        Ok(ckks::Params::new(ckks::presets::insecure_boot_n12_deep())?)
    };
    // Honest session.
    let (mut cs, mut ss) =
        MemoryChannel::pair_with(fhe::party::MAX_MESSAGE, Duration::from_secs(120));
    let d2 = dep.clone();
    let server = std::thread::spawn(move || {
        fhe::party::serve(
            &d2,
            "test-n12",
            "abc",
            &mut ss,
            &mut ChaCha20Rng::seed_from_u64(9),
        )
    });
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let rep =
        fhe::party::infer(&mut cs, |_| Ok(x.clone()), params_of, Some("ABC"), &mut rng).unwrap();
    let srep = server.join().unwrap().unwrap();
    let err = rep
        .logits
        .iter()
        .zip(&want)
        .fold(0f64, |a, (p, q)| a.max((p - q).abs()));
    // The default flooding: 2^-12 of the range (16) per slot; measured 4.8e-3 at most.
    let sigma = 16.0 * 2f64.powi(-(fhe::FLOOD_BITS as i32));
    assert!(
        err < 6.0 * sigma && err > sigma / 10.0,
        "max error {err}, flooding σ ≈ {sigma:e}"
    );
    assert_eq!(srep.eval_key_bytes, rep.eval_key_bytes);
    assert_eq!(srep.ciphertext_bytes_c2s, rep.ciphertext_bytes_c2s);
    assert_eq!(srep.ciphertext_bytes_s2c, rep.ciphertext_bytes_s2c);
    assert!(srep.bootstraps >= 1);
    // Wrong digest: the client stops after the hello.
    let (mut cs, mut ss) =
        MemoryChannel::pair_with(fhe::party::MAX_MESSAGE, Duration::from_secs(5));
    let d2 = dep.clone();
    let server = std::thread::spawn(move || {
        fhe::party::serve(
            &d2,
            "test-n12",
            "abc",
            &mut ss,
            &mut ChaCha20Rng::seed_from_u64(9),
        )
    });
    let e = fhe::party::infer(
        &mut cs,
        |_| Ok(x.clone()),
        params_of,
        Some("0123"),
        &mut rng,
    )
    .unwrap_err();
    assert!(e.to_string().contains("digest"), "{e}");
    drop(cs);
    assert!(server.join().unwrap().is_err());
    // Garbled relinearization key: the server refuses with its reason.
    use transport::Channel;
    let (mut cs, mut ss) =
        MemoryChannel::pair_with(fhe::party::MAX_MESSAGE, Duration::from_secs(20));
    let d2 = dep.clone();
    let server = std::thread::spawn(move || {
        fhe::party::serve(
            &d2,
            "test-n12",
            "abc",
            &mut ss,
            &mut ChaCha20Rng::seed_from_u64(9),
        )
    });
    let _hello = cs.recv().unwrap();
    cs.send(br#"{"galois": 1, "encaps": false}"#).unwrap();
    cs.send(&[1, 2, 3]).unwrap();
    cs.flush().unwrap();
    let reply = cs.recv().unwrap();
    assert_eq!(reply[0], 1, "an error message");
    assert!(!String::from_utf8_lossy(&reply[1..]).contains('\n'));
    assert!(server.join().unwrap().is_err());
}

/// The client's parser of the server hello refuses malformed and inconsistent offers.
#[test]
fn hello_parser_refuses_bad_offers() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../models/tiny/");
    let m = nn::load(format!("{dir}tiny_fhe.onnx")).unwrap();
    let dep = Deployment::new(
        &m,
        ckks::presets::insecure_boot_n12_deep(),
        Some(ckks::presets::insecure_boot_n12_config()),
        16.0,
    )
    .unwrap();
    let hello = fhe::party::Hello {
        version: 1,
        params: "test-n12".into(),
        digest: "d".into(),
        offer: dep.offer.clone(),
    };
    let good = serde_json::to_vec(&hello).unwrap();
    assert!(fhe::party::parse_hello(&good).is_ok());
    assert!(fhe::party::parse_hello(&good[..good.len() - 1]).is_err());
    let mut v: serde_json::Value = serde_json::from_slice(&good).unwrap();
    for (path, bad) in [
        ("/offer/slots", serde_json::json!(1000)),
        ("/offer/range", serde_json::json!(-1.0)),
        ("/offer/input_shape", serde_json::json!([3, 16, 16])),
        ("/offer/flood_bits", serde_json::json!(0)),
        ("/offer/flood_bits", serde_json::json!(64)),
        ("/offer/output_level", serde_json::json!(1000)),
    ] {
        let old = v.pointer(path).unwrap().clone();
        *v.pointer_mut(path).unwrap() = bad;
        let e = fhe::party::parse_hello(&serde_json::to_vec(&v).unwrap()).unwrap_err();
        assert!(e.to_string().contains("offer"), "{path}: {e}");
        *v.pointer_mut(path).unwrap() = old;
    }
}

/// ReLU through the composite sign on ciphertexts (bootstraps inside the activations): the
/// logits agree with onnxruntime up to the approximation's error, as on clear slots.
#[test]
fn tiny_relu_network_on_ciphertexts() {
    let (m, cases) = common::tiny("tiny_fhe_relu");
    let (x, want) = cases[0].clone();
    let range = 1.25 * common::max_abs_trace(&m, &x);
    let dep = Deployment::new(
        &m,
        ckks::presets::insecure_boot_n12_deep(),
        Some(ckks::presets::insecure_boot_n12_config()),
        range,
    )
    .unwrap();
    let (y, _) = common::run_encrypted(&dep, &x, 8);
    let err = common::max_err(&y, &want);
    eprintln!(
        "composite ReLU on ciphertexts: max error {err:.2e}, {} bootstraps",
        dep.prog.bootstraps()
    );
    assert!(
        err < 2e-3 * want.iter().fold(1f64, |a, v| a.max(v.abs())),
        "max error {err}: {y:?} vs {want:?}"
    );
}

/// ResNet-20 with AESPA activations at the 128-bit N = 2^16 preset, end to end (minutes and
/// about 13 GiB): the encrypted logits give the float executor's top-1 on the bundled sample.
/// `cargo test --release -p privinfer-fhe --test ckks -- --ignored resnet20`
#[test]
#[ignore]
fn resnet20_aespa_end_to_end_n16() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../");
    let m = nn::load(format!("{root}models/resnet20_aespa.onnx")).unwrap();
    let x = nn::data::load_image(format!("{root}models/samples/cifar10_00_3.png"), 32, 32).unwrap();
    let range: f64 = m
        .metadata_value("privinfer.fhe_range")
        .unwrap()
        .parse()
        .unwrap();
    let dep = Deployment::new(
        &m,
        ckks::presets::n16_logqp1545_h192_h32(),
        Some(ckks::presets::n16_logqp1545_h192_h32_config()),
        range,
    )
    .unwrap();
    // The issue's bound is 10; square-form activations, the mask-free ConvB and ten levels
    // after bootstrapping (two residual blocks per bootstrap) give 4.
    assert!(
        dep.prog.bootstraps() <= 4,
        "{} bootstraps",
        dep.prog.bootstraps()
    );
    let mut rng = ChaCha20Rng::seed_from_u64(9);
    let keys = dep.keygen(&mut rng).unwrap();
    let input = dep.encrypt(&keys.sk, &x, &mut rng).unwrap();
    let eval = ckks::Evaluator::new(&dep.params, keys.eval).unwrap();
    let zero = keys.zero.ciphertext().clone();
    let run = dep
        .evaluate(&eval, keys.encaps.as_ref(), &zero, input, &mut rng)
        .unwrap();
    let y: Vec<f32> = dep
        .decrypt(&keys.sk, &run.output)
        .unwrap()
        .iter()
        .map(|&v| v as f32)
        .collect();
    let f = nn::float::run(&m, &x).unwrap().data;
    let err = y
        .iter()
        .zip(&f)
        .fold(0f32, |a, (p, q)| a.max((p - q).abs()));
    eprintln!("logits {y:?}\nfloat  {f:?}\nmax error {err:.2e}");
    assert_eq!(nn::argmax(&y), nn::argmax(&f));
    assert!(err < 1e-2 * f.iter().fold(1f32, |a, v| a.max(v.abs())));
}

/// Two real ciphertexts refreshed by one bootstrapping circuit as `(a + i·b)/2`
/// (`Backend::pack_pair`) and split by one conjugation: both come back at the bootstrapping
/// level within the circuit's precision (at twice the scale), and add to a ciphertext at the
/// usual scale (`Backend::add` lifts it by the integer ratio).
#[test]
fn paired_bootstrap_on_ciphertexts() {
    use ckks::{presets, Bootstrapper, Complex, Decryptor, Encryptor, Params, SecretKey};
    use fhe::backend::Backend;
    use rand::Rng;
    let params = Params::new(presets::insecure_boot_n12()).unwrap();
    let bs = Bootstrapper::new(&params, presets::insecure_boot_n12_config()).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(21);
    let sk = SecretKey::generate(&params, &mut rng);
    let (keys, encaps) = bs.generate_keys(&sk, &mut rng).unwrap();
    let eval = ckks::Evaluator::new(&params, keys).unwrap();
    let (enc, dec) = (
        Encryptor::with_secret_key(&params, &sk).unwrap(),
        Decryptor::new(&params, &sk).unwrap(),
    );
    let n = params.max_slots();
    let b = fhe::backend::Ckks {
        params: &params,
        eval: &eval,
        boot: Some((std::slice::from_ref(&bs), encaps.as_ref())),
        n,
    };
    let real =
        |rng: &mut ChaCha20Rng| -> Vec<f64> { (0..n).map(|_| rng.gen_range(-1.0..1.0)).collect() };
    let (xa, xb, xc) = (real(&mut rng), real(&mut rng), real(&mut rng));
    let encrypt = |v: &[f64], level: usize, rng: &mut ChaCha20Rng| {
        let z: Vec<Complex> = v.iter().map(|&x| Complex::from(x)).collect();
        let pt = params.encode(&z, n, level, params.default_scale()).unwrap();
        enc.encrypt(&pt, rng).unwrap()
    };
    let (ca, cb) = (encrypt(&xa, 0, &mut rng), encrypt(&xb, 0, &mut rng));
    let z = b.bootstrap(&b.pack_pair(&ca, &cb).unwrap(), n).unwrap();
    let (ra, rb) = b.split_complex(&z).unwrap();
    let err = |c: &ckks::Ciphertext, want: &[f64]| {
        dec.decrypt(c)
            .unwrap()
            .iter()
            .zip(want)
            .fold(0f64, |m, (g, w)| m.max((g.re - w).abs().max(g.im.abs())))
    };
    let (ea, eb) = (err(&ra, &xa), err(&rb, &xb));
    eprintln!("paired bootstrap: max error {ea:.2e} / {eb:.2e}");
    assert_eq!(
        (ra.level(), rb.level()),
        (bs.output_level(), bs.output_level())
    );
    assert!(ea < 1e-3 && eb < 1e-3, "{ea} {eb}");
    assert!((ra.scale() / (2.0 * params.default_scale()) - 1.0).abs() < 1e-9);
    // A value at the usual scale adds to it.
    let cc = encrypt(&xc, bs.output_level(), &mut rng);
    let sum: Vec<f64> = xa.iter().zip(&xc).map(|(a, c)| a + c).collect();
    let es = err(&b.add(&ra, &cc).unwrap(), &sum);
    assert!(es < 1e-3, "{es}");
    // Values at 2Δ do not pair again (their messages are twice a Δ value's: a second pair
    // would double what EvalMod reads again, the composite ReLU's chain of bootstraps); one
    // alone bootstraps, and a series brings its result back to Δ.
    assert!(b.pairable(&ca, &cb));
    assert!(!b.pairable(&ra, &rb) && !b.pairable(&ra, &cc));
    let half: Vec<f64> = xa.iter().map(|v| v / 2.0).collect();
    // |x| ≤ 1/2 at 2Δ (a network's bootstrap inputs are at most half its range).
    let twice = {
        let z: Vec<Complex> = half.iter().map(|&x| Complex::from(x)).collect();
        let pt = params
            .encode(&z, n, 0, 2.0 * params.default_scale())
            .unwrap();
        enc.encrypt(&pt, &mut rng).unwrap()
    };
    let alone = b.bootstrap(&twice, n).unwrap();
    let ealone = err(&alone, &half);
    let series = ckks::ChebyshevSeries::interpolate(|t| t, -1.0, 1.0, 1).unwrap();
    let s = b.series(&alone, &series, false).unwrap();
    let eseries = err(&s, &half);
    eprintln!("a 2Δ value bootstrapped alone: {ealone:.2e}, then a series: {eseries:.2e}");
    assert!(ealone < 1e-3 && eseries < 1e-3, "{ealone} {eseries}");
    assert!((s.scale() / params.default_scale() - 1.0).abs() < 1e-9);
}
