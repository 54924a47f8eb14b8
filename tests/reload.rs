//! Reload through the real binary: the agent runs in a server namespace
//! (XDP on the veth, the userspace responder on port 53), `dig` and two
//! samplers (UDP, answered by the kernel; TCP, answered in userspace) query
//! it from the client namespace while its configuration file is edited and
//! reloaded by SIGHUP and by `failover-agent reload --pid-file`. Asserts that
//! added records appear, removed ones are withdrawn (NXDOMAIN) and their
//! checks stop, a changed check interval takes effect, unchanged records
//! answer the same on every single query throughout, and an invalid file
//! changes nothing. Needs root (`cargo xtask test`).

use std::{
    io::{Read as _, Write as _},
    net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream},
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use failover_tests::{
    AgentConfig, CheckSpec, CountingListener, EndpointSpec, Netns, RecordSpec, ZoneSpec,
    dig::{Dig, TCP, UDP, dig, dig_until},
    dns::{DnsAnswer, QueryOptions, build_query},
    in_netns, is_root,
    netns::DNS_SERVER_ADDR,
    poll_until,
};
use hickory_proto::{
    op::{Message, ResponseCode},
    rr::{RData, RecordType},
};

const AGENT: &str = env!("CARGO_BIN_EXE_failover-agent-under-test");
const LIMIT: Duration = Duration::from_secs(5);

/// keep.example.test.: primary and backup, both up, unchanged by every reload.
const KEEP_A: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
const KEEP_B: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 11);
/// old.example.test.'s endpoint (a counting listener: are its checks running?).
const OLD: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 12);
/// tuned.example.test.'s endpoint on port 8080 (a counting listener: how often is it checked?).
const TUNED: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 13);
const TUNED_PORT: u16 = 8080;
/// new.example.test.'s endpoint (a demo endpoint).
const NEW: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 14);

const KEEP: &str = "keep.example.test.";
const OLD_NAME: &str = "old.example.test.";
const NEW_NAME: &str = "new.example.test.";
const TUNED_NAME: &str = "tuned.example.test.";

/// The configuration: `keep` always, `old` and/or `new` as asked, `tuned`
/// checked every `tuned_interval_ms`.
fn config(old: bool, new: bool, tuned_interval_ms: u64) -> String {
    let single = |name: &str, check: &str, address: Ipv4Addr| {
        RecordSpec::new(name, "A", "failover", check).endpoint(EndpointSpec::new(address))
    };
    let mut records = vec![
        RecordSpec::new(KEEP, "A", "failover", "web").endpoints([
            EndpointSpec::new(KEEP_A).priority(1),
            EndpointSpec::new(KEEP_B).priority(2),
        ]),
        single(TUNED_NAME, "tuned", TUNED),
    ];
    if old {
        records.push(single(OLD_NAME, "web", OLD));
    }
    if new {
        records.push(single(NEW_NAME, "web", NEW));
    }
    let check = |port: u16, interval_ms: u64| {
        CheckSpec::tcp(port).timing(
            Duration::from_millis(interval_ms),
            Duration::from_millis(50),
            1,
            2,
        )
    };
    AgentConfig::new()
        .zone(
            ZoneSpec::new("example.test.")
                .ttl(30)
                .nameserver("ns1.example.test.", &[IpAddr::V4(DNS_SERVER_ADDR)]),
        )
        .records(records)
        .check("web", check(80, 100))
        .check("tuned", check(TUNED_PORT, tuned_interval_ms))
        .to_toml()
}

/// Digs until the kernel (UDP) and userspace (TCP) both answer as `want`s.
fn dig_both_until(netns: &Netns, name: &str, what: &str, want: impl FnMut(&Dig) -> bool) -> Dig {
    dig_until(netns, name, &[UDP, TCP], what, want).1
}

/// A DNS-over-TCP connection from the client namespace to the agent's
/// userspace responder (the kernel answers UDP only): one query at a time.
struct TcpDns {
    stream: TcpStream,
    id: u16,
}

