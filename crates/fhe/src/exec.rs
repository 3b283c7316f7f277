//! Evaluation of a [`Program`] on a [`Backend`] (docs/protocols/hyphen.md § Convolutions).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

use rayon::prelude::*;
use serde::Serialize;

use crate::backend::Backend;
use crate::diag::SlotTable;
use crate::error::{FheError, Result};
use crate::layout::Layout;
use crate::lower::{Kind, Program};

/// Homomorphic operations of one step (or of a whole run).
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq, Eq)]
pub struct Counts {
    /// Key-switched rotations (hoisted ones included).
    pub rotations: usize,
    /// Plaintext × ciphertext products.
    pub pt_mults: usize,
    /// Ciphertext × ciphertext products.
    pub ct_mults: usize,
    pub bootstraps: usize,
}

impl std::ops::AddAssign for Counts {
    fn add_assign(&mut self, o: Counts) {
        self.rotations += o.rotations;
        self.pt_mults += o.pt_mults;
        self.ct_mults += o.ct_mults;
        self.bootstraps += o.bootstraps;
    }
}

/// One executed step.
#[derive(Clone, Debug, Serialize)]
pub struct StepReport {
    pub layer: String,
    pub op: &'static str,
    pub layout_in: String,
    pub layout_out: String,
    pub level_in: usize,
    pub level_out: usize,
    pub ciphertexts_out: usize,
    #[serde(flatten)]
    pub counts: Counts,
    pub ms: f64,
}

/// Counters shared by the kernels, and the rotation keys used (rotation mod n → highest level).
struct Ctx<'b, B: Backend> {
    b: &'b B,
    n: usize,
    counts: Mutex<Counts>,
    keys: Mutex<BTreeMap<usize, usize>>,
    conj: Mutex<Option<usize>>,
}

impl<B: Backend> Ctx<'_, B> {
    fn note_rot(&self, level: usize, ks: &[isize]) {
        let mut keys = self.keys.lock().expect("not poisoned");
        let mut c = 0;
        for &k in ks {
            let k = k.rem_euclid(self.n as isize) as usize;
            if k != 0 {
                c += 1;
                let e = keys.entry(k).or_insert(level);
                *e = (*e).max(level);
            }
        }
        self.counts.lock().expect("not poisoned").rotations += c;
    }
    fn rot(&self, x: &B::Ct, k: isize) -> Result<B::Ct> {
        self.note_rot(self.b.level(x), &[k]);
        self.b.rotate(x, k)
    }
    /// `Σ_i rot_{k_i}(x_i)`: one key switch per nonzero `k_i`, one ModDown for the sum.
    fn rot_terms(&self, terms: &[(&B::Ct, isize)]) -> Result<B::Ct> {
        for &(x, k) in terms {
            self.note_rot(self.b.level(x), &[k]);
        }
        self.b.rotate_sum(terms)
    }
    fn rot_many(&self, x: &B::Ct, ks: &[isize]) -> Result<Vec<B::Ct>> {
        self.note_rot(self.b.level(x), ks);
        self.b.rotate_many(x, ks)
    }
    /// `(2·Re z, 2·Im z)`: one conjugation (a key switch, counted as a rotation).
    fn split(&self, z: &B::Ct) -> Result<(B::Ct, B::Ct)> {
        let l = self.b.level(z);
        let mut c = self.conj.lock().expect("not poisoned");
        *c = Some(c.map_or(l, |m| m.max(l)));
        self.counts.lock().expect("not poisoned").rotations += 1;
        self.b.split_complex(z)
    }
    fn dot(&self, terms: &[(&B::Ct, &[f64])]) -> Result<B::Ct> {
        self.counts.lock().expect("not poisoned").pt_mults += terms.len();
        self.b.dot_plain(terms)
    }
    fn dot_complex(&self, terms: &[(&B::Ct, &[f64], &[f64])]) -> Result<B::Ct> {
        self.counts.lock().expect("not poisoned").pt_mults += terms.len();
        self.b.dot_complex(terms)
    }
    /// `x + rot(x, step) + rot(x, 2·step) + …` over `count` (a power of two) steps.
    fn rot_sum(&self, mut x: B::Ct, step: isize, count: usize) -> Result<B::Ct> {
        // Σ_{i < m} rot_{i·step}(x), m = count rounded up to a power of two, in chunks of up
        // to four: x ← Σ_{i<4} rot_{i·s}(x) (three key switches sharing one decomposition and
        // one ModDown: about 1.3 rotations' time where doubling spends 2), then s ← 4s. Two
        // chunks for m = 16 cost about 2.7 rotations against doubling's 4 (one more key per
        // chunk: 3s beside s and 2s).
        let mut s = step;
        for chunk in rot_sum_chunks(count.next_power_of_two()) {
            let terms: Vec<(&B::Ct, isize)> = (0..chunk as isize).map(|i| (&x, i * s)).collect();
            x = self.rot_terms(&terms)?;
            s *= chunk as isize;
        }
        Ok(x)
    }
}

/// The chunk sizes of a rotate-and-sum over `m` (a power of two): fours, then the rest.
pub(crate) fn rot_sum_chunks(m: usize) -> impl Iterator<Item = usize> {
    let mut c = 1;
    std::iter::from_fn(move || {
        (c < m).then(|| {
            let chunk = (m / c).min(4);
            c *= chunk;
            chunk
        })
    })
}

