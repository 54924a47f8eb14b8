//! `[[notify]]` hooks: every transition and answer change (and, when asked
//! for, reloads and overrides) told to a webhook or a command.
//!
//! The [`Notifier`] is an events observer: on the agent's loop it only puts
//! the event in each interested hook's bounded queue ([`queue`]); one task
//! per hook delivers from there, in order ([`webhook`], [`exec`]). A dead or
//! slow receiver fills its own queue (the oldest events are dropped and
//! counted), never the loop: a failover is never delayed by a hook.
//!
//! A reload hands the new `[[notify]]` list to [`Notifier::configure`]:
//! hooks whose settings are unchanged go on with their queue; the others are
//! closed (an attempt in flight finishes, without further retries; what is
//! queued is dropped) and the new ones start.

mod exec;
mod queue;
mod webhook;

pub use queue::{CountersSnapshot, HookCounters};

use std::sync::{Arc, RwLock};

use log::{error, info};

use crate::config::notify::{Hook, HookKind};
use crate::events::{Event, Observer};
use queue::Queue;

/// One event as hooks deliver it.
pub struct Delivery {
    pub event: Event,
    /// The webhook body, also given to commands: the event's JSON form with
    /// `host` and `agent_version` added.
    pub json: String,
}

/// Every configured hook; hands events to them. Cloned handles share them.
#[derive(Clone)]
pub struct Notifier {
    inner: Arc<Inner>,
}

struct Inner {
    hooks: RwLock<Vec<Running>>,
    runtime: tokio::runtime::Handle,
    host: String,
}

/// A hook and its delivery task's queue.
struct Running {
    hook: Hook,
    label: String,
    queue: Arc<Queue>,
    counters: Arc<HookCounters>,
}

impl Notifier {
    /// No hooks yet; their tasks will run on `runtime`.
    pub fn new(runtime: tokio::runtime::Handle) -> Self {
        Notifier {
            inner: Arc::new(Inner {
                hooks: RwLock::new(Vec::new()),
                runtime,
                host: host_name(),
            }),
        }
    }

    /// Runs `hooks` from now on: unchanged ones keep their queue, changed
    /// and removed ones are closed, new ones start.
    pub fn configure(&self, hooks: &[Hook]) {
        let mut running = self.inner.hooks.write().unwrap_or_else(|e| e.into_inner());
        let mut old: Vec<Option<Running>> = std::mem::take(&mut *running)
            .into_iter()
            .map(Some)
            .collect();
        let (mut kept, mut started) = (0, 0);
        for hook in hooks {
            let same = old
                .iter_mut()
                .find(|r| r.as_ref().is_some_and(|r| r.hook == *hook))
                .and_then(Option::take);
            match same {
                Some(same) => {
                    kept += 1;
                    running.push(same);
                }
                None => match self.start(hook) {
                    Ok(new) => {
                        started += 1;
                        running.push(new);
                    }
                    Err(e) => error!("notify {}: {e:#}; not started", hook.label()),
                },
            }
        }
        let stopped = old.iter().flatten().count();
        for gone in old.into_iter().flatten() {
            gone.queue.close();
        }
        if kept + started + stopped > 0 {
            info!("notify: {started} hooks started, {kept} kept, {stopped} stopped");
        }
    }

    fn start(&self, hook: &Hook) -> anyhow::Result<Running> {
        let label = hook.label();
        let counters = Arc::new(HookCounters::default());
        let queue = Arc::new(Queue::new(label.clone(), hook.queue, counters.clone()));
        match &hook.kind {
            HookKind::Webhook(settings) => {
                let sender = webhook::Sender::new(settings, hook.timeout)?;
                self.inner.runtime.spawn(webhook::deliver(
                    sender,
                    label.clone(),
                    queue.clone(),
                    counters.clone(),
                ));
            }
            HookKind::Exec(settings) => {
                self.inner.runtime.spawn(exec::deliver(
                    settings.clone(),
                    hook.timeout,
                    self.inner.host.clone(),
                    label.clone(),
                    queue.clone(),
                    counters.clone(),
                ));
            }
        }
        Ok(Running {
            hook: hook.clone(),
            label,
            queue,
            counters,
        })
    }

    /// Each running hook's name in the log (`webhook https://...`, `exec
    /// /path`) and counters, in configuration order: for metrics.
    pub fn counters(&self) -> Vec<(String, Arc<HookCounters>)> {
        self.inner
            .hooks
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|r| (r.label.clone(), r.counters.clone()))
            .collect()
    }
}

impl Observer for Notifier {
    fn observe(&self, event: &Event) {
        let hooks = self.inner.hooks.read().unwrap_or_else(|e| e.into_inner());
        let kind = event.kind();
        let mut delivery = None;
        for running in hooks.iter().filter(|r| r.hook.wants(kind)) {
            // Serialised once, and only when some hook wants it.
            let delivery = delivery.get_or_insert_with(|| {
                Arc::new(Delivery {
                    event: event.clone(),
                    json: body(event, &self.inner.host),
                })
            });
            running.queue.push(delivery.clone());
        }
    }
}

/// The JSON a webhook receives (and a command reads): the event's serde
/// form (`event`, `at`, and its own fields) with `host` and
/// `agent_version`.
pub fn body(event: &Event, host: &str) -> String {
    let mut value = serde_json::to_value(event).expect("events serialise");
    if let Some(object) = value.as_object_mut() {
        object.insert("host".into(), host.into());
        object.insert("agent_version".into(), env!("CARGO_PKG_VERSION").into());
    }
    value.to_string()
}

/// This machine's host name (`gethostname`), or "unknown".
pub fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; the name is cut to fit.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown".to_string();
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    match String::from_utf8_lossy(&buf[..end]).into_owned() {
        name if name.is_empty() => "unknown".to_string(),
        name => name,
    }
}

#[cfg(test)]
mod tests;
