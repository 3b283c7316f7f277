//! Dense packing of grouped and depthwise convolutions in Cheetah's coefficient encoding, after
//! Falcon (Xu et al., ICCAD 2023): several groups per input polynomial **and several filters per
//! weight polynomial**, so one ct×pt product yields k groups' outputs instead of one, with
//! padding shared between neighbouring rows (the zero coefficients a row's right padding and the
//! next row's left padding need are the same ones). docs/protocols/falcon.md states the
//! construction, proves it and says where it departs from the paper.
//!
//! Encoding (all indices are logical exponents of X; X^e = (−1)^⌊e/N⌋·X^{e mod N}):
//! * S = m·k (a power of two) residue classes; g = c_per_group rounded up to a power of two;
//!   L = N/(S·g) spatial positions per class. A band of stride-1 output rows [R₀, R₀ + r) reads
//!   the padded rows [R₀, R₀ + r + kh − 1) (local rows ρ); real pixel (row, col q) of the band
//!   sits at P = ρ·w_s + q with row stride w_s = W + p.
//! * Input polynomial: group unit u < m at residue u: channel cc of the group, pixel P at
//!   ((P·g) + cc)·S + u.
//! * Weight polynomial: filter κ < k (of the group at unit u_κ) at residue ρ_κ = κ·m − u_κ: tap
//!   (cc, l, l′) at ((p − l·w_s − l′)·g − cc)·S + ρ_κ.
//! * Output (i, j) of filter κ (local stride-1 row i, column j) at (T·g)·S + κ·m with
//!   T = i·w_s + j: a multiple of m, so up to m product outputs pack into one response.
//!
//! Non-interference (proof in docs/protocols/falcon.md): a pair (unit u′, filter κ′) lands on
//! residue u′ − u_κ′ + κ′·m, which is ≡ 0 (mod m) only when u′ = u_κ′, and then equals κ′·m: the
//! kept residue classes receive only their own filter's own group. Inside a class the channel
//! offsets cancel only for equal channels (|cc − cc′| < g, g | L·g), and the spatial product is
//! cyclic of length L: every tap of a kept output reads either its own pixel or a coefficient
//! that is zero (a padding column shared between rows, or a padding row, the bottom ones wrapping
//! onto the top ones) as long as L ≥ (rows − min(top pad, bottom pad))·w_s, w_s ≥ W + p and
//! p < min(kh, kw).

pub mod placement;

use rand_core::CryptoRngCore;
use transport::Channel;

use crate::cheetah::{Cheetah, CheetahConfig, CheetahPlan};
use crate::keys::{ClientKeys, KeyRequest, ServerKeys};
use crate::layer::{Conv2dSpec, LayerShape, LayerSpec, LayerWeights, Ring};
use crate::{Cost, LinearError, LinearProtocol};

/// Cheetah's protocol with dense packing for grouped and depthwise convolutions: everything
/// (seeded truncated queries, flooding, packed responses, the planner) is Cheetah's; only the
/// encoding differs ([`DenseTiling`], chosen by the planner among the dense tilings, their
/// response packings and Cheetah's own encodings by estimated time). Applies to grouped and
/// depthwise convolutions and scales; the `cost` of any other layer is an error, so a planner
/// falls back to another protocol there.
#[derive(Clone, Copy, Debug)]
pub struct Falcon {
    cheetah: Cheetah,
}

impl Default for Falcon {
    fn default() -> Self {
        Falcon::new(CheetahConfig::default())
    }
}

impl Falcon {
    pub fn new(config: CheetahConfig) -> Falcon {
        Falcon {
            cheetah: Cheetah::new(CheetahConfig {
                dense: true,
                ..config
            }),
        }
    }

    pub fn config(&self) -> CheetahConfig {
        self.cheetah.config
    }

    /// Whether it applies: grouped and depthwise convolutions and scales (not token × weight
    /// products, which run as dense 1×1 convolutions).
    pub fn applies(layer: &LayerSpec) -> bool {
        !matches!(layer.shape, LayerShape::MatMul(_))
            && layer.as_conv().is_some_and(|c| c.groups > 1)
    }

