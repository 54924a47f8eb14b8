//! The local control interface: a Unix socket (mode 0600, root's) on which
//! `failover-agent drain | undrain | force | status` talk to the running
//! agent. One JSON object per line each way, one reply per request, any
//! number of requests per connection:
//!
//! ```text
//! -> {"cmd":"drain","record":"www.example.test.","endpoint":"192.0.2.10","until":"2026-11-24T06:00:00Z"}
//! <- {"ok":true,"message":"www.example.test. A 192.0.2.10: drained until 2026-11-24T06:00:00Z; answer: 192.0.2.11"}
//! -> {"cmd":"status"}
//! <- {"ok":true,"status":{"records":[...]}}
//! ```
//!
//! Kept small on purpose: a later API builds on it.
//!
//! One request changes the connection's protocol: `handover`, sent by an
//! agent starting on the same interface, hands the connection to the
//! daemon's takeover ([`crate::daemon::takeover`]), which replies with the
//! listening sockets and the pin directory's lock attached (SCM_RIGHTS).

use std::io::{BufRead as _, BufReader, Write as _};
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{Context as _, Result, bail};
use log::{debug, info, warn};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};

/// Where the agent listens unless told otherwise (`[admin] control_socket`).
pub use crate::config::DEFAULT_CONTROL_SOCKET as DEFAULT_SOCKET;

/// Longest request line accepted.
const MAX_LINE: usize = 64 * 1024;
/// A connection that sends nothing for this long is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// A request to the agent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Request {
    /// Records, endpoints, health, admin state and current answers.
    Status,
    /// Takes an endpoint out of every answer (its checks go on).
    Drain {
        record: String,
        endpoint: String,
        /// Without it, until undrained.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        until: Option<Until>,
        /// With `[cluster]`: on this node only (its admin state), not
        /// stored in etcd for every node.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        local: bool,
    },
    /// Ends a drain.
    Undrain {
        record: String,
        endpoint: String,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        local: bool,
    },
    /// Overrides an endpoint's health: `up`, `down`, or `clear` to end it.
    Force {
        state: ForceState,
        record: String,
        endpoint: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        until: Option<Until>,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        local: bool,
    },
    /// From an agent starting on `iface` with its data plane pinned under
    /// `pin_root`: hand over (see [`crate::daemon::takeover`]).
    Handover { iface: String, pin_root: PathBuf },
}

impl Request {
    /// A drain, undrain or force for this node only (`--local`).
    pub fn local(&self) -> bool {
        match self {
            Request::Drain { local, .. }
            | Request::Undrain { local, .. }
            | Request::Force { local, .. } => *local,
            Request::Status | Request::Handover { .. } => false,
        }
    }
}

/// When an override ends: RFC 3339 on the wire (`"2026-11-24T06:00:00Z"`),
/// decoded once, by the protocol, into a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Until(pub SystemTime);

impl Serialize for Until {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&humantime::format_rfc3339_seconds(whole_second_up(self.0)))
    }
}

/// `t` rounded up to a whole second: ends travel and are stored in whole
/// seconds, and an override must never end before the time asked for.
pub fn whole_second_up(t: SystemTime) -> SystemTime {
    match t.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) if d.subsec_nanos() > 0 => {
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(d.as_secs() + 1)
        }
        _ => t,
    }
}

impl<'de> Deserialize<'de> for Until {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        humantime::parse_rfc3339_weak(&text)
            .map(Until)
            .map_err(|e| serde::de::Error::custom(format!("until {text:?}: {e}")))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ForceState {
    Up,
    Down,
    Clear,
}

/// The agent's reply.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<StatusReport>,
}

impl Reply {
    pub fn ok(message: impl Into<String>) -> Reply {
        Reply {
            ok: true,
            message: Some(message.into()),
            ..Reply::default()
        }
    }

    pub fn error(error: impl Into<String>) -> Reply {
        Reply {
            ok: false,
            error: Some(error.into()),
            ..Reply::default()
        }
    }
}

