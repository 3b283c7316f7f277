//! Convolution with scalar weights over fixed slot patterns (Hyena's idea, docs/protocols/hyena.md):
//! the conventional slot-encoded convolution's weight plaintexts are block-constant, so each is
//! Σ_κ w_κ·E_κ over the K fixed block indicators E_κ (K = channel blocks per ciphertext, both
//! rows). Per output ciphertext v and giant step g ("MACs first"):
//!
//! ```text
//! inner(v, g) = Σ_κ E_κ ⊙ Z_κ,   Z_κ = Σ_{j=(b,u,s,tap)} w_κ(v, g, j) · X_j
//! ```
//!
//! with X_j the hoisted rotated input copies of [`ConvLayout`]. Every weight is a scalar
//! multiply-accumulate of a ciphertext (exact 128-bit sums, one reduction per coefficient:
//! `math::lazy`); the only plaintexts are the K indicators, the same for every layer of a
//! layout, so nothing weight-sized is encoded or stored. Output layout, rotations and Galois
//! elements are those of the layout (the same as `simd`'s); products: K per (v, g) instead of
//! one per (v, g, j).

use math::lazy::LazyAcc;
use math::Representation;
use rlwe::{BatchEncoder, Ciphertext, Evaluator, GaloisKeys, PlaintextNtt};

use crate::simd::ConvLayout;
use crate::LinearError;

/// Operation counts of [`PaddedConv::apply`] on a layout, from the shape alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PaddedCounts {
    /// ct × pt products with the fixed indicators: Σ over (output ciphertext, giant step) of
    /// the blocks that receive a weight.
    pub products: usize,
    /// Scalar multiply-accumulates (each over 2·L·N words).
    pub macs: usize,
    /// The most (block, term) pairs summed into one output ciphertext: its noise is at most
    /// this many times 2^weight_bits·‖ν‖ times an indicator's norm.
    pub max_terms_per_output: usize,
}

/// [`PaddedCounts`] of `layout`.
pub fn counts(layout: &ConvLayout) -> PaddedCounts {
    let l = layout;
    let (in_cts, out_cts) = l.ciphertexts();
    let (c_n, baby) = (l.channels(), l.baby_steps());
    let taps = l.spec().kh * l.spec().kw;
    let k_all = l.rows() * c_n;
    let (mut products, mut macs, mut max_terms) = (0, 0, 0);
    for v in 0..out_cts {
        let mut terms_v = 0;
        for g in 0..c_n / baby {
            let mut used = vec![false; k_all];
            for b in 0..baby {
                let r = g * baby + b;
                for u in 0..in_cts {
                    for s in 0..l.swaps() {
                        if !l.present(v, u, s, r) {
                            continue;
                        }
                        // Block κ = (ρ, p) of the pre-rotated plaintext holds block c = (p + b)
                        // mod c_n's weight.
                        l.for_each_pair(v, u, s, r, |rho, c| {
                            used[rho * c_n + (c + c_n - b) % c_n] = true;
                            macs += taps;
                            terms_v += taps;
                        });
                    }
                }
            }
            products += used.iter().filter(|&&x| x).count();
        }
        max_terms = max_terms.max(terms_v);
    }
    PaddedCounts {
        products,
        macs,
        max_terms_per_output: max_terms,
    }
}

/// A [`ConvLayout`] with its weights as small signed integers (|w| < 2^31).
pub struct PaddedConv {
    layout: ConvLayout,
    w: Vec<i64>,
}

impl PaddedConv {
    /// Binds the weights `w` (M × C/groups × k_h × k_w, signed, |w| < 2^31) to `layout`.
    pub fn new(layout: ConvLayout, w: &[i64]) -> Result<PaddedConv, LinearError> {
        let spec = layout.spec();
        if w.len() != spec.m * spec.c_per_group() * spec.kh * spec.kw {
            return Err(LinearError::BadShape {
                reason: "padded conv: need M*(C/groups)*kh*kw weights",
            });
        }
        if w.iter().any(|v| v.unsigned_abs() >= 1 << 31) {
            return Err(LinearError::BadShape {
                reason: "padded conv: weights must be below 2^31 in magnitude",
            });
        }
        Ok(PaddedConv {
            layout,
            w: w.to_vec(),
        })
    }

