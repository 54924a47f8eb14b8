//! One configuration field: where it is (`record[0].endpoints[1].address`)
//! and the value checks every section shares (durations, counts, ports,
//! TTLs, names, addresses). The config sections and the check kinds build
//! on these; nothing here knows any section.

use std::net::IpAddr;
use std::time::Duration;

use crate::dns::name::name_key;

/// Largest TTL a record may carry (RFC 2181 section 8: 2^31 - 1 seconds).
pub const MAX_TTL: u32 = 2_147_483_647;

/// A validation failure before the file name is attached.
#[derive(Debug)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

pub fn field_err(field: impl Into<String>, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.into(),
        message: message.into(),
    }
}

/// Longest part of a value quoted in an error message.
const QUOTE_LIMIT: usize = 80;

/// `text` quoted for an error message (`{:?}`), cut after [`QUOTE_LIMIT`]
/// characters with its length in bytes, so a huge value gives a short error.
pub fn quoted(text: &str) -> String {
    match text.char_indices().nth(QUOTE_LIMIT) {
        None => format!("{text:?}"),
        Some((end, _)) => format!("{:?}…({} bytes)", &text[..end], text.len()),
    }
}

/// `text` with every part between quotes (`"` or `` ` ``) that is longer
/// than any message (1000 characters) cut like [`quoted`] does: for messages
/// that quote values themselves (the TOML parser's, field paths with keys).
pub fn cut_long_parts(text: &str) -> String {
    if text.len() <= 1000 {
        return text.to_string();
    }
    let mut out = String::new();
    let mut rest = text;
    loop {
        let end = rest.find(['"', '`']).unwrap_or(rest.len());
        let part = &rest[..end];
        match part.char_indices().nth(QUOTE_LIMIT) {
            Some((cut, _)) if part.len() > 1000 => {
                out.push_str(&part[..cut]);
                out.push_str(&format!("…({} bytes)", part.len()));
            }
            _ => out.push_str(part),
        }
        match rest[end..].chars().next() {
            Some(quote) => {
                out.push(quote);
                rest = &rest[end + quote.len_utf8()..];
            }
            None => return out,
        }
    }
}

/// Refuses a string with a NUL byte (no path, name or argument can hold one).
pub fn no_nul(field: &str, text: &str) -> Result<(), FieldError> {
    match text.find('\0') {
        Some(at) => Err(field_err(
            field,
            format!("{} contains a NUL byte (at byte {at})", quoted(text)),
        )),
        None => Ok(()),
    }
}

/// Validates a domain name and makes it absolute (trailing dot).
pub fn dns_name(field: &str, name: &str) -> Result<String, FieldError> {
    if name.is_empty() {
        return Err(field_err(field, "the name is empty"));
    }
    let absolute = if name.ends_with('.') {
        name.to_string()
    } else {
        format!("{name}.")
    };
    // Far too long (whatever the labels): said before the labels are looked
    // at, without echoing all of it.
    if absolute.len() > 255 {
        return Err(field_err(
            field,
            format!(
                "{} is longer than 255 bytes (the limit of a name on the wire)",
                quoted(name)
            ),
        ));
    }
    if absolute != "." {
        for label in absolute[..absolute.len() - 1].split('.') {
            if label.is_empty() {
                return Err(field_err(
                    field,
                    format!("{} has an empty label", quoted(name)),
                ));
            }
            if let Some(c) = label
                .chars()
                .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
            {
                return Err(field_err(
                    field,
                    format!(
                        "{}: label {} contains {c:?}; only letters, digits, '-' and '_' are allowed",
                        quoted(name),
                        quoted(label)
                    ),
                ));
            }
        }
    }
    // Label lengths (1..=63) and the 255-byte wire limit: exactly what the
    // kernel key can encode.
    name_key(&absolute).map_err(|e| field_err(field, e.to_string()))?;
    Ok(absolute)
}

