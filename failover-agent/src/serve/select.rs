//! Which addresses a query gets in userspace, the way the kernel picks
//! them: a window rotating per query over an answer set, or one address
//! picked at random by weight.

use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};

/// `per_answer` of `addrs` (all of them when it is 0 or more than there
/// are), starting at an offset that moves on with every call, wrapping: over
/// successive queries every address is answered, in turn first.
pub fn window(addrs: &[IpAddr], per_answer: usize) -> Vec<IpAddr> {
    static ROTATION: AtomicUsize = AtomicUsize::new(0);
    if addrs.is_empty() {
        return Vec::new();
    }
    let start = ROTATION.fetch_add(1, Ordering::Relaxed) % addrs.len();
    window_at(addrs, per_answer, start)
}

/// The window of [`window`] starting at `start`.
fn window_at(addrs: &[IpAddr], per_answer: usize, start: usize) -> Vec<IpAddr> {
    let n = addrs.len();
    let take = if per_answer == 0 {
        n
    } else {
        per_answer.min(n)
    };
    (0..take).map(|i| addrs[(start + i) % n]).collect()
}

/// Picks one of `choices` at random in proportion to the weights (every
/// weight >= 1; at least one choice), with `r` a uniformly random number.
pub fn weighted_pick(choices: &[(IpAddr, u32)], r: u64) -> IpAddr {
    let total: u64 = choices.iter().map(|(_, w)| u64::from(*w)).sum();
    let mut point = r % total.max(1);
    for (addr, weight) in choices {
        if point < u64::from(*weight) {
            return *addr;
        }
        point -= u64::from(*weight);
    }
    choices[choices.len() - 1].0
}

/// A random number for [`weighted_pick`]: std's per-process random SipHash
/// keys over a counter (no extra dependency; not for cryptography).
pub fn random_u64() -> u64 {
    use std::hash::BuildHasher as _;
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    thread_local! {
        static KEYS: std::collections::hash_map::RandomState =
            std::collections::hash_map::RandomState::new();
    }
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    KEYS.with(|keys| keys.hash_one(n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn windows_rotate_over_every_address() {
        let addrs: Vec<IpAddr> = (1..=4)
            .map(|i| Ipv4Addr::new(192, 0, 2, i).into())
            .collect();
        let ip = |i: u8| IpAddr::from(Ipv4Addr::new(192, 0, 2, i));
        assert_eq!(window_at(&addrs, 2, 0), [ip(1), ip(2)]);
        assert_eq!(window_at(&addrs, 2, 3), [ip(4), ip(1)], "wraps");
        assert_eq!(window_at(&addrs, 0, 1), [ip(2), ip(3), ip(4), ip(1)]);
        assert_eq!(window_at(&addrs, 9, 2).len(), 4);
        // Successive calls: every address is answered, and first in turn
        // (other tests move the shared rotation too: call more than 4 times).
        let mut seen = std::collections::BTreeSet::new();
        let mut firsts = std::collections::BTreeSet::new();
        for _ in 0..40 {
            let w = window(&addrs, 2);
            assert_eq!(w.len(), 2);
            firsts.insert(w[0]);
            seen.extend(w);
        }
        assert_eq!(seen.len(), 4);
        assert_eq!(firsts.len(), 4);
    }

    #[test]
    fn weighted_pick_follows_the_weights() {
        let a: IpAddr = Ipv4Addr::new(192, 0, 2, 1).into();
        let b: IpAddr = Ipv4Addr::new(192, 0, 2, 2).into();
        let choices = [(a, 1), (b, 3)];
        // Deterministic in r: [0, 1) -> a, [1, 4) -> b, modulo the total.
        let picks: Vec<IpAddr> = (0..8).map(|r| weighted_pick(&choices, r)).collect();
        assert_eq!(picks, [a, b, b, b, a, b, b, b]);
        // With real random numbers the split is near 1:3.
        let n = 40_000;
        let hits = (0..n)
            .filter(|_| weighted_pick(&choices, random_u64()) == a)
            .count();
        assert!((9_000..11_000).contains(&hits), "{hits} of {n}");
    }
}
