//! The SocialGraph actor: owns the live social graph and the key table derived from it,
//! and keeps both current.
//!
//! Every change, made by this process, by the CLI or by another node, lands in the store's
//! change log; the actor reads the log after the version it read (on each operation of its
//! own, and on PostgreSQL when the log's NOTIFY arrives, on SQLite every `acl_poll_ms`),
//! applies the deltas to its [`LiveGraph`] off the actor's thread (only the keys whose
//! sources can move are re-derived), stores the new table where sessions authenticate, and
//! tells the Broker exactly which keys changed. Changes read from the log are absorbed into
//! the graph whole and their keys derived [`APPLY_SLICE`] at a time: between two slices an
//! operation of this process runs, and its own changes go live ahead of what is owed and of
//! what others logged just before it (see `apply_own`), so a small change never waits for a
//! big one. An operation answers only after the Broker has brought its live routes in line:
//! when the website says "revoked", a message published next is not delivered. The version
//! up to which everything is live is recorded in the store so that the CLI, which writes
//! beside a running server, can wait until its change is live: it moves only once the last
//! slice is. A database outage is logged once; the broker keeps serving with the ACLs it has.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use actix::{
    Actor, ActorFutureExt, AsyncContext, Context, Handler, Message, Recipient, ResponseFuture, WrapFuture,
};
use arc_swap::ArcSwap;
use parking_lot::Mutex;

use super::heartbeat::Heartbeat;
use super::ops::SocialError;
use super::propagation::{Propagation, wait_for_nodes};
use crate::domain::acl::{KeyAcl, KeyTable, changed};
use crate::domain::live::{AclChanged, LiveGraph};
use crate::store::listen::ChangeListener;
use crate::store::models::graph::GraphChanges;
use crate::store::{Store, StoreError};
use crate::wire::Ident;

/// Re-read the change log now (after a change made in this process), not at the next poll.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Refresh;

/// A social operation to run in this process (the website's path): it runs on a blocking
/// thread, and it answers once its effect on ACLs is live on the broker's connections.
pub struct Apply<T>(pub Op<T>);

/// An operation for [`Apply`].
pub type Op<T> = Box<dyn FnOnce(&Store) -> Result<T, SocialError> + Send>;

impl<T: Send + 'static> Message for Apply<T> {
    type Result = Result<(T, Propagation), SocialError>;
}

/// A read of the live graph (where a user's data goes), once what the change log holds is
/// applied: it runs on a blocking thread while the actor goes on with other messages, and
/// waits only while a change is being applied.
pub struct ReadLive<T>(pub Box<dyn FnOnce(&LiveGraph) -> T + Send>);

impl<T: Send + 'static> Message for ReadLive<T> {
    type Result = Result<T, SocialError>;
}

/// How often a running server says it is alive in `acl_applied` (the CLI waits only for
/// servers seen within [`crate::store::models::applied::LIVE_WITHIN`]).
pub const HEARTBEAT: Duration = Duration::from_secs(2);

/// How long change-log rows every live server applied are kept (a server that falls
/// further behind reloads the whole graph).
const KEEP_CHANGES_SECS: i64 = 3600;

/// How often the change log is read anyway when PostgreSQL notifies us of changes: also
/// how often a server confirms it is current (see `graph_stale_after_secs`).
const LISTENING_POLL: Duration = Duration::from_secs(1);

/// How often a server checks whether it has gone too long without reading the change log.
const STALE_CHECK: Duration = Duration::from_millis(250);

/// How often old change-log rows are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(60);
/// How often the database's planner statistics are checked (see [`crate::store::Store::optimize`]).
const OPTIMIZE_EVERY: Duration = Duration::from_secs(3600);

/// How long one slice of a big change's keys is derived before the actor turns to other
/// messages (see [`LiveGraph::absorb`]): what a small change made meanwhile waits at most.
pub const APPLY_SLICE: Duration = Duration::from_millis(10);

/// Changes applied: the table now and the keys that changed in it.
struct Derived {
    /// The change log was read and absorbed up to here (`None`: not read).
    read: Option<i64>,
    /// Keys of an absorbed change are still to be derived: what was read is not all live.
    owing: bool,
    table: Arc<KeyTable>,
    idents: Vec<Ident>,
}

