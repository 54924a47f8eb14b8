//! DNS over UDP and TCP for the userspace [`Responder`]: what the XDP program
//! passes up the stack (and everything over TCP) is answered here.
//!
//! - Sockets are bound by [`Listeners::bind`] before anything else happens
//!   (before the XDP program is attached), so a port that is taken stops the
//!   agent with a clear error and nothing to undo.
//! - IPv6 sockets are IPv6-only: `0.0.0.0:53` and `[::]:53` coexist.
//! - UDP replies leave from the address the query was sent to (IP_PKTINFO /
//!   IPV6_PKTINFO), which a socket bound to a wildcard address would
//!   otherwise not guarantee on a host with several addresses (anycast
//!   service addresses on `lo`, secondary addresses).
//! - TCP (RFC 7766): 2-byte length framing, any number of queries per
//!   connection answered in order, the connection closed after
//!   `tcp_idle_timeout` without a complete query, and at most
//!   `tcp_max_connections` at once. A newcomer is never refused: when its
//!   source prefix holds its share, or the table is full, an idle connection
//!   of its own prefix (or of the prefix holding the most) is closed instead
//!   ([`super::tcp_limits`]).

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use log::{debug, info, warn};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::Interest;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinSet;

use super::cookies::CookieStatus;
use super::pktinfo::{enable_pktinfo, recv_pktinfo, send_pktinfo};
use super::rate_limit::{RateLimiter, Verdict};
use super::responder::Responder;
use super::tcp_limits::{ConnectionTable, Slot};
use super::wire::{Transport, truncated};
use crate::config::RateLimitSettings;

/// Largest UDP payload: a query can be no larger.
const MAX_UDP_MESSAGE: usize = 65_535;
/// Pending TCP connections the kernel queues for accept.
const TCP_BACKLOG: i32 = 1024;
/// Once the server is finishing (a successor serves the same sockets), a
/// TCP connection idle this long is closed: its client's next query goes
/// to the successor over a new connection.
const FINISHING_IDLE: Duration = Duration::from_secs(1);

/// TCP limits ([`crate::config::Server`] holds the configured values).
#[derive(Clone, Copy, Debug)]
pub struct TcpLimits {
    pub idle_timeout: Duration,
    pub max_connections: u32,
}

/// Sockets bound and listening, not yet served.
pub struct Listeners {
    udp: Vec<std::net::UdpSocket>,
    tcp: Vec<std::net::TcpListener>,
}

impl Listeners {
    /// Binds UDP and TCP on every address in `addrs`. Port 0 picks one free
    /// port for both (tests). With `ipv6_optional`, an IPv6 address on a host
    /// without IPv6 is skipped with a warning instead of failing (for the
    /// default listen addresses, which nobody chose).
    pub fn bind(addrs: &[SocketAddr], ipv6_optional: bool) -> Result<Listeners> {
        let mut listeners = Listeners {
            udp: Vec::new(),
            tcp: Vec::new(),
        };
        for &addr in addrs {
            match bind_pair(addr) {
                Ok((udp, tcp)) => {
                    listeners.udp.push(udp);
                    listeners.tcp.push(tcp);
                }
                Err(e) if ipv6_optional && addr.is_ipv6() && ipv6_unavailable(&e) => {
                    warn!("not listening on {addr}: this host has no IPv6 ({e:#})");
                }
                Err(e) => return Err(e),
            }
        }
        if listeners.udp.is_empty() {
            bail!("no address to serve DNS on");
        }
        Ok(listeners)
    }

    /// Listeners from sockets bound elsewhere (systemd socket activation, or
    /// the agent this one takes over from): UDP sockets and listening TCP
    /// sockets, in any order. UDP sockets get the options ours have.
    pub fn from_fds(fds: Vec<OwnedFd>) -> Result<Listeners> {
        let mut listeners = Listeners {
            udp: Vec::new(),
            tcp: Vec::new(),
        };
        for fd in fds {
            let socket = Socket::from(fd);
            let addr = socket
                .local_addr()
                .ok()
                .and_then(|a| a.as_socket())
                .context("a socket passed in is not an IP socket")?;
            match socket.r#type().context("the type of a socket passed in")? {
                Type::DGRAM => {
                    enable_pktinfo(&socket, addr.is_ipv6())
                        .with_context(|| format!("UDP {addr} passed in"))?;
                    listeners.udp.push(socket.into());
                }
                Type::STREAM => {
                    if !socket.is_listener().unwrap_or(false) {
                        bail!("TCP {addr} passed in is not listening");
                    }
                    listeners.tcp.push(socket.into());
                }
                other => bail!("{addr} passed in is neither UDP nor TCP ({other:?})"),
            }
        }
        if listeners.udp.is_empty() {
            bail!("no UDP socket among the sockets passed in");
        }
        Ok(listeners)
    }

    /// Copies of every socket (the same sockets, new descriptors), to hand
    /// on to a successor while these keep serving.
    pub fn handover(&self) -> Result<Vec<OwnedFd>> {
        let udp = self.udp.iter().map(|s| s.try_clone().map(OwnedFd::from));
        let tcp = self.tcp.iter().map(|s| s.try_clone().map(OwnedFd::from));
        udp.chain(tcp)
            .collect::<io::Result<_>>()
            .context("copying the listening sockets")
    }

    /// The bound addresses (UDP and TCP share each).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.udp
            .iter()
            .map(|s| s.local_addr().expect("a bound socket has an address"))
            .collect()
    }
}

