//! Hybrid RNS key switching with special primes `P` [HK20 §3 / Lattigo's
//! `rlwe.Evaluator.GadgetProduct`, "RNS-decomposition + special modulus"].
//!
//! Notation: `Q = q_0…q_{L-1}`, `P = p_0…p_{α-1}` (`α` = number of special
//! primes). The `Q` primes are cut into digits `D_j = {q_{jα}, …, q_{jα+α-1}}`.
//! A key switching key from `s'` to `s` is, for each digit `j`,
//! `(b_j, a_j) ∈ R_{QP}²` with `b_j = −a_j·s + e_j + P·g_j·s'`, where `g_j` is the
//! CRT idempotent of `D_j` (`≡ 1 mod q ∈ D_j`, `≡ 0` mod the other `Q` primes).
//!
//! To switch `d ∈ R_{Q_l}` (any level `l ≤ L`): `d_j = [d]_{D_j ∩ Q_l}` is lifted
//! to `Q_l ∪ P` by fast base conversion (ModUp), the sums
//! `(Σ d_j b_j, Σ d_j a_j)` are formed over `Q_l ∪ P`, and divided by `P` with
//! rounding (ModDown): the result `(u_0, u_1) ∈ R_{Q_l}²` satisfies
//! `u_0 + u_1·s = d·s' + e_ks` with `‖e_ks‖ ≲ (dnum·α·‖D_j‖·N·B_e)/P + N·h/2`
//! (see docs/params.md). The key works at every level because `g_j` restricted
//! to `Q_l` is again the CRT idempotent of `D_j ∩ Q_l`.
//!
//! This module only needs two RNS contexts (`Q` and `Q ∪ P`), so CKKS uses it
//! unchanged: build a [`KeySwitcher`], generate keys with
//! [`KeySwitchingKey::generate`] from secret polynomials in NTT form over `QP`,
//! then call [`KeySwitcher::switch`].

use crate::RlweError;
use math::sample::{cbd, poly_from_i128};
use math::{BaseConverter, ConversionMode, Modulus, Poly, Representation, RnsContext};
use rand_core::{CryptoRng, RngCore};
use std::sync::Arc;

/// Precomputed base converters for ModUp/ModDown over a `Q` chain and `P`.
pub struct KeySwitcher {
    ctx_q: Arc<RnsContext>,
    ctx_qp: Arc<RnsContext>,
    alpha: usize,
    /// `mod_up[j][len-1]`: from the first `len` primes of digit `j` to all
    /// other `Q` primes (ascending) followed by `P`.
    mod_up: Vec<Vec<BaseConverter>>,
    /// `P → Q` (all `Q` primes).
    mod_down: BaseConverter,
    /// `P^{-1} mod q_i` with Shoup constants.
    p_inv: Vec<(u64, u64)>,
    /// `P mod q_i`.
    p_mod_q: Vec<u64>,
}

