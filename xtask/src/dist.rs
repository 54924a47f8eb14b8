//! `cargo xtask dist`: the Debian package (cargo-deb, installed when
//! missing): the release binary, the systemd units, the example
//! configuration, the man pages and shell completions generated from the
//! agent's own command-line definitions.

use std::path::Path;
use std::process::Command;

use anyhow::{Context as _, Result, bail};

use crate::{
    host::target_dir,
    packages::prereqs,
    process::{cargo, run, stdout_of},
};

pub fn dist(root: &Path) -> Result<()> {
    prereqs(root)?;
    run(cargo()
        .current_dir(root)
        .args(["build", "--release", "-p", "failover-agent"]))?;
    let target = target_dir(root);
    let docs = target.join("dist/docs");
    run(Command::new(target.join("release/failover-agent"))
        .args(["generate-docs", "--out"])
        .arg(&docs))?;
    ensure_cargo_deb()?;
    let out = target.join("dist");
    run(cargo()
        .current_dir(root)
        .args(["deb", "-p", "failover-agent", "--no-build", "--output"])
        .arg(&out))?;
    eprintln!("xtask: Debian package in {}", out.display());
    Ok(())
}

fn ensure_cargo_deb() -> Result<()> {
    if let Some(version) = stdout_of(cargo().args(["deb", "--version"])) {
        eprintln!("xtask: cargo-deb: present ({})", version.trim());
        return Ok(());
    }
    eprintln!("xtask: cargo-deb: missing, installing");
    let mut install = cargo();
    install.args(["install", "cargo-deb", "--locked"]);
    for var in ["CARGO_TARGET_DIR", "RUSTFLAGS", "CARGO_BUILD_TARGET"] {
        install.env_remove(var);
    }
    run(&mut install).context("installing cargo-deb failed (needs crates.io)")?;
    if stdout_of(cargo().args(["deb", "--version"])).is_none() {
        bail!("cargo-deb was installed but `cargo deb --version` still fails");
    }
    Ok(())
}
