//! Predicted costs of one linear layer, computed from shapes alone (no keys, nothing run).

use serde::{Deserialize, Serialize};

/// What one layer costs under a protocol. Bytes are payload bytes exactly as counted by
/// `transport::Stats` (frame length prefixes excluded); `messages_*` are frames.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cost {
    /// RLWE ciphertexts from client to server.
    pub ciphertexts_c2s: u64,
    /// RLWE ciphertexts from server to client (after packing, if any).
    pub ciphertexts_s2c: u64,
    pub bytes_c2s: u64,
    pub bytes_s2c: u64,
    pub messages_c2s: u64,
    pub messages_s2c: u64,
    /// Round trips.
    pub rounds: u64,
    /// Ciphertext × plaintext polynomial products (one per RNS limb set, i.e. per polynomial pair).
    pub ct_pt_mults: u64,
    /// Length-N number-theoretic transforms, forward or inverse, one per prime, both parties.
    pub ntts: u64,
    /// Automorphisms with key switching (rotations); Cheetah's encoding needs none.
    pub rotations: u64,
    /// Correlated OTs drawn from the session, the server sending (OT-based protocols; their
    /// generation traffic is the OT layer's, not counted in `bytes_*`).
    #[serde(default)]
    pub cots: u64,
}

impl Cost {
    pub fn bytes(&self) -> u64 {
        self.bytes_c2s + self.bytes_s2c
    }
}

impl std::ops::Add for Cost {
    type Output = Cost;
    fn add(self, o: Cost) -> Cost {
        Cost {
            ciphertexts_c2s: self.ciphertexts_c2s + o.ciphertexts_c2s,
            ciphertexts_s2c: self.ciphertexts_s2c + o.ciphertexts_s2c,
            bytes_c2s: self.bytes_c2s + o.bytes_c2s,
            bytes_s2c: self.bytes_s2c + o.bytes_s2c,
            messages_c2s: self.messages_c2s + o.messages_c2s,
            messages_s2c: self.messages_s2c + o.messages_s2c,
            rounds: self.rounds + o.rounds,
            ct_pt_mults: self.ct_pt_mults + o.ct_pt_mults,
            ntts: self.ntts + o.ntts,
            rotations: self.rotations + o.rotations,
            cots: self.cots + o.cots,
        }
    }
}
