//! Which answer a record gives, given the state of its endpoints: pure
//! functions, no I/O, so every rule is unit-tested here.

use std::fmt;
use std::net::IpAddr;

use crate::config::{Endpoint, MinHealthy, Policy, Record, WhenAllDown};

/// An endpoint's state as the policy sees it: its health after the
/// operator's overrides (force up/down), or drained.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Not checked yet (counts as not healthy).
    Unknown,
    Healthy,
    Unhealthy,
    /// Out of every answer, fail-open included (maintenance), whatever its
    /// health.
    Drained,
}

/// Everything about a record the policy looks at.
#[derive(Clone, Copy, Debug)]
pub struct Rules<'a> {
    pub policy: Policy,
    /// Configuration order.
    pub endpoints: &'a [Endpoint],
    pub min_healthy: MinHealthy,
    pub max_answers: usize,
    pub when_all_down: &'a WhenAllDown,
    pub ttl: u32,
    pub degraded_ttl: Option<u32>,
}

impl<'a> Rules<'a> {
    pub fn of(record: &'a Record) -> Rules<'a> {
        Rules {
            policy: record.policy,
            endpoints: &record.endpoints,
            min_healthy: record.min_healthy,
            max_answers: record.max_answers,
            when_all_down: &record.when_all_down,
            ttl: record.ttl,
            degraded_ttl: record.degraded_ttl,
        }
    }
}

/// What a record answers.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Answer {
    /// All of these addresses (configuration order; the kernel rotates them).
    Addrs(Vec<IpAddr>),
    /// One of these per query, by weight (every weight >= 1).
    Weighted(Vec<(IpAddr, u32)>),
    /// `per_answer` of these per query (`max_answers`, fewer than there
    /// are): a window that rotates over all of them, best first, so every
    /// healthy endpoint gets its share of the traffic.
    Rotating {
        addrs: Vec<IpAddr>,
        per_answer: usize,
    },
    /// NOERROR, no records, the zone's SOA.
    NoData,
    /// SERVFAIL.
    ServFail,
}

impl Answer {
    /// The addresses this answer can give, for logs and status.
    pub fn addrs(&self) -> Vec<IpAddr> {
        match self {
            Answer::Addrs(a) | Answer::Rotating { addrs: a, .. } => a.clone(),
            Answer::Weighted(w) => w.iter().map(|(a, _)| *a).collect(),
            Answer::NoData | Answer::ServFail => Vec::new(),
        }
    }
}

impl fmt::Display for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let join = |items: Vec<String>| items.join(" ");
        match self {
            Answer::Addrs(a) => f.write_str(&join(a.iter().map(|a| a.to_string()).collect())),
            Answer::Rotating { addrs, per_answer } => write!(
                f,
                "{} ({per_answer} per answer, rotating)",
                join(addrs.iter().map(|a| a.to_string()).collect())
            ),
            Answer::Weighted(w) => f.write_str(&join(
                w.iter().map(|(a, w)| format!("{a} (weight {w})")).collect(),
            )),
            Answer::NoData => f.write_str("NODATA"),
            Answer::ServFail => f.write_str("SERVFAIL"),
        }
    }
}

/// A record's answer and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub answer: Answer,
    /// `degraded_ttl` while degraded (when set), else the record's TTL.
    pub ttl: u32,
    /// Some endpoint is not healthy (unhealthy, drained, not yet checked),
    /// so the answer is not the record's full set.
    pub degraded: bool,
    /// No endpoint is usable: the answer is `when_all_down`'s.
    pub all_down: bool,
}

