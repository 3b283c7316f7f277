//! `privinfer bench linear`: every linear layer of a model through a linear-layer protocol, both
//! parties in one process over TCP loopback (optionally through an emulated LAN/WAN link,
//! `--net`), one JSON line per layer.
//!
//! `--model` is an ONNX file (its linear layers with their real quantized weights, BN folded, via
//! `nn` and the engine's plan compiler) or a built-in shape list of `linear::shapes` with seeded
//! random weights |w| < 2^weight_bits. Input shares are random.

use std::time::Instant;

use anyhow::Context;
use linear::{
    reference, shapes, Cheetah, CheetahConfig, ClientKeys, Falcon, LayerSpec, LayerWeights,
    LinearProtocol, Ring, ServerKeys, Simd,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use transport::{Channel, NetworkModel, TcpChannel, TcpConfig};

#[derive(clap::Args)]
pub struct Args {
    /// Built-in model: resnet20, resnet32, resnet56, resnet18-64, resnet18-224, resnet50,
    /// mobilenetv2-32, mobilenetv2-224, mobilenetv2-32-w<width> (e.g. -w1.4), efficientnet-b0-32,
    /// efficientnet-b0-224, circulant-mlp-b<b> (block-circulant FCs), vgg16-32, mobilenetv1-224, vit-cifar.
    #[arg(long)]
    model: String,
    /// Share ring bits ℓ.
    #[arg(long, default_value_t = 37)]
    ell: u32,
    /// Public bound on the weights' magnitude: |w| < 2^weight_bits.
    #[arg(long, default_value_t = 12)]
    weight_bits: u32,
    /// Run each distinct layer shape once (first occurrence).
    #[arg(long)]
    distinct: bool,
    /// Run only the first K layers.
    #[arg(long)]
    limit: Option<usize>,
    /// Only the layers whose name ends with this suffix (e.g. `.dw` for MobileNetV2's and
    /// EfficientNet's depthwise convolutions).
    #[arg(long)]
    only: Option<String>,
    /// Bandwidth (Mbit/s) the planner assumes when trading bytes for key switches.
    #[arg(long, default_value_t = 400.0)]
    plan_mbps: f64,
    /// Run Cheetah's own protocol (no packed responses, c₀ of responses at k bits, the query in
    /// full: `CheetahConfig::unpacked()`), the time baseline.
    #[arg(long)]
    no_packing: bool,
    /// Strided convs by space-to-depth: auto (planner chooses; default), off (direct, as Cheetah;
    /// the default with --no-packing), force.
    #[arg(long)]
    polyphase: Option<String>,
    /// Send every query polynomial in full (no truncation to the coefficients the outputs
    /// read; Cheetah's own query). The default truncates unless --no-packing.
    #[arg(long)]
    full_query: bool,
    /// Linear-layer protocol: cheetah (coefficient encoding over Z_{2^ℓ}; default), simd
    /// (slot encoding over a batching prime field, the Gazelle / SCI-HE / Bolt kernels;
    /// `linear::simd`), hyena (padded channel-minor convolution on the same shares, `linear::hyena`;
    /// falcon (Cheetah with dense packing of grouped and depthwise convs, `linear::falcon`),
    /// circulant (block-circulant convs and FCs, `linear::circulant`, see --circulant), cirencode
    /// (the same by PrivCirNet's NTT encoding on simd, `linear::cirencode`; simd, hyena, cirencode,
    /// falcon and circulant run where they apply, Cheetah elsewhere), or auto (per layer the one the
    /// engine's planner picks: lowest estimated time at --plan-mbps, the share conversions
    /// included); ot (every layer by correlated OT, CrypTFlow2's linear layers, `linear::ot`),
    /// winograd2 / winograd4 (Winograd F(2×2,3×3) / F(4×4,3×3) on the OT product for 3×3
    /// stride-1 convs, ot elsewhere; `linear::winograd`). Every row names the protocol it ran.
    #[arg(long, default_value = "cheetah")]
    protocol: String,
    /// Bytes the falcon layers may send: free (what the estimated time at --plan-mbps favours),
    /// cheetah (each layer no more than the Cheetah plan of the same layer) or cheetah-total
    /// (all falcon layers together no more than Cheetah's plans of them: the planner's
    /// bandwidth for those layers lowered until they fit, `falcon::bandwidth_at_cheetah_bytes`).
    #[arg(long, default_value = "free", value_parser = crate::parse_dense_bytes)]
    dense_bytes: linear::DenseBytes,
    /// Only predict costs (no HE is run).
    #[arg(long)]
    dry_run: bool,
    /// Seed of the weights and inputs.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Run both parties over an emulated link (transport::emulate): lan (3 Gbit/s, 0.3 ms RTT),
    /// wan (400 Mbit/s, 40 ms RTT; Cheetah's settings) or <mbit/s>:<rtt_ms>. `ms` is then the wall
    /// time on that link. Default: plain loopback.
    #[arg(long)]
    net: Option<String>,
    /// Run each layer K times (same shares, fresh protocol randomness); `ms` is the median and
    /// `ms_runs` lists every run.
    #[arg(long, default_value_t = 1)]
    repeat: u64,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
    /// Make every conv (groups 1), FC and token × weight layer whose feature counts B divides block-circulant
    /// with block B (a power of two): the layer declares B and its weights (seeded, or the
    /// model's) are projected onto the structure (row 0 of every block copied; PrivCirNet).
    #[arg(long)]
    circulant: Option<usize>,
    /// As --circulant, per layer: a JSON object {"layer name": B, ...} (the toolkit's block
    /// choice, `python -m privinfer_models.circulant`); layers not named stay dense.
    #[arg(long, conflicts_with = "circulant")]
    circulant_blocks: Option<std::path::PathBuf>,
}

/// `layer` declared block-circulant with block b where b fits it (conv with groups 1, FC, token
/// × weight product; b a power of two dividing both channel counts), else unchanged.
fn with_block(layer: LayerSpec, b: usize) -> LayerSpec {
    let fits = |x: usize, y: usize| {
        b > 1 && b.is_power_of_two() && x.is_multiple_of(b) && y.is_multiple_of(b)
    };
    let shape = match layer.shape {
        linear::LayerShape::Conv2d(c) if c.groups == 1 && fits(c.c, c.m) => {
            linear::LayerShape::Conv2d(linear::Conv2dSpec { block: b, ..c })
        }
        linear::LayerShape::Fc(f) if fits(f.inputs, f.outputs) => {
            linear::LayerShape::Fc(linear::FcSpec { block: b, ..f })
        }
        linear::LayerShape::MatMul(m) if fits(m.inputs, m.outputs) => {
            linear::LayerShape::MatMul(linear::MatMulSpec { block: b, ..m })
        }
        other => other,
    };
    LayerSpec { shape, ..layer }
}

/// (outputs, inputs, taps, block) of a block-circulant layer, if it is one.
fn circulant_dims(layer: &LayerSpec) -> Option<(usize, usize, usize, usize)> {
    match layer.shape {
        linear::LayerShape::Conv2d(c) if c.block > 1 => Some((c.m, c.c, c.kh * c.kw, c.block)),
        linear::LayerShape::Fc(f) if f.block > 1 => Some((f.outputs, f.inputs, 1, f.block)),
        linear::LayerShape::MatMul(m) if m.block > 1 => Some((m.outputs, m.inputs, 1, m.block)),
        _ => None,
    }
}

fn random_weights(layer: &LayerSpec, ring: Ring, rng: &mut ChaCha20Rng) -> LayerWeights {
    let lim = (1i64 << layer.weight_bits) - 1;
    let mut weights: Vec<u64> = (0..layer.weight_len())
        .map(|_| ring.from_signed(rng.gen_range(-lim..=lim)))
        .collect();
    // A layer declared block-circulant gets block-circulant weights.
    if let Some((m, c, taps, b)) = circulant_dims(layer) {
        weights = linear::circulant::project(m, c, taps, b, &weights);
    }
    LayerWeights {
        weights,
        // At scale 2^{2s}: |b| < 2^24, inside the fixed-point range.
        bias: (0..layer.bias_len())
            .map(|_| ring.from_signed(rng.gen_range(-(1i64 << 24)..(1i64 << 24))))
            .collect(),
    }
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let ring = Ring::new(a.ell)?;
    let mut rng = ChaCha20Rng::seed_from_u64(a.seed);
    let layers: Vec<(String, LayerSpec, Option<LayerWeights>)> = if a.model.ends_with(".onnx") {
        onnx_layers(&a.model, a.ell)?
    } else {
        shapes::by_name(&a.model, a.weight_bits)
            .with_context(|| {
                format!(
                    "unknown model {:?}; built-in models: {} (or a .onnx file)",
                    a.model,
                    shapes::MODELS.join(", ")
                )
            })?
            .into_iter()
            .map(|(n, l)| (n, l, None))
            .collect()
    };
    let blocks: std::collections::HashMap<String, usize> = match &a.circulant_blocks {
        Some(p) => serde_json::from_str(
            &std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
        )
        .with_context(|| {
            format!(
                "{}: expected a JSON object of layer name -> block",
                p.display()
            )
        })?,
        None => Default::default(),
    };
    for (name, &b) in &blocks {
        anyhow::ensure!(
            b.is_power_of_two(),
            "--circulant-blocks: block {b} of {name:?} is not a power of two"
        );
        anyhow::ensure!(
            layers.iter().any(|(n, _, _)| n == name),
            "--circulant-blocks: no layer named {name:?}"
        );
    }
    if let Some(b) = a.circulant {
        anyhow::ensure!(
            b >= 2 && b.is_power_of_two(),
            "--circulant {b}: expected a power of two ≥ 2"
        );
    }
    let layers: Vec<_> = layers
        .into_iter()
        .map(|(n, l, w)| {
            let b = blocks.get(&n).copied().or(a.circulant).unwrap_or(1);
            let l2 = with_block(l, b);
            // A model's own weights are projected onto the declared structure.
            let w = match (w, circulant_dims(&l2)) {
                (Some(mut w), Some((m, c, taps, b))) if l2 != l => {
                    w.weights = linear::circulant::project(m, c, taps, b, &w.weights);
                    Some(w)
                }
                (w, _) => w,
            };
            (n, l2, w)
        })
        .collect::<Vec<_>>();
    let mut seen = std::collections::HashSet::new();
    let layers: Vec<_> = layers
        .into_iter()
        .filter(|(n, _, _)| a.only.as_deref().is_none_or(|s| n.ends_with(s)))
        .filter(|(_, l, _)| !a.distinct || seen.insert(*l))
        .take(a.limit.unwrap_or(usize::MAX))
        .collect();
    let base = if a.no_packing {
        CheetahConfig::unpacked()
    } else {
        CheetahConfig::default()
    };
    let polyphase = match a.polyphase.as_deref() {
        None => base.polyphase,
        Some("auto") => linear::Polyphase::Auto,
        Some("off") => linear::Polyphase::Off,
        Some("force") => linear::Polyphase::Force,
        Some(other) => anyhow::bail!("--polyphase {other:?}: expected auto, off or force"),
    };
    let proto = Cheetah::new(CheetahConfig {
        bandwidth_bytes_per_s: (a.plan_mbps * 1e6 / 8.0) as u64,
        polyphase,
        truncate_query: base.truncate_query && !a.full_query,
        ..base
    });
    let baseline = Cheetah::new(CheetahConfig::unpacked()); // Cheetah's own formula
    let simd = Simd::default();
    let hyena = Simd::new(linear::SimdConfig::hyena());
    let circulant = linear::Circulant::new(proto.config);
    let cirencode = linear::CirEncode::default();
    let mut falcon = Falcon::new(CheetahConfig {
        dense_bytes: a.dense_bytes,
        ..proto.config
    });
    let mut falcon_mbps = None;
    if a.dense_bytes == linear::DenseBytes::AtMostCheetahTotal {
        let ls: Vec<LayerSpec> = layers.iter().map(|(_, l, _)| *l).collect();
        let bw = linear::falcon::bandwidth_at_cheetah_bytes(&ls, ring, falcon.config())?
            .context("--dense-bytes cheetah-total: no falcon plan fits Cheetah's bytes")?;
        falcon = Falcon::new(CheetahConfig {
            bandwidth_bytes_per_s: bw,
            ..falcon.config()
        });
        falcon_mbps = Some(bw as f64 * 8e-6);
    }
    let ot = linear::OtLinear;
    let (wino2, wino4) = (linear::Winograd::F2, linear::Winograd::F4);
    let bw = a.plan_mbps * 1e6 / 8.0;
    // Per layer: the protocol that runs it.
    let mut chosen: Vec<&dyn LinearProtocol> = Vec::with_capacity(layers.len());
    for (_, l, _) in &layers {
        chosen.push(match a.protocol.as_str() {
            "cheetah" => &proto,
            // Forced where it applies, Cheetah elsewhere (as the engine's policies do).
            "simd" if simd.cost(l, ring).is_ok() => &simd,
            "hyena" if hyena.cost(l, ring).is_ok() => &hyena,
            "falcon" if falcon.cost(l, ring).is_ok() => &falcon,
            "circulant" if circulant.cost(l, ring).is_ok() => &circulant,
            "cirencode" if cirencode.cost(l, ring).is_ok() => &cirencode,
            "simd" | "hyena" | "falcon" | "circulant" | "cirencode" => &proto,
            "ot" => &ot,
            "winograd2" if linear::Winograd::applies(l) => &wino2,
            "winograd4" if linear::Winograd::applies(l) => &wino4,
            "winograd2" | "winograd4" => &ot,
            "auto" => {
                let est = |c: &engine::LinearChoice| {
                    engine::plan::estimated_seconds(c, l, ring, bw).unwrap_or(f64::INFINITY)
                };
                // The engine planner's candidates (`engine::plan::candidates`), with this
                // bench's configurations; Winograd with the tile the ring admits at s = 12.
                let mut candidates: Vec<(&dyn LinearProtocol, f64)> = vec![
                    (&proto, est(&engine::LinearChoice::Cheetah(proto.config))),
                    (&simd, est(&engine::LinearChoice::Simd(simd.config()))),
                    (&hyena, est(&engine::LinearChoice::Hyena(hyena.config()))),
                    (&falcon, est(&engine::LinearChoice::Falcon(falcon.config()))),
                    (
                        &circulant,
                        est(&engine::LinearChoice::Circulant(circulant.config())),
                    ),
                    (
                        &cirencode,
                        est(&engine::LinearChoice::CirEncode(cirencode.config())),
                    ),
                    (&ot, est(&engine::LinearChoice::Ot)),
                ];
                if let Some(m) = engine::plan::winograd_tile(a.ell, 12) {
                    let w: &dyn LinearProtocol = if m == 4 { &wino4 } else { &wino2 };
                    candidates.push((w, est(&engine::LinearChoice::Winograd(m))));
                }
                candidates
                    .into_iter()
                    .min_by(|a, b| a.1.total_cmp(&b.1))
                    .map(|c| c.0)
                    .expect("six candidates at least")
            }
            other => {
                anyhow::bail!(
                    "--protocol {other:?}: expected cheetah, simd, hyena, falcon, circulant, cirencode, ot, winograd2, winograd4 or auto"
                )
            }
        });
    }
    let mut requests = Vec::new();
    for ((name, l, _), active) in layers.iter().zip(&chosen) {
        requests.extend(
            active
                .keys_needed(l, ring)
                .with_context(|| format!("layer {name}"))?,
        );
    }
    requests.sort();
    requests.dedup();
    let setup = linear::setup_cost(&requests)?;

    // A packed ImageNet-size layer can keep the server busy for minutes on a loaded machine.
    let cfg = TcpConfig {
        max_message: 1 << 30,
        timeout: std::time::Duration::from_secs(3600),
        ..TcpConfig::default()
    };
    let net = a.net.as_deref().map(NetworkModel::parse).transpose()?;
    let net_name = a.net.as_deref().unwrap_or("loopback").to_ascii_lowercase();
    let (cc, sc) = TcpChannel::loopback_pair(cfg)?;
    // Both ends share one link state and clock (one process); without --net, plain loopback.
    let (mut cc, mut sc): (Box<dyn Channel + Send>, Box<dyn Channel + Send>) = match &net {
        Some(n) => {
            let (c, s) = transport::emulate(cc, sc, n);
            (Box::new(c), Box::new(s))
        }
        None => (Box::new(cc), Box::new(sc)),
    };
    let (ck, sk) = if a.dry_run {
        (None, None)
    } else {
        let (ck, sk) = std::thread::scope(|s| {
            let h = s.spawn(|| ServerKeys::setup(&requests, &mut sc));
            let ck = ClientKeys::setup(
                &requests,
                &mut cc,
                &mut ChaCha20Rng::seed_from_u64(a.seed ^ 0xc1),
            );
            (ck, h.join().expect("server thread"))
        });
        (Some(ck?), Some(sk?))
    };
    // OT-based layers draw correlated OTs from a 2PC session (silent OT), set up once.
    let needs_ot = layers
        .iter()
        .zip(&chosen)
        .any(|((_, l, _), p)| p.cost(l, ring).is_ok_and(|c| c.cots > 0));
    let mut sessions = if needs_ot && !a.dry_run {
        let (s0, s1) = std::thread::scope(|s| {
            let h = s.spawn(|| {
                let mut r = ChaCha20Rng::seed_from_u64(a.seed ^ 0x50);
                mpc::Session::setup(&mut sc, mpc::Party::P0, &mut r)
            });
            let mut r = ChaCha20Rng::seed_from_u64(a.seed ^ 0x51);
            let s1 = mpc::Session::setup(&mut cc, mpc::Party::P1, &mut r);
            (h.join().expect("server thread"), s1)
        });
        Some((s0?, s1?))
    } else {
        None
    };
    emit(
        a.json,
        serde_json::json!({"setup": {"bytes_c2s": setup.bytes_c2s, "keys": requests.len(), "net": net_name}}),
    );

    let (mut tot_ms, mut tot_c2s, mut tot_s2c, mut tot_cheetah, mut all_exact) =
        (0.0, 0u64, 0u64, 0u64, true);
    let mut conversion_bytes = 0u64;
    for ((name, layer, real), &active) in layers.iter().zip(&chosen) {
        let cheetah_bytes = baseline.cost(layer, ring)?.bytes();
        let cost = active.cost(layer, ring)?;
        let field = active.share_modulus(layer, ring)?;
        let mut row = if cost.cots > 0 {
            ot_row(active, name, layer, ring, &net_name, cheetah_bytes)?
        } else if active.name() == "cirencode" {
            // The grouped SIMD layer between the per-block NTTs is what runs.
            let g = linear::cirencode::grouped_layer(layer)?;
            let mut row = simd_row(&simd, name, &g, ring, &net_name, cheetah_bytes)?;
            row["protocol"] = "cirencode".into();
            row["op"] = op_name(layer).into();
            row
        } else if field.is_some() {
            let s = if active.name() == "hyena" {
                &hyena
            } else {
                &simd
            };
            simd_row(s, name, layer, ring, &net_name, cheetah_bytes)?
        } else {
            // Cheetah's family: the plan of the protocol that runs the layer.
            let plan = match active.name() {
                "circulant" => circulant.plan(layer, ring)?,
                "falcon" => falcon.plan(layer, ring)?,
                _ => proto.plan(layer, ring)?,
            };
            cheetah_row(
                &plan,
                active,
                proto.config.flood_bits,
                name,
                layer,
                ring,
                &net_name,
                cheetah_bytes,
            )?
        };
        // The planner's compute estimate (wire time left out), to compare with `ms` on loopback.
        let est = active.estimated_seconds(layer, ring, f64::INFINITY)?;
        row["estimated_compute_ms"] = serde_json::json!((est * 1e5).round() / 100.0);
        if let Some(t) = field {
            // The share conversions the engine runs around a field-domain layer (exact
            // formula bits, `mpc::cost`; measured by `bench nonlinear`), not part of `ms`.
            let mring = mpc::Ring::new(a.ell)?;
            let bits =
                mpc::cost::ring_to_field_in_range(mring, 64 - t.leading_zeros(), layer.input_len())
                    .bits
                    + mpc::cost::field_to_ring_in_range(mring, layer.output_len()).bits;
            row["conversion_bytes"] = serde_json::json!(bits.div_ceil(8));
            conversion_bytes += bits.div_ceil(8);
        }
        tot_cheetah += cheetah_bytes;
        if let (Some(ck), Some(sk)) = (&ck, &sk) {
            let w = match real {
                Some(w) => w.clone(),
                None => random_weights(layer, ring, &mut rng),
            };
            // Activations in the fixed-point range: |y| < 2^{ℓ−3} for |w| < 2^weight_bits
            // (a field-domain protocol is exact there, docs/protocols/simd.md).
            let taps = (layer.macs() / layer.output_len() as u64).max(1) as f64;
            let xb = ((a.ell as f64 - 3.0 - taps.log2() - layer.weight_bits as f64).floor() as i64)
                .clamp(4, 16);
            let x: Vec<u64> = (0..layer.input_len())
                .map(|_| ring.from_signed(rng.gen_range(-(1 << xb)..(1 << xb))))
                .collect();
            // Shares over Z_{2^ℓ}, or over Z_t for a field-domain protocol.
            let modulus = field.map_or(1u128 << a.ell, |t| t as u128);
            let to_m = |v: u64| (ring.signed(v) as i128).rem_euclid(modulus as i128) as u128;
            let xc: Vec<u64> = (0..x.len())
                .map(|_| (rng.gen::<u128>() % modulus) as u64)
                .collect();
            let xs: Vec<u64> = x
                .iter()
                .zip(&xc)
                .map(|(&v, &c)| ((to_m(v) + modulus - c as u128) % modulus) as u64)
                .collect();
            // Each repetition runs the layer again on the same shares with fresh protocol
            // randomness; `ms` is the median, bytes are those of the last run (all equal: the
            // byte counts depend only on the plan).
            let (s_seed, c_seed): (u64, u64) = (rng.gen(), rng.gen());
            let mut runs_ms = Vec::new();
            let (mut cot_ms, mut cot_bytes) = (Vec::new(), 0u64);
            let (mut cs, mut ss) = Default::default();
            let mut exact = true;
            for rep in 0..a.repeat.max(1) {
                let (mut c0, mut s0_stats) = (cc.stats(), sc.stats());
                let mut srng = ChaCha20Rng::seed_from_u64(s_seed.wrapping_add(rep));
                let mut crng = ChaCha20Rng::seed_from_u64(c_seed.wrapping_add(rep));
                // An OT-based layer runs with the sessions; its COTs are generated (the OT
                // layer's traffic) ahead of the timed run.
                let ot_sessions = sessions.as_mut().filter(|_| cost.cots > 0);
                let (s0, s1) = match ot_sessions {
                    Some((s0, s1)) => {
                        let n = cost.cots as usize;
                        let (g0, g1) = (cc.stats(), sc.stats());
                        let tg = Instant::now();
                        std::thread::scope(|s| {
                            let h = s.spawn(|| s0.prefetch(&mut sc, n, 0));
                            let r = s1.prefetch(&mut cc, 0, n);
                            h.join().expect("server thread").and(r)
                        })?;
                        cot_ms.push(tg.elapsed().as_secs_f64() * 1e3);
                        cot_bytes =
                            cc.stats().since(&g0).bytes_sent + sc.stats().since(&g1).bytes_sent;
                        (c0, s0_stats) = (cc.stats(), sc.stats());
                        (Some(s0), Some(s1))
                    }
                    None => (None, None),
                };
                let t = Instant::now();
                let (yc, ys) = std::thread::scope(|s| {
                    let h = s.spawn(|| match s0 {
                        Some(s0) => {
                            active.server_in(layer, ring, sk, &w, &xs, s0, &mut sc, &mut srng)
                        }
                        None => active.server(layer, ring, sk, &w, &xs, &mut sc, &mut srng),
                    });
                    let yc = match s1 {
                        Some(s1) => active.client_in(layer, ring, ck, &xc, s1, &mut cc, &mut crng),
                        None => active.client(layer, ring, ck, &xc, &mut cc, &mut crng),
                    };
                    (yc, h.join().expect("server thread"))
                });
                runs_ms.push(t.elapsed().as_secs_f64() * 1e3);
                let (yc, ys) = (
                    yc.with_context(|| format!("client, layer {name}"))?,
                    ys.with_context(|| format!("server, layer {name}"))?,
                );
                let y: Vec<u64> = yc
                    .iter()
                    .zip(&ys)
                    .map(|(&p, &q)| {
                        let v = (p as u128 + q as u128) % modulus;
                        let signed = if v > modulus / 2 {
                            v as i128 - modulus as i128
                        } else {
                            v as i128
                        };
                        ring.from_signed(signed as i64)
                    })
                    .collect();
                // Winograd returns 2^e·(W·x + b), the rescale's to remove.
                let e = active.output_shift(layer);
                exact &= y
                    == reference(layer, ring, &w, &x)
                        .iter()
                        .map(|&v| ring.reduce(v << e))
                        .collect::<Vec<_>>();
                (cs, ss) = (cc.stats().since(&c0), sc.stats().since(&s0_stats));
            }
            let ms = median(&runs_ms);
            all_exact &= exact;
            tot_ms += ms;
            tot_c2s += cs.bytes_sent;
            tot_s2c += ss.bytes_sent;
            if runs_ms.len() > 1 {
                row["ms_runs"] = serde_json::json!(runs_ms
                    .iter()
                    .map(|m| (m * 100.0).round() / 100.0)
                    .collect::<Vec<_>>());
            }
            row["ms"] = serde_json::json!((ms * 100.0).round() / 100.0);
            if !cot_ms.is_empty() {
                // Silent-OT generation of the layer's COTs, outside `ms` and the bytes.
                row["cot_ms"] = serde_json::json!((median(&cot_ms) * 100.0).round() / 100.0);
                row["cot_bytes"] = serde_json::json!(cot_bytes);
            }
            row["bytes_c2s"] = serde_json::json!(cs.bytes_sent);
            row["bytes_s2c"] = serde_json::json!(ss.bytes_sent);
            row["exact"] = serde_json::json!(exact);
        } else {
            tot_c2s += cost.bytes_c2s;
            tot_s2c += cost.bytes_s2c;
        }
        emit(a.json, row);
    }
    emit(
        a.json,
        serde_json::json!({"total": {
            "model": a.model, "protocol": a.protocol, "net": net_name, "conversion_bytes": conversion_bytes,
            "simd_layers": chosen.iter().filter(|p| p.name() == "simd").count(),
            "hyena_layers": chosen.iter().filter(|p| p.name() == "hyena").count(),
            "falcon_layers": chosen.iter().filter(|p| p.name() == "falcon").count(),
            "circulant_layers": chosen.iter().filter(|p| p.name() == "circulant").count(),
            "cirencode_layers": chosen.iter().filter(|p| p.name() == "cirencode").count(),
            "ot_layers": chosen.iter().filter(|p| p.name() == "ot").count(),
            "winograd_layers": chosen.iter().filter(|p| p.name().starts_with("winograd")).count(),
            "falcon_plan_mbps": falcon_mbps, "layers": layers.len(), "ms": (tot_ms * 100.0f64).round() / 100.0,
            "bytes_c2s": tot_c2s, "bytes_s2c": tot_s2c, "cheetah_bytes": tot_cheetah,
            "setup_bytes": setup.bytes_c2s, "repeat": a.repeat.max(1), "exact": all_exact, "measured": !a.dry_run,
        }}),
    );
    anyhow::ensure!(
        all_exact,
        "some layer's reconstructed output differs from the reference"
    );
    Ok(())
}

fn op_name(layer: &LayerSpec) -> &'static str {
    match layer.shape {
        linear::LayerShape::Fc(_) => "fc",
        linear::LayerShape::MatMul(_) => "matmul",
        linear::LayerShape::Scale(_) => "scale",
        _ => "conv",
    }
}

