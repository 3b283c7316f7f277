//! PrivCirNet's CirEncode on the SIMD substrate: block-circulant conv and FC layers over Z_t
//! (docs/protocols/privcirnet.md § CirEncode).
//!
//! A circulant block is diagonalized by the length-b cyclic NTT over the plaintext prime t
//! (b | t − 1 since t ≡ 1 mod 2N and b ≤ N): with C[q][c] = r[(c − q) mod b] (r = row 0) and ω a
//! primitive b-th root of unity mod t,
//!
//!   NTT(C·x)[k] = λ[k]·NTT(x)[k],   NTT(x)[k] = Σ_c x[c]·ω^{ck},   λ[k] = Σ_l r[l]·ω^{−lk},
//!
//! so a block-circulant layer is, between two public per-block transforms of the channel axis,
//! b independent (C/b → M/b) layers, one per frequency k: a grouped layer with b groups. Each
//! party transforms its own share (the NTT is linear over Z_t); the grouped product runs by the
//! SIMD protocol (slot encoding, the Gazelle/Bolt conv kernel or the diagonal method, with its
//! flooding and re-randomization); each party applies the inverse NTT (with b⁻¹) to its output
//! share, and the server adds the bias. Frequency k of block j is channel k·(C/b) + j of the
//! grouped layer, so group k holds frequency k of every block.

use rand_core::CryptoRngCore;
use transport::Channel;

use crate::keys::{ClientKeys, KeyRequest, ServerKeys};
use crate::layer::{Conv2dSpec, LayerShape, LayerSpec, LayerWeights, Ring};
use crate::simd::{ring_to_t, Simd, SimdConfig};
use crate::{Cost, LinearError, LinearProtocol};

/// CirEncode: block-circulant layers as per-block NTTs around a grouped SIMD layer.
#[derive(Clone, Copy, Debug, Default)]
pub struct CirEncode {
    simd: Simd,
}

fn mul(a: u64, b: u64, t: u64) -> u64 {
    ((a as u128 * b as u128) % t as u128) as u64
}

fn pow(mut a: u64, mut e: u64, t: u64) -> u64 {
    let mut r = 1;
    while e > 0 {
        if e & 1 == 1 {
            r = mul(r, a, t);
        }
        a = mul(a, a, t);
        e >>= 1;
    }
    r
}

/// A primitive b-th root of unity mod the prime t (b a power of two dividing t − 1): the
/// smallest a^((t−1)/b) with (a^((t−1)/b))^(b/2) = −1.
pub fn root_of_unity(b: usize, t: u64) -> Result<u64, LinearError> {
    let b = b as u64;
    if b < 2 || !b.is_power_of_two() || !(t - 1).is_multiple_of(b) {
        return Err(LinearError::BadShape {
            reason: "cirencode: the block must be a power of two dividing t - 1",
        });
    }
    (2..t.min(1 << 20))
        .map(|a| pow(a, (t - 1) / b, t))
        .find(|&w| pow(w, b / 2, t) == t - 1)
        .ok_or(LinearError::BadShape {
            reason: "cirencode: no root of unity found",
        })
}

/// The block-circulant conv `layer` (an FC as its 1×1 convolution on a 1×1 input), if it is one.
fn circulant_spec(layer: &LayerSpec) -> Result<Conv2dSpec, LinearError> {
    let spec = match layer.shape {
        LayerShape::Conv2d(c) if c.block > 1 => c,
        LayerShape::Fc(f) if f.block > 1 => crate::circulant::fc_as_1x1(&f),
        _ => {
            return Err(LinearError::BadShape {
                reason: "cirencode: only conv and FC layers with a circulant block size > 1",
            })
        }
    };
    layer.validate()?;
    Ok(spec)
}

/// The grouped SIMD layer that runs block-circulant `layer` (for reports).
pub fn grouped_layer(layer: &LayerSpec) -> Result<LayerSpec, LinearError> {
    Ok(grouped(&circulant_spec(layer)?, layer.weight_bits))
}

/// The grouped layer of the b frequencies.
fn grouped(spec: &Conv2dSpec, weight_bits: u32) -> LayerSpec {
    LayerSpec::conv(
        Conv2dSpec {
            groups: spec.block,
            block: 1,
            ..*spec
        },
        weight_bits,
    )
}