impl KeySwitcher {
    /// `ctx_qp` must list the primes of `ctx_q` first, then at least one special prime.
    pub fn new(ctx_q: Arc<RnsContext>, ctx_qp: Arc<RnsContext>) -> Self {
        let l = ctx_q.len();
        let alpha = ctx_qp.len() - l;
        assert!(alpha >= 1 && ctx_qp.moduli()[..l] == *ctx_q.moduli());
        let qm = ctx_q.moduli();
        let pm = &ctx_qp.moduli()[l..];
        let dnum = l.div_ceil(alpha);
        let mut mod_up = Vec::with_capacity(dnum);
        for j in 0..dnum {
            let start = j * alpha;
            let mut v = Vec::new();
            for len in 1..=alpha.min(l - start) {
                let from = &qm[start..start + len];
                let to: Vec<Modulus> = qm
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| *i < start || *i >= start + len)
                    .map(|(_, m)| *m)
                    .chain(pm.iter().copied())
                    .collect();
                v.push(BaseConverter::new(from, &to));
            }
            mod_up.push(v);
        }
        let mod_down = BaseConverter::new(pm, qm);
        let mut p_inv = Vec::new();
        let mut p_mod_q = Vec::new();
        for m in qm {
            let pv = pm.iter().fold(1u64, |a, p| m.mul(a, m.reduce(p.value())));
            let inv = m.inv(pv).expect("distinct primes");
            p_mod_q.push(pv);
            p_inv.push((inv, m.shoup(inv)));
        }
        Self {
            ctx_q,
            ctx_qp,
            alpha,
            mod_up,
            mod_down,
            p_inv,
            p_mod_q,
        }
    }

    /// Number of special primes `α` (also the digit size).
    pub fn alpha(&self) -> usize {
        self.alpha
    }
    /// Number of digits at the top level.
    pub fn dnum(&self) -> usize {
        self.mod_up.len()
    }
    pub fn ctx_q(&self) -> &Arc<RnsContext> {
        &self.ctx_q
    }
    pub fn ctx_qp(&self) -> &Arc<RnsContext> {
        &self.ctx_qp
    }

    /// Switches `d` (over `Q_l`, either representation) with `key`; returns
    /// `(u_0, u_1)` over `Q_l` in NTT form with `u_0 + u_1·s ≈ d·s'`.
    pub fn switch(&self, d: &Poly, key: &KeySwitchingKey) -> Result<(Poly, Poly), RlweError> {
        let dec = self.decompose(d)?;
        self.switch_decomposed(&dec, key, None)
    }

    /// ModUp of `d` (over `Q_l`, either representation): every digit lifted to `Q_l ∪ P`, NTT
    /// form. One decomposition serves any number of key switches of `d` and of its images under
    /// automorphisms ([`KeySwitcher::switch_decomposed`]: hoisting).
    pub fn decompose(&self, d: &Poly) -> Result<Decomposed, RlweError> {
        let n = self.ctx_q.n();
        let l = d.num_moduli();
        let big_l = self.ctx_q.len();
        if l > big_l || **d.context() != *self.ctx_q {
            return Err(RlweError::ParamsMismatch);
        }
        // Over its own digit's primes the lifted digit is `d` itself: when `d` arrives in NTT
        // form those residues are used as they are, saving one forward NTT per prime of Q_l.
        let d_ntt = d.representation() == Representation::Ntt;
        let mut dc = d.clone();
        dc.ntt_inverse();
        let k = self.alpha;
        let ext = l + k; // primes of Q_l ∪ P, in that order
        let dnum_l = l.div_ceil(k);
        // y_j = d_j · (D_j/q)^{-1} for every digit (first half of ModUp)
        let mut y = vec![0u64; l * n];
        for j in 0..dnum_l {
            let (start, len) = (j * k, k.min(l - j * k));
            let r = start * n..(start + len) * n;
            self.mod_up[j][len - 1].scale_inputs(n, &dc.data()[r.clone()], &mut y[r]);
        }
        // lifted[(j·ext + e)·n ..]: digit j at prime e of Q_l ∪ P, NTT form.
        let mut lifted = vec![0u64; dnum_l * ext * n];
        for e in 0..ext {
            let qi = if e < l { e } else { big_l + (e - l) };
            let plan = self.ctx_qp.plan(qi);
            for j in 0..dnum_l {
                let (start, len) = (j * k, k.min(l - j * k));
                let x = &mut lifted[(j * ext + e) * n..(j * ext + e + 1) * n];
                if e >= start && e < start + len {
                    if d_ntt {
                        x.copy_from_slice(d.residue(e));
                    } else {
                        x.copy_from_slice(dc.residue(e));
                        plan.forward(x);
                    }
                } else {
                    // index of this prime among the converter's targets (Q \ D_j, then P)
                    let target = if e < l {
                        if e < start {
                            e
                        } else {
                            e - len
                        }
                    } else {
                        big_l - len + (e - l)
                    };
                    self.mod_up[j][len - 1].convert_scaled_to(
                        n,
                        &y[start * n..(start + len) * n],
                        target,
                        x,
                    );
                    plan.forward(x);
                }
            }
        }
        Ok(Decomposed { l, lifted })
    }

    /// The key switch of a decomposed `d` with `key`, or, given the NTT-slot permutation of an
    /// automorphism σ ([`math::RnsContext::automorphism_permutation`]), of σ(d): each lifted
    /// digit is permuted before its product. σ commutes with the lift up to multiples of the
    /// digit's modulus D_j per coefficient (the base conversion of a negated coefficient), which
    /// the key's `g_j·P` factor annihilates mod `Q·P`: the same error class as ModUp's own.
    pub fn switch_decomposed(
        &self,
        dec: &Decomposed,
        key: &KeySwitchingKey,
        perm: Option<&[u32]>,
    ) -> Result<(Poly, Poly), RlweError> {
        let n = self.ctx_q.n();
        let big_l = self.ctx_q.len();
        let l = dec.l;
        if key.digits.len() != self.dnum() {
            return Err(RlweError::ParamsMismatch);
        }
        let k = self.alpha;
        let ext = l + k;
        let dnum_l = l.div_ceil(k);
        let mut acc0 = vec![0u64; ext * n];
        let mut acc1 = vec![0u64; ext * n];
        let mut permuted = vec![0u64; if perm.is_some() { dnum_l * n } else { 0 }];
        // Prime-outer loop: per prime, one pass over every digit and both key halves with one
        // reduction per output coefficient (`math::simd::dot_pair`).
        for e in 0..ext {
            let qi = if e < l { e } else { big_l + (e - l) };
            let src = |j: usize| &dec.lifted[(j * ext + e) * n..(j * ext + e + 1) * n];
            let x: Vec<&[u64]> = match perm {
                None => (0..dnum_l).map(src).collect(),
                Some(p) => {
                    for (j, d) in permuted.chunks_exact_mut(n).enumerate() {
                        let s = src(j);
                        for (d, &pi) in d.iter_mut().zip(p) {
                            *d = s[pi as usize];
                        }
                    }
                    permuted.chunks_exact(n).collect()
                }
            };
            let b: Vec<&[u64]> = key.digits[..dnum_l]
                .iter()
                .map(|(b, _)| b.residue(qi))
                .collect();
            let a: Vec<&[u64]> = key.digits[..dnum_l]
                .iter()
                .map(|(_, a)| a.residue(qi))
                .collect();
            let m = self.ctx_qp.moduli()[qi];
            math::simd::dot_pair(
                &m,
                &mut acc0[e * n..(e + 1) * n],
                &mut acc1[e * n..(e + 1) * n],
                &x,
                &b,
                &a,
            );
        }
        let u0 = self.mod_down(&mut acc0, l)?;
        let u1 = self.mod_down(&mut acc1, l)?;
        Ok((u0, u1))
    }

    /// `(x_Q − Conv_{P→Q}(x_P)) · P^{-1}` over `Q_l`; `x` is NTT form over `Q_l ∪ P`.
    fn mod_down(&self, x: &mut [u64], l: usize) -> Result<Poly, RlweError> {
        let n = self.ctx_q.n();
        let big_l = self.ctx_q.len();
        let k = self.alpha;
        for pi in 0..k {
            self.ctx_qp
                .plan(big_l + pi)
                .inverse(&mut x[(l + pi) * n..(l + pi + 1) * n]);
        }
        let mut conv = vec![0u64; big_l * n];
        self.mod_down
            .convert(n, &x[l * n..(l + k) * n], &mut conv, ConversionMode::Approx);
        let mut out = Poly::zero(&self.ctx_q, l, Representation::Ntt);
        for i in 0..l {
            let m = self.ctx_q.moduli()[i];
            let c = &mut conv[i * n..(i + 1) * n];
            self.ctx_q.plan(i).forward(c);
            let (w, ws) = self.p_inv[i];
            // (x − c)·P⁻¹ mod q_i, vectorized (x, c < q_i).
            let o = out.residue_mut(i);
            o.copy_from_slice(&x[i * n..(i + 1) * n]);
            math::simd::sub_mul_add(&m, o, c, w, ws, 0);
        }
        Ok(out)
    }

    /// `P mod q_i` for `i < L`.
    pub fn p_mod_q(&self) -> &[u64] {
        &self.p_mod_q
    }
}

