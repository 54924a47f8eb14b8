//! The data plane outlives the agent: the XDP program and its maps stay
//! pinned when the agent dies, answer from the last answer sets for
//! `[dataplane] hold`, and the next agent adopts them without a gap;
//! `failover-agent detach` removes them. The agent binary in a server
//! namespace on a veth, a UDP client in a client namespace. Needs root.

use std::{
    net::{Ipv4Addr, SocketAddrV4},
    path::Path,
    time::{Duration, Instant},
};

use aya::maps::{MapData, PerCpuArray};
use failover_common::{Counter, MAP_COUNTERS};
use failover_tests::{
    AgentConfig, CheckSpec, DnsClient, Netns, is_root,
    load::{QueryStream, Tally, tally},
    netns::{ENDPOINT_ADDRS, SERVER_VETH},
    poll_until,
};

const AGENT: &str = env!("CARGO_BIN_EXE_failover-agent-under-test");
const NAME: &str = "www.example.test.";
const PORT: u16 = 80;
const PRIMARY: Ipv4Addr = ENDPOINT_ADDRS[0];
const SECONDARY: Ipv4Addr = ENDPOINT_ADDRS[1];
const INTERVAL: Duration = Duration::from_millis(300);
const TIMEOUT: Duration = Duration::from_millis(200);
const RISE: u32 = 2;
const FALL: u32 = 3;

fn primary() -> SocketAddrV4 {
    SocketAddrV4::new(PRIMARY, PORT)
}

fn secondary() -> SocketAddrV4 {
    SocketAddrV4::new(SECONDARY, PORT)
}

fn config_text(hold: Option<&str>) -> String {
    let mut text = AgentConfig::failover(
        30,
        &[(PRIMARY, 1), (SECONDARY, 2)],
        CheckSpec::tcp(PORT).timing(INTERVAL, TIMEOUT, RISE, FALL),
    )
    .to_toml();
    if let Some(hold) = hold {
        text += &format!("\n[dataplane]\nhold = \"{hold}\"\n");
    }
    text
}

/// Namespaces, both endpoints up, the agent running and answering with the
/// primary; returns the config's path too.
fn start(hold: Option<&str>) -> (Netns, DnsClient, std::path::PathBuf) {
    assert!(is_root(), "needs root (namespaces, veth, XDP, bpffs)");
    let mut netns = Netns::new(AGENT).expect("creating the namespaces");
    netns.start_endpoint(primary()).expect("primary");
    netns.start_endpoint(secondary()).expect("secondary");
    let path = netns
        .write_config("agent.toml", &config_text(hold))
        .expect("writing the config");
    netns.start_agent(&path, &[]).expect("starting the agent");
    let mut client = netns.dns_client().expect("DNS client");
    let first = poll_until(Duration::from_secs(5), Duration::from_millis(50), || {
        Ok(client
            .query_a(NAME, Duration::from_millis(200))?
            .filter(|a| a.addrs == [PRIMARY]))
    })
    .expect("querying");
    assert!(
        first.is_some(),
        "no answer with the primary; agent log:\n{}",
        netns.agent_log()
    );
    (netns, client, path)
}

/// Waits until the running agent's log has `needle`.
fn wait_for_log(netns: &Netns, needle: &str, limit: Duration) {
    let found = poll_until(limit, Duration::from_millis(10), || {
        Ok(netns.agent_log().contains(needle).then_some(()))
    })
    .expect("reading the log");
    assert!(
        found.is_some(),
        "no {needle:?} in the agent log within {limit:?}:\n{}",
        netns.agent_log()
    );
}

/// The pinned counter map's `counter`, summed over CPUs.
fn pinned_counter(pin_dir: &Path, counter: Counter) -> u64 {
    let map = MapData::from_pin(pin_dir.join(MAP_COUNTERS)).expect("opening the pinned counters");
    let counters: PerCpuArray<MapData, u64> =
        PerCpuArray::try_from(aya::maps::Map::PerCpuArray(map)).expect("a per-CPU array");
    counters
        .get(&(counter as u32), 0)
        .expect("reading a counter")
        .iter()
        .sum()
}

