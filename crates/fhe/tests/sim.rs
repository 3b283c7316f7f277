//! The lowered program on clear slot vectors ([`fhe::backend::Sim`]) equals the float executor:
//! the layouts, the convolution kernels, the polynomial activations, the option-A shortcut,
//! pooling + FC and the bootstrap placement are exact up to float rounding.

mod common;

use common::{max_abs_trace, max_err};
use fhe::backend::{Backend, Sim, SimCt};
use fhe::lower::Kind;
use fhe::{Layout, Options, Program};

fn run_sim(prog: &Program, x: &[f32], boot_level: usize) -> (Vec<f64>, fhe::Run<SimCt>, f64) {
    let sim = Sim::new(prog.n, boot_level);
    let xs: Vec<f64> = x.iter().map(|&v| v as f64 / prog.range).collect();
    let input: Vec<SimCt> = prog.layouts[0]
        .pack(&xs, prog.n)
        .into_iter()
        .map(|v| SimCt::real(v, prog.input_level))
        .collect();
    let run = fhe::run(prog, &sim, input).unwrap();
    let out_layout = &prog.layouts[prog.output];
    let v: Vec<Vec<f64>> = run.output.iter().map(|c| c.v.clone()).collect();
    let y: Vec<f64> = out_layout
        .unpack(&v)
        .iter()
        .map(|v| v * prog.range)
        .collect();
    let mb = *sim.max_boot_input.lock().unwrap();
    let _ = sim.boot_level();
    (y, run, mb)
}

/// The lowering's options at `slots`, bootstrapping to `boot` levels (or a deep chain
/// without), with MPCNN's ReLU degrees.
fn options(slots: usize, range: f64, boot: Option<usize>, conv: fhe::lower::ConvAlgo) -> Options {
    Options {
        slots,
        range,
        boot_level: boot,
        input_level: boot.unwrap_or(40),
        relu_degrees: fhe::lower::RELU_DEGREES.to_vec(),
        conv,
    }
}

/// Runs `prog` on `x` and checks the output against `want` (within 1e-4) and every bootstrap
/// input (at most 1).
fn assert_close(
    prog: &Program,
    x: &[f32],
    want: &[f64],
    boot: usize,
    what: &str,
) -> fhe::Run<SimCt> {
    let (y, run, mb) = run_sim(prog, x, boot);
    let err = max_err(&y, want);
    assert!(err < 1e-4, "{what}: max error {err}: {y:?} vs {want:?}");
    assert!(mb <= 1.0, "{what}: bootstrap input {mb} > 1");
    run
}

