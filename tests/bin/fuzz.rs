//! `failover-fuzz`: the fuzzers `cargo xtask fuzz` runs outside the test harness.
//!
//! - `failover-fuzz xdp [--cases N] [--seed S] [--max-findings K]`: the XDP
//!   mutation fuzzer (`failover_tests::mutation`, the same code the
//!   `xdp_mutation` test runs with 10,000 cases) for N cases. Needs root.
//!   Exits 1 if it found anything.
//! - `failover-fuzz corpus DIR [--count N] [--seed S]`: writes N generated
//!   queries (DNS messages, one per file) into DIR, the seed corpus of the
//!   libFuzzer target `fuzz/fuzz_targets/responder.rs`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, Result, bail};
use failover_tests::r#gen::{QueryGen, Universe, parse_seed, test_config};
use failover_tests::mutation::{MutationRun, run};

const USAGE: &str = "usage: failover-fuzz xdp [--cases N] [--seed S] [--max-findings K]\n       \
                     failover-fuzz corpus DIR [--count N] [--seed S]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("xdp") => xdp(&args[1..]),
        Some("corpus") => corpus(&args[1..]),
        Some("-h" | "--help") => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("failover-fuzz: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// `--name value` options; anything else is an error.
fn options<'a>(args: &'a [String], known: &[&str]) -> Result<Vec<(&'a str, &'a str)>> {
    let mut out = Vec::new();
    let mut it = args.iter();
    while let Some(name) = it.next() {
        if !known.contains(&name.as_str()) {
            bail!("unknown option {name:?}\n{USAGE}");
        }
        let value = it.next().with_context(|| format!("{name} needs a value"))?;
        out.push((name.as_str(), value.as_str()));
    }
    Ok(out)
}

fn number(name: &str, value: &str) -> Result<u64> {
    value
        .replace('_', "")
        .parse()
        .with_context(|| format!("{name} {value:?} is not a number"))
}

fn seed(value: &str) -> Result<u64> {
    parse_seed(value)
        .with_context(|| format!("--seed {value:?}: use a decimal number, 0x-hex or \"random\""))
}

fn xdp(args: &[String]) -> Result<bool> {
    let mut opts = MutationRun {
        cases: 1_000_000,
        seed: seed("random")?,
        max_findings: 20,
        progress: true,
    };
    for (name, value) in options(args, &["--cases", "--seed", "--max-findings"])? {
        match name {
            "--cases" => opts.cases = number(name, value)?,
            "--seed" => opts.seed = seed(value)?,
            _ => opts.max_findings = number(name, value)?.max(1) as usize,
        }
    }
    println!(
        "failover-fuzz xdp: {} cases, seed {:#x} (repeat with --seed {:#x})",
        opts.cases, opts.seed, opts.seed
    );
    let report = run(&opts)?;
    println!("{report}");
    for finding in &report.findings {
        println!("FINDING {finding}");
    }
    Ok(report.findings.is_empty())
}

fn corpus(args: &[String]) -> Result<bool> {
    let Some(dir) = args.first() else {
        bail!("corpus needs a directory\n{USAGE}");
    };
    let dir = PathBuf::from(dir);
    let mut count = 200;
    let mut corpus_seed = 0xc0_4905;
    for (name, value) in options(&args[1..], &["--count", "--seed"])? {
        match name {
            "--count" => count = number(name, value)?,
            _ => corpus_seed = seed(value)?,
        }
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut generator = QueryGen::new(Universe::of(&test_config()), corpus_seed);
    for i in 0..count {
        let query = generator.generate();
        let path = dir.join(format!("generated-{i:05}"));
        std::fs::write(&path, query.message())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    println!("failover-fuzz corpus: {count} queries in {}", dir.display());
    Ok(true)
}
