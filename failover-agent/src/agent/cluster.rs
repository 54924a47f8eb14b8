//! The agent as one node of a cluster (`[cluster]`): the health the policy
//! uses comes from the quorum of the live nodes' observations instead of
//! this node's probe alone; this node's probe results go out as its
//! observations; with `checkers = N` only the probes this node is assigned
//! run; overrides stored in etcd apply like the admin-state file's.
//!
//! Without `[cluster]` none of this runs and the agent decides alone.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::time::{Instant, SystemTime};

use log::{info, warn};

use super::Agent;
use crate::admin_state::{Mode, normalise_record};
use crate::checks::health::Health;
use crate::cluster::{Member, Request, Standing, View};
use crate::config::Config;
use crate::config::cluster::decision_digest;
use crate::control::ClusterReport;
use crate::events::{ClusterStanding, Event};
use crate::publish::Publisher;

/// What the agent keeps of the cluster.
pub(super) struct ClusterState {
    member: Member,
    /// The view the agent's health is computed from.
    pub(super) view: View,
    /// The observation key (`CHECK/TARGET`) of each endpoint of each record.
    keys: Vec<Vec<String>>,
    /// This node's own probe health of each endpoint of each record.
    pub(super) local: Vec<Vec<Health>>,
    /// The observation last sent per key.
    sent: HashMap<String, Health>,
    /// This node's configuration digest, as published.
    digest: String,
    /// Live nodes whose configuration digest differs, with theirs: as last
    /// logged.
    mismatched: BTreeMap<String, String>,
}

/// `CHECK/TARGET` for every endpoint of every record: the same on every
/// node with the same configuration.
fn observation_keys(config: &Config) -> Vec<Vec<String>> {
    config
        .records
        .iter()
        .map(|r| {
            r.endpoints
                .iter()
                .map(|e| format!("{}/{}", r.check_name, e.check_target(&r.check)))
                .collect()
        })
        .collect()
}

impl ClusterState {
    fn local_for(config: &Config) -> Vec<Vec<Health>> {
        config
            .records
            .iter()
            .map(|r| vec![Health::Unknown; r.endpoints.len()])
            .collect()
    }

    /// The health the policy uses for endpoint `e` of record `r`.
    fn effective(&self, r: usize, e: usize) -> Health {
        match self.view.standing {
            Standing::Alone => self.local[r][e],
            Standing::Joining | Standing::Joined => self
                .view
                .tally(&self.keys[r][e])
                .result
                .unwrap_or(Health::Unknown),
        }
    }

    /// Sends this node's observation of `key` if it changed.
    fn observe(&mut self, key: &str, health: Health) {
        if health == Health::Unknown || self.sent.get(key) == Some(&health) {
            return;
        }
        self.sent.insert(key.to_string(), health);
        self.member.send(Request::Observe {
            key: key.to_string(),
            health,
        });
    }

    fn withdraw(&mut self, key: &str) {
        if self.sent.remove(key).is_some() {
            self.member.send(Request::Withdraw {
                key: key.to_string(),
            });
        }
    }

    pub(super) fn key(&self, r: usize, e: usize) -> &str {
        &self.keys[r][e]
    }

    /// Completes when the cluster's view changed.
    pub(super) async fn changed(&mut self) {
        self.member.changed().await;
    }

    /// Whether this node runs the probe of endpoint `e` of record `r`.
    pub(super) fn checks_here(&self, r: usize, e: usize) -> bool {
        self.view.checks_here(&self.keys[r][e])
    }

    /// Why endpoint `e` of record `r` has the health it has, for the log.
    fn reason(&self, r: usize, e: usize) -> String {
        if self.view.standing == Standing::Alone {
            return "this node's own checks (etcd out of reach)".to_string();
        }
        let tally = self.view.tally(&self.keys[r][e]);
        format!(
            "quorum {}: {} of {} observing nodes healthy",
            self.view.quorum, tally.healthy, tally.observers
        )
    }
}

