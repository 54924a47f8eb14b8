//! How fast the answers follow an endpoint's death and return.
//!
//! The agent runs in a server namespace with two demo endpoints (primary,
//! secondary; failover policy); a client in another namespace sends a real DNS
//! query every 10 ms. Each run kills the primary and measures the time to the
//! first answer without it (detection), then restarts it and measures the time
//! to the first answer with it again (recovery).
//!
//! Then, unless `--only` picks parts: detection time per check kind
//! ([`crate::kinds`]) and the agent's CPU use with 10,000 endpoints
//! ([`crate::cpu`]).

use std::{
    net::{Ipv4Addr, SocketAddrV4},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use failover_tests::{
    AgentConfig, CheckSpec, DnsClient, Netns, agent_next_to_current_exe, is_root,
    netns::ENDPOINT_ADDRS,
};

const NAME: &str = "www.example.test.";
const PORT: u16 = 80;
const PRIMARY: Ipv4Addr = ENDPOINT_ADDRS[0];
const SECONDARY: Ipv4Addr = ENDPOINT_ADDRS[1];
/// Detection and recovery should each take at most this long.
const TARGET: Duration = Duration::from_millis(300);
/// Most runs accepted: every loop here is bounded.
const MAX_RUNS: u32 = 1000;

const HELP: &str = "\
failover-bench failover [options]
  --only PART        run one part: failover, kinds or cpu (repeatable; default all three)
failover/recovery:
  --runs R           kill/restart cycles (default 5, at most 1000)
  --interval-ms N    health check interval (default 100)
  --timeout-ms N     health check timeout (default 50)
  --fall N           failed checks that take an endpoint out (default 2)
  --rise N           good checks that bring it back (default 2)
  --poll-ms N        time between DNS queries (default 10)
  --phase-limit-s N  give up on one detection or recovery after N s (default 5)
detection per check kind:
  --kind-runs N      failures per kind (default 3)
CPU:
  --endpoints N      endpoints checked (default 10000)
  --cpu-interval-ms N  their check interval (default 1000)
  --cpu-seconds N    measurement window after the first round (default 20)";

/// The parts of the benchmark.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Part {
    Failover,
    Kinds,
    Cpu,
}

struct Options {
    runs: u32,
    interval: Duration,
    timeout: Duration,
    fall: u32,
    rise: u32,
    poll: Duration,
    phase_limit: Duration,
    parts: Vec<Part>,
    kind_runs: u32,
    cpu: crate::cpu::CpuOptions,
}

impl Options {
    fn parse(args: &[String]) -> Result<Option<Self>> {
        let mut o = Options {
            runs: 5,
            interval: Duration::from_millis(100),
            timeout: Duration::from_millis(50),
            fall: 2,
            rise: 2,
            poll: Duration::from_millis(10),
            phase_limit: Duration::from_secs(5),
            parts: Vec::new(),
            kind_runs: 3,
            cpu: crate::cpu::CpuOptions {
                endpoints: 10_000,
                interval: Duration::from_secs(1),
                seconds: 20,
            },
        };
        let Some(pairs) = crate::flags(args, HELP)? else {
            return Ok(None);
        };
        for (flag, value) in pairs {
            if flag == "--only" {
                o.parts.push(match value {
                    "failover" => Part::Failover,
                    "kinds" => Part::Kinds,
                    "cpu" => Part::Cpu,
                    _ => bail!("--only {value}: one of failover, kinds, cpu"),
                });
                continue;
            }
            let n = crate::number(flag, value)?;
            let count = || -> Result<u32> {
                u32::try_from(n)
                    .ok()
                    .filter(|&c| c >= 1)
                    .with_context(|| format!("{flag} must be 1 or more"))
            };
            match flag {
                "--runs" => o.runs = count()?.min(MAX_RUNS),
                "--interval-ms" => o.interval = Duration::from_millis(n),
                "--timeout-ms" => o.timeout = Duration::from_millis(n),
                "--fall" => o.fall = count()?,
                "--rise" => o.rise = count()?,
                "--poll-ms" => o.poll = Duration::from_millis(n.max(1)),
                "--phase-limit-s" => o.phase_limit = Duration::from_secs(n.clamp(1, 600)),
                "--kind-runs" => o.kind_runs = count()?.min(MAX_RUNS),
                "--endpoints" => o.cpu.endpoints = (count()? as usize).min(200_000),
                "--cpu-interval-ms" => o.cpu.interval = Duration::from_millis(n.clamp(10, 60_000)),
                "--cpu-seconds" => o.cpu.seconds = n.clamp(1, 600),
                _ => bail!("unknown option {flag}\n{HELP}"),
            }
        }
        if o.timeout >= o.interval {
            bail!("--timeout-ms must be below --interval-ms");
        }
        if o.parts.is_empty() {
            o.parts = vec![Part::Failover, Part::Kinds, Part::Cpu];
        }
        Ok(Some(o))
    }
}

