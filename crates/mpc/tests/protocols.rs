#![allow(clippy::needless_range_loop)]
//! Every protocol against its plaintext function (mpc::plain) on random and edge inputs, for
//! ℓ ∈ {32, 37, 41, 64}, over the in-memory channel.

mod common;
use privinfer_mpc as mpc;

use common::*;
use mpc::{plain, reconstruct, FieldModulus, Party, PoolShape, PoolSpec, Ring, Shares};
use rand::Rng;

fn pick(p: Party, a: &[u64], b: &[u64]) -> Vec<u64> {
    if p == Party::P0 {
        a.to_vec()
    } else {
        b.to_vec()
    }
}

#[test]
fn millionaire_matches_comparison() {
    let mut r = rng(1);
    // Every width: the tree's leaf widths (2 or 3 bits) and depth depend on it.
    for bits in 1u32..=64 {
        let m = if bits == 64 {
            u64::MAX
        } else {
            (1u64 << bits) - 1
        };
        let mut a: Vec<u64> = (0..200).map(|_| r.gen::<u64>() & m).collect();
        let mut b: Vec<u64> = (0..200).map(|_| r.gen::<u64>() & m).collect();
        for (x, y) in [
            (0, 0),
            (m, m),
            (0, m),
            (m, 0),
            (1, 0),
            (0, 1),
            (m - 1, m),
            (m, m - 1),
        ] {
            a.push(x);
            b.push(y);
        }
        for i in 0..50 {
            // equal high parts, differing low bits (within a leaf, and from a random bit down)
            a.push((b[i] ^ (r.gen::<u64>() & 7)) & m);
            b.push(b[i]);
            let cut = 1u64.checked_shl(r.gen_range(0..bits)).unwrap_or(0);
            a.push((b[i] ^ (r.gen::<u64>() & cut.wrapping_sub(1)) ^ cut) & m);
            b.push(b[i]);
        }
        // Leaves of up to 3 bits (the default) and up to 4–6 (`set_comparison_leaves`), either
        // party choosing: every tree shape the widths give.
        for (leaves, chooser) in [
            (3, Party::P1),
            (4, Party::P0),
            (5, Party::P1),
            (6, Party::P0),
        ] {
            let (aa, bb) = (a.clone(), b.clone());
            let (g0, g1) = run(bits as u64 + 100 * leaves as u64, move |p, s, ch| {
                s.set_comparison_leaves(leaves);
                s.set_comparison_chooser(chooser);
                s.millionaire(ch, &pick(p, &aa, &bb), bits).unwrap()
            });
            for i in 0..a.len() {
                assert_eq!(
                    g0[i] ^ g1[i],
                    (a[i] > b[i]) as u8,
                    "bits {bits} leaves {leaves} a {:#x} b {:#x}",
                    a[i],
                    b[i]
                );
            }
        }
    }
}

#[test]
fn relu_drelu_relu6_exact() {
    let mut r = rng(2);
    for l in RINGS {
        let ring = Ring::new(l).unwrap();
        let s = 12;
        let vals = edge_values(ring, s, 300, &mut r);
        let (xs, s0, s1) = sharings(ring, &vals, &mut r);
        let (out0, out1) = run(l as u64, move |p, sess, ch| {
            let x = Shares::new(ring, s, pick(p, &s0, &s1)).unwrap();
            let d = sess.drelu(ch, ring, &x.data).unwrap();
            let y = sess.relu(ch, &x).unwrap();
            let y6 = sess.relu6(ch, &x).unwrap();
            (d, y.data, y6.data)
        });
        for i in 0..xs.len() {
            assert_eq!(
                out0.0[i] ^ out1.0[i],
                plain::drelu(ring, xs[i]),
                "drelu l={l} x={:#x}",
                xs[i]
            );
        }
        assert_eq!(
            reconstruct(ring, &out0.1, &out1.1).unwrap(),
            xs.iter().map(|&x| plain::relu(ring, x)).collect::<Vec<_>>(),
            "relu l={l}"
        );
        for i in 0..xs.len() {
            if plain::in_known_sign_range(ring, xs[i]) {
                assert_eq!(
                    ring.add(out0.2[i], out1.2[i]),
                    plain::relu6(ring, xs[i], s),
                    "relu6 l={l} x={}",
                    ring.to_signed(xs[i])
                );
            }
        }
    }
}

#[test]
fn relu_approx_within_documented_set() {
    let mut r = rng(3);
    for l in RINGS {
        let ring = Ring::new(l).unwrap();
        let s = 12;
        let mut vals = edge_values(ring, s, 300, &mut r);
        vals.extend((0..200).map(|_| r.gen_range(0..1u64 << s)));
        let (xs, s0, s1) = sharings(ring, &vals, &mut r);
        let (o0, o1) = run(100 + l as u64, move |p, sess, ch| {
            sess.relu_approx(ch, &Shares::new(ring, s, pick(p, &s0, &s1)).unwrap())
                .unwrap()
                .data
        });
        let mut inexact = 0;
        for i in 0..xs.len() {
            let got = ring.add(o0[i], o1[i]);
            let allowed = plain::relu_approx_allowed(ring, xs[i], s);
            assert!(
                allowed.contains(&got),
                "l={l} x={} got {}",
                ring.to_signed(xs[i]),
                ring.to_signed(got)
            );
            inexact += (got != plain::relu(ring, xs[i])) as usize;
        }
        // The approximation does occur (small positives whose shares carry), so the allowed set
        // is not vacuous.
        assert!(inexact > 0, "l={l}: no approximate output seen");
    }
}