#[test]
fn tiny_fhe_program_on_clear_slots_equals_float() {
    let (m, cases) = common::tiny("tiny_fhe");
    for (x, want) in &cases {
        let range = 2.0 * max_abs_trace(&m, x);
        for (slots, boot, conv) in [
            (1024, Some(6), fhe::lower::ConvAlgo::Pair),
            (4096, Some(7), fhe::lower::ConvAlgo::Pair),
            (1024, None, fhe::lower::ConvAlgo::Pair),
            (1024, Some(6), fhe::lower::ConvAlgo::Mpcnn),
            (4096, None, fhe::lower::ConvAlgo::Mpcnn),
            (1024, Some(6), fhe::lower::ConvAlgo::Diag),
            (4096, None, fhe::lower::ConvAlgo::Diag),
            (1024, Some(6), fhe::lower::ConvAlgo::Shift),
            (4096, None, fhe::lower::ConvAlgo::Shift),
            (1024, Some(6), fhe::lower::ConvAlgo::Auto),
        ] {
            let prog = Program::lower(&m, &options(slots, range, boot, conv)).unwrap();
            // Alternating layouts: every ConvA reads P, every ConvB reads I; MPCNN's reads and
            // writes P.
            for s in &prog.steps {
                match s.kind {
                    Kind::ConvMpcnn(_) => {
                        assert_eq!(conv, fhe::lower::ConvAlgo::Mpcnn);
                        assert!(matches!(prog.layouts[s.inputs[0]], Layout::P { .. }));
                        assert!(matches!(prog.layouts[s.output], Layout::P { .. }));
                    }
                    Kind::ConvA(_) => {
                        assert!(matches!(prog.layouts[s.inputs[0]], Layout::P { .. }))
                    }
                    Kind::ConvB(_) => {
                        assert!(matches!(prog.layouts[s.inputs[0]], Layout::I { .. }))
                    }
                    Kind::ConvD(..) => {
                        assert!(matches!(prog.layouts[s.inputs[0]], Layout::P { .. }));
                        assert!(matches!(prog.layouts[s.output], Layout::P { .. }));
                    }
                    Kind::ConvS(..) => {
                        assert_eq!(conv, fhe::lower::ConvAlgo::Shift);
                        assert_eq!(prog.layouts[s.inputs[0]], prog.layouts[s.output]);
                    }
                    Kind::Bootstrap => assert_eq!(prog.layouts[s.inputs[0]].cts(), 1),
                    _ => {}
                }
            }
            let (y, run, mb) = run_sim(&prog, x, boot.unwrap_or(0));
            let err = max_err(&y, want);
            assert!(
                err < 1e-4,
                "slots {slots} boot {boot:?} {conv:?}: max error {err}: {y:?} vs {want:?}"
            );
            // Under Diag every convolution reading P (the strided one too) is a ConvD.
            if conv == fhe::lower::ConvAlgo::Diag {
                assert!(!prog.steps.iter().any(|s| matches!(s.kind, Kind::ConvA(_))));
                assert!(prog.steps.iter().any(|s| matches!(s.kind, Kind::ConvD(..))));
            }
            // Under Shift the stride-1 convolutions reading P are ConvS (the strided one ConvD).
            if conv == fhe::lower::ConvAlgo::Shift {
                assert!(!prog.steps.iter().any(|s| matches!(s.kind, Kind::ConvA(_))));
                assert!(prog.steps.iter().any(|s| matches!(s.kind, Kind::ConvS(..))));
            }
            assert!(mb <= 1.0, "bootstrap input {mb} > 1");
            if boot.is_some() {
                assert!(prog.bootstraps() > 0, "levels force bootstraps");
                assert_eq!(
                    run.steps.iter().map(|s| s.counts.bootstraps).sum::<usize>(),
                    prog.bootstraps()
                );
            } else {
                assert_eq!(prog.bootstraps(), 0);
            }
        }
    }
}

