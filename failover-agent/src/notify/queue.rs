//! One hook's queue of events: bounded, the oldest dropped when full (and
//! counted), pushed to from the agent's loop without ever waiting, taken
//! from by the hook's delivery task in order.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use log::warn;
use tokio::sync::Notify;

use super::Delivery;

/// What a hook did, for the log and for metrics. Every count only grows.
#[derive(Debug, Default)]
pub struct HookCounters {
    /// Events put in the queue.
    pub queued: AtomicU64,
    /// Delivered: a 2xx response, or the command exited 0.
    pub delivered: AtomicU64,
    /// Given up on: retries exhausted, the command failed or timed out.
    pub failed: AtomicU64,
    /// Attempts after a first failed one (webhook).
    pub retried: AtomicU64,
    /// Dropped unsent: the queue was full (the oldest goes), or the hook
    /// was removed by a reload with events still queued.
    pub dropped: AtomicU64,
}

/// A point-in-time copy of [`HookCounters`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CountersSnapshot {
    pub queued: u64,
    pub delivered: u64,
    pub failed: u64,
    pub retried: u64,
    pub dropped: u64,
}

impl HookCounters {
    pub fn snapshot(&self) -> CountersSnapshot {
        CountersSnapshot {
            queued: self.queued.load(Ordering::Relaxed),
            delivered: self.delivered.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            retried: self.retried.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
        }
    }
}

pub(super) struct Queue {
    label: String,
    capacity: usize,
    state: Mutex<State>,
    wake: Notify,
    counters: Arc<HookCounters>,
}

struct State {
    items: VecDeque<Arc<Delivery>>,
    /// No more events: the task delivers what it holds and ends.
    closed: bool,
    /// Dropped since the queue was last empty: one log line when a burst
    /// starts dropping, one when it is over.
    burst_dropped: u64,
}

impl Queue {
    pub(super) fn new(label: String, capacity: usize, counters: Arc<HookCounters>) -> Self {
        Queue {
            label,
            capacity: capacity.max(1),
            state: Mutex::new(State {
                items: VecDeque::new(),
                closed: false,
                burst_dropped: 0,
            }),
            wake: Notify::new(),
            counters,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds `item` at the back, dropping the oldest when full. Never waits
    /// (but for the queue's lock, held for a push or a pop).
    pub(super) fn push(&self, item: Arc<Delivery>) {
        let mut state = self.state();
        if state.closed {
            return;
        }
        let mut burst_starts = false;
        if state.items.len() >= self.capacity {
            state.items.pop_front();
            state.burst_dropped += 1;
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            burst_starts = state.burst_dropped == 1;
        }
        state.items.push_back(item);
        self.counters.queued.fetch_add(1, Ordering::Relaxed);
        drop(state);
        self.wake.notify_one();
        // Logged outside the lock: the delivery task never waits on a write.
        if burst_starts {
            warn!(
                "notify {}: queue full ({} events): dropping the oldest until it drains",
                self.label, self.capacity
            );
        }
    }

    /// The oldest event, waiting for one; None once closed (what was
    /// queued then is dropped: only deliveries in flight finish).
    pub(super) async fn pop(&self) -> Option<Arc<Delivery>> {
        loop {
            let (item, burst) = {
                let mut state = self.state();
                if state.closed {
                    return None;
                }
                let item = state.items.pop_front();
                // The burst is over once the queue has drained.
                let burst = if item.is_some() && state.items.is_empty() {
                    std::mem::take(&mut state.burst_dropped)
                } else {
                    0
                };
                (item, burst)
            };
            if burst > 0 {
                warn!(
                    "notify {}: {burst} events were dropped while the queue was full",
                    self.label
                );
            }
            if let Some(item) = item {
                return Some(item);
            }
            // notify_one keeps a permit when nobody waits: a push between
            // the check above and this wait is not missed.
            self.wake.notified().await;
        }
    }

    /// No more events; the ones waiting are dropped (and counted).
    pub(super) fn close(&self) {
        let mut state = self.state();
        state.closed = true;
        let left = state.items.len() as u64;
        state.items.clear();
        drop(state);
        if left > 0 {
            self.counters.dropped.fetch_add(left, Ordering::Relaxed);
            warn!(
                "notify {}: removed by a reload with {left} events not delivered: dropped",
                self.label
            );
        }
        self.wake.notify_one();
    }

    /// Closed by a reload: a delivery in flight makes no further attempt.
    pub(super) fn is_closed(&self) -> bool {
        self.state().closed
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.state().items.len()
    }
}
