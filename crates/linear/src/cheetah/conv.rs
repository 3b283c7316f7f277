//! Cheetah's HomConv coefficient encoding [Cheetah §4.1], with channel and spatial partitioning.
//!
//! A tile of the zero-padded input, `c_t` channels × `h_t` rows × `w_t` columns, is one polynomial
//! with x[c·h_t·w_t + r·w_t + q] = X[c, r, q]. The filter of output channel m restricted to the
//! tile's channels is w[O − c·h_t·w_t − l·w_t − l′] = K[m, c, l, l′] with
//! O = h_t·w_t·(c_t − 1) + w_t·(kh − 1) + kw − 1. Then coefficient O + i·w_t + j of x·w in
//! `Z[X]/(X^N + 1)` is the stride-1 ("valid") convolution output (i, j) of the tile, for
//! i ≤ h_t − kh, j ≤ w_t − kw, provided c_t·h_t·w_t ≤ N:
//! * a + b = O + i·w_t + j with a = c·h_t·w_t + r·w_t + q and b = O − c′·h_t·w_t − l·w_t − l′
//!   forces c = c′, r = i + l, q = j + l′ because |q − l′ − j| < w_t and |r − l − i| < h_t;
//! * no product term wraps onto those coefficients: a + b ≥ N + O would need a ≥ N.
//!
//! Interleaved variant (channel-minor, as in BumbleBee's interleaving): x[(r·w_t + q)·c_t + c],
//! w[(B − l·w_t − l′)·c_t − c] with B = w_t·(kh − 1) + kw − 1 (negative indices wrap with a sign,
//! X^{−c} = −X^{N−c}); output (i, j) lands on coefficient (B + i·w_t + j)·c_t, a multiple of c_t:
//! * equal sums force c = c′ since |c − c′| < c_t, then r = i + l, q = j + l′ as above;
//! * a + b ≥ −(c_t − 1) while a target minus N is ≤ c_t·(h_t·w_t − 1) − N ≤ −c_t, and
//!   a + b ≤ c_t·h_t·w_t − 1 + B·c_t < N + target: no wrapped term reaches a target.
//!
//! With c_t a power of two, the outputs of c_t such products can be packed into one ciphertext
//! (a partial trace keeps multiples of c_t; see `cheetah::pack`).
//!
//! Tiles overlap by kh − 1 rows and kw − 1 columns, so stride-1 outputs are partitioned among
//! spatial tiles; a stride-s layer keeps the outputs (i·s, j·s). Output channels of other groups
//! have zero filter taps on this tile's channels (grouped and depthwise convolutions).

use crate::layer::{Conv2dSpec, Ring};

/// A partition of a convolution's padded input into polynomial-sized tiles.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ConvTiling {
    pub n: usize,
    /// Channels per tile.
    pub c_t: usize,
    /// Padded-input rows and columns per tile (including the kh − 1 / kw − 1 overlap).
    pub h_t: usize,
    pub w_t: usize,
    /// Number of channel tiles and of spatial tiles along each axis.
    pub n_c: usize,
    pub n_h: usize,
    pub n_w: usize,
    /// Channel-minor (interleaved) encoding: outputs at multiples of c_t.
    pub interleaved: bool,
}

/// Stride-1 output rows and columns that are needed: (out − 1)·stride + 1.
pub(crate) fn needed(spec: &Conv2dSpec) -> (usize, usize) {
    (
        (spec.out_h() - 1) * spec.stride + 1,
        (spec.out_w() - 1) * spec.stride + 1,
    )
}

/// The balanced row splits `h_ts` plus the tallest full-width tile that fits N with c_t
/// channels: its last spatial tile is short, which costs nothing extra in a truncated query
/// (only the rows its outputs read are sent).
pub(crate) fn with_tallest(h_ts: &[usize], spec: &Conv2dSpec, n: usize, c_t: usize) -> Vec<usize> {
    let (hf, wf) = needed(spec);
    let (hn, wn) = (hf + spec.kh - 1, wf + spec.kw - 1);
    let mut out = h_ts.to_vec();
    let tallest = (n / (c_t * wn)).min(hn);
    if tallest >= spec.kh && !out.contains(&tallest) {
        out.push(tallest);
    }
    out
}

/// Adds the term v·X^e (−N < e < N) to a polynomial of Z[X]/(X^N + 1) holding zero there: a
/// negative exponent is stored as −v at N + e (X^e = −X^{N+e}).
pub(crate) fn put_monomial(poly: &mut [i64], e: isize, v: i64) {
    if e >= 0 {
        poly[e as usize] = v;
    } else {
        poly[(poly.len() as isize + e) as usize] = v.wrapping_neg();
    }
}

