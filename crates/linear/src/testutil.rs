//! Plain-arithmetic oracles shared by the encoders' unit tests.

/// x·w in Z_{2^64}[X]/(X^N + 1) by schoolbook over w's nonzero coefficients (w sparse).
pub(crate) fn negacyclic(x: &[u64], w: &[i64]) -> Vec<u64> {
    let n = x.len();
    let mut out = vec![0u64; n];
    for (b, &wv) in w.iter().enumerate().filter(|(_, v)| **v != 0) {
        for (a, &xv) in x.iter().enumerate() {
            let p = xv.wrapping_mul(wv as u64);
            if a + b < n {
                out[a + b] = out[a + b].wrapping_add(p);
            } else {
                out[a + b - n] = out[a + b - n].wrapping_sub(p);
            }
        }
    }
    out
}
