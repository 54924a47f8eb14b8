//! Shared fixtures for the system tests and the benchmarks.
//!
//! [`Netns`] builds a server and a client network namespace joined by a veth
//! pair, runs the agent and the demo endpoints inside the server namespace and
//! tears everything down again, panics included. [`dns::DnsClient`] sends real
//! DNS queries from the client namespace, fast enough to poll every 10 ms;
//! [`dig`] runs dig and kdig there and parses what they print
//! ([`dig::dig`], [`dig::dig_until`]). [`AgentConfig`] builds the agent's
//! configuration file; [`CountingListener`] stands in for an endpoint and
//! counts the checks that reach it; [`certs`] makes self-signed certificates;
//! [`peers`] runs DNS servers no one here wrote (Knot DNS, unbound);
//! [`webhook`] receives the agent's webhook notifications.
//! [`cluster::ClusterNet`] runs several agents agreeing through a real etcd.
//! [`packets`], [`xdp`], [`r#gen`], [`compare`] and [`mutation`] drive the
//! XDP program directly, for its tests and fuzzers.
//!
//! All traffic stays on loopback or inside the namespaces these fixtures
//! create.

pub mod certs;
pub mod cluster;
pub mod compare;
pub mod config;
pub mod dig;
pub mod dns;
pub mod flood;
// `gen` is a reserved word in edition 2024.
pub mod r#gen;
pub mod listeners;
pub mod load;
pub mod mutation;
pub mod netns;
pub mod packets;
pub mod peers;
pub mod web;
pub mod webhook;
pub mod xdp;

pub use config::{AgentConfig, CheckSpec, EndpointSpec, RecordSpec, ZoneSpec};
pub use dns::{DnsAnswer, DnsClient};
pub use listeners::CountingListener;
pub use netns::{CLIENT_ADDR, DNS_SERVER_ADDR, Netns};

use std::{
    fs::File,
    os::fd::AsRawFd as _,
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

/// Runs `f` on a fresh thread that has joined the network namespace `ns`
/// (`/var/run/netns/<ns>`). Only that thread moves; sockets it creates stay in
/// `ns` after it returns, so they can be handed back and used from anywhere.
pub fn in_netns<T, F>(ns: &str, f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    let path = PathBuf::from("/var/run/netns").join(ns);
    std::thread::spawn(move || -> Result<T> {
        let file = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
        // SAFETY: plain syscall on a valid fd; CLONE_NEWNET moves only this thread.
        if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("setns into {}", path.display()));
        }
        f()
    })
    .join()
    .map_err(|_| anyhow::anyhow!("thread inside netns {ns} panicked"))?
}

/// Polls `probe` every `every` until it yields `Some`, at most for `limit`.
pub fn poll_until<T>(
    limit: Duration,
    every: Duration,
    mut probe: impl FnMut() -> Result<Option<T>>,
) -> Result<Option<T>> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = probe()? {
            return Ok(Some(v));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(every);
    }
}

/// The agent binary built by this crate (`failover-agent-under-test`) next to
/// the running executable: how the benchmark, which has no CARGO_BIN_EXE, finds it.
pub fn agent_next_to_current_exe() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the running executable")?;
    let dir = exe.parent().context("executable has no parent directory")?;
    let agent = dir.join("failover-agent-under-test");
    if !agent.is_file() {
        bail!(
            "{} is missing: build it with `cargo build --release -p failover-tests --bins`",
            agent.display()
        );
    }
    Ok(agent)
}

/// Whether this process can create namespaces and attach XDP.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}
