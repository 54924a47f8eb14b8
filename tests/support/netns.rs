//! Two network namespaces joined by a veth pair, with the agent and demo
//! endpoints running in the server one.

use std::{
    collections::BTreeMap,
    fs::File,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Output, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

use anyhow::{Context as _, Result, bail};
use aya::{
    Ebpf,
    programs::{Xdp, XdpMode},
};
use failover_agent::dataplane::XDP_OBJECT;
use failover_common::PROGRAM_PASS;

use crate::{
    dns::DnsClient,
    in_netns,
    packets::{CLIENT_MAC, SERVER_MAC},
    poll_until,
};

/// The server namespace's veth address: where clients send DNS queries.
pub const DNS_SERVER_ADDR: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
/// The client namespace's veth address.
pub const CLIENT_ADDR: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);
/// The server veth's IPv6 address (documentation prefix, RFC 3849).
pub const DNS_SERVER_ADDR6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x53, 0, 0, 0, 0, 1);
/// The client veth's IPv6 address.
pub const CLIENT_ADDR6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x53, 0, 0, 0, 0, 2);
/// Endpoint addresses (TEST-NET-1) on the server namespace's lo.
pub const ENDPOINT_ADDRS: [Ipv4Addr; 2] =
    [Ipv4Addr::new(192, 0, 2, 10), Ipv4Addr::new(192, 0, 2, 11)];

/// veth names; they only ever exist inside our namespaces, so they need not be unique.
pub const SERVER_VETH: &str = "fo-srv0";
pub const CLIENT_VETH: &str = "fo-cli0";

/// How long a process gets to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a started process gets to become ready.
const START_TIMEOUT: Duration = Duration::from_secs(10);

static NEXT_ID: AtomicU32 = AtomicU32::new(0);

/// What the agent logs when its loop starts (everything is open by then).
pub(crate) const AGENT_UP: &str = "answer sets are written once every endpoint has been checked";

/// A process the fixture started, with the file its stderr goes to.
struct Proc {
    child: Child,
    stderr: PathBuf,
}

impl Proc {
    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// SIGKILL by PID and reap; errors only if it cannot be reaped.
    fn kill(&mut self) -> Result<ExitStatus> {
        if let Some(status) = self.child.try_wait()? {
            return Ok(status);
        }
        // Child::kill sends SIGKILL to this PID, which we still own (not reaped).
        self.child.kill().ok();
        Ok(self.child.wait()?)
    }
}

/// The fixture. Dropping it kills every process it started (by PID), detaches
/// the pass-through program and deletes both namespaces.
pub struct Netns {
    pub server: String,
    pub client: String,
    agent_binary: PathBuf,
    /// Config, logs: removed on drop.
    workdir: PathBuf,
    server_created: bool,
    client_created: bool,
    /// The pass-through XDP program on the client veth (see `attach_pass`).
    pass: Option<Ebpf>,
    endpoints: BTreeMap<SocketAddr, Proc>,
    agent: Option<Proc>,
    agent_runs: u32,
    /// The fixture's own bpffs (mounted in `workdir`), where the agent pins
    /// its data plane (`--pin-root`): interface names repeat across the
    /// tests' namespaces, so each fixture gets a bpffs of its own, shared by
    /// every agent it starts (adoption across restarts) and unmounted on
    /// drop, which removes every pin. Mounted here, in the test's mount
    /// namespace, before any agent starts: `ip netns exec` gives the agent
    /// a copy of it (only /sys is remounted), so every agent of the fixture
    /// sees the same pins, and none outlive the fixture under /sys/fs/bpf.
    pin_root: PathBuf,
    bpffs_mounted: bool,
}

