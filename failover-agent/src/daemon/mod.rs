//! One running agent: binds its sockets, loads and attaches the XDP
//! program, wires the publication path to the kernel maps and the userspace
//! table, starts the server, the control socket and the reload handler, runs
//! the agent's loop until a signal, and takes it all down in order.

pub mod reload;
pub mod service;
pub mod sockets;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result};
use log::{info, warn};
use tokio::signal::unix::{SignalKind, signal};

use crate::admin_state::AdminStore;
use crate::agent::Agent;
use crate::config::{Config, Server, ServerMode};
use crate::dataplane::{Addressing, AttachMode, Dataplane, Interface};
use crate::demo::DemoEndpoints;
use crate::publish::both::Both;
use crate::serve::Responder;
use crate::serve::server::{Listeners, Server as DnsServer, ServerStats, TcpLimits};
use crate::serve::table::AnswerTable;

/// What `run` was asked to do, resolved from arguments and defaults.
pub struct Plan {
    pub config: Config,
    pub iface: String,
    pub mode: AttachMode,
    pub demo: bool,
    /// The admin-state file's overrides (or an empty in-memory state).
    pub admin: AdminStore,
    /// The file to re-read on SIGHUP, and its `[server]` as loaded (before
    /// command-line overrides), to tell a reload that changes it.
    pub reload: Option<(PathBuf, Server)>,
    pub pid_file: PathBuf,
    pub stats_interval: Duration,
    /// Detach and unpin at exit; otherwise the pinned data plane stays.
    pub detach_on_exit: bool,
    /// Remove the interface's pinned data plane (any layout) first.
    pub replace_dataplane: bool,
    /// Where data planes are pinned (on bpffs).
    pub pin_root: PathBuf,
}

fn mode_name(mode: AttachMode) -> &'static str {
    match mode {
        AttachMode::Native => "native",
        AttachMode::Skb => "skb",
    }
}

/// The agent's publisher: the kernel maps and the userspace table, fed alike.
type Published = Both<Dataplane, AnswerTable>;