    /// The plan of a layer it applies to: the fastest of the dense tilings and Cheetah's own
    /// encodings (a dense tiling wins where it pays off; `plan.layout` says which).
    pub fn plan(&self, layer: &LayerSpec, ring: Ring) -> Result<CheetahPlan, LinearError> {
        if !Self::applies(layer) {
            return Err(LinearError::BadShape {
                reason: "falcon: only grouped or depthwise convolutions and scales",
            });
        }
        self.cheetah.plan(layer, ring)
    }
}

/// The largest planning bandwidth (bytes/s, at most `config`'s) at which Falcon's plans of
/// `layers` (those it applies to) send in total no more than Cheetah's plans of the same layers
/// (`DenseBytes::AtMostCheetahTotal`): the network profile under which the dense tilings spend
/// bytes only where they buy the most time, found by bisection on log-bandwidth (total bytes
/// fall as bandwidth falls, not strictly). `None` if even 1 kB/s exceeds the budget.
pub fn bandwidth_at_cheetah_bytes(
    layers: &[LayerSpec],
    ring: Ring,
    config: CheetahConfig,
) -> Result<Option<u64>, LinearError> {
    let cheetah = Cheetah::new(CheetahConfig {
        dense: false,
        ..config
    });
    let mut budget = 0;
    for l in layers.iter().filter(|l| Falcon::applies(l)) {
        budget += cheetah.cost(l, ring)?.bytes();
    }
    let bytes = |bw: u64| -> Result<u64, LinearError> {
        let f = Falcon::new(CheetahConfig {
            bandwidth_bytes_per_s: bw,
            ..config
        });
        let mut total = 0;
        for l in layers.iter().filter(|l| Falcon::applies(l)) {
            total += f.cost(l, ring)?.bytes();
        }
        Ok(total)
    };
    let (mut lo, mut hi) = (
        1_000f64.ln(),
        (config.bandwidth_bytes_per_s.max(1_000) as f64).ln(),
    );
    if bytes(hi.exp() as u64)? <= budget {
        return Ok(Some(hi.exp() as u64));
    }
    if bytes(lo.exp() as u64)? > budget {
        return Ok(None);
    }
    for _ in 0..14 {
        let mid = 0.5 * (lo + hi);
        if bytes(mid.exp() as u64)? <= budget {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok(Some(lo.exp() as u64))
}

impl LinearProtocol for Falcon {
    fn name(&self) -> &'static str {
        "falcon"
    }

    fn cost(&self, layer: &LayerSpec, ring: Ring) -> Result<Cost, LinearError> {
        Ok(self.plan(layer, ring)?.cost)
    }

    fn estimated_seconds(
        &self,
        layer: &LayerSpec,
        ring: Ring,
        bandwidth: f64,
    ) -> Result<f64, LinearError> {
        self.plan(layer, ring)?;
        self.cheetah.estimated_seconds(layer, ring, bandwidth)
    }

    fn weight_bytes(&self, layer: &LayerSpec, ring: Ring) -> Result<u64, LinearError> {
        self.plan(layer, ring)?;
        self.cheetah.weight_bytes(layer, ring)
    }

    fn keys_needed(&self, layer: &LayerSpec, ring: Ring) -> Result<Vec<KeyRequest>, LinearError> {
        self.plan(layer, ring)?;
        self.cheetah.keys_needed(layer, ring)
    }

    fn client(
        &self,
        layer: &LayerSpec,
        ring: Ring,
        keys: &ClientKeys,
        x: &[u64],
        ch: &mut dyn Channel,
        rng: &mut dyn CryptoRngCore,
    ) -> Result<Vec<u64>, LinearError> {
        self.plan(layer, ring)?;
        self.cheetah.client(layer, ring, keys, x, ch, rng)
    }

    fn server(
        &self,
        layer: &LayerSpec,
        ring: Ring,
        keys: &ServerKeys,
        weights: &LayerWeights,
        x: &[u64],
        ch: &mut dyn Channel,
        rng: &mut dyn CryptoRngCore,
    ) -> Result<Vec<u64>, LinearError> {
        self.plan(layer, ring)?;
        self.cheetah.server(layer, ring, keys, weights, x, ch, rng)
    }

    fn splits(&self) -> bool {
        true
    }

    fn client_send(
        &self,
        layer: &LayerSpec,
        ring: Ring,
        keys: &ClientKeys,
        x: &[u64],
        ch: &mut dyn Channel,
        rng: &mut dyn CryptoRngCore,
    ) -> Result<crate::PendingAnswer, LinearError> {
        self.plan(layer, ring)?;
        self.cheetah.client_send(layer, ring, keys, x, ch, rng)
    }

    fn client_receive(
        &self,
        pending: crate::PendingAnswer,
        ring: Ring,
        keys: &ClientKeys,
        ch: &mut dyn Channel,
    ) -> Result<Vec<u64>, LinearError> {
        self.cheetah.client_receive(pending, ring, keys, ch)
    }

    fn client_batch(
        &self,
        calls: &[(&LayerSpec, &[u64])],
        ring: Ring,
        keys: &ClientKeys,
        _session: &mut mpc::Session,
        ch: &mut dyn Channel,
        rng: &mut dyn CryptoRngCore,
    ) -> Result<Vec<Vec<u64>>, LinearError> {
        for (layer, _) in calls {
            self.plan(layer, ring)?;
        }
        self.cheetah.client_batch_direct(calls, ring, keys, ch, rng)
    }
}

/// A dense tiling of a grouped convolution (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct DenseTiling {
    pub n: usize,
    /// Group units per input polynomial and filters per weight polynomial (powers of two).
    pub m: usize,
    pub k: usize,
    /// Channel slots per unit: c_per_group rounded up to a power of two.
    pub g: usize,
    /// Spatial positions per residue class, N/(m·k·g).
    pub l: usize,
    /// Row stride W + p.
    pub w_s: usize,
    /// Stride-1 output rows per band and number of bands.
    pub step: usize,
    pub n_b: usize,
    /// Residue classes S: m·k for the grid, a power of two ≥ m for a searched placement.
    pub s: usize,
    /// Units and filters placed by [`placement::searched`] (fewer classes read, outputs not at
    /// multiples of a power of two: responses unpacked) instead of the grid.
    pub searched: bool,
}

