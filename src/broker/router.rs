//! The data plane's routing table: per channel, the receivers of each source user.
//!
//! A publish costs one read-locked hash lookup (the lock is never held across I/O or while
//! delivering: the route is an immutable `Arc` snapshot) plus one `Bytes` clone per receiver.
//! Only the Broker actor writes routes, through a [`RouteEditor`] per channel: the lists are
//! persistent (`imbl`), so a subscriber joining or leaving edits O(log n) of them and the
//! snapshot published is an O(1) clone, however many others are subscribed.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::RwLock;

use super::handle::{SessionHandle, SessionId};
use super::outbox::{Compact, PushError};
use super::stats::Stats;
use crate::config::SlowConsumerPolicy;
use crate::domain::UserId;
use crate::domain::acl::Sources;
use crate::wire::Channel;

/// The receivers of one channel. A session is in `everyone` or in some `by_source` lists,
/// never both, so a publish reaches each session at most once.
#[derive(Debug, Default, Clone)]
pub struct Route {
    /// Sessions that receive every publisher on the channel.
    pub everyone: Receivers,
    /// Sessions that receive only some publishers' messages, by the publishing user.
    pub by_source: BySource,
}

/// Receivers by publishing user: a persistent map on a fast hash (user ids are the
/// database's, never chosen by a client).
pub type BySource =
    imbl::GenericHashMap<UserId, Receivers, rustc_hash::FxBuildHasher, imbl::shared_ptr::DefaultSharedPtr>;

impl Route {
    /// Whether nobody receives anything on this channel.
    pub fn is_empty(&self) -> bool {
        self.everyone.is_empty() && self.by_source.is_empty()
    }
}

/// Up to this many receivers a list is a plain vector, copied on change (at most this many
/// pointer copies, and the publish loop is a slice loop); beyond it a persistent vector,
/// edited in O(log n).
const SMALL: usize = 64;

/// One list of receivers (see [`SMALL`]).
#[derive(Debug, Clone)]
pub enum Receivers {
    /// Few: a plain vector.
    Small(Arc<Vec<Arc<SessionHandle>>>),
    /// Many: a persistent vector.
    Large(imbl::Vector<Arc<SessionHandle>>),
}

impl Default for Receivers {
    fn default() -> Self {
        Self::Small(Arc::default())
    }
}

impl From<Vec<Arc<SessionHandle>>> for Receivers {
    fn from(v: Vec<Arc<SessionHandle>>) -> Self {
        if v.len() <= SMALL {
            Self::Small(Arc::new(v))
        } else {
            Self::Large(v.into())
        }
    }
}

impl Receivers {
    /// How many.
    pub fn len(&self) -> usize {
        match self {
            Self::Small(v) => v.len(),
            Self::Large(v) => v.len(),
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every receiver, as slices (one for a small list, a leaf at a time for a large one).
    pub fn slices(&self) -> impl Iterator<Item = &[Arc<SessionHandle>]> + '_ {
        let (small, large) = match self {
            Self::Small(v) => (Some(v.as_slice()), None),
            Self::Large(v) => (None, Some(v.leaves())),
        };
        small.into_iter().chain(large.into_iter().flatten())
    }

    /// Every receiver.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<SessionHandle>> + '_ {
        self.slices().flatten()
    }

    fn push(&mut self, h: Arc<SessionHandle>) {
        match self {
            Self::Small(v) if v.len() < SMALL => Arc::make_mut(v).push(h),
            Self::Small(v) => {
                let mut large: imbl::Vector<Arc<SessionHandle>> = v.iter().cloned().collect();
                large.push_back(h);
                *self = Self::Large(large);
            }
            Self::Large(v) => v.push_back(h),
        }
    }

    fn pop(&mut self) -> Option<Arc<SessionHandle>> {
        match self {
            Self::Small(v) => Arc::make_mut(v).pop(),
            Self::Large(v) => {
                let last = v.pop_back();
                if v.len() <= SMALL / 2 {
                    *self = Self::Small(Arc::new(v.iter().cloned().collect()));
                }
                last
            }
        }
    }

