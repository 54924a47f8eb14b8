//! DNS servers no one here wrote, run against the agent: Knot DNS and
//! unbound, started inside the test namespaces from generated config files.
//! (The clients, dig and kdig, are in [`crate::dig`].)
//!
//! Every process is started directly (`ip netns exec` execs), in the
//! foreground, so the PID we hold is the daemon's; it is stopped by that PID
//! (SIGTERM, then SIGKILL) when its [`Daemon`] is dropped, panics included.
//! Config files and logs live in a directory under the fixture's work
//! directory. Every command run to completion has a wall-clock limit.

use std::{
    fmt::Write as _,
    fs::File,
    net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Output, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use hickory_proto::{op::ResponseCode, rr::RecordType};

use crate::{Netns, dns::DnsClient, poll_until};

/// How long a daemon gets to answer its first query.
const START_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a daemon gets to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// Fails unless `program` is on PATH, naming the Debian package and the
/// command that installs it.
pub fn require_program(program: &str, package: &str) -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    let path = std::env::var_os("PATH").unwrap_or_default();
    // Daemons live in sbin, which a non-login PATH may lack.
    let dirs = std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .collect::<Vec<_>>();
    dirs.iter()
        .map(|d| d.join(program))
        .find(|p| {
            p.metadata()
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
        .with_context(|| {
            format!(
                "{program} is not installed (Debian package {package}): run `cargo xtask prereqs` \
                 (`cargo xtask test` runs it first) or `apt-get install {package}`"
            )
        })
}

/// Runs a server's configuration check (`cmd`, e.g. `knotc conf-check`,
/// `nsd-checkconf`), bounded; fails naming `what` and `config` with the
/// checker's output when it rejects the file.
pub fn check_config(cmd: &mut Command, what: &str, config: &Path) -> Result<()> {
    let out = run_bounded(cmd, Duration::from_secs(10))?;
    if !out.status.success() {
        bail!(
            "{what} rejects {}:\n{}{}",
            config.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Runs `cmd` to completion with stdin closed, killing it (by PID) if it has
/// not exited within `limit`.
pub fn run_bounded(cmd: &mut Command, limit: Duration) -> Result<Output> {
    let shown = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("spawning {shown}"))?;
    // Drain both pipes on threads so a chatty child never blocks on a full pipe.
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let out_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut stdout, &mut buf).map(|_| buf)
    });
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut stderr, &mut buf).map(|_| buf)
    });
    let status = poll_until(limit, Duration::from_millis(5), || Ok(child.try_wait()?))?;
    let Some(status) = status else {
        child.kill().ok();
        child.wait().ok();
        bail!("{shown} did not finish within {limit:?}; killed it");
    };
    Ok(Output {
        status,
        stdout: out_reader
            .join()
            .map_err(|_| anyhow::anyhow!("stdout reader panicked"))??,
        stderr: err_reader
            .join()
            .map_err(|_| anyhow::anyhow!("stderr reader panicked"))??,
    })
}

/// A server process started in a namespace, stopped by PID on drop.
pub struct Daemon {
    name: String,
    child: Child,
    /// stdout and stderr, together.
    log: PathBuf,
    /// Its generated configuration and state.
    dir: PathBuf,
}

impl Daemon {
    /// Spawns `cmd` (already `ip netns exec ...`) with stdout and stderr going
    /// to `<dir>/<name>.log`.
    pub fn spawn(name: &str, mut cmd: Command, dir: &Path) -> Result<Self> {
        let log = dir.join(format!("{name}.log"));
        let file = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .with_context(|| format!("spawning {name}: {cmd:?}"))?;
        Ok(Self {
            name: name.to_string(),
            child,
            log,
            dir: dir.to_path_buf(),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Everything the daemon printed so far.
    pub fn log(&self) -> String {
        std::fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_else(|e| format!("(cannot read {}: {e})", self.log.display()))
    }

    /// Fails, with its log, if the daemon has exited.
    pub fn ensure_running(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("{} exited ({status}); its log:\n{}", self.name, self.log());
        }
        Ok(())
    }

    /// Polls `ready` until it says yes, failing early (with the log) if the
    /// daemon exits and after [`START_TIMEOUT`].
    pub fn wait_ready(&mut self, mut ready: impl FnMut() -> Result<bool>) -> Result<()> {
        let started = Instant::now();
        let up = poll_until(START_TIMEOUT, Duration::from_millis(50), || {
            self.ensure_running()?;
            Ok(ready()?.then_some(()))
        })?;
        if up.is_none() {
            bail!(
                "{} did not answer within {START_TIMEOUT:?}; its log:\n{}",
                self.name,
                self.log()
            );
        }
        eprintln!(
            "{} (pid {}) ready after {} ms",
            self.name,
            self.pid(),
            started.elapsed().as_millis()
        );
        Ok(())
    }

    /// SIGTERM by PID, up to [`STOP_TIMEOUT`] to exit, then SIGKILL. Reaps it.
    pub fn stop(&mut self) -> Result<ExitStatus> {
        if let Some(status) = self.child.try_wait()? {
            return Ok(status);
        }
        // SAFETY: kill(2) on the PID of our own child, not yet reaped.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        if let Some(status) = poll_until(STOP_TIMEOUT, Duration::from_millis(10), || {
            Ok(self.child.try_wait()?)
        })? {
            return Ok(status);
        }
        self.child.kill().ok();
        let status = self.child.wait()?;
        bail!(
            "{} did not exit within {STOP_TIMEOUT:?} of SIGTERM; killed it ({status})",
            self.name
        )
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            eprintln!("peers: stopping {}: {e:#}", self.name);
        }
    }
}

