//! The backplane carried on NATS JetStream, so nothing is lost between nodes when NATS
//! restarts, fails over or is cut off for a while: every relayed publish is stored in one
//! stream (`<prefix>.*`, file storage, a short age limit) before it counts as relayed, and
//! a node reads each channel it wants through an ordered consumer, which resumes from the
//! last message it saw after any reconnect.
//!
//! Sending: a channel has at most one message on its way to the stream ([`Lane`]); what
//! its publishers send meanwhile queues and goes next as one [`batch`](super::batch), so
//! the stream and its acks cost per round trip, not per frame, and a channel's frames
//! stay in order. A message the stream did not confirm (NATS down, a failover, a timeout)
//! is sent again, as it was and under the same `Nats-Msg-Id`, so the stream keeps it
//! once. Publishers never wait on any of this: the relay queue's byte bound
//! ([`RELAY_QUEUE_BYTES`](super::RELAY_QUEUE_BYTES)) covers what waits for confirmation,
//! and past it copies for other nodes are dropped and counted, as on core NATS.
//!
//! Receiving: each run of frames (a sending node's lane, named by the node's incarnation
//! and the lane's generation) numbers its frames; a receiver that finds a run skip ahead
//! counts the frames it skipped as lost (an outage longer than the stream keeps them) and
//! logs the count; one that finds frames it had drops them as duplicates.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use async_nats::jetstream::consumer::DeliverPolicy;
use async_nats::jetstream::consumer::push::OrderedConfig;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::{self, DiscardPolicy, StorageType};
use async_nats::jetstream::{self, Context};
use async_nats::{HeaderMap, Subject};
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use futures_util::stream::FuturesUnordered;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{Backplane, NODE_HEADER, RELAY_QUEUE_FRAMES, batch, spool, subject};
use crate::domain::UserId;
use crate::wire::Channel;

/// Header naming a batch's run: the sending node's incarnation and the lane's generation.
pub const RUN_HEADER: &str = "Hpf-Run";
/// Header carrying the index, in its run, of a batch's first frame.
pub const FIRST_HEADER: &str = "Hpf-First";

/// How long the stream keeps a message by default: long enough to cover a NATS restart or
/// failover and a short partition, short enough that the stream stays small.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(120);
/// Bytes the stream may hold by default (the oldest go first past it).
pub const DEFAULT_STREAM_BYTES: u64 = 1 << 30;
/// How long a node waits for the stream to confirm a message before sending it again.
pub const ACK_WAIT: Duration = Duration::from_secs(2);
/// Longest pause between two tries of an unconfirmed message.
const RETRY_MAX: Duration = Duration::from_secs(1);
/// Runs a receiver keeps positions for (then it starts over: a run it forgot is taken up
/// wherever it is, never counted as lost).
const RUNS_KEPT: usize = 4096;

/// How the stream is kept (`nats_retention_secs`, `nats_stream_max_bytes`,
/// `nats_replicas`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Age past which a message leaves the stream: the longest outage that loses nothing.
    pub max_age: Duration,
    /// Size past which the oldest messages leave.
    pub max_bytes: u64,
    /// Copies on a NATS cluster (1 on a single server; 3 survives a server's loss).
    pub replicas: usize,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            max_age: DEFAULT_RETENTION,
            max_bytes: DEFAULT_STREAM_BYTES,
            replicas: 1,
        }
    }
}

/// The stream of a community's prefix: `HPF_` and the prefix, `_` written `_u` and `.`
/// written `_d` (stream names hold no dots), so no two prefixes share a stream.
pub fn stream_name(prefix: &str) -> String {
    let mut s = String::from("HPF_");
    for c in prefix.chars() {
        match c {
            '_' => s.push_str("_u"),
            '.' => s.push_str("_d"),
            c => s.push(c),
        }
    }
    s
}

/// The stream's configuration for `prefix`.
pub fn stream_config(prefix: &str, retention: &Retention) -> stream::Config {
    stream::Config {
        name: stream_name(prefix),
        subjects: vec![format!("{prefix}.*")],
        max_age: retention.max_age,
        max_bytes: i64::try_from(retention.max_bytes).unwrap_or(i64::MAX),
        storage: StorageType::File,
        num_replicas: retention.replicas,
        discard: DiscardPolicy::Old,
        // Covers every resend: a message is sent again within seconds of its first try.
        duplicate_window: retention.max_age.min(Duration::from_secs(120)),
        ..Default::default()
    }
}

