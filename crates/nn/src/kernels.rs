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

/// Direct convolution `y = W * x + b` (NCHW, batch 1); `bias` may be empty (no bias).
#[allow(clippy::needless_range_loop)]
pub(crate) fn conv2d<T: Elem>(c: &Conv2d, w: &[T], bias: &[T], x: &[T]) -> Vec<T> {
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
