//! The agent's TOML configuration: the file format (the `*File` structs, whose
//! doc comments are the reference for every key), its validation, and the
//! validated [`Config`] the rest of the agent works from.
//!
//! Everything is checked before the agent touches the kernel, and every error
//! names the file, the position, the field (`record[0].endpoints[1].address`)
//! and what is wrong with it.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use failover_common::{MAX_ANSWER_ADDRS, MAX_ZONES, QTYPE_A};
use serde::Deserialize;

use crate::dataplane::record_key;
use crate::policy::{MinHealthy, Policy, WhenAllDown};
use crate::sink::{RTYPE_A, RTYPE_AAAA, ZoneSoa};

/// Largest TTL a record may carry (RFC 2181 section 8: 2^31 - 1 seconds).
pub const MAX_TTL: u32 = 2_147_483_647;
/// Zone TTL when `[[zone]]` gives none: short, because a resolver caches a
/// failed-over answer set for this long.
pub const DEFAULT_TTL: u32 = 30;
/// SOA defaults (RFC 1912 section 2.2 ranges). Nothing transfers these zones
/// (failover is the only server), so refresh/retry/expire are informational;
/// the serial is fixed rather than derived from the clock so that every
/// instance and every restart serves the same SOA.
pub const DEFAULT_SERIAL: u32 = 1;
pub const DEFAULT_REFRESH: u32 = 3600;
pub const DEFAULT_RETRY: u32 = 600;
pub const DEFAULT_EXPIRE: u32 = 1_209_600;
/// Where the server listens in `authoritative` mode unless `[server] listen`
/// says otherwise: every address, both families, port 53.
pub const DEFAULT_LISTEN: [&str; 2] = ["0.0.0.0:53", "[::]:53"];
/// TCP: how long a connection may sit without a complete query (RFC 7766
/// section 6.2.3 suggests seconds, not minutes).
pub const DEFAULT_TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// TCP: connections served at once; more are closed as they arrive.
pub const DEFAULT_TCP_MAX_CONNECTIONS: u32 = 256;

/// The configuration `failover-agent run` uses without `--config`: a demo on
/// loopback that works out of the box. The agent starts the two endpoints itself
/// (`failover-agent demo-endpoint`).
pub const DEFAULT_CONFIG: &str = r#"# Built-in demo: two local endpoints for www.example.test., primary and backup.
[server]
mode = "authoritative"
listen = ["127.0.0.1:53", "[::1]:53"]

[[zone]]
origin = "example.test."
ttl = 30
nameservers = [{ name = "ns1.example.test.", addresses = ["127.0.0.1", "::1"] }]

[[record]]
name = "www.example.test."
type = "A"
policy = "failover"
check = "web"
endpoints = [
  { address = "127.0.0.10", priority = 1 },
  { address = "127.0.0.11", priority = 2 },
]

[checks.web]
kind = "tcp"
port = 8080
interval = "1s"
timeout = "500ms"
rise = 2
fall = 3
"#;

// ---------------------------------------------------------------------------
// The file format.

/// The whole configuration file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// `[server]`: how the agent answers what the XDP program passes up.
    /// Optional; every key has a default.
    #[serde(default)]
    pub server: Option<ServerFile>,
    /// `[[zone]]`: the zones the agent answers for. Every record must lie
    /// inside one of them. At least one is required.
    #[serde(default)]
    pub zone: Vec<ZoneFile>,
    /// `[[record]]`: the health-checked records. At least one is required.
    #[serde(default)]
    pub record: Vec<RecordFile>,
    /// `[checks.NAME]`: health checks, referenced by name from records.
    #[serde(default)]
    pub checks: BTreeMap<String, CheckFile>,
    /// `[admin]`: manual control (drain, force) and where it is kept.
    /// Optional; every key has a default.
    #[serde(default)]
    pub admin: Option<AdminFile>,
}

/// `[admin]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminFile {
    /// Optional. The admin-state file: drain / force-up / force-down entries
    /// per `"RECORD/ENDPOINT"` glob, re-read within a second of a change;
    /// `failover-agent drain|undrain|force` write their changes to it, so
    /// they survive a restart. A missing file is an empty state. Default:
    /// none (control changes live in memory only).
    pub state_file: Option<String>,
    /// Optional. The Unix socket `failover-agent drain|undrain|force|status`
    /// talk to (mode 0600). `""` disables it. Default
    /// `"/run/failover-agent.sock"`.
    pub control_socket: Option<String>,
}

/// `[server]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerFile {
    /// Optional. `"authoritative"` (default): the agent serves DNS over UDP
    /// and TCP on `listen` itself, answering everything the XDP program
    /// passes up (other types, TCP, EDNS errors, unknown names...).
    /// `"front"`: the agent binds nothing; queries the XDP program passes
    /// reach whatever DNS server already runs on the host (Knot, NSD, BIND)
    /// and serves the rest of the zone.
    pub mode: Option<String>,
    /// Optional, `authoritative` mode only. Addresses to serve DNS on, UDP and
    /// TCP on each: `"192.0.2.53"` (port 53), `"192.0.2.53:5353"`, `"::1"`,
    /// `"[::1]:53"`. Default `["0.0.0.0:53", "[::]:53"]` (IPv6 sockets are
    /// IPv6-only, so the two coexist).
    pub listen: Option<Vec<String>>,
    /// Optional. How long a TCP connection may stay open without sending a
    /// complete query, e.g. `"10s"`. Default `"10s"`.
    pub tcp_idle_timeout: Option<String>,
    /// Optional, 1 to 1000000. TCP connections served at once; connections
    /// beyond it are closed at once (clients retry). Default 256.
    pub tcp_max_connections: Option<i64>,
}

/// `[[zone]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneFile {
    /// Required. The zone's name, e.g. `"example.test."`. A name without the
    /// trailing dot is taken as absolute (`"example.test"` = `"example.test."`).
    pub origin: String,
    /// Optional, seconds, 0 to 2147483647 (RFC 2181). TTL of the answers for
    /// the records in this zone unless a record sets its own, and of the NS
    /// records and nameserver addresses. Default 30.
    pub ttl: Option<i64>,
    /// Optional. SOA MNAME, the primary nameserver's name. Default: the first
    /// of `nameservers`, or `ns1.<origin>` when there are none.
    pub mname: Option<String>,
    /// Optional. SOA RNAME, the zone contact's mailbox, as a name
    /// (`"hostmaster.example.test."`) or an address (`"hostmaster@example.test"`,
    /// a local part without dots). Default `hostmaster.<origin>`.
    pub rname: Option<String>,
    /// Optional, 0 to 4294967295. SOA SERIAL. Default 1. Nothing transfers
    /// the zone, so it only shows in SOA answers; set it to match a backing
    /// server's zone in `front` mode.
    pub serial: Option<i64>,
    /// Optional, seconds, 0 to 2147483647. SOA REFRESH. Default 3600.
    pub refresh: Option<i64>,
    /// Optional, seconds, 0 to 2147483647. SOA RETRY. Default 600.
    pub retry: Option<i64>,
    /// Optional, seconds, 0 to 2147483647. SOA EXPIRE. Default 1209600 (two weeks).
    pub expire: Option<i64>,
    /// Optional, seconds, 0 to 2147483647. SOA MINIMUM: how long resolvers
    /// cache negative answers (RFC 2308). Default: the zone's `ttl`, so a name
    /// or type that appears is seen as soon as a changed answer set would be.
    pub minimum: Option<i64>,
    /// Optional, seconds, 0 to 2147483647. TTL of the SOA record itself.
    /// Default: the zone's `ttl`. Negative answers carry the SOA with
    /// min(`soa_ttl`, `minimum`) (RFC 2308 section 3).
    pub soa_ttl: Option<i64>,
    /// Optional. The zone's NS records, in answer order:
    /// `[{ name = "ns1.example.test.", addresses = ["192.0.2.53", "2001:db8::53"] }]`.
    /// A nameserver inside a configured zone needs its addresses (they are
    /// answered as its A/AAAA records and sent as glue with NS answers); one
    /// outside every configured zone must not have any. Default: one
    /// nameserver, `mname`, without addresses (a warning is logged: fine for
    /// a test, not for a delegation).
    pub nameservers: Option<Vec<NameserverFile>>,
}

/// One entry of `nameservers`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NameserverFile {
    /// Required. The nameserver's name, absolute (a missing final dot is added).
    pub name: String,
    /// IPv4 and IPv6 addresses of the nameserver; required (at least one) when
    /// `name` lies inside a configured zone, not allowed otherwise.
    #[serde(default)]
    pub addresses: Vec<String>,
}

/// `[[record]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordFile {
    /// Required. The owner name, e.g. `"www.example.test."`; absolute, a
    /// missing trailing dot is added. Must lie inside a configured zone. Labels
    /// are 1 to 63 letters, digits, `-` or `_`; at most 255 bytes on the wire.
    pub name: String,
    /// Required. The record type: `"A"` (IPv4 endpoints) or `"AAAA"` (IPv6
    /// endpoints). A name may have one record of each type.
    #[serde(rename = "type")]
    pub rtype: String,
    /// Required. How the answer set is chosen from the healthy endpoints:
    /// - `"failover"`: the healthy endpoints of the best (lowest) priority
    ///   level that is up (has `min_healthy` healthy endpoints);
    /// - `"all-healthy"`: every healthy endpoint, at most `max_answers`;
    /// - `"weighted"`: ONE healthy endpoint per query, picked by `weight`
    ///   (in the kernel, per query).
    ///
    /// With no endpoint healthy, `when_all_down` decides.
    pub policy: String,
    /// Required. Name of the `[checks.NAME]` that checks this record's endpoints.
    pub check: String,
    /// Required. 1 to 16 endpoints, e.g. `{ address = "192.0.2.10", priority = 1 }`.
    /// Answers list them in this order (the kernel rotates the set).
    pub endpoints: Vec<EndpointFile>,
    /// Optional, seconds, 0 to 2147483647. Overrides the zone's TTL.
    pub ttl: Option<i64>,
    /// Optional, seconds, 0 to `ttl`. While the record is degraded (an
    /// endpoint unhealthy, drained or not checked yet; failed over; all
    /// down) answers carry this shorter TTL, so resolvers come back sooner
    /// for the recovered set. Default: always `ttl`.
    pub degraded_ttl: Option<i64>,
    /// Optional, policy `failover` only. How many healthy endpoints make a
    /// priority level count as up: a count (`2`; a level with fewer
    /// endpoints needs all of them) or a percentage of the level's endpoints
    /// (`"50%"`, rounded up). Default 1.
    pub min_healthy: Option<toml::Value>,
    /// Optional, policy `all-healthy` only, 1 to 16. Most addresses in one
    /// answer (the best priorities first). Default 8, like Route 53 multivalue.
    pub max_answers: Option<i64>,
    /// Optional. The answer when no endpoint is healthy: `"fail-open"`
    /// (default; the best priority level regardless of health, drained
    /// endpoints excepted, logged as an error), `"fallback"` (the `fallback`
    /// addresses), `"nodata"` (NOERROR, no records, the zone's SOA) or
    /// `"servfail"`.
    pub when_all_down: Option<String>,
    /// Required with `when_all_down = "fallback"`, not allowed otherwise: 1 to
    /// 16 static addresses of the record's family, e.g. a sorry server,
    /// `["192.0.2.99"]`. Not health-checked.
    pub fallback: Option<Vec<String>>,
}

/// One entry of `endpoints`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointFile {
    /// Required. A unicast address of the record's family: IPv4 for `"A"`
    /// (`"192.0.2.10"`), IPv6 for `"AAAA"` (`"2001:db8::10"`, not link-local);
    /// each address at most once per record. The check connects to it.
    pub address: String,
    /// Optional, 1 or more; lower is preferred. Default 1. The `failover`
    /// and `all-healthy` policies (and failing open) look at it; not allowed
    /// with `weighted`.
    pub priority: Option<i64>,
    /// Required with policy `weighted`, not allowed otherwise; 0 to 1000000.
    /// The endpoint's share of the queries among the healthy ones. 0: only
    /// while no endpoint of weight >= 1 is healthy (then the weight-0 ones
    /// share equally).
    pub weight: Option<i64>,
    /// Optional. Probe this address instead of `address` (any family), e.g. the
    /// backend's private address behind the public one the record answers.
    /// Overrides the check's `target_address`.
    pub check_address: Option<String>,
    /// Optional, 1 to 65535. Probe this port instead of the check's `port`.
    pub check_port: Option<i64>,
}

/// `[checks.NAME]`. Keys every kind has: `kind`, `port`, `interval`,
/// `timeout`, `rise`, `fall`, `jitter`, `target_address`; the others belong to
/// one kind (given to another kind they are an error).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckFile {
    /// Required. What a check does; the endpoint is healthy when, within `timeout`:
    /// - `"tcp"`: a TCP connection to `address:port` is established;
    /// - `"http"`, `"https"`: an HTTP/1.1 request gets a status in
    ///   `expect_status` (and `expect_body` in the body, if set);
    /// - `"dns"`: a UDP query for `query_name`/`query_type` gets `expect_rcode`
    ///   (and `expect_answer` among the answers, if set);
    /// - `"icmp"`: an ICMP (ICMPv6) echo request gets its echo reply;
    /// - `"exec"`: `command` exits 0.
    pub kind: String,
    /// TCP/UDP port, 1 to 65535. Required for `tcp`; default 80 for `http`,
    /// 443 for `https`, 53 for `dns`; optional for `exec` (passed as
    /// `FAILOVER_PORT`); not allowed for `icmp`.
    pub port: Option<i64>,
    /// Optional. Time between the starts of two checks of one endpoint, e.g.
    /// `"1s"`, `"500ms"`. Default `"1s"`.
    pub interval: Option<String>,
    /// Optional. How long a check may take before it counts as failed; must be
    /// shorter than `interval`. Default `"500ms"`.
    pub timeout: Option<String>,
    /// Optional, 1 or more. Consecutive successes that make an unhealthy
    /// endpoint healthy. Default 2.
    pub rise: Option<i64>,
    /// Optional, 1 or more. Consecutive failures that make a healthy endpoint
    /// unhealthy. Default 3.
    ///
    /// An endpoint starts unknown and its first check decides at once.
    pub fall: Option<i64>,
    /// Optional. Random spread of every interval: each wait is drawn from
    /// `interval ± jitter`. A duration (`"50ms"`) or a percentage of
    /// `interval` (`"10%"`); at most half the interval. Default `"0s"` (the
    /// first checks are spread over the first interval anyway).
    pub jitter: Option<String>,
    /// Optional. Probe this address instead of the endpoint's own (e.g. a
    /// health proxy or a management address); an endpoint's `check_address`
    /// overrides it in turn.
    pub target_address: Option<String>,

    // http and https
    /// `http`/`https`, optional. Request method, e.g. `"HEAD"`. Default `"GET"`.
    pub method: Option<String>,
    /// `http`/`https`, optional. Request target; starts with `/`. Default `"/"`.
    pub path: Option<String>,
    /// `http`/`https`, optional. The Host header. Default: `sni` if set, else
    /// the probed address (and port, unless it is the default one).
    pub host: Option<String>,
    /// `http`/`https`, optional. Extra request headers, e.g.
    /// `{ "User-Agent" = "failover", "X-Health" = "1" }`.
    pub headers: Option<BTreeMap<String, String>>,
    /// `http`/`https`, optional. Statuses that count as up: codes and
    /// inclusive ranges, e.g. `["200-299", "301"]` or `[200, 204]`.
    /// Default `["200-399"]`.
    pub expect_status: Option<Vec<StatusFile>>,
    /// `http`/`https`, optional. A string the body must contain within its
    /// first `body_limit` bytes (after de-chunking).
    pub expect_body: Option<String>,
    /// `http`/`https`, optional, 1 to 1048576. How many body bytes are read
    /// looking for `expect_body`. Default 4096.
    pub body_limit: Option<i64>,
    /// `https`, optional. TLS server name sent (SNI) and verified. Default:
    /// `host` if set, else none (the certificate must then name the address).
    pub sni: Option<String>,
    /// `https`, optional. Verify the certificate chain and name. Default true.
    /// `false` accepts any certificate (self-signed backends).
    pub verify: Option<bool>,
    /// `https`, optional. PEM file of CA certificates to verify against,
    /// instead of the built-in web roots.
    pub ca_file: Option<String>,

    // dns
    /// `dns`, required. The name to query, e.g. `"www.example.test."`.
    pub query_name: Option<String>,
    /// `dns`, optional. The type to query, e.g. `"A"`, `"AAAA"`, `"SOA"`,
    /// `"TXT"`. Default `"A"`.
    pub query_type: Option<String>,
    /// `dns`, optional. The response code that counts as up, e.g.
    /// `"NOERROR"`, `"NXDOMAIN"`. Default `"NOERROR"`.
    pub expect_rcode: Option<String>,
    /// `dns`, optional. Some answer record's data (as text: `"192.0.2.1"`,
    /// `"ns1.example.test."`) must equal this or contain it.
    pub expect_answer: Option<String>,
    /// `dns`, optional. Set RD (recursion desired): true to check a
    /// resolver, false (default) to check an authoritative server.
    pub recursion: Option<bool>,

    // exec
    /// `exec`, required. The program and its arguments,
    /// `["/usr/local/bin/check-db", "--quick"]` (no shell). Run with
    /// `FAILOVER_ADDRESS`, `FAILOVER_PORT` (empty without a port),
    /// `FAILOVER_TIMEOUT_MS` and `FAILOVER_CHECK` (the check's name) in its
    /// environment; exit 0 = up. At the timeout its whole process group is
    /// killed (SIGKILL).
    pub command: Option<Vec<String>>,
}

