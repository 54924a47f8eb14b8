//! The table of open TCP connections: who holds how many, and who leaves
//! when there is no room.
//!
//! Refusing newcomers when the table is full would let one client that holds
//! idle connections (and reconnects as fast as they are closed) shut every
//! other client out of TCP, and with it the fallback after a truncated UDP
//! answer. Instead:
//!
//! - each source prefix (IPv4 /24, IPv6 /56) holds at most
//!   [`per_prefix_share`] connections: a newcomer beyond that closes the
//!   idlest connection of its own prefix;
//! - when the whole table is full (`tcp_max_connections`), a newcomer closes
//!   the idlest connection of the prefix that holds the most.
//!
//! "Idlest" is the connection whose last answer (or acceptance) is oldest.
//! A closed connection leaves the table at once, so the newcomer takes its
//! place; its task sees the signal and closes the socket between queries
//! (never in the middle of writing an answer).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use log::warn;
use tokio::sync::Notify;

/// Source prefix lengths connections are grouped by.
const IPV4_PREFIX: u32 = 24;
const IPV6_PREFIX: u32 = 56;
/// At most one eviction log line per this long.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// How many connections one source prefix may hold: an eighth of the global
/// cap, but at least 4 (a resolver opens a few at once) and never more than
/// the cap.
pub fn per_prefix_share(max_connections: u32) -> u32 {
    (max_connections / 8).max(4).min(max_connections).max(1)
}

/// The source prefix `addr` counts under.
pub fn prefix_of(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(v4) => {
            let mask = u32::MAX << (32 - IPV4_PREFIX);
            IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask))
        }
        IpAddr::V6(v6) => {
            let mask = u128::MAX << (128 - IPV6_PREFIX);
            IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
        }
    }
}

/// What an admitted connection holds: dropping it leaves the table.
pub struct Slot {
    table: Arc<ConnectionTable>,
    id: u64,
    /// Signalled when the connection is evicted.
    pub evicted: Arc<Notify>,
    /// Milliseconds since the table started, at the last answer.
    last_active: Arc<AtomicU64>,
}

impl Slot {
    /// Records an answer: the connection is busy, not idle.
    pub fn touch(&self) {
        self.last_active
            .store(self.table.now_ms(), Ordering::Relaxed);
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.table.remove(self.id);
    }
}

struct Entry {
    prefix: IpAddr,
    evicted: Arc<Notify>,
    last_active: Arc<AtomicU64>,
}

#[derive(Default)]
struct Inner {
    next_id: u64,
    entries: HashMap<u64, Entry>,
    /// Connection ids by prefix.
    prefixes: HashMap<IpAddr, Vec<u64>>,
    last_log: Option<Instant>,
    unlogged: u64,
}

/// The open TCP connections of every listener.
pub struct ConnectionTable {
    max_connections: usize,
    per_prefix: usize,
    start: Instant,
    inner: Mutex<Inner>,
}

/// Why a connection was evicted (for the log).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Eviction {
    /// Its prefix was at its share.
    PrefixShare,
    /// The table was full and its prefix held the most.
    TableFull,
}

impl ConnectionTable {
    pub fn new(max_connections: u32) -> Arc<ConnectionTable> {
        Arc::new(ConnectionTable {
            max_connections: max_connections.max(1) as usize,
            per_prefix: per_prefix_share(max_connections) as usize,
            start: Instant::now(),
            inner: Mutex::new(Inner::default()),
        })
    }

    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    /// How many connections are in the table.
    pub fn open(&self) -> usize {
        self.inner.lock().unwrap().entries.len()
    }

    /// Admits a connection from `peer`, evicting another if there is no
    /// room. Returns the slot and the eviction made, if any.
    pub fn admit(self: &Arc<Self>, peer: SocketAddr) -> (Slot, Option<Eviction>) {
        let prefix = prefix_of(peer.ip());
        let now = self.now_ms();
        let mut inner = self.inner.lock().unwrap();
        let own = inner.prefixes.get(&prefix).map_or(0, Vec::len);
        let eviction = if own >= self.per_prefix {
            Some((prefix, Eviction::PrefixShare))
        } else if inner.entries.len() >= self.max_connections {
            let heaviest = inner
                .prefixes
                .iter()
                .max_by_key(|(_, ids)| ids.len())
                .map(|(p, _)| *p);
            heaviest.map(|p| (p, Eviction::TableFull))
        } else {
            None
        };
        let eviction = eviction.and_then(|(victim_prefix, why)| {
            let victim = inner.prefixes.get(&victim_prefix).and_then(|ids| {
                ids.iter()
                    .copied()
                    .min_by_key(|id| inner.entries[id].last_active.load(Ordering::Relaxed))
            })?;
            let entry = Self::remove_locked(&mut inner, victim)?;
            // A stored permit: seen even if the task is not waiting yet.
            entry.evicted.notify_one();
            Some(why)
        });
        if let Some(why) = eviction {
            self.log_eviction(&mut inner, why);
        }
        let id = inner.next_id;
        inner.next_id += 1;
        let evicted = Arc::new(Notify::new());
        let last_active = Arc::new(AtomicU64::new(now));
        inner.entries.insert(
            id,
            Entry {
                prefix,
                evicted: evicted.clone(),
                last_active: last_active.clone(),
            },
        );
        inner.prefixes.entry(prefix).or_default().push(id);
        drop(inner);
        (
            Slot {
                table: self.clone(),
                id,
                evicted,
                last_active,
            },
            eviction,
        )
    }