impl<P: Publisher> Agent<P> {
    /// Joins the cluster if the configuration has `[cluster]` (inside the
    /// runtime, from `run`).
    pub(super) fn join_cluster(&mut self) {
        let Some(settings) = self.config.cluster.clone() else {
            return;
        };
        info!(
            "cluster: node {} joining through etcd {} under {} (quorum {}, lease_ttl {}, checkers {})",
            settings.node,
            settings.etcd.join(", "),
            settings.prefix,
            settings.quorum,
            humantime::format_duration(settings.lease_ttl),
            if settings.checkers == 0 {
                "every node".to_string()
            } else {
                settings.checkers.to_string()
            }
        );
        let digest = decision_digest(&self.config);
        let mut member = Member::start(settings, digest.clone());
        let view = member.view();
        self.cluster = Some(ClusterState {
            member,
            view,
            keys: observation_keys(&self.config),
            local: ClusterState::local_for(&self.config),
            sent: HashMap::new(),
            digest,
            mismatched: BTreeMap::new(),
        });
    }

    /// Which endpoints' probes run on this node: all of them, unless the
    /// cluster assigns them to `checkers` nodes.
    pub(super) fn checked_here(&self) -> Vec<Vec<bool>> {
        self.config
            .records
            .iter()
            .enumerate()
            .map(|(r, record)| {
                (0..record.endpoints.len())
                    .map(|e| self.cluster.as_ref().is_none_or(|c| c.checks_here(r, e)))
                    .collect()
            })
            .collect()
    }

    /// A probe result for endpoint `e` of record `r`: the health the policy
    /// is to use now, and why.
    pub(super) fn probed(
        &mut self,
        r: usize,
        e: usize,
        health: Health,
    ) -> Option<(Health, String)> {
        let c = self.cluster.as_mut()?;
        c.local[r][e] = health;
        if c.sent.get(&c.keys[r][e]) != Some(&health) {
            let key = c.keys[r][e].clone();
            c.observe(&key, health);
        }
        let effective = c.effective(r, e);
        // The reason is only read when the health changes.
        let reason = if effective == self.records[r].health[e] {
            String::new()
        } else {
            c.reason(r, e)
        };
        Some((effective, reason))
    }
    /// The cluster's view changed: probes to start or stop (checkers), and
    /// every endpoint whose health follows from it.
    pub(super) fn cluster_changed(&mut self, started: Instant) {
        let Some(c) = self.cluster.as_mut() else {
            return;
        };
        let old = std::mem::replace(&mut c.view, c.member.view());
        if let Some(event) = standing_event(&old, &c.view, SystemTime::now()) {
            self.events.emit(Event::Cluster(event));
        }
        let Some(c) = self.cluster.as_mut() else {
            return;
        };
        if c.view.standing != old.standing || c.view.live != old.live {
            self.sync_probes();
            self.withdraw_unchecked();
        }
        self.compare_configs();
        if c_overrides_changed(&old, self.cluster.as_ref().map(|c| &c.view)) {
            self.refresh_admin("cluster (etcd)");
        }
        let mut changed = Vec::new();
        for r in 0..self.config.records.len() {
            for e in 0..self.config.records[r].endpoints.len() {
                let c = self.cluster.as_ref().expect("checked above");
                let new = c.effective(r, e);
                if new == self.records[r].health[e] {
                    continue;
                }
                let reason = c.reason(r, e);
                if self.set_health(r, e, new, &reason) && !changed.contains(&r) {
                    changed.push(r);
                }
            }
        }
        self.decide(changed, started);
    }

    /// Withdraws this node's observations of endpoints it no longer checks.
    fn withdraw_unchecked(&mut self) {
        let here = self.checked_here();
        let Some(c) = self.cluster.as_mut() else {
            return;
        };
        for (r, endpoints) in here.iter().enumerate() {
            for (e, here) in endpoints.iter().enumerate() {
                if !here {
                    c.local[r][e] = Health::Unknown;
                    let key = c.keys[r][e].clone();
                    c.withdraw(&key);
                }
            }
        }
    }

