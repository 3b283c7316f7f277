//! Homomorphic operations: add, ct×pt, ct×const, ct×ct + relinearization, rescale, rotations and
//! conjugation by hybrid key switching, hoisted rotations.
//!
//! Hybrid key switching [Han–Ki, CT-RSA 2020, §3]: for `d` modulo `Q_ℓ`, split into digits
//! `[d]_{Q_j}`, ModUp each to `Q_ℓ·P` by fast base conversion, take the inner product with the key
//! modulo `Q_ℓ·P`, ModDown by `P` (base conversion of the `P` part, subtract, multiply by
//! `P^{-1}`). Hoisting [Halevi–Shoup 2018; Bossuat et al. 2021 §5]: the ModUp of `c_1` is shared
//! by all rotations of one ciphertext, since automorphisms commute with it up to multiples of
//! `Q_j` that the gadget annihilates.

use math::{Poly, Representation};
use rayon::prelude::*;

use crate::encoder::Complex;
use crate::error::CkksError;
use crate::keys::{EvaluationKeys, SwitchingKey};
use crate::params::Params;
use crate::polyeval::LeveledArith;
use crate::ring;
use crate::scale_eq;
use crate::scheme::{Ciphertext, Plaintext};

/// A ModUp-decomposed polynomial: per digit, its extension to `Q_ℓ` and `P` (NTT form).
pub struct Decomposed {
    pub(crate) digits: Vec<(Poly, Poly)>,
    pub(crate) level: usize,
}

/// Evaluates on ciphertexts with a set of evaluation keys.
pub struct Evaluator {
    params: Params,
    keys: EvaluationKeys,
    /// Ring elements of finished decompositions, reused by the next ones (every residue of a
    /// decomposition is overwritten, so reuse saves zeroing ~75 MiB per key switch at `N = 2^16`).
    pool: std::sync::Mutex<Vec<Poly>>,
}

/// At most this many pooled ring elements (two decompositions of five digits).
const POOL_MAX: usize = 20;

impl Evaluator {
    pub fn new(params: &Params, keys: EvaluationKeys) -> Result<Self, CkksError> {
        if keys.params_id != params.id() {
            return Err(CkksError::ParamsMismatch {
                a: keys.params_id,
                b: params.id(),
            });
        }
        Ok(Evaluator {
            params: params.clone(),
            keys,
            pool: std::sync::Mutex::new(Vec::new()),
        })
    }

    pub fn params(&self) -> &Params {
        &self.params
    }
    pub fn keys(&self) -> &EvaluationKeys {
        &self.keys
    }
    pub fn keys_mut(&mut self) -> &mut EvaluationKeys {
        &mut self.keys
    }

    fn check_params(&self, id: u64) -> Result<(), CkksError> {
        if id != self.params.id() {
            return Err(CkksError::ParamsMismatch {
                a: id,
                b: self.params.id(),
            });
        }
        Ok(())
    }

    fn check_pair(&self, a: &Ciphertext, b: &Ciphertext) -> Result<(), CkksError> {
        self.check_params(a.params_id)?;
        self.check_params(b.params_id)?;
        if a.level != b.level {
            return Err(CkksError::LevelMismatch {
                a: a.level,
                b: b.level,
            });
        }
        if a.slots != b.slots {
            return Err(CkksError::SlotsMismatch {
                a: a.slots,
                b: b.slots,
            });
        }
        Ok(())
    }

    fn check_scale(a: f64, b: f64) -> Result<(), CkksError> {
        if !scale_eq(a, b) {
            return Err(CkksError::ScaleMismatch {
                a_log2: a.log2(),
                b_log2: b.log2(),
            });
        }
        Ok(())
    }

    // ---------------------------------------------------------------- additive operations

    pub fn add_assign(&self, a: &mut Ciphertext, b: &Ciphertext) -> Result<(), CkksError> {
        self.check_pair(a, b)?;
        Self::check_scale(a.scale, b.scale)?;
        for (i, cb) in b.c.iter().enumerate() {
            if i < a.c.len() {
                ring::add_assign(&mut a.c[i], cb);
            } else {
                a.c.push(cb.clone());
            }
        }
        Ok(())
    }

    pub fn add(&self, a: &Ciphertext, b: &Ciphertext) -> Result<Ciphertext, CkksError> {
        let mut r = a.clone();
        self.add_assign(&mut r, b)?;
        Ok(r)
    }

    pub fn sub(&self, a: &Ciphertext, b: &Ciphertext) -> Result<Ciphertext, CkksError> {
        let mut r = a.clone();
        self.check_pair(a, b)?;
        Self::check_scale(a.scale, b.scale)?;
        for (i, cb) in b.c.iter().enumerate() {
            if i < r.c.len() {
                ring::sub_assign(&mut r.c[i], cb);
            } else {
                let mut t = cb.clone();
                ring::neg_assign(&mut t);
                r.c.push(t);
            }
        }
        Ok(r)
    }

