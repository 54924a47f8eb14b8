//! The userspace answer table: the zone tree and one [`Entry`] per
//! (name, type), the same values the kernel map holds. The publication path
//! writes it ([`crate::publish`]); the responder's tasks read it. One
//! `RwLock` makes every write one atomic change, so a reader sees a whole
//! answer set (and one version of the zone tree) or none.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use anyhow::{Result, bail};
use failover_common::MAX_ANSWER_ADDRS;

use super::zones::ZoneTree;
use crate::dns::name::name_key;
use crate::dns::rr::{RTYPE_A, RTYPE_AAAA, RTYPE_HTTPS};
use crate::policy::Answer;

/// One (name, type)'s whole answer: what both answering paths hold, and
/// the one value the publication path writes ([`crate::publish`]).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Entry {
    /// The zone (its number): the SOA of negative answers.
    pub zone: u32,
    /// TTL of the answer records (0 for NODATA and SERVFAIL, which carry
    /// none).
    pub ttl: u32,
    pub answer: Answer,
}

impl Entry {
    pub fn new(zone: u32, ttl: u32, answer: Answer) -> Entry {
        let ttl = match answer {
            Answer::Addrs(_) | Answer::Rotating { .. } | Answer::Weighted(_) => ttl,
            Answer::NoData | Answer::ServFail => 0,
        };
        Entry { zone, ttl, answer }
    }

    /// NODATA for a type the name lacks.
    pub fn nodata(zone: u32) -> Entry {
        Entry::new(zone, 0, Answer::NoData)
    }

    /// Whether (`name`, `rtype`) may hold this entry: answer sets of 1 to 16
    /// addresses of the type's family (A or AAAA), weights >= 1 adding up to
    /// less than 2^32, SERVFAIL for A and AAAA, NODATA for A, AAAA and HTTPS.
    /// Every publisher checks this, so both paths refuse the same things.
    pub fn check(&self, name: &str, rtype: u16) -> Result<()> {
        match &self.answer {
            Answer::Addrs(addrs) => check_answer_set(name, rtype, addrs.iter()),
            Answer::Rotating { addrs, per_answer } => {
                check_answer_set(name, rtype, addrs.iter())?;
                if !(1..addrs.len()).contains(per_answer) {
                    bail!(
                        "{name}: {per_answer} per answer out of {} addresses: a window is 1 to one fewer than the set",
                        addrs.len()
                    );
                }
                Ok(())
            }
            Answer::Weighted(choices) => {
                check_answer_set(name, rtype, choices.iter().map(|(a, _)| a))?;
                if let Some((addr, _)) = choices.iter().find(|(_, w)| *w == 0) {
                    bail!("{name}: {addr} has weight 0; a weighted set picks among weights >= 1");
                }
                if choices.iter().map(|(_, w)| u64::from(*w)).sum::<u64>() > u64::from(u32::MAX) {
                    bail!("{name}: weights add up to more than 2^32");
                }
                Ok(())
            }
            Answer::ServFail if rtype != RTYPE_A && rtype != RTYPE_AAAA => {
                bail!("{name}: SERVFAIL is declared for A or AAAA, not type {rtype}")
            }
            Answer::NoData if ![RTYPE_A, RTYPE_AAAA, RTYPE_HTTPS].contains(&rtype) => {
                bail!("{name}: NODATA is declared for A, AAAA or HTTPS, not type {rtype}")
            }
            Answer::ServFail | Answer::NoData => Ok(()),
        }
    }
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.answer {
            Answer::Addrs(_) | Answer::Rotating { .. } | Answer::Weighted(_) => {
                write!(f, "{} ttl {}", self.answer, self.ttl)
            }
            Answer::NoData | Answer::ServFail => write!(f, "{}", self.answer),
        }
    }
}

/// 1 to 16 addresses of `rtype`'s family (A or AAAA).
fn check_answer_set<'a>(
    name: &str,
    rtype: u16,
    addrs: impl ExactSizeIterator<Item = &'a IpAddr>,
) -> Result<()> {
    if rtype != RTYPE_A && rtype != RTYPE_AAAA {
        bail!("{name}: answer sets are A or AAAA, not type {rtype}");
    }
    let count = addrs.len();
    if count == 0 || count > MAX_ANSWER_ADDRS {
        bail!("{name}: an answer set holds 1 to {MAX_ANSWER_ADDRS} addresses, not {count}");
    }
    for addr in addrs {
        if addr.is_ipv4() != (rtype == RTYPE_A) {
            bail!("{name}: {addr} does not belong in a type {rtype} answer set");
        }
    }
    Ok(())
}