#[test]
fn trunc_exact_floor() {
    let mut r = rng(4);
    for l in RINGS {
        let ring = Ring::new(l).unwrap();
        for s in [1, 12, l - 2] {
            let vals = edge_values(ring, s.min(l - 3), 200, &mut r);
            let (xs, s0, s1) = sharings(ring, &vals, &mut r);
            let (o0, o1) = run(200 + l as u64 + s as u64, move |p, sess, ch| {
                sess.trunc(ch, &Shares::new(ring, 24, pick(p, &s0, &s1)).unwrap(), s)
                    .unwrap()
                    .data
            });
            for i in 0..xs.len() {
                assert_eq!(
                    ring.add(o0[i], o1[i]),
                    plain::trunc(ring, xs[i], s),
                    "l={l} s={s} x={}",
                    ring.to_signed(xs[i])
                );
            }
        }
    }
}

#[test]
fn trunc_known_sign_exact_in_range() {
    let mut r = rng(5);
    for l in RINGS {
        let ring = Ring::new(l).unwrap();
        for s in [1, 12, l - 2] {
            let vals: Vec<u64> =
                into_known_sign_range(ring, edge_values(ring, s.min(l - 3), 300, &mut r));
            let (xs, s0, s1) = sharings(ring, &vals, &mut r);
            let (o0, o1) = run(300 + l as u64 + s as u64, move |p, sess, ch| {
                sess.trunc_known_sign(ch, &Shares::new(ring, 24, pick(p, &s0, &s1)).unwrap(), s)
                    .unwrap()
                    .data
            });
            for i in 0..xs.len() {
                assert!(plain::in_known_sign_range(ring, xs[i]));
                assert_eq!(
                    ring.add(o0[i], o1[i]),
                    plain::trunc(ring, xs[i], s),
                    "l={l} s={s} x={}",
                    ring.to_signed(xs[i])
                );
            }
        }
    }
}

#[test]
fn trunc_relu6_exact_in_range() {
    // Values at scale 2^{2s} around the clamp points 0 and 6·2^s (after the shift), and at the
    // ends of the known-sign range |x| < 2^{ℓ−2}.
    let mut r = rng(13);
    for l in RINGS {
        let ring = Ring::new(l).unwrap();
        for s in [1, 12, (l - 5) / 2] {
            let mut vals = edge_values(ring, 2 * s, 200, &mut r);
            for d in [-2i64, -1, 0, 1, 2] {
                for base in [0i64, 6 << (2 * s), 3 << (2 * s), (6 << (2 * s)) + (1 << s)] {
                    vals.push(ring.from_signed(base + d));
                    vals.push(ring.from_signed(base + (d << s)));
                }
                vals.push(ring.from_signed((1i64 << (l - 2)) - 1 + d.min(0)));
                vals.push(ring.from_signed(-(1i64 << (l - 2)) + d.max(0)));
            }
            let vals: Vec<u64> = into_known_sign_range(ring, vals);
            let (xs, s0, s1) = sharings(ring, &vals, &mut r);
            let (o0, o1) = run(1300 + l as u64 + s as u64, move |p, sess, ch| {
                sess.trunc_relu6(ch, &Shares::new(ring, 2 * s, pick(p, &s0, &s1)).unwrap(), s)
                    .unwrap()
                    .data
            });
            for i in 0..xs.len() {
                assert!(plain::in_known_sign_range(ring, xs[i]));
                assert_eq!(
                    ring.add(o0[i], o1[i]),
                    plain::relu6(ring, plain::trunc(ring, xs[i], s), s),
                    "l={l} s={s} x={}",
                    ring.to_signed(xs[i])
                );
            }
        }
    }
}

#[test]
fn mux_b2a_mul() {
    let mut r = rng(6);
    for l in RINGS {
        let ring = Ring::new(l).unwrap();
        let vals = edge_values(ring, 12, 100, &mut r);
        let (xs, s0, s1) = sharings(ring, &vals, &mut r);
        let n = xs.len();
        let d0: Vec<u8> = (0..n).map(|_| r.gen::<u8>() & 1).collect();
        let d1: Vec<u8> = (0..n).map(|_| r.gen::<u8>() & 1).collect();
        let m = n / 4;
        let ys: Vec<u64> = (0..m).map(|i| xs[(i * 7 + 3) % n]).collect();
        let (y0, y1) = mpc::share(ring, &ys, &mut r);
        let (dd0, dd1) = (d0.clone(), d1.clone());
        let (s0c, s1c) = (s0.clone(), s1.clone());
        let (o0, o1) = run(400 + l as u64, move |p, sess, ch| {
            let d = if p == Party::P0 {
                dd0.clone()
            } else {
                dd1.clone()
            };
            let x = pick(p, &s0c, &s1c);
            let mx = sess.mux(ch, ring, &d, &x).unwrap();
            let b = sess.b2a(ch, ring, &d).unwrap();
            let xa = Shares::new(ring, 12, x[..m].to_vec()).unwrap();
            let ya = Shares::new(ring, 12, pick(p, &y0, &y1)).unwrap();
            let prod = sess.mul(ch, &xa, &ya).unwrap();
            assert_eq!(prod.scale, 24);
            (mx, b, prod.data)
        });
        for i in 0..n {
            let d = d0[i] ^ d1[i];
            assert_eq!(
                ring.add(o0.0[i], o1.0[i]),
                plain::mux(ring, d, xs[i]),
                "mux l={l}"
            );
            assert_eq!(ring.add(o0.1[i], o1.1[i]), d as u64, "b2a l={l}");
        }
        for i in 0..o0.2.len() {
            assert_eq!(
                ring.add(o0.2[i], o1.2[i]),
                ring.mul(xs[i], ys[i]),
                "mul l={l}"
            );
        }
    }
}

