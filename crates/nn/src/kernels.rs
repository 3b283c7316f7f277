//! Loop nests shared by the float and fixed-point executors: the same code computes over f32
//! and over Z_{2^64} (u64 wrapping; reduction mod 2^ℓ commutes with it since 2^ℓ | 2^64), so
//! both executors index data identically.

use crate::ir::{Conv2d, Pool};

/// An element the linear kernels accumulate over.
pub(crate) trait Elem: Copy + Send + Sync + 'static {
    const ZERO: Self;
    /// `self + w · x`.
    fn madd(self, w: Self, x: Self) -> Self;
}

impl Elem for f32 {
    const ZERO: Self = 0.0;
    #[inline(always)]
    fn madd(self, w: Self, x: Self) -> Self {
        self + w * x
    }
}

impl Elem for u64 {
    const ZERO: Self = 0;
    #[inline(always)]
    fn madd(self, w: Self, x: Self) -> Self {
        self.wrapping_add(w.wrapping_mul(x))
    }
}

/// Output range `[lo, hi)` of positions `o` with `0 <= o·stride + k − pad < n`.
#[inline]
fn valid_range(out: usize, stride: usize, k: usize, pad: usize, n: usize) -> (usize, usize) {
    // o·stride >= pad − k
    let lo = if pad > k {
        (pad - k).div_ceil(stride)
    } else {
        0
    };
    // o·stride + k − pad <= n − 1
    let hi = if n + pad > k {
        ((n - 1 + pad - k) / stride + 1).min(out)
    } else {
        0
    };
    (lo.min(out), hi.max(lo.min(out)))
}

/// Convolution `y = W * x + b` (NCHW, batch 1); `bias` may be empty (no bias). Grouped
/// convolutions with several input channels per group go through im2col and a row-major
/// matrix product (long contiguous inner loops); depthwise ones run directly.
pub(crate) fn conv2d<T: Elem>(c: &Conv2d, w: &[T], bias: &[T], x: &[T]) -> Vec<T> {
    if c.channels_per_group() == 1 {
        return conv2d_direct(c, w, bias, x);
    }
    let [ci, h, wd] = c.in_shape;
    let [co, oh, ow] = c.out_shape;
    let [kh, kw] = c.kernel;
    let [sh, sw] = c.stride;
    let [pt, pl, _, _] = c.pads;
    let cpg = ci / c.groups;
    let opg = co / c.groups;
    let p = oh * ow;
    let rows = cpg * kh * kw;
    let mut y = vec![T::ZERO; co * p];
    let pointwise = kh == 1 && kw == 1 && sh == 1 && sw == 1 && pt == 0 && pl == 0;
    let mut cols = if pointwise {
        Vec::new()
    } else {
        vec![T::ZERO; rows * p]
    };
    for g in 0..c.groups {
        let xg = &x[g * cpg * h * wd..(g + 1) * cpg * h * wd];
        if !pointwise {
            // cols[(cc, ky, kx), (oy, ox)] = x[cc, oy·sh + ky − pt, ox·sw + kx − pl] (0 outside).
            for cc in 0..cpg {
                for ky in 0..kh {
                    let (oy_lo, oy_hi) = valid_range(oh, sh, ky, pt, h);
                    for kx in 0..kw {
                        let (ox_lo, ox_hi) = valid_range(ow, sw, kx, pl, wd);
                        let r = (cc * kh + ky) * kw + kx;
                        let col = &mut cols[r * p..(r + 1) * p];
                        col.iter_mut().for_each(|v| *v = T::ZERO);
                        for oy in oy_lo..oy_hi {
                            let iy = oy * sh + ky - pt;
                            let xrow = &xg[(cc * h + iy) * wd..(cc * h + iy + 1) * wd];
                            for ox in ox_lo..ox_hi {
                                col[oy * ow + ox] = xrow[ox * sw + kx - pl];
                            }
                        }
                    }
                }
            }
        }
        let cols: &[T] = if pointwise { xg } else { &cols };
        for o in g * opg..(g + 1) * opg {
            let yo = &mut y[o * p..(o + 1) * p];
            if !bias.is_empty() {
                yo.iter_mut().for_each(|v| *v = bias[o]);
            }
            let wo = &w[o * rows..(o + 1) * rows];
            for (r, &wv) in wo.iter().enumerate() {
                for (yv, &xv) in yo.iter_mut().zip(&cols[r * p..(r + 1) * p]) {
                    *yv = yv.madd(wv, xv);
                }
            }
        }
    }
    y
}

