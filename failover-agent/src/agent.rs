//! The run loop: checks every endpoint, tracks its health and writes each
//! record's answer set to an [`AnswerSink`] whenever it changes.
//!
//! One task per probe (a check aimed at a target, shared by every (record,
//! endpoint) that uses the same check on the same target) runs its checks on
//! its own interval, so a slow or hanging endpoint never delays another's
//! check ([`crate::checks`]). The tasks send results to one loop that owns
//! all state and the sink: no locks, and every write carries a record's
//! whole answer set.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::IpAddr;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Result, bail};
use log::{debug, error, info, warn};
use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;

use crate::admin_state::{AdminStore, Mode, normalise_record, until_value};
use crate::checks::{ProbeEvent, ProbeId, ProbeKey, Probes};
use crate::config::{Config, RecordType};
use crate::control::{
    ControlMsg, EndpointReport, ForceState, RecordStatus, Reply, Request, StatusReport,
};
use crate::health::{EndpointStatus, Health, HealthSnapshot};
use crate::policy::{Answer, Rules, State, decide};
use crate::sink::{AnswerSink, RTYPE_A, RTYPE_AAAA, RTYPE_HTTPS};

/// Types a hot name is answered for in the kernel: each is either published
/// (the name has that record) or declared NODATA. HTTPS because browsers ask
/// for it for every name.
pub const HOT_TYPES: [u16; 3] = [RTYPE_A, RTYPE_AAAA, RTYPE_HTTPS];

/// One NODATA declaration: (name, type) has no records; `zone` gives the SOA.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoData {
    pub name: String,
    pub rtype: u16,
    pub zone: u32,
}

/// The NODATA declarations of `config`: for every hot name, each type of
/// [`HOT_TYPES`] it has no record of, in name order.
pub fn nodata_declarations(config: &Config) -> Vec<NoData> {
    let mut out = Vec::new();
    for hot in config.hot_names() {
        for rtype in HOT_TYPES {
            let has = hot
                .records
                .iter()
                .any(|&r| config.records[r].rtype.code() == rtype);
            if !has {
                out.push(NoData {
                    name: hot.name.clone(),
                    rtype,
                    zone: hot.zone as u32,
                });
            }
        }
    }
    out
}

/// Feeds `sink` what the agent writes when every endpoint is healthy: every
/// zone's SOA, every record's answer set, every NODATA declaration, in the
/// agent's order and through the same functions. Lets a test fill the kernel
/// map and the userspace table identically without running checks.
pub fn publish_all_healthy(config: &Config, sink: &mut impl AnswerSink) -> Result<()> {
    for (i, zone) in config.zones.iter().enumerate() {
        sink.set_zone(i as u32, &zone.soa())?;
    }
    for record in &config.records {
        let states = vec![State::Healthy; record.endpoints.len()];
        let decision = decide(&Rules::of(record), &states).expect("every endpoint is known");
        write_answer(sink, record, &decision.answer, decision.ttl)?;
    }
    for nodata in nodata_declarations(config) {
        sink.publish_nodata(&nodata.name, nodata.rtype, nodata.zone)?;
    }
    Ok(())
}

/// The probe that checks each endpoint of each record of `config`.
fn probe_keys(config: &Config) -> Vec<Vec<ProbeKey>> {
    config
        .records
        .iter()
        .map(|r| {
            r.endpoints
                .iter()
                .map(|e| (r.check.clone(), r.check.target(e)))
                .collect()
        })
        .collect()
}

struct RecordState {
    /// Health of each endpoint (its probe's), in configuration order.
    health: Vec<Health>,
    /// The answer and TTL the sink holds (last successful write).
    published: Option<(Answer, u32)>,
    /// No endpoint is usable: the answer is `when_all_down`'s (logged once
    /// per entry).
    fail_open: bool,
    /// The last write failed (logged once per run of failures).
    failing: bool,
}

/// A write the sink has not accepted yet (retried after every check).
struct Pending<T> {
    item: T,
    done: bool,
    failing: bool,
}

impl<T> Pending<T> {
    fn new(item: T) -> Self {
        Pending {
            item,
            done: false,
            failing: false,
        }
    }

    /// Records the result of one attempt; logs the first failure of a run
    /// and the recovery. `what` describes the write.
    fn attempted(&mut self, result: Result<()>, what: impl FnOnce() -> String) {
        match result {
            Ok(()) => {
                if self.failing {
                    info!("{}: written after earlier failures", what());
                }
                self.done = true;
                self.failing = false;
            }
            Err(e) => {
                if !self.failing {
                    error!(
                        "{}: writing failed: {e:#}; retrying after every check",
                        what()
                    );
                } else {
                    debug!("{}: writing failed again: {e:#}", what());
                }
                self.failing = true;
            }
        }
    }
}

/// Called with each configuration a reload applies.
type ConfigHook = Box<dyn FnMut(&Config) + Send>;

/// The agent: configuration, health state and the sink it writes to.
pub struct Agent<S> {
    config: Config,
    sink: S,
    records: Vec<RecordState>,
    /// Zone declarations ([`AnswerSink::set_zone`]), written first.
    zones: Vec<Pending<u32>>,
    /// NODATA declarations, written with the first answer sets.
    nodata: Vec<Pending<NoData>>,
    /// Endpoints that have not had their first check result yet. No answer
    /// set is written while this is non-zero during the first round.
    unknown: usize,
    /// The first round of checks is over (answer sets are being written).
    first_round_done: bool,
    /// The running probes (from `run` on), and which (record, endpoint)
    /// pairs each serves.
    probes: Option<Probes>,
    users: HashMap<ProbeId, Vec<(usize, usize)>>,
    /// The probe of each endpoint of each record, once `run` started them.
    endpoint_probes: Vec<Vec<Option<ProbeId>>>,
    /// Withdrawals of removed records and NODATA declarations (reload).
    withdrawals: Vec<Pending<(String, u16)>>,
    /// New configurations to apply (SIGHUP, `failover-agent reload`).
    reload_tx: mpsc::UnboundedSender<Config>,
    reload_rx: mpsc::UnboundedReceiver<Config>,
    /// Called with every configuration applied by a reload (e.g. to give
    /// the userspace responder the new zones).
    on_config: Option<ConfigHook>,
    /// The operator's overrides (drain, force), from the admin-state file
    /// and the control socket.
    admin: AdminStore,
    /// The override in force per (record name, type, endpoint), to log changes.
    admin_seen: HashMap<(String, u16, IpAddr), (Mode, Option<SystemTime>)>,
    /// Requests from the control socket.
    control: Option<mpsc::Receiver<ControlMsg>>,
}

/// Hands new configurations to a running agent ([`Agent::reloader`]).
#[derive(Clone)]
pub struct Reloader(mpsc::UnboundedSender<Config>);

