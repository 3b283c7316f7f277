//! RNS contexts and polynomials in `Z_Q[X]/(X^N + 1)`, `Q = q_0 · … · q_{L-1}`.
//!
//! A [`Poly`] uses a prefix `q_0 … q_{k-1}` of its context's primes (`k` =
//! [`Poly::num_moduli`], the "level" as a count of active primes) and records
//! whether it holds coefficients or NTT evaluations. Residues are stored
//! prime-major: residue `i` is `data[i·N .. (i+1)·N]`.

use crate::ntt::{NttPlan, NttTable};
use crate::{MathError, Modulus};
use std::sync::Arc;
use zeroize::Zeroize;

/// Which domain a polynomial's residues live in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Representation {
    /// Coefficients `a_0 … a_{N-1}` modulo each prime.
    Coefficient,
    /// Negacyclic NTT evaluations (tfhe-ntt's bit-reversed order).
    Ntt,
}

/// `N`, a chain of distinct NTT-friendly primes, and their NTT plans.
pub struct RnsContext {
    n: usize,
    moduli: Vec<Modulus>,
    plans: Vec<NttPlan>,
    table: NttTable,
    /// `inv_last[k][i] = (q_{k-1}^{-1} mod q_i, shoup)` for `i < k-1`: rescale from `k` primes.
    inv_last: Vec<Vec<(u64, u64)>>,
}

impl std::fmt::Debug for RnsContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RnsContext")
            .field("n", &self.n)
            .field(
                "moduli",
                &self.moduli.iter().map(|m| m.value()).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl PartialEq for RnsContext {
    fn eq(&self, other: &Self) -> bool {
        self.n == other.n && self.moduli == other.moduli
    }
}
impl Eq for RnsContext {}

impl RnsContext {
    /// `n` a power of two in `[16, 2^17]`; `moduli` distinct primes `≡ 1 mod 2n`, `< 2^62`.
    pub fn new(n: usize, moduli: &[u64]) -> Result<Arc<Self>, MathError> {
        if !n.is_power_of_two() || !(16..=1 << 17).contains(&n) {
            return Err(MathError::InvalidDegree { degree: n });
        }
        if moduli.is_empty() {
            return Err(MathError::EmptyBasis);
        }
        for (i, &q) in moduli.iter().enumerate() {
            if moduli[..i].contains(&q) {
                return Err(MathError::DuplicateModulus { modulus: q });
            }
        }
        let plans = moduli
            .iter()
            .map(|&q| NttPlan::new(n, q))
            .collect::<Result<Vec<_>, _>>()?;
        let table = NttTable::new(&plans[0]);
        for p in &plans[1..] {
            if !table.matches(p) {
                return Err(MathError::NotNttFriendly {
                    modulus: p.modulus().value(),
                    degree: n,
                });
            }
        }
        let mods: Vec<Modulus> = plans.iter().map(|p| *p.modulus()).collect();
        let mut inv_last = vec![Vec::new(); mods.len() + 1];
        for k in 2..=mods.len() {
            let ql = mods[k - 1].value();
            inv_last[k] = mods[..k - 1]
                .iter()
                .map(|m| {
                    let v = m.inv(ql).expect("distinct primes are coprime");
                    (v, m.shoup(v))
                })
                .collect();
        }
        Ok(Arc::new(Self {
            n,
            moduli: mods,
            plans,
            table,
            inv_last,
        }))
    }

    pub fn n(&self) -> usize {
        self.n
    }

    pub fn moduli(&self) -> &[Modulus] {
        &self.moduli
    }

    /// Number of primes in the chain.
    pub fn len(&self) -> usize {
        self.moduli.len()
    }

    pub fn is_empty(&self) -> bool {
        self.moduli.is_empty()
    }

    pub fn plan(&self, i: usize) -> &NttPlan {
        &self.plans[i]
    }

    /// `log2` of the product of the first `k` primes.
    pub fn log2_product(&self, k: usize) -> f64 {
        self.moduli[..k]
            .iter()
            .map(|m| (m.value() as f64).log2())
            .sum()
    }

    /// The exponents of the NTT slots shared by every prime of the context (see [`crate::ntt`]).
    pub fn ntt_table(&self) -> &NttTable {
        &self.table
    }

    /// NTT-slot permutation for `X → X^k`; see [`crate::ntt`].
    pub fn automorphism_permutation(&self, k: usize) -> Result<Vec<u32>, MathError> {
        check_galois(k, self.n)?;
        Ok(self.table.automorphism_permutation(k))
    }
}

pub(crate) fn check_galois(k: usize, n: usize) -> Result<(), MathError> {
    if k.is_multiple_of(2) || k >= 2 * n {
        return Err(MathError::InvalidGaloisElement {
            element: k,
            degree: n,
        });
    }
    Ok(())
}

/// A polynomial of `Z_{q_0…q_{k-1}}[X]/(X^N+1)` in RNS form.
#[derive(Clone)]
pub struct Poly {
    ctx: Arc<RnsContext>,
    repr: Representation,
    num_moduli: usize,
    data: Vec<u64>,
}

impl std::fmt::Debug for Poly {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Poly")
            .field("n", &self.ctx.n)
            .field("num_moduli", &self.num_moduli)
            .field("repr", &self.repr)
            .finish_non_exhaustive()
    }
}