    pub fn neg(&self, a: &Ciphertext) -> Ciphertext {
        let mut r = a.clone();
        r.c.iter_mut().for_each(ring::neg_assign);
        r
    }

    /// `a + pt` (the plaintext at a level `≥` the ciphertext's, same scale).
    pub fn add_plain(&self, a: &Ciphertext, pt: &Plaintext) -> Result<Ciphertext, CkksError> {
        self.check_params(pt.params_id)?;
        if pt.level < a.level {
            return Err(CkksError::LevelMismatch {
                a: a.level,
                b: pt.level,
            });
        }
        Self::check_scale(a.scale, pt.scale)?;
        let mut r = a.clone();
        ring::add_assign(&mut r.c[0], &pt.poly.prefix(a.level + 1));
        Ok(r)
    }

    /// The constant polynomial `round(re·s) + round(im·s)·X^{N/2}` (which is `c·s` in every slot,
    /// since `X^{N/2}` evaluates to `i` at every `ζ^{5^j}`), NTT form at `level`.
    fn const_poly(&self, c: Complex, s: f64, level: usize) -> Result<Poly, CkksError> {
        let re = (c.re * s).round();
        let im = (c.im * s).round();
        if !(re.abs() < 2f64.powi(126) && im.abs() < 2f64.powi(126)) {
            return Err(CkksError::ValueTooLarge {
                value: c.abs(),
                max_log2: 126,
            });
        }
        let n = self.params.n();
        let mut coeffs = vec![0i128; n];
        coeffs[0] = re as i128;
        coeffs[n / 2] = im as i128;
        let mut p = ring::from_i128(self.params.ctx_q(), level + 1, &coeffs);
        ring::ntt_forward(&mut p);
        Ok(p)
    }

    /// `a + c` in every slot.
    pub fn add_const(&self, a: &Ciphertext, c: Complex) -> Result<Ciphertext, CkksError> {
        self.check_params(a.params_id)?;
        let mut r = a.clone();
        if c.im == 0.0 {
            let v = (c.re * a.scale).round();
            if v.abs() >= 2f64.powi(126) {
                return Err(CkksError::ValueTooLarge {
                    value: c.re,
                    max_log2: 126,
                });
            }
            let v = v as i128;
            let ctx = self.params.ctx_q().clone();
            ring::for_limbs(&mut r.c[0], |i, x| {
                let m = ctx.moduli()[i];
                let w = m.reduce_i128(v);
                for y in x.iter_mut() {
                    *y = m.add(*y, w);
                }
            });
        } else {
            let p = self.const_poly(c, a.scale, a.level)?;
            ring::add_assign(&mut r.c[0], &p);
        }
        Ok(r)
    }

    // ---------------------------------------------------------------- multiplicative operations

    /// `a ⊙ pt` without rescaling: scale `s_a·s_pt`.
    pub fn mul_plain(&self, a: &Ciphertext, pt: &Plaintext) -> Result<Ciphertext, CkksError> {
        self.check_params(a.params_id)?;
        self.check_params(pt.params_id)?;
        if pt.level < a.level {
            return Err(CkksError::LevelMismatch {
                a: a.level,
                b: pt.level,
            });
        }
        let mut r = a.clone();
        for c in r.c.iter_mut() {
            let src = c.clone();
            ring::mul_into(c, &src, &pt.poly);
        }
        r.scale = a.scale * pt.scale;
        Ok(r)
    }

    /// `Σ_i a_i ⊙ pt_i` without rescaling, accumulated residue by residue into one ciphertext
    /// (no product is materialized). Every `a_i` has the same level and degree; each `pt_i` is
    /// at that level or above, and every product has the same scale `s_{a_i}·s_{pt_i}`, the
    /// result's. An empty list is refused.
    pub fn dot_plain(&self, terms: &[(&Ciphertext, &Plaintext)]) -> Result<Ciphertext, CkksError> {
        let Some(&(a0, p0)) = terms.first() else {
            return Err(CkksError::EmptySum);
        };
        let scale = a0.scale * p0.scale;
        for &(a, pt) in terms {
            self.check_params(a.params_id)?;
            self.check_params(pt.params_id)?;
            if a.level != a0.level || pt.level < a.level {
                return Err(CkksError::LevelMismatch {
                    a: a.level,
                    b: if a.level != a0.level {
                        a0.level
                    } else {
                        pt.level
                    },
                });
            }
            if a.c.len() != a0.c.len() {
                return Err(CkksError::InvalidDegree {
                    degree: a.degree(),
                    expected: a0.degree(),
                });
            }
            Self::check_scale(a.scale * pt.scale, scale)?;
        }
        let k = a0.level + 1;
        let ctx = self.params.ctx_q().clone();
        let c = (0..a0.c.len())
            .map(|j| {
                // Every residue is overwritten below.
                let mut acc = self.scratch(&ctx, k);
                ring::dot_into(&mut acc, terms.iter().map(|&(a, pt)| (&a.c[j], &pt.poly)));
                acc
            })
            .collect();
        Ok(Ciphertext {
            c,
            level: a0.level,
            scale,
            slots: a0.slots,
            params_id: a0.params_id,
        })
    }

