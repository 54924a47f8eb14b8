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