#[test]
fn maxpool_and_argmax() {
    let mut r = rng(7);
    for l in RINGS {
        let ring = Ring::new(l).unwrap();
        let shape = PoolShape {
            channels: 3,
            height: 7,
            width: 6,
        };
        let lim = 1i64 << (l - 3);
        let vals: Vec<u64> = (0..shape.channels * shape.height * shape.width)
            .map(|i| {
                ring.from_signed(if i % 11 == 0 {
                    5
                } else {
                    r.gen_range(-lim..lim)
                })
            })
            .collect();
        let (s0, s1) = mpc::share(ring, &vals, &mut r);
        let specs = [
            PoolSpec::square(2),
            PoolSpec {
                kernel: (3, 3),
                stride: (2, 2),
                pads: (1, 1, 1, 1),
            },
            PoolSpec {
                kernel: (3, 2),
                stride: (1, 2),
                pads: (0, 0, 0, 0),
            },
        ];
        let rows = 6;
        let (a0, a1) = (s0.clone(), s1.clone());
        let (o0, o1) = run(500 + l as u64, move |p, sess, ch| {
            let x = Shares::new(ring, 12, pick(p, &a0, &a1)).unwrap();
            let pools: Vec<Vec<u64>> = specs
                .iter()
                .map(|&sp| sess.maxpool(ch, &x, shape, sp).unwrap().data)
                .collect();
            let am = sess.argmax(ch, &x, rows).unwrap();
            (pools, am)
        });
        for (k, sp) in specs.iter().enumerate() {
            let wins = sp.windows(&shape).unwrap();
            assert_eq!(o0.0[k].len(), wins.len());
            for (j, w) in wins.iter().enumerate() {
                let want = plain::max(ring, &w.iter().map(|&i| vals[i]).collect::<Vec<_>>());
                assert_eq!(
                    ring.add(o0.0[k][j], o1.0[k][j]),
                    want,
                    "pool {k} window {j}"
                );
            }
        }
        let k = vals.len() / rows;
        for (i, row) in vals.chunks(k).enumerate() {
            assert_eq!(
                ring.add(o0.1 .0[i], o1.1 .0[i]),
                plain::argmax(ring, row) as u64,
                "argmax row {i}"
            );
            assert_eq!(ring.add(o0.1 .1[i], o1.1 .1[i]), plain::max(ring, row));
        }
    }
    // Opening to the client.
    let ring = Ring::new(41).unwrap();
    let vals: Vec<u64> = (0..50u64)
        .map(|i| ring.reduce(i.wrapping_mul(0x1234_5678_9abc)))
        .collect();
    let (s0, s1) = mpc::share(ring, &vals, &mut r);
    let (o0, o1) = run(601, move |p, sess, ch| {
        sess.open_to(ch, ring, &pick(p, &s0, &s1), Party::P1)
            .unwrap()
    });
    assert_eq!(o0, None);
    assert_eq!(o1, Some(vals));
    // Ties resolve to the first maximum.
    let ring = Ring::new(37).unwrap();
    let vals: Vec<u64> = [3i64, 9, -4, 9, 9, 1, 0]
        .iter()
        .map(|&v| ring.from_signed(v))
        .collect();
    let (s0, s1) = mpc::share(ring, &vals, &mut r);
    let (o0, o1) = run(600, move |p, sess, ch| {
        sess.argmax(ch, &Shares::new(ring, 0, pick(p, &s0, &s1)).unwrap(), 1)
            .unwrap()
            .0
    });
    assert_eq!(ring.add(o0[0], o1[0]), 1);
}

