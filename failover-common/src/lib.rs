//! Types shared by the XDP program (kernel) and the agent (userspace).
//!
//! Everything here is `#[repr(C)]`, has no implicit padding (the verifier and the
//! hash map compare keys byte for byte) and changes only together with
//! [`LAYOUT_VERSION`].
#![no_std]

/// Bump whenever a map key, value or counter index changes meaning. Anything that
/// persists maps (pin paths, dumps) must include it so an old layout is never
/// reused by a new program.
pub const LAYOUT_VERSION: u32 = 13;

/// Longest domain name in wire format, terminating root label included (RFC 1035 3.1).
pub const MAX_NAME_WIRE_LEN: usize = 255;
/// Bytes of the longest name field of a [`RecordKey`]: the wire name,
/// zero-padded.
pub const NAME_KEY_LEN: usize = 256;
/// The record maps' name lengths: a name of `len` wire bytes is kept in the
/// map of the first bucket `>= len` ([`record_bucket`]), keyed by a
/// `RecordKey<bucket>`. Most names are short: the kernel hashes and
/// compares 34 bytes for them instead of 258.
pub const RECORD_BUCKETS: [usize; 4] = [32, 64, 128, NAME_KEY_LEN];
/// Most addresses one answer set carries.
pub const MAX_ANSWER_ADDRS: usize = 16;
/// Most (name, type) entries the kernel holds: each record map holds this
/// many, and the configuration is held to it for all of them together.
pub const MAX_RECORDS: u32 = 16_384;
/// Most zones (SOA records) the kernel knows.
pub const MAX_ZONES: u32 = 1024;
/// Room for a SOA record after its owner name: type, class, TTL, RDLENGTH (10)
/// and RDATA (MNAME and RNAME uncompressed, five 32-bit fields), rounded up.
pub const SOA_RR_MAX: usize = 544;

/// DNS RR types the fast path knows.
pub const QTYPE_A: u16 = 1;
pub const QTYPE_AAAA: u16 = 28;
pub const QTYPE_OPT: u16 = 41;
pub const QTYPE_SOA: u16 = 6;
pub const QTYPE_HTTPS: u16 = 65;
pub const QCLASS_IN: u16 = 1;

/// EDNS UDP payload size the fast path advertises (DNS flag day 2020).
pub const EDNS_UDP_SIZE: u16 = 1232;
/// Classic DNS UDP message limit without EDNS (RFC 1035 4.2.1).
pub const PLAIN_UDP_SIZE: u16 = 512;

/// Map names as they appear in the object file.
/// The record maps, one per entry of [`RECORD_BUCKETS`].
pub const MAP_RECORDS: [&str; 4] = ["RECORDS_32", "RECORDS_64", "RECORDS_128", "RECORDS_256"];
/// One `u64`: the version of the record maps, which the agent moves on
/// after every change to them. Each CPU's answer cache holds answers of
/// one version: a change empties them all at once.
pub const MAP_RECORD_VERSION: &str = "RECORD_VERSION";
pub const MAP_COUNTERS: &str = "COUNTERS";
pub const MAP_ZONES: &str = "ZONES";
pub const MAP_SERVICES: &str = "SERVICES";
pub const MAP_HOST: &str = "HOST";
pub const MAP_HEARTBEAT: &str = "HEARTBEAT";
pub const MAP_RATE_LIMIT: &str = "RATE_LIMIT";
pub const MAP_RATE_EXEMPT: &str = "RATE_EXEMPT";
pub const MAP_COOKIES: &str = "COOKIES";
/// The jump table whose slot 0 holds `PROGRAM_XDP_ANSWER`.
pub const MAP_ANSWER_PROGRAM: &str = "ANSWER_PROGRAM";
/// Name of the XDP program that answers queries.
pub const PROGRAM_XDP: &str = "failover_xdp";
/// The answer half of the packet path, entered from `PROGRAM_XDP` by tail
/// call once a query is validated.
pub const PROGRAM_XDP_ANSWER: &str = "failover_xdp_answer";
/// A pass-through XDP program (XDP_TX on veth needs one on the peer).
pub const PROGRAM_PASS: &str = "failover_pass";

