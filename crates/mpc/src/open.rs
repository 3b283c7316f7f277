//! Revealing shared values to one party (e.g. the predicted label to the client).

use transport::Channel;

use crate::bits::{BitReader, BitWriter};
use crate::session::{Party, Session};
use crate::{Result, Ring};

impl Session {
    /// Reveals shared values to `to`: the other party sends its shares (ℓ bits each); `to` gets
    /// `Some(plaintext)`, the other party `None`. One flight.
    pub fn open_to<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        ring: Ring,
        x: &[u64],
        to: Party,
    ) -> Result<Option<Vec<u64>>> {
        ring.check("open input", x)?;
        let w = ring.bits();
        if self.party() == to {
            let bits = x.len() as u64 * w as u64;
            let got = crate::bits::recv_bits(ch, bits, "open")?;
            let mut rd = BitReader::new(&got, bits, "open")?;
            Ok(Some(x.iter().map(|&a| ring.add(a, rd.get(w))).collect()))
        } else {
            let mut wr = BitWriter::default();
            for &a in x {
                wr.put(a, w);
            }
            self.send(ch, wr.finish())?;
            Ok(None)
        }
    }
}
