//! A steady stream of A queries for one name from a client, each with its
//! answer and the time it was sent: how many were answered, lost or wrong
//! across an event (a restart, a takeover). Bounded in count and time.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::DnsClient;

/// Time between two queries: about 2,500 a second.
pub const PACE: Duration = Duration::from_micros(400);
/// How long one query waits for its answer.
pub const QUERY_TIMEOUT: Duration = Duration::from_millis(100);
/// The most queries one stream sends.
pub const MAX_QUERIES: u64 = 200_000;

/// One query of the stream.
pub struct Sample {
    pub at: Instant,
    /// The A records of the answer; `None`: no answer.
    pub answer: Option<Vec<Ipv4Addr>>,
}

/// A running stream; [`QueryStream::stop`] ends it.
pub struct QueryStream {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Vec<Sample>>,
}

impl QueryStream {
    /// Queries `name` through `client` every [`PACE`], for at most `limit`.
    pub fn start(mut client: DnsClient, name: &str, limit: Duration) -> QueryStream {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let name = name.to_string();
        let thread = std::thread::spawn(move || {
            let started = Instant::now();
            let mut samples = Vec::new();
            while !flag.load(Ordering::Relaxed)
                && (samples.len() as u64) < MAX_QUERIES
                && started.elapsed() < limit
            {
                let at = Instant::now();
                let answer = client
                    .query_a(&name, QUERY_TIMEOUT)
                    .ok()
                    .flatten()
                    .map(|a| a.addrs);
                samples.push(Sample { at, answer });
                std::thread::sleep(PACE);
            }
            samples
        });
        QueryStream { stop, thread }
    }

    /// Every query sent.
    pub fn stop(self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("the query stream")
    }
}

/// Of `samples` sent in [from, to): how many were sent, answered with
/// `want`, answered otherwise (wrong), and not answered (lost).
pub fn tally(samples: &[Sample], from: Instant, to: Instant, want: &[Ipv4Addr]) -> Tally {
    let mut tally = Tally::default();
    for s in samples.iter().filter(|s| s.at >= from && s.at < to) {
        tally.sent += 1;
        match s.answer.as_deref() {
            Some(a) if a == want => tally.answered += 1,
            Some(_) => tally.wrong += 1,
            None => tally.lost += 1,
        }
    }
    tally
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub sent: usize,
    pub answered: usize,
    pub wrong: usize,
    pub lost: usize,
}

/// A mix of queries from the client namespace, as real clients send them
/// to a host the agent serves: A queries for a hot name over UDP (the
/// kernel answers), SOA and NS of the apex and MX of the hot name over UDP
/// (userspace: the kernel passes them up; MX is NODATA), and A queries for
/// the hot name over TCP, one connection each (userspace). Every answer is
/// checked; bounded in count and time like [`QueryStream`].
pub struct MixedStream {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<Vec<Checked>>>,
}

/// One query of a [`MixedStream`] and what came of it.
#[derive(Clone, Debug)]
pub struct Checked {
    pub at: Instant,
    /// Which stream it belongs to, e.g. `"udp A (kernel)"`.
    pub stream: &'static str,
    pub verdict: Verdict,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Right,
    /// Answered, but not as expected (why).
    Wrong(String),
    Lost,
}

/// How long a query answered in userspace waits (a slower path than XDP,
/// on a shared machine): later is lost.
pub const USERSPACE_TIMEOUT: Duration = Duration::from_millis(500);

impl MixedStream {
    /// `hot` is answered `want`; `apex` is its zone's origin. Queries go to
    /// `server` from namespace `ns`.
    pub fn start(
        ns: &str,
        server: std::net::SocketAddrV4,
        hot: &str,
        apex: &str,
        want: Vec<Ipv4Addr>,
        limit: Duration,
    ) -> anyhow::Result<MixedStream> {
        use hickory_proto::op::ResponseCode;
        use hickory_proto::rr::RecordType;
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        // Kernel: A for the hot name, every PACE.
        {
            let mut client = DnsClient::new(ns, server)?;
            let (stop, hot, want) = (stop.clone(), hot.to_string(), want.clone());
            threads.push(std::thread::spawn(move || {
                run_stream(&stop, limit, PACE, "udp A (kernel)", || {
                    match client.query_a(&hot, QUERY_TIMEOUT).ok().flatten() {
                        None => Verdict::Lost,
                        Some(a) if a.addrs == want => Verdict::Right,
                        Some(a) => Verdict::Wrong(format!("{:?} {:?}", a.rcode, a.addrs)),
                    }
                })
            }));
        }
        // Userspace over UDP: SOA, NS, MX (NODATA) in turn.
        {
            let mut client = DnsClient::new(ns, server)?;
            let (stop, hot, apex) = (stop.clone(), hot.to_string(), apex.to_string());
            let mut turn = 0usize;
            threads.push(std::thread::spawn(move || {
                run_stream(
                    &stop,
                    limit,
                    Duration::from_millis(2),
                    "udp SOA/NS/MX (userspace)",
                    || {
                        let (name, qtype) = match turn % 3 {
                            0 => (&apex, RecordType::SOA),
                            1 => (&apex, RecordType::NS),
                            _ => (&hot, RecordType::MX),
                        };
                        turn += 1;
                        let options = crate::dns::QueryOptions::default();
                        match client
                            .query(name, qtype, options, USERSPACE_TIMEOUT)
                            .ok()
                            .flatten()
                        {
                            None => Verdict::Lost,
                            Some(a)
                                if a.rcode == ResponseCode::NoError
                                    && a.authoritative
                                    && a.question.as_ref().map(|q| q.1) == Some(qtype) =>
                            {
                                Verdict::Right
                            }
                            Some(a) => Verdict::Wrong(format!("{qtype} {name}: {a:?}")),
                        }
                    },
                )
            }));
        }
        // Userspace over TCP: A for the hot name, a connection per query.
        {
            let (stop, hot, want) = (stop.clone(), hot.to_string(), want);
            let path = std::path::PathBuf::from("/var/run/netns").join(ns);
            let netns = std::fs::File::open(&path)?;
            threads.push(std::thread::spawn(move || {
                use std::os::fd::AsRawFd as _;
                // SAFETY: setns on a valid descriptor; moves only this thread.
                if unsafe { libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    panic!("setns: {}", std::io::Error::last_os_error());
                }
                let mut id = 0u16;
                run_stream(
                    &stop,
                    limit,
                    Duration::from_millis(5),
                    "tcp A (userspace)",
                    || {
                        id = id.wrapping_add(1);
                        match tcp_query_a(server, id, &hot) {
                            Ok(Some(addrs)) if addrs == want => Verdict::Right,
                            Ok(Some(addrs)) => Verdict::Wrong(format!("{addrs:?}")),
                            Ok(None) | Err(_) => Verdict::Lost,
                        }
                    },
                )
            }));
        }
        Ok(MixedStream { stop, threads })
    }

