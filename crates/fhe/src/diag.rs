//! ConvD: a convolution from a dense `P` layout to the dense `P` of its output (gap times the
//! stride) by the diagonal method (Halevi–Shoup) with baby steps and giant steps
//! (docs/protocols/hyphen.md § ConvD).
//!
//! The convolution is a linear map `M` on the slot vector, `y = Σ_d diag_d ⊙ rot_d(x)` over
//! the offsets `d` at which `M` has entries. In `P(g, r)` input channel `c` (group `γ_c`,
//! phase `(a_c, b_c)`) at pixel `(i + dy, j + dx)` sits `d = ((γ_c − γ_o) mod g)·B +
//! (k·dy + a_c − a_o)·W_b + (k·dx + b_c − b_o)` slots after output channel `o` at `(i, j)`,
//! whatever the pixel — with stride σ the output's gap is `σ·k` and its pixel `(i, j)` sits at
//! the input's `(σi, σj)`, so the same holds with the output's phases: the offsets are those
//! of the channel pairs, taps and output copies. Reading the group
//! offset modulo `g` inside the window of `g` blocks that starts at the output's block picks
//! one of the input's `r` identical copies, so every product is counted once, and every copy
//! of the output gets its full sum (no mask, no replication): **1 level**, `P → P`.
//! Split with a power-of-two step `S`, `d = G + t`, `t = d mod S`:
//! `y = Σ_G rot_G(Σ_t rot_{−G}(diag_{G+t}) ⊙ rot_t(x))`, the baby rotations `rot_t(x)` hoisted
//! once per input ciphertext, the giant ones after the products with one ModDown per output
//! ciphertext; `S` is chosen for the fewest key switches.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, OnceLock};

use nn::ir::Conv2d;

use crate::exec::weight;
use crate::layout::Layout;

/// The offsets of a ConvD and their baby-step/giant-step split.
#[derive(Clone, Debug)]
pub struct DiagPlan {
    /// `S`: an offset `d` is giant `d − d mod S` plus baby `d mod S`.
    pub step: usize,
    /// `offsets[q][p]`: the offsets (mod n) linking input part `p` to output part `q`.
    pub offsets: Vec<Vec<Vec<usize>>>,
    /// Giant steps evaluated two at a time (half the plaintext products, one conjugation per
    /// pair); off, each giant step alone (the fewest key switches).
    pub paired: bool,
}

