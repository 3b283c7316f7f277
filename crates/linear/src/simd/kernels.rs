//! Slot-encoded (SIMD) HE kernels of the Gazelle / Bolt protocol family (docs/protocols/simd.md):
//! the matrix–vector product by the diagonal method with baby-step/giant-step and hoisted baby
//! steps [Halevi–Shoup 2018] ([`MatVec`]) and the conventional convolution ([`Conv`]). Each
//! kernel's operation counts come from the shape alone ([`ConvLayout`], [`MatVec::counts`]).
//!
//! Matrix layout: one batching row of n = N/2 slots (both rows carry the same values), the input
//! x ∈ Z_t^{n_i} repeated with period n_i (n_i a power of two dividing n), so a row rotation by d
//! is a cyclic rotation of x by d. For W ∈ Z_t^{n_o × n_i}, n_o ≤ n_i, padded to n_i × n_i with zero
//! rows, diagonal d holds `diag_d[s] = W[s mod n_i][(s + d) mod n_i]` and
//!
//! ```text
//! y = Σ_{d<n_i} diag_d ⊙ rot_d(x) = Σ_{g<G} rot_{g·B}( Σ_{b<B} rot_{−g·B}(diag_{g·B+b}) ⊙ rot_b(x) ),
//! ```
//!
//! d = g·B + b, B·G ≥ n_i: B − 1 baby-step rotations of x (hoisted: one ModUp), G − 1 giant-step
//! rotations, n_i ct × pt products; slot s < n_o of y holds (W·x)_s.

use rayon::prelude::*;
use rlwe::{BatchEncoder, Ciphertext, Evaluator, GaloisKeys, PlaintextNtt};

use crate::LinearError;

/// A matrix bound for [`MatVec::apply`], which encodes each diagonal (pre-rotated for its giant
/// step, batch-encoded in NTT form at the ciphertexts' level) right before its product.
pub struct MatVec {
    n_in: usize,
    n_out: usize,
    diags: usize,
    baby: usize,
    enc: BatchEncoder,
    w: Vec<u64>,
    num_moduli: usize,
}

/// Baby-step count B for `n` diagonals: the power of two nearest √n from above, which minimises
/// (B − 1) + (⌈n/B⌉ − 1) rotations among powers of two.
pub fn baby_steps(n: usize) -> usize {
    let mut b = 1;
    while b * b < n {
        b *= 2;
    }
    b
}

impl MatVec {
    /// Diagonals of an n_out × n_in product (n_in a power of two): D = next_pow2(n_out) ≤ n_in.
    pub fn diagonals_for(n_out: usize, n_in: usize) -> usize {
        n_out.next_power_of_two().min(n_in)
    }

    /// Binds `w` (row-major n_out × n_in, entries < t) for ciphertexts of `num_moduli` primes.
    /// `n_in` must be a power of two at most N/2, and `n_out ≤ n_in`.
    pub fn new(
        enc: &BatchEncoder,
        w: &[u64],
        n_out: usize,
        n_in: usize,
        num_moduli: usize,
    ) -> Result<MatVec, LinearError> {
        let n = enc.slots() / 2;
        let bad = |reason: &'static str| Err(LinearError::BadShape { reason });
        if !n_in.is_power_of_two() || n_in > n {
            return bad("matvec: n_in must be a power of two at most N/2");
        }
        if n_out == 0 || n_out > n_in || w.len() != n_out * n_in {
            return bad("matvec: need 1 <= n_out <= n_in and n_out*n_in weights");
        }
        let diags = Self::diagonals_for(n_out, n_in);
        Ok(MatVec {
            n_in,
            n_out,
            diags,
            baby: baby_steps(diags),
            enc: enc.clone(),
            w: w.to_vec(),
            num_moduli,
        })
    }

    /// rot_{−g·B}(diag_d) for d = g·B + b, over the whole row (period n_in), both rows alike:
    /// the extended diagonal `diag_d[j] = W[j mod D][(j + d) mod n_in]` (rows ≥ n_out zero).
    fn diagonal(&self, g: usize, d: usize) -> Result<PlaintextNtt, LinearError> {
        let (n, n_in) = (self.enc.slots() / 2, self.n_in);
        let shift = g * self.baby;
        let slot = |s: usize| {
            let s = (s + n - shift % n) % n;
            let (i, j) = ((s % n_in) % self.diags, (s + d) % n_in);
            if i < self.n_out {
                self.w[i * n_in + j]
            } else {
                0
            }
        };
        let values: Vec<u64> = (0..2 * n).map(|s| slot(s % n)).collect();
        Ok(PlaintextNtt::new(
            &self.enc.encode(&values)?,
            self.num_moduli,
        )?)
    }

