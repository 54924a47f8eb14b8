//! `cargo xtask demo`: the agent with its built-in demo config, on lo.

use std::path::Path;

use anyhow::Result;

use crate::{
    host::require_root,
    packages::prereqs,
    process::{cargo, run},
};

pub fn demo(root: &Path, args: &[String]) -> Result<()> {
    require_root("the demo (it attaches XDP to lo)")?;
    prereqs(root)?;
    run(cargo()
        .current_dir(root)
        .args(["run", "--release", "-p", "failover-agent", "--", "run"])
        .args(args))
}
