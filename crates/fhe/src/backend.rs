//! The operations a lowered network needs, on two backends: [`Sim`] (slot vectors in the clear
//! with the level bookkeeping of the real scheme: the layout oracle, and the dry run that
//! counts operations and lists the rotation keys) and [`Ckks`] (ciphertexts).
//!
//! Every multiplicative op keeps the ciphertext scale at exactly `Δ`: plaintexts multiplied into
//! a level-`ℓ` ciphertext are encoded at scale `q_ℓ`, and the one ciphertext product of a
//! degree-2 polynomial is prepared so that its rescale lands on `Δ` (see [`Backend::poly2`]).

use ckks::{Bootstrapper, Ciphertext, Complex, EncapsulationKeys, Evaluator, Params};
use rayon::prelude::*;

use crate::error::{FheError, Result};

pub trait Backend: Sync {
    type Ct: Clone + Send + Sync;
    /// Slots per ciphertext.
    fn slots(&self) -> usize;
    fn level(&self, x: &Self::Ct) -> usize;
    /// Rotations left by each `k` (slot `i` receives slot `i + k`), sharing one decomposition.
    fn rotate_many(&self, x: &Self::Ct, ks: &[isize]) -> Result<Vec<Self::Ct>>;
    fn rotate(&self, x: &Self::Ct, k: isize) -> Result<Self::Ct> {
        Ok(self.rotate_many(x, &[k])?.pop().expect("one rotation"))
    }
    /// `Σ_i rot_{k_i}(x_i)` (all at one level).
    fn rotate_sum(&self, terms: &[(&Self::Ct, isize)]) -> Result<Self::Ct> {
        let mut acc: Option<Self::Ct> = None;
        for &(x, k) in terms {
            let r = if k == 0 {
                x.clone()
            } else {
                self.rotate(x, k)?
            };
            acc = Some(match acc {
                None => r,
                Some(a) => self.add(&a, &r)?,
            });
        }
        acc.ok_or_else(|| FheError::BadInput("a sum of no rotations".into()))
    }
    /// `Σ_i pt_i ⊙ x_i`, one rescale: level `ℓ − 1` (all `x_i` at level `ℓ`), scale kept.
    fn dot_plain(&self, terms: &[(&Self::Ct, &[f64])]) -> Result<Self::Ct> {
        let zero = vec![0.0; self.slots()];
        let t: Vec<(&Self::Ct, &[f64], &[f64])> = terms
            .iter()
            .map(|(x, p)| (*x, *p, zero.as_slice()))
            .collect();
        self.dot_complex(&t)
    }
    /// As [`Backend::dot_plain`] with complex plaintexts `re + i·im`.
    fn dot_complex(&self, terms: &[(&Self::Ct, &[f64], &[f64])]) -> Result<Self::Ct>;
    /// Splits `z` into `(z + z̄, −i·(z − z̄))`, i.e. `(2·Re z, 2·Im z)`: one conjugation, no level.
    fn split_complex(&self, z: &Self::Ct) -> Result<(Self::Ct, Self::Ct)>;
    /// `a + b`, the higher operand dropped to the lower level.
    fn add(&self, a: &Self::Ct, b: &Self::Ct) -> Result<Self::Ct>;
    fn add_plain(&self, a: &Self::Ct, v: &[f64]) -> Result<Self::Ct>;
    /// `x ⊙ (a ⊙ x + b) + c`: two levels.
    fn poly2(&self, x: &Self::Ct, a: &[f64], b: &[f64], c: &[f64]) -> Result<Self::Ct>;
    /// A Chebyshev series on `[−1, 1]` in every slot (`polyeval::depth` levels). With
    /// `for_product`, the result is at scale `q_ℓ` of its level `ℓ`, so that a product with a
    /// scale-`Δ` ciphertext rescales to exactly `Δ` ([`Backend::mul`]); otherwise at `Δ`.
    fn series(
        &self,
        x: &Self::Ct,
        s: &ckks::ChebyshevSeries,
        for_product: bool,
    ) -> Result<Self::Ct>;
    /// `(x + shift)² + post`, slot-wise: one product, one level. The result's scale is the
    /// square of the input's over the prime (not `Δ`); products with plaintexts bring it back.
    fn square(&self, x: &Self::Ct, shift: &[f64], post: &[f64]) -> Result<Self::Ct>;
    /// `a ⊙ b` of two ciphertexts (`b` prepared by [`Backend::series`] with `for_product`),
    /// relinearized and rescaled: one level below the lower operand, scale `Δ`.
    fn mul(&self, a: &Self::Ct, b: &Self::Ct) -> Result<Self::Ct>;
    fn drop_to(&self, x: &Self::Ct, level: usize) -> Result<Self::Ct>;
    /// Refreshes `x`, whose slot vector repeats with period `period`, to
    /// [`Backend::boot_level`] (sparse packing with `period` slots where the circuit allows).
    fn bootstrap(&self, x: &Self::Ct, period: usize) -> Result<Self::Ct>;
    /// `(a + i·b)/2` of two real ciphertexts, at no level (the factor `i` a monomial, the `1/2`
    /// in the scale): bootstrapping refreshes the `N` real coefficients whatever the slots
    /// hold, so two real values cost one circuit, and [`Backend::split_complex`] returns them.
    fn pack_pair(&self, a: &Self::Ct, b: &Self::Ct) -> Result<Self::Ct>;
    /// Whether `a` and `b` may share a circuit: both at most about the working scale `Δ`. A
    /// pair's values come back at `2Δ` (message twice the value's at `Δ`) until a plaintext
    /// product or a series brings them back; pairing them again would double the message
    /// that EvalMod reads once more, so they bootstrap alone (|x| ≤ 1/2 at `2Δ` is a message
    /// of at most `Δ`).
    fn pairable(&self, a: &Self::Ct, b: &Self::Ct) -> bool;
    /// Level of a bootstrapped ciphertext.
    fn boot_level(&self) -> usize;
}

