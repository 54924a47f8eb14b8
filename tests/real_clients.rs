//! Real DNS software no one here wrote, against the agent in network
//! namespaces (issue 3, section 4):
//! - dig and kdig over UDP and TCP, IPv4 and IPv6, with and without EDNS,
//!   mixed case: every kind of answer an
//!   authoritative server gives, the kernel's (UDP) and userspace's (TCP)
//!   alike;
//! - unbound as a resolver with a stub zone and 0x20 (use-caps-for-id),
//!   following a failover once the TTL runs out;
//! - Knot DNS serving the rest of the zone behind the XDP program, with the
//!   agent in front mode (binding nothing).
//!
//! Needs root and the peers' packages: `cargo xtask test` installs them
//! (`cargo xtask prereqs`).

use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    time::{Duration, Instant},
};

use failover_tests::{
    AgentConfig, CheckSpec, EndpointSpec, Netns, RecordSpec, ZoneSpec,
    dig::{Tool, ToolAnswer, ToolQuery},
    is_root,
    netns::{DNS_SERVER_ADDR, DNS_SERVER_ADDR6, ENDPOINT_ADDRS},
    packets,
    peers::{Knot, Unbound, UnboundConfig},
    poll_until,
};

const AGENT: &str = env!("CARGO_BIN_EXE_failover-agent-under-test");

const ZONE: &str = "example.test.";
const WWW: &str = "www.example.test.";
const NS1: &str = "ns1.example.test.";
/// All-healthy AAAA record of 16 endpoints whose answer does not fit 512
/// bytes: 12 (header) + 63 (question) + 16 * 28 (records) = 523.
const BIG: &str = "sixteen-aaaa-records-do-not-fit-in-512-bytes.example.test.";
const BIG_COUNT: u16 = 16;

/// The A record's endpoints (demo endpoints on the server's lo, port 80).
const PRIMARY: Ipv4Addr = ENDPOINT_ADDRS[0];
const SECONDARY: Ipv4Addr = ENDPOINT_ADDRS[1];
const PORT: u16 = 80;
/// The AAAA records' endpoints: one demo endpoint on `[::]:8080` answers the
/// checks of all of them.
const PRIMARY6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xe, 0, 0, 0, 0, 0x10);
const SECONDARY6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xe, 0, 0, 0, 0, 0x11);
const PORT6: u16 = 8080;

/// Short, so a resolver's cached answer runs out quickly (the unbound test).
const TTL: u32 = 2;
/// SOA of the zone; Knot's zone file carries the same one.
const SERIAL: u32 = 2026112301;
const MINIMUM: u32 = 60;
/// TTL of the agent's SOA record; negative answers carry min(SOA_TTL, MINIMUM)
/// = 5. Knot's SOA has TTL 300, so its negative answers carry 60: the TTL
/// tells who answered.
const SOA_TTL: u32 = 5;
const SOA_RDATA: &str = "ns1.example.test. hostmaster.example.test. 2026112301 3600 600 1209600 60";

const INTERVAL: Duration = Duration::from_millis(300);
const FALL: u32 = 3;
const RISE: u32 = 2;

fn require_root() {
    assert!(
        is_root(),
        "these tests need root (namespaces, veth, XDP): run `cargo xtask test` as root"
    );
}

fn big_addr(i: u16) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, 0xe, 0, 0, 0, 1, i)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// The agent serves UDP and TCP on `listen` itself.
    Authoritative,
    /// The agent binds nothing; Knot answers what XDP passes.
    Front,
}

/// The agent's configuration for these tests: the zone with its SOA and
/// nameserver, `www` A and AAAA (failover) and, in authoritative mode, the
/// big AAAA record.
fn agent_config(mode: Mode, listen: &[SocketAddr]) -> String {
    let config = match mode {
        Mode::Authoritative => AgentConfig::new()
            .server("mode", "authoritative")
            .server("listen", listen.to_vec()),
        Mode::Front => AgentConfig::new().server("mode", "front"),
    };
    let zone = ZoneSpec::new(ZONE)
        .ttl(TTL)
        .set("mname", NS1)
        .set("rname", format!("hostmaster.{ZONE}"))
        .set("serial", SERIAL)
        .set("refresh", 3600)
        .set("retry", 600)
        .set("expire", 1209600)
        .set("minimum", MINIMUM)
        .set("soa_ttl", SOA_TTL)
        .nameserver(NS1, &[DNS_SERVER_ADDR.into(), DNS_SERVER_ADDR6.into()]);
    let mut config =
        config
            .zone(zone)
            .record(RecordSpec::new(WWW, "A", "failover", "web").endpoints([
                EndpointSpec::new(PRIMARY).priority(1),
                EndpointSpec::new(SECONDARY).priority(2),
            ]));
    if mode == Mode::Authoritative {
        config = config
            .record(RecordSpec::new(WWW, "AAAA", "failover", "web6").endpoints([
                EndpointSpec::new(PRIMARY6).priority(1),
                EndpointSpec::new(SECONDARY6).priority(2),
            ]))
            .record(
                RecordSpec::new(BIG, "AAAA", "all-healthy", "web6")
                    .set("max_answers", BIG_COUNT)
                    .endpoints((0..BIG_COUNT).map(|i| EndpointSpec::new(big_addr(i)))),
            );
    }
    for (name, port) in [("web", PORT), ("web6", PORT6)] {
        let check = CheckSpec::tcp(port).timing(INTERVAL, Duration::from_millis(200), RISE, FALL);
        config = config.check(name, check);
    }
    config.to_toml()
}

