//! The cluster backplane: several nodes serving one community, sharing PostgreSQL for state
//! and a NATS server for traffic.
//!
//! Each publish a node's client makes is relayed once to NATS, as the client's frame bytes,
//! on the channel's subject ([`subject`]: `<nats_prefix>.<escaped channel>`), with the
//! node's name and the publishing key's owner in headers. A node subscribes to the subject of a channel only once one of its own
//! clients subscribes there (and drops it some time after the last left), and hands what
//! arrives to its router with that owner as the source: remote messages reach exactly the
//! sessions a local publish by the same user would, by the same ACL. Graph changes need
//! nothing of NATS: every node reads them from the shared change log (PostgreSQL notifies).
//!
//! By default the traffic between nodes is carried on a JetStream stream ([`jetstream`]):
//! batched per channel, confirmed before it counts as relayed, read back through ordered
//! consumers, so a NATS restart or a partition loses nothing. On core NATS
//! (`nats_jetstream = false`) each frame is its own NATS message, as described below, and
//! what is in flight during an outage is lost.
//!
//! Faults stay local: the bounded queue to NATS is one more receiver of each publish under
//! the slow-consumer policy (backpressure: the publisher waits for room up to
//! `stall_timeout`; otherwise, or after that, the publish stays on its node, counted as
//! `relay_dropped`; local subscribers have it either way); a lost NATS connection is logged
//! and counted, and the client reconnects and re-subscribes by itself; a slow local
//! subscriber of remote traffic holds up only that channel's remote delivery, as long as the
//! slow-consumer policy lets it (what NATS delivers meanwhile past the client's buffer is
//! counted as `remote_dropped`).

mod batch;
pub mod jetstream;
pub mod link;
mod spool;
pub mod subject;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
use std::time::Duration;

use async_nats::{Client, ConnectOptions, Event, HeaderMap, ServerAddr};
use bytes::Bytes;
use futures_util::StreamExt;
use parking_lot::Mutex;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::broker::handle::SessionHandle;
use crate::broker::remote::{Remote, RemoteCounters, Wanting};
use crate::broker::router::Router;
use crate::domain::UserId;
use crate::wire::names::NameCache;
use crate::wire::{Channel, Frame};

/// Header naming the node a relayed message comes from (a node drops its own).
pub const NODE_HEADER: &str = "Hpf-Node";
/// Header carrying the publishing key's owner (a user id of the shared database).
pub const SOURCE_HEADER: &str = "Hpf-Source";

/// Bytes of local publishes waiting for NATS (an outage, a slow NATS server): past them a
/// publish is not relayed (counted as `relay_dropped`); local delivery is not affected.
pub const RELAY_QUEUE_BYTES: usize = 64 << 20;
/// Local publishes waiting for NATS, in frames (the same bound, for small frames).
pub const RELAY_QUEUE_FRAMES: usize = 65_536;
/// How long a new subscriber waits for its node's subscription to the channel's subject to
/// be in place on the NATS server (it is subscribed locally at once either way).
pub const WANT_WAIT: Duration = Duration::from_secs(2);
/// Channels whose subject the relay task keeps escaped (then it starts over).
const SUBJECT_CACHE: usize = 4096;
/// How often subjects without local subscribers are given up.
pub const SWEEP_EVERY: Duration = Duration::from_secs(30);

/// Why the backplane could not start.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// `nats_url` is not a NATS address.
    #[error("nats_url {url:?}: {reason}")]
    Url {
        /// The URL, its password masked.
        url: String,
        /// Why.
        reason: String,
    },
    /// The client could not be set up.
    #[error("cannot start the NATS client: {0}")]
    Connect(String),
}

