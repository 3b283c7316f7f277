//! Bit-packing of residues: `count` values of `bits` bits each, little-endian
//! bit order, padded with zero bits to a whole byte.

use crate::MathError;

/// Bytes needed for `count` values of `bits` bits.
pub fn packed_len(count: usize, bits: u32) -> usize {
    (count * bits as usize).div_ceil(8)
}

/// Appends the packed values to `out`; every value must be `< 2^bits`.
pub fn pack_bits(values: &[u64], bits: u32, out: &mut Vec<u8>) {
    assert!((1..=64).contains(&bits));
    let start = out.len();
    out.resize(start + packed_len(values.len(), bits), 0);
    let buf = &mut out[start..];
    let mut acc: u128 = 0;
    let mut nacc = 0u32;
    let mut pos = 0;
    for &v in values {
        debug_assert!(bits == 64 || v >> bits == 0);
        acc |= (v as u128) << nacc;
        nacc += bits;
        while nacc >= 8 {
            buf[pos] = acc as u8;
            pos += 1;
            acc >>= 8;
            nacc -= 8;
        }
    }
    if nacc > 0 {
        buf[pos] = acc as u8;
    }
}

/// Reads `count` values of `bits` bits; `bytes` must have exactly
/// [`packed_len`] bytes and zero padding bits.
pub fn unpack_bits(bytes: &[u8], bits: u32, count: usize) -> Result<Vec<u64>, MathError> {
    if !(1..=64).contains(&bits) {
        return Err(MathError::InvalidBitWidth { bits });
    }
    let need = packed_len(count, bits);
    if bytes.len() != need {
        return Err(MathError::InvalidLength {
            expected: need,
            found: bytes.len(),
        });
    }
    let mask = if bits == 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    };
    let mut out = Vec::with_capacity(count);
    let mut acc: u128 = 0;
    let mut nacc = 0u32;
    let mut it = bytes.iter();
    for _ in 0..count {
        while nacc < bits {
            acc |= (*it.next().expect("length checked") as u128) << nacc;
            nacc += 8;
        }
        out.push(acc as u64 & mask);
        acc >>= bits;
        nacc -= bits;
    }
    if acc != 0 {
        return Err(MathError::NonZeroPadding);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn roundtrip(bits in 1u32..=64, raw in proptest::collection::vec(any::<u64>(), 0..100)) {
            let mask = if bits == 64 { u64::MAX } else { (1u64 << bits) - 1 };
            let vals: Vec<u64> = raw.iter().map(|v| v & mask).collect();
            let mut buf = Vec::new();
            pack_bits(&vals, bits, &mut buf);
            prop_assert_eq!(buf.len(), packed_len(vals.len(), bits));
            prop_assert_eq!(unpack_bits(&buf, bits, vals.len()).unwrap(), vals);
        }
    }

    #[test]
    fn rejects_bad_input() {
        let mut buf = Vec::new();
        pack_bits(&[1, 2, 3], 5, &mut buf);
        assert!(unpack_bits(&buf[..1], 5, 3).is_err());
        let mut bad = buf.clone();
        *bad.last_mut().unwrap() |= 0x80;
        assert_eq!(unpack_bits(&bad, 5, 3), Err(MathError::NonZeroPadding));
        assert!(unpack_bits(&buf, 0, 3).is_err());
    }
}
