//! DNS messages in and out of the responder: parsing a whole query with
//! its counts checked before anything is allocated, building records, and
//! encoding a response within the transport's size limit (truncating when
//! it does not fit).

use std::net::IpAddr;

use failover_common::{EDNS_UDP_SIZE, PLAIN_UDP_SIZE};
use hickory_proto::op::{Edns, Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::opt::EdnsOption;
use hickory_proto::rr::rdata::{A, AAAA, SOA};
use hickory_proto::rr::{Name, RData, Record};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};
use log::warn;

use super::cookies::OPTION_COOKIE;
use crate::dns::rr::{RTYPE_A, RTYPE_AAAA, Soa};

/// How the query arrived: decides the size limit of the response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// Largest DNS message over TCP (2-byte length prefix).
const MAX_TCP_MESSAGE: usize = 65_535;
/// Smallest question and resource record in wire format (root name): bounds
/// what a count in the header may claim before anything is allocated.
const MIN_QUESTION_LEN: usize = 5;
const MIN_RECORD_LEN: usize = 11;

/// What the query resolved to, before encoding.
pub struct Outcome {
    pub rcode: ResponseCode,
    pub authoritative: bool,
    pub answers: Vec<Record>,
    pub authority: Vec<Record>,
    pub additional: Vec<Record>,
    /// A TSIG record closing the response (an unsigned error, RFC 8945).
    pub tsig: Option<Record>,
    /// The COOKIE option of the response's OPT (client and server cookie).
    pub cookie: Option<Vec<u8>>,
}

impl Outcome {
    pub fn error(rcode: ResponseCode) -> Outcome {
        Outcome {
            rcode,
            authoritative: false,
            answers: Vec::new(),
            authority: Vec::new(),
            additional: Vec::new(),
            tsig: None,
            cookie: None,
        }
    }

    pub fn authoritative(rcode: ResponseCode) -> Outcome {
        Outcome {
            authoritative: true,
            ..Outcome::error(rcode)
        }
    }
}

/// An A or AAAA record for `addr` if it is of the family of `rtype`.
pub fn address_record(owner: &Name, ttl: u32, addr: IpAddr, rtype: u16) -> Option<Record> {
    let rdata = match (addr, rtype) {
        (IpAddr::V4(v4), RTYPE_A) => RData::A(A(v4)),
        (IpAddr::V6(v6), RTYPE_AAAA) => RData::AAAA(AAAA(v6)),
        _ => return None,
    };
    Some(Record::from_rdata(owner.clone(), ttl, rdata))
}

pub fn soa_record(owner: &Name, soa: &Soa, ttl: u32) -> Option<Record> {
    let (Ok(mname), Ok(rname)) = (Name::from_ascii(&soa.mname), Name::from_ascii(&soa.rname))
    else {
        warn!("zone {}: SOA names do not parse: {soa:?}", soa.apex);
        return None;
    };
    // hickory keeps REFRESH/RETRY/EXPIRE signed; the configuration limits
    // them to 2^31 - 1 (RFC 2181), so nothing is lost.
    let signed = |v: u32| i32::try_from(v).unwrap_or(i32::MAX);
    Some(Record::from_rdata(
        owner.clone(),
        ttl,
        RData::SOA(SOA::new(
            mname,
            rname,
            soa.serial,
            signed(soa.refresh),
            signed(soa.retry),
            signed(soa.expire),
            soa.minimum,
        )),
    ))
}

/// Parses a whole query: the header's counts must be possible for the
/// message length (before anything is allocated for them), and nothing may
/// follow the last record.
pub fn parse(query: &[u8]) -> Option<Message> {
    let count = |at: usize| u16::from_be_bytes([query[at], query[at + 1]]) as usize;
    let (qd, an, ns, ar) = (count(4), count(6), count(8), count(10));
    if 12 + qd * MIN_QUESTION_LEN + (an + ns + ar) * MIN_RECORD_LEN > query.len() {
        return None;
    }
    let mut decoder = BinDecoder::new(query);
    let message = Message::read(&mut decoder).ok()?;
    decoder.is_empty().then_some(message)
}

/// An error response built from the header alone (the rest did not parse):
/// the id and opcode echoed, RD and CD copied for a QUERY (they are
/// undefined for other opcodes: cleared), no sections.
pub fn bare_error(query: &[u8], rcode: ResponseCode) -> Vec<u8> {
    let mut out = vec![0u8; 12];
    out[0] = query[0];
    out[1] = query[1];
    let opcode = query[2] & 0x78;
    let is_query = opcode == 0;
    // QR, the opcode, RD.
    out[2] = 0x80 | opcode | (query[2] & 0x01 & u8::from(is_query));
    // CD, and the RCODE (both used here fit in four bits).
    out[3] = (query[3] & 0x10 & (u8::from(is_query) << 4)) | (u16::from(rcode) as u8 & 0x0f);
    out
}

