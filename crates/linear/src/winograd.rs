//! Winograd convolution on shares (CoPriv's convolution protocol; Lavin & Gray's F(m×m, 3×3)
//! minimal filtering): a 3×3 stride-1 convolution becomes α² = (m+2)² independent channel
//! products on transformed tiles, V = Bᵀ d B per input tile and channel (local on each share),
//! M_p = U_p · V_p per tile position p (the only interaction: an OT product,
//! [`mpc::Session::product_server`]), then Y = Aᵀ M A per output tile (local again).
//!
//! Exact fixed point (docs/protocols/copriv.md § Winograd; docs/fixed-point.md): the filter
//! transform G has denominators D (2 for F(2,3), 24 for F(4,3)). The server transforms its
//! *quantized* weights with the integer matrix D·G, so U = D²·G q Gᵀ exactly, and multiplies by
//! the inverse of D's odd part squared mod 2^ℓ (odd numbers are units of Z_{2^ℓ}). The protocol
//! thus returns shares of 2^e·(W·x + b) with e = 2·v₂(D) (2 for F(2,3), 6 for F(4,3)), exactly
//! the direct convolution times 2^e mod 2^ℓ: the rescale that follows truncates by s + e
//! instead of s ([`LinearProtocol::output_shift`]), and the result equals the fixed-point
//! reference bit for bit under the range assumption |2^e·(y + 2^{s−1})| < 2^{ℓ−2}.
//!
//! The client's OT cost per output pixel is α²/m² transformed elements against 9 for the
//! direct (im2col) OT layer: 2.25× fewer for F(2,3), 4× for F(4,3), on the same ring.

use rand_core::CryptoRngCore;
use transport::Channel;

use crate::cheetah::check_len;
use crate::keys::{ClientKeys, KeyRequest, ServerKeys};
use crate::layer::{Conv2dSpec, LayerShape, LayerSpec, LayerWeights, Ring};
use crate::ot::{add_bias, mpc_ring, product_layer_cost, product_seconds};
use crate::{Cost, LinearError, LinearProtocol};

/// The transform matrices of F(m×m, 3×3), integer: `g` is D·G.
struct Transform {
    m: usize,
    alpha: usize,
    bt: &'static [&'static [i64]],
    g: &'static [&'static [i64]],
    at: &'static [&'static [i64]],
    /// D = 2^{e/2} · odd.
    odd: u64,
    /// Extra output bits: 2 · v₂(D).
    e: u32,
}

/// F(2×2, 3×3), interpolation points 0, 1, −1, ∞ [Lavin & Gray 2016, §4.1].
const F2: Transform = Transform {
    m: 2,
    alpha: 4,
    bt: &[
        &[1, 0, -1, 0],
        &[0, 1, 1, 0],
        &[0, -1, 1, 0],
        &[0, 1, 0, -1],
    ],
    g: &[&[2, 0, 0], &[1, 1, 1], &[1, -1, 1], &[0, 0, 2]],
    at: &[&[1, 1, 1, 0], &[0, 1, -1, -1]],
    odd: 1,
    e: 2,
};

/// F(4×4, 3×3), points 0, ±1, ±2, ∞ [Lavin & Gray 2016, §4.3]; D = 24.
const F4: Transform = Transform {
    m: 4,
    alpha: 6,
    bt: &[
        &[4, 0, -5, 0, 1, 0],
        &[0, -4, -4, 1, 1, 0],
        &[0, 4, -4, -1, 1, 0],
        &[0, -2, -1, 2, 1, 0],
        &[0, 2, -1, -2, 1, 0],
        &[0, 4, 0, -5, 0, 1],
    ],
    g: &[
        &[6, 0, 0],
        &[-4, -4, -4],
        &[-4, 4, -4],
        &[1, 2, 4],
        &[1, -2, 4],
        &[0, 0, 24],
    ],
    at: &[
        &[1, 1, 1, 1, 1, 0],
        &[0, 1, -1, 2, -2, 0],
        &[0, 1, 1, 4, 4, 0],
        &[0, 1, -1, 8, -8, 1],
    ],
    odd: 3,
    e: 6,
};