    fn set(&mut self, i: usize, h: Arc<SessionHandle>) {
        match self {
            Self::Small(v) => {
                if let Some(slot) = Arc::make_mut(v).get_mut(i) {
                    *slot = h;
                }
            }
            Self::Large(v) => {
                v.set(i, h);
            }
        }
    }
}

/// Takes `id` out of `list` by moving the last entry into its place; `at` keeps every
/// entry's index.
fn swap_out(list: &mut Receivers, at: &mut HashMap<SessionId, usize>, id: SessionId) {
    let Some(i) = at.remove(&id) else { return };
    let Some(last) = list.pop() else { return };
    if i < list.len() {
        at.insert(last.id, i);
        list.set(i, last);
    }
}

/// Where a session sits in a channel's route.
#[derive(Debug, Clone)]
enum Placed {
    Everyone,
    Users(Vec<UserId>),
}

/// One channel's route as the Broker edits it (see the module doc).
#[derive(Debug, Default)]
pub struct RouteEditor {
    route: Route,
    placed: HashMap<SessionId, Placed>,
    at_everyone: HashMap<SessionId, usize>,
    at_source: HashMap<UserId, HashMap<SessionId, usize>>,
}

impl RouteEditor {
    /// Adds (or re-places) a subscriber receiving `sources`' messages.
    pub fn place(&mut self, h: &Arc<SessionHandle>, sources: &Sources) {
        self.remove(h.id);
        let placed = match sources {
            Sources::Everyone => {
                self.at_everyone.insert(h.id, self.route.everyone.len());
                self.route.everyone.push(Arc::clone(h));
                Placed::Everyone
            }
            Sources::Users(users) => {
                for u in users.iter() {
                    let list = self.route.by_source.entry(*u).or_default();
                    self.at_source.entry(*u).or_default().insert(h.id, list.len());
                    list.push(Arc::clone(h));
                }
                Placed::Users(users.iter().copied().collect())
            }
        };
        self.placed.insert(h.id, placed);
    }

    /// Takes a subscriber out; true when it was in.
    pub fn remove(&mut self, id: SessionId) -> bool {
        let Some(placed) = self.placed.remove(&id) else {
            return false;
        };
        match placed {
            Placed::Everyone => swap_out(&mut self.route.everyone, &mut self.at_everyone, id),
            Placed::Users(users) => {
                for u in users {
                    let (Some(list), Some(at)) =
                        (self.route.by_source.get_mut(&u), self.at_source.get_mut(&u))
                    else {
                        continue;
                    };
                    swap_out(list, at, id);
                    if list.is_empty() {
                        self.route.by_source.remove(&u);
                        self.at_source.remove(&u);
                    }
                }
            }
        }
        true
    }

    /// Whether `id` subscribes here.
    pub fn contains(&self, id: SessionId) -> bool {
        self.placed.contains_key(&id)
    }

    /// Whether nobody subscribes.
    pub fn is_empty(&self) -> bool {
        self.placed.is_empty()
    }

    /// The route as it is now, for [`Router::set_route`] (an O(1) clone).
    pub fn snapshot(&self) -> Route {
        self.route.clone()
    }
}

/// Channel → route, read by every publishing session.
#[derive(Debug)]
pub struct Router {
    /// A fast hash: looked up on every publish; its keys are channels that keys' owners
    /// listed (a client's lookups of other names cannot grow it).
    routes: RwLock<HashMap<Channel, Arc<Route>, rustc_hash::FxBuildHasher>>,
    policy: SlowConsumerPolicy,
    stats: Arc<Stats>,
}

