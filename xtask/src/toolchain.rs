//! The eBPF toolchain: the nightly (never installed here), its rust-src and a
//! bpf-linker built against the nightly's own LLVM; then the XDP object.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};

use crate::{
    build_object,
    host::cargo_home,
    process::{run, stdout_of},
};

/// bpf-linker release known to build against the nightly's LLVM here.
const BPF_LINKER_VERSION: &str = "0.13.0";

/// `rustc +nightly ...` without inheriting which toolchain the outer cargo runs.
fn nightly_rustc() -> Command {
    let mut cmd = Command::new("rustc");
    cmd.arg("+nightly")
        .env_remove("RUSTC")
        .env_remove("RUSTUP_TOOLCHAIN");
    cmd
}

pub struct Nightly {
    sysroot: PathBuf,
    llvm_major: u32,
}

/// Step 1: the nightly must already be there. We never install or update it:
/// a different nightly brings a different LLVM major, which bpf-linker must match.
pub fn check_nightly() -> Result<Nightly> {
    let Some(version) = stdout_of(nightly_rustc().arg("-vV")) else {
        bail!(
            "the nightly toolchain is missing: `rustc +nightly -vV` failed.\n  \
             The XDP program builds with nightly (build-std for bpfel-unknown-none).\n  \
             Install it deliberately, e.g. `rustup toolchain install nightly --profile minimal \
             --component rust-src`;\n  xtask does not install or update nightly itself because \
             a newer one changes the LLVM major that bpf-linker is built against."
        );
    };
    let llvm_major = parse_llvm_major(&version).with_context(|| {
        format!("`rustc +nightly -vV` printed no \"LLVM version: N.x\" line:\n{version}")
    })?;
    let sysroot = stdout_of(nightly_rustc().args(["--print", "sysroot"]))
        .map(|s| PathBuf::from(s.trim()))
        .context("`rustc +nightly --print sysroot` failed although `rustc +nightly -vV` works")?;
    Ok(Nightly {
        sysroot,
        llvm_major,
    })
}

/// "LLVM version: 22.1.4" -> 22.
fn parse_llvm_major(rustc_vv: &str) -> Option<u32> {
    rustc_vv
        .lines()
        .find_map(|l| l.trim().strip_prefix("LLVM version:"))
        .and_then(|v| v.trim().split('.').next())
        .and_then(|m| m.parse().ok())
}

/// Step 2: build-std needs the nightly's library sources.
fn ensure_rust_src(nightly: &Nightly) -> Result<()> {
    let core = nightly.sysroot.join("lib/rustlib/src/rust/library/core");
    if core.is_dir() {
        eprintln!("xtask: rust-src for nightly: present");
        return Ok(());
    }
    eprintln!("xtask: rust-src for nightly: missing, installing");
    run(Command::new("rustup")
        .args(["component", "add", "rust-src", "--toolchain", "nightly"])
        .env_remove("RUSTUP_TOOLCHAIN"))
    .context(
        "installing rust-src for nightly failed; run \
         `rustup component add rust-src --toolchain nightly` yourself (needs network)",
    )?;
    if !core.is_dir() {
        bail!(
            "rust-src was installed but {} is still missing; check `rustup component list \
             --toolchain nightly --installed`",
            core.display()
        );
    }
    Ok(())
}

fn bpf_linker_version() -> Option<String> {
    stdout_of(Command::new("bpf-linker").arg("--version")).map(|v| v.trim().to_string())
}

