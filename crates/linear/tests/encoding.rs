//! Cheetah's coefficient encodings checked in plaintext: negacyclic products mod 2^ℓ (schoolbook)
//! against the direct integer convolution / matrix product.

mod common;

use common::{conv, random_weights};
use linear::cheetah::Layout;
use linear::{reference, LayerSpec, Ring};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

/// a·b in Z_{2^64}[X]/(X^N + 1), schoolbook.
fn negacyclic(a: &[u64], b: &[i64]) -> Vec<u64> {
    let n = a.len();
    let mut out = vec![0u64; n];
    for (i, &ai) in a.iter().enumerate() {
        if ai == 0 {
            continue;
        }
        for (j, &bj) in b.iter().enumerate() {
            if bj == 0 {
                continue;
            }
            let p = ai.wrapping_mul(bj as u64);
            let k = i + j;
            if k < n {
                out[k] = out[k].wrapping_add(p);
            } else {
                out[k - n] = out[k - n].wrapping_sub(p);
            }
        }
    }
    out
}

/// Evaluates a layout in plaintext and compares with the reference (bias removed).
fn check_layout(layer: &LayerSpec, layout: &Layout, ring: Ring, seed: u64) {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let mut w = random_weights(layer, ring, &mut rng);
    w.bias.iter_mut().for_each(|b| *b = 0);
    let x: Vec<u64> = (0..layer.input_len())
        .map(|_| ring.reduce(rng.gen()))
        .collect();
    let expected = reference(layer, ring, &w, &x);
    // [truncated queries] garbage outside each input's support S_i must not reach an output.
    let inputs: Vec<Vec<u64>> = (0..layout.input_cts())
        .map(|i| {
            let mut p = layout.encode_input(&x, i);
            let mut inside = vec![false; p.len()];
            layout
                .query_support(i)
                .into_iter()
                .for_each(|c| inside[c] = true);
            for (c, v) in p.iter_mut().enumerate() {
                if !inside[c] {
                    *v = rng.gen();
                }
            }
            p
        })
        .collect();
    let mut y = vec![None; layer.output_len()];
    for o in 0..layout.output_cts() {
        let mut acc = vec![0u64; layout.n()];
        for (i, key) in layout.terms(o) {
            let wk = layout
                .encode_weights(ring, &w.weights, key)
                .expect("term has a plaintext");
            for (a, p) in acc.iter_mut().zip(negacyclic(&inputs[i], &wk)) {
                *a = a.wrapping_add(p);
            }
        }
        let pos = layout.positions(o);
        assert_eq!(pos.len(), layout.kept(o));
        assert!(
            pos.iter().all(|&(c, _)| c % layout.output_stride() == 0),
            "outputs not at multiples of the stride"
        );
        for (coef, out) in pos {
            assert!(y[out].is_none(), "output {out} produced twice");
            y[out] = Some(ring.reduce(acc[coef]));
        }
    }
    for (i, (got, want)) in y.iter().zip(&expected).enumerate() {
        assert_eq!(*got, Some(*want), "{layer:?} {layout:?}: output {i}");
    }
}

fn check_all_layouts(layer: &LayerSpec, n: usize, ring: Ring, max: usize) {
    let mut cands = Layout::candidates(layer, n);
    cands.extend(Layout::packable_candidates(layer, n));
    assert!(!cands.is_empty(), "{layer:?}: no layout at N = {n}");
    let step = cands.len().div_ceil(max).max(1);
    for (i, l) in cands.iter().enumerate().step_by(step) {
        check_layout(layer, l, ring, i as u64);
    }
}

#[test]
fn conv_partitioning_with_overlap() {
    let ring = Ring::new(37).unwrap();
    // C·H·W = 4·10·10 = 400 > N = 128: channel and spatial split with overlap.
    check_all_layouts(
        &LayerSpec::conv(conv(4, 10, 3, 3, 1, 1, 1), 8),
        128,
        ring,
        12,
    );
    // Strides 2 and 3, padding 0 and 2, 5×5 and 1×1 kernels.
    check_all_layouts(
        &LayerSpec::conv(conv(3, 11, 2, 3, 2, 1, 1), 8),
        128,
        ring,
        12,
    );
    check_all_layouts(
        &LayerSpec::conv(conv(2, 13, 2, 5, 3, 2, 1), 8),
        256,
        ring,
        12,
    );
    check_all_layouts(&LayerSpec::conv(conv(5, 6, 4, 1, 2, 0, 1), 8), 64, ring, 12);
}

