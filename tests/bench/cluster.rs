//! `[cluster]`: three agents in their own namespaces agreeing through a real
//! etcd (see `failover_tests::cluster`).
//!
//! 1. Convergence: the primary dies; the time from its death to each node
//!    answering the secondary (first node, last node, spread), over runs.
//! 2. etcd write transactions per second (etcd's revision moves by one per
//!    transaction; a node writes its queued observations in transactions of
//!    up to 128 keys), with
//!    `--endpoints` endpoints checked by all three nodes: steady, and while
//!    all of them flap (their one listener stopped, then started again).
//! 3. The agents' CPU over the steady window, with `[cluster]` and without.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use failover_tests::cluster::ClusterNet;
use failover_tests::listeners::ListenerOptions;
use failover_tests::{
    AgentConfig, CheckSpec, EndpointSpec, RecordSpec, ZoneSpec, agent_next_to_current_exe, is_root,
};

use crate::cpu::cpu_seconds;

const HELP: &str = "\
failover-bench cluster [options]
  --runs R         primary deaths for convergence (default 5, at most 100)
  --endpoints N    endpoints for the writes and CPU parts (default 1000, at most 4000)
  --seconds S      steady window for writes and CPU (default 10, at most 600)";

const NODES: usize = 3;
const PRIMARY: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
const SECONDARY: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 11);
const PORT: u16 = 8080;
const INTERVAL: Duration = Duration::from_millis(200);
const FALL: u32 = 3;
/// Many endpoints: their addresses (one local route), port and interval.
const MANY_PREFIX: &str = "10.99.0.0/16";
const MANY_PORT: u16 = 9000;
const MANY_INTERVAL: Duration = Duration::from_secs(1);
const PER_RECORD: usize = 16;

struct Options {
    runs: u32,
    endpoints: usize,
    seconds: u64,
}

fn parse(args: &[String]) -> Result<Option<Options>> {
    let mut opts = Options {
        runs: 5,
        endpoints: 1000,
        seconds: 10,
    };
    let Some(pairs) = crate::flags(args, HELP)? else {
        return Ok(None);
    };
    for (flag, value) in pairs {
        let in_range = |max: u64| -> Result<u64> {
            match crate::number(flag, value)? {
                v if v == 0 || v > max => bail!("{flag}: 1 to {max}"),
                v => Ok(v),
            }
        };
        match flag {
            "--runs" => opts.runs = in_range(100)? as u32,
            "--endpoints" => opts.endpoints = in_range(4000)? as usize,
            "--seconds" => opts.seconds = in_range(600)?,
            other => bail!("unknown option {other:?}\n{HELP}"),
        }
    }
    Ok(Some(opts))
}

fn cluster_keys(config: AgentConfig, net: &ClusterNet, i: usize) -> AgentConfig {
    config
        .cluster("etcd", vec![net.etcd_url(i)])
        .cluster("node", net.nodes[i].name.as_str())
        .cluster("quorum", "majority")
        .cluster("lease_ttl", Duration::from_secs(2))
}

fn many_address(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 99, (i / 250) as u8, (i % 250 + 1) as u8)
}

fn many_config(endpoints: usize) -> AgentConfig {
    let check = CheckSpec::tcp(MANY_PORT)
        .timing(MANY_INTERVAL, MANY_INTERVAL / 2, 2, 3)
        .set("flap_limit", 0);
    let records = (0..endpoints.div_ceil(PER_RECORD)).map(|r| {
        let first = r * PER_RECORD;
        RecordSpec::new(&format!("r{r}.bench.test."), "A", "all-healthy", "tcp")
            .set("max_answers", PER_RECORD)
            .endpoints(
                (first..(first + PER_RECORD).min(endpoints))
                    .map(|i| EndpointSpec::new(many_address(i))),
            )
    });
    AgentConfig::new()
        .zone(ZoneSpec::new("bench.test.").ttl(30))
        .check("tcp", check)
        .records(records)
}

pub fn run(args: &[String]) -> Result<()> {
    let Some(opts) = parse(args)? else {
        return Ok(());
    };
    if !is_root() {
        bail!("needs root (network namespaces, XDP)");
    }
    let agent = agent_next_to_current_exe()?;
    println!(
        "cluster benchmark: {NODES} agents in their own namespaces, etcd (Debian's etcd-server) in a core namespace with the endpoints; quorum majority, lease_ttl 2s"
    );
    convergence(&agent, &opts)?;
    writes_and_cpu(&agent, &opts)
}

