//! `exec`: runs a command with the target in its environment; exit 0 = up.
//! The command runs in its own process group, and the whole group is killed
//! at the timeout, so a hung script cannot leave children behind.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::process::Command;

use super::file::CheckFile;
use super::result::Failure;
use super::target::CheckTarget;
use crate::field::{FieldError, field_err};

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ExecCheck {
    /// Program and arguments; never empty.
    pub command: Vec<String>,
    /// The check's name (`FAILOVER_CHECK`).
    pub check_name: String,
}

/// The `exec` keys of `[checks.NAME]`: `command` (required).
pub fn settings(name: &str, path: &str, check: &CheckFile) -> Result<ExecCheck, FieldError> {
    let command = check.command.clone().unwrap_or_default();
    if command.is_empty() || command[0].is_empty() {
        return Err(field_err(
            format!("{path}.command"),
            "required for an exec check: the program and its arguments, e.g. [\"/usr/local/bin/check\", \"--quick\"]",
        ));
    }
    for (i, arg) in command.iter().enumerate() {
        crate::field::no_nul(&format!("{path}.command[{i}]"), arg)?;
    }
    Ok(ExecCheck {
        command,
        check_name: name.to_string(),
    })
}

/// How much of the command's output is kept for the failure reason.
const OUTPUT_LIMIT: usize = 200;

pub async fn check(
    exec: &ExecCheck,
    target: CheckTarget,
    timeout: Duration,
) -> Result<String, Failure> {
    let mut command = Command::new(&exec.command[0]);
    command
        .args(&exec.command[1..])
        .env("FAILOVER_ADDRESS", target.address.to_string())
        .env(
            "FAILOVER_PORT",
            target.port.map(|p| p.to_string()).unwrap_or_default(),
        )
        .env("FAILOVER_TIMEOUT_MS", timeout.as_millis().to_string())
        .env("FAILOVER_CHECK", &exec.check_name)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = command
        .spawn()
        .map_err(|e| Failure::Failed(format!("cannot run {}: {e}", exec.command[0])))?;
    let pid = child.id();
    let mut stderr = child.stderr.take().expect("piped");
    /// How long to wait for stderr still in flight after the command exited.
    const STDERR_DRAIN: std::time::Duration = std::time::Duration::from_millis(20);
    let mut output = Vec::new();
    let wait = async {
        // Read what the command says while it runs (bounded), then its exit.
        let mut buf = [0u8; 256];
        let mut open = true;
        let status = loop {
            tokio::select! {
                status = child.wait() => break status,
                n = stderr.read(&mut buf), if open => match n {
                    Ok(0) | Err(_) => open = false,
                    Ok(n) => {
                        let room = OUTPUT_LIMIT.saturating_sub(output.len());
                        output.extend_from_slice(&buf[..n.min(room)]);
                    }
                },
            }
        };
        // What the command wrote just before it exited may still be in the
        // pipe. Take it, but do not wait for EOF: a child it left behind may
        // hold the pipe open.
        while open && output.len() < OUTPUT_LIMIT {
            match tokio::time::timeout(STDERR_DRAIN, stderr.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => {
                    let room = OUTPUT_LIMIT.saturating_sub(output.len());
                    output.extend_from_slice(&buf[..n.min(room)]);
                }
                _ => open = false,
            }
        }
        status
    };
    match tokio::time::timeout(timeout, wait).await {
        Ok(Ok(status)) if status.success() => Ok("exit 0".to_string()),
        Ok(Ok(status)) => {
            let how = match (
                status.code(),
                std::os::unix::process::ExitStatusExt::signal(&status),
            ) {
                (Some(code), _) => format!("exit {code}"),
                (None, Some(signal)) => format!("killed by signal {signal}"),
                (None, None) => status.to_string(),
            };
            let text = String::from_utf8_lossy(&output);
            let first = text
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("")
                .trim();
            Err(Failure::Failed(if first.is_empty() {
                how
            } else {
                format!("{how}: {first}")
            }))
        }
        Ok(Err(e)) => Err(Failure::Failed(format!("waiting for the command: {e}"))),
        Err(_) => {
            // The leader is not reaped yet, so the group id is still ours.
            if let Some(pid) = pid {
                // SAFETY: kill has no memory preconditions.
                unsafe { libc::kill(-(pid as i32), libc::SIGKILL) };
            }
            let _ = child.wait().await;
            Err(Failure::Timeout(timeout))
        }
    }
}