    /// `a · c` without rescaling, the constant encoded as an integer at scale `const_scale`
    /// (result scale `s_a·const_scale`).
    pub fn mul_const(
        &self,
        a: &Ciphertext,
        c: Complex,
        const_scale: f64,
    ) -> Result<Ciphertext, CkksError> {
        self.check_params(a.params_id)?;
        let mut r = a.clone();
        if c.im == 0.0 {
            let v = (c.re * const_scale).round();
            if v.abs() >= 2f64.powi(126) {
                return Err(CkksError::ValueTooLarge {
                    value: c.re,
                    max_log2: 126,
                });
            }
            let v = v as i128;
            let ctx = self.params.ctx_q();
            let s: Vec<u64> = ctx.moduli()[..=a.level]
                .iter()
                .map(|m| m.reduce_i128(v))
                .collect();
            for p in r.c.iter_mut() {
                ring::mul_scalar_rns(p, &s);
            }
        } else {
            let p = self.const_poly(c, const_scale, a.level)?;
            for x in r.c.iter_mut() {
                let src = x.clone();
                ring::mul_into(x, &src, &p);
            }
        }
        r.scale = a.scale * const_scale;
        Ok(r)
    }

    /// `c · a` delivered at exactly `(level, scale)` (one rescale; `level < level(a)`).
    pub fn mul_const_to(
        &self,
        a: &Ciphertext,
        c: Complex,
        level: usize,
        scale: f64,
    ) -> Result<Ciphertext, CkksError> {
        if level >= a.level {
            return Err(CkksError::InvalidLevel {
                level,
                max: a.level.saturating_sub(1),
            });
        }
        let mut t = self.drop_to_level(a, level + 1)?;
        let q = self.params.q()[level + 1] as f64;
        t = self.mul_const(&t, c, scale * q / a.scale)?;
        self.rescale_assign(&mut t)?;
        t.scale = scale;
        Ok(t)
    }

    /// `Σ c_i·a_i` at exactly `(level, scale)`: each term is multiplied by the integer
    /// `round(c_i·q_{level+1}·scale/s_i)` modulo `Q_{level+1}`, the terms are summed, and the sum is
    /// rescaled once. Every `a_i` must be above `level`.
    pub fn lin_comb_to(
        &self,
        terms: &[(&Ciphertext, Complex)],
        level: usize,
        scale: f64,
    ) -> Result<Ciphertext, CkksError> {
        let first = terms
            .first()
            .ok_or(CkksError::InvalidDegree {
                degree: 0,
                expected: 1,
            })?
            .0;
        let k = level + 2;
        let ctx = self.params.ctx_q().clone();
        let q = self.params.q()[level + 1] as f64;
        let mut acc = vec![
            Poly::zero(&ctx, k, Representation::Ntt),
            Poly::zero(&ctx, k, Representation::Ntt),
        ];
        for (a, c) in terms {
            self.check_params(a.params_id)?;
            if a.level <= level {
                return Err(CkksError::InvalidLevel {
                    level,
                    max: a.level.saturating_sub(1),
                });
            }
            if a.degree() != 1 || a.slots != first.slots {
                return Err(CkksError::InvalidDegree {
                    degree: a.degree(),
                    expected: 1,
                });
            }
            let f = q * scale / a.scale;
            if c.im == 0.0 {
                let v = (c.re * f).round();
                if !v.is_finite() || v.abs() >= 2f64.powi(126) {
                    return Err(CkksError::ValueTooLarge {
                        value: c.re,
                        max_log2: 126,
                    });
                }
                let v = v as i128;
                let w: Vec<u64> = ctx.moduli()[..k].iter().map(|m| m.reduce_i128(v)).collect();
                for (dst, src) in acc.iter_mut().zip(&a.c) {
                    ring::mul_scalar_acc(dst, src, &w);
                }
            } else {
                let p = self.const_poly(*c, f, level + 1)?;
                for (dst, src) in acc.iter_mut().zip(&a.c) {
                    ring::mul_acc(dst, src, &p);
                }
            }
        }
        let mut r = Ciphertext {
            c: acc,
            level: level + 1,
            scale: scale * q,
            slots: first.slots,
            params_id: first.params_id,
        };
        self.rescale_assign(&mut r)?;
        r.scale = scale;
        Ok(r)
    }

