//! One view over the conv and FC encodings: which input polynomials there are, which products
//! make each output polynomial, and where its outputs sit.

use super::conv::ConvTiling;
use super::fc::FcBlocks;
use crate::circulant::CircTiling;
use crate::falcon::DenseTiling;
use crate::layer::{Conv2dSpec, FcSpec, LayerShape, LayerSpec, MatMulSpec, Ring};

/// The encoding chosen for a layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Layout {
    Conv {
        spec: Conv2dSpec,
        tiling: ConvTiling,
    },
    Fc {
        spec: FcSpec,
        blocks: FcBlocks,
    },
    /// Several groups per input and several filters per weight polynomial ([`crate::falcon`]).
    Dense {
        spec: Conv2dSpec,
        tiling: DenseTiling,
    },
    /// A token × weight product with every row (token) an FC of the same block split, `tw`
    /// rows stacked per polynomial at offsets τ·S (S = d0·d1, tw·S ≤ N; Iron's packing of a
    /// matrix product): input polynomial a·n_in + j holds chunk j of rows a·tw … a·tw + tw − 1,
    /// output polynomial a·n_out + i their block i, weight key i·n_in + j shared by all tiles.
    /// Exactness (docs/protocols/transformer.md § Token × weight products): a term of row τ′
    /// and a target of row τ differ by (τ′ − τ)·S plus FcBlocks' in-block offset, which is
    /// below S in magnitude and nonzero off the target, so only τ′ = τ terms reach a target;
    /// wrapped terms land below every target (block, strided) or above every target (shifted).
    Rows {
        rows: usize,
        tw: usize,
        spec: FcSpec,
        blocks: FcBlocks,
    },
    /// A block-circulant FC (as a 1×1 convolution) or convolution with the channel axis as a
    /// convolution axis and several output blocks per product ([`crate::circulant`]).
    Circ {
        spec: Conv2dSpec,
        tiling: CircTiling,
    },
}

impl Layout {
    /// Every candidate encoding of `layer` at ring degree n.
    pub fn candidates(layer: &LayerSpec, n: usize) -> Vec<Layout> {
        match layer.shape {
            LayerShape::Fc(spec) => FcBlocks::candidates(&spec, n)
                .into_iter()
                .chain(FcBlocks::strided_candidates(&spec, n))
                .map(|blocks| Layout::Fc { spec, blocks })
                .collect(),
            LayerShape::MatMul(m) => {
                let spec = row_fc(&m);
                let narrow = narrow_splits(&spec, n, false);
                let blocks = FcBlocks::candidates(&spec, n)
                    .into_iter()
                    .chain(narrow.iter().copied());
                let strided = blocks
                    .clone()
                    .map(|b| FcBlocks { strided: true, ..b })
                    .collect::<Vec<_>>();
                blocks
                    .chain(strided)
                    .map(|blocks| rows_layout(&m, spec, blocks))
                    .collect()
            }
            _ => {
                let spec = layer.as_conv().expect("conv or scale");
                ConvTiling::candidates(&spec, n)
                    .into_iter()
                    .map(|tiling| Layout::Conv { spec, tiling })
                    .collect()
            }
        }
    }

    /// The dense encodings of a grouped convolution (or a scale) at ring degree n
    /// ([`crate::falcon`]); none for other layers.
    pub fn dense_candidates(layer: &LayerSpec, n: usize) -> Vec<Layout> {
        match (layer.shape, layer.as_conv()) {
            (LayerShape::Fc(_), _) | (_, None) => Vec::new(),
            (_, Some(spec)) => DenseTiling::candidates(&spec, n)
                .into_iter()
                .map(|tiling| Layout::Dense { spec, tiling })
                .collect(),
        }
    }

