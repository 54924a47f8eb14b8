//! `http` and `https`: a minimal HTTP/1.1 client, just enough for a health
//! check: one request with `Connection: close`, the status line, the headers,
//! and (when the body is looked at) the first `body_limit` bytes of the body,
//! de-chunked. TLS is rustls with the ring provider (no OpenSSL).

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::file::{CheckFile, StatusFile};
use super::result::Failure;
use super::target::CheckTarget;
use crate::field::{FieldError, field_err};

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HttpCheck {
    pub method: String,
    pub path: String,
    /// The Host header when configured (else derived from the target).
    pub host: Option<String>,
    /// Extra headers, in name order.
    pub headers: Vec<(String, String)>,
    /// Inclusive ranges of statuses that count as up.
    pub expect_status: Vec<(u16, u16)>,
    pub expect_body: Option<String>,
    pub body_limit: usize,
    /// `Some` for https.
    pub tls: Option<TlsCheck>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TlsCheck {
    /// Server name for SNI and verification; `None`: the target address.
    pub sni: Option<String>,
    pub verify: bool,
    /// `ca_file` and the certificates it held when the configuration was
    /// validated: read once, off the probes' path (a changed file is a
    /// changed check at the next reload).
    pub ca_file: Option<(std::path::PathBuf, Vec<CertificateDer<'static>>)>,
}

const DEFAULT_BODY_LIMIT: usize = 4096;
const MAX_BODY_LIMIT: i64 = 1 << 20;

/// The `http`/`https` keys of `[checks.NAME]`.
pub fn settings(path: &str, check: &CheckFile, tls: bool) -> Result<HttpCheck, FieldError> {
    let method = check.method.clone().unwrap_or_else(|| "GET".to_string());
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(field_err(
            format!("{path}.method"),
            format!(
                "{method} is not an HTTP method (e.g. \"GET\", \"HEAD\")",
                method = crate::field::quoted(&method)
            ),
        ));
    }
    let request_path = check.path.clone().unwrap_or_else(|| "/".to_string());
    if !request_path.starts_with('/') || request_path.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(field_err(
            format!("{path}.path"),
            format!(
                "{request_path}: must start with / and contain no spaces or control characters (percent-encode them)",
                request_path = crate::field::quoted(&request_path)
            ),
        ));
    }
    let header_text_ok = |v: &str| !v.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0);
    if let Some(host) = &check.host
        && (host.is_empty() || !header_text_ok(host) || host.contains(' '))
    {
        return Err(field_err(
            format!("{path}.host"),
            format!(
                "{host} is not a host name",
                host = crate::field::quoted(host)
            ),
        ));
    }
    let mut headers = Vec::new();
    for (name, value) in check.headers.iter().flatten() {
        let token = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !token {
            return Err(field_err(
                format!("{path}.headers"),
                format!(
                    "{name} is not a header name",
                    name = crate::field::quoted(name)
                ),
            ));
        }
        let managed = ["host", "connection", "content-length", "transfer-encoding"];
        if managed.contains(&name.to_ascii_lowercase().as_str()) {
            return Err(field_err(
                format!("{path}.headers.{name}"),
                format!("{name} is set by the check itself (use host = ... for Host)"),
            ));
        }
        if !header_text_ok(value) {
            return Err(field_err(
                format!("{path}.headers.{name}"),
                "a header value cannot contain line breaks",
            ));
        }
        headers.push((name.clone(), value.clone()));
    }
    let expect_status = match &check.expect_status {
        None => vec![(200, 399)],
        Some(list) if list.is_empty() => {
            return Err(field_err(
                format!("{path}.expect_status"),
                "at least one status or range is required (or leave it out for 200-399)",
            ));
        }
        Some(list) => {
            let mut ranges = Vec::with_capacity(list.len());
            for (i, item) in list.iter().enumerate() {
                ranges.push(status_value(&format!("{path}.expect_status[{i}]"), item)?);
            }
            ranges
        }
    };
    if let Some(body) = &check.expect_body
        && body.is_empty()
    {
        return Err(field_err(
            format!("{path}.expect_body"),
            "empty: leave it out to not look at the body",
        ));
    }
    let body_limit = match check.body_limit {
        None => DEFAULT_BODY_LIMIT,
        Some(n) if (1..=MAX_BODY_LIMIT).contains(&n) => n as usize,
        Some(n) => {
            return Err(field_err(
                format!("{path}.body_limit"),
                format!("{n} is out of range: must be 1 to {MAX_BODY_LIMIT}"),
            ));
        }
    };
    if let Some(body) = &check.expect_body
        && body.len() > body_limit
    {
        return Err(field_err(
            format!("{path}.expect_body"),
            format!(
                "{} bytes long, more than body_limit ({body_limit}): it could never be found",
                body.len()
            ),
        ));
    }
    let tls = if tls {
        let sni = match check.sni.as_ref().or(check.host.as_ref()) {
            None => None,
            Some(text) => {
                let name = text.trim_end_matches('.').to_string();
                // An IP address is verified against the certificate's IP SANs.
                let valid = name.parse::<IpAddr>().is_ok()
                    || rustls::pki_types::ServerName::try_from(name.as_str()).is_ok();
                if !valid {
                    let key = if check.sni.is_some() { "sni" } else { "host" };
                    return Err(field_err(
                        format!("{path}.{key}"),
                        format!(
                            "{text} is not a valid TLS server name",
                            text = crate::field::quoted(text)
                        ),
                    ));
                }
                Some(name)
            }
        };
        let ca_file = match &check.ca_file {
            None => None,
            Some(file) => {
                crate::field::no_nul(&format!("{path}.ca_file"), file)?;
                let file_path = std::path::PathBuf::from(file);
                let certs = load_ca_file(&file_path)
                    .map_err(|e| field_err(format!("{path}.ca_file"), e))?;
                Some((file_path, certs))
            }
        };
        let verify = check.verify.unwrap_or(true);
        if !verify && ca_file.is_some() {
            return Err(field_err(
                format!("{path}.ca_file"),
                "verify = false accepts any certificate: ca_file would be ignored",
            ));
        }
        Some(TlsCheck {
            sni,
            verify,
            ca_file,
        })
    } else {
        None
    };
    Ok(HttpCheck {
        method,
        path: request_path,
        host: check.host.clone(),
        headers,
        expect_status,
        expect_body: check.expect_body.clone(),
        body_limit,
        tls,
    })
}