impl Netns {
    /// Creates both namespaces, the veth pair, the addresses and the
    /// pass-through program on the client veth. `agent_binary` is the
    /// failover-agent executable used for the agent and the endpoints.
    pub fn new(agent_binary: impl Into<PathBuf>) -> Result<Self> {
        let agent_binary = agent_binary.into();
        if !agent_binary.is_file() {
            bail!("agent binary {} does not exist", agent_binary.display());
        }
        let pid = std::process::id();
        let n = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let workdir = std::env::temp_dir().join(format!("failover-tests-{pid}-{n}"));
        let workdir_for_pins = workdir.clone();
        std::fs::create_dir_all(&workdir)
            .with_context(|| format!("creating {}", workdir.display()))?;
        // Built before anything exists so that a failure half-way is cleaned up by Drop.
        let mut netns = Netns {
            server: format!("fo-srv-{pid}-{n}"),
            client: format!("fo-cli-{pid}-{n}"),
            agent_binary,
            workdir,
            server_created: false,
            client_created: false,
            pass: None,
            endpoints: BTreeMap::new(),
            agent: None,
            agent_runs: 0,
            pin_root: workdir_for_pins.join("bpffs"),
            bpffs_mounted: false,
        };
        netns.setup().context("setting up the test namespaces")?;
        Ok(netns)
    }

    fn setup(&mut self) -> Result<()> {
        std::fs::create_dir_all(&self.pin_root)?;
        mount_bpffs(&self.pin_root)?;
        self.bpffs_mounted = true;
        ip(&["netns", "add", &self.server])?;
        self.server_created = true;
        ip(&["netns", "add", &self.client])?;
        self.client_created = true;
        // Created directly inside the namespaces: the veth never appears in ours.
        // With the MACs hand-made frames carry (`packets`): the XDP program
        // answers only frames sent to the interface's own MAC.
        let mac = |m: [u8; 6]| m.map(|b| format!("{b:02x}")).join(":");
        let (server_mac, client_mac) = (mac(SERVER_MAC), mac(CLIENT_MAC));
        ip(&[
            "link",
            "add",
            SERVER_VETH,
            "address",
            &server_mac,
            "netns",
            &self.server,
            "type",
            "veth",
            "peer",
            "name",
            CLIENT_VETH,
            "address",
            &client_mac,
            "netns",
            &self.client,
        ])?;
        let (srv, cli) = (self.server.clone(), self.client.clone());
        let server_cidr = format!("{DNS_SERVER_ADDR}/24");
        let client_cidr = format!("{CLIENT_ADDR}/24");
        ip(&["-n", &srv, "link", "set", "lo", "up"])?;
        ip(&["-n", &srv, "addr", "add", &server_cidr, "dev", SERVER_VETH])?;
        for addr in ENDPOINT_ADDRS {
            ip(&[
                "-n",
                &srv,
                "addr",
                "add",
                &format!("{addr}/32"),
                "dev",
                "lo",
            ])?;
        }
        ip(&["-n", &cli, "link", "set", "lo", "up"])?;
        ip(&["-n", &cli, "addr", "add", &client_cidr, "dev", CLIENT_VETH])?;
        // IPv6 on the same veth. `nodad`: usable at once, no duplicate
        // address detection to wait out (nothing else is on this link).
        for (ns, addr) in [(&srv, DNS_SERVER_ADDR6), (&cli, CLIENT_ADDR6)] {
            let veth = if ns == &srv { SERVER_VETH } else { CLIENT_VETH };
            ip(&[
                "-n",
                ns,
                "addr",
                "add",
                &format!("{addr}/64"),
                "dev",
                veth,
                "nodad",
            ])?;
        }
        ip(&["-n", &srv, "link", "set", SERVER_VETH, "up"])?;
        ip(&["-n", &cli, "link", "set", CLIENT_VETH, "up"])?;
        self.pass = Some(attach_pass(&cli)?);
        Ok(())
    }

    pub fn workdir(&self) -> &Path {
        &self.workdir
    }