/// One filter of a weight polynomial: output channel f, the class of its unit, its residue.
/// Its outputs sit at class + residue (≥ 0, < 2S) above the spatial offset.
#[derive(Clone, Copy, Debug)]
struct Slot {
    f: usize,
    class: usize,
    residue: i64,
}

/// Stride-1 output rows and columns needed: (out − 1)·stride + 1.
fn needed(spec: &Conv2dSpec) -> (usize, usize) {
    (
        (spec.out_h() - 1) * spec.stride + 1,
        (spec.out_w() - 1) * spec.stride + 1,
    )
}

/// X^e as (coefficient index, sign) in Z[X]/(X^N + 1).
fn monomial(e: i64, n: usize) -> (usize, bool) {
    let n = n as i64;
    (e.rem_euclid(n) as usize, e.div_euclid(n) % 2 != 0)
}

impl DenseTiling {
    /// Spatial positions one band needs: (rows − min(top pad, bottom pad))·w_s.
    fn band_need(spec: &Conv2dSpec, step: usize, w_s: usize, b: usize) -> usize {
        let (hb, tp, bp) = Self::band_rows(spec, step, b);
        (hb - tp.min(bp)) * w_s
    }

    /// (padded rows read, top padding rows, bottom padding rows) of band b.
    fn band_rows(spec: &Conv2dSpec, step: usize, b: usize) -> (usize, usize, usize) {
        let (hf, _) = needed(spec);
        let r0 = b * step;
        let hb = (r0 + step).min(hf) - r0 + spec.kh - 1;
        let tp = spec.padding.saturating_sub(r0).min(hb);
        let bp = (r0 + hb).saturating_sub(spec.h + spec.padding);
        (hb, tp, bp)
    }

    /// The tiling with `step` output rows per band and k filters per weight polynomial, the most
    /// units per polynomial that fit; `None` if none fits or the shape is not supported
    /// (padding ≥ kernel size).
    pub fn new(spec: &Conv2dSpec, n: usize, step: usize, k: usize) -> Option<DenseTiling> {
        let p = spec.padding;
        if p >= spec.kh || p >= spec.kw || step == 0 || !k.is_power_of_two() {
            return None;
        }
        let (hf, wf) = needed(spec);
        let w_s = spec.w + p;
        if wf > w_s {
            return None;
        }
        let n_b = hf.div_ceil(step);
        let need = (0..n_b)
            .map(|b| Self::band_need(spec, step, w_s, b))
            .max()?;
        let g = spec.c_per_group().next_power_of_two();
        let fit = n / (g * need).max(1);
        if fit < k {
            return None;
        }
        let s_max = 1usize << fit.ilog2();
        // More units than groups would leave whole classes empty.
        let m = (s_max / k).min(spec.groups.next_power_of_two());
        // A filter slot without a filter of the polynomial's groups is wasted.
        if m == 0 || k > m * spec.m_per_group() {
            return None;
        }
        Some(DenseTiling {
            n,
            m,
            k,
            g,
            l: n / (m * k * g),
            w_s,
            step,
            n_b,
            s: m * k,
            searched: false,
        })
    }