/// `200`, `"200"` or `"200-299"`, 100 to 599.
fn status_value(field: &str, item: &StatusFile) -> Result<(u16, u16), FieldError> {
    let bad = |text: String| {
        field_err(
            field,
            format!(
                "{text} is not a status or a range of statuses 100 to 599 (e.g. 200, \"200-299\")"
            ),
        )
    };
    let code = |n: i64| u16::try_from(n).ok().filter(|c| (100..=599).contains(c));
    match item {
        StatusFile::Code(n) => code(*n).map(|c| (c, c)).ok_or_else(|| bad(n.to_string())),
        StatusFile::Text(text) => {
            let parse = |s: &str| s.trim().parse::<i64>().ok().and_then(code);
            let range = match text.split_once('-') {
                None => parse(text).map(|c| (c, c)),
                Some((low, high)) => parse(low).zip(parse(high)),
            };
            match range {
                Some((low, high)) if low <= high => Ok((low, high)),
                _ => Err(bad(crate::field::quoted(text).to_string())),
            }
        }
    }
}

/// Response headers longer than this fail the check.
const HEADER_LIMIT: usize = 16 * 1024;

/// Largest `ca_file`: a bundle of every public CA is about 200 KiB.
pub const MAX_CA_FILE: u64 = 1024 * 1024;

