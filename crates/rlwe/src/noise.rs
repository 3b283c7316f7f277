//! Noise bounds documented in `docs/params.md` (§ Noise), as functions of the
//! parameters. All are high-probability bounds on `‖v‖_∞` (6 standard
//! deviations of a sum of many independent terms, per coefficient), except
//! where marked worst-case. `σ` is the error standard deviation, `h = 2N/3` the
//! expected Hamming weight of a uniform ternary secret.

use crate::Params;

/// Fresh secret-key encryption: `v = e`, worst case `‖v‖_∞ ≤ η` for CBD(η).
pub fn fresh_sk(p: &Params) -> f64 {
    p.literal().error.bound() as f64
}

/// Standard deviation of a fresh public-key encryption's noise
/// `v = e·u + e_1·s + e_0` (u, s uniform ternary): `σ·√(4N/3 + 1)`.
pub fn fresh_pk_sigma(p: &Params) -> f64 {
    p.literal().error.sigma() * (4.0 * p.n() as f64 / 3.0 + 1.0).sqrt()
}

/// Fresh public-key encryption: `6 · σ·√(4N/3 + 1)`.
pub fn fresh_pk(p: &Params) -> f64 {
    6.0 * fresh_pk_sigma(p)
}

/// `ct × pt` for a ciphertext with noise standard deviation `sigma_v` and a
/// plaintext whose (centered) coefficients have standard deviation `sigma_p`:
/// `6·√N·σ_p·√(σ_v² + 1/12) + 1/2`. Because the message is encoded as
/// `⌊Q_l·m/t⌉` (not `⌊Q_l/t⌋·m`), the phase is `(Q_l/t)·m + δ + v` with
/// `|δ| ≤ 1/2`, and carries of `m·p` beyond `t` cost nothing:
/// `(Q_l/t)·t·k = Q_l·k ≡ 0`. (With `Δ = ⌊Q_l/t⌋` scaling they would add
/// `r_t·k`, `r_t = Q_l mod t`, up to `2^{ℓ}·N·‖p‖` for `t = 2^ℓ`.)
pub fn ct_pt(p: &Params, sigma_v: f64, sigma_p: f64) -> f64 {
    6.0 * (p.n() as f64).sqrt() * sigma_p * (sigma_v * sigma_v + 1.0 / 12.0).sqrt() + 0.5
}

/// Modulus switching `Q_l → Q_{l−1}` of a ciphertext with `‖v‖_∞ ≤ v`:
/// `v/q_{l−1} + 6·√(N/18 + 1/12) + 1` (rounding of `c_0`, `c_1` times `(1, s)`,
/// plus the change of `⌊Q m/t⌉`).
pub fn mod_switch(p: &Params, l: usize, v: f64) -> f64 {
    let ql = p.ctx_q().moduli()[l - 1].value() as f64;
    v / ql + 6.0 * (p.n() as f64 / 18.0 + 1.0 / 12.0).sqrt() + 1.0
}

/// Additive noise of one hybrid key switch at level `l` with `α` special
/// primes: `6·(√(d·N/3)·q_max^α·σ / P + √(N/18 + 1/12)) + α` where `d` is the
/// number of digits at that level and `q_max^α` bounds a digit modulus.
pub fn key_switch(p: &Params, l: usize) -> f64 {
    let alpha = p.num_special();
    let n = p.n() as f64;
    let digits = l.div_ceil(alpha) as f64;
    let qmax: f64 = p.ctx_q().moduli()[..l]
        .iter()
        .map(|m| (m.value() as f64).log2())
        .fold(0.0, f64::max)
        * alpha as f64;
    let log_p: f64 = p.literal().p.iter().map(|&q| (q as f64).log2()).sum();
    let sigma = p.literal().error.sigma();
    6.0 * ((digits * n / 3.0).sqrt() * sigma * (qmax - log_p).exp2()
        + (n / 18.0 + 1.0 / 12.0).sqrt())
        + alpha as f64
}

/// Largest noise `‖v‖_∞` that still decrypts at level `l`: `(Q_l/t − r_t)/2`.
pub fn capacity(p: &Params, l: usize) -> f64 {
    ((p.log_q(l) - (p.t().value() as f64).log2()).exp2() - p.q_mod_t(l) as f64) / 2.0
}
