//! `[rate_limit]`: response rate limiting per source prefix, in the kernel
//! and in the userspace server alike. Off unless the section is there.

use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;

use failover_common::{MAX_RATE_EXEMPT, RATE_LIMIT_LOG_ONLY, RATE_LIMIT_ON, RateLimit};

use super::file::RateLimitFile;
use crate::field::{FieldError, duration_value, field_err, quoted};

/// Default source prefix lengths: a /24 is the smallest IPv4 block routed
/// on the internet, a /56 what an IPv6 customer commonly gets; a spoofer
/// picking addresses inside either is still one source.
pub const DEFAULT_IPV4_PREFIX: u8 = 24;
pub const DEFAULT_IPV6_PREFIX: u8 = 56;
/// Every second limited response is a TC=1 answer: a real resolver behind
/// a spoofed flood still gets through over TCP, and a slip is no bigger
/// than the query, so the flood is not amplified.
pub const DEFAULT_SLIP: u32 = 2;
/// One second of unused allowance may be saved up (a burst of one second's
/// responses), so a resolver that starts cold is not limited at once.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(1);
/// Longest `window`.
pub const MAX_WINDOW: Duration = Duration::from_secs(3600);
/// Most responses per second a prefix may be allowed.
pub const MAX_RESPONSES_PER_SECOND: u32 = 10_000_000;
/// Largest `slip`.
pub const MAX_SLIP: u32 = 100;

/// `[rate_limit]`, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateLimitSettings {
    pub responses_per_second: u32,
    pub ipv4_prefix: u8,
    pub ipv6_prefix: u8,
    pub slip: u32,
    pub window: Duration,
    /// Never limited: (network address, prefix length), host bits zero.
    pub exempt: Vec<(IpAddr, u8)>,
    pub log_only: bool,
}

impl RateLimitSettings {
    /// The prefix `addr` is limited as (its family's prefix length).
    pub fn prefix_of(&self, addr: IpAddr) -> IpAddr {
        match addr {
            IpAddr::V4(v4) => {
                let mask = mask32(self.ipv4_prefix);
                IpAddr::from((u32::from(v4) & mask).to_be_bytes())
            }
            IpAddr::V6(v6) => {
                let mask = mask128(self.ipv6_prefix);
                IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
            }
        }
    }

    /// Whether `addr` lies in an exempt prefix.
    pub fn is_exempt(&self, addr: IpAddr) -> bool {
        self.exempt.iter().any(|(net, len)| match (addr, net) {
            (IpAddr::V4(a), IpAddr::V4(n)) => u32::from(a) & mask32(*len) == u32::from(*n),
            (IpAddr::V6(a), IpAddr::V6(n)) => u128::from(a) & mask128(*len) == u128::from(*n),
            _ => false,
        })
    }

    /// The time one response costs a source, and the burst tolerance: how
    /// far ahead of now a source's next-response time may run (the window
    /// less one interval). The kernel and the userspace server each keep
    /// one state per source prefix.
    pub fn schedule(&self) -> (u64, u64) {
        let interval = (1_000_000_000 / u128::from(self.responses_per_second.max(1))) as u64;
        let window = self.window.as_nanos().min(u128::from(u64::MAX)) as u64;
        (interval, window.saturating_sub(interval))
    }

    /// The kernel's value, its table's hash keyed by `seed` (random).
    pub fn kernel_value(&self, seed: u64) -> RateLimit {
        let (interval_ns, burst_ns) = self.schedule();
        let v6 = mask128(self.ipv6_prefix).to_be_bytes();
        let word = |b: &[u8]| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]);
        RateLimit {
            flags: RATE_LIMIT_ON
                | if self.log_only {
                    RATE_LIMIT_LOG_ONLY
                } else {
                    0
                },
            slip: self.slip,
            interval_ns,
            burst_ns,
            v4_mask: word(&mask32(self.ipv4_prefix).to_be_bytes()),
            _pad: 0,
            v6_mask: [
                word(&v6[0..]),
                word(&v6[4..]),
                word(&v6[8..]),
                word(&v6[12..]),
            ],
            seed,
        }
    }

    /// The exempt prefixes as the kernel's trie holds them: IPv6, IPv4
    /// mapped (`::ffff:0:0/96` + the IPv4 prefix).
    pub fn exempt_keys(&self) -> Vec<(u32, [u8; 16])> {
        self.exempt
            .iter()
            .map(|(net, len)| match net {
                IpAddr::V4(v4) => (96 + u32::from(*len), v4.to_ipv6_mapped().octets()),
                IpAddr::V6(v6) => (u32::from(*len), v6.octets()),
            })
            .collect()
    }
}

fn mask32(len: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0)
}

fn mask128(len: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0)
}

