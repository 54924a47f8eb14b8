//! The last state changes of every endpoint, kept from the agent's own
//! [`Transition`] events for status (the CLI, the JSON API, the page).

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use crate::events::{Event, Events, Transition};

/// How many transitions are kept per (record, type, endpoint).
pub const HISTORY_PER_ENDPOINT: usize = 20;

type Key = (String, String, IpAddr);

/// Per (record name, type, endpoint): its last transitions, oldest first.
#[derive(Clone, Default)]
pub struct History {
    kept: Arc<Mutex<HashMap<Key, VecDeque<Transition>>>>,
}

impl History {
    /// A history fed by every transition `events` carries from now on.
    pub fn observing(events: &Events) -> History {
        let history = History::default();
        let kept = history.kept.clone();
        events.observe(move |event: &Event| {
            if let Event::Transition(t) = event {
                let mut kept = kept.lock().unwrap_or_else(|e| e.into_inner());
                let list = kept
                    .entry((t.record.clone(), t.rtype.clone(), t.endpoint))
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
        let kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        kept.get(&(record.to_string(), rtype.to_string(), endpoint))
            .map(|l| l.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Forgets endpoints no longer configured (after a reload).
    pub fn retain(&self, present: &HashSet<(&str, &str, IpAddr)>) {
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        kept.retain(|(r, t, e), _| present.contains(&(r.as_str(), t.as_str(), *e)));
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
        let present = HashSet::from([("www.t.", "A", "192.0.2.2".parse().unwrap())]);
        history.retain(&present);
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
