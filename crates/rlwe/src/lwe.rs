//! LWE extraction of chosen coefficients and PackLWEs [CDKS20, Alg. 2 + field
//! trace, §3.2].
//!
//! Coefficient `i` of the phase `c_0 + c_1·s` equals `b + ⟨a, s⟩` with
//! `b = c_0[i]`, `a_j = c_1[i−j]` for `j ≤ i` and `a_j = −c_1[N+i−j]` for `j > i`
//! (negacyclic wrap). PackLWEs merges `n = 2^ℓ` such LWE ciphertexts back into
//! one RLWE ciphertext whose coefficient `j·N/n` holds message `j`, using the
//! automorphisms `X → X^{2^i+1}`, `i = 1 … log N`; each input is first scaled
//! by `N^{-1} mod Q_l`, cancelling the factor `N` the procedure introduces.

use crate::core::same;
use crate::eval::{Evaluator, GaloisKeys};
use crate::{Ciphertext, Params, Plaintext, RlweError, SecretKey};
use math::baseconv::{centered_log2, crt_reconstruct, modulus_product};
use math::{Poly, Representation};
use rand_core::{CryptoRng, RngCore};
use std::sync::Arc;

/// An LWE ciphertext over `Q_l` with dimension `N`: `b + ⟨a, s⟩ ≈ ⌊Q_l m/t⌉`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LweCiphertext {
    pub(crate) params: Arc<Params>,
    /// `b` residues, one per prime.
    pub(crate) b: Vec<u64>,
    /// `a` residues, prime-major (`num_moduli × N`).
    pub(crate) a: Vec<u64>,
}

impl LweCiphertext {
    pub fn num_moduli(&self) -> usize {
        self.b.len()
    }
    pub fn params(&self) -> &Arc<Params> {
        &self.params
    }

    /// Extracts coefficient `index` of `ct` (size 2, any representation).
    pub fn extract(ct: &Ciphertext, index: usize) -> Result<Self, RlweError> {
        Ok(Self::extract_many(ct, &[index])?.pop().expect("one index"))
    }

    /// Extracts the given coefficients (one inverse NTT for all of them).
    pub fn extract_many(ct: &Ciphertext, indices: &[usize]) -> Result<Vec<Self>, RlweError> {
        if ct.size() != 2 {
            return Err(RlweError::InvalidCiphertextSize { size: ct.size() });
        }
        let n = ct.params.n();
        if let Some(&i) = indices.iter().find(|&&i| i >= n) {
            return Err(RlweError::IndexOutOfRange { index: i, n });
        }
        let mut c = ct.clone();
        c.to_representation(Representation::Coefficient);
        let l = c.num_moduli();
        let mods = c.polys[0].moduli().to_vec();
        Ok(indices
            .iter()
            .map(|&idx| {
                let b = (0..l).map(|i| c.polys[0].residue(i)[idx]).collect();
                let mut a = vec![0u64; l * n];
                for (i, m) in mods.iter().enumerate() {
                    let c1 = c.polys[1].residue(i);
                    let dst = &mut a[i * n..(i + 1) * n];
                    for j in 0..=idx {
                        dst[j] = c1[idx - j];
                    }
                    for j in idx + 1..n {
                        dst[j] = m.neg(c1[n + idx - j]);
                    }
                }
                Self {
                    params: ct.params.clone(),
                    b,
                    a,
                }
            })
            .collect())
    }

    /// The phase `b + ⟨a, s⟩` over `Q_l`, one residue per prime.
    fn phase(&self, sk: &SecretKey) -> Result<Vec<u64>, RlweError> {
        same(&self.params, &sk.params)?;
        let n = self.params.n();
        let l = self.num_moduli();
        let s = sk.coeffs();
        let mods = &self.params.ctx_q().moduli()[..l];
        Ok(mods
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let a = &self.a[i * n..(i + 1) * n];
                let mut acc = self.b[i];
                for (&aj, &sj) in a.iter().zip(s) {
                    match sj {
                        1 => acc = m.add(acc, aj),
                        -1 => acc = m.sub(acc, aj),
                        0 => {}
                        v => acc = m.add(acc, m.mul(aj, m.reduce_i64(v))),
                    }
                }
                acc
            })
            .collect())
    }

    /// Decrypts to a value mod `t`.
    pub fn decrypt(&self, sk: &SecretKey) -> Result<u64, RlweError> {
        let phase = self.phase(sk)?;
        let mut out = [0u64];
        self.params
            .decrypt_rounder(self.num_moduli())
            .scale_round(1, &phase, &mut out);
        Ok(out[0])
    }

    /// `log2 |[b + ⟨a, s⟩ − ⌊Q_l·m/t⌉]_{Q_l}|` for the expected message `m`
    /// (`< t`; a test/diagnostic helper, like [`SecretKey::noise_log2`]).
    pub fn noise_log2(&self, sk: &SecretKey, expected: u64) -> Result<f64, RlweError> {
        let l = self.num_moduli();
        let mut m = vec![0u64; self.params.n()];
        m[0] = expected;
        let scaled = Plaintext::from_unsigned(&self.params, &m)?.scaled(l)?;
        let mods = &self.params.ctx_q().moduli()[..l];
        let v: Vec<u64> = self
            .phase(sk)?
            .iter()
            .zip(mods)
            .enumerate()
            .map(|(i, (&ph, md))| md.sub(ph, scaled.residue(i)[0]))
            .collect();
        Ok(centered_log2(
            &crt_reconstruct(mods, &v),
            &modulus_product(mods),
        ))
    }

    /// RLWE ciphertext whose phase has this LWE phase as constant coefficient
    /// (other coefficients are not meaningful).
    fn to_rlwe(&self) -> Ciphertext {
        let p = &self.params;
        let n = p.n();
        let l = self.num_moduli();
        let mut c0 = Poly::zero(p.ctx_q(), l, Representation::Coefficient);
        let mut c1 = Poly::zero(p.ctx_q(), l, Representation::Coefficient);
        for (i, m) in p.ctx_q().moduli()[..l].iter().enumerate() {
            c0.residue_mut(i)[0] = self.b[i];
            let a = &self.a[i * n..(i + 1) * n];
            let r = c1.residue_mut(i);
            r[0] = a[0];
            for j in 1..n {
                r[n - j] = m.neg(a[j]);
            }
        }
        Ciphertext {
            params: p.clone(),
            polys: vec![c0, c1],
            seed: None,
        }
    }
}

