//! dig and kdig, run in the client namespace, their printed answers parsed
//! into [`ToolAnswer`]s; and [`Dig`], the part of a `dig` answer for an A
//! record the system tests assert on, with [`dig`] and [`dig_until`].

use std::{
    collections::BTreeSet,
    net::{IpAddr, Ipv4Addr},
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use crate::{
    Netns,
    netns::DNS_SERVER_ADDR,
    peers::{require_program, run_bounded},
    poll_until,
};

/// Wall-clock limit of one dig/kdig run (each also has its own query timeout).
const CLIENT_LIMIT: Duration = Duration::from_secs(10);
/// How long [`dig_until`] waits for the answer it wants.
pub const DIG_LIMIT: Duration = Duration::from_secs(5);
/// How often [`dig_until`] asks.
const DIG_EVERY: Duration = Duration::from_millis(20);

/// Which client program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tool {
    /// ISC's dig (bind9-dnsutils). Sends names with the case given.
    Dig,
    /// Knot's kdig (knot-dnsutils). Lowercases names before sending.
    Kdig,
}

impl Tool {
    pub fn program(self) -> &'static str {
        match self {
            Tool::Dig => "dig",
            Tool::Kdig => "kdig",
        }
    }

    pub fn package(self) -> &'static str {
        match self {
            Tool::Dig => "bind9-dnsutils",
            Tool::Kdig => "knot-dnsutils",
        }
    }
}

/// One dig/kdig invocation.
#[derive(Clone, Debug)]
pub struct ToolQuery {
    pub tool: Tool,
    pub server: IpAddr,
    pub port: u16,
    pub name: String,
    /// As the tools spell it: `"A"`, `"AAAA"`, `"SOA"`, `"TYPE65"`, ...
    pub qtype: String,
    pub tcp: bool,
    /// `Some(size)`: EDNS version 0 advertising `size`; `None`: no OPT.
    pub edns: Option<u16>,
    pub recurse: bool,
    /// Show a truncated UDP answer instead of retrying over TCP.
    pub ignore_tc: bool,
    /// Seconds the tool waits for the answer (one try).
    pub timeout_secs: u32,
    /// More arguments, after all the others (later options win).
    pub extra: Vec<String>,
}

impl ToolQuery {
    pub fn new(tool: Tool, server: IpAddr, name: &str, qtype: &str) -> Self {
        Self {
            tool,
            server,
            port: 53,
            name: name.to_string(),
            qtype: qtype.to_string(),
            tcp: false,
            edns: Some(1232),
            recurse: false,
            ignore_tc: true,
            timeout_secs: 2,
            extra: Vec::new(),
        }
    }

    pub fn args(&self) -> Vec<String> {
        let mut args = vec![
            format!("@{}", self.server),
            "-p".into(),
            self.port.to_string(),
            self.name.clone(),
            self.qtype.clone(),
            // Every section, its name and the header, nothing else.
            "+noall".into(),
            "+comments".into(),
            "+question".into(),
            "+answer".into(),
            "+authority".into(),
            "+additional".into(),
            if self.recurse {
                "+recurse"
            } else {
                "+norecurse"
            }
            .into(),
        ];
        match self.tool {
            Tool::Dig => {
                args.extend([
                    "+tries=1".to_string(),
                    format!("+time={}", self.timeout_secs),
                    // Cookies are an EDNS option the server may ignore; without
                    // one the answers' OPT records compare plainly.
                    "+nocookie".into(),
                ]);
            }
            Tool::Kdig => {
                args.extend([
                    "+header".to_string(),
                    "+opt".into(),
                    "+retry=0".into(),
                    format!("+timeout={}", self.timeout_secs),
                ]);
            }
        }
        match self.edns {
            Some(size) => args.extend(["+edns=0".to_string(), format!("+bufsize={size}")]),
            None => args.push("+noedns".into()),
        }
        if self.tcp {
            args.push("+tcp".into());
        }
        if self.ignore_tc {
            args.push("+ignore".into());
        }
        args.extend(self.extra.iter().cloned());
        args
    }

    /// Runs the tool in namespace `ns` and parses what it printed. Fails if
    /// it gets no answer (timeout, refused connection) or prints no header.
    pub fn run(&self, ns: &str) -> Result<ToolAnswer> {
        let program = require_program(self.tool.program(), self.tool.package())?;
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns])
            .arg(program)
            .args(self.args());
        let out = run_bounded(&mut cmd, CLIENT_LIMIT)?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            bail!(
                "{} {} failed ({}):\n{stdout}{}",
                self.tool.program(),
                self.args().join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        ToolAnswer::parse(&stdout).with_context(|| {
            format!(
                "parsing the output of {} {}:\n{stdout}",
                self.tool.program(),
                self.args().join(" ")
            )
        })
    }
}

