//! GELU, softmax and LayerNorm on shares, exactly equal to the fixed-point definitions of
//! `nn::approx` (docs/protocols/transformer.md gives the derivations and costs).
//!
//! Building blocks, all on additive shares:
//! * **ring reduction**: `x mod 2^m` is a ring homomorphism, so shares reduce locally; the
//!   comparisons of both functions run on m ≪ ℓ bits.
//! * **carry**: `[x0 mod 2^k + x1 mod 2^k ≥ 2^k]` is one millionaire on k bits (P1 passes the
//!   complement), and [`Session::compare`]'s split gives a second, nested carry for free.
//! * **lookup** ([`Session::lut`]): for an index shared mod 2^k, P1 chooses its share in a
//!   1-of-2^k OT and P0 offers `T[(i0 + v) mod 2^k]` for every v: (2^k − 1)·w + k bits.
//! * **non-negative truncation / extension** ([`Session::trunc_nonneg`]): for 0 ≤ x < 2^{b−1}
//!   shared mod 2^b, `floor(x / 2^k) = (x0 >> k) + (x1 >> k) + c − W·2^{b−k}` with `c` the low
//!   carry and `W = msb(x0) ∨ msb(x1)` the wrap [Cheetah §5.3], into any output ring.
//! * **squares and small × wide products** of values in a small ring: Gilboa cross terms on the
//!   small ring's bits, the wrap W handled by one-bit affine OTs.
//! * **the normalized lookup** for the per-row reciprocal and inverse square root: one batch of
//!   comparisons finds the leading bit, one flight selects the table index and the multipliers,
//!   one two-way lookup flight interpolates and scales ([`Session::normalized_rows`]).

use transport::Channel;

use crate::bits::{mask, BitReader, BitWriter};
use crate::cost::{self, Cost};
use crate::cots::{
    affine_choose, affine_send, one_of_n_answer_bits, one_of_n_choose, one_of_n_send, Group,
};
use crate::session::{Party, Session};
use crate::trunc::offset_by_p0;
use crate::{MpcError, Result, Ring, Shares, TruncForm};

/// The parameters and tables of GELU (`nn::approx::Gelu`, whose documentation gives the
/// integer semantics).
#[derive(Clone, Copy, Debug)]
pub struct GeluSpec<'a> {
    pub s: u32,
    pub m: u32,
    pub f: u32,
    pub j: u32,
    pub e: u32,
    /// Bits of the ring of the value the protocol truncates (`nn::approx::Gelu::product_bits`;
    /// its values stay below 2^{bits−1}).
    pub product_bits: u32,
    /// Intercepts A and slopes B, 2^j entries each (`nn::approx::Gelu`).
    pub a: &'a [i64],
    pub b: &'a [i64],
    /// The Signed form (`nn::approx::GeluForm::Signed`: one comparison batch, 128-entry
    /// tables) instead of the Abs form (the sign and |x| first, 64-entry tables).
    pub signed: bool,
    /// The party choosing in the comparison: the one that knows its input share first
    /// (P0 after a rescale, whose output share it picked before its last message; P1 after
    /// LayerNorm fused with a linear layer).
    pub chooser: Party,
}

/// The parameters and tables of softmax (`nn::approx::Softmax`).
#[derive(Clone, Copy, Debug)]
pub struct SoftmaxSpec<'a> {
    pub s: u32,
    pub m: u32,
    pub f: u32,
    pub j: u32,
    pub k: u32,
    pub big_k: u32,
    pub eh: &'a [u64],
    pub el: &'a [u64],
    /// The reciprocal's tables (`nn::approx::lookup_tables` of 1/x, 2^LOOKUP_IDX entries).
    pub rt: &'a [u64],
    pub rd: &'a [u64],
    /// The exponential's tables answer in the product ring of their product instead of in
    /// s + 2 bits, which saves the extension flight between the lookups and the product for
    /// 12 more bits per entry (1,128 per element at s = 12): the latency form.
    pub wide_tables: bool,
    /// Bits of scale the input carries beyond 2^s (s: the unrounded product Q·Kᵀ read
    /// directly, `nn::approx::Softmax::eval_row_from`): the maximum and the differences on
    /// m + extra bits, the digits cut `extra` bits higher.
    pub extra: u32,
}

/// A linear step run inside another protocol's flights ([`Session::layernorm_linear`]: the
/// layer on the deviations c = x − μ; [`Session::softmax_matmul`]: the product E·V): `start`
/// receives this party's shares mod 2^ℓ of its input while this party's message of a flight is
/// queued, and `finish`, called at a later point of the host protocol, returns its shares mod
/// 2^ℓ of the output (scale 2^{2s}, no bias). A one-round-trip HE step sends its query in
/// `start` (client) and answers it in `finish` (server), so both directions travel beside the
/// host protocol's own messages.
pub trait NormLinear<C: ?Sized> {
    fn start(&mut self, ch: &mut C, c: &[u64]) -> Result<(), BoxError>;
    fn finish(&mut self, ch: &mut C) -> Result<Vec<u64>, BoxError>;
}

/// The error a [`NormLinear`] returns ([`MpcError::Interleaved`]).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The parameters and tables of layer normalization (`nn::approx::LayerNorm`; the constants
/// `nn::approx::LN_*` are fixed by the protocol).
#[derive(Clone, Copy, Debug)]
pub struct LayerNormSpec<'a> {
    pub s: u32,
    pub m: u32,
    pub d: usize,
    pub t: u32,
    pub mul: u64,
    pub t2: u32,
    pub mul2: u64,
    pub eps: u64,
    /// The inverse square root's tables (`nn::approx::lookup_tables` of x^{−1/2} with parity,
    /// 2^{LOOKUP_IDX + 1} entries each).
    pub rt: &'a [u64],
    pub rd: &'a [u64],
    /// The form of the per-element truncation of c·R by 18 bits: `Tree` (fewest bits) or
    /// `Flat` (two flights fewer, 185 more bits per element at ℓ = 37, s = 12).
    pub tail: TruncForm,
    /// The party choosing in the mean's lookup (rows of a power of two): the one that knows its
    /// input share first (P0, the server, after a rescale, whose output share it picked before
    /// its last message: its choices then leave with that message).
    pub mean_chooser: Party,
}

/// The normalized lookup (`nn::approx::normalized_lookup`): index bits t, interpolation bits
/// f, table scale A; U = RT·2^{f+1} − RD·(2φ + 1) ≤ 2^{A+f+1} lives in a ring of A + f + 3 bits.
const LOOKUP_IDX: u32 = 7;
const LOOKUP_FRAC: u32 = 7;
/// Widest comparison leaf in GELU's comparisons ([`Session::wide_leaves`]).
const WIDE_LEAVES: u32 = 6;
/// The default comparison leaf (`millionaire::LEAF_BITS_MAX`).
const LEAF_BITS: u32 = crate::millionaire::LEAF_BITS_MAX;
const LOOKUP_TABLE: u32 = 18;
const LOOKUP_U_RING: u32 = LOOKUP_TABLE + LOOKUP_FRAC + 3;
/// LayerNorm's inverse square root (nn::approx::LN_*): 2^LN_V_LO ≤ V < 2^LN_V at scale 2^44,
/// H = LN_V/2 − 1, R = (U·2^{H−e/2} + 2^{k−1}) >> k with k = f + 1 + A + H − 22 − LN_SHIFT;
/// y = (c·R) >> LN_SHIFT.
const LN_V: u32 = 58;
const LN_V_LO: u32 = 24;
const LN_H: u32 = LN_V / 2 - 1;
const LN_SHIFT: u32 = 18;
const LN_V_SCALE: u32 = 44;
const LN_DROP: u32 = LOOKUP_FRAC + 1 + LOOKUP_TABLE + LN_H - LN_V_SCALE / 2 - LN_SHIFT;
/// Rings of the final product (R < 2^28) and of the mean's product.
const LN_PRODUCT_RING: u32 = LN_SHIFT + 19;
/// Ring of (E·V)·R in softmax fused with the product by V (`nn::approx::SM_LINEAR_RING`).
const SM_LINEAR_RING: u32 = 56;
/// Ring of t(u)·R in LayerNorm fused with a linear layer (`nn::approx::LN_LINEAR_RING`).
const LN_LINEAR_RING: u32 = 48;
const LN_WIDE_RING: u32 = 64;

impl LayerNormSpec<'_> {
    /// Bits w of t(u) in LayerNorm fused with a linear layer (`nn::approx::LayerNorm::linear_bits`).
    fn linear_bits(&self) -> u32 {
        self.m + 4
    }
    fn square_ring(&self) -> u32 {
        // c² < 2^{2(m−2)}, summed over D ≤ 512 values, non-negative (below half the ring).
        2 * (self.m - 2) + 10
    }
    /// [`LayerNormSpec::check`], and that the fused layer's rescale fits: t(u) is read mod
    /// 2^w with the wrap term 2^{ℓ−s} vanishing (ℓ ≥ s + w) and its carry B2A'd in the lookup's
    /// ring (w ≤ its bits).
    fn check_linear(&self, ell: u32) -> Result<()> {
        self.check(ell)?;
        let ruq = self.norm().rings()?.2;
        if ell < self.s + self.linear_bits() || self.linear_bits() > ruq.bits() {
            return Err(bad(
                "LayerNorm → linear",
                "needs ell >= 2s + 12 (and s <= 16)",
            ));
        }
        Ok(())
    }
    fn check(&self, ell: u32) -> Result<()> {
        let w = "LayerNorm";
        if self.d == 0 || self.d > 512 {
            return Err(bad(w, "rows of 1 to 512 values"));
        }
        if self.s + 8 != self.m || self.m + 2 > ell || self.s < 8 || self.s > 16 {
            return Err(bad(w, "need 8 <= s <= 16, m = s + 8 and m + 2 <= ell"));
        }
        let mul2_max = 1u64 << (LN_V_SCALE - 2 * self.s);
        if self.t != 40 || self.t2 != LN_V_LO || self.mul > 1 << 40 || self.mul2 > mul2_max {
            return Err(bad(
                w,
                "mean and variance scales must be those of nn::approx",
            ));
        }
        let entries = 1usize << (LOOKUP_IDX + 1);
        if self.rt.len() != entries || self.rd.len() != entries {
            return Err(bad(w, "tables must have 2^(t+1) entries"));
        }
        if self.eps == 0 || self.eps > 1 << 31 {
            return Err(bad(w, "eps must be 1 to 2^31 units of 2^-20"));
        }
        // U = RT·2^{f+1} − RD·(2φ + 1) must stay in [0, 2^{A+f+1}].
        check_tables(w, self.rt, self.rd, entries)
    }

    /// log2 of M2 when V = Q2·M2 + ε·2^24 is Q2' · 2^z exactly (M2 = 2^z, which it is for
    /// rows of a power of two, and 2^z divides ε·2^24), else 0. The lookup then runs on
    /// Q2' = Q2 + ε·2^{24−z}, z bits narrower: V's low z bits are known zeros, so every
    /// comparison [V ≥ 2^i] and window of V is the same one of Q2' at bit i − z.
    fn v_shift(&self) -> u32 {
        let z = self.mul2.trailing_zeros();
        if self.mul2.is_power_of_two() && z <= self.t2 && z < LN_V_LO {
            z
        } else {
            0
        }
    }

    /// The inverse square root as a normalized lookup on V / 2^z ([`LayerNormSpec::v_shift`]).
    fn norm(&self) -> Norm<'_> {
        let z = self.v_shift();
        Norm {
            bits: LN_V - z,
            e_lo: LN_V_LO - z,
            e_shift: z,
            wide_leaves: false,
            parity: true,
            rt: self.rt,
            rd: self.rd,
            q_top: LN_H,
            drop: LN_DROP,
        }
    }
}

fn bad(what: &'static str, reason: &'static str) -> MpcError {
    MpcError::InvalidSpec { what, reason }
}

/// Tables of a normalized lookup: `entries` each, RT ≤ 2^A and RD ≤ RT (so that
/// 0 ≤ U ≤ 2^{A+f+1}).
fn check_tables(what: &'static str, rt: &[u64], rd: &[u64], entries: usize) -> Result<()> {
    if rt.len() != entries || rd.len() != entries {
        return Err(bad(
            what,
            "lookup tables must have 2^t entries (2^(t+1) with parity)",
        ));
    }
    if rt
        .iter()
        .zip(rd)
        .any(|(&t, &d)| t > 1 << LOOKUP_TABLE || d > t)
    {
        return Err(bad(what, "lookup table entries out of range"));
    }
    Ok(())
}

/// A normalized lookup (`nn::approx::normalized_lookup`) followed by the scaling
/// R = (U·2^{q(e)} + 2^{drop−1}) >> drop, q(e) = q_top − e/2 with `parity`, q_top − e without.
struct Norm<'a> {
    /// The inputs lie in [0, 2^bits); e is clamped below at e_lo.
    bits: u32,
    e_lo: u32,
    /// The function's input is the protocol's input times 2^e_shift: its exponent is
    /// e + e_shift (for q(e) and the parity), its bits are the same.
    e_shift: u32,
    /// Comparison leaves of up to [`WIDE_LEAVES`] bits in step 1's batch: one tree level less
    /// for more bits per row (softmax's rows take it: two hops fewer per call; LayerNorm's
    /// gain none in the CIFAR ViT and its bits are at the SPU bound).
    wide_leaves: bool,
    parity: bool,
    rt: &'a [u64],
    rd: &'a [u64],
    q_top: u32,
    drop: u32,
}

impl Norm<'_> {
    /// log2 of the power the looked-up value is scaled by, for the protocol's exponent e.
    fn q_log(&self, e: u32) -> u32 {
        let e = e + self.e_shift;
        self.q_top - if self.parity { e / 2 } else { e }
    }
    /// Rings: the inputs' comparisons (V − 2^i does not wrap), the index, U·2^{q(e)}.
    fn rings(&self) -> Result<(Ring, Ring, Ring)> {
        Ok((
            Ring::new(self.bits + 2)?,
            Ring::new(LOOKUP_IDX + self.parity as u32)?,
            Ring::new(LOOKUP_U_RING + self.q_log(self.e_lo))?,
        ))
    }
}