/// The answer of a record whose endpoints (configuration order) are in the
/// states `states` (same order). `None` while no endpoint has a known state:
/// such a record must not be written at all.
pub fn decide(rules: &Rules<'_>, states: &[State]) -> Option<Decision> {
    let endpoints = rules.endpoints;
    assert_eq!(endpoints.len(), states.len(), "one state per endpoint");
    if states.iter().all(|s| *s == State::Unknown) {
        return None;
    }
    let degraded = states.iter().any(|s| *s != State::Healthy);
    let healthy = |i: usize| states[i] == State::Healthy;
    let chosen = match rules.policy {
        Policy::Failover => failover(rules, states),
        Policy::AllHealthy => {
            let picked = best_first(endpoints, (0..endpoints.len()).filter(|&i| healthy(i)));
            (!picked.is_empty()).then(|| capped(endpoints, picked, rules))
        }
        Policy::Weighted => weighted(endpoints, (0..endpoints.len()).filter(|&i| healthy(i))),
    };
    let ttl = match (degraded, rules.degraded_ttl) {
        (true, Some(short)) => short,
        _ => rules.ttl,
    };
    if let Some(answer) = chosen {
        return Some(Decision {
            answer,
            ttl,
            degraded,
            all_down: false,
        });
    }
    let answer = match rules.when_all_down {
        WhenAllDown::FailOpen => fail_open(rules, states),
        WhenAllDown::Fallback(addrs) => Answer::Addrs(addrs.clone()),
        WhenAllDown::NoData => Answer::NoData,
        WhenAllDown::ServFail => Answer::ServFail,
    };
    Some(Decision {
        answer,
        ttl,
        degraded: true,
        all_down: true,
    })
}

/// The healthy endpoints of the best level that is up; when no level
/// reaches `min_healthy`, those of the best level that has any healthy
/// endpoint (a partial answer beats the all-down answer).
fn failover(rules: &Rules<'_>, states: &[State]) -> Option<Answer> {
    let endpoints = rules.endpoints;
    let mut levels: Vec<u32> = endpoints.iter().map(|e| e.priority).collect();
    levels.sort_unstable();
    levels.dedup();
    let healthy_at = |level: u32| -> Vec<IpAddr> {
        (0..endpoints.len())
            .filter(|&i| endpoints[i].priority == level && states[i] == State::Healthy)
            .map(|i| endpoints[i].address)
            .collect()
    };
    let size = |level: u32| endpoints.iter().filter(|e| e.priority == level).count();
    let up = levels.iter().find(|&&level| {
        let healthy = healthy_at(level).len();
        healthy > 0 && healthy >= rules.min_healthy.required(size(level))
    });
    let level = up.or_else(|| levels.iter().find(|&&level| !healthy_at(level).is_empty()))?;
    Some(Answer::Addrs(healthy_at(*level)))
}

/// `indexes` ordered by priority, then configuration order.
fn best_first(endpoints: &[Endpoint], indexes: impl Iterator<Item = usize>) -> Vec<usize> {
    let mut picked: Vec<usize> = indexes.collect();
    picked.sort_by_key(|&i| (endpoints[i].priority, i));
    picked
}

/// `picked` (best first) within `max_answers`: all of them, in configuration
/// order, when they fit; else a window of `max_answers` rotating over them.
fn capped(endpoints: &[Endpoint], mut picked: Vec<usize>, rules: &Rules<'_>) -> Answer {
    let per_answer = rules.max_answers.max(1);
    if picked.len() <= per_answer {
        picked.sort_unstable();
        return Answer::Addrs(picked.into_iter().map(|i| endpoints[i].address).collect());
    }
    Answer::Rotating {
        addrs: picked.into_iter().map(|i| endpoints[i].address).collect(),
        per_answer,
    }
}

/// Weighted choice among `candidates`: those of weight >= 1; if there are
/// none, the weight-0 ones with equal weights.
fn weighted(endpoints: &[Endpoint], candidates: impl Iterator<Item = usize>) -> Option<Answer> {
    let candidates: Vec<usize> = candidates.collect();
    let weighted: Vec<(IpAddr, u32)> = candidates
        .iter()
        .filter(|&&i| endpoints[i].weight > 0)
        .map(|&i| (endpoints[i].address, endpoints[i].weight))
        .collect();
    if !weighted.is_empty() {
        return Some(Answer::Weighted(weighted));
    }
    let last_resort: Vec<(IpAddr, u32)> = candidates
        .iter()
        .map(|&i| (endpoints[i].address, 1))
        .collect();
    (!last_resort.is_empty()).then_some(Answer::Weighted(last_resort))
}

