//! `[[notify]]` hooks and the JSON log.
//!
//! Without root: the hooks themselves ([`Notifier`]) against a webhook
//! receiver on 127.0.0.1 (order, retries, a full queue dropping its oldest,
//! a reload replacing hooks, https verified) and against commands (environment, stdin,
//! `max_running`, the timeout killing the process group).
//!
//! With root: the agent in its namespace with a webhook receiver there: one
//! event per transition, in order, through the receiver's first failures;
//! a receiver that never answers does not delay the failover; and with
//! `--log-format json` every log line is JSON with the stable fields.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddrV4},
    path::{Path, PathBuf},
    time::{Duration, Instant, SystemTime},
};

use failover_agent::{
    config::{Config, notify::Hook},
    events::{AnswerChange, EndpointState, Event, Observer as _, Override, Transition},
    notify::Notifier,
};
use failover_tests::{
    AgentConfig, CheckSpec, DnsClient, Netns, is_root,
    netns::ENDPOINT_ADDRS,
    poll_until,
    webhook::{Behaviour, Received, WebhookReceiver},
};

const AGENT: &str = env!("CARGO_BIN_EXE_failover-agent-under-test");

// ----- the hooks, without the agent ----------------------------------------

const BASE: &str = r#"
[[zone]]
origin = "example.test."
[[record]]
name = "www.example.test."
type = "A"
policy = "failover"
check = "web"
endpoints = [{ address = "192.0.2.1" }]
[checks.web]
kind = "tcp"
port = 80
"#;

