//! The response noise the client sees at modulus 2^k stays inside the bound of docs/security.md
//! ("Response size"): ν·2^k/Q + 2·B_ms + 2^{k−b−1} < 2^{k−ℓ−1}, with c₀ sent at b < k bits.

mod common;

use common::{conv, random_weights};
use linear::cheetah::noise::TAIL_Z;
use linear::{
    Cheetah, CheetahConfig, ClientKeys, HeParamsId, LayerSpec, LinearProtocol, Ring, ServerKeys,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use transport::MemoryChannel;

#[test]
fn response_noise_within_the_derived_bound() {
    let ring = Ring::new(37).unwrap();
    let cases = [
        (HeParamsId::N4096Q109, 50_000_000),
        (HeParamsId::N8192Q180P38, 1_000_000),
        (HeParamsId::N8192Q120P60, 1_000_000),
    ];
    for (i, (params, bw)) in cases.into_iter().enumerate() {
        let layer = LayerSpec::conv(conv(16, 16, 32, 3, 1, 1, 1), 12);
        let proto = Cheetah::new(CheetahConfig {
            params: Some(params),
            bandwidth_bytes_per_s: bw,
            ..CheetahConfig::default()
        });
        let plan = proto.plan(&layer, ring).unwrap();
        let (k, b) = (plan.noise.response_bits, plan.noise.c0_bits);
        assert!(
            b < k,
            "{}: c₀ not shortened (b = {b}, k = {k})",
            params.name()
        );
        let n = params.n() as f64;
        let b_ms = 2.0 * (0.5 + TAIL_Z * (n / 18.0).sqrt());
        let bound = (plan.noise.total_log2 - params.log_q().unwrap() + k as f64).exp2()
            + b_ms
            + 2f64.powi(k as i32 - b as i32 - 1);
        assert!(bound < 2f64.powi((k - ring.bits() - 1) as i32));

        let mut rng = ChaCha20Rng::seed_from_u64(40 + i as u64);
        let w = random_weights(&layer, ring, &mut rng);
        let xc: Vec<u64> = (0..layer.input_len())
            .map(|_| ring.reduce(rng.gen()))
            .collect();
        let xs: Vec<u64> = (0..layer.input_len())
            .map(|_| ring.reduce(rng.gen()))
            .collect();
        let req = proto.keys_needed(&layer, ring).unwrap();
        let (mut cc, mut sc) = MemoryChannel::pair();
        let (p2, l2, w2, req2, xs2) = (proto, layer, w.clone(), req.clone(), xs.clone());
        let server = std::thread::spawn(move || {
            let keys = ServerKeys::setup(&req2, &mut sc).unwrap();
            p2.server(
                &l2,
                ring,
                &keys,
                &w2,
                &xs2,
                &mut sc,
                &mut ChaCha20Rng::seed_from_u64(7),
            )
            .unwrap()
        });
        let mut crng = ChaCha20Rng::seed_from_u64(8);
        let keys = ClientKeys::setup(&req, &mut cc, &mut crng).unwrap();
        let (_, noise) = proto
            .client_with_noise(&layer, ring, &keys, &xc, &mut cc, &mut crng)
            .unwrap();
        server.join().unwrap();
        let max = noise.iter().map(|e| e.unsigned_abs()).max().unwrap() as f64;
        eprintln!(
            "{} pack {}: k = {k}, b = {b}, max |noise| = 2^{:.2}, bound 2^{:.2}, limit 2^{}",
            params.name(),
            plan.pack,
            max.log2(),
            bound.log2(),
            k - ring.bits() - 1
        );
        assert!(
            max <= bound,
            "{}: noise {max} > bound {bound}",
            params.name()
        );
        // The c₀ rounding is visible: the noise reaches at least a quarter of its own term.
        assert!(max >= 2f64.powi(k as i32 - b as i32 - 3));
    }
}