/// Runs `plan` until SIGINT or SIGTERM.
pub fn run(plan: Plan) -> Result<()> {
    let Plan {
        config,
        iface,
        mode,
        demo,
        admin,
        reload,
        pid_file,
        stats_interval,
        detach_on_exit,
        replace_dataplane,
        pin_root,
    } = plan;
    for warning in config.warnings() {
        warn!("{warning}");
    }
    // SIGHUP's default action ends the process: ignore it until the reload
    // handler replaces this below, so a SIGHUP during start-up (logrotate, an
    // early `failover-agent reload`) cannot kill an agent that has attached XDP.
    // SAFETY: setting a signal's disposition to SIG_IGN has no preconditions.
    unsafe { libc::signal(libc::SIGHUP, libc::SIG_IGN) };
    // Bound first: a port that is taken stops us before the kernel is
    // touched, and once XDP passes queries up, something answers them.
    // Both read and remove their variables: before any thread exists.
    let passed = sockets::from_systemd().context("taking the sockets systemd passed")?;
    // SAFETY: no thread has been spawned yet (the runtime starts below).
    let watchdog = unsafe { sd_notify::watchdog_enabled_and_unset_env() };
    let listeners = match config.server.mode {
        // Socket activation: systemd bound them (and keeps queries queued on
        // them while no agent runs).
        ServerMode::Authoritative if !passed.is_empty() => {
            let listeners = Listeners::from_fds(passed)
                .context("serving DNS on the sockets systemd passed (LISTEN_FDS)")?;
            info!(
                "serving on {} socket(s) from systemd, not [server] listen",
                listeners.local_addrs().len()
            );
            Some(listeners)
        }
        ServerMode::Authoritative => Some(
            Listeners::bind(
                &config.server.listen,
                config.server.listen_is_default || demo,
            )
            .context("serving DNS in userspace (mode authoritative)")?,
        ),
        ServerMode::Front => {
            info!(
                "mode front: no userspace DNS server; queries XDP does not answer go to the DNS server on this host"
            );
            None
        }
    };
    // Bound before the kernel is touched too: a taken port given
    // explicitly stops us here.
    let http_listener = match config.http.listen {
        Some(addr) => crate::http::bind(addr, config.http.listen_is_default)?,
        None => None,
    };
    let mut dataplane = load_pinned(&pin_root, &iface, replace_dataplane).map_err(|e| {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            e.context("loading the XDP program (needs root, or CAP_BPF and CAP_NET_ADMIN)")
        } else {
            e
        }
    })?;
    // The heartbeat first: an adopted program whose hold had run out
    // answers again at once.
    let hold = config.dataplane.hold;
    dataplane.set_hold(hold);
    dataplane.beat()?;
    // Before attaching: the program answers only what is addressed to us.
    let interface = Interface::read(&iface)?;
    let addressing = Addressing::new(&interface, &config.server.dns_service_addresses());
    dataplane.set_addressing(&addressing)?;
    info!(
        "XDP answers queries to {} (port 53 only) on {iface}",
        addressing
            .answered()
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    if let Err(e) = dataplane.attach(&iface, mode) {
        let hint = if mode == AttachMode::Native {
            " (hint: the driver may not support native XDP; try --xdp-mode skb)"
        } else {
            ""
        };
        return Err(e.context(format!(
            "attaching the XDP program to {iface} in {} mode failed{hint}",
            mode_name(mode)
        )));
    }
    if dataplane.adopted() {
        info!(
            "adopted the data plane pinned at {}: the program on {iface} was replaced atomically and answers from the answer sets it held; {} records in {} zones",
            dataplane
                .pin_dir()
                .map(|d| d.display().to_string())
                .unwrap_or_default(),
            config.records.len(),
            config.zones.len()
        );
    } else {
        info!(
            "XDP program attached to {iface} in {} mode, pinned at {}; {} records in {} zones",
            mode_name(mode),
            dataplane
                .pin_dir()
                .map(|d| d.display().to_string())
                .unwrap_or_default(),
            config.records.len(),
            config.zones.len()
        );
    }

    let adopted = if dataplane.adopted() {
        adopted_entries(&dataplane, &config)?
    } else {
        Vec::new()
    };

    // Started from the main thread (the parent-death signal follows it) and
    // dropped after the runtime is gone: the children die last.
    let demo_endpoints = if demo {
        let demo_endpoints = start_demo(&config)?;
        Some(demo_endpoints)
    } else {
        None
    };

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let table = AnswerTable::new();
    let responder = Responder::new(table.clone());
    let limits = TcpLimits {
        idle_timeout: config.server.tcp_idle_timeout,
        max_connections: config.server.tcp_max_connections,
    };
    // Publishes the zone tree at once: SOA, NS and negative answers are
    // known before any check has run.
    let mut agent = Agent::new(
        config,
        Both::new(dataplane, table, ["kernel map", "userspace table"]),
    );
    agent.set_admin(admin);
    if !adopted.is_empty() {
        let read = adopted.len();
        let kept = agent.adopt(adopted);
        info!(
            "took over {kept} of the {read} answer sets the kernel held (the others are withdrawn once the first round of checks is done); each is kept until this agent's checks decide it"
        );
    }
    let control_socket = agent.config().admin.control_socket.clone().map(|path| {
        let is_default = agent.config().admin.control_socket_is_default;
        (path, is_default, agent.control_channel())
    });
    let open_files = crate::checks::raise_fd_limit();
    if (open_files as usize) < 2 * agent.config().endpoint_count() + 256 {
        warn!(
            "open-file limit {open_files} is low for {} endpoints: checks may fail with \"too many open files\"",
            agent.config().endpoint_count()
        );
    }
    // A scrape reads the kernel's counters on its own handle, never
    // through the agent's loop.
    let counter_reader = match agent.publisher().first.counter_reader() {
        Ok(reader) => Some(reader),
        Err(e) => {
            warn!("{e:#}: /metrics will lack the kernel's counters");
            None
        }
    };
    let running_server = agent.config().server.clone();
    let reloader = agent.reloader();
    // The default path is best effort (e.g. /run not writable); a given one must work.
    let _pid_file = match reload::PidFile::write(&pid_file) {
        Ok(pid_file) => Some(pid_file),
        Err(e) if pid_file == Path::new(reload::DEFAULT_PID_FILE) => {
            warn!("{e:#}; `failover-agent reload` will not find this agent (SIGHUP still works)");
            None
        }
        Err(e) => return Err(e),
    };
    // Removes the control socket's file when dropped, after the runtime.
    let mut socket_file = None;
    let result = runtime.block_on(async {
        let server = match listeners {
            Some(listeners) => Some(DnsServer::start(listeners, responder, limits)?),
            None => None,
        };
        let server_stats = server.as_ref().map(|s| s.stats());
        // /readyz turns 503 once this says the agent is leaving (shutdown
        // below; a takeover sets Leaving::HandingOver).
        let (leaving, leaving_rx) = tokio::sync::watch::channel(None);
        if let Some(listener) = http_listener {
            let metrics = crate::http::Metrics::new(crate::http::Sources {
                status: agent.status_feed(),
                kernel: counter_reader,
                server: server_stats.clone(),
            });
            agent.events().observe(metrics.event_observer());
            agent.observe_checks(metrics.check_observer());
            let served = crate::http::Served {
                metrics,
                status: agent.status_feed(),
                progress: agent.progress(),
                leaving: leaving_rx,
            };
            tokio::spawn(async move {
                if let Err(e) = crate::http::serve(listener, served).await {
                    warn!("HTTP endpoint stopped: {e:#}");
                }
            });
        }
        if let Some((path, is_default, control)) = control_socket
            && let Some((listener, file)) = crate::control::bind(&path, is_default)?
        {
            tokio::spawn(crate::control::serve(listener, control));
            socket_file = Some(file);
        }
        match reload {
            Some((path, file_server)) => {
                tokio::spawn(reload::on_sighup(
                    path,
                    running_server,
                    file_server,
                    reloader,
                ));
            }
            None => {
                // The built-in demo has no file to re-read: SIGHUP is
                // acknowledged and changes nothing (rather than killing us).
                if let Ok(mut hangups) = signal(SignalKind::hangup()) {
                    tokio::spawn(async move {
                        while hangups.recv().await.is_some() {
                            info!("SIGHUP: the built-in demo configuration has no file to reload");
                        }
                    });
                }
            }
        }
        let mut sigint =
            signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
        let mut sigterm =
            signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
        tokio::spawn(service::follow(agent.progress(), watchdog));
        let shutdown = async {
            tokio::select! {
                _ = sigint.recv() => info!("SIGINT: shutting down"),
                _ = sigterm.recv() => info!("SIGTERM: shutting down"),
            }
            leaving.send_replace(Some(crate::http::Leaving::ShuttingDown));
            service::stopping();
        };
        let result = agent
            .run(shutdown, Some(stats_interval), |published: &Published| {
                log_counters(&published.first, server_stats.as_deref())
            })
            .await;
        if let Some(server) = server {
            let stats = server.stats();
            server.stop().await;
            info!("userspace server stopped: {}", stats.summary());
        }
        result
    });
    // Stops the check tasks before the dataplane goes away.
    drop(runtime);
    drop(socket_file);
    let mut dataplane = agent.into_publisher().first;
    log_counters(&dataplane, None);
    let detached = if detach_on_exit {
        let detached = dataplane
            .detach()
            .with_context(|| format!("detaching the XDP program from {iface}"));
        if detached.is_ok() {
            info!("XDP program detached from {iface}; its pins removed");
        }
        detached
    } else {
        info!(
            "XDP program stays attached to {iface}, pinned at {}: it answers from the last answer sets for {} ([dataplane] hold) or until the next agent adopts it (`failover-agent detach --iface {iface}` removes it)",
            dataplane
                .pin_dir()
                .map(|d| d.display().to_string())
                .unwrap_or_default(),
            humantime::format_duration(hold)
        );
        Ok(())
    };
    drop(demo_endpoints);
    result?;
    detached
}

