//! The agent's TOML configuration: the file format (the `*File` structs, whose
//! doc comments are the reference for every key), its validation, and the
//! validated [`Config`] the rest of the agent works from.
//!
//! Everything is checked before the agent touches the kernel, and every error
//! names the file, the position, the field (`record[0].endpoints[1].address`)
//! and what is wrong with it.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::Duration;

use failover_common::{MAX_ANSWER_ADDRS, QTYPE_A};
use serde::Deserialize;

use crate::dataplane::record_key;
use crate::policy::Policy;

/// Largest TTL a record may carry (RFC 2181 section 8: 2^31 - 1 seconds).
pub const MAX_TTL: u32 = 2_147_483_647;
/// Zone TTL when `[[zone]]` gives none: short, because a resolver caches a
/// failed-over answer set for this long.
pub const DEFAULT_TTL: u32 = 30;

/// The configuration `failover-agent run` uses without `--config`: a demo on
/// loopback that works out of the box. The agent starts the two endpoints itself
/// (`failover-agent demo-endpoint`).
pub const DEFAULT_CONFIG: &str = r#"# Built-in demo: two local endpoints for www.example.test., primary and backup.
[[zone]]
origin = "example.test."
ttl = 30

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

/// `[[zone]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneFile {
    /// Required. The zone's name, e.g. `"example.test."`. A name without the
    /// trailing dot is taken as absolute (`"example.test"` = `"example.test."`).
    pub origin: String,
    /// Optional, seconds, 0 to 2147483647 (RFC 2181). TTL of the answers for
    /// the records in this zone unless a record sets its own. Default 30.
    pub ttl: Option<i64>,
}

/// `[[record]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordFile {
    /// Required. The owner name, e.g. `"www.example.test."`; absolute, a
    /// missing trailing dot is added. Must lie inside a configured zone. Labels
    /// are 1 to 63 letters, digits, `-` or `_`; at most 255 bytes on the wire.
    pub name: String,
    /// Required. The record type: `"A"`. (`"AAAA"` is not supported yet.)
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
    /// Required. A unicast IPv4 address, e.g. `"192.0.2.10"`; each address at
    /// most once per record.
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
    pub zones: Vec<Zone>,
    pub records: Vec<Record>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Zone {
    /// Absolute, with the trailing dot.
    pub origin: String,
    pub ttl: u32,
}

/// Record types the agent serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordType {
    A,
}

impl fmt::Display for RecordType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("A")
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Absolute, with the trailing dot, as written in the file.
    pub name: String,
    pub rtype: RecordType,
    pub ttl: u32,
    pub policy: Policy,
    /// Name of the check in the file, for messages.
    pub check_name: String,
    pub check: Check,
    pub endpoints: Vec<Endpoint>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub address: Ipv4Addr,
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
struct FieldError {
    field: String,
    message: String,
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
    if file.zone.is_empty() {
        return Err(field_err(
            "zone",
            "at least one [[zone]] is required (e.g. origin = \"example.test.\")",
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
        let ttl = match zone.ttl {
            Some(ttl) => ttl_value(&format!("{path}.ttl"), ttl)?,
            None => DEFAULT_TTL,
        };
        zones.push(Zone { origin, ttl });
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
        let Some(zone) = zones
            .iter()
            .filter(|z| in_zone(&name, &z.origin))
            .max_by_key(|z| z.origin.len())
        else {
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
            "AAAA" => {
                return Err(field_err(
                    format!("{path}.type"),
                    "type \"AAAA\" is not supported yet (it is planned); only \"A\" is",
                ));
            }
            _ => {
                return Err(field_err(
                    format!("{path}.type"),
                    format!(
                        "unknown record type {:?}: only \"A\" is supported",
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
            let address = endpoint_address(&format!("{epath}.address"), &endpoint.address)?;
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
            None => zone.ttl,
        };
        records.push(Record {
            name,
            rtype,
            ttl,
            policy,
            check_name: record.check.clone(),
            check,
            endpoints,
        });
    }
    Ok(Config { zones, records })
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

fn endpoint_address(field: &str, address: &str) -> Result<Ipv4Addr, FieldError> {
    let ip: IpAddr = address.trim().parse().map_err(|_| {
        field_err(
            field,
            format!("{address:?} is not an IPv4 address (e.g. \"192.0.2.10\")"),
        )
    })?;
    let IpAddr::V4(v4) = ip else {
        return Err(field_err(
            field,
            format!(
                "{address} is an IPv6 address: AAAA records are not supported yet, only IPv4 (type \"A\")"
            ),
        ));
    };
    if v4.is_unspecified() || v4.is_broadcast() || v4.is_multicast() {
        return Err(field_err(field, format!("{v4} is not a unicast address")));
    }
    Ok(v4)
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
                ttl: 30
            }]
        );
        assert_eq!(
            config.records,
            vec![Record {
                name: "www.example.test.".into(),
                rtype: RecordType::A,
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
                        address: Ipv4Addr::new(192, 0, 2, 10),
                        priority: 1
                    },
                    Endpoint {
                        address: Ipv4Addr::new(192, 0, 2, 11),
                        priority: 2
                    },
                ],
            }]
        );
        assert_eq!(config.endpoint_count(), 2);
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
                    address: Ipv4Addr::new(127, 0, 0, 10),
                    priority: 1
                },
                Endpoint {
                    address: Ipv4Addr::new(127, 0, 0, 11),
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
            &example_with("ttl = 30", "ttl = 30\nserial = 1"),
            &["zone[0]", "unknown field `serial`"],
        );
        assert_error(
            &format!("{EXAMPLE}\n[server]\nlisten = \"0.0.0.0\"\n"),
            &["unknown field `server`"],
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
                "IPv6",
                "AAAA records are not supported yet",
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
        assert_error(
            "[[zone]]\norigin = \"example.test.\"\n",
            &["record", "at least one [[record]]"],
        );
    }

    #[test]
    fn record_type_policy_and_check_reference() {
        assert_error(
            &example_with("type = \"A\"", "type = \"AAAA\""),
            &["record[0].type", "\"AAAA\" is not supported yet"],
        );
        assert_error(
            &example_with("type = \"A\"", "type = \"MX\""),
            &["record[0].type", "unknown record type \"MX\""],
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
}