/// What the client saw during one phase.
struct Phase {
    /// From the kill/restart to the first answer that shows the change.
    took: Option<Duration>,
    queries: u32,
    answered: u32,
}

pub fn run(args: &[String]) -> Result<()> {
    let Some(opts) = Options::parse(args)? else {
        return Ok(());
    };
    if !is_root() {
        bail!("needs root (network namespaces, veth pairs, XDP)");
    }
    let agent = agent_next_to_current_exe()?;
    if opts.parts.contains(&Part::Failover) {
        failover_and_recovery(&agent, &opts)?;
    }
    if opts.parts.contains(&Part::Kinds) {
        crate::kinds::run(&agent, opts.kind_runs, opts.poll)?;
    }
    if opts.parts.contains(&Part::Cpu) {
        crate::cpu::run(&agent, &opts.cpu)?;
    }
    Ok(())
}

/// Part 1: the primary killed and restarted, `opts.runs` times.
fn failover_and_recovery(agent: &std::path::Path, opts: &Options) -> Result<()> {
    let primary = SocketAddrV4::new(PRIMARY, PORT);
    let secondary = SocketAddrV4::new(SECONDARY, PORT);

    let mut netns = Netns::new(agent)?;
    netns.start_endpoint(primary)?;
    netns.start_endpoint(secondary)?;
    let config = AgentConfig::failover(
        30,
        &[(PRIMARY, 1), (SECONDARY, 2)],
        // Detection itself is measured: the kill/restart cycles would be
        // flapping to the damping (on by default).
        CheckSpec::tcp(PORT)
            .timing(opts.interval, opts.timeout, opts.rise, opts.fall)
            .set("flap_limit", 0),
    );
    let path = netns.write_config("bench.toml", &config.to_toml())?;
    netns.start_agent(&path, &[])?;
    let mut client = netns.dns_client()?;

    println!(
        "failover benchmark: interval {} ms, timeout {} ms, fall {}, rise {}, a query every {} ms, \
         {} runs, target <= {} ms",
        opts.interval.as_millis(),
        opts.timeout.as_millis(),
        opts.fall,
        opts.rise,
        opts.poll.as_millis(),
        opts.runs,
        TARGET.as_millis()
    );
    let first = watch(&mut client, opts, Instant::now(), |a| a == [PRIMARY])?;
    if first.took.is_none() {
        bail!(
            "no answer with the primary within {:?} of the agent starting; agent log:\n{}",
            opts.phase_limit,
            netns.agent_log()
        );
    }

    let mut rows = Vec::new();
    for run in 1..=opts.runs {
        // Vary where in the check cycle the kill lands.
        let settle = opts.interval * 2 + opts.interval.mul_f64(f64::from(run % 7) / 7.0);
        std::thread::sleep(settle);

        let killed = Instant::now();
        netns.kill_endpoint(primary)?;
        let detection = watch(&mut client, opts, killed, |a| {
            !a.is_empty() && !a.contains(&PRIMARY)
        })?;

        // Detection is seen right after a check, so an immediate restart would
        // always land at the same point of the check cycle: vary it.
        std::thread::sleep(opts.interval.mul_f64(f64::from((run * 3) % 7) / 7.0));
        let restarted = Instant::now();
        netns.start_endpoint(primary)?;
        let recovery = watch(&mut client, opts, restarted, |a| a.contains(&PRIMARY))?;
        if recovery.took.is_none() {
            eprintln!(
                "run {run}: the primary did not come back within {:?}",
                opts.phase_limit
            );
        }
        rows.push((run, detection, recovery));
    }

    print_table(&rows);
    let status = netns.stop_agent()?;
    if !status.success() {
        eprintln!(
            "note: the agent exited with {status} on SIGTERM; log:\n{}",
            netns.agent_log()
        );
    }
    Ok(())
}

