//! The interface every linear-layer technique implements.

use rand_core::CryptoRngCore;
use transport::Channel;

use crate::keys::{ClientKeys, KeyRequest, ServerKeys};
use crate::layer::{LayerSpec, LayerWeights, Ring};
use crate::{Cost, LinearError};

/// A two-party protocol turning additive shares of x (over Z_{2^ℓ}) into additive shares of
/// y = W·x + b mod 2^ℓ, the server holding W and b.
///
/// * [`cost`](LinearProtocol::cost) predicts, from public data only, what one call costs; its
///   `bytes_*` equal the bytes counted on the channel exactly, so a planner can choose per layer.
/// * [`client`](LinearProtocol::client) and [`server`](LinearProtocol::server) are the two halves;
///   each returns its party's output share. Both must be called with the same layer and ring.
/// * Long-lived key material is exchanged once by [`ClientKeys::setup`] / [`ServerKeys::setup`]
///   for the union of [`keys_needed`](LinearProtocol::keys_needed) over the layers to be run.
pub trait LinearProtocol: Send + Sync {
    /// Short name used in reports (`"cheetah"`, ...).
    fn name(&self) -> &'static str;

    /// Predicted cost of one execution on `layer`, computed without running anything.
    fn cost(&self, layer: &LayerSpec, ring: Ring) -> Result<Cost, LinearError>;

    /// Bytes of the weight plaintexts the server prepares for the layer, in the form its products
    /// read them (Hyena's storage metric, comparable across protocols): what a server holds per
    /// layer while it serves it, or keeps if it caches them between sessions.
    fn weight_bytes(&self, layer: &LayerSpec, ring: Ring) -> Result<u64, LinearError>;

    /// Key material the layer needs (exchanged once per session).
    fn keys_needed(&self, layer: &LayerSpec, ring: Ring) -> Result<Vec<KeyRequest>, LinearError>;

    /// The client's half: `x` is the client's share of the input; returns its share of the output.
    fn client(
        &self,
        layer: &LayerSpec,
        ring: Ring,
        keys: &ClientKeys,
        x: &[u64],
        ch: &mut dyn Channel,
        rng: &mut dyn CryptoRngCore,
    ) -> Result<Vec<u64>, LinearError>;

    /// The server's half: `x` is the server's share of the input; returns its share of the output.
    #[allow(clippy::too_many_arguments)]
    fn server(
        &self,
        layer: &LayerSpec,
        ring: Ring,
        keys: &ServerKeys,
        weights: &LayerWeights,
        x: &[u64],
        ch: &mut dyn Channel,
        rng: &mut dyn CryptoRngCore,
    ) -> Result<Vec<u64>, LinearError>;
}