/// Most entries of the service map (addresses and ports of this host).
pub const MAX_SERVICES: u32 = 1024;

/// `ServiceKey::family` of an IPv4 address.
pub const FAMILY_V4: u8 = 4;
/// `ServiceKey::family` of an IPv6 address.
pub const FAMILY_V6: u8 = 6;

/// Key of the service map: an address of this host and a UDP port.
///
/// Two kinds of entries share the map. With a `port` (never 0): the program
/// answers queries sent to exactly this address and port (the fast path
/// itself answers port 53 only, so entries for other ports only keep queries
/// to port 53 of that address out of it). With `port` 0: an address of this
/// host or a broadcast address of the interface, which the stack refuses as
/// a source, so the program does too.
///
/// `addr` holds an IPv4 address in its first 4 bytes, the rest zero; `port`
/// is in host byte order; `_pad` is zero. 20 bytes, alignment 2: no padding.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceKey {
    pub addr: [u8; 16],
    pub port: u16,
    /// `FAMILY_V4` or `FAMILY_V6`.
    pub family: u8,
    pub _pad: u8,
}

impl ServiceKey {
    pub const fn zeroed() -> Self {
        Self {
            addr: [0; 16],
            port: 0,
            family: 0,
            _pad: 0,
        }
    }
}

/// Value bit of the service map: the agent's DNS service (a listen address,
/// or a `front_addresses` entry).
pub const SERVICE_LISTEN: u32 = 1;
/// Value bit: the entry stands for a wildcard (`0.0.0.0`, `[::]`, or front
/// mode without `front_addresses`), written as one of the interface's own
/// addresses.
pub const SERVICE_WILDCARD: u32 = 2;
/// Value bit (port 0): an address of this host.
pub const SERVICE_HOST_ADDRESS: u32 = 4;
/// Value bit (port 0): a broadcast address of the interface.
pub const SERVICE_BROADCAST: u32 = 8;

/// `HostConfig::checks`: the destination MAC must be `HostConfig::mac`.
pub const CHECK_DST_MAC: u16 = 1;
/// `HostConfig::checks`: sources in the service map with port 0 (this host's
/// own and broadcast addresses) are refused.
pub const CHECK_SOURCE: u16 = 2;

/// `HostConfig::checks`: the address lists of `HostConfig` are not used (the
/// host has more addresses of a family than they hold); the program looks
/// destination and source up in the service map instead.
pub const CHECK_BY_MAP: u16 = 4;

/// Most IPv4 addresses `HostConfig` lists (service and own addresses, the
/// interface's broadcast addresses); with more, `CHECK_BY_MAP`.
pub const HOST_ADDRS_V4: usize = 16;
/// Most IPv6 addresses `HostConfig` lists; with more, `CHECK_BY_MAP`.
pub const HOST_ADDRS_V6: usize = 16;

/// `HostConfig::v4_flags` / `v6_flags`: port 53 of this address is this
/// host's DNS service (a service map entry with port 53).
pub const ADDR_SERVICE_53: u8 = 1;
/// `HostConfig::v4_flags` / `v6_flags`: an own or broadcast address, refused
/// as a source (a service map entry with port 0).
pub const ADDR_REFUSED_SOURCE: u8 = 2;

/// The one value of the host map: what the agent knows of the interface the
/// program is attached to. All zero (never written): no MAC or source check,
/// and with no address listed nothing is answered.
///
/// On loopback the agent sets neither check: lo has no MAC, and every
/// packet on it comes from one of the host's own addresses.
///
/// The address lists hold the same facts as the service map for port 53 and
/// port 0, so that the program compares a few words instead of hashing two
/// keys: `v4[..v4_count]` (each the address's network-order bytes read as
/// native-endian `u32` words, `u32::from_ne_bytes`) and `v6[..v6_count]`, each with its `ADDR_*` bits in
/// `v4_flags` / `v6_flags`. Unused slots and `_pad` are zero. Alignment 4,
/// no padding.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostConfig {
    /// The interface's MAC.
    pub mac: [u8; 6],
    /// `CHECK_DST_MAC` | `CHECK_SOURCE` | `CHECK_BY_MAP`.
    pub checks: u16,
    pub v4_count: u8,
    pub v6_count: u8,
    pub _pad: [u8; 2],
    pub v4_flags: [u8; HOST_ADDRS_V4],
    pub v6_flags: [u8; HOST_ADDRS_V6],
    pub v4: [u32; HOST_ADDRS_V4],
    pub v6: [[u32; 4]; HOST_ADDRS_V6],
}

