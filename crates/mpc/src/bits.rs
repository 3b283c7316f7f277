//! Dense bit packing of protocol messages: every field is written with exactly its width, so the
//! bytes on the wire equal the cost formulas of docs/protocols/nonlinear.md rounded up to a byte
//! per message.

use transport::Channel;

use crate::{MpcError, Result};

/// 2^w − 1 for 0 ≤ w ≤ 64.
#[inline]
pub(crate) fn mask(w: u32) -> u64 {
    if w >= 64 {
        u64::MAX
    } else {
        (1u64 << w) - 1
    }
}

/// Appends fields of 0..=64 bits, least significant bit first.
#[derive(Default)]
pub(crate) struct BitWriter {
    buf: Vec<u8>,
    acc: u128,
    n: u32,
    total: u64,
}

impl BitWriter {
    /// Writes the low `w` bits of `v`.
    #[inline]
    pub fn put(&mut self, v: u64, w: u32) {
        if w == 0 {
            return;
        }
        self.acc |= ((v & mask(w)) as u128) << self.n;
        self.n += w;
        self.total += w as u64;
        while self.n >= 64 {
            self.buf.extend_from_slice(&(self.acc as u64).to_le_bytes());
            self.acc >>= 64;
            self.n -= 64;
        }
    }

    /// Appends every field `other` holds, in order, as if they had been written here.
    pub fn append(&mut self, other: BitWriter) {
        if self.n == 0 {
            // Byte-aligned here: `other`'s whole words move as they are.
            self.buf.extend_from_slice(&other.buf);
            self.total += other.total - other.n as u64;
        } else {
            for word in other.buf.chunks_exact(8) {
                self.put(u64::from_le_bytes(word.try_into().expect("8 bytes")), 64);
            }
        }
        // `other.n < 64` after every `put`.
        self.put(other.acc as u64, other.n);
    }

    /// Number of bits written.
    pub fn bits(&self) -> u64 {
        self.total
    }

    pub fn finish(mut self) -> Vec<u8> {
        let nbytes = self.n.div_ceil(8) as usize;
        self.buf
            .extend_from_slice(&(self.acc as u64).to_le_bytes()[..nbytes]);
        self.buf
    }
}

/// Reads fields written by [`BitWriter`] from a message whose length was validated against the
/// number of bits the step expects.
pub(crate) struct BitReader<'a> {
    bytes: &'a [u8],
    pos: usize,
    acc: u128,
    n: u32,
    /// Bits read so far.
    read: u64,
}

impl<'a> BitReader<'a> {
    /// Validates that `bytes` holds exactly `bits` bits (length and zero padding).
    pub fn new(bytes: &'a [u8], bits: u64, what: &'static str) -> Result<BitReader<'a>> {
        let expected = bits.div_ceil(8) as usize;
        if bytes.len() != expected {
            return Err(MpcError::BadMessage {
                what,
                expected,
                got: bytes.len(),
            });
        }
        let pad = (bits % 8) as u32;
        if pad != 0 && (bytes[expected - 1] >> pad) != 0 {
            return Err(MpcError::NonZeroPadding { what });
        }
        Ok(BitReader {
            bytes,
            pos: 0,
            acc: 0,
            n: 0,
            read: 0,
        })
    }

    /// The next `w`-bit field. Reading past the validated length yields zeros (callers read
    /// exactly what they validated).
    #[inline]
    pub fn get(&mut self, w: u32) -> u64 {
        if w == 0 {
            return 0;
        }
        while self.n < w {
            let take = (self.bytes.len() - self.pos).min(8);
            let mut word = [0u8; 8];
            word[..take].copy_from_slice(&self.bytes[self.pos..self.pos + take]);
            self.pos += take;
            self.acc |= (u64::from_le_bytes(word) as u128) << self.n;
            self.n += 64;
        }
        let v = (self.acc as u64) & mask(w);
        self.acc >>= w;
        self.n -= w;
        self.read += w as u64;
        v
    }
}

impl BitReader<'_> {
    /// The `w`-bit field (w ≤ 64) at bit `at` of the message, without moving (zeros past the
    /// end, as [`BitReader::get`]).
    #[inline]
    pub fn field_at(&self, at: u64, w: u32) -> u64 {
        if w == 0 {
            return 0;
        }
        let (byte, shift) = ((at / 8) as usize, (at % 8) as u32);
        let mut word = [0u8; 16];
        let end = (byte + 16).min(self.bytes.len());
        if byte < end {
            word[..end - byte].copy_from_slice(&self.bytes[byte..end]);
        }
        ((u128::from_le_bytes(word) >> shift) as u64) & mask(w)
    }

    /// Moves past the next `bits` bits (as that many bits of [`BitReader::get`] would).
    pub fn skip(&mut self, bits: u64) {
        let to = self.read + bits;
        let byte = ((to / 8) as usize).min(self.bytes.len());
        self.pos = byte;
        self.acc = 0;
        self.n = 0;
        self.read = byte as u64 * 8;
        let rest = (to - self.read) as u32;
        if rest > 0 {
            self.get(rest);
        }
    }

    /// Bit offset of the next field (for [`BitReader::field_at`]).
    pub fn at(&self) -> u64 {
        self.read
    }
}

