//! End to end: the agent binary in a server namespace, health checking two demo
//! endpoints and answering DNS from XDP on a veth; dig and a UDP client in a
//! client namespace. Needs root (`cargo xtask test`).

use std::{
    net::{Ipv4Addr, SocketAddrV4},
    time::{Duration, Instant},
};

use failover_tests::{
    AgentConfig, CheckSpec, DnsAnswer, DnsClient, Netns,
    dig::dig,
    is_root,
    netns::{ENDPOINT_ADDRS, SERVER_VETH},
    poll_until,
};
use hickory_proto::{op::ResponseCode, rr::RecordType};

const AGENT: &str = env!("CARGO_BIN_EXE_failover-agent-under-test");
const NAME: &str = "www.example.test.";
const PORT: u16 = 80;
const PRIMARY: Ipv4Addr = ENDPOINT_ADDRS[0];
const SECONDARY: Ipv4Addr = ENDPOINT_ADDRS[1];
const TTL: u32 = 30;
const INTERVAL: Duration = Duration::from_millis(300);
const TIMEOUT: Duration = Duration::from_millis(200);
const RISE: u32 = 2;
const FALL: u32 = 3;
/// How often the tests look at the answers.
const POLL: Duration = Duration::from_millis(50);
/// How long one UDP query waits for its answer.
const QUERY_TIMEOUT: Duration = Duration::from_millis(200);
/// A check can start up to this much early when the agent's timer catches up
/// after a stall (the machine is shared); lower bounds allow for it.
const TICK_SLACK: Duration = Duration::from_millis(50);

fn primary() -> SocketAddrV4 {
    SocketAddrV4::new(PRIMARY, PORT)
}

fn secondary() -> SocketAddrV4 {
    SocketAddrV4::new(SECONDARY, PORT)
}

fn config() -> AgentConfig {
    AgentConfig::failover(
        TTL,
        &[(PRIMARY, 1), (SECONDARY, 2)],
        CheckSpec::tcp(PORT).timing(INTERVAL, TIMEOUT, RISE, FALL),
    )
}

fn require_root() {
    assert!(
        is_root(),
        "the end-to-end tests need root (namespaces, veth, XDP): run `cargo xtask test` as root"
    );
}

/// Namespaces, both endpoints up, the agent running with `config()`.
fn start() -> (Netns, DnsClient) {
    start_with(&[])
}

/// Like [`start`], with these `run` arguments.
fn start_with(extra: &[&str]) -> (Netns, DnsClient) {
    require_root();
    let mut netns = Netns::new(AGENT).expect("creating the namespaces");
    netns
        .start_endpoint(primary())
        .expect("starting the primary");
    netns
        .start_endpoint(secondary())
        .expect("starting the secondary");
    let path = netns
        .write_config("agent.toml", &config().to_toml())
        .expect("writing the config");
    netns.start_agent(&path, extra).expect("starting the agent");
    let client = netns.dns_client().expect("creating the DNS client");
    (netns, client)
}

/// Polls until an answer arrives whose address set satisfies `want`; returns
/// the time from `since` and the answer. Panics (with the agent's log) after `limit`.
fn wait_for(
    netns: &Netns,
    client: &mut DnsClient,
    since: Instant,
    limit: Duration,
    what: &str,
    mut want: impl FnMut(&[Ipv4Addr]) -> bool,
) -> (Duration, DnsAnswer) {
    let mut last = None;
    let found = poll_until(limit, POLL, || {
        let answer = client.query_a(NAME, QUERY_TIMEOUT)?;
        let done = answer.as_ref().is_some_and(|a| want(&a.addrs));
        last = answer.clone();
        Ok(done.then(|| (since.elapsed(), answer.expect("checked above"))))
    })
    .expect("querying");
    found.unwrap_or_else(|| {
        panic!(
            "no answer {what} within {limit:?}; last answer: {last:?}\nagent log:\n{}",
            netns.agent_log()
        )
    })
}

fn assert_steady(client: &mut DnsClient, want: &[Ipv4Addr], polls: u32) {
    for _ in 0..polls {
        let answer = client
            .query_a(NAME, QUERY_TIMEOUT)
            .expect("querying")
            .expect("an answer while everything is steady");
        assert_eq!(answer.addrs, want, "answer changed while nothing did");
        std::thread::sleep(POLL);
    }
}

