//! `kind = "exec"`: a command per event, with the event in its environment
//! (`FAILOVER_*`) and its JSON on stdin and in `FAILOVER_JSON`. At most
//! `max_running` at once; events wait in the hook's queue meanwhile. Each
//! command runs in its own process group, killed whole at the timeout, and
//! what it prints goes to the agent's log (bounded).

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use log::{info, warn};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWriteExt as _};
use tokio::process::Command;
use tokio::sync::Semaphore;

use super::Delivery;
use super::queue::{HookCounters, Queue};
use crate::config::notify::ExecHook;
use crate::events::{Event, unix_time};

/// How much of a command's stdout, and of its stderr, reaches the log.
const OUTPUT_LIMIT: usize = 2048;
/// Lines of a command's output logged, per stream.
const OUTPUT_LINES: usize = 10;
/// How long to wait for output still in flight after the command exited (a
/// child it left behind may hold the pipes open).
const OUTPUT_DRAIN: Duration = Duration::from_millis(100);

/// Runs a command for each of the queue's events, at most `max_running` at
/// once, until the hook is closed (running commands finish).
pub(super) async fn deliver(
    hook: ExecHook,
    timeout: Duration,
    host: String,
    label: String,
    queue: Arc<Queue>,
    counters: Arc<HookCounters>,
) {
    let slots = Arc::new(Semaphore::new(hook.max_running));
    let hook = Arc::new(hook);
    loop {
        // A slot first: until one is free, events wait in the queue (which
        // drops the oldest when full).
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let Some(delivery) = queue.pop().await else {
            return;
        };
        let (hook, host, label, counters) =
            (hook.clone(), host.clone(), label.clone(), counters.clone());
        tokio::spawn(async move {
            match run(&hook, timeout, &host, &label, &delivery).await {
                Ok(()) => counters.delivered.fetch_add(1, Ordering::Relaxed),
                Err(e) => {
                    warn!("notify {label}: {} event: {e}", delivery.event.kind());
                    counters.failed.fetch_add(1, Ordering::Relaxed)
                }
            };
            drop(slot);
        });
    }
}

/// Runs the command for one event; Ok when it exits 0 within the timeout.
async fn run(
    hook: &ExecHook,
    timeout: Duration,
    host: &str,
    label: &str,
    delivery: &Delivery,
) -> Result<(), String> {
    let mut command = Command::new(&hook.command[0]);
    command
        .args(&hook.command[1..])
        .envs(environment(&delivery.event, host))
        .env("FAILOVER_JSON", &delivery.json)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", hook.command[0]))?;
    let pid = child.id();
    let stdin = child.stdin.take();
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let finished = tokio::time::timeout(timeout, async {
        let io = async {
            // A command that does not read stdin closes it: not an error.
            if let Some(mut stdin) = stdin {
                let _ = stdin.write_all(delivery.json.as_bytes()).await;
                let _ = stdin.shutdown().await;
            }
        };
        let output = async {
            tokio::join!(
                io,
                read_bounded(stdout, &mut out),
                read_bounded(stderr, &mut err)
            )
        };
        tokio::pin!(output);
        let mut output_done = false;
        let status = tokio::select! {
            status = child.wait() => status,
            _ = &mut output => {
                output_done = true;
                child.wait().await
            }
        };
        if !output_done {
            let _ = tokio::time::timeout(OUTPUT_DRAIN, &mut output).await;
        }
        status
    })
    .await;
    let pid_text = pid.map_or(String::new(), |p| format!(" (pid {p})"));
    log_output(label, &pid_text, "stdout", &out);
    log_output(label, &pid_text, "stderr", &err);
    match finished {
        Ok(Ok(status)) if status.success() => Ok(()),
        Ok(Ok(status)) => Err(
            match (
                status.code(),
                std::os::unix::process::ExitStatusExt::signal(&status),
            ) {
                (Some(code), _) => format!("{}{pid_text} exited {code}", hook.command[0]),
                (None, Some(signal)) => {
                    format!("{}{pid_text} killed by signal {signal}", hook.command[0])
                }
                (None, None) => format!("{}{pid_text}: {status}", hook.command[0]),
            },
        ),
        Ok(Err(e)) => Err(format!("waiting for {}: {e}", hook.command[0])),
        Err(_) => {
            // Not reaped yet, so the group id is still ours: the command and
            // whatever it started go.
            if let Some(pid) = pid {
                // SAFETY: kill has no memory preconditions.
                unsafe { libc::kill(-(pid as i32), libc::SIGKILL) };
            }
            let _ = child.wait().await;
            Err(format!(
                "{}{pid_text} killed after the timeout ({})",
                hook.command[0],
                humantime::format_duration(timeout)
            ))
        }
    }
}

