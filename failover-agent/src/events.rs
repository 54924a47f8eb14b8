//! What happened, as values: an endpoint's state changed, a record's answer
//! changed, a reload was applied or refused, an override began or ended,
//! this node joined its cluster, went alone or rejoined.
//!
//! The agent's loop emits each once, through [`Events`]; every observer
//! (metrics, the status history, notify hooks, the log) takes them from
//! there instead of reaching into the loop. Observers run inside the loop,
//! so they must be quick and never block: count, push into a bounded
//! queue, return.

use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use serde::Serialize;

/// An endpoint's state as the policy sees it: its health, unless an
/// operator's override says otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EndpointState {
    /// Not checked yet.
    Unknown,
    Healthy,
    Unhealthy,
    /// Drained by an operator: out of answers while others are usable.
    Drained,
    /// Forced up or down by an operator, whatever its checks say.
    ForcedUp,
    ForcedDown,
}

impl EndpointState {
    /// Every state, for metrics that show each as its own series.
    pub const ALL: [EndpointState; 6] = [
        EndpointState::Unknown,
        EndpointState::Healthy,
        EndpointState::Unhealthy,
        EndpointState::Drained,
        EndpointState::ForcedUp,
        EndpointState::ForcedDown,
    ];

    /// The stable name used in logs, JSON, metrics and hook environments.
    pub fn name(self) -> &'static str {
        match self {
            EndpointState::Unknown => "unknown",
            EndpointState::Healthy => "healthy",
            EndpointState::Unhealthy => "unhealthy",
            EndpointState::Drained => "drained",
            EndpointState::ForcedUp => "forced_up",
            EndpointState::ForcedDown => "forced_down",
        }
    }

    /// Whether the endpoint may be answered with (a drained one only when
    /// nothing else is usable, so it counts as not up).
    pub fn is_up(self) -> bool {
        matches!(self, EndpointState::Healthy | EndpointState::ForcedUp)
    }
}

impl fmt::Display for EndpointState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One endpoint of one record changed state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Transition {
    #[serde(with = "unix_seconds")]
    pub at: SystemTime,
    /// Record name (absolute, as configured) and type ("A", "AAAA").
    pub record: String,
    #[serde(rename = "type")]
    pub rtype: String,
    pub endpoint: IpAddr,
    pub from: EndpointState,
    pub to: EndpointState,
    /// Why: the check's verdict ("3 checks failed: connection refused") or
    /// the override's origin ("control socket").
    pub reason: String,
}

/// A record's published answer changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AnswerChange {
    #[serde(with = "unix_seconds")]
    pub at: SystemTime,
    pub record: String,
    #[serde(rename = "type")]
    pub rtype: String,
    /// The answer now and before, as shown in logs ("192.0.2.1 192.0.2.2",
    /// "NODATA", "SERVFAIL"); `previous` is None for a first answer.
    pub answer: String,
    pub previous: Option<String>,
    /// The addresses answered now (empty for NODATA and SERVFAIL).
    pub addresses: Vec<IpAddr>,
    pub ttl: u32,
    /// No endpoint is usable: the answer is `when_all_down`'s.
    pub all_down: bool,
    /// Not every endpoint is healthy: the answer does without some (the
    /// record's `degraded_ttl` applies when set).
    #[serde(default)]
    pub degraded: bool,
}

/// A configuration reload was applied or refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Reload {
    #[serde(with = "unix_seconds")]
    pub at: SystemTime,
    /// None when applied; the reason it was refused otherwise.
    pub error: Option<String>,
    /// What an applied reload changed; None when refused.
    pub changes: Option<ReloadChanges>,
}

/// What an applied reload changed: records by name and type, probes by
/// check and target.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ReloadChanges {
    /// Records and zones in the new configuration.
    pub records: usize,
    pub zones: usize,
    pub records_added: usize,
    pub records_kept: usize,
    pub records_removed: usize,
    pub probes_started: usize,
    pub probes_stopped: usize,
    /// Probes that go on with their rise/fall state.
    pub probes_kept: usize,
}

/// An operator's override on one endpoint began, changed or ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Override {
    #[serde(with = "unix_seconds")]
    pub at: SystemTime,
    pub record: String,
    #[serde(rename = "type")]
    pub rtype: String,
    pub endpoint: IpAddr,
    /// "drain", "force_up", "force_down", or None when it ended.
    pub mode: Option<&'static str>,
    #[serde(with = "unix_seconds_opt")]
    pub until: Option<SystemTime>,
    /// Where it came from ("control socket", "admin state file").
    pub origin: String,
}

/// With `[cluster]`: this node's standing changed: it joined etcd, went
/// alone (etcd out of reach for `lease_ttl`: its own checks decide) or
/// rejoined.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ClusterStanding {
    #[serde(with = "unix_seconds")]
    pub at: SystemTime,
    /// This node's name (`[cluster] node`).
    pub node: String,
    /// "joining", "joined" or "alone": before and now.
    pub from: String,
    pub to: String,
    /// The live nodes as this node sees them now (none when alone).
    pub live: Vec<String>,
    /// Why, in words ("no answer from etcd for 3s (lease_ttl): ...").
    pub reason: String,
}

