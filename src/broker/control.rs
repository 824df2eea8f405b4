//! The Broker actor: the control plane.
//!
//! It owns who is subscribed to what and edits a channel's route in the [`Router`] after
//! every change (in time independent of how many others subscribe: [`RouteEditor`]), and it
//! holds the key table sessions authenticate against. It is never on the publish path:
//! publishing sessions read the router directly.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use actix::{Actor, AsyncContext, Context, Handler};
use arc_swap::ArcSwap;

use super::handle::{SessionHandle, SessionId};
use super::messages::{
    AclChanged, Disconnected, GetOutboxDepth, LiveSessions, OutboxDepth, Register, Subscribe, Unsubscribe,
    UseRemote,
};
use super::refusal::Refusal;
use super::router::{RouteEditor, Router};
use super::stats::Stats;
use crate::domain::acl::KeyTable;
use crate::domain::listing::{KeyUsage, Traffic};
use crate::store::Store;
use crate::wire::{Channel, Ident};

struct Entry {
    handle: Arc<SessionHandle>,
    channels: HashSet<Channel>,
}

/// Control-plane state; see the module doc.
pub struct Broker {
    router: Arc<Router>,
    keys: Arc<ArcSwap<KeyTable>>,
    stats: Arc<Stats>,
    max_subscriptions: usize,
    sessions: HashMap<SessionId, Entry>,
    channels: HashMap<Channel, RouteEditor>,
    by_ident: HashMap<Ident, HashSet<SessionId>>,
    usage_sink: Option<(Store, std::time::Duration)>,
    /// Counters not yet written: kept (and merged with newer ones) when a write fails.
    usage: Arc<parking_lot::Mutex<HashMap<Ident, KeyUsage>>>,
    max_key_subscriptions: usize,
    /// Each channel's counts as last written to the catalogue's traffic.
    channels_written: rustc_hash::FxHashMap<Channel, crate::broker::stats::ChannelCounts>,
    /// In a cluster, where presence notices go for the other nodes' watchers.
    remote: Option<Arc<dyn super::remote::Remote>>,
}

/// At most this many keys' counters wait for a database that keeps failing; past it the
/// newest keys' counters are dropped, logged and counted (`usage_lost`).
pub use crate::config::limits::MAX_PENDING_USAGE_KEYS;

/// Adds `from` into `to` (counts summed, the later use kept).
fn merge_usage(to: &mut KeyUsage, from: KeyUsage) {
    to.messages_published = to.messages_published.saturating_add(from.messages_published);
    to.bytes_published = to.bytes_published.saturating_add(from.bytes_published);
    to.messages_received = to.messages_received.saturating_add(from.messages_received);
    to.bytes_received = to.bytes_received.saturating_add(from.bytes_received);
    to.slow_cuts = to.slow_cuts.saturating_add(from.slow_cuts);
    if from.last_seen_at >= to.last_seen_at {
        to.last_seen_at = from.last_seen_at;
        if from.last_peer.is_some() {
            to.last_peer = from.last_peer;
        }
    }
}

/// Puts a batch that could not be written back into the pending counters, within bounds.
fn keep_unwritten(
    pending: &parking_lot::Mutex<HashMap<Ident, KeyUsage>>,
    batch: Vec<(Ident, KeyUsage)>,
    stats: &Stats,
) {
    let mut pending = pending.lock();
    let mut lost = 0u64;
    for (ident, u) in batch {
        if let Some(p) = pending.get_mut(&ident) {
            merge_usage(p, u);
        } else if pending.len() < MAX_PENDING_USAGE_KEYS {
            pending.insert(ident, u);
        } else {
            lost += 1;
        }
    }
    if lost > 0 {
        Stats::add(&stats.usage_lost, lost);
        tracing::warn!(keys = lost, "usage counters dropped: the database keeps failing");
    }
}

