//! Lowering of an imported model to a CKKS program (docs/protocols/hyphen.md § Lowering).
//!
//! Convolutions alternate between the two layouts: a convolution reading `P` runs as
//! [`Kind::ConvA`] and writes `I`; one reading `I` runs as [`Kind::ConvB`] and writes `P`. The
//! image is encrypted in `I` when its first consumer is a convolution, so the stem is a
//! `ConvB` and every residual block (`ConvA`, then `ConvB`) starts and ends in `P`, where its
//! shortcut lives. Polynomial subgraphs of one tensor (Mul / Add / BatchNorm with constants,
//! e.g. AESPA's `x·(a·x + b) + c`) become one per-channel polynomial of degree ≤ 2, evaluated
//! in square form ([`Kind::Square`], 1 level) with its per-channel factor folded into the
//! weights of the convolution or FC layer that reads it, where that is well conditioned.

use std::collections::{BTreeMap, BTreeSet};

use nn::ir::{Conv2d, Linear, Op};
use nn::{Model, NodeId};
use serde::Serialize;

use crate::error::{FheError, Result};
use crate::layout::{Grid, Layout};

/// A per-channel polynomial `a·x² + b·x + c` (real units, before range scaling).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PolyCoeffs {
    pub a: Vec<f64>,
    pub b: Vec<f64>,
    pub c: Vec<f64>,
}

impl PolyCoeffs {
    pub fn degree(&self) -> usize {
        if self.a.iter().any(|&v| v != 0.0) {
            2
        } else if self.b.iter().any(|&v| v != 0.0) {
            1
        } else {
            0
        }
    }
}

#[derive(Clone, Debug)]
pub enum Kind {
    /// `P(g, r)` → `I(r, g)`: hoisted tap rotations, products, sums over phases and groups,
    /// a mask at the output cells, replication over the output phases and the copy's run.
    ConvA(Conv2d),
    /// `I(r, g)` → `P(g', r')`, `g' | g`: products per tap over all input ciphertexts, the tap
    /// rotations after the products, a sum over the `r` runs of channel blocks (every copy gets
    /// the total: no mask, 1 level).
    ConvB(Conv2d),
    /// `P` → the output's dense `P` (gap × stride): diagonals with baby and giant steps
    /// (`crate::diag`), with the plan the lowering made; no mask, 1 level.
    ConvD(Conv2d, std::sync::Arc<crate::diag::DiagPlan>),
    /// A stride-1 `P → P` (one ciphertext, `r ≥ 2` copies) whose input copies are first
    /// shifted (`crate::diag::ShiftPlan`): masked products (1 level), diagonals over the
    /// rotations `T` (1 level), a sum over the copies.
    ConvS(Conv2d, std::sync::Arc<crate::diag::ShiftPlan>),
    Poly(PolyCoeffs),
    /// A degree-2 activation in square form, one level: per channel, with the held
    /// coefficients `A = a·R`, `B = b`, `C = c/R` and `β = B/(2A)`, it computes
    /// `u = (x + β)² + C/A − β²`, so that `p(x) = A·u`. The factor `A` is left to the
    /// consumers, which fold it into their weights (docs/protocols/hyphen.md § Activations).
    Square(PolyCoeffs),
    Add,
    /// MPCNN's multiplexed parallel convolution, `P → P` (the baseline; Lee et al., ICML 2022):
    /// per pass the products and the phase and group sums of ConvA, then each output channel
    /// masked out of its copy and rotated to its place in the output, then replication.
    ConvMpcnn(Conv2d),
    /// Option-A shortcut: spatial subsampling by `step` and `before` zero channels in front.
    Remap {
        step: usize,
        before: usize,
    },
    /// Global average pooling followed by a fully connected layer.
    PoolFc(Linear),
    /// One stage of a composite approximation, a Chebyshev series on `[−1, 1]` in every slot
    /// (`for_product`: delivered ready for [`Kind::Mul`]).
    Series {
        series: ckks::ChebyshevSeries,
        for_product: bool,
    },
    /// Product of two values of one layout (ReLU's `x · (1 + sign x)/2`).
    Mul,
    Bootstrap,
}

