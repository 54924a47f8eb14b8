//! The configuration file's schema. The doc comment of every field is the
//! reference for its key; `[checks.NAME]` belongs to the check kinds
//! ([`crate::checks::settings::CheckFile`]).

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::checks::settings::CheckFile;
pub use crate::config::notify::NotifyFile;

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
    /// `[dataplane]`: the pinned XDP program without an agent.
    /// Optional; every key has a default.
    #[serde(default)]
    pub dataplane: Option<DataplaneFile>,
    /// `[[notify]]`: hooks told about transitions, answer changes, reloads
    /// and overrides (see [`NotifyFile`]). Optional.
    #[serde(default)]
    pub notify: Vec<NotifyFile>,
    /// `[rate_limit]`: response rate limiting per source prefix, in the
    /// kernel and the userspace server. Off without the section.
    #[serde(default)]
    pub rate_limit: Option<RateLimitFile>,
    /// `[http]`: metrics, the status API and page, health and readiness
    /// ([`super::HttpFile`]). Optional; every key has a default.
    #[serde(default)]
    pub http: Option<super::HttpFile>,
    /// `[cookies]`: DNS cookies (RFC 7873, RFC 9018). On without the
    /// section.
    #[serde(default)]
    pub cookies: Option<CookiesFile>,
    /// `[cluster]`: several nameservers agreeing on health through etcd
    /// (keys in [`super::cluster::ClusterFile`]). Optional; without it the
    /// agent decides from its own checks alone.
    #[serde(default)]
    pub cluster: Option<super::cluster::ClusterFile>,
}

/// `[cookies]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CookiesFile {
    /// Optional. `false`: COOKIE options are ignored. Default `true`.
    pub enabled: Option<bool>,
    /// Optional. A file holding the server secret as 32 hexadecimal
    /// characters (16 bytes), for nameservers that share it; re-read every
    /// minute. Default: a random secret per start.
    pub secret_file: Option<String>,
    /// Optional duration. How often the random secret is replaced (the
    /// one before stays accepted). Default `"1d"`, `"1h"` to `"30days"`.
    pub rotate: Option<String>,
}

/// `[rate_limit]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitFile {
    /// Required, 1 to 10000000. Responses per second one source prefix
    /// gets over UDP (TCP is never limited), from the kernel and from the
    /// userspace server each.
    pub responses_per_second: Option<i64>,
    /// Optional, 1 to 32. IPv4 sources are limited per prefix of this
    /// length. Default 24.
    pub ipv4_prefix: Option<i64>,
    /// Optional, 1 to 128. IPv6 sources are limited per prefix of this
    /// length. Default 56.
    pub ipv6_prefix: Option<i64>,
    /// Optional, 0 to 100. Every `slip`th limited response is sent as a
    /// TC=1 answer without records (a real resolver retries over TCP); 0
    /// drops every limited response. Default 2.
    pub slip: Option<i64>,
    /// Optional duration. How much unused allowance a source may save up:
    /// it may get `responses_per_second` x `window` responses at once.
    /// Default `"1s"`, at most `"1h"`.
    pub window: Option<String>,
    /// Optional. Source prefixes never limited: `"192.0.2.0/24"`,
    /// `"2001:db8::/32"`, or an address alone. At most 1024.
    pub exempt: Option<Vec<String>>,
    /// Optional. `true`: count the responses that would be limited
    /// (`rate_limited`) and send them anyway. Default `false`.
    pub log_only: Option<bool>,
}

/// `[dataplane]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataplaneFile {
    /// Optional. How long the XDP program keeps answering from its maps
    /// after the agent's last heartbeat (written every second): after an
    /// agent dies (crash, kill -9) or exits leaving the program pinned, the
    /// kernel answers for this long, then passes every query up the stack
    /// (counter `pass_agent_gone`) until an agent adopts it. 2s to 7 days;
    /// read at start. Default `"60s"`.
    pub hold: Option<String>,
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
    /// Optional, `front` mode only. The addresses the DNS server on the host
    /// serves on, in the form of `listen` (port 53 when none is given): the
    /// XDP program answers only queries sent to one of them (and only on
    /// port 53). Default: every address of the interface the program is
    /// attached to, port 53.
    pub front_addresses: Option<Vec<String>>,
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
