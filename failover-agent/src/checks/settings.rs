//! `[checks.NAME]`: the keys every kind shares and the dispatch to the
//! kind that owns the rest (each kind's file parses and validates its own
//! keys, the way it runs its own probe).

use std::net::IpAddr;
use std::time::Duration;

pub use super::file::{CheckFile, StatusFile};
pub use super::target::CheckTarget;

use super::dns::DnsCheck;
use super::exec::ExecCheck;
use super::health::Damping;
use super::http::HttpCheck;
use crate::field::{
    FieldError, count_value, duration_value, field_err, port_value, unicast_address,
};

pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(500);
pub const DEFAULT_RISE: u32 = 2;
pub const DEFAULT_FALL: u32 = 3;
/// Longest `interval` (and so `timeout`): a day. Longer is a mistake, not
/// a health check, and stays far from what timers can add to a clock.
pub const MAX_INTERVAL: Duration = Duration::from_secs(24 * 60 * 60);
/// Largest `rise` and `fall`.
pub const MAX_RISE_FALL: u32 = 1000;

/// What one check does, with its kind's settings.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum CheckKind {
    Tcp,
    /// `http` (no `tls`) and `https`.
    Http(HttpCheck),
    Dns(DnsCheck),
    Icmp,
    Exec(ExecCheck),
}

impl CheckKind {
    /// The kind's name in the file.
    pub fn name(&self) -> &'static str {
        match self {
            CheckKind::Tcp => "tcp",
            CheckKind::Http(http) if http.tls.is_some() => "https",
            CheckKind::Http(_) => "http",
            CheckKind::Dns(_) => "dns",
            CheckKind::Icmp => "icmp",
            CheckKind::Exec(_) => "exec",
        }
    }
}

/// A validated `[checks.NAME]`. Two records whose checks are equal and whose
/// endpoints probe the same target share one probe.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Check {
    pub kind: CheckKind,
    /// `None` for icmp, and for exec without a port.
    pub port: Option<u16>,
    pub interval: Duration,
    pub timeout: Duration,
    pub rise: u32,
    pub fall: u32,
    /// Each interval is drawn from `interval ± jitter`.
    pub jitter: Duration,
    pub damping: Damping,
    /// Probe this address instead of the endpoint's (unless the endpoint
    /// has its own `check_address`).
    pub target_address: Option<IpAddr>,
}

/// Validates `[checks.NAME]` (`path` is its field path).
pub fn parse(name: &str, path: &str, check: &CheckFile) -> Result<Check, FieldError> {
    let kind_name = check.kind.as_str();
    if !["tcp", "http", "https", "dns", "icmp", "exec"].contains(&kind_name) {
        return Err(field_err(
            format!("{path}.kind"),
            format!(
                "unknown check kind {kind_name}: expected \"tcp\", \"http\", \"https\", \"dns\", \"icmp\" or \"exec\"",
                kind_name = crate::field::quoted(kind_name)
            ),
        ));
    }
    // Keys of one kind given to another are mistakes, not silently ignored.
    let is_http = kind_name == "http" || kind_name == "https";
    let foreign: [(&str, bool, &str); 15] = [
        ("method", check.method.is_some(), "http/https"),
        ("path", check.path.is_some(), "http/https"),
        ("host", check.host.is_some(), "http/https"),
        ("headers", check.headers.is_some(), "http/https"),
        ("expect_status", check.expect_status.is_some(), "http/https"),
        ("expect_body", check.expect_body.is_some(), "http/https"),
        ("body_limit", check.body_limit.is_some(), "http/https"),
        ("sni", check.sni.is_some(), "https"),
        ("verify", check.verify.is_some(), "https"),
        ("ca_file", check.ca_file.is_some(), "https"),
        ("query_name", check.query_name.is_some(), "dns"),
        ("query_type", check.query_type.is_some(), "dns"),
        ("expect_rcode", check.expect_rcode.is_some(), "dns"),
        ("expect_answer", check.expect_answer.is_some(), "dns"),
        ("command", check.command.is_some(), "exec"),
    ];
    for (key, present, kinds) in foreign {
        let applies = match kinds {
            "http/https" => is_http,
            other => other == kind_name,
        };
        if present && !applies {
            return Err(field_err(
                format!("{path}.{key}"),
                format!("{key} is for {kinds} checks, not {kind_name}"),
            ));
        }
    }
    if check.recursion.is_some() && kind_name != "dns" {
        return Err(field_err(
            format!("{path}.recursion"),
            format!("recursion is for dns checks, not {kind_name}"),
        ));
    }

    let port = match (check.port, kind_name) {
        (None, "tcp") => {
            return Err(field_err(
                format!("{path}.port"),
                "required for a tcp check (e.g. port = 443)",
            ));
        }
        (None, "http") => Some(80),
        (None, "https") => Some(443),
        (None, "dns") => Some(53),
        (None, _) => None,
        (Some(_), "icmp") => {
            return Err(field_err(
                format!("{path}.port"),
                "an icmp check has no port (echo requests go to the address)",
            ));
        }
        (Some(p), _) => Some(port_value(&format!("{path}.port"), p)?),
    };
    let interval = duration_value(
        &format!("{path}.interval"),
        check.interval.as_ref(),
        DEFAULT_INTERVAL,
        MAX_INTERVAL,
    )?;
    let timeout = duration_value(
        &format!("{path}.timeout"),
        check.timeout.as_ref(),
        DEFAULT_TIMEOUT,
        MAX_INTERVAL,
    )?;
    if timeout >= interval {
        return Err(field_err(
            format!("{path}.timeout"),
            format!(
                "timeout {} must be shorter than interval {} (checks of one endpoint never overlap)",
                humantime::format_duration(timeout),
                humantime::format_duration(interval)
            ),
        ));
    }
    let rise = count_value(
        &format!("{path}.rise"),
        check.rise,
        DEFAULT_RISE,
        MAX_RISE_FALL,
    )?;
    let fall = count_value(
        &format!("{path}.fall"),
        check.fall,
        DEFAULT_FALL,
        MAX_RISE_FALL,
    )?;
    let jitter = jitter_value(&format!("{path}.jitter"), check.jitter.as_deref(), interval)?;
    let damping = damping_value(path, check)?;
    let target_address = check
        .target_address
        .as_deref()
        .map(|text| unicast_address(&format!("{path}.target_address"), text))
        .transpose()?;

    let kind = match kind_name {
        "tcp" => CheckKind::Tcp,
        "icmp" => CheckKind::Icmp,
        "http" | "https" => {
            CheckKind::Http(super::http::settings(path, check, kind_name == "https")?)
        }
        "dns" => CheckKind::Dns(super::dns::settings(path, check)?),
        "exec" => CheckKind::Exec(super::exec::settings(name, path, check)?),
        _ => unreachable!("checked above"),
    };
    Ok(Check {
        kind,
        port,
        interval,
        timeout,
        rise,
        fall,
        jitter,
        damping,
        target_address,
    })
}

