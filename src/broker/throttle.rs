//! Slows down password guessing: after a few failed auths from one address or for one
//! ident within a minute, each further failure is answered later (up to a cap). Successful
//! auths are never delayed, so a real user still gets in while their ident is under attack.
//! The counting is [`crate::limiter::Limiter`]'s, so a spray of unknown idents or addresses
//! cannot wipe the counter of one under attack.

use std::net::IpAddr;
use std::time::Duration;

use crate::limiter::Limiter;
use crate::wire::Ident;

/// Failed auths per address and per ident per [`WINDOW`] answered at once (default of the
/// `auth_free_failures` config key); past them one per `WINDOW / free` is.
pub const FREE_FAILURES: u32 = crate::config::DEFAULT_AUTH_FREE_FAILURES;
/// The period the free failures are refilled over.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Longest delay before a failure is answered (the connection is then closed).
pub const MAX_DELAY: Duration = crate::config::limits::MAX_AUTH_DELAY;

/// Failed-auth limiters by address and by ident.
#[derive(Debug)]
pub struct AuthThrottle {
    by_address: Limiter<IpAddr>,
    by_ident: Limiter<Ident>,
}

impl AuthThrottle {
    /// A throttle answering `free` failures per address and per ident per minute at once.
    pub fn new(free: u32) -> Self {
        Self {
            by_address: Limiter::new(free, WINDOW),
            by_ident: Limiter::new(free, WINDOW),
        }
    }

    /// Records a failed auth and returns how long to wait before answering it.
    pub fn failed(&self, ip: IpAddr, ident: &Ident) -> Duration {
        let a = self.by_address.check(&ip).err().unwrap_or_default();
        let i = self.by_ident.check(ident).err().unwrap_or_default();
        a.max(i).min(MAX_DELAY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_past_the_free_ones_are_delayed_per_address_and_per_ident() {
        let t = AuthThrottle::new(FREE_FAILURES);
        let ip: IpAddr = [10, 0, 0, 1].into();
        let id = Ident::new("k").unwrap();
        for _ in 0..FREE_FAILURES {
            assert_eq!(t.failed(ip, &id), Duration::ZERO);
        }
        assert!(t.failed(ip, &id) > Duration::ZERO);
        // Another address guessing the same ident is slowed too, and so is another ident
        // from the same address; an unrelated pair is not.
        assert!(t.failed([10, 0, 0, 2].into(), &id) > Duration::ZERO);
        assert!(t.failed(ip, &Ident::new("other").unwrap()) > Duration::ZERO);
        assert_eq!(
            t.failed([10, 0, 0, 3].into(), &Ident::new("k3").unwrap()),
            Duration::ZERO
        );
        for _ in 0..100 {
            assert!(t.failed(ip, &id) <= MAX_DELAY);
        }
    }
}
