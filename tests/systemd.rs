//! Running under systemd: the unit files in `dist/` verify, and the agent
//! speaks the notify protocol to a socket this test plays systemd on:
//! READY=1 only once it answers, WATCHDOG=1 while its loop turns,
//! RELOADING=1 and READY=1 around a reload, STOPPING=1 at shutdown. Needs
//! root (`cargo xtask test`).

use std::{
    net::SocketAddrV4,
    os::unix::net::UnixDatagram,
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use failover_tests::{
    AgentConfig, CheckSpec, Netns,
    dig::{UDP, dig, dig_until},
    is_root,
    netns::ENDPOINT_ADDRS,
};

const AGENT: &str = env!("CARGO_BIN_EXE_failover-agent-under-test");

#[test]
fn unit_files_verify() {
    // `verify` wants the programs the units run to exist: this build's.
    let dir = std::env::temp_dir().join(format!("failover-units-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let dist = Path::new(env!("CARGO_MANIFEST_DIR")).join("../dist");
    for unit in ["failover-agent.service", "failover-agent.socket"] {
        let text = std::fs::read_to_string(dist.join(unit)).unwrap();
        std::fs::write(
            dir.join(unit),
            text.replace("/usr/bin/failover-agent", AGENT),
        )
        .unwrap();
    }
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(dir.join("failover-agent.service"))
        .arg(dir.join("failover-agent.socket"))
        .output()
        .expect("systemd-analyze (installed by the prerequisites)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.trim().is_empty(), "systemd-analyze verify: {stderr}");
}

/// The messages the agent sent, each as a string, as they arrive.
struct NotifySocket {
    socket: UnixDatagram,
}

impl NotifySocket {
    fn bind(path: &Path) -> NotifySocket {
        let socket = UnixDatagram::bind(path).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        NotifySocket { socket }
    }

    /// Every message within `within` (or until one contains `until`).
    fn collect(&self, within: Duration, until: Option<&str>) -> Vec<String> {
        let deadline = Instant::now() + within;
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            if let Ok(n) = self.socket.recv(&mut buf) {
                let message = String::from_utf8_lossy(&buf[..n]).to_string();
                let done = until.is_some_and(|u| message.contains(u));
                out.push(message);
                if done {
                    break;
                }
            }
        }
        out
    }
}

fn count(messages: &[String], state: &str) -> usize {
    messages
        .iter()
        .flat_map(|m| m.lines())
        .filter(|l| *l == state)
        .count()
}

#[test]
fn the_agent_tells_systemd_ready_watchdog_reloading_and_stopping() {
    assert!(
        is_root(),
        "needs root (namespaces, veth, XDP): run `cargo xtask test`"
    );
    let mut netns = Netns::new(AGENT).expect("creating the namespaces");
    let endpoint = ENDPOINT_ADDRS[0];
    netns
        .start_endpoint(SocketAddrV4::new(endpoint, 80))
        .expect("starting the endpoint");
    let check =
        CheckSpec::tcp(80).timing(Duration::from_millis(500), Duration::from_millis(100), 1, 1);
    let config = AgentConfig::failover(30, &[(endpoint, 1)], check);
    let path = netns.write_config("agent.toml", &config.to_toml()).unwrap();
    let notify_path = netns.workdir().join("notify.sock");
    let notify = NotifySocket::bind(&notify_path);
    netns
        .start_agent_with_env(
            &path,
            &[],
            &[
                ("NOTIFY_SOCKET", notify_path.to_str().unwrap()),
                ("WATCHDOG_USEC", "1000000"),
            ],
        )
        .expect("starting the agent");
    let started = notify.collect(Duration::from_secs(10), Some("READY=1"));
    assert_eq!(count(&started, "READY=1"), 1, "{started:?}");
    // Ready means answering.
    let answer = dig(&netns, "www.example.test.", UDP);
    assert_eq!(answer.addrs(), [endpoint], "{answer:?}");

    // The loop turns (a tick a second): pings while it does.
    let pings = notify.collect(Duration::from_secs(3), None);
    assert!(count(&pings, "WATCHDOG=1") >= 2, "{pings:?}");

    // SAFETY: kill(2) on the pid of the agent, our own running child.
    let pid = netns.agent_pid().unwrap() as i32;
    assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
    let reload = notify.collect(Duration::from_secs(5), Some("READY=1"));
    let lines: Vec<&str> = reload.iter().flat_map(|m| m.lines()).collect();
    let reloading = lines.iter().position(|l| *l == "RELOADING=1");
    let ready = lines.iter().rposition(|l| *l == "READY=1");
    assert!(
        reloading.is_some() && ready > reloading,
        "RELOADING=1 then READY=1: {reload:?}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("MONOTONIC_USEC=")),
        "{reload:?}"
    );
    dig_until(
        &netns,
        "www.example.test.",
        &[UDP],
        "after the reload",
        |d| d.addrs() == [endpoint],
    );

    let status = netns.stop_agent().expect("stopping the agent");
    assert!(status.success(), "{status:?}");
    let stop = notify.collect(Duration::from_secs(1), None);
    assert_eq!(count(&stop, "STOPPING=1"), 1, "{stop:?}");
}
