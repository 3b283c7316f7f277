//! The SIMD (slot-encoded) layer protocol end to end: shares over Z_t reconstruct to the integer
//! oracle exactly, and the cost model's bytes equal the bytes counted on the channel.

mod common;

use common::{check_layer_field, conv};
use linear::{shapes, LayerSpec, LinearProtocol, Ring, Simd};

#[test]
fn small_conv_fc_and_scale() {
    let ring = Ring::new(37).unwrap();
    let p = Simd::default();
    for (i, layer) in [
        LayerSpec::conv(conv(3, 8, 4, 3, 1, 1, 1), 8),
        LayerSpec::conv(conv(5, 7, 6, 3, 2, 1, 1), 8),
        LayerSpec::conv(conv(8, 6, 8, 3, 1, 1, 8), 8),
        LayerSpec::fc(100, 10, 8),
        LayerSpec::fc(10, 40, 8),
        LayerSpec::scale(4, 5, 5, 8),
        LayerSpec::matmul(65, 128, 384, 8),
        LayerSpec::matmul(7, 20, 9, 8),
    ]
    .iter()
    .enumerate()
    {
        let out = check_layer_field(&p, layer, ring, i as u64);
        eprintln!(
            "{layer:?}: exact, {} + {} bytes, {} rotations",
            out.predicted.bytes_c2s, out.predicted.bytes_s2c, out.predicted.rotations
        );
    }
}

/// The padded channel-minor kernel (`hyena`) on the same messages: exact, predicted = measured bytes.
#[test]
fn hyena_small_shapes() {
    let ring = Ring::new(37).unwrap();
    let p = Simd::new(linear::SimdConfig::hyena());
    for (i, layer) in [
        LayerSpec::conv(conv(3, 8, 4, 3, 1, 1, 1), 6),
        LayerSpec::conv(conv(5, 7, 6, 3, 2, 1, 1), 6),
        LayerSpec::conv(conv(8, 6, 8, 3, 1, 1, 8), 6),
        LayerSpec::scale(4, 5, 5, 6),
        LayerSpec::matmul(9, 12, 5, 6),
    ]
    .iter()
    .enumerate()
    {
        let out = check_layer_field(&p, layer, ring, 20 + i as u64);
        eprintln!(
            "hyena {layer:?}: exact, {} + {} bytes",
            out.predicted.bytes_c2s, out.predicted.bytes_s2c
        );
    }
    assert!(
        p.cost(&LayerSpec::fc(10, 4, 6), ring).is_err(),
        "no FC kernel"
    );
}

#[test]
fn resnet20_shapes() {
    let ring = Ring::new(37).unwrap();
    let p = Simd::default();
    let layers = shapes::by_name("resnet20", 8).unwrap();
    for (i, (name, layer)) in shapes::distinct(&layers).iter().enumerate() {
        let t = std::time::Instant::now();
        let out = check_layer_field(&p, layer, ring, i as u64);
        eprintln!(
            "resnet20 {name}: {} outputs exact, {} + {} bytes, {} rot, {:.2?}",
            out.y.len(),
            out.predicted.bytes_c2s,
            out.predicted.bytes_s2c,
            out.predicted.rotations,
            t.elapsed()
        );
    }
}

mod malformed {
    //! Bytes from the other party are never trusted: malformed SIMD queries, responses and key
    //! messages give typed errors, not panics or hangs (the stable twin of the `simd_messages`
    //! fuzz target).
    use linear::{
        ClientKeys, KeyRequest, LayerSpec, LayerWeights, LinearError, LinearProtocol, Ring,
        ServerKeys, Simd,
    };
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;
    use transport::{Channel, MemoryChannel};

    fn layer() -> LayerSpec {
        LayerSpec::conv(linear::Conv2dSpec::square(2, 6, 4, 3, 1, 1, 1), 8)
    }

    fn setup(req: &[KeyRequest]) -> (ClientKeys, ServerKeys) {
        let (mut a, mut b) = MemoryChannel::pair();
        let ck = ClientKeys::setup(req, &mut a, &mut ChaCha20Rng::seed_from_u64(1)).unwrap();
        let sk = ServerKeys::setup(req, &mut b).unwrap();
        (ck, sk)
    }