impl PartialEq for Poly {
    fn eq(&self, o: &Self) -> bool {
        *self.ctx == *o.ctx
            && self.repr == o.repr
            && self.num_moduli == o.num_moduli
            && self.data == o.data
    }
}
impl Eq for Poly {}

impl Zeroize for Poly {
    fn zeroize(&mut self) {
        self.data.zeroize();
    }
}

impl Poly {
    /// The zero polynomial over the first `num_moduli` primes.
    pub fn zero(ctx: &Arc<RnsContext>, num_moduli: usize, repr: Representation) -> Self {
        assert!(
            num_moduli >= 1 && num_moduli <= ctx.len(),
            "num_moduli out of range"
        );
        Self {
            ctx: ctx.clone(),
            repr,
            num_moduli,
            data: vec![0; num_moduli * ctx.n],
        }
    }

    /// Builds from raw residues (prime-major), checking length and ranges.
    pub fn from_residues(
        ctx: &Arc<RnsContext>,
        num_moduli: usize,
        repr: Representation,
        data: Vec<u64>,
    ) -> Result<Self, MathError> {
        if num_moduli == 0 || num_moduli > ctx.len() {
            return Err(MathError::InvalidModuliCount {
                count: num_moduli,
                max: ctx.len(),
            });
        }
        if data.len() != num_moduli * ctx.n {
            return Err(MathError::InvalidLength {
                expected: num_moduli * ctx.n,
                found: data.len(),
            });
        }
        for (i, chunk) in data.chunks_exact(ctx.n).enumerate() {
            let q = ctx.moduli[i].value();
            if let Some(&v) = chunk.iter().find(|&&v| v >= q) {
                return Err(MathError::ValueOutOfRange {
                    value: v,
                    modulus: q,
                });
            }
        }
        Ok(Self {
            ctx: ctx.clone(),
            repr,
            num_moduli,
            data,
        })
    }

    /// Its first `k` residues as a polynomial over the first `k` primes (a copy).
    pub fn prefix(&self, k: usize) -> Poly {
        assert!(k >= 1 && k <= self.num_moduli, "num_moduli out of range");
        Self {
            ctx: self.ctx.clone(),
            repr: self.repr,
            num_moduli: k,
            data: self.data[..k * self.ctx.n].to_vec(),
        }
    }

    /// Resizes to `k` residues in place: drops the residues above `k`, or appends zero
    /// residues (for a buffer whose contents the caller overwrites).
    pub fn resize_moduli(&mut self, k: usize) {
        assert!(k >= 1 && k <= self.ctx.len(), "num_moduli out of range");
        self.num_moduli = k;
        self.data.resize(k * self.ctx.n, 0);
    }