/// Key switches of [`Ctx::rot_sum`] over `m` (a power of two): one fewer than each chunk.
pub(crate) fn rot_sum_key_switches(m: usize) -> usize {
    rot_sum_chunks(m).map(|chunk| chunk - 1).sum()
}

fn log2(x: usize) -> usize {
    x.trailing_zeros() as usize
}

/// Result of a run: the output ciphertexts, per-step reports, and the rotation keys used.
pub struct Run<C> {
    pub output: Vec<C>,
    pub steps: Vec<StepReport>,
    /// Rotation amount (mod slots) → highest level it is used at.
    pub rotation_keys: BTreeMap<usize, usize>,
    /// Highest level of a conjugation, if any.
    pub conjugation_level: Option<usize>,
}

/// Runs `prog` on `input` (the image ciphertexts in `prog.layouts[0]`).
pub fn run<B: Backend>(prog: &Program, b: &B, input: Vec<B::Ct>) -> Result<Run<B::Ct>> {
    if input.len() != prog.layouts[0].cts() {
        return Err(FheError::BadInput(format!(
            "{} input ciphertexts, the layout has {}",
            input.len(),
            prog.layouts[0].cts()
        )));
    }
    let ctx = Ctx {
        b,
        n: prog.n,
        counts: Mutex::new(Counts::default()),
        keys: Mutex::new(BTreeMap::new()),
        conj: Mutex::new(None),
    };
    let mut vals: Vec<Option<Vec<B::Ct>>> = vec![None; prog.layouts.len()];
    vals[0] = Some(input);
    // Last use of each value, to free it.
    let mut last_use = vec![0usize; prog.layouts.len()];
    for (si, s) in prog.steps.iter().enumerate() {
        for &i in &s.inputs {
            last_use[i] = si;
        }
    }
    last_use[prog.output] = usize::MAX;
    let read = prog.read_levels();
    let mut reports = vec![];
    for (si, s) in prog.steps.iter().enumerate() {
        let t0 = Instant::now();
        let before = *ctx.counts.lock().expect("not poisoned");
        // Inputs above the level the rest of the program needs are read truncated.
        let dropped: Vec<Option<Vec<B::Ct>>> = s
            .inputs
            .iter()
            .map(|&i| {
                let v = vals[i].as_ref().expect("values are computed in order");
                if v.iter().all(|c| b.level(c) <= read[si]) {
                    return Ok(None);
                }
                v.iter()
                    .map(|c| b.drop_to(c, read[si]))
                    .collect::<Result<Vec<_>>>()
                    .map(Some)
            })
            .collect::<Result<_>>()?;
        let ins: Vec<&Vec<B::Ct>> = s
            .inputs
            .iter()
            .zip(&dropped)
            .map(|(&i, d)| {
                d.as_ref()
                    .unwrap_or_else(|| vals[i].as_ref().expect("values are computed in order"))
            })
            .collect();
        let lin = &prog.layouts[s.inputs[0]];
        let lout = &prog.layouts[s.output];
        let level_in = ins
            .iter()
            .flat_map(|v| v.iter())
            .map(|c| b.level(c))
            .min()
            .unwrap_or(0);
        let out = match &s.kind {
            Kind::ConvA(cv) => conv_a(&ctx, ins[0], cv, lin, lout, prog.range)?,
            Kind::ConvB(cv) => conv_b(&ctx, ins[0], cv, lin, lout, prog.range)?,
            Kind::ConvD(cv, plan) => conv_d(&ctx, ins[0], cv, plan, lin, lout, prog.range)?,
            Kind::ConvS(cv, sp) => vec![conv_s(&ctx, &ins[0][0], cv, sp, lin, prog.range)?],
            Kind::ConvMpcnn(cv) => vec![conv_mpcnn(&ctx, &ins[0][0], cv, lin, lout, prog.range)?],
            Kind::Poly(p) => {
                let deg = p.degree();
                let sg = prog.range;
                ins[0]
                    .iter()
                    .enumerate()
                    .map(|(t, x)| {
                        let cvec = lin.per_channel(t, prog.n, |c| p.c[c] / sg);
                        let bvec = lin.per_channel(t, prog.n, |c| p.b[c]);
                        match deg {
                            2 => {
                                ctx.counts.lock().expect("not poisoned").ct_mults += 1;
                                ctx.counts.lock().expect("not poisoned").pt_mults += 1;
                                let avec = lin.per_channel(t, prog.n, |c| p.a[c] * sg);
                                b.poly2(x, &avec, &bvec, &cvec)
                            }
                            1 => {
                                let y = ctx.dot(&[(x, &bvec)])?;
                                b.add_plain(&y, &cvec)
                            }
                            _ => {
                                // A constant: zero the ciphertext's slots by a 0-product is
                                // wasteful; the lowering never emits degree 0 from a network.
                                Err(FheError::Unsupported {
                                    node: s.name.clone(),
                                    reason: "constant activation".into(),
                                })
                            }
                        }
                    })
                    .collect::<Result<_>>()?
            }
            Kind::Square(p) => {
                // Held coefficients A = a·R, B = b, C = c/R; u = (x + β)² + C/A − β².
                let sg = prog.range;
                let beta = |c: usize| p.b[c] / (2.0 * p.a[c] * sg);
                ctx.counts.lock().expect("not poisoned").ct_mults += ins[0].len();
                // The ciphertexts side by side: each square's encodings (an FFT each) are
                // single-threaded.
                ins[0]
                    .par_iter()
                    .enumerate()
                    .map(|(t, x)| {
                        let shift = lin.per_channel(t, prog.n, beta);
                        let post = lin.per_channel(t, prog.n, |c| {
                            p.c[c] / (sg * p.a[c] * sg) - beta(c) * beta(c)
                        });
                        b.square(x, &shift, &post)
                    })
                    .collect::<Result<_>>()?
            }
            Kind::Series {
                series,
                for_product,
            } => ins[0]
                .iter()
                .map(|x| b.series(x, series, *for_product))
                .collect::<Result<_>>()?,
            Kind::Mul => {
                ctx.counts.lock().expect("not poisoned").ct_mults += ins[0].len();
                ins[0]
                    .iter()
                    .zip(ins[1].iter())
                    .map(|(x, y)| b.mul(x, y))
                    .collect::<Result<_>>()?
            }
            Kind::Add => ins[0]
                .iter()
                .zip(ins[1].iter())
                .map(|(x, y)| b.add(x, y))
                .collect::<Result<_>>()?,
            Kind::Remap { step, before } => {
                vec![remap(&ctx, &ins[0][0], *step, *before, lin, lout)?]
            }
            Kind::PoolFc(lin_layer) => {
                vec![pool_fc(&ctx, ins[0], lin_layer, lin, lout, prog.range)?]
            }
            Kind::Bootstrap => {
                // Two ciphertexts per circuit (`Backend::pack_pair`), split by one conjugation.
                let period = lin.period(ctx.n);
                let mut out = Vec::with_capacity(ins[0].len());
                for pair in ins[0].chunks(2) {
                    match pair {
                        [x, y] if b.pairable(x, y) => {
                            ctx.counts.lock().expect("not poisoned").bootstraps += 1;
                            let z = b.bootstrap(&b.pack_pair(x, y)?, period)?;
                            let (re, im) = ctx.split(&z)?;
                            out.extend([re, im]);
                        }
                        _ => {
                            for x in pair {
                                ctx.counts.lock().expect("not poisoned").bootstraps += 1;
                                out.push(b.bootstrap(x, period)?);
                            }
                        }
                    }
                }
                out
            }
        };
        let after = *ctx.counts.lock().expect("not poisoned");
        let counts = Counts {
            rotations: after.rotations - before.rotations,
            pt_mults: after.pt_mults - before.pt_mults,
            ct_mults: after.ct_mults - before.ct_mults,
            bootstraps: after.bootstraps - before.bootstraps,
        };
        reports.push(StepReport {
            layer: s.name.clone(),
            op: s.kind.name(),
            layout_in: lin.describe(),
            layout_out: lout.describe(),
            level_in,
            level_out: out.iter().map(|c| b.level(c)).min().unwrap_or(0),
            ciphertexts_out: out.len(),
            counts,
            ms: t0.elapsed().as_secs_f64() * 1e3,
        });
        vals[s.output] = Some(out);
        for &i in &s.inputs {
            if last_use[i] == si {
                vals[i] = None;
            }
        }
    }
    let output = vals[prog.output].take().expect("output computed");
    Ok(Run {
        output,
        steps: reports,
        rotation_keys: ctx.keys.into_inner().expect("not poisoned"),
        conjugation_level: ctx.conj.into_inner().expect("not poisoned"),
    })
}

