//! `[cluster]`: three agents, each in its own namespace, agreeing on health
//! through a real etcd (Debian's etcd-server) in a core namespace that also
//! holds the endpoints. Needs root.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use failover_tests::cluster::ClusterNet;
use failover_tests::{AgentConfig, CheckSpec, poll_until};

const PRIMARY: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
const SECONDARY: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 11);
const PORT: u16 = 8080;
const INTERVAL: Duration = Duration::from_millis(200);
const FALL: u32 = 3;
const LEASE_TTL: Duration = Duration::from_secs(2);

fn agent() -> &'static str {
    env!("CARGO_BIN_EXE_failover-agent-under-test")
}

fn check() -> CheckSpec {
    CheckSpec::tcp(PORT).timing(INTERVAL, Duration::from_millis(150), 2, FALL)
}

/// The record every node serves; with `cluster`, node `i` joins through
/// its gateway with `quorum`.
fn config(net: &ClusterNet, i: usize, cluster: Option<(&str, i64)>) -> String {
    let mut config = AgentConfig::failover(5, &[(PRIMARY, 1), (SECONDARY, 2)], check());
    if let Some((quorum, checkers)) = cluster {
        config = config
            .cluster("etcd", vec![net.etcd_url(i)])
            .cluster("node", net.nodes[i].name.as_str())
            .cluster("quorum", quorum)
            .cluster("lease_ttl", LEASE_TTL)
            .cluster("checkers", checkers);
    }
    config.to_toml()
}

/// Three nodes, etcd, both endpoints up.
fn setup() -> Result<ClusterNet> {
    let mut net = ClusterNet::new(agent(), 3)?;
    for addr in [PRIMARY, SECONDARY] {
        net.add_endpoint_address(addr)?;
        net.start_endpoint(SocketAddr::from((addr, PORT)))?;
    }
    net.start_etcd()?;
    Ok(net)
}

fn start_all(net: &mut ClusterNet, cluster: Option<(&str, i64)>) -> Result<()> {
    for i in 0..net.nodes.len() {
        let text = config(net, i, cluster);
        net.start_agent(i, &text)?;
    }
    Ok(())
}

/// What node `i` answers for www.example.test. A (empty: no answer).
fn answer(net: &ClusterNet, i: usize) -> Result<Vec<Ipv4Addr>> {
    let mut client = net.dns_client(i)?;
    Ok(client
        .query_a("www.example.test.", Duration::from_millis(200))?
        .map(|a| a.addrs)
        .unwrap_or_default())
}

/// Waits until node `i` answers `want`; how long it took.
fn wait_answer(net: &ClusterNet, i: usize, want: &[Ipv4Addr], limit: Duration) -> Result<Duration> {
    let start = Instant::now();
    let mut client = net.dns_client(i)?;
    let got = poll_until(limit, Duration::from_millis(10), || {
        let a = client.query_a("www.example.test.", Duration::from_millis(100))?;
        Ok(a.filter(|a| a.addrs == want).map(|_| ()))
    })?;
    if got.is_none() {
        bail!(
            "{} does not answer {want:?} after {limit:?} (answers {:?}); its log:\n{}",
            net.nodes[i].name,
            answer(net, i)?,
            net.agent_log(i)
        );
    }
    Ok(start.elapsed())
}

fn wait_all(net: &ClusterNet, want: &[Ipv4Addr], limit: Duration) -> Result<()> {
    for i in 0..net.nodes.len() {
        wait_answer(net, i, want, limit)?;
    }
    Ok(())
}