#[test]
fn field_ring_conversions() {
    let mut r = rng(8);
    for l in RINGS {
        let ring = Ring::new(l).unwrap();
        for p in [65537u64, (1 << 61) - 1, 4_294_967_291] {
            let fp = FieldModulus::new(p).unwrap();
            let h = ((p - 1) / 2).min(ring.max_signed() as u64) as i64;
            let mut signed: Vec<i64> = vec![0, 1, -1, h, -h, h - 1, -(h - 1)];
            signed.extend((0..100).map(|_| r.gen_range(-h..=h)));
            // Field shares of the signed values, including wrapping sharings.
            let fv: Vec<u64> = signed
                .iter()
                .map(|&v| v.rem_euclid(p as i64) as u64)
                .collect();
            let mut f0 = Vec::new();
            for (i, _) in fv.iter().enumerate() {
                f0.push(match i % 3 {
                    0 => r.gen_range(0..p),
                    1 => p - 1,
                    _ => 0,
                });
            }
            let f1: Vec<u64> = fv.iter().zip(&f0).map(|(&v, &a)| (v + p - a) % p).collect();
            let rv: Vec<u64> = signed.iter().map(|&v| ring.from_signed(v)).collect();
            let (r0, r1) = mpc::share(ring, &rv, &mut r);
            let (o0, o1) = run(700 + l as u64 + p % 97, move |pa, sess, ch| {
                let a = sess
                    .field_to_ring(ch, fp, &pick(pa, &f0, &f1), ring)
                    .unwrap();
                let b = sess
                    .ring_to_field(ch, ring, &pick(pa, &r0, &r1), fp)
                    .unwrap();
                (a, b)
            });
            for i in 0..signed.len() {
                assert_eq!(
                    ring.add(o0.0[i], o1.0[i]),
                    plain::field_to_ring(p, fv[i], ring),
                    "Z_p->Z_2^l l={l} p={p} v={}",
                    signed[i]
                );
                assert_eq!(
                    (o0.1[i] + o1.1[i]) % p,
                    plain::ring_to_field(ring, rv[i], p),
                    "Z_2^l->Z_p l={l} p={p} v={}",
                    signed[i]
                );
            }
        }
    }
}

/// The one-OT conversions for values of the fixed-point range |x| < 2^{ℓ−2}: exact at the edges
/// of the range and on random values, for every sharing (wrapping or not), and refused when the
/// prime is too small for the ring.
#[test]
fn in_range_conversions_are_exact_at_the_edges() {
    let mut r = rng(9);
    for l in RINGS {
        let ring = Ring::new(l).unwrap();
        // Primes at least 2^ℓ − 1 (field → ring) and above 2^{ℓ−1} (ring → field).
        let primes: Vec<u64> = [(1u64 << 61) - 1, 4_294_967_291, 0x3fff_ffff_ffff_ffc5]
            .into_iter()
            .filter(|&p| (p as u128) >= (1u128 << l) - 1)
            .collect();
        for p in primes {
            let fp = FieldModulus::new(p).unwrap();
            let b = (1i64 << (l.min(63) - 2)) - 1;
            let mut signed: Vec<i64> = vec![0, 1, -1, b, -b, b - 1, -(b - 1), b / 2, -b / 2];
            signed.extend((0..200).map(|_| r.gen_range(-b..=b)));
            let fv: Vec<u64> = signed
                .iter()
                .map(|&v| v.rem_euclid(p as i64) as u64)
                .collect();
            // Field sharings: random, and the extremes p − 1 and 0 for P0.
            let f0: Vec<u64> = (0..fv.len())
                .map(|i| match i % 3 {
                    0 => r.gen_range(0..p),
                    1 => p - 1,
                    _ => 0,
                })
                .collect();
            let f1: Vec<u64> = fv.iter().zip(&f0).map(|(&v, &a)| (v + p - a) % p).collect();
            let rv: Vec<u64> = signed.iter().map(|&v| ring.from_signed(v)).collect();
            // Ring sharings: random, and P0 holding 0 or the ring's top value.
            let mut r0: Vec<u64> = mpc::share(ring, &rv, &mut r).0;
            for (i, s) in r0.iter_mut().enumerate() {
                match i % 3 {
                    1 => *s = ring.mask(),
                    2 => *s = 0,
                    _ => {}
                }
            }
            let r1: Vec<u64> = rv.iter().zip(&r0).map(|(&v, &a)| ring.sub(v, a)).collect();
            let (o0, o1) = run(800 + l as u64 + p % 89, move |pa, sess, ch| {
                let a = sess
                    .field_to_ring_in_range(ch, fp, &pick(pa, &f0, &f1), ring)
                    .unwrap();
                let b = sess
                    .ring_to_field_in_range(ch, ring, &pick(pa, &r0, &r1), fp)
                    .unwrap();
                (a, b)
            });
            for i in 0..signed.len() {
                assert_eq!(
                    ring.add(o0.0[i], o1.0[i]),
                    ring.from_signed(signed[i]),
                    "Z_p->Z_2^l l={l} p={p} v={}",
                    signed[i]
                );
                assert_eq!(
                    (o0.1[i] + o1.1[i]) % p,
                    fv[i],
                    "Z_2^l->Z_p l={l} p={p} v={}",
                    signed[i]
                );
            }
        }
    }
    // A prime below the ring's range is refused, not silently wrong.
    let ring = Ring::new(37).unwrap();
    let small = FieldModulus::new(65537).unwrap();
    let (o0, _) = run(890, move |_, sess, ch| {
        (
            sess.field_to_ring_in_range(ch, small, &[1], ring).is_err(),
            sess.ring_to_field_in_range(ch, ring, &[1], small).is_err(),
        )
    });
    assert_eq!(o0, (true, true));
}

