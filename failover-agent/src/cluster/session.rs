//! The task that talks to etcd for this node: one session at a time (a
//! lease, this node's keys on it, a read of the prefix and a watch from the
//! revision read), a new session after any failure, and this node's own
//! checks deciding while etcd has been out of reach for `lease_ttl`.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, SystemTime};

use anyhow::{Context as _, Result, anyhow, bail};
use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, EventType, GetOptions, Identity,
    PutOptions, TlsOptions, Txn, TxnOp, TxnOpResponse, WatchOptions,
};
use log::{info, warn};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, MissedTickBehavior, timeout};

use super::view::{Key, Standing, StoredOverride, View, health_text, health_value, parse_key};
use super::{ETCD_UNREACHABLE, Request};
use crate::admin_state::Mode;
use crate::checks::health::Health;
use crate::config::Cluster;

/// How often the clock is looked at (falling back to this node's checks).
const CLOCK: Duration = Duration::from_millis(200);
/// At most this many distinct bad keys are warned about (then silently ignored).
const MAX_WARNED: usize = 1000;

/// An override as stored: `{"mode":"drain","until":"2026-11-24T06:00:00Z"}`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct OverrideValue {
    mode: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    until: Option<String>,
}

/// What outlives a session.
struct Node {
    settings: Cluster,
    /// This node's observations, as the agent last gave them.
    mine: BTreeMap<String, Health>,
    /// Last sign that this node's session is alive (joined, an answer to a
    /// write, a keep-alive, a watch event): what the cluster said is at most
    /// this old. Answers before a session has joined do not count: a node
    /// that cannot join decides alone after `lease_ttl`.
    last_contact: Option<Instant>,
    /// A session joined since the last failure was logged.
    joined: bool,
    started: Instant,
    /// The lease of the last session: revoked once the next session's keys
    /// are written, so what this node withdrew meanwhile goes at once.
    old_lease: Option<i64>,
    warned: HashSet<String>,
    view: watch::Sender<View>,
    /// Why the last session failed, for the reason of going alone.
    last_error: Option<String>,
    /// Expired overrides (key id, revision) this node tried to delete.
    swept: HashSet<(String, i64)>,
    /// This node's configuration digest (`config/NODE`).
    digest: String,
}

/// Runs until the agent drops its end of `requests`.
pub async fn run(
    settings: Cluster,
    digest: String,
    mut requests: mpsc::UnboundedReceiver<Request>,
    view: watch::Sender<View>,
) {
    let mut node = Node {
        settings,
        mine: BTreeMap::new(),
        last_contact: None,
        joined: false,
        started: Instant::now(),
        old_lease: None,
        warned: HashSet::new(),
        view,
        last_error: None,
        swept: HashSet::new(),
        digest,
    };
    let mut failures: u32 = 0;
    let mut logged: Option<Instant> = None;
    loop {
        let error = match node.session(&mut requests).await {
            Ok(()) => return,
            Err(e) => format!("{e:#}"),
        };
        failures = failures.saturating_add(1);
        // Once per outage, then every half minute while it lasts.
        if std::mem::take(&mut node.joined)
            || logged.is_none_or(|t| t.elapsed() >= Duration::from_secs(30))
        {
            warn!(
                "cluster: etcd {}: {error}{}; retrying",
                node.settings.etcd.join(", "),
                setting_hint(&error, &node.settings)
                    .map_or(String::new(), |hint| format!(" ({hint})"))
            );
            logged = Some(Instant::now());
        }
        node.last_error = Some(error.clone());
        let last_error = error;
        // Quickly at first (etcd restarting), then every second at most.
        let wait = Duration::from_millis(100 * u64::from(failures.min(10)));
        let until = Instant::now() + wait;
        loop {
            node.clock();
            tokio::select! {
                () = tokio::time::sleep_until(until.min(Instant::now() + CLOCK)) => {
                    if Instant::now() >= until {
                        break;
                    }
                }
                request = requests.recv() => match request {
                    None => return,
                    Some(Request::Observe { key, health }) => {
                        node.mine.insert(key, health);
                    }
                    Some(Request::Withdraw { key }) => {
                        node.mine.remove(&key);
                    }
                    Some(Request::Digest { digest }) => node.digest = digest,
                    Some(Request::Override { reply, .. }) => {
                        let _ = reply.send(Err(format!("{ETCD_UNREACHABLE} ({last_error})")));
                    }
                },
            }
        }
        if node
            .last_contact
            .is_some_and(|t| t.elapsed() < wait + CLOCK)
        {
            failures = 0;
        }
    }
}