/// Reads the CA certificates of a PEM file (for `ca_file`); an error says why.
/// Only a regular file of at most [`MAX_CA_FILE`] bytes is read (a device
/// would never end, a FIFO would block).
pub fn load_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let text = crate::field::read_bounded(path, MAX_CA_FILE, "a CA file")?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&text)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: not a PEM certificate file: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate in it", path.display()));
    }
    let mut store = RootCertStore::empty();
    let (added, _ignored) = store.add_parsable_certificates(certs.iter().cloned());
    if added == 0 {
        return Err(format!(
            "{}: no usable CA certificate in it",
            path.display()
        ));
    }
    Ok(certs)
}

/// What an https check needs ready before its first probe: the TLS client
/// configuration (built once per check, shared by its probes).
#[derive(Clone)]
pub struct Tls {
    connector: TlsConnector,
}

impl Tls {
    pub fn new(tls: &TlsCheck) -> Result<Tls, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup: {e}"))?;
        let config = if tls.verify {
            let mut roots = RootCertStore::empty();
            match &tls.ca_file {
                Some((_, certs)) => {
                    roots.add_parsable_certificates(certs.iter().cloned());
                }
                None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        } else {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
                .with_no_client_auth()
        };
        Ok(Tls {
            connector: TlsConnector::from(Arc::new(config)),
        })
    }
}

/// `verify = false`: any certificate chain and name; the handshake
/// signatures are still checked (the server holds the certificate's key).
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// One check; `tls` is `Some` for https. The caller bounds it in time.
pub async fn check(
    http: &HttpCheck,
    target: CheckTarget,
    tls: Option<&Tls>,
) -> Result<String, Failure> {
    let port = target.port.expect("http checks always have a port");
    let addr = SocketAddr::new(target.address, port);
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| Failure::from_io(&e))?;
    let _ = stream.set_nodelay(true);
    let host = host_header(http, target.address, port);
    match (tls, &http.tls) {
        (Some(tls), Some(settings)) => {
            let name = match &settings.sni {
                Some(name) => match name.parse::<IpAddr>() {
                    Ok(ip) => ServerName::IpAddress(ip.into()),
                    Err(_) => ServerName::try_from(name.clone())
                        .map_err(|e| Failure::Failed(format!("TLS server name {name}: {e}")))?,
                },
                None => ServerName::IpAddress(target.address.into()),
            };
            let stream = tls
                .connector
                .connect(name, stream)
                .await
                .map_err(|e| Failure::Failed(format!("TLS handshake: {e}")))?;
            exchange(stream, http, &host).await
        }
        _ => exchange(stream, http, &host).await,
    }
}

/// `host` if configured, else the TLS name, else the address (bracketed for
/// IPv6) with the port unless it is the scheme's default.
fn host_header(http: &HttpCheck, address: IpAddr, port: u16) -> String {
    if let Some(host) = &http.host {
        return host.clone();
    }
    if let Some(TlsCheck { sni: Some(sni), .. }) = &http.tls {
        return sni.clone();
    }
    let default_port = if http.tls.is_some() { 443 } else { 80 };
    let host = match address {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    };
    if port == default_port {
        host
    } else {
        format!("{host}:{port}")
    }
}