fn ipv6_unavailable(e: &anyhow::Error) -> bool {
    e.chain()
        .filter_map(|c| c.downcast_ref::<io::Error>())
        .any(|io| {
            matches!(
                io.raw_os_error(),
                Some(libc::EAFNOSUPPORT | libc::EADDRNOTAVAIL | libc::EPROTONOSUPPORT)
            )
        })
}

/// UDP and TCP on `addr`; with port 0, the same free port for both.
fn bind_pair(addr: SocketAddr) -> Result<(std::net::UdpSocket, std::net::TcpListener)> {
    if addr.port() != 0 {
        return Ok((bind_udp(addr)?, bind_tcp(addr)?));
    }
    for _ in 0..32 {
        let udp = bind_udp(addr)?;
        let port = udp.local_addr()?.port();
        if let Ok(tcp) = bind_tcp(SocketAddr::new(addr.ip(), port)) {
            return Ok((udp, tcp));
        }
    }
    bail!("no port on {} is free for both UDP and TCP", addr.ip())
}

fn bind_error(e: io::Error, proto: &str, addr: SocketAddr) -> anyhow::Error {
    let hint = match e.raw_os_error() {
        Some(libc::EADDRINUSE) => {
            " (another DNS server listens there: stop it, serve elsewhere with [server] listen or --listen, or let it answer what XDP passes with [server] mode = \"front\" or --mode front)"
        }
        Some(libc::EACCES) => " (ports below 1024 need root or CAP_NET_BIND_SERVICE)",
        Some(libc::EADDRNOTAVAIL) => " (no interface has this address)",
        _ => "",
    };
    anyhow::Error::new(e).context(format!("binding {proto} {addr}{hint}"))
}

fn new_socket(addr: SocketAddr, ty: Type, proto: Protocol) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), ty, Some(proto))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    Ok(socket)
}

fn bind_udp(addr: SocketAddr) -> Result<std::net::UdpSocket> {
    let socket =
        new_socket(addr, Type::DGRAM, Protocol::UDP).map_err(|e| bind_error(e, "UDP", addr))?;
    enable_pktinfo(&socket, addr.is_ipv6()).map_err(|e| bind_error(e, "UDP", addr))?;
    socket
        .bind(&addr.into())
        .map_err(|e| bind_error(e, "UDP", addr))?;
    Ok(socket.into())
}

fn bind_tcp(addr: SocketAddr) -> Result<std::net::TcpListener> {
    let socket =
        new_socket(addr, Type::STREAM, Protocol::TCP).map_err(|e| bind_error(e, "TCP", addr))?;
    // A restart must not wait for the old connections' TIME_WAIT.
    socket
        .set_reuse_address(true)
        .map_err(|e| bind_error(e, "TCP", addr))?;
    socket
        .bind(&addr.into())
        .map_err(|e| bind_error(e, "TCP", addr))?;
    socket
        .listen(TCP_BACKLOG)
        .map_err(|e| bind_error(e, "TCP", addr))?;
    Ok(socket.into())
}

/// Counters of the userspace server (monotonic).
#[derive(Debug, Default)]
pub struct ServerStats {
    pub udp_queries: AtomicU64,
    pub udp_answers: AtomicU64,
    pub tcp_connections: AtomicU64,
    /// Connections closed to admit a newcomer (their prefix held its share,
    /// or the table was full).
    pub tcp_evicted: AtomicU64,
    pub tcp_queries: AtomicU64,
    pub tcp_answers: AtomicU64,
    /// UDP answers over their source's rate (`[rate_limit]`), and of
    /// those the ones sent truncated and the ones dropped.
    pub udp_rate_limited: AtomicU64,
    pub udp_slipped: AtomicU64,
    pub udp_dropped: AtomicU64,
    /// Answers sent, by [`RESPONSE_KINDS`] index, per transport.
    pub udp_responses: [AtomicU64; RESPONSE_KINDS.len()],
    pub tcp_responses: [AtomicU64; RESPONSE_KINDS.len()],
}

/// What an answer said, as metrics count it: its rcode, with NOERROR
/// without answer records (NODATA) apart, and every rare rcode as "other".
pub const RESPONSE_KINDS: [&str; 8] = [
    "NOERROR", "NODATA", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "other",
];

/// The [`RESPONSE_KINDS`] index of an encoded answer.
pub fn response_kind(answer: &[u8]) -> usize {
    if answer.len() < 12 {
        return RESPONSE_KINDS.len() - 1;
    }
    match answer[3] & 0x0f {
        0 if u16::from_be_bytes([answer[6], answer[7]]) == 0 => 1,
        0 => 0,
        rcode @ 1..=5 => rcode as usize + 1,
        _ => RESPONSE_KINDS.len() - 1,
    }
}