impl Node {
    fn key(&self, rest: &str) -> String {
        format!("{}{rest}", self.settings.prefix)
    }

    fn rpc_timeout(&self) -> Duration {
        (self.settings.lease_ttl / 3).max(Duration::from_millis(500))
    }

    /// Falls back to this node's own checks once etcd has not answered for
    /// `lease_ttl`: what the cluster said is that old by then.
    fn clock(&mut self) {
        let since = self.last_contact.unwrap_or(self.started);
        if since.elapsed() < self.settings.lease_ttl {
            return;
        }
        let ttl = humantime::format_duration(self.settings.lease_ttl);
        let last_error = self.last_error.as_deref();
        self.view.send_if_modified(|view| {
            if view.standing == Standing::Alone {
                return false;
            }
            // Logged by the agent, as the standing's event.
            view.reason = format!(
                "no answer from etcd for {ttl} (lease_ttl): deciding from this node's own checks until it answers again{}",
                last_error.map_or(String::new(), |e| format!("; last error: {e}"))
            );
            view.standing = Standing::Alone;
            // Never decide from what is that old.
            view.live.clear();
            view.votes.clear();
            true
        });
    }

    fn contact(&mut self) {
        self.last_contact = Some(Instant::now());
    }

    async fn connect(&self) -> Result<Client> {
        let rpc = self.rpc_timeout();
        let mut options = ConnectOptions::new()
            .with_connect_timeout(rpc)
            .with_keep_alive(rpc, rpc);
        if let Some((user, password)) = &self.settings.user {
            options = options.with_user(user.clone(), password.clone());
        }
        if let Some(tls) = &self.settings.tls {
            let mut config = TlsOptions::new();
            if let Some(ca) = &tls.ca {
                config = config.ca_certificate(Certificate::from_pem(ca));
            }
            if let Some((cert, key)) = &tls.identity {
                config = config.identity(Identity::from_pem(cert, key));
            }
            options = options.with_tls(config);
        }
        timeout(rpc, Client::connect(&self.settings.etcd, Some(options)))
            .await
            .map_err(|_| anyhow!("no connection within {}", humantime::format_duration(rpc)))?
            .context("connecting")
    }