    /// The block-circulant encodings of a block-circulant FC or convolution (several output
    /// blocks per product, or block-minor with packable responses); none for other layers.
    pub fn circ_candidates(layer: &LayerSpec, n: usize) -> Vec<Layout> {
        let spec = match layer.shape {
            LayerShape::Fc(f) if f.block > 1 => crate::circulant::fc_as_1x1(&f),
            LayerShape::Conv2d(c) if c.block > 1 => c,
            _ => return Vec::new(),
        };
        CircTiling::candidates(&spec, n)
            .into_iter()
            .chain(CircTiling::interleaved_candidates(&spec, n))
            .map(|tiling| Layout::Circ { spec, tiling })
            .collect()
    }

    /// Candidate encodings whose outputs sit at multiples of a power of two G (see
    /// [`Layout::output_stride`]): interleaved conv, shifted FC, so G responses pack into one.
    pub fn packable_candidates(layer: &LayerSpec, n: usize) -> Vec<Layout> {
        match layer.shape {
            LayerShape::Fc(spec) => FcBlocks::shifted_candidates(&spec, n)
                .into_iter()
                .map(|blocks| Layout::Fc { spec, blocks })
                .collect(),
            LayerShape::MatMul(m) => {
                let spec = row_fc(&m);
                FcBlocks::shifted_candidates(&spec, n)
                    .into_iter()
                    .chain(narrow_splits(&spec, n, true))
                    .map(|blocks| rows_layout(&m, spec, blocks))
                    .collect()
            }
            _ => {
                let spec = layer.as_conv().expect("conv or scale");
                ConvTiling::interleaved_candidates(&spec, n)
                    .into_iter()
                    .map(|tiling| Layout::Conv { spec, tiling })
                    .collect()
            }
        }
    }

    /// The power of two every output coefficient index is a multiple of (1 if none).
    pub fn output_stride(&self) -> usize {
        match self {
            Layout::Conv { tiling, .. } if tiling.interleaved => tiling.c_t,
            Layout::Fc { blocks, .. } | Layout::Rows { blocks, .. } if blocks.shifted => blocks.d0,
            Layout::Dense { tiling, .. } => tiling.output_stride(),
            Layout::Circ { tiling, .. } => tiling.output_stride(),
            _ => 1,
        }
    }

    /// Number of returned ciphertexts with packing factor g (1: one per output polynomial).
    pub fn response_count(&self, g: usize) -> usize {
        match self {
            Layout::Conv { spec, tiling } => tiling.spatial_tiles() * spec.m.div_ceil(g.max(1)),
            Layout::Fc { blocks, .. } => blocks.n_out.div_ceil(g.max(1)),
            Layout::Rows {
                rows, tw, blocks, ..
            } => rows.div_ceil(*tw) * blocks.n_out.div_ceil(g.max(1)),
            Layout::Dense { .. } | Layout::Circ { .. } => self.output_cts().div_ceil(g.max(1)),
        }
    }

    /// Number of outputs of the layer.
    pub fn outputs(&self) -> usize {
        match self {
            Layout::Conv { spec, .. } => spec.m * spec.out_h() * spec.out_w(),
            Layout::Fc { spec, .. } => spec.outputs,
            Layout::Rows { rows, spec, .. } => rows * spec.outputs,
            Layout::Dense { spec, .. } => spec.m * spec.out_h() * spec.out_w(),
            Layout::Circ { spec, .. } => spec.m * spec.out_h() * spec.out_w(),
        }
    }

