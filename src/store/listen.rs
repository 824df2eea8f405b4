//! Wake-ups when the change log grows, on PostgreSQL: `LISTEN hpfriends_graph` on a
//! connection of its own (the log's trigger sends `NOTIFY hpfriends_graph` at each commit
//! that logs a change), so a server reads the log when another process wrote to it, not on
//! a timer. SQLite has no notifications: servers on it poll every `acl_poll_ms`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use diesel::pg::PgConnection;
use diesel::prelude::*;

use super::{Backend, Store, with_connect_timeout};

/// The channel the change-log trigger notifies (migrations/postgres, graph_changes).
const CHANNEL: &str = "hpfriends_graph";

/// How often the listening connection's socket is read for notifications (a read of what
/// has arrived, not a query).
const READ_EVERY: Duration = Duration::from_millis(5);

/// The longest wait between attempts to listen again after the server went away.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// A running listener; dropping it stops the thread within [`READ_EVERY`].
#[derive(Debug)]
pub struct ChangeListener {
    stop: Arc<AtomicBool>,
}

impl Drop for ChangeListener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl Store {
    /// Calls `wake` whenever a change is committed to the log (by any process), and once
    /// each time listening (re)starts, since changes made meanwhile sent nobody a notice.
    /// `None` on SQLite.
    pub fn listen_changes(&self, wake: impl Fn() + Send + 'static) -> Option<ChangeListener> {
        if self.backend != Backend::Postgres {
            return None;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let url = with_connect_timeout(&self.url);
        let stopped = Arc::clone(&stop);
        let spawned = std::thread::Builder::new()
            .name("hpf-listen".into())
            .spawn(move || listen(&url, &stopped, &wake));
        if let Err(e) = spawned {
            tracing::warn!("cannot start the change listener, polling instead: {e}");
            return None;
        }
        Some(ChangeListener { stop })
    }
}

fn listen(url: &str, stop: &AtomicBool, wake: &dyn Fn()) {
    let mut backoff = Duration::from_millis(100);
    let mut failing = false;
    while !stop.load(Ordering::Relaxed) {
        let listening = PgConnection::establish(url)
            .map_err(|e| e.to_string())
            .and_then(|mut c| {
                diesel::sql_query(format!("LISTEN {CHANNEL}"))
                    .execute(&mut c)
                    .map(|_| c)
                    .map_err(|e| e.to_string())
            });
        let mut conn = match listening {
            Ok(c) => c,
            Err(e) => {
                if !failing {
                    tracing::warn!("cannot listen for graph changes (retrying): {}", e.trim());
                }
                failing = true;
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        if std::mem::take(&mut failing) {
            tracing::info!("listening for graph changes again");
        } else {
            tracing::info!("listening for graph changes (PostgreSQL NOTIFY {CHANNEL})");
        }
        backoff = Duration::from_millis(100);
        wake();
        'read: while !stop.load(Ordering::Relaxed) {
            let mut changed = false;
            for n in conn.notifications_iter() {
                match n {
                    Ok(_) => changed = true,
                    Err(e) => {
                        tracing::warn!("lost the graph-change listener: {e}");
                        failing = true;
                        break 'read;
                    }
                }
            }
            if changed {
                wake();
            }
            std::thread::sleep(READ_EVERY);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::scratch::ScratchDb;

    #[test]
    fn a_change_by_another_process_wakes_the_listener() {
        let db = ScratchDb::new().unwrap();
        let store = Store::open(db.url()).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let Some(listener) = store.listen_changes(move || {
            let _ = tx.send(());
        }) else {
            assert!(!db.is_postgres(), "PostgreSQL listens");
            return;
        };
        // Once when listening starts, then nothing until a change commits.
        rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert!(rx.recv_timeout(Duration::from_millis(200)).is_err());
        let other = Store::open(db.url()).unwrap();
        other.add_user("carol", "c@example.org", "test").unwrap();
        rx.recv_timeout(Duration::from_secs(5))
            .expect("woken by the commit");
        // Data that changes no ACL logs nothing and wakes nobody.
        other.server_secret("x", || "y".into()).unwrap();
        assert!(rx.recv_timeout(Duration::from_millis(200)).is_err());
        drop(listener);
        store.close();
    }
}
