//! Every OT API against its defining correlation, over memory and TCP channels, both backends.

mod common;

use common::{memory_pair, rng, run2, tcp_pair};
use privinfer_ot::{choice_bits, Block, CotBackend, CotConfig, CotPair, CotReceiver, CotSender};
use rand::Rng;
use std::time::Duration;
use transport::Channel;

fn backends() -> Vec<CotConfig> {
    vec![
        CotConfig {
            backend: CotBackend::Iknp,
        },
        CotConfig {
            backend: CotBackend::Silent,
        },
        CotConfig {
            backend: CotBackend::SilentSmall,
        },
    ]
}

fn check_cots(delta: Block, q: &[Block], t: &[Block]) {
    assert_eq!(q.len(), t.len());
    assert!(delta.lsb(), "lsb(Δ) must be 1");
    for (i, (&qi, &ti)) in q.iter().zip(t).enumerate() {
        assert!(!qi.lsb(), "lsb(q_{i}) must be 0");
        assert_eq!(
            ti,
            qi ^ delta.and_bit(ti.lsb()),
            "COT {i} violates t = q ⊕ b·Δ"
        );
    }
    if q.len() >= 64 {
        let ones = choice_bits(t).iter().filter(|&&b| b).count();
        assert!(
            ones > q.len() / 4 && ones < 3 * q.len() / 4,
            "choice bits look biased: {ones}/{}",
            q.len()
        );
        // Outputs are distinct (a constant q would satisfy the correlation trivially).
        let mut s: Vec<u128> = q.iter().map(|b| b.0).collect();
        s.sort_unstable();
        s.dedup();
        assert_eq!(s.len(), q.len());
    }
}

fn cot_rounds<C: Channel + Send + 'static>(pair: (C, C), cfg: CotConfig, sizes: &'static [usize]) {
    let (sa, rb) = run2(
        pair,
        move |ch| {
            let mut s = CotSender::setup_with(ch, &mut rng(1), cfg).unwrap();
            let qs: Vec<Vec<Block>> = sizes.iter().map(|&n| s.extend(ch, n).unwrap()).collect();
            assert_eq!(s.consumed(), sizes.iter().sum::<usize>() as u64);
            (s.delta(), qs)
        },
        move |ch| {
            let mut r = CotReceiver::setup_with(ch, &mut rng(2), cfg).unwrap();
            sizes
                .iter()
                .map(|&n| r.extend(ch, n).unwrap())
                .collect::<Vec<_>>()
        },
    );
    let (delta, qs) = sa;
    for ((q, t), &n) in qs.iter().zip(&rb).zip(sizes) {
        assert_eq!(q.len(), n);
        check_cots(delta, q, t);
    }
}

#[test]
fn cot_correlation_memory() {
    for cfg in backends() {
        cot_rounds(memory_pair(), cfg, &[1, 127, 128, 1000, 0, 5000, 3]);
    }
}

#[test]
fn cot_correlation_tcp() {
    for cfg in backends() {
        cot_rounds(tcp_pair(Duration::from_secs(20)), cfg, &[200, 4096, 1]);
    }
}

/// All derived OTs in one session, checked against their plaintext definitions.
fn derived<C: Channel + Send + 'static>(pair: (C, C), cfg: CotConfig) {
    const N: usize = 300;
    let mut g = rng(99);
    let widths = [1u32, 8, 37, 64];
    let m0: Vec<Vec<u64>> = widths
        .iter()
        .map(|&b| (0..N).map(|_| g.gen::<u64>() >> (64 - b)).collect())
        .collect();
    let m1: Vec<Vec<u64>> = widths
        .iter()
        .map(|&b| (0..N).map(|_| g.gen::<u64>() >> (64 - b)).collect())
        .collect();
    let corr: Vec<u64> = (0..N).map(|_| g.gen()).collect();
    let choices: Vec<bool> = (0..N).map(|_| g.gen()).collect();
    let log_ns = [1u32, 2, 4, 8];
    let nbits = [1u32, 4, 8, 37];
    let nmsgs: Vec<Vec<u64>> = log_ns
        .iter()
        .zip(&nbits)
        .map(|(&l, &b)| (0..N << l).map(|_| g.gen::<u64>() >> (64 - b)).collect())
        .collect();
    let nchoices: Vec<Vec<u8>> = log_ns
        .iter()
        .map(|&l| (0..N).map(|_| (g.gen::<u16>() % (1 << l)) as u8).collect())
        .collect();

    let (m0s, m1s, corrs, nm) = (m0.clone(), m1.clone(), corr.clone(), nmsgs.clone());
    let (chs, ncs) = (choices.clone(), nchoices.clone());
    let (sres, rres) = run2(
        pair,
        move |ch| {
            let mut s = CotSender::setup_with(ch, &mut rng(3), cfg).unwrap();
            let mut xs = Vec::new();
            let mut rand_pairs = Vec::new();
            let mut xr = Vec::new();
            for (k, &b) in widths.iter().enumerate() {
                s.send_chosen(ch, &m0s[k], &m1s[k], b).unwrap();
                xs.push(s.send_correlated(ch, &corrs, b).unwrap());
                rand_pairs.push(s.send_random(ch, N, b).unwrap());
                xr.push(s.send_correlated_random(ch, &corrs, b).unwrap());
            }
            for k in 0..log_ns.len() {
                s.send_1_of_n(ch, log_ns[k], &nm[k], nbits[k]).unwrap();
            }
            (xs, rand_pairs, xr)
        },
        move |ch| {
            let mut r = CotReceiver::setup_with(ch, &mut rng(4), cfg).unwrap();
            let mut got = Vec::new();
            let mut ys = Vec::new();
            let mut rand = Vec::new();
            let mut yr = Vec::new();
            for &b in widths.iter() {
                got.push(r.recv_chosen(ch, &chs, b).unwrap());
                ys.push(r.recv_correlated(ch, &chs, b).unwrap());
                rand.push(r.recv_random(ch, N, b).unwrap());
                yr.push(r.recv_correlated_random(ch, N, b).unwrap());
            }
            let mut n_got = Vec::new();
            for k in 0..log_ns.len() {
                n_got.push(r.recv_1_of_n(ch, log_ns[k], &ncs[k], nbits[k]).unwrap());
            }
            (got, ys, rand, yr, n_got)
        },
    );
    let (xs, rand_pairs, xr) = sres;
    let (got, ys, rand, yr, n_got) = rres;
    for (k, &b) in widths.iter().enumerate() {
        let mk = if b == 64 { u64::MAX } else { (1u64 << b) - 1 };
        let mut distinct = std::collections::HashSet::new();
        for i in 0..N {
            let want = if choices[i] { m1[k][i] } else { m0[k][i] };
            assert_eq!(got[k][i], want, "chosen OT width {b} index {i}");
            let want = xs[k][i].wrapping_add(if choices[i] { corr[i] } else { 0 }) & mk;
            assert_eq!(ys[k][i], want, "correlated OT width {b} index {i}");
            assert!(xs[k][i] <= mk);
            let (bits, vals) = &rand[k];
            assert_eq!(
                vals[i], rand_pairs[k][i][bits[i] as usize],
                "random OT width {b} index {i}"
            );
            let (rb, rv) = &yr[k];
            let want = xr[k][i].wrapping_add(if rb[i] { corr[i] } else { 0 }) & mk;
            assert_eq!(
                rv[i], want,
                "random-choice correlated OT width {b} index {i}"
            );
            distinct.insert(xs[k][i]);
        }
        if b >= 37 {
            assert!(distinct.len() > N - 2, "sender outputs are not random");
        }
    }
    for k in 0..log_ns.len() {
        let big_n = 1usize << log_ns[k];
        for i in 0..N {
            assert_eq!(
                n_got[k][i],
                nmsgs[k][i * big_n + nchoices[k][i] as usize],
                "1-of-{big_n} OT index {i}"
            );
        }
    }
}

