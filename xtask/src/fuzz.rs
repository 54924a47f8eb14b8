//! `cargo xtask fuzz`: the XDP mutation fuzzer and libFuzzer on the userspace
//! responder, both bounded so they fit in a test run.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context as _, Result, bail};

use crate::{
    host::{require_root, target_dir},
    process::{cargo, command_line, run, stdout_of},
    toolchain::{check_nightly, ensure_ebpf_toolchain},
};

/// The `failover-fuzz` binary (tests/bin/fuzz.rs), built in release.
fn build_fuzz_binary(root: &Path) -> Result<PathBuf> {
    run(cargo().current_dir(root).args([
        "build",
        "--release",
        "-p",
        "failover-tests",
        "--bin",
        "failover-fuzz",
    ]))?;
    Ok(target_dir(root).join("release/failover-fuzz"))
}

pub fn fuzz_xdp(root: &Path, cases: u64, seed: Option<&str>, max_findings: u64) -> Result<()> {
    require_root("the XDP fuzzer (it loads the XDP program)")?;
    ensure_ebpf_toolchain(root)?;
    let fuzz = build_fuzz_binary(root)?;
    let mut cmd = Command::new(&fuzz);
    cmd.args(["xdp", "--cases", &cases.to_string()])
        .args(["--max-findings", &max_findings.to_string()]);
    if let Some(seed) = seed {
        cmd.args(["--seed", seed]);
    }
    run(&mut cmd).context("the XDP fuzzer found something (FINDING lines above) or failed")
}

/// `cargo +nightly` at the workspace root (where `cargo fuzz` finds fuzz/),
/// without the outer cargo's toolchain, target dir or flags leaking in.
fn nightly_cargo(root: &Path) -> Command {
    let mut cmd = Command::new("cargo");
    cmd.current_dir(root).arg("+nightly");
    for var in [
        "RUSTC",
        "RUSTC_WRAPPER",
        "RUSTUP_TOOLCHAIN",
        "RUSTFLAGS",
        "CARGO",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

fn ensure_cargo_fuzz(root: &Path) -> Result<()> {
    if let Some(version) = stdout_of(nightly_cargo(root).args(["fuzz", "--version"])) {
        eprintln!("xtask: cargo-fuzz: present ({})", version.trim());
        return Ok(());
    }
    eprintln!("xtask: cargo-fuzz: missing, installing");
    let mut install = cargo();
    install.args(["install", "cargo-fuzz", "--locked"]);
    for var in ["CARGO_TARGET_DIR", "RUSTFLAGS", "CARGO_BUILD_TARGET"] {
        install.env_remove(var);
    }
    run(&mut install).context("installing cargo-fuzz failed (needs crates.io)")?;
    if stdout_of(nightly_cargo(root).args(["fuzz", "--version"])).is_none() {
        bail!("cargo-fuzz was installed but `cargo +nightly fuzz --version` still fails");
    }
    Ok(())
}

pub fn fuzz_userspace(root: &Path, seconds: u64, check: bool) -> Result<()> {
    // The agent's build.rs builds the XDP object, so the targets need the
    // eBPF toolchain like everything else.
    ensure_ebpf_toolchain(root)?;
    // fuzz/ is its own workspace; its lock file starts as the main one, so
    // the code under test builds with the very dependency versions the
    // agent ships with (cargo adds what only the fuzz targets use).
    let lock = root.join("fuzz/Cargo.lock");
    std::fs::copy(root.join("Cargo.lock"), &lock)
        .with_context(|| format!("copying Cargo.lock to {}", lock.display()))?;
    if check {
        // Stable and no sanitizers: proves the targets compile against the
        // current responder API in seconds, without running anything.
        return run(cargo().current_dir(root).args([
            "check",
            "--manifest-path",
            "fuzz/Cargo.toml",
            "--bins",
        ]));
    }
    check_nightly()?;
    ensure_cargo_fuzz(root)?;
    let corpus = root.join("fuzz/corpus/responder");
    let empty = std::fs::read_dir(&corpus).map_or(true, |mut d| d.next().is_none());
    if empty {
        // Start from the differential test's queries rather than from nothing.
        let fuzz = build_fuzz_binary(root)?;
        run(Command::new(&fuzz)
            .arg("corpus")
            .arg(&corpus)
            .args(["--count", "500"]))?;
    }
    let mut cmd = nightly_cargo(root);
    cmd.args(["fuzz", "run", "responder", "--"])
        .arg(format!("-max_total_time={seconds}"))
        .arg("-print_final_stats=1");
    let status = run_capturing_libfuzzer(&mut cmd)?;
    let artifacts = root.join("fuzz/artifacts/responder");
    if !status.success && !status.fuzzed {
        bail!("cargo fuzz failed before fuzzing (build error above?)");
    }
    if !status.success {
        bail!(
            "libFuzzer found a failing input ({}); inputs are in {}; reproduce with \
             `cargo +nightly fuzz run responder <file>`",
            status.summary,
            artifacts.display()
        );
    }
    println!(
        "xtask: fuzz userspace: clean for {seconds} s: {}",
        status.summary
    );
    Ok(())
}

struct LibFuzzerOutcome {
    success: bool,
    /// libFuzzer started (it printed its banner): not a build failure.
    fuzzed: bool,
    /// libFuzzer's "Done N runs in S second(s)" and final stats, condensed.
    summary: String,
}

/// Runs cargo fuzz, echoing libFuzzer's output while keeping its summary lines.
fn run_capturing_libfuzzer(cmd: &mut Command) -> Result<LibFuzzerOutcome> {
    use std::io::{BufRead as _, BufReader};
    let shown = command_line(cmd);
    eprintln!("xtask: running {shown}");
    let mut child = cmd
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {shown}"))?;
    let stderr = child.stderr.take().expect("piped");
    let mut summary = Vec::new();
    let mut fuzzed = false;
    for line in BufReader::new(stderr).lines() {
        let line = line.context("reading libFuzzer output")?;
        eprintln!("{line}");
        let l = line.trim();
        fuzzed |= l.starts_with("INFO: Seed:");
        if l.starts_with("Done ")
            || l.starts_with("stat::number_of_executed_units")
            || l.starts_with("stat::new_units_added")
            || l.starts_with("SUMMARY:")
            || l.contains("Test unit written to")
        {
            summary.push(l.split_whitespace().collect::<Vec<_>>().join(" "));
        }
    }
    let status = child
        .wait()
        .with_context(|| format!("waiting for {shown}"))?;
    Ok(LibFuzzerOutcome {
        success: status.success(),
        fuzzed,
        summary: if summary.is_empty() {
            format!("{shown} exited with {status}")
        } else {
            summary.join("; ")
        },
    })
}
