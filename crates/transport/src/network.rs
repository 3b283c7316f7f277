//! Network cost estimates: estimate = compute + bytes / bandwidth + rounds × RTT (or hops × RTT/2).

use std::time::Duration;

use crate::TransportError;

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

    /// No network: unlimited bandwidth, no delay — an emulated link that only keeps the hop
    /// count (`Stats::hops`) of an in-process run.
    pub const LOOPBACK: NetworkModel = NetworkModel {
        name: "loopback",
        bandwidth_bps: 1e15,
        rtt: Duration::ZERO,
    };

    /// A network of `mbps` Mbit/s each way and `rtt_ms` ms round trip (named "custom").
    pub fn custom(mbps: f64, rtt_ms: f64) -> Result<NetworkModel, TransportError> {
        if !(mbps.is_finite() && mbps > 0.0 && rtt_ms.is_finite() && rtt_ms >= 0.0) {
            return Err(TransportError::InvalidNetwork {
                spec: format!("{mbps}:{rtt_ms}"),
            });
        }
        Ok(NetworkModel {
            name: "custom",
            bandwidth_bps: mbps * 1e6,
            rtt: Duration::from_secs_f64(rtt_ms / 1e3),
        })
    }

    /// `lan` ([`Self::LAN`]), `wan` ([`Self::WAN`]) or `<mbit/s>:<rtt ms>` (e.g. `100:20`).
    pub fn parse(spec: &str) -> Result<NetworkModel, TransportError> {
        let bad = || TransportError::InvalidNetwork {
            spec: spec.to_string(),
        };
        match spec.to_ascii_lowercase().as_str() {
            "lan" => Ok(Self::LAN),
            "wan" => Ok(Self::WAN),
            s => {
                let (b, r) = s.split_once(':').ok_or_else(bad)?;
                let b: f64 = b.trim().parse().map_err(|_| bad())?;
                let r: f64 = r.trim().parse().map_err(|_| bad())?;
                Self::custom(b, r).map_err(|_| bad())
            }
        }
    }

    /// compute + (bytes each way, added) / bandwidth + hops × RTT / 2, for a run whose critical
    /// path had `hops` one-way messages (`Stats::hops`).
    pub fn estimate_hops(&self, compute: Duration, bytes: u64, hops: u64) -> Estimate {
        let mut e = self.estimate(compute, bytes, 0);
        e.seconds += hops as f64 * self.rtt.as_secs_f64() / 2.0;
        e
    }

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
