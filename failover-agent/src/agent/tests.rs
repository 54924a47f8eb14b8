use super::*;
use crate::dns::rr::{RTYPE_A, RTYPE_AAAA, RTYPE_HTTPS};
use crate::policy::Answer;
use crate::publish::publish_all_healthy;
use crate::serve::zones::ZoneTree;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// One answer set the agent wrote.
#[derive(Clone, Debug)]
struct Write {
    at: Instant,
    name: String,
    rtype: u16,
    zone: u32,
    ttl: u32,
    addrs: Vec<IpAddr>,
}

/// Every call the agent made, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Call {
    Zone(u32, String),
    Publish(String, u16),
    Weighted(String, u16, Vec<(IpAddr, u32)>),
    NoData(String, u16, u32),
    ServFail(String, u16),
}

/// Records every write and reports answer sets to the test as they
/// happen. While `broken` is set, it fails what the kernel cannot do yet
/// (AAAA answer sets and NODATA), like the A-only dataplane.
struct MemorySink {
    writes: Arc<Mutex<Vec<Write>>>,
    calls: Arc<Mutex<Vec<Call>>>,
    broken: Arc<Mutex<bool>>,
    tx: mpsc::UnboundedSender<Write>,
}

impl MemorySink {
    /// Reports a write to the test as it happens.
    fn wrote(&mut self, name: &str, rtype: u16, entry: &Entry, addrs: Vec<IpAddr>) {
        let write = Write {
            at: Instant::now(),
            name: name.to_string(),
            rtype,
            zone: entry.zone,
            ttl: entry.ttl,
            addrs,
        };
        self.writes.lock().unwrap().push(write.clone());
        let _ = self.tx.send(write);
    }
}

impl Publisher for MemorySink {
    fn set_zones(&mut self, zones: &Arc<ZoneTree>) -> Result<()> {
        let mut calls = self.calls.lock().unwrap();
        for (zone, soa) in zones.soas() {
            calls.push(Call::Zone(zone, soa.apex.clone()));
        }
        Ok(())
    }

