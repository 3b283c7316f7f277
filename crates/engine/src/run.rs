//! Running a plan: one loop over the steps on each side. Nothing in the loop knows which
//! technique a linear layer uses; it calls the [`linear::LinearProtocol`] the plan names.
//!
//! Roles: the server is `mpc::Party::P0` and holds the weights; the client is `P1`, holds the
//! RLWE secret keys and the input. Shares are over Z_{2^ℓ} at scale 2^s, NCHW row-major, the
//! layout of the fixed-point reference executor, which every run is tested against.

use std::time::Instant;

use rand_core::CryptoRngCore;
use serde::Serialize;
use transport::{Channel, Stats};

use linear::{ClientKeys, LayerSpec, LayerWeights, LinearProtocol, ServerKeys};
use mpc::{Party, PoolShape, PoolSpec, Session, Shares};
use nn::{FixedConfig, Model, Op};

use crate::plan::{Epilogue, Plan, PlanConfig, StepKind};
use crate::{local, EngineError};

/// Cost of one step (or of the setup, or the total) as seen by the client.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct StepReport {
    /// Step index, or "setup" / "output" / "total".
    pub layer: String,
    pub name: String,
    pub op: String,
    pub protocol: String,
    pub ms: f64,
    pub bytes_c2s: u64,
    pub bytes_s2c: u64,
    pub rounds: u64,
    /// Latency hops on this side's critical path (`transport::Stats::hops`; 0 over plain TCP).
    pub hops: u64,
}

/// Per-step costs of one run.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Report {
    pub steps: Vec<StepReport>,
    /// This side's correlated-OT budget and where its generation time went.
    pub ot: OtReport,
}

/// Correlated OT of one side over a run: what the plan predicts, what the protocols used, what
/// silent OT generated (directions named from this side: `send` = this side is the COT sender).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct OtReport {
    /// COTs the plan's non-linear protocols need (each generated before the step using it).
    pub predicted_send: u64,
    pub predicted_recv: u64,
    /// COTs the protocols consumed.
    pub used_send: u64,
    pub used_recv: u64,
    /// COTs generated but left unused at the end.
    pub left_send: u64,
    pub left_recv: u64,
    /// LPN iterations (both directions) by parameter set, GGM trees, IKNP bootstrap COTs.
    pub iterations_small: u64,
    pub iterations_large: u64,
    pub bins: u64,
    pub iknp_cots: u64,
    /// Milliseconds (this side) in IKNP, SPCOT (GGM trees and their messages) and LPN encoding.
    pub iknp_ms: f64,
    pub spcot_ms: f64,
    pub lpn_ms: f64,
}

impl OtReport {
    fn new(session: &Session, predicted: (usize, usize)) -> OtReport {
        let (gs, gr) = session.ot_generation();
        let (ls, lr) = session.buffered();
        let u = session.ot_usage();
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
        OtReport {
            predicted_send: predicted.0 as u64,
            predicted_recv: predicted.1 as u64,
            used_send: u.cots_sent,
            used_recv: u.cots_received,
            left_send: ls as u64,
            left_recv: lr as u64,
            iterations_small: gs.iterations_small + gr.iterations_small,
            iterations_large: gs.iterations_large + gr.iterations_large,
            bins: gs.bins + gr.bins,
            iknp_cots: gs.iknp_cots + gr.iknp_cots,
            iknp_ms: ms(gs.iknp_time + gr.iknp_time),
            spcot_ms: ms(gs.spcot_time + gr.spcot_time),
            lpn_ms: ms(gs.lpn_time + gr.lpn_time),
        }
    }
}

impl Report {
    /// Sum over all steps (setup and output included).
    pub fn total(&self) -> StepReport {
        let mut t = StepReport {
            layer: "total".into(),
            ..StepReport::default()
        };
        for s in &self.steps {
            t.ms += s.ms;
            t.bytes_c2s += s.bytes_c2s;
            t.bytes_s2c += s.bytes_s2c;
            t.rounds += s.rounds;
            t.hops += s.hops;
        }
        t
    }
}

/// The server's half of a compiled model: the public plan and the quantized weights.
pub struct ServerModel {
    pub plan: Plan,
    /// Weights of each linear step (None for other steps). Never leave the server.
    weights: Vec<Option<LayerWeights>>,
}