impl Reloader {
    /// Queues `config` (already validated) for the agent's loop to apply;
    /// false when the agent is gone.
    pub fn reload(&self, config: Config) -> bool {
        self.0.send(config).is_ok()
    }
}

impl<S: AnswerSink> Agent<S> {
    pub fn new(config: Config, sink: S) -> Self {
        let records = config
            .records
            .iter()
            .map(|r| RecordState {
                health: vec![Health::Unknown; r.endpoints.len()],
                published: None,
                fail_open: false,
                failing: false,
            })
            .collect();
        let unknown = config.endpoint_count();
        let zones = (0..config.zones.len() as u32).map(Pending::new).collect();
        let nodata = nodata_declarations(&config)
            .into_iter()
            .map(Pending::new)
            .collect();
        let (reload_tx, reload_rx) = mpsc::unbounded_channel();
        Self {
            config,
            sink,
            records,
            zones,
            nodata,
            unknown,
            first_round_done: false,
            probes: None,
            users: HashMap::new(),
            endpoint_probes: Vec::new(),
            withdrawals: Vec::new(),
            reload_tx,
            reload_rx,
            on_config: None,
            admin: AdminStore::memory(),
            admin_seen: HashMap::new(),
            control: None,
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// A handle that makes the running agent apply a new configuration.
    pub fn reloader(&self) -> Reloader {
        Reloader(self.reload_tx.clone())
    }

    /// `hook` is called with every configuration a reload applies, after the
    /// sink got the new zones and before the first answer set of it is written.
    pub fn on_config_change(&mut self, hook: impl FnMut(&Config) + Send + 'static) {
        self.on_config = Some(Box::new(hook));
    }

    /// Every endpoint's health with its probe's latency, last failure and
    /// last change, in configuration order.
    pub fn snapshot(&self) -> HealthSnapshot {
        let mut endpoints = Vec::with_capacity(self.config.endpoint_count());
        for (r, record) in self.config.records.iter().enumerate() {
            for (e, endpoint) in record.endpoints.iter().enumerate() {
                let probe = self
                    .endpoint_probes
                    .get(r)
                    .and_then(|p| p.get(e).copied().flatten());
                let status = match (probe, &self.probes) {
                    (Some(id), Some(probes)) => probes.status(id),
                    _ => Default::default(),
                };
                endpoints.push(EndpointStatus {
                    record: record.name.clone(),
                    rtype: record.rtype.to_string(),
                    address: endpoint.address,
                    check: record.check_name.clone(),
                    kind: record.check.kind.name(),
                    target: record.check.target(endpoint),
                    shared_by: probe
                        .and_then(|id| self.users.get(&id))
                        .map_or(1, |u| u.len()),
                    status,
                });
            }
        }
        HealthSnapshot {
            endpoints,
            probes: self.probes.as_ref().map_or(0, |p| p.len()),
        }
    }

    pub fn sink(&self) -> &S {
        &self.sink
    }

    pub fn sink_mut(&mut self) -> &mut S {
        &mut self.sink
    }

    pub fn into_sink(self) -> S {
        self.sink
    }

    /// Health of every endpoint of record `record`, in configuration order.
    pub fn health(&self, record: usize) -> Vec<Health> {
        self.records[record].health.clone()
    }

    /// Declares every zone to the sink (its SOA), so that negative answers
    /// can be given before the first round of checks is over. `run` does it
    /// first; call it earlier to have the zones served before `run`.
    pub fn declare_zones(&mut self) {
        for pending in self.zones.iter_mut().filter(|p| !p.done) {
            let zone = &self.config.zones[pending.item as usize];
            let result = self.sink.set_zone(pending.item, &zone.soa());
            pending.attempted(result, || format!("zone {} (SOA)", zone.origin));
        }
    }

    /// Runs health checks until `shutdown` completes. Every `stats_every`
    /// (if given) calls `on_stats` with the sink, e.g. to log kernel counters.
    pub async fn run<F>(
        &mut self,
        shutdown: F,
        stats_every: Option<Duration>,
        mut on_stats: impl FnMut(&S),
    ) -> Result<()>
    where
        F: Future<Output = ()>,
    {
        self.declare_zones();
        let endpoints = self.config.endpoint_count();
        let started = Instant::now();
        let (tx, mut rx) = mpsc::channel(2 * endpoints + 16);
        // Dropped on return: aborts every probe.
        self.probes = Some(Probes::new(tx));
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
                Some(config) = self.reload_rx.recv() => self.apply_config(config),
                Some(msg) = async {
                    match self.control.as_mut() {
                        Some(control) => control.recv().await,
                        None => std::future::pending().await,
                    }
                } => {
                    let reply = self.control_request(msg.request);
                    let _ = msg.reply.send(reply);
                }
                _ = admin_tick.tick() => self.admin_tick(),
                _ = async {
                    match stats.as_mut() {
                        Some(interval) => interval.tick().await,
                        None => std::future::pending().await,
                    }
                } => on_stats(&self.sink),
                failure = async {
                    match self.probes.as_mut() {
                        Some(probes) => probes.failed().await,
                        None => std::future::pending().await,
                    }
                } => bail!("a health check task failed: {failure}"),
            }
        }
    }

