//! Response rate limiting through the real binary: the agent answers from
//! XDP on the server veth with `[rate_limit]`; from the client namespace a
//! flood at ten times the limit, spread over every CPU and many source
//! ports, gets the limit (within 10 %) in full answers, every other limited
//! answer as a TC=1 slip, while `dig +tcp` is still answered; the same flood
//! from an exempt prefix is answered in full. The same flood sent from one
//! CPU (one flow on one queue, as RSS may put a resolver) gets the whole
//! limit too: the kernel's state per prefix is shared by the CPUs. dnsperf
//! at ten times the limit gets the limit, its lost queries the kernel's
//! drops. Needs root (`cargo xtask test`).

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    process::Command,
    time::Duration,
};

use failover_tests::{
    AgentConfig, CheckSpec, EndpointSpec, Netns, RecordSpec, ZoneSpec,
    dig::dig,
    flood::{Flood, Outcome},
    is_root,
    netns::{CLIENT_ADDR, CLIENT_VETH, DNS_SERVER_ADDR},
};

const AGENT: &str = env!("CARGO_BIN_EXE_failover-agent-under-test");
const NAME: &str = "www.example.test.";
const ENDPOINT: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
/// Answers a second per source prefix.
const RATE: u32 = 200;
/// Ten times the limit.
const FLOOD_RATE: u32 = 10 * RATE;
const FLOOD_FOR: Duration = Duration::from_secs(4);
/// The first second spends the saved-up window (one second's answers);
/// the answered rate is measured after it.
const STEADY_FROM: Duration = Duration::from_secs(1);
/// Another /24 on the client veth, exempt from the limit.
const EXEMPT: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 2);

fn ip(args: &[&str]) {
    let status = Command::new("ip").args(args).status().expect("running ip");
    assert!(status.success(), "ip {args:?}: {status}");
}

