//! Every map the program uses and its per-CPU working memory, in one place so
//! the packet code never reaches into the entry point's module for them.

use aya_ebpf::{
    bindings::BPF_F_MMAPABLE,
    macros::map,
    maps::{Array, HashMap, LpmTrie, PerCpuArray, ProgramArray},
};
use failover_common::{
    ANSWER_CACHE_KEY_WORDS, ANSWER_CACHE_SLOTS, AnswerSet, COUNTER_COUNT, CookieSecrets, Counter,
    Heartbeat, HostConfig, MAX_RATE_EXEMPT, MAX_RECORDS, MAX_SERVICES, MAX_ZONES, NAME_KEY_LEN,
    RATE_SLOTS, RateBucket, RateLimit, RecordKey, ServiceKey, ZoneSoa,
};

// Answers by (lowercased wire name, type), written by the agent; one map
// per name length (`RECORD_BUCKETS`), so a short name's key is short.
#[map]
pub static RECORDS_32: HashMap<RecordKey<32>, AnswerSet> =
    HashMap::with_max_entries(MAX_RECORDS, 0);
#[map]
pub static RECORDS_64: HashMap<RecordKey<64>, AnswerSet> =
    HashMap::with_max_entries(MAX_RECORDS, 0);
#[map]
pub static RECORDS_128: HashMap<RecordKey<128>, AnswerSet> =
    HashMap::with_max_entries(MAX_RECORDS, 0);
#[map]
pub static RECORDS_256: HashMap<RecordKey<NAME_KEY_LEN>, AnswerSet> =
    HashMap::with_max_entries(MAX_RECORDS, 0);

/// Each zone's SOA for NODATA answers, indexed by `AnswerSet::zone`.
#[map]
pub static ZONES: Array<ZoneSoa> = Array::with_max_entries(MAX_ZONES, 0);

/// This host's DNS service addresses and ports, its own addresses and the
/// interface's broadcast addresses (port 0), written by the agent at start.
#[map]
pub static SERVICES: HashMap<ServiceKey, u32> = HashMap::with_max_entries(MAX_SERVICES, 0);

/// The interface's MAC and which addressing checks apply, written by the agent.
#[map]
pub static HOST: Array<HostConfig> = Array::with_max_entries(1, 0);

/// Packet counters, one slot per `Counter`.
#[map]
static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(COUNTER_COUNT, 0);

/// Round-robin position, per CPU: no atomics on the hot path.
#[map]
pub static ROTATION: PerCpuArray<u32> = PerCpuArray::with_max_entries(1, 0);

/// The version of the record maps (`MAP_RECORD_VERSION`), written by the
/// agent after every change to them.
#[map]
pub static RECORD_VERSION: Array<u64> = Array::with_max_entries(1, 0);

/// One slot of the answer cache (answer_cache.rs).
#[repr(C)]
pub struct CachedAnswer {
    /// `RECORD_VERSION` when the set was looked up; `answer_cache::NEVER` for the slot
    /// of uncached names.
    pub version: u64,
    pub key: [u64; ANSWER_CACHE_KEY_WORDS],
    pub set: AnswerSet,
}

/// Each CPU's recently answered sets (answer_cache.rs); the last slot
/// holds the set of a name the cache does not keep. A query is answered
/// from a slot in every case (see `main::answer_set`).
#[map]
pub static ANSWER_CACHE: PerCpuArray<CachedAnswer> =
    PerCpuArray::with_max_entries(ANSWER_CACHE_SLOTS + 1, 0);

/// Room for the longest record key (`RecordKey<NAME_KEY_LEN>`).
pub const KEY_ROOM: usize = NAME_KEY_LEN + 2;

/// Per-CPU working memory: a map key is up to 258 bytes, too big to build on
/// the 512-byte BPF stack alongside everything else.
#[repr(C)]
pub struct Scratch {
    /// The lowercased wire name, zero-padded. The key of bucket N is its
    /// first N + 2 bytes, with the query type put at N (`main::answer_set`).
    pub key: [u8; KEY_ROOM],
    pub _pad: u16,
    /// Written and read back as a verifier barrier (see query.rs).
    pub name_len: u32,
    /// The validated query's fields, written and read back likewise (see
    /// `query::launder`).
    pub fields: [u32; 12],
}

#[map]
pub static SCRATCH: PerCpuArray<Scratch> = PerCpuArray::with_max_entries(1, 0);

/// Room for a frame's headers and question (VLAN + IPv6 + UDP + DNS header +
/// 255-byte name + type and class = 325 bytes), saved while the frame grows at
/// its head (see response.rs).
pub const FRAME_COPY_LEN: usize = 328;

#[map]
pub static FRAME_COPY: PerCpuArray<[u8; FRAME_COPY_LEN]> = PerCpuArray::with_max_entries(1, 0);

