//! Max-pooling over k×k windows and argmax, as tournaments of `max(a, b) = b + ReLU(a − b)`
//! [CrypTFlow2 §4.4]: ⌈log2(window)⌉ levels, each one batched ReLU over all pairs. Correct when
//! every difference `a − b` of compared values fits the signed range (|a − b| < 2^{ℓ−1}), which
//! the fixed-point range assumption |x| < 2^{ℓ−2} guarantees.

use transport::Channel;

use crate::session::{Party, Session};
use crate::{MpcError, Result, Ring, Shares};

/// Shape of a pooling input: `channels` planes (N·C for a batch) of `height` × `width`, row-major.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolShape {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
}

/// A max-pooling window as in ONNX MaxPool: kernel, strides, and padding (top, left, bottom,
/// right). Padded positions never win (they are skipped, as if −∞).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolSpec {
    pub kernel: (usize, usize),
    pub stride: (usize, usize),
    pub pads: (usize, usize, usize, usize),
}

impl PoolSpec {
    /// A k×k window with stride k and no padding.
    pub fn square(k: usize) -> PoolSpec {
        PoolSpec {
            kernel: (k, k),
            stride: (k, k),
            pads: (0, 0, 0, 0),
        }
    }

    /// Output height and width for an input shape.
    pub fn output_hw(&self, s: &PoolShape) -> Result<(usize, usize)> {
        let (kh, kw) = self.kernel;
        let (sh, sw) = self.stride;
        let (pt, pl, pb, pr) = self.pads;
        if kh == 0 || kw == 0 {
            return Err(MpcError::InvalidPool {
                what: "kernel size 0",
                value: 0,
            });
        }
        if sh == 0 || sw == 0 {
            return Err(MpcError::InvalidPool {
                what: "stride 0",
                value: 0,
            });
        }
        if pt >= kh || pb >= kh || pl >= kw || pr >= kw {
            return Err(MpcError::InvalidPool {
                what: "padding not smaller than the kernel",
                value: pt.max(pb).max(pl).max(pr),
            });
        }
        let hp = s.height + pt + pb;
        let wp = s.width + pl + pr;
        if hp < kh || wp < kw {
            return Err(MpcError::InvalidPool {
                what: "kernel larger than the padded input",
                value: kh.max(kw),
            });
        }
        Ok(((hp - kh) / sh + 1, (wp - kw) / sw + 1))
    }

    /// For every output position (channel-major, row-major), the input indices in its window.
    pub fn windows(&self, s: &PoolShape) -> Result<Vec<Vec<usize>>> {
        let (oh, ow) = self.output_hw(s)?;
        let (kh, kw) = self.kernel;
        let (sh, sw) = self.stride;
        let (pt, pl, _, _) = self.pads;
        let mut out = Vec::with_capacity(s.channels * oh * ow);
        for c in 0..s.channels {
            for i in 0..oh {
                for j in 0..ow {
                    let mut win = Vec::with_capacity(kh * kw);
                    for di in 0..kh {
                        for dj in 0..kw {
                            let (y, x) = (
                                (i * sh + di) as isize - pt as isize,
                                (j * sw + dj) as isize - pl as isize,
                            );
                            if y >= 0 && x >= 0 && (y as usize) < s.height && (x as usize) < s.width
                            {
                                win.push(
                                    c * s.height * s.width + y as usize * s.width + x as usize,
                                );
                            }
                        }
                    }
                    if win.is_empty() {
                        return Err(MpcError::InvalidPool {
                            what: "window with no input element",
                            value: out.len(),
                        });
                    }
                    out.push(win);
                }
            }
        }
        Ok(out)
    }
}

