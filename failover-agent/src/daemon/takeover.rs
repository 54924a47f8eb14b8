//! Taking over from a running agent on the same interface, with no gap.
//!
//! The new agent (the successor) finds the running one (the predecessor)
//! by the pin directory's lock: held means an agent runs. It asks on the
//! control socket, in order:
//!
//! 1. successor: `{"cmd":"handover","iface":..,"pin_root":..}`;
//! 2. predecessor: stops writing the maps (its loop pauses, see
//!    [`crate::agent::HandoverStep`]), goes not-ready, and replies with
//!    [`Offer`] (its layout, pin directory and the answers it holds), with
//!    the pin directory's lock and its listening sockets attached
//!    (SCM_RIGHTS). The lock is the same open file, so it never has no
//!    holder; the sockets are the same sockets, so no queued query is lost;
//! 3. successor: loads its program, reads what the maps hold, starts
//!    serving DNS on the sockets (both serve them for a moment, from the
//!    same answers), then `{"cmd":"serving"}`;
//! 4. predecessor: `{"ok":true,...}`, then stops reading and accepting,
//!    finishes its open TCP connections and exits, leaving the data plane
//!    pinned. Only after this reply does the successor write: heartbeat,
//!    addresses, zones, the answers it took over, then the program on the
//!    link (for another map layout: new maps filled first, then the link
//!    moved to the program that reads them, then the old pins removed).
//!
//! Until step 4, the predecessor is the only writer; if the successor dies
//! or fails first (the connection closes, or it is silent for
//! [`SERVING_TIMEOUT`]), the predecessor writes again and serves on.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::os::fd::{AsFd as _, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use log::{info, warn};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};
use tokio::sync::{mpsc, oneshot};

use super::sockets;
use crate::agent::HandoverStep;
use crate::agent::lifecycle::{Lifecycle, Phase};
use crate::control::{HandoverMsg, Reply, Request};
use crate::pin::{self, Lock};
use crate::serve::table::Entry;

/// How long the predecessor waits for the successor to serve (it loads and
/// verifies its program and reads the maps meanwhile).
pub const SERVING_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the successor waits for each reply.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest offer accepted (the answers of 100,000 names fit).
const MAX_OFFER: usize = 64 << 20;

/// What the predecessor hands over besides its descriptors.
#[derive(Debug, Serialize, Deserialize)]
pub struct Offer {
    pub pid: u32,
    /// Its map layout version and pin directory (whose lock comes first
    /// among the descriptors).
    pub layout: u32,
    pub pin_dir: PathBuf,
    /// How many listening sockets follow the lock.
    pub sockets: usize,
    /// Every (name, type) it holds, with its entry: what a data plane of
    /// another layout is filled with.
    pub answers: Vec<(String, u16, Entry)>,
}

#[derive(Debug, Serialize, Deserialize)]
struct OfferReply {
    ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    offer: Option<Offer>,
}

/// The successor's second request.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "kebab-case", deny_unknown_fields)]
enum Step {
    Serving,
}

// ----- the successor ----------------------------------------------------

/// A handover under way, from the successor's side.
pub struct Handover {
    stream: UnixStream,
    pub offer: Offer,
    /// The predecessor's pin directory lock, until the data plane takes it.
    pub lock: Option<Lock>,
    /// Its listening sockets (none in mode front).
    pub sockets: Vec<OwnedFd>,
}

/// The pin directories of `iface` under `root` (any layout) an agent holds.
fn held_dirs(root: &Path, iface: &str) -> Result<Vec<PathBuf>> {
    let mut dirs = pin::other_layouts(root, iface);
    let current = pin::pin_dir(root, iface);
    if current.is_dir() {
        dirs.push(current);
    }
    let mut held = Vec::new();
    for dir in dirs {
        if pin::held(&dir)? {
            held.push(dir);
        }
    }
    Ok(held)
}

