//! A bounded UDP query flood from a client namespace: one thread per CPU,
//! pinned, each sending from many source ports so that the receiving veth's
//! queues and CPUs share the load, as RSS spreads a real flood. Every reply
//! is kept (when it came, TC, ANCOUNT, its OPT options) for the test to judge.

use std::{
    net::{IpAddr, SocketAddr, UdpSocket},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use crate::in_netns;

/// Most queries a second a flood may send: every loop here is bounded.
pub const MAX_RATE: u32 = 100_000;
/// Longest flood.
pub const MAX_DURATION: Duration = Duration::from_secs(30);
/// Source ports per sending thread.
const PORTS_PER_THREAD: usize = 32;
/// How long replies are still collected after the last query.
const DRAIN: Duration = Duration::from_millis(300);

/// What to send.
#[derive(Clone, Debug)]
pub struct Flood {
    /// The client's source address (must be on the client namespace's veth).
    pub source: IpAddr,
    pub server: SocketAddr,
    /// The query's question name (`www.example.test.`), type A.
    pub name: String,
    /// Queries a second, all threads together.
    pub rate: u32,
    pub duration: Duration,
    /// `Some(cookie)`: an OPT with this COOKIE option (8 bytes client
    /// cookie, optionally followed by a server cookie); `None`: an OPT
    /// without options.
    pub cookie: Option<Vec<u8>>,
    /// `Some(cpu)`: one thread on that CPU sends it all (on a veth the
    /// receiving XDP program runs on the sender's CPU: one flow on one
    /// receive queue); `None`: one thread per CPU.
    pub cpu: Option<usize>,
}

/// One reply as it came.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// Since the flood started.
    pub at: Duration,
    pub truncated: bool,
    pub rcode: u8,
    pub answers: u16,
    /// The COOKIE option's bytes, if the reply's OPT carried one.
    pub cookie: Option<Vec<u8>>,
}

/// What a flood sent and got back.
#[derive(Debug, Default)]
pub struct Outcome {
    pub sent: u64,
    pub replies: Vec<Reply>,
}

impl Outcome {
    /// Replies with records (not truncated) received in `[from, to)`.
    pub fn answered_between(&self, from: Duration, to: Duration) -> usize {
        self.replies
            .iter()
            .filter(|r| !r.truncated && r.answers > 0 && r.at >= from && r.at < to)
            .count()
    }

    pub fn answered(&self) -> usize {
        self.answered_between(Duration::ZERO, Duration::MAX)
    }

    pub fn truncated(&self) -> usize {
        self.replies.iter().filter(|r| r.truncated).count()
    }
}

impl Flood {
    /// Sends the flood from namespace `ns`, paced evenly, and collects the
    /// replies. Bounded by [`MAX_RATE`] and [`MAX_DURATION`].
    pub fn run(&self, ns: &str) -> Result<Outcome> {
        if self.rate == 0 || self.rate > MAX_RATE || self.duration > MAX_DURATION {
            bail!(
                "flood of {}/s for {:?} is out of bounds",
                self.rate,
                self.duration
            );
        }
        let cpus: Vec<usize> = match self.cpu {
            Some(cpu) => vec![cpu],
            None => (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect(),
        };
        let query = query_bytes(&self.name, self.cookie.as_deref());
        let start = Instant::now() + Duration::from_millis(50);
        let mut threads = Vec::new();
        for (n, &cpu) in cpus.iter().enumerate() {
            let (source, server, query) = (self.source, self.server, query.clone());
            // Each thread sends its share at its own even pace.
            let share = self.rate / cpus.len() as u32
                + u32::from((n as u32) < self.rate % cpus.len() as u32);
            let duration = self.duration;
            let ns = ns.to_string();
            threads.push(std::thread::spawn(move || {
                let sockets = in_netns(&ns, move || {
                    (0..PORTS_PER_THREAD)
                        .map(|_| {
                            let socket = UdpSocket::bind(SocketAddr::new(source, 0))
                                .with_context(|| format!("binding UDP to {source}"))?;
                            socket.connect(server)?;
                            socket.set_nonblocking(true)?;
                            Ok(socket)
                        })
                        .collect::<Result<Vec<_>>>()
                })?;
                pin(cpu)?;
                send_and_collect(&sockets, &query, share, duration, start)
            }));
        }
        let mut outcome = Outcome::default();
        for thread in threads {
            let part = thread
                .join()
                .map_err(|_| anyhow::anyhow!("a flood thread panicked"))??;
            outcome.sent += part.sent;
            outcome.replies.extend(part.replies);
        }
        outcome.replies.sort_by_key(|r| r.at);
        Ok(outcome)
    }
}

fn pin(cpu: usize) -> Result<()> {
    // SAFETY: a zeroed cpu_set_t is valid; the call only reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            bail!("sched_setaffinity: {}", std::io::Error::last_os_error());
        }
    }
    Ok(())
}

