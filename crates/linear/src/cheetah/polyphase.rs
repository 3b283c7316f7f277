//! Strided convolutions by space-to-depth (polyphase decomposition): a local rewrite of a stride-s
//! convolution into a stride-1, unpadded one, so the HE protocol computes only the kept outputs.
//!
//! With the zero-padded input X_p (C×Hp×Wp), phases P_{a,b}[c][i][j] = X_p[c][s·i+a][s·j+b] and
//! the kernel W'[m][(c,a,b)][u][v] = W[m][c][s·u+a][s·v+b] (0 where s·u+a ≥ kh or s·v+b ≥ kw):
//!   out[m][y][x] = Σ_{c,a,b,u,v} W'[m][(c,a,b)][u][v] · P_{a,b}[c][y+u][x+v],
//! a stride-1 valid convolution with a ⌈kh/s⌉×⌈kw/s⌉ kernel on C·pa·pb channels. Only phases
//! a < pa = min(s, kh), b < pb = min(s, kw) carry a tap (a 1×1 stride-s conv keeps phase (0, 0):
//! a subsample). Phase channel (c, a, b) sits at index (c·pa + a)·pb + b, so the phases of a group's
//! channels stay in that group. Each party rewrites its own additive share (the permutation is
//! linear, and public zero padding is a share of zero); the server rewrites its weights; the
//! output layout [M][out_h][out_w] is unchanged.

use crate::layer::{Conv2dSpec, LayerShape, LayerSpec, LayerWeights};

/// The stride-1 convolution that computes `layer` by space-to-depth, if `layer` is a strided conv.
pub fn rewrite(layer: &LayerSpec) -> Option<LayerSpec> {
    let LayerShape::Conv2d(c) = layer.shape else {
        return None;
    };
    if c.stride <= 1 {
        return None;
    }
    let s = c.stride;
    let (pa, pb) = (s.min(c.kh), s.min(c.kw));
    let (kh, kw) = (c.kh.div_ceil(s), c.kw.div_ceil(s));
    Some(LayerSpec {
        shape: LayerShape::Conv2d(Conv2dSpec {
            c: c.c * pa * pb,
            h: c.out_h() + kh - 1,
            w: c.out_w() + kw - 1,
            m: c.m,
            kh,
            kw,
            stride: 1,
            padding: 0,
            groups: c.groups,
            block: c.block,
        }),
        weight_bits: layer.weight_bits,
    })
}

/// Channel of the rewritten layer holding phase (a, b) of channel c: channel-major
/// (c·pa + a)·pb + b, so each group's channels stay contiguous; phase-major (a·pb + b)·C + c for
/// a block-circulant layer (groups = 1), so each phase's (M, C) matrix keeps its b×b circulant
/// blocks and the rewrite keeps `block`.
fn phase_channel(orig: &Conv2dSpec, c: usize, a: usize, b: usize) -> usize {
    let s = orig.stride;
    let (pa, pb) = (s.min(orig.kh), s.min(orig.kw));
    if orig.block > 1 {
        (a * pb + b) * orig.c + c
    } else {
        (c * pa + a) * pb + b
    }
}

/// Phases of one party's share `x` (C×H×W of `orig`) laid out as the input of `rw`.
pub fn rewrite_input(orig: &Conv2dSpec, rw: &Conv2dSpec, x: &[u64]) -> Vec<u64> {
    let s = orig.stride;
    let (pa, pb) = (s.min(orig.kh), s.min(orig.kw));
    let p = orig.padding as isize;
    let mut out = vec![0u64; rw.c * rw.h * rw.w];
    for c in 0..orig.c {
        let plane = &x[c * orig.h * orig.w..(c + 1) * orig.h * orig.w];
        for a in 0..pa {
            for b in 0..pb {
                let ch = phase_channel(orig, c, a, b);
                let dst = &mut out[ch * rw.h * rw.w..(ch + 1) * rw.h * rw.w];
                for i in 0..rw.h {
                    let r = (s * i + a) as isize - p;
                    if r < 0 || r >= orig.h as isize {
                        continue;
                    }
                    let row = &plane[r as usize * orig.w..(r as usize + 1) * orig.w];
                    for j in 0..rw.w {
                        let q = (s * j + b) as isize - p;
                        if q >= 0 && q < orig.w as isize {
                            dst[i * rw.w + j] = row[q as usize];
                        }
                    }
                }
            }
        }
    }
    out
}

