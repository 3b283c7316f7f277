//! DReLU, ReLU, ReLU6, approximate ReLU, MUX and B2A.
//!
//! * DReLU [CrypTFlow2 §4.2]: with x = x0 + x1 mod 2^ℓ, `msb(x) = msb(x0) ⊕ msb(x1) ⊕ carry`,
//!   where `carry = [x0' + x1' ≥ 2^{ℓ−1}] = [x0' > 2^{ℓ−1} − 1 − x1']` on the low ℓ−1 bits
//!   x'. So one millionaire on ℓ−1 bits (P0 inputs x0', P1 the bitwise complement of x1') gives
//!   XOR shares of `[x ≥ 0] = 1 ⊕ msb(x)`.
//! * MUX [CrypTFlow2 §4.3 with COT]: `d·x = (d0 ⊕ d1)·x0 + (d0 ⊕ d1)·x1`; each term is an
//!   affine OT over Z_{2^ℓ} (receiver: the other party's bit; sender: `f(v) = (d_P ⊕ v)·x_P`).
//!   2·(1 + ℓ) bits, one round trip.
//! * B2A: `d = d0 + d1 − 2·d0·d1`; the product is one affine OT over Z_{2^{ℓ−1}} (doubling
//!   lifts it to Z_{2^ℓ}). 1 + (ℓ − 1) bits.
//! * Approximate ReLU [Cheetah §5.2, "approximate DReLU"]: the carry is computed on the high
//!   ℓ−1−s bits only, ignoring the carry out of the low s bits. See
//!   [`crate::plain::relu_approx_allowed`] for exactly which outputs can occur.

use transport::Channel;

use crate::bits::{mask, BitReader, BitWriter};
use crate::cots::{
    affine_choose, affine_send, AffineReceiver, AffineSender, Group, RecvCots, SendCots,
};
use crate::millionaire::Tail;
use crate::session::{Party, Session};
use crate::{MpcError, Result, Ring, Shares};

