//! Seeded, deterministic DNS query generation and frame mutation for the
//! kernel/userspace differential test and the XDP mutation fuzzer.
//!
//! [`test_config`] is the configuration both answering paths are fed; its
//! names (hot names, apexes, nameservers, empty non-terminals) become a
//! [`Universe`] from which [`QueryGen`] draws queries of every shape the
//! fast path may see: names in and out of zones, names under hot names, long
//! names near 255 bytes, random case (0x20), every query type of interest,
//! class IN and others, EDNS on and off with various sizes and the DO bit,
//! RD/CD, IPv4 and IPv6, an 802.1Q tag or not. [`mutate`] breaks frames in
//! the ways a fuzzer should: bit flips, truncation, extension, lengths that
//! lie or are kept consistent.
//!
//! No external RNG crate: [`Rng`] is SplitMix64, so a seed names a run on any
//! machine and any toolchain.

use std::collections::{BTreeSet, HashSet};
use std::fmt;

use failover_agent::config::Config;
use failover_agent::policy::{Rules, State, decide};
use failover_agent::publish::{Publisher, publish_all_healthy};
use failover_agent::serve::Entry;

use crate::packets::{Opt, Query, internet_checksum, wire_name};

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, fast, and statistically fine
/// for test-case generation.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`), by multiply-shift (no modulo bias worth
    /// mentioning at these sizes).
    pub fn below(&mut self, n: usize) -> usize {
        assert!(n > 0, "below(0)");
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u32) -> bool {
        self.below(100) < percent as usize
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// Index into `weights`, chosen with probability proportional to each weight.
    pub fn weighted(&mut self, weights: &[u32]) -> usize {
        let total: u32 = weights.iter().sum();
        let mut x = self.below(total as usize) as u32;
        for (i, w) in weights.iter().enumerate() {
            if x < *w {
                return i;
            }
            x -= w;
        }
        unreachable!("x < total")
    }

    pub fn byte(&mut self) -> u8 {
        self.next_u64() as u8
    }

    pub fn u16(&mut self) -> u16 {
        self.next_u64() as u16
    }
}

/// The seed in environment variable `var` (decimal, `0x` hex, or `random`
/// for one from the clock), else `default`. Panics on anything else, so a
/// typo never silently runs the default.
pub fn seed_from_env(var: &str, default: u64) -> u64 {
    match std::env::var(var) {
        Err(_) => default,
        Ok(s) => parse_seed(&s).unwrap_or_else(|| {
            panic!("{var}={s:?} is not a seed: use a decimal number, 0x-hex or \"random\"")
        }),
    }
}

/// A count from environment variable `var` (decimal, `_` allowed), else `default`.
pub fn count_from_env(var: &str, default: u64) -> u64 {
    match std::env::var(var) {
        Err(_) => default,
        Ok(s) => s
            .replace('_', "")
            .parse()
            .unwrap_or_else(|_| panic!("{var}={s:?} is not a count")),
    }
}

/// A seed: decimal, `0x` hex (`_` allowed in both), or `random` (from the clock).
pub fn parse_seed(s: &str) -> Option<u64> {
    let s = s.trim();
    if s == "random" {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?
            .as_nanos();
        return Some(nanos as u64 ^ u64::from(std::process::id()) << 32);
    }
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(&hex.replace('_', ""), 16).ok(),
        None => s.replace('_', "").parse().ok(),
    }
}

// ---------------------------------------------------------------------------
// The configuration under test.

/// A label of `len` bytes (letters and digits), deterministic.
fn filler(seed: char, len: usize) -> String {
    let alphabet = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let start = alphabet.iter().position(|&b| b == seed as u8).unwrap_or(0);
    (0..len)
        .map(|i| alphabet[(start + i) % alphabet.len()] as char)
        .collect()
}

/// A name ending in `suffix` whose wire form is exactly `wire_len` bytes.
fn name_of_wire_len(prefix_seed: char, suffix: &str, wire_len: usize) -> String {
    let mut rem = wire_len - wire_name(suffix).len();
    let mut labels = Vec::new();
    let mut seed = prefix_seed;
    while rem > 0 {
        // A label costs len + 1; never leave 1 byte, which no label fills.
        let mut len = (rem - 1).min(63);
        if rem - (len + 1) == 1 {
            len -= 1;
        }
        labels.push(filler(seed, len));
        seed = ((seed as u8 - b'a' + 1) % 26 + b'a') as char;
        rem -= len + 1;
    }
    labels.push(suffix.trim_end_matches('.').to_string());
    format!("{}.", labels.join("."))
}

/// The long zone's origin: 101 wire bytes, so that names in it near 255
/// bytes and its SOA (long MNAME and RNAME) stress every size limit.
pub fn long_zone() -> String {
    format!("{}.{}.long.test.", filler('l', 48), filler('z', 45))
}