impl Derived {
    fn of(live: &LiveGraph, read: Option<i64>, idents: Vec<Ident>) -> Self {
        Self {
            read,
            owing: live.owing(),
            table: Arc::new(live.table().clone()),
            idents,
        }
    }
}

/// Applies what the change log holds past `read` to `live`: blocking. With a `slice`, a
/// change is absorbed whole and its keys derived for that long, the rest left owed (see
/// [`LiveGraph::absorb`]); without, everything read is derived (an operation's own
/// changes, which its caller waits for). `None` when nothing changed and nothing is owed.
fn catch_up(
    store: &Store,
    live: &Mutex<LiveGraph>,
    read: i64,
    slice: Option<Duration>,
) -> Result<Option<Derived>, StoreError> {
    let mut live = live.lock();
    let owed = live.owing();
    let mut version = read;
    let mut changes: BTreeMap<Ident, Option<Arc<KeyAcl>>> = BTreeMap::new();
    loop {
        match store.graph_changes_since(version)? {
            GraphChanges::Current => break,
            GraphChanges::Deltas { version: v, deltas } => {
                if slice.is_some() {
                    live.absorb(deltas);
                } else {
                    changes.extend(live.apply(deltas));
                }
                version = v;
            }
            GraphChanges::Reload => {
                tracing::warn!(
                    applied = version,
                    "the change log no longer reaches back this far: reloading the graph"
                );
                let (v, graph) = store.load_graph_versioned()?;
                // Nothing is owed in a graph read whole.
                let fresh = LiveGraph::new(graph, live.mode());
                for i in changed(live.table(), fresh.table()) {
                    let acl = fresh.table().get(&i).cloned();
                    changes.insert(i, acl);
                }
                *live = fresh;
                version = v;
            }
        }
    }
    if let Some(slice) = slice
        && live.owing()
    {
        changes.extend(live.derive_owed(Some(Instant::now() + slice)));
    }
    if version == read && !owed {
        return Ok(None);
    }
    Ok(Some(Derived::of(
        &live,
        Some(version),
        changes.into_keys().collect(),
    )))
}

/// Derives the next slice of what is owed: blocking. `None` when nothing is.
fn derive_owed(live: &Mutex<LiveGraph>, slice: Duration) -> Option<Derived> {
    let mut live = live.lock();
    if !live.owing() {
        return None;
    }
    let changes = live.derive_owed(Some(Instant::now() + slice));
    let idents = changes.into_iter().map(|(i, _)| i).collect();
    Some(Derived::of(&live, None, idents))
}

/// Applies only the changes logged in `(before, own]`, an operation of this process, ahead
/// of those in `(seen, before]` that others (the CLI, another node) logged just before it
/// and that are not applied yet: a small change is not held up behind a big one that
/// happened to commit first. Safe because every delta carries its entity as it is now, so
/// any subset of the log applied gives a graph of current entities, and what is left out
/// is only changes nobody has been told are live. The log is read from where it was next
/// (these rows again, a no-op as they are unchanged), and whoever waits for the earlier
/// changes hears only once they are live. `None` when the log no longer reaches back (the
/// caller catches up whole).
fn apply_own(
    store: &Store,
    live: &Mutex<LiveGraph>,
    (before, own): (i64, i64),
) -> Result<Option<Derived>, StoreError> {
    let mut live = live.lock();
    let mut from = before;
    let mut changes: BTreeMap<Ident, Option<Arc<KeyAcl>>> = BTreeMap::new();
    loop {
        match store.graph_changes_between(from, own)? {
            GraphChanges::Current => break,
            GraphChanges::Deltas { version, deltas } => {
                changes.extend(live.apply(deltas));
                from = version;
            }
            GraphChanges::Reload => return Ok(None),
        }
    }
    Ok(Some(Derived::of(&live, None, changes.into_keys().collect())))
}

