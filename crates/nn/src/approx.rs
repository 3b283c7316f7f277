//! Fixed-point definitions of the transformer non-linearities (GELU, softmax): the exact integer
//! semantics every private protocol must reproduce bit for bit (docs/fixed-point.md § Transformer
//! non-linearities, docs/protocols/transformer.md for the protocols).
//!
//! Inputs and outputs are elements of Z_{2^ℓ} at scale 2^s. Each function first reduces its
//! input to a small ring Z_{2^m} (m = s + 8 for GELU, s + 9 for softmax): a ring homomorphism the
//! parties apply to their shares locally. Inputs with |x| < 2^{m−s−1} (GELU: |x| < 128; softmax:
//! max − min of a row < 256, whatever the values themselves) get the intended function; larger
//! ones a defined wrap-around result, like every fixed-point overflow.
//!
//! The tables are functions of s only, computed here in f64 and rounded; both parties and the
//! oracle build them with this code.

/// The functions defined here, for [`Function::unsupported`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Function {
    Gelu,
    Softmax,
    LayerNorm,
}

impl Function {
    /// The function of a transformer op of the IR, None for the others.
    pub fn of(op: &crate::ir::Op) -> Option<Function> {
        use crate::ir::Op;
        match op {
            Op::Gelu => Some(Function::Gelu),
            Op::Softmax => Some(Function::Softmax),
            Op::LayerNorm(_) => Some(Function::LayerNorm),
            _ => None,
        }
    }

    /// Why `self` has no definition at scale 2^s in a ring of ℓ bits on rows of `d` values
    /// (its last axis; GELU is element-wise), or None: the one check behind the constructors,
    /// the fixed-point executor, the planner and the plan validation.
    pub fn unsupported(self, s: u32, ell: u32, d: usize) -> Option<String> {
        let (lo, hi, extra, rows) = match self {
            Function::Gelu => (4, 20, 8, false),
            Function::Softmax => (8, 14, 9, true),
            Function::LayerNorm => (8, 16, 20, true),
        };
        if !(lo..=hi).contains(&s) || s + extra > ell {
            return Some(format!("needs {lo} <= s <= {hi} and s + {extra} <= ell"));
        }
        if rows && !(1..=512).contains(&d) {
            return Some("needs rows of 1 to 512 values".into());
        }
        None
    }
}

/// Values per chunk of [`tournament_max`] on a level of more than [`TOURNAMENT_ONE_LEVEL`].
pub const TOURNAMENT_CHUNK: usize = 5;

/// A level of up to this many values is one chunk: every pair compared at once, which takes
/// one comparison and an AND of up to 16 bits per member instead of two levels.
pub const TOURNAMENT_ONE_LEVEL: usize = 17;

/// The chunk length of a tournament level of `len` values: all of them up to
/// [`TOURNAMENT_ONE_LEVEL`], else [`TOURNAMENT_CHUNK`] (the last chunk may be shorter).
pub fn tournament_chunk(len: usize) -> usize {
    if len <= TOURNAMENT_ONE_LEVEL {
        len.max(1)
    } else {
        TOURNAMENT_CHUNK
    }
}

/// The maximum of values in Z_{2^m} by a tournament: each level cuts the values into chunks of
/// [`tournament_chunk`] values (a chunk of one passes up) and replaces a chunk by
/// Σ_i w_i·x_i mod 2^m, with d_ij = [signed_m(x_i − x_j) ≥ 0] for i < j and
/// w_i = Π_{j<i} (1 − d_ji) · Π_{j>i} d_ij (x_i beats every later value and strictly beats
/// every earlier one). While a chunk's spread is below 2^{m−1} exactly one w_i is 1 and that is
/// the chunk's maximum (the first of equal maxima); beyond it the sum is what it is.
pub fn tournament_max(x: &[u64], m: u32) -> u64 {
    assert!(!x.is_empty(), "tournament over no values");
    let mm = mask(m);
    let ge = |a: u64, b: u64| signed(a.wrapping_sub(b) & mm, m) >= 0;
    let mut level: Vec<u64> = x.iter().map(|&v| v & mm).collect();
    while level.len() > 1 {
        level = level
            .chunks(tournament_chunk(level.len()))
            .map(|c| {
                (0..c.len())
                    .filter(|&i| {
                        (0..i).all(|j| !ge(c[j], c[i])) && (i + 1..c.len()).all(|j| ge(c[i], c[j]))
                    })
                    .fold(0u64, |a, i| a.wrapping_add(c[i]))
                    & mm
            })
            .collect();
    }
    level[0]
}

/// Signed value of the low `bits` bits of `x` (two's complement).
fn signed(x: u64, bits: u32) -> i64 {
    let sh = 64 - bits;
    ((x << sh) as i64) >> sh
}

fn mask(bits: u32) -> u64 {
    if bits == 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    }
}

/// GELU's two fixed-point definitions (docs/fixed-point.md § GELU): the plan picks one per
/// call by its link (`engine::plan::fused_pairs`), and the reference follows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GeluForm {
    /// `ReLU(x) − h(|x|)`, h = a·Φ(−a) tabulated on [0, 4) (64 entries): the fewest bits; the
    /// sign and |x| come before the segment index.
    Abs,
    /// `[x ≥ −4]·x + [−4 ≤ x < 4]·T(x)`, T = GELU − x tabulated on [−4, 4) (128 entries): the
    /// two range tests and the index in one comparison batch, four hops fewer per call.
    Signed,
}

