//! Kernel == userspace: the XDP fast path and the userspace responder,
//! fed the same configuration the same way (`gen::feed`: the agent's
//! `publish_all_healthy`, plus the agent's own decisions for a few records
//! whose endpoints are all down), answer every query alike.
//!
//! 100,000 generated queries (tests/support/gen.rs: names in and out of
//! zones, under hot names, near 255 bytes, random case, A AAAA HTTPS MX TXT
//! SOA NS SVCB ANY and others, class IN and not, EDNS on and off with sizes
//! below 512 to 65535 and DO, RD/CD/AD, IPv4 and IPv6, VLAN or not) run
//! through the XDP program (BPF_PROG_TEST_RUN). For each one:
//! - XDP_TX: the answer frame passes `compare::check_reply_frame` (every
//!   layer, both checksums) and, for NOERROR, `packets::check_answer`; its
//!   DNS message means the same as the userspace responder's answer to the
//!   same message over UDP (`compare::semantic_diff`: RCODE, flags, question
//!   bytes, answer/authority/additional as sets with TTLs, OPT; for weighted
//!   records, one address of the weighted set on each side).
//! - XDP_PASS: the frame is untouched, and userspace answers it (a response
//!   with the query's id that hickory parses). If the query is one the
//!   kernel is built to answer (a hot name, A/AAAA/HTTPS, class IN, EDNS
//!   version 0 or none) and userspace's answer fits without truncation, the
//!   kernel passing it is a difference too: the test cannot go green by the
//!   kernel passing everything.
//!
//! Cookies are on on both sides, with one secret and one clock second:
//! the kernel's COOKIE option must be byte for byte userspace's (client
//! cookie alone, a valid server cookie, a foreign one; malformed lengths
//! are userspace's FORMERR, which the kernel passes).
//!
//! Seed: FAILOVER_DIFF_SEED (decimal, 0x-hex or "random"); count:
//! FAILOVER_DIFF_QUERIES. Needs root (BPF).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use failover_agent::serve::cookies::{Cookies, server_cookie};

use failover_agent::serve::{AnswerTable, Responder as Userspace, Transport};
use failover_tests::compare::{check_reply_frame, hex, semantic_diff, weighted_choices};
use failover_tests::r#gen::{
    Generated, Layout, NameKind, QueryGen, TYPE_A, TYPE_AAAA, TYPE_HTTPS, Universe, count_from_env,
    feed, name_text, seed_from_env, test_config, type_name,
};
use failover_tests::packets::{CLIENT_IP, CLIENT_IP6, Query, check_answer, query_cookie};
use failover_tests::xdp::{XDP_PASS, XDP_TX, XdpProgram};
use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::{RData, Record};

const DEFAULT_SEED: u64 = 0xd1ff_0003;
const DEFAULT_QUERIES: u64 = 100_000;
/// Stop collecting after this many differences.
const MAX_DIFFERENCES: usize = 10;

#[derive(Default)]
struct Tally {
    queries: u64,
    answered: u64,
}

#[derive(Default)]
struct Stats {
    all: Tally,
    by_type: BTreeMap<u16, Tally>,
    by_kind: BTreeMap<NameKind, Tally>,
    /// Userspace RCODEs of all queries (TC counted apart).
    user_rcodes: BTreeMap<String, u64>,
    /// Kernel answers of weighted records: (name, type) -> choice -> times picked.
    weighted: BTreeMap<(String, u16), BTreeMap<IpAddr, u64>>,
    kernel_time: Duration,
    user_time: Duration,
    check_time: Duration,
}

impl Stats {
    fn count(&mut self, g: &Generated, answered: bool) {
        for t in [
            &mut self.all,
            self.by_type.entry(g.query.qtype).or_default(),
            self.by_kind.entry(g.kind).or_default(),
        ] {
            t.queries += 1;
            t.answered += u64::from(answered);
        }
    }

