//! One client connection: a reader that feeds frames to the [`Session`] and carries out its
//! actions, and a writer that drains the [`Outbox`] with vectored writes.
//!
//! Every complete frame that arrived before EOF is processed, in order (the C client sends
//! one publish and closes; the Node.js client pipelines auth and subscribe), and a refusal
//! is flushed to the client before the connection closes.

use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use tokio_util::codec::Decoder;
use tokio_util::sync::CancellationToken;

use super::Shared;
use super::handle::{SessionHandle, SessionId};
use super::messages::{Disconnected, Register, Subscribe, Unsubscribe};
use super::outbox::Outbox;
use super::refusal::Refusal;
use super::session::{Action, Session};
use super::stats::{AuthFailure, ChannelCounts, OPCODE_SLOTS, Stats};
use crate::config::SlowConsumerPolicy;
use crate::wire::codec::CodecError;
use crate::wire::{Channel, Frame, FrameCodec, Nonce};

/// Read buffer of a connection that has been quiet: idle subscribers hold little memory.
const IDLE_READ: usize = 64;
/// Read buffer of a busy connection (the last read filled what it was given).
const BUSY_READ: usize = 256 * 1024;
/// iovecs per vectored write.
const MAX_IOV: usize = 256;

/// How a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Closed in order: what was queued was written.
    Closed,
    /// Killed (slow consumer, grace period over): the caller should reset the socket so
    /// the kernel drops what it still buffers for this client.
    Killed,
}

/// Serves one connection until it closes, the broker shuts down, or it is killed.
pub async fn serve<R, W>(reader: R, writer: W, peer: SocketAddr, shared: Arc<Shared>) -> End
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    let id = SessionId(shared.next_session.fetch_add(1, Relaxed));
    let nonce = match Nonce::random() {
        Ok(n) => n,
        Err(e) => {
            tracing::error!(%peer, "no randomness for a nonce, dropping connection: {e}");
            return End::Killed;
        }
    };
    let outbox = Arc::new(Outbox::new(shared.config.outbox_bytes));
    let info = Frame::Info {
        name: shared.config.name.clone(),
        nonce,
    };
    match info.to_bytes() {
        Ok(b) => {
            let _ = outbox.push_control(b);
        }
        Err(e) => {
            tracing::error!("cannot encode info frame: {e}");
            return End::Killed;
        }
    }
    let kill = shared.hard_kill.child_token();
    let mut conn = Reader {
        id,
        peer,
        session: Session::new(nonce),
        handle: None,
        outbox: Arc::clone(&outbox),
        kill: kill.clone(),
        shared: Arc::clone(&shared),
        tally: None,
    };
    let write = write_loop(writer, Arc::clone(&outbox), &shared);
    tokio::pin!(write);
    // Seconds, not an `Instant`: every connection's future carries it.
    let opened = uptime_secs();
    let write_failed = tokio::select! {
        () = kill.cancelled() => false,
        res = &mut write => log_write_end(peer, res),
        () = conn.run(reader) => {
            // The reader closed the outbox; let the writer flush it unless killed.
            tokio::select! {
                () = kill.cancelled() => false,
                res = &mut write => log_write_end(peer, res),
            }
        }
    };
    if write_failed {
        // Nothing will be written to this socket again: publishers waiting for room in
        // its outbox (backpressure) go on now, not after the stall timeout.
        let lost = outbox.abort();
        tracing::debug!(%peer, frames = lost, "write failed: outbox aborted");
    }
    conn.flush_tally();
    // One line per connection's end (refusals had their own line, with the reason).
    let how = if kill.is_cancelled() {
        "killed"
    } else if write_failed {
        "write failed"
    } else if shared.shutdown.is_cancelled() {
        "shutdown"
    } else {
        "closed"
    };
    let ident = conn
        .handle
        .as_ref()
        .map(|h| h.ident.to_string())
        .unwrap_or_default();
    tracing::info!(
        %peer,
        %ident,
        reason = how,
        secs = uptime_secs().saturating_sub(opened),
        "connection ended"
    );
    if conn.handle.is_some() {
        shared.broker.do_send(Disconnected(id));
    }
    if kill.is_cancelled() {
        End::Killed
    } else {
        End::Closed
    }
}