/// One entry of `expect_status`: `200` or `"200"` or `"200-299"`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum StatusFile {
    Code(i64),
    Text(String),
}

const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);
const DEFAULT_TIMEOUT: Duration = Duration::from_millis(500);
const DEFAULT_RISE: u32 = 2;
const DEFAULT_FALL: u32 = 3;

// ---------------------------------------------------------------------------
// The validated configuration.

/// A validated configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub server: Server,
    pub zones: Vec<Zone>,
    pub records: Vec<Record>,
    pub admin: Admin,
}

/// `[admin]`, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Admin {
    pub state_file: Option<PathBuf>,
    /// None: no control socket.
    pub control_socket: Option<PathBuf>,
    /// `control_socket` is the default (another agent may hold it: then
    /// this one runs without, with a warning).
    pub control_socket_is_default: bool,
}

impl Default for Admin {
    fn default() -> Self {
        Admin {
            state_file: None,
            control_socket: Some(PathBuf::from(crate::control::DEFAULT_SOCKET)),
            control_socket_is_default: true,
        }
    }
}

/// How queries that the XDP program passes up are answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerMode {
    /// The agent serves UDP and TCP on `listen` itself.
    Authoritative,
    /// The agent binds nothing: another server on the host answers.
    Front,
}

impl fmt::Display for ServerMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ServerMode::Authoritative => "authoritative",
            ServerMode::Front => "front",
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Server {
    pub mode: ServerMode,
    /// Where to serve UDP and TCP (authoritative mode). Never empty there.
    pub listen: Vec<SocketAddr>,
    /// `listen` is the built-in default, not configured: a missing IPv6 stack
    /// is then a warning, not an error.
    pub listen_is_default: bool,
    pub tcp_idle_timeout: Duration,
    pub tcp_max_connections: u32,
}

impl Default for Server {
    fn default() -> Self {
        Server {
            mode: ServerMode::Authoritative,
            listen: DEFAULT_LISTEN
                .iter()
                .map(|a| a.parse().expect("valid default"))
                .collect(),
            listen_is_default: true,
            tcp_idle_timeout: DEFAULT_TCP_IDLE_TIMEOUT,
            tcp_max_connections: DEFAULT_TCP_MAX_CONNECTIONS,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Zone {
    /// Absolute, with the trailing dot.
    pub origin: String,
    pub ttl: u32,
    /// SOA fields; names absolute.
    pub mname: String,
    pub rname: String,
    pub serial: u32,
    pub refresh: u32,
    pub retry: u32,
    pub expire: u32,
    pub minimum: u32,
    pub soa_ttl: u32,
    /// Never empty.
    pub nameservers: Vec<Nameserver>,
    /// `nameservers` was not configured (the default was applied).
    pub nameservers_defaulted: bool,
}

impl Zone {
    /// The SOA as the sinks get it ([`crate::sink::AnswerSink::set_zone`]).
    pub fn soa(&self) -> ZoneSoa {
        ZoneSoa {
            apex: self.origin.to_ascii_lowercase(),
            mname: self.mname.clone(),
            rname: self.rname.clone(),
            serial: self.serial,
            refresh: self.refresh,
            retry: self.retry,
            expire: self.expire,
            minimum: self.minimum,
            negative_ttl: self.soa_ttl.min(self.minimum),
        }
    }
}

/// One NS record of a zone, with the nameserver's addresses (empty for a
/// nameserver outside every configured zone).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Nameserver {
    /// Absolute, with the trailing dot.
    pub name: String,
    pub addresses: Vec<IpAddr>,
}

/// A name with one or more records (one per type).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HotName {
    /// As written in the first of its records.
    pub name: String,
    /// Index in [`Config::zones`].
    pub zone: usize,
    /// Indexes in [`Config::records`], one per type.
    pub records: Vec<usize>,
}

/// Record types the agent serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RecordType {
    A,
    Aaaa,
}

impl RecordType {
    /// The DNS type number.
    pub fn code(self) -> u16 {
        match self {
            RecordType::A => RTYPE_A,
            RecordType::Aaaa => RTYPE_AAAA,
        }
    }
}

impl fmt::Display for RecordType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RecordType::A => "A",
            RecordType::Aaaa => "AAAA",
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Absolute, with the trailing dot, as written in the file.
    pub name: String,
    pub rtype: RecordType,
    /// Index in [`Config::zones`] of the zone the name is in (the most
    /// specific one when zones nest).
    pub zone: usize,
    pub ttl: u32,
    pub policy: Policy,
    /// Name of the check in the file, for messages.
    pub check_name: String,
    pub check: Check,
    pub endpoints: Vec<Endpoint>,
    /// Failover: healthy endpoints that make a priority level up.
    pub min_healthy: MinHealthy,
    /// All-healthy (and fail open): most addresses in an answer, 1..=16.
    pub max_answers: usize,
    pub when_all_down: WhenAllDown,
    /// TTL while degraded, <= `ttl`.
    pub degraded_ttl: Option<u32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// IPv4 for an A record, IPv6 for an AAAA record.
    pub address: IpAddr,
    pub priority: u32,
    /// Policy weighted: the share of queries (0 = last resort). 1 otherwise.
    pub weight: u32,
    /// Probe this address instead (see [`Check::target`]).
    pub check_address: Option<IpAddr>,
    /// Probe this port instead of the check's.
    pub check_port: Option<u16>,
}

/// What one check does, with its kind's settings.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum CheckKind {
    Tcp,
    /// `http` (no `tls`) and `https`.
    Http(HttpCheck),
    Dns(DnsCheck),
    Icmp,
    Exec(ExecCheck),
}

impl CheckKind {
    /// The kind's name in the file.
    pub fn name(&self) -> &'static str {
        match self {
            CheckKind::Tcp => "tcp",
            CheckKind::Http(http) if http.tls.is_some() => "https",
            CheckKind::Http(_) => "http",
            CheckKind::Dns(_) => "dns",
            CheckKind::Icmp => "icmp",
            CheckKind::Exec(_) => "exec",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HttpCheck {
    pub method: String,
    pub path: String,
    /// The Host header when configured (else derived from the target).
    pub host: Option<String>,
    /// Extra headers, in name order.
    pub headers: Vec<(String, String)>,
    /// Inclusive ranges of statuses that count as up.
    pub expect_status: Vec<(u16, u16)>,
    pub expect_body: Option<String>,
    pub body_limit: usize,
    /// `Some` for https.
    pub tls: Option<TlsCheck>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TlsCheck {
    /// Server name for SNI and verification; `None`: the target address.
    pub sni: Option<String>,
    pub verify: bool,
    pub ca_file: Option<std::path::PathBuf>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DnsCheck {
    /// Absolute, with the trailing dot.
    pub query_name: String,
    pub query_type: u16,
    pub expect_rcode: u16,
    pub expect_answer: Option<String>,
    pub recursion: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ExecCheck {
    /// Program and arguments; never empty.
    pub command: Vec<String>,
    /// The check's name (`FAILOVER_CHECK`).
    pub check_name: String,
}

/// A validated `[checks.NAME]`. Two records whose checks are equal and whose
/// endpoints probe the same target share one probe.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Check {
    pub kind: CheckKind,
    /// `None` for icmp, and for exec without a port.
    pub port: Option<u16>,
    pub interval: Duration,
    pub timeout: Duration,
    pub rise: u32,
    pub fall: u32,
    /// Each interval is drawn from `interval ± jitter`.
    pub jitter: Duration,
    /// Probe this address instead of the endpoint's (unless the endpoint
    /// has its own `check_address`).
    pub target_address: Option<IpAddr>,
}

impl Check {
    /// The address and port a check of `endpoint` probes: the endpoint's
    /// `check_address`/`check_port`, else the check's `target_address`/`port`,
    /// else the endpoint's address.
    pub fn target(&self, endpoint: &Endpoint) -> CheckTarget {
        CheckTarget {
            address: endpoint
                .check_address
                .or(self.target_address)
                .unwrap_or(endpoint.address),
            port: endpoint.check_port.or(self.port),
        }
    }
}

/// What one probe is aimed at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CheckTarget {
    pub address: IpAddr,
    pub port: Option<u16>,
}

impl fmt::Display for CheckTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.port {
            Some(port) => write!(f, "{}", SocketAddr::new(self.address, port)),
            None => write!(f, "{}", self.address),
        }
    }
}

// ---------------------------------------------------------------------------
// Errors.

/// What is wrong with a configuration, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file (or "built-in default configuration").
    pub source_name: String,
    /// 1-based line and column, when known.
    pub position: Option<(usize, usize)>,
    /// Path of the offending field, e.g. `record[0].endpoints[1].address`.
    pub field: Option<String>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.source_name)?;
        if let Some((line, column)) = self.position {
            write!(f, ":{line}:{column}")?;
        }
        write!(f, ": ")?;
        if let Some(field) = &self.field {
            write!(f, "{field}: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

/// A validation failure before the file name is attached.
pub(crate) struct FieldError {
    pub(crate) field: String,
    pub(crate) message: String,
}

fn field_err(field: impl Into<String>, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.into(),
        message: message.into(),
    }
}

// ---------------------------------------------------------------------------
// Loading.

impl Config {
    /// Reads and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let source_name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            source_name: source_name.clone(),
            position: None,
            field: None,
            message: format!("cannot read the configuration: {e}"),
        })?;
        Config::parse(&text, &source_name)
    }

    /// The built-in demo configuration ([`DEFAULT_CONFIG`]).
    pub fn default_demo() -> Config {
        Config::parse(DEFAULT_CONFIG, "built-in default configuration")
            .expect("the built-in configuration is valid (tested)")
    }

    /// Parses and validates `text`; `source_name` names it in errors.
    pub fn parse(text: &str, source_name: &str) -> Result<Config, ConfigError> {
        let file = parse_file(text, source_name)?;
        validate(&file).map_err(|e| ConfigError {
            source_name: source_name.to_string(),
            position: None,
            field: Some(e.field),
            message: e.message,
        })
    }

    /// Number of (record, endpoint) pairs, i.e. of health checks running at once.
    pub fn endpoint_count(&self) -> usize {
        self.records.iter().map(|r| r.endpoints.len()).sum()
    }

    /// The names that have records (the "hot" names the kernel answers), each
    /// once, in order of first appearance, with the indexes of its records.
    pub fn hot_names(&self) -> Vec<HotName> {
        let mut names: Vec<HotName> = Vec::new();
        for (i, record) in self.records.iter().enumerate() {
            match names.iter_mut().find(|n| same_name(&n.name, &record.name)) {
                Some(name) => name.records.push(i),
                None => names.push(HotName {
                    name: record.name.clone(),
                    zone: record.zone,
                    records: vec![i],
                }),
            }
        }
        names
    }

    /// Things that load but are probably not what the operator wants.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        for (i, zone) in self.zones.iter().enumerate() {
            let ns = &zone.nameservers[0];
            let has_addresses = self.zones.iter().any(|z| {
                z.nameservers
                    .iter()
                    .any(|n| same_name(&n.name, &ns.name) && !n.addresses.is_empty())
            });
            if zone.nameservers_defaulted
                && zone_index(&self.zones, &ns.name).is_some()
                && !has_addresses
            {
                warnings.push(format!(
                    "zone[{i}] ({}): no nameservers configured; its NS record is the SOA MNAME {}, which has no addresses, so the zone cannot be delegated to this server: set zone[{i}].nameservers",
                    zone.origin, ns.name
                ));
            }
        }
        warnings
    }
}

fn parse_file(text: &str, source_name: &str) -> Result<ConfigFile, ConfigError> {
    let deserializer = toml::Deserializer::new(text);
    serde_path_to_error::deserialize::<_, ConfigFile>(deserializer).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.inner();
        let position = inner.span().map(|span| line_column(text, span.start));
        ConfigError {
            source_name: source_name.to_string(),
            position,
            // serde_path_to_error says "." for the top level.
            field: (path != "." && !path.is_empty()).then_some(path),
            message: inner.message().trim().to_string(),
        }
    })
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