/// Reads `pipe` to its end, keeping the first [`OUTPUT_LIMIT`] bytes (the
/// rest is read and thrown away, so the command never blocks writing).
async fn read_bounded(pipe: Option<impl AsyncRead + Unpin>, kept: &mut Vec<u8>) {
    let Some(mut pipe) = pipe else {
        return;
    };
    let mut buf = [0u8; 1024];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let room = OUTPUT_LIMIT.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
}

fn log_output(label: &str, pid: &str, stream: &str, output: &[u8]) {
    let text = String::from_utf8_lossy(output);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    for line in lines.iter().take(OUTPUT_LINES) {
        info!("notify {label}{pid} {stream}: {line}");
    }
    if lines.len() > OUTPUT_LINES || output.len() >= OUTPUT_LIMIT {
        info!("notify {label}{pid} {stream}: (more output left out)");
    }
}

/// The event as `FAILOVER_*` variables (see the README for the list).
pub fn environment(event: &Event, host: &str) -> Vec<(&'static str, String)> {
    let (at, mut vars) = match event {
        Event::Transition(t) => (
            t.at,
            vec![
                ("FAILOVER_RECORD", t.record.clone()),
                ("FAILOVER_TYPE", t.rtype.clone()),
                ("FAILOVER_ENDPOINT", t.endpoint.to_string()),
                ("FAILOVER_FROM", t.from.name().to_string()),
                ("FAILOVER_TO", t.to.name().to_string()),
                ("FAILOVER_REASON", t.reason.clone()),
            ],
        ),
        Event::AnswerChange(a) => (
            a.at,
            vec![
                ("FAILOVER_RECORD", a.record.clone()),
                ("FAILOVER_TYPE", a.rtype.clone()),
                ("FAILOVER_ANSWER", a.answer.clone()),
                ("FAILOVER_PREVIOUS", a.previous.clone().unwrap_or_default()),
                (
                    "FAILOVER_ADDRESSES",
                    a.addresses
                        .iter()
                        .map(|a| a.to_string())
                        .collect::<Vec<_>>()
                        .join(" "),
                ),
                ("FAILOVER_TTL", a.ttl.to_string()),
                ("FAILOVER_ALL_DOWN", a.all_down.to_string()),
                ("FAILOVER_DEGRADED", a.degraded.to_string()),
            ],
        ),
        Event::Reload(r) => (
            r.at,
            vec![
                (
                    "FAILOVER_RESULT",
                    if r.error.is_some() {
                        "refused"
                    } else {
                        "applied"
                    }
                    .to_string(),
                ),
                ("FAILOVER_ERROR", r.error.clone().unwrap_or_default()),
            ],
        ),
        Event::Override(o) => (
            o.at,
            vec![
                ("FAILOVER_RECORD", o.record.clone()),
                ("FAILOVER_TYPE", o.rtype.clone()),
                ("FAILOVER_ENDPOINT", o.endpoint.to_string()),
                ("FAILOVER_MODE", o.mode.unwrap_or_default().to_string()),
                (
                    "FAILOVER_UNTIL",
                    o.until
                        .map(|t| humantime::format_rfc3339_seconds(t).to_string())
                        .unwrap_or_default(),
                ),
                ("FAILOVER_ORIGIN", o.origin.clone()),
            ],
        ),
        Event::Cluster(c) => (
            c.at,
            vec![
                ("FAILOVER_NODE", c.node.clone()),
                ("FAILOVER_FROM", c.from.clone()),
                ("FAILOVER_TO", c.to.clone()),
                ("FAILOVER_LIVE", c.live.join(" ")),
                ("FAILOVER_REASON", c.reason.clone()),
            ],
        ),
    };
    vars.splice(
        0..0,
        [
            ("FAILOVER_EVENT", event.kind().name().to_string()),
            ("FAILOVER_TIME", format!("{:.3}", unix_time(at))),
            ("FAILOVER_HOST", host.to_string()),
            (
                "FAILOVER_AGENT_VERSION",
                env!("CARGO_PKG_VERSION").to_string(),
            ),
        ],
    );
    // No environment value can hold a NUL (spawning would fail).
    for (_, value) in &mut vars {
        if value.contains('\0') {
            *value = value.replace('\0', "");
        }
    }
    vars
}
