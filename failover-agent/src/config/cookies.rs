//! `[cookies]`: DNS cookies in the userspace server. On unless
//! `enabled = false`.

use std::path::PathBuf;
use std::time::Duration;

use super::file::CookiesFile;
use crate::field::{FieldError, duration_value, field_err};

/// Where the cookie secret comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretSource {
    /// Random at start, replaced by a new random one every `rotate`.
    Random { rotate: Duration },
    /// Read from this file (32 hex characters), re-read every `reread`:
    /// whoever shares it among nameservers rotates it by rewriting it.
    File { path: PathBuf, reread: Duration },
}

/// A random secret lives a day: far longer than a cookie (an hour), so
/// that the previous secret, still accepted, covers every cookie in use.
pub const DEFAULT_ROTATE: Duration = Duration::from_secs(86_400);
/// Shortest rotation: a cookie is valid an hour, and only one previous
/// secret is kept.
pub const MIN_ROTATE: Duration = Duration::from_secs(3600);
pub const MAX_ROTATE: Duration = Duration::from_secs(30 * 86_400);
/// How often a secret file is re-read.
pub const SECRET_FILE_REREAD: Duration = Duration::from_secs(60);

/// `[cookies]`, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CookieSettings {
    pub source: SecretSource,
}

pub(super) fn cookies_value(
    file: Option<&CookiesFile>,
) -> Result<Option<CookieSettings>, FieldError> {
    let Some(file) = file else {
        return Ok(Some(CookieSettings {
            source: SecretSource::Random {
                rotate: DEFAULT_ROTATE,
            },
        }));
    };
    if file.enabled == Some(false) {
        return Ok(None);
    }
    let rotate = duration_value(
        "cookies.rotate",
        file.rotate.as_ref(),
        DEFAULT_ROTATE,
        MAX_ROTATE,
    )?;
    if rotate < MIN_ROTATE {
        return Err(field_err(
            "cookies.rotate",
            "must be at least 1h: a cookie is valid an hour, and only the secret before the current one is still accepted",
        ));
    }
    let source = match &file.secret_file {
        None => SecretSource::Random { rotate },
        Some(path) if path.is_empty() || path.contains('\0') => {
            return Err(field_err(
                "cookies.secret_file",
                "must be a path (not empty, no NUL byte)",
            ));
        }
        Some(path) => {
            if file.rotate.is_some() {
                return Err(field_err(
                    "cookies.rotate",
                    "does not go with secret_file: a shared secret is rotated by rewriting the file (re-read every minute)",
                ));
            }
            SecretSource::File {
                path: PathBuf::from(path),
                reread: SECRET_FILE_REREAD,
            }
        }
    };
    Ok(Some(CookieSettings { source }))
}

#[cfg(test)]
mod tests {
    use super::SecretSource;
    use crate::config::Config;
    use std::time::Duration;

    use crate::config::tests::ONE_RECORD as BASE;

    fn parse(section: &str) -> Result<Config, String> {
        Config::parse(&format!("{BASE}{section}"), "test").map_err(|e| e.to_string())
    }

    #[test]
    fn on_by_default_off_on_request() {
        let config = parse("").unwrap();
        assert_eq!(
            config.cookies.unwrap().source,
            SecretSource::Random {
                rotate: Duration::from_secs(86_400)
            }
        );
        assert_eq!(parse("[cookies]\nenabled = false\n").unwrap().cookies, None);
        let config = parse("[cookies]\nsecret_file = \"/etc/failover/cookie\"\n").unwrap();
        assert_eq!(
            config.cookies.unwrap().source,
            SecretSource::File {
                path: "/etc/failover/cookie".into(),
                reread: Duration::from_secs(60)
            }
        );
        let config = parse("[cookies]\nrotate = \"2h\"\n").unwrap();
        assert_eq!(
            config.cookies.unwrap().source,
            SecretSource::Random {
                rotate: Duration::from_secs(7200)
            }
        );
    }

    #[test]
    fn errors_are_clear() {
        let e = parse("[cookies]\nrotate = \"10m\"\n").unwrap_err();
        assert!(
            e.contains("cookies.rotate") && e.contains("at least 1h"),
            "{e}"
        );
        let e = parse("[cookies]\nsecret_file = \"\"\n").unwrap_err();
        assert!(e.contains("cookies.secret_file"), "{e}");
        let e = parse("[cookies]\nsecret_file = \"/x\"\nrotate = \"2h\"\n").unwrap_err();
        assert!(e.contains("does not go with secret_file"), "{e}");
        let e = parse("[cookies]\nsecret = \"abc\"\n").unwrap_err();
        assert!(e.contains("secret"), "{e}");
    }
}
