//! The userspace responder: one DNS query in, its answer out. No sockets
//! ([`crate::server`] has those), so every rule is tested as a pure function,
//! and fuzzers and the kernel/userspace differential test call it directly.
//!
//! It answers from the zone structure in the configuration (apex SOA and NS,
//! nameserver addresses, which names exist) and from the [`AnswerTable`] the
//! agent keeps current (answer sets of the health-checked records, NODATA
//! declarations, each zone's SOA), the same calls that feed the kernel map.
//!
//! What it answers, for a query that parses (RFC 1035, 2308, 6891, 8020, 8482):
//!
//! | query | answer |
//! |---|---|
//! | QR=1 (a response), or under 12 bytes | nothing (never answer an answer: no loops) |
//! | does not parse, trailing bytes, counts that cannot fit | FORMERR: the id, opcode and RD echoed, nothing else |
//! | opcode other than QUERY | NOTIMP |
//! | EDNS version > 0 | BADVERS (extended RCODE 16) with an OPT of version 0 |
//! | QDCOUNT != 1, ANCOUNT or NSCOUNT != 0, QTYPE OPT | FORMERR |
//! | class other than IN | REFUSED: there is no data in other classes |
//! | name in no configured zone | REFUSED: this is not a resolver |
//! | AXFR, IXFR (with or without the client's SOA in authority) | REFUSED: zone transfers are not offered |
//! | signed with TSIG | NOTAUTH with an unsigned TSIG of error BADKEY (no key is configured, RFC 8945 5.2) |
//! | name that does not exist in the zone | NXDOMAIN, SOA in authority |
//! | name that exists, type it lacks | NOERROR, no answer, SOA in authority (NODATA) |
//! | record, A/AAAA | the answer set, the record's TTL |
//! | record not yet decided (first checks running) | SERVFAIL |
//! | apex SOA / NS | the SOA / the NS set, nameserver addresses in additional |
//! | ANY | one RRset (RFC 8482): the SOA at the apex, else A, else AAAA; NODATA if none |
//!
//! Names that exist: zone apexes, record names, nameserver names inside a
//! zone, and every name between those and their apex (empty non-terminals,
//! RFC 8020: NODATA, not NXDOMAIN). The most specific zone wins when zones
//! nest. Names compare case-insensitively; the question is echoed exactly as
//! sent and answer owners use the query's spelling (0x20 survives).
//!
//! Every response: QR=1, the query's id and opcode, RD and CD copied (for
//! opcode QUERY; cleared for the others, where they are undefined), RA=0,
//! AD=0, AA=1 for answers from a zone (NOERROR, NXDOMAIN) and 0 for errors.
//! It carries an OPT (UDP size 1232, version 0, DO copied, no options) exactly
//! when the query did. Over UDP a response never exceeds 512 bytes without
//! EDNS or max(512, advertised size) capped at 1232 with it; one that would is
//! sent truncated: TC=1, the question (and OPT), no records, so the client
//! retries over TCP, where the same query gets the whole answer.

use hickory_proto::dnssec::rdata::DNSSECRData;
use hickory_proto::dnssec::rdata::tsig::{TSIG, make_tsig_record};
use hickory_proto::op::{Message, OpCode, ResponseCode};
use hickory_proto::rr::rdata::NS;
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

use std::net::IpAddr;
use std::sync::Arc;

use super::cookies::{CookieStatus, Cookies, OPTION_COOKIE, split, unix_now};
use super::select::{random_u64, weighted_pick, window};
use super::table::{AnswerTable, AnswerView};
use super::wire::{Outcome, Transport, address_record, bare_error, encode, parse, soa_record};
use super::zones::{Source, ZoneTree};
use crate::dns::name::{label_count, labels_key};
use crate::dns::rr::{RTYPE_A, RTYPE_AAAA};
use crate::policy::Answer;

/// Answers DNS queries from an [`AnswerTable`]: its zone tree and entries.
/// Cheap to clone; clones share the table.
#[derive(Clone)]
pub struct Responder {
    answers: AnswerTable,
    /// DNS cookies (`[cookies]`); `None`: off, COOKIE options are ignored.
    cookies: Option<Arc<Cookies>>,
}

impl Responder {
    /// A responder answering from `answers` (both what exists and the
    /// answer sets come through the publication path).
    pub fn new(answers: AnswerTable) -> Responder {
        Responder {
            answers,
            cookies: None,
        }
    }

    /// This responder with DNS cookies checked and answered (see
    /// [`Responder::answer_from`]).
    pub fn with_cookies(mut self, cookies: Option<Arc<Cookies>>) -> Responder {
        self.cookies = cookies;
        self
    }

    pub fn cookies(&self) -> Option<&Arc<Cookies>> {
        self.cookies.as_ref()
    }

    /// The table this responder answers from.
    pub fn answers(&self) -> &AnswerTable {
        &self.answers
    }

    /// The response to `query` (one DNS message, without the TCP length
    /// prefix), or `None` when it must not be answered at all.
    /// COOKIE options are not looked at (no client address to check them
    /// against): the answer's OPT has none.
    pub fn answer(&self, query: &[u8], transport: Transport) -> Option<Vec<u8>> {
        self.answer_inner(query, transport, None)
            .map(|(bytes, _)| bytes)
    }

    /// The response to `query` from `client`, now, and what its COOKIE
    /// option was (RFC 7873 section 5.2, when cookies are on): malformed
    /// (a length other than 8 or 16 to 40 bytes): FORMERR; a client cookie
    /// alone, or with a server cookie that is not valid: answered as
    /// usual with a fresh server cookie (5.2.3, and 5.2.4's recommended
    /// choice: never BADCOOKIE); a valid server cookie: answered with a
    /// fresh one. Only the first COOKIE option counts.
    pub fn answer_from(
        &self,
        query: &[u8],
        transport: Transport,
        client: IpAddr,
    ) -> Option<(Vec<u8>, CookieStatus)> {
        self.answer_inner(query, transport, Some((client, unix_now())))
    }

    /// [`Responder::answer_from`] at `now` (seconds since the epoch).
    pub fn answer_at(
        &self,
        query: &[u8],
        transport: Transport,
        client: IpAddr,
        now: u32,
    ) -> Option<(Vec<u8>, CookieStatus)> {
        self.answer_inner(query, transport, Some((client, now)))
    }

    fn answer_inner(
        &self,
        query: &[u8],
        transport: Transport,
        client: Option<(IpAddr, u32)>,
    ) -> Option<(Vec<u8>, CookieStatus)> {
        if query.len() < 12 {
            return None;
        }
        if query[2] & 0x80 != 0 {
            return None;
        }
        let opcode = (query[2] >> 3) & 0x0f;
        let message = match parse(query) {
            Some(message) => message,
            None => {
                let rcode = if opcode == 0 {
                    ResponseCode::FormErr
                } else {
                    ResponseCode::NotImp
                };
                return Some((bare_error(query, rcode), CookieStatus::Absent));
            }
        };
        let (status, cookie) = match (&self.cookies, client) {
            (Some(cookies), Some((addr, now))) => match query_cookie(&message) {
                None => (CookieStatus::Absent, None),
                Some(option) => match split(&option) {
                    None => {
                        let outcome = Outcome::error(ResponseCode::FormErr);
                        return Some((encode(&message, outcome, transport), CookieStatus::Absent));
                    }
                    Some((client, server)) => {
                        let (status, ours) = cookies.check(client, server, addr, now);
                        (status, Some(ours.to_vec()))
                    }
                },
            },
            _ => (CookieStatus::Absent, None),
        };
        let mut outcome = self.resolve(&message);
        outcome.cookie = cookie;
        Some((encode(&message, outcome, transport), status))
    }

