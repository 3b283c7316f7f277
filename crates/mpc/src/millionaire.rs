//! The millionaire comparison [CrypTFlow2 §4.1, Algorithm 1] on random COTs.
//!
//! P0 holds `a`, P1 holds `b` (both n-bit); they obtain XOR shares of `[a > b]`.
//! * The inputs are cut into chunks of 2 bits (the top chunk may have 1). Leaf `j` computes
//!   shares of `gt_j = [a_j > b_j]` and `eq_j = [a_j = b_j]` with one 1-of-4 OT (P1 chooses by
//!   `b_j`, P0's table is indexed by it) from two random COTs and the N−1 trick of
//!   [`crate::cots`]: 2 + 3·2 bits, or 2 + 3·1 when `eq_j` is not needed. Where chunks of 3 bits
//!   (1-of-8 OTs, 3 + 7·2 bits) make the tree one level shallower, the tree has exactly 2^D
//!   leaves of 2 and 3 bits instead (e.g. 12 bits: 4 leaves, 2 levels, not 6 leaves and 3): a
//!   level is a flight, worth more than the extra table bits on any network but the fastest.
//!   With `Session::set_comparison_chooser(P0)` the roles swap (P0 chooses, so its first flight
//!   can leave with its previous message) and both parties complement their inputs:
//!   `[¬b > ¬a] = [a > b]`.
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
    affine_choose, affine_send, one_of_n_answer_bits, one_of_n_choose, one_of_n_send,
    AffineReceiver, AffineSender, Group, RecvCots, SendCots,
};
use crate::session::{Party, Session};
use crate::{MpcError, Result};

