//! The agent's loop: checks in, answers out.
//!
//! One task per probe (a check aimed at a target, shared by every (record,
//! endpoint) that uses the same check on the same target) runs its checks on
//! its own interval, so a slow or hanging endpoint never delays another's
//! check ([`crate::checks`]). The tasks send results to one loop that owns
//! all state and the publication path: no locks, and every write carries a
//! record's whole answer.
//!
//! - this file: the state and the loop (check results -> policy -> publish);
//! - [`reload`]: applying a new configuration;
//! - [`overrides`]: drain and force (admin-state file, control socket);
//! - [`status`]: what the agent reports about itself;
//! - [`cluster`]: with `[cluster]`, health by quorum of several nameservers.
//!
//! Transitions, answer changes, reloads and overrides are not logged here:
//! they are emitted as [`Event`]s, and the log is one of their observers
//! ([`crate::logging`]).

mod cluster;
mod handover;
mod history;
pub mod lifecycle;
mod overrides;
mod reload;
mod status;
#[cfg(test)]
mod tests;

pub use handover::HandoverStep;
pub use history::{HISTORY_PER_ENDPOINT, History};
pub use reload::Reloader;
pub use status::{EndpointStatus, HealthSnapshot};

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Result, bail};
use log::{debug, error, info, warn};
use tokio::sync::{mpsc, watch};
use tokio::time::MissedTickBehavior;

use crate::admin_state::{AdminStore, Mode};
use crate::checks::health::Health;
use crate::checks::result::{CheckObserver, Latency};
use crate::checks::{ProbeEvent, ProbeId, ProbeKey, Probes, SyncReport};
use crate::config::Config;
use crate::control::{ControlMsg, StatusReport};
use crate::events::{AnswerChange, EndpointState, Event, Events, Transition};
use crate::policy::{Rules, State, decide};
use crate::publish::{Publication, Publisher, Put};
use crate::serve::table::Entry;

/// What the agent knows of one record beyond its configuration.
struct RecordState {
    /// Health of each endpoint (its probe's), in configuration order.
    health: Vec<Health>,
    /// No endpoint is usable: the answer is `when_all_down`'s (logged once
    /// per entry).
    all_down: bool,
    /// Each endpoint's state as last reported in a [`Transition`] event.
    reported: Vec<EndpointState>,
}

impl RecordState {
    fn new(endpoints: usize) -> Self {
        RecordState {
            health: vec![Health::Unknown; endpoints],
            all_down: false,
            reported: vec![EndpointState::Unknown; endpoints],
        }
    }
}

/// How far the agent's loop has got, for whoever watches it from outside
/// (systemd's readiness and watchdog).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// The first round of checks is over: answers are written.
    pub answering: bool,
    /// Turns of the loop's one-second tick: it moves while the loop runs.
    pub ticks: u64,
}

/// The agent: configuration, health state and the publication path.
pub struct Agent<P> {
    config: Config,
    publication: Publication<P>,
    records: Vec<RecordState>,
    /// Endpoints that have not had their first check result yet. No answer
    /// is written while this is non-zero during the first round.
    unknown: usize,
    /// The first round of checks is over (answers are being written).
    first_round_done: bool,
    /// The running probes (from `run` on), and which (record, endpoint)
    /// pairs each serves.
    probes: Option<Probes>,
    users: HashMap<ProbeId, Vec<(usize, usize)>>,
    /// The probe of each endpoint of each record, once `run` started them.
    endpoint_probes: Vec<Vec<Option<ProbeId>>>,
    /// New configurations to apply (SIGHUP, `failover-agent reload`).
    reload_tx: mpsc::UnboundedSender<Config>,
    reload_rx: mpsc::UnboundedReceiver<Config>,
    /// The operator's overrides (drain, force), from the admin-state file
    /// and the control socket.
    admin: AdminStore,
    /// The last heartbeat failed (logged once until one succeeds).
    heartbeat_failing: bool,
    /// The override in force per (record name, type, endpoint), to log changes.
    admin_seen: HashMap<(String, u16, IpAddr), (Mode, Option<SystemTime>)>,
    /// Requests from the control socket.
    control: Option<mpsc::Receiver<ControlMsg>>,
    /// Steps of a handover to another agent.
    handover: Option<mpsc::Receiver<HandoverStep>>,
    progress: watch::Sender<Progress>,
    /// Where transitions, answer changes, reloads and overrides go.
    events: Events,
    /// Every endpoint's last transitions, from `events`.
    history: History,
    /// The status for readers off the loop ([`Agent::status_feed`]).
    status_tx: watch::Sender<Arc<StatusReport>>,
    /// Takes every check result (metrics).
    check_observer: Option<Arc<dyn CheckObserver>>,
    /// With `[cluster]` (from `run` on): the other nameservers' view.
    cluster: Option<cluster::ClusterState>,
}