    /// The row-rotation steps [`MatVec::apply`] uses (the Galois keys to generate).
    pub fn rotation_steps(&self) -> Vec<i64> {
        Self::steps_for(self.n_out, self.n_in)
    }

    /// [`MatVec::rotation_steps`] from the shape alone: baby steps 1..B and giant steps g·B
    /// (1 ≤ g < ⌈D/B⌉) over the D diagonals, then the rotate-and-sum steps n_in/2, …, D.
    pub fn steps_for(n_out: usize, n_in: usize) -> Vec<i64> {
        let d = Self::diagonals_for(n_out, n_in);
        let baby = baby_steps(d);
        let mut s: Vec<i64> = (1..baby.min(d)).map(|b| b as i64).collect();
        s.extend((1..d.div_ceil(baby)).map(|g| (g * baby) as i64));
        let mut step = n_in / 2;
        while step >= d {
            s.push(step as i64);
            step /= 2;
        }
        s
    }

    /// Key-switched rotations one application costs: (B − 1) hoisted + (G − 1) +
    /// log₂(n_in/D).
    pub fn rotations(&self) -> usize {
        self.rotation_steps().len()
    }

    /// ct × pt products one application costs: D.
    pub fn products(&self) -> usize {
        self.diags
    }

    /// `Enc(W·x)` from `Enc(x)` in the layout above: y_i in slot i < n_out of both rows.
    ///
    /// z = Σ_{d<D} diag_d ⊙ rot_d(x) (BSGS: d = g·B + b) has z[j] = Σ_d W[j mod D][j + d]·x[j + d];
    /// summing z over j ≡ i (mod D), j < n_in (rotate-and-sum by n_in/2, …, D) meets every
    /// column of row i once [Gazelle §5.2, the hybrid method]; D = n_in is the square diagonal
    /// method and needs no sum.
    pub fn apply(
        &self,
        ev: &Evaluator,
        ct: &Ciphertext,
        gk: &GaloisKeys,
    ) -> Result<Ciphertext, LinearError> {
        let baby = self.baby.min(self.diags);
        let steps: Vec<i64> = (0..baby).map(|b| b as i64).collect();
        let mut babies = ev.rotate_rows_hoisted(ct, &steps, gk)?;
        for c in &mut babies {
            c.to_representation(math::Representation::Ntt);
        }
        let mut out: Option<Ciphertext> = None;
        for g in 0..self.diags.div_ceil(self.baby) {
            let mut inner: Option<Ciphertext> = None;
            for (b, y) in babies.iter().enumerate() {
                let d = g * self.baby + b;
                if d >= self.diags {
                    break;
                }
                let pt = self.diagonal(g, d)?;
                match inner.as_mut() {
                    None => {
                        let mut c = y.clone();
                        ev.mul_plain_assign(&mut c, &pt)?;
                        inner = Some(c);
                    }
                    Some(acc) => ev.mul_plain_acc(acc, y, &pt)?,
                }
            }
            let Some(inner) = inner else { continue };
            let shifted = if g == 0 {
                inner
            } else {
                ev.rotate_rows(&inner, (g * self.baby) as i64, gk)?
            };
            match out.as_mut() {
                None => out = Some(shifted),
                Some(o) => ev.add_assign(o, &shifted)?,
            }
        }
        let mut z = out.ok_or(LinearError::BadShape {
            reason: "matvec: empty matrix",
        })?;
        let mut step = self.n_in / 2;
        while step >= self.diags {
            let r = ev.rotate_rows(&z, step as i64, gk)?;
            ev.add_assign(&mut z, &r)?;
            step /= 2;
        }
        Ok(z)
    }
}

