//! Telling the service manager how the agent is doing (`Type=notify`):
//! READY=1 once the first round of checks is over and answers are written,
//! WATCHDOG=1 while the agent's loop turns (a stuck loop stops the pings
//! and systemd restarts the agent), RELOADING=1 and READY=1 around a
//! reload, STOPPING=1 at shutdown. Without `NOTIFY_SOCKET` every call does
//! nothing.

use std::time::Duration;

use log::{info, warn};
use sd_notify::NotifyState;
use tokio::sync::watch;

use crate::agent::Progress;

/// Sends `states`; a failure is logged, never fatal (the agent serves on).
pub fn notify(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        warn!("telling systemd {states:?}: {e}");
    }
}

/// A reload begins (the monotonic time lets systemd match it).
pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => notify(&[NotifyState::Reloading, now]),
        Err(_) => notify(&[NotifyState::Reloading]),
    }
}

/// Ready again after a reload (or a refused one: the old configuration
/// serves on).
pub fn reloaded() {
    notify(&[NotifyState::Ready]);
}

pub fn stopping() {
    notify(&[NotifyState::Stopping]);
}

/// Follows `progress` until the agent is gone: READY=1 once it answers,
/// then, with `watchdog` set (systemd's WatchdogSec), WATCHDOG=1 at half
/// that period for as long as the loop ticks.
pub async fn follow(mut progress: watch::Receiver<Progress>, watchdog: Option<Duration>) {
    let ready = progress.wait_for(|p| p.answering).await.is_ok();
    if ready {
        notify(&[NotifyState::Ready, NotifyState::Status("answering")]);
    }
    let Some(period) = watchdog else {
        return;
    };
    info!(
        "systemd watchdog: pinging every {:?} while the agent's loop runs",
        period / 2
    );
    let mut seen = progress.borrow().ticks;
    let mut every = tokio::time::interval(period / 2);
    loop {
        every.tick().await;
        if progress.has_changed().is_err() {
            return;
        }
        let now = progress.borrow_and_update().ticks;
        // Pinged only while the loop has moved: if it is stuck, systemd
        // notices and restarts the agent.
        if now != seen {
            notify(&[NotifyState::Watchdog]);
            seen = now;
        }
    }
}