/// The TOML of the configuration under test: four zones (one nested in
/// another, one with a mixed-case origin, one with a long apex and a SOA of
/// 530 bytes) with SOA and NS; records with A only, AAAA only and both; 1 to
/// 16 endpoints, every policy (failover, all-healthy, weighted), priorities,
/// TTL overrides, every `when_all_down`; names of exactly 255 wire bytes; a
/// record at a zone apex and one under empty non-terminals.
pub fn test_config_toml() -> String {
    let long_zone = long_zone();
    // MNAME and RNAME of 250 bytes each: a SOA record of 10 + 250 + 250 + 20 =
    // 530 bytes (the kernel holds up to 544).
    let long_mname = name_of_wire_len('m', &long_zone, 250);
    let long_rname = name_of_wire_len('r', &long_zone, 250);
    let max_name = name_of_wire_len('a', "example.test.", 255);
    let name_247 = name_of_wire_len('q', "example.test.", 247);
    let long_hot = name_of_wire_len('h', &long_zone, 255);
    let v4_pool: Vec<String> = (1..=16)
        .map(|i| format!("{{ address = \"192.0.2.{}\" }}", 100 + i))
        .collect();
    let v6_pool: Vec<String> = (1..=16)
        .map(|i| format!("{{ address = \"2001:db8:0:16::{i:x}\" }}"))
        .collect();
    let v4_pool = v4_pool.join(", ");
    let v6_pool = v6_pool.join(", ");
    format!(
        r#"# The differential test's configuration (tests/support/gen.rs).
[server]
mode = "authoritative"
listen = ["127.0.0.1:53"]

[[zone]]
origin = "example.test."
ttl = 30
mname = "ns1.example.test."
rname = "hostmaster.example.test."
serial = 2026112301
refresh = 3600
retry = 600
expire = 604800
minimum = 60
soa_ttl = 45
nameservers = [
  {{ name = "ns1.example.test.", addresses = ["192.0.2.53", "2001:db8::53"] }},
  {{ name = "ns2.example.test.", addresses = ["198.51.100.53"] }},
  {{ name = "ns.elsewhere.invalid." }},
]

[[zone]]
origin = "sub.example.test."
ttl = 20
serial = 7
minimum = 10
soa_ttl = 3600
nameservers = [
  {{ name = "ns1.example.test.", addresses = ["192.0.2.53", "2001:db8::53"] }},
  {{ name = "ns6.sub.example.test.", addresses = ["2001:db8::6", "2001:db8::7"] }},
]

[[zone]]
origin = "Other.TEST."
ttl = 300
rname = "dns-admin@other.test"
minimum = 3600
nameservers = [{{ name = "ns.elsewhere.invalid." }}]

[[zone]]
origin = "{long_zone}"
ttl = 5
mname = "{long_mname}"
rname = "{long_rname}"
serial = 4294967295
refresh = 2147483647
retry = 0
expire = 1
minimum = 0
soa_ttl = 9
nameservers = [{{ name = "ns.elsewhere.invalid." }}]

[[record]]
name = "www.example.test."
type = "A"
policy = "failover"
check = "tcp"
endpoints = [{{ address = "192.0.2.10", priority = 1 }}, {{ address = "192.0.2.11", priority = 2 }}]

[[record]]
name = "v6.example.test."
type = "AAAA"
policy = "all-healthy"
check = "tcp"
endpoints = [{{ address = "2001:db8::10" }}, {{ address = "2001:db8:ffff::abcd:11" }}]
ttl = 120

[[record]]
name = "dual.example.test."
type = "A"
policy = "all-healthy"
check = "tcp"
endpoints = [{{ address = "192.0.2.21" }}, {{ address = "192.0.2.22", priority = 5 }}, {{ address = "192.0.2.23" }}]

[[record]]
name = "Dual.Example.Test."
type = "AAAA"
policy = "failover"
check = "tcp"
endpoints = [
  {{ address = "2001:db8::21", priority = 1 }}, {{ address = "2001:db8::22", priority = 1 }},
  {{ address = "2001:db8::23", priority = 2 }}, {{ address = "2001:db8::24", priority = 2 }},
]
ttl = 15

[[record]]
name = "pool.example.test."
type = "A"
policy = "all-healthy"
check = "tcp"
endpoints = [{v4_pool}]
ttl = 60
max_answers = 16

[[record]]
name = "pool6.example.test."
type = "AAAA"
policy = "all-healthy"
check = "tcp"
endpoints = [{v6_pool}]
max_answers = 16

[[record]]
name = "example.test."
type = "A"
policy = "failover"
check = "tcp"
endpoints = [{{ address = "192.0.2.1" }}]
ttl = 3600

[[record]]
name = "a.b.c.example.test."
type = "A"
policy = "failover"
check = "tcp"
endpoints = [{{ address = "192.0.2.31" }}]

[[record]]
name = "_svc.x-1.example.test."
type = "AAAA"
policy = "failover"
check = "tcp"
endpoints = [{{ address = "2001:db8::31" }}]
ttl = 0

[[record]]
name = "{max_name}"
type = "A"
policy = "all-healthy"
check = "tcp"
endpoints = [{{ address = "192.0.2.41" }}, {{ address = "192.0.2.42" }}]

[[record]]
name = "{max_name}"
type = "AAAA"
policy = "all-healthy"
check = "tcp"
endpoints = [{v6_pool}]
max_answers = 16

[[record]]
name = "{name_247}"
type = "A"
policy = "all-healthy"
check = "tcp"
endpoints = [{v4_pool}]
ttl = 5
max_answers = 16

[[record]]
name = "api.sub.example.test."
type = "A"
policy = "failover"
check = "tcp"
endpoints = [{{ address = "192.0.2.51" }}]

[[record]]
name = "api.sub.example.test."
type = "AAAA"
policy = "failover"
check = "tcp"
endpoints = [{{ address = "2001:db8::51" }}]

[[record]]
name = "Mail.Other.TEST."
type = "A"
policy = "failover"
check = "tcp"
endpoints = [{{ address = "203.0.113.25" }}, {{ address = "203.0.113.26" }}]

[[record]]
name = "h.{long_zone}"
type = "A"
policy = "failover"
check = "tcp"
endpoints = [{{ address = "203.0.113.61" }}]

[[record]]
name = "{long_hot}"
type = "AAAA"
policy = "failover"
check = "tcp"
endpoints = [{{ address = "2001:db8::61" }}]

[[record]]
name = "w.example.test."
type = "A"
policy = "weighted"
check = "tcp"
endpoints = [{{ address = "192.0.2.71", weight = 1 }}, {{ address = "192.0.2.72", weight = 3 }}, {{ address = "192.0.2.73", weight = 0 }}]

[[record]]
name = "W6.example.test."
type = "AAAA"
policy = "weighted"
check = "tcp"
endpoints = [{{ address = "2001:db8::71", weight = 10 }}, {{ address = "2001:db8::72", weight = 10 }}, {{ address = "2001:db8::73", weight = 20 }}]
ttl = 10

# All endpoints of the following are down in the fed state (see `feed`).
[[record]]
name = "down.example.test."
type = "A"
policy = "failover"
check = "tcp"
endpoints = [{{ address = "192.0.2.81" }}]
when_all_down = "servfail"

[[record]]
name = "gone.example.test."
type = "AAAA"
policy = "all-healthy"
check = "tcp"
endpoints = [{{ address = "2001:db8::81" }}]
when_all_down = "nodata"

[[record]]
name = "sorry.example.test."
type = "A"
policy = "failover"
check = "tcp"
endpoints = [{{ address = "192.0.2.91" }}]
ttl = 60
degraded_ttl = 5
when_all_down = "fallback"
fallback = ["192.0.2.99", "192.0.2.98"]

[[record]]
name = "open.example.test."
type = "A"
policy = "failover"
check = "tcp"
endpoints = [{{ address = "192.0.2.95", priority = 1 }}, {{ address = "192.0.2.96", priority = 2 }}]
degraded_ttl = 3

[checks.tcp]
kind = "tcp"
port = 80
"#
    )
}

