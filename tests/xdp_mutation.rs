//! The mutation fuzzer over the XDP program, in the test suite: 10,000
//! mutants of generated queries (bit flips, byte sets, truncations,
//! extensions with and without consistent IP/UDP lengths, header words,
//! lying lengths) through BPF_PROG_TEST_RUN. Whenever the kernel answers, the
//! answer frame passes every transport check and parses, the mutated query
//! is one the userspace parser accepts as a plain query, and the userspace
//! responder answers it with the same meaning; passed frames are untouched.
//! See `failover_tests::mutation` for the properties.
//!
//! Seed: FAILOVER_MUTATION_SEED (decimal, 0x-hex or "random"); count:
//! FAILOVER_MUTATION_CASES. `cargo xtask fuzz xdp --cases N` runs millions.
//! Needs root (BPF).

use failover_tests::r#gen::{count_from_env, seed_from_env};
use failover_tests::mutation::{MutationRun, run};

const DEFAULT_SEED: u64 = 0xf022_0003;
const DEFAULT_CASES: u64 = 10_000;

#[test]
fn kernel_never_answers_what_userspace_rejects() {
    let opts = MutationRun {
        cases: count_from_env("FAILOVER_MUTATION_CASES", DEFAULT_CASES),
        seed: seed_from_env("FAILOVER_MUTATION_SEED", DEFAULT_SEED),
        max_findings: 10,
        progress: false,
    };
    println!(
        "mutation fuzzer: seed {:#x} (set FAILOVER_MUTATION_SEED to repeat or vary), {} cases",
        opts.seed, opts.cases
    );
    let report = run(&opts).expect("run the mutation fuzzer");
    println!("{report}");
    assert!(
        report.findings.is_empty(),
        "{} finding(s):\n{}",
        report.findings.len(),
        report.findings.join("\n")
    );
    assert_eq!(report.cases, opts.cases);
    // Not vacuous: mutants must reach the answering path, and be refused too.
    assert!(
        report.answered_mutants * 50 >= report.cases,
        "only {} of {} mutants were answered",
        report.answered_mutants,
        report.cases
    );
    assert!(
        report.passed * 2 >= report.cases,
        "only {} of {} mutants were passed",
        report.passed,
        report.cases
    );
}