/// (a) kill -9: the kernel keeps answering the hot name while no agent
/// runs; the next agent adopts the data plane without a gap, and a failover
/// after the restart is still seen within interval x fall.
#[test]
fn kill_9_loses_no_query_and_a_restart_adopts_without_a_gap() {
    let (mut netns, client, path) = start(None);
    let load = QueryStream::start(client, NAME, Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(500));

    let killed = Instant::now();
    netns.kill_agent().expect("kill -9 the agent");
    std::thread::sleep(Duration::from_secs(2));
    let restarting = Instant::now();
    netns.start_agent(&path, &[]).expect("restarting the agent");
    wait_for_log(&netns, "adopted the data plane", Duration::from_secs(5));
    // Past the new agent's first round of checks, which rewrites the answer.
    std::thread::sleep(INTERVAL * 4);
    let settled = Instant::now();
    let samples = load.stop();

    let Tally {
        sent,
        answered,
        lost,
        ..
    } = tally(&samples, killed, restarting, &[PRIMARY]);
    eprintln!("no agent running: {sent} queries sent, {answered} answered, {lost} lost");
    assert!(sent > 100, "only {sent} queries while no agent ran");
    assert_eq!(lost, 0, "queries lost while no agent ran");
    let Tally {
        sent,
        answered,
        lost,
        ..
    } = tally(&samples, restarting, settled, &[PRIMARY]);
    eprintln!("restart and adoption: {sent} queries sent, {answered} answered, {lost} lost");
    assert!(sent > 100, "only {sent} queries during the restart");
    assert_eq!(lost, 0, "queries lost during the restart");
    let log = netns.agent_log();
    assert!(log.contains("took over"), "agent log:\n{log}");

    // The adopted data plane is the new agent's: a failover still shows.
    let mut client = netns.dns_client().expect("DNS client");
    let killed = Instant::now();
    netns.kill_endpoint(primary()).expect("killing the primary");
    let limit = INTERVAL * FALL + Duration::from_secs(1);
    let seen = poll_until(limit, Duration::from_millis(50), || {
        Ok(client
            .query_a(NAME, Duration::from_millis(200))?
            .filter(|a| a.addrs == [SECONDARY])
            .map(|_| killed.elapsed()))
    })
    .expect("querying");
    let took = seen.unwrap_or_else(|| {
        panic!(
            "no failover within {limit:?} after the restart; agent log:\n{}",
            netns.agent_log()
        )
    });
    eprintln!("failover after the restart: {} ms", took.as_millis());
    netns.stop_agent().expect("stopping the agent");
}

/// (b) With the agent dead, the kernel answers for `hold`, then passes
/// every query up (nothing listens: no answer), counted as
/// pass_agent_gone; an adopting agent brings the answers back at once.
#[test]
fn the_hold_runs_out_without_an_agent_and_adoption_restores_answering() {
    let (mut netns, mut client, path) = start(Some("2s"));
    let killed = Instant::now();
    netns.kill_agent().expect("kill -9 the agent");
    let mut last_answer = killed;
    let stopped = poll_until(
        Duration::from_secs(6),
        Duration::from_millis(50),
        || match client.query_a(NAME, Duration::from_millis(100))? {
            Some(_) => {
                last_answer = Instant::now();
                Ok(None)
            }
            None => Ok(Some(killed.elapsed())),
        },
    )
    .expect("querying")
    .expect("the kernel kept answering past the hold");
    eprintln!(
        "hold 2s: last kernel answer {} ms after kill -9, none at {} ms",
        (last_answer - killed).as_millis(),
        stopped.as_millis()
    );
    assert!(
        stopped >= Duration::from_millis(1500),
        "answering stopped after {stopped:?}, before the 2 s hold"
    );
    // Stays silent, and the program says why.
    for _ in 0..5 {
        assert!(
            client
                .query_a(NAME, Duration::from_millis(100))
                .unwrap()
                .is_none()
        );
    }
    let gone = pinned_counter(&netns.pin_dir(), Counter::PassAgentGone);
    assert!(gone >= 5, "pass_agent_gone = {gone}");

    netns.start_agent(&path, &[]).expect("restarting the agent");
    wait_for_log(&netns, "adopted the data plane", Duration::from_secs(5));
    let adopted = Instant::now();
    let back = poll_until(Duration::from_secs(2), Duration::from_millis(10), || {
        Ok(client
            .query_a(NAME, Duration::from_millis(100))?
            .filter(|a| a.addrs == [PRIMARY])
            .map(|_| adopted.elapsed()))
    })
    .expect("querying")
    .expect("no answer after adoption");
    eprintln!("answering again {} ms after adoption", back.as_millis());
    assert!(
        back < Duration::from_millis(500),
        "answers came back after {back:?}"
    );
    netns.stop_agent().expect("stopping the agent");
}

