//! The agent's TOML configuration: the file format (the `*File` structs, whose
//! doc comments are the reference for every key), its validation, and the
//! validated [`Config`] the rest of the agent works from.
//!
//! Everything is checked before the agent touches the kernel, and every error
//! names the file, the position, the field (`record[0].endpoints[1].address`)
//! and what is wrong with it.

mod admin;
pub mod cluster;
mod dataplane;
pub use dataplane::DEFAULT_HOLD as DEFAULT_DATAPLANE_HOLD;
pub mod cookies;
pub mod file;
mod http;
pub mod notify;
pub mod rate_limit;
mod record;
mod server;
#[cfg(test)]
mod tests;
mod zone;

pub use admin::Admin;
pub use admin::DEFAULT_CONTROL_SOCKET;
pub use cluster::{Cluster, Quorum};
pub use cookies::CookieSettings;
pub use dataplane::DataplaneSettings;
pub use http::{DEFAULT_HTTP_LISTEN, Http, HttpFile, http_listen};
pub use rate_limit::RateLimitSettings;
pub use record::{
    DEFAULT_MAX_ANSWERS, Endpoint, HotName, MinHealthy, Policy, Record, RecordType, WhenAllDown,
};
pub use server::{
    DEFAULT_LISTEN, DEFAULT_TCP_IDLE_TIMEOUT, DEFAULT_TCP_MAX_CONNECTIONS, Server, ServerMode,
    listen_address,
};
pub use zone::{
    DEFAULT_EXPIRE, DEFAULT_REFRESH, DEFAULT_RETRY, DEFAULT_SERIAL, DEFAULT_TTL, Nameserver, Zone,
};

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::Path;

use failover_common::{MAX_ANSWER_ADDRS, MAX_RECORDS, MAX_ZONES};

use crate::dns::rr::HOT_TYPES;

use crate::checks::settings::Check;
use crate::config::admin::admin_value;
use crate::config::file::ConfigFile;
use crate::config::record::endpoint_address;
use crate::config::record::endpoint_check_target;
use crate::config::record::endpoint_weight;
use crate::config::record::record_rules;
use crate::config::server::server_value;
use crate::config::zone::check_nameservers;
use crate::config::zone::zone_index;
use crate::config::zone::zone_value;
use crate::field::cut_long_parts;
use crate::field::dns_name;
use crate::field::same_name;
use crate::field::ttl_value;
use crate::field::{FieldError, field_err};

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
// The validated configuration.

/// A validated configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub server: Server,
    pub zones: Vec<Zone>,
    pub records: Vec<Record>,
    pub admin: Admin,
    pub dataplane: DataplaneSettings,
    /// `[[notify]]` hooks, in file order.
    pub notify: Vec<notify::Hook>,
    /// `[rate_limit]`; `None`: off.
    pub rate_limit: Option<RateLimitSettings>,
    pub http: Http,
    /// `[cookies]`; `None`: off (`enabled = false`).
    pub cookies: Option<CookieSettings>,
    /// `[cluster]`: agree on health with other nameservers through etcd;
    /// `None`: decide alone.
    pub cluster: Option<Cluster>,
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

// ---------------------------------------------------------------------------
// Loading.

impl Config {
    /// Reads and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        // 5461 names with two records each take about 2 MB; far more is a
        // mistake (or /dev/zero).
        const MAX_CONFIG_FILE: u64 = 64 << 20;
        let source_name = path.display().to_string();
        let bytes =
            crate::field::read_bounded(path, MAX_CONFIG_FILE, "a configuration").map_err(|e| {
                ConfigError {
                    source_name: source_name.clone(),
                    position: None,
                    field: None,
                    message: format!("cannot read the configuration: {e}"),
                }
            })?;
        let text = utf8_text(&bytes, &source_name)?;
        Config::parse(text, &source_name)
    }

    /// Parses and validates a file's bytes (see [`Config::parse`]); text
    /// that is not UTF-8 is refused with the position of the first bad byte.
    pub fn parse_bytes(bytes: &[u8], source_name: &str) -> Result<Config, ConfigError> {
        Config::parse(utf8_text(bytes, source_name)?, source_name)
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
            field: Some(cut_long_parts(&e.field)),
            message: cut_long_parts(&e.message),
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
        let mut index: HashMap<String, usize> = HashMap::with_capacity(self.records.len());
        for (i, record) in self.records.iter().enumerate() {
            match index.entry(record.name.to_ascii_lowercase()) {
                Entry::Occupied(at) => names[*at.get()].records.push(i),
                Entry::Vacant(at) => {
                    at.insert(names.len());
                    names.push(HotName {
                        name: record.name.clone(),
                        zone: record.zone,
                        records: vec![i],
                    });
                }
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
            field: (path != "." && !path.is_empty()).then(|| cut_long_parts(&path)),
            message: cut_long_parts(inner.message().trim()),
        }
    })
}

