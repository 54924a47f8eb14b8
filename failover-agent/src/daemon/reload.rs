//! Reloading a running agent: SIGHUP makes it re-read its configuration file
//! and apply it ([`crate::agent::Agent::apply_config`]) without dropping or
//! mis-answering queries; `failover-agent reload` sends that SIGHUP to the
//! agent named by its pid file. An invalid file changes nothing: the running
//! configuration stays, and the agent logs why (file, line, field).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use log::{error, info, warn};
use tokio::signal::unix::{SignalKind, signal};

use crate::agent::Reloader;
use crate::config::{Config, Server};
use crate::notify::Notifier;

/// Where `run` writes its pid and `reload` looks for it, unless told otherwise.
pub const DEFAULT_PID_FILE: &str = "/run/failover-agent.pid";

/// The agent's pid file; removed on drop if it still holds our pid.
pub struct PidFile {
    path: PathBuf,
    pid: u32,
}

impl PidFile {
    /// Writes our pid to `path` (atomically: a reader never sees half a pid).
    /// `taking_over`: this agent takes over from a running one, whose pid
    /// the file holds as expected.
    pub fn write(path: &Path, taking_over: bool) -> Result<PidFile> {
        let pid = std::process::id();
        if let Some(other) = read_pid(path).ok().filter(|p| *p != pid && is_agent(*p)) {
            if taking_over {
                info!(
                    "{}: now pid {pid} (was {other}, the agent this one takes over from)",
                    path.display()
                );
            } else {
                warn!(
                    "{}: another failover-agent (pid {other}) wrote it; replacing it with ours ({pid}): `failover-agent reload` will signal this one",
                    path.display()
                );
            }
        }
        let tmp = path.with_extension(format!("pid.{pid}.tmp"));
        let write = || -> std::io::Result<()> {
            let mut file = std::fs::File::create(&tmp)?;
            writeln!(file, "{pid}")?;
            std::fs::rename(&tmp, path)
        };
        write().with_context(|| format!("writing the pid file {}", path.display()))?;
        Ok(PidFile {
            path: path.to_path_buf(),
            pid,
        })
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        if read_pid(&self.path).ok() == Some(self.pid) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn read_pid(path: &Path) -> Result<u32> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the pid file {}", path.display()))?;
    text.trim()
        .parse()
        .with_context(|| format!("{}: {:?} is not a pid", path.display(), text.trim()))
}

/// Whether process `pid` is a failover agent (its program name says so).
fn is_agent(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .ok()
        .and_then(|cmdline| {
            let argv0 = cmdline.split(|b| *b == 0).next()?.to_vec();
            Some(String::from_utf8_lossy(&argv0).contains("failover-agent"))
        })
        .unwrap_or(false)
}

/// `failover-agent reload`: validates `config` first if given (an invalid
/// file is reported here and nothing is signalled), then sends SIGHUP to
/// the agent in `pid_file`. Returns its pid.
pub fn signal_agent(pid_file: &Path, config: Option<&Path>) -> Result<u32> {
    if let Some(path) = config {
        Config::load(path).map_err(|e| anyhow::anyhow!("{e}; not reloading"))?;
    }
    let pid = read_pid(pid_file).context("is the agent running (run --pid-file)?")?;
    if !is_agent(pid) {
        bail!(
            "{}: pid {pid} is not a running failover-agent (a stale pid file?)",
            pid_file.display()
        );
    }
    // SAFETY: kill has no memory preconditions.
    if unsafe { libc::kill(pid as i32, libc::SIGHUP) } != 0 {
        let e = std::io::Error::last_os_error();
        bail!("sending SIGHUP to pid {pid}: {e}");
    }
    Ok(pid)
}

/// Loads `path` for a reload: the new configuration with the running
/// `[server]` section (sockets are not re-bound), or the reason it is
/// refused. `file_server` is the `[server]` the running agent loaded from
/// the file (before command-line overrides), to tell whether it changed.
pub fn load_for_reload(path: &Path, running: &Server, file_server: &Server) -> Result<Config> {
    let mut config = Config::load(path).map_err(anyhow::Error::new)?;
    if config.server != *file_server {
        warn!(
            "reload: {}: [server] changed; sockets and limits change only on a restart (the rest is applied now)",
            path.display()
        );
    }
    config.server = running.clone();
    Ok(config)
}

/// How long reading and validating a file for a reload may take before it is
/// given up (a FIFO, a stalled network filesystem): the running
/// configuration stays.
pub const RELOAD_TIMEOUT: Duration = Duration::from_secs(30);

/// Loads `path` for a reload off the async runtime (reading and validating
/// a file is blocking work: on the runtime it would stall the DNS server and
/// the control socket), bounded by [`RELOAD_TIMEOUT`].
pub async fn load_off_runtime(
    path: &Path,
    running: &Server,
    file_server: &Server,
) -> Result<Config> {
    let (path, running, file_server) = (path.to_path_buf(), running.clone(), file_server.clone());
    let shown = path.display().to_string();
    let load = tokio::task::spawn_blocking(move || load_for_reload(&path, &running, &file_server));
    match tokio::time::timeout(RELOAD_TIMEOUT, load).await {
        Ok(Ok(loaded)) => loaded,
        Ok(Err(e)) => bail!("{shown}: loading failed: {e}"),
        // The blocked thread is left to finish (or not) on its own; its
        // result is dropped.
        Err(_) => bail!(
            "{shown}: not read and validated within {}s (a FIFO or a stalled file system?)",
            RELOAD_TIMEOUT.as_secs()
        ),
    }
}

/// Applies the configuration file at `path` on every SIGHUP, until the
/// agent is gone. Runs inside the agent's runtime.
pub async fn on_sighup(
    path: PathBuf,
    running: Server,
    file_server: Server,
    reloader: Reloader,
    notifier: Notifier,
) {
    let mut hangups = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            error!("installing the SIGHUP handler: {e}; reload is unavailable");
            return;
        }
    };
    while hangups.recv().await.is_some() {
        info!("SIGHUP: reloading {}", path.display());
        super::service::reloading();
        match load_off_runtime(&path, &running, &file_server).await {
            Ok(config) => {
                // The new hooks first: they get the reload's own events.
                notifier.configure(&config.notify);
                if !reloader.reload(config) {
                    return;
                }
            }
            // Logged by the events' log observer.
            Err(e) => reloader.refused(&e),
        }
        super::service::reloaded();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_file_round_trip_and_signal_checks() {
        let dir = std::env::temp_dir().join(format!("failover-pid-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("agent.pid");
        {
            let _pid = PidFile::write(&path, false).unwrap();
            assert_eq!(read_pid(&path).unwrap(), std::process::id());
        }
        assert!(!path.exists(), "removed on drop");
        // A pid that is no agent is refused, not signalled.
        std::fs::write(&path, "1\n").unwrap();
        let e = signal_agent(&path, None).unwrap_err().to_string();
        assert!(e.contains("pid 1 is not a running failover-agent"), "{e}");
        std::fs::write(&path, "x\n").unwrap();
        assert!(signal_agent(&path, None).is_err());
        let e = signal_agent(&dir.join("missing.pid"), None).unwrap_err();
        assert!(format!("{e:#}").contains("is the agent running"), "{e:#}");
        // An invalid configuration is reported before anything is signalled.
        let bad = dir.join("bad.toml");
        std::fs::write(&bad, "[[zone]]\norigin = 7\n").unwrap();
        let e = signal_agent(&path, Some(&bad)).unwrap_err().to_string();
        assert!(
            e.contains("bad.toml") && e.ends_with("not reloading"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