/// GELU(x) = x·Φ(x) by a piecewise-linear table with segments of 2^{−f} = 1/16 and slopes with
/// e extra bits, in one of two forms ([`GeluForm`]); both err by ≈ 4·10^{−4} against float.
///
/// **Abs** (f = 4, j = 6, e = 4; h(a) = a·Φ(−a), 0 beyond 4: h(4) < 1.3·10^{−4}):
/// ```text
/// xm = x mod 2^m;  d = [signed_m(xm) ≥ 0];  r = d ? x : 0              (r in Z_{2^ℓ})
/// a  = (2r − x) mod 2^m                                                (|x| in Z_{2^m})
/// q  = a >> (s − f);  frac = a mod 2^{s−f}
/// g  = [signed_{m−s+f}(q − 2^j) < 0];  i = q mod 2^j
/// t  = (B[i] · frac + 2^{s−f+e−1}) >> (s − f + e)   (B[i] = slope + 2^{s−f+e} ≥ 0)
/// h  = A[i] + t − frac
/// y  = r − g·h  mod 2^ℓ
/// ```
/// `A[i]` is h's minimax line on segment i at scale 2^s, `B[i]` its slope at scale 2^{s+e} per
/// segment, offset by 2^{s−f+e} so that it is non-negative; `t − frac` undoes the offset
/// exactly. Exact semantics when |x| < 2^{m−1}.
///
/// **Signed** (f = 4, j = 7, e = 2; T(x) = GELU(x) − x = −x·Φ(−x), x ∈ [−4, 4)), with
/// sh = s − f and c = 2^{j+sh−1} (4 at scale 2^s):
/// ```text
/// xm = x mod 2^m;  x' = (xm + c) mod 2^m
/// ge = [signed_m(x') ≥ 0];  lt = [signed_m(xm − c) < 0]              (x ≥ −4, x < 4)
/// q  = x' >> sh;  frac = x' mod 2^sh;  i = q mod 2^j
/// W  = A[i]·2^{sh+e} + B[i]·frac + 2^{sh+e−1}                          (W ≥ 0)
/// h  = (W >> (sh + e)) − 2^{s−1}
/// y  = ge·x + (ge ∧ lt)·h  mod 2^ℓ
/// ```
/// `A[i]` is T's minimax line on segment i at scale 2^s plus 2^{s−1}, and `B[i]` its slope at
/// scale 2^{s+e} per segment (signed, ≥ −1.0005·2^{sh+e}); the offset 2^{s−1} keeps W
/// non-negative (T ≥ −0.17 and B·frac > −1.0005·2^{2sh+e}); the protocol truncates
/// W⁺ = W + 2^{sh+e+1}·frac (non-negative slopes, [`Gelu::w_range`]) in the ring of
/// p = [`Gelu::product_bits`] bits and subtracts 2·frac. Exact semantics when
/// |x| < 2^{m−1} − c (124 at s = 12).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gelu {
    /// Fractional bits s of input and output.
    pub s: u32,
    /// Bits of the reduced ring (s + 8).
    pub m: u32,
    /// Segments per unit: 2^f.
    pub f: u32,
    /// Index bits: the table covers |x| < 2^{j−f} (Abs) or −2^{j−f−1} ≤ x < 2^{j−f−1} (Signed).
    pub j: u32,
    /// Extra fractional bits of the slopes.
    pub e: u32,
    /// Intercepts at scale 2^s (Abs: of h; Signed: of T, plus 2^{s−1}), 2^j entries.
    pub a: Vec<i64>,
    /// Slopes at scale 2^{s+e} per segment (Abs: plus 2^{s−f+e}), 2^j entries.
    pub b: Vec<i64>,
    pub form: GeluForm,
}

/// GELU in f64 (the erf form), the float function the fixed-point one approximates.
pub fn gelu_f64(x: f64) -> f64 {
    0.5 * x * libm::erfc(-x / std::f64::consts::SQRT_2)
}

/// Softmax of a row in f64.
pub fn softmax_f64(x: &[f64]) -> Vec<f64> {
    let mx = x.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = x.iter().map(|&v| (v - mx).exp()).collect();
    let z: f64 = e.iter().sum();
    e.iter().map(|&v| v / z).collect()
}

/// `(x − μ) / √(var + ε)` of a row in f64 (LayerNorm without γ, β).
pub fn layernorm_f64(x: &[f64], eps: f64) -> Vec<f64> {
    let d = x.len() as f64;
    let mu = x.iter().sum::<f64>() / d;
    let var = x.iter().map(|v| (v - mu) * (v - mu)).sum::<f64>() / d;
    x.iter().map(|v| (v - mu) / (var + eps).sqrt()).collect()
}

/// h(a) = a·Φ(−a) = a·erfc(a/√2)/2.
fn gelu_h(a: f64) -> f64 {
    a * 0.5 * libm::erfc(a / std::f64::consts::SQRT_2)
}

/// Minimax lines parallel to the chords of `fun` on 2^j segments of `delta` from `x0`: per
/// segment (intercept at its start, slope over the segment).
fn segment_lines(fun: impl Fn(f64) -> f64, x0: f64, delta: f64, j: u32) -> Vec<(f64, f64)> {
    (0..1u64 << j)
        .map(|i| {
            let x = x0 + i as f64 * delta;
            let (y0, y1) = (fun(x), fun(x + delta));
            let slope = y1 - y0;
            // Shift by the mean of the extreme deviations from the chord.
            let (mut lo, mut hi) = (0f64, 0f64);
            for k in 0..=64 {
                let u = k as f64 / 64.0;
                let dev = fun(x + u * delta) - (y0 + slope * u);
                lo = lo.min(dev);
                hi = hi.max(dev);
            }
            (y0 + (lo + hi) / 2.0, slope)
        })
        .collect()
}

