//! What the Debian package ships besides the binary: the man pages and
//! shell completions the agent writes from its own command-line definitions
//! (`failover-agent generate-docs`, run by `cargo xtask dist`).

use std::process::Command;

const AGENT: &str = env!("CARGO_BIN_EXE_failover-agent-under-test");

#[test]
fn man_pages_and_completions_come_from_the_command_line_definitions() {
    let dir = std::env::temp_dir().join(format!("failover-docs-{}", std::process::id()));
    let status = Command::new(AGENT)
        .args(["generate-docs", "--out"])
        .arg(&dir)
        .status()
        .unwrap();
    assert!(status.success());
    // A page for the program and one per subcommand it lists.
    let help = Command::new(AGENT).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout).to_string();
    let page = std::fs::read_to_string(dir.join("failover-agent.1")).unwrap();
    assert!(page.contains(".TH failover-agent 1"), "{page}");
    for sub in [
        "run",
        "check-config",
        "reload",
        "drain",
        "undrain",
        "force",
        "status",
    ] {
        assert!(help.contains(sub), "--help lists {sub}");
        let name = format!("failover-agent-{sub}");
        let text = std::fs::read_to_string(dir.join(format!("{name}.1")))
            .unwrap_or_else(|e| panic!("{name}.1: {e}"));
        assert!(text.contains(&format!(".TH {name} 1")), "{text}");
        assert!(
            page.contains(&format!("{}(1)", name.replace('-', "\\-"))),
            "{page}"
        );
    }
    let run = std::fs::read_to_string(dir.join("failover-agent-run.1")).unwrap();
    for flag in ["\\-\\-config", "\\-\\-iface", "\\-\\-listen", "\\-\\-mode"] {
        assert!(run.contains(flag), "run's page documents {flag}");
    }
    // Completions that the shells accept, knowing the subcommands.
    let bash = dir.join("failover-agent.bash");
    let check = Command::new("bash").arg("-n").arg(&bash).status().unwrap();
    assert!(check.success(), "bash -n {}", bash.display());
    let text = std::fs::read_to_string(&bash).unwrap();
    assert!(text.contains("check-config") && text.contains("drain"));
    for other in ["_failover-agent", "failover-agent.fish"] {
        let text = std::fs::read_to_string(dir.join(other)).unwrap();
        assert!(text.contains("check-config"), "{other}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