/// DNS names compare case-insensitively.
pub fn same_name(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

pub fn in_zone(name: &str, origin: &str) -> bool {
    if origin == "." || same_name(name, origin) {
        return true;
    }
    name.len() > origin.len()
        && same_name(&name[name.len() - origin.len()..], origin)
        && name.as_bytes()[name.len() - origin.len() - 1] == b'.'
}

pub fn ttl_value(field: &str, ttl: i64) -> Result<u32, FieldError> {
    if (0..=i64::from(MAX_TTL)).contains(&ttl) {
        Ok(ttl as u32)
    } else {
        Err(field_err(
            field,
            format!("TTL {ttl} is out of range: must be 0 to {MAX_TTL} seconds (RFC 2181)"),
        ))
    }
}

/// An address that may appear in an answer: unicast, and for IPv6 not
/// link-local (meaningless without an interface).
pub fn unicast_address(field: &str, text: &str) -> Result<IpAddr, FieldError> {
    let ip: IpAddr = text.trim().parse().map_err(|_| {
        field_err(
            field,
            format!(
                "{} is not an IP address (e.g. \"192.0.2.10\" or \"2001:db8::10\")",
                quoted(text)
            ),
        )
    })?;
    let bad = match ip {
        IpAddr::V4(v4) => v4.is_unspecified() || v4.is_broadcast() || v4.is_multicast(),
        IpAddr::V6(v6) => v6.is_unspecified() || v6.is_multicast(),
    };
    if bad {
        return Err(field_err(field, format!("{ip} is not a unicast address")));
    }
    if let IpAddr::V6(v6) = ip
        && v6.is_unicast_link_local()
    {
        return Err(field_err(
            field,
            format!(
                "{ip} is link-local: it means nothing without an interface, use a global or unique local address"
            ),
        ));
    }
    Ok(ip)
}

/// A duration longer than zero and at most `max` (so that no timer or
/// clock arithmetic on it can overflow).
pub fn duration_value(
    field: &str,
    value: Option<&String>,
    default: Duration,
    max: Duration,
) -> Result<Duration, FieldError> {
    let Some(text) = value else {
        return Ok(default);
    };
    let duration = humantime::parse_duration(text).map_err(|e| {
        field_err(
            field,
            format!(
                "{} is not a duration ({e}); write e.g. \"1s\" or \"500ms\"",
                quoted(text)
            ),
        )
    })?;
    if duration.is_zero() {
        return Err(field_err(field, "must be longer than zero"));
    }
    if duration > max {
        return Err(field_err(
            field,
            format!(
                "{} is too long: at most {}",
                quoted(text),
                humantime::format_duration(max)
            ),
        ));
    }
    Ok(duration)
}

/// A count from 1 to `max`.
pub fn count_value(
    field: &str,
    value: Option<i64>,
    default: u32,
    max: u32,
) -> Result<u32, FieldError> {
    match value {
        None => Ok(default),
        Some(n) if (1..=i64::from(max)).contains(&n) => Ok(n as u32),
        Some(n) => Err(field_err(
            field,
            format!("{n} is out of range: must be 1 to {max}"),
        )),
    }
}

pub fn port_value(field: &str, port: i64) -> Result<u16, FieldError> {
    u16::try_from(port).ok().filter(|p| *p != 0).ok_or_else(|| {
        field_err(
            field,
            format!("port {port} is out of range: must be 1 to 65535"),
        )
    })
}

/// Reads a file the configuration names (or the configuration itself): a
/// regular file of at most `max` bytes, so a FIFO, a device (`/dev/zero`)
/// or a runaway file is refused at once instead of hanging or filling
/// memory. `what` names the file in errors ("a CA file").
pub fn read_bounded(path: &std::path::Path, max: u64, what: &str) -> Result<Vec<u8>, String> {
    use std::io::Read as _;
    let metadata =
        std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if !metadata.is_file() {
        return Err(format!("{}: not a regular file", path.display()));
    }
    let too_big = || {
        format!(
            "{}: larger than {max} bytes, too large for {what}",
            path.display()
        )
    };
    if metadata.len() > max {
        return Err(too_big());
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(max + 1).read_to_end(&mut bytes))
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if bytes.len() as u64 > max {
        return Err(too_big());
    }
    Ok(bytes)
}
