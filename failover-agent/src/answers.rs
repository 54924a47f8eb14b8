//! The userspace answer table: the [`AnswerSink`] the userspace responder
//! reads. The agent loop writes it (through the same calls the kernel map
//! gets), the responder's tasks read it; one `RwLock` makes every call one
//! atomic change, so a reader sees a whole answer set or none.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, RwLock, RwLockReadGuard};

use anyhow::{Result, bail};
use failover_common::{MAX_ANSWER_ADDRS, MAX_NAME_WIRE_LEN};

use crate::sink::{AnswerSink, RTYPE_A, RTYPE_AAAA, RTYPE_HTTPS, ZoneSoa};

/// What the table holds for one (name, type).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    /// The answer set: 1 to 16 addresses of the type's family, one TTL.
    Answer {
        zone: u32,
        ttl: u32,
        addrs: Vec<IpAddr>,
    },
    /// One address per query, picked at random in proportion to its weight
    /// (every weight >= 1), as the kernel does.
    Weighted {
        zone: u32,
        ttl: u32,
        choices: Vec<(IpAddr, u32)>,
    },
    /// The name has no records of this type: NODATA with the zone's SOA.
    NoData { zone: u32 },
    /// Answer SERVFAIL (every endpoint down, `when_all_down = "servfail"`).
    ServFail { zone: u32 },
}

impl Entry {
    pub fn zone(&self) -> u32 {
        match self {
            Entry::Answer { zone, .. }
            | Entry::Weighted { zone, .. }
            | Entry::NoData { zone }
            | Entry::ServFail { zone } => *zone,
        }
    }
}

/// Picks one of `choices` at random in proportion to the weights (every
/// weight >= 1; at least one choice), with `r` a uniformly random number.
pub fn weighted_pick(choices: &[(IpAddr, u32)], r: u64) -> IpAddr {
    let total: u64 = choices.iter().map(|(_, w)| u64::from(*w)).sum();
    let mut point = r % total.max(1);
    for (addr, weight) in choices {
        if point < u64::from(*weight) {
            return *addr;
        }
        point -= u64::from(*weight);
    }
    choices[choices.len() - 1].0
}

/// A random number for [`weighted_pick`]: std's per-process random SipHash
/// keys over a counter (no extra dependency; not for cryptography).
pub fn random_u64() -> u64 {
    use std::hash::BuildHasher as _;
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    thread_local! {
        static KEYS: std::collections::hash_map::RandomState =
            std::collections::hash_map::RandomState::new();
    }
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    KEYS.with(|keys| keys.hash_one(n))
}

#[derive(Debug, Default)]
struct Table {
    zones: BTreeMap<u32, ZoneSoa>,
    /// Keyed by (lowercased wire-format name, type).
    entries: HashMap<(Vec<u8>, u16), Entry>,
}

/// A shared handle: clones see the same table. Writes go through
/// [`AnswerSink`]; reads through [`AnswerTable::read`].
#[derive(Clone, Debug, Default)]
pub struct AnswerTable {
    inner: Arc<RwLock<Table>>,
}

/// A consistent view of the table (holds the read lock: keep it short).
pub struct AnswerView<'a> {
    table: RwLockReadGuard<'a, Table>,
}

impl AnswerView<'_> {
    /// The SOA of zone number `zone`, once [`AnswerSink::set_zone`] declared it.
    pub fn zone(&self, zone: u32) -> Option<&ZoneSoa> {
        self.table.zones.get(&zone)
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
            // Every write is one insert or remove: a panic cannot leave the
            // table half-written, so a poisoned lock is still consistent.
            table: self.inner.read().unwrap_or_else(|e| e.into_inner()),
        }
    }

    /// The entry for `name` (text, any case) and `rtype`, cloned: for tests
    /// and diagnostics.
    pub fn get(&self, name: &str, rtype: u16) -> Option<Entry> {
        let key = name_key(name).ok()?;
        self.read().get(&key, rtype).cloned()
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Table> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    fn check_zone(&self, name: &str, zone: u32) -> Result<()> {
        if !self.read().table.zones.contains_key(&zone) {
            bail!("{name}: zone {zone} has not been declared (set_zone comes first)");
        }
        Ok(())
    }
}

