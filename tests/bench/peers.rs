//! The agent next to other authoritative servers under one load generator.
//!
//! One pair of namespaces (the veth bench of [`Netns`]); in the server
//! namespace, one after another: Knot DNS in its XDP mode (`xdp: listen` on
//! the server veth), NSD (plain sockets) and the agent (XDP program plus its
//! userspace server), each serving `example.test.` with the hot name
//! `www.example.test. 30 A 192.0.2.10`, each with response rate limiting off
//! and then on (Knot's `rrl` module, NSD's `rrl-ratelimit`, the agent's
//! `[rate_limit]`; the same rate per /24 and slip 2 for all three). From the
//! client namespace kxdpgun (AF_XDP, Knot's generator) sends the same
//! queries for a bounded time at a bounded rate, twice per server and
//! setting:
//!
//! - a load from the client veth's own address (one source, like one busy
//!   resolver): queries sent, replies/s, share answered;
//! - a spoofed-source flood: the same queries from every address of
//!   [`FLOOD_NET`] (kxdpgun's `--local` with a prefix; the server namespace
//!   routes that prefix back to the client veth, so kernel-socket servers
//!   can answer it too). Bytes out per byte in: the reply frames kxdpgun
//!   received (its count times its average DNS reply size, plus Ethernet,
//!   IPv4 and UDP headers) over the query frames it sent: the amplification
//!   a spoofer gets. (The veth's own byte counters are not used: they count
//!   XDP_TX frames with their Ethernet header and socket traffic without.)
//!
//! kxdpgun attaches its own XDP program to the client veth (so the
//! fixture's pass-through program is detached while it runs): it is also
//! the peer program XDP_TX on the server veth needs to deliver. Knot and
//! kxdpgun leave their programs attached when they exit, and the agent's
//! stays pinned; each is detached here after use (`failover-agent detach`
//! for the agent's). Every process is stopped by PID, every command bounded
//! in time; the namespaces go with the fixture.

use std::{
    net::{Ipv4Addr, SocketAddrV4},
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use anyhow::{Context as _, Result, bail};
use failover_tests::{
    AgentConfig, CheckSpec, DnsClient, Netns, agent_next_to_current_exe,
    dns::QueryOptions,
    is_root,
    netns::{CLIENT_ADDR, CLIENT_VETH, DNS_SERVER_ADDR, ENDPOINT_ADDRS, SERVER_VETH},
    packets::{CLIENT_MAC, SERVER_MAC},
    peers::{Daemon, check_config, require_program, run_bounded},
    poll_until,
};
use hickory_proto::{op::ResponseCode, rr::RecordType};

const ORIGIN: &str = "example.test.";
const NAME: &str = "www.example.test.";
/// The hot name's one address (the agent's healthy primary endpoint).
const ADDRESS: Ipv4Addr = ENDPOINT_ADDRS[0];
const TTL: u32 = 30;
/// The spoofed sources: 256 /24 prefixes, routed back to the client veth.
const FLOOD_NET: &str = "10.53.0.0/16";
/// The slip of every server's RRL: every 2nd limited answer goes out as TC=1.
const SLIP: u32 = 2;

const HELP: &str = "\
failover-bench peers [options]
  --seconds N     length of each kxdpgun run (default 5, 1..=60)
  --qps N         queries per second kxdpgun is asked for (default 1000000,
                  1000..=5000000; it sends what it can)
  --rrl-rate N    responses per second per /24 with RRL on (default 1000)
  --only SERVER   knot, nsd or agent (repeatable; default all three)";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Server {
    KnotXdp,
    Nsd,
    Agent,
}

impl Server {
    fn name(self) -> &'static str {
        match self {
            Server::KnotXdp => "Knot-XDP",
            Server::Nsd => "NSD",
            Server::Agent => "agent",
        }
    }
}

struct Options {
    seconds: u64,
    qps: u64,
    rrl_rate: u32,
    servers: Vec<Server>,
}