/// Kernel taps: `(ky, kx, dy, dx)`.
fn taps(cv: &nn::ir::Conv2d) -> Vec<(usize, usize, isize, isize)> {
    let mut v = vec![];
    for ky in 0..cv.kernel[0] {
        for kx in 0..cv.kernel[1] {
            v.push((
                ky,
                kx,
                ky as isize - cv.pads[0] as isize,
                kx as isize - cv.pads[1] as isize,
            ));
        }
    }
    v
}

pub(crate) fn weight(cv: &nn::ir::Conv2d, o: usize, c: usize, ky: usize, kx: usize) -> f64 {
    let [kh, kw] = cv.kernel;
    cv.weight[((o * cv.in_channels() + c) * kh + ky) * kw + kx] as f64
}

/// Weights of pass `t` of a convolution reading `P(g, r)` (ConvA, MPCNN) for one tap and
/// input ciphertext `part`: at the slot of input channel `c`, copy `s` (block `s·g + γ`), pixel
/// `(i, j)`, the weight of output `t·r + s` when the tap's pixel is inside the map and the
/// stride keeps `(i, j)`; 0 elsewhere.
fn pass_weights(
    cv: &nn::ir::Conv2d,
    lin: &Layout,
    n: usize,
    part: usize,
    t: usize,
    tap: (usize, usize, isize, isize),
) -> Vec<f64> {
    let Layout::P { grid, g, r, .. } = *lin else {
        unreachable!("lowering")
    };
    let (ky, kx, dy, dx) = tap;
    let (h, w, st, run) = (
        grid.h as isize,
        grid.w as isize,
        cv.stride[0],
        g * grid.block(),
    );
    (0..n)
        .map(|s| {
            let Some((c, i, j)) = lin.at(part, s) else {
                return 0.0;
            };
            let o = t * r + s / run;
            let (ii, jj) = (i as isize + dy, j as isize + dx);
            if o >= cv.out_channels()
                || i % st != 0
                || j % st != 0
                || ii < 0
                || jj < 0
                || ii >= h
                || jj >= w
            {
                0.0
            } else {
                weight(cv, o, c, ky, kx)
            }
        })
        .collect()
}

