//! What a restart of the agent costs the clients: a steady stream of UDP
//! queries for a hot name (about 2,500 a second, from a client namespace)
//! while the agent is killed (-9) or stopped (SIGTERM) and started again
//! half a second later, once with the data plane pinned (the default) and
//! once as before pinning, side by side: queries sent, answered, lost,
//! wrong, from the stop until the new agent has finished its first round of
//! checks. Before pinning, the program went with the agent's process: with
//! SIGTERM that is `--detach-on-exit`; a kill -9 leaves the pins in place,
//! so there the old behaviour is played by `failover-agent detach` right
//! after the kill.
//!
//! Then a takeover (a new agent started over the running one) and an
//! upgrade (the same with the test build of the next map layout), each
//! under a mix of queries (UDP A from the kernel; SOA, NS, MX over UDP and
//! A over TCP from userspace), counted from the new agent's start until its
//! first round is over, with both agents run as usual and with
//! `--detach-on-exit` (which a takeover must not let detach anything).

use std::{
    net::SocketAddrV4,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Result, bail};
use failover_tests::{
    AgentConfig, CheckSpec, DNS_SERVER_ADDR, Netns, agent_next_to_current_exe, is_root,
    load::{MixedStream, QueryStream, Tally, tally, tally_checked},
    netns::{ENDPOINT_ADDRS, SERVER_VETH},
    poll_until,
};

const NAME: &str = "www.example.test.";
const HELP: &str = "\
failover-bench restart
  kill -9 and SIGTERM, each followed by a new agent 0.5 s later, with the
  data plane pinned and as before pinning; a takeover and an upgrade to a
  changed map layout over a running agent, with and without
  --detach-on-exit; takes about two minutes";

/// How an agent is stopped.
#[derive(Clone, Copy)]
enum Stop {
    Kill,
    Term,
}

pub fn run(args: &[String]) -> Result<()> {
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{HELP}");
        return Ok(());
    }
    if let Some(other) = args.first() {
        bail!("unknown option {other:?}\n{HELP}");
    }
    if !is_root() {
        bail!("needs root (network namespaces, veth pairs, XDP)");
    }
    let agent = agent_next_to_current_exe()?;
    let mut rows = Vec::new();
    for (stop, what) in [
        (Stop::Kill, "kill -9, start"),
        (Stop::Term, "SIGTERM, start"),
    ] {
        for detach in [false, true] {
            let tally = restart(&agent, stop, detach)?;
            let how = match (detach, stop) {
                (false, _) => "pinned",
                (true, Stop::Term) => "--detach-on-exit",
                (true, Stop::Kill) => "unpinned (detach after the kill)",
            };
            rows.push((what, how, tally));
        }
    }
    let next = agent.with_file_name("failover-agent-next-layout");
    if !next.is_file() {
        bail!(
            "{} is missing: build it with `cargo build --release -p failover-tests --bins`",
            next.display()
        );
    }
    for (binary, what) in [
        (&agent, "takeover (mixed load)"),
        (&next, "upgrade, layout changed (mixed load)"),
    ] {
        for detach in [false, true] {
            let tally = take_over(&agent, binary, detach)?;
            let how = if detach { "--detach-on-exit" } else { "pinned" };
            rows.push((what, how, tally));
        }
    }
    println!(
        "Restart under load: A queries for {NAME} every 400 µs over the veth; counted from the stop \
         until the new agent answers after its first round (0.5 s without an agent). Takeover and \
         upgrade: a new agent started over the running one, under UDP A (kernel) plus SOA/NS/MX \
         over UDP and A over TCP (userspace), all counted, from the new agent's start until its first round\n"
    );
    println!("| event | data plane | sent | answered | lost | wrong | lost % |");
    println!("|---|---|---:|---:|---:|---:|---:|");
    for (what, how, t) in rows {
        println!(
            "| {what} | {how} | {} | {} | {} | {} | {:.2} |",
            t.sent,
            t.answered,
            t.lost,
            t.wrong,
            100.0 * t.lost as f64 / t.sent.max(1) as f64
        );
    }
    Ok(())
}