impl DiagPlan {
    /// The plan of `cv` from `lin` to `lout` (both `P`, the output's gap `stride` times the
    /// input's) at `n` slots.
    pub fn new(cv: &Conv2d, lin: &Layout, lout: &Layout, n: usize) -> DiagPlan {
        let (
            Layout::P {
                grid, g, parts, c, ..
            },
            Layout::P {
                grid: og,
                g: og_g,
                r: or,
                parts: oparts,
                c: oc,
                bands,
            },
        ) = (lin, lout)
        else {
            unreachable!("lowering: ConvD maps P to P")
        };
        let (k, ph, blk, wb) = (grid.k, grid.phases(), grid.block(), grid.wb() as isize);
        debug_assert_eq!((og.block(), og.wb()), (blk, grid.wb()));
        let (ok, oph) = (og.k, og.phases());
        let [kh, kw] = cv.kernel;
        debug_assert_eq!(lin.bands(), *bands);
        let nb = n / blk;
        // Row bands (`B > n`, one group, one copy): output band `q mod bands` reads input band
        // `p mod bands` at slot-row offset δ only when some row of the band lands there,
        // `Δ·R − R < δ < Δ·R + R` with `Δ` the band difference and `R = n/W_b` slot rows per
        // band; the offset is `e` mod n whatever the band.
        let rows = (n / grid.wb()) as isize;
        let at = |ch: usize| ((ch / ph) % g, (ch % ph) / k, ch % k);
        let offsets: Vec<Vec<Vec<usize>>> = (0..*oparts)
            .map(|q| {
                (0..*parts)
                    .map(|p| {
                        let mut set = BTreeSet::new();
                        let (q, p, band_diff) = if *bands > 1 {
                            let diff = (p % bands) as isize - (q % bands) as isize;
                            (q / bands, p / bands, Some(diff))
                        } else {
                            (q, p, None)
                        };
                        for o in q * og_g * oph..((q + 1) * og_g * oph).min(*oc) {
                            let (go, ao, bo) = ((o / oph) % og_g, (o % oph) / ok, o % ok);
                            for ci in p * g * ph..((p + 1) * g * ph).min(*c) {
                                let (gc, ac, bc) = at(ci);
                                for ky in 0..kh {
                                    for kx in 0..kw {
                                        let dy = ky as isize - cv.pads[0] as isize;
                                        let dx = kx as isize - cv.pads[1] as isize;
                                        if weight(cv, o, ci, ky, kx) == 0.0
                                            || dy.unsigned_abs() >= grid.h
                                            || dx.unsigned_abs() >= grid.w
                                        {
                                            continue;
                                        }
                                        let delta = k as isize * dy + ac as isize - ao as isize;
                                        let e = delta * wb
                                            + (k as isize * dx + bc as isize - bo as isize);
                                        if let Some(diff) = band_diff {
                                            if (delta - diff * rows).abs() >= rows {
                                                continue;
                                            }
                                            set.insert(e.rem_euclid(n as isize) as usize);
                                            continue;
                                        }
                                        // Each output copy's block reads the input group in
                                        // the window of g blocks that starts at it.
                                        for s in 0..*or {
                                            let beta = (s * og_g + go) % nb;
                                            let dg = ((gc + g - beta % g) % g) * blk;
                                            set.insert(
                                                (dg as isize + e).rem_euclid(n as isize) as usize
                                            );
                                        }
                                    }
                                }
                            }
                        }
                        set.into_iter().collect()
                    })
                    .collect()
            })
            .collect();
        DiagPlan::split(offsets, true, n)
    }

    /// The plan of these offsets with the power-of-two step `S` that needs the fewest key
    /// switches.
    fn split(offsets: Vec<Vec<Vec<usize>>>, paired: bool, n: usize) -> DiagPlan {
        let mut plan = DiagPlan {
            step: 1,
            offsets,
            paired,
        };
        plan.step = (0..=n.trailing_zeros())
            .map(|e| 1usize << e)
            .min_by_key(|&s| {
                plan.step = s;
                plan.rotations()
            })
            .expect("n ≥ 1");
        plan
    }

    /// Input ciphertexts.
    fn in_parts(&self) -> usize {
        self.offsets.first().map_or(0, Vec::len)
    }

    /// Distinct baby steps of input part `p` (all output parts together), 0 first if used.
    pub fn babies(&self, p: usize) -> Vec<usize> {
        let s: BTreeSet<usize> = (0..self.offsets.len())
            .flat_map(|q| self.offsets[q][p].iter().map(|d| d % self.step))
            .collect();
        s.into_iter().collect()
    }

    /// Distinct giant steps of output part `q`.
    pub fn giants(&self, q: usize) -> Vec<usize> {
        let s: BTreeSet<usize> = (0..self.in_parts())
            .flat_map(|p| self.offsets[q][p].iter().map(|d| d - d % self.step))
            .collect();
        s.into_iter().collect()
    }

    /// Key switches: the nonzero baby steps of every input part and giant steps of every
    /// output part.
    pub fn rotations(&self) -> usize {
        let nz = |v: Vec<usize>| v.into_iter().filter(|&x| x != 0).count();
        (0..self.in_parts())
            .map(|p| nz(self.babies(p)))
            .sum::<usize>()
            + (0..self.offsets.len())
                .map(|q| nz(self.giants(q)))
                .sum::<usize>()
    }