impl GeluSpec<'_> {
    fn check(&self, ell: u32) -> Result<()> {
        let w = "GELU";
        if self.f >= self.s || self.s >= self.m || self.m > ell || self.e == 0 {
            return Err(bad(w, "need f < s < m <= ell and e >= 1"));
        }
        let sh = self.s - self.f;
        let index_fits = if self.signed {
            self.j + sh < self.m - 1
        } else {
            self.j < self.m - sh - 1
        };
        if self.j == 0 || self.j > 12 || !index_fits {
            return Err(bad(
                w,
                "index bits j must be 1 to 12 and fit the reduced ring",
            ));
        }
        if self.a.len() != 1 << self.j || self.b.len() != 1 << self.j {
            return Err(bad(w, "tables must have 2^j entries"));
        }
        if self.product_bits > 64 || self.product_bits < sh + self.e + 2 {
            return Err(bad(w, "product ring too small or above 64 bits"));
        }
        // The truncated value stays in [0, 2^{p−1}) for every entry and frac < 2^sh: Abs
        // B·frac + 2^{sh+e−1} with B ≥ 0; Signed W⁺ = A·2^{sh+e} + B⁺·frac + 2^{sh+e−1} with
        // B⁺ = B + 2^{sh+e+1} in [0, 2^{sh+e+2}) (`Session::gelu`).
        let (half, top) = (1i128 << (sh + self.e - 1), mask(sh) as i128);
        let (limit, off) = (1i128 << (self.product_bits - 1), 1i128 << (sh + self.e + 1));
        let fits = self.a.iter().zip(self.b).all(|(&a, &b)| {
            if self.signed {
                let (c, bp) = ((a as i128) << (sh + self.e), b as i128 + off);
                (0..2 * off).contains(&bp) && c + half >= 0 && c + bp * top + half < limit
            } else {
                let h = 1i64 << self.s;
                b >= 0 && b as i128 * top + half < limit && (-h..h).contains(&a)
            }
        });
        if !fits {
            return Err(bad(
                w,
                "tables leave the product outside its ring's non-negative half",
            ));
        }
        Ok(())
    }
}

impl SoftmaxSpec<'_> {
    /// Ring of E, of the row sums and of E·R (R ≤ 2^{K−s+1}, E < 2^s).
    fn product_bits(&self) -> u32 {
        self.big_k + 2
    }
    /// The reciprocal as a normalized lookup: S < 2^{s+10}, e ≥ s − 1,
    /// R = (U·2^{s+9−e} + 2^{k−1}) >> k ≈ 2^K / S.
    fn norm(&self) -> Norm<'_> {
        Norm {
            bits: self.s + 10,
            e_lo: self.s - 1,
            e_shift: 0,
            wide_leaves: true,
            parity: false,
            rt: self.rt,
            rd: self.rd,
            q_top: self.s + 9,
            drop: LOOKUP_TABLE + LOOKUP_FRAC + 1 + 9 - (self.big_k - self.s),
        }
    }
    fn check(&self, ell: u32, row: usize) -> Result<()> {
        let w = "softmax";
        if row == 0 || row > 512 {
            return Err(bad(w, "rows of 1 to 512 values"));
        }
        if self.f >= self.s || self.s >= self.m || self.m > ell || 2 * self.s + 2 > 64 {
            return Err(bad(w, "need f < s < m <= ell and 2s + 2 <= 64"));
        }
        if self.extra > self.s || self.m + self.extra > ell {
            return Err(bad(w, "need extra <= s and m + extra <= ell"));
        }
        if self.k == 0
            || self.k >= self.j
            || self.j >= self.m - (self.s - self.f) - 1
            || self.j > 16
        {
            return Err(bad(w, "need 0 < k < j < m - s + f - 1 and j <= 16"));
        }
        if self.j - self.k < 2 || self.k > 12 || self.j - self.k > 12 {
            return Err(bad(w, "table digits must have 2 to 12 bits"));
        }
        if self.eh.len() != 1 << (self.j - self.k) || self.el.len() != 1 << self.k {
            return Err(bad(w, "tables must have 2^(j-k) and 2^k entries"));
        }
        if self.eh.iter().chain(self.el).any(|&v| v > 1 << self.s) {
            return Err(bad(w, "table entries must be at most 2^s"));
        }
        if self.big_k < self.s + 10 || self.big_k - self.s > 30 || self.big_k + 2 > 64 {
            return Err(bad(w, "reciprocal scale K must be s + 10 to s + 30"));
        }
        check_tables(w, self.rt, self.rd, 1 << LOOKUP_IDX)?;
        Ok(())
    }
}