/// A report row's predicted fields for an OT-based protocol (`ot`, `winograd2`, `winograd4`).
fn ot_row(
    proto: &dyn LinearProtocol,
    name: &str,
    layer: &LayerSpec,
    ring: Ring,
    net_name: &str,
    cheetah_bytes: u64,
) -> anyhow::Result<serde_json::Value> {
    let cost = proto.cost(layer, ring)?;
    let ot_bytes = linear::OtLinear.cost(layer, ring)?.bytes();
    Ok(serde_json::json!({
        "layer": name,
        "op": op_name(layer),
        "protocol": proto.name(),
        "net": net_name,
        "predicted_c2s": cost.bytes_c2s,
        "predicted_s2c": cost.bytes_s2c,
        "cheetah_bytes": cheetah_bytes,
        // The comparison row of CoPriv: the same layer by the OT layer (im2col's pairs).
        "ot_bytes": ot_bytes,
        // CrypTFlow2's im2col OT convolution (zero padding included).
        "im2col_bytes": linear::ot::im2col_cost(layer, ring)?.map(|c| c.bytes()),
        "cots": cost.cots,
        "output_shift": proto.output_shift(layer),
        "weight_bytes": proto.weight_bytes(layer, ring)?,
        "rounds": cost.rounds,
    }))
}