/// [`test_config_toml`], parsed and validated by the agent's own parser.
pub fn test_config() -> Config {
    Config::parse(&test_config_toml(), "differential test configuration")
        .unwrap_or_else(|e| panic!("the differential test configuration is invalid: {e}"))
}

/// Records of [`test_config`] whose endpoints are all down in the state
/// [`feed`] writes, so that each `when_all_down` (SERVFAIL, NODATA, fallback,
/// fail-open) is answered too.
pub const ALL_DOWN: [&str; 4] = [
    "down.example.test.",
    "gone.example.test.",
    "sorry.example.test.",
    "open.example.test.",
];

/// Feeds `target` what the agent writes for `config` when every endpoint is
/// healthy (`publish_all_healthy`), except the records named in [`ALL_DOWN`],
/// whose endpoints are all down: their answer is then the agent's own
/// decision for that state. Both answering paths get exactly these calls.
pub fn feed(config: &Config, target: &mut impl Publisher) -> anyhow::Result<()> {
    publish_all_healthy(config, target)?;
    for record in &config.records {
        if !ALL_DOWN
            .iter()
            .any(|n| n.eq_ignore_ascii_case(&record.name))
        {
            continue;
        }
        let states = vec![State::Unhealthy; record.endpoints.len()];
        let decision = decide(&Rules::of(record), &states).expect("every state is known");
        // As the agent's run loop writes a decision.
        let entry = Entry::new(record.zone as u32, decision.ttl, decision.answer);
        target.put(&record.name, record.rtype.code(), &entry)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Names.

/// Where a generated name lies relative to the configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NameKind {
    /// A name with records (in the kernel map).
    Hot,
    Apex,
    /// A nameserver's name inside a zone (static addresses, not in the map).
    Nameserver,
    /// A name between a record and its apex.
    EmptyNonTerminal,
    /// A name in a zone that does not exist.
    UnknownInZone,
    /// A name under a hot name (does not exist).
    BelowHot,
    /// In no configured zone.
    Outside,
    /// 230 to 262 bytes in wire format, in a zone.
    Long,
}

impl NameKind {
    pub const ALL: [NameKind; 8] = [
        NameKind::Hot,
        NameKind::Apex,
        NameKind::Nameserver,
        NameKind::EmptyNonTerminal,
        NameKind::UnknownInZone,
        NameKind::BelowHot,
        NameKind::Outside,
        NameKind::Long,
    ];
}

/// The names of a configuration, by kind.
#[derive(Clone, Debug)]
pub struct Universe {
    pub hot: Vec<String>,
    pub apexes: Vec<String>,
    pub nameservers: Vec<String>,
    pub empty_non_terminals: Vec<String>,
    /// Lowercased wire names of `hot`.
    hot_keys: HashSet<Vec<u8>>,
}

/// Lowercased text of a dotted name, absolute.
fn lower(name: &str) -> String {
    let n = name.to_ascii_lowercase();
    if n.ends_with('.') { n } else { format!("{n}.") }
}

/// Is `name` equal to or below `origin` (both lowercased, absolute)?
fn is_in(name: &str, origin: &str) -> bool {
    origin == "." || name == origin || name.ends_with(&format!(".{origin}"))
}

impl Universe {
    pub fn of(config: &Config) -> Universe {
        let hot: Vec<String> = config.hot_names().into_iter().map(|h| h.name).collect();
        let apexes: Vec<String> = config.zones.iter().map(|z| z.origin.clone()).collect();
        let lowered_apexes: Vec<String> = apexes.iter().map(|a| lower(a)).collect();
        let mut nameservers = BTreeSet::new();
        for zone in &config.zones {
            for ns in &zone.nameservers {
                let n = lower(&ns.name);
                if lowered_apexes.iter().any(|a| is_in(&n, a)) {
                    nameservers.insert(ns.name.clone());
                }
            }
        }
        // Names strictly between a record (or in-zone nameserver) and the
        // apex of its zone that are not themselves names with data.
        let existing: HashSet<String> = hot
            .iter()
            .chain(&apexes)
            .chain(&nameservers)
            .map(|n| lower(n))
            .collect();
        let mut ents = BTreeSet::new();
        for name in hot.iter().chain(&nameservers) {
            let n = lower(name);
            let Some(apex) = lowered_apexes
                .iter()
                .filter(|a| is_in(&n, a))
                .max_by_key(|a| a.len())
            else {
                continue;
            };
            let mut rest = n.as_str();
            while let Some((_, parent)) = rest.split_once('.') {
                if parent.len() <= apex.len() {
                    break;
                }
                if !existing.contains(parent) {
                    ents.insert(parent.to_string());
                }
                rest = parent;
            }
        }
        let hot_keys = hot.iter().map(|n| wire_name(&lower(n))).collect();
        Universe {
            hot,
            apexes,
            nameservers: nameservers.into_iter().collect(),
            empty_non_terminals: ents.into_iter().collect(),
            hot_keys,
        }
    }

    /// Is the wire name `qname` (any case) a hot name?
    pub fn is_hot(&self, qname: &[u8]) -> bool {
        self.hot_keys.contains(&qname.to_ascii_lowercase())
    }
}

// ---------------------------------------------------------------------------
// Queries.

pub const TYPE_A: u16 = 1;
pub const TYPE_NS: u16 = 2;
pub const TYPE_SOA: u16 = 6;
pub const TYPE_MX: u16 = 15;
pub const TYPE_TXT: u16 = 16;
pub const TYPE_AAAA: u16 = 28;
pub const TYPE_SVCB: u16 = 64;
pub const TYPE_HTTPS: u16 = 65;
pub const TYPE_ANY: u16 = 255;

/// Mnemonic of a query type, for reports.
pub fn type_name(qtype: u16) -> String {
    match qtype {
        TYPE_A => "A".into(),
        TYPE_NS => "NS".into(),
        5 => "CNAME".into(),
        TYPE_SOA => "SOA".into(),
        12 => "PTR".into(),
        TYPE_MX => "MX".into(),
        TYPE_TXT => "TXT".into(),
        TYPE_AAAA => "AAAA".into(),
        43 => "DS".into(),
        TYPE_SVCB => "SVCB".into(),
        TYPE_HTTPS => "HTTPS".into(),
        252 => "AXFR".into(),
        TYPE_ANY => "ANY".into(),
        257 => "CAA".into(),
        other => format!("TYPE{other}"),
    }
}

/// One generated query and what it is.
#[derive(Clone, Debug)]
pub struct Generated {
    /// Sequence number in the run.
    pub index: u64,
    pub query: Query,
    pub kind: NameKind,
}

impl Generated {
    /// The DNS message as sent.
    pub fn message(&self) -> Vec<u8> {
        self.query.message()
    }
}

impl fmt::Display for Generated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let q = &self.query;
        write!(
            f,
            "#{} {:?} {} {} class {} over {}",
            self.index,
            self.kind,
            name_text(&q.qname),
            type_name(q.qtype),
            q.qclass,
            if q.ipv6 { "IPv6" } else { "IPv4" },
        )?;
        if let Some(tci) = q.vlan {
            write!(f, " VLAN {tci:#06x}")?;
        }
        write!(f, ", id {:#06x}, flags {:#06x}", q.id, q.flags)?;
        match &q.opt {
            None => write!(f, ", no EDNS"),
            Some(o) => write!(
                f,
                ", EDNS v{} size {}{}{}",
                o.version,
                o.udp_size,
                if o.dnssec_ok { " DO" } else { "" },
                if o.options.is_empty() {
                    String::new()
                } else {
                    format!(" options {}", crate::compare::hex(&o.options))
                }
            ),
        }
    }
}