/// a⁻¹ mod 2^64 for odd a (Newton: each step doubles the correct low bits).
fn inv_odd(a: u64) -> u64 {
    let mut x = a;
    for _ in 0..6 {
        x = x.wrapping_mul(2u64.wrapping_sub(a.wrapping_mul(x)));
    }
    x
}

/// Winograd F(m×m, 3×3) for m ∈ {2, 4} ([`Winograd::F2`], [`Winograd::F4`], [`Winograd::new`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Winograd {
    m: usize,
}

/// The layer's tiling: output tiles of m×m, input tiles of α×α.
#[derive(Clone, Copy)]
struct Tiles {
    c: Conv2dSpec,
    th: usize,
    tw: usize,
}

impl Tiles {
    fn count(&self) -> usize {
        self.th * self.tw
    }
}

/// The OT product's columns: transformed element (p, c, t) reaches (p, o, t) for o in c's group.
struct WinoColumns {
    alpha2: usize,
    c: Conv2dSpec,
    tiles: usize,
}

impl mpc::Columns for WinoColumns {
    fn n_in(&self) -> usize {
        self.alpha2 * self.c.c * self.tiles
    }
    fn n_out(&self) -> usize {
        self.alpha2 * self.c.m * self.tiles
    }
    fn nnz(&self, _j: usize) -> usize {
        self.c.m_per_group()
    }
    fn rows(&self, j: usize, out: &mut Vec<usize>) {
        out.clear();
        let t = j % self.tiles;
        let ch = (j / self.tiles) % self.c.c;
        let p = j / (self.tiles * self.c.c);
        let g = ch / self.c.c_per_group();
        let mg = self.c.m_per_group();
        out.extend((g * mg..(g + 1) * mg).map(|o| (p * self.c.m + o) * self.tiles + t));
    }
}

impl Winograd {
    /// F(2×2, 3×3).
    pub const F2: Winograd = Winograd { m: 2 };
    /// F(4×4, 3×3).
    pub const F4: Winograd = Winograd { m: 4 };

    /// The output tile m.
    pub fn tile(&self) -> usize {
        self.m
    }

    pub fn new(m: usize) -> Result<Winograd, LinearError> {
        match m {
            2 | 4 => Ok(Winograd { m }),
            _ => Err(LinearError::NotApplicable {
                protocol: "winograd",
                reason: "output tile m must be 2 or 4",
            }),
        }
    }