/// (a) primary only, TTL and AA right; (b) primary dies: secondary only, within
/// fall checks; (c) primary returns after rise checks; then SIGTERM stops the
/// answers.
#[test]
fn fails_over_to_the_secondary_and_back() {
    let (mut netns, mut client) = start();

    // (a) Both healthy: the failover policy answers with the best priority only.
    let (took, answer) = wait_for(
        &netns,
        &mut client,
        Instant::now(),
        Duration::from_secs(5),
        "with the primary",
        |addrs| addrs == [PRIMARY],
    );
    eprintln!("first answer after {} ms", took.as_millis());
    assert_eq!(answer.rcode, ResponseCode::NoError);
    assert!(answer.authoritative, "AA flag missing: {answer:?}");
    assert_eq!(answer.ttls, [TTL], "TTL is not the configured one");
    assert_eq!(
        answer.question,
        Some((NAME.to_string(), RecordType::A)),
        "question not echoed"
    );
    // dig's own defaults (recursion desired, a cookie) first, then each one off.
    for options in [&[][..], &["+norecurse"], &["+noedns"], &["+nocookie"]] {
        let args = [&["+recurse", "+cookie"][..], options].concat();
        let addrs = dig(&netns, "www.example.test", &args).addrs();
        assert_eq!(addrs, [PRIMARY], "dig {options:?}");
    }
    assert_steady(&mut client, &[PRIMARY], 10);

    // (b) The primary dies: after `fall` failed checks only the secondary is left.
    let killed = Instant::now();
    netns.kill_endpoint(primary()).expect("killing the primary");
    let detect_limit = INTERVAL * FALL + Duration::from_secs(1);
    let mut seen = Vec::new();
    let (detected, answer) = wait_for(
        &netns,
        &mut client,
        killed,
        detect_limit,
        "without the primary",
        |addrs| {
            seen.push(addrs.to_vec());
            !addrs.contains(&PRIMARY)
        },
    );
    eprintln!(
        "failover: primary killed, answers without it after {} ms (limit {} ms)",
        detected.as_millis(),
        detect_limit.as_millis()
    );
    assert_eq!(answer.addrs, [SECONDARY]);
    assert!(
        seen.iter().all(|a| a == &[PRIMARY] || a == &[SECONDARY]),
        "intermediate answers other than primary or secondary: {seen:?}"
    );
    let earliest = INTERVAL * (FALL - 1) - TICK_SLACK;
    assert!(
        detected >= earliest,
        "failed over after {detected:?}, before {FALL} checks could have failed ({earliest:?})"
    );
    assert_steady(&mut client, &[SECONDARY], 5);

    // (c) The primary returns: back after `rise` good checks, not before.
    let restarted = Instant::now();
    netns
        .start_endpoint(primary())
        .expect("restarting the primary");
    let recover_limit = INTERVAL * RISE + Duration::from_secs(1);
    let (recovered, answer) = wait_for(
        &netns,
        &mut client,
        restarted,
        recover_limit,
        "with the primary back",
        |addrs| addrs.contains(&PRIMARY),
    );
    eprintln!(
        "recovery: primary restarted, answers with it after {} ms (limit {} ms)",
        recovered.as_millis(),
        recover_limit.as_millis()
    );
    assert_eq!(answer.addrs, [PRIMARY]);
    let earliest = INTERVAL * (RISE - 1) - TICK_SLACK;
    assert!(
        recovered >= earliest,
        "back after {recovered:?}, before {RISE} checks could have passed ({earliest:?})"
    );

    // The agent stops cleanly; the pinned program keeps answering until
    // `failover-agent detach` removes it.
    let status = netns.stop_agent().expect("stopping the agent");
    assert_eq!(status.code(), Some(0), "agent log:\n{}", netns.agent_log());
    assert!(netns.server_xdp_attached().unwrap());
    let out = netns
        .run_agent_command(&["detach", "--iface", SERVER_VETH], Duration::from_secs(10))
        .expect("detach");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!netns.server_xdp_attached().unwrap());
    let after = client
        .query_a(NAME, Duration::from_millis(500))
        .expect("querying");
    assert_eq!(after, None, "still answered after detach");
}

/// (d) With every endpoint down the record fails open to its best priority
/// level, and the agent says so in an error.
#[test]
fn fails_open_to_the_best_priority_when_all_are_down() {
    let (mut netns, mut client) = start();
    wait_for(
        &netns,
        &mut client,
        Instant::now(),
        Duration::from_secs(5),
        "with the primary",
        |addrs| addrs == [PRIMARY],
    );
    // One at a time, so "fail open" is distinguishable from "nothing happened".
    netns.kill_endpoint(primary()).expect("killing the primary");
    let limit = INTERVAL * FALL + Duration::from_secs(1);
    wait_for(
        &netns,
        &mut client,
        Instant::now(),
        limit,
        "with the secondary only",
        |addrs| addrs == [SECONDARY],
    );
    let killed = Instant::now();
    netns
        .kill_endpoint(secondary())
        .expect("killing the secondary");
    let (took, answer) = wait_for(
        &netns,
        &mut client,
        killed,
        limit,
        "failing open to the primary",
        |addrs| addrs == [PRIMARY],
    );
    eprintln!("fail open after {} ms", took.as_millis());
    assert!(answer.authoritative);
    assert_eq!(answer.ttls, [TTL]);
    assert_steady(&mut client, &[PRIMARY], 5);

    let log = netns.agent_log();
    let error_line = log
        .lines()
        .find(|l| l.contains("ERROR") && l.contains("www.example.test"));
    assert!(
        error_line.is_some(),
        "no ERROR line naming the record when all endpoints are down; agent log:\n{log}"
    );
    eprintln!("agent said: {}", error_line.unwrap());
    let status = netns.stop_agent().expect("stopping the agent");
    assert_eq!(status.code(), Some(0), "agent log:\n{}", netns.agent_log());
}