/// Whole seconds since the first connection: a 4-byte timestamp.
fn uptime_secs() -> u32 {
    static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let e = EPOCH.get_or_init(std::time::Instant::now);
    u32::try_from(e.elapsed().as_secs()).unwrap_or(u32::MAX)
}

/// Logs how the write side ended; true when it failed.
fn log_write_end(peer: SocketAddr, res: io::Result<()>) -> bool {
    match res {
        Ok(()) => false,
        Err(e) => {
            tracing::debug!(%peer, "write side ended: {e}");
            true
        }
    }
}

struct Reader {
    id: SessionId,
    peer: SocketAddr,
    session: Session,
    handle: Option<Arc<SessionHandle>>,
    outbox: Arc<Outbox>,
    kill: CancellationToken,
    shared: Arc<Shared>,
    /// This read's publishes on one channel, added to the shared per-channel tally when
    /// the channel changes or before the next read (not once per frame). Boxed: an idle
    /// connection carries one pointer.
    tally: Option<Box<(Channel, ChannelCounts)>>,
}

/// Whether the reader goes on after a frame.
enum Flow {
    Continue,
    Stop,
}

/// What a frame needs after it was handled synchronously.
enum Step {
    /// Nothing more.
    Done(Flow),
    /// A subscribe to register with the Broker actor.
    Subscribe(Channel),
    /// An unsubscribe for the Broker actor, awaited like a subscribe: a client sending
    /// them in a loop has at most one in the actor's mailbox, never an unbounded queue
    /// (and an idle connection carries no subscription list of its own for it).
    Unsubscribe(Channel),
    /// Backpressure: subscribers whose outbox was full (or the queue to the other nodes of
    /// a cluster); wait for them before reading on.
    Stalled(Box<Stalled>),
}

/// A publish some receivers could not take yet.
struct Stalled {
    source: crate::domain::UserId,
    channel: Channel,
    frame: Bytes,
    receivers: Vec<Arc<SessionHandle>>,
    /// The queue to the other nodes was full too.
    relay: bool,
}