/// The conventional slot-encoded convolution [Gazelle §5; SCI-HE], groups = 1.
///
/// Layout: each channel's map, zero-padded by the layer's padding p to H' × W'
/// (H' = H + 2p, W' = W + 2p; the padding is public, so each party writes its share this way),
/// fills one block of S = n/c_n slots (c_n, a power of two, maps per ciphertext row; S ≥ H'·W');
/// ⌈C/c_n⌉ input ciphertexts. Tap (a, b) is the rotation of the input by a·W' + b (hoisted: one
/// ModUp per input ciphertext for its k_h·k_w − 1 rotations). The stride-1 "valid" output
/// (h, w), h ≤ H' − k_h, w ≤ W' − k_w, lands in slot h·W' + w of its block, reading only its own
/// block (w + b < W', so no row wraps into the next one). Output channels rotate in
/// (Gazelle's diagonal arrangement): plaintext (v, u, r, tap) holds in block c the weight
/// `W[v·c_n + (c − r) mod c_n][u·c_n + c][tap]`, and output ciphertext v is
/// `Σ_r rot_{r·S}( Σ_u Σ_tap pt ⊙ rot_tap(x_u) )`: c_n − 1 rotations per output ciphertext.
/// Stride s keeps the slots (i·s)·W' + j·s. Slots outside the valid outputs hold garbage, which
/// the layer protocol masks like every returned slot.
///
/// BSGS form of the output rotations (B baby steps, G = c_n/B giant steps, r = g·B + b):
/// `rot_{r·S}(pt ⊙ y) = rot_{g·B·S}(rot_{b·S}(pt) ⊙ rot_{b·S}(y))`, so the baby steps move to the
/// input side, where they join the hoisted tap rotations (offsets tap + b·S), and each output
/// ciphertext needs G − 1 rotations instead of c_n − 1: in all
/// in_cts·(k_h·k_w·B − 1) hoisted + out_cts·(G − 1) rotations. B = 1 is the plain form;
/// [`Conv::new`] takes the B that minimises the predicted rotation time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConvLayout {
    spec: crate::Conv2dSpec,
    c_n: usize,
    block: usize,
    /// 2: row ρ of a ciphertext carries channels ρ·c_n.. of its 2·c_n (cross-row pairs read a
    /// row-swapped copy of the input); 1: both rows carry the same c_n channels.
    rows: usize,
    /// Whether some output reads an input of the other row (then each input ciphertext is
    /// also used row-swapped); never for a depthwise conv.
    cross: bool,
    in_cts: usize,
    out_cts: usize,
    baby: usize,
    /// [`ConvLayout::present`] for every (v, u, s, r), s < 2 with two rows (else s = 0),
    /// at `((v·in_cts + u)·swaps + s)·c_n + r` ([`ConvLayout::presence`]).
    present: Vec<bool>,
}

/// A [`ConvLayout`] with its weights. Plaintext (v, u, s, r, tap), already rotated by b·S for
/// r = g·B + b, exists where [`ConvLayout`] says (channel pairs of one group: decided by the
/// shape, never by the weights' values); [`Conv::apply`] encodes each one right before its
/// product, so the server never holds the layer's plaintexts at once (a ResNet-18 conv1 at
/// 64×64 would need GBs; `Simd::weight_bytes` reports what caching them takes).
pub struct Conv {
    layout: ConvLayout,
    enc: BatchEncoder,
    w: Vec<u64>,
    num_moduli: usize,
}

/// A hoisted rotation's time relative to a plain one (measured: 2.60 against 5.01 ms at
/// N = 8192, BENCHMARKS.md § Lattice core), for choosing the baby-step count.
const HOISTED_COST: f64 = 0.52;

/// The Galois element of X → X^{2N−1}, which swaps the two batching rows.
pub(crate) fn swap_element(n_total: usize) -> usize {
    2 * n_total - 1
}

impl ConvLayout {
    fn padded(spec: &crate::Conv2dSpec) -> (usize, usize) {
        (spec.h + 2 * spec.padding, spec.w + 2 * spec.padding)
    }

    /// Maps per ciphertext row for `spec` in rows of `n` slots, or an error when one padded map
    /// does not fit a row (larger maps need spatial splitting, not built yet).
    pub fn channels_per_ct(spec: &crate::Conv2dSpec, n: usize) -> Result<usize, LinearError> {
        let (hp, wp) = Self::padded(spec);
        let per = n / (hp * wp);
        if per == 0 {
            return Err(LinearError::BadShape {
                reason: "simd conv: a padded channel map does not fit one ciphertext row",
            });
        }
        // The largest power of two not above `per`, and no more than the channels need.
        let mut c_n = 1;
        while c_n * 2 <= per && c_n < spec.c.max(spec.m) {
            c_n *= 2;
        }
        Ok(c_n)
    }

    /// The baby-step count (a power of two dividing c_n) minimising the predicted rotation time
    /// in_cts·(k·rows·B − 1)·[`HOISTED_COST`] + out_cts·(c_n/B − 1), k the taps.
    pub fn best_baby(c_n: usize, in_cts: usize, out_cts: usize, taps: usize) -> usize {
        Self::best_baby_rows(c_n, in_cts, out_cts, taps, 1)
    }