/// The hoisted tap rotations of a `P` input.
fn tap_rotations<B: Backend>(
    ctx: &Ctx<B>,
    x: &B::Ct,
    cv: &nn::ir::Conv2d,
    lin: &Layout,
) -> Result<Vec<B::Ct>> {
    let grid = lin.grid().expect("a feature map");
    let (k, wb) = (grid.k as isize, grid.wb() as isize);
    let shifts: Vec<isize> = taps(cv)
        .iter()
        .map(|&(_, _, dy, dx)| k * (dy * wb + dx))
        .collect();
    ctx.rot_many(x, &shifts)
}

/// Sums the `k²` phases of each cell into its phase (0, 0), then the `g` groups of each copy
/// into the copy's first block `s·g` (the other phases and blocks get garbage).
fn sum_phases_and_groups<B: Backend>(ctx: &Ctx<B>, u: B::Ct, lin: &Layout) -> Result<B::Ct> {
    let Layout::P { grid, g, .. } = *lin else {
        unreachable!("lowering")
    };
    let u = ctx.rot_sum(u, 1, grid.k)?;
    let u = ctx.rot_sum(u, grid.wb() as isize, grid.k)?;
    ctx.rot_sum(u, grid.block() as isize, g)
}

/// Phase (0, 0) of the output cells (`stride | i, j`), with value `keep`.
fn cell_mask(
    grid: crate::layout::Grid,
    n: usize,
    st: usize,
    keep: f64,
    block_filter: impl Fn(usize) -> bool,
) -> Vec<f64> {
    let block = grid.block();
    (0..n)
        .map(|q| {
            let (i, j, a, bb) = grid.decode(q % block);
            if block_filter(q / block) && a == 0 && bb == 0 && i % st == 0 && j % st == 0 {
                keep
            } else {
                0.0
            }
        })
        .collect()
}

/// ConvA: `P(g, r)` at gap `k` → `I(r, g)` at gap `k·stride` (docs/protocols/hyphen.md). A `P`
/// split over ciphertexts contributes each part's products to the same pass sum.
fn conv_a<B: Backend>(
    ctx: &Ctx<B>,
    xs: &[B::Ct],
    cv: &nn::ir::Conv2d,
    lin: &Layout,
    lout: &Layout,
    range: f64,
) -> Result<Vec<B::Ct>> {
    let n = ctx.n;
    let Layout::P { grid, g, .. } = *lin else {
        unreachable!("lowering")
    };
    let Layout::I { grid: og, .. } = *lout else {
        unreachable!("lowering")
    };
    let tp = taps(cv);
    // (part, tap) in the order of `zs`.
    let zs: Vec<B::Ct> = xs
        .iter()
        .map(|x| tap_rotations(ctx, x, cv, lin))
        .collect::<Result<Vec<_>>>()?
        .into_iter()
        .flatten()
        .collect();
    let pt_index: Vec<(usize, (usize, usize, isize, isize))> = (0..xs.len())
        .flat_map(|part| tp.iter().map(move |&tap| (part, tap)))
        .collect();
    // Pass t computes output ciphertexts 2t (real parts of the slots) and 2t + 1 (imaginary
    // parts) with complex weights: every rotation and the mask serve both.
    let cts = lout.cts();
    let mut out = Vec::with_capacity(cts);
    for t in (0..cts).step_by(2) {
        let paired = t + 1 < cts;
        let pts: Vec<(Vec<f64>, Vec<f64>)> = pt_index
            .par_iter()
            .map(|&(part, tap)| {
                let re = pass_weights(cv, lin, n, part, t, tap);
                let im = if paired {
                    pass_weights(cv, lin, n, part, t + 1, tap)
                } else {
                    vec![0.0; n]
                };
                (re, im)
            })
            .collect();
        let u = if paired {
            let terms: Vec<(&B::Ct, &[f64], &[f64])> = zs
                .iter()
                .zip(&pts)
                .map(|(z, (re, im))| (z, re.as_slice(), im.as_slice()))
                .collect();
            ctx.dot_complex(&terms)?
        } else {
            let terms: Vec<(&B::Ct, &[f64])> = zs
                .iter()
                .zip(&pts)
                .map(|(z, (re, _))| (z, re.as_slice()))
                .collect();
            ctx.dot(&terms)?
        };
        let u = sum_phases_and_groups(ctx, u, lin)?;
        // Keep phase (0, 0) of the output cells in each copy's first block (a channel past O
        // has zero weights); ½ when paired: the split doubles. With one copy (`g·B = n`) the
        // group sum is cyclic, so every block holds the total: keep them all, and the run
        // needs no replication.
        let cyclic = g * grid.block() == n;
        let mask = cell_mask(grid, n, cv.stride[0], if paired { 0.5 } else { 1.0 }, |b| {
            cyclic || b % g == 0
        });
        let mut u = ctx.dot(&[(&u, &mask)])?;
        // Replicate over the output cell's phases, then over the copy's run of g blocks.
        u = ctx.rot_sum(u, -1, og.k)?;
        u = ctx.rot_sum(u, -(og.wb() as isize), og.k)?;
        if !cyclic {
            u = ctx.rot_sum(u, -(og.block() as isize), g)?;
        }
        let parts = if paired {
            let (re, im) = ctx.split(&u)?;
            vec![re, im]
        } else {
            vec![u]
        };
        for (d, p) in parts.into_iter().enumerate() {
            let bias = lout.per_channel(t + d, n, |o| cv.bias[o] as f64 / range);
            out.push(ctx.b.add_plain(&p, &bias)?);
        }
    }
    Ok(out)
}

