//! Builds DNS query frames (Ethernet + IPv4 + UDP) byte by byte, including the
//! broken ones a fast path must refuse, and checks answer frames completely.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use anyhow::{Context as _, Result, bail, ensure};
use hickory_proto::{
    op::{Message, MessageType, OpCode, ResponseCode},
    rr::{DNSClass, RData, RecordType},
};

pub const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
pub const SERVER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
pub const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);
pub const SERVER_IP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
/// The test namespaces' addresses and MACs (`netns`): hand-made frames sent
/// over their veth are addressed to the server as the kernel expects.
pub const CLIENT_IP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x53, 0, 0, 0, 0, 2);
pub const SERVER_IP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x53, 0, 0, 0, 0, 1);
pub const CLIENT_PORT: u16 = 40_053;

/// Wire format of a dotted name, labels as given (no case change, no checks).
pub fn wire_name(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for label in name
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
    {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out
}

/// An OPT record as a client sends it.
#[derive(Clone, Debug)]
pub struct Opt {
    pub udp_size: u16,
    pub version: u8,
    pub dnssec_ok: bool,
    /// Raw option bytes (code, length, data ...), may be deliberately broken.
    pub options: Vec<u8>,
    /// RDLENGTH override (to make it lie).
    pub rdlen: Option<u16>,
}

impl Opt {
    pub fn new(udp_size: u16) -> Self {
        Self {
            udp_size,
            version: 0,
            dnssec_ok: false,
            options: Vec::new(),
            rdlen: None,
        }
    }

    /// With a COOKIE option: `client` and, if any, `server` (RFC 7873).
    pub fn with_cookie(mut self, client: [u8; 8], server: &[u8]) -> Self {
        self.options.extend_from_slice(&10u16.to_be_bytes());
        self.options
            .extend_from_slice(&((8 + server.len()) as u16).to_be_bytes());
        self.options.extend_from_slice(&client);
        self.options.extend_from_slice(server);
        self
    }

    /// The client cookie of the first well-formed COOKIE option.
    pub fn client_cookie(&self) -> Option<[u8; 8]> {
        let mut rest = &self.options[..];
        while rest.len() >= 4 {
            let code = u16::from_be_bytes([rest[0], rest[1]]);
            let len = u16::from_be_bytes([rest[2], rest[3]]) as usize;
            let value = rest.get(4..4 + len)?;
            if code == 10 && len >= 8 {
                return value[..8].try_into().ok();
            }
            rest = &rest[4 + len..];
        }
        None
    }

    fn bytes(&self) -> Vec<u8> {
        let mut out = vec![0, 0, 41];
        out.extend_from_slice(&self.udp_size.to_be_bytes());
        out.extend_from_slice(&[0, self.version, if self.dnssec_ok { 0x80 } else { 0 }, 0]);
        let rdlen = self.rdlen.unwrap_or(self.options.len() as u16);
        out.extend_from_slice(&rdlen.to_be_bytes());
        out.extend_from_slice(&self.options);
        out
    }
}

/// What a frame's UDP checksum field holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UdpChecksum {
    /// The folded pseudo-header sum alone: a datagram from a local socket
    /// over veth or lo, whose checksum was left to an offload (the default).
    Partial,
    /// The complete, valid checksum, as from the wire.
    Full,
    /// Zero: "no checksum".
    Zero,
    /// This value.
    Value(u16),
}