impl ServerModel {
    /// Compiles `model` and quantizes its weights (docs/fixed-point.md).
    pub fn new(model: &Model, cfg: &PlanConfig) -> Result<ServerModel, EngineError> {
        let fixed = FixedConfig::new(cfg.ell, cfg.scale)?;
        let fm = nn::fixed::FixedModel::new(model, fixed);
        let plan = Plan::compile_quantized(&fm, cfg)?;
        let weights = model
            .nodes
            .iter()
            .enumerate()
            .map(|(id, node)| match node.op {
                Op::Conv(_) | Op::Linear(_) | Op::BatchNorm(_) | Op::Constant(_) => {
                    let (w, b) = fm.params(id);
                    Some(LayerWeights {
                        weights: w.to_vec(),
                        bias: b.to_vec(),
                    })
                }
                _ => None,
            })
            .collect();
        Ok(ServerModel { plan, weights })
    }

    /// The weights of linear step `i`; a plan step without them is an invalid plan.
    fn layer_weights(&self, i: usize) -> Result<&LayerWeights, EngineError> {
        self.weights[i].as_ref().ok_or(EngineError::InvalidPlan {
            step: i,
            reason: "no weights".into(),
        })
    }
}

/// What the client learns at the end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The output tensor (ring elements at scale 2^s).
    Logits(Vec<u64>),
    /// The index of the first largest output.
    Label(usize),
}

/// Which half this side runs.
enum Side<'a> {
    Server {
        model: &'a ServerModel,
        keys: ServerKeys,
    },
    Client {
        keys: ClientKeys,
    },
}

/// Most COTs generated at once per direction (16 Mi: 256 MiB per direction and party): a model
/// whose non-linear layers need more gets them in several rounds of generation, each covering
/// the next steps.
pub const COT_CHUNK: usize = 1 << 24;

/// Generates each step's COTs ahead of it, exactly as many as the plan predicts: during setup as
/// many steps' worth as fit in [`COT_CHUNK`] per direction (all of them for ResNet-20), and again
/// before any step the buffer cannot cover. Both sides follow the same rule on mirrored counts.
struct CotSchedule {
    /// (COTs as sender, as receiver) of each step, then of the output.
    need: Vec<(usize, usize)>,
    total: (usize, usize),
}

impl CotSchedule {
    fn new(plan: &Plan, reveal_label: bool, party: Party) -> Result<CotSchedule, EngineError> {
        let need: Vec<(usize, usize)> = plan
            .nonlinear_costs(reveal_label)?
            .iter()
            .map(|c| c.cots_for(party))
            .collect();
        let total = need.iter().fold((0, 0), |(a, b), &(s, r)| (a + s, b + r));
        Ok(CotSchedule { need, total })
    }

    /// Makes sure step `i`'s COTs (`i` = number of steps: the output's) are buffered.
    fn before<C: Channel>(
        &self,
        i: usize,
        session: &mut Session,
        ch: &mut C,
    ) -> Result<(), EngineError> {
        let (bs, br) = session.buffered();
        let (ns, nr) = self.need[i];
        if bs >= ns && br >= nr {
            return Ok(());
        }
        self.ahead(i, session, ch)
    }

    /// Generates the COTs of steps `i..` that fit in [`COT_CHUNK`] per direction (at least step
    /// `i`'s), counting those already buffered.
    fn ahead<C: Channel>(
        &self,
        i: usize,
        session: &mut Session,
        ch: &mut C,
    ) -> Result<(), EngineError> {
        let (ts, tr, to_end) = prefetch_span(&self.need, i);
        if to_end {
            // The run needs nothing beyond these: no reserve for further LPN iterations, and
            // the steps past the lead get theirs from an iteration computing in the background.
            let lead = lead_span(&self.need[i..], (ts, tr));
            session.prefetch_background(ch, lead, (ts, tr))?;
        } else {
            session.prefetch(ch, ts, tr)?;
        }
        Ok(())
    }
}

/// COTs (as sender, as receiver) buffered by a prefetch before step `i`: the steps from `i` on
/// that fit in [`COT_CHUNK`] per direction (at least step `i`'s), and whether they run to the end.
fn prefetch_span(need: &[(usize, usize)], i: usize) -> (usize, usize, bool) {
    let (mut ts, mut tr) = (0, 0);
    for (k, &(a, b)) in need.iter().enumerate().skip(i) {
        if k > i && (ts + a > COT_CHUNK || tr + b > COT_CHUNK) {
            return (ts, tr, false);
        }
        ts += a;
        tr += b;
    }
    (ts, tr, true)
}

/// Share of a final prefetch made ready before the run goes on: the rest computes in the
/// background while the first steps run (`Session::prefetch_background`).
const LEAD_DIVISOR: usize = 8;

/// COTs (as sender, as receiver) of the first steps of `need` whose total reaches 1/[`LEAD_DIVISOR`]
/// of `total` in either direction (at least the first step's): the lead of a background prefetch.
fn lead_span(need: &[(usize, usize)], total: (usize, usize)) -> (usize, usize) {
    let (mut s, mut r) = (0, 0);
    for &(a, b) in need {
        s += a;
        r += b;
        if s * LEAD_DIVISOR >= total.0 || r * LEAD_DIVISOR >= total.1 {
            break;
        }
    }
    (s, r)
}