/// What the adopted data plane's record map holds, as entries; each one of
/// a hot name of `config` gets that name's zone in `config` (zone numbers
/// follow the configuration's order, which may have changed).
fn adopted_entries(
    dataplane: &Dataplane,
    config: &Config,
) -> Result<Vec<(String, u16, crate::serve::table::Entry)>> {
    let zones: std::collections::HashMap<String, u32> = config
        .hot_names()
        .into_iter()
        .map(|hot| (hot.name.to_ascii_lowercase(), hot.zone as u32))
        .collect();
    let mut out = Vec::new();
    for (name, rtype, value) in dataplane.answer_sets()? {
        match crate::publish::kernel::entry_of(rtype, &value) {
            Ok(mut entry) => {
                if let Some(&zone) = zones.get(&name.to_ascii_lowercase()) {
                    entry.zone = zone;
                }
                out.push((name, rtype, entry));
            }
            Err(e) => {
                warn!("the adopted record map's {name} type {rtype}: {e:#}; left to be replaced")
            }
        }
    }
    Ok(out)
}

/// Mounts bpffs if needed, refuses (or with `replace` removes) a data plane
/// of another map layout pinned for `iface`, and loads ours pinned.
fn load_pinned(root: &Path, iface: &str, replace: bool) -> Result<Dataplane> {
    crate::pin::ensure_bpffs(root)?;
    for dir in crate::pin::remove_orphans(root) {
        info!(
            "removed {}: its XDP link's interface no longer exists",
            dir.display()
        );
    }
    if replace {
        for dir in crate::dataplane::remove_pinned(root, iface)? {
            info!("--replace-dataplane: removed {}", dir.display());
        }
    }
    let others = crate::pin::other_layouts(root, iface);
    if !others.is_empty() {
        anyhow::bail!(
            "{iface} has a pinned data plane of another map layout ({}); this agent's layout is v{} and an old layout is never reused: run with --replace-dataplane to remove it first (or `failover-agent detach --iface {iface}`)",
            others
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            failover_common::LAYOUT_VERSION
        );
    }
    Dataplane::load_pinned(&crate::pin::pin_dir(root, iface))
}

