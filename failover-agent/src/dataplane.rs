//! The kernel side as the agent sees it: the embedded XDP object, attaching it,
//! writing answer sets into the record map and reading counters.

/// The XDP object built by build.rs from failover-ebpf (never stale: see build.rs).
pub static XDP_OBJECT: &[u8] = aya::include_bytes_aligned!(env!("FAILOVER_XDP_OBJECT"));
