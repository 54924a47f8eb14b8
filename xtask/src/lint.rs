//! `cargo xtask lint`: rustfmt and clippy for the workspace and the XDP program.

use std::{path::Path, process::Command};

use anyhow::{Context as _, Result};

use crate::{
    build_object,
    process::{cargo, run},
    toolchain::ensure_ebpf_toolchain,
};

pub fn lint(root: &Path) -> Result<()> {
    // The workspace clippy builds the agent, whose build.rs builds the XDP object.
    ensure_ebpf_toolchain(root)?;
    run(cargo()
        .current_dir(root)
        .args(["fmt", "--all", "--", "--check"]))
    .context("formatting differs: run `cargo fmt --all`")?;
    run(cargo().current_dir(root).args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    run(Command::new("cargo")
        .current_dir(root.join("failover-ebpf"))
        .args(["+nightly", "fmt", "--", "--check"]))
    .context("the XDP program's formatting differs: run `cargo +nightly fmt` in failover-ebpf")?;
    run(&mut ebpf_clippy(root))?;
    Ok(())
}

/// Clippy for the XDP program, with the same flags and target dir as
/// build_object::build so the two never invalidate each other's build-std.
fn ebpf_clippy(root: &Path) -> Command {
    let mut cmd = Command::new("cargo");
    cmd.current_dir(root.join("failover-ebpf"))
        .args(["+nightly", "clippy", "--release"])
        .args(["--target", build_object::BPF_TARGET, "-Z", "build-std=core"])
        .arg("--target-dir")
        .arg(root.join("target/ebpf"))
        .args(["--", "-D", "warnings"])
        .env("CARGO_ENCODED_RUSTFLAGS", build_object::rustflags());
    for var in [
        "RUSTC",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTUP_TOOLCHAIN",
        "RUSTFLAGS",
        "CARGO",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_BUILD_RUSTFLAGS",
    ] {
        cmd.env_remove(var);
    }
    cmd
}