fn hooks(notify: &str) -> Vec<Hook> {
    Config::parse(&format!("{BASE}{notify}"), "test.toml")
        .unwrap_or_else(|e| panic!("{e}"))
        .notify
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Transition number `n`: its reason says which.
fn transition(n: usize) -> Event {
    Event::Transition(Transition {
        at: SystemTime::now(),
        record: "www.example.test.".into(),
        rtype: "A".into(),
        endpoint: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
        from: EndpointState::Healthy,
        to: EndpointState::Unhealthy,
        reason: format!("event {n}"),
    })
}

fn reason(body: &serde_json::Value) -> &str {
    body["reason"].as_str().unwrap_or_default()
}

fn counters(notifier: &Notifier) -> failover_agent::notify::CountersSnapshot {
    notifier.counters()[0].1.snapshot()
}

fn wait_counters(
    notifier: &Notifier,
    limit: Duration,
    done: impl Fn(&failover_agent::notify::CountersSnapshot) -> bool,
) -> failover_agent::notify::CountersSnapshot {
    poll_until(limit, Duration::from_millis(20), || {
        let now = counters(notifier);
        Ok(done(&now).then_some(now))
    })
    .unwrap()
    .unwrap_or_else(|| panic!("counters now: {:?}", counters(notifier)))
}

#[test]
fn webhook_gets_every_event_once_in_order_through_retries() {
    let receiver = WebhookReceiver::start(Behaviour::FailFirst(2)).unwrap();
    let runtime = runtime();
    let notifier = Notifier::new(runtime.handle().clone());
    notifier.configure(&hooks(&format!(
        r#"
[[notify]]
kind = "webhook"
url = "{}"
retries = 3
backoff = "50ms"
headers = {{ Authorization = "Bearer s3cr3t" }}
"#,
        receiver.url("/hook?token=t")
    )));
    for n in 0..5 {
        notifier.observe(&transition(n));
    }
    // Not subscribed (the default is transitions and answer changes).
    notifier.observe(&Event::Reload(failover_agent::events::Reload {
        at: SystemTime::now(),
        error: None,
        changes: None,
    }));
    notifier.observe(&transition(5));
    receiver
        .wait_for(Duration::from_secs(10), |r| {
            r.iter().filter(|r| r.status == Some(200)).count() == 6
        })
        .unwrap();
    let received = receiver.received();
    // The first event three times (503, 503, 200), then one request each.
    assert_eq!(received.len(), 8, "{received:#?}");
    assert_eq!(received[0].body, received[1].body);
    assert_eq!(received[1].body, received[2].body);
    let accepted = receiver.accepted();
    let reasons: Vec<&str> = accepted.iter().map(reason).collect();
    assert_eq!(
        reasons,
        [
            "event 0", "event 1", "event 2", "event 3", "event 4", "event 5"
        ]
    );
    let body = &accepted[0];
    for key in [
        "record",
        "type",
        "endpoint",
        "from",
        "to",
        "reason",
        "host",
        "agent_version",
    ] {
        assert!(body[key].is_string(), "{key} in {body}");
    }
    assert_eq!(body["event"], "transition");
    assert_eq!(body["from"], "healthy");
    assert_eq!(body["to"], "unhealthy");
    assert!(body["at"].as_f64().unwrap() > 1.7e9, "{body}");
    assert!(!body["host"].as_str().unwrap().is_empty());
    let header = |r: &Received, name: &str| {
        r.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(
        header(&received[2], "content-type").as_deref(),
        Some("application/json")
    );
    assert_eq!(
        header(&received[2], "authorization").as_deref(),
        Some("Bearer s3cr3t")
    );
    let c = wait_counters(&notifier, Duration::from_secs(2), |c| c.delivered == 6);
    assert_eq!((c.queued, c.retried, c.failed, c.dropped), (6, 2, 0, 0));
}

#[test]
fn a_full_queue_drops_the_oldest_and_never_blocks() {
    let receiver = WebhookReceiver::start(Behaviour::Hang).unwrap();
    let runtime = runtime();
    let notifier = Notifier::new(runtime.handle().clone());
    notifier.configure(&hooks(&format!(
        r#"
[[notify]]
kind = "webhook"
url = "{}"
queue = 3
retries = 0
timeout = "300ms"
"#,
        receiver.url("/")
    )));
    notifier.observe(&transition(0));
    receiver
        .wait_for(Duration::from_secs(5), |r| r.len() == 1)
        .unwrap();
    // Event 0 is in flight, hanging: 1..=9 fill the queue of 3.
    let started = Instant::now();
    for n in 1..=9 {
        notifier.observe(&transition(n));
    }
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(200),
        "observing took {took:?} with a receiver that never answers"
    );
    let c = counters(&notifier);
    assert_eq!((c.queued, c.dropped), (10, 6));
    let c = wait_counters(&notifier, Duration::from_secs(10), |c| c.failed == 4);
    assert_eq!((c.delivered, c.dropped), (0, 6));
    let reasons: Vec<String> = receiver
        .received()
        .iter()
        .map(|r| reason(&serde_json::from_str(&r.body).unwrap()).to_string())
        .collect();
    assert_eq!(reasons, ["event 0", "event 7", "event 8", "event 9"]);
}

#[test]
fn a_reload_replaces_changed_hooks_and_keeps_the_others() {
    let a = WebhookReceiver::start(Behaviour::FailFirst(0)).unwrap();
    let b = WebhookReceiver::start(Behaviour::FailFirst(0)).unwrap();
    let runtime = runtime();
    let notifier = Notifier::new(runtime.handle().clone());
    let hook = |url: String| format!("[[notify]]\nkind = \"webhook\"\nurl = \"{url}\"\n");
    notifier.configure(&hooks(&hook(a.url("/"))));
    notifier.observe(&transition(0));
    a.wait_for(Duration::from_secs(5), |r| r.len() == 1)
        .unwrap();
    notifier.configure(&hooks(&hook(b.url("/"))));
    notifier.observe(&transition(1));
    b.wait_for(Duration::from_secs(5), |r| r.len() == 1)
        .unwrap();
    // Unchanged settings: the same hook goes on (its counters too).
    notifier.configure(&hooks(&hook(b.url("/"))));
    notifier.observe(&transition(2));
    b.wait_for(Duration::from_secs(5), |r| r.len() == 2)
        .unwrap();
    assert_eq!(counters(&notifier).delivered, 2);
    assert_eq!(a.received().len(), 1, "the removed hook got nothing more");
    let reasons: Vec<String> = b.accepted().iter().map(|v| reason(v).to_string()).collect();
    assert_eq!(reasons, ["event 1", "event 2"]);
}

#[test]
fn https_webhooks_verify_the_receiver() {
    let dir = TempDir::new("https");
    let cert = failover_tests::certs::SelfSigned::create(
        &dir.0,
        "hooks.example.test",
        &[],
        &["127.0.0.1".parse().unwrap()],
    )
    .unwrap();
    let receiver = WebhookReceiver::start_tls(Behaviour::FailFirst(0), &cert).unwrap();
    let url = format!("https://{}/hook", receiver.addr());
    let runtime = runtime();
    // Trusting the receiver's certificate: delivered.
    let trusting = Notifier::new(runtime.handle().clone());
    trusting.configure(&hooks(&format!(
        "[[notify]]\nkind = \"webhook\"\nurl = \"{url}\"\nca_file = \"{}\"\n",
        cert.cert.display()
    )));
    trusting.observe(&transition(0));
    receiver
        .wait_for(Duration::from_secs(10), |r| r.len() == 1)
        .unwrap();
    assert_eq!(reason(&receiver.accepted()[0]), "event 0");
    // The built-in web roots do not know it: refused, nothing received.
    let wary = Notifier::new(runtime.handle().clone());
    wary.configure(&hooks(&format!(
        "[[notify]]\nkind = \"webhook\"\nurl = \"{url}\"\nretries = 0\n"
    )));
    wary.observe(&transition(1));
    wait_counters(&wary, Duration::from_secs(10), |c| c.failed == 1);
    assert_eq!(receiver.received().len(), 1);
}

#[test]
fn a_hook_removed_by_a_reload_stops_retrying() {
    let receiver = WebhookReceiver::start(Behaviour::FailFirst(usize::MAX)).unwrap();
    let runtime = runtime();
    let notifier = Notifier::new(runtime.handle().clone());
    notifier.configure(&hooks(&format!(
        "[[notify]]\nkind = \"webhook\"\nurl = \"{}\"\nretries = 50\nbackoff = \"2s\"\n",
        receiver.url("/")
    )));
    let counters = notifier.counters()[0].1.clone();
    notifier.observe(&transition(0));
    receiver
        .wait_for(Duration::from_secs(5), |r| r.len() == 1)
        .unwrap();
    // Within the first backoff: the hook is gone when it ends.
    notifier.configure(&[]);
    assert!(notifier.counters().is_empty());
    poll_until(Duration::from_secs(10), Duration::from_millis(20), || {
        Ok((counters.snapshot().failed == 1).then_some(()))
    })
    .unwrap()
    .expect("given up once the hook was removed");
    assert_eq!(counters.snapshot().retried, 0);
    assert_eq!(receiver.received().len(), 1, "no attempt after the reload");
}

/// A directory of its own for one test, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("failover-notify-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn exec_hook(dir: &Path, script: &str, extra: &str) -> Vec<Hook> {
    hooks(&format!(
        "[[notify]]\nkind = \"exec\"\ncommand = [\"/bin/sh\", \"-c\", {script:?}, \"{}\"]\n{extra}\n",
        dir.display()
    ))
}

