//! The run loop: checks every endpoint, tracks its health and writes each
//! record's answer set to an [`AnswerSink`] whenever it changes.
//!
//! One task per (record, endpoint) runs that endpoint's checks on its own
//! interval, so a slow or hanging endpoint never delays another's check. The
//! tasks send results to one loop that owns all state and the sink: no locks,
//! and every write carries a record's whole answer set.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use log::{debug, error, info};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::MissedTickBehavior;

use crate::config::{Check, Config};
use crate::health::{CheckResult, Health, HealthTracker, tcp_check};
use crate::policy::decide;
use crate::sink::{AnswerSink, RTYPE_A};

/// One check result, addressed by indexes into the configuration.
#[derive(Debug)]
struct CheckEvent {
    record: usize,
    endpoint: usize,
    result: CheckResult,
}

struct RecordState {
    trackers: Vec<HealthTracker>,
    /// The answer set the sink holds (last successful write).
    published: Option<Vec<Ipv4Addr>>,
    /// The current decision is the fail-open set (logged once per entry).
    fail_open: bool,
}

/// The agent: configuration, health state and the sink it writes to.
pub struct Agent<S> {
    config: Config,
    sink: S,
    records: Vec<RecordState>,
    /// Endpoints that have not had their first check result yet. No answer
    /// set is written while this is non-zero.
    unknown: usize,
}

impl<S: AnswerSink> Agent<S> {
    pub fn new(config: Config, sink: S) -> Self {
        let records = config
            .records
            .iter()
            .map(|r| RecordState {
                trackers: r
                    .endpoints
                    .iter()
                    .map(|_| HealthTracker::new(r.check.rise, r.check.fall))
                    .collect(),
                published: None,
                fail_open: false,
            })
            .collect();
        let unknown = config.endpoint_count();
        Self {
            config,
            sink,
            records,
            unknown,
        }
    }

    pub fn sink(&self) -> &S {
        &self.sink
    }

    pub fn into_sink(self) -> S {
        self.sink
    }

    /// Health of every endpoint of record `record`, in configuration order.
    pub fn health(&self, record: usize) -> Vec<Health> {
        self.records[record]
            .trackers
            .iter()
            .map(|t| t.state())
            .collect()
    }