impl Kind {
    pub fn name(&self) -> &'static str {
        match self {
            Kind::ConvA(_) => "conv-a",
            Kind::ConvB(_) => "conv-b",
            Kind::ConvD(..) => "conv-d",
            Kind::ConvS(..) => "conv-s",
            Kind::ConvMpcnn(_) => "conv-mpcnn",
            Kind::Poly(_) => "poly",
            Kind::Square(_) => "square",
            Kind::Add => "add",
            Kind::Remap { .. } => "remap",
            Kind::PoolFc(_) => "pool-fc",
            Kind::Series { .. } => "series",
            Kind::Mul => "mul",
            Kind::Bootstrap => "bootstrap",
        }
    }
    /// Levels the step consumes.
    pub fn depth(&self) -> usize {
        match self {
            Kind::ConvA(_) | Kind::ConvMpcnn(_) | Kind::PoolFc(_) | Kind::ConvS(..) => 2,
            // Products only: the copy-major layouts need no mask (exec::conv_b).
            Kind::ConvB(_) | Kind::ConvD(..) => 1,
            Kind::Poly(p) => p.degree(),
            Kind::Series { series, .. } => ckks::polyeval::depth(series.degree()),
            Kind::Mul | Kind::Square(_) => 1,
            Kind::Remap { .. } => 1,
            Kind::Add | Kind::Bootstrap => 0,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Step {
    /// The ONNX node the step computes.
    pub name: String,
    pub kind: Kind,
    pub inputs: Vec<usize>,
    pub output: usize,
}

/// A lowered network: steps over values (value 0 is the encrypted image).
#[derive(Clone, Debug)]
pub struct Program {
    /// Slots per ciphertext.
    pub n: usize,
    /// Every value is held divided by `range` (docs/protocols/hyphen.md § Range).
    pub range: f64,
    pub input_shape: [usize; 3],
    pub layouts: Vec<Layout>,
    pub steps: Vec<Step>,
    pub output: usize,
    /// Level the client encrypts at.
    pub input_level: usize,
    /// Values the bootstrap placement must not refresh: square forms with a factor
    /// `|A| < 1/4`, whose held value `p(x)/A` may exceed the range.
    pub unbounded: BTreeSet<usize>,
}

#[derive(Clone, Debug)]
enum Val {
    Ct(usize),
    /// A polynomial of a materialized value.
    Sym {
        base: usize,
        p: PolyCoeffs,
    },
    /// A per-channel (or scalar, length 1) constant.
    Const(Vec<f64>),
    /// A subsampled value awaiting its channel padding (steps on H and W).
    Sub {
        v: usize,
        sh: usize,
        sw: usize,
    },
    /// Globally average-pooled (and maybe flattened) value awaiting its FC layer.
    Pooled(usize, Option<Vec<f64>>),
    /// Node `src` zero-padded on H and W (`[top, left, bottom, right]`), awaiting the
    /// convolution or average pool that absorbs the padding into its own.
    Padded {
        src: NodeId,
        pads: [usize; 4],
    },
    /// The image before its first consumer chose its layout.
    Image,
}

struct Lowerer<'a> {
    model: &'a Model,
    n: usize,
    range: f64,
    conv: ConvAlgo,
    relu_degrees: Vec<usize>,
    layouts: Vec<Layout>,
    steps: Vec<Step>,
    vals: Vec<Option<Val>>,
    /// Whether a square form may have a factor `|A| < 1/4` (its value then never bootstraps).
    relaxed: bool,
    /// Values that must not be bootstrapped (their magnitude is not bounded by the range).
    unbounded: BTreeSet<usize>,
}

fn unsupported(model: &Model, id: NodeId, reason: impl Into<String>) -> FheError {
    FheError::Unsupported {
        node: model.nodes[id].name.clone(),
        reason: reason.into(),
    }
}

impl<'a> Lowerer<'a> {
    fn push(&mut self, name: &str, kind: Kind, inputs: Vec<usize>, layout: Layout) -> usize {
        let output = self.layouts.len();
        self.layouts.push(layout);
        self.steps.push(Step {
            name: name.to_string(),
            kind,
            inputs,
            output,
        });
        output
    }

    fn channels_of(&self, v: usize) -> usize {
        self.layouts[v].channels()
    }

    /// The materialized value of node `id`.
    fn ct(&mut self, id: NodeId, consumer: NodeId) -> Result<usize> {
        let model = self.model;
        match self.vals[id].clone() {
            Some(Val::Ct(v)) => Ok(v),
            Some(Val::Image) => {
                // Any consumer other than a convolution reads the image in P.
                let l = self.image_layout(None)?;
                self.layouts[0] = l;
                self.vals[0] = Some(Val::Ct(0));
                Ok(0)
            }
            Some(Val::Sym { .. }) => match self.scaled(id)? {
                // A square-form activation (or a pending factor) shares its square with the
                // consumers that fold the factor; this consumer multiplies it in (1 level).
                (u, Some(alpha)) => {
                    let ch = alpha.len();
                    let p = PolyCoeffs {
                        a: vec![0.0; ch],
                        b: alpha,
                        c: vec![0.0; ch],
                    };
                    let layout = self.layouts[u].clone();
                    let v = self.push(&model.nodes[id].name, Kind::Poly(p), vec![u], layout);
                    self.vals[id] = Some(Val::Ct(v));
                    Ok(v)
                }
                // Materialized in the direct form.
                (v, None) => Ok(v),
            },
            Some(Val::Sub { v, sh, sw }) => {
                if sh != sw {
                    return Err(unsupported(model, id, "unequal subsampling steps"));
                }
                let c = self.channels_of(v);
                self.remap(id, v, sh, 0, c)
            }
            Some(Val::Const(_)) => Err(unsupported(
                model,
                consumer,
                "a constant operand outside a per-channel polynomial",
            )),
            Some(Val::Pooled(..)) => Err(unsupported(
                model,
                consumer,
                "global average pooling must feed a fully connected layer",
            )),
            Some(Val::Padded { .. }) => Err(unsupported(
                model,
                consumer,
                "spatial zero padding must feed a convolution or an average pool",
            )),
            None => Err(unsupported(model, consumer, "input not lowered")),
        }
    }

    /// Node `id` as a materialized value `u` and a per-channel factor `α` with value `α ⊙ u`
    /// (`None`: the factor is 1), for consumers that fold `α` into their weights. A degree-2
    /// activation becomes [`Kind::Square`] when its square form is well conditioned.
    fn scaled(&mut self, id: NodeId) -> Result<(usize, Option<Vec<f64>>)> {
        if let Some(Val::Sym { base, p }) = self.vals[id].clone() {
            if p.a.iter().all(|&v| v == 0.0) && p.c.iter().all(|&v| v == 0.0) {
                return Ok((base, Some(p.b)));
            }
            if p.degree() == 2 {
                if let Some((alpha, bounded)) = self.square_factor(&p) {
                    let layout = self.layouts[base].clone();
                    let name = self.model.nodes[id].name.clone();
                    let u = self.push(&name, Kind::Square(p), vec![base], layout);
                    if !bounded {
                        self.unbounded.insert(u);
                    }
                    let ch = alpha.len();
                    self.vals[id] = Some(Val::Sym {
                        base: u,
                        p: PolyCoeffs {
                            a: vec![0.0; ch],
                            b: alpha.clone(),
                            c: vec![0.0; ch],
                        },
                    });
                    return Ok((u, Some(alpha)));
                }
            }
        }
        // Not foldable: materialize (the caller's consumer is reported on failure).
        Ok((self.ct_plain(id)?, None))
    }

    /// `A = a·R` per channel when the square form of `p` is well conditioned, and whether the
    /// held square `u = p(x)/A` is bounded: `|β| = |B/(2A)| ≤ 4` always, so forming `(x + β)²`
    /// cancels at most a few bits; every `|A| ≥ 1/4` makes `u` at most 4 times the
    /// activation's held value (bounded: it may be bootstrapped). In the relaxed lowering
    /// `|A| ≥ 1/16` is accepted too, the value then unbounded (`u` up to 16 times the
    /// activation's value: far inside the 2^9 a level-0 ciphertext holds at `Δ = q_0/2^10`,
    /// but not inside a bootstrap's `[−1, 1]`).
    fn square_factor(&self, p: &PolyCoeffs) -> Option<(Vec<f64>, bool)> {
        let r = self.range;
        let floor = if self.relaxed { 1.0 / 16.0 } else { 0.25 };
        let ok =
            p.a.iter()
                .zip(&p.b)
                .all(|(&a, &b)| (a * r).abs() >= floor && (b / (2.0 * a * r)).abs() <= 4.0);
        let bounded = p.a.iter().all(|&a| (a * r).abs() >= 0.25);
        ok.then(|| (p.a.iter().map(|&a| a * r).collect(), bounded))
    }

    /// [`Lowerer::ct`] without the square form (for [`Lowerer::scaled`]'s fallback).
    fn ct_plain(&mut self, id: NodeId) -> Result<usize> {
        if let Some(Val::Sym { base, p }) = self.vals[id].clone() {
            let layout = self.layouts[base].clone();
            let v = self.push(
                &self.model.nodes[id].name.clone(),
                Kind::Poly(p),
                vec![base],
                layout,
            );
            self.vals[id] = Some(Val::Ct(v));
            return Ok(v);
        }
        self.ct(id, id)
    }

    /// The dense `P` of `c` channels on `grid` ([`Layout::dense_p`]: maps of any size, split
    /// over ciphertexts by channels and rows as needed).
    fn dense(&self, id: NodeId, c: usize, grid: Grid) -> Result<Layout> {
        Layout::dense_p(c, grid, self.n).ok_or_else(|| {
            unsupported(
                self.model,
                id,
                format!(
                    "a map row of {} slots (gap {}) is longer than a ciphertext's {} slots",
                    grid.wb(),
                    grid.k,
                    self.n
                ),
            )
        })
    }

    fn image_layout(&self, conv: Option<&Conv2d>) -> Result<Layout> {
        let [c, h, w] = image_shape(self.model)?;
        let grid = Grid { h, w, k: 1 };
        match conv {
            Some(cv) => {
                // I(r, g) with r ≤ the copies of the stem's output, so that ConvB can sum
                // its r channel blocks inside one output group.
                let out = self.dense(0, cv.out_channels(), grid)?;
                let Layout::P {
                    r: r_out, bands, ..
                } = out
                else {
                    unreachable!()
                };
                if bands > 1 {
                    // A block larger than a ciphertext: the image in row bands of P, read by a
                    // ConvD.
                    return self.dense(0, c, grid);
                }
                let r = c.next_power_of_two().min(r_out);
                Ok(Layout::I {
                    c,
                    grid,
                    r,
                    g: self.n / (r * grid.block()),
                })
            }
            None => self.dense(0, c, grid),
        }
    }

    fn remap(
        &mut self,
        id: NodeId,
        v: usize,
        step: usize,
        before: usize,
        c_out: usize,
    ) -> Result<usize> {
        let model = self.model;
        let Layout::P { grid, parts, .. } = self.layouts[v] else {
            return Err(unsupported(
                model,
                id,
                "a strided slice of a value not in layout P",
            ));
        };
        if parts > 1 {
            return Err(unsupported(
                model,
                id,
                "option-A shortcut of a map split over ciphertexts (use a 1×1 convolution)",
            ));
        }
        if grid.h % step != 0 || grid.w % step != 0 {
            return Err(unsupported(model, id, "slice step does not divide the map"));
        }
        let g2 = Grid {
            h: grid.h / step,
            w: grid.w / step,
            k: grid.k * step,
        };
        let l = self.dense(id, c_out, g2)?;
        if l.cts() > 1 {
            return Err(unsupported(
                model,
                id,
                "option-A shortcut into a map split over ciphertexts (use a 1×1 convolution)",
            ));
        }
        let out = self.push(
            &model.nodes[id].name,
            Kind::Remap { step, before },
            vec![v],
            l,
        );
        self.vals[id] = Some(Val::Ct(out));
        Ok(out)
    }

    /// Value `v` in layout `I` moved to the dense `P` by an identity 1×1 [`Kind::ConvB`]
    /// (products only, no rotation; 1 level).
    fn move_to_p(&mut self, id: NodeId, v: usize) -> Result<usize> {
        let model = self.model;
        let Layout::I { c, grid, r, .. } = self.layouts[v] else {
            unreachable!("caller checks")
        };
        let l = self.dense(id, c, grid)?;
        match l {
            Layout::P { r: r2, .. } if r2 >= r => {}
            _ => {
                return Err(unsupported(
                    model,
                    id,
                    "residual add of a layout-I value with fewer output copies than its blocks",
                ))
            }
        }
        let mut weight = vec![0f32; c * c];
        for i in 0..c {
            weight[i * c + i] = 1.0;
        }
        let cv = Conv2d {
            in_shape: [c, grid.h, grid.w],
            out_shape: [c, grid.h, grid.w],
            kernel: [1, 1],
            stride: [1, 1],
            pads: [0; 4],
            groups: 1,
            weight,
            bias: vec![0.0; c],
        };
        let name = format!("{}/to-p", model.nodes[id].name);
        Ok(self.push(&name, Kind::ConvB(cv), vec![v], l))
    }

    /// The symbolic polynomial view of node `id` (materialized values are the identity).
    fn sym(&self, id: NodeId) -> Option<(Option<usize>, PolyCoeffs)> {
        match self.vals[id].as_ref()? {
            Val::Ct(v) => {
                let c = self.channels_of(*v);
                Some((
                    Some(*v),
                    PolyCoeffs {
                        a: vec![0.0; c],
                        b: vec![1.0; c],
                        c: vec![0.0; c],
                    },
                ))
            }
            Val::Sym { base, p } => Some((Some(*base), p.clone())),
            Val::Const(k) => Some((
                None,
                PolyCoeffs {
                    a: vec![0.0; k.len()],
                    b: vec![0.0; k.len()],
                    c: k.clone(),
                },
            )),
            _ => None,
        }
    }

    /// A convolution (or a pooling written as one) of node `id`: ConvD, ConvA, ConvB or
    /// MPCNN's by the input's layout and the lowering's choice.
    fn conv(&mut self, id: NodeId, cv: &Conv2d) -> Result<Val> {
        let model = self.model;
        let node = &model.nodes[id];
        // An explicit zero padding before it is the convolution's own (taps outside the map
        // read nothing, which is reading zeros).
        let (input, padded_cv);
        let cv = match self.vals[node.inputs[0]].clone() {
            Some(Val::Padded { src, pads }) => {
                let mut c = cv.clone();
                c.in_shape[1] -= pads[0] + pads[2];
                c.in_shape[2] -= pads[1] + pads[3];
                for (p, e) in c.pads.iter_mut().zip(pads) {
                    *p += e;
                }
                input = src;
                padded_cv = c;
                &padded_cv
            }
            _ => {
                input = node.inputs[0];
                cv
            }
        };
        if cv.groups != 1 {
            return Err(unsupported(
                model,
                id,
                "grouped and depthwise convolutions are not built in FHE mode",
            ));
        }
        let (x, alpha) = if matches!(self.vals[input], Some(Val::Image)) {
            // The image in I for a ConvB stem; in P for MPCNN's and for a strided stem,
            // which only ConvD (or ConvA) can read.
            let in_i = match self.conv {
                ConvAlgo::Mpcnn => false,
                ConvAlgo::Diag | ConvAlgo::Shift | ConvAlgo::Auto => cv.stride == [1, 1],
                ConvAlgo::Pair => true,
            };
            let l = self.image_layout(in_i.then_some(cv))?;
            self.layouts[0] = l;
            self.vals[0] = Some(Val::Ct(0));
            (0, None)
        } else {
            self.scaled(input)?
        };
        // A pending per-channel factor of the input scales the weights (input side).
        let scaled_cv;
        let cv = match &alpha {
            Some(alpha) => {
                let mut c = cv.clone();
                let per_c = cv.kernel[0] * cv.kernel[1];
                let ci = cv.in_channels();
                for (k, w) in c.weight.iter_mut().enumerate() {
                    *w = (*w as f64 * alpha[(k / per_c) % ci]) as f32;
                }
                scaled_cv = c;
                &scaled_cv
            }
            None => cv,
        };
        let [_, h, w] = cv.in_shape;
        let [o, oh, ow] = cv.out_shape;
        let (sh, sw) = (cv.stride[0], cv.stride[1]);
        if sh != sw || h % sh != 0 || oh != h / sh || ow != w / sw {
            return Err(unsupported(
                model,
                id,
                "only 'same' convolutions (output = input / stride) are built",
            ));
        }
        // ConvD where chosen: `P` to the dense `P` of the output.
        // A map split into row bands has only ConvD (docs/protocols/hyphen.md § Row bands).
        let banded = self.layouts[x].bands() > 1;
        if banded && !matches!(self.conv, ConvAlgo::Diag | ConvAlgo::Shift | ConvAlgo::Auto) {
            return Err(unsupported(
                model,
                id,
                format!(
                    "a map larger than a ciphertext ({}) needs ConvD (--fhe-conv auto or diag)",
                    self.layouts[x].describe()
                ),
            ));
        }
        // The output's grid: the input's gap times the stride (the same block).
        let Some(grid) = self.layouts[x].grid() else {
            return Err(unsupported(model, id, "convolution of a vector"));
        };
        let og = Grid {
            h: oh,
            w: ow,
            k: grid.k * sh,
        };
        if let (lin @ Layout::P { .. }, ConvAlgo::Shift) = (&self.layouts[x], self.conv) {
            let shifted = Layout::dense_p(o, og, self.n).and_then(|lout| {
                crate::diag::ShiftPlan::new(cv, lin, &lout, self.n).map(|sp| (lout, sp))
            });
            if let Some((l, sp)) = shifted {
                let kind = Kind::ConvS(cv.clone(), std::sync::Arc::new(sp));
                return Ok(Val::Ct(self.push(&node.name, kind, vec![x], l)));
            }
        }
        let diag_out = match &self.layouts[x] {
            lin @ Layout::P { .. }
                if matches!(self.conv, ConvAlgo::Diag | ConvAlgo::Shift | ConvAlgo::Auto) =>
            {
                Layout::dense_p(o, og, self.n).and_then(|lout| {
                    let plan = crate::diag::DiagPlan::new(cv, lin, &lout, self.n);
                    (matches!(self.conv, ConvAlgo::Diag | ConvAlgo::Shift)
                        || banded
                        || conv_d_cost(&plan) < pair_cost(cv, lin, self.n))
                    .then_some((lout, plan))
                })
            }
            _ => None,
        };
        if let Some((l, mut plan)) = diag_out {
            // Shift asks for the fewest key switches: no conjugations for paired giant steps.
            plan.paired = self.conv != ConvAlgo::Shift;
            let kind = Kind::ConvD(cv.clone(), std::sync::Arc::new(plan));
            return Ok(Val::Ct(self.push(&node.name, kind, vec![x], l)));
        }
        Ok(match self.layouts[x].clone() {
            Layout::P { parts, .. } if self.conv == ConvAlgo::Mpcnn => {
                let l = self.dense(id, o, og)?;
                if parts > 1 || l.cts() > 1 {
                    return Err(unsupported(
                            model,
                            id,
                            "MPCNN's convolution of a map split over ciphertexts is not built (use --fhe-conv pair)",
                        ));
                }
                Val::Ct(self.push(&node.name, Kind::ConvMpcnn(cv.clone()), vec![x], l))
            }
            Layout::P { g, r, .. } => {
                let l = Layout::I {
                    c: o,
                    grid: og,
                    r,
                    g,
                };
                Val::Ct(self.push(&node.name, Kind::ConvA(cv.clone()), vec![x], l))
            }
            Layout::I { r, .. } => {
                if sh != 1 {
                    return Err(unsupported(model, id, "a strided convolution must read layout P (it follows a ConvB or a residual add)"));
                }
                let l = self.dense(id, o, og)?;
                let Layout::P { r: r2, .. } = l else {
                    unreachable!()
                };
                if r2 < r {
                    return Err(unsupported(
                        model,
                        id,
                        format!("output copies {r2} < input channel blocks {r}"),
                    ));
                }
                Val::Ct(self.push(&node.name, Kind::ConvB(cv.clone()), vec![x], l))
            }
            Layout::Vector { .. } => unreachable!("a vector has no grid"),
        })
    }

    fn lower_node(&mut self, id: NodeId) -> Result<()> {
        let model = self.model;
        let node = &model.nodes[id];
        let val = match &node.op {
            Op::Input => Val::Image,
            Op::Constant(t) => {
                let numel = t.data.len();
                let big: Vec<usize> = (0..t.shape.len()).filter(|&a| t.shape[a] != 1).collect();
                // A scalar, or a vector on the channel axis ([C, 1, 1] or [1, C, 1, 1]).
                let per_channel = numel == 1 || (big.len() == 1 && t.shape.len() - big[0] == 3);
                if !per_channel {
                    // Kept as a constant; an error arises only if a consumer needs it.
                    Val::Const(vec![f64::NAN])
                } else {
                    Val::Const(t.data.iter().map(|&x| x as f64).collect())
                }
            }
            Op::Conv(cv) => self.conv(id, cv)?,
            Op::Add | Op::Mul => {
                let (a, b) = (node.inputs[0], node.inputs[1]);
                let sa = self.sym(a);
                let sb = self.sym(b);
                match (sa, sb) {
                    (Some((ba, pa)), Some((bb, pb)))
                        if !(matches!(node.op, Op::Add)
                            && ba.is_some()
                            && bb.is_some()
                            && ba != bb) =>
                    {
                        let base = match (ba, bb) {
                            (Some(x), Some(y)) if x != y => {
                                return Err(unsupported(
                                    model,
                                    id,
                                    "product of two different activations",
                                ));
                            }
                            (Some(x), _) | (_, Some(x)) => Some(x),
                            (None, None) => None,
                        };
                        let p = if matches!(node.op, Op::Add) {
                            combine(&pa, &pb, |x, y| x + y)
                        } else {
                            multiply(&pa, &pb)
                                .ok_or_else(|| unsupported(model, id, "polynomial of degree > 2"))?
                        };
                        if p.c.iter().any(|v| v.is_nan()) {
                            return Err(unsupported(
                                model,
                                id,
                                "a constant that is not per-channel",
                            ));
                        }
                        match base {
                            Some(base) => {
                                let ch = self.channels_of(base);
                                Val::Sym {
                                    base,
                                    p: broadcast(p, ch).ok_or_else(|| {
                                        unsupported(
                                            model,
                                            id,
                                            "constant length does not match the channels",
                                        )
                                    })?,
                                }
                            }
                            None => Val::Const(p.c),
                        }
                    }
                    _ if matches!(node.op, Op::Add) => {
                        let x = self.ct(a, id)?;
                        let y = self.ct(b, id)?;
                        // A projection shortcut (1×1 convolution, ConvA) lands in I: back to P
                        // beside the block's output.
                        let (x, y) = match (&self.layouts[x], &self.layouts[y]) {
                            (Layout::I { .. }, Layout::P { .. }) => (self.move_to_p(id, x)?, y),
                            (Layout::P { .. }, Layout::I { .. }) => (x, self.move_to_p(id, y)?),
                            _ => (x, y),
                        };
                        if self.layouts[x] != self.layouts[y] {
                            return Err(unsupported(
                                model,
                                id,
                                format!(
                                    "residual add of layouts {} and {}",
                                    self.layouts[x].describe(),
                                    self.layouts[y].describe()
                                ),
                            ));
                        }
                        let l = self.layouts[x].clone();
                        Val::Ct(self.push(&node.name, Kind::Add, vec![x, y], l))
                    }
                    _ => return Err(unsupported(model, id, "product of two activations")),
                }
            }
            Op::BatchNorm(bn) => {
                let (base, p) = self
                    .sym(node.inputs[0])
                    .ok_or_else(|| unsupported(model, id, "BatchNorm of this value"))?;
                let s: Vec<f64> = bn.scale.iter().map(|&v| v as f64).collect();
                let t: Vec<f64> = bn.shift.iter().map(|&v| v as f64).collect();
                let q = PolyCoeffs {
                    a: vec![0.0; s.len()],
                    b: s,
                    c: t,
                };
                let p = multiply_affine(&p, &q);
                match base {
                    Some(base) => Val::Sym { base, p },
                    None => Val::Const(p.c),
                }
            }
            Op::Slice(sl) => {
                let st = &sl.steps;
                let ok =
                    sl.starts.iter().all(|&s| s == 0) && st.len() == 4 && st[0] == 1 && st[1] == 1;
                if !ok {
                    return Err(unsupported(
                        model,
                        id,
                        "only a spatial subsampling slice (x[:, :, ::s, ::s]) is built",
                    ));
                }
                let (v, sh, sw) = match self.vals[node.inputs[0]].clone() {
                    Some(Val::Sub { v, sh, sw }) => (v, sh, sw),
                    _ => (self.ct(node.inputs[0], id)?, 1, 1),
                };
                Val::Sub {
                    v,
                    sh: sh * st[2],
                    sw: sw * st[3],
                }
            }
            Op::Pad(p)
                if p.before.len() == 4
                    && p.before[..2].iter().chain(&p.after[..2]).all(|&e| e == 0)
                    && !matches!(self.vals[node.inputs[0]], Some(Val::Sub { .. })) =>
            {
                Val::Padded {
                    src: node.inputs[0],
                    pads: [p.before[2], p.before[3], p.after[2], p.after[3]],
                }
            }
            Op::Pad(p) => {
                let Some(Val::Sub { v, sh: step, sw }) = self.vals[node.inputs[0]].clone() else {
                    return Err(unsupported(
                        model,
                        id,
                        "padding other than option A's channel padding of a subsampled map",
                    ));
                };
                if step != sw {
                    return Err(unsupported(model, id, "unequal subsampling steps"));
                }
                if p.before.len() != 4
                    || p.before[0]
                        + p.after[0]
                        + p.before[2]
                        + p.after[2]
                        + p.before[3]
                        + p.after[3]
                        != 0
                {
                    return Err(unsupported(model, id, "only channel padding is built"));
                }
                let c = self.channels_of(v) + p.before[1] + p.after[1];
                Val::Ct(self.remap(id, v, step, p.before[1], c)?)
            }
            Op::AvgPool(pool) => {
                // A k×k average is a convolution whose weights link each channel to itself
                // (ConvD keeps only the offsets of nonzero weights: one per tap and phase).
                let chw = |sh: &[usize]| match *sh {
                    [1, c, h, w] => Some([c, h, w]),
                    _ => None,
                };
                let (Some([c, h, w]), Some([_, oh, ow])) =
                    (chw(&model.nodes[node.inputs[0]].shape), chw(&node.shape))
                else {
                    return Err(unsupported(
                        model,
                        id,
                        "average pooling of a non-[1, C, H, W] value",
                    ));
                };
                let [kh, kw] = pool.kernel;
                let padded = pool.pads.iter().any(|&p| p > 0);
                if padded && !pool.count_include_pad {
                    return Err(unsupported(
                        model,
                        id,
                        "average pooling that excludes the padding from its divisor",
                    ));
                }
                let per = kh * kw;
                let mut weight = vec![0f32; c * c * per];
                for ch in 0..c {
                    for t in 0..per {
                        weight[(ch * c + ch) * per + t] = 1.0 / per as f32;
                    }
                }
                let cv = Conv2d {
                    in_shape: [c, h, w],
                    out_shape: [c, oh, ow],
                    kernel: pool.kernel,
                    stride: pool.stride,
                    pads: pool.pads,
                    groups: 1,
                    weight,
                    bias: vec![0.0; c],
                };
                self.conv(id, &cv)?
            }
            Op::GlobalAvgPool => {
                let (x, alpha) = self.scaled(node.inputs[0])?;
                if !matches!(self.layouts[x], Layout::P { .. }) {
                    return Err(unsupported(
                        model,
                        id,
                        "global average pooling of a value not in layout P",
                    ));
                }
                Val::Pooled(x, alpha)
            }
            Op::Reshape => match self.vals[node.inputs[0]].clone() {
                Some(Val::Pooled(x, alpha)) => Val::Pooled(x, alpha),
                _ => return Err(unsupported(model, id, "reshape of a feature map")),
            },
            Op::Linear(lin) => {
                let Some(Val::Pooled(x, alpha)) = self.vals[node.inputs[0]].clone() else {
                    return Err(unsupported(
                        model,
                        id,
                        "a fully connected layer must follow global average pooling",
                    ));
                };
                let Layout::P { grid, .. } = self.layouts[x] else {
                    unreachable!()
                };
                if lin.rows != 1 || lin.in_features != self.channels_of(x) {
                    return Err(unsupported(
                        model,
                        id,
                        "FC input is not the pooled channels",
                    ));
                }
                let len = lin.out_features;
                if len == 0 || len > self.n {
                    return Err(unsupported(model, id, "more outputs than slots"));
                }
                // Logit o at slot o·stride: one per block where they fit, denser otherwise; at
                // the cells' spacing where the FC's lanes are the cells of a map row
                // ([`fc_lanes`]).
                let stride = match fc_lanes(&self.layouts[x], len, self.n) {
                    1 => grid.block().min(self.n / len.next_power_of_two()),
                    _ => grid.k,
                };
                let l = Layout::Vector { len, stride };
                // A pending per-channel factor of the pooled value scales the weights' columns.
                let mut lin = lin.clone();
                if let Some(alpha) = &alpha {
                    for (k, w) in lin.weight.iter_mut().enumerate() {
                        *w = (*w as f64 * alpha[k % lin.in_features]) as f32;
                    }
                }
                Val::Ct(self.push(&node.name, Kind::PoolFc(lin), vec![x], l))
            }
            Op::Relu => {
                // relu(x) = x · (1 + sign x)/2, sign by the minimax composite of the lowering's
                // degrees (MPCNN's by default) with the gap that minimizes the ReLU error
                // (`Composite::relu_minimax`), the last stage returning (1 + sign)/2 directly.
                let x = self.ct(node.inputs[0], id)?;
                let comp = relu_sign(&self.relu_degrees)
                    .map_err(|e| unsupported(model, id, format!("composite sign: {e}")))?;
                let last = comp.stages.len() - 1;
                let layout = self.layouts[x].clone();
                let mut v = x;
                for (i, st) in comp.stages.iter().enumerate() {
                    let series = if i == last {
                        let d = st.degree();
                        ckks::ChebyshevSeries::interpolate(
                            |t| 0.5 + 0.5 * st.eval(t).re,
                            -1.0,
                            1.0,
                            d,
                        )
                        .map_err(|e| unsupported(model, id, e.to_string()))?
                    } else {
                        st.clone()
                    };
                    v = self.push(
                        &node.name,
                        Kind::Series {
                            series,
                            for_product: i == last,
                        },
                        vec![v],
                        layout.clone(),
                    );
                }
                Val::Ct(self.push(&node.name, Kind::Mul, vec![x, v], layout))
            }
            Op::Relu6 => {
                return Err(unsupported(model, id, "ReLU6 is not built in FHE mode"));
            }
            other => {
                return Err(unsupported(
                    model,
                    id,
                    format!("op {} is not built in FHE mode", other.name()),
                ))
            }
        };
        self.vals[id] = Some(val);
        Ok(())
    }
}

/// `ckks::Composite::relu_minimax(degrees)`, computed once per process and degrees (the Remez
/// exchanges take seconds for degree 63, and a deployment lowers its model several times).
fn relu_sign(degrees: &[usize]) -> std::result::Result<ckks::Composite, ckks::CkksError> {
    use std::collections::BTreeMap;
    use std::sync::{Mutex, OnceLock};
    static CACHE: OnceLock<Mutex<BTreeMap<Vec<usize>, ckks::Composite>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(BTreeMap::new()));
    if let Some(c) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(degrees) {
        return Ok(c.clone());
    }
    let (c, _, _) = ckks::Composite::relu_minimax(degrees)?;
    cache
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(degrees.to_vec(), c.clone());
    Ok(c)
}

