//! Command line: `failover-agent run | check-config | demo-endpoint`.
//!
//! Exit codes: 0 after a clean shutdown (SIGINT/SIGTERM), 2 for bad arguments
//! or a bad configuration (nothing was loaded or attached), 1 for a runtime
//! failure (loading or attaching the XDP program, ...).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use log::{error, warn};

use crate::admin_state::AdminStore;
use crate::config::{Config, ServerMode, listen_address};
use crate::daemon::{self, Plan, reload::DEFAULT_PID_FILE};
use crate::dataplane::AttachMode;

const EXIT_RUNTIME: u8 = 1;
const EXIT_USAGE: u8 = 2;

#[derive(Parser, Debug)]
#[command(
    name = "failover-agent",
    version,
    about = "DNS failover: answers A/AAAA queries from XDP with only the endpoints that are healthy now"
)]
struct Cli {
    /// How log lines are written to stderr: text (one readable line per
    /// event) or json (one JSON object per line, every field at the top
    /// level). RUST_LOG filters either (default info).
    #[arg(
        long,
        value_enum,
        value_name = "FORMAT",
        default_value = "text",
        global = true
    )]
    log_format: LogFormatArg,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum LogFormatArg {
    Text,
    Json,
}

impl From<LogFormatArg> for crate::logging::LogFormat {
    fn from(format: LogFormatArg) -> Self {
        match format {
            LogFormatArg::Text => crate::logging::LogFormat::Text,
            LogFormatArg::Json => crate::logging::LogFormat::Json,
        }
    }
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Health-check the configured endpoints, answer DNS queries for the
    /// records from XDP on IFACE, and (mode authoritative) everything else
    /// over UDP and TCP in userspace (needs root). Without --config, runs the
    /// built-in demo on lo: two local endpoints for www.example.test.,
    /// served on 127.0.0.1:53 and [::1]:53.
    Run(RunArgs),
    /// Validate a configuration file and exit (0 if valid, 2 if not).
    CheckConfig {
        /// The TOML configuration file.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Make the running agent re-read its configuration file and apply it
    /// (sends it SIGHUP). Records appear and disappear, changed checks
    /// restart, unchanged endpoints keep their health; an invalid file
    /// changes nothing (the agent logs why).
    Reload {
        /// The running agent's pid file (run --pid-file).
        #[arg(long, value_name = "FILE", default_value = DEFAULT_PID_FILE)]
        pid_file: PathBuf,
        /// Validate this file first and signal nothing if it is invalid
        /// (give the file the agent runs with).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Take an endpoint out of every answer of RECORD at once (maintenance);
    /// its checks keep running. Kept in the admin-state file if one is
    /// configured (survives restarts).
    Drain {
        /// The record's name, e.g. www.example.test.
        record: String,
        /// The endpoint's address, e.g. 192.0.2.10.
        endpoint: String,
        #[command(flatten)]
        until: UntilArgs,
        #[command(flatten)]
        local: LocalArg,
        #[command(flatten)]
        socket: SocketArg,
    },
    /// End a drain: the endpoint's health checks decide again.
    Undrain {
        record: String,
        endpoint: String,
        #[command(flatten)]
        local: LocalArg,
        #[command(flatten)]
        socket: SocketArg,
    },
    /// Override an endpoint's health: up (healthy whatever its checks say),
    /// down (unhealthy: as if its checks failed), clear (back to its checks).
    Force {
        #[arg(value_enum)]
        state: ForceArg,
        record: String,
        endpoint: String,
        #[command(flatten)]
        until: UntilArgs,
        #[command(flatten)]
        local: LocalArg,
        #[command(flatten)]
        socket: SocketArg,
    },
    /// Show every record: its answer now, and each endpoint's health,
    /// override (drain/force), check latency and last failure.
    Status {
        /// The agent's JSON reply as it is.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        socket: SocketArg,
    },
    /// Remove the XDP program from IFACE and every pin of its data plane in
    /// bpffs (/sys/fs/bpf/failover/v*/IFACE), which an agent leaves behind
    /// when it exits without --detach-on-exit. Refused while an agent runs
    /// on IFACE.
    Detach {
        #[arg(long, value_name = "IFACE")]
        iface: String,
        #[command(flatten)]
        pins: PinRootArg,
    },
    /// A tiny TCP endpoint for the demo: accepts connections and answers
    /// "HTTP/1.0 200 OK". Runs until killed.
    DemoEndpoint {
        /// Address and port to listen on, e.g. 127.0.0.10:8080.
        #[arg(long, value_name = "ADDR:PORT")]
        listen: SocketAddr,
    },
    /// Writes the man page (failover-agent.1) and shell completions (bash,
    /// zsh, fish) into DIR, from these very definitions (for packaging).
    #[command(hide = true)]
    GenerateDocs {
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

/// The man page and completions of `failover-agent` into `dir`.
fn generate_docs(dir: &Path) -> std::io::Result<()> {
    use clap::CommandFactory as _;
    std::fs::create_dir_all(dir)?;
    let command = Cli::command();
    // One page for the program, one per visible subcommand (the program's
    // page refers to them as failover-agent-run(1) and so on).
    let mut pages = vec![("failover-agent".to_string(), command.clone())];
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("failover-agent-{}", sub.get_name());
        pages.push((name.clone(), sub.clone().name(name)));
    }
    for (name, page_of) in pages {
        let mut page = Vec::new();
        clap_mangen::Man::new(page_of).render(&mut page)?;
        std::fs::write(dir.join(format!("{name}.1")), page)?;
    }
    for shell in [
        clap_complete::Shell::Bash,
        clap_complete::Shell::Zsh,
        clap_complete::Shell::Fish,
    ] {
        clap_complete::generate_to(shell, &mut command.clone(), "failover-agent", dir)?;
    }
    Ok(())
}

#[derive(clap::Args, Debug)]
struct UntilArgs {
    /// Only until this time (RFC 3339), e.g. 2026-11-24T06:00:00Z.
    #[arg(long, value_name = "TIME", conflicts_with = "for_")]
    until: Option<String>,
    /// Only for this long, e.g. 2h, 30m.
    #[arg(long = "for", value_name = "DURATION", id = "for_")]
    for_: Option<String>,
}

#[derive(clap::Args, Debug)]
struct LocalArg {
    /// With [cluster]: apply on this node only (its admin state), not in
    /// etcd for every node, e.g. while etcd is unreachable. Status shows
    /// it as local.
    #[arg(long)]
    local: bool,
}

#[derive(clap::Args, Debug)]
struct SocketArg {
    /// The running agent's control socket.
    #[arg(long, value_name = "PATH", default_value = crate::control::DEFAULT_SOCKET)]
    control_socket: PathBuf,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ForceArg {
    Up,
    Down,
    Clear,
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// The TOML configuration file. Default: the built-in demo.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Interface to attach the XDP program to. Required with --config; the
    /// built-in demo uses lo.
    #[arg(long, value_name = "IFACE")]
    iface: Option<String>,
    /// native: in the driver (fast; needs driver support); skb: generic XDP,
    /// works on any interface. Default: native, or skb for the built-in demo.
    #[arg(long, value_enum, value_name = "MODE")]
    xdp_mode: Option<XdpModeArg>,
    /// How often to log the kernel's packet counters, e.g. 60s, 5m; 0 = never.
    /// They are also logged once at exit.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = humantime::parse_duration)]
    stats_interval: Duration,
    /// Serve DNS on ADDR (UDP and TCP), e.g. 192.0.2.53, [::1]:5353;
    /// repeatable. Replaces [server] listen; implies mode authoritative.
    #[arg(long, value_name = "ADDR")]
    listen: Vec<String>,
    /// authoritative: serve DNS in userspace on the listen addresses.
    /// front: bind nothing; a DNS server already on the host answers what
    /// XDP passes. Replaces [server] mode.
    #[arg(long, value_enum, value_name = "MODE")]
    mode: Option<ModeArg>,
    /// Serve the control socket (drain, undrain, force, status) here.
    /// Replaces [admin] control_socket (default /run/failover-agent.sock).
    #[arg(long, value_name = "PATH")]
    control_socket: Option<PathBuf>,
    /// Serve the HTTP endpoint (/metrics, /api/v1/status, /healthz,
    /// /readyz, the status page) on ADDR:PORT; "" disables it. Replaces
    /// [http] listen (default 127.0.0.1:9153).
    #[arg(long, value_name = "ADDR:PORT")]
    http_listen: Option<String>,
    /// Write the agent's pid here (for `failover-agent reload`); removed at
    /// exit. SIGHUP reloads the --config file.
    #[arg(long, value_name = "FILE", default_value = DEFAULT_PID_FILE)]
    pid_file: PathBuf,
    /// Detach the XDP program and remove its pins at exit (SIGINT,
    /// SIGTERM). Without it the program stays attached, pinned in bpffs,
    /// answering from the last answer sets for [dataplane] hold, and the
    /// next agent on IFACE adopts it. Default for the built-in demo.
    #[arg(long)]
    detach_on_exit: bool,
    /// Remove whatever data plane is pinned for IFACE (e.g. one of another
    /// map layout, which is never reused) before loading this one.
    #[arg(long)]
    replace_dataplane: bool,
    #[command(flatten)]
    pins: PinRootArg,
}

#[derive(clap::Args, Debug)]
struct PinRootArg {
    /// Where data planes are pinned: DIR/v<layout>/<IFACE>/. It must be on
    /// bpffs; bpffs is mounted at /sys/fs/bpf (default) or at DIR if it is
    /// not. Interface names are per network namespace: give agents in
    /// different namespaces different roots.
    #[arg(long, value_name = "DIR", default_value = crate::pin::PIN_ROOT)]
    pin_root: PathBuf,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ModeArg {
    Authoritative,
    Front,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum XdpModeArg {
    Native,
    Skb,
}

impl From<XdpModeArg> for AttachMode {
    fn from(mode: XdpModeArg) -> Self {
        match mode {
            XdpModeArg::Native => AttachMode::Native,
            XdpModeArg::Skb => AttachMode::Skb,
        }
    }
}

/// The whole program; `main.rs` only calls this.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version exit 0, usage errors 2.
            let _ = e.print();
            return ExitCode::from(e.exit_code().clamp(0, 255) as u8);
        }
    };
    crate::logging::init(cli.log_format.into());
    match cli.command {
        Command::Run(args) => run(args),
        Command::Detach { iface, pins } => {
            match crate::dataplane::remove_pinned(&pins.pin_root, &iface) {
                Ok(dirs) if dirs.is_empty() => {
                    println!("nothing pinned for {iface}");
                    ExitCode::SUCCESS
                }
                Ok(dirs) => {
                    for dir in dirs {
                        println!(
                            "removed {} (the XDP program is detached from {iface})",
                            dir.display()
                        );
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    error!("{e:#}");
                    ExitCode::from(EXIT_RUNTIME)
                }
            }
        }
        Command::CheckConfig { config: path } => match Config::load(&path) {
            Ok(config) => {
                for warning in config.warnings() {
                    warn!("{}: {warning}", path.display());
                }
                println!(
                    "{}: ok: {} zones, {} records, {} endpoints",
                    path.display(),
                    config.zones.len(),
                    config.records.len(),
                    config.endpoint_count()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                error!("{e}");
                ExitCode::from(EXIT_USAGE)
            }
        },
        Command::Reload { pid_file, config } => {
            match daemon::reload::signal_agent(&pid_file, config.as_deref()) {
                Ok(pid) => {
                    println!(
                        "sent SIGHUP to failover-agent pid {pid}: it reloads its configuration and logs the result"
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    error!("{e:#}");
                    ExitCode::from(
                        if config.is_some() && format!("{e}").ends_with("not reloading") {
                            EXIT_USAGE
                        } else {
                            EXIT_RUNTIME
                        },
                    )
                }
            }
        }
        Command::Drain {
            record,
            endpoint,
            until,
            local,
            socket,
        } => control_command(
            &socket.control_socket,
            until.resolve().map(|until| crate::control::Request::Drain {
                record,
                endpoint,
                until,
                local: local.local,
            }),
            false,
        ),
        Command::Undrain {
            record,
            endpoint,
            local,
            socket,
        } => control_command(
            &socket.control_socket,
            Ok(crate::control::Request::Undrain {
                record,
                endpoint,
                local: local.local,
            }),
            false,
        ),
        Command::Force {
            state,
            record,
            endpoint,
            until,
            local,
            socket,
        } => {
            let state = match state {
                ForceArg::Up => crate::control::ForceState::Up,
                ForceArg::Down => crate::control::ForceState::Down,
                ForceArg::Clear => crate::control::ForceState::Clear,
            };
            let request = match (state, until.until.is_some() || until.for_.is_some()) {
                (crate::control::ForceState::Clear, true) => {
                    Err("force clear takes no --until or --for".to_string())
                }
                _ => until.resolve().map(|until| crate::control::Request::Force {
                    state,
                    record,
                    endpoint,
                    until,
                    local: local.local,
                }),
            };
            control_command(&socket.control_socket, request, false)
        }
        Command::Status { json, socket } => control_command(
            &socket.control_socket,
            Ok(crate::control::Request::Status),
            json,
        ),
        Command::GenerateDocs { out } => match generate_docs(&out) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                error!(
                    "writing the man page and completions to {}: {e}",
                    out.display()
                );
                ExitCode::from(EXIT_RUNTIME)
            }
        },
        Command::DemoEndpoint { listen } => {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    error!("starting the async runtime: {e}");
                    return ExitCode::from(EXIT_RUNTIME);
                }
            };
            match runtime.block_on(crate::demo::serve(listen)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    error!("{e:#}");
                    ExitCode::from(EXIT_RUNTIME)
                }
            }
        }
    }
}

fn plan(args: &RunArgs) -> Result<Plan, String> {
    let (mut config, demo) = match &args.config {
        Some(path) => (Config::load(path).map_err(|e| e.to_string())?, false),
        None => (Config::default_demo(), true),
    };
    let reload = args
        .config
        .as_ref()
        .map(|path| (path.clone(), config.server.clone()));
    // Command line over file.
    if let Some(mode) = args.mode {
        config.server.mode = match mode {
            ModeArg::Authoritative => ServerMode::Authoritative,
            ModeArg::Front => ServerMode::Front,
        };
    }
    if !args.listen.is_empty() {
        if args.mode == Some(ModeArg::Front) {
            return Err("--listen and --mode front contradict each other: in front mode the agent binds nothing".to_string());
        }
        let mut listen = Vec::with_capacity(args.listen.len());
        for text in &args.listen {
            let addr = listen_address("--listen", text)
                .map_err(|e| format!("{}: {}", e.field, e.message))?;
            if !listen.contains(&addr) {
                listen.push(addr);
            }
        }
        config.server.mode = ServerMode::Authoritative;
        config.server.listen = listen;
        config.server.listen_is_default = false;
    } else if config.server.mode == ServerMode::Authoritative && config.server.listen.is_empty() {
        // --mode authoritative over a file that says front: the defaults.
        config.server.listen = crate::config::Server::default().listen;
        config.server.listen_is_default = true;
    }
    let iface = match (&args.iface, demo) {
        (Some(iface), _) => iface.clone(),
        (None, true) => "lo".to_string(),
        (None, false) => return Err("--iface IFACE is required with --config".to_string()),
    };
    let mode = match (args.xdp_mode, demo) {
        (Some(mode), _) => mode.into(),
        (None, true) => AttachMode::Skb,
        (None, false) => AttachMode::Native,
    };
    if interface_index(&iface).is_none() {
        return Err(format!("--iface {iface}: no such network interface"));
    }
    if let Some(path) = &args.control_socket {
        config.admin.control_socket = Some(path.clone());
        config.admin.control_socket_is_default = false;
    }
    if let Some(text) = &args.http_listen {
        config.http.listen = crate::config::http_listen("--http-listen", text)
            .map_err(|e| format!("{}: {}", e.field, e.message))?;
        config.http.listen_is_default = false;
    }
    let admin = match &config.admin.state_file {
        Some(path) => AdminStore::open(path).map_err(|e| format!("{e:#}"))?,
        None => AdminStore::memory(),
    };
    Ok(Plan {
        config,
        iface,
        mode,
        demo,
        admin,
        reload,
        pid_file: args.pid_file.clone(),
        stats_interval: args.stats_interval,
        detach_on_exit: args.detach_on_exit || demo,
        replace_dataplane: args.replace_dataplane,
        pin_root: args.pins.pin_root.clone(),
    })
}

impl UntilArgs {
    /// `--until` or `--for` as a time.
    fn resolve(&self) -> Result<Option<crate::control::Until>, String> {
        crate::admin_state::until_value(
            self.until.as_deref(),
            self.for_.as_deref(),
            std::time::SystemTime::now(),
        )
        .map(|t| t.map(crate::control::Until))
        .map_err(|e| format!("{e:#}"))
    }
}

/// Sends one control request and prints the reply: exit 0 when the agent
/// did it, 1 when it refused or cannot be reached, 2 for bad arguments.
fn control_command(
    socket: &Path,
    request: Result<crate::control::Request, String>,
    json: bool,
) -> ExitCode {
    let request = match request {
        Ok(request) => request,
        Err(message) => {
            error!("{message}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    match crate::control::request(socket, &request, Duration::from_secs(10)) {
        Ok(reply) => {
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&reply).expect("replies serialise")
                );
            } else if let Some(status) = &reply.status {
                print!("{}", status.render());
            } else if let Some(message) = &reply.message {
                println!("{message}");
            }
            if reply.ok {
                ExitCode::SUCCESS
            } else {
                if !json {
                    error!("{}", reply.error.as_deref().unwrap_or("the agent refused"));
                }
                ExitCode::from(EXIT_RUNTIME)
            }
        }
        Err(e) => {
            error!("{e:#}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

fn interface_index(iface: &str) -> Option<u32> {
    let name = std::ffi::CString::new(iface).ok()?;
    // SAFETY: `name` is a valid NUL-terminated string for the call's duration.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    (index != 0).then_some(index)
}

fn run(args: RunArgs) -> ExitCode {
    // Everything about arguments and configuration is checked before the
    // kernel is touched.
    let plan = match plan(&args) {
        Ok(plan) => plan,
        Err(message) => {
            error!("{message}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    match daemon::run(plan) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e:#}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    fn run_args(argv: &[&str]) -> RunArgs {
        let mut full = vec!["failover-agent", "run"];
        full.extend_from_slice(argv);
        match Cli::try_parse_from(full).unwrap().command {
            Command::Run(args) => args,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn defaults_without_config_are_the_demo_on_lo() {
        let args = run_args(&[]);
        assert_eq!(args.stats_interval, Duration::from_secs(60));
        let plan = plan(&args).unwrap();
        assert!(plan.demo);
        assert_eq!(plan.iface, "lo");
        assert_eq!(plan.mode, AttachMode::Skb);
        assert_eq!(
            run_args(&["--stats-interval", "0"]).stats_interval,
            Duration::ZERO
        );
    }

    #[test]
    fn config_requires_iface_and_defaults_to_native() {
        let dir = std::env::temp_dir().join(format!("failover-cli-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ok.toml");
        std::fs::write(&path, crate::config::DEFAULT_CONFIG).unwrap();
        let p = path.to_str().unwrap();
        let missing_iface = plan(&run_args(&["--config", p])).err();
        let native = plan(&run_args(&["--config", p, "--iface", "lo"])).map(|p| (p.demo, p.mode));
        let skb = plan(&run_args(&[
            "--config",
            p,
            "--iface",
            "lo",
            "--xdp-mode",
            "skb",
        ]))
        .map(|p| p.mode);
        let bad_iface = plan(&run_args(&["--config", p, "--iface", "nonexistent0"])).err();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            missing_iface.as_deref(),
            Some("--iface IFACE is required with --config")
        );
        assert_eq!(native, Ok((false, AttachMode::Native)));
        assert_eq!(skb, Ok(AttachMode::Skb));
        assert_eq!(
            bad_iface.as_deref(),
            Some("--iface nonexistent0: no such network interface")
        );
    }

    #[test]
    fn http_listen_overrides_the_file_or_disables_the_endpoint() {
        let demo = plan(&run_args(&[])).unwrap();
        assert_eq!(
            demo.config.http.listen,
            Some("127.0.0.1:9153".parse().unwrap())
        );
        assert!(demo.config.http.listen_is_default);
        let moved = plan(&run_args(&["--http-listen", "[::1]:9100"])).unwrap();
        assert_eq!(
            moved.config.http.listen,
            Some("[::1]:9100".parse().unwrap())
        );
        assert!(!moved.config.http.listen_is_default);
        let off = plan(&run_args(&["--http-listen", ""])).unwrap();
        assert_eq!(off.config.http.listen, None);
        let bad = plan(&run_args(&["--http-listen", "9153"])).err().unwrap();
        assert!(
            bad.starts_with("--http-listen: ") && bad.contains("not an address and port"),
            "{bad}"
        );
    }

    #[test]
    fn listen_and_mode_override_the_file() {
        let demo = plan(&run_args(&[])).unwrap();
        assert_eq!(demo.config.server.mode, ServerMode::Authoritative);
        assert_eq!(
            demo.config.server.listen,
            [
                "127.0.0.1:53".parse::<SocketAddr>().unwrap(),
                "[::1]:53".parse().unwrap()
            ]
        );
        let front = plan(&run_args(&["--mode", "front"])).unwrap();
        assert_eq!(front.config.server.mode, ServerMode::Front);
        let listen = plan(&run_args(&[
            "--listen",
            "127.0.0.53",
            "--listen",
            "[::1]:5353",
            "--listen",
            "127.0.0.53:53",
        ]))
        .unwrap();
        assert_eq!(
            listen.config.server.listen,
            [
                "127.0.0.53:53".parse::<SocketAddr>().unwrap(),
                "[::1]:5353".parse().unwrap()
            ],
            "port 53 by default, duplicates once"
        );
        assert!(!listen.config.server.listen_is_default);
        assert_eq!(
            plan(&run_args(&["--listen", "localhost"])).err().as_deref(),
            Some(
                "--listen: \"localhost\" is not an address to listen on (e.g. \"0.0.0.0:53\", \"[::]:53\", \"192.0.2.53\")"
            )
        );
        assert!(
            plan(&run_args(&["--listen", "::1", "--mode", "front"]))
                .err()
                .unwrap()
                .contains("contradict")
        );

        // A file in front mode, switched back on the command line.
        let dir = std::env::temp_dir().join(format!("failover-cli-mode-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("front.toml");
        std::fs::write(
            &path,
            crate::config::DEFAULT_CONFIG.replace(
                "mode = \"authoritative\"\nlisten = [\"127.0.0.1:53\", \"[::1]:53\"]",
                "mode = \"front\"",
            ),
        )
        .unwrap();
        let p = path.to_str().unwrap();
        let file = plan(&run_args(&["--config", p, "--iface", "lo"])).map(|p| p.config.server);
        let back = plan(&run_args(&[
            "--config",
            p,
            "--iface",
            "lo",
            "--mode",
            "authoritative",
        ]))
        .map(|p| p.config.server);
        std::fs::remove_dir_all(&dir).unwrap();
        let file = file.unwrap();
        assert_eq!((file.mode, file.listen.len()), (ServerMode::Front, 0));
        let back = back.unwrap();
        assert_eq!(back.mode, ServerMode::Authoritative);
        assert_eq!(back.listen, crate::config::Server::default().listen);
    }

    #[test]
    fn bad_arguments_are_usage_errors() {
        for argv in [
            &["failover-agent", "run", "--xdp-mode", "driver"][..],
            &["failover-agent", "run", "--stats-interval", "soon"],
            &["failover-agent", "run", "--mode", "recursive"],
            &["failover-agent", "demo-endpoint", "--listen", "localhost"],
            &["failover-agent", "frobnicate"],
        ] {
            let e = Cli::try_parse_from(argv).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{argv:?}");
        }
    }
}