/// One transform of a share along the channel axis, `plane` values per channel, per block j of
/// b channels: out[dst(j, u)] = Σ_v x[src(j, v)]·f[(u·v) mod b] mod t. Forward (f = powers of ω):
/// src (j, c) = channel jb + c, dst (j, k) = channel k·(C/b) + j (frequency-major). Inverse
/// (f = b⁻¹·powers of ω⁻¹): the other way round.
fn transform(
    x: &[u64],
    channels: usize,
    plane: usize,
    f: &[u64],
    t: u64,
    inverse: bool,
) -> Vec<u64> {
    let b = f.len();
    let blocks = channels / b;
    let natural = |j: usize, c: usize| (j * b + c) * plane;
    let by_frequency = |j: usize, k: usize| (k * blocks + j) * plane;
    let mut out = vec![0u64; x.len()];
    for j in 0..blocks {
        for u in 0..b {
            let dst = if inverse {
                natural(j, u)
            } else {
                by_frequency(j, u)
            };
            for v in 0..b {
                let src = if inverse {
                    by_frequency(j, v)
                } else {
                    natural(j, v)
                };
                let w = f[(u * v) % b] as u128;
                for p in 0..plane {
                    out[dst + p] =
                        ((out[dst + p] as u128 + x[src + p] as u128 * w) % t as u128) as u64;
                }
            }
        }
    }
    out
}

/// The per-block NTT of a share (frequency-major output).
fn forward(x: &[u64], channels: usize, plane: usize, b: usize, w: u64, t: u64) -> Vec<u64> {
    let f: Vec<u64> = (0..b as u64).map(|e| pow(w, e, t)).collect();
    transform(x, channels, plane, &f, t, false)
}

/// The inverse of [`forward`] (with ω): y[(ib + q)·plane + p] = b⁻¹·Σ_k ŷ[(k·(M/b) + i)·plane + p]·ω^{−qk}.
fn inverse(y: &[u64], channels: usize, plane: usize, b: usize, w: u64, t: u64) -> Vec<u64> {
    let (w_inv, b_inv) = (pow(w, t - 2, t), pow(b as u64, t - 2, t));
    let f: Vec<u64> = (0..b as u64)
        .map(|e| mul(pow(w_inv, e, t), b_inv, t))
        .collect();
    transform(y, channels, plane, &f, t, true)
}

impl CirEncode {
    pub fn new(cfg: SimdConfig) -> CirEncode {
        CirEncode {
            simd: Simd::new(cfg),
        }
    }

    pub fn config(&self) -> SimdConfig {
        self.simd.config()
    }

    fn inner(&self, layer: &LayerSpec) -> Result<(Conv2dSpec, LayerSpec), LinearError> {
        let spec = circulant_spec(layer)?;
        Ok((spec, grouped(&spec, layer.weight_bits)))
    }

    /// (spec, grouped layer, t, ω) of one execution.
    fn setup(
        &self,
        layer: &LayerSpec,
        ring: Ring,
    ) -> Result<(Conv2dSpec, LayerSpec, u64, u64), LinearError> {
        let (spec, g) = self.inner(layer)?;
        let t = self
            .simd
            .share_modulus(&g, ring)?
            .expect("a field protocol");
        let root = root_of_unity(spec.block, t)?;
        Ok((spec, g, t, root))
    }

    /// The grouped layer's weights (M × C/b × taps, residues mod t): for output block i, input
    /// block j and tap, λ[k] = Σ_l r[l]·ω^{−lk} at output channel k·(M/b) + i, in-group
    /// channel j, with r[l] = W[ib][jb + l][tap] (signed).
    fn transformed_weights(
        spec: &Conv2dSpec,
        ring: Ring,
        w: &[u64],
        root: u64,
        t: u64,
    ) -> Vec<u64> {
        let (b, taps) = (spec.block, spec.kh * spec.kw);
        let (ib, jb) = (spec.m / b, spec.c / b);
        let w_inv = pow(root, t - 2, t);
        let pw: Vec<u64> = (0..b as u64).map(|e| pow(w_inv, e, t)).collect();
        let mut out = vec![0u64; spec.m * jb * taps];
        for i in 0..ib {
            for j in 0..jb {
                for tap in 0..taps {
                    for k in 0..b {
                        let mut acc = 0u128;
                        for l in 0..b {
                            let r =
                                ring_to_t(ring, w[((i * b) * spec.c + j * b + l) * taps + tap], t)
                                    as u128;
                            acc = (acc + r * pw[(l * k) % b] as u128) % t as u128;
                        }
                        out[((k * ib + i) * jb + j) * taps + tap] = acc as u64;
                    }
                }
            }
        }
        out
    }
}

