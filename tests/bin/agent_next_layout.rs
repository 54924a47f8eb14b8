//! The agent as the next release with a changed map layout would be: it
//! pins its data plane under `LAYOUT_VERSION + 1`, so starting it over a
//! running agent plays an upgrade that needs new maps (tests/takeover.rs,
//! `cargo xtask bench restart`).

fn main() -> std::process::ExitCode {
    failover_agent::pin::play_layout(failover_common::LAYOUT_VERSION + 1);
    failover_agent::cli::main()
}
