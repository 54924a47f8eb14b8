//! Internet checksum (RFC 1071) arithmetic, done incrementally: the UDP checksum
//! of an answer is assembled from the parts we write instead of re-reading up to
//! 600 bytes of packet. Both checksums are always computed from scratch, never
//! adjusted from the query's: packets sent from a local socket over veth carry
//! only a partial checksum, so the query's value cannot be trusted.

/// Folds a 32-bit one's complement accumulator to 16 bits.
#[inline(always)]
pub fn fold(mut sum: u32) -> u16 {
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    sum as u16
}

/// The contribution of a region whose 16-bit word sum (taken as if it started
/// at an even offset) is `sum`, when it really starts at an odd offset: one's
/// complement sums commute with byte swapping (RFC 1071 2.B).
#[inline(always)]
pub fn at_parity(sum: u32, odd: bool) -> u32 {
    let folded = fold(sum);
    if odd {
        folded.swap_bytes() as u32
    } else {
        folded as u32
    }
}

/// Contribution of one byte at `offset` from an even boundary.
#[inline(always)]
pub fn byte_at(b: u8, offset: usize) -> u32 {
    if offset & 1 == 0 {
        (b as u32) << 8
    } else {
        b as u32
    }
}

/// Final checksum value from an accumulator.
#[inline(always)]
pub fn finish(sum: u32) -> u16 {
    !fold(sum)
}
