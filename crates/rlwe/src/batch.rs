//! SIMD batching for prime `t ≡ 1 (mod 2N)` [SV14; SEAL's BatchEncoder layout].
//!
//! `Z_t[X]/(X^N+1) ≅ Z_t^N` by evaluation at the primitive `2N`-th roots
//! `ζ^e`, `e` odd. Slots form a `2 × N/2` matrix: row 0, column `j` is the
//! evaluation at `ζ^{3^j}`, row 1 at `ζ^{−3^j}`. Then `X → X^{3^r}` rotates both
//! rows left by `r` and `X → X^{2N−1}` swaps the rows.

use crate::{Params, Plaintext, RlweError};
use math::{Modulus, NttPlan, NttTable};
use std::sync::Arc;

/// Encoder between `N` slot values (`< t`) and plaintext polynomials.
#[derive(Clone, Debug)]
pub struct BatchEncoder {
    params: Arc<Params>,
    plan: NttPlan,
    /// `slot_index[s]` = NTT slot of batching slot `s` (`s < N/2`: row 0).
    slot_index: Vec<usize>,
}

impl BatchEncoder {
    pub fn new(params: &Arc<Params>) -> Result<Self, RlweError> {
        let n = params.n();
        let t = params.t().value();
        let plan = NttPlan::new(n, t).map_err(|_| RlweError::BatchingUnsupported { t, n })?;
        let table = NttTable::new(&plan);
        let two_n = Modulus::new(2 * n as u64)?;
        let half = n / 2;
        let mut slot_index = vec![0; n];
        let mut g = 1u64;
        for j in 0..half {
            slot_index[j] = table.index_of_exponent(g as usize);
            slot_index[half + j] = table.index_of_exponent((2 * n as u64 - g) as usize);
            g = two_n.mul(g, 3);
        }
        Ok(Self {
            params: params.clone(),
            plan,
            slot_index,
        })
    }

    /// Number of slots (`N`: two rows of `N/2`).
    pub fn slots(&self) -> usize {
        self.params.n()
    }

    /// Encodes up to `N` values `< t` (missing slots are 0).
    pub fn encode(&self, values: &[u64]) -> Result<Plaintext, RlweError> {
        let n = self.params.n();
        let t = self.params.t().value();
        if values.len() > n {
            return Err(RlweError::TooManyValues {
                count: values.len(),
                max: n,
            });
        }
        let mut y = vec![0u64; n];
        for (s, &v) in values.iter().enumerate() {
            if v >= t {
                return Err(RlweError::PlaintextOutOfRange { value: v, t });
            }
            y[self.slot_index[s]] = v;
        }
        self.plan.inverse(&mut y);
        Plaintext::from_unsigned(&self.params, &y)
    }

    /// Encodes signed values (reduced mod `t`).
    pub fn encode_signed(&self, values: &[i64]) -> Result<Plaintext, RlweError> {
        let t = self.params.t();
        let v: Vec<u64> = values.iter().map(|&x| t.reduce_i64(x)).collect();
        self.encode(&v)
    }

    pub fn decode(&self, pt: &Plaintext) -> Result<Vec<u64>, RlweError> {
        crate::core::same(&self.params, &pt.params)?;
        let mut y = pt.coeffs.clone();
        self.plan.forward(&mut y);
        Ok(self.slot_index.iter().map(|&i| y[i]).collect())
    }
}