    /// Starts the probes the configuration needs and stops the others; maps
    /// every probe to the (record, endpoint) pairs it serves.
    fn sync_probes(&mut self) -> crate::checks::SyncReport {
        let Some(probes) = self.probes.as_mut() else {
            return Default::default();
        };
        let keys = probe_keys(&self.config);
        let wanted: HashSet<ProbeKey> = keys.iter().flatten().cloned().collect();
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
                        let id = probes.id(key);
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
        // Zones first, always: a failed declaration is retried before more
        // records of the zone are written.
        self.declare_zones();
        self.withdraw_pending();
        // A result of a probe stopped by a reload has no users any more.
        let Some(users) = self.users.get(&event.probe).cloned() else {
            return;
        };
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
                record.check.target(&endpoint),
                match &event.result.outcome {
                    Ok(()) => format!(
                        "ok ({}), {}",
                        event.result.note,
                        crate::health::Latency(event.result.latency)
                    ),
                    Err(f) => format!("{f}, {}", crate::health::Latency(event.result.latency)),
                }
            );
            let state = &mut self.records[r];
            let old = state.health[e];
            if old == event.health {
                changed.push(r);
                continue;
            }
            let reason = match &event.transition {
                Some(t) => t.reason.clone(),
                None => "shared check".to_string(),
            };
            info!(
                "{} {} {} {} -> {} ({reason})",
                record.name, record.rtype, endpoint.address, old, event.health,
            );
            state.health[e] = event.health;
            if old == Health::Unknown {
                self.unknown -= 1;
            }
            changed.push(r);
        }
        if !self.first_round_done {
            if self.unknown > 0 {
                return;
            }
            self.first_round_done = true;
            info!(
                "first round of health checks complete in {}: writing answer sets",
                crate::health::Latency(started.elapsed())
            );
            changed = (0..self.records.len()).collect();
        }
        // Also when nothing changed: retries writes that failed earlier.
        changed.dedup();
        for r in changed {
            self.update(r);
        }
        self.declare_nodata();
    }

    /// Applies a new (validated) configuration without dropping queries:
    /// probes still wanted keep running with their state (same check, same
    /// target), new ones start, the others stop; zones are declared again;
    /// records keep their answer sets until their new endpoints have been
    /// checked; removed records and stale NODATA declarations are withdrawn.
    pub fn apply_config(&mut self, new: Config) {
        if new.server != self.config.server {
            warn!(
                "reload: [server] changed; listening sockets and limits change only on a restart"
            );
        }
        let old = std::mem::replace(&mut self.config, new);
        let report = self.sync_probes();
        // Keep each surviving record's state (what the sink holds) by name and type.
        let mut old_states: HashMap<(String, u16), (usize, u32, RecordState)> = old
            .records
            .iter()
            .zip(std::mem::take(&mut self.records))
            .map(|(r, state)| {
                (
                    (r.name.to_ascii_lowercase(), r.rtype.code()),
                    (r.zone, r.ttl, state),
                )
            })
            .collect();
        let mut records = Vec::with_capacity(self.config.records.len());
        let (mut added, mut kept) = (0, 0);
        for (r, record) in self.config.records.iter().enumerate() {
            let health: Vec<Health> = (0..record.endpoints.len())
                .map(|e| {
                    let probe = self.endpoint_probes.get(r).and_then(|p| p[e]);
                    match (probe, &self.probes) {
                        (Some(id), Some(probes)) => probes.status(id).health(),
                        _ => Health::Unknown,
                    }
                })
                .collect();
            let key = (record.name.to_ascii_lowercase(), record.rtype.code());
            let state = match old_states.remove(&key) {
                Some((zone, ttl, mut state)) => {
                    kept += 1;
                    state.health = health;
                    if zone != record.zone || ttl != record.ttl {
                        // Same answers, new zone index or TTL: write again.
                        state.published = None;
                    }
                    state
                }
                None => {
                    added += 1;
                    RecordState {
                        health,
                        published: None,
                        fail_open: false,
                        failing: false,
                    }
                }
            };
            records.push(state);
        }
        self.records = records;
        self.unknown = self
            .records
            .iter()
            .map(|s| s.health.iter().filter(|h| **h == Health::Unknown).count())
            .sum();

        // Withdraw what no longer exists: removed records, and NODATA
        // declarations of (name, type) pairs that are neither a record nor
        // NODATA now.
        let new_nodata = nodata_declarations(&self.config);
        let exists = |name: &str, rtype: u16, config: &Config| {
            config
                .records
                .iter()
                .any(|r| r.rtype.code() == rtype && r.name.eq_ignore_ascii_case(name))
                || new_nodata
                    .iter()
                    .any(|n| n.rtype == rtype && n.name.eq_ignore_ascii_case(name))
        };
        let mut removed = 0;
        for record in &old.records {
            let key = (record.name.to_ascii_lowercase(), record.rtype.code());
            if old_states.contains_key(&key) {
                removed += 1;
                self.withdrawals
                    .push(Pending::new((record.name.clone(), key.1)));
            }
        }
        for nodata in nodata_declarations(&old) {
            if !exists(&nodata.name, nodata.rtype, &self.config) {
                self.withdrawals
                    .push(Pending::new((nodata.name.clone(), nodata.rtype)));
            }
        }
        self.zones = (0..self.config.zones.len() as u32)
            .map(Pending::new)
            .collect();
        self.nodata = new_nodata.into_iter().map(Pending::new).collect();
        info!(
            "reload: {} records ({added} new, {kept} kept, {removed} removed), {} zones; probes: {} started, {} stopped, {} kept with their state",
            self.config.records.len(),
            self.config.zones.len(),
            report.started,
            report.stopped,
            report.kept
        );
        for warning in self.config.warnings() {
            warn!("{warning}");
        }
        self.declare_zones();
        if let Some(hook) = self.on_config.as_mut() {
            hook(&self.config);
        }
        if self.first_round_done {
            for r in 0..self.records.len() {
                self.update(r);
            }
            self.declare_nodata();
        }
        self.withdraw_pending();
    }

    /// Withdraws what a reload removed (retried after every check).
    fn withdraw_pending(&mut self) {
        if self.withdrawals.is_empty() {
            return;
        }
        for pending in self.withdrawals.iter_mut() {
            let (name, rtype) = &pending.item;
            let result = self.sink.withdraw(name, *rtype);
            let what = format!("{name} {} (withdrawal)", type_name(*rtype));
            pending.attempted(result, || what);
        }
        self.withdrawals.retain(|p| !p.done);
    }

    /// Writes the NODATA declarations the sink does not hold yet.
    fn declare_nodata(&mut self) {
        for pending in self.nodata.iter_mut().filter(|p| !p.done) {
            let NoData { name, rtype, zone } = &pending.item;
            let result = self.sink.publish_nodata(name, *rtype, *zone);
            let what = format!("{name} NODATA for {}", type_name(*rtype));
            pending.attempted(result, || what);
        }
    }

    /// Writes record `r`'s answer if it differs from what the sink holds.
    fn update(&mut self, r: usize) {
        let states = self.states(r);
        let record = &self.config.records[r];
        let state = &mut self.records[r];
        // An endpoint not checked yet (a record or check new in a reload):
        // keep what the sink holds until it has been.
        if state.health.contains(&Health::Unknown) {
            return;
        }
        let Some(decision) = decide(&Rules::of(record), &states) else {
            return;
        };
        if decision.all_down && !state.fail_open {
            error!(
                "{} {}: no endpoint is healthy; when_all_down = {}: answering {}",
                record.name, record.rtype, record.when_all_down, decision.answer
            );
        } else if !decision.all_down && state.fail_open {
            info!(
                "{} {}: healthy endpoints again, no longer all down",
                record.name, record.rtype
            );
        }
        state.fail_open = decision.all_down;
        let wanted = (decision.answer, decision.ttl);
        if state.published.as_ref() == Some(&wanted) {
            return;
        }
        let (answer, ttl) = &wanted;
        match write_answer(&mut self.sink, record, answer, *ttl) {
            Ok(()) => {
                info!(
                    "{} {} answer: {} ttl {} (was {}){}",
                    record.name,
                    record.rtype,
                    answer,
                    ttl,
                    state
                        .published
                        .as_ref()
                        .map_or("nothing".to_string(), |(a, t)| format!("{a} ttl {t}")),
                    if decision.all_down {
                        format!(" [all down: {}]", record.when_all_down)
                    } else if decision.degraded {
                        " [degraded]".to_string()
                    } else {
                        String::new()
                    }
                );
                state.published = Some(wanted);
                state.failing = false;
            }
            Err(e) if !state.failing => {
                state.failing = true;
                error!(
                    "{} {}: writing the answer {answer} failed: {e:#}; retrying after every check",
                    record.name, record.rtype,
                );
            }
            Err(e) => debug!(
                "{} {}: writing the answer {answer} failed again: {e:#}",
                record.name, record.rtype,
            ),
        }
    }

    /// The state of each endpoint of record `r` as the policy sees it:
    /// health, then the operator's override.
    fn states(&self, r: usize) -> Vec<State> {
        let record = &self.config.records[r];
        let now = SystemTime::now();
        record
            .endpoints
            .iter()
            .zip(&self.records[r].health)
            .map(|(endpoint, health)| {
                match self.admin.state.mode(&record.name, endpoint.address, now) {
                    Some((Mode::Drain, _)) => State::Drained,
                    Some((Mode::ForceUp, _)) => State::Healthy,
                    Some((Mode::ForceDown, _)) => State::Unhealthy,
                    Some((Mode::Normal, _)) | None => match health {
                        Health::Unknown => State::Unknown,
                        Health::Healthy => State::Healthy,
                        Health::Unhealthy => State::Unhealthy,
                    },
                }
            })
            .collect()
    }
}