impl Gelu {
    /// The tables for scale 2^s (4 ≤ s ≤ 20, [`Function::unsupported`]) in `form`.
    pub fn new(s: u32, form: GeluForm) -> Gelu {
        assert!(
            Function::Gelu.unsupported(s, 64, 1).is_none(),
            "GELU tables for 4 <= s <= 20"
        );
        let scale = |v: f64, bits: u32| (v * (1u64 << bits) as f64).round() as i64;
        let (f, j, e, lines) = match form {
            GeluForm::Abs => (4, 6, 4, segment_lines(gelu_h, 0.0, 1.0 / 16.0, 6)),
            GeluForm::Signed => (
                4,
                7,
                2,
                segment_lines(|x| gelu_f64(x) - x, -4.0, 1.0 / 16.0, 7),
            ),
        };
        let (a, b) = lines
            .iter()
            .map(|&(icpt, slope)| match form {
                GeluForm::Abs => (scale(icpt, s), scale(slope, s + e) + (1i64 << (s - f + e))),
                GeluForm::Signed => (scale(icpt, s) + (1i64 << (s - 1)), scale(slope, s + e)),
            })
            .unzip();
        let g = Gelu {
            s,
            m: s + 8,
            f,
            j,
            e,
            a,
            b,
            form,
        };
        let (lo, _) = g.w_range();
        assert!(lo >= 0, "GELU's product stays non-negative");
        g
    }

    /// The inputs with exact GELU semantics: |x| below this (Abs 2^{m−1}; Signed 2^{m−1} − 4).
    pub fn limit(&self) -> i64 {
        match self.form {
            GeluForm::Abs => 1i64 << (self.m - 1),
            GeluForm::Signed => (1i64 << (self.m - 1)) - (1i64 << (self.j + self.s - self.f - 1)),
        }
    }

    /// The offset 2^{sh+e+1} that makes every Signed slope B[i] + offset non-negative.
    pub fn slope_offset(&self) -> u64 {
        1 << (self.s - self.f + self.e + 1)
    }

    /// The least and the largest value the protocol truncates, over the table and
    /// 0 ≤ frac < 2^sh: Abs B[i]·frac + 2^{sh+e−1}; Signed
    /// W⁺ = A[i]·2^{sh+e} + (B[i] + 2^{sh+e+1})·frac + 2^{sh+e−1}, W plus 2^{sh+e+1}·frac (its
    /// slope factor non-negative), W⁺ >> (sh + e) = (W >> (sh + e)) + 2·frac.
    pub fn w_range(&self) -> (i128, i128) {
        let sh = self.s - self.f;
        let half = 1i128 << (sh + self.e - 1);
        let top = mask(sh) as i128;
        self.a
            .iter()
            .zip(&self.b)
            .map(|(&a, &b)| {
                let (c, bp) = match self.form {
                    GeluForm::Abs => (0, b as i128),
                    GeluForm::Signed => (
                        (a as i128) << (sh + self.e),
                        b as i128 + self.slope_offset() as i128,
                    ),
                };
                let (x, y) = (c, c + bp * top);
                (x.min(y) + half, x.max(y) + half)
            })
            .fold((i128::MAX, i128::MIN), |(lo, hi), (a, z)| {
                (lo.min(a), hi.max(z))
            })
    }

    /// Bits p of the ring of the value the protocol truncates (below 2^{p−1}, [`Gelu::w_range`]).
    pub fn product_bits(&self) -> u32 {
        let hi = self.w_range().1 as u64;
        64 - hi.leading_zeros() + 1
    }

    /// GELU of one element of Z_{2^ℓ} at scale 2^s.
    pub fn eval(&self, ell: u32, x: u64) -> u64 {
        let (s, m, f, j, e) = (self.s, self.m, self.f, self.j, self.e);
        let sh = s - f;
        let lm = mask(ell);
        let xm = x & mask(m);
        match self.form {
            GeluForm::Abs => {
                let r = if signed(xm, m) >= 0 { x & lm } else { 0 };
                let a = (2u64.wrapping_mul(r)).wrapping_sub(x) & mask(m);
                let q = a >> sh;
                let frac = a & mask(sh);
                let g = signed(q.wrapping_sub(1 << j), m - sh) < 0;
                let i = (q & mask(j)) as usize;
                let t = (self.b[i] as u64 * frac + (1 << (sh + e - 1))) >> (sh + e);
                let h = self.a[i] + t as i64 - frac as i64;
                let gh = if g { h } else { 0 };
                r.wrapping_sub(gh as u64) & lm
            }
            GeluForm::Signed => {
                let c = 1u64 << (j + sh - 1);
                let xp = (xm + c) & mask(m);
                let ge = signed(xp, m) >= 0;
                let lt = signed(xm.wrapping_sub(c) & mask(m), m) < 0;
                let frac = xp & mask(sh);
                let i = ((xp >> sh) & mask(j)) as usize;
                let w = ((self.a[i] as i128) << (sh + e))
                    + self.b[i] as i128 * frac as i128
                    + (1i128 << (sh + e - 1));
                let h = (w >> (sh + e)) as i64 - (1i64 << (s - 1));
                let mut y = if ge { x & lm } else { 0 };
                if ge && lt {
                    y = y.wrapping_add(h as u64);
                }
                y & lm
            }
        }
    }
}