#[test]
fn empty_inputs_and_bad_arguments() {
    let ring = Ring::new(37).unwrap();
    let (o0, _) = run(900, move |_, sess, ch| {
        let x = Shares::new(ring, 12, vec![]).unwrap();
        let a = sess.relu(ch, &x).unwrap().data.len() + sess.trunc(ch, &x, 12).unwrap().data.len();
        let b = sess.trunc_known_sign(ch, &x, 12).unwrap().data.len()
            + sess.relu_approx(ch, &x).unwrap().data.len();
        // Invalid arguments fail locally, before any message, on both sides alike.
        assert!(sess.trunc(ch, &x, 0).is_err());
        assert!(sess.trunc(ch, &x, 36).is_err());
        assert!(sess.millionaire(ch, &[4], 2).is_err());
        assert!(Shares::new(ring, 12, vec![1 << 37]).is_err());
        a + b
    });
    assert_eq!(o0, 0);
}

#[test]
fn relu_exhaustive_on_tiny_rings() {
    // Rings of 2..=7 bits give comparisons with 1, 2 or 3 leaves and 0, 1 or 2 tree steps, so
    // every party order of the last flight (and the MUX riding on it) occurs.
    let mut r = rng(10);
    for l in 2..=7u32 {
        let ring = Ring::new(l).unwrap();
        let vals: Vec<u64> = (0..1u64 << l).collect();
        let (xs, s0, s1) = sharings(ring, &vals, &mut r);
        let (o0, o1) = run(1000 + l as u64, move |p, sess, ch| {
            let x = Shares::new(ring, 0, pick(p, &s0, &s1)).unwrap();
            let am = sess.argmax(ch, &x, xs_rows(x.len())).unwrap().0;
            (sess.relu(ch, &x).unwrap().data, am)
        });
        for i in 0..xs.len() {
            assert_eq!(
                ring.add(o0.0[i], o1.0[i]),
                plain::relu(ring, xs[i]),
                "l={l} x={}",
                ring.to_signed(xs[i])
            );
        }
        let k = xs.len() / xs_rows(xs.len());
        for (j, row) in xs.chunks(k).enumerate() {
            // Differences of tiny-ring values may wrap; compare only rows where they cannot.
            let lim = 1i64 << (l - 2);
            if row.iter().all(|&v| ring.to_signed(v).abs() < lim) {
                assert_eq!(
                    ring.add(o0.1[j], o1.1[j]),
                    plain::argmax(ring, row) as u64,
                    "argmax l={l}"
                );
            }
        }
    }
}

fn xs_rows(n: usize) -> usize {
    n / 4
}

#[test]
fn measured_traffic_equals_cost_model() {
    use mpc::cost;
    use transport::Channel;
    let mut r = rng(11);
    for l in RINGS {
        let ring = Ring::new(l).unwrap();
        let n = 1000;
        let vals: Vec<u64> = (0..n).map(|_| ring.random(&mut r) >> 3).collect();
        let (s0, s1) = mpc::share(ring, &vals, &mut r);
        let (o0, _) = run(1100 + l as u64, move |p, sess, ch| {
            let x = Shares::new(ring, 12, pick(p, &s0, &s1)).unwrap();
            let shape = PoolShape {
                channels: 10,
                height: 10,
                width: 10,
            };
            let spec = PoolSpec {
                kernel: (3, 3),
                stride: (2, 2),
                pads: (1, 1, 1, 1),
            };
            let wins: Vec<usize> = spec
                .windows(&shape)
                .unwrap()
                .iter()
                .map(|w| w.len())
                .collect();
            let mut ops: Vec<(&str, cost::Cost)> = vec![
                ("relu", cost::relu(ring, n)),
                ("relu_approx", cost::relu_approx(ring, 12, n)),
                ("relu6", cost::relu6(ring, n)),
                ("trunc", cost::trunc(ring, 12, n)),
                ("trunc_known_sign", cost::trunc_known_sign(ring, 12, n)),
                (
                    "trunc_known_sign_approx",
                    cost::trunc_known_sign_approx(ring, 12, n),
                ),
                ("trunc_relu", cost::trunc_relu(ring, 12, n)),
                ("trunc_relu6", cost::trunc_relu6(ring, 12, n)),
                (
                    "trunc_known_sign_p0_chooses",
                    cost::trunc_known_sign_p0_chooses(ring, 12, n),
                ),
                (
                    "trunc_relu_p0_chooses",
                    cost::trunc_relu_p0_chooses(ring, 12, n),
                ),
                ("mul", cost::mul(ring, n)),
                ("maxpool", cost::max_windows(ring, wins)),
                ("argmax", cost::argmax(ring, 10, 100)),
                ("ring_to_field", cost::ring_to_field(ring, 61, n)),
                ("field_to_ring", cost::field_to_ring(ring, 61, n)),
            ];
            // The in-range conversions need p ≥ 2^ℓ − 1.
            if l <= 61 {
                ops.push((
                    "ring_to_field_in_range",
                    cost::ring_to_field_in_range(ring, 61, n),
                ));
                ops.push((
                    "field_to_ring_in_range",
                    cost::field_to_ring_in_range(ring, n),
                ));
            }
            let p61 = FieldModulus::new((1 << 61) - 1).unwrap();
            let xf: Vec<u64> = x.data.iter().map(|&v| v % p61.value()).collect();
            let mut out = Vec::new();
            for (name, want) in ops {
                let st = ch.stats();
                let ot = sess.ot_usage();
                match name {
                    "relu" => drop(sess.relu(ch, &x).unwrap()),
                    "relu_approx" => drop(sess.relu_approx(ch, &x).unwrap()),
                    "relu6" => drop(sess.relu6(ch, &x).unwrap()),
                    "trunc" => drop(sess.trunc(ch, &x, 12).unwrap()),
                    "trunc_known_sign" => drop(sess.trunc_known_sign(ch, &x, 12).unwrap()),
                    "trunc_known_sign_approx" => {
                        drop(sess.trunc_known_sign_approx(ch, &x, 12).unwrap())
                    }
                    "trunc_relu" => drop(sess.trunc_relu(ch, &x, 12).unwrap()),
                    "trunc_relu6" => drop(sess.trunc_relu6(ch, &x, 12).unwrap()),
                    "trunc_known_sign_p0_chooses" | "trunc_relu_p0_chooses" => {
                        sess.set_comparison_chooser(Party::P0);
                        if name == "trunc_relu_p0_chooses" {
                            drop(sess.trunc_relu(ch, &x, 12).unwrap())
                        } else {
                            drop(sess.trunc_known_sign(ch, &x, 12).unwrap())
                        }
                        sess.set_comparison_chooser(Party::P1);
                    }
                    "mul" => drop(sess.mul(ch, &x, &x).unwrap()),
                    "maxpool" => drop(sess.maxpool(ch, &x, shape, spec).unwrap()),
                    "ring_to_field" => drop(sess.ring_to_field(ch, ring, &x.data, p61).unwrap()),
                    "field_to_ring" => drop(sess.field_to_ring(ch, p61, &xf, ring).unwrap()),
                    "ring_to_field_in_range" => {
                        drop(sess.ring_to_field_in_range(ch, ring, &x.data, p61).unwrap())
                    }
                    "field_to_ring_in_range" => {
                        drop(sess.field_to_ring_in_range(ch, p61, &xf, ring).unwrap())
                    }
                    _ => drop(sess.argmax(ch, &x, 10).unwrap()),
                }
                let d = ch.stats().since(&st);
                let o = sess.ot_usage();
                let ot_bytes =
                    (o.bytes_sent - ot.bytes_sent) + (o.bytes_received - ot.bytes_received);
                // This party is P0: its COTs as sender and as receiver, per direction.
                let cots = (
                    o.cots_sent - ot.cots_sent,
                    o.cots_received - ot.cots_received,
                );
                let proto_bits = (d.bytes_sent + d.bytes_received - ot_bytes) * 8;
                // Each message is rounded up to whole bytes; OT-extension frames are excluded.
                let frames = d.frames_sent + d.frames_received;
                let want_cots = (want.cots_p0_sends, want.cots_p1_sends);
                out.push((name, proto_bits, want.bits, frames, cots, want_cots));
            }
            out
        });
        for (name, got, want, frames, cots, want_cots) in o0 {
            assert!(
                got >= want && got < want + 8 * frames,
                "{name} l={l}: measured {got} bits, model {want}"
            );
            assert_eq!(
                cots, want_cots,
                "{name} l={l}: COTs (P0 sending, P1 sending)"
            );
        }
    }
}

