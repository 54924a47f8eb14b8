//! Policies, all-down modes, adaptive TTL and manual control (drain, force,
//! the admin-state file) end to end: the agent in a server namespace with
//! real TCP endpoints, `dig` in a client namespace, and the agent's own CLI
//! on its control socket. Needs root (`cargo xtask test`).

use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr, SocketAddrV4},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use failover_tests::{
    AgentConfig, CheckSpec, EndpointSpec, Netns, RecordSpec, ZoneSpec,
    dig::{TCP, UDP, dig, dig_until},
    is_root,
    netns::DNS_SERVER_ADDR,
    poll_until,
};

const AGENT: &str = env!("CARGO_BIN_EXE_failover-agent-under-test");
const PORT: u16 = 80;
const A: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
const B: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 11);
const C: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 12);
const D: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 13);
const SORRY: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 99);
const LIMIT: Duration = Duration::from_secs(5);

/// The zone with its nameserver, `records`, and the check `web`: every
/// 200 ms, rise 1, fall 2, so a dead endpoint is out within ~0.4 s.
fn config(records: impl IntoIterator<Item = RecordSpec>) -> AgentConfig {
    let ns1 = IpAddr::V4(DNS_SERVER_ADDR);
    AgentConfig::new()
        .zone(
            ZoneSpec::new("example.test.")
                .ttl(30)
                .nameserver("ns1.example.test.", &[ns1]),
        )
        .records(records)
        .check(
            "web",
            CheckSpec::tcp(PORT).timing(
                Duration::from_millis(200),
                Duration::from_millis(100),
                1,
                2,
            ),
        )
}

/// `name` A answered by `policy` over endpoints checked by `web`.
fn record(name: &str, policy: &str) -> RecordSpec {
    RecordSpec::new(name, "A", policy, "web")
}

/// Namespaces, endpoints `up` listening, extra lo addresses for C and D, the
/// agent with `config` and a control socket in the work directory.
fn start(config: &AgentConfig, up: &[Ipv4Addr]) -> (Netns, PathBuf) {
    assert!(
        is_root(),
        "needs root (namespaces, veth, XDP): run `cargo xtask test`"
    );
    let mut netns = Netns::new(AGENT).expect("creating the namespaces");
    for extra in [C, D, SORRY] {
        netns
            .add_server_lo_address(IpAddr::V4(extra))
            .expect("adding an endpoint address");
    }
    for addr in up {
        netns
            .start_endpoint(SocketAddrV4::new(*addr, PORT))
            .expect("starting an endpoint");
    }
    let socket = netns.workdir().join("control.sock");
    let path = netns.write_config("agent.toml", &config.to_toml()).unwrap();
    netns
        .start_agent(&path, &["--control-socket", socket.to_str().unwrap()])
        .expect("starting the agent");
    (netns, socket)
}

