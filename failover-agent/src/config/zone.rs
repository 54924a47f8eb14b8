//! `[[zone]]`: a zone's SOA and nameservers, and which zone a name is in.

use std::collections::HashMap;
use std::net::IpAddr;

use super::file::ZoneFile;
use super::record::Record;
use crate::dns::rr::Soa;
use crate::field::in_zone;
use crate::field::{FieldError, dns_name, field_err, same_name, ttl_value, unicast_address};

/// Zone TTL when `[[zone]]` gives none: short, because a resolver caches a
/// failed-over answer set for this long.
pub const DEFAULT_TTL: u32 = 30;
/// SOA defaults (RFC 1912 section 2.2 ranges). Nothing transfers these zones
/// (failover is the only server), so refresh/retry/expire are informational;
/// the serial is fixed rather than derived from the clock so that every
/// instance and every restart serves the same SOA.
pub const DEFAULT_SERIAL: u32 = 1;
/// Refresh and retry at what zone checkers ask of a zone (Zonemaster wants
/// refresh >= 14400 and retry >= 3600), so none of them flags ours.
pub const DEFAULT_REFRESH: u32 = 14400;
pub const DEFAULT_RETRY: u32 = 3600;
pub const DEFAULT_EXPIRE: u32 = 1_209_600;

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
    pub fn soa(&self) -> Soa {
        Soa {
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

/// Index of the most specific zone that `name` lies in.
pub(super) fn zone_index(zones: &[Zone], name: &str) -> Option<usize> {
    (0..zones.len())
        .filter(|&z| in_zone(name, &zones[z].origin))
        .max_by_key(|&z| zones[z].origin.len())
}

pub(super) fn zone_value(path: &str, zone: &ZoneFile, origin: String) -> Result<Zone, FieldError> {
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
pub(super) fn rname_value(field: &str, text: &str) -> Result<String, FieldError> {
    match text.split_once('@') {
        None => dns_name(field, text),
        Some((local, domain)) => {
            if local.is_empty() || local.contains('.') || domain.contains('@') {
                return Err(field_err(
                    field,
                    format!(
                        "{text}: write the mailbox as local@domain with a local part without dots, or as a name (\"hostmaster.example.test.\")",
                        text = crate::field::quoted(text)
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
pub(super) fn check_nameservers(zones: &[Zone], records: &[Record]) -> Result<(), FieldError> {
    let mut seen: HashMap<String, (String, Vec<IpAddr>)> = HashMap::new();
    let mut record_names: HashMap<String, usize> = HashMap::with_capacity(records.len());
    for (r, record) in records.iter().enumerate().rev() {
        record_names.insert(record.name.to_ascii_lowercase(), r);
    }
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
            if let Some(r) = record_names.get(&ns.name.to_ascii_lowercase()) {
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
