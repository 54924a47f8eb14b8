//! The XDP fast path: answers plain A queries for hot names straight from the
//! record map, passes everything else up the stack untouched.
//!
//! Packet path: `failover_xdp` -> `query::validate` (is this a plain query we
//! fully understand? builds the map key) -> map lookup -> `response::answer`
//! (rewrites the frame in place) -> XDP_TX.
#![no_std]
#![no_main]

mod checksum;
mod packet;
mod query;
mod response;

use aya_ebpf::{
    bindings::xdp_action,
    macros::{map, xdp},
    maps::{HashMap, PerCpuArray},
    programs::XdpContext,
};
use failover_common::{AnswerSet, COUNTER_COUNT, Counter, MAX_RECORDS, RecordKey};

use crate::response::Refusal;

/// Answer sets by (lowercased wire name, type), written by the agent.
#[map]
static RECORDS: HashMap<RecordKey, AnswerSet> = HashMap::with_max_entries(MAX_RECORDS, 0);

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
}

#[map]
static SCRATCH: PerCpuArray<Scratch> = PerCpuArray::with_max_entries(1, 0);

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

#[inline(always)]
fn respond(ctx: &XdpContext) -> Result<(), Refusal> {
    let scratch = match SCRATCH.get_ptr_mut(0) {
        Some(p) => unsafe { &mut *p },
        None => return Err(Refusal::Pass(Counter::PassMalformed)),
    };
    let query = query::validate(ctx.data(), ctx.data_end(), scratch).map_err(Refusal::Pass)?;
    // By reference on purpose: by value would copy the 258-byte key onto the
    // 512-byte BPF stack.
    #[allow(clippy::needless_borrows_for_generic_args)]
    let answers = match RECORDS.get_ptr(&scratch.key) {
        Some(p) => unsafe { &*p },
        None => return Err(Refusal::Pass(Counter::PassNameNotInMap)),
    };
    let rotation = match ROTATION.get_ptr_mut(0) {
        Some(p) => unsafe {
            let r = *p;
            *p = r.wrapping_add(1);
            r
        },
        None => 0,
    };
    response::answer(ctx, &query, answers, rotation)
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

const _: () = assert!(core::mem::size_of::<Scratch>() == 264);