/// A report row's predicted fields for the SIMD protocol.
fn simd_row(
    simd: &Simd,
    name: &str,
    layer: &LayerSpec,
    ring: Ring,
    net_name: &str,
    cheetah_bytes: u64,
) -> anyhow::Result<serde_json::Value> {
    let cost = simd.cost(layer, ring)?;
    let noise = simd.noise(layer, ring)?;
    Ok(serde_json::json!({
        "layer": name,
        "op": op_name(layer),
        "protocol": simd.name(),
        "net": net_name,
        "params": simd.params_for(layer, ring)?.name(),
        "baby_steps": simd.baby_steps(layer, ring)?,
        "response_bits": [noise.response_bits, noise.c0_bits],
        "predicted_c2s": cost.bytes_c2s,
        "predicted_s2c": cost.bytes_s2c,
        "cheetah_bytes": cheetah_bytes,
        "ct_c2s": cost.ciphertexts_c2s,
        "ct_s2c": cost.ciphertexts_s2c,
        "ct_pt_mults": cost.ct_pt_mults,
        "ntts": cost.ntts,
        "key_switches": cost.rotations,
        "rotations": cost.rotations,
        "rotation_formula": simd.rotation_formula(layer, ring)?,
        "macs": simd.macs(layer, ring)?,
        "weight_bytes": simd.weight_bytes(layer, ring)?,
        // The server's predicted peak beyond its keys (`LinearProtocol::working_set_bytes`).
        "working_set_bytes": simd.working_set_bytes(layer, ring)?,
        "rounds": cost.rounds,
    }))
}

