//! The XDP program on crafted frames through BPF_PROG_TEST_RUN.
//!
//! Table-driven, Katran style: each fixture is an input frame and the expected
//! verdict; answers are checked at every layer by `packets::check_answer`
//! (MACs, addresses, ports, lengths, both checksums, every DNS field parsed by
//! hickory-proto), passes must leave the frame byte for byte untouched and
//! bump exactly the counter that names the reason.
//!
//! Needs root (BPF). Runs no network at all.

use std::{
    collections::BTreeSet,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::Arc,
};

use failover_agent::config::{Config, RateLimitSettings};
use failover_agent::dataplane::{Addressing, Interface};
use failover_agent::dns::rr::{RTYPE_A, RTYPE_AAAA, RTYPE_HTTPS, Soa};
use failover_agent::policy::Answer as Decided;
use failover_agent::publish::Publisher as _;
use failover_agent::serve::Entry;
use failover_agent::serve::zones::ZoneTree;
use failover_common::{AnswerSet, Counter, HOST_ADDRS_V4, RateLimit, rate_slot};
use failover_tests::{
    packets::{
        Answer, CLIENT_IP, ExpectedSoa, Opt, Query, SERVER_IP, UdpChecksum, check_answer,
        check_answer_rcode, check_truncated, wire_name,
    },
    xdp::{
        Run, SERVER_BROADCAST, XDP_DROP, XDP_PASS, XDP_TX, XdpProgram,
        names_sharing_an_answer_cache_slot, pin_to_cpu, test_interface, test_services,
    },
};
use hickory_proto::op::ResponseCode;

const WWW: &str = "www.example.test.";
const POOL: &str = "pool.example.test.";
/// 19 bytes in wire format: odd, so answers start at an odd UDP offset.
const MAIL: &str = "mail.example.test.";
/// Has only AAAA records.
const V6ONLY: &str = "v6.example.test.";
const MX: u16 = 15;
/// Every endpoint down, policy says SERVFAIL.
const BROKEN: &str = "broken.example.test.";
/// Weighted record.
const SPLIT: &str = "split.example.test.";
/// Four A and four AAAA addresses stored, two per answer.
const QUAD: &str = "quad.example.test.";
/// Three addresses stored, one per answer.
const TRIO: &str = "trio.example.test.";
/// Three addresses stored, a limit above that: all of them.
const WIDE: &str = "wide.example.test.";
/// Three addresses stored, limit 0: all of them.
const UNLIMITED: &str = "unlimited.example.test.";

fn zone() -> Soa {
    Soa {
        apex: "example.test.".into(),
        mname: "ns1.example.test.".into(),
        rname: "hostmaster.example.test.".into(),
        serial: 2026112301,
        refresh: 3600,
        retry: 600,
        expire: 604800,
        minimum: 60,
        negative_ttl: 45,
    }
}

/// The zone tree of the fixtures: `example.test.` with the SOA of [`zone`],
/// published through the same path as the agent's.
fn zone_tree() -> Arc<ZoneTree> {
    let z = zone();
    let text = format!(
        "[[zone]]\norigin = \"{}\"\nmname = \"{}\"\nrname = \"{}\"\nserial = {}\nrefresh = {}\nretry = {}\nexpire = {}\nminimum = {}\nsoa_ttl = {}\n\
         [[record]]\nname = \"{WWW}\"\ntype = \"A\"\npolicy = \"failover\"\ncheck = \"c\"\nendpoints = [{{ address = \"192.0.2.10\" }}]\n\
         [checks.c]\nkind = \"icmp\"\n",
        z.apex, z.mname, z.rname, z.serial, z.refresh, z.retry, z.expire, z.minimum, z.negative_ttl
    );
    let config = Config::parse(&text, "fixture zone").expect("the fixture zone is valid");
    let tree = ZoneTree::new(&config);
    assert_eq!(tree.zone(0).map(|z| &z.soa), Some(&zone()));
    Arc::new(tree)
}

fn expected_soa() -> ExpectedSoa {
    let z = zone();
    ExpectedSoa {
        apex: z.apex,
        mname: z.mname,
        rname: z.rname,
        serial: z.serial,
        refresh: z.refresh,
        retry: z.retry,
        expire: z.expire,
        minimum: z.minimum,
        ttl: z.negative_ttl,
    }
}

fn v6_addrs() -> Vec<IpAddr> {
    vec![
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10)),
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0xffff, 0, 0, 0, 0xabcd, 0x11)),
    ]
}

fn v6_sixteen() -> Vec<IpAddr> {
    (1..=16)
        .map(|i| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0x1000, i)))
        .collect()
}

fn v4(addrs: &[Ipv4Addr]) -> Vec<IpAddr> {
    addrs.iter().map(|a| IpAddr::V4(*a)).collect()
}

/// A name of 247 wire bytes: 16 answers to it need 12 + 247 + 4 + 16 * 16 = 519
/// bytes, more than 512.
fn long_name() -> String {
    long_name_with('d')
}

/// Another 247-byte name; 16 addresses stored, 2 per answer (which fit).
fn long_window_name() -> String {
    long_name_with('e')
}

fn long_name_with(last: char) -> String {
    let name = format!(
        "{}.{}.{}.{}.example.test.",
        "a".repeat(63),
        "b".repeat(63),
        "c".repeat(63),
        last.to_string().repeat(40)
    );
    assert_eq!(wire_name(&name).len(), 247);
    name
}

fn pool_addrs() -> Vec<Ipv4Addr> {
    (1..=8).map(|i| Ipv4Addr::new(192, 0, 2, i)).collect()
}

fn sixteen() -> Vec<Ipv4Addr> {
    (1..=16).map(|i| Ipv4Addr::new(203, 0, 113, i)).collect()
}

fn quad() -> Vec<IpAddr> {
    v4(&(1..=4)
        .map(|i| Ipv4Addr::new(198, 51, 100, i))
        .collect::<Vec<_>>())
}

fn quad_v6() -> Vec<IpAddr> {
    (1..=4)
        .map(|i| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 4, 0, 0, 0, 0, i)))
        .collect()
}

fn trio() -> Vec<IpAddr> {
    v4(&(1..=3)
        .map(|i| Ipv4Addr::new(198, 51, 100, 30 + i))
        .collect::<Vec<_>>())
}

/// An address answer set that answers `limit` of `addrs` per query.
fn limited(ttl: u32, addrs: &[IpAddr], limit: u16) -> AnswerSet {
    let mut value = AnswerSet::empty();
    value.ttl = ttl;
    value.count = addrs.len() as u16;
    value.limit = limit;
    for (slot, addr) in value.addrs.iter_mut().zip(addrs) {
        match addr {
            IpAddr::V4(a) => slot[..4].copy_from_slice(&a.octets()),
            IpAddr::V6(a) => *slot = a.octets(),
        }
    }
    value
}

/// A second listen address (answered) and an address whose DNS service is
/// on another port (not answered on 53), besides the harness's two.
const LISTED_EXTRA: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 53)), 53);
const LISTED_OTHER_PORT: SocketAddr =
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)), 5353);

fn program() -> XdpProgram {
    program_on(&test_interface())
}

/// The program with its maps written, attached (as far as the maps tell)
/// to `interface`.
fn program_on(interface: &Interface) -> XdpProgram {
    let mut r = XdpProgram::load().expect("load the XDP program (are we root?)");
    let mut services = test_services();
    services.extend([LISTED_EXTRA, LISTED_OTHER_PORT]);
    r.dataplane
        .set_addressing(&Addressing::new(interface, &services))
        .unwrap();
    let dp = &mut r.dataplane;
    dp.set_zones(&zone_tree()).unwrap();
    let addrs = |ttl, addrs| Entry::new(0, ttl, Decided::Addrs(addrs));
    dp.put(V6ONLY, RTYPE_AAAA, &addrs(120, v6_addrs())).unwrap();
    dp.put(&long_name(), RTYPE_AAAA, &addrs(7, v6_sixteen()))
        .unwrap();
    for (name, rtype) in [
        (WWW, RTYPE_AAAA),
        (WWW, RTYPE_HTTPS),
        (MAIL, RTYPE_HTTPS),
        (V6ONLY, RTYPE_A),
        (V6ONLY, RTYPE_HTTPS),
    ] {
        dp.put(name, rtype, &Entry::nodata(0)).unwrap();
    }
    r.set_a(WWW, 30, &[Ipv4Addr::new(192, 0, 2, 10)]).unwrap();
    r.set_a(POOL, 60, &pool_addrs()).unwrap();
    r.set_a(
        MAIL,
        300,
        &[Ipv4Addr::new(192, 0, 2, 25), Ipv4Addr::new(192, 0, 2, 26)],
    )
    .unwrap();
    r.set_a(&long_name(), 5, &sixteen()).unwrap();
    let servfail = Entry::new(0, 0, Decided::ServFail);
    r.dataplane.put(BROKEN, RTYPE_A, &servfail).unwrap();
    r.dataplane.put(BROKEN, RTYPE_AAAA, &servfail).unwrap();
    // A window of max_answers as the agent publishes it...
    for (rtype, addrs) in [(RTYPE_A, quad()), (RTYPE_AAAA, quad_v6())] {
        let rotating = Decided::Rotating {
            addrs,
            per_answer: 2,
        };
        r.dataplane
            .put(QUAD, rtype, &Entry::new(0, 40, rotating))
            .unwrap();
    }
    // ... and map values around it that no entry makes (limit 0 or above
    // the count: all of them).
    let sixteen = v4(&sixteen());
    for (name, rtype, value) in [
        (TRIO, RTYPE_A, limited(50, &trio(), 1)),
        (WIDE, RTYPE_A, limited(50, &trio(), 8)),
        (UNLIMITED, RTYPE_A, limited(50, &trio(), 0)),
        (&long_window_name(), RTYPE_A, limited(5, &sixteen, 2)),
    ] {
        r.dataplane.set_answer_set(name, rtype, value).unwrap();
    }
    r
}