impl LinearProtocol for CirEncode {
    fn name(&self) -> &'static str {
        "cirencode"
    }

    fn share_modulus(&self, layer: &LayerSpec, ring: Ring) -> Result<Option<u64>, LinearError> {
        let (_, g) = self.inner(layer)?;
        self.simd.share_modulus(&g, ring)
    }

    fn cost(&self, layer: &LayerSpec, ring: Ring) -> Result<Cost, LinearError> {
        let (_, g) = self.inner(layer)?;
        self.simd.cost(&g, ring)
    }

    fn estimated_seconds(
        &self,
        layer: &LayerSpec,
        ring: Ring,
        bandwidth: f64,
    ) -> Result<f64, LinearError> {
        let (_, g) = self.inner(layer)?;
        self.simd.estimated_seconds(&g, ring, bandwidth)
    }

    fn weight_bytes(&self, layer: &LayerSpec, ring: Ring) -> Result<u64, LinearError> {
        let (_, g) = self.inner(layer)?;
        self.simd.weight_bytes(&g, ring)
    }

    fn working_set_bytes(&self, layer: &LayerSpec, ring: Ring) -> Result<u64, LinearError> {
        let (_, g) = self.inner(layer)?;
        self.simd.working_set_bytes(&g, ring)
    }

    fn keys_needed(&self, layer: &LayerSpec, ring: Ring) -> Result<Vec<KeyRequest>, LinearError> {
        let (_, g) = self.inner(layer)?;
        self.simd.keys_needed(&g, ring)
    }

    fn client(
        &self,
        layer: &LayerSpec,
        ring: Ring,
        keys: &ClientKeys,
        x: &[u64],
        ch: &mut dyn Channel,
        rng: &mut dyn CryptoRngCore,
    ) -> Result<Vec<u64>, LinearError> {
        let (spec, g, t, root) = self.setup(layer, ring)?;
        crate::cheetah::check_len("client input share", x, layer.input_len())?;
        let xh = forward(x, spec.c, spec.h * spec.w, spec.block, root, t);
        let yh = self.simd.client(&g, ring, keys, &xh, ch, rng)?;
        Ok(inverse(
            &yh,
            spec.m,
            spec.out_h() * spec.out_w(),
            spec.block,
            root,
            t,
        ))
    }

    fn server(
        &self,
        layer: &LayerSpec,
        ring: Ring,
        keys: &ServerKeys,
        weights: &LayerWeights,
        x: &[u64],
        ch: &mut dyn Channel,
        rng: &mut dyn CryptoRngCore,
    ) -> Result<Vec<u64>, LinearError> {
        let (spec, g, t, root) = self.setup(layer, ring)?;
        crate::cheetah::check_len("server input share", x, layer.input_len())?;
        weights.validate(layer, ring)?;
        crate::circulant::check_circulant(layer, weights)?;
        let wt = Self::transformed_weights(&spec, ring, &weights.weights, root, t);
        let xh = forward(x, spec.c, spec.h * spec.w, spec.block, root, t);
        let zero = vec![0u64; g.bias_len()];
        // The padded kernel is not used here: no signed weights needed.
        let yh = self
            .simd
            .serve(&g, ring, keys, &wt, &zero, &[], &xh, ch, rng)?;
        let plane = spec.out_h() * spec.out_w();
        let mut y = inverse(&yh, spec.m, plane, spec.block, root, t);
        for (i, v) in y.iter_mut().enumerate() {
            let b = ring_to_t(ring, weights.bias[i / plane], t);
            *v = ((*v as u128 + b as u128) % t as u128) as u64;
        }
        Ok(y)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The transforms are inverse to each other and diagonalize circulant blocks: for random
    /// row-0 weights, inverse(λ ⊙ forward(x)) equals the circulant product computed directly.
    #[test]
    fn ntt_diagonalizes_circulant_blocks() {
        let t: u64 = 65537; // 2^16 + 1, b | t − 1 for b ≤ 2^16
        let ring = Ring::new(30).unwrap();
        for b in [2usize, 4, 8, 16] {
            let root = root_of_unity(b, t).unwrap();
            assert_eq!(pow(root, b as u64, t), 1);
            assert_eq!(pow(root, b as u64 / 2, t), t - 1);
            let spec = Conv2dSpec {
                block: b,
                ..Conv2dSpec::square(2 * b, 1, 3 * b, 1, 1, 0, 1)
            };
            let raw: Vec<u64> = (0..spec.m * spec.c)
                .map(|i| ring.from_signed((i as i64 * 37 % 23) - 11))
                .collect();
            let w = crate::circulant::project(spec.m, spec.c, 1, b, &raw);
            let x: Vec<u64> = (0..spec.c as u64).map(|i| (i * 7919) % t).collect();
            assert_eq!(
                inverse(&forward(&x, spec.c, 1, b, root, t), spec.c, 1, b, root, t),
                x
            );
            let lam = CirEncode::transformed_weights(&spec, ring, &w, root, t);
            let xh = forward(&x, spec.c, 1, b, root, t);
            let (ib, jb) = (spec.m / b, spec.c / b);
            let mut yh = vec![0u64; spec.m];
            for k in 0..b {
                for i in 0..ib {
                    for j in 0..jb {
                        let v = mul(lam[(k * ib + i) * jb + j], xh[k * jb + j], t);
                        yh[k * ib + i] = (yh[k * ib + i] + v) % t;
                    }
                }
            }
            let y = inverse(&yh, spec.m, 1, b, root, t);
            for (row, &got) in y.iter().enumerate() {
                let want = (0..spec.c).fold(0i128, |a, c| {
                    a + ring.signed(w[row * spec.c + c]) as i128 * x[c] as i128
                });
                assert_eq!(got as i128, want.rem_euclid(t as i128), "b={b} row {row}");
            }
        }
    }
}