    /// The tensor product `(a_0b_0, a_0b_1 + a_1b_0, a_1b_1)` (degree 2, scale `s_a·s_b`). Operands
    /// at different levels are first brought to the lower one.
    pub fn mul(&self, a: &Ciphertext, b: &Ciphertext) -> Result<Ciphertext, CkksError> {
        self.check_params(a.params_id)?;
        self.check_params(b.params_id)?;
        if a.slots != b.slots {
            return Err(CkksError::SlotsMismatch {
                a: a.slots,
                b: b.slots,
            });
        }
        if a.degree() != 1 || b.degree() != 1 {
            return Err(CkksError::InvalidDegree {
                degree: a.degree().max(b.degree()),
                expected: 1,
            });
        }
        let level = a.level.min(b.level);
        let k = level + 1;
        let ctx = self.params.ctx_q();
        // The ring helpers read the first `k` residues of longer operands directly.
        let (a0, a1) = (&a.c[0], &a.c[1]);
        let (b0, b1) = (&b.c[0], &b.c[1]);
        let mut d0 = Poly::zero(ctx, k, Representation::Ntt);
        let mut d1 = Poly::zero(ctx, k, Representation::Ntt);
        let mut d2 = Poly::zero(ctx, k, Representation::Ntt);
        ring::mul_into(&mut d0, a0, b0);
        ring::mul_into(&mut d1, a0, b1);
        ring::mul_acc(&mut d1, a1, b0);
        ring::mul_into(&mut d2, a1, b1);
        Ok(Ciphertext {
            c: vec![d0, d1, d2],
            level,
            scale: a.scale * b.scale,
            slots: a.slots,
            params_id: a.params_id,
        })
    }

    /// Degree 2 → 1 with the relinearization key.
    pub fn relinearize(&self, a: &Ciphertext) -> Result<Ciphertext, CkksError> {
        if a.degree() != 2 {
            return Err(CkksError::InvalidDegree {
                degree: a.degree(),
                expected: 2,
            });
        }
        let key = self.keys.relin.as_ref().ok_or(CkksError::MissingRelinKey)?;
        if key.max_level() < a.level {
            return Err(CkksError::InvalidLevel {
                level: a.level,
                max: key.max_level(),
            });
        }
        let dec = self.decompose(&a.c[2], a.level);
        let (mut k0, k1) = self.key_switch_decomposed(&dec, key);
        self.recycle(dec);
        ring::add_assign(&mut k0, &a.c[0]);
        let mut c1 = k1;
        ring::add_assign(&mut c1, &a.c[1]);
        Ok(Ciphertext::with_polys(a, vec![k0, c1]))
    }

    /// `a·b`, relinearized and rescaled.
    pub fn mul_relin_rescale(
        &self,
        a: &Ciphertext,
        b: &Ciphertext,
    ) -> Result<Ciphertext, CkksError> {
        let mut r = self.relinearize(&self.mul(a, b)?)?;
        self.rescale_assign(&mut r)?;
        Ok(r)
    }

    /// Divides by `q_level` (scale `s/q_level`, level − 1).
    pub fn rescale_assign(&self, a: &mut Ciphertext) -> Result<(), CkksError> {
        if a.level == 0 {
            return Err(CkksError::NoLevelLeft);
        }
        let q = self.params.q()[a.level] as f64;
        a.c.par_iter_mut().for_each(ring::rescale_ntt);
        a.level -= 1;
        a.scale /= q;
        Ok(())
    }

    pub fn rescale(&self, a: &Ciphertext) -> Result<Ciphertext, CkksError> {
        let mut r = a.clone();
        self.rescale_assign(&mut r)?;
        Ok(r)
    }

    /// Drops primes down to `level` (scale unchanged).
    pub fn drop_to_level(&self, a: &Ciphertext, level: usize) -> Result<Ciphertext, CkksError> {
        if level > a.level {
            return Err(CkksError::InvalidLevel {
                level,
                max: a.level,
            });
        }
        let mut r = Ciphertext::with_polys(a, a.c.iter().map(|p| p.prefix(level + 1)).collect());
        r.level = level;
        Ok(r)
    }

