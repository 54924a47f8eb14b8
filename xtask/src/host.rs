//! The workspace and host xtask runs in: where things are, whether we are
//! root, and the process-wide set-up main does before anything else.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

/// xtask's crate sits directly in the workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// Where `cargo install` puts its `bin/`: $CARGO_HOME, else ~/.cargo.
pub fn cargo_home() -> Option<PathBuf> {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
}

/// Where the nested builds, which run in `root`, put their output.
pub fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|d| if d.is_relative() { root.join(d) } else { d })
        .unwrap_or_else(|| root.join("target"))
}

/// `cargo install` puts bpf-linker into $CARGO_HOME/bin; rustc looks the linker
/// up on PATH, so that directory must be on it for every nested build.
pub fn put_cargo_bin_on_path() {
    let Some(bin) = cargo_home().map(|h| h.join("bin")) else {
        return;
    };
    let path = std::env::var_os("PATH").unwrap_or_default();
    if std::env::split_paths(&path).any(|p| p == bin) {
        return;
    }
    let joined = std::env::join_paths(std::iter::once(bin).chain(std::env::split_paths(&path)))
        .expect("PATH entries came from PATH");
    // SAFETY: called at the top of main, before this process starts any thread.
    unsafe { std::env::set_var("PATH", joined) };
}

/// Ctrl-C reaches the whole foreground process group, so the command xtask runs
/// gets it too and shuts down by itself (the agent detaches XDP first). xtask
/// waits for that instead of dying first and leaving it to finish unobserved.
/// A handler, not SIG_IGN: handlers reset to the default on exec, so children
/// still get the normal Ctrl-C behaviour.
pub fn outlast_ctrl_c() {
    extern "C" fn ignore(_: libc::c_int) {}
    // SAFETY: installs an async-signal-safe handler that does nothing.
    unsafe {
        libc::signal(
            libc::SIGINT,
            ignore as extern "C" fn(libc::c_int) as libc::sighandler_t,
        )
    };
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Fails up front with how to rerun, instead of deep inside a nested command.
pub fn require_root(what: &str) -> Result<()> {
    if !is_root() {
        bail!(
            "{what} needs root (network namespaces, veth pairs, XDP); run it as root, \
             e.g. `sudo -E env PATH=\"$PATH\" cargo xtask ...`"
        );
    }
    Ok(())
}
