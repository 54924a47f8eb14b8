//! Detection time per check kind. One agent in the server namespace answers
//! one failover record per kind (`tcp.kinds.test.`, `http.kinds.test.`, ...),
//! each with its own primary and secondary address on the namespace's lo, so
//! failing one kind's primary touches no other record. Each run makes the
//! primary fail the way that kind sees it, and a client in the client
//! namespace querying every 10 ms times the first answer without it; then the
//! primary is restored and the time to the first answer with it again is
//! recovery.
//!
//! How a primary fails, per kind:
//! - tcp: its demo endpoint is killed (SIGKILL): connection refused;
//! - http, https: nginx answers 503 for that address and port (a flag file
//!   nginx tests on every request; creating it is the failure);
//! - dns: a DNS responder (hickory-proto, in this process) answers SERVFAIL;
//! - icmp: the address is removed from lo (the host is gone);
//! - exec: the command (`sh -c 'test ! -e FLAG-$FAILOVER_ADDRESS'`) exits 1.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream, UdpSocket},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use failover_tests::{
    AgentConfig, CheckSpec, DnsClient, EndpointSpec, Netns, RecordSpec, ZoneSpec,
    certs::SelfSigned, in_netns, netns::DNS_SERVER_ADDR, poll_until,
};
use hickory_proto::op::{Message, MessageType, ResponseCode};

const INTERVAL_MS: u64 = 100;
const TIMEOUT_MS: u64 = 50;
const RISE: u32 = 1;
const FALL: u32 = 2;
/// Give up on one detection or recovery after this long.
const PHASE_LIMIT: Duration = Duration::from_secs(5);
const HTTP_PORT: u16 = 8080;
const HTTPS_PORT: u16 = 8443;
const DNS_PORT: u16 = 5300;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Tcp,
    Http,
    Https,
    Dns,
    Icmp,
    Exec,
}

const KINDS: [Kind; 6] = [
    Kind::Tcp,
    Kind::Http,
    Kind::Https,
    Kind::Dns,
    Kind::Icmp,
    Kind::Exec,
];

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Tcp => "tcp",
            Kind::Http => "http",
            Kind::Https => "https",
            Kind::Dns => "dns",
            Kind::Icmp => "icmp",
            Kind::Exec => "exec",
        }
    }

    fn index(self) -> u8 {
        KINDS.iter().position(|k| *k == self).expect("listed") as u8
    }

    /// (primary, secondary): 192.0.2.20+2i and 192.0.2.21+2i.
    fn addresses(self) -> (Ipv4Addr, Ipv4Addr) {
        let base = 20 + 2 * self.index();
        (
            Ipv4Addr::new(192, 0, 2, base),
            Ipv4Addr::new(192, 0, 2, base + 1),
        )
    }

    fn record(self) -> String {
        format!("{}.kinds.test.", self.name())
    }

    fn how(self) -> &'static str {
        match self {
            Kind::Tcp => "endpoint killed (refused)",
            Kind::Http => "nginx answers 503",
            Kind::Https => "nginx answers 503 (TLS)",
            Kind::Dns => "server answers SERVFAIL",
            Kind::Icmp => "address removed from lo",
            Kind::Exec => "command exits 1",
        }
    }

    /// This kind's check: the common timing and what the kind needs.
    fn check(self, dir: &Path, cert: &Path) -> CheckSpec {
        // Detection itself is measured: repeated failures of one endpoint
        // would be flapping to the damping (on by default).
        let check = CheckSpec::new(self.name())
            .timing(
                Duration::from_millis(INTERVAL_MS),
                Duration::from_millis(TIMEOUT_MS),
                RISE,
                FALL,
            )
            .set("flap_limit", 0);
        match self {
            Kind::Tcp => check.port(80),
            Kind::Http => check.port(HTTP_PORT).set("path", "/health"),
            Kind::Https => check
                .port(HTTPS_PORT)
                .set("path", "/health")
                .set("ca_file", cert),
            Kind::Dns => check.port(DNS_PORT).set("query_name", "health.kinds.test."),
            Kind::Icmp => check,
            Kind::Exec => {
                let test = format!("test ! -e {}/exec-down-$FAILOVER_ADDRESS", dir.display());
                check.set("command", vec!["/bin/sh", "-c", &test])
            }
        }
    }
}