fn validate(file: &ConfigFile) -> Result<Config, FieldError> {
    let server = match &file.server {
        Some(server) => server_value(server)?,
        None => Server::default(),
    };
    if file.zone.is_empty() {
        return Err(field_err(
            "zone",
            "at least one [[zone]] is required (e.g. origin = \"example.test.\")",
        ));
    }
    if file.zone.len() > MAX_ZONES as usize {
        return Err(field_err(
            "zone",
            format!(
                "{} zones, but the kernel holds at most {MAX_ZONES}",
                file.zone.len()
            ),
        ));
    }
    let mut zones: Vec<Zone> = Vec::with_capacity(file.zone.len());
    for (i, zone) in file.zone.iter().enumerate() {
        let path = format!("zone[{i}]");
        let origin = dns_name(&format!("{path}.origin"), &zone.origin)?;
        if let Some(other) = zones.iter().position(|z| same_name(&z.origin, &origin)) {
            return Err(field_err(
                format!("{path}.origin"),
                format!("zone {origin} is already configured as zone[{other}]"),
            ));
        }
        zones.push(zone_value(&path, zone, origin)?);
    }

    let mut checks: HashMap<&str, Check> = HashMap::new();
    for (name, check) in &file.checks {
        checks.insert(name, check_value(name, &format!("checks.{name}"), check)?);
    }

    if file.record.is_empty() {
        return Err(field_err("record", "at least one [[record]] is required"));
    }
    let mut records: Vec<Record> = Vec::with_capacity(file.record.len());
    for (i, record) in file.record.iter().enumerate() {
        let path = format!("record[{i}]");
        let name = dns_name(&format!("{path}.name"), &record.name)?;
        let Some(zone) = zone_index(&zones, &name) else {
            let configured: Vec<&str> = zones.iter().map(|z| z.origin.as_str()).collect();
            return Err(field_err(
                format!("{path}.name"),
                format!(
                    "{name} is not inside any configured zone (zones: {})",
                    configured.join(", ")
                ),
            ));
        };
        let rtype = match record.rtype.to_ascii_uppercase().as_str() {
            "A" => RecordType::A,
            "AAAA" => RecordType::Aaaa,
            _ => {
                return Err(field_err(
                    format!("{path}.type"),
                    format!(
                        "unknown record type {:?}: only \"A\" and \"AAAA\" are supported",
                        record.rtype
                    ),
                ));
            }
        };
        if let Some(other) = records
            .iter()
            .position(|r| r.rtype == rtype && same_name(&r.name, &name))
        {
            return Err(field_err(
                format!("{path}.name"),
                format!(
                    "duplicate record: {name} {rtype} is already configured as record[{other}]"
                ),
            ));
        }
        let policy = match record.policy.as_str() {
            "failover" => Policy::Failover,
            "all-healthy" => Policy::AllHealthy,
            "weighted" => Policy::Weighted,
            other => {
                return Err(field_err(
                    format!("{path}.policy"),
                    format!(
                        "unknown policy {other:?}: expected \"failover\", \"all-healthy\" or \"weighted\""
                    ),
                ));
            }
        };
        let Some(check) = checks.get(record.check.as_str()).cloned() else {
            let known: Vec<String> = file
                .checks
                .keys()
                .map(|k| format!("[checks.{k}]"))
                .collect();
            return Err(field_err(
                format!("{path}.check"),
                format!(
                    "no check named {:?} (configured: {})",
                    record.check,
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            ));
        };
        if record.endpoints.is_empty() {
            return Err(field_err(
                format!("{path}.endpoints"),
                "at least one endpoint is required",
            ));
        }
        if record.endpoints.len() > MAX_ANSWER_ADDRS {
            return Err(field_err(
                format!("{path}.endpoints"),
                format!(
                    "{} endpoints, but a record holds at most {MAX_ANSWER_ADDRS} (the kernel's answer set size)",
                    record.endpoints.len()
                ),
            ));
        }
        let mut endpoints: Vec<Endpoint> = Vec::with_capacity(record.endpoints.len());
        for (j, endpoint) in record.endpoints.iter().enumerate() {
            let epath = format!("{path}.endpoints[{j}]");
            let address = endpoint_address(&format!("{epath}.address"), &endpoint.address, rtype)?;
            if let Some(other) = endpoints.iter().position(|e| e.address == address) {
                return Err(field_err(
                    format!("{epath}.address"),
                    format!("{address} is already endpoint {other} of this record"),
                ));
            }
            let priority = match endpoint.priority {
                Some(_) if policy == Policy::Weighted => {
                    return Err(field_err(
                        format!("{epath}.priority"),
                        "not allowed with policy \"weighted\" (it picks by weight alone)",
                    ));
                }
                None => 1,
                Some(p) if (1..=i64::from(u32::MAX)).contains(&p) => p as u32,
                Some(p) => {
                    return Err(field_err(
                        format!("{epath}.priority"),
                        format!("priority {p} is out of range: must be 1 or more (1 is preferred)"),
                    ));
                }
            };
            let weight = endpoint_weight(&epath, endpoint.weight, policy)?;
            let (check_address, check_port) = endpoint_check_target(&epath, endpoint, &check)?;
            endpoints.push(Endpoint {
                address,
                priority,
                weight,
                check_address,
                check_port,
            });
        }
        let ttl = match record.ttl {
            Some(ttl) => ttl_value(&format!("{path}.ttl"), ttl)?,
            None => zones[zone].ttl,
        };
        let rules = record_rules(&path, record, policy, rtype, ttl)?;
        records.push(Record {
            name,
            rtype,
            zone,
            ttl,
            policy,
            check_name: record.check.clone(),
            check,
            endpoints,
            min_healthy: rules.min_healthy,
            max_answers: rules.max_answers,
            when_all_down: rules.when_all_down,
            degraded_ttl: rules.degraded_ttl,
        });
    }
    check_nameservers(&zones, &records)?;
    let admin = match &file.admin {
        None => Admin::default(),
        Some(admin) => admin_value(admin)?,
    };
    Ok(Config {
        server,
        zones,
        records,
        admin,
    })
}

fn admin_value(admin: &AdminFile) -> Result<Admin, FieldError> {
    let path = |field: &str, text: &str| -> Result<PathBuf, FieldError> {
        if text.contains('\0') {
            return Err(field_err(field, "a path cannot contain NUL"));
        }
        let path = PathBuf::from(text);
        if !path.is_absolute() {
            return Err(field_err(
                field,
                format!("{text:?} must be an absolute path (the agent may run from any directory)"),
            ));
        }
        Ok(path)
    };
    let state_file = match admin.state_file.as_deref() {
        None => None,
        Some("") => {
            return Err(field_err(
                "admin.state_file",
                "empty path (leave the key out for none)",
            ));
        }
        Some(text) => Some(path("admin.state_file", text)?),
    };
    let (control_socket, control_socket_is_default) = match admin.control_socket.as_deref() {
        None => (Admin::default().control_socket, true),
        Some("") => (None, false),
        Some(text) => (Some(path("admin.control_socket", text)?), false),
    };
    Ok(Admin {
        state_file,
        control_socket,
        control_socket_is_default,
    })
}

/// A record's policy options, validated.
struct RecordRules {
    min_healthy: MinHealthy,
    max_answers: usize,
    when_all_down: WhenAllDown,
    degraded_ttl: Option<u32>,
}

/// Default `max_answers` (Route 53 multivalue answers up to 8).
pub const DEFAULT_MAX_ANSWERS: usize = 8;

fn record_rules(
    path: &str,
    record: &RecordFile,
    policy: Policy,
    rtype: RecordType,
    ttl: u32,
) -> Result<RecordRules, FieldError> {
    let only_with = |key: &str, wanted: Policy| {
        field_err(
            format!("{path}.{key}"),
            format!("only allowed with policy \"{wanted}\", not \"{policy}\""),
        )
    };
    let min_healthy = match &record.min_healthy {
        None => MinHealthy::default(),
        Some(_) if policy != Policy::Failover => {
            return Err(only_with("min_healthy", Policy::Failover));
        }
        Some(value) => min_healthy_value(&format!("{path}.min_healthy"), value)?,
    };
    let max_answers = match record.max_answers {
        None => DEFAULT_MAX_ANSWERS,
        Some(_) if policy != Policy::AllHealthy => {
            return Err(only_with("max_answers", Policy::AllHealthy));
        }
        Some(n) if (1..=MAX_ANSWER_ADDRS as i64).contains(&n) => n as usize,
        Some(n) => {
            return Err(field_err(
                format!("{path}.max_answers"),
                format!("{n} is out of range: 1 to {MAX_ANSWER_ADDRS}"),
            ));
        }
    };
    let mode = record.when_all_down.as_deref().unwrap_or("fail-open");
    let when_all_down = match mode {
        "fail-open" => WhenAllDown::FailOpen,
        "fallback" => {
            let Some(list) = &record.fallback else {
                return Err(field_err(
                    format!("{path}.fallback"),
                    "required with when_all_down = \"fallback\" (e.g. fallback = [\"192.0.2.99\"])",
                ));
            };
            if list.is_empty() || list.len() > MAX_ANSWER_ADDRS {
                return Err(field_err(
                    format!("{path}.fallback"),
                    format!(
                        "{} addresses: 1 to {MAX_ANSWER_ADDRS} are allowed",
                        list.len()
                    ),
                ));
            }
            let mut addrs: Vec<IpAddr> = Vec::with_capacity(list.len());
            for (k, text) in list.iter().enumerate() {
                let address = endpoint_address(&format!("{path}.fallback[{k}]"), text, rtype)?;
                if addrs.contains(&address) {
                    return Err(field_err(
                        format!("{path}.fallback[{k}]"),
                        format!("{address} is listed twice"),
                    ));
                }
                addrs.push(address);
            }
            WhenAllDown::Fallback(addrs)
        }
        "nodata" => WhenAllDown::NoData,
        "servfail" => WhenAllDown::ServFail,
        other => {
            return Err(field_err(
                format!("{path}.when_all_down"),
                format!(
                    "unknown mode {other:?}: expected \"fail-open\", \"fallback\", \"nodata\" or \"servfail\""
                ),
            ));
        }
    };
    if record.fallback.is_some() && !matches!(when_all_down, WhenAllDown::Fallback(_)) {
        return Err(field_err(
            format!("{path}.fallback"),
            format!("only allowed with when_all_down = \"fallback\", not \"{mode}\""),
        ));
    }
    let degraded_ttl = match record.degraded_ttl {
        None => None,
        Some(t) => {
            let field = format!("{path}.degraded_ttl");
            let short = ttl_value(&field, t)?;
            if short > ttl {
                return Err(field_err(
                    field,
                    format!("{short} is longer than the record's TTL ({ttl}): it must shorten it"),
                ));
            }
            Some(short)
        }
    };
    Ok(RecordRules {
        min_healthy,
        max_answers,
        when_all_down,
        degraded_ttl,
    })
}

/// `min_healthy`: a count >= 1 or a percentage `"1%"` to `"100%"`.
fn min_healthy_value(field: &str, value: &toml::Value) -> Result<MinHealthy, FieldError> {
    let bad = |what: String| {
        field_err(
            field,
            format!("{what}: expected a count (2) or a percentage (\"50%\")"),
        )
    };
    match value {
        toml::Value::Integer(n) if (1..=i64::from(u32::MAX)).contains(n) => {
            Ok(MinHealthy::Count(*n as u32))
        }
        toml::Value::Integer(n) => Err(bad(format!("{n} is out of range (1 or more)"))),
        toml::Value::String(text) => {
            let number = text
                .trim()
                .strip_suffix('%')
                .and_then(|n| n.trim().parse::<u32>().ok());
            match number {
                Some(p) if (1..=100).contains(&p) => Ok(MinHealthy::Percent(p)),
                Some(p) => Err(bad(format!("{p}% is out of range (1% to 100%)"))),
                None => Err(bad(format!("{text:?} is not a percentage"))),
            }
        }
        other => Err(bad(format!("a {}", other.type_str()))),
    }
}

/// `weight`: required (0 to 1000000) with policy weighted, else absent (1).
fn endpoint_weight(epath: &str, weight: Option<i64>, policy: Policy) -> Result<u32, FieldError> {
    match (weight, policy) {
        (None, Policy::Weighted) => Err(field_err(
            format!("{epath}.weight"),
            "required with policy \"weighted\" (0 to 1000000; 0 = only when nothing else is up)",
        )),
        (None, _) => Ok(1),
        (Some(_), _) if policy != Policy::Weighted => Err(field_err(
            format!("{epath}.weight"),
            format!("only allowed with policy \"weighted\", not \"{policy}\""),
        )),
        (Some(w), _) if (0..=MAX_WEIGHT).contains(&w) => Ok(w as u32),
        (Some(w), _) => Err(field_err(
            format!("{epath}.weight"),
            format!("{w} is out of range: 0 to {MAX_WEIGHT}"),
        )),
    }
}

/// Largest endpoint weight: 16 of them add up to well under 2^32 (the
/// kernel's running totals are 32-bit).
const MAX_WEIGHT: i64 = 1_000_000;

/// Index of the most specific zone that `name` lies in.
fn zone_index(zones: &[Zone], name: &str) -> Option<usize> {
    (0..zones.len())
        .filter(|&z| in_zone(name, &zones[z].origin))
        .max_by_key(|&z| zones[z].origin.len())
}

fn server_value(server: &ServerFile) -> Result<Server, FieldError> {
    let defaults = Server::default();
    let mode = match server.mode.as_deref() {
        None | Some("authoritative") => ServerMode::Authoritative,
        Some("front") => ServerMode::Front,
        Some(other) => {
            return Err(field_err(
                "server.mode",
                format!("unknown mode {other:?}: expected \"authoritative\" or \"front\""),
            ));
        }
    };
    let (listen, listen_is_default) = match (&server.listen, mode) {
        (None, ServerMode::Authoritative) => (defaults.listen, true),
        (None, ServerMode::Front) => (Vec::new(), false),
        (Some(_), ServerMode::Front) => {
            return Err(field_err(
                "server.listen",
                "in mode \"front\" the agent binds nothing (the DNS server on the host does): remove listen or set mode = \"authoritative\"",
            ));
        }
        (Some(list), ServerMode::Authoritative) => {
            if list.is_empty() {
                return Err(field_err(
                    "server.listen",
                    "at least one address is required in mode \"authoritative\" (or use mode = \"front\")",
                ));
            }
            let mut listen: Vec<SocketAddr> = Vec::with_capacity(list.len());
            for (i, text) in list.iter().enumerate() {
                let field = format!("server.listen[{i}]");
                let addr = listen_address(&field, text)?;
                if listen.contains(&addr) {
                    return Err(field_err(field, format!("{addr} is listed twice")));
                }
                listen.push(addr);
            }
            (listen, false)
        }
    };
    let tcp_idle_timeout = duration_value(
        "server.tcp_idle_timeout",
        server.tcp_idle_timeout.as_ref(),
        DEFAULT_TCP_IDLE_TIMEOUT,
    )?;
    let tcp_max_connections = match server.tcp_max_connections {
        None => DEFAULT_TCP_MAX_CONNECTIONS,
        Some(n) if (1..=1_000_000).contains(&n) => n as u32,
        Some(n) => {
            return Err(field_err(
                "server.tcp_max_connections",
                format!("{n} is out of range: must be 1 to 1000000"),
            ));
        }
    };
    Ok(Server {
        mode,
        listen,
        listen_is_default,
        tcp_idle_timeout,
        tcp_max_connections,
    })
}

/// `"192.0.2.53"`, `"192.0.2.53:53"`, `"::1"` or `"[::1]:53"`; port 53 when
/// none is given.
pub(crate) fn listen_address(field: &str, text: &str) -> Result<SocketAddr, FieldError> {
    let addr = match text.trim().parse::<SocketAddr>() {
        Ok(addr) => addr,
        Err(_) => match text.trim().parse::<IpAddr>() {
            Ok(ip) => SocketAddr::new(ip, 53),
            Err(_) => {
                return Err(field_err(
                    field,
                    format!(
                        "{text:?} is not an address to listen on (e.g. \"0.0.0.0:53\", \"[::]:53\", \"192.0.2.53\")"
                    ),
                ));
            }
        },
    };
    if addr.port() == 0 {
        return Err(field_err(field, format!("{text:?}: port 0 is not a port")));
    }
    if addr.ip().is_multicast() {
        return Err(field_err(field, format!("{text:?} is a multicast address")));
    }
    Ok(addr)
}

fn zone_value(path: &str, zone: &ZoneFile, origin: String) -> Result<Zone, FieldError> {
    let ttl = match zone.ttl {
        Some(ttl) => ttl_value(&format!("{path}.ttl"), ttl)?,
        None => DEFAULT_TTL,
    };
    let seconds = |key: &str, value: Option<i64>, default: u32| match value {
        Some(v) => ttl_value(&format!("{path}.{key}"), v),
        None => Ok(default),
    };
    let serial = match zone.serial {
        None => DEFAULT_SERIAL,
        Some(s) => u32::try_from(s).map_err(|_| {
            field_err(
                format!("{path}.serial"),
                format!("serial {s} is out of range: must be 0 to 4294967295"),
            )
        })?,
    };
    let mut nameservers = Vec::new();
    for (j, ns) in zone.nameservers.iter().flatten().enumerate() {
        let npath = format!("{path}.nameservers[{j}]");
        let name = dns_name(&format!("{npath}.name"), &ns.name)?;
        if nameservers
            .iter()
            .any(|n: &Nameserver| same_name(&n.name, &name))
        {
            return Err(field_err(
                format!("{npath}.name"),
                format!("nameserver {name} is listed twice"),
            ));
        }
        let mut addresses: Vec<IpAddr> = Vec::with_capacity(ns.addresses.len());
        for (k, text) in ns.addresses.iter().enumerate() {
            let field = format!("{npath}.addresses[{k}]");
            let ip = unicast_address(&field, text)?;
            if addresses.contains(&ip) {
                return Err(field_err(field, format!("{ip} is listed twice")));
            }
            addresses.push(ip);
        }
        nameservers.push(Nameserver { name, addresses });
    }
    if zone.nameservers.as_ref().is_some_and(|n| n.is_empty()) {
        return Err(field_err(
            format!("{path}.nameservers"),
            "at least one nameserver is required when the key is present (leave it out for the default)",
        ));
    }
    let mname = match &zone.mname {
        Some(mname) => dns_name(&format!("{path}.mname"), mname)?,
        None => match nameservers.first() {
            Some(ns) => ns.name.clone(),
            None => format!("ns1.{origin}"),
        },
    };
    let rname = match &zone.rname {
        Some(rname) => rname_value(&format!("{path}.rname"), rname)?,
        None => format!("hostmaster.{origin}"),
    };
    // The defaults must also be valid names (e.g. origin near the length limit).
    dns_name(&format!("{path}.mname"), &mname)?;
    dns_name(&format!("{path}.rname"), &rname)?;
    let nameservers_defaulted = nameservers.is_empty();
    if nameservers_defaulted {
        nameservers.push(Nameserver {
            name: mname.clone(),
            addresses: Vec::new(),
        });
    }
    Ok(Zone {
        ttl,
        mname,
        rname,
        serial,
        refresh: seconds("refresh", zone.refresh, DEFAULT_REFRESH)?,
        retry: seconds("retry", zone.retry, DEFAULT_RETRY)?,
        expire: seconds("expire", zone.expire, DEFAULT_EXPIRE)?,
        minimum: seconds("minimum", zone.minimum, ttl)?,
        soa_ttl: seconds("soa_ttl", zone.soa_ttl, ttl)?,
        nameservers,
        nameservers_defaulted,
        origin,
    })
}

/// RNAME as a name (`hostmaster.example.test.`) or a mailbox
/// (`hostmaster@example.test`, RFC 1035 section 8 encoding).
fn rname_value(field: &str, text: &str) -> Result<String, FieldError> {
    match text.split_once('@') {
        None => dns_name(field, text),
        Some((local, domain)) => {
            if local.is_empty() || local.contains('.') || domain.contains('@') {
                return Err(field_err(
                    field,
                    format!(
                        "{text:?}: write the mailbox as local@domain with a local part without dots, or as a name (\"hostmaster.example.test.\")"
                    ),
                ));
            }
            dns_name(field, &format!("{local}.{domain}"))
        }
    }
}

/// Nameserver rules that need every zone and record: addresses exactly when
/// the nameserver lies inside a configured zone (RFC 9471 glue), the same
/// addresses wherever the name is listed, and no name both a nameserver
/// (static addresses) and a record (health-checked ones).
fn check_nameservers(zones: &[Zone], records: &[Record]) -> Result<(), FieldError> {
    let mut seen: HashMap<String, (String, Vec<IpAddr>)> = HashMap::new();
    for (i, zone) in zones.iter().enumerate() {
        for (j, ns) in zone.nameservers.iter().enumerate() {
            let field = if zone.nameservers_defaulted {
                format!("zone[{i}].nameservers")
            } else {
                format!("zone[{i}].nameservers[{j}]")
            };
            let described = if zone.nameservers_defaulted {
                format!(
                    "not configured, so the nameserver is the SOA MNAME {}, which",
                    ns.name
                )
            } else {
                format!("{} is", ns.name)
            };
            if let Some(r) = records.iter().position(|r| same_name(&r.name, &ns.name)) {
                return Err(field_err(
                    field,
                    format!(
                        "{described} also the name of record[{r}]: a nameserver's addresses are static, a record's are health-checked; use another name"
                    ),
                ));
            }
            let inside = zone_index(zones, &ns.name);
            match (inside, ns.addresses.is_empty(), zone.nameservers_defaulted) {
                (Some(z), true, false) => {
                    return Err(field_err(
                        format!("{field}.addresses"),
                        format!(
                            "{} lies inside zone {}: its addresses are required (they are its A/AAAA records and the glue in NS answers)",
                            ns.name, zones[z].origin
                        ),
                    ));
                }
                (None, false, _) => {
                    return Err(field_err(
                        format!("{field}.addresses"),
                        format!(
                            "{} is outside every configured zone: its addresses belong in its own zone, not here; remove them",
                            ns.name
                        ),
                    ));
                }
                _ => {}
            }
            if ns.addresses.is_empty() {
                continue;
            }
            let key = ns.name.to_ascii_lowercase();
            let mut sorted = ns.addresses.clone();
            sorted.sort();
            match seen.get(&key) {
                Some((where_, addrs)) if *addrs != sorted => {
                    return Err(field_err(
                        format!("{field}.addresses"),
                        format!(
                            "{} has other addresses in {where_}: a nameserver has one set of addresses",
                            ns.name
                        ),
                    ));
                }
                Some(_) => {}
                None => {
                    seen.insert(key, (field.clone(), sorted));
                }
            }
        }
    }
    Ok(())
}

/// Validates a domain name and makes it absolute (trailing dot).
fn dns_name(field: &str, name: &str) -> Result<String, FieldError> {
    if name.is_empty() {
        return Err(field_err(field, "the name is empty"));
    }
    let absolute = if name.ends_with('.') {
        name.to_string()
    } else {
        format!("{name}.")
    };
    if absolute != "." {
        for label in absolute[..absolute.len() - 1].split('.') {
            if label.is_empty() {
                return Err(field_err(field, format!("{name:?} has an empty label")));
            }
            if let Some(c) = label
                .chars()
                .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
            {
                return Err(field_err(
                    field,
                    format!(
                        "{name:?}: label {label:?} contains {c:?}; only letters, digits, '-' and '_' are allowed"
                    ),
                ));
            }
        }
    }
    // Label lengths (1..=63) and the 255-byte wire limit: exactly what the
    // kernel key can encode.
    record_key(&absolute, QTYPE_A).map_err(|e| field_err(field, e.to_string()))?;
    Ok(absolute)
}

/// DNS names compare case-insensitively.
fn same_name(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

fn in_zone(name: &str, origin: &str) -> bool {
    if origin == "." || same_name(name, origin) {
        return true;
    }
    name.len() > origin.len()
        && same_name(&name[name.len() - origin.len()..], origin)
        && name.as_bytes()[name.len() - origin.len() - 1] == b'.'
}

fn ttl_value(field: &str, ttl: i64) -> Result<u32, FieldError> {
    if (0..=i64::from(MAX_TTL)).contains(&ttl) {
        Ok(ttl as u32)
    } else {
        Err(field_err(
            field,
            format!("TTL {ttl} is out of range: must be 0 to {MAX_TTL} seconds (RFC 2181)"),
        ))
    }
}

fn endpoint_address(field: &str, address: &str, rtype: RecordType) -> Result<IpAddr, FieldError> {
    let ip: IpAddr = address.trim().parse().map_err(|_| {
        field_err(
            field,
            match rtype {
                RecordType::A => {
                    format!("{address:?} is not an IPv4 address (e.g. \"192.0.2.10\")")
                }
                RecordType::Aaaa => {
                    format!("{address:?} is not an IPv6 address (e.g. \"2001:db8::10\")")
                }
            },
        )
    })?;
    match (rtype, ip) {
        (RecordType::A, IpAddr::V6(_)) => {
            return Err(field_err(
                field,
                format!(
                    "{ip} is an IPv6 address: an \"A\" record takes IPv4 addresses (put IPv6 endpoints in a type \"AAAA\" record)"
                ),
            ));
        }
        (RecordType::Aaaa, IpAddr::V4(_)) => {
            return Err(field_err(
                field,
                format!(
                    "{ip} is an IPv4 address: an \"AAAA\" record takes IPv6 addresses (put IPv4 endpoints in a type \"A\" record)"
                ),
            ));
        }
        _ => {}
    }
    unicast_address(field, address)
}

/// An address that may appear in an answer: unicast, and for IPv6 not
/// link-local (meaningless without an interface).
fn unicast_address(field: &str, text: &str) -> Result<IpAddr, FieldError> {
    let ip: IpAddr = text.trim().parse().map_err(|_| {
        field_err(
            field,
            format!("{text:?} is not an IP address (e.g. \"192.0.2.10\" or \"2001:db8::10\")"),
        )
    })?;
    let bad = match ip {
        IpAddr::V4(v4) => v4.is_unspecified() || v4.is_broadcast() || v4.is_multicast(),
        IpAddr::V6(v6) => v6.is_unspecified() || v6.is_multicast(),
    };
    if bad {
        return Err(field_err(field, format!("{ip} is not a unicast address")));
    }
    if let IpAddr::V6(v6) = ip
        && v6.is_unicast_link_local()
    {
        return Err(field_err(
            field,
            format!(
                "{ip} is link-local: it means nothing without an interface, use a global or unique local address"
            ),
        ));
    }
    Ok(ip)
}

fn duration_value(
    field: &str,
    value: Option<&String>,
    default: Duration,
) -> Result<Duration, FieldError> {
    let Some(text) = value else {
        return Ok(default);
    };
    let duration = humantime::parse_duration(text).map_err(|e| {
        field_err(
            field,
            format!("{text:?} is not a duration ({e}); write e.g. \"1s\" or \"500ms\""),
        )
    })?;
    if duration.is_zero() {
        return Err(field_err(field, "must be longer than zero"));
    }
    Ok(duration)
}

fn count_value(field: &str, value: Option<i64>, default: u32) -> Result<u32, FieldError> {
    match value {
        None => Ok(default),
        Some(n) if (1..=i64::from(u32::MAX)).contains(&n) => Ok(n as u32),
        Some(n) => Err(field_err(
            field,
            format!("{n} is out of range: must be 1 or more"),
        )),
    }
}

/// DNS response codes `expect_rcode` accepts (RFC 1035, 2136).
const RCODES: [(&str, u16); 11] = [
    ("NOERROR", 0),
    ("FORMERR", 1),
    ("SERVFAIL", 2),
    ("NXDOMAIN", 3),
    ("NOTIMP", 4),
    ("REFUSED", 5),
    ("YXDOMAIN", 6),
    ("YXRRSET", 7),
    ("NXRRSET", 8),
    ("NOTAUTH", 9),
    ("NOTZONE", 10),
];

/// The name of response code `code` ("NOERROR"), or its number.
pub fn rcode_name(code: u16) -> String {
    RCODES
        .iter()
        .find(|(_, c)| *c == code)
        .map_or_else(|| format!("RCODE{code}"), |(n, _)| n.to_string())
}

const DEFAULT_BODY_LIMIT: usize = 4096;
const MAX_BODY_LIMIT: i64 = 1 << 20;

fn check_value(name: &str, path: &str, check: &CheckFile) -> Result<Check, FieldError> {
    let kind_name = check.kind.as_str();
    if !["tcp", "http", "https", "dns", "icmp", "exec"].contains(&kind_name) {
        return Err(field_err(
            format!("{path}.kind"),
            format!(
                "unknown check kind {kind_name:?}: expected \"tcp\", \"http\", \"https\", \"dns\", \"icmp\" or \"exec\""
            ),
        ));
    }
    // Keys of one kind given to another are mistakes, not silently ignored.
    let is_http = kind_name == "http" || kind_name == "https";
    let foreign: [(&str, bool, &str); 15] = [
        ("method", check.method.is_some(), "http/https"),
        ("path", check.path.is_some(), "http/https"),
        ("host", check.host.is_some(), "http/https"),
        ("headers", check.headers.is_some(), "http/https"),
        ("expect_status", check.expect_status.is_some(), "http/https"),
        ("expect_body", check.expect_body.is_some(), "http/https"),
        ("body_limit", check.body_limit.is_some(), "http/https"),
        ("sni", check.sni.is_some(), "https"),
        ("verify", check.verify.is_some(), "https"),
        ("ca_file", check.ca_file.is_some(), "https"),
        ("query_name", check.query_name.is_some(), "dns"),
        ("query_type", check.query_type.is_some(), "dns"),
        ("expect_rcode", check.expect_rcode.is_some(), "dns"),
        ("expect_answer", check.expect_answer.is_some(), "dns"),
        ("command", check.command.is_some(), "exec"),
    ];
    for (key, present, kinds) in foreign {
        let applies = match kinds {
            "http/https" => is_http,
            other => other == kind_name,
        };
        if present && !applies {
            return Err(field_err(
                format!("{path}.{key}"),
                format!("{key} is for {kinds} checks, not {kind_name}"),
            ));
        }
    }
    if check.recursion.is_some() && kind_name != "dns" {
        return Err(field_err(
            format!("{path}.recursion"),
            format!("recursion is for dns checks, not {kind_name}"),
        ));
    }

    let port = match (check.port, kind_name) {
        (None, "tcp") => {
            return Err(field_err(
                format!("{path}.port"),
                "required for a tcp check (e.g. port = 443)",
            ));
        }
        (None, "http") => Some(80),
        (None, "https") => Some(443),
        (None, "dns") => Some(53),
        (None, _) => None,
        (Some(_), "icmp") => {
            return Err(field_err(
                format!("{path}.port"),
                "an icmp check has no port (echo requests go to the address)",
            ));
        }
        (Some(p), _) => Some(port_value(&format!("{path}.port"), p)?),
    };
    let interval = duration_value(
        &format!("{path}.interval"),
        check.interval.as_ref(),
        DEFAULT_INTERVAL,
    )?;
    let timeout = duration_value(
        &format!("{path}.timeout"),
        check.timeout.as_ref(),
        DEFAULT_TIMEOUT,
    )?;
    if timeout >= interval {
        return Err(field_err(
            format!("{path}.timeout"),
            format!(
                "timeout {} must be shorter than interval {} (checks of one endpoint never overlap)",
                humantime::format_duration(timeout),
                humantime::format_duration(interval)
            ),
        ));
    }
    let rise = count_value(&format!("{path}.rise"), check.rise, DEFAULT_RISE)?;
    let fall = count_value(&format!("{path}.fall"), check.fall, DEFAULT_FALL)?;
    let jitter = jitter_value(&format!("{path}.jitter"), check.jitter.as_deref(), interval)?;
    let target_address = check
        .target_address
        .as_deref()
        .map(|text| unicast_address(&format!("{path}.target_address"), text))
        .transpose()?;

    let kind = match kind_name {
        "tcp" => CheckKind::Tcp,
        "icmp" => CheckKind::Icmp,
        "http" | "https" => CheckKind::Http(http_value(path, check, kind_name == "https")?),
        "dns" => CheckKind::Dns(dns_value(path, check)?),
        "exec" => {
            let command = check.command.clone().unwrap_or_default();
            if command.is_empty() || command[0].is_empty() {
                return Err(field_err(
                    format!("{path}.command"),
                    "required for an exec check: the program and its arguments, e.g. [\"/usr/local/bin/check\", \"--quick\"]",
                ));
            }
            CheckKind::Exec(ExecCheck {
                command,
                check_name: name.to_string(),
            })
        }
        _ => unreachable!("checked above"),
    };
    Ok(Check {
        kind,
        port,
        interval,
        timeout,
        rise,
        fall,
        jitter,
        target_address,
    })
}

fn port_value(field: &str, port: i64) -> Result<u16, FieldError> {
    u16::try_from(port).ok().filter(|p| *p != 0).ok_or_else(|| {
        field_err(
            field,
            format!("port {port} is out of range: must be 1 to 65535"),
        )
    })
}

/// `"10%"` of `interval`, or a duration (`"50ms"`, `"0s"`); at most half the
/// interval, so the next check never starts before this one could end.
fn jitter_value(
    field: &str,
    text: Option<&str>,
    interval: Duration,
) -> Result<Duration, FieldError> {
    let Some(text) = text else {
        return Ok(Duration::ZERO);
    };
    let jitter = if let Some(percent) = text.trim().strip_suffix('%') {
        let percent: f64 = percent.trim().parse().map_err(|_| {
            field_err(
                field,
                format!("{text:?} is not a percentage or a duration (e.g. \"10%\", \"50ms\")"),
            )
        })?;
        if !(0.0..=50.0).contains(&percent) {
            return Err(field_err(
                field,
                format!("{text:?}: must be 0% to 50% of the interval"),
            ));
        }
        interval.mul_f64(percent / 100.0)
    } else {
        humantime::parse_duration(text.trim()).map_err(|e| {
            field_err(
                field,
                format!("{text:?} is not a percentage or a duration ({e}); write e.g. \"10%\" or \"50ms\""),
            )
        })?
    };
    if jitter > interval / 2 {
        return Err(field_err(
            field,
            format!(
                "jitter {} is more than half the interval {}",
                humantime::format_duration(jitter),
                humantime::format_duration(interval)
            ),
        ));
    }
    Ok(jitter)
}

fn http_value(path: &str, check: &CheckFile, tls: bool) -> Result<HttpCheck, FieldError> {
    let method = check.method.clone().unwrap_or_else(|| "GET".to_string());
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(field_err(
            format!("{path}.method"),
            format!("{method:?} is not an HTTP method (e.g. \"GET\", \"HEAD\")"),
        ));
    }
    let request_path = check.path.clone().unwrap_or_else(|| "/".to_string());
    if !request_path.starts_with('/') || request_path.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(field_err(
            format!("{path}.path"),
            format!(
                "{request_path:?}: must start with / and contain no spaces or control characters (percent-encode them)"
            ),
        ));
    }
    let header_text_ok = |v: &str| !v.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0);
    if let Some(host) = &check.host
        && (host.is_empty() || !header_text_ok(host) || host.contains(' '))
    {
        return Err(field_err(
            format!("{path}.host"),
            format!("{host:?} is not a host name"),
        ));
    }
    let mut headers = Vec::new();
    for (name, value) in check.headers.iter().flatten() {
        let token = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !token {
            return Err(field_err(
                format!("{path}.headers"),
                format!("{name:?} is not a header name"),
            ));
        }
        let managed = ["host", "connection", "content-length", "transfer-encoding"];
        if managed.contains(&name.to_ascii_lowercase().as_str()) {
            return Err(field_err(
                format!("{path}.headers.{name}"),
                format!("{name} is set by the check itself (use host = ... for Host)"),
            ));
        }
        if !header_text_ok(value) {
            return Err(field_err(
                format!("{path}.headers.{name}"),
                "a header value cannot contain line breaks",
            ));
        }
        headers.push((name.clone(), value.clone()));
    }
    let expect_status = match &check.expect_status {
        None => vec![(200, 399)],
        Some(list) if list.is_empty() => {
            return Err(field_err(
                format!("{path}.expect_status"),
                "at least one status or range is required (or leave it out for 200-399)",
            ));
        }
        Some(list) => {
            let mut ranges = Vec::with_capacity(list.len());
            for (i, item) in list.iter().enumerate() {
                ranges.push(status_value(&format!("{path}.expect_status[{i}]"), item)?);
            }
            ranges
        }
    };
    if let Some(body) = &check.expect_body
        && body.is_empty()
    {
        return Err(field_err(
            format!("{path}.expect_body"),
            "empty: leave it out to not look at the body",
        ));
    }
    let body_limit = match check.body_limit {
        None => DEFAULT_BODY_LIMIT,
        Some(n) if (1..=MAX_BODY_LIMIT).contains(&n) => n as usize,
        Some(n) => {
            return Err(field_err(
                format!("{path}.body_limit"),
                format!("{n} is out of range: must be 1 to {MAX_BODY_LIMIT}"),
            ));
        }
    };
    if let Some(body) = &check.expect_body
        && body.len() > body_limit
    {
        return Err(field_err(
            format!("{path}.expect_body"),
            format!(
                "{} bytes long, more than body_limit ({body_limit}): it could never be found",
                body.len()
            ),
        ));
    }
    let tls = if tls {
        let sni = match check.sni.as_ref().or(check.host.as_ref()) {
            None => None,
            Some(text) => {
                let name = text.trim_end_matches('.').to_string();
                // An IP address is verified against the certificate's IP SANs.
                let valid = name.parse::<IpAddr>().is_ok()
                    || rustls::pki_types::ServerName::try_from(name.as_str()).is_ok();
                if !valid {
                    let key = if check.sni.is_some() { "sni" } else { "host" };
                    return Err(field_err(
                        format!("{path}.{key}"),
                        format!("{text:?} is not a valid TLS server name"),
                    ));
                }
                Some(name)
            }
        };
        let ca_file = match &check.ca_file {
            None => None,
            Some(file) => {
                let file_path = std::path::PathBuf::from(file);
                crate::checks::http::load_ca_file(&file_path)
                    .map_err(|e| field_err(format!("{path}.ca_file"), e))?;
                Some(file_path)
            }
        };
        let verify = check.verify.unwrap_or(true);
        if !verify && ca_file.is_some() {
            return Err(field_err(
                format!("{path}.ca_file"),
                "verify = false accepts any certificate: ca_file would be ignored",
            ));
        }
        Some(TlsCheck {
            sni,
            verify,
            ca_file,
        })
    } else {
        None
    };
    Ok(HttpCheck {
        method,
        path: request_path,
        host: check.host.clone(),
        headers,
        expect_status,
        expect_body: check.expect_body.clone(),
        body_limit,
        tls,
    })
}