    /// Groups of output polynomials packed together with packing factor g (member j of a group
    /// is shifted by X^j): conv groups g consecutive output channels of one spatial tile, FC g
    /// consecutive output blocks.
    pub fn response_groups(&self, g: usize) -> Vec<Vec<usize>> {
        match self {
            Layout::Conv { spec, tiling } => {
                let s = tiling.spatial_tiles();
                let mut out = Vec::new();
                for st in 0..s {
                    for m0 in (0..spec.m).step_by(g) {
                        out.push((m0..(m0 + g).min(spec.m)).map(|m| m * s + st).collect());
                    }
                }
                out
            }
            Layout::Fc { blocks, .. } => (0..blocks.n_out)
                .step_by(g)
                .map(|i0| (i0..(i0 + g).min(blocks.n_out)).collect())
                .collect(),
            // g consecutive output blocks of one row tile.
            Layout::Rows {
                rows, tw, blocks, ..
            } => (0..rows.div_ceil(*tw))
                .flat_map(|r| {
                    let base = r * blocks.n_out;
                    (0..blocks.n_out)
                        .step_by(g)
                        .map(move |i0| (base + i0..base + (i0 + g).min(blocks.n_out)).collect())
                })
                .collect(),
            Layout::Dense { .. } | Layout::Circ { .. } => {
                let outs = self.output_cts();
                (0..outs)
                    .step_by(g)
                    .map(|i0| (i0..(i0 + g).min(outs)).collect())
                    .collect()
            }
        }
    }

    pub fn n(&self) -> usize {
        match self {
            Layout::Conv { tiling, .. } => tiling.n,
            Layout::Fc { blocks, .. } | Layout::Rows { blocks, .. } => blocks.n,
            Layout::Dense { tiling, .. } => tiling.n,
            Layout::Circ { tiling, .. } => tiling.n,
        }
    }

    pub fn input_cts(&self) -> usize {
        match self {
            Layout::Conv { tiling, .. } => tiling.input_tiles(),
            Layout::Fc { blocks, .. } => blocks.n_in,
            Layout::Rows {
                rows, tw, blocks, ..
            } => rows.div_ceil(*tw) * blocks.n_in,
            Layout::Dense { spec, tiling } => tiling.input_cts(spec),
            Layout::Circ { tiling, .. } => tiling.input_cts(),
        }
    }

    pub fn output_cts(&self) -> usize {
        match self {
            Layout::Conv { spec, tiling } => spec.m * tiling.spatial_tiles(),
            Layout::Fc { blocks, .. } => blocks.n_out,
            Layout::Rows {
                rows, tw, blocks, ..
            } => rows.div_ceil(*tw) * blocks.n_out,
            Layout::Dense { spec, tiling } => tiling.output_cts(spec),
            Layout::Circ { tiling, .. } => tiling.output_cts(),
        }
    }

    /// Number of distinct weight plaintexts (keys 0..weight_keys()).
    pub fn weight_keys(&self) -> usize {
        match self {
            Layout::Conv { spec, tiling } => spec.m * tiling.n_c,
            Layout::Fc { blocks, .. } | Layout::Rows { blocks, .. } => blocks.n_out * blocks.n_in,
            Layout::Dense { spec, tiling } => tiling.weight_keys(spec),
            Layout::Circ { tiling, .. } => tiling.n_g * tiling.n_c,
        }
    }

    /// Input polynomial `idx` (values in the ring) from a full input vector.
    pub fn encode_input(&self, x: &[u64], idx: usize) -> Vec<u64> {
        match self {
            Layout::Conv { spec, tiling } => {
                let wi = idx % tiling.n_w;
                let hi = (idx / tiling.n_w) % tiling.n_h;
                let ci = idx / (tiling.n_w * tiling.n_h);
                tiling.encode_input(spec, x, ci, hi, wi)
            }
            Layout::Fc { spec, blocks } => blocks.encode_input(spec, x, idx),
            Layout::Rows {
                rows,
                tw,
                spec,
                blocks,
            } => {
                let (a, j) = (idx / blocks.n_in, idx % blocks.n_in);
                let stride = blocks.row_span();
                let mut poly = vec![0u64; blocks.n];
                for tau in 0..tile_rows(*rows, *tw, a) {
                    let r = a * tw + tau;
                    let one =
                        blocks.encode_input(spec, &x[r * spec.inputs..(r + 1) * spec.inputs], j);
                    for (p, v) in one.into_iter().enumerate().filter(|(_, v)| *v != 0) {
                        poly[tau * stride + p] = v;
                    }
                }
                poly
            }
            Layout::Dense { spec, tiling } => tiling.encode_input(spec, x, idx),
            Layout::Circ { spec, tiling } => tiling.encode_input(spec, x, idx),
        }
    }

