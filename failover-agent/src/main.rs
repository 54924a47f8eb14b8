fn main() -> std::process::ExitCode {
    failover_agent::cli::main()
}