/// Step 3: bpf-linker, built against the very libLLVM the nightly rustc ships,
/// so the bitcode rustc emits is always readable by the linker.
fn ensure_bpf_linker(root: &Path, nightly: &Nightly) -> Result<()> {
    if let Some(version) = bpf_linker_version() {
        eprintln!("xtask: bpf-linker: present ({version})");
        return Ok(());
    }
    let major = nightly.llvm_major;
    eprintln!(
        "xtask: bpf-linker: missing or does not start; building {BPF_LINKER_VERSION} against \
         the nightly's LLVM {major}"
    );
    let sysroot_lib = nightly.sysroot.join("lib");
    let libllvm = find_rust_libllvm(&sysroot_lib, major)?;

    // llvm-sys wants an LLVM prefix with lib/libLLVM.so; rustc's copy carries a
    // versioned name, so give it a prefix with a plain-named symlink.
    let prefix = root.join("target/llvm-prefix");
    let prefix_lib = prefix.join("lib");
    std::fs::create_dir_all(&prefix_lib)
        .with_context(|| format!("creating {}", prefix_lib.display()))?;
    let link = prefix_lib.join("libLLVM.so");
    if link.symlink_metadata().is_ok() {
        std::fs::remove_file(&link).with_context(|| format!("removing old {}", link.display()))?;
    }
    std::os::unix::fs::symlink(&libllvm, &link)
        .with_context(|| format!("symlinking {} -> {}", link.display(), libllvm.display()))?;

    let mut install = Command::new("cargo");
    install
        .args([
            "install",
            "bpf-linker",
            "--version",
            BPF_LINKER_VERSION,
            "--force",
        ])
        .args(["--no-default-features", "--features"])
        .arg(format!("llvm-{major}"))
        .env("LLVM_PREFIX", &prefix)
        // Without the rpath the installed binary cannot find libLLVM at run time.
        .env(
            "RUSTFLAGS",
            format!("-C link-arg=-Wl,-rpath,{}", sysroot_lib.display()),
        );
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
    ] {
        install.env_remove(var);
    }
    run(&mut install).with_context(|| {
        format!(
            "building bpf-linker failed. It needs network access to crates.io and a C/C++ \
             toolchain; the LLVM it links is {} (via {}).",
            libllvm.display(),
            link.display()
        )
    })?;
    match bpf_linker_version() {
        Some(version) => {
            eprintln!("xtask: bpf-linker: installed ({version})");
            Ok(())
        }
        None => bail!(
            "bpf-linker was installed but `bpf-linker --version` still fails; check that \
             {} is on PATH and that `ldd $(command -v bpf-linker)` finds libLLVM in {}",
            cargo_home()
                .map(|h| h.join("bin").display().to_string())
                .unwrap_or_else(|| "$CARGO_HOME/bin".into()),
            sysroot_lib.display()
        ),
    }
}

/// `<sysroot>/lib/libLLVM.so.<major>.*-rust-*`.
fn find_rust_libllvm(sysroot_lib: &Path, major: u32) -> Result<PathBuf> {
    let prefix = format!("libLLVM.so.{major}.");
    let entries = std::fs::read_dir(sysroot_lib)
        .with_context(|| format!("reading the nightly's {}", sysroot_lib.display()))?;
    let mut found: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.starts_with(&prefix) && name.contains("-rust-")
        })
        .map(|e| e.path())
        .collect();
    found.sort();
    found.pop().with_context(|| {
        format!(
            "no {prefix}*-rust-* in {}: this nightly does not ship a shared libLLVM, so \
             bpf-linker cannot be built against it; install bpf-linker by hand \
             (see https://github.com/aya-rs/bpf-linker)",
            sysroot_lib.display()
        )
    })
}

pub fn ensure_ebpf_toolchain(root: &Path) -> Result<()> {
    let nightly = check_nightly()?;
    eprintln!(
        "xtask: nightly: present (LLVM {}, {})",
        nightly.llvm_major,
        nightly.sysroot.display()
    );
    ensure_rust_src(&nightly)?;
    ensure_bpf_linker(root, &nightly)
}

pub fn build_ebpf(root: &Path) -> Result<()> {
    ensure_ebpf_toolchain(root)?;
    let object = build_object::build(root).map_err(anyhow::Error::msg)?;
    println!("{}", object.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llvm_major_from_rustc_vv() {
        let vv = "rustc 1.97.0-nightly (e50aa6fba 2026-05-19)\nbinary: rustc\n\
                  host: x86_64-unknown-linux-gnu\nLLVM version: 22.1.4\n";
        assert_eq!(parse_llvm_major(vv), Some(22));
        assert_eq!(parse_llvm_major("rustc 1.0\n"), None);
        assert_eq!(parse_llvm_major("LLVM version: x.1\n"), None);
    }

    #[test]
    fn libllvm_glob_picks_the_rust_copy_of_the_major() {
        let dir = std::env::temp_dir().join(format!("xtask-libllvm-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for name in [
            "libLLVM-22-rust-1.97.0-nightly.so",
            "libLLVM.so.22.1-rust-1.97.0-nightly",
            "libLLVM.so.21.1-rust-1.90.0-nightly",
            "librustc_driver-x.so",
        ] {
            std::fs::write(dir.join(name), b"").unwrap();
        }
        let found = find_rust_libllvm(&dir, 22).unwrap();
        assert_eq!(
            found.file_name().unwrap(),
            "libLLVM.so.22.1-rust-1.97.0-nightly"
        );
        assert!(find_rust_libllvm(&dir, 23).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