pub(super) fn rate_limit_value(file: &RateLimitFile) -> Result<RateLimitSettings, FieldError> {
    let responses_per_second = match file.responses_per_second {
        None => {
            return Err(field_err(
                "rate_limit.responses_per_second",
                "required: the responses per second one source prefix gets (e.g. 100)",
            ));
        }
        Some(n) if (1..=i64::from(MAX_RESPONSES_PER_SECOND)).contains(&n) => n as u32,
        Some(n) => {
            return Err(field_err(
                "rate_limit.responses_per_second",
                format!("{n} is out of range: must be 1 to {MAX_RESPONSES_PER_SECOND}"),
            ));
        }
    };
    let prefix = |field: &str, value: Option<i64>, default: u8, max: u8| match value {
        None => Ok(default),
        Some(n) if (1..=i64::from(max)).contains(&n) => Ok(n as u8),
        Some(n) => Err(field_err(
            field,
            format!("{n} is out of range: a prefix length of 1 to {max}"),
        )),
    };
    let ipv4_prefix = prefix(
        "rate_limit.ipv4_prefix",
        file.ipv4_prefix,
        DEFAULT_IPV4_PREFIX,
        32,
    )?;
    let ipv6_prefix = prefix(
        "rate_limit.ipv6_prefix",
        file.ipv6_prefix,
        DEFAULT_IPV6_PREFIX,
        128,
    )?;
    let slip = match file.slip {
        None => DEFAULT_SLIP,
        Some(n) if (0..=i64::from(MAX_SLIP)).contains(&n) => n as u32,
        Some(n) => {
            return Err(field_err(
                "rate_limit.slip",
                format!(
                    "{n} is out of range: 0 (drop every limited response) to {MAX_SLIP} (every {MAX_SLIP}th a TC=1 answer)"
                ),
            ));
        }
    };
    let window = duration_value(
        "rate_limit.window",
        file.window.as_ref(),
        DEFAULT_WINDOW,
        MAX_WINDOW,
    )?;
    if u128::from(responses_per_second) * window.as_nanos() < 1_000_000_000 {
        return Err(field_err(
            "rate_limit.window",
            format!(
                "{} at {responses_per_second} responses per second saves up less than one response: make it at least {}",
                humantime::format_duration(window),
                humantime::format_duration(Duration::from_nanos(
                    1_000_000_000u64.div_ceil(u64::from(responses_per_second))
                ))
            ),
        ));
    }
    let list = file.exempt.as_deref().unwrap_or_default();
    if list.len() > MAX_RATE_EXEMPT as usize {
        return Err(field_err(
            "rate_limit.exempt",
            format!(
                "{} prefixes, but the kernel holds at most {MAX_RATE_EXEMPT}",
                list.len()
            ),
        ));
    }
    let mut exempt: Vec<(IpAddr, u8)> = Vec::with_capacity(list.len());
    for (i, text) in list.iter().enumerate() {
        let field = format!("rate_limit.exempt[{i}]");
        let net = exempt_prefix(&field, text)?;
        if exempt.contains(&net) {
            return Err(field_err(
                field,
                format!("{} is listed twice", quoted(text)),
            ));
        }
        exempt.push(net);
    }
    Ok(RateLimitSettings {
        responses_per_second,
        ipv4_prefix,
        ipv6_prefix,
        slip,
        window,
        exempt,
        log_only: file.log_only.unwrap_or(false),
    })
}