impl Session {
    /// XOR shares of `[x ≥ 0]` (signed) for shares `x` over `ring`.
    pub fn drelu<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        ring: Ring,
        x: &[u64],
    ) -> Result<Vec<u8>> {
        self.drelu_high(ch, ring, x, 0)
    }

    /// DReLU comparing only bits `[drop, ℓ−1)` of the shares (`drop = 0`: exact).
    fn drelu_high<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        ring: Ring,
        x: &[u64],
        drop: u32,
    ) -> Result<Vec<u8>> {
        ring.check("drelu input", x)?;
        let l = ring.bits();
        if drop + 1 >= l {
            return Err(MpcError::InvalidShift {
                shift: drop,
                bits: l,
                max: l - 2,
            });
        }
        let low = mask(l - 1);
        let v: Vec<u64> = match self.party() {
            Party::P0 => x.iter().map(|&a| (a & low) >> drop).collect(),
            Party::P1 => x.iter().map(|&b| (!b & low) >> drop).collect(),
        };
        let carry = self.millionaire(ch, &v, l - 1 - drop)?;
        let one = (self.party() == Party::P0) as u8;
        Ok(x.iter()
            .zip(&carry)
            .map(|(&a, &k)| ring.msb(a) ^ k ^ one)
            .collect())
    }

    /// Shares of `ReLU(x) = max(x, 0)` on signed values (exact).
    pub fn relu<C: Channel + ?Sized>(&mut self, ch: &mut C, x: &Shares) -> Result<Shares> {
        let (_, data) = self.drelu_mux(ch, x.ring, &x.data, 0, &x.data, 1)?;
        Ok(Shares {
            ring: x.ring,
            scale: x.scale,
            data,
        })
    }

    /// Approximate ReLU that compares only the high ℓ−1−s bits (s = `x.scale`): equals
    /// `ReLU(x)` except that inputs `0 ≤ x ≤ 2^s − 2` may give 0 and inputs
    /// `x ≤ −2^{ℓ−1} + 2^s − 2` may give x ([`crate::plain::relu_approx_allowed`]).
    pub fn relu_approx<C: Channel + ?Sized>(&mut self, ch: &mut C, x: &Shares) -> Result<Shares> {
        let (_, data) = self.drelu_mux(ch, x.ring, &x.data, x.scale, &x.data, 1)?;
        Ok(Shares {
            ring: x.ring,
            scale: x.scale,
            data,
        })
    }

    /// Shares of `ReLU6(x) = min(max(x, 0), 6·2^s)` (s = `x.scale`), exact when
    /// `x − 6·2^s` does not wrap (|x| < 2^{ℓ−2} suffices).
    pub fn relu6<C: Channel + ?Sized>(&mut self, ch: &mut C, x: &Shares) -> Result<Shares> {
        let ring = x.ring;
        let six = ring.reduce(6u64.wrapping_shl(x.scale));
        let n = x.len();
        let mut both = x.data.clone();
        both.extend(x.data.iter().map(|&a| {
            if self.party() == Party::P0 {
                ring.sub(a, six)
            } else {
                a
            }
        }));
        let (_, m) = self.drelu_mux(ch, ring, &both, 0, &both, 1)?;
        let data = (0..n).map(|i| ring.sub(m[i], m[n + i])).collect();
        Ok(Shares {
            ring,
            scale: x.scale,
            data,
        })
    }

    /// `ReLU6(floor(x / 2^s))` = `min(max(floor(x / 2^s), 0), 6·2^s)` for `x` at scale 2^{2s}
    /// (a linear layer's output), exact when |x| < 2^{ℓ−2} (the fixed-point range assumption).
    ///
    /// Known-sign truncation gives `t` with |t| < 2^{ℓ−2−s}, so `t` and `t − 6·2^s` are exact as
    /// signed values in the ring of `ℓ − s` bits; reducing the shares mod 2^{ℓ−s} (a ring
    /// homomorphism, local) lets both comparisons run on ℓ−s−1 bits instead of ℓ−1, and then
    /// `ReLU6(t) = ReLU(t) − ReLU(t − 6·2^s)` with one MUX of both over Z_{2^ℓ}.
    /// Requires 1 ≤ s and 6·2^s < 2^{ℓ−2−s}.
    pub fn trunc_relu6<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        x: &Shares,
        s: u32,
    ) -> Result<Shares> {
        let ring = x.ring;
        let l = ring.bits();
        if s == 0 || 2 * s + 5 > l {
            return Err(MpcError::InvalidShift {
                shift: s,
                bits: l,
                max: l.saturating_sub(5) / 2,
            });
        }
        let t = self.trunc_known_sign(ch, x, s)?;
        let cmp = Ring::new(l - s)?;
        let six = 6u64 << s;
        let n = t.len();
        let p0 = self.party() == Party::P0;
        let mut both = t.data.clone();
        both.extend(
            t.data
                .iter()
                .map(|&a| if p0 { ring.sub(a, six) } else { a }),
        );
        let reduced: Vec<u64> = both.iter().map(|&a| cmp.reduce(a)).collect();
        let (_, m) = self.drelu_mux_in(ch, cmp, &reduced, 0, ring, &both, 1)?;
        let data = (0..n).map(|i| ring.sub(m[i], m[n + i])).collect();
        Ok(Shares {
            ring,
            scale: s,
            data,
        })
    }

    /// DReLU of `x` (comparing bits `[drop, ℓ−1)`), then a MUX of `mux_x` (`rep` blocks of
    /// `x.len()` values, each multiplied by the same bits) whose first message rides on the
    /// comparison's last flight. Returns the DReLU shares and the MUX outputs.
    pub(crate) fn drelu_mux<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        ring: Ring,
        x: &[u64],
        drop: u32,
        mux_x: &[u64],
        rep: usize,
    ) -> Result<(Vec<u8>, Vec<u64>)> {
        self.drelu_mux_in(ch, ring, x, drop, ring, mux_x, rep)
    }

    /// As [`Session::drelu_mux`] with the comparison on shares `x` over `cmp` (e.g. shares
    /// reduced to a smaller ring when the values are known to be small) and the MUX over `ring`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn drelu_mux_in<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        cmp: Ring,
        x: &[u64],
        drop: u32,
        ring: Ring,
        mux_x: &[u64],
        rep: usize,
    ) -> Result<(Vec<u8>, Vec<u64>)> {
        cmp.check("drelu input", x)?;
        ring.check("mux input", mux_x)?;
        if mux_x.len() != rep * x.len() {
            return Err(MpcError::LengthMismatch {
                what: "drelu_mux",
                expected: rep * x.len(),
                got: mux_x.len(),
            });
        }
        let l = cmp.bits();
        if drop + 1 >= l {
            return Err(MpcError::InvalidShift {
                shift: drop,
                bits: l,
                max: l - 2,
            });
        }
        let low = mask(l - 1);
        let p0 = self.party() == Party::P0;
        let v: Vec<u64> = if p0 {
            x.iter().map(|&a| (a & low) >> drop).collect()
        } else {
            x.iter().map(|&b| (!b & low) >> drop).collect()
        };
        let bits = l - 1 - drop;
        let n = x.len();
        let m = mux_x.len();
        let (_, cot0, cot1) =
            crate::millionaire::millionaire_cost_leaves(n, bits, 0, self.comparison_leaves());
        let (ms, mr) = if self.compare_role() == Party::P0 {
            (cot0, cot1)
        } else {
            (cot1, cot0)
        };
        let (mut s, mut r) = self.cots(ch, ms + m, mr + m)?;
        let one = p0 as u8;
        let d_of = |carry: &[u8]| -> Vec<u8> {
            x.iter()
                .zip(carry)
                .map(|(&a, &k)| cmp.msb(a) ^ k ^ one)
                .collect()
        };
        let mut cs = s.split_front(ms);
        let mut cr = r.split_front(mr);
        let mut tail = MuxTail {
            ring,
            x: mux_x,
            rep,
            d_of: &d_of,
            s,
            r,
            st: None,
            d: Vec::new(),
            out: Vec::new(),
        };
        if n == 0 {
            return Ok((Vec::new(), Vec::new()));
        }
        self.compare_with(ch, &v, bits, 0, &mut cs, &mut cr, Some(&mut tail))?;
        Ok((tail.d, tail.out))
    }

    /// Shares of `d·x` for XOR-shared bits `d` and additive shares `x` over `ring`.
    pub fn mux<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        ring: Ring,
        d: &[u8],
        x: &[u64],
    ) -> Result<Vec<u64>> {
        ring.check("mux input", x)?;
        self.mux_rings(ch, d, x, &|_| ring)
    }

    /// [`Session::mux`] with element i over `ring(i)` (one flight each way for all of them;
    /// `x[i]` already reduced into its ring).
    pub(crate) fn mux_rings<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        d: &[u8],
        x: &[u64],
        ring: &(dyn Fn(usize) -> Ring + Sync),
    ) -> Result<Vec<u64>> {
        self.mux_rings_around(ch, d, x, ring, &mut |_| Ok(()))
    }

    /// [`Session::mux_rings`] running `between` after this party's message is queued and
    /// before the peer's is read.
    pub(crate) fn mux_rings_around<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        d: &[u8],
        x: &[u64],
        ring: &(dyn Fn(usize) -> Ring + Sync),
        between: &mut dyn FnMut(&mut C) -> Result<()>,
    ) -> Result<Vec<u64>> {
        if d.len() != x.len() {
            return Err(MpcError::LengthMismatch {
                what: "mux",
                expected: x.len(),
                got: d.len(),
            });
        }
        let n = x.len();
        let (mut s, mut r) = self.cots(ch, n, n)?;
        let group = |i| Group::Pow2(ring(i).bits());
        let mut w = BitWriter::default();
        let rs = affine_choose(&mut r, &group, d, &mut w);
        let f0: Vec<u64> = d
            .iter()
            .zip(x)
            .map(|(&b, &a)| if b & 1 == 1 { a } else { 0 })
            .collect();
        let f1: Vec<u64> = d
            .iter()
            .zip(x)
            .map(|(&b, &a)| if b & 1 == 1 { 0 } else { a })
            .collect();
        let ss = affine_send(&mut s, &group, &f0, &f1, &mut w);
        let peer_bits = (0..n).map(|i| 1 + ring(i).bits() as u64).sum();
        let got = self.exchange_around(ch, w.finish(), peer_bits, "mux", between)?;
        let mut rd = BitReader::new(&got, peer_bits, "mux")?;
        let sv = ss.finish(&mut rd);
        let rv = rs.finish(&mut rd, "mux")?;
        Ok((0..n).map(|i| ring(i).add(sv[i], rv[i])).collect())
    }

    /// Additive shares over `ring` of XOR-shared bits `d`.
    pub fn b2a<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        ring: Ring,
        d: &[u8],
    ) -> Result<Vec<u64>> {
        self.b2a_around(ch, ring, d, &mut |_| Ok(()))
    }

    /// [`Session::b2a`] running `between` after this party's message is queued and before the
    /// peer's is read.
    pub(crate) fn b2a_around<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        ring: Ring,
        d: &[u8],
        between: &mut dyn FnMut(&mut C) -> Result<()>,
    ) -> Result<Vec<u64>> {
        let g = if ring.bits() >= 2 {
            Group::Pow2(ring.bits() - 1)
        } else {
            Group::Pow2(1)
        };
        let f1: Vec<u64> = d.iter().map(|&b| (b & 1) as u64).collect();
        let zero = vec![0u64; d.len()];
        let prod = self.ot_p0_to_p1_around(ch, d.len(), &|_| g, &zero, &f1, d, between)?;
        Ok(d.iter()
            .zip(&prod)
            .map(|(&b, &p)| ring.sub((b & 1) as u64, ring.mul(2, p)))
            .collect())
    }

    /// A batch of affine OTs with P0 as sender (`f0`, `f1`; P1 passes empty slices) and P1 as
    /// receiver (choices `c`; P0 passes anything of length `n`). One round trip: P0 sends its
    /// messages, P1 its derandomization bits. Returns this party's shares.
    pub(crate) fn ot_p0_to_p1<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        n: usize,
        group: &(dyn Fn(usize) -> Group + Sync),
        f0: &[u64],
        f1: &[u64],
        c: &[u8],
    ) -> Result<Vec<u64>> {
        self.ot_p0_to_p1_around(ch, n, group, f0, f1, c, &mut |_| Ok(()))
    }

    /// [`Session::ot_p0_to_p1`] running `between` after this party's message is queued and
    /// before the peer's is read.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn ot_p0_to_p1_around<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        n: usize,
        group: &(dyn Fn(usize) -> Group + Sync),
        f0: &[u64],
        f1: &[u64],
        c: &[u8],
        between: &mut dyn FnMut(&mut C) -> Result<()>,
    ) -> Result<Vec<u64>> {
        match self.party() {
            Party::P0 => {
                let (mut s, _) = self.cots(ch, n, 0)?;
                let mut w = BitWriter::default();
                let st = affine_send(&mut s, group, f0, f1, &mut w);
                let got =
                    self.exchange_around(ch, w.finish(), n as u64, "affine OT choices", between)?;
                Ok(st.finish(&mut BitReader::new(&got, n as u64, "affine OT choices")?))
            }
            Party::P1 => {
                if c.len() != n {
                    return Err(MpcError::LengthMismatch {
                        what: "affine OT choices",
                        expected: n,
                        got: c.len(),
                    });
                }
                let (_, mut r) = self.cots(ch, 0, n)?;
                let mut w = BitWriter::default();
                let st = affine_choose(&mut r, group, c, &mut w);
                let bits = crate::cots::affine_msg_bits(n, group);
                let got =
                    self.exchange_around(ch, w.finish(), bits, "affine OT messages", between)?;
                st.finish(
                    &mut BitReader::new(&got, bits, "affine OT messages")?,
                    "affine OT messages",
                )
            }
        }
    }
}

