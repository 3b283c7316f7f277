//! Padded convolution with channel packing and scalar weights (Hyena's idea; design, proof and
//! departures in docs/protocols/hyena.md).
//!
//! **Layout (channel-minor).** In row ρ of a ciphertext, slot `s = pos·c_n + c` holds channel `c`
//! of the row's `c_n` channels at position `pos = h'·W' + w'` of its zero-padded H'×W' map. A slot
//! vector that depends only on (row, `s mod p`), `p = max(c_n, 2)`, is the plaintext
//! `g(X^{N/2p})` with `2p` coefficients (the slots of a row are the powers of the generator 3
//! modulo 2N, and those of one class mod p are a coset of the subgroup that fixes `X^{N/2p}`):
//! per-channel weights are a polynomial of `2p` terms instead of N, its NTT form takes one value
//! per run of `N/2p` coefficients (computed from the `2p` weights by two small transforms, never
//! encoded), and `‖g‖₁ ≤ 2p·t/2` where a conventional plaintext has `N·t/2`.
//!
//! **Convolution.** Output slot (pos, c_o) of `rot_r(X)` reads input slot `pos·c_n + c_o + r`:
//! channel `(c_o + r) mod c_n` at position `pos + ⌊(c_o + r)/c_n⌋`. So each pair (input channel
//! c_i, tap offset d = a·W' + b) of output channel c_o is reached by exactly one rotation
//! `r = d·c_n + c_i − c_o`, and one rotated copy serves every output channel at once:
//!
//! ```text
//! y = Σ_r rot_r(X) ⊙ P_r,     P_r[row, c_o] = w[o, c_i, tap(d)]   (0 where no such pair)
//! ```
//!
//! BSGS: `r = γ + β` with `β = r_min + (r − r_min) mod B` and γ a multiple of B;
//! `rot_r(X) ⊙ P = rot_γ(rot_β(X) ⊙ rot_{−γ}(P))` and `rot_{−γ}(P)` is again per-channel. The B
//! baby rotations of each input copy (as sent, and row-swapped when output and input channels sit
//! in different rows) are hoisted; each output ciphertext rotates once per giant step it uses.
//! Every product is a lazy multiply-accumulate (`math::lazy`) with one reduction per output.

use math::lazy::LazyAcc;
use math::{Modulus, Representation};
use rayon::prelude::*;
use rlwe::{BatchEncoder, Ciphertext, Evaluator, GaloisKeys, PlaintextNtt};

use crate::{Conv2dSpec, LinearError};

/// A hoisted rotation's time relative to a plain one (BENCHMARKS.md § Lattice core), for
/// choosing the baby-step count.
const HOISTED_COST: f64 = 0.52;

/// Operation counts of [`PaddedConv::apply`], from the shape alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PaddedCounts {
    /// Lazy multiply-accumulates (each over 2·L·N words): the present (output ciphertext,
    /// rotation, input copy) triples.
    pub terms: usize,
    /// The most terms summed into one output ciphertext (for the noise bound).
    pub max_terms_per_output: usize,
    /// Key-switched rotations: hoisted baby steps and per-output giant steps.
    pub rotations: usize,
    /// The most giant-step rotations on one output's path.
    pub max_giants_per_output: usize,
}

/// The channel-minor layout of one convolution: which (output ciphertext v, rotation r, input
/// ciphertext u, copy s) terms exist, decided by the shape and groups, never by weight values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PaddedLayout {
    spec: Conv2dSpec,
    /// Slots per row (N/2).
    n: usize,
    /// Channels per row (a power of two).
    c_n: usize,
    /// 2: row ρ of a ciphertext carries channels ρ·c_n.. of its 2·c_n; 1: both rows alike.
    rows: usize,
    /// Input copies: 2 when some output reads an input of the other row (row-swapped copy).
    copies: usize,
    in_cts: usize,
    out_cts: usize,
    baby: usize,
    /// The smallest rotation, −(c_n − 1); rotations span `r_min..r_min + span`.
    r_min: i64,
    span: usize,
    /// `used[((v·in_cts + u)·copies + s)·span + (r − r_min)]`.
    used: Vec<bool>,
}

