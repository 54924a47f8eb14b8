//! Response rate limiting for the UDP answers of the userspace server: the
//! same generic cell rate algorithm as the kernel's (`RateLimit` in
//! failover-common), with one state per source prefix for the process (no
//! division among CPUs: one table behind a lock, held for a lookup).
//!
//! The kernel and this server limit separately: a source gets its rate from
//! each (what the kernel answers, and what it passes up).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

use crate::config::RateLimitSettings;

/// Most source prefixes tracked at once; beyond, prefixes whose allowance
/// is full again (as good as new) are forgotten first.
const MAX_SOURCES: usize = 65_536;

/// What becomes of one UDP answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Answer,
    /// Over the rate, answered anyway (log-only mode).
    AnswerOverLimit,
    /// Send it truncated: TC=1, the question and OPT only.
    Slip,
    Drop,
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    /// Theoretical arrival time of the next answer, ns since `start`.
    tat: u64,
    limited: u32,
}

/// One source prefix's answers per second, for the whole server.
pub struct RateLimiter {
    settings: RateLimitSettings,
    interval_ns: u64,
    burst_ns: u64,
    start: Instant,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

impl RateLimiter {
    pub fn new(settings: RateLimitSettings) -> RateLimiter {
        let (interval_ns, burst_ns) = settings.schedule();
        RateLimiter {
            settings,
            interval_ns,
            burst_ns,
            start: Instant::now(),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// The verdict on an answer to `source` now.
    pub fn check(&self, source: IpAddr) -> Verdict {
        let now = self.start.elapsed().as_nanos().min(u128::from(u64::MAX)) as u64;
        self.check_at(source, now)
    }

    /// The verdict on an answer to `source` at `now` (ns since the limiter
    /// started).
    pub fn check_at(&self, source: IpAddr, now: u64) -> Verdict {
        let prefix = self.settings.prefix_of(source);
        let limited = {
            let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
            if buckets.len() >= MAX_SOURCES && !buckets.contains_key(&prefix) {
                buckets.retain(|_, b| b.tat > now);
                if buckets.len() >= MAX_SOURCES {
                    // Every one is still saving up: forget any one of them.
                    if let Some(any) = buckets.keys().next().copied() {
                        buckets.remove(&any);
                    }
                }
            }
            let bucket = buckets.entry(prefix).or_insert(Bucket {
                tat: now,
                limited: 0,
            });
            let tat = bucket.tat.max(now);
            if tat <= now + self.burst_ns {
                bucket.tat = tat + self.interval_ns;
                return Verdict::Answer;
            }
            if self.settings.is_exempt(source) {
                return Verdict::Answer;
            }
            if !self.settings.log_only {
                bucket.limited = bucket.limited.wrapping_add(1);
            }
            bucket.limited
        };
        if self.settings.log_only {
            return Verdict::AnswerOverLimit;
        }
        let slip = self.settings.slip;
        if slip != 0 && limited % slip == 0 {
            Verdict::Slip
        } else {
            Verdict::Drop
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn settings(rate: u32, window: Duration, slip: u32, log_only: bool) -> RateLimitSettings {
        RateLimitSettings {
            responses_per_second: rate,
            ipv4_prefix: 24,
            ipv6_prefix: 56,
            slip,
            window,
            exempt: vec![("192.0.2.0".parse().unwrap(), 28)],
            log_only,
        }
    }

    const S: u64 = 1_000_000_000;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_burst_of_one_window_then_the_rate() {
        let limiter = RateLimiter::new(settings(10, Duration::from_secs(2), 2, false));
        let src = ip("198.51.100.7");
        // 20 at once (10 a second, a 2 s window), then every second one
        // limited answer slips.
        for i in 0..20 {
            assert_eq!(limiter.check_at(src, 0), Verdict::Answer, "#{i}");
        }
        let over: Vec<_> = (0..4).map(|_| limiter.check_at(src, 0)).collect();
        assert_eq!(
            over,
            [Verdict::Drop, Verdict::Slip, Verdict::Drop, Verdict::Slip]
        );
        // The same /24 shares it; another does not.
        assert_eq!(limiter.check_at(ip("198.51.100.200"), 0), Verdict::Drop);
        assert_eq!(limiter.check_at(ip("198.51.101.7"), 0), Verdict::Answer);
        // 100 ms later one more answer is due, and only one.
        assert_eq!(limiter.check_at(src, S / 10), Verdict::Answer);
        assert_eq!(limiter.check_at(src, S / 10), Verdict::Slip);
    }

    #[test]
    fn a_sustained_flood_gets_the_rate() {
        let limiter = RateLimiter::new(settings(100, Duration::from_secs(1), 0, false));
        let src = ip("2001:db8:1:2::3");
        // 10 s of 1000 queries a second, spread evenly.
        let answered = (0..10_000u64)
            .filter(|i| limiter.check_at(src, i * S / 1000) == Verdict::Answer)
            .count();
        // The first second's burst (100) and 100 a second after it.
        assert!((1090..=1110).contains(&answered), "{answered}");
    }

    #[test]
    fn exempt_sources_and_log_only_are_answered() {
        let limiter = RateLimiter::new(settings(1, Duration::from_secs(1), 2, false));
        for _ in 0..10 {
            assert_eq!(limiter.check_at(ip("192.0.2.15"), 0), Verdict::Answer);
        }
        // Outside the /28, the same /24, whose allowance the exempt
        // address spent: limited.
        assert_eq!(limiter.check_at(ip("192.0.2.16"), 0), Verdict::Drop);
        assert_eq!(limiter.check_at(ip("192.0.2.16"), 0), Verdict::Slip);

        let logging = RateLimiter::new(settings(1, Duration::from_secs(1), 2, true));
        let verdicts: Vec<_> = (0..4)
            .map(|_| logging.check_at(ip("198.51.100.1"), 0))
            .collect();
        assert_eq!(
            verdicts,
            [
                Verdict::Answer,
                Verdict::AnswerOverLimit,
                Verdict::AnswerOverLimit,
                Verdict::AnswerOverLimit
            ]
        );
    }

    #[test]
    fn the_table_stays_bounded() {
        let limiter = RateLimiter::new(settings(1, Duration::from_secs(1), 2, false));
        for i in 0..(MAX_SOURCES as u32 + 100) {
            let a = std::net::Ipv4Addr::from(0x0a00_0000 + (i << 8));
            limiter.check_at(IpAddr::V4(a), u64::from(i));
        }
        assert!(limiter.buckets.lock().unwrap().len() <= MAX_SOURCES);
    }
}
