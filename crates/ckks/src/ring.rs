//! Limb-parallel helpers over `math::Poly` (rayon over RNS residues).

use math::{Poly, Representation, RnsContext};
use rayon::prelude::*;
use std::sync::Arc;

/// `f(i, residue_i)` for every residue, in parallel.
pub(crate) fn for_limbs(p: &mut Poly, f: impl Fn(usize, &mut [u64]) + Sync + Send) {
    let n = p.n();
    p.data_mut()
        .par_chunks_exact_mut(n)
        .enumerate()
        .for_each(|(i, r)| f(i, r));
}

/// `a += b` residue-wise (same context, same count of moduli, same representation).
pub(crate) fn add_assign(a: &mut Poly, b: &Poly) {
    debug_assert_eq!(a.num_moduli(), b.num_moduli());
    let ctx = a.context().clone();
    let n = a.n();
    let bd = b.data();
    for_limbs(a, |i, r| {
        math::simd::add_assign(ctx.moduli()[i].value(), r, &bd[i * n..(i + 1) * n])
    });
}

/// `a += σ(b)` residue-wise, `σ` the NTT-domain automorphism given by its slot permutation.
pub(crate) fn add_permuted(a: &mut Poly, b: &Poly, perm: &[u32]) {
    debug_assert_eq!(a.num_moduli(), b.num_moduli());
    let ctx = a.context().clone();
    let n = a.n();
    let bd = b.data();
    for_limbs(a, |i, r| {
        math::simd::add_permuted(ctx.moduli()[i].value(), r, &bd[i * n..(i + 1) * n], perm)
    });
}

/// `a −= b` residue-wise.
pub(crate) fn sub_assign(a: &mut Poly, b: &Poly) {
    debug_assert_eq!(a.num_moduli(), b.num_moduli());
    let ctx = a.context().clone();
    let n = a.n();
    let bd = b.data();
    for_limbs(a, |i, r| {
        math::simd::sub_assign(ctx.moduli()[i].value(), r, &bd[i * n..(i + 1) * n])
    });
}

/// `a = −a`.
pub(crate) fn neg_assign(a: &mut Poly) {
    let ctx = a.context().clone();
    for_limbs(a, |i, r| {
        let m = ctx.moduli()[i];
        for x in r.iter_mut() {
            *x = m.neg(*x);
        }
    });
}

/// `out = a ⊙ b` (NTT domain), using the first `out.num_moduli()` residues of `a` and `b`.
pub(crate) fn mul_into(out: &mut Poly, a: &Poly, b: &Poly) {
    let ctx = out.context().clone();
    let n = out.n();
    let (ad, bd) = (a.data(), b.data());
    for_limbs(out, |i, r| {
        ctx.plan(i)
            .mul_into(r, &ad[i * n..(i + 1) * n], &bd[i * n..(i + 1) * n]);
    });
}

/// `acc += a ⊙ b` (NTT domain), first `acc.num_moduli()` residues.
pub(crate) fn mul_acc(acc: &mut Poly, a: &Poly, b: &Poly) {
    let ctx = acc.context().clone();
    let n = acc.n();
    let (ad, bd) = (a.data(), b.data());
    for_limbs(acc, |i, r| {
        ctx.plan(i)
            .mul_accumulate(r, &ad[i * n..(i + 1) * n], &bd[i * n..(i + 1) * n]);
    });
}

/// `out = Σ_t a_t ⊙ b_t` (NTT domain) on the first `out.num_moduli()` residues, one reduction
/// per coefficient (`math::simd::dot_products`); `out = 0` for no terms.
pub(crate) fn dot_into<'a>(out: &mut Poly, terms: impl Iterator<Item = (&'a Poly, &'a Poly)>) {
    let ctx = out.context().clone();
    let terms: Vec<(&Poly, &Poly)> = terms.collect();
    for_limbs(out, |i, r| {
        let x: Vec<&[u64]> = terms.iter().map(|t| t.0.residue(i)).collect();
        let w: Vec<&[u64]> = terms.iter().map(|t| t.1.residue(i)).collect();
        math::simd::dot_products(&ctx.moduli()[i], r, &x, &w);
    });
}

