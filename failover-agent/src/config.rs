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
use std::path::Path;
use std::time::Duration;

use failover_common::{MAX_ANSWER_ADDRS, MAX_ZONES, QTYPE_A};
use serde::Deserialize;

use crate::dataplane::record_key;
use crate::policy::Policy;
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
    ///   level that has any healthy endpoint;
    /// - `"all-healthy"`: every healthy endpoint, whatever its priority.
    ///
    /// With no endpoint healthy, both answer with every endpoint of the best
    /// priority level (fail open) and log an error.
    pub policy: String,
    /// Required. Name of the `[checks.NAME]` that checks this record's endpoints.
    pub check: String,
    /// Required. 1 to 16 endpoints, e.g. `{ address = "192.0.2.10", priority = 1 }`.
    /// Answers list them in this order (the kernel rotates the set).
    pub endpoints: Vec<EndpointFile>,
    /// Optional, seconds, 0 to 2147483647. Overrides the zone's TTL.
    pub ttl: Option<i64>,
}

/// One entry of `endpoints`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointFile {
    /// Required. A unicast address of the record's family: IPv4 for `"A"`
    /// (`"192.0.2.10"`), IPv6 for `"AAAA"` (`"2001:db8::10"`, not link-local);
    /// each address at most once per record. The check connects to it.
    pub address: String,
    /// Optional, 1 or more; lower is preferred. Default 1. Only the
    /// `failover` policy (and failing open) looks at it.
    pub priority: Option<i64>,
}

/// `[checks.NAME]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckFile {
    /// Required. `"tcp"`: the endpoint is healthy when a TCP connection to
    /// `address:port` is established within `timeout`. (The only kind so far.)
    pub kind: String,
    /// Required. TCP port, 1 to 65535.
    pub port: i64,
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
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// IPv4 for an A record, IPv6 for an AAAA record.
    pub address: IpAddr,
    pub priority: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckKind {
    Tcp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Check {
    pub kind: CheckKind,
    pub port: u16,
    pub interval: Duration,
    pub timeout: Duration,
    pub rise: u32,
    pub fall: u32,
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
        checks.insert(name, check_value(&format!("checks.{name}"), check)?);
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
            other => {
                return Err(field_err(
                    format!("{path}.policy"),
                    format!("unknown policy {other:?}: expected \"failover\" or \"all-healthy\""),
                ));
            }
        };
        let Some(check) = checks.get(record.check.as_str()).copied() else {
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
                None => 1,
                Some(p) if (1..=i64::from(u32::MAX)).contains(&p) => p as u32,
                Some(p) => {
                    return Err(field_err(
                        format!("{epath}.priority"),
                        format!("priority {p} is out of range: must be 1 or more (1 is preferred)"),
                    ));
                }
            };
            endpoints.push(Endpoint { address, priority });
        }
        let ttl = match record.ttl {
            Some(ttl) => ttl_value(&format!("{path}.ttl"), ttl)?,
            None => zones[zone].ttl,
        };
        records.push(Record {
            name,
            rtype,
            zone,
            ttl,
            policy,
            check_name: record.check.clone(),
            check,
            endpoints,
        });
    }
    check_nameservers(&zones, &records)?;
    Ok(Config {
        server,
        zones,
        records,
    })
}

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

fn check_value(path: &str, check: &CheckFile) -> Result<Check, FieldError> {
    let kind = match check.kind.as_str() {
        "tcp" => CheckKind::Tcp,
        other => {
            return Err(field_err(
                format!("{path}.kind"),
                format!("unknown check kind {other:?}: only \"tcp\" is supported for now"),
            ));
        }
    };
    let port = u16::try_from(check.port)
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| {
            field_err(
                format!("{path}.port"),
                format!("port {} is out of range: must be 1 to 65535", check.port),
            )
        })?;
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
    Ok(Check {
        kind,
        port,
        interval,
        timeout,
        rise,
        fall,
    })
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
                    port: 80,
                    interval: Duration::from_secs(1),
                    timeout: Duration::from_millis(500),
                    rise: 2,
                    fall: 3,
                },
                endpoints: vec![
                    Endpoint {
                        address: Ipv4Addr::new(192, 0, 2, 10).into(),
                        priority: 1
                    },
                    Endpoint {
                        address: Ipv4Addr::new(192, 0, 2, 11).into(),
                        priority: 2
                    },
                ],
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
                    priority: 1
                },
                Endpoint {
                    address: Ipv4Addr::new(127, 0, 0, 11).into(),
                    priority: 2
                },
            ]
        );
        assert_eq!(record.check.port, 8080);
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
        let check = api.check;
        assert_eq!(check.interval, DEFAULT_INTERVAL);
        assert_eq!(check.timeout, DEFAULT_TIMEOUT);
        assert_eq!((check.rise, check.fall), (DEFAULT_RISE, DEFAULT_FALL));
    }

    #[test]
    fn unknown_keys_are_rejected_with_their_path() {
        assert_error(
            &example_with(
                "{ address = \"192.0.2.11\", priority = 2 }",
                "{ address = \"192.0.2.11\", priority = 2, weight = 5 }",
            ),
            &["test.toml:13:43: record[0].endpoints[1].weight: unknown field `weight`"],
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
            &example_with("policy = \"failover\"", "policy = \"weighted\""),
            &[
                "record[0].policy",
                "unknown policy \"weighted\"",
                "\"failover\" or \"all-healthy\"",
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

    #[test]
    fn check_errors() {
        assert_error(
            &example_with("kind = \"tcp\"", "kind = \"http\""),
            &[
                "checks.web.kind",
                "unknown check kind \"http\"",
                "only \"tcp\"",
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