/// `status`: everything the agent decides from. The same model is served
/// as JSON on the HTTP endpoint (`/api/v1/status`) and feeds its metrics.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    /// The agent's version.
    #[serde(default)]
    pub version: String,
    /// When this report was made (Unix seconds).
    #[serde(default)]
    pub generated_at: f64,
    /// Every endpoint has had its first check (answers are being written).
    pub answering: bool,
    /// (name, type) entries the kernel map holds (answer sets and NODATA).
    #[serde(default)]
    pub answer_sets: usize,
    /// The admin-state file, if one is configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_state_file: Option<String>,
    pub records: Vec<RecordStatus>,
    /// With `[cluster]`: this node and the live nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterReport>,
}

/// This node in its cluster (`[cluster]`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterReport {
    pub node: String,
    /// "joining", "joined" (the quorum decides), or "alone" (etcd out of
    /// reach for lease_ttl: this node's own checks decide).
    pub standing: String,
    pub quorum: String,
    /// 0: every node checks every endpoint.
    pub checkers: u32,
    /// Nodes whose lease is alive, by name.
    pub live: Vec<String>,
    /// The digest of this node's records, checks, policies and quorum.
    #[serde(default)]
    pub config_digest: String,
    /// Live nodes whose digest differs from this node's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config_mismatch: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RecordStatus {
    pub name: String,
    #[serde(rename = "type")]
    pub rtype: String,
    pub policy: String,
    pub when_all_down: String,
    /// What the kernel and the userspace table hold now: "addresses",
    /// "rotating" (`per_answer` of `addresses` per answer, the window
    /// rotating per query), "weighted", "nodata", "servfail", or "none"
    /// before the first write.
    pub answer: String,
    pub addresses: Vec<String>,
    /// For "rotating": how many of `addresses` each answer carries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_answer: Option<usize>,
    /// For "weighted": the weight of each of `addresses`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub weights: Vec<u32>,
    /// TTL of the answers now (the degraded TTL while degraded).
    pub ttl: u32,
    pub degraded: bool,
    pub all_down: bool,
    pub endpoints: Vec<EndpointReport>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EndpointReport {
    pub address: String,
    pub priority: u32,
    pub weight: u32,
    /// From the checks: "unknown", "healthy", "unhealthy" (overrides aside).
    pub health: String,
    /// Held down (unhealthy) for flapping until stable.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub damped: bool,
    /// "drain", "force-up", "force-down", or absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_until: Option<String>,
    /// With `[cluster]` and an override: "cluster" (stored in etcd, on
    /// every node) or "local" (this node's admin state only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_scope: Option<String>,
    /// In the answer now.
    pub answered: bool,
    /// The check and what it probes, e.g. "web (tcp 192.0.2.10:80)".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<String>,
    /// The state the policy sees: health, unless an override says otherwise
    /// ("unknown", "healthy", "unhealthy", "drained", "forced_up",
    /// "forced_down").
    #[serde(default)]
    pub state: String,
    /// Checks run so far and how many of them failed.
    #[serde(default)]
    pub checks: u64,
    #[serde(default)]
    pub failures: u64,
    /// The last check's result ("success" or "failure") and when it ended
    /// (Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_result: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_check_at: Option<f64>,
    /// When its state last changed (Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_change_at: Option<f64>,
    /// Its last state changes, oldest first (at most
    /// [`crate::agent::HISTORY_PER_ENDPOINT`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<TransitionReport>,
    /// With `[cluster]`: each live node's observation ("healthy",
    /// "unhealthy"), by node name.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub votes: std::collections::BTreeMap<String, String>,
    /// With `[cluster]`: the quorum's result, e.g. "healthy (2 of 3)", or
    /// "no observer".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quorum: Option<String>,
    /// With `[cluster]`: whether this node checks the endpoint itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checked_here: Option<bool>,
}

/// One state change of an endpoint.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TransitionReport {
    /// Unix seconds.
    pub at: f64,
    pub from: String,
    pub to: String,
    pub reason: String,
}