/// A report row's predicted fields for a plan of Cheetah's family (`cheetah`, `falcon`).
#[allow(clippy::too_many_arguments)]
fn cheetah_row(
    plan: &linear::CheetahPlan,
    proto: &dyn LinearProtocol,
    flood_bits: u32,
    name: &str,
    layer: &LayerSpec,
    ring: Ring,
    net_name: &str,
    cheetah_bytes: u64,
) -> anyhow::Result<serde_json::Value> {
    let lb = linear::bytes_lower_bound(layer, ring, flood_bits);
    let mut row = serde_json::json!({
            "layer": name,
            "op": op_name(layer),
            "protocol": proto.name(),
            "net": net_name,
            "params": plan.params.name(),
            "pack": plan.pack,
            "polyphase": plan.polyphase.is_some(),
            "query_drop_bits": plan.query_drop_bits,
            "truncated_query": plan.truncated_query,
            // Query coefficients sent (Σ_i |S_i|, or #in·N untruncated) of #in·N.
            "query_coefs": if plan.truncated_query {
                plan.layout.query_support_lens().iter().sum::<usize>()
            } else {
                plan.layout.input_cts() * plan.layout.n()
            },
            "query_capacity": plan.layout.input_cts() * plan.layout.n(),
            "response_bits": [plan.noise.response_bits, plan.noise.c0_bits],
            "predicted_c2s": plan.cost.bytes_c2s,
            "predicted_s2c": plan.cost.bytes_s2c,
            "cheetah_bytes": cheetah_bytes,
            "lower_bound_query": lb.0,
            "lower_bound_bytes": lb.1,
            "ct_c2s": plan.cost.ciphertexts_c2s,
            "ct_s2c": plan.cost.ciphertexts_s2c,
            "ct_pt_mults": plan.cost.ct_pt_mults,
            "ntts": plan.cost.ntts,
            "key_switches": plan.cost.rotations,
            // Automorphisms with key switching (issue 12's name; Cheetah's only ones pack responses).
            "rotations": plan.cost.rotations,
            "weight_bytes": proto.weight_bytes(layer, ring)?,
            "rounds": plan.cost.rounds,
    });
    if let linear::cheetah::Layout::Dense { tiling, .. } = plan.layout {
        // Units per input, filters per weight polynomial, channel slots per unit, bands.
        row["dense"] = serde_json::json!({"m": tiling.m, "k": tiling.k, "g": tiling.g, "bands": tiling.n_b,
            "classes": tiling.classes(), "searched": tiling.searched});
    }
    Ok(row)
}