    /// One session; `Ok` when the agent is gone.
    async fn session(&mut self, requests: &mut mpsc::UnboundedReceiver<Request>) -> Result<()> {
        let rpc = self.rpc_timeout();
        let mut client = self.connect().await?;
        let ttl = self.settings.lease_ttl.as_secs() as i64;
        let lease = bounded(rpc, "granting a lease", client.lease_grant(ttl, None))
            .await?
            .id();
        // Kept alive by a task of its own, so that no amount of writing here
        // delays a keep-alive: a lease that expired under a burst of
        // writes would take every vote of this node with it.
        let (keeper, keep_alives) = bounded(
            rpc,
            "keeping the lease alive",
            client.lease_keep_alive(lease),
        )
        .await?;
        let (contact_tx, contact) = watch::channel(Instant::now());
        let mut keeping = KeepAlive(tokio::spawn(keep_alive(
            keeper,
            keep_alives,
            self.settings.lease_ttl / 3,
            rpc,
            contact_tx,
        )));
        if let Err(e) = self.claim_name(&mut client, lease, rpc).await {
            // Best effort: it expires by itself otherwise.
            let _ = timeout(rpc, client.lease_revoke(lease)).await;
            return Err(e);
        }
        let mut ops = vec![self.digest_op(lease)];
        ops.extend(
            self.mine
                .iter()
                .map(|(key, health)| self.observation_op(key, Some(*health), lease)),
        );
        write(&mut client, ops, rpc, "writing this node's keys").await?;
        if let Some(old) = self.old_lease.replace(lease)
            && old != lease
        {
            // Best effort: it expires by itself otherwise.
            let _ = timeout(rpc, client.lease_revoke(old)).await;
        }
        let read = bounded(
            rpc,
            "reading the prefix",
            client.get(
                self.settings.prefix.clone(),
                Some(GetOptions::new().with_prefix()),
            ),
        )
        .await?;
        let revision = read
            .header()
            .map(|h| h.revision())
            .context("etcd sent no revision")?;
        let mut state = View::new(
            self.settings.node.clone(),
            self.settings.quorum,
            self.settings.checkers,
        );
        state.standing = Standing::Joined;
        for kv in read.kvs() {
            self.apply(&mut state, kv.key(), Some(kv.value()), kv.mod_revision());
        }
        let mut watch = bounded(
            rpc,
            "watching the prefix",
            client.watch(
                self.settings.prefix.clone(),
                Some(
                    WatchOptions::new()
                        .with_prefix()
                        .with_start_revision(revision + 1),
                ),
            ),
        )
        .await?;
        // Joined: the cluster's view is current from here on.
        self.contact();
        self.joined = true;
        self.publish(state, revision);

        let mut clock = tokio::time::interval(CLOCK);
        clock.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                request = requests.recv() => {
                    let Some(request) = request else {
                        // The agent stops: its votes go now rather than at expiry.
                        let _ = timeout(rpc, client.lease_revoke(lease)).await;
                        return Ok(());
                    };
                    // Everything queued goes in one batch of writes.
                    let mut batch = vec![request];
                    while let Ok(more) = requests.try_recv() {
                        batch.push(more);
                    }
                    self.requests(&mut client, lease, rpc, batch).await?;
                    self.contact();
                }
                message = watch.message() => {
                    let Some(response) = message.context("watching")? else {
                        bail!("etcd ended the watch");
                    };
                    if response.canceled() {
                        bail!("etcd cancelled the watch: {}", response.cancel_reason());
                    }
                    self.contact();
                    self.watched(&mut client, lease, rpc, &response).await?;
                }
                done = &mut keeping.0 => {
                    match done {
                        Ok(Err(e)) => return Err(e),
                        Ok(Ok(())) => bail!("the lease keep-alive stopped"),
                        Err(e) => bail!("the lease keep-alive task: {e}"),
                    }
                }
                _ = clock.tick() => {
                    let kept = *contact.borrow();
                    if self.last_contact.is_none_or(|t| t < kept) {
                        self.last_contact = Some(kept);
                    }
                    let since = self.last_contact.unwrap_or(self.started);
                    if since.elapsed() >= self.settings.lease_ttl {
                        bail!(
                            "no answer for {}",
                            humantime::format_duration(self.settings.lease_ttl)
                        );
                    }
                    self.sweep_expired(&mut client, rpc).await?;
                }
            }
        }
    }

    /// Writes `nodes/NODE` on `lease`, unless another lease holds it:
    /// another agent with this node name (the two would overwrite each
    /// other's observations), or this agent's previous run, killed less
    /// than `lease_ttl` ago (then the name is free once that lease expires).
    async fn claim_name(&mut self, client: &mut Client, lease: i64, rpc: Duration) -> Result<()> {
        let key = self.key(&format!("nodes/{}", self.settings.node));
        let put = TxnOp::put(
            key.clone(),
            "live",
            Some(PutOptions::new().with_lease(lease)),
        );
        let claim = Txn::new()
            .when(vec![Compare::create_revision(
                key.clone(),
                CompareOp::Equal,
                0,
            )])
            .and_then(vec![put.clone()])
            .or_else(vec![TxnOp::get(key, None)]);
        let response = bounded(rpc, "writing this node's key", client.txn(claim)).await?;
        if response.succeeded() {
            return Ok(());
        }
        let holder = response.op_responses().into_iter().find_map(|r| match r {
            TxnOpResponse::Get(get) => get.kvs().first().map(|kv| kv.lease()),
            _ => None,
        });
        match holder {
            // This agent's own previous session (etcd restarted, or the
            // session failed): the name is ours.
            Some(held) if Some(held) == self.old_lease => {
                write(client, vec![put], rpc, "writing this node's key").await
            }
            // Gone meanwhile: the next attempt takes it.
            None => bail!("this node's key changed while claiming it"),
            Some(held) => bail!(
                "node name {:?} is held by another lease ({held:x}): another agent with this name, or this agent's previous run whose lease has not expired yet",
                self.settings.node
            ),
        }
    }

    /// The put of this node's configuration digest, on its lease.
    fn digest_op(&self, lease: i64) -> TxnOp {
        TxnOp::put(
            self.key(&format!("config/{}", self.settings.node)),
            self.digest.clone(),
            Some(PutOptions::new().with_lease(lease)),
        )
    }

    /// The put (or, for `None`, the delete) of this node's observation of `key`.
    fn observation_op(&self, key: &str, health: Option<Health>, lease: i64) -> TxnOp {
        let key = self.key(&format!("health/{}/{key}", self.settings.node));
        match health {
            Some(health) => TxnOp::put(
                key,
                health_text(health),
                Some(PutOptions::new().with_lease(lease)),
            ),
            None => TxnOp::delete(key, None),
        }
    }

    /// Applies a watch response and hands the new view to the agent; puts
    /// back this node's observations someone else changed or deleted.
    async fn watched(
        &mut self,
        client: &mut Client,
        lease: i64,
        rpc: Duration,
        response: &etcd_client::WatchResponse,
    ) -> Result<()> {
        let mut state = self.view.borrow().clone();
        let own = self.key(&format!("health/{}/", self.settings.node));
        let mut touched = Vec::new();
        for event in response.events() {
            let Some(kv) = event.kv() else { continue };
            let value = match event.event_type() {
                EventType::Put => Some(kv.value()),
                EventType::Delete => None,
            };
            self.apply(&mut state, kv.key(), value, kv.mod_revision());
            if let Some(key) = kv.key().strip_prefix(own.as_bytes()) {
                touched.push(String::from_utf8_lossy(key).into_owned());
            }
        }
        let revision = response.header().map_or(0, |h| h.revision());
        self.publish(state, revision);
        let mut ops = Vec::new();
        for key in touched {
            let Some(&health) = self.mine.get(&key) else {
                continue;
            };
            let held = self
                .view
                .borrow()
                .votes
                .get(&key)
                .and_then(|v| v.get(&self.settings.node).copied());
            if held != Some(health) {
                // Once per key: a writer that keeps at it is not worth a line each time.
                if self.warned.len() < MAX_WARNED && self.warned.insert(format!("rewrite {key}")) {
                    warn!(
                        "cluster: this node's observation of {key} was changed or deleted by someone else: writing it again"
                    );
                }
                ops.push(self.observation_op(&key, Some(health), lease));
            }
        }
        write(client, ops, rpc, "writing an observation again").await
    }

    /// Takes a batch of the agent's requests: the observations in as few
    /// writes as etcd allows, then the overrides one by one (each replied to).
    async fn requests(
        &mut self,
        client: &mut Client,
        lease: i64,
        rpc: Duration,
        batch: Vec<Request>,
    ) -> Result<()> {
        // The last word on each key wins.
        let mut changes: BTreeMap<String, Option<Health>> = BTreeMap::new();
        let mut overrides = Vec::new();
        let mut new_digest = None;
        for request in batch {
            match request {
                Request::Observe { key, health } => {
                    changes.insert(key, Some(health));
                }
                Request::Withdraw { key } => {
                    changes.insert(key, None);
                }
                Request::Digest { digest } => new_digest = Some(digest),
                other => overrides.push(other),
            }
        }
        let mut ops = Vec::new();
        if let Some(digest) = new_digest.filter(|d| *d != self.digest) {
            self.digest = digest;
            ops.push(self.digest_op(lease));
        }
        for (key, health) in changes {
            let now = match health {
                Some(health) => self.mine.insert(key.clone(), health) != Some(health),
                None => self.mine.remove(&key).is_some(),
            };
            if now {
                ops.push(self.observation_op(&key, health, lease));
            }
        }
        write(client, ops, rpc, "writing observations").await?;
        for request in overrides {
            if let Request::Override {
                record,
                endpoint,
                mode,
                reply,
            } = request
            {
                let key = self.key(&format!("overrides/{record}/{endpoint}"));
                let op = match mode {
                    Some((mode, until)) => {
                        let value = serde_json::to_string(&OverrideValue {
                            mode: mode.name().to_string(),
                            until: until.map(|t| {
                                humantime::format_rfc3339_seconds(crate::control::whole_second_up(
                                    t,
                                ))
                                .to_string()
                            }),
                        })
                        .expect("plain strings serialise");
                        TxnOp::put(key, value, None)
                    }
                    None => TxnOp::delete(key, None),
                };
                let result = write(client, vec![op], rpc, "writing an override").await;
                let failed = result.as_ref().err().map(|e| format!("{e:#}"));
                let _ = reply.send(match &failed {
                    None => Ok(()),
                    // A write that got no answer in time: etcd is gone (the
                    // session fails next); anything else is etcd's refusal.
                    Some(e) if e.contains("no answer within") => {
                        Err(format!("{ETCD_UNREACHABLE} ({e})"))
                    }
                    Some(e) => Err(format!("etcd refused it: {e}")),
                });
                result?;
            }
        }
        Ok(())
    }

    /// Deletes the overrides whose `until` has passed, so that etcd does not
    /// keep them for ever. Each node that sees one expired deletes it in a
    /// transaction that compares its `mod_revision`: the first one wins,
    /// the others' compare fails harmlessly, and an override rewritten
    /// meanwhile (a new drain of the same endpoint) is never deleted. Not a
    /// lease with the remaining TTL: etcd 3.4 gives a lease its full TTL
    /// again after a restart or a leader change (no checkpoints by
    /// default), and every override would need a lease of its own.
    async fn sweep_expired(&mut self, client: &mut Client, rpc: Duration) -> Result<()> {
        let now = SystemTime::now();
        let expired: Vec<(String, i64, Option<SystemTime>)> = self
            .view
            .borrow()
            .overrides
            .iter()
            .filter(|(_, o)| !override_in_force(o, now))
            .map(|(id, o)| (id.clone(), o.revision, o.until))
            .collect();
        // Only what is still there is remembered.
        self.swept
            .retain(|(id, revision)| expired.iter().any(|(i, r, _)| i == id && r == revision));
        for (id, revision, until) in expired {
            if !self.swept.insert((id.clone(), revision)) {
                continue;
            }
            let key = self.key(&format!("overrides/{id}"));
            let delete = Txn::new()
                .when(vec![Compare::mod_revision(
                    key.clone(),
                    CompareOp::Equal,
                    revision,
                )])
                .and_then(vec![TxnOp::delete(key, None)]);
            let response = bounded(rpc, "deleting an expired override", client.txn(delete)).await?;
            if response.succeeded() {
                info!(
                    "cluster: override {id} expired at {}: deleted from etcd",
                    until.map_or("?".to_string(), |t| humantime::format_rfc3339_seconds(t)
                        .to_string())
                );
            }
        }
        Ok(())
    }

    /// Takes one key (a put with its value, or a delete) into `state`;
    /// anything this agent does not write is ignored with a warning.
    fn apply(&mut self, state: &mut View, key: &[u8], value: Option<&[u8]>, revision: i64) {
        let text = String::from_utf8_lossy(key);
        let Some(rest) = text.strip_prefix(&self.settings.prefix) else {
            return;
        };
        let parsed = match parse_key(rest) {
            Ok(parsed) => parsed,
            Err(why) => {
                if value.is_some() {
                    self.warn_once(&text, &why);
                }
                return;
            }
        };
        match (parsed, value) {
            (Key::Node(node), Some(_)) => {
                state.live.insert(node);
            }
            (Key::Node(node), None) => {
                state.live.remove(&node);
            }
            (Key::Config(node), Some(value)) => {
                if value.len() <= 64 && value.iter().all(u8::is_ascii_hexdigit) {
                    state
                        .digests
                        .insert(node, String::from_utf8_lossy(value).into_owned());
                } else {
                    self.warn_once(&text, "not a configuration digest (hexadecimal)");
                    state.digests.remove(&node);
                }
            }
            (Key::Config(node), None) => {
                state.digests.remove(&node);
            }
            (Key::Health { node, observation }, Some(value)) => match health_value(value) {
                Ok(health) => {
                    state
                        .votes
                        .entry(observation)
                        .or_default()
                        .insert(node, health);
                }
                Err(why) => {
                    self.warn_once(&text, &why);
                    remove_vote(state, &observation, &node);
                }
            },
            (Key::Health { node, observation }, None) => remove_vote(state, &observation, &node),
            (Key::Override { record, endpoint }, value) => {
                let id = format!("{record}/{endpoint}");
                state.overrides.remove(&id);
                if let Some(value) = value {
                    match override_value(&record, &endpoint, value, revision) {
                        Ok(stored) => {
                            state.overrides.insert(id, stored);
                        }
                        Err(why) => self.warn_once(&text, &why),
                    }
                }
            }
        }
    }

    fn warn_once(&mut self, key: &str, why: &str) {
        if self.warned.len() < MAX_WARNED && self.warned.insert(key.to_string()) {
            warn!("cluster: ignoring etcd key {key:?}: {why}");
        }
    }

    /// Hands `state` to the agent if it changed.
    fn publish(&mut self, mut state: View, revision: i64) {
        let was = self.view.borrow().standing;
        if was != Standing::Joined {
            // Logged by the agent, as the standing's event.
            state.reason = format!(
                "{} etcd as node {} at revision {revision}: {} live nodes ({}); health by quorum {}",
                if was == Standing::Alone {
                    "rejoined"
                } else {
                    "joined"
                },
                self.settings.node,
                state.live.len(),
                state.live.iter().cloned().collect::<Vec<_>>().join(", "),
                self.settings.quorum
            );
        } else {
            state.reason = self.view.borrow().reason.clone();
        }
        self.view.send_if_modified(|view| {
            if *view == state {
                return false;
            }
            *view = state;
            true
        });
    }
}