/// Starts the endpoints (IPv4 per address; one IPv6 wildcard endpoint for the
/// AAAA records) and adds the IPv6 endpoint addresses to the server's lo.
fn start_endpoints(netns: &mut Netns, with_ipv6: bool) {
    netns
        .start_endpoint(SocketAddr::from((PRIMARY, PORT)))
        .expect("starting the primary");
    netns
        .start_endpoint(SocketAddr::from((SECONDARY, PORT)))
        .expect("starting the secondary");
    if with_ipv6 {
        for addr in [PRIMARY6, SECONDARY6]
            .into_iter()
            .chain((0..BIG_COUNT).map(big_addr))
        {
            netns
                .add_server_lo_address(addr.into())
                .expect("adding an IPv6 endpoint address");
        }
        netns
            .start_endpoint(SocketAddr::from((Ipv6Addr::UNSPECIFIED, PORT6)))
            .expect("starting the IPv6 endpoint");
    }
}

/// Why the kernel may have answered fewer than expected, from its counters.
fn tailroom_hint(counters: &BTreeMap<String, u64>) -> String {
    match counters.get("pass_no_tailroom") {
        Some(&n) if n > 0 => format!(
            "\n{n} answers went up the stack as pass_no_tailroom: the frame could not grow \
             to hold the answer, at its tail or its head. Native XDP on veth copies a frame from \
             a local socket into a buffer with 256 bytes of headroom and the frame's length \
             rounded up to a cache line (skb_pp_cow_data), so there is little tailroom"
        ),
        _ => String::new(),
    }
}

/// Polls `query` (run in the client namespace) until `done` accepts the answer.
fn wait_for_answer(
    netns: &Netns,
    query: &ToolQuery,
    limit: Duration,
    what: &str,
    mut done: impl FnMut(&ToolAnswer) -> bool,
) -> (Duration, ToolAnswer) {
    let started = Instant::now();
    let mut last = None;
    let found = poll_until(limit, Duration::from_millis(100), || {
        match query.run(&netns.client) {
            Ok(answer) => {
                let ok = done(&answer);
                last = Some(Ok(answer.clone()));
                Ok(ok.then_some(answer))
            }
            Err(e) => {
                last = Some(Err(format!("{e:#}")));
                Ok(None)
            }
        }
    })
    .expect("polling");
    match found {
        Some(answer) => (started.elapsed(), answer),
        None => panic!(
            "no answer {what} within {limit:?}; last: {last:?}\nagent log:\n{}",
            netns.agent_log()
        ),
    }
}

// ---------------------------------------------------------------------------
// dig and kdig against the authoritative agent

/// (owner, TTL, RDATA) of an answer set, sorted.
type RrSet = Vec<(String, u32, String)>;

/// One expectation of the matrix.
struct Case {
    name: &'static str,
    qtype: &'static str,
    check: fn(&ToolAnswer, &Ctx) -> Result<(), String>,
    /// More arguments for dig; for kdig (`None`: kdig cannot send this).
    dig_args: &'static [&'static str],
    kdig_args: Option<&'static [&'static str]>,
    /// Run only in the EDNS 1232 round (the arguments set EDNS themselves).
    edns_only: bool,
}

impl Case {
    fn new(
        name: &'static str,
        qtype: &'static str,
        check: fn(&ToolAnswer, &Ctx) -> Result<(), String>,
    ) -> Self {
        Self {
            name,
            qtype,
            check,
            dig_args: &[],
            kdig_args: Some(&[]),
            edns_only: false,
        }
    }

    fn with_args(
        mut self,
        dig: &'static [&'static str],
        kdig: Option<&'static [&'static str]>,
    ) -> Self {
        self.dig_args = dig;
        self.kdig_args = kdig;
        self
    }

    fn edns_only(mut self) -> Self {
        self.edns_only = true;
        self
    }

    /// The extra arguments for `tool`, or `None` if it cannot send this query.
    fn args(&self, tool: Tool) -> Option<&'static [&'static str]> {
        match tool {
            Tool::Dig => Some(self.dig_args),
            Tool::Kdig => self.kdig_args,
        }
    }
}

/// What a check may depend on: how the query was sent.
struct Ctx {
    tool: Tool,
    tcp: bool,
    edns: Option<u16>,
    sent_name: String,
}

fn ensure(cond: bool, what: impl Into<String>) -> Result<(), String> {
    if cond { Ok(()) } else { Err(what.into()) }
}

/// Header, question and EDNS common to every authoritative answer.
fn common(a: &ToolAnswer, ctx: &Ctx, qtype: &str, rcode: &str, aa: bool) -> Result<(), String> {
    ensure(
        a.rcode == rcode,
        format!("rcode {} (want {rcode})", a.rcode),
    )?;
    ensure(a.has_flag("qr"), "QR not set")?;
    ensure(
        a.has_flag("aa") == aa,
        format!("AA is {} (want {aa})", a.has_flag("aa")),
    )?;
    ensure(!a.has_flag("ra"), "RA set by an authoritative-only server")?;
    ensure(
        !a.has_flag("rd"),
        "RD not copied from the query (+norecurse)",
    )?;
    // 0x20: the question comes back exactly as sent (kdig sends lowercase).
    let want_q = match ctx.tool {
        Tool::Dig => ctx.sent_name.clone(),
        Tool::Kdig => ctx.sent_name.to_ascii_lowercase(),
    };
    ensure(
        a.question == Some((want_q.clone(), qtype.to_string())),
        format!("question {:?} (want {want_q} {qtype})", a.question),
    )?;
    // RFC 6891 7: OPT in the response iff the query had one.
    ensure(
        a.edns.is_some() == ctx.edns.is_some(),
        format!("EDNS in response {:?}, in query {:?}", a.edns, ctx.edns),
    )?;
    if let Some((version, _)) = a.edns {
        ensure(version == 0, format!("EDNS version {version}"))?;
    }
    Ok(())
}