/// A query frame, every field settable, built by [`Query::frame`].
#[derive(Clone, Debug)]
pub struct Query {
    pub id: u16,
    /// Raw DNS flags word (0x0100 = RD).
    pub flags: u16,
    pub qdcount: u16,
    pub ancount: u16,
    pub nscount: u16,
    /// `None`: 1 if there is an OPT (or `additional`), else 0.
    pub arcount: Option<u16>,
    /// Question name in wire format.
    pub qname: Vec<u8>,
    pub qtype: u16,
    pub qclass: u16,
    pub opt: Option<Opt>,
    /// Raw bytes of an additional record other than OPT, or trailing junk.
    pub additional: Vec<u8>,
    /// IPv4 options, or IPv6 extension header bytes (set `ip_proto` to the
    /// first extension's type).
    pub ip_options: Vec<u8>,
    /// IPv6 instead of IPv4.
    pub ipv6: bool,
    /// One 802.1Q tag with this TCI.
    pub vlan: Option<u16>,
    /// Destination address override.
    pub dst_ip: Option<IpAddr>,
    /// Source address override.
    pub src_ip: Option<IpAddr>,
    /// Source port override.
    pub src_port: Option<u16>,
    /// IPv4 flags+fragment offset word.
    pub ip_frag: u16,
    pub ethertype: u16,
    pub ip_proto: u8,
    pub dst_port: u16,
    /// UDP length override (to make it lie).
    pub udp_len: Option<u16>,
    /// Ethernet padding appended after the IP datagram.
    pub eth_padding: usize,
    /// Destination MAC override.
    pub dst_mac: Option<[u8; 6]>,
    pub udp_checksum: UdpChecksum,
}

impl Query {
    pub fn a(name: &str) -> Self {
        Self {
            id: 0x1234,
            flags: 0x0100,
            qdcount: 1,
            ancount: 0,
            nscount: 0,
            arcount: None,
            qname: wire_name(name),
            qtype: 1,
            qclass: 1,
            opt: None,
            additional: Vec::new(),
            ip_options: Vec::new(),
            ipv6: false,
            vlan: None,
            dst_ip: None,
            src_ip: None,
            src_port: None,
            ip_frag: 0x4000,
            ethertype: 0x0800,
            ip_proto: 17,
            dst_port: 53,
            udp_len: None,
            eth_padding: 0,
            dst_mac: None,
            udp_checksum: UdpChecksum::Partial,
        }
    }

    /// The same query over IPv6.
    pub fn v6(mut self) -> Self {
        self.ipv6 = true;
        self
    }

    /// The same query behind an 802.1Q tag.
    pub fn tagged(mut self, tci: u16) -> Self {
        self.vlan = Some(tci);
        self
    }

    pub fn with_qtype(mut self, qtype: u16) -> Self {
        self.qtype = qtype;
        self
    }

    pub fn with_opt(mut self, opt: Opt) -> Self {
        self.opt = Some(opt);
        self
    }