/// Dotted text of a wire name (printable bytes as they are, others escaped).
pub fn name_text(wire: &[u8]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < wire.len() {
        let len = wire[i] as usize;
        if len == 0 {
            break;
        }
        for &b in wire.iter().skip(i + 1).take(len) {
            if b.is_ascii_graphic() && b != b'.' && b != b'\\' {
                out.push(b as char);
            } else {
                out.push_str(&format!("\\{b:03}"));
            }
        }
        out.push('.');
        i += 1 + len;
    }
    if out.is_empty() { ".".into() } else { out }
}

/// Draws queries from a [`Universe`], deterministically from a seed.
pub struct QueryGen {
    rng: Rng,
    universe: Universe,
    zones: Vec<String>,
    next: u64,
}

const LABEL_CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_";

impl QueryGen {
    pub fn new(universe: Universe, seed: u64) -> QueryGen {
        let zones = universe.apexes.clone();
        QueryGen {
            rng: Rng::new(seed),
            universe,
            zones,
            next: 0,
        }
    }

    pub fn rng(&mut self) -> &mut Rng {
        &mut self.rng
    }

    pub fn universe(&self) -> &Universe {
        &self.universe
    }

    /// The next query, of any kind.
    pub fn generate(&mut self) -> Generated {
        self.generate_with(false)
    }