fn image_shape(model: &Model) -> Result<[usize; 3]> {
    match *model.input_shape() {
        [1, c, h, w] => Ok([c, h, w]),
        _ => Err(unsupported(
            model,
            0,
            "FHE mode takes one [1, C, H, W] image",
        )),
    }
}

fn combine(a: &PolyCoeffs, b: &PolyCoeffs, f: impl Fn(f64, f64) -> f64) -> PolyCoeffs {
    let n = a.a.len().max(b.a.len());
    let get = |v: &Vec<f64>, i: usize| if v.len() == 1 { v[0] } else { v[i] };
    let z = |x: &Vec<f64>, y: &Vec<f64>| (0..n).map(|i| f(get(x, i), get(y, i))).collect();
    PolyCoeffs {
        a: z(&a.a, &b.a),
        b: z(&a.b, &b.b),
        c: z(&a.c, &b.c),
    }
}

/// Product of two polynomials of one variable, `None` above degree 2.
fn multiply(p: &PolyCoeffs, q: &PolyCoeffs) -> Option<PolyCoeffs> {
    let n = p.a.len().max(q.a.len());
    let get = |v: &Vec<f64>, i: usize| if v.len() == 1 { v[0] } else { v[i] };
    let mut out = PolyCoeffs {
        a: vec![0.0; n],
        b: vec![0.0; n],
        c: vec![0.0; n],
    };
    for i in 0..n {
        let (pa, pb, pc) = (get(&p.a, i), get(&p.b, i), get(&p.c, i));
        let (qa, qb, qc) = (get(&q.a, i), get(&q.b, i), get(&q.c, i));
        // Degree 3 and 4 terms must vanish.
        if pa * qb + pb * qa != 0.0 || pa * qa != 0.0 {
            return None;
        }
        out.a[i] = pa * qc + pb * qb + pc * qa;
        out.b[i] = pb * qc + pc * qb;
        out.c[i] = pc * qc;
    }
    Some(out)
}