impl TcpDns {
    fn connect(netns: &Netns) -> TcpDns {
        let server = SocketAddr::from((DNS_SERVER_ADDR, 53));
        let stream = in_netns(&netns.client, move || {
            Ok(TcpStream::connect_timeout(&server, Duration::from_secs(1))?)
        })
        .expect("connecting to the agent over TCP");
        stream.set_nodelay(true).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(1)))
            .unwrap();
        TcpDns { stream, id: 0x4000 }
    }

    /// The answer's rcode and A addresses (sorted), or why there is none.
    fn query_a(&mut self, name: &str) -> Result<(ResponseCode, Vec<Ipv4Addr>), String> {
        self.id = self.id.wrapping_add(1);
        let wire = build_query(self.id, name, RecordType::A, QueryOptions::default())
            .map_err(|e| format!("{e:#}"))?;
        let mut framed = (wire.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&wire);
        self.stream
            .write_all(&framed)
            .map_err(|e| format!("TCP write: {e}"))?;
        let mut len = [0u8; 2];
        self.stream
            .read_exact(&mut len)
            .map_err(|e| format!("TCP read: {e}"))?;
        let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
        self.stream
            .read_exact(&mut buf)
            .map_err(|e| format!("TCP read: {e}"))?;
        let message = Message::from_vec(&buf).map_err(|e| format!("unparsable answer: {e}"))?;
        if message.id() != self.id {
            return Err(format!("answer id {} for query {}", message.id(), self.id));
        }
        let mut addrs: Vec<Ipv4Addr> = message
            .answers()
            .iter()
            .filter_map(|r| match r.data() {
                RData::A(a) => Some(a.0),
                _ => None,
            })
            .collect();
        addrs.sort();
        Ok((message.response_code(), addrs))
    }
}

/// Queries each of `names` over UDP (the kernel answers) and TCP (userspace)
/// every 5 ms until stopped, and keeps every answer that differs from the
/// expected one (NOERROR, exactly those addresses), lost queries included.
struct Sampler {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<(u64, Vec<String>)>>,
}

