//! The agent's HTTP endpoint against real clients: Debian's Prometheus
//! scraping it (and PromQL through Prometheus' API), `promtool check
//! metrics` on a real scrape, headless Chromium on the status page, and
//! hostile clients during a failover. The agent runs in the server
//! namespace of tests/support/netns.rs; so do Prometheus and Chromium, on
//! that namespace's loopback. Needs root (`cargo xtask test`).

use std::{
    io::Write as _,
    net::{Ipv4Addr, SocketAddr, SocketAddrV4},
    path::Path,
    time::{Duration, Instant},
};

use failover_tests::{
    AgentConfig, CheckSpec, DnsClient, Netns,
    dig::dig,
    is_root,
    netns::ENDPOINT_ADDRS,
    poll_until,
    web::{self, Chromium, Prometheus},
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
/// The agent's HTTP endpoint, on the server namespace's loopback.
const HTTP: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9153));

fn require_root() {
    assert!(
        is_root(),
        "the HTTP endpoint tests need root (namespaces, XDP): run `cargo xtask test` as root"
    );
}

/// Namespaces, both endpoints up, the agent answering with the primary.
fn start() -> Netns {
    require_root();
    let mut netns = Netns::new(AGENT).expect("creating the namespaces");
    for endpoint in [PRIMARY, SECONDARY] {
        netns
            .start_endpoint(SocketAddrV4::new(endpoint, PORT))
            .expect("starting an endpoint");
    }
    let config = AgentConfig::failover(
        30,
        &[(PRIMARY, 1), (SECONDARY, 2)],
        CheckSpec::tcp(PORT).timing(INTERVAL, TIMEOUT, RISE, FALL),
    )
    .http("listen", HTTP.to_string())
    .admin("control_socket", control_socket(&netns));
    let path = netns
        .write_config("agent.toml", &config.to_toml())
        .expect("writing the config");
    netns.start_agent(&path, &[]).expect("starting the agent");
    let ready = poll_until(Duration::from_secs(5), Duration::from_millis(50), || {
        Ok(web::get(&netns.server, HTTP, "/readyz", None)
            .is_ok_and(|r| r.status == 200)
            .then_some(()))
    })
    .unwrap();
    assert!(
        ready.is_some(),
        "never ready; agent log:\n{}",
        netns.agent_log()
    );
    netns
}

/// The agent's control socket (for `failover-agent status`).
fn control_socket(netns: &Netns) -> std::path::PathBuf {
    netns.workdir().join("control.sock")
}

fn get(netns: &Netns, path: &str) -> web::Reply {
    web::get(&netns.server, HTTP, path, None)
        .unwrap_or_else(|e| panic!("GET {path}: {e:#}\nagent log:\n{}", netns.agent_log()))
}

/// Polls `promql` until its one value satisfies `want`; the value.
fn until_value(
    netns: &Netns,
    prometheus: &Prometheus,
    promql: &str,
    limit: Duration,
    want: impl Fn(f64) -> bool,
) -> f64 {
    let mut last = None;
    let found = poll_until(limit, Duration::from_millis(200), || {
        last = prometheus.value(promql)?;
        Ok(last.filter(|v| want(*v)))
    })
    .unwrap();
    found.unwrap_or_else(|| {
        panic!(
            "{promql}: last value {last:?} after {limit:?}; targets: {:?}\nprometheus log:\n{}\nagent log:\n{}",
            prometheus.target_health(),
            prometheus.daemon.log(),
            netns.agent_log()
        )
    })
}