    /// Plaintext products: one per offset of every part pair.
    pub fn products(&self) -> usize {
        self.offsets.iter().flatten().map(Vec::len).sum()
    }

    /// The giant steps of output part `q` two at a time (the last alone when odd; one at a
    /// time unless `paired`): each pair shares one complex product per baby step
    /// (`exec::diagonal_sums`).
    pub fn giant_pairs(&self, q: usize) -> Vec<Vec<usize>> {
        let k = if self.paired { 2 } else { 1 };
        self.giants(q).chunks(k).map(<[usize]>::to_vec).collect()
    }

    /// What ConvD evaluates: `(products, conjugations)` — per pair of giant steps (or single
    /// one), one product per (input part, baby step) a giant of it reads, and one conjugation
    /// per pair.
    pub fn paired_costs(&self) -> (usize, usize) {
        let (mut products, mut conj) = (0, 0);
        for q in 0..self.offsets.len() {
            for pair in self.giant_pairs(q) {
                let used: BTreeSet<(usize, usize)> = (0..self.in_parts())
                    .flat_map(|p| {
                        self.offsets[q][p]
                            .iter()
                            .filter(|&&d| pair.contains(&(d - d % self.step)))
                            .map(move |&d| (p, d % self.step))
                    })
                    .collect();
                products += used.len();
                conj += usize::from(pair.len() == 2);
            }
        }
        (products, conj)
    }
}

/// `(channel, i, j)` at every slot of one part of a layout (`None` where no value): the two
/// lookups [`diagonal`] makes per slot of every diagonal, decoded once per part.
pub struct SlotTable(Vec<Option<(u32, u32, u32)>>);

impl SlotTable {
    pub fn new(layout: &Layout, part: usize, n: usize) -> SlotTable {
        SlotTable(
            (0..n)
                .map(|s| {
                    layout
                        .at(part, s)
                        .map(|(c, i, j)| (c as u32, i as u32, j as u32))
                })
                .collect(),
        )
    }
}

/// `rot_{−G}(diag_d)` from input part `p` (slots `tin`, of layout `lin`) to output part `q`
/// (slots `tout`): at slot `s`, the entry of `M` from output slot `s − G` to input slot
/// `s − G + d`, when that input slot lies in the window of `g` blocks starting at the output's
/// block (the copy that this offset reads).
pub fn diagonal(
    cv: &Conv2d,
    lin: &Layout,
    (tin, tout): (&SlotTable, &SlotTable),
    d: usize,
    giant: usize,
) -> Vec<f64> {
    let Layout::P { grid, g, .. } = *lin else {
        unreachable!("lowering: ConvD reads P")
    };
    let n = tin.0.len();
    debug_assert!(n.is_power_of_two());
    let mask = n - 1;
    let (blk, nb) = (grid.block(), n / grid.block());
    let [kh, kw] = cv.kernel;
    let (st, pads) = (
        cv.stride[0] as isize,
        [cv.pads[0] as isize, cv.pads[1] as isize],
    );
    (0..n)
        .map(|s| {
            let src = (s + n - giant) & mask;
            let Some((o, i, j)) = tout.0[src] else {
                return 0.0;
            };
            let dst = (src + d) & mask;
            // (Row bands, `nb = 0`: one group and one copy, every slot is the value's only one.)
            if nb > 0 && (dst / blk + nb - src / blk) % nb >= g {
                return 0.0;
            }
            let Some((c, i2, j2)) = tin.0[dst] else {
                return 0.0;
            };
            let ky = i2 as isize - st * i as isize + pads[0];
            let kx = j2 as isize - st * j as isize + pads[1];
            if ky < 0 || kx < 0 || ky >= kh as isize || kx >= kw as isize {
                return 0.0;
            }
            weight(cv, o as usize, c as usize, ky as usize, kx as usize)
        })
        .collect()
}