fn env_file(path: &Path) -> std::collections::BTreeMap<String, String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn exec_gets_the_event_in_its_environment_and_on_stdin() {
    let dir = TempDir::new("env");
    let runtime = runtime();
    let notifier = Notifier::new(runtime.handle().clone());
    // $0 is the directory (the argument after the script).
    notifier.configure(&exec_hook(
        &dir.0,
        r#"env | grep '^FAILOVER_' > "$0/$FAILOVER_EVENT.env"; cat > "$0/$FAILOVER_EVENT.json""#,
        "",
    ));
    notifier.observe(&transition(7));
    // Not subscribed: no command runs for it.
    notifier.observe(&Event::Override(Override {
        at: SystemTime::now(),
        record: "www.example.test.".into(),
        rtype: "A".into(),
        endpoint: "192.0.2.1".parse().unwrap(),
        mode: Some("drain"),
        until: None,
        origin: "control socket".into(),
    }));
    notifier.observe(&Event::AnswerChange(AnswerChange {
        at: SystemTime::now(),
        record: "www.example.test.".into(),
        rtype: "A".into(),
        answer: "192.0.2.2".into(),
        previous: Some("192.0.2.1".into()),
        addresses: vec!["192.0.2.2".parse().unwrap()],
        ttl: 30,
        all_down: false,
        degraded: false,
    }));
    let c = wait_counters(&notifier, Duration::from_secs(10), |c| c.delivered == 2);
    assert_eq!(c.failed, 0);
    let env = env_file(&dir.0.join("transition.env"));
    for (key, value) in [
        ("FAILOVER_EVENT", "transition"),
        ("FAILOVER_RECORD", "www.example.test."),
        ("FAILOVER_TYPE", "A"),
        ("FAILOVER_ENDPOINT", "192.0.2.1"),
        ("FAILOVER_FROM", "healthy"),
        ("FAILOVER_TO", "unhealthy"),
        ("FAILOVER_REASON", "event 7"),
    ] {
        assert_eq!(
            env.get(key).map(String::as_str),
            Some(value),
            "{key}: {env:?}"
        );
    }
    assert!(!env["FAILOVER_HOST"].is_empty());
    assert!(env["FAILOVER_TIME"].parse::<f64>().unwrap() > 1.7e9);
    let stdin: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.0.join("transition.json")).unwrap())
            .unwrap();
    let json: serde_json::Value = serde_json::from_str(&env["FAILOVER_JSON"]).unwrap();
    assert_eq!(stdin, json, "the same JSON on stdin and in FAILOVER_JSON");
    assert_eq!(json["reason"], "event 7");
    let env = env_file(&dir.0.join("answer_change.env"));
    for (key, value) in [
        ("FAILOVER_EVENT", "answer_change"),
        ("FAILOVER_ANSWER", "192.0.2.2"),
        ("FAILOVER_PREVIOUS", "192.0.2.1"),
        ("FAILOVER_ADDRESSES", "192.0.2.2"),
        ("FAILOVER_TTL", "30"),
        ("FAILOVER_ALL_DOWN", "false"),
    ] {
        assert_eq!(
            env.get(key).map(String::as_str),
            Some(value),
            "{key}: {env:?}"
        );
    }
    assert!(!dir.0.join("override.env").exists());
}