    /// The next query, of the kind the kernel answers: a hot name, type A,
    /// AAAA or HTTPS, class IN, no EDNS or EDNS version 0 (it may still be
    /// too large for the kernel). What a mutation fuzzer starts from.
    pub fn generate_answerable(&mut self) -> Generated {
        self.generate_with(true)
    }

    fn generate_with(&mut self, answerable: bool) -> Generated {
        let index = self.next;
        self.next += 1;
        let kind = if answerable {
            NameKind::Hot
        } else {
            NameKind::ALL[self.rng.weighted(&[45, 6, 4, 4, 12, 7, 10, 12])]
        };
        let name = self.name(kind);
        let mut qname = wire_name(&name);
        if self.rng.chance(50) {
            randomize_case(&mut qname, &mut self.rng);
        }
        let weights: &[u32] = if answerable {
            &[34, 33, 33]
        } else {
            &[24, 20, 20, 6, 6, 6, 6, 5, 5, 2]
        };
        let qtype = match self.rng.weighted(weights) {
            0 => TYPE_A,
            1 => TYPE_AAAA,
            2 => TYPE_HTTPS,
            3 => TYPE_MX,
            4 => TYPE_TXT,
            5 => TYPE_SOA,
            6 => TYPE_NS,
            7 => TYPE_SVCB,
            8 => TYPE_ANY,
            _ => *self.rng.pick(&[5, 12, 43, 252, 257, 0, 0xff00]),
        };
        let qclass = match self
            .rng
            .weighted(if answerable { &[1, 0, 0] } else { &[95, 4, 1] })
        {
            0 => 1,
            1 => 3,
            _ => 255,
        };
        let mut flags = 0;
        if self.rng.chance(70) {
            flags |= 0x0100; // RD
        }
        if self.rng.chance(15) {
            flags |= 0x0010; // CD
        }
        if self.rng.chance(8) {
            flags |= 0x0020; // AD (RFC 6840 5.7: the client understands AD)
        }
        let opt = if self.rng.chance(35) {
            None
        } else {
            let udp_size = match self.rng.weighted(&[10, 15, 35, 25, 10, 5]) {
                0 => self.rng.range(0, 511) as u16,
                1 => 512,
                2 => 1232,
                3 => 4096,
                4 => self.rng.range(513, 1231) as u16,
                _ => *self.rng.pick(&[1400, 8192, 65535]),
            };
            let options = match self.rng.weighted(&[80, 10, 5, 5]) {
                0 => Vec::new(),
                // A well-formed Client Subnet (RFC 7871), as some resolvers send.
                3 => {
                    let (family, max) = if self.rng.chance(50) {
                        (1, 32)
                    } else {
                        (2, 128)
                    };
                    let prefix = self.rng.range(0, max);
                    let addr_len = prefix.div_ceil(8);
                    let mut o = vec![0, 8, 0, (4 + addr_len) as u8, 0, family, prefix as u8, 0];
                    let mut addr: Vec<u8> = (0..addr_len).map(|_| self.rng.byte()).collect();
                    // Bits beyond the prefix must be zero.
                    if !prefix.is_multiple_of(8) {
                        let last = addr.len() - 1;
                        addr[last] &= 0xffu8 << (8 - prefix % 8);
                    }
                    o.extend(addr);
                    o
                }
                // A COOKIE option (RFC 7873): mostly a client cookie, as
                // resolvers send first; then with a server cookie (not
                // ours: the test may replace it with a valid one), and
                // now and then a malformed length (FORMERR).
                1 => {
                    let len = match self.rng.weighted(&[70, 25, 5]) {
                        0 => 8,
                        1 => 24,
                        _ => *self.rng.pick(&[0, 5, 12, 41]),
                    };
                    let mut o = vec![0, 10, 0, len as u8];
                    o.extend((0..len).map(|_| self.rng.byte()));
                    o
                }
                // Padding (RFC 7830) of a random length.
                _ => {
                    let len = self.rng.range(0, 40);
                    let mut o = vec![0, 12, 0, len as u8];
                    o.extend(std::iter::repeat_n(0, len));
                    o
                }
            };
            Some(Opt {
                udp_size,
                version: if !answerable && self.rng.chance(3) {
                    1
                } else {
                    0
                },
                dnssec_ok: self.rng.chance(40),
                options,
                rdlen: None,
            })
        };
        let mut query = Query::a(".");
        query.id = self.rng.u16();
        query.flags = flags;
        query.qname = qname;
        query.qtype = qtype;
        query.qclass = qclass;
        query.opt = opt;
        query.ipv6 = self.rng.chance(50);
        if self.rng.chance(25) {
            // Any PCP and DEI, a VLAN id of 1..=4094.
            let vid = self.rng.range(1, 4094) as u16;
            query.vlan = Some((self.rng.u16() & 0xf000) | vid);
        }
        Generated { index, query, kind }
    }

