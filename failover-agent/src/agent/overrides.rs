//! Operator overrides: drain and force from the admin-state file and the
//! control socket, and the control requests that set and clear them.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::SystemTime;

use log::{error, info};
use tokio::sync::mpsc;

use super::Agent;
use crate::admin_state::{AdminStore, Mode, normalise_record};
use crate::cluster::ETCD_UNREACHABLE;
use crate::control::{ControlMsg, ForceState, Reply, Request, Until};
use crate::events::{Event, Override};
use crate::publish::Publisher;

/// Manual control: the admin-state file and the control socket.
impl<P: Publisher> Agent<P> {
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
    pub(super) fn admin_tick(&mut self) {
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

    /// Reports every override that began, changed or ended (`why` says
    /// where it came from), and rewrites the records it affects.
    pub(super) fn refresh_admin(&mut self, why: &str) {
        let now = SystemTime::now();
        let mut current = HashMap::new();
        let mut changed = Vec::new();
        for (r, record) in self.config.records.iter().enumerate() {
            for endpoint in &record.endpoints {
                let key = (record.name.clone(), record.rtype.code(), endpoint.address);
                let mode = self.admin_mode(&record.name, endpoint.address, now);
                if mode != self.admin_seen.get(&key).copied() {
                    self.events.emit(Event::Override(Override {
                        at: now,
                        record: record.name.clone(),
                        rtype: record.rtype.to_string(),
                        endpoint: endpoint.address,
                        mode: mode.map(|(m, _)| mode_name(m)),
                        until: mode.and_then(|(_, until)| until),
                        origin: why.to_string(),
                    }));
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
        for &r in &changed {
            self.report_states(r, why);
        }
        if self.first_round_done {
            for r in changed {
                self.update(r);
            }
        }
    }

    /// One request from the control socket: answered at once, or, for an
    /// override with `[cluster]`, once etcd has stored it for every node
    /// (`--local`: on this node only, at once).
    pub(super) fn control_message(&mut self, msg: ControlMsg) {
        if !self.clustered() || msg.request == Request::Status || msg.request.local() {
            let reply = self.control_request(msg.request);
            let _ = msg.reply.send(reply);
            return;
        }
        let now = SystemTime::now();
        let (name, address, _, change) = match self.resolve(msg.request.clone()) {
            Ok(target) => target,
            Err(error) => {
                let _ = msg.reply.send(Reply::error(error));
                return;
            }
        };
        let (mode, done) = match change {
            Change::Set(mode, until) => {
                let until = until.map(|Until(t)| t);
                if let Some(t) = until.filter(|t| *t <= now) {
                    let _ = msg.reply.send(Reply::error(format!(
                        "until {}: that is in the past",
                        humantime::format_rfc3339_seconds(t)
                    )));
                    return;
                }
                (
                    Some((mode, until)),
                    format!(
                        "{}{}",
                        admin_text(mode),
                        until.map_or(String::new(), |t| format!(
                            " until {}",
                            humantime::format_rfc3339_seconds(t)
                        ))
                    ),
                )
            }
            Change::Clear(modes) => {
                if !self
                    .cluster_override(&name, address, now)
                    .is_some_and(|m| modes.contains(&m))
                {
                    // Not the cluster's: the admin-state file's or nothing.
                    let reply = self.control_request(msg.request);
                    let _ = msg.reply.send(reply);
                    return;
                }
                (None, "back to its health checks".to_string())
            }
        };
        let stored = self.store_override(name.clone(), address, mode);
        tokio::spawn(async move {
            let reply = match stored.await {
                Ok(Ok(())) => Reply::ok(format!(
                    "{name} {address}: {done} (stored in etcd: every node applies it)"
                )),
                // The operator's way out: this node alone, said in full.
                Ok(Err(e)) if e.starts_with(ETCD_UNREACHABLE) => Reply::error(format!(
                    "{e}; nothing changed. To apply it on this node only until etcd is back, run the same command with --local (kept in this node's admin state; status shows it as local)"
                )),
                Ok(Err(e)) => Reply::error(format!("{e}; nothing changed")),
                Err(_) => Reply::error("the agent is stopping; nothing changed"),
            };
            let _ = msg.reply.send(reply);
        });
    }

    /// Answers one control request.
    pub fn control_request(&mut self, request: Request) -> Reply {
        let now = SystemTime::now();
        if request == Request::Status {
            return Reply {
                ok: true,
                status: Some(self.status()),
                ..Reply::default()
            };
        }
        let (name, address, records, change) = match self.resolve(request) {
            Ok(target) => target,
            Err(error) => return Reply::error(error),
        };
        let backup = self.admin.state.clone();
        let done = match change {
            Change::Set(mode, until) => {
                let until = until.map(|Until(t)| t);
                if let Some(t) = until.filter(|t| *t <= now) {
                    return Reply::error(format!(
                        "until {}: that is in the past",
                        humantime::format_rfc3339_seconds(t)
                    ));
                }
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
                let answer = self
                    .publication
                    .held(&record.name, record.rtype.code())
                    .map_or("none yet (first checks running)".to_string(), |e| {
                        e.answer.to_string()
                    });
                format!("{} {} answer: {answer}", record.name, record.rtype)
            })
            .collect();
        Reply::ok(format!(
            "{name} {address}: {done} ({persisted}); {}",
            answers.join("; ")
        ))
    }
}

impl<P: Publisher> Agent<P> {
    /// The record name, endpoint, records and change a drain or force
    /// request is about, or why it is refused.
    fn resolve(&self, request: Request) -> Result<(String, IpAddr, Vec<usize>, Change), String> {
        let (record, endpoint, change) = match request {
            Request::Status => return Err("not an override".to_string()),
            // The control socket gives these to the daemon, never to the loop.
            Request::Handover { .. } => {
                return Err("a handover goes through the daemon, not the agent's loop".to_string());
            }
            Request::Drain {
                record,
                endpoint,
                until,
                ..
            } => (record, endpoint, Change::Set(Mode::Drain, until)),
            Request::Undrain {
                record, endpoint, ..
            } => (record, endpoint, Change::Clear(&[Mode::Drain])),
            Request::Force {
                state,
                record,
                endpoint,
                until,
                ..
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
            return Err(format!("{endpoint:?} is not an IP address"));
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
            return Err(if known.is_empty() {
                format!("no record named {name}")
            } else {
                format!(
                    "{address} is not an endpoint of {name} (endpoints: {})",
                    known.join(", ")
                )
            });
        }
        Ok((name, address, records, change))
    }
}

/// What a control request does to an endpoint's override.
enum Change {
    Set(Mode, Option<Until>),
    Clear(&'static [Mode]),
}

/// An override's stable name in events.
fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Drain => "drain",
        Mode::ForceUp => "force_up",
        Mode::ForceDown => "force_down",
        Mode::Normal => "normal",
    }
}

fn admin_text(mode: Mode) -> &'static str {
    match mode {
        Mode::Drain => "drained",
        Mode::ForceUp => "forced up",
        Mode::ForceDown => "forced down",
        Mode::Normal => "normal",
    }
}
