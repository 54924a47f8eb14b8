//! Several agents agreeing through a real etcd, each in its own network
//! namespace: the `[cluster]` system tests and `cargo xtask bench cluster`.
//!
//! ```text
//!   core namespace: etcd (0.0.0.0:2379), the endpoints (on lo), DNS clients
//!      | fo-n1 10.77.1.1            | fo-n2 10.77.2.1        ...
//!      |                            |
//!   node 1: fo-up0 10.77.1.2     node 2: fo-up0 10.77.2.2
//!   agent "ns1" (XDP on fo-up0)  agent "ns2"
//! ```
//!
//! Each agent reaches etcd and the endpoints through its veth (default
//! route via the core side); the core side of each veth runs the
//! pass-through program, so XDP_TX answers arrive. Every process is
//! started here and killed by PID; dropping the fixture deletes every
//! namespace and unmounts each agent's bpffs.

use std::{
    collections::BTreeMap,
    fs::File,
    net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

use anyhow::{Context as _, Result, bail};
use aya::Ebpf;

use crate::{
    dns::DnsClient,
    in_netns,
    netns::{AGENT_UP, attach_pass_on, ip, mount_bpffs, read_lossy},
    poll_until,
};

/// The agent's interface in every node namespace.
pub const NODE_VETH: &str = "fo-up0";
/// Where etcd serves clients, in the core namespace.
pub const ETCD_PORT: u16 = 2379;

const START_TIMEOUT: Duration = Duration::from_secs(15);

static NEXT_ID: AtomicU32 = AtomicU32::new(0);

/// etcd serving https only, with client certificates required
/// (`--client-cert-auth`): PEM files.
#[derive(Clone, Debug)]
pub struct EtcdTls {
    /// The CA etcd trusts for client certificates, and that signs its own.
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    /// What etcdctl presents.
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

struct Proc {
    child: Child,
    log: PathBuf,
}

impl Proc {
    /// SIGKILL by PID (our unreaped child) and reap.
    fn kill(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            self.child.kill().ok();
        }
        self.child.wait().ok();
    }
}

/// One agent's namespace.
pub struct Node {
    /// The agent's `[cluster] node` name: `ns1`, `ns2`, ...
    pub name: String,
    pub netns: String,
    /// The agent's address (its DNS service).
    pub addr: Ipv4Addr,
    /// The core side of its veth: where it reaches etcd.
    pub gateway: Ipv4Addr,
    core_veth: String,
    pin_root: PathBuf,
    pin_mounted: bool,
    control_socket: PathBuf,
    agent: Option<Proc>,
    runs: u32,
    created: bool,
}

/// The fixture.
pub struct ClusterNet {
    pub core: String,
    pub nodes: Vec<Node>,
    agent_binary: PathBuf,
    workdir: PathBuf,
    core_created: bool,
    passes: Vec<Ebpf>,
    etcd: Option<Proc>,
    etcd_runs: u32,
    etcd_tls: Option<EtcdTls>,
    /// `USER:PASSWORD` etcdctl authenticates with, once auth is on.
    etcdctl_user: Option<String>,
    endpoints: BTreeMap<SocketAddr, Proc>,
}

impl ClusterNet {
    /// The core namespace and `count` node namespaces, wired as above;
    /// nothing runs yet.
    pub fn new(agent_binary: impl Into<PathBuf>, count: usize) -> Result<Self> {
        let agent_binary = agent_binary.into();
        if !agent_binary.is_file() {
            bail!("agent binary {} does not exist", agent_binary.display());
        }
        if count == 0 || count > 200 {
            bail!("1 to 200 nodes");
        }
        let pid = std::process::id();
        let n = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let workdir = std::env::temp_dir().join(format!("failover-cluster-{pid}-{n}"));
        std::fs::create_dir_all(&workdir)?;
        let nodes = (1..=count)
            .map(|i| Node {
                name: format!("ns{i}"),
                netns: format!("fo-n{i}-{pid}-{n}"),
                addr: Ipv4Addr::new(10, 77, i as u8, 2),
                gateway: Ipv4Addr::new(10, 77, i as u8, 1),
                core_veth: format!("fo-n{i}"),
                pin_root: workdir.join(format!("bpffs-ns{i}")),
                pin_mounted: false,
                control_socket: workdir.join(format!("ns{i}.sock")),
                agent: None,
                runs: 0,
                created: false,
            })
            .collect();
        let mut net = ClusterNet {
            core: format!("fo-core-{pid}-{n}"),
            nodes,
            agent_binary,
            workdir,
            core_created: false,
            passes: Vec::new(),
            etcd: None,
            etcd_runs: 0,
            etcd_tls: None,
            etcdctl_user: None,
            endpoints: BTreeMap::new(),
        };
        net.setup().context("setting up the cluster namespaces")?;
        Ok(net)
    }

    fn setup(&mut self) -> Result<()> {
        ip(&["netns", "add", &self.core])?;
        self.core_created = true;
        ip(&["-n", &self.core, "link", "set", "lo", "up"])?;
        for i in 0..self.nodes.len() {
            let node = &mut self.nodes[i];
            std::fs::create_dir_all(&node.pin_root)?;
            mount_bpffs(&node.pin_root)?;
            node.pin_mounted = true;
            ip(&["netns", "add", &node.netns])?;
            node.created = true;
            let (core, ns) = (self.core.clone(), node.netns.clone());
            ip(&[
                "link",
                "add",
                NODE_VETH,
                "netns",
                &ns,
                "type",
                "veth",
                "peer",
                "name",
                &node.core_veth,
                "netns",
                &core,
            ])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{}/24", node.addr),
                "dev",
                NODE_VETH,
            ])?;
            ip(&["-n", &ns, "link", "set", NODE_VETH, "up"])?;
            ip(&[
                "-n",
                &core,
                "addr",
                "add",
                &format!("{}/24", node.gateway),
                "dev",
                &node.core_veth,
            ])?;
            ip(&["-n", &core, "link", "set", &node.core_veth, "up"])?;
            ip(&[
                "-n",
                &ns,
                "route",
                "add",
                "default",
                "via",
                &node.gateway.to_string(),
            ])?;
            let pass = attach_pass_on(&core, &node.core_veth)?;
            self.passes.push(pass);
        }
        Ok(())
    }

    pub fn workdir(&self) -> &Path {
        &self.workdir
    }

    /// Adds `addr/32` to the core namespace's lo (an endpoint address).
    pub fn add_endpoint_address(&self, addr: Ipv4Addr) -> Result<()> {
        ip(&[
            "-n",
            &self.core,
            "addr",
            "add",
            &format!("{addr}/32"),
            "dev",
            "lo",
        ])
    }

    /// Makes every address of `cidr` local to the core namespace (one route
    /// for many endpoint addresses).
    pub fn add_local_prefix(&self, cidr: &str) -> Result<()> {
        ip(&["-n", &self.core, "route", "add", "local", cidr, "dev", "lo"])
    }

    /// PID of node `i`'s agent (`ip netns exec` execs it: the same process).
    pub fn agent_pid(&self, i: usize) -> Option<u32> {
        self.nodes[i].agent.as_ref().map(|p| p.child.id())
    }

    fn spawn(&self, mut cmd: Command, log: &str) -> Result<Proc> {
        let log = self.workdir.join(log);
        let err = File::create(&log)?;
        let out = File::create(log.with_extension("stdout"))?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("spawning {cmd:?}"))?;
        Ok(Proc { child, log })
    }

    fn in_core(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.core]).arg(program);
        cmd
    }

    fn core_accepts(&self, addr: SocketAddr) -> Result<bool> {
        in_netns(&self.core, move || {
            Ok(TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok())
        })
    }

    // ----- etcd -----------------------------------------------------------

    /// The etcd URL node `i` (0-based) uses: its gateway.
    pub fn etcd_url(&self, i: usize) -> String {
        let scheme = if self.etcd_tls.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}:{ETCD_PORT}", self.nodes[i].gateway)
    }

    /// Every address etcd is reached at (the gateways), for its certificate.
    pub fn etcd_addresses(&self) -> Vec<std::net::IpAddr> {
        self.nodes.iter().map(|n| n.gateway.into()).collect()
    }

    /// From the next `start_etcd` on, etcd serves https only and requires
    /// client certificates signed by `tls.ca`; etcdctl presents the client's.
    pub fn use_etcd_tls(&mut self, tls: EtcdTls) {
        self.etcd_tls = Some(tls);
    }

    /// etcdctl authenticates as `user` (`USER:PASSWORD`) from now on.
    pub fn set_etcdctl_user(&mut self, user: Option<&str>) {
        self.etcdctl_user = user.map(str::to_string);
    }

    /// Starts etcd in the core namespace (its data kept across restarts)
    /// and waits until it serves.
    pub fn start_etcd(&mut self) -> Result<()> {
        if self.etcd.is_some() {
            bail!("etcd is already running");
        }
        self.etcd_runs += 1;
        let scheme = if self.etcd_tls.is_some() {
            "https"
        } else {
            "http"
        };
        let mut cmd = self.in_core("etcd");
        cmd.args(["--name", "core", "--data-dir"])
            .arg(self.workdir.join("etcd"))
            .args([
                "--listen-client-urls",
                &format!("{scheme}://0.0.0.0:{ETCD_PORT}"),
                "--advertise-client-urls",
                &self.etcd_url(0),
                "--listen-peer-urls",
                "http://127.0.0.1:2380",
                "--initial-advertise-peer-urls",
                "http://127.0.0.1:2380",
                "--initial-cluster",
                "core=http://127.0.0.1:2380",
            ]);
        if let Some(tls) = &self.etcd_tls {
            cmd.arg("--cert-file")
                .arg(&tls.server_cert)
                .arg("--key-file")
                .arg(&tls.server_key)
                .arg("--trusted-ca-file")
                .arg(&tls.ca)
                .arg("--client-cert-auth");
        }
        let mut proc = self.spawn(cmd, &format!("etcd-{}.log", self.etcd_runs))?;
        let out = poll_until(START_TIMEOUT, Duration::from_millis(50), || {
            if let Some(status) = proc.child.try_wait()? {
                bail!("etcd exited at start ({status}): {}", read_lossy(&proc.log));
            }
            let health = self
                .etcdctl(&["endpoint", "health"])
                .map(|o| o.status.success())
                .unwrap_or(false);
            Ok(health.then_some(()))
        })?;
        if out.is_none() {
            proc.kill();
            bail!(
                "etcd is not healthy after {START_TIMEOUT:?}: {}",
                read_lossy(&proc.log)
            );
        }
        self.etcd = Some(proc);
        Ok(())
    }

    /// SIGKILL to etcd by PID (its data stays for `start_etcd`).
    pub fn kill_etcd(&mut self) -> Result<()> {
        let mut proc = self.etcd.take().context("etcd is not running")?;
        proc.kill();
        Ok(())
    }

    /// `etcdctl ARGS` against our etcd, from the core namespace (bounded).
    pub fn etcdctl(&self, args: &[&str]) -> Result<Output> {
        let mut cmd = self.in_core("etcdctl");
        cmd.env("ETCDCTL_API", "3").args([
            "--endpoints",
            &self.etcd_url(0),
            "--dial-timeout",
            "1s",
            "--command-timeout",
            "2s",
        ]);
        if let Some(tls) = &self.etcd_tls {
            cmd.arg("--cacert")
                .arg(&tls.ca)
                .arg("--cert")
                .arg(&tls.client_cert)
                .arg("--key")
                .arg(&tls.client_key);
        }
        if let Some(user) = &self.etcdctl_user {
            cmd.args(["--user", user]);
        }
        cmd.args(args);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd.output().context("running etcdctl")
    }

    /// etcd's current revision: every write adds one.
    pub fn etcd_revision(&self) -> Result<i64> {
        let out = self.etcdctl(&["endpoint", "status", "-w", "json"])?;
        if !out.status.success() {
            bail!(
                "etcdctl endpoint status: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let json: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        json[0]["Status"]["header"]["revision"]
            .as_i64()
            .context("no revision in etcdctl's status")
    }

    // ----- endpoints ------------------------------------------------------

    /// A demo endpoint on `listen` in the core namespace.
    pub fn start_endpoint(&mut self, listen: SocketAddr) -> Result<()> {
        let mut cmd = self.in_core(&self.agent_binary);
        cmd.args(["demo-endpoint", "--listen", &listen.to_string()]);
        let mut proc = self.spawn(
            cmd,
            &format!("endpoint-{}-{}.log", listen.ip(), listen.port()),
        )?;
        let up = poll_until(START_TIMEOUT, Duration::from_millis(20), || {
            if let Some(status) = proc.child.try_wait()? {
                bail!(
                    "endpoint {listen} exited ({status}): {}",
                    read_lossy(&proc.log)
                );
            }
            Ok(self.core_accepts(listen)?.then_some(()))
        })?;
        if up.is_none() {
            proc.kill();
            bail!("endpoint {listen} does not accept connections");
        }
        self.endpoints.insert(listen, proc);
        Ok(())
    }

    pub fn kill_endpoint(&mut self, listen: SocketAddr) -> Result<()> {
        let mut proc = self
            .endpoints
            .remove(&listen)
            .with_context(|| format!("endpoint {listen} is not running"))?;
        proc.kill();
        Ok(())
    }

    // ----- agents ---------------------------------------------------------

    /// Writes `config` for node `i` and starts its agent; waits until its
    /// loop runs.
    pub fn start_agent(&mut self, i: usize, config: &str) -> Result<()> {
        if self.nodes[i].agent.is_some() {
            bail!("the agent of {} is already running", self.nodes[i].name);
        }
        self.nodes[i].runs += 1;
        let node = &self.nodes[i];
        let path = self
            .workdir
            .join(format!("{}-{}.toml", node.name, node.runs));
        std::fs::write(&path, config)?;
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &node.netns])
            .arg(&self.agent_binary)
            .arg("run")
            .arg("--config")
            .arg(&path)
            .args([
                "--iface",
                NODE_VETH,
                "--xdp-mode",
                "native",
                "--detach-on-exit",
            ])
            .arg("--pin-root")
            .arg(&node.pin_root)
            .arg("--control-socket")
            .arg(&node.control_socket)
            .arg("--pid-file")
            .arg(self.workdir.join(format!("{}.pid", node.name)));
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "info");
        }
        let log = format!("agent-{}-{}.log", node.name, node.runs);
        let mut proc = self.spawn(cmd, &log)?;
        let up = poll_until(START_TIMEOUT, Duration::from_millis(20), || {
            if let Some(status) = proc.child.try_wait()? {
                bail!(
                    "the agent exited at start ({status}):\n{}",
                    read_lossy(&proc.log)
                );
            }
            Ok(read_lossy(&proc.log).contains(AGENT_UP).then_some(()))
        })?;
        if up.is_none() {
            proc.kill();
            bail!("the agent did not start:\n{}", read_lossy(&proc.log));
        }
        self.nodes[i].agent = Some(proc);
        Ok(())
    }

    /// Replaces node `i`'s configuration file with `config` and sends its
    /// agent SIGHUP (by PID): a reload.
    pub fn reload_agent(&mut self, i: usize, config: &str) -> Result<()> {
        let node = &self.nodes[i];
        let path = self
            .workdir
            .join(format!("{}-{}.toml", node.name, node.runs));
        std::fs::write(&path, config)?;
        let agent = node.agent.as_ref().context("the agent is not running")?;
        // SAFETY: kill(2) on the PID of our own unreaped child.
        if unsafe { libc::kill(agent.child.id() as i32, libc::SIGHUP) } != 0 {
            return Err(std::io::Error::last_os_error()).context("SIGHUP to the agent");
        }
        Ok(())
    }

    /// Whether node `i`'s agent is still running.
    pub fn agent_running(&mut self, i: usize) -> bool {
        self.nodes[i]
            .agent
            .as_mut()
            .is_some_and(|p| matches!(p.child.try_wait(), Ok(None)))
    }

    /// SIGKILL to node `i`'s agent by PID (a crash).
    pub fn kill_agent(&mut self, i: usize) -> Result<()> {
        let mut proc = self.nodes[i]
            .agent
            .take()
            .context("the agent is not running")?;
        proc.kill();
        Ok(())
    }

    /// SIGTERM to node `i`'s agent by PID; SIGKILL after 10 s.
    pub fn stop_agent(&mut self, i: usize) -> Result<()> {
        let mut proc = self.nodes[i]
            .agent
            .take()
            .context("the agent is not running")?;
        // SAFETY: kill(2) on the PID of our own unreaped child.
        unsafe { libc::kill(proc.child.id() as i32, libc::SIGTERM) };
        let done = poll_until(Duration::from_secs(10), Duration::from_millis(20), || {
            Ok(proc.child.try_wait()?)
        })?;
        if done.is_none() {
            proc.kill();
            bail!("the agent of {} ignored SIGTERM", self.nodes[i].name);
        }
        Ok(())
    }

    /// Node `i`'s agent's log (its current or last run).
    pub fn agent_log(&self, i: usize) -> String {
        let node = &self.nodes[i];
        read_lossy(
            &self
                .workdir
                .join(format!("agent-{}-{}.log", node.name, node.runs)),
        )
    }

    /// `failover-agent ARGS --control-socket <node i's>` (drain, status...).
    pub fn control(&self, i: usize, args: &[&str]) -> Result<Output> {
        let mut cmd = Command::new(&self.agent_binary);
        cmd.args(args)
            .arg("--control-socket")
            .arg(&self.nodes[i].control_socket)
            .stdin(Stdio::null());
        let out = cmd.output().context("running failover-agent")?;
        Ok(out)
    }

    /// A DNS client in the core namespace asking node `i`'s agent.
    pub fn dns_client(&self, i: usize) -> Result<DnsClient> {
        DnsClient::new(&self.core, SocketAddrV4::new(self.nodes[i].addr, 53))
    }

    /// Cuts (or restores) node `i`'s path to `addr`: a blackhole route in
    /// its namespace, as a broken link would.
    pub fn blackhole(&self, i: usize, addr: Ipv4Addr, on: bool) -> Result<()> {
        ip(&[
            "-n",
            &self.nodes[i].netns,
            "route",
            if on { "add" } else { "del" },
            "blackhole",
            &format!("{addr}/32"),
        ])
    }
}

