//! The agent's CPU use with many endpoints: N TCP checks per interval against
//! loopback inside the server namespace. Every endpoint has its own address
//! in 127.1.0.0/16 (distinct targets, so no dedupe); one listener socket on
//! 0.0.0.0:PORT accepts them all and counts the connections, which is how
//! many checks really ran. The agent's CPU time (utime + stime from
//! /proc/<pid>/stat) is read over two windows after its first round of
//! checks: one with nobody reading its HTTP endpoint, then one with a scrape
//! of `/metrics` every second (each scrape timed).

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use failover_tests::{
    AgentConfig, CheckSpec, CountingListener, DnsClient, EndpointSpec, Netns, RecordSpec, ZoneSpec,
    listeners::ListenerOptions, netns::DNS_SERVER_ADDR, web,
};

/// The port every endpoint is checked on.
const PORT: u16 = 9000;
/// Endpoints per record (the most a record may have).
const PER_RECORD: usize = 16;
/// How long the first round (every record answering) may take.
const FIRST_ROUND_LIMIT: Duration = Duration::from_secs(60);
/// The agent's HTTP endpoint (its default), in the server namespace.
const HTTP: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9153);
/// Time between scrapes in the scraping window.
const SCRAPE_EVERY: Duration = Duration::from_secs(1);

/// What Prometheus 2.x asks for by default: OpenMetrics first.
const OPENMETRICS: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// One scrape of `/metrics`: how long it took, how big it was, and
/// whether it asked for OpenMetrics (every other one does).
struct Scrape {
    took: Duration,
    bytes: usize,
    openmetrics: bool,
}

/// Scrapes `/metrics` every [`SCRAPE_EVERY`] until `stop`; fails on the
/// first scrape that is not a 200.
fn scrape_loop(ns: String, stop: Arc<AtomicBool>) -> Result<Vec<Scrape>> {
    let mut scrapes = Vec::new();
    let mut next = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let openmetrics = scrapes.len() % 2 == 1;
        let started = Instant::now();
        let reply = web::get(&ns, HTTP, "/metrics", openmetrics.then_some(OPENMETRICS))?;
        let took = started.elapsed();
        if reply.status != 200 {
            bail!("/metrics: {} {}", reply.status, reply.body);
        }
        scrapes.push(Scrape {
            took,
            bytes: reply.body.len(),
            openmetrics,
        });
        next += SCRAPE_EVERY;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    Ok(scrapes)
}

/// The agent's CPU over `seconds`: (cpu, user, system, elapsed seconds,
/// checks accepted).
fn window(
    pid: u32,
    acceptor: &CountingListener,
    seconds: u64,
) -> Result<(f64, f64, f64, f64, u64)> {
    let (cpu0, accepted0, t0) = (cpu_seconds(pid)?, acceptor.count(), Instant::now());
    std::thread::sleep(Duration::from_secs(seconds));
    let (cpu1, accepted1, elapsed) = (cpu_seconds(pid)?, acceptor.count(), t0.elapsed());
    let (user, system) = (cpu1.0 - cpu0.0, cpu1.1 - cpu0.1);
    Ok((
        user + system,
        user,
        system,
        elapsed.as_secs_f64(),
        accepted1 - accepted0,
    ))
}

pub struct CpuOptions {
    pub endpoints: usize,
    pub interval: Duration,
    pub seconds: u64,
}

/// The endpoint addresses: 127.1.0.1, 127.1.0.2, ... (never .0 or .255 in
/// the last octet, for readability).
fn endpoint_address(i: usize) -> Ipv4Addr {
    let i = i as u32;
    Ipv4Addr::new(
        127,
        1 + (i / (250 * 256)) as u8,
        (i / 250 % 256) as u8,
        (i % 250 + 1) as u8,
    )
}

fn record_name(r: usize) -> String {
    format!("r{r}.bench.test.")
}

fn config(opts: &CpuOptions) -> String {
    let check = CheckSpec::tcp(PORT).timing(opts.interval, opts.interval / 2, 2, 3);
    let records = (0..opts.endpoints.div_ceil(PER_RECORD)).map(|r| {
        let first = r * PER_RECORD;
        let endpoints = (first..(first + PER_RECORD).min(opts.endpoints))
            .map(|i| EndpointSpec::new(endpoint_address(i)));
        RecordSpec::new(&record_name(r), "A", "all-healthy", "tcp")
            .set("max_answers", PER_RECORD)
            .endpoints(endpoints)
    });
    AgentConfig::new()
        .zone(
            ZoneSpec::new("bench.test.")
                .ttl(30)
                .nameserver("ns1.bench.test.", &[IpAddr::V4(DNS_SERVER_ADDR)]),
        )
        .check("tcp", check)
        .records(records)
        .to_toml()
}