    /// The query support S_i of input polynomial `idx`, increasing: every coefficient some
    /// returned output depends on through a structurally possible weight position
    /// (`ConvTiling::query_support`, `FcBlocks::query_support`). Only c₀ at S_i is sent.
    pub fn query_support(&self, idx: usize) -> Vec<usize> {
        match self {
            Layout::Conv { spec, tiling } => {
                let wi = idx % tiling.n_w;
                let hi = (idx / tiling.n_w) % tiling.n_h;
                let ci = idx / (tiling.n_w * tiling.n_h);
                tiling.query_support(spec, ci, hi, wi)
            }
            Layout::Fc { spec, blocks } => blocks.query_support(spec, idx),
            Layout::Rows { .. } => self.rows_support(idx),
            Layout::Dense { spec, tiling } => tiling.query_support(spec, idx),
            Layout::Circ { spec, tiling } => tiling.query_support(spec, idx),
        }
    }

    /// |S_i| for every input polynomial, in input order (closed form for conv).
    pub fn query_support_lens(&self) -> Vec<usize> {
        match self {
            Layout::Conv { spec, tiling } => tiling.query_support_lens(spec),
            Layout::Fc { spec, blocks } => blocks.query_support_lens(spec),
            Layout::Rows {
                rows,
                tw,
                spec,
                blocks,
            } => {
                // |S_i| depends only on the rows of i's tile and the width of its chunk
                // (`rows_support`): at most four distinct pairs, each listed once.
                let mut memo: Vec<((usize, usize), usize)> = Vec::new();
                (0..self.input_cts())
                    .map(|i| {
                        let (a, j) = (i / blocks.n_in, i % blocks.n_in);
                        let key = (tile_rows(*rows, *tw, a), blocks.cols(spec, j));
                        match memo.iter().find(|(k, _)| *k == key) {
                            Some(&(_, len)) => len,
                            None => {
                                let len = self.rows_support(i).len();
                                memo.push((key, len));
                                len
                            }
                        }
                    })
                    .collect()
            }
            Layout::Dense { spec, tiling } => tiling.query_support_lens(spec),
            Layout::Circ { spec, tiling } => tiling.query_support_lens(spec),
        }
    }

    /// The multiset {|S_i|} as (size, multiplicity) pairs (for the cost model: few pairs, found
    /// without visiting every input polynomial).
    pub fn query_support_counts(&self) -> Vec<(usize, usize)> {
        match self {
            Layout::Conv { spec, tiling } => tiling.query_support_counts(spec),
            Layout::Fc { spec, blocks } => blocks.query_support_counts(spec),
            Layout::Rows { .. } => super::conv::histogram(&self.query_support_lens()),
            Layout::Dense { spec, tiling } => tiling.query_support_counts(spec),
            Layout::Circ { .. } => super::conv::histogram(&self.query_support_lens()),
        }
    }

    /// Whether this encoding only pays off with truncated queries (the strided FC variant:
    /// the same bytes as the block split otherwise).
    pub fn needs_truncation(&self) -> bool {
        matches!(self, Layout::Fc { blocks, .. } | Layout::Rows { blocks, .. } if blocks.strided)
    }

    /// Weight plaintext `key` as signed integers, or `None` when it is identically zero by structure.
    pub fn encode_weights(&self, ring: Ring, weights: &[u64], key: usize) -> Option<Vec<i64>> {
        match self {
            Layout::Conv { spec, tiling } => {
                let (m, ci) = (key / tiling.n_c, key % tiling.n_c);
                tiling.encode_filter(spec, ring, weights, m, ci)
            }
            Layout::Fc { spec, blocks } | Layout::Rows { spec, blocks, .. } => {
                let (i, j) = (key / blocks.n_in, key % blocks.n_in);
                Some(blocks.encode_block(spec, ring, weights, i, j))
            }
            Layout::Dense { spec, tiling } => Some(tiling.encode_filters(spec, ring, weights, key)),
            Layout::Circ { spec, tiling } => Some(tiling.encode_weights(spec, ring, weights, key)),
        }
    }