/// The request bytes.
pub fn request(http: &HttpCheck, host: &str) -> Vec<u8> {
    let mut text = format!(
        "{} {} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n",
        http.method, http.path
    );
    let has = |name: &str| {
        http.headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name))
    };
    if !has("user-agent") {
        text.push_str(concat!(
            "User-Agent: failover-agent/",
            env!("CARGO_PKG_VERSION"),
            "\r\n"
        ));
    }
    if !has("accept") {
        text.push_str("Accept: */*\r\n");
    }
    for (name, value) in &http.headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("\r\n");
    text.into_bytes()
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    http: &HttpCheck,
    host: &str,
) -> Result<String, Failure> {
    let io = |what: &str, e: std::io::Error| Failure::Failed(format!("{what}: {e}"));
    stream
        .write_all(&request(http, host))
        .await
        .map_err(|e| io("sending the request", e))?;
    stream
        .flush()
        .await
        .map_err(|e| io("sending the request", e))?;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(end) = find(&buf, b"\r\n\r\n") {
            break end + 4;
        }
        if buf.len() > HEADER_LIMIT {
            return Err(Failure::Failed(format!(
                "response headers longer than {HEADER_LIMIT} bytes"
            )));
        }
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| io("reading the response", e))?;
        if n == 0 {
            return Err(Failure::Failed(if buf.is_empty() {
                "connection closed without a response".to_string()
            } else {
                "connection closed in the response headers".to_string()
            }));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = Head::parse(&buf[..head_end])?;
    if !http
        .expect_status
        .iter()
        .any(|(low, high)| (*low..=*high).contains(&head.status))
    {
        return Err(Failure::Failed(format!(
            "HTTP {}, expected {}",
            head.status,
            status_list(&http.expect_status)
        )));
    }
    let Some(expected) = &http.expect_body else {
        return Ok(format!("HTTP {}", head.status));
    };
    let mut raw = buf[head_end..].to_vec();
    let limit = http.body_limit;
    loop {
        let (body, complete) = if head.chunked {
            dechunk(&raw, limit)?
        } else {
            let end = head.content_length.map_or(raw.len(), |n| n.min(raw.len()));
            let body = raw[..end.min(limit)].to_vec();
            (body, head.content_length.is_some_and(|n| raw.len() >= n))
        };
        if find(&body, expected.as_bytes()).is_some() {
            return Ok(format!("HTTP {}, body matched", head.status));
        }
        // The raw bytes bound: chunk framing costs at most a few bytes per
        // chunk, so twice the limit plus some always covers `limit` of body.
        if body.len() >= limit || complete || raw.len() > 2 * limit + 4096 {
            return Err(body_missing(head.status, expected, limit));
        }
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| io("reading the body", e))?;
        if n == 0 {
            return Err(body_missing(head.status, expected, limit));
        }
        raw.extend_from_slice(&chunk[..n]);
    }
}

fn body_missing(status: u16, expected: &str, limit: usize) -> Failure {
    Failure::Failed(format!(
        "HTTP {status}, but {expected:?} is not in the first {limit} bytes of the body"
    ))
}

