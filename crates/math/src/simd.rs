//! Element-wise modular kernels with an AVX-512 path chosen at run time and a
//! portable scalar path that is always compiled and tested against it.
//!
//! All kernels take residues `< q` (or `< 2q` where stated) for a [`Modulus`]
//! `q < 2^62` and return fully reduced residues.

use crate::Modulus;

/// Whether the AVX-512 kernels run on this CPU (else the scalar paths).
pub fn has_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        avx512()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

#[cfg(target_arch = "x86_64")]
fn avx512() -> bool {
    // std caches the CPUID result; this is a load and a test.
    std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512dq")
}

/// `x[i] = ((x[i] + q − t[i])·w + c) mod q` with `w_shoup = m.shoup(w)`,
/// `x[i] < 2q`, `t[i] ≤ q`, `c < q`.
pub fn sub_mul_add(m: &Modulus, x: &mut [u64], t: &[u64], w: u64, w_shoup: u64, c: u64) {
    assert_eq!(x.len(), t.len());
    #[cfg(target_arch = "x86_64")]
    if avx512() {
        // SAFETY: the CPU supports avx512f and avx512dq (checked just above).
        unsafe { x86::sub_mul_add(m.value(), x, t, w, w_shoup, c) };
        return;
    }
    sub_mul_add_scalar(m, x, t, w, w_shoup, c)
}

/// Scalar reference of [`sub_mul_add`].
pub fn sub_mul_add_scalar(m: &Modulus, x: &mut [u64], t: &[u64], w: u64, w_shoup: u64, c: u64) {
    for (x, &t) in x.iter_mut().zip(t) {
        *x = m.add(m.mul_shoup(*x + m.value() - t, w, w_shoup), c);
    }
}

/// `x[i] = x[i]·w mod q` (`w_shoup = m.shoup(w)`, any 64-bit `x[i]`).
pub fn mul_shoup(m: &Modulus, x: &mut [u64], w: u64, w_shoup: u64) {
    #[cfg(target_arch = "x86_64")]
    if avx512() {
        // SAFETY: the CPU supports avx512f and avx512dq (checked just above).
        unsafe { x86::mul_shoup(m.value(), x, w, w_shoup) };
        return;
    }
    for v in x.iter_mut() {
        *v = m.mul_shoup(*v, w, w_shoup);
    }
}

/// `acc[i] = (acc[i] + x[i]·w) mod q` (`acc[i] < q`, any 64-bit `x[i]`).
pub fn mul_shoup_acc(m: &Modulus, acc: &mut [u64], x: &[u64], w: u64, w_shoup: u64) {
    assert_eq!(acc.len(), x.len());
    #[cfg(target_arch = "x86_64")]
    if avx512() {
        // SAFETY: the CPU supports avx512f and avx512dq (checked just above).
        unsafe { x86::mul_shoup_acc(m.value(), acc, x, w, w_shoup) };
        return;
    }
    mul_shoup_acc_scalar(m, acc, x, w, w_shoup)
}

/// Scalar reference of [`mul_shoup_acc`].
pub fn mul_shoup_acc_scalar(m: &Modulus, acc: &mut [u64], x: &[u64], w: u64, w_shoup: u64) {
    for (a, &v) in acc.iter_mut().zip(x) {
        *a = m.add(*a, m.mul_shoup(v, w, w_shoup));
    }
}

/// `out[i] = Σ_j x_j[i]·w_j mod q` in one pass over the inputs (`x = [x_0, …]` of `out.len()`
/// values each, any 64-bit; `ws[j] = m.shoup(w[j])`, `w[j] < q`): the sum of fast base
/// conversion, without re-reading and re-writing `out` once per input.
pub fn dot_shoup(m: &Modulus, out: &mut [u64], x: &[&[u64]], w: &[u64], ws: &[u64]) {
    assert!(x.len() == w.len() && w.len() == ws.len());
    assert!(x.iter().all(|v| v.len() == out.len()));
    #[cfg(target_arch = "x86_64")]
    if avx512() {
        // SAFETY: the CPU supports avx512f and avx512dq (checked just above).
        unsafe { x86::dot_shoup(m.value(), out, x, w, ws) };
        return;
    }
    let _ = ws;
    dot_wide(m, out, x, w)
}