impl HostConfig {
    pub const fn zeroed() -> Self {
        Self {
            mac: [0; 6],
            checks: 0,
            v4_count: 0,
            v6_count: 0,
            _pad: [0; 2],
            v4_flags: [0; HOST_ADDRS_V4],
            v6_flags: [0; HOST_ADDRS_V6],
            v4: [0; HOST_ADDRS_V4],
            v6: [[0; 4]; HOST_ADDRS_V6],
        }
    }
}

/// The one value of the heartbeat map: the agent's last sign of life and
/// how long the program answers without one.
///
/// The agent writes `at_ns` (CLOCK_MONOTONIC) every second. The program
/// reads the same clock coarsely (`bpf_ktime_get_coarse_ns`, a tick's
/// resolution, cheaper). When its now minus `at_ns` exceeds `hold_ns`, the program
/// answers nothing (every query passes up, `Counter::PassAgentGone`): a data
/// plane whose agent is gone stops answering from answer sets nobody keeps
/// true. All zero (never written): nothing is answered.
///
/// `unix_offset_ns` is CLOCK_REALTIME minus CLOCK_MONOTONIC (wrapping) as
/// the agent read them at the beat: the program's Unix time, for the
/// timestamps of DNS server cookies, is `bpf_ktime_get_coarse_ns() +
/// unix_offset_ns`. Refreshed with every beat, it follows the agent's
/// clock (NTP steps included) within a second.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Heartbeat {
    pub at_ns: u64,
    pub hold_ns: u64,
    pub unix_offset_ns: u64,
}

/// Key of a record map: a lowercased wire-format name and the query type.
///
/// `name` holds the name exactly as it is on the wire (length-prefixed labels
/// and the terminating zero), ASCII letters lowercased, every byte after the
/// terminating zero set to zero. `N` is the map's bucket (one of
/// [`RECORD_BUCKETS`], all even): N + 2 bytes, alignment 2, no padding.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordKey<const N: usize> {
    pub name: [u8; N],
    pub qtype: u16,
}

impl<const N: usize> RecordKey<N> {
    pub const fn zeroed() -> Self {
        Self {
            name: [0; N],
            qtype: 0,
        }
    }
}

/// Slots of the program's per-CPU answer cache: a power of two.
pub const ANSWER_CACHE_SLOTS: u32 = 256;
/// The answer cache's key: the first record bucket's key (name, type: 34
/// bytes) in 8-byte words, the last six bytes zero.
pub const ANSWER_CACHE_KEY_WORDS: usize = (RECORD_BUCKETS[0] + 2).div_ceil(8);

/// The answer cache slot of a key: a multiplicative hash. Names that
/// collide (an attacker can make them) only cost the lookups the cache
/// would have saved. Here so that tests can find names that share a slot.
#[inline(always)]
pub const fn answer_cache_slot(key: &[u64; ANSWER_CACHE_KEY_WORDS]) -> u32 {
    const MIX: [u64; ANSWER_CACHE_KEY_WORDS] = [
        0x9e37_79b9_7f4a_7c15,
        0xc2b2_ae3d_27d4_eb4f,
        0x1656_67b1_9e37_79f9,
        0x85eb_ca77_c2b2_ae63,
        0x27d4_eb2f_1656_67c5,
    ];
    let mut h: u64 = 0;
    let mut w = 0;
    while w < ANSWER_CACHE_KEY_WORDS {
        h = (h ^ key[w]).wrapping_mul(MIX[w]);
        w += 1;
    }
    (h >> 32) as u32 & (ANSWER_CACHE_SLOTS - 1)
}