    fn tf(&self) -> &'static Transform {
        if self.m == 2 {
            &F2
        } else {
            &F4
        }
    }

    /// Extra output bits e (the output is 2^e·(W·x + b)).
    pub fn extra_bits(&self) -> u32 {
        self.tf().e
    }

    /// Whether the layer is a 3×3 stride-1 convolution (any padding, any grouping).
    pub fn applies(layer: &LayerSpec) -> bool {
        matches!(layer.shape, LayerShape::Conv2d(c) if c.kh == 3 && c.kw == 3 && c.stride == 1)
            && layer.validate().is_ok()
    }

    fn tiles(&self, layer: &LayerSpec) -> Result<Tiles, LinearError> {
        layer.validate()?;
        match layer.shape {
            LayerShape::Conv2d(c) if c.kh == 3 && c.kw == 3 && c.stride == 1 => Ok(Tiles {
                c,
                th: c.out_h().div_ceil(self.m),
                tw: c.out_w().div_ceil(self.m),
            }),
            _ => Err(LinearError::NotApplicable {
                protocol: "winograd",
                reason: "needs a 3x3 stride-1 convolution",
            }),
        }
    }

    fn columns(&self, t: &Tiles) -> WinoColumns {
        let a = self.tf().alpha;
        WinoColumns {
            alpha2: a * a,
            c: t.c,
            tiles: t.count(),
        }
    }

    /// V[(p·C + c)·T + t] = (Bᵀ d B)[p] for input tile t of channel c (zeros outside the map):
    /// linear, so each party applies it to its own share.
    fn input_transform(&self, t: &Tiles, ring: Ring, x: &[u64]) -> Vec<u64> {
        let tf = self.tf();
        let (a, m, c) = (tf.alpha, tf.m, t.c);
        let nt = t.count();
        let mut v = vec![0u64; a * a * c.c * nt];
        let mut d = vec![0u64; a * a];
        let mut tmp = vec![0u64; a * a];
        for ch in 0..c.c {
            for ty in 0..t.th {
                for tx in 0..t.tw {
                    for u in 0..a {
                        for w in 0..a {
                            let r = (ty * m + u) as isize - c.padding as isize;
                            let q = (tx * m + w) as isize - c.padding as isize;
                            d[u * a + w] =
                                if r >= 0 && q >= 0 && (r as usize) < c.h && (q as usize) < c.w {
                                    x[(ch * c.h + r as usize) * c.w + q as usize]
                                } else {
                                    0
                                };
                        }
                    }
                    // tmp = Bᵀ d, then V = tmp B (B = (Bᵀ)ᵀ).
                    mat_left(tf.bt, &d, a, &mut tmp);
                    let ti = ty * t.tw + tx;
                    for p1 in 0..a {
                        for p2 in 0..a {
                            let s = (0..a).fold(0u64, |s, w| {
                                s.wrapping_add(tmp[p1 * a + w].wrapping_mul(tf.bt[p2][w] as u64))
                            });
                            v[((p1 * a + p2) * c.c + ch) * nt + ti] = ring.reduce(s);
                        }
                    }
                }
            }
        }
        v
    }

    /// U[(p·M + o)·cg + cc] = (D²)/(odd²) · (G q Gᵀ)[p] mod 2^ℓ for the quantized filter q of
    /// output o and input cc of its group.
    fn filter_transform(&self, t: &Tiles, ring: Ring, w: &[u64]) -> Vec<u64> {
        let tf = self.tf();
        let (a, c) = (tf.alpha, t.c);
        let cg = c.c_per_group();
        let inv = inv_odd(tf.odd * tf.odd);
        let mut u = vec![0u64; a * a * c.m * cg];
        let mut tmp = vec![0u64; a * 3];
        for o in 0..c.m {
            for cc in 0..cg {
                let q = &w[(o * cg + cc) * 9..(o * cg + cc + 1) * 9];
                // tmp = (D·G) q  (α × 3)
                for i in 0..a {
                    for l in 0..3 {
                        tmp[i * 3 + l] = (0..3).fold(0u64, |s, k| {
                            s.wrapping_add((tf.g[i][k] as u64).wrapping_mul(q[k * 3 + l]))
                        });
                    }
                }
                for p1 in 0..a {
                    for p2 in 0..a {
                        let s = (0..3).fold(0u64, |s, l| {
                            s.wrapping_add(tmp[p1 * 3 + l].wrapping_mul(tf.g[p2][l] as u64))
                        });
                        u[((p1 * a + p2) * c.m + o) * cg + cc] = ring.reduce(s.wrapping_mul(inv));
                    }
                }
            }
        }
        u
    }

    /// y[o, pixel] = (Aᵀ M A) of output tile t, cropped to the output map.
    fn output_transform(&self, t: &Tiles, ring: Ring, mp: &[u64]) -> Vec<u64> {
        let tf = self.tf();
        let (a, m, c) = (tf.alpha, tf.m, t.c);
        let (ho, wo) = (c.out_h(), c.out_w());
        let nt = t.count();
        let mut y = vec![0u64; c.m * ho * wo];
        let mut tile = vec![0u64; a * a];
        let mut tmp = vec![0u64; m * a];
        for o in 0..c.m {
            for ty in 0..t.th {
                for tx in 0..t.tw {
                    let ti = ty * t.tw + tx;
                    for p in 0..a * a {
                        tile[p] = mp[(p * c.m + o) * nt + ti];
                    }
                    mat_left(tf.at, &tile, a, &mut tmp);
                    for i1 in 0..m {
                        let r = ty * m + i1;
                        if r >= ho {
                            break;
                        }
                        for i2 in 0..m {
                            let q = tx * m + i2;
                            if q >= wo {
                                break;
                            }
                            let s = (0..a).fold(0u64, |s, p2| {
                                s.wrapping_add(tmp[i1 * a + p2].wrapping_mul(tf.at[i2][p2] as u64))
                            });
                            y[(o * ho + r) * wo + q] = ring.reduce(s);
                        }
                    }
                }
            }
        }
        y
    }

    /// The whole transform pipeline on plaintext (the products computed directly): the
    /// protocol's function, 2^e·(W·x + b) mod 2^ℓ; for tests and the fixed-point documentation.
    pub fn plain(
        &self,
        layer: &LayerSpec,
        ring: Ring,
        w: &LayerWeights,
        x: &[u64],
    ) -> Result<Vec<u64>, LinearError> {
        let t = self.tiles(layer)?;
        let cols = self.columns(&t);
        let v = self.input_transform(&t, ring, x);
        let u = self.filter_transform(&t, ring, &w.weights);
        let mut mp = vec![0u64; mpc::Columns::n_out(&cols)];
        let (mut rows, mut wc) = (Vec::new(), Vec::new());
        for (j, &vj) in v.iter().enumerate() {
            mpc::Columns::rows(&cols, j, &mut rows);
            self.column_weights(&t, &u, j, &mut wc);
            for (&r, &wk) in rows.iter().zip(&wc) {
                mp[r] = mp[r].wrapping_add(wk.wrapping_mul(vj));
            }
        }
        let mut y = self.output_transform(&t, ring, &mp);
        self.add_bias(layer, ring, &w.bias, &mut y);
        Ok(y)
    }

    /// The weights of column (p, c, t): U_p[o, c] for o in c's group (order of `rows`).
    fn column_weights(&self, t: &Tiles, u: &[u64], j: usize, out: &mut Vec<u64>) {
        let c = t.c;
        let nt = t.count();
        let ch = (j / nt) % c.c;
        let p = j / (nt * c.c);
        let (cg, mg) = (c.c_per_group(), c.m_per_group());
        let g = ch / cg;
        out.clear();
        out.extend((g * mg..(g + 1) * mg).map(|o| u[(p * c.m + o) * cg + ch % cg]));
    }

    /// y += 2^e·b: the bias at the output's scale.
    fn add_bias(&self, layer: &LayerSpec, ring: Ring, bias: &[u64], y: &mut [u64]) {
        let e = self.tf().e;
        let scaled: Vec<u64> = bias.iter().map(|&b| b << e).collect();
        add_bias(layer, ring, &scaled, y);
    }
}

