//! Shared test harness: runs a protocol's two halves over an in-memory channel and checks the
//! reconstructed output against the integer oracle and the predicted bytes against the channel.
#![allow(dead_code)]

use linear::{
    reference, setup_cost, ClientKeys, Conv2dSpec, Cost, LayerSpec, LayerWeights, LinearProtocol,
    Ring, ServerKeys,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use transport::{Channel, MemoryChannel, Stats};

pub struct Outcome {
    pub y: Vec<u64>,
    pub expected: Vec<u64>,
    pub predicted: Cost,
    pub client: Stats,
    pub server: Stats,
}

/// Random weights with |w| < 2^(bits-1)... 2^bits (signed), random biases, in the ring.
pub fn random_weights(layer: &LayerSpec, ring: Ring, rng: &mut impl Rng) -> LayerWeights {
    let b = layer.weight_bits;
    let lim = (1i64 << b) - 1;
    LayerWeights {
        weights: (0..layer.weight_len())
            .map(|_| ring.from_signed(rng.gen_range(-lim..=lim)))
            .collect(),
        bias: (0..layer.bias_len())
            .map(|_| ring.reduce(rng.gen()))
            .collect(),
    }
}

/// Runs key setup and one layer, both parties in threads over a MemoryChannel. x (ring values)
/// is shared over the protocol's share modulus ([`LinearProtocol::share_modulus`]: Z_{2^ℓ}, or
/// Z_t for a field-domain protocol, x then in the fixed-point range) and the output shares are
/// added there and lifted to the ring by their centered value.
pub fn run<P: LinearProtocol + Clone + 'static>(
    proto: &P,
    layer: &LayerSpec,
    ring: Ring,
    w: &LayerWeights,
    x: &[u64],
    seed: u64,
) -> Outcome {
    let m: u128 = match proto.share_modulus(layer, ring).expect("share modulus") {
        Some(t) => t as u128,
        None => 1 << ring.bits(),
    };
    let lift = |v: u64| (ring.signed(v) as i128).rem_euclid(m as i128) as u128;
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let xc: Vec<u64> = (0..x.len())
        .map(|_| (rng.gen::<u128>() % m) as u64)
        .collect();
    let xs: Vec<u64> = x
        .iter()
        .zip(&xc)
        .map(|(&a, &b)| ((lift(a) + m - b as u128) % m) as u64)
        .collect();
    let req = proto.keys_needed(layer, ring).expect("keys");
    let predicted = proto.cost(layer, ring).expect("cost");
    let (mut cc, mut sc) = MemoryChannel::pair();
    let (p2, l2, w2, req2) = (proto.clone(), *layer, w.clone(), req.clone());
    let server = std::thread::spawn(move || {
        let mut rng = ChaCha20Rng::seed_from_u64(seed ^ 0x5e);
        let keys = ServerKeys::setup(&req2, &mut sc).expect("server setup");
        let before = sc.stats();
        let share = p2
            .server(&l2, ring, &keys, &w2, &xs, &mut sc, &mut rng)
            .expect("server");
        (share, sc.stats().since(&before))
    });
    let mut crng = ChaCha20Rng::seed_from_u64(seed ^ 0xc1);
    let keys = ClientKeys::setup(&req, &mut cc, &mut crng).expect("client setup");
    assert_eq!(
        cc.stats().bytes_sent,
        setup_cost(&req).unwrap().bytes_c2s,
        "setup bytes"
    );
    let before = cc.stats();
    let yc = proto
        .client(layer, ring, &keys, &xc, &mut cc, &mut crng)
        .expect("client");
    let client = cc.stats().since(&before);
    let (ys, server) = server.join().expect("server thread");
    assert!(
        yc.iter().chain(&ys).all(|&v| (v as u128) < m),
        "shares reduced"
    );
    let y = yc
        .iter()
        .zip(&ys)
        .map(|(&a, &b)| {
            let v = (a as u128 + b as u128) % m;
            let c = if v > m / 2 {
                v as i128 - m as i128
            } else {
                v as i128
            };
            ring.from_signed(c as i64)
        })
        .collect();
    Outcome {
        y,
        expected: reference(layer, ring, w, x),
        predicted,
        client,
        server,
    }
}

