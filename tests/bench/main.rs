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

use anyhow::{Context as _, Result};

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

/// A benchmark's `--flag value` pairs, in order; `None` when `-h` or
/// `--help` asked for `help` (printed here).
fn flags<'a>(args: &'a [String], help: &str) -> Result<Option<Vec<(&'a str, &'a str)>>> {
    let mut pairs = Vec::new();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            println!("{help}");
            return Ok(None);
        }
        let value = it
            .next()
            .with_context(|| format!("{flag} needs a value\n{help}"))?;
        pairs.push((flag.as_str(), value.as_str()));
    }
    Ok(Some(pairs))
}

/// `flag`'s `value` as a non-negative integer.
fn number(flag: &str, value: &str) -> Result<u64> {
    value
        .parse()
        .with_context(|| format!("{flag} {value}: not a non-negative integer"))
}