/// Clear slot vectors with levels: real parts `v`, imaginary parts `im` (empty: all zero).
#[derive(Clone, Debug)]
pub struct SimCt {
    pub v: Vec<f64>,
    pub im: Vec<f64>,
    pub level: usize,
    /// At twice the working scale in a CKKS run (a paired bootstrap's output and what keeps
    /// its scale): such values do not pair again ([`Backend::pairable`]).
    pub doubled: bool,
}

impl SimCt {
    pub fn real(v: Vec<f64>, level: usize) -> Self {
        SimCt {
            v,
            im: vec![],
            level,
            doubled: false,
        }
    }
    fn with_doubled(mut self, d: bool) -> Self {
        self.doubled = d;
        self
    }
    fn imag(&self, n: usize) -> Vec<f64> {
        if self.im.is_empty() {
            vec![0.0; n]
        } else {
            self.im.clone()
        }
    }
}

/// The clear-text backend. It records the largest `|x|` entering a bootstrap or a series on
/// `[−1, 1]` (both need `|x| ≤ 1`).
pub struct Sim {
    pub n: usize,
    pub boot_level: usize,
    /// Largest `|x|` seen at a bootstrap input.
    pub max_boot_input: std::sync::Mutex<f64>,
}

impl Sim {
    pub fn new(n: usize, boot_level: usize) -> Self {
        Sim {
            n,
            boot_level,
            max_boot_input: std::sync::Mutex::new(0.0),
        }
    }
    fn need(&self, x: &SimCt, levels: usize) -> Result<()> {
        if x.level < levels {
            return Err(ckks::CkksError::NoLevelLeft.into());
        }
        Ok(())
    }
}