/// Index in [`RECORD_BUCKETS`] (and [`MAP_RECORDS`]) of the map that keeps
/// a name of `wire_len` bytes (1..=255).
#[inline(always)]
pub const fn record_bucket(wire_len: usize) -> usize {
    if wire_len <= RECORD_BUCKETS[0] {
        0
    } else if wire_len <= RECORD_BUCKETS[1] {
        1
    } else if wire_len <= RECORD_BUCKETS[2] {
        2
    } else {
        3
    }
}

/// `AnswerSet::kind`: answer with the addresses.
pub const ANSWER_ADDRS: u16 = 0;
/// `AnswerSet::kind`: the name exists but has no record of this type: answer
/// NOERROR with the zone's SOA in the authority section (NODATA, RFC 2308).
pub const ANSWER_NODATA: u16 = 1;
/// `AnswerSet::kind`: answer with ONE address, picked per query at random with
/// probability proportional to its weight (`weights` holds running totals).
pub const ANSWER_WEIGHTED: u16 = 2;
/// `AnswerSet::kind`: answer SERVFAIL (a record whose policy says so when
/// every endpoint is down).
pub const ANSWER_SERVFAIL: u16 = 3;

/// Value of the record map: one (name, type)'s whole answer.
///
/// The agent writes it as a single map update so the kernel never sees half
/// an answer set. For `ANSWER_ADDRS`, `count` is 1..=16 for every value the
/// agent writes; the program passes a lookup with `count == 0` up the stack.
/// It may store more addresses than one answer carries (`limit`): each query
/// then gets the next window of them, so every stored address gets traffic.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AnswerSet {
    /// TTL of every answer RR, seconds.
    pub ttl: u32,
    /// Number of valid entries in `addrs`.
    pub count: u16,
    /// `ANSWER_ADDRS`, `ANSWER_NODATA`, `ANSWER_WEIGHTED` or `ANSWER_SERVFAIL`.
    pub kind: u16,
    /// Index of the zone in the zone map (its SOA, for NODATA).
    pub zone: u32,
    /// For `ANSWER_ADDRS`: addresses per answer, a window of `addrs[..count]`
    /// starting at a per-query rotating offset (wrapping). 0 or >= `count`:
    /// all of them.
    pub limit: u16,
    /// Zero. Keeps the layout free of implicit padding.
    pub _pad: u16,
    /// For `ANSWER_WEIGHTED`: running totals of the weights of `addrs[..count]`
    /// (`weights[i]` = sum of the weights of addresses 0..=i), every weight >= 1.
    pub weights: [u32; MAX_ANSWER_ADDRS],
    /// Addresses in network byte order: A records use the first 4 bytes,
    /// AAAA records all 16.
    pub addrs: [[u8; 16]; MAX_ANSWER_ADDRS],
}

impl AnswerSet {
    /// No addresses, kind `ANSWER_ADDRS`, `limit` = all: a writer that fills
    /// in only `count` and `addrs` gets every address in every answer.
    pub const fn empty() -> Self {
        Self {
            ttl: 0,
            count: 0,
            kind: ANSWER_ADDRS,
            zone: 0,
            limit: MAX_ANSWER_ADDRS as u16,
            _pad: 0,
            weights: [0; MAX_ANSWER_ADDRS],
            addrs: [[0; 16]; MAX_ANSWER_ADDRS],
        }
    }
}

/// Value of the zone map: the zone's SOA record as negative answers carry it,
/// pre-encoded by the agent so the kernel copies it with one helper call.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ZoneSoa {
    /// Wire length of the apex name. The owner of the SOA is written as a
    /// compression pointer to the question name's last `apex_len` bytes
    /// (every hot name lies inside its zone, so its tail is the apex).
    pub apex_len: u16,
    /// Bytes used in `rr`; 0 = no SOA (the program passes NODATA queries).
    pub rr_len: u16,
    /// One's complement sum of `rr[..rr_len]` as 16-bit words from an even
    /// offset (odd length padded with a zero byte), for the UDP checksum.
    pub rr_sum: u32,
    /// TYPE, CLASS, TTL, RDLENGTH, RDATA of the SOA record.
    pub rr: [u8; SOA_RR_MAX],
}

