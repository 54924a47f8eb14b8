//! The one path from a decided answer to both answering paths.
//!
//! A [`Publisher`] takes whole values: the zone tree of a configuration, and
//! one [`Entry`] per (name, type). The kernel maps ([`kernel`]) and the
//! userspace table ([`table`]) are publishers; [`both::Both`] feeds the two
//! alike, so they answer alike.
//!
//! [`Publication`] decides what the publishers must hold and keeps them
//! there: the zone tree first, then what a reload removed is withdrawn, then
//! the entries. Record entries come from the agent once its checks decided
//! them; NODATA entries (for each of A, AAAA and HTTPS a hot name lacks) go
//! out with the first answers. A write that fails is retried on every
//! [`Publication::flush`], and writing a value again is harmless, since
//! every write replaces.

pub mod both;
pub mod kernel;
pub mod table;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use anyhow::{Result, bail};
use log::{debug, error, info};

use crate::config::Config;
use crate::dns::rr::{HOT_TYPES, type_name};
use crate::policy::{Rules, State, decide};
use crate::serve::table::Entry;
use crate::serve::zones::ZoneTree;

/// Something that answers from published values.
///
/// Every call replaces what it held atomically: a reader sees the old or the
/// new value, never a mix. Names are absolute (`"www.example.test."`), any
/// case. A publisher that does not hold a zone (its `set_zones` failed) must
/// refuse entries of that zone rather than answer without its SOA.
pub trait Publisher {
    /// Replaces the zone tree: every zone's SOA and what exists.
    fn set_zones(&mut self, zones: &Arc<ZoneTree>) -> Result<()>;
    /// Replaces the entry of (`name`, `rtype`).
    fn put(&mut self, name: &str, rtype: u16, entry: &Entry) -> Result<()>;
    /// Forgets (`name`, `rtype`): queries for it are no longer answered from
    /// this publisher.
    fn withdraw(&mut self, name: &str, rtype: u16) -> Result<()>;
    /// Called once a second from the agent's loop: a sign of life (the
    /// kernel maps' heartbeat). Nothing by default.
    fn tick(&mut self) -> Result<()> {
        Ok(())
    }
}

impl<P: Publisher + ?Sized> Publisher for &mut P {
    fn set_zones(&mut self, zones: &Arc<ZoneTree>) -> Result<()> {
        (**self).set_zones(zones)
    }

    fn put(&mut self, name: &str, rtype: u16, entry: &Entry) -> Result<()> {
        (**self).put(name, rtype, entry)
    }

    fn withdraw(&mut self, name: &str, rtype: u16) -> Result<()> {
        (**self).withdraw(name, rtype)
    }

    fn tick(&mut self) -> Result<()> {
        (**self).tick()
    }
}

/// A (name, type) by its lowercased name.
type Key = (String, u16);

/// One (name, type) the configuration answers from the tables.
struct Slot {
    /// As configured (for writes and messages).
    name: String,
    rtype: u16,
    /// A record's (decided by the agent) or a NODATA declaration.
    nodata: bool,
    /// What the publisher should hold; `None` for a record not decided yet.
    wanted: Option<Entry>,
    /// What the publisher holds (its last successful write).
    held: Option<Entry>,
    /// The publisher may hold something else (a withdrawal that had not
    /// succeeded yet): the next write goes out whatever `held` says.
    unsure: bool,
    failing: bool,
    /// `held` was taken over from an earlier agent's data plane: kept as
    /// it is until the agent decides this (name, type) (never withdrawn for
    /// want of a decision).
    adopted: bool,
}

impl Slot {
    fn settled(&self) -> bool {
        !self.unsure && (self.held == self.wanted || (self.adopted && self.wanted.is_none()))
    }
}

/// A withdrawal of something a reload removed, retried until it succeeds.
struct Withdrawal {
    name: String,
    rtype: u16,
    failing: bool,
}

/// What [`Publication::put`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Put {
    /// The publisher already holds this entry.
    Unchanged,
    /// Written; this is what it replaced.
    Written(Option<Entry>),
    /// Writing failed (logged); retried on every flush.
    Failed,
    /// Held back: the publication is paused (a handover to another agent
    /// is under way); written if it resumes.
    Deferred,
}