    /// Whether weight plaintext `key` exists (is not zero by structure).
    pub fn weight_used(&self, key: usize) -> bool {
        match self {
            Layout::Conv { spec, tiling } => {
                tiling.touches(spec, key / tiling.n_c, key % tiling.n_c)
            }
            Layout::Fc { .. }
            | Layout::Rows { .. }
            | Layout::Dense { .. }
            | Layout::Circ { .. } => true,
        }
    }

    /// The products (input polynomial, weight key) summed into output polynomial `o`.
    pub fn terms(&self, o: usize) -> Vec<(usize, usize)> {
        match self {
            Layout::Conv { spec, tiling } => {
                let s = tiling.spatial_tiles();
                let (m, st) = (o / s, o % s);
                (0..tiling.n_c)
                    .filter(|&ci| tiling.touches(spec, m, ci))
                    .map(|ci| (ci * s + st, m * tiling.n_c + ci))
                    .collect()
            }
            Layout::Fc { blocks, .. } => {
                (0..blocks.n_in).map(|j| (j, o * blocks.n_in + j)).collect()
            }
            Layout::Rows { blocks, .. } => {
                let (a, i) = (o / blocks.n_out, o % blocks.n_out);
                (0..blocks.n_in)
                    .map(|j| (a * blocks.n_in + j, i * blocks.n_in + j))
                    .collect()
            }
            // One product per output polynomial: weight key o / n_b on the key's input
            // polynomial in the same band.
            Layout::Dense { spec, tiling } => {
                let key = o / tiling.n_b;
                let ip = tiling.key_input(spec, key);
                vec![(ip * tiling.n_b + o % tiling.n_b, key)]
            }
            // Output group and spatial tile o sums its channel tiles' products.
            Layout::Circ { tiling, .. } => tiling.terms(o),
        }
    }

    /// Outputs of polynomial `o`: (coefficient index, index into the layer's output vector).
    pub fn positions(&self, o: usize) -> Vec<(usize, usize)> {
        match self {
            Layout::Conv { spec, tiling } => {
                let s = tiling.spatial_tiles();
                let (m, st) = (o / s, o % s);
                let (hi, wi) = (st / tiling.n_w, st % tiling.n_w);
                let plane = spec.out_h() * spec.out_w();
                tiling
                    .output_positions(spec, hi, wi)
                    .into_iter()
                    .map(|(c, i)| (c, m * plane + i))
                    .collect()
            }
            Layout::Fc { spec, blocks } => blocks.output_positions(spec, o),
            Layout::Rows {
                rows,
                tw,
                spec,
                blocks,
            } => {
                let (a, i) = (o / blocks.n_out, o % blocks.n_out);
                let stride = blocks.row_span();
                let one = blocks.output_positions(spec, i);
                (0..tile_rows(*rows, *tw, a))
                    .flat_map(|tau| {
                        let r = a * tw + tau;
                        one.iter()
                            .map(move |&(c, k)| (tau * stride + c, r * spec.outputs + k))
                    })
                    .collect()
            }
            Layout::Dense { spec, tiling } => tiling.output_positions(spec, o),
            Layout::Circ { spec, tiling } => tiling.output_positions(spec, o),
        }
    }

    /// Number of outputs in polynomial `o`.
    pub fn kept(&self, o: usize) -> usize {
        match self {
            Layout::Conv { spec, tiling } => {
                let st = o % tiling.spatial_tiles();
                tiling.kept(spec, st / tiling.n_w, st % tiling.n_w)
            }
            Layout::Fc { spec, blocks } => blocks.kept(spec, o),
            Layout::Rows {
                rows,
                tw,
                spec,
                blocks,
            } => {
                let a = o / blocks.n_out;
                tile_rows(*rows, *tw, a) * blocks.kept(spec, o % blocks.n_out)
            }
            Layout::Dense { spec, tiling } => tiling.kept(spec, o),
            Layout::Circ { spec, tiling } => tiling.kept(spec, o),
        }
    }