/// Bumps this CPU's slot of `counter`.
#[inline(always)]
pub fn count(counter: Counter) {
    if let Some(slot) = COUNTERS.get_ptr_mut(counter as u32) {
        unsafe { *slot += 1 };
    }
}

/// Each CPU's last reading of the coarse clock and the jiffies it was
/// read at (clock.rs).
#[repr(C)]
pub struct TickTime {
    pub jiffies: u64,
    pub ns: u64,
}

#[map]
pub static CLOCK: PerCpuArray<TickTime> = PerCpuArray::with_max_entries(1, 0);

/// The agent's last heartbeat and the hold (see `Heartbeat`).
#[map]
pub static HEARTBEAT: Array<Heartbeat> = Array::with_max_entries(1, 0);

/// The agent's heartbeat if it is recent enough, at `now`
/// (`bpf_ktime_get_coarse_ns`), to answer from the maps.
#[inline(always)]
pub fn agent_alive(now: u64) -> Option<&'static Heartbeat> {
    // `now` is the coarse clock, up to a tick behind the agent's: a beat
    // from slightly ahead is fresh. The age wraps on purpose: a beat can
    // be older than the machine's uptime (the fixtures' week-long hold).
    const CLOCK_LAG_NS: u64 = 100_000_000;
    match HEARTBEAT.get(0) {
        Some(beat)
            if now.wrapping_sub(beat.at_ns).wrapping_add(CLOCK_LAG_NS)
                <= beat.hold_ns.saturating_add(CLOCK_LAG_NS) =>
        {
            Some(beat)
        }
        _ => None,
    }
}

/// How COOKIE options are treated, and the server secrets (see
/// `CookieSecrets`), written by the agent at start and at every rotation.
#[map]
pub static COOKIES: Array<CookieSecrets> = Array::with_max_entries(1, 0);

/// Per-CPU working memory of the cookie code (cookie.rs).
#[repr(C)]
pub struct CookieScratch {
    /// The answer's COOKIE option, contiguous: code and length, then the
    /// client cookie, then the server cookie (the query's, when it sent
    /// one of our length, until ours replaces it).
    pub head: [u8; 4],
    pub client: [u8; 8],
    pub server: [u8; 16],
    /// The client address, IPv4 in the first word.
    pub addr: [u32; 4],
    /// The option's checksum contribution (16-bit words from an even
    /// start, folded).
    pub sum: u32,
}

#[map]
pub static COOKIE_SCRATCH: PerCpuArray<CookieScratch> = PerCpuArray::with_max_entries(1, 0);

/// Slot 0: `failover_xdp_answer`, put there by the agent that loaded this
/// object (one jump table per loaded object: the answer half must share
/// this instance's per-CPU scratch).
#[map]
pub static ANSWER_PROGRAM: ProgramArray = ProgramArray::with_max_entries(1, 0);

/// Response rate limiting, written by the agent at start (all zero: off).
#[map]
pub static RATE_LIMIT: Array<RateLimit> = Array::with_max_entries(1, 0);

/// Source prefixes never rate limited (`[rate_limit] exempt`), as IPv6
/// (IPv4 mapped) with the prefix length in that space.
#[map]
pub static RATE_EXEMPT: LpmTrie<[u8; 16], u8> = LpmTrie::with_max_entries(MAX_RATE_EXEMPT, 0);

/// The rate table: source prefixes' rate states, shared by the CPUs
/// (updated with atomic instructions), two-way set associative: a prefix
/// is held in either bucket of the pair `failover_common::rate_slot`
/// picks, its masked source (IPv4 mapped) as the tag. An array, so the
/// verifier inlines the lookup (a hash map's is several calls). Mmapable
/// only for the alignment: the kernel then starts the values on a page,
/// so each pair fills one cache line (otherwise they start 56 bytes into
/// one, and every pair straddles two).
#[map]
pub static RATE_BUCKETS: Array<RateBucket> = Array::with_max_entries(RATE_SLOTS, BPF_F_MMAPABLE);

/// Per-CPU working memory of the rate limit: the keys do not fit on the
/// stack beside the rest of the packet path.
#[repr(C)]
pub struct RateScratch {
    /// The masked source: the bucket's tag.
    pub prefix: [u32; 4],
    /// The exempt trie's key: `address_bits` then `address` (the layout
    /// of `lpm_trie::Key<[u8; 16]>`).
    pub address_bits: u32,
    pub address: [u32; 4],
}

#[map]
pub static RATE_SCRATCH: PerCpuArray<RateScratch> = PerCpuArray::with_max_entries(1, 0);

const _: () = assert!(core::mem::size_of::<Scratch>() == 312);
const _: () = assert!(core::mem::size_of::<RateScratch>() == 36);
const _: () = assert!(core::mem::size_of::<CookieScratch>() == 48);