    /// The tiling with a searched placement of m units and weight polynomials of at most k
    /// filters on S classes ([`placement::searched`]); depthwise layers (one filter per group)
    /// with S ≤ 32 only.
    pub fn new_searched(
        spec: &Conv2dSpec,
        n: usize,
        step: usize,
        s: usize,
        m: usize,
        k: usize,
    ) -> Option<DenseTiling> {
        let grid = DenseTiling::new(spec, n, step, 1)?;
        if spec.m_per_group() != 1 || s > 32 || s > grid.m || m > spec.groups || k < 2 {
            return None;
        }
        placement::searched(s, m, k)?;
        let t = DenseTiling {
            m,
            k,
            l: n / (s * grid.g),
            s,
            searched: true,
            ..grid
        };
        // Outputs sit at (T·g)·S + class + residue < (T·g + 2)·S: below N for every kept T.
        let (_, wf) = needed(spec);
        let t_max = (t.step - 1) * t.w_s + wf - 1;
        ((t_max * t.g + 2) * s <= n).then_some(t)
    }

    /// Candidate tilings: balanced row bands × k ∈ {1, 2, 4, …}.
    pub fn candidates(spec: &Conv2dSpec, n: usize) -> Vec<DenseTiling> {
        if spec.groups <= 1 {
            return Vec::new();
        }
        let (hf, _) = needed(spec);
        let mut steps: Vec<usize> = (1..=hf).map(|b| hf.div_ceil(b)).collect();
        steps.dedup();
        let mut out = Vec::new();
        for &step in &steps {
            let mut k = 1;
            while k <= n {
                match DenseTiling::new(spec, n, step, k) {
                    Some(t) => out.push(t),
                    None if k > 1 => break,
                    None => {}
                }
                k *= 2;
            }
            // Searched placements on the classes the grid with k = 1 would use (S ≤ 32).
            if let Some(t1) = DenseTiling::new(spec, n, step, 1) {
                let s = t1.m;
                for k in [2, 4] {
                    for m in (2 * k..=s * 3 / 4).step_by(k) {
                        if let Some(t) = DenseTiling::new_searched(spec, n, step, s, m, k) {
                            out.push(t);
                        }
                    }
                }
            }
        }
        out
    }

    /// S = m·k residue classes.
    pub fn classes(&self) -> usize {
        self.s
    }

    /// The class of unit u.
    fn unit_class(&self, u: usize) -> usize {
        if self.searched {
            placement::searched(self.classes(), self.m, self.k)
                .expect("checked in new_searched")
                .units[u]
        } else {
            u
        }
    }

    /// The weight polynomials of input polynomial ip, each as its filters' slots (none empty).
    fn chunks(&self, spec: &Conv2dSpec, ip: usize) -> Vec<Vec<Slot>> {
        let (a, e) = self.filters_of(spec, ip);
        if self.searched {
            let pl = placement::searched(self.classes(), self.m, self.k).expect("checked");
            let units = spec.groups.min((ip + 1) * self.m) - ip * self.m;
            return pl
                .chunks
                .iter()
                .map(|c| {
                    c.iter()
                        .filter(|&&(u, _)| u < units)
                        .map(|&(u, r)| Slot {
                            f: ip * self.m + u,
                            class: pl.units[u],
                            residue: r as i64,
                        })
                        .collect::<Vec<_>>()
                })
                .filter(|c| !c.is_empty())
                .collect();
        }
        (a..e)
            .step_by(self.k)
            .map(|c0| {
                (c0..(c0 + self.k).min(e))
                    .enumerate()
                    .map(|(kappa, f)| {
                        let unit = spec.group_of_output(f) - ip * self.m;
                        Slot {
                            f,
                            class: unit,
                            residue: (kappa * self.m) as i64 - unit as i64,
                        }
                    })
                    .collect()
            })
            .collect()
    }