impl Router {
    /// An empty table applying `policy` to subscribers that do not keep up.
    pub fn new(policy: SlowConsumerPolicy, stats: Arc<Stats>) -> Self {
        Self {
            routes: RwLock::new(HashMap::default()),
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

    /// Whether any session receives anything on `channel` (the cluster keeps its NATS
    /// subscriptions to such channels only).
    pub fn has_route(&self, channel: &str) -> bool {
        self.routes.read().contains_key(channel)
    }

    /// Queues `frame` for every receiver of `source`'s messages on `channel`; returns how
    /// many it was queued for. Under backpressure the receivers whose outbox is full are
    /// added to `stalled` instead: the publisher then waits for them with
    /// [`Router::deliver_waiting`] before it reads its next frame.
    pub fn publish(
        &self,
        source: UserId,
        channel: &str,
        frame: &Bytes,
        stalled: &mut Vec<Arc<SessionHandle>>,
    ) -> usize {
        let Some(route) = self.routes.read().get(channel).cloned() else {
            return 0;
        };
        // (No hashing when no receiver takes only some sources: the common case.)
        let by_source = if route.by_source.is_empty() {
            None
        } else {
            route.by_source.get(&source)
        };
        let receivers = route.everyone.len() + by_source.map_or(0, Receivers::len);
        let mut frame = Compact::new(frame.clone(), receivers);
        // Failing closed (the graph's change log unread for too long): a revoke this node
        // cannot see must not be outlived, so only the publisher's own keys receive.
        let own_only = self
            .stats
            .graph_stale
            .load(std::sync::atomic::Ordering::Relaxed)
            .then_some(source);
        let mut delivered = self.deliver_all(&route.everyone, &mut frame, stalled, own_only);
        if let Some(list) = by_source {
            delivered += self.deliver_all(list, &mut frame, stalled, own_only);
        }
        Stats::add(&self.stats.deliveries, delivered as u64);
        delivered
    }

    /// Queues `frame` for every receiver of `list`: a plain slice loop (per leaf when large).
    fn deliver_all(
        &self,
        list: &Receivers,
        frame: &mut Compact,
        stalled: &mut Vec<Arc<SessionHandle>>,
        own_only: Option<UserId>,
    ) -> usize {
        let mut n = 0;
        for leaf in list.slices() {
            for h in leaf {
                if let Some(source) = own_only
                    && h.acl.load().as_ref().is_none_or(|acl| acl.owner != source)
                {
                    Stats::add(&self.stats.dropped_stale_graph, 1);
                    continue;
                }
                match self.deliver(h, frame) {
                    Delivered::Yes => n += 1,
                    Delivered::No => {}
                    Delivered::Full => stalled.push(Arc::clone(h)),
                }
            }
        }
        n
    }

    /// Backpressure: waits (up to `stall`) until each of `stalled` has room for `frame`,
    /// one after the other, as they drain. A receiver that stays full is cut and counted;
    /// one that lost the right to `source`'s messages on `channel` meanwhile gets nothing,
    /// so a revoke that answered is not undone by a publisher that was waiting.
    pub async fn deliver_waiting(
        &self,
        source: UserId,
        channel: &str,
        frame: &Bytes,
        stalled: &mut Vec<Arc<SessionHandle>>,
        stall: std::time::Duration,
    ) {
        Stats::add(&self.stats.backpressure_waits, 1);
        let mut frame = Compact::new(frame.clone(), stalled.len());
        for to in stalled.drain(..) {
            let admitted = || {
                to.acl
                    .load()
                    .as_ref()
                    .and_then(|acl| acl.sources(channel).map(|s| s.admits(source)))
                    .unwrap_or(false)
            };
            match to.outbox.push_waiting(&mut frame, stall, admitted).await {
                Ok(true) => Stats::add(&self.stats.deliveries, 1),
                Ok(false) | Err(PushError::Closed | PushError::Full) => {}
                Err(PushError::Stalled) => {
                    self.cut_slow(&to, "outbox full for the whole stall timeout, disconnecting");
                }
            }
        }
    }

    /// Cuts a subscriber that does not keep up (once), counting what it loses.
    fn cut_slow(&self, to: &SessionHandle, why: &str) {
        Stats::add(&self.stats.dropped_slow, 1);
        if !to.kill.is_cancelled() {
            Stats::add(&self.stats.slow_disconnects, 1);
            to.usage.slow_cut();
            let discarded = to.kill();
            Stats::add(&self.stats.dropped_slow, discarded as u64);
            tracing::warn!(ident = %to.ident, peer = %to.peer, discarded, "slow consumer: {why}");
        }
    }

    fn deliver(&self, to: &SessionHandle, frame: &mut Compact) -> Delivered {
        match self.policy {
            SlowConsumerPolicy::Backpressure => match to.outbox.push(frame) {
                Ok(()) => Delivered::Yes,
                Err(PushError::Full) => Delivered::Full,
                Err(PushError::Closed | PushError::Stalled) => Delivered::No,
            },
            SlowConsumerPolicy::Disconnect => match to.outbox.push(frame) {
                Ok(()) => Delivered::Yes,
                Err(PushError::Closed | PushError::Stalled) => Delivered::No,
                Err(PushError::Full) => {
                    self.cut_slow(to, "outbox full, disconnecting");
                    Delivered::No
                }
            },
            SlowConsumerPolicy::DropOldest => match to.outbox.push_drop_oldest(frame) {
                Ok(dropped) => {
                    Stats::add(&self.stats.dropped_slow, dropped as u64);
                    Delivered::Yes
                }
                Err(PushError::Full) => {
                    Stats::add(&self.stats.dropped_slow, 1);
                    Delivered::No
                }
                Err(PushError::Closed | PushError::Stalled) => Delivered::No,
            },
        }
    }

    /// Whether nobody receives anything on `channel` now.
    pub fn is_idle(&self, channel: &str) -> bool {
        !self.routes.read().contains_key(channel)
    }
}

/// What became of one frame for one receiver.
enum Delivered {
    /// Queued.
    Yes,
    /// Not queued: closing, cut, or dropped (counted).
    No,
    /// Backpressure: the outbox is full; the publisher waits for it.
    Full,
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeSet, HashSet};
    use std::net::SocketAddr;

    use arc_swap::ArcSwapOption;
    use proptest::prelude::*;
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::broker::outbox::Outbox;
    use crate::wire::Ident;

    fn handle(i: u64) -> Arc<SessionHandle> {
        Arc::new(SessionHandle {
            id: SessionId(i),
            peer: SocketAddr::from(([127, 0, 0, 1], 1)),
            ident: Ident::new(&format!("k{i}")).unwrap(),
            outbox: Arc::new(Outbox::new(1 << 20)),
            acl: ArcSwapOption::empty(),
            kill: CancellationToken::new(),
            usage: Default::default(),
        })
    }

    fn ids(list: Option<&Receivers>) -> BTreeSet<u64> {
        list.into_iter()
            .flat_map(Receivers::iter)
            .map(|h| h.id.0)
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        /// Any sequence of joins, re-placements and leaves leaves every list holding
        /// exactly the sessions placed there, each once.
        #[test]
        fn edits_keep_each_list_exact(ops in proptest::collection::vec(
            (0..300u64, proptest::option::weighted(0.8, proptest::collection::btree_set(0..3i64, 0..3))), 0..700)
        ) {
            // 300 sessions: lists grow past SMALL and shrink back.
            let handles: Vec<_> = (0..300).map(handle).collect();
            let mut editor = RouteEditor::default();
            let mut model: HashMap<u64, Option<BTreeSet<i64>>> = HashMap::new();
            for (i, op) in ops {
                let idx = usize::try_from(i).unwrap();
                match op {
                    Some(users) if users.is_empty() => {
                        editor.place(&handles[idx], &Sources::Everyone);
                        model.insert(i, None);
                    }
                    Some(users) => {
                        let s = Sources::Users(Arc::new(users.iter().map(|u| UserId(*u)).collect()));
                        editor.place(&handles[idx], &s);
                        model.insert(i, Some(users));
                    }
                    None => {
                        prop_assert_eq!(editor.remove(SessionId(i)), model.remove(&i).is_some());
                    }
                }
                let route = editor.snapshot();
                let everyone: BTreeSet<u64> = model.iter().filter(|(_, s)| s.is_none()).map(|(i, _)| *i).collect();
                prop_assert_eq!(ids(Some(&route.everyone)), everyone);
                prop_assert_eq!(route.everyone.len(), model.values().filter(|s| s.is_none()).count());
                for u in 0..3i64 {
                    let want: BTreeSet<u64> = model
                        .iter()
                        .filter(|(_, s)| s.as_ref().is_some_and(|s| s.contains(&u)))
                        .map(|(i, _)| *i)
                        .collect();
                    let list = route.by_source.get(&UserId(u));
                    prop_assert_eq!(list.map_or(0, |l| l.len()), want.len());
                    prop_assert_eq!(ids(list), want);
                }
                let all: HashSet<u64> = model.keys().copied().collect();
                prop_assert_eq!(editor.is_empty(), all.is_empty());
            }
        }
    }
}