fn status_list(ranges: &[(u16, u16)]) -> String {
    ranges
        .iter()
        .map(|(l, h)| {
            if l == h {
                l.to_string()
            } else {
                format!("{l}-{h}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// What the check needs of the response head.
#[derive(Debug, PartialEq, Eq)]
pub struct Head {
    pub status: u16,
    pub chunked: bool,
    pub content_length: Option<usize>,
}

impl Head {
    /// Parses the status line and headers (`bytes` ends with the blank line).
    pub fn parse(bytes: &[u8]) -> Result<Head, Failure> {
        let text = String::from_utf8_lossy(bytes);
        let mut lines = text.split("\r\n");
        let status_line = lines.next().unwrap_or("");
        let mut parts = status_line.splitn(3, ' ');
        let version = parts.next().unwrap_or("");
        let status = parts
            .next()
            .filter(|s| s.len() == 3)
            .and_then(|s| s.parse::<u16>().ok())
            .filter(|_| version.starts_with("HTTP/1."));
        let Some(status) = status else {
            let shown: String = status_line.chars().take(60).collect();
            return Err(Failure::Failed(format!("not an HTTP response: {shown:?}")));
        };
        let mut chunked = false;
        let mut content_length = None;
        for line in lines {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value
                    .split(',')
                    .any(|v| v.trim().eq_ignore_ascii_case("chunked"));
            } else if name.eq_ignore_ascii_case("content-length") {
                content_length = value.parse().ok();
            }
        }
        Ok(Head {
            status,
            chunked,
            content_length: if chunked { None } else { content_length },
        })
    }
}

/// Decodes as much of a chunked body as `raw` holds, up to `limit` bytes.
/// Returns the body so far and whether the last chunk was seen.
pub fn dechunk(raw: &[u8], limit: usize) -> Result<(Vec<u8>, bool), Failure> {
    let mut body = Vec::new();
    let mut at = 0;
    loop {
        let Some(line_end) = find(&raw[at..], b"\r\n") else {
            return Ok((body, false));
        };
        let line = String::from_utf8_lossy(&raw[at..at + line_end]);
        let size_text = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| Failure::Failed(format!("bad chunk size {size_text:?}")))?;
        if size == 0 {
            return Ok((body, true));
        }
        let start = at + line_end + 2;
        let available = raw.len().saturating_sub(start).min(size);
        let room = limit - body.len();
        body.extend_from_slice(&raw[start..start + available.min(room)]);
        if body.len() >= limit || available < size {
            return Ok((body, false));
        }
        at = start + size;
        // The CRLF after the chunk's data.
        if raw.len() < at + 2 {
            return Ok((body, false));
        }
        at += 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http() -> HttpCheck {
        HttpCheck {
            method: "GET".into(),
            path: "/health?full=1".into(),
            host: None,
            headers: vec![("X-Probe".into(), "1".into())],
            expect_status: vec![(200, 299)],
            expect_body: None,
            body_limit: 4096,
            tls: None,
        }
    }

    #[test]
    fn request_bytes() {
        let text = String::from_utf8(request(&http(), "192.0.2.1:8080")).unwrap();
        assert_eq!(
            text,
            concat!(
                "GET /health?full=1 HTTP/1.1\r\nHost: 192.0.2.1:8080\r\nConnection: close\r\n",
                "User-Agent: failover-agent/",
                env!("CARGO_PKG_VERSION"),
                "\r\nAccept: */*\r\nX-Probe: 1\r\n\r\n"
            )
        );
    }

    #[test]
    fn host_header_defaults() {
        let mut h = http();
        assert_eq!(
            host_header(&h, "192.0.2.1".parse().unwrap(), 80),
            "192.0.2.1"
        );
        assert_eq!(
            host_header(&h, "2001:db8::1".parse().unwrap(), 8080),
            "[2001:db8::1]:8080"
        );
        h.tls = Some(TlsCheck {
            sni: Some("www.example.test".into()),
            verify: true,
            ca_file: None,
        });
        assert_eq!(
            host_header(&h, "192.0.2.1".parse().unwrap(), 443),
            "www.example.test"
        );
        h.host = Some("other.test".into());
        assert_eq!(
            host_header(&h, "192.0.2.1".parse().unwrap(), 443),
            "other.test"
        );
    }

    #[test]
    fn head_parsing() {
        let head =
            Head::parse(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 12\r\n\r\n").unwrap();
        assert_eq!(
            head,
            Head {
                status: 503,
                chunked: false,
                content_length: Some(12)
            }
        );
        let head = Head::parse(
            b"HTTP/1.0 200 OK\r\ntransfer-encoding: gzip, Chunked\r\nContent-Length: 5\r\n\r\n",
        )
        .unwrap();
        assert_eq!(
            head,
            Head {
                status: 200,
                chunked: true,
                content_length: None
            }
        );
        let e = Head::parse(b"SSH-2.0-OpenSSH_9.2\r\n\r\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "not an HTTP response: \"SSH-2.0-OpenSSH_9.2\""
        );
    }

    #[test]
    fn chunked_bodies() {
        let raw = b"4\r\nWiki\r\n6;ext=1\r\npedia \r\nE\r\nin \r\n\r\nchunks.\r\n0\r\n\r\n";
        let (body, complete) = dechunk(raw, 100).unwrap();
        assert_eq!(body, b"Wikipedia in \r\n\r\nchunks.");
        assert!(complete);
        // Partial input: what is there so far, not complete.
        let (body, complete) = dechunk(&raw[..20], 100).unwrap();
        assert_eq!(body, b"Wikipe");
        assert!(!complete);
        // The limit stops decoding.
        let (body, _) = dechunk(raw, 5).unwrap();
        assert_eq!(body, b"Wikip");
        assert!(dechunk(b"zz\r\n", 10).is_err());
    }
}