/// Fail open: what the record would answer if every endpoint that is not
/// drained were healthy, restricted to the best priority level. SERVFAIL
/// when every endpoint is drained (there is nothing the operator allows).
fn fail_open(rules: &Rules<'_>, states: &[State]) -> Answer {
    let endpoints = rules.endpoints;
    let allowed = (0..endpoints.len()).filter(|&i| states[i] != State::Drained);
    if rules.policy == Policy::Weighted {
        return weighted(endpoints, allowed).unwrap_or(Answer::ServFail);
    }
    let allowed = best_first(endpoints, allowed);
    let Some(&best) = allowed.first() else {
        return Answer::ServFail;
    };
    let level = endpoints[best].priority;
    let level: Vec<usize> = allowed
        .into_iter()
        .filter(|&i| endpoints[i].priority == level)
        .collect();
    capped(endpoints, level, rules)
}

#[cfg(test)]
mod tests {
    use super::*;
    use State::{Drained as X, Healthy as H, Unhealthy as D, Unknown as U};
    use std::net::Ipv4Addr;

    fn ep(last: u8, priority: u32) -> Endpoint {
        Endpoint {
            address: Ipv4Addr::new(192, 0, 2, last).into(),
            priority,
            weight: 1,
            check_address: None,
            check_port: None,
        }
    }

    fn wep(last: u8, weight: u32) -> Endpoint {
        Endpoint {
            weight,
            ..ep(last, 1)
        }
    }

    fn ip(last: u8) -> IpAddr {
        Ipv4Addr::new(192, 0, 2, last).into()
    }

    fn addrs(lasts: &[u8]) -> Answer {
        Answer::Addrs(lasts.iter().map(|&l| ip(l)).collect())
    }

    fn by_weight(pairs: &[(u8, u32)]) -> Answer {
        Answer::Weighted(pairs.iter().map(|&(l, w)| (ip(l), w)).collect())
    }

    const FAIL_OPEN: WhenAllDown = WhenAllDown::FailOpen;