    /// A real query of the layer (the client's first message).
    fn real_query(p: &Simd, l: &LayerSpec, ring: Ring, ck: &ClientKeys) -> Vec<u8> {
        let (mut c, mut s) = MemoryChannel::pair();
        s.send(&[]).unwrap(); // the client fails on this response after sending its query
        let _ = p.client(
            l,
            ring,
            ck,
            &vec![0; l.input_len()],
            &mut c,
            &mut ChaCha20Rng::seed_from_u64(2),
        );
        s.recv().unwrap()
    }

    #[test]
    fn server_rejects_bad_queries_and_inputs() {
        let ring = Ring::new(37).unwrap();
        let (p, l) = (Simd::default(), layer());
        let req = p.keys_needed(&l, ring).unwrap();
        let (ck, sk) = setup(&req);
        let w = LayerWeights {
            weights: vec![1; l.weight_len()],
            bias: vec![0; l.bias_len()],
        };
        let x = vec![0u64; l.input_len()];
        let good = real_query(&p, &l, ring, &ck);
        assert_eq!(good.len() as u64, p.cost(&l, ring).unwrap().bytes_c2s);
        let flip = |i: usize, v: u8| {
            let mut m = good.clone();
            m[i] = v;
            m
        };
        let mut high = good.clone();
        for b in &mut high[14..14 + 64] {
            *b = 0xff;
        }
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (vec![], "empty"),
            (good[..good.len() - 1].to_vec(), "truncated"),
            ([good.clone(), vec![0]].concat(), "too long"),
            (flip(0, b'X'), "bad magic"),
            (flip(3, 1), "not seeded (full form)"),
            (flip(4, good[4] ^ 1), "another parameter set"),
            (flip(12, 1), "lower level"),
            (flip(13, 0), "coefficient form"),
            (high, "residues out of range"),
        ];
        for (msg, what) in cases {
            let (mut c, mut s) = MemoryChannel::pair();
            c.send(&msg).unwrap();
            let r = p.server(
                &l,
                ring,
                &sk,
                &w,
                &x,
                &mut s,
                &mut ChaCha20Rng::seed_from_u64(3),
            );
            assert!(
                matches!(
                    r,
                    Err(LinearError::MessageLength { .. } | LinearError::MessageRange { .. })
                ),
                "{what}: {:?}",
                r.err()
            );
        }
        // A share not reduced mod t, or of the wrong length: refused before anything is read.
        let (_c, mut s) = MemoryChannel::pair();
        let t = p.share_modulus(&l, ring).unwrap().unwrap();
        let mut bad = x.clone();
        bad[0] = t;
        for xs in [bad, vec![0; 3]] {
            let r = p.server(
                &l,
                ring,
                &sk,
                &w,
                &xs,
                &mut s,
                &mut ChaCha20Rng::seed_from_u64(4),
            );
            assert!(r.is_err());
        }
    }

    #[test]
    fn client_rejects_bad_responses() {
        let ring = Ring::new(37).unwrap();
        let (p, l) = (Simd::default(), layer());
        let req = p.keys_needed(&l, ring).unwrap();
        let (ck, _sk) = setup(&req);
        let len = p.cost(&l, ring).unwrap().bytes_s2c as usize;
        for (msg, ok) in [
            (vec![0u8; len - 1], false),
            (vec![0u8; len + 1], false),
            (vec![], false),
            // Right length, any bits: a valid (meaningless) response, no panic.
            (vec![0xa5u8; len], true),
        ] {
            let (mut c, mut s) = MemoryChannel::pair();
            s.send(&msg).unwrap();
            let r = p.client(
                &l,
                ring,
                &ck,
                &vec![0; l.input_len()],
                &mut c,
                &mut ChaCha20Rng::seed_from_u64(5),
            );
            assert_eq!(r.is_ok(), ok, "{} bytes: {:?}", msg.len(), r.err());
        }
    }

    #[test]
    fn server_refuses_galois_keys_for_other_rotations() {
        let ring = Ring::new(37).unwrap();
        let (p, l) = (Simd::default(), layer());
        let req = p.keys_needed(&l, ring).unwrap();
        // The client leaves one rotation out: the server's check of the key set refuses it.
        let fewer: Vec<KeyRequest> = req[..req.len() - 1].to_vec();
        let (mut a, mut b) = MemoryChannel::pair();
        ClientKeys::setup(&fewer, &mut a, &mut ChaCha20Rng::seed_from_u64(1)).unwrap();
        let r = ServerKeys::setup(&req, &mut b);
        assert!(
            matches!(r, Err(LinearError::MessageRange { .. })),
            "{:?}",
            r.err()
        );
    }
}
