//! What the agent reports about itself: every endpoint's health with its
//! probe's tally ([`HealthSnapshot`]) and every record's answer, health and
//! overrides ([`StatusReport`], for `failover-agent status`).

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

use super::{Agent, History};
use crate::checks::health::ProbeStatus;
use crate::checks::settings::CheckTarget;
use crate::control::{EndpointReport, RecordStatus, StatusReport, TransitionReport};
use crate::events::unix_time;
use crate::policy::{Answer, Rules, decide};
use crate::publish::Publisher;

/// One (record, endpoint) and the health of the probe that checks it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointStatus {
    /// Record name and type ("www.example.test.", "A").
    pub record: String,
    pub rtype: String,
    /// The address the record answers with.
    pub address: IpAddr,
    /// The check's name and kind, and what it probes (may differ from
    /// `address`: `check_address`, `target_address`).
    pub check: String,
    pub kind: &'static str,
    pub target: CheckTarget,
    /// How many (record, endpoint) pairs share this probe (1 = only this one).
    pub shared_by: usize,
    pub status: ProbeStatus,
}

/// Every endpoint's health, in configuration order (records, then endpoints).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HealthSnapshot {
    pub endpoints: Vec<EndpointStatus>,
    /// Distinct probes running (fewer than endpoints when checks are shared).
    pub probes: usize,
}

impl<P: Publisher> Agent<P> {
    /// Every endpoint's health with its probe's latency, last failure and
    /// last change, in configuration order.
    pub fn snapshot(&self) -> HealthSnapshot {
        let mut endpoints = Vec::with_capacity(self.config.endpoint_count());
        for (r, record) in self.config.records.iter().enumerate() {
            for e in 0..record.endpoints.len() {
                endpoints.push(self.endpoint_status(r, e));
            }
        }
        HealthSnapshot {
            endpoints,
            probes: self.probes.as_ref().map_or(0, |p| p.len()),
        }
    }

    /// Endpoint `e` of record `r` with its probe's state.
    fn endpoint_status(&self, r: usize, e: usize) -> EndpointStatus {
        let record = &self.config.records[r];
        let endpoint = &record.endpoints[e];
        let probe = self
            .endpoint_probes
            .get(r)
            .and_then(|p| p.get(e).copied().flatten());
        let status = match (probe, &self.probes) {
            (Some(id), Some(probes)) => probes.status(id),
            _ => Default::default(),
        };
        EndpointStatus {
            record: record.name.clone(),
            rtype: record.rtype.to_string(),
            address: endpoint.address,
            check: record.check_name.clone(),
            kind: record.check.kind.name(),
            target: endpoint.check_target(&record.check),
            shared_by: probe
                .and_then(|id| self.users.get(&id))
                .map_or(1, |u| u.len()),
            status,
        }
    }

