//! Negacyclic NTT over `Z_q[X]/(X^N + 1)` through `tfhe-ntt`'s prime-modulus
//! plans, plus the index maps that let automorphisms `X → X^k` act directly on
//! NTT-domain vectors.
//!
//! `tfhe-ntt` returns evaluations in bit-reversed order. Rather than relying on
//! that order, [`NttTable`] records for each output slot `i` the odd exponent
//! `e_i` with `slot_i = a(ψ^{e_i})`, where `ψ` is the root at slot 0. Then
//! `σ_k(a)(ψ^{e_i}) = a(ψ^{k·e_i})`, a permutation of slots.

use crate::{MathError, Modulus};
use std::collections::HashMap;

/// A forward/inverse negacyclic NTT of size `n` modulo one prime.
#[derive(Clone)]
pub struct NttPlan {
    plan: tfhe_ntt::prime64::Plan,
    modulus: Modulus,
}

impl std::fmt::Debug for NttPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NttPlan")
            .field("n", &self.plan.ntt_size())
            .field("q", &self.modulus.value())
            .finish()
    }
}

impl NttPlan {
    /// Plan for `q ≡ 1 mod 2n` prime, `n ≥ 16` a power of two.
    pub fn new(n: usize, q: u64) -> Result<Self, MathError> {
        let modulus = Modulus::new(q)?;
        if !crate::prime::is_ntt_friendly(q, n) {
            return Err(MathError::NotNttFriendly {
                modulus: q,
                degree: n,
            });
        }
        let plan = tfhe_ntt::prime64::Plan::try_new(n, q).ok_or(MathError::NotNttFriendly {
            modulus: q,
            degree: n,
        })?;
        Ok(Self { plan, modulus })
    }

    pub fn n(&self) -> usize {
        self.plan.ntt_size()
    }

    pub fn modulus(&self) -> &Modulus {
        &self.modulus
    }

    /// Coefficients (standard order, in `[0, q)`) → evaluations (bit-reversed order).
    #[inline]
    pub fn forward(&self, a: &mut [u64]) {
        self.plan.fwd(a);
    }

    /// Evaluations → coefficients, including the `1/N` normalization.
    #[inline]
    pub fn inverse(&self, a: &mut [u64]) {
        self.plan.inv(a);
        self.plan.normalize(a);
    }

    /// `acc[i] += a[i]·b[i] mod q` (vectorized).
    #[inline]
    pub fn mul_accumulate(&self, acc: &mut [u64], a: &[u64], b: &[u64]) {
        self.plan.mul_accumulate(acc, a, b);
    }

    /// `out[i] = a[i]·b[i] mod q` (vectorized).
    #[inline]
    pub fn mul_into(&self, out: &mut [u64], a: &[u64], b: &[u64]) {
        out.fill(0);
        self.plan.mul_accumulate(out, a, b);
    }
}

/// Exponents of the NTT slots (see module doc).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NttTable {
    /// `exp[i] = e_i`, odd, in `[0, 2n)`.
    exp: Vec<u32>,
    /// `index_of[e] = i` for odd `e`.
    index_of: Vec<u32>,
}

impl NttTable {
    pub fn new(plan: &NttPlan) -> Self {
        let n = plan.n();
        let m = plan.modulus();
        let mut x = vec![0u64; n];
        x[1] = 1;
        plan.forward(&mut x);
        let psi = x[0];
        let mut logs = HashMap::with_capacity(2 * n);
        let mut p = 1u64;
        for j in 0..2 * n as u32 {
            logs.insert(p, j);
            p = m.mul(p, psi);
        }
        let exp: Vec<u32> = x.iter().map(|v| logs[v]).collect();
        let mut index_of = vec![u32::MAX; 2 * n];
        for (i, &e) in exp.iter().enumerate() {
            index_of[e as usize] = i as u32;
        }
        Self { exp, index_of }
    }

    /// Whether `plan` orders its slots by the same exponents (checked in O(N)
    /// by evaluating `X` and comparing with powers of its slot-0 root).
    pub fn matches(&self, plan: &NttPlan) -> bool {
        let n = plan.n();
        if n != self.exp.len() {
            return false;
        }
        let m = plan.modulus();
        let mut x = vec![0u64; n];
        x[1] = 1;
        plan.forward(&mut x);
        let psi = x[0];
        let mut pow = Vec::with_capacity(2 * n);
        let mut p = 1u64;
        for _ in 0..2 * n {
            pow.push(p);
            p = m.mul(p, psi);
        }
        x.iter().zip(&self.exp).all(|(&v, &e)| pow[e as usize] == v)
    }