    /// Output sanitization (circuit privacy, docs/security.md § FHE mode): `a + v·z + (e_0 + f,
    /// e_1)` with `z` the client's encryption of zero (at a level `≥` `a`'s), `v` fresh ternary,
    /// `e_i` fresh Gaussian (σ = 3.2) and `f` Gaussian flooding of standard deviation
    /// `flood_sigma` on every coefficient. The result decrypts to `a`'s message plus
    /// `v·e_z + e_1·s + e_0 + f`; its `c_1` is `a`'s plus an RLWE sample `v·z_1 + e_1`,
    /// pseudorandom to the key holder, so it no longer depends on the evaluation.
    pub fn rerandomize<R: rand_core::RngCore + rand_core::CryptoRng>(
        &self,
        a: &Ciphertext,
        zero: &Ciphertext,
        flood_sigma: f64,
        rng: &mut R,
    ) -> Result<Ciphertext, CkksError> {
        self.check_params(a.params_id)?;
        self.check_params(zero.params_id)?;
        for c in [a, zero] {
            if c.c.len() != 2 {
                return Err(CkksError::InvalidDegree {
                    degree: c.c.len() - 1,
                    expected: 1,
                });
            }
        }
        if zero.level < a.level {
            return Err(CkksError::LevelMismatch {
                a: a.level,
                b: zero.level,
            });
        }
        if !(flood_sigma.is_finite() && (0.0..=2f64.powi(50)).contains(&flood_sigma)) {
            return Err(CkksError::InvalidFlooding { sigma: flood_sigma });
        }
        let (ctx, n, k) = (self.params.ctx_q(), self.params.n(), a.level + 1);
        let small = |v: &[i64]| {
            let mut p = Poly::from_signed(ctx, k, v);
            ring::ntt_forward(&mut p);
            p
        };
        let v = small(&math::sample::ternary(n, rng));
        let mut r = a.clone();
        for (i, zi) in zero.c.iter().enumerate() {
            let mut t = Poly::zero(ctx, k, Representation::Ntt);
            ring::mul_into(&mut t, &v, &zi.prefix(k));
            ring::add_assign(&mut r.c[i], &t);
            let mut e = math::sample::rounded_gaussian(n, crate::keys::SIGMA, rng);
            if i == 0 && flood_sigma > 0.0 {
                let f = math::sample::rounded_gaussian(n, flood_sigma, rng);
                e.iter_mut().zip(&f).for_each(|(x, y)| *x += y);
            }
            ring::add_assign(&mut r.c[i], &small(&e));
        }
        Ok(r)
    }

    // ---------------------------------------------------------------- key switching

    /// A ring element with `k` residues of `ctx` whose contents are arbitrary (from the pool,
    /// resized if it has another residue count, or zero): for outputs that are overwritten
    /// entirely.
    pub(crate) fn scratch(&self, ctx: &std::sync::Arc<math::RnsContext>, k: usize) -> Poly {
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        let same = |p: &Poly| std::sync::Arc::ptr_eq(p.context(), ctx);
        let found = pool
            .iter()
            .position(|p| same(p) && p.num_moduli() == k)
            .or_else(|| pool.iter().position(same));
        if let Some(i) = found {
            let mut p = pool.swap_remove(i);
            drop(pool);
            p.resize_moduli(k);
            p.set_representation_unchecked(Representation::Ntt);
            return p;
        }
        drop(pool);
        Poly::zero(ctx, k, Representation::Ntt)
    }

    /// Returns ring elements to the pool (as long as it has room).
    fn recycle_polys(&self, polys: impl IntoIterator<Item = Poly>) {
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        for p in polys {
            if pool.len() >= POOL_MAX {
                break;
            }
            pool.push(p);
        }
    }

    /// Returns a decomposition's ring elements to the pool.
    pub(crate) fn recycle(&self, dec: Decomposed) {
        self.recycle_polys(dec.digits.into_iter().flat_map(|(q, p)| [q, p]));
    }

    /// ModUp decomposition of `c` (NTT form, level `ℓ`).
    pub fn decompose(&self, c: &Poly, level: usize) -> Decomposed {
        let pr = &self.params;
        let n = pr.n();
        let k = level + 1;
        let kp = pr.p().len();
        let alpha = pr.0.alpha;
        let mut coeff = c.prefix(k);
        ring::ntt_inverse(&mut coeff);
        // Its first k residues, NTT form.
        let ntt_in = c;
        // Per digit (digits in parallel): scale its residues once (y_i = x_i·(Q_j/q_i)^{-1}),
        // then, in parallel over the target primes, convert into the limb and NTT it in place
        // (no intermediate buffer).
        let ctx_q = pr.ctx_q().clone();
        let ctx_p = pr.ctx_p().clone();
        let digits: Vec<(Poly, Poly)> = (0..pr.digits_at(level))
            .into_par_iter()
            .map(|j| {
                let lo = j * alpha;
                let hi = ((j + 1) * alpha).min(k);
                let conv = &pr.0.modup[level][j];
                let y = conv.scaled_inputs(n, &coeff.data()[lo * n..hi * n]);
                // Every residue of both is overwritten below.
                let mut eq = self.scratch(&ctx_q, k);
                let mut ep = self.scratch(&ctx_p, kp);
                let nd = ntt_in.data();
                let y = &y;
                rayon::join(
                    || {
                        ring::for_limbs(&mut eq, |i, r| {
                            if i >= lo && i < hi {
                                r.copy_from_slice(&nd[i * n..(i + 1) * n]);
                            } else {
                                let t = if i < lo { i } else { i - (hi - lo) };
                                conv.convert_scaled_to(n, y, t, r);
                                ctx_q.plan(i).forward(r);
                            }
                        })
                    },
                    || {
                        ring::for_limbs(&mut ep, |i, r| {
                            conv.convert_scaled_to(n, y, k - (hi - lo) + i, r);
                            ctx_p.plan(i).forward(r);
                        })
                    },
                );
                (eq, ep)
            })
            .collect();
        Decomposed { digits, level }
    }