    /// The DNS message alone.
    pub fn message(&self) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&self.id.to_be_bytes());
        m.extend_from_slice(&self.flags.to_be_bytes());
        let ar = self
            .arcount
            .unwrap_or(u16::from(self.opt.is_some() || !self.additional.is_empty()));
        for c in [self.qdcount, self.ancount, self.nscount, ar] {
            m.extend_from_slice(&c.to_be_bytes());
        }
        m.extend_from_slice(&self.qname);
        m.extend_from_slice(&self.qtype.to_be_bytes());
        m.extend_from_slice(&self.qclass.to_be_bytes());
        if let Some(opt) = &self.opt {
            m.extend_from_slice(&opt.bytes());
        }
        m.extend_from_slice(&self.additional);
        m
    }

    /// The same query with this UDP checksum.
    pub fn with_udp_checksum(mut self, udp_checksum: UdpChecksum) -> Self {
        self.udp_checksum = udp_checksum;
        self
    }

    /// The whole Ethernet frame (valid IPv4 header checksum; the UDP checksum
    /// as `udp_checksum` says, by default the partial one that frames from
    /// local sockets carry over veth).
    pub fn frame(&self) -> Vec<u8> {
        let dns = self.message();
        let udp_len = (8 + dns.len()) as u16;
        let mut f = Vec::new();
        f.extend_from_slice(&self.dst_mac.unwrap_or(SERVER_MAC));
        f.extend_from_slice(&CLIENT_MAC);
        if let Some(tci) = self.vlan {
            f.extend_from_slice(&0x8100u16.to_be_bytes());
            f.extend_from_slice(&tci.to_be_bytes());
        }
        f.extend_from_slice(&self.ethertype_for_ip().to_be_bytes());
        let ip_start = f.len();
        if self.ipv6 {
            f.extend_from_slice(&[0x60, 0, 0, 0]);
            let payload = (self.ip_options.len() + udp_len as usize) as u16;
            f.extend_from_slice(&payload.to_be_bytes());
            f.push(self.ip_proto);
            f.push(64);
            let src = match self.src_ip {
                Some(IpAddr::V6(s)) => s,
                _ => CLIENT_IP6,
            };
            f.extend_from_slice(&src.octets());
            let dst = match self.dst_ip {
                Some(IpAddr::V6(d)) => d,
                _ => SERVER_IP6,
            };
            f.extend_from_slice(&dst.octets());
            f.extend_from_slice(&self.ip_options);
        } else {
            let ihl = 20 + self.ip_options.len();
            let ip_len = (ihl + udp_len as usize) as u16;
            f.push(0x40 | (ihl / 4) as u8);
            f.push(0);
            f.extend_from_slice(&ip_len.to_be_bytes());
            f.extend_from_slice(&0x4242u16.to_be_bytes());
            f.extend_from_slice(&self.ip_frag.to_be_bytes());
            f.push(64);
            f.push(self.ip_proto);
            f.extend_from_slice(&[0, 0]);
            let src = match self.src_ip {
                Some(IpAddr::V4(s)) => s,
                _ => CLIENT_IP,
            };
            f.extend_from_slice(&src.octets());
            let dst = match self.dst_ip {
                Some(IpAddr::V4(d)) => d,
                _ => SERVER_IP,
            };
            f.extend_from_slice(&dst.octets());
            f.extend_from_slice(&self.ip_options);
            let csum = internet_checksum(&f[ip_start..]);
            f[ip_start + 10..ip_start + 12].copy_from_slice(&csum.to_be_bytes());
        }
        f.extend_from_slice(&self.src_port.unwrap_or(CLIENT_PORT).to_be_bytes());
        f.extend_from_slice(&self.dst_port.to_be_bytes());
        f.extend_from_slice(&self.udp_len.unwrap_or(udp_len).to_be_bytes());
        let udp_start = f.len() - 6;
        f.extend_from_slice(&[0, 0]);
        f.extend_from_slice(&dns);
        let check = self.udp_checksum_value(&f[ip_start..], &f[udp_start..]);
        f[udp_start + 6..udp_start + 8].copy_from_slice(&check.to_be_bytes());
        f.extend(std::iter::repeat_n(0u8, self.eth_padding));
        f
    }

    /// `ip` starts at the IP header, `udp` is the UDP datagram with a zero
    /// checksum field.
    fn udp_checksum_value(&self, ip: &[u8], udp: &[u8]) -> u16 {
        let mut pseudo = if self.ipv6 {
            ip[8..40].to_vec()
        } else {
            ip[12..20].to_vec()
        };
        pseudo.extend_from_slice(&[0, 17]);
        pseudo.extend_from_slice(&(udp.len() as u16).to_be_bytes());
        match self.udp_checksum {
            UdpChecksum::Partial => fold(sum_words(&pseudo)),
            UdpChecksum::Full => match !fold(sum_words(&pseudo) + sum_words(udp)) {
                0 => 0xffff,
                c => c,
            },
            UdpChecksum::Zero => 0,
            UdpChecksum::Value(v) => v,
        }
    }

    fn ethertype_for_ip(&self) -> u16 {
        if self.ipv6 && self.ethertype == 0x0800 {
            0x86dd
        } else {
            self.ethertype
        }
    }
}

/// RFC 1071 checksum of `bytes` (odd length padded with a zero byte).
pub fn internet_checksum(bytes: &[u8]) -> u16 {
    !fold(sum_words(bytes))
}

fn sum_words(bytes: &[u8]) -> u32 {
    let mut sum: u32 = 0;
    for chunk in bytes.chunks(2) {
        let hi = chunk[0] as u32;
        let lo = chunk.get(1).copied().unwrap_or(0) as u32;
        sum += (hi << 8) | lo;
    }
    sum
}

fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// The SOA a NODATA answer must carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpectedSoa {
    pub apex: String,
    pub mname: String,
    pub rname: String,
    pub serial: u32,
    pub refresh: u32,
    pub retry: u32,
    pub expire: u32,
    pub minimum: u32,
    pub ttl: u32,
}