/// Writes `answer` for `record` through the sink call its kind needs.
fn write_answer(
    sink: &mut impl AnswerSink,
    record: &crate::config::Record,
    answer: &Answer,
    ttl: u32,
) -> Result<()> {
    let (name, rtype, zone) = (&record.name, record.rtype.code(), record.zone as u32);
    match answer {
        Answer::Addrs(addrs) => sink.publish(name, rtype, zone, ttl, addrs),
        Answer::Weighted(weighted) => sink.publish_weighted(name, rtype, zone, ttl, weighted),
        Answer::NoData => sink.publish_nodata(name, rtype, zone),
        Answer::ServFail => sink.publish_servfail(name, rtype, zone),
    }
}

fn type_name(rtype: u16) -> String {
    match rtype {
        RTYPE_A => RecordType::A.to_string(),
        RTYPE_AAAA => RecordType::Aaaa.to_string(),
        RTYPE_HTTPS => "HTTPS".to_string(),
        other => format!("TYPE{other}"),
    }
}

/// Manual control: the admin-state file and the control socket.
impl<S: AnswerSink> Agent<S> {
    /// Overrides from `store` (the admin-state file); they apply from the
    /// first answer on.
    pub fn set_admin(&mut self, store: AdminStore) {
        self.admin = store;
        self.refresh_admin("admin state file");
    }

    /// A channel for control requests, served inside `run`'s loop.
    pub fn control_channel(&mut self) -> mpsc::Sender<ControlMsg> {
        let (tx, rx) = mpsc::channel(64);
        self.control = Some(rx);
        tx
    }

    /// Re-reads the admin-state file if it changed, and applies overrides
    /// that began or ended.
    fn admin_tick(&mut self) {
        match self.admin.poll() {
            Ok(true) => info!(
                "admin state file {} changed: applying it",
                self.admin
                    .path()
                    .map_or(String::new(), |p| p.display().to_string())
            ),
            Ok(false) => {}
            Err(e) => error!("{e:#}; keeping the admin state in force"),
        }
        self.refresh_admin("admin state file");
    }

    /// Logs every override that began, changed or ended (`why` says where it
    /// came from), and rewrites the records it affects.
    fn refresh_admin(&mut self, why: &str) {
        let now = SystemTime::now();
        let mut current = HashMap::new();
        let mut changed = Vec::new();
        for (r, record) in self.config.records.iter().enumerate() {
            for endpoint in &record.endpoints {
                let key = (record.name.clone(), record.rtype.code(), endpoint.address);
                let mode = self.admin.state.mode(&record.name, endpoint.address, now);
                if mode != self.admin_seen.get(&key).copied() {
                    match mode {
                        Some((mode, until)) => info!(
                            "{} {} {}: {}{} ({why})",
                            record.name,
                            record.rtype,
                            endpoint.address,
                            admin_text(mode),
                            until.map_or(String::new(), |t| format!(
                                " until {}",
                                humantime::format_rfc3339_seconds(t)
                            )),
                        ),
                        None => info!(
                            "{} {} {}: back to its health checks ({why})",
                            record.name, record.rtype, endpoint.address
                        ),
                    }
                    if !changed.contains(&r) {
                        changed.push(r);
                    }
                }
                if let Some(mode) = mode {
                    current.insert(key, mode);
                }
            }
        }
        self.admin_seen = current;
        if self.first_round_done {
            for r in changed {
                self.update(r);
            }
        }
    }

    /// Answers one control request.
    pub fn control_request(&mut self, request: Request) -> Reply {
        let now = SystemTime::now();
        let (record, endpoint, change) = match request {
            Request::Status => {
                return Reply {
                    ok: true,
                    status: Some(self.status()),
                    ..Reply::default()
                };
            }
            Request::Drain {
                record,
                endpoint,
                until,
            } => (record, endpoint, Change::Set(Mode::Drain, until)),
            Request::Undrain { record, endpoint } => {
                (record, endpoint, Change::Clear(&[Mode::Drain]))
            }
            Request::Force {
                state,
                record,
                endpoint,
                until,
            } => match state {
                ForceState::Up => (record, endpoint, Change::Set(Mode::ForceUp, until)),
                ForceState::Down => (record, endpoint, Change::Set(Mode::ForceDown, until)),
                ForceState::Clear => (
                    record,
                    endpoint,
                    Change::Clear(&[Mode::ForceUp, Mode::ForceDown]),
                ),
            },
        };
        let name = normalise_record(&record);
        let Ok(address) = endpoint.trim().parse::<IpAddr>() else {
            return Reply::error(format!("{endpoint:?} is not an IP address"));
        };
        let records: Vec<usize> = (0..self.config.records.len())
            .filter(|&r| {
                let rec = &self.config.records[r];
                normalise_record(&rec.name) == name
                    && rec.endpoints.iter().any(|e| e.address == address)
            })
            .collect();
        if records.is_empty() {
            let known: Vec<String> = self
                .config
                .records
                .iter()
                .filter(|r| normalise_record(&r.name) == name)
                .flat_map(|r| r.endpoints.iter().map(|e| e.address.to_string()))
                .collect();
            return Reply::error(if known.is_empty() {
                format!("no record named {name}")
            } else {
                format!(
                    "{address} is not an endpoint of {name} (endpoints: {})",
                    known.join(", ")
                )
            });
        }
        let backup = self.admin.state.clone();
        let done = match change {
            Change::Set(mode, until) => {
                let until = match until_value(until.as_deref(), None, now) {
                    Ok(until) => until,
                    Err(e) => return Reply::error(format!("{e:#}")),
                };
                self.admin.state.set(&name, address, mode, until);
                format!(
                    "{}{}",
                    admin_text(mode),
                    until.map_or(String::new(), |t| format!(
                        " until {}",
                        humantime::format_rfc3339_seconds(t)
                    ))
                )
            }
            Change::Clear(modes) => {
                if !self.admin.state.clear(&name, address, modes, now) {
                    let what = if modes.contains(&Mode::Drain) {
                        "drained"
                    } else {
                        "forced up or down"
                    };
                    return Reply::ok(format!("{name} {address}: not {what}; nothing to do"));
                }
                "back to its health checks".to_string()
            }
        };
        self.admin.state.prune(now);
        let persisted = match self.admin.save(now) {
            Ok(()) => match self.admin.path() {
                Some(path) => format!("saved in {}", path.display()),
                None => "not saved: no [admin] state_file, lost at restart".to_string(),
            },
            Err(e) => {
                self.admin.state = backup;
                return Reply::error(format!("{e:#}; nothing changed"));
            }
        };
        self.refresh_admin("control socket");
        let answers: Vec<String> = records
            .iter()
            .map(|&r| {
                let record = &self.config.records[r];
                let answer = self.records[r]
                    .published
                    .as_ref()
                    .map_or("none yet (first checks running)".to_string(), |(a, _)| {
                        a.to_string()
                    });
                format!("{} {} answer: {answer}", record.name, record.rtype)
            })
            .collect();
        Reply::ok(format!(
            "{name} {address}: {done} ({persisted}); {}",
            answers.join("; ")
        ))
    }