    fn best_baby_rows(
        c_n: usize,
        in_cts: usize,
        out_cts: usize,
        taps: usize,
        rows: usize,
    ) -> usize {
        let cost = |b: usize| {
            in_cts as f64 * (taps * rows * b - 1) as f64 * HOISTED_COST
                + out_cts as f64 * (c_n / b - 1) as f64
        };
        let mut best = 1;
        let mut b = 2;
        while b <= c_n {
            if cost(b) < cost(best) {
                best = b;
            }
            b *= 2;
        }
        best
    }

    /// The layout of `spec` in rows of `n` slots: both rows used for different channels when
    /// the channels fill more than one row (never more products, half the ciphertexts), and the
    /// cheapest baby-step count ([`ConvLayout::best_baby`]; grouped convs use few output
    /// rotations, a depthwise one none: no baby steps).
    pub fn new(spec: crate::Conv2dSpec, n: usize) -> Result<ConvLayout, LinearError> {
        let c_n = Self::channels_per_ct(&spec, n)?;
        let rows = if spec.c.max(spec.m) > c_n { 2 } else { 1 };
        let baby = if spec.groups > 1 {
            1
        } else {
            Self::best_baby_rows(
                c_n,
                spec.c.div_ceil(rows * c_n),
                spec.m.div_ceil(rows * c_n),
                spec.kh * spec.kw,
                rows,
            )
        };
        Self::with(spec, n, rows, baby)
    }

    /// As [`ConvLayout::new`] with `baby` baby steps (a power of two dividing c_n; 1: no BSGS)
    /// and `rows` (1 or 2) channel sets per ciphertext.
    pub fn with(
        spec: crate::Conv2dSpec,
        n: usize,
        rows: usize,
        baby: usize,
    ) -> Result<ConvLayout, LinearError> {
        let bad = |reason: &'static str| Err(LinearError::BadShape { reason });
        if spec.groups == 0
            || !spec.c.is_multiple_of(spec.groups)
            || !spec.m.is_multiple_of(spec.groups)
        {
            return bad("simd conv: groups must divide C and M");
        }
        let c_n = Self::channels_per_ct(&spec, n)?;
        if !baby.is_power_of_two() || baby > c_n {
            return bad("simd conv: baby steps must be a power of two dividing c_n");
        }
        if !(1..=2).contains(&rows) {
            return bad("simd conv: one or two channel sets per ciphertext");
        }
        let mut l = ConvLayout {
            spec,
            c_n,
            block: n / c_n,
            rows,
            cross: rows == 2,
            in_cts: spec.c.div_ceil(rows * c_n),
            out_cts: spec.m.div_ceil(rows * c_n),
            baby,
            present: Vec::new(),
        };
        l.present = l.presence();
        if rows == 2 {
            l.cross = (0..l.out_cts)
                .any(|v| (0..l.in_cts).any(|u| (0..c_n).any(|r| l.present(v, u, 1, r))));
        }
        Ok(l)
    }

    /// Copies of each input ciphertext: as sent, and row-swapped when some pair crosses rows.
    pub fn copies(&self) -> usize {
        1 + usize::from(self.cross)
    }

    pub(crate) fn swaps(&self) -> usize {
        self.copies()
    }