/// Softmax over rows: max by a tournament (one level up to 17 values, else chunks of five), e^{−u} of u = max − x from two tables (high and
/// low digit of u at 2^{−f} resolution, clipped at u ≥ 2^{j−f}), and one reciprocal per row by
/// [`normalized_lookup`] (a table of 1/x with linear interpolation at the sum's leading bits).
///
/// Integer semantics of [`Softmax::eval_row`]:
/// ```text
/// xm_i = x_i mod 2^m
/// mx   = tournament_max(xm, m): see that function for its chunks
/// u_i  = (mx − xm_i) mod 2^m;  q_i = u_i >> (s − f)
/// g_i  = [signed_{m−s+f}(q_i − 2^j) < 0];  lo = q_i mod 2^k;  hi = (q_i mod 2^j) >> k
/// E_i  = g_i · ((EH[hi] · EL[lo]) >> s)                       (E ≤ 2^s)
/// S    = Σ E_i                                               (S < 2^{s+10})
/// (e, U) = normalized_lookup(S, e_lo = s − 1, no parity, RT, RD)
/// R    = floor((U · 2^{s+9−e} + 2^{k−1}) / 2^k)              (≈ 2^K / S, k = A + f + 10 − (K − s))
/// y_i  = (E_i · R) >> (K − s)
/// ```
/// EH[h] = round(2^s·e^{−h·2^{k−f}}), EL[l] = round(2^s·e^{−(l + 1/2)·2^{−f}}) (f = 7, k = 6);
/// RT[i] = round(2^A / x_i), RD[i] = round(2^A·(1/x_i − 1/x_{i+1})), x_i = 1 + i/2^t.
/// S ≥ 2^{s−1} always (the maximal element has u = 0 and E = EL[0] ≥ 2^{s−1}) unless the row's
/// range wraps the reduced ring; then e is clamped to s − 1 and R is what the formula gives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Softmax {
    pub s: u32,
    pub m: u32,
    pub f: u32,
    pub j: u32,
    pub k: u32,
    /// Scale of the reciprocal: R ≈ 2^K / S.
    pub big_k: u32,
    pub eh: Vec<u64>,
    pub el: Vec<u64>,
    /// The reciprocal's tables (2^LOOKUP_IDX_BITS entries each).
    pub rt: Vec<u64>,
    pub rd: Vec<u64>,
}

impl Softmax {
    /// The tables for scale 2^s (8 ≤ s ≤ 14, [`Function::unsupported`]): resolution 2^{−7},
    /// clipped at u ≥ 16, digits of 5 (high) and 6 (low) bits, K = s + 19.
    pub fn new(s: u32) -> Softmax {
        assert!(
            Function::Softmax.unsupported(s, 64, 1).is_none(),
            "softmax tables for 8 <= s <= 14"
        );
        let (f, j, k) = (7u32, 11u32, 6u32);
        let one = (1u64 << s) as f64;
        let eh = (0..1u64 << (j - k))
            .map(|h| (one * (-((h << k) as f64) / (1u64 << f) as f64).exp()).round() as u64)
            .collect();
        let el = (0..1u64 << k)
            .map(|l| (one * (-(l as f64 + 0.5) / (1u64 << f) as f64).exp()).round() as u64)
            .collect();
        let (rt, rd) = lookup_tables(false, |x| 1.0 / x);
        Softmax {
            s,
            m: s + 9,
            f,
            j,
            k,
            big_k: s + 19,
            eh,
            el,
            rt,
            rd,
        }
    }

    /// Bits of the ring of the row sums: S ≤ 512·2^s with a sign bit to spare for the
    /// comparisons S − 2^i.
    pub fn sum_bits(&self) -> u32 {
        self.s + 12
    }

    /// Bits dropped from U · 2^{s+9−e} to form R ≈ 2^K / S.
    pub fn reciprocal_drop(&self) -> u32 {
        LOOKUP_TABLE_BITS + LOOKUP_FRAC_BITS + 1 + 9 - (self.big_k - self.s)
    }

    /// Softmax of one row of Z_{2^ℓ} elements at scale 2^s (rows of 1 to 512 values).
    pub fn eval_row(&self, ell: u32, x: &[u64]) -> Vec<u64> {
        self.eval_row_from(ell, x, 0)
    }

    /// [`Softmax::eval_row`] of a row at scale 2^{s+extra}: the unrounded product Q·Kᵀ
    /// (extra = s) read directly, its max and differences taken on m + extra bits and the
    /// digits of u cut `extra` bits higher (docs/fixed-point.md § Softmax of an unrounded
    /// product). Output at scale 2^s.
    pub fn eval_row_from(&self, ell: u32, x: &[u64], extra: u32) -> Vec<u64> {
        let (e, r) = self.row_parts_from(x, extra);
        let lm = mask(ell);
        e.iter()
            .map(|&v| ((v * r) >> (self.big_k - self.s)) & lm)
            .collect()
    }

    /// The clipped exponentials E (scale 2^s, at most 2^s) of one row and its reciprocal
    /// R ≈ 2^K / ΣE: everything of [`Softmax::eval_row`] before the per-element product.
    pub fn row_parts(&self, x: &[u64]) -> (Vec<u64>, u64) {
        self.row_parts_from(x, 0)
    }