    /// NTT-form automorphism with a precomputed permutation into a new polynomial:
    /// `out[i] = self[perm[i]]` on every residue ([`RnsContext::automorphism_permutation`]).
    pub fn permuted(&self, perm: &[u32]) -> Poly {
        let n = self.ctx.n;
        assert_eq!(perm.len(), n, "permutation length");
        let mut data = Vec::with_capacity(self.data.len());
        for src in self.data.chunks_exact(n) {
            data.extend(perm.iter().map(|&p| src[p as usize]));
        }
        Self {
            ctx: self.ctx.clone(),
            repr: self.repr,
            num_moduli: self.num_moduli,
            data,
        }
    }

    /// Coefficient-form polynomial with small signed coefficients (length ≤ N, zero-padded).
    pub fn from_signed(ctx: &Arc<RnsContext>, num_moduli: usize, coeffs: &[i64]) -> Self {
        let mut p = Self::zero(ctx, num_moduli, Representation::Coefficient);
        assert!(coeffs.len() <= ctx.n);
        for (i, m) in ctx.moduli[..num_moduli].iter().enumerate() {
            let r = &mut p.data[i * ctx.n..][..coeffs.len()];
            for (d, &c) in r.iter_mut().zip(coeffs) {
                *d = m.reduce_i64(c);
            }
        }
        p
    }

    /// Coefficient-form polynomial from unsigned integers reduced mod each prime.
    pub fn from_unsigned(ctx: &Arc<RnsContext>, num_moduli: usize, coeffs: &[u64]) -> Self {
        let mut p = Self::zero(ctx, num_moduli, Representation::Coefficient);
        assert!(coeffs.len() <= ctx.n);
        for (i, m) in ctx.moduli[..num_moduli].iter().enumerate() {
            let r = &mut p.data[i * ctx.n..][..coeffs.len()];
            for (d, &c) in r.iter_mut().zip(coeffs) {
                *d = m.reduce(c);
            }
        }
        p
    }

    pub fn context(&self) -> &Arc<RnsContext> {
        &self.ctx
    }
    pub fn n(&self) -> usize {
        self.ctx.n
    }
    pub fn representation(&self) -> Representation {
        self.repr
    }
    /// Number of active primes (the level, counted in primes).
    pub fn num_moduli(&self) -> usize {
        self.num_moduli
    }
    pub fn moduli(&self) -> &[Modulus] {
        &self.ctx.moduli[..self.num_moduli]
    }
    /// All residues, prime-major.
    pub fn data(&self) -> &[u64] {
        &self.data
    }
    pub fn data_mut(&mut self) -> &mut [u64] {
        &mut self.data
    }
    pub fn residue(&self, i: usize) -> &[u64] {
        &self.data[i * self.ctx.n..(i + 1) * self.ctx.n]
    }
    pub fn residue_mut(&mut self, i: usize) -> &mut [u64] {
        let n = self.ctx.n;
        &mut self.data[i * n..(i + 1) * n]
    }

    /// Reinterprets the representation flag without transforming (for values
    /// sampled uniformly, which are uniform in either domain).
    pub fn set_representation_unchecked(&mut self, repr: Representation) {
        self.repr = repr;
    }

    fn check(&self, o: &Poly) -> Result<(), MathError> {
        if !Arc::ptr_eq(&self.ctx, &o.ctx) && *self.ctx != *o.ctx {
            return Err(MathError::ContextMismatch);
        }
        if self.num_moduli != o.num_moduli {
            return Err(MathError::ModuliCountMismatch {
                lhs: self.num_moduli,
                rhs: o.num_moduli,
            });
        }
        if self.repr != o.repr {
            return Err(MathError::RepresentationMismatch {
                expected: self.repr,
                found: o.repr,
            });
        }
        Ok(())
    }

