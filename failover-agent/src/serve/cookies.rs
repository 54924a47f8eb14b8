//! DNS cookies (RFC 7873) with interoperable server cookies (RFC 9018).
//!
//! A server cookie is 16 bytes: version 1, three reserved bytes (zero),
//! a 32-bit timestamp (seconds since the epoch, serial arithmetic) and an
//! 8-byte SipHash-2-4, keyed with the server secret, over the client cookie,
//! version, reserved bytes, timestamp and the client's address (4 or 16
//! bytes). Every answer to a query with a client cookie carries a freshly
//! stamped server cookie. A query's server cookie is valid when its hash
//! matches under the current or the previous secret and its timestamp is at
//! most an hour old and at most five minutes ahead (RFC 9018 section 4.3).

use std::hash::Hasher as _;
use std::net::IpAddr;
use std::path::Path;
use std::sync::RwLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result, bail};
use siphasher::sip::SipHasher24;

/// EDNS option code of COOKIE (RFC 7873 section 4).
pub const OPTION_COOKIE: u16 = 10;
/// A client cookie is exactly 8 bytes.
pub const CLIENT_LEN: usize = 8;
/// Server cookies of any server are 8 to 32 bytes (RFC 7873 section 4).
const MIN_SERVER_LEN: usize = 8;
const MAX_SERVER_LEN: usize = 32;
/// Ours: version, reserved, timestamp, hash.
pub const SERVER_LEN: usize = 16;
const VERSION: u8 = 1;
/// A server cookie older than this is no longer valid (RFC 9018 4.3).
const LIFETIME_SECS: u32 = 3600;
/// Clock skew allowed among the nameservers sharing a secret.
const AHEAD_SECS: u32 = 300;

/// The server secret: 16 bytes, the SipHash key.
pub type Secret = [u8; 16];

/// What a query's COOKIE option is, for the answer and the rate limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CookieStatus {
    /// No OPT, no COOKIE option, or cookies off.
    Absent,
    /// A client cookie only (RFC 7873 5.2.3).
    ClientOnly,
    /// A server cookie that is not ours, expired or forged (5.2.4).
    BadServer,
    /// A server cookie we made for this client and client cookie (5.2.5).
    Valid,
}

/// A COOKIE option split into its parts; `None` if its length is
/// malformed (RFC 7873 5.2.2: FORMERR).
pub fn split(option: &[u8]) -> Option<(&[u8; CLIENT_LEN], &[u8])> {
    let len = option.len();
    if len != CLIENT_LEN
        && !(CLIENT_LEN + MIN_SERVER_LEN..=CLIENT_LEN + MAX_SERVER_LEN).contains(&len)
    {
        return None;
    }
    let (client, server) = option.split_at(CLIENT_LEN);
    Some((client.try_into().ok()?, server))
}

/// The 8-byte hash of RFC 9018 section 4.4 for `header` (version and
/// reserved bytes as the cookie has them) and `timestamp`.
fn hash(
    secret: &Secret,
    client: &[u8; CLIENT_LEN],
    header: [u8; 4],
    timestamp: u32,
    addr: IpAddr,
) -> [u8; 8] {
    let mut h = SipHasher24::new_with_key(secret);
    h.write(client);
    h.write(&header);
    h.write(&timestamp.to_be_bytes());
    match addr.to_canonical() {
        IpAddr::V4(v4) => h.write(&v4.octets()),
        IpAddr::V6(v6) => h.write(&v6.octets()),
    }
    // SipHash's output is its 64-bit result in little-endian order.
    h.finish().to_le_bytes()
}

/// Our server cookie for `client` at `addr`, stamped `timestamp`.
pub fn server_cookie(
    secret: &Secret,
    client: &[u8; CLIENT_LEN],
    addr: IpAddr,
    timestamp: u32,
) -> [u8; SERVER_LEN] {
    let header = [VERSION, 0, 0, 0];
    let mut cookie = [0u8; SERVER_LEN];
    cookie[..4].copy_from_slice(&header);
    cookie[4..8].copy_from_slice(&timestamp.to_be_bytes());
    cookie[8..].copy_from_slice(&hash(secret, client, header, timestamp, addr));
    cookie
}