/// One resource record as the tools print it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Rr {
    /// Owner name as printed (case kept), absolute.
    pub name: String,
    pub ttl: u32,
    pub class: String,
    pub rtype: String,
    /// The RDATA fields joined by single spaces.
    pub rdata: String,
}

impl Rr {
    /// Owner lowercased; the rest as is: for comparing record sets.
    pub fn normalized(&self) -> Rr {
        Rr {
            name: self.name.to_ascii_lowercase(),
            ..self.clone()
        }
    }
}

/// What dig or kdig printed, parsed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ToolAnswer {
    /// `NOERROR`, `NXDOMAIN`, `REFUSED`, `BADVERS`, ...
    pub rcode: String,
    /// Header flags, lowercase: `qr`, `aa`, `tc`, `rd`, `ra`, ...
    pub flags: BTreeSet<String>,
    /// Question name (as printed) and type.
    pub question: Option<(String, String)>,
    pub answer: Vec<Rr>,
    pub authority: Vec<Rr>,
    /// Without the OPT pseudo-record.
    pub additional: Vec<Rr>,
    /// EDNS of the response: (version, UDP payload size).
    pub edns: Option<(u8, u16)>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Section {
    None,
    Question,
    Answer,
    Authority,
    Additional,
}

impl ToolAnswer {
    pub fn has_flag(&self, flag: &str) -> bool {
        self.flags.contains(flag)
    }

    /// Records of the answer section of type `rtype`, owner lowercased, sorted.
    pub fn answer_set(&self, rtype: &str) -> Vec<Rr> {
        let mut set: Vec<Rr> = self
            .answer
            .iter()
            .filter(|r| r.rtype == rtype)
            .map(Rr::normalized)
            .collect();
        set.sort();
        set
    }

    /// RDATA of the answer records of type `rtype`, sorted.
    pub fn rdata(&self, rtype: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .answer
            .iter()
            .filter(|r| r.rtype == rtype)
            .map(|r| r.rdata.clone())
            .collect();
        v.sort();
        v
    }

    /// Parses dig's or kdig's text output (`+noall +comments +question
    /// +answer +authority +additional`, plus `+header +opt` for kdig).
    pub fn parse(text: &str) -> Result<Self> {
        let mut answer = ToolAnswer::default();
        let mut section = Section::None;
        let mut saw_header = false;
        for line in text.lines() {
            let trimmed = line.trim();
            if trimmed.is_empty() {
                section = Section::None;
                continue;
            }
            if let Some(rest) = trimmed.split("->>HEADER<<-").nth(1) {
                // dig: "opcode: QUERY, status: NOERROR, id: 1"; kdig uses ';'.
                let status = rest
                    .split([',', ';'])
                    .find_map(|part| part.trim().strip_prefix("status:"))
                    .context("header line without a status")?;
                answer.rcode = status.trim().to_string();
                saw_header = true;
                continue;
            }
            let lower = trimmed.to_ascii_lowercase();
            if let Some(rest) = lower.strip_prefix(";; flags:") {
                // "qr aa rd; QUERY: 1, ..." (dig) or "qr aa rd; QUERY: 1; ..." (kdig).
                let flags = rest.split(';').next().unwrap_or("");
                answer.flags = flags.split_whitespace().map(str::to_string).collect();
                continue;
            }
            if let Some(rest) = lower.strip_prefix("; edns: version:") {
                // dig: "; EDNS: version: 0, flags:; udp: 1232"
                let version = rest.split(',').next().unwrap_or("").trim();
                let udp = rest
                    .split("udp:")
                    .nth(1)
                    .map(|u| u.trim().trim_end_matches(';').trim())
                    .unwrap_or("");
                answer.edns = Some((
                    version.parse().context("EDNS version")?,
                    udp.parse().context("EDNS UDP size")?,
                ));
                continue;
            }
            if let Some(rest) = lower.strip_prefix(";; version:") {
                // kdig: ";; Version: 0; flags: ; UDP size: 1232 B; ext-rcode: NOERROR"
                let version = rest.split(';').next().unwrap_or("").trim();
                let udp = rest
                    .split("udp size:")
                    .nth(1)
                    .and_then(|u| u.split_whitespace().next())
                    .unwrap_or("");
                answer.edns = Some((
                    version.parse().context("EDNS version")?,
                    udp.parse().context("EDNS UDP size")?,
                ));
                continue;
            }
            if trimmed.starts_with(";;") && trimmed.ends_with("SECTION:") {
                section = if trimmed.contains("QUESTION") {
                    Section::Question
                } else if trimmed.contains("ANSWER") {
                    Section::Answer
                } else if trimmed.contains("AUTHORITY") {
                    Section::Authority
                } else if trimmed.contains("ADDITIONAL") {
                    Section::Additional
                } else {
                    Section::None
                };
                continue;
            }
            match section {
                Section::Question => {
                    // dig: ";name.\t\tIN\tA"; kdig: ";; name.   \t\tIN\tA"
                    let fields: Vec<&str> =
                        trimmed.trim_start_matches(';').split_whitespace().collect();
                    if let [name, _class, qtype] = fields[..] {
                        answer.question = Some((name.to_string(), qtype.to_string()));
                    } else {
                        bail!("question line {trimmed:?}");
                    }
                }
                Section::Answer | Section::Authority | Section::Additional
                    if !trimmed.starts_with(';') =>
                {
                    let rr = parse_rr(trimmed)?;
                    if rr.rtype == "OPT" {
                        continue;
                    }
                    match section {
                        Section::Answer => answer.answer.push(rr),
                        Section::Authority => answer.authority.push(rr),
                        _ => answer.additional.push(rr),
                    }
                }
                _ => {}
            }
        }
        if !saw_header {
            bail!("no ->>HEADER<<- line: the tool printed no answer");
        }
        Ok(answer)
    }
}