/// Keeps a [`Publisher`] holding what the configuration and the agent's
/// decisions say.
pub struct Publication<P> {
    target: P,
    zones: Arc<ZoneTree>,
    zones_held: bool,
    zones_failing: bool,
    /// In configuration order (records, then NODATA declarations by name),
    /// so writes go out in a stable order.
    slots: Vec<Slot>,
    index: HashMap<Key, usize>,
    /// The slots the publisher does not hold as wanted yet: a flush after
    /// every check result looks at these only.
    unsettled: BTreeSet<usize>,
    withdrawals: Vec<Withdrawal>,
    /// The first answers are out: NODATA entries are written too.
    live: bool,
    /// Adopted (name, type)s the configuration lacks: withdrawn when the
    /// first answers go out.
    adopted_extra: Vec<(String, u16)>,
    /// Nothing is written ([`Publication::pause`]): another agent takes
    /// over what the publisher holds.
    paused: bool,
}

impl<P: Publisher> Publication<P> {
    /// Publishes `config`'s zone tree to `target` at once (so SOA, NS and
    /// negative answers are served before any check has run); entries
    /// follow as [`Publication::put`] decides them.
    pub fn new(target: P, config: &Config) -> Self {
        let mut publication = Publication {
            target,
            zones: Arc::new(ZoneTree::default()),
            zones_held: false,
            zones_failing: false,
            slots: Vec::new(),
            index: HashMap::new(),
            unsettled: BTreeSet::new(),
            withdrawals: Vec::new(),
            live: false,
            adopted_extra: Vec::new(),
            paused: false,
        };
        publication.configure(config);
        publication
    }

    /// Switches to `config`: its zone tree, its records (a record that
    /// existed keeps what it holds until the agent decides it again; a new
    /// one holds nothing, so both paths answer SERVFAIL until its first
    /// check) and its NODATA declarations; withdraws every (name, type) it
    /// no longer has. Then flushes.
    pub fn configure(&mut self, config: &Config) {
        self.zones = Arc::new(ZoneTree::new(config));
        self.zones_held = false;
        let mut old: HashMap<Key, Slot> = std::mem::take(&mut self.slots)
            .into_iter()
            .map(|slot| ((slot.name.to_ascii_lowercase(), slot.rtype), slot))
            .collect();
        self.index.clear();
        // Records first, then each type a hot name lacks (NODATA).
        let mut wanted: Vec<(&str, u16, Option<Entry>)> = config
            .records
            .iter()
            .map(|r| (r.name.as_str(), r.rtype.code(), None))
            .collect();
        let hot_names = config.hot_names();
        for hot in &hot_names {
            for rtype in HOT_TYPES {
                let has = hot
                    .records
                    .iter()
                    .any(|&r| config.records[r].rtype.code() == rtype);
                if !has {
                    let entry = Entry::nodata(hot.zone as u32);
                    wanted.push((hot.name.as_str(), rtype, Some(entry)));
                }
            }
        }
        for (name, rtype, nodata) in wanted {
            let key = (name.to_ascii_lowercase(), rtype);
            let (held, kept, adopted) = match old.remove(&key) {
                // A record stays decided; a NODATA entry of a name that now
                // has the record goes (resolvers cache NODATA).
                Some(old) => {
                    let same_kind = old.nodata == nodata.is_some();
                    let kept = if same_kind { old.wanted } else { None };
                    (old.held, kept, old.adopted && same_kind)
                }
                None => (None, None, false),
            };
            self.index.insert(key, self.slots.len());
            self.slots.push(Slot {
                name: name.to_string(),
                rtype,
                nodata: nodata.is_some(),
                wanted: nodata.or(kept),
                held,
                unsure: false,
                failing: false,
                adopted,
            });
        }
        // A withdrawal still pending for a (name, type) the configuration
        // has again: its slot writes over whatever the publisher holds.
        let index = &self.index;
        let slots = &mut self.slots;
        self.withdrawals.retain(
            |w| match index.get(&(w.name.to_ascii_lowercase(), w.rtype)) {
                Some(&i) => {
                    slots[i].unsure = true;
                    false
                }
                None => true,
            },
        );
        self.unsettled = (0..self.slots.len())
            .filter(|&i| !self.slots[i].settled())
            .collect();
        // What the new configuration lacks.
        for (_, gone) in old
            .into_iter()
            .filter(|(_, s)| s.held.is_some() || s.unsure)
        {
            self.withdrawals.push(Withdrawal {
                name: gone.name,
                rtype: gone.rtype,
                failing: false,
            });
        }
        self.flush();
    }