fn add_usage(to: &mut KeyUsage, [p, pb, r, rb]: [u64; 4]) {
    let i = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    to.messages_published = to.messages_published.saturating_add(i(p));
    to.bytes_published = to.bytes_published.saturating_add(i(pb));
    to.messages_received = to.messages_received.saturating_add(i(r));
    to.bytes_received = to.bytes_received.saturating_add(i(rb));
}

impl Broker {
    /// A Broker writing routes into `router` and publishing key tables into `keys`.
    pub fn new(
        router: Arc<Router>,
        keys: Arc<ArcSwap<KeyTable>>,
        stats: Arc<Stats>,
        max_subscriptions: usize,
    ) -> Self {
        Self {
            router,
            keys,
            stats,
            max_subscriptions,
            sessions: HashMap::new(),
            channels: HashMap::new(),
            by_ident: HashMap::new(),
            usage_sink: None,
            usage: Arc::default(),
            max_key_subscriptions: usize::MAX,
            channels_written: rustc_hash::FxHashMap::default(),
            remote: None,
        }
    }

    /// Bounds the subscriptions of one key over all its sessions.
    pub fn with_key_subscription_limit(mut self, limit: usize) -> Self {
        self.max_key_subscriptions = limit;
        self
    }

    /// Subscriptions `ident` holds over all its sessions.
    fn key_subscriptions(&self, ident: &Ident) -> usize {
        self.by_ident
            .get(ident)
            .into_iter()
            .flatten()
            .filter_map(|id| self.sessions.get(id))
            .map(|e| e.channels.len())
            .sum()
    }

    /// Writes each key's traffic to `store` every `every` (and what ended sessions had).
    pub fn with_usage_store(mut self, store: Store, every: std::time::Duration) -> Self {
        self.usage_sink = Some((store, every));
        self
    }

    /// Moves a session's counters into the batch for the store, stamped with its address.
    fn collect(&mut self, handle: &SessionHandle) {
        let (published, published_bytes) = handle.usage.take();
        let (received, received_bytes) = handle.outbox.take_delivered();
        let counts = [published, published_bytes, received, received_bytes];
        let mut usage = self.usage.lock();
        if usage.len() >= MAX_PENDING_USAGE_KEYS && !usage.contains_key(&handle.ident) {
            Stats::add(&self.stats.usage_lost, 1);
            return;
        }
        let u = usage.entry(handle.ident.clone()).or_default();
        add_usage(u, counts);
        let cuts = handle.usage.take_slow_cuts();
        u.slow_cuts = u
            .slow_cuts
            .saturating_add(i64::try_from(cuts).unwrap_or(i64::MAX));
        u.last_seen_at = Some(crate::store::now());
        u.last_peer = Some(handle.peer.to_string());
    }

