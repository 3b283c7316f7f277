//! The cost model: exact protocol traffic (bits, both directions) and COTs of every protocol, as
//! derived in docs/protocols/nonlinear.md — computed, not measured, for planners and for checking
//! benchmarks. COT-extension traffic is not included: multiply [`Cost::cots`] by the OT
//! backend's bits per COT.

use std::ops::Add;

use crate::millionaire::{flat_cost, millionaire_cost};
use crate::{Party, Ring, TruncForm};

/// Bits on the wire (both directions, excluding COT extension and length prefixes) and COTs
/// consumed in each direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cost {
    pub bits: u64,
    /// COTs with P0 as sender.
    pub cots_p0_sends: u64,
    /// COTs with P1 as sender.
    pub cots_p1_sends: u64,
}

impl Add for Cost {
    type Output = Cost;
    fn add(self, o: Cost) -> Cost {
        Cost {
            bits: self.bits + o.bits,
            cots_p0_sends: self.cots_p0_sends + o.cots_p0_sends,
            cots_p1_sends: self.cots_p1_sends + o.cots_p1_sends,
        }
    }
}

impl Cost {
    /// All COTs.
    pub fn cots(&self) -> u64 {
        self.cots_p0_sends + self.cots_p1_sends
    }

    /// (COTs as sender, COTs as receiver) for `party`: the arguments of
    /// [`crate::Session::prefetch`].
    pub fn cots_for(&self, party: Party) -> (usize, usize) {
        match party {
            Party::P0 => (self.cots_p0_sends as usize, self.cots_p1_sends as usize),
            Party::P1 => (self.cots_p1_sends as usize, self.cots_p0_sends as usize),
        }
    }
}

/// A comparison's (bits, COTs P0 sends, COTs P1 sends) as a [`Cost`].
fn from_counts((bits, c0, c1): (u64, usize, usize)) -> Cost {
    Cost {
        bits,
        cots_p0_sends: c0 as u64,
        cots_p1_sends: c1 as u64,
    }
}

fn m(n: usize, bits: u32, split: u32) -> Cost {
    from_counts(millionaire_cost(n, bits, split))
}

/// `n` affine OTs from P0 to P1 with `w`-bit messages.
fn ot01(n: usize, w: u32) -> Cost {
    Cost {
        bits: n as u64 * (1 + w as u64),
        cots_p0_sends: n as u64,
        cots_p1_sends: 0,
    }
}

/// `n` ORs of private bits as shares in a group of `w` bits (one affine OT each).
pub fn or_bits(n: usize, w: u32) -> Cost {
    ot01(n, w)
}

/// A millionaire on `bits`-bit inputs that also yields the comparison of the low `split` bits.
pub fn millionaire_split(n: usize, bits: u32, split: u32) -> Cost {
    m(n, bits, split)
}

pub use crate::approx::{
    gelu_cost as gelu, layernorm_cost as layernorm, layernorm_linear_cost as layernorm_linear,
    layernorm_tail_cost as layernorm_tail, layernorm_tail_hops, lut_cost as lut,
    softmax_cost as softmax, softmax_matmul_cost as softmax_matmul,
    trunc_nonneg_cost as trunc_nonneg,
};

/// [`crate::Session::compare_flat`] on `bits`-bit inputs (2 ≤ bits ≤ 64).
pub(crate) fn millionaire_flat(n: usize, bits: u32) -> Cost {
    from_counts(flat_cost(n, bits))
}

/// [`crate::Session::join_b2a_or`] into `ring`, without its ORs: four affine OTs per element.
pub(crate) fn join_b2a(ring: Ring, n: usize) -> Cost {
    ot01(4 * n, ring.bits())
}

/// A millionaire on `bits`-bit inputs (split at `split`, 0: none) with leaves of up to `leaves`
/// bits (`Session::set_comparison_leaves`).
pub(crate) fn millionaire_leaves(n: usize, bits: u32, split: u32, leaves: u32) -> Cost {
    from_counts(crate::millionaire::millionaire_cost_leaves(
        n, bits, split, leaves,
    ))
}