    /// [`Softmax::row_parts`] of a row at scale 2^{s+extra} ([`Softmax::eval_row_from`]).
    pub fn row_parts_from(&self, x: &[u64], extra: u32) -> (Vec<u64>, u64) {
        let (s, f, j, k) = (self.s, self.f, self.j, self.k);
        let (m, sh) = (self.m + extra, s - f + extra);
        assert!(!x.is_empty() && x.len() <= 512, "rows of 1 to 512 values");
        let mm = mask(m);
        let xm: Vec<u64> = x.iter().map(|&v| v & mm).collect();
        let mx = tournament_max(&xm, m);
        let e: Vec<u64> = xm
            .iter()
            .map(|&v| {
                let u = mx.wrapping_sub(v) & mm;
                let q = u >> sh;
                let g = signed(q.wrapping_sub(1 << j), m - sh) < 0;
                let lo = (q & mask(k)) as usize;
                let hi = ((q & mask(j)) >> k) as usize;
                if g {
                    (self.eh[hi] * self.el[lo]) >> s
                } else {
                    0
                }
            })
            .collect();
        let sum: u64 = e.iter().sum();
        (e, self.reciprocal(sum))
    }

    /// One output of softmax fused with the product by V that reads it (docs/fixed-point.md
    /// § Softmax → product): for p = Σ_j E_j·V_j mod 2^ℓ (the row's exponentials of
    /// [`Softmax::row_parts`] times a column of V, scale 2^{2s}),
    /// ```text
    /// y = floor(signed_ℓ(p)·R / 2^K)  mod 2^ℓ
    /// ```
    /// — (E·V)·R instead of (E·R)·V with a rescale after each. `None` outside the protocol's
    /// range: |p| < 2^{ℓ−2} (a product's output range) and |p·R| < 2^{SM_LINEAR_RING−2}.
    pub fn matmul_output(&self, ell: u32, p: u64, r: u64) -> Option<u64> {
        let p = signed(p & mask(ell), ell);
        let v = p as i128 * r as i128;
        let ok =
            p.unsigned_abs() < 1 << (ell - 2) && v.unsigned_abs() < 1u128 << (SM_LINEAR_RING - 2);
        ok.then(|| (v >> self.big_k) as u64 & mask(ell))
    }

    /// R ≈ 2^K / S for 0 ≤ S < 2^{s+10} (the type's documentation).
    pub fn reciprocal(&self, sum: u64) -> u64 {
        let (e, u) = normalized_lookup(sum, self.s - 1, self.s + 10, false, &self.rt, &self.rd);
        let k = self.reciprocal_drop();
        ((u << (self.s + 9 - e)) + (1 << (k - 1))) >> k
    }
}

/// Layer normalization without its affine part, `(x − μ) / √(var + ε)` over rows of D values:
/// mean by an exact shift (D a power of two) or a public multiply and exact floor, variance from
/// the exact deviations, then one inverse square root per row by a table and linear
/// interpolation at the leading bits of V, and one product per element.
///
/// Integer semantics of [`LayerNorm::eval_row`] (the affine γ, β is a separate channel-affine
/// linear op):
/// ```text
/// μ    = floor((signed_ℓ(Σ x_i) + D/2) / D)  mod 2^ℓ            (D a power of two), else
///        floor(signed_64(signed_ℓ(Σ x_i) · M + 2^39) / 2^40)  mod 2^ℓ  (M = round(2^40 / D))
/// c_i  = x_i − μ;  cm_i = c_i mod 2^m                        (m = s + 8)
/// V    = Σ signed_m(cm_i)² · M2 + round(ε·2^20)·2^24         (M2 = round(2^{44−2s} / D): scale 2^44)
/// R    = inverse_root(V)                                     (≈ 2^{18+22} / √V)
/// y_i  = floor((signed_m(cm_i) · R + 2^17) / 2^18)  mod 2^ℓ
/// ```
/// and [`LayerNorm::inverse_root`] = [`normalized_lookup`] of g = x^{−½} with parity and
/// e ≥ 24 (V ≥ 2^24 as ε ≥ 1 unit; V < 2^57), then, h = e >> 1,
/// ```text
/// R = floor((U · 2^{28−h} + 2^{k−1}) / 2^k)                  (k = f + 1 + A + 28 − 22 − 18 = 14)
/// ```
/// Exact semantics when every |x_i − μ| < 2^{m−2−s} = 64 (the protocol's range assumption, like
/// the ring-wide |x| < 2^{ℓ−2}) and |Σ x_i| < 2^{ℓ−2} − D; for D not a power of two the mean's
/// product is formed in a 64-bit ring (|mean| < 2^{21−s}·… ≤ 2^{9} at s = 12). The squares are
/// of the deviations themselves (no rounding): Σ cm² < D·2^{2(m−2)} ≤ 2^{2s+21}, so V < 2^57.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerNorm {
    pub s: u32,
    pub m: u32,
    /// Row length D.
    pub d: usize,
    pub t: u32,
    pub mul: u64,
    pub t2: u32,
    pub mul2: u64,
    pub eps: u64,
    /// The inverse square root's tables RT, RD (2^{LOOKUP_IDX_BITS + 1} entries each).
    pub rt: Vec<u64>,
    pub rd: Vec<u64>,
}

