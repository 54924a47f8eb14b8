//! The built-in demo: `failover-agent demo-endpoint`, a tiny TCP/HTTP endpoint,
//! and the child processes `run` starts with the default configuration.

use std::net::{SocketAddr, TcpStream as StdTcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use log::{debug, info, warn};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// How long a client may take to send its request before it gets the answer anyway.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// Accepts connections on `listen` forever and answers each with a tiny
/// `HTTP/1.0 200 OK` (so `curl` works), then closes it. A health check that
/// connects and closes costs one accept.
pub async fn serve(listen: SocketAddr) -> Result<()> {
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    info!(
        "demo endpoint listening on {listen} (pid {})",
        std::process::id()
    );
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                debug!("connection from {peer}");
                tokio::spawn(respond(stream, listen));
            }
            Err(e) => {
                // E.g. out of file descriptors: back off instead of spinning.
                warn!("accept on {listen}: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn respond(mut stream: TcpStream, listen: SocketAddr) {
    // Read the request head first: closing a socket with unread data sends a
    // RST, which can destroy the response before the client reads it.
    let mut buf = [0u8; 8192];
    let mut len = 0;
    let _ = tokio::time::timeout(REQUEST_TIMEOUT, async {
        while len < buf.len() {
            match stream.read(&mut buf[len..]).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    len += n;
                    if buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
            }
        }
    })
    .await;
    let body = format!("failover demo endpoint {listen}\n");
    let response = format!(
        "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    // A health check has usually closed already: write errors are expected.
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// Demo endpoints running as child processes of the agent. Dropping this
/// kills them (by the PIDs it holds) and reaps them.
pub struct DemoEndpoints {
    exe: PathBuf,
    children: Vec<(SocketAddr, Child)>,
}

impl DemoEndpoints {
    /// Starts `failover-agent demo-endpoint --listen ADDR` for each address and
    /// waits until each accepts connections, so the first round of checks finds
    /// them up. Must be called from the main thread (see below).
    pub fn start(listen: &[SocketAddr]) -> Result<DemoEndpoints> {
        let exe = std::env::current_exe().context("finding the agent's own executable")?;
        let mut demo = DemoEndpoints {
            exe,
            children: Vec::new(),
        };
        let parent = std::process::id();
        for &addr in listen {
            let mut command = Command::new(&demo.exe);
            command
                .arg("demo-endpoint")
                .arg("--listen")
                .arg(addr.to_string())
                // Own process group: a Ctrl-C in the terminal reaches only the
                // agent, which then stops its children itself.
                .process_group(0);
            // SAFETY: prctl and getppid are async-signal-safe; nothing else runs
            // between fork and exec.
            unsafe {
                command.pre_exec(move || {
                    // If the agent dies without cleaning up (SIGKILL, crash), the
                    // child gets SIGTERM. The signal follows the thread that
                    // forked, hence "main thread" above.
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    if libc::getppid() as u32 != parent {
                        return Err(std::io::Error::other("the agent exited"));
                    }
                    Ok(())
                });
            }
            let child = command
                .spawn()
                .with_context(|| format!("starting the demo endpoint {addr}"))?;
            demo.children.push((addr, child));
        }
        for (addr, child) in &mut demo.children {
            wait_listening(*addr, child)?;
        }
        Ok(demo)
    }

    /// (listen address, PID) of each child.
    pub fn pids(&self) -> Vec<(SocketAddr, u32)> {
        self.children.iter().map(|(a, c)| (*a, c.id())).collect()
    }

    /// The command line that starts the endpoint for `addr` again.
    pub fn command_line(&self, addr: SocketAddr) -> String {
        format!("{} demo-endpoint --listen {addr}", self.exe.display())
    }
}

fn wait_listening(addr: SocketAddr, child: &mut Child) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(status) = child.try_wait()? {
            bail!("the demo endpoint {addr} exited ({status}) before listening: is {addr} in use?");
        }
        if StdTcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!(
                "the demo endpoint {addr} (pid {}) is not listening after 5s",
                child.id()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for DemoEndpoints {
    fn drop(&mut self) {
        for (addr, child) in &mut self.children {
            // Until we reap it, a child that was killed by hand stays a zombie
            // holding its PID, so this never signals an unrelated process.
            if let Ok(None) = child.try_wait()
                && let Err(e) = child.kill()
            {
                warn!(
                    "stopping the demo endpoint {addr} (pid {}): {e}",
                    child.id()
                );
            }
            match child.wait() {
                Ok(status) => debug!("demo endpoint {addr} (pid {}) {status}", child.id()),
                Err(e) => warn!("reaping the demo endpoint {addr} (pid {}): {e}", child.id()),
            }
        }
        if !self.children.is_empty() {
            info!("demo endpoints stopped");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read as _, Write as _};

    #[tokio::test]
    async fn answers_http_and_survives_bare_connects() {
        // serve() binds itself: find a free port first.
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = probe.local_addr().unwrap();
        drop(probe);
        let server = tokio::spawn(serve(addr));
        let deadline = Instant::now() + Duration::from_secs(2);
        // A bare connect-and-close, like a health check, must not hurt it.
        while TcpStream::connect(addr).await.is_err() {
            assert!(Instant::now() < deadline, "demo endpoint not listening");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let text = tokio::task::spawn_blocking(move || {
            let mut s = StdTcpStream::connect(addr).unwrap();
            s.write_all(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
            let mut text = String::new();
            s.read_to_string(&mut text).unwrap();
            text
        })
        .await
        .unwrap();
        assert!(text.starts_with("HTTP/1.0 200 OK\r\n"), "{text:?}");
        assert!(
            text.ends_with(&format!("failover demo endpoint {addr}\n")),
            "{text:?}"
        );
        server.abort();
    }
}