/// `bytes` as text, or an error at the line and column of the first byte
/// that is not UTF-8.
fn utf8_text<'a>(bytes: &'a [u8], source_name: &str) -> Result<&'a str, ConfigError> {
    std::str::from_utf8(bytes).map_err(|e| {
        let valid = e.valid_up_to();
        // The part before the bad byte is valid by definition.
        let before = std::str::from_utf8(&bytes[..valid]).unwrap_or_default();
        ConfigError {
            source_name: source_name.to_string(),
            position: Some(line_column(before, valid)),
            field: None,
            message: format!(
                "the file is not UTF-8 text (byte {valid}: 0x{:02x})",
                bytes[valid]
            ),
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

/// Every name with records takes one kernel record-map entry per type the
/// fast path answers (A, AAAA, HTTPS: an answer or NODATA): refuse what does
/// not fit rather than fail writes at run time. Checked as each new name
/// appears (`names` of them so far, the newest in `record[index]`), so a
/// file far over the limit is refused without validating the rest.
fn check_capacity(names: usize, index: usize) -> Result<(), FieldError> {
    let entries = names * HOT_TYPES.len();
    if entries > MAX_RECORDS as usize {
        return Err(field_err(
            "record",
            format!(
                "{names} names with records need {entries} entries in the kernel's record map (one for each of A, AAAA and HTTPS per name), but it holds {MAX_RECORDS}: at most {} names (record[{index}] is the first name over the limit)",
                MAX_RECORDS as usize / HOT_TYPES.len()
            ),
        ));
    }
    Ok(())
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
        checks.insert(
            name,
            crate::checks::settings::parse(name, &format!("checks.{name}"), check)?,
        );
    }

    if file.record.is_empty() {
        return Err(field_err("record", "at least one [[record]] is required"));
    }
    let mut records: Vec<Record> = Vec::with_capacity(file.record.len());
    // (lowercased name, type) -> index: duplicates found in linear time.
    let mut seen: HashMap<(String, RecordType), usize> = HashMap::with_capacity(file.record.len());
    // Distinct names (lowercased): the kernel's capacity.
    let mut names: HashSet<String> = HashSet::new();
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
                        "unknown record type {}: only \"A\" and \"AAAA\" are supported",
                        crate::field::quoted(&record.rtype)
                    ),
                ));
            }
        };
        let key = name.to_ascii_lowercase();
        if !names.contains(&key) {
            names.insert(key.clone());
            check_capacity(names.len(), i)?;
        }
        if let Some(other) = seen.insert((key, rtype), i) {
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
                        "unknown policy {other}: expected \"failover\", \"all-healthy\" or \"weighted\"",
                        other = crate::field::quoted(other)
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
                    "no check named {} (configured: {})",
                    crate::field::quoted(&record.check),
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
    let dataplane = match &file.dataplane {
        None => DataplaneSettings::default(),
        Some(section) => dataplane::dataplane_value(section)?,
    };
    let notify = notify::notify_value(&file.notify)?;
    let rate_limit = match &file.rate_limit {
        None => None,
        Some(section) => Some(rate_limit::rate_limit_value(section)?),
    };
    let http = http::http_value(file.http.as_ref())?;
    let cookies = cookies::cookies_value(file.cookies.as_ref())?;
    let cluster = file
        .cluster
        .as_ref()
        .map(cluster::cluster_value)
        .transpose()?;
    Ok(Config {
        server,
        zones,
        records,
        admin,
        dataplane,
        notify,
        rate_limit,
        http,
        cookies,
        cluster,
    })
}