/// 2^24 ≤ V < 2^LN_V_BITS; h = floor(log2 V) / 2 ≤ LN_V_BITS / 2 − 1 = H.
pub const LN_V_BITS: u32 = 58;
/// V ≥ 2^LN_V_LO (ε is at least one unit of 2^{−20}, times 2^24).
pub const LN_V_LO: u32 = 24;
/// y = (c · R) >> LN_SHIFT.
pub const LN_SHIFT: u32 = 18;
/// Scale of V (2^44), so √V carries half of it.
pub const LN_V_SCALE: u32 = 44;
/// Ring of the product (E·V)·R of softmax fused with the product by V
/// ([`Softmax::matmul_output`]).
pub const SM_LINEAR_RING: u32 = 56;
/// Ring of the product t(u)·R of LayerNorm fused with a linear layer
/// ([`LayerNorm::linear_output`]).
pub const LN_LINEAR_RING: u32 = 48;
/// Scale of ε in its integer form (V adds it times 2^{LN_V_SCALE − LN_EPS_SCALE}).
pub const LN_EPS_SCALE: u32 = 20;

/// H: the largest h, the exponent of the power of two R is scaled by.
pub const fn ln_half_range() -> u32 {
    LN_V_BITS / 2 - 1
}

/// Bits dropped from U · 2^{H−h} to form R: f + 1 + A + H − V_SCALE/2 − SHIFT.
pub const fn ln_root_drop() -> u32 {
    LOOKUP_FRAC_BITS + 1 + LOOKUP_TABLE_BITS + ln_half_range() - LN_V_SCALE / 2 - LN_SHIFT
}

impl LayerNorm {
    /// The parameters for scale 2^s (8 ≤ s ≤ 16), rows of D (1 ≤ D ≤ 512), ring of ℓ bits
    /// (ℓ ≥ s + 20; [`Function::unsupported`]) and ε.
    pub fn new(s: u32, ell: u32, d: usize, eps: f32) -> LayerNorm {
        assert!(
            Function::LayerNorm.unsupported(s, ell, d).is_none(),
            "LayerNorm parameters"
        );
        let t = 40;
        let t2 = LN_V_SCALE - LN_EPS_SCALE;
        let mul = ((1u64 << t) as f64 / d as f64).round() as u64;
        // V at scale 2^44 from squares at scale 2^{2s}.
        let mul2 = ((1u64 << (LN_V_SCALE - 2 * s)) as f64 / d as f64).round() as u64;
        // ε at scale 2^20 (V adds it times 2^t2), at least one unit and at most 2^31 (ε ≤ 2048),
        // so that with Σ c²·M2 < 2^56 the sum V stays below 2^57 < 2^LN_V_BITS.
        let eps = ((eps as f64 * (1u64 << LN_EPS_SCALE) as f64).round() as u64).clamp(1, 1 << 31);
        let (rt, rd) = lookup_tables(true, |x| 1.0 / x.sqrt());
        LayerNorm {
            s,
            m: s + 8,
            d,
            t,
            mul,
            t2,
            mul2,
            eps,
            rt,
            rd,
        }
    }

    /// Layer normalization of one row of Z_{2^ℓ} elements at scale 2^s (output at scale 2^s).
    pub fn eval_row(&self, ell: u32, x: &[u64]) -> Vec<u64> {
        let m = self.m;
        let (c, r) = self.row_root(ell, x);
        c.iter()
            .map(|&c| {
                let c = signed(c & mask(m), m);
                ((c as i128 * r as i128 + (1 << (LN_SHIFT - 1))) >> LN_SHIFT) as u64 & mask(ell)
            })
            .collect()
    }

    /// The deviations c_i = x_i − μ mod 2^ℓ of one row and its inverse root R (everything of
    /// [`LayerNorm::eval_row`] before the per-element product).
    pub fn row_root(&self, ell: u32, x: &[u64]) -> (Vec<u64>, u64) {
        assert_eq!(x.len(), self.d, "row length");
        let m = self.m;
        let lm = mask(ell);
        let sum = signed(x.iter().fold(0u64, |a, &b| a.wrapping_add(b)) & lm, ell);
        let mu = if self.d.is_power_of_two() {
            ((sum + (self.d as i64 >> 1)) >> self.d.trailing_zeros()) as u64 & lm
        } else {
            // The mean's product is formed mod 2^64 (the protocol's ring for it).
            let prod = sum
                .wrapping_mul(self.mul as i64)
                .wrapping_add(1i64 << (self.t - 1));
            (prod >> self.t) as u64 & lm
        };
        let c: Vec<u64> = x.iter().map(|&xi| xi.wrapping_sub(mu) & lm).collect();
        let q2: u64 = c
            .iter()
            .map(|&c| {
                let c = signed(c & mask(m), m);
                (c * c) as u64
            })
            .sum();
        let var = q2 * self.mul2 + (self.eps << self.t2);
        (c, self.inverse_root(var))
    }