impl Reader {
    async fn run<R: AsyncRead + Unpin>(&mut self, mut reader: R) {
        let mut codec = FrameCodec::new(self.shared.config.limits());
        let mut buf = BytesMut::new();
        let mut busy = false;
        let auth_deadline = Instant::now() + self.shared.config.auth_timeout();
        // When the buffered bytes began a frame that is not complete yet.
        let mut partial_since: Option<Instant> = None;
        loop {
            loop {
                // The decoded frame is consumed here: only the small `Step` lives across
                // the awaits below, so it is not carried by every idle connection's future.
                let step = match codec.decode(&mut buf) {
                    Ok(Some(rx)) => {
                        if !matches!(rx.frame, Frame::Publish { .. }) {
                            self.shared.stats.frame_in(rx.frame.opcode() as u8);
                        }
                        self.apply(rx.frame, rx.raw)
                    }
                    Ok(None) => break,
                    Err(CodecError::Wire(e)) => {
                        Stats::add(&self.shared.stats.protocol_errors, 1);
                        self.refuse(Refusal::Protocol(e));
                        return;
                    }
                    Err(CodecError::Io(_)) => return self.outbox.close(),
                };
                let flow = match step {
                    Step::Done(flow) => flow,
                    // Rare and slow (a round trip to the Broker actor): boxed, so its
                    // state is not carried by every idle connection's future.
                    Step::Subscribe(channel) => Box::pin(self.subscribe(channel)).await,
                    Step::Unsubscribe(channel) => Box::pin(self.unsubscribe(channel)).await,
                    // Not reading the socket meanwhile is the backpressure itself (boxed
                    // like a subscribe: idle connections do not carry its state).
                    Step::Stalled(st) => Box::pin(self.wait_stalled(st)).await,
                };
                if let Flow::Stop = flow {
                    return;
                }
            }
            self.flush_tally();
            partial_since = if buf.is_empty() {
                None
            } else {
                partial_since.or_else(|| Some(Instant::now()))
            };
            let want = if busy { BUSY_READ } else { IDLE_READ };
            if buf.is_empty() && buf.capacity() > want {
                buf = BytesMut::new();
            }
            buf.reserve(want);
            let spare = buf.capacity() - buf.len();
            let shutdown = self.shared.shutdown.clone();
            // Before auth the auth deadline bounds every read; after it, only a started
            // frame has a deadline. The timer is boxed: an idle session pays nothing for it.
            let deadline = match (self.handle.is_some(), partial_since) {
                (false, _) => Some((
                    auth_deadline,
                    Refusal::AuthTimeout(self.shared.config.auth_timeout()),
                )),
                (true, Some(since)) => {
                    let t = self.shared.config.frame_timeout();
                    Some((since + t, Refusal::FrameTimeout(t)))
                }
                (true, None) => None,
            };
            let until = deadline.as_ref().map(|(at, _)| *at);
            let read = async {
                match until {
                    None => Ok(reader.read_buf(&mut buf).await),
                    Some(at) => Box::pin(tokio::time::timeout_at(at, reader.read_buf(&mut buf))).await,
                }
            };
            let res = tokio::select! {
                r = read => r,
                () = shutdown.cancelled() => {
                    // Stop reading; what is queued is flushed by the writer.
                    return self.outbox.close();
                }
            };
            match res {
                Err(_elapsed) => {
                    let Some((_, refusal)) = deadline else {
                        return self.outbox.close();
                    };
                    if let Refusal::FrameTimeout(_) = refusal {
                        Stats::add(&self.shared.stats.frame_timeouts, 1);
                    }
                    return self.refuse(refusal);
                }
                Ok(Ok(0)) => {
                    if !buf.is_empty() {
                        tracing::debug!(peer = %self.peer, bytes = buf.len(), "EOF inside a frame");
                    }
                    return self.outbox.close();
                }
                Ok(Ok(n)) => {
                    Stats::add(&self.shared.stats.bytes_in, n as u64);
                    busy = n == spare;
                }
                Ok(Err(e)) => {
                    tracing::debug!(peer = %self.peer, "read error: {e}");
                    return self.outbox.close();
                }
            }
        }
    }

    /// Counts and logs a refusal, and records it in the key log when it is misuse of a key.
    fn note(&self, refusal: &Refusal) {
        self.shared.key_log.record(refusal, self.peer);
        let ident = self.session.ident().map(ToString::to_string).unwrap_or_default();
        match refusal {
            Refusal::AuthFailed { ident } => {
                let why = if self.shared.keys.load().get(ident).is_some() {
                    AuthFailure::WrongSecret
                } else {
                    AuthFailure::UnknownIdent
                };
                self.shared.stats.auth_failure(why);
                tracing::warn!(peer = %self.peer, %ident, reason = why.label(), "{refusal}");
            }
            Refusal::AuthTimeout(_) | Refusal::FirstNotAuth => {
                let why = if let Refusal::AuthTimeout(_) = refusal {
                    AuthFailure::Timeout
                } else {
                    AuthFailure::FirstNotAuth
                };
                self.shared.stats.auth_failure(why);
                tracing::info!(peer = %self.peer, reason = why.label(), "{refusal}");
            }
            Refusal::IdentMismatch { .. }
            | Refusal::PublishDenied { .. }
            | Refusal::SubscribeDenied { .. } => {
                if let Refusal::PublishDenied { .. } = refusal {
                    self.shared.stats.frame_in(3);
                }
                Stats::add(&self.shared.stats.acl_refusals, 1);
                tracing::warn!(peer = %self.peer, %ident, reason = refusal.kind(), "{refusal}");
            }
            _ => tracing::info!(peer = %self.peer, %ident, reason = refusal.kind(), "{refusal}"),
        }
    }

