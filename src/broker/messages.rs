//! Typed messages of the Broker actor. Sessions and the key loader hold only an
//! `Addr<Broker>` and send these; the Broker's state stays private to it.

use std::sync::Arc;

use actix::Message;

use super::handle::{SessionHandle, SessionId};
use super::refusal::Refusal;
use crate::wire::{Channel, Ident};

/// A session authenticated; the Broker tracks it so ACL changes can reach it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Register(pub Arc<SessionHandle>);

/// Add a subscription. Answered once the route is live, so frames the client sends after
/// its subscribe are processed with the subscription in place.
#[derive(Message)]
#[rtype(result = "Result<(), Refusal>")]
pub struct Subscribe {
    /// The session.
    pub session: SessionId,
    /// The channel, already checked against the session's ACL.
    pub channel: Channel,
}

/// Drop a subscription (no error if there is none, as 3.1.0).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Unsubscribe {
    /// The session.
    pub session: SessionId,
    /// The channel.
    pub channel: Channel,
}

/// The connection ended; forget the session and its subscriptions.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Disconnected(pub SessionId);

pub use crate::domain::live::AclChanged;

/// In a cluster: the backplane, once it has started (after the Broker), so that presence
/// notices (`CHAN..broker`) reach watchers on the other nodes too.
#[derive(Message)]
#[rtype(result = "()")]
pub struct UseRemote(pub std::sync::Arc<dyn super::remote::Remote>);

/// The live sessions of some keys, so that their owner's Authkeys page can say which are
/// connected now and from where: (ident, peer) per session.
#[derive(Message)]
#[rtype(result = "Vec<(Ident, std::net::SocketAddr)>")]
pub struct LiveSessions(pub Vec<Ident>);

/// What the authenticated sessions' outboxes hold now, for the metrics' gauges.
#[derive(Message)]
#[rtype(result = "OutboxDepth")]
pub struct GetOutboxDepth;

/// Answer to [`GetOutboxDepth`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, actix::MessageResponse)]
pub struct OutboxDepth {
    /// Authenticated sessions.
    pub sessions: usize,
    /// Sessions with something queued.
    pub nonempty: usize,
    /// Bytes queued over all of them.
    pub total_bytes: usize,
    /// Bytes queued for the fullest one.
    pub max_bytes: usize,
}
