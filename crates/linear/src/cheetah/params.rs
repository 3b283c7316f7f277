//! The RLWE parameter sets Cheetah's linear layers may use: all within the
//! HomomorphicEncryption.org 128-bit bound for uniform ternary secrets
//! (log₂ Q ≤ 109 at N = 4096, ≤ 218 at N = 8192), plaintext modulus t = 2^ℓ (the share ring).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use math::RnsContext;
use serde::{Deserialize, Serialize};

use crate::LinearError;

/// A named secure parameter set (never edited once released; add a new one instead).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum HeParamsId {
    /// N = 4096, Q = q₀·q₁ with a 55-bit and a 54-bit NTT prime (log₂ Q < 109): Cheetah's own set
    /// (`rlwe::presets::cheetah_n4096_q55_54_t2l`).
    N4096Q109,
    /// N = 8192, three 55-bit NTT primes (log₂ Q < 165): `rlwe::presets::cheetah_n8192_q165_t2l`.
    N8192Q165,
    /// N = 8192, two 55-bit and two 54-bit NTT primes (log₂ Q < 218):
    /// `rlwe::presets::cheetah_n8192_q218_t2l`.
    N8192Q218,
    /// N = 8192, Q = three 60-bit primes plus a 38-bit special prime P for hybrid key switching
    /// (log₂ QP ≤ 218): `rlwe::presets::bfv_n8192_q180_t2l`. Packs responses (Galois keys).
    N8192Q180P38,
    /// N = 8192, Q = two 60-bit primes plus a 60-bit special prime P (log₂ QP ≤ 180):
    /// `rlwe::presets::bfv_n8192_q120_p60_t2l`. Packs responses; a key switch costs two digits
    /// (not three) and adds ≈ 2^22 times less noise than on N8192Q180P38 (P as large as a digit).
    N8192Q120P60,
}

/// Any ℓ valid on every set: [`HeParamsId::context`] takes Q from its parameters.
const CONTEXT_ELL: u32 = 20;

/// Error distribution of every fresh RLWE sample: centered binomial with η = 21
/// (σ² = 10.5, support bounded by 21), sub-Gaussian with variance proxy σ².
pub const CBD_ETA: u32 = 21;
/// √10.5: the error's standard deviation (and sub-Gaussian parameter).
pub const ERROR_SIGMA: f64 = 3.240_370_349_203_93;

impl HeParamsId {
    pub const ALL: [HeParamsId; 5] = [
        HeParamsId::N4096Q109,
        HeParamsId::N8192Q165,
        HeParamsId::N8192Q218,
        HeParamsId::N8192Q180P38,
        HeParamsId::N8192Q120P60,
    ];