    /// Tells the client why (after [`Self::note`]); closes when the refusal says so.
    fn refuse(&self, refusal: Refusal) {
        self.note(&refusal);
        self.outbox.refuse(&refusal);
    }

    /// Adds what this connection counted on its current channel to the shared tally.
    fn flush_tally(&mut self) {
        if let Some(t) = self.tally.take() {
            self.shared.stats.channels.add(&t.0, &t.1);
        }
    }

    /// Counts a publish on `channel` that was queued for `delivered` subscribers.
    fn count_publish(&mut self, channel: &Channel, bytes: usize, delivered: usize) {
        if self.tally.as_ref().is_some_and(|t| t.0 != *channel) {
            self.flush_tally();
        }
        let t = self
            .tally
            .get_or_insert_with(|| Box::new((channel.clone(), ChannelCounts::default())));
        t.1.published += 1;
        t.1.bytes += bytes as u64;
        t.1.delivered += delivered as u64;
    }

    fn apply(&mut self, frame: Frame, raw: Bytes) -> Step {
        let action = {
            // The key table is read only for an auth frame; the ACL is borrowed, not cloned.
            let shared = &self.shared;
            let acl = self.handle.as_ref().map(|h| h.acl.load());
            self.session.on_frame(
                frame,
                raw,
                || shared.keys.load_full(),
                acl.as_ref().and_then(|a| a.as_deref()),
            )
        };
        match action {
            Action::Authenticated(acl) => {
                Stats::add(&self.shared.stats.auth_ok, 1);
                tracing::info!(peer = %self.peer, ident = %acl.ident, "authenticated");
                let handle = Arc::new(SessionHandle {
                    id: self.id,
                    peer: self.peer,
                    ident: acl.ident.clone(),
                    outbox: Arc::clone(&self.outbox),
                    acl: ArcSwapOption::from(Some(acl)),
                    kill: self.kill.clone(),
                    usage: Default::default(),
                });
                self.shared.broker.do_send(Register(Arc::clone(&handle)));
                self.handle = Some(handle);
            }
            Action::Publish {
                channel,
                source,
                frame,
            } => {
                Stats::add(&self.shared.stats.publishes, 1);
                Stats::add(&self.shared.stats.publish_bytes, frame.len() as u64);
                if let Some(h) = &self.handle {
                    h.usage.published(frame.len());
                }
                let mut stalled = Vec::new();
                let delivered = self
                    .shared
                    .router
                    .publish(source, channel.as_str(), &frame, &mut stalled);
                // The other nodes of a cluster are one more receiver, under the same policy.
                let mut relay_full = false;
                if let Some(remote) = &self.shared.remote
                    && !remote.relay(source, &channel, &frame)
                {
                    if self.shared.config.slow_consumer == SlowConsumerPolicy::Backpressure {
                        relay_full = true;
                    } else {
                        remote.dropped();
                    }
                }
                self.count_publish(&channel, frame.len(), delivered + stalled.len());
                if !stalled.is_empty() || relay_full {
                    return Step::Stalled(Box::new(Stalled {
                        source,
                        channel,
                        frame,
                        receivers: stalled,
                        relay: relay_full,
                    }));
                }
            }
            Action::Subscribe(channel) => return Step::Subscribe(channel),
            Action::Unsubscribe(channel) => return Step::Unsubscribe(channel),
            Action::Refuse(refusal) => {
                if let Refusal::AuthFailed { ident } = &refusal {
                    let delay = self.shared.throttle.failed(self.peer.ip(), ident);
                    if !delay.is_zero() {
                        tracing::debug!(peer = %self.peer, %ident, ?delay, "throttling repeated auth failures");
                        return Step::Done(self.refuse_later(refusal, delay));
                    }
                }
                let closes = refusal.closes();
                self.refuse(refusal);
                if closes {
                    return Step::Done(Flow::Stop);
                }
            }
        }
        Step::Done(Flow::Continue)
    }