/// MPCNN's convolution: `P(g, r)` at gap `k` → dense `P(g', r')` at gap `k·stride`. Pass `t`
/// computes output channels `t·r + s` in copy `s` as ConvA does (real slots only), then each
/// channel is masked out of block `s` and rotated to its group and phase in the output
/// (MPCNN's `c_o` rotations), and copy 0 is replicated to `r'` copies by doubling.
fn conv_mpcnn<B: Backend>(
    ctx: &Ctx<B>,
    x: &B::Ct,
    cv: &nn::ir::Conv2d,
    lin: &Layout,
    lout: &Layout,
    range: f64,
) -> Result<B::Ct> {
    let n = ctx.n;
    let Layout::P { grid, g, r, .. } = *lin else {
        unreachable!("lowering")
    };
    let Layout::P {
        grid: og,
        r: r2,
        g: g2,
        ..
    } = *lout
    else {
        unreachable!("lowering")
    };
    let block = grid.block();
    let o_count = cv.out_channels();
    let tp = taps(cv);
    let zs = tap_rotations(ctx, x, cv, lin)?;
    let mut pieces: Vec<B::Ct> = vec![];
    for t in 0..o_count.div_ceil(r) {
        let pts: Vec<Vec<f64>> = tp
            .par_iter()
            .map(|&tap| pass_weights(cv, lin, n, 0, t, tap))
            .collect();
        let terms: Vec<(&B::Ct, &[f64])> = zs
            .iter()
            .zip(&pts)
            .map(|(z, p)| (z, p.as_slice()))
            .collect();
        let u = sum_phases_and_groups(ctx, ctx.dot(&terms)?, lin)?;
        for s in 0..r.min(o_count - t * r) {
            let o = t * r + s;
            // Channel o: block s·g (copy s, group 0), phase (0, 0) of the output cells; to
            // block gp (copy 0 of its group) of the output.
            let mask = cell_mask(grid, n, cv.stride[0], 1.0, |b| b == s * g);
            let m = ctx.dot(&[(&u, &mask)])?;
            let (gp, ph) = (o / og.phases(), o % og.phases());
            let dst = gp * og.block() + (ph / og.k) * og.wb() + ph % og.k;
            let rho = (s * g * block) as isize - dst as isize;
            pieces.push(if rho == 0 { m } else { ctx.rot(&m, rho)? });
        }
    }
    let mut y = pieces.pop().expect("a convolution has an output channel");
    for p in &pieces {
        y = ctx.b.add(&y, p)?;
    }
    y = ctx.rot_sum(y, -((g2 * og.block()) as isize), r2)?;
    let bias = lout.per_channel(0, n, |o| cv.bias[o] as f64 / range);
    ctx.b.add_plain(&y, &bias)
}

/// ConvB: `I(r, g)` at gap `k` → `P(g', r')` at gap `k` (stride 1), `g' | g`. Output block
/// `β` reads input channel `t·r + ⌊β/g⌋` of ciphertext `t`; summing the blocks `β + j·g`,
/// `j < r` (cyclic: `r·g` blocks fill the ciphertext) covers every channel, and since `g' | g`
/// they all belong to `β`'s output group: every copy gets the total, with no mask (1 level).
/// An output `P` split over ciphertexts (then `r = 1`) is computed part by part.
fn conv_b<B: Backend>(
    ctx: &Ctx<B>,
    xs: &[B::Ct],
    cv: &nn::ir::Conv2d,
    lin: &Layout,
    lout: &Layout,
    range: f64,
) -> Result<Vec<B::Ct>> {
    let n = ctx.n;
    let Layout::I { grid, r, g, .. } = *lin else {
        unreachable!("lowering")
    };
    let (h, w, k, wb, block) = (
        grid.h as isize,
        grid.w as isize,
        grid.k as isize,
        grid.wb() as isize,
        grid.block(),
    );
    let c_count = cv.in_channels();
    let tp = taps(cv);
    let xs = at_lowest_level(ctx, xs)?;
    (0..lout.cts())
        .map(|part| {
            // acc_τ = Σ_t pt_{t,τ} ⊙ x_t, with pt_{t,τ}[P + τ] the weight that output slot P
            // of this part needs.
            let accs: Vec<(isize, B::Ct)> = tp
                .iter()
                .map(|&(ky, kx, dy, dx)| {
                    let tau = k * (dy * wb + dx);
                    let pts: Vec<Vec<f64>> = (0..xs.len())
                        .into_par_iter()
                        .map(|t| {
                            let mut pt = vec![0.0; n];
                            for p in 0..n {
                                let Some((o, i, j)) = lout.at(part, p) else {
                                    continue;
                                };
                                let (ii, jj) = (i as isize + dy, j as isize + dx);
                                if ii < 0 || jj < 0 || ii >= h || jj >= w {
                                    continue;
                                }
                                let c = t * r + p / block / g;
                                if c >= c_count {
                                    continue;
                                }
                                let q = (p as isize + tau).rem_euclid(n as isize) as usize;
                                pt[q] = weight(cv, o, c, ky, kx);
                            }
                            pt
                        })
                        .collect();
                    let terms: Vec<(&B::Ct, &[f64])> = xs
                        .iter()
                        .zip(&pts)
                        .map(|(x, p)| (x, p.as_slice()))
                        .collect();
                    Ok((tau, ctx.dot(&terms)?))
                })
                .collect::<Result<_>>()?;
            let terms: Vec<(&B::Ct, isize)> = accs.iter().map(|(tau, acc)| (acc, *tau)).collect();
            let y = ctx.rot_terms(&terms)?;
            let y = ctx.rot_sum(y, (g * block) as isize, r)?;
            let bias = lout.per_channel(part, n, |o| cv.bias[o] as f64 / range);
            ctx.b.add_plain(&y, &bias)
        })
        .collect()
}

