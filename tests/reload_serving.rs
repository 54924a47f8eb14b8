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
    path::Path,
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
    let mut netns = Netns::new(AGENT).expect("creating the namespaces");
    netns
        .start_endpoint(SocketAddrV4::new(ENDPOINT, 80))
        .expect("starting the endpoint");
    let path = netns
        .write_config("agent.toml", &config(vec![], &[]))
        .unwrap();
    let pid_file = netns.workdir().join("agent.pid");
    netns
        .start_agent(&path, &["--pid-file", pid_file.to_str().unwrap()])
        .expect("starting the agent");
    dig_until(&netns, KEEP, &[UDP], "with its endpoint", |d| {
        d.addrs() == [ENDPOINT]
    });

    // A CA file that is a FIFO: reading it waits for a writer.
    let fifo = netns.workdir().join("ca.pem");
    let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo(3) on a NUL-terminated path in our own work directory.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
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