    /// Answers a throttled auth failure after `delay`, without holding up this task's
    /// memory: the connection stops reading and a timer sends the refusal.
    fn refuse_later(&self, refusal: Refusal, delay: Duration) -> Flow {
        self.note(&refusal);
        Stats::add(&self.shared.stats.auth_throttled, 1);
        let outbox = Arc::clone(&self.outbox);
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            outbox.refuse(&refusal);
        });
        Flow::Stop
    }

    /// Backpressure: delivers a publish to the receivers that had no room, waiting for
    /// them (up to the stall timeout) before this connection reads another frame.
    async fn wait_stalled(&self, mut st: Box<Stalled>) -> Flow {
        let stall = self.shared.config.stall_timeout();
        if !st.receivers.is_empty() {
            self.shared
                .router
                .deliver_waiting(
                    st.source,
                    st.channel.as_str(),
                    &st.frame,
                    &mut st.receivers,
                    stall,
                )
                .await;
        }
        if st.relay
            && let Some(remote) = &self.shared.remote
        {
            remote.relay_waiting(st.source, st.channel, st.frame, stall).await;
        }
        Flow::Continue
    }

    async fn unsubscribe(&mut self, channel: Channel) -> Flow {
        let msg = Unsubscribe {
            session: self.id,
            channel,
        };
        if self.shared.broker.send(msg).await.is_err() {
            self.refuse(Refusal::ShuttingDown);
            return Flow::Stop;
        }
        Flow::Continue
    }

    async fn subscribe(&mut self, channel: Channel) -> Flow {
        let wanted = self.shared.remote.is_some().then(|| channel.clone());
        let msg = Subscribe {
            session: self.id,
            channel,
        };
        match self.shared.broker.send(msg).await {
            Ok(Ok(())) => {
                // Subscribed here; with a cluster, messages of other nodes flow too before
                // the next frame is read (a client's next publish may be the one it awaits).
                if let (Some(remote), Some(channel)) = (&self.shared.remote, wanted) {
                    remote.want(&channel).await;
                }
                Flow::Continue
            }
            Ok(Err(refusal)) => {
                let closes = refusal.closes();
                self.refuse(refusal);
                if closes { Flow::Stop } else { Flow::Continue }
            }
            Err(_mailbox_closed) => {
                self.refuse(Refusal::ShuttingDown);
                Flow::Stop
            }
        }
    }
}

/// Drains the outbox in batches until it is closed and empty, then shuts the socket down.
async fn write_loop<W: AsyncWrite + Unpin>(mut w: W, outbox: Arc<Outbox>, shared: &Shared) -> io::Result<()> {
    let (stats, timeout) = (&*shared.stats, shared.config.write_timeout());
    let mut batch: Vec<Bytes> = Vec::new();
    while let Some(since) = outbox.next_batch(&mut batch).await {
        // Boxed per batch: the deadline timer then costs an idle connection nothing.
        Box::pin(tokio::time::timeout(timeout, write_all_vectored(&mut w, &batch)))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "write deadline passed"))??;
        if let Some(since) = since {
            stats.written.latency.observe(since.elapsed());
        }
        count_written(stats, &batch);
        // Keep the vector for busy connections; an idle one should hold nothing.
        if batch.len() < 16 {
            batch = Vec::new();
        } else {
            batch.clear();
        }
    }
    let _ = Box::pin(tokio::time::timeout(timeout, w.shutdown())).await;
    Ok(())
}

/// Counts a written batch's bytes and frames by opcode: one pass over the batch, one
/// atomic add per kind present.
fn count_written(stats: &Stats, batch: &[Bytes]) {
    let (mut bytes, mut by_op) = (0u64, [0u64; OPCODE_SLOTS]);
    for f in batch {
        bytes += f.len() as u64;
        by_op[usize::from(f.get(4).copied().unwrap_or(u8::MAX)).min(OPCODE_SLOTS - 1)] += 1;
    }
    Stats::add(&stats.written.bytes, bytes);
    for (op, n) in by_op.iter().enumerate() {
        if *n > 0 {
            Stats::add(&stats.written.frames[op], *n);
        }
    }
}