/// If an agent runs the data plane of `iface` pinned under `root`, asks it
/// over `control_socket` to hand over (steps 1 and 2); `None` if no agent
/// runs there. An agent that cannot be asked is a clear error: two agents
/// never write the same maps.
pub fn request(
    root: &Path,
    iface: &str,
    control_socket: Option<&Path>,
) -> Result<Option<Handover>> {
    let held = held_dirs(root, iface)?;
    let Some(dir) = held.first() else {
        return Ok(None);
    };
    let Some(path) = control_socket else {
        bail!(
            "another agent runs the data plane pinned at {}: a takeover goes through the control socket, and this agent has none ([admin] control_socket = \"\"); stop that agent first",
            dir.display()
        );
    };
    let stream = UnixStream::connect(path).with_context(|| {
        format!(
            "another agent runs the data plane pinned at {} and does not answer on the control socket {} (a takeover needs both agents on the same --control-socket); stop that agent first",
            dir.display(),
            path.display()
        )
    })?;
    stream.set_read_timeout(Some(REPLY_TIMEOUT))?;
    stream.set_write_timeout(Some(REPLY_TIMEOUT))?;
    let request = Request::Handover {
        iface: iface.to_string(),
        pin_root: root.to_path_buf(),
    };
    let mut line = serde_json::to_string(&request).expect("requests serialise");
    line.push('\n');
    (&stream)
        .write_all(line.as_bytes())
        .with_context(|| format!("asking the agent on {} to hand over", path.display()))?;
    let (text, mut fds) =
        read_offer(&stream).with_context(|| format!("the handover offer on {}", path.display()))?;
    let reply: OfferReply = serde_json::from_slice(&text)
        .with_context(|| format!("the handover offer on {}", path.display()))?;
    let offer = match reply {
        OfferReply {
            ok: true,
            offer: Some(offer),
            ..
        } => offer,
        OfferReply { error, .. } => bail!(
            "the agent on the control socket {} refused to hand over {}: {}",
            path.display(),
            dir.display(),
            error.unwrap_or_else(|| "no reason given".into())
        ),
    };
    if fds.len() != 1 + offer.sockets {
        bail!(
            "the handover offer announced the lock and {} sockets, {} descriptors came",
            offer.sockets,
            fds.len()
        );
    }
    if !held.contains(&offer.pin_dir) {
        bail!(
            "the agent on {} handed over {}, which is not {iface}'s under {}",
            path.display(),
            offer.pin_dir.display(),
            root.display()
        );
    }
    let sockets = fds.split_off(1);
    let lock = Lock::from_handover(fds.remove(0), &offer.pin_dir)?;
    info!(
        "taking over from the agent with pid {} (map layout v{}, {} answers, {} sockets): it writes nothing until this one serves",
        offer.pid,
        offer.layout,
        offer.answers.len(),
        offer.sockets
    );
    Ok(Some(Handover {
        stream,
        offer,
        lock: Some(lock),
        sockets,
    }))
}

/// The offer line and the descriptors attached to it.
fn read_offer(stream: &UnixStream) -> Result<(Vec<u8>, Vec<OwnedFd>)> {
    let mut text = Vec::new();
    let mut fds = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let (n, more) = sockets::receive(stream, &mut buf)?;
        fds.extend(more);
        if n == 0 {
            bail!("the agent closed the connection without an offer");
        }
        text.extend_from_slice(&buf[..n]);
        if let Some(end) = text.iter().position(|&b| b == b'\n') {
            // The predecessor says nothing more until asked.
            if end + 1 != text.len() {
                bail!("bytes after the offer");
            }
            text.truncate(end);
            return Ok((text, fds));
        }
        if text.len() > MAX_OFFER {
            bail!("an offer of more than {MAX_OFFER} bytes");
        }
    }
}

impl Handover {
    /// Step 3 done: this agent serves. Returns once the predecessor has
    /// confirmed it stops; from then on this agent is the only writer.
    pub fn serving(self) -> Result<()> {
        let mut line = serde_json::to_string(&Step::Serving).expect("steps serialise");
        line.push('\n');
        let pid = self.offer.pid;
        (&self.stream)
            .write_all(line.as_bytes())
            .with_context(|| format!("telling the agent with pid {pid} that this one serves"))?;
        let mut reply = String::new();
        BufReader::new((&self.stream).take(64 * 1024))
            .read_line(&mut reply)
            .with_context(|| format!("waiting for the agent with pid {pid} to confirm"))?;
        if reply.is_empty() {
            bail!(
                "the agent with pid {pid} closed the connection before confirming (it timed out or is stopping): it serves on"
            );
        }
        let reply: Reply = serde_json::from_str(reply.trim())
            .with_context(|| format!("the confirmation of the agent with pid {pid}"))?;
        if !reply.ok {
            bail!(
                "the agent with pid {pid} did not hand over: {}",
                reply.error.unwrap_or_default()
            );
        }
        info!(
            "the agent with pid {pid} handed over: {}",
            reply.message.unwrap_or_default()
        );
        Ok(())
    }
}