    fn count_pick(&mut self, g: &Generated, choices: &[IpAddr], kernel_dns: &[u8]) {
        let key = (
            name_text(&g.query.qname).to_ascii_lowercase(),
            g.query.qtype,
        );
        let picks = self
            .weighted
            .entry(key)
            .or_insert_with(|| choices.iter().map(|a| (*a, 0)).collect());
        let Ok(m) = Message::from_vec(kernel_dns) else {
            return;
        };
        for record in m.answers() {
            let addr = match record.data() {
                RData::A(a) => IpAddr::V4(a.0),
                RData::AAAA(a) => IpAddr::V6(a.0),
                _ => continue,
            };
            *picks.entry(addr).or_default() += 1;
        }
    }

    fn print(&self, seed: u64, elapsed: Duration) {
        let a = &self.all;
        let pct = |t: &Tally| 100.0 * t.answered as f64 / t.queries.max(1) as f64;
        println!(
            "differential: seed {seed:#x}: {} queries, kernel answered {} ({:.1}%), passed {}; \
             {:.1} s ({:.1} µs/query: kernel {:.1}, userspace {:.1}, checks {:.1})",
            a.queries,
            a.answered,
            pct(a),
            a.queries - a.answered,
            elapsed.as_secs_f64(),
            elapsed.as_secs_f64() * 1e6 / a.queries.max(1) as f64,
            self.kernel_time.as_secs_f64() * 1e6 / a.queries.max(1) as f64,
            self.user_time.as_secs_f64() * 1e6 / a.queries.max(1) as f64,
            self.check_time.as_secs_f64() * 1e6 / a.queries.max(1) as f64,
        );
        let line = |label: String, t: &Tally| {
            println!(
                "  {label:<18} {:>7} queries, {:>7} kernel-answered ({:>5.1}%)",
                t.queries,
                t.answered,
                pct(t)
            )
        };
        for (qtype, t) in &self.by_type {
            line(format!("type {}", type_name(*qtype)), t);
        }
        for (kind, t) in &self.by_kind {
            line(format!("{kind:?}"), t);
        }
        let rcodes: Vec<String> = self
            .user_rcodes
            .iter()
            .map(|(r, n)| format!("{r} {n}"))
            .collect();
        println!("  userspace answers: {}", rcodes.join(", "));
    }
}

/// The size of `answer` as the kernel would encode it: owners as a pointer
/// to the question, names in RDATA (the SOA's) uncompressed, an OPT with
/// at most a COOKIE option.
fn kernel_encoding_len(answer: &Message) -> usize {
    let question: usize = answer
        .queries()
        .iter()
        .map(|q| q.name().len() + 1 + 4)
        .sum();
    let rdata = |r: &Record| match r.data() {
        RData::SOA(soa) => soa.mname().len() + 1 + soa.rname().len() + 1 + 20,
        RData::A(_) => 4,
        RData::AAAA(_) => 16,
        other => panic!("the kernel never sends {other:?}"),
    };
    let records: usize = answer
        .answers()
        .iter()
        .chain(answer.name_servers())
        .map(|r| 2 + 10 + rdata(r))
        .sum();
    // The OPT, and in it the COOKIE option (code, length, 8 + 16 bytes).
    let opt = answer.extensions().as_ref().map_or(0, |edns| {
        11 + if edns.options().as_ref().is_empty() {
            0
        } else {
            28
        }
    });
    12 + question + records + opt
}

/// Is `g` a query the kernel is built to answer, if its answer fits?
fn kernel_should_answer(g: &Generated, universe: &Universe) -> bool {
    let q = &g.query;
    universe.is_hot(&q.qname)
        && q.qclass == 1
        && [TYPE_A, TYPE_AAAA, TYPE_HTTPS].contains(&q.qtype)
        && q.opt
            .as_ref()
            .is_none_or(|o| o.version == 0 && !carries_userspace_option(&o.options))
}

/// Does an OPT's option list hold EDNS Client Subnet (code 8), a COOKIE
/// option of a malformed length, or two COOKIE options? The kernel leaves
/// those queries to userspace, which validates Client Subnet and answers
/// a malformed cookie with FORMERR.
fn carries_userspace_option(mut options: &[u8]) -> bool {
    let mut cookies = 0;
    while options.len() >= 4 {
        let len = usize::from(u16::from_be_bytes([options[2], options[3]]));
        if options[..2] == [0, 8] {
            return true;
        }
        if options[..2] == [0, 10] {
            cookies += 1;
            if len != 8 && !(16..=40).contains(&len) {
                return true;
            }
        }
        options = options.get(4 + len..).unwrap_or(&[]);
    }
    cookies > 1
}