    fn require(&self, repr: Representation) -> Result<(), MathError> {
        if self.repr != repr {
            return Err(MathError::RepresentationMismatch {
                expected: repr,
                found: self.repr,
            });
        }
        Ok(())
    }

    /// Forward NTT of every residue (no-op if already in NTT form).
    pub fn ntt_forward(&mut self) {
        if self.repr == Representation::Ntt {
            return;
        }
        let n = self.ctx.n;
        for (i, r) in self.data.chunks_exact_mut(n).enumerate() {
            self.ctx.plans[i].forward(r);
        }
        self.repr = Representation::Ntt;
    }

    /// Inverse NTT of every residue (no-op if already in coefficient form).
    pub fn ntt_inverse(&mut self) {
        if self.repr == Representation::Coefficient {
            return;
        }
        let n = self.ctx.n;
        for (i, r) in self.data.chunks_exact_mut(n).enumerate() {
            self.ctx.plans[i].inverse(r);
        }
        self.repr = Representation::Coefficient;
    }

    pub fn to_representation(&mut self, repr: Representation) {
        match repr {
            Representation::Ntt => self.ntt_forward(),
            Representation::Coefficient => self.ntt_inverse(),
        }
    }

    pub fn add_assign(&mut self, o: &Poly) -> Result<(), MathError> {
        self.check(o)?;
        let n = self.ctx.n;
        for (i, (a, b)) in self
            .data
            .chunks_exact_mut(n)
            .zip(o.data.chunks_exact(n))
            .enumerate()
        {
            let q = self.ctx.moduli[i].value();
            for (x, &y) in a.iter_mut().zip(b) {
                let s = *x + y;
                *x = s.min(s.wrapping_sub(q));
            }
        }
        Ok(())
    }

    pub fn sub_assign(&mut self, o: &Poly) -> Result<(), MathError> {
        self.check(o)?;
        let n = self.ctx.n;
        for (i, (a, b)) in self
            .data
            .chunks_exact_mut(n)
            .zip(o.data.chunks_exact(n))
            .enumerate()
        {
            let q = self.ctx.moduli[i].value();
            for (x, &y) in a.iter_mut().zip(b) {
                let s = *x + q - y;
                *x = s.min(s.wrapping_sub(q));
            }
        }
        Ok(())
    }

    pub fn neg_assign(&mut self) {
        let n = self.ctx.n;
        for (i, a) in self.data.chunks_exact_mut(n).enumerate() {
            let m = self.ctx.moduli[i];
            for x in a.iter_mut() {
                *x = m.neg(*x);
            }
        }
    }

    /// `self ⊙= o` (both in NTT form).
    pub fn mul_assign(&mut self, o: &Poly) -> Result<(), MathError> {
        self.check(o)?;
        self.require(Representation::Ntt)?;
        let n = self.ctx.n;
        let mut tmp = vec![0u64; n];
        for i in 0..self.num_moduli {
            let a = &mut self.data[i * n..(i + 1) * n];
            self.ctx.plans[i].mul_into(&mut tmp, a, &o.data[i * n..(i + 1) * n]);
            a.copy_from_slice(&tmp);
        }
        Ok(())
    }

    /// `self ⊙= o` where `o` may have more active primes than `self` (its first
    /// `self.num_moduli()` residues are used), both in NTT form. Avoids
    /// truncated copies of keys kept at the top level.
    pub fn mul_assign_prefix(&mut self, o: &Poly) -> Result<(), MathError> {
        if !Arc::ptr_eq(&self.ctx, &o.ctx) && *self.ctx != *o.ctx {
            return Err(MathError::ContextMismatch);
        }
        if o.num_moduli < self.num_moduli {
            return Err(MathError::ModuliCountMismatch {
                lhs: self.num_moduli,
                rhs: o.num_moduli,
            });
        }
        self.require(Representation::Ntt)?;
        o.require(Representation::Ntt)?;
        let n = self.ctx.n;
        let mut tmp = vec![0u64; n];
        for i in 0..self.num_moduli {
            let a = &mut self.data[i * n..(i + 1) * n];
            self.ctx.plans[i].mul_into(&mut tmp, a, &o.data[i * n..(i + 1) * n]);
            a.copy_from_slice(&tmp);
        }
        Ok(())
    }

