//! Slows down password guessing: after a few failed auths from one address or for one
//! ident, each further failure is answered later and later (up to a cap). Successful auths
//! are never delayed, so a real user still gets in while their ident is under attack.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::wire::Ident;

/// Failures within a window that are answered at once (default of `auth_free_failures`).
pub const FREE_FAILURES: u32 = 5;
/// How long failures are remembered.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Added delay per failure beyond the free ones.
pub const STEP: Duration = Duration::from_millis(200);
/// Longest delay before a failure is answered.
pub const MAX_DELAY: Duration = Duration::from_secs(5);
/// Entries kept before old ones are purged (bounds memory under an address spray).
pub const MAX_ENTRIES: usize = 100_000;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Address(IpAddr),
    Ident(Ident),
}

/// Failed-auth counters by address and by ident.
#[derive(Debug)]
pub struct AuthThrottle {
    free: u32,
    failures: Mutex<HashMap<Key, (u32, Instant)>>,
}

impl AuthThrottle {
    /// A throttle answering `free` failures per window at once.
    pub fn new(free: u32) -> Self {
        Self {
            free,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Records a failed auth and returns how long to wait before answering it.
    pub fn failed(&self, ip: IpAddr, ident: &Ident) -> Duration {
        self.failed_at(ip, ident, Instant::now())
    }

    fn failed_at(&self, ip: IpAddr, ident: &Ident, now: Instant) -> Duration {
        let mut map = self.failures.lock();
        if map.len() >= MAX_ENTRIES {
            map.retain(|_, (_, since)| now.duration_since(*since) < WINDOW);
            if map.len() >= MAX_ENTRIES {
                map.clear();
            }
        }
        let mut worst = 0;
        for key in [Key::Address(ip), Key::Ident(ident.clone())] {
            let entry = map.entry(key).or_insert((0, now));
            if now.duration_since(entry.1) >= WINDOW {
                *entry = (0, now);
            }
            entry.0 = entry.0.saturating_add(1);
            worst = worst.max(entry.0);
        }
        STEP.saturating_mul(worst.saturating_sub(self.free))
            .min(MAX_DELAY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_per_address_and_per_ident_then_expire() {
        let t = AuthThrottle::new(FREE_FAILURES);
        let now = Instant::now();
        let ip: IpAddr = [10, 0, 0, 1].into();
        let id = Ident::new("k").unwrap();
        for _ in 0..FREE_FAILURES {
            assert_eq!(t.failed_at(ip, &id, now), Duration::ZERO);
        }
        assert_eq!(t.failed_at(ip, &id, now), STEP);
        // Another address guessing the same ident is slowed too.
        assert_eq!(t.failed_at([10, 0, 0, 2].into(), &id, now), STEP * 2);
        for _ in 0..100 {
            t.failed_at(ip, &id, now);
        }
        assert_eq!(t.failed_at(ip, &id, now), MAX_DELAY);
        assert_eq!(t.failed_at(ip, &id, now + WINDOW), Duration::ZERO);
    }
}
