//! Self-signed TLS certificates for the servers the https checks probe.

use std::{
    net::IpAddr,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context as _, Result, bail};

/// A certificate and its key, PEM files.
#[derive(Clone, Debug)]
pub struct SelfSigned {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl SelfSigned {
    /// Writes `cert.pem` and `key.pem` into `dir`: a P-256 certificate for
    /// `common_name`, valid two days for the DNS names and addresses given.
    /// It is a leaf, not a CA, so a check trusts it by naming the
    /// certificate itself as its `ca_file`.
    pub fn create(
        dir: &Path,
        common_name: &str,
        dns_names: &[&str],
        addresses: &[IpAddr],
    ) -> Result<Self> {
        let cert = dir.join("cert.pem");
        let key = dir.join("key.pem");
        let alt_names: Vec<String> = dns_names
            .iter()
            .map(|n| format!("DNS:{n}"))
            .chain(addresses.iter().map(|a| format!("IP:{a}")))
            .collect();
        let status = Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec"])
            .args(["-pkeyopt", "ec_paramgen_curve:prime256v1"])
            .args(["-nodes", "-days", "2"])
            .arg("-subj")
            .arg(format!("/CN={common_name}"))
            .arg("-addext")
            .arg(format!("subjectAltName={}", alt_names.join(",")))
            .args(["-addext", "basicConstraints=critical,CA:FALSE"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .context("running openssl (`cargo xtask prereqs` installs it)")?;
        if !status.success() {
            bail!("openssl req failed ({status})");
        }
        Ok(Self { cert, key })
    }
}
