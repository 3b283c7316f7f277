//! Lazy modular reduction for sums of residue products (the multiply-accumulates of Hyena-style
//! padded convolution, docs/protocols/hyena.md).
//!
//! `Σ_j w_j·x_j mod q` per coefficient, with residues `x_j < q` and multipliers `w_j < q`, is
//! accumulated exactly in one 128-bit sum per coefficient and reduced by Barrett on 128 bits
//! ([`Modulus::reduce_u128`]) only when the next term could overflow and once at the end: each
//! term is below `q²`, so after a reduction (sum `< q`) another `⌊(2^128 − q)/q²⌋` terms fit —
//! 255 for primes of 60 bits. One word product and a 128-bit add per term instead of a modular
//! product. The multiplier is constant over runs of coefficients: a plaintext `g(X^{N/M})` with
//! `M` coefficients takes one value per run of `N/M` coefficients in NTT form (bit-reversed
//! evaluation order). [`mac_reduced`] is the term-by-term reference it is tested against.

use crate::{MathError, Modulus};

/// Exact 128-bit sums of `w·x` over the terms added since the last reduction, per coefficient.
#[derive(Clone, Debug)]
pub struct LazyAcc {
    q: Modulus,
    acc: Vec<u128>,
    /// Terms added since the sums were last reduced below `q`.
    pending: u64,
    /// Terms that fit after a reduction.
    limit: u64,
    /// Set when a residue ≥ q was added: the sums are meaningless until [`LazyAcc::clear`].
    poisoned: bool,
}

impl LazyAcc {
    /// An empty accumulator of `len` coefficients mod `q`.
    pub fn new(q: &Modulus, len: usize) -> LazyAcc {
        let q2 = (q.value() as u128) * (q.value() as u128);
        let limit = ((u128::MAX - q.value() as u128) / q2).clamp(1, u64::MAX as u128) as u64;
        LazyAcc {
            q: *q,
            acc: vec![0; len],
            pending: 0,
            limit,
            poisoned: false,
        }
    }

    pub fn len(&self) -> usize {
        self.acc.len()
    }

    pub fn is_empty(&self) -> bool {
        self.acc.is_empty()
    }

    /// Terms a reduced sum takes before the next reduction (255 for a 60-bit prime).
    pub fn terms_per_reduction(&self) -> u64 {
        self.limit
    }

    /// `acc += w[k]·x[i]` for every coefficient `i` of run `k = i / (len / w.len())`, exactly.
    /// Refuses a length other than [`LazyAcc::len`], a run count that does not divide it, a
    /// multiplier `≥ q`, and a residue `≥ q` (then the accumulator stays refused until
    /// [`LazyAcc::clear`]).
    pub fn mac_runs(&mut self, x: &[u64], w: &[u64]) -> Result<(), MathError> {
        self.mac_all(&[(x, w)])
    }

    /// `acc += Σ_j w_j[k]·x_j[i]` over all the terms `(x_j, w_j)` at once, with the runs of
    /// [`LazyAcc::mac_runs`]: the same sums, computed a block of coefficients at a time so that
    /// the block's sums stay in cache while every term streams through it. Refuses what
    /// [`LazyAcc::mac_runs`] refuses (checked for every term before any is added, except a
    /// residue ≥ q, which poisons the accumulator as there).
    pub fn mac_all(&mut self, terms: &[(&[u64], &[u64])]) -> Result<(), MathError> {
        let len = self.acc.len();
        let q = self.q.value();
        for (x, w) in terms {
            if x.len() != len {
                return Err(MathError::InvalidLength {
                    expected: len,
                    found: x.len(),
                });
            }
            if w.is_empty() || !len.is_multiple_of(w.len()) {
                return Err(MathError::InvalidLength {
                    expected: len,
                    found: w.len(),
                });
            }
            if let Some(&bad) = w.iter().find(|&&v| v >= q) {
                return Err(MathError::ValueOutOfRange {
                    value: bad,
                    modulus: q,
                });
            }
        }
        if self.poisoned {
            return Err(MathError::ValueOutOfRange {
                value: q,
                modulus: q,
            });
        }
        // Blocks of 256 coefficients; within a block each term's runs are walked in turn.
        let block = len.min(256);
        let (pending0, limit) = (self.pending, self.limit);
        let mut over = false;
        let mut start = 0;
        while start < len {
            let end = (start + block).min(len);
            let acc = &mut self.acc[start..end];
            let mut pending = pending0;
            for (x, w) in terms {
                if pending == limit {
                    for a in acc.iter_mut() {
                        *a = self.q.reduce_u128(*a) as u128;
                    }
                    pending = 0;
                }
                pending += 1;
                let run = len / w.len();
                let mut i = start;
                while i < end {
                    let seg = ((i / run + 1) * run).min(end);
                    let wk = w[i / run] as u128;
                    for (a, &v) in acc[i - start..seg - start].iter_mut().zip(&x[i..seg]) {
                        over |= v >= q;
                        *a = a.wrapping_add(v as u128 * wk);
                    }
                    i = seg;
                }
            }
            start = end;
        }
        // Every block went through the same sequence of folds.
        let mut pending = pending0;
        for _ in terms {
            if pending == limit {
                pending = 0;
            }
            pending += 1;
        }
        self.pending = pending;
        if over {
            self.poisoned = true;
            return Err(MathError::ValueOutOfRange {
                value: q,
                modulus: q,
            });
        }
        Ok(())
    }

    /// The sums mod `q` into `out`; refused after a rejected term.
    pub fn reduce_into(&self, out: &mut [u64]) -> Result<(), MathError> {
        if self.poisoned {
            return Err(MathError::ValueOutOfRange {
                value: self.q.value(),
                modulus: self.q.value(),
            });
        }
        if out.len() != self.acc.len() {
            return Err(MathError::InvalidLength {
                expected: self.acc.len(),
                found: out.len(),
            });
        }
        for (o, &a) in out.iter_mut().zip(&self.acc) {
            *o = self.q.reduce_u128(a);
        }
        Ok(())
    }