/// Calls put(r, q, value) for every position (r, q) < (h_t, w_t) of an input tile of channel
/// `ch` whose top-left corner is padded position (r0, q0) and which lies inside the unpadded
/// input x (C×H×W); zero-padding positions are skipped.
pub(crate) fn read_tile(
    spec: &Conv2dSpec,
    x: &[u64],
    ch: usize,
    (r0, q0): (usize, usize),
    (h_t, w_t): (usize, usize),
    mut put: impl FnMut(usize, usize, u64),
) {
    let p = spec.padding;
    for r in (p.saturating_sub(r0)..h_t).take_while(|r| r0 + r < p + spec.h) {
        let row = &x[(ch * spec.h + r0 + r - p) * spec.w..][..spec.w];
        for q in (p.saturating_sub(q0)..w_t).take_while(|q| q0 + q < p + spec.w) {
            put(r, q, row[q0 + q - p]);
        }
    }
}

/// (value, multiplicity) of the values in `v`.
pub(crate) fn histogram(v: &[usize]) -> Vec<(usize, usize)> {
    let mut out: Vec<(usize, usize)> = Vec::new();
    for &x in v {
        match out.iter_mut().find(|e| e.0 == x) {
            Some(e) => e.1 += 1,
            None => out.push((x, 1)),
        }
    }
    out
}

impl ConvTiling {
    /// A tiling with the given tile sizes, or `None` if it does not fit N or the kernel.
    pub fn new(
        spec: &Conv2dSpec,
        n: usize,
        c_t: usize,
        h_t: usize,
        w_t: usize,
        interleaved: bool,
    ) -> Option<ConvTiling> {
        let (hf, wf) = needed(spec);
        let (hn, wn) = (hf + spec.kh - 1, wf + spec.kw - 1);
        if c_t == 0
            || (c_t > spec.c && !interleaved)
            || h_t < spec.kh
            || w_t < spec.kw
            || h_t > hn
            || w_t > wn
        {
            return None;
        }
        if c_t.checked_mul(h_t)?.checked_mul(w_t)? > n {
            return None;
        }
        Some(ConvTiling {
            n,
            c_t,
            h_t,
            w_t,
            n_c: spec.c.div_ceil(c_t),
            n_h: hf.div_ceil(h_t - spec.kh + 1),
            n_w: wf.div_ceil(w_t - spec.kw + 1),
            interleaved,
        })
    }

    /// Stride-1 output rows / columns computed per spatial tile.
    pub fn step_h(&self, spec: &Conv2dSpec) -> usize {
        self.h_t - spec.kh + 1
    }
    pub fn step_w(&self, spec: &Conv2dSpec) -> usize {
        self.w_t - spec.kw + 1
    }

    /// O = h_t·w_t·(c_t − 1) + w_t·(kh − 1) + kw − 1 [Cheetah §4.1].
    pub fn offset(&self, spec: &Conv2dSpec) -> usize {
        self.h_t * self.w_t * (self.c_t - 1) + self.w_t * (spec.kh - 1) + spec.kw - 1
    }

    pub fn input_tiles(&self) -> usize {
        self.n_c * self.n_h * self.n_w
    }

    pub fn spatial_tiles(&self) -> usize {
        self.n_h * self.n_w
    }

    /// Input tile polynomial (ci, hi, wi) from the unpadded input x (C×H×W, in the ring).
    pub fn encode_input(
        &self,
        spec: &Conv2dSpec,
        x: &[u64],
        ci: usize,
        hi: usize,
        wi: usize,
    ) -> Vec<u64> {
        let mut poly = vec![0u64; self.n];
        let (r0, q0) = (hi * self.step_h(spec), wi * self.step_w(spec));
        for cc in 0..self.c_t {
            let ch = ci * self.c_t + cc;
            if ch >= spec.c {
                break;
            }
            read_tile(spec, x, ch, (r0, q0), (self.h_t, self.w_t), |r, q, v| {
                let idx = if self.interleaved {
                    (r * self.w_t + q) * self.c_t + cc
                } else {
                    (cc * self.h_t + r) * self.w_t + q
                };
                poly[idx] = v;
            });
        }
        poly
    }

    /// Channels of tile `ci` that output channel m reads (its group), as a range of tile offsets.
    fn group_overlap(&self, spec: &Conv2dSpec, m: usize, ci: usize) -> Option<(usize, usize)> {
        let cg = spec.c_per_group();
        let g = spec.group_of_output(m);
        let (lo, hi) = (g * cg, (g + 1) * cg);
        let (t_lo, t_hi) = (ci * self.c_t, ((ci + 1) * self.c_t).min(spec.c));
        let (a, b) = (lo.max(t_lo), hi.min(t_hi));
        (a < b).then(|| (a - t_lo, b - t_lo))
    }