fn convergence(agent: &std::path::Path, opts: &Options) -> Result<()> {
    let mut net = ClusterNet::new(agent, NODES)?;
    for addr in [PRIMARY, SECONDARY] {
        net.add_endpoint_address(addr)?;
        net.start_endpoint(SocketAddr::from((addr, PORT)))?;
    }
    net.start_etcd()?;
    // Each run is a death and a recovery: more than the default damping
    // allows in a minute, which would hold the primary down.
    let check = CheckSpec::tcp(PORT)
        .timing(INTERVAL, Duration::from_millis(150), 2, FALL)
        .set("flap_limit", 0);
    for i in 0..NODES {
        let config = cluster_keys(
            AgentConfig::failover(5, &[(PRIMARY, 1), (SECONDARY, 2)], check.clone()),
            &net,
            i,
        );
        net.start_agent(i, &config.to_toml())?;
    }
    let mut clients = (0..NODES)
        .map(|i| net.dns_client(i))
        .collect::<Result<Vec<_>>>()?;
    let wait_all = |clients: &mut Vec<failover_tests::DnsClient>,
                    want: Ipv4Addr,
                    limit: Duration|
     -> Result<Vec<Duration>> {
        let start = Instant::now();
        let mut at: Vec<Option<Duration>> = vec![None; clients.len()];
        while at.iter().any(Option::is_none) {
            if start.elapsed() > limit {
                bail!("not every node answers {want} after {limit:?}: {at:?}");
            }
            for (i, client) in clients.iter_mut().enumerate() {
                if at[i].is_none()
                    && client
                        .query_a("www.example.test.", Duration::from_millis(50))?
                        .is_some_and(|a| a.addrs == [want])
                {
                    at[i] = Some(start.elapsed());
                }
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        Ok(at.into_iter().flatten().collect())
    };
    wait_all(&mut clients, PRIMARY, Duration::from_secs(15))?;
    let (mut firsts, mut lasts, mut spreads) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..opts.runs {
        net.kill_endpoint(SocketAddr::from((PRIMARY, PORT)))?;
        let at = wait_all(&mut clients, SECONDARY, Duration::from_secs(10))?;
        let (first, last) = (
            *at.iter().min().expect("nodes"),
            *at.iter().max().expect("nodes"),
        );
        firsts.push(first);
        lasts.push(last);
        spreads.push(last - first);
        net.start_endpoint(SocketAddr::from((PRIMARY, PORT)))?;
        wait_all(&mut clients, PRIMARY, Duration::from_secs(10))?;
        std::thread::sleep(Duration::from_millis(500));
    }
    let goal = INTERVAL * FALL + Duration::from_millis(300);
    println!(
        "\nconvergence after the primary's death ({} runs; tcp check every {} ms, fall {FALL}; goal: last node within {} ms; the nodes are polled in turn every ~2 ms: a spread of 0 is below that)",
        opts.runs,
        INTERVAL.as_millis(),
        goal.as_millis()
    );
    println!("{:<22} {:>9} {:>9} {:>9}", "", "min", "median", "max");
    for (name, values) in [
        ("first node (ms)", &mut firsts),
        ("last node (ms)", &mut lasts),
        ("spread (ms)", &mut spreads),
    ] {
        values.sort();
        println!(
            "{name:<22} {:>9.2} {:>9.2} {:>9.2}",
            ms(values[0]),
            ms(values[values.len() / 2]),
            ms(values[values.len() - 1])
        );
    }
    Ok(())
}

fn writes_and_cpu(agent: &std::path::Path, opts: &Options) -> Result<()> {
    let mut net = ClusterNet::new(agent, NODES)?;
    net.add_local_prefix(MANY_PREFIX)?;
    net.start_etcd()?;
    let core = net.core.clone();
    let listen = move || {
        ListenerOptions::new((Ipv4Addr::UNSPECIFIED, MANY_PORT))
            .netns(&core)
            .backlog(4096)
            .threads(2)
            .start()
    };
    let mut listener = Some(listen()?);
    let window = Duration::from_secs(opts.seconds);
    let records = opts.endpoints.div_ceil(PER_RECORD);
    let last_size = opts.endpoints - (records - 1) * PER_RECORD;
    let answering = |net: &ClusterNet, size: usize| -> Result<()> {
        for i in 0..NODES {
            let mut client = net.dns_client(i)?;
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                if client
                    .query_a(
                        &format!("r{}.bench.test.", records - 1),
                        Duration::from_millis(200),
                    )?
                    .is_some_and(|a| a.addrs.len() == size)
                {
                    break;
                }
                if Instant::now() > deadline {
                    bail!(
                        "{} does not answer {size} addresses; log tail:\n{}",
                        net.nodes[i].name,
                        tail(&net.agent_log(i), 20)
                    );
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Ok(())
    };
    let cpu_over = |net: &ClusterNet, window: Duration| -> Result<f64> {
        let pids: Vec<u32> = (0..NODES)
            .map(|i| net.agent_pid(i).context("agent pid"))
            .collect::<Result<_>>()?;
        let before: f64 = pids
            .iter()
            .map(|p| cpu_seconds(*p).map(|(u, s)| u + s))
            .sum::<Result<f64>>()?;
        std::thread::sleep(window);
        let after: f64 = pids
            .iter()
            .map(|p| cpu_seconds(*p).map(|(u, s)| u + s))
            .sum::<Result<f64>>()?;
        Ok((after - before) / window.as_secs_f64() / NODES as f64 * 100.0)
    };

    for i in 0..NODES {
        let config = cluster_keys(many_config(opts.endpoints), &net, i);
        net.start_agent(i, &config.to_toml())?;
    }
    answering(&net, last_size)?;
    // Settled: every node's first observations are in.
    std::thread::sleep(Duration::from_secs(2));
    let rev = net.etcd_revision()?;
    let cpu_cluster = cpu_over(&net, window)?;
    let steady = (net.etcd_revision()? - rev) as f64 / window.as_secs_f64();

    // A flap of every endpoint: down (the listener gone), then up again.
    let rev = net.etcd_revision()?;
    let flap_start = Instant::now();
    drop(listener.take());
    all_down(&net, true)?;
    listener = Some(listen()?);
    all_down(&net, false)?;
    let flap = flap_start.elapsed();
    let flap_writes = net.etcd_revision()? - rev;
    drop(listener);

    // The same without [cluster] (fresh agents, the listener back).
    let _listener = listen()?;
    for i in 0..NODES {
        net.stop_agent(i)?;
    }
    for i in 0..NODES {
        net.start_agent(i, &many_config(opts.endpoints).to_toml())?;
    }
    answering(&net, last_size)?;
    std::thread::sleep(Duration::from_secs(2));
    let cpu_alone = cpu_over(&net, window)?;

    println!(
        "\netcd write transactions and agent CPU: {} endpoints ({} records of up to {PER_RECORD}, distinct addresses), tcp check every {} ms (rise 2, fall 3), each checked by all {NODES} nodes; steady window {} s",
        opts.endpoints,
        records,
        MANY_INTERVAL.as_millis(),
        opts.seconds
    );
    println!(
        "{:<52} {:>12}",
        "etcd write transactions/s, steady",
        format!("{steady:.1}")
    );
    println!(
        "{:<52} {:>12}",
        format!(
            "etcd write transactions, flap of all {} (down, up)",
            opts.endpoints
        ),
        flap_writes
    );
    println!(
        "{:<52} {:>12}",
        format!(
            "  observations changed ({NODES} nodes x {} x 2)",
            opts.endpoints
        ),
        NODES * opts.endpoints * 2
    );
    println!(
        "{:<52} {:>12}",
        "  flap took (s) / transactions per s",
        format!(
            "{:.1} / {:.0}",
            flap.as_secs_f64(),
            flap_writes as f64 / flap.as_secs_f64()
        )
    );
    println!(
        "{:<52} {:>12}",
        "agent CPU %, one core, mean of 3, with [cluster]",
        format!("{cpu_cluster:.2}")
    );
    println!(
        "{:<52} {:>12}",
        "agent CPU %, one core, mean of 3, without",
        format!("{cpu_alone:.2}")
    );
    Ok(())
}

/// Waits until every record is all down (`down`), or none is, on every
/// node (fail-open answers the whole set either way: the status tells).
fn all_down(net: &ClusterNet, down: bool) -> Result<()> {
    for i in 0..NODES {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let out = net.control(i, &["status", "--json"])?;
            let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
            let done = json["status"]["records"]
                .as_array()
                .is_some_and(|r| !r.is_empty() && r.iter().all(|r| r["all_down"] == down));
            if done {
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "{} never saw every record all_down = {down}",
                    net.nodes[i].name
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
