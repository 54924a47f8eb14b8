//! The agent's log: `tracing`, written to stderr as text lines (close to
//! the lines the agent always wrote) or JSON lines (`--log-format json`),
//! filtered by `RUST_LOG` (default `info`). Call sites that use the `log`
//! macros reach it through the bridge.
//!
//! Transitions, answer changes, reloads and overrides are logged by one
//! events observer ([`LogObserver`]), each as ONE event with stable field
//! names, so a log pipeline can select on `event="transition"` instead of
//! parsing sentences.

mod json;
mod limit;
mod observer;
mod text;

pub use observer::{LogObserver, TARGET};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// `[time LEVEL target] message`, plus `key=value` for fields other
    /// than the events observer's (whose message says it all).
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, `message`
    /// and every field of the event at the top level.
    Json,
}

/// Installs the global subscriber (and the `log` bridge). A second call
/// (tests) changes nothing.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::builder()
        .with_default_directive(LevelFilter::INFO.into())
        .from_env_lossy();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // An error means a subscriber is installed already: keep it.
    let _ = match format {
        LogFormat::Text => builder.event_format(text::TextFormat).try_init(),
        LogFormat::Json => builder.event_format(json::JsonFormat).try_init(),
    };
}