    pub fn name(self) -> &'static str {
        match self {
            HeParamsId::N4096Q109 => "N4096Q109",
            HeParamsId::N8192Q165 => "N8192Q165",
            HeParamsId::N8192Q218 => "N8192Q218",
            HeParamsId::N8192Q180P38 => "N8192Q180P38",
            HeParamsId::N8192Q120P60 => "N8192Q120P60",
        }
    }

    /// Byte tag on the wire.
    pub fn tag(self) -> u8 {
        match self {
            HeParamsId::N4096Q109 => 1,
            HeParamsId::N8192Q165 => 2,
            HeParamsId::N8192Q218 => 3,
            HeParamsId::N8192Q180P38 => 4,
            HeParamsId::N8192Q120P60 => 5,
        }
    }

    pub fn from_tag(tag: u8) -> Option<HeParamsId> {
        HeParamsId::ALL.into_iter().find(|p| p.tag() == tag)
    }

    pub fn n(self) -> usize {
        match self {
            HeParamsId::N4096Q109 => 4096,
            _ => 8192,
        }
    }

    /// Bit sizes of the primes, in the order of the RNS basis.
    pub fn prime_bits(self) -> &'static [u32] {
        match self {
            HeParamsId::N4096Q109 => &[55, 54],
            HeParamsId::N8192Q165 => &[55, 55, 55],
            HeParamsId::N8192Q218 => &[55, 55, 54, 54],
            HeParamsId::N8192Q180P38 => &[60, 60, 60],
            HeParamsId::N8192Q120P60 => &[60, 60],
        }
    }

    /// The HomomorphicEncryption.org bound on log₂ Q for 128-bit security (ternary secret).
    pub fn security_bound_bits(self) -> u32 {
        match self.n() {
            4096 => 109,
            _ => 218,
        }
    }

    /// Bits on the wire per coefficient of a full-modulus polynomial (residues packed per prime).
    pub fn wire_bits(self) -> u32 {
        self.prime_bits().iter().sum()
    }

    /// Whether the set has special primes (hybrid key switching, hence packed responses).
    pub fn can_pack(self) -> bool {
        matches!(self, HeParamsId::N8192Q180P38 | HeParamsId::N8192Q120P60)
    }

    /// log₂ of a lower bound on the special modulus P (key-switching sets; 0 otherwise).
    pub fn special_log2_min(self) -> f64 {
        match self {
            HeParamsId::N8192Q180P38 => 37.0,
            HeParamsId::N8192Q120P60 => 59.0,
            _ => 0.0,
        }
    }

    /// The `rlwe` parameters of the set for t = 2^ℓ (checked by `rlwe`, 128-bit by the
    /// HomomorphicEncryption.org table; cached): keys, Δ-encoding, re-randomization, flooding and
    /// the compact response all come from them.
    pub fn rlwe_params(self, ell: u32) -> Result<Arc<rlwe::Params>, LinearError> {
        type Cache = Mutex<HashMap<(HeParamsId, u32), Arc<rlwe::Params>>>;
        static CACHE: OnceLock<Cache> = OnceLock::new();
        let mut map = CACHE
            .get_or_init(Default::default)
            .lock()
            .expect("params cache");
        if let Some(p) = map.get(&(self, ell)) {
            return Ok(p.clone());
        }
        let lit = match self {
            HeParamsId::N4096Q109 => rlwe::presets::cheetah_n4096_q55_54_t2l(ell),
            HeParamsId::N8192Q165 => rlwe::presets::cheetah_n8192_q165_t2l(ell),
            HeParamsId::N8192Q218 => rlwe::presets::cheetah_n8192_q218_t2l(ell),
            HeParamsId::N8192Q120P60 => rlwe::presets::bfv_n8192_q120_p60_t2l(ell),
            HeParamsId::N8192Q180P38 => rlwe::presets::bfv_n8192_q180_t2l(ell),
        }
        .map_err(LinearError::from)?;
        let p = rlwe::Params::new(lit).map_err(LinearError::from)?;
        debug_assert_eq!(p.ctx_q().len(), self.prime_bits().len());
        map.insert((self, ell), p.clone());
        Ok(p)
    }

    /// The RNS context of Q (the same for every ℓ: the primes do not depend on t).
    pub fn context(self) -> Result<Arc<RnsContext>, LinearError> {
        static CACHE: [OnceLock<Arc<RnsContext>>; 5] = [
            OnceLock::new(),
            OnceLock::new(),
            OnceLock::new(),
            OnceLock::new(),
            OnceLock::new(),
        ];
        let slot = &CACHE[self.tag() as usize - 1];
        if let Some(c) = slot.get() {
            return Ok(c.clone());
        }
        let ctx = self.rlwe_params(CONTEXT_ELL)?.ctx_q().clone();
        Ok(slot.get_or_init(|| ctx).clone())
    }

    /// log₂ Q.
    pub fn log_q(self) -> Result<f64, LinearError> {
        let ctx = self.context()?;
        Ok(ctx.log2_product(ctx.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use math::prime::generate_primes;

    /// Every set's Q is the chain of largest NTT primes of `prime_bits` (each excluding the ones
    /// before), the same for every ℓ, and within the 128-bit bound.
    #[test]
    fn rlwe_params_have_the_sets_primes() {
        for p in HeParamsId::ALL {
            let mut want: Vec<u64> = Vec::new();
            for &b in p.prime_bits() {
                let q = generate_primes(b, p.n(), 1, &want).unwrap()[0];
                want.push(q);
            }
            let ctx = p.context().unwrap();
            let got: Vec<u64> = ctx.moduli().iter().map(|m| m.value()).collect();
            assert_eq!(got, want, "{}", p.name());
            for ell in [13, 37, 45] {
                let rp = p.rlwe_params(ell).unwrap();
                assert_eq!(**rp.ctx_q(), *ctx);
                assert_eq!(rp.t().value(), 1 << ell);
                assert_eq!(rp.n(), p.n());
            }
            assert!(p.log_q().unwrap() <= p.security_bound_bits() as f64);
        }
    }
}
