//! `failover-bench xdp [--runs N]`: nanoseconds per packet of the XDP program,
//! measured by the kernel (BPF_PROG_TEST_RUN) on crafted frames.
//!
//! BPF_PROG_TEST_RUN does not restore the frame between repetitions, so a
//! repeated answer would be measured as "pass a response". Every answering case
//! therefore runs one repetition per syscall, N times in 7 blocks, and
//! reports the median of the blocks' mean kernel-reported durations (a
//! burst of other work moves one block); those include the kernel's timer overhead, which
//! the row for the empty program shows (and the last column subtracts). The
//! miss case leaves the frame alone and is also run with one large in-kernel
//! repeat, the figure with no per-call overhead at all.
//!
//! Every case runs on two programs side by side, their blocks interleaved: without a rate limit, and
//! with one every query is within (`[rate_limit]` on: the per-prefix state
//! is looked up and advanced). Two rows more show the answers over the
//! rate: slipped (TC=1) and dropped. The hit rows repeat one name, which
//! is answered from the program's per-CPU answer cache as a hot name is;
//! one row alternates two names that share a cache slot, so that every
//! answer is looked up in its record map. Cookies are on in both (the kernel
//! makes server cookies): the cookie rows carry a client cookie alone, or
//! a valid server cookie of ours (exempt from the rate limit). Under the
//! table, each half's instruction count as the verifier checked it.

use std::{net::IpAddr, net::Ipv4Addr, time::Duration, time::Instant};

use anyhow::{Context as _, Result, bail, ensure};
use aya::programs::Xdp;
use failover_agent::config::RateLimitSettings;
use failover_agent::serve::cookies::{self, Cookies, Secret};
use failover_tests::{
    packets::{CLIENT_IP, Opt, Query, UdpChecksum, check_answer},
    xdp::{
        EmptyProgram, Run, XDP_DROP, XDP_PASS, XDP_TX, XdpProgram,
        names_sharing_an_answer_cache_slot, pin_to_cpu,
    },
};

const DEFAULT_RUNS: u32 = 200_000;
const IN_KERNEL_REPEAT: u32 = 1_000_000;
/// The server secret of the benchmark's cookies.
const SECRET: Secret = *b"bench cookie key";
/// The client cookie of the cookie rows.
const CLIENT_COOKIE: [u8; 8] = *b"resolver";

fn parse_runs(args: &[String]) -> Result<u32> {
    match args {
        [] => Ok(DEFAULT_RUNS),
        [flag, n] if flag == "--runs" => {
            let n: u32 = n.parse()?;
            ensure!((1..=10_000_000).contains(&n), "--runs must be 1..=10000000");
            Ok(n)
        }
        _ => bail!("usage: failover-bench xdp [--runs N]  (default {DEFAULT_RUNS})"),
    }
}

/// Blocks a case's runs are split into: each figure is the median of the
/// blocks' means, so a burst of other work on this noisy machine moves one
/// block, not the figure.
const BLOCKS: u32 = 7;

