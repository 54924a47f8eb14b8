//! Builds the XDP program and embeds it: the agent never carries a stale object,
//! because cargo reruns this whenever the eBPF or shared sources change.

#[path = "../failover-ebpf/build_object.rs"]
mod build_object;

use std::path::Path;

fn main() {
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo");
    let root = Path::new(&manifest_dir)
        .parent()
        .expect("agent lives in the workspace");
    for watched in [
        "failover-ebpf/src",
        "failover-ebpf/Cargo.toml",
        "failover-ebpf/Cargo.lock",
        "failover-ebpf/build_object.rs",
        "failover-common/src",
        "failover-common/Cargo.toml",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    match build_object::build(root) {
        Ok(object) => {
            // Rebuild if someone replaces the object behind our back.
            println!("cargo:rerun-if-changed={}", object.display());
            println!("cargo:rustc-env=FAILOVER_XDP_OBJECT={}", object.display());
        }
        Err(message) => {
            eprintln!("error: {message}");
            std::process::exit(1);
        }
    }
}
