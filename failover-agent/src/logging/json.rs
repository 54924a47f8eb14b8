//! JSON lines: `{"timestamp":...,"level":"INFO","target":...,"message":...}`
//! and every field of the event at the top level, typed (numbers and
//! booleans stay numbers and booleans). The `log` bridge's own fields
//! (`log.file`, ...) are left out; its records carry their real target.

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_log::NormalizeEvent as _;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

pub struct JsonFormat;

impl<S, N> FormatEvent<S, N> for JsonFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let normalized = event.normalized_metadata();
        let meta = normalized.as_ref().unwrap_or_else(|| event.metadata());
        let mut fields = Fields::default();
        event.record(&mut fields);
        let mut line = String::with_capacity(256);
        line.push('{');
        entry(
            &mut line,
            "timestamp",
            humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string(),
        );
        entry(&mut line, "level", meta.level().as_str());
        entry(&mut line, "target", meta.target());
        line.push_str(&fields.0);
        line.push('}');
        writeln!(writer, "{line}")
    }
}

/// Appends `"key":value` (after a comma unless first).
fn entry(line: &mut String, key: &str, value: impl Into<serde_json::Value>) {
    if !line.ends_with('{') {
        line.push(',');
    }
    let _ = write!(line, "{}:{}", serde_json::Value::from(key), value.into());
}

/// The event's fields as `,"key":value` entries, in the order written.
#[derive(Default)]
struct Fields(String);

impl Fields {
    fn add(&mut self, field: &Field, value: serde_json::Value) {
        let name = field.name();
        if name.starts_with("log.") {
            return;
        }
        let _ = write!(self.0, ",{}:{value}", serde_json::Value::from(name));
    }
}

impl Visit for Fields {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.add(field, value.into());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.add(field, value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.add(field, value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.add(field, value.into());
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.add(field, value.into());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.add(field, format!("{value:?}").into());
    }
}
