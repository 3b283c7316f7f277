//! Slot layouts of feature maps (docs/protocols/hyphen.md § Layouts).
//!
//! A feature map `[C, H, W]` lives on a *grid* of `H_b × W_b = (k·H') × (k·W')` slots per
//! block, `k` the gap left by the strided layers before it and `H' × W'` the map padded to powers
//! of two (`H'` = `H` rounded up; the padding cells hold zeros): pixel `(i, j)` owns the `k × k`
//! cell whose top-left slot is `(k·i, k·j)`; the `k²` slots of a cell are its *phases* `(a, b)`.
//! Blocks are `B = H_b·W_b` consecutive slots, and a ciphertext of `n` slots holds `n / B`
//! blocks. A "same" convolution of stride σ maps `H × W` at gap `k` to `H/σ × W/σ` at gap `σk`:
//! the same `H_b`, `W_b` and `B`.
//!
//! - `P(g, r)` (multiplexed): channel `c` is phase `c mod k²` of group `c / k²`; copy `s < r` of
//!   group `γ` is block `s·g + γ` (copy-major: the slot vector repeats with period `g·B = n/r`,
//!   so it bootstraps with `n/r` slots). A map too large for one ciphertext is split by
//!   channels (HyPHEN's PRCR splitting): `parts` ciphertexts of `g = n/B` groups and one copy
//!   each, channel `c` in ciphertext `c / (g·k²)` at group `(c / k²) mod g`. A block larger than
//!   a ciphertext (`B > n`) is split by rows as well: `bands = B/n` ciphertexts of `n/W_b`
//!   slot rows each, one group; ciphertext `t` holds band `t mod bands` of group `t / bands`
//!   (slot `s` of it is offset `(t mod bands)·n + s` of the block).
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
    /// Padded height `H'`: `h` rounded up to a power of two.
    pub fn hp(&self) -> usize {
        self.h.next_power_of_two()
    }
    /// Padded width `W'`.
    pub fn wp(&self) -> usize {
        self.w.next_power_of_two()
    }
    /// Row stride in slots, `W_b = k·W'`.
    pub fn wb(&self) -> usize {
        self.k * self.wp()
    }
    /// Slots per block, `(k·H')·(k·W')`.
    pub fn block(&self) -> usize {
        self.k * self.hp() * self.wb()
    }
    /// Phases per cell, `k²`.
    pub fn phases(&self) -> usize {
        self.k * self.k
    }
    /// Offset inside a block of phase `(a, b)` of pixel `(i, j)`.
    pub fn offset(&self, i: usize, j: usize, a: usize, b: usize) -> usize {
        (self.k * i + a) * self.wb() + self.k * j + b
    }
    /// Inverse of [`Grid::offset`]: `(i, j, a, b)` (`i ≥ h` or `j ≥ w` in the padding).
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
        /// Ciphertexts (`> 1` only with `r = 1`, `g·B = n` or `B = bands·n`).
        parts: usize,
        /// Row bands per block (`B/n` when a block exceeds a ciphertext, then `g = r = 1`).
        #[serde(default = "one", skip_serializing_if = "is_one")]
        bands: usize,
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

fn one() -> usize {
    1
}

fn is_one(x: &usize) -> bool {
    *x == 1
}

impl Layout {
    /// The dense multiplexed layout of `c` channels on `grid` in `n` slots (a power of two):
    /// the fewest groups (a power of two) and as many copies as fit; when one copy exceeds
    /// `n`, split over ciphertexts of `n/B` groups each, and when one block exceeds `n`, over
    /// `B/n` row bands per group. `None` for an empty map or a slot row longer than `n`.
    pub fn dense_p(c: usize, grid: Grid, n: usize) -> Option<Layout> {
        // (A slot row longer than a ciphertext would leave a band without whole rows.)
        if !n.is_power_of_two() || grid.k == 0 || grid.h == 0 || grid.w == 0 || grid.wb() > n {
            return None;
        }
        let blk = grid.block();
        if blk > n {
            let bands = blk / n;
            return Some(Layout::P {
                c,
                grid,
                g: 1,
                r: 1,
                parts: c.div_ceil(grid.phases()) * bands,
                bands,
            });
        }
        let g = c.div_ceil(grid.phases()).next_power_of_two();
        let used = g * blk;
        if used > n {
            let g = n / blk;
            return Some(Layout::P {
                c,
                grid,
                g,
                r: 1,
                parts: c.div_ceil(g * grid.phases()),
                bands: 1,
            });
        }
        Some(Layout::P {
            c,
            grid,
            g,
            r: n / used,
            parts: 1,
            bands: 1,
        })
    }

