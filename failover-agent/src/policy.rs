//! Which endpoints a record answers with, given their health: pure functions,
//! no I/O, so every rule is unit-tested here.

use std::fmt;
use std::net::IpAddr;

use crate::config::Endpoint;
use crate::health::Health;

/// How a record's answer set is chosen from its healthy endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// The healthy endpoints of the best (lowest number) priority level that
    /// has any healthy endpoint: backups answer only while every endpoint of
    /// every better level is down.
    Failover,
    /// Every healthy endpoint, whatever its priority.
    AllHealthy,
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Policy::Failover => "failover",
            Policy::AllHealthy => "all-healthy",
        })
    }
}

/// A record's answer set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// In configuration order (the kernel rotates the set). Never empty.
    pub addrs: Vec<IpAddr>,
    /// No endpoint is healthy: `addrs` is the best priority level regardless of
    /// health. Answering with something is better than answering with nothing
    /// (a resolver would cache NXDOMAIN/NODATA), as Route 53 does.
    pub fail_open: bool,
}

/// The answer set of a record whose endpoints (configuration order) have the
/// health states `health` (same order). `None` while no endpoint has a known
/// state: such a record must not be written at all.
///
/// An endpoint still `Unknown` counts as not healthy.
pub fn decide(policy: Policy, endpoints: &[Endpoint], health: &[Health]) -> Option<Decision> {
    assert_eq!(
        endpoints.len(),
        health.len(),
        "one health state per endpoint"
    );
    if health.iter().all(|h| *h == Health::Unknown) {
        return None;
    }
    let healthy = |i: usize| health[i] == Health::Healthy;
    let chosen: Vec<IpAddr> = match policy {
        Policy::Failover => {
            match (0..endpoints.len())
                .filter(|&i| healthy(i))
                .map(|i| endpoints[i].priority)
                .min()
            {
                Some(level) => (0..endpoints.len())
                    .filter(|&i| healthy(i) && endpoints[i].priority == level)
                    .map(|i| endpoints[i].address)
                    .collect(),
                None => Vec::new(),
            }
        }
        Policy::AllHealthy => (0..endpoints.len())
            .filter(|&i| healthy(i))
            .map(|i| endpoints[i].address)
            .collect(),
    };
    if !chosen.is_empty() {
        return Some(Decision {
            addrs: chosen,
            fail_open: false,
        });
    }
    let best = endpoints.iter().map(|e| e.priority).min()?;
    Some(Decision {
        addrs: endpoints
            .iter()
            .filter(|e| e.priority == best)
            .map(|e| e.address)
            .collect(),
        fail_open: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use Health::{Healthy as H, Unhealthy as D, Unknown as U};
    use std::net::Ipv4Addr;

    fn ep(last: u8, priority: u32) -> Endpoint {
        Endpoint {
            address: Ipv4Addr::new(192, 0, 2, last).into(),
            priority,
        }
    }

    fn addrs(lasts: &[u8]) -> Vec<IpAddr> {
        lasts
            .iter()
            .map(|&l| Ipv4Addr::new(192, 0, 2, l).into())
            .collect()
    }

    fn ok(lasts: &[u8]) -> Option<Decision> {
        Some(Decision {
            addrs: addrs(lasts),
            fail_open: false,
        })
    }

    fn open(lasts: &[u8]) -> Option<Decision> {
        Some(Decision {
            addrs: addrs(lasts),
            fail_open: true,
        })
    }

    /// Two primaries (1, 2), two backups (3, 4), one last resort (5), listed
    /// out of priority order to show that order is configuration order.
    fn tiers() -> Vec<Endpoint> {
        vec![ep(3, 2), ep(1, 1), ep(5, 3), ep(2, 1), ep(4, 2)]
    }

    #[test]
    fn failover_answers_with_the_best_healthy_level() {
        let e = tiers();
        assert_eq!(decide(Policy::Failover, &e, &[H, H, H, H, H]), ok(&[1, 2]));
        assert_eq!(decide(Policy::Failover, &e, &[H, D, H, H, H]), ok(&[2]));
        assert_eq!(decide(Policy::Failover, &e, &[H, D, H, D, H]), ok(&[3, 4]));
        assert_eq!(decide(Policy::Failover, &e, &[D, D, H, D, H]), ok(&[4]));
        assert_eq!(decide(Policy::Failover, &e, &[D, D, H, D, D]), ok(&[5]));
    }

    #[test]
    fn failover_fails_open_to_the_best_level() {
        let e = tiers();
        assert_eq!(
            decide(Policy::Failover, &e, &[D, D, D, D, D]),
            open(&[1, 2])
        );
    }

    #[test]
    fn all_healthy_answers_with_every_healthy_endpoint() {
        let e = tiers();
        assert_eq!(
            decide(Policy::AllHealthy, &e, &[H, H, H, H, H]),
            ok(&[3, 1, 5, 2, 4])
        );
        assert_eq!(
            decide(Policy::AllHealthy, &e, &[H, D, D, H, D]),
            ok(&[3, 2])
        );
        assert_eq!(
            decide(Policy::AllHealthy, &e, &[D, D, D, D, D]),
            open(&[1, 2])
        );
    }

    #[test]
    fn unknown_is_not_healthy_and_all_unknown_is_not_written() {
        let e = tiers();
        assert_eq!(decide(Policy::Failover, &e, &[U, U, U, U, U]), None);
        assert_eq!(decide(Policy::AllHealthy, &e, &[U, U, U, U, U]), None);
        assert_eq!(decide(Policy::Failover, &e, &[H, U, U, U, U]), ok(&[3]));
        assert_eq!(
            decide(Policy::Failover, &e, &[D, U, U, U, U]),
            open(&[1, 2])
        );
    }

    #[test]
    fn single_endpoint() {
        let e = [ep(7, 1)];
        assert_eq!(decide(Policy::Failover, &e, &[H]), ok(&[7]));
        assert_eq!(decide(Policy::Failover, &e, &[D]), open(&[7]));
    }
}
