//! Noise bounds, the flooding width and the response modulus (derivation: docs/security.md).
//!
//! Conventions: a ciphertext (c₀, c₁) mod Q decrypts as c₀ + c₁·s = (Q/t)·m + ν + Q·I over the
//! reals, ν the noise. All tail bounds are for failure probability ≤ 2^-64 per coefficient.

use super::params::{HeParamsId, ERROR_SIGMA};
use crate::LinearError;

/// z such that a sub-Gaussian X with parameter σ has P(|X| > zσ) ≤ 2·e^{-z²/2} ≤ 2^-64.
pub const TAIL_Z: f64 = 9.5;
/// Largest |z| the flooding sampler can output: Box–Muller with uniforms ≥ 2^-54 gives
/// |z| ≤ √(2·54·ln 2) < 8.66.
pub const FLOOD_Z_MAX: f64 = 8.66;

/// Public facts about a layer's response that fix the noise.
#[derive(Clone, Copy, Debug)]
pub struct NoiseInputs {
    pub ell: u32,
    pub weight_bits: u32,
    /// Maximum number of weights that meet in one output (C/groups·kh·kw, or FC inputs).
    pub taps: usize,
    /// Outputs returned for the layer (all kept coefficients of all response ciphertexts).
    pub outputs: usize,
    /// Statistical security of flooding, in bits (≥ 40).
    pub flood_bits: u32,
    /// Response ciphertexts packed per returned ciphertext (1: no packing; a power of two).
    pub pack: usize,
    /// Bound on the query's rounding |δ| from dropped low bits (0: none; `super::query`).
    pub query_drop: f64,
}

/// Bound on the noise one hybrid key switch adds on a packing set: with digits d_j < q_j ≤ 2^60
/// (one prime per digit, exact), key errors e_j ~ CBD, special prime P ≥ 2^{p_min}
/// ([`HeParamsId::special_log2_min`]): |Σ_j d_j·e_j / P| ≤ z·σ·√(dnum·N)·2^{60 − p_min}, plus
/// the mod-down rounding τ₀ + τ₁·s [HK20 §3; docs/security.md].
pub fn key_switch_bound(p: HeParamsId) -> f64 {
    let n = p.n() as f64;
    let dnum = p.prime_bits().len() as f64;
    let digit_bits = *p.prime_bits().iter().max().expect("non-empty") as f64;
    TAIL_Z * ERROR_SIGMA * (dnum * n).sqrt() * 2f64.powf(digit_bits - p.special_log2_min())
        + 0.5
        + TAIL_Z * (n / 18.0).sqrt()
}

/// The flooding width and the response modulus 2^k for one layer on one parameter set.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ResponseNoise {
    /// Bound on the weight-dependent noise plus the re-randomization noise that flooding hides.
    pub hide_bound: f64,
    /// Standard deviation of the Gaussian flooding noise.
    pub flood_sigma: f64,
    /// log₂ of the bound on the total noise at modulus Q.
    pub total_log2: f64,
    /// Response modulus bits k (c₁ of every response is sent mod 2^k).
    pub response_bits: u32,
    /// Bits b ≤ k of each kept c₀ value: c₀ is switched to 2^b, the client scales it back by
    /// 2^{k−b}; the extra rounding 2^{k−b−1} stays inside the decryption margin.
    pub c0_bits: u32,
}

