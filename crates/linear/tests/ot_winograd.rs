//! The OT linear layer and Winograd F(2,3) / F(4,3) through a real session (IKNP COTs): exact
//! against the integer oracle (Winograd: 2^e times it, removed by the rescale that follows),
//! and the predicted bytes, messages and COTs equal to what the channel counts.

mod common;

use linear::{
    reference, ClientKeys, Conv2dSpec, LayerSpec, LinearProtocol, OtLinear, Ring, ServerKeys,
    Winograd,
};
use mpc::{Party, Session, SessionConfig};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use transport::{Channel, MemoryChannel};

fn config() -> SessionConfig {
    SessionConfig {
        refill: 1 << 12,
        cot: ot::CotConfig {
            backend: ot::CotBackend::Iknp,
        },
    }
}

/// Runs `proto` on random weights and inputs; asserts the output and the byte prediction.
fn check(proto: &dyn LinearProtocol, layer: &LayerSpec, ring: Ring, seed: u64) {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let w = common::random_weights(layer, ring, &mut rng);
    let x: Vec<u64> = (0..layer.input_len())
        .map(|_| ring.reduce(rng.gen()))
        .collect();
    let xc: Vec<u64> = (0..x.len()).map(|_| ring.reduce(rng.gen())).collect();
    let xs: Vec<u64> = x
        .iter()
        .zip(&xc)
        .map(|(&a, &b)| ring.reduce(a.wrapping_sub(b)))
        .collect();
    let cost = proto.cost(layer, ring).unwrap();
    let cots = cost.cots as usize;
    let (mut cc, mut sc) = MemoryChannel::pair();
    let (ys, yc, st) = std::thread::scope(|s| {
        let h = s.spawn(|| {
            let mut r = ChaCha20Rng::seed_from_u64(seed ^ 1);
            let mut sess = Session::setup_with(&mut sc, Party::P0, &mut r, config()).unwrap();
            sess.prefetch(&mut sc, cots, 0).unwrap();
            let keys = ServerKeys::setup(&[], &mut sc).unwrap();
            let before = sc.stats();
            let y = proto
                .server_in(layer, ring, &keys, &w, &xs, &mut sess, &mut sc, &mut r)
                .unwrap();
            (y, sc.stats().since(&before))
        });
        let mut r = ChaCha20Rng::seed_from_u64(seed ^ 2);
        let mut sess = Session::setup_with(&mut cc, Party::P1, &mut r, config()).unwrap();
        sess.prefetch(&mut cc, 0, cots).unwrap();
        let keys = ClientKeys::setup(&[], &mut cc, &mut r).unwrap();
        let yc = proto
            .client_in(layer, ring, &keys, &xc, &mut sess, &mut cc, &mut r)
            .unwrap();
        let (ys, st) = h.join().unwrap();
        (ys, yc, st)
    });
    let e = proto.output_shift(layer);
    let want: Vec<u64> = reference(layer, ring, &w, &x)
        .iter()
        .map(|&v| ring.reduce(v << e))
        .collect();
    let got: Vec<u64> = ys
        .iter()
        .zip(&yc)
        .map(|(&a, &b)| ring.reduce(a.wrapping_add(b)))
        .collect();
    assert_eq!(got, want, "{} on {layer:?}", proto.name());
    assert_eq!(st.bytes_received, cost.bytes_c2s, "{} c2s", proto.name());
    assert_eq!(st.bytes_sent, cost.bytes_s2c, "{} s2c", proto.name());
    assert_eq!(
        st.frames_sent,
        cost.messages_s2c,
        "{} messages",
        proto.name()
    );
    assert_eq!(
        st.frames_received,
        cost.messages_c2s,
        "{} messages",
        proto.name()
    );
}

fn conv(
    c: usize,
    h: usize,
    m: usize,
    k: usize,
    stride: usize,
    padding: usize,
    groups: usize,
) -> LayerSpec {
    LayerSpec::conv(
        Conv2dSpec {
            c,
            h,
            w: h + 1,
            m,
            kh: k,
            kw: k,
            stride,
            padding,
            groups,
            block: 1,
        },
        8,
    )
}