    fn label(&mut self, min: usize, max: usize) -> String {
        let len = self.rng.range(min, max);
        (0..len)
            .map(|_| *self.rng.pick(LABEL_CHARS) as char)
            .collect()
    }

    fn zone(&mut self) -> String {
        self.rng.pick(&self.zones).clone()
    }

    fn name(&mut self, kind: NameKind) -> String {
        let u = &self.universe;
        match kind {
            NameKind::Hot => self.rng.pick(&u.hot).clone(),
            NameKind::Apex => self.rng.pick(&u.apexes).clone(),
            NameKind::Nameserver if !u.nameservers.is_empty() => {
                self.rng.pick(&u.nameservers).clone()
            }
            NameKind::EmptyNonTerminal if !u.empty_non_terminals.is_empty() => {
                self.rng.pick(&u.empty_non_terminals).clone()
            }
            NameKind::BelowHot => {
                let hot = self.rng.pick(&u.hot).clone();
                let label = self.label(1, 12);
                let name = format!("{label}.{hot}");
                if wire_name(&name).len() <= 255 {
                    name
                } else {
                    // Under the longest hot names nothing fits; one level
                    // under the zone instead.
                    format!("{label}.{}", self.zone())
                }
            }
            NameKind::Outside => match self.rng.below(8) {
                0 => ".".into(),
                1 => "test.".into(),
                2 => "example.".into(),
                3 => "xample.test.".into(),
                4 => "www.example.test.evil.".into(),
                5 => format!("www.example.{}.", self.label(2, 6)),
                6 => format!("{}.invalid.", self.label(1, 20)),
                _ => format!("{}.{}.", self.label(1, 30), self.label(2, 10)),
            },
            NameKind::Long => {
                let wire_len = if self.rng.chance(90) {
                    self.rng.range(230, 255)
                } else {
                    self.rng.range(256, 262)
                };
                let zone = self.zone();
                self.name_of_len(&zone, wire_len)
            }
            // Unknown in a zone (also the fallback for empty lists).
            _ => {
                let zone = self.zone();
                if self.rng.chance(20) {
                    let (a, b) = (self.label(1, 10), self.label(1, 10));
                    format!("{a}.{b}.{zone}")
                } else {
                    format!("{}.{zone}", self.label(1, 20))
                }
            }
        }
    }