/// `200`, `"200"` or `"200-299"`, 100 to 599.
fn status_value(field: &str, item: &StatusFile) -> Result<(u16, u16), FieldError> {
    let bad = |text: String| {
        field_err(
            field,
            format!(
                "{text} is not a status or a range of statuses 100 to 599 (e.g. 200, \"200-299\")"
            ),
        )
    };
    let code = |n: i64| u16::try_from(n).ok().filter(|c| (100..=599).contains(c));
    match item {
        StatusFile::Code(n) => code(*n).map(|c| (c, c)).ok_or_else(|| bad(n.to_string())),
        StatusFile::Text(text) => {
            let parse = |s: &str| s.trim().parse::<i64>().ok().and_then(code);
            let range = match text.split_once('-') {
                None => parse(text).map(|c| (c, c)),
                Some((low, high)) => parse(low).zip(parse(high)),
            };
            match range {
                Some((low, high)) if low <= high => Ok((low, high)),
                _ => Err(bad(format!("{text:?}"))),
            }
        }
    }
}

fn dns_value(path: &str, check: &CheckFile) -> Result<DnsCheck, FieldError> {
    let Some(name) = &check.query_name else {
        return Err(field_err(
            format!("{path}.query_name"),
            "required for a dns check: the name to query, e.g. \"www.example.test.\"",
        ));
    };
    let query_name = dns_name(&format!("{path}.query_name"), name)?;
    let type_text = check.query_type.as_deref().unwrap_or("A");
    let query_type = type_text
        .to_ascii_uppercase()
        .parse::<hickory_proto::rr::RecordType>()
        .ok()
        .filter(|t| !matches!(t, hickory_proto::rr::RecordType::Unknown(_)))
        .map(u16::from)
        .ok_or_else(|| {
            field_err(
                format!("{path}.query_type"),
                format!("{type_text:?} is not a DNS record type (e.g. \"A\", \"AAAA\", \"SOA\")"),
            )
        })?;
    let rcode_text = check.expect_rcode.as_deref().unwrap_or("NOERROR");
    let expect_rcode = RCODES
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(rcode_text))
        .map(|(_, c)| *c)
        .ok_or_else(|| {
            let names: Vec<&str> = RCODES.iter().map(|(n, _)| *n).collect();
            field_err(
                format!("{path}.expect_rcode"),
                format!(
                    "{rcode_text:?} is not a response code ({})",
                    names.join(", ")
                ),
            )
        })?;
    if let Some(answer) = &check.expect_answer
        && answer.is_empty()
    {
        return Err(field_err(
            format!("{path}.expect_answer"),
            "empty: leave it out to accept any answer",
        ));
    }
    Ok(DnsCheck {
        query_name,
        query_type,
        expect_rcode,
        expect_answer: check.expect_answer.clone(),
        recursion: check.recursion.unwrap_or(false),
    })
}

