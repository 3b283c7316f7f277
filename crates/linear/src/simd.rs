//! Slot-encoded (SIMD) HE kernels of the Gazelle / Bolt protocol family (docs/protocols/simd.md).
//! Built so far: the matrix–vector product by the diagonal method with baby-step/giant-step and
//! hoisted baby steps [Halevi–Shoup 2018]. The layer protocol around it (shares over Z_t,
//! conversions as plan steps, masking and flooding, cost model) is not built yet.
//!
//! Layout: one batching row of n = N/2 slots (both rows carry the same values), the input
//! x ∈ Z_t^{n_i} repeated with period n_i (n_i a power of two dividing n), so a row rotation by d
//! is a cyclic rotation of x by d. For W ∈ Z_t^{n_o × n_i}, n_o ≤ n_i, padded to n_i × n_i with zero
//! rows, diagonal d holds `diag_d[s] = W[s mod n_i][(s + d) mod n_i]` and
//!
//! ```text
//! y = Σ_{d<n_i} diag_d ⊙ rot_d(x) = Σ_{g<G} rot_{g·B}( Σ_{b<B} rot_{−g·B}(diag_{g·B+b}) ⊙ rot_b(x) ),
//! ```
//!
//! d = g·B + b, B·G ≥ n_i: B − 1 baby-step rotations of x (hoisted: one ModUp), G − 1 giant-step
//! rotations, n_i ct × pt products; slot s < n_o of y holds (W·x)_s.

use rlwe::{BatchEncoder, Ciphertext, Evaluator, GaloisKeys, PlaintextNtt};

use crate::LinearError;

/// A matrix prepared for [`MatVec::apply`]: its diagonals, pre-rotated for their giant step and
/// batch-encoded in NTT form at the ciphertexts' level.
pub struct MatVec {
    n_in: usize,
    n_out: usize,
    baby: usize,
    giant: usize,
    /// `diags[g][b]`, `None` where the diagonal index g·B + b ≥ n_in.
    diags: Vec<Vec<Option<PlaintextNtt>>>,
}

/// Baby-step count B for `n_in` diagonals: the power of two nearest √n_in from above, which
/// minimises (B − 1) + (⌈n_in/B⌉ − 1) rotations among powers of two.
pub fn baby_steps(n_in: usize) -> usize {
    let mut b = 1;
    while b * b < n_in {
        b *= 2;
    }
    b
}

impl MatVec {
    /// Prepares `w` (row-major n_out × n_in, entries < t) for ciphertexts of `num_moduli` primes.
    /// `n_in` must be a power of two at most N/2, and `n_out ≤ n_in`.
    pub fn new(
        enc: &BatchEncoder,
        w: &[u64],
        n_out: usize,
        n_in: usize,
        num_moduli: usize,
    ) -> Result<MatVec, LinearError> {
        let n = enc.slots() / 2;
        let bad = |reason: &'static str| Err(LinearError::BadShape { reason });
        if !n_in.is_power_of_two() || n_in > n {
            return bad("matvec: n_in must be a power of two at most N/2");
        }
        if n_out == 0 || n_out > n_in || w.len() != n_out * n_in {
            return bad("matvec: need 1 <= n_out <= n_in and n_out*n_in weights");
        }
        let baby = baby_steps(n_in);
        let giant = n_in.div_ceil(baby);
        let mut diags = Vec::with_capacity(giant);
        for g in 0..giant {
            let mut row = Vec::with_capacity(baby);
            for b in 0..baby {
                let d = g * baby + b;
                if d >= n_in {
                    row.push(None);
                    continue;
                }
                // rot_{−g·B}(diag_d)[s] = diag_d[s − g·B], over the whole row (period n_in).
                let shift = g * baby;
                let slot = |s: usize| {
                    let s = (s + n - shift % n) % n;
                    let (i, j) = (s % n_in, (s + d) % n_in);
                    if i < n_out {
                        w[i * n_in + j]
                    } else {
                        0
                    }
                };
                let values: Vec<u64> = (0..2 * n).map(|s| slot(s % n)).collect();
                let pt = enc.encode(&values)?;
                row.push(Some(PlaintextNtt::new(&pt, num_moduli)?));
            }
            diags.push(row);
        }
        Ok(MatVec {
            n_in,
            n_out,
            baby,
            giant,
            diags,
        })
    }

    /// The row-rotation steps [`MatVec::apply`] uses (the Galois keys to generate): baby steps
    /// 1..B, giant steps g·B for 1 ≤ g < G.
    pub fn rotation_steps(&self) -> Vec<i64> {
        let mut s: Vec<i64> = (1..self.baby.min(self.n_in)).map(|b| b as i64).collect();
        s.extend((1..self.giant).map(|g| (g * self.baby) as i64));
        s
    }

    /// Key-switched rotations one application costs: (B − 1) hoisted + (G − 1).
    pub fn rotations(&self) -> usize {
        self.baby.min(self.n_in) - 1 + self.giant - 1
    }

    /// ct × pt products one application costs.
    pub fn products(&self) -> usize {
        self.n_in
    }

    pub fn n_out(&self) -> usize {
        self.n_out
    }

    /// `Enc(W·x)` from `Enc(x)` in the layout above.
    pub fn apply(
        &self,
        ev: &Evaluator,
        ct: &Ciphertext,
        gk: &GaloisKeys,
    ) -> Result<Ciphertext, LinearError> {
        let steps: Vec<i64> = (0..self.baby.min(self.n_in)).map(|b| b as i64).collect();
        let mut babies = ev.rotate_rows_hoisted(ct, &steps, gk)?;
        for c in &mut babies {
            c.to_representation(math::Representation::Ntt);
        }
        let mut out: Option<Ciphertext> = None;
        for (g, row) in self.diags.iter().enumerate() {
            let mut inner: Option<Ciphertext> = None;
            for (b, pt) in row.iter().enumerate() {
                let Some(pt) = pt else { continue };
                match inner.as_mut() {
                    None => {
                        let mut c = babies[b].clone();
                        ev.mul_plain_assign(&mut c, pt)?;
                        inner = Some(c);
                    }
                    Some(acc) => ev.mul_plain_acc(acc, &babies[b], pt)?,
                }
            }
            let Some(inner) = inner else { continue };
            let shifted = if g == 0 {
                inner
            } else {
                ev.rotate_rows(&inner, (g * self.baby) as i64, gk)?
            };
            match out.as_mut() {
                None => out = Some(shifted),
                Some(o) => ev.add_assign(o, &shifted)?,
            }
        }
        out.ok_or(LinearError::BadShape {
            reason: "matvec: empty matrix",
        })
    }
}