    /// Inner product of a decomposition with a key, then ModDown: returns `(d_0, d_1)` modulo
    /// `Q_ℓ`, NTT form. (For a Galois key, stored as `σ_g^{-1}(K)`, the caller applies `σ_g` to
    /// the outputs.)
    pub(crate) fn key_switch_decomposed(
        &self,
        dec: &Decomposed,
        key: &SwitchingKey,
    ) -> (Poly, Poly) {
        let ([q0, q1], [p0, p1]) = self.inner_product(dec, key);
        rayon::join(
            || self.mod_down(q0, p0, dec.level),
            || self.mod_down(q1, p1, dec.level),
        )
    }

    /// Inner product of a decomposition with a key over `Q_ℓ·P` (before ModDown): the `Q_ℓ`
    /// and the `P` residues of both output parts.
    fn inner_product(&self, dec: &Decomposed, key: &SwitchingKey) -> ([Poly; 2], [Poly; 2]) {
        let pr = &self.params;
        let n = pr.n();
        let k = dec.level + 1;
        let kp = pr.p().len();
        let ctx_q = pr.ctx_q().clone();
        let ctx_p = pr.ctx_p().clone();
        // Accumulate per residue: (ctx, residue index, is_p) over Q_ℓ then P, in parallel.
        // Every residue of the four is overwritten below.
        let mut acc_q = [self.scratch(&ctx_q, k), self.scratch(&ctx_q, k)];
        let mut acc_p = [self.scratch(&ctx_p, kp), self.scratch(&ctx_p, kp)];
        let [aq0, aq1] = &mut acc_q;
        let [ap0, ap1] = &mut acc_p;
        // Per residue, one pass over the digits and both key halves with one reduction per
        // output coefficient (`math::simd::dot_pair`).
        let inner = |is_p: bool, i: usize, r0: &mut [u64], r1: &mut [u64]| {
            let m = if is_p {
                ctx_p.moduli()[i]
            } else {
                ctx_q.moduli()[i]
            };
            let digits = dec.digits.iter().zip(&key.parts);
            let (mut x, mut b, mut a) = (Vec::new(), Vec::new(), Vec::new());
            for ((eq, ep), [(bq, bp), (aq, ap)]) in digits {
                let (xj, bj, aj) = if is_p { (ep, bp, ap) } else { (eq, bq, aq) };
                x.push(xj.residue(i));
                b.push(bj.residue(i));
                a.push(aj.residue(i));
            }
            math::simd::dot_pair(&m, r0, r1, &x, &b, &a);
        };
        rayon::join(
            || {
                aq0.data_mut()
                    .par_chunks_exact_mut(n)
                    .zip(aq1.data_mut().par_chunks_exact_mut(n))
                    .enumerate()
                    .for_each(|(i, (r0, r1))| inner(false, i, r0, r1))
            },
            || {
                ap0.data_mut()
                    .par_chunks_exact_mut(n)
                    .zip(ap1.data_mut().par_chunks_exact_mut(n))
                    .enumerate()
                    .for_each(|(i, (r0, r1))| inner(true, i, r0, r1))
            },
        );
        (acc_q, acc_p)
    }

    /// `(x_Q − Conv_{P→Q}(x_P)) · P^{-1}` modulo `Q_ℓ` (NTT form in and out).
    fn mod_down(&self, mut xq: Poly, mut xp: Poly, level: usize) -> Poly {
        let pr = &self.params;
        let n = pr.n();
        let k = level + 1;
        ring::ntt_inverse(&mut xp);
        let conv = &pr.0.moddown[level];
        let y = conv.scaled_inputs(n, xp.data());
        let ctx = pr.ctx_q().clone();
        let pinv = &pr.0.p_inv_mod_q;
        // Every residue of `t` is overwritten below.
        let mut t = self.scratch(&ctx, k);
        xq.data_mut()
            .par_chunks_exact_mut(n)
            .zip(t.data_mut().par_chunks_exact_mut(n))
            .enumerate()
            .for_each(|(i, (r, t))| {
                let m = ctx.moduli()[i];
                conv.convert_scaled_to(n, &y, i, t);
                ctx.plan(i).forward(t);
                let (w, ws) = pinv[i];
                // t < q_i after the NTT, x < q_i: (x + q − t)·P^{-1} mod q_i.
                math::simd::sub_mul_add(&m, r, t, w, ws, 0);
            });
        self.recycle_polys([t, xp]);
        xq
    }