    /// Every record with its endpoints' health, overrides, answer and
    /// recent transitions.
    pub fn status(&self) -> StatusReport {
        let now = SystemTime::now();
        let mut records = Vec::with_capacity(self.config.records.len());
        for (r, record) in self.config.records.iter().enumerate() {
            let state = &self.records[r];
            let states = self.endpoint_states(r);
            let mut history = self
                .history
                .of_record(&record.name, type_name(record.rtype));
            let decision = decide(&Rules::of(record), &self.states(r));
            let held = self.publication.held(&record.name, record.rtype.code());
            let per_answer = match held.map(|e| &e.answer) {
                Some(Answer::Rotating { per_answer, .. }) => Some(*per_answer),
                _ => None,
            };
            let (answer, weights, ttl) = match held {
                None => ("none", Vec::new(), record.ttl),
                Some(entry) => {
                    let (kind, weights) = match &entry.answer {
                        Answer::Addrs(_) => ("addresses", Vec::new()),
                        Answer::Rotating { .. } => ("rotating", Vec::new()),
                        Answer::Weighted(w) => ("weighted", w.iter().map(|(_, w)| *w).collect()),
                        Answer::NoData => ("nodata", Vec::new()),
                        Answer::ServFail => ("servfail", Vec::new()),
                    };
                    (kind, weights, entry.ttl)
                }
            };
            let answered: Vec<IpAddr> = held.map_or(Vec::new(), |e| e.answer.addrs());
            let endpoints = record
                .endpoints
                .iter()
                .enumerate()
                .map(|(e, endpoint)| {
                    let admin = self.admin_mode(&record.name, endpoint.address, now);
                    let probe = self.endpoint_status(r, e);
                    let history: Vec<TransitionReport> = history
                        .remove(&endpoint.address)
                        .unwrap_or_default()
                        .into_iter()
                        .map(|t| TransitionReport {
                            at: unix_time(t.at),
                            from: t.from.name().to_string(),
                            to: t.to.name().to_string(),
                            reason: t.reason,
                        })
                        .collect();
                    let p = &probe.status;
                    let last_ok = p.last_check.is_some() && p.last_failure_at != p.last_check;
                    EndpointReport {
                        address: endpoint.address.to_string(),
                        priority: endpoint.priority,
                        weight: endpoint.weight,
                        health: state.health[e].to_string(),
                        damped: probe.status.damped,
                        admin: admin.map(|(m, _)| m.name().to_string()),
                        admin_until: admin
                            .and_then(|(_, u)| u)
                            .map(|u| humantime::format_rfc3339_seconds(u).to_string()),
                        admin_scope: admin.filter(|_| self.clustered()).map(|_| {
                            match self.cluster_override(&record.name, endpoint.address, now) {
                                Some(_) => "cluster",
                                None => "local",
                            }
                            .to_string()
                        }),
                        answered: answered.contains(&endpoint.address),
                        check: Some(format!("{} ({} {})", probe.check, probe.kind, probe.target)),
                        latency_ms: probe.status.last_latency.map(|l| l.as_secs_f64() * 1000.0),
                        last_failure: probe.status.last_failure.clone(),
                        state: states[e].name().to_string(),
                        checks: p.checks,
                        failures: p.failures,
                        last_result: p
                            .last_check
                            .map(|_| if last_ok { "success" } else { "failure" }.to_string()),
                        last_check_at: p.last_check.map(unix_time),
                        last_change_at: history
                            .last()
                            .map(|t| t.at)
                            .or(p.last_change.map(unix_time)),
                        history,
                        votes: self.cluster_votes(r, e),
                        quorum: self.cluster_quorum(r, e),
                        checked_here: self.cluster.as_ref().map(|c| c.checks_here(r, e)),
                    }
                })
                .collect();
            records.push(RecordStatus {
                name: record.name.clone(),
                rtype: record.rtype.to_string(),
                policy: record.policy.to_string(),
                when_all_down: record.when_all_down.to_string(),
                answer: answer.to_string(),
                addresses: answered.iter().map(|a| a.to_string()).collect(),
                per_answer,
                weights,
                ttl,
                degraded: decision.as_ref().is_some_and(|d| d.degraded),
                all_down: decision.as_ref().is_some_and(|d| d.all_down),
                endpoints,
            });
        }
        StatusReport {
            version: env!("CARGO_PKG_VERSION").to_string(),
            generated_at: unix_time(now),
            answering: self.first_round_done,
            answer_sets: self.publication.held_count(),
            admin_state_file: self.admin.path().map(|p| p.display().to_string()),
            records,
            cluster: self.cluster_report(),
        }
    }
}

impl<P: Publisher> Agent<P> {
    /// Follows the agent's status: a fresh [`StatusReport`] once a second
    /// (and as the first answers go out), sent from the loop without
    /// waiting for any reader (HTTP clients read the last one).
    pub fn status_feed(&self) -> tokio::sync::watch::Receiver<Arc<StatusReport>> {
        self.status_tx.subscribe()
    }

    /// Sends a fresh status to the feed if anyone follows it.
    pub(super) fn publish_status(&mut self) {
        if self.status_tx.receiver_count() == 0 {
            return;
        }
        if self.history.reloaded() {
            let present: HashSet<(String, IpAddr)> = self
                .config
                .records
                .iter()
                .flat_map(|r| {
                    r.endpoints
                        .iter()
                        .map(move |e| History::present(&r.name, type_name(r.rtype), e.address))
                })
                .collect();
            self.history.retain(&present);
        }
        self.status_tx.send_replace(Arc::new(self.status()));
    }
}

fn type_name(rtype: crate::config::RecordType) -> &'static str {
    match rtype {
        crate::config::RecordType::A => "A",
        crate::config::RecordType::Aaaa => "AAAA",
    }
}