/// The portable path of [`dot_shoup`]: each `Σ_j x_j[i]·w_j` accumulated exactly in 192 bits
/// (a 128-bit sum and a carry count) and reduced once, `2^128 ≡ r (mod q)` folding the carries:
/// one widening multiplication per term instead of Shoup's three multiplications and two
/// conditional subtractions (the fallback on machines without AVX-512).
pub fn dot_wide(m: &Modulus, out: &mut [u64], x: &[&[u64]], w: &[u64]) {
    assert!(x.len() == w.len());
    assert!(x.iter().all(|v| v.len() == out.len()));
    let r128 = pow2_128(m);
    for (i, o) in out.iter_mut().enumerate() {
        let mut lo = 0u128;
        let mut carries = 0u64;
        for (xj, &wj) in x.iter().zip(w) {
            let (s, c) = lo.overflowing_add(xj[i] as u128 * wj as u128);
            lo = s;
            carries += c as u64;
        }
        *o = fold_wide(m, lo, carries, r128);
    }
}

/// `out[i] = Σ_j x_j[i]·w_j[i] mod q`: a sum of element-wise products (of ciphertext parts by
/// plaintexts, NTT form). Any 64-bit `x_j[i]`; `w_j[i] < q`. The terms are taken eight at a
/// time: each group's sum is accumulated exactly in 192 bits in registers (as [`dot_pair`]) and
/// reduced once, then added to `out` — one widening multiplication per term instead of a
/// modular multiply-accumulate.
pub fn dot_products(m: &Modulus, out: &mut [u64], x: &[&[u64]], w: &[&[u64]]) {
    let n = out.len();
    assert!(x.len() == w.len());
    assert!(x.iter().chain(w).all(|v| v.len() == n));
    let r128 = pow2_128(m);
    if x.is_empty() {
        out.fill(0);
    }
    for (g, (xg, wg)) in x.chunks(8).zip(w.chunks(8)).enumerate() {
        for (i, o) in out.iter_mut().enumerate() {
            let (mut s, mut c) = (0u128, 0u64);
            for (xj, wj) in xg.iter().zip(wg) {
                let (t, v) = s.overflowing_add(xj[i] as u128 * wj[i] as u128);
                s = t;
                c += v as u64;
            }
            let r = fold_wide(m, s, c, r128);
            *o = if g == 0 { r } else { m.add(*o, r) };
        }
    }
}

/// `2^128 mod q` = `((2^128 − 1) mod q) + 1 mod q`.
fn pow2_128(m: &Modulus) -> u64 {
    m.add(m.reduce_u128(u128::MAX), 1)
}

/// `(lo + carries·2^128) mod q`, `r128 = 2^128 mod q`.
#[inline(always)]
fn fold_wide(m: &Modulus, lo: u128, carries: u64, r128: u64) -> u64 {
    let r = m.reduce_u128(lo);
    if carries == 0 {
        r
    } else {
        m.add(r, m.mul(m.reduce(carries), r128))
    }
}

/// `out_0[i] = Σ_j x_j[i]·b_j[i] mod q` and `out_1[i] = Σ_j x_j[i]·a_j[i] mod q` in one pass:
/// the inner product of a key switch, a gadget decomposition `x` against both halves `(b, a)` of
/// a switching key. Any 64-bit `x_j[i]`; `a_j[i], b_j[i] < q`. Each sum is accumulated exactly
/// in 192 bits (a 128-bit sum and a carry count, as [`dot_wide`]) and reduced once: one
/// widening multiplication per term and each `x_j[i]` read once for both halves, where a modular
/// multiply-accumulate per term and half reduces every product.
pub fn dot_pair(
    m: &Modulus,
    out0: &mut [u64],
    out1: &mut [u64],
    x: &[&[u64]],
    b: &[&[u64]],
    a: &[&[u64]],
) {
    let n = out0.len();
    assert!(out1.len() == n && x.len() == b.len() && b.len() == a.len());
    assert!(x.iter().chain(b).chain(a).all(|v| v.len() == n));
    let r128 = pow2_128(m);
    // One coefficient at a time: its two sums stay in registers while the `3·len(x)` input
    // streams are read in order (a key switch has at most a few digits).
    for (i, (o0, o1)) in out0.iter_mut().zip(out1.iter_mut()).enumerate() {
        let (mut s0, mut s1) = (0u128, 0u128);
        let (mut c0, mut c1) = (0u64, 0u64);
        for ((xj, bj), aj) in x.iter().zip(b).zip(a) {
            let v = xj[i] as u128;
            let (t, c) = s0.overflowing_add(v * bj[i] as u128);
            s0 = t;
            c0 += c as u64;
            let (t, c) = s1.overflowing_add(v * aj[i] as u128);
            s1 = t;
            c1 += c as u64;
        }
        *o0 = fold_wide(m, s0, c0, r128);
        *o1 = fold_wide(m, s1, c1, r128);
    }
}