/// Writes every frame, many per syscall. The iovec lives on the heap only while writing:
/// an array in the future would cost every idle connection its size.
async fn write_all_vectored<W: AsyncWrite + Unpin>(w: &mut W, frames: &[Bytes]) -> io::Result<()> {
    let (mut i, mut off) = (0usize, 0usize);
    while i < frames.len() {
        let iov: Vec<IoSlice<'_>> = frames[i..]
            .iter()
            .take(MAX_IOV)
            .enumerate()
            .map(|(j, f)| IoSlice::new(if j == 0 { &f[off..] } else { f }))
            .collect();
        let mut n = w.write_vectored(&iov).await?;
        drop(iov);
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        while n > 0 && i < frames.len() {
            let rest = frames[i].len() - off;
            if n >= rest {
                n -= rest;
                i += 1;
                off = 0;
            } else {
                off += n;
                n = 0;
            }
        }
    }
    w.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn vectored_writes_survive_partial_writes() {
        // A duplex pipe with a tiny buffer forces many partial writes.
        let (mut a, mut b) = tokio::io::duplex(7);
        let frames: Vec<Bytes> = (0..300u16).map(|i| Bytes::from(format!("frame-{i};"))).collect();
        let expected: Vec<u8> = frames.iter().flat_map(|f| f.to_vec()).collect();
        let writer = tokio::spawn(async move {
            write_all_vectored(&mut a, &frames).await.unwrap();
        });
        let mut got = vec![0; expected.len()];
        b.read_exact(&mut got).await.unwrap();
        writer.await.unwrap();
        assert_eq!(got, expected);
    }
}

/// Every connection carries its future for its whole life: keep it small (idle memory
/// per connection is a target of its own, see bench/NOTES.md).
#[cfg(test)]
mod future_size {
    use std::sync::Arc;

    #[actix_rt::test]
    async fn writer_future_stays_small() {
        let (a, _b) = tokio::io::duplex(8);
        let outbox = Arc::new(super::Outbox::new(10));
        let (_db, shared) = shared();
        let wf = super::write_loop(a, outbox, &shared);
        assert!(
            std::mem::size_of_val(&wf) <= 256,
            "{}",
            std::mem::size_of_val(&wf)
        );
    }

    fn shared() -> (crate::store::scratch::ScratchDb, Arc<crate::broker::Shared>) {
        super::testing::shared(crate::config::Config::default(), Default::default())
    }

    #[actix_rt::test]
    async fn connection_future_stays_small() {
        let (_db, shared) = shared();
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let c = tokio::net::TcpStream::connect(l.local_addr().unwrap())
            .await
            .unwrap();
        let (mut r, mut w) = c.into_split();
        let f = super::serve(&mut r, &mut w, "127.0.0.1:1".parse().unwrap(), shared);
        eprintln!("connection future: {} B", std::mem::size_of_val(&f));
        assert!(std::mem::size_of_val(&f) <= 1024, "{}", std::mem::size_of_val(&f));
    }
}

/// A broker's shared state without listeners, for driving [`serve`] in-process.
#[cfg(test)]
pub(crate) mod testing {
    use std::sync::Arc;

    use actix::Actor;

    use crate::domain::acl::KeyTable;