    /// Index into the weights (M × C/groups × taps) that plaintext (v, u, s, r, tap) holds in
    /// row ρ, block c: the pair (output (v, ρ, (c + r) mod c_n), input (u, ρ ⊕ s, c)), if both
    /// exist and share a group.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn weight_index(
        &self,
        v: usize,
        u: usize,
        s: usize,
        r: usize,
        tap: usize,
        rho: usize,
        c: usize,
    ) -> Option<usize> {
        let (sp, c_n) = (&self.spec, self.c_n);
        let (rho, rho_in) = if self.rows == 1 {
            (0, 0)
        } else {
            (rho, rho ^ s)
        };
        let per = self.rows * c_n;
        let o = v * per + rho * c_n + (c + c_n - r) % c_n;
        let ci = u * per + rho_in * c_n + c;
        if o >= sp.m || ci >= sp.c {
            return None;
        }
        let cg = sp.c_per_group();
        let g = sp.group_of_output(o);
        (ci / cg == g).then(|| (o * cg + ci - g * cg) * sp.kh * sp.kw + tap)
    }

    /// Whether plaintext (v, u, s, r, ·) is nonzero for some weights (the same for every tap).
    pub(crate) fn present(&self, v: usize, u: usize, s: usize, r: usize) -> bool {
        let sw = if self.rows == 2 { 2 } else { 1 };
        let s = if self.rows == 2 { s } else { 0 };
        self.present[((v * self.in_cts + u) * sw + s) * self.c_n + r]
    }

    /// [`ConvLayout::present`] for every index, from [`ConvLayout::weight_index`]'s conditions:
    /// for fixed (v, u, s), each block pair (ρ, c) whose input channel ci exists reaches the
    /// outputs o of ci's group in its row, t = o − (v·per + ρ·c_n) in an interval [lo, hi), and
    /// since t = (c − r) mod c_n the r it serves form one cyclic interval; a difference array
    /// marks them. rows·c_n + c_n steps per (v, u, s) instead of rows·c_n per (v, u, s, r).
    fn presence(&self) -> Vec<bool> {
        let (sp, c_n, rows) = (&self.spec, self.c_n, self.rows);
        let per = rows * c_n;
        let (cg, mg) = (sp.c_per_group(), sp.m_per_group());
        let sw = if rows == 2 { 2 } else { 1 };
        let mut out = vec![false; self.out_cts * self.in_cts * sw * c_n];
        let mut diff = vec![0i64; c_n + 1];
        for v in 0..self.out_cts {
            for u in 0..self.in_cts {
                for s in 0..sw {
                    diff.fill(0);
                    for rho in 0..rows {
                        let o_base = v * per + rho * c_n;
                        let i_base = u * per + (rho ^ s) * c_n;
                        for c in 0..c_n {
                            let ci = i_base + c;
                            if ci >= sp.c {
                                break;
                            }
                            let g = ci / cg;
                            let lo = (g * mg).max(o_base);
                            let hi = ((g + 1) * mg).min(sp.m).min(o_base + c_n);
                            if lo >= hi {
                                continue;
                            }
                            // t ∈ [lo − o_base, hi − o_base) ⟺ r ∈ [c − (hi − o_base − 1), … ,
                            // c − (lo − o_base)] mod c_n.
                            let len = hi - lo;
                            let start = (c + c_n - (hi - o_base - 1)) % c_n;
                            diff[start] += 1;
                            if start + len <= c_n {
                                diff[start + len] -= 1;
                            } else {
                                diff[c_n] -= 1;
                                diff[0] += 1;
                                diff[start + len - c_n] -= 1;
                            }
                        }
                    }
                    let at = ((v * self.in_cts + u) * sw + s) * c_n;
                    let mut acc = 0i64;
                    for (r, d) in diff[..c_n].iter().enumerate() {
                        acc += d;
                        out[at + r] = acc > 0;
                    }
                }
            }
        }
        out
    }

    /// Whether output ciphertext `v` has plaintexts for giant step `g`.
    pub(crate) fn giant_used(&self, v: usize, g: usize) -> bool {
        (0..self.baby).any(|b| {
            (0..self.in_cts)
                .any(|u| (0..self.swaps()).any(|s| self.present(v, u, s, g * self.baby + b)))
        })
    }

    /// Input rotations, baby step major: offset a·W' + b' of tap (a, b') plus b·S.
    fn input_steps(&self) -> Vec<i64> {
        let (_, wp) = Self::padded(&self.spec);
        let (kh, kw, block) = (self.spec.kh, self.spec.kw, self.block);
        (0..self.baby)
            .flat_map(|b| {
                (0..kh).flat_map(move |a| (0..kw).map(move |c| (a * wp + c + b * block) as i64))
            })
            .collect()
    }

    /// Galois elements of the input copies, swap major: the input steps, then (two rows) the
    /// same steps composed with the row swap.
    pub(crate) fn input_elements(&self, n_total: usize) -> Vec<usize> {
        let steps = self.input_steps();
        let mut out: Vec<usize> = steps
            .iter()
            .map(|&d| rlwe::eval::galois_element_for_rotation(n_total, d))
            .collect();
        if self.cross {
            let sw = swap_element(n_total);
            out.extend(steps.iter().map(|&d| {
                rlwe::eval::galois_element_for_rotation(n_total, d) * sw % (2 * n_total)
            }));
        }
        out
    }

    /// The Galois elements [`Conv::apply`] uses (the keys to generate), for ring degree
    /// `n_total` = 2·(slots per row): the input copies' elements other than the identity and
    /// the giant steps g·B·S, 0 < g < c_n/B, that some output ciphertext uses.
    pub fn galois_elements(&self, n_total: usize) -> Vec<usize> {
        let mut e: Vec<usize> = self
            .input_elements(n_total)
            .into_iter()
            .filter(|&k| k != 1)
            .collect();
        e.extend(
            (1..self.c_n / self.baby)
                .filter(|&g| (0..self.out_cts).any(|v| self.giant_used(v, g)))
                .map(|g| {
                    rlwe::eval::galois_element_for_rotation(
                        n_total,
                        (g * self.baby * self.block) as i64,
                    )
                }),
        );
        e.sort_unstable();
        e.dedup();
        e
    }

    /// Key-switched rotations one application costs: k_h·k_w·B·copies − 1 hoisted per input
    /// ciphertext, and per output ciphertext one per giant step it uses (c_n/B − 1 without
    /// groups).
    pub fn rotations(&self) -> usize {
        let giant: usize = (0..self.out_cts)
            .map(|v| {
                (1..self.c_n / self.baby)
                    .filter(|&g| self.giant_used(v, g))
                    .count()
            })
            .sum();
        self.in_cts * (self.spec.kh * self.spec.kw * self.baby * self.copies() - 1) + giant
    }

    /// Products summed into output ciphertext `v`.
    fn products_of(&self, v: usize) -> usize {
        let mut n = 0;
        for u in 0..self.in_cts {
            for s in 0..self.swaps() {
                n += (0..self.c_n).filter(|&r| self.present(v, u, s, r)).count();
            }
        }
        n * self.spec.kh * self.spec.kw
    }

    /// Plaintexts held (the conventional convolution's weight storage, in plaintexts of N
    /// slots); one application multiplies each once (ct × pt products).
    pub fn plaintexts(&self) -> usize {
        (0..self.out_cts).map(|v| self.products_of(v)).sum()
    }

    /// Sums of products per output ciphertext, the largest (for the noise bound).
    pub fn max_products_per_output(&self) -> usize {
        (0..self.out_cts)
            .map(|v| self.products_of(v))
            .max()
            .unwrap_or(0)
    }

    /// The baby-step count in use.
    pub fn baby_steps(&self) -> usize {
        self.baby
    }

    /// Maps per ciphertext row.
    pub fn channels(&self) -> usize {
        self.c_n
    }

    /// Slots per channel block (S = n/c_n).
    pub fn block(&self) -> usize {
        self.block
    }

    /// The convolution this layout packs.
    pub fn spec(&self) -> crate::Conv2dSpec {
        self.spec
    }

    /// Channel sets per ciphertext (1: both rows alike, 2: one per row).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Input and output ciphertext counts.
    pub fn ciphertexts(&self) -> (usize, usize) {
        (self.in_cts, self.out_cts)
    }

    /// Input ciphertexts' slot values (2·n each) from C × H × W values, zero-padded.
    pub fn pack_input(&self, x: &[u64]) -> Vec<Vec<u64>> {
        let block = self.block;
        pack_maps(
            &self.spec,
            self.rows,
            self.c_n,
            self.c_n * block,
            x,
            |c, pos| c * block + pos,
        )
    }

    /// The slot (of its output ciphertext's 2·n) of each of the M × H_out × W_out outputs.
    pub fn output_slots(&self) -> Vec<(usize, usize)> {
        let block = self.block;
        map_slots(
            &self.spec,
            self.rows,
            self.c_n,
            self.c_n * block,
            |c, pos| c * block + pos,
        )
    }

    /// M × H_out × W_out values from the output ciphertexts' decoded slots.
    pub fn unpack_output(&self, slots: &[Vec<u64>]) -> Vec<u64> {
        self.output_slots()
            .into_iter()
            .map(|(v, s)| slots[v][s])
            .collect()
    }
}

