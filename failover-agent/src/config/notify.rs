//! `[[notify]]`: hooks told about transitions, answer changes, reloads and
//! overrides: `kind = "webhook"` (an HTTP POST of the event as JSON) or
//! `kind = "exec"` (a command with the event in its environment).
//!
//! Only the settings live here; the hooks themselves are [`crate::notify`].

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use serde::Deserialize;

use crate::events::EventKind;
use crate::field::{FieldError, count_value, duration_value, field_err, no_nul, quoted};

/// One `[[notify]]` table as written. Which keys apply depends on `kind`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyFile {
    /// Required. `"webhook"` or `"exec"`.
    pub kind: String,
    /// Optional. Which events: any of `"transition"`, `"answer_change"`,
    /// `"reload"`, `"override"`, `"cluster"`. Default `["transition", "answer_change"]`.
    pub events: Option<Vec<String>>,
    /// Optional, 1 to 100000. Events waiting for delivery; when full, the
    /// oldest is dropped (and counted). Default 1000.
    pub queue: Option<i64>,
    /// Optional. Webhook: one request (connect, TLS, response head);
    /// default `"5s"`. Exec: the command, killed when over; default `"10s"`.
    /// At most an hour.
    pub timeout: Option<String>,
    /// Webhook, required. `http://` or `https://` URL the events are POSTed to.
    pub url: Option<String>,
    /// Webhook, optional. Extra request headers, e.g.
    /// `{ Authorization = "Bearer s3cr3t" }`.
    pub headers: Option<BTreeMap<String, String>>,
    /// Webhook, optional, 0 to 100. Further attempts after a failed one
    /// (no response, timeout, or a status other than 2xx). Default 3.
    pub retries: Option<i64>,
    /// Webhook, optional. Wait before the first retry, doubled for each
    /// next one (at most 5 minutes). Default `"1s"`.
    pub backoff: Option<String>,
    /// Webhook, optional, https only. Verify the receiver against these CA
    /// certificates (PEM) instead of the built-in web roots.
    pub ca_file: Option<String>,
    /// Exec, required. The program and its arguments (no shell).
    pub command: Option<Vec<String>>,
    /// Exec, optional, 1 to 64. Commands running at once. Default 4.
    pub max_running: Option<i64>,
}

/// The events a hook gets unless it says otherwise.
pub const DEFAULT_EVENTS: [EventKind; 2] = [EventKind::Transition, EventKind::AnswerChange];
pub const DEFAULT_QUEUE: usize = 1000;
const MAX_QUEUE: u32 = 100_000;
pub const DEFAULT_WEBHOOK_TIMEOUT: Duration = Duration::from_secs(5);
pub const DEFAULT_EXEC_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_TIMEOUT: Duration = Duration::from_secs(3600);
pub const DEFAULT_RETRIES: u32 = 3;
const MAX_RETRIES: i64 = 100;
pub const DEFAULT_BACKOFF: Duration = Duration::from_secs(1);
/// The longest wait between two attempts, however many retries.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);
pub const DEFAULT_MAX_RUNNING: usize = 4;
const MAX_MAX_RUNNING: u32 = 64;
/// Longest `url`.
const MAX_URL: usize = 2048;