    /// A `Shared` over `config` and `keys`, on a scratch database (kept alive by the
    /// returned handle). Must run inside an actix system (the Broker actor starts).
    pub(crate) fn shared(
        config: crate::config::Config,
        keys: KeyTable,
    ) -> (crate::store::scratch::ScratchDb, Arc<crate::broker::Shared>) {
        let db = crate::store::scratch::ScratchDb::new().unwrap();
        let store = crate::store::Store::open(db.url()).unwrap();
        let stats = Arc::new(super::Stats::default());
        let router = Arc::new(crate::broker::router::Router::new(
            Default::default(),
            stats.clone(),
        ));
        let keys = Arc::new(arc_swap::ArcSwap::from_pointee(keys));
        let broker =
            crate::broker::control::Broker::new(router.clone(), keys.clone(), stats.clone(), 10).start();
        let (key_log, _) = crate::broker::keylog::KeyLog::start(store, stats.clone(), Default::default());
        let shared = Arc::new(crate::broker::Shared {
            config: Arc::new(config),
            router,
            keys,
            broker,
            stats,
            key_log,
            throttle: crate::broker::throttle::AuthThrottle::new(5),
            next_session: Default::default(),
            shutdown: Default::default(),
            hard_kill: Default::default(),
            remote: None,
        });
        (db, shared)
    }
}

/// The slowloris defences on virtual time (`tokio::time::pause()`): each deadline fires
/// exactly when configured, measured on the paused clock, whatever the machine's load; the
/// black-box tests in `tests/hostile.rs` check the same over real TCP.
#[cfg(test)]
mod timeouts {
    use std::sync::Arc;
    use std::time::Duration;

    use bytes::{Bytes, BytesMut};
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
    use tokio::time::Instant;
    use tokio_util::codec::Decoder;

    use crate::config::Config;
    use crate::domain::acl::{KeyAcl, KeyTable};
    use crate::domain::{AuthkeyId, UserId};
    use crate::wire::{AuthHash, Channel, Frame, FrameCodec, Ident, Nonce, Secret};

    const AUTH: Duration = Duration::from_secs(10);
    /// Tokio's timer wheel fires at millisecond granularity, rounding up.
    const TICK: Duration = Duration::from_millis(5);

    /// `elapsed` is `deadline`, to the timer's granularity (on the paused clock, so no
    /// scheduling noise enters).
    fn at(elapsed: Duration, deadline: Duration) {
        assert!(
            elapsed >= deadline && elapsed <= deadline + TICK,
            "fired after {elapsed:?}, expected {deadline:?}"
        );
    }
    const FRAME: Duration = Duration::from_secs(30);

    /// One key, `alice`, that may publish on `c`.
    fn keys() -> KeyTable {
        let ident = Ident::new("alice").unwrap();
        let acl = KeyAcl {
            id: AuthkeyId(1),
            ident: ident.clone(),
            secret: Secret::new("s3cret"),
            owner: UserId(1),
            publish: [Channel::new("c").unwrap()].into_iter().collect(),
            subscribe: Default::default(),
        };
        KeyTable::new().update(ident, Arc::new(acl))
    }

    /// The client's end of a connection served in-process, and its read buffer.
    struct Client {
        io: DuplexStream,
        buf: BytesMut,
        codec: FrameCodec,
    }

    impl Client {
        /// Starts serving a new connection; returns the client's end, the nonce it was
        /// given, and the shared state (whose stats the tests read).
        async fn start() -> (
            Client,
            Nonce,
            Arc<crate::broker::Shared>,
            crate::store::scratch::ScratchDb,
        ) {
            let config = Config {
                auth_timeout_secs: AUTH.as_secs(),
                frame_timeout_secs: FRAME.as_secs(),
                ..Config::default()
            };
            let (db, shared) = super::testing::shared(config, keys());
            let (client, server) = tokio::io::duplex(64 * 1024);
            let (r, w) = tokio::io::split(server);
            tokio::spawn(super::serve(
                r,
                w,
                "127.0.0.1:1".parse().unwrap(),
                Arc::clone(&shared),
            ));
            let mut c = Client {
                io: client,
                buf: BytesMut::new(),
                codec: FrameCodec::default(),
            };
            let Some(Frame::Info { nonce, .. }) = c.next().await else {
                panic!("no info frame first");
            };
            (c, nonce, shared, db)
        }

