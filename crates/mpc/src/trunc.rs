//! Truncation by s bits with exact floor semantics (docs/fixed-point.md: `floor(x / 2^s)` of the
//! signed value, reduced mod 2^ℓ).
//!
//! Write `u = x + 2^{ℓ−1}` (exact) or `u = x + 2^{ℓ−2}` (known sign), an unsigned value with
//! shares `u0 + u1 = u + w·2^ℓ`. Then [CrypTFlow2 §5.1, Cheetah §5.3]
//!
//! `floor(u / 2^s) = (u0 >> s) + (u1 >> s) + c − w·2^{ℓ−s}`,
//!
//! with `c = [u0 mod 2^s + u1 mod 2^s ≥ 2^s]` the carry of the low bits and `w` the wrap. Both
//! are computed on shares and converted to arithmetic shares:
//! * exact: one millionaire on the low ℓ−1 bits whose low s bits form their own subtree gives
//!   XOR shares of `c` and of the carry `k` into bit ℓ−1; `w = maj(msb(u0), msb(u1), k)` comes
//!   as arithmetic shares mod 2^s from one 1-of-4 OT (P1 chooses by `(msb(u1), k1)`), and `c`
//!   through B2A. Only `w mod 2^s` matters, since it is multiplied by 2^{ℓ−s}.
//! * known sign (|x| < 2^{ℓ−2}, so `msb(u) = 0`): `w = msb(u0) ∨ msb(u1)` [Cheetah §5.3] is one
//!   affine OT mod 2^s, and `c` needs a millionaire on s bits only.
//! * known sign, flat ([`TruncForm::Flat`], for latency-bound links): the carry's comparison
//!   stops below its root ([`Session::compare_flat`]: two halves of up to 6 bits, one leaf each
//!   for s ≤ 12, no AND level) and its join `c = gt_hi + eq_hi·gt_lo` is computed directly in
//!   arithmetic shares, in the flight that would have carried the B2A
//!   ([`Session::join_b2a_or`]). At s = 12 that is two flights and one exchange against the
//!   tree's two AND levels more, for 241 more bits per element at ℓ = 37.

use transport::Channel;

use crate::bits::{BitReader, BitWriter};
use crate::cots::{
    affine_choose, affine_send, one_of_n_answer_bits, one_of_n_choose, one_of_n_send, Group,
};
use crate::session::{Party, Session};
use crate::{MpcError, Result, Ring, Shares};

/// How the known-sign truncation computes its carry (both exact, the same result).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TruncForm {
    /// The comparison tree of 2–3-bit leaves, then a B2A: fewest bits.
    #[default]
    Tree,
    /// Two leaves of up to 6 bits joined inside the B2A: fewest flights (s ≥ 2; at s = 1 the
    /// tree is one leaf already and runs instead).
    Flat,
}

impl TruncForm {
    /// Whether a carry out of `bits` bits runs flat in this form (at 1 bit the tree is already
    /// one leaf).
    pub(crate) fn is_flat_at(self, bits: u32) -> bool {
        self == TruncForm::Flat && bits >= 2
    }
}

fn check_shift(ring: Ring, s: u32) -> Result<()> {
    let l = ring.bits();
    if s == 0 || s + 2 > l {
        return Err(MpcError::InvalidShift {
            shift: s,
            bits: l,
            max: l - 2,
        });
    }
    Ok(())
}

impl Session {
    /// Exact `floor(x / 2^s)` of signed values; the result has scale `x.scale − s` (saturating
    /// at 0). Requires 1 ≤ s ≤ ℓ − 2.
    pub fn trunc<C: Channel + ?Sized>(&mut self, ch: &mut C, x: &Shares, s: u32) -> Result<Shares> {
        Ok(self.trunc_inner(ch, x, s)?.0)
    }