/// The ciphertexts of a value, all dropped to the lowest level among them.
fn at_lowest_level<B: Backend>(ctx: &Ctx<B>, xs: &[B::Ct]) -> Result<Vec<B::Ct>> {
    let level = xs.iter().map(|c| ctx.b.level(c)).min().unwrap_or(0);
    xs.iter().map(|c| ctx.b.drop_to(c, level)).collect()
}

/// ConvD: a convolution `P → P` (the output's dense layout) by diagonals with baby and giant
/// steps ([`crate::diag`]); 1 level.
fn conv_d<B: Backend>(
    ctx: &Ctx<B>,
    xs: &[B::Ct],
    cv: &nn::ir::Conv2d,
    plan: &crate::diag::DiagPlan,
    lin: &Layout,
    lout: &Layout,
    range: f64,
) -> Result<Vec<B::Ct>> {
    let n = ctx.n;
    let (tin, tout): (Vec<SlotTable>, Vec<SlotTable>) = rayon::join(
        || (0..xs.len()).map(|p| SlotTable::new(lin, p, n)).collect(),
        || {
            (0..lout.cts())
                .map(|q| SlotTable::new(lout, q, n))
                .collect()
        },
    );
    let xs = at_lowest_level(ctx, xs)?;
    let ys = diagonal_sums(ctx, &xs, plan, lout.cts(), &|p, q, d, giant| {
        crate::diag::diagonal(cv, lin, (&tin[p], &tout[q]), d, giant)
    })?;
    ys.into_iter()
        .enumerate()
        .map(|(q, y)| {
            let bias = lout.per_channel(q, n, |o| cv.bias[o] as f64 / range);
            ctx.b.add_plain(&y, &bias)
        })
        .collect()
}

/// ConvS (`crate::diag::ShiftPlan`): the input's copies shifted by `e_s` (`r − 1` hoisted
/// rotations and one masked product per copy: one level), the diagonal sums over the rotations
/// `T` (one level), then the sum over the copies, which gives every copy the whole convolution.
fn conv_s<B: Backend>(
    ctx: &Ctx<B>,
    x: &B::Ct,
    cv: &nn::ir::Conv2d,
    sp: &crate::diag::ShiftPlan,
    lin: &Layout,
    range: f64,
) -> Result<B::Ct> {
    let (n, p) = (ctx.n, sp.period);
    let ks: Vec<isize> = sp.shifts[1..].iter().map(|&e| e as isize).collect();
    let moved = ctx.rot_many(x, &ks)?;
    let masks: Vec<Vec<f64>> = (0..sp.copies())
        .map(|c| (0..n).map(|s| f64::from(u8::from(s / p == c))).collect())
        .collect();
    let terms: Vec<(&B::Ct, &[f64])> = std::iter::once(x)
        .chain(&moved)
        .zip(&masks)
        .map(|(y, m)| (y, m.as_slice()))
        .collect();
    let shifted = ctx.dot(&terms)?;
    let table = SlotTable::new(lin, 0, n);
    let z = diagonal_sums(ctx, &[shifted], &sp.plan, 1, &|_, _, t, giant| {
        sp.diagonal(cv, (&table, &table), t, giant)
    })?
    .remove(0);
    let y = ctx.rot_sum(z, p as isize, sp.copies())?;
    let bias = lin.per_channel(0, n, |o| cv.bias[o] as f64 / range);
    ctx.b.add_plain(&y, &bias)
}