    /// `self += a ⊙ b` (all three in NTT form).
    pub fn mul_acc(&mut self, a: &Poly, b: &Poly) -> Result<(), MathError> {
        self.check(a)?;
        self.check(b)?;
        self.require(Representation::Ntt)?;
        let n = self.ctx.n;
        for i in 0..self.num_moduli {
            let r = i * n..(i + 1) * n;
            self.ctx.plans[i].mul_accumulate(
                &mut self.data[r.clone()],
                &a.data[r.clone()],
                &b.data[r],
            );
        }
        Ok(())
    }

    /// Multiplies residue `i` by `scalars[i]` (`scalars[i] < q_i`).
    pub fn mul_scalar_rns_assign(&mut self, scalars: &[u64]) {
        let n = self.ctx.n;
        for (i, a) in self.data.chunks_exact_mut(n).enumerate() {
            let m = self.ctx.moduli[i];
            let w = m.reduce(scalars[i]);
            crate::simd::mul_shoup(&m, a, w, m.shoup(w));
        }
    }

    /// Multiplies by an integer scalar.
    pub fn mul_scalar_assign(&mut self, s: u64) {
        let v: Vec<u64> = self.moduli().iter().map(|m| m.reduce(s)).collect();
        self.mul_scalar_rns_assign(&v);
    }

    /// Drops the last active prime (exact reduction modulo a divisor of `Q`).
    pub fn drop_last_modulus(&mut self) -> Result<(), MathError> {
        self.drop_to(self.num_moduli - 1)
    }

    /// Keeps only the first `k` primes.
    pub fn drop_to(&mut self, k: usize) -> Result<(), MathError> {
        if k == 0 || k > self.num_moduli {
            return Err(MathError::InvalidModuliCount {
                count: k,
                max: self.num_moduli,
            });
        }
        self.num_moduli = k;
        self.data.truncate(k * self.ctx.n);
        Ok(())
    }

    /// Divides by the last active prime `q_l` with rounding: `x ↦ round(x / q_l)`
    /// modulo `Q / q_l` (CKKS rescale; BFV modulus switching `Q → Q/q_l`).
    /// Works in either representation.
    pub fn rescale_last(&mut self) -> Result<(), MathError> {
        let k = self.num_moduli;
        if k < 2 {
            return Err(MathError::InvalidModuliCount {
                count: k - 1,
                max: k,
            });
        }
        let n = self.ctx.n;
        let ql = self.ctx.moduli[k - 1];
        let half = ql.value() / 2;
        let mut last = self.data[(k - 1) * n..].to_vec();
        if self.repr == Representation::Ntt {
            self.ctx.plans[k - 1].inverse(&mut last);
        }
        // y = x + floor(q_l/2); r = y mod q_l; result = (y - r) / q_l = floor((x+h)/q_l) = round(x/q_l)
        for v in last.iter_mut() {
            *v = ql.add(*v, half);
        }
        let mut tmp = vec![0u64; n];
        for i in 0..k - 1 {
            let m = self.ctx.moduli[i];
            let (inv, inv_s) = self.ctx.inv_last[k][i];
            // (x − r + h)·q_l^{-1} = (x − r)·q_l^{-1} + h·q_l^{-1}, with h = ⌊q_l/2⌋ mod q_i
            let h_inv = m.mul(m.reduce(half), inv);
            tmp.copy_from_slice(&last);
            crate::simd::reduce(&m, &mut tmp);
            let c = if self.repr == Representation::Ntt {
                // h is added to every coefficient, so it goes through the NTT with r
                let h = m.reduce(half);
                for v in tmp.iter_mut() {
                    *v = m.sub(*v, h);
                }
                self.ctx.plans[i].forward(&mut tmp);
                0
            } else {
                h_inv
            };
            crate::simd::sub_mul_add(&m, &mut self.data[i * n..(i + 1) * n], &tmp, inv, inv_s, c);
        }
        self.num_moduli = k - 1;
        self.data.truncate((k - 1) * n);
        Ok(())
    }