fn remove_vote(state: &mut View, observation: &str, node: &str) {
    if let Some(votes) = state.votes.get_mut(observation) {
        votes.remove(node);
        if votes.is_empty() {
            state.votes.remove(observation);
        }
    }
}

fn override_value(
    record: &str,
    endpoint: &str,
    value: &[u8],
    revision: i64,
) -> Result<StoredOverride, String> {
    let endpoint = endpoint
        .parse()
        .map_err(|_| format!("{endpoint:?} is not an IP address"))?;
    if !record.ends_with('.') || record != record.to_ascii_lowercase() {
        return Err("the record name is not absolute and lowercase".to_string());
    }
    let value: OverrideValue =
        serde_json::from_slice(value).map_err(|e| format!("not an override: {e}"))?;
    let mode = match Mode::parse(&value.mode) {
        Some(Mode::Normal) | None => return Err(format!("unknown mode {:?}", value.mode)),
        Some(mode) => mode,
    };
    let until = value
        .until
        .map(|t| humantime::parse_rfc3339_weak(&t).map_err(|e| format!("until {t:?}: {e}")))
        .transpose()?;
    Ok(StoredOverride {
        record: record.to_string(),
        endpoint,
        mode,
        until,
        revision,
    })
}

/// The `[cluster]` setting an etcd failure points at, when it points at
/// one: the operator fixes the file, not the network. etcd and the TLS
/// stack only say it in words, so these are matched as etcd 3.4 and
/// rustls write them.
pub fn setting_hint(error: &str, settings: &Cluster) -> Option<String> {
    let tls = settings.tls.as_ref();
    let has = |words: &[&str]| words.iter().any(|w| error.contains(w));
    if has(&["authentication failed", "invalid user ID or password"]) {
        return Some(
            "etcd refused the user name or password: check cluster.user and cluster.password"
                .to_string(),
        );
    }
    if has(&["user name is empty", "user name not found"]) {
        return Some(
            "etcd requires authentication: set cluster.user and cluster.password".to_string(),
        );
    }
    if has(&["permission denied"]) {
        return Some(format!(
            "etcd user {} may not read and write under {}: grant its role readwrite on that prefix (cluster.user, cluster.prefix)",
            settings
                .user
                .as_ref()
                .map_or("(none: cluster.user is not set)", |(u, _)| u.as_str()),
            settings.prefix
        ));
    }
    if has(&["UnknownIssuer", "unknown issuer", "BadSignature"]) {
        return Some(if tls.is_some_and(|t| t.ca.is_some()) {
            "etcd's certificate is not signed by a CA in cluster.tls.ca".to_string()
        } else {
            "etcd's certificate is not signed by a web root: set cluster.tls.ca to its CA"
                .to_string()
        });
    }
    if has(&["NotValidForName", "not valid for name"]) {
        return Some(
            "etcd's certificate does not name the host or address of cluster.etcd".to_string(),
        );
    }
    if has(&[
        "CertificateRequired",
        "certificate required",
        "BadCertificate",
        "bad certificate",
        "UnknownCA",
        "unknown ca",
    ]) {
        return Some(if tls.is_some_and(|t| t.identity.is_some()) {
            "etcd refused this node's client certificate: check cluster.tls.cert and cluster.tls.key (signed by a CA etcd trusts)".to_string()
        } else {
            "etcd requires a client certificate: set cluster.tls.cert and cluster.tls.key"
                .to_string()
        });
    }
    None
}