/// (utime, stime) of `pid`, in seconds.
pub(crate) fn cpu_seconds(pid: u32) -> Result<(f64, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat (did the agent exit?)"))?;
    // The command name may contain spaces: fields are counted after its ')'.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("unparsable /proc/pid/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of stat(5); `rest` starts at field 3.
    let ticks = |i: usize| -> Result<u64> {
        fields
            .get(i - 3)
            .and_then(|f| f.parse().ok())
            .with_context(|| format!("field {i} of /proc/{pid}/stat"))
    };
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Ok((ticks(14)? as f64 / hz, ticks(15)? as f64 / hz))
}

/// A `Key: value` line of /proc/<pid>/status.
fn status_field(pid: u32, key: &str) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| {
            l.strip_prefix(key)?
                .strip_prefix(':')
                .map(|v| v.trim().to_string())
        })
}

/// Raises this process's open-file limit (soft and hard) to at least `want`
/// if it may (CAP_SYS_RESOURCE), else the soft one to the hard one: the agent,
/// started by us, inherits it (and raises its own soft limit to the hard one).
fn raise_nofile(want: u64) -> Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write structs we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return Err(std::io::Error::last_os_error()).context("getrlimit");
        }
        for hard in [limit.rlim_max.max(want), limit.rlim_max] {
            let raised = libc::rlimit {
                rlim_cur: hard,
                rlim_max: hard,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                return Ok(hard);
            }
        }
        Err(std::io::Error::last_os_error()).context("raising RLIMIT_NOFILE")
    }
}

/// Total A addresses answered over every record (UDP, the kernel answers).
fn answered_endpoints(client: &mut DnsClient, records: usize) -> Result<usize> {
    let mut total = 0;
    for r in 0..records {
        let name = record_name(r);
        // One retry: a lost datagram is not a missing endpoint.
        let answer = match client.query_a(&name, Duration::from_millis(500))? {
            Some(a) => Some(a),
            None => client.query_a(&name, Duration::from_millis(500))?,
        };
        total += answer.map_or(0, |a| a.addrs.len());
    }
    Ok(total)
}

