//! `cargo xtask <command>`: installs what the build needs and runs the project's
//! build, tests, demo, benchmarks and lints.
//!
//! xtask must not depend on failover-agent: the agent's build.rs needs
//! bpf-linker, and installing bpf-linker is what `build-ebpf` is for.
//!
//! This file holds only the command line and the dispatch. Each command has a
//! module; commands that need prerequisites call `packages` or `toolchain`,
//! and all of them share `host` and `process`, which know of no command.

// Shared with the agent's build.rs, so both build the XDP object one way.
#[path = "../../failover-ebpf/build_object.rs"]
mod build_object;

mod bench;
mod demo;
mod dist;
mod fuzz;
mod lint;
mod packages;
mod test;
mod toolchain;

mod host;
mod process;

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::host::{outlast_ctrl_c, put_cargo_bin_on_path, workspace_root};

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
    /// ethtool, unbound, Knot, kxdpgun, NSD).
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
        which: Benchmark,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// rustfmt check and clippy (warnings are errors), the XDP program included.
    Lint,
    /// Build the Debian package (binary, systemd units, example config, man
    /// pages, completions) into target/dist/.
    Dist,
    /// Run a fuzzer, bounded: `xdp --cases N` (needs root) or `userspace --seconds S`.
    Fuzz {
        #[command(subcommand)]
        which: Fuzzer,
    },
}

#[derive(Subcommand)]
enum Fuzzer {
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
enum Benchmark {
    /// Kernel fast path: ns per packet of the XDP program (BPF_PROG_TEST_RUN).
    Xdp,
    /// Failover: time from an endpoint dying (or returning) to the answers changing.
    Failover,
    /// Restarts under load: queries lost with the data plane pinned and without.
    Restart,
    /// Three agents agreeing through etcd: convergence, etcd writes, CPU.
    Cluster,
    /// Knot-XDP, NSD and the agent under one kxdpgun load, RRL off and on.
    Peers,
}

impl Benchmark {
    /// Its name on the benchmark binary's command line.
    fn name(self) -> &'static str {
        match self {
            Benchmark::Xdp => "xdp",
            Benchmark::Failover => "failover",
            Benchmark::Restart => "restart",
            Benchmark::Cluster => "cluster",
            Benchmark::Peers => "peers",
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    put_cargo_bin_on_path();
    outlast_ctrl_c();
    let root = workspace_root();
    let result = match cli.command {
        Cmd::BuildEbpf => toolchain::build_ebpf(&root),
        Cmd::Prereqs => packages::prereqs(&root),
        // clap drops a leading `--`, but for `cargo test` it separates cargo's
        // args from the harness's, so take the raw words after `test`.
        Cmd::Test { .. } => test::test(&root, &std::env::args().skip(2).collect::<Vec<_>>()),
        Cmd::Demo { args } => demo::demo(&root, &args),
        Cmd::Bench { which, args } => bench::bench(&root, which.name(), &args),
        Cmd::Lint => lint::lint(&root),
        Cmd::Dist => dist::dist(&root),
        Cmd::Fuzz {
            which:
                Fuzzer::Xdp {
                    cases,
                    seed,
                    max_findings,
                },
        } => fuzz::fuzz_xdp(&root, cases, seed.as_deref(), max_findings),
        Cmd::Fuzz {
            which: Fuzzer::Userspace { seconds, check },
        } => fuzz::fuzz_userspace(&root, seconds, check),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
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
                which: Fuzzer::Xdp { cases, seed, .. },
            } => assert_eq!((cases, seed.as_deref()), (5, Some("0x2a"))),
            _ => panic!("parsed the wrong command"),
        }
        let cli = Cli::try_parse_from(["xtask", "fuzz", "userspace"]).unwrap();
        match cli.command {
            Cmd::Fuzz {
                which: Fuzzer::Userspace { seconds, check },
            } => assert_eq!((seconds, check), (60, false)),
            _ => panic!("parsed the wrong command"),
        }
    }
}
