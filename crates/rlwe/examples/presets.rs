//! Prints the facts of each named preset (primes, log QP, Δ, capacity).
use rlwe::{noise, presets, Params};

fn main() {
    let sets = [
        (
            "cheetah_n4096_q109_t2l(37)",
            presets::cheetah_n4096_q109_t2l(37),
        ),
        ("bfv_n8192_q180_t2l(37)", presets::bfv_n8192_q180_t2l(37)),
        ("bfv_simd_n8192_q218(20)", presets::bfv_simd_n8192_q218(20)),
        (
            "bfv_simd_n16384_q438(30)",
            presets::bfv_simd_n16384_q438(30),
        ),
    ];
    for (name, lit) in sets {
        let p = Params::new(lit.expect("preset")).expect("checked");
        let l = p.max_level();
        println!(
            "{name}: N = {}, q = {:?}, p = {:?}, t = {}, log QP = {}, log Q = {:.1}, capacity = {:.1} bits, fresh pk noise <= {:.1} bits, key switch noise <= {}",
            p.n(),
            p.literal().q,
            p.literal().p,
            p.t().value(),
            p.literal().log_qp(),
            p.log_q(l),
            noise::capacity(&p, l).log2(),
            noise::fresh_pk(&p).log2(),
            if p.num_special() > 0 { format!("{:.1} bits", noise::key_switch(&p, l).log2()) } else { "n/a".into() },
        );
    }
}