    /// At a reload, before the probes follow: observation keys for the new
    /// records; what is no longer observed is withdrawn.
    pub(super) fn cluster_rekey(&mut self) {
        // As [server]: the running settings stay until a restart, and the
        // reload says which keys it did not apply.
        let running = self.cluster.as_ref().map(|c| c.member.settings().clone());
        let changed =
            crate::config::Cluster::changed_keys(running.as_ref(), self.config.cluster.as_ref());
        if !changed.is_empty() {
            warn!(
                "reload: [cluster] {}: the cluster settings change only on a restart; the running ones stay (the rest is applied now)",
                match (&running, &self.config.cluster) {
                    (None, Some(_)) => "added".to_string(),
                    (Some(_), None) => "removed".to_string(),
                    _ => format!("changed ({})", changed.join(", ")),
                }
            );
            self.config.cluster = running;
        }
        let Some(c) = self.cluster.as_mut() else {
            return;
        };
        c.keys = observation_keys(&self.config);
        c.local = ClusterState::local_for(&self.config);
        let wanted: std::collections::HashSet<&String> = c.keys.iter().flatten().collect();
        let gone: Vec<String> = c
            .sent
            .keys()
            .filter(|k| !wanted.contains(k))
            .cloned()
            .collect();
        for key in gone {
            c.withdraw(&key);
        }
    }

    /// Warns once per change about live nodes whose configuration digest
    /// differs from this node's (and says when they agree again): the same
    /// observations would give them other answers.
    fn compare_configs(&mut self) {
        let Some(c) = self.cluster.as_mut() else {
            return;
        };
        let now = c.view.config_mismatches(&c.digest);
        if now == c.mismatched {
            return;
        }
        let me = &c.view.node;
        for (node, theirs) in &now {
            if c.mismatched.get(node) != Some(theirs) {
                warn!(
                    "cluster: node {node}'s configuration differs from this node's ({me}): digest {theirs} there, {} here; records, checks, policies and quorum must be the same on every node, or they answer differently",
                    c.digest
                );
            }
        }
        for node in c.mismatched.keys() {
            if !now.contains_key(node) {
                info!(
                    "cluster: node {node}'s configuration no longer differs from this node's ({me})"
                );
            }
        }
        c.mismatched = now;
    }

    /// After a reload's records are built: this node's probe health of each
    /// endpoint goes out, and the health the policy uses is the cluster's.
    pub(super) fn cluster_reloaded(&mut self) {
        let digest = decision_digest(&self.config);
        let Some(c) = self.cluster.as_mut() else {
            return;
        };
        if c.digest != digest {
            c.digest = digest.clone();
            c.member.send(Request::Digest { digest });
            self.compare_configs();
        }
        for r in 0..self.config.records.len() {
            for e in 0..self.config.records[r].endpoints.len() {
                let c = self.cluster.as_mut().expect("checked above");
                // Probe health as the reload computed it.
                let local = self.records[r].health[e];
                c.local[r][e] = local;
                let key = c.keys[r][e].clone();
                c.observe(&key, local);
                self.records[r].health[e] = c.effective(r, e);
            }
        }
    }

    /// The override in force for an endpoint: the cluster's (etcd) first,
    /// then the admin-state file's and the control socket's.
    pub(super) fn admin_mode(
        &self,
        record: &str,
        address: IpAddr,
        now: SystemTime,
    ) -> Option<(Mode, Option<SystemTime>)> {
        if let Some(c) = &self.cluster
            && let Some(o) = c
                .view
                .overrides
                .get(&format!("{}/{address}", normalise_record(record)))
            && crate::cluster::session::override_in_force(o, now)
        {
            return Some((o.mode, o.until));
        }
        self.admin.state.mode(record, address, now)
    }

    /// The cluster's override in force for an endpoint, if any.
    pub(super) fn cluster_override(
        &self,
        record: &str,
        address: IpAddr,
        now: SystemTime,
    ) -> Option<Mode> {
        let c = self.cluster.as_ref()?;
        c.view
            .overrides
            .get(&format!("{}/{address}", normalise_record(record)))
            .filter(|o| crate::cluster::session::override_in_force(o, now))
            .map(|o| o.mode)
    }