/// [`crate::Session::millionaire`] on `bits`-bit inputs.
pub fn millionaire(n: usize, bits: u32) -> Cost {
    m(n, bits, 0)
}

/// [`crate::Session::mux`].
pub fn mux(ring: Ring, n: usize) -> Cost {
    Cost {
        bits: 2 * n as u64 * (1 + ring.bits() as u64),
        cots_p0_sends: n as u64,
        cots_p1_sends: n as u64,
    }
}

/// [`crate::Session::b2a`].
pub fn b2a(ring: Ring, n: usize) -> Cost {
    ot01(n, ring.bits() - 1)
}

/// [`crate::Session::drelu`].
pub fn drelu(ring: Ring, n: usize) -> Cost {
    m(n, ring.bits() - 1, 0)
}

/// [`crate::Session::relu`].
pub fn relu(ring: Ring, n: usize) -> Cost {
    drelu(ring, n) + mux(ring, n)
}

/// [`crate::Session::relu_approx`] with scale `s`.
pub fn relu_approx(ring: Ring, s: u32, n: usize) -> Cost {
    m(n, ring.bits() - 1 - s, 0) + mux(ring, n)
}

/// [`crate::Session::relu6`].
pub fn relu6(ring: Ring, n: usize) -> Cost {
    relu(ring, 2 * n)
}

/// [`crate::Session::trunc`] by `s` bits.
pub fn trunc(ring: Ring, s: u32, n: usize) -> Cost {
    let l = ring.bits();
    // 1-of-4 OT of s-bit messages (2 COTs) for the wrap, B2A of the low carry.
    m(n, l - 1, s)
        + Cost {
            bits: n as u64 * (2 + 3 * s as u64),
            cots_p0_sends: 2 * n as u64,
            cots_p1_sends: 0,
        }
        + ot01(n, l - 1)
}

/// [`crate::Session::trunc_known_sign`] by `s` bits.
pub fn trunc_known_sign(ring: Ring, s: u32, n: usize) -> Cost {
    m(n, s, 0) + ot01(n, s) + ot01(n, ring.bits() - 1)
}

/// [`crate::Session::trunc_known_sign_approx`] by `s` bits.
pub fn trunc_known_sign_approx(_ring: Ring, s: u32, n: usize) -> Cost {
    ot01(n, s)
}

/// [`crate::Session::trunc_relu`] by `s` bits.
pub fn trunc_relu(ring: Ring, s: u32, n: usize) -> Cost {
    trunc(ring, s, n) + mux(ring, n)
}

/// `c` run with P0 choosing in the leaf OTs of its comparison `cmp`
/// (`Session::set_comparison_chooser`): those COTs — all of the comparison's P0-sent COTs beyond
/// its ANDs', which both parties send equally — change direction; bits are unchanged.
pub(crate) fn p0_chooses(c: Cost, cmp: Cost) -> Cost {
    let leaves = cmp.cots_p0_sends - cmp.cots_p1_sends;
    Cost {
        bits: c.bits,
        cots_p0_sends: c.cots_p0_sends - leaves,
        cots_p1_sends: c.cots_p1_sends + leaves,
    }
}

/// [`trunc_known_sign`] with P0 choosing in its comparison (the engine's rescale after a
/// server's HE response).
pub fn trunc_known_sign_p0_chooses(ring: Ring, s: u32, n: usize) -> Cost {
    p0_chooses(trunc_known_sign(ring, s, n), m(n, s, 0))
}

/// [`crate::Session::trunc_known_sign_with`] by `s` bits in `form`, `chooser` choosing in its
/// comparison.
pub fn trunc_known_sign_form(
    ring: Ring,
    s: u32,
    n: usize,
    form: TruncForm,
    chooser: Party,
) -> Cost {
    let (c, cmp) = if form.is_flat_at(s) {
        let cmp = millionaire_flat(n, s);
        (cmp + join_b2a(ring, n) + ot01(n, s), cmp)
    } else {
        (trunc_known_sign(ring, s, n), m(n, s, 0))
    };
    match chooser {
        Party::P0 => p0_chooses(c, cmp),
        Party::P1 => c,
    }
}

