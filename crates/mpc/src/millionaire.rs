//! The millionaire comparison [CrypTFlow2 §4.1, Algorithm 1] on random COTs.
//!
//! P0 holds `a`, P1 holds `b` (both n-bit); they obtain XOR shares of `[a > b]`.
//! * The inputs are cut into chunks of 2 bits (the top chunk may have 1). Leaf `j` computes
//!   shares of `gt_j = [a_j > b_j]` and `eq_j = [a_j = b_j]` with one 1-of-4 OT (P1 chooses by
//!   `b_j`, P0's table is indexed by it) from two random COTs and the N−1 trick of
//!   [`crate::cots`]: 2 + 3·2 bits, or 2 + 3·1 when `eq_j` is not needed.
//! * Leaves are combined pairwise up a tree: `gt = gt_hi ⊕ eq_hi ∧ gt_lo`, `eq = eq_hi ∧ eq_lo`,
//!   one level per round trip. Both ANDs share the operand `eq_hi`, so a node is one AND of a bit
//!   with a 2-bit vector: each party is OT receiver with its share of `eq_hi` and OT sender of its
//!   share of `(gt_lo, eq_lo)` (affine OT), 2·(1 + 2) bits in all.
//! * `eq` is only computed where some ancestor uses it: the nodes on the least-significant spine
//!   (index 0 at every level) never need it, so those leaves send 1-bit messages and those nodes
//!   cost 2·(1 + 1) bits.
//!
//! With `split` set, the low `split` bits form their own subtree whose `gt` is returned as well
//! (the carry of the low bits, used by exact truncation); the high part then needs `eq` at its
//! root, and one more AND joins the two.

use transport::Channel;

use crate::bits::{mask, BitReader, BitWriter};
use crate::cots::{
    affine_choose, affine_send, one_of_n_answer_bits, one_of_n_choose, one_of_n_send, Group,
    RecvCots, SendCots,
};
use crate::session::{Party, Session};
use crate::{MpcError, Result};

/// Bits per leaf chunk (1-of-4 OT).
const LEAF_BITS: u32 = 2;

/// One party's XOR shares of a comparison node, one bit per element.
struct Node {
    gt: Vec<u8>,
    eq: Option<Vec<u8>>,
}

/// A comparison tree over bits `[lo, hi)`.
struct Tree {
    /// (bit offset, width) of each leaf, least significant first.
    leaves: Vec<(u32, u32)>,
    /// Whether the root's `eq` is needed (then every node needs it).
    eq_all: bool,
}

impl Tree {
    fn new(lo: u32, hi: u32, eq_all: bool) -> Tree {
        let mut leaves = Vec::new();
        let mut b = lo;
        while b < hi {
            let m = LEAF_BITS.min(hi - b);
            leaves.push((b, m));
            b += m;
        }
        Tree { leaves, eq_all }
    }

    fn needs_eq(&self, index: usize) -> bool {
        self.eq_all || index > 0
    }

    /// Number of AND operations (each on all elements) to reduce this tree to its root.
    fn and_count(&self) -> usize {
        self.leaves.len().saturating_sub(1)
    }
}

fn plan(bits: u32, split: u32) -> Vec<Tree> {
    if split == 0 || split >= bits {
        vec![Tree::new(0, bits, false)]
    } else {
        vec![Tree::new(0, split, false), Tree::new(split, bits, true)]
    }
}

/// Exact payload bits (both directions) of [`Session::millionaire`] on `n` elements of `bits`
/// bits with the given split, excluding the COTs' own traffic; and the number of COTs used
/// (P0 as sender, P1 as sender).
pub(crate) fn millionaire_cost(n: usize, bits: u32, split: u32) -> (u64, usize, usize) {
    let trees = plan(bits, split);
    let mut comm = 0u64;
    let mut cot0 = 0usize;
    let mut ands = 0usize;
    for t in &trees {
        for (k, &(_, m)) in t.leaves.iter().enumerate() {
            let w = 1 + t.needs_eq(k) as u32;
            comm += n as u64 * (m as u64 + ((1u64 << m) - 1) * w as u64);
            cot0 += n * m as usize;
        }
        // Each AND: both parties send 1 + w bits; w = 2 unless the parent is on the spine.
        let mut count = t.leaves.len();
        while count > 1 {
            for i in 0..count / 2 {
                let w = 1 + t.needs_eq(i) as u64;
                comm += n as u64 * 2 * (1 + w);
            }
            count = count.div_ceil(2);
        }
        ands += t.and_count();
    }
    if trees.len() == 2 {
        comm += n as u64 * 2 * 2;
        ands += 1;
    }
    (comm, cot0 + n * ands, n * ands)
}

