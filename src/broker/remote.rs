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

/// What the backplane counted, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RemoteCounters {
    /// Whether the link to the other nodes is up now.
    pub connected: bool,
    /// Local publishes handed on.
    pub relayed: u64,
    /// Local publishes not handed on (queue full, link refused): other nodes miss them.
    pub relay_dropped: u64,
    /// Local publishes whose publisher waited for room in the queue (backpressure).
    pub relay_waits: u64,
    /// Messages from other nodes lost because this node did not read them fast enough
    /// (the NATS client's buffer was full): at least one per such event.
    pub remote_dropped: u64,
    /// Messages received from other nodes.
    pub received: u64,
    /// Received messages thrown away as malformed.
    pub rejected: u64,
    /// Times the link was lost.
    pub disconnects: u64,
    /// Channels whose traffic from other nodes this node asks for now.
    pub subjects: u64,
    /// Whether traffic between nodes is stored (JetStream) so an outage loses none of it.
    pub jetstream: bool,
    /// Relayed batches sent again because the store did not confirm them at first.
    pub relay_retries: u64,
    /// Messages from other nodes that never came (an outage longer than they are kept).
    pub remote_lost: u64,
    /// Messages from other nodes received twice and delivered once.
    pub remote_duplicates: u64,
    /// Readers of a channel started again because the store held messages they had not
    /// seen (a reader left stranded by a NATS server's failure).
    pub reader_restarts: u64,
}

impl std::fmt::Display for RemoteCounters {
    /// One line for the periodic statistics log (the metrics carry the same numbers).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "nats_connected={} relayed={} relay_dropped={} relay_waits={} remote_received={} \
             remote_dropped={} remote_rejected={} nats_disconnects={} subjects={} jetstream={} \
             relay_retries={} remote_lost={} remote_duplicates={} reader_restarts={}",
            self.connected,
            self.relayed,
            self.relay_dropped,
            self.relay_waits,
            self.received,
            self.remote_dropped,
            self.rejected,
            self.disconnects,
            self.subjects,
            self.jetstream,
            self.relay_retries,
            self.remote_lost,
            self.remote_duplicates,
            self.reader_restarts,
        )
    }
}

/// Other nodes, as the broker sees them.
pub trait Remote: Send + Sync {
    /// Hands a publish made on this node on to the other nodes: `frame` is the client's
    /// frame as received, `source` the publishing key's owner (the receivers' ACLs are
    /// checked against it there, as here). Never waits: false when the queue to the other
    /// nodes is full and nothing was queued (then the caller waits with
    /// [`Remote::relay_waiting`], under backpressure, or counts it with [`Remote::dropped`]).
    fn relay(&self, source: UserId, channel: &Channel, frame: &Bytes) -> bool;

    /// Backpressure: waits up to `limit` for room in the queue to the other nodes, then
    /// queues the publish; counts it as dropped when there was none.
    fn relay_waiting(
        &self,
        source: UserId,
        channel: Channel,
        frame: Bytes,
        limit: std::time::Duration,
    ) -> Wanting;

    /// Counts a publish that was not relayed (the queue was full, and the slow-consumer
    /// policy does not wait).
    fn dropped(&self);

    /// Makes sure messages other nodes publish on `channel` reach this node; the returned
    /// future ends when they do (or when the backplane cannot say, e.g. during an outage:
    /// it never holds a subscriber for long).
    fn want(&self, channel: &Channel) -> Wanting;

    /// What it counted so far.
    fn counters(&self) -> RemoteCounters;
}
