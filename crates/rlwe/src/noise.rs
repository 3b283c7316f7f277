//! Noise bounds documented in `docs/params.md` (§ Noise), as functions of the
//! parameters. All are high-probability bounds on `‖v‖_∞` (6 standard
//! deviations of a sum of many independent terms, per coefficient), except
//! where marked worst-case. `σ` is the error standard deviation, `h = 2N/3` the
//! expected Hamming weight of a uniform ternary secret.
//!
//! The noise `v` of a ciphertext at level `l` (modulus `Q_l`) encrypting `m` is
//! `[c_0 + c_1·s − ⌊Q_l·m/t⌉]_{Q_l}`, the quantity measured by
//! [`crate::SecretKey::noise_log2`].

use crate::Params;

/// Number of standard deviations taken by every high-probability bound.
pub const TAIL: f64 = 6.0;

/// Fresh secret-key encryption: `v = e`, worst case `‖v‖_∞ ≤ η` for CBD(η).
pub fn fresh_sk(p: &Params) -> f64 {
    p.literal().error.bound() as f64
}

/// Standard deviation of a fresh secret-key encryption's noise: `σ`.
pub fn fresh_sk_sigma(p: &Params) -> f64 {
    p.literal().error.sigma()
}

/// Standard deviation of a fresh public-key encryption's noise
/// `v = e·u + e_1·s + e_0` (u, s uniform ternary): `σ·√(4N/3 + 1)`.
pub fn fresh_pk_sigma(p: &Params) -> f64 {
    p.literal().error.sigma() * (4.0 * p.n() as f64 / 3.0 + 1.0).sqrt()
}

/// Fresh public-key encryption: `6 · σ·√(4N/3 + 1)`.
pub fn fresh_pk(p: &Params) -> f64 {
    TAIL * fresh_pk_sigma(p)
}

/// `ct ± ct` of independent noises with standard deviations `sigma_a`,
/// `sigma_b`: `6·√(σ_a² + σ_b²)` (high probability; the worst case is the sum
/// of the two bounds).
pub fn add(sigma_a: f64, sigma_b: f64) -> f64 {
    TAIL * (sigma_a * sigma_a + sigma_b * sigma_b).sqrt()
}

/// `ct ± pt` on a ciphertext whose noise is at most `v`: `v + 1`, worst case.
/// The phase gains `⌊Q_l·p/t⌉` while the reference message becomes
/// `⌊Q_l·[m ± p]_t/t⌉`; the two roundings differ by less than 1 (a carry of
/// `t` costs `Q_l ≡ 0`).
pub fn add_plain(v: f64) -> f64 {
    v + 1.0
}

/// `ct × pt` for a ciphertext with noise standard deviation `sigma_v` and a
/// plaintext whose (centered) coefficients have standard deviation `sigma_p`:
/// `6·√N·σ_p·√(σ_v² + 1/12) + 1/2`. Because the message is encoded as
/// `⌊Q_l·m/t⌉` (not `⌊Q_l/t⌋·m`), the phase is `(Q_l/t)·m + δ + v` with
/// `|δ| ≤ 1/2`, and carries of `m·p` beyond `t` cost nothing:
/// `(Q_l/t)·t·k = Q_l·k ≡ 0`. (With `Δ = ⌊Q_l/t⌋` scaling they would add
/// `r_t·k`, `r_t = Q_l mod t`, up to `2^{ℓ}·N·‖p‖` for `t = 2^ℓ`.)
pub fn ct_pt(p: &Params, sigma_v: f64, sigma_p: f64) -> f64 {
    TAIL * (p.n() as f64).sqrt() * sigma_p * (sigma_v * sigma_v + 1.0 / 12.0).sqrt() + 0.5
}

/// Modulus switching `Q_l → Q_{l−1}` of a ciphertext with `‖v‖_∞ ≤ v`:
/// `v/q_{l−1} + 6·√(N/18 + 1/12) + 1` (rounding of `c_0`, `c_1` times `(1, s)`,
/// plus the change of `⌊Q m/t⌉`).
pub fn mod_switch(p: &Params, l: usize, v: f64) -> f64 {
    let ql = p.ctx_q().moduli()[l - 1].value() as f64;
    v / ql + TAIL * (p.n() as f64 / 18.0 + 1.0 / 12.0).sqrt() + 1.0
}