/// Bits per leaf chunk (1-of-4 OT).
const LEAF_BITS: u32 = 2;
/// Widest leaf chunk (1-of-8 OT), used only where it removes a tree level.
pub(crate) const LEAF_BITS_MAX: u32 = LEAF_BITS + 1;
/// Widest leaf chunk of a flat comparison ([`flat`]: 1-of-64 OTs, two leaves for 12 bits).
pub(crate) const FLAT_LEAF_MAX: u32 = 6;

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
    /// Leaves of [`LEAF_BITS`] bits from the least significant up, unless leaves of up to
    /// `max_leaf` bits make the tree shallower: then exactly 2^D leaves for the least depth D
    /// they allow, as even as the bits allow, the widest ones lowest (leaf 0 needs no `eq`, so
    /// its larger table is the cheapest). Each level removed is one flight less, for more
    /// leaf-table bits.
    fn new(lo: u32, hi: u32, eq_all: bool, max_leaf: u32) -> Tree {
        let n = hi - lo;
        let depth = |leaves: u32| leaves.next_power_of_two().trailing_zeros();
        let (plain, wide) = (n.div_ceil(LEAF_BITS), n.div_ceil(max_leaf));
        let mut widths = Vec::new();
        if depth(wide) < depth(plain) {
            // 2^D leaves of ⌊n/2^D⌋ or ⌈n/2^D⌉ bits (≤ max_leaf, since 2^D ≥ ⌈n/max_leaf⌉).
            let count = 1u32 << depth(wide);
            let (base, extra) = (n / count, n % count);
            widths.extend((0..count).map(|k| base + (k < extra) as u32));
        } else {
            let mut left = n;
            while left > 0 {
                let m = LEAF_BITS.min(left);
                widths.push(m);
                left -= m;
            }
        }
        let mut leaves = Vec::with_capacity(widths.len());
        let mut b = lo;
        for m in widths {
            leaves.push((b, m));
            b += m;
        }
        debug_assert_eq!(b, hi);
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

/// The trees a comparison runs and whether a last step joins two of them
/// (`gt = gt_upper ⊕ eq_upper ∧ gt_lower`).
struct Shape {
    trees: Vec<Tree>,
    join: bool,
}

fn plan(bits: u32, split: u32, leaves: u32) -> Shape {
    if split == 0 || split >= bits {
        Shape {
            trees: vec![Tree::new(0, bits, false, leaves)],
            join: false,
        }
    } else {
        Shape {
            trees: vec![
                Tree::new(0, split, false, leaves),
                Tree::new(split, bits, true, leaves),
            ],
            join: true,
        }
    }
}

/// The flat comparison ([`Session::compare_flat`]): the low ⌊bits/2⌋ and the high ⌈bits/2⌉ bits
/// as two trees of leaves up to [`FLAT_LEAF_MAX`] bits (one leaf each up to 12 bits; wider
/// leaves beyond 24 bits, so that each tree stays one AND level), not
/// joined: the caller joins them in arithmetic shares, in the flight that converts the result.
fn flat(bits: u32) -> Shape {
    let lo = bits / 2;
    // Halves of more than 12 bits (a carry out of more than 24) keep two leaves each, so one
    // AND level, with leaves wider than FLAT_LEAF_MAX: a level fewer for 2^{w}-entry leaf OTs.
    let leaf = FLAT_LEAF_MAX.max((bits - lo).div_ceil(2));
    Shape {
        trees: vec![
            Tree::new(0, lo, false, leaf),
            Tree::new(lo, bits, true, leaf),
        ],
        join: false,
    }
}

/// Exact payload bits (both directions) of [`Session::millionaire`] on `n` elements of `bits`
/// bits with the given split, excluding the COTs' own traffic; and the number of COTs used
/// (P0 as sender, P1 as sender).
pub(crate) fn millionaire_cost(n: usize, bits: u32, split: u32) -> (u64, usize, usize) {
    millionaire_cost_leaves(n, bits, split, LEAF_BITS_MAX)
}

/// [`millionaire_cost`] with leaves of up to `leaves` bits ([`Session::set_comparison_leaves`]).
pub(crate) fn millionaire_cost_leaves(
    n: usize,
    bits: u32,
    split: u32,
    leaves: u32,
) -> (u64, usize, usize) {
    shape_cost(n, &plan(bits, split, leaves))
}

/// [`millionaire_cost`] of [`Session::compare_flat`] on `bits` ≥ 2 bits.
pub(crate) fn flat_cost(n: usize, bits: u32) -> (u64, usize, usize) {
    shape_cost(n, &flat(bits))
}

/// AND levels of the known-sign truncation's comparison on `bits` bits in `form` (the flat
/// form's join is not a level: it rides in the B2A's flight).
pub(crate) fn levels(bits: u32, form: crate::TruncForm) -> u32 {
    let shape = if form.is_flat_at(bits) {
        flat(bits)
    } else {
        plan(bits, 0, LEAF_BITS_MAX)
    };
    step_bits(1, &shape.trees, shape.join).len() as u32
}

fn shape_cost(n: usize, shape: &Shape) -> (u64, usize, usize) {
    let trees = &shape.trees;
    let mut comm = 0u64;
    let mut cot0 = 0usize;
    let mut ands = 0usize;
    for t in trees {
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
    if shape.join {
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
        let n = v.len();
        let (_, cot0, cot1) = millionaire_cost_leaves(n, bits, split, self.comparison_leaves());
        let (mut s, mut r) = self.compare_setup(ch, v, bits, 1, (cot0, cot1))?;
        self.compare_with(ch, v, bits, split, &mut s, &mut r, None)
    }

    /// The comparison on COTs the caller fetched (exactly [`millionaire_cost`]'s counts at the
    /// front of `s`, `r`, in the directions of [`Session::compare_role`]), optionally followed
    /// by a `tail` step whose first message rides on the comparison's last flight. Inputs must
    /// be validated by the caller.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn compare_with<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        v: &[u64],
        bits: u32,
        split: u32,
        s: &mut SendCots,
        r: &mut RecvCots,
        tail: Option<&mut dyn Tail>,
    ) -> Result<(Vec<u8>, Vec<u8>)> {
        if v.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        let shape = plan(bits, split, self.comparison_leaves());
        Ok(self.run_shape(ch, v, bits, shape, s, r, tail)?.result())
    }

    /// XOR shares of `[a_hi > b_hi]`, `[a_hi = b_hi]` and `[a_lo > b_lo]` for the high ⌈bits/2⌉
    /// and low ⌊bits/2⌋ bits of `bits`-bit inputs (2 ≤ bits ≤ 64; P0 passes `a`, P1 `b`, the
    /// chooser as [`Session::millionaire`]): the comparison without its join, whose result is
    /// `gt_hi ⊕ eq_hi ∧ gt_lo` (= `gt_hi + eq_hi·gt_lo`, the two terms exclusive). Leaves of up to
    /// 6 bits: up to 12 bits this is one flight of choices and one of answers, no AND level.
    pub(crate) fn compare_flat<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        v: &[u64],
        bits: u32,
    ) -> Result<(Vec<u8>, Vec<u8>, Vec<u8>)> {
        let cots = flat_cost(v.len(), bits);
        let (mut s, mut r) = self.compare_setup(ch, v, bits, 2, (cots.1, cots.2))?;
        if v.is_empty() {
            return Ok((Vec::new(), Vec::new(), Vec::new()));
        }
        let mut st = self.run_shape(ch, v, bits, flat(bits), &mut s, &mut r, None)?;
        let upper = st
            .nodes
            .pop()
            .and_then(|mut t| t.pop())
            .expect("upper root");
        let lower = st
            .nodes
            .pop()
            .and_then(|mut t| t.pop())
            .expect("lower root");
        Ok((
            upper.gt,
            upper.eq.expect("the upper tree keeps eq"),
            lower.gt,
        ))
    }

    /// This party's comparison input for the carry out of the low `bits` bits of `x0 + x1`:
    /// P0 passes `x0 mod 2^bits`, P1 `¬x1 mod 2^bits`, and `[a > b]` is then the carry
    /// (`a + x1 mod 2^bits ≥ 2^bits` exactly when `a > 2^bits − 1 − x1 mod 2^bits`).
    pub(crate) fn carry_inputs(&self, x: &[u64], bits: u32) -> Vec<u64> {
        let mk = mask(bits);
        match self.party() {
            Party::P0 => x.iter().map(|&a| a & mk).collect(),
            Party::P1 => x.iter().map(|&b| !b & mk).collect(),
        }
    }

    /// Checks a comparison's inputs (`min ≤ bits ≤ 64`, every value below 2^bits) and fetches
    /// its COTs, `(cot0, cot1)` = (the protocol's P0 sending, its P1 sending), in the directions
    /// of [`Session::compare_role`].
    fn compare_setup<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        v: &[u64],
        bits: u32,
        min: u32,
        (cot0, cot1): (usize, usize),
    ) -> Result<(SendCots, RecvCots)> {
        if !(min..=64).contains(&bits) {
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
        match self.compare_role() {
            Party::P0 => self.cots(ch, cot0, cot1),
            Party::P1 => self.cots(ch, cot1, cot0),
        }
    }

    /// Runs the trees of `shape` on `v` (non-empty, validated) with the COTs at the front of
    /// `s`, `r` (exactly [`shape_cost`]'s, in the directions of [`Session::compare_role`]); the
    /// state holds each tree's root, joined when `shape.join`.
    #[allow(clippy::too_many_arguments)]
    fn run_shape<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        v: &[u64],
        bits: u32,
        shape: Shape,
        s: &mut SendCots,
        r: &mut RecvCots,
        mut tail: Option<&mut dyn Tail>,
    ) -> Result<TreeState> {
        let n = v.len();
        let (_, cot0, cot1) = shape_cost(n, &shape);
        let Shape { trees, join } = shape;
        // With the roles swapped (`Session::set_comparison_chooser`) both parties complement
        // their inputs: [¬b > ¬a] = [a > b], and the same for the split's low parts.
        let role = self.compare_role();
        let flipped: Vec<u64>;
        let v = if role == self.party() {
            v
        } else {
            flipped = v.iter().map(|&x| !x & mask(bits)).collect();
            &flipped[..]
        };
        let (mut s, mut r) = match role {
            Party::P0 => (s.split_front(cot0), r.split_front(cot1)),
            Party::P1 => (s.split_front(cot1), r.split_front(cot0)),
        };
        let tail_bits = tail.as_ref().map_or(0, |t| t.peer_bits());
        // Whether this party sent the comparison's last flight (then its tail message went with
        // it and it still has to read the peer's), and the reader over the last flight received.
        let mut sent_last = false;

        // Leaves: P1 sends its 1-of-4 choices; P0 answers together with its first AND message.
        // From then on every flight carries the sender's message for the step the receiver is
        // waiting on plus the next one, so each flight completes one tree level (pipelined).
        let steps = step_bits(n, &trees, join);
        let mut st = TreeState {
            trees,
            nodes: Vec::new(),
            joined: false,
        };
        let chunk = |x: u64, lo: u32, m: u32| (x >> lo) & mask(m);
        let mut pending: Option<AndRound>;
        let mut next_step = 0usize; // index into `steps` of the next step to prepare
        match role {
            Party::P1 => {
                let mut w = BitWriter::default();
                let mut states = Vec::new();
                for t in &st.trees {
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
                let last = steps.is_empty();
                let bits = answer_bits
                    + steps.first().copied().unwrap_or(0)
                    + if last { tail_bits } else { 0 };
                let got = crate::bits::recv_bits(ch, bits, "millionaire leaves")?;
                let mut rd = BitReader::new(&got, bits, "millionaire leaves")?;
                let mut it = states.into_iter();
                for t in &st.trees {
                    let mut tn = Vec::new();
                    for k in 0..t.leaves.len() {
                        let (os, _) = it.next().expect("one state per leaf");
                        tn.push(split_node(
                            os.finish(&mut rd, "millionaire leaves")?,
                            t.needs_eq(k),
                        ));
                    }
                    st.nodes.push(tn);
                }
                // Step 0 (if any): prepare ours, finish with P0's, then prepare step 1.
                let mut w = BitWriter::default();
                if next_step < steps.len() {
                    let round = and_prepare(&mut s, &mut r, st.next_ops(), &mut w);
                    st.apply(round.finish(&mut rd)?);
                    next_step += 1;
                }
                pending = None;
                if next_step < steps.len() {
                    pending = Some(and_prepare(&mut s, &mut r, st.next_ops(), &mut w));
                    next_step += 1;
                }
                if last {
                    // P0's answers were the last flight: run our tail step now.
                    if let Some(t) = tail.as_deref_mut() {
                        let (g, _) = st.peek_result();
                        let mut w2 = BitWriter::default();
                        t.prepare(&g, &mut w2);
                        t.finish(&mut rd)?;
                        self.send(ch, w2.finish())?;
                    }
                } else {
                    if pending.is_none() {
                        // Our flight is the last one: the tail message rides on it.
                        if let Some(t) = tail.as_deref_mut() {
                            t.prepare(&st.peek_result().0, &mut w);
                        }
                        sent_last = true;
                    }
                    self.send(ch, w.finish())?;
                }
            }
            Party::P0 => {
                let e_bits: u64 = st
                    .trees
                    .iter()
                    .flat_map(|t| t.leaves.iter())
                    .map(|&(_, m)| n as u64 * m as u64)
                    .sum();
                let got = crate::bits::recv_bits(ch, e_bits, "millionaire choices")?;
                let mut rd = BitReader::new(&got, e_bits, "millionaire choices")?;
                let mut w = BitWriter::default();
                for t in &st.trees {
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
                    st.nodes.push(tn);
                }
                pending = None;
                if next_step < steps.len() {
                    pending = Some(and_prepare(&mut s, &mut r, st.next_ops(), &mut w));
                    next_step += 1;
                } else {
                    // No tree steps: the leaf answers are the last flight.
                    if let Some(t) = tail.as_deref_mut() {
                        t.prepare(&st.peek_result().0, &mut w);
                    }
                    sent_last = true;
                }
                self.send(ch, w.finish())?;
            }
        }

        // Generic pipelined loop: `pending` is our prepared step `next_step − 1`, already sent.
        while let Some(round) = pending.take() {
            let cur = next_step - 1;
            let has_next = next_step < steps.len();
            let bits = steps[cur]
                + if has_next {
                    steps[next_step]
                } else {
                    tail_bits
                };
            let got = crate::bits::recv_bits(ch, bits, "millionaire AND")?;
            let mut rd = BitReader::new(&got, bits, "millionaire AND")?;
            st.apply(round.finish(&mut rd)?);
            if has_next {
                let mut w = BitWriter::default();
                let round = and_prepare(&mut s, &mut r, st.next_ops(), &mut w);
                st.apply(round.finish(&mut rd)?);
                next_step += 1;
                if next_step < steps.len() {
                    pending = Some(and_prepare(&mut s, &mut r, st.next_ops(), &mut w));
                    next_step += 1;
                } else {
                    if let Some(t) = tail.as_deref_mut() {
                        t.prepare(&st.peek_result().0, &mut w);
                    }
                    sent_last = true;
                }
                self.send(ch, w.finish())?;
            } else if let Some(t) = tail.as_deref_mut() {
                // We received the last flight (with the peer's tail message).
                let mut w = BitWriter::default();
                t.prepare(&st.peek_result().0, &mut w);
                t.finish(&mut rd)?;
                self.send(ch, w.finish())?;
            }
        }
        if sent_last {
            if let Some(t) = tail {
                let got = crate::bits::recv_bits(ch, tail_bits, "tail")?;
                t.finish(&mut BitReader::new(&got, tail_bits, "tail")?)?;
            }
        }
        debug_assert_eq!(next_step, steps.len());
        debug_assert!(s.is_exhausted() && r.is_exhausted());
        Ok(st)
    }
}