/// Galois keys for `X → X^{2^i+1}`, `i = 1 … log N` (all PackLWEs needs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackingKeys {
    pub(crate) keys: GaloisKeys,
}

impl PackingKeys {
    pub fn generate<R: RngCore + CryptoRng + ?Sized>(
        sk: &SecretKey,
        rng: &mut R,
    ) -> Result<Self, RlweError> {
        let log_n = sk.params().log_n();
        let els: Vec<usize> = (1..=log_n).map(|i| (1usize << i) + 1).collect();
        Ok(Self {
            keys: GaloisKeys::generate(sk, &els, rng)?,
        })
    }
    pub fn galois_keys(&self) -> &GaloisKeys {
        &self.keys
    }
}

impl Evaluator {
    /// PackLWEs: packs `n = 2^ℓ ≤ N` LWE ciphertexts (same level) into one RLWE
    /// ciphertext with message `j` at coefficient `j·N/n` and zeros elsewhere.
    /// Costs `n − 1 + log2(N/n)` key switches.
    pub fn pack_lwes(
        &self,
        lwes: &[LweCiphertext],
        keys: &PackingKeys,
    ) -> Result<Ciphertext, RlweError> {
        let p = self.params().clone();
        let n = p.n();
        let count = lwes.len();
        if count == 0 || !count.is_power_of_two() || count > n {
            return Err(RlweError::InvalidPackCount { count });
        }
        let l = lwes[0].num_moduli();
        for lwe in lwes {
            same(&p, &lwe.params)?;
            if lwe.num_moduli() != l {
                return Err(RlweError::LevelMismatch {
                    lhs: l,
                    rhs: lwe.num_moduli(),
                });
            }
        }
        // scale by N^{-1} mod Q_l
        let ninv: Vec<u64> = p.ctx_q().moduli()[..l]
            .iter()
            .map(|m| m.inv(n as u64).expect("odd primes"))
            .collect();
        let cts: Vec<Ciphertext> = lwes
            .iter()
            .map(|lwe| {
                let mut c = lwe.to_rlwe();
                c.polys
                    .iter_mut()
                    .for_each(|q| q.mul_scalar_rns_assign(&ninv));
                c
            })
            .collect();
        let mut ct = self.pack_rec(cts, &keys.keys)?;
        // field trace Tr_{K_N / K_n}: kills the coefficients not at multiples of N/n
        let mut i = count.trailing_zeros() + 1;
        while (1usize << i) <= n {
            let rot = self.apply_galois(&ct, (1usize << i) + 1, &keys.keys)?;
            self.add_assign(&mut ct, &rot)?;
            i += 1;
        }
        Ok(ct)
    }

    fn pack_rec(
        &self,
        mut cts: Vec<Ciphertext>,
        keys: &GaloisKeys,
    ) -> Result<Ciphertext, RlweError> {
        let len = cts.len();
        if len == 1 {
            return Ok(cts.pop().expect("one"));
        }
        let n = self.params().n();
        let odd: Vec<Ciphertext> = cts.iter().skip(1).step_by(2).cloned().collect();
        let even: Vec<Ciphertext> = cts.into_iter().step_by(2).collect();
        let mut ce = self.pack_rec(even, keys)?;
        let mut co = self.pack_rec(odd, keys)?;
        // X^{N/len} · ct_odd  [CDKS20 Alg. 2, step 4]
        ce.to_representation(Representation::Coefficient);
        co.to_representation(Representation::Coefficient);
        let shift = n / len;
        let xo = Ciphertext {
            params: co.params.clone(),
            polys: co
                .polys
                .iter()
                .map(|q| q.mul_monomial(shift))
                .collect::<Result<_, _>>()?,
            seed: None,
        };
        let mut plus = ce.clone();
        self.add_assign(&mut plus, &xo)?;
        let mut minus = ce;
        self.sub_assign(&mut minus, &xo)?;
        let rot = self.apply_galois(&minus, len + 1, keys)?;
        self.add_assign(&mut plus, &rot)?;
        Ok(plus)
    }
}
