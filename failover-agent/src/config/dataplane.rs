//! `[dataplane]`: how long the pinned XDP program answers without an agent.

use std::time::Duration;

use super::file::DataplaneFile;
use crate::field::{FieldError, duration_value, field_err};

/// The default `hold`.
pub const DEFAULT_HOLD: Duration = Duration::from_secs(60);
/// The shortest `hold`: the agent beats once a second.
pub const MIN_HOLD: Duration = Duration::from_secs(2);
/// The longest `hold`.
pub const MAX_HOLD: Duration = Duration::from_secs(7 * 24 * 3600);

/// `[dataplane]`, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataplaneSettings {
    pub hold: Duration,
}

impl Default for DataplaneSettings {
    fn default() -> Self {
        DataplaneSettings { hold: DEFAULT_HOLD }
    }
}

pub(super) fn dataplane_value(file: &DataplaneFile) -> Result<DataplaneSettings, FieldError> {
    let hold = duration_value("dataplane.hold", file.hold.as_ref(), DEFAULT_HOLD, MAX_HOLD)?;
    if hold < MIN_HOLD {
        return Err(field_err(
            "dataplane.hold",
            format!(
                "at least {} (the agent writes its heartbeat once a second)",
                humantime::format_duration(MIN_HOLD)
            ),
        ));
    }
    Ok(DataplaneSettings { hold })
}
