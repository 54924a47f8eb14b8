//! A probe's health: the rise/fall state machine that turns check results
//! into healthy/unhealthy, and the probe's running tally for status.

use std::fmt;
use std::time::{Duration, SystemTime};

use super::result::{CheckResult, Latency};

/// An endpoint's health as the agent believes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    /// Not checked yet.
    Unknown,
    Healthy,
    Unhealthy,
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Health::Unknown => "unknown",
            Health::Healthy => "healthy",
            Health::Unhealthy => "unhealthy",
        })
    }
}

/// A probe's state as the agent and the control interface see it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProbeStatus {
    pub health: Option<Health>,
    /// Checks run so far, and how many of them failed.
    pub checks: u64,
    pub failures: u64,
    /// Latency of the last check.
    pub last_latency: Option<Duration>,
    /// When the last check ended.
    pub last_check: Option<SystemTime>,
    /// Why the last failed check failed, and when it ended.
    pub last_failure: Option<String>,
    pub last_failure_at: Option<SystemTime>,
    /// When the health last changed (the first check counts).
    pub last_change: Option<SystemTime>,
}

impl ProbeStatus {
    /// Takes one result in; `changed`: it changed the health.
    pub fn record(&mut self, result: &CheckResult, health: Health, changed: bool) {
        let now = SystemTime::now();
        self.health = Some(health);
        self.checks += 1;
        self.last_latency = Some(result.latency);
        self.last_check = Some(now);
        if let Err(failure) = &result.outcome {
            self.failures += 1;
            self.last_failure = Some(failure.to_string());
            self.last_failure_at = Some(now);
        }
        if changed {
            self.last_change = Some(now);
        }
    }

    pub fn health(&self) -> Health {
        self.health.unwrap_or(Health::Unknown)
    }
}

/// A change of health, with what caused it (for the log line).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    pub old: Health,
    pub new: Health,
    /// e.g. "3 consecutive failures; last: connection refused, 0.4ms".
    pub reason: String,
}

/// Rise/fall hysteresis over consecutive check results.
#[derive(Clone, Debug)]
pub struct HealthTracker {
    rise: u32,
    fall: u32,
    state: Health,
    successes: u32,
    failures: u32,
}

impl HealthTracker {
    pub fn new(rise: u32, fall: u32) -> Self {
        assert!(rise >= 1 && fall >= 1, "validated by the config");
        Self {
            rise,
            fall,
            state: Health::Unknown,
            successes: 0,
            failures: 0,
        }
    }

    pub fn state(&self) -> Health {
        self.state
    }

    /// Feeds one check result; returns the transition it caused, if any.
    pub fn observe(&mut self, result: &CheckResult) -> Option<Transition> {
        let latency = Latency(result.latency);
        match &result.outcome {
            Ok(()) => {
                self.successes = self.successes.saturating_add(1);
                self.failures = 0;
            }
            Err(_) => {
                self.failures = self.failures.saturating_add(1);
                self.successes = 0;
            }
        }
        let old = self.state;
        // Deliberate choice: from Unknown the first result decides at once.
        // Waiting for `rise` successes would delay the first answer set by
        // rise * interval at every start, and waiting for `fall` failures would
        // publish nothing for a dead endpoint for fall * interval.
        let (new, reason) = match (&result.outcome, old) {
            (Ok(()), Health::Unknown) => (
                Health::Healthy,
                format!("first check: {}, {latency}", result.note),
            ),
            (Err(failure), Health::Unknown) => (
                Health::Unhealthy,
                format!("first check: {failure}, {latency}"),
            ),
            (Ok(()), Health::Unhealthy) if self.successes >= self.rise => (
                Health::Healthy,
                format!(
                    "{} consecutive {}; last: {}, {latency}",
                    self.successes,
                    plural(self.successes, "success", "successes"),
                    result.note
                ),
            ),
            (Err(failure), Health::Healthy) if self.failures >= self.fall => (
                Health::Unhealthy,
                format!(
                    "{} consecutive {}; last: {failure}, {latency}",
                    self.failures,
                    plural(self.failures, "failure", "failures")
                ),
            ),
            _ => return None,
        };
        self.state = new;
        Some(Transition { old, new, reason })
    }
}

fn plural<'a>(n: u32, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 { one } else { many }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::Failure;

    fn success() -> CheckResult {
        CheckResult {
            outcome: Ok(()),
            latency: Duration::from_micros(400),
            note: "connected".into(),
        }
    }

    fn failure() -> CheckResult {
        CheckResult {
            outcome: Err(Failure::Refused),
            latency: Duration::from_micros(400),
            note: String::new(),
        }
    }

    #[test]
    fn first_result_decides_from_unknown() {
        let mut up = HealthTracker::new(2, 3);
        let t = up.observe(&success()).unwrap();
        assert_eq!((t.old, t.new), (Health::Unknown, Health::Healthy));
        assert_eq!(t.reason, "first check: connected, 0.4ms");

        let mut down = HealthTracker::new(2, 3);
        let t = down.observe(&failure()).unwrap();
        assert_eq!((t.old, t.new), (Health::Unknown, Health::Unhealthy));
        assert_eq!(t.reason, "first check: connection refused, 0.4ms");
    }

    #[test]
    fn fall_needs_consecutive_failures() {
        let mut t = HealthTracker::new(2, 3);
        t.observe(&success());
        assert_eq!(t.observe(&failure()), None);
        assert_eq!(t.observe(&failure()), None);
        // A success in between resets the count.
        assert_eq!(t.observe(&success()), None);
        assert_eq!(t.observe(&failure()), None);
        assert_eq!(t.observe(&failure()), None);
        assert_eq!(t.state(), Health::Healthy);
        let down = t.observe(&failure()).unwrap();
        assert_eq!((down.old, down.new), (Health::Healthy, Health::Unhealthy));
        assert_eq!(
            down.reason,
            "3 consecutive failures; last: connection refused, 0.4ms"
        );
        assert_eq!(t.observe(&failure()), None, "no repeated transition");
    }

    #[test]
    fn rise_needs_consecutive_successes() {
        let mut t = HealthTracker::new(2, 1);
        t.observe(&failure());
        assert_eq!(t.observe(&success()), None);
        assert_eq!(t.observe(&failure()), None);
        assert_eq!(t.observe(&success()), None);
        let up = t.observe(&success()).unwrap();
        assert_eq!((up.old, up.new), (Health::Unhealthy, Health::Healthy));
        assert_eq!(up.reason, "2 consecutive successes; last: connected, 0.4ms");
        let down = t.observe(&failure()).unwrap();
        assert_eq!(
            down.reason,
            "1 consecutive failure; last: connection refused, 0.4ms"
        );
    }
}
