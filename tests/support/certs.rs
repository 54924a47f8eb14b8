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

/// A certificate authority for TLS with client certificates (etcd's
/// `--trusted-ca-file` and `--client-cert-auth`): its own certificate and
/// key, and leaves it signs.
#[derive(Clone, Debug)]
pub struct Ca {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Ca {
    /// Writes `NAME.pem` and `NAME.key` into `dir`: a P-256 CA valid two days.
    pub fn create(dir: &Path, name: &str) -> Result<Self> {
        let cert = dir.join(format!("{name}.pem"));
        let key = dir.join(format!("{name}.key"));
        openssl(
            Command::new("openssl")
                .args(["req", "-x509", "-newkey", "ec"])
                .args(["-pkeyopt", "ec_paramgen_curve:prime256v1"])
                .args(["-nodes", "-days", "2"])
                .arg("-subj")
                .arg(format!("/CN={name}"))
                .args(["-addext", "basicConstraints=critical,CA:TRUE"])
                .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"])
                .arg("-keyout")
                .arg(&key)
                .arg("-out")
                .arg(&cert),
            "openssl req (CA)",
        )?;
        Ok(Self { cert, key })
    }

    /// Writes `NAME.pem` and `NAME.key` into `dir`: a leaf for
    /// `common_name` signed by this CA, for servers and clients both
    /// (etcd's client certificate auth takes the CN as the user).
    pub fn issue(
        &self,
        dir: &Path,
        name: &str,
        common_name: &str,
        addresses: &[IpAddr],
    ) -> Result<SelfSigned> {
        let cert = dir.join(format!("{name}.pem"));
        let key = dir.join(format!("{name}.key"));
        let csr = dir.join(format!("{name}.csr"));
        let ext = dir.join(format!("{name}.ext"));
        let mut alt_names = vec!["DNS:localhost".to_string()];
        alt_names.extend(addresses.iter().map(|a| format!("IP:{a}")));
        std::fs::write(
            &ext,
            format!(
                "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName={}\n",
                alt_names.join(",")
            ),
        )?;
        openssl(
            Command::new("openssl")
                .args(["req", "-new", "-newkey", "ec"])
                .args(["-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"])
                .arg("-subj")
                .arg(format!("/CN={common_name}"))
                .arg("-keyout")
                .arg(&key)
                .arg("-out")
                .arg(&csr),
            "openssl req (leaf)",
        )?;
        openssl(
            Command::new("openssl")
                .args(["x509", "-req", "-days", "2", "-set_serial"])
                .arg(format!(
                    "{}",
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(1, |d| d.as_nanos())
                ))
                .arg("-in")
                .arg(&csr)
                .arg("-CA")
                .arg(&self.cert)
                .arg("-CAkey")
                .arg(&self.key)
                .arg("-extfile")
                .arg(&ext)
                .arg("-out")
                .arg(&cert),
            "openssl x509 (signing)",
        )?;
        Ok(SelfSigned { cert, key })
    }
}

/// Runs one openssl command, its output kept for the error.
fn openssl(cmd: &mut Command, what: &str) -> Result<()> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .context("running openssl (`cargo xtask prereqs` installs it)")?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}