/// Standard deviation of the noise added by one hybrid key switch at level `l`
/// with `α` special primes (product `P`) and digits `D_j` (`α` consecutive
/// primes of `Q_l` each, the last one possibly shorter) [HK20 §3, KPZ21 §5]:
///
/// `σ_ks² = N·σ²/(3P²)·Σ_j D_j² + (α²/3)·(1 + 2N/3)`.
///
/// First term: `Σ_j [c]_{D_j}·e_j / P`, each digit uniform on `[0, D_j)`
/// (second moment `D_j²/3`), each key error of variance `σ²`. Second term:
/// ModDown's division by `P` (a floor after the fast conversion from `P`,
/// error in `[0, α)`, second moment `≤ α²/3`) of both parts, times `(1, s)`.
/// Infinite for parameters without special primes (no key switching).
pub fn key_switch_sigma(p: &Params, l: usize) -> f64 {
    let alpha = p.num_special();
    if alpha == 0 {
        return f64::INFINITY;
    }
    let n = p.n() as f64;
    let log_p: f64 = p.literal().p.iter().map(|&q| (q as f64).log2()).sum();
    let digits_sq: f64 = p.ctx_q().moduli()[..l]
        .chunks(alpha)
        .map(|d| {
            let log_d: f64 = d.iter().map(|m| (m.value() as f64).log2()).sum();
            (2.0 * (log_d - log_p)).exp2()
        })
        .sum();
    let sigma = p.literal().error.sigma();
    let a = alpha as f64;
    (n * sigma * sigma / 3.0 * digits_sq + a * a / 3.0 * (1.0 + 2.0 * n / 3.0)).sqrt()
}

/// Additive noise of one hybrid key switch at level `l`: `6·σ_ks`
/// ([`key_switch_sigma`]).
pub fn key_switch(p: &Params, l: usize) -> f64 {
    TAIL * key_switch_sigma(p, l)
}

/// Standard deviation of the BFV tensor product's noise (before
/// relinearization), for two independent ciphertexts with noise standard
/// deviations `sigma_a`, `sigma_b` and messages uniform mod `t`
/// [FV12 §4 Lemma 2; KPZ21 §4 (the RNS version computes the same exact
/// `⌊t/Q_l·(a ⊗ b)⌉`, HPS19 §4)].
///
/// Write the integer phase `c_a(s) = (Q/t)·m_a + e_a + Q·k_a` with `m_a`
/// centered (`E[m²] = t²/12`), `e_a = v_a + δ_a` (`|δ_a| ≤ 1/2`, so
/// `σ_e² = σ_v² + 1/12`) and `k_a` an integer polynomial, `k_a ≈ c_1 s/Q`
/// plus a rounding, so `σ_k² = N/18 + 1/6` (`c_1` uniform, `h = 2N/3`). Then
/// `(t/Q)·c_a(s)·c_b(s) ≡ (Q/t)·[m_a m_b]_t + v_⊗ (mod Q)` with
///
/// `v_⊗ = t·(e_a k_b + e_b k_a) + m_a e_b + m_b e_a + t·e_a e_b/Q`
///
/// (the terms `Q·(m_a k_b + m_b k_a)`, `t·Q·k_a k_b` and the carries of `m_a m_b`
/// vanish mod `Q`), plus the rounding of the three parts, `r_0 + r_1 s + r_2 s²`
/// (`|r_i| ≤ 1/2`; a coefficient of `s²` has second moment `8N/9`, the pairs
/// `s_j s_{i−j}` and `s_{i−j} s_j` being equal). For `e` independent of `s`,
/// `e_a k_b` has variance `N·σ_e²·σ_k²`; a noise part of the form `f·s` (the
/// `e_1·s` of a public-key encryption, ModDown's `ε_1·s`) shares `s` with
/// `k_b ≈ (c_1/Q)·s`, and the product `f·(c_1/Q)·s²` has twice that variance
/// (the `8N/9` moment again). The bound takes that worst case for all of `e`:
///
/// `σ_⊗² = N·(2t²·σ_k² + t²/12)·(σ_ea² + σ_eb²) + 1/12 + N/18 + 2N²/27`
///
/// (`t·e_a e_b/Q` is below `2^{−40}` of the first term for every preset and
/// is dropped).
pub fn ct_ct_tensor_sigma(p: &Params, sigma_a: f64, sigma_b: f64) -> f64 {
    let n = p.n() as f64;
    let t = p.t().value() as f64;
    let ea2 = sigma_a * sigma_a + 1.0 / 12.0;
    let eb2 = sigma_b * sigma_b + 1.0 / 12.0;
    let k2 = n / 18.0 + 1.0 / 6.0;
    (n * (2.0 * t * t * k2 + t * t / 12.0) * (ea2 + eb2)
        + 1.0 / 12.0
        + n / 18.0
        + 2.0 * n * n / 27.0)
        .sqrt()
}