/// Mean kernel-measured ns over `runs` single-repetition calls; the verdict of
/// every call must be `want`.
fn mean_ns(runs: u32, want: u32, mut run: impl FnMut() -> Result<Run>) -> Result<f64> {
    let mut total: u128 = 0;
    for _ in 0..runs {
        let r = run()?;
        ensure!(r.verdict == want, "verdict {} instead of {want}", r.verdict);
        total += r.ns_per_run;
    }
    Ok(total as f64 / runs as f64)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// `off` and `on` side by side: their blocks interleaved (`BLOCKS` of
/// `runs / BLOCKS` calls each), each the median of its block means.
fn side_by_side(
    runs: u32,
    want: u32,
    mut off: impl FnMut() -> Result<Run>,
    mut on: impl FnMut() -> Result<Run>,
) -> Result<(f64, f64)> {
    let per_block = (runs / BLOCKS).max(1);
    let (mut offs, mut ons) = (Vec::new(), Vec::new());
    for _ in 0..BLOCKS {
        offs.push(mean_ns(per_block, want, &mut off)?);
        ons.push(mean_ns(per_block, want, &mut on)?);
    }
    Ok((median(offs), median(ons)))
}

/// A rate limit of `rate` a second, `slip`, a `window` of saved-up answers.
fn rate_limit(rate: u32, slip: u32, window: Duration) -> RateLimitSettings {
    RateLimitSettings {
        responses_per_second: rate,
        ipv4_prefix: 24,
        ipv6_prefix: 56,
        slip,
        window,
        exempt: vec![],
        log_only: false,
    }
}

/// The program with the benchmark's answer sets and `limit`.
fn program(limit: Option<&RateLimitSettings>) -> Result<XdpProgram> {
    let mut xdp = XdpProgram::load()?;
    xdp.set_a("one.example.test.", 30, &[Ipv4Addr::new(192, 0, 2, 10)])?;
    let eight: Vec<_> = (1..=8).map(|i| Ipv4Addr::new(192, 0, 2, i)).collect();
    xdp.set_a("eight.example.test.", 30, &eight)?;
    let sixteen: Vec<_> = (1..=16).map(|i| Ipv4Addr::new(203, 0, 113, i)).collect();
    xdp.set_a("sixteen.example.test.", 30, &sixteen)?;
    let (first, second) = names_sharing_an_answer_cache_slot();
    xdp.set_a(&first, 30, &[Ipv4Addr::new(192, 0, 2, 21)])?;
    xdp.set_a(&second, 30, &[Ipv4Addr::new(192, 0, 2, 22)])?;
    xdp.dataplane.set_rate_limit(limit)?;
    xdp.dataplane
        .set_cookies(Some(&Cookies::with_secret(SECRET)))?;
    Ok(xdp)
}

/// An EDNS query for `name` with our client cookie and, if any, `server`.
fn with_cookie(name: &str, server: &[u8]) -> Query {
    Query::a(name).with_opt(Opt::new(1232).with_cookie(CLIENT_COOKIE, server))
}

/// Checks that `frame`, the answer to `query`, carries a server cookie of
/// ours for the client if the query sent a cookie.
fn check_cookie(query: &Query, frame: &[u8]) -> Result<()> {
    let answer = check_answer(query, frame)?;
    let Some(client) = query.opt.as_ref().and_then(Opt::client_cookie) else {
        return Ok(());
    };
    let cookie = answer.cookie.context("no server cookie")?;
    ensure!(
        cookies::made_by(&SECRET, &client, &cookie[8..], IpAddr::V4(CLIENT_IP)),
        "the answer's server cookie is not ours"
    );
    Ok(())
}

/// Checks that a valid server cookie exempts a query from the rate limit
/// and a client cookie alone does not: the valid-cookie row measures the
/// exempt path, not a plain answer.
fn check_cookie_exempt(client_only: &Query, valid: &Query) -> Result<()> {
    let over = program(Some(&rate_limit(1, 0, Duration::from_secs(1))))?;
    let (client_only, valid) = (client_only.frame(), valid.frame());
    over.run(&client_only)?;
    ensure!(
        over.run(&client_only)?.verdict == XDP_DROP,
        "a client cookie alone is not limited"
    );
    ensure!(
        over.run(&valid)?.verdict == XDP_TX,
        "a valid server cookie is limited"
    );
    Ok(())
}

/// The instruction count the verifier processed for `program`.
fn verified(program: &Xdp) -> Result<String> {
    Ok(program
        .info()?
        .verified_instruction_count()
        .map_or_else(|| "unknown".to_string(), |n| n.to_string()))
}

pub fn run(args: &[String]) -> Result<()> {
    let runs = parse_runs(args)?;
    pin_to_cpu(0)?;
    let xdp = program(None)?;
    // 10 million a second with an hour's window: nothing is ever over it.
    let within = program(Some(&rate_limit(10_000_000, 2, Duration::from_secs(3600))))?;
    let empty = EmptyProgram::load()?;

    let client_only = with_cookie("one.example.test.", &[]);
    let stamp = cookies::unix_now();
    let ours = cookies::server_cookie(&SECRET, &CLIENT_COOKIE, IpAddr::V4(CLIENT_IP), stamp);
    let valid = with_cookie("one.example.test.", &ours);
    check_cookie_exempt(&client_only, &valid)?;

    let cases: Vec<(&str, Query, u32)> = vec![
        ("hit, 1 address", Query::a("one.example.test."), XDP_TX),
        ("hit, 8 addresses", Query::a("eight.example.test."), XDP_TX),
        (
            "hit, 16 addresses, EDNS",
            Query::a("sixteen.example.test.").with_opt(Opt::new(1232)),
            XDP_TX,
        ),
        // The hits above carry a partial UDP checksum (as from a local socket
        // over veth: compared, not summed); this one a full one, summed.
        (
            "hit, 1 address, full UDP checksum",
            Query::a("one.example.test.").with_udp_checksum(UdpChecksum::Full),
            XDP_TX,
        ),
        (
            "hit, 16 addresses, EDNS, full UDP checksum",
            Query::a("sixteen.example.test.")
                .with_opt(Opt::new(1232))
                .with_udp_checksum(UdpChecksum::Full),
            XDP_TX,
        ),
        (
            "hit, 1 address, EDNS, client cookie",
            client_only.clone(),
            XDP_TX,
        ),
        (
            "hit, 1 address, EDNS, valid server cookie",
            valid.clone(),
            XDP_TX,
        ),
        (
            "not for us (foreign destination address)",
            Query {
                dst_ip: Some("198.51.100.7".parse()?),
                ..Query::a("one.example.test.")
            },
            XDP_PASS,
        ),
        (
            "miss (name not in map)",
            Query::a("nope.example.test."),
            XDP_PASS,
        ),
        // Parsed up to the type, no map lookup: splits a miss into parse and lookup.
        (
            "MX (parsed, no lookup)",
            Query::a("one.example.test.").with_qtype(15),
            XDP_PASS,
        ),
        (
            "not DNS (UDP port 443)",
            Query {
                dst_port: 443,
                ..Query::a("one.example.test.")
            },
            XDP_PASS,
        ),
    ];

    let started = Instant::now();
    let probe = Query::a("one.example.test.").frame();
    let (baseline, _) = side_by_side(
        runs,
        XDP_PASS,
        || empty.run(&probe, 1),
        || empty.run(&probe, 1),
    )?;
    println!(
        "XDP program, BPF_PROG_TEST_RUN, {runs} single-repetition runs per case and program, the median of {BLOCKS} interleaved blocks, CPU 0"
    );
    println!();
    println!(
        "| case | verdict | ns/packet, no rate limit | ns/packet, rate limit on | minus empty program, off | minus empty program, on |"
    );
    println!("|---|---|---:|---:|---:|---:|");
    println!(
        "| empty XDP program (timer overhead) | XDP_PASS | {baseline:.1} | {baseline:.1} | 0.0 | 0.0 |"
    );
    for (name, query, verdict) in &cases {
        let frame = query.frame();
        // Check once that the case does what it says before timing it.
        let first = xdp.run(&frame)?;
        ensure!(
            first.verdict == *verdict,
            "{name}: verdict {}",
            first.verdict
        );
        if *verdict == XDP_TX {
            check_cookie(query, &first.frame).with_context(|| name.to_string())?;
        }
        let (off, on) = side_by_side(runs, *verdict, || xdp.run(&frame), || within.run(&frame))?;
        let label = if *verdict == XDP_TX {
            "XDP_TX"
        } else {
            "XDP_PASS"
        };
        println!(
            "| {name} | {label} | {off:.1} | {on:.1} | {:.1} | {:.1} |",
            off - baseline,
            on - baseline
        );
    }
    // Two names sharing a slot of the per-CPU answer cache, asked in
    // turn: every answer is looked up in its record map (the rows above
    // are answered from the cache, as a hot name is).
    let (first, second) = names_sharing_an_answer_cache_slot();
    let frames = [Query::a(&first).frame(), Query::a(&second).frame()];
    let (mut turn_off, mut turn_on) = (0, 0);
    let (off, on) = side_by_side(
        runs,
        XDP_TX,
        || {
            turn_off += 1;
            xdp.run(&frames[turn_off % 2])
        },
        || {
            turn_on += 1;
            within.run(&frames[turn_on % 2])
        },
    )?;
    println!(
        "| hit, 1 address, not in the answer cache (two names sharing its slot, in turn) | XDP_TX | {off:.1} | {on:.1} | {:.1} | {:.1} |",
        off - baseline,
        on - baseline
    );
    // Over the rate (one answer a second, spent by the check): every
    // further one slipped, or dropped.
    let frame = Query::a("one.example.test.").frame();
    for (name, slip, verdict, label) in [
        (
            "hit, 1 address, over the rate: slipped (TC=1)",
            1,
            XDP_TX,
            "XDP_TX",
        ),
        (
            "hit, 1 address, over the rate: dropped",
            0,
            XDP_DROP,
            "XDP_DROP",
        ),
    ] {
        let over = program(Some(&rate_limit(1, slip, Duration::from_secs(1))))?;
        over.run(&frame)?;
        // A run longer than a CPU's interval (seconds) lets one answer
        // through each time: those are left out of the mean.
        let (mut total, mut counted) = (0u128, 0u32);
        for _ in 0..runs {
            let r = over.run(&frame)?;
            if r.verdict == verdict {
                total += r.ns_per_run;
                counted += 1;
            }
        }
        ensure!(
            counted >= runs - runs / 100,
            "{name}: only {counted} of {runs} runs over the rate"
        );
        let ns = total as f64 / f64::from(counted);
        println!(
            "| {name} | {label} | - | {ns:.1} | - | {:.1} |",
            ns - baseline
        );
    }
    let miss = Query::a("nope.example.test.").frame();
    let repeated = xdp.run_repeat(&miss, IN_KERNEL_REPEAT)?;
    ensure!(repeated.verdict == XDP_PASS);
    let empty_repeated = empty.run(&miss, IN_KERNEL_REPEAT)?;
    println!();
    println!(
        "in-kernel repeat {IN_KERNEL_REPEAT}: miss {} ns/packet, empty program {} ns/packet",
        repeated.ns_per_run, empty_repeated.ns_per_run
    );
    println!(
        "verified instructions: {} {}, {} {} (limit 1,000,000 each)",
        failover_common::PROGRAM_XDP,
        verified(xdp.dataplane.program())?,
        failover_common::PROGRAM_XDP_ANSWER,
        verified(
            xdp.dataplane
                .ebpf_program(failover_common::PROGRAM_XDP_ANSWER)
        )?,
    );
    println!("took {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}