impl Session {
    /// Runs `f` with comparison leaves of up to [`WIDE_LEAVES`] bits
    /// (`Session::set_comparison_leaves`): for GELU's two comparisons on 19 bits, one tree level
    /// (one flight) less each, at about 300 bits more per element (its budget against SPU allows
    /// it, LayerNorm's does not). Softmax's comparisons gain no hop from it on the CIFAR ViT
    /// (measured: the tournament's and the digit carries' flights are not on its critical path)
    /// and keep the narrow leaves.
    fn wide_leaves<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        let before = self.comparison_leaves();
        self.set_comparison_leaves(WIDE_LEAVES);
        let r = f(self);
        self.set_comparison_leaves(before);
        r
    }

    /// Runs `f` with P0 choosing in the leaf OTs of its comparisons (`set_comparison_chooser`),
    /// then restores P1, also on error. Used where P0 completes the flight before the
    /// comparison first, so that its leaf choices leave a hop earlier; the result is the same.
    fn p0_choosing<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        self.set_comparison_chooser(Party::P0);
        let r = f(self);
        self.set_comparison_chooser(Party::P1);
        r
    }

    /// Shares in `out` of `table[(i0 + i1) mod 2^k]`, the index shared mod 2^k (one 1-of-2^k
    /// OT per element, P1 choosing). Both parties pass the same public table.
    pub fn lut<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        idx: &[u64],
        k: u32,
        table: &[u64],
        out: Ring,
    ) -> Result<Vec<u64>> {
        if !(1..=12).contains(&k) || table.len() != 1 << k {
            return Err(bad(
                "lookup",
                "need 1 <= k <= 12 and a table of 2^k entries",
            ));
        }
        Ok(self.luts(ch, &[(idx, k, out, &|_, j| table[j])])?.remove(0))
    }

    /// Several lookups (index shares, index bits, output ring, table) in one flight each way,
    /// P1 choosing.
    fn luts<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        reqs: &[Lookup<'_>],
    ) -> Result<Vec<Vec<u64>>> {
        self.luts_by(ch, reqs, Party::P1)
    }

    /// [`Session::luts`] with `chooser` choosing (the other party offers its tables).
    fn luts_by<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        reqs: &[Lookup<'_>],
        chooser: Party,
    ) -> Result<Vec<Vec<u64>>> {
        if reqs.iter().any(|r| !(1..=12).contains(&r.1)) {
            return Err(bad(
                "lookup",
                "need 1 <= k <= 12 and a table of 2^k entries",
            ));
        }
        let choice_bits: u64 = reqs.iter().map(|r| r.0.len() as u64 * r.1 as u64).sum();
        let cots = choice_bits as usize;
        let group = |r: &Lookup<'_>| Group::Pow2(r.2.bits());
        match self.party() == chooser {
            true => {
                let (_, mut rc) = self.cots(ch, 0, cots)?;
                let mut wr = BitWriter::default();
                let states: Vec<_> = reqs
                    .iter()
                    .map(|r| {
                        let c: Vec<u64> = r.0.iter().map(|&v| v & mask(r.1)).collect();
                        one_of_n_choose(&mut rc, r.1, group(r), &c, &mut wr)
                    })
                    .collect();
                self.send(ch, wr.finish())?;
                let bits: u64 = reqs
                    .iter()
                    .map(|r| one_of_n_answer_bits(r.0.len(), r.1, group(r)))
                    .sum();
                let got = crate::bits::recv_bits(ch, bits, "lookup answer")?;
                let mut rd = BitReader::new(&got, bits, "lookup answer")?;
                states
                    .into_iter()
                    .map(|st| st.finish(&mut rd, "lookup answer"))
                    .collect()
            }
            false => {
                let (mut sc, _) = self.cots(ch, cots, 0)?;
                let got = crate::bits::recv_bits(ch, choice_bits, "lookup choices")?;
                let mut rd = BitReader::new(&got, choice_bits, "lookup choices")?;
                let mut wr = BitWriter::default();
                let sh = reqs
                    .iter()
                    .map(|&(idx, k, out, table)| {
                        let tab = |i: usize, v: u64| {
                            out.reduce(table(i, ((idx[i] + v) & mask(k)) as usize))
                        };
                        one_of_n_send(
                            &mut sc,
                            k,
                            group(&(idx, k, out, table)),
                            idx.len(),
                            &mut rd,
                            &tab,
                            &mut wr,
                        )
                    })
                    .collect();
                self.send(ch, wr.finish())?;
                Ok(sh)
            }
        }
    }

    /// Lookups in both directions in one flight each way: each request names the party that
    /// chooses in it (the other offers its table); both parties send their choices at once,
    /// then their answers. Every party passes its own index shares and its own table. Returns
    /// this party's output shares of each request, in order.
    fn luts_both<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        reqs: &[(Lookup<'_>, Party)],
    ) -> Result<Vec<Vec<u64>>> {
        if reqs.iter().any(|(r, _)| !(1..=12).contains(&r.1)) {
            return Err(bad(
                "lookup",
                "need 1 <= k <= 12 and a table of 2^k entries",
            ));
        }
        let me = self.party();
        let group = |r: &Lookup<'_>| Group::Pow2(r.2.bits());
        let bits_of = |chooser: Party| -> u64 {
            reqs.iter()
                .filter(|(_, c)| *c == chooser)
                .map(|(r, _)| r.0.len() as u64 * r.1 as u64)
                .sum()
        };
        let peer = match me {
            Party::P0 => Party::P1,
            Party::P1 => Party::P0,
        };
        let (mine_bits, peer_bits) = (bits_of(me), bits_of(peer));
        let (mut sc, mut rc) = self.cots(ch, peer_bits as usize, mine_bits as usize)?;
        // Flight 1: this party's choices in the lookups it chooses in.
        let mut w1 = BitWriter::default();
        let mut states = Vec::new();
        for (r, _) in reqs.iter().filter(|(_, c)| *c == me) {
            let c: Vec<u64> = r.0.iter().map(|&v| v & mask(r.1)).collect();
            states.push(one_of_n_choose(&mut rc, r.1, group(r), &c, &mut w1));
        }
        let got = self.exchange(ch, w1.finish(), peer_bits, "lookup choices")?;
        let mut rd = BitReader::new(&got, peer_bits, "lookup choices")?;
        // Flight 2: the answers of the lookups it offers.
        let mut w2 = BitWriter::default();
        let mut out: Vec<Option<Vec<u64>>> = vec![None; reqs.len()];
        for (at, (r, _)) in reqs.iter().enumerate().filter(|(_, (_, c))| *c == peer) {
            let &(idx, k, ring, table) = r;
            let tab = |i: usize, v: u64| ring.reduce(table(i, ((idx[i] + v) & mask(k)) as usize));
            out[at] = Some(one_of_n_send(
                &mut sc,
                k,
                group(r),
                idx.len(),
                &mut rd,
                &tab,
                &mut w2,
            ));
        }
        let answer_bits: u64 = reqs
            .iter()
            .filter(|(_, c)| *c == me)
            .map(|(r, _)| one_of_n_answer_bits(r.0.len(), r.1, group(r)))
            .sum();
        let got = self.exchange(ch, w2.finish(), answer_bits, "lookup answers")?;
        let mut rd = BitReader::new(&got, answer_bits, "lookup answers")?;
        let mut states = states.into_iter();
        for (at, _) in reqs.iter().enumerate().filter(|(_, (_, c))| *c == me) {
            let st = states.next().expect("one state per chosen lookup");
            out[at] = Some(st.finish(&mut rd, "lookup answers")?);
        }
        Ok(out.into_iter().map(|v| v.unwrap_or_default()).collect())
    }

    /// XOR shares of the carries into bits `split` and `bits` of `x0 + x1` (`0 < split < bits`;
    /// `split = 0`: only the carry into `bits`, returned twice).
    fn carries<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        x: &[u64],
        bits: u32,
        split: u32,
    ) -> Result<(Vec<u8>, Vec<u8>)> {
        let v = self.carry_inputs(x, bits);
        self.compare(ch, &v, bits, split)
    }

    /// [`carries`](Self::carries)`(x, top, split)` and, in the same comparison, XOR shares of
    /// `[y < bound]` over `ring` for every y (whose signed value `y − bound` does not wrap): each
    /// x's window is shifted to the top of the ring's ℓ − 1 bits, where its carries are the
    /// comparison's top and split carries, next to the sign comparison of `y − bound`. One tree
    /// instead of two in sequence. Requires `split < top ≤ ℓ − 1` (or `split = 0`).
    fn carries_and_below<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        x: &[u64],
        (top, split): (u32, u32),
        ring: Ring,
        y: &[u64],
        bound: u64,
    ) -> Result<(Vec<u8>, Vec<u8>, Vec<u8>)> {
        let p0 = self.party() == Party::P0;
        let cb = ring.bits() - 1;
        let up = cb - top;
        let vals: Vec<u64> = x
            .iter()
            .map(|&v| (v & mask(top)) << up)
            .chain(y.iter().map(|&v| {
                if p0 {
                    ring.sub(v, ring.reduce(bound))
                } else {
                    v
                }
            }))
            .collect();
        let (hi, lo) = self.carries(ch, &vals, cb, if split > 0 { split + up } else { 0 })?;
        let n = x.len();
        // [y < bound] = msb(y − bound) = msb(y0') ⊕ msb(y1) ⊕ carry.
        let below = (0..y.len())
            .map(|i| ring.msb(vals[n + i]) ^ hi[n + i])
            .collect();
        // (With split = 0, `carries` returns the top carry twice.)
        Ok((hi[..n].to_vec(), lo[..n].to_vec(), below))
    }

    /// Shares in `out` of `floor(x / 2^k)` for values known to lie in [0, 2^{b−1}), b the bits
    /// of `x.ring` (`k = 0`: an extension to a wider ring). The scale drops by k.
    pub fn trunc_nonneg<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        x: &Shares,
        k: u32,
        out: Ring,
    ) -> Result<Shares> {
        self.trunc_nonneg_form(ch, x, k, out, TruncForm::Tree)
    }

    /// [`trunc_nonneg`](Self::trunc_nonneg) with the carry computed in `form` (the same result;
    /// [`TruncForm::Flat`]: its comparison's join inside the B2A, fewer flights for more bits).
    pub(crate) fn trunc_nonneg_form<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        x: &Shares,
        k: u32,
        out: Ring,
        form: TruncForm,
    ) -> Result<Shares> {
        let b = x.ring.bits();
        x.ring.check("trunc_nonneg input", &x.data)?;
        if k + 1 >= b {
            return Err(MpcError::InvalidShift {
                shift: k,
                bits: b,
                max: b - 2,
            });
        }
        let mut data: Vec<u64> = x.data.iter().map(|&v| out.reduce(v >> k)).collect();
        let hi = b - k;
        let msb: Vec<u8> = x.data.iter().map(|&v| x.ring.msb(v)).collect();
        let g_or = Group::Pow2(out.bits().saturating_sub(hi).max(1));
        // The carry's B2A and the wrap's OR in one flight when both are needed.
        let (ca, w) = match (k >= 1, hi < out.bits()) {
            (true, wrap) => {
                let m: &[u8] = if wrap { &msb } else { &[] };
                let (ca, w) = if form.is_flat_at(k) {
                    let v = self.carry_inputs(&x.data, k);
                    let (h, e, g) = self.compare_flat(ch, &v, k)?;
                    self.join_b2a_or(ch, out, &h, &e, &g, m, g_or)?
                } else {
                    let (c, _) = self.carries(ch, &x.data, k, 0)?;
                    self.b2a_or(ch, out, &c, m, g_or)?
                };
                (Some(ca), wrap.then_some(w))
            }
            (false, true) => (None, Some(self.or_shares(ch, &msb, g_or)?)),
            (false, false) => (None, None),
        };
        for (i, d) in data.iter_mut().enumerate() {
            if let Some(ca) = &ca {
                *d = out.add(*d, ca[i]);
            }
            if let Some(w) = &w {
                *d = out.sub(*d, out.reduce(w[i] << hi));
            }
        }
        Ok(Shares {
            ring: out,
            scale: x.scale.saturating_sub(k),
            data,
        })
    }

    /// [`trunc_nonneg`](Self::trunc_nonneg) by one 1-of-2^{k+1} OT per element instead of a
    /// comparison tree: `chooser` chooses by its share's msb and low k bits, the other party's
    /// table holds, for each choice, its carry into bit k and the wrap `msb(x0) ∨ msb(x1)` as
    /// one value of `out`. Two flights in all; the table makes it a protocol for few elements
    /// (per-row values) and k ≤ 11.
    fn trunc_nonneg_lookup<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        x: &Shares,
        k: u32,
        out: Ring,
        chooser: Party,
    ) -> Result<Shares> {
        let b = x.ring.bits();
        x.ring.check("trunc_nonneg input", &x.data)?;
        if k == 0 || k > 11 || k + 1 >= b {
            return Err(bad(
                "lookup truncation",
                "need 1 <= k <= 11 and k + 2 <= ring bits",
            ));
        }
        let chooses = self.party() == chooser;
        let hi = b - k;
        let own: Vec<u64> = x
            .data
            .iter()
            .map(|&v| (x.ring.msb(v) as u64) << k | (v & mask(k)))
            .collect();
        // The offering party's index share is 0, so the OT index is the chooser's (msb, low
        // bits) itself; the table reads the offering party's own share.
        let idx: Vec<u64> = if chooses { own } else { vec![0; x.len()] };
        let table = |i: usize, j: usize| -> u64 {
            let (x0, j) = (x.data[i], j as u64);
            let carry = (((x0 & mask(k)) + (j & mask(k))) >> k) & 1;
            let wrap = x.ring.msb(x0) as u64 | j >> k;
            let w = if hi < out.bits() {
                out.reduce(wrap << hi)
            } else {
                0
            };
            out.sub(carry, w)
        };
        let t = self
            .luts_by(ch, &[(&idx, k + 1, out, &table)], chooser)?
            .remove(0);
        Ok(Shares {
            ring: out,
            scale: x.scale.saturating_sub(k),
            data: x
                .data
                .iter()
                .zip(&t)
                .map(|(&v, &c)| out.add(out.reduce(v >> k), c))
                .collect(),
        })
    }

    /// Sign extension into `out` of values with |x| < 2^{w−2} shared mod 2^w.
    fn extend_signed<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        x: &Shares,
        out: Ring,
    ) -> Result<Shares> {
        let off = 1u64 << (x.ring.bits() - 2);
        let p0 = self.party() == Party::P0;
        let u = Shares {
            data: offset_by_p0(x, p0, off),
            ..*x
        };
        let mut e = self.trunc_nonneg(ch, &u, 0, out)?;
        if p0 {
            e.data.iter_mut().for_each(|v| *v = out.sub(*v, off));
        }
        Ok(e)
    }

    /// GELU of shares at scale 2^s (output at scale 2^s), equal to `nn::approx::Gelu::eval` in
    /// the spec's form (docs/protocols/transformer.md § GELU). Signed: one comparison batch on
    /// x' = x + 4 (the carry into bit sh and the signs of x' and x − 4), the carry's B2A, the
    /// two tables at the segment index, the slope product, one truncation of W straight into
    /// Z_{2^ℓ}, and y = ge·(x + lt·h) by one 1-of-4 OT each way.
    pub fn gelu<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        x: &Shares,
        spec: &GeluSpec<'_>,
    ) -> Result<Shares> {
        spec.check(x.ring.bits())?;
        x.ring.check("gelu input", &x.data)?;
        if spec.signed {
            self.gelu_signed(ch, x, spec)
        } else {
            self.gelu_abs(ch, x, spec)
        }
    }

    /// GELU's Abs form: the sign (DReLU) and ReLU first, then |x|'s digit carry and clip in one
    /// comparison, the two 64-entry tables, the slope product, h in s + 1 bits, g·h by a MUX
    /// and its extension into Z_{2^ℓ}.
    fn gelu_abs<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        x: &Shares,
        spec: &GeluSpec<'_>,
    ) -> Result<Shares> {
        let lr = x.ring;
        let p0 = self.party() == Party::P0;
        let (s, m, f, j, e) = (spec.s, spec.m, spec.f, spec.j, spec.e);
        let sh = s - f;
        let (rm, rq, rp, rh) = (
            Ring::new(m)?,
            Ring::new(m - sh)?,
            Ring::new(spec.product_bits)?,
            Ring::new(s + 1)?,
        );
        // Sign on the reduced ring, ReLU in Z_{2^ℓ}, |x| mod 2^m = 2·ReLU(x) − x.
        let xm: Vec<u64> = x.data.iter().map(|&v| rm.reduce(v)).collect();
        self.set_comparison_chooser(spec.chooser);
        let d = self.wide_leaves(|se| se.drelu(ch, rm, &xm));
        self.set_comparison_chooser(Party::P1);
        let d = d?;
        let r = self.mux(ch, lr, &d, &x.data)?;
        let a: Vec<u64> = r
            .iter()
            .zip(&x.data)
            .map(|(&ri, &xi)| rm.sub(rm.reduce(ri.wrapping_mul(2)), rm.reduce(xi)))
            .collect();
        // Segment index q = a >> sh (mod 2^{m−sh}) and offset frac = a mod 2^sh.
        // The carry into bit sh and g = [a < 2^{j+sh}] (= [q < 2^j]) in one comparison.
        let (c, _, g) =
            self.wide_leaves(|se| se.carries_and_below(ch, &a, (sh, 0), rm, &a, 1 << (j + sh)))?;
        let cp = self.b2a(ch, rp, &c)?;
        // Index q mod 2^j with q = a >> sh plus the carry; both tables in one flight.
        let idx: Vec<u64> = a
            .iter()
            .zip(&cp)
            .map(|(&ai, &ci)| rq.add(ai >> sh, rq.reduce(ci)) & mask(j))
            .collect();
        let ta = |_, v: usize| rh.from_signed(spec.a[v]);
        let tb = |_, v: usize| spec.b[v] as u64;
        let mut tab = self.luts(ch, &[(&idx, j, rh, &ta), (&idx, j, rp, &tb)])?;
        let (bv, av) = (tab.pop().unwrap_or_default(), tab.pop().unwrap_or_default());
        // Offset frac = a mod 2^sh (its carry subtracted in the product ring).
        let frac: Vec<u64> = a
            .iter()
            .zip(&cp)
            .map(|(&ai, &ci)| rp.sub(ai & mask(sh), rp.reduce(ci << sh)))
            .collect();
        let prod = self.mul(
            ch,
            &Shares::new(rp, 0, bv)?,
            &Shares::new(rp, 0, frac.clone())?,
        )?;
        // Round to nearest: P0 adds half of the dropped unit (B·frac + 2^{sh+e−1} < 2^{pb−1}).
        let half = 1u64 << (sh + e - 1);
        let prod = Shares {
            data: offset_by_p0(&prod, p0, half),
            ..prod
        };
        let t = self.trunc_nonneg_form(ch, &prod, sh + e, rh, TruncForm::Flat)?;
        let h: Vec<u64> = (0..x.len())
            .map(|i| rh.sub(rh.add(av[i], t.data[i]), rh.reduce(frac[i])))
            .collect();
        let gh = self.mux(ch, rh, &g, &h)?;
        let ghl = self.extend_signed(ch, &Shares::new(rh, 0, gh)?, lr)?;
        Ok(Shares {
            ring: lr,
            scale: x.scale,
            data: r
                .iter()
                .zip(&ghl.data)
                .map(|(&a, &b)| lr.sub(a, b))
                .collect(),
        })
    }

    /// GELU's Signed form (docs/protocols/transformer.md § GELU).
    fn gelu_signed<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        x: &Shares,
        spec: &GeluSpec<'_>,
    ) -> Result<Shares> {
        let lr = x.ring;
        let p0 = self.party() == Party::P0;
        let (s, m, f, j, e) = (spec.s, spec.m, spec.f, spec.j, spec.e);
        let sh = s - f;
        let (rm, rp) = (Ring::new(m)?, Ring::new(spec.product_bits)?);
        let (n, cb, c) = (x.len(), m - 1, 1u64 << (j + sh - 1));
        // x' = xm + c and xm − c on the reduced ring (P0 adds the constants).
        let xp: Vec<u64> = x
            .data
            .iter()
            .map(|&v| add0r(rm, p0, rm.reduce(v), c))
            .collect();
        let xl: Vec<u64> = x
            .data
            .iter()
            .map(|&v| add0r(rm, p0, rm.reduce(v), rm.sub(0, c)))
            .collect();
        // One batch of carries into bit m − 1: of x''s low sh bits moved to the top (the carry
        // into bit sh), of x' and of xm − c (their signs: msb = msb(v0) ⊕ msb(v1) ⊕ carry).
        let vals: Vec<u64> = xp
            .iter()
            .map(|&v| (v & mask(sh)) << (cb - sh))
            .chain(xp.iter().copied())
            .chain(xl.iter().copied())
            .collect();
        self.set_comparison_chooser(spec.chooser);
        let carries = self.wide_leaves(|se| se.carries(ch, &vals, cb, 0));
        self.set_comparison_chooser(Party::P1);
        let (hi, _) = carries?;
        let ge: Vec<u8> = (0..n)
            .map(|i| rm.msb(xp[i]) ^ hi[n + i] ^ p0 as u8)
            .collect();
        let lt: Vec<u8> = (0..n).map(|i| rm.msb(xl[i]) ^ hi[2 * n + i]).collect();
        // i = (x' >> sh) + carry mod 2^j; frac = x' mod 2^sh = (x'0 mod 2^sh) + (x'1 mod 2^sh)
        // − carry·2^sh, shared in both Z_{2^p} and Z_{2^ℓ} (the carry's B2A into the wider).
        let rc = if rp.bits() > lr.bits() { rp } else { lr };
        let ca = self.b2a(ch, rc, &hi[..n])?;
        let idx: Vec<u64> = (0..n)
            .map(|i| ((xp[i] >> sh).wrapping_add(ca[i])) & mask(j))
            .collect();
        let frac: Vec<u64> = (0..n)
            .map(|i| rc.sub(xp[i] & mask(sh), rc.reduce(ca[i] << sh)))
            .collect();
        // A looked up mod 2^{p−sh−e} (its shares times 2^{sh+e} are shares mod 2^p of
        // A·2^{sh+e}), B⁺ = B + 2^{sh+e+1} mod 2^{sh+e+3} (non-negative below half: the small
        // factor of the product with frac mod 2^p).
        let (ra, rb) = (Ring::new(rp.bits() - sh - e)?, Ring::new(sh + e + 3)?);
        let off = 1i64 << (sh + e + 1);
        let (ta, tb) = (
            |_, v: usize| spec.a[v] as u64,
            |_, v: usize| (spec.b[v] + off) as u64,
        );
        let mut tab = self.luts(ch, &[(&idx, j, ra, &ta), (&idx, j, rb, &tb)])?;
        let (bv, av) = (tab.pop().unwrap_or_default(), tab.pop().unwrap_or_default());
        let fp: Vec<u64> = frac.iter().map(|&v| rp.reduce(v)).collect();
        let prod = self.mul_nonneg_small(ch, &Shares::new(rb, 0, bv)?, &Shares::new(rp, 0, fp)?)?;
        let half = 1u64 << (sh + e - 1);
        let w: Vec<u64> = (0..n)
            .map(|i| add0r(rp, p0, rp.add(prod[i], rp.reduce(av[i] << (sh + e))), half))
            .collect();
        let t = self.trunc_nonneg_form(ch, &Shares::new(rp, 0, w)?, sh + e, lr, TruncForm::Flat)?;
        // h = (W⁺ >> (sh + e)) − 2^{s−1} − 2·frac.
        let h: Vec<u64> = (0..n)
            .map(|i| {
                let v = lr.sub(t.data[i], lr.reduce(frac[i] << 1));
                add0r(lr, p0, v, lr.sub(0, 1 << (s - 1)))
            })
            .collect();
        let y = self.gated_sum(ch, lr, &ge, &lt, &x.data, &h)?;
        Ok(Shares {
            ring: lr,
            scale: x.scale,
            data: y,
        })
    }

    /// y = a·(x + b·h) for XOR-shared bits a, b and x, h shared mod `ring`: each party offers,
    /// for every value of the peer's two bits, (a_own ⊕ v_a)·(x_own + (b_own ⊕ v_b)·h_own) by
    /// a 1-of-4 OT, both directions in one flight each way (choices, then answers).
    fn gated_sum<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        ring: Ring,
        a: &[u8],
        b: &[u8],
        x: &[u64],
        h: &[u64],
    ) -> Result<Vec<u64>> {
        let n = x.len();
        if a.len() != n || b.len() != n || h.len() != n {
            return Err(MpcError::LengthMismatch {
                what: "gated sum",
                expected: n,
                got: a.len().min(b.len()).min(h.len()),
            });
        }
        let g = Group::Pow2(ring.bits());
        let (mut sc, mut rc) = self.cots(ch, 2 * n, 2 * n)?;
        let mut w1 = BitWriter::default();
        let c: Vec<u64> = (0..n)
            .map(|i| (a[i] & 1) as u64 | ((b[i] & 1) as u64) << 1)
            .collect();
        let st = one_of_n_choose(&mut rc, 2, g, &c, &mut w1);
        let got = self.exchange(ch, w1.finish(), 2 * n as u64, "gated sum choices")?;
        let mut rd = BitReader::new(&got, 2 * n as u64, "gated sum choices")?;
        let tab = |i: usize, v: u64| {
            let (av, bv) = ((a[i] as u64 ^ v) & 1, (b[i] as u64 ^ (v >> 1)) & 1);
            ring.mul(
                ring.reduce(av),
                ring.add(x[i], ring.mul(ring.reduce(bv), h[i])),
            )
        };
        let mut w2 = BitWriter::default();
        let own = one_of_n_send(&mut sc, 2, g, n, &mut rd, &tab, &mut w2);
        let bits = one_of_n_answer_bits(n, 2, g);
        let got = self.exchange(ch, w2.finish(), bits, "gated sum answers")?;
        let mut rd = BitReader::new(&got, bits, "gated sum answers")?;
        let peer = st.finish(&mut rd, "gated sum answers")?;
        Ok(own
            .iter()
            .zip(&peer)
            .map(|(&u, &v)| ring.add(u, v))
            .collect())
    }

    /// Softmax of each row of `row` consecutive values, shares at scale 2^s in and out, equal
    /// to `nn::approx::Softmax::eval_row`.
    pub fn softmax<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        x: &Shares,
        row: usize,
        spec: &SoftmaxSpec<'_>,
    ) -> Result<Shares> {
        let (s, lr, n) = (spec.s, x.ring, x.len());
        let ry = Ring::new(spec.product_bits())?;
        let (ge, sums) = self.softmax_front(ch, x, row, spec, ry)?;
        let norm = spec.norm();
        // From here on P0 chooses in every comparison (`normalized_rows`).
        let mut y = self.p0_choosing(|se| {
            let recip = se
                .normalized_rows(ch, &sums, &norm, ry, (&[], 0), &mut |_, _| Ok(()))?
                .0;
            let ey = Shares {
                ring: ry,
                scale: s,
                data: ge,
            };
            let ry_rows = Shares {
                ring: ry,
                scale: spec.big_k - s,
                data: (0..n).map(|i| recip[i / row]).collect(),
            };
            let prod = se.mul(ch, &ey, &ry_rows)?;
            se.trunc_nonneg_form(ch, &prod, spec.big_k - s, lr, TruncForm::Flat)
        })?;
        y.scale = s;
        Ok(y)
    }

    /// Softmax fused with the product by V that reads it, equal to
    /// `nn::approx::Softmax::matmul_output` (docs/protocols/transformer.md § Softmax → product):
    /// the clipped exponentials E go to `lin`, which returns this party's shares mod 2^ℓ of
    /// p = E·V (`out` values per row, scale 2^{2s}) — its query leaves inside the reciprocal's
    /// flights and its answer comes back inside them — then y = (p·R) >> K per output.
    pub fn softmax_matmul<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        x: &Shares,
        row: usize,
        spec: &SoftmaxSpec<'_>,
        lin: &mut dyn NormLinear<C>,
        out: usize,
    ) -> Result<Shares> {
        let lr = x.ring;
        self.prefetch_cost(ch, softmax_matmul_cost(spec, lr.bits(), x.len(), row, out)?)?;
        let (ge, sums) = self.softmax_front(ch, x, row, spec, lr)?;
        let p0 = self.party() == Party::P0;
        let rb = Ring::new(SM_LINEAR_RING)?;
        let norm = spec.norm();
        // Client: its query with its message of the carries' B2A, the answer read inside the
        // selection flight; server: the query read and answered after the B2A flight.
        let mut p = None;
        let mut hooks = |ch: &mut C, at: RowsHook| -> Result<()> {
            match (at, p0) {
                (RowsHook::InB2a, _) => lin.start(ch, &ge).map_err(MpcError::Interleaved),
                (RowsHook::AfterB2a, true) | (RowsHook::InSelection, false) => {
                    p = Some(lin.finish(ch).map_err(MpcError::Interleaved)?);
                    Ok(())
                }
                _ => Ok(()),
            }
        };
        let recip = self.p0_choosing(|se| {
            Ok(se
                .normalized_rows(ch, &sums, &norm, rb, (&[], 0), &mut hooks)?
                .0)
        })?;
        let p = fused_output("fused product output", p, x.len() / row * out, lr)?;
        // p·R by the small × wide product (p + 2^{ℓ−2} non-negative below 2^{ℓ−1}), then one
        // non-negative truncation by K straight into Z_{2^ℓ}.
        let off = 1u64 << (lr.bits() - 2);
        let xs: Vec<u64> = p.iter().map(|&a| add0r(lr, p0, a, off)).collect();
        let rsn: Vec<u64> = (0..p.len()).map(|i| recip[i / out]).collect();
        let top = 1u64 << (SM_LINEAR_RING - 2);
        let mut y = self.p0_choosing(|se| {
            let pr =
                se.mul_nonneg_small(ch, &Shares::new(lr, 0, xs)?, &Shares::new(rb, 0, rsn)?)?;
            let pc: Vec<u64> = pr
                .iter()
                .enumerate()
                .map(|(i, &a)| {
                    let c = rb.sub(a, rb.reduce(recip[i / out].wrapping_mul(off)));
                    add0r(rb, p0, c, top)
                })
                .collect();
            se.trunc_nonneg_form(
                ch,
                &Shares::new(rb, 0, pc)?,
                spec.big_k,
                lr,
                TruncForm::Flat,
            )
        })?;
        if p0 {
            y.data
                .iter_mut()
                .for_each(|v| *v = lr.sub(*v, top >> spec.big_k));
        }
        y.scale = x.scale;
        Ok(y)
    }

    /// Softmax up to its reciprocal's input: the clipped exponentials E (ring `er`) and their
    /// row sums (the reciprocal's ring).
    fn softmax_front<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        x: &Shares,
        row: usize,
        spec: &SoftmaxSpec<'_>,
        er: Ring,
    ) -> Result<(Vec<u64>, Vec<u64>)> {
        let lr = x.ring;
        spec.check(lr.bits(), row)?;
        lr.check("softmax input", &x.data)?;
        if !x.len().is_multiple_of(row) {
            return Err(MpcError::LengthMismatch {
                what: "softmax rows",
                expected: x.len().div_ceil(row) * row,
                got: x.len(),
            });
        }
        let n = x.len();
        let (s, f, j, k) = (spec.s, spec.f, spec.j, spec.k);
        // An input at scale 2^{s+extra}: everything up to the digits on `extra` more bits.
        let (m, sh) = (spec.m + spec.extra, s - f + spec.extra);
        let (rm, rq) = (Ring::new(m)?, Ring::new(m - sh)?);
        let (rt, rhi, rpe) = (Ring::new(s + 2)?, Ring::new(j - k)?, Ring::new(2 * s + 2)?);
        // Row max on the reduced ring, u = max − x ≥ 0.
        let xm: Vec<u64> = x.data.iter().map(|&v| rm.reduce(v)).collect();
        // On an unrounded input the comparisons are `extra` bits wider: leaves of up to
        // WIDE_LEAVES bits keep their trees as shallow (measured on the CIFAR ViT: 44 → 38 hops
        // per softmax with its product by V).
        let wide = spec.extra > 0;
        let mx = if wide {
            self.wide_leaves(|se| se.tournament_max(ch, rm, &xm, row))?
        } else {
            self.tournament_max(ch, rm, &xm, row)?
        };
        let u: Vec<u64> = (0..n).map(|i| rm.sub(mx[i / row], xm[i])).collect();
        // Carries into bits sh and sh + k of u0 + u1: q = u >> sh and its digits (both B2As in
        // one flight, over rq ⊇ rhi); the clip g = [u < 2^{j+sh}] (= [q < 2^j]) in the same
        // comparison.
        let mut digits =
            |se: &mut Self| se.carries_and_below(ch, &u, (sh + k, sh), rm, &u, 1 << (j + sh));
        let (c2, c1, g) = if wide {
            self.wide_leaves(digits)?
        } else {
            digits(self)?
        };
        let both: Vec<u8> = c1.iter().chain(&c2).copied().collect();
        let ca = self.b2a(ch, rq, &both)?;
        let q: Vec<u64> = (0..n).map(|i| rq.add(u[i] >> sh, ca[i])).collect();
        let lo: Vec<u64> = q.iter().map(|&v| v & mask(k)).collect();
        let hi: Vec<u64> = (0..n)
            .map(|i| rhi.add(rhi.reduce(u[i] >> (sh + k)), rhi.reduce(ca[n + i])))
            .collect();
        // e^{−u} ≈ EH[hi]·EL[lo] / 2^s: both lookups in one flight, answering in the product
        // ring (`wide_tables`) or in s + 2 bits and then both extended to it in one call.
        let (teh, tel) = (|_, v: usize| spec.eh[v], |_, v: usize| spec.el[v]);
        let rtab = if spec.wide_tables { rpe } else { rt };
        let mut tab = self.luts(ch, &[(&hi, j - k, rtab, &teh), (&lo, k, rtab, &tel)])?;
        let (elv, ehv) = (tab.pop().unwrap_or_default(), tab.pop().unwrap_or_default());
        let (ehw, elw) = if spec.wide_tables {
            (ehv, elv)
        } else {
            let ext = self.trunc_nonneg(ch, &Shares::new(rt, s, [ehv, elv].concat())?, 0, rpe)?;
            let (ehw, elw) = ext.data.split_at(n);
            (ehw.to_vec(), elw.to_vec())
        };
        let pe = self.mul(ch, &Shares::new(rpe, s, ehw)?, &Shares::new(rpe, s, elw)?)?;
        let ev = self.trunc_nonneg_form(ch, &pe, s, er, TruncForm::Flat)?;
        let ge = self.mux(ch, er, &g, &ev.data)?;
        // One reciprocal per row (nn::approx::Softmax::reciprocal) of the row sums.
        let rs = spec.norm().rings()?.0;
        let sums: Vec<u64> = ge
            .chunks(row)
            .map(|c| rs.reduce(c.iter().fold(0, |a, &v| er.add(a, v))))
            .collect();
        Ok((ge, sums))
    }
}