/// The MUX run as the tail of a DReLU comparison ([`Tail`]).
struct MuxTail<'a> {
    ring: Ring,
    x: &'a [u64],
    rep: usize,
    d_of: &'a dyn Fn(&[u8]) -> Vec<u8>,
    s: SendCots,
    r: RecvCots,
    st: Option<(AffineReceiver, AffineSender)>,
    d: Vec<u8>,
    out: Vec<u64>,
}

impl Tail for MuxTail<'_> {
    fn peer_bits(&self) -> u64 {
        self.x.len() as u64 * (1 + self.ring.bits() as u64)
    }

    fn prepare(&mut self, gt: &[u8], w: &mut BitWriter) {
        self.d = (self.d_of)(gt);
        let dd: Vec<u8> = (0..self.rep).flat_map(|_| self.d.iter().copied()).collect();
        let g = Group::Pow2(self.ring.bits());
        let rs = affine_choose(&mut self.r, &|_| g, &dd, w);
        let f0: Vec<u64> = dd
            .iter()
            .zip(self.x)
            .map(|(&b, &a)| if b & 1 == 1 { a } else { 0 })
            .collect();
        let f1: Vec<u64> = dd
            .iter()
            .zip(self.x)
            .map(|(&b, &a)| if b & 1 == 1 { 0 } else { a })
            .collect();
        let ss = affine_send(&mut self.s, &|_| g, &f0, &f1, w);
        self.st = Some((rs, ss));
    }

    fn finish(&mut self, rd: &mut BitReader<'_>) -> Result<()> {
        let (rs, ss) = self.st.take().expect("prepare runs before finish");
        let sv = ss.finish(rd);
        let rv = rs.finish(rd, "mux")?;
        self.out = sv
            .iter()
            .zip(&rv)
            .map(|(&a, &b)| self.ring.add(a, b))
            .collect();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rand_chacha::rand_core::SeedableRng;
    use transport::{Channel, MemoryChannel};

    use crate::{MpcError, Party, Ring, Session, SessionConfig};

    /// A peer that takes part in the COT extension of a MUX and then sends a message of the wrong
    /// length, or with non-zero padding, makes the honest side fail with a typed error.
    #[test]
    fn malformed_mux_message() {
        let ring = Ring::new(37).unwrap();
        let n = 10; // 10·38 bits = 47.5 bytes: the last byte has padding.
        for (len, pad) in [(47usize, false), (49, false), (48, true)] {
            let (mut c0, mut c1) = MemoryChannel::pair_with(1 << 20, Duration::from_secs(2));
            let h = std::thread::spawn(move || {
                let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
                let mut s = Session::setup_with(
                    &mut c1,
                    Party::P1,
                    &mut rng,
                    SessionConfig {
                        refill: 64,
                        ..Default::default()
                    },
                )
                .unwrap();
                let _cots = s.cots(&mut c1, n, n).unwrap();
                let _ = c1.recv();
                let mut msg = vec![0u8; len];
                if pad {
                    msg[len - 1] = 0x80;
                }
                c1.send(&msg).unwrap();
            });
            let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(2);
            let mut s = Session::setup_with(
                &mut c0,
                Party::P0,
                &mut rng,
                SessionConfig {
                    refill: 64,
                    ..Default::default()
                },
            )
            .unwrap();
            let r = s.mux(&mut c0, ring, &[1; 10], &[5; 10]);
            match (pad, r) {
                (
                    false,
                    Err(MpcError::BadMessage {
                        expected: 48, got, ..
                    }),
                ) => assert_eq!(got, len),
                (true, Err(MpcError::NonZeroPadding { .. })) => {}
                (_, other) => panic!("unexpected {other:?}"),
            }
            h.join().unwrap();
        }
    }
}
