//! A running server's "alive, at this version" record in `acl_applied`, written from a
//! thread of its own: the CLI waits only for servers seen lately, so a record written by
//! the graph actor would go stale exactly while the actor is busy applying a large change,
//! and the CLI would take the server for dead and answer "live" before it is.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::store::Store;

/// See the module doc. Stopped (and its thread joined) when dropped, so that nothing
/// writes the record again after the server has cleared it.
#[derive(Debug)]
pub struct Heartbeat {
    applied: Arc<AtomicI64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Heartbeat {
    /// Starts recording `node` as alive at `version`, every `every`.
    pub fn start(store: Store, node: String, version: i64, every: Duration) -> Heartbeat {
        let applied = Arc::new(AtomicI64::new(version));
        let stop = Arc::new(AtomicBool::new(false));
        let (a, s) = (Arc::clone(&applied), Arc::clone(&stop));
        let thread = std::thread::Builder::new()
            .name("acl-heartbeat".into())
            .spawn(move || {
                while !s.load(Ordering::Acquire) {
                    if let Err(e) = store.record_applied(&node, a.load(Ordering::Acquire)) {
                        tracing::debug!("cannot record that this server is alive: {e}");
                    }
                    std::thread::park_timeout(every);
                }
            })
            .map_err(|e| tracing::error!("cannot start the ACL heartbeat: {e}"))
            .ok();
        Heartbeat {
            applied,
            stop,
            thread,
        }
    }

    /// The version the broker has applied (never called before the broker took it).
    pub fn applied(&self) -> Arc<AtomicI64> {
        Arc::clone(&self.applied)
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::models::applied::Live;
    use crate::store::scratch::ScratchDb;

    /// The record stays fresh with nobody else writing it (an actor busy applying), holds
    /// the version it was given until told otherwise, and is not written again once the
    /// heartbeat is dropped and the record cleared.
    #[test]
    fn keeps_a_busy_server_alive_at_the_version_it_applied() {
        let db = ScratchDb::new().unwrap();
        let store = Store::open(db.url()).unwrap();
        let start = store.acl_version().unwrap();
        let beat = Heartbeat::start(store.clone(), "n1".into(), start, Duration::from_millis(20));
        store.add_user("a", "a@x.org", "t").unwrap();
        let version = store.acl_version().unwrap();
        assert!(version > start, "adding a user is a graph change");
        // Longer than the record would stay fresh were nobody writing it is 10 s; a few
        // beats show it is written, and the wait names the node behind.
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(
            store.wait_applied(Duration::from_millis(50)).unwrap(),
            Live::Pending {
                version,
                behind: 1,
                nodes: vec!["n1".into()],
                applied: vec![],
            }
        );
        beat.applied().store(version, Ordering::Release);
        assert_eq!(
            store.wait_applied(Duration::from_secs(5)).unwrap(),
            Live::Applied {
                nodes: vec!["n1".into()]
            }
        );
        drop(beat);
        store.forget_applied("n1").unwrap();
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(
            store.wait_applied(Duration::ZERO).unwrap(),
            Live::Applied { nodes: vec![] }
        );
    }
}