#[test]
fn prometheus_scrapes_the_agent_and_sees_the_failover() {
    let mut netns = start();

    // A real scrape in the default format passes promtool with no complaint.
    let scrape = get(&netns, "/metrics");
    assert_eq!(scrape.status, 200);
    assert_eq!(
        scrape.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let (ok, said) = web::promtool_check_metrics(&scrape.body).unwrap();
    assert!(
        ok && said.trim().is_empty(),
        "promtool check metrics: {said}\non:\n{}",
        scrape.body
    );
    for family in [
        "failover_xdp_packets_total",
        "failover_dns_responses_total",
        "failover_endpoint_up",
        "failover_endpoint_state",
        "failover_endpoint_transitions_total",
        "failover_check_duration_seconds",
        "failover_check_results_total",
        "failover_record_answer_addresses",
        "failover_record_all_down",
        "failover_answer_changes_total",
        "failover_config_reloads_total",
        "failover_config_last_reload_success_timestamp_seconds",
        "failover_dataplane_records",
        "failover_dataplane_records_capacity",
        "failover_build_info",
    ] {
        assert!(
            scrape.body.contains(&format!("# TYPE {family} ")),
            "{family} missing:\n{}",
            scrape.body
        );
    }

    let prometheus =
        Prometheus::start(&netns, HTTP, SocketAddr::from((Ipv4Addr::LOCALHOST, 19090)))
            .expect("starting prometheus");
    let up = |endpoint: Ipv4Addr| {
        format!("failover_endpoint_up{{record=\"{NAME}\",type=\"A\",endpoint=\"{endpoint}\"}}")
    };
    let kernel_noerror =
        "failover_dns_responses_total{path=\"kernel\",proto=\"udp\",rcode=\"NOERROR\"}";
    until_value(
        &netns,
        &prometheus,
        &up(PRIMARY),
        Duration::from_secs(10),
        |v| v == 1.0,
    );
    // Prometheus asks for OpenMetrics first: it parsed what it got.
    assert_eq!(
        prometheus.target_health().unwrap(),
        ("up".to_string(), String::new())
    );
    let before = until_value(
        &netns,
        &prometheus,
        kernel_noerror,
        Duration::from_secs(10),
        |_| true,
    );

    // dig over UDP: the kernel answers, and its counter grows by as much.
    const QUERIES: u32 = 20;
    for _ in 0..QUERIES {
        assert_eq!(dig(&netns, "www.example.test", &[]).addrs(), [PRIMARY]);
    }
    let after = until_value(
        &netns,
        &prometheus,
        kernel_noerror,
        Duration::from_secs(10),
        |v| v >= before + f64::from(QUERIES),
    );
    eprintln!("kernel NOERROR answers: {before} -> {after}");
    let tx = prometheus
        .value("sum(failover_xdp_packets_total{verdict=\"tx\"})")
        .unwrap()
        .unwrap();
    assert!(tx >= after, "tx {tx} < NOERROR answers {after}");

    // The primary dies: Prometheus sees it go 1 -> 0, and the transition.
    netns
        .kill_endpoint(SocketAddrV4::new(PRIMARY, PORT))
        .expect("killing the primary");
    let killed = Instant::now();
    until_value(
        &netns,
        &prometheus,
        &up(PRIMARY),
        Duration::from_secs(15),
        |v| v == 0.0,
    );
    eprintln!(
        "Prometheus saw the primary down after {} ms",
        killed.elapsed().as_millis()
    );
    until_value(
        &netns,
        &prometheus,
        &format!(
            "failover_endpoint_transitions_total{{record=\"{NAME}\",endpoint=\"{PRIMARY}\",to=\"unhealthy\"}}"
        ),
        Duration::from_secs(5),
        |v| v == 1.0,
    );
    until_value(
        &netns,
        &prometheus,
        &format!("failover_endpoint_state{{endpoint=\"{PRIMARY}\",state=\"unhealthy\"}}"),
        Duration::from_secs(5),
        |v| v == 1.0,
    );
    assert_eq!(
        prometheus.value(&up(SECONDARY)).unwrap(),
        Some(1.0),
        "the secondary stays up"
    );
    let refused = prometheus
        .value("sum(failover_check_results_total{result=\"failure\",reason=\"refused\"})")
        .unwrap()
        .unwrap_or(0.0);
    assert!(
        refused >= f64::from(FALL),
        "refused checks counted: {refused}"
    );
    assert_eq!(dig(&netns, "www.example.test", &[]).addrs(), [SECONDARY]);

    // And the scrape after all that still passes promtool.
    let (ok, said) = web::promtool_check_metrics(&get(&netns, "/metrics").body).unwrap();
    assert!(ok && said.trim().is_empty(), "promtool: {said}");
}

#[test]
fn status_api_and_cli_show_the_transition_history() {
    let mut netns = start();
    netns
        .kill_endpoint(SocketAddrV4::new(PRIMARY, PORT))
        .expect("killing the primary");
    let mut client = DnsClient::new(
        &netns.client,
        SocketAddrV4::new(failover_tests::DNS_SERVER_ADDR, 53),
    )
    .unwrap();
    let moved = poll_until(Duration::from_secs(10), Duration::from_millis(50), || {
        Ok(client
            .query_a(NAME, Duration::from_millis(200))?
            .filter(|a| a.addrs == [SECONDARY]))
    })
    .unwrap();
    assert!(
        moved.is_some(),
        "no failover; agent log:\n{}",
        netns.agent_log()
    );
    // The snapshot follows within a second or so.
    let status = poll_until(Duration::from_secs(5), Duration::from_millis(100), || {
        let reply = get(&netns, "/api/v1/status");
        assert_eq!(reply.header("content-type"), Some("application/json"));
        let status: serde_json::Value = serde_json::from_str(&reply.body)?;
        let primary = &status["records"][0]["endpoints"][0];
        Ok((primary["state"] == "unhealthy").then_some(status))
    })
    .unwrap()
    .unwrap_or_else(|| panic!("the status never showed the primary down"));
    let record = &status["records"][0];
    assert_eq!(record["name"], NAME);
    assert_eq!(
        record["addresses"],
        serde_json::json!([SECONDARY.to_string()])
    );
    let primary = &record["endpoints"][0];
    let history: Vec<(String, String)> = primary["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["from"].as_str().unwrap().into(),
                t["to"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        history,
        [
            ("unknown".to_string(), "healthy".to_string()),
            ("healthy".to_string(), "unhealthy".to_string())
        ]
    );
    assert!(
        primary["history"][1]["reason"]
            .as_str()
            .unwrap()
            .contains("refused")
    );
    assert_eq!(primary["last_result"], "failure");
    assert!(primary["checks"].as_u64().unwrap() >= u64::from(FALL));
    assert!(primary["latency_ms"].is_number());
    assert_eq!(primary["last_change_at"], primary["history"][1]["at"]);

    // `failover-agent status` prints the same history.
    let out = std::process::Command::new(AGENT)
        .arg("status")
        .arg("--control-socket")
        .arg(control_socket(&netns))
        .stdin(std::process::Stdio::null())
        .output()
        .expect("failover-agent status");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.lines()
            .any(|l| l.contains("healthy -> unhealthy") && l.contains("refused")),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l.contains("unknown -> healthy")),
        "{text}"
    );
}