    /// Every query sent, of every stream.
    pub fn stop(self) -> Vec<Checked> {
        self.stop.store(true, Ordering::Relaxed);
        self.threads
            .into_iter()
            .flat_map(|t| t.join().expect("a query stream"))
            .collect()
    }
}

fn run_stream(
    stop: &AtomicBool,
    limit: Duration,
    pace: Duration,
    stream: &'static str,
    mut ask: impl FnMut() -> Verdict,
) -> Vec<Checked> {
    let started = Instant::now();
    let mut out = Vec::new();
    while !stop.load(Ordering::Relaxed)
        && (out.len() as u64) < MAX_QUERIES
        && started.elapsed() < limit
    {
        let at = Instant::now();
        let verdict = ask();
        out.push(Checked {
            at,
            stream,
            verdict,
        });
        std::thread::sleep(pace);
    }
    out
}

/// One A query over a new TCP connection; the A records of the answer.
fn tcp_query_a(
    server: std::net::SocketAddrV4,
    id: u16,
    name: &str,
) -> anyhow::Result<Option<Vec<Ipv4Addr>>> {
    use std::io::{Read as _, Write as _};
    let wire = crate::dns::build_query(
        id,
        name,
        hickory_proto::rr::RecordType::A,
        crate::dns::QueryOptions::default(),
    )?;
    let mut stream = std::net::TcpStream::connect_timeout(&server.into(), USERSPACE_TIMEOUT)?;
    stream.set_read_timeout(Some(USERSPACE_TIMEOUT))?;
    stream.set_write_timeout(Some(USERSPACE_TIMEOUT))?;
    let mut framed = (wire.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&wire);
    stream.write_all(&framed)?;
    let mut len = [0u8; 2];
    if stream.read_exact(&mut len).is_err() {
        return Ok(None);
    }
    let mut message = vec![0u8; u16::from_be_bytes(len) as usize];
    if stream.read_exact(&mut message).is_err() {
        return Ok(None);
    }
    let message = hickory_proto::op::Message::from_vec(&message)?;
    if message.id() != id {
        anyhow::bail!("an answer to another query");
    }
    Ok(Some(
        message
            .answers()
            .iter()
            .filter_map(|r| match r.data() {
                hickory_proto::rr::RData::A(a) => Some(a.0),
                _ => None,
            })
            .collect(),
    ))
}

/// Of `samples` sent in [from, to), a tally per stream (in stream order).
pub fn tally_checked(
    samples: &[Checked],
    from: Instant,
    to: Instant,
) -> Vec<(&'static str, Tally)> {
    let mut out: Vec<(&'static str, Tally)> = Vec::new();
    for s in samples.iter().filter(|s| s.at >= from && s.at < to) {
        let i = match out.iter().position(|(name, _)| *name == s.stream) {
            Some(i) => i,
            None => {
                out.push((s.stream, Tally::default()));
                out.len() - 1
            }
        };
        let tally = &mut out[i].1;
        tally.sent += 1;
        match s.verdict {
            Verdict::Right => tally.answered += 1,
            Verdict::Wrong(_) => tally.wrong += 1,
            Verdict::Lost => tally.lost += 1,
        }
    }
    out
}

/// The first few wrong answers in [from, to), for a failure message.
pub fn wrong_examples(samples: &[Checked], from: Instant, to: Instant) -> Vec<String> {
    samples
        .iter()
        .filter(|s| s.at >= from && s.at < to)
        .filter_map(|s| match &s.verdict {
            Verdict::Wrong(why) => Some(format!("{}: {why}", s.stream)),
            _ => None,
        })
        .take(5)
        .collect()
}
