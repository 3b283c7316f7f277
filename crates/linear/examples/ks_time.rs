//! Times one automorphism + hybrid key switch and NTTs on the packing set (planner constants):
//! `cargo run --example ks_time -p privinfer-linear`. Prints the best of several runs (robust to
//! a loaded machine).
use rand::SeedableRng;
use std::time::Instant;

fn best(reps: usize, mut f: impl FnMut()) -> std::time::Duration {
    let mut b = std::time::Duration::MAX;
    for _ in 0..reps {
        let t = Instant::now();
        f();
        b = b.min(t.elapsed());
    }
    b
}

fn main() {
    // As `privinfer bench linear` does; `KS_TIME_DEFAULT_MALLOC=1` measures glibc's defaults.
    if std::env::var_os("KS_TIME_DEFAULT_MALLOC").is_none() {
        math::alloc::retain_large_allocations();
    }
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
    for id in [
        linear::HeParamsId::N8192Q180P38,
        linear::HeParamsId::N8192Q120P60,
    ] {
        let p = id.rlwe_params(37).unwrap();
        let sk = rlwe::SecretKey::generate(&p, &mut rng);
        let gk = rlwe::GaloisKeys::generate(&sk, &[8193], &mut rng).unwrap();
        let ks = p.key_switcher().unwrap();
        let key = gk.get(8193).unwrap();
        let l = p.ctx_q().len();
        let c = math::sample::uniform_poly(p.ctx_q(), l, math::Representation::Ntt, &mut rng);
        let a = c.automorphism(8193).unwrap();
        let t_ks = best(20, || {
            let a = c.automorphism(8193).unwrap();
            let _ = ks.switch(&a, key).unwrap();
        });
        let t_sw = best(20, || {
            let _ = ks.switch(&a, key).unwrap();
        });
        let t_auto = best(20, || {
            let _ = c.automorphism(8193).unwrap();
        });
        let t_perm = best(20, || {
            let _ = p.ctx_q().automorphism_permutation(8193).unwrap();
        });
        println!(
            "{}: automorphism {t_auto:?} (permutation table {t_perm:?})",
            id.name()
        );
        let mut c2 = c.clone();
        let t_ntt = best(50, || {
            c2.ntt_inverse();
            c2.ntt_forward();
        }) / (2 * l as u32);
        println!(
            "{}: automorphism+switch {t_ks:?} (switch alone {t_sw:?}); one NTT(8192) {t_ntt:?}; \
             key switch = {:.1} NTTs",
            id.name(),
            t_ks.as_secs_f64() / t_ntt.as_secs_f64()
        );
    }
    let ctx = linear::HeParamsId::N4096Q109.context().unwrap();
    let mut c = math::sample::uniform_poly(&ctx, 2, math::Representation::Ntt, &mut rng);
    println!(
        "one NTT(4096), 55-bit prime: {:?}",
        best(50, || {
            c.ntt_inverse();
            c.ntt_forward();
        }) / 4
    );
}
