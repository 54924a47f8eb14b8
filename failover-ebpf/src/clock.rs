//! The program's clock: CLOCK_MONOTONIC at a tick's resolution, which is
//! all the heartbeat, the rate limit and cookie seconds need.
//!
//! A helper call is dear on the packet path (with return-thunk mitigations,
//! as on AMD with SRSO "Safe RET", every call and return costs tens of
//! nanoseconds), and the coarse clock only moves when jiffies do. So each
//! CPU keeps the coarse time it read with the jiffies it read it at, and
//! calls the helper again only when jiffies have moved on: about once a
//! tick per CPU. Reading jiffies is a load (the verifier inlines
//! `bpf_jiffies64`).

use aya_ebpf::helpers::generated::{bpf_jiffies64, bpf_ktime_get_coarse_ns};

use crate::maps::CLOCK;

/// Now, in CLOCK_MONOTONIC nanoseconds, up to a tick behind.
#[inline(always)]
pub fn now() -> u64 {
    // SAFETY: neither helper has preconditions.
    let jiffies = unsafe { bpf_jiffies64() };
    match CLOCK.get_ptr_mut(0) {
        Some(p) => {
            let seen = unsafe { &mut *p };
            if seen.jiffies != jiffies {
                seen.ns = unsafe { bpf_ktime_get_coarse_ns() };
                seen.jiffies = jiffies;
            }
            seen.ns
        }
        None => unsafe { bpf_ktime_get_coarse_ns() },
    }
}