    /// Back to zero, keeping the length and modulus.
    pub fn clear(&mut self) {
        self.acc.iter_mut().for_each(|a| *a = 0);
        self.pending = 0;
        self.poisoned = false;
    }
}

/// The term-by-term reference: `acc = acc + w[k]·x mod q` over runs as in
/// [`LazyAcc::mac_runs`], one modular product per coefficient (`x`, `w`, `acc` reduced mod `q`).
pub fn mac_reduced(acc: &mut [u64], x: &[u64], w: &[u64], q: &Modulus) {
    let run = acc.len() / w.len();
    for (i, (a, &v)) in acc.iter_mut().zip(x).enumerate() {
        *a = q.add(*a, q.mul(v, w[i / run]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prime::generate_primes;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha20Rng;

    /// Random residues and multipliers (and the extremes q − 1), runs of every width, on primes
    /// of 30 to 62 bits, past several reductions: the lazy sums reduce to exactly what the
    /// term-by-term reference computes.
    #[test]
    fn lazy_equals_term_by_term() {
        let mut r = ChaCha20Rng::seed_from_u64(3);
        for bits in [30u32, 50, 60, 61, 62] {
            let q = Modulus::new(generate_primes(bits, 16, 1, &[]).unwrap()[0]).unwrap();
            let n = 64;
            let mut lazy = LazyAcc::new(&q, n);
            // Three reductions' worth where that is few (≥ 56-bit primes), else 2000 terms.
            let terms = lazy.terms_per_reduction().min(1000) as usize * 3 + 7;
            let mut reference = vec![0u64; n];
            for k in 0..terms.min(2000) {
                let runs = 1 << (k % 7);
                let (x, w): (Vec<u64>, Vec<u64>) = if k % 5 == 0 {
                    (vec![q.value() - 1; n], vec![q.value() - 1; runs])
                } else {
                    (
                        (0..n).map(|_| r.gen_range(0..q.value())).collect(),
                        (0..runs).map(|_| r.gen_range(0..q.value())).collect(),
                    )
                };
                lazy.mac_runs(&x, &w).unwrap();
                mac_reduced(&mut reference, &x, &w, &q);
            }
            let mut got = vec![0u64; n];
            lazy.reduce_into(&mut got).unwrap();
            assert_eq!(got, reference, "{bits}-bit prime");
            // The same terms in batches of every size through mac_all.
            let mut r2 = ChaCha20Rng::seed_from_u64(bits as u64);
            let mut batched = LazyAcc::new(&q, n);
            let mut reference = vec![0u64; n];
            let mut k = 0;
            while k < terms.min(2000) {
                let batch = 1 + k % 300;
                let xs: Vec<Vec<u64>> = (0..batch)
                    .map(|_| (0..n).map(|_| r2.gen_range(0..q.value())).collect())
                    .collect();
                let ws: Vec<Vec<u64>> = (0..batch)
                    .map(|j| {
                        (0..1usize << ((k + j) % 7))
                            .map(|_| r2.gen_range(0..q.value()))
                            .collect()
                    })
                    .collect();
                let pairs: Vec<(&[u64], &[u64])> =
                    xs.iter().zip(&ws).map(|(x, w)| (&x[..], &w[..])).collect();
                batched.mac_all(&pairs).unwrap();
                for (x, w) in &pairs {
                    mac_reduced(&mut reference, x, w, &q);
                }
                // Interleaved with single terms.
                batched.mac_runs(&xs[0], &ws[0]).unwrap();
                mac_reduced(&mut reference, &xs[0], &ws[0], &q);
                k += batch + 1;
            }
            batched.reduce_into(&mut got).unwrap();
            assert_eq!(got, reference, "{bits}-bit prime, batched");
            lazy.clear();
            lazy.reduce_into(&mut got).unwrap();
            assert!(got.iter().all(|&v| v == 0));
        }
    }

    #[test]
    fn refuses_what_could_overflow() {
        let q = Modulus::new(97).unwrap();
        let mut a = LazyAcc::new(&q, 4);
        assert!(a.mac_runs(&[1, 2, 3, 4], &[97]).is_err());
        assert!(a.mac_runs(&[1, 2, 97, 4], &[1]).is_err());
        // Poisoned until cleared.
        assert!(a.mac_runs(&[1, 2, 3, 4], &[1]).is_err());
        assert!(a.reduce_into(&mut [0; 4]).is_err());
        a.clear();
        a.mac_runs(&[1, 2, 3, 4], &[5]).unwrap();
        let mut out = [0; 4];
        a.reduce_into(&mut out).unwrap();
        assert_eq!(out, [5, 10, 15, 20]);
        assert!(a.mac_runs(&[1, 2, 3], &[1]).is_err());
        assert!(a.mac_runs(&[1, 2, 3, 4], &[1, 2, 3]).is_err());
        assert!(a.mac_runs(&[1, 2, 3, 4], &[]).is_err());
        assert!(a.reduce_into(&mut [0; 3]).is_err());
        // The bound: a reduced sum plus `limit` terms of (q − 1)² stays below 2^128.
        let big = Modulus::new(generate_primes(62, 16, 1, &[]).unwrap()[0]).unwrap();
        let l = LazyAcc::new(&big, 1).terms_per_reduction() as u128;
        let q = big.value() as u128;
        assert!(((q - 1) * (q - 1))
            .checked_mul(l)
            .and_then(|s| s.checked_add(q))
            .is_some());
    }
}