    /// The layout.
    pub fn layout(&self) -> &ConvLayout {
        &self.layout
    }

    /// Blocks per ciphertext: K = rows·c_n (both rows alike when one channel set: K = c_n).
    pub fn patterns(&self) -> usize {
        self.layout.rows() * self.layout.channels()
    }

    /// The K block indicators (block κ = ρ·c_n + p: ones on block p of row ρ, or of both rows
    /// when the layout uses one channel set), in NTT form at `num_moduli` primes.
    pub fn indicators(
        &self,
        enc: &BatchEncoder,
        num_moduli: usize,
    ) -> Result<Vec<PlaintextNtt>, LinearError> {
        let l = &self.layout;
        let n = l.channels() * l.block();
        (0..self.patterns())
            .map(|kappa| {
                let (rho, p) = (kappa / l.channels(), kappa % l.channels());
                let values: Vec<u64> = (0..2 * n)
                    .map(|s| {
                        let row_ok = l.rows() == 1 || s / n == rho;
                        u64::from(row_ok && (s % n) / l.block() == p)
                    })
                    .collect();
                Ok(PlaintextNtt::new(&enc.encode(&values)?, num_moduli)?)
            })
            .collect()
    }

    /// Operation counts ([`counts`]).
    pub fn counts(&self) -> PaddedCounts {
        counts(&self.layout)
    }

