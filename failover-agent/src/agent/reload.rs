//! Applying a new configuration to the running agent without dropping
//! queries: probes still wanted keep running with their state (same check,
//! same target), new ones start, the others stop; records keep their
//! answers until their new endpoints have been checked; the publication
//! path switches the zone tree, withdraws what is gone and declares the new
//! NODATA entries.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::SystemTime;

use log::warn;
use tokio::sync::mpsc;

use super::{Agent, RecordState};
use crate::checks::health::Health;
use crate::config::Config;
use crate::events::{EndpointState, Event, Events, Reload, ReloadChanges};
use crate::publish::Publisher;

/// Hands new configurations to a running agent ([`Agent::reloader`]).
#[derive(Clone)]
pub struct Reloader {
    tx: mpsc::UnboundedSender<Config>,
    events: Events,
}

impl Reloader {
    /// Queues `config` (already validated) for the agent's loop to apply;
    /// false when the agent is gone.
    pub fn reload(&self, config: Config) -> bool {
        self.tx.send(config).is_ok()
    }

    /// Reports a reload refused before it reached the agent (the file did
    /// not load or validate); the running configuration stays.
    pub fn refused(&self, error: &anyhow::Error) {
        self.events.emit(Event::Reload(Reload {
            at: SystemTime::now(),
            error: Some(format!("{error:#}")),
            changes: None,
        }));
    }
}

impl<P: Publisher> Agent<P> {
    /// A handle that makes the running agent apply a new configuration.
    pub fn reloader(&self) -> Reloader {
        Reloader {
            tx: self.reload_tx.clone(),
            events: self.events.clone(),
        }
    }

    /// Applies a new (validated) configuration.
    pub fn apply_config(&mut self, new: Config) {
        let old = std::mem::replace(&mut self.config, new);
        self.cluster_rekey();
        let report = self.sync_probes();
        // Keep each surviving record's state by name and type.
        let mut old_states: HashMap<(String, u16), (Vec<IpAddr>, RecordState)> = old
            .records
            .iter()
            .zip(std::mem::take(&mut self.records))
            .map(|(r, state)| {
                let addresses = r.endpoints.iter().map(|e| e.address).collect();
                (
                    (r.name.to_ascii_lowercase(), r.rtype.code()),
                    (addresses, state),
                )
            })
            .collect();
        let mut records = Vec::with_capacity(self.config.records.len());
        let mut kept = 0;
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
            let mut state = match old_states.remove(&key) {
                Some((addresses, mut state)) => {
                    kept += 1;
                    // Endpoints are matched by address: a new one has not
                    // been reported yet.
                    state.reported = record
                        .endpoints
                        .iter()
                        .map(|e| {
                            addresses
                                .iter()
                                .position(|a| *a == e.address)
                                .map_or(EndpointState::Unknown, |i| state.reported[i])
                        })
                        .collect();
                    state
                }
                None => RecordState::new(record.endpoints.len()),
            };
            state.health = health;
            records.push(state);
        }
        let (added, removed) = (records.len() - kept, old_states.len());
        self.records = records;
        self.cluster_reloaded();
        self.unknown = self
            .records
            .iter()
            .map(|s| s.health.iter().filter(|h| **h == Health::Unknown).count())
            .sum();
        self.publication.configure(&self.config);
        for warning in self.config.warnings() {
            warn!("{warning}");
        }
        self.events.emit(Event::Reload(Reload {
            at: SystemTime::now(),
            error: None,
            changes: Some(ReloadChanges {
                records: self.config.records.len(),
                zones: self.config.zones.len(),
                records_added: added,
                records_kept: kept,
                records_removed: removed,
                probes_started: report.started,
                probes_stopped: report.stopped,
                probes_kept: report.kept,
            }),
        }));
        for r in 0..self.records.len() {
            self.report_states(r, "reload");
        }
        if self.first_round_done {
            for r in 0..self.records.len() {
                self.update(r);
            }
        }
        drop(old);
        return_freed_memory();
    }
}

/// Hands the memory a reload freed (the old configuration, the parser's
/// work on the new file, on several threads' heaps) back to the system:
/// glibc keeps it otherwise, and a reload of a large file left the agent
/// at over three times its size.
fn return_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory of the allocator's heaps.
    unsafe {
        libc::malloc_trim(0);
    }
}
