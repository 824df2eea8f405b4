//! The data plane's routing table: per channel, the receivers of each source user.
//!
//! A publish costs one read-locked hash lookup (the lock is never held across I/O or while
//! delivering: the route is an immutable `Arc` snapshot) plus one `Bytes` clone per receiver.
//! Only the Broker actor writes routes, replacing a channel's whole `Route` on change.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::RwLock;

use super::handle::SessionHandle;
use super::outbox::PushError;
use super::stats::Stats;
use crate::config::SlowConsumerPolicy;
use crate::domain::UserId;
use crate::wire::Channel;

/// The receivers of one channel. A session is in `everyone` or in some `by_source` lists,
/// never both, so a publish reaches each session at most once.
#[derive(Debug, Default)]
pub struct Route {
    /// Sessions that receive every publisher on the channel.
    pub everyone: Vec<Arc<SessionHandle>>,
    /// Sessions that receive only some publishers' messages, by the publishing user.
    pub by_source: HashMap<UserId, Vec<Arc<SessionHandle>>>,
}

impl Route {
    /// Whether nobody receives anything on this channel.
    pub fn is_empty(&self) -> bool {
        self.everyone.is_empty() && self.by_source.is_empty()
    }
}

/// Channel → route, read by every publishing session.
#[derive(Debug)]
pub struct Router {
    routes: RwLock<HashMap<Channel, Arc<Route>>>,
    policy: SlowConsumerPolicy,
    stats: Arc<Stats>,
}

impl Router {
    /// An empty table applying `policy` to subscribers that do not keep up.
    pub fn new(policy: SlowConsumerPolicy, stats: Arc<Stats>) -> Self {
        Self {
            routes: RwLock::new(HashMap::new()),
            policy,
            stats,
        }
    }

    /// Replaces (or, when empty, removes) a channel's route. Control plane only.
    pub fn set_route(&self, channel: Channel, route: Route) {
        let mut routes = self.routes.write();
        if route.is_empty() {
            routes.remove(&channel);
        } else {
            routes.insert(channel, Arc::new(route));
        }
    }

    /// Queues `frame` for every receiver of `source`'s messages on `channel`; returns how
    /// many it was queued for.
    pub fn publish(&self, source: UserId, channel: &str, frame: &Bytes) -> usize {
        let Some(route) = self.routes.read().get(channel).cloned() else {
            return 0;
        };
        let receivers = route
            .everyone
            .iter()
            .chain(route.by_source.get(&source).into_iter().flatten());
        let delivered = receivers.filter(|h| self.deliver(h, frame)).count();
        Stats::add(&self.stats.deliveries, delivered as u64);
        delivered
    }

    fn deliver(&self, to: &SessionHandle, frame: &Bytes) -> bool {
        match self.policy {
            SlowConsumerPolicy::Disconnect => match to.outbox.push(frame.clone()) {
                Ok(()) => true,
                Err(PushError::Closed) => false,
                Err(PushError::Full) => {
                    Stats::add(&self.stats.dropped_slow, 1);
                    if !to.kill.is_cancelled() {
                        Stats::add(&self.stats.slow_disconnects, 1);
                        let discarded = to.kill();
                        Stats::add(&self.stats.dropped_slow, discarded as u64);
                        tracing::warn!(
                            ident = %to.ident, peer = %to.peer, discarded,
                            "slow consumer: outbox full, disconnecting"
                        );
                    }
                    false
                }
            },
            SlowConsumerPolicy::DropOldest => match to.outbox.push_drop_oldest(frame.clone()) {
                Ok(dropped) => {
                    Stats::add(&self.stats.dropped_slow, dropped as u64);
                    true
                }
                Err(PushError::Full) => {
                    Stats::add(&self.stats.dropped_slow, 1);
                    false
                }
                Err(PushError::Closed) => false,
            },
        }
    }
}
