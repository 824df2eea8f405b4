//! Where a node's traffic meets other nodes': the seam between the broker and a cluster
//! backplane. The broker names only this trait; `cluster` implements it, so the broker
//! never depends on the backplane (one node runs without any).

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;

use crate::domain::UserId;
use crate::wire::Channel;

/// What a waiting subscriber holds while the backplane makes sure a channel's messages
/// from other nodes reach this node.
pub type Wanting = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Other nodes, as the broker sees them.
pub trait Remote: Send + Sync {
    /// Hands a publish made on this node on to the other nodes: `frame` is the client's
    /// frame as received, `source` the publishing key's owner (the receivers' ACLs are
    /// checked against it there, as here). Never waits: what cannot be queued is counted
    /// and dropped (local subscribers have it already).
    fn relay(&self, source: UserId, channel: &Channel, frame: &Bytes);

    /// Makes sure messages other nodes publish on `channel` reach this node; the returned
    /// future ends when they do (or when the backplane cannot say, e.g. during an outage:
    /// it never holds a subscriber for long).
    fn want(&self, channel: &Channel) -> Wanting;
}