/// What the backplane did, updated where it happens; read as [`RemoteCounters`].
#[derive(Debug, Default)]
struct ClusterStats {
    /// Local publishes handed to NATS.
    pub relayed: AtomicU64,
    /// Local publishes not relayed (queue full, NATS refused): other nodes miss them.
    pub relay_dropped: AtomicU64,
    /// Local publishes that waited for room in the relay queue (backpressure).
    pub relay_waits: AtomicU64,
    /// Slow-consumer events of the NATS client: messages from other nodes it dropped
    /// because this node did not take them fast enough.
    pub remote_dropped: AtomicU64,
    /// Messages received from other nodes.
    pub received: AtomicU64,
    /// Received messages thrown away: no or bad headers, not a publish of their channel.
    pub rejected: AtomicU64,
    /// Times the NATS connection was lost.
    pub disconnects: AtomicU64,
    /// Whether NATS is connected now.
    pub connected: AtomicBool,
    /// Set when a publisher waited the whole stall timeout for room in the relay queue (NATS
    /// gone, partitioned or too slow); while set, relay copies that find the queue full are
    /// dropped and counted at once instead of holding up publishers (and so this node's
    /// own subscribers). Cleared when the queue has drained to half.
    pub relay_stalled: AtomicBool,
    /// Channel subjects this node is subscribed to.
    pub subjects: AtomicUsize,
    /// Relayed batches the JetStream stream did not confirm at first (sent again).
    pub relay_retries: AtomicU64,
    /// Frames from other nodes that never came (a gap in a sender's run: an outage longer
    /// than the stream keeps messages).
    pub remote_lost: AtomicU64,
    /// Frames from other nodes received twice and delivered once.
    pub remote_duplicates: AtomicU64,
    /// Channel readers started again because the stream held messages they had not seen.
    pub reader_restarts: AtomicU64,
}

/// What a channel's reader reuses from one remote frame to the next.
#[derive(Default)]
pub(crate) struct Scratch {
    /// Receivers whose outbox was full (waited for under backpressure).
    stalled: Vec<Arc<SessionHandle>>,
    /// The last ident and channel parsed: a run of one key's frames allocates nothing.
    names: NameCache,
}

/// This node's subscription to one channel's subject.
struct Interest {
    /// True once the NATS server has the subscription.
    ready: watch::Receiver<bool>,
    /// Receives and delivers; aborting it drops the subscription.
    task: tokio::task::JoinHandle<()>,
}

/// One node's end of the backplane (see the module doc).
pub struct Backplane {
    /// Itself, for the tasks `want` starts.
    me: std::sync::Weak<Backplane>,
    node: String,
    /// Subjects are `<prefix>.<escaped channel>`.
    prefix: String,
    client: Client,
    /// Local publishes waiting for the relay task.
    spool: spool::Spool,
    queued_bytes: AtomicUsize,
    wanted: Mutex<HashMap<Channel, Interest>>,
    router: Arc<Router>,
    stall: Duration,
    /// What it did.
    stats: Arc<ClusterStats>,
    /// Set when the backplane is carried on JetStream (`nats_jetstream`).
    js: Option<async_nats::jetstream::Context>,
    /// True once the JetStream stream exists (never, on core NATS).
    stream_ready: watch::Sender<bool>,
}

/// A node name for `node_id = ""`: the process id and random bytes.
pub fn made_up_node_id() -> String {
    let mut id = [0u8; 4];
    let _ = getrandom::getrandom(&mut id);
    format!("node-{}-{}", std::process::id(), hex::encode(id))
}