    fn galois_key(&self, g: usize, level: usize) -> Result<&SwitchingKey, CkksError> {
        let key = self
            .keys
            .galois
            .get(&g)
            .ok_or(CkksError::MissingGaloisKey { galois: g })?;
        if key.max_level() < level {
            return Err(CkksError::InvalidLevel {
                level,
                max: key.max_level(),
            });
        }
        Ok(key)
    }

    /// Switches `a` (degree 1) with an arbitrary switching key: `(c_0, 0) + KS(c_1)`.
    pub fn switch_key(&self, a: &Ciphertext, key: &SwitchingKey) -> Result<Ciphertext, CkksError> {
        if a.degree() != 1 {
            return Err(CkksError::InvalidDegree {
                degree: a.degree(),
                expected: 1,
            });
        }
        if key.max_level() < a.level {
            return Err(CkksError::InvalidLevel {
                level: a.level,
                max: key.max_level(),
            });
        }
        let dec = self.decompose(&a.c[1], a.level);
        let (mut d0, d1) = self.key_switch_decomposed(&dec, key);
        self.recycle(dec);
        ring::add_assign(&mut d0, &a.c[0]);
        Ok(Ciphertext::with_polys(a, vec![d0, d1]))
    }

    // ---------------------------------------------------------------- automorphisms

    /// `X ↦ X^g` followed by key switching back to `s`.
    pub fn apply_galois(&self, a: &Ciphertext, g: usize) -> Result<Ciphertext, CkksError> {
        self.check_params(a.params_id)?;
        if a.degree() != 1 {
            return Err(CkksError::InvalidDegree {
                degree: a.degree(),
                expected: 1,
            });
        }
        if g == 1 {
            return Ok(a.clone());
        }
        let dec = self.decompose(&a.c[1], a.level);
        let r = self.rotate_decomposed(a, &dec, g);
        self.recycle(dec);
        r
    }

    /// Rotates the slots left by `k` (slot `i` receives slot `i + k`).
    pub fn rotate(&self, a: &Ciphertext, k: isize) -> Result<Ciphertext, CkksError> {
        self.apply_galois(a, self.params.galois_element(k))
    }

    /// Complex conjugation of every slot.
    pub fn conjugate(&self, a: &Ciphertext) -> Result<Ciphertext, CkksError> {
        self.apply_galois(a, self.params.conjugation_element())
    }

    /// Several rotations of one ciphertext sharing one ModUp decomposition (hoisting).
    pub fn rotate_hoisted(
        &self,
        a: &Ciphertext,
        ks: &[isize],
    ) -> Result<Vec<Ciphertext>, CkksError> {
        self.check_params(a.params_id)?;
        if a.degree() != 1 {
            return Err(CkksError::InvalidDegree {
                degree: a.degree(),
                expected: 1,
            });
        }
        let dec = self.decompose(&a.c[1], a.level);
        let r = ks
            .iter()
            .map(|&k| self.rotate_decomposed(a, &dec, self.params.galois_element(k)))
            .collect();
        self.recycle(dec);
        r
    }