fn start_demo(config: &Config) -> Result<DemoEndpoints> {
    let record = &config.records[0];
    let listen: Vec<SocketAddr> = record
        .endpoints
        .iter()
        .map(|e| SocketAddr::from((e.address, record.check.port.expect("the demo check is tcp"))))
        .collect();
    let demo = DemoEndpoints::start(&listen)?;
    for ((addr, pid), endpoint) in demo.pids().into_iter().zip(&record.endpoints) {
        info!(
            "demo: endpoint {addr} (priority {}) is pid {pid}",
            endpoint.priority
        );
    }
    if let Some((addr, pid)) = demo.pids().first().copied() {
        info!(
            "demo: stop the primary with `kill {pid}`, then bring it back with `{}`",
            demo.command_line(addr)
        );
    }
    let name = record.name.trim_end_matches('.');
    info!("demo: watch the answers with `dig @127.0.0.1 {name}` (from XDP)");
    info!(
        "demo: userspace answers the rest: `dig @127.0.0.1 {name} MX`, `dig @::1 {name} AAAA`, `dig @127.0.0.1 {name} +tcp`, `dig @127.0.0.1 {} SOA`",
        config.zones[0].origin.trim_end_matches('.')
    );
    Ok(demo)
}

fn log_counters(dataplane: &Dataplane, server: Option<&ServerStats>) {
    match dataplane.counters() {
        Ok(counters) => info!(
            "kernel counters: {}",
            counters
                .iter()
                .map(|(c, n)| format!("{}={n}", c.name()))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        Err(e) => warn!("reading the kernel counters: {e:#}"),
    }
    if let Some(server) = server {
        info!("userspace server counters: {}", server.summary());
    }
}