/// The most COTs (as sender, as receiver) a party holds at once when it follows [`CotSchedule`]
/// on per-step needs `need` (the output's last): the memory model of `Plan::predicted_session_memory`.
pub(crate) fn peak_cot_buffer(need: &[(usize, usize)]) -> (usize, usize) {
    let (mut bs, mut br) = (0usize, 0usize);
    let (mut ps, mut pr) = (0usize, 0usize);
    for (i, &(ns, nr)) in need.iter().enumerate() {
        if i == 0 || bs < ns || br < nr {
            let (ts, tr, _) = prefetch_span(need, i);
            bs = bs.max(ts);
            br = br.max(tr);
        }
        ps = ps.max(bs);
        pr = pr.max(br);
        bs -= ns.min(bs);
        br -= nr.min(br);
    }
    (ps, pr)
}

/// The activation a rescale computes with it.
#[derive(Clone, Copy)]
enum Act {
    None,
    Relu,
    Relu6,
}

fn delta(now: Stats, before: Stats, t0: Instant) -> (f64, Stats) {
    (t0.elapsed().as_secs_f64() * 1e3, now.since(&before))
}

/// Runs one side of the plan from setup to the output shares. Returns this side's share of the
/// output and the per-step report (bytes as seen from the client: c2s = client → server).
#[allow(clippy::too_many_arguments)]
fn run_side<C: Channel>(
    plan: &Plan,
    side: &mut Side<'_>,
    session: &mut Session,
    cots: &CotSchedule,
    input_share: Vec<u64>,
    ch: &mut C,
    rng: &mut dyn CryptoRngCore,
    report: &mut Report,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Vec<u64>, EngineError> {
    let ring = mpc::Ring::new(plan.ell)?;
    let lring = linear::Ring::new(plan.ell)?;
    let fixed = FixedConfig::new(plan.ell, plan.scale)?;
    let is_server = matches!(side, Side::Server { .. });
    let mut values: Vec<Option<Vec<u64>>> = vec![None; plan.steps.len()];
    // Last use of each value, so shares are dropped as soon as they are dead.
    let mut last_use = vec![0usize; plan.steps.len()];
    for (i, s) in plan.steps.iter().enumerate() {
        for &j in &s.inputs {
            last_use[j] = i;
        }
    }
    last_use[plan.output] = usize::MAX;

    let shares = |data: Vec<u64>| Shares::new(ring, plan.scale, data);
    // t(y) = floor((y + 2^{s-1}) / 2^s): the server adds the rounding offset, then the exact
    // truncation for values in the fixed-point range [docs/fixed-point.md]; with `relu`, t(·)
    // and ReLU run as one exact protocol.
    // `shift` is s, plus e where the value carries Winograd's 2^e (`Plan::extra_bits`): the
    // same t(·) of the value divided by 2^e, exactly.
    // After a linear layer (`after_linear`, also a residual sum carrying a deferred linear
    // output) the server chooses in the comparison of t(·) without ReLU6: it picked its output share before sending its last message, so its leaf
    // choices travel with that message (`Session::set_comparison_chooser`; one hop less, the
    // cost model's `*_p0_chooses`).
    let rescale = |session: &mut Session,
                   ch: &mut C,
                   mut y: Vec<u64>,
                   act: Act,
                   shift: u32,
                   after_linear: bool|
     -> Result<Vec<u64>, EngineError> {
        if is_server {
            let half = 1u64 << (shift - 1);
            for v in &mut y {
                *v = v.wrapping_add(half) & ring.mask();
            }
        }
        let y = shares(y)?;
        let swap = after_linear && !matches!(act, Act::Relu6);
        if swap {
            session.set_comparison_chooser(Party::P0);
        }
        let out = match act {
            Act::None => session.trunc_known_sign_with(ch, &y, shift, plan.rescale_form(y.len())),
            Act::Relu => session.trunc_relu(ch, &y, shift),
            Act::Relu6 => session.trunc_relu6(ch, &y, shift),
        };
        session.set_comparison_chooser(Party::P1);
        Ok(out?.data)
    };

    for (i, step) in plan.steps.iter().enumerate() {
        progress(i, plan.steps.len());
        let t0 = Instant::now();
        let before = ch.stats();
        // With the emulated link's send events, a per-hop timeline of the run (`-vvv`).
        tracing::trace!(
            party = if is_server { "server" } else { "client" },
            step = i,
            hops = before.hops,
            "step"
        );
        cots.before(i, session, ch)?;
        let inputs: Vec<&[u64]> = step
            .inputs
            .iter()
            .map(|&j| values[j].as_deref().expect("inputs precede their users"))
            .collect();
        let out = match &step.kind {
            StepKind::Input => input_share.clone(),
            StepKind::Linear {
                choice,
                layer,
                epilogue: Epilogue::Normalized,
                ..
            } => {
                let proto = choice.protocol();
                let (ln, _) = plan.fused_norm(i)?;
                let out = layer.output_len() / (inputs[0].len() / ln.d);
                let spec = crate::approx::layernorm_spec(
                    &ln,
                    plan.layernorm_tail(layer.output_len()),
                    plan.layernorm_chooser(step.inputs[0]),
                );
                let x = shares(inputs[0].to_vec())?;
                let y = match side {
                    Side::Server { model, keys } => {
                        let w = model.layer_weights(i)?;
                        // The layer runs on x − μ without its bias, which the tail adds.
                        let plain = LayerWeights {
                            weights: w.weights.clone(),
                            bias: vec![0; w.bias.len()],
                        };
                        let mut lin = ServerNorm {
                            proto: &*proto,
                            layer,
                            ring: lring,
                            keys,
                            weights: &plain,
                            rng: &mut *rng,
                            c: Vec::new(),
                        };
                        session.layernorm_linear(ch, &x, &spec, &mut lin, out, &w.bias)?
                    }
                    Side::Client { keys } => {
                        let mut lin = ClientNorm {
                            proto: &*proto,
                            layer,
                            ring: lring,
                            keys,
                            rng: &mut *rng,
                            pending: None,
                        };
                        session.layernorm_linear(ch, &x, &spec, &mut lin, out, &[])?
                    }
                };
                y.data
            }
            StepKind::Linear {
                choice,
                layer,
                epilogue,
                ..
            } => {
                let proto = choice.protocol();
                // A field-domain protocol reads and writes shares mod t: convert around it
                // (exact in the fixed-point range, docs/protocols/simd.md).
                let field = proto
                    .share_modulus(layer, lring)?
                    .map(mpc::FieldModulus::new)
                    .transpose()?;
                let x = match field {
                    Some(p) => session.ring_to_field_in_range(ch, ring, inputs[0], p)?,
                    None => inputs[0].to_vec(),
                };
                let y = match side {
                    Side::Server { model, keys } => {
                        let w = model.layer_weights(i)?;
                        proto.server_in(layer, lring, keys, w, &x, session, ch, rng)?
                    }
                    Side::Client { keys } => {
                        proto.client_in(layer, lring, keys, &x, session, ch, rng)?
                    }
                };
                let shift = plan.scale + proto.output_shift(layer);
                let y = match field {
                    Some(p) => session.field_to_ring_in_range(ch, p, &y, ring)?,
                    None => y,
                };
                match epilogue {
                    Epilogue::Rescale => rescale(session, ch, y, Act::None, shift, true)?,
                    Epilogue::RescaleRelu => rescale(session, ch, y, Act::Relu, shift, true)?,
                    Epilogue::RescaleRelu6 => rescale(session, ch, y, Act::Relu6, shift, true)?,
                    // `Normalized` runs in the arm above.
                    Epilogue::Deferred | Epilogue::Normalized => y,
                }
            }
            StepKind::Fused => inputs[0].to_vec(),
            StepKind::AddAligned => {
                let (y, x) = (inputs[0], inputs[1]);
                let shift = plan.scale + plan.extra_bits(i);
                y.iter()
                    .zip(x)
                    .map(|(&a, &b)| a.wrapping_add(b << shift) & ring.mask())
                    .collect()
            }
            StepKind::TruncRelu => {
                let shift = plan.scale + plan.extra_bits(step.inputs[0]);
                // It reads a residual sum whose linear term was deferred to it: the server's
                // HE response came last, so the server chooses here too.
                rescale(session, ch, inputs[0].to_vec(), Act::Relu, shift, true)?
            }
            StepKind::Relu => session.relu(ch, &shares(inputs[0].to_vec())?)?.data,
            StepKind::Relu6 => session.relu6(ch, &shares(inputs[0].to_vec())?)?.data,
            StepKind::MaxPool {
                kernel,
                stride,
                pads,
            } => {
                let is = &plan.steps[step.inputs[0]].shape;
                let shape = PoolShape {
                    channels: is[0] * is[1],
                    height: is[2],
                    width: is[3],
                };
                let spec = PoolSpec {
                    kernel: (kernel[0], kernel[1]),
                    stride: (stride[0], stride[1]),
                    pads: (pads[0], pads[1], pads[2], pads[3]),
                };
                session
                    .maxpool(ch, &shares(inputs[0].to_vec())?, shape, spec)?
                    .data
            }
            StepKind::AvgPool {
                kernel,
                stride,
                pads,
                count_include_pad,
            } => {
                let is = &plan.steps[step.inputs[0]].shape;
                let os = &step.shape;
                let pool = nn::ir::Pool {
                    kernel: *kernel,
                    stride: *stride,
                    pads: *pads,
                    count_include_pad: *count_include_pad,
                };
                let y = nn::fixed::avg_pool_ring(&pool, is, os, inputs[0], fixed);
                rescale(session, ch, y, Act::None, plan.scale, false)?
            }
            StepKind::GlobalAvgPool => {
                let y = nn::fixed::global_avg_pool_ring(step.shape[1], inputs[0], fixed);
                rescale(session, ch, y, Act::None, plan.scale, false)?
            }
            StepKind::Add
            | StepKind::Slice { .. }
            | StepKind::Pad { .. }
            | StepKind::Reshape
            | StepKind::Transpose { .. }
            | StepKind::Concat { .. } => local::apply(plan, step, &inputs, ring.mask()),
            StepKind::Constant => match side {
                Side::Server { model, .. } => model.weights[i]
                    .as_ref()
                    .ok_or(EngineError::InvalidPlan {
                        step: i,
                        reason: "no constant".into(),
                    })?
                    .weights
                    .clone(),
                Side::Client { .. } => vec![0; step.shape.iter().product()],
            },
            StepKind::Gelu { signed } => {
                let g = nn::approx::Gelu::new(plan.scale, crate::plan::gelu_form(*signed));
                let spec = crate::approx::gelu_spec(&g, plan.gelu_chooser(i));
                session.gelu(ch, &shares(inputs[0].to_vec())?, &spec)?.data
            }
            StepKind::Softmax { into_matmul: true } => inputs[0].to_vec(),
            StepKind::Softmax { .. } => {
                let t = nn::approx::Softmax::new(plan.scale);
                let n = inputs[0].len();
                let spec =
                    crate::approx::softmax_spec(&t, plan.softmax_wide(n), plan.softmax_extra(i));
                let row = *step.shape.last().unwrap_or(&1);
                session
                    .softmax(ch, &shares(inputs[0].to_vec())?, row, &spec)?
                    .data
            }
            StepKind::LayerNorm {
                into_linear: true, ..
            } => inputs[0].to_vec(),
            StepKind::LayerNorm { epsilon, .. } => {
                let d = *step.shape.last().unwrap_or(&1);
                let l = nn::approx::LayerNorm::new(plan.scale, plan.ell, d, *epsilon);
                let spec = crate::approx::layernorm_spec(
                    &l,
                    plan.layernorm_tail(inputs[0].len()),
                    plan.layernorm_chooser(i),
                );
                session
                    .layernorm(ch, &shares(inputs[0].to_vec())?, &spec)?
                    .data
            }
            StepKind::SharedMatMul {
                batch,
                m,
                k,
                n,
                choice,
                left,
                right,
                normalized,
                deferred,
                ..
            } => {
                let proto = choice.protocol();
                let (batch, m, k, n) = (*batch, *m, *k, *n);
                let (a, b) = (inputs[0], inputs[1]);
                // Per index h: A_h (m × k), B_h (k × n). The left term's input is B_h itself
                // (N pixels of K channels), its weights A_h (M × K), its output A_h·B_h (M × N);
                // the right term's input is A_hᵀ, its weights B_hᵀ, its output (A_h·B_h)ᵀ.
                let bt = transpose_blocks(b, k, n);
                if *normalized {
                    // Softmax fused with this product: `a` is the softmax's input.
                    let t = nn::approx::Softmax::new(plan.scale);
                    let spec = crate::approx::softmax_spec(
                        &t,
                        plan.softmax_wide(a.len()),
                        plan.softmax_extra(step.inputs[0]),
                    );
                    let x = shares(a.to_vec())?;
                    let mut lin = SharedNorm {
                        proto: &*proto,
                        dims: (batch, m, k, n),
                        left,
                        right,
                        ring: lring,
                        fixed,
                        b: b.to_vec(),
                        bt,
                        side: match side {
                            Side::Server { keys, .. } => NormSide::Server(keys),
                            Side::Client { keys } => NormSide::Client(keys, Vec::new()),
                        },
                        rng: &mut *rng,
                        e: Vec::new(),
                    };
                    let y = session.softmax_matmul(ch, &x, k, &spec, &mut lin, n)?;
                    y.data
                } else {
                    // Both cross terms in one round trip: the client sends both queries before it
                    // reads an answer (`client_batch`), the server answers them in order.
                    let at = transpose_blocks(a, m, k);
                    let cross =
                        match side {
                            Side::Server { keys, .. } => {
                                let mut cross = Vec::with_capacity(2);
                                for (layer, w, x) in [(left, a, b), (right, &bt[..], &at[..])] {
                                    let w = LayerWeights {
                                        weights: w.to_vec(),
                                        bias: vec![0; layer.bias_len()],
                                    };
                                    let zero = vec![0; x.len()];
                                    cross.push(proto.server_in(
                                        layer, lring, keys, &w, &zero, session, ch, rng,
                                    )?);
                                }
                                cross
                            }
                            Side::Client { keys } => proto.client_batch(
                                &[(left, b), (right, &at[..])],
                                lring,
                                keys,
                                session,
                                ch,
                                rng,
                            )?,
                        };
                    let y = shared_product(a, b, &cross, (batch, m, k, n), fixed);
                    if *deferred {
                        // Read unrounded by the softmax after it (`Plan::softmax_extra`).
                        y
                    } else {
                        rescale(session, ch, y, Act::None, plan.scale, true)?
                    }
                }
            }
        };
        ch.flush()?;
        let (ms, d) = delta(ch.stats(), before, t0);
        let (c2s, s2c) = if is_server {
            (d.bytes_received, d.bytes_sent)
        } else {
            (d.bytes_sent, d.bytes_received)
        };
        report.steps.push(StepReport {
            layer: i.to_string(),
            name: step.name.clone(),
            op: step.op.clone(),
            protocol: step.kind.protocol().to_string(),
            ms,
            bytes_c2s: c2s,
            bytes_s2c: s2c,
            rounds: d.rounds(),
            hops: d.hops,
        });
        values[i] = Some(out);
        for &j in &step.inputs {
            if last_use[j] == i {
                values[j] = None;
            }
        }
    }
    progress(plan.steps.len(), plan.steps.len());
    values[plan.output].take().ok_or(EngineError::InvalidPlan {
        step: plan.output,
        reason: "output never computed".into(),
    })
}

/// The server's half of a linear layer run inside LayerNorm's flights
/// (`mpc::Session::layernorm_linear`): it keeps its share of x − μ, then reads the client's
/// query, answers it and returns its output share.
struct ServerNorm<'a> {
    proto: &'a dyn LinearProtocol,
    layer: &'a LayerSpec,
    ring: linear::Ring,
    keys: &'a ServerKeys,
    weights: &'a LayerWeights,
    rng: &'a mut dyn CryptoRngCore,
    c: Vec<u64>,
}