    /// Attaches (`true`) or detaches (`false`) the pass-through program on
    /// the client veth; nothing happens if it already is so. A load
    /// generator that brings its own XDP program for the client veth
    /// (kxdpgun) needs the veth free of ours; while its program is attached,
    /// it is the peer program XDP_TX on the server veth needs.
    pub fn set_client_pass(&mut self, on: bool) -> Result<()> {
        match (on, self.pass.take()) {
            (true, None) => self.pass = Some(attach_pass(&self.client)?),
            (false, Some(pass)) => {
                in_netns(&self.client, move || {
                    drop(pass);
                    Ok(())
                })
                .context("detaching the pass-through program")?;
                // Closing a bpf_link detaches it asynchronously; until then
                // another attach fails with EBUSY.
                let client = self.client.clone();
                let gone = poll_until(Duration::from_secs(5), Duration::from_millis(10), || {
                    let out = Command::new("ip")
                        .args(["-n", &client, "link", "show", CLIENT_VETH])
                        .output()
                        .context("running ip link show")?;
                    Ok((!String::from_utf8_lossy(&out.stdout).contains("xdp")).then_some(()))
                })?;
                if gone.is_none() {
                    bail!("the pass-through program is still on {CLIENT_VETH} 5 s after detaching");
                }
            }
            (_, kept) => self.pass = kept,
        }
        Ok(())
    }