        /// The next frame from the broker, or `None` once it closed.
        async fn next(&mut self) -> Option<Frame> {
            loop {
                if let Some(rx) = self.codec.decode(&mut self.buf).unwrap() {
                    return Some(rx.frame);
                }
                if self.io.read_buf(&mut self.buf).await.unwrap() == 0 {
                    return None;
                }
            }
        }

        async fn send(&mut self, bytes: &[u8]) {
            self.io.write_all(bytes).await.unwrap();
        }

        /// Sends `frame` one byte every `gap`, stopping early if the broker answers.
        async fn trickle(&mut self, frame: &Bytes, gap: Duration) -> Option<Frame> {
            for b in frame.iter() {
                tokio::select! {
                    f = self.next() => return f,
                    () = tokio::time::sleep(gap) => {}
                }
                // The broker may have closed its end meanwhile.
                if self.io.write_all(&[*b]).await.is_err() {
                    return self.next().await;
                }
            }
            None
        }

        /// Waits for the refusal and the close that follows it.
        async fn refused(&mut self) -> String {
            let Some(Frame::Error(e)) = self.next().await else {
                panic!("expected an error frame");
            };
            assert_eq!(self.next().await, None, "closed after the refusal");
            e
        }
    }

    fn auth(nonce: &Nonce) -> Bytes {
        Frame::Auth {
            ident: Ident::new("alice").unwrap(),
            hash: AuthHash::compute(nonce, &Secret::new("s3cret")),
        }
        .to_bytes()
        .unwrap()
    }

    fn publish(payload: &[u8]) -> Bytes {
        Frame::Publish {
            ident: Ident::new("alice").unwrap(),
            channel: Channel::new("c").unwrap(),
            payload: Bytes::copy_from_slice(payload),
        }
        .to_bytes()
        .unwrap()
    }

    #[actix_rt::test]
    async fn a_client_that_never_authenticates_is_refused_at_the_auth_deadline() {
        tokio::time::pause();
        let started = Instant::now();
        let (mut c, _, _shared, _db) = Client::start().await;
        assert_eq!(c.refused().await, "Authentication timeout: no AUTH within 10 s");
        at(started.elapsed(), AUTH);
    }

    #[actix_rt::test]
    async fn trickling_the_auth_frame_does_not_extend_the_auth_deadline() {
        tokio::time::pause();
        let started = Instant::now();
        let (mut c, nonce, _shared, _db) = Client::start().await;
        // One byte a second: each read succeeds, the deadline still holds for the whole.
        let answer = c.trickle(&auth(&nonce), Duration::from_secs(1)).await;
        assert_eq!(
            answer,
            Some(Frame::Error("Authentication timeout: no AUTH within 10 s".into()))
        );
        at(started.elapsed(), AUTH);
    }

    #[actix_rt::test]
    async fn a_started_frame_must_be_finished_within_the_frame_timeout() {
        tokio::time::pause();
        let (mut c, nonce, shared, _db) = Client::start().await;
        c.send(&auth(&nonce)).await;
        // An authenticated connection may stay quiet without a deadline…
        tokio::time::sleep(Duration::from_secs(3600)).await;
        c.send(&publish(b"still here")).await;
        // …but a frame it starts must be whole within FRAME of its first byte.
        let frame = publish(&[b'x'; 64]);
        let started = Instant::now();
        let answer = c.trickle(&frame, Duration::from_secs(1)).await;
        assert_eq!(
            answer,
            Some(Frame::Error(
                "Frame timeout: a frame was not completed within 30 s".into()
            ))
        );
        // The first byte went out one gap after `started`; the deadline counts from the
        // read that buffered it.
        at(started.elapsed(), FRAME + Duration::from_secs(1));
        assert_eq!(c.next().await, None);
        assert_eq!(
            shared
                .stats
                .frame_timeouts
                .load(std::sync::atomic::Ordering::Relaxed),
            1
        );
        assert_eq!(
            shared.stats.publishes.load(std::sync::atomic::Ordering::Relaxed),
            1
        );
    }
}
