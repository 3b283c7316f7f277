//! The query's parameters on a [`HeParamsId`]: how many low bits of c₀ the client drops, and
//! what that costs in bytes and in noise [docs/security.md, "Query size"].
//!
//! The encryption (seeded secret-key RLWE, ChaCha20 stream i for input polynomial i) is
//! [`rlwe::SeededEncryptor`] / [`rlwe::expand_seeded_a`]; the headerless codec of c₀ with D low
//! bits dropped over a support S_i is [`rlwe::DroppedCodec`] (mixed radix over the RNS primes,
//! midpoint substitution on the server's side, |δ| ≤ [`drop_error_bound`]). This module only
//! binds them to the Cheetah parameter sets; the planner chooses D
//! ([`super::Cheetah::plan`]: the largest drop that leaves the response moduli unchanged, since
//! the weights multiply δ by at most ‖w‖₁ and the flooding hides it with the rest,
//! [`super::noise::response_noise`]).

use rlwe::dropped;

use super::params::HeParamsId;
use crate::LinearError;

/// Bytes of one input polynomial's c₀ (all N coefficients) with `drop_bits` low bits dropped.
pub fn query_poly_bytes(p: HeParamsId, drop_bits: u32) -> Result<usize, LinearError> {
    query_bytes(p, drop_bits, p.n())
}

/// Bytes of `count` coefficients of c₀ with `drop_bits` low bits dropped (a truncated query
/// sends the coefficients of its support S only: `count` = |S|); from the prime widths alone.
pub fn query_bytes(p: HeParamsId, drop_bits: u32, count: usize) -> Result<usize, LinearError> {
    Ok(dropped::dropped_len(p.prime_bits(), drop_bits, count)?)
}

/// Largest number of bits that may be dropped (the top digit is always sent in full).
pub fn max_drop_bits(p: HeParamsId) -> u32 {
    dropped::max_drop_bits(p.prime_bits())
}

/// Bound on |δ| = |c₀' − c₀| for `drop_bits` dropped bits (0 when none).
pub fn drop_error_bound(p: HeParamsId, drop_bits: u32) -> Result<f64, LinearError> {
    Ok(dropped::drop_error_bound(p.context()?.moduli(), drop_bits)?)
}

/// The codec of the query's c₀ on `p` (all of Q) with `drop_bits` low bits dropped.
pub fn codec(p: HeParamsId, drop_bits: u32) -> Result<rlwe::DroppedCodec, LinearError> {
    let ctx = p.context()?;
    Ok(rlwe::DroppedCodec::new(&ctx, ctx.len(), drop_bits)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sets' widths agree with their contexts, so bytes computed from the widths alone
    /// ([`query_bytes`]) are the codec's; drops beyond the top digit are refused; the seeded
    /// encryption's noise is CBD(η) with the η of the noise analysis.
    #[test]
    fn widths_and_codec_agree() {
        for p in HeParamsId::ALL {
            let max = max_drop_bits(p);
            for drop in [0, 1, 13, max] {
                let c = codec(p, drop).unwrap();
                for count in [1, 7, p.n()] {
                    assert_eq!(query_bytes(p, drop, count).unwrap(), c.len(count));
                }
            }
            assert!(query_bytes(p, max + 1, 1).is_err());
            assert!(codec(p, max + 1).is_err());
            assert_eq!(drop_error_bound(p, 0).unwrap(), 0.0);
            // The query's noise is the CBD the noise analysis assumes (super::params::CBD_ETA).
            assert_eq!(
                p.rlwe_params(37).unwrap().literal().error,
                rlwe::ErrorDistribution::Cbd {
                    eta: super::super::params::CBD_ETA
                }
            );
        }
    }
}
