//! Circuit privacy in the client's view: same input, same output, two weight sets. The noise of
//! the decrypted responses (at the response modulus 2^k) must be statistically indistinguishable.
//!
//! Stated bound: the flooding gives statistical distance ≤ 2^-40 per layer (docs/security.md);
//! this test detects a distance above the two-sample Kolmogorov–Smirnov critical value
//! 2.28·√(2/RUNS) per output (α = 10⁻³, Bonferroni over the 16 outputs). The control that shows
//! the statistic can fail (unflooded noise at the full modulus) is the unit test
//! `cheetah::tests::flooding_hides_weight_dependent_noise_at_q`.

use linear::{
    Cheetah, ClientKeys, HeParamsId, LayerSpec, LayerWeights, LinearProtocol, Ring, ServerKeys,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use transport::MemoryChannel;

const RUNS: usize = 200;

fn ks(a: &mut [i64], b: &mut [i64]) -> f64 {
    a.sort_unstable();
    b.sort_unstable();
    let (mut i, mut j, mut d) = (0usize, 0usize, 0f64);
    while i < a.len() && j < b.len() {
        let v = a[i].min(b[j]);
        while i < a.len() && a[i] == v {
            i += 1;
        }
        while j < b.len() && b[j] == v {
            j += 1;
        }
        d = d.max((i as f64 / a.len() as f64 - j as f64 / b.len() as f64).abs());
    }
    d
}

#[test]
fn responses_do_not_reveal_the_weights() {
    let ring = Ring::new(37).unwrap();
    let layer = LayerSpec::fc(64, 16, 12);
    let proto = Cheetah::default();
    let plan = proto.plan(&layer, ring).unwrap();
    assert_eq!(plan.params, HeParamsId::N4096Q109);
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let x: Vec<u64> = (0..64)
        .map(|i| {
            if i % 2 == 0 {
                ring.reduce(rng.gen())
            } else {
                0
            }
        })
        .collect();
    let w1: Vec<u64> = (0..64 * 16)
        .map(|_| ring.from_signed(rng.gen_range(-4095..=4095)))
        .collect();
    let w2: Vec<u64> = w1
        .iter()
        .enumerate()
        .map(|(i, &w)| {
            if i % 2 == 1 {
                ring.from_signed(rng.gen_range(-4095..=4095))
            } else {
                w
            }
        })
        .collect();
    let bias = vec![0u64; 16];
    let (wa, wb) = (
        LayerWeights {
            weights: w1,
            bias: bias.clone(),
        },
        LayerWeights { weights: w2, bias },
    );
    assert_eq!(
        linear::reference(&layer, ring, &wa, &x),
        linear::reference(&layer, ring, &wb, &x)
    );

    let req = proto.keys_needed(&layer, ring).unwrap();
    let (mut cc, mut sc) = MemoryChannel::pair();
    let ck = ClientKeys::setup(&req, &mut cc, &mut ChaCha20Rng::seed_from_u64(1)).unwrap();
    let sk = ServerKeys::setup(&req, &mut sc).unwrap();
    let xc: Vec<u64> = (0..64).map(|_| ring.reduce(rng.gen())).collect();
    let xs: Vec<u64> = x
        .iter()
        .zip(&xc)
        .map(|(&a, &b)| ring.reduce(a.wrapping_sub(b)))
        .collect();

    let noise = |w: &LayerWeights, server_seed: u64| -> Vec<Vec<i64>> {
        let mut per_output: Vec<Vec<i64>> = (0..16).map(|_| Vec::with_capacity(RUNS)).collect();
        for r in 0..RUNS {
            let (mut cc, mut sc) = MemoryChannel::pair();
            let (yc, n) = std::thread::scope(|s| {
                let h = s.spawn(|| {
                    let mut srng = ChaCha20Rng::seed_from_u64(server_seed * 1_000_003 + r as u64);
                    proto
                        .server(&layer, ring, &sk, w, &xs, &mut sc, &mut srng)
                        .unwrap()
                });
                // Same client randomness for both weight sets.
                let mut crng = ChaCha20Rng::seed_from_u64(500 + r as u64);
                let out = proto
                    .client_with_noise(&layer, ring, &ck, &xc, &mut cc, &mut crng)
                    .unwrap();
                h.join().unwrap();
                out
            });
            assert_eq!(yc.len(), 16);
            for (o, v) in n.into_iter().enumerate() {
                per_output[o].push(v);
            }
        }
        per_output
    };
    let (na, nb) = (noise(&wa, 1), noise(&wb, 2));
    let crit = 2.28 * (2.0 / RUNS as f64).sqrt();
    let d = na
        .into_iter()
        .zip(nb)
        .map(|(mut a, mut b)| ks(&mut a, &mut b))
        .fold(0.0, f64::max);
    eprintln!("client-view KS (max over outputs) {d:.4}, critical {crit:.4}");
    assert!(
        d < crit,
        "response noise depends on the weights: KS {d} ≥ {crit}"
    );
}