impl Session {
    /// Shares of the maximum of each row of `row` values over `ring`, exactly
    /// `nn::approx::tournament_max`: per level, one batch of DReLUs for every pair of a chunk
    /// (the whole level up to 17 values, else chunks of five), then for every member i the
    /// product w_i·x_i — w_i the AND of its k − 1 comparison bits (some negated) — by two
    /// 1-of-2^{k−1} OTs, P0 offering w(b0 ⊕ v)·x0 and P1 w(v ⊕ b1)·x1 (choices in one flight,
    /// answers in the next), summed over the chunk; a member of more than four bits first ANDs
    /// them in two to four groups (one flight each way, [`Session::tournament_ands`]) and
    /// selects by the groups. A row of up to 17 values thus takes one comparison and four
    /// flights, against two comparisons and four flights in chunks of five and a comparison
    /// and a MUX per halving for a pairwise tree.
    pub fn tournament_max<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        ring: Ring,
        x: &[u64],
        row: usize,
    ) -> Result<Vec<u64>> {
        ring.check("tournament input", x)?;
        if row == 0 || !x.len().is_multiple_of(row) {
            return Err(MpcError::LengthMismatch {
                what: "tournament rows",
                expected: x.len().div_ceil(row.max(1)) * row.max(1),
                got: x.len(),
            });
        }
        let g = Group::Pow2(ring.bits());
        let rows = x.len() / row;
        let mut level: Vec<u64> = x.to_vec();
        let mut len = row;
        while len > 1 {
            let chunks = tournament_chunks(len);
            // Every pair (i < j) of every chunk of every row: x_i − x_j.
            let mut diffs = Vec::new();
            for r in 0..rows {
                let base = r * len;
                for &(start, k) in &chunks {
                    for i in 0..k {
                        for j in i + 1..k {
                            let (a, b) = (level[base + start + i], level[base + start + j]);
                            diffs.push(ring.sub(a, b));
                        }
                    }
                }
            }
            let d = self.drelu(ch, ring, &diffs)?;
            // Per member: its k − 1 bits (j < i: d_ji negated, j > i: d_ij) and their width.
            let mut sel: Vec<(u64, u64, u32)> = Vec::new();
            let mut at = 0;
            // The values of the members of chunks of two or more, in order.
            let mut members = Vec::new();
            for r in 0..rows {
                let base = r * len;
                for &(start, k) in chunks.iter().filter(|&&(_, k)| k > 1) {
                    let pair = |i: usize, j: usize| {
                        // index of (i, j), i < j, in this chunk's pair list
                        at + i * (2 * k - i - 1) / 2 + (j - i - 1)
                    };
                    for i in 0..k {
                        let (mut bits, mut neg) = (0u64, 0u64);
                        for (pos, j) in (0..k).filter(|&j| j != i).enumerate() {
                            let bit = if j < i { d[pair(j, i)] } else { d[pair(i, j)] };
                            bits |= ((bit & 1) as u64) << pos;
                            if j < i {
                                neg |= 1 << pos;
                            }
                        }
                        sel.push((bits, neg, (k - 1) as u32));
                        members.push(level[base + start + i]);
                    }
                    at += k * (k - 1) / 2;
                }
            }
            // Wider members select by the ANDs of their bits' groups; then grouped by width (the
            // selection OT's).
            let sel = self.tournament_ands(ch, ring.bits(), sel)?;
            let mut by_width: Vec<Vec<(usize, u64, u64)>> = vec![Vec::new(); TOURNAMENT];
            for (id, &(bits, neg, w)) in sel.iter().enumerate() {
                by_width[w as usize].push((id, bits, neg));
            }
            let total: usize = (1..TOURNAMENT).map(|w| w * by_width[w].len()).sum();
            let (mut sc, mut rc) = self.cots(ch, total, total)?;
            // Flight 1: this party's choices (its bits) for the peer's OTs.
            let mut w1 = BitWriter::default();
            let mut states = Vec::new();
            for (w, list) in by_width.iter().enumerate().skip(1) {
                if list.is_empty() {
                    continue;
                }
                let c: Vec<u64> = list.iter().map(|&(_, b, _)| b).collect();
                states.push((w, one_of_n_choose(&mut rc, w as u32, g, &c, &mut w1)));
            }
            let choice_bits = total as u64;
            let got = self.exchange(ch, w1.finish(), choice_bits, "tournament choices")?;
            let mut rd = BitReader::new(&got, choice_bits, "tournament choices")?;
            // Flight 2: answers: w(own bits ⊕ v ⊕ neg)·x_own for every v.
            let mut w2 = BitWriter::default();
            let mut own = vec![0u64; members.len()];
            for (w, list) in by_width.iter().enumerate().skip(1) {
                if list.is_empty() {
                    continue;
                }
                let full = mask(w as u32);
                let tab = |i: usize, v: u64| {
                    let (id, b, neg) = list[i];
                    if (b ^ v ^ neg) & full == full {
                        members[id]
                    } else {
                        0
                    }
                };
                let sh = one_of_n_send(&mut sc, w as u32, g, list.len(), &mut rd, &tab, &mut w2);
                for (&(id, _, _), v) in list.iter().zip(sh) {
                    own[id] = v;
                }
            }
            let answer_bits: u64 = by_width
                .iter()
                .enumerate()
                .skip(1)
                .map(|(w, l)| one_of_n_answer_bits(l.len(), w as u32, g))
                .sum();
            let got = self.exchange(ch, w2.finish(), answer_bits, "tournament answers")?;
            let mut rd = BitReader::new(&got, answer_bits, "tournament answers")?;
            let mut peer = vec![0u64; members.len()];
            for (w, st) in states {
                for (&(id, _, _), v) in by_width[w]
                    .iter()
                    .zip(st.finish(&mut rd, "tournament answers")?)
                {
                    peer[id] = v;
                }
            }
            // A chunk of one passes its share; the others sum w_i·x_i over the chunk.
            let mut next = Vec::with_capacity(rows * chunks.len());
            let mut id = 0;
            for r in 0..rows {
                for &(start, k) in &chunks {
                    if k == 1 {
                        next.push(level[r * len + start]);
                        continue;
                    }
                    let mut acc = 0u64;
                    for _ in 0..k {
                        acc = ring.add(acc, ring.add(own[id], peer[id]));
                        id += 1;
                    }
                    next.push(acc);
                }
            }
            level = next;
            len = chunks.len();
        }
        Ok(level)
    }

    /// For every member wider than the selection OT (more than `TOURNAMENT − 1` bits: a chunk
    /// of more than five), the AND of each group of its bits ([`tournament_groups`]) by one
    /// 1-of-2^w OT, P1 choosing with its w bits and P0 offering AND_j(b0_j ⊕ v_j ⊕ neg_j) for
    /// every v, XOR-shared: the member then selects by its group bits (none negated). One
    /// flight each way; narrower members pass unchanged.
    fn tournament_ands<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        ring_bits: u32,
        mut sel: Vec<(u64, u64, u32)>,
    ) -> Result<Vec<(u64, u64, u32)>> {
        // Per group width: (member, group position, this party's bits, negations).
        let mut reqs: Vec<Vec<(usize, u32, u64, u64)>> =
            vec![Vec::new(); MAX_AND_GROUP as usize + 1];
        for (id, m) in sel.iter_mut().enumerate() {
            let (bits, neg, w) = *m;
            if (w as usize) < TOURNAMENT {
                continue;
            }
            let widths = tournament_groups(w, ring_bits);
            let mut off = 0;
            for (pos, &gw) in widths.iter().enumerate() {
                let part = |v: u64| (v >> off) & mask(gw);
                reqs[gw as usize].push((id, pos as u32, part(bits), part(neg)));
                off += gw;
            }
            *m = (0, 0, widths.len() as u32);
        }
        let total: usize = reqs.iter().enumerate().map(|(w, l)| w * l.len()).sum();
        if total == 0 {
            return Ok(sel);
        }
        let g = Group::Xor(1);
        let answer_bits: u64 = reqs
            .iter()
            .enumerate()
            .map(|(w, l)| one_of_n_answer_bits(l.len(), w as u32, g))
            .sum();
        let widths = || reqs.iter().enumerate().filter(|(_, l)| !l.is_empty());
        if self.party() == Party::P1 {
            let (_, mut rc) = self.cots(ch, 0, total)?;
            let mut wr = BitWriter::default();
            let states: Vec<_> = widths()
                .map(|(w, l)| {
                    let c: Vec<u64> = l.iter().map(|r| r.2).collect();
                    (w, one_of_n_choose(&mut rc, w as u32, g, &c, &mut wr))
                })
                .collect();
            self.send(ch, wr.finish())?;
            let got = crate::bits::recv_bits(ch, answer_bits, "tournament ANDs")?;
            let mut rd = BitReader::new(&got, answer_bits, "tournament ANDs")?;
            for (w, st) in states {
                for (&(id, pos, _, _), v) in
                    reqs[w].iter().zip(st.finish(&mut rd, "tournament ANDs")?)
                {
                    sel[id].0 |= (v & 1) << pos;
                }
            }
        } else {
            let (mut sc, _) = self.cots(ch, total, 0)?;
            let got = crate::bits::recv_bits(ch, total as u64, "tournament AND choices")?;
            let mut rd = BitReader::new(&got, total as u64, "tournament AND choices")?;
            let mut wr = BitWriter::default();
            for (w, l) in widths() {
                let full = mask(w as u32);
                let tab = |i: usize, v: u64| ((l[i].2 ^ v ^ l[i].3) & full == full) as u64;
                let sh = one_of_n_send(&mut sc, w as u32, g, l.len(), &mut rd, &tab, &mut wr);
                for (&(id, pos, _, _), v) in l.iter().zip(sh) {
                    sel[id].0 |= (v & 1) << pos;
                }
            }
            self.send(ch, wr.finish())?;
        }
        Ok(sel)
    }

    /// Affine OTs in both directions in one flight each way: this party receives on its
    /// instances (`recv_c`, `recv_g`) and sends on the peer's (`send_g`, with f(0) = `f0` and
    /// f(1) = `f1`). Returns (receiver shares, sender shares).
    fn affine_both<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        recv_c: &[u8],
        recv_g: &[Group],
        send: (&[Group], &[u64], &[u64]),
        what: &'static str,
    ) -> Result<(Vec<u64>, Vec<u64>)> {
        self.affine_both_around(ch, recv_c, recv_g, send, what, &mut |_| Ok(()))
    }

    /// [`Session::affine_both`] running `between` after this party's message is queued and
    /// before the peer's is read.
    fn affine_both_around<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        recv_c: &[u8],
        recv_g: &[Group],
        send: (&[Group], &[u64], &[u64]),
        what: &'static str,
        between: &mut dyn FnMut(&mut C) -> Result<()>,
    ) -> Result<(Vec<u64>, Vec<u64>)> {
        let (send_g, f0, f1) = send;
        let (mut s, mut r) = self.cots(ch, send_g.len(), recv_g.len())?;
        let mut w = BitWriter::default();
        let rs = affine_choose(&mut r, &|i| recv_g[i], recv_c, &mut w);
        let ss = affine_send(&mut s, &|i| send_g[i], f0, f1, &mut w);
        let peer_bits = send_g.len() as u64 + recv_g.iter().map(|g| g.width() as u64).sum::<u64>();
        let got = self.exchange_around(ch, w.finish(), peer_bits, what, between)?;
        let mut rd = BitReader::new(&got, peer_bits, what)?;
        let sv = ss.finish(&mut rd);
        let rv = rs.finish(&mut rd, what)?;
        Ok((rv, sv))
    }

    /// For 0 ≤ x < 2^{w−1} shared mod 2^w: shares mod 2^b of x² and of x itself. With
    /// x = x0 + x1 − W·2^w, W = msb(x0) ∨ msb(x1):
    /// x² = x0² + x1² + 2·x0·x1 − 2^{w+1}·W·(x0 + x1) + 2^{2w}·W — one Gilboa cross term on x1's
    /// w bits and three one-bit affine OTs.
    fn square_nonneg<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        x: &Shares,
        out: Ring,
        between: &mut dyn FnMut(&mut C) -> Result<()>,
    ) -> Result<(Vec<u64>, Vec<u64>)> {
        let (wx, b) = (x.ring.bits(), out.bits());
        let n = x.len();
        let per = wx as usize + 2;
        let gw1 = Group::Pow2(b - wx - 1);
        let gw = Group::Pow2(b - wx);
        let big: Vec<Group> = (0..n * per)
            .map(|k| match k % per {
                i if i < wx as usize => Group::Pow2(b - i as u32),
                i if i == wx as usize => gw1,
                _ => gw,
            })
            .collect();
        let small = vec![gw1; n];
        let msb: Vec<u8> = x.data.iter().map(|&v| x.ring.msb(v)).collect();
        // P0 sends on the `big` instances (bits of x1, W·x0, W) and receives W·x1; P1 the
        // reverse. `big` and `small` are this party's shares of those instances.
        let (big_sh, small_sh) = match self.party() {
            Party::P0 => {
                let (mut f0, mut f1) = (Vec::with_capacity(n * per), Vec::with_capacity(n * per));
                for (&a, &m) in x.data.iter().zip(&msb) {
                    for i in 0..wx {
                        f0.push(0);
                        f1.push(a & mask(b - i));
                    }
                    f0.push((m as u64 * a) & mask(b - wx - 1));
                    f1.push(a & mask(b - wx - 1));
                    f0.push(m as u64);
                    f1.push(1);
                }
                let (rv, sv) =
                    self.affine_both_around(ch, &msb, &small, (&big, &f0, &f1), "square", between)?;
                (sv, rv)
            }
            Party::P1 => {
                let mut c = Vec::with_capacity(n * per);
                for (&a, &m) in x.data.iter().zip(&msb) {
                    c.extend((0..wx).map(|i| ((a >> i) & 1) as u8));
                    c.push(m);
                    c.push(m);
                }
                let f0: Vec<u64> = x
                    .data
                    .iter()
                    .zip(&msb)
                    .map(|(&a, &m)| (m as u64 * a) & mask(b - wx - 1))
                    .collect();
                let f1: Vec<u64> = x.data.iter().map(|&a| a & mask(b - wx - 1)).collect();
                let (rv, sv) =
                    self.affine_both_around(ch, &c, &big, (&small, &f0, &f1), "square", between)?;
                (rv, sv)
            }
        };
        let w = wx as usize;
        let cross: Vec<u64> = (0..n)
            .map(|j| (0..w).fold(0, |a, i| out.add(a, out.reduce(big_sh[j * per + i] << i))))
            .collect();
        let wx0: Vec<u64> = (0..n).map(|j| big_sh[j * per + w]).collect();
        let wsh: Vec<u64> = (0..n).map(|j| big_sh[j * per + w + 1]).collect();
        let wx1 = small_sh;
        let sq = (0..n)
            .map(|j| {
                let a = x.data[j];
                let mut v = out.add(out.mul(a, a), out.mul(2, cross[j]));
                v = out.sub(v, out.reduce(out.add(wx0[j], wx1[j]) << (wx + 1)));
                if 2 * wx < b {
                    v = out.add(v, out.reduce(wsh[j] << (2 * wx)));
                }
                v
            })
            .collect();
        let xi = (0..n)
            .map(|j| out.sub(out.reduce(x.data[j]), out.reduce(wsh[j] << wx)))
            .collect();
        Ok((sq, xi))
    }

    /// `x·y mod 2^b` for 0 ≤ x < 2^{w−1} shared mod 2^w and any y shared mod 2^b: the Gilboa
    /// cross terms on the w bits of each party's x share, and W·y for the wrap
    /// W = msb(x0) ∨ msb(x1) of x = x0 + x1 − W·2^w.
    fn mul_nonneg_small<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        x: &Shares,
        y: &Shares,
    ) -> Result<Vec<u64>> {
        let (wx, out) = (x.ring.bits(), y.ring);
        let b = out.bits();
        let n = x.len();
        let per = wx as usize + 1;
        let groups: Vec<Group> = (0..n * per)
            .map(|k| match k % per {
                i if i < wx as usize => Group::Pow2(b - i as u32),
                _ => Group::Pow2(b - wx),
            })
            .collect();
        let mut c = Vec::with_capacity(n * per);
        let (mut f0, mut f1) = (Vec::with_capacity(n * per), Vec::with_capacity(n * per));
        for j in 0..n {
            let (a, yv) = (x.data[j], y.data[j]);
            let m = x.ring.msb(a);
            c.extend((0..wx).map(|i| ((a >> i) & 1) as u8));
            c.push(m);
            for i in 0..wx {
                f0.push(0);
                f1.push(yv & mask(b - i));
            }
            f0.push((m as u64 * yv) & mask(b - wx));
            f1.push(yv & mask(b - wx));
        }
        let (rv, sv) = self.affine_both(ch, &c, &groups, (&groups, &f0, &f1), "product")?;
        Ok((0..n)
            .map(|j| {
                let mut v = out.mul(out.reduce(x.data[j]), y.data[j]);
                for i in 0..wx as usize {
                    let k = j * per + i;
                    v = out.add(v, out.reduce(rv[k].wrapping_add(sv[k]) << i));
                }
                let k = j * per + wx as usize;
                out.sub(v, out.reduce(rv[k].wrapping_add(sv[k]) << wx))
            })
            .collect())
    }

    /// Layer normalization without its affine part of each row of `spec.d` values, shares at
    /// scale 2^s in and out, equal to `nn::approx::LayerNorm::eval_row` when every
    /// |x − μ| < 2^{m−2−s} (its range assumption).
    pub fn layernorm<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        x: &Shares,
        spec: &LayerNormSpec,
    ) -> Result<Shares> {
        let (vv, uc, _) = self.layernorm_front(ch, x, spec, None)?;
        // From here on P0 chooses in every comparison (`normalized_rows`).
        let mut out = self.p0_choosing(|se| se.layernorm_scale(ch, &vv, &uc, spec, x.ring))?;
        out.scale = x.scale;
        Ok(out)
    }

    /// LayerNorm fused with the linear layer that reads it, equal to
    /// `nn::approx::LayerNorm::linear_output` (docs/protocols/transformer.md § LayerNorm →
    /// linear layer): the deviations c = x − μ go to `lin` while the inverse root R is computed
    /// — its query leaves with this party's message of the squares' flight and its answer is
    /// read after that flight, so the layer's round trip overlaps the root's flights — then
    /// y = (t(u)·R + 2^17) >> 18 + t(b) per output, u = W·c from `lin` (`out` values per row,
    /// mod 2^ℓ), t the rescale, b P0's bias at scale 2^{2s} (`out` values; P1 passes none).
    pub fn layernorm_linear<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        x: &Shares,
        spec: &LayerNormSpec,
        lin: &mut dyn NormLinear<C>,
        out: usize,
        bias: &[u64],
    ) -> Result<Shares> {
        spec.check_linear(x.ring.bits())?;
        let want = if self.party() == Party::P0 { out } else { 0 };
        if bias.len() != want {
            return Err(MpcError::LengthMismatch {
                what: "fused layer bias",
                expected: want,
                got: bias.len(),
            });
        }
        self.prefetch_cost(
            ch,
            layernorm_linear_cost(spec, x.ring.bits(), x.len(), out)?,
        )?;
        let (vv, _, u) = self.layernorm_front(ch, x, spec, Some(lin))?;
        let u = fused_output("fused layer output", u, x.len() / spec.d * out, x.ring)?;
        let mut y =
            self.p0_choosing(|se| se.layernorm_linear_tail(ch, &vv, &u, out, bias, spec, x.ring))?;
        y.scale = x.scale;
        Ok(y)
    }

    /// LayerNorm up to the inverse root's input: V per row (shifted, `normalized_rows`' input),
    /// uc = c + 2^{m−2} mod 2^m per element and, with `lin`, its output on the deviations.
    #[allow(clippy::type_complexity)]
    fn layernorm_front<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        x: &Shares,
        spec: &LayerNormSpec,
        mut lin: Option<&mut dyn NormLinear<C>>,
    ) -> Result<(Vec<u64>, Shares, Option<Vec<u64>>)> {
        let lr = x.ring;
        spec.check(lr.bits())?;
        lr.check("layernorm input", &x.data)?;
        let d = spec.d;
        if !x.len().is_multiple_of(d) {
            return Err(MpcError::LengthMismatch {
                what: "layernorm rows",
                expected: x.len().div_ceil(d) * d,
                got: x.len(),
            });
        }
        let p0 = self.party() == Party::P0;
        let n = x.len();
        let m = spec.m;
        let (rm, rsq) = (Ring::new(m)?, Ring::new(spec.square_ring())?);
        let rwide = Ring::new(LN_WIDE_RING)?;
        let z = spec.v_shift();
        let rv = spec.norm().rings()?.0;
        let add0 = |r: Ring, a: u64, c: u64| if p0 { r.add(a, r.reduce(c)) } else { a };
        let sums: Vec<u64> = x
            .data
            .chunks(d)
            .map(|c| c.iter().fold(0, |a, &b| lr.add(a, b)))
            .collect();
        let mu = if d.is_power_of_two() {
            // μ = floor((Σ + D/2) / D): P0 adds 2^{ℓ−2} + D/2 (non-negative below 2^{ℓ−1}),
            // an exact non-negative truncation, P0 removes 2^{ℓ−2}/D.
            let k = d.trailing_zeros();
            let off: Vec<u64> = sums
                .iter()
                .map(|&a| add0(lr, a, (1 << (lr.bits() - 2)) + (d as u64 >> 1)))
                .collect();
            let q = match k {
                0 => off, // D = 1: μ = Σ
                _ => {
                    self.trunc_nonneg_lookup(
                        ch,
                        &Shares::new(lr, 0, off)?,
                        k,
                        lr,
                        spec.mean_chooser,
                    )?
                    .data
                }
            };
            q.iter()
                .map(|&a| lr.sub(a, if p0 { 1 << (lr.bits() - 2 - k) } else { 0 }))
                .collect::<Vec<u64>>()
        } else {
            // Sign-extended to 64 bits, times M, rounded, exact floor by 2^T.
            let wide = self.extend_signed(ch, &Shares::new(lr, 0, sums)?, rwide)?;
            let scaled: Vec<u64> = wide
                .data
                .iter()
                .map(|&a| add0(rwide, rwide.mul(a, spec.mul), 1 << (spec.t - 1)))
                .collect();
            self.trunc(ch, &Shares::new(rwide, 0, scaled)?, spec.t)?
                .data
        };
        let c: Vec<u64> = (0..n)
            .map(|i| lr.sub(x.data[i], lr.reduce(mu[i / d])))
            .collect();
        let cm: Vec<u64> = c.iter().map(|&v| rm.reduce(v)).collect();
        // Σ c² from the squares of the non-negative uc = cm + 2^{m−2}: c² = uc² − 2·off·uc + off².
        let off = 1u64 << (m - 2);
        let uc: Vec<u64> = cm.iter().map(|&c| add0(rm, c, off)).collect();
        let uc = Shares::new(rm, 0, uc)?;
        let (sq, uci) = self.square_nonneg(ch, &uc, rsq, &mut |ch| match lin.as_deref_mut() {
            Some(l) => l.start(ch, &c).map_err(MpcError::Interleaved),
            None => Ok(()),
        })?;
        let u = match lin {
            Some(l) => Some(l.finish(ch).map_err(MpcError::Interleaved)?),
            None => None,
        };
        let q2: Vec<u64> = sq
            .chunks(d)
            .zip(uci.chunks(d))
            .map(|(a, b)| {
                let mut acc = 0;
                for (&s2, &u1) in a.iter().zip(b) {
                    let c2 = rsq.sub(s2, rsq.mul(2 * off, u1));
                    acc = rsq.add(acc, add0(rsq, c2, off * off));
                }
                acc
            })
            .collect();
        // Per row: V = Q2·M2 + ε·2^24, R = inverse_root(V) (nn::approx::LayerNorm), looked up
        // on V / 2^z. Q2 < 2^{bits − 2} is non-negative below half of both rings: a narrower
        // ring is a local reduction, a wider one an extension.
        let q2w = if rv.bits() <= rsq.bits() {
            q2.iter().map(|&a| rv.reduce(a)).collect()
        } else {
            self.trunc_nonneg(ch, &Shares::new(rsq, 0, q2)?, 0, rv)?
                .data
        };
        let vv: Vec<u64> = q2w
            .iter()
            .map(|&a| add0(rv, rv.mul(a, spec.mul2 >> z), spec.eps << (spec.t2 - z)))
            .collect();
        Ok((vv, uc, u))
    }

    /// LayerNorm's last steps: R = inverse_root(V) per row, then y = (c·R + 2^17) >> 18 per
    /// element, with uc = c + 2^{m−2} shared mod 2^m.
    fn layernorm_scale<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        vv: &[u64],
        uc: &Shares,
        spec: &LayerNormSpec,
        lr: Ring,
    ) -> Result<Shares> {
        let p0 = self.party() == Party::P0;
        let (m, d, n) = (spec.m, spec.d, uc.len());
        let rprod = Ring::new(LN_PRODUCT_RING)?;
        let rs = self
            .normalized_rows(ch, vv, &spec.norm(), rprod, (&[], 0), &mut |_, _| Ok(()))?
            .0;
        // y = (c·rs + 2^17) >> 18 with c·rs = uc·rs − 2^{m−2}·rs.
        let rsn: Vec<u64> = (0..n).map(|i| rs[i / d]).collect();
        let pr = self.mul_nonneg_small(ch, uc, &Shares::new(rprod, 0, rsn.clone())?)?;
        // |y| < 2^{w−2−18} (w = LN_PRODUCT_RING), so P + 2^17 + 2^{w−2} lies in [0, 2^{w−1}):
        // one non-negative truncation straight into Z_{2^ℓ} (carry and wrap in one flight),
        // then P0 removes 2^{w−2−18}.
        let top = 1u64 << (LN_PRODUCT_RING - 2);
        let pc: Vec<u64> = pr
            .iter()
            .zip(&rsn)
            .map(|(&a, &r)| {
                let c = rprod.sub(a, rprod.reduce(r << (m - 2)));
                add0r(rprod, p0, c, (1 << (LN_SHIFT - 1)) + top)
            })
            .collect();
        let pc = Shares::new(rprod, 0, pc)?;
        let mut out = self.trunc_nonneg_form(ch, &pc, LN_SHIFT, lr, spec.tail)?;
        if p0 {
            out.data
                .iter_mut()
                .for_each(|v| *v = lr.sub(*v, top >> LN_SHIFT));
        }
        Ok(out)
    }

    /// The fused layer's last steps (`nn::approx::LayerNorm::linear_output`): R per row, with
    /// the rescale t(u) = (u + 2^{s−1}) >> s of the layer's output riding in the same flights
    /// (its carry is one more window of the root's comparison batch and one more B2A of its
    /// window carries; the wrap term vanishes in the 2^w ring of t(u)); then
    /// y = (t(u)·R + 2^17) >> 18 + t(b) per output, t(u)·R by the small × wide product
    /// (t(u) + 2^{w−2} non-negative below 2^{w−1}) in the [`LN_LINEAR_RING`]-bit ring.
    #[allow(clippy::too_many_arguments)]
    fn layernorm_linear_tail<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        vv: &[u64],
        u: &[u64],
        out: usize,
        bias: &[u64],
        spec: &LayerNormSpec,
        lr: Ring,
    ) -> Result<Shares> {
        let p0 = self.party() == Party::P0;
        let s = spec.s;
        let (rprod, rw) = (Ring::new(LN_LINEAR_RING)?, Ring::new(spec.linear_bits())?);
        let ell = lr.bits();
        // u + 2^{ℓ−2} + 2^{s−1} is non-negative below 2^{ℓ−1} in the layer's output range.
        let up: Vec<u64> = u
            .iter()
            .map(|&a| add0r(lr, p0, a, (1 << (ell - 2)) + (1 << (s - 1))))
            .collect();
        let (rs, ca) =
            self.normalized_rows(ch, vv, &spec.norm(), rprod, (&up, s), &mut |_, _| Ok(()))?;
        let w = rw.bits();
        let xs: Vec<u64> = up
            .iter()
            .zip(&ca)
            .map(|(&a, &c)| {
                let t = rw.add(rw.reduce(a >> s), rw.reduce(c));
                // − 2^{ℓ−2−s} (the offset) + 2^{w−2} (non-negative for the product).
                add0r(
                    rw,
                    p0,
                    t,
                    (1u64 << (w - 2)).wrapping_sub(1 << (ell - 2 - s)),
                )
            })
            .collect();
        let rsn: Vec<u64> = (0..u.len()).map(|i| rs[i / out]).collect();
        let pr =
            self.mul_nonneg_small(ch, &Shares::new(rw, 0, xs)?, &Shares::new(rprod, 0, rsn)?)?;
        let top = 1u64 << (LN_LINEAR_RING - 2);
        let pc: Vec<u64> = pr
            .iter()
            .enumerate()
            .map(|(i, &a)| {
                let c = rprod.sub(a, rprod.reduce(rs[i / out] << (w - 2)));
                add0r(rprod, p0, c, (1 << (LN_SHIFT - 1)) + top)
            })
            .collect();
        let pc = Shares::new(rprod, 0, pc)?;
        let mut y = self.trunc_nonneg_form(ch, &pc, LN_SHIFT, lr, spec.tail)?;
        if p0 {
            let sh = 64 - ell;
            for (i, v) in y.data.iter_mut().enumerate() {
                // t(b): the bias at 2^{2s} rounded to 2^s.
                let b = (((bias[i % out] << sh) as i64) >> sh) + (1 << (s - 1));
                *v = lr.add(lr.sub(*v, top >> LN_SHIFT), lr.reduce((b >> s) as u64));
            }
        }
        Ok(y)
    }

    /// Shares in `out` of R = (U·2^{q(e)} + 2^{drop−1}) >> drop with (e, U) =
    /// `nn::approx::normalized_lookup` of each shared v (ring of `norm.bits + 2` bits,
    /// 0 ≤ v < 2^bits), in five steps:
    /// 1. one batch of carries: `[v ≥ 2^i]` for e_lo < i < bits (DReLU of v − 2^i), and for every
    ///    candidate exponent e > t the carries into bits e − t and e − t − f of v0 + v1 (each
    ///    window shifted to the top of the comparison, the lower carry as its split);
    /// 2. the one-hot h_e = [v ≥ 2^e] ⊕ [v ≥ 2^{e+1}] locally ([v ≥ 2^{e_lo}] taken as 1: the
    ///    clamp), the window carries to arithmetic shares;
    /// 3. one flight of MUXes by h_e selects the index i_e, Q = 2^{q(e)} and M = (2φ_e + 1)·Q
    ///    (the offset φ_e and the index formed from the shares and the window's carries exactly
    ///    as the floor of v · 2^{t+f−e});
    /// 4. U·Q = RT[i]·2^{f+1}·Q − RD[i]·M by one two-way lookup flight
    ///    ([`Session::luts_both`]: each party offers the part linear in its shares of Q and M);
    /// 5. R by an exact truncation of that non-negative value.
    ///
    /// Both callers run it, and everything after it, with P0 choosing in the comparisons
    /// ([`Session::p0_choosing`]): its input comes from a flight P0 completes a hop before P1, and
    /// P0 stays ahead from then on (measured on the CIFAR ViT: 754 → 676 hops together with
    /// GELU's DReLU and LayerNorm's exact squares; the cost model follows the COT directions).
    fn normalized_rows<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        v: &[u64],
        norm: &Norm<'_>,
        out: Ring,
        rider: (&[u64], u32),
        hooks: &mut dyn FnMut(&mut C, RowsHook) -> Result<()>,
    ) -> Result<(Vec<u64>, Vec<u64>)> {
        let p0 = self.party() == Party::P0;
        let rows = v.len();
        let (t, f) = (LOOKUP_IDX, LOOKUP_FRAC);
        let (rv, ri, ruq) = norm.rings()?;
        let cb = rv.bits() - 1;
        let (lo_e, hi_e) = (norm.e_lo, norm.bits);
        let first_w = lo_e.max(t + 1);
        let nc = (hi_e - lo_e - 1) as usize; // comparisons for i = e_lo+1 .. bits−1
        let nw = hi_e.saturating_sub(first_w) as usize; // windows for e = first_w .. bits−1
        let per = nc + nw;
        // Step 1: DReLU(v − 2^i) is 1 ⊕ msb(v − 2^i), msb = msb(x0) ⊕ msb(x1) ⊕ the carry.
        let mut vals = Vec::with_capacity(rows * per);
        for &x in v {
            for i in lo_e + 1..hi_e {
                vals.push(if p0 { rv.sub(x, 1 << i) } else { x });
            }
            for e in first_w..hi_e {
                let top = e - t;
                vals.push((x & mask(top)) << (cb - top));
            }
        }
        // The rider: the low k bits of each value at the top of the comparison (P0's low bits
        // zeros, P1's ones), so its carry is the carry into bit k of the two shares.
        let (rv_in, rk) = rider;
        if !rv_in.is_empty() && (rk == 0 || rk > cb) {
            return Err(MpcError::InvalidShift {
                shift: rk,
                bits: cb,
                max: cb,
            });
        }
        vals.extend(rv_in.iter().map(|&x| (x & mask(rk)) << (cb - rk)));
        let (hi, lo) = if norm.wide_leaves {
            self.wide_leaves(|se| se.carries(ch, &vals, cb, cb - f))?
        } else {
            self.carries(ch, &vals, cb, cb - f)?
        };
        // Step 2.
        let ne = (hi_e - lo_e) as usize;
        let mut h = Vec::with_capacity(rows * ne);
        let mut wc = Vec::with_capacity(rows * 2 * nw);
        for r in 0..rows {
            let at = |i: usize| r * per + i;
            // c_k = [v ≥ 2^{e_lo + k}]: c_0 = 1 (the clamp), c_ne = 0 (v < 2^bits).
            let c = |k: usize| -> u8 {
                if k == 0 {
                    p0 as u8
                } else if k == ne {
                    0
                } else {
                    rv.msb(vals[at(k - 1)]) ^ hi[at(k - 1)] ^ p0 as u8
                }
            };
            h.extend((0..ne).map(|k| c(k) ^ c(k + 1)));
            for w in 0..nw {
                wc.extend([hi[at(nc + w)], lo[at(nc + w)]]);
            }
        }
        // The rider's carries (into bit k of each value) join the window carries' B2A.
        wc.extend_from_slice(&hi[rows * per..]);
        let mut wa = self.b2a_around(ch, ruq, &wc, &mut |ch| hooks(ch, RowsHook::InB2a))?;
        hooks(ch, RowsHook::AfterB2a)?;
        let rider_carries = wa.split_off(rows * 2 * nw);
        // Step 3: per candidate e, W = floor(v·2^{t+f−e}); i_e = (W >> f) − 2^t + p·2^t,
        // φ_e = W mod 2^f, and the row's multipliers Q_e = 2^{q(e)} and
        // M_e = (2φ_e + 1)·2^{q(e)} (local in the shares of φ_e).
        let (mut xs, mut rings, mut sel) = (Vec::new(), Vec::new(), Vec::new());
        for (r, &x) in v.iter().enumerate() {
            for e in lo_e..hi_e {
                let hb = h[r * ne + (e - lo_e) as usize];
                let p = if norm.parity {
                    (e + norm.e_shift) as u64 % 2
                } else {
                    0
                };
                let lead = if p0 { (p << t).wrapping_sub(1 << t) } else { 0 };
                let (idx, phi) = if e <= t {
                    (x << (t - e), 0)
                } else {
                    let w = (r * nw + (e - first_w) as usize) * 2;
                    let (chi, clo) = (wa[w], wa[w + 1]);
                    let top = e - t;
                    let bot = top.saturating_sub(f);
                    let low = (x & mask(top)) >> bot;
                    let phi = ruq.sub(ruq.add(low, clo), ruq.reduce(chi << (top - bot)));
                    (ruq.add(x >> top, chi), ruq.reduce(phi << (bot + f - top)))
                };
                let ql = norm.q_log(e);
                let q_e = if p0 { 1 << ql } else { 0 };
                sel.extend([hb; 3]);
                xs.extend([
                    ri.reduce(idx.wrapping_add(lead)),
                    q_e,
                    ruq.add(ruq.reduce(phi << (ql + 1)), q_e),
                ]);
                rings.extend([ri, ruq, ruq]);
            }
        }
        let picked = self.mux_rings_around(ch, &sel, &xs, &|i| rings[i], &mut |ch| {
            hooks(ch, RowsHook::InSelection)
        })?;
        let (mut idx, mut q, mut mm) = (vec![0; rows], vec![0; rows], vec![0; rows]);
        for (r, per_e) in picked.chunks(3 * ne).enumerate() {
            for e3 in per_e.chunks(3) {
                idx[r] = ri.add(idx[r], e3[0]);
                q[r] = ruq.add(q[r], e3[1]);
                mm[r] = ruq.add(mm[r], e3[2]);
            }
        }
        // Steps 4–5: U·Q = RT[i]·2^{f+1}·Q − RD[i]·M with U = RT·2^{f+1} − RD·(2φ + 1) ∈
        // [0, 2^{A+f+1}]: linear in each party's shares of Q and M, so each party offers its
        // part as a table over i and the other chooses — both lookups in one flight each way.
        let tab = |r: usize, j: usize| {
            ruq.sub(
                ruq.mul(ruq.reduce(norm.rt[j] << (f + 1)), q[r]),
                ruq.mul(norm.rd[j], mm[r]),
            )
        };
        let k = ri.bits();
        let parts = self.luts_both(
            ch,
            &[
                ((&idx, k, ruq, &tab), Party::P1),
                ((&idx, k, ruq, &tab), Party::P0),
            ],
        )?;
        let uq: Vec<u64> = parts[0]
            .iter()
            .zip(&parts[1])
            .map(|(&a, &b)| ruq.add(a, b))
            .collect();
        // Step 5.
        let uq: Vec<u64> = uq
            .iter()
            .map(|&a| add0r(ruq, p0, a, 1 << (norm.drop - 1)))
            .collect();
        // Flat: one value per row, so its extra bits are spread over the row.
        let r = self
            .trunc_nonneg_form(
                ch,
                &Shares::new(ruq, 0, uq)?,
                norm.drop,
                out,
                TruncForm::Flat,
            )?
            .data;
        Ok((r, rider_carries))
    }
}