    /// Odd exponent `e_i` of slot `i`: slot `i` holds `a(ψ^{e_i})`.
    pub fn exponent(&self, i: usize) -> u32 {
        self.exp[i]
    }

    /// Slot holding `a(ψ^e)` for odd `e < 2n`.
    pub fn index_of_exponent(&self, e: usize) -> usize {
        self.index_of[e] as usize
    }

    /// Slot permutation for `X → X^k` (`k` odd): `out[i] = in[perm[i]]`.
    pub fn automorphism_permutation(&self, k: usize) -> Vec<u32> {
        let two_n = self.index_of.len();
        self.exp
            .iter()
            .map(|&e| self.index_of[(e as usize * k) % two_n])
            .collect()
    }
}

#[cfg(test)]
pub(crate) mod tests_support {
    use crate::Modulus;
    pub(crate) fn schoolbook(a: &[u64], b: &[u64], m: &Modulus) -> Vec<u64> {
        let n = a.len();
        let mut out = vec![0u64; n];
        for i in 0..n {
            for j in 0..n {
                let p = m.mul(a[i], b[j]);
                if i + j < n {
                    out[i + j] = m.add(out[i + j], p);
                } else {
                    out[i + j - n] = m.sub(out[i + j - n], p);
                }
            }
        }
        out
    }

    /// Schoolbook product modulo `X^n - 1`.
    pub(crate) fn schoolbook_cyclic(a: &[u64], b: &[u64], m: &Modulus) -> Vec<u64> {
        let n = a.len();
        let mut out = vec![0u64; n];
        for (i, &ai) in a.iter().enumerate() {
            for (j, &bj) in b.iter().enumerate() {
                let k = (i + j) % n;
                out[k] = m.add(out[k], m.mul(ai, bj));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prime::generate_primes;
    use rand::{Rng, SeedableRng};

    #[test]
    fn roundtrip_and_product() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        for &(bits, n) in &[(30u32, 16usize), (50, 64), (61, 256), (45, 1024)] {
            let q = generate_primes(bits, n, 1, &[]).unwrap()[0];
            let plan = NttPlan::new(n, q).unwrap();
            let m = *plan.modulus();
            let a: Vec<u64> = (0..n).map(|_| rng.gen_range(0..q)).collect();
            let b: Vec<u64> = (0..n).map(|_| rng.gen_range(0..q)).collect();
            let mut fa = a.clone();
            plan.forward(&mut fa);
            assert!(fa.iter().all(|&x| x < q));
            let mut back = fa.clone();
            plan.inverse(&mut back);
            assert_eq!(back, a);
            let mut fb = b.clone();
            plan.forward(&mut fb);
            let mut prod = vec![0; n];
            plan.mul_into(&mut prod, &fa, &fb);
            plan.inverse(&mut prod);
            assert_eq!(prod, super::tests_support::schoolbook(&a, &b, &m));
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
        /// NTT∘INTT = id and NTT products = schoolbook negacyclic products, for
        /// random degrees 2^4..2^8, prime sizes 20..62 bits and inputs.
        #[test]
        fn ntt_laws(log_n in 4u32..=8, bits in 20u32..=62, seed: u64) {
            let n = 1usize << log_n;
            let q = generate_primes(bits, n, 1, &[]).unwrap()[0];
            let plan = NttPlan::new(n, q).unwrap();
            let m = *plan.modulus();
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            let a: Vec<u64> = (0..n).map(|_| rng.gen_range(0..q)).collect();
            let b: Vec<u64> = (0..n).map(|_| rng.gen_range(0..q)).collect();
            let (mut fa, mut fb) = (a.clone(), b.clone());
            plan.forward(&mut fa);
            plan.forward(&mut fb);
            let mut back = fa.clone();
            plan.inverse(&mut back);
            proptest::prop_assert_eq!(&back, &a);
            let mut prod = vec![0; n];
            plan.mul_into(&mut prod, &fa, &fb);
            plan.inverse(&mut prod);
            proptest::prop_assert_eq!(prod, super::tests_support::schoolbook(&a, &b, &m));
        }
    }

    #[test]
    fn rejects_non_friendly() {
        assert!(NttPlan::new(1024, 97).is_err());
        assert!(NttPlan::new(1000, 12289).is_err());
    }
}
