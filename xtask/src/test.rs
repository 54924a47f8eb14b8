//! `cargo xtask test`: builds everything, runs the unit tests, then the system
//! tests one at a time, and closes with one line of counts for the whole suite.

use std::{path::Path, process::Command};

use anyhow::{Context as _, Result, bail};

use crate::{
    host::require_root,
    packages::prereqs,
    process::{cargo, command_line, run},
};

pub fn test(root: &Path, args: &[String]) -> Result<()> {
    require_root("the test suite")?;
    prereqs(root)?;
    run(cargo()
        .current_dir(root)
        .args(["build", "--workspace", "--all-targets"]))?;
    let (cargo_args, harness_args) = split_harness_args(args);
    let mut tally = TestTally::default();
    // Unit tests run in parallel; the end-to-end tests share timing-sensitive
    // health checks and the machine's CPUs, so they run one at a time.
    let unit = run_and_tally(
        cargo()
            .current_dir(root)
            .args([
                "test",
                "--no-fail-fast",
                "--workspace",
                "--exclude",
                "failover-tests",
            ])
            .args(cargo_args)
            .arg("--")
            .args(harness_args),
        &mut tally,
    );
    // Run the system tests even when a unit test failed: one run shows all.
    let system = run_and_tally(
        cargo()
            .current_dir(root)
            .args(["test", "--no-fail-fast", "-p", "failover-tests"])
            .args(cargo_args)
            .args(["--", "--test-threads=1"])
            .args(harness_args),
        &mut tally,
    );
    // One closing line for the whole suite (cargo's last line is often a doc-test
    // run of zero tests).
    println!(
        "xtask: {} passed, {} failed, {} skipped",
        tally.passed, tally.failed, tally.ignored
    );
    unit.and(system)
}

/// Splits `cargo test` args into cargo's own and the test harness's (after `--`).
fn split_harness_args(args: &[String]) -> (&[String], &[String]) {
    match args.iter().position(|a| a == "--") {
        Some(i) => (&args[..i], &args[i + 1..]),
        None => (args, &[]),
    }
}

/// Test counts summed over every `test result:` line cargo's harness prints.
#[derive(Default)]
struct TestTally {
    passed: u64,
    failed: u64,
    ignored: u64,
}

impl TestTally {
    /// Reads "test result: ok. 3 passed; 0 failed; 1 ignored; ..." lines.
    fn add_line(&mut self, line: &str) {
        let Some(rest) = line.trim().strip_prefix("test result: ") else {
            return;
        };
        for part in rest.split(';') {
            let words: Vec<&str> = part.split_whitespace().collect();
            let (Some(n), Some(what)) = (words.len().checked_sub(2), words.last()) else {
                continue;
            };
            let Ok(count) = words[n].parse::<u64>() else {
                continue;
            };
            match *what {
                "passed" => self.passed += count,
                "failed" => self.failed += count,
                "ignored" => self.ignored += count,
                _ => {}
            }
        }
    }
}

/// Like [`run`], but echoes the harness output while tallying its results.
fn run_and_tally(cmd: &mut Command, tally: &mut TestTally) -> Result<()> {
    use std::io::{BufRead as _, BufReader};
    let shown = command_line(cmd);
    eprintln!("xtask: running {shown}");
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {shown}"))?;
    let stdout = child.stdout.take().expect("piped");
    for line in BufReader::new(stdout).lines() {
        let line = line.context("reading test output")?;
        println!("{line}");
        tally.add_line(&line);
    }
    let status = child
        .wait()
        .with_context(|| format!("waiting for {shown}"))?;
    if !status.success() {
        bail!("{shown} failed ({status})");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn harness_args_follow_the_double_dash() {
        let args: Vec<String> = ["e2e", "--", "--nocapture"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let (c, h) = split_harness_args(&args);
        assert_eq!(c, &args[..1]);
        assert_eq!(h, &args[2..]);
        let (c, h) = split_harness_args(&args[..1]);
        assert_eq!((c.len(), h.len()), (1, 0));
    }

    #[test]
    fn tally_sums_harness_result_lines() {
        let mut t = TestTally::default();
        t.add_line("test result: ok. 35 passed; 0 failed; 2 ignored; 0 measured; 0 filtered out; finished in 1.01s");
        t.add_line(
            "test result: FAILED. 2 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out",
        );
        t.add_line("running 3 tests");
        assert_eq!((t.passed, t.failed, t.ignored), (37, 1, 2));
    }
}
