//! `[http]`: the read-only HTTP endpoint (metrics, status API and page,
//! health and readiness).

use std::net::SocketAddr;

use serde::Deserialize;

use crate::field::{FieldError, field_err, quoted};

/// Where the HTTP endpoint listens unless told otherwise: loopback only, on
/// the port CoreDNS's metrics use (scrapers find it where they look for DNS).
pub const DEFAULT_HTTP_LISTEN: &str = "127.0.0.1:9153";

/// `[http]` as written in the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpFile {
    /// Optional. Address and port of the read-only HTTP endpoint: `/metrics`
    /// (Prometheus), `/api/v1/status` (JSON), `/healthz`, `/readyz` and the
    /// status page `/`. `""` disables it. Read at start. Default
    /// `"127.0.0.1:9153"`.
    pub listen: Option<String>,
}

/// `[http]`, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Http {
    /// None: no HTTP endpoint.
    pub listen: Option<SocketAddr>,
    /// `listen` is the default: when its port is taken (another agent on
    /// this host) this agent runs without one, with a warning.
    pub listen_is_default: bool,
}

impl Default for Http {
    fn default() -> Self {
        Http {
            listen: Some(DEFAULT_HTTP_LISTEN.parse().expect("a socket address")),
            listen_is_default: true,
        }
    }
}

/// `[http]` validated (the whole section may be absent).
pub fn http_value(file: Option<&HttpFile>) -> Result<Http, FieldError> {
    match file.and_then(|f| f.listen.as_deref()) {
        None => Ok(Http::default()),
        Some(text) => Ok(Http {
            listen: http_listen("http.listen", text)?,
            listen_is_default: false,
        }),
    }
}

/// An HTTP listen address (`"127.0.0.1:9153"`, `"[::1]:9153"`), or None
/// for `""` (disabled). Used for the file's key and `--http-listen`.
pub fn http_listen(field: &str, text: &str) -> Result<Option<SocketAddr>, FieldError> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Ok(None);
    }
    let addr: SocketAddr = trimmed.parse().map_err(|_| {
        field_err(
            field,
            format!(
                "{} is not an address and port to listen on (e.g. \"127.0.0.1:9153\", \"[::1]:9153\"; \"\" disables the HTTP endpoint)",
                quoted(text)
            ),
        )
    })?;
    if addr.port() == 0 {
        return Err(field_err(
            field,
            format!(
                "{}: port 0 is not a port (scrapers need to know where to look)",
                quoted(text)
            ),
        ));
    }
    Ok(Some(addr))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_default_disabled_and_errors() {
        assert_eq!(http_value(None).unwrap(), Http::default());
        assert_eq!(
            Http::default().listen,
            Some("127.0.0.1:9153".parse().unwrap())
        );
        let file = |listen: &str| HttpFile {
            listen: Some(listen.to_string()),
        };
        assert_eq!(http_value(Some(&file(""))).unwrap().listen, None);
        let v6 = http_value(Some(&file("[::1]:9100"))).unwrap();
        assert_eq!(v6.listen, Some("[::1]:9100".parse().unwrap()));
        assert!(!v6.listen_is_default);
        let e = http_value(Some(&file("localhost"))).unwrap_err();
        assert_eq!(e.field, "http.listen");
        assert!(
            e.message.contains("not an address and port"),
            "{}",
            e.message
        );
        let e = http_value(Some(&file("127.0.0.1:0"))).unwrap_err();
        assert!(e.message.contains("port 0"), "{}", e.message);
    }
}