/// Receives one message that must hold exactly `bits` bits.
pub(crate) fn recv_bits<C: Channel + ?Sized>(
    ch: &mut C,
    bits: u64,
    what: &'static str,
) -> Result<Vec<u8>> {
    let msg = ch.recv()?;
    let expected = bits.div_ceil(8) as usize;
    if msg.len() != expected {
        return Err(MpcError::BadMessage {
            what,
            expected,
            got: msg.len(),
        });
    }
    Ok(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_equals_writing_in_order() {
        let widths = [1u32, 2, 3, 37, 64, 5, 63, 1, 12, 64, 7];
        for lead in [0u32, 1, 8, 13, 64] {
            for split in 0..widths.len() {
                let mut whole = BitWriter::default();
                let (mut a, mut b) = (BitWriter::default(), BitWriter::default());
                whole.put(0x5a5a_5a5a_5a5a_5a5a, lead);
                a.put(0x5a5a_5a5a_5a5a_5a5a, lead);
                for (k, &w) in widths.iter().enumerate() {
                    let v = 0x9e37_79b9_7f4a_7c15u64.wrapping_mul(k as u64 + 1);
                    whole.put(v, w);
                    if k < split {
                        a.put(v, w)
                    } else {
                        b.put(v, w)
                    }
                }
                a.append(b);
                assert_eq!(a.bits(), whole.bits());
                assert_eq!(a.finish(), whole.finish(), "lead {lead} split {split}");
            }
        }
    }

    /// Fields of these widths (values from a fixed pattern rotated by `rot`·i), written in
    /// order: (values, message, bits).
    fn written(widths: &[u32], rot: u32) -> (Vec<u64>, Vec<u8>, u64) {
        let vals: Vec<u64> = widths
            .iter()
            .enumerate()
            .map(|(i, &w)| (0x9e37_79b9_7f4a_7c15u64.rotate_left(rot * i as u32)) & mask(w))
            .collect();
        let mut w = BitWriter::default();
        for (&v, &b) in vals.iter().zip(widths) {
            w.put(v, b);
        }
        let total = w.bits();
        (vals, w.finish(), total)
    }

    #[test]
    fn round_trip_mixed_widths() {
        let widths = [1u32, 2, 3, 37, 64, 5, 63, 1, 12];
        let (vals, bytes, total) = written(&widths, 1);
        assert_eq!(bytes.len() as u64, total.div_ceil(8));
        let mut r = BitReader::new(&bytes, total, "t").unwrap();
        for (&v, &b) in vals.iter().zip(&widths) {
            assert_eq!(r.get(b), v);
        }
        let mut bad = bytes.clone();
        *bad.last_mut().unwrap() |= 0x80;
        assert!(matches!(
            BitReader::new(&bad, total, "t"),
            Err(MpcError::NonZeroPadding { .. })
        ));
        assert!(matches!(
            BitReader::new(&bytes[1..], total, "t"),
            Err(MpcError::BadMessage { .. })
        ));
    }

    /// Reading a field where it lies and skipping gives what reading in order gives, at every
    /// mix of widths and offsets (a field may straddle the reader's buffered word).
    #[test]
    fn field_at_and_skip_equal_reading_in_order() {
        let widths = [1u32, 2, 3, 37, 64, 5, 63, 1, 12, 64, 7, 33];
        let (vals, bytes, total) = written(&widths, 7);
        let offsets: Vec<u64> = widths
            .iter()
            .scan(0u64, |a, &b| {
                let at = *a;
                *a += b as u64;
                Some(at)
            })
            .collect();
        for first in 0..widths.len() {
            // Read `first` fields in order, then the rest where they lie, then skip them.
            let mut r = BitReader::new(&bytes, total, "t").unwrap();
            for (&v, &b) in vals.iter().zip(&widths).take(first) {
                assert_eq!(r.get(b), v);
            }
            assert_eq!(r.at(), offsets[first]);
            for k in first..widths.len() {
                assert_eq!(r.field_at(offsets[k], widths[k]), vals[k], "field {k}");
            }
            if first + 2 <= widths.len() {
                r.skip(widths[first] as u64);
                assert_eq!(
                    r.get(widths[first + 1]),
                    vals[first + 1],
                    "after skip {first}"
                );
            }
        }
    }
}