    /// Row bands per block (1 unless a block exceeds a ciphertext).
    pub fn bands(&self) -> usize {
        match *self {
            Layout::P { bands, .. } => bands,
            _ => 1,
        }
    }

    /// The period of its slot vectors: `n/r` for `P` (copy-major), `n` otherwise. A
    /// ciphertext bootstraps with this many slots (sparse packing).
    pub fn period(&self, n: usize) -> usize {
        match *self {
            Layout::P { grid, g, .. } => (g * grid.block()).min(n),
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
            Layout::P {
                c, grid, g, bands, ..
            } => {
                let (part, band) = (ct / bands, ct % bands);
                // A band is `B / bands = n` slots of its block.
                let s = band * (grid.block() / bands) + slot;
                let (beta, off) = (s / grid.block(), s % grid.block());
                let (i, j, a, b) = grid.decode(off);
                let ch = (part * g + beta % g) * grid.phases() + a * grid.k + b;
                (ch < c && i < grid.h && j < grid.w).then_some((ch, i, j))
            }
            Layout::I { c, grid, r, g } => {
                let (beta, off) = (slot / grid.block(), slot % grid.block());
                let (i, j, _, _) = grid.decode(off);
                let ch = ct * r + beta / g;
                (ch < c && i < grid.h && j < grid.w).then_some((ch, i, j))
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
                grid,
                g,
                r,
                parts,
                bands,
                ..
            } if bands > 1 => format!(
                "P(g={g},r={r},k={})x{}x{bands} bands",
                grid.k,
                parts / bands
            ),
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
                parts: 1,
                bands: 1,
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
                parts: 2,
                bands: 1,
            })
        );
        // A block of 64 slots in 32-slot ciphertexts: two row bands per group of 4 channels.
        assert_eq!(
            Layout::dense_p(5, grid, 32),
            Some(Layout::P {
                c: 5,
                grid,
                g: 1,
                r: 1,
                parts: 4,
                bands: 2,
            })
        );
    }

    /// Maps of any size: padded to powers of two, split into row bands when a block exceeds a
    /// ciphertext; every value is placed once, padding and spare slots are zero.
    #[test]
    fn padded_and_banded_maps_roundtrip() {
        for (c, h, w, k, n) in [
            (3, 6, 5, 1, 64),   // 8×8 padded, one block per ciphertext, spare blocks
            (3, 12, 12, 1, 64), // 16×16 = 256 slots: 4 bands per channel
            (5, 6, 6, 2, 64),   // gap 2: 16×16 slots per block of 4 channels, 4 bands
            (2, 24, 24, 1, 1024),
        ] {
            let grid = Grid { h, w, k };
            let l = Layout::dense_p(c, grid, n).unwrap();
            let x: Vec<f64> = (0..c * h * w).map(|v| v as f64 + 1.0).collect();
            let v = l.pack(&x, n);
            assert_eq!(v.len(), l.cts(), "{}", l.describe());
            assert_eq!(l.unpack(&v), x, "{}", l.describe());
            let nz = v.iter().flatten().filter(|&&y| y != 0.0).count();
            if l.bands() > 1 {
                assert_eq!(nz, x.len(), "{}: one copy", l.describe());
                assert_eq!(l.period(n), n);
            }
            // Padding slots: a pixel outside the map is no value.
            for t in 0..l.cts() {
                for s in 0..n {
                    if let Some((ch, i, j)) = l.at(t, s) {
                        assert!(ch < c && i < h && j < w);
                    }
                }
            }
        }
        let l = Layout::dense_p(3, Grid { h: 12, w: 12, k: 1 }, 64).unwrap();
        assert_eq!((l.cts(), l.bands()), (12, 4));
        // A slot row of 128 does not fit 64-slot ciphertexts.
        assert_eq!(Layout::dense_p(1, Grid { h: 2, w: 128, k: 1 }, 64), None);
    }
}
