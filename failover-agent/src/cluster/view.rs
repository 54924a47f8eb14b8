//! What the nameservers of a cluster said, as etcd holds it, and what
//! follows from it: each endpoint's health by quorum and which nodes check
//! which endpoints. Pure: every node holding the same keys computes the
//! same answers.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::checks::health::Health;
use crate::config::Quorum;
use crate::config::cluster::valid_node;

/// Where this node's health decisions come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Standing {
    /// Not in contact with etcd yet, for less than `lease_ttl`.
    Joining,
    /// In contact with etcd: the quorum of the live nodes decides.
    Joined,
    /// etcd unreachable for `lease_ttl` or more: this node's own checks decide.
    Alone,
}

impl fmt::Display for Standing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Standing::Joining => "joining",
            Standing::Joined => "joined",
            Standing::Alone => "alone",
        })
    }
}

/// An operator override stored in etcd, for every node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredOverride {
    /// Absolute, lowercase record name.
    pub record: String,
    pub endpoint: std::net::IpAddr,
    pub mode: crate::admin_state::Mode,
    pub until: Option<std::time::SystemTime>,
    /// etcd's `mod_revision` of its key: an expired override is deleted
    /// only if nobody rewrote it since.
    pub revision: i64,
}

/// The cluster as this node sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct View {
    pub standing: Standing,
    pub quorum: Quorum,
    /// 0: every node checks every endpoint.
    pub checkers: u32,
    /// This node's name.
    pub node: String,
    /// Nodes whose lease is alive.
    pub live: BTreeSet<String>,
    /// Observation key (`CHECK/TARGET`) -> node -> what it observes.
    pub votes: BTreeMap<String, BTreeMap<String, Health>>,
    /// Overrides by `RECORD/ENDPOINT` key.
    pub overrides: BTreeMap<String, StoredOverride>,
    /// Why the standing is what it is, in words (set when it changes): for
    /// the log and the standing's event.
    pub reason: String,
    /// Each node's configuration digest (`config/NODE`), by node.
    pub digests: BTreeMap<String, String>,
}

/// One endpoint's votes and the result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tally {
    pub healthy: usize,
    pub observers: usize,
    /// `None`: no live node observes it.
    pub result: Option<Health>,
}

impl View {
    pub fn new(node: String, quorum: Quorum, checkers: u32) -> View {
        View {
            standing: Standing::Joining,
            quorum,
            checkers,
            node,
            live: BTreeSet::new(),
            votes: BTreeMap::new(),
            overrides: BTreeMap::new(),
            reason: "not in contact with etcd yet".to_string(),
            digests: BTreeMap::new(),
        }
    }

    /// The live nodes other than this one whose configuration digest is
    /// not `mine`, with theirs.
    pub fn config_mismatches(&self, mine: &str) -> BTreeMap<String, String> {
        self.digests
            .iter()
            .filter(|(node, digest)| {
                **node != self.node && self.live.contains(*node) && digest.as_str() != mine
            })
            .map(|(node, digest)| (node.clone(), digest.clone()))
            .collect()
    }

    /// The votes of live nodes on `key` and the quorum's result.
    pub fn tally(&self, key: &str) -> Tally {
        let (mut healthy, mut observers) = (0, 0);
        if let Some(votes) = self.votes.get(key) {
            for (node, health) in votes {
                if !self.live.contains(node) {
                    continue;
                }
                match health {
                    Health::Healthy => {
                        healthy += 1;
                        observers += 1;
                    }
                    Health::Unhealthy => observers += 1,
                    Health::Unknown => {}
                }
            }
        }
        let result = self.quorum.reached(healthy, observers).map(|up| {
            if up {
                Health::Healthy
            } else {
                Health::Unhealthy
            }
        });
        Tally {
            healthy,
            observers,
            result,
        }
    }