    /// Each live node's observation of endpoint `e` of record `r`.
    pub(super) fn cluster_votes(&self, r: usize, e: usize) -> BTreeMap<String, String> {
        let Some(c) = &self.cluster else {
            return BTreeMap::new();
        };
        c.view
            .votes
            .get(c.key(r, e))
            .map(|votes| {
                votes
                    .iter()
                    .filter(|(node, _)| c.view.live.contains(*node))
                    .map(|(node, health)| (node.clone(), health.to_string()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The quorum's result for endpoint `e` of record `r`, e.g.
    /// "healthy (2 of 3)"; alone, what this node's own checks say.
    pub(super) fn cluster_quorum(&self, r: usize, e: usize) -> Option<String> {
        let c = self.cluster.as_ref()?;
        if c.view.standing == Standing::Alone {
            return Some(format!("{} (own checks: etcd out of reach)", c.local[r][e]));
        }
        let tally = c.view.tally(c.key(r, e));
        Some(match tally.result {
            None => "no observer".to_string(),
            Some(health) => format!("{health} ({} of {})", tally.healthy, tally.observers),
        })
    }

    pub(super) fn cluster_report(&self) -> Option<ClusterReport> {
        let c = self.cluster.as_ref()?;
        Some(ClusterReport {
            node: c.view.node.clone(),
            standing: c.view.standing.to_string(),
            quorum: c.view.quorum.to_string(),
            checkers: c.view.checkers,
            live: c.view.live.iter().cloned().collect(),
            config_digest: c.digest.clone(),
            config_mismatch: c.mismatched.keys().cloned().collect(),
        })
    }

    /// Whether overrides are stored in etcd (drain and force go there).
    pub(super) fn clustered(&self) -> bool {
        self.cluster.is_some()
    }

    /// Stores an override in etcd for every node; the reply comes once
    /// etcd has it.
    pub(super) fn store_override(
        &self,
        record: String,
        endpoint: IpAddr,
        mode: Option<(Mode, Option<SystemTime>)>,
    ) -> tokio::sync::oneshot::Receiver<Result<(), String>> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        if let Some(c) = &self.cluster {
            c.member.send(Request::Override {
                record,
                endpoint,
                mode,
                reply,
            });
        }
        rx
    }
}

/// The event for a change of this node's standing (joined, alone,
/// rejoined), if `new` changed it.
fn standing_event(old: &View, new: &View, at: SystemTime) -> Option<ClusterStanding> {
    (new.standing != old.standing).then(|| ClusterStanding {
        at,
        node: new.node.clone(),
        from: old.standing.to_string(),
        to: new.standing.to_string(),
        live: new.live.iter().cloned().collect(),
        reason: new.reason.clone(),
    })
}

fn c_overrides_changed(old: &View, new: Option<&View>) -> bool {
    new.is_some_and(|new| new.overrides != old.overrides)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Quorum;

    #[test]
    fn standing_changes_are_events_and_nothing_else_is() {
        let at = SystemTime::UNIX_EPOCH;
        let joining = View::new("ns1".into(), Quorum::Majority, 0);
        let mut joined = joining.clone();
        joined.standing = Standing::Joined;
        joined.live = ["ns1".to_string(), "ns2".to_string()].into();
        joined.reason = "joined etcd as node ns1 at revision 7".into();
        let mut alone = joined.clone();
        alone.standing = Standing::Alone;
        alone.live.clear();
        alone.reason = "no answer from etcd for 3s (lease_ttl)".into();

        let e = standing_event(&joining, &joined, at).expect("joined");
        assert_eq!((e.from.as_str(), e.to.as_str()), ("joining", "joined"));
        assert_eq!(e.live, ["ns1", "ns2"]);
        assert_eq!(e.node, "ns1");
        let e = standing_event(&joined, &alone, at).expect("alone");
        assert_eq!((e.from.as_str(), e.to.as_str()), ("joined", "alone"));
        assert_eq!(e.reason, "no answer from etcd for 3s (lease_ttl)");
        assert!(e.live.is_empty());
        let e = standing_event(&alone, &joined, at).expect("rejoined");
        assert_eq!((e.from.as_str(), e.to.as_str()), ("alone", "joined"));
        // New votes or live nodes are no standing change.
        let mut more = joined.clone();
        more.live.insert("ns3".into());
        assert_eq!(standing_event(&joined, &more, at), None);
    }
}