impl Sampler {
    fn start(netns: &Netns, names: Vec<(&'static str, Vec<Ipv4Addr>)>) -> Sampler {
        let mut udp = netns.dns_client().expect("a DNS client");
        let mut tcp = TcpDns::connect(netns);
        let stop = Arc::new(AtomicBool::new(false));
        let halt = stop.clone();
        let start = Instant::now();
        let thread = std::thread::spawn(move || {
            let (mut sent, mut wrong) = (0u64, Vec::new());
            while !halt.load(Ordering::Relaxed) {
                for (name, want) in &names {
                    let at = start.elapsed().as_secs_f64();
                    sent += 2;
                    match udp.query_a(name, Duration::from_millis(500)) {
                        Ok(Some(DnsAnswer { rcode, addrs, .. })) => {
                            let mut addrs = addrs.clone();
                            addrs.sort();
                            if rcode != ResponseCode::NoError || addrs != *want {
                                wrong.push(format!("{at:.3}s UDP {name}: {rcode} {addrs:?}"));
                            }
                        }
                        Ok(None) => wrong.push(format!("{at:.3}s UDP {name}: no answer")),
                        Err(e) => wrong.push(format!("{at:.3}s UDP {name}: {e:#}")),
                    }
                    match tcp.query_a(name) {
                        Ok((rcode, addrs)) if rcode == ResponseCode::NoError && addrs == *want => {}
                        Ok((rcode, addrs)) => {
                            wrong.push(format!("{at:.3}s TCP {name}: {rcode} {addrs:?}"))
                        }
                        Err(e) => wrong.push(format!("{at:.3}s TCP {name}: {e}")),
                    }
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            (sent, wrong)
        });
        Sampler {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops and returns (queries sent, wrong answers).
    fn finish(mut self) -> (u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().expect("the sampler")
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// `failover-agent reload <args>`, bounded in time by the agent's own limits.
fn reload_cli(args: &[&str]) -> Output {
    Command::new(AGENT)
        .arg("reload")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("running failover-agent reload")
}

fn occurrences(log: &str, needle: &str) -> usize {
    log.matches(needle).count()
}

/// Waits until the agent's log holds `needle` `n` times or more.
fn wait_for_log(netns: &Netns, needle: &str, n: usize) {
    let seen = poll_until(LIMIT, Duration::from_millis(20), || {
        Ok((occurrences(&netns.agent_log(), needle) >= n).then_some(()))
    })
    .unwrap();
    assert!(
        seen.is_some(),
        "the agent never logged {needle:?} ({n}x); its log:\n{}",
        netns.agent_log()
    );
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 path")
}

#[test]
fn reload_by_sighup_and_cli_adds_removes_retunes_and_refuses_a_bad_file() {
    assert!(
        is_root(),
        "needs root (namespaces, veth, XDP): run `cargo xtask test`"
    );
    let mut netns = Netns::new(AGENT).expect("creating the namespaces");
    for extra in [OLD, TUNED, NEW] {
        netns
            .add_server_lo_address(IpAddr::V4(extra))
            .expect("adding an endpoint address");
    }
    for addr in [KEEP_A, KEEP_B, NEW] {
        netns
            .start_endpoint(SocketAddrV4::new(addr, 80))
            .expect("starting an endpoint");
    }
    let old_listener =
        CountingListener::in_netns(&netns.server, (OLD, 80)).expect("listening on old's endpoint");
    let tuned_listener = CountingListener::in_netns(&netns.server, (TUNED, TUNED_PORT))
        .expect("listening on tuned's endpoint");

    let pid_file: PathBuf = netns.workdir().join("agent.pid");
    let socket = netns.workdir().join("control.sock");
    let path = netns
        .write_config("agent.toml", &config(true, false, 100))
        .unwrap();
    netns
        .start_agent(
            &path,
            &[
                "--pid-file",
                path_str(&pid_file),
                "--control-socket",
                path_str(&socket),
            ],
        )
        .expect("starting the agent");
    let agent_pid = netns.agent_pid().expect("the agent's pid");

    // Version 1: keep, tuned and old answer; new does not exist.
    dig_both_until(&netns, KEEP, "with the primary", |d| d.addrs() == [KEEP_A]);
    // Answering means the run loop (and the SIGHUP handler) is up; the pid
    // file is written just before it.
    assert_eq!(
        std::fs::read_to_string(&pid_file)
            .expect("the pid file")
            .trim(),
        agent_pid.to_string(),
        "run --pid-file holds the agent's pid"
    );
    dig_both_until(&netns, TUNED_NAME, "with its endpoint", |d| {
        d.addrs() == [TUNED]
    });
    dig_both_until(&netns, OLD_NAME, "with its endpoint", |d| {
        d.addrs() == [OLD]
    });
    let absent = dig(&netns, NEW_NAME, UDP);
    assert_eq!(absent.status, "NXDOMAIN", "{absent:?}");
    // Every 100 ms: ~15 checks in 1.5 s (jitter spreads, never stops them).
    let fast = tuned_listener.count_over(Duration::from_millis(1500));
    assert!(
        (8..=20).contains(&fast),
        "{fast} checks of tuned in 1.5 s at interval 100ms"
    );

    // Every query for the unchanged records, from now until the end, must
    // get exactly their answer: through both reloads and the refused one.
    let sampler = Sampler::start(
        &netns,
        vec![(KEEP, vec![KEEP_A]), (TUNED_NAME, vec![TUNED])],
    );

    // ----- Version 2 by SIGHUP: old removed, new added, tuned every 1 s.
    netns
        .write_config("agent.toml", &config(false, true, 1000))
        .unwrap();
    // SAFETY: kill(2) on the pid of the agent, our own running child.
    assert_eq!(unsafe { libc::kill(agent_pid as i32, libc::SIGHUP) }, 0);
    wait_for_log(&netns, "reload: 3 records (1 new, 2 kept, 1 removed)", 1);
    let new = dig_both_until(&netns, NEW_NAME, "with its endpoint", |d| {
        d.addrs() == [NEW]
    });
    assert_eq!(new.status, "NOERROR");
    // The removed name is withdrawn from the kernel map and the userspace
    // table alike: it no longer exists in the zone (NXDOMAIN with the SOA).
    let gone = dig_both_until(&netns, OLD_NAME, "NXDOMAIN", |d| d.status == "NXDOMAIN");
    assert!(
        gone.addrs().is_empty() && gone.authority == ["SOA"],
        "{gone:?}"
    );
    // Its check stopped: nothing connects to its endpoint any more.
    std::thread::sleep(Duration::from_millis(300));
    let after_removal = old_listener.count_over(Duration::from_millis(1500));
    assert_eq!(after_removal, 0, "old's endpoint is still checked");
    // The changed check restarted with its new interval: at most ~4 in 3 s.
    let slow = tuned_listener.count_over(Duration::from_secs(3));
    assert!(
        (1..=5).contains(&slow),
        "{slow} checks of tuned in 3 s at interval 1s"
    );

    // ----- Version 3 by `failover-agent reload`: old back, new removed.
    netns
        .write_config("agent.toml", &config(true, false, 1000))
        .unwrap();
    let out = reload_cli(&[
        "--pid-file",
        path_str(&pid_file),
        "--config",
        path_str(&path),
    ]);
    assert!(
        out.status.success(),
        "reload: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("pid {agent_pid}")),
        "reload names the agent it signalled: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    wait_for_log(&netns, "reload: 3 records (1 new, 2 kept, 1 removed)", 2);
    dig_both_until(&netns, OLD_NAME, "with its endpoint again", |d| {
        d.addrs() == [OLD]
    });
    dig_both_until(&netns, NEW_NAME, "NXDOMAIN", |d| d.status == "NXDOMAIN");
    let back = old_listener.count_over(Duration::from_millis(1000));
    assert!(back >= 5, "{back} checks of old in 1 s after it came back");

    // ----- An invalid file: refused, the running configuration stays.
    let good = config(true, false, 1000);
    let bad = good.replace(&format!("address = \"{OLD}\""), "address = \"192.0.2.300\"");
    assert_ne!(bad, good, "the replacement did not apply");
    netns.write_config("agent.toml", &bad).unwrap();
    let out = reload_cli(&["--pid-file", path_str(&pid_file)]);
    assert!(
        out.status.success(),
        "reload without --config only signals: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for_log(&netns, "reload refused", 1);
    let log = netns.agent_log();
    let refusal = log
        .lines()
        .find(|l| l.contains("reload refused"))
        .unwrap()
        .to_string();
    for part in [
        path_str(&path),
        "record[2].endpoints[0].address",
        "192.0.2.300",
    ] {
        assert!(
            refusal.contains(part),
            "the refusal names {part:?}: {refusal}"
        );
    }
    assert!(netns.agent_running().unwrap(), "the agent keeps running");
    dig_both_until(&netns, OLD_NAME, "unchanged", |d| d.addrs() == [OLD]);
    let still = old_listener.count_over(Duration::from_millis(1000));
    assert!(still >= 5, "old's check keeps running ({still} in 1 s)");
    // With --config the CLI validates first: exit 2, the file and field on
    // stderr, and no signal sent.
    let hups = occurrences(&netns.agent_log(), "SIGHUP: reloading");
    let out = reload_cli(&[
        "--pid-file",
        path_str(&pid_file),
        "--config",
        path_str(&path),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "reload --config bad: {stderr}");
    for part in [
        path_str(&path),
        "record[2].endpoints[0].address",
        "not reloading",
    ] {
        assert!(stderr.contains(part), "stderr names {part:?}: {stderr}");
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        occurrences(&netns.agent_log(), "SIGHUP: reloading"),
        hups,
        "a refused `reload --config` signals nothing"
    );

    let (sent, wrong) = sampler.finish();
    assert!(sent > 500, "only {sent} sampled queries");
    assert!(
        wrong.is_empty(),
        "{} of {sent} sampled queries for the unchanged records got another answer:\n{}\nagent log:\n{}",
        wrong.len(),
        wrong
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n"),
        netns.agent_log()
    );
    eprintln!("{sent} queries sampled through 3 reloads, every one answered as before");

    let status = netns.stop_agent().expect("stopping the agent");
    assert!(status.success(), "agent exit: {status}");
    assert!(!pid_file.exists(), "the agent removes its pid file at exit");
}
