//! One running agent: binds its sockets, loads and attaches the XDP
//! program, wires the publication path to the kernel maps and the userspace
//! table, starts the server, the control socket and the reload handler, runs
//! the agent's loop until a signal, and takes it all down in order.

pub mod reload;
pub mod service;
pub mod sockets;
pub mod takeover;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use log::{info, warn};
use tokio::signal::unix::{SignalKind, signal};

use crate::admin_state::AdminStore;
use crate::agent::Agent;
use crate::agent::lifecycle::{Lifecycle, Phase};
use crate::config::{Config, Server, ServerMode};
use crate::dataplane::{Addressing, AttachMode, CookieWriter, Dataplane, Interface};
use crate::demo::DemoEndpoints;
use crate::events::{Event, Observer as _};
use crate::logging::LogObserver;
use crate::notify::Notifier;
use crate::publish::Publication;
use crate::publish::both::Both;
use crate::serve::Responder;
use crate::serve::cookies::Cookies;
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

/// Runs `plan` until SIGINT or SIGTERM, or until another agent took over.
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
    // An agent running on this interface hands over (its lock, its
    // sockets) rather than refusing us; until this one serves, it is the
    // only writer, and any error here leaves it serving.
    let mut handover =
        takeover::request(&pin_root, &iface, config.admin.control_socket.as_deref())?;
    let taking_over = handover.is_some();
    let mut handed_sockets = handover
        .as_mut()
        .map(|h| std::mem::take(&mut h.sockets))
        .unwrap_or_default();
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
        // The running agent's own sockets: what the kernel queued on them
        // is served by whoever reads next.
        ServerMode::Authoritative if !handed_sockets.is_empty() => {
            let listeners = Listeners::from_fds(std::mem::take(&mut handed_sockets))
                .context("serving DNS on the sockets handed over")?;
            same_listen(
                &listeners.local_addrs(),
                &config.server.listen,
                config.server.listen_is_default || demo,
            )?;
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
    // Not served here (systemd's, or mode front): closed, not kept open.
    drop(handed_sockets);
    let loaded = match handover.as_mut() {
        Some(handover) => {
            if replace_dataplane {
                info!(
                    "--replace-dataplane: not needed for a takeover (the running agent's pins are taken over or removed by it)"
                );
            }
            load_taking_over(&pin_root, &iface, handover)
        }
        None => load_pinned(&pin_root, &iface, replace_dataplane),
    };
    // Bound before the kernel is touched too: a taken port given
    // explicitly stops us here.
    let http_listener = match config.http.listen {
        Some(addr) => crate::http::bind(addr, config.http.listen_is_default)?,
        None => None,
    };
    let dataplane = loaded.map_err(|e| {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            e.context("loading the XDP program (needs root, or CAP_BPF and CAP_NET_ADMIN)")
        } else {
            e
        }
    })?;
    let interface = Interface::read(&iface)?;
    let addressing = Addressing::new(&interface, &config.server.dns_service_addresses());
    // What the kernel answers now: the pinned maps of this layout, or what
    // the agent of another layout handed over.
    let adopted = match &handover {
        Some(h) if h.offer.layout != crate::pin::layout() => {
            rezone(h.offer.answers.clone(), &config)
        }
        _ if dataplane.adopted() => adopted_entries(&dataplane, &config)?,
        _ => Vec::new(),
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
    let cookies = match &config.cookies {
        Some(settings) => Some(Arc::new(
            Cookies::new(settings.source.clone()).context("[cookies]: the server secret")?,
        )),
        None => None,
    };
    let responder = Responder::new(table.clone()).with_cookies(cookies.clone());
    let limits = TcpLimits {
        idle_timeout: config.server.tcp_idle_timeout,
        max_connections: config.server.tcp_max_connections,
    };
    // The userspace table answers what the kernel does before the server
    // reads a query: the zone tree, and what the kernel holds.
    Publication::new(table.clone(), &config).adopt(adopted.clone());
    let handing_sockets = match &listeners {
        Some(listeners) => listeners.handover()?,
        None => Vec::new(),
    };
    let server = {
        let _runtime = runtime.enter();
        match listeners {
            Some(listeners) => Some(DnsServer::start_limited(
                listeners,
                responder,
                limits,
                config.rate_limit.clone(),
            )?),
            None => None,
        }
    };
    // Both serve the sockets now, from the same answers; the predecessor
    // stops, and from its reply on this agent is the only writer.
    let took_over = match handover {
        Some(handover) => {
            handover.serving()?;
            true
        }
        None => false,
    };

    let mut dataplane = dataplane;
    // The heartbeat first: an adopted program whose hold had run out
    // answers again at once.
    let hold = config.dataplane.hold;
    dataplane.set_hold(hold);
    dataplane.beat()?;
    // Before attaching: the program answers only what is addressed to us,
    // and limits from its first packet.
    dataplane.set_addressing(&addressing)?;
    dataplane.set_rate_limit(config.rate_limit.as_ref())?;
    // The kernel answers cookies with the userspace server's secrets. In
    // front mode another server answers what the kernel passes, cookies
    // included: the map stays unwritten and the kernel passes them.
    if server.is_some() {
        dataplane.set_cookies(cookies.as_deref())?;
    }
    if let Some(cookies) = &cookies {
        let writer = server
            .is_some()
            .then(|| dataplane.cookie_writer())
            .transpose()?;
        runtime.spawn(refresh_cookie_secret(cookies.clone(), writer));
    }
    info!(
        "XDP answers queries to {} (port 53 only) on {iface}",
        addressing
            .answered()
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let handing_lock = dataplane.share_lock()?;
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
    // Last: a program that takes over a link reads maps filled already
    // (for another map layout, new maps: nothing is missing at the swap).
    if let Err(e) = agent.publisher_mut().first.attach(&iface, mode) {
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
    let pin_dir = agent
        .publisher()
        .first
        .pin_dir()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let adopted_maps = agent.publisher().first.adopted();
    let records = agent.config().records.len();
    let zones = agent.config().zones.len();
    if took_over && !adopted_maps {
        info!(
            "took over the data plane with new maps at {}: filled first, then the program on {iface}'s link replaced atomically and the old layout's pins removed; {records} records in {zones} zones",
            pin_dir.display()
        );
    } else if adopted_maps {
        info!(
            "adopted the data plane pinned at {}: the program on {iface} was replaced atomically and answers from the answer sets it held; {records} records in {zones} zones",
            pin_dir.display()
        );
    } else {
        info!(
            "XDP program attached to {iface} in {} mode, pinned at {}; {records} records in {zones} zones",
            mode_name(mode),
            pin_dir.display()
        );
    }

    let control_socket = agent.config().admin.control_socket.clone().map(|path| {
        let is_default = agent.config().admin.control_socket_is_default;
        (path, is_default, agent.control_channel())
    });
    let lifecycle = Lifecycle::default();
    let handed_over = Arc::new(AtomicBool::new(false));
    let handing = takeover::Handing {
        iface: iface.clone(),
        pin_root: pin_root.clone(),
        pin_dir,
        lock: handing_lock,
        sockets: handing_sockets,
        agent: agent.handover_channel(),
        lifecycle: lifecycle.clone(),
        handed_over: handed_over.clone(),
    };
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
    // Transitions, answer changes, reloads and overrides: to the log and to
    // the [[notify]] hooks (whose tasks run on the runtime).
    let log_observer = std::sync::Arc::new(LogObserver::new());
    let observer = log_observer.clone();
    agent.events().observe(move |e: &Event| observer.observe(e));
    let notifier = Notifier::new(runtime.handle().clone());
    notifier.configure(&agent.config().notify);
    agent.events().observe(notifier.clone());
    // The default path is best effort (e.g. /run not writable); a given one must work.
    let _pid_file = match reload::PidFile::write(&pid_file, taking_over) {
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
        let server_stats = server.as_ref().map(|s| s.stats());
        // /readyz turns 503 while the process hands over or stops.
        if let Some(listener) = http_listener {
            let metrics = crate::http::Metrics::new(crate::http::Sources {
                status: agent.status_feed(),
                kernel: counter_reader,
                server: server_stats.clone(),
                hooks: Some(notifier.clone()),
            });
            agent.events().observe(metrics.event_observer());
            agent.observe_checks(metrics.check_observer());
            let served = crate::http::Served {
                metrics,
                status: agent.status_feed(),
                progress: agent.progress(),
                phase: lifecycle.subscribe(),
            };
            tokio::spawn(async move {
                if let Err(e) = crate::http::serve(listener, served).await {
                    warn!("HTTP endpoint stopped: {e:#}");
                }
            });
        }
        let (done_tx, mut done_rx) = tokio::sync::oneshot::channel();
        if let Some((path, is_default, control)) = control_socket {
            // The agent taken over may still be finishing on the same path.
            let bound = if took_over {
                Some(crate::control::bind_replacing(&path)?)
            } else {
                crate::control::bind(&path, is_default)?
            };
            if let Some((listener, file)) = bound {
                let (handover_tx, handover_rx) = tokio::sync::mpsc::channel(1);
                tokio::spawn(crate::control::serve(listener, control, Some(handover_tx)));
                tokio::spawn(takeover::serve(handover_rx, handing, done_tx));
                socket_file = Some(file);
            }
        }
        match reload {
            Some((path, file_server)) => {
                tokio::spawn(reload::on_sighup(
                    path,
                    running_server,
                    file_server,
                    reloader,
                    notifier,
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
        tokio::spawn(lifecycle.clone().follow(agent.progress()));
        // Rate-limited log lines that went quiet: say how many were left out.
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                log_observer.summarise();
            }
        });
        let shutdown = async {
            tokio::select! {
                _ = sigint.recv() => info!("SIGINT: shutting down"),
                _ = sigterm.recv() => info!("SIGTERM: shutting down"),
                Ok(pid) = &mut done_rx => info!("handed over to the agent with pid {pid}: stopping"),
            }
            lifecycle.set(Phase::Stopping);
            service::stopping();
        };
        let result = agent
            .run(shutdown, Some(stats_interval), |published: &Published| {
                log_counters(&published.first, server_stats.as_deref())
            })
            .await;
        if let Some(server) = server {
            let stats = server.stats();
            if handed_over.load(Ordering::SeqCst) {
                // The successor serves the same sockets: only what is open
                // here is finished.
                let ended = server.finish(limits.idle_timeout).await;
                info!(
                    "userspace server finished{}: {}",
                    if ended {
                        ""
                    } else {
                        " (TCP connections still open at the limit were closed)"
                    },
                    stats.summary()
                );
            } else {
                server.stop().await;
                info!("userspace server stopped: {}", stats.summary());
            }
        }
        result
    });
    // Stops the check tasks before the dataplane goes away.
    drop(runtime);
    drop(socket_file);
    let mut dataplane = agent.into_publisher().first;
    log_counters(&dataplane, None);
    let detached = if handed_over.load(Ordering::SeqCst) {
        info!("the data plane on {iface} is the new agent's: left attached and pinned");
        Ok(())
    } else if detach_on_exit {
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

/// The sockets handed over must be the ones `listen` asks for (IPv6 ones
/// may be missing when `ipv6_optional`): a takeover keeps the sockets, and
/// changing them needs a stop and a start.
fn same_listen(got: &[SocketAddr], listen: &[SocketAddr], ipv6_optional: bool) -> Result<()> {
    let missing = listen
        .iter()
        .any(|a| !(got.contains(a) || ipv6_optional && a.is_ipv6()));
    let extra = got.iter().any(|a| !listen.contains(a));
    if missing || extra {
        let show = |v: &[SocketAddr]| {
            v.iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        bail!(
            "the running agent serves DNS on {}, this configuration on {}: a takeover keeps the running agent's sockets, so [server] listen cannot change with it (stop the running agent, then start this one)",
            show(got),
            show(listen)
        );
    }
    Ok(())
}

/// What the adopted data plane's record map holds, as entries; each one of
/// a hot name of `config` gets that name's zone in `config` (zone numbers
/// follow the configuration's order, which may have changed).
fn adopted_entries(
    dataplane: &Dataplane,
    config: &Config,
) -> Result<Vec<(String, u16, crate::serve::table::Entry)>> {
    let mut out = Vec::new();
    for (name, rtype, value) in dataplane.answer_sets()? {
        match crate::publish::kernel::entry_of(rtype, &value) {
            Ok(entry) => out.push((name, rtype, entry)),
            Err(e) => {
                warn!("the adopted record map's {name} type {rtype}: {e:#}; left to be replaced")
            }
        }
    }
    Ok(rezone(out, config))
}

/// `entries` with each one of a hot name of `config` in that name's zone
/// in `config` (zone numbers follow the configuration's order, which may
/// have changed).
fn rezone(
    mut entries: Vec<(String, u16, crate::serve::table::Entry)>,
    config: &Config,
) -> Vec<(String, u16, crate::serve::table::Entry)> {
    let zones: std::collections::HashMap<String, u32> = config
        .hot_names()
        .into_iter()
        .map(|hot| (hot.name.to_ascii_lowercase(), hot.zone as u32))
        .collect();
    for (name, _, entry) in &mut entries {
        if let Some(&zone) = zones.get(&name.to_ascii_lowercase()) {
            entry.zone = zone;
        }
    }
    entries
}

/// Loads this agent's data plane in place of the running agent's, with
/// the lock it handed over: its own pins for the same map layout; for
/// another layout, new maps in this layout's directory, which take over
/// the old one's link at attach. Other layouts' pins are refused as at a
/// start.
fn load_taking_over(
    root: &Path,
    iface: &str,
    handover: &mut takeover::Handover,
) -> Result<Dataplane> {
    crate::pin::ensure_bpffs(root)?;
    for dir in crate::pin::remove_orphans(root) {
        info!(
            "removed {}: its XDP link's interface no longer exists, or it has no link",
            dir.display()
        );
    }
    let old = handover.offer.pin_dir.clone();
    let others: Vec<PathBuf> = crate::pin::other_layouts(root, iface)
        .into_iter()
        .filter(|d| *d != old)
        .collect();
    if !others.is_empty() {
        anyhow::bail!(
            "{iface} has a pinned data plane of another map layout no agent runs ({}): remove it first (`failover-agent detach --iface {iface}` after the running agent stopped)",
            others
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let lock = handover.lock.take().context("the lock was taken already")?;
    let dir = crate::pin::pin_dir(root, iface);
    if old == dir {
        return Dataplane::load_pinned_locked(&dir, lock);
    }
    let mut dataplane = Dataplane::load_pinned(&dir)?;
    dataplane.take_over_from(&old, lock)?;
    Ok(dataplane)
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
            crate::pin::layout()
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

/// Replaces the cookie secret on its schedule (a new random one, or the
/// secret file's when it changed); the one before stays accepted. The
/// kernel's copy (`kernel`) follows at once.
async fn refresh_cookie_secret(cookies: Arc<Cookies>, mut kernel: Option<CookieWriter>) {
    let every = cookies.refresh_every();
    loop {
        tokio::time::sleep(every).await;
        match cookies.refresh() {
            Ok(true) => {
                info!("cookies: new server secret (the previous one is still accepted)");
                if let Some(Err(e)) = kernel.as_mut().map(|k| k.write(&cookies)) {
                    // Kernel cookies under the old secret stay valid for
                    // userspace (its previous); the next rotation retries.
                    warn!("cookies: the kernel keeps the old secret: {e:#}");
                }
            }
            Ok(false) => {}
            Err(e) => warn!("cookies: keeping the server secret: {e:#}"),
        }
    }
}