// ----- the predecessor --------------------------------------------------

/// What a running agent hands over, and to whom it reports.
pub struct Handing {
    pub iface: String,
    pub pin_root: PathBuf,
    pub pin_dir: PathBuf,
    /// A descriptor of the pin directory's lock.
    pub lock: OwnedFd,
    /// Copies of the listening sockets (the server keeps serving its own).
    pub sockets: Vec<OwnedFd>,
    pub agent: mpsc::Sender<HandoverStep>,
    pub lifecycle: Lifecycle,
    /// Set once a successor has taken over: the exit leaves the data plane
    /// to it (never detached).
    pub handed_over: Arc<AtomicBool>,
}

/// Serves handover requests until one succeeds; then sends the successor's
/// pid on `done` (the agent stops).
pub async fn serve(
    mut requests: mpsc::Receiver<HandoverMsg>,
    handing: Handing,
    done: oneshot::Sender<u32>,
) {
    while let Some(msg) = requests.recv().await {
        match hand_over(msg, &handing).await {
            Ok(pid) => {
                let _ = done.send(pid);
                return;
            }
            Err(e) => warn!("handover: {e:#}"),
        }
    }
}

/// One handover; the successor's pid once it took over. On an error after
/// the pause, this agent writes again.
async fn hand_over(msg: HandoverMsg, handing: &Handing) -> Result<u32> {
    let HandoverMsg {
        iface,
        pin_root,
        stream,
    } = msg;
    // Blocking writes below: a successor that stops reading cannot hold
    // this agent's runtime thread for long.
    stream.set_write_timeout(Some(REPLY_TIMEOUT))?;
    let same_root = |a: &Path, b: &Path| {
        a == b || matches!((a.canonicalize(), b.canonicalize()), (Ok(a), Ok(b)) if a == b)
    };
    if iface != handing.iface || !same_root(&pin_root, &handing.pin_root) {
        let why = format!(
            "this agent runs {} pinned under {}, not {iface} under {}",
            handing.iface,
            handing.pin_root.display(),
            pin_root.display()
        );
        refuse(&stream, &why);
        bail!("refused a request for {iface} under {}", pin_root.display());
    }
    let before = handing.lifecycle.phase();
    if !matches!(before, Phase::Starting | Phase::Serving)
        || !handing.lifecycle.change(before, Phase::HandingOver)
    {
        let why = format!("this agent is {}", handing.lifecycle.phase().name());
        refuse(&stream, &why);
        bail!("refused: {why}");
    }
    let result = offer_and_wait(stream, handing).await;
    if result.is_err() && !handing.handed_over.load(Ordering::SeqCst) {
        let _ = handing.agent.send(HandoverStep::Resume).await;
        handing.lifecycle.change(Phase::HandingOver, before);
    }
    result
}

fn refuse(stream: &UnixStream, why: &str) {
    let reply = OfferReply {
        ok: false,
        error: Some(why.to_string()),
        offer: None,
    };
    let mut text = serde_json::to_string(&reply).expect("replies serialise");
    text.push('\n');
    let _ = (&*stream).write_all(text.as_bytes());
}