/// (e) SIGTERM with --detach-on-exit: exit code 0 and no XDP program left
/// on the interface.
#[test]
fn sigterm_exits_zero_and_detaches() {
    let (mut netns, _client) = start_with(&["--detach-on-exit"]);
    assert!(
        netns.server_xdp_attached().unwrap(),
        "start_agent returned but nothing is attached"
    );
    // Let it run a few check rounds first: it must not exit on its own.
    std::thread::sleep(INTERVAL * 3);
    assert!(
        netns.agent_running().unwrap(),
        "the agent exited by itself:\n{}",
        netns.agent_log()
    );
    let stopped = Instant::now();
    let status = netns.stop_agent().expect("stopping the agent");
    eprintln!(
        "agent exited {} ms after SIGTERM",
        stopped.elapsed().as_millis()
    );
    assert_eq!(status.code(), Some(0), "agent log:\n{}", netns.agent_log());
    let link = netns.server_link_show().unwrap();
    assert!(
        !link.contains("xdp"),
        "an XDP program is still attached to {SERVER_VETH} after exit:\n{link}"
    );
}

/// (f) A bad config: exit code 2, the file and the field named, nothing attached.
#[test]
fn bad_config_exits_2_naming_file_and_field() {
    require_root();
    let mut netns = Netns::new(AGENT).expect("creating the namespaces");
    let good = config().to_toml();
    let cases = [
        (
            "fall-zero.toml",
            good.replace("fall = 3", "fall = 0"),
            "checks.probe.fall",
        ),
        (
            "bad-address.toml",
            good.replace("\"192.0.2.11\"", "\"192.0.2.311\""),
            "record[0].endpoints[1].address",
        ),
        (
            "unknown-key.toml",
            good.replace("rise = 2", "rise = 2\nretries = 4"),
            "retries",
        ),
    ];
    for (file, text, field) in cases {
        assert_ne!(text, good, "{file}: the test's replacement did not apply");
        let path = netns.write_config(file, &text).unwrap();
        let out = netns
            .run_agent_to_exit(&path, &[], Duration::from_secs(10))
            .expect("running the agent");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{file}: stderr:\n{stderr}");
        assert!(
            stderr.contains(&path.display().to_string()),
            "{file}: stderr does not name the file:\n{stderr}"
        );
        assert!(
            stderr.contains(field),
            "{file}: stderr does not name the field {field}:\n{stderr}"
        );
        assert!(
            !netns.server_xdp_attached().unwrap(),
            "{file}: an XDP program was attached despite the bad config"
        );
    }
}

/// The fixture leaves nothing behind, even when the test using it panics.
#[test]
fn fixture_cleans_up_after_a_panic() {
    require_root();
    let names = std::sync::Arc::new(std::sync::Mutex::new(None));
    let pids = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let (n2, p2) = (names.clone(), pids.clone());
    let result = std::thread::spawn(move || {
        let mut netns = Netns::new(AGENT).expect("creating the namespaces");
        netns
            .start_endpoint(primary())
            .expect("starting the primary");
        let path = netns
            .write_config("agent.toml", &config().to_toml())
            .unwrap();
        netns.start_agent(&path, &[]).expect("starting the agent");
        *n2.lock().unwrap() = Some((netns.server.clone(), netns.client.clone()));
        p2.lock().unwrap().extend(netns.pids());
        panic!("deliberate panic with the fixture alive");
    })
    .join();
    assert!(result.is_err(), "the thread was meant to panic");
    let (server, client) = names.lock().unwrap().clone().expect("the fixture came up");
    let list = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .unwrap();
    let list = String::from_utf8_lossy(&list.stdout);
    assert!(
        !list.lines().any(|l| {
            let name = l.split_whitespace().next().unwrap_or("");
            name == server || name == client
        }),
        "namespaces left behind:\n{list}"
    );
    let pids = pids.lock().unwrap().clone();
    assert_eq!(pids.len(), 2, "agent and endpoint PIDs");
    for pid in pids {
        // Reaped children are gone entirely: no /proc entry, not even a zombie.
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "process {pid} left behind"
        );
    }
}