    /// Sends the collected counters (live sessions included) to the store, off this actor
    /// (`wait`: on this thread, at shutdown). A batch that fails is kept for the next flush.
    fn flush_usage(&mut self, wait: bool) {
        let Some((store, _)) = self.usage_sink.clone() else {
            return;
        };
        let live: Vec<Arc<SessionHandle>> = self.sessions.values().map(|e| Arc::clone(&e.handle)).collect();
        for h in live {
            self.collect(&h);
        }
        let batch: Vec<(Ident, KeyUsage)> = self.usage.lock().drain().collect();
        let i = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        let traffic: Vec<(Channel, Traffic)> = self
            .stats
            .channels
            .since(&mut self.channels_written)
            .into_iter()
            .map(|(c, n)| {
                let t = Traffic {
                    bucket: 0,
                    messages: i(n.published),
                    bytes: i(n.bytes),
                    deliveries: i(n.delivered),
                };
                (c, t)
            })
            .collect();
        if batch.is_empty() && traffic.is_empty() {
            return;
        }
        let (pending, stats) = (Arc::clone(&self.usage), Arc::clone(&self.stats));
        let write = move || {
            // One bucket for both tables: a flush that straddles a bucket's end is not split.
            let bucket = crate::store::models::catalogue::bucket_of(crate::store::now());
            // Traffic is a picture, not an account: a bucket that cannot be written is
            // logged and counted, not kept (the next one carries on).
            if !traffic.is_empty()
                && let Err(e) = store.add_channel_traffic(bucket, &traffic)
            {
                tracing::warn!("cannot record channel traffic ({} channels): {e}", traffic.len());
                Stats::add(&stats.usage_write_failures, 1);
            }
            if batch.is_empty() {
                return;
            }
            let rows: Vec<(String, KeyUsage)> = batch
                .iter()
                .map(|(i, u)| (i.as_str().to_owned(), u.clone()))
                .collect();
            if let Err(e) = store.add_key_usage(bucket, &rows) {
                tracing::warn!(
                    "cannot record key usage ({} keys), keeping it for the next try: {e}",
                    rows.len()
                );
                Stats::add(&stats.usage_write_failures, 1);
                keep_unwritten(&pending, batch, &stats);
            }
        };
        // At shutdown the runtime may already be going: the last flush is written here, on
        // this thread, rather than lost (or a panic).
        match tokio::runtime::Handle::try_current() {
            Ok(rt) if !wait => {
                rt.spawn_blocking(write);
            }
            _ => write(),
        }
    }

    /// Publishes `channel`'s route as edited (an O(1) snapshot).
    fn publish_route(&self, channel: &Channel) {
        let route = self
            .channels
            .get(channel)
            .map(RouteEditor::snapshot)
            .unwrap_or_default();
        self.router.set_route(channel.clone(), route);
    }

    /// Tells the watchers of `channel`'s presence channel (`CHAN..broker`) that `handle`
    /// joined or left it, as the original broker did: a publish from the session's ident
    /// with payload `join` or `leave`. It goes through the router as a message of the
    /// session's owner, so only watchers who receive that user's messages on `CHAN` (and
    /// so may know the ident) hear of it. Nothing waits for a full outbox here: a notice
    /// that does not fit is dropped and counted (`dropped_slow`).
    fn announce(&self, handle: &SessionHandle, channel: &Channel, what: &'static str) {
        if let Some(owner) = handle.acl.load().as_ref().map(|a| a.owner) {
            self.announce_as(owner, handle, channel, what);
        }
    }

    /// [`Self::announce`] for a session of `owner` (whose ACL may be gone already).
    fn announce_as(
        &self,
        owner: crate::domain::UserId,
        handle: &SessionHandle,
        channel: &Channel,
        what: &'static str,
    ) {
        let Some(presence) = channel.presence() else {
            return;
        };
        // Watchers on other nodes are not in this node's routes: the backplane hears of it
        // whenever there is one (NATS drops it when no node subscribes).
        if self.remote.is_none() && self.router.is_idle(presence.as_str()) {
            return;
        }
        let frame = crate::wire::Frame::Publish {
            ident: handle.ident.clone(),
            channel: presence.clone(),
            payload: bytes::Bytes::from_static(what.as_bytes()),
        };
        let Ok(bytes) = frame.to_bytes() else { return };
        if let Some(remote) = &self.remote
            && !remote.relay(owner, &presence, &bytes)
        {
            // The queue to the other nodes is full: counted like any publish not relayed.
            remote.dropped();
        }
        let mut full = Vec::new();
        self.router.publish(owner, presence.as_str(), &bytes, &mut full);
        if !full.is_empty() {
            Stats::add(&self.stats.dropped_slow, full.len() as u64);
            tracing::debug!(%channel, dropped = full.len(), "presence notice not queued: outbox full");
        }
    }

    /// Takes `id` out of `channel`'s route, dropping the channel when it empties.
    fn unlink(&mut self, channel: &Channel, id: SessionId) {
        if let Some(editor) = self.channels.get_mut(channel) {
            editor.remove(id);
            if editor.is_empty() {
                self.channels.remove(channel);
            }
        }
    }

