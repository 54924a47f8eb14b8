//! `cargo xtask bench`: builds the benchmark binary and runs one benchmark.

use std::{path::Path, process::Command};

use anyhow::Result;

use crate::{
    host::{require_root, target_dir},
    packages::prereqs,
    process::{cargo, run},
};

/// `which` is the benchmark's name, the binary's first argument.
pub fn bench(root: &Path, which: &str, args: &[String]) -> Result<()> {
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
    let binary = target_dir(root).join("release/failover-bench");
    run(Command::new(&binary).arg(which).args(args))
}