/// `failover-agent <args> --control-socket SOCKET`: its stdout, asserting success.
fn cli(socket: &Path, args: &[&str]) -> String {
    let out = Command::new(AGENT)
        .args(args)
        .arg("--control-socket")
        .arg(socket)
        .stdin(Stdio::null())
        .output()
        .expect("running the CLI");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "failover-agent {args:?} failed ({}): {stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// One endpoint's entry in `status --json`.
fn endpoint_status(socket: &Path, record: &str, address: Ipv4Addr) -> serde_json::Value {
    let text = cli(socket, &["status", "--json"]);
    let reply: serde_json::Value = serde_json::from_str(&text).expect("status is JSON");
    assert_eq!(reply["ok"], true, "{reply}");
    let records = reply["status"]["records"].as_array().expect("records");
    let record = records
        .iter()
        .find(|r| r["name"] == record && r["type"] == "A")
        .unwrap_or_else(|| panic!("no record {record} in {reply}"));
    record["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["address"] == address.to_string())
        .cloned()
        .unwrap_or_else(|| panic!("no endpoint {address} in {record}"))
}

const WWW: &str = "www.example.test.";

#[test]
fn failover_min_healthy_and_degraded_ttl() {
    let www = record(WWW, "failover")
        .set("min_healthy", 2)
        .set("ttl", 30)
        .set("degraded_ttl", 5)
        .endpoints([
            EndpointSpec::new(A).priority(1),
            EndpointSpec::new(B).priority(1),
            EndpointSpec::new(C).priority(2),
        ]);
    let (mut netns, _socket) = start(&config([www]), &[A, B, C]);
    let (_, d) = dig_until(&netns, WWW, &[UDP], "with both primaries", |d| {
        d.addrs() == [A, B]
    });
    assert_eq!(
        d.answers.iter().map(|a| a.0).collect::<Vec<_>>(),
        [30, 30],
        "full TTL"
    );
    assert!(d.aa);
    // One primary down: the level is below min_healthy = 2, the backup answers,
    // with the degraded TTL.
    netns.kill_endpoint(SocketAddrV4::new(B, PORT)).unwrap();
    let (_, d) = dig_until(&netns, WWW, &[UDP], "with the backup", |d| d.addrs() == [C]);
    assert_eq!(d.answers[0].0, 5, "degraded TTL: {d:?}");
    // The userspace responder (TCP) says the same.
    let tcp = dig(&netns, WWW, TCP);
    assert_eq!((tcp.addrs(), tcp.answers[0].0), (vec![C], 5));
    // Back: full TTL again.
    netns.start_endpoint(SocketAddrV4::new(B, PORT)).unwrap();
    let (_, d) = dig_until(&netns, WWW, &[UDP], "with both primaries again", |d| {
        d.addrs() == [A, B]
    });
    assert_eq!(d.answers[0].0, 30);
}

#[test]
fn all_healthy_is_capped_by_max_answers() {
    let www = record(WWW, "all-healthy").set("max_answers", 2).endpoints([
        EndpointSpec::new(A),
        EndpointSpec::new(B),
        EndpointSpec::new(C).priority(2),
    ]);
    let (mut netns, _socket) = start(&config([www]), &[A, B, C]);
    dig_until(&netns, WWW, &[UDP], "with two addresses", |d| {
        d.addrs().len() == 2
    });
    // Two per answer, the window moving on per query over all three healthy
    // endpoints: each gets traffic, from the kernel (UDP) and userspace (TCP).
    for transport in [UDP, TCP] {
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..12 {
            let d = dig(&netns, WWW, transport);
            assert_eq!(d.addrs().len(), 2, "{d:?}");
            seen.extend(d.addrs());
        }
        assert_eq!(
            seen.into_iter().collect::<Vec<_>>(),
            [A, B, C],
            "every healthy endpoint is answered ({transport:?})"
        );
    }
    netns.kill_endpoint(SocketAddrV4::new(A, PORT)).unwrap();
    // A window can be [B, C] by turn: B and C alone, query after query.
    dig_until(&netns, WWW, &[UDP], "with B and C only", |_| {
        (0..6).all(|_| dig(&netns, WWW, UDP).addrs() == [B, C])
    });
    for _ in 0..3 {
        assert_eq!(dig(&netns, WWW, TCP).addrs(), [B, C], "userspace alike");
    }
}

#[test]
fn weighted_picks_one_address_per_query_by_weight() {
    let www = record(WWW, "weighted").endpoints([
        EndpointSpec::new(A).weight(3),
        EndpointSpec::new(B).weight(1),
        EndpointSpec::new(C).weight(0),
    ]);
    let (mut netns, _socket) = start(&config([www]), &[A, B, C]);
    dig_until(&netns, WWW, &[UDP], "with one address", |d| {
        d.answers.len() == 1
    });
    // From one client: the kernel picks per query.
    let mut client = netns.dns_client().unwrap();
    let mut counts: BTreeMap<Ipv4Addr, u32> = BTreeMap::new();
    let n = 400;
    for _ in 0..n {
        let answer = client
            .query_a(WWW, Duration::from_millis(500))
            .unwrap()
            .expect("an answer");
        assert_eq!(answer.addrs.len(), 1, "{answer:?}");
        *counts.entry(answer.addrs[0]).or_default() += 1;
    }
    let a = counts.get(&A).copied().unwrap_or(0);
    let b = counts.get(&B).copied().unwrap_or(0);
    assert_eq!(
        a + b,
        n,
        "weight 0 never answers while others are up: {counts:?}"
    );
    // 3:1 expected; binomial sd ~ 8.7 of 400: far outside chance when wrong.
    assert!((250..=350).contains(&a), "{counts:?}");
    // The userspace responder picks per query too.
    let mut tcp: BTreeMap<Ipv4Addr, u32> = BTreeMap::new();
    for _ in 0..40 {
        let d = dig(&netns, WWW, TCP);
        assert_eq!(d.answers.len(), 1, "{d:?}");
        *tcp.entry(d.answers[0].1).or_default() += 1;
    }
    assert!(tcp.len() == 2 && !tcp.contains_key(&C), "{tcp:?}");
    // Only the weight-0 endpoint left: it answers.
    netns.kill_endpoint(SocketAddrV4::new(A, PORT)).unwrap();
    netns.kill_endpoint(SocketAddrV4::new(B, PORT)).unwrap();
    dig_until(&netns, WWW, &[UDP], "with the last resort", |d| {
        d.addrs() == [C]
    });
}

#[test]
fn when_all_down_modes() {
    // Endpoint D never listens: every record is all down.
    let down = |name: &str| {
        record(name, "failover").endpoints([
            EndpointSpec::new(D).priority(1),
            EndpointSpec::new(C).priority(2),
        ])
    };
    let records = [
        down("open.example.test."),
        down("sorry.example.test.")
            .set("when_all_down", "fallback")
            .set("fallback", [SORRY]),
        down("nodata.example.test.").set("when_all_down", "nodata"),
        down("fail.example.test.").set("when_all_down", "servfail"),
    ];
    let (mut netns, _socket) = start(&config(records), &[]);
    for transport in [UDP, TCP] {
        let (_, d) = dig_until(
            &netns,
            "open.example.test.",
            &[transport],
            "failing open",
            |d| d.status == "NOERROR",
        );
        assert_eq!(d.addrs(), [D], "fail open: the best level: {d:?}");
        let d = dig(&netns, "sorry.example.test.", transport);
        assert_eq!(
            (d.status.as_str(), d.addrs()),
            ("NOERROR", vec![SORRY]),
            "{d:?}"
        );
        let d = dig(&netns, "nodata.example.test.", transport);
        assert_eq!(d.status, "NOERROR", "{d:?}");
        assert!(d.answers.is_empty() && d.aa, "{d:?}");
        assert_eq!(d.authority, ["SOA"], "{d:?}");
        let d = dig(&netns, "fail.example.test.", transport);
        assert_eq!(d.status, "SERVFAIL", "{d:?}");
        assert!(!d.aa && d.answers.is_empty(), "{d:?}");
    }
    // The backup comes up: every record answers with it.
    netns.start_endpoint(SocketAddrV4::new(C, PORT)).unwrap();
    for name in [
        "open.example.test.",
        "sorry.example.test.",
        "nodata.example.test.",
        "fail.example.test.",
    ] {
        dig_until(&netns, name, &[UDP], "with the backup", |d| {
            d.addrs() == [C]
        });
    }
    assert!(netns.agent_log().contains("no endpoint is healthy"));
}

#[test]
fn drain_and_force_from_the_cli_take_effect_at_once() {
    let www = record(WWW, "failover").endpoints([
        EndpointSpec::new(A).priority(1),
        EndpointSpec::new(B).priority(2),
    ]);
    let (mut netns, socket) = start(&config([www]), &[A, B]);
    dig_until(&netns, WWW, &[UDP], "with the primary", |d| {
        d.addrs() == [A]
    });

    // Drain: out of the answers before the CLI returns.
    let out = cli(&socket, &["drain", WWW, "192.0.2.10"]);
    assert!(
        out.contains("drained") && out.contains("answer: 192.0.2.11"),
        "{out}"
    );
    assert_eq!(dig(&netns, WWW, UDP).addrs(), [B], "drain is immediate");
    assert_eq!(dig(&netns, WWW, TCP).addrs(), [B], "in userspace too");
    // Its checks go on: status shows it healthy, drained, not answered.
    let e = endpoint_status(&socket, WWW, A);
    assert_eq!(
        (&e["health"], &e["admin"], &e["answered"]),
        (&"healthy".into(), &"drain".into(), &false.into()),
        "{e}"
    );
    assert!(e["latency_ms"].as_f64().is_some(), "check latency: {e}");
    let human = cli(&socket, &["status"]);
    assert!(
        human.contains("192.0.2.10") && human.contains("drain"),
        "{human}"
    );
    // Health still tracked while drained: it goes down and back.
    netns.kill_endpoint(SocketAddrV4::new(A, PORT)).unwrap();
    poll_until(LIMIT, Duration::from_millis(100), || {
        Ok((endpoint_status(&socket, WWW, A)["health"] == "unhealthy").then_some(()))
    })
    .unwrap()
    .expect("the drained endpoint's checks keep running");
    let e = endpoint_status(&socket, WWW, A);
    assert!(e["last_failure"].as_str().is_some(), "last failure: {e}");
    netns.start_endpoint(SocketAddrV4::new(A, PORT)).unwrap();

    // Undrain: back at once (it is healthy again).
    poll_until(LIMIT, Duration::from_millis(100), || {
        Ok((endpoint_status(&socket, WWW, A)["health"] == "healthy").then_some(()))
    })
    .unwrap()
    .expect("healthy again");
    cli(&socket, &["undrain", WWW, "192.0.2.10"]);
    assert_eq!(dig(&netns, WWW, UDP).addrs(), [A]);

    // Force down a healthy endpoint, then clear.
    cli(&socket, &["force", "down", WWW, "192.0.2.10"]);
    assert_eq!(dig(&netns, WWW, UDP).addrs(), [B]);
    cli(&socket, &["force", "clear", WWW, "192.0.2.10"]);
    assert_eq!(dig(&netns, WWW, UDP).addrs(), [A]);

    // Force up a dead endpoint: answered although its checks fail.
    netns.kill_endpoint(SocketAddrV4::new(A, PORT)).unwrap();
    dig_until(&netns, WWW, &[UDP], "failed over", |d| d.addrs() == [B]);
    cli(&socket, &["force", "up", WWW, "192.0.2.10"]);
    assert_eq!(dig(&netns, WWW, UDP).addrs(), [A]);
    let e = endpoint_status(&socket, WWW, A);
    assert_eq!(
        (&e["health"], &e["admin"]),
        (&"unhealthy".into(), &"force-up".into())
    );
    cli(&socket, &["force", "clear", WWW, "192.0.2.10"]);
    assert_eq!(dig(&netns, WWW, UDP).addrs(), [B]);

    // A drain for a while ends by itself.
    netns.start_endpoint(SocketAddrV4::new(A, PORT)).unwrap();
    dig_until(&netns, WWW, &[UDP], "with the primary", |d| {
        d.addrs() == [A]
    });
    let out = cli(&socket, &["drain", WWW, "192.0.2.10", "--for", "2s"]);
    assert!(out.contains("until"), "{out}");
    assert_eq!(dig(&netns, WWW, UDP).addrs(), [B]);
    let (took, _) = dig_until(&netns, WWW, &[UDP], "after the drain expired", |d| {
        d.addrs() == [A]
    });
    assert!(
        took >= Duration::from_millis(1000),
        "expired after {took:?}"
    );

    // Mistakes are refused, naming what exists.
    let out = Command::new(AGENT)
        .args(["drain", WWW, "192.0.2.77", "--control-socket"])
        .arg(&socket)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not an endpoint of www.example.test."),
        "{out:?}"
    );

    // Ctrl-C (SIGINT) stops the agent cleanly and takes its socket file along.
    assert!(socket.exists());
    let status = netns.stop_agent_with(libc::SIGINT).unwrap();
    assert!(status.success(), "{status:?}");
    assert!(!socket.exists(), "the control socket is left behind");
}

#[test]
fn admin_state_file_is_applied_live_and_survives_a_restart() {
    let www = record(WWW, "failover").endpoints([
        EndpointSpec::new(A).priority(1),
        EndpointSpec::new(B).priority(2),
    ]);
    // The state file lives outside the fixture's work directory so it can
    // be written before the agent starts.
    let dir = std::env::temp_dir().join(format!("failover-policies-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let state = dir.join("admin-state.toml");
    std::fs::write(
        &state,
        "[endpoints]\n\"www.example.test./192.0.2.1[0-0]\" = \"drain\"\n",
    )
    .unwrap();
    let config = config([www]).admin("state_file", state.as_path());
    let (mut netns, socket) = start(&config, &[A, B]);
    // Drained by the pattern from the very first answer.
    let (_, d) = dig_until(&netns, WWW, &[UDP], "with an answer", |d| {
        !d.answers.is_empty()
    });
    assert_eq!(d.addrs(), [B], "{d:?}");
    // The file edited by hand: applied within about a second.
    std::fs::write(&state, "[endpoints]\n").unwrap();
    let (took, _) = dig_until(&netns, WWW, &[UDP], "after the edit", |d| d.addrs() == [A]);
    assert!(took < Duration::from_secs(3), "{took:?}");
    std::fs::write(&state, "[endpoints]\n\"*/192.0.2.10\" = \"force-down\"\n").unwrap();
    dig_until(&netns, WWW, &[UDP], "forced down by a glob", |d| {
        d.addrs() == [B]
    });
    // A broken edit keeps the state and says why.
    std::fs::write(&state, "[endpoints]\n\"*/192.0.2.10\" = \"sideways\"\n").unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(dig(&netns, WWW, UDP).addrs(), [B]);
    assert!(netns.agent_log().contains("unknown state \"sideways\""));

    // The CLI writes the file.
    std::fs::write(&state, "[endpoints]\n").unwrap();
    dig_until(&netns, WWW, &[UDP], "with the primary", |d| {
        d.addrs() == [A]
    });
    cli(&socket, &["drain", WWW, "192.0.2.10"]);
    let text = std::fs::read_to_string(&state).unwrap();
    assert!(
        text.contains("\"www.example.test./192.0.2.10\" = \"drain\""),
        "{text}"
    );
    // Restart: still drained from the first answer on.
    netns.stop_agent().unwrap();
    let path = netns.write_config("agent.toml", &config.to_toml()).unwrap();
    netns
        .start_agent(&path, &["--control-socket", socket.to_str().unwrap()])
        .unwrap();
    let (_, d) = dig_until(&netns, WWW, &[UDP], "after the restart", |d| {
        !d.answers.is_empty()
    });
    assert_eq!(d.addrs(), [B], "the drain survived the restart: {d:?}");
    let e = endpoint_status(&socket, WWW, A);
    assert_eq!(e["admin"], "drain");
    drop(netns);
    std::fs::remove_dir_all(&dir).ok();
}