/// `RateLimit::flags`: answers are rate limited per source prefix.
pub const RATE_LIMIT_ON: u32 = 1;
/// `RateLimit::flags`: responses over the limit are only counted
/// (`Counter::RateLimited`), and answered as usual.
pub const RATE_LIMIT_LOG_ONLY: u32 = 2;

/// Most entries of the exempt trie (`[rate_limit] exempt`).
pub const MAX_RATE_EXEMPT: u32 = 1024;
/// log2 of [`RATE_SLOTS`].
pub const RATE_SLOT_BITS: u32 = 17;
/// Buckets of the kernel's rate table (`RATE_BUCKETS`), shared by the
/// CPUs: 131,072 of 32 bytes, 4 MiB. A source prefix may be held in
/// either bucket of the pair [`rate_slot`] picks (two-way set
/// associative); a newcomer takes the pair's quieter bucket over.
pub const RATE_SLOTS: u32 = 1 << RATE_SLOT_BITS;

/// The one value of the rate limit map: response rate limiting in the
/// kernel, as a generic cell rate algorithm (GCRA) per source prefix. All
/// zero (never written): off.
///
/// One state per prefix, shared by the CPUs and moved on by
/// compare-and-swap: `interval_ns` is the time one response costs (1 s /
/// rate), and `burst_ns` how far ahead of now a source's theoretical
/// arrival time may run (the window minus one interval). A response is
/// allowed when the prefix's time is at most `now + burst_ns`; it then
/// moves on by `interval_ns`.
///
/// Addresses are compared as IPv6, IPv4 mapped (`::ffff:a.b.c.d`); the
/// prefix of a source is its address AND the family's mask, whose bytes
/// `v4_mask` (the last 4 bytes of a mapped address) and `v6_mask` hold in
/// network order read as native-endian words. `_pad` is zero.
///
/// `seed` keys [`rate_slot`]: random, drawn afresh each time the agent
/// writes the value.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// `RATE_LIMIT_ON` | `RATE_LIMIT_LOG_ONLY`.
    pub flags: u32,
    /// Every `slip`th limited response of a prefix is sent as a TC=1 answer;
    /// 0: every limited response is dropped.
    pub slip: u32,
    pub interval_ns: u64,
    pub burst_ns: u64,
    pub v4_mask: u32,
    pub _pad: u32,
    pub v6_mask: [u32; 4],
    pub seed: u64,
}

impl RateLimit {
    pub const fn off() -> Self {
        Self {
            flags: 0,
            slip: 0,
            interval_ns: 0,
            burst_ns: 0,
            v4_mask: 0,
            _pad: 0,
            v6_mask: [0; 4],
            seed: 0,
        }
    }
}

/// A bucket of the kernel's rate table (`RATE_BUCKETS`, [`RATE_SLOTS`]
/// of them): one source prefix's rate state. 32 bytes, two to a 64-byte
/// cache line.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateBucket {
    /// The masked, IPv4-mapped source prefix whose state this is (its
    /// tag), as the words `RateLimit` describes.
    pub prefix: [u32; 4],
    /// Theoretical arrival time of the next response (CLOCK_MONOTONIC).
    pub tat_ns: u64,
    /// Limited responses so far (for `slip`). 64 bits: the atomic
    /// fetch-and-add the program counts it with.
    pub limited: u64,
}