    /// One output of the linear layer fused with this normalization (docs/fixed-point.md
    /// § LayerNorm → linear layer): for u = Σ_i W_i·c_i mod 2^ℓ (weights at scale 2^s, the
    /// deviations c of [`LayerNorm::row_root`], no bias) and the bias b at scale 2^{2s}, with
    /// t(v) = floor((v + 2^{s−1}) / 2^s) the rescale,
    /// ```text
    /// y = floor((t(u)·R + 2^17) / 2^18) + t(b)  mod 2^ℓ
    /// ```
    /// — the layer applied to x − μ and scaled by R per row, instead of applied to
    /// LayerNorm's rounded output: W·(c·R) = (W·c)·R. `None` outside the protocol's range:
    /// |u| < 2^{ℓ−2} − 2^{s−1} (a linear layer's output range), |t(u)| < 2^{w−2}
    /// (w = [`LayerNorm::linear_bits`]) and |t(u)·R| < 2^{LN_LINEAR_RING−2} − 2^17.
    pub fn linear_output(&self, ell: u32, u: u64, r: u64, b: u64) -> Option<u64> {
        let s = self.s;
        let (u, b) = (signed(u & mask(ell), ell), signed(b & mask(ell), ell));
        let t = |v: i64| (v + (1 << (s - 1))) >> s;
        let tu = t(u);
        let p = tu as i128 * r as i128;
        let ok = u.unsigned_abs() < (1 << (ell - 2)) - (1 << (s - 1))
            && tu.unsigned_abs() < 1 << (self.linear_bits() - 2)
            && p.unsigned_abs() < (1u128 << (LN_LINEAR_RING - 2)) - (1 << (LN_SHIFT - 1));
        ok.then(|| ((((p + (1 << (LN_SHIFT - 1))) >> LN_SHIFT) as i64 + t(b)) as u64) & mask(ell))
    }

    /// Bits w of the rescaled layer output t(u) in [`LayerNorm::linear_output`]: m + 4.
    pub fn linear_bits(&self) -> u32 {
        self.m + 4
    }

    /// R ≈ 2^{LN_SHIFT + 22} / √V for 2^24 ≤ V < 2^LN_V_BITS (the type's documentation).
    pub fn inverse_root(&self, var: u64) -> u64 {
        let (e, u) = normalized_lookup(var, LN_V_LO, LN_V_BITS, true, &self.rt, &self.rd);
        let k = ln_root_drop();
        ((u << (ln_half_range() - e / 2)) + (1 << (k - 1))) >> k
    }
}

/// Index bits t of the tables of [`normalized_lookup`] (with `parity`, one more bit selects the
/// exponent's parity).
pub const LOOKUP_IDX_BITS: u32 = 7;
/// Bits f of the interpolation offset φ.
pub const LOOKUP_FRAC_BITS: u32 = 7;
/// Scale 2^A of the tables.
pub const LOOKUP_TABLE_BITS: u32 = 18;

/// The tables of g on x ∈ [1, 2) (with `parity` also [2, 4), entries p·2^t + i):
/// RT[i] = round(2^A·g(x_i)), RD[i] = round(2^A·(g(x_i) − g(x_{i+1}))), x_i = (1 + i/2^t)·2^p.
pub fn lookup_tables(parity: bool, g: impl Fn(f64) -> f64) -> (Vec<u64>, Vec<u64>) {
    let one = (1u64 << LOOKUP_TABLE_BITS) as f64;
    let (mut rt, mut rd) = (Vec::new(), Vec::new());
    for p in 0..=parity as u32 {
        let x = |k: u64| (1.0 + k as f64 / (1u64 << LOOKUP_IDX_BITS) as f64) * (1 << p) as f64;
        for i in 0..1u64 << LOOKUP_IDX_BITS {
            rt.push((one * g(x(i))).round() as u64);
            rd.push((one * (g(x(i)) - g(x(i + 1)))).round() as u64);
        }
    }
    (rt, rd)
}