/// A JetStream context with this backplane's bounds.
pub fn context(client: async_nats::Client) -> Context {
    jetstream::ContextBuilder::new()
        .timeout(ACK_WAIT)
        .max_ack_inflight(RELAY_QUEUE_FRAMES)
        .backpressure_on_inflight(true)
        .build(client)
}

/// Creates the stream or brings its configuration up to date; the error says why not
/// (JetStream not enabled on the server, an account without JetStream, a limit).
pub async fn ensure_stream(js: &Context, prefix: &str, retention: &Retention) -> Result<(), String> {
    js.create_or_update_stream(stream_config(prefix, retention))
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// A batch on its way to the stream, or waiting for its turn.
struct Batch {
    /// Its `Nats-Msg-Id` counter (unique within the node's incarnation).
    id: u64,
    /// Index of its first frame in the run.
    first: u64,
    frames: u64,
    /// Bytes of the frames alone (what the relay queue's bound counted).
    bytes: usize,
    body: Vec<u8>,
    /// The body, once sent (a resend sends the very same bytes).
    sealed: Option<Bytes>,
}

/// One channel's publishes on their way to the stream.
struct Lane {
    subject: Subject,
    /// `<incarnation>.<generation>`.
    run: String,
    /// Index of the next frame in the run.
    next: u64,
    queue: VecDeque<Batch>,
    /// The front batch is on its way.
    busy: bool,
    /// Tries of the front batch that failed in a row.
    failures: u32,
}

/// What a send ended with: the lane's channel and whether the stream has the batch.
type Sent = (Channel, Result<(), Failure>);

/// Why the stream does not have a batch.
struct Failure {
    reason: String,
    /// Sending it again cannot help (larger than the NATS server takes).
    fatal: bool,
}

/// Sends local publishes into the stream, in order per channel, until `shutdown`; then
/// gives what is on its way and queued up to 2 s more.
pub(super) async fn relay(
    plane: Arc<Backplane>,
    js: Context,
    retention: Retention,
    shutdown: CancellationToken,
) {
    let incarnation = hex::encode(random_bytes());
    let mut lanes: HashMap<Channel, Lane> = HashMap::new();
    let mut flying: FuturesUnordered<BoxFuture<'static, Sent>> = FuturesUnordered::new();
    let mut generation = 0u64;
    let mut ids = 0u64;
    // The stream first (retried, with the reason in the log); publishes queue meanwhile.
    let mut ready = plane.stream_ready.subscribe();
    let sender = Sender {
        js,
        node: plane.node.clone(),
        incarnation: incarnation.clone(),
        prefix: plane.prefix.clone(),
        retention,
    };
    tokio::select! {
        r = ready.wait_for(|r| *r) => if r.is_err() { return },
        () = shutdown.cancelled() => return,
    }
    // A batch fits what the server takes (its max_payload, less room for the headers).
    let limit = batch::BATCH_BYTES.min(
        plane
            .client
            .server_info()
            .max_payload
            .saturating_sub(4096)
            .max(4096),
    );
    let mut stopping: Option<tokio::time::Instant> = None;
    let mut taken = Vec::new();
    loop {
        if let Some(at) = stopping
            && (flying.is_empty() || tokio::time::Instant::now() >= at)
        {
            break;
        }
        tokio::select! {
            Some((channel, result)) = flying.next(), if !flying.is_empty() => {
                let Some(lane) = lanes.get_mut(&channel) else { continue };
                lane.busy = false;
                match result {
                    Ok(()) => {
                        lane.failures = 0;
                        if let Some(b) = lane.queue.pop_front() {
                            plane.stats.relayed.fetch_add(b.frames, Relaxed);
                            plane.sent(b.bytes, plane.spool.frames());
                        }
                    }
                    Err(Failure { reason, fatal: true }) => {
                        lane.failures = 0;
                        if let Some(b) = lane.queue.pop_front() {
                            plane.stats.relay_dropped.fetch_add(b.frames, Relaxed);
                            plane.sent(b.bytes, plane.spool.frames());
                            tracing::warn!(
                                %channel,
                                frames = b.frames,
                                "not relayed ({reason}): the NATS server's max_payload is below \
                                 this node's largest frames; other nodes miss them (counted in \
                                 relay_dropped)"
                            );
                        }
                    }
                    Err(Failure { reason, fatal: false }) => {
                        lane.failures += 1;
                        plane.stats.relay_retries.fetch_add(1, Relaxed);
                        if lane.failures == 1 {
                            tracing::warn!(
                                %channel,
                                "the stream did not confirm a relayed batch ({reason}): sending it \
                                 again until it does; local clients are served as before"
                            );
                        }
                    }
                }
                if !lane.queue.is_empty() {
                    flying.push(sender.send(&channel, lane));
                }
            }
            last = async {
                tokio::select! {
                    () = plane.spool.ready() => false,
                    () = shutdown.cancelled() => true,
                }
            }, if stopping.is_none() => {
                if last {
                    stopping = Some(tokio::time::Instant::now() + Duration::from_secs(2));
                }
                // Everything waiting joins the lanes' batches at once.
                if plane.spool.take(&mut taken) == 0 {
                    continue;
                }
                // Lanes that were idle: sent once the whole buffer joined their batches.
                let mut start: Vec<Channel> = Vec::new();
                for r in spool::records(&taken) {
                    let lane = match lanes.get_mut(r.channel) {
                        Some(lane) => lane,
                        None => {
                            let Ok(channel) = Channel::new(r.channel) else {
                                // Checked by the publisher's session; never expected.
                                plane.stats.relay_dropped.fetch_add(1, Relaxed);
                                continue;
                            };
                            if lanes.len() >= super::SUBJECT_CACHE {
                                lanes.retain(|_, l| l.busy || !l.queue.is_empty());
                            }
                            generation += 1;
                            lanes.entry(channel).or_insert(Lane {
                                subject: subject::of_channel(&plane.prefix, r.channel).into(),
                                run: format!("{incarnation}.{generation}"),
                                next: 0,
                                queue: VecDeque::new(),
                                busy: false,
                                failures: 0,
                            })
                        }
                    };
                    if !lane.busy
                        && lane.queue.is_empty()
                        && let Ok(channel) = Channel::new(r.channel)
                    {
                        start.push(channel);
                    }
                    lane.add(r.source, &taken[r.frame], &mut ids, limit);
                }
                taken.clear();
                for channel in start {
                    if let Some(lane) = lanes.get_mut(&channel) {
                        flying.push(sender.send(&channel, lane));
                    }
                }
            }
        }
    }
    // Stopping: what the stream never confirmed is lost to the other nodes, and counted.
    let waiting = plane.spool.take(&mut taken) as u64;
    let unsent = waiting
        + lanes
            .values()
            .flat_map(|l| &l.queue)
            .map(|b| b.frames)
            .sum::<u64>();
    if unsent > 0 {
        plane.stats.relay_dropped.fetch_add(unsent, Relaxed);
        tracing::warn!(
            frames = unsent,
            "stopping: relayed messages the stream never confirmed were not relayed"
        );
    }
}

fn random_bytes() -> [u8; 6] {
    let mut b = [0u8; 6];
    let _ = getrandom::getrandom(&mut b);
    b
}

impl Lane {
    /// Queues a publish: it joins the last batch unless that one is on its way or would
    /// pass `limit` bytes.
    fn add(&mut self, source: UserId, frame: &[u8], ids: &mut u64, limit: usize) {
        let len = frame.len();
        let open = match self.queue.back() {
            Some(b) => b.sealed.is_none() && b.body.len() + batch::RECORD_OVERHEAD + len <= limit,
            None => false,
        };
        if !open {
            *ids += 1;
            self.queue.push_back(Batch {
                id: *ids,
                first: self.next,
                frames: 0,
                bytes: 0,
                body: Vec::with_capacity((batch::RECORD_OVERHEAD + len).max(1024)),
                sealed: None,
            });
        }
        if let Some(b) = self.queue.back_mut() {
            batch::push(&mut b.body, source, frame);
            b.frames += 1;
            b.bytes += len;
        }
        self.next += 1;
    }
}

/// What a send needs besides its lane.
struct Sender {
    js: Context,
    node: String,
    incarnation: String,
    prefix: String,
    retention: Retention,
}

impl Sender {
    /// Sends `lane`'s front batch (again, after a pause, when it failed before).
    fn send(&self, channel: &Channel, lane: &mut Lane) -> BoxFuture<'static, Sent> {
        lane.busy = true;
        let delay = match lane.failures {
            0 => Duration::ZERO,
            n => (Duration::from_millis(50) * 2u32.saturating_pow(n.min(5))).min(RETRY_MAX),
        };
        let channel = channel.clone();
        let Some(b) = lane.queue.front_mut() else {
            lane.busy = false;
            return Box::pin(async move { (channel, Ok(())) });
        };
        let body = b
            .sealed
            .get_or_insert_with(|| Bytes::from(std::mem::take(&mut b.body)))
            .clone();
        let mut headers = HeaderMap::new();
        headers.insert(NODE_HEADER, self.node.as_str());
        headers.insert(RUN_HEADER, lane.run.as_str());
        headers.insert(FIRST_HEADER, b.first.to_string().as_str());
        let id = format!("{}.{}.{}", self.node, self.incarnation, b.id);
        let (js, subject) = (self.js.clone(), lane.subject.clone());
        let (prefix, retention) = (self.prefix.clone(), self.retention);
        Box::pin(async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let publish = PublishMessage::build()
                .payload(body)
                .headers(headers)
                .message_id(id);
            let result = match js.send_publish(subject, publish).await {
                Ok(ack) => ack.await.map(|_| ()),
                Err(e) => Err(e),
            };
            let result = result.map_err(|e| {
                use jetstream::context::PublishErrorKind as Kind;
                if e.kind() == Kind::StreamNotFound {
                    // Deleted under the node's feet (an operator, a reset server): made again
                    // before the next try.
                    let (js, prefix) = (js.clone(), prefix.clone());
                    tokio::spawn(async move { ensure_stream(&js, &prefix, &retention).await });
                }
                Failure {
                    fatal: e.kind() == Kind::MaxPayloadExceeded,
                    reason: e.to_string(),
                }
            });
            (channel, result)
        })
    }
}