/// The probe that checks each endpoint of each record of `config`.
fn probe_keys(config: &Config) -> Vec<Vec<ProbeKey>> {
    config
        .records
        .iter()
        .map(|r| {
            r.endpoints
                .iter()
                .map(|e| (r.check.clone(), e.check_target(&r.check)))
                .collect()
        })
        .collect()
}

impl<P: Publisher> Agent<P> {
    /// An agent for `config` publishing to `target`. The zone tree goes out
    /// at once, so SOA, NS and negative answers are served before any check
    /// has run; answers follow the first round of checks.
    pub fn new(config: Config, target: P) -> Self {
        let records = config
            .records
            .iter()
            .map(|r| RecordState::new(r.endpoints.len()))
            .collect();
        let unknown = config.endpoint_count();
        let publication = Publication::new(target, &config);
        let (reload_tx, reload_rx) = mpsc::unbounded_channel();
        let events = Events::new();
        Self {
            config,
            publication,
            records,
            unknown,
            first_round_done: false,
            probes: None,
            users: HashMap::new(),
            endpoint_probes: Vec::new(),
            reload_tx,
            reload_rx,
            admin: AdminStore::memory(),
            heartbeat_failing: false,
            admin_seen: HashMap::new(),
            control: None,
            handover: None,
            progress: watch::Sender::new(Progress::default()),
            history: History::observing(&events),
            events,
            status_tx: watch::Sender::new(Arc::new(StatusReport::default())),
            check_observer: None,
            cluster: None,
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn publisher(&self) -> &P {
        self.publication.target()
    }

    pub fn publisher_mut(&mut self) -> &mut P {
        self.publication.target_mut()
    }

    pub fn into_publisher(self) -> P {
        self.publication.into_target()
    }

    /// Follows the loop: answering, and ticking while it runs.
    pub fn progress(&self) -> watch::Receiver<Progress> {
        self.progress.subscribe()
    }

    /// The events this agent emits: register observers on it before `run`.
    pub fn events(&self) -> Events {
        self.events.clone()
    }

    /// Hands every check result to `observer` (before it is applied).
    pub fn observe_checks(&mut self, observer: Arc<dyn CheckObserver>) {
        self.check_observer = Some(observer);
    }

    /// Health of every endpoint of record `r`, in configuration order.
    pub fn health(&self, record: usize) -> Vec<Health> {
        self.records[record].health.clone()
    }

    /// Runs health checks until `shutdown` completes. Every `stats_every`
    /// (if given) calls `on_stats` with the publisher, e.g. to log kernel
    /// counters.
    pub async fn run<F>(
        &mut self,
        shutdown: F,
        stats_every: Option<Duration>,
        mut on_stats: impl FnMut(&P),
    ) -> Result<()>
    where
        F: Future<Output = ()>,
    {
        self.heartbeat();
        self.publication.flush();
        let endpoints = self.config.endpoint_count();
        let started = Instant::now();
        let (tx, mut rx) = mpsc::channel(2 * endpoints + 16);
        // Dropped on return: aborts every probe.
        self.probes = Some(Probes::new(tx));
        self.join_cluster();
        let report = self.sync_probes();
        info!(
            "checking {endpoints} endpoints of {} records with {} probes (identical checks of one target run once); answer sets are written once every endpoint has been checked",
            self.config.records.len(),
            report.started
        );

        // Admin-state file changes and expiring overrides, once a second.
        let mut admin_tick = tokio::time::interval(Duration::from_secs(1));
        admin_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut stats = stats_every.filter(|d| !d.is_zero()).map(|every| {
            let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
            interval
        });
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => return Ok(()),
                event = rx.recv() => match event {
                    Some(event) => self.handle(event, started),
                    None => bail!("every health check task has stopped"),
                },
                Some(config) = self.reload_rx.recv() => {
                    // Diffing a large configuration is CPU work: let the
                    // runtime move this worker's other tasks (the DNS
                    // server's) to another thread meanwhile.
                    if tokio::runtime::Handle::current().runtime_flavor()
                        == tokio::runtime::RuntimeFlavor::MultiThread
                    {
                        tokio::task::block_in_place(|| self.apply_config(config));
                    } else {
                        self.apply_config(config);
                    }
                }
                Some(msg) = async {
                    match self.control.as_mut() {
                        Some(control) => control.recv().await,
                        None => std::future::pending().await,
                    }
                } => {
                    self.control_message(msg);
                }
                Some(step) = async {
                    match self.handover.as_mut() {
                        Some(handover) => handover.recv().await,
                        None => std::future::pending().await,
                    }
                } => self.handover_step(step),
                () = async {
                    match self.cluster.as_mut() {
                        Some(c) => c.changed().await,
                        None => std::future::pending().await,
                    }
                } => self.cluster_changed(started),
                _ = admin_tick.tick() => {
                    self.heartbeat();
                    self.admin_tick();
                    self.progress.send_modify(|p| p.ticks += 1);
                    self.publish_status();
                }
                _ = async {
                    match stats.as_mut() {
                        Some(interval) => interval.tick().await,
                        None => std::future::pending().await,
                    }
                } => on_stats(self.publication.target()),
                failure = async {
                    match self.probes.as_mut() {
                        Some(probes) => probes.failed().await,
                        None => std::future::pending().await,
                    }
                } => bail!("a health check task failed: {failure}"),
            }
        }
    }