/// Input ciphertexts' slot values (2·n each) from C × H × W values `x`, each map zero-padded at
/// positions pos = h'·W' + w' of its padded map, channel c of a row at row slot `slot(c, pos)`;
/// row ρ of ciphertext u holds channels (u·rows + ρ)·c_n.. (both rows alike when `rows` = 1).
pub(crate) fn pack_maps(
    spec: &crate::Conv2dSpec,
    rows: usize,
    c_n: usize,
    n: usize,
    x: &[u64],
    slot: impl Fn(usize, usize) -> usize,
) -> Vec<Vec<u64>> {
    let s = spec;
    let wp = s.w + 2 * s.padding;
    let per = rows * c_n;
    (0..s.c.div_ceil(per))
        .map(|u| {
            let mut slots = vec![0u64; 2 * n];
            for rho in 0..rows {
                for c in 0..c_n {
                    let ci = u * per + rho * c_n + c;
                    if ci >= s.c {
                        break;
                    }
                    for h in 0..s.h {
                        for w in 0..s.w {
                            let pos = (h + s.padding) * wp + w + s.padding;
                            slots[rho * n + slot(c, pos)] = x[(ci * s.h + h) * s.w + w];
                        }
                    }
                }
            }
            if rows == 1 {
                let (a, b) = slots.split_at_mut(n);
                b.copy_from_slice(a);
            }
            slots
        })
        .collect()
}