    /// Removes `id`'s subscription to `channel` from the tables; true when it existed.
    fn forget(&mut self, id: SessionId, channel: &Channel) -> bool {
        let had = self
            .sessions
            .get_mut(&id)
            .is_some_and(|e| e.channels.remove(channel));
        self.unlink(channel, id);
        had
    }

    /// Removes a session from the tables without touching routes; returns its entry.
    fn detach(&mut self, id: SessionId) -> Option<Entry> {
        let entry = self.sessions.remove(&id)?;
        if let Some(ids) = self.by_ident.get_mut(&entry.handle.ident) {
            ids.remove(&id);
            if ids.is_empty() {
                self.by_ident.remove(&entry.handle.ident);
            }
        }
        for channel in &entry.channels {
            self.unlink(channel, id);
        }
        Some(entry)
    }
}

impl Actor for Broker {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if let Some((_, every)) = &self.usage_sink {
            ctx.run_interval(*every, |act, _| act.flush_usage(false));
        }
    }

    fn stopping(&mut self, _: &mut Context<Self>) -> actix::Running {
        self.flush_usage(true);
        actix::Running::Stop
    }
}

impl Handler<UseRemote> for Broker {
    type Result = ();

    fn handle(&mut self, UseRemote(remote): UseRemote, _: &mut Context<Self>) {
        self.remote = Some(remote);
    }
}

impl Handler<LiveSessions> for Broker {
    type Result = Vec<(Ident, std::net::SocketAddr)>;

    fn handle(&mut self, LiveSessions(idents): LiveSessions, _: &mut Context<Self>) -> Self::Result {
        idents
            .iter()
            .filter_map(|i| self.by_ident.get(i))
            .flatten()
            .filter_map(|id| self.sessions.get(id))
            .map(|e| (e.handle.ident.clone(), e.handle.peer))
            .collect()
    }
}

impl Handler<GetOutboxDepth> for Broker {
    type Result = OutboxDepth;

    fn handle(&mut self, _: GetOutboxDepth, _: &mut Context<Self>) -> OutboxDepth {
        let mut d = OutboxDepth {
            sessions: self.sessions.len(),
            ..OutboxDepth::default()
        };
        for e in self.sessions.values() {
            let q = e.handle.outbox.queued_bytes();
            d.total_bytes += q;
            d.max_bytes = d.max_bytes.max(q);
            d.nonempty += usize::from(q > 0);
        }
        d
    }
}

impl Handler<Register> for Broker {
    type Result = ();

    fn handle(&mut self, Register(handle): Register, _: &mut Context<Self>) {
        // The key may have changed between authentication and now: align with the table.
        let authed_with = handle.acl.load().as_ref().map(|a| a.secret.clone());
        match self.keys.load().get(&handle.ident) {
            // Authenticated with a secret that was rotated away before the session got here.
            Some(acl) if authed_with.as_ref().is_some_and(|s| *s != acl.secret) => {
                handle.acl.store(None);
                handle.outbox.refuse(&Refusal::SecretRotated {
                    ident: handle.ident.clone(),
                });
                return;
            }
            Some(acl) => handle.acl.store(Some(Arc::clone(acl))),
            None => {
                handle.acl.store(None);
                handle.outbox.refuse(&Refusal::KeyRevoked {
                    ident: handle.ident.clone(),
                });
                return;
            }
        }
        self.by_ident
            .entry(handle.ident.clone())
            .or_default()
            .insert(handle.id);
        self.sessions.insert(
            handle.id,
            Entry {
                handle,
                channels: HashSet::new(),
            },
        );
    }
}

impl Handler<Subscribe> for Broker {
    type Result = Result<(), Refusal>;