impl Options {
    fn parse(args: &[String]) -> Result<Option<Self>> {
        let mut o = Options {
            seconds: 5,
            qps: 1_000_000,
            rrl_rate: 1000,
            servers: Vec::new(),
        };
        let Some(pairs) = crate::flags(args, HELP)? else {
            return Ok(None);
        };
        for (flag, value) in pairs {
            if flag == "--only" {
                o.servers.push(match value {
                    "knot" => Server::KnotXdp,
                    "nsd" => Server::Nsd,
                    "agent" => Server::Agent,
                    _ => bail!("--only {value}: one of knot, nsd, agent"),
                });
                continue;
            }
            let n = crate::number(flag, value)?;
            match flag {
                "--seconds" => o.seconds = n.clamp(1, 60),
                "--qps" => o.qps = n.clamp(1000, 5_000_000),
                "--rrl-rate" => o.rrl_rate = n.clamp(1, 1_000_000) as u32,
                _ => bail!("unknown option {flag}\n{HELP}"),
            }
        }
        if o.servers.is_empty() {
            o.servers = vec![Server::KnotXdp, Server::Nsd, Server::Agent];
        }
        Ok(Some(o))
    }
}

/// What kxdpgun reported for one run.
#[derive(Clone, Debug, Default, PartialEq)]
struct Gun {
    sent: u64,
    replies: u64,
    replies_per_s: u64,
    avg_reply: u64,
}

impl Gun {
    fn share(&self) -> f64 {
        if self.sent == 0 {
            0.0
        } else {
            self.replies as f64 / self.sent as f64
        }
    }

    /// Parses kxdpgun's summary (`total queries: N (X pps)`, `total replies:
    /// N (X pps) (P%)`, `average DNS reply size: N B`).
    fn parse(out: &str) -> Result<Self> {
        let numbers = |prefix: &str| -> Option<Vec<u64>> {
            let line = out.lines().find(|l| l.starts_with(prefix))?;
            Some(
                line[prefix.len()..]
                    .split(|c: char| !c.is_ascii_digit())
                    .filter(|s| !s.is_empty())
                    .filter_map(|s| s.parse().ok())
                    .collect(),
            )
        };
        let q = numbers("total queries:")
            .with_context(|| format!("no `total queries:` in kxdpgun's output:\n{out}"))?;
        let r = numbers("total replies:").unwrap_or_default();
        Ok(Gun {
            sent: q.first().copied().unwrap_or(0),
            replies: r.first().copied().unwrap_or(0),
            replies_per_s: r.get(1).copied().unwrap_or(0),
            avg_reply: numbers("average DNS reply size:")
                .and_then(|v| v.first().copied())
                .unwrap_or(0),
        })
    }
}

/// One server with RRL off or on.
struct Row {
    server: Server,
    rrl: bool,
    load: Gun,
    flood: Gun,
}

/// Ethernet, IPv4 and UDP headers: what a frame adds to a DNS message.
const FRAME_OVERHEAD: u64 = 14 + 20 + 8;

/// The DNS size of kxdpgun's query for `NAME` (header, name, type, class;
/// no EDNS).
fn query_size() -> u64 {
    12 + (NAME.len() as u64 + 1) + 4
}

impl Row {
    /// Frame bytes the server sent per frame byte the flood sent.
    fn amplification(&self) -> Option<f64> {
        let sent = self.flood.sent * (query_size() + FRAME_OVERHEAD);
        let out = self.flood.replies * (self.flood.avg_reply + FRAME_OVERHEAD);
        (sent > 0).then(|| out as f64 / sent as f64)
    }
}