/// A step run right after a comparison, on its result: its first message travels with the
/// comparison's last flight, saving a round trip.
pub(crate) trait Tail {
    /// Bits of the peer's message.
    fn peer_bits(&self) -> u64;
    /// Writes this party's message from its shares of the comparison result.
    fn prepare(&mut self, gt: &[u8], w: &mut BitWriter);
    /// Reads the peer's message.
    fn finish(&mut self, rd: &mut BitReader<'_>) -> Result<()>;
}

/// The ANDs of one tree step: operand bits `xs[k]` and `w_k`-bit vectors `ys[k]`.
struct Ops {
    xs: Vec<Vec<u8>>,
    ys: Vec<Vec<u64>>,
    ws: Vec<u32>,
}

/// Both trees' current nodes; a step combines pairs at one level of every tree in lockstep, and
/// a final step joins the two trees of a split comparison.
struct TreeState {
    trees: Vec<Tree>,
    nodes: Vec<Vec<Node>>,
    joined: bool,
}

impl TreeState {
    fn levels_left(&self) -> bool {
        self.nodes.iter().any(|tn| tn.len() > 1)
    }

    /// The ANDs of the next step (callers only ask while steps remain).
    fn next_ops(&self) -> Ops {
        let mut ops = Ops {
            xs: Vec::new(),
            ys: Vec::new(),
            ws: Vec::new(),
        };
        if self.levels_left() {
            for (t, tn) in self.trees.iter().zip(&self.nodes) {
                for i in 0..tn.len() / 2 {
                    let (hi, lo) = (&tn[2 * i + 1], &tn[2 * i]);
                    let want_eq = t.needs_eq(i);
                    ops.xs.push(hi.eq.clone().expect("a hi node always has eq"));
                    ops.ys.push(match (&lo.eq, want_eq) {
                        (Some(e), true) => lo
                            .gt
                            .iter()
                            .zip(e)
                            .map(|(&g, &q)| g as u64 | (q as u64) << 1)
                            .collect(),
                        _ => lo.gt.iter().map(|&g| g as u64).collect(),
                    });
                    ops.ws.push(1 + want_eq as u32);
                }
            }
        } else {
            // Join: gt = gt_upper ⊕ eq_upper ∧ gt_lower.
            let (lower, upper) = (&self.nodes[0][0], &self.nodes[1][0]);
            ops.xs.push(upper.eq.clone().expect("upper root has eq"));
            ops.ys.push(lower.gt.iter().map(|&g| g as u64).collect());
            ops.ws.push(1);
        }
        ops
    }