/// Scalar reference of [`dot_shoup`].
pub fn dot_shoup_scalar(m: &Modulus, out: &mut [u64], x: &[&[u64]], w: &[u64], ws: &[u64]) {
    for (i, o) in out.iter_mut().enumerate() {
        let mut acc = 0u64;
        for ((xj, &wj), &wsj) in x.iter().zip(w).zip(ws) {
            acc = m.add(acc, m.mul_shoup(xj[i], wj, wsj));
        }
        *o = acc;
    }
}

/// `s[i] += x[i] as f64 · c` (the fractional sums of exact base conversion).
pub fn fma_f64(s: &mut [f64], x: &[u64], c: f64) {
    assert_eq!(s.len(), x.len());
    #[cfg(target_arch = "x86_64")]
    if avx512() {
        // SAFETY: the CPU supports avx512f and avx512dq (checked just above).
        unsafe { x86::fma_f64(s, x, c) };
        return;
    }
    fma_f64_scalar(s, x, c)
}

#[inline(always)]
fn fma_f64_scalar(s: &mut [f64], x: &[u64], c: f64) {
    for (a, &v) in s.iter_mut().zip(x) {
        *a += v as f64 * c;
    }
}

/// `x[i] = x[i] mod q` for any 64-bit `x[i]`.
pub fn reduce(m: &Modulus, x: &mut [u64]) {
    #[cfg(target_arch = "x86_64")]
    if avx512() {
        let one_shoup = m.shoup(1);
        // SAFETY: the CPU supports avx512f and avx512dq (checked just above).
        unsafe { x86::mul_shoup(m.value(), x, 1, one_shoup) };
        return;
    }
    reduce_scalar(m, x)
}

/// Scalar reference of [`reduce`].
pub fn reduce_scalar(m: &Modulus, x: &mut [u64]) {
    for v in x.iter_mut() {
        *v = m.reduce(*v);
    }
}

/// `a[i] = (a[i] + b[i]) mod q`.
pub fn add_assign(q: u64, a: &mut [u64], b: &[u64]) {
    assert_eq!(a.len(), b.len());
    #[cfg(target_arch = "x86_64")]
    if avx512() {
        // SAFETY: the CPU supports avx512f (checked just above).
        unsafe { x86::add_assign(q, a, b) };
        return;
    }
    add_assign_scalar(q, a, b)
}

#[inline(always)]
fn add_assign_scalar(q: u64, a: &mut [u64], b: &[u64]) {
    for (x, &y) in a.iter_mut().zip(b) {
        let s = *x + y;
        *x = s.min(s.wrapping_sub(q));
    }
}

/// `a[i] = (a[i] + b[perm[i]]) mod q` (an NTT-domain automorphism of `b` added to `a`).
pub fn add_permuted(q: u64, a: &mut [u64], b: &[u64], perm: &[u32]) {
    // (Every `b[perm[i]]` is a checked index.)
    assert_eq!(a.len(), perm.len());
    #[cfg(target_arch = "x86_64")]
    if avx512() {
        // SAFETY: the CPU supports avx512f (checked just above).
        unsafe { x86::add_permuted(q, a, b, perm) };
        return;
    }
    add_permuted_scalar(q, a, b, perm)
}

#[inline(always)]
fn add_permuted_scalar(q: u64, a: &mut [u64], b: &[u64], perm: &[u32]) {
    for (x, &p) in a.iter_mut().zip(perm) {
        let s = *x + b[p as usize];
        *x = s.min(s.wrapping_sub(q));
    }
}

/// `a[i] = (a[i] − b[i]) mod q`.
pub fn sub_assign(q: u64, a: &mut [u64], b: &[u64]) {
    assert_eq!(a.len(), b.len());
    #[cfg(target_arch = "x86_64")]
    if avx512() {
        // SAFETY: the CPU supports avx512f (checked just above).
        unsafe { x86::sub_assign(q, a, b) };
        return;
    }
    sub_assign_scalar(q, a, b)
}