/// Queries every `opts.poll` until an answer's addresses satisfy `done`, at
/// most for `opts.phase_limit`.
fn watch(
    client: &mut DnsClient,
    opts: &Options,
    since: Instant,
    mut done: impl FnMut(&[Ipv4Addr]) -> bool,
) -> Result<Phase> {
    let deadline = since + opts.phase_limit;
    let mut phase = Phase {
        took: None,
        queries: 0,
        answered: 0,
    };
    let mut next = Instant::now();
    while Instant::now() < deadline {
        next += opts.poll;
        phase.queries += 1;
        // Wait for the answer until the next query is due, no longer.
        let wait = next
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
        if let Some(answer) = client.query_a(NAME, wait)? {
            phase.answered += 1;
            if done(&answer.addrs) {
                phase.took = Some(since.elapsed());
                return Ok(phase);
            }
        }
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    Ok(phase)
}

fn verdict(took: Option<Duration>) -> &'static str {
    match took {
        Some(t) if t <= TARGET => "PASS",
        _ => "FAIL",
    }
}

fn ms(took: Option<Duration>) -> String {
    took.map(|t| format!("{:.1}", t.as_secs_f64() * 1e3))
        .unwrap_or_else(|| "timeout".into())
}

fn print_table(rows: &[(u32, Phase, Phase)]) {
    println!();
    println!(
        "{:>4}  {:>12}  {:>6}  {:>12}  {:>6}  {:>14}",
        "run", "detection ms", "target", "recovery ms", "target", "answered/sent"
    );
    for (run, detection, recovery) in rows {
        println!(
            "{:>4}  {:>12}  {:>6}  {:>12}  {:>6}  {:>14}",
            run,
            ms(detection.took),
            verdict(detection.took),
            ms(recovery.took),
            verdict(recovery.took),
            format!(
                "{}/{}",
                detection.answered + recovery.answered,
                detection.queries + recovery.queries
            )
        );
    }
    println!();
    for (what, pick) in [
        (
            "detection",
            (|r: &(u32, Phase, Phase)| r.1.took) as fn(&_) -> _,
        ),
        ("recovery", |r: &(u32, Phase, Phase)| r.2.took),
    ] {
        let mut times: Vec<Duration> = rows.iter().filter_map(pick).collect();
        let failed = rows.len() - times.len();
        times.sort();
        if times.is_empty() {
            println!("{what:>9}: no run completed");
            continue;
        }
        let median = if times.len() % 2 == 1 {
            times[times.len() / 2]
        } else {
            (times[times.len() / 2 - 1] + times[times.len() / 2]) / 2
        };
        let within = times.iter().filter(|&&t| t <= TARGET).count();
        println!(
            "{what:>9}: min {} ms, median {} ms, max {} ms; {within}/{} within {} ms{}",
            ms(times.first().copied()),
            ms(Some(median)),
            ms(times.last().copied()),
            rows.len(),
            TARGET.as_millis(),
            if failed > 0 {
                format!(", {failed} timed out")
            } else {
                String::new()
            }
        );
    }
}
