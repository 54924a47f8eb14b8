//! The XDP fast path: answers plain A/AAAA/HTTPS queries for hot names
//! straight from the record map, passes everything else up the stack untouched.
//!
//! Packet path, in two programs joined by a tail call (each has its own
//! verifier budget): `failover_xdp` -> `respond` (which frame shape: IPv4
//! or IPv6, with or without one 802.1Q tag) -> `validate_query::<shape>`:
//! `query::validate` (is this a plain query we fully understand, addressed
//! to this host's DNS service (`host`)? builds the map key in the per-CPU
//! scratch) -> tail call -> `failover_xdp_answer` -> `answer_query::<shape>`:
//! `query::options` (the EDNS options) -> `answer_cache` (this CPU's copy
//! of a hot name's answer set) or the record map of the name's length
//! -> `checksum::udp_verified` -> `cookie::check` (a server cookie for a
//! client cookie; a valid one skips the rate limit) -> `rate_limit::check`
//! (within the source's rate? else a TC=1 slip or a drop) -> `select`
//! (which addresses this query gets) -> `response::addresses` or
//! `response::nodata` (rewrite the frame in place) -> XDP_TX. Maps and
//! per-CPU scratch live in `maps`.
#![no_std]
#![no_main]
// Compare-and-swap for the shared rate state (rate_limit.rs).
#![allow(internal_features)]
#![feature(core_intrinsics)]

mod answer_cache;
mod checksum;
mod clock;
mod cookie;
mod host;
mod maps;
mod packet;
mod query;
mod rate_limit;
mod response;
mod select;

use aya_ebpf::{
    bindings::{xdp_action, xdp_md},
    macros::xdp,
    maps::HashMap,
    programs::XdpContext,
};
use failover_common::{
    ANSWER_ADDRS, ANSWER_NODATA, ANSWER_SERVFAIL, ANSWER_WEIGHTED, AnswerSet, Counter,
    MAX_ANSWER_ADDRS, QTYPE_A, QTYPE_AAAA, RecordKey, record_bucket,
};

use crate::{
    cookie::Cookie,
    maps::{
        ANSWER_CACHE, ANSWER_PROGRAM, RECORD_VERSION, RECORDS_32, RECORDS_64, RECORDS_128,
        RECORDS_256, SCRATCH, ZONES, agent_alive, count,
    },
    packet::{ETH_LEN, ETH_TYPE, ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETHERTYPE_VLAN, VLAN_TAG_LEN},
    rate_limit::Limit,
    response::Refusal,
};

#[xdp]
pub fn failover_xdp(ctx: XdpContext) -> u32 {
    verdict(respond(&ctx, Stage::Validate))
}

/// The second half of the path, entered by tail call from `failover_xdp`
/// once the query is validated: a program of its own, so that the answer
/// path (cookies, rate limit, rewrite) has its own verifier budget beside
/// the parser's. It reads the validated query back from the per-CPU
/// scratch, which the tail call leaves as it was (same CPU, same packet,
/// the same object's maps).
///
/// Written out instead of `#[xdp]`: the macro wraps the body in an inner
/// function, which LLVM leaves as a BPF-to-BPF call when it is this large,
/// and a call's return is dear (return thunks). Same symbol and section.
#[unsafe(no_mangle)]
#[unsafe(link_section = "xdp")]
pub fn failover_xdp_answer(ctx: *mut xdp_md) -> u32 {
    verdict(respond(&XdpContext::new(ctx), Stage::Answer))
}