/// Turns `stats.graph_stale` on (logged) once the change log has gone unread for longer
/// than `after`: a read that hangs on a silent partition holds up the actor, not this.
async fn watch_staleness(stats: Arc<crate::broker::stats::Stats>, after: Duration) {
    let mut tick = tokio::time::interval(STALE_CHECK);
    loop {
        tick.tick().await;
        if let Some(lag) = stats.graph_feed_lag_secs()
            && lag > after.as_secs_f64()
            && !stats.graph_stale.swap(true, Ordering::Relaxed)
        {
            tracing::warn!(
                lag_secs = lag,
                "the graph change log has not been read for {lag:.1} s: failing closed, \
                 delivering only each user's own data until it has caught up"
            );
        }
    }
}

/// See the module doc.
pub struct SocialGraph {
    store: Store,
    live: Arc<Mutex<LiveGraph>>,
    /// Every change up to here is live (recorded for the CLI, said by the heartbeat).
    version: i64,
    /// The change log is absorbed into `live` up to here; keys of the changes past
    /// `version` may still be owed.
    read: i64,
    /// See [`APPLY_SLICE`].
    slice: Duration,
    /// A [`Continue`] is queued.
    continuing: bool,
    keys: Arc<ArcSwap<KeyTable>>,
    broker: Recipient<AclChanged>,
    every: Duration,
    node: String,
    failing: bool,
    /// PostgreSQL's change notices (none on SQLite); held so the thread runs while we do.
    listener: Option<ChangeListener>,
    /// In a cluster, how long an operation of this node waits for every other live node
    /// to apply its change before answering.
    cluster_wait: Option<Duration>,
    /// Says this server is alive, at the version the broker applied (from started on).
    heartbeat: Option<Heartbeat>,
    /// Where a successful read of the change log is recorded (`graph_feed_lag_seconds`).
    stats: Option<Arc<crate::broker::stats::Stats>>,
    /// Fail closed after this long without a read of the change log (PostgreSQL only).
    stale_after: Option<Duration>,
    /// The task that watches for it.
    stale_watch: Option<tokio::task::JoinHandle<()>>,
}

impl SocialGraph {
    /// Starts from `live` at `version`, whose table is already stored in `keys`.
    pub fn new(
        store: Store,
        live: LiveGraph,
        version: i64,
        keys: Arc<ArcSwap<KeyTable>>,
        broker: Recipient<AclChanged>,
        every: Duration,
    ) -> Self {
        let mut id = [0u8; 6];
        let _ = getrandom::getrandom(&mut id);
        Self {
            store,
            live: Arc::new(Mutex::new(live)),
            version,
            read: version,
            slice: APPLY_SLICE,
            continuing: false,
            keys,
            broker,
            every,
            node: format!("{}-{}", std::process::id(), hex::encode(id)),
            failing: false,
            listener: None,
            cluster_wait: None,
            heartbeat: None,
            stats: None,
            stale_after: None,
            stale_watch: None,
        }
    }

    /// Fails closed (delivers only each user's own data, see `Stats::graph_stale`) once the
    /// change log has gone unread for longer than `after`, until it is read again; `None`:
    /// never. Needs [`Self::with_stats`].
    pub fn with_stale_after(mut self, after: Option<Duration>) -> Self {
        self.stale_after = after;
        self
    }

    /// Records each successful read of the change log in `stats` (for
    /// `graph_feed_lag_seconds`).
    pub fn with_stats(mut self, stats: Arc<crate::broker::stats::Stats>) -> Self {
        self.stats = Some(stats);
        self
    }

    /// The name this server reports under in `acl_applied`: a cluster node's `node_id`, so
    /// logs, the database and the backplane name a node alike.
    pub fn with_node(mut self, node: String) -> Self {
        self.node = node;
        self
    }

    /// Derives a big change's keys `slice` at a time (see [`APPLY_SLICE`]).
    pub fn with_slice(mut self, slice: Duration) -> Self {
        self.slice = slice;
        self
    }

    /// In a cluster: operations answer once every live node applied them (at most `wait`,
    /// then they answer anyway and the log says how many nodes were behind).
    pub fn with_cluster_wait(mut self, wait: Option<Duration>) -> Self {
        self.cluster_wait = wait;
        self
    }

