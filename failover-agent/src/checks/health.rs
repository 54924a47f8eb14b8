//! A probe's health: the rise/fall state machine that turns check results
//! into healthy/unhealthy, flap damping over it, and the probe's running
//! tally for status.

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant, SystemTime};

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
    /// Held down for flapping (see [`Damping`]).
    pub damped: bool,
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

/// Flap damping: an endpoint whose health changes more than `limit` times
/// within `window` is held down (unhealthy) until its health has not
/// changed for `hold`. `limit` 0 turns it off.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Damping {
    pub limit: u32,
    pub window: Duration,
    pub hold: Duration,
}

impl Damping {
    /// The default: more than 4 changes in 60 s hold an endpoint down until
    /// it has been stable for 30 s. A failover and its recovery (2 changes)
    /// and a restart or two within a minute are not flapping.
    pub const DEFAULT: Damping = Damping {
        limit: 4,
        window: Duration::from_secs(60),
        hold: Duration::from_secs(30),
    };

    pub const OFF: Damping = Damping {
        limit: 0,
        window: Duration::ZERO,
        hold: Duration::ZERO,
    };
}

/// Rise/fall hysteresis over consecutive check results, then flap damping.
#[derive(Clone, Debug)]
pub struct HealthTracker {
    rise: u32,
    fall: u32,
    damping: Damping,
    /// What rise/fall say.
    raw: Health,
    successes: u32,
    failures: u32,
    /// When `raw` changed between healthy and unhealthy, within the window.
    changes: VecDeque<Instant>,
    damped: bool,
}

impl HealthTracker {
    pub fn new(rise: u32, fall: u32, damping: Damping) -> Self {
        assert!(rise >= 1 && fall >= 1, "validated by the config");
        Self {
            rise,
            fall,
            damping,
            raw: Health::Unknown,
            successes: 0,
            failures: 0,
            changes: VecDeque::new(),
            damped: false,
        }
    }

    /// The health the agent acts on: held down while damped.
    pub fn state(&self) -> Health {
        if self.damped {
            Health::Unhealthy
        } else {
            self.raw
        }
    }

    pub fn is_damped(&self) -> bool {
        self.damped
    }

    /// Feeds one check result; returns the change of [`HealthTracker::state`]
    /// it caused, if any.
    pub fn observe(&mut self, result: &CheckResult) -> Option<Transition> {
        self.observe_at(result, Instant::now())
    }

    /// [`HealthTracker::observe`] with the time of the result.
    pub fn observe_at(&mut self, result: &CheckResult, now: Instant) -> Option<Transition> {
        let old = self.state();
        let raw = self.rise_fall(result);
        let d = self.damping;
        if let Some(t) = &raw
            && t.old != Health::Unknown
            && d.limit > 0
        {
            self.changes.push_back(now);
        }
        while self
            .changes
            .front()
            .is_some_and(|at| now.duration_since(*at) > d.window)
        {
            self.changes.pop_front();
        }
        let mut reason = raw.map(|t| t.reason);
        if d.limit > 0 && !self.damped && self.changes.len() > d.limit as usize {
            self.damped = true;
            reason = Some(format!(
                "flapping: {} changes within {}; held down until stable for {}",
                self.changes.len(),
                humantime::format_duration(d.window),
                humantime::format_duration(d.hold)
            ));
        } else if self.damped
            && self
                .changes
                .back()
                .is_none_or(|last| now.duration_since(*last) >= d.hold)
        {
            self.damped = false;
            reason = Some(format!(
                "stable for {}: no longer damped",
                humantime::format_duration(d.hold)
            ));
        }
        let new = self.state();
        (new != old).then(|| Transition {
            old,
            new,
            reason: reason.unwrap_or_default(),
        })
    }

    /// Rise/fall over `result`: the change of the undamped health, if any.
    fn rise_fall(&mut self, result: &CheckResult) -> Option<Transition> {
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
        let old = self.raw;
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
        self.raw = new;
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
        let mut up = HealthTracker::new(2, 3, Damping::OFF);
        let t = up.observe(&success()).unwrap();
        assert_eq!((t.old, t.new), (Health::Unknown, Health::Healthy));
        assert_eq!(t.reason, "first check: connected, 0.4ms");

        let mut down = HealthTracker::new(2, 3, Damping::OFF);
        let t = down.observe(&failure()).unwrap();
        assert_eq!((t.old, t.new), (Health::Unknown, Health::Unhealthy));
        assert_eq!(t.reason, "first check: connection refused, 0.4ms");
    }

    #[test]
    fn fall_needs_consecutive_failures() {
        let mut t = HealthTracker::new(2, 3, Damping::OFF);
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
        let mut t = HealthTracker::new(2, 1, Damping::OFF);
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

    #[test]
    fn flapping_is_held_down_until_stable() {
        let damping = Damping {
            limit: 2,
            window: Duration::from_secs(60),
            hold: Duration::from_secs(30),
        };
        let mut t = HealthTracker::new(1, 1, damping);
        let start = Instant::now();
        let at = |s: u64| start + Duration::from_secs(s);
        assert!(t.observe_at(&success(), at(0)).is_some(), "first check");
        // Two changes within the window: still followed.
        assert_eq!(
            t.observe_at(&failure(), at(1)).unwrap().new,
            Health::Unhealthy
        );
        assert_eq!(
            t.observe_at(&success(), at(2)).unwrap().new,
            Health::Healthy
        );
        // The third is flapping: held down, also while the check succeeds.
        let held = t.observe_at(&failure(), at(3)).unwrap();
        assert_eq!((held.old, held.new), (Health::Healthy, Health::Unhealthy));
        assert!(
            held.reason.starts_with("flapping: 3 changes within 1m"),
            "{}",
            held.reason
        );
        assert_eq!(t.observe_at(&success(), at(4)), None);
        assert_eq!(t.state(), Health::Unhealthy);
        assert!(t.is_damped());
        // Wait: no transition while it stays up, until 30 s without a change.
        assert_eq!(t.observe_at(&success(), at(20)), None);
        assert_eq!(t.observe_at(&success(), at(33)), None);
        let back = t.observe_at(&success(), at(34)).unwrap();
        assert_eq!((back.old, back.new), (Health::Unhealthy, Health::Healthy));
        assert_eq!(back.reason, "stable for 30s: no longer damped");
        assert!(!t.is_damped());
        // Down while damped and stable down: it stays down, undamped after the hold.
        let mut d = HealthTracker::new(1, 1, damping);
        for (s, up) in [
            (0, true),
            (1, false),
            (2, true),
            (3, false),
            (4, true),
            (5, false),
        ] {
            let result = if up { success() } else { failure() };
            d.observe_at(&result, at(s));
        }
        assert!(d.is_damped());
        assert_eq!(d.observe_at(&failure(), at(40)), None, "down either way");
        assert!(!d.is_damped());
        // Off: every change is followed.
        let mut off = HealthTracker::new(1, 1, Damping::OFF);
        off.observe_at(&success(), at(0));
        for s in 1..20 {
            let r = if s % 2 == 1 { failure() } else { success() };
            assert!(off.observe_at(&r, at(s)).is_some());
        }
    }
}