/// The server secret both sides share, and the Unix second both read.
const COOKIE_SECRET: [u8; 16] = *b"differential key";
const COOKIE_NOW: u32 = 1_800_000_000;

/// The query's source address, as the kernel and the server see it.
fn client_of(query: &Query) -> IpAddr {
    match query.src_ip {
        Some(ip) => ip,
        None if query.ipv6 => IpAddr::V6(CLIENT_IP6),
        None => IpAddr::V4(CLIENT_IP),
    }
}

/// Replaces the server cookie of a 24-byte COOKIE option in `query` with
/// one our secret made for its client a minute ago.
fn make_server_cookie_valid(query: &mut Query) {
    let client = client_of(query);
    let Some(opt) = query.opt.as_mut() else {
        return;
    };
    let mut at = 0;
    while at + 4 <= opt.options.len() {
        let len = usize::from(u16::from_be_bytes([
            opt.options[at + 2],
            opt.options[at + 3],
        ]));
        if opt.options[at..at + 2] == [0, 10] && len == 24 && at + 4 + len <= opt.options.len() {
            let value = at + 4;
            let mut client_cookie = [0u8; 8];
            client_cookie.copy_from_slice(&opt.options[value..value + 8]);
            let server = server_cookie(&COOKIE_SECRET, &client_cookie, client, COOKIE_NOW - 60);
            opt.options[value + 8..value + 24].copy_from_slice(&server);
            return;
        }
        at += 4 + len;
    }
}