pub fn run(agent: &std::path::Path, opts: &CpuOptions) -> Result<()> {
    let nofile = raise_nofile(4 * opts.endpoints as u64 + 1024)?;
    let records = opts.endpoints.div_ceil(PER_RECORD);
    println!(
        "\nCPU benchmark: {} endpoints ({} distinct addresses in 127.1.0.0/16, one listener on \
         0.0.0.0:{PORT}), {records} records of up to {PER_RECORD}, tcp check every {} ms \
         (timeout {} ms, rise 2, fall 3), agent in a namespace, XDP native on a veth, \
         RLIMIT_NOFILE {nofile}; measured over {} s after the first round, then as long again with a scrape of /metrics every second",
        opts.endpoints,
        opts.endpoints,
        opts.interval.as_millis(),
        (opts.interval / 2).as_millis(),
        opts.seconds
    );
    let mut netns = Netns::new(agent)?;
    // One listener for every endpoint address, accepting on two threads with a
    // deep backlog: the checks arrive in bursts.
    let acceptor = ListenerOptions::new((Ipv4Addr::UNSPECIFIED, PORT))
        .netns(&netns.server)
        .backlog(4096)
        .threads(2)
        .start()?;
    let path = netns.write_config("cpu.toml", &config(opts))?;
    let pid_file = netns.workdir().join("agent.pid");
    let socket = netns.workdir().join("control.sock");
    let started = Instant::now();
    netns.start_agent(
        &path,
        &[
            "--pid-file",
            pid_file.to_str().context("UTF-8 path")?,
            "--control-socket",
            socket.to_str().context("UTF-8 path")?,
            "--stats-interval",
            "0",
        ],
    )?;
    let pid = netns.agent_pid().context("the agent's pid")?;
    let mut client = netns.dns_client()?;

    // First round: the last record answers with all its endpoints.
    let last = records - 1;
    let last_size = opts.endpoints - last * PER_RECORD;
    let deadline = started + FIRST_ROUND_LIMIT;
    loop {
        if let Some(a) = client.query_a(&record_name(last), Duration::from_millis(200))?
            && a.addrs.len() == last_size
        {
            break;
        }
        if Instant::now() > deadline || !netns.agent_running()? {
            bail!(
                "{} does not answer with its {last_size} endpoints within {FIRST_ROUND_LIMIT:?}; \
                 agent log (tail):\n{}",
                record_name(last),
                tail(&netns.agent_log(), 30)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let first_round = started.elapsed();
    let (user, system) = cpu_seconds(pid)?;
    let cpu_start_up = user + system;
    // Let the start-up burst (state-change logging, first writes) pass.
    std::thread::sleep(opts.interval * 2);

    // Window 1: nobody reads the HTTP endpoint.
    let (cpu, user, system, secs, accepted) = window(pid, &acceptor, opts.seconds)?;
    // Window 2: a scrape of /metrics every second, as Prometheus would.
    let stop = Arc::new(AtomicBool::new(false));
    let scraper = {
        let (ns, stop) = (netns.server.clone(), stop.clone());
        std::thread::spawn(move || scrape_loop(ns, stop))
    };
    let scraping = window(pid, &acceptor, opts.seconds);
    stop.store(true, Ordering::Relaxed);
    let scrapes = scraper
        .join()
        .map_err(|_| anyhow::anyhow!("the scraper panicked"))??;
    let (s_cpu, s_user, s_system, s_secs, s_accepted) = scraping?;
    let rss = status_field(pid, "VmRSS").unwrap_or_else(|| "?".into());
    let hwm = status_field(pid, "VmHWM").unwrap_or_else(|| "?".into());
    let threads = status_field(pid, "Threads").unwrap_or_else(|| "?".into());
    let answered = answered_endpoints(&mut client, records)?;
    let unhealthy_lines = netns
        .agent_log()
        .lines()
        .filter(|l| l.contains("-> unhealthy"))
        .count();

    let checks = accepted as f64 / secs;
    let s_checks = s_accepted as f64 / s_secs;
    let expected = opts.endpoints as f64 / opts.interval.as_secs_f64();
    if scrapes.is_empty() {
        bail!("no scrape completed");
    }
    // Scrape times, each format apart: text 0.0.4 (no Accept) and
    // OpenMetrics (what Prometheus negotiates).
    let times = |openmetrics: bool| -> Vec<f64> {
        let mut took: Vec<f64> = scrapes
            .iter()
            .filter(|s| s.openmetrics == openmetrics)
            .map(|s| s.took.as_secs_f64() * 1000.0)
            .collect();
        took.sort_by(f64::total_cmp);
        took
    };
    let summary = |took: &[f64]| -> String {
        if took.is_empty() {
            return "none".to_string();
        }
        let pct = |p: f64| took[((took.len() - 1) as f64 * p).round() as usize];
        format!(
            "{:.1} / {:.1} / {:.1} / {:.1} ms ({} scrapes)",
            took[0],
            pct(0.5),
            pct(0.95),
            took[took.len() - 1],
            took.len()
        )
    };
    println!();
    println!("| metric | without scraping | scraping /metrics every 1 s |");
    println!("|---|---|---|");
    println!("| endpoints (distinct targets) | {} | |", opts.endpoints);
    println!("| records | {records} | |");
    println!("| check interval | {} ms | |", opts.interval.as_millis());
    println!(
        "| first round (start to every record answering) | {:.2} s, {:.2} s CPU | |",
        first_round.as_secs_f64(),
        cpu_start_up
    );
    println!("| measured window | {secs:.1} s | {s_secs:.1} s |");
    println!(
        "| agent CPU time in the window (user + system) | {cpu:.2} s ({user:.2} + {system:.2}) | {s_cpu:.2} s ({s_user:.2} + {s_system:.2}) |"
    );
    println!(
        "| agent CPU, % of one core | {:.1} % | {:.1} % |",
        100.0 * cpu / secs,
        100.0 * s_cpu / s_secs
    );
    println!(
        "| checks per second (listener accepts; expected {expected:.0}) | {checks:.0} | {s_checks:.0} |"
    );
    println!(
        "| CPU per check | {:.1} µs | {:.1} µs |",
        1e6 * cpu / (checks * secs).max(1.0),
        1e6 * s_cpu / (s_checks * s_secs).max(1.0)
    );
    println!(
        "| scrapes of /metrics | | {}, {} KiB each (text) |",
        scrapes.len(),
        scrapes
            .iter()
            .find(|s| !s.openmetrics)
            .map_or(0, |s| s.bytes)
            / 1024
    );
    println!(
        "| scrape time, text 0.0.4, min / median / p95 / max (goal < 50 ms) | | {} |",
        summary(&times(false))
    );
    println!(
        "| scrape time, OpenMetrics (as Prometheus asks), min / median / p95 / max | | {} |",
        summary(&times(true))
    );
    println!("| agent RSS now / peak | | {rss} / {hwm} |");
    println!("| agent threads | | {threads} |");
    println!(
        "| endpoints in answers at the end | | {answered} / {} |",
        opts.endpoints
    );
    println!("| \"-> unhealthy\" log lines during the run | | {unhealthy_lines} |");

    drop(client);
    let status = netns.stop_agent()?;
    drop(acceptor);
    if !status.success() {
        eprintln!(
            "note: the agent exited with {status} on SIGTERM; log (tail):\n{}",
            tail(&netns.agent_log(), 30)
        );
    }
    Ok(())
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