fn soa_authority(a: &ToolAnswer) -> Result<(), String> {
    ensure(
        a.authority.len() == 1,
        format!("authority {:?} (want the SOA alone)", a.authority),
    )?;
    let soa = a.authority[0].normalized();
    ensure(
        soa.name == ZONE && soa.rtype == "SOA" && soa.rdata == SOA_RDATA,
        format!("authority SOA {soa:?}"),
    )?;
    // RFC 2308 3: min(SOA TTL, MINIMUM).
    ensure(
        soa.ttl == SOA_TTL.min(MINIMUM),
        format!("negative SOA TTL {}", soa.ttl),
    )
}

fn addresses(a: &ToolAnswer, rtype: &str, want: &[&str]) -> Result<(), String> {
    let got = a.rdata(rtype);
    ensure(
        got == want && a.answer.len() == want.len(),
        format!("answer {:?} (want {rtype} {want:?})", a.answer),
    )?;
    for rr in &a.answer {
        ensure(rr.ttl == TTL, format!("TTL {} (want {TTL})", rr.ttl))?;
        ensure(
            rr.name.eq_ignore_ascii_case(WWW) || rr.name.eq_ignore_ascii_case(BIG),
            format!("owner {}", rr.name),
        )?;
    }
    Ok(())
}

fn www_a(a: &ToolAnswer, ctx: &Ctx) -> Result<(), String> {
    common(a, ctx, "A", "NOERROR", true)?;
    ensure(!a.has_flag("tc"), "TC set")?;
    addresses(a, "A", &[&PRIMARY.to_string()])?;
    ensure(
        a.authority.is_empty(),
        format!("authority {:?}", a.authority),
    )
}

fn www_aaaa(a: &ToolAnswer, ctx: &Ctx) -> Result<(), String> {
    common(a, ctx, "AAAA", "NOERROR", true)?;
    addresses(a, "AAAA", &[&PRIMARY6.to_string()])?;
    ensure(
        a.authority.is_empty(),
        format!("authority {:?}", a.authority),
    )
}

fn nodata(qtype: &'static str) -> impl Fn(&ToolAnswer, &Ctx) -> Result<(), String> {
    move |a, ctx| {
        common(a, ctx, qtype, "NOERROR", true)?;
        ensure(a.answer.is_empty(), format!("answer {:?}", a.answer))?;
        soa_authority(a)
    }
}

fn www_mx(a: &ToolAnswer, ctx: &Ctx) -> Result<(), String> {
    nodata("MX")(a, ctx)
}

fn www_https(a: &ToolAnswer, ctx: &Ctx) -> Result<(), String> {
    nodata("HTTPS")(a, ctx)
}

fn apex_txt(a: &ToolAnswer, ctx: &Ctx) -> Result<(), String> {
    nodata("TXT")(a, ctx)
}

fn apex_soa(a: &ToolAnswer, ctx: &Ctx) -> Result<(), String> {
    common(a, ctx, "SOA", "NOERROR", true)?;
    ensure(
        a.answer.len() == 1
            && a.answer[0].rtype == "SOA"
            && a.answer[0].rdata == SOA_RDATA
            && a.answer[0].name.eq_ignore_ascii_case(ZONE),
        format!("answer {:?} (want the SOA)", a.answer),
    )
}

fn apex_ns(a: &ToolAnswer, ctx: &Ctx) -> Result<(), String> {
    common(a, ctx, "NS", "NOERROR", true)?;
    ensure(
        a.answer.len() == 1 && a.answer[0].rtype == "NS" && a.answer[0].rdata == NS1,
        format!("answer {:?} (want NS {NS1})", a.answer),
    )?;
    ensure(
        a.answer[0].ttl == TTL,
        format!("NS TTL {}", a.answer[0].ttl),
    )?;
    // The nameserver is inside the zone: its addresses go along as glue.
    let mut glue: Vec<(String, String)> = a
        .additional
        .iter()
        .map(|r| (r.name.to_ascii_lowercase(), r.rdata.clone()))
        .collect();
    glue.sort();
    ensure(
        glue == [
            (NS1.to_string(), DNS_SERVER_ADDR.to_string()),
            (NS1.to_string(), DNS_SERVER_ADDR6.to_string()),
        ],
        format!("additional {:?} (want the glue of {NS1})", a.additional),
    )
}

fn ns1_a(a: &ToolAnswer, ctx: &Ctx) -> Result<(), String> {
    common(a, ctx, "A", "NOERROR", true)?;
    ensure(
        a.rdata("A") == [DNS_SERVER_ADDR.to_string()] && a.answer.len() == 1,
        format!("answer {:?} (want {DNS_SERVER_ADDR})", a.answer),
    )
}

fn unknown_name(a: &ToolAnswer, ctx: &Ctx) -> Result<(), String> {
    common(a, ctx, "A", "NXDOMAIN", true)?;
    ensure(a.answer.is_empty(), format!("answer {:?}", a.answer))?;
    soa_authority(a)
}

fn outside_zones(a: &ToolAnswer, ctx: &Ctx) -> Result<(), String> {
    // Not a resolver: REFUSED, not authoritative, nothing in any section.
    common(a, ctx, "A", "REFUSED", false)?;
    ensure(
        a.answer.is_empty() && a.authority.is_empty(),
        format!("sections {:?} {:?}", a.answer, a.authority),
    )
}