#[inline(always)]
fn sub_assign_scalar(q: u64, a: &mut [u64], b: &[u64]) {
    for (x, &y) in a.iter_mut().zip(b) {
        let s = *x + q - y;
        *x = s.min(s.wrapping_sub(q));
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// High 64 bits of the 64×64-bit lane products (four 32×32 multiplies).
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn mulhi(a: __m512i, b: __m512i) -> __m512i {
        let mask = _mm512_set1_epi64(0xffff_ffff);
        let a_hi = _mm512_srli_epi64::<32>(a);
        let b_hi = _mm512_srli_epi64::<32>(b);
        let lolo = _mm512_mul_epu32(a, b);
        let lohi = _mm512_mul_epu32(a, b_hi);
        let hilo = _mm512_mul_epu32(a_hi, b);
        let hihi = _mm512_mul_epu32(a_hi, b_hi);
        let t = _mm512_add_epi64(lohi, _mm512_srli_epi64::<32>(lolo));
        let u = _mm512_add_epi64(hilo, _mm512_and_si512(t, mask));
        _mm512_add_epi64(
            hihi,
            _mm512_add_epi64(_mm512_srli_epi64::<32>(t), _mm512_srli_epi64::<32>(u)),
        )
    }

    /// `min(x, x − q)`: maps `[0, 2q)` to `[0, q)`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn csub(x: __m512i, q: __m512i) -> __m512i {
        _mm512_min_epu64(x, _mm512_sub_epi64(x, q))
    }

    /// Shoup product `a·w mod q` in `[0, q)` for any 64-bit `a`.
    #[inline]
    #[target_feature(enable = "avx512f,avx512dq")]
    fn shoup(a: __m512i, w: __m512i, ws: __m512i, q: __m512i) -> __m512i {
        let qhat = mulhi(a, ws);
        let r = _mm512_sub_epi64(_mm512_mullo_epi64(a, w), _mm512_mullo_epi64(qhat, q));
        csub(r, q)
    }

    #[target_feature(enable = "avx512f,avx512dq")]
    pub(super) unsafe fn sub_mul_add(q: u64, x: &mut [u64], t: &[u64], w: u64, ws: u64, c: u64) {
        let (vq, vw, vws, vc) = (
            _mm512_set1_epi64(q as i64),
            _mm512_set1_epi64(w as i64),
            _mm512_set1_epi64(ws as i64),
            _mm512_set1_epi64(c as i64),
        );
        let n8 = x.len() / 8 * 8;
        let (vws_hi, vq2) = (
            _mm512_set1_epi64((ws >> 32) as i64),
            _mm512_set1_epi64((2 * q) as i64),
        );
        for i in (0..n8).step_by(8) {
            // SAFETY: i + 8 ≤ x.len() = t.len(); unaligned loads/stores.
            let xv = unsafe { _mm512_loadu_si512(x.as_ptr().add(i) as *const _) };
            let tv = unsafe { _mm512_loadu_si512(t.as_ptr().add(i) as *const _) };
            let d = _mm512_sub_epi64(_mm512_add_epi64(xv, vq), tv);
            let r = if q < 1 << 61 {
                // [0, 3q) + c < 4q → [0, q) (q < 2^61: no overflow).
                let r = _mm512_add_epi64(shoup_lazy61(d, vw, vws, vws_hi, vq), vc);
                csub(csub(r, vq2), vq)
            } else {
                csub(_mm512_add_epi64(shoup(d, vw, vws, vq), vc), vq)
            };
            unsafe { _mm512_storeu_si512(x.as_mut_ptr().add(i) as *mut _, r) };
        }
        if n8 < x.len() {
            // (Modulus::new divides: only for a tail, not on every short call.)
            let m = crate::Modulus::new(q).expect("valid modulus");
            super::sub_mul_add_scalar(&m, &mut x[n8..], &t[n8..], w, ws, c);
        }
    }

    #[target_feature(enable = "avx512f,avx512dq")]
    pub(super) unsafe fn mul_shoup(q: u64, x: &mut [u64], w: u64, ws: u64) {
        let (vq, vw, vws) = (
            _mm512_set1_epi64(q as i64),
            _mm512_set1_epi64(w as i64),
            _mm512_set1_epi64(ws as i64),
        );
        let n8 = x.len() / 8 * 8;
        let (vws_hi, vq2) = (
            _mm512_set1_epi64((ws >> 32) as i64),
            _mm512_set1_epi64((2 * q) as i64),
        );
        for i in (0..n8).step_by(8) {
            // SAFETY: i + 8 ≤ x.len(); unaligned loads/stores.
            let xv = unsafe { _mm512_loadu_si512(x.as_ptr().add(i) as *const _) };
            let r = if q < 1 << 61 {
                csub(csub(shoup_lazy61(xv, vw, vws, vws_hi, vq), vq2), vq)
            } else {
                shoup(xv, vw, vws, vq)
            };
            unsafe { _mm512_storeu_si512(x.as_mut_ptr().add(i) as *mut _, r) };
        }
        if n8 < x.len() {
            let m = crate::Modulus::new(q).expect("valid modulus");
            for v in &mut x[n8..] {
                *v = m.mul_shoup(*v, w, ws);
            }
        }
    }

    #[target_feature(enable = "avx512f,avx512dq")]
    pub(super) unsafe fn mul_shoup_acc(q: u64, acc: &mut [u64], x: &[u64], w: u64, ws: u64) {
        let (vq, vw, vws) = (
            _mm512_set1_epi64(q as i64),
            _mm512_set1_epi64(w as i64),
            _mm512_set1_epi64(ws as i64),
        );
        let n8 = x.len() / 8 * 8;
        let (vws_hi, vq2) = (
            _mm512_set1_epi64((ws >> 32) as i64),
            _mm512_set1_epi64((2 * q) as i64),
        );
        for i in (0..n8).step_by(8) {
            // SAFETY: i + 8 ≤ x.len() = acc.len(); unaligned loads/stores.
            let xv = unsafe { _mm512_loadu_si512(x.as_ptr().add(i) as *const _) };
            let av = unsafe { _mm512_loadu_si512(acc.as_ptr().add(i) as *const _) };
            let r = if q < 1 << 61 {
                // acc < q plus a product in [0, 3q): below 4q.
                let s = _mm512_add_epi64(av, shoup_lazy61(xv, vw, vws, vws_hi, vq));
                csub(csub(s, vq2), vq)
            } else {
                csub(_mm512_add_epi64(av, shoup(xv, vw, vws, vq)), vq)
            };
            unsafe { _mm512_storeu_si512(acc.as_mut_ptr().add(i) as *mut _, r) };
        }
        if n8 < x.len() {
            let m = crate::Modulus::new(q).expect("valid modulus");
            super::mul_shoup_acc_scalar(&m, &mut acc[n8..], &x[n8..], w, ws);
        }
    }

    /// `a·w mod q` in `[0, 3q)` for any 64-bit `a` (`w < q`, `ws = ⌊w·2^64/q⌋`,
    /// `ws_hi = ws >> 32`): Shoup's product with the quotient estimate of [`mulhi_approx`].
    #[inline]
    #[target_feature(enable = "avx512f,avx512dq")]
    fn shoup_lazy61(a: __m512i, w: __m512i, ws: __m512i, ws_hi: __m512i, q: __m512i) -> __m512i {
        let qhat = mulhi_approx(a, ws, ws_hi);
        _mm512_sub_epi64(_mm512_mullo_epi64(a, w), _mm512_mullo_epi64(qhat, q))
    }

    /// `⌊a·b/2^64⌋` or one less: the high half without the `a_lo·b_lo` partial product (three
    /// 32×32 multiplies); `b_hi = b >> 32` is passed precomputed.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn mulhi_approx(a: __m512i, b: __m512i, b_hi: __m512i) -> __m512i {
        let mask = _mm512_set1_epi64(0xffff_ffff);
        let a_hi = _mm512_srli_epi64::<32>(a);
        let lohi = _mm512_mul_epu32(a, b_hi);
        let hilo = _mm512_mul_epu32(a_hi, b);
        let hihi = _mm512_mul_epu32(a_hi, b_hi);
        let u = _mm512_add_epi64(hilo, _mm512_and_si512(lohi, mask));
        _mm512_add_epi64(
            hihi,
            _mm512_add_epi64(_mm512_srli_epi64::<32>(lohi), _mm512_srli_epi64::<32>(u)),
        )
    }

    #[target_feature(enable = "avx512f,avx512dq")]
    pub(super) unsafe fn dot_shoup(q: u64, out: &mut [u64], x: &[&[u64]], w: &[u64], ws: &[u64]) {
        if q < 1 << 61 {
            // SAFETY: same CPU features as this function.
            unsafe { dot_shoup_61(q, out, x, w, ws) };
            return;
        }
        let vq = _mm512_set1_epi64(q as i64);
        let vq2 = _mm512_set1_epi64((2 * q) as i64);
        let wv: Vec<(__m512i, __m512i)> = w
            .iter()
            .zip(ws)
            .map(|(&a, &b)| (_mm512_set1_epi64(a as i64), _mm512_set1_epi64(b as i64)))
            .collect();
        let n8 = out.len() / 8 * 8;
        for i in (0..n8).step_by(8) {
            // Lazy Shoup products lie in [0, 2q); the running sum is kept in [0, 2q)
            // (sums below 4q < 2^64 for q < 2^62).
            let mut acc = _mm512_setzero_si512();
            for (xj, &(vw, vws)) in x.iter().zip(&wv) {
                // SAFETY: i + 8 ≤ out.len() = xj.len(); unaligned loads.
                let xv = unsafe { _mm512_loadu_si512(xj.as_ptr().add(i) as *const _) };
                let qhat = mulhi(xv, vws);
                let r = _mm512_sub_epi64(_mm512_mullo_epi64(xv, vw), _mm512_mullo_epi64(qhat, vq));
                acc = csub(_mm512_add_epi64(acc, r), vq2);
            }
            let r = csub(acc, vq);
            unsafe { _mm512_storeu_si512(out.as_mut_ptr().add(i) as *mut _, r) };
        }
        if n8 < out.len() {
            let m = crate::Modulus::new(q).expect("valid modulus");
            let tails: Vec<&[u64]> = x.iter().map(|v| &v[n8..]).collect();
            super::dot_shoup_scalar(&m, &mut out[n8..], &tails, w, ws);
        }
    }

    /// [`dot_shoup`] for `q < 2^61`: the quotient estimate may be one short, so each product lies
    /// in `[0, 3q)` and the running sum is kept in `[0, 3q)` (sums below `6q < 2^64`).
    #[target_feature(enable = "avx512f,avx512dq")]
    unsafe fn dot_shoup_61(q: u64, out: &mut [u64], x: &[&[u64]], w: &[u64], ws: &[u64]) {
        let vq = _mm512_set1_epi64(q as i64);
        let vq2 = _mm512_set1_epi64((2 * q) as i64);
        let vq3 = _mm512_set1_epi64((3 * q) as i64);
        let wv: Vec<(__m512i, __m512i, __m512i)> = w
            .iter()
            .zip(ws)
            .map(|(&a, &b)| {
                (
                    _mm512_set1_epi64(a as i64),
                    _mm512_set1_epi64(b as i64),
                    _mm512_set1_epi64((b >> 32) as i64),
                )
            })
            .collect();
        let n8 = out.len() / 8 * 8;
        for i in (0..n8).step_by(8) {
            let mut acc = _mm512_setzero_si512();
            for (xj, &(vw, vws, vws_hi)) in x.iter().zip(&wv) {
                // SAFETY: i + 8 ≤ out.len() = xj.len(); unaligned loads.
                let xv = unsafe { _mm512_loadu_si512(xj.as_ptr().add(i) as *const _) };
                let qhat = mulhi_approx(xv, vws, vws_hi);
                let r = _mm512_sub_epi64(_mm512_mullo_epi64(xv, vw), _mm512_mullo_epi64(qhat, vq));
                acc = csub(_mm512_add_epi64(acc, r), vq3);
            }
            let r = csub(csub(acc, vq2), vq);
            unsafe { _mm512_storeu_si512(out.as_mut_ptr().add(i) as *mut _, r) };
        }
        if n8 < out.len() {
            let m = crate::Modulus::new(q).expect("valid modulus");
            let tails: Vec<&[u64]> = x.iter().map(|v| &v[n8..]).collect();
            super::dot_shoup_scalar(&m, &mut out[n8..], &tails, w, ws);
        }
    }

    #[target_feature(enable = "avx512f,avx512dq")]
    pub(super) unsafe fn fma_f64(s: &mut [f64], x: &[u64], c: f64) {
        // the scalar loop compiled with AVX-512 (u64 → f64 conversion is vectorized with avx512dq)
        super::fma_f64_scalar(s, x, c)
    }

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn add_assign(q: u64, a: &mut [u64], b: &[u64]) {
        // the scalar loop, compiled with AVX-512 enabled (vectorized by LLVM)
        super::add_assign_scalar(q, a, b)
    }

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn add_permuted(q: u64, a: &mut [u64], b: &[u64], perm: &[u32]) {
        super::add_permuted_scalar(q, a, b, perm)
    }

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn sub_assign(q: u64, a: &mut [u64], b: &[u64]) {
        super::sub_assign_scalar(q, a, b)
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn dot_wide_matches_the_shoup_reference() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(3);
        for &q in &[
            (1u64 << 61) - 1,
            0x3fff_ffff_fffe_0001,
            65537,
            (1 << 50) + 55,
        ] {
            let Ok(m) = Modulus::new(q) else { continue };
            for terms in [1usize, 2, 3, 5, 17, 40] {
                let n = 37;
                let xs: Vec<Vec<u64>> = (0..terms)
                    .map(|_| {
                        (0..n)
                            .map(|k| if k == 0 { u64::MAX } else { rng.gen() })
                            .collect()
                    })
                    .collect();
                let w: Vec<u64> = (0..terms)
                    .map(|j| if j == 0 { q - 1 } else { rng.gen_range(0..q) })
                    .collect();
                let ws: Vec<u64> = w.iter().map(|&v| m.shoup(v)).collect();
                let refs: Vec<&[u64]> = xs.iter().map(|v| v.as_slice()).collect();
                let (mut a, mut b) = (vec![0; n], vec![0; n]);
                dot_shoup_scalar(&m, &mut a, &refs, &w, &ws);
                dot_wide(&m, &mut b, &refs, &w);
                assert_eq!(a, b, "q {q} terms {terms}");
            }
        }
    }
    use super::*;
    use rand::{Rng, SeedableRng};

    fn slices(v: &[Vec<u64>]) -> Vec<&[u64]> {
        v.iter().map(|r| &r[..]).collect()
    }

    /// `dot_products` and `dot_pair` against term-by-term modular arithmetic: any 64-bit `x`
    /// (so that the 128-bit sums carry), multipliers up to `q − 1`, term counts on both sides of
    /// `dot_products`' groups of eight (and none), moduli of 17 to 62 bits.
    #[test]
    fn element_wise_dots_match_term_by_term() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(8);
        for q in [
            65537u64,
            (1 << 50) + 55,
            (1 << 61) - 1,
            0x3fff_ffff_fffe_0001,
        ] {
            let Ok(m) = Modulus::new(q) else { continue };
            for terms in [0usize, 1, 2, 6, 8, 9, 17] {
                let n = 37;
                let mut vecs = |top: u64| -> Vec<Vec<u64>> {
                    (0..terms)
                        .map(|_| {
                            (0..n)
                                .map(|k| match k {
                                    0 => top,
                                    _ if top == u64::MAX => rng.gen(),
                                    _ => rng.gen_range(0..=top),
                                })
                                .collect()
                        })
                        .collect()
                };
                let (x, b, a) = (vecs(u64::MAX), vecs(q - 1), vecs(q - 1));
                let reference = |w: &[Vec<u64>]| -> Vec<u64> {
                    (0..n)
                        .map(|i| {
                            (0..terms).fold(0, |s, j| m.add(s, m.mul(m.reduce(x[j][i]), w[j][i])))
                        })
                        .collect()
                };
                let mut out = vec![7u64; n];
                dot_products(&m, &mut out, &slices(&x), &slices(&b));
                assert_eq!(out, reference(&b), "q {q} terms {terms}");
                let (mut o0, mut o1) = (vec![7u64; n], vec![7u64; n]);
                dot_pair(&m, &mut o0, &mut o1, &slices(&x), &slices(&b), &slices(&a));
                assert_eq!(
                    (o0, o1),
                    (reference(&b), reference(&a)),
                    "q {q} terms {terms}"
                );
            }
        }
    }

    #[test]
    fn simd_matches_scalar() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(21);
        for q in [
            3u64,
            65537,
            (1 << 44) - 21,
            (1 << 61) - 1,
            2305843009211596801, // 61-bit NTT prime just below 2^61
            (1 << 62) - 57,
        ] {
            let m = Modulus::new(q).unwrap();
            for len in [0usize, 1, 7, 8, 9, 64, 101] {
                let x: Vec<u64> = (0..len).map(|_| rng.gen_range(0..2 * q)).collect();
                let t: Vec<u64> = (0..len).map(|_| rng.gen_range(0..=q)).collect();
                let (w, c) = (rng.gen_range(0..q), rng.gen_range(0..q));
                let ws = m.shoup(w);
                let mut a = x.clone();
                let mut b = x.clone();
                sub_mul_add(&m, &mut a, &t, w, ws, c);
                sub_mul_add_scalar(&m, &mut b, &t, w, ws, c);
                assert_eq!(a, b);
                let want: Vec<u64> = x
                    .iter()
                    .zip(&t)
                    .map(|(&x, &t)| {
                        ((((x + q - t) as u128 * w as u128) + c as u128) % q as u128) as u64
                    })
                    .collect();
                assert_eq!(a, want);
                let raw: Vec<u64> = (0..len).map(|_| rng.gen()).collect();
                let acc0: Vec<u64> = (0..len).map(|_| rng.gen_range(0..q)).collect();
                let (mut a1, mut a2) = (acc0.clone(), acc0.clone());
                mul_shoup_acc(&m, &mut a1, &raw, w, ws);
                mul_shoup_acc_scalar(&m, &mut a2, &raw, w, ws);
                assert_eq!(a1, a2);
                let want: Vec<u64> = acc0
                    .iter()
                    .zip(&raw)
                    .map(|(&a, &x)| ((a as u128 + x as u128 * w as u128) % q as u128) as u64)
                    .collect();
                assert_eq!(a1, want);
                for l in [0usize, 1, 2, 5, 9] {
                    let xs: Vec<Vec<u64>> = (0..l)
                        .map(|_| (0..len).map(|_| rng.gen()).collect())
                        .collect();
                    let ws_: Vec<u64> = (0..l).map(|_| rng.gen_range(0..q)).collect();
                    let wss: Vec<u64> = ws_.iter().map(|&w| m.shoup(w)).collect();
                    let refs: Vec<&[u64]> = xs.iter().map(|v| v.as_slice()).collect();
                    let mut o1 = vec![7u64; len];
                    let mut o2 = vec![9u64; len];
                    dot_shoup(&m, &mut o1, &refs, &ws_, &wss);
                    dot_shoup_scalar(&m, &mut o2, &refs, &ws_, &wss);
                    assert_eq!(o1, o2);
                    let want: Vec<u64> = (0..len)
                        .map(|i| {
                            (0..l).fold(0u128, |a, j| {
                                (a + xs[j][i] as u128 * ws_[j] as u128) % q as u128
                            }) as u64
                        })
                        .collect();
                    assert_eq!(o1, want);
                }
                let mut f1 = vec![0.5f64; len];
                let mut f2 = f1.clone();
                fma_f64(&mut f1, &raw, 1.0 / q as f64);
                fma_f64_scalar(&mut f2, &raw, 1.0 / q as f64);
                assert_eq!(f1, f2);
                let mut r = raw.clone();
                reduce(&m, &mut r);
                assert_eq!(r, raw.iter().map(|v| v % q).collect::<Vec<_>>());
                let y: Vec<u64> = (0..len).map(|_| rng.gen_range(0..q)).collect();
                let z: Vec<u64> = (0..len).map(|_| rng.gen_range(0..q)).collect();
                let perm: Vec<u32> = (0..len as u32).rev().collect();
                let mut s = y.clone();
                add_permuted(q, &mut s, &z, &perm);
                let mut s2 = y.clone();
                add_permuted_scalar(q, &mut s2, &z, &perm);
                assert_eq!(s, s2);
                assert_eq!(
                    s,
                    (0..len)
                        .map(|i| ((y[i] as u128 + z[len - 1 - i] as u128) % q as u128) as u64)
                        .collect::<Vec<_>>()
                );
                let mut s = y.clone();
                add_assign(q, &mut s, &z);
                assert_eq!(
                    s,
                    y.iter()
                        .zip(&z)
                        .map(|(a, b)| (a + b) % q)
                        .collect::<Vec<_>>()
                );
                sub_assign(q, &mut s, &z);
                assert_eq!(s, y);
            }
        }
    }
}