fn send_and_collect(
    sockets: &[UdpSocket],
    query: &[u8],
    rate: u32,
    duration: Duration,
    start: Instant,
) -> Result<Outcome> {
    let total = (u128::from(rate) * duration.as_nanos() / 1_000_000_000) as u64;
    let gap = Duration::from_secs(1) / rate.max(1);
    let mut outcome = Outcome::default();
    let mut buf = [0u8; 1500];
    let mut query = query.to_vec();
    let end = start + duration + DRAIN;
    while Instant::now() < start {
        std::thread::sleep(Duration::from_millis(1));
    }
    loop {
        let now = Instant::now();
        // Due queries, each from the next port (a fresh ID each).
        while outcome.sent < total && start + gap * outcome.sent as u32 <= now {
            let id = outcome.sent as u16;
            query[..2].copy_from_slice(&id.to_be_bytes());
            let socket = &sockets[outcome.sent as usize % sockets.len()];
            match socket.send(&query) {
                Ok(_) => {}
                // A full socket buffer or an ICMP error from an earlier
                // query: the query still counts as sent (the flood is
                // judged by what comes back).
                Err(e) if is_transient(&e) => {}
                Err(e) => return Err(e).context("sending a query"),
            }
            outcome.sent += 1;
        }
        let mut got = false;
        for socket in sockets {
            loop {
                match socket.recv(&mut buf) {
                    Ok(n) => {
                        got = true;
                        if let Some(reply) = parse_reply(&buf[..n], start.elapsed()) {
                            outcome.replies.push(reply);
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) if is_transient(&e) => break,
                    Err(e) => return Err(e).context("receiving a reply"),
                }
            }
        }
        if Instant::now() >= end {
            return Ok(outcome);
        }
        if !got {
            std::thread::sleep(Duration::from_micros(100));
        }
    }
}

fn is_transient(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ECONNREFUSED) | Some(libc::ENOBUFS) | Some(libc::EAGAIN)
    )
}

/// An A query for `name` with RD=0 and an OPT (1232 bytes) carrying
/// `cookie` as a COOKIE option if given.
pub fn query_bytes(name: &str, cookie: Option<&[u8]>) -> Vec<u8> {
    let mut q = vec![0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1];
    for label in name.trim_end_matches('.').split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    let options = match cookie {
        Some(c) => {
            let mut o = vec![0, 10];
            o.extend_from_slice(&(c.len() as u16).to_be_bytes());
            o.extend_from_slice(c);
            o
        }
        None => Vec::new(),
    };
    q.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0]);
    q.extend_from_slice(&(options.len() as u16).to_be_bytes());
    q.extend_from_slice(&options);
    q
}

/// The header bits and the OPT's COOKIE option of a reply; `None` if it is
/// not one (too short, QR clear).
fn parse_reply(m: &[u8], at: Duration) -> Option<Reply> {
    if m.len() < 12 || m[2] & 0x80 == 0 {
        return None;
    }
    let count = |i: usize| u16::from_be_bytes([m[i], m[i + 1]]);
    let (qd, an, ns, ar) = (count(4), count(6), count(8), count(10));
    let mut reply = Reply {
        at,
        truncated: m[2] & 0x02 != 0,
        rcode: m[3] & 0x0f,
        answers: an,
        cookie: None,
    };
    // Walk to the additional section for the OPT.
    let mut at_byte = 12;
    for _ in 0..qd {
        at_byte = skip_name(m, at_byte)? + 4;
    }
    for _ in 0..(u32::from(an) + u32::from(ns)) {
        at_byte = skip_name(m, at_byte)? + 8;
        let rdlen = usize::from(u16::from_be_bytes([*m.get(at_byte)?, *m.get(at_byte + 1)?]));
        at_byte += 2 + rdlen;
    }
    for _ in 0..ar {
        let start = skip_name(m, at_byte)?;
        let rtype = u16::from_be_bytes([*m.get(start)?, *m.get(start + 1)?]);
        let rdlen = usize::from(u16::from_be_bytes([*m.get(start + 8)?, *m.get(start + 9)?]));
        let rdata = m.get(start + 10..start + 10 + rdlen)?;
        if rtype == 41 {
            let mut o = 0;
            while o + 4 <= rdata.len() {
                let code = u16::from_be_bytes([rdata[o], rdata[o + 1]]);
                let len = usize::from(u16::from_be_bytes([rdata[o + 2], rdata[o + 3]]));
                let value = rdata.get(o + 4..o + 4 + len)?;
                if code == 10 {
                    reply.cookie = Some(value.to_vec());
                }
                o += 4 + len;
            }
        }
        at_byte = start + 10 + rdlen;
    }
    Some(reply)
}

fn skip_name(m: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let len = *m.get(at)?;
        if len & 0xc0 == 0xc0 {
            return Some(at + 2);
        }
        if len == 0 {
            return Some(at + 1);
        }
        at += 1 + usize::from(len);
    }
}