    /// Every record with its endpoints' health, overrides and answer.
    pub fn status(&self) -> StatusReport {
        let now = SystemTime::now();
        let snapshot = self.snapshot();
        let mut records = Vec::with_capacity(self.config.records.len());
        for (r, record) in self.config.records.iter().enumerate() {
            let state = &self.records[r];
            let states = self.states(r);
            let decision = decide(&Rules::of(record), &states);
            let (answer, addresses, weights, ttl) = match &state.published {
                None => ("none", Vec::new(), Vec::new(), record.ttl),
                Some((answer, ttl)) => {
                    let (kind, weights) = match answer {
                        Answer::Addrs(_) => ("addresses", Vec::new()),
                        Answer::Weighted(w) => ("weighted", w.iter().map(|(_, w)| *w).collect()),
                        Answer::NoData => ("nodata", Vec::new()),
                        Answer::ServFail => ("servfail", Vec::new()),
                    };
                    let addrs = answer.addrs().iter().map(|a| a.to_string()).collect();
                    (kind, addrs, weights, *ttl)
                }
            };
            let answered: Vec<IpAddr> = state
                .published
                .as_ref()
                .map_or(Vec::new(), |(a, _)| a.addrs());
            let endpoints = record
                .endpoints
                .iter()
                .enumerate()
                .map(|(e, endpoint)| {
                    let admin = self.admin.state.mode(&record.name, endpoint.address, now);
                    let probe = snapshot.endpoints.iter().find(|s| {
                        s.record == record.name
                            && s.rtype == record.rtype.to_string()
                            && s.address == endpoint.address
                    });
                    EndpointReport {
                        address: endpoint.address.to_string(),
                        priority: endpoint.priority,
                        weight: endpoint.weight,
                        health: state.health[e].to_string(),
                        admin: admin.map(|(m, _)| m.name().to_string()),
                        admin_until: admin
                            .and_then(|(_, u)| u)
                            .map(|u| humantime::format_rfc3339_seconds(u).to_string()),
                        answered: answered.contains(&endpoint.address),
                        check: probe.map(|p| format!("{} ({} {})", p.check, p.kind, p.target)),
                        latency_ms: probe
                            .and_then(|p| p.status.last_latency)
                            .map(|l| l.as_secs_f64() * 1000.0),
                        last_failure: probe.and_then(|p| p.status.last_failure.clone()),
                    }
                })
                .collect();
            records.push(RecordStatus {
                name: record.name.clone(),
                rtype: record.rtype.to_string(),
                policy: record.policy.to_string(),
                when_all_down: record.when_all_down.to_string(),
                answer: answer.to_string(),
                addresses,
                weights,
                ttl,
                degraded: decision.as_ref().is_some_and(|d| d.degraded),
                all_down: decision.as_ref().is_some_and(|d| d.all_down),
                endpoints,
            });
        }
        StatusReport {
            answering: self.first_round_done,
            admin_state_file: self.admin.path().map(|p| p.display().to_string()),
            records,
        }
    }
}