/// A fresh directory `<workdir>/<name>` for one daemon's files.
fn daemon_dir(netns: &Netns, name: &str) -> Result<PathBuf> {
    let dir = netns.workdir().join(name);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// Whether a UDP query for `name`/`qtype` sent from namespace `ns` to
/// `server` gets an answer with rcode `want`.
fn answers(
    ns: &str,
    server: SocketAddrV4,
    name: &str,
    qtype: RecordType,
    want: ResponseCode,
) -> Result<bool> {
    let mut client = DnsClient::new(ns, server)?;
    let answer = client.query(
        name,
        qtype,
        crate::dns::QueryOptions::default(),
        Duration::from_millis(300),
    )?;
    Ok(answer.is_some_and(|a| a.rcode == want))
}

/// Knot DNS (`knotd`) in the server namespace, serving one zone from a zone
/// file on `listen` (UDP and TCP), as the existing server the agent sits in
/// front of.
pub struct Knot {
    pub daemon: Daemon,
    pub listen: Vec<SocketAddr>,
}

impl Knot {
    /// Writes `knot.conf` and `<origin>zone` (the zone file text `zone`)
    /// and starts knotd, waiting until it answers the zone's SOA
    /// authoritatively on the first IPv4 `listen` address.
    pub fn start(netns: &Netns, origin: &str, zone: &str, listen: &[SocketAddr]) -> Result<Self> {
        let knotd = require_program("knotd", "knot")?;
        let dir = daemon_dir(netns, "knot")?;
        let zone_file = dir.join(format!("{origin}zone"));
        std::fs::write(&zone_file, zone)
            .with_context(|| format!("writing {}", zone_file.display()))?;
        let listen_list = listen
            .iter()
            .map(|a| format!("{}@{}", a.ip(), a.port()))
            .collect::<Vec<_>>()
            .join(", ");
        // Runs as root in the foreground, logs to stderr; journal and zone
        // file sync off, so nothing but this directory is written.
        let config = format!(
            "server:\n    rundir: \"{dir}\"\n    listen: [ {listen_list} ]\n    background-workers: 1\n\
             log:\n  - target: stderr\n    any: info\n\
             database:\n    storage: \"{dir}/db\"\n\
             zone:\n  - domain: {origin}\n    storage: \"{dir}\"\n    file: \"{file}\"\n\
             \x20   journal-content: none\n    zonefile-sync: -1\n    zonefile-load: whole\n",
            dir = dir.display(),
            file = zone_file.display(),
        );
        let config_path = dir.join("knot.conf");
        std::fs::write(&config_path, &config)
            .with_context(|| format!("writing {}", config_path.display()))?;
        // knotc checks the configuration and the zone file without a server.
        let knotc = require_program("knotc", "knot")?;
        for what in ["conf-check", "zone-check"] {
            check_config(
                Command::new(&knotc).arg("-c").arg(&config_path).arg(what),
                &format!("knotc {what}"),
                &config_path,
            )?;
        }
        let mut cmd = netns.server_command(&knotd);
        cmd.arg("-c").arg(&config_path);
        let mut daemon = Daemon::spawn("knotd", cmd, &dir)?;
        let probe = listen
            .iter()
            .find_map(|a| match a {
                SocketAddr::V4(a) => Some(*a),
                SocketAddr::V6(_) => None,
            })
            .context("Knot needs an IPv4 listen address (the readiness probe uses it)")?;
        let server_ns = netns.server.clone();
        let origin_owned = origin.to_string();
        daemon.wait_ready(|| {
            answers(
                &server_ns,
                probe,
                &origin_owned,
                RecordType::SOA,
                ResponseCode::NoError,
            )
        })?;
        Ok(Self {
            daemon,
            listen: listen.to_vec(),
        })
    }
}

/// unbound in the client namespace: a validating-free recursive resolver
/// whose only way out is a `stub-zone` for the test zone pointing at our
/// server, listening on the client namespace's loopback.
pub struct Unbound {
    pub daemon: Daemon,
    pub listen: SocketAddrV4,
}

/// What the generated unbound.conf says besides the fixed parts.
#[derive(Clone, Debug)]
pub struct UnboundConfig {
    /// The stub zone, e.g. `"example.test."`.
    pub zone: String,
    /// Where unbound sends the zone's queries (our server), port 53.
    pub stub_addrs: Vec<IpAddr>,
    /// Where unbound listens: `127.0.0.1:<port>`.
    pub listen: SocketAddrV4,
    /// `use-caps-for-id`: randomise the case of the names it sends (0x20)
    /// and reject answers that do not echo them.
    pub caps_for_id: bool,
}

impl UnboundConfig {
    pub fn new(zone: &str, stub_addrs: &[IpAddr]) -> Self {
        Self {
            zone: zone.to_string(),
            stub_addrs: stub_addrs.to_vec(),
            listen: SocketAddrV4::new(Ipv4Addr::LOCALHOST, 53),
            caps_for_id: true,
        }
    }

    pub fn render(&self, dir: &Path) -> String {
        let mut s = String::new();
        let d = dir.display();
        // Foreground (`-d` too), no privilege drop or chroot (the test runs as
        // root and the files are in our temp dir), logs to stderr, one
        // thread, the iterator alone (no DNSSEC: there is no trust anchor for
        // a test zone). `test.` is one of unbound's built-in RFC 6761 local
        // zones (it would answer NXDOMAIN itself), so that default is lifted.
        // The lame/infra cache is kept short so a timeout never parks our
        // server for long.
        let _ = write!(
            s,
            "server:\n\
             \x20   interface: {ip}@{port}\n\
             \x20   port: {port}\n\
             \x20   do-daemonize: no\n\
             \x20   username: \"\"\n\
             \x20   chroot: \"\"\n\
             \x20   directory: \"{d}\"\n\
             \x20   pidfile: \"{d}/unbound.pid\"\n\
             \x20   logfile: \"\"\n\
             \x20   use-syslog: no\n\
             \x20   log-time-ascii: yes\n\
             \x20   verbosity: 3\n\
             \x20   log-queries: yes\n\
             \x20   log-replies: yes\n\
             \x20   log-servfail: yes\n\
             \x20   num-threads: 1\n\
             \x20   module-config: \"iterator\"\n\
             \x20   access-control: 127.0.0.0/8 allow\n\
             \x20   do-ip4: yes\n\
             \x20   do-ip6: yes\n\
             \x20   use-caps-for-id: {caps}\n\
             \x20   qname-minimisation: yes\n\
             \x20   infra-host-ttl: 5\n\
             \x20   prefetch: no\n\
             \x20   serve-expired: no\n\
             \x20   local-zone: \"test.\" nodefault\n\
             remote-control:\n\
             \x20   control-enable: no\n\
             stub-zone:\n\
             \x20   name: \"{zone}\"\n",
            ip = self.listen.ip(),
            port = self.listen.port(),
            caps = if self.caps_for_id { "yes" } else { "no" },
            zone = self.zone,
        );
        for addr in &self.stub_addrs {
            let _ = writeln!(s, "    stub-addr: {addr}");
        }
        s
    }
}

impl Unbound {
    /// Writes `unbound.conf`, checks it with unbound-checkconf, starts
    /// `unbound -d` in the client namespace and waits until it answers
    /// (`localhost.` A, which it answers itself).
    pub fn start(netns: &Netns, config: &UnboundConfig) -> Result<Self> {
        let unbound = require_program("unbound", "unbound")?;
        let dir = daemon_dir(netns, "unbound")?;
        let config_path = dir.join("unbound.conf");
        std::fs::write(&config_path, config.render(&dir))
            .with_context(|| format!("writing {}", config_path.display()))?;
        if let Ok(checkconf) = require_program("unbound-checkconf", "unbound") {
            check_config(
                Command::new(checkconf).arg(&config_path),
                "unbound-checkconf",
                &config_path,
            )?;
        }
        let mut cmd = netns.client_command(&unbound);
        cmd.arg("-d").arg("-c").arg(&config_path);
        let mut daemon = Daemon::spawn("unbound", cmd, &dir)?;
        let client_ns = netns.client.clone();
        let listen = config.listen;
        daemon.wait_ready(|| {
            answers(
                &client_ns,
                listen,
                "localhost.",
                RecordType::A,
                ResponseCode::NoError,
            )
        })?;
        Ok(Self { daemon, listen })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unbound_config_has_the_stub_and_0x20() {
        let config = UnboundConfig::new(
            "example.test.",
            &[
                "198.51.100.1".parse().unwrap(),
                "2001:db8:53::1".parse().unwrap(),
            ],
        );
        let text = config.render(Path::new("/tmp/x"));
        assert!(text.contains("use-caps-for-id: yes"));
        assert!(text.contains("stub-zone:\n    name: \"example.test.\"\n    stub-addr: 198.51.100.1\n    stub-addr: 2001:db8:53::1\n"));
        assert!(text.contains("interface: 127.0.0.1@53"));
    }
}
