//! GELU and softmax on shares, exactly equal to the fixed-point definitions of `nn::approx`
//! (docs/protocols/transformer.md gives the derivations and costs).
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

use transport::Channel;

use crate::bits::{mask, BitReader, BitWriter};
use crate::cost::{self, Cost};
use crate::cots::{one_of_n_answer_bits, one_of_n_choose, one_of_n_send, Group};
use crate::session::{Party, Session};
use crate::{MpcError, Result, Ring, Shares};

/// The parameters and tables of GELU (`nn::approx::Gelu`, whose documentation gives the
/// integer semantics).
#[derive(Clone, Copy, Debug)]
pub struct GeluSpec<'a> {
    pub s: u32,
    pub m: u32,
    pub f: u32,
    pub j: u32,
    pub e: u32,
    /// Bits of the ring of the slope product (its values stay below 2^{bits−1}).
    pub product_bits: u32,
    /// Bits of the ring in which h is formed (|h| < 2^{bits−2}).
    pub h_bits: u32,
    pub a: &'a [i64],
    pub b: &'a [u64],
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
}

fn bad(what: &'static str, reason: &'static str) -> MpcError {
    MpcError::InvalidSpec { what, reason }
}

fn ring(bits: u32) -> Result<Ring> {
    Ring::new(bits)
}

impl GeluSpec<'_> {
    fn check(&self, ell: u32) -> Result<()> {
        let w = "GELU";
        if self.f >= self.s || self.s >= self.m || self.m > ell {
            return Err(bad(w, "need f < s < m <= ell"));
        }
        if self.j >= self.m - (self.s - self.f) - 1 || self.j > 12 {
            return Err(bad(
                w,
                "index bits j must be below m - s + f - 1 and at most 12",
            ));
        }
        if self.a.len() != 1 << self.j || self.b.len() != 1 << self.j {
            return Err(bad(w, "tables must have 2^j entries"));
        }
        if self.product_bits > 64 || self.product_bits < self.s - self.f + self.e + 2 {
            return Err(bad(w, "product ring too small or above 64 bits"));
        }
        let pmax =
            self.b.iter().max().copied().unwrap_or(0) as u128 * mask(self.s - self.f) as u128;
        if pmax >= 1u128 << (self.product_bits - 1) {
            return Err(bad(w, "slope table overflows the product ring"));
        }
        if self.h_bits < 4 || self.h_bits >= ell {
            return Err(bad(w, "h ring must have 4 to ell - 1 bits"));
        }
        Ok(())
    }
}

impl SoftmaxSpec<'_> {
    fn quotient_bits(&self) -> u32 {
        self.big_k - self.s + 1
    }
    fn division_bits(&self) -> u32 {
        self.big_k.max(self.s + 10 + self.quotient_bits()) + 2
    }
    fn product_bits(&self) -> u32 {
        self.s + self.quotient_bits() + 1
    }
    fn check(&self, ell: u32, row: usize) -> Result<()> {
        let w = "softmax";
        if row == 0 || row > 512 {
            return Err(bad(w, "rows of 1 to 512 values"));
        }
        if self.f >= self.s || self.s >= self.m || self.m > ell || 2 * self.s + 2 > 64 {
            return Err(bad(w, "need f < s < m <= ell and 2s + 2 <= 64"));
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
        if self.big_k < self.s || self.division_bits() > 64 || self.big_k - self.s >= ell {
            return Err(bad(w, "reciprocal scale K out of range"));
        }
        Ok(())
    }
}

