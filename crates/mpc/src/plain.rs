//! Plaintext definitions of every protocol: the oracles the two-party protocols are tested
//! against, on reduced ring elements. Semantics follow docs/fixed-point.md.

use crate::Ring;

/// `[x ≥ 0]` on signed values.
pub fn drelu(ring: Ring, x: u64) -> u8 {
    1 - ring.msb(x)
}

/// `max(x, 0)` on signed values.
pub fn relu(ring: Ring, x: u64) -> u64 {
    if ring.msb(x) == 1 {
        0
    } else {
        x
    }
}

/// `min(max(x, 0), 6·2^s)` on signed values.
pub fn relu6(ring: Ring, x: u64, s: u32) -> u64 {
    let v = ring.to_signed(x).clamp(0, 6i64 << s);
    ring.from_signed(v)
}

/// The outputs [`crate::Session::relu_approx`] may produce for input `x` at shift `s`: ReLU(x),
/// and in addition 0 when `0 ≤ x ≤ 2^s − 2`, or x when `x ≤ −2^{ℓ−1} + 2^s − 2`. (Which one
/// occurs depends on the random shares: the protocol drops the carry out of the low s bits,
/// which matters only when the low ℓ−1 bits of x are below 2^s − 1.)
pub fn relu_approx_allowed(ring: Ring, x: u64, s: u32) -> Vec<u64> {
    let low = x & (ring.mask() >> 1);
    if s > 0 && low < (1u64 << s) - 1 {
        let mut v = vec![relu(ring, x), if ring.msb(x) == 1 { x } else { 0 }];
        v.dedup();
        v
    } else {
        vec![relu(ring, x)]
    }
}

/// `floor(x / 2^s)` of the signed value, mod 2^ℓ (arithmetic shift).
pub fn trunc(ring: Ring, x: u64, s: u32) -> u64 {
    ring.from_signed(ring.to_signed(x) >> s)
}

/// Whether `x` satisfies the range assumption |x| < 2^{ℓ−2} of the known-sign truncation.
pub fn in_known_sign_range(ring: Ring, x: u64) -> bool {
    ring.to_signed(x).unsigned_abs() < 1u64 << (ring.bits() - 2)
}

/// `d·x`.
pub fn mux(ring: Ring, d: u8, x: u64) -> u64 {
    if d & 1 == 1 {
        ring.reduce(x)
    } else {
        0
    }
}

/// The maximum of a window of signed values.
pub fn max(ring: Ring, xs: &[u64]) -> u64 {
    *xs.iter()
        .max_by_key(|&&x| ring.to_signed(x))
        .expect("non-empty window")
}

/// Index of the first maximum of signed values.
pub fn argmax(ring: Ring, xs: &[u64]) -> usize {
    let mut best = 0;
    for (i, &x) in xs.iter().enumerate() {
        if ring.to_signed(x) > ring.to_signed(xs[best]) {
            best = i;
        }
    }
    best
}

/// The signed (centered) value of `v mod p` as a ring element.
pub fn field_to_ring(p: u64, v: u64, ring: Ring) -> u64 {
    let h = (p - 1) / 2;
    let s = if v <= h {
        v as i64
    } else {
        v as i64 - p as i64
    };
    ring.from_signed(s)
}

/// The signed value of `x` mod p.
pub fn ring_to_field(ring: Ring, x: u64, p: u64) -> u64 {
    ring.to_signed(x).rem_euclid(p as i64) as u64
}

/// The outputs [`crate::Session::trunc_known_sign_approx`] may produce: `floor(x / 2^s)` and
/// `floor(x / 2^s) − 1`.
pub fn trunc_approx_allowed(ring: Ring, x: u64, s: u32) -> [u64; 2] {
    let t = trunc(ring, x, s);
    [t, ring.sub(t, 1)]
}