/// Latency hops of [`crate::Session::trunc_known_sign_with`] by `s` bits in `form`, from the
/// comparison's first flight to the last (the leaves' choices and answers, one per AND level,
/// one for the B2A; with P0 choosing after its own message the first rides on it).
pub fn trunc_known_sign_hops(s: u32, form: TruncForm) -> u32 {
    2 + crate::millionaire::levels(s, form) + 1
}

/// [`trunc_relu`] with P0 choosing in its comparison.
pub fn trunc_relu_p0_chooses(ring: Ring, s: u32, n: usize) -> Cost {
    p0_chooses(trunc_relu(ring, s, n), m(n, ring.bits() - 1, s))
}

/// [`crate::Session::trunc_relu6`] by `s` bits.
pub fn trunc_relu6(ring: Ring, s: u32, n: usize) -> Cost {
    let l = ring.bits();
    trunc_known_sign(ring, s, n) + m(2 * n, l - s - 1, 0) + mux(ring, 2 * n)
}

/// [`crate::Session::max_groups`] / [`crate::Session::maxpool`] for windows of these sizes.
pub fn max_windows(ring: Ring, window_sizes: impl IntoIterator<Item = usize>) -> Cost {
    relu(
        ring,
        window_sizes.into_iter().map(|k| k.saturating_sub(1)).sum(),
    )
}

/// [`crate::Session::argmax`] over `rows` rows of `k` values.
pub fn argmax(ring: Ring, rows: usize, k: usize) -> Cost {
    let pairs = rows * k.saturating_sub(1);
    drelu(ring, pairs) + mux(ring, 2 * pairs)
}

/// [`crate::Session::ring_to_field`] into Z_p with p of `p_bits` bits.
pub fn ring_to_field(ring: Ring, p_bits: u32, n: usize) -> Cost {
    m(n, ring.bits(), 0) + ot01(n, p_bits)
}

/// [`crate::Session::field_to_ring`] from Z_p with p of `p_bits` bits.
pub fn field_to_ring(ring: Ring, p_bits: u32, n: usize) -> Cost {
    m(n, p_bits, 0) + b2a(ring, n)
}

/// [`crate::Session::ring_to_field_in_range`] into Z_p with p of `p_bits` bits.
pub fn ring_to_field_in_range(_ring: Ring, p_bits: u32, n: usize) -> Cost {
    ot01(n, p_bits)
}

/// [`crate::Session::field_to_ring_in_range`].
pub fn field_to_ring_in_range(ring: Ring, n: usize) -> Cost {
    ot01(n, ring.bits())
}

/// [`crate::Session::mul`].
pub fn mul(ring: Ring, n: usize) -> Cost {
    let l = ring.bits() as u64;
    Cost {
        bits: n as u64 * (2 * l + l * (l + 1)),
        cots_p0_sends: n as u64 * l,
        cots_p1_sends: n as u64 * l,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_values_at_37_bits() {
        let r = Ring::new(37).unwrap();
        assert_eq!(millionaire(1, 36).bits, 239);
        assert_eq!(millionaire(1, 24).bits, 165);
        assert_eq!(millionaire(1, 12).bits, 75);
        assert_eq!(relu(r, 1).bits, 315);
        assert_eq!(relu(r, 1).cots(), 68);
        assert_eq!(relu_approx(r, 12, 1).bits, 241);
        assert_eq!(trunc(r, 12, 1).bits, 332);
        assert_eq!(trunc(r, 12, 1).cots(), 61);
        assert_eq!(trunc_known_sign(r, 12, 1).bits, 125);
        assert_eq!(trunc_relu(r, 12, 1).bits, 408);
        assert_eq!(trunc_relu6(r, 12, 1).bits, 607);
        assert_eq!(trunc_relu6(r, 12, 1).cots(), 100);
        assert_eq!(trunc_known_sign_approx(r, 12, 1).bits, 13);
        assert_eq!(mul(r, 1).bits, 1480);
        assert_eq!(max_windows(r, [4]).bits, 3 * 315);
    }
}