    /// Input polynomials per band.
    pub fn unit_polys(&self, spec: &Conv2dSpec) -> usize {
        spec.groups.div_ceil(self.m)
    }

    pub fn input_cts(&self, spec: &Conv2dSpec) -> usize {
        self.unit_polys(spec) * self.n_b
    }

    /// Filters whose group sits in input polynomial `ip`: [first, end).
    fn filters_of(&self, spec: &Conv2dSpec, ip: usize) -> (usize, usize) {
        let mpg = spec.m_per_group();
        let first = ip * self.m * mpg;
        (first, ((ip + 1) * self.m * mpg).min(spec.m))
    }

    /// Number of weight polynomials (keys 0..weight_keys()): those of the full input
    /// polynomials, then of the last.
    pub fn weight_keys(&self, spec: &Conv2dSpec) -> usize {
        let ips = self.unit_polys(spec);
        (ips - 1) * self.chunks_per_full(spec) + self.chunks(spec, ips - 1).len()
    }

    /// Weight polynomials of a full input polynomial (at least those of any input polynomial),
    /// without listing them: keys are numbered input polynomial by input polynomial at this
    /// stride.
    fn chunks_per_full(&self, spec: &Conv2dSpec) -> usize {
        if self.searched {
            placement::searched(self.classes(), self.m, self.k)
                .expect("checked in new_searched")
                .chunks
                .len()
        } else {
            (self.m * spec.m_per_group()).div_ceil(self.k)
        }
    }

    /// (input polynomial, filter slots) of weight key `key`.
    fn key_slots(&self, spec: &Conv2dSpec, key: usize) -> (usize, Vec<Slot>) {
        let per = self.chunks_per_full(spec);
        let (ip, j) = (key / per, key % per);
        let mut c = self.chunks(spec, ip);
        (ip, c.swap_remove(j))
    }

    /// The input polynomial weight key `key` multiplies.
    pub fn key_input(&self, spec: &Conv2dSpec, key: usize) -> usize {
        key / self.chunks_per_full(spec)
    }

    /// Output polynomial o = key·n_b + band; input polynomial idx = ip·n_b + band.
    pub fn output_cts(&self, spec: &Conv2dSpec) -> usize {
        self.weight_keys(spec) * self.n_b
    }

    /// Input polynomial (ip, band) from the unpadded input x (C×H×W).
    pub fn encode_input(&self, spec: &Conv2dSpec, x: &[u64], idx: usize) -> Vec<u64> {
        let (ip, b) = (idx / self.n_b, idx % self.n_b);
        let s = self.classes();
        let cpg = spec.c_per_group();
        let mut poly = vec![0u64; self.n];
        // Real rows of the band's window and their local row index.
        let r0 = (b * self.step) as isize - spec.padding as isize;
        let (hb, _, _) = Self::band_rows(spec, self.step, b);
        for u in 0..self.m {
            let grp = ip * self.m + u;
            if grp >= spec.groups {
                break;
            }
            let class = self.unit_class(u);
            for cc in 0..cpg {
                let ch = grp * cpg + cc;
                for rho in 0..hb {
                    let row = r0 + rho as isize;
                    if row < 0 || row >= spec.h as isize {
                        continue;
                    }
                    for q in 0..spec.w {
                        let pos = rho * self.w_s + q;
                        debug_assert!(pos < self.l);
                        poly[((pos * self.g) + cc) * s + class] =
                            x[(ch * spec.h + row as usize) * spec.w + q];
                    }
                }
            }
        }
        poly
    }

    /// Weight polynomial `key` as signed integers.
    pub fn encode_filters(
        &self,
        spec: &Conv2dSpec,
        ring: Ring,
        weights: &[u64],
        key: usize,
    ) -> Vec<i64> {
        let (_, slots) = self.key_slots(spec, key);
        let (s, cpg) = (self.classes() as i64, spec.c_per_group());
        let (g, w_s, p) = (self.g as i64, self.w_s as i64, spec.padding as i64);
        let mut poly = vec![0i64; self.n];
        for slot in slots {
            let (f, rho) = (slot.f, slot.residue);
            for cc in 0..cpg {
                for l in 0..spec.kh {
                    for l2 in 0..spec.kw {
                        let v = ring.signed(weights[((f * cpg + cc) * spec.kh + l) * spec.kw + l2]);
                        let b_sp = p - l as i64 * w_s - l2 as i64;
                        let (idx, neg) = monomial((b_sp * g - cc as i64) * s + rho, self.n);
                        poly[idx] = if neg { v.wrapping_neg() } else { v };
                    }
                }
            }
        }
        poly
    }