    /// A random name under `suffix` of exactly `wire_len` wire bytes (as
    /// close as the suffix allows).
    fn name_of_len(&mut self, suffix: &str, wire_len: usize) -> String {
        let mut rem = wire_len.saturating_sub(wire_name(suffix).len());
        let mut labels = Vec::new();
        while rem > 1 {
            let max = (rem - 1).min(63);
            let mut len = if rem - 1 <= 63 && self.rng.chance(50) {
                rem - 1
            } else {
                self.rng.range(1, max)
            };
            if rem - (len + 1) == 1 {
                len = if len > 1 { len - 1 } else { len + 1 };
            }
            labels.push(self.label(len, len));
            rem -= len + 1;
        }
        labels.push(suffix.trim_end_matches('.').to_string());
        format!("{}.", labels.join("."))
    }
}

/// Flips the case of each ASCII letter in the labels of `wire` with
/// probability 1/2 (DNS 0x20, as resolvers do).
pub fn randomize_case(wire: &mut [u8], rng: &mut Rng) {
    let mut i = 0;
    while i < wire.len() {
        let len = wire[i] as usize;
        if len == 0 || len > 63 {
            break;
        }
        for b in wire.iter_mut().skip(i + 1).take(len) {
            if b.is_ascii_alphabetic() && rng.chance(50) {
                *b ^= 0x20;
            }
        }
        i += 1 + len;
    }
}

// ---------------------------------------------------------------------------
// Mutation.

/// Where the headers of a generated frame are.
#[derive(Clone, Copy, Debug)]
pub struct Layout {
    /// Offset of the IP header.
    pub l3: usize,
    pub v6: bool,
}

impl Layout {
    pub fn of(query: &Query) -> Layout {
        Layout {
            l3: if query.vlan.is_some() { 18 } else { 14 },
            v6: query.ipv6,
        }
    }

    /// Offset of the UDP header.
    pub fn l4(&self) -> usize {
        self.l3 + if self.v6 { 40 } else { 20 }
    }

    /// Offset of the DNS message.
    pub fn dns(&self) -> usize {
        self.l4() + 8
    }
}

/// Sets the IP length (and the IPv4 header checksum) and/or the UDP length
/// to what the frame now carries.
pub fn fix_lengths(frame: &mut [u8], layout: Layout, ip: bool, udp: bool) {
    let (l3, l4) = (layout.l3, layout.l4());
    if frame.len() < l4 + 8 {
        return;
    }
    if ip {
        if layout.v6 {
            let payload = (frame.len() - l3 - 40) as u16;
            frame[l3 + 4..l3 + 6].copy_from_slice(&payload.to_be_bytes());
        } else {
            let total = (frame.len() - l3) as u16;
            frame[l3 + 2..l3 + 4].copy_from_slice(&total.to_be_bytes());
            frame[l3 + 10..l3 + 12].copy_from_slice(&[0, 0]);
            let csum = internet_checksum(&frame[l3..l3 + 20]);
            frame[l3 + 10..l3 + 12].copy_from_slice(&csum.to_be_bytes());
        }
    }
    if udp {
        let len = (frame.len() - l4) as u16;
        frame[l4 + 4..l4 + 6].copy_from_slice(&len.to_be_bytes());
    }
}

const ETH_HEADER_LEN: usize = 14;

/// Bytes a fuzzer should try in DNS fields: label lengths at and beyond 63,
/// compression and extended label types, a dot, case bits.
const INTERESTING: &[u8] = &[
    0x00, 0x01, 0x02, 0x3f, 0x40, 0x41, 0x7f, 0x80, 0xc0, 0xc1, 0xff, b'.', b'A', b'z', 0x29,
];