/// BFV `ct × ct` with relinearization at level `l`:
/// `6·σ_⊗ + 1/2 + 6·σ_ks` ([`ct_ct_tensor_sigma`], [`key_switch_sigma`]; the
/// `1/2` is the rounding of the reference `⌊Q_l·[m_a m_b]_t/t⌉`). The key switch
/// of the `c_2` part replaces `c_2·s²` by `u_0 + u_1·s` up to its additive error.
pub fn ct_ct(p: &Params, l: usize, sigma_a: f64, sigma_b: f64) -> f64 {
    TAIL * ct_ct_tensor_sigma(p, sigma_a, sigma_b) + 0.5 + key_switch(p, l)
}

/// Noise flooding with width `b` (uniform on `[−2^b, 2^b)`) of a ciphertext
/// with `‖v‖_∞ ≤ v`: worst case `2^b + v + 6·σ_pk` (the added fresh public-key
/// encryption of zero). The flooding term dominates, so the measured noise is
/// within `2^b·(1 ± 2^{−10})` for any `N ≥ 1024` (the maximum of `N` uniform
/// samples).
pub fn flood(p: &Params, b: u32, v: f64) -> f64 {
    (b as f64).exp2() + v + fresh_pk(p)
}

/// LWE extraction: the noise of coefficient `i` is unchanged (`b + ⟨a, s⟩` is
/// exactly coefficient `i` of the phase).
pub fn lwe_extract(v: f64) -> f64 {
    v
}

/// PackLWEs of `n = 2^ℓ` LWE ciphertexts at level `l`, each with noise standard
/// deviation `sigma_in`, followed by the field trace [CDKS20 §3.2, Alg. 2]:
/// `6·√(σ_in² + (N² − 1)/3 · σ_ks²)`.
///
/// Inputs are pre-scaled by `N^{-1}`; the procedure multiplies the packed
/// coefficients by `n` (tree) and `N/n` (trace), so the input noise comes back
/// unscaled. At every packed coefficient, each tree node and trace step maps
/// the error `E` of the relevant half to `2E` (the automorphism fixes those
/// coefficients up to sign) and adds one key switch error: variance
/// `W ← 4W + σ_ks²`, over `ℓ + log2(N/n) = log2 N` steps, so
/// `W = (4^{log N} − 1)/3 · σ_ks² = (N² − 1)/3 · σ_ks²`, independent of `n`.
pub fn pack_lwes(p: &Params, l: usize, sigma_in: f64) -> f64 {
    let n = p.n() as f64;
    let ks = key_switch_sigma(p, l);
    TAIL * (sigma_in * sigma_in + (n * n - 1.0) / 3.0 * ks * ks).sqrt()
}

/// Largest noise `‖v‖_∞` that still decrypts at level `l`: `(Q_l/t − r_t)/2`.
pub fn capacity(p: &Params, l: usize) -> f64 {
    ((p.log_q(l) - (p.t().value() as f64).log2()).exp2() - p.q_mod_t(l) as f64) / 2.0
}