pub fn run(args: &[String]) -> Result<()> {
    let Some(opts) = Options::parse(args)? else {
        return Ok(());
    };
    if !is_root() {
        bail!("needs root (network namespaces, veth pairs, XDP, AF_XDP)");
    }
    let kxdpgun = require_program("kxdpgun", "knot-dnsutils")?;
    let agent = agent_next_to_current_exe()?;
    let mut netns = Netns::new(&agent)?;
    let server_ns = netns.server.clone();
    run_ip(&[
        "-n",
        &server_ns,
        "route",
        "add",
        FLOOD_NET,
        "via",
        &CLIENT_ADDR.to_string(),
    ])?;
    let queries = netns.write_config("queries.txt", &format!("{NAME} A\n"))?;
    let zone = zone_text();
    netns.set_client_pass(false)?;

    println!(
        "peers benchmark: kxdpgun {} s per run at up to {} qps ({NAME} A, no EDNS); RRL on: {} \
         responses/s per /24, slip {SLIP}; flood from {FLOOD_NET}",
        opts.seconds, opts.qps, opts.rrl_rate
    );
    let mut rows = Vec::new();
    for &server in &opts.servers {
        for rrl in [false, true] {
            eprintln!("--- {} RRL {}", server.name(), on_off(rrl));
            let mut running = match server {
                Server::KnotXdp => Running::Daemon(start_knot(&netns, &zone, rrl, &opts)?),
                Server::Nsd => Running::Daemon(start_nsd(&netns, &zone, rrl, &opts)?),
                Server::Agent => {
                    start_agent(&mut netns, rrl, &opts)?;
                    Running::Agent
                }
            };
            let result = measure(&netns, &kxdpgun, &queries, &opts, &mut running);
            let log = running.log(&netns);
            let stopped = running.stop(&mut netns);
            clear_xdp(&netns)?;
            let (load, flood) = result.with_context(|| {
                format!("{} RRL {}; its log:\n{log}", server.name(), on_off(rrl))
            })?;
            stopped?;
            rows.push(Row {
                server,
                rrl,
                load,
                flood,
            });
        }
    }
    print_table(&rows, &opts);
    Ok(())
}

/// A warm-up run (which must be mostly answered), the load, then the flood.
fn measure(
    netns: &Netns,
    kxdpgun: &Path,
    queries: &Path,
    opts: &Options,
    running: &mut Running,
) -> Result<(Gun, Gun)> {
    let warm = gun(netns, kxdpgun, queries, 1, 1000, None)?;
    if warm.share() < 0.5 {
        bail!(
            "warm-up (1 s at 1000 qps): only {} of {} queries answered",
            warm.replies,
            warm.sent
        );
    }
    running.ensure_running()?;
    let load = gun(netns, kxdpgun, queries, opts.seconds, opts.qps, None)?;
    running.ensure_running()?;
    let flood = gun(
        netns,
        kxdpgun,
        queries,
        opts.seconds,
        opts.qps,
        Some(FLOOD_NET),
    )?;
    running.ensure_running()?;
    Ok((load, flood))
}