#[test]
fn random_rings_and_shifts() {
    // Every ring width 4..=64 with a random shift: ReLU, approximate ReLU, exact and known-sign
    // truncation, fused truncation + ReLU against the plaintext functions.
    let mut r = rng(12);
    let cases: Vec<(u32, u32)> = (4..=64u32).map(|l| (l, r.gen_range(1..=l - 2))).collect();
    let inputs: Vec<(Vec<u64>, Vec<u64>, Vec<u64>)> = cases
        .iter()
        .map(|&(l, s)| {
            let ring = Ring::new(l).unwrap();
            let vals: Vec<u64> =
                into_known_sign_range(ring, edge_values(ring, s.min(l - 3), 20, &mut r));
            sharings(ring, &vals, &mut r)
        })
        .collect();
    let ins = inputs.clone();
    let cs = cases.clone();
    let (o0, o1) = run(1200, move |p, sess, ch| {
        let mut out = Vec::new();
        for (&(l, s), (_, s0, s1)) in cs.iter().zip(&ins) {
            let ring = Ring::new(l).unwrap();
            let x = Shares::new(ring, s, pick(p, s0, s1)).unwrap();
            // Each protocol with P1 choosing in the comparisons' leaf OTs (the default), then
            // with P0 choosing: the same results.
            let mut row = Vec::new();
            for chooser in [Party::P1, Party::P0] {
                sess.set_comparison_chooser(chooser);
                row.extend([
                    sess.relu(ch, &x).unwrap().data,
                    sess.relu_approx(ch, &x).unwrap().data,
                    sess.trunc(ch, &x, s).unwrap().data,
                    sess.trunc_known_sign(ch, &x, s).unwrap().data,
                    sess.trunc_relu(ch, &x, s).unwrap().data,
                ]);
            }
            sess.set_comparison_chooser(Party::P1);
            out.push(row);
        }
        out
    });
    for (k, &(l, s)) in cases.iter().enumerate() {
        let ring = Ring::new(l).unwrap();
        for (i, &x) in inputs[k].0.iter().enumerate() {
            for base in [0, 5] {
                let got = |j: usize| ring.add(o0[k][base + j][i], o1[k][base + j][i]);
                let t = plain::trunc(ring, x, s);
                let who = if base == 0 { "P1" } else { "P0" };
                assert_eq!(got(0), plain::relu(ring, x), "relu l={l} {who} choosing");
                assert!(
                    plain::relu_approx_allowed(ring, x, s).contains(&got(1)),
                    "relu_approx l={l} s={s} {who} choosing"
                );
                assert_eq!(got(2), t, "trunc l={l} s={s} {who} choosing");
                assert_eq!(got(3), t, "trunc_known_sign l={l} s={s} {who} choosing");
                assert_eq!(
                    got(4),
                    plain::relu(ring, t),
                    "trunc_relu l={l} s={s} {who} choosing"
                );
            }
        }
    }
}

