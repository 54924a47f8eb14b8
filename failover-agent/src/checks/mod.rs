//! The check kinds and the probes that run them.
//!
//! A probe is one check definition aimed at one target (address, port). The
//! agent asks for the probes its records need ([`Probes::sync`]); identical
//! (check, target) pairs are one probe however many records use them, and
//! its results fan out to every (record, endpoint) that uses it. Each probe
//! is its own task with its own rise/fall state, so a slow or hanging target
//! never delays another's checks; a probe that is still wanted after a
//! reload keeps running, with its state.

pub mod dns;
pub mod exec;
pub mod file;
pub mod health;
pub mod http;
pub mod icmp;
pub mod result;
pub mod settings;
pub mod target;
pub mod tcp;

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hasher};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use log::debug;
use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinSet};
use tokio::time::Instant;

use health::{Health, HealthTracker, ProbeStatus, Transition};
use result::{CheckResult, Failure};
use settings::{Check, CheckKind, CheckTarget};

/// What identifies a probe: equal keys share one.
pub type ProbeKey = (Check, CheckTarget);

/// A probe's id; never reused, so a result of a stopped probe is recognised.
pub type ProbeId = u64;

/// One check result of one probe, with the health change it caused.
#[derive(Debug)]
pub struct ProbeEvent {
    pub probe: ProbeId,
    pub result: CheckResult,
    pub transition: Option<Transition>,
    /// The probe's health after this result.
    pub health: Health,
}

/// First checks of the probes started together are spread over this much
/// time per probe (capped at one interval): 10,000 probes start over 1 s, a
/// handful at once.
const START_SPREAD_PER_PROBE: Duration = Duration::from_micros(100);

/// A small, fast random source for jitter, ids and payloads (not for
/// anything secret).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new() -> Rng {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u128(
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        Rng(hasher.finish() | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in [0, `max`).
    pub fn below(&mut self, max: Duration) -> Duration {
        if max.is_zero() {
            return Duration::ZERO;
        }
        Duration::from_nanos(self.next_u64() % (max.as_nanos() as u64).max(1))
    }

    /// `interval ± jitter`, uniform.
    pub fn jittered(&mut self, interval: Duration, jitter: Duration) -> Duration {
        if jitter.is_zero() {
            return interval;
        }
        (interval - jitter) + self.below(2 * jitter)
    }
}

impl Default for Rng {
    fn default() -> Self {
        Rng::new()
    }
}

/// What a check needs prepared once (the TLS configuration), or why it
/// cannot run at all (every check then fails with that reason).
#[derive(Clone)]
pub enum Prepared {
    Nothing,
    Tls(http::Tls),
    Broken(String),
}

impl Prepared {
    pub fn new(check: &Check) -> Prepared {
        match &check.kind {
            CheckKind::Http(http) => match &http.tls {
                Some(tls) => match http::Tls::new(tls) {
                    Ok(tls) => Prepared::Tls(tls),
                    Err(e) => Prepared::Broken(e),
                },
                None => Prepared::Nothing,
            },
            _ => Prepared::Nothing,
        }
    }
}

/// Runs one check of `check` against `target`, bounded by its timeout.
pub async fn run_once(
    check: &Check,
    target: CheckTarget,
    prepared: &Prepared,
    rng: &mut Rng,
    seq: u16,
) -> CheckResult {
    let start = std::time::Instant::now();
    let outcome = match (&check.kind, prepared) {
        (_, Prepared::Broken(reason)) => Err(Failure::Failed(reason.clone())),
        // Exec enforces the timeout itself: it must kill the process group.
        (CheckKind::Exec(exec), _) => exec::check(exec, target, check.timeout).await,
        (kind, prepared) => {
            let socket = |port: Option<u16>| SocketAddr::new(target.address, port.unwrap_or(0));
            let id = rng.next_u64();
            let probe = async {
                match kind {
                    CheckKind::Tcp => tcp::check(socket(target.port)).await,
                    CheckKind::Http(http) => {
                        let tls = match prepared {
                            Prepared::Tls(tls) => Some(tls),
                            _ => None,
                        };
                        http::check(http, target, tls).await
                    }
                    CheckKind::Dns(dns) => dns::check(dns, socket(target.port), id as u16).await,
                    CheckKind::Icmp => {
                        icmp::check(target.address, (id >> 16) as u16, seq, rng_token(id)).await
                    }
                    CheckKind::Exec(_) => unreachable!("handled above"),
                }
            };
            match tokio::time::timeout(check.timeout, probe).await {
                Ok(outcome) => outcome,
                Err(_) => Err(Failure::Timeout(check.timeout)),
            }
        }
    };
    CheckResult::new(outcome, start.elapsed())
}

fn rng_token(id: u64) -> u64 {
    id.rotate_left(32) ^ 0x6661_696c_6f76_6572
}

struct Running {
    key: ProbeKey,
    status: Arc<Mutex<ProbeStatus>>,
    task: AbortHandle,
}

/// The running probes.
pub struct Probes {
    tx: mpsc::Sender<ProbeEvent>,
    by_key: HashMap<ProbeKey, ProbeId>,
    running: HashMap<ProbeId, Running>,
    next_id: ProbeId,
    rng: Rng,
    tasks: JoinSet<()>,
}

/// What [`Probes::sync`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyncReport {
    pub started: usize,
    pub stopped: usize,
    pub kept: usize,
}

impl Probes {
    /// Probes that send their results to `tx`.
    pub fn new(tx: mpsc::Sender<ProbeEvent>) -> Probes {
        Probes {
            tx,
            by_key: HashMap::new(),
            running: HashMap::new(),
            next_id: 1,
            rng: Rng::new(),
            tasks: JoinSet::new(),
        }
    }