impl StatusReport {
    /// For people: one block per record, one line per endpoint.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if !self.answering {
            out.push_str("first round of checks still running: no answers written yet\n");
        }
        if let Some(file) = &self.admin_state_file {
            out.push_str(&format!("admin state file: {file}\n"));
        }
        if let Some(c) = &self.cluster {
            out.push_str(&format!(
                "cluster: node {} {}, quorum {}, checkers {}, live nodes: {}\n",
                c.node,
                c.standing,
                c.quorum,
                if c.checkers == 0 {
                    "all".to_string()
                } else {
                    c.checkers.to_string()
                },
                c.live.join(" ")
            ));
            if !c.config_mismatch.is_empty() {
                out.push_str(&format!(
                    "cluster: CONFIGURATION DIFFERS on {} (this node's digest {}): they may answer differently\n",
                    c.config_mismatch.join(" "),
                    c.config_digest
                ));
            }
        }
        for r in &self.records {
            let answer = match r.answer.as_str() {
                "addresses" => r.addresses.join(" "),
                "rotating" => format!(
                    "{} ({} per answer, rotating)",
                    r.addresses.join(" "),
                    r.per_answer.unwrap_or_default()
                ),
                "weighted" => r
                    .addresses
                    .iter()
                    .zip(&r.weights)
                    .map(|(a, w)| format!("{a} (weight {w})"))
                    .collect::<Vec<_>>()
                    .join(" "),
                other => other.to_uppercase(),
            };
            let mut flags = Vec::new();
            if r.all_down {
                flags.push(format!("ALL DOWN: {}", r.when_all_down));
            } else if r.degraded {
                flags.push("degraded".to_string());
            }
            out.push_str(&format!(
                "{} {} policy {} ttl {}: {}{}\n",
                r.name,
                r.rtype,
                r.policy,
                r.ttl,
                answer,
                if flags.is_empty() {
                    String::new()
                } else {
                    format!(" [{}]", flags.join(", "))
                }
            ));
            for e in &r.endpoints {
                let mut line = format!("  {:<39} {:<9}", e.address, e.health,);
                if e.damped {
                    line.push_str(" damped");
                }
                if r.policy == "weighted" {
                    line.push_str(&format!(" weight {}", e.weight));
                } else {
                    line.push_str(&format!(" priority {}", e.priority));
                }
                if let Some(admin) = &e.admin {
                    line.push_str(&format!(" {admin}"));
                    if let Some(scope) = &e.admin_scope {
                        line.push_str(&format!(" ({scope})"));
                    }
                    if let Some(until) = &e.admin_until {
                        line.push_str(&format!(" until {until}"));
                    }
                }
                line.push_str(if e.answered { " answered" } else { " -" });
                if let Some(ms) = e.latency_ms {
                    line.push_str(&format!(" {ms:.1}ms"));
                }
                if let Some(check) = &e.check {
                    line.push_str(&format!(" check {check}"));
                }
                if let Some(quorum) = &e.quorum {
                    let votes: Vec<String> =
                        e.votes.iter().map(|(n, h)| format!("{n}={h}")).collect();
                    line.push_str(&format!(" quorum: {quorum} [{}]", votes.join(" ")));
                    if e.checked_here == Some(false) {
                        line.push_str(" (not checked here)");
                    }
                }
                if let Some(failure) = &e.last_failure {
                    line.push_str(&format!(" last failure: {failure}"));
                }
                out.push_str(&line);
                out.push('\n');
                for t in &e.history {
                    out.push_str(&format!(
                        "      {} {} -> {} ({})\n",
                        rfc3339(t.at),
                        t.from,
                        t.to,
                        t.reason
                    ));
                }
            }
        }
        out
    }
}

/// A `handover` request with its connection, on its way to the daemon.
#[derive(Debug)]
pub struct HandoverMsg {
    pub iface: String,
    pub pin_root: PathBuf,
    /// Blocking; nothing read from it past the request.
    pub stream: std::os::unix::net::UnixStream,
}

/// Unix seconds as an RFC 3339 time, to the millisecond.
fn rfc3339(at: f64) -> String {
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs_f64(at.max(0.0));
    humantime::format_rfc3339_millis(t).to_string()
}

/// A request on its way to the agent's loop, with where to send the reply.
#[derive(Debug)]
pub struct ControlMsg {
    pub request: Request,
    pub reply: oneshot::Sender<Reply>,
}