    /// Reads the change log past what was read and absorbs it, then derives a slice of
    /// what is owed, on a blocking thread; `None` when nothing changed.
    fn load(&self) -> impl std::future::Future<Output = Result<Option<Derived>, StoreError>> + 'static {
        let (store, live, read) = (self.store.clone(), Arc::clone(&self.live), self.read);
        let slice = Some(self.slice);
        async move {
            tokio::task::spawn_blocking(move || catch_up(&store, &live, read, slice))
                .await
                .map_err(|e| StoreError::NotFound(format!("graph task failed: {e}")))?
        }
    }

    /// Makes `d` live: the table sessions authenticate against, then the Broker's routes
    /// (awaited), then the record the CLI waits on (once nothing is owed); what is owed
    /// goes on in a [`Continue`].
    fn publish(
        &mut self,
        d: Derived,
        ctx: &mut Context<Self>,
    ) -> impl std::future::Future<Output = ()> + 'static {
        // A slow read of an older graph must not undo a newer one.
        let stale = d.read.is_some_and(|r| r < self.read);
        if stale {
            // Cannot happen while changes run one at a time; the table is the live graph's.
            tracing::warn!(read = d.read, applied = self.read, "an older change arrived late");
        }
        let broker = self.broker.clone();
        let notice = if stale || d.idents.is_empty() {
            None
        } else {
            tracing::info!(
                read = self.read.max(d.read.unwrap_or(0)),
                owing = d.owing,
                keys = d.table.len(),
                changed = d.idents.len(),
                "ACLs changed: applying"
            );
            self.keys.store(Arc::clone(&d.table));
            Some(AclChanged {
                table: d.table,
                idents: d.idents,
            })
        };
        let was = self.version;
        if !stale {
            self.read = self.read.max(d.read.unwrap_or(self.read));
            // Everything absorbed is derived: all of it is live once the broker has it.
            if !d.owing {
                self.version = self.read;
            }
        }
        // A slice that leaves keys owed moves no version: nothing to record.
        let record = self.version > was;
        if d.owing && !std::mem::replace(&mut self.continuing, true) {
            ctx.notify(Continue);
        }
        let (store, node, version) = (self.store.clone(), self.node.clone(), self.version);
        let alive = self.heartbeat.as_ref().map(Heartbeat::applied);
        async move {
            if let Some(msg) = notice
                && let Err(e) = broker.send(msg).await
            {
                tracing::error!("the broker did not take the ACL change: {e}");
            }
            if let Some(a) = alive {
                a.fetch_max(version, Ordering::AcqRel);
            }
            if !record {
                return;
            }
            let _ = tokio::task::spawn_blocking(move || {
                if let Err(e) = store.record_applied(&node, version) {
                    tracing::debug!("cannot record the applied ACL version: {e}");
                }
            })
            .await;
        }
    }

    fn fail(&mut self, e: &StoreError) {
        if !self.failing {
            tracing::warn!("cannot read the social graph, serving with the ACLs loaded: {e}");
        }
        self.failing = true;
    }

    /// The change log was read and what it held is live: the node's ACLs are current as
    /// of now, and a server failing closed delivers between users again.
    fn recovered(&mut self) {
        if let Some(s) = &self.stats {
            s.graph_feed_read();
            if s.graph_stale.swap(false, Ordering::Relaxed) {
                tracing::info!("caught up with the graph change log: deliveries between users resume");
            }
        }
        if std::mem::take(&mut self.failing) {
            tracing::info!("database reachable again");
        }
    }

    /// One poll: read, absorb, derive a slice, apply; the actor handles nothing else
    /// meanwhile, so changes are absorbed one at a time and in order.
    fn refresh(&mut self, ctx: &mut Context<Self>) {
        self.refresh_then(ctx, |_| {});
    }

    /// [`Self::refresh`], then `after` (still within the actor's exclusive section).
    fn refresh_then(&mut self, ctx: &mut Context<Self>, after: impl FnOnce(&mut Self) + 'static) {
        let load = self.load();
        ctx.wait(load.into_actor(self).then(|res, act, ctx| {
            let (read, next): (bool, std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>) = match res {
                Ok(Some(d)) => (true, Box::pin(act.publish(d, ctx))),
                Ok(None) => (true, Box::pin(async {})),
                Err(e) => {
                    act.fail(&e);
                    (false, Box::pin(async {}))
                }
            };
            // Caught up once what was read is live.
            next.into_actor(act).map(move |(), act, _| {
                if read {
                    act.recovered();
                }
                after(act);
            })
        }));
    }

    /// Planner statistics taken anew where tables changed, off the actor's thread.
    fn optimize(&self) {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || {
            let t = std::time::Instant::now();
            match store.optimize() {
                Ok(tables) => tracing::debug!(
                    ms = t.elapsed().as_millis(),
                    analyzed = ?tables,
                    "planner statistics checked"
                ),
                Err(e) => tracing::debug!("cannot check the planner statistics: {e}"),
            }
        });
    }

    fn prune(&self) {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || match store.prune_graph_changes(KEEP_CHANGES_SECS) {
            Ok(0) => {}
            Ok(n) => tracing::debug!(rows = n, "pruned the change log"),
            Err(e) => tracing::debug!("cannot prune the change log: {e}"),
        });
    }
}