/// The even slot of the bucket pair (`slot`, `slot | 1`) of the rate
/// table that may hold `prefix`'s state, under `seed` (`RateLimit::seed`).
///
/// A multiply-xor hash of the prefix's words, keyed by the seed, its high
/// bits taken: a few instructions, no call. Not a cryptographic MAC, but
/// without the seed (only the agent and the kernel know it) a spoofer cannot tell
/// which prefixes share a victim's pair, so cannot aim a flood of
/// newcomers at it to push the victim's state out.
#[inline(always)]
pub fn rate_slot(prefix: &[u32; 4], seed: u64) -> u32 {
    // Odd constants (SplitMix64's and the golden ratio's).
    const K0: u64 = 0x9e37_79b9_7f4a_7c15;
    const K1: u64 = 0xbf58_476d_1ce4_e5b9;
    const K2: u64 = 0x94d0_49bb_1331_11eb;
    let low = u64::from(prefix[0]) | u64::from(prefix[1]) << 32;
    let high = u64::from(prefix[2]) | u64::from(prefix[3]) << 32;
    let mut h = (seed ^ low).wrapping_mul(K0);
    h = (h ^ (h >> 32) ^ high).wrapping_mul(K1);
    h = (h ^ (h >> 29) ^ seed.rotate_left(32)).wrapping_mul(K2);
    // A last round: without it, runs of neighbouring prefixes spread
    // visibly less evenly than at random for some seeds.
    h = (h ^ (h >> 32)).wrapping_mul(K0);
    (h >> (64 - RATE_SLOT_BITS)) as u32 & !1
}

/// `CookieSecrets::mode`: never written (all zero): queries with a COOKIE
/// option pass up the stack (`Counter::PassCookie`), whose DNS server
/// answers them.
pub const COOKIES_PASS: u32 = 0;
/// `CookieSecrets::mode`: cookies are off in the agent's server, which
/// ignores COOKIE options; so does the program.
pub const COOKIES_IGNORE: u32 = 1;
/// `CookieSecrets::mode`: the program checks and issues server cookies
/// (RFC 7873, RFC 9018) with the secrets the agent's server uses.
pub const COOKIES_ANSWER: u32 = 2;

/// The one value of the cookie map: how the program treats COOKIE options
/// and, in `COOKIES_ANSWER` mode, the server secrets.
///
/// Each secret is the 16-byte SipHash-2-4 key as its two little-endian
/// 64-bit words (k0 from bytes 0..8, k1 from bytes 8..16, as SipHash
/// reads a key). `previous` is used only when `has_previous` is 1: a
/// cookie made before the last rotation is still accepted. Written by the
/// agent at start and at every rotation; unused fields are zero.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CookieSecrets {
    /// `COOKIES_PASS`, `COOKIES_IGNORE` or `COOKIES_ANSWER`.
    pub mode: u32,
    pub has_previous: u32,
    pub current: [u64; 2],
    pub previous: [u64; 2],
}

impl CookieSecrets {
    pub const fn pass() -> Self {
        Self {
            mode: COOKIES_PASS,
            has_previous: 0,
            current: [0; 2],
            previous: [0; 2],
        }
    }
}

