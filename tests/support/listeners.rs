//! TCP listeners that stand in for endpoints: they accept connections and
//! count them (how many checks really reached the address), then close them
//! at once or hold them open without a byte (a server that hangs).

use std::{
    net::{SocketAddr, TcpListener, TcpStream},
    os::fd::AsRawFd as _,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::JoinHandle,
    time::Duration,
};

use anyhow::{Context as _, Result};

use crate::in_netns;

/// Where and how a [`CountingListener`] listens.
#[derive(Clone, Debug)]
pub struct ListenerOptions {
    addr: SocketAddr,
    netns: Option<String>,
    hang: bool,
    backlog: Option<i32>,
    threads: usize,
}

impl ListenerOptions {
    /// On `addr` (port 0: any free port) in this process's namespace,
    /// closing every connection at once, on one thread.
    pub fn new(addr: impl Into<SocketAddr>) -> Self {
        Self {
            addr: addr.into(),
            netns: None,
            hang: false,
            backlog: None,
            threads: 1,
        }
    }

    /// Binds inside the network namespace `ns` (`/var/run/netns/<ns>`).
    pub fn netns(mut self, ns: &str) -> Self {
        self.netns = Some(ns.to_string());
        self
    }

    /// Holds every accepted connection open, silent, until dropped.
    pub fn hang(mut self) -> Self {
        self.hang = true;
        self
    }

    /// A listen backlog of `n`: checks arriving in bursts would otherwise
    /// lose SYNs, which fails checks and measures the listener, not the agent.
    pub fn backlog(mut self, n: i32) -> Self {
        self.backlog = Some(n);
        self
    }

    /// Accepts on `n` threads.
    pub fn threads(mut self, n: usize) -> Self {
        self.threads = n.max(1);
        self
    }

    pub fn start(self) -> Result<CountingListener> {
        let addr = self.addr;
        let bind = move || TcpListener::bind(addr).with_context(|| format!("binding {addr}"));
        let listener = match &self.netns {
            Some(ns) => in_netns(ns, bind).with_context(|| format!("in namespace {ns}"))?,
            None => bind()?,
        };
        listener.set_nonblocking(true)?;
        if let Some(backlog) = self.backlog {
            // SAFETY: listen(2) on a socket we own; listening again sets the backlog.
            if unsafe { libc::listen(listener.as_raw_fd(), backlog) } != 0 {
                return Err(std::io::Error::last_os_error()).context("listen backlog");
            }
        }
        let addr = listener.local_addr()?;
        let listener = Arc::new(listener);
        let accepted = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..self.threads)
            .map(|_| {
                let (listener, count, halt) = (listener.clone(), accepted.clone(), stop.clone());
                let hang = self.hang;
                std::thread::spawn(move || accept_loop(&listener, &count, &halt, hang))
            })
            .collect();
        Ok(CountingListener {
            addr,
            accepted,
            stop,
            threads,
        })
    }
}

/// Accepts until `halt`, counting; holds the streams if `hang`.
fn accept_loop(listener: &TcpListener, count: &AtomicU64, halt: &AtomicBool, hang: bool) {
    let mut held: Vec<TcpStream> = Vec::new();
    let mut pfd = libc::pollfd {
        fd: listener.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    while !halt.load(Ordering::Relaxed) {
        // SAFETY: poll(2) on one live pollfd; at most 100 ms, so `halt` is seen.
        unsafe { libc::poll(&mut pfd, 1, 100) };
        while let Ok((stream, _)) = listener.accept() {
            count.fetch_add(1, Ordering::Relaxed);
            if hang {
                held.push(stream);
            }
        }
    }
}

/// A listener counting the connections it accepts; stops (and closes what it
/// holds) when dropped.
pub struct CountingListener {
    addr: SocketAddr,
    accepted: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl CountingListener {
    /// Accepts and closes on `addr` in this process's namespace.
    pub fn start(addr: impl Into<SocketAddr>) -> Result<Self> {
        ListenerOptions::new(addr).start()
    }

    /// Accepts and holds open on `addr` in this process's namespace.
    pub fn hanging(addr: impl Into<SocketAddr>) -> Result<Self> {
        ListenerOptions::new(addr).hang().start()
    }

    /// Accepts and closes on `addr` in the network namespace `ns`.
    pub fn in_netns(ns: &str, addr: impl Into<SocketAddr>) -> Result<Self> {
        ListenerOptions::new(addr).netns(ns).start()
    }

    /// The bound address (the port chosen if it was 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections accepted so far.
    pub fn count(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Connections accepted during `span` from now (sleeps through it).
    pub fn count_over(&self, span: Duration) -> u64 {
        let before = self.count();
        std::thread::sleep(span);
        self.count() - before
    }
}

impl Drop for CountingListener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn counts_and_hangs() {
        let closing = CountingListener::start((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let hanging = CountingListener::hanging((Ipv4Addr::LOCALHOST, 0)).unwrap();
        for _ in 0..3 {
            drop(TcpStream::connect(closing.addr()).unwrap());
        }
        let mut held = TcpStream::connect(hanging.addr()).unwrap();
        let wait = |l: &CountingListener, n: u64| {
            crate::poll_until(Duration::from_secs(2), Duration::from_millis(5), || {
                Ok((l.count() == n).then_some(()))
            })
            .unwrap()
            .unwrap_or_else(|| panic!("{} accepted, want {n}", l.count()))
        };
        wait(&closing, 3);
        wait(&hanging, 1);
        // Held open without a byte: a read times out instead of seeing EOF.
        held.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let mut buf = [0u8; 1];
        let read = std::io::Read::read(&mut held, &mut buf);
        assert!(read.is_err(), "{read:?}");
    }
}