fn big(a: &ToolAnswer, ctx: &Ctx) -> Result<(), String> {
    common(a, ctx, "AAAA", "NOERROR", true)?;
    let fits = ctx.tcp || ctx.edns.is_some_and(|size| size >= 1232);
    if fits {
        ensure(!a.has_flag("tc"), "TC set although the answer fits")?;
        let want: Vec<String> = (0..BIG_COUNT).map(|i| big_addr(i).to_string()).collect();
        let mut want_sorted = want.clone();
        want_sorted.sort();
        let want_refs: Vec<&str> = want_sorted.iter().map(String::as_str).collect();
        addresses(a, "AAAA", &want_refs)
    } else {
        // RFC 2181 9 / RFC 1035: TC=1, and what is there must not pretend
        // to be the whole set.
        ensure(a.has_flag("tc"), "TC not set on an answer too big for UDP")?;
        ensure(
            a.answer.len() < BIG_COUNT as usize,
            format!("{} records in a truncated answer", a.answer.len()),
        )
    }
}

fn apex_any(a: &ToolAnswer, ctx: &Ctx) -> Result<(), String> {
    common(a, ctx, "ANY", "NOERROR", true)?;
    ensure(
        a.answer.len() == 1 && a.answer[0].rtype == "SOA" && a.answer[0].rdata == SOA_RDATA,
        format!("answer {:?} (want the SOA alone)", a.answer),
    )
}

fn other_class(a: &ToolAnswer, ctx: &Ctx) -> Result<(), String> {
    common(a, ctx, "A", "REFUSED", false)?;
    ensure(a.answer.is_empty(), format!("answer {:?}", a.answer))
}

/// Header checks of an error answer that may not echo the question.
fn error_header(a: &ToolAnswer, rcode: &str) -> Result<(), String> {
    ensure(
        a.rcode == rcode,
        format!("rcode {} (want {rcode})", a.rcode),
    )?;
    ensure(a.has_flag("qr"), "QR not set")?;
    ensure(!a.has_flag("aa"), "AA set on an error")?;
    ensure(
        a.answer.is_empty() && a.authority.is_empty(),
        format!("sections {:?} {:?}", a.answer, a.authority),
    )
}

fn badvers(a: &ToolAnswer, ctx: &Ctx) -> Result<(), String> {
    error_header(a, "BADVERS")?;
    // RFC 6891 6.1.3: the responder's own (highest) version, 0, in its OPT.
    ensure(
        matches!(a.edns, Some((0, _))),
        format!("OPT {:?} (want version 0)", a.edns),
    )?;
    let _ = ctx;
    Ok(())
}

fn notimp(a: &ToolAnswer, _ctx: &Ctx) -> Result<(), String> {
    error_header(a, "NOTIMP")
}

fn formerr(a: &ToolAnswer, _ctx: &Ctx) -> Result<(), String> {
    error_header(a, "FORMERR")
}

fn cases() -> Vec<Case> {
    vec![
        Case::new("wWw.ExAmPlE.tEsT.", "A", www_a),
        Case::new("WWW.example.TEST.", "AAAA", www_aaaa),
        Case::new("Www.Example.Test.", "HTTPS", www_https),
        Case::new("www.EXAMPLE.test.", "MX", www_mx),
        Case::new("Example.Test.", "SOA", apex_soa),
        Case::new("example.TEST.", "NS", apex_ns),
        Case::new("eXample.test.", "TXT", apex_txt),
        // RFC 8482: one RRset for ANY, the SOA at the apex.
        Case::new("EXAMPLE.test.", "ANY", apex_any),
        Case::new("nS1.example.test.", "A", ns1_a),
        Case::new("No-Such-Name.Example.Test.", "A", unknown_name),
        Case::new("www.Example.ORG.", "A", outside_zones),
        Case::new(
            "Sixteen-AAAA-records-do-not-fit-in-512-bytes.example.test.",
            "AAAA",
            big,
        ),
        // Class CH: there is no data in other classes.
        Case::new("www.example.test.", "A", other_class)
            .with_args(&["-c", "CH"], Some(&["-c", "CH"])),
        // EDNS version 1 (dig must not renegotiate down to 0 by itself).
        Case::new("www.example.test.", "A", badvers)
            .with_args(&["+edns=1", "+noednsnegotiation"], Some(&["+edns=1"]))
            .edns_only(),
        // Opcode STATUS (kdig cannot send other opcodes).
        Case::new("www.example.test.", "A", notimp).with_args(&["+opcode=status"], None),
        // No question at all.
        Case::new("www.example.test.", "A", formerr).with_args(&["+header-only"], None),
    ]
}

/// Namespaces, IPv4 and IPv6 endpoints, and the agent in mode authoritative
/// listening on port 53 of both server addresses.
fn start_authoritative_agent() -> (Netns, [SocketAddr; 2]) {
    let mut netns = Netns::new(AGENT).expect("creating the namespaces");
    start_endpoints(&mut netns, true);
    let listen = [
        SocketAddr::new(DNS_SERVER_ADDR.into(), 53),
        SocketAddr::new(DNS_SERVER_ADDR6.into(), 53),
    ];
    let path = netns
        .write_config("agent.toml", &agent_config(Mode::Authoritative, &listen))
        .unwrap();
    netns.start_agent(&path, &[]).expect("starting the agent");
    (netns, listen)
}

