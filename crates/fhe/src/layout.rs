//! Slot layouts of feature maps (docs/protocols/hyphen.md § Layouts).
//!
//! A feature map `[C, H, W]` lives on a *grid* of `H_b × W_b = (k·H) × (k·W)` slots per block,
//! `k` the gap left by the strided layers before it: pixel `(i, j)` owns the `k × k` cell whose
//! top-left slot is `(k·i, k·j)`; the `k²` slots of a cell are its *phases* `(a, b)`. Blocks are
//! `B = H_b·W_b` consecutive slots, and a ciphertext of `n` slots holds `n / B` blocks.
//!
//! - `P(g, r)` (multiplexed): channel `c` is phase `c mod k²` of group `c / k²`; copy `s < r` of
//!   group `γ` is block `s·g + γ` (copy-major: the slot vector repeats with period `g·B = n/r`,
//!   so it bootstraps with `n/r` slots). A map too large for one ciphertext is split by
//!   channels (HyPHEN's PRCR splitting): `parts` ciphertexts of `g = n/B` groups and one copy
//!   each, channel `c` in ciphertext `c / (g·k²)` at group `(c / k²) mod g`.
//! - `I(r, g)` (one channel per block, `⌈C / r⌉` ciphertexts): ciphertext `t` holds channel
//!   `t·r + s` in the run of blocks `s·g … s·g + g − 1`, the pixel's value in every phase of its
//!   cell.
//! - `Vector`: the logits, entry `o` in slot `o·B` of one ciphertext.
//!
//! Slots that hold no value are zero in every layout (each producer masks), which the
//! convolutions rely on only through zero weights, and the output's circuit privacy relies on.

use serde::{Deserialize, Serialize};

/// The slot grid of a feature map: logical `h × w`, gap `k`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grid {
    pub h: usize,
    pub w: usize,
    pub k: usize,
}

impl Grid {
    /// Row stride in slots, `W_b = k·w`.
    pub fn wb(&self) -> usize {
        self.k * self.w
    }
    /// Slots per block, `(k·h)·(k·w)`.
    pub fn block(&self) -> usize {
        self.k * self.h * self.k * self.w
    }
    /// Phases per cell, `k²`.
    pub fn phases(&self) -> usize {
        self.k * self.k
    }
    /// Offset inside a block of phase `(a, b)` of pixel `(i, j)`.
    pub fn offset(&self, i: usize, j: usize, a: usize, b: usize) -> usize {
        (self.k * i + a) * self.wb() + self.k * j + b
    }
    /// Inverse of [`Grid::offset`]: `(i, j, a, b)`.
    pub fn decode(&self, off: usize) -> (usize, usize, usize, usize) {
        let (row, col) = (off / self.wb(), off % self.wb());
        (row / self.k, col / self.k, row % self.k, col % self.k)
    }
}

/// Where a value lives in the ciphertexts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Layout {
    P {
        c: usize,
        grid: Grid,
        g: usize,
        r: usize,
        /// Ciphertexts (`> 1` only with `r = 1`, `g·B = n`).
        parts: usize,
    },
    I {
        c: usize,
        grid: Grid,
        r: usize,
        g: usize,
    },
    Vector {
        len: usize,
        stride: usize,
    },
}

impl Layout {
    /// The dense multiplexed layout of `c` channels on `grid` in `n` slots: the fewest groups
    /// (a power of two) and as many copies as fit; when one copy exceeds `n`, split over
    /// ciphertexts of `n/B` groups each. `None` when one block exceeds `n`.
    pub fn dense_p(c: usize, grid: Grid, n: usize) -> Option<Layout> {
        let g = c.div_ceil(grid.phases()).next_power_of_two();
        let used = g * grid.block();
        if used > n {
            let g = n / grid.block();
            return (g >= 1 && n % grid.block() == 0).then(|| Layout::P {
                c,
                grid,
                g,
                r: 1,
                parts: c.div_ceil(g * grid.phases()),
            });
        }
        (n % used == 0).then(|| Layout::P {
            c,
            grid,
            g,
            r: n / used,
            parts: 1,
        })
    }

    /// The period of its slot vectors: `n/r` for `P` (copy-major), `n` otherwise. A
    /// ciphertext bootstraps with this many slots (sparse packing).
    pub fn period(&self, n: usize) -> usize {
        match *self {
            Layout::P { grid, g, .. } => g * grid.block(),
            _ => n,
        }
    }

    /// Number of ciphertexts.
    pub fn cts(&self) -> usize {
        match *self {
            Layout::P { parts, .. } => parts,
            Layout::Vector { .. } => 1,
            Layout::I { c, r, .. } => c.div_ceil(r),
        }
    }

    /// Logical channels (or vector length).
    pub fn channels(&self) -> usize {
        match *self {
            Layout::P { c, .. } | Layout::I { c, .. } => c,
            Layout::Vector { len, .. } => len,
        }
    }

    pub fn grid(&self) -> Option<Grid> {
        match *self {
            Layout::P { grid, .. } | Layout::I { grid, .. } => Some(grid),
            Layout::Vector { .. } => None,
        }
    }