    fn handle(&mut self, msg: Subscribe, _: &mut Context<Self>) -> Result<(), Refusal> {
        let held = match self.sessions.get(&msg.session) {
            Some(e) if !e.channels.contains(&msg.channel) => self.key_subscriptions(&e.handle.ident),
            _ => 0,
        };
        let Some(entry) = self.sessions.get_mut(&msg.session) else {
            // Unregistered: the key was revoked meanwhile, and the session is closing.
            return Ok(());
        };
        let allowed = entry
            .handle
            .acl
            .load()
            .as_ref()
            .is_some_and(|a| a.sources(msg.channel.as_str()).is_some());
        if !allowed {
            return Err(Refusal::SubscribeDenied {
                ident: entry.handle.ident.clone(),
                channel: msg.channel,
            });
        }
        if entry.channels.contains(&msg.channel) {
            return Ok(());
        }
        if entry.channels.len() >= self.max_subscriptions {
            return Err(Refusal::TooManySubscriptions(self.max_subscriptions));
        }
        if held >= self.max_key_subscriptions {
            return Err(Refusal::TooManyKeySubscriptions(self.max_key_subscriptions));
        }
        let acl = entry.handle.acl.load_full();
        let Some(sources) = acl.as_ref().and_then(|a| a.sources(msg.channel.as_str())) else {
            return Ok(());
        };
        entry.channels.insert(msg.channel.clone());
        let handle = Arc::clone(&entry.handle);
        self.channels
            .entry(msg.channel.clone())
            .or_default()
            .place(&handle, sources);
        self.publish_route(&msg.channel);
        self.announce(&handle, &msg.channel, "join");
        Ok(())
    }
}

impl Handler<Unsubscribe> for Broker {
    type Result = ();

    fn handle(&mut self, msg: Unsubscribe, _: &mut Context<Self>) {
        if self.forget(msg.session, &msg.channel) {
            self.publish_route(&msg.channel);
            if let Some(e) = self.sessions.get(&msg.session) {
                self.announce(&e.handle, &msg.channel, "leave");
            }
        }
    }
}

impl Handler<Disconnected> for Broker {
    type Result = ();

    fn handle(&mut self, Disconnected(id): Disconnected, _: &mut Context<Self>) {
        if let Some(entry) = self.detach(id) {
            if self.usage_sink.is_some() {
                self.collect(&entry.handle);
            }
            for channel in &entry.channels {
                self.publish_route(channel);
            }
            for channel in &entry.channels {
                self.announce(&entry.handle, channel, "leave");
            }
        }
    }
}

impl Handler<AclChanged> for Broker {
    type Result = ();