/// The response message for `query` and `outcome`, within the size limit of
/// `transport`.
pub fn encode(query: &Message, outcome: Outcome, transport: Transport) -> Vec<u8> {
    let is_query = query.op_code() == OpCode::Query;
    let mut response = Message::new();
    response
        .set_id(query.id())
        .set_message_type(MessageType::Response)
        .set_op_code(query.op_code())
        .set_authoritative(outcome.authoritative)
        // RD and CD are defined for QUERY only (for other opcodes they are
        // cleared, as the ISC EDNS compliance test expects).
        .set_recursion_desired(is_query && query.recursion_desired())
        .set_checking_disabled(is_query && query.checking_disabled())
        .set_response_code(outcome.rcode);
    if query.queries().len() == 1 {
        response.add_query(query.queries()[0].clone());
    }
    if let Some(edns) = query.extensions() {
        let mut ours = Edns::new();
        ours.set_max_payload(EDNS_UDP_SIZE);
        ours.set_version(0);
        ours.set_dnssec_ok(edns.flags().dnssec_ok);
        if let Some(cookie) = &outcome.cookie {
            ours.options_mut()
                .insert(EdnsOption::Unknown(OPTION_COOKIE, cookie.clone()));
        }
        response.set_edns(ours);
    }
    let limit = match transport {
        Transport::Tcp => MAX_TCP_MESSAGE,
        Transport::Udp => match query.extensions() {
            None => PLAIN_UDP_SIZE as usize,
            Some(edns) => edns.max_payload().clamp(PLAIN_UDP_SIZE, EDNS_UDP_SIZE) as usize,
        },
    };
    if let Some(tsig) = outcome.tsig {
        response.add_tsig(tsig);
    }
    let without_records = response.clone();
    response.insert_answers(outcome.answers);
    response.insert_name_servers(outcome.authority);
    response.insert_additionals(outcome.additional);
    match response.to_vec() {
        Ok(bytes) if bytes.len() <= limit => return bytes,
        Ok(_) => {}
        Err(e) => {
            warn!("encoding the response to query {}: {e}", query.id());
            let mut failed = without_records;
            failed
                .set_response_code(ResponseCode::ServFail)
                .set_authoritative(false);
            return failed.to_vec().unwrap_or_else(|_| {
                let mut header = [0u8; 12];
                header[..2].copy_from_slice(&query.id().to_be_bytes());
                header[2] = u8::from(query.op_code()) << 3 | u8::from(query.recursion_desired());
                header[3] = (u8::from(query.checking_disabled()) << 4) | 2;
                bare_error(&header, ResponseCode::ServFail)
            });
        }
    }
    // Too large: the header, question and OPT only, TC=1 (RFC 2181 9).
    let mut truncated = without_records;
    truncated.set_truncated(true);
    truncated
        .to_vec()
        .expect("a question and an OPT encode: they did as part of the whole")
}

/// `response` as a truncated response: the header with TC=1 and the same
/// id, flags and RCODE, the question and the OPT, no records (what a
/// rate-limited answer slips as, and what the kernel sends then). `None`
/// if `response` does not parse.
pub fn truncated(response: &[u8]) -> Option<Vec<u8>> {
    let mut message = Message::from_vec(response).ok()?;
    message.take_answers();
    message.take_name_servers();
    message.take_additionals();
    message.take_signature();
    message.set_truncated(true);
    message.to_vec().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_truncated_response_keeps_the_header_question_and_opt() {
        // id 0x1234, QR AA RD, NOERROR; www.ExAmPle.test. A; one A answer;
        // an OPT (1232, DO).
        let mut response = vec![0x12, 0x34, 0x85, 0x00, 0, 1, 0, 1, 0, 0, 0, 1];
        let question: &[u8] = b"\x03www\x07ExAmPle\x04test\x00\x00\x01\x00\x01";
        response.extend_from_slice(question);
        response.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 192, 0, 2, 10]);
        response.extend_from_slice(&[0, 0, 41, 4, 208, 0, 0, 0x80, 0, 0, 0]);
        let cut = truncated(&response).unwrap();
        let mut want = vec![0x12, 0x34, 0x87, 0x00, 0, 1, 0, 0, 0, 0, 0, 1];
        want.extend_from_slice(question);
        want.extend_from_slice(&[0, 0, 41, 4, 208, 0, 0, 0x80, 0, 0, 0]);
        assert_eq!(cut, want);
    }
}