impl ServerStats {
    /// `udp_queries=.. udp_answers=.. ...` for the log.
    pub fn summary(&self) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        format!(
            "udp_queries={} udp_answers={} tcp_connections={} tcp_evicted={} tcp_queries={} tcp_answers={} udp_rate_limited={} udp_slipped={} udp_dropped={}",
            get(&self.udp_queries),
            get(&self.udp_answers),
            get(&self.tcp_connections),
            get(&self.tcp_evicted),
            get(&self.tcp_queries),
            get(&self.tcp_answers),
            get(&self.udp_rate_limited),
            get(&self.udp_slipped),
            get(&self.udp_dropped)
        )
    }
}

/// The running server. Dropping it stops every task (sockets close).
pub struct Server {
    tasks: JoinSet<()>,
    addrs: Vec<SocketAddr>,
    stats: Arc<ServerStats>,
    /// Set by [`Server::finish`]: stop reading and accepting, let open
    /// connections end.
    finishing: tokio::sync::watch::Sender<bool>,
}

impl Server {
    /// Serves `listeners` with `responder`. Must be called inside a tokio
    /// runtime.
    pub fn start(listeners: Listeners, responder: Responder, limits: TcpLimits) -> Result<Server> {
        Server::start_limited(listeners, responder, limits, None)
    }