    /// Kept stride-s outputs of band b: (i_out, j_out, spatial target T).
    fn kept_outputs(&self, spec: &Conv2dSpec, b: usize) -> Vec<(usize, usize, usize)> {
        let s = spec.stride;
        let r0 = b * self.step;
        let (hf, _) = needed(spec);
        let hi = (r0 + self.step).min(hf);
        let mut out = Vec::new();
        for i in r0.div_ceil(s)..hi.div_ceil(s) {
            for j in 0..spec.out_w() {
                out.push((i, j, (i * s - r0) * self.w_s + j * s));
            }
        }
        out
    }

    /// Number of outputs per filter in band b.
    pub fn kept_per_filter(&self, spec: &Conv2dSpec, b: usize) -> usize {
        let r0 = b * self.step;
        let (hf, _) = needed(spec);
        let hi = (r0 + self.step).min(hf);
        (hi.div_ceil(spec.stride) - r0.div_ceil(spec.stride)) * spec.out_w()
    }

    /// Outputs of output polynomial o: (coefficient, index into the layer's output), increasing.
    pub fn output_positions(&self, spec: &Conv2dSpec, o: usize) -> Vec<(usize, usize)> {
        let (key, b) = (o / self.n_b, o % self.n_b);
        let (_, slots) = self.key_slots(spec, key);
        let plane = spec.out_h() * spec.out_w();
        let mut out = Vec::new();
        for (i, j, t) in self.kept_outputs(spec, b) {
            for slot in &slots {
                let at = (t * self.g * self.classes()) as i64 + slot.class as i64 + slot.residue;
                out.push((at as usize, slot.f * plane + i * spec.out_w() + j));
            }
        }
        out.sort_unstable();
        out
    }

    /// Number of outputs of output polynomial o.
    pub fn kept(&self, spec: &Conv2dSpec, o: usize) -> usize {
        let (key, b) = (o / self.n_b, o % self.n_b);
        self.key_slots(spec, key).1.len() * self.kept_per_filter(spec, b)
    }

    /// Spatial positions (mod L) some kept output of band b reads, increasing.
    fn read_positions(&self, spec: &Conv2dSpec, b: usize) -> Vec<usize> {
        let mut hit = vec![false; self.l];
        let l = self.l as i64;
        for (_, _, t) in self.kept_outputs(spec, b) {
            for r in 0..spec.kh {
                for c in 0..spec.kw {
                    let a = t as i64 - spec.padding as i64 + (r * self.w_s + c) as i64;
                    hit[a.rem_euclid(l) as usize] = true;
                }
            }
        }
        (0..self.l).filter(|&a| hit[a]).collect()
    }

