//! Which addresses a query gets in userspace, the way the kernel picks
//! them: weighted picks at random per query.

use std::net::IpAddr;

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