    fn apply(&mut self, z: Vec<Vec<u64>>) {
        let mut zi = z.into_iter();
        if !self.levels_left() {
            let zz = zi.next().expect("join result");
            let upper = &mut self.nodes[1][0];
            for (g, &q) in upper.gt.iter_mut().zip(&zz) {
                *g ^= (q & 1) as u8;
            }
            self.joined = true;
            return;
        }
        for (t, tn) in self.trees.iter().zip(self.nodes.iter_mut()) {
            let old = std::mem::take(tn);
            let count = old.len();
            let mut it = old.into_iter();
            for i in 0..count / 2 {
                let _lo = it.next().expect("lo");
                let hi = it.next().expect("hi");
                let zz = zi.next().expect("one result per AND");
                let gt = hi
                    .gt
                    .iter()
                    .zip(&zz)
                    .map(|(&g, &q)| g ^ (q & 1) as u8)
                    .collect();
                let eq = t
                    .needs_eq(i)
                    .then(|| zz.iter().map(|&q| (q >> 1) as u8 & 1).collect());
                tn.push(Node { gt, eq });
            }
            if let Some(top) = it.next() {
                tn.push(top);
            }
        }
    }

    /// The result without consuming the state (after the last step).
    fn peek_result(&self) -> (Vec<u8>, Vec<u8>) {
        if self.nodes.len() == 1 {
            let g = self.nodes[0][0].gt.clone();
            return (g.clone(), g);
        }
        (self.nodes[1][0].gt.clone(), self.nodes[0][0].gt.clone())
    }

