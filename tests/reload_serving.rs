//! Serving goes on through a reload: the agent reads, validates and diffs a
//! new configuration off its async runtime, so userspace answers (here SOA
//! queries, which only userspace answers) keep flowing while a reload waits
//! on a FIFO named as a CA file, and while a file of 10,001 records is
//! loaded and applied. Needs root (`cargo xtask test`).

use std::{
    fs::OpenOptions,
    io::Write as _,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV4},
    os::unix::fs::OpenOptionsExt as _,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use failover_tests::{
    AgentConfig, CheckSpec, DnsClient, EndpointSpec, Netns, RecordSpec, ZoneSpec,
    dig::{UDP, dig_until},
    dns::QueryOptions,
    is_root,
    netns::DNS_SERVER_ADDR,
    poll_until,
};
use hickory_proto::{op::ResponseCode, rr::RecordType};

const AGENT: &str = env!("CARGO_BIN_EXE_failover-agent-under-test");
const ENDPOINT: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
const KEEP: &str = "keep.example.test.";
/// Names of the large configuration (A and AAAA each): 10,000 records, all
/// checked by one probe (one check, one target).
const NAMES: usize = 5000;

/// `keep` alone, plus `extra` records.
fn config(extra: Vec<RecordSpec>, checks: &[(&str, CheckSpec)]) -> String {
    let mut config = AgentConfig::new()
        .zone(
            ZoneSpec::new("example.test.")
                .ttl(30)
                .nameserver("ns1.example.test.", &[IpAddr::V4(DNS_SERVER_ADDR)]),
        )
        .record(RecordSpec::new(KEEP, "A", "failover", "web").endpoint(EndpointSpec::new(ENDPOINT)))
        .records(extra)
        .check("web", CheckSpec::tcp(80));
    for (name, check) in checks {
        config = config.check(name, check.clone());
    }
    config.to_toml()
}

/// A record whose https check reads its CA file from a FIFO.
fn fifo_config(fifo: &Path) -> String {
    let https = CheckSpec::new("https").set("ca_file", fifo.to_str().unwrap());
    let record = RecordSpec::new("tls.example.test.", "A", "failover", "tls")
        .endpoint(EndpointSpec::new(ENDPOINT));
    config(vec![record], &[("tls", https)])
}

/// `NAMES` names with an A and an AAAA record each, probed at one target.
fn large_config() -> String {
    let mut records = Vec::with_capacity(2 * NAMES);
    for i in 0..NAMES {
        let name = format!("h{i}.example.test.");
        records.push(
            RecordSpec::new(&name, "A", "failover", "web").endpoint(EndpointSpec::new(ENDPOINT)),
        );
        let v6 = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10);
        records.push(
            RecordSpec::new(&name, "AAAA", "failover", "web")
                .endpoint(EndpointSpec::new(v6).check_address(ENDPOINT)),
        );
    }
    config(records, &[])
}

/// Sends SOA queries (answered in userspace) back to back and keeps the
/// time of every answer; bounded by `LIMIT`.
struct Sampler {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<(Vec<Instant>, usize)>>,
}

const LIMIT: Duration = Duration::from_secs(90);

impl Sampler {
    fn start(netns: &Netns) -> Sampler {
        let mut client =
            DnsClient::new(&netns.client, SocketAddrV4::new(DNS_SERVER_ADDR, 53)).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let started = Instant::now();
            let (mut answers, mut lost) = (Vec::new(), 0);
            while !flag.load(Ordering::Relaxed) && started.elapsed() < LIMIT {
                let answer = client.query(
                    "example.test.",
                    RecordType::SOA,
                    QueryOptions::default(),
                    Duration::from_millis(200),
                );
                match answer {
                    Ok(Some(a)) if a.rcode == ResponseCode::NoError => answers.push(Instant::now()),
                    _ => lost += 1,
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            (answers, lost)
        });
        Sampler {
            stop,
            thread: Some(thread),
        }
    }

    /// The longest time without an answer, and the queries not answered.
    fn stop(mut self) -> (Duration, usize, usize) {
        self.stop.store(true, Ordering::Relaxed);
        let (answers, lost) = self.thread.take().unwrap().join().unwrap();
        let gap = answers
            .windows(2)
            .map(|w| w[1] - w[0])
            .max()
            .unwrap_or(Duration::MAX);
        (gap, answers.len(), lost)
    }
}

/// The agent with `keep` alone, answering; and its configuration file.
fn start() -> (Netns, PathBuf) {
    let mut netns = Netns::new(AGENT).expect("creating the namespaces");
    netns
        .start_endpoint(SocketAddrV4::new(ENDPOINT, 80))
        .expect("starting the endpoint");
    let path = netns
        .write_config("agent.toml", &config(vec![], &[]))
        .unwrap();
    netns.start_agent(&path, &[]).expect("starting the agent");
    dig_until(&netns, KEEP, &[UDP], "with its endpoint", |d| {
        d.addrs() == [ENDPOINT]
    });
    (netns, path)
}

/// A FIFO in the work directory: reading it waits for a writer.
fn fifo(netns: &Netns) -> PathBuf {
    let fifo = netns.workdir().join("ca.fifo");
    let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo(3) on a NUL-terminated path in our own work directory.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    fifo
}

fn sighup(netns: &Netns) {
    let pid = netns.agent_pid().expect("the agent runs");
    // SAFETY: kill(2) on the pid of the agent, our own running child.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGHUP) }, 0);
}

fn wait_for_log(netns: &Netns, needle: &str, within: Duration) {
    poll_until(within, Duration::from_millis(20), || {
        Ok(netns.agent_log().contains(needle).then_some(()))
    })
    .unwrap()
    .unwrap_or_else(|| {
        panic!(
            "no {needle:?} in the agent's log within {within:?}:\n{}",
            netns.agent_log()
        )
    });
}

