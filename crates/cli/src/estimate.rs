//! `privinfer estimate`: estimate = compute + bytes / bandwidth + rounds × RTT on LAN and WAN.

use std::time::Duration;

use transport::NetworkModel;

#[derive(clap::Args)]
pub struct Args {
    /// Compute time in milliseconds.
    #[arg(long, default_value_t = 0.0)]
    ms: f64,
    /// Total bytes exchanged (both directions).
    #[arg(long)]
    bytes: u64,
    /// Round trips.
    #[arg(long, default_value_t = 0)]
    rounds: u64,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        a.ms.is_finite() && a.ms >= 0.0,
        "--ms must be a finite, non-negative number"
    );
    let compute = Duration::from_secs_f64(a.ms / 1e3);
    for net in [NetworkModel::LAN, NetworkModel::WAN] {
        let e = net.estimate(compute, a.bytes, a.rounds);
        if a.json {
            println!(
                "{}",
                serde_json::json!({"network": e.network, "seconds": e.seconds})
            );
        } else {
            println!("{:>4}: {:.3} s", e.network, e.seconds);
        }
    }
    Ok(())
}