    /// `ReLU(floor(x / 2^s))`, exact, for signed `x`: the truncation's millionaire already
    /// yields the sign (`DReLU(floor(x/2^s)) = DReLU(x)`), so only a MUX is added — far cheaper
    /// than [`Session::trunc`] followed by [`Session::relu`]. Requires 1 ≤ s ≤ ℓ − 2.
    pub fn trunc_relu<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        x: &Shares,
        s: u32,
    ) -> Result<Shares> {
        let (t, d) = self.trunc_inner(ch, x, s)?;
        let data = self.mux(ch, t.ring, &d, &t.data)?;
        Ok(Shares { data, ..t })
    }

    /// Exact truncation, also returning XOR shares of `[x ≥ 0]`.
    fn trunc_inner<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        x: &Shares,
        s: u32,
    ) -> Result<(Shares, Vec<u8>)> {
        let ring = x.ring;
        check_shift(ring, s)?;
        ring.check("trunc input", &x.data)?;
        let l = ring.bits();
        let n = x.len();
        let p0 = self.party() == Party::P0;
        let half = 1u64 << (l - 1);
        let u = offset_by_p0(x, p0, half);
        let v = self.carry_inputs(&u, l - 1);
        let (k, c) = self.compare(ch, &v, l - 1, s)?;

        // One flight each way: P1 sends its 1-of-4 choices (msb(u1), k1) and its B2A bits; P0
        // answers with the 1-of-4 table rows and the B2A messages.
        let gw = Group::Pow2(s);
        let gc = Group::Pow2(l - 1);
        let (w_sh, c_prod) = match self.party() {
            Party::P1 => {
                let (_, mut r) = self.cots(ch, 0, 3 * n)?;
                let mut wr = BitWriter::default();
                let choice: Vec<u64> = u
                    .iter()
                    .zip(&k)
                    .map(|(&a, &kk)| ring.msb(a) as u64 | (kk as u64) << 1)
                    .collect();
                let st4 = one_of_n_choose(&mut r, 2, gw, &choice, &mut wr);
                let stc = affine_choose(&mut r, &|_| gc, &c, &mut wr);
                self.send(ch, wr.finish())?;
                let bits = one_of_n_answer_bits(n, 2, gw) + n as u64 * gc.width() as u64;
                let got = crate::bits::recv_bits(ch, bits, "trunc answer")?;
                let mut rd = BitReader::new(&got, bits, "trunc answer")?;
                (
                    st4.finish(&mut rd, "trunc answer")?,
                    stc.finish(&mut rd, "trunc answer")?,
                )
            }
            Party::P0 => {
                let (mut sc, _) = self.cots(ch, 3 * n, 0)?;
                let bits = 3 * n as u64;
                let got = crate::bits::recv_bits(ch, bits, "trunc choices")?;
                let mut rd = BitReader::new(&got, bits, "trunc choices")?;
                let mut wr = BitWriter::default();
                // f(v) = maj(m0, v0, k0 ⊕ v1) with v = (msb(u1), k1).
                let table = |i: usize, v: u64| {
                    let m0 = ring.msb(u[i]) as u64;
                    let m1 = v & 1;
                    let kk = (k[i] as u64 & 1) ^ (v >> 1);
                    (m0 & m1) | (kk & (m0 ^ m1))
                };
                let w_sh = one_of_n_send(&mut sc, 2, gw, n, &mut rd, &table, &mut wr);
                let zero = vec![0u64; n];
                let f1: Vec<u64> = c.iter().map(|&b| b as u64).collect();
                let stc = affine_send(&mut sc, &|_| gc, &zero, &f1, &mut wr);
                self.send(ch, wr.finish())?;
                let c_prod = stc.finish(&mut rd);
                (w_sh, c_prod)
            }
        };
        let off = if p0 { 1u64 << (l - 1 - s) } else { 0 };
        let data = (0..n)
            .map(|i| {
                let c_arith = ring.sub(c[i] as u64, ring.mul(2, c_prod[i]));
                let wterm = ring.reduce(w_sh[i] << (l - s));
                ring.sub(ring.sub(ring.add(u[i] >> s, c_arith), wterm), off)
            })
            .collect();
        // [x ≥ 0] = 1 ⊕ msb(x0) ⊕ msb(x1) ⊕ k, and msb(u0) = msb(x0) ⊕ 1 for P0.
        let d: Vec<u8> = u.iter().zip(&k).map(|(&a, &kk)| ring.msb(a) ^ kk).collect();
        Ok((
            Shares {
                ring,
                scale: x.scale.saturating_sub(s),
                data,
            },
            d,
        ))
    }

    /// Shares over `ring` of the XOR-shared bits `d` (a B2A) and, side by side in the same
    /// flight of affine OTs, shares in `g_or` of `m0 ∨ m1` for the bits `m` (empty: none).
    pub(crate) fn b2a_or<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        ring: Ring,
        d: &[u8],
        m: &[u8],
        g_or: Group,
    ) -> Result<(Vec<u64>, Vec<u64>)> {
        let n = d.len();
        let gb = Group::Pow2(ring.bits().saturating_sub(1).max(1));
        let (f0, f1): (Vec<u64>, Vec<u64>) = if self.party() == Party::P0 {
            (
                std::iter::repeat_n(0, n)
                    .chain(m.iter().map(|&b| (b & 1) as u64))
                    .collect(),
                d.iter()
                    .map(|&b| (b & 1) as u64)
                    .chain(std::iter::repeat_n(1, m.len()))
                    .collect(),
            )
        } else {
            (Vec::new(), Vec::new())
        };
        let c: Vec<u8> = d.iter().chain(m).copied().collect();
        let group = |i: usize| if i < n { gb } else { g_or };
        let prod = self.ot_p0_to_p1(ch, n + m.len(), &group, &f0, &f1, &c)?;
        let b = d
            .iter()
            .zip(&prod)
            .map(|(&bit, &p)| ring.sub((bit & 1) as u64, ring.mul(2, p)))
            .collect();
        Ok((b, prod[n..].to_vec()))
    }

    /// Arithmetic shares in `ring` of `h + e·g`, from XOR shares of bits with `h·e = 0` (a flat
    /// comparison's `gt_hi`, `eq_hi`, `gt_lo`: the comparison is `gt_hi ⊕ eq_hi ∧ gt_lo`, whose
    /// terms are exclusive), and shares in `g_or` of `m0 ∨ m1` — the join and the B2A of a
    /// comparison in one flight of affine OTs from P0 to P1. Writing each bit as
    /// `x = x0 + (1 − 2x0)·x1` and `z1 = e1·g1` (P1's own product):
    ///
    /// `h + e·g = h0 + e0·g0 + (1 − 2h0)·h1 + e0(1 − 2g0)·g1 + g0(1 − 2e0)·e1 + (1 − 2e0)(1 − 2g0)·z1`,
    ///
    /// every term past P0's own a coefficient P0 knows times a bit P1 knows: one affine OT each
    /// (P0 offers 0 and the coefficient, P1 chooses by its bit), `4·(1 + ℓ)` bits per element.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn join_b2a_or<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        ring: Ring,
        h: &[u8],
        e: &[u8],
        g: &[u8],
        m: &[u8],
        g_or: Group,
    ) -> Result<(Vec<u64>, Vec<u64>)> {
        let n = h.len();
        let p0 = self.party() == Party::P0;
        let gr = Group::Pow2(ring.bits());
        let bit = |v: &[u8], i: usize| (v[i] & 1) as u64;
        // Instances: [h1-term | g1-term | e1-term | z1-term | OR], n each and m.len().
        let (f0, f1, c): (Vec<u64>, Vec<u64>, Vec<u8>) = if p0 {
            let pm = |b: u64| ring.sub(1, 2 * b); // 1 − 2b
            let mut f1 = Vec::with_capacity(4 * n + m.len());
            f1.extend((0..n).map(|i| pm(bit(h, i))));
            f1.extend((0..n).map(|i| ring.mul(bit(e, i), pm(bit(g, i)))));
            f1.extend((0..n).map(|i| ring.mul(bit(g, i), pm(bit(e, i)))));
            f1.extend((0..n).map(|i| ring.mul(pm(bit(e, i)), pm(bit(g, i)))));
            f1.extend(std::iter::repeat_n(1, m.len()));
            let f0 = std::iter::repeat_n(0, 4 * n)
                .chain(m.iter().map(|&b| (b & 1) as u64))
                .collect();
            (f0, f1, Vec::new())
        } else {
            let c = h
                .iter()
                .chain(g)
                .chain(e)
                .copied()
                .chain((0..n).map(|i| e[i] & g[i]))
                .chain(m.iter().copied())
                .map(|b| b & 1)
                .collect();
            (Vec::new(), Vec::new(), c)
        };
        let group = |i: usize| if i < 4 * n { gr } else { g_or };
        let prod = self.ot_p0_to_p1(ch, 4 * n + m.len(), &group, &f0, &f1, &c)?;
        // P0 adds its own term h0 + e0·g0.
        let own = |i: usize| {
            if p0 {
                bit(h, i) + bit(e, i) * bit(g, i)
            } else {
                0
            }
        };
        let r = (0..n)
            .map(|i| (0..4).fold(own(i), |a, k| ring.add(a, prod[k * n + i])))
            .collect();
        Ok((r, prod[4 * n..].to_vec()))
    }

    /// Exact `floor(x / 2^s)` for signed values with |x| < 2^{ℓ−2} (the fixed-point range
    /// assumption), cheaper than [`Session::trunc`]: outside that range the result is wrong.
    /// Requires 1 ≤ s ≤ ℓ − 2.
    pub fn trunc_known_sign<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        x: &Shares,
        s: u32,
    ) -> Result<Shares> {
        self.trunc_known_sign_with(ch, x, s, TruncForm::Tree)
    }

    /// [`trunc_known_sign`](Self::trunc_known_sign) with the carry computed in `form`
    /// (the same result; costs: [`crate::cost::trunc_known_sign_form`]).
    pub fn trunc_known_sign_with<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        x: &Shares,
        s: u32,
        form: TruncForm,
    ) -> Result<Shares> {
        let ring = x.ring;
        check_shift(ring, s)?;
        ring.check("trunc input", &x.data)?;
        let l = ring.bits();
        let n = x.len();
        let p0 = self.party() == Party::P0;
        let quarter = 1u64 << (l - 2);
        let u = offset_by_p0(x, p0, quarter);
        let v = self.carry_inputs(&u, s);
        let m: Vec<u8> = u.iter().map(|&a| ring.msb(a)).collect();
        // The carry's B2A (flat: with the comparison's join) and w = m0 ∨ m1 mod 2^s in one
        // flight.
        let (c_arith, w) = if form.is_flat_at(s) {
            let (h, e, g) = self.compare_flat(ch, &v, s)?;
            self.join_b2a_or(ch, ring, &h, &e, &g, &m, Group::Pow2(s))?
        } else {
            let c = self.millionaire(ch, &v, s)?;
            self.b2a_or(ch, ring, &c, &m, Group::Pow2(s))?
        };
        let off = if p0 { 1u64 << (l - 2 - s) } else { 0 };
        let data = (0..n)
            .map(|i| {
                let wterm = ring.reduce(w[i] << (l - s));
                ring.sub(ring.sub(ring.add(u[i] >> s, c_arith[i]), wterm), off)
            })
            .collect();
        Ok(Shares {
            ring,
            scale: x.scale.saturating_sub(s),
            data,
        })
    }
}