    /// The first answers are out: from now on NODATA entries are written
    /// too (before, a type a name lacks is left to userspace), and what an
    /// adopted data plane held that the configuration lacks is withdrawn.
    pub fn go_live(&mut self) {
        if !self.live {
            self.live = true;
            self.withdrawals
                .extend(std::mem::take(&mut self.adopted_extra).into_iter().map(
                    |(name, rtype)| Withdrawal {
                        name,
                        rtype,
                        failing: false,
                    },
                ));
            self.flush();
        }
    }

    /// Takes over what an earlier agent's data plane holds (`entries`, as
    /// read back from the kernel maps): each (name, type) the configuration
    /// has is written through to every publisher as it is (the kernel keeps
    /// answering exactly what it answered, and the userspace table answers
    /// alike) and kept until the agent decides it; the others are withdrawn
    /// when the first answers go out ([`Publication::go_live`]). Call before
    /// the first decision.
    pub fn adopt(&mut self, entries: Vec<(String, u16, Entry)>) -> usize {
        let mut kept = 0;
        for (name, rtype, entry) in entries {
            let key = (name.to_ascii_lowercase(), rtype);
            let Some(&i) = self.index.get(&key) else {
                if self.live {
                    self.withdrawals.push(Withdrawal {
                        name,
                        rtype,
                        failing: false,
                    });
                } else {
                    self.adopted_extra.push((name, rtype));
                }
                continue;
            };
            let slot = &mut self.slots[i];
            if slot.held.is_some() || (!slot.nodata && slot.wanted.is_some()) {
                // Decided or written already: nothing to take over.
                continue;
            }
            match self.target.put(&slot.name, rtype, &entry) {
                Ok(()) => {
                    slot.held = Some(entry);
                    slot.adopted = true;
                    kept += 1;
                    if slot.settled() {
                        self.unsettled.remove(&i);
                    } else {
                        self.unsettled.insert(i);
                    }
                }
                Err(e) => error!("{} {}: taking over: {e:#}", slot.name, type_name(rtype)),
            }
        }
        kept
    }

    /// Makes the publisher hold `entry` for (`name`, `rtype`), a record of
    /// the configuration.
    pub fn put(&mut self, name: &str, rtype: u16, entry: Entry) -> Put {
        let key = (name.to_ascii_lowercase(), rtype);
        let Some(&i) = self.index.get(&key) else {
            error!(
                "{name} {}: not a record of the configuration",
                type_name(rtype)
            );
            return Put::Failed;
        };
        let slot = &mut self.slots[i];
        slot.wanted = Some(entry);
        if slot.settled() {
            self.unsettled.remove(&i);
            return Put::Unchanged;
        }
        let previous = slot.held.clone();
        self.unsettled.insert(i);
        if self.paused {
            return Put::Deferred;
        }
        if !self.zones_held {
            self.write_zones();
        }
        if self.zones_held && write(&mut self.target, &mut self.slots[i]) {
            self.unsettled.remove(&i);
            Put::Written(previous)
        } else {
            Put::Failed
        }
    }

    /// What the publisher holds for (`name`, `rtype`).
    pub fn held(&self, name: &str, rtype: u16) -> Option<&Entry> {
        self.index
            .get(&(name.to_ascii_lowercase(), rtype))
            .and_then(|&i| self.slots[i].held.as_ref())
    }

    /// How many (name, type) entries the publisher holds.
    pub fn held_count(&self) -> usize {
        self.slots.iter().filter(|s| s.held.is_some()).count() + self.adopted_extra.len()
    }

    /// Retries every write that has not succeeded yet: the zone tree, then
    /// withdrawals (they free room in the kernel map), then entries.
    pub fn flush(&mut self) {
        if self.paused {
            return;
        }
        if !self.zones_held {
            self.write_zones();
            if !self.zones_held {
                return;
            }
        }
        let target = &mut self.target;
        self.withdrawals.retain_mut(|w| {
            let result = target.withdraw(&w.name, w.rtype);
            !attempted(result, &mut w.failing, || {
                format!("{} {} (withdrawal)", w.name, type_name(w.rtype))
            })
        });
        let live = self.live;
        let (target, slots) = (&mut self.target, &mut self.slots);
        self.unsettled.retain(|&i| {
            let slot = &mut slots[i];
            !((live || !slot.nodata) && write(target, slot))
        });
    }