/// A random sparse map: column j reaches `nnz[j]` distinct rows (some columns empty).
struct Sparse {
    n_out: usize,
    rows: Vec<Vec<usize>>,
}

impl mpc::Columns for Sparse {
    fn n_in(&self) -> usize {
        self.rows.len()
    }
    fn n_out(&self) -> usize {
        self.n_out
    }
    fn nnz(&self, j: usize) -> usize {
        self.rows[j].len()
    }
    fn rows(&self, j: usize, out: &mut Vec<usize>) {
        out.clone_from(&self.rows[j]);
    }
}

#[test]
fn ot_product_matches_plain_matrix_product_and_its_cost() {
    let mut r = rng(21);
    // Sizes around CHUNK_BITS so that P0's answer splits into several messages.
    for (ell, n_in, n_out, dense) in [
        (37u32, 40usize, 9usize, false),
        (64, 3, 5, true),
        (41, 900, 160, true),
        (2, 7, 3, true),
    ] {
        let ring = Ring::new(ell).unwrap();
        let rows: Vec<Vec<usize>> = (0..n_in)
            .map(|j| {
                if dense {
                    (0..n_out).rev().collect()
                } else {
                    (0..n_out)
                        .filter(|&o| (o + j) % 3 != 0 && j % 7 != 3)
                        .collect()
                }
            })
            .collect();
        let w: Vec<Vec<u64>> = rows
            .iter()
            .map(|rs| rs.iter().map(|_| r.gen::<u64>() & ring.mask()).collect())
            .collect();
        let x: Vec<u64> = (0..n_in).map(|_| r.gen::<u64>() & ring.mask()).collect();
        let (x0, x1) = mpc::share(ring, &x, &mut r);
        let mut want = vec![0u64; n_out];
        for j in 0..n_in {
            for (k, &o) in rows[j].iter().enumerate() {
                want[o] = want[o].wrapping_add(w[j][k].wrapping_mul(x[j])) & ring.mask();
            }
        }
        let map = std::sync::Arc::new(Sparse { n_out, rows });
        let w = std::sync::Arc::new(w);
        let cost = mpc::product_cost(map.as_ref(), ell);
        assert_eq!(cost.cots, (n_in as u64) * ell as u64);
        let ((y0, s0), (y1, _)) = run(ell as u64, move |p, s, ch| {
            let n = (n_in * ell as usize, 0);
            let (ns, nr) = if p == Party::P0 { n } else { (n.1, n.0) };
            s.prefetch(ch, ns, nr).unwrap();
            let before = transport::Channel::stats(ch);
            let y = if p == Party::P0 {
                let w = w.clone();
                s.product_server(
                    ch,
                    ring,
                    map.as_ref(),
                    &move |j, out: &mut Vec<u64>| out.clone_from(&w[j]),
                    &x0,
                )
            } else {
                s.product_client(ch, ring, map.as_ref(), &x1)
            }
            .unwrap();
            (y, transport::Channel::stats(ch).since(&before))
        });
        assert_eq!(
            reconstruct(ring, &y0, &y1).unwrap(),
            want,
            "ell {ell}, {n_in} x {n_out}"
        );
        // Bytes as seen by P0: it received c2s and sent s2c (COT generation excluded: prefetched).
        assert_eq!(s0.bytes_received, cost.bytes_c2s, "ell {ell}");
        assert_eq!(s0.bytes_sent, cost.bytes_s2c, "ell {ell}");
        assert_eq!(s0.frames_sent, cost.messages_s2c);
    }
}

/// A peer's malformed product messages are errors: a short, a long and a padded answer from
/// P0, and a short bit message from P1.
#[test]
fn ot_product_rejects_malformed_messages() {
    let ring = Ring::new(37).unwrap();
    // 3 inputs × 2 outputs: P0 answers 3·2·703 = 4218 bits (528 bytes, 2 padding bits).
    for case in 0..4u8 {
        let map = std::sync::Arc::new(Sparse {
            n_out: 2,
            rows: vec![vec![0, 1]; 3],
        });
        let ((r0, _), (r1, _)) = run(40 + case as u64, move |p, s, ch| {
            let n = (3 * 37, 0);
            let (ns, nr) = if p == Party::P0 { n } else { (n.1, n.0) };
            s.prefetch(ch, ns, nr).unwrap();
            let r = if p == Party::P0 {
                if case == 3 {
                    s.product_server(
                        ch,
                        ring,
                        map.as_ref(),
                        &|_, o: &mut Vec<u64>| o.clone_from(&vec![1, 2]),
                        &[0; 3],
                    )
                    .map(drop)
                } else {
                    let _ = transport::Channel::recv(ch);
                    let mut m = vec![0u8; 528];
                    match case {
                        0 => m.truncate(527),
                        1 => m.push(0),
                        _ => m[527] = 0x80,
                    }
                    transport::Channel::send(ch, &m).map_err(Into::into)
                }
            } else if case == 3 {
                transport::Channel::send(ch, &[0u8; 13]).map_err(Into::into)
            } else {
                s.product_client(ch, ring, map.as_ref(), &[1; 3]).map(drop)
            };
            (r.is_ok(), r.err().map(|e| e.to_string()))
        });
        let bad = if case == 3 { r0 } else { r1 };
        assert!(!bad, "case {case} accepted");
    }
}