    /// `ip netns exec <server> <program>`: `ip` execs, so the child's PID is the program's.
    pub fn server_command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.server]).arg(program);
        cmd
    }

    /// `ip netns exec <client> <program>`, likewise.
    pub fn client_command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.client]).arg(program);
        cmd
    }

    /// Adds `addr` (as a host route: /32 or /128) to the server namespace's
    /// lo, e.g. for more endpoint addresses than [`ENDPOINT_ADDRS`].
    pub fn add_server_lo_address(&self, addr: IpAddr) -> Result<()> {
        let cidr = match addr {
            IpAddr::V4(a) => format!("{a}/32"),
            IpAddr::V6(a) => format!("{a}/128"),
        };
        let mut args = vec!["-n", &self.server, "addr", "add", &cidr, "dev", "lo"];
        if addr.is_ipv6() {
            args.push("nodad");
        }
        ip(&args)
    }

    /// Sends `frame` (a whole Ethernet frame) out of the client veth through
    /// a raw packet socket and returns the first frame arriving on that veth
    /// within `timeout` that `is_reply` accepts, or `None`. The kernel moves a
    /// received 802.1Q tag into metadata before packet sockets see the frame;
    /// it is put back in place here, so the frame is returned as it was on
    /// the wire. For what no socket API sends: tagged frames where the kernel
    /// has no 8021q support, hand-made queries.
    pub fn client_raw_exchange(
        &self,
        frame: Vec<u8>,
        timeout: Duration,
        is_reply: impl Fn(&[u8]) -> bool + Send + 'static,
    ) -> Result<Option<Vec<u8>>> {
        in_netns(&self.client, move || {
            raw_exchange(&frame, timeout, is_reply)
        })
    }

    /// Waits until something in the server namespace accepts TCP connections
    /// on `addr` (e.g. the agent's DNS listener, a backing DNS server).
    pub fn wait_for_server_tcp(&self, addr: SocketAddr, limit: Duration) -> Result<()> {
        let server = self.server.clone();
        let up = poll_until(limit, Duration::from_millis(20), || {
            let server = server.clone();
            let up = in_netns(&server, move || {
                Ok(TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok())
            })?;
            Ok(up.then_some(()))
        })?;
        if up.is_none() {
            bail!(
                "nothing accepts TCP on {addr} in {} after {limit:?}",
                self.server
            );
        }
        Ok(())
    }

    /// Spawns `cmd` with stderr to `<log_name>` and stdout to `<log_name>.stdout`.
    fn spawn_logged(&self, mut cmd: Command, log_name: &str) -> Result<Proc> {
        let stderr = self.workdir.join(log_name);
        let stdout = self.workdir.join(format!("{log_name}.stdout"));
        let err_file =
            File::create(&stderr).with_context(|| format!("creating {}", stderr.display()))?;
        let out_file =
            File::create(&stdout).with_context(|| format!("creating {}", stdout.display()))?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out_file)
            .stderr(err_file)
            .spawn()
            .with_context(|| format!("spawning {cmd:?}"))?;
        Ok(Proc { child, stderr })
    }

    // ----- endpoints ------------------------------------------------------

    /// Starts a demo endpoint listening on `listen` in the server namespace and
    /// waits until it accepts connections. An unspecified address (`[::]:80`)
    /// makes one endpoint answer for every address of the namespace.
    pub fn start_endpoint(&mut self, listen: impl Into<SocketAddr>) -> Result<()> {
        let listen: SocketAddr = listen.into();
        if self.endpoints.contains_key(&listen) {
            bail!("endpoint {listen} is already running");
        }
        let mut cmd = self.server_command(&self.agent_binary);
        cmd.args(["demo-endpoint", "--listen", &listen.to_string()]);
        let log = format!("endpoint-{}-{}.log", listen.ip(), listen.port());
        let mut proc = self.spawn_logged(cmd, &log)?;
        let server = self.server.clone();
        let ready = poll_until(START_TIMEOUT, Duration::from_millis(20), || {
            if let Some(status) = proc.child.try_wait()? {
                bail!(
                    "demo endpoint {listen} exited at start ({status}): {}",
                    read_lossy(&proc.stderr)
                );
            }
            let server = server.clone();
            let up = in_netns(&server, move || {
                Ok(TcpStream::connect_timeout(&listen, Duration::from_millis(200)).is_ok())
            })?;
            Ok(up.then_some(()))
        });
        match ready {
            Ok(Some(())) => {
                self.endpoints.insert(listen, proc);
                Ok(())
            }
            Ok(None) => {
                proc.kill().ok();
                bail!(
                    "demo endpoint {listen} does not accept connections after {START_TIMEOUT:?}: {}",
                    read_lossy(&proc.stderr)
                )
            }
            Err(e) => {
                proc.kill().ok();
                Err(e)
            }
        }
    }

    /// Kills the endpoint's process (SIGKILL, as a crash would) and reaps it.
    pub fn kill_endpoint(&mut self, listen: impl Into<SocketAddr>) -> Result<()> {
        let listen: SocketAddr = listen.into();
        let mut proc = self
            .endpoints
            .remove(&listen)
            .with_context(|| format!("endpoint {listen} is not running"))?;
        proc.kill()?;
        Ok(())
    }

    // ----- agent ----------------------------------------------------------

    /// Writes `config` to a file in the work directory and returns its path.
    pub fn write_config(&self, name: &str, config: &str) -> Result<PathBuf> {
        let path = self.workdir.join(name);
        std::fs::write(&path, config).with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }

    fn agent_command(&self, config: &Path, extra: &[&str]) -> Command {
        self.agent_command_of(&self.agent_binary, config, extra)
    }

    fn agent_command_of(&self, binary: &Path, config: &Path, extra: &[&str]) -> Command {
        let mut cmd = self.server_command(binary);
        cmd.arg("run")
            .arg("--config")
            .arg(config)
            .args(["--iface", SERVER_VETH, "--xdp-mode", "native"])
            .arg("--pin-root")
            .arg(&self.pin_root)
            .args(extra);
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "info");
        }
        cmd
    }

    /// Starts the agent in the server namespace on the server veth and waits
    /// until its XDP program is attached there and its loop runs.
    pub fn start_agent(&mut self, config: &Path, extra: &[&str]) -> Result<()> {
        self.start_agent_with_env(config, extra, &[])
    }

    /// [`Netns::start_agent`] with `env` set for the agent (e.g. what a
    /// service manager passes: `NOTIFY_SOCKET`, `WATCHDOG_USEC`).
    pub fn start_agent_with_env(
        &mut self,
        config: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Result<()> {
        if self.agent.is_some() {
            bail!("the agent is already running");
        }
        self.agent_runs += 1;
        let mut cmd = self.agent_command(config, extra);
        cmd.envs(env.iter().copied());
        let log = format!("agent-{}.log", self.agent_runs);
        let mut proc = self.spawn_logged(cmd, &log)?;
        let attached = poll_until(START_TIMEOUT, Duration::from_millis(20), || {
            if let Some(status) = proc.child.try_wait()? {
                bail!(
                    "the agent exited at start ({status}); its stderr:\n{}",
                    read_lossy(&proc.stderr)
                );
            }
            // A pinned program from an earlier agent is attached already:
            // wait for this agent to be up too (its loop starts once the
            // sockets, the control socket included, are open).
            Ok(
                (self.server_xdp_attached()? && read_lossy(&proc.stderr).contains(AGENT_UP))
                    .then_some(()),
            )
        });
        match attached {
            Ok(Some(())) => {
                self.agent = Some(proc);
                Ok(())
            }
            Ok(None) => {
                proc.kill().ok();
                bail!(
                    "the agent attached no XDP program to {SERVER_VETH} within {START_TIMEOUT:?}; \
                     its stderr:\n{}",
                    read_lossy(&proc.stderr)
                )
            }
            Err(e) => {
                proc.kill().ok();
                Err(e)
            }
        }
    }

    /// Starts `binary` (the agent, or a build of another release) as a new
    /// agent while the current one runs, so that it takes over: waits until
    /// the new one's loop runs and the old one has exited (bounded), then
    /// the new one is the fixture's agent. Returns the old one's exit status.
    pub fn take_over_agent(
        &mut self,
        binary: &Path,
        config: &Path,
        extra: &[&str],
        limit: Duration,
    ) -> Result<ExitStatus> {
        let mut old = self
            .agent
            .take()
            .context("no agent runs to take over from")?;
        self.agent_runs += 1;
        let cmd = self.agent_command_of(binary, config, extra);
        let log = format!("agent-{}.log", self.agent_runs);
        let mut new = match self.spawn_logged(cmd, &log) {
            Ok(new) => new,
            Err(e) => {
                self.agent = Some(old);
                return Err(e);
            }
        };
        let done = poll_until(limit, Duration::from_millis(20), || {
            if let Some(status) = new.child.try_wait()? {
                bail!(
                    "the new agent exited during the takeover ({status}); its stderr:\n{}",
                    read_lossy(&new.stderr)
                );
            }
            let up = read_lossy(&new.stderr).contains(AGENT_UP);
            Ok(match old.child.try_wait()? {
                Some(status) if up => Some(status),
                _ => None,
            })
        });
        match done {
            Ok(Some(status)) => {
                self.agent = Some(new);
                Ok(status)
            }
            other => {
                new.kill().ok();
                self.agent = Some(old);
                let why = match other {
                    Err(e) => format!("{e:#}"),
                    _ => format!("not done within {limit:?}"),
                };
                bail!(
                    "takeover: {why}; the old agent's stderr:\n{}",
                    read_lossy(
                        &self
                            .workdir
                            .join(format!("agent-{}.log", self.agent_runs - 1))
                    )
                )
            }
        }
    }

    /// What agent run `run` (1 for the first started) wrote to stderr.
    pub fn agent_log_of(&self, run: u32) -> String {
        read_lossy(&self.workdir.join(format!("agent-{run}.log")))
    }

    /// How many agents the fixture has started (the last one's run number).
    pub fn agent_runs(&self) -> u32 {
        self.agent_runs
    }

    /// Runs the agent to completion (it is expected to exit by itself, e.g. on
    /// a bad config) with a time limit; returns its exit status and output.
    pub fn run_agent_to_exit(
        &mut self,
        config: &Path,
        extra: &[&str],
        limit: Duration,
    ) -> Result<Output> {
        self.agent_runs += 1;
        let cmd = self.agent_command(config, extra);
        let log = format!("agent-{}.log", self.agent_runs);
        let mut proc = self.spawn_logged(cmd, &log)?;
        let status = poll_until(limit, Duration::from_millis(20), || {
            Ok(proc.child.try_wait()?)
        })?;
        let Some(status) = status else {
            proc.kill().ok();
            bail!(
                "the agent did not exit within {limit:?}; its output:\n{}",
                read_lossy(&proc.stderr)
            );
        };
        let stdout = proc.stderr.with_file_name(format!("{log}.stdout"));
        Ok(Output {
            status,
            stdout: std::fs::read(stdout).unwrap_or_default(),
            stderr: std::fs::read(&proc.stderr).unwrap_or_default(),
        })
    }

    /// Where the agents of this fixture pin their data plane (`--pin-root`).
    pub fn pin_root(&self) -> &Path {
        &self.pin_root
    }

    /// The server veth's pin directory for this build's map layout.
    pub fn pin_dir(&self) -> PathBuf {
        self.pin_dir_of(failover_common::LAYOUT_VERSION)
    }

    /// The server veth's pin directory for map layout `version`.
    pub fn pin_dir_of(&self, version: u32) -> PathBuf {
        self.pin_root.join(format!("v{version}")).join(SERVER_VETH)
    }

    /// Runs `failover-agent ARGS... --pin-root <ours>` in the server
    /// namespace to completion (bounded by `limit`), e.g. `detach`.
    pub fn run_agent_command(&self, args: &[&str], limit: Duration) -> Result<Output> {
        let mut cmd = self.server_command(&self.agent_binary);
        cmd.args(args).arg("--pin-root").arg(&self.pin_root);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().context("running failover-agent")?;
        let status = poll_until(limit, Duration::from_millis(20), || Ok(child.try_wait()?))?;
        if status.is_none() {
            child.kill().ok();
            child.wait().ok();
            bail!("failover-agent {args:?} did not exit within {limit:?}");
        }
        Ok(child.wait_with_output()?)
    }

    /// SIGKILL to the agent by PID (a crash: nothing runs at exit); reaps it.
    pub fn kill_agent(&mut self) -> Result<ExitStatus> {
        let mut proc = self.agent.take().context("the agent is not running")?;
        proc.kill()
    }

    /// What the running (or last stopped) agent wrote to stderr: its log.
    pub fn agent_log(&self) -> String {
        read_lossy(&self.workdir.join(format!("agent-{}.log", self.agent_runs)))
    }

    /// Whether the agent process is still running.
    pub fn agent_running(&mut self) -> Result<bool> {
        match self.agent.as_mut() {
            Some(proc) => Ok(proc.child.try_wait()?.is_none()),
            None => Ok(false),
        }
    }

    /// SIGTERM to the agent by PID; waits up to 10 s for it to exit. If it does
    /// not, SIGKILLs it and fails.
    pub fn stop_agent(&mut self) -> Result<ExitStatus> {
        self.stop_agent_with(libc::SIGTERM)
    }

    /// Like [`Netns::stop_agent`], with `signal` (SIGINT, SIGTERM).
    pub fn stop_agent_with(&mut self, signal: libc::c_int) -> Result<ExitStatus> {
        let mut proc = self.agent.take().context("the agent is not running")?;
        if let Some(status) = proc.child.try_wait()? {
            return Ok(status);
        }
        // SAFETY: plain kill(2) on the PID of our own unreaped child.
        if unsafe { libc::kill(proc.pid(), signal) } != 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("sending signal {signal} to the agent"));
        }
        let status = poll_until(STOP_TIMEOUT, Duration::from_millis(10), || {
            Ok(proc.child.try_wait()?)
        })?;
        match status {
            Some(status) => Ok(status),
            None => {
                proc.kill().ok();
                bail!(
                    "the agent did not exit within {STOP_TIMEOUT:?} of signal {signal}; killed it. \
                     Its stderr:\n{}",
                    read_lossy(&proc.stderr)
                )
            }
        }
    }

    // ----- observation ----------------------------------------------------

    /// The kernel's packet counters as the agent last logged them (every
    /// `--stats-interval` and at exit), as name -> value.
    pub fn kernel_counters(&self) -> std::collections::BTreeMap<String, u64> {
        let log = self.agent_log();
        let line = log
            .lines()
            .rev()
            .find_map(|l| l.split("kernel counters:").nth(1))
            .unwrap_or_else(|| panic!("no kernel counters line in the agent's log:\n{log}"));
        line.split_whitespace()
            .filter_map(|kv| {
                let (k, v) = kv.split_once('=')?;
                Some((k.to_string(), v.parse().ok()?))
            })
            .collect()
    }

    /// PID of the running agent.
    pub fn agent_pid(&self) -> Option<u32> {
        self.agent.as_ref().map(|p| p.child.id())
    }

    /// PIDs of the processes the fixture is running (agent, endpoints).
    pub fn pids(&self) -> Vec<u32> {
        self.agent
            .iter()
            .chain(self.endpoints.values())
            .map(|p| p.child.id())
            .collect()
    }

    /// `ip -n <server> link show <veth>`.
    pub fn server_link_show(&self) -> Result<String> {
        let out = Command::new("ip")
            .args(["-n", &self.server, "link", "show", SERVER_VETH])
            .output()
            .context("running ip link show")?;
        if !out.status.success() {
            bail!(
                "ip -n {} link show {SERVER_VETH} failed: {}",
                self.server,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Whether any XDP program (any mode) is attached to the server veth.
    pub fn server_xdp_attached(&self) -> Result<bool> {
        Ok(self.server_link_show()?.contains("xdp"))
    }

    /// A UDP DNS client in the client namespace, talking to the server veth's port 53.
    pub fn dns_client(&self) -> Result<DnsClient> {
        DnsClient::new(&self.client, SocketAddrV4::new(DNS_SERVER_ADDR, 53))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Processes first: a namespace with processes inside outlives `ip netns del`.
        if let Some(mut agent) = self.agent.take()
            && let Err(e) = agent.kill()
        {
            eprintln!("netns fixture: reaping the agent: {e:#}");
        }
        for (listen, mut proc) in std::mem::take(&mut self.endpoints) {
            if let Err(e) = proc.kill() {
                eprintln!("netns fixture: reaping endpoint {listen}: {e:#}");
            }
        }
        if let Some(pass) = self.pass.take() {
            // Detach from inside the client namespace: interface indexes are
            // per namespace, and a netlink detach from ours could hit another link.
            if let Err(e) = in_netns(&self.client, move || {
                drop(pass);
                Ok(())
            }) {
                eprintln!("netns fixture: detaching the pass-through program: {e:#}");
            }
        }
        for (created, ns) in [
            (self.client_created, &self.client),
            (self.server_created, &self.server),
        ] {
            if created && let Err(e) = ip(&["netns", "del", ns]) {
                eprintln!("netns fixture: {e:#}");
            }
        }
        // Every pin goes with the fixture's bpffs (the links, their veth
        // gone with the namespace, are released with their pins).
        if self.bpffs_mounted {
            let path = std::ffi::CString::new(self.pin_root.as_os_str().as_encoded_bytes())
                .expect("no NUL in a temp path");
            // SAFETY: a NUL-terminated path that outlives the call.
            if unsafe { libc::umount2(path.as_ptr(), libc::MNT_DETACH) } != 0 {
                eprintln!(
                    "netns fixture: unmounting {}: {}",
                    self.pin_root.display(),
                    std::io::Error::last_os_error()
                );
            }
        }
        if std::env::var_os("FAILOVER_TESTS_KEEP_LOGS").is_none() {
            std::fs::remove_dir_all(&self.workdir).ok();
        } else {
            eprintln!("netns fixture: logs kept in {}", self.workdir.display());
        }
    }
}

/// `mount -t bpf bpf <at>`.
pub(crate) fn mount_bpffs(at: &Path) -> Result<()> {
    let target = std::ffi::CString::new(at.as_os_str().as_encoded_bytes())?;
    // SAFETY: NUL-terminated strings that outlive the call; null data.
    let rc = unsafe {
        libc::mount(
            c"bpf".as_ptr(),
            target.as_ptr(),
            c"bpf".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("mounting bpffs at {}", at.display()));
    }
    Ok(())
}

/// XDP_TX on a veth delivers only if the peer veth runs an XDP program too, so
/// the client veth gets the object's pass-through program, natively.
fn attach_pass(client_ns: &str) -> Result<Ebpf> {
    attach_pass_on(client_ns, CLIENT_VETH)
}

/// The pass-through program on `veth` in namespace `ns`: the peer of a
/// veth the agent answers on with XDP_TX.
pub(crate) fn attach_pass_on(ns: &str, veth: &str) -> Result<Ebpf> {
    let veth = veth.to_string();
    in_netns(ns, move || {
        let mut ebpf = Ebpf::load(XDP_OBJECT).context("loading the embedded XDP object")?;
        let program: &mut Xdp = ebpf
            .program_mut(PROGRAM_PASS)
            .with_context(|| format!("the XDP object has no {PROGRAM_PASS} program"))?
            .try_into()?;
        program.load().context("loading the pass-through program")?;
        program
            .attach(&veth, XdpMode::Driver)
            .with_context(|| format!("attaching {PROGRAM_PASS} to {veth} natively"))?;
        Ok(ebpf)
    })
}

/// Runs `ip <args>`; fails with its stderr.
pub(crate) fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("running ip (iproute2)")?;
    if !out.status.success() {
        bail!(
            "`ip {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// See [`Netns::client_raw_exchange`]; runs inside the client namespace.
fn raw_exchange(
    frame: &[u8],
    timeout: Duration,
    is_reply: impl Fn(&[u8]) -> bool,
) -> Result<Option<Vec<u8>>> {
    use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
    let protocol = (libc::ETH_P_ALL as u16).to_be();
    // SAFETY: plain socket(2); the result is checked and owned right away.
    let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(protocol)) };
    if raw < 0 {
        return Err(std::io::Error::last_os_error()).context("opening a packet socket");
    }
    // SAFETY: `raw` is a fresh descriptor nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let name = std::ffi::CString::new(CLIENT_VETH).expect("no NUL");
    // SAFETY: valid NUL-terminated string.
    let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if ifindex == 0 {
        bail!("{CLIENT_VETH} does not exist in this namespace");
    }
    let one: libc::c_int = 1;
    // SAFETY: setsockopt with a pointer to a live c_int and its size.
    let ok = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            libc::PACKET_AUXDATA,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if ok != 0 {
        return Err(std::io::Error::last_os_error()).context("PACKET_AUXDATA");
    }
    // SAFETY: all-zero is a valid sockaddr_ll.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = protocol;
    sll.sll_ifindex = ifindex as i32;
    // SAFETY: bind with a pointer to a live sockaddr_ll and its size.
    let ok = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sll as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if ok != 0 {
        return Err(std::io::Error::last_os_error()).context("binding the packet socket");
    }
    let slice = libc::timeval {
        tv_sec: 0,
        tv_usec: 20_000,
    };
    // SAFETY: setsockopt with a pointer to a live timeval and its size.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&slice as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    // SAFETY: send(2) from a live buffer of the given length.
    let sent = unsafe { libc::send(fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
    if sent < 0 {
        return Err(std::io::Error::last_os_error()).context("sending the raw frame");
    }
    let deadline = std::time::Instant::now() + timeout;
    let mut buf = vec![0u8; 65536];
    let mut control = [0u64; 16];
    while std::time::Instant::now() < deadline {
        // SAFETY: all-zero is a valid sockaddr_ll and msghdr.
        let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_name = (&mut from as *mut libc::sockaddr_ll).cast();
        msg.msg_namelen = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control);
        // SAFETY: every pointer in `msg` refers to a live local buffer of the stated size.
        let len = unsafe { libc::recvmsg(fd.as_raw_fd(), &mut msg, 0) };
        if len < 0 {
            let e = std::io::Error::last_os_error();
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) {
                continue;
            }
            return Err(e).context("receiving on the packet socket");
        }
        if from.sll_pkttype == libc::PACKET_OUTGOING {
            continue; // our own query going out
        }
        let mut received = buf[..len as usize].to_vec();
        // SAFETY: CMSG_* walk the control buffer recvmsg filled in, bounded by msg_controllen.
        unsafe {
            let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
            while !cmsg.is_null() {
                if (*cmsg).cmsg_level == libc::SOL_PACKET
                    && (*cmsg).cmsg_type == libc::PACKET_AUXDATA
                {
                    let aux: libc::tpacket_auxdata =
                        std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                    if aux.tp_status & libc::TP_STATUS_VLAN_VALID != 0 && received.len() >= 12 {
                        let tpid = if aux.tp_vlan_tpid == 0 {
                            0x8100
                        } else {
                            aux.tp_vlan_tpid
                        };
                        let mut tag = tpid.to_be_bytes().to_vec();
                        tag.extend_from_slice(&aux.tp_vlan_tci.to_be_bytes());
                        received.splice(12..12, tag);
                    }
                }
                cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
            }
        }
        if is_reply(&received) {
            return Ok(Some(received));
        }
    }
    Ok(None)
}

pub(crate) fn read_lossy(path: &Path) -> String {
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_else(|e| format!("(cannot read {}: {e})", path.display()))
}