fn multiply_affine(p: &PolyCoeffs, q: &PolyCoeffs) -> PolyCoeffs {
    // q(x) = s·x + t applied after p: s·p + t.
    let n = p.a.len().max(q.b.len());
    let get = |v: &Vec<f64>, i: usize| if v.len() == 1 { v[0] } else { v[i] };
    PolyCoeffs {
        a: (0..n).map(|i| get(&q.b, i) * get(&p.a, i)).collect(),
        b: (0..n).map(|i| get(&q.b, i) * get(&p.b, i)).collect(),
        c: (0..n)
            .map(|i| get(&q.b, i) * get(&p.c, i) + get(&q.c, i))
            .collect(),
    }
}

fn broadcast(p: PolyCoeffs, ch: usize) -> Option<PolyCoeffs> {
    let f = |v: Vec<f64>| match v.len() {
        1 => Some(vec![v[0]; ch]),
        l if l == ch => Some(v),
        _ => None,
    };
    Some(PolyCoeffs {
        a: f(p.a)?,
        b: f(p.b)?,
        c: f(p.c)?,
    })
}

/// Options of the lowering.
#[derive(Clone, Debug)]
pub struct Options {
    /// Slots per ciphertext.
    pub slots: usize,
    /// Range: every value of the network divided by it must lie in [−1, 1] at bootstrapping.
    pub range: f64,
    /// Level of a bootstrapped ciphertext; `None`: the plan must not bootstrap.
    pub boot_level: Option<usize>,
    /// Level the client encrypts at (default: `boot_level`).
    pub input_level: usize,
    /// Odd degrees of the composite sign behind ReLU (MPCNN's 15, 15, 27 by default).
    pub relu_degrees: Vec<usize>,
    /// Convolution algorithm.
    pub conv: ConvAlgo,
}