/// `flap_limit`, `flap_window` and `flap_hold`.
fn damping_value(path: &str, check: &CheckFile) -> Result<Damping, FieldError> {
    let limit = match check.flap_limit {
        None => Damping::DEFAULT.limit,
        Some(n) if (0..=i64::from(MAX_RISE_FALL)).contains(&n) => n as u32,
        Some(n) => {
            return Err(field_err(
                format!("{path}.flap_limit"),
                format!("{n} is out of range: must be 0 (off) to {MAX_RISE_FALL}"),
            ));
        }
    };
    let window = duration_value(
        &format!("{path}.flap_window"),
        check.flap_window.as_ref(),
        Damping::DEFAULT.window,
        MAX_INTERVAL,
    )?;
    let hold = duration_value(
        &format!("{path}.flap_hold"),
        check.flap_hold.as_ref(),
        Damping::DEFAULT.hold,
        MAX_INTERVAL,
    )?;
    Ok(if limit == 0 {
        Damping::OFF
    } else {
        Damping {
            limit,
            window,
            hold,
        }
    })
}

/// interval, so the next check never starts before this one could end.
fn jitter_value(
    field: &str,
    text: Option<&str>,
    interval: Duration,
) -> Result<Duration, FieldError> {
    let Some(text) = text else {
        return Ok(Duration::ZERO);
    };
    let jitter = if let Some(percent) = text.trim().strip_suffix('%') {
        let percent: f64 = percent.trim().parse().map_err(|_| {
            field_err(
                field,
                format!(
                    "{text} is not a percentage or a duration (e.g. \"10%\", \"50ms\")",
                    text = crate::field::quoted(text)
                ),
            )
        })?;
        if !(0.0..=50.0).contains(&percent) {
            return Err(field_err(
                field,
                format!(
                    "{text}: must be 0% to 50% of the interval",
                    text = crate::field::quoted(text)
                ),
            ));
        }
        interval.mul_f64(percent / 100.0)
    } else {
        humantime::parse_duration(text.trim()).map_err(|e| {
            field_err(
                field,
                format!("{text} is not a percentage or a duration ({e}); write e.g. \"10%\" or \"50ms\"", text = crate::field::quoted(text)),
            )
        })?
    };
    if jitter > interval / 2 {
        return Err(field_err(
            field,
            format!(
                "jitter {} is more than half the interval {}",
                humantime::format_duration(jitter),
                humantime::format_duration(interval)
            ),
        ));
    }
    Ok(jitter)
}
