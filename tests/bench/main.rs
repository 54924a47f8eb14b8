//! `failover-bench <xdp|failover|restart|cluster|peers> [options]`: the benchmarks `cargo xtask bench`
//! runs. Both need root; both print a table and exit 0 unless the setup fails.

mod cluster;
mod cpu;
mod failover;
mod kinds;
mod peers;
mod restart;
mod xdp;

use std::process::ExitCode;

const USAGE: &str = "usage: failover-bench <xdp|failover|restart|cluster|peers> [options]  (--help after the name for its options)";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("xdp") => xdp::run(&args[1..]),
        Some("failover") => failover::run(&args[1..]),
        Some("restart") => restart::run(&args[1..]),
        Some("cluster") => cluster::run(&args[1..]),
        Some("peers") => peers::run(&args[1..]),
        Some("-h" | "--help") => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Some(other) => {
            eprintln!("unknown benchmark {other:?}\n{USAGE}");
            return ExitCode::from(2);
        }
        None => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("failover-bench: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