    fn rules<'a>(policy: Policy, endpoints: &'a [Endpoint]) -> Rules<'a> {
        Rules {
            policy,
            endpoints,
            min_healthy: MinHealthy::Count(1),
            max_answers: 8,
            when_all_down: &FAIL_OPEN,
            ttl: 30,
            degraded_ttl: None,
        }
    }

    fn answer(rules: &Rules<'_>, states: &[State]) -> Answer {
        decide(rules, states).expect("a known state").answer
    }

    /// Two primaries (1, 2), two backups (3, 4), one last resort (5), listed
    /// out of priority order to show that order is configuration order.
    fn tiers() -> Vec<Endpoint> {
        vec![ep(3, 2), ep(1, 1), ep(5, 3), ep(2, 1), ep(4, 2)]
    }

    #[test]
    fn failover_answers_with_the_best_healthy_level() {
        let e = tiers();
        let r = rules(Policy::Failover, &e);
        assert_eq!(answer(&r, &[H, H, H, H, H]), addrs(&[1, 2]));
        assert_eq!(answer(&r, &[H, D, H, H, H]), addrs(&[2]));
        assert_eq!(answer(&r, &[H, D, H, D, H]), addrs(&[3, 4]));
        assert_eq!(answer(&r, &[D, D, H, D, H]), addrs(&[4]));
        assert_eq!(answer(&r, &[D, D, H, D, D]), addrs(&[5]));
    }

    #[test]
    fn min_healthy_count_and_percent() {
        assert_eq!(MinHealthy::Count(2).required(4), 2);
        assert_eq!(
            MinHealthy::Count(3).required(2),
            2,
            "a small level needs all"
        );
        assert_eq!(MinHealthy::Percent(50).required(4), 2);
        assert_eq!(MinHealthy::Percent(50).required(3), 2, "rounded up");
        assert_eq!(MinHealthy::Percent(1).required(3), 1);
        assert_eq!(MinHealthy::Percent(100).required(3), 3);
        // Three primaries, two backups.
        let e = [ep(1, 1), ep(2, 1), ep(3, 1), ep(4, 2), ep(5, 2)];
        let mut r = rules(Policy::Failover, &e);
        r.min_healthy = MinHealthy::Count(2);
        assert_eq!(answer(&r, &[H, H, D, H, H]), addrs(&[1, 2]));
        // One primary left is not enough: the backups take over.
        assert_eq!(answer(&r, &[H, D, D, H, H]), addrs(&[4, 5]));
        r.min_healthy = MinHealthy::Percent(60);
        assert_eq!(answer(&r, &[H, H, D, H, H]), addrs(&[1, 2]), "2 of 3");
        assert_eq!(answer(&r, &[H, D, D, H, H]), addrs(&[4, 5]));
        // The backups are below the threshold too: the best level that has
        // any healthy endpoint, degraded but not all down.
        let d = decide(&r, &[H, D, D, H, D]).unwrap();
        assert_eq!(d.answer, addrs(&[1]));
        assert!(d.degraded && !d.all_down);
        // A drained endpoint counts against its level.
        r.min_healthy = MinHealthy::Count(2);
        assert_eq!(answer(&r, &[H, X, H, H, H]), addrs(&[1, 3]));
        assert_eq!(answer(&r, &[H, X, D, H, H]), addrs(&[4, 5]));
    }

    #[test]
    fn all_healthy_answers_with_every_healthy_endpoint_up_to_max_answers() {
        let e = tiers();
        let mut r = rules(Policy::AllHealthy, &e);
        assert_eq!(answer(&r, &[H, H, H, H, H]), addrs(&[3, 1, 5, 2, 4]));
        assert_eq!(answer(&r, &[H, D, D, H, D]), addrs(&[3, 2]));
        // More healthy than max_answers: every one of them, best first, in
        // a window of max_answers that rotates per query (the surplus ones
        // get traffic too).
        let rotating = |lasts: &[u8], per_answer| Answer::Rotating {
            addrs: lasts.iter().map(|&l| ip(l)).collect(),
            per_answer,
        };
        r.max_answers = 3;
        assert_eq!(answer(&r, &[H, H, H, H, H]), rotating(&[1, 2, 3, 4, 5], 3));
        assert_eq!(answer(&r, &[H, D, H, H, H]), rotating(&[2, 3, 4, 5], 3));
        assert_eq!(answer(&r, &[H, D, D, H, H]), addrs(&[3, 2, 4]), "fits");
        r.max_answers = 1;
        assert_eq!(answer(&r, &[H, H, H, H, H]), rotating(&[1, 2, 3, 4, 5], 1));
        // Cap does not make the record degraded.
        assert!(!decide(&r, &[H, H, H, H, H]).unwrap().degraded);
        let many: Vec<Endpoint> = (1..=16).map(|i| ep(i, 1)).collect();
        let r = rules(Policy::AllHealthy, &many);
        let Answer::Rotating { addrs, per_answer } = answer(&r, &[H; 16]) else {
            panic!()
        };
        assert_eq!(
            (addrs.len(), per_answer),
            (16, 8),
            "default cap, like Route 53 multivalue"
        );
    }

    #[test]
    fn weighted_by_weight_with_zero_as_last_resort() {
        let e = [wep(1, 3), wep(2, 1), wep(3, 0), wep(4, 0)];
        let r = rules(Policy::Weighted, &e);
        assert_eq!(answer(&r, &[H, H, H, H]), by_weight(&[(1, 3), (2, 1)]));
        assert_eq!(answer(&r, &[D, H, H, H]), by_weight(&[(2, 1)]));
        // Only weight-0 endpoints left: equal weights among them.
        let d = decide(&r, &[D, D, H, H]).unwrap();
        assert_eq!(d.answer, by_weight(&[(3, 1), (4, 1)]));
        assert!(d.degraded && !d.all_down);
        assert_eq!(answer(&r, &[D, X, D, H]), by_weight(&[(4, 1)]));
        // All down, fail open: every endpoint of weight >= 1 not drained.
        let d = decide(&r, &[D, D, D, D]).unwrap();
        assert_eq!(d.answer, by_weight(&[(1, 3), (2, 1)]));
        assert!(d.all_down);
        assert_eq!(answer(&r, &[X, D, D, D]), by_weight(&[(2, 1)]));
        assert_eq!(answer(&r, &[X, X, D, D]), by_weight(&[(3, 1), (4, 1)]));
    }

    #[test]
    fn fail_open_is_the_best_level_without_drained_endpoints() {
        let e = tiers();
        let r = rules(Policy::Failover, &e);
        let d = decide(&r, &[D, D, D, D, D]).unwrap();
        assert_eq!(d.answer, addrs(&[1, 2]));
        assert!(d.all_down && d.degraded);
        assert_eq!(answer(&r, &[D, D, D, X, D]), addrs(&[1]));
        assert_eq!(answer(&r, &[D, X, D, X, D]), addrs(&[3, 4]), "next level");
        assert_eq!(answer(&r, &[X, X, X, X, X]), Answer::ServFail);
        let r = rules(Policy::AllHealthy, &e);
        assert_eq!(answer(&r, &[D, D, D, D, D]), addrs(&[1, 2]));
    }

    #[test]
    fn when_all_down_modes() {
        let e = tiers();
        let all_down = [D, D, D, D, D];
        let fallback = WhenAllDown::Fallback(vec![ip(99)]);
        for (mode, expected) in [
            (&fallback, addrs(&[99])),
            (&WhenAllDown::NoData, Answer::NoData),
            (&WhenAllDown::ServFail, Answer::ServFail),
        ] {
            for policy in [Policy::Failover, Policy::AllHealthy, Policy::Weighted] {
                let r = Rules {
                    when_all_down: mode,
                    ..rules(policy, &e)
                };
                let d = decide(&r, &all_down).unwrap();
                assert_eq!(d.answer, expected, "{policy} {mode}");
                assert!(d.all_down);
                // Any healthy endpoint: the policy answers, not the mode.
                assert_ne!(answer(&r, &[D, D, D, D, H]), expected, "{policy} {mode}");
            }
        }
    }

    #[test]
    fn degraded_ttl_while_anything_is_not_healthy() {
        let e = tiers();
        let mut r = rules(Policy::Failover, &e);
        r.degraded_ttl = Some(5);
        let full = decide(&r, &[H, H, H, H, H]).unwrap();
        assert_eq!((full.ttl, full.degraded), (30, false));
        // A backup down: the answer is the same, but the record is degraded.
        let d = decide(&r, &[D, H, H, H, H]).unwrap();
        assert_eq!((d.answer, d.ttl, d.degraded), (addrs(&[1, 2]), 5, true));
        assert_eq!(decide(&r, &[H, H, H, X, H]).unwrap().ttl, 5, "drained");
        assert_eq!(decide(&r, &[H, H, U, H, H]).unwrap().ttl, 5, "unknown");
        assert_eq!(decide(&r, &[D, D, D, D, D]).unwrap().ttl, 5, "fail open");
        r.degraded_ttl = None;
        assert_eq!(decide(&r, &[D, H, H, H, H]).unwrap().ttl, 30);
    }

    #[test]
    fn drained_endpoints_leave_the_answer() {
        let e = tiers();
        let r = rules(Policy::Failover, &e);
        assert_eq!(answer(&r, &[H, X, H, H, H]), addrs(&[2]));
        assert_eq!(answer(&r, &[H, X, H, X, H]), addrs(&[3, 4]));
        let r = rules(Policy::AllHealthy, &e);
        assert_eq!(answer(&r, &[X, H, X, H, X]), addrs(&[1, 2]));
    }

    #[test]
    fn unknown_is_not_healthy_and_all_unknown_is_not_written() {
        let e = tiers();
        let r = rules(Policy::Failover, &e);
        assert_eq!(decide(&r, &[U, U, U, U, U]), None);
        assert_eq!(decide(&rules(Policy::AllHealthy, &e), &[U; 5]), None);
        assert_eq!(answer(&r, &[H, U, U, U, U]), addrs(&[3]));
        assert_eq!(answer(&r, &[D, U, U, U, U]), addrs(&[1, 2]));
    }

    #[test]
    fn single_endpoint() {
        let e = [ep(7, 1)];
        let r = rules(Policy::Failover, &e);
        assert_eq!(answer(&r, &[H]), addrs(&[7]));
        assert_eq!(answer(&r, &[D]), addrs(&[7]));
        assert_eq!(answer(&r, &[X]), Answer::ServFail);
    }
}