/// The median (mean of the middle two for an even count); 0 for none.
fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn emit(json: bool, v: serde_json::Value) {
    if json {
        println!("{v}");
    } else if let Some(t) = v.get("total") {
        println!(
            "total: {} layers, {} ms, {:.2} MB c→s, {:.2} MB s→c, Cheetah formula {:.2} MB, exact: {}",
            t["layers"], t["ms"],
            t["bytes_c2s"].as_f64().unwrap_or(0.0) / 1e6,
            t["bytes_s2c"].as_f64().unwrap_or(0.0) / 1e6,
            t["cheetah_bytes"].as_f64().unwrap_or(0.0) / 1e6,
            t["exact"]
        );
    } else if let Some(s) = v.get("setup") {
        println!(
            "setup: {} key set(s), {:.2} MB c→s",
            s["keys"],
            s["bytes_c2s"].as_f64().unwrap_or(0.0) / 1e6
        );
    } else {
        println!(
            "{:<24} {:<5} {:<10} {:>9} ms {:>12} B c→s {:>12} B s→c  (cheetah {:>12} B)  exact: {}",
            v["layer"].as_str().unwrap_or(""),
            v["op"].as_str().unwrap_or(""),
            v["params"].as_str().unwrap_or(""),
            v.get("ms")
                .map(|m| m.to_string())
                .unwrap_or_else(|| "-".into()),
            v.get("bytes_c2s").unwrap_or(&v["predicted_c2s"]),
            v.get("bytes_s2c").unwrap_or(&v["predicted_s2c"]),
            v["cheetah_bytes"],
            v.get("exact")
                .map(|e| e.to_string())
                .unwrap_or_else(|| "-".into()),
        );
    }
}

/// The linear layers of an ONNX model with their quantized weights (docs/fixed-point.md).
fn onnx_layers(
    path: &str,
    ell: u32,
) -> anyhow::Result<Vec<(String, LayerSpec, Option<LayerWeights>)>> {
    let model = nn::load(path).with_context(|| format!("loading {path}"))?;
    let cfg = engine::PlanConfig {
        ell,
        ..engine::PlanConfig::default()
    };
    let plan = engine::Plan::compile(&model, &cfg)?;
    let fm = nn::fixed::FixedModel::new(&model, nn::FixedConfig::new(ell, cfg.scale)?);
    Ok(plan
        .steps
        .iter()
        .enumerate()
        .filter_map(|(id, step)| match &step.kind {
            engine::StepKind::Linear { layer, .. } => {
                let (w, b) = fm.params(id);
                Some((
                    step.name.clone(),
                    *layer,
                    Some(LayerWeights {
                        weights: w.to_vec(),
                        bias: b.to_vec(),
                    }),
                ))
            }
            _ => None,
        })
        .collect())
}