impl Backplane {
    /// Starts the NATS client (connecting in the background: a node starts and serves its
    /// own clients while NATS is away) and the relay and sweep tasks, which end with
    /// `shutdown`. Remote messages go to `router`; `stall` bounds a wait for a full outbox.
    /// With `retention`, traffic between nodes is carried on a JetStream stream kept so
    /// ([`jetstream`]); without, on core NATS (lost while NATS is away).
    pub async fn start(
        link: &link::Link,
        prefix: &str,
        node: String,
        router: Arc<Router>,
        stall: Duration,
        retention: Option<jetstream::Retention>,
        shutdown: CancellationToken,
    ) -> Result<Arc<Backplane>, ClusterError> {
        let url = link.url.as_str();
        let addrs = url
            .split(',')
            .map(|u| {
                u.trim().parse::<ServerAddr>().map_err(|e| ClusterError::Url {
                    url: crate::config::mask_url(u.trim()),
                    reason: e.to_string(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let stats = Arc::new(ClusterStats::default());
        let events = Arc::clone(&stats);
        // Named in every connection event (credentials masked), so an operator reading
        // "NATS: …" knows which link and what went wrong.
        let servers: Arc<str> = Arc::from(
            url.split(',')
                .map(|u| crate::config::mask_url(u.trim()))
                .collect::<Vec<_>>()
                .join(","),
        );
        let named = Arc::clone(&servers);
        let options = ConnectOptions::new()
            .name(format!("hpfriends {node}"))
            .no_echo()
            // A silent partition is noticed: three pings unanswered and the client reconnects.
            .ping_interval(link.ping)
            .retry_on_initial_connect()
            .max_reconnects(None)
            // Quick to come back after a blip, never hammering a server that is down.
            .reconnect_delay_callback(|attempts| {
                Duration::from_millis(100u64.saturating_mul(attempts as u64).min(2_000))
            })
            .event_callback(move |event| {
                let (stats, servers) = (Arc::clone(&events), Arc::clone(&named));
                async move { on_event(&stats, &servers, event) }
            });
        let client = link
            .security
            .apply(options)
            .await?
            .connect(addrs)
            .await
            .map_err(|e| ClusterError::Connect(e.to_string()))?;
        let js = retention.map(|_| jetstream::context(client.clone()));
        let plane = Arc::new_cyclic(|me| Backplane {
            me: me.clone(),
            node,
            prefix: prefix.to_owned(),
            client,
            spool: spool::Spool::default(),
            queued_bytes: AtomicUsize::new(0),
            wanted: Mutex::new(HashMap::new()),
            router,
            stall,
            stats,
            js: js.clone(),
            stream_ready: watch::channel(false).0,
        });
        tracing::info!(
            node = %plane.node,
            nats = %servers,
            jetstream = js.is_some(),
            "cluster backplane starting"
        );
        match (js, retention) {
            (Some(js), Some(retention)) => {
                tokio::spawn(jetstream::make_stream(
                    Arc::clone(&plane),
                    js.clone(),
                    retention,
                    shutdown.clone(),
                ));
                tokio::spawn(jetstream::relay(
                    Arc::clone(&plane),
                    js,
                    retention,
                    shutdown.clone(),
                ));
            }
            _ => {
                tokio::spawn(relay(Arc::clone(&plane), shutdown.clone()));
            }
        }
        tokio::spawn(sweep(Arc::downgrade(&plane), shutdown));
        Ok(plane)
    }

    /// Hands a message from another node to this node's subscribers of `channel`.
    async fn deliver(&self, channel: &Channel, msg: async_nats::Message, scratch: &mut Scratch) {
        self.stats.received.fetch_add(1, Relaxed);
        let header = |name: &str| msg.headers.as_ref().and_then(|h| h.get(name)).map(|v| v.as_str());
        if header(NODE_HEADER) == Some(self.node.as_str()) {
            // Our own, should NATS echo it (no_echo asks it not to): never delivered twice.
            return;
        }
        let Some(source) = header(SOURCE_HEADER).and_then(|s| s.parse::<i64>().ok()) else {
            self.stats.rejected.fetch_add(1, Relaxed);
            return;
        };
        self.deliver_frame(channel, UserId(source), &msg.payload, scratch)
            .await;
    }

    /// Hands a batch from the JetStream stream to this node's subscribers of `channel`:
    /// each frame once, in order, the repeats of its run skipped and its gaps counted.
    async fn deliver_batch(
        &self,
        channel: &Channel,
        msg: &async_nats::Message,
        runs: &mut jetstream::Runs,
        scratch: &mut Scratch,
    ) {
        let header = |name: &str| msg.headers.as_ref().and_then(|h| h.get(name)).map(|v| v.as_str());
        if header(NODE_HEADER) == Some(self.node.as_str()) {
            // Our own: the stream hands a node's messages back to it too.
            return;
        }
        let run = header(jetstream::RUN_HEADER);
        let first = header(jetstream::FIRST_HEADER).and_then(|s| s.parse::<u64>().ok());
        let (Some(run), Some(first)) = (run, first) else {
            self.stats.rejected.fetch_add(1, Relaxed);
            return;
        };
        let records: Vec<_> = batch::records(&msg.payload).collect();
        let frames = records.len() as u64;
        let place = runs.place(run, first, frames);
        if place.lost > 0 {
            self.stats.remote_lost.fetch_add(place.lost, Relaxed);
            tracing::warn!(
                %channel,
                lost = place.lost,
                node = header(NODE_HEADER).unwrap_or("?"),
                "messages from another node were lost for good: the link was away longer than \
                 the stream keeps them (nats_retention_secs) or the stream was full"
            );
        }
        self.stats.remote_duplicates.fetch_add(place.skip, Relaxed);
        for record in records
            .into_iter()
            .skip(usize::try_from(place.skip).unwrap_or(usize::MAX))
        {
            self.stats.received.fetch_add(1, Relaxed);
            match record {
                Ok((source, frame)) => self.deliver_frame(channel, source, &frame, scratch).await,
                Err(e) => {
                    tracing::debug!(%channel, "batch from another node: {e}");
                    self.stats.rejected.fetch_add(1, Relaxed);
                }
            }
        }
    }

    /// Hands one frame from another node to this node's subscribers of `channel`, when it
    /// is a well-formed publish on that very channel.
    async fn deliver_frame(&self, channel: &Channel, source: UserId, frame: &Bytes, scratch: &mut Scratch) {
        match Frame::parse_with(frame, &mut scratch.names) {
            Ok(Frame::Publish { channel: c, .. }) if c == *channel => {}
            _ => {
                self.stats.rejected.fetch_add(1, Relaxed);
                return;
            }
        }
        let stalled = &mut scratch.stalled;
        self.router.publish(source, channel.as_str(), frame, stalled);
        if !stalled.is_empty() {
            self.router
                .deliver_waiting(source, channel.as_str(), frame, stalled, self.stall)
                .await;
        }
    }

    /// Frees `bytes` of the relay queue's bound once they are on their way (core NATS) or
    /// stored (JetStream); lifts the stall once the queue has drained to half.
    fn sent(&self, bytes: usize, queued_frames: usize) {
        let left = self.queued_bytes.fetch_sub(bytes, Relaxed);
        if left < RELAY_QUEUE_BYTES / 2
            && queued_frames < RELAY_QUEUE_FRAMES / 2
            && self.stats.relay_stalled.swap(false, Relaxed)
        {
            tracing::info!("NATS relay queue drained: copies for other nodes flow again");
        }
    }
}

fn on_event(stats: &ClusterStats, servers: &str, event: Event) {
    match event {
        Event::Connected => {
            stats.connected.store(true, Relaxed);
            tracing::info!("NATS connected: relaying to and from the other nodes");
        }
        Event::Disconnected => {
            stats.connected.store(false, Relaxed);
            stats.disconnects.fetch_add(1, Relaxed);
            tracing::warn!(
                nats = servers,
                "NATS connection lost: local clients are served as before; other nodes' traffic \
                 resumes on reconnect"
            );
        }
        Event::SlowConsumer(_) => {
            // Rare in the log (once a burst), counted always.
            if stats.remote_dropped.fetch_add(1, Relaxed).is_multiple_of(1000) {
                tracing::warn!(
                    "NATS: messages from other nodes dropped: this node did not read them fast enough"
                );
            }
        }
        // A clean stop of the node closes the client: nothing to warn of.
        Event::Closed => tracing::info!("NATS: connection closed"),
        other => tracing::warn!(nats = servers, "NATS: {other}"),
    }
}

impl Remote for Backplane {
    fn relay(&self, source: UserId, channel: &Channel, frame: &Bytes) -> bool {
        let len = frame.len();
        if self.queued_bytes.fetch_add(len, Relaxed) + len > RELAY_QUEUE_BYTES {
            self.queued_bytes.fetch_sub(len, Relaxed);
            return false;
        }
        // A copy into the spool, not a slice of the publisher's read buffer: the spool
        // (and the NATS client's queue after it) may hold it a while, and a slice would
        // keep the whole read buffer alive behind the byte bound's back (see
        // `broker::outbox::Compact`).
        if !self
            .spool
            .push(channel.as_str(), source, frame, RELAY_QUEUE_FRAMES)
        {
            self.queued_bytes.fetch_sub(len, Relaxed);
            return false;
        }
        true
    }

    fn relay_waiting(&self, source: UserId, channel: Channel, frame: Bytes, limit: Duration) -> Wanting {
        let Some(me) = self.me.upgrade() else {
            return Box::pin(async {});
        };
        Box::pin(async move {
            // Local delivery never waits on NATS for long: without a connection, or once
            // one wait ran out, a copy that finds the queue full is dropped (counted).
            if !me.stats.connected.load(Relaxed) || me.stats.relay_stalled.load(Relaxed) {
                me.stats.relay_dropped.fetch_add(1, Relaxed);
                return;
            }
            me.stats.relay_waits.fetch_add(1, Relaxed);
            let deadline = tokio::time::Instant::now() + limit;
            let len = frame.len();
            let give_up = |me: &Backplane| {
                me.stats.relay_dropped.fetch_add(1, Relaxed);
                if !me.stats.relay_stalled.swap(true, Relaxed) {
                    tracing::warn!(
                        "NATS relay queue full for the whole stall timeout: local clients are \
                         served at full speed, copies for other nodes are dropped (counted in \
                         relay_dropped) until the queue drains"
                    );
                }
            };
            // Room in both bounds (the relay task frees them as it sends).
            loop {
                if me.queued_bytes.fetch_add(len, Relaxed) + len <= RELAY_QUEUE_BYTES
                    && me
                        .spool
                        .push(channel.as_str(), source, &frame, RELAY_QUEUE_FRAMES)
                {
                    return;
                }
                me.queued_bytes.fetch_sub(len, Relaxed);
                if tokio::time::Instant::now() >= deadline || !me.stats.connected.load(Relaxed) {
                    give_up(&me);
                    return;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    }

    fn dropped(&self) {
        self.stats.relay_dropped.fetch_add(1, Relaxed);
    }

    fn want(&self, channel: &Channel) -> Wanting {
        let Some(me) = self.me.upgrade() else {
            return Box::pin(async {});
        };
        let mut ready = {
            let mut wanted = self.wanted.lock();
            match wanted.get(channel) {
                Some(i) if !i.task.is_finished() => i.ready.clone(),
                _ => {
                    let (tx, rx) = watch::channel(false);
                    let task = match me.js.clone() {
                        Some(js) => tokio::spawn(jetstream::receive(me, js, channel.clone(), tx)),
                        None => tokio::spawn(receive(me, channel.clone(), tx)),
                    };
                    wanted.insert(
                        channel.clone(),
                        Interest {
                            ready: rx.clone(),
                            task,
                        },
                    );
                    self.stats.subjects.store(wanted.len(), Relaxed);
                    rx
                }
            }
        };
        Box::pin(async move {
            let _ = tokio::time::timeout(WANT_WAIT, ready.wait_for(|r| *r)).await;
        })
    }

    fn counters(&self) -> RemoteCounters {
        let s = &self.stats;
        RemoteCounters {
            connected: s.connected.load(Relaxed),
            relayed: s.relayed.load(Relaxed),
            relay_dropped: s.relay_dropped.load(Relaxed),
            relay_waits: s.relay_waits.load(Relaxed),
            remote_dropped: s.remote_dropped.load(Relaxed),
            received: s.received.load(Relaxed),
            rejected: s.rejected.load(Relaxed),
            disconnects: s.disconnects.load(Relaxed),
            subjects: s.subjects.load(Relaxed) as u64,
            jetstream: self.js.is_some(),
            relay_retries: s.relay_retries.load(Relaxed),
            remote_lost: s.remote_lost.load(Relaxed),
            remote_duplicates: s.remote_duplicates.load(Relaxed),
            reader_restarts: s.reader_restarts.load(Relaxed),
        }
    }
}

/// Sends local publishes to NATS, in order, until `shutdown`; then what is waiting, and
/// flushes.
async fn relay(plane: Arc<Backplane>, shutdown: CancellationToken) {
    // Subjects of the channels seen lately: escaping once per channel, not per message.
    let mut subjects: HashMap<String, async_nats::Subject> = HashMap::new();
    let mut taken = Vec::new();
    let mut last = false;
    while !last {
        tokio::select! {
            () = plane.spool.ready() => {}
            () = shutdown.cancelled() => last = true,
        }
        if plane.spool.take(&mut taken) == 0 {
            continue;
        }
        // Each frame goes to the client as a slice of the taken buffer: no copy of its own.
        let taken = spool::freeze(&mut taken);
        let bytes = spool::records(&taken).map(|r| r.frame.len()).sum();
        plane.sent(bytes, plane.spool.frames());
        for r in spool::records(&taken) {
            let mut headers = HeaderMap::new();
            headers.insert(NODE_HEADER, plane.node.as_str());
            headers.insert(SOURCE_HEADER, r.source.0.to_string().as_str());
            if subjects.len() >= SUBJECT_CACHE && !subjects.contains_key(r.channel) {
                subjects.clear();
            }
            let subject = match subjects.get(r.channel) {
                Some(s) => s.clone(),
                None => {
                    let s: async_nats::Subject = subject::of_channel(&plane.prefix, r.channel).into();
                    subjects.insert(r.channel.to_owned(), s.clone());
                    s
                }
            };
            match plane
                .client
                .publish_with_headers(subject, headers, taken.slice(r.frame))
                .await
            {
                Ok(()) => plane.stats.relayed.fetch_add(1, Relaxed),
                Err(e) => {
                    tracing::debug!("not relayed: {e}");
                    plane.stats.relay_dropped.fetch_add(1, Relaxed)
                }
            };
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), plane.client.flush()).await;
}

/// Proves the NATS server has processed every command this client sent before (the
/// subscription just made included): a flush is a PING answered by a PONG, and a server
/// handles one connection's commands in order. One round trip, no subscription of its own
/// (the client is built with `no_echo`, so a message to our own inbox would never come
/// back).
async fn barrier(client: &Client) -> bool {
    client.flush().await.is_ok()
}

/// Receives `channel`'s messages from the other nodes and delivers them here, until the
/// task is aborted (by the sweep, once no local session subscribes).
async fn receive(plane: Arc<Backplane>, channel: Channel, ready: watch::Sender<bool>) {
    let subject = subject::of_channel(&plane.prefix, channel.as_str());
    let mut sub = loop {
        match plane.client.subscribe(subject.clone()).await {
            Ok(s) => break s,
            Err(e) => {
                tracing::warn!(%channel, "cannot subscribe to the channel's subject: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    // Ready once the server has the subscription; during an outage the client re-subscribes
    // on reconnect, and the barrier is tried again meanwhile.
    let client = plane.client.clone();
    let confirm = tokio::spawn(async move {
        while !barrier(&client).await {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = ready.send(true);
    });
    let mut scratch = Scratch::default();
    while let Some(msg) = sub.next().await {
        plane.deliver(&channel, msg, &mut scratch).await;
    }
    confirm.abort();
}

/// Gives up the subjects of channels no local session subscribes to any more.
async fn sweep(plane: std::sync::Weak<Backplane>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(SWEEP_EVERY);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
        let Some(plane) = plane.upgrade() else { return };
        let mut wanted = plane.wanted.lock();
        // Under the lock: a subscriber is routed before it asks for its channel, so a
        // channel whose route is empty here has nobody waiting on it.
        wanted.retain(|channel, i| {
            let keep = plane.router.has_route(channel.as_str()) && !i.task.is_finished();
            if !keep {
                i.task.abort();
            }
            keep
        });
        plane.stats.subjects.store(wanted.len(), Relaxed);
    }
}