/// Every case of [`cases`] with dig and kdig, over UDP and TCP, IPv4 and
/// IPv6, without EDNS, with EDNS 1232 and with EDNS 512; plus the same answer set and TTL for www over UDP (kernel) and TCP
/// (userspace), and the kernel's counters showing it answered the UDP ones.
#[test]
fn dig_and_kdig_get_authoritative_answers_over_every_transport() {
    require_root();
    let (mut netns, listen) = start_authoritative_agent();
    for addr in &listen {
        netns
            .wait_for_server_tcp(*addr, Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("{e:#}\nagent log:\n{}", netns.agent_log()));
    }
    // Health checks first: the answer sets are written after the first round.
    let probe = ToolQuery::new(Tool::Dig, DNS_SERVER_ADDR.into(), WWW, "A");
    let (took, _) = wait_for_answer(&netns, &probe, Duration::from_secs(10), "for www", |a| {
        a.rdata("A") == [PRIMARY.to_string()]
    });
    let probe6 = ToolQuery::new(Tool::Dig, DNS_SERVER_ADDR.into(), WWW, "AAAA");
    wait_for_answer(
        &netns,
        &probe6,
        Duration::from_secs(10),
        "for www AAAA",
        |a| a.rdata("AAAA") == [PRIMARY6.to_string()],
    );
    eprintln!("first answer after {} ms", took.as_millis());

    let servers: [(&str, IpAddr); 2] = [
        ("IPv4", DNS_SERVER_ADDR.into()),
        ("IPv6", DNS_SERVER_ADDR6.into()),
    ];
    let started = Instant::now();
    let mut failures = Vec::new();
    let mut runs = 0;
    let mut udp_kernel = 0u64;
    // (tool, transport, family) -> the www A and AAAA answer sets, to compare.
    let mut www_sets: BTreeMap<(bool, &str, &str), RrSet> = BTreeMap::new();
    for tool in [Tool::Dig, Tool::Kdig] {
        for (family, server) in servers {
            for tcp in [false, true] {
                for edns in [None, Some(1232), Some(512)] {
                    for case in cases() {
                        let Some(extra) = case.args(tool) else {
                            continue;
                        };
                        if case.edns_only && edns != Some(1232) {
                            continue;
                        }
                        let mut query = ToolQuery::new(tool, server, case.name, case.qtype);
                        query.tcp = tcp;
                        query.edns = edns;
                        query.extra = extra.iter().map(|a| a.to_string()).collect();
                        let ctx = Ctx {
                            tool,
                            tcp,
                            edns,
                            sent_name: case.name.to_string(),
                        };
                        let what = format!(
                            "{} {family} {} edns={edns:?}: {} {} {extra:?}",
                            tool.program(),
                            if tcp { "TCP" } else { "UDP" },
                            case.name,
                            case.qtype
                        );
                        runs += 1;
                        let answer = match query.run(&netns.client) {
                            Ok(a) => a,
                            Err(e) => {
                                failures.push(format!("{what}: {e:#}"));
                                continue;
                            }
                        };
                        if let Err(e) = (case.check)(&answer, &ctx) {
                            failures.push(format!("{what}: {e}\n  {answer:?}"));
                            continue;
                        }
                        // What the issue has the kernel answer: A/AAAA of
                        // records, NODATA for HTTPS of hot names. (Not the
                        // big set: 448 bytes of records is more than a veth
                        // frame can grow by, 256 of headroom and a little
                        // tailroom; userspace answers it, checked above.)
                        let www = case.name.eq_ignore_ascii_case(WWW) && extra.is_empty();
                        let for_kernel = www && matches!(case.qtype, "A" | "AAAA" | "HTTPS");
                        if for_kernel && !tcp {
                            udp_kernel += 1;
                        }
                        if www && matches!(case.qtype, "A" | "AAAA") {
                            let set = www_sets.entry((tcp, family, case.qtype)).or_default();
                            let rrs: RrSet = answer
                                .answer_set(case.qtype)
                                .into_iter()
                                .map(|r| (r.name, r.ttl, r.rdata))
                                .collect();
                            if set.is_empty() {
                                *set = rrs;
                            } else if *set != rrs {
                                failures.push(format!(
                                    "{what}: answer set {rrs:?} differs from {set:?}"
                                ));
                            }
                        }
                    }
                }
            }
        }
    }
    eprintln!(
        "{runs} dig/kdig queries in {} ms",
        started.elapsed().as_millis()
    );
    // The kernel (UDP) and userspace (TCP) give the same answer set and TTL.
    for ((tcp, family, qtype), set) in &www_sets {
        if *tcp {
            continue;
        }
        let over_tcp = &www_sets[&(true, *family, *qtype)];
        if set != over_tcp {
            failures.push(format!(
                "{family} www {qtype}: UDP (kernel) {set:?} != TCP (userspace) {over_tcp:?}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {runs} queries answered wrongly:\n{}\nagent log:\n{}",
        failures.len(),
        failures.join("\n"),
        netns.agent_log()
    );

    // The UDP answers the issue gives the kernel came from XDP: it counted
    // them. (pass_no_tailroom: answers it could not grow the frame for.)
    let status = netns.stop_agent().expect("stopping the agent");
    let log = netns.agent_log();
    assert_eq!(status.code(), Some(0), "agent log:\n{log}");
    let counters = netns.kernel_counters();
    eprintln!("kernel counters: {counters:?}");
    assert!(
        kernel_answered(&counters) >= udp_kernel,
        "the kernel answered {} queries, fewer than the {udp_kernel} UDP queries for www \
         A/AAAA/HTTPS: {counters:?}{}",
        kernel_answered(&counters),
        tailroom_hint(&counters)
    );
    assert!(
        counters["pass_answer_too_large"] >= 1,
        "the big answer without EDNS never went up to userspace: {counters:?}"
    );
}

// ---------------------------------------------------------------------------
// 802.1Q on the veth

/// Hand-made queries with one 802.1Q tag (and untagged ones alike), IPv4 and
/// IPv6, A and AAAA, with and without EDNS, sent through a raw socket on the
/// client veth: the XDP program on the real veth answers them in native mode
/// with the tag kept and both checksums right. (No dig here: this kernel has
/// no 8021q, so there are no VLAN sub-interfaces to send from.)
#[test]
fn xdp_answers_tagged_queries_on_the_veth() {
    require_root();
    let (mut netns, _) = start_authoritative_agent();
    for (qtype, want) in [("A", PRIMARY.to_string()), ("AAAA", PRIMARY6.to_string())] {
        let probe = ToolQuery::new(Tool::Dig, DNS_SERVER_ADDR.into(), WWW, qtype);
        wait_for_answer(&netns, &probe, Duration::from_secs(10), "for www", |a| {
            a.rdata(qtype) == [want.clone()]
        });
    }
    let mut sent = 0u64;
    let mut failures = Vec::new();
    let mut id = 0x5100u16;
    for tag in [None, Some(0x2035u16), Some(0x0fff)] {
        for ipv6 in [false, true] {
            for (qtype, want) in [(1u16, IpAddr::from(PRIMARY)), (28, PRIMARY6.into())] {
                for edns in [None, Some(1232u16)] {
                    id += 1;
                    let mut query = packets::Query::a("wWw.ExAmPle.TEST.").with_qtype(qtype);
                    query.id = id;
                    if ipv6 {
                        query = query.v6();
                    }
                    if let Some(tci) = tag {
                        query = query.tagged(tci);
                    }
                    if let Some(size) = edns {
                        query = query.with_opt(packets::Opt::new(size));
                    }
                    let frame = query.frame();
                    let what = format!(
                        "tag {tag:?} ipv6 {ipv6} qtype {qtype} edns {edns:?} ({} byte frame)",
                        frame.len()
                    );
                    sent += 1;
                    let reply = netns
                        .client_raw_exchange(frame, Duration::from_secs(1), |f| {
                            f.len() >= 12
                                && f[0..6] == packets::CLIENT_MAC
                                && f[6..12] == packets::SERVER_MAC
                        })
                        .expect("raw exchange");
                    let Some(reply) = reply else {
                        failures.push(format!("{what}: no answer from XDP"));
                        continue;
                    };
                    match packets::check_answer(&query, &reply) {
                        Ok(answer) if answer.addrs == [want] && answer.ttls == [TTL] => {}
                        Ok(answer) => failures
                            .push(format!("{what}: {:?} TTL {:?}", answer.addrs, answer.ttls)),
                        Err(e) => failures.push(format!("{what}: {e:#}\nframe {reply:02x?}")),
                    }
                }
            }
        }
    }
    let status = netns.stop_agent().expect("stopping the agent");
    let log = netns.agent_log();
    assert_eq!(status.code(), Some(0), "agent log:\n{log}");
    let counters = netns.kernel_counters();
    eprintln!("kernel counters: {counters:?}");
    assert!(
        failures.is_empty(),
        "{} of {sent} tagged/untagged queries not answered right by XDP:\n{}\nkernel counters: \
         {counters:?}{}",
        failures.len(),
        failures.join("\n"),
        tailroom_hint(&counters)
    );
    assert!(
        kernel_answered(&counters) >= sent,
        "the kernel answered {} of the {sent} raw queries: {counters:?}",
        kernel_answered(&counters)
    );
}

// ---------------------------------------------------------------------------
// unbound

/// unbound with a stub zone for example.test. pointing at our server (IPv4
/// and IPv6) and use-caps-for-id resolves www, the apex, NODATA and NXDOMAIN;
/// when the primary dies its answer follows once the TTL has run out.
#[test]
fn unbound_resolves_through_a_stub_zone_and_follows_a_failover() {
    require_root();
    let (mut netns, _) = start_authoritative_agent();
    let direct = ToolQuery::new(Tool::Dig, DNS_SERVER_ADDR.into(), WWW, "A");
    wait_for_answer(&netns, &direct, Duration::from_secs(10), "for www", |a| {
        a.rdata("A") == [PRIMARY.to_string()]
    });
    let unbound = Unbound::start(
        &netns,
        &UnboundConfig::new(ZONE, &[DNS_SERVER_ADDR.into(), DNS_SERVER_ADDR6.into()]),
    )
    .expect("starting unbound");
    let via = |name: &str, qtype: &str| {
        let mut q = ToolQuery::new(Tool::Dig, IpAddr::V4(*unbound.listen.ip()), name, qtype);
        q.port = unbound.listen.port();
        q.recurse = true;
        q.timeout_secs = 5;
        q
    };
    let resolve = |name: &str, qtype: &str| -> ToolAnswer {
        via(name, qtype).run(&netns.client).unwrap_or_else(|e| {
            panic!(
                "asking unbound for {name} {qtype}: {e:#}\nunbound log:\n{}\nagent log:\n{}",
                unbound.daemon.log(),
                netns.agent_log()
            )
        })
    };

    let www = resolve("www.example.test.", "A");
    assert_eq!(www.rcode, "NOERROR", "{www:?}\n{}", unbound.daemon.log());
    assert!(
        www.has_flag("ra") && !www.has_flag("aa"),
        "a resolver's answer: {www:?}"
    );
    assert_eq!(www.rdata("A"), [PRIMARY.to_string()], "{www:?}");
    assert!(
        www.answer[0].ttl <= TTL,
        "unbound kept it longer than our TTL: {www:?}"
    );
    let aaaa = resolve("www.example.test.", "AAAA");
    assert_eq!(aaaa.rdata("AAAA"), [PRIMARY6.to_string()], "{aaaa:?}");
    let mx = resolve("www.example.test.", "MX");
    assert_eq!(
        (mx.rcode.as_str(), mx.answer.len()),
        ("NOERROR", 0),
        "{mx:?}"
    );
    let nx = resolve("nothing-here.example.test.", "A");
    assert_eq!(nx.rcode, "NXDOMAIN", "{nx:?}");
    let ns = resolve("example.test.", "NS");
    assert_eq!(ns.rdata("NS"), [NS1.to_string()], "{ns:?}");

    // The primary dies: after fall checks the agent answers with the
    // secondary, and once unbound's cached answer (TTL) has expired so does
    // unbound.
    netns
        .kill_endpoint(SocketAddr::from((PRIMARY, PORT)))
        .expect("killing the primary");
    let limit = INTERVAL * FALL + Duration::from_secs(u64::from(TTL)) + Duration::from_secs(3);
    let mut seen = Vec::new();
    let (took, answer) = wait_for_answer(
        &netns,
        &via(WWW, "A"),
        limit,
        "from unbound without the primary",
        |a| {
            seen.push(a.rdata("A"));
            a.rcode == "NOERROR" && !a.rdata("A").contains(&PRIMARY.to_string())
        },
    );
    eprintln!(
        "unbound answers without the primary {} ms after it died (limit {} ms)",
        took.as_millis(),
        limit.as_millis()
    );
    assert_eq!(answer.rdata("A"), [SECONDARY.to_string()]);
    assert!(
        seen.iter()
            .all(|s| *s == [PRIMARY.to_string()] || *s == [SECONDARY.to_string()]),
        "unbound answered something else on the way: {seen:?}"
    );
    // Not before the agent could have noticed.
    assert!(
        took >= INTERVAL * (FALL - 1) - Duration::from_millis(50),
        "unbound followed after {took:?}, before {FALL} checks could fail"
    );
    // Every answer echoed unbound's 0x20 spelling: a mismatch is logged (at
    // verbosity 3) as "wrong 0x20-ID" and starts the "Capsforid" fallback.
    let log = unbound.daemon.log();
    for bad in ["SERVFAIL", "wrong 0x20-ID", "Capsforid", "0x20 fallback"] {
        assert!(!log.contains(bad), "unbound logged {bad:?}:\n{log}");
    }
}

// ---------------------------------------------------------------------------
// Knot DNS behind the XDP program

/// Knot's zone file: the same SOA and NS as the agent's, a DIFFERENT A for
/// www (which must never reach a UDP client), and what only Knot has.
fn knot_zone() -> String {
    format!(
        "$ORIGIN {ZONE}\n$TTL 300\n\
         @ SOA ns1 hostmaster {SERIAL} 3600 600 1209600 {MINIMUM}\n\
         @ NS ns1\n\
         ns1 A {DNS_SERVER_ADDR}\n\
         ns1 AAAA {DNS_SERVER_ADDR6}\n\
         www A 203.0.113.99\n\
         @ MX 10 mail\n\
         mail A 192.0.2.25\n\
         @ TXT \"served by knot\"\n\
         ftp A 192.0.2.21\n"
    )
}

/// The agent in front mode (binds nothing) with Knot on port 53 of the same
/// addresses: www A comes from XDP (the agent's address and TTL, not Knot's),
/// everything else from Knot, over IPv4 and IPv6; the kernel's counters show
/// both paths; a failover still happens in front of Knot.
#[test]
fn knot_serves_the_rest_of_the_zone_behind_xdp_in_front_mode() {
    require_root();
    let mut netns = Netns::new(AGENT).expect("creating the namespaces");
    start_endpoints(&mut netns, false);
    let listen = [
        SocketAddr::new(DNS_SERVER_ADDR.into(), 53),
        SocketAddr::new(DNS_SERVER_ADDR6.into(), 53),
    ];
    // Knot first: it holds port 53, so an agent that tried to bind it too
    // would fail to start.
    let knot = Knot::start(&netns, ZONE, &knot_zone(), &listen).expect("starting knotd");
    let path = netns
        .write_config("agent.toml", &agent_config(Mode::Front, &[]))
        .unwrap();
    netns.start_agent(&path, &[]).expect("starting the agent");
    // Front mode binds no DNS socket: the agent's only socket in the server
    // namespace is its HTTP endpoint (metrics, status) on loopback.
    let agent_pid = netns.agent_pid().expect("the agent runs");
    let sockets = netns
        .server_command("ss")
        .arg("-Hlnutp")
        .output()
        .expect("running ss (iproute2)");
    let sockets = String::from_utf8_lossy(&sockets.stdout).into_owned();
    let agents: Vec<&str> = sockets
        .lines()
        .filter(|l| l.contains(&format!("pid={agent_pid},")))
        .collect();
    assert!(
        sockets.contains("knotd")
            && agents.len() == 1
            && agents[0].starts_with("tcp")
            && agents[0].contains(" 127.0.0.1:9153 "),
        "in front mode the agent (pid {agent_pid}) must hold no DNS socket, Knot port 53:\n{sockets}"
    );

    let mut udp_hot = 0u64;
    let mut udp_passed = 0u64;
    let mut from_knot = Vec::new();
    for server in [IpAddr::from(DNS_SERVER_ADDR), DNS_SERVER_ADDR6.into()] {
        let q = |name: &str, qtype: &str| ToolQuery::new(Tool::Kdig, server, name, qtype);
        let run = |query: ToolQuery| -> ToolAnswer {
            query.run(&netns.client).unwrap_or_else(|e| {
                panic!(
                    "{query:?}: {e:#}\nknot log:\n{}\nagent log:\n{}",
                    knot.daemon.log(),
                    netns.agent_log()
                )
            })
        };
        // Hot name from XDP once the first check round is done.
        let (_, www) = wait_for_answer(
            &netns,
            &q(WWW, "A"),
            Duration::from_secs(10),
            "for www from XDP",
            |a| a.rdata("A") == [PRIMARY.to_string()],
        );
        udp_hot += 1;
        assert_eq!(
            www.answer[0].ttl, TTL,
            "the agent's TTL, not Knot's 300: {www:?}"
        );
        assert!(www.has_flag("aa"), "{www:?}");
        for _ in 0..5 {
            let again = run(q(WWW, "A"));
            udp_hot += 1;
            assert_eq!(
                again.rdata("A"),
                [PRIMARY.to_string()],
                "Knot's www leaked: {again:?}"
            );
        }
        // HTTPS for the hot name: NODATA from the kernel, with the SOA.
        let https = run(q(WWW, "HTTPS"));
        udp_hot += 1;
        assert_eq!(
            (https.rcode.as_str(), https.answer.len()),
            ("NOERROR", 0),
            "{https:?}"
        );
        assert_eq!(https.authority.len(), 1, "{https:?}");
        assert_eq!(https.authority[0].rdata, SOA_RDATA, "{https:?}");
        // Who answered shows in the SOA's TTL; checked after the counters
        // are in, which say why when it was Knot.
        if https.authority[0].ttl != SOA_TTL.min(MINIMUM) {
            from_knot.push(format!(
                "{server}: NODATA for the hot name came from Knot (SOA TTL {}), not from the kernel \
                 (SOA TTL {}): {https:?}",
                https.authority[0].ttl,
                SOA_TTL.min(MINIMUM)
            ));
        }

        // The rest of the zone from Knot, through the XDP program.
        let mx = run(q(ZONE, "MX"));
        assert_eq!(mx.rdata("MX"), ["10 mail.example.test."], "{mx:?}");
        let txt = run(q(ZONE, "TXT"));
        assert_eq!(txt.rdata("TXT"), ["\"served by knot\""], "{txt:?}");
        let ftp = run(q("ftp.example.test.", "A"));
        assert_eq!(ftp.rdata("A"), ["192.0.2.21"], "{ftp:?}");
        let mail = run(q("mail.example.test.", "A"));
        assert_eq!(mail.rdata("A"), ["192.0.2.25"], "{mail:?}");
        let soa = run(q(ZONE, "SOA"));
        assert_eq!(soa.rdata("SOA"), [SOA_RDATA], "{soa:?}");
        let nx = run(q("nothing-here.example.test.", "A"));
        assert_eq!(nx.rcode, "NXDOMAIN", "{nx:?}");
        // MX of the hot name: not a kernel type, so Knot answers (NODATA).
        let www_mx = run(q(WWW, "MX"));
        assert_eq!(
            (www_mx.rcode.as_str(), www_mx.answer.len()),
            ("NOERROR", 0),
            "{www_mx:?}"
        );
        udp_passed += 7;

        // TCP is never intercepted: Knot answers even the hot name, with
        // its own data. In front mode the backing server's zone is what
        // TCP (and truncated-UDP retry) clients see.
        let mut tcp = q(WWW, "A");
        tcp.tcp = true;
        let www_tcp = run(tcp);
        assert_eq!(www_tcp.rdata("A"), ["203.0.113.99"], "{www_tcp:?}");
    }

    // Failover still happens in front of Knot.
    netns
        .kill_endpoint(SocketAddr::from((PRIMARY, PORT)))
        .expect("killing the primary");
    let q = ToolQuery::new(Tool::Kdig, DNS_SERVER_ADDR.into(), WWW, "A");
    let (took, _) = wait_for_answer(
        &netns,
        &q,
        INTERVAL * FALL + Duration::from_secs(2),
        "with the secondary",
        |a| a.rdata("A") == [SECONDARY.to_string()],
    );
    eprintln!("front mode: failed over after {} ms", took.as_millis());
    let mx = ToolQuery::new(Tool::Kdig, DNS_SERVER_ADDR.into(), ZONE, "MX")
        .run(&netns.client)
        .expect("MX after the failover");
    assert_eq!(mx.rdata("MX"), ["10 mail.example.test."], "{mx:?}");

    let status = netns.stop_agent().expect("stopping the agent");
    let log = netns.agent_log();
    assert_eq!(status.code(), Some(0), "agent log:\n{log}");
    let counters = netns.kernel_counters();
    eprintln!("kernel counters: {counters:?}");
    assert!(
        from_knot.is_empty(),
        "{}\nkernel counters: {counters:?}{}",
        from_knot.join("\n"),
        tailroom_hint(&counters)
    );
    assert!(
        kernel_answered(&counters) >= udp_hot,
        "the kernel answered {} queries, fewer than the {udp_hot} for the hot name: {counters:?}",
        kernel_answered(&counters)
    );
    let passed = counters["pass_name_not_in_map"] + counters["pass_unsupported_type"];
    assert!(
        passed >= udp_passed,
        "the kernel passed {passed} queries to Knot, fewer than the {udp_passed} Knot answered: {counters:?}"
    );
    assert!(
        !knot.daemon.log().contains("error"),
        "knotd logged an error:\n{}",
        knot.daemon.log()
    );
}

/// Every answer the kernel sent: addresses, NODATA and SERVFAIL are
/// counted apart.
fn kernel_answered(counters: &std::collections::BTreeMap<String, u64>) -> u64 {
    ["answered", "answered_nodata", "answered_servfail"]
        .iter()
        .map(|c| counters.get(*c).copied().unwrap_or(0))
        .sum()
}