/// `"192.0.2.0/24"`, `"2001:db8::/32"`, or an address alone (`/32`, `/128`).
fn exempt_prefix(field: &str, text: &str) -> Result<(IpAddr, u8), FieldError> {
    let bad = || {
        field_err(
            field,
            format!(
                "{} is not a prefix (e.g. \"192.0.2.0/24\", \"2001:db8::/32\", \"192.0.2.1\")",
                quoted(text)
            ),
        )
    };
    let (addr, len) = match text.trim().split_once('/') {
        Some((addr, len)) => (addr, Some(len)),
        None => (text.trim(), None),
    };
    let addr: IpAddr = addr.parse().map_err(|_| bad())?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let len = match len {
        None => max,
        Some(len) => match len.parse::<u8>() {
            Ok(n) if n <= max => n,
            _ => {
                return Err(field_err(
                    field,
                    format!("{}: the prefix length must be 0 to {max}", quoted(text)),
                ));
            }
        },
    };
    let network = match addr {
        IpAddr::V4(v4) => IpAddr::from((u32::from(v4) & mask32(len)).to_be_bytes()),
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask128(len))),
    };
    if network != addr {
        return Err(field_err(
            field,
            format!(
                "{} has bits set beyond the prefix length: did you mean \"{network}/{len}\"?",
                quoted(text)
            ),
        ));
    }
    Ok((network, len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    use crate::config::tests::ONE_RECORD as BASE;

    fn parse(section: &str) -> Result<Config, String> {
        Config::parse(&format!("{BASE}{section}"), "t").map_err(|e| e.to_string())
    }

    #[test]
    fn off_without_the_section_and_defaults_with_it() {
        assert_eq!(parse("").unwrap().rate_limit, None);
        let rl = parse("[rate_limit]\nresponses_per_second = 100\n")
            .unwrap()
            .rate_limit
            .unwrap();
        assert_eq!(
            rl,
            RateLimitSettings {
                responses_per_second: 100,
                ipv4_prefix: 24,
                ipv6_prefix: 56,
                slip: 2,
                window: Duration::from_secs(1),
                exempt: vec![],
                log_only: false,
            }
        );
    }

    #[test]
    fn bad_values_are_refused_with_the_field() {
        for (section, field, says) in [
            ("", "rate_limit.responses_per_second", "required"),
            (
                "responses_per_second = 0",
                "rate_limit.responses_per_second",
                "out of range",
            ),
            (
                "responses_per_second = 5\nipv4_prefix = 33",
                "rate_limit.ipv4_prefix",
                "1 to 32",
            ),
            (
                "responses_per_second = 5\nipv6_prefix = 0",
                "rate_limit.ipv6_prefix",
                "1 to 128",
            ),
            (
                "responses_per_second = 5\nslip = 101",
                "rate_limit.slip",
                "0 (drop",
            ),
            (
                "responses_per_second = 5\nwindow = \"100ms\"",
                "rate_limit.window",
                "at least 200ms",
            ),
            (
                "responses_per_second = 5\nexempt = [\"192.0.2.1/24\"]",
                "rate_limit.exempt[0]",
                "\"192.0.2.0/24\"",
            ),
            (
                "responses_per_second = 5\nexempt = [\"2001:db8::/129\"]",
                "rate_limit.exempt[0]",
                "0 to 128",
            ),
            (
                "responses_per_second = 5\nexempt = [\"nope\"]",
                "rate_limit.exempt[0]",
                "not a prefix",
            ),
            (
                "responses_per_second = 5\nexempt = [\"10.0.0.0/8\", \"10.0.0.0/8\"]",
                "rate_limit.exempt[1]",
                "twice",
            ),
            (
                "responses_per_second = 5\nburst = 3",
                "rate_limit",
                "unknown field",
            ),
        ] {
            let e = parse(&format!("[rate_limit]\n{section}\n")).unwrap_err();
            assert!(e.contains(field) && e.contains(says), "{section}: {e}");
        }
    }

    #[test]
    fn prefixes_masks_and_exemptions() {
        let rl = parse(
            "[rate_limit]\nresponses_per_second = 100\nipv4_prefix = 20\nipv6_prefix = 48\nexempt = [\"198.51.100.0/24\", \"2001:db8:1::/48\", \"203.0.113.9\"]\n",
        )
        .unwrap()
        .rate_limit
        .unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(rl.prefix_of(ip("192.0.31.77")), ip("192.0.16.0"));
        assert_eq!(rl.prefix_of(ip("2001:db8:1:ff::1")), ip("2001:db8:1::"));
        assert!(rl.is_exempt(ip("198.51.100.200")));
        assert!(!rl.is_exempt(ip("198.51.101.1")));
        assert!(rl.is_exempt(ip("2001:db8:1:2::3")));
        assert!(rl.is_exempt(ip("203.0.113.9")) && !rl.is_exempt(ip("203.0.113.10")));
        let keys = rl.exempt_keys();
        assert_eq!(keys[0].0, 96 + 24);
        assert_eq!(&keys[0].1[10..], &[0xff, 0xff, 198, 51, 100, 0]);
        assert_eq!(keys[2].0, 128);
        let value = rl.kernel_value(7);
        assert_eq!(value.seed, 7);
        // The masks' bytes in network order.
        assert_eq!(value.v4_mask.to_ne_bytes(), [255, 255, 240, 0]);
        assert_eq!(value.v6_mask[0].to_ne_bytes(), [255; 4]);
        assert_eq!(value.v6_mask[1].to_ne_bytes(), [255, 255, 0, 0]);
        assert_eq!(value.v6_mask[2], 0);
    }

    #[test]
    fn the_window_is_the_burst() {
        let rl = parse("[rate_limit]\nresponses_per_second = 100\nwindow = \"2s\"\n")
            .unwrap()
            .rate_limit
            .unwrap();
        // 10 ms a response, 2 s (200 responses) of burst.
        assert_eq!(rl.schedule(), (10_000_000, 1_990_000_000));
        let value = rl.kernel_value(0);
        assert_eq!((value.flags, value.slip), (RATE_LIMIT_ON, 2));
        assert_eq!((value.interval_ns, value.burst_ns), rl.schedule());
    }
}