/// nginx in the server namespace for the http and https primaries and
/// secondaries, with a self-signed certificate for their addresses
/// ([`SelfSigned`]). `/health` answers 503 while the flag file
/// `down-<address>-<port>` exists in its directory.
struct Nginx {
    child: Child,
    dir: PathBuf,
}

impl Nginx {
    fn start(netns: &Netns, dir: &Path) -> Result<(Nginx, PathBuf)> {
        let (hp, hs) = Kind::Http.addresses();
        let (sp, ss) = Kind::Https.addresses();
        let SelfSigned { cert, key } =
            SelfSigned::create(dir, "kinds.test", &[], &[IpAddr::V4(sp), IpAddr::V4(ss)])?;
        let d = dir.display();
        let conf = format!(
            r#"daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/nginx-error.log;
events {{ worker_connections 256; }}
http {{
  access_log off;
  client_body_temp_path {d}/body;
  proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
  server {{
    listen {hp}:{HTTP_PORT};
    listen {hs}:{HTTP_PORT};
    listen {sp}:{HTTPS_PORT} ssl;
    listen {ss}:{HTTPS_PORT} ssl;
    ssl_certificate {cert};
    ssl_certificate_key {key};
    location = /health {{
      default_type text/plain;
      if (-f {d}/down-$server_addr-$server_port) {{ return 503 "down\n"; }}
      return 200 "ok\n";
    }}
  }}
}}
"#,
            cert = cert.display(),
            key = key.display()
        );
        let conf_path = dir.join("nginx.conf");
        std::fs::write(&conf_path, conf)?;
        let child = netns
            .server_command("nginx")
            .arg("-c")
            .arg(&conf_path)
            .arg("-p")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting nginx (cargo xtask prereqs installs it)")?;
        let mut nginx = Nginx {
            child,
            dir: dir.to_path_buf(),
        };
        for addr in [
            SocketAddr::from((hp, HTTP_PORT)),
            SocketAddr::from((hs, HTTP_PORT)),
            SocketAddr::from((sp, HTTPS_PORT)),
            SocketAddr::from((ss, HTTPS_PORT)),
        ] {
            let server = netns.server.clone();
            let up = poll_until(Duration::from_secs(5), Duration::from_millis(20), || {
                let server = server.clone();
                let up = in_netns(&server, move || {
                    Ok(TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok())
                })?;
                Ok(up.then_some(()))
            })?;
            if up.is_none() || nginx.child.try_wait()?.is_some() {
                bail!(
                    "nginx does not listen on {addr}: {}",
                    std::fs::read_to_string(dir.join("nginx-error.log")).unwrap_or_default()
                );
            }
        }
        Ok((nginx, cert))
    }