#[test]
fn status_page_in_chromium_shows_the_failover_without_reloading() {
    let mut netns = start();
    let url = format!("http://{HTTP}/");
    let chromium = Chromium::start(&netns, &url, 19222).expect("starting chromium");
    let mut tab = chromium.tab(&url).expect("the status page's tab");
    let state_of = |endpoint: Ipv4Addr| {
        format!(
            "document.querySelector('tr[data-endpoint=\"{NAME}|A|{endpoint}\"] td.state')?.textContent ?? null"
        )
    };
    let answer = format!(
        "document.querySelector('tr[data-record=\"{NAME}|A\"] td.answer')?.textContent ?? null"
    );
    /// Polls `expr` in the page until it gives `want`.
    fn wait(netns: &Netns, tab: &mut web::Tab, what: &str, expr: &str, want: &str) {
        let mut last = serde_json::Value::Null;
        let found = poll_until(Duration::from_secs(15), Duration::from_millis(200), || {
            last = tab.eval(expr)?;
            Ok((last == want).then_some(()))
        })
        .unwrap();
        assert!(
            found.is_some(),
            "{what}: the page shows {last} (want {want:?})\nagent log:\n{}",
            netns.agent_log()
        );
    }
    wait(
        &netns,
        &mut tab,
        "primary healthy",
        &state_of(PRIMARY),
        "healthy",
    );
    wait(&netns, &mut tab, "answer", &answer, &PRIMARY.to_string());
    // Survives only as long as this document does: a reload would lose it.
    tab.eval("window.failoverTestMarker = 'same document'; true")
        .unwrap();

    netns
        .kill_endpoint(SocketAddrV4::new(PRIMARY, PORT))
        .expect("killing the primary");
    let killed = Instant::now();
    wait(
        &netns,
        &mut tab,
        "primary unhealthy",
        &state_of(PRIMARY),
        "unhealthy",
    );
    wait(
        &netns,
        &mut tab,
        "answer after the failover",
        &answer,
        &SECONDARY.to_string(),
    );
    eprintln!(
        "the page showed the failover after {} ms",
        killed.elapsed().as_millis()
    );
    assert_eq!(
        tab.eval("window.failoverTestMarker ?? null").unwrap(),
        "same document",
        "the page was reloaded"
    );
    let change = tab
        .eval("document.querySelector('#changes tbody tr')?.textContent ?? null")
        .unwrap();
    let change = change.as_str().unwrap_or_default();
    assert!(
        change.contains(&PRIMARY.to_string()) && change.contains("healthy \u{2192} unhealthy"),
        "latest change shown: {change:?}"
    );
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/status-page.png");
    let shot = tab.screenshot(&target).expect("screenshot");
    let size = std::fs::metadata(&shot).unwrap().len();
    assert!(size > 10_000, "{} is {size} bytes", shot.display());
    eprintln!("screenshot: {}", shot.display());
}

