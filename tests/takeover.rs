//! Takeover of a running agent: a new agent started on the same interface
//! gets the running one's sockets and lock over the control socket, adopts
//! the data plane and serves; the old one finishes and exits. Under a mix
//! of queries from the client namespace (hot A over UDP from the kernel;
//! SOA, NS, MX-NODATA over UDP and A over TCP from userspace): nothing lost,
//! nothing wrong. A takeover that fails half-way leaves the old agent
//! serving and writing; an upgrade to a changed map layout loses nothing
//! either. Needs root.

use std::{
    io::{BufRead as _, BufReader, Write as _},
    net::{Ipv4Addr, SocketAddrV4},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use failover_tests::{
    AgentConfig, CheckSpec, DNS_SERVER_ADDR, DnsClient, Netns, is_root,
    load::{Checked, MixedStream, tally_checked, wrong_examples},
    netns::{ENDPOINT_ADDRS, SERVER_VETH},
    poll_until,
};

const AGENT: &str = env!("CARGO_BIN_EXE_failover-agent-under-test");
const NEXT_LAYOUT: &str = env!("CARGO_BIN_EXE_failover-agent-next-layout");
const NAME: &str = "www.example.test.";
const APEX: &str = "example.test.";
const PORT: u16 = 80;
const PRIMARY: Ipv4Addr = ENDPOINT_ADDRS[0];
const SECONDARY: Ipv4Addr = ENDPOINT_ADDRS[1];
const INTERVAL: Duration = Duration::from_millis(300);
const TIMEOUT: Duration = Duration::from_millis(200);
const FALL: u32 = 3;
/// A takeover, the old agent's TCP connections finished, well within this.
const TAKEOVER_LIMIT: Duration = Duration::from_secs(20);

struct Fixture {
    netns: Netns,
    config: PathBuf,
    /// `--control-socket` and `--pid-file` of every agent: the fixture's own.
    flags: Vec<String>,
}

impl Fixture {
    /// The shared flags, owned (the fixture is borrowed mutably with them).
    fn flags(&self) -> Vec<String> {
        self.flags.clone()
    }

    fn control_socket(&self) -> PathBuf {
        self.netns.workdir().join("agent.sock")
    }
}

/// Namespaces, both endpoints up, the agent answering with the primary.
fn start() -> Fixture {
    assert!(is_root(), "needs root (namespaces, veth, XDP, bpffs)");
    let mut netns = Netns::new(AGENT).expect("creating the namespaces");
    netns
        .start_endpoint(SocketAddrV4::new(PRIMARY, PORT))
        .expect("primary");
    netns
        .start_endpoint(SocketAddrV4::new(SECONDARY, PORT))
        .expect("secondary");
    let text = AgentConfig::failover(
        30,
        &[(PRIMARY, 1), (SECONDARY, 2)],
        CheckSpec::tcp(PORT).timing(INTERVAL, TIMEOUT, 2, FALL),
    )
    .to_toml();
    let config = netns.write_config("agent.toml", &text).expect("config");
    let flags = vec![
        "--control-socket".to_string(),
        netns.workdir().join("agent.sock").display().to_string(),
        "--pid-file".to_string(),
        netns.workdir().join("agent.pid").display().to_string(),
    ];
    let mut fixture = Fixture {
        netns,
        config,
        flags,
    };
    let flags = fixture.flags.clone();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    fixture
        .netns
        .start_agent(&fixture.config, &flags)
        .expect("starting the agent");
    answers(&fixture.netns, PRIMARY);
    fixture
}

/// Waits until the hot name is answered `want` (bounded), or fails.
fn answers(netns: &Netns, want: Ipv4Addr) -> Duration {
    let mut client = netns.dns_client().expect("DNS client");
    let since = Instant::now();
    let limit = INTERVAL * FALL + Duration::from_secs(3);
    poll_until(limit, Duration::from_millis(50), || {
        Ok(client
            .query_a(NAME, Duration::from_millis(200))?
            .filter(|a| a.addrs == [want])
            .map(|_| since.elapsed()))
    })
    .expect("querying")
    .unwrap_or_else(|| {
        panic!(
            "{NAME} not answered {want} within {limit:?}; agent log:\n{}",
            netns.agent_log()
        )
    })
}

fn mixed_load(netns: &Netns) -> MixedStream {
    MixedStream::start(
        &netns.client,
        SocketAddrV4::new(DNS_SERVER_ADDR, 53),
        NAME,
        APEX,
        vec![PRIMARY],
        Duration::from_secs(40),
    )
    .expect("starting the query streams")
}

/// Asserts that every stream sent enough in [from, to) and nothing was
/// lost or wrong; prints the tallies.
fn assert_nothing_lost(what: &str, samples: &[Checked], from: Instant, to: Instant) {
    let tallies = tally_checked(samples, from, to);
    for (stream, t) in &tallies {
        eprintln!(
            "{what}: {stream}: {} sent, {} answered, {} lost, {} wrong",
            t.sent, t.answered, t.lost, t.wrong
        );
    }
    assert_eq!(tallies.len(), 3, "every stream sent queries: {tallies:?}");
    for (stream, t) in &tallies {
        assert!(t.sent >= 20, "{what}: {stream}: only {} queries", t.sent);
        assert_eq!(t.lost, 0, "{what}: {stream}: queries lost");
        assert_eq!(
            t.wrong,
            0,
            "{what}: {stream}: wrong answers: {:?}",
            wrong_examples(samples, from, to)
        );
    }
}

/// Takeover under load, then the new agent is the writer: a failover of
/// the primary shows within interval x fall.
#[test]
fn a_takeover_under_load_loses_nothing_and_the_new_agent_writes() {
    let mut f = start();
    let old_pid = f.netns.agent_pid().expect("the agent's pid");
    let load = mixed_load(&f.netns);
    std::thread::sleep(Duration::from_millis(700));
    let from = Instant::now();
    let flags = f.flags();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let status = f
        .netns
        .take_over_agent(Path::new(AGENT), &f.config, &flags, TAKEOVER_LIMIT)
        .expect("taking over");
    let took = from.elapsed();
    // Past the new agent's first round of checks, which rewrites the answers.
    std::thread::sleep(INTERVAL * 4);
    let to = Instant::now();
    let samples = load.stop();
    eprintln!(
        "takeover done (old agent exited) in {} ms",
        took.as_millis()
    );
    assert_eq!(status.code(), Some(0), "the old agent's exit");
    assert_nothing_lost("takeover", &samples, from, to);

    let old_log = f.netns.agent_log_of(f.netns.agent_runs() - 1);
    let new_log = f.netns.agent_log();
    assert!(
        old_log.contains("handed over to the agent with pid"),
        "old agent's log:\n{old_log}"
    );
    assert!(
        old_log.contains("left attached and pinned"),
        "old agent's log:\n{old_log}"
    );
    assert!(
        new_log.contains(&format!("taking over from the agent with pid {old_pid}")),
        "new agent's log:\n{new_log}"
    );
    assert!(
        new_log.contains("adopted the data plane"),
        "new agent's log:\n{new_log}"
    );
    // The control socket and the pid file are the new agent's.
    let pid = std::fs::read_to_string(f.netns.workdir().join("agent.pid")).unwrap();
    assert_eq!(
        pid.trim().parse::<u32>().ok(),
        f.netns.agent_pid(),
        "pid file"
    );
    let status = control_status(&f.control_socket());
    assert!(status.contains("\"ok\":true"), "status: {status}");

    f.netns
        .kill_endpoint(SocketAddrV4::new(PRIMARY, PORT))
        .expect("killing the primary");
    let took = answers(&f.netns, SECONDARY);
    eprintln!("failover after the takeover: {} ms", took.as_millis());
    f.netns.stop_agent().expect("stopping the agent");
}

/// `{"cmd":"status"}` on the control socket: the reply line.
fn control_status(path: &Path) -> String {
    let stream = std::os::unix::net::UnixStream::connect(path).expect("control socket");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    (&stream).write_all(b"{\"cmd\":\"status\"}\n").unwrap();
    let mut line = String::new();
    BufReader::new(&stream).read_line(&mut line).unwrap();
    line
}

/// A takeover that fails half-way leaves the old agent serving and
/// writing: a successor that errors after the offer (its listen addresses
/// differ), and one that goes away without a word after it.
#[test]
fn a_failed_takeover_leaves_the_old_agent_serving_and_writing() {
    let mut f = start();
    let old_run = f.netns.agent_runs();
    let load = mixed_load(&f.netns);
    std::thread::sleep(Duration::from_millis(500));
    let from = Instant::now();

    // A successor whose sockets would differ: it stops after the offer.
    let flags = f.flags();
    let mut flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    flags.extend(["--listen", "198.51.100.1"]);
    let out = f
        .netns
        .run_agent_to_exit(&f.config, &flags, Duration::from_secs(20))
        .expect("running the successor");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "successor:\n{stderr}");
    assert!(
        stderr.contains("a takeover keeps the running agent's sockets"),
        "successor:\n{stderr}"
    );

    // One that asks, gets the offer, and vanishes (as after a crash).
    let stream = std::os::unix::net::UnixStream::connect(f.control_socket()).expect("connecting");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let request = format!(
        "{{\"cmd\":\"handover\",\"iface\":\"{SERVER_VETH}\",\"pin_root\":\"{}\"}}\n",
        f.netns.pin_root().display()
    );
    (&stream).write_all(request.as_bytes()).unwrap();
    let mut offer = String::new();
    BufReader::new(&stream).read_line(&mut offer).unwrap();
    assert!(
        offer.starts_with("{\"ok\":true,\"offer\""),
        "offer: {offer:.200}"
    );
    drop(stream);

    let log = || f.netns.agent_log_of(old_run);
    let resumed = poll_until(Duration::from_secs(5), Duration::from_millis(20), || {
        Ok((log().matches("the handover did not complete").count() >= 2).then_some(()))
    })
    .unwrap();
    assert!(resumed.is_some(), "old agent's log:\n{}", log());
    std::thread::sleep(Duration::from_millis(500));
    let to = Instant::now();
    let samples = load.stop();
    assert_nothing_lost("failed takeovers", &samples, from, to);
    assert!(f.netns.agent_running().unwrap(), "the old agent exited");
    let status = control_status(&f.control_socket());
    assert!(status.contains("\"ok\":true"), "status: {status}");

    // It writes again: a failover shows in the kernel's answers.
    f.netns
        .kill_endpoint(SocketAddrV4::new(PRIMARY, PORT))
        .expect("killing the primary");
    let took = answers(&f.netns, SECONDARY);
    eprintln!(
        "failover after the failed takeovers: {} ms",
        took.as_millis()
    );
    f.netns.stop_agent().expect("stopping the agent");
}

