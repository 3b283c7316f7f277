//! One party's protocol session: both directions of random correlated OT, and message helpers.

use ot::{CotConfig, CotPair, Role};
use rand_core::{CryptoRng, RngCore};
use transport::Channel;

use crate::bits::recv_bits;
use crate::cots::{RecvCots, SendCots, DIR_P1};
use crate::Result;

/// Which of the two parties this side plays. Both run the same methods with their own shares;
/// the protocols are asymmetric (P0 is the OT sender in comparisons), so the two must differ.
/// Convention: the server is P0 and the client P1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Party {
    P0,
    P1,
}

impl Party {
    /// The other party.
    pub fn peer(self) -> Party {
        match self {
            Party::P0 => Party::P1,
            Party::P1 => Party::P0,
        }
    }
}

/// A two-party session: the correlated-OT state of one party.
///
/// Built once by [`Session::setup`] (base OTs in both directions, run over the channel); every
/// protocol is then a method taking `&mut self` and the channel, so no protocol can run before
/// setup. Both parties must call the same methods with equal public arguments (ring, sizes,
/// shift) in the same order over the same channel.
pub struct Session {
    party: Party,
    cot: CotPair,
}

impl Session {
    /// Sets up both COT directions with the default (fastest available) OT backend.
    pub fn setup<C, R>(ch: &mut C, party: Party, rng: &mut R) -> Result<Session>
    where
        C: Channel + ?Sized,
        R: RngCore + CryptoRng,
    {
        Self::setup_with(ch, party, rng, CotConfig::default())
    }

    /// As [`Session::setup`] with an explicit OT configuration (equal on both sides).
    pub fn setup_with<C, R>(
        ch: &mut C,
        party: Party,
        rng: &mut R,
        cfg: CotConfig,
    ) -> Result<Session>
    where
        C: Channel + ?Sized,
        R: RngCore + CryptoRng,
    {
        let role = match party {
            Party::P0 => Role::Leader,
            Party::P1 => Role::Follower,
        };
        let cot = CotPair::setup(ch, rng, role, cfg)?;
        ch.flush()?;
        Ok(Session { party, cot })
    }

    /// This side's party.
    pub fn party(&self) -> Party {
        self.party
    }

    /// `n_send` fresh COTs with this party as sender and `n_recv` with it as receiver. The peer
    /// must ask for the mirror image (its `n_recv` = our `n_send`).
    pub(crate) fn cots<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        n_send: usize,
        n_recv: usize,
    ) -> Result<(SendCots, RecvCots)> {
        let (my_dir, peer_dir) = match self.party {
            Party::P0 => (0, DIR_P1),
            Party::P1 => (DIR_P1, 0),
        };
        let s_base = self.cot.sender.consumed() as u128 | my_dir;
        let r_base = self.cot.receiver.consumed() as u128 | peer_dir;
        let (q, t) = match self.party {
            Party::P0 => {
                let q = self.cot.sender.extend(ch, n_send)?;
                let t = self.cot.receiver.extend(ch, n_recv)?;
                (q, t)
            }
            Party::P1 => {
                let t = self.cot.receiver.extend(ch, n_recv)?;
                let q = self.cot.sender.extend(ch, n_send)?;
                (q, t)
            }
        };
        ch.flush()?;
        Ok((
            SendCots::new(self.cot.sender.delta(), q, s_base),
            RecvCots::new(t, r_base),
        ))
    }

    /// Sends `mine` and receives the peer's message of exactly `peer_bits` bits. P0 sends first
    /// and P1 answers, so large messages never block both sides in `send` at once.
    pub(crate) fn exchange<C: Channel + ?Sized>(
        &self,
        ch: &mut C,
        mine: Vec<u8>,
        peer_bits: u64,
        what: &'static str,
    ) -> Result<Vec<u8>> {
        match self.party {
            Party::P0 => {
                ch.send(&mine)?;
                ch.flush()?;
                recv_bits(ch, peer_bits, what)
            }
            Party::P1 => {
                let got = recv_bits(ch, peer_bits, what)?;
                ch.send(&mine)?;
                ch.flush()?;
                Ok(got)
            }
        }
    }

    /// Sends one message and flushes.
    pub(crate) fn send<C: Channel + ?Sized>(&self, ch: &mut C, msg: Vec<u8>) -> Result<()> {
        ch.send(&msg)?;
        ch.flush()?;
        Ok(())
    }
}