#[derive(Debug, Default)]
struct Table {
    zones: Arc<ZoneTree>,
    /// Keyed by (lowercased wire-format name, type).
    entries: HashMap<(Vec<u8>, u16), Entry>,
}

/// A shared handle: clones see the same table.
#[derive(Clone, Debug, Default)]
pub struct AnswerTable {
    inner: Arc<RwLock<Table>>,
}

/// A consistent view of the table (holds the read lock: keep it short).
pub struct AnswerView<'a> {
    table: RwLockReadGuard<'a, Table>,
}

impl AnswerView<'_> {
    /// The zone tree in force (empty until the first publication).
    pub fn zones(&self) -> &Arc<ZoneTree> {
        &self.table.zones
    }

    /// The entry of (`key`, `rtype`), `key` being a name in lowercased wire
    /// format (see [`name_key`]).
    pub fn get(&self, key: &[u8], rtype: u16) -> Option<&Entry> {
        // The HashMap wants an owned key; names are short.
        self.table.entries.get(&(key.to_vec(), rtype))
    }

    /// Number of (name, type) entries.
    pub fn len(&self) -> usize {
        self.table.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.entries.is_empty()
    }
}

impl AnswerTable {
    pub fn new() -> Self {
        Self::default()
    }

    /// Locks the table for reading.
    pub fn read(&self) -> AnswerView<'_> {
        AnswerView {
            // Every write is one assignment, insert or remove: a panic cannot
            // leave the table half-written, so a poisoned lock is still
            // consistent.
            table: self.inner.read().unwrap_or_else(|e| e.into_inner()),
        }
    }

    /// The entry for `name` (text, any case) and `rtype`, cloned: for tests
    /// and diagnostics.
    pub fn get(&self, name: &str, rtype: u16) -> Option<Entry> {
        let key = name_key(name).ok()?;
        self.read().get(&key, rtype).cloned()
    }

    fn write(&self) -> RwLockWriteGuard<'_, Table> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Replaces the zone tree.
    pub fn set_zones(&self, zones: Arc<ZoneTree>) {
        self.write().zones = zones;
    }

    /// Replaces the entry of (`name`, `rtype`) after [`Entry::check`]; the
    /// entry's zone must be in the zone tree (its SOA answers NODATA).
    pub fn put(&self, name: &str, rtype: u16, entry: &Entry) -> Result<()> {
        let key = name_key(name)?;
        entry.check(name, rtype)?;
        let mut table = self.write();
        if table.zones.zone(entry.zone).is_none() {
            bail!(
                "{name}: zone {} is not in the zone tree (zones come first)",
                entry.zone
            );
        }
        table.entries.insert((key, rtype), entry.clone());
        Ok(())
    }

    /// Forgets (`name`, `rtype`).
    pub fn withdraw(&self, name: &str, rtype: u16) -> Result<()> {
        let key = name_key(name)?;
        self.write().entries.remove(&(key, rtype));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const V4: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    const V6: IpAddr = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1));

    /// A table whose zone tree has zones 0 to 3 (`t.`, `u.`, `v.`,
    /// `example.test.`).
    fn table() -> AnswerTable {
        let config = Config::parse(
            r#"
[[zone]]
origin = "t."
[[zone]]
origin = "u."
[[zone]]
origin = "v."
[[zone]]
origin = "example.test."

[[record]]
name = "www.t."
type = "A"
policy = "failover"
check = "c"
endpoints = [{ address = "192.0.2.1" }]

[checks.c]
kind = "icmp"
"#,
            "test.toml",
        )
        .unwrap();
        let table = AnswerTable::new();
        table.set_zones(Arc::new(ZoneTree::new(&config)));
        table
    }

    fn answer(zone: u32, ttl: u32, addrs: &[IpAddr]) -> Entry {
        Entry::new(zone, ttl, Answer::Addrs(addrs.to_vec()))
    }

    fn weighted(choices: &[(IpAddr, u32)]) -> Entry {
        Entry::new(0, 9, Answer::Weighted(choices.to_vec()))
    }

    #[test]
    fn puts_replaces_and_withdraws_case_insensitively() {
        let table = table();
        let reader = table.clone();
        table
            .put("WWW.example.test.", RTYPE_A, &answer(3, 10, &[V4]))
            .unwrap();
        table
            .put("www.example.test.", RTYPE_AAAA, &Entry::nodata(3))
            .unwrap();
        assert_eq!(
            reader.get("www.EXAMPLE.test", RTYPE_A),
            Some(answer(3, 10, &[V4]))
        );
        assert_eq!(
            reader.get("www.example.test.", RTYPE_AAAA),
            Some(Entry::nodata(3))
        );
        assert_eq!(
            reader.read().zones().zone(3).map(|z| z.soa.apex.as_str()),
            Some("example.test.")
        );
        assert_eq!(reader.read().len(), 2);
        // A type can turn from data to NODATA and back: each call replaces.
        table
            .put("www.example.test.", RTYPE_AAAA, &answer(3, 5, &[V6]))
            .unwrap();
        assert_eq!(
            reader.get("www.example.test.", RTYPE_AAAA),
            Some(answer(3, 5, &[V6]))
        );
        table.withdraw("Www.Example.Test.", RTYPE_A).unwrap();
        assert_eq!(reader.get("www.example.test.", RTYPE_A), None);
        assert_eq!(reader.read().len(), 1);
    }

    #[test]
    fn rejects_what_no_answer_can_carry() {
        let empty = AnswerTable::new();
        assert!(
            empty.put("www.t.", RTYPE_A, &answer(0, 1, &[V4])).is_err(),
            "zone 0 not in the tree"
        );
        assert!(empty.put("www.t.", RTYPE_A, &Entry::nodata(0)).is_err());
        let table = table();
        assert!(table.put("www.t.", RTYPE_A, &answer(9, 1, &[V4])).is_err());
        assert!(table.put("www.t.", RTYPE_A, &answer(0, 1, &[V6])).is_err());
        assert!(
            table
                .put("www.t.", RTYPE_AAAA, &answer(0, 1, &[V4]))
                .is_err()
        );
        assert!(table.put("www.t.", RTYPE_A, &answer(0, 1, &[])).is_err());
        assert!(
            table
                .put("www.t.", RTYPE_A, &answer(0, 1, &[V4; 17]))
                .is_err()
        );
        assert!(table.put("www.t.", 15, &answer(0, 1, &[V4])).is_err());
        assert!(table.put("www.t.", 15, &Entry::nodata(0)).is_err());
        assert!(table.read().is_empty());
        table
            .put("www.t.", RTYPE_A, &answer(0, 1, &[V4; 16]))
            .unwrap();
        table.put("www.t.", RTYPE_HTTPS, &Entry::nodata(0)).unwrap();
        assert_eq!(table.read().len(), 2);
        // Weighted sets: weights >= 1, the family of the type; SERVFAIL for
        // A and AAAA only.
        assert!(table.put("w.t.", RTYPE_A, &weighted(&[(V4, 0)])).is_err());
        assert!(table.put("w.t.", RTYPE_A, &weighted(&[(V6, 1)])).is_err());
        assert!(table.put("w.t.", RTYPE_A, &weighted(&[])).is_err());
        assert!(
            table
                .put("w.t.", RTYPE_A, &weighted(&[(V4, u32::MAX), (V4, 1)]))
                .is_err()
        );
        assert!(
            table
                .put("w.t.", RTYPE_HTTPS, &Entry::new(0, 0, Answer::ServFail))
                .is_err()
        );
        assert_eq!(table.read().len(), 2);
        table.put("w.t.", RTYPE_A, &weighted(&[(V4, 3)])).unwrap();
        table
            .put("w.t.", RTYPE_AAAA, &Entry::new(0, 0, Answer::ServFail))
            .unwrap();
        assert_eq!(table.get("w.t.", RTYPE_A), Some(weighted(&[(V4, 3)])));
        assert_eq!(
            table.get("w.t.", RTYPE_AAAA),
            Some(Entry::new(0, 0, Answer::ServFail))
        );
    }
}