impl Session {
    /// Max-pooling of `x` (layout `shape`, NCHW row-major) with window `spec`. Output layout:
    /// `channels × out_h × out_w`.
    pub fn maxpool<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        x: &Shares,
        shape: PoolShape,
        spec: PoolSpec,
    ) -> Result<Shares> {
        let len = shape.channels * shape.height * shape.width;
        if x.len() != len {
            return Err(MpcError::LengthMismatch {
                what: "maxpool input",
                expected: len,
                got: x.len(),
            });
        }
        let wins = spec.windows(&shape)?;
        let groups: Vec<Vec<u64>> = wins
            .iter()
            .map(|w| w.iter().map(|&i| x.data[i]).collect())
            .collect();
        let data = self.max_groups(ch, x.ring, groups)?;
        Ok(Shares {
            ring: x.ring,
            scale: x.scale,
            data,
        })
    }

    /// The maximum of each group of shared values.
    pub fn max_groups<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        ring: Ring,
        mut groups: Vec<Vec<u64>>,
    ) -> Result<Vec<u64>> {
        for g in &groups {
            ring.check("max input", g)?;
            if g.is_empty() {
                return Err(MpcError::InvalidPool {
                    what: "empty group",
                    value: 0,
                });
            }
        }
        while groups.iter().any(|g| g.len() > 1) {
            let mut diffs = Vec::new();
            for g in &groups {
                for p in g.chunks_exact(2) {
                    diffs.push(ring.sub(p[0], p[1]));
                }
            }
            let r = self
                .relu(
                    ch,
                    &Shares {
                        ring,
                        scale: 0,
                        data: diffs,
                    },
                )?
                .data;
            let mut it = r.into_iter();
            for g in groups.iter_mut() {
                let mut next = Vec::with_capacity(g.len().div_ceil(2));
                for p in g.chunks(2) {
                    next.push(if p.len() == 2 {
                        ring.add(p[1], it.next().expect("one ReLU per pair"))
                    } else {
                        p[0]
                    });
                }
                *g = next;
            }
        }
        Ok(groups.into_iter().map(|g| g[0]).collect())
    }

    /// For each row of `x` (`rows` rows of `x.len() / rows` values), additive shares of the index
    /// of its first maximum and of the maximum itself.
    pub fn argmax<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        x: &Shares,
        rows: usize,
    ) -> Result<(Vec<u64>, Vec<u64>)> {
        let ring = x.ring;
        ring.check("argmax input", &x.data)?;
        if rows == 0 || !x.len().is_multiple_of(rows) || x.is_empty() {
            return Err(MpcError::LengthMismatch {
                what: "argmax rows",
                expected: rows,
                got: x.len(),
            });
        }
        let k = x.len() / rows;
        let p0 = self.party() == Party::P0;
        // (value, index) per candidate; public indices are P0's share.
        let mut groups: Vec<Vec<(u64, u64)>> = x
            .data
            .chunks(k)
            .map(|row| {
                row.iter()
                    .enumerate()
                    .map(|(i, &v)| (v, if p0 { ring.reduce(i as u64) } else { 0 }))
                    .collect()
            })
            .collect();
        while groups.iter().any(|g| g.len() > 1) {
            let mut dv = Vec::new();
            let mut di = Vec::new();
            for g in &groups {
                for p in g.chunks_exact(2) {
                    dv.push(ring.sub(p[0].0, p[1].0));
                    di.push(ring.sub(p[0].1, p[1].1));
                }
            }
            let m = dv.len();
            let mut both = dv.clone();
            both.extend_from_slice(&di);
            let (_, sel) = self.drelu_mux(ch, ring, &dv, 0, &both, 2)?;
            let mut j = 0;
            for g in groups.iter_mut() {
                let mut next = Vec::with_capacity(g.len().div_ceil(2));
                for p in g.chunks(2) {
                    if p.len() == 2 {
                        next.push((ring.add(p[1].0, sel[j]), ring.add(p[1].1, sel[m + j])));
                        j += 1;
                    } else {
                        next.push(p[0]);
                    }
                }
                *g = next;
            }
        }
        Ok(groups.into_iter().map(|g| (g[0].1, g[0].0)).unzip())
    }
}