impl Session {
    /// Buffers every COT a call costing `need` draws, before its first message: a refill's
    /// messages inside interleaved flights would meet the other step's.
    fn prefetch_cost<C: Channel + ?Sized>(&mut self, ch: &mut C, need: Cost) -> Result<()> {
        let (ns, nr) = need.cots_for(self.party());
        self.prefetch(ch, ns, nr)
    }
}

/// The output shares an interleaved step ([`NormLinear`]) returned: `len` values of `ring`.
fn fused_output(
    what: &'static str,
    v: Option<Vec<u64>>,
    len: usize,
    ring: Ring,
) -> Result<Vec<u64>> {
    let v = v.unwrap_or_default();
    if v.len() != len {
        return Err(MpcError::LengthMismatch {
            what,
            expected: len,
            got: v.len(),
        });
    }
    ring.check(what, &v)?;
    Ok(v)
}

/// Points inside [`Session::normalized_rows`] where a caller's step may send or read: between
/// this party's message and the peer's in the window carries' B2A flight, after that flight,
/// and between the messages of the selection flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RowsHook {
    InB2a,
    AfterB2a,
    InSelection,
}

/// One request of [`Session::luts`]: index shares, index bits, output ring, table.
type Lookup<'a> = (
    &'a [u64],
    u32,
    Ring,
    &'a (dyn Fn(usize, usize) -> u64 + Sync),
);