    /// `Σ_i rot_{k_i}(a_i)` with one ModDown for the whole sum: each term's key-switch inner
    /// product is permuted by its automorphism and accumulated over `Q_ℓ·P` (`σ_g` commutes
    /// with ModDown up to the same small integer error as in [`Evaluator::rotate_decomposed`]).
    /// Every `a_i` has degree 1 and the same level and scale; `k_i = 0` adds `a_i` itself.
    pub fn rotate_sum(&self, terms: &[(&Ciphertext, isize)]) -> Result<Ciphertext, CkksError> {
        let Some(&(a0, _)) = terms.first() else {
            return Err(CkksError::EmptySum);
        };
        for &(a, _) in terms {
            self.check_params(a.params_id)?;
            if a.degree() != 1 {
                return Err(CkksError::InvalidDegree {
                    degree: a.degree(),
                    expected: 1,
                });
            }
            if a.level != a0.level {
                return Err(CkksError::LevelMismatch {
                    a: a.level,
                    b: a0.level,
                });
            }
            Self::check_scale(a.scale, a0.scale)?;
        }
        let pr = &self.params;
        let (ctx_q, ctx_p) = (pr.ctx_q().clone(), pr.ctx_p().clone());
        let (k, kp, level) = (a0.level + 1, pr.p().len(), a0.level);
        let zq = || Poly::zero(&ctx_q, k, Representation::Ntt);
        let zp = || Poly::zero(&ctx_p, kp, Representation::Ntt);
        let (mut acc_q, mut acc_p) = ([zq(), zq()], [zp(), zp()]);
        let (mut c0, mut c1) = (zq(), zq());
        let mut switched = false;
        // Consecutive terms of one ciphertext share its decomposition (hoisting).
        let mut held: Option<(&Ciphertext, Decomposed)> = None;
        for &(a, rot) in terms {
            let g = pr.galois_element(rot);
            if g == 1 {
                ring::add_assign(&mut c0, &a.c[0]);
                ring::add_assign(&mut c1, &a.c[1]);
                continue;
            }
            let key = self.galois_key(g, level)?;
            let (perm_q, perm_p) = (
                ctx_q.automorphism_permutation(g)?,
                ctx_p.automorphism_permutation(g)?,
            );
            if !held.as_ref().is_some_and(|(h, _)| std::ptr::eq(*h, a)) {
                if let Some((_, d)) = held.take() {
                    self.recycle(d);
                }
                held = Some((a, self.decompose(&a.c[1], level)));
            }
            let dec = &held.as_ref().expect("set above").1;
            let (tq, tp) = self.inner_product(dec, key);
            for j in 0..2 {
                ring::add_permuted(&mut acc_q[j], &tq[j], &perm_q);
                ring::add_permuted(&mut acc_p[j], &tp[j], &perm_p);
            }
            self.recycle_polys(tq.into_iter().chain(tp));
            ring::add_permuted(&mut c0, &a.c[0], &perm_q);
            switched = true;
        }
        if let Some((_, d)) = held {
            self.recycle(d);
        }
        if switched {
            let [q0, q1] = acc_q;
            let [p0, p1] = acc_p;
            let (d0, d1) = rayon::join(
                || self.mod_down(q0, p0, level),
                || self.mod_down(q1, p1, level),
            );
            ring::add_assign(&mut c0, &d0);
            ring::add_assign(&mut c1, &d1);
        }
        Ok(Ciphertext::with_polys(a0, vec![c0, c1]))
    }

    /// One rotation of `a` given the decomposition of its `c_1`.
    pub(crate) fn rotate_decomposed(
        &self,
        a: &Ciphertext,
        dec: &Decomposed,
        g: usize,
    ) -> Result<Ciphertext, CkksError> {
        if g == 1 {
            return Ok(a.clone());
        }
        let key = self.galois_key(g, a.level)?;
        let perm = self.params.ctx_q().automorphism_permutation(g)?;
        // σ_g(c_0) + σ_g(D) ⊙ K = σ_g(c_0 + D ⊙ σ_g^{-1}(K)) (the key is stored as σ_g^{-1}(K));
        // σ_g commutes with ModDown up to an integer error below the number of special primes
        // per coefficient (the base conversion of a negated coefficient), as small as ModDown's
        // own rounding.
        let (mut d0, d1) = self.key_switch_decomposed(dec, key);
        ring::add_assign(&mut d0, &a.c[0]);
        let (d0, d1) = rayon::join(|| d0.permuted(&perm), || d1.permuted(&perm));
        Ok(Ciphertext::with_polys(a, vec![d0, d1]))
    }
}

impl LeveledArith for Evaluator {
    type Value = Ciphertext;
    fn level(&self, x: &Ciphertext) -> usize {
        x.level
    }
    fn scale(&self, x: &Ciphertext) -> f64 {
        x.scale
    }
    fn prime(&self, level: usize) -> f64 {
        self.params.q()[level] as f64
    }
    fn mul_rescale(&self, a: &Ciphertext, b: &Ciphertext) -> Result<Ciphertext, CkksError> {
        self.mul_relin_rescale(a, b)
    }
    fn add(&self, a: &Ciphertext, b: &Ciphertext) -> Result<Ciphertext, CkksError> {
        Evaluator::add(self, a, b)
    }
    fn sub(&self, a: &Ciphertext, b: &Ciphertext) -> Result<Ciphertext, CkksError> {
        Evaluator::sub(self, a, b)
    }
    fn mul_const_to(
        &self,
        a: &Ciphertext,
        c: Complex,
        level: usize,
        scale: f64,
    ) -> Result<Ciphertext, CkksError> {
        Evaluator::mul_const_to(self, a, c, level, scale)
    }
    fn add_const(&self, a: &Ciphertext, c: Complex) -> Result<Ciphertext, CkksError> {
        Evaluator::add_const(self, a, c)
    }
    fn lin_comb_to(
        &self,
        terms: &[(&Ciphertext, Complex)],
        level: usize,
        scale: f64,
    ) -> Result<Ciphertext, CkksError> {
        Evaluator::lin_comb_to(self, terms, level, scale)
    }
}
