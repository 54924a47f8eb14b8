//! libFuzzer target for the configuration: arbitrary bytes as a config file
//! to `Config::parse_bytes` (UTF-8 check, then `Config::parse`).
//!
//! Property: no panic; every input is either a configuration or an error
//! that names where it is and what is wrong (a message, not empty).
//!
//! Run: `cargo +nightly fuzz run config` (the responder target runs with
//! `cargo xtask fuzz userspace`; `--check` compiles both).
#![no_main]

use failover_agent::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = Config::parse_bytes(data, "fuzz") {
        assert!(!e.message.is_empty(), "an error without a message");
        assert!(
            e.to_string().starts_with("fuzz"),
            "the error names the source"
        );
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Config::parse(text, "fuzz");
    }
});