impl<C: Channel> mpc::NormLinear<C> for ServerNorm<'_> {
    fn start(&mut self, _ch: &mut C, c: &[u64]) -> Result<(), mpc::BoxError> {
        self.c = c.to_vec();
        Ok(())
    }
    fn finish(&mut self, ch: &mut C) -> Result<Vec<u64>, mpc::BoxError> {
        Ok(self.proto.server(
            self.layer,
            self.ring,
            self.keys,
            self.weights,
            &self.c,
            ch,
            &mut *self.rng,
        )?)
    }
}

/// The client's half: its query leaves with its LayerNorm message, the answer is read after
/// that flight.
struct ClientNorm<'a> {
    proto: &'a dyn LinearProtocol,
    layer: &'a LayerSpec,
    ring: linear::Ring,
    keys: &'a ClientKeys,
    rng: &'a mut dyn CryptoRngCore,
    pending: Option<linear::PendingAnswer>,
}

impl<C: Channel> mpc::NormLinear<C> for ClientNorm<'_> {
    fn start(&mut self, ch: &mut C, c: &[u64]) -> Result<(), mpc::BoxError> {
        let p = self
            .proto
            .client_send(self.layer, self.ring, self.keys, c, ch, &mut *self.rng)?;
        self.pending = Some(p);
        Ok(())
    }
    fn finish(&mut self, ch: &mut C) -> Result<Vec<u64>, mpc::BoxError> {
        let p = self.pending.take().ok_or("the query was never sent")?;
        Ok(self.proto.client_receive(p, self.ring, self.keys, ch)?)
    }
}