/// Computes the flooding width and the response modulus, or why no k works.
pub fn response_noise(p: HeParamsId, inp: &NoiseInputs) -> Result<ResponseNoise, LinearError> {
    let n = p.n() as f64;
    let log_q = p.log_q()?;
    let w = 2f64.powi(inp.weight_bits as i32);
    let taps = inp.taps as f64;
    // Input noise v = e + ε + δ: e ~ CBD (sub-Gaussian σ), |ε| ≤ 1 (rounding of the client's and
    // the server's Δ-encodings), |δ| ≤ query_drop (the query's dropped low bits). E = v·w per
    // output: sub-Gaussian part ‖w‖₂·σ·z, bounded part ‖w‖₁·(1 + query_drop).
    let b_e = w * (TAIL_Z * ERROR_SIGMA * taps.sqrt() + taps * (1.0 + inp.query_drop));
    // Re-randomization by a public-key encryption of zero: e_pk·u + e₁ + e₂·s with u, s ternary.
    let b_pk = TAIL_Z * ERROR_SIGMA * (2.0 * n.sqrt() + 1.0);
    // Packing G responses by log₂ G levels of merges: each level doubles the key-switching noise
    // already there and adds one switch, so the packed ciphertext carries ≤ (G − 1)·B_ks.
    let b_pack = if inp.pack > 1 {
        (inp.pack as f64 - 1.0) * key_switch_bound(p)
    } else {
        0.0
    };
    let hide = b_e + b_pk + b_pack;
    // Gaussian flooding: KL(P + δ ‖ P) = Σ δᵢ²/(2σ_f²) over all returned coefficients, so
    // SD ≤ √(KL/2) ≤ √outputs · hide / (2σ_f) ≤ 2^-λ with σ_f = 2^{λ-1}·√outputs·hide.
    let sigma = 2f64.powi(inp.flood_bits as i32 - 1) * (inp.outputs as f64).sqrt() * hide;
    // Total at modulus Q: flooding (sampler bounded by FLOOD_Z_MAX·σ_f) + hidden terms + ½ (mask).
    let total = FLOOD_Z_MAX * sigma + hide + 0.5;
    let total_log2 = total.log2();
    // After switching to 2^k (through the RNS chain, then from q₀ to 2^k) the noise is
    // ν·2^k/Q + τ with |τ| ≤ 2·B_ms, B_ms = ½ + z·√(N/18) (rounding τ₀ + τ₁·s, s ternary).
    // Decryption is exact when that is < 2^{k-ℓ-1}.
    let b_ms = 2.0 * (0.5 + TAIL_Z * (n / 18.0).sqrt());
    let headroom = 2f64.powf(-(inp.ell as f64) - 1.0) - 2f64.powf(total_log2 - log_q);
    let needed = total_log2 + inp.ell as f64 + 1.0;
    let q0_bits = p.prime_bits()[0];
    if headroom <= 0.0 {
        return Err(LinearError::NoParameters {
            ell: inp.ell,
            weight_bits: inp.weight_bits,
            needed_bits: needed,
            available_bits: log_q,
        });
    }
    let k = (b_ms / headroom).log2().ceil().max(inp.ell as f64 + 2.0) as u32;
    // The chain ends at q₀; k must stay below it so the last switch shrinks (and τ stays ≤ 2·B_ms).
    if k + 2 > q0_bits {
        return Err(LinearError::NoParameters {
            ell: inp.ell,
            weight_bits: inp.weight_bits,
            needed_bits: needed + (k + 2 - q0_bits) as f64,
            available_bits: log_q,
        });
    }
    // c₀ at b = ℓ + d bits [docs/security.md, "Response size"]: rounding c₀ to 2^b adds
    // |ε| ≤ 2^{k−b−1} at modulus 2^k, so decryption stays exact while
    // ν·2^k/Q + 2·B_ms + 2^{k−b−1} < 2^{k−ℓ−1}, i.e. headroom − 2^{−b−1} ≥ 2·B_ms / 2^k. The
    // smallest such b (k fixed: c₁ has N values per response, c₀ at most N).
    let kf = 2f64.powi(k as i32);
    let c0_bits = (inp.ell + 1..k)
        .find(|&b| headroom - 2f64.powf(-(b as f64) - 1.0) >= b_ms / kf)
        .unwrap_or(k);
    Ok(ResponseNoise {
        hide_bound: hide,
        flood_sigma: sigma,
        total_log2,
        response_bits: k,
        c0_bits,
    })
}
