//! The interface every linear-layer technique implements.

use rand_core::CryptoRngCore;
use transport::Channel;

use crate::keys::{ClientKeys, KeyRequest, ServerKeys};
use crate::layer::{LayerSpec, LayerWeights, Ring};
use crate::{Cost, LinearError};
use mpc::Session;

/// A query sent by [`LinearProtocol::client_send`] whose answer is not read yet: the layer the
/// query was made for and the (rows, columns) to transpose the output share back.
#[derive(Clone, Debug)]
pub struct PendingAnswer {
    pub(crate) layer: LayerSpec,
    pub(crate) back: Option<(usize, usize)>,
}

/// A two-party protocol turning additive shares of x (over Z_{2^ℓ}, or Z_t for a field-domain
/// protocol: [`share_modulus`](LinearProtocol::share_modulus)) into additive shares of
/// y = W·x + b, the server holding W and b.
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

    /// The modulus of the shares the protocol reads and writes: `None` for Z_{2^ℓ} (the
    /// network's ring), `Some(t)` for a protocol over the field Z_t (the SIMD family). The
    /// engine converts the shares around a field-domain layer
    /// (`mpc::Session::{ring_to_field,field_to_ring}_in_range`).
    fn share_modulus(&self, _layer: &LayerSpec, _ring: Ring) -> Result<Option<u64>, LinearError> {
        Ok(None)
    }

    /// Predicted cost of one execution on `layer`, computed without running anything.
    fn cost(&self, layer: &LayerSpec, ring: Ring) -> Result<Cost, LinearError>;

    /// Estimated seconds of one execution at `bandwidth` bytes/s (wire time plus computation
    /// from the cost's operation counts), for choosing a protocol per layer.
    fn estimated_seconds(
        &self,
        layer: &LayerSpec,
        ring: Ring,
        bandwidth: f64,
    ) -> Result<f64, LinearError>;

    /// Bytes of the weight plaintexts the server prepares for the layer, in the form its products
    /// read them (Hyena's storage metric, comparable across protocols): what a server holds per
    /// layer while it serves it, or keeps if it caches them between sessions.
    fn weight_bytes(&self, layer: &LayerSpec, ring: Ring) -> Result<u64, LinearError>;

    /// A bound on the memory one execution holds at its peak beyond what its wire bytes
    /// suggest (ciphertexts computed on, accumulators), for a server's memory budget; 0 when the
    /// wire bytes are the measure (the engine takes a multiple of them anyway).
    fn working_set_bytes(&self, _layer: &LayerSpec, _ring: Ring) -> Result<u64, LinearError> {
        Ok(0)
    }

    /// Key material the layer needs (exchanged once per session).
    fn keys_needed(&self, layer: &LayerSpec, ring: Ring) -> Result<Vec<KeyRequest>, LinearError>;

    /// The client's half without a session: `x` is the client's share of the input; returns its
    /// share of the output. Every HE protocol implements it. An OT-based protocol cannot run
    /// without the session's COTs and keeps this default, [`LinearError::NeedsSession`]; it is
    /// run by [`client_in`](LinearProtocol::client_in).
    fn client(
        &self,
        _layer: &LayerSpec,
        _ring: Ring,
        _keys: &ClientKeys,
        _x: &[u64],
        _ch: &mut dyn Channel,
        _rng: &mut dyn CryptoRngCore,
    ) -> Result<Vec<u64>, LinearError> {
        Err(LinearError::NeedsSession {
            protocol: self.name(),
        })
    }

    /// The server's half without a session: `x` is the server's share of the input; returns its
    /// share of the output (as [`client`](LinearProtocol::client)).
    #[allow(clippy::too_many_arguments)]
    fn server(
        &self,
        _layer: &LayerSpec,
        _ring: Ring,
        _keys: &ServerKeys,
        _weights: &LayerWeights,
        _x: &[u64],
        _ch: &mut dyn Channel,
        _rng: &mut dyn CryptoRngCore,
    ) -> Result<Vec<u64>, LinearError> {
        Err(LinearError::NeedsSession {
            protocol: self.name(),
        })
    }

    /// Extra power of two in the output: the protocol returns shares of 2^e·(W·x + b), to be
    /// removed by the truncation that follows (Winograd's transform denominators,
    /// docs/protocols/copriv.md). 0 for every protocol that returns W·x + b itself.
    fn output_shift(&self, _layer: &LayerSpec) -> u32 {
        0
    }

    /// The client's half as the engine runs it, with the session's correlated OTs at hand (an
    /// OT-based protocol draws [`Cost::cots`] of them, the client receiving). The default, for
    /// the HE protocols, ignores the session.
    #[allow(clippy::too_many_arguments)]
    fn client_in(
        &self,
        layer: &LayerSpec,
        ring: Ring,
        keys: &ClientKeys,
        x: &[u64],
        _session: &mut Session,
        ch: &mut dyn Channel,
        rng: &mut dyn CryptoRngCore,
    ) -> Result<Vec<u64>, LinearError> {
        self.client(layer, ring, keys, x, ch, rng)
    }

    /// The client's halves of independent calls (each a layer and the client's share of its
    /// input), every query sent before any answer is read where the protocol is one query and
    /// one answer (the HE protocols: one round trip for all); the default runs them one after
    /// another. The server runs [`server_in`](LinearProtocol::server_in) for the same calls in
    /// the same order.
    #[allow(clippy::too_many_arguments)]
    fn client_batch(
        &self,
        calls: &[(&LayerSpec, &[u64])],
        ring: Ring,
        keys: &ClientKeys,
        session: &mut Session,
        ch: &mut dyn Channel,
        rng: &mut dyn CryptoRngCore,
    ) -> Result<Vec<Vec<u64>>, LinearError> {
        calls
            .iter()
            .map(|(layer, x)| self.client_in(layer, ring, keys, x, session, ch, rng))
            .collect()
    }

    /// Whether the client's half is one query and one answer without the session, so it can
    /// run split ([`client_send`](LinearProtocol::client_send) now,
    /// [`client_receive`](LinearProtocol::client_receive) later) inside another protocol's
    /// flights; the server runs [`server`](LinearProtocol::server) in between.
    fn splits(&self) -> bool {
        false
    }

    /// The client's query for `x`, queued on `ch`; what [`client_receive`] needs to read its
    /// answer.
    ///
    /// [`client_receive`]: LinearProtocol::client_receive
    fn client_send(
        &self,
        _layer: &LayerSpec,
        _ring: Ring,
        _keys: &ClientKeys,
        _x: &[u64],
        _ch: &mut dyn Channel,
        _rng: &mut dyn CryptoRngCore,
    ) -> Result<PendingAnswer, LinearError> {
        Err(LinearError::NotSplit {
            protocol: self.name(),
        })
    }

    /// Reads the answer to a query of [`client_send`](LinearProtocol::client_send): the
    /// client's output share.
    fn client_receive(
        &self,
        _pending: PendingAnswer,
        _ring: Ring,
        _keys: &ClientKeys,
        _ch: &mut dyn Channel,
    ) -> Result<Vec<u64>, LinearError> {
        Err(LinearError::NotSplit {
            protocol: self.name(),
        })
    }

    /// The server's half as the engine runs it (see [`client_in`](LinearProtocol::client_in)).
    #[allow(clippy::too_many_arguments)]
    fn server_in(
        &self,
        layer: &LayerSpec,
        ring: Ring,
        keys: &ServerKeys,
        weights: &LayerWeights,
        x: &[u64],
        _session: &mut Session,
        ch: &mut dyn Channel,
        rng: &mut dyn CryptoRngCore,
    ) -> Result<Vec<u64>, LinearError> {
        self.server(layer, ring, keys, weights, x, ch, rng)
    }
}