/// The (output ciphertext, slot of its 2·n) of each of the M × H_out × W_out outputs in the
/// packing of [`pack_maps`]: output (i, j) at position i·stride·W' + j·stride.
pub(crate) fn map_slots(
    spec: &crate::Conv2dSpec,
    rows: usize,
    c_n: usize,
    n: usize,
    slot: impl Fn(usize, usize) -> usize,
) -> Vec<(usize, usize)> {
    let s = spec;
    let wp = s.w + 2 * s.padding;
    let (ho, wo) = (s.out_h(), s.out_w());
    let per = rows * c_n;
    let mut out = Vec::with_capacity(s.m * ho * wo);
    for o in 0..s.m {
        let (v, rho, c) = (o / per, (o % per) / c_n, o % c_n);
        for i in 0..ho {
            for j in 0..wo {
                out.push((v, rho * n + slot(c, i * s.stride * wp + j * s.stride)));
            }
        }
    }
    out
}

impl Conv {
    /// Binds the weights `w` (M × C/groups × k_h × k_w, entries < t) of `spec` for ciphertexts
    /// of `num_moduli` primes, in the layout of [`ConvLayout::new`].
    pub fn new(
        enc: &BatchEncoder,
        spec: crate::Conv2dSpec,
        w: &[u64],
        num_moduli: usize,
    ) -> Result<Conv, LinearError> {
        Self::prepare(enc, ConvLayout::new(spec, enc.slots() / 2)?, w, num_moduli)
    }

    /// Binds the weights `w` (M × C/groups × k_h × k_w, entries < t) to `layout`.
    pub fn prepare(
        enc: &BatchEncoder,
        layout: ConvLayout,
        w: &[u64],
        num_moduli: usize,
    ) -> Result<Conv, LinearError> {
        let spec = layout.spec;
        if w.len() != spec.m * spec.c_per_group() * spec.kh * spec.kw {
            return Err(LinearError::BadShape {
                reason: "simd conv: need M*(C/groups)*kh*kw weights",
            });
        }
        if layout.c_n * layout.block != enc.slots() / 2 {
            return Err(LinearError::BadShape {
                reason: "simd conv: layout made for another ring degree",
            });
        }
        Ok(Conv {
            layout,
            enc: enc.clone(),
            w: w.to_vec(),
            num_moduli,
        })
    }

    /// Plaintext (v, u, s, r, tap): in row ρ, block c, the weight of the pair
    /// [`ConvLayout::weight_index`] names, rotated left by b·S for its baby step b = r mod B.
    fn plaintext(
        &self,
        v: usize,
        u: usize,
        sw: usize,
        r: usize,
        tap: usize,
    ) -> Result<PlaintextNtt, LinearError> {
        let l = &self.layout;
        let n = l.c_n * l.block;
        let shift = (r % l.baby) * l.block;
        let per_block: Vec<Vec<u64>> = (0..2)
            .map(|rho| {
                (0..l.c_n)
                    .map(|c| {
                        l.weight_index(v, u, sw, r, tap, rho, c)
                            .map_or(0, |i| self.w[i])
                    })
                    .collect()
            })
            .collect();
        let values: Vec<u64> = (0..2 * n)
            .map(|s| per_block[s / n][((s % n + shift) % n) / l.block])
            .collect();
        Ok(PlaintextNtt::new(
            &self.enc.encode(&values)?,
            self.num_moduli,
        )?)
    }

    /// The layout (operation counts, packing).
    pub fn layout(&self) -> &ConvLayout {
        &self.layout
    }

    /// [`ConvLayout::pack_input`].
    pub fn pack_input(&self, x: &[u64]) -> Vec<Vec<u64>> {
        self.layout.pack_input(x)
    }

    /// [`ConvLayout::unpack_output`].
    pub fn unpack_output(&self, slots: &[Vec<u64>]) -> Vec<u64> {
        self.layout.unpack_output(slots)
    }