/// A decreasing g at the leading bits of v (0 ≤ v < 2^{bits}) by a table and linear
/// interpolation, with the exponent e it is scaled by (t = LOOKUP_IDX_BITS, f =
/// LOOKUP_FRAC_BITS):
/// ```text
/// e = max(floor(log2 v), e_lo)   (v = 0: e_lo);  p = e mod 2 with `parity`, else 0
/// W = floor(v · 2^{t+f−e})                       (in [2^{t+f}, 2^{t+f+1}) unless e = e_lo > log2 v)
/// i = ((W >> f) − 2^t + p·2^t) mod 2^{t+parity},  φ = W mod 2^f
/// U = RT[i]·2^{f+1} − RD[i]·(2φ + 1)             (≈ 2^{A+f+1}·g(W/2^{t+f}·2^p), interpolated
///                                                 at φ's midpoint)
/// ```
/// Returns (e, U).
pub fn normalized_lookup(
    v: u64,
    e_lo: u32,
    bits: u32,
    parity: bool,
    rt: &[u64],
    rd: &[u64],
) -> (u32, u64) {
    assert!(v < 1u64 << bits, "lookup input out of range");
    let (t, f) = (LOOKUP_IDX_BITS, LOOKUP_FRAC_BITS);
    let e = if v == 0 {
        e_lo
    } else {
        (63 - v.leading_zeros()).max(e_lo)
    };
    let p = if parity { (e % 2) as u64 } else { 0 };
    let w = if e >= t + f {
        v >> (e - t - f)
    } else {
        v << (t + f - e)
    };
    let i = ((w >> f).wrapping_sub(1 << t).wrapping_add(p << t) & mask(t + parity as u32)) as usize;
    (e, (rt[i] << (f + 1)) - rd[i] * (2 * (w & mask(f)) + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gelu_error_against_float() {
        for form in [GeluForm::Abs, GeluForm::Signed] {
            let g = Gelu::new(12, form);
            let mut worst = 0f64;
            for v in -40_000i64..40_000 {
                let x = (v as u64) & mask(37);
                let y = signed(g.eval(37, x), 37) as f64 / 4096.0;
                worst = worst.max((y - gelu_f64(v as f64 / 4096.0)).abs());
            }
            // Segment fit ≈ 2·10^{−4}, table and product rounding ≤ 1 ulp of 2^{−12}.
            eprintln!("max GELU error {form:?} {worst}");
            assert!(worst < 7e-4, "max |GELU error| {form:?} = {worst}");
            assert!(g.product_bits() <= 28 && g.w_range().0 >= 0);
            assert!(g.a.iter().all(|&a| a.abs() < 1 << 15));
        }
    }

    #[test]
    fn gelu_large_inputs_are_relu() {
        for form in [GeluForm::Abs, GeluForm::Signed] {
            let g = Gelu::new(12, form);
            for v in [5i64 << 12, 60 << 12, -(5 << 12), -(60 << 12)] {
                let x = (v as u64) & mask(37);
                assert_eq!(signed(g.eval(37, x), 37), v.max(0), "{form:?}");
            }
        }
    }

    #[test]
    fn softmax_error_against_float() {
        let sm = Softmax::new(12);
        let mut state = 7u64;
        let mut worst = 0f64;
        for n in [1usize, 2, 3, 65, 257] {
            for _ in 0..20 {
                let row: Vec<i64> = (0..n)
                    .map(|_| {
                        state = state
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        ((state >> 33) % (24 << 12)) as i64 - (12 << 12)
                    })
                    .collect();
                let x: Vec<u64> = row.iter().map(|&v| (v as u64) & mask(37)).collect();
                let y = sm.eval_row(37, &x);
                let xf: Vec<f64> = row.iter().map(|&v| v as f64 / 4096.0).collect();
                for (i, p) in softmax_f64(&xf).into_iter().enumerate() {
                    worst = worst.max((signed(y[i], 37) as f64 / 4096.0 - p).abs());
                }
            }
        }
        eprintln!("max softmax error {worst}");
        assert!(worst < 2.5e-3, "max |softmax error| = {worst}");
    }

    #[test]
    fn layernorm_error_against_float() {
        let mut state = 11u64;
        let (mut worst, mut typical) = (0f64, 0f64);
        for d in [256usize, 192, 64] {
            let ln = LayerNorm::new(12, 37, d, 1e-5);
            for k in 0..20 {
                let (mean, spread) = ([0.0, 3.0, -20.0, 0.5][k % 4], [2.0, 0.3, 8.0, 30.0][k % 4]);
                let row: Vec<f64> = (0..d)
                    .map(|_| {
                        state = state
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        mean + spread * (((state >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0)
                    })
                    .collect();
                let x: Vec<u64> = row
                    .iter()
                    .map(|&v| ((v * 4096.0).round() as i64 as u64) & mask(37))
                    .collect();
                let y = ln.eval_row(37, &x);
                let xr: Vec<f64> = x.iter().map(|&v| signed(v, 37) as f64 / 4096.0).collect();
                let mu = xr.iter().sum::<f64>() / d as f64;
                let var = xr.iter().map(|v| (v - mu) * (v - mu)).sum::<f64>() / d as f64;
                for (i, want) in layernorm_f64(&xr, 1e-5).into_iter().enumerate() {
                    let err = (signed(y[i], 37) as f64 / 4096.0 - want).abs();
                    worst = worst.max(err);
                    if var > 1.0 {
                        typical = typical.max(err);
                    }
                }
            }
        }
        // Rows with σ ≈ 0.16 lose precision to the mean's 2^{−12} grid and the deviations'
        // 2^{−8} grid; rows with σ > 1 are the typical case, where the variance of 64
        // deviations on the 2^{−8} grid is off by up to 5·10^{−4} relative.
        assert!(worst < 4e-3, "max |layernorm error| = {worst}");
        assert!(
            typical < 6e-4,
            "max |layernorm error| at var > 1 = {typical}"
        );
    }

    #[test]
    fn inverse_root_tracks_the_float_root() {
        let ln = LayerNorm::new(12, 37, 64, 1e-5);
        let mut worst = 0f64;
        let mut v = 1u64 << LN_V_LO;
        while v < 1 << LN_V_BITS {
            for x in [v, v + v / 3, v + v / 2 + 1, 2 * v - 1] {
                if x >= 1 << LN_V_BITS {
                    continue;
                }
                let want = (1u64 << (LN_SHIFT + LN_V_SCALE / 2)) as f64 / (x as f64).sqrt();
                let got = ln.inverse_root(x) as f64;
                // Relative error of the table and interpolation, or one unit of R where R is small.
                let rel = ((got - want) / want).abs() / 2e-5;
                worst = worst.max(rel.min((got - want).abs()));
            }
            v *= 2;
        }
        assert!(worst < 1.0, "inverse root error {worst}");
        assert_eq!(ln.rt.len(), 1 << (LOOKUP_IDX_BITS + 1));
        assert!(ln.inverse_root((1 << LN_V_BITS) - 1) >= 1);
        assert!(ln.inverse_root(1 << LN_V_LO) < 1 << 28);
    }

    #[test]
    fn reciprocal_tracks_the_float_quotient() {
        let sm = Softmax::new(12);
        for sum in (2048u64..512 * 4096)
            .step_by(997)
            .chain([2048, 4096, 257 * 4096])
        {
            let want = (1u64 << sm.big_k) as f64 / sum as f64;
            let got = sm.reciprocal(sum) as f64;
            // Chord 2^{-15}, φ's grid 2^{-15}, tables 2^{-17} relative; R rounded to a unit.
            assert!(
                (got - want).abs() <= want * 7e-5 + 0.5,
                "1/{sum}: {got} vs {want}"
            );
        }
        // Below the range (a wrapped row) the value is defined, not a panic.
        let _ = sm.reciprocal(0);
        let _ = sm.reciprocal(5);
    }
}
