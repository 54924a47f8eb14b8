//! Every check kind against a real server on loopback (nginx for http and
//! https with a self-signed certificate, the agent's own DNS server, plain
//! listeners, ping of loopback) or in a network namespace this test makes
//! (a blackholed address behind a veth nobody answers on), plus dedupe and reload of a
//! running agent. Needs root (raw sockets, namespaces, nginx).

use std::collections::HashMap;
use std::io::{Read as _, Write as _};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use failover_agent::agent::{Agent, HealthSnapshot, Reloader};
use failover_agent::checks::result::{CheckResult, Failure};
use failover_agent::checks::settings::{Check, CheckTarget};
use failover_agent::checks::{Prepared, Rng, run_once};
use failover_agent::config::Config;
use failover_agent::dns::rr::RTYPE_A;
use failover_agent::policy::Answer;
use failover_agent::publish::publish_all_healthy;
use failover_agent::serve::server::{Listeners, Server, TcpLimits};
use failover_agent::serve::{AnswerTable, Entry, Responder};
use failover_tests::certs::SelfSigned;
use failover_tests::config::Value;
use failover_tests::{
    AgentConfig, CheckSpec, CountingListener, EndpointSpec, RecordSpec, ZoneSpec,
};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

const SECOND: Duration = Duration::from_secs(1);

/// A config with one zone, one record `www.t.` on `endpoint`, and `check`
/// as `[checks.c]`.
fn config_with(check: CheckSpec, endpoint: EndpointSpec) -> Config {
    let text = AgentConfig::new()
        .zone(ZoneSpec::new("t."))
        .record(RecordSpec::new("www.t.", "A", "failover", "c").endpoint(endpoint))
        .check("c", check)
        .to_toml();
    Config::parse(&text, "test").unwrap_or_else(|e| panic!("{e}"))
}

fn check_of(check: CheckSpec) -> Check {
    config_with(check, EndpointSpec::new(Ipv4Addr::LOCALHOST)).records[0]
        .check
        .clone()
}

/// Runs one check of `check` against `address`/`port` (the check's own port
/// when `None`).
fn probe(
    rt: &tokio::runtime::Runtime,
    check: &Check,
    address: IpAddr,
    port: Option<u16>,
) -> CheckResult {
    let target = CheckTarget {
        address,
        port: port.or(check.port),
    };
    rt.block_on(async {
        let prepared = Prepared::new(check);
        run_once(check, target, &prepared, &mut Rng::new(), 1).await
    })
}

fn failure(result: &CheckResult) -> String {
    match &result.outcome {
        Ok(()) => panic!("expected a failure, got success ({})", result.note),
        Err(f) => f.to_string(),
    }
}

fn assert_up(result: &CheckResult, note: &str) {
    assert!(result.is_success(), "{:?}", result.outcome);
    assert_eq!(result.note, note);
}