/// How convolutions are evaluated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub enum ConvAlgo {
    /// The alternating pair ConvA (`P → I`) / ConvB (`I → P`).
    Pair,
    /// MPCNN's multiplexed parallel convolution, `P → P` for every layer.
    Mpcnn,
    /// ConvD (`P → P` by diagonals) for every convolution reading `P`; ConvB for one reading
    /// `I` (the stem).
    Diag,
    /// ConvS (shifted input copies, `crate::diag::ShiftPlan`) for every stride-1 convolution
    /// of a one-ciphertext `P` with copies into the same layout, ConvD for the other
    /// convolutions reading `P`, ConvB for one reading `I`: the fewest key switches per
    /// convolution, at one more level for each ConvS.
    Shift,
    /// Per convolution reading `P`, ConvD where its cost estimate ([`conv_d_cost`]) is below
    /// the pair's ([`pair_cost`]), else ConvA (followed by ConvB). The estimate ignores the
    /// level and ConvD's extra rotation keys: on ResNet-20 it takes ConvD for one strided
    /// layer and measured 1–2.5 % slower than the pair; on ResNet-18 at 64×64 1.46× faster
    /// (BENCHMARKS.md § FHE mode).
    #[default]
    Auto,
}

/// Estimated time of a key switch against a plaintext product (with its encoding) at
/// `N = 2^16`: 17.8 ms against 2.0 ms in a least-squares fit over the 38 convolutions of two
/// ResNet-20 runs (pair and ConvD, 2026-12-07), both falling with the level; 6 keeps ConvD off
/// ResNet-20's stride-1 layers, where it measured slower.
const KEY_SWITCH_COST: usize = 6;

