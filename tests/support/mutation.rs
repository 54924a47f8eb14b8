//! The mutation fuzzer over the XDP program: valid queries from
//! [`crate::r#gen::QueryGen`], broken by [`crate::r#gen::mutate`], run through the
//! real program with BPF_PROG_TEST_RUN. Shared by the `xdp_mutation` test
//! (10,000 cases in the suite) and `failover-fuzz xdp` (`cargo xtask fuzz
//! xdp --cases N`, millions).
//!
//! Properties, for every mutant:
//! - XDP_PASS leaves the frame byte for byte as it came; XDP_DROP never
//!   happens (the program drops only after a failed resize, a kernel bug).
//! - XDP_TX: (a) the answer frame passes every transport check (addresses,
//!   ports, lengths, both checksums) and its DNS message parses with
//!   hickory, echoes the id and question and respects the size limit;
//!   (b) the mutated query, as the stack would deliver it, is one the
//!   userspace parser accepts: hickory parses it and it is a plain query
//!   (QR=0, opcode QUERY, one question) — the kernel never answers what the
//!   userspace parser rejects; (c) the userspace responder, given the same
//!   query, answers it with the same meaning (as in the differential test).

use std::fmt;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use failover_agent::serve::{AnswerTable, Responder as Userspace, Transport};
use hickory_proto::op::{Message, MessageType, OpCode};

use crate::compare::{check_reply_frame, dns_payload, hex, semantic_diff, weighted_choices};
use crate::r#gen::{Layout, QueryGen, Universe, feed, mutate, test_config};
use crate::packets::internet_checksum;
use crate::xdp::{XDP_DROP, XDP_PASS, XDP_TX, XdpProgram};

/// What to run.
#[derive(Clone, Debug)]
pub struct MutationRun {
    pub cases: u64,
    pub seed: u64,
    /// Stop after this many findings.
    pub max_findings: usize,
    /// Print a progress line about every 10 s.
    pub progress: bool,
}

/// What a run saw.
#[derive(Debug, Default)]
pub struct MutationReport {
    pub seed: u64,
    pub cases: u64,
    pub answered: u64,
    pub passed: u64,
    pub dropped: u64,
    /// Mutants identical to their query (e.g. a flipped case bit undone).
    pub unchanged: u64,
    /// Answered mutants that differ from their query (not just unchanged).
    pub answered_mutants: u64,
    pub findings: Vec<String>,
    pub elapsed: Duration,
}

impl MutationReport {
    pub fn cases_per_second(&self) -> f64 {
        self.cases as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

impl fmt::Display for MutationReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pct = |n: u64| 100.0 * n as f64 / self.cases.max(1) as f64;
        writeln!(
            f,
            "mutation fuzzer: seed {:#x}, {} cases in {:.1} s ({:.0} cases/s)",
            self.seed,
            self.cases,
            self.elapsed.as_secs_f64(),
            self.cases_per_second()
        )?;
        writeln!(
            f,
            "  kernel answered {} ({:.1}%; {} of them real mutants), passed {} ({:.1}%), dropped {}",
            self.answered,
            pct(self.answered),
            self.answered_mutants,
            self.passed,
            pct(self.passed),
            self.dropped
        )?;
        writeln!(f, "  unchanged mutants {}", self.unchanged)?;
        write!(f, "  findings: {}", self.findings.len())
    }
}

