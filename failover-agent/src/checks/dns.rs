//! `dns`: one UDP query; up when the response has the expected rcode (and,
//! if configured, an answer whose data matches).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use hickory_proto::serialize::binary::BinDecodable;
use tokio::net::UdpSocket;

use super::file::CheckFile;
use super::result::Failure;
use crate::dns::rr::{RCODES, Rcode, rcode_by_name};
use crate::field::{FieldError, dns_name, field_err};

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DnsCheck {
    /// Absolute, with the trailing dot.
    pub query_name: String,
    pub query_type: u16,
    pub expect_rcode: u16,
    pub expect_answer: Option<String>,
    pub recursion: bool,
}

/// The `dns` keys of `[checks.NAME]`.
pub fn settings(path: &str, check: &CheckFile) -> Result<DnsCheck, FieldError> {
    let Some(name) = &check.query_name else {
        return Err(field_err(
            format!("{path}.query_name"),
            "required for a dns check: the name to query, e.g. \"www.example.test.\"",
        ));
    };
    let query_name = dns_name(&format!("{path}.query_name"), name)?;
    let type_text = check.query_type.as_deref().unwrap_or("A");
    let query_type = type_text
        .to_ascii_uppercase()
        .parse::<hickory_proto::rr::RecordType>()
        .ok()
        .filter(|t| !matches!(t, hickory_proto::rr::RecordType::Unknown(_)))
        .map(u16::from)
        .ok_or_else(|| {
            field_err(
                format!("{path}.query_type"),
                format!(
                    "{type_text} is not a DNS record type (e.g. \"A\", \"AAAA\", \"SOA\")",
                    type_text = crate::field::quoted(type_text)
                ),
            )
        })?;
    let rcode_text = check.expect_rcode.as_deref().unwrap_or("NOERROR");
    let expect_rcode = rcode_by_name(rcode_text).ok_or_else(|| {
        let names: Vec<&str> = RCODES.iter().map(|(n, _)| *n).collect();
        field_err(
            format!("{path}.expect_rcode"),
            format!(
                "{rcode_text} is not a response code ({names})",
                rcode_text = crate::field::quoted(rcode_text),
                names = names.join(", ")
            ),
        )
    })?;
    if let Some(answer) = &check.expect_answer
        && answer.is_empty()
    {
        return Err(field_err(
            format!("{path}.expect_answer"),
            "empty: leave it out to accept any answer",
        ));
    }
    Ok(DnsCheck {
        query_name,
        query_type,
        expect_rcode,
        expect_answer: check.expect_answer.clone(),
        recursion: check.recursion.unwrap_or(false),
    })
}

/// The query message (id `id`).
pub fn query(dns: &DnsCheck, id: u16) -> Vec<u8> {
    let name = Name::from_ascii(&dns.query_name).expect("validated by the config");
    let mut message = Message::new();
    message
        .set_id(id)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(dns.recursion)
        .add_query(Query::query(name, RecordType::from(dns.query_type)));
    message.to_vec().expect("a query always encodes")
}

/// Judges a response to the query with id `id`: `None` when it is not one
/// (wrong id, not a response), so the check keeps waiting.
pub fn judge(dns: &DnsCheck, id: u16, bytes: &[u8]) -> Option<Result<String, Failure>> {
    let message = Message::from_bytes(bytes).ok()?;
    if message.id() != id || message.message_type() != MessageType::Response {
        return None;
    }
    let rcode = u16::from(message.response_code());
    if rcode != dns.expect_rcode {
        return Some(Err(Failure::Failed(format!(
            "{}, expected {}",
            Rcode(rcode),
            Rcode(dns.expect_rcode)
        ))));
    }
    let answers = message.answers().len();
    let summary = format!(
        "{}, {answers} {}",
        Rcode(rcode),
        if answers == 1 { "answer" } else { "answers" }
    );
    let Some(expected) = &dns.expect_answer else {
        return Some(Ok(summary));
    };
    let wanted = expected.to_ascii_lowercase();
    let found = message.answers().iter().any(|record| {
        let data = record.data().to_string().to_ascii_lowercase();
        data == wanted || data.contains(&wanted)
    });
    Some(if found {
        Ok(summary)
    } else if message.truncated() {
        Err(Failure::Failed(format!(
            "{summary} (truncated), {expected:?} not among them"
        )))
    } else {
        Err(Failure::Failed(format!(
            "{summary}, {expected:?} not among them"
        )))
    })
}