    /// Runs health checks until `shutdown` completes. Every `stats_every`
    /// (if given) calls `on_stats` with the sink, e.g. to log kernel counters.
    pub async fn run<F>(
        &mut self,
        shutdown: F,
        stats_every: Option<Duration>,
        mut on_stats: impl FnMut(&S),
    ) -> Result<()>
    where
        F: Future<Output = ()>,
    {
        let endpoints = self.config.endpoint_count();
        info!(
            "checking {endpoints} endpoints of {} records; answer sets are written once every endpoint has been checked",
            self.config.records.len()
        );
        let started = Instant::now();
        let (tx, mut rx) = mpsc::channel(2 * endpoints + 16);
        // Dropping the set (on return) aborts every check task.
        let mut checks = JoinSet::new();
        for (r, record) in self.config.records.iter().enumerate() {
            for (e, endpoint) in record.endpoints.iter().enumerate() {
                let target = SocketAddr::V4(SocketAddrV4::new(endpoint.address, record.check.port));
                checks.spawn(check_loop(r, e, target, record.check, tx.clone()));
            }
        }
        drop(tx);

        let mut stats = stats_every.filter(|d| !d.is_zero()).map(|every| {
            let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
            interval
        });
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => return Ok(()),
                event = rx.recv() => match event {
                    Some(event) => self.handle(event, started),
                    None => bail!("every health check task has stopped"),
                },
                _ = async {
                    match stats.as_mut() {
                        Some(interval) => interval.tick().await,
                        None => std::future::pending().await,
                    }
                } => on_stats(&self.sink),
                Some(joined) = checks.join_next() => {
                    // Check loops never return on their own: this is a panic.
                    if let Err(e) = joined {
                        bail!("a health check task failed: {e}");
                    }
                }
            }
        }
    }

    fn handle(&mut self, event: CheckEvent, started: Instant) {
        let record = &self.config.records[event.record];
        let endpoint = record.endpoints[event.endpoint];
        debug!(
            "{} {} {} check: {}",
            record.name,
            record.rtype,
            endpoint.address,
            match &event.result.outcome {
                Ok(()) => format!("ok, {}", crate::health::Latency(event.result.latency)),
                Err(f) => format!("{f}, {}", crate::health::Latency(event.result.latency)),
            }
        );
        let state = &mut self.records[event.record];
        let Some(transition) = state.trackers[event.endpoint].observe(&event.result) else {
            // No change of health, but retry a write that failed earlier.
            if self.unknown == 0 {
                self.update(event.record);
            }
            return;
        };
        info!(
            "{} {} {} {} -> {} ({})",
            record.name,
            record.rtype,
            endpoint.address,
            transition.old,
            transition.new,
            transition.reason
        );
        if transition.old == Health::Unknown {
            self.unknown -= 1;
            if self.unknown == 0 {
                info!(
                    "first round of health checks complete in {}: writing answer sets",
                    crate::health::Latency(started.elapsed())
                );
                for r in 0..self.records.len() {
                    self.update(r);
                }
            }
            return;
        }
        if self.unknown == 0 {
            self.update(event.record);
        }
    }

    /// Writes record `r`'s answer set if it differs from what the sink holds.
    fn update(&mut self, r: usize) {
        let record = &self.config.records[r];
        let state = &mut self.records[r];
        let health: Vec<Health> = state.trackers.iter().map(|t| t.state()).collect();
        let Some(decision) = decide(record.policy, &record.endpoints, &health) else {
            return;
        };
        if decision.fail_open && !state.fail_open {
            error!(
                "{} {}: no endpoint is healthy; failing open with the best priority level: {}",
                record.name,
                record.rtype,
                list(&decision.addrs)
            );
        } else if !decision.fail_open && state.fail_open {
            info!(
                "{} {}: healthy endpoints again, no longer failing open",
                record.name, record.rtype
            );
        }
        state.fail_open = decision.fail_open;
        if state.published.as_ref() == Some(&decision.addrs) {
            return;
        }
        match self.sink.publish(
            &record.name,
            RTYPE_A,
            0,
            record.ttl,
            &decision
                .addrs
                .iter()
                .map(|a| IpAddr::V4(*a))
                .collect::<Vec<_>>(),
        ) {
            Ok(()) => {
                info!(
                    "{} {} answer set: {} (was {}){}",
                    record.name,
                    record.rtype,
                    list(&decision.addrs),
                    state
                        .published
                        .as_deref()
                        .map_or("nothing".to_string(), list),
                    if decision.fail_open {
                        " [fail open]"
                    } else {
                        ""
                    }
                );
                state.published = Some(decision.addrs);
            }
            Err(e) => error!(
                "{} {}: writing the answer set {} failed: {e:#}; retrying after the next check",
                record.name,
                record.rtype,
                list(&decision.addrs)
            ),
        }
    }
}