    /// Σ over output polynomials of the number of products.
    pub fn products(&self) -> usize {
        match self {
            // Without groups every output channel meets every channel tile.
            Layout::Conv { spec, tiling } if spec.groups == 1 => {
                spec.m * tiling.n_c * tiling.spatial_tiles()
            }
            Layout::Conv { spec, tiling } => tiling.touched_tiles(spec) * tiling.spatial_tiles(),
            Layout::Fc { blocks, .. } => blocks.n_in * blocks.n_out,
            Layout::Rows {
                rows, tw, blocks, ..
            } => rows.div_ceil(*tw) * blocks.n_in * blocks.n_out,
            Layout::Dense { .. } => self.output_cts(),
            Layout::Circ { tiling, .. } => tiling.output_cts() * tiling.n_c,
        }
    }

    /// Number of weight plaintexts that exist.
    pub fn used_weight_keys(&self) -> usize {
        match self {
            Layout::Conv { tiling, .. } => self.products() / tiling.spatial_tiles(),
            Layout::Fc { .. }
            | Layout::Rows { .. }
            | Layout::Dense { .. }
            | Layout::Circ { .. } => self.weight_keys(),
        }
    }

    /// Maximum number of nonzero weight coefficients an output coefficient meets, summed over
    /// the products that make it: each pairs the client's fresh noise at one position with one
    /// weight (docs/security.md, B_E). A conv filter polynomial holds one output channel's taps;
    /// an FC block polynomial holds d1 rows of its chunk's inputs, and every row's weights meet
    /// every kept coefficient through the noise of the positions outside the chunk.
    pub fn taps(&self) -> usize {
        match self {
            Layout::Conv { spec, .. } => spec.c_per_group() * spec.kh * spec.kw,
            Layout::Fc { spec, blocks } | Layout::Rows { spec, blocks, .. } => {
                spec.inputs * blocks.d1.min(spec.outputs)
            }
            Layout::Dense { spec, tiling } => tiling.taps(spec),
            Layout::Circ { spec, tiling } => tiling.taps(spec),
        }
    }
}

impl Layout {
    /// The query support of input polynomial `idx` of a [`Layout::Rows`]: FcBlocks' support of
    /// its chunk translated by τ·S for every row τ of the tile, mod N.
    fn rows_support(&self, idx: usize) -> Vec<usize> {
        let Layout::Rows {
            rows,
            tw,
            spec,
            blocks,
        } = self
        else {
            return Vec::new();
        };
        let (a, j) = (idx / blocks.n_in, idx % blocks.n_in);
        let stride = blocks.row_span();
        let one = blocks.query_support(spec, j);
        let mut hit = vec![false; blocks.n];
        for tau in 0..tile_rows(*rows, *tw, a) {
            for &p in &one {
                hit[(tau * stride + p) % blocks.n] = true;
            }
        }
        (0..blocks.n).filter(|&p| hit[p]).collect()
    }
}

/// Rows in tile `a` of a [`Layout::Rows`] (`tw` per tile, the last may hold fewer).
fn tile_rows(rows: usize, tw: usize, a: usize) -> usize {
    (rows - a * tw).min(tw)
}

/// A [`Layout::Rows`] of `blocks` with as many rows per polynomial as fit, balanced over the
/// tiles.
fn rows_layout(m: &MatMulSpec, spec: FcSpec, blocks: FcBlocks) -> Layout {
    let fit = (blocks.n / blocks.row_span()).clamp(1, m.rows);
    let tw = m.rows.div_ceil(m.rows.div_ceil(fit));
    Layout::Rows {
        rows: m.rows,
        tw,
        spec,
        blocks,
    }
}

