//! Handing the data plane over to the agent that takes over from this one:
//! the loop stops writing (kernel maps and userspace table alike) and tells
//! what it holds; if the handover fails, it writes again, first what it
//! decided meanwhile. The sockets and the lock are the daemon's business
//! ([`crate::daemon::takeover`]).

use log::info;
use tokio::sync::{mpsc, oneshot};

use super::Agent;
use crate::publish::Publisher;
use crate::serve::table::Entry;

/// A step of a handover, sent to the agent's loop.
#[derive(Debug)]
pub enum HandoverStep {
    /// Stop writing; reply with every (name, type) held and its entry.
    Pause(oneshot::Sender<Vec<(String, u16, Entry)>>),
    /// The successor did not take over: write again.
    Resume,
}

impl<P: Publisher> Agent<P> {
    /// A channel for handover steps, served inside `run`'s loop.
    pub fn handover_channel(&mut self) -> mpsc::Sender<HandoverStep> {
        let (tx, rx) = mpsc::channel(4);
        self.handover = Some(rx);
        tx
    }

    pub(super) fn handover_step(&mut self, step: HandoverStep) {
        match step {
            HandoverStep::Pause(reply) => {
                self.publication.pause();
                info!(
                    "handing over: this agent writes nothing to the maps until the successor confirms or fails"
                );
                let _ = reply.send(self.publication.held_entries());
            }
            HandoverStep::Resume => {
                if self.publication.paused() {
                    self.publication.resume();
                    self.heartbeat();
                    info!("the handover did not complete: this agent writes the maps again");
                }
            }
        }
    }
}