async fn offer_and_wait(stream: UnixStream, handing: &Handing) -> Result<u32> {
    let (tx, rx) = oneshot::channel();
    handing
        .agent
        .send(HandoverStep::Pause(tx))
        .await
        .context("the agent's loop is gone")?;
    let answers = rx.await.context("the agent's loop is gone")?;
    let offer = OfferReply {
        ok: true,
        error: None,
        offer: Some(Offer {
            pid: std::process::id(),
            layout: pin::layout(),
            pin_dir: handing.pin_dir.clone(),
            sockets: handing.sockets.len(),
            answers,
        }),
    };
    let text = serde_json::to_vec(&offer).expect("offers serialise");
    // The descriptors ride on the first bytes; the rest follows plainly.
    let first = text.len().min(1024);
    let mut fds = vec![handing.lock.as_fd()];
    fds.extend(handing.sockets.iter().map(|s| s.as_fd()));
    sockets::send(&stream, &text[..first], &fds)?;
    (&stream)
        .write_all(&text[first..])
        .and_then(|()| (&stream).write_all(b"\n"))
        .context("sending the offer")?;
    stream.set_nonblocking(true)?;
    let stream = tokio::net::UnixStream::from_std(stream)?;
    let pid = stream
        .peer_cred()
        .ok()
        .and_then(|c| c.pid())
        .map_or(0, |p| p as u32);
    info!(
        "handing over to the agent with pid {pid}: the data plane and the sockets are offered; this agent writes nothing until it serves ({}s at most)",
        SERVING_TIMEOUT.as_secs()
    );
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut lifecycle = handing.lifecycle.subscribe();
    let read = async {
        let mut limited = tokio::io::AsyncReadExt::take(tokio::io::BufReader::new(read), 4096);
        limited.read_line(&mut line).await
    };
    tokio::select! {
        read = tokio::time::timeout(SERVING_TIMEOUT, read) => match read {
            Err(_) => bail!("the agent with pid {pid} did not serve within {SERVING_TIMEOUT:?}"),
            Ok(Err(e)) => bail!("the agent with pid {pid}: {e}"),
            Ok(Ok(0)) => bail!("the agent with pid {pid} went away before serving"),
            Ok(Ok(_)) => {}
        },
        // A signal meanwhile: this agent stops; the successor is told so
        // by the closed connection and writes nothing.
        _ = lifecycle.wait_for(|p| *p == Phase::Stopping) => {
            bail!("stopping (a signal) during the handover to pid {pid}")
        }
    }
    match serde_json::from_str::<Step>(line.trim()) {
        Ok(Step::Serving) => {}
        Err(e) => bail!("the agent with pid {pid} sent {:?}: {e}", line.trim()),
    }
    // From here the successor is the writer: the exit leaves it the data plane.
    if !handing
        .lifecycle
        .change(Phase::HandingOver, Phase::Stopping)
    {
        bail!("stopping (a signal) during the handover to pid {pid}");
    }
    handing.handed_over.store(true, Ordering::SeqCst);
    let mut ack = serde_json::to_string(&Reply::ok(format!(
        "pid {} stops serving and finishes its TCP connections",
        std::process::id()
    )))
    .expect("replies serialise");
    ack.push('\n');
    if let Err(e) = write.write_all(ack.as_bytes()).await {
        // It cannot have read the confirmation: it writes nothing.
        handing.handed_over.store(false, Ordering::SeqCst);
        handing.lifecycle.set(Phase::HandingOver);
        bail!("confirming to the agent with pid {pid}: {e}");
    }
    Ok(pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_offer_and_the_steps_are_json_lines() {
        let reply: OfferReply =
            serde_json::from_str(r#"{"ok":false,"error":"this agent is stopping"}"#).unwrap();
        assert!(!reply.ok && reply.offer.is_none());
        let offer = Offer {
            pid: 7,
            layout: 7,
            pin_dir: "/sys/fs/bpf/failover/v7/eth0".into(),
            sockets: 2,
            answers: vec![(
                "www.example.test.".into(),
                1,
                Entry::new(
                    0,
                    30,
                    crate::policy::Answer::Addrs(vec!["192.0.2.1".parse().unwrap()]),
                ),
            )],
        };
        let text = serde_json::to_string(&offer).unwrap();
        let back: Offer = serde_json::from_str(&text).unwrap();
        assert_eq!(back.answers, offer.answers);
        assert_eq!(
            serde_json::to_string(&Step::Serving).unwrap(),
            r#"{"cmd":"serving"}"#
        );
        assert!(serde_json::from_str::<Step>(r#"{"cmd":"go"}"#).is_err());
    }
}
