//! The placement question behind dense packing, on residue classes (docs/protocols/falcon.md
//! § Placement): S classes (S | N), units (groups) at input classes A, filter κ (of the unit at
//! u_κ ∈ A) at weight residue r_κ. The pair (unit a, filter κ) lands on class a + r_κ (mod S);
//! filter κ's outputs are clean iff no pair (a ≠ u_κ, any filter) lands on u_κ + r_κ (a class
//! is treated as an atom: any foreign term in it is interference). A kept class reads, through
//! filter κ′, the class u_κ + r_κ − r_κ′: the query carries every class read.
//!
//! Three ways to place m units and as many filters as fit: the grid of [`super::DenseTiling`]
//! (A = {0..m}, r_κ = κ·m − u_κ, k = ⌊S/m⌋ filters), a greedy placement (units at 0..m, each
//! filter at the first residue that keeps every placed filter clean) and the exhaustive optimum
//! (most filters, then fewest classes read).

/// A placement: unit classes and (unit index, residue) per filter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    pub s: usize,
    pub units: Vec<usize>,
    pub filters: Vec<(usize, usize)>,
}

impl Placement {
    /// Whether every filter's output class is clean and the output classes are distinct.
    pub fn is_clean(&self) -> bool {
        let s = self.s;
        let useful: Vec<usize> = self
            .filters
            .iter()
            .map(|&(u, r)| (self.units[u] + r) % s)
            .collect();
        let mut seen = vec![false; s];
        for &c in &useful {
            if seen[c] {
                return false;
            }
            seen[c] = true;
        }
        for &(fu, r) in &self.filters {
            for (a, &ua) in self.units.iter().enumerate() {
                if a != fu && seen[(ua + r) % s] {
                    return false;
                }
            }
        }
        true
    }

    /// Classes the query must carry: u_κ + r_κ − r_κ′ over all filter pairs.
    pub fn classes_read(&self) -> usize {
        let s = self.s;
        let mut hit = vec![false; s];
        for &(u, r) in &self.filters {
            for &(_, r2) in &self.filters {
                hit[(self.units[u] + r + s - r2) % s] = true;
            }
        }
        hit.iter().filter(|&&h| h).count()
    }
}

/// The grid: units at 0..m, filter κ on unit κ at residue κ·m − κ, ⌊S/m⌋ filters (at most m).
pub fn grid(s: usize, m: usize) -> Placement {
    let k = (s / m).min(m);
    Placement {
        s,
        units: (0..m).collect(),
        filters: (0..k).map(|kp| (kp, (kp * m + s - kp) % s)).collect(),
    }
}

/// Greedy: units at 0..m; for each unit in turn, its filter at the smallest residue that keeps
/// the placement clean (skipped if none does).
pub fn greedy(s: usize, m: usize) -> Placement {
    let mut p = Placement {
        s,
        units: (0..m).collect(),
        filters: Vec::new(),
    };
    for u in 0..m {
        for r in 0..s {
            p.filters.push((u, r));
            if p.is_clean() {
                break;
            }
            p.filters.pop();
        }
    }
    p
}

/// The exhaustive optimum for m units in S classes: most clean filters (one per unit, as in a
/// depthwise layer), ties broken by fewest classes read. Units are placed up to translation
/// (class 0 taken). Exponential: for S ≤ 16.
pub fn exhaustive(s: usize, m: usize) -> Placement {
    assert!(s <= 16 && m <= s, "exhaustive search is for small cases");
    let mut best = grid(s, m);
    let mut best_key = (best.filters.len(), usize::MAX - best.classes_read());
    // Unit sets containing 0, as bit masks over classes 1..s.
    for mask in 0u32..(1 << (s - 1)) {
        if mask.count_ones() as usize != m - 1 {
            continue;
        }
        let units: Vec<usize> = std::iter::once(0)
            .chain((1..s).filter(|&c| mask >> (c - 1) & 1 == 1))
            .collect();
        let mut p = Placement {
            s,
            units,
            filters: Vec::new(),
        };
        search(&mut p, 0, &mut best, &mut best_key);
    }
    best
}

/// Backtracking over each unit's filter residue (or none), pruned when unclean or when the
/// remaining units cannot beat the best count.
fn search(p: &mut Placement, u: usize, best: &mut Placement, key: &mut (usize, usize)) {
    let m = p.units.len();
    if p.filters.len() + (m - u) < key.0 {
        return;
    }
    if u == m {
        let k = (p.filters.len(), usize::MAX - p.classes_read());
        if k > *key {
            *key = k;
            *best = p.clone();
        }
        return;
    }
    for r in 0..p.s {
        p.filters.push((u, r));
        if p.is_clean() {
            search(p, u + 1, best, key);
        }
        p.filters.pop();
    }
    search(p, u + 1, best, key);
}

/// A placement of m units on S classes and their filters (one per unit) in weight polynomials of
/// at most k filters, every weight polynomial clean against all m units.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Searched {
    /// Class of unit u.
    pub units: Vec<usize>,
    /// Weight polynomials: (unit, residue) per filter.
    pub chunks: Vec<Vec<(usize, usize)>>,
    /// Classes the query carries (the union over weight polynomials).
    pub reads: usize,
}

/// Classes read by a weight polynomial's kept outputs: U_κ − r_κ′ (mod S).
fn chunk_reads(s: usize, units: &[usize], chunk: &[(usize, usize)], hit: &mut [bool]) {
    for &(u, r) in chunk {
        for &(_, r2) in chunk {
            hit[(units[u] + r + s - r2) % s] = true;
        }
    }
}