/// ConvS: a stride-1 convolution from a one-ciphertext `P` with `r ≥ 2` copies to the same
/// layout, whose input copies are first shifted (docs/protocols/hyphen.md § Convolutions,
/// "Past the bound"). Copy `s` of the shifted input holds the map moved by `e_s` slots; a
/// rotation by `t` then offers the output copies every offset of `t + E` (mod the period `P`),
/// each once, so the offsets `D` of [`DiagPlan`] need only a cover `D ⊆ T + E`, and a final
/// sum over the copies gives every output copy the whole convolution.
#[derive(Clone, Debug)]
pub struct ShiftPlan {
    /// `e_s`, `e_0 = 0`, distinct modulo the period.
    pub shifts: Vec<usize>,
    /// `P = n / r`.
    pub period: usize,
    /// The rotations `T` of the shifted input (mod `n`) and their baby/giant split.
    pub plan: DiagPlan,
    /// Offset `d` (mod `P`) → the rotation of `T` that supplies it.
    pub choice: BTreeMap<usize, usize>,
}

impl ShiftPlan {
    /// The plan of a stride-1 `cv` from `lin` to `lout` at `n` slots, with the shifts `E` (an
    /// arithmetic progression, its step searched) that need the fewest key switches; `None`
    /// unless both layouts are the same one-ciphertext, unbanded `P` with at least two copies.
    pub fn new(cv: &Conv2d, lin: &Layout, lout: &Layout, n: usize) -> Option<ShiftPlan> {
        let Layout::P {
            grid,
            g,
            r,
            parts: 1,
            bands: 1,
            ..
        } = *lin
        else {
            return None;
        };
        let same = matches!(*lout, Layout::P { grid: og, g: og_g, r: or, parts: 1, bands: 1, .. }
            if og == grid && og_g == g && or == r);
        if !same || r < 2 || cv.stride != [1, 1] {
            return None;
        }
        let period = n / r;
        let offsets: BTreeSet<usize> = DiagPlan::new(cv, lin, lout, n).offsets[0][0]
            .iter()
            .map(|&d| d % period)
            .collect();
        // Steps tried for E: slots, slot rows and blocks, each up to a few multiples.
        let mut steps: BTreeSet<usize> = BTreeSet::new();
        for unit in [1, grid.wb(), grid.block()] {
            for m in 1..=(2 * grid.k + 1).max(g) {
                steps.insert(m * unit % period);
            }
        }
        // The search depends only on the offsets and the shapes: the convolutions of a stage
        // share it (computed once per process).
        type Key = (Vec<usize>, Vec<usize>, usize, usize);
        static CACHE: OnceLock<Mutex<BTreeMap<Key, Option<ShiftPlan>>>> = OnceLock::new();
        let key: Key = (
            offsets.iter().copied().collect(),
            steps.iter().copied().collect(),
            r,
            n,
        );
        let cache = CACHE.get_or_init(|| Mutex::new(BTreeMap::new()));
        if let Some(sp) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return sp.clone();
        }
        let best = steps
            .into_iter()
            .filter_map(|u| {
                let shifts: Vec<usize> = (0..r).map(|j| j * u % period).collect();
                let distinct: BTreeSet<usize> = shifts.iter().copied().collect();
                (distinct.len() == r).then(|| Self::cover(&offsets, shifts, period, n))
            })
            .min_by_key(|sp| (sp.rotations(), sp.plan.products()));
        cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, best.clone());
        best
    }

    /// A greedy cover `D ⊆ T + E` (most offsets first, then the smallest `t`), `T` taken
    /// signed (`t − P` above `P/2`, so small negative offsets stay small) and mod `n`.
    fn cover(offsets: &BTreeSet<usize>, shifts: Vec<usize>, period: usize, n: usize) -> Self {
        let mut covers: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for &d in offsets {
            for &e in &shifts {
                covers.entry((d + period - e) % period).or_default().push(d);
            }
        }
        let mut left: BTreeMap<usize, usize> =
            covers.iter().map(|(&t, ds)| (t, ds.len())).collect();
        let mut choice: BTreeMap<usize, usize> = BTreeMap::new();
        while choice.len() < offsets.len() {
            let (&t, _) = left
                .iter()
                .fold(None, |best: Option<(&usize, &usize)>, (t, c)| match best {
                    Some((_, bc)) if bc >= c => best,
                    _ => Some((t, c)),
                })
                .expect("an offset left is covered by some t");
            let tn = if t > period / 2 { t + n - period } else { t };
            for &d in &covers[&t] {
                if choice.contains_key(&d) {
                    continue;
                }
                choice.insert(d, tn);
                for &e in &shifts {
                    if let Some(c) = left.get_mut(&((d + period - e) % period)) {
                        *c -= 1;
                    }
                }
            }
            left.retain(|_, c| *c > 0);
        }
        let ts: BTreeSet<usize> = choice.values().copied().collect();
        // ConvS is for the fewest key switches: giant steps unpaired (no conjugations).
        let plan = DiagPlan::split(vec![vec![ts.into_iter().collect()]], false, n);
        ShiftPlan {
            shifts,
            period,
            plan,
            choice,
        }
    }

    /// Copies `r`.
    pub fn copies(&self) -> usize {
        self.shifts.len()
    }

    /// Key switches: the `r − 1` shifts, the baby and giant steps over `T`, and the final sum
    /// over the copies (in chunks of four, as `exec` sums).
    pub fn rotations(&self) -> usize {
        self.copies() - 1 + self.plan.rotations() + crate::exec::rot_sum_key_switches(self.copies())
    }

    /// `rot_{−G}` of the diagonal of rotation `t` (slots `tin`, `tout`: one copy's tables of
    /// the input and output layouts, `P` slots or more): at slot `s`, output slot `s − G` of
    /// copy `c` reads the shifted input at `s − G + t`, in copy `σ`, which holds input position
    /// `w + e_σ`; the weight of that pair when `t` is the rotation chosen for its offset.
    pub fn diagonal(
        &self,
        cv: &Conv2d,
        (tin, tout): (&SlotTable, &SlotTable),
        t: usize,
        giant: usize,
    ) -> Vec<f64> {
        let n = self.period * self.copies();
        let p = self.period;
        let [kh, kw] = cv.kernel;
        let pads = [cv.pads[0] as isize, cv.pads[1] as isize];
        (0..n)
            .map(|s| {
                let src = (s + n - giant) % n;
                let v = src % p;
                let read = (src + t) % n;
                let w = (read % p + self.shifts[read / p]) % p;
                let d = (w + p - v) % p;
                if self.choice.get(&d) != Some(&t) {
                    return 0.0;
                }
                let (Some((o, i, j)), Some((c, i2, j2))) = (tout.0[v], tin.0[w]) else {
                    return 0.0;
                };
                let ky = i2 as isize - i as isize + pads[0];
                let kx = j2 as isize - j as isize + pads[1];
                if ky < 0 || kx < 0 || ky >= kh as isize || kx >= kw as isize {
                    return 0.0;
                }
                weight(cv, o as usize, c as usize, ky as usize, kx as usize)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::Grid;

    fn conv(c: usize, o: usize, hw: usize, stride: usize) -> Conv2d {
        Conv2d {
            in_shape: [c, hw, hw],
            out_shape: [o, hw / stride, hw / stride],
            kernel: [3, 3],
            stride: [stride, stride],
            pads: [1; 4],
            groups: 1,
            weight: (0..o * c * 9).map(|i| 1.0 + (i % 7) as f32).collect(),
            bias: vec![0.0; o],
        }
    }

    /// ResNet-20's shapes at 2^15 slots: the counts BENCHMARKS.md and hyphen.md quote.
    #[test]
    fn resnet20_shapes_have_the_quoted_counts() {
        let n = 1 << 15;
        let p = |c: usize, hw: usize, k: usize| {
            Layout::dense_p(c, Grid { h: hw, w: hw, k }, n).expect("fits")
        };
        // (in channels, out channels, map, input gap, stride) → (products, key switches,
        // paired (products, conjugations)).
        let cases = [
            ((16, 16, 32, 1, 1), (144, 24, (76, 8))),
            ((32, 32, 16, 2, 1), (392, 42, (224, 8))),
            ((64, 64, 8, 4, 1), (900, 60, (480, 16))),
            ((16, 32, 32, 1, 2), (256, 31, (138, 8))),
            ((32, 64, 16, 2, 2), (648, 56, (360, 20))),
        ];
        for ((c, o, hw, k, st), (products, rotations, paired)) in cases {
            let (cv, lin, lout) = (conv(c, o, hw, st), p(c, hw, k), p(o, hw / st, k * st));
            let plan = DiagPlan::new(&cv, &lin, &lout, n);
            assert_eq!((plan.products(), plan.rotations()), (products, rotations));
            // Paired giant steps: about half the products, one conjugation per pair.
            assert_eq!(plan.paired_costs(), paired);
        }
    }

    /// `rot_k(v)[s] = v[s + k]`.
    fn rot(v: &[f64], k: usize) -> Vec<f64> {
        (0..v.len()).map(|s| v[(s + k) % v.len()]).collect()
    }

    /// ConvS on clear slot vectors, evaluated as `exec` does (shifted copies, baby and giant
    /// steps, the sum over the copies), equals the convolution computed directly.
    #[test]
    fn shifted_copies_compute_the_convolution() {
        // (channels, map, gap, slots, kernel): 4 groups × 2 copies; 2 groups of 4 phases × 4
        // copies; a padded group count; 1×1 and 5×5 kernels.
        for (c, hw, k, n, ks) in [
            (4, 8, 1, 1 << 9, 3),
            (8, 4, 2, 1 << 10, 3),
            (3, 8, 1, 1 << 10, 3),
            (4, 8, 1, 1 << 10, 1),
            (8, 4, 2, 1 << 10, 5),
        ] {
            let mut cv = conv(c, c, hw, 1);
            cv.kernel = [ks, ks];
            cv.pads = [ks / 2; 4];
            cv.weight = (0..c * c * ks * ks)
                .map(|i| ((i * 37 % 23) as f32 - 11.0) / 7.0)
                .collect();
            let lin = Layout::dense_p(c, Grid { h: hw, w: hw, k }, n).expect("fits");
            let sp = ShiftPlan::new(&cv, &lin, &lin, n).expect("one ciphertext, copies");
            let r = sp.copies();
            assert!(r >= 2);
            let x: Vec<f64> = (0..c * hw * hw)
                .map(|i| ((i * 13 % 17) as f64) - 8.0)
                .collect();
            let want = lin.pack(&nn_conv(&cv, &x, c, hw), n).remove(0);
            let xv = lin.pack(&x, n).remove(0);
            // Copy s of x′ holds x moved by e_s.
            let xs: Vec<f64> = (0..n)
                .map(|s| rot(&xv, sp.shifts[s / sp.period])[s])
                .collect();
            let tables = (SlotTable::new(&lin, 0, n), SlotTable::new(&lin, 0, n));
            let mut z = vec![0.0; n];
            for giant in sp.plan.giants(0) {
                let mut inner = vec![0.0; n];
                for &t in sp.plan.offsets[0][0]
                    .iter()
                    .filter(|&&t| t - t % sp.plan.step == giant)
                {
                    let dg = sp.diagonal(&cv, (&tables.0, &tables.1), t, giant);
                    let xb = rot(&xs, t % sp.plan.step);
                    inner
                        .iter_mut()
                        .zip(dg.iter().zip(&xb))
                        .for_each(|(a, (d, x))| *a += d * x);
                }
                let g = rot(&inner, giant);
                z.iter_mut().zip(&g).for_each(|(a, b)| *a += b);
            }
            let y: Vec<f64> = (0..n)
                .map(|s| (0..r).map(|m| z[(s + m * sp.period) % n]).sum())
                .collect();
            for (s, (a, b)) in y.iter().zip(&want).enumerate() {
                assert!((a - b).abs() < 1e-9, "c {c} k {k} slot {s}: {a} vs {b}");
            }
            // Fewer key switches than ConvD on these shapes, and a product per rotation.
            let d = DiagPlan::new(&cv, &lin, &lin, n);
            assert!(
                sp.plan.products() < d.products(),
                "{} vs {}",
                sp.plan.products(),
                d.products()
            );
        }
    }

    /// A direct "same" convolution of `[c, hw, hw]` (odd square kernel, zero bias).
    fn nn_conv(cv: &Conv2d, x: &[f64], c: usize, hw: usize) -> Vec<f64> {
        let (o, ks) = (cv.out_shape[0], cv.kernel[0]);
        let half = (ks / 2) as isize;
        let mut y = vec![0.0; o * hw * hw];
        for oc in 0..o {
            for i in 0..hw {
                for j in 0..hw {
                    let mut acc = 0.0;
                    for ci in 0..c {
                        for ky in 0..ks {
                            for kx in 0..ks {
                                let (ii, jj) = (
                                    i as isize + ky as isize - half,
                                    j as isize + kx as isize - half,
                                );
                                if ii < 0 || jj < 0 || ii >= hw as isize || jj >= hw as isize {
                                    continue;
                                }
                                acc += weight(cv, oc, ci, ky, kx)
                                    * x[(ci * hw + ii as usize) * hw + jj as usize];
                            }
                        }
                    }
                    y[(oc * hw + i) * hw + j] = acc;
                }
            }
        }
        y
    }

    /// ResNet-20's stride-1 shapes: ConvS's key switches (shifts, baby and giant steps, the
    /// sum over the copies) and plaintext products, ≥ 2.5× below MPCNN's formula (hyphen.md;
    /// ConvD: 24 / 42 / 60 key switches, 144 / 392 / 900 products).
    #[test]
    fn resnet20_shifted_counts() {
        let n = 1 << 15;
        for ((c, hw, k), want) in [
            ((16, 32, 1), (17, 72)),
            ((32, 16, 2), (26, 98)),
            ((64, 8, 4), (34, 120)),
        ] {
            let lin = Layout::dense_p(c, Grid { h: hw, w: hw, k }, n).expect("fits");
            let sp = ShiftPlan::new(&conv(c, c, hw, 1), &lin, &lin, n).expect("copies");
            let mpcnn = crate::lower::mpcnn_rotations(&conv(c, c, hw, 1), k, n);
            assert_eq!((sp.rotations(), sp.plan.products()), want, "{c} channels");
            assert!(
                5 * sp.rotations() <= 2 * mpcnn,
                "{} vs MPCNN {mpcnn}",
                sp.rotations()
            );
        }
    }

    /// A zero weight drops its offsets; an all-zero kernel has none.
    #[test]
    fn zero_weights_have_no_diagonals() {
        let n = 1 << 12;
        let lin = Layout::dense_p(4, Grid { h: 8, w: 8, k: 1 }, n).expect("fits");
        let mut cv = conv(4, 4, 8, 1);
        cv.weight.iter_mut().for_each(|w| *w = 0.0);
        assert_eq!(DiagPlan::new(&cv, &lin, &lin, n).products(), 0);
        // Only the centre tap of channel 0 → 0: one offset, no rotation.
        cv.weight[4] = 1.0;
        let plan = DiagPlan::new(&cv, &lin, &lin, n);
        assert_eq!((plan.products(), plan.rotations()), (1, 0));
    }
}
