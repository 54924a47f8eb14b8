//! `cargo xtask <command>`: installs what the build needs and runs the project's
//! build, tests, demo, benchmarks and lints.
//!
//! xtask must not depend on failover-agent: the agent's build.rs needs
//! bpf-linker, and installing bpf-linker is what `build-ebpf` is for.

#[path = "../../failover-ebpf/build_object.rs"]
mod build_object;
mod host;
mod packages;
mod process;
mod test;
mod toolchain;

use std::{
    path::{Path, PathBuf},
    process::{Command, ExitCode, Stdio},
};

use anyhow::{Context as _, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};

use crate::{
    host::{outlast_ctrl_c, put_cargo_bin_on_path, require_root, target_dir, workspace_root},
    packages::prereqs,
    process::{cargo, output_of, run, show},
    toolchain::{build_ebpf, check_nightly, ensure_ebpf_toolchain},
};

#[derive(Parser)]
#[command(
    name = "xtask",
    bin_name = "cargo xtask",
    about = "Build, test, demo, benchmark and lint failover"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install what is missing (rust-src, bpf-linker), then build the XDP object.
    BuildEbpf,
    /// Install everything tests, demo and benchmarks need (eBPF toolchain, dig, kdig, ip,
    /// ethtool, unbound, Knot).
    #[command(hide = true)]
    Prereqs,
    /// Build everything and run all tests (needs root). Extra args go to `cargo test`,
    /// those after `--` to the test harness: `cargo xtask test e2e -- --nocapture`.
    Test {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Run the agent with its built-in demo config (attached to lo). Extra args go to `run`.
    Demo {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Run a benchmark (needs root). Extra args go to the benchmark.
    Bench {
        which: Bench,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// rustfmt check and clippy (warnings are errors), the XDP program included.
    Lint,
    /// Run a fuzzer, bounded: `xdp --cases N` (needs root) or `userspace --seconds S`.
    Fuzz {
        #[command(subcommand)]
        which: Fuzz,
    },
}

#[derive(Subcommand)]
enum Fuzz {
    /// The XDP mutation fuzzer: mutated queries through the XDP program
    /// (BPF_PROG_TEST_RUN), kernel answers checked against the userspace
    /// parser and responder. Needs root.
    Xdp {
        /// Number of mutated queries to run.
        #[arg(long, default_value_t = 1_000_000)]
        cases: u64,
        /// Seed (decimal, 0x-hex or "random"; default random, printed).
        #[arg(long)]
        seed: Option<String>,
        /// Stop after this many findings.
        #[arg(long, default_value_t = 20)]
        max_findings: u64,
    },
    /// libFuzzer (cargo-fuzz, nightly) on the userspace responder
    /// (fuzz/fuzz_targets/responder.rs), bounded in time; installs cargo-fuzz
    /// if it is missing.
    Userspace {
        /// How long libFuzzer runs.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Only check that the fuzz targets compile (stable, no sanitizers, quick).
        #[arg(long)]
        check: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Bench {
    /// Kernel fast path: ns per packet of the XDP responder (BPF_PROG_TEST_RUN).
    Xdp,
    /// Failover: time from an endpoint dying (or returning) to the answers changing.
    Failover,
}

impl Bench {
    fn name(self) -> &'static str {
        match self {
            Bench::Xdp => "xdp",
            Bench::Failover => "failover",
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    put_cargo_bin_on_path();
    outlast_ctrl_c();
    let root = workspace_root();
    let result = match cli.command {
        Cmd::BuildEbpf => build_ebpf(&root),
        Cmd::Prereqs => prereqs(&root),
        // clap drops a leading `--`, but for `cargo test` it separates cargo's
        // args from the harness's, so take the raw words after `test`.
        Cmd::Test { .. } => test::test(&root, &std::env::args().skip(2).collect::<Vec<_>>()),
        Cmd::Demo { args } => demo(&root, &args),
        Cmd::Bench { which, args } => bench(&root, which, &args),
        Cmd::Lint => lint(&root),
        Cmd::Fuzz {
            which:
                Fuzz::Xdp {
                    cases,
                    seed,
                    max_findings,
                },
        } => fuzz_xdp(&root, cases, seed.as_deref(), max_findings),
        Cmd::Fuzz {
            which: Fuzz::Userspace { seconds, check },
        } => fuzz_userspace(&root, seconds, check),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------------------
// test / demo / bench / lint

fn demo(root: &Path, args: &[String]) -> Result<()> {
    require_root("the demo (it attaches XDP to lo)")?;
    prereqs(root)?;
    run(cargo()
        .current_dir(root)
        .args(["run", "--release", "-p", "failover-agent", "--", "run"])
        .args(args))
}

fn bench(root: &Path, which: Bench, args: &[String]) -> Result<()> {
    require_root("the benchmarks")?;
    prereqs(root)?;
    run(cargo().current_dir(root).args([
        "build",
        "--release",
        "-p",
        "failover-tests",
        "--bins",
        "-p",
        "failover-agent",
    ]))?;
    let bench = target_dir(root).join("release/failover-bench");
    run(Command::new(&bench).arg(which.name()).args(args))
}

fn lint(root: &Path) -> Result<()> {
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
    run(&mut ebpf_clippy(root))?;
    Ok(())
}

// ---------------------------------------------------------------------------
// fuzz

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

fn fuzz_xdp(root: &Path, cases: u64, seed: Option<&str>, max_findings: u64) -> Result<()> {
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

/// `cargo +nightly <args>` in `fuzz/`, without the outer cargo's toolchain,
/// target dir or flags leaking in.
fn nightly_cargo_in_fuzz(root: &Path) -> Command {
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
    if let Some(version) = output_of(nightly_cargo_in_fuzz(root).args(["fuzz", "--version"])) {
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
    if output_of(nightly_cargo_in_fuzz(root).args(["fuzz", "--version"])).is_none() {
        bail!("cargo-fuzz was installed but `cargo +nightly fuzz --version` still fails");
    }
    Ok(())
}

fn fuzz_userspace(root: &Path, seconds: u64, check: bool) -> Result<()> {
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
    let mut cmd = nightly_cargo_in_fuzz(root);
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
    let shown = show(cmd);
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
        .env(
            "CARGO_ENCODED_RUSTFLAGS",
            format!(
                "--cfg=bpf_target_arch=\"{}\"\x1f-Cdebuginfo=2\x1f-Clink-arg=--btf",
                std::env::consts::ARCH
            ),
        );
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_parses() {
        use clap::CommandFactory as _;
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from(["xtask", "bench", "failover", "--runs", "3"]).unwrap();
        match cli.command {
            Cmd::Bench { which, args } => {
                assert_eq!(which.name(), "failover");
                assert_eq!(args, ["--runs", "3"]);
            }
            _ => panic!("parsed the wrong command"),
        }
        let cli = Cli::try_parse_from(["xtask", "fuzz", "xdp", "--cases", "5", "--seed", "0x2a"])
            .unwrap();
        match cli.command {
            Cmd::Fuzz {
                which: Fuzz::Xdp { cases, seed, .. },
            } => assert_eq!((cases, seed.as_deref()), (5, Some("0x2a"))),
            _ => panic!("parsed the wrong command"),
        }
        let cli = Cli::try_parse_from(["xtask", "fuzz", "userspace"]).unwrap();
        match cli.command {
            Cmd::Fuzz {
                which: Fuzz::Userspace { seconds, check },
            } => assert_eq!((seconds, check), (60, false)),
            _ => panic!("parsed the wrong command"),
        }
    }
}