/// The control socket's file, removed when dropped: however the agent
/// stops (SIGINT, SIGTERM, an error), unless another agent has bound the
/// path since.
pub struct SocketFile {
    path: PathBuf,
    /// (device, inode) of the file we bound.
    id: (u64, u64),
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        if let Ok(meta) = std::fs::metadata(&self.path)
            && (meta.dev(), meta.ino()) == self.id
        {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Binds the control socket at `path` (mode 0600). A stale socket file (no
/// one listening) is replaced; a live one means another agent owns it: an
/// error, or `Ok(None)` with a warning when `path` is only the default.
pub fn bind(path: &Path, is_default: bool) -> Result<Option<(UnixListener, SocketFile)>> {
    match bind_at(path, is_default) {
        // The default path is best effort (e.g. /run not writable); a given one must work.
        Err(e) if is_default => {
            warn!("{e:#}: no control socket (give one with --control-socket PATH)");
            Ok(None)
        }
        other => other,
    }
}

/// Binds the control socket at `path` in place of the agent this one took
/// over from (which may still be finishing: its file is replaced, and its
/// exit leaves ours alone).
pub fn bind_replacing(path: &Path) -> Result<(UnixListener, SocketFile)> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(e).with_context(|| {
                format!(
                    "removing the control socket {} of the agent taken over",
                    path.display()
                )
            });
        }
    }
    bind_at(path, false)?.with_context(|| format!("binding the control socket {}", path.display()))
}