    /// Whether output channel m has any filter tap on channel tile ci.
    pub fn touches(&self, spec: &Conv2dSpec, m: usize, ci: usize) -> bool {
        self.group_overlap(spec, m, ci).is_some()
    }

    /// Σ over output channels of the channel tiles each touches: group g's input channels
    /// [g·cg, (g+1)·cg) meet the tiles ⌊g·cg / c_t⌋ ..= ⌊((g+1)·cg − 1) / c_t⌋, the same for its
    /// m/groups outputs (equal to counting [`ConvTiling::touches`] over every (m, tile)).
    pub fn touched_tiles(&self, spec: &Conv2dSpec) -> usize {
        let (cg, mg) = (spec.c_per_group(), spec.m_per_group());
        (0..spec.groups)
            .map(|g| ((g + 1) * cg - 1) / self.c_t - g * cg / self.c_t + 1)
            .sum::<usize>()
            * mg
    }

    /// Filter polynomial of output channel m on channel tile ci, as signed integers (the weights'
    /// signed lift from the ring), or `None` when m has no tap on that tile.
    pub fn encode_filter(
        &self,
        spec: &Conv2dSpec,
        ring: Ring,
        weights: &[u64],
        m: usize,
        ci: usize,
    ) -> Option<Vec<i64>> {
        let (a, b) = self.group_overlap(spec, m, ci)?;
        let cg = spec.c_per_group();
        let g = spec.group_of_output(m);
        let o = self.offset(spec);
        let mut poly = vec![0i64; self.n];
        for cc in a..b {
            let cin = ci * self.c_t + cc - g * cg; // channel index inside the group
            for l in 0..spec.kh {
                for l2 in 0..spec.kw {
                    let wv = weights[((m * cg + cin) * spec.kh + l) * spec.kw + l2];
                    let v = ring.signed(wv);
                    if self.interleaved {
                        let base = self.w_t * (spec.kh - 1) + spec.kw - 1;
                        let idx = ((base - l * self.w_t - l2) * self.c_t) as isize - cc as isize;
                        put_monomial(&mut poly, idx, v);
                    } else {
                        poly[o - cc * self.h_t * self.w_t - l * self.w_t - l2] = v;
                    }
                }
            }
        }
        Some(poly)
    }

    /// Output rows (stride-s indices i) whose stride-1 row i·s falls in spatial tile row hi.
    pub(crate) fn kept_range(
        step: usize,
        stride: usize,
        out: usize,
        tile: usize,
    ) -> std::ops::Range<usize> {
        let lo = (tile * step).div_ceil(stride);
        let hi = ((tile + 1) * step).div_ceil(stride).min(out);
        lo..hi.max(lo)
    }

    /// Number of outputs of one channel held by spatial tile (hi, wi).
    pub fn kept(&self, spec: &Conv2dSpec, hi: usize, wi: usize) -> usize {
        Self::kept_range(self.step_h(spec), spec.stride, spec.out_h(), hi).len()
            * Self::kept_range(self.step_w(spec), spec.stride, spec.out_w(), wi).len()
    }

    /// (coefficient index, output index i·W_out + j within a channel) of every output held by
    /// spatial tile (hi, wi), in increasing coefficient order.
    pub fn output_positions(&self, spec: &Conv2dSpec, hi: usize, wi: usize) -> Vec<(usize, usize)> {
        let (sh, sw) = (self.step_h(spec), self.step_w(spec));
        let o = self.offset(spec);
        let wo = spec.out_w();
        let mut out = Vec::with_capacity(self.kept(spec, hi, wi));
        for i in Self::kept_range(sh, spec.stride, spec.out_h(), hi) {
            let r = i * spec.stride - hi * sh;
            for j in Self::kept_range(sw, spec.stride, wo, wi) {
                let q = j * spec.stride - wi * sw;
                let coef = if self.interleaved {
                    (self.w_t * (spec.kh - 1) + spec.kw - 1 + r * self.w_t + q) * self.c_t
                } else {
                    o + r * self.w_t + q
                };
                out.push((coef, i * wo + j));
            }
        }
        out
    }