/// Direct convolution (used for depthwise layers).
#[allow(clippy::needless_range_loop)]
fn conv2d_direct<T: Elem>(c: &Conv2d, w: &[T], bias: &[T], x: &[T]) -> Vec<T> {
    let [ci, h, wd] = c.in_shape;
    let [co, oh, ow] = c.out_shape;
    let [kh, kw] = c.kernel;
    let [sh, sw] = c.stride;
    let [pt, pl, _, _] = c.pads;
    let cpg = ci / c.groups;
    let opg = co / c.groups;
    let mut y = vec![T::ZERO; co * oh * ow];
    for o in 0..co {
        let g = o / opg;
        let yo = &mut y[o * oh * ow..(o + 1) * oh * ow];
        if !bias.is_empty() {
            yo.iter_mut().for_each(|v| *v = bias[o]);
        }
        for cc in 0..cpg {
            let cin = g * cpg + cc;
            let xc = &x[cin * h * wd..(cin + 1) * h * wd];
            for ky in 0..kh {
                let (oy_lo, oy_hi) = valid_range(oh, sh, ky, pt, h);
                for kx in 0..kw {
                    let wv = w[((o * cpg + cc) * kh + ky) * kw + kx];
                    let (ox_lo, ox_hi) = valid_range(ow, sw, kx, pl, wd);
                    if ox_lo >= ox_hi {
                        continue;
                    }
                    for oy in oy_lo..oy_hi {
                        let iy = oy * sh + ky - pt;
                        let xrow = &xc[iy * wd..(iy + 1) * wd];
                        let yrow = &mut yo[oy * ow..(oy + 1) * ow];
                        if sw == 1 {
                            let ix0 = ox_lo + kx - pl;
                            let n = ox_hi - ox_lo;
                            for (yv, &xv) in yrow[ox_lo..ox_hi].iter_mut().zip(&xrow[ix0..ix0 + n])
                            {
                                *yv = yv.madd(wv, xv);
                            }
                        } else {
                            for ox in ox_lo..ox_hi {
                                let ix = ox * sw + kx - pl;
                                yrow[ox] = yrow[ox].madd(wv, xrow[ix]);
                            }
                        }
                    }
                }
            }
        }
    }
    y
}

/// `y[r, o] = b[o] + Σ_i x[r, i] · W[o, i]`; `bias` may be empty.
pub(crate) fn linear<T: Elem>(
    rows: usize,
    inf: usize,
    outf: usize,
    w: &[T],
    bias: &[T],
    x: &[T],
) -> Vec<T> {
    let mut y = vec![T::ZERO; rows * outf];
    for r in 0..rows {
        let xr = &x[r * inf..(r + 1) * inf];
        for o in 0..outf {
            let wr = &w[o * inf..(o + 1) * inf];
            let mut acc = if bias.is_empty() { T::ZERO } else { bias[o] };
            for (&wv, &xv) in wr.iter().zip(xr) {
                acc = acc.madd(wv, xv);
            }
            y[r * outf + o] = acc;
        }
    }
    y
}

/// Batched `[B, M, K] × [B, K, N]`.
pub(crate) fn matmul<T: Elem>(
    batch: usize,
    m: usize,
    k: usize,
    n: usize,
    a: &[T],
    b: &[T],
) -> Vec<T> {
    let mut y = vec![T::ZERO; batch * m * n];
    for bi in 0..batch {
        let ab = &a[bi * m * k..(bi + 1) * m * k];
        let bb = &b[bi * k * n..(bi + 1) * k * n];
        let yb = &mut y[bi * m * n..(bi + 1) * m * n];
        for i in 0..m {
            let yr = &mut yb[i * n..(i + 1) * n];
            for kk in 0..k {
                let av = ab[i * k + kk];
                for (yv, &bv) in yr.iter_mut().zip(&bb[kk * n..(kk + 1) * n]) {
                    *yv = yv.madd(av, bv);
                }
            }
        }
    }
    y
}