    /// [`Server::start`], with UDP answers rate limited per source prefix
    /// by `rate_limit` (TCP never is).
    pub fn start_limited(
        listeners: Listeners,
        responder: Responder,
        limits: TcpLimits,
        rate_limit: Option<RateLimitSettings>,
    ) -> Result<Server> {
        let addrs = listeners.local_addrs();
        let limiter = rate_limit.map(|settings| Arc::new(RateLimiter::new(settings)));
        let stats = Arc::new(ServerStats::default());
        let (finishing, finish_rx) = tokio::sync::watch::channel(false);
        let mut tasks = JoinSet::new();
        for socket in listeners.udp {
            let addr = socket.local_addr()?;
            let socket =
                UdpSocket::from_std(socket).with_context(|| format!("registering UDP {addr}"))?;
            tasks.spawn(serve_udp(
                socket,
                addr,
                responder.clone(),
                limiter.clone(),
                stats.clone(),
                finish_rx.clone(),
            ));
        }
        let table = ConnectionTable::new(limits.max_connections);
        for listener in listeners.tcp {
            let addr = listener.local_addr()?;
            let listener = TcpListener::from_std(listener)
                .with_context(|| format!("registering TCP {addr}"))?;
            tasks.spawn(serve_tcp(
                listener,
                addr,
                responder.clone(),
                limits,
                table.clone(),
                stats.clone(),
                finish_rx.clone(),
            ));
        }
        info!(
            "serving DNS over UDP and TCP on {}",
            addrs
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        Ok(Server {
            tasks,
            addrs,
            stats,
            finishing,
        })
    }

    /// Where it serves (UDP and TCP on each).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// The counters, shared: they keep counting while the server runs.
    pub fn stats(&self) -> Arc<ServerStats> {
        self.stats.clone()
    }

    /// Stops serving: every socket and connection is closed when this returns.
    pub async fn stop(mut self) {
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
    }

    /// Finishes while a successor serves the same sockets: stops reading
    /// UDP (a datagram read is answered first) and accepting TCP at once;
    /// open TCP connections answer what they receive and close once idle
    /// for a second, or at `limit`. Returns whether every connection ended
    /// by itself.
    pub async fn finish(mut self, limit: Duration) -> bool {
        self.finishing.send_replace(true);
        let ended = tokio::time::timeout(limit, async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await
        .is_ok();
        self.stop().await;
        ended
    }
}

/// Until the server is finishing (or gone). The watch's guard is not held
/// past this: it may not cross an await in a task.
async fn finished(finishing: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = finishing.wait_for(|f| *f).await;
}

async fn serve_udp(
    socket: UdpSocket,
    addr: SocketAddr,
    responder: Responder,
    limiter: Option<Arc<RateLimiter>>,
    stats: Arc<ServerStats>,
    mut finishing: tokio::sync::watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; MAX_UDP_MESSAGE];
    loop {
        // A datagram is taken off the socket only when this completes, so
        // finishing never drops one read and not answered.
        let received = tokio::select! {
            biased;
            () = finished(&mut finishing) => return,
            received = socket.async_io(Interest::READABLE, || {
                recv_pktinfo(socket.as_raw_fd(), &mut buf)
            }) => received,
        };
        let (len, peer, local) = match received {
            Ok(r) => r,
            Err(e) => {
                // E.g. ENOMEM: back off rather than spin.
                warn!("UDP {addr}: receiving: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        stats.udp_queries.fetch_add(1, Ordering::Relaxed);
        // Port 0 cannot be answered (and is a classic reflection trick).
        if peer.port() == 0 {
            continue;
        }
        let Some((mut answer, cookie)) =
            responder.answer_from(&buf[..len], Transport::Udp, peer.ip())
        else {
            continue;
        };
        // A valid server cookie proves the source address (a spoofer
        // cannot have one): never limited.
        if let Some(limiter) = limiter.as_ref().filter(|_| cookie != CookieStatus::Valid) {
            let verdict = limiter.check(peer.ip());
            if verdict != Verdict::Answer {
                stats.udp_rate_limited.fetch_add(1, Ordering::Relaxed);
            }
            match verdict {
                Verdict::Answer | Verdict::AnswerOverLimit => {}
                Verdict::Slip => {
                    stats.udp_slipped.fetch_add(1, Ordering::Relaxed);
                    match truncated(&answer) {
                        Some(slip) => answer = slip,
                        None => continue,
                    }
                }
                Verdict::Drop => {
                    stats.udp_dropped.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            }
        }
        let sent = socket
            .async_io(Interest::WRITABLE, || {
                send_pktinfo(socket.as_raw_fd(), &answer, peer, local)
            })
            .await;
        match sent {
            Ok(_) => {
                stats.udp_answers.fetch_add(1, Ordering::Relaxed);
                stats.udp_responses[response_kind(&answer)].fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => debug!("UDP {addr}: answering {peer}: {e}"),
        }
    }
}

async fn serve_tcp(
    listener: TcpListener,
    addr: SocketAddr,
    responder: Responder,
    limits: TcpLimits,
    table: Arc<ConnectionTable>,
    stats: Arc<ServerStats>,
    mut finishing: tokio::sync::watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    let for_connections = finishing.clone();
    loop {
        tokio::select! {
            biased;
            // The successor accepts from here on (the listening socket is
            // shared); the connections open here end on their own.
            () = finished(&mut finishing) => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    stats.tcp_connections.fetch_add(1, Ordering::Relaxed);
                    // Never refused: an idle connection makes room instead.
                    let (slot, eviction) = table.admit(peer);
                    if eviction.is_some() {
                        stats.tcp_evicted.fetch_add(1, Ordering::Relaxed);
                    }
                    let responder = responder.clone();
                    let stats = stats.clone();
                    let finishing = for_connections.clone();
                    connections.spawn(async move {
                        serve_connection(
                            stream,
                            peer,
                            responder,
                            limits.idle_timeout,
                            &slot,
                            &stats,
                            finishing,
                        )
                        .await;
                    });
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off.
                    warn!("TCP {addr}: accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            // Reap finished connections (the set would grow otherwise).
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}

/// Queries one after another on one connection until the client closes it,
/// sends something unanswerable, is idle for `idle` (once the server is
/// finishing, for at most [`FINISHING_IDLE`]), or the connection is
/// evicted from the table. Eviction is seen while waiting for a query (the
/// socket closes then), never while an answer is being written.
async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    responder: Responder,
    idle: Duration,
    slot: &Slot,
    stats: &ServerStats,
    mut finishing: tokio::sync::watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    let mut message = Vec::new();
    loop {
        let mut prefix = [0u8; 2];
        let received = async {
            read.read_exact(&mut prefix).await?;
            let len = u16::from_be_bytes(prefix) as usize;
            message.resize(len, 0);
            read.read_exact(&mut message).await
        };
        tokio::pin!(received);
        let mut deadline = tokio::time::Instant::now() + idle;
        let mut finish_seen = *finishing.borrow();
        if finish_seen {
            deadline = deadline.min(tokio::time::Instant::now() + FINISHING_IDLE);
        }
        loop {
            tokio::select! {
                // Eviction first: a query that arrived after it is not answered.
                biased;
                // Evicted: nothing is being written, close now.
                () = slot.evicted.notified() => {
                    debug!("TCP {peer}: closed to make room for another connection");
                    return;
                }
                result = &mut received => match result {
                    Ok(_) => break,
                    Err(_) => return,
                },
                () = tokio::time::sleep_until(deadline) => {
                    debug!("TCP {peer}: idle, closing");
                    return;
                }
                // A successor serves now: shorten the wait (without losing
                // what was read of a query).
                () = finished(&mut finishing), if !finish_seen => {
                    finish_seen = true;
                    deadline = deadline.min(tokio::time::Instant::now() + FINISHING_IDLE);
                }
            }
        }
        stats.tcp_queries.fetch_add(1, Ordering::Relaxed);
        let Some((answer, _)) = responder.answer_from(&message, Transport::Tcp, peer.ip()) else {
            debug!("TCP {peer}: a message that gets no answer, closing");
            return;
        };
        let mut out = Vec::with_capacity(2 + answer.len());
        out.extend_from_slice(&(answer.len() as u16).to_be_bytes());
        out.extend_from_slice(&answer);
        match tokio::time::timeout(idle, write.write_all(&out)).await {
            Ok(Ok(())) => {
                stats.tcp_answers.fetch_add(1, Ordering::Relaxed);
                stats.tcp_responses[response_kind(&answer)].fetch_add(1, Ordering::Relaxed);
                slot.touch();
            }
            _ => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::publish::publish_all_healthy;
    use crate::serve::table::AnswerTable;
    use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
    use hickory_proto::rr::{Name, RData, RecordType};
    use std::net::Ipv4Addr;
    use std::net::Ipv6Addr;
    use std::time::Instant;

    const CONFIG: &str = r#"
[[zone]]
origin = "example.test."
nameservers = [{ name = "ns1.example.test.", addresses = ["192.0.2.53"] }]
[[record]]
name = "www.example.test."
type = "A"
policy = "all-healthy"
check = "c"
endpoints = [{ address = "192.0.2.10" }]
[[record]]
name = "big.bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb.example.test."
type = "AAAA"
policy = "all-healthy"
max_answers = 16
check = "c"
endpoints = [
  { address = "2001:db8::1" }, { address = "2001:db8::2" }, { address = "2001:db8::3" },
  { address = "2001:db8::4" }, { address = "2001:db8::5" }, { address = "2001:db8::6" },
  { address = "2001:db8::7" }, { address = "2001:db8::8" }, { address = "2001:db8::9" },
  { address = "2001:db8::a" }, { address = "2001:db8::b" }, { address = "2001:db8::c" },
  { address = "2001:db8::d" }, { address = "2001:db8::e" }, { address = "2001:db8::f" },
  { address = "2001:db8::10" },
]
[checks.c]
kind = "tcp"
port = 80
"#;

    /// 16 AAAA records under a long name: more than 512 bytes.
    const BIG: &str =
        "big.bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb.example.test.";

    const LIMITS: TcpLimits = TcpLimits {
        idle_timeout: Duration::from_secs(5),
        max_connections: 16,
    };
    const WAIT: Duration = Duration::from_secs(2);

    fn responder() -> Responder {
        let config = Config::parse(CONFIG, "test").unwrap();
        let mut table = AnswerTable::new();
        publish_all_healthy(&config, &mut table).unwrap();
        Responder::new(table)
    }

    fn start(addrs: &[&str], limits: TcpLimits) -> Server {
        let addrs: Vec<SocketAddr> = addrs.iter().map(|a| a.parse().unwrap()).collect();
        let listeners = Listeners::bind(&addrs, false).unwrap();
        Server::start(listeners, responder(), limits).unwrap()
    }

    fn query(id: u16, name: &str, rtype: RecordType) -> Vec<u8> {
        let mut m = Message::new();
        m.set_id(id)
            .set_message_type(MessageType::Query)
            .set_op_code(OpCode::Query)
            .add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
        m.to_vec().unwrap()
    }

    async fn udp_exchange(client: &UdpSocket, query: &[u8]) -> Option<Message> {
        client.send(query).await.unwrap();
        let mut buf = vec![0u8; 4096];
        match tokio::time::timeout(Duration::from_millis(500), client.recv(&mut buf)).await {
            Ok(Ok(n)) => Some(Message::from_vec(&buf[..n]).unwrap()),
            Ok(Err(e)) => panic!("receiving: {e}"),
            Err(_) => None,
        }
    }

    async fn udp_client(server: SocketAddr) -> UdpSocket {
        let bind: SocketAddr = if server.is_ipv6() {
            "[::1]:0".parse().unwrap()
        } else {
            "127.0.0.1:0".parse().unwrap()
        };
        let client = UdpSocket::bind(bind).await.unwrap();
        // Connected: datagrams from any other source address are dropped, so
        // an answer from the wrong address is never seen.
        client.connect(server).await.unwrap();
        client
    }

    async fn tcp_read(stream: &mut TcpStream) -> Option<Message> {
        let mut prefix = [0u8; 2];
        match tokio::time::timeout(WAIT, stream.read_exact(&mut prefix)).await {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => return None,
            Err(_) => panic!("no answer and no close within {WAIT:?}"),
        }
        let mut msg = vec![0u8; u16::from_be_bytes(prefix) as usize];
        stream.read_exact(&mut msg).await.unwrap();
        Some(Message::from_vec(&msg).unwrap())
    }

    fn framed(query: &[u8]) -> Vec<u8> {
        let mut out = (query.len() as u16).to_be_bytes().to_vec();
        out.extend_from_slice(query);
        out
    }

    fn a_records(m: &Message) -> Vec<Ipv4Addr> {
        m.answers()
            .iter()
            .filter_map(|r| match r.data() {
                RData::A(a) => Some(a.0),
                _ => None,
            })
            .collect()
    }

    /// UDP answers over the rate: every second one slips (TC=1, the
    /// question, no records), the others are not sent; TCP is not limited.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn udp_answers_are_rate_limited_and_tcp_is_not() {
        let listeners = Listeners::bind(&["127.0.0.1:0".parse().unwrap()], false).unwrap();
        let settings = crate::config::RateLimitSettings {
            responses_per_second: 1,
            ipv4_prefix: 24,
            ipv6_prefix: 56,
            slip: 2,
            window: Duration::from_secs(5),
            exempt: vec![],
            log_only: false,
        };
        let server = Server::start_limited(listeners, responder(), LIMITS, Some(settings)).unwrap();
        let addr = server.local_addrs()[0];
        let client = udp_client(addr).await;
        // 5 within the window, then 4 over it, all at once (so nothing
        // refills), in order: the server answers one socket in order.
        for id in 0..9 {
            client
                .send(&query(id, "www.example.test.", RecordType::A))
                .await
                .unwrap();
        }
        let mut answers = Vec::new();
        let mut buf = vec![0u8; 4096];
        while let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(500), client.recv(&mut buf)).await
        {
            let m = Message::from_vec(&buf[..n]).unwrap();
            answers.push((m.id(), m.truncated(), a_records(&m).len()));
        }
        let full = |id| (id, false, 1);
        let slip = |id| (id, true, 0);
        assert_eq!(
            answers,
            [
                full(0),
                full(1),
                full(2),
                full(3),
                full(4),
                slip(6),
                slip(8)
            ]
        );
        let stats = server.stats();
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        assert_eq!(
            (
                get(&stats.udp_rate_limited),
                get(&stats.udp_slipped),
                get(&stats.udp_dropped)
            ),
            (4, 2, 2)
        );
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        for id in 100..110 {
            tcp.write_all(&framed(&query(id, "www.example.test.", RecordType::A)))
                .await
                .unwrap();
            let m = tcp_read(&mut tcp).await.unwrap();
            assert_eq!((m.id(), a_records(&m).len()), (id, 1));
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sockets_handed_over_serve_the_same_addresses() {
        let addrs: Vec<SocketAddr> = ["127.0.0.1:0", "[::1]:0"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        let listeners = Listeners::bind(&addrs, false).unwrap();
        let bound = listeners.local_addrs();
        let copies = Listeners::from_fds(listeners.handover().unwrap()).unwrap();
        assert_eq!(copies.local_addrs(), bound);
        drop(listeners);
        let server = Server::start(copies, responder(), LIMITS).unwrap();
        for &addr in server.local_addrs() {
            let client = udp_client(addr).await;
            let answer = udp_exchange(&client, &query(7, "www.example.test.", RecordType::A))
                .await
                .unwrap_or_else(|| panic!("no answer from {addr}"));
            assert_eq!(a_records(&answer), [Ipv4Addr::new(192, 0, 2, 10)]);
            let mut tcp = TcpStream::connect(addr).await.unwrap();
            tcp.write_all(&framed(&query(8, "www.example.test.", RecordType::A)))
                .await
                .unwrap();
            assert_eq!(tcp_read(&mut tcp).await.unwrap().id(), 8);
        }
        // Neither a connected socket nor a non-IP one is taken for a listener.
        let stream = std::net::TcpStream::connect(server.local_addrs()[0]).unwrap();
        let e = Listeners::from_fds(vec![OwnedFd::from(stream)])
            .err()
            .unwrap();
        assert!(format!("{e:#}").contains("not listening"), "{e:#}");
        let (unix, _) = std::os::unix::net::UnixStream::pair().unwrap();
        assert!(Listeners::from_fds(vec![OwnedFd::from(unix)]).is_err());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn udp_over_ipv4_and_ipv6() {
        let server = start(&["127.0.0.1:0", "[::1]:0"], LIMITS);
        for &addr in server.local_addrs() {
            let client = udp_client(addr).await;
            let answer = udp_exchange(&client, &query(7, "www.example.test.", RecordType::A))
                .await
                .unwrap_or_else(|| panic!("no answer from {addr}"));
            assert_eq!(answer.id(), 7);
            assert_eq!(a_records(&answer), [Ipv4Addr::new(192, 0, 2, 10)]);
            let nodata = udp_exchange(&client, &query(8, "www.example.test.", RecordType::MX))
                .await
                .unwrap();
            assert_eq!(nodata.response_code(), ResponseCode::NoError);
            assert_eq!(nodata.name_servers().len(), 1);
            // A response is never answered.
            let mut response = query(9, "www.example.test.", RecordType::A);
            response[2] |= 0x80;
            assert!(udp_exchange(&client, &response).await.is_none());
        }
        let stats = server.stats();
        assert_eq!(stats.udp_queries.load(Ordering::Relaxed), 6);
        assert_eq!(stats.udp_answers.load(Ordering::Relaxed), 4);
        // Each answer counted once, by what it said.
        let kinds: Vec<u64> = stats
            .udp_responses
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        assert_eq!(kinds, [2, 2, 0, 0, 0, 0, 0, 0], "A and MX on two sockets");
        server.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn wildcard_sockets_answer_from_the_queried_address() {
        // Both wildcards on one port: the IPv6 socket is IPv6-only.
        let mut both = None;
        for _ in 0..20 {
            let v4 = Listeners::bind(&["0.0.0.0:0".parse().unwrap()], false).unwrap();
            let port = v4.local_addrs()[0].port();
            if let Ok(v6) = Listeners::bind(
                &[SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), port)],
                false,
            ) {
                both = Some(Listeners {
                    udp: v4.udp.into_iter().chain(v6.udp).collect(),
                    tcp: v4.tcp.into_iter().chain(v6.tcp).collect(),
                });
                break;
            }
        }
        let listeners = both.expect("a port free on 0.0.0.0 and [::]");
        let server = Server::start(listeners, responder(), LIMITS).unwrap();
        let v4 = server.local_addrs()[0];
        for ip in ["127.0.0.1", "127.0.0.2", "127.0.1.1", "::1"] {
            let target = SocketAddr::new(ip.parse().unwrap(), v4.port());
            // The client's own address is 127.0.0.1 whichever 127/8 address it
            // queries; a reply from 127.0.0.1 to a query for 127.0.0.2 would
            // be dropped by the connected socket.
            let client = udp_client(target).await;
            let answer = udp_exchange(&client, &query(1, "www.example.test.", RecordType::A)).await;
            assert!(answer.is_some(), "no answer from {target}");
        }
        server.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tcp_answers_several_queries_per_connection_in_order() {
        let server = start(&["127.0.0.1:0", "[::1]:0"], LIMITS);
        for &addr in server.local_addrs() {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            // Three queries in one write (pipelined), one of them too big for UDP.
            let mut out = framed(&query(1, "www.example.test.", RecordType::A));
            out.extend(framed(&query(2, BIG, RecordType::AAAA)));
            out.extend(framed(&query(3, "nope.example.test.", RecordType::A)));
            stream.write_all(&out).await.unwrap();
            let first = tcp_read(&mut stream).await.unwrap();
            assert_eq!((first.id(), a_records(&first).len()), (1, 1));
            let second = tcp_read(&mut stream).await.unwrap();
            assert_eq!(second.id(), 2);
            assert!(!second.truncated());
            assert_eq!(second.answers().len(), 16, "whole over TCP");
            let third = tcp_read(&mut stream).await.unwrap();
            assert_eq!(
                (third.id(), third.response_code()),
                (3, ResponseCode::NXDomain)
            );
            // A query split across writes.
            let q = framed(&query(4, "www.example.test.", RecordType::A));
            stream.write_all(&q[..5]).await.unwrap();
            tokio::time::sleep(Duration::from_millis(50)).await;
            stream.write_all(&q[5..]).await.unwrap();
            assert_eq!(tcp_read(&mut stream).await.unwrap().id(), 4);
            // Something that gets no answer (a response) closes the connection.
            let mut response = query(5, "www.example.test.", RecordType::A);
            response[2] |= 0x80;
            stream.write_all(&framed(&response)).await.unwrap();
            assert!(tcp_read(&mut stream).await.is_none(), "closed");
        }
        // The same big answer over UDP is truncated.
        let client = udp_client(server.local_addrs()[0]).await;
        let udp = udp_exchange(&client, &query(6, BIG, RecordType::AAAA))
            .await
            .unwrap();
        assert!(udp.truncated());
        assert!(udp.answers().is_empty());
        server.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn idle_tcp_connections_are_closed() {
        let idle = Duration::from_millis(300);
        let server = start(
            &["127.0.0.1:0"],
            TcpLimits {
                idle_timeout: idle,
                max_connections: 4,
            },
        );
        let addr = server.local_addrs()[0];
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(&framed(&query(1, "www.example.test.", RecordType::A)))
            .await
            .unwrap();
        assert!(tcp_read(&mut stream).await.is_some());
        // Idle from here: closed after `idle`, not before.
        let since = Instant::now();
        let mut byte = [0u8; 1];
        let n = tokio::time::timeout(WAIT, stream.read(&mut byte))
            .await
            .expect("closed within the limit")
            .unwrap_or(0);
        assert_eq!(n, 0, "the server closed the connection");
        let took = since.elapsed();
        assert!(took >= idle - Duration::from_millis(20), "{took:?}");
        // Half a message then silence counts as idle too.
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(&[0, 40, 1, 2]).await.unwrap();
        let n = tokio::time::timeout(WAIT, stream.read(&mut byte))
            .await
            .expect("closed within the limit")
            .unwrap_or(0);
        assert_eq!(n, 0);
        server.stop().await;
    }

    /// A TCP connection to `server` from the loopback address `source`
    /// (127/8 is all local: different /24s are different source prefixes).
    async fn tcp_connect_from(source: &str, server: SocketAddr) -> io::Result<TcpStream> {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind(SocketAddr::new(source.parse().unwrap(), 0))?;
        socket.connect(server).await
    }

    async fn tcp_ask(stream: &mut TcpStream, id: u16) -> Option<Message> {
        stream
            .write_all(&framed(&query(id, "www.example.test.", RecordType::A)))
            .await
            .ok()?;
        tcp_read(stream).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_table_closes_the_idlest_connection_of_the_heaviest_prefix() {
        let server = start(
            &["127.0.0.1:0"],
            TcpLimits {
                idle_timeout: Duration::from_secs(5),
                max_connections: 3,
            },
        );
        let addr = server.local_addrs()[0];
        // Two from one prefix (the first answered earliest: the idlest), one
        // from another: the table is full.
        let mut a1 = tcp_connect_from("127.0.0.2", addr).await.unwrap();
        assert!(tcp_ask(&mut a1, 1).await.is_some());
        let mut a2 = tcp_connect_from("127.0.0.3", addr).await.unwrap();
        assert!(tcp_ask(&mut a2, 2).await.is_some());
        let mut b = tcp_connect_from("127.0.1.1", addr).await.unwrap();
        assert!(tcp_ask(&mut b, 3).await.is_some());
        // A newcomer is served, and the idlest of the heaviest prefix closed.
        let mut c = tcp_connect_from("127.0.2.1", addr).await.unwrap();
        assert_eq!(tcp_ask(&mut c, 4).await.unwrap().id(), 4);
        assert!(tcp_read(&mut a1).await.is_none(), "evicted: closed");
        assert_eq!(server.stats().tcp_evicted.load(Ordering::Relaxed), 1);
        // The cap holds: the others are still open and answered.
        assert_eq!(tcp_ask(&mut a2, 5).await.unwrap().id(), 5);
        assert_eq!(tcp_ask(&mut b, 6).await.unwrap().id(), 6);
        assert_eq!(tcp_ask(&mut c, 7).await.unwrap().id(), 7);
        assert_eq!(server.stats().tcp_evicted.load(Ordering::Relaxed), 1);
        // Three more: each makes room by closing one, and the cap holds.
        let mut c2 = tcp_connect_from("127.0.2.2", addr).await.unwrap();
        assert!(tcp_ask(&mut c2, 8).await.is_some());
        let mut c3 = tcp_connect_from("127.0.2.3", addr).await.unwrap();
        assert!(tcp_ask(&mut c3, 9).await.is_some());
        let mut c4 = tcp_connect_from("127.0.2.4", addr).await.unwrap();
        assert!(tcp_ask(&mut c4, 10).await.is_some());
        assert_eq!(server.stats().tcp_evicted.load(Ordering::Relaxed), 4);
        let mut open = 0;
        for (mut stream, id) in [(a2, 11), (b, 12), (c, 13), (c2, 14), (c3, 15)] {
            open += usize::from(tcp_ask(&mut stream, id).await.is_some());
        }
        assert_eq!(open, 2, "three open in all");
        assert_eq!(tcp_ask(&mut c4, 16).await.unwrap().id(), 16);
        server.stop().await;
    }

    /// One source holds more idle connections than the cap and reconnects
    /// as fast as they close; another source is still served over TCP.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_connection_flood_from_one_source_does_not_shut_out_another() {
        const CAP: u32 = 16;
        const HELD: usize = 200;
        const QUERIES: u16 = 200;
        let server = start(
            &["127.0.0.1:0"],
            TcpLimits {
                idle_timeout: Duration::from_secs(5),
                max_connections: CAP,
            },
        );
        let addr = server.local_addrs()[0];
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        // The flooder: several /24s (so the table itself is full, not just
        // one prefix's share), never a query; bounded in count and time.
        let flooder = tokio::spawn({
            let stop = stop.clone();
            async move {
                let sources = [
                    "127.0.0.2",
                    "127.0.3.2",
                    "127.0.4.2",
                    "127.0.5.2",
                    "127.0.6.2",
                ];
                let deadline = Instant::now() + Duration::from_secs(30);
                let mut held = std::collections::VecDeque::new();
                let mut opened = 0usize;
                while opened < 20_000 && Instant::now() < deadline && !stop.load(Ordering::Relaxed)
                {
                    let source = sources[opened % sources.len()];
                    if let Ok(stream) = tcp_connect_from(source, addr).await {
                        held.push_back(stream);
                    }
                    opened += 1;
                    if opened.is_multiple_of(16) {
                        // Keep what the server keeps, forget what it closed.
                        held.retain(|s: &TcpStream| {
                            let mut byte = [0u8; 1];
                            matches!(s.try_read(&mut byte), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
                        });
                    }
                    if held.len() > HELD {
                        held.pop_front();
                    }
                    tokio::task::yield_now().await;
                }
                opened
            }
        });
        // Let the flood fill the table first.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut answered = 0u32;
        for id in 0..QUERIES {
            let Ok(mut stream) = tcp_connect_from("127.0.1.1", addr).await else {
                continue;
            };
            let asked = async {
                stream
                    .write_all(&framed(&query(id, "www.example.test.", RecordType::A)))
                    .await
                    .ok()?;
                let mut prefix = [0u8; 2];
                stream.read_exact(&mut prefix).await.ok()?;
                let mut msg = vec![0u8; u16::from_be_bytes(prefix) as usize];
                stream.read_exact(&mut msg).await.ok()?;
                Message::from_vec(&msg).ok()
            };
            if let Ok(Some(m)) = tokio::time::timeout(WAIT, asked).await
                && m.id() == id
            {
                answered += 1;
            }
        }
        stop.store(true, Ordering::Relaxed);
        let opened = flooder.await.unwrap();
        let evicted = server.stats().tcp_evicted.load(Ordering::Relaxed);
        eprintln!(
            "flood: {opened} connections opened, {evicted} evicted; {answered}/{QUERIES} answered"
        );
        assert!(opened > CAP as usize * 2, "the flood ran: {opened}");
        assert!(
            answered * 100 >= u32::from(QUERIES) * 99,
            "{answered}/{QUERIES} answered"
        );
        server.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_taken_port_is_a_clear_error_and_stop_frees_it() {
        let server = start(&["127.0.0.1:0"], LIMITS);
        let addr = server.local_addrs()[0];
        let error = match Listeners::bind(&[addr], false) {
            Ok(_) => panic!("bound {addr} twice"),
            Err(e) => format!("{e:#}"),
        };
        assert!(
            error.contains(&format!("binding UDP {addr}")) && error.contains("another DNS server"),
            "{error}"
        );
        server.stop().await;
        let again = Listeners::bind(&[addr], false).expect("free after stop");
        assert_eq!(again.local_addrs(), [addr]);
    }
}
