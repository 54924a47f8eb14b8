//! Raw packet access. Every read and write goes through these helpers, each of
//! which is handed a pointer the caller has already bounds-checked against
//! `data_end` (the verifier insists, and it cannot see through abstractions
//! that hide the comparison).

pub const ETH_LEN: usize = 14;
pub const VLAN_TAG_LEN: usize = 4;
pub const ETH_DST: usize = 0;
pub const ETH_SRC: usize = 6;
pub const ETH_TYPE: usize = 12;
pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
pub const ETHERTYPE_VLAN: u16 = 0x8100;
pub const UDP_LEN: usize = 8;
pub const DNS_HEADER_LEN: usize = 12;
pub const IPPROTO_UDP: u8 = 17;

/// Offsets of one frame shape: the network header at `L3` (14, or 18 behind
/// an 802.1Q tag), IPv6 when `V6`. Every function on the packet path is
/// instantiated per shape, so each offset is a constant: the verifier checks
/// four straight-line programs instead of one full of variable offsets.
pub struct Frame<const L3: usize, const V6: bool>;

impl<const L3: usize, const V6: bool> Frame<L3, V6> {
    pub const IP_HEADER_LEN: usize = if V6 { 40 } else { 20 };
    /// IPv4 total length / IPv6 payload length.
    pub const IP_LEN: usize = L3 + if V6 { 4 } else { 2 };
    pub const IP_SRC: usize = L3 + if V6 { 8 } else { 12 };
    pub const IP_DST: usize = L3 + if V6 { 24 } else { 16 };
    pub const IP_ADDR_LEN: usize = if V6 { 16 } else { 4 };
    pub const L4: usize = L3 + Self::IP_HEADER_LEN;
    pub const UDP_SPORT: usize = Self::L4;
    pub const UDP_DPORT: usize = Self::L4 + 2;
    pub const UDP_LEN: usize = Self::L4 + 4;
    pub const UDP_CSUM: usize = Self::L4 + 6;
    /// Start of the DNS message.
    pub const DNS: usize = Self::L4 + UDP_LEN;
    pub const DNS_ID: usize = Self::DNS;
    pub const DNS_FLAGS: usize = Self::DNS + 2;
    pub const DNS_QDCOUNT: usize = Self::DNS + 4;
    pub const DNS_ANCOUNT: usize = Self::DNS + 6;
    pub const DNS_NSCOUNT: usize = Self::DNS + 8;
    pub const DNS_ARCOUNT: usize = Self::DNS + 10;
    /// First byte of the question name.
    pub const QNAME: usize = Self::DNS + DNS_HEADER_LEN;
}

// IPv4 header fields, relative to the network header.
pub const IPV4_VER_IHL: usize = 0;
pub const IPV4_FRAG: usize = 6;
pub const IPV4_TTL: usize = 8;
pub const IPV4_PROTO: usize = 9;
pub const IPV4_CSUM: usize = 10;
// IPv6 header fields, relative to the network header.
pub const IPV6_NEXT_HEADER: usize = 6;
pub const IPV6_HOP_LIMIT: usize = 7;

#[inline(always)]
pub unsafe fn read_u8(p: usize) -> u8 {
    unsafe { *(p as *const u8) }
}

// Wider accesses are made as loads and stores of their width although the
// address may be odd. LLVM's BPF target splits an access it does not know
// to be aligned into single bytes (a 16-byte address compare becomes 16
// loads, shifts and ors); the kernel allows unaligned packet and map
// access where unaligned access is efficient (x86-64, arm64), and nothing
// here ever tests an address's low bits.

/// Four bytes as one native-endian word (compared with words of the same
/// bytes, as the agent writes them).
#[inline(always)]
pub unsafe fn read_u32(p: usize) -> u32 {
    unsafe { *(p as *const u32) }
}

/// Two bytes as one native-endian word: what a checksum sums when it
/// sums in memory order (RFC 1071 2.B: the sum is the same, byte-swapped).
#[inline(always)]
pub unsafe fn read_ne16(p: usize) -> u16 {
    unsafe { *(p as *const u16) }
}

#[inline(always)]
pub unsafe fn read_be16(p: usize) -> u16 {
    u16::from_be(unsafe { read_ne16(p) })
}

#[inline(always)]
pub unsafe fn write_u8(p: usize, v: u8) {
    unsafe { *(p as *mut u8) = v }
}

#[inline(always)]
pub unsafe fn write_u32(p: usize, v: u32) {
    unsafe { *(p as *mut u32) = v }
}

#[inline(always)]
pub unsafe fn write_be16(p: usize, v: u16) {
    unsafe { *(p as *mut u16) = v.to_be() }
}

#[inline(always)]
pub unsafe fn write_be32(p: usize, v: u32) {
    unsafe { *(p as *mut u32) = v.to_be() }
}

/// Swaps `n` bytes at `a` and `b` (MACs, addresses, ports; `n` even), four
/// at a time.
#[inline(always)]
pub unsafe fn swap_bytes(a: usize, b: usize, n: usize) {
    let mut i = 0;
    while i + 4 <= n {
        unsafe {
            let x = read_u32(a + i);
            write_u32(a + i, read_u32(b + i));
            write_u32(b + i, x);
        }
        i += 4;
    }
    if i < n {
        unsafe {
            let x = read_ne16(a + i);
            *((a + i) as *mut u16) = read_ne16(b + i);
            *((b + i) as *mut u16) = x;
        }
    }
}
