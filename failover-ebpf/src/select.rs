//! Which of an answer set's addresses a query gets: a rotating window for
//! round robin (all of them, or `limit` of them), one weighted-random pick for
//! weighted sets.

use aya_ebpf::helpers::generated::bpf_get_prandom_u32;
use failover_common::{AnswerSet, Counter, MAX_ANSWER_ADDRS};

use crate::{
    maps::{ROTATION, Scratch},
    query::PICK_FIELD,
    response::Refusal,
};

/// Round robin: the index the answer starts at and how many addresses it
/// carries. The start rotates per query; with a `limit` below `count` the
/// answer is a window of `limit` addresses from there (wrapping), so the
/// windows walk over every stored address in turn. `set.count` must be > 0.
#[inline(always)]
pub fn round_robin(set: &AnswerSet) -> (usize, usize) {
    let stored = set.count as usize;
    let limit = set.limit as usize;
    // One address: nothing to rotate. Otherwise a 32-bit division (the
    // 64-bit one is several times dearer).
    let start = if stored <= 1 {
        0
    } else {
        (next_rotation() % stored as u32) as usize
    };
    let count = if limit == 0 || limit > stored {
        stored
    } else {
        limit
    };
    (start, count)
}

/// Index of the address this query gets: random, in proportion to the
/// weights, decided per query (so traffic splits by weight even from one
/// resolver).
#[inline(always)]
pub fn weighted_pick(set: &AnswerSet, scratch: &mut Scratch) -> Result<usize, Refusal> {
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
    scratch.fields[PICK_FIELD] = pick;
    Ok(
        unsafe { core::ptr::read_volatile(&scratch.fields[PICK_FIELD]) } as usize
            & (MAX_ANSWER_ADDRS - 1),
    )
}

/// This CPU's rotation position, advanced by one.
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
