use fhe::{diag, Grid, Layout};
use std::time::Instant;
fn main() {
    let n = 1 << 15;
    let (c, o, hw) = (64usize, 64usize, 64usize);
    let cv = nn::ir::Conv2d {
        in_shape: [c, hw, hw],
        out_shape: [o, hw, hw],
        kernel: [3, 3],
        stride: [1, 1],
        pads: [1; 4],
        groups: 1,
        weight: (0..o * c * 9).map(|i| 1.0 + (i % 7) as f32).collect(),
        bias: vec![0.0; o],
    };
    let lin = Layout::dense_p(c, Grid { h: hw, w: hw, k: 1 }, n).unwrap();
    let plan = diag::DiagPlan::new(&cv, &lin, &lin, n);
    let ds: Vec<usize> = plan.offsets[0][0].clone();
    let ti = diag::SlotTable::new(&lin, 0, n);
    let t = Instant::now();
    let mut s = 0.0;
    for &d in &ds {
        let v = diag::diagonal(&cv, &lin, (&ti, &ti), d, d - d % plan.step);
        s += v[7];
    }
    let e = t.elapsed().as_secs_f64() / ds.len() as f64 * 1e3;
    println!("{} diagonals, {e:.3} ms each ({s})", ds.len());
}