/// One validated hook.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hook {
    /// The events it gets, each once, in [`EventKind`] order.
    pub events: Vec<EventKind>,
    pub queue: usize,
    pub timeout: Duration,
    pub kind: HookKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HookKind {
    Webhook(Webhook),
    Exec(ExecHook),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Webhook {
    /// As configured (parsed again, infallibly, when the hook starts).
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub retries: u32,
    pub backoff: Duration,
    /// `ca_file` and the certificates it held when validated.
    pub ca_file: Option<(PathBuf, Vec<CertificateDer<'static>>)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecHook {
    /// Program and arguments; never empty.
    pub command: Vec<String>,
    pub max_running: usize,
}

impl Hook {
    /// How the log names the hook: its kind and where it goes (a URL
    /// without its query, which may hold a token; the program).
    pub fn label(&self) -> String {
        match &self.kind {
            HookKind::Webhook(w) => {
                let shown = w.url.split(['?', '#']).next().unwrap_or_default();
                format!("webhook {shown}")
            }
            HookKind::Exec(e) => format!("exec {}", e.command[0]),
        }
    }

    pub fn wants(&self, kind: EventKind) -> bool {
        self.events.contains(&kind)
    }
}

/// Every `[[notify]]`, validated.
pub(super) fn notify_value(hooks: &[NotifyFile]) -> Result<Vec<Hook>, FieldError> {
    hooks
        .iter()
        .enumerate()
        .map(|(i, hook)| hook_value(&format!("notify[{i}]"), hook))
        .collect()
}

fn hook_value(path: &str, file: &NotifyFile) -> Result<Hook, FieldError> {
    let events = match &file.events {
        None => DEFAULT_EVENTS.to_vec(),
        Some(names) if names.is_empty() => {
            return Err(field_err(
                format!("{path}.events"),
                "at least one event is required (or leave the key out for [\"transition\", \"answer_change\"])",
            ));
        }
        Some(names) => {
            let mut kinds = Vec::with_capacity(names.len());
            for (i, name) in names.iter().enumerate() {
                let Some(kind) = EventKind::from_name(name) else {
                    return Err(field_err(
                        format!("{path}.events[{i}]"),
                        format!(
                            "unknown event {}: expected \"transition\", \"answer_change\", \"reload\", \"override\" or \"cluster\"",
                            quoted(name)
                        ),
                    ));
                };
                kinds.push(kind);
            }
            kinds.sort();
            kinds.dedup();
            kinds
        }
    };
    let queue = count_value(
        &format!("{path}.queue"),
        file.queue,
        DEFAULT_QUEUE as u32,
        MAX_QUEUE,
    )? as usize;
    // The keys of the other kind are mistakes, not ignored.
    let refuse = |key: &str, set: bool, kind: &str| -> Result<(), FieldError> {
        if set {
            return Err(field_err(
                format!("{path}.{key}"),
                format!("not a key of kind = \"{kind}\""),
            ));
        }
        Ok(())
    };
    let (timeout, kind) = match file.kind.as_str() {
        "webhook" => {
            refuse("command", file.command.is_some(), "webhook")?;
            refuse("max_running", file.max_running.is_some(), "webhook")?;
            let timeout = duration_value(
                &format!("{path}.timeout"),
                file.timeout.as_ref(),
                DEFAULT_WEBHOOK_TIMEOUT,
                MAX_TIMEOUT,
            )?;
            (timeout, HookKind::Webhook(webhook_value(path, file)?))
        }
        "exec" => {
            for (key, set) in [
                ("url", file.url.is_some()),
                ("headers", file.headers.is_some()),
                ("retries", file.retries.is_some()),
                ("backoff", file.backoff.is_some()),
                ("ca_file", file.ca_file.is_some()),
            ] {
                refuse(key, set, "exec")?;
            }
            let timeout = duration_value(
                &format!("{path}.timeout"),
                file.timeout.as_ref(),
                DEFAULT_EXEC_TIMEOUT,
                MAX_TIMEOUT,
            )?;
            (timeout, HookKind::Exec(exec_value(path, file)?))
        }
        other => {
            return Err(field_err(
                format!("{path}.kind"),
                format!(
                    "unknown kind {}: expected \"webhook\" or \"exec\"",
                    quoted(other)
                ),
            ));
        }
    };
    Ok(Hook {
        events,
        queue,
        timeout,
        kind,
    })
}

fn webhook_value(path: &str, file: &NotifyFile) -> Result<Webhook, FieldError> {
    let field = format!("{path}.url");
    let Some(url) = &file.url else {
        return Err(field_err(
            field,
            "required for a webhook: where to POST, e.g. \"https://hooks.example.test/failover\"",
        ));
    };
    let https = check_url(&field, url)?;
    let mut headers = Vec::new();
    for (name, value) in file.headers.iter().flatten() {
        let field = format!("{path}.headers.{name}");
        if hyper::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(field_err(
                format!("{path}.headers"),
                format!("{} is not a header name", quoted(name)),
            ));
        }
        let managed = [
            "host",
            "content-type",
            "content-length",
            "transfer-encoding",
            "connection",
        ];
        if managed.contains(&name.to_ascii_lowercase().as_str()) {
            return Err(field_err(
                field,
                format!("{name} is set by the hook itself"),
            ));
        }
        if hyper::header::HeaderValue::from_str(value).is_err() {
            return Err(field_err(
                field,
                "a header value is visible ASCII, spaces and tabs: no line breaks or control characters",
            ));
        }
        headers.push((name.clone(), value.clone()));
    }
    let retries = match file.retries {
        None => DEFAULT_RETRIES,
        Some(n) if (0..=MAX_RETRIES).contains(&n) => n as u32,
        Some(n) => {
            return Err(field_err(
                format!("{path}.retries"),
                format!("{n} is out of range: must be 0 to {MAX_RETRIES}"),
            ));
        }
    };
    let backoff = duration_value(
        &format!("{path}.backoff"),
        file.backoff.as_ref(),
        DEFAULT_BACKOFF,
        MAX_BACKOFF,
    )?;
    let ca_file = match &file.ca_file {
        None => None,
        Some(_) if !https => {
            return Err(field_err(
                format!("{path}.ca_file"),
                "only for an https:// url",
            ));
        }
        Some(file) => {
            no_nul(&format!("{path}.ca_file"), file)?;
            let file_path = PathBuf::from(file);
            let certs = crate::checks::http::load_ca_file(&file_path)
                .map_err(|e| field_err(format!("{path}.ca_file"), e))?;
            Some((file_path, certs))
        }
    };
    Ok(Webhook {
        url: url.clone(),
        headers,
        retries,
        backoff,
        ca_file,
    })
}

/// An absolute `http://` or `https://` URL with a host and no user name or
/// password; whether it is https.
fn check_url(field: &str, url: &str) -> Result<bool, FieldError> {
    if url.len() > MAX_URL {
        return Err(field_err(
            field,
            format!("{} is too long: at most {MAX_URL} bytes", quoted(url)),
        ));
    }
    let uri: hyper::Uri = url.parse().map_err(|e| {
        field_err(
            field,
            format!(
                "{} is not a URL ({e}); write e.g. \"https://hooks.example.test/failover\"",
                quoted(url)
            ),
        )
    })?;
    let https = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        Some(other) => {
            return Err(field_err(
                field,
                format!(
                    "{}: scheme {other:?} is not supported: http:// or https://",
                    quoted(url)
                ),
            ));
        }
        None => {
            return Err(field_err(
                field,
                format!(
                    "{} has no scheme: write http://... or https://...",
                    quoted(url)
                ),
            ));
        }
    };
    let Some(authority) = uri.authority() else {
        return Err(field_err(field, format!("{} has no host", quoted(url))));
    };
    if authority.as_str().contains('@') {
        return Err(field_err(
            field,
            format!(
                "{}: no user name or password in the URL (they would be logged): put them in headers, e.g. Authorization",
                quoted(url)
            ),
        ));
    }
    if authority.host().is_empty() {
        return Err(field_err(field, format!("{} has no host", quoted(url))));
    }
    if authority.port_u16() == Some(0) {
        return Err(field_err(field, format!("{}: port 0", quoted(url))));
    }
    Ok(https)
}