/// An upgrade to a release whose map layout changed, over a running agent:
/// new maps, filled before the link moves to the program that reads them;
/// nothing lost, and the old layout's pins are gone.
#[test]
fn an_upgrade_to_a_changed_map_layout_loses_nothing() {
    let mut f = start();
    let old_dir = f.netns.pin_dir();
    let new_dir = f.netns.pin_dir_of(failover_common::LAYOUT_VERSION + 1);
    let load = mixed_load(&f.netns);
    std::thread::sleep(Duration::from_millis(700));
    let from = Instant::now();
    let flags = f.flags();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let status = f
        .netns
        .take_over_agent(Path::new(NEXT_LAYOUT), &f.config, &flags, TAKEOVER_LIMIT)
        .expect("upgrading");
    std::thread::sleep(INTERVAL * 4);
    let to = Instant::now();
    let samples = load.stop();
    assert_eq!(status.code(), Some(0), "the old agent's exit");
    assert_nothing_lost("upgrade", &samples, from, to);
    let log = f.netns.agent_log();
    assert!(
        log.contains("took over the data plane with new maps"),
        "new agent's log:\n{log}"
    );
    assert!(!old_dir.exists(), "the old layout's pins are left");
    assert!(
        new_dir.join("link").exists(),
        "no link pinned at {new_dir:?}"
    );
    assert!(f.netns.server_xdp_attached().unwrap());

    // The new layout's agent writes: a failover shows.
    f.netns
        .kill_endpoint(SocketAddrV4::new(PRIMARY, PORT))
        .expect("killing the primary");
    answers(&f.netns, SECONDARY);
    f.netns.stop_agent().expect("stopping the agent");
    // A client the new agent never saw still gets answers from the kernel.
    let mut client =
        DnsClient::new(&f.netns.client, SocketAddrV4::new(DNS_SERVER_ADDR, 53)).expect("client");
    let answer = client.query_a(NAME, Duration::from_millis(500)).unwrap();
    assert_eq!(answer.map(|a| a.addrs), Some(vec![SECONDARY]));
}