/// Per-CPU packet counters, indexed by `Counter as u32`.
///
/// Every packet the XDP program sees increments exactly one of them (its
/// outcome), except that [`Counter::RateLimited`] is counted on top.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// Answered from the map with XDP_TX: NOERROR with addresses. NODATA
    /// and SERVFAIL answers have their own counters (metrics count answers
    /// per rcode).
    Answered = 0,
    /// Not IPv4/IPv6 (optionally behind one 802.1Q tag), not UDP, not
    /// destination port 53, sent to a multicast/broadcast address, or from a
    /// source the stack drops as martian (including, off loopback, this
    /// host's own addresses and the interface's broadcast addresses).
    PassNotDnsTransport = 1,
    /// UDP/53 we do not handle in the kernel: IPv4 options or fragments, IPv6
    /// extension headers.
    PassIpUnsupported = 2,
    /// A DNS message that is not a plain query: a response, opcode != QUERY,
    /// TC set, counts other than QD=1 AN=0 NS=0 AR<=1, EDNS version != 0.
    PassNotPlainQuery = 3,
    /// Lengths that lie, bad labels, compression in the question, a name over
    /// 255 bytes, additional record that is not a well-formed OPT, trailing bytes.
    PassMalformed = 4,
    /// Class other than IN or type other than A, AAAA and HTTPS.
    PassUnsupportedType = 5,
    /// Name and type not in the record map.
    PassNameNotInMap = 6,
    /// The answer would exceed 512 bytes (no EDNS) or the advertised size;
    /// userspace answers with TC=1.
    PassAnswerTooLarge = 7,
    /// The frame could not grow to hold the answer, neither at its tail nor at
    /// its head.
    PassNoTailroom = 8,
    /// Dropped: the frame was resized for the answer but is shorter than asked.
    /// Cannot happen short of a kernel bug; counted so it would be seen.
    DropResizeFailed = 9,
    /// Not addressed to this host's DNS service: the destination MAC is not
    /// the interface's (off loopback), or the destination address and port
    /// are not in the service map.
    PassNotForUs = 10,
    /// A query the program would answer whose UDP checksum is wrong, zero
    /// over IPv6, or (a full one over more than 1024 bytes) not verified in
    /// the kernel: the stack checks and drops it.
    PassBadChecksum = 11,
    /// A query the program would look up, passed because the agent's
    /// heartbeat is older than its hold (`Heartbeat`): no agent keeps the
    /// answer sets true.
    PassAgentGone = 12,
    /// Answered with XDP_TX: NODATA (NOERROR, no answer, the zone's SOA).
    AnsweredNodata = 13,
    /// Answered with XDP_TX: SERVFAIL (the record's `when_all_down`).
    AnsweredServfail = 14,

    // ---- Response rate limiting (`RateLimit`) ----
    /// Over its source's rate: sent as a minimal TC=1 answer (no records)
    /// instead of the answer, so a real resolver retries over TCP.
    RateLimitSlipped = 15,
    /// Over its source's rate: dropped (XDP_DROP), nothing sent.
    RateLimitDropped = 16,
    /// Over its source's rate and not exempt. Not an outcome: counted on
    /// top of the outcome (`RateLimitSlipped`, `RateLimitDropped`, or, in
    /// log-only mode, `Answered`).
    RateLimited = 17,

    // ---- DNS cookies ----
    /// A query carrying a COOKIE option (RFC 7873) the program leaves to
    /// the stack: no secret in the cookie map (`COOKIES_PASS`), a malformed
    /// length (userspace answers FORMERR), or more than one COOKIE option.
    PassCookie = 18,
}

/// Number of counters (length of the COUNTERS array).
pub const COUNTER_COUNT: u32 = 19;

impl Counter {
    pub const ALL: [Counter; COUNTER_COUNT as usize] = [
        Counter::Answered,
        Counter::PassNotDnsTransport,
        Counter::PassIpUnsupported,
        Counter::PassNotPlainQuery,
        Counter::PassMalformed,
        Counter::PassUnsupportedType,
        Counter::PassNameNotInMap,
        Counter::PassAnswerTooLarge,
        Counter::PassNoTailroom,
        Counter::DropResizeFailed,
        Counter::PassNotForUs,
        Counter::PassBadChecksum,
        Counter::PassAgentGone,
        Counter::AnsweredNodata,
        Counter::AnsweredServfail,
        Counter::RateLimitSlipped,
        Counter::RateLimitDropped,
        Counter::RateLimited,
        Counter::PassCookie,
    ];

