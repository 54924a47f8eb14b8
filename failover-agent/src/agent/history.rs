//! The last state changes of every endpoint, kept from the agent's own
//! [`Transition`] events for status (the CLI, the JSON API, the page).

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::events::{Event, Events, Transition};

/// How many transitions are kept per (record, type, endpoint).
pub const HISTORY_PER_ENDPOINT: usize = 20;

/// Per record ("NAME TYPE"), then per endpoint: its last transitions,
/// oldest first. Keyed by record first so that a status of 10,000
/// endpoints looks each record up once.
type Kept = HashMap<String, HashMap<IpAddr, VecDeque<Transition>>>;

fn record_key(record: &str, rtype: &str) -> String {
    format!("{record} {rtype}")
}

#[derive(Clone, Default)]
pub struct History {
    kept: Arc<Mutex<Kept>>,
    /// A reload was applied since the last [`History::retain`]: endpoints
    /// may have gone.
    reloaded: Arc<AtomicBool>,
}

impl History {
    /// A history fed by every transition `events` carries from now on.
    pub fn observing(events: &Events) -> History {
        let history = History::default();
        let (kept, reloaded) = (history.kept.clone(), history.reloaded.clone());
        events.observe(move |event: &Event| {
            if let Event::Reload(r) = event
                && r.error.is_none()
            {
                reloaded.store(true, Ordering::Relaxed);
            }
            if let Event::Transition(t) = event {
                let mut kept = kept.lock().unwrap_or_else(|e| e.into_inner());
                let list = kept
                    .entry(record_key(&t.record, &t.rtype))
                    .or_default()
                    .entry(t.endpoint)
                    .or_default();
                if list.len() == HISTORY_PER_ENDPOINT {
                    list.pop_front();
                }
                list.push_back(t.clone());
            }
        });
        history
    }

    /// The transitions kept for one endpoint of one record, oldest first.
    pub fn of(&self, record: &str, rtype: &str, endpoint: IpAddr) -> Vec<Transition> {
        self.of_record(record, rtype)
            .remove(&endpoint)
            .map(Vec::from)
            .unwrap_or_default()
    }

    /// The transitions kept for every endpoint of one record.
    pub fn of_record(&self, record: &str, rtype: &str) -> HashMap<IpAddr, VecDeque<Transition>> {
        let kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        kept.get(&record_key(record, rtype))
            .cloned()
            .unwrap_or_default()
    }

    /// Whether a reload was applied since the last [`History::retain`].
    pub fn reloaded(&self) -> bool {
        self.reloaded.load(Ordering::Relaxed)
    }

    /// Forgets endpoints no longer configured (after a reload): `present`
    /// holds every configured (record key, endpoint).
    pub fn retain(&self, present: &HashSet<(String, IpAddr)>) {
        self.reloaded.store(false, Ordering::Relaxed);
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        kept.retain(|record, endpoints| {
            endpoints.retain(|e, _| present.contains(&(record.clone(), *e)));
            !endpoints.is_empty()
        });
    }

    /// What [`History::retain`] takes for one configured endpoint.
    pub fn present(record: &str, rtype: &str, endpoint: IpAddr) -> (String, IpAddr) {
        (record_key(record, rtype), endpoint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::EndpointState;
    use std::time::SystemTime;

    fn transition(n: usize, endpoint: &str) -> Event {
        Event::Transition(Transition {
            at: SystemTime::UNIX_EPOCH,
            record: "www.t.".into(),
            rtype: "A".into(),
            endpoint: endpoint.parse().unwrap(),
            from: EndpointState::Healthy,
            to: EndpointState::Unhealthy,
            reason: format!("change {n}"),
        })
    }

    #[test]
    fn keeps_the_last_twenty_per_endpoint_oldest_first() {
        let events = Events::new();
        let history = History::observing(&events);
        for n in 0..25 {
            events.emit(transition(n, "192.0.2.1"));
        }
        events.emit(transition(99, "192.0.2.2"));
        let one = history.of("www.t.", "A", "192.0.2.1".parse().unwrap());
        assert_eq!(one.len(), HISTORY_PER_ENDPOINT);
        assert_eq!(one[0].reason, "change 5");
        assert_eq!(one[19].reason, "change 24");
        let two = history.of("www.t.", "A", "192.0.2.2".parse().unwrap());
        assert_eq!(two.len(), 1);
        assert!(
            history
                .of("www.t.", "AAAA", "192.0.2.2".parse().unwrap())
                .is_empty()
        );
        assert!(!history.reloaded());
        events.emit(Event::Reload(crate::events::Reload {
            at: SystemTime::UNIX_EPOCH,
            error: None,
            changes: None,
        }));
        assert!(history.reloaded(), "a reload may have removed endpoints");
        let present = HashSet::from([History::present(
            "www.t.",
            "A",
            "192.0.2.2".parse().unwrap(),
        )]);
        history.retain(&present);
        assert!(!history.reloaded());
        assert!(
            history
                .of("www.t.", "A", "192.0.2.1".parse().unwrap())
                .is_empty()
        );
        assert_eq!(
            history
                .of("www.t.", "A", "192.0.2.2".parse().unwrap())
                .len(),
            1
        );
    }
}
