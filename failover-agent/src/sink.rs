//! Where the agent's decisions go. The kernel map ([`crate::dataplane::Dataplane`])
//! is one sink; the userspace responder's table is another; tests use an
//! in-memory one. Both answering paths must be fed the same calls so that
//! they answer alike.

use std::net::IpAddr;

use anyhow::Result;

/// Record types a sink deals in (the DNS type numbers).
pub use failover_common::{
    QTYPE_A as RTYPE_A, QTYPE_AAAA as RTYPE_AAAA, QTYPE_HTTPS as RTYPE_HTTPS,
};

/// A zone's SOA, as negative answers carry it in the authority section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZoneSoa {
    /// The zone apex, absolute, lowercase: `"example.test."`.
    pub apex: String,
    /// SOA MNAME and RNAME, absolute.
    pub mname: String,
    pub rname: String,
    pub serial: u32,
    pub refresh: u32,
    pub retry: u32,
    pub expire: u32,
    pub minimum: u32,
    /// TTL of the SOA record in a negative answer: min(SOA TTL, MINIMUM)
    /// (RFC 2308 section 3).
    pub negative_ttl: u32,
}

/// Receives whole answer sets. Every call replaces what the sink held for that
/// (name, type) atomically: a reader sees the old or the new set, never a mix.
/// Names are absolute (`"www.example.test."`), any case.
///
/// The agent's order ([`crate::agent::publish_all_healthy`] follows it too):
/// `set_zone` for every zone at start; once every endpoint has been checked,
/// one call per record for its answer (`publish`, `publish_weighted`, or,
/// when every endpoint is down and the record says so, `publish_nodata` or
/// `publish_servfail` for its own type) and `publish_nodata` for each of A,
/// AAAA and HTTPS a record name lacks; after that one such call whenever a
/// record's answer (or its TTL) changes.
/// A call that fails is repeated after the next check (and a failed
/// `set_zone` before any further write), so repeating a call must be harmless.
/// A sink that does not hold a zone's SOA (its `set_zone` failed) must not
/// give negative answers for that zone without it: refuse such writes, or
/// leave such queries to someone else. [`crate::fanout::FanOut`] feeds two
/// sinks, each independently of the other's failures.
pub trait AnswerSink {
    /// Declares zone number `zone` (its index in the configuration) and its SOA.
    /// Called before any record of the zone is published.
    fn set_zone(&mut self, zone: u32, soa: &ZoneSoa) -> Result<()>;
    /// Replaces the answer set of (`name`, `rtype`), `rtype` being A or AAAA
    /// and `addrs` 1 to 16 addresses of the matching family.
    fn publish(
        &mut self,
        name: &str,
        rtype: u16,
        zone: u32,
        ttl: u32,
        addrs: &[IpAddr],
    ) -> Result<()>;
    /// Replaces the answer of (`name`, `rtype`) with a weighted set: every
    /// query is answered with ONE of the addresses, picked at random per
    /// query in proportion to its weight (1 to 16 pairs, every weight >= 1,
    /// addresses of the type's family).
    fn publish_weighted(
        &mut self,
        name: &str,
        rtype: u16,
        zone: u32,
        ttl: u32,
        weighted: &[(IpAddr, u32)],
    ) -> Result<()>;
    /// Declares that the hot name `name` has no `rtype` records (A, AAAA or
    /// HTTPS): NOERROR, no answer, the zone's SOA in the authority section.
    fn publish_nodata(&mut self, name: &str, rtype: u16, zone: u32) -> Result<()>;
    /// Answers (`name`, `rtype`) (A or AAAA) with SERVFAIL: no records,
    /// AA=0 (a record whose every endpoint is down, configured to say so).
    fn publish_servfail(&mut self, name: &str, rtype: u16, zone: u32) -> Result<()>;
    /// Forgets (`name`, `rtype`): queries for it are no longer answered from
    /// this sink.
    fn withdraw(&mut self, name: &str, rtype: u16) -> Result<()>;
}