/// Whether `server` is a version 1 cookie `secret` made for `client` at
/// `addr` (the reserved bytes as sent are part of the hash), ignoring its age.
pub fn made_by(secret: &Secret, client: &[u8; CLIENT_LEN], server: &[u8], addr: IpAddr) -> bool {
    if server.len() != SERVER_LEN || server[0] != VERSION {
        return false;
    }
    let header = [server[0], server[1], server[2], server[3]];
    let timestamp = u32::from_be_bytes([server[4], server[5], server[6], server[7]]);
    hash(secret, client, header, timestamp, addr) == server[8..]
}

/// Whether a cookie stamped `timestamp` is usable at `now` (serial
/// arithmetic: the 32-bit clock wraps).
pub fn fresh(timestamp: u32, now: u32) -> bool {
    let age = now.wrapping_sub(timestamp) as i32;
    (-(AHEAD_SECS as i32)..=LIFETIME_SECS as i32).contains(&age)
}

/// Seconds since the epoch, as server cookies count them (mod 2^32).
pub fn unix_now() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as u32)
}

/// The secrets: the one cookies are made with and the one before it,
/// still accepted so that cookies made just before a rotation stay valid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Secrets {
    current: Secret,
    previous: Option<Secret>,
}

/// Where the secret comes from (a setting of `[cookies]`).
pub use crate::config::cookies::SecretSource;

/// The server's cookie secrets, shared by every socket task.
pub struct Cookies {
    secrets: RwLock<Secrets>,
    source: SecretSource,
}

impl Cookies {
    /// Cookies with a secret from `source` (the file is read now: its
    /// errors are the caller's).
    pub fn new(source: SecretSource) -> Result<Cookies> {
        let current = match &source {
            SecretSource::Random { .. } => random_secret()?,
            SecretSource::File { path, .. } => read_secret(path)?,
        };
        Ok(Cookies {
            secrets: RwLock::new(Secrets {
                current,
                previous: None,
            }),
            source,
        })
    }

    /// Cookies with exactly this secret and none before it (tests, and the
    /// differential test's kernel comparison).
    pub fn with_secret(secret: Secret) -> Cookies {
        Cookies {
            secrets: RwLock::new(Secrets {
                current: secret,
                previous: None,
            }),
            source: SecretSource::Random {
                rotate: Duration::MAX,
            },
        }
    }

    /// How often [`Cookies::refresh`] should run.
    pub fn refresh_every(&self) -> Duration {
        match &self.source {
            SecretSource::Random { rotate } => *rotate,
            SecretSource::File { reread, .. } => *reread,
        }
    }

    /// The scheduled step: a new random secret, or the file's if it
    /// changed; the current one becomes the previous. Returns whether the
    /// secret changed.
    pub fn refresh(&self) -> Result<bool> {
        let next = match &self.source {
            SecretSource::Random { .. } => random_secret()?,
            SecretSource::File { path, .. } => read_secret(path)?,
        };
        Ok(self.rotate_to(next))
    }

    /// Makes `next` the current secret, the current one the previous
    /// (nothing happens if `next` is already current).
    pub fn rotate_to(&self, next: Secret) -> bool {
        let mut secrets = self.secrets.write().unwrap_or_else(|e| e.into_inner());
        if secrets.current == next {
            return false;
        }
        *secrets = Secrets {
            current: next,
            previous: Some(secrets.current),
        };
        true
    }

    /// The current secret and the previous one, if any (the kernel's
    /// copy is written from these).
    pub fn secrets(&self) -> (Secret, Option<Secret>) {
        let secrets = *self.secrets.read().unwrap_or_else(|e| e.into_inner());
        (secrets.current, secrets.previous)
    }

    /// Judges a well-formed COOKIE option of a query from `addr` at `now`
    /// and makes the option of the answer: the client cookie and a fresh
    /// server cookie.
    pub fn check(
        &self,
        client: &[u8; CLIENT_LEN],
        server: &[u8],
        addr: IpAddr,
        now: u32,
    ) -> (CookieStatus, [u8; CLIENT_LEN + SERVER_LEN]) {
        let secrets = *self.secrets.read().unwrap_or_else(|e| e.into_inner());
        let status = if server.is_empty() {
            CookieStatus::ClientOnly
        } else {
            let ours = |s: &Secret| made_by(s, client, server, addr);
            let stamped = u32::from_be_bytes(
                server
                    .get(4..8)
                    .and_then(|t| t.try_into().ok())
                    .unwrap_or([0; 4]),
            );
            if (ours(&secrets.current) || secrets.previous.as_ref().is_some_and(ours))
                && fresh(stamped, now)
            {
                CookieStatus::Valid
            } else {
                CookieStatus::BadServer
            }
        };
        let mut option = [0u8; CLIENT_LEN + SERVER_LEN];
        option[..CLIENT_LEN].copy_from_slice(client);
        option[CLIENT_LEN..].copy_from_slice(&server_cookie(&secrets.current, client, addr, now));
        (status, option)
    }
}