    /// What a slot holds: `Some((channel, i, j))` for a slot carrying a value, `None` for a
    /// zero slot. `n` is the slot count.
    pub fn at(&self, ct: usize, slot: usize) -> Option<(usize, usize, usize)> {
        match *self {
            Layout::P { c, grid, g, .. } => {
                let (beta, off) = (slot / grid.block(), slot % grid.block());
                let (i, j, a, b) = grid.decode(off);
                let ch = (ct * g + beta % g) * grid.phases() + a * grid.k + b;
                (ch < c).then_some((ch, i, j))
            }
            Layout::I { c, grid, r, g } => {
                let (beta, off) = (slot / grid.block(), slot % grid.block());
                let (i, j, _, _) = grid.decode(off);
                let ch = ct * r + beta / g;
                (ch < c).then_some((ch, i, j))
            }
            Layout::Vector { len, stride } => {
                ((slot % stride == 0) && slot / stride < len).then_some((slot / stride, 0, 0))
            }
        }
    }

    /// Slot vectors of a `[C, H, W]` (row-major) tensor in this layout.
    pub fn pack(&self, x: &[f64], n: usize) -> Vec<Vec<f64>> {
        let (h, w) = self.grid().map_or((1, 1), |g| (g.h, g.w));
        (0..self.cts())
            .map(|t| {
                (0..n)
                    .map(|s| match self.at(t, s) {
                        Some((c, i, j)) => x[(c * h + i) * w + j],
                        None => 0.0,
                    })
                    .collect()
            })
            .collect()
    }

    /// The `[C, H, W]` tensor from slot vectors (first placement of each value).
    pub fn unpack(&self, v: &[Vec<f64>]) -> Vec<f64> {
        let (h, w) = self.grid().map_or((1, 1), |g| (g.h, g.w));
        let mut out = vec![f64::NAN; self.channels() * h * w];
        for (t, vt) in v.iter().enumerate() {
            for (s, &x) in vt.iter().enumerate() {
                if let Some((c, i, j)) = self.at(t, s) {
                    let o = &mut out[(c * h + i) * w + j];
                    if o.is_nan() {
                        *o = x;
                    }
                }
            }
        }
        out
    }

    /// A per-slot vector for ciphertext `ct` from a per-channel function (zero on zero slots).
    pub fn per_channel(&self, ct: usize, n: usize, f: impl Fn(usize) -> f64) -> Vec<f64> {
        (0..n)
            .map(|s| self.at(ct, s).map_or(0.0, |(c, _, _)| f(c)))
            .collect()
    }

    /// Short description, e.g. `P(g=16,r=2,k=1)`.
    pub fn describe(&self) -> String {
        match *self {
            Layout::P {
                grid, g, r, parts, ..
            } if parts > 1 => format!("P(g={g},r={r},k={})x{parts}", grid.k),
            Layout::P { grid, g, r, .. } => format!("P(g={g},r={r},k={})", grid.k),
            Layout::I { grid, r, g, c } => {
                format!("I(r={r},g={g},k={})x{}", grid.k, c.div_ceil(r))
            }
            Layout::Vector { len, .. } => format!("vector({len})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_unpack_roundtrip_and_zero_slots() {
        let n = 1 << 10;
        let grid = Grid { h: 4, w: 4, k: 2 };
        // (layout, slots): one P, one P split over 3 ciphertexts of 64 slots, one I.
        for (l, n) in [
            (Layout::dense_p(5, grid, n).unwrap(), n),
            (Layout::dense_p(11, grid, 64).unwrap(), 64),
            (
                Layout::I {
                    c: 5,
                    grid,
                    r: 2,
                    g: n / (2 * grid.block()),
                },
                n,
            ),
        ] {
            let c = l.channels();
            let x: Vec<f64> = (0..c * 4 * 4).map(|v| v as f64 + 1.0).collect();
            let v = l.pack(&x, n);
            assert_eq!(v.len(), l.cts());
            assert_eq!(l.unpack(&v), x);
            let p = l.period(n);
            for vt in &v {
                assert!(
                    (0..n).all(|q| vt[q] == vt[q % p]),
                    "{} repeats every {p}",
                    l.describe()
                );
            }
            // Every value appears exactly as often as the copies; zero slots are zero.
            let nz: usize = v.iter().flatten().filter(|&&y| y != 0.0).count();
            assert!(nz >= x.len());
        }
        assert_eq!(Layout::dense_p(11, grid, 64).unwrap().cts(), 3);
        assert_eq!(Layout::dense_p(11, grid, 128).unwrap().cts(), 2);
        // P: 5 channels at k = 2 → 2 groups of 4 phases, 64-slot blocks, 8 copies.
        assert_eq!(
            Layout::dense_p(5, grid, n),
            Some(Layout::P {
                c: 5,
                grid,
                g: 2,
                r: 8,
                parts: 1
            })
        );
        // Split: one 64-slot block per ciphertext, 4 channels (phases) each.
        assert_eq!(
            Layout::dense_p(5, grid, 64),
            Some(Layout::P {
                c: 5,
                grid,
                g: 1,
                r: 1,
                parts: 2
            })
        );
        assert_eq!(Layout::dense_p(5, grid, 32), None);
    }
}