    /// Class offsets the kept outputs of input polynomial ip's products read: through filter κ′
    /// of its weight polynomial, the kept offset U_κ = class + residue reads U_κ − r_κ′ (grid:
    /// (κ − κ′)·m + u_κ′), a signed offset in (−S, 2S) (a negative one borrows from the spatial
    /// index, one ≥ S carries into it).
    fn read_offsets(&self, spec: &Conv2dSpec, ip: usize) -> Vec<i64> {
        let mut out = Vec::new();
        for c in self.chunks(spec, ip) {
            for kept in &c {
                for other in &c {
                    out.push(kept.class as i64 + kept.residue - other.residue);
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The query support of input polynomial (ip, band b), increasing: every coefficient a kept
    /// output of one of its products reads through a structurally nonzero weight coefficient
    /// (the offsets of [`Self::read_offsets`] from the positions of [`Self::read_positions`], for
    /// every real channel of a unit).
    fn support(&self, spec: &Conv2dSpec, ip: usize, b: usize) -> Vec<usize> {
        let s = self.classes() as i64;
        let n = self.n as i64;
        let mut hit = vec![false; self.n];
        let offs = self.read_offsets(spec, ip);
        for a in self.read_positions(spec, b) {
            for cc in 0..spec.c_per_group() {
                let base = ((a * self.g + cc) as i64) * s;
                for &v in &offs {
                    hit[(base + v).rem_euclid(n) as usize] = true;
                }
            }
        }
        (0..self.n).filter(|&c| hit[c]).collect()
    }

    /// The query support of input polynomial idx (see [`Self::support`]).
    pub fn query_support(&self, spec: &Conv2dSpec, idx: usize) -> Vec<usize> {
        self.support(spec, idx / self.n_b, idx % self.n_b)
    }

    /// |support| of every input polynomial, in input order. Full input polynomials (all but
    /// possibly the last) have the same supports band by band.
    pub fn query_support_lens(&self, spec: &Conv2dSpec) -> Vec<usize> {
        let ips = self.unit_polys(spec);
        let full: Vec<usize> = (0..self.n_b)
            .map(|b| self.support(spec, 0, b).len())
            .collect();
        let mut out = Vec::with_capacity(self.input_cts(spec));
        for _ in 0..ips - 1 {
            out.extend_from_slice(&full);
        }
        out.extend((0..self.n_b).map(|b| self.support(spec, ips - 1, b).len()));
        out
    }

    /// The multiset of support sizes as (size, multiplicity) pairs.
    pub fn query_support_counts(&self, spec: &Conv2dSpec) -> Vec<(usize, usize)> {
        crate::cheetah::conv::histogram(&self.query_support_lens(spec))
    }

    /// The power of two all output coefficients are multiples of.
    pub fn output_stride(&self) -> usize {
        if self.searched {
            1
        } else if self.k > 1 {
            self.m
        } else {
            self.classes() * self.g
        }
    }

    /// Nonzero weights per weight polynomial at most (the noise of a kept output grows with all
    /// of them: the other filters read the ciphertext's zero-plaintext classes).
    pub fn taps(&self, spec: &Conv2dSpec) -> usize {
        self.k * spec.c_per_group() * spec.kh * spec.kw
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::negacyclic;
    use rand::{Rng, SeedableRng};

    /// Direct grouped convolution with wrapping u64 arithmetic (exact mod 2^64).
    fn direct(spec: &Conv2dSpec, x: &[u64], w: &[i64]) -> Vec<u64> {
        let (ho, wo, pd) = (spec.out_h(), spec.out_w(), spec.padding as isize);
        let cg = spec.c_per_group();
        let mut y = vec![0u64; spec.m * ho * wo];
        for o in 0..spec.m {
            let g = spec.group_of_output(o);
            for i in 0..ho {
                for j in 0..wo {
                    let mut acc = 0u64;
                    for cc in 0..cg {
                        let ch = g * cg + cc;
                        for l in 0..spec.kh {
                            for l2 in 0..spec.kw {
                                let r = (i * spec.stride + l) as isize - pd;
                                let q = (j * spec.stride + l2) as isize - pd;
                                if r < 0 || q < 0 || r >= spec.h as isize || q >= spec.w as isize {
                                    continue;
                                }
                                let xv = x[(ch * spec.h + r as usize) * spec.w + q as usize];
                                let wv = w[((o * cg + cc) * spec.kh + l) * spec.kw + l2];
                                acc = acc.wrapping_add(xv.wrapping_mul(wv as u64));
                            }
                        }
                    }
                    y[(o * ho + i) * wo + j] = acc;
                }
            }
        }
        y
    }

    /// Every candidate tiling of `spec` at degree n computes the convolution exactly (as a plain
    /// polynomial product over Z_{2^64}), every output exactly once, and every coefficient a
    /// kept output reads through a nonzero weight lies in the input's query support.
    fn check(spec: &Conv2dSpec, n: usize, seed: u64) -> (usize, usize) {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
        let x: Vec<u64> = (0..spec.c * spec.h * spec.w).map(|_| rng.gen()).collect();
        let wl = spec.m * spec.c_per_group() * spec.kh * spec.kw;
        let ring = Ring::new(40).unwrap();
        let w: Vec<u64> = (0..wl)
            .map(|_| ring.reduce(rng.gen_range(-128i64..128) as u64))
            .collect();
        let ws: Vec<i64> = w.iter().map(|&v| ring.signed(v)).collect();
        let want = direct(spec, &x, &ws);
        let cands = DenseTiling::candidates(spec, n);
        for t in &cands {
            let mut seen = vec![0u32; want.len()];
            let inputs: Vec<Vec<u64>> = (0..t.input_cts(spec))
                .map(|i| t.encode_input(spec, &x, i))
                .collect();
            for o in 0..t.output_cts(spec) {
                let key = o / t.n_b;
                let ip = t.key_input(spec, key);
                let idx = ip * t.n_b + o % t.n_b;
                let wp = t.encode_filters(spec, ring, &w, key);
                let prod = negacyclic(&inputs[idx], &wp);
                let pos = t.output_positions(spec, o);
                assert_eq!(pos.len(), t.kept(spec, o));
                assert!(pos.windows(2).all(|p| p[0].0 < p[1].0), "{t:?}");
                let support = t.query_support(spec, idx);
                for &(c, out) in &pos {
                    assert_eq!(prod[c], want[out], "{spec:?} {t:?} output {out}");
                    assert!(c % t.output_stride() == 0);
                    seen[out] += 1;
                    for (b, _) in wp.iter().enumerate().filter(|(_, v)| **v != 0) {
                        let a = (c + n - b) % n;
                        assert!(
                            support.binary_search(&a).is_ok(),
                            "{t:?}: {a} not in support"
                        );
                    }
                }
            }
            assert!(seen.iter().all(|&s| s == 1), "{t:?}");
            let lens = t.query_support_lens(spec);
            for (i, &len) in lens.iter().enumerate() {
                assert_eq!(len, t.query_support(spec, i).len());
            }
            let mut counts: Vec<(usize, usize)> = Vec::new();
            for &len in &lens {
                match counts.iter_mut().find(|e| e.0 == len) {
                    Some(e) => e.1 += 1,
                    None => counts.push((len, 1)),
                }
            }
            let mut got = t.query_support_counts(spec);
            got.sort();
            counts.sort();
            assert_eq!(got, counts, "{t:?}");
        }
        (cands.len(), cands.iter().filter(|t| t.searched).count())
    }

    #[test]
    fn depthwise_shapes_are_exact() {
        let shapes = [
            Conv2dSpec::square(8, 4, 8, 3, 1, 1, 8),
            Conv2dSpec::square(6, 5, 6, 3, 2, 1, 6),
            Conv2dSpec::square(5, 8, 5, 5, 1, 2, 5),
            Conv2dSpec::square(4, 7, 4, 5, 2, 2, 4),
            Conv2dSpec::square(3, 9, 3, 7, 1, 3, 3),
            Conv2dSpec::square(4, 6, 4, 3, 1, 0, 4),
            Conv2dSpec::square(16, 1, 16, 3, 1, 1, 16),
            Conv2dSpec::square(16, 2, 16, 3, 2, 1, 16),
            // Grouped: 2 channels and 3 filters per group; 4 phases per group (space-to-depth).
            Conv2dSpec::square(8, 5, 12, 3, 1, 1, 4),
            Conv2dSpec::square(16, 4, 4, 2, 1, 0, 4),
        ];
        let mut searched = 0;
        for (i, s) in shapes.iter().enumerate() {
            let (all, se) = check(s, 256, i as u64);
            assert!(all > 0, "{s:?}: no candidate");
            searched += se;
        }
        // Searched placements are among the candidates checked (depthwise shapes).
        assert!(searched >= 4, "{searched}");
    }

    #[test]
    fn rectangular_and_tight() {
        let s = Conv2dSpec {
            c: 12,
            h: 6,
            w: 9,
            m: 12,
            kh: 3,
            kw: 5,
            stride: 1,
            padding: 3,
            groups: 12,
            block: 1,
        };
        // padding 3 ≥ kh: no dense tiling.
        assert_eq!(DenseTiling::candidates(&s, 512).len(), 0);
        let s = Conv2dSpec { padding: 2, ..s };
        assert!(check(&s, 512, 6).0 > 0);
        let s = Conv2dSpec { padding: 1, ..s };
        assert!(check(&s, 512, 7).0 > 0);
        let s = Conv2dSpec { stride: 2, ..s };
        assert!(check(&s, 128, 8).0 > 0);
    }
}