/// Makes the stream, retrying until it exists (the reason logged, once per kind), then
/// says so on `ready`.
pub(super) async fn make_stream(
    plane: Arc<Backplane>,
    js: Context,
    retention: Retention,
    shutdown: CancellationToken,
) {
    let prefix = plane.prefix.clone();
    let mut last = String::new();
    loop {
        match ensure_stream(&js, &prefix, &retention).await {
            Ok(()) => {
                tracing::info!(
                    stream = %stream_name(&prefix),
                    retention_secs = retention.max_age.as_secs(),
                    replicas = retention.replicas,
                    "JetStream stream ready: what crosses nodes survives a NATS restart"
                );
                plane.stream_ready.send_replace(true);
                return;
            }
            Err(e) => {
                if e != last {
                    tracing::error!(
                        stream = %stream_name(&prefix),
                        "cannot create the cluster's JetStream stream: {e} (is JetStream enabled \
                         on the NATS server, `-js`? or set nats_jetstream = false); nothing crosses \
                         nodes until it exists, local clients are served as before"
                    );
                    last = e;
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
            () = shutdown.cancelled() => return,
        }
    }
}

/// Positions of the runs a receiver has seen, to find gaps and repeats.
#[derive(Default)]
pub struct Runs {
    next: HashMap<String, u64>,
}

/// What to do with a batch, by its run's position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place {
    /// Frames at the batch's head already delivered (repeats).
    pub skip: u64,
    /// Frames of the run that never came before this batch (lost for good).
    pub lost: u64,
}

impl Runs {
    /// Places a batch of `frames` frames starting at index `first` of `run`.
    pub fn place(&mut self, run: &str, first: u64, frames: u64) -> Place {
        if self.next.len() >= RUNS_KEPT && !self.next.contains_key(run) {
            self.next.clear();
        }
        let end = first.saturating_add(frames);
        match self.next.get_mut(run) {
            None => {
                self.next.insert(run.to_owned(), end);
                Place { skip: 0, lost: 0 }
            }
            Some(next) => {
                let place = Place {
                    skip: next.saturating_sub(first).min(frames),
                    lost: first.saturating_sub(*next),
                };
                *next = (*next).max(end);
                place
            }
        }
    }
}

/// Receives `channel`'s batches from the stream through an ordered consumer (it resumes
/// after the last message it saw whenever the link comes back) and delivers them here,
/// until the task is aborted. A consumer that has been quiet for [`AUDIT_AFTER`] is checked
/// against the stream: when the stream holds a later message of the channel than the node
/// has seen (a consumer left stranded by a NATS server's failure, seen on a 3-server
/// cluster), the node reads again from the first it missed.
pub(super) async fn receive(
    plane: Arc<Backplane>,
    js: Context,
    channel: Channel,
    ready: watch::Sender<bool>,
) {
    let mut stream_ready = plane.stream_ready.subscribe();
    if stream_ready.wait_for(|r| *r).await.is_err() {
        return;
    }
    let filter = subject::of_channel(&plane.prefix, channel.as_str());
    // The last stream sequence delivered here (or, at first, stored before this node
    // wanted the channel): anything at or below it is never delivered (again).
    let mut last: Option<u64> = None;
    let mut scratch = super::Scratch::default();
    let mut runs = Runs::default();
    loop {
        let (stream, mut messages, start) = open(&plane, &js, &channel, &filter, last).await;
        let mut last_seen = *last.get_or_insert(start);
        ready.send_replace(true);
        loop {
            let next = tokio::time::timeout(AUDIT_AFTER, messages.next()).await;
            match next {
                Ok(Some(Ok(m))) => {
                    let Ok(seq) = m.info().map(|i| i.stream_sequence) else {
                        continue;
                    };
                    if seq <= last_seen {
                        continue;
                    }
                    last_seen = seq;
                    last = Some(seq);
                    plane
                        .deliver_batch(&channel, &m.message, &mut runs, &mut scratch)
                        .await;
                }
                Ok(Some(Err(e))) => tracing::debug!(%channel, "ordered consumer: {e}"),
                Ok(None) => return,
                Err(_quiet) => {
                    let newest = stream.get_last_raw_message_by_subject(&filter).await;
                    tracing::debug!(%channel, seen = last_seen, "quiet reader: the stream's newest: {:?}", newest.as_ref().map(|m| m.sequence));
                    if let Ok(newest) = newest
                        && newest.sequence > last_seen
                    {
                        plane.stats.reader_restarts.fetch_add(1, Relaxed);
                        tracing::warn!(
                            %channel,
                            seen = last_seen,
                            stream = newest.sequence,
                            "the channel's reader fell behind the stream without a word: reading \
                             again from the first message it missed"
                        );
                        break;
                    }
                }
            }
        }
    }
}

/// How long a channel's reader may stay quiet before the stream is asked whether it holds
/// anything later (one small request per quiet channel per period).
pub const AUDIT_AFTER: Duration = Duration::from_secs(5);

/// An ordered consumer of `filter` starting after `after` (`None`: with what comes next),
/// retried until the stream answers; with the stream and the sequence it starts after.
async fn open(
    plane: &Backplane,
    js: &Context,
    channel: &Channel,
    filter: &str,
    after: Option<u64>,
) -> (stream::Stream, jetstream::consumer::push::Ordered, u64) {
    let name = stream_name(&plane.prefix);
    let mut warned = false;
    loop {
        let made = async {
            let stream = js.get_stream(&name).await.map_err(|e| e.to_string())?;
            let deliver_policy = match after {
                None => DeliverPolicy::New,
                Some(seq) => DeliverPolicy::ByStartSequence {
                    start_sequence: seq + 1,
                },
            };
            let consumer = stream
                .create_consumer(OrderedConfig {
                    deliver_subject: plane.client.new_inbox(),
                    filter_subject: filter.to_owned(),
                    deliver_policy,
                    ..Default::default()
                })
                .await
                .map_err(|e| e.to_string())?;
            // With `New`, messages up to here were stored before this node wanted the
            // channel: not for its subscribers (a consumer made again before its first
            // message would start from the stream's head).
            let start = after.unwrap_or(consumer.cached_info().delivered.stream_sequence);
            let messages = consumer.messages().await.map_err(|e| e.to_string())?;
            Ok::<_, String>((stream, messages, start))
        };
        match made.await {
            Ok(opened) => return opened,
            Err(e) => {
                if !warned {
                    tracing::warn!(%channel, "cannot read the channel from the stream yet: {e}");
                    warned = true;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_names_never_collide_and_hold_no_dots() {
        let names: Vec<String> = ["hpfeeds", "a.b", "a_b", "a_d", "a._b", "hpftest.0a1b"]
            .iter()
            .map(|p| stream_name(p))
            .collect();
        for (i, n) in names.iter().enumerate() {
            assert!(!n.contains('.') && !n.contains('*') && !n.contains('>'), "{n}");
            assert!(!names[..i].contains(n), "{n} twice");
        }
        assert_eq!(stream_name("hpfeeds"), "HPF_hpfeeds");
    }

    #[test]
    fn a_run_that_skips_ahead_counts_lost_and_one_that_repeats_is_skipped() {
        let mut runs = Runs::default();
        // First sight: taken up wherever it is.
        assert_eq!(runs.place("r1", 10, 5), Place { skip: 0, lost: 0 });
        assert_eq!(runs.place("r1", 15, 2), Place { skip: 0, lost: 0 });
        // A repeat, whole and in part.
        assert_eq!(runs.place("r1", 10, 5), Place { skip: 5, lost: 0 });
        assert_eq!(runs.place("r1", 16, 3), Place { skip: 1, lost: 0 });
        // A gap: frames 19..25 never came.
        assert_eq!(runs.place("r1", 25, 1), Place { skip: 0, lost: 6 });
        // Runs are apart.
        assert_eq!(runs.place("r2", 0, 1), Place { skip: 0, lost: 0 });
        assert_eq!(runs.place("r2", 1, 1), Place { skip: 0, lost: 0 });
    }
}