/// Something that happened, for every observer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    Transition(Transition),
    AnswerChange(AnswerChange),
    Reload(Reload),
    Override(Override),
    Cluster(ClusterStanding),
}

/// Which kind of event: what an observer subscribes to (`[[notify]]
/// events`), by the same name as the event's `event` field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    Transition,
    AnswerChange,
    Reload,
    Override,
    Cluster,
}

impl EventKind {
    pub const ALL: [EventKind; 5] = [
        EventKind::Transition,
        EventKind::AnswerChange,
        EventKind::Reload,
        EventKind::Override,
        EventKind::Cluster,
    ];

    /// The stable name: the `event` field of the event's JSON form.
    pub fn name(self) -> &'static str {
        match self {
            EventKind::Transition => "transition",
            EventKind::AnswerChange => "answer_change",
            EventKind::Reload => "reload",
            EventKind::Override => "override",
            EventKind::Cluster => "cluster",
        }
    }

    pub fn from_name(name: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.name() == name)
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Event {
    pub fn kind(&self) -> EventKind {
        match self {
            Event::Transition(_) => EventKind::Transition,
            Event::AnswerChange(_) => EventKind::AnswerChange,
            Event::Reload(_) => EventKind::Reload,
            Event::Override(_) => EventKind::Override,
            Event::Cluster(_) => EventKind::Cluster,
        }
    }
}

/// One observer of events. Runs on the agent's loop: must not block.
pub trait Observer: Send + Sync {
    fn observe(&self, event: &Event);
}

impl<F: Fn(&Event) + Send + Sync> Observer for F {
    fn observe(&self, event: &Event) {
        self(event)
    }
}

/// Where events go: every observer registered, in registration order.
/// Cloned handles share the observers.
#[derive(Clone, Default)]
pub struct Events {
    observers: Arc<RwLock<Vec<Arc<dyn Observer>>>>,
}

impl Events {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an observer for every event from now on.
    pub fn observe(&self, observer: impl Observer + 'static) {
        self.observers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(Arc::new(observer));
    }

    /// Hands `event` to every observer.
    pub fn emit(&self, event: Event) {
        for observer in self
            .observers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            observer.observe(&event);
        }
    }
}

impl fmt::Debug for Events {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Events").finish_non_exhaustive()
    }
}

/// Times as seconds since the Unix epoch, with fractions (JSON, hooks).
pub fn unix_time(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

mod unix_seconds {
    use std::time::SystemTime;

    pub fn serialize<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(super::unix_time(*t))
    }
}

mod unix_seconds_opt {
    use std::time::SystemTime;

    pub fn serialize<S: serde::Serializer>(
        t: &Option<SystemTime>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_f64(super::unix_time(*t)),
            None => s.serialize_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn every_observer_sees_every_event_in_order() {
        let events = Events::new();
        let seen = Arc::new(Mutex::new(Vec::new()));
        for n in 0..2 {
            let seen = seen.clone();
            events.observe(move |e: &Event| {
                if let Event::Reload(r) = e {
                    seen.lock().unwrap().push((n, r.error.clone()));
                }
            });
        }
        let at = SystemTime::UNIX_EPOCH;
        events.clone().emit(Event::Reload(Reload {
            at,
            error: None,
            changes: Some(ReloadChanges::default()),
        }));
        events.emit(Event::Reload(Reload {
            at,
            error: Some("bad".into()),
            changes: None,
        }));
        assert_eq!(
            *seen.lock().unwrap(),
            vec![
                (0, None),
                (1, None),
                (0, Some("bad".into())),
                (1, Some("bad".into()))
            ]
        );
    }

    #[test]
    fn events_serialise_with_stable_names() {
        let t = Event::Transition(Transition {
            at: SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1500),
            record: "www.example.test.".into(),
            rtype: "A".into(),
            endpoint: "192.0.2.1".parse().unwrap(),
            from: EndpointState::Healthy,
            to: EndpointState::Unhealthy,
            reason: "connection refused".into(),
        });
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            r#"{"event":"transition","at":1.5,"record":"www.example.test.","type":"A","endpoint":"192.0.2.1","from":"healthy","to":"unhealthy","reason":"connection refused"}"#
        );
    }

    #[test]
    fn a_cluster_standing_serialises_with_stable_names() {
        let e = Event::Cluster(ClusterStanding {
            at: SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(2),
            node: "ns1".into(),
            from: "joined".into(),
            to: "alone".into(),
            live: vec![],
            reason: "no answer from etcd for 3s (lease_ttl)".into(),
        });
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"event":"cluster","at":2.0,"node":"ns1","from":"joined","to":"alone","live":[],"reason":"no answer from etcd for 3s (lease_ttl)"}"#
        );
        assert_eq!(e.kind().name(), "cluster");
    }

    #[test]
    fn kinds_are_named_as_the_json_event_field() {
        let at = SystemTime::UNIX_EPOCH;
        let reload = Event::Reload(Reload {
            at,
            error: None,
            changes: None,
        });
        let json = serde_json::to_value(&reload).unwrap();
        assert_eq!(json["event"], reload.kind().name());
        for kind in EventKind::ALL {
            assert_eq!(EventKind::from_name(kind.name()), Some(kind));
        }
        assert_eq!(EventKind::from_name("answer-change"), None);
    }
}