fn exec_value(path: &str, file: &NotifyFile) -> Result<ExecHook, FieldError> {
    let command = file.command.clone().unwrap_or_default();
    if command.is_empty() || command[0].is_empty() {
        return Err(field_err(
            format!("{path}.command"),
            "required for an exec hook: the program and its arguments, e.g. [\"/usr/local/bin/page-oncall\", \"--team\", \"dns\"]",
        ));
    }
    for (i, arg) in command.iter().enumerate() {
        no_nul(&format!("{path}.command[{i}]"), arg)?;
    }
    let max_running = count_value(
        &format!("{path}.max_running"),
        file.max_running,
        DEFAULT_MAX_RUNNING as u32,
        MAX_MAX_RUNNING,
    )? as usize;
    Ok(ExecHook {
        command,
        max_running,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    use crate::config::tests::ONE_RECORD as BASE;

    fn parse(notify: &str) -> Result<Vec<Hook>, String> {
        Config::parse(&format!("{BASE}{notify}"), "test.toml")
            .map(|c| c.notify)
            .map_err(|e| e.to_string())
    }

    /// The error for `notify`, which must name `field`.
    fn error(notify: &str, field: &str) -> String {
        let e = parse(notify).expect_err(notify);
        assert!(
            e.contains(&format!(": {field}: ")),
            "{field} not named: {e}"
        );
        e
    }

    #[test]
    fn defaults_and_every_key() {
        assert_eq!(parse("").unwrap(), vec![]);
        let hooks = parse(
            r#"
[[notify]]
kind = "webhook"
url = "https://hooks.example.test/failover?token=x"
[[notify]]
kind = "webhook"
url = "http://127.0.0.1:8080/"
events = ["reload", "transition", "cluster", "reload", "override", "answer_change"]
headers = { Authorization = "Bearer s3cr3t" }
timeout = "2s"
retries = 0
backoff = "250ms"
queue = 10
[[notify]]
kind = "exec"
command = ["/usr/local/bin/page", "--team", "dns"]
max_running = 2
timeout = "1m"
"#,
        )
        .unwrap();
        assert_eq!(
            hooks[0],
            Hook {
                events: DEFAULT_EVENTS.to_vec(),
                queue: DEFAULT_QUEUE,
                timeout: DEFAULT_WEBHOOK_TIMEOUT,
                kind: HookKind::Webhook(Webhook {
                    url: "https://hooks.example.test/failover?token=x".into(),
                    headers: vec![],
                    retries: DEFAULT_RETRIES,
                    backoff: DEFAULT_BACKOFF,
                    ca_file: None,
                }),
            }
        );
        // The query (a token, maybe) stays out of the log.
        assert_eq!(
            hooks[0].label(),
            "webhook https://hooks.example.test/failover"
        );
        assert_eq!(
            hooks[1].events,
            EventKind::ALL.to_vec(),
            "each once, in order"
        );
        assert_eq!(hooks[1].queue, 10);
        assert_eq!(hooks[1].timeout, Duration::from_secs(2));
        let HookKind::Webhook(w) = &hooks[1].kind else {
            panic!("{:?}", hooks[1]);
        };
        assert_eq!(w.retries, 0);
        assert_eq!(w.backoff, Duration::from_millis(250));
        assert_eq!(
            w.headers,
            vec![("Authorization".to_string(), "Bearer s3cr3t".to_string())]
        );
        assert_eq!(
            hooks[2],
            Hook {
                events: DEFAULT_EVENTS.to_vec(),
                queue: DEFAULT_QUEUE,
                timeout: Duration::from_secs(60),
                kind: HookKind::Exec(ExecHook {
                    command: vec!["/usr/local/bin/page".into(), "--team".into(), "dns".into()],
                    max_running: 2,
                }),
            }
        );
        assert_eq!(hooks[2].label(), "exec /usr/local/bin/page");
    }

    #[test]
    fn errors_name_the_field() {
        let w = |rest: &str| format!("[[notify]]\nkind = \"webhook\"\n{rest}\n");
        let x = |rest: &str| format!("[[notify]]\nkind = \"exec\"\n{rest}\n");
        assert!(
            error("[[notify]]\nkind = \"email\"", "notify[0].kind")
                .contains("\"webhook\" or \"exec\"")
        );
        assert!(error("[[notify]]\nurl = \"http://x/\"", "notify[0]").contains("kind"));
        assert!(error(&w(""), "notify[0].url").contains("required"));
        assert!(error(&w("url = \"ftp://x/\""), "notify[0].url").contains("http:// or https://"));
        let e = error(&w("url = \"hooks.example.test/x\""), "notify[0].url");
        assert!(e.contains("not a URL"), "{e}");
        let e = error(&w("url = \"hooks.example.test\""), "notify[0].url");
        assert!(e.contains("no scheme"), "{e}");
        assert!(error(&w("url = \"http://\""), "notify[0].url").contains("not a URL"));
        assert!(error(&w("url = \"http://u:p@x/\""), "notify[0].url").contains("headers"));
        assert!(error(&w("url = \"http://x:0/\""), "notify[0].url").contains("port 0"));
        let long = format!("url = \"http://x/{}\"", "a".repeat(3000));
        assert!(error(&w(&long), "notify[0].url").contains("too long"));
        let ok = "url = \"http://127.0.0.1/\"";
        assert!(
            error(
                &w(&format!("{ok}\nheaders = {{ \"Bad Name\" = \"v\" }}")),
                "notify[0].headers"
            )
            .contains("header name")
        );
        assert!(
            error(
                &w(&format!("{ok}\nheaders = {{ \"X-A\" = \"a\\nb\" }}")),
                "notify[0].headers.X-A"
            )
            .contains("line breaks")
        );
        assert!(
            error(
                &w(&format!(
                    "{ok}\nheaders = {{ \"Content-Type\" = \"text/plain\" }}"
                )),
                "notify[0].headers.Content-Type"
            )
            .contains("set by the hook")
        );
        assert!(
            error(&w(&format!("{ok}\nretries = 101")), "notify[0].retries").contains("0 to 100")
        );
        assert!(
            error(&w(&format!("{ok}\nretries = -1")), "notify[0].retries").contains("0 to 100")
        );
        assert!(
            error(&w(&format!("{ok}\nbackoff = \"0s\"")), "notify[0].backoff")
                .contains("longer than zero")
        );
        assert!(
            error(&w(&format!("{ok}\nbackoff = \"10m\"")), "notify[0].backoff")
                .contains("too long")
        );
        assert!(
            error(
                &w(&format!("{ok}\ntimeout = \"soon\"")),
                "notify[0].timeout"
            )
            .contains("not a duration")
        );
        assert!(error(&w(&format!("{ok}\nqueue = 0")), "notify[0].queue").contains("1 to 100000"));
        assert!(
            error(&w(&format!("{ok}\nevents = []")), "notify[0].events").contains("at least one")
        );
        assert!(
            error(
                &w(&format!("{ok}\nevents = [\"transition\", \"flap\"]")),
                "notify[0].events[1]"
            )
            .contains("\"flap\"")
        );
        assert!(
            error(
                &w(&format!("{ok}\nca_file = \"/etc/ssl/certs/ca.pem\"")),
                "notify[0].ca_file"
            )
            .contains("https://")
        );
        assert!(
            error(
                &w("url = \"https://x/\"\nca_file = \"/nonexistent/ca.pem\""),
                "notify[0].ca_file"
            )
            .contains("/nonexistent/ca.pem")
        );
        assert!(
            error(
                &w(&format!("{ok}\ncommand = [\"/bin/true\"]")),
                "notify[0].command"
            )
            .contains("not a key of kind = \"webhook\"")
        );
        assert!(
            error(
                &w(&format!("{ok}\nmax_running = 2")),
                "notify[0].max_running"
            )
            .contains("not a key of kind = \"webhook\"")
        );
        assert!(
            error(&w(&format!("{ok}\nmethod = \"PUT\"")), "notify[0].method")
                .contains("unknown field")
        );
        assert!(error(&x(""), "notify[0].command").contains("required"));
        assert!(error(&x("command = []"), "notify[0].command").contains("required"));
        assert!(
            error(
                &x("command = [\"/bin/echo\", \"a\\u0000b\"]"),
                "notify[0].command[1]"
            )
            .contains("NUL")
        );
        assert!(
            error(
                &x("command = [\"/bin/true\"]\nmax_running = 0"),
                "notify[0].max_running"
            )
            .contains("1 to 64")
        );
        assert!(
            error(
                &x("command = [\"/bin/true\"]\nmax_running = 65"),
                "notify[0].max_running"
            )
            .contains("1 to 64")
        );
        assert!(
            error(
                &x("command = [\"/bin/true\"]\nurl = \"http://x/\""),
                "notify[0].url"
            )
            .contains("not a key of kind = \"exec\"")
        );
        // The second hook is named by its index.
        assert!(error(&format!("{}{}", w(ok), x("")), "notify[1].command").contains("required"));
    }
}
