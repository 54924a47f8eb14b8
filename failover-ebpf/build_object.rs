//! Builds the XDP object file. Shared (via `#[path]`) by failover-agent's
//! build.rs, which embeds the object, and by `cargo xtask build-ebpf`, which
//! first installs the toolchain pieces this needs. Plain std, no dependencies.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

pub const BPF_TARGET: &str = "bpfel-unknown-none";

/// Where the object lands, given the workspace root.
pub fn object_path(workspace_root: &Path) -> PathBuf {
    workspace_root
        .join("target/ebpf")
        .join(BPF_TARGET)
        .join("release/failover-ebpf")
}

/// What is missing to build the object, each with the way to fix it.
pub fn missing_prerequisites() -> Vec<String> {
    let mut missing = Vec::new();
    let sysroot = Command::new("rustc")
        .args(["+nightly", "--print", "sysroot"])
        .env_remove("RUSTC")
        .env_remove("RUSTUP_TOOLCHAIN")
        .output();
    match sysroot {
        Ok(out) if out.status.success() => {
            let root = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if !Path::new(&root)
                .join("lib/rustlib/src/rust/library/core")
                .is_dir()
            {
                missing.push(
                    "rust-src for the nightly toolchain (build-std needs it): \
                     `rustup component add rust-src --toolchain nightly`"
                        .to_string(),
                );
            }
        }
        _ => missing.push(
            "the nightly toolchain (`rustc +nightly` failed): install it with rustup".to_string(),
        ),
    }
    let linker_ok = Command::new("bpf-linker")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !linker_ok {
        missing.push(
            "bpf-linker (not on PATH or does not start): `cargo xtask build-ebpf` builds it \
             against the nightly's own libLLVM"
                .to_string(),
        );
    }
    missing
}

/// The nightly build's flags (CARGO_ENCODED_RUSTFLAGS), shared with the
/// lint so that neither invalidates the other's build-std: bpf_target_arch
/// picks the right helper bindings; BTF makes verifier errors readable; BPF
/// cpu v3 (Linux 5.12+) has the compare-and-swap the shared rate state is
/// moved on with, and 32-bit jumps and ALU.
pub fn rustflags() -> String {
    format!(
        "--cfg=bpf_target_arch=\"{}\"\x1f-Cdebuginfo=2\x1f-Clink-arg=--btf\x1f-Ctarget-cpu=v3",
        std::env::consts::ARCH
    )
}

/// Runs `cargo +nightly build` of failover-ebpf into `target/ebpf` and returns
/// the object path. Output of the nested cargo goes to our stderr.
pub fn build(workspace_root: &Path) -> Result<PathBuf, String> {
    let missing = missing_prerequisites();
    if !missing.is_empty() {
        return Err(format!(
            "cannot build the XDP program; missing:\n  - {}\nRun `cargo xtask build-ebpf` once: it installs these.",
            missing.join("\n  - ")
        ));
    }
    let mut cmd = Command::new("cargo");
    cmd.current_dir(workspace_root.join("failover-ebpf"))
        .args(["+nightly", "build", "--release", "--target", BPF_TARGET])
        .args(["-Z", "build-std=core"])
        .arg("--target-dir")
        .arg(workspace_root.join("target/ebpf"))
        .env("CARGO_ENCODED_RUSTFLAGS", rustflags());
    // A build script inherits the outer cargo's view of the world; the nested
    // nightly build must not see any of it.
    for var in [
        "RUSTC",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTUP_TOOLCHAIN",
        "RUSTFLAGS",
        "RUSTDOC",
        "CARGO",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_MAKEFLAGS",
        "CARGO_PRIMARY_PACKAGE",
        "TARGET",
        "HOST",
        "OUT_DIR",
        "PROFILE",
        "OPT_LEVEL",
        "DEBUG",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run `cargo +nightly build` for failover-ebpf: {e}"))?;
    if !status.success() {
        return Err(format!(
            "`cargo +nightly build --target {BPF_TARGET}` of failover-ebpf failed ({status})"
        ));
    }
    let object = object_path(workspace_root);
    if !object.is_file() {
        return Err(format!(
            "build succeeded but {} is missing",
            object.display()
        ));
    }
    Ok(object)
}
