//! The zone tree: what exists in the configured zones, independent of
//! health: apexes with their SOA and NS set, nameserver addresses, the
//! names of health-checked records and the empty non-terminals between
//! them. Built once per configuration and published as a whole (see
//! [`crate::publish`]), so a query is answered from one version throughout.

use std::collections::HashMap;
use std::net::IpAddr;

use hickory_proto::rr::Name;

use crate::config::{Config, RecordType};
use crate::dns::name::{label_count, name_key};
use crate::dns::rr::Soa;

/// The zone structure of a configuration: what exists, independent of health.
#[derive(Debug, Default)]
pub struct ZoneTree {
    zones: Vec<ZoneData>,
    /// Apex (lowercased wire format) -> index in `zones`.
    by_apex: HashMap<Vec<u8>, usize>,
}

#[derive(Debug)]
pub struct ZoneData {
    /// The zone number answers refer to it by (its index in the configuration).
    pub index: u32,
    pub soa: Soa,
    /// Labels in the apex (root not counted).
    pub labels: usize,
    /// TTL of the NS records and the nameservers' addresses.
    pub ttl: u32,
    pub soa_ttl: u32,
    /// The NS set, spelled as configured.
    pub nameservers: Vec<Name>,
    /// Every name that exists in the zone (lowercased wire format).
    pub nodes: HashMap<Vec<u8>, Node>,
}

/// One existing name: where its A and AAAA records come from.
#[derive(Clone, Debug, Default)]
pub struct Node {
    pub a: Source,
    pub aaaa: Source,
}

#[derive(Clone, Debug, Default)]
pub enum Source {
    /// No records of the type.
    #[default]
    None,
    /// A health-checked record: the answer table has its answer set.
    Checked,
    /// A nameserver's configured addresses, with the zone's TTL.
    Fixed(Vec<IpAddr>),
}

impl ZoneTree {
    pub fn new(config: &Config) -> ZoneTree {
        let mut zones: Vec<ZoneData> = config
            .zones
            .iter()
            .enumerate()
            .map(|(i, zone)| {
                let apex = name_key(&zone.origin).expect("validated name");
                let labels = label_count(&apex);
                let mut nodes = HashMap::new();
                nodes.insert(apex, Node::default());
                ZoneData {
                    index: i as u32,
                    soa: zone.soa(),
                    labels,
                    ttl: zone.ttl,
                    soa_ttl: zone.soa_ttl,
                    nameservers: zone
                        .nameservers
                        .iter()
                        .map(|ns| Name::from_ascii(&ns.name).expect("validated name"))
                        .collect(),
                    nodes,
                }
            })
            .collect();
        let by_apex: HashMap<Vec<u8>, usize> = config
            .zones
            .iter()
            .enumerate()
            .map(|(i, z)| (name_key(&z.origin).expect("validated name"), i))
            .collect();
        let zone_of = |key: &[u8]| find_suffix(&by_apex, key);

        for record in &config.records {
            let key = name_key(&record.name).expect("validated name");
            let node = zones[record.zone].nodes.entry(key).or_default();
            match record.rtype {
                RecordType::A => node.a = Source::Checked,
                RecordType::Aaaa => node.aaaa = Source::Checked,
            }
        }
        for zone in &config.zones {
            for ns in &zone.nameservers {
                let key = name_key(&ns.name).expect("validated name");
                // Its records live in whichever zone contains it, if any.
                let Some(home) = zone_of(&key) else { continue };
                let node = zones[home].nodes.entry(key).or_default();
                let v4: Vec<IpAddr> = ns
                    .addresses
                    .iter()
                    .filter(|a| a.is_ipv4())
                    .copied()
                    .collect();
                let v6: Vec<IpAddr> = ns
                    .addresses
                    .iter()
                    .filter(|a| a.is_ipv6())
                    .copied()
                    .collect();
                if !v4.is_empty() {
                    node.a = Source::Fixed(v4);
                }
                if !v6.is_empty() {
                    node.aaaa = Source::Fixed(v6);
                }
            }
        }
        // Empty non-terminals: every name between an existing name and its apex.
        for zone in &mut zones {
            let names: Vec<Vec<u8>> = zone.nodes.keys().cloned().collect();
            for name in names {
                let mut at = 0;
                loop {
                    at += 1 + name[at] as usize;
                    let parent = &name[at..];
                    if label_count(parent) <= zone.labels {
                        break;
                    }
                    zone.nodes.entry(parent.to_vec()).or_default();
                }
            }
        }
        ZoneTree { zones, by_apex }
    }

    /// Every zone's number and SOA.
    pub fn soas(&self) -> impl Iterator<Item = (u32, &Soa)> {
        self.zones.iter().map(|z| (z.index, &z.soa))
    }

    /// Zone number `index`.
    pub fn zone(&self, index: u32) -> Option<&ZoneData> {
        self.zones.get(index as usize)
    }

    /// The most specific zone `key` lies in.
    pub fn find(&self, key: &[u8]) -> Option<&ZoneData> {
        find_suffix(&self.by_apex, key).map(|z| &self.zones[z])
    }
}

/// Index of the longest suffix of `key` (at a label boundary) in `map`.
fn find_suffix(map: &HashMap<Vec<u8>, usize>, key: &[u8]) -> Option<usize> {
    let mut at = 0;
    loop {
        if let Some(&i) = map.get(&key[at..]) {
            return Some(i);
        }
        let len = *key.get(at)? as usize;
        if len == 0 {
            return None;
        }
        at += 1 + len;
        if at >= key.len() {
            return None;
        }
    }
}