/// Block splits with narrower output blocks than the widest that fit, so that several rows
/// share a polynomial: every input chunking of [`FcBlocks::candidates`] with d1 a power of two
/// below its widest (`shifted`: d0 a power of two, as [`FcBlocks::shifted_candidates`]).
fn narrow_splits(spec: &FcSpec, n: usize, shifted: bool) -> Vec<FcBlocks> {
    let wide = if shifted {
        FcBlocks::shifted_candidates(spec, n)
    } else {
        FcBlocks::candidates(spec, n)
    };
    let mut out = Vec::new();
    for b in wide {
        let mut d1 = 1;
        while d1 < b.d1 {
            if let Some(nb) = FcBlocks::new(spec, n, b.d0, d1, shifted) {
                out.push(nb);
            }
            d1 *= 2;
        }
    }
    out
}

/// The FC every row of a token × weight product computes.
fn row_fc(m: &MatMulSpec) -> FcSpec {
    FcSpec {
        inputs: m.inputs,
        outputs: m.outputs,
        block: 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::negacyclic;
    use rand::{Rng, SeedableRng};

    /// Every row-stacked encoding of token × weight products (block, shifted, strided splits,
    /// wide and narrow output blocks, one to many rows per polynomial) computes X·Wᵀ exactly as
    /// plain negacyclic products over Z_{2^64} summed over input chunks, and every input
    /// coefficient a kept output reads through a nonzero weight lies in the query support.
    #[test]
    fn stacked_rows_are_exact() {
        let ring = Ring::new(40).unwrap();
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(9);
        for (rows, inputs, outputs, n) in [
            (17usize, 16usize, 16usize, 256usize),
            (5, 8, 12, 64),
            (9, 20, 6, 128),
            (3, 64, 64, 1024),
            (33, 4, 4, 64),
        ] {
            let layer = LayerSpec::matmul(rows, inputs, outputs, 12);
            let w: Vec<u64> = (0..inputs * outputs)
                .map(|_| ring.reduce(rng.gen_range(-100i64..100) as u64))
                .collect();
            let x: Vec<u64> = (0..rows * inputs).map(|_| rng.gen()).collect();
            let mut want = vec![0u64; rows * outputs];
            for r in 0..rows {
                for o in 0..outputs {
                    want[r * outputs + o] = (0..inputs).fold(0u64, |a, i| {
                        a.wrapping_add(
                            x[r * inputs + i].wrapping_mul(ring.signed(w[o * inputs + i]) as u64),
                        )
                    });
                }
            }
            let cands: Vec<Layout> = Layout::candidates(&layer, n)
                .into_iter()
                .chain(Layout::packable_candidates(&layer, n))
                .collect();
            assert!(cands
                .iter()
                .any(|l| matches!(l, Layout::Rows { tw, .. } if *tw > 1)));
            for l in cands {
                let mut seen = 0;
                let lens = l.query_support_lens();
                for o in 0..l.output_cts() {
                    let mut acc = vec![0u64; n];
                    let positions = l.positions(o);
                    assert_eq!(positions.len(), l.kept(o), "{l:?}");
                    for (ip, key) in l.terms(o) {
                        let xi = l.encode_input(&x, ip);
                        let wp = l.encode_weights(ring, &w, key).unwrap();
                        for (k, v) in negacyclic(&xi, &wp).into_iter().enumerate() {
                            acc[k] = acc[k].wrapping_add(v);
                        }
                        let support = l.query_support(ip);
                        assert_eq!(support.len(), lens[ip]);
                        for (b, _) in wp.iter().enumerate().filter(|(_, v)| **v != 0) {
                            for &(c, _) in &positions {
                                let p = (c + n - b) % n;
                                assert!(support.binary_search(&p).is_ok(), "{l:?} reads {p}");
                            }
                        }
                    }
                    for (c, out) in positions {
                        assert_eq!(acc[c], want[out], "{l:?} output {out}");
                        seen += 1;
                    }
                }
                assert_eq!(seen, rows * outputs, "{l:?}");
                assert_eq!(l.outputs(), rows * outputs);
            }
        }
    }
}
