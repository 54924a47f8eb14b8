//! Several nameservers, one view of health: agreement through etcd.
//!
//! Each agent ("node") holds an etcd lease of `lease_ttl` and keeps it alive.
//! Under the prefix, on that lease, it writes `nodes/NODE` (it is live) and
//! `health/NODE/CHECK/TARGET` = `healthy` | `unhealthy`, its own observation
//! of each (check, target) it probes, only when that changes. It watches the
//! whole prefix from the revision it read, so every node holds the same keys
//! in the same order, and decides each endpoint's health by the quorum of
//! the live nodes' observations ([`view::View::tally`]): no wall clock takes
//! part, and a node killed with -9 loses its votes when its lease expires.
//! Operator overrides live under `overrides/RECORD/ENDPOINT` (no lease), so
//! a drain on one node applies on all.
//!
//! - [`view`]: pure: the keys, the votes, the quorum, rendezvous hashing;
//! - [`session`]: the etcd client task: lease, writes, watch, and falling
//!   back to this node's own checks when etcd is out of reach.

pub mod session;
pub mod view;

use std::net::IpAddr;
use std::time::SystemTime;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::AbortHandle;

use crate::admin_state::Mode;
use crate::checks::health::Health;
use crate::config::Cluster;
pub use view::{Standing, StoredOverride, Tally, View};

/// How an override's refusal begins when etcd cannot be reached (rather
/// than refusing it): the control socket offers `--local` then.
pub const ETCD_UNREACHABLE: &str = "etcd is unreachable";

/// What the agent asks of the cluster task.
#[derive(Debug)]
pub enum Request {
    /// This node's observation of `key` (`CHECK/TARGET`) is `health`.
    Observe { key: String, health: Health },
    /// This node no longer observes `key`.
    Withdraw { key: String },
    /// This node's configuration digest changed (a reload).
    Digest { digest: String },
    /// Sets (`Some`) or clears (`None`) an override for every node; the
    /// reply says whether etcd took it.
    Override {
        record: String,
        endpoint: IpAddr,
        mode: Option<(Mode, Option<SystemTime>)>,
        reply: oneshot::Sender<Result<(), String>>,
    },
}

/// This agent as a member of the cluster: the task that talks to etcd, and
/// the view it keeps current. Dropping it stops the task.
pub struct Member {
    requests: mpsc::UnboundedSender<Request>,
    view: watch::Receiver<View>,
    task: AbortHandle,
    settings: Cluster,
}

impl Member {
    /// Starts the cluster task on the current tokio runtime; `digest` is
    /// this node's configuration digest, published for the others.
    pub fn start(settings: Cluster, digest: String) -> Member {
        let (requests, rx) = mpsc::unbounded_channel();
        let (view_tx, view) = watch::channel(View::new(
            settings.node.clone(),
            settings.quorum,
            settings.checkers,
        ));
        let task = tokio::spawn(session::run(settings.clone(), digest, rx, view_tx)).abort_handle();
        Member {
            requests,
            view,
            task,
            settings,
        }
    }

    pub fn settings(&self) -> &Cluster {
        &self.settings
    }

    pub fn send(&self, request: Request) {
        // Only fails once the task is gone, i.e. the agent is stopping.
        let _ = self.requests.send(request);
    }

    /// The view now (marks it seen).
    pub fn view(&mut self) -> View {
        self.view.borrow_and_update().clone()
    }

    /// Completes when the view changed since it was last seen.
    pub async fn changed(&mut self) {
        if self.view.changed().await.is_err() {
            // The task ended (it does not, short of a panic): nothing more
            // will change.
            std::future::pending::<()>().await;
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.task.abort();
    }
}