impl Backend for Sim {
    type Ct = SimCt;
    fn slots(&self) -> usize {
        self.n
    }
    fn level(&self, x: &SimCt) -> usize {
        x.level
    }
    fn rotate_many(&self, x: &SimCt, ks: &[isize]) -> Result<Vec<SimCt>> {
        let n = self.n as isize;
        Ok(ks
            .iter()
            .map(|&k| {
                let k = k.rem_euclid(n) as usize;
                let mut v = x.v.clone();
                v.rotate_left(k);
                let mut im = x.im.clone();
                if !im.is_empty() {
                    im.rotate_left(k);
                }
                SimCt {
                    v,
                    im,
                    level: x.level,
                    doubled: x.doubled,
                }
            })
            .collect())
    }
    fn dot_complex(&self, terms: &[(&SimCt, &[f64], &[f64])]) -> Result<SimCt> {
        let level = terms[0].0.level;
        self.need(terms[0].0, 1)?;
        let mut v = vec![0.0; self.n];
        let mut im = vec![0.0; self.n];
        for (x, p, q) in terms {
            if x.level != level {
                return Err(FheError::BadInput(
                    "dot_plain operands at different levels".into(),
                ));
            }
            let xi = x.imag(self.n);
            for i in 0..self.n {
                v[i] += x.v[i] * p[i] - xi[i] * q[i];
                im[i] += x.v[i] * q[i] + xi[i] * p[i];
            }
        }
        Ok(SimCt {
            v,
            im,
            level: level - 1,
            doubled: false,
        })
    }
    fn split_complex(&self, z: &SimCt) -> Result<(SimCt, SimCt)> {
        Ok((
            SimCt::real(z.v.iter().map(|x| 2.0 * x).collect(), z.level).with_doubled(z.doubled),
            SimCt::real(z.imag(self.n).iter().map(|x| 2.0 * x).collect(), z.level)
                .with_doubled(z.doubled),
        ))
    }
    fn add(&self, a: &SimCt, b: &SimCt) -> Result<SimCt> {
        let (ai, bi) = (a.imag(self.n), b.imag(self.n));
        let im = if a.im.is_empty() && b.im.is_empty() {
            vec![]
        } else {
            ai.iter().zip(&bi).map(|(x, y)| x + y).collect()
        };
        Ok(SimCt {
            v: a.v.iter().zip(&b.v).map(|(x, y)| x + y).collect(),
            im,
            level: a.level.min(b.level),
            doubled: a.doubled || b.doubled,
        })
    }
    fn add_plain(&self, a: &SimCt, p: &[f64]) -> Result<SimCt> {
        Ok(SimCt {
            v: a.v.iter().zip(p).map(|(x, y)| x + y).collect(),
            im: a.im.clone(),
            level: a.level,
            doubled: a.doubled,
        })
    }
    fn poly2(&self, x: &SimCt, a: &[f64], b: &[f64], c: &[f64]) -> Result<SimCt> {
        self.need(x, 2)?;
        if x.im.iter().any(|&v| v != 0.0) {
            return Err(FheError::BadInput(
                "a polynomial activation of a complex value".into(),
            ));
        }
        let v = (0..self.n)
            .map(|i| x.v[i] * (a[i] * x.v[i] + b[i]) + c[i])
            .collect();
        Ok(SimCt::real(v, x.level - 2).with_doubled(x.doubled))
    }
    fn series(&self, x: &SimCt, sr: &ckks::ChebyshevSeries, _for_product: bool) -> Result<SimCt> {
        let d = ckks::polyeval::depth(sr.degree());
        self.need(x, d)?;
        let m = x.v.iter().fold(0f64, |m, v| m.max(v.abs()));
        {
            let mut g = self.max_boot_input.lock().expect("not poisoned");
            *g = g.max(m);
        }
        Ok(SimCt::real(
            x.v.iter().map(|&v| sr.eval(v).re).collect(),
            x.level - d,
        ))
    }
    fn square(&self, x: &SimCt, shift: &[f64], post: &[f64]) -> Result<SimCt> {
        self.need(x, 1)?;
        if x.im.iter().any(|&v| v != 0.0) {
            return Err(FheError::BadInput("square of a complex value".into()));
        }
        let v =
            x.v.iter()
                .zip(shift)
                .zip(post)
                .map(|((&v, &s), &p)| (v + s) * (v + s) + p)
                .collect();
        Ok(SimCt::real(v, x.level - 1).with_doubled(x.doubled))
    }
    fn mul(&self, a: &SimCt, b: &SimCt) -> Result<SimCt> {
        let l = a.level.min(b.level);
        if l == 0 {
            return Err(ckks::CkksError::NoLevelLeft.into());
        }
        Ok(
            SimCt::real(a.v.iter().zip(&b.v).map(|(x, y)| x * y).collect(), l - 1)
                .with_doubled(a.doubled),
        )
    }
    fn drop_to(&self, x: &SimCt, level: usize) -> Result<SimCt> {
        Ok(SimCt {
            level: level.min(x.level),
            ..x.clone()
        })
    }
    fn bootstrap(&self, x: &SimCt, period: usize) -> Result<SimCt> {
        let m = x.v.iter().chain(&x.im).fold(0f64, |m, v| m.max(v.abs()));
        // Sparse bootstrapping keeps only the `period`-periodic part: the layout must be it.
        for v in [&x.v, &x.im] {
            if let Some(q) =
                (0..v.len()).find(|&q| (v[q] - v[q % period]).abs() > 1e-9 * m.max(1.0))
            {
                return Err(FheError::BadInput(format!(
                    "bootstrap input not periodic with period {period} (slot {q})"
                )));
            }
        }
        let mut g = self.max_boot_input.lock().expect("not poisoned");
        *g = g.max(m);
        Ok(SimCt {
            level: self.boot_level,
            ..x.clone()
        })
    }
    fn pack_pair(&self, a: &SimCt, b: &SimCt) -> Result<SimCt> {
        if a.im.iter().chain(&b.im).any(|&v| v != 0.0) {
            return Err(FheError::BadInput(
                "only real values pair for bootstrapping".into(),
            ));
        }
        // The circuit sees both values at full size (the 1/2 is only the scale's).
        let m = a.v.iter().chain(&b.v).fold(0f64, |m, v| m.max(v.abs()));
        let mut g = self.max_boot_input.lock().expect("not poisoned");
        *g = g.max(m);
        Ok(SimCt {
            v: a.v.iter().map(|x| x / 2.0).collect(),
            im: b.v.iter().map(|x| x / 2.0).collect(),
            level: a.level.min(b.level),
            doubled: true,
        })
    }
    fn pairable(&self, a: &SimCt, b: &SimCt) -> bool {
        !a.doubled && !b.doubled
    }
    fn boot_level(&self) -> usize {
        self.boot_level
    }
}

