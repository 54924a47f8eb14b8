//! `[[record]]`: a health-checked name and type, its endpoints and the
//! settings of its policy.

use std::fmt;
use std::net::IpAddr;

use failover_common::MAX_ANSWER_ADDRS;

use super::file::{EndpointFile, RecordFile};
use crate::checks::settings::{Check, CheckKind, CheckTarget};
use crate::dns::rr::{RTYPE_A, RTYPE_AAAA};
use crate::field::{FieldError, field_err, port_value, ttl_value, unicast_address};

/// How a record's answer set is chosen from its healthy endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// The healthy endpoints of the best (lowest number) priority level that
    /// is up (has at least `min_healthy` healthy endpoints): backups answer
    /// only while every better level is down.
    Failover,
    /// Every healthy endpoint, at most `max_answers` (the best priorities
    /// first).
    AllHealthy,
    /// One healthy endpoint per query, picked by weight (in the kernel, per
    /// query). Weight 0: only while no endpoint of weight >= 1 is healthy.
    Weighted,
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Policy::Failover => "failover",
            Policy::AllHealthy => "all-healthy",
            Policy::Weighted => "weighted",
        })
    }
}

/// `min_healthy` of the failover policy: how many healthy endpoints make a
/// priority level count as up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MinHealthy {
    /// At least this many (a level with fewer endpoints needs all of them).
    Count(u32),
    /// At least this percentage of the level's endpoints, rounded up (1..=100).
    Percent(u32),
}

impl MinHealthy {
    /// Healthy endpoints a level of `size` endpoints needs to be up (>= 1).
    pub fn required(self, size: usize) -> usize {
        let n = match self {
            MinHealthy::Count(c) => (c as usize).min(size),
            MinHealthy::Percent(p) => (size * p as usize).div_ceil(100),
        };
        n.max(1)
    }
}

impl Default for MinHealthy {
    fn default() -> Self {
        MinHealthy::Count(1)
    }
}

impl fmt::Display for MinHealthy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MinHealthy::Count(c) => write!(f, "{c}"),
            MinHealthy::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// What a record answers when no endpoint is usable (`when_all_down`).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum WhenAllDown {
    /// The best priority level regardless of health (weighted: every
    /// endpoint by weight), drained endpoints excepted; logged as an error.
    /// Route 53's behaviour: the checks may be what is broken.
    #[default]
    FailOpen,
    /// These static addresses (a sorry server), 1 to 16.
    Fallback(Vec<IpAddr>),
    /// NOERROR with no answer and the zone's SOA (cached for the SOA's
    /// negative TTL).
    NoData,
    /// SERVFAIL: resolvers try another server or serve stale data.
    ServFail,
}

impl fmt::Display for WhenAllDown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WhenAllDown::FailOpen => "fail-open",
            WhenAllDown::Fallback(_) => "fallback",
            WhenAllDown::NoData => "nodata",
            WhenAllDown::ServFail => "servfail",
        })
    }
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

impl Endpoint {
    /// The address and port a check of this endpoint probes: its own
    /// `check_address`/`check_port`, else the check's `target_address`/`port`,
    /// else its address.
    pub fn check_target(&self, check: &Check) -> CheckTarget {
        CheckTarget {
            address: self
                .check_address
                .or(check.target_address)
                .unwrap_or(self.address),
            port: self.check_port.or(check.port),
        }
    }
}

/// A record's policy options, validated.
pub(super) struct RecordRules {
    pub(super) min_healthy: MinHealthy,
    pub(super) max_answers: usize,
    pub(super) when_all_down: WhenAllDown,
    pub(super) degraded_ttl: Option<u32>,
}

/// Default `max_answers` (Route 53 multivalue answers up to 8).
pub const DEFAULT_MAX_ANSWERS: usize = 8;

pub(super) fn record_rules(
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
                    "unknown mode {other}: expected \"fail-open\", \"fallback\", \"nodata\" or \"servfail\"",
                    other = crate::field::quoted(other)
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
pub(super) fn min_healthy_value(
    field: &str,
    value: &toml::Value,
) -> Result<MinHealthy, FieldError> {
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
                None => Err(bad(format!(
                    "{text} is not a percentage",
                    text = crate::field::quoted(text)
                ))),
            }
        }
        other => Err(bad(format!("a {}", other.type_str()))),
    }
}

/// `weight`: required (0 to 1000000) with policy weighted, else absent (1).
pub(super) fn endpoint_weight(
    epath: &str,
    weight: Option<i64>,
    policy: Policy,
) -> Result<u32, FieldError> {
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

pub(super) fn endpoint_address(
    field: &str,
    address: &str,
    rtype: RecordType,
) -> Result<IpAddr, FieldError> {
    let ip: IpAddr = address.trim().parse().map_err(|_| {
        field_err(
            field,
            match rtype {
                RecordType::A => {
                    format!(
                        "{address} is not an IPv4 address (e.g. \"192.0.2.10\")",
                        address = crate::field::quoted(address)
                    )
                }
                RecordType::Aaaa => {
                    format!(
                        "{address} is not an IPv6 address (e.g. \"2001:db8::10\")",
                        address = crate::field::quoted(address)
                    )
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

/// An endpoint's `check_address`/`check_port`.
pub(super) fn endpoint_check_target(
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