/// Values per chunk of [`Session::tournament_max`] on a long level, and one more than the
/// widest selection OT (`nn::approx::TOURNAMENT_CHUNK`).
const TOURNAMENT: usize = 5;

/// A level of up to this many values is one chunk (`nn::approx::TOURNAMENT_ONE_LEVEL`).
const TOURNAMENT_ONE_LEVEL: usize = 17;

/// (start, length) of the chunks of one level of `len` values (`nn::approx::tournament_chunk`).
fn tournament_chunks(len: usize) -> Vec<(usize, usize)> {
    let c = if len <= TOURNAMENT_ONE_LEVEL {
        len.max(1)
    } else {
        TOURNAMENT
    };
    (0..len).step_by(c).map(|s| (s, c.min(len - s))).collect()
}

/// The widths of the groups a member's `w` bits are ANDed in before its selection
/// ([`Session::tournament_ands`]): g = 2 … TOURNAMENT − 1 groups of near-equal width, the g
/// of fewest bits (the groups' OTs of 1-bit entries against the selection's 2^g − 1 entries of
/// `ring_bits`, both ways).
fn tournament_groups(w: u32, ring_bits: u32) -> Vec<u32> {
    let split = |g: u32| {
        (0..g)
            .map(|i| w / g + u32::from(i < w % g))
            .collect::<Vec<_>>()
    };
    let bits = |parts: &[u32]| {
        let g = parts.len() as u64;
        parts
            .iter()
            .map(|&p| p as u64 + (1u64 << p) - 1)
            .sum::<u64>()
            + 2 * (g + ((1u64 << g) - 1) * ring_bits as u64)
    };
    (2..TOURNAMENT as u32)
        .map(split)
        .filter(|p| p.iter().all(|&x| x <= MAX_AND_GROUP))
        .min_by_key(|p| bits(p))
        .unwrap_or_else(|| split(TOURNAMENT as u32 - 1))
}