    /// The output ciphertexts from the packed input ciphertexts.
    pub fn apply(
        &self,
        ev: &Evaluator,
        cts: &[Ciphertext],
        gk: &GaloisKeys,
    ) -> Result<Vec<Ciphertext>, LinearError> {
        let l = &self.layout;
        if cts.len() != l.in_cts {
            return Err(LinearError::BadShape {
                reason: "simd conv: wrong number of input ciphertexts",
            });
        }
        let n_total = 2 * l.c_n * l.block;
        let elements = l.input_elements(n_total);
        let taps = l.spec.kh * l.spec.kw;
        let per_swap = taps * l.baby;
        // rotated[u][s·B·taps + b·taps + tap]: input u (row-swapped if s = 1) rotated by tap
        // offset + b·S, all from one decomposition of u.
        // Input ciphertexts' rotations, then output ciphertexts, each independent: in parallel.
        let rotated: Vec<Vec<Ciphertext>> = cts
            .par_iter()
            .map(|ct| {
                let mut r = ev.apply_galois_hoisted(ct, &elements, gk)?;
                for c in &mut r {
                    c.to_representation(math::Representation::Ntt);
                }
                Ok(r)
            })
            .collect::<Result<_, LinearError>>()?;
        (0..l.out_cts)
            .into_par_iter()
            .map(|v| -> Result<Ciphertext, LinearError> {
                let mut out: Option<Ciphertext> = None;
                for g in 0..l.c_n / l.baby {
                    let mut inner: Option<Ciphertext> = None;
                    for b in 0..l.baby {
                        let r = g * l.baby + b;
                        for (u, copies) in rotated.iter().enumerate() {
                            for s in 0..l.swaps() {
                                if !l.present(v, u, s, r) {
                                    continue;
                                }
                                for tap in 0..taps {
                                    let pt = &self.plaintext(v, u, s, r, tap)?;
                                    let y = &copies[s * per_swap + b * taps + tap];
                                    match inner.as_mut() {
                                        None => {
                                            let mut c = y.clone();
                                            ev.mul_plain_assign(&mut c, pt)?;
                                            inner = Some(c);
                                        }
                                        Some(acc) => ev.mul_plain_acc(acc, y, pt)?,
                                    }
                                }
                            }
                        }
                    }
                    let Some(inner) = inner else { continue };
                    let shifted = if g == 0 {
                        inner
                    } else {
                        ev.rotate_rows(&inner, (g * l.baby * l.block) as i64, gk)?
                    };
                    match out.as_mut() {
                        None => out = Some(shifted),
                        Some(o) => ev.add_assign(o, &shifted)?,
                    }
                }
                // All-zero weights for a whole output group: an encryption of zero (trivial; the
                // layer protocol re-randomizes every response).
                Ok(match out {
                    Some(o) => o,
                    None => ev.zero(cts[0].num_moduli(), math::Representation::Ntt)?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The precomputed presence equals the search over every (ρ, c) by `weight_index`, for
    /// dense, grouped and depthwise convolutions, one and two rows, partial last ciphertexts.
    #[test]
    fn presence_matches_the_search() {
        let mut checked = 0usize;
        for (c, m, hw, groups, n) in [
            (3, 16, 32, 1, 8192),
            (16, 32, 16, 1, 8192),
            (24, 144, 8, 1, 8192),
            (160, 960, 4, 1, 8192),
            (96, 100, 4, 1, 4096),
            (37, 70, 8, 1, 8192),
            (200, 300, 2, 1, 8192),
            (144, 144, 8, 144, 8192),
            (960, 960, 4, 960, 8192),
            (64, 128, 4, 64, 4096),
            (48, 96, 4, 4, 8192),
            (60, 90, 2, 3, 8192),
        ] {
            let spec = crate::Conv2dSpec::square(c, hw, m, 3, 1, 1, groups);
            let Ok(base) = ConvLayout::new(spec, n) else {
                continue;
            };
            for rows in [1, 2] {
                let Ok(l) = ConvLayout::with(spec, n, rows, base.baby) else {
                    continue;
                };
                for v in 0..l.out_cts {
                    for u in 0..l.in_cts {
                        for s in 0..rows {
                            for r in 0..l.c_n {
                                let want = (0..l.rows).any(|rho| {
                                    (0..l.c_n)
                                        .any(|cc| l.weight_index(v, u, s, r, 0, rho, cc).is_some())
                                });
                                assert_eq!(
                                    l.present(v, u, s, r),
                                    want,
                                    "{spec:?} rows {rows} v {v} u {u} s {s} r {r}"
                                );
                                checked += 1;
                            }
                        }
                    }
                }
            }
        }
        assert!(checked > 10_000, "only {checked} cases ran");
    }
}