impl Actor for SocialGraph {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // The graph was read whole just before the actor started.
        self.recovered();
        if let (Some(after), Some(stats)) = (self.stale_after, self.stats.clone()) {
            self.stale_watch = Some(actix::spawn(watch_staleness(stats, after)));
        }
        self.heartbeat = Some(Heartbeat::start(
            self.store.clone(),
            self.node.clone(),
            self.version,
            HEARTBEAT,
        ));
        let addr = ctx.address();
        self.listener = self.store.listen_changes(move || addr.do_send(Refresh));
        // Notified: the timer is only a safety net (a notice lost with a dying connection).
        let every = if self.listener.is_some() {
            self.every.max(LISTENING_POLL)
        } else {
            self.every
        };
        ctx.run_interval(every, |act, ctx| act.refresh(ctx));
        ctx.run_interval(PRUNE_EVERY, |act, _| act.prune());
        self.optimize();
        ctx.run_interval(OPTIMIZE_EVERY, |act, _| act.optimize());
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        if let Some(w) = self.stale_watch.take() {
            w.abort();
        }
        // Gone: the CLI stops waiting for this server at once (the heartbeat stopped
        // first, so that it cannot write the record again).
        drop(self.heartbeat.take());
        if let Err(e) = self.store.forget_applied(&self.node) {
            tracing::debug!("cannot clear the applied ACL version: {e}");
        }
    }
}

impl Handler<Refresh> for SocialGraph {
    type Result = ();

    fn handle(&mut self, _: Refresh, ctx: &mut Context<Self>) {
        self.refresh(ctx);
    }
}

/// Derive the next slice of what is owed (queued by [`SocialGraph::publish`] behind any
/// message already waiting, which goes first).
#[derive(Message)]
#[rtype(result = "()")]
struct Continue;

impl Handler<Continue> for SocialGraph {
    type Result = ();

    fn handle(&mut self, _: Continue, ctx: &mut Context<Self>) {
        self.continuing = false;
        let (live, slice) = (Arc::clone(&self.live), self.slice);
        let work = async move {
            tokio::task::spawn_blocking(move || derive_owed(&live, slice))
                .await
                .unwrap_or_else(|e| {
                    tracing::error!("the derivation of owed keys failed: {e}");
                    None
                })
        };
        ctx.wait(work.into_actor(self).then(|d, act, ctx| {
            let next: std::pin::Pin<Box<dyn std::future::Future<Output = ()>>> = match d {
                Some(d) => Box::pin(act.publish(d, ctx)),
                None => Box::pin(async {}),
            };
            next.into_actor(act)
        }));
    }
}