fn random_secret() -> Result<Secret> {
    let mut secret = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut secret))
        .context("reading a random cookie secret from /dev/urandom")?;
    Ok(secret)
}

/// Reads a secret file: 32 hexadecimal characters (16 bytes), surrounding
/// whitespace allowed.
pub fn read_secret(path: &Path) -> Result<Secret> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the cookie secret file {}", path.display()))?;
    parse_secret(&text).with_context(|| format!("cookie secret file {}", path.display()))
}

/// 32 hexadecimal characters as 16 bytes.
pub fn parse_secret(text: &str) -> Result<Secret> {
    let hex = text.trim();
    if hex.len() != 32 {
        bail!(
            "must hold 16 bytes as 32 hexadecimal characters, holds {} characters",
            hex.chars().count()
        );
    }
    let mut secret = [0u8; 16];
    for (i, byte) in secret.iter_mut().enumerate() {
        let pair = hex.get(2 * i..2 * i + 2).context("not hexadecimal")?;
        *byte = u8::from_str_radix(pair, 16).map_err(|_| {
            anyhow::anyhow!("{pair:?} at character {} is not hexadecimal", 2 * i + 1)
        })?;
    }
    if secret == [0; 16] {
        bail!("an all-zero secret is no secret");
    }
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn secret(s: &str) -> Secret {
        hex(s).try_into().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// RFC 9018 Appendix A, each response's COOKIE option byte for byte.
    #[test]
    fn rfc_9018_test_vectors() {
        let cases = [
            // A.1: a new client learns a server cookie.
            (
                "e5e973e5a6b2a43f48e7dc849e37bfcf",
                "2464c4abcf10c957",
                "198.51.100.100",
                1559731985,
                "2464c4abcf10c957010000005cf79f111f8130c3eee29480",
            ),
            // A.2: the same client, 40 minutes later, gets a renewed one.
            (
                "e5e973e5a6b2a43f48e7dc849e37bfcf",
                "2464c4abcf10c957",
                "198.51.100.100",
                1559734385,
                "2464c4abcf10c957010000005cf7a871d4a564a1442aca77",
            ),
            // A.3: another client.
            (
                "e5e973e5a6b2a43f48e7dc849e37bfcf",
                "fc93fc62807ddb86",
                "203.0.113.203",
                1559734700,
                "fc93fc62807ddb86010000005cf7a9acf73a7810aca2381e",
            ),
            // A.4: an IPv6 client, after the secret rolled over.
            (
                "445536bcd2513298075a5d379663c962",
                "22681ab97d52c298",
                "2001:db8:220:1:59de:d0f4:8769:82b8",
                1559741961,
                "22681ab97d52c298010000005cf7c609a6bb79d16625507a",
            ),
        ];
        for (key, client, addr, now, want) in cases {
            let cookies = Cookies::with_secret(secret(key));
            let client: [u8; 8] = hex(client).try_into().unwrap();
            let (status, option) = cookies.check(&client, &[], ip(addr), now);
            assert_eq!(status, CookieStatus::ClientOnly);
            assert_eq!(option.to_vec(), hex(want), "{addr} at {now}");
        }
    }

    /// The cookies the vectors' clients send back: the A.2 query's cookie
    /// (made by A.1) is valid 40 minutes later; A.3's (reserved bytes set,
    /// 1h52m old) is ours but too old; A.4's was made with the previous
    /// secret, accepted after the rotation.
    #[test]
    fn rfc_9018_query_cookies() {
        let k1 = secret("e5e973e5a6b2a43f48e7dc849e37bfcf");
        let a2 = hex("2464c4abcf10c957010000005cf79f111f8130c3eee29480");
        let (client, server) = split(&a2).unwrap();
        let cookies = Cookies::with_secret(k1);
        let (status, _) = cookies.check(client, server, ip("198.51.100.100"), 1559734385);
        assert_eq!(status, CookieStatus::Valid);
        // From another address it is not ours.
        let (status, _) = cookies.check(client, server, ip("198.51.100.101"), 1559734385);
        assert_eq!(status, CookieStatus::BadServer);

        let a3 = hex("fc93fc62807ddb8601abcdef5cf78f71a314227b6679ebf5");
        let (client, server) = split(&a3).unwrap();
        assert!(made_by(&k1, client, server, ip("203.0.113.203")));
        assert!(!made_by(&k1, client, server, ip("203.0.113.204")));
        let (status, option) = cookies.check(client, server, ip("203.0.113.203"), 1559734700);
        assert_eq!(
            status,
            CookieStatus::BadServer,
            "an hour and 52 minutes old"
        );
        assert_eq!(
            option.to_vec(),
            hex("fc93fc62807ddb86010000005cf7a9acf73a7810aca2381e")
        );

        let old = secret("dd3bdf9344b678b185a6f5cb60fca715");
        let new = secret("445536bcd2513298075a5d379663c962");
        let a4 = hex("22681ab97d52c298010000005cf7c57926556bd0934c72f8");
        let (client, server) = split(&a4).unwrap();
        let addr = ip("2001:db8:220:1:59de:d0f4:8769:82b8");
        let cookies = Cookies::with_secret(old);
        assert!(cookies.rotate_to(new));
        let (status, option) = cookies.check(client, server, addr, 1559741961);
        assert_eq!(status, CookieStatus::Valid, "made with the previous secret");
        assert_eq!(
            option.to_vec(),
            hex("22681ab97d52c298010000005cf7c609a6bb79d16625507a")
        );
        // One more rotation and the old secret is gone.
        assert!(cookies.rotate_to(secret("00112233445566778899aabbccddeeff")));
        let (status, _) = cookies.check(client, server, addr, 1559741961);
        assert_eq!(status, CookieStatus::BadServer);
    }

    #[test]
    fn malformed_lengths() {
        for len in [0, 1, 7, 9, 15, 41, 64] {
            assert!(split(&vec![1; len]).is_none(), "{len}");
        }
        for (len, server) in [(8, 0), (16, 8), (24, 16), (40, 32)] {
            let option = vec![1; len];
            let (_, s) = split(&option).unwrap();
            assert_eq!(s.len(), server);
        }
    }

    #[test]
    fn freshness_wraps() {
        let now = 1559731985;
        assert!(fresh(now, now));
        assert!(fresh(now - 3600, now));
        assert!(!fresh(now - 3601, now));
        assert!(fresh(now + 300, now));
        assert!(!fresh(now + 301, now));
        assert!(fresh(u32::MAX - 100, 1000), "an hour old across the wrap");
    }

    #[test]
    fn secret_files() {
        assert_eq!(
            parse_secret(" e5e973e5a6b2a43f48e7dc849e37bfcf\n").unwrap(),
            secret("e5e973e5a6b2a43f48e7dc849e37bfcf")
        );
        let short = parse_secret("e5e973").unwrap_err().to_string();
        assert!(
            short.contains("32 hexadecimal characters, holds 6"),
            "{short}"
        );
        let bad = parse_secret("g5e973e5a6b2a43f48e7dc849e37bfcf")
            .unwrap_err()
            .to_string();
        assert!(bad.contains("\"g5\" at character 1"), "{bad}");
        assert!(parse_secret(&"0".repeat(32)).is_err());
        let dir = std::env::temp_dir().join(format!("cookie-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("secret");
        std::fs::write(&path, "e5e973e5a6b2a43f48e7dc849e37bfcf\n").unwrap();
        let cookies = Cookies::new(SecretSource::File {
            path: path.clone(),
            reread: Duration::from_secs(60),
        })
        .unwrap();
        assert!(!cookies.refresh().unwrap(), "unchanged");
        std::fs::write(&path, "445536bcd2513298075a5d379663c962").unwrap();
        assert!(cookies.refresh().unwrap(), "rewritten");
        let missing = Cookies::new(SecretSource::File {
            path: dir.join("missing"),
            reread: Duration::from_secs(60),
        });
        let message = format!("{:#}", missing.err().unwrap());
        assert!(
            message.contains("reading the cookie secret file"),
            "{message}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