#[test]
fn hostile_clients_are_refused_and_do_not_delay_a_failover() {
    let mut netns = start();
    let ns = netns.server.clone();
    assert_eq!(get(&netns, "/nope").status, 404);
    let post = web::exchange(
        &ns,
        HTTP,
        b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    assert_eq!(post.status, 405);
    let huge_head = format!(
        "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Filler: {}\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    assert_eq!(
        web::exchange(&ns, HTTP, huge_head.as_bytes())
            .unwrap()
            .status,
        431
    );
    let huge_body = web::exchange(
        &ns,
        HTTP,
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    assert_eq!(huge_body.status, 413);

    // Every connection slot held by a client that never finishes its
    // request, and more waiting behind them.
    let mut slow = Vec::new();
    for _ in 0..100 {
        let mut stream = web::connect_in(&ns, HTTP).unwrap();
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .unwrap();
        slow.push(stream);
    }
    let mut client = DnsClient::new(
        &netns.client,
        SocketAddrV4::new(failover_tests::DNS_SERVER_ADDR, 53),
    )
    .unwrap();
    netns
        .kill_endpoint(SocketAddrV4::new(PRIMARY, PORT))
        .expect("killing the primary");
    let killed = Instant::now();
    let moved = poll_until(Duration::from_secs(10), Duration::from_millis(20), || {
        Ok(client
            .query_a(NAME, Duration::from_millis(200))?
            .filter(|a| a.addrs == [SECONDARY]))
    })
    .unwrap();
    let took = killed.elapsed();
    assert!(
        moved.is_some(),
        "no failover; agent log:\n{}",
        netns.agent_log()
    );
    // As without them: `fall` checks, one interval apart, and a little slack.
    let limit = INTERVAL * FALL + Duration::from_millis(700);
    assert!(took <= limit, "failover took {took:?} (limit {limit:?})");
    eprintln!(
        "failover with every HTTP slot held: {} ms",
        took.as_millis()
    );
    // The slow clients are cut off, and the endpoint serves again.
    let served = poll_until(Duration::from_secs(15), Duration::from_millis(200), || {
        Ok(web::get(&ns, HTTP, "/healthz", None)
            .ok()
            .filter(|r| r.status == 200))
    })
    .unwrap();
    assert!(
        served.is_some(),
        "never served again after the slow clients"
    );
    drop(slow);
}
