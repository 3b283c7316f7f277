//! Network cost estimates: estimate = compute + bytes / bandwidth + rounds × RTT.

use std::time::Duration;

/// A network described by its bandwidth and round-trip time.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NetworkModel {
    pub name: &'static str,
    /// Bits per second, one direction.
    pub bandwidth_bps: f64,
    /// Round-trip time.
    pub rtt: Duration,
}

/// An estimated end-to-end time on one network.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Estimate {
    pub network: &'static str,
    pub seconds: f64,
}

impl NetworkModel {
    /// Cheetah's LAN setting: 3 Gbps, 0.3 ms RTT.
    pub const LAN: NetworkModel = NetworkModel {
        name: "LAN",
        bandwidth_bps: 3e9,
        rtt: Duration::from_micros(300),
    };
    /// Cheetah's WAN setting: 400 Mbps, 40 ms RTT.
    pub const WAN: NetworkModel = NetworkModel {
        name: "WAN",
        bandwidth_bps: 400e6,
        rtt: Duration::from_millis(40),
    };

    /// compute + (bytes each way, added) / bandwidth + rounds × RTT.
    pub fn estimate(&self, compute: Duration, bytes: u64, rounds: u64) -> Estimate {
        let s = compute.as_secs_f64()
            + (bytes as f64 * 8.0) / self.bandwidth_bps
            + rounds as f64 * self.rtt.as_secs_f64();
        Estimate {
            network: self.name,
            seconds: s,
        }
    }
}
