//! Everything outside Rust the tests, demo and benchmarks run, installed from
//! Debian packages when missing; `prereqs` adds the eBPF toolchain.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context as _, Result, bail};

use crate::{host::is_root, process::run, toolchain::ensure_ebpf_toolchain};

/// Commands the tests and benchmarks run, with the Debian package that has each.
/// kdig, unbound and Knot are the real clients and servers of tests/real_clients.rs;
/// nginx and openssl (a self-signed certificate) serve the http/https checks of
/// tests/checks.rs; systemd-analyze verifies the unit files of `dist/`;
/// Prometheus (with promtool) scrapes the agent and headless Chromium opens
/// its status page in tests/http_endpoint.rs; etcd and etcdctl are the
/// store the agents of tests/cluster.rs agree through; protoc builds the
/// etcd client's gRPC code (failover-agent's build needs it). kxdpgun (the
/// AF_XDP load generator, shipped with kdig) and NSD are the generator and one
/// of the peers of `cargo xtask bench peers`.
const DEBIAN_COMMANDS: &[(&str, &str)] = &[
    ("dig", "bind9-dnsutils"),
    ("nginx", "nginx"),
    ("openssl", "openssl"),
    ("ip", "iproute2"),
    ("ethtool", "ethtool"),
    ("kdig", "knot-dnsutils"),
    ("kxdpgun", "knot-dnsutils"),
    ("unbound", "unbound"),
    ("unbound-checkconf", "unbound"),
    ("knotd", "knot"),
    ("knotc", "knot"),
    ("systemd-analyze", "systemd"),
    ("prometheus", "prometheus"),
    ("promtool", "prometheus"),
    ("chromium", "chromium"),
    ("etcd", "etcd-server"),
    ("etcdctl", "etcd-client"),
    ("protoc", "protobuf-compiler"),
    ("nsd", "nsd"),
    ("nsd-checkconf", "nsd"),
    ("dnsperf", "dnsperf"),
];

/// Packages above that ship a service: on a host where apt starts services
/// (systemd without a policy-rc.d), installing them starts one in the root
/// namespace, which the tests never use (they run their own in namespaces).
const DEBIAN_SERVICES: &[(&str, &str)] = &[
    ("unbound", "unbound"),
    ("knot", "knot"),
    ("nginx", "nginx"),
    ("prometheus", "prometheus"),
    ("etcd-server", "etcd"),
    ("nsd", "nsd"),
];

/// `command -v`: the first executable file called `name` on PATH, or in
/// /usr/sbin and /sbin (where daemons live; a non-login PATH may lack them).
fn find_on_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| {
            p.metadata()
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}

/// Installs the packages of whichever commands above are missing (needs root).
fn ensure_debian_packages() -> Result<()> {
    let missing: Vec<(&str, &str)> = DEBIAN_COMMANDS
        .iter()
        .copied()
        .filter(|(cmd, _)| find_on_path(cmd).is_none())
        .collect();
    if missing.is_empty() {
        let all: Vec<&str> = DEBIAN_COMMANDS.iter().map(|(c, _)| *c).collect();
        eprintln!("xtask: {}: present", all.join(", "));
        return Ok(());
    }
    let commands: Vec<&str> = missing.iter().map(|(c, _)| *c).collect();
    let mut packages: Vec<&str> = missing.iter().map(|(_, p)| *p).collect();
    packages.sort_unstable();
    packages.dedup();
    let how = format!("apt-get install -y {}", packages.join(" "));
    eprintln!(
        "xtask: missing commands: {}; installing Debian packages {}",
        commands.join(", "),
        packages.join(" ")
    );
    if !is_root() {
        bail!(
            "missing {} and not root, so cannot install; run as root: `{how}`",
            commands.join(", ")
        );
    }
    if find_on_path("apt-get").is_none() {
        bail!(
            "missing {} and there is no apt-get (not Debian/Ubuntu?); install the commands \
             {} with your package manager",
            commands.join(", "),
            commands.join(", ")
        );
    }
    run(Command::new("apt-get")
        .arg("update")
        .stdin(Stdio::null())
        .env("DEBIAN_FRONTEND", "noninteractive"))
    .context("`apt-get update` failed (no network or no reachable mirror?)")?;
    run(Command::new("apt-get")
        .args(["install", "-y", "--no-install-recommends"])
        .args(&packages)
        .stdin(Stdio::null())
        .env("DEBIAN_FRONTEND", "noninteractive"))
    .with_context(|| format!("`{how}` failed"))?;
    let still: Vec<&str> = commands
        .iter()
        .copied()
        .filter(|c| find_on_path(c).is_none())
        .collect();
    if !still.is_empty() {
        bail!(
            "installed {} but {} still not on PATH ({})",
            packages.join(" "),
            still.join(", "),
            std::env::var("PATH").unwrap_or_default()
        );
    }
    for (package, service) in DEBIAN_SERVICES {
        if packages.contains(package) {
            eprintln!(
                "xtask: note: if apt started the {service} service, the tests do not need it \
                 (they run their own {service} in network namespaces): \
                 `systemctl disable --now {service}`"
            );
        }
    }
    Ok(())
}

/// What the tests, demo and benchmarks need before they build anything.
pub fn prereqs(root: &Path) -> Result<()> {
    ensure_ebpf_toolchain(root)?;
    ensure_debian_packages()
}