/// "name ttl class type rdata..." (whitespace-separated, as both tools print).
fn parse_rr(line: &str) -> Result<Rr> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    if fields.len() < 4 {
        bail!("record line {line:?}");
    }
    Ok(Rr {
        name: fields[0].to_string(),
        ttl: fields[1]
            .parse()
            .with_context(|| format!("TTL in {line:?}"))?,
        class: fields[2].to_string(),
        rtype: fields[3].to_string(),
        rdata: fields[4..].join(" "),
    })
}

// ---------------------------------------------------------------------------
// The answers the system tests assert on

/// [`dig`]'s `extra` for a query over UDP, which the kernel (XDP) answers.
pub const UDP: &[&str] = &[];
/// [`dig`]'s `extra` for a query over TCP, which the agent answers in userspace.
pub const TCP: &[&str] = &["+tcp"];

/// One `dig` answer to an A query.
#[derive(Debug, Default)]
pub struct Dig {
    /// `NOERROR`, `NXDOMAIN`, `SERVFAIL`, ...
    pub status: String,
    pub aa: bool,
    /// (TTL, address) of each A record in the answer section, in order.
    pub answers: Vec<(u32, Ipv4Addr)>,
    /// Types of the authority section's records.
    pub authority: Vec<String>,
}

impl Dig {
    /// The answer's addresses, sorted.
    pub fn addrs(&self) -> Vec<Ipv4Addr> {
        let mut addrs: Vec<Ipv4Addr> = self.answers.iter().map(|(_, a)| *a).collect();
        addrs.sort();
        addrs
    }

    fn from_answer(answer: &ToolAnswer) -> Result<Dig> {
        let answers = answer
            .answer
            .iter()
            .filter(|r| r.rtype == "A")
            .map(|r| {
                let address = r.rdata.parse().with_context(|| format!("A record {r:?}"))?;
                Ok((r.ttl, address))
            })
            .collect::<Result<_>>()?;
        Ok(Dig {
            status: answer.rcode.clone(),
            aa: answer.has_flag("aa"),
            answers,
            authority: answer.authority.iter().map(|r| r.rtype.clone()).collect(),
        })
    }
}

/// `dig @DNS_SERVER_ADDR name A` from the client namespace, with
/// [`ToolQuery`]'s options (one try, no recursion, EDNS, no cookie) and then
/// `extra`, which win over them. Panics, with the agent's log, if dig gets no
/// answer.
pub fn dig(netns: &Netns, name: &str, extra: &[&str]) -> Dig {
    let mut query = ToolQuery::new(Tool::Dig, IpAddr::V4(DNS_SERVER_ADDR), name, "A");
    query.extra = extra.iter().map(|e| e.to_string()).collect();
    query
        .run(&netns.client)
        .and_then(|answer| Dig::from_answer(&answer))
        .unwrap_or_else(|e| {
            panic!(
                "dig {name} {extra:?}: {e:#}\nagent log:\n{}",
                netns.agent_log()
            )
        })
}