    /// Takes over what an earlier agent's data plane holds (see
    /// [`Publication::adopt`]); returns how many (name, type)s are kept.
    pub fn adopt(&mut self, entries: Vec<(String, u16, crate::serve::table::Entry)>) -> usize {
        self.publication.adopt(entries)
    }

    /// The publisher's sign of life (the kernel's heartbeat), once a second;
    /// none while a handover holds the writes.
    fn heartbeat(&mut self) {
        if self.publication.paused() {
            return;
        }
        match self.publication.target_mut().tick() {
            Ok(()) => self.heartbeat_failing = false,
            Err(e) => {
                if !self.heartbeat_failing {
                    warn!("{e:#}");
                }
                self.heartbeat_failing = true;
            }
        }
    }

    /// Starts the probes the configuration needs and stops the others; maps
    /// every probe to the (record, endpoint) pairs it serves.
    fn sync_probes(&mut self) -> SyncReport {
        let keys = probe_keys(&self.config);
        let here = self.checked_here();
        let Some(probes) = self.probes.as_mut() else {
            return Default::default();
        };
        let wanted: HashSet<ProbeKey> = keys
            .iter()
            .flatten()
            .zip(here.iter().flatten())
            .filter(|(_, here)| **here)
            .map(|(key, _)| key.clone())
            .collect();
        let report = probes.sync(&wanted);
        self.users.clear();
        self.endpoint_probes = keys
            .iter()
            .enumerate()
            .map(|(r, endpoints)| {
                endpoints
                    .iter()
                    .enumerate()
                    .map(|(e, key)| {
                        let id = probes.id(key).filter(|_| here[r][e]);
                        if let Some(id) = id {
                            self.users.entry(id).or_default().push((r, e));
                        }
                        id
                    })
                    .collect()
            })
            .collect();
        report
    }

    fn handle(&mut self, event: ProbeEvent, started: Instant) {
        // Retries what failed before, the zone tree first.
        self.publication.flush();
        // A result of a probe stopped by a reload has no users any more.
        let Some(users) = self.users.get(&event.probe).cloned() else {
            return;
        };
        if let (Some(observer), Some(&(r, _))) = (&self.check_observer, users.first()) {
            let record = &self.config.records[r];
            observer.check_done(&record.check_name, record.check.kind.name(), &event.result);
        }
        let mut changed = Vec::with_capacity(users.len());
        for (r, e) in users {
            let record = &self.config.records[r];
            let endpoint = record.endpoints[e];
            debug!(
                "{} {} {} {} check of {}: {}",
                record.name,
                record.rtype,
                endpoint.address,
                record.check.kind.name(),
                endpoint.check_target(&record.check),
                match &event.result.outcome {
                    Ok(()) => format!(
                        "ok ({}), {}",
                        event.result.note,
                        Latency(event.result.latency)
                    ),
                    Err(f) => format!("{f}, {}", Latency(event.result.latency)),
                }
            );
            match self.probed(r, e, event.health) {
                // The cluster decides from every node's observations.
                Some((health, reason)) => {
                    self.set_health(r, e, health, &reason);
                }
                None if self.records[r].health[e] == event.health => {}
                None => {
                    let reason = match &event.transition {
                        Some(t) => t.reason.clone(),
                        None => "shared check".to_string(),
                    };
                    self.set_health(r, e, event.health, &reason);
                }
            }
            changed.push(r);
        }
        self.decide(changed, started);
    }

    /// Sets endpoint `e` of record `r`'s health (reported as an event);
    /// whether it changed.
    fn set_health(&mut self, r: usize, e: usize, health: Health, reason: &str) -> bool {
        let state = &mut self.records[r];
        let old = state.health[e];
        if old == health {
            return false;
        }
        state.health[e] = health;
        if old == Health::Unknown {
            self.unknown -= 1;
        }
        // Only the cluster makes a known health unknown again (no node
        // observes the endpoint any more).
        if health == Health::Unknown {
            self.unknown += 1;
        }
        self.report_states(r, reason);
        true
    }