/// Asserts every node answers `want` throughout `span`.
fn hold_all(net: &ClusterNet, want: &[Ipv4Addr], span: Duration) -> Result<()> {
    let end = Instant::now() + span;
    let mut clients = (0..net.nodes.len())
        .map(|i| net.dns_client(i))
        .collect::<Result<Vec<_>>>()?;
    while Instant::now() < end {
        for (i, client) in clients.iter_mut().enumerate() {
            let got = client
                .query_a("www.example.test.", Duration::from_millis(500))?
                .context("no answer")?;
            if got.addrs != want {
                bail!(
                    "{} answers {:?}, not {want:?}; its log:\n{}",
                    net.nodes[i].name,
                    got.addrs,
                    net.agent_log(i)
                );
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

#[test]
fn primary_dies_and_every_node_answers_the_secondary() -> Result<()> {
    let mut net = setup()?;
    start_all(&mut net, Some(("majority", 0)))?;
    wait_all(&net, &[PRIMARY], Duration::from_secs(10))?;

    let died = Instant::now();
    net.kill_endpoint(SocketAddr::from((PRIMARY, PORT)))?;
    // Each node in turn, polling until it answers the secondary: the time
    // from the death to each node's switch.
    let mut clients = (0..3)
        .map(|i| net.dns_client(i))
        .collect::<Result<Vec<_>>>()?;
    let mut switched: Vec<Option<Duration>> = vec![None; 3];
    while switched.iter().any(Option::is_none) && died.elapsed() < Duration::from_secs(10) {
        for (i, client) in clients.iter_mut().enumerate() {
            if switched[i].is_none()
                && let Some(a) = client.query_a("www.example.test.", Duration::from_millis(50))?
                && a.addrs == [SECONDARY]
            {
                switched[i] = Some(died.elapsed());
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let switched: Vec<Duration> = switched
        .into_iter()
        .enumerate()
        .map(|(i, s)| s.with_context(|| format!("ns{} never answered the secondary", i + 1)))
        .collect::<Result<_>>()?;
    let first = *switched.iter().min().expect("three");
    let last = *switched.iter().max().expect("three");
    eprintln!(
        "failover after the primary's death: first node {first:?}, last {last:?}, spread {:?}",
        last - first
    );
    // interval x fall after the death, jitter and the probe's timing aside.
    let goal = INTERVAL * FALL + Duration::from_millis(300);
    assert!(
        last <= goal + INTERVAL,
        "the last node switched {last:?} after the death (goal {goal:?})"
    );
    hold_all(&net, &[SECONDARY], Duration::from_secs(1))?;

    // Back: every node answers the primary again.
    net.start_endpoint(SocketAddr::from((PRIMARY, PORT)))?;
    wait_all(&net, &[PRIMARY], Duration::from_secs(5))?;
    Ok(())
}

#[test]
fn one_nodes_cut_path_moves_no_answer_with_majority() -> Result<()> {
    let mut net = setup()?;
    start_all(&mut net, Some(("majority", 0)))?;
    wait_all(&net, &[PRIMARY], Duration::from_secs(10))?;
    net.blackhole(0, PRIMARY, true)?;
    // ns1's own probe fails (its log says so), but 2 of 3 see the primary.
    let seen = poll_until(Duration::from_secs(5), Duration::from_millis(50), || {
        let status = status(&net, 0)?;
        let primary = &status["records"][0]["endpoints"][0];
        Ok((primary["votes"]["ns1"] == "unhealthy").then_some(()))
    })?;
    assert!(
        seen.is_some(),
        "ns1's status never shows its own observation as unhealthy:\n{}",
        String::from_utf8_lossy(&net.control(0, &["status"])?.stdout)
    );
    hold_all(&net, &[PRIMARY], INTERVAL * FALL * 3)?;
    net.blackhole(0, PRIMARY, false)?;

    // The same cut without [cluster]: ns1 alone fails over.
    for i in 0..3 {
        net.stop_agent(i)?;
    }
    start_all(&mut net, None)?;
    wait_all(&net, &[PRIMARY], Duration::from_secs(10))?;
    net.blackhole(0, PRIMARY, true)?;
    let alone = wait_answer(&net, 0, &[SECONDARY], Duration::from_secs(5))?;
    eprintln!(
        "without [cluster]: ns1 fails over alone after {alone:?} while ns2 and ns3 answer the primary"
    );
    assert_eq!(answer(&net, 1)?, [PRIMARY]);
    assert_eq!(answer(&net, 2)?, [PRIMARY]);
    Ok(())
}

#[test]
fn a_killed_nodes_votes_go_with_its_lease() -> Result<()> {
    let mut net = setup()?;
    start_all(&mut net, Some(("majority", 0)))?;
    wait_all(&net, &[PRIMARY], Duration::from_secs(10))?;
    let live = |net: &ClusterNet, i: usize| -> Result<Vec<String>> {
        Ok(status(net, i)?["cluster"]["live"]
            .as_array()
            .context("no cluster.live in the status")?
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect())
    };
    let all = poll_until(Duration::from_secs(5), Duration::from_millis(50), || {
        Ok((live(&net, 1)?.len() == 3).then_some(()))
    })?;
    assert!(
        all.is_some(),
        "ns2 does not see 3 live nodes: {:?}",
        live(&net, 1)?
    );

    let killed = Instant::now();
    net.kill_agent(2)?;
    let gone = poll_until(LEASE_TTL * 3, Duration::from_millis(20), || {
        Ok((live(&net, 0)? == ["ns1", "ns2"]).then(|| killed.elapsed()))
    })?
    .context("ns3 still live after 3 x lease_ttl")?;
    eprintln!("ns3's votes gone {gone:?} after kill -9 (lease_ttl {LEASE_TTL:?})");
    assert!(
        gone >= LEASE_TTL - Duration::from_millis(500),
        "gone before its lease could expire: {gone:?}"
    );
    assert!(
        gone <= LEASE_TTL + Duration::from_secs(2),
        "gone only after {gone:?}"
    );
    // The others answer throughout.
    hold_all_of(&net, &[0, 1], &[PRIMARY], Duration::from_millis(500))?;
    // And with two nodes left, a real failure is still followed.
    net.kill_endpoint(SocketAddr::from((PRIMARY, PORT)))?;
    for i in [0, 1] {
        wait_answer(&net, i, &[SECONDARY], Duration::from_secs(5))?;
    }
    // ns3 comes back under its name and votes again.
    let text = config(&net, 2, Some(("majority", 0)));
    net.start_agent(2, &text)?;
    let back = poll_until(Duration::from_secs(5), Duration::from_millis(50), || {
        Ok((live(&net, 0)?.len() == 3).then_some(()))
    })?;
    assert!(back.is_some(), "ns3 did not rejoin:\n{}", net.agent_log(2));
    wait_answer(&net, 2, &[SECONDARY], Duration::from_secs(5))?;
    Ok(())
}

#[test]
fn a_second_agent_with_a_node_name_in_use_does_not_join() -> Result<()> {
    let mut net = setup()?;
    for i in 0..2 {
        let text = config(&net, i, Some(("majority", 0)));
        net.start_agent(i, &text)?;
    }
    wait_answer(&net, 0, &[PRIMARY], Duration::from_secs(10))?;
    // Node 3's namespace, ns1's name.
    let text = config(&net, 2, Some(("majority", 0))).replace("node = \"ns3\"", "node = \"ns1\"");
    assert!(text.contains("node = \"ns1\""), "{text}");
    net.start_agent(2, &text)?;
    let refused = poll_until(LEASE_TTL * 2, Duration::from_millis(50), || {
        Ok(net
            .agent_log(2)
            .contains("node name \"ns1\" is held by another lease")
            .then_some(()))
    })?;
    assert!(refused.is_some(), "{}", net.agent_log(2));
    // It decides alone; the cluster goes on with the first ns1 and ns2.
    let alone = poll_until(LEASE_TTL * 2, Duration::from_millis(50), || {
        Ok((status(&net, 2)?["cluster"]["standing"] == "alone").then_some(()))
    })?;
    assert!(alone.is_some(), "{}", net.agent_log(2));
    assert_eq!(
        status(&net, 0)?["cluster"]["live"],
        serde_json::json!(["ns1", "ns2"])
    );
    wait_answer(&net, 2, &[PRIMARY], Duration::from_secs(2))?;
    Ok(())
}

/// Node `i`'s `failover-agent status --json`, the status object.
fn status(net: &ClusterNet, i: usize) -> Result<serde_json::Value> {
    let out = net.control(i, &["status", "--json"])?;
    let mut json: serde_json::Value = serde_json::from_slice(&out.stdout)
        .with_context(|| String::from_utf8_lossy(&out.stderr).into_owned())?;
    Ok(json["status"].take())
}

fn hold_all_of(net: &ClusterNet, nodes: &[usize], want: &[Ipv4Addr], span: Duration) -> Result<()> {
    let end = Instant::now() + span;
    while Instant::now() < end {
        for &i in nodes {
            let got = answer(net, i)?;
            if got != want {
                bail!("{} answers {got:?}, not {want:?}", net.nodes[i].name);
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

#[test]
fn without_etcd_each_node_follows_its_own_checks_and_agrees_again_after() -> Result<()> {
    let mut net = setup()?;
    // ns1 tells a hook about its standing: joined, alone, joined again.
    let told = net.workdir().join("standing.log");
    for i in 0..3 {
        let mut text = config(&net, i, Some(("majority", 0)));
        if i == 0 {
            text.push_str(&format!(
                "\n[[notify]]\nkind = \"exec\"\nevents = [\"cluster\"]\ncommand = [\"/bin/sh\", \"-c\", \"echo \\\"$FAILOVER_EVENT $FAILOVER_NODE $FAILOVER_FROM $FAILOVER_TO\\\" >> {}\"]\n",
                told.display()
            ));
        }
        net.start_agent(i, &text)?;
    }
    wait_all(&net, &[PRIMARY], Duration::from_secs(10))?;
    let standing = |net: &ClusterNet, i: usize| -> Result<String> {
        Ok(status(net, i)?["cluster"]["standing"]
            .as_str()
            .unwrap_or_default()
            .to_string())
    };

    net.kill_etcd()?;
    let stopped = Instant::now();
    // Answering throughout, from the last agreed view, then alone.
    hold_all(&net, &[PRIMARY], LEASE_TTL + Duration::from_millis(500))?;
    for i in 0..3 {
        let alone = poll_until(Duration::from_secs(3), Duration::from_millis(50), || {
            Ok((standing(&net, i)? == "alone").then(|| stopped.elapsed()))
        })?;
        let alone =
            alone.with_context(|| format!("ns{} is not alone:\n{}", i + 1, net.agent_log(i)))?;
        assert!(
            alone >= LEASE_TTL - Duration::from_millis(300),
            "alone after only {alone:?}"
        );
        // One line, the standing's event.
        assert!(
            net.agent_log(i).contains(
                "WARN  failover_agent::events] cluster: no answer from etcd for 2s (lease_ttl): deciding from this node's own checks"
            ),
            "{}",
            net.agent_log(i)
        );
    }
    // A drain needs etcd: refused, saying so and how to drain this node
    // alone; with --local it applies here only, marked local.
    let primary = PRIMARY.to_string();
    let out = net.control(0, &["drain", "www.example.test.", &primary])?;
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "a drain without etcd succeeded");
    assert!(
        said.contains("etcd is unreachable") && said.contains("--local"),
        "{said}"
    );
    eprintln!("drain without etcd: {}", said.trim());
    assert_eq!(answer(&net, 0)?, [PRIMARY], "nothing changed");
    let out = net.control(0, &["drain", "--local", "www.example.test.", &primary])?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_answer(&net, 0, &[SECONDARY], Duration::from_secs(1))?;
    let drained = &status(&net, 0)?["records"][0]["endpoints"][0];
    assert_eq!(
        (&drained["admin"], &drained["admin_scope"]),
        (&"drain".into(), &"local".into()),
        "{drained}"
    );
    assert!(
        String::from_utf8_lossy(&net.control(0, &["status"])?.stdout).contains("drain (local)")
    );
    hold_all_of(&net, &[1, 2], &[PRIMARY], Duration::from_millis(300))?;
    let out = net.control(0, &["undrain", "--local", "www.example.test.", &primary])?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_answer(&net, 0, &[PRIMARY], Duration::from_secs(1))?;

    // A real failure is followed on each node's own view, and the recovery.
    net.kill_endpoint(SocketAddr::from((PRIMARY, PORT)))?;
    wait_all(&net, &[SECONDARY], Duration::from_secs(5))?;
    net.start_endpoint(SocketAddr::from((PRIMARY, PORT)))?;
    wait_all(&net, &[PRIMARY], Duration::from_secs(5))?;

    // etcd back: every node joins again and sees all three.
    net.start_etcd()?;
    for i in 0..3 {
        let joined = poll_until(Duration::from_secs(10), Duration::from_millis(50), || {
            let status = status(&net, i)?;
            Ok((status["cluster"]["standing"] == "joined"
                && status["cluster"]["live"].as_array().map(Vec::len) == Some(3))
            .then_some(()))
        })?;
        assert!(
            joined.is_some(),
            "ns{} did not rejoin:\n{}",
            i + 1,
            net.agent_log(i)
        );
        assert!(
            net.agent_log(i)
                .contains("INFO  failover_agent::events] cluster: rejoined etcd as node"),
            "{}",
            net.agent_log(i)
        );
    }
    let hooked = poll_until(Duration::from_secs(3), Duration::from_millis(50), || {
        let text = std::fs::read_to_string(&told).unwrap_or_default();
        Ok((text.lines().count() >= 3).then_some(text))
    })?
    .unwrap_or_else(|| std::fs::read_to_string(&told).unwrap_or_default());
    assert_eq!(
        hooked.lines().collect::<Vec<_>>(),
        [
            "cluster ns1 joining joined",
            "cluster ns1 joined alone",
            "cluster ns1 alone joined"
        ],
        "{}",
        net.agent_log(0)
    );
    // And decide together again: a failure moves all three.
    net.kill_endpoint(SocketAddr::from((PRIMARY, PORT)))?;
    wait_all(&net, &[SECONDARY], Duration::from_secs(5))?;
    Ok(())
}

#[test]
fn with_one_checker_each_endpoint_is_probed_once_and_taken_over() -> Result<()> {
    use failover_tests::CountingListener;
    let mut net = ClusterNet::new(agent(), 3)?;
    let mut listeners = Vec::new();
    for addr in [PRIMARY, SECONDARY] {
        net.add_endpoint_address(addr)?;
        listeners.push(CountingListener::in_netns(
            &net.core,
            SocketAddr::from((addr, PORT)),
        )?);
    }
    net.start_etcd()?;
    start_all(&mut net, Some(("majority", 1)))?;
    wait_all(&net, &[PRIMARY], Duration::from_secs(10))?;
    // Settled: each endpoint has exactly one checker in everyone's view.
    let checkers_of = |net: &ClusterNet, e: usize, nodes: &[usize]| -> Result<Vec<String>> {
        let mut here = Vec::new();
        for &i in nodes {
            if status(net, i)?["records"][0]["endpoints"][e]["checked_here"] == true {
                here.push(net.nodes[i].name.clone());
            }
        }
        Ok(here)
    };
    for e in 0..2 {
        let one = poll_until(Duration::from_secs(5), Duration::from_millis(50), || {
            Ok((checkers_of(&net, e, &[0, 1, 2])?.len() == 1).then_some(()))
        })?;
        assert!(
            one.is_some(),
            "endpoint {e}: checkers {:?}",
            checkers_of(&net, e, &[0, 1, 2])?
        );
    }
    let span = Duration::from_secs(2);
    let one_checker = span.as_millis() / INTERVAL.as_millis();
    for (listener, addr) in listeners.iter().zip([PRIMARY, SECONDARY]) {
        let n = listener.count_over(span);
        eprintln!(
            "checkers = 1: {addr} probed {n} times in {span:?} (one checker: about {one_checker})"
        );
        assert!(
            (one_checker as u64 / 2..=one_checker as u64 * 3 / 2).contains(&n),
            "{addr}: {n} probes in {span:?}, one checker makes about {one_checker}"
        );
    }

    // The primary's checker dies: another takes it over once its lease is gone.
    let checker = checkers_of(&net, 0, &[0, 1, 2])?[0].clone();
    let dead = net
        .nodes
        .iter()
        .position(|n| n.name == checker)
        .expect("a node");
    let others: Vec<usize> = (0..3).filter(|i| *i != dead).collect();
    net.kill_agent(dead)?;
    let killed = Instant::now();
    let taken = poll_until(LEASE_TTL * 3, Duration::from_millis(20), || {
        Ok((checkers_of(&net, 0, &others)?.len() == 1).then(|| killed.elapsed()))
    })?
    .context("nobody took the primary over")?;
    eprintln!("{checker}'s endpoint taken over {taken:?} after kill -9 (lease_ttl {LEASE_TTL:?})");
    assert!(
        taken <= LEASE_TTL + Duration::from_secs(1),
        "taken over only after {taken:?}"
    );
    std::thread::sleep(INTERVAL * 2);
    let n = listeners[0].count_over(span);
    assert!(
        (one_checker as u64 / 2..=one_checker as u64 * 3 / 2).contains(&n),
        "after the takeover: {n} probes in {span:?}"
    );
    hold_all_of(&net, &others, &[PRIMARY], Duration::from_millis(500))?;
    Ok(())
}

#[test]
fn a_drain_on_one_node_shows_on_all_within_a_second() -> Result<()> {
    let mut net = setup()?;
    start_all(&mut net, Some(("majority", 0)))?;
    wait_all(&net, &[PRIMARY], Duration::from_secs(10))?;
    let out = net.control(0, &["drain", "www.example.test.", &PRIMARY.to_string()])?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let drained = Instant::now();
    for i in 0..3 {
        wait_answer(
            &net,
            i,
            &[SECONDARY],
            Duration::from_secs(1).saturating_sub(drained.elapsed()),
        )?;
        assert_eq!(
            status(&net, i)?["records"][0]["endpoints"][0]["admin"],
            "drain"
        );
    }
    eprintln!(
        "drain on ns1 answered by all three after {:?}",
        drained.elapsed()
    );
    let out = net.control(1, &["undrain", "www.example.test.", &PRIMARY.to_string()])?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_all(&net, &[PRIMARY], Duration::from_secs(1))?;

    // A drain with an end: every node ends it, and its key leaves etcd.
    let overrides = |net: &ClusterNet| -> Result<String> {
        let out = net.etcdctl(&["get", "/failover/overrides/", "--prefix", "--keys-only"])?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    // Before the command: the agent stamps the end after this.
    let asked = Instant::now();
    let out = net.control(
        2,
        &[
            "drain",
            "www.example.test.",
            &PRIMARY.to_string(),
            "--for",
            "2s",
        ],
    )?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_all(&net, &[SECONDARY], Duration::from_secs(1))?;
    assert_eq!(
        overrides(&net)?,
        format!("/failover/overrides/www.example.test./{PRIMARY}")
    );
    wait_all(&net, &[PRIMARY], Duration::from_secs(4))?;
    let gone = poll_until(Duration::from_secs(4), Duration::from_millis(50), || {
        Ok(overrides(&net)?.is_empty().then(|| asked.elapsed()))
    })?
    .with_context(|| {
        format!(
            "the expired drain stays in etcd: {}",
            overrides(&net).unwrap_or_default()
        )
    })?;
    eprintln!("a 2s drain's key deleted from etcd {gone:?} after the drain was asked for");
    // Never early: the stored end is rounded up to the second.
    assert!(gone >= Duration::from_secs(2), "deleted early: {gone:?}");
    let deleted_by = (0..3)
        .filter(|&i| net.agent_log(i).contains("expired at"))
        .count();
    assert_eq!(
        deleted_by, 1,
        "one node deletes it, the others' compare fails"
    );
    Ok(())
}

#[test]
fn foreign_and_bad_keys_under_the_prefix_are_ignored() -> Result<()> {
    let mut net = setup()?;
    start_all(&mut net, Some(("majority", 0)))?;
    wait_all(&net, &[PRIMARY], Duration::from_secs(10))?;
    let key = format!("/failover/health/ns1/probe/{PRIMARY}:{PORT}");
    for (k, v) in [
        // A bad value in a node's own place: not a vote.
        (key.as_str(), "down"),
        // Votes of nodes that are not live (no lease, no nodes/ key).
        (
            &format!("/failover/health/ns8/probe/{PRIMARY}:{PORT}"),
            "unhealthy",
        ),
        (
            &format!("/failover/health/ns9/probe/{PRIMARY}:{PORT}"),
            "unhealthy",
        ),
        ("/failover/something/else", "x"),
        (
            "/failover/overrides/www.example.test./192.0.2.10",
            "drain please",
        ),
    ] {
        let out = net.etcdctl(&["put", k, v])?;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    hold_all(&net, &[PRIMARY], Duration::from_secs(1))?;
    for i in 0..3 {
        let log = net.agent_log(i);
        for k in [
            &key[..],
            "/failover/something/else",
            "/failover/overrides/www.example.test./192.0.2.10",
        ] {
            assert!(
                log.contains(&format!("ignoring etcd key \"{k}\"")),
                "ns{} did not warn about {k}:\n{log}",
                i + 1
            );
        }
    }
    // ns1 wrote its own observation back.
    let back = poll_until(Duration::from_secs(2), Duration::from_millis(50), || {
        let out = net.etcdctl(&["get", &key, "--print-value-only"])?;
        Ok((String::from_utf8_lossy(&out.stdout).trim() == "healthy").then_some(()))
    })?;
    assert!(
        back.is_some(),
        "ns1's observation was not written again:\n{}",
        net.agent_log(0)
    );
    let primary = &status(&net, 1)?["records"][0]["endpoints"][0];
    assert_eq!(primary["health"], "healthy", "{primary}");
    assert_eq!(
        primary["votes"].as_object().map(|v| v.len()),
        Some(3),
        "{primary}"
    );
    Ok(())
}

#[test]
fn a_reload_observes_new_endpoints_and_withdraws_removed_ones() -> Result<()> {
    const THIRD: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 12);
    let mut net = setup()?;
    start_all(&mut net, Some(("majority", 0)))?;
    wait_all(&net, &[PRIMARY], Duration::from_secs(10))?;
    let with = |net: &ClusterNet, i: usize, endpoints: &[(Ipv4Addr, u32)]| {
        AgentConfig::failover(5, endpoints, check())
            .cluster("etcd", vec![net.etcd_url(i)])
            .cluster("node", net.nodes[i].name.as_str())
            .cluster("lease_ttl", LEASE_TTL)
            .to_toml()
    };
    // A third endpoint nothing serves; the secondary goes.
    for i in 0..3 {
        let mut text = with(&net, i, &[(PRIMARY, 1), (THIRD, 3)]);
        if i == 0 {
            // [cluster] is last: this key goes in it. Not applied, said so.
            text.push_str("quorum = \"any\"\n");
        }
        net.reload_agent(i, &text)?;
    }
    let third = |net: &ClusterNet, i: usize| -> Result<serde_json::Value> {
        let status = status(net, i)?;
        Ok(status["records"][0]["endpoints"][1].clone())
    };
    for i in 0..3 {
        let seen = poll_until(Duration::from_secs(5), Duration::from_millis(50), || {
            let e = third(&net, i)?;
            Ok((e["address"] == THIRD.to_string()
                && e["votes"].as_object().map(|v| v.len()) == Some(3)
                && e["quorum"] == "unhealthy (0 of 3)")
                .then_some(()))
        })?;
        assert!(
            seen.is_some(),
            "ns{}: {}\n{}",
            i + 1,
            third(&net, i)?,
            net.agent_log(i)
        );
        assert!(net.agent_running(i), "ns{} died at the reload", i + 1);
    }
    assert!(
        net.agent_log(0).contains(
            "reload: [cluster] changed (cluster.quorum): the cluster settings change only on a restart; the running ones stay"
        ),
        "{}",
        net.agent_log(0)
    );
    assert_eq!(status(&net, 0)?["cluster"]["quorum"], "majority");
    assert!(!net.agent_log(1).contains("reload: [cluster]"));
    // Nobody observes the secondary any more: its observations are gone.
    let gone = poll_until(Duration::from_secs(3), Duration::from_millis(50), || {
        let out = net.etcdctl(&["get", "/failover/health/", "--prefix", "--keys-only"])?;
        let keys = String::from_utf8_lossy(&out.stdout).into_owned();
        Ok(
            (!keys.contains(&SECONDARY.to_string()) && keys.contains(&THIRD.to_string()))
                .then_some(()),
        )
    })?;
    assert!(gone.is_some(), "the secondary's observations stay in etcd");
    hold_all(&net, &[PRIMARY], Duration::from_millis(500))?;
    Ok(())
}

/// etcd over https with client certificates required, and auth on: the
/// agents' user may only read and write the prefix.
#[test]
fn agents_agree_through_etcd_over_tls_with_a_user_and_password() -> Result<()> {
    use failover_tests::certs::Ca;
    use failover_tests::cluster::EtcdTls;
    let mut net = ClusterNet::new(agent(), 3)?;
    for addr in [PRIMARY, SECONDARY] {
        net.add_endpoint_address(addr)?;
        net.start_endpoint(SocketAddr::from((addr, PORT)))?;
    }
    let pki = net.workdir().join("pki");
    std::fs::create_dir_all(&pki)?;
    let ca = Ca::create(&pki, "etcd-ca")?;
    let server = ca.issue(&pki, "etcd-server", "etcd", &net.etcd_addresses())?;
    let root = ca.issue(&pki, "root-client", "root", &[])?;
    let client = ca.issue(&pki, "agent-client", "failover", &[])?;
    // Another CA, with the same names: trusting it instead is a mistake.
    let stranger = Ca::create(&pki, "stranger-ca")?;
    net.use_etcd_tls(EtcdTls {
        ca: ca.cert.clone(),
        server_cert: server.cert.clone(),
        server_key: server.key.clone(),
        client_cert: root.cert.clone(),
        client_key: root.key.clone(),
    });
    net.start_etcd()?;
    for args in [
        &["user", "add", "root:root-secret"][..],
        &["user", "grant-role", "root", "root"],
        &["role", "add", "failover"],
        &[
            "role",
            "grant-permission",
            "failover",
            "--prefix=true",
            "readwrite",
            "/failover/",
        ],
        &["user", "add", "failover:agent-secret"],
        &["user", "grant-role", "failover", "failover"],
        &["auth", "enable"],
    ] {
        let out = net.etcdctl(args)?;
        assert!(
            out.status.success(),
            "etcdctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    net.set_etcdctl_user(Some("root:root-secret"));
    let path = |p: &std::path::Path| p.display().to_string();
    let tls_config = |net: &ClusterNet, i: usize, password: &str, ca: &std::path::Path| {
        AgentConfig::failover(5, &[(PRIMARY, 1), (SECONDARY, 2)], check())
            .cluster("etcd", vec![net.etcd_url(i)])
            .cluster("node", net.nodes[i].name.as_str())
            .cluster("lease_ttl", LEASE_TTL)
            .cluster("user", "failover")
            .cluster("password", password)
            .cluster(
                "tls",
                failover_tests::config::Value::table([
                    ("ca", path(ca)),
                    ("cert", path(&client.cert)),
                    ("key", path(&client.key)),
                ]),
            )
            .to_toml()
    };
    for i in 0..2 {
        let text = tls_config(&net, i, "agent-secret", &ca.cert);
        net.start_agent(i, &text)?;
    }
    for i in 0..2 {
        let joined = poll_until(Duration::from_secs(10), Duration::from_millis(50), || {
            let status = status(&net, i)?;
            Ok((status["cluster"]["standing"] == "joined"
                && status["cluster"]["live"].as_array().map(Vec::len) == Some(2))
            .then_some(()))
        })?;
        assert!(
            joined.is_some(),
            "ns{} did not join over TLS:\n{}",
            i + 1,
            net.agent_log(i)
        );
        wait_answer(&net, i, &[PRIMARY], Duration::from_secs(10))?;
    }
    // Their observations are in etcd, written as the agents' user.
    let out = net.etcdctl(&["get", "/failover/health/", "--prefix", "--keys-only"])?;
    let keys = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        keys.contains("/failover/health/ns1/") && keys.contains("/failover/health/ns2/"),
        "{keys}"
    );
    // A failover through it: both nodes move.
    net.kill_endpoint(SocketAddr::from((PRIMARY, PORT)))?;
    for i in 0..2 {
        wait_answer(&net, i, &[SECONDARY], Duration::from_secs(5))?;
        let both = poll_until(Duration::from_secs(2), Duration::from_millis(50), || {
            let primary = &status(&net, i)?["records"][0]["endpoints"][0];
            Ok((primary["quorum"] == "unhealthy (0 of 2)").then_some(()))
        })?;
        assert!(both.is_some(), "{}", status(&net, i)?);
    }

    // A wrong password: the agent says which setting, decides alone, runs on.
    let text = tls_config(&net, 2, "not-the-secret", &ca.cert);
    net.start_agent(2, &text)?;
    let said = poll_until(LEASE_TTL * 3, Duration::from_millis(50), || {
        Ok(net
            .agent_log(2)
            .lines()
            .find(|l| l.contains("cluster.password"))
            .map(str::to_string))
    })?;
    let said =
        said.with_context(|| format!("no word of cluster.password:\n{}", net.agent_log(2)))?;
    eprintln!("wrong password: {said}");
    let alone = poll_until(LEASE_TTL * 2, Duration::from_millis(50), || {
        Ok((status(&net, 2)?["cluster"]["standing"] == "alone").then_some(()))
    })?;
    assert!(alone.is_some(), "{}", net.agent_log(2));
    wait_answer(&net, 2, &[SECONDARY], Duration::from_secs(5))?;
    assert!(net.agent_running(2));
    net.stop_agent(2)?;

    // A CA that did not sign etcd's certificate.
    let text = tls_config(&net, 2, "agent-secret", &stranger.cert);
    net.start_agent(2, &text)?;
    let said = poll_until(LEASE_TTL * 3, Duration::from_millis(50), || {
        Ok(net
            .agent_log(2)
            .lines()
            .find(|l| l.contains("cluster.tls.ca"))
            .map(str::to_string))
    })?;
    let said = said.with_context(|| format!("no word of cluster.tls.ca:\n{}", net.agent_log(2)))?;
    eprintln!("untrusted CA: {said}");
    assert!(net.agent_running(2));
    // The two that joined are untouched.
    assert_eq!(
        status(&net, 0)?["cluster"]["live"],
        serde_json::json!(["ns1", "ns2"])
    );
    Ok(())
}

#[test]
fn nodes_with_different_configurations_are_told_apart() -> Result<()> {
    let mut net = setup()?;
    for i in 0..3 {
        let mut text = config(&net, i, Some(("majority", 0)));
        if i == 1 {
            // ns2 fails over after 4 failures, the others after 3.
            text = text.replace(&format!("fall = {FALL}"), &format!("fall = {}", FALL + 1));
            assert!(text.contains(&format!("fall = {}", FALL + 1)), "{text}");
        }
        net.start_agent(i, &text)?;
    }
    wait_all(&net, &[PRIMARY], Duration::from_secs(10))?;
    let mismatch = |net: &ClusterNet, i: usize| -> Result<serde_json::Value> {
        Ok(status(net, i)?["cluster"]["config_mismatch"].clone())
    };
    let seen = poll_until(Duration::from_secs(5), Duration::from_millis(50), || {
        Ok((mismatch(&net, 0)? == serde_json::json!(["ns2"])
            && mismatch(&net, 1)? == serde_json::json!(["ns1", "ns3"]))
        .then_some(()))
    })?;
    assert!(
        seen.is_some(),
        "ns1: {}, ns2: {}",
        mismatch(&net, 0)?,
        mismatch(&net, 1)?
    );
    let digest = |net: &ClusterNet, i: usize| -> Result<String> {
        Ok(status(net, i)?["cluster"]["config_digest"]
            .as_str()
            .unwrap_or_default()
            .to_string())
    };
    assert_eq!(digest(&net, 0)?, digest(&net, 2)?);
    assert_ne!(digest(&net, 0)?, digest(&net, 1)?);
    // Logged once, naming both nodes, on both sides.
    let warning = |of: &str, here: &str| {
        format!("cluster: node {of}'s configuration differs from this node's ({here})")
    };
    assert_eq!(net.agent_log(0).matches(&warning("ns2", "ns1")).count(), 1);
    assert_eq!(net.agent_log(1).matches(&warning("ns1", "ns2")).count(), 1);
    assert_eq!(net.agent_log(1).matches(&warning("ns3", "ns2")).count(), 1);
    assert!(!net.agent_log(0).contains(&warning("ns3", "ns1")));
    // The same in the HTTP API and on /metrics.
    let http = SocketAddr::from(([127, 0, 0, 1], 9153));
    // Both read the status the agent publishes once a second.
    let shown = poll_until(Duration::from_secs(3), Duration::from_millis(100), || {
        let api = failover_tests::web::get(&net.nodes[0].netns, http, "/api/v1/status", None)?;
        let api: serde_json::Value = serde_json::from_str(&api.body)?;
        Ok((api["cluster"]["config_mismatch"] == serde_json::json!(["ns2"])).then_some(()))
    })?;
    assert!(shown.is_some(), "/api/v1/status of ns1 shows no mismatch");
    let mut last = String::new();
    let counted = poll_until(Duration::from_secs(3), Duration::from_millis(100), || {
        last = failover_tests::web::get(&net.nodes[1].netns, http, "/metrics", None)?.body;
        Ok(last
            .contains("\nfailover_cluster_config_mismatch 2\n")
            .then_some(()))
    })?;
    assert!(counted.is_some(), "{last}");
    // ns2 reloads the others' configuration: they agree again.
    let text = config(&net, 1, Some(("majority", 0)));
    net.reload_agent(1, &text)?;
    let agreed = poll_until(Duration::from_secs(5), Duration::from_millis(50), || {
        Ok((mismatch(&net, 0)?.is_null() && mismatch(&net, 1)?.is_null()).then_some(()))
    })?;
    assert!(agreed.is_some(), "{}", net.agent_log(1));
    assert!(
        net.agent_log(0)
            .contains("cluster: node ns2's configuration no longer differs from this node's (ns1)")
    );
    Ok(())
}