/// Digs `name` once with each of `ways` (e.g. `&[UDP, TCP]`: the kernel and
/// userspace) until every answer satisfies `want`; how long that took and
/// the first way's answer. Panics, with the last answers and the agent's
/// log, after [`DIG_LIMIT`].
pub fn dig_until(
    netns: &Netns,
    name: &str,
    ways: &[&[&str]],
    what: &str,
    mut want: impl FnMut(&Dig) -> bool,
) -> (Duration, Dig) {
    assert!(!ways.is_empty(), "dig_until needs at least one way to ask");
    let start = Instant::now();
    let mut last = Vec::new();
    let found = poll_until(DIG_LIMIT, DIG_EVERY, || {
        let answers: Vec<Dig> = ways.iter().map(|extra| dig(netns, name, extra)).collect();
        let ok = answers.iter().all(&mut want);
        last = ways
            .iter()
            .zip(&answers)
            .map(|(extra, d)| format!("{extra:?}: {d:?}"))
            .collect();
        Ok(ok.then(|| answers.into_iter().next().expect("one way at least")))
    })
    .expect("digging");
    match found {
        Some(d) => (start.elapsed(), d),
        None => panic!(
            "{name}: no answer {what} within {DIG_LIMIT:?}; last: {last:?}\nagent log:\n{}",
            netns.agent_log()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIG: &str = ";; Got answer:
;; ->>HEADER<<- opcode: QUERY, status: NOERROR, id: 7933
;; flags: qr aa; QUERY: 1, ANSWER: 1, AUTHORITY: 0, ADDITIONAL: 1

;; OPT PSEUDOSECTION:
; EDNS: version: 0, flags:; udp: 1232
;; QUESTION SECTION:
;wWw.Example.TEST.\t\tIN\tA

;; ANSWER SECTION:
wWw.Example.TEST.\t300\tIN\tA\t203.0.113.99

";

    const KDIG: &str = ";; ->>HEADER<<- opcode: QUERY; status: NXDOMAIN; id: 30620
;; Flags: qr aa tc; QUERY: 1; ANSWER: 0; AUTHORITY: 1; ADDITIONAL: 1

;; EDNS PSEUDOSECTION:
;; Version: 0; flags: ; UDP size: 1232 B; ext-rcode: NOERROR

;; QUESTION SECTION:
;; nope.example.test.   \t\tIN\tTXT

;; AUTHORITY SECTION:
example.test.       \t60\tIN\tSOA\tns1.example.test. hostmaster.example.test. 2026112301 3600 600 1209600 60

;; Received 61 B
;; Time 2026-11-23 22:09:47 UTC
;; From 198.51.100.1@53(UDP) in 3.1 ms
";

    #[test]
    fn parses_dig_output() {
        let a = ToolAnswer::parse(DIG).unwrap();
        assert_eq!(a.rcode, "NOERROR");
        assert_eq!(
            a.flags,
            ["qr", "aa"].map(String::from).into_iter().collect()
        );
        assert_eq!(a.edns, Some((0, 1232)));
        assert_eq!(
            a.question,
            Some(("wWw.Example.TEST.".to_string(), "A".to_string()))
        );
        assert_eq!(a.answer.len(), 1);
        assert_eq!(a.answer[0].ttl, 300);
        assert_eq!(a.answer[0].rdata, "203.0.113.99");
        assert_eq!(a.answer_set("A")[0].name, "www.example.test.");
        assert!(a.authority.is_empty());
    }

    #[test]
    fn parses_kdig_output() {
        let a = ToolAnswer::parse(KDIG).unwrap();
        assert_eq!(a.rcode, "NXDOMAIN");
        assert!(a.has_flag("tc") && a.has_flag("aa") && !a.has_flag("rd"));
        assert_eq!(a.edns, Some((0, 1232)));
        assert_eq!(
            a.question,
            Some(("nope.example.test.".to_string(), "TXT".to_string()))
        );
        assert!(a.answer.is_empty());
        assert_eq!(a.authority.len(), 1);
        let soa = &a.authority[0];
        assert_eq!((soa.rtype.as_str(), soa.ttl), ("SOA", 60));
        assert_eq!(
            soa.rdata,
            "ns1.example.test. hostmaster.example.test. 2026112301 3600 600 1209600 60"
        );
    }

    #[test]
    fn no_header_is_an_error() {
        assert!(
            ToolAnswer::parse(";; connection timed out; no servers could be reached\n").is_err()
        );
    }

    #[test]
    fn dig_view_of_an_answer() {
        let d = Dig::from_answer(&ToolAnswer::parse(DIG).unwrap()).unwrap();
        assert_eq!(d.status, "NOERROR");
        assert!(d.aa);
        assert_eq!(d.answers, [(300, Ipv4Addr::new(203, 0, 113, 99))]);
        assert_eq!(d.addrs(), [Ipv4Addr::new(203, 0, 113, 99)]);
        let d = Dig::from_answer(&ToolAnswer::parse(KDIG).unwrap()).unwrap();
        assert_eq!((d.status.as_str(), d.aa), ("NXDOMAIN", true));
        assert!(d.answers.is_empty());
        assert_eq!(d.authority, ["SOA"]);
    }
}