impl AnswerSink for AnswerTable {
    fn set_zone(&mut self, zone: u32, soa: &ZoneSoa) -> Result<()> {
        name_key(&soa.apex)?;
        name_key(&soa.mname)?;
        name_key(&soa.rname)?;
        self.write().zones.insert(zone, soa.clone());
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
        let key = name_key(name)?;
        check_answer_set(name, rtype, addrs)?;
        self.check_zone(name, zone)?;
        self.write().entries.insert(
            (key, rtype),
            Entry::Answer {
                zone,
                ttl,
                addrs: addrs.to_vec(),
            },
        );
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
        let key = name_key(name)?;
        let addrs: Vec<IpAddr> = weighted.iter().map(|(a, _)| *a).collect();
        check_answer_set(name, rtype, &addrs)?;
        if let Some((addr, _)) = weighted.iter().find(|(_, w)| *w == 0) {
            bail!("{name}: {addr} has weight 0; a weighted set picks among weights >= 1");
        }
        if weighted.iter().map(|(_, w)| u64::from(*w)).sum::<u64>() > u64::from(u32::MAX) {
            bail!("{name}: weights add up to more than 2^32");
        }
        self.check_zone(name, zone)?;
        self.write().entries.insert(
            (key, rtype),
            Entry::Weighted {
                zone,
                ttl,
                choices: weighted.to_vec(),
            },
        );
        Ok(())
    }

    fn publish_servfail(&mut self, name: &str, rtype: u16, zone: u32) -> Result<()> {
        let key = name_key(name)?;
        if rtype != RTYPE_A && rtype != RTYPE_AAAA {
            bail!("{name}: SERVFAIL is declared for A or AAAA, not type {rtype}");
        }
        self.check_zone(name, zone)?;
        self.write()
            .entries
            .insert((key, rtype), Entry::ServFail { zone });
        Ok(())
    }

    fn publish_nodata(&mut self, name: &str, rtype: u16, zone: u32) -> Result<()> {
        let key = name_key(name)?;
        if ![RTYPE_A, RTYPE_AAAA, RTYPE_HTTPS].contains(&rtype) {
            bail!("{name}: NODATA is declared for A, AAAA or HTTPS, not type {rtype}");
        }
        self.check_zone(name, zone)?;
        self.write()
            .entries
            .insert((key, rtype), Entry::NoData { zone });
        Ok(())
    }

    fn withdraw(&mut self, name: &str, rtype: u16) -> Result<()> {
        let key = name_key(name)?;
        self.write().entries.remove(&(key, rtype));
        Ok(())
    }
}

/// 1 to 16 addresses of `rtype`'s family (A or AAAA).
fn check_answer_set(name: &str, rtype: u16, addrs: &[IpAddr]) -> Result<()> {
    if addrs.is_empty() || addrs.len() > MAX_ANSWER_ADDRS {
        bail!(
            "{name}: an answer set holds 1 to {MAX_ANSWER_ADDRS} addresses, not {}",
            addrs.len()
        );
    }
    let family_ok = |a: &IpAddr| match rtype {
        RTYPE_A => a.is_ipv4(),
        RTYPE_AAAA => a.is_ipv6(),
        _ => false,
    };
    if rtype != RTYPE_A && rtype != RTYPE_AAAA {
        bail!("{name}: answer sets are A or AAAA, not type {rtype}");
    }
    if let Some(bad) = addrs.iter().find(|a| !family_ok(a)) {
        bail!("{name}: {bad} in a type {rtype} answer set");
    }
    Ok(())
}

