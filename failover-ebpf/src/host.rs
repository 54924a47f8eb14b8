//! Is this query addressed to this host's DNS service? The stack would drop a
//! frame for another MAC or address, or from one of our own addresses, so the
//! fast path must not answer it either (an answer would come from an address
//! that is not ours, or go to one that is).

use failover_common::{
    CHECK_DST_MAC, CHECK_SOURCE, Counter, FAMILY_V4, FAMILY_V6, HostConfig, ServiceKey,
};

use crate::{
    maps::{HOST, SERVICES},
    packet::*,
};

/// Checks the destination MAC (off loopback), that the destination address
/// and port 53 are a service address in the map, and (off loopback) that the
/// source is not one of this host's own or broadcast addresses. The caller
/// has bounds-checked the frame through the UDP header.
#[inline(always)]
pub fn addressed_to_us<const L3: usize, const V6: bool>(data: usize) -> Result<(), Counter> {
    type F<const L3: usize, const V6: bool> = Frame<L3, V6>;
    // Never written: nothing is ours, every query passes.
    let host: &HostConfig = match HOST.get(0) {
        Some(h) => h,
        None => return Err(Counter::PassNotForUs),
    };
    if host.checks & CHECK_DST_MAC != 0 {
        let mut diff: u8 = 0;
        let mut i = 0;
        while i < 6 {
            diff |= unsafe { read_u8(data + ETH_DST + i) } ^ host.mac[i];
            i += 1;
        }
        if diff != 0 {
            return Err(Counter::PassNotForUs);
        }
    }
    let mut key = ServiceKey {
        addr: [0; 16],
        port: 53,
        family: if V6 { FAMILY_V6 } else { FAMILY_V4 },
        _pad: 0,
    };
    let mut i = 0;
    while i < F::<L3, V6>::IP_ADDR_LEN {
        key.addr[i] = unsafe { read_u8(data + F::<L3, V6>::IP_DST + i) };
        i += 1;
    }
    if unsafe { SERVICES.get(key) }.is_none() {
        return Err(Counter::PassNotForUs);
    }
    if host.checks & CHECK_SOURCE != 0 {
        let mut i = 0;
        while i < F::<L3, V6>::IP_ADDR_LEN {
            key.addr[i] = unsafe { read_u8(data + F::<L3, V6>::IP_SRC + i) };
            i += 1;
        }
        key.port = 0;
        // A martian source, as the stack sees it: its own or a broadcast address.
        if unsafe { SERVICES.get(key) }.is_some() {
            return Err(Counter::PassNotDnsTransport);
        }
    }
    Ok(())
}