/// etcd's limit of operations in one transaction (`--max-txn-ops`, 128 by
/// default).
const MAX_TXN_OPS: usize = 128;

/// Writes `ops` in as few transactions as etcd takes, each bounded by `limit`.
async fn write(client: &mut Client, ops: Vec<TxnOp>, limit: Duration, what: &str) -> Result<()> {
    for chunk in ops.chunks(MAX_TXN_OPS) {
        bounded(limit, what, client.txn(Txn::new().and_then(chunk.to_vec()))).await?;
    }
    Ok(())
}

/// The lease keep-alive task of a session, stopped with it.
struct KeepAlive(tokio::task::JoinHandle<Result<()>>);

impl Drop for KeepAlive {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Keeps the lease alive every `every`; reports each answer on `contact`.
/// Ends with the reason when etcd stops answering or the lease is gone.
async fn keep_alive(
    mut keeper: etcd_client::LeaseKeeper,
    mut answers: etcd_client::LeaseKeepAliveStream,
    every: Duration,
    rpc: Duration,
    contact: watch::Sender<Instant>,
) -> Result<()> {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                bounded(rpc, "keeping the lease alive", keeper.keep_alive()).await?;
            }
            answer = answers.message() => {
                let Some(answer) = answer.context("keeping the lease alive")? else {
                    bail!("etcd ended the lease keep-alive stream");
                };
                if answer.ttl() <= 0 {
                    bail!("this node's lease expired (etcd was out of reach for longer than lease_ttl)");
                }
                contact.send_replace(Instant::now());
            }
        }
    }
}