#[test]
fn too_few_levels_and_unsupported_ops_are_refused() {
    let (m, _) = common::tiny("tiny_fhe");
    // One level after bootstrapping cannot hold a 2-level convolution.
    let e = Program::lower(
        &m,
        &Options {
            slots: 1024,
            range: 8.0,
            boot_level: Some(1),
            input_level: 1,
            relu_degrees: fhe::lower::RELU_DEGREES.to_vec(),
            conv: fhe::lower::ConvAlgo::Pair,
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("levels"), "{e}");
    // Fewer slots than one block of the 8×8 map: row bands, which the pair does not read; at
    // 64 slots the maps split over ciphertexts, which the option-A shortcut does not take.
    for (slots, reason) in [(32, "needs ConvD"), (64, "split over ciphertexts")] {
        let e = Program::lower(
            &m,
            &Options {
                slots,
                range: 8.0,
                boot_level: Some(9),
                input_level: 9,
                relu_degrees: fhe::lower::RELU_DEGREES.to_vec(),
                conv: fhe::lower::ConvAlgo::Pair,
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains(reason), "{e}");
    }
    // ReLU6, max pooling and depthwise convolutions are refused with their reason.
    let cnn = nn::load(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../models/tiny/tiny_cnn.onnx"
    ))
    .unwrap();
    let e = Program::lower(
        &cnn,
        &Options {
            slots: 1 << 12,
            range: 8.0,
            boot_level: Some(9),
            input_level: 9,
            relu_degrees: fhe::lower::RELU_DEGREES.to_vec(),
            conv: fhe::lower::ConvAlgo::Pair,
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("FHE mode cannot lower"), "{e}");
}

/// ReLU through the composite sign (MPCNN's degrees 15, 15, 27): the program on clear slots is
/// close to onnxruntime (the composite's error near 0 is the approximation, measured here), with
/// bootstraps inside the activations, also on multi-ciphertext layouts.
#[test]
fn relu_network_through_the_composite_sign() {
    let (m, cases) = common::tiny("tiny_fhe_relu");
    for (x, want) in &cases {
        let range = 1.25 * max_abs_trace(&m, x);
        let prog = Program::lower(
            &m,
            &Options {
                slots: 1024,
                range,
                boot_level: Some(9),
                input_level: 9,
                relu_degrees: fhe::lower::RELU_DEGREES.to_vec(),
                conv: fhe::lower::ConvAlgo::Pair,
            },
        )
        .unwrap();
        let series = prog
            .steps
            .iter()
            .filter(|s| matches!(s.kind, Kind::Series { .. }))
            .count();
        assert_eq!(series, 3 * 5, "three stages per ReLU");
        // A ReLU needs 17 levels: at least two bootstraps each.
        assert!(prog.bootstraps() >= 10, "{} bootstraps", prog.bootstraps());
        let (y, _, mb) = run_sim(&prog, x, 9);
        assert!(mb <= 1.0, "series or bootstrap input {mb} > 1");
        let err = max_err(&y, want);
        let scale = want.iter().fold(0f64, |a, v| a.max(v.abs()));
        eprintln!(
            "composite ReLU: max logit error {err:.2e} (max |logit| {scale:.2}), {} bootstraps",
            prog.bootstraps()
        );
        assert!(
            err < 2e-3 * scale.max(1.0),
            "max error {err}: {y:?} vs {want:?}"
        );
    }
}

/// Level a program reads its input at: what its deepest path consumes.
fn input_depth(prog: &Program) -> usize {
    let read = prog.read_levels();
    prog.steps
        .iter()
        .zip(&read)
        .filter(|(s, _)| s.inputs.contains(&0))
        .map(|(_, &r)| r)
        .max()
        .unwrap()
}

/// The degree-2 activations take the 1-level square form when it is well conditioned (every
/// `|a·R| ≥ 1/4`; `≥ 1/16` in the relaxed form), and the 2-level direct form otherwise (here
/// forced by a range too small for it, without bootstraps); both equal the float executor, and
/// the square form costs fewer levels.
#[test]
fn square_form_and_its_fallback_equal_float() {
    let (m, cases) = common::tiny("tiny_fhe");
    let (x, want) = &cases[0];
    let range = 2.0 * max_abs_trace(&m, x);
    let mut depth = vec![];
    for r in [range, range / 1e4] {
        let opts = Options {
            slots: 1024,
            range: r,
            boot_level: None,
            input_level: 40,
            relu_degrees: fhe::lower::RELU_DEGREES.to_vec(),
            conv: fhe::lower::ConvAlgo::Pair,
        };
        let prog = Program::lower(&m, &opts).unwrap();
        let squares = prog
            .steps
            .iter()
            .filter(|s| matches!(s.kind, Kind::Square(_)))
            .count();
        let quadratic = prog
            .steps
            .iter()
            .filter(|s| matches!(&s.kind, Kind::Poly(p) if p.degree() == 2))
            .count();
        if r == range {
            assert!(squares >= 1, "square form at range {r}");
        } else {
            assert_eq!(squares, 0, "direct form at range {r}");
            assert!(quadratic >= 1);
        }
        let (y, run, _) = run_sim(&prog, x, 0);
        let err = max_err(&y, want);
        assert!(err < 1e-4, "range {r}: max error {err}");
        // Every step reads its inputs at exactly the levels the rest of the program needs:
        // the output comes out at level 0.
        assert_eq!(run.steps.last().unwrap().level_out, 0);
        depth.push(input_depth(&prog));
    }
    assert!(depth[0] < depth[1], "levels used: {depth:?}");
}

/// A square whose factor is below 1/4 (here: a range that puts the smallest `|a·R|` at 0.15)
/// takes the relaxed square form, its value marked unbounded; the placement never bootstraps
/// an unbounded value, and the program still equals float, with bootstraps and without.
#[test]
fn relaxed_square_form_is_never_bootstrapped() {
    let (m, cases) = common::tiny("tiny_fhe");
    let (x, want) = &cases[0];
    let range = 2.0 * max_abs_trace(&m, x);
    let opts = |r: f64, boot: Option<usize>| Options {
        slots: 1024,
        range: r,
        boot_level: boot,
        input_level: boot.unwrap_or(40),
        relu_degrees: fhe::lower::RELU_DEGREES.to_vec(),
        conv: fhe::lower::ConvAlgo::Pair,
    };
    let prog = Program::lower(&m, &opts(range, None)).unwrap();
    let held: Vec<f64> = prog
        .steps
        .iter()
        .filter_map(|s| match &s.kind {
            Kind::Square(p) => Some(
                p.a.iter()
                    .map(|a| (a * range).abs())
                    .fold(f64::MAX, f64::min),
            ),
            _ => None,
        })
        .collect();
    let smallest = held.iter().copied().fold(f64::MAX, f64::min);
    assert!(!held.is_empty());
    // The same network with the range scaled so that the smallest factor is 0.15.
    let r = range * 0.15 / smallest;
    let relaxed = Program::lower(&m, &opts(r, None)).unwrap();
    assert!(!relaxed.unbounded.is_empty());
    let (y, _, _) = run_sim(&relaxed, x, 0);
    assert!(max_err(&y, want) < 1e-4);
    // With bootstraps (the bootstrap's range check is the clear backend's, and this range is
    // below the trace's, so only the placement is checked here).
    let boot = Program::lower(&m, &opts(r, Some(6))).unwrap();
    assert!(boot.bootstraps() >= 1);
    for s in boot
        .steps
        .iter()
        .filter(|s| matches!(s.kind, Kind::Bootstrap))
    {
        assert!(
            !boot.unbounded.contains(&s.inputs[0]),
            "{} bootstraps an unbounded value",
            s.name
        );
    }
}

/// Read levels: a step never reads above what the rest of the program needs, and every value
/// reaches its readers with at least that many levels (the run would fail otherwise).
#[test]
fn read_levels_are_the_minimum_the_program_needs() {
    let (m, cases) = common::tiny("tiny_fhe");
    let (x, want) = &cases[0];
    let range = 2.0 * max_abs_trace(&m, x);
    for boot in [Some(6), Some(7), None] {
        let opts = Options {
            slots: 1024,
            range,
            boot_level: boot,
            input_level: boot.unwrap_or(40),
            relu_degrees: fhe::lower::RELU_DEGREES.to_vec(),
            conv: fhe::lower::ConvAlgo::Pair,
        };
        let prog = Program::lower(&m, &opts).unwrap();
        let read = prog.read_levels();
        let (y, run, _) = run_sim(&prog, x, boot.unwrap_or(0));
        assert!(max_err(&y, want) < 1e-4);
        for ((s, r), rep) in prog.steps.iter().zip(&read).zip(&run.steps) {
            assert_eq!(rep.level_in, *r, "{} {}", s.name, rep.op);
            match s.kind {
                Kind::Bootstrap => assert_eq!(*r, 0),
                _ => assert!(*r >= s.kind.depth()),
            }
        }
        assert_eq!(run.steps.last().unwrap().level_out, 0);
    }
}

/// A bootstrap keeps only the periodic part of its input (sparse packing with `period`
/// slots): the clear-slot backend refuses an input that is not periodic.
#[test]
fn sparse_bootstrap_needs_a_periodic_input() {
    let sim = Sim::new(16, 5);
    let periodic: Vec<f64> = (0..16).map(|i| (i % 4) as f64 / 8.0).collect();
    let x = SimCt::real(periodic, 0);
    assert_eq!(sim.bootstrap(&x, 4).unwrap().v, x.v);
    let mut broken = x.v.clone();
    broken[13] += 0.25;
    let e = sim.bootstrap(&SimCt::real(broken, 0), 4).unwrap_err();
    assert!(e.to_string().contains("period 4"), "{e}");
}

/// A ResNet-18-shaped net (1×1 projection shortcut, 12 classes) at slot counts where its maps
/// fill one ciphertext and where they split over 2–8 (PRCR): equal to the float executor, the
/// projection shortcut moved back to P by an identity ConvB, the logits denser than one per
/// block where they do not fit.
#[test]
fn maps_split_over_ciphertexts_and_projection_shortcuts_equal_float() {
    let (m, cases) = common::tiny("tiny_fhe_proj");
    let (x, want) = &cases[0];
    let range = 2.0 * max_abs_trace(&m, x);
    use fhe::lower::ConvAlgo::{Diag, Pair};
    let mut one_copy_fcs = 0;
    for (slots, boot, max_parts, conv) in [
        (8192, Some(9), 1, Pair),
        (2048, Some(9), 2, Pair),
        (512, Some(9), 8, Pair),
        (512, None, 8, Pair),
        (8192, Some(9), 1, Diag),
        (2048, Some(9), 2, Diag),
        (512, None, 8, Diag),
    ] {
        let prog = Program::lower(&m, &options(slots, range, boot, conv)).unwrap();
        let parts = prog
            .layouts
            .iter()
            .filter_map(|l| match l {
                Layout::P { parts, .. } => Some(*parts),
                _ => None,
            })
            .max()
            .unwrap();
        assert_eq!(parts, max_parts, "slots {slots}");
        // With one copy the pooled FC's lanes are the cells of a map row: logits at the
        // cells' spacing (the float comparison below checks them).
        for s in &prog.steps {
            if let (Kind::PoolFc(_), Layout::P { grid, r: 1, .. }) =
                (&s.kind, &prog.layouts[s.inputs[0]])
            {
                one_copy_fcs += 1;
                assert!(
                    matches!(prog.layouts[s.output], Layout::Vector { stride, .. } if stride == grid.k),
                    "slots {slots}: {:?}",
                    prog.layouts[s.output]
                );
            }
        }
        // The pair's projection shortcut (a ConvA) returns to P by an identity ConvB; ConvD's
        // is in P already.
        assert_eq!(
            prog.steps.iter().any(|s| s.name.ends_with("/to-p")),
            conv == Pair,
            "slots {slots} {conv:?}"
        );
        let run = assert_close(&prog, x, want, boot.unwrap_or(0), &format!("slots {slots}"));
        // A bootstrap of a split P refreshes each of its ciphertexts.
        let boots: usize = run.steps.iter().map(|s| s.counts.bootstraps).sum();
        assert!(boots >= prog.bootstraps());
    }
    assert!(one_copy_fcs > 0, "no configuration pools a one-copy map");
    // MPCNN's convolution refuses a split map with a one-line reason.
    let e = Program::lower(
        &m,
        &Options {
            slots: 512,
            range,
            boot_level: None,
            input_level: 40,
            relu_degrees: fhe::lower::RELU_DEGREES.to_vec(),
            conv: fhe::lower::ConvAlgo::Mpcnn,
        },
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("split over ciphertexts"), "{e}");
}

/// A map that is not a power of two (24×24 on a 32×32 grid) and, at 256 slots, larger than a
/// ciphertext: row bands, read only by ConvD (the 7×7 stride-2 stem, the average pool as a
/// convolution, strided and 1×1 projection convolutions), pooled band by band; equal to
/// onnxruntime with and without bootstraps, and the pair (where the map fits) as well.
#[test]
fn maps_larger_than_a_ciphertext_in_row_bands_equal_float() {
    let (m, cases) = common::tiny("tiny_fhe_bands");
    let x = &cases[0].0;
    let range = 2.0 * max_abs_trace(&m, x);
    use fhe::lower::ConvAlgo::{Auto, Diag, Mpcnn, Pair};
    let lower = |slots: usize, boot: Option<usize>, conv| {
        Program::lower(&m, &options(slots, range, boot, conv))
    };
    for (slots, boot, bands, conv) in [
        (256, Some(9), 4, Auto),
        (256, None, 4, Diag),
        (512, Some(9), 2, Auto),
        (1024, Some(9), 1, Auto),
        (1024, None, 1, Diag),
        (4096, Some(9), 1, Diag),
        (4096, None, 1, Mpcnn),
    ] {
        let prog = lower(slots, boot, conv).unwrap();
        let most = prog.layouts.iter().map(Layout::bands).max().unwrap();
        assert_eq!(most, bands, "slots {slots}");
        if bands > 1 {
            // Every convolution of a banded map is a ConvD, P → P.
            for s in &prog.steps {
                if matches!(s.kind, Kind::ConvA(_) | Kind::ConvB(_) | Kind::ConvMpcnn(_)) {
                    panic!("slots {slots}: {} is a {}", s.name, s.kind.name());
                }
            }
        }
        for (case, (x, want)) in cases.iter().enumerate() {
            let what = format!("slots {slots} {conv:?} boot {boot:?} case {case}");
            assert_close(&prog, x, want, boot.unwrap_or(0), &what);
        }
    }
    // The pair and MPCNN's convolution refuse a banded map with a one-line reason.
    for conv in [Pair, Mpcnn] {
        let e = lower(256, None, conv).unwrap_err().to_string();
        assert!(e.contains("needs ConvD"), "{conv:?}: {e}");
    }
}
