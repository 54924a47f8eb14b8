//! Is this query addressed to this host's DNS service? The stack would drop a
//! frame for another MAC or address, or from one of our own addresses, so the
//! fast path must not answer it either (an answer would come from an address
//! that is not ours, or go to one that is).

use failover_common::{
    ADDR_REFUSED_SOURCE, ADDR_SERVICE_53, CHECK_BY_MAP, CHECK_DST_MAC, CHECK_SOURCE, Counter,
    FAMILY_V4, FAMILY_V6, HOST_ADDRS_V4, HOST_ADDRS_V6, HostConfig, ServiceKey,
};

use crate::{
    maps::{HOST, SERVICES},
    packet::*,
};

/// Checks the destination MAC (off loopback), that the destination address
/// and port 53 are a service address, and (off loopback) that the source is
/// not one of this host's own or broadcast addresses. The caller has
/// bounds-checked the frame through the UDP header (and the destination port
/// is 53).
///
/// The addresses come from the host map's one value, compared word by word
/// in one pass that serves both checks; a host with more addresses than it
/// lists has them in the service map instead (`CHECK_BY_MAP`).
#[inline(always)]
pub fn addressed_to_us<const L3: usize, const V6: bool>(data: usize) -> Result<(), Counter> {
    // Never written: nothing is ours, every query passes.
    let host: &HostConfig = match HOST.get(0) {
        Some(h) => h,
        None => return Err(Counter::PassNotForUs),
    };
    if host.checks & CHECK_DST_MAC != 0 {
        let dst = unsafe { read_u32(data + ETH_DST) } ^ read_word(&host.mac);
        let dst_low = unsafe { read_u8(data + ETH_DST + 4) } ^ host.mac[4];
        let dst_last = unsafe { read_u8(data + ETH_DST + 5) } ^ host.mac[5];
        if dst != 0 || (dst_low | dst_last) != 0 {
            return Err(Counter::PassNotForUs);
        }
    }
    if host.checks & CHECK_BY_MAP != 0 {
        return by_map::<L3, V6>(data, host.checks);
    }
    let flags = if V6 {
        scan_v6::<L3>(data, host)
    } else {
        scan_v4::<L3>(data, host)
    };
    if flags & ADDR_SERVICE_53 == 0 {
        return Err(Counter::PassNotForUs);
    }
    // A martian source, as the stack sees it: its own or a broadcast address.
    if host.checks & CHECK_SOURCE != 0 && flags & ADDR_REFUSED_SOURCE != 0 {
        return Err(Counter::PassNotDnsTransport);
    }
    Ok(())
}

/// The first 4 bytes of `b` as one native-endian word.
#[inline(always)]
fn read_word(b: &[u8; 6]) -> u32 {
    u32::from_ne_bytes([b[0], b[1], b[2], b[3]])
}

/// One pass over the listed IPv4 addresses: `ADDR_SERVICE_53` if the
/// destination is listed with it, `ADDR_REFUSED_SOURCE` if the source is.
#[inline(always)]
fn scan_v4<const L3: usize>(data: usize, host: &HostConfig) -> u8 {
    type F<const L3: usize> = Frame<L3, false>;
    let src = unsafe { read_u32(data + F::<L3>::IP_SRC) };
    let dst = unsafe { read_u32(data + F::<L3>::IP_DST) };
    let count = host.v4_count as usize;
    let mut found: u8 = 0;
    let mut i = 0;
    while i < HOST_ADDRS_V4 {
        if i >= count {
            break;
        }
        let at = i & (HOST_ADDRS_V4 - 1);
        let addr = host.v4[at];
        let flags = host.v4_flags[at];
        if addr == dst {
            found |= flags & ADDR_SERVICE_53;
        }
        if addr == src {
            found |= flags & ADDR_REFUSED_SOURCE;
        }
        i += 1;
    }
    found
}

/// `scan_v4` for IPv6: four words per address.
#[inline(always)]
fn scan_v6<const L3: usize>(data: usize, host: &HostConfig) -> u8 {
    type F<const L3: usize> = Frame<L3, true>;
    let word = |at: usize| unsafe { read_u32(at) };
    let s = F::<L3>::IP_SRC;
    let d = F::<L3>::IP_DST;
    let src = [
        word(data + s),
        word(data + s + 4),
        word(data + s + 8),
        word(data + s + 12),
    ];
    let dst = [
        word(data + d),
        word(data + d + 4),
        word(data + d + 8),
        word(data + d + 12),
    ];
    let count = host.v6_count as usize;
    let mut found: u8 = 0;
    let mut i = 0;
    while i < HOST_ADDRS_V6 {
        if i >= count {
            break;
        }
        let at = i & (HOST_ADDRS_V6 - 1);
        let addr = &host.v6[at];
        let flags = host.v6_flags[at];
        let to_dst =
            (addr[0] ^ dst[0]) | (addr[1] ^ dst[1]) | (addr[2] ^ dst[2]) | (addr[3] ^ dst[3]);
        if to_dst == 0 {
            found |= flags & ADDR_SERVICE_53;
        }
        let to_src =
            (addr[0] ^ src[0]) | (addr[1] ^ src[1]) | (addr[2] ^ src[2]) | (addr[3] ^ src[3]);
        if to_src == 0 {
            found |= flags & ADDR_REFUSED_SOURCE;
        }
        i += 1;
    }
    found
}

/// The service map path (more addresses than `HostConfig` lists).
#[inline(always)]
fn by_map<const L3: usize, const V6: bool>(data: usize, checks: u16) -> Result<(), Counter> {
    type F<const L3: usize, const V6: bool> = Frame<L3, V6>;
    let mut key = service_key::<L3, V6>(data + F::<L3, V6>::IP_DST, 53);
    if unsafe { SERVICES.get(key) }.is_none() {
        return Err(Counter::PassNotForUs);
    }
    if checks & CHECK_SOURCE != 0 {
        key = service_key::<L3, V6>(data + F::<L3, V6>::IP_SRC, 0);
        // A martian source, as the stack sees it: its own or a broadcast address.
        if unsafe { SERVICES.get(key) }.is_some() {
            return Err(Counter::PassNotDnsTransport);
        }
    }
    Ok(())
}

/// The key of the address at `at` (IPv4 in the first four bytes) and
/// `port`, stored as words: a zeroed key filled in field by field becomes
/// a call to the BPF `memset`, which stores byte by byte.
#[inline(always)]
fn service_key<const L3: usize, const V6: bool>(at: usize, port: u16) -> ServiceKey {
    let family = if V6 { FAMILY_V6 } else { FAMILY_V4 };
    let port = port.to_ne_bytes();
    let mut key = core::mem::MaybeUninit::<ServiceKey>::uninit();
    let words = key.as_mut_ptr() as *mut u32;
    let word = |i: usize| unsafe { read_u32(at + 4 * i) };
    unsafe {
        words.write_volatile(word(0));
        let mut i = 1;
        while i < 4 {
            words.add(i).write_volatile(if V6 { word(i) } else { 0 });
            i += 1;
        }
        // Port, family and padding: the last word.
        words
            .add(4)
            .write_volatile(u32::from_ne_bytes([port[0], port[1], family, 0]));
        key.assume_init()
    }
}
