//! The part of a session that other tasks may touch: its outbox, its current ACL and a
//! switch to kill it. Shared as `Arc<SessionHandle>` by the connection, the Broker actor
//! and every route the session is a receiver in.

use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use tokio_util::sync::CancellationToken;

use super::outbox::Outbox;
use crate::social::acl::KeyAcl;
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
}

impl SessionHandle {
    /// Drops the connection now, discarding what is queued; returns the frames discarded.
    pub fn kill(&self) -> usize {
        let n = self.outbox.abort();
        self.kill.cancel();
        n
    }
}
