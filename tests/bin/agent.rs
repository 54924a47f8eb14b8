//! The agent binary, built by this crate so that the integration tests get its
//! path from `CARGO_BIN_EXE_failover-agent-under-test` (cargo gives a test the
//! binaries of its own package only) and the benchmark finds it next to itself.

fn main() -> std::process::ExitCode {
    failover_agent::cli::main()
}