impl Drop for ClusterNet {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut agent) = node.agent.take() {
                agent.kill();
            }
        }
        if let Some(mut etcd) = self.etcd.take() {
            etcd.kill();
        }
        for (_, mut proc) in std::mem::take(&mut self.endpoints) {
            proc.kill();
        }
        let core = self.core.clone();
        let passes = std::mem::take(&mut self.passes);
        if !passes.is_empty()
            && let Err(e) = in_netns(&core, move || {
                drop(passes);
                Ok(())
            })
        {
            eprintln!("cluster fixture: detaching the pass-through programs: {e:#}");
        }
        for node in &self.nodes {
            if node.created
                && let Err(e) = ip(&["netns", "del", &node.netns])
            {
                eprintln!("cluster fixture: {e:#}");
            }
            if node.pin_mounted {
                let path = std::ffi::CString::new(node.pin_root.as_os_str().as_encoded_bytes())
                    .expect("no NUL in a temp path");
                // SAFETY: a NUL-terminated path that outlives the call.
                unsafe { libc::umount2(path.as_ptr(), libc::MNT_DETACH) };
            }
        }
        if self.core_created
            && let Err(e) = ip(&["netns", "del", &self.core])
        {
            eprintln!("cluster fixture: {e:#}");
        }
        if std::env::var_os("FAILOVER_TESTS_KEEP_LOGS").is_none() {
            std::fs::remove_dir_all(&self.workdir).ok();
        } else {
            eprintln!("cluster fixture: logs kept in {}", self.workdir.display());
        }
    }
}