/// Applies 1 to 3 random mutations to `frame` (built with `layout`); returns
/// the mutant and what was done to it.
pub fn mutate(frame: &[u8], layout: Layout, rng: &mut Rng) -> (Vec<u8>, String) {
    let mut f = frame.to_vec();
    let mut what = Vec::new();
    let rounds = rng.range(1, 3);
    for _ in 0..rounds {
        let dns = layout.dns().min(f.len());
        // Mostly inside the DNS message, sometimes anywhere in the frame.
        let pos = |rng: &mut Rng, len: usize| {
            if len > dns && rng.chance(80) {
                rng.range(dns, len - 1)
            } else {
                rng.below(len.max(1))
            }
        };
        match rng.weighted(&[30, 14, 6, 8, 6, 10, 6, 6, 8, 6]) {
            0 => {
                let at = pos(rng, f.len());
                let bit = rng.below(8);
                if at < f.len() {
                    f[at] ^= 1 << bit;
                }
                what.push(format!("flip bit {bit} of byte {at}"));
            }
            1 => {
                let at = pos(rng, f.len());
                let v = if rng.chance(70) {
                    *rng.pick(INTERESTING)
                } else {
                    rng.byte()
                };
                if at < f.len() {
                    f[at] = v;
                }
                what.push(format!("byte {at} = {v:#04x}"));
            }
            2 => {
                // No shorter than an Ethernet header: BPF_PROG_TEST_RUN
                // refuses those, and no driver hands them to XDP.
                let to = rng.range(ETH_HEADER_LEN, f.len().max(ETH_HEADER_LEN));
                f.truncate(to);
                what.push(format!("truncate frame to {to}"));
            }
            3 => {
                let to = rng.range(dns, f.len().max(dns));
                f.truncate(to);
                fix_lengths(&mut f, layout, true, true);
                what.push(format!("truncate frame to {to}, lengths fixed"));
            }
            4 => {
                let n = rng.range(1, 40);
                f.extend((0..n).map(|_| rng.byte()));
                what.push(format!("append {n} bytes, lengths kept"));
            }
            5 => {
                let n = rng.range(1, 40);
                if rng.chance(50) {
                    f.extend((0..n).map(|_| rng.byte()));
                } else {
                    f.extend(std::iter::repeat_n(0, n));
                }
                let (ip, udp) =
                    *rng.pick(&[(true, true), (true, true), (true, false), (false, true)]);
                fix_lengths(&mut f, layout, ip, udp);
                what.push(format!("append {n} bytes, fixed IP {ip} UDP {udp}"));
            }
            6 => {
                let at = pos(rng, f.len()).min(f.len());
                let n = rng.range(1, 8);
                for _ in 0..n {
                    f.insert(at, rng.byte());
                }
                fix_lengths(&mut f, layout, true, true);
                what.push(format!("insert {n} bytes at {at}, lengths fixed"));
            }
            7 => {
                let at = pos(rng, f.len()).max(ETH_HEADER_LEN);
                let n = rng.range(1, 8).min(f.len().saturating_sub(at));
                f.drain(at..at + n);
                fix_lengths(&mut f, layout, true, true);
                what.push(format!("delete {n} bytes at {at}, lengths fixed"));
            }
            8 => {
                // A DNS header word: flags or a count.
                let word = rng.range(1, 5);
                let at = layout.dns() + 2 * word;
                let random = rng.u16();
                let v: u16 = *rng.pick(&[0, 1, 2, 0x8000, 0x0200, 0x7800, 0xffff, random]);
                if at + 2 <= f.len() {
                    f[at..at + 2].copy_from_slice(&v.to_be_bytes());
                }
                what.push(format!("DNS header word {word} = {v:#06x}"));
            }
            _ => {
                // A length that lies by a little.
                let (at, name) = if rng.chance(50) {
                    (layout.l4() + 4, "UDP")
                } else if layout.v6 {
                    (layout.l3 + 4, "IPv6 payload")
                } else {
                    (layout.l3 + 2, "IPv4 total")
                };
                if at + 2 <= f.len() {
                    let old = u16::from_be_bytes([f[at], f[at + 1]]);
                    let v = old.wrapping_add(rng.range(0, 16) as u16).wrapping_sub(8);
                    f[at..at + 2].copy_from_slice(&v.to_be_bytes());
                    what.push(format!("{name} length {old} -> {v}"));
                }
            }
        }
    }
    (f, what.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rng_is_deterministic_and_spread() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        let xs: Vec<u64> = (0..100).map(|_| a.next_u64()).collect();
        assert_eq!(xs, (0..100).map(|_| b.next_u64()).collect::<Vec<_>>());
        let mut counts = [0u32; 10];
        for _ in 0..10_000 {
            counts[a.below(10)] += 1;
        }
        assert!(
            counts.iter().all(|&c| (900..1100).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn seeds_parse() {
        assert_eq!(parse_seed("42"), Some(42));
        assert_eq!(parse_seed("0xff"), Some(255));
        assert_eq!(parse_seed("1_000"), Some(1000));
        assert!(parse_seed("random").is_some());
        assert_eq!(parse_seed("x"), None);
    }

    #[test]
    fn names_of_exact_wire_length() {
        for len in 20..=255 {
            let n = name_of_wire_len('a', "example.test.", len);
            assert_eq!(wire_name(&n).len(), len, "{n}");
        }
    }
}
