//! Measured vs estimated compute of the unpacked and packed plans of one layer on a key-switching
//! set (calibrates `estimated_seconds`): `cargo run --release --example plan_time -p
//! privinfer-linear -- resnet50 layer4.0.downsample`.
use linear::{
    cheetah::estimated_seconds, shapes, Cheetah, CheetahConfig, ClientKeys, HeParamsId,
    LinearProtocol, Ring, ServerKeys,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use transport::MemoryChannel;

fn main() {
    // As `privinfer bench linear` does; `KS_TIME_DEFAULT_MALLOC=1` measures glibc's defaults.
    if std::env::var_os("KS_TIME_DEFAULT_MALLOC").is_none() {
        math::alloc::retain_large_allocations();
    }
    let args: Vec<String> = std::env::args().collect();
    let model = args.get(1).map(String::as_str).unwrap_or("resnet50");
    let name = args
        .get(2)
        .map(String::as_str)
        .unwrap_or("layer4.0.downsample");
    let params = match args.get(3).map(String::as_str) {
        Some("N8192Q180P38") => HeParamsId::N8192Q180P38,
        _ => HeParamsId::N8192Q120P60,
    };
    let ring = Ring::new(37).unwrap();
    let layer = shapes::by_name(model, 12)
        .expect("model")
        .into_iter()
        .find(|(n, _)| n == name)
        .expect("layer")
        .1;
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let lim = (1i64 << 12) - 1;
    let w = linear::LayerWeights {
        weights: (0..layer.weight_len())
            .map(|_| ring.from_signed(rng.gen_range(-lim..=lim)))
            .collect(),
        bias: vec![0; layer.bias_len()],
    };
    let x: Vec<u64> = (0..layer.input_len())
        .map(|_| ring.reduce(rng.gen()))
        .collect();
    for bw in [u64::MAX / 4, 1_000_000] {
        let proto = Cheetah::new(CheetahConfig {
            params: Some(params),
            bandwidth_bytes_per_s: bw,
            ..CheetahConfig::default()
        });
        let plan = proto.plan(&layer, ring).unwrap();
        let req = proto.keys_needed(&layer, ring).unwrap();
        let (mut cc, mut sc) = MemoryChannel::pair();
        let (ck, sk) = std::thread::scope(|s| {
            let h = s.spawn(|| ServerKeys::setup(&req, &mut sc).unwrap());
            let ck = ClientKeys::setup(&req, &mut cc, &mut rng.clone()).unwrap();
            (ck, h.join().unwrap())
        });
        let mut best = f64::MAX;
        for _ in 0..2 {
            let t = std::time::Instant::now();
            std::thread::scope(|s| {
                let h = s.spawn(|| {
                    proto
                        .server(&layer, ring, &sk, &w, &x, &mut sc, &mut rng.clone())
                        .unwrap()
                });
                proto
                    .client(&layer, ring, &ck, &x, &mut cc, &mut rng.clone())
                    .unwrap();
                h.join().unwrap();
            });
            best = best.min(t.elapsed().as_secs_f64());
        }
        println!(
            "{name} {} G = {}: measured {:.0} ms, estimated compute {:.0} ms (NTTs {}, key switches {}, ct×pt {}, returned {})",
            params.name(),
            plan.pack,
            best * 1e3,
            estimated_seconds(&plan.cost, params, f64::INFINITY) * 1e3,
            plan.cost.ntts,
            plan.cost.rotations,
            plan.cost.ct_pt_mults,
            plan.cost.ciphertexts_s2c
        );
    }
}
