//! Response rate limiting: how many answers a source prefix gets per second.
//!
//! A generic cell rate algorithm per source prefix: each prefix has a
//! theoretical arrival time (TAT) in one table shared by the CPUs, moved
//! on by compare-and-swap, so the hot path takes no lock and a source gets
//! its rate however its packets spread over the CPUs (one receive queue,
//! or all). The table is an array, two-way set associative: a keyed hash
//! of the prefix picks a pair of buckets (one cache line), and a prefix in
//! neither takes over the quieter one. Array lookups are inlined by the
//! verifier: no helper call on the packet path. Over the limit, the exempt
//! trie is consulted (only then: it costs a trie walk), then the response
//! is counted, and slipped (a TC=1 answer), dropped, or in log-only mode
//! sent as usual.

use core::intrinsics::{
    AtomicOrdering::{Relaxed, SeqCst},
    atomic_cxchg, atomic_xadd,
};

use aya_ebpf::maps::lpm_trie::Key;
use failover_common::{Counter, RATE_LIMIT_LOG_ONLY, RATE_LIMIT_ON, rate_slot};

use crate::{
    maps::{RATE_BUCKETS, RATE_EXEMPT, RATE_LIMIT, RATE_SCRATCH, RateScratch, count},
    packet::{Frame, read_u32},
    response::Refusal,
};

/// What happens to an answer within, or over, its source's rate.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// Send it.
    Answer,
    /// Send a TC=1 answer without records instead.
    Slip,
}

/// `::ffff:0:0/96`, the IPv4-mapped prefix, as the third native-endian word.
const V4_MAPPED_WORD: u32 = u32::from_ne_bytes([0, 0, 0xff, 0xff]);

/// Whether two prefixes are equal, word by word (an array's `==` may
/// become a call to `memcmp`).
#[inline(always)]
fn same(a: &[u32; 4], b: &[u32; 4]) -> bool {
    (a[0] ^ b[0]) | (a[1] ^ b[1]) | (a[2] ^ b[2]) | (a[3] ^ b[3]) == 0
}