#[test]
fn trunc_known_sign_flat_exact_priced_and_shallow() {
    // The flat form against floor(x / 2^s) for shifts across every leaf split (1-bit halves to
    // halves of several leaves), either party choosing; its bits and COTs equal the cost model
    // and its hops the formula, fewer than the tree's wherever the tree has an AND level.
    use mpc::{cost, TruncForm};
    use transport::Channel;
    let mut r = rng(31);
    for l in [32u32, 37, 64] {
        let ring = Ring::new(l).unwrap();
        for s in [1u32, 2, 3, 4, 6, 7, 12, 13, 17, 24, l - 2] {
            for chooser in [Party::P1, Party::P0] {
                let vals: Vec<u64> =
                    into_known_sign_range(ring, edge_values(ring, s.min(l - 3), 200, &mut r));
                let (xs, s0, s1) = sharings(ring, &vals, &mut r);
                let n = xs.len();
                let seed = 3100 + l as u64 * 64 + s as u64 + (chooser == Party::P0) as u64;
                let (o0, o1) = run(seed, move |p, sess, ch| {
                    let x = Shares::new(ring, 24, pick(p, &s0, &s1)).unwrap();
                    let mut hops = Vec::new();
                    let mut out = Vec::new();
                    for form in [TruncForm::Tree, TruncForm::Flat] {
                        // The COTs first (as the engine does), so none are generated inside.
                        let want = cost::trunc_known_sign_form(ring, s, n, form, chooser);
                        let (ns, nr) = want.cots_for(p);
                        sess.prefetch(ch, ns, nr).unwrap();
                        sess.set_comparison_chooser(chooser);
                        let st = ch.stats();
                        let ot = sess.ot_usage();
                        let y = sess.trunc_known_sign_with(ch, &x, s, form).unwrap();
                        sess.set_comparison_chooser(Party::P1);
                        let d = ch.stats().since(&st);
                        let o = sess.ot_usage();
                        let ot_bytes =
                            (o.bytes_sent - ot.bytes_sent) + (o.bytes_received - ot.bytes_received);
                        let bits = (d.bytes_sent + d.bytes_received - ot_bytes) * 8;
                        let frames = d.frames_sent + d.frames_received;
                        let cots = (
                            o.cots_sent - ot.cots_sent,
                            o.cots_received - ot.cots_received,
                        );
                        hops.push((st.hops, ch.stats().hops));
                        out.push((y.data, bits, frames, cots));
                    }
                    (out, hops)
                });
                for (k, form) in [TruncForm::Tree, TruncForm::Flat].into_iter().enumerate() {
                    let ((y0, bits, frames, cots), (y1, ..)) = (&o0.0[k], &o1.0[k]);
                    for i in 0..n {
                        assert_eq!(
                            ring.add(y0[i], y1[i]),
                            plain::trunc(ring, xs[i], s),
                            "{form:?} l={l} s={s} chooser={chooser:?} x={}",
                            ring.to_signed(xs[i])
                        );
                    }
                    let want = cost::trunc_known_sign_form(ring, s, n, form, chooser);
                    assert!(
                        *bits >= want.bits && *bits < want.bits + 8 * frames,
                        "{form:?} l={l} s={s}: measured {bits} bits, model {}",
                        want.bits
                    );
                    // This party is P0: (COTs it sent, COTs it received).
                    assert_eq!(
                        *cots,
                        (want.cots_p0_sends, want.cots_p1_sends),
                        "{form:?} l={l} s={s}"
                    );
                    // The critical path: the later end minus the later start. The parties enter
                    // up to one hop apart (after the prefetch), which a first flight from the
                    // party behind can absorb: the formula or one less.
                    let hops = o0.1[k].1.max(o1.1[k].1) - o0.1[k].0.max(o1.1[k].0);
                    let f = cost::trunc_known_sign_hops(s, form) as u64;
                    assert!(
                        hops == f || hops + 1 == f,
                        "{form:?} l={l} s={s} chooser={chooser:?}: {hops} hops, formula {f}"
                    );
                }
                let (tree, flat) = (
                    cost::trunc_known_sign_hops(s, TruncForm::Tree),
                    cost::trunc_known_sign_hops(s, TruncForm::Flat),
                );
                // Flat removes every AND level up to 12 bits, and all but ⌈log2⌉ of the halves'
                // beyond.
                assert!(flat <= tree, "s={s}: flat {flat} hops, tree {tree}");
                if (4..=12).contains(&s) {
                    assert_eq!(flat, 3, "s={s}");
                }
            }
        }
    }
}