/// One takeover under the mixed load: `binary` started over a running
/// agent; the tally (every stream summed) from its start until its first
/// round is over.
fn take_over(agent: &PathBuf, binary: &Path, detach: bool) -> Result<Tally> {
    let primary = ENDPOINT_ADDRS[0];
    let mut netns = Netns::new(agent)?;
    netns.start_endpoint(SocketAddrV4::new(primary, 80))?;
    let config = AgentConfig::failover(30, &[(primary, 1)], CheckSpec::tcp(80));
    let path = netns.write_config("agent.toml", &config.to_toml())?;
    let socket = netns.workdir().join("agent.sock").display().to_string();
    let pid_file = netns.workdir().join("agent.pid").display().to_string();
    let mut extra = vec!["--control-socket", &socket, "--pid-file", &pid_file];
    if detach {
        extra.push("--detach-on-exit");
    }
    netns.start_agent(&path, &extra)?;
    let mut client = netns.dns_client()?;
    let up = poll_until(Duration::from_secs(5), Duration::from_millis(50), || {
        Ok(client
            .query_a(NAME, Duration::from_millis(200))?
            .filter(|a| a.addrs == [primary]))
    })?;
    if up.is_none() {
        bail!("the agent never answered; its log:\n{}", netns.agent_log());
    }
    let load = MixedStream::start(
        &netns.client,
        SocketAddrV4::new(DNS_SERVER_ADDR, 53),
        NAME,
        "example.test.",
        vec![primary],
        Duration::from_secs(40),
    )?;
    std::thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    let taken = netns.take_over_agent(binary, &path, &extra, Duration::from_secs(20));
    let answering = poll_until(Duration::from_secs(10), Duration::from_millis(20), || {
        Ok(netns
            .agent_log()
            .contains("first round of health checks complete")
            .then_some(()))
    });
    std::thread::sleep(Duration::from_millis(300));
    let settled = Instant::now();
    let samples = load.stop();
    taken?;
    if answering?.is_none() {
        bail!("the new agent never finished its first round");
    }
    netns.stop_agent()?;
    let mut sum = Tally::default();
    for (_, t) in tally_checked(&samples, started, settled) {
        sum.sent += t.sent;
        sum.answered += t.answered;
        sum.lost += t.lost;
        sum.wrong += t.wrong;
    }
    Ok(sum)
}

/// One restart under load; the tally from the stop to the new agent's
/// first answers.
fn restart(agent: &PathBuf, stop: Stop, detach: bool) -> Result<Tally> {
    let primary = ENDPOINT_ADDRS[0];
    let mut netns = Netns::new(agent)?;
    netns.start_endpoint(SocketAddrV4::new(primary, 80))?;
    let config = AgentConfig::failover(30, &[(primary, 1)], CheckSpec::tcp(80));
    let path = netns.write_config("agent.toml", &config.to_toml())?;
    let extra: &[&str] = if detach { &["--detach-on-exit"] } else { &[] };
    netns.start_agent(&path, extra)?;
    let mut client = netns.dns_client()?;
    let up = poll_until(Duration::from_secs(5), Duration::from_millis(50), || {
        Ok(client
            .query_a(NAME, Duration::from_millis(200))?
            .filter(|a| a.addrs == [primary]))
    })?;
    if up.is_none() {
        bail!("the agent never answered; its log:\n{}", netns.agent_log());
    }
    let load = QueryStream::start(netns.dns_client()?, NAME, Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(500));
    let stopped = Instant::now();
    match stop {
        Stop::Kill => {
            netns.kill_agent()?;
            if detach {
                netns.run_agent_command(
                    &["detach", "--iface", SERVER_VETH],
                    Duration::from_secs(10),
                )?;
            }
        }
        Stop::Term => {
            netns.stop_agent()?;
        }
    };
    std::thread::sleep(Duration::from_millis(500));
    netns.start_agent(&path, extra)?;
    // Until its first round is over and it answers again.
    let answering = poll_until(Duration::from_secs(10), Duration::from_millis(20), || {
        Ok(netns
            .agent_log()
            .contains("first round of health checks complete")
            .then_some(()))
    })?;
    std::thread::sleep(Duration::from_millis(300));
    let settled = Instant::now();
    let samples = load.stop();
    netns.stop_agent()?;
    if answering.is_none() {
        bail!("the new agent never finished its first round");
    }
    Ok(tally(&samples, stopped, settled, &[primary]))
}