/// What a control request does to an endpoint's override.
enum Change {
    Set(Mode, Option<String>),
    Clear(&'static [Mode]),
}

fn admin_text(mode: Mode) -> &'static str {
    match mode {
        Mode::Drain => "drained",
        Mode::ForceUp => "forced up",
        Mode::ForceDown => "forced down",
        Mode::Normal => "normal",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::ZoneSoa;
    use std::net::{IpAddr, Ipv4Addr, SocketAddr};
    use std::sync::{Arc, Mutex};

    use tokio::net::{TcpListener, TcpSocket, TcpStream};
    use tokio::sync::oneshot;
    use tokio::task::JoinHandle;

    /// One answer set the agent wrote.
    #[derive(Clone, Debug)]
    struct Write {
        at: Instant,
        name: String,
        rtype: u16,
        zone: u32,
        ttl: u32,
        addrs: Vec<IpAddr>,
    }

    /// Every call the agent made, in order.
    #[derive(Clone, Debug, PartialEq, Eq)]
    enum Call {
        Zone(u32, String),
        Publish(String, u16),
        Weighted(String, u16, Vec<(IpAddr, u32)>),
        NoData(String, u16, u32),
        ServFail(String, u16),
    }

    /// Records every write and reports answer sets to the test as they
    /// happen. While `broken` is set, it fails what the kernel cannot do yet
    /// (AAAA answer sets and NODATA), like the A-only dataplane.
    struct MemorySink {
        writes: Arc<Mutex<Vec<Write>>>,
        calls: Arc<Mutex<Vec<Call>>>,
        broken: Arc<Mutex<bool>>,
        tx: mpsc::UnboundedSender<Write>,
    }

    impl AnswerSink for MemorySink {
        fn set_zone(&mut self, zone: u32, soa: &ZoneSoa) -> Result<()> {
            self.calls
                .lock()
                .unwrap()
                .push(Call::Zone(zone, soa.apex.clone()));
            Ok(())
        }

        fn publish(
            &mut self,
            name: &str,
            rtype: u16,
            zone: u32,
            ttl: u32,
            addrs: &[IpAddr],
        ) -> Result<()> {
            assert!(!addrs.is_empty() && addrs.len() <= 16);
            match rtype {
                RTYPE_A => assert!(addrs.iter().all(|a| a.is_ipv4()), "{addrs:?}"),
                RTYPE_AAAA => assert!(addrs.iter().all(|a| a.is_ipv6()), "{addrs:?}"),
                other => panic!("publish of type {other}"),
            }
            if rtype == RTYPE_AAAA && *self.broken.lock().unwrap() {
                bail!("AAAA not supported (test)");
            }
            self.calls
                .lock()
                .unwrap()
                .push(Call::Publish(name.to_string(), rtype));
            let write = Write {
                at: Instant::now(),
                name: name.to_string(),
                rtype,
                zone,
                ttl,
                addrs: addrs.to_vec(),
            };
            self.writes.lock().unwrap().push(write.clone());
            let _ = self.tx.send(write);
            Ok(())
        }

        fn publish_weighted(
            &mut self,
            name: &str,
            rtype: u16,
            zone: u32,
            ttl: u32,
            weighted: &[(IpAddr, u32)],
        ) -> Result<()> {
            assert!(weighted.iter().all(|(_, w)| *w >= 1), "{weighted:?}");
            self.calls.lock().unwrap().push(Call::Weighted(
                name.to_string(),
                rtype,
                weighted.to_vec(),
            ));
            let write = Write {
                at: Instant::now(),
                name: name.to_string(),
                rtype,
                zone,
                ttl,
                addrs: weighted.iter().map(|(a, _)| *a).collect(),
            };
            self.writes.lock().unwrap().push(write.clone());
            let _ = self.tx.send(write);
            Ok(())
        }

        fn publish_nodata(&mut self, name: &str, rtype: u16, zone: u32) -> Result<()> {
            if *self.broken.lock().unwrap() {
                bail!("NODATA not supported (test)");
            }
            self.calls
                .lock()
                .unwrap()
                .push(Call::NoData(name.to_string(), rtype, zone));
            Ok(())
        }

        fn publish_servfail(&mut self, name: &str, rtype: u16, zone: u32) -> Result<()> {
            self.calls
                .lock()
                .unwrap()
                .push(Call::ServFail(name.to_string(), rtype));
            // Reported to the test as a write with no addresses.
            let write = Write {
                at: Instant::now(),
                name: name.to_string(),
                rtype,
                zone,
                ttl: 0,
                addrs: Vec::new(),
            };
            self.writes.lock().unwrap().push(write.clone());
            let _ = self.tx.send(write);
            Ok(())
        }

        fn withdraw(&mut self, name: &str, _rtype: u16) -> Result<()> {
            panic!("the agent never withdraws a record ({name})");
        }
    }

    /// A test endpoint: a real listener on `addr:port` that accepts and closes
    /// connections while up; down = no listener (connect is refused).
    struct TestEndpoint {
        addr: SocketAddr,
        server: Option<JoinHandle<()>>,
    }

    impl TestEndpoint {
        fn ip(&self) -> IpAddr {
            self.addr.ip()
        }

        fn serve(listener: TcpListener) -> JoinHandle<()> {
            tokio::spawn(async move {
                loop {
                    if let Ok((stream, _)) = listener.accept().await {
                        drop(stream);
                    }
                }
            })
        }

        async fn up(&mut self) {
            assert!(self.server.is_none());
            let listener = TcpListener::bind(self.addr).await.unwrap();
            self.server = Some(Self::serve(listener));
        }

        async fn down(&mut self) {
            let server = self.server.take().expect("endpoint is up");
            server.abort();
            // Once the task is gone its listener is closed: connects are refused.
            assert!(server.await.unwrap_err().is_cancelled());
        }
    }

    /// `n` endpoints that are up, on 127.0.`net`.1, .2, ... and one shared port
    /// (a check has one port for all endpoints of a record).
    async fn endpoints(net: u8, n: u8) -> (u16, Vec<TestEndpoint>) {
        'retry: for _ in 0..20 {
            let first = TcpListener::bind((Ipv4Addr::new(127, 0, net, 1), 0))
                .await
                .unwrap();
            let port = first.local_addr().unwrap().port();
            let mut listeners = vec![first];
            for host in 2..=n {
                match TcpListener::bind((Ipv4Addr::new(127, 0, net, host), port)).await {
                    Ok(l) => listeners.push(l),
                    Err(_) => continue 'retry,
                }
            }
            let endpoints = listeners
                .into_iter()
                .map(|l| TestEndpoint {
                    addr: l.local_addr().unwrap(),
                    server: Some(TestEndpoint::serve(l)),
                })
                .collect();
            return (port, endpoints);
        }
        panic!("no port free on 127.0.{net}.1..{n}");
    }

    /// A listener on `addr` whose accept queue is full: SYNs to it are
    /// dropped, so a connect hangs until the check's timeout. Keep the
    /// returned value alive.
    async fn hanging(addr: SocketAddr) -> (TcpListener, Vec<TcpStream>) {
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_reuseaddr(true).unwrap();
        socket.bind(addr).unwrap();
        let listener = socket.listen(0).unwrap();
        let mut held = Vec::new();
        for _ in 0..16 {
            match tokio::time::timeout(Duration::from_millis(200), TcpStream::connect(addr)).await {
                Ok(Ok(stream)) => held.push(stream),
                Ok(Err(e)) => panic!("connect to the filling listener failed: {e}"),
                Err(_) => return (listener, held),
            }
        }
        panic!("the accept queue of {addr} never filled");
    }

    fn config(text: &str) -> Config {
        Config::parse(text, "test").unwrap()
    }

    /// A zone "t." with one check `c` on `port`; records are appended.
    fn base(port: u16, interval_ms: u64, timeout_ms: u64, rise: u32, fall: u32) -> String {
        format!(
            "[[zone]]\norigin = \"t.\"\nttl = 7\n\
             [checks.c]\nkind = \"tcp\"\nport = {port}\ninterval = \"{interval_ms}ms\"\n\
             timeout = \"{timeout_ms}ms\"\nrise = {rise}\nfall = {fall}\n"
        )
    }

    fn record(name: &str, policy: &str, endpoints: &[(IpAddr, u32)]) -> String {
        let list: Vec<String> = endpoints
            .iter()
            .map(|(a, p)| format!("{{ address = \"{a}\", priority = {p} }}"))
            .collect();
        format!(
            "[[record]]\nname = \"{name}\"\ntype = \"A\"\npolicy = \"{policy}\"\ncheck = \"c\"\nendpoints = [{}]\n",
            list.join(", ")
        )
    }

    struct Running {
        writes: mpsc::UnboundedReceiver<Write>,
        log: Arc<Mutex<Vec<Write>>>,
        calls: Arc<Mutex<Vec<Call>>>,
        broken: Arc<Mutex<bool>>,
        stop: Option<oneshot::Sender<()>>,
        task: JoinHandle<Result<MemorySink>>,
        started: Instant,
    }