    /// Stops every write to the publisher, so that another agent can take
    /// over what it holds as it is: decisions from now on are kept (and
    /// [`Publication::held`] does not change) until [`Publication::resume`].
    pub fn pause(&mut self) {
        self.paused = true;
    }

    /// Writes again, first what was decided while paused (the handover
    /// failed: this agent is the writer still).
    pub fn resume(&mut self) {
        self.paused = false;
        self.flush();
    }

    /// Whether writes are paused.
    pub fn paused(&self) -> bool {
        self.paused
    }

    /// Every (name, type) the publisher holds, with its entry: what the
    /// agent taking over from this one starts from.
    pub fn held_entries(&self) -> Vec<(String, u16, Entry)> {
        self.slots
            .iter()
            .filter_map(|s| Some((s.name.clone(), s.rtype, s.held.clone()?)))
            .collect()
    }

    /// Everything is written: the publisher holds what it should.
    pub fn settled(&self) -> bool {
        self.zones_held
            && self.withdrawals.is_empty()
            && self
                .unsettled
                .iter()
                .all(|&i| self.slots[i].nodata && !self.live)
    }

    fn write_zones(&mut self) {
        let result = self.target.set_zones(&self.zones);
        self.zones_held = attempted(result, &mut self.zones_failing, || {
            "the zone tree (every zone's SOA)".to_string()
        });
    }

    pub fn target(&self) -> &P {
        &self.target
    }

    pub fn target_mut(&mut self) -> &mut P {
        &mut self.target
    }

    pub fn into_target(self) -> P {
        self.target
    }
}

/// Brings the publisher to what `slot` wants; true when it holds it.
fn write(target: &mut impl Publisher, slot: &mut Slot) -> bool {
    let result = match &slot.wanted {
        Some(entry) => target.put(&slot.name, slot.rtype, entry),
        None => target.withdraw(&slot.name, slot.rtype),
    };
    let done = attempted(result, &mut slot.failing, || {
        format!("{} {}", slot.name, type_name(slot.rtype))
    });
    if done {
        slot.held = slot.wanted.clone();
        slot.unsure = false;
    }
    done
}

/// Logs the first failure of a run of failures and the recovery; true when
/// `result` is a success.
fn attempted(result: Result<()>, failing: &mut bool, what: impl FnOnce() -> String) -> bool {
    match result {
        Ok(()) => {
            if *failing {
                info!("{}: written after earlier failures", what());
            }
            *failing = false;
            true
        }
        Err(e) => {
            if *failing {
                debug!("{}: writing failed again: {e:#}", what());
            } else {
                error!(
                    "{}: writing failed: {e:#}; retrying after every check",
                    what()
                );
            }
            *failing = true;
            false
        }
    }
}