impl Session {
    /// Cheetah's one-bit-error truncation for |x| < 2^{ℓ−2} [Cheetah §5.3]: drops the carry of
    /// the low s bits, so the result is `floor(x / 2^s)` or `floor(x / 2^s) − 1` (which one
    /// depends on the random shares; [`crate::plain::trunc_approx_allowed`]). Not the binding
    /// fixed-point semantics — for planners that accept a 1-ulp error. One affine OT mod 2^s:
    /// 1 + s bits per element.
    pub fn trunc_known_sign_approx<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        x: &Shares,
        s: u32,
    ) -> Result<Shares> {
        let ring = x.ring;
        check_shift(ring, s)?;
        ring.check("trunc input", &x.data)?;
        let l = ring.bits();
        let n = x.len();
        let p0 = self.party() == Party::P0;
        let quarter = 1u64 << (l - 2);
        let u = offset_by_p0(x, p0, quarter);
        let gw = Group::Pow2(s);
        let m: Vec<u8> = u.iter().map(|&a| ring.msb(a)).collect();
        let f0: Vec<u64> = m.iter().map(|&b| b as u64).collect();
        let f1 = vec![1u64; n];
        let w = self.ot_p0_to_p1(ch, n, &|_| gw, &f0, &f1, &m)?;
        let off = if p0 { 1u64 << (l - 2 - s) } else { 0 };
        let data = (0..n)
            .map(|i| ring.sub(ring.sub(u[i] >> s, ring.reduce(w[i] << (l - s))), off))
            .collect();
        Ok(Shares {
            ring,
            scale: x.scale.saturating_sub(s),
            data,
        })
    }
}

/// Shares of x + c: P0 adds the public constant c to its share, P1 keeps its own.
pub(crate) fn offset_by_p0(x: &Shares, p0: bool, c: u64) -> Vec<u64> {
    if p0 {
        x.data.iter().map(|&a| x.ring.add(a, c)).collect()
    } else {
        x.data.clone()
    }
}