/// The widest group of [`tournament_groups`] (a 1-of-2^w OT of 1-bit entries).
const MAX_AND_GROUP: u32 = 8;

/// [`Session::tournament_max`] on `rows` rows of `row` values of `ring`, its comparisons with
/// leaves of up to `leaves` bits.
fn tournament_cost(ring: Ring, rows: usize, row: usize, leaves: u32) -> Cost {
    let g = Group::Pow2(ring.bits());
    let mut c = Cost::default();
    let mut len = row;
    while len > 1 {
        let chunks = tournament_chunks(len);
        let pairs: usize = chunks.iter().map(|&(_, k)| k * (k - 1) / 2).sum();
        c = c + cost::millionaire_leaves(rows * pairs, ring.bits() - 1, 0, leaves);
        for &(_, k) in chunks.iter().filter(|&&(_, k)| k > 1) {
            let mut w = (k - 1) as u32;
            let ots = (rows * k) as u64;
            if w as usize >= TOURNAMENT {
                let parts = tournament_groups(w, ring.bits());
                for &p in &parts {
                    c = c + Cost {
                        bits: ots * p as u64 + one_of_n_answer_bits(rows * k, p, Group::Xor(1)),
                        cots_p0_sends: ots * p as u64,
                        cots_p1_sends: 0,
                    };
                }
                w = parts.len() as u32;
            }
            c = c + Cost {
                bits: 2 * (ots * w as u64 + one_of_n_answer_bits(rows * k, w, g)),
                cots_p0_sends: ots * w as u64,
                cots_p1_sends: ots * w as u64,
            };
        }
        len = chunks.len();
    }
    c
}