    /// `X → X^k` for odd `k < 2N`, in the polynomial's own representation.
    pub fn automorphism(&self, k: usize) -> Result<Poly, MathError> {
        match self.repr {
            Representation::Coefficient => {
                let mut out = Poly::zero(&self.ctx, self.num_moduli, self.repr);
                self.automorphism_coeff_into(k, &mut out)?;
                Ok(out)
            }
            Representation::Ntt => Ok(self.permuted(&self.ctx.automorphism_permutation(k)?)),
        }
    }

    fn automorphism_coeff_into(&self, k: usize, out: &mut Poly) -> Result<(), MathError> {
        let n = self.ctx.n;
        check_galois(k, n)?;
        let mask = 2 * n - 1;
        for i in 0..self.num_moduli {
            let m = self.ctx.moduli[i];
            let src = &self.data[i * n..(i + 1) * n];
            let dst = &mut out.data[i * n..(i + 1) * n];
            for (j, &v) in src.iter().enumerate() {
                let e = (j * k) & mask;
                if e < n {
                    dst[e] = v;
                } else {
                    dst[e - n] = m.neg(v);
                }
            }
        }
        Ok(())
    }

    /// NTT-form automorphism with a precomputed permutation
    /// ([`RnsContext::automorphism_permutation`]).
    pub fn automorphism_ntt_into(&self, perm: &[u32], out: &mut Poly) -> Result<(), MathError> {
        self.require(Representation::Ntt)?;
        self.check(out)?;
        let n = self.ctx.n;
        for i in 0..self.num_moduli {
            let src = &self.data[i * n..(i + 1) * n];
            let dst = &mut out.data[i * n..(i + 1) * n];
            for (d, &p) in dst.iter_mut().zip(perm) {
                *d = src[p as usize];
            }
        }
        Ok(())
    }