fn swap_element(n_total: usize) -> usize {
    2 * n_total - 1
}

impl PaddedLayout {
    /// The layout of `spec` in rows of `n` slots, with the cheapest baby-step count.
    pub fn new(spec: Conv2dSpec, n: usize) -> Result<PaddedLayout, LinearError> {
        let mut l = Self::shape(spec, n)?;
        let mut best = (f64::INFINITY, 1);
        let mut b = 1;
        while b <= l.span.next_power_of_two() {
            l.baby = b;
            let c = l.rotation_cost();
            if c < best.0 {
                best = (c, b);
            }
            b *= 2;
        }
        l.baby = best.1;
        Ok(l)
    }

    /// As [`PaddedLayout::new`] with `baby` baby steps (≥ 1).
    pub fn with(spec: Conv2dSpec, n: usize, baby: usize) -> Result<PaddedLayout, LinearError> {
        if baby == 0 {
            return Err(LinearError::BadShape {
                reason: "hyena: at least one baby step",
            });
        }
        let mut l = Self::shape(spec, n)?;
        l.baby = baby;
        Ok(l)
    }

    fn shape(spec: Conv2dSpec, n: usize) -> Result<PaddedLayout, LinearError> {
        let bad = |reason: &'static str| Err(LinearError::BadShape { reason });
        if spec.groups == 0
            || !spec.c.is_multiple_of(spec.groups)
            || !spec.m.is_multiple_of(spec.groups)
        {
            return bad("hyena: groups must divide C and M");
        }
        if spec.stride == 0 || spec.kh == 0 || spec.kw == 0 {
            return bad("hyena: zero stride or kernel");
        }
        let (hp, wp) = (spec.h + 2 * spec.padding, spec.w + 2 * spec.padding);
        if hp < spec.kh || wp < spec.kw {
            return bad("hyena: kernel larger than the padded map");
        }
        if !n.is_power_of_two() || hp * wp > n {
            return bad("hyena: a padded channel map does not fit one ciphertext row");
        }
        let mut c_n = 1;
        while c_n * 2 * hp * wp <= n && c_n < spec.c.max(spec.m) {
            c_n *= 2;
        }
        let rows = if spec.c.max(spec.m) > c_n { 2 } else { 1 };
        let per = rows * c_n;
        let (in_cts, out_cts) = (spec.c.div_ceil(per), spec.m.div_ceil(per));
        let d_max = (spec.kh - 1) * wp + spec.kw - 1;
        let r_min = -(c_n as i64 - 1);
        let span = d_max * c_n + 2 * c_n - 1;
        let mut l = PaddedLayout {
            spec,
            n,
            c_n,
            rows,
            copies: rows,
            in_cts,
            out_cts,
            baby: 1,
            r_min,
            span,
            used: vec![false; out_cts * in_cts * rows * span],
        };
        let (cg, mg) = (spec.c_per_group(), spec.m_per_group());
        for v in 0..out_cts {
            for u in 0..in_cts {
                for s in 0..rows {
                    let at = ((v * in_cts + u) * rows + s) * span;
                    for row in 0..rows {
                        let row_in = row ^ s;
                        for c_o in 0..c_n {
                            let o = v * per + row * c_n + c_o;
                            if o >= spec.m {
                                break;
                            }
                            let g = o / mg;
                            for c_i in 0..c_n {
                                let ci = u * per + row_in * c_n + c_i;
                                if ci >= spec.c {
                                    break;
                                }
                                if ci / cg != g {
                                    continue;
                                }
                                for a in 0..spec.kh {
                                    for b in 0..spec.kw {
                                        let d = a * wp + b;
                                        let r = (d * c_n + c_i) as i64 - c_o as i64;
                                        l.used[at + (r - r_min) as usize] = true;
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        if rows == 2 {
            let cross = (0..out_cts * in_cts)
                .any(|vu| l.used[(vu * 2 + 1) * span..(vu * 2 + 2) * span].contains(&true));
            if !cross {
                // No output reads the other row: drop the row-swapped copy.
                let mut used = Vec::with_capacity(out_cts * in_cts * span);
                for vu in 0..out_cts * in_cts {
                    used.extend_from_slice(&l.used[vu * 2 * span..(vu * 2 + 1) * span]);
                }
                l.used = used;
                l.copies = 1;
            }
        }
        Ok(l)
    }

    fn used(&self, v: usize, u: usize, s: usize, r_idx: usize) -> bool {
        self.used[((v * self.in_cts + u) * self.copies + s) * self.span + r_idx]
    }

    /// Giant-step count: γ = g·B for g < giants().
    fn giants(&self) -> usize {
        self.span.div_ceil(self.baby)
    }

    /// Whether output ciphertext v has a term in giant step g.
    fn giant_used(&self, v: usize, g: usize) -> bool {
        let lo = g * self.baby;
        let hi = (lo + self.baby).min(self.span);
        (0..self.in_cts).any(|u| (0..self.copies).any(|s| (lo..hi).any(|r| self.used(v, u, s, r))))
    }

    /// Whether the baby rotation of index b (β = r_min + b) is the identity.
    fn identity_baby(&self) -> Option<usize> {
        let b = (-self.r_min) as usize;
        (b < self.baby).then_some(b)
    }

    fn rotation_cost(&self) -> f64 {
        let hoisted = self.in_cts * self.copies * self.baby
            - self.in_cts * usize::from(self.identity_baby().is_some());
        let giants: usize = (0..self.out_cts)
            .map(|v| {
                (1..self.giants())
                    .filter(|&g| self.giant_used(v, g))
                    .count()
            })
            .sum();
        hoisted as f64 * HOISTED_COST + giants as f64
    }

    /// Operation counts of one application.
    pub fn counts(&self) -> PaddedCounts {
        let (mut terms, mut max_terms, mut max_giants, mut giants) = (0, 0, 0, 0);
        for v in 0..self.out_cts {
            let t: usize = (0..self.in_cts * self.copies)
                .map(|us| {
                    let at = (v * self.in_cts * self.copies + us) * self.span;
                    self.used[at..at + self.span].iter().filter(|&&x| x).count()
                })
                .sum();
            let g = (1..self.giants())
                .filter(|&g| self.giant_used(v, g))
                .count();
            terms += t;
            max_terms = max_terms.max(t);
            max_giants = max_giants.max(g);
            giants += g;
        }
        let hoisted = self.in_cts * self.copies * self.baby
            - self.in_cts * usize::from(self.identity_baby().is_some());
        PaddedCounts {
            terms,
            max_terms_per_output: max_terms,
            rotations: hoisted + giants,
            max_giants_per_output: max_giants,
        }
    }

    /// The baby rotations' Galois elements, copy major (identity included, as 1).
    fn baby_elements(&self, n_total: usize) -> Vec<usize> {
        let sw = swap_element(n_total);
        (0..self.copies)
            .flat_map(|s| {
                (0..self.baby).map(move |b| {
                    let e = rlwe::eval::galois_element_for_rotation(n_total, self.r_min + b as i64);
                    if s == 1 {
                        e * sw % (2 * n_total)
                    } else {
                        e
                    }
                })
            })
            .collect()
    }

    /// The Galois elements [`PaddedConv::apply`] needs keys for, for ring degree `n_total`.
    pub fn galois_elements(&self, n_total: usize) -> Vec<usize> {
        let mut e: Vec<usize> = self
            .baby_elements(n_total)
            .into_iter()
            .filter(|&k| k != 1)
            .collect();
        e.extend(
            (1..self.giants())
                .filter(|&g| (0..self.out_cts).any(|v| self.giant_used(v, g)))
                .map(|g| rlwe::eval::galois_element_for_rotation(n_total, (g * self.baby) as i64)),
        );
        e.sort_unstable();
        e.dedup();
        e
    }

    /// The weight index (into M × C/groups × k_h × k_w) that output (row, c_o) of ciphertext v
    /// takes from copy s of input ciphertext u at rotation r, if any.
    #[allow(clippy::too_many_arguments)]
    fn weight_index(
        &self,
        v: usize,
        u: usize,
        s: usize,
        r: i64,
        row: usize,
        c_o: usize,
    ) -> Option<usize> {
        let (sp, c_n) = (&self.spec, self.c_n as i64);
        let wp = sp.w + 2 * sp.padding;
        let q = c_o as i64 + r;
        let (c_i, d) = (q.rem_euclid(c_n) as usize, q.div_euclid(c_n));
        if d < 0 {
            return None;
        }
        let (a, b) = (d as usize / wp, d as usize % wp);
        if a >= sp.kh || b >= sp.kw {
            return None;
        }
        let (row, row_in) = if self.rows == 1 {
            (0, 0)
        } else {
            (row, row ^ s)
        };
        let per = self.rows * self.c_n;
        let o = v * per + row * self.c_n + c_o;
        let ci = u * per + row_in * self.c_n + c_i;
        if o >= sp.m || ci >= sp.c {
            return None;
        }
        let cg = sp.c_per_group();
        let g = sp.group_of_output(o);
        (ci / cg == g).then(|| (o * cg + ci - g * cg) * sp.kh * sp.kw + a * sp.kw + b)
    }

    /// Slot classes per row: p = max(c_n, 2) (a row's slots mod 2 separate even for c_n = 1).
    pub fn period(&self) -> usize {
        self.c_n.max(2)
    }

    pub fn channels(&self) -> usize {
        self.c_n
    }

    pub fn baby_steps(&self) -> usize {
        self.baby
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn copies(&self) -> usize {
        self.copies
    }

    pub fn spec(&self) -> Conv2dSpec {
        self.spec
    }

    /// Input and output ciphertext counts.
    pub fn ciphertexts(&self) -> (usize, usize) {
        (self.in_cts, self.out_cts)
    }

    /// Input ciphertexts' slot values (2·n each) from C × H × W values, zero-padded.
    pub fn pack_input(&self, x: &[u64]) -> Vec<Vec<u64>> {
        let s = &self.spec;
        let wp = s.w + 2 * s.padding;
        let (n, c_n) = (self.n, self.c_n);
        let per = self.rows * c_n;
        (0..self.in_cts)
            .map(|u| {
                let mut slots = vec![0u64; 2 * n];
                for row in 0..self.rows {
                    for c in 0..c_n {
                        let ci = u * per + row * c_n + c;
                        if ci >= s.c {
                            break;
                        }
                        for h in 0..s.h {
                            for w in 0..s.w {
                                let pos = (h + s.padding) * wp + w + s.padding;
                                slots[row * n + pos * c_n + c] = x[(ci * s.h + h) * s.w + w];
                            }
                        }
                    }
                }
                if self.rows == 1 {
                    let (a, b) = slots.split_at_mut(n);
                    b.copy_from_slice(a);
                }
                slots
            })
            .collect()
    }

    /// The slot (of its output ciphertext's 2·n) of each of the M × H_out × W_out outputs.
    pub fn output_slots(&self) -> Vec<(usize, usize)> {
        let s = &self.spec;
        let wp = s.w + 2 * s.padding;
        let (ho, wo) = (s.out_h(), s.out_w());
        let per = self.rows * self.c_n;
        let mut out = Vec::with_capacity(s.m * ho * wo);
        for o in 0..s.m {
            let (v, row, c) = (o / per, (o % per) / self.c_n, o % self.c_n);
            for i in 0..ho {
                for j in 0..wo {
                    let pos = i * s.stride * wp + j * s.stride;
                    out.push((v, row * self.n + pos * self.c_n + c));
                }
            }
        }
        out
    }

    /// M × H_out × W_out values from the output ciphertexts' decoded slots.
    pub fn unpack_output(&self, slots: &[Vec<u64>]) -> Vec<u64> {
        self.output_slots()
            .into_iter()
            .map(|(v, s)| slots[v][s])
            .collect()
    }
}

/// The two small transforms from a per-class slot vector to the NTT form of its plaintext, for
/// one layout, ring and level.
struct Classes {
    /// p: classes per row; the plaintext is g(X^m), m = N/2p, with 2p coefficients.
    p: usize,
    t: Modulus,
    /// `to_coeffs[a·2p + k]`: coefficient a of g for the indicator of class k (= row·p + c),
    /// mod t (read off the encoder, so its slot order is used as it is).
    to_coeffs: Vec<u64>,
    /// Per prime i: `powers[i][k·2p + a] = y_k^a mod q_i`, y_k the NTT value of X^m on run k.
    powers: Vec<Vec<u64>>,
    moduli: Vec<Modulus>,
}

impl Classes {
    fn new(
        enc: &BatchEncoder,
        params: &std::sync::Arc<rlwe::Params>,
        p: usize,
        num_moduli: usize,
    ) -> Result<Classes, LinearError> {
        let n_total = params.n();
        let (half, m) = (n_total / 2, n_total / (2 * p));
        let t = *params.t();
        let not_cosets = LinearError::BadShape {
            reason: "hyena: the encoder's slot classes are not cosets of X^(N/2p)",
        };
        let mut to_coeffs = vec![0u64; 4 * p * p];
        for k in 0..2 * p {
            let (row, c) = (k / p, k % p);
            let mut v = vec![0u64; n_total];
            for s in (c..half).step_by(p) {
                v[row * half + s] = 1;
            }
            let pt = enc.encode(&v)?;
            for (i, &x) in pt.coeffs().iter().enumerate() {
                if i % m == 0 {
                    to_coeffs[(i / m) * 2 * p + k] = x;
                } else if x != 0 {
                    return Err(not_cosets);
                }
            }
        }
        let mut xm = vec![0i64; n_total];
        xm[m] = 1;
        let ntt = PlaintextNtt::from_signed(params, &xm, num_moduli)?;
        let run = n_total / (2 * p);
        let moduli: Vec<Modulus> = params.ctx_q().moduli()[..num_moduli].to_vec();
        let mut powers = Vec::with_capacity(num_moduli);
        for (i, q) in moduli.iter().enumerate() {
            let y = ntt.poly().residue(i);
            let mut pw = vec![0u64; 4 * p * p];
            for k in 0..2 * p {
                let yk = y[k * run];
                if y[k * run..(k + 1) * run].iter().any(|&z| z != yk) {
                    return Err(not_cosets);
                }
                let mut acc = 1u64;
                for a in 0..2 * p {
                    pw[k * 2 * p + a] = acc;
                    acc = q.mul(acc, yk);
                }
            }
            powers.push(pw);
        }
        Ok(Classes {
            p,
            t,
            to_coeffs,
            powers,
            moduli,
        })
    }

    /// The NTT form's run values (2p per prime, prime major) of the plaintext whose slots hold
    /// `w[k]` on class k = row·p + c (signed, reduced mod t).
    fn run_values(&self, w: &[i64], out: &mut [u64]) {
        let k2 = 2 * self.p;
        let wt: Vec<u64> = w.iter().map(|&x| self.t.reduce_i64(x)).collect();
        // g = to_coeffs · w mod t, centered: |g_a| ≤ t/2.
        let g: Vec<i64> = (0..k2)
            .map(|a| {
                let row = &self.to_coeffs[a * k2..(a + 1) * k2];
                let s: u128 = row
                    .iter()
                    .zip(&wt)
                    .map(|(&c, &x)| c as u128 * x as u128)
                    .sum();
                self.t.center(self.t.reduce_u128(s))
            })
            .collect();
        for (i, q) in self.moduli.iter().enumerate() {
            let gq: Vec<u64> = g.iter().map(|&x| q.reduce_i64(x)).collect();
            let pw = &self.powers[i];
            for k in 0..k2 {
                // Terms below 2^(2·61): at most 2^6 fit a u128 between reductions.
                let mut acc = 0u64;
                for (chunk_p, chunk_g) in pw[k * k2..(k + 1) * k2].chunks(32).zip(gq.chunks(32)) {
                    let s: u128 = chunk_p
                        .iter()
                        .zip(chunk_g)
                        .map(|(&a, &b)| a as u128 * b as u128)
                        .sum();
                    acc = q.add(acc, q.reduce_u128(s));
                }
                out[i * k2 + k] = acc;
            }
        }
    }
}

/// A [`PaddedLayout`] with its weights as signed integers (|w| < t/2).
pub struct PaddedConv {
    layout: PaddedLayout,
    w: Vec<i64>,
}

impl PaddedConv {
    /// Binds the weights `w` (M × C/groups × k_h × k_w, signed) to `layout`.
    pub fn new(layout: PaddedLayout, w: &[i64]) -> Result<PaddedConv, LinearError> {
        let spec = layout.spec;
        if w.len() != spec.m * spec.c_per_group() * spec.kh * spec.kw {
            return Err(LinearError::BadShape {
                reason: "hyena: need M*(C/groups)*kh*kw weights",
            });
        }
        Ok(PaddedConv {
            layout,
            w: w.to_vec(),
        })
    }

    pub fn layout(&self) -> &PaddedLayout {
        &self.layout
    }

    /// The class values of term (v, r, u, s) pre-rotated by −γ: class (row, c') holds the
    /// weight of output c_o = (c' − γ) mod c_n.
    fn term_weights(&self, v: usize, u: usize, s: usize, r: i64, gamma: i64, p: usize) -> Vec<i64> {
        let l = &self.layout;
        let c_n = l.c_n as i64;
        (0..2 * p)
            .map(|k| {
                let (row, c) = (k / p, (k % p) as i64);
                let c_o = (c - gamma).rem_euclid(c_n) as usize;
                l.weight_index(v, u, s, r, row, c_o)
                    .map_or(0, |i| self.w[i])
            })
            .collect()
    }

    /// The output ciphertexts (NTT form) from the packed input ciphertexts.
    pub fn apply(
        &self,
        enc: &BatchEncoder,
        ev: &Evaluator,
        cts: &[Ciphertext],
        gk: &GaloisKeys,
    ) -> Result<Vec<Ciphertext>, LinearError> {
        let l = &self.layout;
        if cts.len() != l.in_cts {
            return Err(LinearError::BadShape {
                reason: "hyena: wrong number of input ciphertexts",
            });
        }
        let params = ev.params();
        let n_total = params.n();
        if 2 * l.n != n_total {
            return Err(LinearError::BadShape {
                reason: "hyena: layout made for another ring degree",
            });
        }
        let num_moduli = cts[0].num_moduli();
        let p = l.period();
        let classes = Classes::new(enc, params, p, num_moduli)?;
        let elements = l.baby_elements(n_total);
        // rotated[u][s·B + b]: copy s of input u rotated by r_min + b, all from one decomposition.
        let rotated: Vec<Vec<Ciphertext>> = cts
            .par_iter()
            .map(|ct| {
                let mut r = ev.apply_galois_hoisted(ct, &elements, gk)?;
                for c in &mut r {
                    c.to_representation(Representation::Ntt);
                }
                Ok(r)
            })
            .collect::<Result<_, LinearError>>()?;
        let k2 = 2 * p;
        // One task per (output ciphertext, giant step): its lazy sums, reduced and rotated by γ
        // (independent, so in parallel even for a single output ciphertext).
        let tasks: Vec<(usize, usize)> = (0..l.out_cts)
            .flat_map(|v| (0..l.giants()).map(move |g| (v, g)))
            .filter(|&(v, g)| l.giant_used(v, g))
            .collect();
        let parts: Vec<(usize, Ciphertext)> = tasks
            .into_par_iter()
            .map(|(v, g)| -> Result<(usize, Ciphertext), LinearError> {
                let mut accs: Vec<LazyAcc> = (0..2)
                    .flat_map(|_| classes.moduli.iter().map(|q| LazyAcc::new(q, n_total)))
                    .collect();
                let gamma = (g * l.baby) as i64;
                // The task's terms: each rotated copy with its plaintext's run values.
                let mut terms: Vec<(&Ciphertext, Vec<u64>)> = Vec::new();
                for b in 0..l.baby {
                    let r_idx = g * l.baby + b;
                    if r_idx >= l.span {
                        break;
                    }
                    let r = l.r_min + r_idx as i64;
                    for (u, copies) in rotated.iter().enumerate() {
                        for s in 0..l.copies {
                            if !l.used(v, u, s, r_idx) {
                                continue;
                            }
                            let w = self.term_weights(v, u, s, r, gamma, p);
                            let mut vals = vec![0u64; num_moduli * k2];
                            classes.run_values(&w, &mut vals);
                            terms.push((&copies[s * l.baby + b], vals));
                        }
                    }
                }
                for pi in 0..2 {
                    for i in 0..num_moduli {
                        let pairs: Vec<(&[u64], &[u64])> = terms
                            .iter()
                            .map(|(x, vals)| {
                                (x.polys()[pi].residue(i), &vals[i * k2..(i + 1) * k2])
                            })
                            .collect();
                        accs[pi * num_moduli + i].mac_all(&pairs)?;
                    }
                }
                let mut z = ev.zero(num_moduli, Representation::Ntt)?;
                for (pi, poly) in z.polys_mut().iter_mut().enumerate() {
                    for i in 0..num_moduli {
                        accs[pi * num_moduli + i].reduce_into(poly.residue_mut(i))?;
                    }
                }
                Ok((
                    v,
                    if g == 0 {
                        z
                    } else {
                        ev.rotate_rows(&z, gamma, gk)?
                    },
                ))
            })
            .collect::<Result<_, LinearError>>()?;
        let mut outs: Vec<Option<Ciphertext>> = vec![None; l.out_cts];
        for (v, c) in parts {
            match outs[v].as_mut() {
                None => outs[v] = Some(c),
                Some(o) => ev.add_assign(o, &c)?,
            }
        }
        // No term at all (an output group with no input): an encryption of zero (trivial; the
        // layer protocol re-randomizes every response).
        outs.into_iter()
            .map(|o| match o {
                Some(o) => Ok(o),
                None => Ok(ev.zero(num_moduli, Representation::Ntt)?),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every (output, input channel, tap) pair of a group is reached by exactly one present
    /// term, and every present term serves at least one pair, on dense, grouped and depthwise
    /// shapes, one and two rows, strides and paddings.
    #[test]
    fn terms_cover_every_pair_once() {
        let mut checked = 0;
        for (c, m, hw, k, stride, pad, groups) in [
            (16, 16, 32, 3, 1, 1, 1),
            (3, 16, 32, 3, 1, 1, 1),
            (24, 144, 8, 1, 1, 0, 1),
            (37, 70, 8, 3, 2, 1, 1),
            (144, 144, 8, 3, 1, 1, 144),
            (48, 96, 8, 3, 1, 1, 4),
            (8, 8, 5, 5, 1, 2, 1),
        ] {
            let spec = Conv2dSpec::square(c, hw, m, k, stride, pad, groups);
            for baby in [1, 4, 1 << 12] {
                let l = PaddedLayout::with(spec, 4096, baby).unwrap();
                let mut seen = vec![0u32; spec.m * spec.c_per_group() * k * k];
                let mut terms = 0;
                for v in 0..l.out_cts {
                    for u in 0..l.in_cts {
                        for s in 0..l.copies {
                            for r_idx in 0..l.span {
                                let r = l.r_min + r_idx as i64;
                                let mut any = false;
                                for row in 0..l.rows {
                                    for c_o in 0..l.c_n {
                                        if let Some(i) = l.weight_index(v, u, s, r, row, c_o) {
                                            seen[i] += 1;
                                            any = true;
                                        }
                                    }
                                }
                                assert_eq!(any, l.used(v, u, s, r_idx), "{spec:?}");
                                terms += usize::from(any);
                            }
                        }
                    }
                }
                assert!(
                    seen.iter().all(|&x| x == 1),
                    "{spec:?}: a pair missed or doubled"
                );
                assert_eq!(l.counts().terms, terms);
                checked += 1;
            }
        }
        assert_eq!(checked, 21);
    }
}