#[inline(always)]
fn verdict(result: Result<Counter, Refusal>) -> u32 {
    match result {
        Ok(outcome) => {
            count(outcome);
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

/// Which program runs: the entry point, or the answer half.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stage {
    Validate,
    Answer,
}

/// Picks the frame shape; each shape is its own constant-offset instance.
/// Returns the counter of what was sent (answers by kind: addresses,
/// NODATA, SERVFAIL; or a slipped answer).
#[inline(always)]
fn respond(ctx: &XdpContext, stage: Stage) -> Result<Counter, Refusal> {
    let data = ctx.data();
    let data_end = ctx.data_end();
    let not_dns = Refusal::Pass(Counter::PassNotDnsTransport);
    if data + ETH_LEN + VLAN_TAG_LEN > data_end {
        return Err(not_dns);
    }
    let ethertype = unsafe { packet::read_be16(data + ETH_TYPE) };
    match ethertype {
        ETHERTYPE_IPV4 => shape::<ETH_LEN, false>(ctx, stage),
        ETHERTYPE_IPV6 => shape::<ETH_LEN, true>(ctx, stage),
        ETHERTYPE_VLAN => {
            // One 802.1Q tag; the answer keeps it. Stacked tags are passed.
            let inner = unsafe { packet::read_be16(data + ETH_TYPE + VLAN_TAG_LEN) };
            match inner {
                ETHERTYPE_IPV4 => shape::<{ ETH_LEN + VLAN_TAG_LEN }, false>(ctx, stage),
                ETHERTYPE_IPV6 => shape::<{ ETH_LEN + VLAN_TAG_LEN }, true>(ctx, stage),
                _ => Err(not_dns),
            }
        }
        _ => Err(not_dns),
    }
}

#[inline(always)]
fn shape<const L3: usize, const V6: bool>(
    ctx: &XdpContext,
    stage: Stage,
) -> Result<Counter, Refusal> {
    match stage {
        Stage::Validate => validate_query::<L3, V6>(ctx),
        Stage::Answer => answer_query::<L3, V6>(ctx),
    }
}

/// One frame shape's first half: validate (the key and the query's fields
/// land in the per-CPU scratch), then on to `failover_xdp_answer`.
#[inline(always)]
fn validate_query<const L3: usize, const V6: bool>(ctx: &XdpContext) -> Result<Counter, Refusal> {
    let scratch = match SCRATCH.get_ptr_mut(0) {
        Some(p) => unsafe { &mut *p },
        None => return Err(Refusal::Pass(Counter::PassMalformed)),
    };
    // lo is ifindex 1 in every network namespace.
    let on_loopback = ctx.ingress_ifindex() == LOOPBACK_IFINDEX;
    let query = query::validate::<L3, V6>(ctx.data(), ctx.data_end(), on_loopback, scratch)
        .map_err(Refusal::Pass)?;
    query::store(query, scratch);
    // A constant index: the JIT makes this a direct jump.
    // SAFETY: on success the answer program ends this packet's run.
    unsafe { ANSWER_PROGRAM.tail_call(ctx, 0) };
    // The slot empties only when no agent or pin holds the table any more:
    // no agent keeps the answer sets true.
    Err(Refusal::Pass(Counter::PassAgentGone))
}

/// One frame shape's second half: look up, judge the cookie, rate limit,
/// select, rewrite.
#[inline(always)]
fn answer_query<const L3: usize, const V6: bool>(ctx: &XdpContext) -> Result<Counter, Refusal> {
    let scratch = match SCRATCH.get_ptr_mut(0) {
        Some(p) => unsafe { &mut *p },
        None => return Err(Refusal::Pass(Counter::PassMalformed)),
    };
    let mut query = query::read_back(scratch);
    query::options(ctx.data(), ctx.data_end(), scratch).map_err(Refusal::Pass)?;
    let now = clock::now();
    // No agent keeps the answer sets true: everything goes up the stack.
    let beat = agent_alive(now).ok_or(Refusal::Pass(Counter::PassAgentGone))?;
    let unix_ns = now.wrapping_add(beat.unix_offset_ns);
    let set = answer_set(&query, scratch)?;
    // Only a query about to be answered is worth summing.
    checksum::udp_verified::<L3, V6>(ctx.data(), ctx.data_end()).map_err(Refusal::Pass)?;
    // A valid server cookie proves the source address: never limited.
    let limit = if cookie::check::<L3, V6>(ctx, &mut query, scratch, unix_ns)? == Cookie::Valid {
        Limit::Answer
    } else {
        rate_limit::check::<L3, V6>(ctx.data(), ctx.data_end(), now)?
    };
    answer_within::<L3, V6>(ctx, &query, set, scratch, limit)
}

/// The answer set for the query's name (in `scratch`) and type: this
/// CPU's cached copy when it is of the record maps' current version,
/// else copied into the cache from the record map of the name's length.
#[inline(always)]
fn answer_set(
    query: &query::Query,
    scratch: &mut maps::Scratch,
) -> Result<&'static AnswerSet, Refusal> {
    let not_found = Refusal::Pass(Counter::PassNameNotInMap);
    // Read before the lookup: a set found after a change is then never
    // kept as the version before it (answer_cache.rs).
    let version = match RECORD_VERSION.get(0) {
        Some(v) => unsafe { core::ptr::read_volatile(v) },
        None => return Err(not_found),
    };
    // Read again, so the bucket's bounds stay off `query.name_len`: the
    // verifier would check the rest once per range.
    let name_len = unsafe { core::ptr::read_volatile(&scratch.fields[0]) } as usize & 0xff;
    let bucket = record_bucket(name_len);
    // Only the first bucket's names are cached; a longer name's bytes
    // are where the key puts the type.
    let (key, index) = if bucket == 0 {
        let key = answer_cache::key(scratch, query.qtype);
        (key, answer_cache::slot(&key))
    } else {
        ([0; answer_cache::KEY_WORDS], answer_cache::CACHE_SLOTS)
    };
    let slot = match ANSWER_CACHE.get_ptr_mut(index) {
        Some(p) => unsafe { &mut *p },
        None => return Err(not_found),
    };
    let found = if bucket == 0 && answer_cache::holds(slot, &key, version) {
        true
    } else {
        let copy = &mut slot.set;
        let found = match bucket {
            0 => lookup(&RECORDS_32, query.qtype, scratch, copy),
            1 => lookup(&RECORDS_64, query.qtype, scratch, copy),
            2 => lookup(&RECORDS_128, query.qtype, scratch, copy),
            _ => lookup(&RECORDS_256, query.qtype, scratch, copy),
        };
        // The slot now holds this key's set; a miss leaves it as it was
        // (a flood of unknown names evicts nothing). The last slot, of
        // names the cache does not keep, never answers from the cache.
        if found {
            let kept = if bucket == 0 {
                version
            } else {
                answer_cache::NEVER
            };
            answer_cache::fill(slot, &key, kept);
        }
        found
    };
    // Verifier barrier: the paths above end in one unknown scalar, so what
    // follows is checked once, not once per bucket.
    scratch.fields[query::FOUND_FIELD] = if found { index + 1 } else { 0 };
    let found = unsafe { core::ptr::read_volatile(&scratch.fields[query::FOUND_FIELD]) };
    if found == 0 {
        return Err(not_found);
    }
    match ANSWER_CACHE.get(found - 1) {
        Some(slot) => Ok(&slot.set),
        None => Err(not_found),
    }
}

/// Looks the name up in the record map of bucket `N` and copies what is
/// found to `copy` (a cache slot): the verifier tells values of different
/// maps apart, and would check all that follows once per map. The key is the first N + 2
/// bytes of `scratch.key` (the name, zero-padded) with the type put at N;
/// in place, by reference: a copy would not fit the BPF stack.
#[inline(always)]
fn lookup<const N: usize>(
    map: &HashMap<RecordKey<N>, AnswerSet>,
    qtype: u16,
    scratch: &mut maps::Scratch,
    copy: &mut AnswerSet,
) -> bool {
    const { assert!(N.is_multiple_of(2) && N + 2 <= maps::KEY_ROOM) };
    let key = scratch.key.as_mut_ptr() as *mut RecordKey<N>;
    // By reference on purpose: by value would copy the key onto the stack.
    #[allow(clippy::needless_borrows_for_generic_args)]
    let found = unsafe {
        (*key).qtype = qtype;
        map.get_ptr(&*key)
    };
    match found {
        Some(p) => {
            copy_used(unsafe { &*p }, copy);
            true
        }
        None => false,
    }
}

/// Copies what an answer reads of `from`, in 8-byte words: the fixed
/// fields, the weights of a weighted set, the stored addresses.
#[inline(always)]
fn copy_used(from: &AnswerSet, to: &mut AnswerSet) {
    let src = from as *const AnswerSet as *const u64;
    let dst = to as *mut AnswerSet as *mut u64;
    // ttl, count, kind, zone, limit, _pad: 16 bytes; then 8 words of weights.
    const FIXED_WORDS: usize = 2;
    const WEIGHT_WORDS: usize = MAX_ANSWER_ADDRS / 2;
    unsafe {
        dst.write(src.read());
        dst.add(1).write(src.add(1).read());
        if from.kind == ANSWER_WEIGHTED {
            let mut w = FIXED_WORDS;
            while w < FIXED_WORDS + WEIGHT_WORDS {
                dst.add(w).write(src.add(w).read());
                w += 1;
            }
        }
        let stored = from.count as usize;
        let addrs = FIXED_WORDS + WEIGHT_WORDS;
        let mut i = 0;
        while i < MAX_ANSWER_ADDRS {
            if i >= stored {
                break;
            }
            dst.add(addrs + 2 * i).write(src.add(addrs + 2 * i).read());
            dst.add(addrs + 2 * i + 1)
                .write(src.add(addrs + 2 * i + 1).read());
            i += 1;
        }
    }
}

/// The answer, or within the rate limit's verdict a slipped one.
#[inline(always)]
fn answer_within<const L3: usize, const V6: bool>(
    ctx: &XdpContext,
    query: &query::Query,
    set: &AnswerSet,
    scratch: &mut maps::Scratch,
    limit: Limit,
) -> Result<Counter, Refusal> {
    if limit == Limit::Slip {
        // What userspace sends when an answer does not fit: the header
        // (TC=1, the answer's AA and RCODE), the question, the OPT.
        let flags = if set.kind == ANSWER_SERVFAIL {
            response::FLAGS_SERVFAIL | response::FLAG_TC
        } else {
            response::FLAGS_AA_NOERROR | response::FLAG_TC
        };
        response::header_only::<L3, V6>(ctx, query, flags)?;
        return Ok(Counter::RateLimitSlipped);
    }
    answer_from_set::<L3, V6>(ctx, query, set, scratch)
}

/// The answer `set` makes for `query`, written over the frame.
#[inline(always)]
fn answer_from_set<const L3: usize, const V6: bool>(
    ctx: &XdpContext,
    query: &query::Query,
    set: &AnswerSet,
    scratch: &mut maps::Scratch,
) -> Result<Counter, Refusal> {
    let stored = set.count as usize;
    let addresses = Counter::Answered;
    match (set.kind, query.qtype) {
        (ANSWER_ADDRS, QTYPE_A) if stored > 0 => {
            let (start, count) = select::round_robin(set);
            response::addresses::<L3, V6, 4>(ctx, query, set, start, count).map(|()| addresses)
        }
        (ANSWER_ADDRS, QTYPE_AAAA) if stored > 0 => {
            let (start, count) = select::round_robin(set);
            response::addresses::<L3, V6, 16>(ctx, query, set, start, count).map(|()| addresses)
        }
        (ANSWER_WEIGHTED, QTYPE_A) => {
            let pick = select::weighted_pick(set, scratch)?;
            response::addresses::<L3, V6, 4>(ctx, query, set, pick, 1).map(|()| addresses)
        }
        (ANSWER_WEIGHTED, QTYPE_AAAA) => {
            let pick = select::weighted_pick(set, scratch)?;
            response::addresses::<L3, V6, 16>(ctx, query, set, pick, 1).map(|()| addresses)
        }
        (ANSWER_SERVFAIL, _) => {
            response::header_only::<L3, V6>(ctx, query, response::FLAGS_SERVFAIL)
                .map(|()| Counter::AnsweredServfail)
        }
        (ANSWER_NODATA, _) => match ZONES.get(set.zone) {
            Some(soa) => {
                response::nodata::<L3, V6>(ctx, query, soa).map(|()| Counter::AnsweredNodata)
            }
            None => Err(Refusal::Pass(Counter::PassNameNotInMap)),
        },
        _ => Err(Refusal::Pass(Counter::PassNameNotInMap)),
    }
}

const LOOPBACK_IFINDEX: usize = 1;

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