    fn handle(&mut self, msg: AclChanged, _: &mut Context<Self>) {
        let started = std::time::Instant::now();
        Stats::add(&self.stats.acl_changes, 1);
        Stats::add(&self.stats.acl_keys_changed, msg.idents.len() as u64);
        let table = msg.table;
        let mut dirty: BTreeSet<Channel> = BTreeSet::new();
        let mut revoked = Vec::new();
        // Presence notices go out once every route reflects the change.
        let mut leaves: Vec<(crate::domain::UserId, Arc<super::handle::SessionHandle>, Channel)> = Vec::new();
        let mut lost: Vec<(SessionId, Channel)> = Vec::new();
        let mut moved: Vec<(Arc<super::handle::SessionHandle>, Channel)> = Vec::new();
        let affected = msg.idents.iter().filter_map(|i| self.by_ident.get(i)).flatten();
        for id in affected {
            let Some(entry) = self.sessions.get(id) else {
                continue;
            };
            let old = entry.handle.acl.load_full();
            let Some(new) = table.get(&entry.handle.ident) else {
                revoked.push((*id, false));
                continue;
            };
            if old.as_ref().is_some_and(|o| o.secret != new.secret) {
                revoked.push((*id, true));
                continue;
            }
            entry.handle.acl.store(Some(Arc::clone(new)));
            for ch in &entry.channels {
                let before = old.as_deref().and_then(|o| o.sources(ch.as_str()));
                match new.sources(ch.as_str()) {
                    None => lost.push((*id, ch.clone())),
                    Some(after) if Some(after) != before => {
                        moved.push((Arc::clone(&entry.handle), ch.clone()));
                        dirty.insert(ch.clone());
                    }
                    Some(_) => {}
                }
            }
        }
        for (handle, channel) in moved {
            let acl = handle.acl.load_full();
            if let (Some(editor), Some(sources)) = (
                self.channels.get_mut(&channel),
                acl.as_ref().and_then(|a| a.sources(channel.as_str())),
            ) {
                editor.place(&handle, sources);
            }
        }
        for (id, channel) in lost {
            self.forget(id, &channel);
            if let Some(e) = self.sessions.get(&id) {
                if let Some(owner) = e.handle.acl.load().as_ref().map(|a| a.owner) {
                    leaves.push((owner, Arc::clone(&e.handle), channel.clone()));
                }
                Stats::add(&self.stats.access_lost, 1);
                tracing::info!(ident = %e.handle.ident, %channel, "subscription lost its right");
                e.handle.outbox.refuse(&Refusal::AccessLost {
                    channel: channel.clone(),
                });
            }
            dirty.insert(channel);
        }
        for (id, rotated) in revoked {
            if let Some(e) = self.detach(id) {
                if self.usage_sink.is_some() {
                    self.collect(&e.handle);
                }
                tracing::info!(ident = %e.handle.ident, peer = %e.handle.peer, rotated, "key revoked or its secret rotated: closing session");
                if let Some(owner) = e.handle.acl.load().as_ref().map(|a| a.owner) {
                    leaves.extend(
                        e.channels
                            .iter()
                            .map(|c| (owner, Arc::clone(&e.handle), c.clone())),
                    );
                }
                e.handle.acl.store(None);
                let ident = e.handle.ident.clone();
                e.handle.outbox.refuse(&if rotated {
                    Refusal::SecretRotated { ident }
                } else {
                    Refusal::KeyRevoked { ident }
                });
                dirty.extend(e.channels);
            }
        }
        for ch in &dirty {
            self.publish_route(ch);
        }
        for (owner, handle, channel) in leaves {
            self.announce_as(owner, &handle, &channel, "leave");
        }
        self.stats.acl_apply_latency.observe(started.elapsed());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(n: i64, at: i64) -> KeyUsage {
        KeyUsage {
            messages_published: n,
            bytes_published: 10 * n,
            messages_received: 2 * n,
            bytes_received: 20 * n,
            last_seen_at: Some(at),
            last_peer: Some(format!("10.0.0.{at}:1")),
            slow_cuts: n,
        }
    }

    #[test]
    fn counters_a_failed_write_kept_are_merged_with_newer_ones_and_bounded() {
        let stats = Stats::default();
        let pending = parking_lot::Mutex::new(HashMap::new());
        let k = Ident::new("k").unwrap();
        // Newer counters arrived while the write failed; the failed batch goes back in.
        pending.lock().insert(k.clone(), usage(3, 9));
        keep_unwritten(&pending, vec![(k.clone(), usage(5, 7))], &stats);
        let got = pending.lock()[&k].clone();
        assert_eq!(got.messages_published, 8);
        assert_eq!(got.bytes_received, 160);
        assert_eq!(got.last_seen_at, Some(9), "the later use is kept");
        assert_eq!(got.last_peer.as_deref(), Some("10.0.0.9:1"));
        // Past the bound, what does not fit is counted, not kept.
        let many: Vec<_> = (0..MAX_PENDING_USAGE_KEYS + 10)
            .map(|i| (Ident::new(&format!("x{i}")).unwrap(), usage(1, 1)))
            .collect();
        keep_unwritten(&pending, many, &stats);
        assert_eq!(pending.lock().len(), MAX_PENDING_USAGE_KEYS);
        assert_eq!(stats.usage_lost.load(std::sync::atomic::Ordering::Relaxed), 11);
    }
}
