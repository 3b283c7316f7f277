//! Cheetah's HomFC [Cheetah §4.2]: the out×in matrix is cut into blocks of d1 rows × d0 columns
//! with d0·d1 ≤ N. Input chunk j is `x[k] = u[j·d0 + k]` (k < d0); the block (i, j) is the
//! polynomial w[r·d0 + d0 − 1 − k] = W[i·d1 + r, j·d0 + k]; coefficient r·d0 + d0 − 1 of x·w is
//! Σ_k W[i·d1 + r, j·d0 + k]·u[j·d0 + k]. Exactness: a + b = r·d0 + d0 − 1 with a = k′ < d0 and
//! b = r′·d0 + d0 − 1 − k forces r = r′, k = k′; a wrapped term a + b − N < d0 − 1 never lands on
//! a position ≥ d0 − 1. Summing the products over j gives output block i.
//!
//! Shifted variant (for packing): the block is multiplied by X^{−(d0−1)}, i.e.
//! w[r·d0 − k] (index −k wraps to N − k with a sign), so output r lands on r·d0, a multiple of d0:
//! a + b ∈ (−d0, N − d0 + d0 − 1] and targets are ≤ N − d0, so no wrapped term reaches one.
//!
//! Strided variant (for truncated queries): input chunk j at stride d1, x[k·d1] = u[j·d0 + k];
//! block w[(d0 − 1 − k)·d1 + r] = W[i·d1 + r, j·d0 + k]; output r at (d0 − 1)·d1 + r, contiguous.
//! Exactness: a + b = (d0 − 1 + k′ − k)·d1 + r with a = k′·d1, b = (d0 − 1 − k)·d1 + r equals
//! (d0 − 1)·d1 + r″ (r, r″ < d1) only for k = k′, r = r″; a + b ≤ (2d0 − 1)·d1 − 1 < N + (d0 − 1)·d1
//! (d0·d1 ≤ N), so no wrapped term reaches a target.
//!
//! Query support [truncated queries]: output r′ of block i reads input position
//! target − support = (r′ − r)·d0 + k (block / shifted; r, r′ < rows of block i, k < columns of
//! chunk j, mod N) or k·d1 + (r′ − r) (strided). Over every block: the first block has the most
//! rows K, so S_j = {δ·d0 + k : |δ| < K, k < C_j} (≈ (2K − 1)·d0 coefficients) resp.
//! {k·d1 + ρ : |ρ| < K, k < C_j} ((C_j − 1)·d1 + 2K − 1 when C_j·d1 ≤ N): about half as many.

use crate::layer::{FcSpec, Ring};

/// A block split of an FC layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FcBlocks {
    pub n: usize,
    /// Inputs per input ciphertext.
    pub d0: usize,
    /// Outputs per output ciphertext.
    pub d1: usize,
    pub n_in: usize,
    pub n_out: usize,
    /// Outputs at multiples of d0 (for packing; d0 a power of two).
    pub shifted: bool,
    /// Input at stride d1, outputs contiguous (the strided variant; never with `shifted`).
    #[serde(default)]
    pub strided: bool,
}

/// |{r·spacing + v mod n : r < runs, v < len}| on a bitmap (runs with gaps that wrap past n),
/// memoized: the planner asks for the same few shapes for every parameter set and every call.
fn wrapped_runs_len(n: usize, runs: usize, len: usize, spacing: usize) -> usize {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static CACHE: OnceLock<Mutex<HashMap<[usize; 4], usize>>> = OnceLock::new();
    let key = [n, runs, len, spacing];
    let cache = CACHE.get_or_init(Default::default);
    if let Some(&v) = cache.lock().expect("support cache").get(&key) {
        return v;
    }
    let mut hit = vec![false; n];
    for r in 0..runs {
        for v in 0..len {
            hit[(r * spacing + v) % n] = true;
        }
    }
    let count = hit.iter().filter(|&&h| h).count();
    cache.lock().expect("support cache").insert(key, count);
    count
}