    /// The nodes that check `key`: every live node, or with `checkers = N`
    /// the N live nodes ranked first by rendezvous hashing (highest random
    /// weight), so a node's death moves only its own keys, each to the next
    /// node in that key's ranking.
    pub fn checkers_of(&self, key: &str) -> Vec<&str> {
        let mut nodes: Vec<&str> = self.live.iter().map(String::as_str).collect();
        if self.checkers == 0 || nodes.len() <= self.checkers as usize {
            return nodes;
        }
        nodes.sort_by_key(|node| std::cmp::Reverse((rendezvous(node, key), *node)));
        nodes.truncate(self.checkers as usize);
        nodes
    }

    /// Whether this node runs the check behind `key`. Alone, it checks
    /// everything (its own checks decide); joining with checkers, nothing
    /// until it knows the live nodes (a moment, or `lease_ttl` until alone).
    pub fn checks_here(&self, key: &str) -> bool {
        match self.standing {
            Standing::Alone => true,
            Standing::Joining => self.checkers == 0,
            Standing::Joined => {
                self.checkers == 0 || self.checkers_of(key).contains(&self.node.as_str())
            }
        }
    }
}

/// A key's weight for a node: the same on every node and every build
/// (FNV-1a over both, then a 64-bit finaliser to spread near-equal inputs).
fn rendezvous(node: &str, key: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in node.bytes().chain([0]).chain(key.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// What one key under the prefix is, or why it is ignored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Key {
    /// `nodes/NODE`: the node is live (the key lives on its lease).
    Node(String),
    /// `health/NODE/CHECK/TARGET`: the node's observation of `CHECK/TARGET`.
    Health { node: String, observation: String },
    /// `overrides/RECORD/ENDPOINT`.
    Override { record: String, endpoint: String },
    /// `config/NODE`: the digest of the node's configuration (the key
    /// lives on its lease).
    Config(String),
}

/// Parses `rest`, a key with the prefix taken off.
pub fn parse_key(rest: &str) -> Result<Key, String> {
    let (kind, rest) = rest
        .split_once('/')
        .ok_or_else(|| "not a key the agents write".to_string())?;
    match kind {
        "nodes" if valid_node(rest) => Ok(Key::Node(rest.to_string())),
        "config" if valid_node(rest) => Ok(Key::Config(rest.to_string())),
        "health" => {
            let (node, observation) = rest
                .split_once('/')
                .ok_or_else(|| "a health key is health/NODE/CHECK/TARGET".to_string())?;
            if !valid_node(node) || !observation.contains('/') {
                return Err("a health key is health/NODE/CHECK/TARGET".to_string());
            }
            Ok(Key::Health {
                node: node.to_string(),
                observation: observation.to_string(),
            })
        }
        "overrides" => {
            let (record, endpoint) = rest
                .rsplit_once('/')
                .ok_or_else(|| "an override key is overrides/RECORD/ENDPOINT".to_string())?;
            Ok(Key::Override {
                record: record.to_string(),
                endpoint: endpoint.to_string(),
            })
        }
        _ => Err("not a key the agents write".to_string()),
    }
}

/// An observation's value.
pub fn health_value(value: &[u8]) -> Result<Health, String> {
    match value {
        b"healthy" => Ok(Health::Healthy),
        b"unhealthy" => Ok(Health::Unhealthy),
        other => Err(format!(
            "value {:?} is neither \"healthy\" nor \"unhealthy\"",
            String::from_utf8_lossy(&other[..other.len().min(40)])
        )),
    }
}

pub fn health_text(health: Health) -> &'static str {
    match health {
        Health::Healthy => "healthy",
        // Never written: an unknown observation is withdrawn instead.
        Health::Unhealthy | Health::Unknown => "unhealthy",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(live: &[&str], votes: &[(&str, Health)]) -> View {
        let mut v = View::new("ns1".into(), Quorum::Majority, 0);
        v.standing = Standing::Joined;
        v.live = live.iter().map(|s| s.to_string()).collect();
        v.votes.insert(
            "web/192.0.2.10:80".into(),
            votes.iter().map(|(n, h)| (n.to_string(), *h)).collect(),
        );
        v
    }

    #[test]
    fn only_live_nodes_vote() {
        use Health::*;
        let v = view(
            &["ns1", "ns2", "ns3"],
            &[("ns1", Unhealthy), ("ns2", Healthy), ("ns3", Healthy)],
        );
        let t = v.tally("web/192.0.2.10:80");
        assert_eq!((t.healthy, t.observers, t.result), (2, 3, Some(Healthy)));
        // ns2's lease expired: its vote is gone, 1 of 2 is no majority.
        let v = view(
            &["ns1", "ns3"],
            &[("ns1", Unhealthy), ("ns2", Healthy), ("ns3", Healthy)],
        );
        let t = v.tally("web/192.0.2.10:80");
        assert_eq!((t.healthy, t.observers, t.result), (1, 2, Some(Unhealthy)));
        assert_eq!(v.tally("other/192.0.2.11:80").result, None);
    }

    #[test]
    fn live_nodes_with_another_digest_mismatch() {
        let mut v = view(&["ns1", "ns2", "ns3"], &[]);
        for (node, digest) in [("ns1", "aa"), ("ns2", "aa"), ("ns3", "bb"), ("ns4", "cc")] {
            v.digests.insert(node.into(), digest.into());
        }
        // ns4 is not live; ns1 is this node.
        assert_eq!(
            v.config_mismatches("aa"),
            BTreeMap::from([("ns3".to_string(), "bb".to_string())])
        );
        assert_eq!(v.config_mismatches("bb").len(), 1, "ns2 then");
    }

    #[test]
    fn rendezvous_moves_only_a_dead_nodes_keys() {
        let mut v = View::new("ns1".into(), Quorum::Majority, 1);
        v.standing = Standing::Joined;
        v.live = ["ns1", "ns2", "ns3"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let keys: Vec<String> = (0..300).map(|i| format!("web/192.0.2.{i}:80")).collect();
        let before: Vec<String> = keys
            .iter()
            .map(|k| v.checkers_of(k)[0].to_string())
            .collect();
        for node in ["ns1", "ns2", "ns3"] {
            let n = before.iter().filter(|b| *b == node).count();
            assert!((60..140).contains(&n), "{node} checks {n} of 300");
        }
        v.live.remove("ns2");
        for (k, b) in keys.iter().zip(&before) {
            let now = v.checkers_of(k)[0];
            if b != "ns2" {
                assert_eq!(now, b, "{k} moved off a live node");
            } else {
                assert_ne!(now, "ns2");
            }
        }
        assert_eq!(
            keys.iter().filter(|k| v.checks_here(k)).count(),
            keys.iter().filter(|k| v.checkers_of(k) == ["ns1"]).count()
        );
        v.standing = Standing::Alone;
        assert!(keys.iter().all(|k| v.checks_here(k)));
    }

    #[test]
    fn keys_parse_or_are_refused() {
        assert_eq!(parse_key("nodes/ns1"), Ok(Key::Node("ns1".into())));
        assert_eq!(parse_key("config/ns2"), Ok(Key::Config("ns2".into())));
        assert_eq!(
            parse_key("health/ns2/web/[2001:db8::1]:80"),
            Ok(Key::Health {
                node: "ns2".into(),
                observation: "web/[2001:db8::1]:80".into()
            })
        );
        assert_eq!(
            parse_key("overrides/www.example.test./192.0.2.10"),
            Ok(Key::Override {
                record: "www.example.test.".into(),
                endpoint: "192.0.2.10".into()
            })
        );
        for bad in [
            "nodes/a/b",
            "health/ns1",
            "health/bad node/web/x",
            "votes/x",
            "x",
        ] {
            assert!(parse_key(bad).is_err(), "{bad}");
        }
        assert_eq!(health_value(b"healthy"), Ok(Health::Healthy));
        assert!(health_value(b"up").is_err());
    }
}