#[test]
fn grouped_and_depthwise() {
    let ring = Ring::new(37).unwrap();
    check_all_layouts(
        &LayerSpec::conv(conv(6, 7, 6, 3, 1, 1, 6), 8),
        128,
        ring,
        12,
    );
    check_all_layouts(
        &LayerSpec::conv(conv(6, 7, 4, 3, 2, 1, 2), 8),
        128,
        ring,
        12,
    );
}

#[test]
fn fc_blocks_and_scale() {
    let ring = Ring::new(41).unwrap();
    check_all_layouts(&LayerSpec::fc(50, 13, 10), 64, ring, 20);
    check_all_layouts(&LayerSpec::fc(7, 100, 10), 64, ring, 20);
    check_all_layouts(&LayerSpec::scale(5, 6, 7, 10), 64, ring, 12);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]
    #[test]
    fn random_conv_shapes(
        g in 1usize..=3, cpg in 1usize..=3, mpg in 1usize..=3, h in 1usize..=9, k in 1usize..=4,
        stride in 1usize..=3, padding in 0usize..=2, logn in 5u32..=8, seed in any::<u64>(),
    ) {
        let k = k.min(h + 2 * padding);
        let spec = conv(g * cpg, h, g * mpg, k, stride, padding, g);
        let layer = LayerSpec::conv(spec, 9);
        let n = 1usize << logn;
        let mut cands = Layout::candidates(&layer, n);
        cands.extend(Layout::packable_candidates(&layer, n));
        prop_assume!(!cands.is_empty());
        let pick = cands[(seed as usize) % cands.len()];
        check_layout(&layer, &pick, Ring::new(33).unwrap(), seed);
    }

    #[test]
    fn random_fc_shapes(i in 1usize..=40, o in 1usize..=40, logn in 4u32..=7, seed in any::<u64>()) {
        let layer = LayerSpec::fc(i, o, 9);
        let mut cands = Layout::candidates(&layer, 1usize << logn);
        cands.extend(Layout::packable_candidates(&layer, 1usize << logn));
        prop_assume!(!cands.is_empty());
        let pick = cands[(seed as usize) % cands.len()];
        check_layout(&layer, &pick, Ring::new(37).unwrap(), seed);
    }
}

/// Brute-force query support: ∪ over the output polynomials o reading input i of
/// K_o ⊖ supp(ŵ_{o,i}) mod N, with ŵ the real encoder's plaintext of an all-ones weight tensor
/// (every structurally possible position nonzero).
fn brute_support(layer: &LayerSpec, layout: &Layout, ring: Ring) -> Vec<Vec<usize>> {
    let n = layout.n();
    let ones = vec![1u64; layer.weight_len()];
    let mut hit = vec![vec![false; n]; layout.input_cts()];
    for o in 0..layout.output_cts() {
        let ks: Vec<usize> = layout.positions(o).into_iter().map(|(c, _)| c).collect();
        for (i, key) in layout.terms(o) {
            let w = layout
                .encode_weights(ring, &ones, key)
                .expect("term has a plaintext");
            for (p, _) in w.iter().enumerate().filter(|(_, &v)| v != 0) {
                for &k in &ks {
                    hit[i][(k + n - p) % n] = true;
                }
            }
        }
    }
    hit.into_iter()
        .map(|h| (0..n).filter(|&c| h[c]).collect())
        .collect()
}