#[test]
fn derived_ots_memory() {
    for cfg in backends() {
        derived(memory_pair(), cfg);
    }
}

#[test]
fn derived_ots_tcp() {
    for cfg in backends() {
        derived(tcp_pair(Duration::from_secs(20)), cfg);
    }
}

#[test]
fn cot_pair_both_directions() {
    for cfg in backends() {
        let (a, b) = run2(
            memory_pair(),
            move |ch| {
                let mut p = CotPair::setup(ch, &mut rng(5), cfg).unwrap();
                let q = p.sender.extend(ch, 500).unwrap();
                let t = p.receiver.extend(ch, 700).unwrap();
                (p.sender.delta(), q, t)
            },
            move |ch| {
                let mut p = CotPair::setup(ch, &mut rng(6), cfg).unwrap();
                let t = p.receiver.extend(ch, 500).unwrap();
                let q = p.sender.extend(ch, 700).unwrap();
                (p.sender.delta(), q, t)
            },
        );
        check_cots(a.0, &a.1, &b.2);
        check_cots(b.0, &b.1, &a.2);
        assert_ne!(a.0, b.0);
    }
}

#[test]
fn large_batches_fit_a_4_mib_message_limit() {
    // 2^20 correlated OTs of 37 bits (4.85 MB of payload) and 2^20 IKNP COTs (16 MiB of columns)
    // over a channel that refuses messages above 4 MiB + 1 KiB: both must be split.
    const N: usize = 1 << 20;
    let cfg = transport::TcpConfig {
        max_message: privinfer_ot::MAX_PAYLOAD_MESSAGE + 1024,
        timeout: Duration::from_secs(30),
        connect_timeout: Duration::from_secs(5),
    };
    let pair = transport::TcpChannel::loopback_pair(cfg).unwrap();
    let corr: Vec<u64> = (0..N as u64).map(|i| i.wrapping_mul(0x9e37_79b9)).collect();
    let choices: Vec<bool> = (0..N).map(|i| (i * 7) % 3 == 0).collect();
    let (c2, ch2) = (corr.clone(), choices.clone());
    let ((xs, q, delta), (ys, t)) = run2(
        pair,
        move |ch| {
            let mut s = CotSender::setup(ch, &mut rng(7)).unwrap();
            let xs = s.send_correlated(ch, &c2, 37).unwrap();
            let mut i = CotSender::setup_with(
                ch,
                &mut rng(9),
                CotConfig {
                    backend: CotBackend::Iknp,
                },
            )
            .unwrap();
            let q = i.extend(ch, N).unwrap();
            (xs, q, i.delta())
        },
        move |ch| {
            let mut r = CotReceiver::setup(ch, &mut rng(8)).unwrap();
            let ys = r.recv_correlated(ch, &ch2, 37).unwrap();
            let mut i = CotReceiver::setup_with(
                ch,
                &mut rng(10),
                CotConfig {
                    backend: CotBackend::Iknp,
                },
            )
            .unwrap();
            (ys, i.extend(ch, N).unwrap())
        },
    );
    let mk = (1u64 << 37) - 1;
    for k in 0..N {
        assert_eq!(
            ys[k],
            xs[k].wrapping_add(if choices[k] { corr[k] } else { 0 }) & mk,
            "index {k}"
        );
    }
    check_cots(delta, &q, &t);
}