/// `name` (absolute or not, any case, labels separated by dots, no escapes)
/// in lowercased wire format: length-prefixed labels and the root label, the
/// form the kernel's map key and the responder use.
pub fn name_key(name: &str) -> Result<Vec<u8>> {
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    let mut key = Vec::with_capacity(trimmed.len() + 2);
    if !trimmed.is_empty() {
        for label in trimmed.split('.') {
            if label.is_empty() || label.len() > 63 {
                bail!("{name}: label {label:?} must be 1 to 63 bytes");
            }
            key.push(label.len() as u8);
            key.extend(label.bytes().map(|b| b.to_ascii_lowercase()));
        }
    }
    key.push(0);
    if key.len() > MAX_NAME_WIRE_LEN {
        bail!("{name}: longer than {MAX_NAME_WIRE_LEN} bytes in wire format");
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn soa(apex: &str) -> ZoneSoa {
        ZoneSoa {
            apex: apex.into(),
            mname: format!("ns1.{apex}"),
            rname: format!("hostmaster.{apex}"),
            serial: 1,
            refresh: 3600,
            retry: 600,
            expire: 1209600,
            minimum: 30,
            negative_ttl: 30,
        }
    }

    const V4: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    const V6: IpAddr = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1));

    #[test]
    fn name_key_is_lowercase_wire_format() {
        assert_eq!(
            name_key("WWW.Example.test.").unwrap(),
            b"\x03www\x07example\x04test\x00"
        );
        assert_eq!(
            name_key("www.example.test").unwrap(),
            name_key("www.EXAMPLE.test.").unwrap()
        );
        assert_eq!(name_key(".").unwrap(), b"\x00");
        assert!(name_key("a..b.").is_err());
        assert!(name_key(&vec!["a".repeat(63); 4].join(".")).is_err());
    }

    #[test]
    fn publishes_replaces_and_withdraws_case_insensitively() {
        let mut table = AnswerTable::new();
        let reader = table.clone();
        table.set_zone(3, &soa("example.test.")).unwrap();
        table
            .publish("WWW.example.test.", RTYPE_A, 3, 10, &[V4])
            .unwrap();
        table
            .publish_nodata("www.example.test.", RTYPE_AAAA, 3)
            .unwrap();
        assert_eq!(
            reader.get("www.EXAMPLE.test", RTYPE_A),
            Some(Entry::Answer {
                zone: 3,
                ttl: 10,
                addrs: vec![V4]
            })
        );
        assert_eq!(
            reader.get("www.example.test.", RTYPE_AAAA),
            Some(Entry::NoData { zone: 3 })
        );
        assert_eq!(reader.read().zone(3), Some(&soa("example.test.")));
        assert_eq!(reader.read().len(), 2);
        // A type can turn from data to NODATA and back: each call replaces.
        table
            .publish("www.example.test.", RTYPE_AAAA, 3, 5, &[V6])
            .unwrap();
        assert!(matches!(
            reader.get("www.example.test.", RTYPE_AAAA),
            Some(Entry::Answer { ttl: 5, .. })
        ));
        table.withdraw("Www.Example.Test.", RTYPE_A).unwrap();
        assert_eq!(reader.get("www.example.test.", RTYPE_A), None);
        assert_eq!(reader.read().len(), 1);
    }

    #[test]
    fn rejects_what_no_answer_can_carry() {
        let mut table = AnswerTable::new();
        assert!(
            table.publish("www.t.", RTYPE_A, 0, 1, &[V4]).is_err(),
            "zone 0 not declared"
        );
        assert!(table.publish_nodata("www.t.", RTYPE_A, 0).is_err());
        table.set_zone(0, &soa("t.")).unwrap();
        assert!(table.publish("www.t.", RTYPE_A, 0, 1, &[V6]).is_err());
        assert!(table.publish("www.t.", RTYPE_AAAA, 0, 1, &[V4]).is_err());
        assert!(table.publish("www.t.", RTYPE_A, 0, 1, &[]).is_err());
        assert!(table.publish("www.t.", RTYPE_A, 0, 1, &[V4; 17]).is_err());
        assert!(table.publish("www.t.", 15, 0, 1, &[V4]).is_err());
        assert!(table.publish_nodata("www.t.", 15, 0).is_err());
        assert!(table.read().is_empty());
        table.publish("www.t.", RTYPE_A, 0, 1, &[V4; 16]).unwrap();
        table.publish_nodata("www.t.", RTYPE_HTTPS, 0).unwrap();
        assert_eq!(table.read().len(), 2);
        // Weighted sets: weights >= 1, the family of the type; SERVFAIL for
        // A and AAAA only.
        assert!(
            table
                .publish_weighted("w.t.", RTYPE_A, 0, 1, &[(V4, 0)])
                .is_err()
        );
        assert!(
            table
                .publish_weighted("w.t.", RTYPE_A, 0, 1, &[(V6, 1)])
                .is_err()
        );
        assert!(table.publish_weighted("w.t.", RTYPE_A, 0, 1, &[]).is_err());
        assert!(
            table
                .publish_weighted("w.t.", RTYPE_A, 0, 1, &[(V4, u32::MAX), (V4, 1)])
                .is_err()
        );
        assert!(table.publish_servfail("w.t.", RTYPE_HTTPS, 0).is_err());
        assert_eq!(table.read().len(), 2);
        table
            .publish_weighted("w.t.", RTYPE_A, 0, 9, &[(V4, 3)])
            .unwrap();
        table.publish_servfail("w.t.", RTYPE_AAAA, 0).unwrap();
        assert_eq!(
            table.get("w.t.", RTYPE_A),
            Some(Entry::Weighted {
                zone: 0,
                ttl: 9,
                choices: vec![(V4, 3)]
            })
        );
        assert_eq!(
            table.get("w.t.", RTYPE_AAAA),
            Some(Entry::ServFail { zone: 0 })
        );
    }

    #[test]
    fn weighted_pick_follows_the_weights() {
        let a: IpAddr = Ipv4Addr::new(192, 0, 2, 1).into();
        let b: IpAddr = Ipv4Addr::new(192, 0, 2, 2).into();
        let choices = [(a, 1), (b, 3)];
        // Deterministic in r: [0, 1) -> a, [1, 4) -> b, modulo the total.
        let picks: Vec<IpAddr> = (0..8).map(|r| weighted_pick(&choices, r)).collect();
        assert_eq!(picks, [a, b, b, b, a, b, b, b]);
        // With real random numbers the split is near 1:3.
        let n = 40_000;
        let hits = (0..n)
            .filter(|_| weighted_pick(&choices, random_u64()) == a)
            .count();
        assert!((9_000..11_000).contains(&hits), "{hits} of {n}");
    }
}