    fn resolve(&self, message: &Message) -> Outcome {
        if message
            .extensions()
            .as_ref()
            .is_some_and(|e| e.version() > 0)
        {
            return Outcome::error(ResponseCode::BADVERS);
        }
        if message.op_code() != OpCode::Query {
            return Outcome::error(ResponseCode::NotImp);
        }
        if let Some(tsig) = message
            .signature()
            .iter()
            .find(|r| r.record_type() == RecordType::TSIG)
        {
            return unknown_key(message, tsig);
        }
        // An IXFR carries the client's SOA in the authority section (RFC
        // 1995 section 3): refused below like AXFR, not malformed.
        let is_ixfr =
            message.queries().len() == 1 && message.queries()[0].query_type() == RecordType::IXFR;
        if message.queries().len() != 1
            || message.answer_count() != 0
            || (message.name_server_count() != 0 && !is_ixfr)
        {
            return Outcome::error(ResponseCode::FormErr);
        }
        let question = &message.queries()[0];
        if question.query_type() == RecordType::OPT {
            return Outcome::error(ResponseCode::FormErr);
        }
        if question.query_class() != DNSClass::IN {
            return Outcome::error(ResponseCode::Refused);
        }
        let qname = question.name();
        let key = labels_key(qname.iter());
        let view = self.answers.read();
        let zones = view.zones();
        let Some(zone) = zones.find(&key) else {
            return Outcome::error(ResponseCode::Refused);
        };
        let qtype = question.query_type();
        if matches!(qtype, RecordType::AXFR | RecordType::IXFR) {
            return Outcome::error(ResponseCode::Refused);
        }
        let soa = &zone.soa;
        // The apex as the query spells it (the zone is a suffix of the name).
        let apex = qname.trim_to(zone.labels);
        let negative = |rcode| -> Outcome {
            let mut outcome = Outcome::authoritative(rcode);
            match soa_record(&apex, soa, soa.negative_ttl) {
                Some(record) => outcome.authority.push(record),
                None => return Outcome::error(ResponseCode::ServFail),
            }
            outcome
        };
        let Some(node) = zone.nodes.get(&key) else {
            return negative(ResponseCode::NXDomain);
        };
        let is_apex = label_count(&key) == zone.labels;
        let mut outcome = Outcome::authoritative(ResponseCode::NoError);
        match qtype {
            RecordType::SOA if is_apex => match soa_record(qname, soa, zone.soa_ttl) {
                Some(record) => outcome.answers.push(record),
                None => return Outcome::error(ResponseCode::ServFail),
            },
            RecordType::NS if is_apex => {
                for ns in &zone.nameservers {
                    outcome.answers.push(Record::from_rdata(
                        qname.clone(),
                        zone.ttl,
                        RData::NS(NS(ns.clone())),
                    ));
                }
                for ns in &zone.nameservers {
                    outcome.additional.extend(addresses_of(zones, ns));
                }
            }
            RecordType::A | RecordType::AAAA => {
                let (source, rtype) = if qtype == RecordType::A {
                    (&node.a, RTYPE_A)
                } else {
                    (&node.aaaa, RTYPE_AAAA)
                };
                match rrset(&view, &key, qname, zone.ttl, source, rtype) {
                    Lookup::Records(records) => outcome.answers = records,
                    Lookup::NoData => return negative(ResponseCode::NoError),
                    Lookup::Pending | Lookup::ServFail => {
                        return Outcome::error(ResponseCode::ServFail);
                    }
                }
            }
            RecordType::ANY => {
                // RFC 8482 section 4.2: one RRset rather than everything.
                if is_apex {
                    match soa_record(qname, soa, zone.soa_ttl) {
                        Some(record) => outcome.answers.push(record),
                        None => return Outcome::error(ResponseCode::ServFail),
                    }
                } else {
                    for (source, rtype) in [(&node.a, RTYPE_A), (&node.aaaa, RTYPE_AAAA)] {
                        match rrset(&view, &key, qname, zone.ttl, source, rtype) {
                            Lookup::Records(records) => {
                                outcome.answers = records;
                                break;
                            }
                            Lookup::NoData => {}
                            Lookup::Pending | Lookup::ServFail => {
                                return Outcome::error(ResponseCode::ServFail);
                            }
                        }
                    }
                    if outcome.answers.is_empty() {
                        return negative(ResponseCode::NoError);
                    }
                }
            }
            _ => return negative(ResponseCode::NoError),
        }
        outcome
    }
}

/// The first COOKIE option of the query's OPT (later ones are ignored,
/// RFC 7873 section 5.2).
fn query_cookie(message: &Message) -> Option<Vec<u8>> {
    let edns = message.extensions().as_ref()?;
    edns.options()
        .as_ref()
        .iter()
        .find(|(code, _)| u16::from(*code) == OPTION_COOKIE)
        .and_then(|(_, option)| Vec::<u8>::try_from(option).ok())
}

enum Lookup {
    Records(Vec<Record>),
    NoData,
    /// A checked record whose first answer set is not decided yet.
    Pending,
    /// Every endpoint is down and the record says SERVFAIL then.
    ServFail,
}

/// The `rtype` RRset of the name `key` (owner spelled `owner`).
fn rrset(
    view: &AnswerView<'_>,
    key: &[u8],
    owner: &Name,
    fixed_ttl: u32,
    source: &Source,
    rtype: u16,
) -> Lookup {
    // A NODATA or an answer set in the table wins over the configuration: the
    // table is what the kernel answers from too.
    // Which addresses: picked per query as the kernel picks them.
    let (ttl, addrs) = match (view.get(key, rtype), source) {
        (Some(entry), _) => match &entry.answer {
            Answer::Addrs(addrs) => (entry.ttl, window(addrs, addrs.len())),
            Answer::Rotating { addrs, per_answer } => (entry.ttl, window(addrs, *per_answer)),
            Answer::Weighted(choices) => (entry.ttl, vec![weighted_pick(choices, random_u64())]),
            Answer::ServFail => return Lookup::ServFail,
            Answer::NoData => return Lookup::NoData,
        },
        (None, Source::Checked) => return Lookup::Pending,
        (None, Source::Fixed(addrs)) => (fixed_ttl, addrs.clone()),
        (None, Source::None) => return Lookup::NoData,
    };
    let records: Vec<Record> = addrs
        .iter()
        .filter_map(|addr| address_record(owner, ttl, *addr, rtype))
        .collect();
    if records.is_empty() {
        Lookup::NoData
    } else {
        Lookup::Records(records)
    }
}

