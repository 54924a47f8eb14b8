//! A DNS-over-UDP client living in a network namespace: real queries built and
//! answers parsed with hickory-proto, cheap enough to poll every 10 ms.

use std::{
    net::{Ipv4Addr, SocketAddrV4, UdpSocket},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use hickory_proto::{
    op::{Edns, Message, MessageType, OpCode, Query, ResponseCode},
    rr::{Name, RData, RecordType},
};

use crate::in_netns;

/// What came back for one query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsAnswer {
    pub rcode: ResponseCode,
    /// AA flag.
    pub authoritative: bool,
    pub truncated: bool,
    /// A records of the answer section, in order.
    pub addrs: Vec<Ipv4Addr>,
    /// TTL of each answer RR, in the same order.
    pub ttls: Vec<u32>,
    /// The question echoed back (name as sent, type).
    pub question: Option<(String, RecordType)>,
    /// Whether the response carried an OPT record.
    pub edns: bool,
}

/// Options of one query.
#[derive(Clone, Copy, Debug)]
pub struct QueryOptions {
    pub recursion_desired: bool,
    /// Advertise this EDNS UDP payload size (adds an OPT record).
    pub edns_payload: Option<u16>,
}

impl Default for QueryOptions {
    fn default() -> Self {
        Self {
            recursion_desired: true,
            edns_payload: None,
        }
    }
}

/// A UDP socket created inside a namespace, connected to one server.
pub struct DnsClient {
    socket: UdpSocket,
    next_id: u16,
}

impl DnsClient {
    /// A client in namespace `ns` sending to `server`.
    pub fn new(ns: &str, server: SocketAddrV4) -> Result<Self> {
        // The socket belongs to the namespace it was created in, whichever
        // thread uses it afterwards.
        let socket = in_netns(ns, move || {
            let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).context("binding UDP")?;
            socket
                .connect(server)
                .with_context(|| format!("connecting UDP to {server}"))?;
            Ok(socket)
        })?;
        Ok(Self {
            socket,
            // Differs per client so stale answers of another client never match.
            next_id: (std::process::id() as u16).wrapping_mul(7919),
        })
    }

    /// Sends one A query for `name` and waits up to `timeout` for its answer.
    /// `Ok(None)` on timeout or when the server is unreachable (ICMP), so a
    /// poller can simply try again; answers to earlier queries are skipped.
    pub fn query_a(&mut self, name: &str, timeout: Duration) -> Result<Option<DnsAnswer>> {
        self.query(name, RecordType::A, QueryOptions::default(), timeout)
    }

    pub fn query(
        &mut self,
        name: &str,
        qtype: RecordType,
        options: QueryOptions,
        timeout: Duration,
    ) -> Result<Option<DnsAnswer>> {
        self.next_id = self.next_id.wrapping_add(1);
        let id = self.next_id;
        let wire = build_query(id, name, qtype, options)?;
        match self.socket.send(&wire) {
            Ok(_) => {}
            // A previous query drew an ICMP port unreachable: nothing answers yet.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return Ok(None),
            Err(e) => return Err(e).context("sending a DNS query"),
        }
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 4096];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.socket.set_read_timeout(Some(left))?;
            let len = match self.socket.recv(&mut buf) {
                Ok(len) => len,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(None);
                }
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return Ok(None),
                Err(e) => return Err(e).context("receiving a DNS answer"),
            };
            let message = Message::from_vec(&buf[..len])
                .with_context(|| format!("unparsable DNS answer: {:02x?}", &buf[..len]))?;
            if message.id() != id {
                continue; // a late answer to an earlier query
            }
            if message.message_type() != MessageType::Response {
                bail!("got a DNS message with our id that is not a response: {message:?}");
            }
            return Ok(Some(parse_answer(&message)));
        }
    }
}

/// The wire bytes of a standard query.
pub fn build_query(
    id: u16,
    name: &str,
    qtype: RecordType,
    options: QueryOptions,
) -> Result<Vec<u8>> {
    let name = Name::from_ascii(name).with_context(|| format!("bad DNS name {name:?}"))?;
    let mut message = Message::new();
    message
        .set_id(id)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(options.recursion_desired)
        .add_query(Query::query(name, qtype));
    if let Some(payload) = options.edns_payload {
        let mut edns = Edns::new();
        edns.set_max_payload(payload);
        message.set_edns(edns);
    }
    message.to_vec().context("encoding a DNS query")
}

fn parse_answer(message: &Message) -> DnsAnswer {
    let mut addrs = Vec::new();
    let mut ttls = Vec::new();
    for record in message.answers() {
        if let RData::A(a) = record.data() {
            addrs.push(a.0);
            ttls.push(record.ttl());
        }
    }
    DnsAnswer {
        rcode: message.response_code(),
        authoritative: message.authoritative(),
        truncated: message.truncated(),
        addrs,
        ttls,
        question: message
            .query()
            .map(|q| (q.name().to_ascii(), q.query_type())),
        edns: message.extensions().is_some(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_round_trips_through_hickory() {
        let wire = build_query(
            0x1234,
            "www.example.test.",
            RecordType::A,
            QueryOptions {
                recursion_desired: false,
                edns_payload: Some(1232),
            },
        )
        .unwrap();
        // Header: id, flags 0 (query, no RD), QD=1, AN=0, NS=0, AR=1 (OPT).
        assert_eq!(&wire[..12], &[0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1]);
        let parsed = Message::from_vec(&wire).unwrap();
        assert_eq!(parsed.queries().len(), 1);
        assert_eq!(parsed.queries()[0].query_type(), RecordType::A);
        assert_eq!(parsed.max_payload(), 1232);
    }

    #[test]
    fn answer_parsing_reads_flags_addresses_and_ttls() {
        use hickory_proto::rr::{Record, rdata::A};
        let name = Name::from_ascii("www.example.test.").unwrap();
        let mut response = Message::new();
        response
            .set_id(7)
            .set_message_type(MessageType::Response)
            .set_authoritative(true)
            .add_query(Query::query(name.clone(), RecordType::A))
            .add_answer(Record::from_rdata(
                name.clone(),
                30,
                RData::A(A::new(192, 0, 2, 10)),
            ))
            .add_answer(Record::from_rdata(
                name,
                30,
                RData::A(A::new(192, 0, 2, 11)),
            ));
        let parsed = Message::from_vec(&response.to_vec().unwrap()).unwrap();
        let answer = parse_answer(&parsed);
        assert!(answer.authoritative);
        assert_eq!(answer.rcode, ResponseCode::NoError);
        assert_eq!(
            answer.addrs,
            [Ipv4Addr::new(192, 0, 2, 10), Ipv4Addr::new(192, 0, 2, 11)]
        );
        assert_eq!(answer.ttls, [30, 30]);
        assert_eq!(
            answer.question,
            Some(("www.example.test.".to_string(), RecordType::A))
        );
    }
}
