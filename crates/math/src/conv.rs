//! Exact integer polynomial products modulo an arbitrary `q < 2^62` (prime or
//! not, e.g. `2^ℓ` or a batching prime that is not NTT-friendly for the length),
//! both cyclic (mod `X^n − 1`, PrivCirNet's CirEncode) and negacyclic
//! (mod `X^n + 1`).
//!
//! The acyclic product of two length-`n` vectors with entries `< q` has entries
//! `< n·q² < 2^141`; it is computed exactly in three 62-bit NTT primes
//! (`P ≈ 2^185`) with a zero-padded negacyclic NTT of size `M ≥ 2n` (no
//! wrap-around), reconstructed modulo `q` by CRT with `v = round(Σ y_i/p_i)`,
//! exact because `x/P < 2^-44`.

use crate::ntt::NttPlan;
use crate::prime::generate_primes;
use crate::{MathError, Modulus};

/// Reduction applied after the acyclic product.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wrap {
    /// modulo `X^n − 1`
    Cyclic,
    /// modulo `X^n + 1`
    Negacyclic,
}

/// Products of length-`n` polynomials modulo `(X^n ∓ 1, q)` for any `n ≤ 2^17`.
#[derive(Clone, Debug)]
pub struct PolyMultiplier {
    n: usize,
    q: Modulus,
    wrap: Wrap,
    plans: Vec<NttPlan>,
    /// `(y-factor (P/p_i)^{-1} mod p_i, (P/p_i) mod q, 1/p_i)`
    crt: Vec<(u64, u64, f64)>,
    p_mod_q: u64,
}

impl PolyMultiplier {
    pub fn new(n: usize, q: u64, wrap: Wrap) -> Result<Self, MathError> {
        if n == 0 || n > 1 << 17 {
            return Err(MathError::InvalidDegree { degree: n });
        }
        let q = Modulus::new(q)?;
        let m = (2 * n).next_power_of_two().max(16);
        let primes = generate_primes(62, m, 3, &[])?;
        let plans = primes
            .iter()
            .map(|&p| NttPlan::new(m, p))
            .collect::<Result<Vec<_>, _>>()?;
        let mods: Vec<Modulus> = plans.iter().map(|p| *p.modulus()).collect();
        let mut crt = Vec::new();
        let mut p_mod_q = 1u64;
        for (i, mi) in mods.iter().enumerate() {
            let mut phat_mod_pi = 1u64;
            let mut phat_mod_q = 1u64;
            for (k, mk) in mods.iter().enumerate() {
                if k != i {
                    phat_mod_pi = mi.mul(phat_mod_pi, mi.reduce(mk.value()));
                    phat_mod_q = q.mul(phat_mod_q, q.reduce(mk.value()));
                }
            }
            crt.push((
                mi.inv(phat_mod_pi).expect("distinct primes"),
                phat_mod_q,
                1.0 / mi.value() as f64,
            ));
            p_mod_q = q.mul(p_mod_q, q.reduce(mi.value()));
        }
        Ok(Self {
            n,
            q,
            wrap,
            plans,
            crt,
            p_mod_q,
        })
    }

    pub fn n(&self) -> usize {
        self.n
    }

    /// `a · b` modulo `(X^n ∓ 1, q)`; inputs must have length `n`, entries `< q`.
    pub fn mul(&self, a: &[u64], b: &[u64]) -> Result<Vec<u64>, MathError> {
        let n = self.n;
        for v in [a, b] {
            if v.len() != n {
                return Err(MathError::InvalidLength {
                    expected: n,
                    found: v.len(),
                });
            }
            if let Some(&x) = v.iter().find(|&&x| x >= self.q.value()) {
                return Err(MathError::ValueOutOfRange {
                    value: x,
                    modulus: self.q.value(),
                });
            }
        }
        let m = self.plans[0].n();
        let mut res: Vec<Vec<u64>> = Vec::with_capacity(3);
        for plan in &self.plans {
            let mut fa = vec![0u64; m];
            let mut fb = vec![0u64; m];
            fa[..n].copy_from_slice(a);
            fb[..n].copy_from_slice(b);
            plan.forward(&mut fa);
            plan.forward(&mut fb);
            let mut prod = vec![0u64; m];
            plan.mul_into(&mut prod, &fa, &fb);
            plan.inverse(&mut prod);
            res.push(prod);
        }
        let q = &self.q;
        let mut out = vec![0u64; n];
        for k in 0..(2 * n - 1) {
            let mut frac = 0.0f64;
            let mut acc = 0u64;
            for (i, plan) in self.plans.iter().enumerate() {
                let (inv, phat_q, inv_p) = self.crt[i];
                let y = plan.modulus().mul(res[i][k], inv);
                frac += y as f64 * inv_p;
                acc = q.add(acc, q.mul(q.reduce(y), phat_q));
            }
            let v = frac.round() as u64;
            let val = q.sub(acc, q.mul(q.reduce(v), self.p_mod_q));
            if k < n {
                out[k] = q.add(out[k], val);
            } else {
                match self.wrap {
                    Wrap::Cyclic => out[k - n] = q.add(out[k - n], val),
                    Wrap::Negacyclic => out[k - n] = q.sub(out[k - n], val),
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ntt::tests_support::{schoolbook, schoolbook_cyclic};
    use rand::{Rng, SeedableRng};

    #[test]
    fn matches_schoolbook() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        for &(n, q) in &[
            (64usize, 1u64 << 37),
            (48, (1u64 << 61) - 1),
            (7, 65537),
            (256, (1 << 60) + 33),
        ] {
            let m = Modulus::new(q).unwrap();
            let a: Vec<u64> = (0..n).map(|_| rng.gen_range(0..q)).collect();
            let b: Vec<u64> = (0..n).map(|_| rng.gen_range(0..q)).collect();
            let cyc = PolyMultiplier::new(n, q, Wrap::Cyclic).unwrap();
            assert_eq!(cyc.mul(&a, &b).unwrap(), schoolbook_cyclic(&a, &b, &m));
            let neg = PolyMultiplier::new(n, q, Wrap::Negacyclic).unwrap();
            assert_eq!(neg.mul(&a, &b).unwrap(), schoolbook(&a, &b, &m));
        }
    }
}