    fn flag(&self, addr: Ipv4Addr, port: u16) -> PathBuf {
        self.dir.join(format!("down-{addr}-{port}"))
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // By PID: our own child, not yet reaped.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A UDP DNS responder inside the server namespace on `addr`: NOERROR (no
/// answer) to every query, or SERVFAIL while `failing` is set.
struct DnsResponder {
    failing: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl DnsResponder {
    fn start(netns: &Netns, addr: SocketAddr) -> Result<DnsResponder> {
        let socket = in_netns(&netns.server, move || {
            UdpSocket::bind(addr).with_context(|| format!("binding {addr}"))
        })?;
        socket.set_read_timeout(Some(Duration::from_millis(100)))?;
        let failing = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let (fail, halt) = (failing.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while !halt.load(Ordering::Relaxed) {
                let Ok((len, from)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                let Ok(mut message) = Message::from_vec(&buf[..len]) else {
                    continue;
                };
                let rcode = if fail.load(Ordering::Relaxed) {
                    ResponseCode::ServFail
                } else {
                    ResponseCode::NoError
                };
                message
                    .set_message_type(MessageType::Response)
                    .set_authoritative(true)
                    .set_response_code(rcode);
                if let Ok(wire) = message.to_vec() {
                    let _ = socket.send_to(&wire, from);
                }
            }
        });
        Ok(DnsResponder {
            failing,
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for DnsResponder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Everything the primaries run on, to fail and restore them.
struct Targets {
    nginx: Nginx,
    dns_primary: DnsResponder,
    _dns_secondary: DnsResponder,
    dir: PathBuf,
}

impl Targets {
    fn fail(&self, netns: &mut Netns, kind: Kind) -> Result<()> {
        let (primary, _) = kind.addresses();
        match kind {
            Kind::Tcp => netns.kill_endpoint(SocketAddrV4::new(primary, 80)),
            Kind::Http => touch(&self.nginx.flag(primary, HTTP_PORT)),
            Kind::Https => touch(&self.nginx.flag(primary, HTTPS_PORT)),
            Kind::Dns => {
                self.dns_primary.failing.store(true, Ordering::Relaxed);
                Ok(())
            }
            Kind::Icmp => ip(&[
                "-n",
                &netns.server,
                "addr",
                "del",
                &format!("{primary}/32"),
                "dev",
                "lo",
            ]),
            Kind::Exec => touch(&self.dir.join(format!("exec-down-{primary}"))),
        }
    }

    fn restore(&self, netns: &mut Netns, kind: Kind) -> Result<()> {
        let (primary, _) = kind.addresses();
        match kind {
            Kind::Tcp => netns.start_endpoint(SocketAddrV4::new(primary, 80)),
            Kind::Http => remove(&self.nginx.flag(primary, HTTP_PORT)),
            Kind::Https => remove(&self.nginx.flag(primary, HTTPS_PORT)),
            Kind::Dns => {
                self.dns_primary.failing.store(false, Ordering::Relaxed);
                Ok(())
            }
            Kind::Icmp => netns.add_server_lo_address(IpAddr::V4(primary)),
            Kind::Exec => remove(&self.dir.join(format!("exec-down-{primary}"))),
        }
    }
}

fn touch(path: &Path) -> Result<()> {
    std::fs::write(path, b"").with_context(|| format!("creating {}", path.display()))
}

fn remove(path: &Path) -> Result<()> {
    std::fs::remove_file(path).with_context(|| format!("removing {}", path.display()))
}

fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("running ip")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

fn config(dir: &Path, cert: &Path) -> String {
    let mut config = AgentConfig::new().zone(
        ZoneSpec::new("kinds.test.")
            .ttl(30)
            .nameserver("ns1.kinds.test.", &[IpAddr::V4(DNS_SERVER_ADDR)]),
    );
    for kind in KINDS {
        let (primary, secondary) = kind.addresses();
        let record = RecordSpec::new(&kind.record(), "A", "failover", kind.name()).endpoints([
            EndpointSpec::new(primary).priority(1),
            EndpointSpec::new(secondary).priority(2),
        ]);
        config = config
            .record(record)
            .check(kind.name(), kind.check(dir, cert));
    }
    config.to_toml()
}

/// Queries `name` every `poll` from `since` until `done` holds for the
/// answer's addresses, at most [`PHASE_LIMIT`]; the time it took.
fn watch(
    client: &mut DnsClient,
    name: &str,
    poll: Duration,
    since: Instant,
    done: impl Fn(&[Ipv4Addr]) -> bool,
) -> Result<Option<Duration>> {
    let deadline = since + PHASE_LIMIT;
    let mut next = Instant::now();
    while Instant::now() < deadline {
        next += poll;
        let wait = next
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
        if let Some(answer) = client.query_a(name, wait)?
            && done(&answer.addrs)
        {
            return Ok(Some(since.elapsed()));
        }
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    Ok(None)
}

pub fn run(agent: &Path, runs: u32, poll: Duration) -> Result<()> {
    println!(
        "\nDetection per check kind: interval {INTERVAL_MS} ms, timeout {TIMEOUT_MS} ms, fall {FALL}, \
         rise {RISE}, no jitter; failover record (primary, secondary); a query every {} ms; \
         {runs} runs per kind",
        poll.as_millis()
    );
    let mut netns = Netns::new(agent)?;
    for kind in KINDS {
        let (primary, secondary) = kind.addresses();
        netns.add_server_lo_address(IpAddr::V4(primary))?;
        netns.add_server_lo_address(IpAddr::V4(secondary))?;
    }
    let (tp, ts) = Kind::Tcp.addresses();
    netns.start_endpoint(SocketAddrV4::new(tp, 80))?;
    netns.start_endpoint(SocketAddrV4::new(ts, 80))?;
    let dir = netns.workdir().to_path_buf();
    let (nginx, cert) = Nginx::start(&netns, &dir)?;
    let (dp, ds) = Kind::Dns.addresses();
    let targets = Targets {
        nginx,
        dns_primary: DnsResponder::start(&netns, SocketAddr::from((dp, DNS_PORT)))?,
        _dns_secondary: DnsResponder::start(&netns, SocketAddr::from((ds, DNS_PORT)))?,
        dir: dir.clone(),
    };
    let path = netns.write_config("kinds.toml", &config(&dir, &cert))?;
    let socket = dir.join("control.sock");
    let pid_file = dir.join("agent.pid");
    netns.start_agent(
        &path,
        &[
            "--control-socket",
            socket.to_str().context("UTF-8 path")?,
            "--pid-file",
            pid_file.to_str().context("UTF-8 path")?,
        ],
    )?;
    let mut client = netns.dns_client()?;
    for kind in KINDS {
        let (primary, _) = kind.addresses();
        if watch(&mut client, &kind.record(), poll, Instant::now(), |a| {
            a == [primary]
        })?
        .is_none()
        {
            bail!(
                "{} never answered with its primary {primary}; agent log:\n{}",
                kind.record(),
                netns.agent_log()
            );
        }
    }

    let mut rows = Vec::new();
    for kind in KINDS {
        let (primary, _) = kind.addresses();
        let name = kind.record();
        let (mut detections, mut recoveries, mut failed) = (Vec::new(), Vec::new(), 0);
        for run in 0..runs {
            // Land the failure at a different point of the check cycle each run.
            let offset = INTERVAL_MS * u64::from(run % 7) / 7;
            std::thread::sleep(Duration::from_millis(2 * INTERVAL_MS + offset));
            let failed_at = Instant::now();
            targets.fail(&mut netns, kind)?;
            let detection = watch(&mut client, &name, poll, failed_at, |a| {
                !a.is_empty() && !a.contains(&primary)
            })?;
            std::thread::sleep(Duration::from_millis(
                INTERVAL_MS * u64::from((run * 3) % 7) / 7,
            ));
            let restored_at = Instant::now();
            targets.restore(&mut netns, kind)?;
            let recovery = watch(&mut client, &name, poll, restored_at, |a| a == [primary])?;
            match (detection, recovery) {
                (Some(d), Some(r)) => {
                    detections.push(d);
                    recoveries.push(r);
                }
                (d, r) => {
                    failed += 1;
                    eprintln!(
                        "{} run {}: detection {d:?}, recovery {r:?} (limit {PHASE_LIMIT:?})",
                        kind.name(),
                        run + 1
                    );
                    detections.extend(d);
                    recoveries.extend(r);
                    if r.is_none() {
                        bail!(
                            "{name}: the primary did not come back; agent log:\n{}",
                            netns.agent_log()
                        );
                    }
                }
            }
        }
        rows.push((kind, detections, recoveries, failed));
    }

    println!();
    println!(
        "| kind | failure | detection ms min / median / max | recovery ms min / median / max | runs |"
    );
    println!("|---|---|---|---|---|");
    for (kind, detections, recoveries, failed) in &rows {
        println!(
            "| {} | {} | {} | {} | {}{} |",
            kind.name(),
            kind.how(),
            summary(detections),
            summary(recoveries),
            detections.len(),
            if *failed > 0 {
                format!(" ({failed} timed out)")
            } else {
                String::new()
            }
        );
    }
    let status = netns.stop_agent()?;
    if !status.success() {
        eprintln!(
            "note: the agent exited with {status} on SIGTERM; log:\n{}",
            netns.agent_log()
        );
    }
    drop(targets);
    Ok(())
}

fn summary(times: &[Duration]) -> String {
    let mut t: Vec<f64> = times.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    if t.is_empty() {
        return "-".into();
    }
    t.sort_by(f64::total_cmp);
    let median = if t.len() % 2 == 1 {
        t[t.len() / 2]
    } else {
        (t[t.len() / 2 - 1] + t[t.len() / 2]) / 2.0
    };
    format!("{:.0} / {:.0} / {:.0}", t[0], median, t[t.len() - 1])
}