/// Runs a layer with random data and asserts exactness and exact byte prediction.
pub fn check_layer<P: LinearProtocol + Clone + 'static>(
    proto: &P,
    layer: &LayerSpec,
    ring: Ring,
    seed: u64,
) -> Outcome {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let w = random_weights(layer, ring, &mut rng);
    // Inputs: activations at scale 2^s in a realistic range, and some full-range values.
    let x: Vec<u64> = (0..layer.input_len())
        .map(|i| {
            if i % 7 == 0 {
                ring.reduce(rng.gen())
            } else {
                ring.from_signed(rng.gen_range(-(1i64 << 16)..(1i64 << 16)))
            }
        })
        .collect();
    let out = run(proto, layer, ring, &w, &x, seed);
    assert_eq!(out.y.len(), out.expected.len());
    let wrong = out
        .y
        .iter()
        .zip(&out.expected)
        .filter(|(a, b)| a != b)
        .count();
    assert_eq!(
        wrong,
        0,
        "{layer:?}: {wrong} of {} outputs differ from the reference",
        out.y.len()
    );
    assert_eq!(
        out.client.bytes_sent, out.predicted.bytes_c2s,
        "{layer:?}: c2s bytes"
    );
    assert_eq!(
        out.server.bytes_sent, out.predicted.bytes_s2c,
        "{layer:?}: s2c bytes"
    );
    assert_eq!(out.client.bytes_received, out.predicted.bytes_s2c);
    assert_eq!(out.client.frames_sent, out.predicted.messages_c2s);
    assert_eq!(out.server.frames_sent, out.predicted.messages_s2c);
    assert_eq!(out.client.rounds(), out.predicted.rounds);
    out
}

pub fn conv(
    c: usize,
    h: usize,
    m: usize,
    k: usize,
    stride: usize,
    padding: usize,
    groups: usize,
) -> Conv2dSpec {
    Conv2dSpec::square(c, h, m, k, stride, padding, groups)
}

/// As [`check_layer`] for a field-domain protocol: weights |w| < 2^weight_bits, inputs and
/// biases small enough that every output satisfies the fixed-point range |y| < 2^{ℓ−2}
/// (docs/fixed-point.md), which the conversion back to the ring needs.
pub fn check_layer_field<P: LinearProtocol + Clone + 'static>(
    proto: &P,
    layer: &LayerSpec,
    ring: Ring,
    seed: u64,
) -> Outcome {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let lim = (1i64 << layer.weight_bits) - 1;
    let w = LayerWeights {
        weights: (0..layer.weight_len())
            .map(|_| ring.from_signed(rng.gen_range(-lim..=lim)))
            .collect(),
        bias: (0..layer.bias_len())
            .map(|_| ring.from_signed(rng.gen_range(-(1i64 << 24)..(1i64 << 24))))
            .collect(),
    };
    let taps = (layer.macs() / layer.output_len() as u64).max(1) as f64;
    // |x| ≤ 2^{ℓ−3} / (taps·2^wb), so |y| < 2^{ℓ−2}; at least 2^12, at most 2^16.
    let xb = ((ring.bits() as f64 - 3.0 - taps.log2() - layer.weight_bits as f64).floor() as i64)
        .clamp(12, 16);
    let x: Vec<u64> = (0..layer.input_len())
        .map(|_| ring.from_signed(rng.gen_range(-(1i64 << xb)..(1i64 << xb))))
        .collect();
    let out = run(proto, layer, ring, &w, &x, seed);
    let wrong = out
        .y
        .iter()
        .zip(&out.expected)
        .filter(|(a, b)| a != b)
        .count();
    assert_eq!(
        wrong,
        0,
        "{layer:?}: {wrong} of {} outputs differ from the reference",
        out.y.len()
    );
    assert_eq!(
        out.client.bytes_sent, out.predicted.bytes_c2s,
        "{layer:?}: c2s bytes"
    );
    assert_eq!(
        out.server.bytes_sent, out.predicted.bytes_s2c,
        "{layer:?}: s2c bytes"
    );
    assert_eq!(out.client.bytes_received, out.predicted.bytes_s2c);
    assert_eq!(out.client.frames_sent, out.predicted.messages_c2s);
    assert_eq!(out.server.frames_sent, out.predicted.messages_s2c);
    assert_eq!(out.client.rounds(), out.predicted.rounds);
    out
}

/// Direct convolution mod t (zero padding, stride, groups) of C × H × W values `x` with signed
/// weights `w` (M × C/groups × k_h × k_w): M × H_out × W_out values in [0, t).
pub fn direct_conv_mod_t(spec: &Conv2dSpec, x: &[u64], w: &[i64], t: u64) -> Vec<u64> {
    let (ho, wo, pd) = (spec.out_h(), spec.out_w(), spec.padding as isize);
    let cg = spec.c_per_group();
    let mut y = Vec::with_capacity(spec.m * ho * wo);
    for o in 0..spec.m {
        let g = spec.group_of_output(o);
        for i in 0..ho {
            for j in 0..wo {
                let mut acc = 0i128;
                for c in g * cg..(g + 1) * cg {
                    for a in 0..spec.kh {
                        for b in 0..spec.kw {
                            let (h, v) = (
                                (i * spec.stride + a) as isize - pd,
                                (j * spec.stride + b) as isize - pd,
                            );
                            if h < 0 || v < 0 || h >= spec.h as isize || v >= spec.w as isize {
                                continue;
                            }
                            let xv = x[(c * spec.h + h as usize) * spec.w + v as usize];
                            let wv = w[((o * cg + c - g * cg) * spec.kh + a) * spec.kw + b];
                            acc = (acc + xv as i128 * wv as i128).rem_euclid(t as i128);
                        }
                    }
                }
                y.push(acc as u64);
            }
        }
    }
    y
}