/// The closed-form supports equal the brute force (so they are both sufficient and minimal)
/// and their closed-form sizes match, for every candidate layout.
fn check_supports(layer: &LayerSpec, n: usize) -> usize {
    let ring = Ring::new(37).unwrap();
    let mut cands = Layout::candidates(layer, n);
    cands.extend(Layout::packable_candidates(layer, n));
    for l in &cands {
        let brute = brute_support(layer, l, ring);
        let lens = l.query_support_lens();
        assert_eq!(lens.len(), l.input_cts());
        // The cost model's (size, multiplicity) pairs are the same multiset.
        let mut from_counts: Vec<usize> = l
            .query_support_counts()
            .into_iter()
            .flat_map(|(c, m)| std::iter::repeat_n(c, m))
            .collect();
        let mut sorted = lens.clone();
        from_counts.sort_unstable();
        sorted.sort_unstable();
        assert_eq!(from_counts, sorted, "{layer:?} {l:?}: counts");
        for (i, want) in brute.iter().enumerate() {
            let got = l.query_support(i);
            assert_eq!(&got, want, "{layer:?} {l:?}: input {i}");
            assert_eq!(lens[i], got.len(), "{layer:?} {l:?}: |S_{i}|");
        }
    }
    cands.len()
}

#[test]
fn supports_on_fixed_shapes() {
    // Channel + spatial split, strides 2 and 3, groups, FC with partial chunks and blocks.
    let mut total = 0;
    total += check_supports(&LayerSpec::conv(conv(4, 10, 3, 3, 1, 1, 1), 8), 128);
    total += check_supports(&LayerSpec::conv(conv(3, 11, 2, 3, 2, 1, 1), 8), 128);
    total += check_supports(&LayerSpec::conv(conv(2, 13, 2, 5, 3, 2, 1), 8), 256);
    total += check_supports(&LayerSpec::conv(conv(5, 6, 4, 1, 2, 0, 1), 8), 64);
    total += check_supports(&LayerSpec::conv(conv(6, 7, 4, 3, 2, 1, 2), 8), 128);
    total += check_supports(&LayerSpec::fc(50, 13, 10), 64);
    total += check_supports(&LayerSpec::fc(64, 10, 10), 1024);
    assert!(total > 50, "{total} layouts");
}

#[test]
fn truncation_shrinks_the_cifar_queries() {
    // ResNet-20's conv1 (3×32×32 padded to 3×34×34 = 3468 of 8192) and its 64→10 FC, whose
    // strided encoding reads 63·10 + 2·10 − 1 = 649 coefficients of 4096 (block: 19·64).
    let l = LayerSpec::conv(conv(3, 32, 16, 3, 1, 1, 1), 12);
    let one = Layout::candidates(&l, 8192)
        .into_iter()
        .find(|c| c.input_cts() == 1)
        .unwrap();
    assert_eq!(one.query_support_lens(), vec![3 * 34 * 34]);
    let fc = LayerSpec::fc(64, 10, 12);
    let lens: Vec<(bool, usize)> = Layout::candidates(&fc, 4096)
        .into_iter()
        .filter(|c| c.input_cts() == 1)
        .map(|c| (c.needs_truncation(), c.query_support_lens()[0]))
        .collect();
    assert!(lens.contains(&(false, 19 * 64)), "{lens:?}");
    assert!(lens.contains(&(true, 63 * 10 + 2 * 10 - 1)), "{lens:?}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, .. ProptestConfig::default() })]
    /// Closed-form query supports = brute force on random conv shapes (strides, paddings, groups,
    /// plain and interleaved tilings) and FC shapes (block, shifted, strided).
    #[test]
    fn random_supports(
        g in 1usize..=3, cpg in 1usize..=3, mpg in 1usize..=2, h in 1usize..=9, k in 1usize..=4,
        stride in 1usize..=3, padding in 0usize..=2, logn in 5u32..=8,
        fi in 1usize..=40, fo in 1usize..=20, flogn in 4u32..=7,
    ) {
        let k = k.min(h + 2 * padding);
        check_supports(&LayerSpec::conv(conv(g * cpg, h, g * mpg, k, stride, padding, g), 9), 1 << logn);
        check_supports(&LayerSpec::fc(fi, fo, 9), 1 << flogn);
    }
}