    impl Running {
        fn start(config: Config) -> Running {
            Running::start_with(config, false)
        }

        fn start_with(config: Config, broken: bool) -> Running {
            let (tx, writes) = mpsc::unbounded_channel();
            let log = Arc::new(Mutex::new(Vec::new()));
            let calls = Arc::new(Mutex::new(Vec::new()));
            let broken = Arc::new(Mutex::new(broken));
            let sink = MemorySink {
                writes: log.clone(),
                calls: calls.clone(),
                broken: broken.clone(),
                tx,
            };
            let (stop, stopped) = oneshot::channel::<()>();
            let started = Instant::now();
            let task = tokio::spawn(async move {
                let mut agent = Agent::new(config, sink);
                agent
                    .run(
                        async {
                            let _ = stopped.await;
                        },
                        None,
                        |_| {},
                    )
                    .await?;
                Ok(agent.into_sink())
            });
            Running {
                writes,
                log,
                calls,
                broken,
                stop: Some(stop),
                task,
                started,
            }
        }

        async fn next(&mut self, within: Duration) -> Write {
            tokio::time::timeout(within, self.writes.recv())
                .await
                .unwrap_or_else(|_| panic!("no write within {within:?}"))
                .expect("agent running")
        }

        /// Skips writes until `name` is written with `addrs`.
        async fn until(&mut self, name: &str, addrs: &[IpAddr], within: Duration) -> Write {
            let deadline = tokio::time::Instant::now() + within;
            loop {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                let w = self.next(left).await;
                if w.name == name && w.addrs == addrs {
                    return w;
                }
            }
        }

        async fn stop(mut self) -> Vec<Write> {
            self.stop.take().unwrap().send(()).unwrap();
            self.task.await.unwrap().unwrap();
            self.log.lock().unwrap().clone()
        }
    }

    const SLACK: Duration = Duration::from_millis(250);

    #[tokio::test]
    async fn first_round_completes_before_the_first_write() {
        let (port, up) = endpoints(1, 1).await;
        let slow = SocketAddr::from((Ipv4Addr::new(127, 0, 1, 2), port));
        let _hang = hanging(slow).await;
        let down = IpAddr::from([127, 0, 1, 3]);
        let timeout_ms = 200;
        let mut text = base(port, 400, timeout_ms, 2, 3);
        text += &record(
            "www.t.",
            "failover",
            &[(up[0].ip(), 1), (IpAddr::from([127, 0, 1, 2]), 1)],
        );
        text += &record("dead.t.", "failover", &[(down, 1)]);
        let mut running = Running::start(config(&text));
        let first = running.next(Duration::from_secs(2)).await;
        // The hanging endpoint decides the first round: nothing is written
        // before its check times out, although the others answered at once.
        assert!(
            first.at - running.started >= Duration::from_millis(timeout_ms),
            "first write after {:?}",
            first.at - running.started
        );
        let second = running.next(Duration::from_millis(100)).await;
        let mut firsts = [first, second];
        firsts.sort_by(|a, b| a.name.cmp(&b.name));
        assert_eq!(firsts[0].name, "dead.t.");
        assert_eq!(firsts[0].addrs, [down], "all down: fail open");
        assert_eq!(firsts[1].name, "www.t.");
        assert_eq!(firsts[1].addrs, [up[0].ip()], "the hanging endpoint is out");
        assert_eq!(firsts[1].ttl, 7, "zone TTL");
        let writes = running.stop().await;
        assert_eq!(writes.len(), 2, "{writes:?}");
    }

    #[tokio::test]
    async fn failover_to_the_backup_within_fall_intervals_and_back_after_rise() {
        let (port, mut eps) = endpoints(2, 2).await;
        // A hanging last-resort endpoint: its timeouts must not slow the others.
        let _hang = hanging(SocketAddr::from((Ipv4Addr::new(127, 0, 2, 3), port))).await;
        let interval = Duration::from_millis(100);
        let (rise, fall) = (2u32, 3u32);
        let mut text = base(port, 100, 60, rise, fall);
        let (primary, backup) = (eps[0].ip(), eps[1].ip());
        text += &record(
            "www.t.",
            "failover",
            &[(primary, 1), (backup, 2), (IpAddr::from([127, 0, 2, 3]), 3)],
        );
        let mut running = Running::start(config(&text));
        let first = running.next(Duration::from_secs(1)).await;
        assert_eq!(first.addrs, [primary]);

        let down_at = Instant::now();
        eps[0].down().await;
        let w = running.next(fall * interval + SLACK).await;
        assert_eq!(w.addrs, [backup]);
        let took = w.at - down_at;
        // `fall` consecutive failures, the first no earlier than the next check.
        assert!(
            took >= (fall - 1) * interval - Duration::from_millis(10),
            "{took:?}"
        );
        assert!(took <= fall * interval + SLACK, "{took:?}");

        let up_at = Instant::now();
        eps[0].up().await;
        let w = running.next(rise * interval + SLACK).await;
        assert_eq!(w.addrs, [primary]);
        let took = w.at - up_at;
        assert!(
            took >= (rise - 1) * interval - Duration::from_millis(10),
            "{took:?}"
        );
        assert!(took <= rise * interval + SLACK, "{took:?}");

        let writes = running.stop().await;
        assert_eq!(writes.len(), 3, "one write per change: {writes:?}");
    }

    #[tokio::test]
    async fn all_down_fails_open_to_the_best_level_then_recovers() {
        let (port, mut eps) = endpoints(3, 3).await;
        let (a, b, c) = (eps[0].ip(), eps[1].ip(), eps[2].ip());
        let mut text = base(port, 50, 30, 2, 2);
        text += &record("www.t.", "failover", &[(a, 1), (b, 1), (c, 2)]);
        let mut running = Running::start(config(&text));
        assert_eq!(running.next(Duration::from_secs(1)).await.addrs, [a, b]);

        for ep in &mut eps {
            ep.down().await;
        }
        // Whatever intermediate sets appear while they fall one by one, the
        // end is the whole best level, not every endpoint.
        running
            .until("www.t.", &[a, b], Duration::from_secs(1))
            .await;
        // And it stays there: no flapping while everything is down.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(running.writes.try_recv().is_err());

        eps[2].up().await;
        assert_eq!(running.next(Duration::from_secs(1)).await.addrs, [c]);
        eps[1].up().await;
        assert_eq!(running.next(Duration::from_secs(1)).await.addrs, [b]);
        running.stop().await;
    }

