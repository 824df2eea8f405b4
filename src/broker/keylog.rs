//! Records misuse of keys without touching the database on the hot path.
//!
//! Sessions hand entries to a bounded queue ([`KeyLog::record`] never blocks); a writer
//! task stores them in batches. Each (ident, event) pair keeps at most [`PER_MINUTE`]
//! entries a minute, so a client hammering a wrong secret cannot flood the table; what is
//! left out is stored as one "suppressed" entry with the count. A full queue drops entries
//! and counts them.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::refusal::Refusal;
use super::stats::Stats;
use crate::domain::log::KeyLogEntry;
use crate::store::Store;

/// Entries kept per (ident, event) per minute.
pub use crate::config::limits::KEY_LOG_PER_MINUTE as PER_MINUTE;
/// Entries waiting to be written before new ones are dropped.
pub use crate::config::limits::KEY_LOG_QUEUE as QUEUE;
/// Entries written in one transaction at most.
const BATCH: usize = 256;

/// One (ident, event) pair's current minute.
#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    seen: u32,
    suppressed: u32,
}

/// The handle sessions record through.
#[derive(Debug)]
pub struct KeyLog {
    tx: mpsc::Sender<KeyLogEntry>,
    windows: Mutex<HashMap<(String, &'static str), Window>>,
    stats: Arc<Stats>,
}

impl KeyLog {
    /// A key log writing into `store` until `shutdown`, then flushing what is queued.
    pub fn start(
        store: Store,
        stats: Arc<Stats>,
        shutdown: CancellationToken,
    ) -> (Arc<KeyLog>, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let log = Arc::new(KeyLog {
            tx,
            windows: Mutex::new(HashMap::new()),
            stats,
        });
        let writer = tokio::spawn(write(store, rx, shutdown, Arc::clone(&log)));
        (log, writer)
    }

    /// Writes the "suppressed" count of every window whose minute is over (of every window
    /// when `all`, at shutdown) and forgets those windows: a count is never lost just
    /// because the misuse stopped before the next minute.
    pub fn sweep(&self, all: bool) {
        let now = Instant::now();
        let mut done = Vec::new();
        self.windows.lock().retain(|(ident, event), win| {
            let over = all || now.duration_since(win.start) >= Duration::from_secs(60);
            if over && win.suppressed > 0 {
                done.push((ident.clone(), *event, win.suppressed));
            }
            !over
        });
        let at = crate::store::now();
        for (ident, event, n) in done {
            self.send(suppressed_entry(at, ident, event, n));
        }
    }

    /// Records the refusal if it is misuse of a key; returns at once. A frame naming
    /// another ident is recorded against the key that authenticated (naming the ident it
    /// claimed), never in the claimed key's log.
    pub fn record(&self, refusal: &Refusal, peer: SocketAddr) {
        let (ident, channel) = match refusal {
            Refusal::AuthFailed { ident } => (ident, None),
            Refusal::IdentMismatch { actor, .. } => (actor, None),
            Refusal::PublishDenied { ident, channel } | Refusal::SubscribeDenied { ident, channel } => {
                (ident, Some(channel.to_string()))
            }
            _ => return,
        };
        let event = refusal.kind();
        let now = Instant::now();
        let suppressed = {
            let mut w = self.windows.lock();
            if w.len() > 100_000 {
                w.retain(|_, win| now.duration_since(win.start) < Duration::from_secs(60));
            }
            let fresh = Window {
                start: now,
                seen: 0,
                suppressed: 0,
            };
            let win = w.entry((ident.to_string(), event)).or_insert(fresh);
            let mut suppressed = 0;
            if now.duration_since(win.start) >= Duration::from_secs(60) {
                suppressed = win.suppressed;
                *win = fresh;
            }
            win.seen += 1;
            if win.seen > PER_MINUTE {
                win.suppressed += 1;
                return;
            }
            suppressed
        };
        let at = crate::store::now();
        if suppressed > 0 {
            self.send(suppressed_entry(at, ident.to_string(), event, suppressed));
        }
        self.send(KeyLogEntry {
            at,
            ident: ident.to_string(),
            event: event.to_owned(),
            channel,
            peer: Some(peer.to_string()),
            detail: match refusal {
                Refusal::IdentMismatch { ident, .. } => format!("{refusal} (a frame claimed ident {ident})"),
                _ => refusal.to_string(),
            },
        });
    }

    fn send(&self, e: KeyLogEntry) {
        if self.tx.try_send(e).is_err() {
            Stats::add(&self.stats.key_log_dropped, 1);
        }
    }
}

/// The entry that stands for `n` entries left out in a key's previous minute.
fn suppressed_entry(at: i64, ident: String, event: &str, n: u32) -> KeyLogEntry {
    KeyLogEntry {
        at,
        ident,
        event: "suppressed".into(),
        channel: None,
        peer: None,
        detail: format!("{n} more {event} in the previous minute"),
    }
}

/// How often finished minutes are swept for their suppressed counts.
const SWEEP: Duration = Duration::from_secs(10);

async fn write(
    store: Store,
    mut rx: mpsc::Receiver<KeyLogEntry>,
    shutdown: CancellationToken,
    log: Arc<KeyLog>,
) {
    let mut failing = false;
    let mut sweep = tokio::time::interval(SWEEP);
    loop {
        let mut batch = Vec::new();
        tokio::select! {
            n = rx.recv_many(&mut batch, BATCH) => if n == 0 { return },
            _ = sweep.tick() => {
                log.sweep(false);
                continue;
            }
            () = shutdown.cancelled() => {
                log.sweep(true);
                rx.close();
                while rx.recv_many(&mut batch, BATCH).await > 0 {}
                if !batch.is_empty() {
                    let s = store.clone();
                    let _ = tokio::task::spawn_blocking(move || s.append_key_log(&batch)).await;
                }
                return;
            }
        }
        let s = store.clone();
        let n = batch.len();
        match tokio::task::spawn_blocking(move || s.append_key_log(&batch)).await {
            Ok(Ok(())) => failing = false,
            Ok(Err(e)) if !failing => {
                tracing::warn!("key log: {n} entries lost, the database refused them: {e}");
                failing = true;
            }
            _ => {}
        }
    }
}
