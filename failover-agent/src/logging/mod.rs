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
    let subscriber = subscriber(format, std::io::stderr);
    // `log` records below the filter's level are not even formatted.
    let level = match subscriber.max_level_hint() {
        Some(LevelFilter::OFF) => log::LevelFilter::Off,
        Some(LevelFilter::ERROR) => log::LevelFilter::Error,
        Some(LevelFilter::WARN) => log::LevelFilter::Warn,
        Some(LevelFilter::INFO) => log::LevelFilter::Info,
        Some(LevelFilter::DEBUG) => log::LevelFilter::Debug,
        _ => log::LevelFilter::Trace,
    };
    // An error means a subscriber is installed already: keep it.
    if tracing::subscriber::set_global_default(subscriber).is_ok() {
        let _ = tracing_log::LogTracer::builder()
            .with_max_level(level)
            .init();
    }
}

/// The subscriber for `format`, writing lines to `writer`, filtered by
/// `RUST_LOG` (default `info`).
pub fn subscriber<W>(format: LogFormat, writer: W) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = EnvFilter::builder()
        .with_default_directive(LevelFilter::INFO.into())
        .from_env_lossy();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match format {
        LogFormat::Text => Box::new(builder.event_format(text::TextFormat).finish()),
        LogFormat::Json => Box::new(builder.event_format(json::JsonFormat).finish()),
    }
}

#[cfg(test)]
mod tests;