/// (c) SIGTERM leaves the program answering; `detach` removes the link and
/// every pin. A second agent on the same interface, and pins of another map
/// layout, are refused with a clear message.
#[test]
fn detach_removes_the_link_and_every_pin_and_faults_are_refused() {
    let (mut netns, mut client, path) = start(None);
    // A second agent on the same interface that cannot ask the running one
    // to hand over (another control socket): refused (the pin directory's lock).
    let elsewhere = netns.workdir().join("elsewhere.sock");
    let out = netns
        .run_agent_to_exit(
            &path,
            &[
                "--mode",
                "front",
                "--control-socket",
                elsewhere.to_str().unwrap(),
            ],
            Duration::from_secs(10),
        )
        .expect("running a second agent");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "second agent:\n{stderr}");
    assert!(
        stderr.contains("another agent runs the data plane pinned at")
            && stderr.contains("does not answer on the control socket"),
        "second agent:\n{stderr}"
    );

    let status = netns.stop_agent().expect("SIGTERM");
    assert_eq!(status.code(), Some(0), "agent log:\n{}", netns.agent_log());
    assert!(netns.server_xdp_attached().unwrap(), "SIGTERM detached XDP");
    assert!(netns.pin_dir().join("link").exists());
    let answer = client.query_a(NAME, Duration::from_millis(500)).unwrap();
    assert_eq!(
        answer.map(|a| a.addrs),
        Some(vec![PRIMARY]),
        "answered after SIGTERM"
    );

    let out = netns
        .run_agent_command(&["detach", "--iface", SERVER_VETH], Duration::from_secs(10))
        .expect("detach");
    assert!(
        out.status.success(),
        "detach: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let link = netns.server_link_show().unwrap();
    assert!(
        !link.contains("xdp"),
        "XDP still attached after detach:\n{link}"
    );
    assert!(!netns.pin_dir().exists(), "pins left after detach");
    // bpffs keeps its own debug files at its root: no version directory is left.
    let left: Vec<_> = std::fs::read_dir(netns.pin_root())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with('v'))
        .collect();
    assert!(left.is_empty(), "directories left after detach: {left:?}");
    assert_eq!(
        client.query_a(NAME, Duration::from_millis(300)).unwrap(),
        None,
        "answered after detach"
    );

    // Pins of another layout: never reused; --replace-dataplane removes them.
    let old = netns.pin_root().join("v1").join(SERVER_VETH);
    std::fs::create_dir_all(&old).unwrap();
    let out = netns
        .run_agent_to_exit(&path, &[], Duration::from_secs(10))
        .expect("running the agent over an old layout");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("another map layout"), "{stderr}");
    netns
        .start_agent(&path, &["--replace-dataplane", "--detach-on-exit"])
        .expect("starting with --replace-dataplane");
    assert!(!old.exists(), "the old layout's pins are still there");
    let status = netns.stop_agent().expect("SIGTERM");
    assert_eq!(status.code(), Some(0));
    // --detach-on-exit: nothing attached, nothing pinned.
    assert!(!netns.server_xdp_attached().unwrap());
    assert!(!netns.pin_dir().exists());
}

/// A pinned link whose interface was deleted is cleaned up at start: the
/// next agent on an interface of that name attaches anew.
#[test]
fn pins_of_a_deleted_interface_are_removed_at_start() {
    let (mut netns, _client, path) = start(None);
    netns.kill_agent().expect("kill -9 the agent");
    let ip = |args: &[&str]| {
        let out = std::process::Command::new("ip")
            .args(["-n", &netns.server])
            .args(args)
            .output()
            .expect("running ip");
        assert!(
            out.status.success(),
            "ip {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    // The veth goes (its XDP link with it); one of the same name comes back.
    ip(&["link", "del", SERVER_VETH]);
    ip(&[
        "link",
        "add",
        SERVER_VETH,
        "type",
        "veth",
        "peer",
        "name",
        "fo-orphan0",
    ]);
    ip(&["addr", "add", "198.51.100.1/24", "dev", SERVER_VETH]);
    ip(&["link", "set", SERVER_VETH, "up"]);
    ip(&["link", "set", "fo-orphan0", "up"]);
    assert!(netns.pin_dir().join("link").exists());
    netns
        .start_agent(&path, &["--mode", "front"])
        .expect("starting the agent on the new interface");
    let log = netns.agent_log();
    assert!(
        log.contains("its XDP link's interface no longer exists"),
        "agent log:\n{log}"
    );
    assert!(log.contains("XDP program attached to"), "agent log:\n{log}");
    assert!(netns.server_xdp_attached().unwrap());
    netns.stop_agent().expect("stopping the agent");
}