/// One check; the caller bounds it in time.
pub async fn check(dns: &DnsCheck, target: SocketAddr, id: u16) -> Result<String, Failure> {
    let local: IpAddr = match target {
        SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    };
    let io = |e: std::io::Error| Failure::from_io(&e);
    let socket = UdpSocket::bind((local, 0)).await.map_err(io)?;
    // Connected: only the target's datagrams arrive, and an ICMP port
    // unreachable comes back as "connection refused".
    socket.connect(target).await.map_err(io)?;
    socket.send(&query(dns, id)).await.map_err(io)?;
    let mut buf = vec![0u8; 4096];
    loop {
        let n = socket.recv(&mut buf).await.map_err(io)?;
        if let Some(verdict) = judge(dns, id, &buf[..n]) {
            return verdict;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::ResponseCode;
    use hickory_proto::rr::{RData, Record, rdata::A};

    fn dns() -> DnsCheck {
        DnsCheck {
            query_name: "www.example.test.".into(),
            query_type: 1,
            expect_rcode: 0,
            expect_answer: Some("192.0.2.1".into()),
            recursion: false,
        }
    }

    fn response(id: u16, rcode: ResponseCode, answers: &[[u8; 4]]) -> Vec<u8> {
        let mut m = Message::new();
        m.set_id(id)
            .set_message_type(MessageType::Response)
            .set_response_code(rcode);
        for a in answers {
            m.add_answer(Record::from_rdata(
                Name::from_ascii("www.example.test.").unwrap(),
                30,
                RData::A(A::from(Ipv4Addr::from(*a))),
            ));
        }
        m.to_vec().unwrap()
    }

    #[test]
    fn query_is_what_is_configured() {
        let bytes = query(&dns(), 77);
        let m = Message::from_bytes(&bytes).unwrap();
        assert_eq!(m.id(), 77);
        assert!(!m.recursion_desired());
        assert_eq!(m.queries()[0].name().to_ascii(), "www.example.test.");
        assert_eq!(m.queries()[0].query_type(), RecordType::A);
    }

    #[test]
    fn judging_responses() {
        let d = dns();
        assert_eq!(judge(&d, 1, &response(2, ResponseCode::NoError, &[])), None);
        assert_eq!(judge(&d, 1, &query(&d, 1)), None, "a query is no response");
        assert_eq!(
            judge(
                &d,
                1,
                &response(
                    1,
                    ResponseCode::NoError,
                    &[[198, 51, 100, 1], [192, 0, 2, 1]]
                )
            ),
            Some(Ok("NOERROR, 2 answers".into()))
        );
        assert_eq!(
            judge(
                &d,
                1,
                &response(1, ResponseCode::NoError, &[[198, 51, 100, 1]])
            ),
            Some(Err(Failure::Failed(
                "NOERROR, 1 answer, \"192.0.2.1\" not among them".into()
            )))
        );
        assert_eq!(
            judge(&d, 1, &response(1, ResponseCode::ServFail, &[])),
            Some(Err(Failure::Failed("SERVFAIL, expected NOERROR".into())))
        );
        let nx = DnsCheck {
            expect_rcode: 3,
            expect_answer: None,
            ..dns()
        };
        assert_eq!(
            judge(&nx, 1, &response(1, ResponseCode::NXDomain, &[])),
            Some(Ok("NXDOMAIN, 0 answers".into()))
        );
    }
}
