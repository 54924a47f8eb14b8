//! Repeated log lines about one thing (an endpoint's health changes, a
//! record's answer changes) are rate limited: at most `per_window` lines per
//! thing and window. Past that they are counted, and the next line let
//! through (or a summary once the window is over) says how many were left
//! out, so a flapping endpoint cannot flood the log.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// Lines per thing and window before lines are left out.
pub const LINES_PER_WINDOW: u32 = 10;
pub const WINDOW: Duration = Duration::from_secs(60);

#[derive(Debug)]
struct Budget {
    start: Instant,
    used: u32,
    /// Lines left out since the last one let through.
    left_out: u64,
}

#[derive(Debug)]
pub struct LogLimit<K> {
    per_window: u32,
    window: Duration,
    budgets: HashMap<K, Budget>,
}

impl<K: Hash + Eq + Clone> LogLimit<K> {
    pub fn new(per_window: u32, window: Duration) -> Self {
        LogLimit {
            per_window,
            window,
            budgets: HashMap::new(),
        }
    }

    /// Whether a line about `key` may be logged now: `Some(n)` with the
    /// number of lines about it left out before this one, `None` to leave
    /// it out (it is counted).
    pub fn admit(&mut self, key: &K, now: Instant) -> Option<u64> {
        let budget = self.budgets.entry(key.clone()).or_insert(Budget {
            start: now,
            used: 0,
            left_out: 0,
        });
        if now.duration_since(budget.start) >= self.window {
            budget.start = now;
            budget.used = 0;
        }
        if budget.used < self.per_window {
            budget.used += 1;
            Some(std::mem::take(&mut budget.left_out))
        } else {
            budget.left_out += 1;
            None
        }
    }

    /// The things whose window is over with lines left out, and how many:
    /// for a summary line. Forgets the things that are quiet.
    pub fn expired(&mut self, now: Instant) -> Vec<(K, u64)> {
        let window = self.window;
        let mut out = Vec::new();
        self.budgets.retain(|key, budget| {
            if now.duration_since(budget.start) < window {
                return true;
            }
            if budget.left_out > 0 {
                out.push((key.clone(), std::mem::take(&mut budget.left_out)));
            }
            false
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_past_the_budget_are_counted_and_reported() {
        let mut limit = LogLimit::new(3, Duration::from_secs(60));
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        for s in 0..3 {
            assert_eq!(limit.admit(&"a", at(s)), Some(0));
        }
        for s in 3..10 {
            assert_eq!(limit.admit(&"a", at(s)), None);
        }
        // Another thing has its own budget.
        assert_eq!(limit.admit(&"b", at(10)), Some(0));
        // A new window: the next line says what was left out.
        assert_eq!(limit.admit(&"a", at(61)), Some(7));
        assert_eq!(limit.admit(&"a", at(62)), Some(0));
        // Left out and then quiet: a summary once the window is over.
        for s in 63..70 {
            limit.admit(&"a", at(s));
        }
        assert_eq!(limit.expired(at(100)), []);
        assert_eq!(limit.expired(at(121)), [("a", 6)]);
        assert!(limit.budgets.is_empty(), "quiet things are forgotten");
    }
}