impl FcBlocks {
    /// Coefficients one row's block product spans, d0·d1: `Layout::Rows` stacks rows at
    /// multiples of it.
    pub fn row_span(&self) -> usize {
        self.d0 * self.d1
    }

    pub fn new(spec: &FcSpec, n: usize, d0: usize, d1: usize, shifted: bool) -> Option<FcBlocks> {
        if d0 == 0
            || d1 == 0
            || (d0 > spec.inputs && !shifted)
            || d1 > spec.outputs
            || d0.checked_mul(d1)? > n
        {
            return None;
        }
        Some(FcBlocks {
            n,
            d0,
            d1,
            n_in: spec.inputs.div_ceil(d0),
            n_out: spec.outputs.div_ceil(d1),
            shifted,
            strided: false,
        })
    }

    /// The strided variant of the block split (d0, d1) (see the module comment).
    pub fn new_strided(spec: &FcSpec, n: usize, d0: usize, d1: usize) -> Option<FcBlocks> {
        FcBlocks::new(spec, n, d0, d1, false).map(|b| FcBlocks { strided: true, ..b })
    }

    /// The strided variant of every balanced split ([`FcBlocks::candidates`]).
    pub fn strided_candidates(spec: &FcSpec, n: usize) -> Vec<FcBlocks> {
        FcBlocks::candidates(spec, n)
            .into_iter()
            .map(|b| FcBlocks { strided: true, ..b })
            .collect()
    }

    /// Columns of input chunk j.
    pub(crate) fn cols(&self, spec: &FcSpec, j: usize) -> usize {
        (spec.inputs - j * self.d0).min(self.d0)
    }

    /// The query support S_j of input chunk j, increasing (module comment; exactly
    /// ∪_i K_i ⊖ supp(ŵ_{i,j}) mod N, so minimal for weights nonzero at every entry).
    pub fn query_support(&self, spec: &FcSpec, j: usize) -> Vec<usize> {
        let (rows, cols, n) = (
            self.kept(spec, 0) as isize,
            self.cols(spec, j),
            self.n as isize,
        );
        let mut hit = vec![false; self.n];
        for k in 0..cols as isize {
            for delta in 1 - rows..rows {
                let p = if self.strided {
                    k * self.d1 as isize + delta
                } else {
                    delta * self.d0 as isize + k
                };
                hit[p.rem_euclid(n) as usize] = true;
            }
        }
        (0..self.n).filter(|&p| hit[p]).collect()
    }

    /// |S_j| without listing S_j. Over the integers S_j is a union of equally spaced runs:
    /// 2K − 1 runs of C_j values spaced d0 (block, shifted) or C_j runs of 2K − 1 values spaced
    /// d1 (strided); when the span fits N nothing collides mod N, otherwise count on a bitmap.
    fn support_len(&self, spec: &FcSpec, j: usize) -> usize {
        let (rows, cols) = (self.kept(spec, 0), self.cols(spec, j));
        // C runs of 2K − 1 values spaced d1 (strided), or 2K − 1 runs of C values spaced d0.
        let (runs, len, spacing) = if self.strided {
            (cols, 2 * rows - 1, self.d1)
        } else {
            (2 * rows - 1, cols, self.d0)
        };
        let span = (runs - 1) * spacing + len;
        if span <= self.n {
            (runs - 1) * spacing.min(len) + len
        } else if spacing <= len {
            // One interval longer than N: everything.
            self.n
        } else {
            wrapped_runs_len(self.n, runs, len, spacing)
        }
    }

    /// |S_j| of every input chunk, in input order.
    pub fn query_support_lens(&self, spec: &FcSpec) -> Vec<usize> {
        let (full, tail) = self.support_counts_full_tail(spec);
        (0..self.n_in)
            .map(|j| if j + 1 == self.n_in { tail } else { full })
            .collect()
    }

    /// (|S_j| of a full chunk, |S_j| of the last chunk).
    fn support_counts_full_tail(&self, spec: &FcSpec) -> (usize, usize) {
        let full = self.support_len(spec, 0);
        let last = self.n_in - 1;
        let tail = if self.cols(spec, last) == self.cols(spec, 0) {
            full
        } else {
            self.support_len(spec, last)
        };
        (full, tail)
    }