/// A placement with few classes read, deterministic in (S, m, k) (both parties derive it):
/// randomized greedy — units on a random m-subset (the first try: 0..m), then each weight
/// polynomial's residues one filter at a time, the residue adding the fewest classes read among
/// those that keep it clean — best of 96 tries. `None` if no try places every filter. Memoized.
pub fn searched(s: usize, m: usize, k: usize) -> Option<std::sync::Arc<Searched>> {
    use rand_core::{RngCore, SeedableRng};
    /// Fisher–Yates with the seeded stream (the placement must not depend on a library's
    /// shuffle algorithm: both parties derive it).
    fn shuffle(v: &mut [usize], rng: &mut impl RngCore) {
        for i in (1..v.len()).rev() {
            v.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
        }
    }
    type Cache = std::sync::Mutex<
        std::collections::HashMap<(usize, usize, usize), Option<std::sync::Arc<Searched>>>,
    >;
    static CACHE: std::sync::OnceLock<Cache> = std::sync::OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(v) = cache.lock().expect("placement cache").get(&(s, m, k)) {
        return v.clone();
    }
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64((s * 1_000_003 + m * 1_009 + k) as u64);
    let mut best: Option<Searched> = None;
    for t in 0..96 {
        if m > s || k == 0 {
            break;
        }
        let mut classes: Vec<usize> = (0..s).collect();
        if t > 0 {
            shuffle(&mut classes, &mut rng);
        }
        let mut units: Vec<usize> = classes[..m].to_vec();
        units.sort_unstable();
        let mut order: Vec<usize> = (0..m).collect();
        shuffle(&mut order, &mut rng);
        let p = Placement {
            s,
            units: units.clone(),
            filters: Vec::new(),
        };
        let mut hit = vec![false; s];
        let mut chunks = Vec::new();
        let mut ok = true;
        for c in order.chunks(k) {
            let mut chunk: Vec<(usize, usize)> = Vec::new();
            for &u in c {
                let mut choice: Option<(usize, u64, usize)> = None;
                for r in 0..s {
                    chunk.push((u, r));
                    let trial = Placement {
                        filters: chunk.clone(),
                        ..p.clone()
                    };
                    if trial.is_clean() {
                        let mut h = hit.clone();
                        chunk_reads(s, &units, &chunk, &mut h);
                        let key = (h.iter().filter(|&&x| x).count(), rng.next_u64(), r);
                        if choice.is_none_or(|c| (key.0, key.1) < (c.0, c.1)) {
                            choice = Some(key);
                        }
                    }
                    chunk.pop();
                }
                match choice {
                    Some((_, _, r)) => chunk.push((u, r)),
                    None => {
                        ok = false;
                        break;
                    }
                }
            }
            if !ok {
                break;
            }
            chunk_reads(s, &units, &chunk, &mut hit);
            chunks.push(chunk);
        }
        let reads = hit.iter().filter(|&&x| x).count();
        if ok && best.as_ref().is_none_or(|b| reads < b.reads) {
            best = Some(Searched {
                units,
                chunks,
                reads,
            });
        }
    }
    let out = best.map(std::sync::Arc::new);
    cache
        .lock()
        .expect("placement cache")
        .insert((s, m, k), out.clone());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn searched_placements_are_clean_and_read_fewer_classes_than_the_grid() {
        // The grid reads all S classes of an input polynomial (k per unit).
        for (s, m, k) in [(16, 8, 4), (16, 8, 2), (32, 16, 2), (8, 4, 2)] {
            let pl = searched(s, m, k).expect("placement");
            assert_eq!(pl.units.len(), m);
            assert_eq!(pl.chunks.iter().map(|c| c.len()).sum::<usize>(), m);
            for c in &pl.chunks {
                assert!(c.len() <= k);
                let p = Placement {
                    s,
                    units: pl.units.clone(),
                    filters: c.clone(),
                };
                assert!(p.is_clean());
            }
            assert!(pl.reads < m * k, "S={s} m={m} k={k}: {} classes", pl.reads);
            assert_eq!(searched(s, m, k), Some(pl), "deterministic");
        }
    }

    #[test]
    fn grid_is_clean_and_reads_k_squared_classes() {
        for (s, m) in [(16, 4), (16, 8), (8, 2), (16, 2), (64, 8)] {
            let g = grid(s, m);
            assert!(g.is_clean());
            let k = (s / m).min(m);
            assert_eq!(g.filters.len(), k);
            assert_eq!(g.classes_read(), k * k);
        }
    }

    #[test]
    fn greedy_and_exhaustive_are_clean_and_exhaustive_is_best() {
        for (s, m) in [(8, 2), (8, 3), (8, 4), (8, 5)] {
            let (g, gr, ex) = (grid(s, m), greedy(s, m), exhaustive(s, m));
            for p in [&g, &gr, &ex] {
                assert!(p.is_clean(), "{p:?}");
            }
            assert!(ex.filters.len() >= g.filters.len().max(gr.filters.len()));
        }
        // S = 8, m = 4: the grid fits 2 filters, the exhaustive optimum 3 (6 classes read).
        let ex = exhaustive(8, 4);
        assert_eq!((ex.filters.len(), ex.classes_read()), (3, 6));
    }
}