/// `call`, failing after `limit`.
async fn bounded<T>(
    limit: Duration,
    what: &str,
    call: impl Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T> {
    match timeout(limit, call).await {
        Ok(result) => result.with_context(|| what.to_string()),
        Err(_) => bail!(
            "{what}: no answer within {}",
            humantime::format_duration(limit)
        ),
    }
}

/// An override's expiry is the operator's wall-clock time (like the
/// admin-state file's): it is the only time the cluster compares.
pub fn override_in_force(o: &StoredOverride, now: SystemTime) -> bool {
    o.until.is_none_or(|t| t > now)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_stored_end_is_rounded_up_to_the_second() {
        use std::time::{Duration, UNIX_EPOCH};
        let at = |ns: u64| UNIX_EPOCH + Duration::from_nanos(ns);
        assert_eq!(
            crate::control::whole_second_up(at(5_000_000_001)),
            at(6_000_000_000)
        );
        assert_eq!(
            crate::control::whole_second_up(at(5_999_999_999)),
            at(6_000_000_000)
        );
        assert_eq!(
            crate::control::whole_second_up(at(6_000_000_000)),
            at(6_000_000_000)
        );
    }

    use super::*;

    #[test]
    fn etcd_failures_name_the_setting_to_fix() {
        let mut settings = Cluster {
            etcd: vec!["https://192.0.2.5:2379".into()],
            node: "ns1".into(),
            prefix: "/failover/".into(),
            quorum: crate::config::Quorum::Majority,
            lease_ttl: Duration::from_secs(3),
            checkers: 0,
            user: Some(("failover".into(), "x".into())),
            tls: None,
        };
        // As etcd 3.4.23 and rustls put them.
        let password = r#"connecting: grpc request error: code: 'Client specified an invalid argument', message: "etcdserver: authentication failed, invalid user ID or password""#;
        let ca = r#"connecting: grpc request error: code: 'The service is currently unavailable', message: "invalid peer certificate: UnknownIssuer""#;
        let denied = "granting a lease: etcdserver: permission denied";
        let hint = |e: &str, s: &Cluster| setting_hint(e, s).unwrap_or_default();
        assert!(hint(password, &settings).contains("cluster.user and cluster.password"));
        assert!(
            hint(denied, &settings)
                .contains("etcd user failover may not read and write under /failover/")
        );
        assert!(hint(ca, &settings).contains("set cluster.tls.ca"));
        settings.tls = Some(crate::config::cluster::ClusterTls {
            ca: Some(b"-----BEGIN CERTIFICATE-----".to_vec()),
            identity: None,
        });
        assert!(hint(ca, &settings).contains("not signed by a CA in cluster.tls.ca"));
        assert_eq!(
            setting_hint("connecting: connection refused", &settings),
            None
        );
    }

    #[test]
    fn overrides_parse_or_are_refused() {
        let o = override_value(
            "www.example.test.",
            "192.0.2.10",
            br#"{"mode":"drain","until":"2026-11-24T06:00:00Z"}"#,
            7,
        )
        .unwrap();
        assert_eq!(o.mode, Mode::Drain);
        assert!(o.until.is_some());
        assert!(override_in_force(&o, SystemTime::UNIX_EPOCH));
        assert!(!override_in_force(&o, o.until.unwrap()));
        let forced = override_value(
            "www.example.test.",
            "2001:db8::1",
            br#"{"mode":"force-up"}"#,
            8,
        )
        .unwrap();
        assert_eq!((forced.mode, forced.until), (Mode::ForceUp, None));
        for (record, endpoint, value) in [
            (
                "www.example.test.",
                "not-an-address",
                &br#"{"mode":"drain"}"#[..],
            ),
            ("WWW.example.test.", "192.0.2.10", br#"{"mode":"drain"}"#),
            ("www.example.test", "192.0.2.10", br#"{"mode":"drain"}"#),
            ("www.example.test.", "192.0.2.10", br#"{"mode":"normal"}"#),
            (
                "www.example.test.",
                "192.0.2.10",
                br#"{"mode":"drain","extra":1}"#,
            ),
            ("www.example.test.", "192.0.2.10", b"drain"),
            (
                "www.example.test.",
                "192.0.2.10",
                br#"{"mode":"drain","until":"soon"}"#,
            ),
        ] {
            assert!(
                override_value(record, endpoint, value, 9).is_err(),
                "{record} {endpoint} {}",
                String::from_utf8_lossy(value)
            );
        }
    }
}