/// Estimated cost of a ConvD with `plan` (key switches weighted by [`KEY_SWITCH_COST`], plus
/// plaintext products).
pub fn conv_d_cost(plan: &crate::diag::DiagPlan) -> usize {
    let (products, conjugations) = plan.paired_costs();
    KEY_SWITCH_COST * (plan.rotations() + conjugations) + products
}

/// Estimated cost of `cv` (reading `lin = P(g, r)`) as half of a ConvA and a ConvB of its
/// shape: the pair evaluates two convolutions.
pub fn pair_cost(cv: &Conv2d, lin: &Layout, n: usize) -> usize {
    let Layout::P {
        grid, g, r, parts, ..
    } = *lin
    else {
        return usize::MAX;
    };
    let taps = cv.kernel[0] * cv.kernel[1];
    let shifts = taps - usize::from(cv.pads[0] < cv.kernel[0] && cv.pads[1] < cv.kernel[1]);
    let out_cts = cv.out_channels().div_ceil(r);
    let passes = out_cts.div_ceil(2);
    let cyclic = g * grid.block() == n;
    let per_pass = 2 * crate::exec::rot_sum_key_switches(grid.k)
        + crate::exec::rot_sum_key_switches(g) * if cyclic { 1 } else { 2 }
        + 2 * crate::exec::rot_sum_key_switches(grid.k * cv.stride[0])
        + usize::from(out_cts > 1);
    let conv_a =
        KEY_SWITCH_COST * (parts * shifts + passes * per_pass) + passes * (parts * taps + 1);
    let conv_b =
        KEY_SWITCH_COST * (shifts + crate::exec::rot_sum_key_switches(r)) + parts * taps * out_cts;
    (conv_a + conv_b) / 2
}