/// `a *= s_i` residue-wise with a scalar given per residue (already reduced).
pub(crate) fn mul_scalar_rns(a: &mut Poly, s: &[u64]) {
    let ctx = a.context().clone();
    for_limbs(a, |i, r| {
        let m = ctx.moduli()[i];
        math::simd::mul_shoup(&m, r, s[i], m.shoup(s[i]));
    });
}

/// `acc += a · s_i` residue-wise (first `acc.num_moduli()` residues of `a`).
pub(crate) fn mul_scalar_acc(acc: &mut Poly, a: &Poly, s: &[u64]) {
    let ctx = acc.context().clone();
    let n = acc.n();
    let ad = a.data();
    for_limbs(acc, |i, r| {
        let m = ctx.moduli()[i];
        math::simd::mul_shoup_acc(&m, r, &ad[i * n..(i + 1) * n], s[i], m.shoup(s[i]));
    });
}

pub(crate) fn ntt_forward(a: &mut Poly) {
    if a.representation() == Representation::Ntt {
        return;
    }
    let ctx = a.context().clone();
    for_limbs(a, |i, r| ctx.plan(i).forward(r));
    a.set_representation_unchecked(Representation::Ntt);
}

pub(crate) fn ntt_inverse(a: &mut Poly) {
    if a.representation() == Representation::Coefficient {
        return;
    }
    let ctx = a.context().clone();
    for_limbs(a, |i, r| ctx.plan(i).inverse(r));
    a.set_representation_unchecked(Representation::Coefficient);
}

/// Residues of signed integer coefficients (`|c| < 2^127`), coefficient form.
pub(crate) fn from_i128(ctx: &Arc<RnsContext>, k: usize, coeffs: &[i128]) -> Poly {
    let mut p = Poly::zero(ctx, k, Representation::Coefficient);
    let c2 = ctx.clone();
    for_limbs(&mut p, |i, r| {
        let m = c2.moduli()[i];
        for (d, &c) in r.iter_mut().zip(coeffs) {
            *d = m.reduce_i128(c);
        }
    });
    p
}

/// Divide by the last prime with rounding (`⌊x/q_ℓ⌉`), NTT form in and out [CHKKS18 §3.2].
/// `a` has `k ≥ 2` residues; the result has `k − 1`.
pub(crate) fn rescale_ntt(a: &mut Poly) {
    let k = a.num_moduli();
    let ctx = a.context().clone();
    let ql = ctx.moduli()[k - 1];
    let half = ql.value() / 2;
    let mut last = a.residue(k - 1).to_vec();
    ctx.plan(k - 1).inverse(&mut last);
    for v in last.iter_mut() {
        *v = ql.add(*v, half);
    }
    a.drop_to(k - 1).expect("k ≥ 2");
    // x_i ← (x_i − NTT([last − half]_{q_i}))·q_ℓ^{-1}; `last + q_i − [half]_{q_i} < 2^63` is
    // reduced in one vectorized pass.
    for_limbs(a, |i, r| {
        let m = ctx.moduli()[i];
        let off = m.value() - m.reduce(half);
        let mut t: Vec<u64> = last.iter().map(|&x| x + off).collect();
        math::simd::reduce(&m, &mut t);
        ctx.plan(i).forward(&mut t);
        let inv = m.inv(ql.value() % m.value()).expect("distinct primes");
        let inv_s = m.shoup(inv);
        math::simd::sub_mul_add(&m, r, &t, inv, inv_s, 0);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rescale_divides_by_the_last_prime_with_rounding() {
        let n = 16;
        let primes = math::prime::generate_primes(40, n, 3, &[]).unwrap();
        let ctx = RnsContext::new(n, &primes).unwrap();
        let coeffs: Vec<i128> = (0..n as i128).map(|i| (i - 7) * 987_654_321_123).collect();
        let mut p = from_i128(&ctx, 3, &coeffs);
        ntt_forward(&mut p);
        rescale_ntt(&mut p);
        ntt_inverse(&mut p);
        let ql = primes[2] as f64;
        for (i, &c) in coeffs.iter().enumerate() {
            let want = (c as f64 / ql).round() as i64;
            for l in 0..2 {
                let m = ctx.moduli()[l];
                assert_eq!(
                    m.center(p.data()[l * n + i]),
                    want,
                    "coefficient {i}, prime {l}"
                );
            }
        }
    }
}