/// Per batch index h of `[batch, r, c]` values: the transpose of each r × c block.
fn transpose_blocks(v: &[u64], r: usize, c: usize) -> Vec<u64> {
    v.chunks(r * c)
        .flat_map(|blk| local::transpose2(blk, r, c))
        .collect()
}

/// Which party runs a [`SharedNorm`], with its keys (the client: and its pending queries).
enum NormSide<'a> {
    Server(&'a ServerKeys),
    Client(&'a ClientKeys, Vec<linear::PendingAnswer>),
}

/// A product of two shared activations run inside softmax's flights
/// (`mpc::Session::softmax_matmul`): the left operand is the softmax's exponentials E, handed
/// to `start`; the cross terms are the two ciphertext × plaintext products of `SharedMatMul`,
/// the client's queries sent in `start` and the server's answers in `finish`.
struct SharedNorm<'a> {
    proto: &'a dyn LinearProtocol,
    /// (batch, M, K, N).
    dims: (usize, usize, usize, usize),
    left: &'a LayerSpec,
    right: &'a LayerSpec,
    ring: linear::Ring,
    fixed: FixedConfig,
    /// This party's share of the right operand B, and its blockwise transpose.
    b: Vec<u64>,
    bt: Vec<u64>,
    side: NormSide<'a>,
    rng: &'a mut dyn CryptoRngCore,
    /// This party's share of E.
    e: Vec<u64>,
}