    /// Stable name used in logs and metrics.
    pub const fn name(self) -> &'static str {
        match self {
            Counter::Answered => "answered",
            Counter::PassNotDnsTransport => "pass_not_dns_transport",
            Counter::PassIpUnsupported => "pass_ip_unsupported",
            Counter::PassNotPlainQuery => "pass_not_plain_query",
            Counter::PassMalformed => "pass_malformed",
            Counter::PassUnsupportedType => "pass_unsupported_type",
            Counter::PassNameNotInMap => "pass_name_not_in_map",
            Counter::PassAnswerTooLarge => "pass_answer_too_large",
            Counter::PassNoTailroom => "pass_no_tailroom",
            Counter::DropResizeFailed => "drop_resize_failed",
            Counter::PassNotForUs => "pass_not_for_us",
            Counter::PassBadChecksum => "pass_bad_checksum",
            Counter::PassAgentGone => "pass_agent_gone",
            Counter::AnsweredNodata => "answered_nodata",
            Counter::AnsweredServfail => "answered_servfail",
            Counter::RateLimitSlipped => "rate_limit_slipped",
            Counter::RateLimitDropped => "rate_limit_dropped",
            Counter::RateLimited => "rate_limited",
            Counter::PassCookie => "pass_cookie",
        }
    }

    /// What the program did with a packet counted here: `"tx"` (answered,
    /// or slipped), `"pass"` (up the stack) or `"drop"`; None for
    /// `RateLimited`, which is counted on top of an outcome.
    pub const fn verdict(self) -> Option<&'static str> {
        match self {
            Counter::Answered
            | Counter::AnsweredNodata
            | Counter::AnsweredServfail
            | Counter::RateLimitSlipped => Some("tx"),
            Counter::DropResizeFailed | Counter::RateLimitDropped => Some("drop"),
            Counter::RateLimited => None,
            _ => Some("pass"),
        }
    }
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: both are repr(C), Copy, contain only integers and byte arrays,
    // and have no padding (asserted below), so any bit pattern is valid.
    unsafe impl<const N: usize> aya::Pod for super::RecordKey<N> {}
    unsafe impl aya::Pod for super::AnswerSet {}
    unsafe impl aya::Pod for super::ZoneSoa {}
    unsafe impl aya::Pod for super::ServiceKey {}
    unsafe impl aya::Pod for super::HostConfig {}
    unsafe impl aya::Pod for super::Heartbeat {}
    unsafe impl aya::Pod for super::RateLimit {}
    unsafe impl aya::Pod for super::RateBucket {}
    unsafe impl aya::Pod for super::CookieSecrets {}
}

// No implicit padding: size equals the sum of the fields.
const _: () = assert!(core::mem::size_of::<RecordKey<32>>() == 32 + 2);
const _: () = assert!(core::mem::size_of::<RecordKey<64>>() == 64 + 2);
const _: () = assert!(core::mem::size_of::<RecordKey<128>>() == 128 + 2);
const _: () = assert!(core::mem::size_of::<RecordKey<NAME_KEY_LEN>>() == NAME_KEY_LEN + 2);
const _: () = assert!(RECORD_BUCKETS[3] == NAME_KEY_LEN && MAX_NAME_WIRE_LEN < NAME_KEY_LEN);
const _: () = assert!(core::mem::size_of::<AnswerSet>() == 16 + 20 * MAX_ANSWER_ADDRS);
const _: () = assert!(core::mem::size_of::<ZoneSoa>() == 8 + SOA_RR_MAX);
const _: () = assert!(core::mem::size_of::<ServiceKey>() == 16 + 2 + 1 + 1);
const _: () = assert!(
    core::mem::size_of::<HostConfig>()
        == 6 + 2
            + 1
            + 1
            + 2
            + HOST_ADDRS_V4
            + HOST_ADDRS_V6
            + 4 * HOST_ADDRS_V4
            + 16 * HOST_ADDRS_V6
);
// The program masks list indexes with `HOST_ADDRS_* - 1`.
const _: () = assert!(HOST_ADDRS_V4.is_power_of_two() && HOST_ADDRS_V6.is_power_of_two());
const _: () = assert!(core::mem::size_of::<Heartbeat>() == 24);
const _: () = assert!(core::mem::size_of::<CookieSecrets>() == 4 + 4 + 16 + 16);
const _: () = assert!(core::mem::size_of::<RateLimit>() == 4 + 4 + 8 + 8 + 4 + 4 + 16 + 8);
const _: () = assert!(core::mem::size_of::<RateBucket>() == 16 + 8 + 8);
// Two buckets to a cache line; the pair index masks with `!1`.
const _: () = assert!(2 * core::mem::size_of::<RateBucket>() == 64 && RATE_SLOTS >= 2);
