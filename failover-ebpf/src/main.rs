//! The XDP fast path: answers plain A/AAAA/HTTPS queries for hot names
//! straight from the record map, passes everything else up the stack untouched.
//!
//! Packet path: `failover_xdp` -> `respond` (which frame shape: IPv4 or IPv6,
//! with or without one 802.1Q tag) -> `answer_query::<shape>`:
//! `query::validate` (is this a plain query we fully understand? builds the
//! map key) -> record map lookup -> `response::addresses` or
//! `response::nodata` (rewrite the frame in place) -> XDP_TX.
#![no_std]
#![no_main]

mod checksum;
mod packet;
mod query;
mod response;

use aya_ebpf::{
    bindings::xdp_action,
    macros::{map, xdp},
    maps::{Array, HashMap, PerCpuArray},
    programs::XdpContext,
};
use aya_ebpf::helpers::generated::bpf_get_prandom_u32;
use failover_common::{
    ANSWER_ADDRS, ANSWER_NODATA, ANSWER_SERVFAIL, ANSWER_WEIGHTED, AnswerSet, MAX_ANSWER_ADDRS, COUNTER_COUNT, Counter, MAX_RECORDS, MAX_ZONES,
    QTYPE_A, QTYPE_AAAA, RecordKey, ZoneSoa,
};

use crate::{
    packet::{ETH_LEN, ETH_TYPE, ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETHERTYPE_VLAN, VLAN_TAG_LEN},
    response::Refusal,
};

/// Answers by (lowercased wire name, type), written by the agent.
#[map]
static RECORDS: HashMap<RecordKey, AnswerSet> = HashMap::with_max_entries(MAX_RECORDS, 0);

/// Each zone's SOA for NODATA answers, indexed by `AnswerSet::zone`.
#[map]
static ZONES: Array<ZoneSoa> = Array::with_max_entries(MAX_ZONES, 0);

/// Packet counters, one slot per `Counter`.
#[map]
static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(COUNTER_COUNT, 0);

/// Round-robin position, per CPU: no atomics on the hot path.
#[map]
static ROTATION: PerCpuArray<u32> = PerCpuArray::with_max_entries(1, 0);

/// Per-CPU working memory: the map key is 258 bytes, too big to build on the
/// 512-byte BPF stack alongside everything else.
#[repr(C)]
pub struct Scratch {
    pub key: RecordKey,
    pub _pad: u16,
    /// Written and read back as a verifier barrier (see query.rs).
    pub name_len: u32,
    /// The validated query's fields, written and read back likewise (see
    /// `query::launder`).
    pub fields: [u32; 8],
}

#[map]
static SCRATCH: PerCpuArray<Scratch> = PerCpuArray::with_max_entries(1, 0);

/// Room for a frame's headers and question (VLAN + IPv6 + UDP + DNS header +
/// 255-byte name + type and class = 325 bytes), saved while the frame grows at
/// its head (see response.rs).
pub const FRAME_COPY_LEN: usize = 328;

#[map]
static FRAME_COPY: PerCpuArray<[u8; FRAME_COPY_LEN]> = PerCpuArray::with_max_entries(1, 0);

#[inline(always)]
fn count(counter: Counter) {
    if let Some(slot) = COUNTERS.get_ptr_mut(counter as u32) {
        unsafe { *slot += 1 };
    }
}

#[xdp]
pub fn failover_xdp(ctx: XdpContext) -> u32 {
    match respond(&ctx) {
        Ok(()) => {
            count(Counter::Answered);
            xdp_action::XDP_TX
        }
        Err(Refusal::Pass(reason)) => {
            count(reason);
            xdp_action::XDP_PASS
        }
        Err(Refusal::Drop(reason)) => {
            count(reason);
            xdp_action::XDP_DROP
        }
    }
}

/// Picks the frame shape; each shape is its own constant-offset instance.
#[inline(always)]
fn respond(ctx: &XdpContext) -> Result<(), Refusal> {
    let data = ctx.data();
    let data_end = ctx.data_end();
    let not_dns = Refusal::Pass(Counter::PassNotDnsTransport);
    if data + ETH_LEN + VLAN_TAG_LEN > data_end {
        return Err(not_dns);
    }
    let ethertype = unsafe { packet::read_be16(data + ETH_TYPE) };
    match ethertype {
        ETHERTYPE_IPV4 => answer_query::<ETH_LEN, false>(ctx),
        ETHERTYPE_IPV6 => answer_query::<ETH_LEN, true>(ctx),
        ETHERTYPE_VLAN => {
            // One 802.1Q tag; the answer keeps it. Stacked tags are passed.
            let inner = unsafe { packet::read_be16(data + ETH_TYPE + VLAN_TAG_LEN) };
            match inner {
                ETHERTYPE_IPV4 => answer_query::<{ ETH_LEN + VLAN_TAG_LEN }, false>(ctx),
                ETHERTYPE_IPV6 => answer_query::<{ ETH_LEN + VLAN_TAG_LEN }, true>(ctx),
                _ => Err(not_dns),
            }
        }
        _ => Err(not_dns),
    }
}