/// out (rows(mat) × a) = mat · d (d is a × a, row-major).
fn mat_left(mat: &[&[i64]], d: &[u64], a: usize, out: &mut [u64]) {
    for (i, row) in mat.iter().enumerate() {
        for w in 0..a {
            out[i * a + w] = row.iter().enumerate().fold(0u64, |s, (u, &b)| {
                s.wrapping_add((b as u64).wrapping_mul(d[u * a + w]))
            });
        }
    }
}

impl LinearProtocol for Winograd {
    fn name(&self) -> &'static str {
        if self.m == 2 {
            "winograd2"
        } else {
            "winograd4"
        }
    }

    fn cost(&self, layer: &LayerSpec, ring: Ring) -> Result<Cost, LinearError> {
        let t = self.tiles(layer)?;
        Ok(product_layer_cost(mpc::product_cost(
            &self.columns(&t),
            ring.bits(),
        )))
    }

    fn estimated_seconds(
        &self,
        layer: &LayerSpec,
        ring: Ring,
        bandwidth: f64,
    ) -> Result<f64, LinearError> {
        Ok(product_seconds(&self.cost(layer, ring)?, bandwidth))
    }

    fn weight_bytes(&self, layer: &LayerSpec, _ring: Ring) -> Result<u64, LinearError> {
        let a = self.tf().alpha as u64;
        Ok(layer.weight_len() as u64 / 9 * a * a * 8)
    }

    fn keys_needed(&self, _layer: &LayerSpec, _ring: Ring) -> Result<Vec<KeyRequest>, LinearError> {
        Ok(Vec::new())
    }

    fn output_shift(&self, _layer: &LayerSpec) -> u32 {
        self.extra_bits()
    }

    fn client_in(
        &self,
        layer: &LayerSpec,
        ring: Ring,
        _keys: &ClientKeys,
        x: &[u64],
        session: &mut mpc::Session,
        ch: &mut dyn Channel,
        _rng: &mut dyn CryptoRngCore,
    ) -> Result<Vec<u64>, LinearError> {
        let t = self.tiles(layer)?;
        ring.check("input share", x)?;
        check_len("input share", x, layer.input_len())?;
        let v = self.input_transform(&t, ring, x);
        let mp = session.product_client(ch, mpc_ring(ring)?, &self.columns(&t), &v)?;
        Ok(self.output_transform(&t, ring, &mp))
    }

    fn server_in(
        &self,
        layer: &LayerSpec,
        ring: Ring,
        _keys: &ServerKeys,
        weights: &LayerWeights,
        x: &[u64],
        session: &mut mpc::Session,
        ch: &mut dyn Channel,
        _rng: &mut dyn CryptoRngCore,
    ) -> Result<Vec<u64>, LinearError> {
        let t = self.tiles(layer)?;
        weights.validate(layer, ring)?;
        ring.check("input share", x)?;
        check_len("input share", x, layer.input_len())?;
        let v = self.input_transform(&t, ring, x);
        let u = self.filter_transform(&t, ring, &weights.weights);
        let column = |j: usize, out: &mut Vec<u64>| self.column_weights(&t, &u, j, out);
        let mp = session.product_server(ch, mpc_ring(ring)?, &self.columns(&t), &column, &v)?;
        let mut y = self.output_transform(&t, ring, &mp);
        self.add_bias(layer, ring, &weights.bias, &mut y);
        Ok(y)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::reference;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha20Rng;

    #[test]
    fn inverse_of_odd_numbers() {
        for a in [1u64, 3, 9, 12345, u64::MAX] {
            assert_eq!(a.wrapping_mul(inv_odd(a)), 1);
        }
    }

    /// The transform pipeline equals 2^e times the direct convolution mod 2^ℓ, for every tile
    /// size, padding, grouping and map size (partial tiles at the border included).
    #[test]
    fn transforms_equal_the_direct_convolution_times_two_to_the_e() {
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        for ell in [37u32, 41, 64] {
            let ring = Ring::new(ell.min(Ring::MAX_BITS)).unwrap();
            for (c, h, w, m, pad, groups) in [
                (3, 8, 8, 4, 1, 1),
                (2, 7, 5, 3, 1, 1),
                (4, 6, 9, 4, 0, 2),
                (6, 5, 5, 6, 2, 6),
                (1, 3, 3, 1, 0, 1),
            ] {
                let layer = LayerSpec::conv(
                    Conv2dSpec {
                        c,
                        h,
                        w,
                        m,
                        kh: 3,
                        kw: 3,
                        stride: 1,
                        padding: pad,
                        groups,
                        block: 1,
                    },
                    10,
                );
                let wts = LayerWeights {
                    weights: (0..layer.weight_len())
                        .map(|_| ring.from_signed(rng.gen_range(-511..512)))
                        .collect(),
                    bias: (0..layer.bias_len())
                        .map(|_| rng.gen::<u64>() & ring.mask())
                        .collect(),
                };
                let x: Vec<u64> = (0..layer.input_len())
                    .map(|_| rng.gen::<u64>() & ring.mask())
                    .collect();
                let want = reference(&layer, ring, &wts, &x);
                for tile in [2, 4] {
                    let wg = Winograd::new(tile).unwrap();
                    let got = wg.plain(&layer, ring, &wts, &x).unwrap();
                    let e = wg.extra_bits();
                    let want_e: Vec<u64> = want.iter().map(|&y| ring.reduce(y << e)).collect();
                    assert_eq!(got, want_e, "F({tile},3) on {c}x{h}x{w} -> {m}, pad {pad}");
                }
            }
        }
    }
}