fn list(addrs: &[Ipv4Addr]) -> String {
    addrs
        .iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Checks one endpoint every `check.interval` forever (until aborted or the
/// agent loop is gone). `timeout < interval` (validated), so checks of one
/// endpoint never overlap.
async fn check_loop(
    record: usize,
    endpoint: usize,
    target: SocketAddr,
    check: Check,
    tx: mpsc::Sender<CheckEvent>,
) {
    let mut ticker = tokio::time::interval(check.interval);
    // After a stall, check at once and then keep the interval from there
    // rather than firing a burst of catch-up checks.
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let result = tcp_check(target, check.timeout).await;
        if tx
            .send(CheckEvent {
                record,
                endpoint,
                result,
            })
            .await
            .is_err()
        {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::ZoneSoa;
    use std::sync::{Arc, Mutex};

    use tokio::net::{TcpListener, TcpSocket, TcpStream};
    use tokio::sync::oneshot;
    use tokio::task::JoinHandle;

    /// One write the agent made.
    #[derive(Clone, Debug)]
    struct Write {
        at: Instant,
        name: String,
        ttl: u32,
        addrs: Vec<Ipv4Addr>,
    }

    /// Records every write and reports it to the test as it happens.
    struct MemorySink {
        writes: Arc<Mutex<Vec<Write>>>,
        tx: mpsc::UnboundedSender<Write>,
    }

    impl AnswerSink for MemorySink {
        fn set_zone(&mut self, _zone: u32, _soa: &ZoneSoa) -> Result<()> {
            Ok(())
        }

        fn publish(
            &mut self,
            name: &str,
            rtype: u16,
            _zone: u32,
            ttl: u32,
            addrs: &[IpAddr],
        ) -> Result<()> {
            assert_eq!(rtype, RTYPE_A);
            assert!(!addrs.is_empty() && addrs.len() <= 16);
            let write = Write {
                at: Instant::now(),
                name: name.to_string(),
                ttl,
                addrs: addrs
                    .iter()
                    .map(|a| match a {
                        IpAddr::V4(v4) => *v4,
                        IpAddr::V6(_) => panic!("AAAA address in an A answer set"),
                    })
                    .collect(),
            };
            self.writes.lock().unwrap().push(write.clone());
            let _ = self.tx.send(write);
            Ok(())
        }

        fn publish_nodata(&mut self, name: &str, rtype: u16, _zone: u32) -> Result<()> {
            panic!("no NODATA expected in these tests ({name} type {rtype})");
        }

        fn withdraw(&mut self, name: &str, _rtype: u16) -> Result<()> {
            panic!("the agent never withdraws a record ({name})");
        }
    }

    /// A test endpoint: a real listener on `addr:port` that accepts and closes
    /// connections while up; down = no listener (connect is refused).
    struct TestEndpoint {
        addr: SocketAddr,
        server: Option<JoinHandle<()>>,
    }

    impl TestEndpoint {
        fn ip(&self) -> Ipv4Addr {
            match self.addr {
                SocketAddr::V4(a) => *a.ip(),
                SocketAddr::V6(_) => unreachable!(),
            }
        }

        fn serve(listener: TcpListener) -> JoinHandle<()> {
            tokio::spawn(async move {
                loop {
                    if let Ok((stream, _)) = listener.accept().await {
                        drop(stream);
                    }
                }
            })
        }

        async fn up(&mut self) {
            assert!(self.server.is_none());
            let listener = TcpListener::bind(self.addr).await.unwrap();
            self.server = Some(Self::serve(listener));
        }

        async fn down(&mut self) {
            let server = self.server.take().expect("endpoint is up");
            server.abort();
            // Once the task is gone its listener is closed: connects are refused.
            assert!(server.await.unwrap_err().is_cancelled());
        }
    }

    /// `n` endpoints that are up, on 127.0.`net`.1, .2, ... and one shared port
    /// (a check has one port for all endpoints of a record).
    async fn endpoints(net: u8, n: u8) -> (u16, Vec<TestEndpoint>) {
        'retry: for _ in 0..20 {
            let first = TcpListener::bind((Ipv4Addr::new(127, 0, net, 1), 0))
                .await
                .unwrap();
            let port = first.local_addr().unwrap().port();
            let mut listeners = vec![first];
            for host in 2..=n {
                match TcpListener::bind((Ipv4Addr::new(127, 0, net, host), port)).await {
                    Ok(l) => listeners.push(l),
                    Err(_) => continue 'retry,
                }
            }
            let endpoints = listeners
                .into_iter()
                .map(|l| TestEndpoint {
                    addr: l.local_addr().unwrap(),
                    server: Some(TestEndpoint::serve(l)),
                })
                .collect();
            return (port, endpoints);
        }
        panic!("no port free on 127.0.{net}.1..{n}");
    }

    /// A listener on `addr` whose accept queue is full: SYNs to it are
    /// dropped, so a connect hangs until the check's timeout. Keep the
    /// returned value alive.
    async fn hanging(addr: SocketAddr) -> (TcpListener, Vec<TcpStream>) {
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_reuseaddr(true).unwrap();
        socket.bind(addr).unwrap();
        let listener = socket.listen(0).unwrap();
        let mut held = Vec::new();
        for _ in 0..16 {
            match tokio::time::timeout(Duration::from_millis(200), TcpStream::connect(addr)).await {
                Ok(Ok(stream)) => held.push(stream),
                Ok(Err(e)) => panic!("connect to the filling listener failed: {e}"),
                Err(_) => return (listener, held),
            }
        }
        panic!("the accept queue of {addr} never filled");
    }

    fn config(text: &str) -> Config {
        Config::parse(text, "test").unwrap()
    }

    /// A zone "t." with one check `c` on `port`; records are appended.
    fn base(port: u16, interval_ms: u64, timeout_ms: u64, rise: u32, fall: u32) -> String {
        format!(
            "[[zone]]\norigin = \"t.\"\nttl = 7\n\
             [checks.c]\nkind = \"tcp\"\nport = {port}\ninterval = \"{interval_ms}ms\"\n\
             timeout = \"{timeout_ms}ms\"\nrise = {rise}\nfall = {fall}\n"
        )
    }

    fn record(name: &str, policy: &str, endpoints: &[(Ipv4Addr, u32)]) -> String {
        let list: Vec<String> = endpoints
            .iter()
            .map(|(a, p)| format!("{{ address = \"{a}\", priority = {p} }}"))
            .collect();
        format!(
            "[[record]]\nname = \"{name}\"\ntype = \"A\"\npolicy = \"{policy}\"\ncheck = \"c\"\nendpoints = [{}]\n",
            list.join(", ")
        )
    }

    struct Running {
        writes: mpsc::UnboundedReceiver<Write>,
        log: Arc<Mutex<Vec<Write>>>,
        stop: Option<oneshot::Sender<()>>,
        task: JoinHandle<Result<MemorySink>>,
        started: Instant,
    }

    impl Running {
        fn start(config: Config) -> Running {
            let (tx, writes) = mpsc::unbounded_channel();
            let log = Arc::new(Mutex::new(Vec::new()));
            let sink = MemorySink {
                writes: log.clone(),
                tx,
            };
            let (stop, stopped) = oneshot::channel::<()>();
            let started = Instant::now();
            let task = tokio::spawn(async move {
                let mut agent = Agent::new(config, sink);
                agent
                    .run(
                        async {
                            let _ = stopped.await;
                        },
                        None,
                        |_| {},
                    )
                    .await?;
                Ok(agent.into_sink())
            });
            Running {
                writes,
                log,
                stop: Some(stop),
                task,
                started,
            }
        }

        async fn next(&mut self, within: Duration) -> Write {
            tokio::time::timeout(within, self.writes.recv())
                .await
                .unwrap_or_else(|_| panic!("no write within {within:?}"))
                .expect("agent running")
        }

        /// Skips writes until `name` is written with `addrs`.
        async fn until(&mut self, name: &str, addrs: &[Ipv4Addr], within: Duration) -> Write {
            let deadline = tokio::time::Instant::now() + within;
            loop {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                let w = self.next(left).await;
                if w.name == name && w.addrs == addrs {
                    return w;
                }
            }
        }

        async fn stop(mut self) -> Vec<Write> {
            self.stop.take().unwrap().send(()).unwrap();
            self.task.await.unwrap().unwrap();
            self.log.lock().unwrap().clone()
        }
    }

    const SLACK: Duration = Duration::from_millis(250);

    #[tokio::test]
    async fn first_round_completes_before_the_first_write() {
        let (port, up) = endpoints(1, 1).await;
        let slow = SocketAddr::from((Ipv4Addr::new(127, 0, 1, 2), port));
        let _hang = hanging(slow).await;
        let down = Ipv4Addr::new(127, 0, 1, 3);
        let timeout_ms = 200;
        let mut text = base(port, 400, timeout_ms, 2, 3);
        text += &record(
            "www.t.",
            "failover",
            &[(up[0].ip(), 1), (Ipv4Addr::new(127, 0, 1, 2), 1)],
        );
        text += &record("dead.t.", "failover", &[(down, 1)]);
        let mut running = Running::start(config(&text));
        let first = running.next(Duration::from_secs(2)).await;
        // The hanging endpoint decides the first round: nothing is written
        // before its check times out, although the others answered at once.
        assert!(
            first.at - running.started >= Duration::from_millis(timeout_ms),
            "first write after {:?}",
            first.at - running.started
        );
        let second = running.next(Duration::from_millis(100)).await;
        let mut firsts = [first, second];
        firsts.sort_by(|a, b| a.name.cmp(&b.name));
        assert_eq!(firsts[0].name, "dead.t.");
        assert_eq!(firsts[0].addrs, [down], "all down: fail open");
        assert_eq!(firsts[1].name, "www.t.");
        assert_eq!(firsts[1].addrs, [up[0].ip()], "the hanging endpoint is out");
        assert_eq!(firsts[1].ttl, 7, "zone TTL");
        let writes = running.stop().await;
        assert_eq!(writes.len(), 2, "{writes:?}");
    }

    #[tokio::test]
    async fn failover_to_the_backup_within_fall_intervals_and_back_after_rise() {
        let (port, mut eps) = endpoints(2, 2).await;
        // A hanging last-resort endpoint: its timeouts must not slow the others.
        let _hang = hanging(SocketAddr::from((Ipv4Addr::new(127, 0, 2, 3), port))).await;
        let interval = Duration::from_millis(100);
        let (rise, fall) = (2u32, 3u32);
        let mut text = base(port, 100, 60, rise, fall);
        let (primary, backup) = (eps[0].ip(), eps[1].ip());
        text += &record(
            "www.t.",
            "failover",
            &[(primary, 1), (backup, 2), (Ipv4Addr::new(127, 0, 2, 3), 3)],
        );
        let mut running = Running::start(config(&text));
        let first = running.next(Duration::from_secs(1)).await;
        assert_eq!(first.addrs, [primary]);

        let down_at = Instant::now();
        eps[0].down().await;
        let w = running.next(fall * interval + SLACK).await;
        assert_eq!(w.addrs, [backup]);
        let took = w.at - down_at;
        // `fall` consecutive failures, the first no earlier than the next check.
        assert!(
            took >= (fall - 1) * interval - Duration::from_millis(10),
            "{took:?}"
        );
        assert!(took <= fall * interval + SLACK, "{took:?}");

        let up_at = Instant::now();
        eps[0].up().await;
        let w = running.next(rise * interval + SLACK).await;
        assert_eq!(w.addrs, [primary]);
        let took = w.at - up_at;
        assert!(
            took >= (rise - 1) * interval - Duration::from_millis(10),
            "{took:?}"
        );
        assert!(took <= rise * interval + SLACK, "{took:?}");

        let writes = running.stop().await;
        assert_eq!(writes.len(), 3, "one write per change: {writes:?}");
    }

    #[tokio::test]
    async fn all_down_fails_open_to_the_best_level_then_recovers() {
        let (port, mut eps) = endpoints(3, 3).await;
        let (a, b, c) = (eps[0].ip(), eps[1].ip(), eps[2].ip());
        let mut text = base(port, 50, 30, 2, 2);
        text += &record("www.t.", "failover", &[(a, 1), (b, 1), (c, 2)]);
        let mut running = Running::start(config(&text));
        assert_eq!(running.next(Duration::from_secs(1)).await.addrs, [a, b]);

        for ep in &mut eps {
            ep.down().await;
        }
        // Whatever intermediate sets appear while they fall one by one, the
        // end is the whole best level, not every endpoint.
        running
            .until("www.t.", &[a, b], Duration::from_secs(1))
            .await;
        // And it stays there: no flapping while everything is down.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(running.writes.try_recv().is_err());

        eps[2].up().await;
        assert_eq!(running.next(Duration::from_secs(1)).await.addrs, [c]);
        eps[1].up().await;
        assert_eq!(running.next(Duration::from_secs(1)).await.addrs, [b]);
        running.stop().await;
    }

    #[tokio::test]
    async fn all_healthy_policy_answers_with_every_healthy_endpoint() {
        let (port, mut eps) = endpoints(4, 3).await;
        let (a, b, c) = (eps[0].ip(), eps[1].ip(), eps[2].ip());
        let mut text = base(port, 50, 30, 1, 1);
        text += &record("pool.t.", "all-healthy", &[(a, 1), (b, 2), (c, 3)]);
        let mut running = Running::start(config(&text));
        assert_eq!(running.next(Duration::from_secs(1)).await.addrs, [a, b, c]);
        eps[1].down().await;
        assert_eq!(running.next(Duration::from_secs(1)).await.addrs, [a, c]);
        eps[0].down().await;
        assert_eq!(running.next(Duration::from_secs(1)).await.addrs, [c]);
        eps[2].down().await;
        // Fail open: the best priority level, i.e. a alone.
        assert_eq!(running.next(Duration::from_secs(1)).await.addrs, [a]);
        eps[1].up().await;
        assert_eq!(running.next(Duration::from_secs(1)).await.addrs, [b]);
        running.stop().await;
    }
}