#[test]
fn kernel_and_userspace_answer_every_query_alike() {
    let seed = seed_from_env("FAILOVER_DIFF_SEED", DEFAULT_SEED);
    let queries = count_from_env("FAILOVER_DIFF_QUERIES", DEFAULT_QUERIES);
    println!(
        "differential: seed {seed:#x} (set FAILOVER_DIFF_SEED to repeat or vary), {queries} queries"
    );
    let config = test_config();
    let mut kernel = XdpProgram::load().expect("load the XDP program (are we root?)");
    feed(&config, &mut kernel.dataplane).expect("fill the kernel map");
    let mut table = AnswerTable::new();
    feed(&config, &mut table).expect("fill the userspace table");
    let cookies = Arc::new(Cookies::with_secret(COOKIE_SECRET));
    kernel
        .dataplane
        .set_cookies(Some(&cookies))
        .expect("write the cookie secret");
    let userspace = Userspace::new(table).with_cookies(Some(cookies));
    let universe = Universe::of(&config);
    let mut generator = QueryGen::new(universe.clone(), seed);

    let mut stats = Stats::default();
    let mut differences: Vec<String> = Vec::new();
    let start = Instant::now();
    // Kernel answers to queries with a COOKIE option: client cookie alone,
    // with a valid server cookie of ours, with another.
    let mut cookie_answers = [0u64; 3];
    for _ in 0..queries {
        let mut g = generator.generate();
        // Every other 24-byte cookie becomes a valid one of ours.
        if g.index.is_multiple_of(2) {
            make_server_cookie_valid(&mut g.query);
        }
        let frame = g.query.frame();
        let message = g.message();
        // One clock second on both sides, beaten anew so that the kernel's
        // stays within it.
        kernel
            .dataplane
            .beat_with_unix_time(u64::from(COOKIE_NOW) * 1_000_000_000 + 500_000_000)
            .expect("heartbeat");

        let t0 = Instant::now();
        let run = kernel.run(&frame).expect("BPF_PROG_TEST_RUN");
        let t1 = Instant::now();
        let user = userspace
            .answer_at(&message, Transport::Udp, client_of(&g.query), COOKIE_NOW)
            .map(|(bytes, _)| bytes);
        let t2 = Instant::now();
        let choices = weighted_choices(userspace.answers(), &message);
        let outcome = judge(
            &g,
            &frame,
            &run.frame,
            run.verdict,
            user.as_deref(),
            &universe,
            choices.as_deref(),
        );
        if let (XDP_TX, Some(opt)) = (run.verdict, &g.query.opt)
            && let Some(cookie) = query_cookie(&opt.options)
        {
            let valid = cookie.len() == 24
                && server_cookie(
                    &COOKIE_SECRET,
                    cookie[..8].try_into().expect("8 bytes"),
                    client_of(&g.query),
                    COOKIE_NOW - 60,
                )[..]
                    == cookie[8..];
            cookie_answers[if cookie.len() == 8 {
                0
            } else if valid {
                1
            } else {
                2
            }] += 1;
        }
        if let (Some(choices), XDP_TX, Ok(())) = (&choices, run.verdict, &outcome) {
            stats.count_pick(&g, choices, &run.frame[Layout::of(&g.query).dns()..]);
        }
        stats.check_time += t2.elapsed();
        stats.kernel_time += t1 - t0;
        stats.user_time += t2 - t1;

        stats.count(&g, run.verdict == XDP_TX);
        let rcode = match user.as_deref().map(Message::from_vec) {
            Some(Ok(m)) if m.truncated() => format!("{:?}+TC", m.response_code()),
            Some(Ok(m)) => format!("{:?}", m.response_code()),
            Some(Err(_)) => "unparseable".into(),
            None => "none".into(),
        };
        *stats.user_rcodes.entry(rcode).or_default() += 1;

        if let Err(e) = outcome {
            differences.push(format!(
                "{g}\n    {e}\n  query:     {}\n  kernel:    verdict {} {}\n  userspace: {}",
                hex(&message),
                run.verdict,
                hex(&run.frame),
                user.as_deref().map_or_else(|| "none".to_string(), hex),
            ));
            if differences.len() >= MAX_DIFFERENCES {
                break;
            }
        }
    }
    stats.print(seed, start.elapsed());
    println!(
        "  kernel answers with a COOKIE option: {} client cookie alone, {} valid server cookie, \
         {} foreign server cookie",
        cookie_answers[0], cookie_answers[1], cookie_answers[2]
    );
    assert!(
        differences.is_empty(),
        "{} difference(s) between kernel and userspace (seed {seed:#x}; first {MAX_DIFFERENCES} \
         at most):\n{}",
        differences.len(),
        differences.join("\n")
    );
    // The kernel's weighted picks reach every choice (each has a share of
    // at least 1/4 here, so 200 answers miss one with probability < 1e-24).
    for ((name, qtype), picks) in &stats.weighted {
        let asked: u64 = picks.values().sum();
        println!(
            "  weighted {name} {}: kernel picks {picks:?}",
            type_name(*qtype)
        );
        if asked >= 200 {
            assert!(
                picks.values().all(|&n| n > 0),
                "{name}: the kernel never picked some weighted choice in {asked} answers: {picks:?}"
            );
        }
    }
    // The kernel answered every kind of cookie (when the run is long
    // enough to have sent each a few times).
    if queries >= 10_000 {
        assert!(
            cookie_answers.iter().all(|&n| n >= 20),
            "kernel answers with cookies: {cookie_answers:?}"
        );
    }
    // Both halves of the comparison must have been exercised.
    let a = &stats.all;
    assert!(
        a.answered * 5 >= a.queries,
        "the kernel answered only {} of {} queries",
        a.answered,
        a.queries
    );
    assert!(
        a.answered * 5 <= a.queries * 4,
        "the kernel passed only {} of {} queries",
        a.queries - a.answered,
        a.queries
    );
}