/// What an answer frame held, after every transport-level check passed.
#[derive(Debug)]
pub struct Answer {
    /// Addresses in the order they came.
    pub addrs: Vec<IpAddr>,
    pub ttls: Vec<u32>,
    /// The SOA in the authority section, if any.
    pub soa: Option<ExpectedSoa>,
    pub message: Message,
    pub dns_len: usize,
    /// The answer's COOKIE option (client cookie, then server cookie),
    /// when the query sent one.
    pub cookie: Option<Vec<u8>>,
}

/// Checks `out` as the answer to `query` at the Ethernet (MACs swapped, VLAN
/// tag kept), IP and UDP levels (addresses and ports swapped, lengths, both
/// checksums), then the DNS message via [`check_dns`]. Returns the answer for
/// the caller's record-level checks.
pub fn check_answer(query: &Query, out: &[u8]) -> Result<Answer> {
    check_answer_frame(query, out, ResponseCode::NoError, false)
}

/// [`check_answer`] for a truncated answer (TC=1) with `rcode`: the
/// question and the OPT, no records (what a slipped, rate-limited answer is).
pub fn check_truncated(query: &Query, out: &[u8], rcode: ResponseCode) -> Result<Answer> {
    let answer = check_answer_frame(query, out, rcode, true)?;
    ensure!(
        answer.addrs.is_empty() && answer.soa.is_none(),
        "a truncated answer carries records"
    );
    Ok(answer)
}

fn check_answer_frame(
    query: &Query,
    out: &[u8],
    rcode: ResponseCode,
    truncated: bool,
) -> Result<Answer> {
    ensure!(
        out.len() >= 14,
        "answer frame of {} bytes is too short",
        out.len()
    );
    ensure!(
        out[0..6] == CLIENT_MAC && out[6..12] == SERVER_MAC,
        "MACs not swapped"
    );
    let mut l3 = 12;
    if let Some(tci) = query.vlan {
        ensure!(out[12..14] == [0x81, 0x00], "VLAN tag lost");
        ensure!(out[14..16] == tci.to_be_bytes(), "VLAN TCI changed");
        l3 += 4;
    }
    let ethertype = query.ethertype_for_ip().to_be_bytes();
    ensure!(out[l3..l3 + 2] == ethertype, "ethertype changed");
    l3 += 2;
    let (udp_start, pseudo) = if query.ipv6 {
        ensure!(out.len() >= l3 + 40 + 8, "IPv6 answer too short");
        let ip = &out[l3..l3 + 40];
        ensure!(ip[0] >> 4 == 6, "not IPv6");
        ensure!(ip[6] == 17, "next header is not UDP");
        ensure!(ip[7] > 0, "hop limit is zero");
        let payload = u16::from_be_bytes([ip[4], ip[5]]) as usize;
        ensure!(
            payload == out.len() - l3 - 40,
            "IPv6 payload length {payload} is wrong"
        );
        ensure!(
            ip[8..24] == SERVER_IP6.octets(),
            "source address not swapped"
        );
        ensure!(
            ip[24..40] == CLIENT_IP6.octets(),
            "destination address not swapped"
        );
        let mut pseudo = ip[8..40].to_vec();
        pseudo.extend_from_slice(&(payload as u32).to_be_bytes());
        pseudo.extend_from_slice(&[0, 0, 0, 17]);
        (l3 + 40, pseudo)
    } else {
        ensure!(out.len() >= l3 + 20 + 8, "IPv4 answer too short");
        let ip = &out[l3..l3 + 20];
        ensure!(ip[0] == 0x45, "IPv4 header byte 0 is {:#x}", ip[0]);
        let ip_len = u16::from_be_bytes([ip[2], ip[3]]) as usize;
        ensure!(
            ip_len == out.len() - l3,
            "IP total length {ip_len} but frame carries {}",
            out.len() - l3
        );
        ensure!(ip[9] == 17, "protocol is not UDP");
        ensure!(
            ip[12..16] == SERVER_IP.octets(),
            "source address not swapped"
        );
        ensure!(
            ip[16..20] == CLIENT_IP.octets(),
            "destination address not swapped"
        );
        ensure!(ip[8] > 0, "IP TTL is zero");
        ensure!(fold(sum_words(ip)) == 0xffff, "IPv4 header checksum wrong");
        let mut pseudo = ip[12..20].to_vec();
        pseudo.extend_from_slice(&[0, 17]);
        pseudo.extend_from_slice(&((out.len() - l3 - 20) as u16).to_be_bytes());
        (l3 + 20, pseudo)
    };
    let udp = &out[udp_start..];
    ensure!(udp[0..2] == 53u16.to_be_bytes(), "source port is not 53");
    ensure!(
        udp[2..4] == CLIENT_PORT.to_be_bytes(),
        "destination port not swapped"
    );
    let udp_len = u16::from_be_bytes([udp[4], udp[5]]) as usize;
    ensure!(
        udp_len == udp.len(),
        "UDP length {udp_len} but {} bytes follow",
        udp.len()
    );
    let udp_csum = u16::from_be_bytes([udp[6], udp[7]]);
    ensure!(udp_csum != 0, "UDP checksum missing");
    ensure!(
        fold(sum_words(&pseudo) + sum_words(udp)) == 0xffff,
        "UDP checksum wrong ({udp_csum:#06x})"
    );
    check_dns_inner(query, &udp[8..], rcode, truncated)
}