    fn log_eviction(&self, inner: &mut Inner, why: Eviction) {
        inner.unlogged += 1;
        let now = Instant::now();
        if inner.last_log.is_some_and(|t| now - t < LOG_EVERY) {
            return;
        }
        let reason = match why {
            Eviction::PrefixShare => format!(
                "a source prefix held its share of {} connections",
                self.per_prefix
            ),
            Eviction::TableFull => format!(
                "{} connections were open (tcp_max_connections)",
                self.max_connections
            ),
        };
        warn!(
            "TCP: closed {} idle connection(s) to admit new ones; last because {reason}",
            inner.unlogged
        );
        inner.unlogged = 0;
        inner.last_log = Some(now);
    }

    fn remove(&self, id: u64) {
        let mut inner = self.inner.lock().unwrap();
        Self::remove_locked(&mut inner, id);
    }

    fn remove_locked(inner: &mut Inner, id: u64) -> Option<Entry> {
        let entry = inner.entries.remove(&id)?;
        if let Some(ids) = inner.prefixes.get_mut(&entry.prefix) {
            ids.retain(|&i| i != id);
            if ids.is_empty() {
                inner.prefixes.remove(&entry.prefix);
            }
        }
        Some(entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(s: &str) -> SocketAddr {
        SocketAddr::new(s.parse().unwrap(), 5353)
    }

    #[test]
    fn prefixes() {
        assert_eq!(
            prefix_of("192.0.2.77".parse().unwrap()),
            "192.0.2.0".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            prefix_of("2001:db8:1:2ff:1::9".parse().unwrap()),
            "2001:db8:1:200::".parse::<IpAddr>().unwrap()
        );
        assert_eq!(per_prefix_share(256), 32);
        assert_eq!(per_prefix_share(16), 4);
        assert_eq!(per_prefix_share(2), 2);
        assert_eq!(per_prefix_share(1), 1);
    }

    #[test]
    fn a_prefix_over_its_share_evicts_its_own_idlest() {
        let table = ConnectionTable::new(16);
        let mut slots: Vec<Slot> = (0..4)
            .map(|i| table.admit(peer(&format!("10.0.0.{i}"))).0)
            .collect();
        let other = table.admit(peer("10.0.1.1")).0;
        // All as idle as each other, until the first answers something.
        std::thread::sleep(Duration::from_millis(5));
        slots[0].touch();
        let (new, why) = table.admit(peer("10.0.0.9"));
        assert_eq!(why, Some(Eviction::PrefixShare));
        assert_eq!(table.open(), 5);
        // The idlest of the prefix was slot 1 (accepted earliest untouched).
        assert!(
            table
                .inner
                .lock()
                .unwrap()
                .entries
                .contains_key(&slots[0].id)
        );
        assert!(
            !table
                .inner
                .lock()
                .unwrap()
                .entries
                .contains_key(&slots[1].id)
        );
        assert!(table.inner.lock().unwrap().entries.contains_key(&other.id));
        slots.push(new);
        drop(slots);
        assert_eq!(table.open(), 1);
    }

    #[test]
    fn a_full_table_evicts_from_the_heaviest_prefix() {
        let table = ConnectionTable::new(8);
        let heavy: Vec<Slot> = (0..4)
            .map(|i| table.admit(peer(&format!("10.0.0.{i}"))).0)
            .collect();
        let light: Vec<Slot> = (0..4)
            .map(|i| table.admit(peer(&format!("10.0.{}.1", i + 1))).0)
            .collect();
        assert_eq!(table.open(), 8);
        let (_new, why) = table.admit(peer("10.9.9.9"));
        assert_eq!(why, Some(Eviction::TableFull));
        assert_eq!(table.open(), 8, "the cap holds");
        let inner = table.inner.lock().unwrap();
        assert!(light.iter().all(|s| inner.entries.contains_key(&s.id)));
        assert_eq!(
            heavy
                .iter()
                .filter(|s| inner.entries.contains_key(&s.id))
                .count(),
            3
        );
    }
}