/// Decides the fate of an answer to the frame's source at `now`
/// (bpf_ktime_get_coarse_ns). Dropping is `Err(Refusal::Drop(RateLimitDropped))`;
/// the frame is untouched either way. The caller has validated the frame
/// through the UDP header.
#[inline(always)]
pub fn check<const L3: usize, const V6: bool>(
    data: usize,
    data_end: usize,
    now: u64,
) -> Result<Limit, Refusal> {
    type F<const L3: usize, const V6: bool> = Frame<L3, V6>;
    let config = match RATE_LIMIT.get(0) {
        Some(c) if c.flags & RATE_LIMIT_ON != 0 => c,
        _ => return Ok(Limit::Answer),
    };
    let scratch: &mut RateScratch = match RATE_SCRATCH.get_ptr_mut(0) {
        Some(p) => unsafe { &mut *p },
        None => return Ok(Limit::Answer),
    };
    if data + F::<L3, V6>::IP_SRC + F::<L3, V6>::IP_ADDR_LEN > data_end {
        return Ok(Limit::Answer);
    }
    // The source prefix as an IPv6 one (IPv4 mapped): the bucket's tag.
    let src = data + F::<L3, V6>::IP_SRC;
    if V6 {
        let mut w = 0;
        while w < 4 {
            scratch.prefix[w] = unsafe { read_u32(src + 4 * w) } & config.v6_mask[w];
            w += 1;
        }
    } else {
        scratch.prefix = [
            0,
            0,
            V4_MAPPED_WORD,
            unsafe { read_u32(src) } & config.v4_mask,
        ];
    }

    let slot = rate_slot(&scratch.prefix, config.seed);
    let (Some(first), Some(second)) = (
        RATE_BUCKETS.get_ptr_mut(slot),
        RATE_BUCKETS.get_ptr_mut(slot | 1),
    ) else {
        return Ok(Limit::Answer);
    };
    // SAFETY: map values live while the program runs.
    let (first, second) = unsafe { (&mut *first, &mut *second) };
    let bucket = if same(&first.prefix, &scratch.prefix) {
        first
    } else if same(&second.prefix, &scratch.prefix) {
        second
    } else {
        // First answer to this prefix (or its state was taken over): it
        // takes over the bucket of the pair whose time is earlier, the one
        // answered less lately or less loudly: a prefix over its limit has
        // its time furthest ahead, and goes only for one as loud.
        let quieter = if unsafe { core::ptr::read_volatile(&first.tat_ns) }
            <= unsafe { core::ptr::read_volatile(&second.tat_ns) }
        {
            first
        } else {
            second
        };
        // Plain stores, no lock: CPUs taking over the same bucket at once
        // may leave a mix of their prefixes' words as the tag (IPv6), which
        // matches no one and is taken over again; a CPU that matched the
        // old tag just before may move the new time on, or have its move
        // overwritten. Either way at most an answer more or less.
        unsafe {
            core::ptr::write_volatile(&mut quieter.tat_ns, now.wrapping_add(config.interval_ns));
            core::ptr::write_volatile(&mut quieter.limited, 0);
            core::ptr::write_volatile(&mut quieter.prefix, scratch.prefix);
        }
        return Ok(Limit::Answer);
    };
    // Atomics by intrinsic: core's atomic types have no compare-and-swap
    // on this target, the BPF instruction set has (cpu v3).
    // SAFETY: map values are 8-aligned and live while the program runs;
    // CPUs touch these words atomically (a takeover's aligned stores are
    // atomic too).
    let tat: *mut u64 = &mut bucket.tat_ns;
    // An aligned 8-byte load is atomic.
    let mut seen = unsafe { core::ptr::read_volatile(tat) };
    // Bounded: a CPU that loses the race twice answers (the winners moved
    // the time on; at most one answer more per lost pair of races).
    let mut tries = 0;
    loop {
        let mut at = seen;
        // Behind now (the allowance is full), or further ahead than any
        // allowed answer leaves it (not a state we wrote): start from now.
        if at < now || at > now + config.burst_ns + config.interval_ns {
            at = now;
        }
        if at > now + config.burst_ns {
            break;
        }
        let next = at + config.interval_ns;
        let (current, swapped) =
            unsafe { atomic_cxchg::<u64, { Relaxed }, { Relaxed }>(tat, seen, next) };
        if swapped {
            return Ok(Limit::Answer);
        }
        seen = current;
        tries += 1;
        if tries == 2 {
            return Ok(Limit::Answer);
        }
    }
    // Over the limit.
    // The whole source for the exempt trie, only now: most answers are
    // within the rate.
    if V6 {
        let mut w = 0;
        while w < 4 {
            scratch.address[w] = unsafe { read_u32(src + 4 * w) };
            w += 1;
        }
    } else {
        scratch.address = [0, 0, V4_MAPPED_WORD, unsafe { read_u32(src) }];
    }
    scratch.address_bits = 128;
    let exempt_key = &scratch.address_bits as *const u32 as *const Key<[u8; 16]>;
    if RATE_EXEMPT.get(unsafe { &*exempt_key }).is_some() {
        return Ok(Limit::Answer);
    }
    count(Counter::RateLimited);
    if config.flags & RATE_LIMIT_LOG_ONLY != 0 {
        return Ok(Limit::Answer);
    }
    // SeqCst: with Relaxed this LLVM emits the add without its fetch and
    // uses the operand as the old value. (BPF atomics are full barriers
    // either way.)
    // SAFETY: as above.
    let limited =
        unsafe { atomic_xadd::<u64, u64, { SeqCst }>(&mut bucket.limited, 1) }.wrapping_add(1);
    let slip = config.slip;
    if slip != 0 && limited % u64::from(slip) == 0 {
        return Ok(Limit::Slip);
    }
    Err(Refusal::Drop(Counter::RateLimitDropped))
}