#[test]
fn ot_layers_of_every_shape_are_exact_and_cost_what_they_predict() {
    let ring = Ring::new(37).unwrap();
    for (i, layer) in [
        conv(3, 6, 4, 3, 1, 1, 1),
        conv(4, 7, 4, 3, 2, 1, 4),
        conv(2, 5, 3, 1, 1, 0, 1),
        conv(4, 6, 6, 5, 2, 2, 2),
        LayerSpec::fc(33, 10, 8),
        LayerSpec::matmul(3, 5, 4, 8),
        LayerSpec::scale(3, 4, 4, 8),
    ]
    .iter()
    .enumerate()
    {
        check(&OtLinear, layer, ring, i as u64);
    }
}

#[test]
fn winograd_is_exact_and_costs_what_it_predicts() {
    for ell in [37u32, 44] {
        let ring = Ring::new(ell).unwrap();
        for (i, layer) in [
            conv(3, 8, 4, 3, 1, 1, 1),
            conv(4, 5, 2, 3, 1, 0, 2),
            conv(2, 9, 3, 3, 1, 2, 1),
        ]
        .iter()
        .enumerate()
        {
            for m in [2, 4] {
                check(
                    &Winograd::new(m).unwrap(),
                    layer,
                    ring,
                    (ell as u64) << 8 | (i * 4 + m) as u64,
                );
            }
        }
    }
}

#[test]
fn winograd_refuses_other_layers_and_ot_protocols_refuse_to_run_without_a_session() {
    let ring = Ring::new(37).unwrap();
    let w = Winograd::new(2).unwrap();
    assert!(w.cost(&conv(3, 6, 4, 3, 2, 1, 1), ring).is_err());
    assert!(w.cost(&conv(3, 6, 4, 5, 1, 1, 1), ring).is_err());
    assert!(w.cost(&LayerSpec::fc(4, 4, 8), ring).is_err());
    assert!(Winograd::new(3).is_err());
    let (mut a, _b) = MemoryChannel::pair();
    let keys = ClientKeys::setup(&[], &mut a, &mut ChaCha20Rng::seed_from_u64(0)).unwrap();
    let layer = LayerSpec::fc(4, 4, 8);
    let err = OtLinear
        .client(
            &layer,
            ring,
            &keys,
            &[0; 4],
            &mut a,
            &mut ChaCha20Rng::seed_from_u64(0),
        )
        .unwrap_err();
    assert!(err.to_string().contains("session"), "{err}");
}

/// Winograd moves fewer bits than the OT layer by the ratio of client elements per output:
/// the OT layer pays for every (input pixel, tap) pair that lands in the output (zero padding
/// is public and skipped: (3·32 − 2)² pairs per channel pair on a 32×32 map, not im2col's
/// 9·32²), Winograd for α² transformed elements per m×m tile.
#[test]
fn winograd_byte_ratios_against_the_ot_layer() {
    let ring = Ring::new(37).unwrap();
    let layer = LayerSpec::conv(Conv2dSpec::square(16, 32, 16, 3, 1, 1, 1), 8);
    let ot = OtLinear.cost(&layer, ring).unwrap().bytes_s2c as f64;
    let f2 = Winograd::new(2)
        .unwrap()
        .cost(&layer, ring)
        .unwrap()
        .bytes_s2c as f64;
    let f4 = Winograd::new(4)
        .unwrap()
        .cost(&layer, ring)
        .unwrap()
        .bytes_s2c as f64;
    let pairs = 94.0 * 94.0;
    // Against CrypTFlow2's im2col (padding entries included): exactly 2.25× and 4×.
    let im2col = linear::ot::im2col_cost(&layer, ring)
        .unwrap()
        .unwrap()
        .bytes_s2c as f64;
    assert!((im2col / f2 / 2.25 - 1.0).abs() < 1e-6, "{}", im2col / f2);
    assert!((im2col / f4 / 4.0 - 1.0).abs() < 1e-6, "{}", im2col / f4);
    assert!(
        (ot / f2 / (pairs / (16.0 * 16.0 * 16.0)) - 1.0).abs() < 1e-3,
        "{}",
        ot / f2
    );
    assert!(
        (ot / f4 / (pairs / (8.0 * 8.0 * 36.0)) - 1.0).abs() < 1e-3,
        "{}",
        ot / f4
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]
    #[test]
    fn winograd_matches_the_direct_convolution(
        c in 1usize..4, h in 3usize..9, m in 1usize..4, pad in 0usize..3, tile in prop::sample::select(vec![2usize, 4]), seed in 0u64..1000
    ) {
        let layer = conv(c, h, m, 3, 1, pad, 1);
        check(&Winograd::new(tile).unwrap(), &layer, Ring::new(37).unwrap(), seed);
    }
}