/// One kxdpgun run from the client namespace, bounded; `local` overrides
/// the source (a prefix spreads the queries over its addresses).
fn gun(
    netns: &Netns,
    kxdpgun: &Path,
    queries: &Path,
    seconds: u64,
    qps: u64,
    local: Option<&str>,
) -> Result<Gun> {
    let mac = |m: [u8; 6]| m.map(|b| format!("{b:02x}")).join(":");
    let mut cmd = netns.client_command(kxdpgun);
    cmd.args(["-t", &seconds.to_string(), "-Q", &qps.to_string()])
        .args([
            "-I",
            CLIENT_VETH,
            "-L",
            &mac(CLIENT_MAC),
            "-R",
            &mac(SERVER_MAC),
        ])
        .arg("-i")
        .arg(queries);
    if let Some(local) = local {
        cmd.args(["-l", local]);
    }
    cmd.arg(DNS_SERVER_ADDR.to_string());
    let mut out = run_bounded(&mut cmd, Duration::from_secs(seconds + 30));
    // Right after another XDP program left the client veth (ours, or the
    // last kxdpgun's), opening the AF_XDP socket can fail with EBUSY for a
    // moment; a few bounded retries get past it.
    for retry in 1..=3 {
        let busy = matches!(&out, Ok(o) if String::from_utf8_lossy(&o.stderr).contains("busy"));
        if !busy {
            break;
        }
        eprintln!("kxdpgun: resource busy; retry {retry}");
        std::thread::sleep(Duration::from_millis(500));
        out = run_bounded(&mut cmd, Duration::from_secs(seconds + 30));
    }
    // kxdpgun leaves its program on the client veth.
    let cleared = run_ip(&[
        "-n",
        &netns.client,
        "link",
        "set",
        CLIENT_VETH,
        "xdp",
        "off",
    ]);
    let out = out?;
    cleared?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "kxdpgun failed ({}):\n{text}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Gun::parse(&text).with_context(|| {
        format!(
            "kxdpgun's stderr:\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Detaches whatever XDP program is left on either veth (Knot leaves its
/// own on the server veth, kxdpgun on the client veth).
fn clear_xdp(netns: &Netns) -> Result<()> {
    run_ip(&[
        "-n",
        &netns.server,
        "link",
        "set",
        SERVER_VETH,
        "xdp",
        "off",
    ])?;
    run_ip(&[
        "-n",
        &netns.client,
        "link",
        "set",
        CLIENT_VETH,
        "xdp",
        "off",
    ])
}

fn run_ip(args: &[&str]) -> Result<()> {
    let out = run_bounded(Command::new("ip").args(args), Duration::from_secs(10))?;
    if !out.status.success() {
        bail!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

fn on_off(b: bool) -> &'static str {
    if b { "on" } else { "off" }
}

/// What is serving now.
enum Running {
    Daemon(Daemon),
    /// The fixture's agent.
    Agent,
}

impl Running {
    fn ensure_running(&mut self) -> Result<()> {
        match self {
            Running::Daemon(d) => d.ensure_running(),
            Running::Agent => Ok(()),
        }
    }

    fn log(&self, netns: &Netns) -> String {
        match self {
            Running::Daemon(d) => d.log(),
            Running::Agent => netns.agent_log(),
        }
    }

    fn stop(self, netns: &mut Netns) -> Result<()> {
        match self {
            Running::Daemon(mut d) => d.stop().map(drop),
            Running::Agent => {
                let status = netns.stop_agent()?;
                if !status.success() {
                    bail!("the agent exited with {status} on SIGTERM");
                }
                // Its data plane stays pinned and attached across restarts:
                // take it down, so the next run starts from nothing.
                let out = netns.run_agent_command(
                    &["detach", "--iface", SERVER_VETH],
                    Duration::from_secs(10),
                )?;
                if !out.status.success() {
                    bail!(
                        "failover-agent detach: {}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
                Ok(())
            }
        }
    }
}

/// The zone Knot and NSD load: the agent's answer for the hot name, with
/// an SOA and NS of its own.
fn zone_text() -> String {
    format!(
        "$ORIGIN {ORIGIN}\n$TTL {TTL}\n\
         @ SOA ns1 hostmaster 1 3600 600 86400 {TTL}\n\
         @ NS ns1\n\
         ns1 A {DNS_SERVER_ADDR}\n\
         www A {ADDRESS}\n"
    )
}

/// A fresh directory for one server run.
fn fresh_dir(netns: &Netns, name: &str) -> Result<PathBuf> {
    let dir = netns.workdir().join(name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// Waits until `daemon` answers the hot name with its address, from a
/// kernel socket in the client namespace.
fn wait_answers(netns: &Netns, daemon: &mut Daemon) -> Result<()> {
    let client_ns = netns.client.clone();
    daemon.wait_ready(|| {
        let mut client = DnsClient::new(&client_ns, SocketAddrV4::new(DNS_SERVER_ADDR, 53))?;
        let answer = client.query(
            NAME,
            RecordType::A,
            QueryOptions::default(),
            Duration::from_millis(300),
        )?;
        Ok(answer.is_some_and(|a| a.rcode == ResponseCode::NoError && a.addrs == [ADDRESS]))
    })
}

/// Knot DNS with XDP on the server veth (and a socket on its address),
/// with the `rrl` module when `rrl`.
fn start_knot(netns: &Netns, zone: &str, rrl: bool, opts: &Options) -> Result<Daemon> {
    let knotd = require_program("knotd", "knot")?;
    let knotc = require_program("knotc", "knot")?;
    let dir = fresh_dir(netns, &format!("knot-rrl-{}", on_off(rrl)))?;
    let zone_file = dir.join(format!("{ORIGIN}zone"));
    std::fs::write(&zone_file, zone)?;
    let d = dir.display();
    let mut config = format!(
        "server:\n    rundir: \"{d}\"\n    listen: [ {DNS_SERVER_ADDR}@53 ]\n\
         \x20   background-workers: 1\n\
         xdp:\n    listen: [ {SERVER_VETH} ]\n    udp: on\n\
         log:\n  - target: stderr\n    any: info\n\
         database:\n    storage: \"{d}/db\"\n"
    );
    if rrl {
        config.push_str(&format!(
            "mod-rrl:\n  - id: bench\n    rate-limit: {}\n    slip: {SLIP}\n",
            opts.rrl_rate
        ));
    }
    config.push_str(&format!(
        "zone:\n  - domain: {ORIGIN}\n    storage: \"{d}\"\n    file: \"{}\"\n\
         \x20   journal-content: none\n    zonefile-sync: -1\n    zonefile-load: whole\n",
        zone_file.display()
    ));
    if rrl {
        config.push_str("    module: mod-rrl/bench\n");
    }
    let config_path = dir.join("knot.conf");
    std::fs::write(&config_path, &config)?;
    // In the server namespace: the XDP interface must exist for the check.
    let mut check = netns.server_command(&knotc);
    check.arg("-c").arg(&config_path).arg("conf-check");
    check_config(&mut check, "knotc conf-check", &config_path)?;
    let mut cmd = netns.server_command(&knotd);
    cmd.arg("-c").arg(&config_path);
    let mut daemon = Daemon::spawn("knotd", cmd, &dir)?;
    wait_answers(netns, &mut daemon)?;
    Ok(daemon)
}

/// NSD on the server veth's address (one server process), with
/// `rrl-ratelimit` when `rrl` (0 turns it off).
fn start_nsd(netns: &Netns, zone: &str, rrl: bool, opts: &Options) -> Result<Daemon> {
    let nsd = require_program("nsd", "nsd")?;
    let dir = fresh_dir(netns, &format!("nsd-rrl-{}", on_off(rrl)))?;
    let zone_file = dir.join(format!("{ORIGIN}zone"));
    std::fs::write(&zone_file, zone)?;
    let d = dir.display();
    // Foreground (-d), root without chroot or privilege drop, state in our
    // directory, no remote control. Minimal responses, as Knot and the
    // agent answer (no authority section for a positive answer).
    let config = format!(
        "server:\n\
         \x20   ip-address: {DNS_SERVER_ADDR}\n\
         \x20   port: 53\n\
         \x20   server-count: 1\n\
         \x20   username: \"\"\n\
         \x20   chroot: \"\"\n\
         \x20   zonesdir: \"{d}\"\n\
         \x20   database: \"\"\n\
         \x20   pidfile: \"{d}/nsd.pid\"\n\
         \x20   xfrdfile: \"{d}/xfrd.state\"\n\
         \x20   zonelistfile: \"{d}/zone.list\"\n\
         \x20   xfrdir: \"{d}\"\n\
         \x20   logfile: \"{d}/nsd.log\"\n\
         \x20   verbosity: 1\n\
         \x20   minimal-responses: yes\n\
         \x20   rrl-ratelimit: {rate}\n\
         \x20   rrl-slip: {SLIP}\n\
         \x20   rrl-ipv4-prefix-length: 24\n\
         \x20   rrl-whitelist-ratelimit: {rate}\n\
         remote-control:\n\
         \x20   control-enable: no\n\
         zone:\n\
         \x20   name: \"{ORIGIN}\"\n\
         \x20   zonefile: \"{zone}\"\n",
        rate = if rrl { opts.rrl_rate } else { 0 },
        zone = zone_file.display(),
    );
    let config_path = dir.join("nsd.conf");
    std::fs::write(&config_path, &config)?;
    if let Ok(checkconf) = require_program("nsd-checkconf", "nsd") {
        check_config(
            Command::new(checkconf).arg(&config_path),
            "nsd-checkconf",
            &config_path,
        )?;
    }
    let mut cmd = netns.server_command(&nsd);
    cmd.arg("-d").arg("-c").arg(&config_path);
    let mut daemon = Daemon::spawn("nsd", cmd, &dir)?;
    wait_answers(netns, &mut daemon)?;
    Ok(daemon)
}

/// The agent (XDP native on the server veth, its userspace server on the
/// address), the hot name a failover record whose primary is healthy, with
/// `[rate_limit]` when `rrl`. Waits until the name is answered with the
/// primary (through the pass-through program, attached for the check only).
fn start_agent(netns: &mut Netns, rrl: bool, opts: &Options) -> Result<()> {
    // The endpoint outlives the agent's runs (only the agent is stopped).
    if netns.pids().is_empty() {
        netns.start_endpoint(SocketAddrV4::new(ADDRESS, 80))?;
    }
    let mut config = AgentConfig::failover(
        TTL,
        &[(ADDRESS, 1), (ENDPOINT_ADDRS[1], 2)],
        CheckSpec::tcp(80).timing(Duration::from_millis(200), Duration::from_millis(100), 1, 1),
    );
    if rrl {
        config = config
            .section("rate_limit", "responses_per_second", opts.rrl_rate)
            .section("rate_limit", "slip", SLIP)
            .section("rate_limit", "window", "1s");
    }
    let path = netns.write_config(
        &format!("agent-rrl-{}.toml", on_off(rrl)),
        &config.to_toml(),
    )?;
    netns.start_agent(&path, &["--stats-interval", "1s"])?;
    netns.set_client_pass(true)?;
    let mut client = netns.dns_client()?;
    let answered = poll_until(Duration::from_secs(10), Duration::from_millis(50), || {
        Ok(client
            .query_a(NAME, Duration::from_millis(200))?
            .filter(|a| a.addrs == [ADDRESS])
            .map(|_| ()))
    });
    netns.set_client_pass(false)?;
    if answered?.is_none() {
        bail!(
            "the agent did not answer {NAME} with {ADDRESS} within 10 s; its log:\n{}",
            netns.agent_log()
        );
    }
    eprintln!("agent (pid {}) ready", netns.agent_pid().unwrap_or(0));
    Ok(())
}

fn print_table(rows: &[Row], opts: &Options) {
    let reference = rows
        .iter()
        .find(|r| r.server == Server::KnotXdp && !r.rrl)
        .map(|r| r.load.replies_per_s);
    println!();
    println!(
        "{:<9} {:>4} {:>12} {:>11} {:>9} {:>8} {:>9} | {:>12} {:>9} {:>8} {:>13}",
        "server",
        "RRL",
        "queries sent",
        "replies/s",
        "answered",
        "reply B",
        "vs Knot",
        "flood sent",
        "answered",
        "reply B",
        "bytes out/in"
    );
    for r in rows {
        let ratio = match reference {
            Some(k) if k > 0 => format!("{:.2}", r.load.replies_per_s as f64 / k as f64),
            _ => "-".into(),
        };
        let amplification = r
            .amplification()
            .map_or_else(|| "-".to_string(), |a| format!("{a:.3}"));
        println!(
            "{:<9} {:>4} {:>12} {:>11} {:>8.1}% {:>8} {:>9} | {:>12} {:>8.1}% {:>8} {:>13}",
            r.server.name(),
            on_off(r.rrl),
            r.load.sent,
            r.load.replies_per_s,
            r.load.share() * 100.0,
            r.load.avg_reply,
            ratio,
            r.flood.sent,
            r.flood.share() * 100.0,
            r.flood.avg_reply,
            amplification
        );
    }
    println!();
    println!(
        "left of |: {} s from the client's one address; right: {} s from every address of \
         {FLOOD_NET} (256 /24s). replies/s and answered count every reply, TC=1 slips included \
         (reply B is their average DNS size). vs Knot: replies/s over Knot-XDP's with RRL off. \
         bytes out/in: reply frames received by kxdpgun over query frames it sent during the flood ({} B each, Ethernet to DNS). The \
         agent's kernel limit is one state per prefix, shared by the {} CPUs here.",
        opts.seconds,
        opts.seconds,
        query_size() + FRAME_OVERHEAD,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kxdpgun() {
        let out = "using interface fo-cli0, XDP threads 1, UDP, native mode\n\
                   thread#00: sent 300010, received 299256\n\
                   total queries:     300010 (100003 pps)\n\
                   total replies:     299256 (99752 pps) (99%)\n\
                   average DNS reply size: 50 B\n\
                   average Ethernet reply rate: 73417472 bps (73.42 Mbps)\n\
                   responded NOERROR:   299256\n\
                   duration: 3 s\n";
        assert_eq!(
            Gun::parse(out).unwrap(),
            Gun {
                sent: 300010,
                replies: 299256,
                replies_per_s: 99752,
                avg_reply: 50,
            }
        );
    }
}