    /// The output ciphertexts from the packed input ciphertexts (the layout's packing).
    pub fn apply(
        &self,
        enc: &BatchEncoder,
        ev: &Evaluator,
        cts: &[Ciphertext],
        gk: &GaloisKeys,
    ) -> Result<Vec<Ciphertext>, LinearError> {
        let l = &self.layout;
        let (in_cts, out_cts) = l.ciphertexts();
        if cts.len() != in_cts {
            return Err(LinearError::BadShape {
                reason: "padded conv: wrong number of input ciphertexts",
            });
        }
        let num_moduli = cts[0].num_moduli();
        let n_total = ev.params().n();
        let (c_n, baby, rows) = (l.channels(), l.baby_steps(), l.rows());
        let taps = l.spec().kh * l.spec().kw;
        let per_swap = taps * baby;
        let elements = l.input_elements(n_total);
        let mut rotated = Vec::with_capacity(in_cts);
        for ct in cts {
            let mut r = ev.apply_galois_hoisted(ct, &elements, gk)?;
            for c in &mut r {
                c.to_representation(Representation::Ntt);
            }
            rotated.push(r);
        }
        let indicators = self.indicators(enc, num_moduli)?;
        let k_all = self.patterns();
        // One lazy accumulator per (pattern, polynomial, prime).
        let words = |c: &Ciphertext| c.polys()[0].residue(0).len();
        let len = words(&cts[0]);
        let mut accs: Vec<Vec<LazyAcc>> = (0..k_all)
            .map(|_| (0..2 * num_moduli).map(|_| LazyAcc::new(len)).collect())
            .collect();
        let mut outs = Vec::with_capacity(out_cts);
        for v in 0..out_cts {
            let mut out: Option<Ciphertext> = None;
            for g in 0..c_n / baby {
                for a in accs.iter_mut().flatten() {
                    a.clear();
                }
                let mut used = vec![false; k_all];
                for b in 0..baby {
                    let r = g * baby + b;
                    for (u, copies) in rotated.iter().enumerate() {
                        for s in 0..l.swaps() {
                            if !l.present(v, u, s, r) {
                                continue;
                            }
                            for tap in 0..taps {
                                let x = &copies[s * per_swap + b * taps + tap];
                                for (kappa, acc) in accs.iter_mut().enumerate() {
                                    let (rho, p) = (kappa / c_n, kappa % c_n);
                                    // Block p of the pre-rotated plaintext holds the weight of
                                    // block (p + b) mod c_n (rotation by b·S, kernels.rs).
                                    let c = (p + b) % c_n;
                                    let Some(i) = l.weight_index(v, u, s, r, tap, rho, c) else {
                                        continue;
                                    };
                                    let w = self.w[i];
                                    if w == 0 {
                                        continue;
                                    }
                                    used[kappa] = true;
                                    for (pi, poly) in x.polys().iter().enumerate() {
                                        for m in 0..num_moduli {
                                            acc[pi * num_moduli + m].mac(poly.residue(m), w)?;
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                debug_assert!(rows == 1 || k_all == 2 * c_n);
                let mut inner: Option<Ciphertext> = None;
                for (kappa, acc) in accs.iter().enumerate() {
                    if !used[kappa] {
                        continue;
                    }
                    let mut z = ev.zero(num_moduli, Representation::Ntt)?;
                    for (pi, poly) in z.polys_mut().iter_mut().enumerate() {
                        let moduli = poly.moduli().to_vec();
                        for (m, q) in moduli.iter().enumerate() {
                            acc[pi * num_moduli + m].reduce_into(q, poly.residue_mut(m))?;
                        }
                    }
                    match inner.as_mut() {
                        None => {
                            ev.mul_plain_assign(&mut z, &indicators[kappa])?;
                            inner = Some(z);
                        }
                        Some(i) => ev.mul_plain_acc(i, &z, &indicators[kappa])?,
                    }
                }
                let Some(inner) = inner else { continue };
                let shifted = if g == 0 {
                    inner
                } else {
                    ev.rotate_rows(&inner, (g * baby * l.block()) as i64, gk)?
                };
                match out.as_mut() {
                    None => out = Some(shifted),
                    Some(o) => ev.add_assign(o, &shifted)?,
                }
            }
            outs.push(match out {
                Some(o) => o,
                None => ev.zero(num_moduli, Representation::Ntt)?,
            });
        }
        Ok(outs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`counts`] equals the count by searching every block κ of every present plaintext with
    /// `weight_index`, on dense, grouped and depthwise shapes and every row/baby-step layout.
    #[test]
    fn counts_match_the_search() {
        let mut checked = 0;
        for (c, m, hw, groups) in [
            (16, 16, 32, 1),
            (24, 144, 8, 1),
            (160, 960, 4, 1),
            (37, 70, 8, 1),
            (144, 144, 8, 144),
            (960, 960, 4, 960),
            (48, 96, 8, 4),
        ] {
            let spec = crate::Conv2dSpec::square(c, hw, m, 3, 1, 1, groups);
            let Ok(base) = ConvLayout::new(spec, 8192) else {
                continue;
            };
            for rows in [1, 2] {
                for baby in [1, base.baby_steps()] {
                    let Ok(l) = ConvLayout::with(spec, 8192, rows, baby) else {
                        continue;
                    };
                    let (in_cts, out_cts) = l.ciphertexts();
                    let c_n = l.channels();
                    let taps = spec.kh * spec.kw;
                    let (mut products, mut macs, mut max_terms) = (0, 0, 0);
                    for v in 0..out_cts {
                        let mut terms_v = 0;
                        for g in 0..c_n / baby {
                            let mut used = vec![false; l.rows() * c_n];
                            for b in 0..baby {
                                let r = g * baby + b;
                                for u in 0..in_cts {
                                    for s in 0..l.swaps() {
                                        if !l.present(v, u, s, r) {
                                            continue;
                                        }
                                        for (kappa, seen) in used.iter_mut().enumerate() {
                                            let (rho, p) = (kappa / c_n, kappa % c_n);
                                            if l.weight_index(v, u, s, r, 0, rho, (p + b) % c_n)
                                                .is_some()
                                            {
                                                *seen = true;
                                                macs += taps;
                                                terms_v += taps;
                                            }
                                        }
                                    }
                                }
                            }
                            products += used.iter().filter(|&&x| x).count();
                        }
                        max_terms = max_terms.max(terms_v);
                    }
                    let want = PaddedCounts {
                        products,
                        macs,
                        max_terms_per_output: max_terms,
                    };
                    assert_eq!(counts(&l), want, "{spec:?} rows {rows} baby {baby}");
                    checked += 1;
                }
            }
        }
        assert!(checked >= 10, "only {checked} layouts");
    }
}