/// Ciphertexts under the evaluation keys (server side: no secret).
pub struct Ckks<'a> {
    pub params: &'a Params,
    pub eval: &'a Evaluator,
    /// Bootstrapping circuits by slot count (ascending), with the encapsulation keys.
    pub boot: Option<(&'a [Bootstrapper], Option<&'a EncapsulationKeys>)>,
    /// Slots per ciphertext (`N/2` for the network).
    pub n: usize,
}

impl Ckks<'_> {
    fn encode(&self, v: &[f64], level: usize, scale: f64) -> Result<ckks::Plaintext> {
        let z: Vec<Complex> = v.iter().map(|&x| Complex::from(x)).collect();
        Ok(self.params.encode(&z, self.n, level, scale)?)
    }
    fn encode_complex(
        &self,
        re: &[f64],
        im: &[f64],
        level: usize,
        scale: f64,
    ) -> Result<ckks::Plaintext> {
        let z: Vec<Complex> = re
            .iter()
            .zip(im)
            .map(|(&a, &b)| Complex::new(a, b))
            .collect();
        Ok(self.params.encode(&z, self.n, level, scale)?)
    }
}

impl Backend for Ckks<'_> {
    type Ct = Ciphertext;
    fn slots(&self) -> usize {
        self.n
    }
    fn level(&self, x: &Ciphertext) -> usize {
        x.level()
    }
    fn rotate_many(&self, x: &Ciphertext, ks: &[isize]) -> Result<Vec<Ciphertext>> {
        let n = self.n as isize;
        if ks.len() == 1 {
            let k = ks[0].rem_euclid(n);
            return Ok(vec![if k == 0 {
                x.clone()
            } else {
                self.eval.rotate(x, k)?
            }]);
        }
        let ks: Vec<isize> = ks.iter().map(|k| k.rem_euclid(n)).collect();
        Ok(self.eval.rotate_hoisted(x, &ks)?)
    }
    fn rotate_sum(&self, terms: &[(&Ciphertext, isize)]) -> Result<Ciphertext> {
        // One ModDown for the whole sum (ckks::Evaluator::rotate_sum).
        let n = self.n as isize;
        let terms: Vec<(&Ciphertext, isize)> =
            terms.iter().map(|&(x, k)| (x, k.rem_euclid(n))).collect();
        Ok(self.eval.rotate_sum(&terms)?)
    }
    fn dot_complex(&self, terms: &[(&Ciphertext, &[f64], &[f64])]) -> Result<Ciphertext> {
        let level = terms[0].0.level();
        if level == 0 {
            return Err(ckks::CkksError::NoLevelLeft.into());
        }
        // Each plaintext at q_ℓ·Δ/s_x: every product at q_ℓ·Δ, the rescaled sum at exactly Δ
        // whatever the inputs' scales (a square's result is not at Δ).
        let q = self.params.q()[level] as f64;
        let delta = self.params.default_scale();
        let pts: Vec<ckks::Plaintext> = terms
            .par_iter()
            .map(|(x, re, im)| self.encode_complex(re, im, level, q * delta / x.scale()))
            .collect::<Result<_>>()?;
        let pairs: Vec<(&Ciphertext, &ckks::Plaintext)> = terms
            .iter()
            .zip(&pts)
            .map(|((x, _, _), p)| (*x, p))
            .collect();
        let mut acc = self.eval.dot_plain(&pairs)?;
        self.eval.rescale_assign(&mut acc)?;
        acc.set_scale(delta);
        Ok(acc)
    }
    fn split_complex(&self, z: &Ciphertext) -> Result<(Ciphertext, Ciphertext)> {
        let c = self.eval.conjugate(z)?;
        let re = self.eval.add(z, &c)?;
        // −i·(z − z̄): multiplying by the monomial −X^{N/2} is exact and costs no level.
        let d = self.eval.sub(z, &c)?;
        let im = self.eval.mul_const(&d, Complex::new(0.0, -1.0), 1.0)?;
        Ok((re, im))
    }
    fn add(&self, a: &Ciphertext, b: &Ciphertext) -> Result<Ciphertext> {
        let l = a.level().min(b.level());
        let mut a = self.eval.drop_to_level(a, l)?;
        let mut b = self.eval.drop_to_level(b, l)?;
        // A paired bootstrap leaves its values at twice the scale (`pack_pair`): lift the other
        // operand by the integer ratio (a product by a small integer: exact, no level).
        let ratio = a.scale() / b.scale();
        if (ratio - 1.0).abs() > 1e-9 {
            let (lo, k) = if ratio > 1.0 {
                (&mut b, ratio)
            } else {
                (&mut a, 1.0 / ratio)
            };
            if (k - k.round()).abs() <= 1e-9 * k {
                *lo = self.eval.mul_const(lo, Complex::from(1.0), k.round())?;
            }
        }
        Ok(self.eval.add(&a, &b)?)
    }
    fn add_plain(&self, a: &Ciphertext, v: &[f64]) -> Result<Ciphertext> {
        let pt = self.encode(v, a.level(), a.scale())?;
        Ok(self.eval.add_plain(a, &pt)?)
    }
    fn poly2(&self, x: &Ciphertext, a: &[f64], b: &[f64], c: &[f64]) -> Result<Ciphertext> {
        let l = x.level();
        if l < 2 {
            return Err(ckks::CkksError::NoLevelLeft.into());
        }
        let q = self.params.q();
        let delta = x.scale();
        // t = a ⊙ x + b at scale q_{ℓ−1}, so that x·t rescaled by q_{ℓ−1} is at scale Δ.
        let s_t = q[l - 1] as f64;
        let pa = self.encode(a, l, s_t * q[l] as f64 / delta)?;
        let mut t = self.eval.mul_plain(x, &pa)?;
        self.eval.rescale_assign(&mut t)?;
        t.set_scale(s_t);
        let t = self.eval.add_plain(&t, &self.encode(b, l - 1, s_t)?)?;
        let xl = self.eval.drop_to_level(x, l - 1)?;
        let mut y = self.eval.mul_relin_rescale(&xl, &t)?;
        y.set_scale(delta);
        Ok(self.eval.add_plain(&y, &self.encode(c, l - 2, delta)?)?)
    }
    fn series(
        &self,
        x: &Ciphertext,
        sr: &ckks::ChebyshevSeries,
        for_product: bool,
    ) -> Result<Ciphertext> {
        let d = ckks::polyeval::depth(sr.degree());
        if x.level() < d {
            return Err(ckks::CkksError::NoLevelLeft.into());
        }
        // At Δ whatever the input's scale (a paired bootstrap's output is at 2Δ).
        let target = if for_product {
            self.params.q()[x.level() - d] as f64
        } else {
            self.params.default_scale()
        };
        let mut y = ckks::polyeval::evaluate_to(self.eval, x, sr, Some(target))?;
        y.set_scale(target);
        Ok(y)
    }
    fn mul(&self, a: &Ciphertext, b: &Ciphertext) -> Result<Ciphertext> {
        let l = a.level().min(b.level());
        let delta = a.scale();
        let a = self.eval.drop_to_level(a, l)?;
        let b = self.eval.drop_to_level(b, l)?;
        let mut y = self.eval.mul_relin_rescale(&a, &b)?;
        y.set_scale(delta);
        Ok(y)
    }
    fn drop_to(&self, x: &Ciphertext, level: usize) -> Result<Ciphertext> {
        Ok(self.eval.drop_to_level(x, level.min(x.level()))?)
    }
    fn square(&self, x: &Ciphertext, shift: &[f64], post: &[f64]) -> Result<Ciphertext> {
        if x.level() == 0 {
            return Err(ckks::CkksError::NoLevelLeft.into());
        }
        let xs = self.add_plain(x, shift)?;
        let y = self.eval.mul_relin_rescale(&xs, &xs)?;
        self.add_plain(&y, post)
    }
    fn bootstrap(&self, x: &Ciphertext, period: usize) -> Result<Ciphertext> {
        let (bss, enc) = self.boot.ok_or_else(|| {
            FheError::BadInput("the plan bootstraps but no bootstrapper was given".into())
        })?;
        // The sparsest circuit whose slot count the period divides (powers of two).
        let bs = bss
            .iter()
            .find(|b| b.config().slots >= period)
            .ok_or_else(|| {
                FheError::BadInput(format!("no bootstrapping circuit for period {period}"))
            })?;
        let mut x = x.clone();
        x.set_slots(bs.config().slots, self.params)?;
        let mut y = bs.bootstrap(self.eval, enc, &x)?;
        y.set_slots(self.n, self.params)?;
        Ok(y)
    }
    fn pack_pair(&self, a: &Ciphertext, b: &Ciphertext) -> Result<Ciphertext> {
        let l = a.level().min(b.level());
        let a = self.eval.drop_to_level(a, l)?;
        // i·b: the monomial X^{N/2} (i in every slot), exact, no level.
        let ib =
            self.eval
                .mul_const(&self.eval.drop_to_level(b, l)?, Complex::new(0.0, 1.0), 1.0)?;
        let mut z = self.eval.add(&a, &ib)?;
        z.set_scale(2.0 * z.scale());
        Ok(z)
    }
    fn pairable(&self, a: &Ciphertext, b: &Ciphertext) -> bool {
        let limit = 1.5 * self.params.default_scale();
        a.scale() <= limit && b.scale() <= limit
    }
    fn boot_level(&self) -> usize {
        self.boot
            .and_then(|(b, _)| b.first())
            .map_or(0, |b| b.output_level())
    }
}