    /// Makes the running probes exactly `wanted`: starts the missing ones
    /// (their first checks spread over a short window), stops the ones no
    /// longer wanted, keeps the others running with their state. Must be
    /// called inside a tokio runtime.
    pub fn sync(&mut self, wanted: &HashSet<ProbeKey>) -> SyncReport {
        let mut report = SyncReport::default();
        let stale: Vec<ProbeId> = self
            .running
            .iter()
            .filter(|(_, r)| !wanted.contains(&r.key))
            .map(|(id, _)| *id)
            .collect();
        for id in stale {
            let running = self.running.remove(&id).expect("listed");
            running.task.abort();
            self.by_key.remove(&running.key);
            debug!(
                "probe {id} stopped: {} {}",
                running.key.0.kind.name(),
                running.key.1
            );
            report.stopped += 1;
        }
        let new: Vec<&ProbeKey> = wanted
            .iter()
            .filter(|k| !self.by_key.contains_key(*k))
            .collect();
        report.kept = self.running.len();
        let spread_per = START_SPREAD_PER_PROBE * new.len().min(u32::MAX as usize) as u32;
        for key in new {
            let id = self.next_id;
            self.next_id += 1;
            let window = key.0.interval.min(spread_per);
            let delay = self.rng.below(window);
            let status = Arc::new(Mutex::new(ProbeStatus::default()));
            let task = self.tasks.spawn(probe_loop(
                id,
                key.0.clone(),
                key.1,
                delay,
                status.clone(),
                self.tx.clone(),
                Rng(self.rng.next_u64() | 1),
            ));
            self.by_key.insert(key.clone(), id);
            self.running.insert(
                id,
                Running {
                    key: key.clone(),
                    status,
                    task,
                },
            );
            report.started += 1;
        }
        report
    }

    /// The probe running `key`, if any.
    pub fn id(&self, key: &ProbeKey) -> Option<ProbeId> {
        self.by_key.get(key).copied()
    }

    /// Whether `id` is a running probe (results of stopped ones are stale).
    pub fn is_running(&self, id: ProbeId) -> bool {
        self.running.contains_key(&id)
    }

    /// The probe's current state (default for an unknown id).
    pub fn status(&self, id: ProbeId) -> ProbeStatus {
        self.running
            .get(&id)
            .map(|r| r.status.lock().expect("not poisoned").clone())
            .unwrap_or_default()
    }

    /// A handle for reading probe states from elsewhere (e.g. a control
    /// socket) without going through the agent's loop.
    pub fn status_handle(&self, id: ProbeId) -> Option<Arc<Mutex<ProbeStatus>>> {
        self.running.get(&id).map(|r| r.status.clone())
    }

    pub fn len(&self) -> usize {
        self.running.len()
    }

    pub fn is_empty(&self) -> bool {
        self.running.is_empty()
    }
}

impl Probes {
    /// Completes when a probe task panicked, with the panic; probes stopped
    /// by [`Probes::sync`] are not failures. Pending while there are none.
    pub async fn failed(&mut self) -> String {
        loop {
            match self.tasks.join_next().await {
                None => std::future::pending::<()>().await,
                Some(Ok(())) => {}
                Some(Err(e)) if e.is_cancelled() => {}
                Some(Err(e)) => return e.to_string(),
            }
        }
    }
}

/// One probe: checks `target` every `check.interval` (± jitter) until
/// aborted or the agent is gone. Checks never overlap (`timeout <
/// interval`); after a stall the next check starts at once rather than in a
/// burst of catch-up checks.
async fn probe_loop(
    id: ProbeId,
    check: Check,
    target: CheckTarget,
    start_delay: Duration,
    status: Arc<Mutex<ProbeStatus>>,
    tx: mpsc::Sender<ProbeEvent>,
    mut rng: Rng,
) {
    let prepared = Prepared::new(&check);
    let mut tracker = HealthTracker::new(check.rise, check.fall, check.damping);
    let mut next = Instant::now() + start_delay;
    let mut seq: u16 = 0;
    loop {
        tokio::time::sleep_until(next).await;
        let started = Instant::now();
        seq = seq.wrapping_add(1);
        let result = run_once(&check, target, &prepared, &mut rng, seq).await;
        let transition = tracker.observe(&result);
        let health = tracker.state();
        {
            let mut status = status.lock().expect("not poisoned");
            status.record(&result, health, transition.is_some());
            status.damped = tracker.is_damped();
        }
        let event = ProbeEvent {
            probe: id,
            result,
            transition,
            health,
        };
        if tx.send(event).await.is_err() {
            return;
        }
        next = (started + rng.jittered(check.interval, check.jitter)).max(Instant::now());
    }
}

/// Raises the soft open-file limit to the hard one: every check in flight
/// holds a socket (or a pipe), and 10,000 endpoints overrun the usual soft
/// limit of 1024. Returns the limit in force.
pub fn raise_fd_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit write/read the struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 0;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                return raised.rlim_cur;
            }
        }
    }
    limit.rlim_cur
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_bounds_and_spreads() {
        let mut rng = Rng::new();
        let interval = Duration::from_millis(1000);
        let jitter = Duration::from_millis(100);
        let draws: Vec<Duration> = (0..2000).map(|_| rng.jittered(interval, jitter)).collect();
        assert!(
            draws
                .iter()
                .all(|d| *d >= interval - jitter && *d < interval + jitter)
        );
        let low = draws.iter().filter(|d| **d < interval).count();
        assert!(
            (800..1200).contains(&low),
            "{low} of 2000 below the interval"
        );
        assert_eq!(rng.jittered(interval, Duration::ZERO), interval);
        assert_eq!(rng.below(Duration::ZERO), Duration::ZERO);
    }
}