    /// (full result, low-part result).
    fn result(mut self) -> (Vec<u8>, Vec<u8>) {
        if self.nodes.len() == 1 {
            let g = self.nodes.pop().expect("root").pop().expect("root").gt;
            return (g.clone(), g);
        }
        debug_assert!(self.joined);
        let upper = self
            .nodes
            .pop()
            .expect("upper")
            .pop()
            .expect("upper root")
            .gt;
        let lower = self
            .nodes
            .pop()
            .expect("lower")
            .pop()
            .expect("lower root")
            .gt;
        (upper, lower)
    }
}

/// Bits of one party's message for each tree step (both parties' are equal).
fn step_bits(n: usize, trees: &[Tree], join: bool) -> Vec<u64> {
    let mut counts: Vec<usize> = trees.iter().map(|t| t.leaves.len()).collect();
    let mut out = Vec::new();
    while counts.iter().any(|&c| c > 1) {
        let mut bits = 0u64;
        for (t, c) in trees.iter().zip(counts.iter_mut()) {
            for i in 0..*c / 2 {
                bits += n as u64 * (2 + t.needs_eq(i) as u64);
            }
            *c = c.div_ceil(2);
        }
        out.push(bits);
    }
    if join {
        out.push(n as u64 * 2);
    }
    out
}

/// One party's half of an AND step between preparing its message and reading the peer's.
struct AndRound {
    rs: AffineReceiver,
    ss: AffineSender,
    x: Vec<u8>,
    y: Vec<u64>,
    lens: Vec<usize>,
}

/// Writes this party's message for `x_k ∧ y_k` (XOR-shared bit times XOR-shared `w_k`-bit
/// vector): as OT receiver the bits `e` for its share of x, as OT sender `y` for its share of Y
/// (affine OTs, both directions).
fn and_prepare(s: &mut SendCots, r: &mut RecvCots, ops: Ops, w: &mut BitWriter) -> AndRound {
    let lens: Vec<usize> = ops.ys.iter().map(|v| v.len()).collect();
    let x: Vec<u8> = ops.xs.into_iter().flatten().collect();
    let wv: Vec<u32> = ops
        .ys
        .iter()
        .zip(&ops.ws)
        .flat_map(|(v, &w)| std::iter::repeat_n(w, v.len()))
        .collect();
    let y: Vec<u64> = ops.ys.into_iter().flatten().collect();
    let group = |i: usize| Group::Xor(wv[i]);
    let rs = affine_choose(r, &group, &x, w);
    let zero = vec![0u64; x.len()];
    let ss = affine_send(s, &group, &zero, &y, w);
    AndRound { rs, ss, x, y, lens }
}

impl AndRound {
    /// Reads the peer's message for the same step and returns this party's shares of each AND.
    fn finish(self, rd: &mut BitReader<'_>) -> Result<Vec<Vec<u64>>> {
        let sv = self.ss.finish(rd);
        let rv = self.rs.finish(rd, "millionaire AND")?;
        let mut out = Vec::with_capacity(self.lens.len());
        let mut k = 0;
        for &len in &self.lens {
            let mut o = Vec::with_capacity(len);
            for _ in 0..len {
                o.push(((self.x[k] & 1) as u64 * self.y[k]) ^ sv[k] ^ rv[k]);
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