enum Expect {
    /// XDP_TX with exactly this set of addresses, each with this TTL.
    Answer(Vec<IpAddr>, u32),
    /// XDP_TX with this many consecutive addresses of the stored ones (in
    /// stored order, wrapping), each with this TTL.
    Window(Vec<IpAddr>, usize, u32),
    /// XDP_TX, NOERROR, no answer, the zone's SOA in the authority section.
    NoData,
    /// XDP_TX, SERVFAIL, AA clear, no records.
    ServFail,
    /// XDP_PASS, frame untouched, this counter bumped.
    Pass(Counter),
}

struct Fixture {
    name: &'static str,
    frame: Vec<u8>,
    query: Query,
    expect: Expect,
    /// Run with a heartbeat older than the hold (no live agent).
    stale_heartbeat: bool,
}

fn fixture(name: &'static str, query: Query, expect: Expect) -> Fixture {
    Fixture {
        name,
        frame: query.frame(),
        query,
        expect,
        stale_heartbeat: false,
    }
}

/// A fixture run while the agent's heartbeat is older than its hold.
fn without_agent(name: &'static str, query: Query, expect: Expect) -> Fixture {
    Fixture {
        stale_heartbeat: true,
        ..fixture(name, query, expect)
    }
}

/// A fixture whose frame is edited after building (truncations, lies).
fn raw(name: &'static str, query: Query, edit: impl Fn(&mut Vec<u8>), counter: Counter) -> Fixture {
    let mut frame = query.frame();
    edit(&mut frame);
    Fixture {
        name,
        frame,
        query,
        expect: Expect::Pass(counter),
        stale_heartbeat: false,
    }
}

