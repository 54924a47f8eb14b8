//! Where the running process is in its life, for whoever reports readiness
//! (an HTTP `/readyz`, the control socket): starting, serving, handing over
//! to a successor, stopping. Only `Serving` is ready: a process handing
//! over or stopping is on its way out, and one starting has not finished
//! its first round of checks.

use tokio::sync::watch;

use super::Progress;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Until the first round of checks is over.
    Starting,
    /// Answers are written: ready.
    Serving,
    /// A successor is taking over; this process writes nothing meanwhile
    /// (back to `Serving` if the handover fails).
    HandingOver,
    /// A signal, or a completed handover: finishing and exiting.
    Stopping,
}

impl Phase {
    pub fn ready(self) -> bool {
        self == Phase::Serving
    }

    pub fn name(self) -> &'static str {
        match self {
            Phase::Starting => "starting",
            Phase::Serving => "serving",
            Phase::HandingOver => "handing over",
            Phase::Stopping => "stopping",
        }
    }
}

/// The process's phase; cheap to clone, every clone sees the same phase.
#[derive(Clone, Debug)]
pub struct Lifecycle(watch::Sender<Phase>);

impl Default for Lifecycle {
    fn default() -> Self {
        Lifecycle(watch::Sender::new(Phase::Starting))
    }
}

impl Lifecycle {
    pub fn phase(&self) -> Phase {
        *self.0.borrow()
    }

    /// Follow the phase (e.g. for `/readyz`).
    pub fn subscribe(&self) -> watch::Receiver<Phase> {
        self.0.subscribe()
    }

    pub fn set(&self, phase: Phase) {
        self.0.send_replace(phase);
    }

    /// Moves from `from` to `to` only if the phase is `from` (a handover
    /// that failed after a signal must not make a stopping process ready).
    pub fn change(&self, from: Phase, to: Phase) -> bool {
        self.0.send_if_modified(|phase| {
            let change = *phase == from;
            if change {
                *phase = to;
            }
            change
        })
    }

    /// `Starting` becomes `Serving` once the agent's first round of checks
    /// is over.
    pub async fn follow(self, mut progress: watch::Receiver<Progress>) {
        if progress.wait_for(|p| p.answering).await.is_ok() {
            self.change(Phase::Starting, Phase::Serving);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_serving_is_ready_and_a_stopping_process_stays_stopping() {
        let lifecycle = Lifecycle::default();
        let mut seen = lifecycle.subscribe();
        assert!(!lifecycle.phase().ready());
        let (progress, rx) = watch::channel(Progress::default());
        let follow = tokio::spawn(lifecycle.clone().follow(rx));
        progress.send_modify(|p| p.answering = true);
        follow.await.unwrap();
        assert_eq!(*seen.borrow_and_update(), Phase::Serving);
        assert!(lifecycle.phase().ready());
        assert!(lifecycle.change(Phase::Serving, Phase::HandingOver));
        assert!(!lifecycle.phase().ready());
        lifecycle.set(Phase::Stopping);
        // A failed handover after the signal: still stopping.
        assert!(!lifecycle.change(Phase::HandingOver, Phase::Serving));
        assert_eq!(lifecycle.phase().name(), "stopping");
    }
}
