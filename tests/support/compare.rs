//! Comparing DNS answers by meaning, and checking XDP answer frames against
//! the frames they answer, whatever those frames are (mutated ones included).

use std::net::IpAddr;
use std::ops::Range;

use failover_agent::policy::Answer;
use failover_agent::serve::AnswerTable;
use hickory_proto::op::{Message, MessageType, OpCode};
use hickory_proto::rr::{RData, Record};

use crate::packets::internet_checksum;

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Wire length of the question section at offset 12 of `dns` (name, type,
/// class), if it is there. A compression pointer ends the name.
pub fn question_len(dns: &[u8]) -> Option<usize> {
    let mut i = 12;
    loop {
        let len = *dns.get(i)? as usize;
        if len == 0 {
            i += 1;
            break;
        }
        if len >= 0xc0 {
            i += 2;
            break;
        }
        i += 1 + len;
    }
    (i + 4 <= dns.len()).then_some(i + 4 - 12)
}

/// One record, normalised for comparison as an element of a set: owner
/// lowercased, TTL, class, type, RDATA in presentation format (compression
/// does not show; names inside RDATA, e.g. SOA MNAME, keep their case).
fn normalised(record: &Record) -> String {
    format!(
        "{} {} {} {} {}",
        record.name().to_lowercase(),
        record.ttl(),
        record.dns_class(),
        record.record_type(),
        record.data()
    )
}

fn section(records: &[Record]) -> Vec<String> {
    let mut out: Vec<String> = records.iter().map(normalised).collect();
    out.sort();
    out
}

/// The answer section of a weighted answer: exactly one address record,
/// its address one of `choices`; normalised with the address left out (each
/// side picks at random). `Err` says what is wrong.
fn one_of_section(records: &[Record], choices: &[IpAddr]) -> Result<Vec<String>, String> {
    let [record] = records else {
        return Err(format!(
            "{} records where a weighted answer has one",
            records.len()
        ));
    };
    let addr = match record.data() {
        RData::A(a) => IpAddr::V4(a.0),
        RData::AAAA(a) => IpAddr::V6(a.0),
        other => return Err(format!("{other:?} where a weighted answer has an address")),
    };
    if !choices.contains(&addr) {
        return Err(format!(
            "{addr} is not one of the weighted choices {choices:?}"
        ));
    }
    Ok(vec![format!(
        "{} {} {} {} <one of the weighted choices>",
        record.name().to_lowercase(),
        record.ttl(),
        record.dns_class(),
        record.record_type()
    )])
}

/// The choices of the weighted answer `table` holds for the question of the
/// DNS message `query`, if it holds one: the address a kernel or userspace
/// answer to it carries is picked at random among them.
pub fn weighted_choices(table: &AnswerTable, query: &[u8]) -> Option<Vec<IpAddr>> {
    let qlen = question_len(query)?;
    let name_end = 12 + qlen - 4;
    let key = query[12..name_end].to_ascii_lowercase();
    let qtype = u16::from_be_bytes([query[name_end], query[name_end + 1]]);
    match &table.read().get(&key, qtype)?.answer {
        Answer::Weighted(choices) => Some(choices.iter().map(|(a, _)| *a).collect()),
        _ => None,
    }
}

/// Compares two DNS responses by meaning: id, opcode, RCODE (extended
/// included), the flags QR AA TC RD RA AD CD, the question byte for byte
/// (the client's case), each section as a multiset of records (owner case
/// and order aside; TTL and RDATA included), and the OPT (presence, version,
/// UDP size, DO, options). For a weighted answer (`one_of`: its choices)
/// each answer section must be one record with one of the choices; the rest
/// compares as usual. `Err` lists every difference.
pub fn semantic_diff(kernel: &[u8], user: &[u8], one_of: Option<&[IpAddr]>) -> Result<(), String> {
    let k = Message::from_vec(kernel).map_err(|e| format!("kernel answer does not parse: {e}"))?;
    let u = Message::from_vec(user).map_err(|e| format!("userspace answer does not parse: {e}"))?;
    let mut diffs = Vec::new();
    let field = |diffs: &mut Vec<String>, what: &str, a: String, b: String| {
        if a != b {
            diffs.push(format!("{what}: kernel {a}, userspace {b}"));
        }
    };
    field(&mut diffs, "id", k.id().to_string(), u.id().to_string());
    field(
        &mut diffs,
        "opcode",
        format!("{:?}", k.op_code()),
        format!("{:?}", u.op_code()),
    );
    field(
        &mut diffs,
        "rcode",
        format!("{:?}", k.response_code()),
        format!("{:?}", u.response_code()),
    );
    let flags = |m: &Message| {
        [
            ("QR", m.message_type() == MessageType::Response),
            ("AA", m.authoritative()),
            ("TC", m.truncated()),
            ("RD", m.recursion_desired()),
            ("RA", m.recursion_available()),
            ("AD", m.authentic_data()),
            ("CD", m.checking_disabled()),
        ]
        .iter()
        .filter(|(_, on)| *on)
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(" ")
    };
    field(&mut diffs, "flags", flags(&k), flags(&u));
    let question = |dns: &[u8], m: &Message| match (m.queries().len(), question_len(dns)) {
        (1, Some(len)) => hex(&dns[12..12 + len]),
        (n, _) => format!("{n} questions"),
    };
    field(
        &mut diffs,
        "question",
        question(kernel, &k),
        question(user, &u),
    );
    for (name, a, b) in [
        ("answer", k.answers(), u.answers()),
        ("authority", k.name_servers(), u.name_servers()),
        ("additional", k.additionals(), u.additionals()),
    ] {
        let (a, b) = match one_of {
            Some(choices) if name == "answer" => {
                match (one_of_section(a, choices), one_of_section(b, choices)) {
                    (Ok(a), Ok(b)) => (a, b),
                    (a, b) => {
                        for (who, r) in [("kernel", a), ("userspace", b)] {
                            if let Err(e) = r {
                                diffs.push(format!("weighted answer from {who}: {e}"));
                            }
                        }
                        continue;
                    }
                }
            }
            _ => (section(a), section(b)),
        };
        if a != b {
            diffs.push(format!(
                "{name} section:\n      kernel    {a:?}\n      userspace {b:?}"
            ));
        }
    }
    let opt = |m: &Message| match m.extensions() {
        None => "none".to_string(),
        Some(e) => format!(
            "version {} size {} DO {} options {:?}",
            e.version(),
            e.max_payload(),
            e.flags().dnssec_ok,
            e.options()
        ),
    };
    field(&mut diffs, "OPT", opt(&k), opt(&u));
    if diffs.is_empty() {
        Ok(())
    } else {
        Err(diffs.join("\n    "))
    }
}

/// The UDP size of the OPT record right after the question of `query`, read
/// from the bytes (the query need not parse as a whole).
pub fn edns_udp_size(query: &[u8]) -> Option<u16> {
    let opt = 12 + question_len(query)?;
    match query.get(opt..opt + 5)? {
        [0, 0, 41, hi, lo] => Some(u16::from_be_bytes([*hi, *lo])),
        _ => None,
    }
}

/// Where the headers of an Ethernet frame are, as the XDP program reads them.
#[derive(Clone, Copy, Debug)]
pub struct FrameLayout {
    pub l3: usize,
    pub v6: bool,
}

impl FrameLayout {
    /// IPv4 or IPv6, behind at most one 802.1Q tag.
    pub fn of(frame: &[u8]) -> Option<FrameLayout> {
        let be16 = |at: usize| Some(u16::from_be_bytes([*frame.get(at)?, *frame.get(at + 1)?]));
        let (ethertype, l3) = match be16(12)? {
            0x8100 => (be16(16)?, 18),
            t => (t, 14),
        };
        match ethertype {
            0x0800 => Some(FrameLayout { l3, v6: false }),
            0x86dd => Some(FrameLayout { l3, v6: true }),
            _ => None,
        }
    }

    pub fn l4(&self) -> usize {
        self.l3 + if self.v6 { 40 } else { 20 }
    }

    pub fn dns(&self) -> usize {
        self.l4() + 8
    }
}

/// The DNS message a UDP/53 datagram in `frame` carries, as the Linux stack
/// would deliver it to a socket: the IP length bounds the datagram (Ethernet
/// padding may follow) and the UDP length must claim exactly the rest of it.
/// `Err` says what does not add up.
pub fn dns_payload(frame: &[u8]) -> Result<Range<usize>, String> {
    let layout = FrameLayout::of(frame).ok_or("not IPv4/IPv6 behind at most one tag")?;
    let (l3, l4) = (layout.l3, layout.l4());
    if frame.len() < l4 + 8 {
        return Err(format!(
            "{} bytes: no room for IP and UDP headers",
            frame.len()
        ));
    }
    let be16 = |at: usize| u16::from_be_bytes([frame[at], frame[at + 1]]) as usize;
    let end = if layout.v6 {
        l4 + be16(l3 + 4)
    } else {
        if frame[l3] != 0x45 {
            return Err(format!("IPv4 version/IHL byte {:#04x}", frame[l3]));
        }
        l3 + be16(l3 + 2)
    };
    if end > frame.len() || end < l4 + 8 {
        return Err(format!(
            "IP length puts the datagram end at {end}, frame has {}",
            frame.len()
        ));
    }
    if be16(l4 + 4) != end - l4 {
        return Err(format!(
            "UDP length {} but the datagram has {}",
            be16(l4 + 4),
            end - l4
        ));
    }
    Ok(layout.dns()..end)
}

fn fold_sum(bytes: &[u8], mut sum: u32) -> u32 {
    for chunk in bytes.chunks(2) {
        sum += u32::from(chunk[0]) << 8 | u32::from(*chunk.get(1).unwrap_or(&0));
    }
    sum
}

fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// Checks `reply` as an XDP answer to `query` (any frame, possibly mutated):
/// MACs swapped, VLAN tag and ethertype kept, IP addresses swapped, IP
/// lengths and IPv4 header checksum right, UDP ports swapped, UDP length and
/// checksum right; the DNS answer parses with hickory, is a response with
/// the query's id, echoes the question byte for byte and respects the size
/// the query allows (512, or the EDNS size if larger). Returns the DNS range
/// of `reply`.
pub fn check_reply_frame(query: &[u8], reply: &[u8]) -> Result<Range<usize>, String> {
    let layout = FrameLayout::of(query).ok_or("query frame has no IP layout")?;
    let (l3, l4) = (layout.l3, layout.l4());
    let q_dns = dns_payload(query).map_err(|e| format!("the answered query: {e}"))?;
    if reply.len() < l4 + 8 + 12 {
        return Err(format!("reply of {} bytes is too short", reply.len()));
    }
    let mut errors: Vec<String> = Vec::new();
    let ensure = |errors: &mut Vec<String>, ok: bool, what: &str| {
        if !ok {
            errors.push(what.to_string());
        }
    };
    ensure(
        &mut errors,
        reply[0..6] == query[6..12] && reply[6..12] == query[0..6],
        "MACs not swapped",
    );
    ensure(
        &mut errors,
        reply[12..l3] == query[12..l3],
        "VLAN tag or ethertype changed",
    );
    let be16 = |f: &[u8], at: usize| u16::from_be_bytes([f[at], f[at + 1]]) as usize;
    let pseudo_sum = if layout.v6 {
        ensure(&mut errors, reply[l3] >> 4 == 6, "not IPv6");
        ensure(&mut errors, reply[l3 + 6] == 17, "next header is not UDP");
        ensure(&mut errors, reply[l3 + 7] > 0, "hop limit 0");
        ensure(
            &mut errors,
            be16(reply, l3 + 4) == reply.len() - l4,
            "IPv6 payload length wrong",
        );
        ensure(
            &mut errors,
            reply[l3 + 8..l3 + 24] == query[l3 + 24..l3 + 40]
                && reply[l3 + 24..l3 + 40] == query[l3 + 8..l3 + 24],
            "IPv6 addresses not swapped",
        );
        fold_sum(&reply[l3 + 8..l3 + 40], 17 + (reply.len() - l4) as u32)
    } else {
        ensure(&mut errors, reply[l3] == 0x45, "IPv4 version/IHL not 0x45");
        ensure(
            &mut errors,
            be16(reply, l3 + 2) == reply.len() - l3,
            "IPv4 total length wrong",
        );
        ensure(&mut errors, reply[l3 + 8] > 0, "IP TTL 0");
        ensure(&mut errors, reply[l3 + 9] == 17, "protocol is not UDP");
        ensure(
            &mut errors,
            reply[l3 + 12..l3 + 16] == query[l3 + 16..l3 + 20]
                && reply[l3 + 16..l3 + 20] == query[l3 + 12..l3 + 16],
            "IPv4 addresses not swapped",
        );
        ensure(
            &mut errors,
            internet_checksum(&reply[l3..l3 + 20]) == 0,
            "IPv4 header checksum wrong",
        );
        fold_sum(&reply[l3 + 12..l3 + 20], 17 + (reply.len() - l4) as u32)
    };
    ensure(
        &mut errors,
        reply[l4..l4 + 2] == query[l4 + 2..l4 + 4] && reply[l4 + 2..l4 + 4] == query[l4..l4 + 2],
        "UDP ports not swapped",
    );
    ensure(
        &mut errors,
        be16(reply, l4 + 4) == reply.len() - l4,
        "UDP length wrong",
    );
    ensure(
        &mut errors,
        be16(reply, l4 + 6) != 0,
        "UDP checksum missing",
    );
    ensure(
        &mut errors,
        fold(fold_sum(&reply[l4..], pseudo_sum)) == 0xffff,
        "UDP checksum wrong",
    );
    let dns = &reply[layout.dns()..];
    let q = &query[q_dns.clone()];
    if q.len() < 12 {
        return Err(format!("answered a DNS message of {} bytes", q.len()));
    }
    match Message::from_vec(dns) {
        Err(e) => errors.push(format!("hickory cannot parse the DNS answer: {e}")),
        Ok(m) => {
            ensure(
                &mut errors,
                m.id() == u16::from_be_bytes([q[0], q[1]]),
                "id not echoed",
            );
            ensure(
                &mut errors,
                m.message_type() == MessageType::Response,
                "QR not set",
            );
            ensure(
                &mut errors,
                m.op_code() == OpCode::Query,
                "opcode not QUERY",
            );
            match question_len(q) {
                Some(len) => ensure(
                    &mut errors,
                    dns.len() >= 12 + len && dns[12..12 + len] == q[12..12 + len],
                    "question not echoed byte for byte",
                ),
                None => errors.push("the answered query has no whole question".into()),
            }
            let limit = edns_udp_size(q).map_or(512, |size| usize::from(size).max(512));
            ensure(
                &mut errors,
                dns.len() <= limit,
                "answer exceeds the size the query allows",
            );
        }
    }
    if errors.is_empty() {
        Ok(layout.dns()..reply.len())
    } else {
        Err(errors.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packets::Query;

    #[test]
    fn question_length_walks_labels() {
        let q = Query::a("www.example.test.").message();
        assert_eq!(question_len(&q), Some(18 + 4));
        assert_eq!(question_len(&q[..20]), None);
    }

    #[test]
    fn payload_follows_ip_and_udp_lengths() {
        let q = Query::a("www.example.test.");
        let frame = q.frame();
        let range = dns_payload(&frame).unwrap();
        assert_eq!(&frame[range], &q.message()[..]);
        let mut padded = Query {
            eth_padding: 6,
            ..q.clone()
        }
        .tagged(7)
        .v6()
        .frame();
        let range = dns_payload(&padded).unwrap();
        assert_eq!(&padded[range], &q.message()[..]);
        let l4 = 18 + 40;
        padded[l4 + 5] ^= 1;
        assert!(dns_payload(&padded).is_err(), "UDP length lies");
    }

    #[test]
    fn semantic_diff_sees_what_matters_only() {
        use hickory_proto::rr::{Name, RData, rdata::A};
        let mut m = Message::new();
        m.set_id(9)
            .set_message_type(MessageType::Response)
            .set_authoritative(true);
        let name = Name::from_ascii("WwW.example.test.").unwrap();
        m.add_query(hickory_proto::op::Query::query(
            name.clone(),
            hickory_proto::rr::RecordType::A,
        ));
        let rec =
            |last: u8| Record::from_rdata(name.clone(), 30, RData::A(A::new(192, 0, 2, last)));
        let mut a = m.clone();
        a.add_answers([rec(1), rec(2)]);
        let mut b = m.clone();
        b.add_answers([rec(2), rec(1)]);
        assert_eq!(
            semantic_diff(&a.to_vec().unwrap(), &b.to_vec().unwrap(), None),
            Ok(())
        );
        let mut c = m.clone();
        c.add_answers([rec(1), rec(3)]);
        assert!(semantic_diff(&a.to_vec().unwrap(), &c.to_vec().unwrap(), None).is_err());
        let mut d = a.clone();
        d.set_recursion_desired(true);
        assert!(semantic_diff(&a.to_vec().unwrap(), &d.to_vec().unwrap(), None).is_err());
        // Weighted: one record each, any of the choices.
        let mut one = m.clone();
        one.add_answer(rec(1));
        let mut other = m.clone();
        other.add_answer(rec(2));
        let choices: Vec<IpAddr> = [1, 2].map(|i| IpAddr::from([192, 0, 2, i])).to_vec();
        let (one, other) = (one.to_vec().unwrap(), other.to_vec().unwrap());
        assert_eq!(semantic_diff(&one, &other, Some(&choices)), Ok(()));
        assert!(semantic_diff(&one, &other, Some(&choices[..1])).is_err());
        assert!(semantic_diff(&one, &a.to_vec().unwrap(), Some(&choices)).is_err());
    }
}