    fn put(&mut self, name: &str, rtype: u16, entry: &Entry) -> Result<()> {
        entry.check(name, rtype).unwrap();
        let broken = *self.broken.lock().unwrap();
        match &entry.answer {
            Answer::Addrs(addrs) | Answer::Rotating { addrs, .. } => {
                if rtype == RTYPE_AAAA && broken {
                    bail!("AAAA not supported (test)");
                }
                self.calls
                    .lock()
                    .unwrap()
                    .push(Call::Publish(name.to_string(), rtype));
                self.wrote(name, rtype, entry, addrs.clone());
            }
            Answer::Weighted(weighted) => {
                self.calls.lock().unwrap().push(Call::Weighted(
                    name.to_string(),
                    rtype,
                    weighted.clone(),
                ));
                self.wrote(
                    name,
                    rtype,
                    entry,
                    weighted.iter().map(|(a, _)| *a).collect(),
                );
            }
            Answer::NoData => {
                if broken {
                    bail!("NODATA not supported (test)");
                }
                self.calls
                    .lock()
                    .unwrap()
                    .push(Call::NoData(name.to_string(), rtype, entry.zone));
            }
            Answer::ServFail => {
                self.calls
                    .lock()
                    .unwrap()
                    .push(Call::ServFail(name.to_string(), rtype));
                // Reported to the test as a write with no addresses.
                self.wrote(name, rtype, entry, Vec::new());
            }
        }
        Ok(())
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
    fn ip(&self) -> IpAddr {
        self.addr.ip()
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

fn record(name: &str, policy: &str, endpoints: &[(IpAddr, u32)]) -> String {
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
    calls: Arc<Mutex<Vec<Call>>>,
    broken: Arc<Mutex<bool>>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<MemorySink>>,
    started: Instant,
    /// Every event the agent emitted, in order.
    events: Arc<Mutex<Vec<Event>>>,
}

impl Running {
    fn start(config: Config) -> Running {
        Running::start_with(config, false)
    }

    fn start_with(config: Config, broken: bool) -> Running {
        let (tx, writes) = mpsc::unbounded_channel();
        let log = Arc::new(Mutex::new(Vec::new()));
        let calls = Arc::new(Mutex::new(Vec::new()));
        let broken = Arc::new(Mutex::new(broken));
        let sink = MemorySink {
            writes: log.clone(),
            calls: calls.clone(),
            broken: broken.clone(),
            tx,
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let started = Instant::now();
        let events = Arc::new(Mutex::new(Vec::new()));
        let seen = events.clone();
        let task = tokio::spawn(async move {
            let mut agent = Agent::new(config, sink);
            agent
                .events()
                .observe(move |e: &Event| seen.lock().unwrap().push(e.clone()));
            agent
                .run(
                    async {
                        let _ = stopped.await;
                    },
                    None,
                    |_| {},
                )
                .await?;
            Ok(agent.into_publisher())
        });
        Running {
            writes,
            log,
            calls,
            broken,
            stop: Some(stop),
            task,
            started,
            events,
        }
    }

    async fn next(&mut self, within: Duration) -> Write {
        tokio::time::timeout(within, self.writes.recv())
            .await
            .unwrap_or_else(|_| panic!("no write within {within:?}"))
            .expect("agent running")
    }

    /// Skips writes until `name` is written with `addrs`.
    async fn until(&mut self, name: &str, addrs: &[IpAddr], within: Duration) -> Write {
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
    let down = IpAddr::from([127, 0, 1, 3]);
    let timeout_ms = 200;
    let mut text = base(port, 400, timeout_ms, 2, 3);
    text += &record(
        "www.t.",
        "failover",
        &[(up[0].ip(), 1), (IpAddr::from([127, 0, 1, 2]), 1)],
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
        &[(primary, 1), (backup, 2), (IpAddr::from([127, 0, 2, 3]), 3)],
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

    let events = running.events.clone();
    let writes = running.stop().await;
    assert_eq!(writes.len(), 3, "one write per change: {writes:?}");

    // One event per endpoint transition and per answer change, in order.
    let seen: Vec<String> = events
        .lock()
        .unwrap()
        .iter()
        .map(|e| match e {
            Event::Transition(t) => format!("{} {} -> {}", t.endpoint, t.from, t.to),
            Event::AnswerChange(a) => format!("answer {} (was {:?})", a.answer, a.previous),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    let mut first_round = seen[..3].to_vec();
    first_round.sort();
    assert_eq!(
        first_round,
        [
            "127.0.2.1 unknown -> healthy".to_string(),
            "127.0.2.2 unknown -> healthy".to_string(),
            "127.0.2.3 unknown -> unhealthy".to_string(),
        ]
    );
    assert_eq!(
        seen[3..],
        [
            format!("answer {primary} (was None)"),
            format!("{primary} healthy -> unhealthy"),
            format!("answer {backup} (was Some(\"{primary}\"))"),
            format!("{primary} unhealthy -> healthy"),
            format!("answer {primary} (was Some(\"{backup}\"))"),
        ]
    );
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

/// A zone with an A and an AAAA record at one name, an A-only name in a
/// second zone; the AAAA endpoint is checked over IPv6 on ::1.
async fn dual_stack() -> (Config, TcpListener, Vec<TestEndpoint>) {
    // The AAAA endpoint needs the same port on ::1 (one check port).
    let mut found = None;
    for _ in 0..20 {
        let (port, up) = endpoints(5, 1).await;
        if let Ok(v6) = TcpListener::bind((std::net::Ipv6Addr::LOCALHOST, port)).await {
            found = Some((port, up, v6));
            break;
        }
    }
    let (port, up, v6) = found.expect("a port free on 127.0.5.1 and ::1");
    let text = format!(
        "{}[[zone]]\norigin = \"u.\"\n{}{}{}",
        base(port, 50, 30, 1, 1),
        record("www.t.", "failover", &[(up[0].ip(), 1)]),
        record(
            "www.t.",
            "failover",
            &[(IpAddr::from(std::net::Ipv6Addr::LOCALHOST), 1)]
        )
        .replace("type = \"A\"", "type = \"AAAA\""),
        record("api.u.", "failover", &[(up[0].ip(), 1)]),
    );
    (config(&text), v6, up)
}

#[tokio::test]
async fn zones_first_then_answer_sets_then_nodata_for_the_missing_types() {
    let (config, v6, _up) = dual_stack().await;
    let v6_accept = TestEndpoint::serve(v6);
    let mut running = Running::start(config.clone());
    let mut firsts = Vec::new();
    for _ in 0..3 {
        firsts.push(running.next(Duration::from_secs(2)).await);
    }
    let aaaa = firsts
        .iter()
        .find(|w| w.rtype == RTYPE_AAAA)
        .expect("AAAA written");
    assert_eq!(aaaa.addrs, [IpAddr::from(std::net::Ipv6Addr::LOCALHOST)]);
    assert_eq!((aaaa.name.as_str(), aaaa.zone, aaaa.ttl), ("www.t.", 0, 7));
    let api = firsts.iter().find(|w| w.name == "api.u.").unwrap();
    assert_eq!(
        (api.rtype, api.zone),
        (RTYPE_A, 1),
        "the second zone's index"
    );
    // Let the NODATA declarations follow the answer sets.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let calls = running.calls.lock().unwrap().clone();
    running.stop().await;
    v6_accept.abort();

    // Exactly the sequence publish_all_healthy produces.
    let mut expected = ExpectedCalls::default();
    publish_all_healthy(&config, &mut expected).unwrap();
    assert_eq!(calls, expected.0);
    assert_eq!(
        calls,
        [
            Call::Zone(0, "t.".into()),
            Call::Zone(1, "u.".into()),
            Call::Publish("www.t.".into(), RTYPE_A),
            Call::Publish("www.t.".into(), RTYPE_AAAA),
            Call::Publish("api.u.".into(), RTYPE_A),
            Call::NoData("www.t.".into(), RTYPE_HTTPS, 0),
            Call::NoData("api.u.".into(), RTYPE_AAAA, 1),
            Call::NoData("api.u.".into(), RTYPE_HTTPS, 1),
        ]
    );
}

/// Records calls the way MemorySink does, without a running agent.
#[derive(Default)]
struct ExpectedCalls(Vec<Call>);

impl Publisher for ExpectedCalls {
    fn set_zones(&mut self, zones: &Arc<ZoneTree>) -> Result<()> {
        for (zone, soa) in zones.soas() {
            self.0.push(Call::Zone(zone, soa.apex.clone()));
        }
        Ok(())
    }
    fn put(&mut self, name: &str, rtype: u16, entry: &Entry) -> Result<()> {
        self.0.push(match &entry.answer {
            Answer::Addrs(_) | Answer::Rotating { .. } => Call::Publish(name.into(), rtype),
            Answer::Weighted(w) => Call::Weighted(name.into(), rtype, w.clone()),
            Answer::NoData => Call::NoData(name.into(), rtype, entry.zone),
            Answer::ServFail => Call::ServFail(name.into(), rtype),
        });
        Ok(())
    }
    fn withdraw(&mut self, _: &str, _: u16) -> Result<()> {
        unreachable!()
    }
}

#[tokio::test]
async fn a_failing_write_is_retried_and_does_not_hold_up_the_others() {
    let (config, v6, _up) = dual_stack().await;
    let v6_accept = TestEndpoint::serve(v6);
    // Like today's kernel: AAAA and NODATA writes fail.
    let mut running = Running::start_with(config, true);
    let mut written: Vec<(String, u16)> = Vec::new();
    for _ in 0..2 {
        let w = running.next(Duration::from_secs(2)).await;
        written.push((w.name, w.rtype));
    }
    written.sort();
    assert_eq!(
        written,
        [("api.u.".into(), RTYPE_A), ("www.t.".into(), RTYPE_A)],
        "the A records are written although AAAA and NODATA fail"
    );
    // Repaired: the next check's retry writes what is missing.
    *running.broken.lock().unwrap() = false;
    let w = running.next(Duration::from_secs(1)).await;
    assert_eq!((w.name.as_str(), w.rtype), ("www.t.", RTYPE_AAAA));
    tokio::time::sleep(Duration::from_millis(150)).await;
    let calls = running.calls.lock().unwrap().clone();
    let nodata = calls
        .iter()
        .filter(|c| matches!(c, Call::NoData(..)))
        .count();
    assert_eq!(nodata, 3, "{calls:?}");
    let writes = running.stop().await;
    assert_eq!(writes.len(), 3, "each answer set written once: {writes:?}");
    v6_accept.abort();
}

#[tokio::test]
async fn a_flapping_endpoint_is_held_down_until_stable() {
    let (port, mut eps) = endpoints(6, 2).await;
    let (flappy, steady) = (eps[0].ip(), eps[1].ip());
    // Damped at the third change; held down until 600 ms without one.
    let mut text = base(port, 30, 20, 1, 1);
    text += "flap_limit = 2\nflap_hold = \"600ms\"\n";
    text += &record("www.t.", "failover", &[(flappy, 1), (steady, 2)]);
    let mut running = Running::start(config(&text));
    assert_eq!(running.next(Duration::from_secs(1)).await.addrs, [flappy]);
    eps[0].down().await;
    assert_eq!(running.next(Duration::from_secs(1)).await.addrs, [steady]);
    eps[0].up().await;
    assert_eq!(running.next(Duration::from_secs(1)).await.addrs, [flappy]);
    eps[0].down().await;
    assert_eq!(running.next(Duration::from_secs(1)).await.addrs, [steady]);
    // Up again at once, but flapping: the answer stays on the backup until
    // the endpoint has been stable for the hold time.
    let up_at = Instant::now();
    eps[0].up().await;
    let back = running.next(Duration::from_secs(3)).await;
    assert_eq!(back.addrs, [flappy]);
    let held = back.at - up_at;
    assert!(
        held >= Duration::from_millis(500),
        "held down only {held:?}"
    );
    let writes = running.stop().await;
    assert_eq!(writes.len(), 5, "{writes:?}");
}

#[tokio::test]
async fn status_feed_carries_states_history_and_check_counts() {
    use crate::checks::result::{CheckObserver, CheckResult};
    use std::sync::atomic::{AtomicU64, Ordering};

    #[derive(Default)]
    struct Tally(AtomicU64, AtomicU64);
    impl CheckObserver for Tally {
        fn check_done(&self, check: &str, kind: &'static str, result: &CheckResult) {
            assert_eq!((check, kind), ("c", "tcp"));
            let n = if result.is_success() {
                &self.0
            } else {
                &self.1
            };
            n.fetch_add(1, Ordering::Relaxed);
        }
    }

    let (port, mut eps) = endpoints(9, 2).await;
    let mut text = base(port, 100, 60, 1, 1);
    let (primary, backup) = (eps[0].ip(), eps[1].ip());
    text += &record("www.t.", "failover", &[(primary, 1), (backup, 2)]);
    let (tx, _writes) = mpsc::unbounded_channel();
    let sink = MemorySink {
        writes: Default::default(),
        calls: Default::default(),
        broken: Default::default(),
        tx,
    };
    let mut agent = Agent::new(config(&text), sink);
    let tally = Arc::new(Tally::default());
    agent.observe_checks(tally.clone());
    let mut feed = agent.status_feed();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        agent
            .run(
                async {
                    let _ = stopped.await;
                },
                None,
                |_| {},
            )
            .await
    });
    // Waits for a status that satisfies `want`.
    async fn until(
        feed: &mut watch::Receiver<Arc<StatusReport>>,
        want: impl Fn(&StatusReport) -> bool,
    ) -> Arc<StatusReport> {
        tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                let status = feed.borrow_and_update().clone();
                if want(&status) {
                    return status;
                }
                feed.changed().await.unwrap();
            }
        })
        .await
        .expect("a status like that within 5s")
    }
    let first = until(&mut feed, |s| s.answering).await;
    assert_eq!(first.records[0].addresses, [primary.to_string()]);
    assert_eq!(first.answer_sets, 3, "A, and NODATA for AAAA and HTTPS");
    eps[0].down().await;
    let after = until(&mut feed, |s| {
        s.records[0].endpoints[0].state == "unhealthy"
    })
    .await;
    let e = &after.records[0].endpoints[0];
    assert_eq!(after.records[0].addresses, [backup.to_string()]);
    let history: Vec<(&str, &str)> = e
        .history
        .iter()
        .map(|t| (t.from.as_str(), t.to.as_str()))
        .collect();
    assert_eq!(history, [("unknown", "healthy"), ("healthy", "unhealthy")]);
    assert_eq!(e.last_change_at, Some(e.history[1].at));
    assert_eq!(e.last_result.as_deref(), Some("failure"));
    assert!(e.checks >= 2 && e.failures >= 1, "{e:?}");
    assert_eq!(
        after.records[0].endpoints[1].last_result.as_deref(),
        Some("success")
    );
    // The observer saw the same results the status counts.
    assert!(tally.0.load(Ordering::Relaxed) >= 2);
    assert!(tally.1.load(Ordering::Relaxed) >= 1);
    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn with_etcd_out_of_reach_the_agent_answers_from_its_own_checks_after_lease_ttl() {
    let (port, mut eps) = endpoints(9, 2).await;
    // A loopback port nothing listens on: etcd is out of reach.
    let closed = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let etcd = closed.local_addr().unwrap();
    drop(closed);
    let (primary, backup) = (eps[0].ip(), eps[1].ip());
    let mut text = base(port, 100, 60, 1, 1);
    text += &record("www.t.", "failover", &[(primary, 1), (backup, 2)]);
    text += &format!("[cluster]\netcd = [\"http://{etcd}\"]\nnode = \"n1\"\nlease_ttl = \"2s\"\n");
    let mut running = Running::start(config(&text));
    // Nothing before lease_ttl: the cluster decides, and it is not there.
    let first = running.next(Duration::from_secs(4)).await;
    let waited = first.at - running.started;
    assert!(
        waited >= Duration::from_secs(2),
        "first answer after {waited:?}"
    );
    assert_eq!(first.addrs, [primary]);
    // Alone, the agent follows its own checks.
    eps[0].down().await;
    running
        .until("www.t.", &[backup], Duration::from_secs(1))
        .await;
    running.stop().await;
}