/// Logits one pass of the pooled FC computes besides the copies: with one copy (`r = 1`, split
/// maps and any `P` filling its ciphertexts) a pass would compute one logit, so the cells of
/// the first map row serve as lanes — `w` logits per pass, at `w − 1` hoisted rotations of
/// the pooled input (`exec::pool_fc`) — when more than one pass would be needed and the
/// logits fit at the cells' spacing `k`. 1 otherwise (the copies are the lanes).
pub fn fc_lanes(lin: &Layout, outputs: usize, n: usize) -> usize {
    match *lin {
        Layout::P { grid, r: 1, .. } if grid.w > 1 && outputs > 1 && outputs * grid.k <= n => {
            grid.w
        }
        _ => 1,
    }
}

/// MPCNN's composite degrees for ReLU (Lee et al., ICML 2022).
pub const RELU_DEGREES: [usize; 3] = [15, 15, 27];

impl Program {
    /// Lowers `model` and places the bootstraps, with the relaxed square form (more
    /// activations in one level, but values that cannot bootstrap) and strictly; the fewer
    /// bootstraps win, the relaxed form on a tie.
    pub fn lower(model: &Model, opts: &Options) -> Result<Program> {
        let relaxed = Self::lower_with(model, opts, true);
        if relaxed.as_ref().is_ok_and(|p| p.unbounded.is_empty()) {
            // No square took the relaxed form: the strict lowering is the same program.
            return relaxed;
        }
        let strict = Self::lower_with(model, opts, false);
        match relaxed {
            Ok(p)
                if strict
                    .as_ref()
                    .map_or(true, |q| p.bootstraps() <= q.bootstraps()) =>
            {
                Ok(p)
            }
            _ => strict,
        }
    }

    fn lower_with(model: &Model, opts: &Options, relaxed: bool) -> Result<Program> {
        let input_shape = image_shape(model)?;
        if !opts.slots.is_power_of_two() {
            return Err(FheError::BadInput(format!(
                "{} slots: a power of two is needed",
                opts.slots
            )));
        }
        if !(opts.range > 0.0 && opts.range.is_finite()) {
            return Err(FheError::BadInput(format!(
                "range {} must be positive",
                opts.range
            )));
        }
        let mut lw = Lowerer {
            model,
            n: opts.slots,
            range: opts.range,
            conv: opts.conv,
            relu_degrees: opts.relu_degrees.clone(),
            layouts: vec![Layout::Vector { len: 0, stride: 1 }],
            steps: vec![],
            vals: vec![None; model.nodes.len()],
            relaxed,
            unbounded: BTreeSet::new(),
        };
        for id in 0..model.nodes.len() {
            lw.lower_node(id)?;
        }
        let output = lw.ct(model.output, model.output)?;
        let mut prog = Program {
            n: opts.slots,
            range: opts.range,
            input_shape,
            layouts: lw.layouts,
            steps: lw.steps,
            output,
            input_level: opts.input_level,
            unbounded: lw.unbounded,
        };
        prog.place_bootstraps(opts.boot_level)?;
        Ok(prog)
    }

    /// Levels of every value without bootstraps at the marked values `boot`; `Err(step)` for
    /// the first step that lacks levels.
    fn simulate(
        &self,
        boot: &BTreeSet<usize>,
        boot_level: usize,
    ) -> std::result::Result<Vec<usize>, usize> {
        let mut lv = vec![0usize; self.layouts.len()];
        lv[0] = if boot.contains(&0) {
            boot_level
        } else {
            self.input_level
        };
        for (si, s) in self.steps.iter().enumerate() {
            let lin = s.inputs.iter().map(|&i| lv[i]).min().unwrap_or(0);
            let d = s.kind.depth();
            if lin < d {
                return Err(si);
            }
            lv[s.output] = if boot.contains(&s.output) {
                boot_level
            } else {
                lin - d
            };
        }
        Ok(lv)
    }

