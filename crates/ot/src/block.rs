//! The 128-bit value every OT in this crate works on.

use std::fmt;
use std::ops::{BitAnd, BitAndAssign, BitXor, BitXorAssign};

/// A 128-bit value: a GF(2)^128 vector, an AES block, a correlated-OT string.
///
/// XOR is the group operation of every correlation in this crate (`t = q ⊕ b·Δ`). The least
/// significant bit is special for correlated OT: see [`crate::CotSender`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(transparent)]
pub struct Block(pub u128);

impl Block {
    /// The all-zero block.
    pub const ZERO: Block = Block(0);
    /// The all-one block.
    pub const ONES: Block = Block(u128::MAX);

    /// Little-endian bytes.
    #[inline]
    pub fn to_bytes(self) -> [u8; 16] {
        self.0.to_le_bytes()
    }

    /// From little-endian bytes.
    #[inline]
    pub fn from_bytes(b: [u8; 16]) -> Block {
        Block(u128::from_le_bytes(b))
    }

    /// The least significant bit (the choice bit of a receiver's correlated OT).
    #[inline]
    pub fn lsb(self) -> bool {
        self.0 & 1 == 1
    }

    /// The same block with its least significant bit set to `b`.
    #[inline]
    pub fn with_lsb(self, b: bool) -> Block {
        Block((self.0 & !1) | b as u128)
    }

    /// `self` if `b`, else zero, without a branch on `b`.
    #[inline]
    pub fn and_bit(self, b: bool) -> Block {
        Block(self.0 & (b as u128).wrapping_neg())
    }

    /// The low 64 bits.
    #[inline]
    pub fn low_u64(self) -> u64 {
        self.0 as u64
    }

    /// The high 64 bits.
    #[inline]
    pub fn high_u64(self) -> u64 {
        (self.0 >> 64) as u64
    }
}

impl fmt::Debug for Block {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Block({:032x})", self.0)
    }
}

impl BitXor for Block {
    type Output = Block;
    #[inline]
    fn bitxor(self, rhs: Block) -> Block {
        Block(self.0 ^ rhs.0)
    }
}

impl BitXorAssign for Block {
    #[inline]
    fn bitxor_assign(&mut self, rhs: Block) {
        self.0 ^= rhs.0;
    }
}

impl BitAnd for Block {
    type Output = Block;
    #[inline]
    fn bitand(self, rhs: Block) -> Block {
        Block(self.0 & rhs.0)
    }
}

impl BitAndAssign for Block {
    #[inline]
    fn bitand_assign(&mut self, rhs: Block) {
        self.0 &= rhs.0;
    }
}

impl From<u128> for Block {
    fn from(x: u128) -> Block {
        Block(x)
    }
}

impl From<Block> for u128 {
    fn from(b: Block) -> u128 {
        b.0
    }
}

impl zeroize::Zeroize for Block {
    fn zeroize(&mut self) {
        self.0.zeroize();
    }
}

/// The receiver's choice bits of correlated OTs returned by [`crate::CotReceiver::extend`]
/// (`b_i = lsb(t_i)`).
pub fn choice_bits(t: &[Block]) -> Vec<bool> {
    t.iter().map(|b| b.lsb()).collect()
}