#[test]
fn exec_runs_at_most_max_running_at_once() {
    let dir = TempDir::new("max-running");
    let runtime = runtime();
    let notifier = Notifier::new(runtime.handle().clone());
    notifier.configure(&exec_hook(
        &dir.0,
        r#"echo start >> "$0/log"; sleep 0.3; echo end >> "$0/log""#,
        "max_running = 2",
    ));
    for n in 0..6 {
        notifier.observe(&transition(n));
    }
    wait_counters(&notifier, Duration::from_secs(15), |c| c.delivered == 6);
    let log = std::fs::read_to_string(dir.0.join("log")).unwrap();
    let (mut running, mut most) = (0i32, 0i32);
    for line in log.lines() {
        running += if line == "start" { 1 } else { -1 };
        most = most.max(running);
    }
    assert_eq!(log.lines().count(), 12, "{log}");
    assert_eq!(most, 2, "at most 2 at once, and 2 did run together:\n{log}");
}

#[test]
fn exec_over_its_timeout_is_killed_with_its_children() {
    let dir = TempDir::new("timeout");
    let runtime = runtime();
    let notifier = Notifier::new(runtime.handle().clone());
    notifier.configure(&exec_hook(
        &dir.0,
        r#"sleep 30 & echo $! > "$0/child.pid"; wait"#,
        "timeout = \"300ms\"",
    ));
    let started = Instant::now();
    notifier.observe(&transition(0));
    wait_counters(&notifier, Duration::from_secs(10), |c| c.failed == 1);
    assert!(started.elapsed() < Duration::from_secs(5));
    let pid: u32 = std::fs::read_to_string(dir.0.join("child.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // The command's own child (same process group) is gone too.
    let gone = poll_until(Duration::from_secs(3), Duration::from_millis(20), || {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat.rsplit(')').next().unwrap_or("").trim_start();
        Ok((stat.is_empty() || state.starts_with('Z')).then_some(()))
    })
    .unwrap();
    assert!(gone.is_some(), "the command's child {pid} still runs");
}

// ----- the agent, in its namespace ------------------------------------------

const NAME: &str = "www.example.test.";
const PORT: u16 = 80;
const PRIMARY: Ipv4Addr = ENDPOINT_ADDRS[0];
const SECONDARY: Ipv4Addr = ENDPOINT_ADDRS[1];
const INTERVAL: Duration = Duration::from_millis(300);
const TIMEOUT: Duration = Duration::from_millis(200);
const FALL: u32 = 3;

fn require_root() {
    assert!(
        is_root(),
        "these tests need root (namespaces, veth, XDP): run `cargo xtask test` as root"
    );
}

/// Namespaces, both endpoints up, and the agent with `notify` appended to
/// its configuration (`notify` gets the namespace's name).
fn start(extra: &[&str], notify: impl FnOnce(&Netns) -> String) -> (Netns, DnsClient) {
    require_root();
    let mut netns = Netns::new(AGENT).expect("creating the namespaces");
    netns
        .start_endpoint(SocketAddrV4::new(PRIMARY, PORT))
        .unwrap();
    netns
        .start_endpoint(SocketAddrV4::new(SECONDARY, PORT))
        .unwrap();
    let config = AgentConfig::failover(
        30,
        &[(PRIMARY, 1), (SECONDARY, 2)],
        CheckSpec::tcp(PORT).timing(INTERVAL, TIMEOUT, 2, FALL),
    );
    let toml = format!("{}\n{}", config.to_toml(), notify(&netns));
    let path = netns.write_config("agent.toml", &toml).unwrap();
    netns.start_agent(&path, extra).expect("starting the agent");
    let client = netns.dns_client().unwrap();
    (netns, client)
}

/// Kills the primary and returns how long until the answer is the secondary.
fn fail_over(netns: &mut Netns, client: &mut DnsClient) -> Duration {
    let answered = |client: &mut DnsClient, want: Ipv4Addr| {
        client
            .query_a(NAME, Duration::from_millis(200))
            .ok()
            .flatten()
            .is_some_and(|a| a.addrs == [want])
    };
    let up = poll_until(Duration::from_secs(10), Duration::from_millis(50), || {
        Ok(answered(client, PRIMARY).then_some(()))
    })
    .unwrap();
    assert!(
        up.is_some(),
        "no answer with the primary:\n{}",
        netns.agent_log()
    );
    let killed = Instant::now();
    netns
        .kill_endpoint(SocketAddrV4::new(PRIMARY, PORT))
        .unwrap();
    let moved = poll_until(Duration::from_secs(10), Duration::from_millis(20), || {
        Ok(answered(client, SECONDARY).then_some(killed.elapsed()))
    })
    .unwrap();
    moved.unwrap_or_else(|| panic!("no failover:\n{}", netns.agent_log()))
}

#[test]
fn the_agent_posts_each_transition_once_in_order_and_logs_json() {
    let mut receiver = None;
    let (mut netns, mut client) = start(&["--log-format", "json"], |netns| {
        let r = WebhookReceiver::start_in_netns(&netns.server, Behaviour::FailFirst(2)).unwrap();
        let url = r.url("/failover");
        receiver = Some(r);
        format!(
            "[[notify]]\nkind = \"webhook\"\nurl = \"{url}\"\nbackoff = \"100ms\"\nretries = 5\n"
        )
    });
    let receiver = receiver.unwrap();
    fail_over(&mut netns, &mut client);
    let is_down = |v: &serde_json::Value| {
        v["event"] == "transition" && v["endpoint"] == PRIMARY.to_string() && v["to"] == "unhealthy"
    };
    receiver
        .wait_for(Duration::from_secs(10), |r| {
            r.iter().filter(|r| r.status == Some(200)).any(|r| {
                let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
                v["event"] == "answer_change" && v["answer"] == SECONDARY.to_string()
            })
        })
        .unwrap();
    let received = receiver.received();
    assert_eq!(
        received.iter().filter(|r| r.status == Some(503)).count(),
        2,
        "{received:#?}"
    );
    assert_eq!(
        received[0].body, received[2].body,
        "the first event is retried"
    );
    let events = receiver.accepted();
    let shown: Vec<String> = events
        .iter()
        .map(|v| {
            format!(
                "{} {} {}",
                v["event"].as_str().unwrap(),
                v["endpoint"]
                    .as_str()
                    .unwrap_or(v["answer"].as_str().unwrap_or("")),
                v["to"].as_str().unwrap_or("")
            )
        })
        .collect();
    // First checks: both endpoints unknown -> healthy (in either order),
    // the first answer; then the failover: one transition, one answer.
    assert_eq!(shown.len(), 5, "{shown:#?}");
    let mut first: Vec<&String> = shown[..2].iter().collect();
    first.sort();
    assert_eq!(
        first,
        [
            &format!("transition {PRIMARY} healthy"),
            &format!("transition {SECONDARY} healthy")
        ]
    );
    assert_eq!(shown[2], format!("answer_change {PRIMARY} "));
    assert!(is_down(&events[3]), "{shown:#?}");
    assert_eq!(events[3]["from"], "healthy");
    assert_eq!(shown[4], format!("answer_change {SECONDARY} "));
    assert_eq!(events[4]["previous"], PRIMARY.to_string());
    assert_eq!(events[4]["record"], NAME);
    assert_eq!(events[4]["type"], "A");

    // The log: every line a JSON object; the same transition as one event
    // with the stable fields.
    let log = netns.agent_log();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect();
    for line in &lines {
        for key in ["timestamp", "level", "target", "message"] {
            assert!(line[key].is_string(), "{key} in {line}");
        }
    }
    let downs: Vec<&serde_json::Value> = lines.iter().filter(|l| is_down(l)).collect();
    assert_eq!(downs.len(), 1, "one log event for the transition:\n{log}");
    let down = downs[0];
    assert_eq!(down["record"], NAME);
    assert_eq!(down["type"], "A");
    assert_eq!(down["from"], "healthy");
    assert!(
        down["reason"]
            .as_str()
            .unwrap()
            .contains("connection refused"),
        "{down}"
    );
    assert!(
        down["message"]
            .as_str()
            .unwrap()
            .contains("healthy -> unhealthy"),
        "{down}"
    );
    let answers: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["event"] == "answer_change" && l["answer"] == SECONDARY.to_string())
        .collect();
    assert_eq!(answers.len(), 1, "{log}");
    assert_eq!(answers[0]["ttl"], 30);
    assert_eq!(answers[0]["all_down"], false);
    assert_eq!(answers[0]["previous"], PRIMARY.to_string());
    let status = netns.stop_agent().unwrap();
    assert_eq!(status.code(), Some(0), "{}", netns.agent_log());
}

#[test]
fn a_receiver_that_never_answers_does_not_delay_the_failover() {
    let mut receiver = None;
    let (mut netns, mut client) = start(&[], |netns| {
        let r = WebhookReceiver::start_in_netns(&netns.server, Behaviour::Hang).unwrap();
        let url = r.url("/");
        receiver = Some(r);
        format!(
            "[[notify]]\nkind = \"webhook\"\nurl = \"{url}\"\ntimeout = \"1h\"\nretries = 100\nqueue = 2\n"
        )
    });
    let receiver = receiver.unwrap();
    // The hook is stuck on its first event by now.
    receiver
        .wait_for(Duration::from_secs(10), |r| !r.is_empty())
        .unwrap();
    let took = fail_over(&mut netns, &mut client);
    // The same bound as without hooks (tests/e2e_failover.rs).
    let bound = INTERVAL * FALL + Duration::from_secs(1);
    eprintln!(
        "failover after {} ms with a dead receiver",
        took.as_millis()
    );
    assert!(
        took <= bound,
        "failover took {took:?} (bound {bound:?}):\n{}",
        netns.agent_log()
    );
    assert_eq!(
        receiver.received().len(),
        1,
        "one request in flight, never answered"
    );
    let log = netns.agent_log();
    assert!(log.contains("queue full"), "the drops are logged:\n{log}");
    let status = netns.stop_agent().unwrap();
    assert_eq!(status.code(), Some(0), "{log}");
}