    /// Levels of every value as far as the walk gets (0 beyond the first failing step).
    fn simulate_levels(&self, boot: &BTreeSet<usize>, boot_level: usize) -> Vec<usize> {
        let mut lv = vec![0usize; self.layouts.len()];
        lv[0] = if boot.contains(&0) {
            boot_level
        } else {
            self.input_level
        };
        for s in &self.steps {
            let lin = s.inputs.iter().map(|&i| lv[i]).min().unwrap_or(0);
            let d = s.kind.depth();
            if lin < d {
                break;
            }
            lv[s.output] = if boot.contains(&s.output) {
                boot_level
            } else {
                lin - d
            };
        }
        lv
    }

    /// Greedy placement: whenever a step lacks levels, bootstrap its latest single-ciphertext
    /// ancestor (layout `P`) not yet refreshed, and start over.
    fn place_bootstraps(&mut self, boot_level: Option<usize>) -> Result<()> {
        let mut boot = BTreeSet::new();
        let producer: BTreeMap<usize, usize> = self
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| (s.output, i))
            .collect();
        loop {
            let failing = match self.simulate(&boot, boot_level.unwrap_or(0)) {
                Ok(_) => break,
                Err(si) => si,
            };
            let s = &self.steps[failing];
            let err = FheError::Levels {
                node: s.name.clone(),
                needed: s.kind.depth(),
                available: boot_level.unwrap_or(self.input_level),
            };
            let Some(bl) = boot_level else {
                return Err(err);
            };
            // Ancestors of the failing step.
            let mut anc = BTreeSet::new();
            let mut stack: Vec<usize> = s.inputs.clone();
            while let Some(v) = stack.pop() {
                if anc.insert(v) {
                    if let Some(&p) = producer.get(&v) {
                        stack.extend(self.steps[p].inputs.iter().copied());
                    }
                }
            }
            // The latest single-ciphertext ancestor after the latest refreshed one; failing
            // that, the failing step's least-leveled input whatever its layout (an activation
            // deeper than a bootstrap's levels, in layout I, refreshes every ciphertext).
            let floor = anc.iter().rev().find(|v| boot.contains(v)).copied();
            let lv = self.simulate_levels(&boot, bl);
            let cand = anc
                .iter()
                .rev()
                .take_while(|&&v| Some(v) != floor)
                .find(|&&v| {
                    matches!(self.layouts[v], Layout::P { .. }) && !self.unbounded.contains(&v)
                })
                .copied()
                .or_else(|| {
                    s.inputs
                        .iter()
                        .copied()
                        .filter(|v| !boot.contains(v) && !self.unbounded.contains(v))
                        .min_by_key(|&v| lv.get(v).copied().unwrap_or(0))
                });
            match cand {
                Some(v) if bl >= s.kind.depth() => {
                    boot.insert(v);
                }
                _ => return Err(err),
            }
        }
        // Materialize: a Bootstrap step right after each marked value's producer; consumers
        // read the refreshed value.
        let mut steps = Vec::with_capacity(self.steps.len() + boot.len());
        let mut rename: BTreeMap<usize, usize> = BTreeMap::new();
        let mut pending: Vec<usize> = vec![];
        if boot.contains(&0) {
            pending.push(0);
        }
        let old = std::mem::take(&mut self.steps);
        let emit = |steps: &mut Vec<Step>,
                    layouts: &mut Vec<Layout>,
                    rename: &mut BTreeMap<usize, usize>,
                    v: usize,
                    name: String| {
            let nv = layouts.len();
            layouts.push(layouts[v].clone());
            steps.push(Step {
                name,
                kind: Kind::Bootstrap,
                inputs: vec![v],
                output: nv,
            });
            rename.insert(v, nv);
        };
        for v in pending {
            emit(
                &mut steps,
                &mut self.layouts,
                &mut rename,
                v,
                "input".into(),
            );
        }
        for mut s in old {
            for i in s.inputs.iter_mut() {
                if let Some(&r) = rename.get(i) {
                    *i = r;
                }
            }
            let out = s.output;
            let name = s.name.clone();
            steps.push(s);
            if boot.contains(&out) {
                emit(&mut steps, &mut self.layouts, &mut rename, out, name);
            }
        }
        if let Some(&r) = rename.get(&self.output) {
            self.output = r;
        }
        self.steps = steps;
        Ok(())
    }

    /// The lowest level each step may read its inputs at, so that every later step still has
    /// its levels: backwards from the output (level 0, the client decrypts there), a step needs
    /// its output's requirement plus its depth, a bootstrap nothing (it reads level 0), and a
    /// value the largest requirement of its readers. Levels above it buy nothing but wider
    /// ciphertexts: [`crate::exec::run`] drops every step's inputs to it (truncating primes is
    /// free), so the segments where a bootstrap comes early, and the shortcut paths, run on
    /// fewer primes, and the rotation keys they use are generated only up to those levels.
    pub fn read_levels(&self) -> Vec<usize> {
        let mut need = vec![0usize; self.layouts.len()];
        let mut read = vec![0usize; self.steps.len()];
        for (si, s) in self.steps.iter().enumerate().rev() {
            read[si] = match s.kind {
                Kind::Bootstrap => 0,
                _ => need[s.output] + s.kind.depth(),
            };
            for &i in &s.inputs {
                need[i] = need[i].max(read[si]);
            }
        }
        read
    }

    /// Number of bootstraps in the program.
    pub fn bootstraps(&self) -> usize {
        self.steps
            .iter()
            .filter(|s| matches!(s.kind, Kind::Bootstrap))
            .count()
    }
}

/// MPCNN's rotation count for a convolution (Lee et al., ICML 2022, multiplexed parallel
/// convolution): `(f_h·f_w − 1) + q·(2·log2 k_i + log2 t_i) + c_o + (p_o − 1)` with
/// `q = ⌈c_o / p_i⌉`, for the layer's input gap `k_i` at `n` slots.
pub fn mpcnn_rotations(cv: &Conv2d, k_in: usize, n: usize) -> usize {
    let [ci, hi, wi] = cv.in_shape;
    let [co, ho, wo] = cv.out_shape;
    let k_out = k_in * cv.stride[0];
    let ti = ci.div_ceil(k_in * k_in);
    let to = co.div_ceil(k_out * k_out);
    let pow2_floor = |x: usize| {
        if x == 0 {
            1
        } else {
            1usize << (usize::BITS - 1 - x.leading_zeros())
        }
    };
    let pi = pow2_floor(n / (k_in * k_in * hi * wi * ti).max(1)).max(1);
    let po = pow2_floor(n / (k_out * k_out * ho * wo * to).max(1)).max(1);
    let q = co.div_ceil(pi);
    let log2 = |x: usize| x.next_power_of_two().trailing_zeros() as usize;
    (cv.kernel[0] * cv.kernel[1] - 1) + q * (2 * log2(k_in) + log2(ti)) + co + (po - 1)
}