/// No TSIG key is configured, so every signed query names a key we do not
/// know: NOTAUTH with an unsigned TSIG of error BADKEY (RFC 8945 section
/// 5.2), its algorithm, time and fudge copied from the query's.
fn unknown_key(message: &Message, tsig: &Record) -> Outcome {
    const BADKEY: u16 = 17;
    let mut outcome = Outcome::error(ResponseCode::NotAuth);
    if let RData::DNSSEC(DNSSECRData::TSIG(theirs)) = tsig.data() {
        let ours = TSIG::new(
            theirs.algorithm().clone(),
            theirs.time(),
            theirs.fudge(),
            Vec::new(),
            message.id(),
            BADKEY,
            Vec::new(),
        );
        outcome.tsig = Some(make_tsig_record(tsig.name().clone(), ours));
    }
    outcome
}

/// The configured addresses of nameserver `ns`, as A then AAAA records
/// owned by `ns` (so they compress against the NS records), if a
/// configured zone holds the name.
fn addresses_of(zones: &ZoneTree, ns: &Name) -> Vec<Record> {
    let key = labels_key(ns.iter());
    let Some(zone) = zones.find(&key) else {
        return Vec::new();
    };
    let Some(node) = zone.nodes.get(&key) else {
        return Vec::new();
    };
    let mut records = Vec::new();
    for (source, rtype) in [(&node.a, RTYPE_A), (&node.aaaa, RTYPE_AAAA)] {
        if let Source::Fixed(addrs) = source {
            records.extend(
                addrs
                    .iter()
                    .filter_map(|a| address_record(ns, zone.ttl, *a, rtype)),
            );
        }
    }
    records
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::policy::Answer;
    use crate::publish::publish_all_healthy;
    use crate::serve::table::Entry;
    use failover_common::EDNS_UDP_SIZE;
    use hickory_proto::dnssec::rdata::tsig::TsigAlgorithm;
    use hickory_proto::op::Query;
    use hickory_proto::op::{Edns, MessageType};
    use hickory_proto::rr::rdata::A;
    use hickory_proto::rr::rdata::SOA;
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    /// Two nested zones; records of both types, one at the apex, one below
    /// an empty non-terminal, one with 16 AAAA endpoints and a long name (too
    /// big for 512 bytes), one whose checks have not finished.
    const CONFIG: &str = r#"
[[zone]]
origin = "example.test."
ttl = 30
soa_ttl = 300
minimum = 60
serial = 2024010101
rname = "dns-admin@example.test"
nameservers = [
  { name = "ns1.example.test.", addresses = ["192.0.2.53", "2001:db8::53"] },
  { name = "ns.provider.invalid." },
]

[[zone]]
origin = "sub.example.test."
ttl = 20
minimum = 5

[[record]]
name = "www.example.test."
type = "A"
policy = "failover"
check = "c"
ttl = 10
endpoints = [{ address = "192.0.2.10", priority = 1 }, { address = "192.0.2.11", priority = 2 }]

[[record]]
name = "www.example.test."
type = "AAAA"
policy = "all-healthy"
check = "c"
endpoints = [{ address = "2001:db8::10" }, { address = "2001:db8::11" }]

[[record]]
name = "v4only.deep.example.test."
type = "A"
policy = "failover"
check = "c"
endpoints = [{ address = "192.0.2.20" }]

[[record]]
name = "example.test."
type = "A"
policy = "failover"
check = "c"
endpoints = [{ address = "192.0.2.1" }]

[[record]]
name = "pending.example.test."
type = "A"
policy = "failover"
check = "c"
endpoints = [{ address = "192.0.2.30" }]

[[record]]
name = "api.sub.example.test."
type = "A"
policy = "failover"
check = "c"
endpoints = [{ address = "192.0.2.40" }]

[checks.c]
kind = "tcp"
port = 80
"#;

    /// A 60-letter label: with 16 AAAA answers the response passes 512 bytes.
    fn big_name() -> String {
        format!("{}.example.test.", "b".repeat(60))
    }

    fn config() -> Config {
        let big: String = (1..=16)
            .map(|i| format!("{{ address = \"2001:db8::1:{i:x}\" }},"))
            .collect();
        let text = format!(
            "{CONFIG}\n[[record]]\nname = \"{}\"\ntype = \"AAAA\"\npolicy = \"all-healthy\"\nmax_answers = 16\ncheck = \"c\"\nendpoints = [{big}]\n",
            big_name()
        );
        Config::parse(&text, "test").unwrap()
    }

    /// The responder as the agent leaves it once every endpoint is healthy,
    /// except that pending.example.test. A has no answer set yet.
    fn responder() -> Responder {
        let config = config();
        let mut table = AnswerTable::new();
        publish_all_healthy(&config, &mut table).unwrap();
        table.withdraw("pending.example.test.", RTYPE_A).unwrap();
        Responder::new(table)
    }

    fn query(name: &str, rtype: RecordType) -> Message {
        let mut m = Message::new();
        m.set_id(0xbeef)
            .set_message_type(MessageType::Query)
            .set_op_code(OpCode::Query)
            .set_recursion_desired(true)
            .add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
        m
    }

    fn with_edns(mut m: Message, payload: u16, dnssec_ok: bool) -> Message {
        let mut edns = Edns::new();
        edns.set_max_payload(payload);
        edns.set_dnssec_ok(dnssec_ok);
        m.set_edns(edns);
        m
    }

    fn raw(r: &Responder, query: &[u8], transport: Transport) -> Vec<u8> {
        r.answer(query, transport).expect("an answer")
    }

    fn ask_over(r: &Responder, query: &Message, transport: Transport) -> Message {
        let bytes = query.to_vec().unwrap();
        let answer = raw(r, &bytes, transport);
        let response = Message::from_vec(&answer).unwrap();
        // Always: the id, QR=1, RA=0, AD=0, RD and CD copied for a QUERY
        // (cleared for other opcodes, where they are undefined).
        assert_eq!(response.id(), query.id());
        assert_eq!(response.message_type(), MessageType::Response);
        assert!(!response.recursion_available());
        assert!(!response.authentic_data());
        let is_query = query.op_code() == OpCode::Query;
        assert_eq!(
            response.recursion_desired(),
            is_query && query.recursion_desired()
        );
        assert_eq!(
            response.checking_disabled(),
            is_query && query.checking_disabled()
        );
        // The OPT exactly when the query had one.
        assert_eq!(
            response.extensions().is_some(),
            query.extensions().is_some()
        );
        response
    }

    fn ask(r: &Responder, query: &Message) -> Message {
        ask_over(r, query, Transport::Udp)
    }

    fn v4(records: &[Record]) -> Vec<(String, u32, Ipv4Addr)> {
        records
            .iter()
            .map(|r| match r.data() {
                RData::A(a) => (r.name().to_string(), r.ttl(), a.0),
                other => panic!("not an A record: {other:?}"),
            })
            .collect()
    }

    fn v6(records: &[Record]) -> Vec<(String, u32, Ipv6Addr)> {
        records
            .iter()
            .map(|r| match r.data() {
                RData::AAAA(a) => (r.name().to_string(), r.ttl(), a.0),
                other => panic!("not an AAAA record: {other:?}"),
            })
            .collect()
    }

    /// Asserts a negative answer: `rcode`, AA, no answer, exactly the SOA of
    /// `apex` with `ttl` in authority.
    fn assert_negative(response: &Message, rcode: ResponseCode, apex: &str, ttl: u32) {
        assert_eq!(response.response_code(), rcode, "{response}");
        assert!(response.authoritative(), "{response}");
        assert!(response.answers().is_empty(), "{response}");
        assert!(response.additionals().is_empty(), "{response}");
        let authority = response.name_servers();
        assert_eq!(authority.len(), 1, "{response}");
        assert_eq!(authority[0].record_type(), RecordType::SOA);
        assert_eq!(authority[0].name().to_string(), apex);
        assert_eq!(authority[0].ttl(), ttl, "min(SOA TTL, MINIMUM)");
    }

    fn assert_error(response: &Message, rcode: ResponseCode) {
        assert_eq!(response.response_code(), rcode, "{response}");
        assert!(!response.authoritative(), "{response}");
        assert!(response.answers().is_empty());
        assert!(response.name_servers().is_empty());
        assert!(response.additionals().is_empty());
    }

    #[test]
    fn a_and_aaaa_of_records_are_the_answer_sets() {
        let r = responder();
        let response = ask(&r, &query("www.example.test.", RecordType::A));
        assert_eq!(response.response_code(), ResponseCode::NoError);
        assert!(response.authoritative());
        assert!(!response.truncated());
        // The failover policy: the primary only, with the record's TTL.
        assert_eq!(
            v4(response.answers()),
            [("www.example.test.".into(), 10, Ipv4Addr::new(192, 0, 2, 10))]
        );
        assert!(response.name_servers().is_empty() && response.additionals().is_empty());
        assert_eq!(
            response.queries(),
            query("www.example.test.", RecordType::A).queries()
        );

        let response = ask(&r, &query("www.example.test.", RecordType::AAAA));
        // The order rotates per query, as in the kernel.
        let mut answers = v6(response.answers());
        answers.sort();
        assert_eq!(
            answers,
            [
                (
                    "www.example.test.".into(),
                    30,
                    "2001:db8::10".parse().unwrap()
                ),
                (
                    "www.example.test.".into(),
                    30,
                    "2001:db8::11".parse().unwrap()
                ),
            ],
            "all-healthy, the zone's TTL"
        );
        let response = ask(&r, &query("example.test.", RecordType::A));
        assert_eq!(
            v4(response.answers()),
            [("example.test.".into(), 30, Ipv4Addr::new(192, 0, 2, 1))],
            "an A record at the apex"
        );
    }

    #[test]
    fn answers_follow_the_table() {
        let r = responder();
        let table = r.answers().clone();
        let q = query("www.example.test.", RecordType::A);
        let backup = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 11));
        let answer = Entry::new(0, 10, Answer::Addrs(vec![backup]));
        table.put("www.example.test.", RTYPE_A, &answer).unwrap();
        assert_eq!(v4(ask(&r, &q).answers())[0].2, Ipv4Addr::new(192, 0, 2, 11));
        table
            .put("www.example.test.", RTYPE_A, &Entry::nodata(0))
            .unwrap();
        assert_negative(&ask(&r, &q), ResponseCode::NoError, "example.test.", 60);
        table.withdraw("www.example.test.", RTYPE_A).unwrap();
        assert_error(&ask(&r, &q), ResponseCode::ServFail);
    }

    #[test]
    fn answers_rotate_and_a_capped_set_answers_a_rotating_window() {
        let r = responder();
        let table = r.answers().clone();
        let q = query("www.example.test.", RecordType::A);
        let ip = |i: u8| IpAddr::V4(Ipv4Addr::new(192, 0, 2, i));
        // A whole set: every answer carries all of it, first in turn.
        let all = Entry::new(0, 10, Answer::Addrs(vec![ip(1), ip(2), ip(3)]));
        table.put("www.example.test.", RTYPE_A, &all).unwrap();
        // (Other tests move the shared rotation too: ask more than 3 times.)
        let firsts: std::collections::BTreeSet<Ipv4Addr> = (0..30)
            .map(|_| {
                let answers = v4(ask(&r, &q).answers());
                assert_eq!(answers.len(), 3);
                answers[0].2
            })
            .collect();
        assert_eq!(firsts.len(), 3, "the order rotates");
        // max_answers 2 of 4 healthy: a window of 2 that covers all 4.
        let rotating = Answer::Rotating {
            addrs: vec![ip(1), ip(2), ip(3), ip(4)],
            per_answer: 2,
        };
        let capped = Entry::new(0, 10, rotating);
        table.put("www.example.test.", RTYPE_A, &capped).unwrap();
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..40 {
            let answers = v4(ask(&r, &q).answers());
            assert_eq!(answers.len(), 2);
            seen.extend(answers.into_iter().map(|a| a.2));
        }
        assert_eq!(seen.len(), 4, "every healthy endpoint gets traffic");
    }

    #[test]
    fn a_record_without_an_answer_set_yet_is_servfail() {
        let r = responder();
        assert_error(
            &ask(&r, &query("pending.example.test.", RecordType::A)),
            ResponseCode::ServFail,
        );
        // The types it lacks are known without any check.
        assert_negative(
            &ask(&r, &query("pending.example.test.", RecordType::AAAA)),
            ResponseCode::NoError,
            "example.test.",
            60,
        );
        // Nothing published yet: no zone is known, so nothing is answered
        // (the agent publishes the zone tree before the server starts).
        let empty = Responder::new(AnswerTable::new());
        assert_error(
            &ask(&empty, &query("www.example.test.", RecordType::A)),
            ResponseCode::Refused,
        );
        assert_error(
            &ask(&empty, &query("www.other.invalid.", RecordType::A)),
            ResponseCode::Refused,
        );
    }

    #[test]
    fn types_a_name_lacks_are_nodata_with_the_soa() {
        let r = responder();
        for (name, rtype) in [
            ("www.example.test.", RecordType::MX),
            ("www.example.test.", RecordType::TXT),
            ("www.example.test.", RecordType::HTTPS),
            ("www.example.test.", RecordType::SVCB),
            ("www.example.test.", RecordType::CNAME),
            ("www.example.test.", RecordType::Unknown(65280)),
            ("v4only.deep.example.test.", RecordType::AAAA),
            ("example.test.", RecordType::AAAA),
            ("example.test.", RecordType::MX),
            ("ns1.example.test.", RecordType::TXT),
            // SOA and NS exist only at the apex.
            ("www.example.test.", RecordType::SOA),
            ("www.example.test.", RecordType::NS),
        ] {
            let response = ask(&r, &query(name, rtype));
            assert_negative(&response, ResponseCode::NoError, "example.test.", 60);
        }
    }

    #[test]
    fn empty_non_terminals_are_nodata_not_nxdomain() {
        let r = responder();
        for rtype in [RecordType::A, RecordType::AAAA, RecordType::TXT] {
            assert_negative(
                &ask(&r, &query("deep.example.test.", rtype)),
                ResponseCode::NoError,
                "example.test.",
                60,
            );
        }
        assert_negative(
            &ask(&r, &query("below.deep.example.test.", RecordType::A)),
            ResponseCode::NXDomain,
            "example.test.",
            60,
        );
    }

    #[test]
    fn unknown_names_in_a_zone_are_nxdomain() {
        let r = responder();
        for name in [
            "nope.example.test.",
            "below.www.example.test.",
            "ww.example.test.",
            "wwww.example.test.",
        ] {
            for rtype in [
                RecordType::A,
                RecordType::AAAA,
                RecordType::MX,
                RecordType::ANY,
            ] {
                assert_negative(
                    &ask(&r, &query(name, rtype)),
                    ResponseCode::NXDomain,
                    "example.test.",
                    60,
                );
            }
        }
    }

    #[test]
    fn names_outside_every_zone_are_refused() {
        let r = responder();
        for name in [
            "other.invalid.",
            "test.",
            ".",
            "example.test.other.",
            "xexample.test.",
        ] {
            let response = ask(&r, &query(name, RecordType::A));
            assert_error(&response, ResponseCode::Refused);
            assert_eq!(response.queries().len(), 1, "question echoed");
        }
    }

    #[test]
    fn the_most_specific_zone_answers() {
        let r = responder();
        let response = ask(&r, &query("api.sub.example.test.", RecordType::A));
        assert_eq!(
            v4(response.answers()),
            [(
                "api.sub.example.test.".into(),
                20,
                Ipv4Addr::new(192, 0, 2, 40)
            )]
        );
        // sub's SOA: TTL min(20, 5), its default names.
        let response = ask(&r, &query("api.sub.example.test.", RecordType::AAAA));
        assert_negative(&response, ResponseCode::NoError, "sub.example.test.", 5);
        let RData::SOA(soa) = response.name_servers()[0].data() else {
            panic!()
        };
        assert_eq!(soa.mname().to_string(), "ns1.sub.example.test.");
        assert_eq!(soa.rname().to_string(), "hostmaster.sub.example.test.");
        assert_negative(
            &ask(&r, &query("nope.sub.example.test.", RecordType::A)),
            ResponseCode::NXDomain,
            "sub.example.test.",
            5,
        );
        // The default nameserver of sub exists (NODATA), it has no addresses.
        assert_negative(
            &ask(&r, &query("ns1.sub.example.test.", RecordType::A)),
            ResponseCode::NoError,
            "sub.example.test.",
            5,
        );
        let ns = ask(&r, &query("sub.example.test.", RecordType::NS));
        assert_eq!(ns.answers().len(), 1);
        assert!(ns.additionals().is_empty(), "no addresses, no glue");
    }

    #[test]
    fn apex_soa_ns_and_glue() {
        let r = responder();
        let response = ask(&r, &query("example.test.", RecordType::SOA));
        assert_eq!(response.response_code(), ResponseCode::NoError);
        assert!(response.authoritative());
        assert_eq!(response.answers().len(), 1);
        let soa_record = &response.answers()[0];
        assert_eq!(
            soa_record.ttl(),
            300,
            "the SOA's own TTL in a positive answer"
        );
        let RData::SOA(soa) = soa_record.data() else {
            panic!("{soa_record:?}")
        };
        assert_eq!(
            soa.mname().to_string(),
            "ns1.example.test.",
            "the first nameserver"
        );
        assert_eq!(soa.rname().to_string(), "dns-admin.example.test.");
        assert_eq!(soa.serial(), 2024010101);
        assert_eq!(
            (soa.refresh(), soa.retry(), soa.expire(), soa.minimum()),
            (14400, 3600, 1209600, 60),
            "the defaults zone checkers ask for"
        );
        assert!(response.name_servers().is_empty());

        let response = ask(&r, &query("example.test.", RecordType::NS));
        assert!(response.authoritative());
        let ns: Vec<(String, u32, String)> = response
            .answers()
            .iter()
            .map(|r| match r.data() {
                RData::NS(ns) => (r.name().to_string(), r.ttl(), ns.0.to_string()),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            ns,
            [
                ("example.test.".into(), 30, "ns1.example.test.".into()),
                ("example.test.".into(), 30, "ns.provider.invalid.".into()),
            ]
        );
        // Glue for the in-zone nameserver only, both families.
        let additional = response.additionals();
        assert_eq!(additional.len(), 2, "{response}");
        assert_eq!(
            v4(&additional[..1]),
            [("ns1.example.test.".into(), 30, Ipv4Addr::new(192, 0, 2, 53))]
        );
        assert_eq!(
            v6(&additional[1..]),
            [(
                "ns1.example.test.".into(),
                30,
                "2001:db8::53".parse().unwrap()
            )]
        );

        // The nameserver's own address records.
        let response = ask(&r, &query("ns1.example.test.", RecordType::A));
        assert!(response.authoritative());
        assert_eq!(
            v4(response.answers()),
            [("ns1.example.test.".into(), 30, Ipv4Addr::new(192, 0, 2, 53))]
        );
        let response = ask(&r, &query("NS1.example.TEST.", RecordType::AAAA));
        assert_eq!(
            v6(response.answers()),
            [(
                "NS1.example.TEST.".into(),
                30,
                "2001:db8::53".parse().unwrap()
            )]
        );
    }

    #[test]
    fn any_is_answered_with_one_rrset() {
        let r = responder();
        let response = ask(&r, &query("example.test.", RecordType::ANY));
        assert_eq!(response.answers().len(), 1);
        assert_eq!(response.answers()[0].record_type(), RecordType::SOA);
        let response = ask(&r, &query("www.example.test.", RecordType::ANY));
        assert_eq!(
            v4(response.answers()),
            [("www.example.test.".into(), 10, Ipv4Addr::new(192, 0, 2, 10))]
        );
        let response = ask_over(&r, &query(&big_name(), RecordType::ANY), Transport::Tcp);
        assert_eq!(v6(response.answers()).len(), 16, "AAAA when there is no A");
        assert_negative(
            &ask(&r, &query("deep.example.test.", RecordType::ANY)),
            ResponseCode::NoError,
            "example.test.",
            60,
        );
        assert_error(
            &ask(&r, &query("pending.example.test.", RecordType::ANY)),
            ResponseCode::ServFail,
        );
    }

    #[test]
    fn zone_transfers_other_classes_and_opt_questions() {
        let r = responder();
        for rtype in [RecordType::AXFR, RecordType::IXFR] {
            let response = ask(&r, &query("example.test.", rtype));
            assert_error(&response, ResponseCode::Refused);
        }
        for class in [DNSClass::CH, DNSClass::HS, DNSClass::ANY, DNSClass::NONE] {
            let mut q = query("www.example.test.", RecordType::A);
            q.queries_mut()[0].set_query_class(class);
            let response = ask(&r, &q);
            assert_error(&response, ResponseCode::Refused);
            assert_eq!(
                response.queries()[0].query_class(),
                class,
                "question echoed"
            );
        }
        assert_error(
            &ask(&r, &query("www.example.test.", RecordType::OPT)),
            ResponseCode::FormErr,
        );
    }

    #[test]
    fn ixfr_with_the_clients_soa_is_refused_like_axfr() {
        let r = responder();
        // RFC 1995 section 3: the client's SOA rides in the authority section.
        let mut q = query("example.test.", RecordType::IXFR);
        let soa = SOA::new(
            Name::from_ascii("ns1.example.test.").unwrap(),
            Name::from_ascii("hostmaster.example.test.").unwrap(),
            1,
            3600,
            600,
            86400,
            60,
        );
        q.add_name_server(Record::from_rdata(
            Name::from_ascii("example.test.").unwrap(),
            0,
            RData::SOA(soa),
        ));
        assert_error(&ask(&r, &q), ResponseCode::Refused);
        // Any other query with an authority section is still malformed.
        let mut a = query("www.example.test.", RecordType::A);
        a.add_name_servers(q.name_servers().to_vec());
        assert_error(&ask(&r, &a), ResponseCode::FormErr);
    }

    #[test]
    fn tsig_signed_queries_get_notauth_badkey_unsigned() {
        let r = responder();
        let mut q = query("www.example.test.", RecordType::A);
        let key = Name::from_ascii("transfer-key.").unwrap();
        let theirs = TSIG::new(
            TsigAlgorithm::HmacSha256,
            1_700_000_000,
            300,
            vec![0xab; 32],
            q.id(),
            0,
            Vec::new(),
        );
        q.add_tsig(make_tsig_record(key.clone(), theirs));
        let response = ask(&r, &q);
        assert_eq!(response.response_code(), ResponseCode::NotAuth);
        assert!(response.answers().is_empty() && !response.authoritative());
        // RFC 8945 section 5.2: BADKEY (17), no MAC; time and fudge echoed.
        let expected = TSIG::new(
            TsigAlgorithm::HmacSha256,
            1_700_000_000,
            300,
            Vec::new(),
            q.id(),
            17,
            Vec::new(),
        );
        assert_eq!(
            response.signature(),
            [make_tsig_record(key, expected)],
            "{response}"
        );
    }

    #[test]
    fn question_and_owners_keep_the_queried_case() {
        let r = responder();
        for (name, apex) in [
            ("WwW.ExAmPlE.tEsT.", "ExAmPlE.tEsT."),
            ("WWW.EXAMPLE.TEST.", "EXAMPLE.TEST."),
        ] {
            let q = query(name, RecordType::A);
            let bytes = q.to_vec().unwrap();
            let answer = raw(&r, &bytes, Transport::Udp);
            let question_len = bytes.len() - 12;
            assert_eq!(
                answer[12..12 + question_len],
                bytes[12..],
                "the question, byte for byte"
            );
            let response = Message::from_vec(&answer).unwrap();
            assert_eq!(response.answers()[0].name().to_string(), name);
            // The SOA owner in a negative answer: the apex as the query spells it.
            let nodata = ask(&r, &query(name, RecordType::TXT));
            assert_negative(&nodata, ResponseCode::NoError, apex, 60);
        }
    }

    #[test]
    fn flags_rd_cd_copied_ad_never_set() {
        let r = responder();
        for (rd, cd, ad) in [
            (false, false, false),
            (true, true, true),
            (false, true, false),
        ] {
            let mut q = query("www.example.test.", RecordType::A);
            q.set_recursion_desired(rd)
                .set_checking_disabled(cd)
                .set_authentic_data(ad);
            let response = ask(&r, &q);
            assert_eq!(response.recursion_desired(), rd);
            assert_eq!(response.checking_disabled(), cd);
            assert!(!response.authentic_data());
        }
    }

    #[test]
    fn edns_is_echoed_with_our_size_and_the_do_bit() {
        let r = responder();
        for dnssec_ok in [false, true] {
            let q = with_edns(query("www.example.test.", RecordType::A), 4096, dnssec_ok);
            let response = ask(&r, &q);
            let edns = response.extensions().as_ref().expect("an OPT");
            assert_eq!(edns.max_payload(), EDNS_UDP_SIZE);
            assert_eq!(edns.version(), 0);
            assert_eq!(edns.flags().dnssec_ok, dnssec_ok);
            assert!(edns.options().as_ref().is_empty(), "no options");
            assert_eq!(response.answers().len(), 1);
        }
        // Negative answers and errors carry it too.
        let q = with_edns(query("nope.example.test.", RecordType::A), 1232, false);
        assert!(ask(&r, &q).extensions().is_some());
        let q = with_edns(query("other.invalid.", RecordType::A), 1232, false);
        assert!(ask(&r, &q).extensions().is_some());
    }

    #[test]
    fn edns_version_above_zero_is_badvers() {
        let r = responder();
        let mut q = with_edns(query("www.example.test.", RecordType::A), 1232, true);
        q.extensions_mut().as_mut().unwrap().set_version(1);
        let bytes = q.to_vec().unwrap();
        let answer = raw(&r, &bytes, Transport::Udp);
        // The header's 4 bits are 0; the OPT's extended RCODE is 1: 16 in all.
        assert_eq!(answer[3] & 0x0f, 0);
        let response = Message::from_vec(&answer).unwrap();
        // hickory decodes 16 as BADSIG (the TSIG meaning of the same number).
        assert_eq!(u16::from(response.response_code()), 16);
        let edns = response.extensions().as_ref().unwrap();
        assert_eq!(edns.version(), 0, "the version we do speak");
        assert_eq!(edns.rcode_high(), 1);
        assert!(edns.flags().dnssec_ok);
        assert!(response.answers().is_empty());
        assert_eq!(response.queries().len(), 1);
    }

    #[test]
    fn too_big_for_udp_is_truncated_and_whole_over_tcp() {
        let r = responder();
        let name = big_name();
        let q = query(&name, RecordType::AAAA);
        let bytes = q.to_vec().unwrap();
        let udp = raw(&r, &bytes, Transport::Udp);
        assert!(udp.len() <= 512, "{} bytes", udp.len());
        let response = Message::from_vec(&udp).unwrap();
        assert!(response.truncated());
        assert_eq!(response.response_code(), ResponseCode::NoError);
        assert!(response.authoritative());
        assert_eq!(response.queries(), q.queries(), "the question stays");
        assert!(response.answers().is_empty() && response.name_servers().is_empty());
        assert!(response.additionals().is_empty());

        let tcp = raw(&r, &bytes, Transport::Tcp);
        assert!(tcp.len() > 512);
        let response = Message::from_vec(&tcp).unwrap();
        assert!(!response.truncated());
        assert_eq!(v6(response.answers()).len(), 16);

        // EDNS: the advertised size counts (at least 512); OPT stays when truncated.
        let edns = with_edns(q.clone(), 1232, false);
        let whole = raw(&r, &edns.to_vec().unwrap(), Transport::Udp);
        assert!(!Message::from_vec(&whole).unwrap().truncated());
        for advertised in [512, 100, 0] {
            let small = with_edns(q.clone(), advertised, false);
            let answer = raw(&r, &small.to_vec().unwrap(), Transport::Udp);
            assert!(answer.len() <= 512);
            let response = Message::from_vec(&answer).unwrap();
            assert!(response.truncated(), "advertised {advertised}");
            assert!(response.extensions().is_some());
        }
        let exact = whole.len() as u16;
        let fits = with_edns(q.clone(), exact, false);
        assert!(
            !ask(&r, &fits).truncated(),
            "exactly the advertised size fits"
        );
        let short = with_edns(q.clone(), exact - 1, false);
        assert!(ask(&r, &short).truncated(), "one byte over");
        // We never send more than our own 1232 over UDP, whatever is advertised.
        let huge = with_edns(q, 65535, false);
        assert!(raw(&r, &huge.to_vec().unwrap(), Transport::Udp).len() <= 1232);
    }

    #[test]
    fn responses_and_runts_get_nothing() {
        let r = responder();
        assert_eq!(r.answer(&[], Transport::Udp), None);
        assert_eq!(r.answer(&[0u8; 11], Transport::Udp), None);
        let mut q = query("www.example.test.", RecordType::A);
        q.set_message_type(MessageType::Response);
        assert_eq!(r.answer(&q.to_vec().unwrap(), Transport::Udp), None);
        // Even a response that does not parse.
        assert_eq!(r.answer(&[0, 1, 0x80, 0, 0xff, 0xff], Transport::Tcp), None);
        let mut garbage = vec![0u8; 40];
        garbage[2] = 0x84;
        assert_eq!(r.answer(&garbage, Transport::Udp), None);
    }

    /// An error built from the header alone: id and opcode echoed, RD and
    /// CD too for a QUERY (cleared for other opcodes).
    fn assert_bare(answer: &[u8], query: &[u8], rcode: u8) {
        assert_eq!(answer.len(), 12, "{answer:02x?}");
        assert_eq!(answer[..2], query[..2], "id");
        let (rd, cd) = if query[2] & 0x78 == 0 {
            (0x01, 0x10)
        } else {
            (0, 0)
        };
        assert_eq!(answer[2], 0x80 | (query[2] & (0x78 | rd)), "QR, opcode, RD");
        assert_eq!(answer[3], (query[3] & cd) | rcode, "CD, RCODE");
        assert_eq!(answer[4..], [0u8; 8], "no sections");
    }

    #[test]
    fn malformed_queries_are_formerr() {
        let r = responder();
        let good = query("www.example.test.", RecordType::A).to_vec().unwrap();
        // Cut short in the question, in the name, after the header.
        for cut in [12, 13, 20, good.len() - 1] {
            let answer = raw(&r, &good[..cut], Transport::Udp);
            assert_bare(&answer, &good, 1);
        }
        // A byte too many.
        let mut long = good.clone();
        long.push(0);
        assert_bare(&raw(&r, &long, Transport::Udp), &good, 1);
        // Counts the message cannot hold (nothing is allocated for them).
        let mut counts = good.clone();
        counts[6..12].copy_from_slice(&[0xff; 6]);
        assert_bare(&raw(&r, &counts, Transport::Udp), &counts, 1);
        // A label pointing forward / a compression loop.
        let mut looped = good[..12].to_vec();
        looped.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
        assert_bare(&raw(&r, &looped, Transport::Udp), &looped, 1);
        // CD and a zero id survive.
        let mut cd = good.clone();
        cd[0] = 0;
        cd[1] = 0;
        cd[3] |= 0x10;
        cd.truncate(15);
        assert_bare(&raw(&r, &cd, Transport::Udp), &cd, 1);
    }

    #[test]
    fn wrong_section_counts_are_formerr() {
        let r = responder();
        let mut none = query("www.example.test.", RecordType::A);
        none.queries_mut().clear();
        let response = ask(&r, &none);
        assert_error(&response, ResponseCode::FormErr);
        assert!(response.queries().is_empty());

        let mut two = query("www.example.test.", RecordType::A);
        two.add_query(Query::query(
            Name::from_ascii("example.test.").unwrap(),
            RecordType::A,
        ));
        let response = ask(&r, &two);
        assert_error(&response, ResponseCode::FormErr);
        assert!(response.queries().is_empty());

        let record = Record::from_rdata(
            Name::from_ascii("www.example.test.").unwrap(),
            1,
            RData::A(A(Ipv4Addr::LOCALHOST)),
        );
        let mut answer = query("www.example.test.", RecordType::A);
        answer.add_answer(record.clone());
        assert_error(&ask(&r, &answer), ResponseCode::FormErr);
        let mut authority = query("www.example.test.", RecordType::A);
        authority.add_name_server(record.clone());
        assert_error(&ask(&r, &authority), ResponseCode::FormErr);
        // Other additional records are ignored (no TSIG support).
        let mut additional = query("www.example.test.", RecordType::A);
        additional.add_additional(record);
        assert_eq!(ask(&r, &additional).answers().len(), 1);
    }

    #[test]
    fn two_opt_records_are_formerr() {
        let r = responder();
        let q = with_edns(query("www.example.test.", RecordType::A), 1232, false);
        let mut bytes = q.to_vec().unwrap();
        bytes.extend_from_slice(&[0, 0, 41, 4, 0xd0, 0, 0, 0, 0, 0, 0]);
        bytes[11] = 2;
        let answer = raw(&r, &bytes, Transport::Udp);
        assert_bare(&answer, &bytes, 1);
        // An OPT whose owner is not the root.
        let mut bytes = query("www.example.test.", RecordType::A).to_vec().unwrap();
        bytes.extend_from_slice(&[1, b'x', 0, 0, 41, 4, 0xd0, 0, 0, 0, 0, 0, 0]);
        bytes[11] = 1;
        assert_bare(&raw(&r, &bytes, Transport::Udp), &bytes, 1);
    }

    #[test]
    fn other_opcodes_are_notimp() {
        let r = responder();
        for opcode in [
            OpCode::Status,
            OpCode::Notify,
            OpCode::Update,
            OpCode::Unknown(3),
        ] {
            let mut q = with_edns(query("www.example.test.", RecordType::SOA), 1232, false);
            q.set_op_code(opcode).set_checking_disabled(true);
            let response = ask(&r, &q);
            assert!(!response.recursion_desired() && !response.checking_disabled());
            assert_error(&response, ResponseCode::NotImp);
            assert_eq!(response.op_code(), opcode);
            assert_eq!(response.queries(), q.queries());
        }
        // Opcode 15 with a body that does not parse: NOTIMP from the header.
        let mut bytes = vec![0x12, 0x34, 0x79, 0x10, 0, 1, 0, 0, 0, 0, 0, 0, 7];
        let answer = raw(&r, &bytes, Transport::Udp);
        assert_bare(&answer, &bytes, 4);
        bytes.truncate(12);
        assert_bare(&raw(&r, &bytes, Transport::Udp), &bytes, 4);
    }

    #[test]
    fn tcp_answers_like_udp() {
        let r = responder();
        for (name, rtype) in [
            ("www.example.test.", RecordType::A),
            ("www.example.test.", RecordType::MX),
            ("nope.example.test.", RecordType::A),
            ("example.test.", RecordType::NS),
            ("other.invalid.", RecordType::A),
        ] {
            let q = query(name, rtype);
            let bytes = q.to_vec().unwrap();
            assert_eq!(
                raw(&r, &bytes, Transport::Tcp),
                raw(&r, &bytes, Transport::Udp),
                "{name} {rtype}"
            );
        }
    }

    /// Valid queries with random byte flips, cuts and extensions, and plain
    /// random bytes: never a panic; every answer parses, echoes the id, is a
    /// response, and keeps the UDP size limit.
    #[test]
    fn mutated_queries_never_panic_and_every_answer_parses() {
        let r = responder();
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            // xorshift64*: deterministic, no dependency.
            seed ^= seed >> 12;
            seed ^= seed << 25;
            seed ^= seed >> 27;
            seed.wrapping_mul(0x2545_f491_4f6c_dd1d)
        };
        let names = [
            "www.example.test.",
            "WwW.eXaMpLe.TeSt.",
            "example.test.",
            "nope.example.test.",
            "deep.example.test.",
            "api.sub.example.test.",
            "other.invalid.",
        ];
        let types = [
            RecordType::A,
            RecordType::AAAA,
            RecordType::HTTPS,
            RecordType::MX,
            RecordType::NS,
            RecordType::SOA,
            RecordType::ANY,
        ];
        let mut answered = 0;
        for case in 0..20_000u32 {
            let mut bytes = if case % 10 == 9 {
                (0..next() % 64).map(|_| next() as u8).collect()
            } else {
                let name = names[next() as usize % names.len()];
                let rtype = types[next() as usize % types.len()];
                let mut q = query(name, rtype);
                if next() % 2 == 0 {
                    q = with_edns(q, (next() % 5000) as u16, next() % 2 == 0);
                }
                q.to_vec().unwrap()
            };
            match next() % 4 {
                0 => {
                    for _ in 0..1 + next() % 4 {
                        let at = next() as usize % bytes.len().max(1);
                        if let Some(b) = bytes.get_mut(at) {
                            *b ^= 1 << (next() % 8);
                        }
                    }
                }
                1 => {
                    let at = next() as usize % bytes.len().max(1);
                    bytes[at..].iter_mut().for_each(|b| *b = next() as u8);
                }
                2 => bytes.truncate(next() as usize % (bytes.len() + 1)),
                _ => bytes.extend((0..next() % 16).map(|_| next() as u8)),
            }
            let transport = if next() % 4 == 0 {
                Transport::Tcp
            } else {
                Transport::Udp
            };
            let Some(answer) = r.answer(&bytes, transport) else {
                assert!(
                    bytes.len() < 12 || bytes[2] & 0x80 != 0,
                    "silence for {bytes:02x?}"
                );
                continue;
            };
            answered += 1;
            let response = Message::from_vec(&answer).unwrap_or_else(|e| {
                panic!("unparseable answer {answer:02x?} to {bytes:02x?}: {e}")
            });
            assert_eq!(answer[..2], bytes[..2], "id");
            assert_eq!(response.message_type(), MessageType::Response);
            if transport == Transport::Udp {
                assert!(answer.len() <= EDNS_UDP_SIZE as usize);
                if response.extensions().is_none() {
                    assert!(answer.len() <= 512, "{} bytes", answer.len());
                }
            }
        }
        assert!(answered > 15_000, "only {answered} answered");
    }

    /// `query` with an OPT carrying `cookie` as its COOKIE option (and,
    /// if given, a second COOKIE option after it).
    fn with_cookie(query: Message, cookie: &[u8], second: Option<&[u8]>) -> Vec<u8> {
        use hickory_proto::rr::rdata::opt::EdnsOption;
        let mut m = with_edns(query, 1232, false);
        let edns = m.extensions_mut().as_mut().unwrap();
        edns.options_mut()
            .insert(EdnsOption::Unknown(10, cookie.to_vec()));
        if let Some(second) = second {
            edns.options_mut()
                .insert(EdnsOption::Unknown(10, second.to_vec()));
        }
        m.to_vec().unwrap()
    }

    fn response_cookie(response: &Message) -> Option<Vec<u8>> {
        query_cookie(response)
    }

    /// RFC 7873 section 5.2 through the responder, with RFC 9018's A.1
    /// client, secret and time.
    #[test]
    fn cookies_are_answered_as_rfc_7873_says() {
        use crate::serve::cookies::{CookieStatus, Cookies};
        let secret = [
            0xe5, 0xe9, 0x73, 0xe5, 0xa6, 0xb2, 0xa4, 0x3f, 0x48, 0xe7, 0xdc, 0x84, 0x9e, 0x37,
            0xbf, 0xcf,
        ];
        let r = responder().with_cookies(Some(Arc::new(Cookies::with_secret(secret))));
        let client: IpAddr = "198.51.100.100".parse().unwrap();
        let now = 1559731985;
        let www = || query("www.example.test.", RecordType::A);
        let client_cookie = [0x24, 0x64, 0xc4, 0xab, 0xcf, 0x10, 0xc9, 0x57];
        let a1_reply: Vec<u8> = [
            &client_cookie[..],
            &[
                0x01, 0, 0, 0, 0x5c, 0xf7, 0x9f, 0x11, 0x1f, 0x81, 0x30, 0xc3, 0xee, 0xe2, 0x94,
                0x80,
            ],
        ]
        .concat();
        let ask_at = |bytes: &[u8], now: u32| {
            let (answer, status) = r.answer_at(bytes, Transport::Udp, client, now).unwrap();
            (Message::from_vec(&answer).unwrap(), status)
        };

        // A client cookie alone: the answer as usual, and a server cookie.
        let (m, status) = ask_at(&with_cookie(www(), &client_cookie, None), now);
        assert_eq!(status, CookieStatus::ClientOnly);
        assert_eq!(m.response_code(), ResponseCode::NoError);
        assert_eq!(v4(m.answers()).len(), 1);
        assert_eq!(response_cookie(&m), Some(a1_reply.clone()));

        // That cookie back, ten minutes later: valid, and a fresh one.
        let (m, status) = ask_at(&with_cookie(www(), &a1_reply, None), now + 600);
        assert_eq!(status, CookieStatus::Valid);
        assert_eq!(v4(m.answers()).len(), 1);
        let fresh = response_cookie(&m).unwrap();
        assert_eq!(fresh[..8], client_cookie);
        assert_eq!(fresh[12..16], (now + 600).to_be_bytes());

        // A server cookie not ours (one byte of the hash changed), or too
        // old: answered as usual (5.2.4 recommends it over BADCOOKIE),
        // with a fresh server cookie.
        let mut forged = a1_reply.clone();
        forged[23] ^= 1;
        for (cookie, at) in [(&forged, now), (&a1_reply, now + 3601)] {
            let (m, status) = ask_at(&with_cookie(www(), cookie, None), at);
            assert_eq!(status, CookieStatus::BadServer);
            assert_eq!(m.response_code(), ResponseCode::NoError);
            assert_eq!(v4(m.answers()).len(), 1);
            let ours = response_cookie(&m).unwrap();
            assert_eq!(ours.len(), 24);
            assert_eq!(ours[12..16], at.to_be_bytes());
        }

        // Malformed lengths: FORMERR, with an OPT and no cookie.
        for len in [0, 7, 9, 15, 41] {
            let (m, status) = ask_at(&with_cookie(www(), &vec![7u8; len], None), now);
            assert_eq!(m.response_code(), ResponseCode::FormErr, "{len} bytes");
            assert_eq!(status, CookieStatus::Absent);
            assert!(m.answers().is_empty());
            assert!(m.extensions().is_some());
            assert_eq!(response_cookie(&m), None);
        }

        // Only the first COOKIE option counts.
        let (m, status) = ask_at(&with_cookie(www(), &client_cookie, Some(&[1, 2, 3])), now);
        assert_eq!(status, CookieStatus::ClientOnly);
        assert_eq!(response_cookie(&m), Some(a1_reply.clone()));

        // Without a client address (the differential path), or with
        // cookies off, the option is ignored.
        let bytes = with_cookie(www(), &client_cookie, None);
        let m = Message::from_vec(&r.answer(&bytes, Transport::Udp).unwrap()).unwrap();
        assert_eq!(response_cookie(&m), None);
        let off = responder();
        let (answer, status) = off.answer_at(&bytes, Transport::Udp, client, now).unwrap();
        assert_eq!(status, CookieStatus::Absent);
        assert_eq!(response_cookie(&Message::from_vec(&answer).unwrap()), None);
    }
}