#[test]
fn userspace_answers_flow_through_a_blocked_and_a_large_reload() {
    assert!(
        is_root(),
        "needs root (namespaces, veth, XDP): run `cargo xtask test`"
    );
    let (netns, _) = start();
    // A CA file that is a FIFO: reading it waits for a writer.
    let fifo = fifo(&netns);
    let sampler = Sampler::start(&netns);
    std::thread::sleep(Duration::from_millis(300));
    netns
        .write_config("agent.toml", &fifo_config(&fifo))
        .unwrap();
    sighup(&netns);
    std::thread::sleep(Duration::from_secs(3));
    // Let a reader that waits on the FIFO go on (it reads no certificate).
    if let Ok(mut writer) = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo)
    {
        let _ = writer.write_all(b"not a certificate\n");
    }
    wait_for_log(&netns, "reload refused", Duration::from_secs(40));
    let (fifo_gap, fifo_answered, fifo_lost) = sampler.stop();

    let sampler = Sampler::start(&netns);
    std::thread::sleep(Duration::from_millis(300));
    netns.write_config("agent.toml", &large_config()).unwrap();
    sighup(&netns);
    wait_for_log(&netns, "reload: 10001 records", Duration::from_secs(40));
    let last = format!("h{}.example.test.", NAMES - 1);
    dig_until(&netns, &last, &[UDP], "with its endpoint", |d| {
        d.addrs() == [ENDPOINT]
    });
    let (large_gap, large_answered, large_lost) = sampler.stop();

    eprintln!(
        "reload blocked on a FIFO: longest gap {fifo_gap:?}, {fifo_answered} answered, {fifo_lost} unanswered; \
         reload of {} records: longest gap {large_gap:?}, {large_answered} answered, {large_lost} unanswered",
        2 * NAMES + 1
    );
    // Before, the FIFO froze userspace answers until it was written (3 s
    // here) and a large file stalled them for hundreds of milliseconds.
    for (what, gap, lost) in [
        ("a reload blocked on a FIFO", fifo_gap, fifo_lost),
        ("a reload of 10,001 records", large_gap, large_lost),
    ] {
        assert!(
            gap < Duration::from_millis(1000),
            "{what}: userspace answers stopped for {gap:?} ({lost} queries unanswered)"
        );
    }
}

/// Hostile or careless files: each is refused by `check-config` (exit 2,
/// naming what is wrong) and by a reload of a running agent, which goes on
/// answering as before.
#[test]
fn hostile_configs_are_refused_by_check_config_and_by_reload() {
    assert!(
        is_root(),
        "needs root (namespaces, veth, XDP): run `cargo xtask test`"
    );
    let (mut netns, path) = start();
    let good = config(vec![], &[]);
    let fifo = fifo(&netns);
    let with_check = |check: CheckSpec| {
        let record = RecordSpec::new("x.example.test.", "A", "failover", "x")
            .endpoint(EndpointSpec::new(ENDPOINT));
        config(vec![record], &[("x", check)])
    };
    let many_names: Vec<RecordSpec> = (0..5462)
        .map(|i| {
            RecordSpec::new(&format!("n{i}.example.test."), "A", "failover", "web")
                .endpoint(EndpointSpec::new(ENDPOINT))
        })
        .collect();
    let hostile: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "an interval of 400000000000 years",
            with_check(CheckSpec::tcp(80).set("interval", "400000000000y")).into_bytes(),
            "interval",
        ),
        (
            "a CA file that never ends",
            with_check(CheckSpec::new("https").set("ca_file", "/dev/zero")).into_bytes(),
            "not a regular file",
        ),
        (
            "a CA file that is a FIFO",
            with_check(CheckSpec::new("https").set("ca_file", fifo.to_str().unwrap())).into_bytes(),
            "not a regular file",
        ),
        (
            "a command with a NUL byte",
            with_check(CheckSpec::new("exec").set("command", vec!["/bin/true\u{0}x"])).into_bytes(),
            "NUL",
        ),
        (
            "a megabyte of address",
            good.replace("192.0.2.10", &"9".repeat(1 << 20))
                .into_bytes(),
            "bytes)",
        ),
        (
            "bytes that are not UTF-8",
            [good.as_bytes(), b"\n# \xff\xfe\n"].concat(),
            "not UTF-8",
        ),
        (
            "more names than the kernel holds",
            config(many_names, &[]).into_bytes(),
            "at most 5461 names",
        ),
    ];
    for (done, (what, text, says)) in hostile.iter().enumerate() {
        let file = netns.workdir().join("hostile.toml");
        std::fs::write(&file, text).unwrap();
        let out = std::process::Command::new(AGENT)
            .args(["check-config", "--config", file.to_str().unwrap()])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{what}: check-config: {stderr}");
        assert!(stderr.contains(says), "{what}: {stderr:?} lacks {says:?}");
        assert!(
            stderr.len() < 4096,
            "{what}: {} bytes of error",
            stderr.len()
        );

        std::fs::write(&path, text).unwrap();
        sighup(&netns);
        poll_until(Duration::from_secs(40), Duration::from_millis(20), || {
            Ok((netns.agent_log().matches("reload refused").count() > done).then_some(()))
        })
        .unwrap()
        .unwrap_or_else(|| panic!("{what}: no refusal in the log:\n{}", netns.agent_log()));
        assert!(netns.agent_running().unwrap(), "{what}: the agent died");
        let answer = failover_tests::dig::dig(&netns, KEEP, UDP);
        assert_eq!(answer.addrs(), [ENDPOINT], "{what}: {answer:?}");
    }
}
