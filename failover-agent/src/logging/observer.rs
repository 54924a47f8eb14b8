//! The log's events observer: one log event per transition, answer change,
//! reload, override and cluster standing change, with stable fields (`event`, `record`, `type`,
//! `endpoint`, `from`, `to`, `reason`, ...) and a message that reads like
//! the lines the agent always wrote. Lines about one endpoint's transitions,
//! or one record's answer changes, are rate limited ([`super::limit`]).

use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

use tracing::{error, info, warn};

use super::limit::{LINES_PER_WINDOW, LogLimit, WINDOW};
use crate::events::{AnswerChange, ClusterStanding, Event, Observer, Override, Reload, Transition};

/// The target of every event this observer logs.
pub const TARGET: &str = "failover_agent::events";

/// What a rate-limited line is about: (record name lowercased, type) and the
/// endpoint for transitions, none for answer changes.
type About = (String, String, Option<IpAddr>);

pub struct LogObserver {
    limit: Mutex<LogLimit<About>>,
}

impl Default for LogObserver {
    fn default() -> Self {
        Self::new()
    }
}

impl LogObserver {
    pub fn new() -> Self {
        LogObserver {
            limit: Mutex::new(LogLimit::new(LINES_PER_WINDOW, WINDOW)),
        }
    }

    /// Says how many lines were left out about things that then went quiet
    /// (their window is over): call it about once a second.
    pub fn summarise(&self) {
        let expired = self
            .limit
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .expired(Instant::now());
        for ((record, rtype, endpoint), left_out) in expired {
            let about = match endpoint {
                Some(endpoint) => format!("{endpoint} transitions"),
                None => "answer changes".to_string(),
            };
            info!(
                target: TARGET,
                "{record} {rtype}: {left_out} log lines about {about} left out in the last {}s",
                WINDOW.as_secs()
            );
        }
    }

    /// Whether a line about `about` may go out now, and how many were left
    /// out before it.
    fn admit(&self, about: About) -> Option<u64> {
        self.limit
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .admit(&about, Instant::now())
    }

    fn transition(&self, t: &Transition) {
        let about = (
            t.record.to_ascii_lowercase(),
            t.rtype.clone(),
            Some(t.endpoint),
        );
        let Some(left_out) = self.admit(about) else {
            return;
        };
        info!(
            target: TARGET,
            event = "transition",
            record = %t.record,
            "type" = %t.rtype,
            endpoint = %t.endpoint,
            from = t.from.name(),
            to = t.to.name(),
            reason = %t.reason,
            left_out,
            "{} {} {} {} -> {} ({}){}",
            t.record,
            t.rtype,
            t.endpoint,
            t.from,
            t.to,
            t.reason,
            left_out_note(left_out)
        );
    }

    fn answer_change(&self, a: &AnswerChange) {
        let about = (a.record.to_ascii_lowercase(), a.rtype.clone(), None);
        let Some(left_out) = self.admit(about) else {
            return;
        };
        // NODATA and SERVFAIL have no TTL of their own (the SOA's rules).
        let ttl = if a.addresses.is_empty() {
            String::new()
        } else {
            format!(" ttl {}", a.ttl)
        };
        info!(
            target: TARGET,
            event = "answer_change",
            record = %a.record,
            "type" = %a.rtype,
            answer = %a.answer,
            previous = a.previous.as_deref(),
            ttl = a.ttl,
            all_down = a.all_down,
            degraded = a.degraded,
            left_out,
            "{} {} answer: {}{ttl} (was {}){}{}",
            a.record,
            a.rtype,
            a.answer,
            a.previous.as_deref().unwrap_or("nothing"),
            if a.all_down {
                " [all down]"
            } else if a.degraded {
                " [degraded]"
            } else {
                ""
            },
            left_out_note(left_out)
        );
    }

    fn reload(&self, r: &Reload) {
        match (&r.error, &r.changes) {
            (Some(error), _) => error!(
                target: TARGET,
                event = "reload",
                result = "refused",
                error = %error,
                "reload refused, the running configuration stays: {error}"
            ),
            (None, changes) => {
                let c = changes.unwrap_or_default();
                info!(
                    target: TARGET,
                    event = "reload",
                    result = "applied",
                    records = c.records,
                    zones = c.zones,
                    records_added = c.records_added,
                    records_kept = c.records_kept,
                    records_removed = c.records_removed,
                    probes_started = c.probes_started,
                    probes_stopped = c.probes_stopped,
                    probes_kept = c.probes_kept,
                    "reload: {} records ({} new, {} kept, {} removed), {} zones; probes: {} started, {} stopped, {} kept with their state",
                    c.records,
                    c.records_added,
                    c.records_kept,
                    c.records_removed,
                    c.zones,
                    c.probes_started,
                    c.probes_stopped,
                    c.probes_kept
                );
            }
        }
    }

    fn override_(&self, o: &Override) {
        let until = o
            .until
            .map(|t| humantime::format_rfc3339_seconds(t).to_string());
        let what = match o.mode {
            Some(mode) => format!(
                "{}{}",
                match mode {
                    "drain" => "drained",
                    "force_up" => "forced up",
                    "force_down" => "forced down",
                    other => other,
                },
                until
                    .as_deref()
                    .map_or(String::new(), |t| format!(" until {t}"))
            ),
            None => "back to its health checks".to_string(),
        };
        info!(
            target: TARGET,
            event = "override",
            record = %o.record,
            "type" = %o.rtype,
            endpoint = %o.endpoint,
            mode = o.mode,
            until = until.as_deref(),
            origin = %o.origin,
            "{} {} {}: {what} ({})",
            o.record,
            o.rtype,
            o.endpoint,
            o.origin
        );
    }
}

impl LogObserver {
    /// Going alone is a warning (this node no longer decides with the
    /// others); joining and rejoining are news.
    fn cluster(&self, c: &ClusterStanding) {
        let live = c.live.join(" ");
        if c.to == "alone" {
            warn!(
                target: TARGET,
                event = "cluster",
                node = %c.node,
                from = %c.from,
                to = %c.to,
                live = %live,
                reason = %c.reason,
                "cluster: {}",
                c.reason
            );
        } else {
            info!(
                target: TARGET,
                event = "cluster",
                node = %c.node,
                from = %c.from,
                to = %c.to,
                live = %live,
                reason = %c.reason,
                "cluster: {}",
                c.reason
            );
        }
    }
}

impl Observer for LogObserver {
    fn observe(&self, event: &Event) {
        match event {
            Event::Transition(t) => self.transition(t),
            Event::AnswerChange(a) => self.answer_change(a),
            Event::Reload(r) => self.reload(r),
            Event::Override(o) => self.override_(o),
            Event::Cluster(c) => self.cluster(c),
        }
    }
}

/// The tail of a rate-limited line: how many like it were left out.
fn left_out_note(left_out: u64) -> String {
    match left_out {
        0 => String::new(),
        n => format!(
            " ({n} similar lines left out in the last {}s)",
            WINDOW.as_secs()
        ),
    }
}