impl Session {
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
        let n = idx.len();
        let g = Group::Pow2(out.bits());
        let km = mask(k);
        match self.party() {
            Party::P1 => {
                let (_, mut r) = self.cots(ch, 0, n * k as usize)?;
                let mut wr = BitWriter::default();
                let c: Vec<u64> = idx.iter().map(|&v| v & km).collect();
                let st = one_of_n_choose(&mut r, k, g, &c, &mut wr);
                self.send(ch, wr.finish())?;
                let bits = one_of_n_answer_bits(n, k, g);
                let got = crate::bits::recv_bits(ch, bits, "lookup answer")?;
                st.finish(
                    &mut BitReader::new(&got, bits, "lookup answer")?,
                    "lookup answer",
                )
            }
            Party::P0 => {
                let (mut sc, _) = self.cots(ch, n * k as usize, 0)?;
                let bits = n as u64 * k as u64;
                let got = crate::bits::recv_bits(ch, bits, "lookup choices")?;
                let mut rd = BitReader::new(&got, bits, "lookup choices")?;
                let mut wr = BitWriter::default();
                let tab = |i: usize, v: u64| out.reduce(table[((idx[i] + v) & km) as usize]);
                let sh = one_of_n_send(&mut sc, k, g, n, &mut rd, &tab, &mut wr);
                self.send(ch, wr.finish())?;
                Ok(sh)
            }
        }
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
        let mk = mask(bits);
        let v: Vec<u64> = match self.party() {
            Party::P0 => x.iter().map(|&a| a & mk).collect(),
            Party::P1 => x.iter().map(|&b| !b & mk).collect(),
        };
        self.compare(ch, &v, bits, split)
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
        if k >= 1 {
            let (c, _) = self.carries(ch, &x.data, k, 0)?;
            let ca = self.b2a(ch, out, &c)?;
            for (d, c) in data.iter_mut().zip(ca) {
                *d = out.add(*d, c);
            }
        }
        let hi = b - k;
        if hi < out.bits() {
            let msb: Vec<u8> = x.data.iter().map(|&v| x.ring.msb(v)).collect();
            let w = self.or_shares(ch, &msb, Group::Pow2(out.bits() - hi))?;
            for (d, w) in data.iter_mut().zip(w) {
                *d = out.sub(*d, out.reduce(w << hi));
            }
        }
        Ok(Shares {
            ring: out,
            scale: x.scale.saturating_sub(k),
            data,
        })
    }

    /// Sign extension into `out` of values with |x| < 2^{w−2} shared mod 2^w.
    fn extend_signed<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        x: &Shares,
        out: Ring,
    ) -> Result<Shares> {
        let w = x.ring.bits();
        let off = 1u64 << (w - 2);
        let p0 = self.party() == Party::P0;
        let u = Shares {
            data: x
                .data
                .iter()
                .map(|&v| if p0 { x.ring.add(v, off) } else { v })
                .collect(),
            ..*x
        };
        let mut e = self.trunc_nonneg(ch, &u, 0, out)?;
        if p0 {
            e.data.iter_mut().for_each(|v| *v = out.sub(*v, off));
        }
        Ok(e)
    }

    /// GELU of shares at scale 2^s (output at scale 2^s), equal to `nn::approx::Gelu::eval`.
    pub fn gelu<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        x: &Shares,
        spec: &GeluSpec<'_>,
    ) -> Result<Shares> {
        let lr = x.ring;
        spec.check(lr.bits())?;
        lr.check("gelu input", &x.data)?;
        let p0 = self.party() == Party::P0;
        let (s, m, f, j, e) = (spec.s, spec.m, spec.f, spec.j, spec.e);
        let sh = s - f;
        let (rm, rq, rp, rh) = (
            ring(m)?,
            ring(m - sh)?,
            ring(spec.product_bits)?,
            ring(spec.h_bits)?,
        );
        // Sign on the reduced ring, ReLU in Z_{2^ℓ}, |x| mod 2^m = 2·ReLU(x) − x.
        let xm: Vec<u64> = x.data.iter().map(|&v| rm.reduce(v)).collect();
        let d = self.drelu(ch, rm, &xm)?;
        let r = self.mux(ch, lr, &d, &x.data)?;
        let a: Vec<u64> = r
            .iter()
            .zip(&x.data)
            .map(|(&ri, &xi)| rm.sub(rm.reduce(ri.wrapping_mul(2)), rm.reduce(xi)))
            .collect();
        // Segment index q = a >> sh (mod 2^{m−sh}) and offset frac = a mod 2^sh.
        let (c, _) = self.carries(ch, &a, sh, 0)?;
        let cp = self.b2a(ch, rp, &c)?;
        let q: Vec<u64> = a
            .iter()
            .zip(&cp)
            .map(|(&ai, &ci)| rq.add(ai >> sh, rq.reduce(ci)))
            .collect();
        let frac: Vec<u64> = a
            .iter()
            .zip(&cp)
            .map(|(&ai, &ci)| rp.sub(ai & mask(sh), rp.reduce(ci << sh)))
            .collect();
        // g = [q < 2^j] = 1 ⊕ DReLU(q − 2^j).
        let qs: Vec<u64> = q
            .iter()
            .map(|&v| if p0 { rq.sub(v, 1 << j) } else { v })
            .collect();
        let g: Vec<u8> = self
            .drelu(ch, rq, &qs)?
            .into_iter()
            .map(|b| b ^ p0 as u8)
            .collect();
        let idx: Vec<u64> = q.iter().map(|&v| v & mask(j)).collect();
        let ta: Vec<u64> = spec.a.iter().map(|&v| rh.from_signed(v)).collect();
        let av = self.lut(ch, &idx, j, &ta, rh)?;
        let bv = self.lut(ch, &idx, j, spec.b, rp)?;
        let prod = self.mul(
            ch,
            &Shares {
                ring: rp,
                scale: 0,
                data: bv,
            },
            &Shares {
                ring: rp,
                scale: 0,
                data: frac.clone(),
            },
        )?;
        let t = self.trunc_nonneg(ch, &prod, sh + e, rh)?;
        let h: Vec<u64> = (0..x.len())
            .map(|i| rh.sub(rh.add(av[i], t.data[i]), rh.reduce(frac[i])))
            .collect();
        let gh = self.mux(ch, rh, &g, &h)?;
        let ghl = self.extend_signed(
            ch,
            &Shares {
                ring: rh,
                scale: 0,
                data: gh,
            },
            lr,
        )?;
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

    /// Softmax of each row of `row` consecutive values, shares at scale 2^s in and out, equal
    /// to `nn::approx::Softmax::eval_row`.
    pub fn softmax<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        x: &Shares,
        row: usize,
        spec: &SoftmaxSpec<'_>,
    ) -> Result<Shares> {
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
        let p0 = self.party() == Party::P0;
        let n = x.len();
        let (s, m, f, j, k) = (spec.s, spec.m, spec.f, spec.j, spec.k);
        let sh = s - f;
        let (rm, rq, rd, ry) = (
            ring(m)?,
            ring(m - sh)?,
            ring(spec.division_bits())?,
            ring(spec.product_bits())?,
        );
        let (rt, rhi, rpe) = (ring(s + 2)?, ring(j - k)?, ring(2 * s + 2)?);
        // Row max on the reduced ring, u = max − x ≥ 0.
        let xm: Vec<u64> = x.data.iter().map(|&v| rm.reduce(v)).collect();
        let mx = self.max_groups(ch, rm, xm.chunks(row).map(|c| c.to_vec()).collect())?;
        let u: Vec<u64> = (0..n).map(|i| rm.sub(mx[i / row], xm[i])).collect();
        // Carries into bits sh and sh + k of u0 + u1: q = u >> sh and its digits.
        let (c2, c1) = self.carries(ch, &u, sh + k, sh)?;
        let c1q = self.b2a(ch, rq, &c1)?;
        let c2h = self.b2a(ch, rhi, &c2)?;
        let q: Vec<u64> = (0..n).map(|i| rq.add(u[i] >> sh, c1q[i])).collect();
        let qs: Vec<u64> = q
            .iter()
            .map(|&v| if p0 { rq.sub(v, 1 << j) } else { v })
            .collect();
        let g: Vec<u8> = self
            .drelu(ch, rq, &qs)?
            .into_iter()
            .map(|b| b ^ p0 as u8)
            .collect();
        let lo: Vec<u64> = q.iter().map(|&v| v & mask(k)).collect();
        let hi: Vec<u64> = (0..n)
            .map(|i| rhi.add(rhi.reduce(u[i] >> (sh + k)), c2h[i]))
            .collect();
        // e^{−u} ≈ EH[hi]·EL[lo] / 2^s.
        let ehv = self.lut(ch, &hi, j - k, spec.eh, rt)?;
        let elv = self.lut(ch, &lo, k, spec.el, rt)?;
        let ehw = self.trunc_nonneg(ch, &Shares::new(rt, s, ehv)?, 0, rpe)?;
        let elw = self.trunc_nonneg(ch, &Shares::new(rt, s, elv)?, 0, rpe)?;
        let pe = self.mul(ch, &ehw, &elw)?;
        let ev = self.trunc_nonneg(ch, &pe, s, rd)?;
        let ge = self.mux(ch, rd, &g, &ev.data)?;
        // One exact division per row, then y = (E·R) >> (K − s).
        let sums: Vec<u64> = ge
            .chunks(row)
            .map(|c| c.iter().fold(0, |a, &v| rd.add(a, v)))
            .collect();
        let recip = self.divide_rows(ch, &sums, spec, rd, ry)?;
        let ey = Shares {
            ring: ry,
            scale: s,
            data: ge.iter().map(|&v| ry.reduce(v)).collect(),
        };
        let ry_rows = Shares {
            ring: ry,
            scale: spec.big_k - s,
            data: (0..n).map(|i| recip[i / row]).collect(),
        };
        let prod = self.mul(ch, &ey, &ry_rows)?;
        let mut y = self.trunc_nonneg(ch, &prod, spec.big_k - s, lr)?;
        y.scale = s;
        Ok(y)
    }

    /// Restoring division `floor(2^K / S)` of each shared `S` (ring `rd`), quotient shares in
    /// `ry` (the steps of `nn::approx::Softmax::divide`).
    fn divide_rows<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        sums: &[u64],
        spec: &SoftmaxSpec<'_>,
        rd: Ring,
        ry: Ring,
    ) -> Result<Vec<u64>> {
        let p0 = self.party() == Party::P0;
        let mut rem: Vec<u64> = sums
            .iter()
            .map(|_| if p0 { 1u64 << spec.big_k } else { 0 })
            .collect();
        let mut quo = vec![0u64; sums.len()];
        for t in (0..spec.quotient_bits()).rev() {
            let sub: Vec<u64> = sums.iter().map(|&v| rd.reduce(v << t)).collect();
            let diff: Vec<u64> = rem.iter().zip(&sub).map(|(&a, &b)| rd.sub(a, b)).collect();
            let d = self.drelu(ch, rd, &diff)?;
            let taken = self.mux(ch, rd, &d, &sub)?;
            let da = self.b2a(ch, ry, &d)?;
            for i in 0..sums.len() {
                rem[i] = rd.sub(rem[i], taken[i]);
                quo[i] = ry.add(quo[i], ry.reduce(da[i] << t));
            }
        }
        Ok(quo)
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

/// [`Session::trunc_nonneg`] by `k` bits from a `b`-bit ring into `out`.
pub fn trunc_nonneg_cost(n: usize, b: u32, k: u32, out: Ring) -> Cost {
    let mut c = Cost::default();
    if k >= 1 {
        c = c + cost::millionaire(n, k) + cost::b2a(out, n);
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
    let (lr, rm, rq) = (ring(ell)?, ring(spec.m)?, ring(spec.m - sh)?);
    let (rp, rh) = (ring(spec.product_bits)?, ring(spec.h_bits)?);
    Ok(cost::drelu(rm, n)
        + cost::mux(lr, n)
        + cost::millionaire(n, sh)
        + cost::b2a(rp, n)
        + cost::drelu(rq, n)
        + lut_cost(n, spec.j, rh)
        + lut_cost(n, spec.j, rp)
        + cost::mul(rp, n)
        + trunc_nonneg_cost(n, rp.bits(), sh + spec.e, rh)
        + cost::mux(rh, n)
        + trunc_nonneg_cost(n, rh.bits(), 0, lr))
}

/// [`Session::softmax`] on `n` elements in rows of `row` of a ring of `ell` bits.
pub fn softmax_cost(spec: &SoftmaxSpec<'_>, ell: u32, n: usize, row: usize) -> Result<Cost> {
    spec.check(ell, row)?;
    let rows = n / row;
    let (s, j, k) = (spec.s, spec.j, spec.k);
    let sh = s - spec.f;
    let (lr, rm, rq) = (ring(ell)?, ring(spec.m)?, ring(spec.m - sh)?);
    let (rd, ry) = (ring(spec.division_bits())?, ring(spec.product_bits())?);
    let (rt, rhi, rpe) = (ring(s + 2)?, ring(j - k)?, ring(2 * s + 2)?);
    let step = cost::drelu(rd, rows) + cost::mux(rd, rows) + cost::b2a(ry, rows);
    let mut division = Cost::default();
    for _ in 0..spec.quotient_bits() {
        division = division + step;
    }
    Ok(cost::max_windows(rm, std::iter::repeat_n(row, rows))
        + cost::millionaire_split(n, sh + k, sh)
        + cost::b2a(rq, n)
        + cost::b2a(rhi, n)
        + cost::drelu(rq, n)
        + lut_cost(n, j - k, rt)
        + lut_cost(n, k, rt)
        + trunc_nonneg_cost(2 * n, rt.bits(), 0, rpe)
        + cost::mul(rpe, n)
        + trunc_nonneg_cost(n, rpe.bits(), s, rd)
        + cost::mux(rd, n)
        + division
        + cost::mul(ry, n)
        + trunc_nonneg_cost(n, ry.bits(), spec.big_k - s, lr))
}