/// `a + c` for P0, `a` for P1 (a public constant added once).
fn add0r(r: Ring, p0: bool, a: u64, c: u64) -> u64 {
    if p0 {
        r.add(a, r.reduce(c))
    } else {
        a
    }
}

/// [`Session::lut`] on `n` indices of `k` bits with outputs in `out`.
pub fn lut_cost(n: usize, k: u32, out: Ring) -> Cost {
    Cost {
        bits: n as u64 * k as u64 + one_of_n_answer_bits(n, k, Group::Pow2(out.bits())),
        cots_p0_sends: n as u64 * k as u64,
        cots_p1_sends: 0,
    }
}

/// A comparison's cost with `chooser` choosing in its leaf OTs.
fn chosen_by(cmp: Cost, chooser: Party) -> Cost {
    match chooser {
        Party::P0 => cost::p0_chooses(cmp, cmp),
        Party::P1 => cmp,
    }
}

/// [`Session::trunc_nonneg`] by `k` bits from a `b`-bit ring into `out`.
pub fn trunc_nonneg_cost(n: usize, b: u32, k: u32, out: Ring) -> Cost {
    trunc_nonneg_cost_by(n, b, k, out, Party::P1)
}

/// [`trunc_nonneg_cost`] with `chooser` choosing in the carry's leaf OTs.
fn trunc_nonneg_cost_by(n: usize, b: u32, k: u32, out: Ring, chooser: Party) -> Cost {
    trunc_nonneg_cost_form(n, b, k, out, chooser, TruncForm::Tree)
}

/// [`Session::trunc_nonneg_form`]'s cost, `chooser` choosing in the carry's leaf OTs.
fn trunc_nonneg_cost_form(
    n: usize,
    b: u32,
    k: u32,
    out: Ring,
    chooser: Party,
    form: TruncForm,
) -> Cost {
    let mut c = Cost::default();
    if form.is_flat_at(k) {
        c = c + chosen_by(cost::millionaire_flat(n, k), chooser) + cost::join_b2a(out, n);
    } else if k >= 1 {
        c = c + chosen_by(cost::millionaire(n, k), chooser) + cost::b2a(out, n);
    }
    if b - k < out.bits() {
        c = c + cost::or_bits(n, out.bits() - (b - k));
    }
    c
}

/// [`Session::gelu`] on `n` elements of a ring of `ell` bits.
pub fn gelu_cost(spec: &GeluSpec<'_>, ell: u32, n: usize) -> Result<Cost> {
    spec.check(ell)?;
    let sh = spec.s - spec.f;
    let (lr, rm, rp) = (
        Ring::new(ell)?,
        Ring::new(spec.m)?,
        Ring::new(spec.product_bits)?,
    );
    if !spec.signed {
        let rh = Ring::new(spec.s + 1)?;
        return Ok(chosen_by(
            cost::millionaire_leaves(n, rm.bits() - 1, 0, WIDE_LEAVES),
            spec.chooser,
        ) + cost::mux(lr, n)
            + cost::millionaire_leaves(2 * n, rm.bits() - 1, 0, WIDE_LEAVES)
            + cost::b2a(rp, n)
            + lut_cost(n, spec.j, rh)
            + lut_cost(n, spec.j, rp)
            + cost::mul(rp, n)
            + trunc_nonneg_cost_form(n, rp.bits(), sh + spec.e, rh, Party::P1, TruncForm::Flat)
            + cost::mux(rh, n)
            + trunc_nonneg_cost(n, rh.bits(), 0, lr));
    }
    Ok(chosen_by(
        cost::millionaire_leaves(3 * n, spec.m - 1, 0, WIDE_LEAVES),
        spec.chooser,
    ) + cost::b2a(if rp.bits() > ell { rp } else { lr }, n)
        + lut_cost(n, spec.j, Ring::new(spec.product_bits - sh - spec.e)?)
        + lut_cost(n, spec.j, Ring::new(sh + spec.e + 3)?)
        + mul_nonneg_small_cost(n, sh + spec.e + 3, rp.bits())
        + trunc_nonneg_cost_form(n, rp.bits(), sh + spec.e, lr, Party::P1, TruncForm::Flat)
        + gated_sum_cost(lr, n))
}

/// [`Session::gated_sum`] on `n` values of `ring`.
fn gated_sum_cost(ring: Ring, n: usize) -> Cost {
    let n64 = n as u64;
    Cost {
        bits: 2 * (2 * n64 + one_of_n_answer_bits(n, 2, Group::Pow2(ring.bits()))),
        cots_p0_sends: 2 * n64,
        cots_p1_sends: 2 * n64,
    }
}

/// [`Session::softmax`] on `n` elements in rows of `row` of a ring of `ell` bits.
pub fn softmax_cost(spec: &SoftmaxSpec<'_>, ell: u32, n: usize, row: usize) -> Result<Cost> {
    let ry = Ring::new(spec.product_bits())?;
    Ok(softmax_front_cost(spec, ell, n, row, ry)?
        + normalized_cost(n / row, &spec.norm(), ry, 0)?
        + cost::mul(ry, n)
        + trunc_nonneg_cost_form(
            n,
            ry.bits(),
            spec.big_k - spec.s,
            Ring::new(ell)?,
            Party::P0,
            TruncForm::Flat,
        ))
}

/// [`Session::softmax_matmul`] on `n` elements in rows of `row` of a ring of `ell` bits, `out`
/// outputs per row; the product's own cost is its protocol's.
pub fn softmax_matmul_cost(
    spec: &SoftmaxSpec<'_>,
    ell: u32,
    n: usize,
    row: usize,
    out: usize,
) -> Result<Cost> {
    let (lr, rb) = (Ring::new(ell)?, Ring::new(SM_LINEAR_RING)?);
    let no = n / row * out;
    Ok(softmax_front_cost(spec, ell, n, row, lr)?
        + normalized_cost(n / row, &spec.norm(), rb, 0)?
        + mul_nonneg_small_cost(no, ell, SM_LINEAR_RING)
        + trunc_nonneg_cost_form(
            no,
            SM_LINEAR_RING,
            spec.big_k,
            lr,
            Party::P0,
            TruncForm::Flat,
        ))
}

/// Softmax's steps before the reciprocal, E in the ring `er`.
fn softmax_front_cost(
    spec: &SoftmaxSpec<'_>,
    ell: u32,
    n: usize,
    row: usize,
    er: Ring,
) -> Result<Cost> {
    spec.check(ell, row)?;
    let rows = n / row;
    let (s, j, k) = (spec.s, spec.j, spec.k);
    let (rm, rq) = (
        Ring::new(spec.m + spec.extra)?,
        Ring::new(spec.m - (s - spec.f))?,
    );
    let (rt, rpe) = (Ring::new(s + 2)?, Ring::new(2 * s + 2)?);
    let leaves = if spec.extra > 0 {
        WIDE_LEAVES
    } else {
        LEAF_BITS
    };
    Ok(tournament_cost(rm, rows, row, leaves)
        + cost::millionaire_leaves(2 * n, rm.bits() - 1, rm.bits() - 1 - k, leaves)
        + cost::b2a(rq, 2 * n)
        + if spec.wide_tables {
            lut_cost(n, j - k, rpe) + lut_cost(n, k, rpe)
        } else {
            lut_cost(n, j - k, rt)
                + lut_cost(n, k, rt)
                + trunc_nonneg_cost(2 * n, rt.bits(), 0, rpe)
        }
        + cost::mul(rpe, n)
        + trunc_nonneg_cost_form(n, rpe.bits(), s, er, Party::P1, TruncForm::Flat)
        + cost::mux(er, n))
}

/// Bits of one party's Gilboa cross term on the `w` bits of its share into a `b`-bit ring: one
/// choice bit and a (b − i)-bit message per bit i.
fn cross_bits(w: u32, b: u32) -> u64 {
    (0..w).map(|i| 1 + (b - i) as u64).sum()
}

/// [`Session::mul_nonneg_small`] of `n` values of `wx` bits by values of a `b`-bit ring.
fn mul_nonneg_small_cost(n: usize, wx: u32, b: u32) -> Cost {
    let n64 = n as u64;
    Cost {
        bits: 2 * n64 * (cross_bits(wx, b) + (1 + b - wx) as u64),
        cots_p0_sends: n64 * (wx as u64 + 1),
        cots_p1_sends: n64 * (wx as u64 + 1),
    }
}

/// [`Session::normalized_rows`] on `rows` values into `out`.
fn normalized_cost(rows: usize, norm: &Norm<'_>, out: Ring, riders: usize) -> Result<Cost> {
    let (rv, ri, ruq) = norm.rings()?;
    let cb = rv.bits() - 1;
    let first_w = norm.e_lo.max(LOOKUP_IDX + 1);
    let nc = (norm.bits - norm.e_lo - 1) as usize;
    let nw = norm.bits.saturating_sub(first_w) as usize;
    let ne = (norm.bits - norm.e_lo) as usize;
    let values = rows * (nc + nw) + riders;
    let cmp = if norm.wide_leaves {
        cost::millionaire_leaves(values, cb, cb - LOOKUP_FRAC, WIDE_LEAVES)
    } else {
        cost::millionaire_split(values, cb, cb - LOOKUP_FRAC)
    };
    let lut = lut_cost(rows, ri.bits(), ruq);
    Ok(chosen_by(cmp, Party::P0)
        + cost::b2a(ruq, rows * 2 * nw + riders)
        + cost::mux(ri, rows * ne)
        + cost::mux(ruq, 2 * rows * ne)
        + lut
        + cost::p0_chooses(lut, lut)
        + trunc_nonneg_cost_form(rows, ruq.bits(), norm.drop, out, Party::P0, TruncForm::Flat))
}

/// [`Session::layernorm`] on `n` elements (rows of `spec.d`) of a ring of `ell` bits.
pub fn layernorm_cost(spec: &LayerNormSpec<'_>, ell: u32, n: usize) -> Result<Cost> {
    let pw = LN_PRODUCT_RING;
    Ok(layernorm_front_cost(spec, ell, n, Ring::new(pw)?, 0)?
        + mul_nonneg_small_cost(n, spec.m, pw)
        + layernorm_tail_cost(ell, n, spec.tail)?)
}

/// [`Session::layernorm_linear`] on `n` elements (rows of `spec.d`) of a ring of `ell` bits into
/// `out` values per row; the linear layer's own cost is its protocol's.
pub fn layernorm_linear_cost(
    spec: &LayerNormSpec<'_>,
    ell: u32,
    n: usize,
    out: usize,
) -> Result<Cost> {
    spec.check_linear(ell)?;
    let lr = Ring::new(ell)?;
    let no = n / spec.d.max(1) * out;
    Ok(
        layernorm_front_cost(spec, ell, n, Ring::new(LN_LINEAR_RING)?, no)?
            + mul_nonneg_small_cost(no, spec.linear_bits(), LN_LINEAR_RING)
            + trunc_nonneg_cost_form(no, LN_LINEAR_RING, LN_SHIFT, lr, Party::P0, spec.tail),
    )
}

/// LayerNorm's mean, squares and inverse root (R into `root`, with `riders` carries in its
/// flights) on `n` elements.
fn layernorm_front_cost(
    spec: &LayerNormSpec<'_>,
    ell: u32,
    n: usize,
    root: Ring,
    riders: usize,
) -> Result<Cost> {
    spec.check(ell)?;
    let rows = n / spec.d;
    let m = spec.m;
    let lr = Ring::new(ell)?;
    let (rwide, rv) = (Ring::new(LN_WIDE_RING)?, spec.norm().rings()?.0);
    let (wx, b) = (m, spec.square_ring());
    let n64 = n as u64;
    let square = Cost {
        bits: n64 * (cross_bits(wx, b) + (b - wx) as u64 + (1 + b - wx) as u64 + (b - wx) as u64),
        cots_p0_sends: n64 * (wx as u64 + 2),
        cots_p1_sends: n64,
    };
    let mean = if spec.d == 1 {
        Cost::default()
    } else if spec.d.is_power_of_two() {
        let c = lut_cost(rows, spec.d.trailing_zeros() + 1, lr);
        match spec.mean_chooser {
            Party::P1 => c,
            Party::P0 => Cost {
                cots_p0_sends: c.cots_p1_sends,
                cots_p1_sends: c.cots_p0_sends,
                ..c
            },
        }
    } else {
        trunc_nonneg_cost(rows, ell, 0, rwide) + cost::trunc(rwide, spec.t, rows)
    };
    let extend = if rv.bits() <= b {
        Cost::default()
    } else {
        trunc_nonneg_cost(rows, b, 0, rv)
    };
    Ok(mean + extend + square + normalized_cost(rows, &spec.norm(), root, riders)?)
}

/// The per-element truncation of c·R by 18 bits that ends [`Session::layernorm`], on `n`
/// elements of a ring of `ell` bits, in `form` ([`LayerNormSpec::tail`]).
pub fn layernorm_tail_cost(ell: u32, n: usize, form: TruncForm) -> Result<Cost> {
    let lr = Ring::new(ell)?;
    Ok(trunc_nonneg_cost_form(
        n,
        LN_PRODUCT_RING,
        LN_SHIFT,
        lr,
        Party::P0,
        form,
    ))
}

/// Latency hops of that truncation in `form` (its carry comparison and B2A, as the known-sign
/// truncation's).
pub fn layernorm_tail_hops(form: TruncForm) -> u32 {
    cost::trunc_known_sign_hops(LN_SHIFT, form)
}
