//! One check's outcome: success with a note, or a [`Failure`] saying why,
//! and how long it took.

use std::fmt;
use std::io;
use std::time::Duration;

/// Why a check failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The endpoint answered the SYN with a RST: up, but nothing listens.
    Refused,
    /// No connection within the check's timeout.
    Timeout(Duration),
    /// Any other connect error (no route, network unreachable, ...), with the
    /// OS's text.
    Unreachable(String),
    /// The target answered, but wrongly: an HTTP status or body, a DNS rcode
    /// or answer, a TLS error, an exit status; the text says which.
    Failed(String),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Refused => f.write_str("connection refused"),
            Failure::Timeout(after) => {
                write!(f, "timeout after {}", humantime::format_duration(*after))
            }
            Failure::Unreachable(text) => write!(f, "unreachable: {text}"),
            Failure::Failed(text) => f.write_str(text),
        }
    }
}

impl Failure {
    /// A short, stable name for the kind of failure (metrics label values:
    /// a few, never the free text).
    pub fn reason(&self) -> &'static str {
        match self {
            Failure::Refused => "refused",
            Failure::Timeout(_) => "timeout",
            Failure::Unreachable(_) => "unreachable",
            Failure::Failed(_) => "failed",
        }
    }

    pub fn from_io(error: &io::Error) -> Failure {
        match error.kind() {
            io::ErrorKind::ConnectionRefused => Failure::Refused,
            _ => Failure::Unreachable(error.to_string()),
        }
    }
}

/// The result of one check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckResult {
    pub outcome: Result<(), Failure>,
    /// From the start of the check to its result (the timeout when it timed out).
    pub latency: Duration,
    /// What a success looked like, for logs: "connected", "HTTP 200",
    /// "NOERROR, 1 answer", "echo reply", "exit 0". Empty on failure.
    pub note: String,
}

impl CheckResult {
    /// A result from what a check returned (a success note, or why it failed)
    /// and how long it took.
    pub fn new(outcome: Result<String, Failure>, latency: Duration) -> Self {
        match outcome {
            Ok(note) => CheckResult {
                outcome: Ok(()),
                latency,
                note,
            },
            Err(failure) => CheckResult {
                outcome: Err(failure),
                latency,
                note: String::new(),
            },
        }
    }

    pub fn is_success(&self) -> bool {
        self.outcome.is_ok()
    }
}

/// Takes every check result as it reaches the agent (metrics). Called on
/// the agent's loop: must be quick and never block.
pub trait CheckObserver: Send + Sync {
    /// `check`: the check's name in the configuration; `kind`: "tcp", "http"...
    fn check_done(&self, check: &str, kind: &'static str, result: &CheckResult);
}

/// Latency for logs: "0.4ms", "12.3ms", "1.204s".
pub struct Latency(pub Duration);

impl fmt::Display for Latency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_secs_f64() * 1000.0;
        if ms < 1000.0 {
            write!(f, "{ms:.1}ms")
        } else {
            write!(f, "{:.3}s", ms / 1000.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_formatting() {
        assert_eq!(Latency(Duration::from_micros(420)).to_string(), "0.4ms");
        assert_eq!(Latency(Duration::from_micros(12_345)).to_string(), "12.3ms");
        assert_eq!(Latency(Duration::from_millis(1204)).to_string(), "1.204s");
        assert_eq!(
            Failure::Timeout(Duration::from_millis(500)).to_string(),
            "timeout after 500ms"
        );
    }
}