    /// The multiset {|S_j|} as (size, multiplicity) pairs.
    pub fn query_support_counts(&self, spec: &FcSpec) -> Vec<(usize, usize)> {
        let (full, tail) = self.support_counts_full_tail(spec);
        vec![(full, self.n_in - 1), (tail, 1)]
    }

    /// Shifted splits with d0 a power of two (≥ 2).
    pub fn shifted_candidates(spec: &FcSpec, n: usize) -> Vec<FcBlocks> {
        let mut out = Vec::new();
        let mut d0 = 2;
        while d0 <= n && d0 < 2 * spec.inputs.max(2) {
            let d1_max = (n / d0).min(spec.outputs);
            let d1 = spec.outputs.div_ceil(spec.outputs.div_ceil(d1_max));
            if let Some(b) = FcBlocks::new(spec, n, d0, d1, true) {
                out.push(b);
            }
            d0 *= 2;
        }
        out
    }

    /// Balanced splits: for every number of input chunks, the widest output blocks that fit.
    pub fn candidates(spec: &FcSpec, n: usize) -> Vec<FcBlocks> {
        let mut d0s: Vec<usize> = (1..=spec.inputs)
            .map(|k| spec.inputs.div_ceil(k))
            .filter(|&d| d <= n)
            .collect();
        d0s.dedup();
        d0s.into_iter()
            .filter_map(|d0| {
                let d1_max = (n / d0).min(spec.outputs);
                let d1 = spec.outputs.div_ceil(spec.outputs.div_ceil(d1_max));
                FcBlocks::new(spec, n, d0, d1, false)
            })
            .collect()
    }

    pub fn encode_input(&self, spec: &FcSpec, u: &[u64], j: usize) -> Vec<u64> {
        let mut poly = vec![0u64; self.n];
        let lo = j * self.d0;
        let hi = (lo + self.d0).min(spec.inputs);
        if self.strided {
            for (k, &v) in u[lo..hi].iter().enumerate() {
                poly[k * self.d1] = v;
            }
        } else {
            poly[..hi - lo].copy_from_slice(&u[lo..hi]);
        }
        poly
    }

    pub fn encode_block(
        &self,
        spec: &FcSpec,
        ring: Ring,
        weights: &[u64],
        i: usize,
        j: usize,
    ) -> Vec<i64> {
        let mut poly = vec![0i64; self.n];
        for r in 0..self.d1 {
            let row = i * self.d1 + r;
            if row >= spec.outputs {
                break;
            }
            for k in 0..self.d0 {
                let col = j * self.d0 + k;
                if col >= spec.inputs {
                    break;
                }
                let v = ring.signed(weights[row * spec.inputs + col]);
                if self.strided {
                    poly[(self.d0 - 1 - k) * self.d1 + r] = v;
                } else if !self.shifted {
                    poly[r * self.d0 + self.d0 - 1 - k] = v;
                } else if r * self.d0 >= k {
                    poly[r * self.d0 - k] = v;
                } else {
                    poly[self.n + r * self.d0 - k] = v.wrapping_neg();
                }
            }
        }
        poly
    }

    /// Outputs held by output block i.
    pub fn kept(&self, spec: &FcSpec, i: usize) -> usize {
        (spec.outputs - i * self.d1).min(self.d1)
    }

    /// (coefficient index, output index) of every output of block i, increasing.
    pub fn output_positions(&self, spec: &FcSpec, i: usize) -> Vec<(usize, usize)> {
        if self.strided {
            let off = (self.d0 - 1) * self.d1;
            return (0..self.kept(spec, i))
                .map(|r| (off + r, i * self.d1 + r))
                .collect();
        }
        let off = if self.shifted { 0 } else { self.d0 - 1 };
        (0..self.kept(spec, i))
            .map(|r| (r * self.d0 + off, i * self.d1 + r))
            .collect()
    }
}