/// Checks a DNS answer message to `query`: header fields, the question echoed
/// byte for byte (so the client's case survives), each answer record (owner a
/// pointer to the question, type, class), the authority SOA if any, the OPT.
pub fn check_dns(query: &Query, dns: &[u8]) -> Result<Answer> {
    check_dns_rcode(query, dns, ResponseCode::NoError)
}

/// [`check_answer`] for an answer with another RCODE (SERVFAIL: AA clear,
/// no records).
pub fn check_answer_rcode(query: &Query, out: &[u8], rcode: ResponseCode) -> Result<Answer> {
    let answer = check_answer_frame(query, out, rcode, false)?;
    ensure!(
        answer.addrs.is_empty() && answer.soa.is_none(),
        "{rcode:?} answer carries records"
    );
    Ok(answer)
}

/// [`check_dns`] with the RCODE to expect; AA is expected exactly for NOERROR.
pub fn check_dns_rcode(query: &Query, dns: &[u8], rcode: ResponseCode) -> Result<Answer> {
    check_dns_inner(query, dns, rcode, false)
}

fn check_dns_inner(
    query: &Query,
    dns: &[u8],
    rcode: ResponseCode,
    truncated: bool,
) -> Result<Answer> {
    let limit = match &query.opt {
        Some(opt) => opt.udp_size.max(512) as usize,
        None => 512,
    };
    ensure!(
        dns.len() <= limit,
        "answer of {} bytes exceeds {limit}",
        dns.len()
    );
    let message = Message::from_vec(dns).context("hickory cannot parse the answer")?;
    let h = message.header();
    ensure!(h.id() == query.id, "id not echoed");
    ensure!(h.message_type() == MessageType::Response, "QR not set");
    ensure!(h.op_code() == OpCode::Query, "opcode not QUERY");
    ensure!(
        h.authoritative() == (rcode == ResponseCode::NoError),
        "AA {} for {rcode:?}",
        h.authoritative()
    );
    ensure!(h.truncated() == truncated, "TC {}", h.truncated());
    ensure!(
        h.recursion_desired() == (query.flags & 0x0100 != 0),
        "RD not copied"
    );
    ensure!(!h.recursion_available(), "RA set");
    ensure!(!h.authentic_data(), "AD set");
    ensure!(
        h.checking_disabled() == (query.flags & 0x0010 != 0),
        "CD not copied"
    );
    ensure!(
        h.response_code() == rcode,
        "rcode {:?}, want {rcode:?}",
        h.response_code()
    );
    ensure!(h.query_count() == 1, "QDCOUNT {}", h.query_count());
    let q_end = 12 + query.qname.len() + 4;
    ensure!(
        dns[12..q_end] == query.message()[12..q_end],
        "question not echoed byte for byte"
    );
    let qname = message.queries()[0].name().clone();
    let want_type = RecordType::from(query.qtype);
    let mut addrs = Vec::new();
    let mut ttls = Vec::new();
    let mut rr = q_end;
    for record in message.answers() {
        ensure!(
            record.name() == &qname,
            "answer owner {} is not the question",
            record.name()
        );
        ensure!(
            dns[rr..rr + 2] == [0xc0, 0x0c],
            "answer owner is not pointer 0xC00C"
        );
        ensure!(
            record.record_type() == want_type,
            "answer type {}",
            record.record_type()
        );
        ensure!(
            record.dns_class() == DNSClass::IN,
            "answer class {}",
            record.dns_class()
        );
        match record.data() {
            RData::A(a) => addrs.push(IpAddr::V4(a.0)),
            RData::AAAA(a) => addrs.push(IpAddr::V6(a.0)),
            other => bail!("answer data {other:?}"),
        }
        ttls.push(record.ttl());
        rr += if query.qtype == 28 { 28 } else { 16 };
    }
    let mut soa = None;
    for record in message.name_servers() {
        ensure!(soa.is_none(), "more than one authority record");
        ensure!(
            record.dns_class() == DNSClass::IN,
            "authority class {}",
            record.dns_class()
        );
        let RData::SOA(s) = record.data() else {
            bail!("authority record is {}, not SOA", record.record_type());
        };
        ensure!(
            record.name().zone_of(&qname),
            "SOA owner {} is not an ancestor of {qname}",
            record.name()
        );
        soa = Some(ExpectedSoa {
            apex: record.name().to_lowercase().to_string(),
            mname: s.mname().to_string(),
            rname: s.rname().to_string(),
            serial: s.serial(),
            refresh: s.refresh() as u32,
            retry: s.retry() as u32,
            expire: s.expire() as u32,
            minimum: s.minimum(),
            ttl: record.ttl(),
        });
    }
    let mut cookie = None;
    match (&query.opt, message.extensions()) {
        (None, None) => {}
        (None, Some(_)) => bail!("OPT in the answer to a query without EDNS"),
        (Some(_), None) => bail!("no OPT in the answer to an EDNS query"),
        (Some(sent), Some(edns)) => {
            ensure!(
                edns.max_payload() == 1232,
                "OPT UDP size {}",
                edns.max_payload()
            );
            ensure!(edns.version() == 0, "OPT version {}", edns.version());
            ensure!(
                edns.flags().dnssec_ok == sent.dnssec_ok,
                "DO bit not copied"
            );
            // A COOKIE option only, and only when the query had one: its
            // client cookie and a 16-byte version 1 server cookie (RFC 9018).
            let options = edns.options().as_ref();
            match query_cookie(&sent.options) {
                None => ensure!(options.is_empty(), "OPT carries options: {options:?}"),
                Some(client) => {
                    ensure!(
                        options.len() == 1,
                        "OPT options {options:?}, want a COOKIE only"
                    );
                    let (code, option) = options.iter().next().expect("one option");
                    ensure!(u16::from(*code) == 10, "OPT option {code:?}, want COOKIE");
                    let bytes = Vec::<u8>::try_from(option)
                        .map_err(|e| anyhow::anyhow!("COOKIE option: {e}"))?;
                    ensure!(bytes.len() == 24, "COOKIE option of {} bytes", bytes.len());
                    ensure!(bytes[..8] == client[..8], "the client cookie is not echoed");
                    ensure!(
                        bytes[8..12] == [1, 0, 0, 0],
                        "server cookie version/reserved"
                    );
                    cookie = Some(bytes);
                }
            }
            ensure!(
                h.additional_count() == 1,
                "ARCOUNT {}",
                h.additional_count()
            );
        }
    }
    Ok(Answer {
        addrs,
        ttls,
        soa,
        dns_len: dns.len(),
        message,
        cookie,
    })
}

/// The first COOKIE option's bytes in raw OPT `options`, if any.
pub fn query_cookie(mut options: &[u8]) -> Option<&[u8]> {
    while options.len() >= 4 {
        let len = usize::from(u16::from_be_bytes([options[2], options[3]]));
        let value = options.get(4..4 + len)?;
        if options[..2] == [0, 10] {
            return Some(value);
        }
        options = &options[4 + len..];
    }
    None
}