/// The server's weights `[M][C/groups][kh][kw]` of `orig` rewritten as those of `rw`; biases
/// unchanged.
pub fn rewrite_weights(orig: &Conv2dSpec, rw: &Conv2dSpec, w: &LayerWeights) -> LayerWeights {
    let s = orig.stride;
    let (pa, pb) = (s.min(orig.kh), s.min(orig.kw));
    let (cg, cg2) = (orig.c_per_group(), rw.c_per_group());
    let mut out = vec![0u64; rw.m * cg2 * rw.kh * rw.kw];
    for m in 0..orig.m {
        for cc in 0..cg {
            for a in 0..pa {
                for b in 0..pb {
                    let ch = phase_channel(orig, cc, a, b);
                    for u in 0..rw.kh {
                        let l = s * u + a;
                        if l >= orig.kh {
                            continue;
                        }
                        for v in 0..rw.kw {
                            let l2 = s * v + b;
                            if l2 >= orig.kw {
                                continue;
                            }
                            out[((m * cg2 + ch) * rw.kh + u) * rw.kw + v] =
                                w.weights[((m * cg + cc) * orig.kh + l) * orig.kw + l2];
                        }
                    }
                }
            }
        }
    }
    LayerWeights {
        weights: out,
        bias: w.bias.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::{reference, Ring};
    use rand_chacha::ChaCha20Rng;
    use rand_core::{RngCore, SeedableRng};

    /// The rewritten plaintext convolution equals the original one on every small shape with
    /// stride 2 and 3, kernels 1–7, paddings 0–3, groups and circulant blocks (independent of any
    /// HE); a block-circulant layer's rewrite is block-circulant with the same block.
    #[test]
    fn rewrite_equals_reference_in_the_clear() {
        let ring = Ring::new(37).unwrap();
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        let mut n = 0;
        for s in 2..=3 {
            for k in 1..=7 {
                for pad in 0..=3 {
                    for (g, cpg, mpg, blk) in
                        [(1, 3, 2, 1), (2, 2, 3, 1), (3, 1, 1, 1), (1, 4, 8, 4)]
                    {
                        for (h, w) in [(7, 9), (11, 8), (k, k + 1)] {
                            let c = Conv2dSpec {
                                c: g * cpg,
                                h,
                                w,
                                m: g * mpg,
                                kh: k,
                                kw: (k + 1) % 7 + 1,
                                stride: s,
                                padding: pad,
                                groups: g,
                                block: blk,
                            };
                            let layer = LayerSpec::conv(c, 10);
                            if layer.validate().is_err() {
                                continue;
                            }
                            let rwl = rewrite(&layer).unwrap();
                            rwl.validate().unwrap();
                            let LayerShape::Conv2d(rw) = rwl.shape else {
                                unreachable!()
                            };
                            let taps = c.kh * c.kw;
                            let raw: Vec<u64> = (0..layer.weight_len())
                                .map(|_| ring.from_signed((rng.next_u64() % 2001) as i64 - 1000))
                                .collect();
                            let w = LayerWeights {
                                weights: if blk > 1 {
                                    crate::circulant::project(c.m, c.c, taps, blk, &raw)
                                } else {
                                    raw
                                },
                                bias: (0..layer.bias_len())
                                    .map(|_| ring.reduce(rng.next_u64()))
                                    .collect(),
                            };
                            let x: Vec<u64> = (0..layer.input_len())
                                .map(|_| ring.reduce(rng.next_u64()))
                                .collect();
                            let want = reference(&layer, ring, &w, &x);
                            let got = reference(
                                &rwl,
                                ring,
                                &rewrite_weights(&c, &rw, &w),
                                &rewrite_input(&c, &rw, &x),
                            );
                            assert_eq!(got, want, "{c:?}");
                            assert_eq!(rw.block, blk);
                            assert!(
                                blk == 1
                                    || crate::circulant::is_block_circulant(
                                        rw.m,
                                        rw.c,
                                        rw.kh * rw.kw,
                                        blk,
                                        &rewrite_weights(&c, &rw, &w).weights
                                    )
                            );
                            n += 1;
                        }
                    }
                }
            }
        }
        assert!(n > 300, "{n} shapes");
    }
}