    /// Tile-local padded rows (or columns, with the column arguments) that some kept output of
    /// spatial tile `tile` reads: ∪ over its kept stride-1 rows r of [r, r + k), increasing.
    pub(crate) fn read_lines(
        step: usize,
        stride: usize,
        out: usize,
        tile: usize,
        k: usize,
    ) -> Vec<usize> {
        let mut hit = vec![false; step + k - 1];
        for i in Self::kept_range(step, stride, out, tile) {
            let r = i * stride - tile * step;
            hit[r..r + k].iter_mut().for_each(|h| *h = true);
        }
        (0..hit.len()).filter(|&r| hit[r]).collect()
    }

    /// Channel offsets of tile `ci` that some filter reads (the union of its groups' overlaps).
    fn read_channels(&self, spec: &Conv2dSpec, ci: usize) -> Vec<usize> {
        let mut hit = vec![false; self.c_t];
        for g in 0..spec.groups {
            if let Some((a, b)) = self.group_overlap(spec, g * spec.m_per_group(), ci) {
                hit[a..b].iter_mut().for_each(|h| *h = true);
            }
        }
        (0..self.c_t).filter(|&c| hit[c]).collect()
    }

    /// The query support S of input tile (ci, hi, wi), increasing: the coefficients of the
    /// input polynomial that some kept output of the tile depends on.
    ///
    /// [truncated queries] Output (r, q) of a filter of this tile sits at O + r·w_t + q (plain)
    /// or (B + r·w_t + q)·c_t (interleaved), and the filter's structural support is
    /// O − c·h_t·w_t − l·w_t − l′ resp. (B − l·w_t − l′)·c_t − c (mod N) for its group's
    /// channels c, l < kh, l′ < kw. Their difference, the input position a kept output reads
    /// through that tap, is c·h_t·w_t + (r + l)·w_t + (q + l′) resp. ((r + l)·w_t + q + l′)·c_t + c,
    /// in [0, c_t·h_t·w_t) ⊆ [0, N) (no wrap). So S = {channels some filter reads} × {rows r + l}
    /// × {columns q + l′} over the kept (r, q), padding positions included, and it is exactly
    /// ∪_m K ⊖ supp(ŵ_m): minimal for any weights that may be nonzero at every tap.
    pub fn query_support(&self, spec: &Conv2dSpec, ci: usize, hi: usize, wi: usize) -> Vec<usize> {
        let chans = self.read_channels(spec, ci);
        let rows = Self::read_lines(self.step_h(spec), spec.stride, spec.out_h(), hi, spec.kh);
        let cols = Self::read_lines(self.step_w(spec), spec.stride, spec.out_w(), wi, spec.kw);
        let mut out = Vec::with_capacity(chans.len() * rows.len() * cols.len());
        for &c in &chans {
            for &r in &rows {
                for &q in &cols {
                    out.push(if self.interleaved {
                        (r * self.w_t + q) * self.c_t + c
                    } else {
                        (c * self.h_t + r) * self.w_t + q
                    });
                }
            }
        }
        out.sort_unstable();
        out
    }

    /// Number of lines [`Self::read_lines`] returns, in closed form: the cnt kept lines r₀ + j·s
    /// read [r₀ + j·s, r₀ + j·s + k), contiguous when s ≤ k, disjoint otherwise.
    pub(crate) fn read_len(step: usize, stride: usize, out: usize, tile: usize, k: usize) -> usize {
        match Self::kept_range(step, stride, out, tile).len() {
            0 => 0,
            cnt => (cnt - 1) * stride.min(k) + k,
        }
    }

    /// Number of channels [`Self::read_channels`] returns: every real channel of the tile (each
    /// channel belongs to a group, and every group has an output channel).
    fn read_channel_count(&self, spec: &Conv2dSpec, ci: usize) -> usize {
        self.c_t.min(spec.c - ci * self.c_t)
    }

    /// |S| of every input tile, in input order (ci-major, then hi, then wi), in closed form.
    pub fn query_support_lens(&self, spec: &Conv2dSpec) -> Vec<usize> {
        let (rows, cols) = self.line_counts(spec);
        let mut out = Vec::with_capacity(self.input_tiles());
        for ci in 0..self.n_c {
            let ch = self.read_channel_count(spec, ci);
            for &r in &rows {
                for &q in &cols {
                    out.push(ch * r * q);
                }
            }
        }
        out
    }

    /// Rows read per spatial tile row and columns read per spatial tile column.
    fn line_counts(&self, spec: &Conv2dSpec) -> (Vec<usize>, Vec<usize>) {
        let rows = (0..self.n_h)
            .map(|hi| Self::read_len(self.step_h(spec), spec.stride, spec.out_h(), hi, spec.kh))
            .collect();
        let cols = (0..self.n_w)
            .map(|wi| Self::read_len(self.step_w(spec), spec.stride, spec.out_w(), wi, spec.kw))
            .collect();
        (rows, cols)
    }