/// A polynomial over `Q_l` after ModUp: its digits lifted to `Q_l ∪ P`, NTT form
/// ([`KeySwitcher::decompose`]).
pub struct Decomposed {
    l: usize,
    lifted: Vec<u64>,
}

/// A key switching key (one `(b_j, a_j)` pair over `Q ∪ P`, NTT form, per digit).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct KeySwitchingKey {
    pub(crate) digits: Vec<(Poly, Poly)>,
    /// `a_j` is the expansion of this seed with ChaCha20 stream `j`, so the key
    /// travels as the `b_j` and 32 bytes.
    pub(crate) seed: [u8; 32],
}

impl KeySwitchingKey {
    /// Key from `s_from` to `s_to`, both NTT form over all of `Q ∪ P`
    /// (`ks.ctx_qp()`), errors from `CBD(eta)`.
    pub fn generate<R: RngCore + CryptoRng + ?Sized>(
        ks: &KeySwitcher,
        s_to: &Poly,
        s_from: &Poly,
        eta: u32,
        rng: &mut R,
    ) -> Result<Self, RlweError> {
        let ctx = &ks.ctx_qp;
        let all = ctx.len();
        for s in [s_to, s_from] {
            if **s.context() != **ctx
                || s.num_moduli() != all
                || s.representation() != Representation::Ntt
            {
                return Err(RlweError::ParamsMismatch);
            }
        }
        let n = ctx.n();
        let big_l = ks.ctx_q.len();
        let mut digits = Vec::with_capacity(ks.dnum());
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        for j in 0..ks.dnum() {
            let a = math::sample::expand_seed_stream(ctx, all, &seed, j as u64);
            let e: Vec<i128> = cbd(n, eta, rng).into_iter().map(|x| x as i128).collect();
            let mut b = poly_from_i128(ctx, all, &e);
            b.ntt_forward();
            let mut as_ = a.clone();
            as_.mul_assign(s_to)?;
            b.sub_assign(&as_)?;
            // + P·g_j·s_from: non-zero only on the primes of digit j, where it is (P mod q)·s_from.
            for i in j * ks.alpha..((j + 1) * ks.alpha).min(big_l) {
                let m = ctx.moduli()[i];
                let pm = ks.p_mod_q[i];
                let ps = m.shoup(pm);
                let sf = &s_from.data()[i * n..(i + 1) * n];
                for (bv, &sv) in b.residue_mut(i).iter_mut().zip(sf) {
                    *bv = m.add(*bv, m.mul_shoup(sv, pm, ps));
                }
            }
            digits.push((b, a));
        }
        Ok(Self { digits, seed })
    }

    pub fn num_digits(&self) -> usize {
        self.digits.len()
    }
}
