//! Raw packet access. Every read and write goes through these helpers, each of
//! which is handed a pointer the caller has already bounds-checked against
//! `data_end` (the verifier insists, and it cannot see through abstractions
//! that hide the comparison).

/// Ethernet (14) + IPv4 without options (20) + UDP (8): where DNS starts.
pub const ETH_LEN: usize = 14;
pub const IPV4_LEN: usize = 20;
pub const UDP_LEN: usize = 8;
pub const DNS_OFF: usize = ETH_LEN + IPV4_LEN + UDP_LEN;
pub const DNS_HEADER_LEN: usize = 12;
/// First byte of the question name.
pub const QNAME_OFF: usize = DNS_OFF + DNS_HEADER_LEN;

// Field offsets from the start of the frame.
pub const ETH_DST: usize = 0;
pub const ETH_SRC: usize = 6;
pub const ETH_TYPE: usize = 12;
pub const IP_VER_IHL: usize = ETH_LEN;
pub const IP_TOT_LEN: usize = ETH_LEN + 2;
pub const IP_FRAG: usize = ETH_LEN + 6;
pub const IP_TTL: usize = ETH_LEN + 8;
pub const IP_PROTO: usize = ETH_LEN + 9;
pub const IP_CSUM: usize = ETH_LEN + 10;
pub const IP_SRC: usize = ETH_LEN + 12;
pub const IP_DST: usize = ETH_LEN + 16;
pub const UDP_SPORT: usize = ETH_LEN + IPV4_LEN;
pub const UDP_DPORT: usize = UDP_SPORT + 2;
pub const UDP_LEN_OFF: usize = UDP_SPORT + 4;
pub const UDP_CSUM: usize = UDP_SPORT + 6;
pub const DNS_ID: usize = DNS_OFF;
pub const DNS_FLAGS: usize = DNS_OFF + 2;
pub const DNS_QDCOUNT: usize = DNS_OFF + 4;
pub const DNS_ANCOUNT: usize = DNS_OFF + 6;
pub const DNS_NSCOUNT: usize = DNS_OFF + 8;
pub const DNS_ARCOUNT: usize = DNS_OFF + 10;

#[inline(always)]
pub unsafe fn read_u8(p: usize) -> u8 {
    unsafe { *(p as *const u8) }
}

#[inline(always)]
pub unsafe fn read_be16(p: usize) -> u16 {
    unsafe { u16::from_be_bytes([read_u8(p), read_u8(p + 1)]) }
}

#[inline(always)]
pub unsafe fn write_u8(p: usize, v: u8) {
    unsafe { *(p as *mut u8) = v }
}

#[inline(always)]
pub unsafe fn write_be16(p: usize, v: u16) {
    let b = v.to_be_bytes();
    unsafe {
        write_u8(p, b[0]);
        write_u8(p + 1, b[1]);
    }
}

#[inline(always)]
pub unsafe fn write_be32(p: usize, v: u32) {
    let b = v.to_be_bytes();
    unsafe {
        write_u8(p, b[0]);
        write_u8(p + 1, b[1]);
        write_u8(p + 2, b[2]);
        write_u8(p + 3, b[3]);
    }
}

/// Swaps `N` bytes at `a` and `b` (MACs, addresses, ports).
#[inline(always)]
pub unsafe fn swap_bytes<const N: usize>(a: usize, b: usize) {
    let mut i = 0;
    while i < N {
        unsafe {
            let x = read_u8(a + i);
            write_u8(a + i, read_u8(b + i));
            write_u8(b + i, x);
        }
        i += 1;
    }
}