impl Session {
    /// XOR shares of `[a > b]`, where P0 passes `a` and P1 passes `b`, each `bits` bits
    /// (1 ≤ bits ≤ 64) unsigned.
    pub fn millionaire<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        v: &[u64],
        bits: u32,
    ) -> Result<Vec<u8>> {
        Ok(self.compare(ch, v, bits, 0)?.0)
    }

    /// As [`Session::millionaire`], also returning shares of `[a mod 2^split > b mod 2^split]`
    /// when `0 < split < bits` (else a copy of the full result).
    pub(crate) fn compare<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        v: &[u64],
        bits: u32,
        split: u32,
    ) -> Result<(Vec<u8>, Vec<u8>)> {
        if !(1..=64).contains(&bits) {
            return Err(MpcError::InvalidCompareWidth { bits });
        }
        if let Some(index) = v.iter().position(|&x| x & !mask(bits) != 0) {
            return Err(MpcError::ValueOutOfRange {
                what: "millionaire input",
                index,
                value: v[index],
                bits,
            });
        }
        let n = v.len();
        let trees = plan(bits, split);
        let (_, cot0, cot1) = millionaire_cost(n, bits, split);
        let (mut s, mut r) = match self.party() {
            Party::P0 => self.cots(ch, cot0, cot1)?,
            Party::P1 => self.cots(ch, cot1, cot0)?,
        };
        if n == 0 {
            return Ok((Vec::new(), Vec::new()));
        }

        // Leaves: P1 sends its 1-of-4 choices, P0 answers.
        let mut nodes: Vec<Vec<Node>> = Vec::with_capacity(trees.len());
        let chunk = |x: u64, lo: u32, m: u32| (x >> lo) & mask(m);
        match self.party() {
            Party::P1 => {
                let mut w = BitWriter::default();
                let mut states = Vec::new();
                for t in &trees {
                    for (k, &(lo, m)) in t.leaves.iter().enumerate() {
                        let g = Group::Xor(1 + t.needs_eq(k) as u32);
                        let c: Vec<u64> = v.iter().map(|&x| chunk(x, lo, m)).collect();
                        states.push((
                            one_of_n_choose(&mut r, m, g, &c, &mut w),
                            one_of_n_answer_bits(n, m, g),
                        ));
                    }
                }
                let answer_bits: u64 = states.iter().map(|s| s.1).sum();
                self.send(ch, w.finish())?;
                let got = crate::bits::recv_bits(ch, answer_bits, "millionaire leaves")?;
                let mut rd = BitReader::new(&got, answer_bits, "millionaire leaves")?;
                let mut it = states.into_iter();
                for t in &trees {
                    let mut tn = Vec::new();
                    for k in 0..t.leaves.len() {
                        let (st, _) = it.next().expect("one state per leaf");
                        tn.push(split_node(
                            st.finish(&mut rd, "millionaire leaves")?,
                            t.needs_eq(k),
                        ));
                    }
                    nodes.push(tn);
                }
            }
            Party::P0 => {
                let e_bits: u64 = trees
                    .iter()
                    .flat_map(|t| t.leaves.iter())
                    .map(|&(_, m)| n as u64 * m as u64)
                    .sum();
                let got = crate::bits::recv_bits(ch, e_bits, "millionaire choices")?;
                let mut rd = BitReader::new(&got, e_bits, "millionaire choices")?;
                let mut w = BitWriter::default();
                for t in &trees {
                    let mut tn = Vec::new();
                    for (k, &(lo, m)) in t.leaves.iter().enumerate() {
                        let eq = t.needs_eq(k);
                        let g = Group::Xor(1 + eq as u32);
                        let table = |i: usize, b: u64| {
                            let a = chunk(v[i], lo, m);
                            let eq_bit = if eq { ((a == b) as u64) << 1 } else { 0 };
                            (a > b) as u64 | eq_bit
                        };
                        tn.push(split_node(
                            one_of_n_send(&mut s, m, g, n, &mut rd, &table, &mut w),
                            eq,
                        ));
                    }
                    nodes.push(tn);
                }
                self.send(ch, w.finish())?;
            }
        }

        // Tree levels, all trees in lockstep; one AND batch per level.
        loop {
            let mut xs: Vec<&[u8]> = Vec::new();
            let mut ys: Vec<Vec<u64>> = Vec::new();
            let mut ws: Vec<u32> = Vec::new();
            for (t, tn) in trees.iter().zip(&nodes) {
                for i in 0..tn.len() / 2 {
                    let (hi, lo) = (&tn[2 * i + 1], &tn[2 * i]);
                    let want_eq = t.needs_eq(i);
                    xs.push(hi.eq.as_deref().expect("a hi node always has eq"));
                    ys.push(match (&lo.eq, want_eq) {
                        (Some(e), true) => lo
                            .gt
                            .iter()
                            .zip(e)
                            .map(|(&g, &q)| g as u64 | (q as u64) << 1)
                            .collect(),
                        _ => lo.gt.iter().map(|&g| g as u64).collect(),
                    });
                    ws.push(1 + want_eq as u32);
                }
            }
            if xs.is_empty() {
                break;
            }
            let z = self.and_batch(ch, &mut s, &mut r, &xs, &ys, &ws)?;
            let mut zi = z.into_iter();
            for (t, tn) in trees.iter().zip(nodes.iter_mut()) {
                let old = std::mem::take(tn);
                let count = old.len();
                let mut it = old.into_iter();
                for i in 0..count / 2 {
                    let lo = it.next().expect("lo");
                    let hi = it.next().expect("hi");
                    drop(lo);
                    let zz = zi.next().expect("one result per AND");
                    let gt = hi
                        .gt
                        .iter()
                        .zip(&zz)
                        .map(|(&g, &q)| g ^ (q & 1) as u8)
                        .collect();
                    let eq = if t.needs_eq(i) {
                        Some(zz.iter().map(|&q| (q >> 1) as u8 & 1).collect())
                    } else {
                        None
                    };
                    tn.push(Node { gt, eq });
                }
                if let Some(top) = it.next() {
                    tn.push(top);
                }
            }
        }

        let mut roots: Vec<Node> = nodes
            .into_iter()
            .map(|mut tn| tn.pop().expect("root"))
            .collect();
        if roots.len() == 1 {
            let g = roots.pop().expect("root").gt;
            return Ok((g.clone(), g));
        }
        let upper = roots.pop().expect("upper root");
        let lower = roots.pop().expect("lower root");
        let y: Vec<u64> = lower.gt.iter().map(|&g| g as u64).collect();
        let z = self.and_batch(
            ch,
            &mut s,
            &mut r,
            &[upper.eq.as_deref().expect("upper eq")],
            &[y],
            &[1],
        )?;
        let gt = upper
            .gt
            .iter()
            .zip(&z[0])
            .map(|(&g, &q)| g ^ q as u8)
            .collect();
        debug_assert!(s.is_exhausted() && r.is_exhausted());
        Ok((gt, lower.gt))
    }

    /// Shares of `x_k ∧ y_k` for XOR-shared bits `x_k` and XOR-shared `w_k`-bit vectors `y_k`
    /// (each a vector over the same elements): one affine OT per direction and element.
    pub(crate) fn and_batch<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        s: &mut SendCots,
        r: &mut RecvCots,
        xs: &[&[u8]],
        ys: &[Vec<u64>],
        ws: &[u32],
    ) -> Result<Vec<Vec<u64>>> {
        let x: Vec<u8> = xs.iter().flat_map(|v| v.iter().copied()).collect();
        let y: Vec<u64> = ys.iter().flat_map(|v| v.iter().copied()).collect();
        let wv: Vec<u32> = ys
            .iter()
            .zip(ws)
            .flat_map(|(v, &w)| std::iter::repeat_n(w, v.len()))
            .collect();
        let total = x.len();
        let group = |i: usize| Group::Xor(wv[i]);
        let mut w = BitWriter::default();
        let rs = affine_choose(r, &group, &x, &mut w);
        let zero = vec![0u64; total];
        let ss = affine_send(s, &group, &zero, &y, &mut w);
        let peer_bits = total as u64 + wv.iter().map(|&w| w as u64).sum::<u64>();
        let got = self.exchange(ch, w.finish(), peer_bits, "AND")?;
        let mut rd = BitReader::new(&got, peer_bits, "AND")?;
        let sv = ss.finish(&mut rd);
        let rv = rs.finish(&mut rd, "AND")?;
        let mut out = Vec::with_capacity(ys.len());
        let mut k = 0;
        for v in ys {
            let mut o = Vec::with_capacity(v.len());
            for _ in 0..v.len() {
                o.push(((x[k] & 1) as u64 * y[k]) ^ sv[k] ^ rv[k]);
                k += 1;
            }
            out.push(o);
        }
        Ok(out)
    }
}

fn split_node(v: Vec<u64>, eq: bool) -> Node {
    let gt = v.iter().map(|&x| (x & 1) as u8).collect();
    let eq = eq.then(|| v.iter().map(|&x| ((x >> 1) & 1) as u8).collect());
    Node { gt, eq }
}