fn fixtures() -> Vec<Fixture> {
    use Counter::*;
    use Expect::{Answer, NoData, Pass, ServFail, Window};
    let www = v4(&[Ipv4Addr::new(192, 0, 2, 10)]);
    let mail = v4(&[Ipv4Addr::new(192, 0, 2, 25), Ipv4Addr::new(192, 0, 2, 26)]);
    let pool = v4(&pool_addrs());
    let sixteen = v4(&sixteen());
    let q = Query::a;
    vec![
        // Hits.
        fixture("hit, one address", q(WWW), Answer(www.clone(), 30)),
        without_agent(
            "hit, but the heartbeat is older than the hold",
            q(WWW),
            Pass(PassAgentGone),
        ),
        fixture(
            "hit again once the heartbeat is fresh",
            q(WWW),
            Answer(www.clone(), 30),
        ),
        fixture("hit, eight addresses", q(POOL), Answer(pool.clone(), 60)),
        fixture(
            "mixed-case name (0x20)",
            q("WwW.ExAmPlE.TeSt."),
            Answer(www.clone(), 30),
        ),
        fixture("odd-length name", q(MAIL), Answer(mail.clone(), 300)),
        fixture(
            "EDNS query",
            q(WWW).with_opt(Opt::new(4096)),
            Answer(www.clone(), 30),
        ),
        fixture(
            "EDNS, odd-length name, DO bit",
            q(MAIL).with_opt(Opt {
                dnssec_ok: true,
                ..Opt::new(1232)
            }),
            Answer(mail.clone(), 300),
        ),
        fixture(
            "EDNS with a cookie option, no secret in the cookie map (front mode): passed",
            q(POOL).with_opt(Opt {
                options: [&[0u8, 10, 0, 8][..], &[7; 8]].concat(),
                ..Opt::new(1400)
            }),
            Pass(PassCookie),
        ),
        fixture(
            "EDNS with a client and server cookie, after another option, front mode",
            q(POOL).with_opt(Opt {
                options: [&[0u8, 12, 0, 2, 0, 0, 0, 10, 0, 24][..], &[7; 24]].concat(),
                ..Opt::new(1232)
            }),
            Pass(PassCookie),
        ),
        fixture(
            "EDNS with a malformed cookie option: userspace's FORMERR",
            q(POOL).with_opt(Opt {
                options: [&[0u8, 10, 0, 3][..], &[7; 3]].concat(),
                ..Opt::new(1232)
            }),
            Pass(PassCookie),
        ),
        fixture(
            "EDNS size below 512 counts as 512",
            q(POOL).with_opt(Opt::new(100)),
            Answer(pool.clone(), 60),
        ),
        fixture(
            "RD clear, CD set: both copied",
            Query {
                flags: 0x0010,
                ..q(WWW)
            },
            Answer(www.clone(), 30),
        ),
        fixture(
            "Ethernet padding after the datagram",
            Query {
                eth_padding: 18,
                ..q(WWW)
            },
            Answer(www.clone(), 30),
        ),
        fixture(
            "16 addresses fit with EDNS",
            q(&long_name()).with_opt(Opt::new(1232)),
            Answer(sixteen.clone(), 5),
        ),
        fixture("A over IPv6", q(WWW).v6(), Answer(www.clone(), 30)),
        fixture(
            "A over IPv6, EDNS, odd name",
            q(MAIL).v6().with_opt(Opt::new(1232)),
            Answer(mail.clone(), 300),
        ),
        fixture(
            "AAAA over IPv4",
            q(V6ONLY).with_qtype(28),
            Answer(v6_addrs(), 120),
        ),
        fixture(
            "AAAA over IPv6",
            q(V6ONLY).with_qtype(28).v6(),
            Answer(v6_addrs(), 120),
        ),
        fixture(
            "A behind a VLAN tag",
            q(POOL).tagged(0x0064),
            Answer(pool.clone(), 60),
        ),
        fixture(
            "AAAA over IPv6 behind a VLAN tag, EDNS",
            q(V6ONLY)
                .with_qtype(28)
                .v6()
                .tagged(0x2fff)
                .with_opt(Opt::new(1232)),
            Answer(v6_addrs(), 120),
        ),
        fixture(
            "16 AAAA addresses fit with EDNS",
            q(&long_name()).with_qtype(28).v6().with_opt(Opt::new(1232)),
            Answer(v6_sixteen(), 7),
        ),
        fixture(
            "16 AAAA addresses do not fit in 512 bytes",
            q(&long_name()).with_qtype(28),
            Pass(PassAnswerTooLarge),
        ),
        // More addresses stored than one answer carries (`limit`).
        fixture(
            "4 stored, limit 2: two of them",
            q(QUAD),
            Window(quad(), 2, 40),
        ),
        fixture(
            "4 stored, limit 2, over IPv6 with EDNS",
            q(QUAD).v6().with_opt(Opt::new(1232)),
            Window(quad(), 2, 40),
        ),
        fixture(
            "4 AAAA stored, limit 2",
            q(QUAD).with_qtype(28),
            Window(quad_v6(), 2, 40),
        ),
        fixture(
            "4 AAAA stored, limit 2, over IPv6 behind a VLAN tag",
            q(QUAD).with_qtype(28).v6().tagged(0x0123),
            Window(quad_v6(), 2, 40),
        ),
        fixture("3 stored, limit 1: one", q(TRIO), Window(trio(), 1, 50)),
        fixture(
            "3 stored, limit above count: all",
            q(WIDE),
            Answer(trio(), 50),
        ),
        fixture("3 stored, limit 0: all", q(UNLIMITED), Answer(trio(), 50)),
        fixture(
            "16 stored, limit 2: the answer fits in 512 bytes",
            q(&long_window_name()),
            Window(sixteen.clone(), 2, 5),
        ),
        // NODATA from the kernel.
        fixture(
            "NODATA: AAAA of an A-only name",
            q(WWW).with_qtype(28),
            NoData,
        ),
        fixture(
            "NODATA: HTTPS over IPv6 with EDNS",
            q(WWW).with_qtype(65).v6().with_opt(Opt::new(1232)),
            NoData,
        ),
        fixture(
            "NODATA: HTTPS, odd-length name",
            q(MAIL).with_qtype(65),
            NoData,
        ),
        fixture(
            "NODATA: HTTPS, odd-length name, EDNS with DO, VLAN",
            q(MAIL).with_qtype(65).tagged(5).with_opt(Opt {
                dnssec_ok: true,
                ..Opt::new(1232)
            }),
            NoData,
        ),
        fixture(
            "NODATA: A of an AAAA-only name, mixed case",
            q("V6.Example.TEST.").with_qtype(1),
            NoData,
        ),
        fixture("SERVFAIL", q(BROKEN), ServFail),
        fixture(
            "SERVFAIL over IPv6, EDNS, AAAA",
            q(BROKEN).with_qtype(28).v6().with_opt(Opt::new(1232)),
            ServFail,
        ),
        fixture(
            "SERVFAIL behind a VLAN tag, odd-length name, EDNS",
            q(BROKEN).tagged(9).with_opt(Opt::new(4096)),
            ServFail,
        ),
        // Not ours to answer.
        fixture(
            "name not in map",
            q("nope.example.test."),
            Pass(PassNameNotInMap),
        ),
        fixture(
            "sibling of a hot name",
            q("ww.example.test."),
            Pass(PassNameNotInMap),
        ),
        fixture(
            "MX (type 15)",
            q(WWW).with_qtype(MX),
            Pass(PassUnsupportedType),
        ),
        fixture(
            "HTTPS of a name without NODATA entry",
            q(POOL).with_qtype(65),
            Pass(PassNameNotInMap),
        ),
        fixture(
            "class CH",
            Query {
                qclass: 3,
                ..q(WWW)
            },
            Pass(PassUnsupportedType),
        ),
        fixture(
            "16 addresses do not fit in 512 bytes",
            q(&long_name()),
            Pass(PassAnswerTooLarge),
        ),
        fixture(
            "ARP ethertype",
            Query {
                ethertype: 0x0806,
                ..q(WWW)
            },
            Pass(PassNotDnsTransport),
        ),
        fixture(
            "QinQ (802.1ad) tag",
            Query {
                ethertype: 0x88a8,
                ..q(WWW)
            },
            Pass(PassNotDnsTransport),
        ),
        fixture(
            "two stacked 802.1Q tags",
            Query {
                ethertype: 0x8100,
                ..q(WWW).tagged(7)
            },
            Pass(PassNotDnsTransport),
        ),
        fixture(
            "IPv6 TCP",
            Query {
                ip_proto: 6,
                ..q(WWW).v6()
            },
            Pass(PassNotDnsTransport),
        ),
        fixture(
            "IPv6 destination options header",
            Query {
                ip_proto: 60,
                ip_options: vec![17, 0, 1, 4, 0, 0, 0, 0],
                ..q(WWW).v6()
            },
            Pass(PassIpUnsupported),
        ),
        fixture(
            "IPv6 multicast destination",
            Query {
                dst_ip: Some("ff02::fb".parse().unwrap()),
                ..q(WWW).v6()
            },
            Pass(PassNotDnsTransport),
        ),
        fixture(
            "IPv4 broadcast destination",
            Query {
                dst_ip: Some("255.255.255.255".parse().unwrap()),
                ..q(WWW)
            },
            Pass(PassNotDnsTransport),
        ),
        fixture(
            "martian source 0.0.0.0",
            Query {
                src_ip: Some("0.0.0.0".parse().unwrap()),
                ..q(WWW)
            },
            Pass(PassNotDnsTransport),
        ),
        fixture(
            "martian source: multicast",
            Query {
                src_ip: Some("224.0.0.251".parse().unwrap()),
                ..q(WWW)
            },
            Pass(PassNotDnsTransport),
        ),
        fixture(
            "martian source: broadcast",
            Query {
                src_ip: Some("255.255.255.255".parse().unwrap()),
                ..q(WWW)
            },
            Pass(PassNotDnsTransport),
        ),
        fixture(
            "IPv6 martian source ::",
            Query {
                src_ip: Some("::".parse().unwrap()),
                ..q(WWW).v6()
            },
            Pass(PassNotDnsTransport),
        ),
        fixture(
            "IPv6 martian source: multicast",
            Query {
                src_ip: Some("ff02::1".parse().unwrap()),
                ..q(WWW).v6()
            },
            Pass(PassNotDnsTransport),
        ),
        fixture(
            "UDP source port 0",
            Query {
                src_port: Some(0),
                ..q(WWW)
            },
            Pass(PassNotDnsTransport),
        ),
        raw(
            "IPv4 header checksum wrong",
            q(WWW),
            |f| f[24] ^= 0x01,
            PassMalformed,
        ),
        raw(
            "IPv6 payload length longer than the frame",
            q(WWW).v6(),
            |f| f[18..20].copy_from_slice(&400u16.to_be_bytes()),
            PassMalformed,
        ),
        raw(
            "IPv6 UDP length shorter than the payload",
            Query {
                udp_len: Some(30),
                ..q(WWW).v6()
            },
            |_| {},
            PassMalformed,
        ),
        fixture(
            "EDNS Client Subnet option: left to userspace, which validates it",
            q(WWW).with_opt(Opt {
                options: vec![0, 8, 0, 7, 0, 1, 24, 0, 192, 0, 2],
                ..Opt::new(1232)
            }),
            Pass(PassNotPlainQuery),
        ),
        fixture(
            "TCP",
            Query {
                ip_proto: 6,
                ..q(WWW)
            },
            Pass(PassNotDnsTransport),
        ),
        fixture(
            "UDP port 5353",
            Query {
                dst_port: 5353,
                ..q(WWW)
            },
            Pass(PassNotDnsTransport),
        ),
        fixture(
            "IPv4 options",
            Query {
                ip_options: vec![1, 1, 1, 0],
                ..q(WWW)
            },
            Pass(PassIpUnsupported),
        ),
        fixture(
            "IPv4 fragment, more fragments",
            Query {
                ip_frag: 0x2000,
                ..q(WWW)
            },
            Pass(PassIpUnsupported),
        ),
        fixture(
            "IPv4 fragment, offset",
            Query {
                ip_frag: 0x0010,
                ..q(WWW)
            },
            Pass(PassIpUnsupported),
        ),
        fixture(
            "response (QR=1)",
            Query {
                flags: 0x8100,
                ..q(WWW)
            },
            Pass(PassNotPlainQuery),
        ),
        fixture(
            "opcode NOTIFY",
            Query {
                flags: 0x2000,
                ..q(WWW)
            },
            Pass(PassNotPlainQuery),
        ),
        fixture(
            "TC set",
            Query {
                flags: 0x0300,
                ..q(WWW)
            },
            Pass(PassNotPlainQuery),
        ),
        fixture(
            "QDCOUNT=2",
            Query {
                qdcount: 2,
                ..q(WWW)
            },
            Pass(PassNotPlainQuery),
        ),
        fixture(
            "QDCOUNT=0",
            Query {
                qdcount: 0,
                ..q(WWW)
            },
            Pass(PassNotPlainQuery),
        ),
        fixture(
            "ANCOUNT=1",
            Query {
                ancount: 1,
                ..q(WWW)
            },
            Pass(PassNotPlainQuery),
        ),
        fixture(
            "NSCOUNT=1",
            Query {
                nscount: 1,
                ..q(WWW)
            },
            Pass(PassNotPlainQuery),
        ),
        fixture(
            "ARCOUNT=2",
            Query {
                arcount: Some(2),
                ..q(WWW).with_opt(Opt::new(1232))
            },
            Pass(PassNotPlainQuery),
        ),
        // Addressed to this host's DNS service, or not (see `program`).
        fixture(
            "foreign destination address",
            Query {
                dst_ip: Some("198.51.100.7".parse().unwrap()),
                ..q(WWW)
            },
            Pass(PassNotForUs),
        ),
        fixture(
            "IPv6 foreign destination address",
            Query {
                dst_ip: Some("2001:db8::7".parse().unwrap()),
                ..q(WWW).v6()
            },
            Pass(PassNotForUs),
        ),
        fixture(
            "127.0.0.1 of another server (a loopback address not in the map)",
            Query {
                dst_ip: Some("127.0.0.1".parse().unwrap()),
                ..q(WWW)
            },
            Pass(PassNotForUs),
        ),
        fixture(
            "::1 of another server",
            Query {
                dst_ip: Some("::1".parse().unwrap()),
                ..q(WWW).v6()
            },
            Pass(PassNotForUs),
        ),
        fixture(
            "listed address, another port's service only (127.0.0.2:5353)",
            Query {
                dst_ip: Some(LISTED_OTHER_PORT.ip()),
                ..q(WWW)
            },
            Pass(PassNotForUs),
        ),
        fixture(
            "foreign destination MAC",
            Query {
                dst_mac: Some([0x02, 0, 0, 0, 0, 0x77]),
                ..q(WWW)
            },
            Pass(PassNotForUs),
        ),
        fixture(
            "broadcast destination MAC, IPv6",
            Query {
                dst_mac: Some([0xff; 6]),
                ..q(WWW).v6()
            },
            Pass(PassNotForUs),
        ),
        fixture(
            "source: the subnet's broadcast address",
            Query {
                src_ip: Some(IpAddr::V4(SERVER_BROADCAST)),
                ..q(WWW)
            },
            Pass(PassNotDnsTransport),
        ),
        fixture(
            "source: this host's own address",
            Query {
                src_ip: Some(IpAddr::V4(SERVER_IP)),
                ..q(WWW)
            },
            Pass(PassNotDnsTransport),
        ),
        fixture(
            "IPv6 source: this host's own address",
            Query {
                src_ip: Some(IpAddr::V6(failover_tests::packets::SERVER_IP6)),
                ..q(WWW).v6()
            },
            Pass(PassNotDnsTransport),
        ),
        // The UDP checksum (the default frame carries a partial one).
        fixture(
            "full valid UDP checksum",
            q(WWW).with_udp_checksum(UdpChecksum::Full),
            Answer(www.clone(), 30),
        ),
        fixture(
            "IPv6, full valid UDP checksum, EDNS, odd name",
            q(MAIL)
                .v6()
                .with_opt(Opt::new(1232))
                .with_udp_checksum(UdpChecksum::Full),
            Answer(mail.clone(), 300),
        ),
        fixture(
            "IPv4 zero UDP checksum (none)",
            q(WWW).with_udp_checksum(UdpChecksum::Zero),
            Answer(www.clone(), 30),
        ),
        fixture(
            "IPv6 zero UDP checksum",
            q(WWW).v6().with_udp_checksum(UdpChecksum::Zero),
            Pass(PassBadChecksum),
        ),
        fixture(
            "bad UDP checksum",
            q(WWW).with_udp_checksum(UdpChecksum::Value(0x1234)),
            Pass(PassBadChecksum),
        ),
        fixture(
            "IPv6 bad UDP checksum, VLAN",
            q(V6ONLY)
                .with_qtype(28)
                .v6()
                .tagged(3)
                .with_udp_checksum(UdpChecksum::Value(0xbeef)),
            Pass(PassBadChecksum),
        ),
        raw(
            "full UDP checksum, a name byte damaged after it was computed",
            q(WWW).with_udp_checksum(UdpChecksum::Full),
            |f| f[14 + 20 + 8 + 12 + 1] = b'W',
            PassBadChecksum,
        ),
        raw(
            "partial UDP checksum, the destination changed after it was computed",
            Query {
                dst_ip: Some(LISTED_EXTRA.ip()),
                ..q(WWW)
            },
            // The destination becomes the listed 198.51.100.1 (header checksum fixed).
            |f| {
                f[14 + 19] = 1;
                f[14 + 10..14 + 12].copy_from_slice(&[0, 0]);
                let c = failover_tests::packets::internet_checksum(&f[14..34]);
                f[14 + 10..14 + 12].copy_from_slice(&c.to_be_bytes());
            },
            PassBadChecksum,
        ),
        fixture(
            "EDNS version 1",
            q(WWW).with_opt(Opt {
                version: 1,
                ..Opt::new(1232)
            }),
            Pass(PassNotPlainQuery),
        ),
        fixture(
            "additional record is not an OPT (TSIG-like owner)",
            Query {
                additional: [
                    wire_name("key.example.test."),
                    vec![0, 250, 0, 255, 0, 0, 0, 0, 0, 0],
                ]
                .concat(),
                ..q(WWW)
            },
            Pass(PassNotPlainQuery),
        ),
        // Malformed.
        fixture(
            "compression pointer in the question",
            Query {
                qname: vec![0xc0, 0x0c],
                ..q(WWW)
            },
            Pass(PassMalformed),
        ),
        fixture(
            "label longer than 63",
            Query {
                qname: wire_name(&format!("{}.test.", "x".repeat(64))),
                ..q(WWW)
            },
            Pass(PassMalformed),
        ),
        fixture(
            "name longer than 255",
            Query {
                qname: wire_name(&vec!["n".repeat(63); 4].join(".")),
                ..q(WWW)
            },
            Pass(PassMalformed),
        ),
        fixture(
            "name without its root label",
            Query {
                qname: b"\x03www".to_vec(),
                qtype: 0x0700,
                ..q(WWW)
            },
            Pass(PassMalformed),
        ),
        fixture(
            "header only, lengths consistent",
            Query {
                qdcount: 1,
                qname: vec![],
                qtype: 0,
                qclass: 0,
                ..q(WWW)
            },
            Pass(PassMalformed),
        ),
        raw(
            "truncated DNS header",
            q(WWW),
            |f| f.truncate(14 + 20 + 8 + 6),
            PassMalformed,
        ),
        raw(
            "truncated IPv4 header",
            q(WWW),
            |f| f.truncate(14 + 12),
            PassMalformed,
        ),
        raw(
            "UDP length longer than the datagram",
            Query {
                udp_len: Some(200),
                ..q(WWW)
            },
            |_| {},
            PassMalformed,
        ),
        raw(
            "UDP length shorter than the datagram",
            Query {
                udp_len: Some(20),
                ..q(WWW)
            },
            |_| {},
            PassMalformed,
        ),
        fixture(
            "trailing bytes after the question",
            Query {
                additional: vec![0, 0, 0],
                arcount: Some(0),
                ..q(WWW)
            },
            Pass(PassMalformed),
        ),
        fixture(
            "OPT RDLENGTH longer than the message",
            q(WWW).with_opt(Opt {
                rdlen: Some(40),
                ..Opt::new(1232)
            }),
            Pass(PassMalformed),
        ),
        fixture(
            "EDNS option length overruns the OPT",
            q(WWW).with_opt(Opt {
                options: vec![0, 10, 0, 9, 1, 2, 3, 4],
                ..Opt::new(1232)
            }),
            Pass(PassMalformed),
        ),
    ]
}

