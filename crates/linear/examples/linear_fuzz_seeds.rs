//! Writes the seeds of the `linear_messages` fuzz target (fuzz/README.md): for every layer of
//! the target, a query and a response of exactly the planned lengths (zero digits, which are in
//! range; the query's tag byte set), each prefixed with the selector bytes the target reads, and
//! query-codec messages for two sets, drops and supports.
//!
//!     cargo run -p privinfer-linear --example linear_fuzz_seeds -- fuzz/seeds/linear_messages

use linear::cheetah::query::query_bytes;
use linear::{Cheetah, HeParamsId, Ring};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "fuzz/seeds/linear_messages".into());
    std::fs::create_dir_all(&dir)?;
    let ring = Ring::new(37)?;
    let (proto, falcon) = (Cheetah::default(), linear::Falcon::default());
    for (i, (name, layer)) in linear::shapes::fuzz_layers().into_iter().enumerate() {
        // As the fuzz target runs them: Falcon where it applies.
        let circ = linear::Circulant::default();
        let plan = if linear::Falcon::applies(&layer) {
            falcon.plan(&layer, ring)?
        } else if let Ok(p) = circ.plan(&layer, ring) {
            p
        } else {
            proto.plan(&layer, ring)?
        };
        let mut q = vec![1u8, i as u8, plan.params.tag()];
        q.resize(2 + plan.cost.bytes_c2s as usize, 0);
        std::fs::write(format!("{dir}/server_{name}_query"), &q)?;
        let mut r = vec![2u8, i as u8];
        r.resize(2 + plan.cost.bytes_s2c as usize, 0);
        std::fs::write(format!("{dir}/client_{name}_response"), &r)?;
        println!(
            "{name}: {} {:?} query {} B, response {} B",
            plan.params.name(),
            plan.layout,
            plan.cost.bytes_c2s,
            plan.cost.bytes_s2c
        );
    }
    // Codec: data[0] = 4·(step − 1) (selector 0), data[1] = set index + 8·drop.
    for (pi, drop, step) in [
        (0usize, 0u32, 1usize),
        (0, 13, 1),
        (4, 13, 1),
        (0, 0, 3),
        (4, 13, 8),
    ] {
        let p = HeParamsId::ALL[pi];
        let b1 = pi as u8 + 8 * drop as u8;
        let max = linear::cheetah::query::max_drop_bits(p);
        assert_eq!((b1 as u32 >> 3) % (max + 1), drop, "drop encodable");
        let count = p.n().div_ceil(step);
        let mut m = vec![4 * (step - 1) as u8, b1];
        m.resize(2 + query_bytes(p, drop, count)?, 0);
        std::fs::write(
            format!("{dir}/query_{}_drop{drop}_step{step}", p.name()),
            &m,
        )?;
    }
    Ok(())
}