impl<T: Send + 'static> Handler<ReadLive<T>> for SocialGraph {
    type Result = ResponseFuture<Result<T, SocialError>>;

    fn handle(&mut self, ReadLive(read): ReadLive<T>, ctx: &mut Context<Self>) -> Self::Result {
        // What was committed before the read (by the CLI, another node) is applied first;
        // the read starts once that is done and runs beside whatever comes next.
        let (done, answer) = tokio::sync::oneshot::channel();
        self.refresh_then(ctx, move |act| {
            let live = Arc::clone(&act.live);
            tokio::task::spawn_blocking(move || {
                let _ = done.send(read(&live.lock()));
            });
        });
        Box::pin(async move {
            answer
                .await
                .map_err(|_| SocialError::Internal("the read of the live graph stopped".into()))
        })
    }
}

impl<T: Send + 'static> Handler<Apply<T>> for SocialGraph {
    type Result = ResponseFuture<Result<(T, Propagation), SocialError>>;

    fn handle(&mut self, Apply(op): Apply<T>, ctx: &mut Context<Self>) -> Self::Result {
        let (store, live, read) = (self.store.clone(), Arc::clone(&self.live), self.read);
        // The operation and the read of the changes it made run in one blocking task; the
        // new ACLs are live on this node's broker before the caller hears back. `wait`: no
        // other change (or poll) runs until this one is live here.
        let run = async move {
            tokio::task::spawn_blocking(move || {
                // What others logged before the operation: when that is not applied yet,
                // the operation's own changes go first (see `apply_own`).
                let before = store.acl_version().ok();
                let res = op(&store);
                // The change's own id (or a later one): what the other nodes must reach. A
                // refused operation changed nothing and waits for nobody; when the id cannot
                // be read, the newest change read below stands in for it.
                let own = res.is_ok().then(|| store.acl_version().unwrap_or(i64::MAX));
                let ahead = match (before, own) {
                    (Some(b), Some(o)) if b > read && o > b && o != i64::MAX => Some((b, o)),
                    _ => None,
                };
                let first = ahead.map(|range| apply_own(&store, &live, range));
                let (derived, partial) = match first {
                    Some(Ok(Some(d))) => (Ok(Some(d)), true),
                    Some(Err(e)) => (Err(e), false),
                    Some(Ok(None)) | None => (catch_up(&store, &live, read, None), false),
                };
                (res, own, derived, partial)
            })
            .await
            .unwrap_or_else(|e| {
                (
                    Err(SocialError::Internal(e.to_string())),
                    None,
                    Err(StoreError::NotFound(e.to_string())),
                    false,
                )
            })
        };
        let (done, answer) = tokio::sync::oneshot::channel();
        ctx.wait(
            run.into_actor(self)
                .then(move |(res, own, derived, partial), act, ctx| {
                    let read = derived.is_ok();
                    let (live_here, reached): (std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>, _) =
                        match derived {
                            // Its own changes are live here; the others' follow at once.
                            Ok(Some(d)) if partial => (Box::pin(act.publish(d, ctx)), own),
                            Ok(Some(d)) => {
                                let reached = own.map(|o| o.min(d.read.unwrap_or(o)));
                                (Box::pin(act.publish(d, ctx)), reached)
                            }
                            Ok(None) => (Box::pin(async {}), None),
                            Err(e) => {
                                // The poll retries (and logs once) while the database is failing.
                                act.fail(&e);
                                (Box::pin(async {}), None)
                            }
                        };
                    live_here.into_actor(act).map(move |(), act, ctx| {
                        // A partial apply is not a read of the whole log: not yet caught up.
                        if read && !partial {
                            act.recovered();
                        }
                        let _ = done.send((res, reached));
                        if partial {
                            ctx.notify(Refresh);
                        }
                    })
                }),
        );
        // The other nodes are waited for outside the actor's exclusive section, for this
        // change's id: a node that must first apply a change made meanwhile elsewhere (or
        // this node's own poll) is never waited for behind this answer.
        let others = self.cluster_wait.map(|limit| (self.store.clone(), limit));
        let node = self.node.clone();
        Box::pin(async move {
            let (res, reached) = answer
                .await
                .map_err(|_| SocialError::Internal("the social graph stopped".into()))?;
            let value = res?;
            let live = match (reached, others) {
                (Some(version), Some((store, limit))) => wait_for_nodes(store, &node, version, limit).await,
                _ => Propagation::here(&node),
            };
            Ok((value, live))
        })
    }
}

#[cfg(test)]
mod tests;