/// The verdict on one query.
fn judge(
    g: &Generated,
    frame: &[u8],
    out: &[u8],
    verdict: u32,
    user: Option<&[u8]>,
    universe: &Universe,
    weighted: Option<&[IpAddr]>,
) -> Result<(), String> {
    match verdict {
        XDP_TX => {
            let dns =
                check_reply_frame(frame, out).map_err(|e| format!("kernel answer frame: {e}"))?;
            let kernel_dns = &out[dns];
            // NOERROR answers get every record-level check too (SERVFAIL
            // has no AA and no records, which check_answer rejects).
            if Message::from_vec(kernel_dns)
                .is_ok_and(|m| m.response_code() == ResponseCode::NoError)
            {
                check_answer(&g.query, out).map_err(|e| format!("kernel answer frame: {e:#}"))?;
            }
            let user = user.ok_or("the kernel answered; userspace would not answer at all")?;
            semantic_diff(kernel_dns, user, weighted)
        }
        XDP_PASS => {
            if out != frame {
                return Err("XDP_PASS but the frame was modified".into());
            }
            let user = user.ok_or("the kernel passed it and userspace does not answer")?;
            let m = Message::from_vec(user)
                .map_err(|e| format!("userspace answer does not parse: {e}"))?;
            if m.message_type() != MessageType::Response || m.id() != g.query.id {
                return Err("userspace answer is not a response with the query's id".into());
            }
            if kernel_should_answer(g, universe) && !m.truncated() {
                // The kernel writes names in records uncompressed (a pointer
                // to the question for owners): userspace's answer may fit
                // where the kernel's would not.
                let size = kernel_encoding_len(&m);
                let limit = g.query.opt.as_ref().map_or(512, |o| o.udp_size.max(512));
                if size <= usize::from(limit) {
                    return Err(format!(
                        "the kernel passed a query it answers by design; userspace answered \
                         {:?} in {} bytes ({size} as the kernel encodes it, limit {limit})",
                        m.response_code(),
                        user.len()
                    ));
                }
            }
            Ok(())
        }
        other => Err(format!("verdict {other}")),
    }
}

/// Rate-limited answers, slipped: the kernel's TC=1 answer is byte for
/// byte what the userspace server sends for the same query when it slips
/// (its answer, truncated: `wire::truncated`).
#[test]
fn slipped_answers_are_byte_for_byte_the_userspace_ones() {
    let seed = seed_from_env("FAILOVER_DIFF_SEED", DEFAULT_SEED);
    let queries = count_from_env("FAILOVER_DIFF_QUERIES", DEFAULT_QUERIES) / 10;
    let config = test_config();
    // One CPU, as the rest of the suite's BPF runs.
    failover_tests::xdp::pin_to_cpu(0).unwrap();
    let mut kernel = XdpProgram::load().expect("load the XDP program (are we root?)");
    feed(&config, &mut kernel.dataplane).expect("fill the kernel map");
    // One answer a second per source prefix, every limited one slipped.
    let settings = failover_agent::config::RateLimitSettings {
        responses_per_second: 1,
        ipv4_prefix: 24,
        ipv6_prefix: 56,
        slip: 1,
        window: Duration::from_secs(1),
        exempt: vec![],
        log_only: false,
    };
    kernel.dataplane.set_rate_limit(Some(&settings)).unwrap();
    let mut table = AnswerTable::new();
    feed(&config, &mut table).expect("fill the userspace table");
    let userspace = Userspace::new(table);
    let mut generator = QueryGen::new(Universe::of(&config), seed);
    let (mut slipped, mut answered) = (0u64, 0u64);
    let mut differences = Vec::new();
    for _ in 0..queries {
        let g = generator.generate();
        let frame = g.query.frame();
        let run = kernel.run(&frame).expect("BPF_PROG_TEST_RUN");
        if run.verdict != XDP_TX {
            continue;
        }
        let dns = match check_reply_frame(&frame, &run.frame) {
            Ok(range) => run.frame[range].to_vec(),
            Err(e) => {
                differences.push(format!("{g}: kernel answer frame: {e}"));
                continue;
            }
        };
        if dns[2] & 0x02 == 0 {
            // Within the rate: the first answer of each second.
            answered += 1;
            continue;
        }
        slipped += 1;
        let user = userspace
            .answer(&g.message(), Transport::Udp)
            .and_then(|answer| failover_agent::serve::wire::truncated(&answer));
        if user.as_deref() != Some(&dns[..]) {
            differences.push(format!(
                "{g}\n  kernel:    {}\n  userspace: {}",
                hex(&dns),
                user.as_deref().map_or_else(|| "none".to_string(), hex)
            ));
            if differences.len() >= MAX_DIFFERENCES {
                break;
            }
        }
    }
    println!("slipped: {slipped} kernel answers slipped, {answered} within the rate");
    assert!(
        differences.is_empty(),
        "{} slipped answer(s) differ (seed {seed:#x}):\n{}",
        differences.len(),
        differences.join("\n")
    );
    assert!(
        slipped > queries / 10 && answered >= 1,
        "too few to compare: {slipped} slipped, {answered} answered of {queries}"
    );
}