    #[tokio::test]
    async fn all_healthy_policy_answers_with_every_healthy_endpoint() {
        let (port, mut eps) = endpoints(4, 3).await;
        let (a, b, c) = (eps[0].ip(), eps[1].ip(), eps[2].ip());
        let mut text = base(port, 50, 30, 1, 1);
        text += &record("pool.t.", "all-healthy", &[(a, 1), (b, 2), (c, 3)]);
        let mut running = Running::start(config(&text));
        assert_eq!(running.next(Duration::from_secs(1)).await.addrs, [a, b, c]);
        eps[1].down().await;
        assert_eq!(running.next(Duration::from_secs(1)).await.addrs, [a, c]);
        eps[0].down().await;
        assert_eq!(running.next(Duration::from_secs(1)).await.addrs, [c]);
        eps[2].down().await;
        // Fail open: the best priority level, i.e. a alone.
        assert_eq!(running.next(Duration::from_secs(1)).await.addrs, [a]);
        eps[1].up().await;
        assert_eq!(running.next(Duration::from_secs(1)).await.addrs, [b]);
        running.stop().await;
    }

    /// A zone with an A and an AAAA record at one name, an A-only name in a
    /// second zone; the AAAA endpoint is checked over IPv6 on ::1.
    async fn dual_stack() -> (Config, TcpListener, Vec<TestEndpoint>) {
        // The AAAA endpoint needs the same port on ::1 (one check port).
        let mut found = None;
        for _ in 0..20 {
            let (port, up) = endpoints(5, 1).await;
            if let Ok(v6) = TcpListener::bind((std::net::Ipv6Addr::LOCALHOST, port)).await {
                found = Some((port, up, v6));
                break;
            }
        }
        let (port, up, v6) = found.expect("a port free on 127.0.5.1 and ::1");
        let text = format!(
            "{}[[zone]]\norigin = \"u.\"\n{}{}{}",
            base(port, 50, 30, 1, 1),
            record("www.t.", "failover", &[(up[0].ip(), 1)]),
            record(
                "www.t.",
                "failover",
                &[(IpAddr::from(std::net::Ipv6Addr::LOCALHOST), 1)]
            )
            .replace("type = \"A\"", "type = \"AAAA\""),
            record("api.u.", "failover", &[(up[0].ip(), 1)]),
        );
        (config(&text), v6, up)
    }

    #[tokio::test]
    async fn zones_first_then_answer_sets_then_nodata_for_the_missing_types() {
        let (config, v6, _up) = dual_stack().await;
        let v6_accept = TestEndpoint::serve(v6);
        let mut running = Running::start(config.clone());
        let mut firsts = Vec::new();
        for _ in 0..3 {
            firsts.push(running.next(Duration::from_secs(2)).await);
        }
        let aaaa = firsts
            .iter()
            .find(|w| w.rtype == RTYPE_AAAA)
            .expect("AAAA written");
        assert_eq!(aaaa.addrs, [IpAddr::from(std::net::Ipv6Addr::LOCALHOST)]);
        assert_eq!((aaaa.name.as_str(), aaaa.zone, aaaa.ttl), ("www.t.", 0, 7));
        let api = firsts.iter().find(|w| w.name == "api.u.").unwrap();
        assert_eq!(
            (api.rtype, api.zone),
            (RTYPE_A, 1),
            "the second zone's index"
        );
        // Let the NODATA declarations follow the answer sets.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let calls = running.calls.lock().unwrap().clone();
        running.stop().await;
        v6_accept.abort();

        // Exactly the sequence publish_all_healthy produces.
        let mut expected = ExpectedCalls::default();
        publish_all_healthy(&config, &mut expected).unwrap();
        assert_eq!(calls, expected.0);
        assert_eq!(
            calls,
            [
                Call::Zone(0, "t.".into()),
                Call::Zone(1, "u.".into()),
                Call::Publish("www.t.".into(), RTYPE_A),
                Call::Publish("www.t.".into(), RTYPE_AAAA),
                Call::Publish("api.u.".into(), RTYPE_A),
                Call::NoData("www.t.".into(), RTYPE_HTTPS, 0),
                Call::NoData("api.u.".into(), RTYPE_AAAA, 1),
                Call::NoData("api.u.".into(), RTYPE_HTTPS, 1),
            ]
        );
    }

    /// Records calls the way MemorySink does, without a running agent.
    #[derive(Default)]
    struct ExpectedCalls(Vec<Call>);

    impl AnswerSink for ExpectedCalls {
        fn set_zone(&mut self, zone: u32, soa: &ZoneSoa) -> Result<()> {
            self.0.push(Call::Zone(zone, soa.apex.clone()));
            Ok(())
        }
        fn publish(&mut self, name: &str, rtype: u16, _: u32, _: u32, _: &[IpAddr]) -> Result<()> {
            self.0.push(Call::Publish(name.into(), rtype));
            Ok(())
        }
        fn publish_weighted(
            &mut self,
            name: &str,
            rtype: u16,
            _: u32,
            _: u32,
            weighted: &[(IpAddr, u32)],
        ) -> Result<()> {
            self.0
                .push(Call::Weighted(name.into(), rtype, weighted.to_vec()));
            Ok(())
        }
        fn publish_nodata(&mut self, name: &str, rtype: u16, zone: u32) -> Result<()> {
            self.0.push(Call::NoData(name.into(), rtype, zone));
            Ok(())
        }
        fn publish_servfail(&mut self, name: &str, rtype: u16, _: u32) -> Result<()> {
            self.0.push(Call::ServFail(name.into(), rtype));
            Ok(())
        }
        fn withdraw(&mut self, _: &str, _: u16) -> Result<()> {
            unreachable!()
        }
    }

    #[tokio::test]
    async fn a_failing_write_is_retried_and_does_not_hold_up_the_others() {
        let (config, v6, _up) = dual_stack().await;
        let v6_accept = TestEndpoint::serve(v6);
        // Like today's kernel: AAAA and NODATA writes fail.
        let mut running = Running::start_with(config, true);
        let mut written: Vec<(String, u16)> = Vec::new();
        for _ in 0..2 {
            let w = running.next(Duration::from_secs(2)).await;
            written.push((w.name, w.rtype));
        }
        written.sort();
        assert_eq!(
            written,
            [("api.u.".into(), RTYPE_A), ("www.t.".into(), RTYPE_A)],
            "the A records are written although AAAA and NODATA fail"
        );
        // Repaired: the next check's retry writes what is missing.
        *running.broken.lock().unwrap() = false;
        let w = running.next(Duration::from_secs(1)).await;
        assert_eq!((w.name.as_str(), w.rtype), ("www.t.", RTYPE_AAAA));
        tokio::time::sleep(Duration::from_millis(150)).await;
        let calls = running.calls.lock().unwrap().clone();
        let nodata = calls
            .iter()
            .filter(|c| matches!(c, Call::NoData(..)))
            .count();
        assert_eq!(nodata, 3, "{calls:?}");
        let writes = running.stop().await;
        assert_eq!(writes.len(), 3, "each answer set written once: {writes:?}");
        v6_accept.abort();
    }
}