/// For each pooling window: the flat input indices of its valid (unpadded) positions, and the
/// window size including padding.
pub fn pool_windows(
    p: &Pool,
    c: usize,
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
) -> Vec<(Vec<usize>, usize)> {
    let mut out = Vec::with_capacity(c * oh * ow);
    let [kh, kw] = p.kernel;
    let [sh, sw] = p.stride;
    let [pt, pl, pb, pr] = p.pads;
    for ch in 0..c {
        for oy in 0..oh {
            for ox in 0..ow {
                let mut idx = Vec::with_capacity(kh * kw);
                let y0 = oy * sh;
                let x0 = ox * sw;
                // Window extent clipped to the padded input (as ONNX counts padding).
                let yend = (y0 + kh).min(h + pt + pb);
                let xend = (x0 + kw).min(w + pl + pr);
                for py in y0..yend {
                    for px in x0..xend {
                        if py >= pt && py - pt < h && px >= pl && px - pl < w {
                            idx.push(ch * h * w + (py - pt) * w + (px - pl));
                        }
                    }
                }
                out.push((idx, (yend - y0) * (xend - x0)));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Schoolbook convolution over i128 with explicit zero padding: the oracle.
    fn naive(c: &Conv2d, w: &[i64], b: &[i64], x: &[i64]) -> Vec<i128> {
        let [ci, h, wd] = c.in_shape;
        let [co, oh, ow] = c.out_shape;
        let [kh, kw] = c.kernel;
        let cpg = ci / c.groups;
        let opg = co / c.groups;
        let mut y = vec![0i128; co * oh * ow];
        for o in 0..co {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut acc = b[o] as i128;
                    for cc in 0..cpg {
                        let cin = (o / opg) * cpg + cc;
                        for ky in 0..kh {
                            for kx in 0..kw {
                                let iy = (oy * c.stride[0] + ky) as i64 - c.pads[0] as i64;
                                let ix = (ox * c.stride[1] + kx) as i64 - c.pads[1] as i64;
                                if iy < 0 || ix < 0 || iy >= h as i64 || ix >= wd as i64 {
                                    continue;
                                }
                                let xv = x[(cin * h + iy as usize) * wd + ix as usize];
                                acc +=
                                    (w[((o * cpg + cc) * kh + ky) * kw + kx] as i128) * xv as i128;
                            }
                        }
                    }
                    y[(o * oh + oy) * ow + ox] = acc;
                }
            }
        }
        y
    }

    fn lcg(state: &mut u64) -> i64 {
        *state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((*state >> 33) as i64 % 2001) - 1000
    }

    #[test]
    fn conv_matches_schoolbook_over_the_ring() {
        let mut st = 7u64;
        // (C, H, W, O, k, stride, pads [t, l, b, r], groups)
        let cases = [
            (3, 8, 8, 4, 3, 1, [1, 1, 1, 1], 1),
            (4, 9, 7, 6, 3, 2, [1, 1, 1, 1], 1),
            (4, 6, 6, 4, 3, 1, [1, 1, 1, 1], 4), // depthwise
            (6, 5, 5, 6, 3, 2, [0, 1, 2, 0], 3), // grouped, asymmetric padding
            (8, 4, 4, 5, 1, 1, [0, 0, 0, 0], 1), // pointwise
            (3, 10, 10, 2, 7, 2, [3, 3, 3, 3], 1),
        ];
        for (ci, h, wd, co, k, s, pads, groups) in cases {
            let oh = (h + pads[0] + pads[2] - k) / s + 1;
            let ow = (wd + pads[1] + pads[3] - k) / s + 1;
            let conv = Conv2d {
                in_shape: [ci, h, wd],
                out_shape: [co, oh, ow],
                kernel: [k, k],
                stride: [s, s],
                pads,
                groups,
                weight: vec![0.0; co * (ci / groups) * k * k],
                bias: vec![0.0; co],
            };
            let w: Vec<i64> = (0..conv.weight.len()).map(|_| lcg(&mut st)).collect();
            let b: Vec<i64> = (0..co).map(|_| lcg(&mut st) * 1000).collect();
            let x: Vec<i64> = (0..ci * h * wd).map(|_| lcg(&mut st) * 1_000_000).collect();
            let want = naive(&conv, &w, &b, &x);
            let u = |v: &[i64]| v.iter().map(|&a| a as u64).collect::<Vec<u64>>();
            let got = conv2d(&conv, &u(&w), &u(&b), &u(&x));
            for (g, e) in got.iter().zip(&want) {
                assert_eq!(*g, *e as u64, "case C={ci} O={co} k={k} s={s} g={groups}");
            }
            // The float path runs the same loops.
            let f = |v: &[i64]| v.iter().map(|&a| a as f32 / 1e6).collect::<Vec<f32>>();
            let wf: Vec<f32> = w.iter().map(|&a| a as f32).collect();
            let bf: Vec<f32> = b.iter().map(|&a| a as f32 / 1e6).collect();
            let gotf = conv2d(&conv, &wf, &bf, &f(&x));
            for (g, e) in gotf.iter().zip(&want) {
                let e = *e as f64 / 1e6;
                assert!(
                    (*g as f64 - e).abs() <= 1e-3 * e.abs().max(1.0),
                    "{g} vs {e}"
                );
            }
        }
    }

    #[test]
    fn linear_and_matmul_match_schoolbook() {
        let mut st = 11u64;
        let (rows, inf, outf) = (3, 7, 5);
        let w: Vec<i64> = (0..inf * outf).map(|_| lcg(&mut st)).collect();
        let b: Vec<i64> = (0..outf).map(|_| lcg(&mut st)).collect();
        let x: Vec<i64> = (0..rows * inf).map(|_| lcg(&mut st) << 40).collect();
        let u = |v: &[i64]| v.iter().map(|&a| a as u64).collect::<Vec<u64>>();
        let y = linear(rows, inf, outf, &u(&w), &u(&b), &u(&x));
        for r in 0..rows {
            for o in 0..outf {
                let e: i128 = b[o] as i128
                    + (0..inf)
                        .map(|i| w[o * inf + i] as i128 * x[r * inf + i] as i128)
                        .sum::<i128>();
                assert_eq!(y[r * outf + o], e as u64);
            }
        }
        let (bt, m, k, n) = (2, 3, 4, 5);
        let a: Vec<i64> = (0..bt * m * k).map(|_| lcg(&mut st)).collect();
        let bb: Vec<i64> = (0..bt * k * n).map(|_| lcg(&mut st)).collect();
        let y = matmul(bt, m, k, n, &u(&a), &u(&bb));
        for q in 0..bt {
            for i in 0..m {
                for j in 0..n {
                    let e: i64 = (0..k)
                        .map(|t| a[(q * m + i) * k + t] * bb[(q * k + t) * n + j])
                        .sum();
                    assert_eq!(y[(q * m + i) * n + j], e as u64);
                }
            }
        }
    }

    #[test]
    fn pool_windows_skip_padding() {
        let p = Pool {
            kernel: [3, 3],
            stride: [2, 2],
            pads: [1, 1, 1, 1],
            count_include_pad: false,
        };
        // 4x4 input -> 2x2 output; the top-left window covers rows/cols {-1, 0, 1}.
        let w = pool_windows(&p, 1, 4, 4, 2, 2);
        assert_eq!(w[0].0, vec![0, 1, 4, 5]);
        assert_eq!(w[0].1, 9);
        assert_eq!(w[3].0, vec![5, 6, 7, 9, 10, 11, 13, 14, 15]);
    }
}