    /// The multiset {|S|} over the input tiles as (size, multiplicity) pairs, without visiting
    /// every tile: channel, row and column counts each take few distinct values.
    pub fn query_support_counts(&self, spec: &Conv2dSpec) -> Vec<(usize, usize)> {
        let (rows, cols) = self.line_counts(spec);
        let last = spec.c - (self.n_c - 1) * self.c_t;
        let chans = if last == self.c_t {
            vec![(self.c_t, self.n_c)]
        } else {
            vec![(self.c_t, self.n_c - 1), (last, 1)]
        };
        let (rows, cols) = (histogram(&rows), histogram(&cols));
        let mut out = Vec::new();
        for &(ch, a) in chans.iter().filter(|c| c.1 > 0) {
            for &(r, b) in &rows {
                for &(q, c) in &cols {
                    out.push((ch * r * q, a * b * c));
                }
            }
        }
        out
    }

    /// Candidate tilings: balanced channel splits × balanced row splits, widest columns that fit.
    pub fn candidates(spec: &Conv2dSpec, n: usize) -> Vec<ConvTiling> {
        let (hf, wf) = needed(spec);
        let mut c_ts: Vec<usize> = (1..=spec.c).map(|k| spec.c.div_ceil(k)).collect();
        c_ts.dedup();
        let mut h_ts: Vec<usize> = (1..=hf).map(|k| hf.div_ceil(k) + spec.kh - 1).collect();
        h_ts.dedup();
        let mut out = Vec::new();
        for &c_t in &c_ts {
            for h_t in with_tallest(&h_ts, spec, n, c_t) {
                let room = n / (c_t * h_t);
                if room < spec.kw {
                    continue;
                }
                let w_max = room.min(wf + spec.kw - 1);
                // Balance the column split so the tiles are as even as possible.
                let n_w = wf.div_ceil(w_max - spec.kw + 1);
                let w_t = wf.div_ceil(n_w) + spec.kw - 1;
                if let Some(t) = ConvTiling::new(spec, n, c_t, h_t, w_t, false) {
                    out.push(t);
                }
            }
        }
        out
    }

    /// Candidate interleaved tilings: c_t a power of two (≥ 2), balanced row splits.
    pub fn interleaved_candidates(spec: &Conv2dSpec, n: usize) -> Vec<ConvTiling> {
        let (hf, wf) = needed(spec);
        let mut h_ts: Vec<usize> = (1..=hf).map(|k| hf.div_ceil(k) + spec.kh - 1).collect();
        h_ts.dedup();
        let mut out = Vec::new();
        let mut c_t = 2;
        while c_t <= n / (spec.kh * spec.kw) && c_t < 2 * spec.c.max(spec.m) {
            for h_t in with_tallest(&h_ts, spec, n, c_t) {
                let room = n / (c_t * h_t);
                if room < spec.kw {
                    continue;
                }
                let w_max = room.min(wf + spec.kw - 1);
                let n_w = wf.div_ceil(w_max - spec.kw + 1);
                let w_t = wf.div_ceil(n_w) + spec.kw - 1;
                // c_t > C pads channels with zeros: it still lets c_t output channels share a
                // response ciphertext.
                if let Some(t) = ConvTiling::new(spec, n, c_t, h_t, w_t, true) {
                    out.push(t);
                }
            }
            c_t *= 2;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The closed-form count of (output channel, channel tile) pairs equals counting
    /// `touches`, over every candidate tiling of dense, grouped and depthwise convolutions.
    #[test]
    fn touched_tiles_match_the_pairwise_count() {
        let mut checked = 0;
        for (c, m, hw, groups) in [
            (16, 16, 32, 1),
            (32, 32, 16, 32),
            (96, 96, 16, 96),
            (144, 144, 8, 144),
            (960, 960, 4, 960),
            (48, 96, 8, 4),
            (60, 90, 8, 3),
            (64, 128, 4, 64),
        ] {
            let spec = Conv2dSpec::square(c, hw, m, 3, 1, 1, groups);
            for n in [4096, 8192] {
                for t in ConvTiling::candidates(&spec, n) {
                    let want: usize = (0..spec.m)
                        .map(|o| (0..t.n_c).filter(|&ci| t.touches(&spec, o, ci)).count())
                        .sum();
                    assert_eq!(t.touched_tiles(&spec), want, "{spec:?} {t:?}");
                    checked += 1;
                }
            }
        }
        assert!(checked > 20, "only {checked} tilings");
    }
}