fn bind_at(path: &Path, is_default: bool) -> Result<Option<(UnixListener, SocketFile)>> {
    if path.exists() {
        match std::os::unix::net::UnixStream::connect(path) {
            Ok(_) if is_default => {
                warn!(
                    "control socket {} is in use by another agent: no control socket for this one (give it --control-socket PATH)",
                    path.display()
                );
                return Ok(None);
            }
            Ok(_) => bail!(
                "control socket {} is in use by another agent (choose another with --control-socket or [admin] control_socket)",
                path.display()
            ),
            Err(_) => std::fs::remove_file(path)
                .with_context(|| format!("removing the stale control socket {}", path.display()))?,
        }
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating {} for the control socket", dir.display()))?;
    }
    let listener = UnixListener::bind(path)
        .with_context(|| format!("binding the control socket {}", path.display()))?;
    let file = std::fs::metadata(path)
        .map(|meta| SocketFile {
            path: path.to_path_buf(),
            id: (meta.dev(), meta.ino()),
        })
        .with_context(|| format!("reading back the control socket {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("restricting the control socket {}", path.display()))?;
    info!("control socket: {}", path.display());
    Ok(Some((listener, file)))
}

/// Serves the control socket until the agent's loop is gone. `handovers`
/// gets the connections that ask for a handover (none: refused).
pub async fn serve(
    listener: UnixListener,
    tx: mpsc::Sender<ControlMsg>,
    handovers: Option<mpsc::Sender<HandoverMsg>>,
) {
    loop {
        tokio::select! {
            () = tx.closed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    tokio::spawn(connection(stream, tx.clone(), handovers.clone()));
                }
                Err(e) => {
                    warn!("control socket: accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
}

async fn connection(
    stream: UnixStream,
    tx: mpsc::Sender<ControlMsg>,
    handovers: Option<mpsc::Sender<HandoverMsg>>,
) {
    let (read, mut write) = stream.into_split();
    let mut lines = tokio::io::BufReader::new(read);
    let mut line = String::new();
    loop {
        line.clear();
        let read = tokio::time::timeout(IDLE_TIMEOUT, async {
            // Bounded read: at most MAX_LINE + 1 bytes per line.
            let mut limited = (&mut lines).take(MAX_LINE as u64 + 1);
            limited.read_line(&mut line).await
        })
        .await;
        let reply = match read {
            Err(_) | Ok(Err(_)) | Ok(Ok(0)) => return,
            Ok(Ok(_)) if line.len() > MAX_LINE => {
                let _ = write_reply(&mut write, &Reply::error("request line too long")).await;
                return;
            }
            Ok(Ok(_)) => match serde_json::from_str::<Request>(line.trim()) {
                Ok(Request::Handover { iface, pin_root }) => {
                    let Some(handovers) = &handovers else {
                        let refused = Reply::error("this agent cannot hand over");
                        let _ = write_reply(&mut write, &refused).await;
                        return;
                    };
                    // The successor waits for the reply: nothing more is buffered.
                    if !lines.buffer().is_empty() {
                        let refused = Reply::error("nothing may follow a handover request");
                        let _ = write_reply(&mut write, &refused).await;
                        return;
                    }
                    let stream = lines
                        .into_inner()
                        .reunite(write)
                        .expect("the halves of one stream")
                        .into_std()
                        .and_then(|s| s.set_nonblocking(false).map(|()| s));
                    match stream {
                        Ok(stream) => {
                            let msg = HandoverMsg {
                                iface,
                                pin_root,
                                stream,
                            };
                            if handovers.send(msg).await.is_err() {
                                debug!("control: a handover request while shutting down");
                            }
                        }
                        Err(e) => warn!("control: taking the handover connection: {e}"),
                    }
                    return;
                }
                Ok(request) => {
                    debug!("control: {request:?}");
                    let (reply_tx, reply_rx) = oneshot::channel();
                    if tx
                        .send(ControlMsg {
                            request,
                            reply: reply_tx,
                        })
                        .await
                        .is_err()
                    {
                        Reply::error("the agent is shutting down")
                    } else {
                        reply_rx
                            .await
                            .unwrap_or_else(|_| Reply::error("the agent is shutting down"))
                    }
                }
                Err(e) => Reply::error(format!("bad request: {e}")),
            },
        };
        if write_reply(&mut write, &reply).await.is_err() {
            return;
        }
    }
}

async fn write_reply(
    write: &mut tokio::net::unix::OwnedWriteHalf,
    reply: &Reply,
) -> std::io::Result<()> {
    let mut text = serde_json::to_string(reply).expect("replies serialise");
    text.push('\n');
    write.write_all(text.as_bytes()).await
}

/// Sends one request to the agent at `path` and waits for its reply (for
/// the CLI; blocking).
pub fn request(path: &Path, request: &Request, timeout: Duration) -> Result<Reply> {
    let stream = std::os::unix::net::UnixStream::connect(path).with_context(|| {
        format!(
            "connecting to the agent's control socket {} (is `failover-agent run` running? --control-socket PATH)",
            path.display()
        )
    })?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let mut text = serde_json::to_string(request).expect("requests serialise");
    text.push('\n');
    (&stream).write_all(text.as_bytes())?;
    let mut reader = BufReader::new(&stream);
    let mut line = String::new();
    reader
        .read_line(&mut line)
        .with_context(|| format!("reading the agent's reply on {}", path.display()))?;
    if line.is_empty() {
        bail!("the agent closed {} without replying", path.display());
    }
    serde_json::from_str(line.trim()).with_context(|| format!("the agent's reply {line:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_is_said_only_when_asked() {
        let here: Request = serde_json::from_str(
            r#"{"cmd":"undrain","record":"www.t.","endpoint":"192.0.2.1","local":true}"#,
        )
        .unwrap();
        assert!(here.local());
        let everywhere = Request::Drain {
            record: "www.t.".into(),
            endpoint: "192.0.2.1".into(),
            until: None,
            local: false,
        };
        assert!(!everywhere.local());
        // Older agents refuse unknown fields: a plain drain stays as it was.
        assert_eq!(
            serde_json::to_string(&everywhere).unwrap(),
            r#"{"cmd":"drain","record":"www.t.","endpoint":"192.0.2.1"}"#
        );
    }

    #[test]
    fn protocol_is_one_json_object_per_line() {
        let r: Request = serde_json::from_str(
            r#"{"cmd":"drain","record":"www.t.","endpoint":"192.0.2.1","until":"2026-11-24T06:00:00Z"}"#,
        )
        .unwrap();
        assert_eq!(
            r,
            Request::Drain {
                record: "www.t.".into(),
                endpoint: "192.0.2.1".into(),
                until: Some(Until(
                    humantime::parse_rfc3339("2026-11-24T06:00:00Z").unwrap()
                )),
                local: false,
            }
        );
        // The time goes out as it came in; one that is not a time is refused.
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"cmd":"drain","record":"www.t.","endpoint":"192.0.2.1","until":"2026-11-24T06:00:00Z"}"#
        );
        let bad = serde_json::from_str::<Request>(
            r#"{"cmd":"drain","record":"www.t.","endpoint":"192.0.2.1","until":"soon"}"#,
        );
        assert!(bad.unwrap_err().to_string().contains("until \"soon\""));
        let r: Request = serde_json::from_str(
            r#"{"cmd":"force","state":"down","record":"www.t.","endpoint":"192.0.2.1"}"#,
        )
        .unwrap();
        assert!(matches!(
            r,
            Request::Force {
                state: ForceState::Down,
                until: None,
                ..
            }
        ));
        assert_eq!(
            serde_json::to_string(&Request::Status).unwrap(),
            r#"{"cmd":"status"}"#
        );
        assert!(serde_json::from_str::<Request>(r#"{"cmd":"explode"}"#).is_err());
        assert!(
            serde_json::from_str::<Request>(r#"{"cmd":"drain","record":"a.t."}"#).is_err(),
            "endpoint missing"
        );
        assert_eq!(
            serde_json::to_string(&Reply::error("no")).unwrap(),
            r#"{"ok":false,"error":"no"}"#
        );
    }

    #[tokio::test]
    async fn socket_round_trip_and_stale_socket_replaced() {
        let dir = std::env::temp_dir().join(format!("failover-control-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("agent.sock");
        // A stale file from a dead agent.
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        let (listener, file) = bind(&path, false).unwrap().unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // A second agent on the same path: an error when explicit, none by default.
        let taken = bind(&path, false).map(|bound| bound.is_some());
        assert!(taken.unwrap_err().to_string().contains("in use"));
        assert!(bind(&path, true).unwrap().is_none());
        let (tx, mut rx) = mpsc::channel(4);
        let server = tokio::spawn(serve(listener, tx, None));
        let agent = tokio::spawn(async move {
            while let Some(msg) = rx.recv().await {
                let reply = match msg.request {
                    Request::Status => Reply {
                        ok: true,
                        status: Some(StatusReport::default()),
                        ..Reply::default()
                    },
                    other => Reply::ok(format!("{other:?}")),
                };
                let _ = msg.reply.send(reply);
            }
        });
        let p = path.clone();
        let replies = tokio::task::spawn_blocking(move || {
            let status = request(&p, &Request::Status, Duration::from_secs(5)).unwrap();
            let undrain = request(
                &p,
                &Request::Undrain {
                    record: "a.t.".into(),
                    endpoint: "192.0.2.1".into(),
                    local: false,
                },
                Duration::from_secs(5),
            )
            .unwrap();
            // Garbage gets an error reply, not a hang.
            let stream = std::os::unix::net::UnixStream::connect(&p).unwrap();
            (&stream).write_all(b"{nope\n").unwrap();
            let mut line = String::new();
            BufReader::new(&stream).read_line(&mut line).unwrap();
            (status, undrain, line)
        })
        .await
        .unwrap();
        assert!(replies.0.ok && replies.0.status.is_some());
        assert_eq!(
            replies.1.message.as_deref(),
            Some("Undrain { record: \"a.t.\", endpoint: \"192.0.2.1\", local: false }")
        );
        assert!(replies.2.contains("bad request"), "{}", replies.2);
        agent.abort();
        let _ = agent.await;
        // The agent's end is gone: the server stops; the file goes with its
        // guard, also when the task never got to stop (a runtime shut down).
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .unwrap()
            .unwrap();
        assert!(path.exists());
        drop(file);
        assert!(!path.exists());
        // A file someone else bound at the path since is left alone.
        let (_listener, file) = bind(&path, false).unwrap().unwrap();
        std::fs::remove_file(&path).unwrap();
        let other = std::os::unix::net::UnixListener::bind(&path).unwrap();
        drop(file);
        assert!(path.exists(), "another agent's socket");
        drop(other);
        std::fs::remove_file(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