#[test]
fn fixtures_give_the_expected_verdict_and_frame() {
    check_fixtures(&mut program());
}

/// A host with more addresses than the host map's value lists: the program
/// looks destination and source up in the service map, with the same verdicts.
#[test]
fn fixtures_give_the_same_verdicts_on_a_host_with_many_addresses() {
    let mut interface = test_interface();
    interface
        .addrs
        .extend((1..=HOST_ADDRS_V4 as u8).map(|i| IpAddr::V4(Ipv4Addr::new(10, 255, 255, i))));
    let services: Vec<_> = test_services()
        .into_iter()
        .chain([LISTED_EXTRA, LISTED_OTHER_PORT])
        .collect();
    assert!(Addressing::new(&interface, &services).by_map());
    check_fixtures(&mut program_on(&interface));
}

fn check_fixtures(xdp: &mut XdpProgram) {
    let mut failures = Vec::new();
    for f in fixtures() {
        if f.stale_heartbeat {
            xdp.stale_heartbeat().unwrap();
        } else {
            xdp.fresh_heartbeat().unwrap();
        }
        let before = Counter::ALL.map(|c| xdp.counter(c).unwrap());
        let run = xdp.run(&f.frame).unwrap();
        let after = Counter::ALL.map(|c| xdp.counter(c).unwrap());
        let bumped: Vec<Counter> = Counter::ALL
            .iter()
            .zip(before.iter().zip(&after))
            .filter(|(_, (b, a))| a != b)
            .map(|(c, _)| *c)
            .collect();
        let outcome = match &f.expect {
            Expect::Answer(addrs, ttl) => {
                answered(&f, &run, &bumped, Counter::Answered).and_then(|answer| {
                    let got: BTreeSet<_> = answer.addrs.iter().copied().collect();
                    let want: BTreeSet<_> = addrs.iter().copied().collect();
                    if answer.addrs.len() != addrs.len() || got != want {
                        Err(format!("addresses {:?}, want {addrs:?}", answer.addrs))
                    } else if answer.ttls.iter().any(|t| t != ttl) {
                        Err(format!("TTLs {:?}, want {ttl}", answer.ttls))
                    } else {
                        Ok(())
                    }
                })
            }
            Expect::Window(stored, n, ttl) => answered(&f, &run, &bumped, Counter::Answered)
                .and_then(|answer| {
                    if answer.addrs.len() != *n || window_start(stored, &answer.addrs).is_none() {
                        Err(format!(
                            "addresses {:?}, want {n} consecutive of {stored:?}",
                            answer.addrs
                        ))
                    } else if answer.ttls.iter().any(|t| t != ttl) {
                        Err(format!("TTLs {:?}, want {ttl}", answer.ttls))
                    } else {
                        Ok(())
                    }
                }),
            Expect::NoData => {
                answered(&f, &run, &bumped, Counter::AnsweredNodata).and_then(|answer| {
                    if !answer.addrs.is_empty() {
                        Err(format!("NODATA with answers {:?}", answer.addrs))
                    } else if answer.soa != Some(expected_soa()) {
                        Err(format!("authority SOA {:?}", answer.soa))
                    } else {
                        Ok(())
                    }
                })
            }
            Expect::ServFail => answered(&f, &run, &bumped, Counter::AnsweredServfail).map(|_| ()),
            Expect::Pass(counter) => {
                if run.verdict != XDP_PASS {
                    Err(format!("verdict {}, want XDP_PASS", run.verdict))
                } else if run.frame != f.frame {
                    Err("a passed frame was modified".to_string())
                } else if bumped != [*counter] {
                    Err(format!("counters bumped: {bumped:?}, want [{counter:?}]"))
                } else {
                    Ok(())
                }
            }
        };
        if let Err(e) = outcome {
            failures.push(format!(
                "{}: {e}\n  in:  {}\n  out: {}",
                f.name,
                hex(&f.frame),
                hex(&run.frame)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} fixture(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_listed_address_is_answered_from_that_address() {
    let xdp = program();
    for ip in [LISTED_EXTRA.ip(), IpAddr::V4(SERVER_IP)] {
        let frame = Query {
            dst_ip: Some(ip),
            ..Query::a(WWW)
        }
        .frame();
        let run = xdp.run(&frame).unwrap();
        assert_eq!(run.verdict, XDP_TX, "query to {ip}");
        let IpAddr::V4(ip) = ip else { unreachable!() };
        // IPv4 source and destination of the answer, swapped.
        assert_eq!(run.frame[26..30], ip.octets(), "answer source");
        assert_eq!(run.frame[30..34], CLIENT_IP.octets(), "answer destination");
    }
}

#[test]
fn consecutive_answers_rotate_through_the_answer_set() {
    // One CPU: the round-robin position is per CPU.
    pin_to_cpu(0).unwrap();
    let xdp = program();
    let query = Query::a(POOL);
    let frame = query.frame();
    let stored = v4(&pool_addrs());
    let mut firsts = Vec::new();
    for _ in 0..stored.len() * 2 {
        let run = xdp.run(&frame).unwrap();
        assert_eq!(run.verdict, XDP_TX);
        let answer = check_answer(&query, &run.frame).unwrap();
        // Each answer is the stored order rotated.
        let start = stored.iter().position(|a| *a == answer.addrs[0]).unwrap();
        let rotated: Vec<_> = stored
            .iter()
            .cycle()
            .skip(start)
            .take(stored.len())
            .copied()
            .collect();
        assert_eq!(answer.addrs, rotated);
        firsts.push(start);
    }
    // Consecutive answers advance by one, wrapping around.
    for pair in firsts.windows(2) {
        assert_eq!(
            pair[1],
            (pair[0] + 1) % stored.len(),
            "rotation sequence {firsts:?}"
        );
    }
}

/// Where `window` starts in `stored` if it is a run of consecutive stored
/// addresses (wrapping), in stored order.
fn window_start(stored: &[IpAddr], window: &[IpAddr]) -> Option<usize> {
    let start = stored.iter().position(|a| Some(a) == window.first())?;
    let expected = stored.iter().cycle().skip(start).take(window.len());
    expected.eq(window.iter()).then_some(start)
}

/// Runs `query` `runs` times on one CPU: every answer is `limit` consecutive
/// stored addresses, each window starts one after the previous one, and
/// together they cover every stored address.
fn windows_rotate(query: Query, stored: &[IpAddr], limit: usize, runs: usize) {
    // One CPU: the rotation position is per CPU.
    pin_to_cpu(0).unwrap();
    let xdp = program();
    let frame = query.frame();
    let mut starts = Vec::new();
    let mut seen = BTreeSet::new();
    for _ in 0..runs {
        let run = xdp.run(&frame).unwrap();
        assert_eq!(run.verdict, XDP_TX);
        let answer = check_answer(&query, &run.frame).unwrap();
        assert_eq!(answer.addrs.len(), limit, "answer {:?}", answer.addrs);
        let start = window_start(stored, &answer.addrs)
            .unwrap_or_else(|| panic!("{:?} is no window of {stored:?}", answer.addrs));
        starts.push(start);
        seen.extend(answer.addrs);
    }
    for pair in starts.windows(2) {
        assert_eq!(
            pair[1],
            (pair[0] + 1) % stored.len(),
            "window starts {starts:?}"
        );
    }
    let all: BTreeSet<_> = stored.iter().copied().collect();
    assert_eq!(seen, all, "window starts {starts:?}");
}

#[test]
fn limited_answers_rotate_over_every_stored_address() {
    windows_rotate(Query::a(QUAD), &quad(), 2, 4);
}

#[test]
fn limited_aaaa_answers_rotate_over_every_stored_address() {
    windows_rotate(Query::a(QUAD).with_qtype(28).v6(), &quad_v6(), 2, 4);
}

#[test]
fn one_answer_each_still_reaches_every_stored_address() {
    windows_rotate(Query::a(TRIO), &trio(), 1, 3);
}

#[test]
fn limited_answers_keep_rotating_past_a_full_turn() {
    windows_rotate(Query::a(&long_window_name()), &v4(&sixteen()), 2, 40);
}

#[test]
fn answer_set_updates_are_seen_by_the_next_query() {
    let mut xdp = program();
    let query = Query::a(WWW);
    let secondary = Ipv4Addr::new(192, 0, 2, 11);
    xdp.set_a(WWW, 30, &[secondary]).unwrap();
    let run = xdp.run(&query.frame()).unwrap();
    assert_eq!(
        check_answer(&query, &run.frame).unwrap().addrs,
        vec![IpAddr::V4(secondary)]
    );
    xdp.dataplane.withdraw(WWW, RTYPE_A).unwrap();
    let run = xdp.run(&query.frame()).unwrap();
    assert_eq!(run.verdict, XDP_PASS);
}

/// Two names that share a slot of the per-CPU answer cache, and a name too
/// long for the cache, asked in turn: each gets its own answer every
/// time, and a change to one is seen at once though the other was cached
/// since.
#[test]
fn names_sharing_an_answer_cache_slot_each_get_their_own_answer() {
    let (first, second) = names_sharing_an_answer_cache_slot();
    let long = "a-name-longer-than-the-answer-cache-keeps.example.test.".to_string();
    let mut xdp = program();
    let addr = |i: u8| Ipv4Addr::new(192, 0, 2, 200 + i);
    let names = [first, second, long];
    for (i, name) in names.iter().enumerate() {
        xdp.set_a(name, 30, &[addr(i as u8)]).unwrap();
    }
    let ask = |xdp: &XdpProgram, name: &str| {
        let query = Query::a(name);
        let run = xdp.run(&query.frame()).unwrap();
        assert_eq!(run.verdict, XDP_TX, "{name}");
        check_answer(&query, &run.frame).unwrap().addrs
    };
    for round in 0..3 {
        for (i, name) in names.iter().enumerate() {
            assert_eq!(
                ask(&xdp, name),
                vec![IpAddr::V4(addr(i as u8))],
                "{name}, round {round}"
            );
        }
    }
    // Each name cached on its own: asked twice running.
    for (i, name) in names.iter().enumerate() {
        for _ in 0..2 {
            assert_eq!(ask(&xdp, name), vec![IpAddr::V4(addr(i as u8))], "{name}");
        }
    }
    // A change to the cached name is seen by the next query.
    xdp.set_a(&names[1], 30, &[addr(9)]).unwrap();
    assert_eq!(ask(&xdp, &names[1]), vec![IpAddr::V4(addr(9))]);
}

#[test]
fn weighted_answers_split_by_weight_per_query() {
    let mut xdp = program();
    let addrs: Vec<IpAddr> = (1..=3)
        .map(|i| IpAddr::V4(Ipv4Addr::new(192, 0, 2, 100 + i)))
        .collect();
    let weights = [1u32, 2, 7];
    let weighted: Vec<(IpAddr, u32)> = addrs.iter().copied().zip(weights).collect();
    xdp.dataplane
        .put(
            SPLIT,
            RTYPE_A,
            &Entry::new(0, 20, Decided::Weighted(weighted)),
        )
        .unwrap();
    // With and without EDNS: the answer's OPT length must survive the pick.
    let queries = [Query::a(SPLIT), Query::a(SPLIT).with_opt(Opt::new(1232))];
    let frames = queries.each_ref().map(Query::frame);
    const RUNS: u32 = 10_000;
    let mut seen = [0u32; 3];
    for n in 0..RUNS {
        let (query, frame) = (&queries[n as usize % 2], &frames[n as usize % 2]);
        let run = xdp.run(frame).unwrap();
        assert_eq!(run.verdict, XDP_TX);
        let answer = check_answer(query, &run.frame).unwrap();
        assert_eq!(answer.addrs.len(), 1, "a weighted answer holds one address");
        assert_eq!(answer.ttls, vec![20]);
        seen[addrs.iter().position(|a| *a == answer.addrs[0]).unwrap()] += 1;
    }
    // Binomial: each count within 5 standard deviations of its expectation.
    let total: u32 = weights.iter().sum();
    for (i, w) in weights.iter().enumerate() {
        let p = *w as f64 / total as f64;
        let expected = RUNS as f64 * p;
        let sigma = (RUNS as f64 * p * (1.0 - p)).sqrt();
        assert!(
            (seen[i] as f64 - expected).abs() < 5.0 * sigma,
            "address {i} answered {} times, expected {expected:.0} +- {:.0} ({seen:?})",
            seen[i],
            5.0 * sigma
        );
    }
}

/// The checks every answered fixture shares: XDP_TX, only `counter` (the
/// answer's kind) bumped, and the frame a complete answer with its rcode.
fn answered(
    f: &Fixture,
    run: &Run,
    bumped: &[Counter],
    counter: Counter,
) -> Result<Answer, String> {
    let rcode = if counter == Counter::AnsweredServfail {
        ResponseCode::ServFail
    } else {
        ResponseCode::NoError
    };
    if run.verdict != XDP_TX {
        return Err(format!(
            "verdict {} (counters bumped: {bumped:?})",
            run.verdict
        ));
    }
    if bumped != [counter] {
        return Err(format!("counters bumped: {bumped:?}, want [{counter:?}]"));
    }
    let checked = if rcode == ResponseCode::NoError {
        check_answer(&f.query, &run.frame)
    } else {
        check_answer_rcode(&f.query, &run.frame, rcode)
    };
    checked.map_err(|e| format!("{e:#}"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// ---------------------------------------------------------------------------
// Response rate limiting.

/// What one query from a rate-limited program comes to.
#[derive(Debug)]
enum Rated {
    /// Answered as without a limit (NOERROR).
    Answered,
    /// Answered although over the limit (log-only): counted as limited.
    AnsweredOverLimit,
    /// Dropped: XDP_DROP, the frame untouched.
    Dropped,
    /// Slipped: a TC=1 answer with this RCODE and no records.
    Slipped(ResponseCode),
    /// Passed (not the kernel's to answer), this counter bumped.
    Passed(Counter),
}

/// Answers before the limit bites in [`rate_limit`]: one second's
/// worth each, so nothing refills within a test.
const BURST: u32 = 10;

/// `BURST` responses at once per source prefix, then one a second: the
/// window is `BURST` seconds.
fn rate_limit(slip: u32, log_only: bool, exempt: &[&str]) -> RateLimitSettings {
    let settings = RateLimitSettings {
        responses_per_second: 1,
        ipv4_prefix: 24,
        ipv6_prefix: 56,
        slip,
        window: std::time::Duration::from_secs(BURST as u64),
        exempt: exempt
            .iter()
            .map(|p| {
                let (addr, len) = p.split_once('/').unwrap();
                (addr.parse().unwrap(), len.parse().unwrap())
            })
            .collect(),
        log_only,
    };
    let (interval, burst) = settings.schedule();
    assert_eq!(
        (interval, burst / interval + 1),
        (1_000_000_000, BURST as u64)
    );
    settings
}

/// Runs `steps` in order on one CPU against `program` limited by
/// `settings`; every step's verdict, frame and counters must match.
fn check_rated(settings: &RateLimitSettings, steps: Vec<(String, Query, Rated)>) {
    run_rated(&rated_program(settings), steps);
}

/// `program` limited by `settings`, on CPU 0 (as the rest of the fixtures).
fn rated_program(settings: &RateLimitSettings) -> XdpProgram {
    pin_to_cpu(0).unwrap();
    let mut xdp = program();
    xdp.dataplane.set_rate_limit(Some(settings)).unwrap();
    xdp
}

/// Runs `steps` in order against `xdp`, as [`check_rated`].
fn run_rated(xdp: &XdpProgram, steps: Vec<(String, Query, Rated)>) {
    let mut failures = Vec::new();
    for (name, query, expect) in steps {
        let frame = query.frame();
        let before = Counter::ALL.map(|c| xdp.counter(c).unwrap());
        let run = xdp.run(&frame).unwrap();
        let after = Counter::ALL.map(|c| xdp.counter(c).unwrap());
        let bumped: Vec<Counter> = Counter::ALL
            .iter()
            .zip(before.iter().zip(&after))
            .filter(|(_, (b, a))| a != b)
            .map(|(c, _)| *c)
            .collect();
        // The frame checks expect the client's own address.
        let from_client = query.src_ip.is_none();
        use Counter::*;
        let (verdict, counters): (u32, Vec<Counter>) = match &expect {
            Rated::Answered => (XDP_TX, vec![Answered]),
            Rated::AnsweredOverLimit => (XDP_TX, vec![Answered, RateLimited]),
            Rated::Dropped => (XDP_DROP, vec![RateLimitDropped, RateLimited]),
            Rated::Slipped(_) => (XDP_TX, vec![RateLimitSlipped, RateLimited]),
            Rated::Passed(c) => (XDP_PASS, vec![*c]),
        };
        let outcome = if run.verdict != verdict {
            Err(format!("verdict {}, want {verdict}", run.verdict))
        } else if bumped != counters {
            Err(format!("counters bumped: {bumped:?}, want {counters:?}"))
        } else {
            match &expect {
                Rated::Answered | Rated::AnsweredOverLimit if from_client => {
                    check_answer(&query, &run.frame)
                        .map(|_| ())
                        .map_err(|e| format!("{e:#}"))
                }
                Rated::Slipped(rcode) if from_client => check_truncated(&query, &run.frame, *rcode)
                    .map(|_| ())
                    .map_err(|e| format!("{e:#}")),
                Rated::Dropped | Rated::Passed(_) if run.frame != frame => {
                    Err("the frame was modified".to_string())
                }
                _ => Ok(()),
            }
        };
        if let Err(e) = outcome {
            failures.push(format!("{name}: {e}\n  out: {}", hex(&run.frame)));
        }
    }
    assert!(
        failures.is_empty(),
        "{} step(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn from(src: &str, query: Query) -> Query {
    Query {
        src_ip: Some(src.parse().unwrap()),
        ..query
    }
}

/// `BURST` answered queries named `what`.
fn within_rate(what: &str, query: &Query) -> Vec<(String, Query, Rated)> {
    (1..=BURST)
        .map(|i| (format!("{what} #{i}"), query.clone(), Rated::Answered))
        .collect()
}

#[test]
fn over_its_rate_a_prefix_gets_every_second_answer_slipped_and_the_rest_dropped() {
    use Rated::*;
    let q = Query::a;
    let mut steps = within_rate("within the rate", &q(WWW));
    let step = |name: &str, query: Query, expect| (name.to_string(), query, expect);
    steps.extend([
        step("over: 1st limited, dropped", q(WWW), Dropped),
        step(
            "over: 2nd limited, slipped with the OPT",
            q(WWW).with_opt(Opt {
                dnssec_ok: true,
                ..Opt::new(1232)
            }),
            Slipped(ResponseCode::NoError),
        ),
        step("over: SERVFAIL answer, dropped", q(BROKEN), Dropped),
        step(
            "over: SERVFAIL answer slipped, keeps its RCODE",
            q(BROKEN),
            Slipped(ResponseCode::ServFail),
        ),
        step("over: NODATA, dropped", q(WWW).with_qtype(28), Dropped),
        step(
            "over: NODATA slipped, behind a VLAN tag, odd name",
            q(MAIL).with_qtype(65).tagged(7),
            Slipped(ResponseCode::NoError),
        ),
        step(
            "over: another address of the same /24",
            from("198.51.100.77", q(WWW)),
            Dropped,
        ),
        step(
            "over: TCP is the stack's (never limited)",
            Query {
                ip_proto: 6,
                ..q(WWW)
            },
            Passed(Counter::PassNotDnsTransport),
        ),
        step(
            "over: a name the kernel does not answer is passed, not limited",
            q("nope.example.test."),
            Passed(Counter::PassNameNotInMap),
        ),
        step(
            "another /24 is answered",
            from("198.51.101.2", q(WWW)),
            Answered,
        ),
    ]);
    // IPv6: its own prefix, the same rules.
    steps.extend(within_rate("IPv6 within the rate", &q(WWW).v6()));
    steps.extend([
        step("IPv6 over: dropped", q(WWW).v6(), Dropped),
        step(
            "IPv6 over: slipped, AAAA with EDNS",
            q(V6ONLY).with_qtype(28).v6().with_opt(Opt::new(1232)),
            Slipped(ResponseCode::NoError),
        ),
        step(
            "IPv6 over: the same /56",
            from("2001:db8:53:ff::9", q(WWW).v6()),
            Dropped,
        ),
        step(
            "IPv6: another /56 is answered",
            from("2001:db8:53:100::2", q(WWW).v6()),
            Answered,
        ),
    ]);
    check_rated(&rate_limit(2, false, &[]), steps);
}

#[test]
fn exempt_prefixes_are_never_limited() {
    let q = Query::a;
    let exempt = ["203.0.113.0/24", "2001:db8:99::/48"];
    let mut steps = Vec::new();
    for (what, query) in [
        ("exempt IPv4", from("203.0.113.5", q(WWW))),
        ("exempt IPv6", from("2001:db8:99:1::5", q(WWW).v6())),
    ] {
        for i in 1..=3 * BURST {
            steps.push((format!("{what} #{i}"), query.clone(), Rated::Answered));
        }
    }
    // Next to an exempt prefix, a source is limited as usual.
    steps.extend(within_rate("not exempt", &from("203.0.112.5", q(WWW))));
    steps.push((
        "not exempt, over".into(),
        from("203.0.112.5", q(WWW)),
        Rated::Dropped,
    ));
    check_rated(&rate_limit(2, false, &exempt), steps);
}

#[test]
fn slip_0_drops_every_limited_answer_and_slip_1_slips_every_one() {
    let q = Query::a;
    let over = |expect: fn() -> Rated| -> Vec<(String, Query, Rated)> {
        let mut steps = within_rate("within", &q(POOL));
        steps.extend((1..=4).map(|i| (format!("over #{i}"), q(POOL), expect())));
        steps
    };
    check_rated(&rate_limit(0, false, &[]), over(|| Rated::Dropped));
    check_rated(
        &rate_limit(1, false, &[]),
        over(|| Rated::Slipped(ResponseCode::NoError)),
    );
}

#[test]
fn log_only_counts_the_answers_over_the_rate_and_sends_them() {
    let q = Query::a;
    let mut steps = within_rate("within", &q(WWW));
    steps.extend((1..=4).map(|i| (format!("over #{i}"), q(WWW), Rated::AnsweredOverLimit)));
    check_rated(&rate_limit(2, true, &[]), steps);
}

#[test]
fn without_a_rate_limit_nothing_is_limited() {
    let q = Query::a;
    pin_to_cpu(0).unwrap();
    let mut xdp = program();
    xdp.dataplane
        .set_rate_limit(Some(&rate_limit(2, false, &[])))
        .unwrap();
    // Turned off again: every answer goes out.
    xdp.dataplane.set_rate_limit(None).unwrap();
    let frame = q(WWW).frame();
    for _ in 0..3 * BURST {
        assert_eq!(xdp.run(&frame).unwrap().verdict, XDP_TX);
    }
    assert_eq!(xdp.counter(Counter::RateLimited).unwrap(), 0);
}

/// A source's tag in the kernel's rate table: its prefix under `limit`'s
/// masks, as IPv6 (IPv4 mapped) in the words the program reads.
fn table_prefix(limit: &RateLimit, addr: IpAddr) -> [u32; 4] {
    let octets = match addr {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    };
    let mask = match addr {
        IpAddr::V4(_) => [u32::MAX, u32::MAX, u32::MAX, limit.v4_mask],
        IpAddr::V6(_) => limit.v6_mask,
    };
    std::array::from_fn(|i| {
        u32::from_ne_bytes(octets[4 * i..4 * i + 4].try_into().unwrap()) & mask[i]
    })
}

/// `n` sources of other /24s whose prefixes fall in the same pair of
/// buckets as `victim`'s under the program's seed (found by trying /24s
/// from 16.0.0.0: about one in 65,536 does).
fn sharing_the_pair_of(limit: &RateLimit, victim: IpAddr, n: usize) -> Vec<IpAddr> {
    let tag = table_prefix(limit, victim);
    let slot = rate_slot(&tag, limit.seed);
    let found: Vec<IpAddr> = ((16u32 << 16)..(80 << 16))
        .map(|net| IpAddr::V4(Ipv4Addr::from(net << 8 | 7)))
        .filter(|addr| {
            let other = table_prefix(limit, *addr);
            other != tag && rate_slot(&other, limit.seed) == slot
        })
        .take(n)
        .collect();
    assert_eq!(found.len(), n, "too few /24s share a pair");
    found
}

#[test]
fn two_prefixes_in_one_pair_of_buckets_are_limited_apart() {
    let xdp = rated_program(&rate_limit(0, false, &[]));
    let limit = xdp.dataplane.rate_limit().unwrap();
    let a = Query::a(WWW);
    let [b] = sharing_the_pair_of(&limit, IpAddr::V4(CLIENT_IP), 1)[..] else {
        unreachable!()
    };
    let b = Query {
        src_ip: Some(b),
        ..Query::a(WWW)
    };
    let step = |name: &str, query: &Query, expect| (name.to_string(), query.clone(), expect);
    let mut steps = within_rate("A within its rate", &a);
    steps.push(step("A over: dropped", &a, Rated::Dropped));
    // B takes the pair's other bucket: its allowance is its own.
    steps.extend(within_rate("B, in A's pair, within its rate", &b));
    steps.extend([
        step("A still over", &a, Rated::Dropped),
        step("B over: dropped", &b, Rated::Dropped),
        step("A still over, after B", &a, Rated::Dropped),
    ]);
    run_rated(&xdp, steps);
}

#[test]
fn a_limited_prefix_keeps_its_bucket_when_newcomers_arrive() {
    let xdp = rated_program(&rate_limit(0, false, &[]));
    let limit = xdp.dataplane.rate_limit().unwrap();
    let a = Query::a(WWW);
    let [n1, n2] = sharing_the_pair_of(&limit, IpAddr::V4(CLIENT_IP), 2)[..] else {
        unreachable!()
    };
    let from = |src| Query {
        src_ip: Some(src),
        ..Query::a(WWW)
    };
    let (n1, n2) = (from(n1), from(n2));
    let step = |name: &str, query: &Query, expect| (name.to_string(), query.clone(), expect);
    let mut steps = within_rate("A within its rate", &a);
    steps.push(step("A over: dropped", &a, Rated::Dropped));
    // Two newcomers to A's pair of buckets, quieter than A: each takes
    // the quieter bucket, the other newcomer's, never the limited A's.
    for i in 1..BURST {
        steps.push(step(&format!("N1 #{i}"), &n1, Rated::Answered));
    }
    steps.push(step("N2 takes over N1's bucket", &n2, Rated::Answered));
    // N1 lost its state: a whole allowance again, where it had one left.
    for i in 1..=2 {
        let name = format!("N1 back #{i}, taking over N2's bucket");
        steps.push(step(&name, &n1, Rated::Answered));
    }
    steps.extend([
        step("A still over", &a, Rated::Dropped),
        step("N2 back, taking over N1's bucket", &n2, Rated::Answered),
        step("A still over, after N2", &a, Rated::Dropped),
    ]);
    run_rated(&xdp, steps);
}

// ---------------------------------------------------------------------------
// DNS cookies (RFC 7873), server cookies as RFC 9018 makes them.

/// The server secret of the cookie fixtures, and the one before a rotation.
const COOKIE_SECRET: [u8; 16] = *b"failover secret!";
const OLD_SECRET: [u8; 16] = [0x5a; 16];
/// The Unix second the program's clock reads in the cookie fixtures.
const COOKIE_NOW: u32 = 1_800_000_000;
const CLIENT_COOKIE: [u8; 8] = [0x24, 0x64, 0xc4, 0xab, 0xcf, 0x10, 0xc9, 0x57];

/// An OPT whose options are `options` (each: code, then its bytes).
fn opt_with(options: &[(u16, &[u8])]) -> Opt {
    let mut bytes = Vec::new();
    for (code, value) in options {
        bytes.extend(code.to_be_bytes());
        bytes.extend((value.len() as u16).to_be_bytes());
        bytes.extend(*value);
    }
    Opt {
        options: bytes,
        ..Opt::new(1232)
    }
}

fn with_cookie(query: Query, cookie: &[u8]) -> Query {
    query.with_opt(opt_with(&[(10, cookie)]))
}

/// The client's address as the program sees the query's source.
fn client_of(query: &Query) -> IpAddr {
    match query.src_ip {
        Some(ip) => ip,
        None if query.ipv6 => IpAddr::V6(failover_tests::packets::CLIENT_IP6),
        None => IpAddr::V4(CLIENT_IP),
    }
}

/// A server cookie `secret` made for `query`'s client at `stamped`.
fn made(secret: &[u8; 16], query: &Query, stamped: u32) -> Vec<u8> {
    use failover_agent::serve::cookies::server_cookie;
    [
        &CLIENT_COOKIE[..],
        &server_cookie(secret, &CLIENT_COOKIE, client_of(query), stamped),
    ]
    .concat()
}

/// The fixture program answering cookies with `cookies`' secrets, its
/// clock in the middle of `COOKIE_NOW`.
fn cookie_program(cookies: &failover_agent::serve::cookies::Cookies) -> XdpProgram {
    let mut xdp = program();
    xdp.dataplane.set_cookies(Some(cookies)).unwrap();
    xdp
}

/// Runs `query` at `COOKIE_NOW`: the verdict, the frame, the counters bumped.
fn run_at_cookie_now(xdp: &mut XdpProgram, query: &Query) -> (Run, Vec<Counter>) {
    // Beaten anew each run: the run stays within the second.
    xdp.dataplane
        .beat_with_unix_time(COOKIE_NOW as u64 * 1_000_000_000 + 500_000_000)
        .unwrap();
    let before = Counter::ALL.map(|c| xdp.counter(c).unwrap());
    let run = xdp.run(&query.frame()).unwrap();
    let after = Counter::ALL.map(|c| xdp.counter(c).unwrap());
    let bumped = Counter::ALL
        .iter()
        .zip(before.iter().zip(&after))
        .filter(|(_, (b, a))| a != b)
        .map(|(c, _)| *c)
        .collect();
    (run, bumped)
}

/// Every frame shape: IPv4, IPv6, and IPv4 behind a VLAN tag.
fn shapes(query: Query) -> Vec<(&'static str, Query)> {
    vec![
        ("IPv4", query.clone()),
        ("IPv6", query.clone().v6()),
        ("VLAN", query.tagged(42)),
    ]
}

/// The kernel answers a query with a COOKIE option with the option the
/// userspace server would send (the client cookie and a fresh server
/// cookie under the current secret, stamped now), byte for byte; a
/// server cookie is judged as userspace judges it (the answer is the same
/// either way, RFC 7873 5.2.3/5.2.4); what userspace answers with FORMERR
/// the kernel passes untouched.
#[test]
fn cookies_are_answered_with_the_server_cookie_userspace_makes() {
    use failover_agent::serve::cookies::Cookies;
    let cookies = Cookies::with_secret(OLD_SECRET);
    assert!(cookies.rotate_to(COOKIE_SECRET));
    let mut xdp = cookie_program(&cookies);
    let mut failures = Vec::new();
    let answered = |q: &Query| -> Vec<u8> { made(&COOKIE_SECRET, q, COOKIE_NOW) };
    for (shape, base) in shapes(Query::a(WWW)) {
        let mut cases: Vec<(&str, Query, Option<Vec<u8>>)> = vec![
            (
                "client cookie alone",
                with_cookie(base.clone(), &CLIENT_COOKIE),
                None,
            ),
            (
                "valid server cookie, 10 minutes old",
                with_cookie(base.clone(), &made(&COOKIE_SECRET, &base, COOKIE_NOW - 600)),
                None,
            ),
            (
                "valid under the secret before the rotation",
                with_cookie(base.clone(), &made(&OLD_SECRET, &base, COOKIE_NOW - 30)),
                None,
            ),
            (
                "a forged server cookie",
                with_cookie(base.clone(), &{
                    let mut c = made(&COOKIE_SECRET, &base, COOKIE_NOW - 30);
                    c[23] ^= 1;
                    c
                }),
                None,
            ),
            (
                "expired (an hour and a second old)",
                with_cookie(
                    base.clone(),
                    &made(&COOKIE_SECRET, &base, COOKIE_NOW - 3601),
                ),
                None,
            ),
            (
                "stamped more than 5 minutes ahead",
                with_cookie(base.clone(), &made(&COOKIE_SECRET, &base, COOKIE_NOW + 301)),
                None,
            ),
            (
                "a server cookie of 8 bytes (another server's)",
                with_cookie(base.clone(), &[&CLIENT_COOKIE[..], &[9; 8]].concat()),
                None,
            ),
            (
                "a server cookie of 32 bytes",
                with_cookie(base.clone(), &[&CLIENT_COOKIE[..], &[9; 32]].concat()),
                None,
            ),
            (
                "after another option, DO set",
                base.clone().with_opt(Opt {
                    dnssec_ok: true,
                    ..opt_with(&[(12, &[0, 0]), (10, &CLIENT_COOKIE)])
                }),
                None,
            ),
            (
                "SERVFAIL answer",
                with_cookie(Query::a(BROKEN), &CLIENT_COOKIE),
                None,
            ),
            (
                "NODATA answer (odd SOA length)",
                with_cookie(Query::a(WWW).with_qtype(RTYPE_AAAA), &CLIENT_COOKIE),
                None,
            ),
            (
                "odd-length name",
                with_cookie(Query::a(MAIL), &CLIENT_COOKIE),
                None,
            ),
        ];
        // The fixed cases are IPv4 queries; give them this shape.
        for case in cases.iter_mut().skip(9) {
            case.1.ipv6 = base.ipv6;
            case.1.vlan = base.vlan;
        }
        for (name, query, _) in cases {
            let (run, bumped) = run_at_cookie_now(&mut xdp, &query);
            let want_counter = if query.qname == wire_name(BROKEN) {
                Counter::AnsweredServfail
            } else if query.qtype == RTYPE_AAAA {
                Counter::AnsweredNodata
            } else {
                Counter::Answered
            };
            let outcome = if run.verdict != XDP_TX {
                Err(format!("verdict {}, counters {bumped:?}", run.verdict))
            } else if bumped != [want_counter] {
                Err(format!(
                    "counters bumped {bumped:?}, want [{want_counter:?}]"
                ))
            } else {
                let checked = if want_counter == Counter::AnsweredServfail {
                    check_answer_rcode(&query, &run.frame, ResponseCode::ServFail)
                } else {
                    check_answer(&query, &run.frame)
                };
                match checked {
                    Err(e) => Err(format!("{e:#}")),
                    Ok(a) if a.cookie.as_deref() != Some(&answered(&query)[..]) => Err(format!(
                        "COOKIE option {}, want {}",
                        a.cookie.as_deref().map_or("none".into(), hex),
                        hex(&answered(&query))
                    )),
                    Ok(_) => Ok(()),
                }
            };
            if let Err(e) = outcome {
                failures.push(format!("{shape}, {name}: {e}\n  out: {}", hex(&run.frame)));
            }
        }
        // RFC 7873 5.2.2: a malformed length is a FORMERR (userspace's);
        // two COOKIE options are odd enough to leave to it as well.
        let passed: Vec<(&str, Query)> = vec![
            ("3-byte cookie", with_cookie(base.clone(), &[7; 3])),
            ("9-byte cookie", with_cookie(base.clone(), &[7; 9])),
            ("15-byte cookie", with_cookie(base.clone(), &[7; 15])),
            ("41-byte cookie", with_cookie(base.clone(), &[7; 41])),
            (
                "two COOKIE options",
                base.clone()
                    .with_opt(opt_with(&[(10, &CLIENT_COOKIE), (10, &CLIENT_COOKIE)])),
            ),
        ];
        for (name, query) in passed {
            let (run, bumped) = run_at_cookie_now(&mut xdp, &query);
            if run.verdict != XDP_PASS
                || bumped != [Counter::PassCookie]
                || run.frame != query.frame()
            {
                failures.push(format!(
                    "{shape}, {name}: verdict {} counters {bumped:?} (want an untouched pass, \
                     pass_cookie)",
                    run.verdict
                ));
            }
        }
    }
    // An IPv4-mapped IPv6 source: userspace hashes it as IPv4; no real
    // client sends from one. Passed.
    let mapped = Query {
        src_ip: Some("::ffff:198.51.100.2".parse().unwrap()),
        ..with_cookie(Query::a(WWW).v6(), &CLIENT_COOKIE)
    };
    let (run, bumped) = run_at_cookie_now(&mut xdp, &mapped);
    if run.verdict != XDP_PASS || bumped != [Counter::PassCookie] {
        failures.push(format!(
            "IPv4-mapped source: verdict {} counters {bumped:?}",
            run.verdict
        ));
    }
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// With cookies off in the server, the program ignores COOKIE options as
/// the server does: a plain answer, no option; never written (front mode),
/// it passes them to the server in front of which it runs.
#[test]
fn without_cookies_the_option_is_ignored_and_in_front_mode_passed() {
    let query = with_cookie(Query::a(WWW), &CLIENT_COOKIE);
    let mut xdp = program();
    let (run, bumped) = run_at_cookie_now(&mut xdp, &query);
    assert_eq!((run.verdict, bumped), (XDP_PASS, vec![Counter::PassCookie]));
    assert_eq!(run.frame, query.frame());
    xdp.dataplane.set_cookies(None).unwrap();
    let (run, bumped) = run_at_cookie_now(&mut xdp, &query);
    assert_eq!((run.verdict, bumped), (XDP_TX, vec![Counter::Answered]));
    // check_answer wants the option echoed when the query had one: judge
    // the OPT here instead.
    // Ethernet, IPv4 and UDP headers: 42 bytes.
    let dns = &run.frame[42..];
    let m = hickory_proto::op::Message::from_vec(dns).expect("the answer parses");
    let edns = m.extensions().as_ref().expect("an OPT");
    assert!(
        edns.options().as_ref().is_empty(),
        "options {:?}",
        edns.options()
    );
    assert_eq!(m.answers().len(), 1);
}

/// A valid server cookie proves the source: such queries are answered
/// past the rate limit, while the same source's queries without one are
/// limited (slipped or dropped).
#[test]
fn a_valid_server_cookie_is_exempt_from_the_rate_limit() {
    use failover_agent::serve::cookies::Cookies;
    pin_to_cpu(0).unwrap();
    let cookies = Cookies::with_secret(COOKIE_SECRET);
    let mut xdp = cookie_program(&cookies);
    xdp.dataplane
        .set_rate_limit(Some(&rate_limit(2, false, &[])))
        .unwrap();
    let base = Query::a(WWW);
    let valid = with_cookie(base.clone(), &made(&COOKIE_SECRET, &base, COOKIE_NOW - 5));
    let client_only = with_cookie(base.clone(), &CLIENT_COOKIE);
    // Spend the burst.
    for _ in 0..BURST {
        let (run, _) = run_at_cookie_now(&mut xdp, &client_only);
        assert_eq!(run.verdict, XDP_TX);
    }
    let mut limited = 0;
    for i in 0..20 {
        let (run, bumped) = run_at_cookie_now(&mut xdp, &valid);
        assert_eq!(
            (run.verdict, bumped.as_slice()),
            (XDP_TX, &[Counter::Answered][..]),
            "valid cookie #{i}"
        );
        let a = check_answer(&valid, &run.frame).unwrap();
        assert_eq!(a.cookie, Some(made(&COOKIE_SECRET, &base, COOKIE_NOW)));
        let (run, bumped) = run_at_cookie_now(&mut xdp, &client_only);
        if bumped.contains(&Counter::RateLimited) {
            limited += 1;
            if run.verdict == XDP_TX {
                // Slipped: TC=1, the cookie still in its OPT.
                let a = check_truncated(&client_only, &run.frame, ResponseCode::NoError).unwrap();
                assert_eq!(a.cookie, Some(made(&COOKIE_SECRET, &base, COOKIE_NOW)));
            }
        }
    }
    assert_eq!(
        limited, 20,
        "every client-cookie query past the burst is limited"
    );
}

/// A name of exactly `wire_len` wire bytes (labels of up to 63 `c`s).
fn name_of_wire_len(wire_len: usize, c: char) -> String {
    let mut left = wire_len - 1;
    let mut labels = Vec::new();
    while left > 0 {
        // One byte left over could not make a label: take one byte less.
        let mut n = 63.min(left - 1);
        if left - (n + 1) == 1 {
            n -= 1;
        }
        labels.push(c.to_string().repeat(n));
        left -= n + 1;
    }
    let name = format!("{}.", labels.join("."));
    assert_eq!(wire_name(&name).len(), wire_len);
    name
}

#[test]
fn names_of_every_bucket_are_answered_from_their_map() {
    let mut xdp = program();
    // On either side of each bucket's bound (32, 64, 128, 256 bytes).
    let lengths = [3usize, 31, 32, 33, 64, 65, 128, 129, 255];
    let chars = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i'];
    let names: Vec<String> = lengths
        .iter()
        .zip(chars)
        .map(|(&len, c)| name_of_wire_len(len, c))
        .collect();
    for (i, name) in names.iter().enumerate() {
        let addr = Ipv4Addr::new(192, 0, 2, 200 + i as u8);
        xdp.set_a(name, 30, &[addr]).unwrap();
    }
    // Long then short, with and without EDNS (an OPT makes room for a
    // longer name, so more of the key is zeroed): every byte after a name
    // must be zero whatever the query before it left there.
    let order = [8usize, 0, 7, 1, 6, 2, 5, 3, 4, 8, 3, 2];
    for (n, &i) in order.iter().enumerate() {
        let mut query = Query::a(&names[i].to_uppercase());
        if n % 2 == 1 {
            query = query.with_opt(Opt::new(1232));
        }
        let run = xdp.run(&query.frame()).unwrap();
        assert_eq!(run.verdict, XDP_TX, "{} bytes", lengths[i]);
        let answer = check_answer(&query, &run.frame).unwrap();
        assert_eq!(
            answer.addrs,
            vec![IpAddr::V4(Ipv4Addr::new(192, 0, 2, 200 + i as u8))],
            "{} bytes",
            lengths[i]
        );
    }
    // A name one byte off each stored one is not in any map.
    for (&len, c) in lengths.iter().zip(chars).skip(1) {
        let query = Query::a(&name_of_wire_len(len - 1, c));
        assert_eq!(
            xdp.run(&query.frame()).unwrap().verdict,
            XDP_PASS,
            "{len} - 1 bytes"
        );
    }
}

/// A rotation reaches the kernel through the writer the agent's rotation
/// task holds: new cookies are made under the new secret, the one before
/// stays accepted (a valid cookie under it still passes a spent rate
/// limit), and after the next rotation it is not any more.
#[test]
fn a_rotated_secret_reaches_the_kernel_and_the_previous_one_stays_accepted() {
    use failover_agent::serve::cookies::Cookies;
    pin_to_cpu(0).unwrap();
    const THIRD: [u8; 16] = [0x33; 16];
    let cookies = Cookies::with_secret(OLD_SECRET);
    let mut xdp = cookie_program(&cookies);
    let mut writer = xdp.dataplane.cookie_writer().unwrap();
    // Drop everything over the limit: answered means valid (exempt).
    xdp.dataplane
        .set_rate_limit(Some(&rate_limit(0, false, &[])))
        .unwrap();
    let base = Query::a(WWW);
    let client_only = with_cookie(base.clone(), &CLIENT_COOKIE);
    let cookie_of = |xdp: &mut XdpProgram, q: &Query| {
        let (run, _) = run_at_cookie_now(xdp, q);
        assert_eq!(run.verdict, XDP_TX);
        check_answer(q, &run.frame).unwrap().cookie
    };
    assert_eq!(
        cookie_of(&mut xdp, &client_only),
        Some(made(&OLD_SECRET, &base, COOKIE_NOW))
    );
    assert!(cookies.rotate_to(COOKIE_SECRET));
    writer.write(&cookies).unwrap();
    assert_eq!(
        cookie_of(&mut xdp, &client_only),
        Some(made(&COOKIE_SECRET, &base, COOKIE_NOW)),
        "new cookies under the new secret"
    );
    // Spend the burst; then only a valid cookie is answered.
    for _ in 1..BURST {
        run_at_cookie_now(&mut xdp, &client_only);
    }
    let (run, _) = run_at_cookie_now(&mut xdp, &client_only);
    assert_eq!(run.verdict, XDP_DROP, "a client cookie alone is limited");
    let under_old = with_cookie(base.clone(), &made(&OLD_SECRET, &base, COOKIE_NOW - 10));
    let (run, bumped) = run_at_cookie_now(&mut xdp, &under_old);
    assert_eq!(
        (run.verdict, bumped),
        (XDP_TX, vec![Counter::Answered]),
        "a cookie under the previous secret is still valid"
    );
    assert!(cookies.rotate_to(THIRD));
    writer.write(&cookies).unwrap();
    let (run, _) = run_at_cookie_now(&mut xdp, &under_old);
    assert_eq!(
        run.verdict, XDP_DROP,
        "two rotations later the old secret's cookie is not valid"
    );
}