/// The namespaces, the exempt address routed back, the agent limiting at
/// [`RATE`] with `slip` 2, and `www` answered from the kernel.
fn start() -> Netns {
    assert!(is_root(), "needs root (namespaces, veth, XDP)");
    let mut netns = Netns::new(AGENT).expect("creating the namespaces");
    ip(&[
        "-n",
        &netns.client,
        "addr",
        "add",
        &format!("{EXEMPT}/32"),
        "dev",
        CLIENT_VETH,
    ]);
    ip(&[
        "-n",
        &netns.server,
        "route",
        "add",
        &format!("{EXEMPT}/32"),
        "via",
        &CLIENT_ADDR.to_string(),
    ]);
    netns.start_endpoint((ENDPOINT, 80)).unwrap();
    let config = AgentConfig::new()
        .zone(
            ZoneSpec::new("example.test.")
                .ttl(30)
                .nameserver("ns1.example.test.", &[IpAddr::V4(DNS_SERVER_ADDR)]),
        )
        .record(
            RecordSpec::new(NAME, "A", "all-healthy", "web").endpoint(EndpointSpec::new(ENDPOINT)),
        )
        .check(
            "web",
            CheckSpec::tcp(80).timing(Duration::from_millis(100), Duration::from_millis(50), 1, 1),
        )
        .section("rate_limit", "responses_per_second", RATE)
        .section("rate_limit", "slip", 2)
        .section("rate_limit", "window", "1s")
        .section("rate_limit", "exempt", vec!["203.0.113.0/24"]);
    let path = netns.write_config("agent.toml", &config.to_toml()).unwrap();
    netns
        .start_agent(&path, &["--stats-interval", "1s"])
        .unwrap();
    netns
        .wait_for_server_tcp(
            SocketAddr::from((DNS_SERVER_ADDR, 53)),
            Duration::from_secs(5),
        )
        .unwrap();
    // The answer set is written once the check has passed.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while dig(&netns, NAME, &["+tcp"]).addrs() != [ENDPOINT] {
        assert!(
            std::time::Instant::now() < deadline,
            "www never answered; agent log:\n{}",
            netns.agent_log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    netns
}

fn flood(from: Ipv4Addr) -> Flood {
    Flood {
        source: IpAddr::V4(from),
        server: SocketAddr::from((DNS_SERVER_ADDR, 53)),
        name: NAME.to_string(),
        rate: FLOOD_RATE,
        duration: FLOOD_FOR,
        cookie: None,
        cpu: None,
    }
}

fn summary(what: &str, o: &Outcome) -> String {
    format!(
        "{what}: sent {}, replies {}, answered {} ({} after {STEADY_FROM:?}), truncated {}",
        o.sent,
        o.replies.len(),
        o.answered(),
        o.answered_between(STEADY_FROM, FLOOD_FOR),
        o.truncated()
    )
}

#[test]
fn a_flood_gets_the_rate_slips_are_truncated_and_tcp_and_exempt_are_not_limited() {
    let mut netns = start();
    // Quiet again: what the probes above took is refilled.
    std::thread::sleep(Duration::from_secs(2));

    let client = netns.client.clone();
    let flooder = std::thread::spawn(move || flood(CLIENT_ADDR).run(&client));
    // In the middle of the flood, over TCP: answered in full.
    std::thread::sleep(FLOOD_FOR / 2);
    let over_tcp = dig(&netns, NAME, &["+tcp"]);
    let limited = flooder.join().unwrap().expect("flooding");
    eprintln!("{}", summary("limited source", &limited));
    eprintln!("dig +tcp during the flood: {over_tcp:?}");

    let steady = limited.answered_between(STEADY_FROM, FLOOD_FOR) as f64
        / (FLOOD_FOR - STEADY_FROM).as_secs_f64();
    let log = netns.agent_log();
    assert!(
        limited.sent >= u64::from(FLOOD_RATE) * FLOOD_FOR.as_secs() * 95 / 100,
        "the flood ran at its rate: {}",
        summary("limited", &limited)
    );
    assert!(
        (steady - f64::from(RATE)).abs() <= f64::from(RATE) * 0.10,
        "answered {steady:.0}/s under the flood, the limit is {RATE}/s: {}\nagent log:\n{log}",
        summary("limited", &limited)
    );
    // Every reply that is not the answer is a slip: TC=1, NOERROR, no
    // records; and slip 2 makes every second limited answer one.
    for r in &limited.replies {
        assert!(
            (!r.truncated && r.answers == 1) || (r.truncated && r.answers == 0),
            "neither an answer nor a slip: {r:?}"
        );
        assert_eq!(r.rcode, 0, "{r:?}");
    }
    let over = limited.sent as f64 - limited.answered() as f64;
    let slipped = limited.truncated() as f64;
    assert!(
        (slipped - over / 2.0).abs() <= over / 2.0 * 0.10,
        "{slipped} slips for {over} limited queries (slip 2): {}",
        summary("limited", &limited)
    );
    assert_eq!(over_tcp.addrs(), [ENDPOINT], "dig +tcp during the flood");
    assert_eq!(over_tcp.status, "NOERROR");

    // The same flood from an exempt prefix: every query answered.
    let client = netns.client.clone();
    let exempt = flood(EXEMPT).run(&client).expect("flooding");
    eprintln!("{}", summary("exempt source", &exempt));
    assert_eq!(exempt.truncated(), 0, "{}", summary("exempt", &exempt));
    assert!(
        exempt.answered() as u64 * 100 >= exempt.sent * 99,
        "{}",
        summary("exempt", &exempt)
    );

    netns.stop_agent().unwrap();
    let counters = netns.kernel_counters();
    eprintln!("kernel counters: {counters:?}");
    // The kernel did the limiting (the userspace server saw none of it).
    assert!(
        counters["rate_limit_slipped"] as f64 >= slipped * 0.9,
        "{counters:?}"
    );
    assert!(counters["rate_limit_dropped"] > 0, "{counters:?}");
}

/// What dnsperf printed: queries sent, completed (any response, a TC=1
/// slip included) and lost.
struct Dnsperf {
    sent: u64,
    completed: u64,
    lost: u64,
}

fn dnsperf(netns: &Netns, qps: u32, seconds: u64) -> Dnsperf {
    let input = netns.workdir().join("dnsperf-queries");
    std::fs::write(&input, format!("{NAME} A\n")).expect("writing dnsperf's input");
    let out = Command::new("ip")
        .args(["netns", "exec", &netns.client, "dnsperf"])
        .args(["-s", &DNS_SERVER_ADDR.to_string(), "-d"])
        .arg(&input)
        .args(["-l", &seconds.to_string(), "-Q", &qps.to_string()])
        // Many clients (source ports) and a 1 s timeout: a dropped query
        // is counted lost soon after the run.
        .args(["-c", "20", "-t", "1", "-q", "1000"])
        .output()
        .expect("running dnsperf (installed by cargo xtask test)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "dnsperf: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let field = |label: &str| -> u64 {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(label))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no {label:?} in dnsperf's output:\n{text}"))
    };
    Dnsperf {
        sent: field("Queries sent:"),
        completed: field("Queries completed:"),
        lost: field("Queries lost:"),
    }
}

/// dnsperf, a real load generator, from one client address at ten times
/// the limit: the kernel answers the limit (plus the saved-up window),
/// slips every other limited answer and drops the rest; dnsperf sees the
/// slips as responses and the drops as lost.
#[test]
fn dnsperf_at_ten_times_the_limit_gets_the_limit() {
    let mut netns = start();
    std::thread::sleep(Duration::from_millis(2100));
    // The kernel's counters as the agent last logged them (every second).
    let before = netns.kernel_counters();
    let seconds = FLOOD_FOR.as_secs();
    let run = dnsperf(&netns, FLOOD_RATE, seconds);
    // Two stats lines later every response of the run is counted.
    std::thread::sleep(Duration::from_millis(2100));
    let after = netns.kernel_counters();
    netns.stop_agent().unwrap();
    let delta = |k: &str| after[k] - before[k];
    let (answered, slipped, dropped) = (
        delta("answered"),
        delta("rate_limit_slipped"),
        delta("rate_limit_dropped"),
    );
    let report = format!(
        "dnsperf: sent {}, completed {}, lost {}; kernel: answered {answered}, slipped \
         {slipped}, dropped {dropped}",
        run.sent, run.completed, run.lost
    );
    eprintln!("{report}");
    assert!(
        run.sent >= u64::from(FLOOD_RATE) * seconds * 9 / 10,
        "dnsperf did not send at its rate: {report}"
    );
    // The rate for the run, and the window (1 s) saved up before it.
    let expected = f64::from(RATE) * (seconds + 1) as f64;
    assert!(
        (answered as f64 - expected).abs() <= expected * 0.10,
        "answered {answered}, expected about {expected}: {report}"
    );
    // slip 2: half the limited answers go out as TC=1, half are dropped.
    assert!(
        slipped.abs_diff(dropped) <= (slipped + dropped) / 10 + 2,
        "{report}"
    );
    // What dnsperf saw is what the kernel sent.
    assert!(
        run.completed.abs_diff(answered + slipped) <= run.sent / 100 + 5,
        "{report}"
    );
    assert!(run.lost.abs_diff(dropped) <= run.sent / 100 + 5, "{report}");
}

/// The kernel keeps one rate state per prefix for all CPUs: a flood that
/// reaches the program on one CPU only (on a veth, the sender's) gets the
/// limit, not the limit divided among the CPUs; and so does one that
/// reaches it on every CPU.
#[test]
fn a_flood_from_one_cpu_gets_the_whole_rate() {
    let mut netns = start();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut failures = Vec::new();
    for cpu in 0..cpus.min(2) {
        std::thread::sleep(Duration::from_secs(2));
        let one = Flood {
            cpu: Some(cpu),
            ..flood(CLIENT_ADDR)
        }
        .run(&netns.client)
        .expect("flooding");
        let steady = one.answered_between(STEADY_FROM, FLOOD_FOR) as f64
            / (FLOOD_FOR - STEADY_FROM).as_secs_f64();
        let what = format!("flood from CPU {cpu} of {cpus}");
        eprintln!("{} -> {steady:.0}/s answered", summary(&what, &one));
        if one.sent < u64::from(FLOOD_RATE) * FLOOD_FOR.as_secs() * 95 / 100 {
            failures.push(format!(
                "{what} did not run at its rate: {}",
                summary(&what, &one)
            ));
        }
        if (steady - f64::from(RATE)).abs() > f64::from(RATE) * 0.10 {
            failures.push(format!(
                "{what}: {steady:.0}/s answered, the limit is {RATE}/s: {}",
                summary(&what, &one)
            ));
        }
    }
    netns.stop_agent().unwrap();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `dig` (cookies on, as by default) in the client namespace: its stdout.
fn dig_cookie(netns: &Netns, cookie: &str) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", &netns.client, "dig"])
        .arg(format!("@{DNS_SERVER_ADDR}"))
        .args([NAME, "A", "+norecurse", "+tries=1", "+time=2", "+ignore"])
        .arg(cookie)
        .output()
        .expect("running dig");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The hex of `; COOKIE: <hex> (good)` in dig's output.
fn good_cookie(out: &str) -> Option<String> {
    let line = out.lines().find(|l| l.starts_with("; COOKIE: "))?;
    let rest = line.strip_prefix("; COOKIE: ")?;
    let (hex, verdict) = rest.split_once(' ')?;
    (verdict == "(good)").then(|| hex.to_string())
}

/// dig gets a server cookie back (from the kernel, which computes it),
/// and with it is not limited while a flood of queries with client
/// cookies only, from its own address, is.
#[test]
fn a_client_with_a_valid_server_cookie_is_not_limited_under_a_flood() {
    let mut netns = start();
    let first = dig_cookie(&netns, "+cookie");
    let cookie = good_cookie(&first).unwrap_or_else(|| panic!("no good server cookie:\n{first}"));
    assert_eq!(
        cookie.len(),
        48,
        "8 bytes client, 16 bytes server cookie: {cookie}"
    );
    assert_eq!(
        &cookie[16..24],
        "01000000",
        "version 1, reserved zero: {cookie}"
    );
    assert!(first.contains("192.0.2.10"), "{first}");

    std::thread::sleep(Duration::from_secs(2));
    let client = netns.client.clone();
    let flooder = std::thread::spawn(move || {
        Flood {
            cookie: Some(vec![0x5a; 8]),
            ..flood(CLIENT_ADDR)
        }
        .run(&client)
    });
    std::thread::sleep(Duration::from_millis(1500));
    // Over UDP, TC ignored: every one a full answer with a good cookie.
    let digs: Vec<String> = (0..5)
        .map(|_| dig_cookie(&netns, &format!("+cookie={cookie}")))
        .collect();
    // The control: the same dig with its client cookie alone is limited
    // (a drop times out, a slip is TC=1) at least once.
    let without: Vec<String> = (0..5)
        .map(|_| dig_cookie(&netns, &format!("+cookie={}", &cookie[..16])))
        .collect();
    let flooded = flooder.join().unwrap().expect("flooding");
    assert!(
        without
            .iter()
            .any(|out| !out.contains("192.0.2.10") || out.contains(" tc")),
        "a client cookie alone was never limited during the flood: {without:?}"
    );
    eprintln!("{}", summary("client cookies only", &flooded));
    let log = netns.agent_log();
    for out in &digs {
        assert!(
            out.contains("status: NOERROR") && out.contains("192.0.2.10"),
            "dig with a valid server cookie during the flood:\n{out}\nagent log:\n{log}"
        );
        assert!(!out.contains(" tc"), "truncated:\n{out}");
        assert!(good_cookie(out).is_some(), "no fresh cookie:\n{out}");
    }
    // The flood itself was limited in the kernel, each reply with a cookie.
    let steady = flooded.answered_between(STEADY_FROM, FLOOD_FOR) as f64
        / (FLOOD_FOR - STEADY_FROM).as_secs_f64();
    assert!(
        steady <= f64::from(RATE) * 1.10,
        "{steady:.0}/s answered to the flood: {}",
        summary("cookies", &flooded)
    );
    assert!(flooded.truncated() > 0, "{}", summary("cookies", &flooded));
    for r in &flooded.replies {
        let c = r.cookie.as_ref().expect("every reply carries a cookie");
        assert_eq!((c.len(), &c[..8]), (24, &[0x5a; 8][..]), "{r:?}");
    }
    netns.stop_agent().unwrap();
    // Every query with a cookie stayed in the kernel: answered, slipped or
    // dropped there, none passed up.
    let counters = netns.kernel_counters();
    assert_eq!(counters["pass_cookie"], 0, "{counters:?}");
    assert!(
        counters["rate_limited"] > 0 && counters["answered"] >= 5,
        "{counters:?}"
    );
}