/// An endpoint's `check_address`/`check_port`.
fn endpoint_check_target(
    path: &str,
    endpoint: &EndpointFile,
    check: &Check,
) -> Result<(Option<IpAddr>, Option<u16>), FieldError> {
    let address = endpoint
        .check_address
        .as_deref()
        .map(|text| unicast_address(&format!("{path}.check_address"), text))
        .transpose()?;
    let port = match endpoint.check_port {
        None => None,
        Some(_) if check.kind == CheckKind::Icmp => {
            return Err(field_err(
                format!("{path}.check_port"),
                "the record's check is icmp, which has no port",
            ));
        }
        Some(p) => Some(port_value(&format!("{path}.check_port"), p)?),
    };
    Ok((address, port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    /// The example from the issue, verbatim.
    const EXAMPLE: &str = r#"
[[zone]]
origin = "example.test."
ttl = 30

[[record]]
name = "www.example.test."
type = "A"
policy = "failover"
check = "web"
endpoints = [
  { address = "192.0.2.10", priority = 1 },
  { address = "192.0.2.11", priority = 2 },
]

[checks.web]
kind = "tcp"
port = 80
interval = "1s"
timeout = "500ms"
rise = 2
fall = 3
"#;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, "test.toml")
    }

    /// The example with `from` replaced by `to` (which must occur exactly once).
    fn example_with(from: &str, to: &str) -> String {
        assert_eq!(EXAMPLE.matches(from).count(), 1, "{from:?} occurs once");
        EXAMPLE.replace(from, to)
    }

    fn error_of(text: &str) -> String {
        match parse(text) {
            Ok(config) => panic!("expected an error, got {config:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn assert_error(text: &str, expected: &[&str]) {
        let message = error_of(text);
        assert!(message.starts_with("test.toml:"), "{message}");
        for part in expected {
            assert!(message.contains(part), "{message:?} lacks {part:?}");
        }
    }

    /// The example's record with `extra` lines after `check = "web"`.
    fn with_record_keys(extra: &str) -> String {
        example_with("check = \"web\"\n", &format!("check = \"web\"\n{extra}\n"))
    }

    /// A weighted record with `endpoints` (the inside of the list).
    fn weighted(endpoints: &str) -> String {
        example_with(
            "policy = \"failover\"\ncheck = \"web\"\nendpoints = [\n  { address = \"192.0.2.10\", priority = 1 },\n  { address = \"192.0.2.11\", priority = 2 },\n]",
            &format!("policy = \"weighted\"\ncheck = \"web\"\nendpoints = [{endpoints}]"),
        )
    }

    #[test]
    fn policy_options_parse() {
        let record = |text: &str| parse(text).unwrap().records.remove(0);
        let r = record(EXAMPLE);
        assert_eq!(r.min_healthy, MinHealthy::Count(1));
        assert_eq!(r.max_answers, DEFAULT_MAX_ANSWERS);
        assert_eq!(r.when_all_down, WhenAllDown::FailOpen);
        assert_eq!(r.degraded_ttl, None);
        assert_eq!(r.endpoints[0].weight, 1);
        assert_eq!(
            record(&with_record_keys("min_healthy = 2")).min_healthy,
            MinHealthy::Count(2)
        );
        assert_eq!(
            record(&with_record_keys("min_healthy = \"50%\"")).min_healthy,
            MinHealthy::Percent(50)
        );
        let r = record(&with_record_keys("ttl = 60\ndegraded_ttl = 5"));
        assert_eq!((r.ttl, r.degraded_ttl), (60, Some(5)));
        for (mode, expected) in [
            ("fail-open", WhenAllDown::FailOpen),
            ("nodata", WhenAllDown::NoData),
            ("servfail", WhenAllDown::ServFail),
        ] {
            let r = record(&with_record_keys(&format!("when_all_down = \"{mode}\"")));
            assert_eq!(r.when_all_down, expected);
        }
        let r = record(&with_record_keys(
            "when_all_down = \"fallback\"\nfallback = [\"192.0.2.99\", \"192.0.2.98\"]",
        ));
        assert_eq!(
            r.when_all_down,
            WhenAllDown::Fallback(vec![
                Ipv4Addr::new(192, 0, 2, 99).into(),
                Ipv4Addr::new(192, 0, 2, 98).into()
            ])
        );
        let r = record(&example_with(
            "policy = \"failover\"",
            "policy = \"all-healthy\"\nmax_answers = 3",
        ));
        assert_eq!((r.policy, r.max_answers), (Policy::AllHealthy, 3));
        let r = record(&weighted(
            "{ address = \"192.0.2.10\", weight = 3 }, { address = \"192.0.2.11\", weight = 0 }",
        ));
        assert_eq!(r.policy, Policy::Weighted);
        assert_eq!(
            r.endpoints.iter().map(|e| e.weight).collect::<Vec<_>>(),
            [3, 0]
        );
    }

    #[test]
    fn policy_option_errors_name_the_field() {
        let cases: &[(String, &[&str])] = &[
            (
                with_record_keys("min_healthy = 0"),
                &["record[0].min_healthy", "0 is out of range"],
            ),
            (
                with_record_keys("min_healthy = \"150%\""),
                &["record[0].min_healthy", "150% is out of range"],
            ),
            (
                with_record_keys("min_healthy = \"half\""),
                &["record[0].min_healthy", "not a percentage"],
            ),
            (
                with_record_keys("min_healthy = 1.5"),
                &["record[0].min_healthy", "a float"],
            ),
            (
                with_record_keys("max_answers = 2"),
                &[
                    "record[0].max_answers",
                    "only allowed with policy \"all-healthy\"",
                ],
            ),
            (
                example_with(
                    "policy = \"failover\"",
                    "policy = \"all-healthy\"\nmax_answers = 17",
                ),
                &["record[0].max_answers", "17 is out of range: 1 to 16"],
            ),
            (
                example_with(
                    "policy = \"failover\"",
                    "policy = \"all-healthy\"\nmin_healthy = 2",
                ),
                &[
                    "record[0].min_healthy",
                    "only allowed with policy \"failover\"",
                ],
            ),
            (
                with_record_keys("when_all_down = \"panic\""),
                &["record[0].when_all_down", "unknown mode \"panic\""],
            ),
            (
                with_record_keys("when_all_down = \"fallback\""),
                &[
                    "record[0].fallback",
                    "required with when_all_down = \"fallback\"",
                ],
            ),
            (
                with_record_keys("fallback = [\"192.0.2.99\"]"),
                &[
                    "record[0].fallback",
                    "only allowed with when_all_down = \"fallback\"",
                ],
            ),
            (
                with_record_keys("when_all_down = \"fallback\"\nfallback = []"),
                &["record[0].fallback", "0 addresses"],
            ),
            (
                with_record_keys("when_all_down = \"fallback\"\nfallback = [\"2001:db8::1\"]"),
                &["record[0].fallback[0]", "IPv6"],
            ),
            (
                with_record_keys(
                    "when_all_down = \"fallback\"\nfallback = [\"192.0.2.9\", \"192.0.2.9\"]",
                ),
                &["record[0].fallback[1]", "listed twice"],
            ),
            (
                with_record_keys("degraded_ttl = 31"),
                &[
                    "record[0].degraded_ttl",
                    "longer than the record's TTL (30)",
                ],
            ),
            (
                with_record_keys("degraded_ttl = -1"),
                &["record[0].degraded_ttl"],
            ),
            (
                weighted("{ address = \"192.0.2.10\" }"),
                &[
                    "record[0].endpoints[0].weight",
                    "required with policy \"weighted\"",
                ],
            ),
            (
                weighted("{ address = \"192.0.2.10\", weight = 1000001 }"),
                &[
                    "record[0].endpoints[0].weight",
                    "out of range: 0 to 1000000",
                ],
            ),
            (
                weighted("{ address = \"192.0.2.10\", weight = 1, priority = 1 }"),
                &[
                    "record[0].endpoints[0].priority",
                    "not allowed with policy \"weighted\"",
                ],
            ),
            (
                example_with(
                    "{ address = \"192.0.2.10\", priority = 1 }",
                    "{ address = \"192.0.2.10\", priority = 1, weight = 2 }",
                ),
                &[
                    "record[0].endpoints[0].weight",
                    "only allowed with policy \"weighted\"",
                ],
            ),
        ];
        for (text, expected) in cases {
            assert_error(text, expected);
        }
    }

    #[test]
    fn admin_section() {
        let config = parse(EXAMPLE).unwrap();
        assert_eq!(config.admin, Admin::default());
        assert_eq!(
            config.admin.control_socket.as_deref(),
            Some(Path::new("/run/failover-agent.sock"))
        );
        let config = parse(&format!(
            "{EXAMPLE}\n[admin]\nstate_file = \"/var/lib/failover/admin-state.toml\"\ncontrol_socket = \"/run/f.sock\"\n"
        ))
        .unwrap();
        assert_eq!(
            config.admin,
            Admin {
                state_file: Some(PathBuf::from("/var/lib/failover/admin-state.toml")),
                control_socket: Some(PathBuf::from("/run/f.sock")),
                control_socket_is_default: false,
            }
        );
        let config = parse(&format!("{EXAMPLE}\n[admin]\ncontrol_socket = \"\"\n")).unwrap();
        assert_eq!(config.admin.control_socket, None, "\"\" disables it");
        assert_error(
            &format!("{EXAMPLE}\n[admin]\nstate_file = \"admin.toml\"\n"),
            &["admin.state_file", "absolute path"],
        );
        assert_error(
            &format!("{EXAMPLE}\n[admin]\ncontrol_socket = \"f.sock\"\n"),
            &["admin.control_socket", "absolute path"],
        );
        assert_error(
            &format!("{EXAMPLE}\n[admin]\nsocket = \"/run/x\"\n"),
            &["admin.socket", "unknown field"],
        );
    }

    #[test]
    fn example_loads() {
        let config = parse(EXAMPLE).unwrap();
        assert_eq!(
            config.zones,
            vec![Zone {
                origin: "example.test.".into(),
                ttl: 30,
                mname: "ns1.example.test.".into(),
                rname: "hostmaster.example.test.".into(),
                serial: DEFAULT_SERIAL,
                refresh: 3600,
                retry: 600,
                expire: 1_209_600,
                minimum: 30,
                soa_ttl: 30,
                nameservers: vec![Nameserver {
                    name: "ns1.example.test.".into(),
                    addresses: vec![],
                }],
                nameservers_defaulted: true,
            }]
        );
        assert_eq!(
            config.records,
            vec![Record {
                name: "www.example.test.".into(),
                rtype: RecordType::A,
                zone: 0,
                ttl: 30,
                policy: Policy::Failover,
                check_name: "web".into(),
                check: Check {
                    kind: CheckKind::Tcp,
                    port: Some(80),
                    interval: Duration::from_secs(1),
                    timeout: Duration::from_millis(500),
                    rise: 2,
                    fall: 3,
                    jitter: Duration::ZERO,
                    target_address: None,
                },
                endpoints: vec![
                    Endpoint {
                        address: Ipv4Addr::new(192, 0, 2, 10).into(),
                        priority: 1,
                        weight: 1,
                        check_address: None,
                        check_port: None
                    },
                    Endpoint {
                        address: Ipv4Addr::new(192, 0, 2, 11).into(),
                        priority: 2,
                        weight: 1,
                        check_address: None,
                        check_port: None
                    },
                ],
                min_healthy: MinHealthy::Count(1),
                max_answers: 8,
                when_all_down: WhenAllDown::FailOpen,
                degraded_ttl: None,
            }]
        );
        assert_eq!(config.endpoint_count(), 2);
        assert_eq!(config.server, Server::default());
        assert_eq!(config.server.mode, ServerMode::Authoritative);
        assert_eq!(
            config.server.listen,
            [
                "0.0.0.0:53".parse::<SocketAddr>().unwrap(),
                "[::]:53".parse().unwrap()
            ]
        );
        assert_eq!(config.server.tcp_idle_timeout, Duration::from_secs(10));
        assert_eq!(config.server.tcp_max_connections, 256);
        assert_eq!(
            config.zones[0].soa(),
            ZoneSoa {
                apex: "example.test.".into(),
                mname: "ns1.example.test.".into(),
                rname: "hostmaster.example.test.".into(),
                serial: 1,
                refresh: 3600,
                retry: 600,
                expire: 1_209_600,
                minimum: 30,
                negative_ttl: 30,
            }
        );
        // Loads, but a delegation to it would be lame: say so.
        let warnings = config.warnings();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].contains("zone[0].nameservers")
                && warnings[0].contains("ns1.example.test."),
            "{warnings:?}"
        );
    }

    #[test]
    fn default_config_is_the_loopback_demo() {
        let config = Config::default_demo();
        let record = &config.records[0];
        assert_eq!(record.name, "www.example.test.");
        assert_eq!(record.policy, Policy::Failover);
        assert_eq!(
            record.endpoints,
            vec![
                Endpoint {
                    address: Ipv4Addr::new(127, 0, 0, 10).into(),
                    priority: 1,
                    weight: 1,
                    check_address: None,
                    check_port: None
                },
                Endpoint {
                    address: Ipv4Addr::new(127, 0, 0, 11).into(),
                    priority: 2,
                    weight: 1,
                    check_address: None,
                    check_port: None
                },
            ]
        );
        assert_eq!(record.check.port, Some(8080));
        assert_eq!(record.check.interval, Duration::from_secs(1));
        assert_eq!(record.check.timeout, Duration::from_millis(500));
        assert_eq!((record.check.rise, record.check.fall), (2, 3));
    }

    #[test]
    fn defaults_and_relative_names() {
        let text = r#"
[[zone]]
origin = "Example.test"
[[record]]
name = "api.EXAMPLE.test"
type = "a"
policy = "all-healthy"
check = "c"
ttl = 5
endpoints = [{ address = "192.0.2.1" }, { address = "192.0.2.2" }]
[[record]]
name = "www.example.test."
type = "A"
policy = "failover"
check = "c"
endpoints = [{ address = "192.0.2.1" }]
[checks.c]
kind = "tcp"
port = 443
"#;
        let config = parse(text).unwrap();
        assert_eq!(config.zones[0].origin, "Example.test.");
        assert_eq!(config.zones[0].ttl, DEFAULT_TTL);
        let api = &config.records[0];
        assert_eq!(api.name, "api.EXAMPLE.test.");
        assert_eq!(api.ttl, 5, "record ttl overrides the zone's");
        assert_eq!(api.policy, Policy::AllHealthy);
        assert_eq!(api.endpoints[1].priority, 1);
        assert_eq!(config.records[1].ttl, DEFAULT_TTL);
        let check = &api.check;
        assert_eq!(check.interval, DEFAULT_INTERVAL);
        assert_eq!(check.timeout, DEFAULT_TIMEOUT);
        assert_eq!((check.rise, check.fall), (DEFAULT_RISE, DEFAULT_FALL));
    }

    #[test]
    fn unknown_keys_are_rejected_with_their_path() {
        assert_error(
            &example_with(
                "{ address = \"192.0.2.11\", priority = 2 }",
                "{ address = \"192.0.2.11\", priority = 2, wieght = 5 }",
            ),
            &["test.toml:13:43: record[0].endpoints[1].wieght: unknown field `wieght`"],
        );
        assert_error(
            &example_with("fall = 3", "fall = 3\nretries = 1"),
            &["checks.web", "unknown field `retries`"],
        );
        assert_error(
            &example_with("ttl = 30", "ttl = 30\nserail = 1"),
            &["zone[0]", "unknown field `serail`"],
        );
        assert_error(
            &format!("{EXAMPLE}\n[server]\nport = 53\n"),
            &["server", "unknown field `port`"],
        );
        assert_error(
            &example_with(
                "ttl = 30",
                "ttl = 30\nnameservers = [{ name = \"ns.other.\", glue = [] }]",
            ),
            &["zone[0].nameservers[0]", "unknown field `glue`"],
        );
    }

    #[test]
    fn type_errors_name_the_field() {
        assert_error(
            &example_with("port = 80", "port = \"80\""),
            &["checks.web.port", "invalid type: string \"80\""],
        );
        assert_error(
            &example_with("interval = \"1s\"", "interval = 1"),
            &["checks.web.interval", "invalid type: integer"],
        );
        assert_error(
            &example_with("policy = \"failover\"\n", ""),
            &["record[0]", "missing field `policy`"],
        );
        assert_error("[[zone]\n", &["test.toml:1:"]);
    }

    #[test]
    fn bad_endpoint_addresses() {
        assert_error(
            &example_with("\"192.0.2.11\"", "\"192.0.2.300\""),
            &[
                "record[0].endpoints[1].address",
                "\"192.0.2.300\" is not an IPv4 address",
            ],
        );
        assert_error(
            &example_with("\"192.0.2.11\"", "\"2001:db8::1\""),
            &[
                "record[0].endpoints[1].address",
                "2001:db8::1 is an IPv6 address",
                "type \"AAAA\" record",
            ],
        );
        assert_error(
            &example_with("\"192.0.2.11\"", "\"0.0.0.0\""),
            &["record[0].endpoints[1].address", "not a unicast address"],
        );
        assert_error(
            &example_with("\"192.0.2.11\"", "\"192.0.2.10\""),
            &[
                "record[0].endpoints[1].address",
                "192.0.2.10 is already endpoint 0",
            ],
        );
    }

    #[test]
    fn bad_priorities() {
        assert_error(
            &example_with("priority = 2", "priority = 0"),
            &[
                "record[0].endpoints[1].priority",
                "priority 0 is out of range",
            ],
        );
        assert_error(
            &example_with("priority = 1", "priority = -1"),
            &["record[0].endpoints[0].priority", "must be 1 or more"],
        );
    }

    #[test]
    fn endpoint_count_limits() {
        assert_error(
            &example_with(
                "  { address = \"192.0.2.10\", priority = 1 },\n  { address = \"192.0.2.11\", priority = 2 },\n",
                "",
            ),
            &["record[0].endpoints", "at least one endpoint is required"],
        );
        let seventeen: String = (1..=17)
            .map(|i| format!("{{ address = \"192.0.2.{i}\" }},"))
            .collect();
        let sixteen: String = (1..=16)
            .map(|i| format!("{{ address = \"192.0.2.{i}\" }},"))
            .collect();
        let with = |list: &str| {
            example_with(
                "  { address = \"192.0.2.10\", priority = 1 },\n  { address = \"192.0.2.11\", priority = 2 },\n",
                list,
            )
        };
        assert_error(
            &with(&seventeen),
            &["record[0].endpoints", "17 endpoints", "at most 16"],
        );
        assert_eq!(
            parse(&with(&sixteen)).unwrap().records[0].endpoints.len(),
            16
        );
    }

    #[test]
    fn bad_names() {
        assert_error(
            &example_with("\"www.example.test.\"", "\"www..example.test.\""),
            &["record[0].name", "empty label"],
        );
        assert_error(
            &example_with("\"www.example.test.\"", "\"w w.example.test.\""),
            &["record[0].name", "contains ' '"],
        );
        let long_label = format!("\"{}.example.test.\"", "a".repeat(64));
        assert_error(
            &example_with("\"www.example.test.\"", &long_label),
            &["record[0].name", "1 to 63 bytes"],
        );
        let long_name = format!("\"{}.example.test.\"", vec!["a".repeat(63); 4].join("."));
        assert_error(
            &example_with("\"www.example.test.\"", &long_name),
            &["record[0].name", "longer than 255 bytes"],
        );
        assert_error(
            &example_with("\"www.example.test.\"", "\"www.example.org.\""),
            &[
                "record[0].name",
                "www.example.org. is not inside any configured zone (zones: example.test.)",
            ],
        );
        // A suffix match is not enough: the zone boundary is a label boundary.
        assert_error(
            &example_with("\"www.example.test.\"", "\"wwwexample.test.\""),
            &["record[0].name", "not inside any configured zone"],
        );
        assert_error(
            &example_with("origin = \"example.test.\"", "origin = \"\""),
            &["zone[0].origin", "empty"],
        );
    }

    #[test]
    fn zone_and_record_duplicates() {
        assert_error(
            &format!("{EXAMPLE}\n[[zone]]\norigin = \"EXAMPLE.test\"\n"),
            &["zone[1].origin", "already configured as zone[0]"],
        );
        let second = "\n[[record]]\nname = \"WWW.example.test\"\ntype = \"A\"\npolicy = \"failover\"\ncheck = \"web\"\nendpoints = [{ address = \"192.0.2.1\" }]\n";
        assert_error(
            &format!("{EXAMPLE}{second}"),
            &[
                "record[1].name",
                "duplicate record: WWW.example.test. A",
                "record[0]",
            ],
        );
        assert_error("", &["zone", "at least one [[zone]]"]);
        let many: String = (0..=MAX_ZONES)
            .map(|i| format!("[[zone]]\norigin = \"z{i}.test.\"\n"))
            .collect();
        assert_error(&many, &["zone", "1025 zones", "at most 1024"]);
        assert_error(
            "[[zone]]\norigin = \"example.test.\"\n",
            &["record", "at least one [[record]]"],
        );
    }

    #[test]
    fn record_type_policy_and_check_reference() {
        assert_error(
            &example_with("type = \"A\"", "type = \"AAAA\""),
            &[
                "record[0].endpoints[0].address",
                "192.0.2.10 is an IPv4 address",
                "type \"A\" record",
            ],
        );
        assert_error(
            &example_with("type = \"A\"", "type = \"MX\""),
            &[
                "record[0].type",
                "unknown record type \"MX\"",
                "\"A\" and \"AAAA\"",
            ],
        );
        assert_error(
            &example_with("policy = \"failover\"", "policy = \"round-robin\""),
            &[
                "record[0].policy",
                "unknown policy \"round-robin\"",
                "\"failover\", \"all-healthy\" or \"weighted\"",
            ],
        );
        assert_error(
            &example_with("check = \"web\"", "check = \"http\""),
            &["record[0].check", "no check named \"http\"", "[checks.web]"],
        );
    }

    #[test]
    fn ttl_range_is_rfc_2181() {
        assert_error(
            &example_with("ttl = 30", "ttl = -1"),
            &["zone[0].ttl", "TTL -1 is out of range", "RFC 2181"],
        );
        assert_error(
            &example_with("ttl = 30", "ttl = 2147483648"),
            &["zone[0].ttl", "2147483647"],
        );
        assert_error(
            &example_with("check = \"web\"", "check = \"web\"\nttl = 4294967296"),
            &["record[0].ttl", "out of range"],
        );
        let max = parse(&example_with("ttl = 30", "ttl = 2147483647")).unwrap();
        assert_eq!(max.records[0].ttl, MAX_TTL);
        let zero = parse(&example_with("ttl = 30", "ttl = 0")).unwrap();
        assert_eq!(zero.records[0].ttl, 0);
    }

    /// The example with its `[checks.web]` replaced by `check` (TOML body).
    fn with_check(check: &str) -> String {
        let at = EXAMPLE.find("[checks.web]").unwrap();
        format!("{}[checks.web]\n{check}\n", &EXAMPLE[..at])
    }

    fn check_of(check: &str) -> Check {
        parse(&with_check(check))
            .unwrap_or_else(|e| panic!("{e}"))
            .records[0]
            .check
            .clone()
    }

    #[test]
    fn http_and_https_checks() {
        let check = check_of(
            "kind = \"http\"\nmethod = \"HEAD\"\npath = \"/healthz?deep=1\"\nhost = \"www.example.test\"\n\
             headers = { \"X-Probe\" = \"failover\", Accept = \"text/plain\" }\n\
             expect_status = [\"200-299\", 301, \"302\"]\nexpect_body = \"ok\"\nbody_limit = 100\n\
             interval = \"2s\"\ntimeout = \"1s\"\njitter = \"10%\"",
        );
        assert_eq!(check.port, Some(80), "http's default port");
        assert_eq!(check.jitter, Duration::from_millis(200));
        let CheckKind::Http(http) = &check.kind else {
            panic!("{check:?}")
        };
        assert_eq!(http.method, "HEAD");
        assert_eq!(http.path, "/healthz?deep=1");
        assert_eq!(http.host.as_deref(), Some("www.example.test"));
        assert_eq!(
            http.headers,
            [
                ("Accept".to_string(), "text/plain".to_string()),
                ("X-Probe".to_string(), "failover".to_string())
            ]
        );
        assert_eq!(http.expect_status, [(200, 299), (301, 301), (302, 302)]);
        assert_eq!(http.expect_body.as_deref(), Some("ok"));
        assert_eq!(http.body_limit, 100);
        assert_eq!(http.tls, None);
        assert_eq!(check.kind.name(), "http");

        let defaults = check_of("kind = \"https\"");
        assert_eq!(defaults.port, Some(443));
        assert_eq!(defaults.jitter, Duration::ZERO);
        let CheckKind::Http(http) = &defaults.kind else {
            panic!()
        };
        assert_eq!((http.method.as_str(), http.path.as_str()), ("GET", "/"));
        assert_eq!(http.expect_status, [(200, 399)]);
        assert_eq!(http.body_limit, 4096);
        assert_eq!(
            http.tls,
            Some(TlsCheck {
                sni: None,
                verify: true,
                ca_file: None
            })
        );
        assert_eq!(defaults.kind.name(), "https");
        let https =
            check_of("kind = \"https\"\nport = 8443\nsni = \"api.example.test.\"\nverify = false");
        let CheckKind::Http(http) = &https.kind else {
            panic!()
        };
        let tls = http.tls.as_ref().unwrap();
        assert_eq!(
            tls.sni.as_deref(),
            Some("api.example.test"),
            "final dot dropped"
        );
        assert!(!tls.verify);
        // host doubles as the TLS name.
        let CheckKind::Http(http) = check_of("kind = \"https\"\nhost = \"h.example.test\"").kind
        else {
            panic!()
        };
        assert_eq!(http.tls.unwrap().sni.as_deref(), Some("h.example.test"));
    }

    #[test]
    fn http_check_errors() {
        let http = |extra: &str| with_check(&format!("kind = \"http\"\n{extra}"));
        assert_error(
            &http("method = \"get me\""),
            &["checks.web.method", "not an HTTP method"],
        );
        assert_error(
            &http("path = \"health\""),
            &["checks.web.path", "must start with /"],
        );
        assert_error(&http("path = \"/a b\""), &["checks.web.path"]);
        assert_error(
            &http("expect_status = [\"2xx\"]"),
            &["checks.web.expect_status[0]", "not a status"],
        );
        assert_error(
            &http("expect_status = [\"299-200\"]"),
            &["checks.web.expect_status[0]"],
        );
        assert_error(
            &http("expect_status = [600]"),
            &["checks.web.expect_status[0]"],
        );
        assert_error(
            &http("expect_status = []"),
            &["checks.web.expect_status", "at least one"],
        );
        assert_error(
            &http("headers = { Host = \"x\" }"),
            &["checks.web.headers.Host", "use host ="],
        );
        assert_error(
            &http("headers = { \"X A\" = \"x\" }"),
            &["checks.web.headers", "not a header name"],
        );
        assert_error(
            &http("headers = { X = \"a\\r\\nB: c\" }"),
            &["checks.web.headers.X", "line breaks"],
        );
        assert_error(
            &http("body_limit = 0"),
            &["checks.web.body_limit", "out of range"],
        );
        assert_error(
            &http("expect_body = \"abcdef\"\nbody_limit = 3"),
            &["checks.web.expect_body", "more than body_limit"],
        );
        assert_error(
            &http("sni = \"x\""),
            &["checks.web.sni", "for https checks, not http"],
        );
        assert_error(
            &http("query_name = \"x.\""),
            &["checks.web.query_name", "for dns checks"],
        );
        assert_error(
            &with_check("kind = \"https\"\nca_file = \"/nonexistent/ca.pem\""),
            &["checks.web.ca_file", "cannot read /nonexistent/ca.pem"],
        );
        assert_error(
            &with_check("kind = \"https\"\nsni = \"bad name!\""),
            &["checks.web.sni", "not a valid TLS server name"],
        );
        let dir = std::env::temp_dir().join(format!("failover-ca-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let not_pem = dir.join("ca.pem");
        std::fs::write(&not_pem, "hello\n").unwrap();
        let message = error_of(&with_check(&format!(
            "kind = \"https\"\nca_file = \"{}\"",
            not_pem.display()
        )));
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(message.contains("checks.web.ca_file"), "{message}");
        assert!(message.contains("no certificate"), "{message}");
        assert_error(
            &with_check("kind = \"https\"\nverify = false\nca_file = \"/x.pem\""),
            &["checks.web.ca_file"],
        );
    }

    #[test]
    fn dns_icmp_exec_checks() {
        let check = check_of(
            "kind = \"dns\"\nquery_name = \"www.example.test\"\nquery_type = \"aaaa\"\n\
             expect_rcode = \"nxdomain\"\nexpect_answer = \"2001:db8::1\"\nrecursion = true",
        );
        assert_eq!(check.port, Some(53));
        assert_eq!(
            check.kind,
            CheckKind::Dns(DnsCheck {
                query_name: "www.example.test.".into(),
                query_type: 28,
                expect_rcode: 3,
                expect_answer: Some("2001:db8::1".into()),
                recursion: true,
            })
        );
        let CheckKind::Dns(dns) =
            check_of("kind = \"dns\"\nport = 5353\nquery_name = \"a.test.\"").kind
        else {
            panic!()
        };
        assert_eq!(
            (dns.query_type, dns.expect_rcode, dns.recursion),
            (1, 0, false)
        );
        assert_error(
            &with_check("kind = \"dns\""),
            &["checks.web.query_name", "required"],
        );
        assert_error(
            &with_check("kind = \"dns\"\nquery_name = \"a.\"\nquery_type = \"BOGUS\""),
            &["checks.web.query_type", "not a DNS record type"],
        );
        assert_error(
            &with_check("kind = \"dns\"\nquery_name = \"a.\"\nexpect_rcode = \"OK\""),
            &["checks.web.expect_rcode", "not a response code", "NXDOMAIN"],
        );

        let icmp = check_of("kind = \"icmp\"\ninterval = \"200ms\"\ntimeout = \"100ms\"");
        assert_eq!((icmp.kind.clone(), icmp.port), (CheckKind::Icmp, None));
        assert_error(
            &with_check("kind = \"icmp\"\nport = 1"),
            &["checks.web.port", "no port"],
        );

        let exec = check_of("kind = \"exec\"\ncommand = [\"/bin/check\", \"--fast\"]");
        assert_eq!(
            exec.kind,
            CheckKind::Exec(ExecCheck {
                command: vec!["/bin/check".into(), "--fast".into()],
                check_name: "web".into()
            })
        );
        assert_eq!(exec.port, None);
        assert_eq!(
            check_of("kind = \"exec\"\nport = 5432\ncommand = [\"x\"]").port,
            Some(5432)
        );
        assert_error(
            &with_check("kind = \"exec\""),
            &["checks.web.command", "required"],
        );
        assert_error(
            &with_check("kind = \"exec\"\ncommand = []"),
            &["checks.web.command"],
        );
        assert_error(
            &with_check("kind = \"tcp\""),
            &["checks.web.port", "required for a tcp check"],
        );
        assert_error(
            &with_check("kind = \"tcp\"\nport = 1\ncommand = [\"x\"]"),
            &["checks.web.command", "for exec checks, not tcp"],
        );
        assert_error(
            &with_check("kind = \"tcp\"\nport = 1\nrecursion = true"),
            &["checks.web.recursion", "for dns checks"],
        );
    }

    #[test]
    fn jitter_values() {
        let jitter =
            |text: &str| check_of(&format!("kind = \"tcp\"\nport = 1\njitter = \"{text}\"")).jitter;
        assert_eq!(jitter("10%"), Duration::from_millis(100));
        assert_eq!(jitter("50ms"), Duration::from_millis(50));
        assert_eq!(jitter("0s"), Duration::ZERO);
        assert_eq!(jitter("50%"), Duration::from_millis(500));
        assert_error(
            &with_check("kind = \"tcp\"\nport = 1\njitter = \"51%\""),
            &["checks.web.jitter", "0% to 50%"],
        );
        assert_error(
            &with_check("kind = \"tcp\"\nport = 1\njitter = \"600ms\""),
            &["checks.web.jitter", "more than half the interval"],
        );
        assert_error(
            &with_check("kind = \"tcp\"\nport = 1\njitter = \"lots\""),
            &["checks.web.jitter", "not a percentage or a duration"],
        );
    }

    #[test]
    fn check_targets_and_overrides() {
        let text = with_check("kind = \"tcp\"\nport = 80\ntarget_address = \"10.0.0.1\"").replace(
            "{ address = \"192.0.2.11\", priority = 2 }",
            "{ address = \"192.0.2.11\", priority = 2, check_address = \"2001:db8::11\", check_port = 8080 }",
        );
        let config = parse(&text).unwrap();
        let record = &config.records[0];
        let targets: Vec<String> = record
            .endpoints
            .iter()
            .map(|e| record.check.target(e).to_string())
            .collect();
        assert_eq!(targets, ["10.0.0.1:80", "[2001:db8::11]:8080"]);
        // Without overrides: the endpoint's own address and the check's port.
        let plain = parse(EXAMPLE).unwrap();
        let record = &plain.records[0];
        assert_eq!(
            record.check.target(&record.endpoints[0]),
            CheckTarget {
                address: "192.0.2.10".parse().unwrap(),
                port: Some(80)
            }
        );
        assert_error(
            &with_check("kind = \"tcp\"\nport = 80\ntarget_address = \"nope\""),
            &["checks.web.target_address", "not an IP address"],
        );
        let bad_port = EXAMPLE.replace(
            "{ address = \"192.0.2.10\", priority = 1 }",
            "{ address = \"192.0.2.10\", priority = 1, check_port = 0 }",
        );
        assert_error(
            &bad_port,
            &["record[0].endpoints[0].check_port", "out of range"],
        );
        let icmp_port = with_check("kind = \"icmp\"").replace(
            "{ address = \"192.0.2.10\", priority = 1 }",
            "{ address = \"192.0.2.10\", priority = 1, check_port = 80 }",
        );
        assert_error(&icmp_port, &["record[0].endpoints[0].check_port", "icmp"]);
    }

    #[test]
    fn rcode_names() {
        assert_eq!(rcode_name(0), "NOERROR");
        assert_eq!(rcode_name(3), "NXDOMAIN");
        assert_eq!(rcode_name(23), "RCODE23");
    }

    #[test]
    fn check_errors() {
        assert_error(
            &example_with("kind = \"tcp\"", "kind = \"smtp\""),
            &[
                "checks.web.kind",
                "unknown check kind \"smtp\"",
                "\"tcp\", \"http\", \"https\", \"dns\", \"icmp\" or \"exec\"",
            ],
        );
        for port in ["0", "65536", "-80"] {
            assert_error(
                &example_with("port = 80", &format!("port = {port}")),
                &["checks.web.port", "out of range: must be 1 to 65535"],
            );
        }
        assert_error(
            &example_with("interval = \"1s\"", "interval = \"1 fortnight\""),
            &["checks.web.interval", "is not a duration"],
        );
        assert_error(
            &example_with("interval = \"1s\"", "interval = \"0s\""),
            &["checks.web.interval", "longer than zero"],
        );
        assert_error(
            &example_with("timeout = \"500ms\"", "timeout = \"1s\""),
            &[
                "checks.web.timeout",
                "timeout 1s must be shorter than interval 1s",
            ],
        );
        assert_error(
            &example_with("rise = 2", "rise = 0"),
            &["checks.web.rise", "must be 1 or more"],
        );
        assert_error(
            &example_with("fall = 3", "fall = 0"),
            &["checks.web.fall", "must be 1 or more"],
        );
    }

    #[test]
    fn load_names_the_file() {
        let missing = Path::new("/nonexistent/failover.toml");
        let message = Config::load(missing).unwrap_err().to_string();
        assert!(
            message.starts_with("/nonexistent/failover.toml: cannot read the configuration"),
            "{message}"
        );
        let dir = std::env::temp_dir().join(format!("failover-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bad.toml");
        std::fs::write(&path, example_with("port = 80", "port = 0")).unwrap();
        let message = Config::load(&path).unwrap_err().to_string();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            message,
            format!(
                "{}: checks.web.port: port 0 is out of range: must be 1 to 65535",
                path.display()
            )
        );
    }

    #[test]
    fn demo_serves_loopback_with_glue_and_no_warnings() {
        let config = Config::default_demo();
        assert_eq!(config.server.mode, ServerMode::Authoritative);
        assert_eq!(
            config.server.listen,
            [
                "127.0.0.1:53".parse::<SocketAddr>().unwrap(),
                "[::1]:53".parse().unwrap()
            ]
        );
        assert!(!config.server.listen_is_default);
        let zone = &config.zones[0];
        assert_eq!(zone.mname, "ns1.example.test.");
        assert_eq!(
            zone.nameservers[0].addresses,
            [
                IpAddr::from([127, 0, 0, 1]),
                IpAddr::from(std::net::Ipv6Addr::LOCALHOST)
            ]
        );
        assert!(config.warnings().is_empty(), "{:?}", config.warnings());
    }

    #[test]
    fn soa_fields_and_nameservers() {
        let config = parse(&example_with(
            "ttl = 30",
            "ttl = 30\nmname = \"primary.example.test\"\nrname = \"dns@example.net\"\n\
             serial = 4294967295\nrefresh = 7200\nretry = 900\nexpire = 2419200\nminimum = 300\n\
             soa_ttl = 120\nnameservers = [\n\
               { name = \"ns1.example.test.\", addresses = [\"192.0.2.53\", \"2001:db8::53\"] },\n\
               { name = \"primary.example.test.\", addresses = [\"192.0.2.54\"] },\n\
               { name = \"ns.provider.net.\" },\n]",
        ))
        .unwrap();
        let zone = &config.zones[0];
        assert_eq!(zone.mname, "primary.example.test.");
        assert_eq!(zone.rname, "dns.example.net.");
        assert_eq!(
            (
                zone.serial,
                zone.refresh,
                zone.retry,
                zone.expire,
                zone.minimum
            ),
            (u32::MAX, 7200, 900, 2_419_200, 300)
        );
        assert_eq!(zone.soa_ttl, 120);
        assert_eq!(zone.soa().negative_ttl, 120, "min(soa_ttl, minimum)");
        assert_eq!(zone.nameservers.len(), 3);
        assert!(zone.nameservers[2].addresses.is_empty());
        assert!(!zone.nameservers_defaulted);
        assert!(config.warnings().is_empty());
        // Without mname, the first nameserver is the primary.
        let config = parse(&example_with(
            "ttl = 30",
            "ttl = 30\nnameservers = [{ name = \"ns.provider.net\" }]",
        ))
        .unwrap();
        assert_eq!(config.zones[0].mname, "ns.provider.net.");
        assert!(config.warnings().is_empty(), "out of zone: nothing to glue");
        // minimum below the zone TTL decides the negative TTL.
        let config = parse(&example_with("ttl = 30", "ttl = 30\nminimum = 5")).unwrap();
        assert_eq!(config.zones[0].soa().negative_ttl, 5);
    }

    #[test]
    fn soa_field_errors() {
        assert_error(
            &example_with("ttl = 30", "ttl = 30\nserial = 4294967296"),
            &["zone[0].serial", "must be 0 to 4294967295"],
        );
        assert_error(
            &example_with("ttl = 30", "ttl = 30\nserial = -1"),
            &["zone[0].serial"],
        );
        for key in ["refresh", "retry", "expire", "minimum", "soa_ttl"] {
            assert_error(
                &example_with("ttl = 30", &format!("ttl = 30\n{key} = 2147483648")),
                &[&format!("zone[0].{key}"), "out of range"],
            );
        }
        assert_error(
            &example_with("ttl = 30", "ttl = 30\nmname = \"a..b\""),
            &["zone[0].mname", "empty label"],
        );
        assert_error(
            &example_with("ttl = 30", "ttl = 30\nrname = \"first.last@example.test\""),
            &["zone[0].rname", "local part without dots"],
        );
        assert_error(
            &example_with("ttl = 30", "ttl = 30\nrname = \"a@b@c\""),
            &["zone[0].rname"],
        );
    }

    #[test]
    fn nameserver_rules() {
        let with_ns = |ns: &str| example_with("ttl = 30", &format!("ttl = 30\nnameservers = {ns}"));
        assert_error(
            &with_ns("[{ name = \"ns1.example.test.\" }]"),
            &[
                "zone[0].nameservers[0].addresses",
                "ns1.example.test. lies inside zone example.test.",
                "required",
            ],
        );
        assert_error(
            &with_ns("[{ name = \"ns1.example.net.\", addresses = [\"192.0.2.1\"] }]"),
            &[
                "zone[0].nameservers[0].addresses",
                "outside every configured zone",
            ],
        );
        assert_error(
            &with_ns("[{ name = \"ns.example.net.\" }, { name = \"NS.example.net\" }]"),
            &["zone[0].nameservers[1].name", "listed twice"],
        );
        assert_error(&with_ns("[]"), &["zone[0].nameservers", "at least one"]);
        assert_error(
            &with_ns("[{ name = \"ns1.example.test.\", addresses = [\"fe80::1\"] }]"),
            &["zone[0].nameservers[0].addresses[0]", "link-local"],
        );
        assert_error(
            &with_ns(
                "[{ name = \"ns1.example.test.\", addresses = [\"192.0.2.1\", \"192.0.2.1\"] }]",
            ),
            &["zone[0].nameservers[0].addresses[1]", "listed twice"],
        );
        assert_error(
            &with_ns("[{ name = \"ns1.example.test.\", addresses = [\"ns1\"] }]"),
            &["zone[0].nameservers[0].addresses[0]", "not an IP address"],
        );
        assert_error(
            &with_ns("[{ name = \"www.example.test.\", addresses = [\"192.0.2.1\"] }]"),
            &[
                "zone[0].nameservers[0]",
                "www.example.test. is also the name of record[0]",
            ],
        );
        // The default nameserver (mname) may clash too: say where it came from.
        assert_error(
            &example_with("ttl = 30", "ttl = 30\nmname = \"www.example.test.\""),
            &[
                "zone[0].nameservers",
                "not configured, so the nameserver is the SOA MNAME www.example.test.",
                "record[0]",
            ],
        );
        // One nameserver, one set of addresses, whichever zone lists it.
        let two_zones = |second: &str| {
            format!(
                "{}\n[[zone]]\norigin = \"example.org.\"\nnameservers = [{second}]\n",
                with_ns(
                    "[{ name = \"ns1.example.test.\", addresses = [\"192.0.2.53\", \"2001:db8::53\"] }]"
                )
            )
        };
        let shared = parse(&two_zones(
            "{ name = \"ns1.example.test.\", addresses = [\"2001:db8::53\", \"192.0.2.53\"] }",
        ))
        .unwrap();
        assert_eq!(shared.zones[1].mname, "ns1.example.test.");
        assert_error(
            &two_zones("{ name = \"ns1.example.test.\", addresses = [\"192.0.2.54\"] }"),
            &[
                "zone[1].nameservers[0].addresses",
                "other addresses in zone[0].nameservers[0]",
            ],
        );
    }

    #[test]
    fn aaaa_records_and_hot_names() {
        let aaaa = "\n[[record]]\nname = \"WWW.example.test.\"\ntype = \"aaaa\"\npolicy = \"all-healthy\"\n\
                    check = \"web\"\nendpoints = [{ address = \"2001:db8::10\" }, { address = \"2001:DB8::11\", priority = 2 }]\n\
                    [[record]]\nname = \"api.example.test.\"\ntype = \"AAAA\"\npolicy = \"failover\"\n\
                    check = \"web\"\nendpoints = [{ address = \"2001:db8::20\" }]\n";
        let config = parse(&format!("{EXAMPLE}{aaaa}")).unwrap();
        let record = &config.records[1];
        assert_eq!(record.rtype, RecordType::Aaaa);
        assert_eq!(record.rtype.code(), RTYPE_AAAA);
        assert_eq!(record.zone, 0);
        assert_eq!(
            record.endpoints[1].address,
            "2001:db8::11".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            config.hot_names(),
            [
                HotName {
                    name: "www.example.test.".into(),
                    zone: 0,
                    records: vec![0, 1]
                },
                HotName {
                    name: "api.example.test.".into(),
                    zone: 0,
                    records: vec![2]
                },
            ]
        );
        let dup = format!(
            "{EXAMPLE}{aaaa}{}",
            &aaaa[..aaaa.find("[[record]]\nname = \"api").unwrap()]
        );
        assert_error(
            &dup,
            &[
                "record[3].name",
                "duplicate record: WWW.example.test. AAAA",
                "record[1]",
            ],
        );
        assert_error(
            &format!("{EXAMPLE}{}", aaaa.replace("2001:db8::20", "fe80::20")),
            &["record[2].endpoints[0].address", "link-local"],
        );
        assert_error(
            &format!("{EXAMPLE}{}", aaaa.replace("2001:db8::20", "ff02::1")),
            &["record[2].endpoints[0].address", "not a unicast address"],
        );
        assert_error(
            &format!("{EXAMPLE}{}", aaaa.replace("2001:db8::20", "2001:db8::zz")),
            &["record[2].endpoints[0].address", "not an IPv6 address"],
        );
    }

    #[test]
    fn server_section() {
        let with_server = |server: &str| format!("[server]\n{server}\n{EXAMPLE}");
        let front = parse(&with_server("mode = \"front\"")).unwrap();
        assert_eq!(front.server.mode, ServerMode::Front);
        assert!(front.server.listen.is_empty());
        let listen = parse(&with_server(
            "listen = [\"192.0.2.53\", \"[2001:db8::53]:5353\", \"::1\", \"127.0.0.1:53\"]\n\
             tcp_idle_timeout = \"3s\"\ntcp_max_connections = 10",
        ))
        .unwrap();
        assert_eq!(
            listen.server.listen,
            [
                "192.0.2.53:53".parse::<SocketAddr>().unwrap(),
                "[2001:db8::53]:5353".parse().unwrap(),
                "[::1]:53".parse().unwrap(),
                "127.0.0.1:53".parse().unwrap(),
            ]
        );
        assert!(!listen.server.listen_is_default);
        assert_eq!(listen.server.tcp_idle_timeout, Duration::from_secs(3));
        assert_eq!(listen.server.tcp_max_connections, 10);

        assert_error(
            &with_server("mode = \"recursive\""),
            &["server.mode", "unknown mode \"recursive\""],
        );
        assert_error(
            &with_server("mode = \"front\"\nlisten = [\"0.0.0.0:53\"]"),
            &["server.listen", "binds nothing"],
        );
        assert_error(
            &with_server("listen = []"),
            &["server.listen", "at least one"],
        );
        assert_error(
            &with_server("listen = [\"localhost:53\"]"),
            &["server.listen[0]", "not an address to listen on"],
        );
        assert_error(
            &with_server("listen = [\"::1\", \"[::1]:53\"]"),
            &["server.listen[1]", "[::1]:53 is listed twice"],
        );
        assert_error(
            &with_server("listen = [\"127.0.0.1:0\"]"),
            &["server.listen[0]", "port 0"],
        );
        assert_error(
            &with_server("tcp_idle_timeout = \"0s\""),
            &["server.tcp_idle_timeout", "longer than zero"],
        );
        assert_error(
            &with_server("tcp_max_connections = 0"),
            &["server.tcp_max_connections", "out of range"],
        );
    }

    /// The configuration reference in the README loads as documented.
    #[test]
    fn readme_policy_examples_load() {
        let readme = include_str!("../../README.md");
        let section = &readme[readme.find("## Policies").expect("README has the section")..];
        let section = &section[..section.find("## Health checks").expect("and the next one")];
        let mut rest = section;
        let mut records = 0;
        while let Some(at) = rest.find("```toml\n") {
            let start = at + "```toml\n".len();
            let end = start + rest[start..].find("```").unwrap();
            let block = &rest[start..end];
            rest = &rest[end + 3..];
            if block.starts_with("[endpoints]") {
                crate::admin_state::AdminState::parse(block).unwrap_or_else(|e| panic!("{e:#}"));
                continue;
            }
            let text = format!(
                "[[zone]]\norigin = \"example.test.\"\n{block}\n[checks.web]\nkind = \"tcp\"\nport = 80\n"
            );
            let config = parse(&text).unwrap_or_else(|e| panic!("{e}\n{block}"));
            records += config.records.len();
        }
        assert_eq!(records, 5, "every policy example was found and loads");
    }

    #[test]
    fn readme_reference_loads() {
        let readme = include_str!("../../README.md");
        let section = &readme[readme
            .find("## Configuration reference")
            .expect("README has the section")..];
        let start = section.find("```toml\n").unwrap() + "```toml\n".len();
        let text = &section[start..start + section[start..].find("```").unwrap()];
        let config = parse(text).unwrap_or_else(|e| panic!("{e}"));
        let server = Server {
            // Written out: a missing IPv6 stack is then an error.
            listen_is_default: false,
            ..Server::default()
        };
        assert_eq!(config.server, server);
        let zone = &config.zones[0];
        assert_eq!(zone.nameservers.len(), 2);
        assert_eq!(zone.soa().negative_ttl, 30);
        assert_eq!(config.records.len(), 2);
        assert_eq!(config.records[1].rtype, RecordType::Aaaa);
        assert_eq!(config.hot_names().len(), 1);
        assert!(config.warnings().is_empty());
    }
}
