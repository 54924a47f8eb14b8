//! Internet checksum (RFC 1071) arithmetic, done incrementally: the UDP checksum
//! of an answer is assembled from the parts we write instead of re-reading up to
//! 600 bytes of packet. Both checksums are always computed from scratch, never
//! adjusted from the query's: packets sent from a local socket over veth carry
//! only a partial checksum, so the query's value cannot be trusted.
//!
//! The query's UDP checksum is verified ([`udp_verified`]) before answering.

use failover_common::Counter;

use crate::packet::{Frame, IPPROTO_UDP, read_be16, read_u8};

/// Longest UDP datagram whose full checksum the program sums; longer ones
/// (no plain query is that long) are left to the stack.
pub const MAX_VERIFIED_UDP_LEN: usize = 1024;

/// Is the query's UDP checksum one the stack would accept? The caller has
/// validated the frame (UDP length = the rest of the IP datagram, within the
/// frame). Cases, in order:
/// - 0: "no checksum", allowed over IPv4 (RFC 768), invalid over IPv6 (RFC
///   8200 8.1).
/// - The folded sum of the pseudo-header alone: a partial checksum, as a
///   local socket's datagram carries over veth or lo (the sender's stack left
///   the rest to an offload that never ran; the stack accepts it as
///   CHECKSUM_PARTIAL, which XDP cannot see). Accepted unverified.
/// - Otherwise the full sum over pseudo-header, UDP header and message must
///   verify (datagrams up to [`MAX_VERIFIED_UDP_LEN`]).
#[inline(always)]
pub fn udp_verified<const L3: usize, const V6: bool>(
    data: usize,
    data_end: usize,
) -> Result<(), Counter> {
    type F<const L3: usize, const V6: bool> = Frame<L3, V6>;
    if data + F::<L3, V6>::DNS > data_end {
        return Err(Counter::PassMalformed);
    }
    let check = unsafe { read_be16(data + F::<L3, V6>::UDP_CSUM) };
    if check == 0 {
        return if V6 {
            Err(Counter::PassBadChecksum)
        } else {
            Ok(())
        };
    }
    let udp_len = unsafe { read_be16(data + F::<L3, V6>::UDP_LEN) } as usize;
    // Pseudo-header: source and destination (contiguous in both families),
    // protocol, UDP length.
    let mut pseudo: u32 = IPPROTO_UDP as u32 + udp_len as u32;
    let mut i = 0;
    while i < 2 * F::<L3, V6>::IP_ADDR_LEN {
        pseudo += unsafe { read_be16(data + F::<L3, V6>::IP_SRC + i) } as u32;
        i += 2;
    }
    if fold(pseudo) == check {
        return Ok(());
    }
    if udp_len > MAX_VERIFIED_UDP_LEN {
        return Err(Counter::PassBadChecksum);
    }
    let mut sum = pseudo;
    let mut off = 0;
    while off < MAX_VERIFIED_UDP_LEN {
        if off + 2 > udp_len {
            break;
        }
        let at = F::<L3, V6>::L4 + off;
        if data + at + 2 > data_end {
            return Err(Counter::PassMalformed);
        }
        sum += unsafe { read_be16(data + at) } as u32;
        off += 2;
    }
    if udp_len & 1 == 1 {
        let at = F::<L3, V6>::L4 + ((udp_len - 1) & (MAX_VERIFIED_UDP_LEN - 1));
        if data + at + 1 > data_end {
            return Err(Counter::PassMalformed);
        }
        sum += (unsafe { read_u8(data + at) } as u32) << 8;
    }
    if fold(sum) != 0xffff {
        return Err(Counter::PassBadChecksum);
    }
    Ok(())
}

/// Folds a 32-bit one's complement accumulator to 16 bits.
#[inline(always)]
pub fn fold(mut sum: u32) -> u16 {
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    sum as u16
}

/// Folds a 64-bit one's complement accumulator to 16 bits (sums of wide
/// words: 2^32 and 2^16 are both 1 modulo 0xffff).
#[inline(always)]
pub fn fold_wide(sum: u64) -> u16 {
    let sum = (sum & 0xffff_ffff) + (sum >> 32);
    fold(((sum & 0xffff) + (sum >> 16)) as u32)
}

/// The big-endian word sum of bytes that were summed as words in memory
/// order (little-endian loads): the same sum, byte-swapped (RFC 1071 2.B).
#[inline(always)]
pub fn from_memory_order(sum: u32) -> u32 {
    at_parity(sum, true)
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

/// Final checksum value from an accumulator.
#[inline(always)]
pub fn finish(sum: u32) -> u16 {
    !fold(sum)
}