#[inline(always)]
fn answer_query<const L3: usize, const V6: bool>(ctx: &XdpContext) -> Result<(), Refusal> {
    let scratch = match SCRATCH.get_ptr_mut(0) {
        Some(p) => unsafe { &mut *p },
        None => return Err(Refusal::Pass(Counter::PassMalformed)),
    };
    // lo is ifindex 1 in every network namespace.
    let on_loopback = ctx.ingress_ifindex() == LOOPBACK_IFINDEX;
    let query = query::validate::<L3, V6>(ctx.data(), ctx.data_end(), on_loopback, scratch)
        .map_err(Refusal::Pass)?;
    let query = query::launder(query, scratch);
    // By reference on purpose: by value would copy the 258-byte key onto the
    // 512-byte BPF stack.
    #[allow(clippy::needless_borrows_for_generic_args)]
    let set = match RECORDS.get_ptr(&scratch.key) {
        Some(p) => unsafe { &*p },
        None => return Err(Refusal::Pass(Counter::PassNameNotInMap)),
    };
    let stored = set.count as usize;
    match (set.kind, query.qtype) {
        (ANSWER_ADDRS, QTYPE_A) if stored > 0 => {
            let start = next_rotation() as usize % stored;
            response::addresses::<L3, V6, 4>(ctx, &query, set, start, stored)
        }
        (ANSWER_ADDRS, QTYPE_AAAA) if stored > 0 => {
            let start = next_rotation() as usize % stored;
            response::addresses::<L3, V6, 16>(ctx, &query, set, start, stored)
        }
        (ANSWER_WEIGHTED, QTYPE_A) => {
            let pick = weighted_pick(set, scratch)?;
            response::addresses::<L3, V6, 4>(ctx, &query, set, pick, 1)
        }
        (ANSWER_WEIGHTED, QTYPE_AAAA) => {
            let pick = weighted_pick(set, scratch)?;
            response::addresses::<L3, V6, 16>(ctx, &query, set, pick, 1)
        }
        (ANSWER_SERVFAIL, _) => response::rcode_only::<L3, V6>(ctx, &query, 2),
        (ANSWER_NODATA, _) => match ZONES.get(set.zone) {
            Some(soa) => response::nodata::<L3, V6>(ctx, &query, soa),
            None => Err(Refusal::Pass(Counter::PassNameNotInMap)),
        },
        _ => Err(Refusal::Pass(Counter::PassNameNotInMap)),
    }
}

/// Index of the address this query gets: random, in proportion to the
/// weights, decided per query (so traffic splits by weight even from one
/// resolver).
#[inline(always)]
fn weighted_pick(set: &AnswerSet, scratch: &mut Scratch) -> Result<usize, Refusal> {
    let stored = set.count as usize;
    if stored == 0 || stored > MAX_ANSWER_ADDRS {
        return Err(Refusal::Pass(Counter::PassNameNotInMap));
    }
    let total = set.weights[(stored - 1) & (MAX_ANSWER_ADDRS - 1)];
    if total == 0 {
        return Err(Refusal::Pass(Counter::PassNameNotInMap));
    }
    let r = unsafe { bpf_get_prandom_u32() } % total;
    // The number of running totals <= r is the index picked.
    let mut pick = 0u32;
    let mut k = 0;
    while k < MAX_ANSWER_ADDRS - 1 {
        if k + 1 >= stored {
            break;
        }
        if set.weights[k] <= r {
            pick += 1;
        }
        k += 1;
    }
    // Verifier barrier: one unknown index instead of one path per value.
    scratch.fields[7] = pick;
    Ok(unsafe { core::ptr::read_volatile(&scratch.fields[7]) } as usize & (MAX_ANSWER_ADDRS - 1))
}

const LOOPBACK_IFINDEX: usize = 1;

#[inline(always)]
fn next_rotation() -> u32 {
    match ROTATION.get_ptr_mut(0) {
        Some(p) => unsafe {
            let r = *p;
            *p = r.wrapping_add(1);
            r
        },
        None => 0,
    }
}

/// Does nothing but pass: XDP_TX on a veth only delivers when the peer veth has
/// an XDP program attached, so tests attach this one there.
#[xdp]
pub fn failover_pass(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

const _: () = assert!(core::mem::size_of::<Scratch>() == 296);