/// This party's share of A·B for `[batch, M, K] × [batch, K, N]` shares (`dims`): its own
/// product A_p·B_p plus the two cross terms (the right one, N × M per index, transposed back),
/// mod 2^ℓ.
fn shared_product(
    a: &[u64],
    b: &[u64],
    cross: &[Vec<u64>],
    dims: (usize, usize, usize, usize),
    fixed: FixedConfig,
) -> Vec<u64> {
    let (batch, m, k, n) = dims;
    let c2 = transpose_blocks(&cross[1], n, m);
    let mut y = Vec::with_capacity(batch * m * n);
    for h in 0..batch {
        let own = nn::fixed::matmul_ring(
            1,
            m,
            k,
            n,
            &a[h * m * k..(h + 1) * m * k],
            &b[h * k * n..(h + 1) * k * n],
            fixed,
        );
        let at = h * m * n;
        y.extend((0..m * n).map(|i| {
            own[i]
                .wrapping_add(cross[0][at + i])
                .wrapping_add(c2[at + i])
                & fixed.mask()
        }));
    }
    y
}

impl<C: Channel> mpc::NormLinear<C> for SharedNorm<'_> {
    fn start(&mut self, ch: &mut C, e: &[u64]) -> Result<(), mpc::BoxError> {
        self.e = e.to_vec();
        let (_, m, k, _) = self.dims;
        if let NormSide::Client(keys, pending) = &mut self.side {
            let et = transpose_blocks(e, m, k);
            for (layer, x) in [(self.left, &self.b[..]), (self.right, &et[..])] {
                pending.push(self.proto.client_send(
                    layer,
                    self.ring,
                    keys,
                    x,
                    ch,
                    &mut *self.rng,
                )?);
            }
        }
        Ok(())
    }
    fn finish(&mut self, ch: &mut C) -> Result<Vec<u64>, mpc::BoxError> {
        let mut cross = Vec::with_capacity(2);
        match &mut self.side {
            NormSide::Server(keys) => {
                for (layer, w) in [(self.left, &self.e), (self.right, &self.bt)] {
                    let w = LayerWeights {
                        weights: w.clone(),
                        bias: vec![0; layer.bias_len()],
                    };
                    let zero = vec![0; layer.input_len()];
                    cross.push(self.proto.server(
                        layer,
                        self.ring,
                        keys,
                        &w,
                        &zero,
                        ch,
                        &mut *self.rng,
                    )?);
                }
            }
            NormSide::Client(keys, pending) => {
                for p in pending.drain(..) {
                    cross.push(self.proto.client_receive(p, self.ring, keys, ch)?);
                }
            }
        }
        Ok(shared_product(
            &self.e, &self.b, &cross, self.dims, self.fixed,
        ))
    }
}