    /// Multiplies by the monomial `X^e` (`0 ≤ e < 2N`), coefficient form.
    pub fn mul_monomial(&self, e: usize) -> Result<Poly, MathError> {
        self.require(Representation::Coefficient)?;
        let n = self.ctx.n;
        let e = e % (2 * n);
        let mut out = Poly::zero(&self.ctx, self.num_moduli, self.repr);
        for i in 0..self.num_moduli {
            let m = self.ctx.moduli[i];
            let src = &self.data[i * n..(i + 1) * n];
            let dst = &mut out.data[i * n..(i + 1) * n];
            for (j, &v) in src.iter().enumerate() {
                let t = (j + e) % (2 * n);
                if t < n {
                    dst[t] = v;
                } else {
                    dst[t - n] = m.neg(v);
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prime::generate_primes;
    use crate::sample::uniform_poly;
    use rand::SeedableRng;

    fn ctx(n: usize, k: usize) -> Arc<RnsContext> {
        RnsContext::new(n, &generate_primes(50, n, k, &[]).unwrap()).unwrap()
    }

    #[test]
    fn product_matches_schoolbook_each_residue() {
        let c = ctx(64, 3);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
        let a = uniform_poly(&c, 3, Representation::Coefficient, &mut rng);
        let b = uniform_poly(&c, 3, Representation::Coefficient, &mut rng);
        let (mut fa, mut fb) = (a.clone(), b.clone());
        fa.ntt_forward();
        fb.ntt_forward();
        fa.mul_assign(&fb).unwrap();
        fa.ntt_inverse();
        for i in 0..3 {
            let m = c.moduli()[i];
            let want = crate::ntt::tests_support::schoolbook(a.residue(i), b.residue(i), &m);
            assert_eq!(fa.residue(i), &want[..]);
        }
    }

    #[test]
    fn automorphism_coeff_vs_ntt() {
        let c = ctx(128, 2);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let a = uniform_poly(&c, 2, Representation::Coefficient, &mut rng);
        for k in [3usize, 5, 255, 2 * 128 - 1, 25] {
            let ac = a.automorphism(k).unwrap();
            let mut an = a.clone();
            an.ntt_forward();
            let mut r = an.automorphism(k).unwrap();
            r.ntt_inverse();
            assert_eq!(r, ac, "k = {k}");
        }
        // The precomputed-permutation forms agree with it.
        let mut an = a.clone();
        an.ntt_forward();
        for k in [3usize, 5, 255] {
            let perm = c.automorphism_permutation(k).unwrap();
            let mut into = Poly::zero(&c, 2, Representation::Ntt);
            an.automorphism_ntt_into(&perm, &mut into).unwrap();
            assert_eq!(an.permuted(&perm), into, "k = {k}");
            assert_eq!(an.permuted(&perm), an.automorphism(k).unwrap(), "k = {k}");
        }
        // A prefix is the first residues; resizing drops or zero-extends residues.
        let mut p = a.prefix(1);
        assert_eq!((p.num_moduli(), p.residue(0)), (1, a.residue(0)));
        p.resize_moduli(2);
        assert_eq!(
            (p.residue(0), p.residue(1)),
            (a.residue(0), &[0u64; 128][..])
        );
        // σ_k ∘ σ_{k^{-1}} = id, and σ_{2N-1} on X gives -X^{N-1}
        let x = Poly::from_signed(&c, 2, &[0, 1]);
        let y = x.automorphism(2 * 128 - 1).unwrap();
        let mut want = vec![0i64; 128];
        want[127] = -1;
        assert_eq!(y, Poly::from_signed(&c, 2, &want));
        assert!(a.automorphism(4).is_err());
    }

    #[test]
    fn rescale_rounds() {
        let c = ctx(32, 3);
        let q2 = c.moduli()[2].value() as i128;
        let vals: Vec<i64> = vec![
            0,
            1,
            -1,
            12345678901,
            -98765432109,
            (q2 / 2) as i64,
            -(q2 / 2) as i64 - 1,
            7 * q2 as i64 + 3,
        ];
        for repr in [Representation::Coefficient, Representation::Ntt] {
            let mut p = Poly::from_signed(&c, 3, &vals);
            p.to_representation(repr);
            p.rescale_last().unwrap();
            p.ntt_inverse();
            let want: Vec<i64> = vals
                .iter()
                .map(|&v| ((v as f64) / q2 as f64).round() as i64)
                .collect();
            assert_eq!(p, Poly::from_signed(&c, 2, &want), "{repr:?}");
        }
    }

    #[test]
    fn monomial_and_mismatch_errors() {
        let c = ctx(16, 2);
        let x = Poly::from_signed(&c, 2, &[1, 2]);
        let y = x.mul_monomial(15).unwrap();
        let mut want = vec![0i64; 16];
        want[15] = 1;
        want[0] = -2;
        assert_eq!(y, Poly::from_signed(&c, 2, &want));
        let mut z = Poly::zero(&c, 1, Representation::Coefficient);
        assert!(matches!(
            z.add_assign(&x),
            Err(MathError::ModuliCountMismatch { .. })
        ));
        let mut w = x.clone();
        w.ntt_forward();
        let mut x2 = x.clone();
        assert!(matches!(
            x2.add_assign(&w),
            Err(MathError::RepresentationMismatch { .. })
        ));
        assert!(Poly::from_residues(&c, 1, Representation::Ntt, vec![u64::MAX; 16]).is_err());
        assert!(RnsContext::new(16, &[c.moduli()[0].value(), c.moduli()[0].value()]).is_err());
    }
}