/// `Σ_G rot_G(Σ_t rot_{−G}(diag_{G+t}) ⊙ rot_t(x_p))` for every output part `q` of `plan`
/// (inputs at one level), `diag(p, q, d, G)` giving `rot_{−G}(diag_d)`: the baby rotations
/// hoisted once per input part, the giant ones after the products with one ModDown per
/// output part.
fn diagonal_sums<B: Backend>(
    ctx: &Ctx<B>,
    xs: &[B::Ct],
    plan: &crate::diag::DiagPlan,
    out_parts: usize,
    diag: &(dyn Fn(usize, usize, usize, usize) -> Vec<f64> + Sync),
) -> Result<Vec<B::Ct>> {
    let n = ctx.n;
    let babies: Vec<Vec<usize>> = (0..xs.len()).map(|p| plan.babies(p)).collect();
    let zs: Vec<Vec<B::Ct>> = xs
        .iter()
        .zip(&babies)
        .map(|(x, bs)| {
            let ks: Vec<isize> = bs.iter().map(|&t| t as isize).collect();
            if ks.is_empty() {
                return Ok(Vec::new());
            }
            ctx.rot_many(x, &ks)
        })
        .collect::<Result<_>>()?;
    (0..out_parts)
        .map(|q| {
            // Giant steps two at a time: one complex product per baby step computes both
            // (real parts: the first, imaginary: the second; the network's values are real),
            // and one conjugation splits them — half the plaintext products (each an encoding
            // at N slots) for one key switch per pair.
            let mut inner: Vec<(isize, B::Ct)> = Vec::new();
            for pair in plan.giant_pairs(q) {
                // (input part, baby index) → the offset each giant of the pair reads there.
                let mut uses: BTreeMap<(usize, usize), [Option<usize>; 2]> = BTreeMap::new();
                for (h, &giant) in pair.iter().enumerate() {
                    for (p, bs) in babies.iter().enumerate() {
                        for &d in plan.offsets[q][p]
                            .iter()
                            .filter(|&&d| d - d % plan.step == giant)
                        {
                            let t = bs.binary_search(&(d % plan.step)).expect("a baby step");
                            uses.entry((p, t)).or_default()[h] = Some(d);
                        }
                    }
                }
                let paired = pair.len() == 2;
                let scale = if paired { 0.5 } else { 1.0 };
                let pts: Vec<[Vec<f64>; 2]> = uses
                    .par_iter()
                    .map(|(&(p, _), ds)| {
                        let v = |h: usize| match ds[h] {
                            Some(d) => diag(p, q, d, pair[h])
                                .into_iter()
                                .map(|w| w * scale)
                                .collect(),
                            None => vec![0.0; n],
                        };
                        [v(0), if paired { v(1) } else { Vec::new() }]
                    })
                    .collect();
                let y = if paired {
                    let terms: Vec<(&B::Ct, &[f64], &[f64])> = uses
                        .keys()
                        .zip(&pts)
                        .map(|(&(p, t), v)| (&zs[p][t], v[0].as_slice(), v[1].as_slice()))
                        .collect();
                    let (re, im) = ctx.split(&ctx.dot_complex(&terms)?)?;
                    inner.push((pair[0] as isize, re));
                    im
                } else {
                    let terms: Vec<(&B::Ct, &[f64])> = uses
                        .keys()
                        .zip(&pts)
                        .map(|(&(p, t), v)| (&zs[p][t], v[0].as_slice()))
                        .collect();
                    ctx.dot(&terms)?
                };
                inner.push((pair[pair.len() - 1] as isize, y));
            }
            let mut terms: Vec<(&B::Ct, isize)> = inner.iter().map(|(gs, y)| (y, *gs)).collect();
            // All-zero weights: the output is the bias alone.
            let zero_vec = vec![0.0; n];
            let zero;
            if terms.is_empty() {
                zero = ctx.dot(&[(&xs[0], zero_vec.as_slice())])?;
                terms.push((&zero, 0));
            }
            ctx.rot_terms(&terms)
        })
        .collect()
}

/// Option-A shortcut: output slot `P` takes the input slot holding channel `c − before` at
/// pixel `(step·i, step·j)`; rotations grouped by offset, the input copy chosen per slot to
/// reuse offsets.
fn remap<B: Backend>(
    ctx: &Ctx<B>,
    x: &B::Ct,
    step: usize,
    before: usize,
    lin: &Layout,
    lout: &Layout,
) -> Result<B::Ct> {
    let n = ctx.n;
    let Layout::P {
        grid,
        c: c_in,
        g,
        r,
        ..
    } = *lin
    else {
        unreachable!("lowering")
    };
    let m = grid.phases();
    let mut by_rho: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
    for p in 0..n {
        let Some((o, i, j)) = lout.at(0, p) else {
            continue;
        };
        if o < before || o - before >= c_in {
            continue;
        }
        let c = o - before;
        let (gi, ph) = (c / m, c % m);
        let off = grid.offset(step * i, step * j, ph / grid.k, ph % grid.k);
        let rhos: Vec<usize> = (0..r)
            .map(|s| {
                (((s * g + gi) * grid.block() + off) as isize - p as isize).rem_euclid(n as isize)
                    as usize
            })
            .collect();
        let rho = rhos
            .iter()
            .copied()
            .find(|q| by_rho.contains_key(q))
            .unwrap_or(rhos[0]);
        by_rho.entry(rho).or_insert_with(|| vec![0.0; n])[p] = 1.0;
    }
    let ks: Vec<isize> = by_rho.keys().map(|&k| k as isize).collect();
    let zs = ctx.rot_many(x, &ks)?;
    let terms: Vec<(&B::Ct, &[f64])> = zs
        .iter()
        .zip(by_rho.values())
        .map(|(z, p)| (z, p.as_slice()))
        .collect();
    ctx.dot(&terms)
}