/// Setup shared by both sides: OT session and the linear layers' keys.
fn setup_report(name: &str, ms: f64, d: Stats, is_server: bool) -> StepReport {
    let (c2s, s2c) = if is_server {
        (d.bytes_received, d.bytes_sent)
    } else {
        (d.bytes_sent, d.bytes_received)
    };
    StepReport {
        layer: name.into(),
        name: name.into(),
        op: name.into(),
        protocol: if name == "setup" {
            "ot+keys".into()
        } else {
            "reveal".into()
        },
        ms,
        bytes_c2s: c2s,
        bytes_s2c: s2c,
        rounds: d.rounds(),
        hops: d.hops,
    }
}

/// The server's side of one inference: setup, all steps, then the reveal.
pub fn run_server<C: Channel>(
    model: &ServerModel,
    reveal_label: bool,
    ch: &mut C,
    rng: &mut dyn CryptoRngCore,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Report, EngineError> {
    let plan = &model.plan;
    let mut report = Report::default();
    let (t0, before) = (Instant::now(), ch.stats());
    let mut session = Session::setup(ch, Party::P0, &mut RngRef(rng))?;
    let keys = ServerKeys::setup(&plan.key_requests()?, ch)?;
    // The COTs of the first steps (all of them for small models), in right-sized iterations.
    let cots = CotSchedule::new(plan, reveal_label, Party::P0)?;
    cots.ahead(0, &mut session, ch)?;
    let (ms, d) = delta(ch.stats(), before, t0);
    report.steps.push(setup_report("setup", ms, d, true));

    let zero = vec![0u64; plan.steps[0].shape.iter().product()];
    let mut side = Side::Server { model, keys };
    let out = run_side(
        plan,
        &mut side,
        &mut session,
        &cots,
        zero,
        ch,
        rng,
        &mut report,
        progress,
    )?;

    let (t0, before) = (Instant::now(), ch.stats());
    cots.before(plan.steps.len(), &mut session, ch)?;
    if reveal_label {
        let ring = mpc::Ring::new(plan.ell)?;
        let (idx, _) = session.argmax(ch, &Shares::new(ring, plan.scale, out)?, 1)?;
        ch.send_u64s(&idx)?;
    } else {
        ch.send_u64s(&out)?;
    }
    ch.flush()?;
    let (ms, d) = delta(ch.stats(), before, t0);
    report.steps.push(setup_report("output", ms, d, true));
    report.ot = OtReport::new(&session, cots.total);
    Ok(report)
}

/// The client's side of one inference on its quantized input (ring elements at scale 2^s).
pub fn run_client<C: Channel>(
    plan: &Plan,
    reveal_label: bool,
    input: Vec<u64>,
    ch: &mut C,
    rng: &mut dyn CryptoRngCore,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<(Outcome, Report), EngineError> {
    plan.validate()?;
    let expected: usize = plan.steps[0].shape.iter().product();
    if input.len() != expected {
        return Err(EngineError::InputShape {
            expected: plan.steps[0].shape.clone(),
            got: input.len(),
        });
    }
    let ring = mpc::Ring::new(plan.ell)?;
    ring.check("input", &input)?;
    let mut report = Report::default();
    let (t0, before) = (Instant::now(), ch.stats());
    // The HE keys are generated on a thread of their own while the base OTs wait on the server.
    let requests = plan.key_requests()?;
    let mut seed = zeroize::Zeroizing::new([0u8; 32]);
    rng.fill_bytes(&mut *seed);
    let generate = || {
        let mut krng = <rand_chacha::ChaCha20Rng as rand_core::SeedableRng>::from_seed(*seed);
        ClientKeys::generate(&requests, &mut krng)
    };
    let (session, generated) = std::thread::scope(|s| {
        let keygen = std::thread::Builder::new()
            .name("keygen".into())
            .spawn_scoped(s, generate)
            .ok();
        let session = Session::setup(ch, Party::P1, &mut RngRef(rng));
        // Without a thread to be had, the keys are generated here, after the base OTs.
        let keys = match keygen {
            Some(h) => h
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            None => generate(),
        };
        (session, keys)
    });
    let mut session = session?;
    let (keys, upload) = generated?;
    upload.send(ch)?;
    let cots = CotSchedule::new(plan, reveal_label, Party::P1)?;
    cots.ahead(0, &mut session, ch)?;
    let (ms, d) = delta(ch.stats(), before, t0);
    report.steps.push(setup_report("setup", ms, d, false));

    let mut side = Side::Client { keys };
    let out = run_side(
        plan,
        &mut side,
        &mut session,
        &cots,
        input,
        ch,
        rng,
        &mut report,
        progress,
    )?;

    let (t0, before) = (Instant::now(), ch.stats());
    cots.before(plan.steps.len(), &mut session, ch)?;
    let outcome = if reveal_label {
        let (idx, _) = session.argmax(ch, &Shares::new(ring, plan.scale, out)?, 1)?;
        let theirs = ch.recv_u64s(1)?;
        let label = ring.add(idx[0], theirs[0]) as usize;
        let classes: usize = plan.steps[plan.output].shape.iter().product();
        if label >= classes {
            return Err(EngineError::Malformed {
                what: "label share",
                reason: format!("label {label} of {classes} classes"),
            });
        }
        Outcome::Label(label)
    } else {
        let theirs = ch.recv_u64s(out.len())?;
        Outcome::Logits(mpc::reconstruct(ring, &out, &theirs)?)
    };
    let (ms, d) = delta(ch.stats(), before, t0);
    report.steps.push(setup_report("output", ms, d, false));
    report.ot = OtReport::new(&session, cots.total);
    Ok((outcome, report))
}

/// Adapts `&mut dyn CryptoRngCore` to the `RngCore + CryptoRng` bound of the mpc crate.
struct RngRef<'a>(&'a mut dyn CryptoRngCore);
impl rand_core::RngCore for RngRef<'_> {
    fn next_u32(&mut self) -> u32 {
        self.0.next_u32()
    }
    fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        self.0.fill_bytes(dest)
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.0.try_fill_bytes(dest)
    }
}
impl rand_core::CryptoRng for RngRef<'_> {}
