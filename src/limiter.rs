//! One keyed rate limiter (GCRA, from `governor`) for everything the server must not let a
//! client do too often: failed hpfeeds auths per ident and per address, website logins per
//! (account, address) and per address, reset requests, and mail per recipient, per sender
//! and per requesting address.
//!
//! A quota is a burst of `burst` events, refilled evenly over `period`: past the burst a key
//! gets one event per `period / burst`, so repeated attempts are slowed, never locked out for
//! good, and a key one client does not share is never touched by that client. Memory is kept
//! by dropping only keys whose bucket is full again (`retain_recent`): spraying new keys
//! cannot reset a key that is being limited, unlike clearing a whole map when it fills.

use std::hash::Hash;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// Keys held before the limiter sweeps those whose bucket is full again.
pub use crate::config::limits::LIMITER_SWEEP_AT as SWEEP_AT;

/// Least time between two sweeps, so that a table full of live keys is not rescanned at
/// every event.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// A keyed limiter; see the module doc.
#[derive(Debug)]
pub struct Limiter<K: Hash + Eq + Clone> {
    inner: DefaultKeyedRateLimiter<K>,
    clock: DefaultClock,
    last_sweep: parking_lot::Mutex<std::time::Instant>,
}

impl<K: Hash + Eq + Clone> Limiter<K> {
    /// `burst` events per `period` per key (a zero burst counts as one; a zero period as
    /// one second).
    pub fn new(burst: u32, period: Duration) -> Self {
        let burst = NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN);
        let period = if period.is_zero() {
            Duration::from_secs(1)
        } else {
            period
        };
        // One cell every period / burst, at most `burst` at once.
        let cell = (period / burst.get()).max(Duration::from_nanos(1));
        let quota = Quota::with_period(cell)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(burst);
        Self {
            inner: RateLimiter::keyed(quota),
            clock: DefaultClock::default(),
            last_sweep: parking_lot::Mutex::new(std::time::Instant::now()),
        }
    }

    /// Counts one event for `key`: `Ok` when within the quota, else how long until the key
    /// may act again (the event is then not counted).
    pub fn check(&self, key: &K) -> Result<(), Duration> {
        if self.inner.len() >= SWEEP_AT {
            let mut last = self.last_sweep.lock();
            if last.elapsed() >= SWEEP_EVERY {
                *last = std::time::Instant::now();
                drop(last);
                self.inner.retain_recent();
                self.inner.shrink_to_fit();
            }
        }
        self.inner
            .check_key(key)
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// Keys held now (for tests and metrics).
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_one_per_cell_per_key() {
        let l = Limiter::new(3, Duration::from_secs(60));
        for _ in 0..3 {
            assert!(l.check(&"a").is_ok());
        }
        let wait = l.check(&"a").unwrap_err();
        assert!(
            wait > Duration::from_secs(15) && wait <= Duration::from_secs(20),
            "{wait:?}"
        );
        assert!(l.check(&"b").is_ok(), "another key is untouched");
    }

    #[test]
    fn spraying_new_keys_does_not_reset_a_limited_one() {
        let l = Limiter::new(2, Duration::from_secs(3600));
        l.check(&0u64).unwrap();
        l.check(&0u64).unwrap();
        assert!(l.check(&0u64).is_err());
        for k in 1..=(SWEEP_AT as u64 + 10) {
            let _ = l.check(&k);
        }
        assert!(l.check(&0u64).is_err(), "the sweep forgot a limited key");
    }
}
