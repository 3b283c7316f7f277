//! Switching a ciphertext to one small word-sized modulus `q'` (any value in
//! `[2, 2^62)`, typically `2^k`), keeping only chosen coefficients of `c_0` —
//! the most compact form of a Cheetah response [Cheetah §4.1 "modulus
//! switching"; BFV modulus switching, FV12 §5].
//!
//! `c_i' = ⌊q'·c_i/Q_l⌉ mod q'` (computed in RNS by [`math::ScaleRounder`]).
//! Then `c_0' + c_1'·s = (q'/t)·m + v·q'/Q_l + τ_0 + τ_1·s (mod q')` with
//! `|τ_i| ≤ 1/2`, so the new noise is at most `‖v‖·q'/Q_l + 6·√(N/18 + 1/12) + 1`
//! (`rlwe::noise::mod_switch` with `q_{l−1} = Q_l/q'`); decryption needs
//! `q'/(2t)` above that.

use crate::core::same;
use crate::{Ciphertext, Evaluator, Params, RlweError, SecretKey};
use math::pack::{pack_bits, packed_len, unpack_bits};
use math::{Modulus, PolyMultiplier, Representation, ScaleRounder, Wrap};
use std::sync::Arc;

/// A ciphertext modulo a single small modulus `q'`, with the kept
/// coefficients of `c_0` (at `indices`) and all of `c_1`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmallModCiphertext {
    params: Arc<Params>,
    modulus: Modulus,
    indices: Vec<usize>,
    c0: Vec<u64>,
    c1: Vec<u64>,
}

impl SmallModCiphertext {
    pub fn modulus(&self) -> u64 {
        self.modulus.value()
    }
    pub fn indices(&self) -> &[usize] {
        &self.indices
    }

    /// Decrypts the kept coefficients (values mod `t`, in `indices` order).
    pub fn decrypt(&self, sk: &SecretKey) -> Result<Vec<u64>, RlweError> {
        same(&self.params, sk.params())?;
        let q = &self.modulus;
        let n = self.params.n();
        let s: zeroize::Zeroizing<Vec<u64>> =
            zeroize::Zeroizing::new(sk.coeffs().iter().map(|&v| q.reduce_i64(v)).collect());
        let c1s = PolyMultiplier::new(n, q.value(), Wrap::Negacyclic)?.mul(&self.c1, &s)?;
        let t = self.params.t().value() as u128;
        let qv = q.value() as u128;
        Ok(self
            .indices
            .iter()
            .zip(&self.c0)
            .map(|(&j, &c0)| {
                let x = q.add(c0, c1s[j]) as u128;
                // ⌊t·x/q'⌉ mod t, x ∈ [0, q'): t·x < 2^124
                (((t * x + qv / 2) / qv) % t) as u64
            })
            .collect())
    }

    /// Wire form: header, `q'`, count, then `c_0` kept values and `c_1`, each
    /// packed with `bits(q' − 1)` bits. The indices are not sent.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&crate::serialize::MAGIC);
        out.push(crate::serialize::VERSION);
        out.push(crate::serialize::kind::SMALL_MODULUS);
        out.extend_from_slice(&self.params.id().to_le_bytes());
        out.extend_from_slice(&self.modulus.value().to_le_bytes());
        out.extend_from_slice(&(self.indices.len() as u32).to_le_bytes());
        let bits = bit_width(self.modulus.value());
        pack_bits(&self.c0, bits, &mut out);
        pack_bits(&self.c1, bits, &mut out);
        out
    }

    /// Reads [`Self::to_bytes`] output; `indices` must be the sender's and
    /// `expected_modulus` the agreed `q'`.
    pub fn from_bytes(
        params: &Arc<Params>,
        bytes: &[u8],
        expected_modulus: u64,
        indices: &[usize],
    ) -> Result<Self, RlweError> {
        let n = params.n();
        if let Some(&i) = indices.iter().find(|&&i| i >= n) {
            return Err(RlweError::IndexOutOfRange { index: i, n });
        }
        if bytes.len() < 24 {
            return Err(RlweError::BadLength {
                expected: 24,
                found: bytes.len(),
            });
        }
        if bytes[..2] != crate::serialize::MAGIC || bytes[2] != crate::serialize::VERSION {
            return Err(RlweError::BadHeader);
        }
        if bytes[3] != crate::serialize::kind::SMALL_MODULUS {
            return Err(RlweError::WrongKind {
                expected: crate::serialize::kind::SMALL_MODULUS,
                found: bytes[3],
            });
        }
        let id = u64::from_le_bytes(bytes[4..12].try_into().expect("8 bytes"));
        if id != params.id() {
            return Err(RlweError::WrongParamsId {
                expected: params.id(),
                found: id,
            });
        }
        let q = u64::from_le_bytes(bytes[12..20].try_into().expect("8 bytes"));
        if q != expected_modulus {
            return Err(RlweError::BadField {
                field: "modulus",
                value: q,
            });
        }
        let modulus = Modulus::new(q)?;
        let count = u32::from_le_bytes(bytes[20..24].try_into().expect("4 bytes")) as usize;
        if count != indices.len() {
            return Err(RlweError::BadField {
                field: "count",
                value: count as u64,
            });
        }
        let bits = bit_width(q);
        let (l0, l1) = (packed_len(count, bits), packed_len(n, bits));
        if bytes.len() != 24 + l0 + l1 {
            return Err(RlweError::BadLength {
                expected: 24 + l0 + l1,
                found: bytes.len(),
            });
        }
        let c0 = unpack_bits(&bytes[24..24 + l0], bits, count)?;
        let c1 = unpack_bits(&bytes[24 + l0..], bits, n)?;
        if let Some(&x) = c0.iter().chain(&c1).find(|&&x| x >= q) {
            return Err(RlweError::ValueOutOfRange {
                value: x,
                modulus: q,
            });
        }
        Ok(Self {
            params: params.clone(),
            modulus,
            indices: indices.to_vec(),
            c0,
            c1,
        })
    }
}

fn bit_width(q: u64) -> u32 {
    (64 - (q - 1).leading_zeros()).max(1)
}

impl Evaluator {
    /// Switches `ct` (size 2, any level) to the single modulus `q'` and keeps
    /// the coefficients of `c_0` at `indices`.
    pub fn switch_to_small_modulus(
        &self,
        ct: &Ciphertext,
        q_prime: u64,
        indices: &[usize],
    ) -> Result<SmallModCiphertext, RlweError> {
        let p = self.params();
        same(p, ct.params())?;
        if ct.size() != 2 {
            return Err(RlweError::InvalidCiphertextSize { size: ct.size() });
        }
        let n = p.n();
        if let Some(&i) = indices.iter().find(|&&i| i >= n) {
            return Err(RlweError::IndexOutOfRange { index: i, n });
        }
        let modulus = Modulus::new(q_prime)?;
        let mut c = ct.clone();
        c.to_representation(Representation::Coefficient);
        let sr = ScaleRounder::new(c.polys()[0].moduli(), modulus);
        let mut c0 = vec![0u64; n];
        let mut c1 = vec![0u64; n];
        sr.scale_round(n, c.polys()[0].data(), &mut c0);
        sr.scale_round(n, c.polys()[1].data(), &mut c1);
        let c0 = indices.iter().map(|&i| c0[i]).collect();
        Ok(SmallModCiphertext {
            params: p.clone(),
            modulus,
            indices: indices.to_vec(),
            c0,
            c1,
        })
    }
}
