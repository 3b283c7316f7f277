//! Bytes from the other party are never trusted: malformed messages give typed errors, not
//! panics or hangs.

use linear::{
    Cheetah, ClientKeys, LayerSpec, LayerWeights, LinearError, LinearProtocol, Ring, ServerKeys,
};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use transport::{Channel, MemoryChannel};

fn setup(layer: &LayerSpec, ring: Ring) -> (Cheetah, ClientKeys, ServerKeys) {
    let proto = Cheetah::default();
    let req = proto.keys_needed(layer, ring).unwrap();
    let (mut a, mut b) = MemoryChannel::pair();
    let ck = ClientKeys::setup(&req, &mut a, &mut ChaCha20Rng::seed_from_u64(1)).unwrap();
    let sk = ServerKeys::setup(&req, &mut b).unwrap();
    (proto, ck, sk)
}

#[test]
fn server_rejects_bad_queries() {
    let ring = Ring::new(37).unwrap();
    let layer = LayerSpec::fc(20, 5, 8);
    let (proto, _ck, sk) = setup(&layer, ring);
    let w = LayerWeights {
        weights: vec![1; 100],
        bias: vec![0; 5],
    };
    let x = vec![0u64; 20];
    let good_len = proto.cost(&layer, ring).unwrap().bytes_c2s as usize;
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (vec![], "empty"),
        (vec![1u8; good_len - 1], "truncated"),
        (vec![1u8; good_len + 1], "too long"),
        (
            {
                let mut m = vec![0u8; good_len];
                m[0] = 9;
                m
            },
            "wrong tag",
        ),
        (
            {
                let mut m = vec![0xffu8; good_len];
                m[0] = 1;
                m
            },
            "residues out of range",
        ),
    ];
    for (msg, what) in cases {
        let (mut c, mut s) = MemoryChannel::pair();
        c.send(&msg).unwrap();
        let r = proto.server(
            &layer,
            ring,
            &sk,
            &w,
            &x,
            &mut s,
            &mut ChaCha20Rng::seed_from_u64(2),
        );
        assert!(
            matches!(
                r,
                Err(LinearError::MessageLength { .. }
                    | LinearError::ParamsMismatch { .. }
                    | LinearError::MessageRange { .. })
            ),
            "{what}: {:?}",
            r.err()
        );
    }
}

#[test]
fn client_rejects_bad_responses_and_a_silent_peer() {
    let ring = Ring::new(37).unwrap();
    let layer = LayerSpec::fc(20, 5, 8);
    let (proto, ck, _sk) = setup(&layer, ring);
    let x = vec![0u64; 20];
    let good = proto.cost(&layer, ring).unwrap().bytes_s2c as usize;
    for len in [0, good - 1, good + 3] {
        let (mut c, mut s) = MemoryChannel::pair();
        s.send(&vec![7u8; len]).unwrap();
        let r = proto.client(
            &layer,
            ring,
            &ck,
            &x,
            &mut c,
            &mut ChaCha20Rng::seed_from_u64(3),
        );
        assert!(
            matches!(r, Err(LinearError::MessageLength { .. })),
            "len {len}: {:?}",
            r.err()
        );
    }
    // The peer hangs up: a typed transport error.
    let (mut c, s) = MemoryChannel::pair();
    drop(s);
    let r = proto.client(
        &layer,
        ring,
        &ck,
        &x,
        &mut c,
        &mut ChaCha20Rng::seed_from_u64(4),
    );
    assert!(matches!(r, Err(LinearError::Transport(_))));
}

#[test]
fn key_setup_rejects_garbage_and_inputs_are_checked() {
    let ring = Ring::new(37).unwrap();
    let layer = LayerSpec::fc(20, 5, 8);
    let proto = Cheetah::default();
    let req = proto.keys_needed(&layer, ring).unwrap();
    let (mut c, mut s) = MemoryChannel::pair();
    c.send(&[1u8; 17]).unwrap();
    assert!(matches!(
        ServerKeys::setup(&req, &mut s),
        Err(LinearError::MessageLength { .. })
    ));
    // Shares must be reduced mod 2^ℓ and of the right length; weights within the declared bound.
    let (_, ck, sk) = setup(&layer, ring);
    let (mut c, mut s) = MemoryChannel::pair();
    let r = proto.client(
        &layer,
        ring,
        &ck,
        &[1u64 << 40; 20],
        &mut c,
        &mut ChaCha20Rng::seed_from_u64(5),
    );
    assert!(matches!(r, Err(LinearError::NotReduced { .. })));
    let r = proto.client(
        &layer,
        ring,
        &ck,
        &[0; 19],
        &mut c,
        &mut ChaCha20Rng::seed_from_u64(5),
    );
    assert!(matches!(r, Err(LinearError::Length { .. })));
    let big = LayerWeights {
        weights: vec![1 << 20; 100],
        bias: vec![0; 5],
    };
    let r = proto.server(
        &layer,
        ring,
        &sk,
        &big,
        &[0; 20],
        &mut s,
        &mut ChaCha20Rng::seed_from_u64(6),
    );
    assert!(matches!(r, Err(LinearError::WeightBound { .. })));
}