/// A port free on `ip` (bound and released).
fn free_port(ip: Ipv4Addr) -> u16 {
    TcpListener::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn tcp_up_refused_and_hanging() {
    let rt = runtime();
    let check = check_of(CheckSpec::tcp(1).interval(SECOND).timeout(ms(300)));
    let up = CountingListener::start((Ipv4Addr::new(127, 0, 0, 1), 0)).unwrap();
    assert_up(
        &probe(&rt, &check, up.addr().ip(), Some(up.addr().port())),
        "connected",
    );
    let closed = free_port(Ipv4Addr::new(127, 0, 0, 1));
    let refused = probe(&rt, &check, "127.0.0.1".parse().unwrap(), Some(closed));
    assert_eq!(refused.outcome, Err(Failure::Refused));
}

/// nginx in the foreground on `ip`, with a generated config and a
/// self-signed certificate for `checks.test` and `ip`.
struct Nginx {
    child: Child,
    dir: PathBuf,
    http: u16,
    https: u16,
    cert: PathBuf,
}

impl Nginx {
    fn start(ip: Ipv4Addr) -> Nginx {
        let dir =
            std::env::temp_dir().join(format!("failover-checks-nginx-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let SelfSigned { cert, key } =
            SelfSigned::create(&dir, "checks.test", &["checks.test"], &[IpAddr::V4(ip)])
                .expect("a self-signed certificate");
        let (http, https) = (free_port(ip), free_port(ip));
        let conf = format!(
            r#"daemon off;
master_process off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  server {{
    listen {ip}:{http};
    listen {ip}:{https} ssl;
    ssl_certificate {cert};
    ssl_certificate_key {key};
    location = /health {{ default_type text/plain; return 200 "status: all good\n"; }}
    location = /teapot {{ return 418; }}
    location = /moved {{ return 301 /health; }}
    location = /host {{ default_type text/plain; return 200 "host=$host probe=$http_x_probe\n"; }}
  }}
}}
"#,
            dir = dir.display(),
            cert = cert.display(),
            key = key.display()
        );
        let conf_path = dir.join("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let child = Command::new("nginx")
            .arg("-c")
            .arg(&conf_path)
            .arg("-p")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx is installed (cargo xtask prereqs)");
        let nginx = Nginx {
            child,
            dir,
            http,
            https,
            cert,
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while TcpStream::connect((ip, https)).is_err() || TcpStream::connect((ip, http)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nginx did not start: {}",
                std::fs::read_to_string(nginx.dir.join("error.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        nginx
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn http_and_https_against_nginx() {
    let rt = runtime();
    let ip = Ipv4Addr::new(127, 0, 31, 1);
    let nginx = Nginx::start(ip);
    let addr = IpAddr::V4(ip);
    let http = |path: &str| CheckSpec::new("http").timeout(ms(900)).set("path", path);
    let port = Some(nginx.http);
    assert_up(
        &probe(&rt, &check_of(http("/health")), addr, port),
        "HTTP 200",
    );
    assert_eq!(
        failure(&probe(&rt, &check_of(http("/teapot")), addr, port)),
        "HTTP 418, expected 200-399"
    );
    assert_up(
        &probe(
            &rt,
            &check_of(
                http("/teapot").set("expect_status", [Value::from("200-299"), Value::from(418)]),
            ),
            addr,
            port,
        ),
        "HTTP 418",
    );
    assert_up(
        &probe(
            &rt,
            &check_of(http("/moved").set("expect_status", ["301"])),
            addr,
            port,
        ),
        "HTTP 301",
    );
    assert_eq!(
        failure(&probe(
            &rt,
            &check_of(http("/moved").set("expect_status", ["200-299"])),
            addr,
            port
        )),
        "HTTP 301, expected 200-299"
    );
    // Body substring, Host header and extra headers reach the server.
    assert_up(
        &probe(
            &rt,
            &check_of(http("/health").set("expect_body", "all good")),
            addr,
            port,
        ),
        "HTTP 200, body matched",
    );
    assert_eq!(
        failure(&probe(
            &rt,
            &check_of(
                http("/health")
                    .set("expect_body", "all good")
                    .set("body_limit", 8)
            ),
            addr,
            port
        )),
        "HTTP 200, but \"all good\" is not in the first 8 bytes of the body"
    );
    assert_up(
        &probe(
            &rt,
            &check_of(
                http("/host")
                    .set("host", "www.checks.test")
                    .set("headers", Value::table([("X-Probe", "p1")]))
                    .set("expect_body", "host=www.checks.test probe=p1"),
            ),
            addr,
            port,
        ),
        "HTTP 200, body matched",
    );
    assert_up(
        &probe(
            &rt,
            &check_of(http("/health").set("method", "HEAD")),
            addr,
            port,
        ),
        "HTTP 200",
    );

    // https: the certificate verifies against its own file as the CA, by
    // name (sni) or by address; not against the web roots; verify = false
    // accepts it; a wrong name is refused.
    let ca = nginx.cert.as_path();
    let https = || {
        CheckSpec::new("https")
            .timeout(ms(900))
            .set("path", "/health")
    };
    let port = Some(nginx.https);
    assert_up(
        &probe(
            &rt,
            &check_of(https().set("sni", "checks.test").set("ca_file", ca)),
            addr,
            port,
        ),
        "HTTP 200",
    );
    assert_up(
        &probe(
            &rt,
            &check_of(https().set("ca_file", ca).set("expect_body", "good")),
            addr,
            port,
        ),
        "HTTP 200, body matched",
    );
    let untrusted = failure(&probe(
        &rt,
        &check_of(https().set("sni", "checks.test")),
        addr,
        port,
    ));
    assert!(
        untrusted.starts_with("TLS handshake: invalid peer certificate"),
        "{untrusted}"
    );
    assert!(untrusted.contains("UnknownIssuer"), "{untrusted}");
    assert_up(
        &probe(&rt, &check_of(https().set("verify", false)), addr, port),
        "HTTP 200",
    );
    let wrong_name = failure(&probe(
        &rt,
        &check_of(https().set("sni", "other.test").set("ca_file", ca)),
        addr,
        port,
    ));
    assert!(
        wrong_name.contains("not valid for name \"other.test\""),
        "{wrong_name}"
    );
    // Plain HTTP to the TLS port is no HTTP response.
    let plain = failure(&probe(
        &rt,
        &check_of(http("/health")),
        addr,
        Some(nginx.https),
    ));
    assert!(
        plain.starts_with("HTTP 400") || plain.starts_with("HTTP 497"),
        "{plain}"
    );
}

#[test]
fn http_accepting_server_that_never_answers_times_out() {
    let rt = runtime();
    let hang = CountingListener::hanging((Ipv4Addr::new(127, 0, 31, 2), 0)).unwrap();
    let check = check_of(CheckSpec::new("http").interval(SECOND).timeout(ms(250)));
    let start = Instant::now();
    let result = probe(&rt, &check, hang.addr().ip(), Some(hang.addr().port()));
    assert_eq!(
        result.outcome,
        Err(Failure::Timeout(Duration::from_millis(250)))
    );
    assert!(
        start.elapsed() < Duration::from_millis(600),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(hang.count(), 1, "it did connect");
}

#[test]
fn http_chunked_body() {
    let rt = runtime();
    let listener = TcpListener::bind("127.0.31.3:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for _ in 0..2 {
            let (mut stream, _) = listener.accept().unwrap();
            let mut buf = [0u8; 2048];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n",
            );
        }
    });
    let check = check_of(CheckSpec::new("http").set("expect_body", "lo, wor"));
    assert_up(
        &probe(&rt, &check, addr.ip(), Some(addr.port())),
        "HTTP 200, body matched",
    );
    let check = check_of(CheckSpec::new("http").set("expect_body", "5\r\n"));
    assert!(
        failure(&probe(&rt, &check, addr.ip(), Some(addr.port()))).contains("is not in the first"),
        "chunk framing is not body"
    );
}

/// The agent's own DNS server on `addr`, serving zone t. with www.t. A 127.0.0.1.
fn dns_server(rt: &tokio::runtime::Runtime, addr: SocketAddr) -> Server {
    let config = config_with(CheckSpec::tcp(1), EndpointSpec::new(Ipv4Addr::LOCALHOST));
    let mut table = AnswerTable::new();
    publish_all_healthy(&config, &mut table).unwrap();
    let responder = Responder::new(table);
    rt.block_on(async {
        let listeners = Listeners::bind(&[addr], false).unwrap();
        Server::start(
            listeners,
            responder,
            TcpLimits {
                idle_timeout: Duration::from_secs(5),
                max_connections: 8,
            },
        )
        .unwrap()
    })
}

#[test]
fn dns_against_our_own_server() {
    let rt = runtime();
    let ip = Ipv4Addr::new(127, 0, 31, 4);
    let port = std::net::UdpSocket::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = dns_server(&rt, SocketAddr::from((ip, port)));
    let dns = |name: &str| CheckSpec::new("dns").port(port).set("query_name", name);
    let addr = IpAddr::V4(ip);
    assert_up(
        &probe(&rt, &check_of(dns("www.t.")), addr, None),
        "NOERROR, 1 answer",
    );
    assert_up(
        &probe(
            &rt,
            &check_of(dns("www.t.").set("expect_answer", "127.0.0.1")),
            addr,
            None,
        ),
        "NOERROR, 1 answer",
    );
    assert_eq!(
        failure(&probe(
            &rt,
            &check_of(dns("www.t.").set("expect_answer", "192.0.2.1")),
            addr,
            None
        )),
        "NOERROR, 1 answer, \"192.0.2.1\" not among them"
    );
    assert_eq!(
        failure(&probe(&rt, &check_of(dns("nope.t.")), addr, None)),
        "NXDOMAIN, expected NOERROR"
    );
    assert_up(
        &probe(
            &rt,
            &check_of(dns("nope.t.").set("expect_rcode", "NXDOMAIN")),
            addr,
            None,
        ),
        "NXDOMAIN, 0 answers",
    );
    assert_up(
        &probe(
            &rt,
            &check_of(
                dns("t.")
                    .set("query_type", "SOA")
                    .set("expect_answer", "hostmaster.t."),
            ),
            addr,
            None,
        ),
        "NOERROR, 1 answer",
    );
    assert_eq!(
        failure(&probe(&rt, &check_of(dns("example.org.")), addr, None)),
        "REFUSED, expected NOERROR"
    );
    rt.block_on(server.stop());
    // Nothing listens any more: port unreachable comes back as refused.
    assert_eq!(
        probe(&rt, &check_of(dns("www.t.")), addr, None).outcome,
        Err(Failure::Refused)
    );
}

#[test]
fn icmp_to_live_addresses() {
    let rt = runtime();
    let check = check_of(CheckSpec::new("icmp").interval(SECOND).timeout(ms(500)));
    assert_up(
        &probe(&rt, &check, "127.0.0.1".parse().unwrap(), None),
        "echo reply",
    );
    assert_up(
        &probe(&rt, &check, "::1".parse().unwrap(), None),
        "echo reply",
    );
}

/// A namespace with a veth pair: v0 holds 10.250.0.1/24 and fd00:250::1/64,
/// its peer v1 holds nothing, so packets to the other addresses of those
/// nets vanish (no neighbour ever answers ARP or ND), and connects and pings
/// time out. (This kernel has no dummy interfaces.) Deleted on drop.
struct Blackhole {
    name: String,
}

impl Blackhole {
    fn new() -> Blackhole {
        let name = format!("fo-checks-bh-{}", std::process::id());
        let ip = |args: &[&str]| {
            let status = Command::new("ip").args(args).status().unwrap();
            assert!(status.success(), "ip {args:?}");
        };
        let _ = Command::new("ip")
            .args(["netns", "del", &name])
            .stderr(Stdio::null())
            .status();
        ip(&["netns", "add", &name]);
        let blackhole = Blackhole { name };
        let n = blackhole.name.as_str();
        ip(&["-n", n, "link", "set", "lo", "up"]);
        ip(&[
            "-n", n, "link", "add", "v0", "type", "veth", "peer", "name", "v1",
        ]);
        ip(&["-n", n, "addr", "add", "10.250.0.1/24", "dev", "v0"]);
        ip(&[
            "-n",
            n,
            "addr",
            "add",
            "fd00:250::1/64",
            "dev",
            "v0",
            "nodad",
        ]);
        ip(&["-n", n, "link", "set", "v0", "up"]);
        ip(&["-n", n, "link", "set", "v1", "up"]);
        blackhole
    }

    /// Runs `f` with a runtime inside the namespace.
    fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&tokio::runtime::Runtime) -> T + Send + 'static,
    ) -> T {
        failover_tests::in_netns(&self.name, move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            Ok(f(&rt))
        })
        .unwrap()
    }
}

impl Drop for Blackhole {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

#[test]
fn blackholed_addresses_time_out() {
    let blackhole = Blackhole::new();
    let results = blackhole.run(|rt| {
        let mut out = Vec::new();
        for (kind, spec, address) in [
            ("tcp port 80", CheckSpec::tcp(80), "10.250.0.2"),
            ("http", CheckSpec::new("http"), "10.250.0.2"),
            ("icmp", CheckSpec::new("icmp"), "10.250.0.2"),
            ("icmp", CheckSpec::new("icmp"), "fd00:250::2"),
            ("tcp port 80", CheckSpec::tcp(80), "fd00:250::2"),
        ] {
            let check = check_of(spec.interval(SECOND).timeout(ms(300)));
            let start = Instant::now();
            let result = probe(rt, &check, address.parse().unwrap(), None);
            out.push((kind, address, result, start.elapsed()));
        }
        // The live address of the namespace answers pings.
        let check = check_of(CheckSpec::new("icmp").interval(SECOND).timeout(ms(300)));
        let live = probe(rt, &check, "10.250.0.1".parse().unwrap(), None);
        (out, live)
    });
    let (out, live) = results;
    for (kind, address, result, took) in out {
        assert_eq!(
            result.outcome,
            Err(Failure::Timeout(Duration::from_millis(300))),
            "{kind} to {address}"
        );
        assert!(
            took < Duration::from_millis(500),
            "{kind} to {address}: {took:?}"
        );
    }
    assert_up(&live, "echo reply");
}

#[test]
fn exec_exit_codes_environment_and_kill_at_timeout() {
    let rt = runtime();
    let dir = std::env::temp_dir().join(format!("failover-checks-exec-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let exec = |command: &[&str]| {
        check_of(
            CheckSpec::new("exec")
                .port(5432)
                .interval(SECOND)
                .timeout(ms(300))
                .set("command", command.to_vec()),
        )
    };
    let addr: IpAddr = "192.0.2.7".parse().unwrap();
    assert_up(&probe(&rt, &exec(&["/bin/true"]), addr, None), "exit 0");
    assert_eq!(
        failure(&probe(&rt, &exec(&["/bin/false"]), addr, None)),
        "exit 1"
    );
    assert_eq!(
        failure(&probe(
            &rt,
            &exec(&["/bin/sh", "-c", "echo db is read-only >&2; exit 3"]),
            addr,
            None
        )),
        "exit 3: db is read-only"
    );
    let env = dir.join("env");
    let script = format!(
        "echo $FAILOVER_ADDRESS $FAILOVER_PORT $FAILOVER_TIMEOUT_MS $FAILOVER_CHECK > {}",
        env.display()
    );
    assert_up(
        &probe(&rt, &exec(&["/bin/sh", "-c", &script]), addr, None),
        "exit 0",
    );
    assert_eq!(
        std::fs::read_to_string(&env).unwrap(),
        "192.0.2.7 5432 300 c\n"
    );
    assert!(
        failure(&probe(&rt, &exec(&["/nonexistent/check"]), addr, None))
            .starts_with("cannot run /nonexistent/check")
    );

    // Beyond the timeout: the command and its child are killed.
    let pids = dir.join("pids");
    let script = format!("sleep 30 & echo $$ $! > {}; wait", pids.display());
    let start = Instant::now();
    let result = probe(&rt, &exec(&["/bin/sh", "-c", &script]), addr, None);
    assert_eq!(
        result.outcome,
        Err(Failure::Timeout(Duration::from_millis(300)))
    );
    assert!(
        start.elapsed() < Duration::from_millis(800),
        "{:?}",
        start.elapsed()
    );
    let text = std::fs::read_to_string(&pids).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    for pid in text.split_whitespace() {
        let alive = Path::new(&format!("/proc/{pid}")).exists()
            && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .unwrap_or_default()
                .contains(") Z ");
        assert!(!alive, "pid {pid} of the check's process group still runs");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Runs an agent over an AnswerTable on the current thread's runtime.
struct RunningAgent {
    table: AnswerTable,
    reloader: Reloader,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    snapshots: Arc<Mutex<Option<HealthSnapshot>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RunningAgent {
    fn start(config: Config) -> RunningAgent {
        let table = AnswerTable::new();
        let mut agent = Agent::new(config, table.clone());
        let reloader = agent.reloader();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let snapshots = Arc::new(Mutex::new(None));
        let snap = snapshots.clone();
        let thread = std::thread::spawn(move || {
            let rt = runtime();
            rt.block_on(async move {
                agent
                    .run(
                        async {
                            let _ = stopped.await;
                        },
                        Some(Duration::from_millis(50)),
                        |_| {},
                    )
                    .await
                    .unwrap();
                *snap.lock().unwrap() = Some(agent.snapshot());
            });
        });
        RunningAgent {
            table,
            reloader,
            stop: Some(stop),
            snapshots,
            thread: Some(thread),
        }
    }

    fn answer(&self, name: &str) -> Option<Vec<IpAddr>> {
        match self.table.get(name, RTYPE_A) {
            Some(Entry {
                answer: Answer::Addrs(addrs),
                ..
            }) => Some(addrs),
            _ => None,
        }
    }

    fn wait_for(&self, name: &str, want: Option<Vec<IpAddr>>, limit: Duration) {
        let deadline = Instant::now() + limit;
        while self.answer(name) != want {
            assert!(
                Instant::now() < deadline,
                "{name}: {:?}, want {want:?}",
                self.answer(name)
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn stop(mut self) -> HealthSnapshot {
        let _ = self.stop.take().unwrap().send(());
        self.thread.take().unwrap().join().unwrap();
        self.snapshots.lock().unwrap().take().unwrap()
    }
}

/// A tcp check of `port` every `interval_ms`, timeout half that, rise 1, fall 1.
fn tcp_check(port: u16, interval_ms: u64) -> CheckSpec {
    CheckSpec::tcp(port).timing(ms(interval_ms), ms(interval_ms / 2), 1, 1)
}

/// Zone t., `records`, and `tcp_check(port, interval_ms)` as check `c`.
fn zone_and_check(
    port: u16,
    interval_ms: u64,
    records: impl IntoIterator<Item = RecordSpec>,
) -> AgentConfig {
    AgentConfig::new()
        .zone(ZoneSpec::new("t."))
        .records(records)
        .check("c", tcp_check(port, interval_ms))
}

fn a_record(name: &str, check: &str, endpoint: EndpointSpec) -> RecordSpec {
    RecordSpec::new(name, "A", "failover", check).endpoint(endpoint)
}

#[test]
fn identical_checks_of_one_target_run_once() {
    let target = Ipv4Addr::new(127, 0, 32, 1);
    let listener = CountingListener::start((target, 0)).unwrap();
    let port = listener.addr().port();
    // Two records answer with different addresses but probe the same
    // target (check_address); a third record uses an identical check under
    // another name on the same address.
    let config = zone_and_check(
        port,
        100,
        [
            a_record(
                "a.t.",
                "c",
                EndpointSpec::new(Ipv4Addr::new(192, 0, 2, 1)).check_address(target),
            ),
            a_record(
                "b.t.",
                "c",
                EndpointSpec::new(Ipv4Addr::new(192, 0, 2, 2)).check_address(target),
            ),
            a_record("c.t.", "same", EndpointSpec::new(target)),
        ],
    )
    .check("same", tcp_check(port, 100));
    let agent = RunningAgent::start(Config::parse(&config.to_toml(), "test").unwrap());
    agent.wait_for(
        "c.t.",
        Some(vec!["127.0.32.1".parse().unwrap()]),
        Duration::from_secs(2),
    );
    agent.wait_for(
        "a.t.",
        Some(vec!["192.0.2.1".parse().unwrap()]),
        Duration::from_secs(1),
    );
    let before = listener.count();
    std::thread::sleep(Duration::from_millis(1000));
    let during = listener.count() - before;
    let snapshot = agent.stop();
    // One probe every 100 ms: about 10 connections in 1 s, not 30.
    assert!((8..=12).contains(&during), "{during} connections in 1 s");
    assert_eq!(snapshot.probes, 1);
    assert_eq!(snapshot.endpoints.len(), 3);
    for endpoint in &snapshot.endpoints {
        assert_eq!(endpoint.shared_by, 3, "{endpoint:?}");
        assert_eq!(endpoint.target.to_string(), format!("127.0.32.1:{port}"));
        assert!(endpoint.status.checks >= 10);
        assert!(endpoint.status.last_latency.is_some());
    }
}

#[test]
fn reload_adds_removes_and_keeps_state() {
    let keep = CountingListener::start((Ipv4Addr::new(127, 0, 33, 1), 0)).unwrap();
    let gone = CountingListener::start((Ipv4Addr::new(127, 0, 33, 2), 0)).unwrap();
    let port = keep.addr().port();
    // `gone` has its own port: per-endpoint check_port.
    let keep_ep = EndpointSpec::new(Ipv4Addr::new(127, 0, 33, 1));
    let gone_ep = EndpointSpec::new(Ipv4Addr::new(127, 0, 33, 2)).check_port(gone.addr().port());
    let v1 = zone_and_check(
        port,
        100,
        [
            a_record("keep.t.", "c", keep_ep.clone()),
            a_record("gone.t.", "c", gone_ep),
        ],
    );
    let agent = RunningAgent::start(Config::parse(&v1.to_toml(), "v1").unwrap());
    agent.wait_for(
        "keep.t.",
        Some(vec!["127.0.33.1".parse().unwrap()]),
        Duration::from_secs(2),
    );
    agent.wait_for(
        "gone.t.",
        Some(vec!["127.0.33.2".parse().unwrap()]),
        Duration::from_secs(1),
    );

    // Watch keep.t.'s answer at 1 ms resolution through the reload.
    let watching = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let table = agent.table.clone();
    let flag = watching.clone();
    let watcher = std::thread::spawn(move || {
        let mut seen: HashMap<String, u64> = HashMap::new();
        while flag.load(Ordering::Relaxed) {
            let v = format!("{:?}", table.get("keep.t.", RTYPE_A));
            *seen.entry(v).or_default() += 1;
            std::thread::sleep(Duration::from_millis(1));
        }
        seen
    });
    let new = CountingListener::start((Ipv4Addr::new(127, 0, 33, 3), 0)).unwrap();
    let new_ep = EndpointSpec::new(Ipv4Addr::new(127, 0, 33, 3)).check_port(new.addr().port());
    let v2 = zone_and_check(
        port,
        100,
        [
            a_record("keep.t.", "c", keep_ep),
            a_record("new.t.", "c", new_ep),
        ],
    );
    let keep_before = keep.count();
    assert!(
        agent
            .reloader
            .reload(Config::parse(&v2.to_toml(), "v2").unwrap())
    );
    agent.wait_for(
        "new.t.",
        Some(vec!["127.0.33.3".parse().unwrap()]),
        Duration::from_secs(1),
    );
    agent.wait_for("gone.t.", None, Duration::from_secs(1));
    // The removed record's probe stopped: no more connections to it.
    std::thread::sleep(Duration::from_millis(150));
    let gone_after = gone.count();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        gone.count(),
        gone_after,
        "the removed record is still checked"
    );
    // The kept endpoint's probe kept running at its pace (no restart, no gap).
    let keep_during = keep.count() - keep_before;
    assert!(
        (5..=10).contains(&keep_during),
        "{keep_during} checks of keep.t. in ~0.65 s"
    );
    watching.store(false, Ordering::Relaxed);
    let seen = watcher.join().unwrap();
    assert_eq!(
        seen.len(),
        1,
        "keep.t. answered one way throughout: {seen:?}"
    );

    // A changed check (another interval) restarts the probe; keep.t. keeps its answer.
    let v3 = v2.check("c", tcp_check(port, 100).interval(ms(200)));
    assert!(
        agent
            .reloader
            .reload(Config::parse(&v3.to_toml(), "v3").unwrap())
    );
    std::thread::sleep(Duration::from_millis(300));
    let before = keep.count();
    std::thread::sleep(Duration::from_millis(1000));
    let slower = keep.count() - before;
    assert!(
        (4..=6).contains(&slower),
        "{slower} checks in 1 s at 200 ms"
    );
    assert_eq!(
        agent.answer("keep.t."),
        Some(vec!["127.0.33.1".parse().unwrap()])
    );
    let snapshot = agent.stop();
    assert_eq!(snapshot.probes, 2);
}
