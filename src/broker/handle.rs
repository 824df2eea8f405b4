//! The part of a session that other tasks may touch: its outbox, its current ACL and a
//! switch to kill it. Shared as `Arc<SessionHandle>` by the connection, the Broker actor
//! and every route the session is a receiver in.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use arc_swap::ArcSwapOption;
use tokio_util::sync::CancellationToken;

use super::outbox::Outbox;
use crate::domain::acl::KeyAcl;
use crate::wire::Ident;

/// Process-unique id of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u64);

/// An authenticated session, as seen from outside its connection task.
#[derive(Debug)]
pub struct SessionHandle {
    /// Unique id.
    pub id: SessionId,
    /// Remote address, for logs.
    pub peer: SocketAddr,
    /// The authenticated key.
    pub ident: Ident,
    /// Frames waiting to be written to this client.
    pub outbox: Arc<Outbox>,
    /// The key's current ACL; swapped by the Broker when the key changes, empty once revoked.
    pub acl: ArcSwapOption<KeyAcl>,
    /// Cancelled to drop the connection at once, without flushing.
    pub kill: CancellationToken,
    /// What the session sent and received since the Broker last collected it.
    pub usage: Usage,
}

/// What a session published, for the owner's Authkeys page: bumped by its own connection
/// task (an uncontended cache line), collected and zeroed by the Broker now and then. What
/// it received is counted by its outbox, under the lock each delivery takes anyway.
#[derive(Debug, Default)]
pub struct Usage {
    published: AtomicU64,
    published_bytes: AtomicU64,
    /// Bumped only when the session is cut as a slow subscriber (once per session).
    slow_cuts: AtomicU64,
}

impl Usage {
    /// One publish frame of `bytes` accepted from the client.
    pub fn published(&self, bytes: usize) {
        self.published.fetch_add(1, Relaxed);
        self.published_bytes.fetch_add(bytes as u64, Relaxed);
    }

    /// The session is being cut as a slow subscriber.
    pub fn slow_cut(&self) {
        self.slow_cuts.fetch_add(1, Relaxed);
    }

    /// Takes the slow-subscriber cuts so far, leaving zero.
    pub fn take_slow_cuts(&self) -> u64 {
        self.slow_cuts.swap(0, Relaxed)
    }

    /// Takes the counts so far, leaving zeros: (published, bytes).
    pub fn take(&self) -> (u64, u64) {
        (
            self.published.swap(0, Relaxed),
            self.published_bytes.swap(0, Relaxed),
        )
    }
}

impl SessionHandle {
    /// Drops the connection now, discarding what is queued; returns the frames discarded.
    pub fn kill(&self) -> usize {
        let n = self.outbox.abort();
        self.kill.cancel();
        n
    }
}