/// Runs the fuzzer (needs root for BPF).
pub fn run(opts: &MutationRun) -> Result<MutationReport> {
    let config = test_config();
    let mut kernel = XdpProgram::load().context("loading the XDP program (root?)")?;
    feed(&config, &mut kernel.dataplane)?;
    let mut table = AnswerTable::new();
    feed(&config, &mut table)?;
    let userspace = Userspace::new(table);
    let mut generator = QueryGen::new(Universe::of(&config), opts.seed);

    let mut report = MutationReport {
        seed: opts.seed,
        ..MutationReport::default()
    };
    let start = Instant::now();
    let mut next_progress = start + Duration::from_secs(10);
    for case in 0..opts.cases {
        // Mostly queries the kernel would answer, so that mutants probe the
        // paths that lead to XDP_TX; the rest of every kind.
        let base = if generator.rng().chance(75) {
            generator.generate_answerable()
        } else {
            generator.generate()
        };
        let frame = base.query.frame();
        let (mutant, what) = mutate(&frame, Layout::of(&base.query), generator.rng());
        let run = kernel
            .run(&mutant)
            .with_context(|| format!("case {case}: {what}: frame {}", hex(&mutant)))?;
        report.cases += 1;
        if mutant == frame {
            report.unchanged += 1;
        }
        let verdict = match run.verdict {
            XDP_TX => {
                report.answered += 1;
                if mutant != frame {
                    report.answered_mutants += 1;
                }
                if bad_ipv4_checksum(&mutant) {
                    Err("answered a frame whose IPv4 header checksum is wrong".to_string())
                } else if martian_source(&mutant) {
                    Err("answered a martian source address or UDP source port 0".to_string())
                } else {
                    check_answered(&mutant, &run.frame, &userspace)
                }
            }
            XDP_PASS => {
                report.passed += 1;
                if run.frame == mutant {
                    Ok(())
                } else {
                    Err("XDP_PASS but the frame was modified".to_string())
                }
            }
            XDP_DROP => {
                report.dropped += 1;
                Err("XDP_DROP (the program drops only after a failed resize)".to_string())
            }
            other => Err(format!("unexpected verdict {other}")),
        };
        if let Err(e) = verdict {
            let user = dns_payload(&mutant)
                .ok()
                .and_then(|r| userspace.answer(&mutant[r], Transport::Udp))
                .map_or_else(|| "none".to_string(), |a| hex(&a));
            let finding = format!(
                "case {case} (seed {:#x}): {e}\n  base query: {base}\n  mutation: {what}\n  \
                 mutant:    {}\n  kernel:    verdict {} {}\n  userspace: {user}",
                opts.seed,
                hex(&mutant),
                run.verdict,
                hex(&run.frame),
            );
            if opts.progress {
                eprintln!("FINDING {finding}");
            }
            report.findings.push(finding);
            if report.findings.len() >= opts.max_findings {
                break;
            }
        }
        if opts.progress && Instant::now() >= next_progress {
            next_progress += Duration::from_secs(10);
            eprintln!(
                "  {} cases, {} answered, {} findings, {:.0} cases/s",
                report.cases,
                report.answered,
                report.findings.len(),
                report.cases as f64 / start.elapsed().as_secs_f64()
            );
        }
    }
    report.elapsed = start.elapsed();
    Ok(report)
}

/// Properties (a), (b) and (c) for a mutant the kernel answered.
fn check_answered(mutant: &[u8], reply: &[u8], userspace: &Userspace) -> Result<(), String> {
    let reply_dns = check_reply_frame(mutant, reply).map_err(|e| format!("(a) {e}"))?;
    let query = &mutant[dns_payload(mutant).map_err(|e| format!("(b) {e}"))?];
    plain_query(query).map_err(|e| format!("(b) {e}"))?;
    userspace_agrees(query, &reply[reply_dns], userspace).map_err(|e| format!("(c) {e}"))
}

/// Does hickory parse `query` as a plain query (QR=0, opcode QUERY, one question)?
fn plain_query(query: &[u8]) -> Result<(), String> {
    let message =
        Message::from_vec(query).map_err(|e| format!("answered a query hickory rejects: {e}"))?;
    if message.message_type() != MessageType::Query
        || message.op_code() != OpCode::Query
        || message.queries().len() != 1
    {
        return Err(format!(
            "answered a query that is not plain: {:?} {:?}, {} questions",
            message.message_type(),
            message.op_code(),
            message.queries().len()
        ));
    }
    Ok(())
}

fn userspace_agrees(query: &[u8], kernel: &[u8], userspace: &Userspace) -> Result<(), String> {
    let user = userspace
        .answer(query, Transport::Udp)
        .ok_or("userspace does not answer it at all")?;
    let choices = weighted_choices(userspace.answers(), query);
    semantic_diff(kernel, &user, choices.as_deref())
}

/// Does `frame` come from an address the Linux stack drops as martian, or
/// from UDP port 0?
fn martian_source(frame: &[u8]) -> bool {
    let Some(l) = crate::compare::FrameLayout::of(frame) else {
        return false;
    };
    if frame.len() < l.l4() + 2 {
        return false;
    }
    let port_zero = frame[l.l4()..l.l4() + 2] == [0, 0];
    let address = if l.v6 {
        let src = &frame[l.l3 + 8..l.l3 + 24];
        // ::1 is no martian here: BPF_PROG_TEST_RUN delivers on lo.
        src[0] == 0xff || src[..15].iter().all(|&b| b == 0) && src[15] == 0
    } else {
        let a = frame[l.l3 + 12];
        // 127/8 is no martian here: BPF_PROG_TEST_RUN delivers on lo.
        a == 0 || a >= 224
    };
    port_zero || address
}

/// Is `frame` IPv4 with a header checksum that does not verify?
fn bad_ipv4_checksum(frame: &[u8]) -> bool {
    match crate::compare::FrameLayout::of(frame) {
        Some(l) if !l.v6 && frame.len() >= l.l3 + 20 => {
            internet_checksum(&frame[l.l3..l.l3 + 20]) != 0
        }
        _ => false,
    }
}
