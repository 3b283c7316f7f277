//! Bit-packing of short values for the wire, with validation of what comes back.

use crate::{OtError, Result};

/// Mask of the low `bits` bits (`bits` in 1..=64).
#[inline]
pub(crate) fn mask(bits: u32) -> u64 {
    if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    }
}

/// Bytes taken by `count` values of `bits` bits each.
#[inline]
pub(crate) fn packed_len(count: usize, bits: u32) -> usize {
    (count * bits as usize).div_ceil(8)
}

/// Appends `values` (each below 2^bits) to `out` as a little-endian bit string.
pub(crate) fn pack_into(values: impl IntoIterator<Item = u64>, bits: u32, out: &mut Vec<u8>) {
    let mut acc: u128 = 0;
    let mut n: u32 = 0;
    for v in values {
        acc |= ((v & mask(bits)) as u128) << n;
        n += bits;
        while n >= 8 {
            out.push(acc as u8);
            acc >>= 8;
            n -= 8;
        }
    }
    if n > 0 {
        out.push(acc as u8);
    }
}

/// Unpacks exactly `count` values of `bits` bits from `bytes`, which must have exactly the packed
/// length and zero padding bits.
pub(crate) fn unpack(
    bytes: &[u8],
    count: usize,
    bits: u32,
    what: &'static str,
) -> Result<Vec<u64>> {
    let expected = packed_len(count, bits);
    if bytes.len() != expected {
        return Err(OtError::BadMessage {
            what,
            expected,
            got: bytes.len(),
        });
    }
    let m = mask(bits);
    let mut out = Vec::with_capacity(count);
    let mut acc: u128 = 0;
    let mut n: u32 = 0;
    let mut it = bytes.iter();
    for _ in 0..count {
        while n < bits {
            acc |= (*it.next().expect("length checked") as u128) << n;
            n += 8;
        }
        out.push(acc as u64 & m);
        acc >>= bits;
        n -= bits;
    }
    if acc != 0 {
        return Err(OtError::NonZeroPadding { what });
    }
    Ok(out)
}

/// Packs booleans one bit each.
pub(crate) fn pack_bools(bs: &[bool]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bs.len().div_ceil(8));
    pack_into(bs.iter().map(|&b| b as u64), 1, &mut out);
    out
}

/// Unpacks exactly `count` booleans.
pub(crate) fn unpack_bools(bytes: &[u8], count: usize, what: &'static str) -> Result<Vec<bool>> {
    Ok(unpack(bytes, count, 1, what)?
        .into_iter()
        .map(|b| b == 1)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_roundtrip_all_widths() {
        for bits in 1..=64u32 {
            let vals: Vec<u64> = (0..37u64)
                .map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15) & mask(bits))
                .collect();
            let mut buf = Vec::new();
            pack_into(vals.iter().copied(), bits, &mut buf);
            assert_eq!(buf.len(), packed_len(vals.len(), bits));
            assert_eq!(unpack(&buf, vals.len(), bits, "t").unwrap(), vals);
        }
    }

    #[test]
    fn unpack_rejects_bad_length_and_padding() {
        assert!(matches!(
            unpack(&[0u8; 4], 3, 7, "t"),
            Err(OtError::BadMessage { .. })
        ));
        // 3 values of 7 bits = 21 bits: the top 3 bits of the third byte are padding.
        assert!(matches!(
            unpack(&[0, 0, 0x80], 3, 7, "t"),
            Err(OtError::NonZeroPadding { .. })
        ));
        assert!(unpack(&[0, 0, 0x10], 3, 7, "t").is_ok());
    }
}