/// Publishes what `config` answers when every endpoint is healthy: the zone
/// tree, every record's answer and every NODATA entry, through the same
/// path as the agent. Lets a test fill the kernel map and the userspace
/// table identically without running checks.
pub fn publish_all_healthy(config: &Config, target: &mut impl Publisher) -> Result<()> {
    let mut publication = Publication::new(target, config);
    let mut failed = false;
    for record in &config.records {
        let states = vec![State::Healthy; record.endpoints.len()];
        let decision = decide(&Rules::of(record), &states).expect("every endpoint is known");
        let entry = Entry::new(record.zone as u32, decision.ttl, decision.answer);
        failed |= publication.put(&record.name, record.rtype.code(), entry) == Put::Failed;
    }
    publication.go_live();
    if failed || !publication.settled() {
        bail!("some entries could not be published (see the log)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::rr::{RTYPE_A, RTYPE_AAAA, RTYPE_HTTPS, type_name};
    use crate::policy::Answer;
    use crate::serve::table::AnswerTable;
    use crate::serve::{Responder, Transport};
    use hickory_proto::op::{Message, Query, ResponseCode};
    use hickory_proto::rr::{Name, RecordType};
    use std::net::IpAddr;

    /// Every call, in order, as text.
    #[derive(Default)]
    struct Calls(Vec<String>);

    impl Publisher for Calls {
        fn set_zones(&mut self, _: &Arc<ZoneTree>) -> Result<()> {
            self.0.push("zones".into());
            Ok(())
        }
        fn put(&mut self, name: &str, rtype: u16, entry: &Entry) -> Result<()> {
            self.0
                .push(format!("put {name} {} {}", type_name(rtype), entry.answer));
            Ok(())
        }
        fn withdraw(&mut self, name: &str, rtype: u16) -> Result<()> {
            self.0.push(format!("withdraw {name} {}", type_name(rtype)));
            Ok(())
        }
    }

    /// `www.t.` with a record of each of `types` ("A", "AAAA").
    fn config(types: &[&str]) -> Config {
        let mut text = String::from("[[zone]]\norigin = \"t.\"\n[checks.c]\nkind = \"icmp\"\n");
        for rtype in types {
            let address = if *rtype == "A" {
                "192.0.2.1"
            } else {
                "2001:db8::1"
            };
            text += &format!(
                "[[record]]\nname = \"www.t.\"\ntype = \"{rtype}\"\npolicy = \"failover\"\ncheck = \"c\"\nendpoints = [{{ address = \"{address}\" }}]\n"
            );
        }
        Config::parse(&text, "test.toml").unwrap()
    }

    fn answer(address: &str) -> Entry {
        Entry::new(
            0,
            30,
            Answer::Addrs(vec![address.parse::<IpAddr>().unwrap()]),
        )
    }

    fn rcode(responder: &Responder, rtype: RecordType) -> ResponseCode {
        let mut query = Message::new();
        query.add_query(Query::query(Name::from_ascii("www.t.").unwrap(), rtype));
        let response = responder
            .answer(&query.to_vec().unwrap(), Transport::Udp)
            .unwrap();
        Message::from_vec(&response).unwrap().response_code()
    }

    #[test]
    fn a_type_added_by_a_reload_answers_servfail_until_checked_not_its_old_nodata() {
        let table = AnswerTable::new();
        let responder = Responder::new(table.clone());
        let mut publication = Publication::new(table.clone(), &config(&["A"]));
        publication.put("www.t.", RTYPE_A, answer("192.0.2.1"));
        publication.go_live();
        assert_eq!(table.get("www.t.", RTYPE_AAAA), Some(Entry::nodata(0)));

        // Resolvers would cache that NODATA: it goes with the reload, and
        // until its first check the new record is SERVFAIL (the kernel, with
        // no entry, passes the query up to userspace).
        publication.configure(&config(&["A", "AAAA"]));
        assert_eq!(table.get("www.t.", RTYPE_AAAA), None);
        assert_eq!(rcode(&responder, RecordType::AAAA), ResponseCode::ServFail);
        assert_eq!(table.get("www.t.", RTYPE_A), Some(answer("192.0.2.1")));
        assert_eq!(rcode(&responder, RecordType::A), ResponseCode::NoError);
        publication.flush();
        assert_eq!(table.get("www.t.", RTYPE_AAAA), None, "not written back");

        publication.put("www.t.", RTYPE_AAAA, answer("2001:db8::1"));
        assert_eq!(rcode(&responder, RecordType::AAAA), ResponseCode::NoError);
        assert!(publication.settled());
    }

    #[test]
    fn adopted_entries_are_kept_until_decided_and_the_others_withdrawn_at_go_live() {
        let table = AnswerTable::new();
        let responder = Responder::new(table.clone());
        let mut publication = Publication::new(table.clone(), &config(&["A"]));
        let kept = publication.adopt(vec![
            ("WWW.t.".into(), RTYPE_A, answer("192.0.2.9")),
            ("www.t.".into(), RTYPE_AAAA, Entry::nodata(0)),
            ("gone.t.".into(), RTYPE_A, answer("192.0.2.8")),
        ]);
        assert_eq!(kept, 2);
        // Userspace answers what the kernel answers, with no gap.
        assert_eq!(rcode(&responder, RecordType::A), ResponseCode::NoError);
        assert_eq!(table.get("www.t.", RTYPE_A), Some(answer("192.0.2.9")));
        publication.flush();
        assert_eq!(table.get("www.t.", RTYPE_A), Some(answer("192.0.2.9")));
        assert!(publication.settled());
        // The agent's decision replaces it; then the extra one goes.
        publication.put("www.t.", RTYPE_A, answer("192.0.2.1"));
        assert_eq!(table.get("www.t.", RTYPE_A), Some(answer("192.0.2.1")));

        let mut publication = Publication::new(Calls::default(), &config(&["A"]));
        publication.adopt(vec![("gone.t.".into(), RTYPE_A, answer("192.0.2.8"))]);
        publication.flush();
        assert_eq!(publication.target().0, ["zones"]);
        publication.put("www.t.", RTYPE_A, answer("192.0.2.1"));
        publication.go_live();
        assert!(
            publication
                .target()
                .0
                .contains(&"withdraw gone.t. A".to_string())
        );
    }

    #[test]
    fn paused_nothing_is_written_and_resuming_writes_what_was_decided() {
        let mut publication = Publication::new(Calls::default(), &config(&["A"]));
        publication.put("www.t.", RTYPE_A, answer("192.0.2.1"));
        publication.go_live();
        let held = publication.held_entries();
        assert_eq!(held.len(), 3, "{held:?}");
        assert!(held.contains(&("www.t.".into(), RTYPE_A, answer("192.0.2.1"))));
        assert!(held.contains(&("www.t.".into(), RTYPE_AAAA, Entry::nodata(0))));
        publication.target_mut().0.clear();
        publication.pause();
        assert_eq!(
            publication.put("www.t.", RTYPE_A, answer("192.0.2.2")),
            Put::Deferred
        );
        publication.configure(&config(&["A"]));
        publication.flush();
        assert!(
            publication.target().0.is_empty(),
            "{:?}",
            publication.target().0
        );
        // What a successor starts from is what the publisher holds.
        assert_eq!(publication.held_entries(), held);
        publication.resume();
        assert_eq!(publication.target().0, ["zones", "put www.t. A 192.0.2.2"]);
        assert!(publication.settled());
    }

    #[test]
    fn a_type_removed_by_a_reload_turns_into_nodata_and_stays() {
        let mut publication = Publication::new(Calls::default(), &config(&["A", "AAAA"]));
        publication.put("www.t.", RTYPE_A, answer("192.0.2.1"));
        publication.put("www.t.", RTYPE_AAAA, answer("2001:db8::1"));
        publication.go_live();
        assert_eq!(
            publication.target().0,
            [
                "zones",
                "put www.t. A 192.0.2.1",
                "put www.t. AAAA 2001:db8::1",
                "put www.t. HTTPS NODATA",
            ]
        );
        publication.target_mut().0.clear();
        publication.configure(&config(&["A"]));
        publication.flush();
        publication.flush();
        // NODATA replaces the answer; nothing withdraws it afterwards.
        assert_eq!(publication.target().0, ["zones", "put www.t. AAAA NODATA"]);
        assert_eq!(
            publication.held("www.t.", RTYPE_AAAA),
            Some(&Entry::nodata(0))
        );
        assert_eq!(
            publication.held("www.t.", RTYPE_HTTPS),
            Some(&Entry::nodata(0))
        );
        assert!(publication.settled());
    }

    #[test]
    fn a_removed_name_is_withdrawn_and_a_failed_withdrawal_is_retried() {
        struct Flaky {
            calls: Calls,
            fail: bool,
        }
        impl Publisher for Flaky {
            fn set_zones(&mut self, zones: &Arc<ZoneTree>) -> Result<()> {
                self.calls.set_zones(zones)
            }
            fn put(&mut self, name: &str, rtype: u16, entry: &Entry) -> Result<()> {
                self.calls.put(name, rtype, entry)
            }
            fn withdraw(&mut self, name: &str, rtype: u16) -> Result<()> {
                if self.fail {
                    bail!("map busy");
                }
                self.calls.withdraw(name, rtype)
            }
        }
        let flaky = Flaky {
            calls: Calls::default(),
            fail: true,
        };
        let mut publication = Publication::new(flaky, &config(&["A"]));
        publication.put("www.t.", RTYPE_A, answer("192.0.2.1"));
        publication.go_live();
        let mut other = config(&["A"]);
        other.records[0].name = "api.t.".into();
        publication.configure(&other);
        assert!(!publication.settled());
        publication.target_mut().fail = false;
        publication.flush();
        let calls = &publication.target().calls.0;
        for gone in [
            "withdraw www.t. A",
            "withdraw www.t. AAAA",
            "withdraw www.t. HTTPS",
        ] {
            assert_eq!(calls.iter().filter(|c| *c == gone).count(), 1, "{calls:?}");
        }
        // Back again before anything was checked: the record answers nothing
        // yet (SERVFAIL), its NODATA types are written again.
        publication.configure(&config(&["A"]));
        assert_eq!(publication.held("www.t.", RTYPE_A), None);
        assert_eq!(
            publication.held("www.t.", RTYPE_AAAA),
            Some(&Entry::nodata(0))
        );
    }
}