    /// Writes the answers of records `changed` (all of them once the first
    /// round of checks is over).
    fn decide(&mut self, mut changed: Vec<usize>, started: Instant) {
        let first_answers = !self.first_round_done;
        if !self.first_round_done {
            if self.unknown > 0 {
                return;
            }
            self.first_round_done = true;
            self.progress.send_modify(|p| p.answering = true);
            info!(
                "first round of health checks complete in {}: writing answer sets",
                Latency(started.elapsed())
            );
            changed = (0..self.records.len()).collect();
        }
        changed.dedup();
        for r in changed {
            self.update(r);
        }
        // NODATA entries go out with the first answers.
        self.publication.go_live();
        if first_answers {
            // Readers see the first answers without waiting for the tick.
            self.publish_status();
        }
    }

    /// Publishes record `r`'s answer if it differs from what is held.
    fn update(&mut self, r: usize) {
        let states = self.states(r);
        let record = &self.config.records[r];
        let state = &mut self.records[r];
        // An endpoint not checked yet (a record or check new in a reload):
        // keep what is held until it has been.
        if state.health.contains(&Health::Unknown) {
            return;
        }
        let Some(decision) = decide(&Rules::of(record), &states) else {
            return;
        };
        if decision.all_down && !state.all_down {
            error!(
                "{} {}: no endpoint is healthy; when_all_down = {}: answering {}",
                record.name, record.rtype, record.when_all_down, decision.answer
            );
        } else if !decision.all_down && state.all_down {
            info!(
                "{} {}: healthy endpoints again, no longer all down",
                record.name, record.rtype
            );
        }
        state.all_down = decision.all_down;
        let addresses = decision.answer.addrs();
        let answer = decision.answer.to_string();
        let entry = Entry::new(record.zone as u32, decision.ttl, decision.answer);
        let Put::Written(previous) = self
            .publication
            .put(&record.name, record.rtype.code(), entry)
        else {
            return;
        };
        self.events.emit(Event::AnswerChange(AnswerChange {
            at: SystemTime::now(),
            record: record.name.clone(),
            rtype: record.rtype.to_string(),
            answer,
            previous: previous.as_ref().map(|p| p.answer.to_string()),
            addresses,
            ttl: decision.ttl,
            all_down: decision.all_down,
            degraded: decision.degraded,
        }));
    }

    /// The state of each endpoint of record `r`: health, unless the
    /// operator's override says otherwise.
    fn endpoint_states(&self, r: usize) -> Vec<EndpointState> {
        let record = &self.config.records[r];
        let now = SystemTime::now();
        record
            .endpoints
            .iter()
            .zip(&self.records[r].health)
            .map(
                |(endpoint, health)| match self.admin_mode(&record.name, endpoint.address, now) {
                    Some((Mode::Drain, _)) => EndpointState::Drained,
                    Some((Mode::ForceUp, _)) => EndpointState::ForcedUp,
                    Some((Mode::ForceDown, _)) => EndpointState::ForcedDown,
                    Some((Mode::Normal, _)) | None => match health {
                        Health::Unknown => EndpointState::Unknown,
                        Health::Healthy => EndpointState::Healthy,
                        Health::Unhealthy => EndpointState::Unhealthy,
                    },
                },
            )
            .collect()
    }

    /// The state of each endpoint of record `r` as the policy sees it.
    fn states(&self, r: usize) -> Vec<State> {
        self.endpoint_states(r)
            .into_iter()
            .map(|s| match s {
                EndpointState::Unknown => State::Unknown,
                EndpointState::Healthy | EndpointState::ForcedUp => State::Healthy,
                EndpointState::Unhealthy | EndpointState::ForcedDown => State::Unhealthy,
                EndpointState::Drained => State::Drained,
            })
            .collect()
    }

    /// Emits a [`Transition`] for every endpoint of record `r` whose state
    /// differs from the one last reported.
    fn report_states(&mut self, r: usize, reason: &str) {
        let now_states = self.endpoint_states(r);
        let record = &self.config.records[r];
        let state = &mut self.records[r];
        for (e, (&to, from)) in now_states.iter().zip(&mut state.reported).enumerate() {
            if to == *from {
                continue;
            }
            self.events.emit(Event::Transition(Transition {
                at: SystemTime::now(),
                record: record.name.clone(),
                rtype: record.rtype.to_string(),
                endpoint: record.endpoints[e].address,
                from: *from,
                to,
                reason: reason.to_string(),
            }));
            *from = to;
        }
    }
}