/// Global average pooling and FC: each input ciphertext's pixels are summed into pixel (0, 0)
/// of every cell once; pass `t` then weights copy `s` of every group at pixel (0, 0) for output
/// `o = t·r + s`, sums phases and the copy's groups into the copy's first slot (block `s·g`),
/// over all input ciphertexts, and each logit is masked out of its pass and rotated to slot
/// `o·stride` (pieces with the same rotation share it).
fn pool_fc<B: Backend>(
    ctx: &Ctx<B>,
    xs: &[B::Ct],
    fc: &nn::ir::Linear,
    lin: &Layout,
    lout: &Layout,
    range: f64,
) -> Result<B::Ct> {
    let n = ctx.n;
    let Layout::P { grid, g, r, .. } = *lin else {
        unreachable!("lowering")
    };
    let Layout::Vector { stride, .. } = *lout else {
        unreachable!("lowering")
    };
    let block = grid.block();
    let hw = (grid.h * grid.w) as f64;
    // Lanes: the copies (logit t·r + s in copy s of pass t), or with one copy the cells of the
    // first map row (logit t·w + j in cell (0, j) of pass t: the pooled sums, clean in cell
    // (0, 0) only, are rotated there, so each lane's product reads its own rotation).
    let lanes = crate::lower::fc_lanes(lin, fc.out_features, n);
    let per_pass = r * lanes;
    // Row bands: the bands of a group add up cell by cell (each holds its own rows, zeros
    // elsewhere), and the row sum runs over one band's pixel rows.
    let bands = lin.bands();
    let summed: Vec<B::Ct>;
    let xs = if bands > 1 {
        summed = xs
            .chunks(bands)
            .map(|band| {
                band[1..]
                    .iter()
                    .try_fold(band[0].clone(), |acc, x| ctx.b.add(&acc, x))
            })
            .collect::<Result<_>>()?;
        &summed[..]
    } else {
        xs
    };
    let rows = grid.hp().min(n / (grid.k * grid.wb()));
    let pooled: Vec<Vec<B::Ct>> = xs
        .iter()
        .map(|x| {
            let u = ctx.rot_sum(x.clone(), grid.k as isize, grid.wp())?;
            let u = ctx.rot_sum(u, (grid.k * grid.wb()) as isize, rows)?;
            if lanes == 1 {
                return Ok(vec![u]);
            }
            let ks: Vec<isize> = (0..lanes).map(|j| -((j * grid.k) as isize)).collect();
            ctx.rot_many(&u, &ks)
        })
        .collect::<Result<_>>()?;
    // Per part, the slots that take weights — (slot, channel, the logit's offset in a pass:
    // copy·w + lane) — the same in every pass.
    let places: Vec<Vec<(usize, usize, usize)>> = (0..xs.len())
        .map(|part| {
            (0..n)
                .filter_map(|s| match lin.at(part * bands, s) {
                    Some((c, 0, j)) if j < lanes => Some((s, c, (s / (g * block)) * lanes + j)),
                    _ => None,
                })
                .collect()
        })
        .collect();
    let passes = fc.out_features.div_ceil(per_pass);
    let mut outs = vec![];
    for t in 0..passes {
        // Per part and lane, the weights of the pass's logits at their slots.
        let pts: Vec<Vec<Vec<f64>>> = places
            .iter()
            .map(|place| {
                let mut v = vec![vec![0.0; n]; lanes];
                for &(s, c, off) in place {
                    let o = t * per_pass + off;
                    if o < fc.out_features {
                        v[off % lanes][s] = fc.weight[o * fc.in_features + c] as f64 / hw;
                    }
                }
                v
            })
            .collect();
        let terms: Vec<(&B::Ct, &[f64])> = pooled
            .iter()
            .zip(&pts)
            .flat_map(|(xj, pj)| xj.iter().zip(pj).map(|(x, p)| (x, p.as_slice())))
            .collect();
        let mut u = ctx.dot(&terms)?;
        u = ctx.rot_sum(u, 1, grid.k)?;
        u = ctx.rot_sum(u, grid.wb() as isize, grid.k)?;
        u = ctx.rot_sum(u, block as isize, g)?;
        outs.push(u);
    }
    // Logit o = t·r·w + s·w + j sits at slot s·g·B + j·k of pass t; it goes to o·stride.
    let mut by_rho: BTreeMap<isize, Vec<(usize, Vec<f64>)>> = BTreeMap::new();
    for o in 0..fc.out_features {
        let (t, s, j) = (o / per_pass, (o % per_pass) / lanes, o % lanes);
        let src = s * g * block + j * grid.k;
        let mut mask = vec![0.0; n];
        mask[src] = 1.0;
        let rho = src as isize - (o * stride) as isize;
        by_rho.entry(rho).or_default().push((t, mask));
    }
    let mut y: Option<B::Ct> = None;
    for (rho, pieces) in &by_rho {
        let terms: Vec<(&B::Ct, &[f64])> = pieces
            .iter()
            .map(|(t, m)| (&outs[*t], m.as_slice()))
            .collect();
        let z = ctx.dot(&terms)?;
        let z = if *rho == 0 { z } else { ctx.rot(&z, *rho)? };
        y = Some(match y {
            None => z,
            Some(a) => ctx.b.add(&a, &z)?,
        });
    }
    let y = y.expect("a fully connected layer has an output");
    let bias: Vec<f64> = (0..n)
        .map(|s| {
            if s % stride == 0 && s / stride < fc.out_features {
                fc.bias[s / stride] as f64 / range
            } else {
                0.0
            }
        })
        .collect();
    ctx.b.add_plain(&y, &bias)
}

/// Log2 helper exported for reports.
pub fn log2_ceil(x: usize) -> usize {
    log2(x.next_power_of_two())
}
