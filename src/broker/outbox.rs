//! A subscriber's bounded queue of frames waiting to be written.
//!
//! Publishers push cheap `Bytes` clones of one shared frame, or a copy where it waits behind
//! others (see [`Compact`]: the bound holds in real memory); the connection's writer takes
//! everything queued in one batch and writes it with vectored writes, so one syscall carries
//! many frames. The queue is bounded in bytes: a full outbox is a slow consumer, handled by
//! the configured policy, never by growing memory. Under backpressure a publisher waits
//! for room ([`Outbox::push_waiting`]); every waiter shares one deadline, counted from when
//! the outbox filled and reset whenever the writer takes a batch, so a subscriber that
//! reads (however slowly) is waited for and one that stopped reading is cut once.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::time::{Duration, Instant};

use super::refusal::Refusal;
use crate::wire::Frame;

/// Why a frame was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushError {
    /// The byte bound would be exceeded: the subscriber is not keeping up.
    Full,
    /// The connection is closing; nothing more is written.
    Closed,
    /// Under backpressure: the outbox stayed full for the whole stall timeout.
    Stalled,
}

#[derive(Debug, Default)]
struct State {
    queue: VecDeque<Bytes>,
    bytes: usize,
    closed: bool,
    /// Data frames (and their bytes) queued since last collected: the key's "received"
    /// traffic, counted under the lock already held, at no extra cost per delivery.
    delivered: (u64, u64),
    /// Since when publishers have been waiting for room (reset when the writer takes a
    /// batch): the start of every waiter's stall deadline.
    full_since: Option<Instant>,
    /// When the oldest queued frame was queued, for one batch in [`LATENCY_SAMPLE`]: the
    /// start of that batch's write latency (a clock read per batch would cost the publish
    /// path more than the measurement is worth).
    oldest: Option<Instant>,
    /// Batches begun (the queue stopped being empty), for the sampling.
    batches: u32,
    /// Where the frames that wait behind others are copied (see [`Outbox::push`]): one
    /// chunk holds only this outbox's frames, which leave in order, so a chunk lives no
    /// longer than its last frame; dropped when the writer has caught up, so an idle outbox
    /// holds none.
    arena: BytesMut,
}

/// Bytes of one arena chunk: a copy costs a memcpy, not an allocation.
const ARENA_CHUNK: usize = 16 * 1024;

/// Frames past this size are copied into an allocation of their own, not an arena chunk.
const ARENA_FRAME_MAX: usize = ARENA_CHUNK / 4;

impl State {
    /// Counts a data frame as delivered and gives the bytes to queue for it (see
    /// [`Compact`]).
    fn enqueue_data(&mut self, frame: &mut Compact) -> Bytes {
        self.delivered.0 += 1;
        self.delivered.1 += frame.shared.len() as u64;
        if self.queue.is_empty() {
            return frame.shared.clone();
        }
        if let Some(copy) = &frame.copy {
            return copy.clone();
        }
        if frame.shared.len() <= ARENA_FRAME_MAX && frame.arena_ok {
            frame.arena_ok = false;
            if self.arena.capacity() - self.arena.len() < frame.shared.len() {
                self.arena = BytesMut::with_capacity(ARENA_CHUNK);
            }
            self.arena.extend_from_slice(&frame.shared);
            return self.arena.split().freeze();
        }
        frame.copy.insert(Bytes::copy_from_slice(&frame.shared)).clone()
    }
}

/// A data frame on its way into receivers' outboxes. A published frame is a slice of its
/// publisher's read buffer, and a slice keeps the whole buffer alive: queued behind other
/// frames (a receiver that is behind), a frame of a hundred counted bytes could pin a read
/// buffer of hundreds of KiB for as long as it waits, so that a publisher interleaving
/// small frames for a stopped reader with large ones nobody takes pinned memory the byte
/// bound never saw. So the frame is shared only with an outbox whose queue is empty (the
/// writer takes it at once: at most one such frame waits per outbox); where it waits, it
/// is copied: for a frame with one receiver, into that outbox's arena chunk (a memcpy, no
/// allocation); for a frame with several, once into an allocation of its own that every
/// receiver behind shares (a chunk must hold only its outbox's frames, or another
/// receiver's frame could keep it alive). The byte bound then holds in real memory, give or
/// take a chunk and the frame being written.
#[derive(Debug)]
pub struct Compact {
    shared: Bytes,
    /// The copy every further receiver that is behind shares.
    copy: Option<Bytes>,
    /// Whether a copy may go into an outbox's arena (a frame for one receiver only).
    arena_ok: bool,
}

impl Compact {
    /// The frame as read (a slice of a read buffer, or any other `Bytes`), for `receivers`.
    pub fn new(frame: Bytes, receivers: usize) -> Self {
        Self {
            shared: frame,
            copy: None,
            arena_ok: receivers <= 1,
        }
    }

    /// Bytes the frame counts against a bound.
    pub fn size(&self) -> usize {
        self.shared.len()
    }
}

/// One batch in this many (the first of each outbox among them) has its write latency
/// measured.
pub const LATENCY_SAMPLE: u32 = 16;

/// Bounded multi-producer, single-consumer frame queue.
#[derive(Debug)]
pub struct Outbox {
    state: Mutex<State>,
    ready: Notify,
    /// Wakes publishers waiting for room when the writer takes a batch.
    room: Notify,
    limit: usize,
}

impl Outbox {
    /// An empty outbox holding at most `limit` bytes of data frames.
    pub fn new(limit: usize) -> Self {
        Self {
            state: Mutex::new(State::default()),
            ready: Notify::new(),
            room: Notify::new(),
            limit,
        }
    }

    fn enqueue(&self, st: &mut State, frame: Bytes) {
        let was_empty = st.queue.is_empty();
        st.bytes += frame.len();
        st.queue.push_back(frame);
        if was_empty {
            st.batches = st.batches.wrapping_add(1);
            if st.batches % LATENCY_SAMPLE == 1 {
                st.oldest = Some(Instant::now());
            }
            // notify_one stores a permit when the writer is not waiting yet, so no wake-up is lost.
            self.ready.notify_one();
        }
    }

    /// Queues a data frame unless that would pass the byte bound (shared with the read
    /// buffer it came from only when nothing waits before it: see [`Compact`]).
    pub fn push(&self, frame: &mut Compact) -> Result<(), PushError> {
        let mut st = self.state.lock();
        if st.closed {
            return Err(PushError::Closed);
        }
        if st.bytes + frame.size() > self.limit {
            return Err(PushError::Full);
        }
        let frame = st.enqueue_data(frame);
        self.enqueue(&mut st, frame);
        Ok(())
    }

    /// Queues a data frame, waiting for room while the outbox is full: the backpressure
    /// policy. Gives up with `Stalled` once the outbox has been full for `stall` (the same
    /// deadline for every waiter). A frame is taken whenever the queue is empty, so one
    /// larger than the bound cannot wait forever. `wanted` is asked under the lock right
    /// before queueing (the receiver may have lost the right while we waited): `Ok(false)`
    /// when it says no.
    pub async fn push_waiting(
        &self,
        frame: &mut Compact,
        stall: Duration,
        wanted: impl Fn() -> bool,
    ) -> Result<bool, PushError> {
        loop {
            let room = self.room.notified();
            tokio::pin!(room);
            // Registered before the check, so a batch taken in between still wakes us.
            room.as_mut().enable();
            let deadline = {
                let mut st = self.state.lock();
                if st.closed {
                    return Err(PushError::Closed);
                }
                if st.queue.is_empty() || st.bytes + frame.size() <= self.limit {
                    if !wanted() {
                        return Ok(false);
                    }
                    let frame = st.enqueue_data(frame);
                    self.enqueue(&mut st, frame);
                    return Ok(true);
                }
                *st.full_since.get_or_insert_with(Instant::now) + stall
            };
            if tokio::time::timeout_at(deadline, room).await.is_err() {
                let st = self.state.lock();
                // Woken late but the writer did take a batch meanwhile: try again.
                if st.full_since.is_some_and(|since| since + stall <= Instant::now()) {
                    return Err(PushError::Stalled);
                }
            }
        }
    }

    /// Data frames and bytes queued since the last call (for the key's usage counters).
    pub fn take_delivered(&self) -> (u64, u64) {
        std::mem::take(&mut self.state.lock().delivered)
    }

    /// Queues a data frame, dropping the oldest queued frames to make room. Returns how
    /// many older frames were dropped; `Full` when the frame alone is over the bound.
    pub fn push_drop_oldest(&self, frame: &mut Compact) -> Result<usize, PushError> {
        let mut st = self.state.lock();
        if st.closed {
            return Err(PushError::Closed);
        }
        if frame.size() > self.limit {
            return Err(PushError::Full);
        }
        let mut dropped = 0;
        while st.bytes + frame.size() > self.limit {
            match st.queue.pop_front() {
                Some(old) => {
                    st.bytes -= old.len();
                    dropped += 1;
                }
                None => break,
            }
        }
        let frame = st.enqueue_data(frame);
        self.enqueue(&mut st, frame);
        Ok(dropped)
    }

    /// Queues a small control frame (an error) regardless of the bound, so that a client is
    /// always told why; refused only once closed.
    pub fn push_control(&self, frame: Bytes) -> Result<(), PushError> {
        let mut st = self.state.lock();
        if st.closed {
            return Err(PushError::Closed);
        }
        self.enqueue(&mut st, frame);
        Ok(())
    }

    /// Tells the client why with an error frame and, when the refusal closes, lets the
    /// writer flush and end the connection. (A closed outbox means the connection is already
    /// going away: there is nobody left to tell.)
    pub fn refuse(&self, refusal: &Refusal) {
        let _ = self.push_control(Frame::error_bytes(&refusal.to_string()));
        if refusal.closes() {
            self.close();
        }
    }

    /// Accepts nothing more; the writer drains what is queued, then ends.
    pub fn close(&self) {
        self.state.lock().closed = true;
        self.ready.notify_one();
        self.room.notify_waiters();
    }

    /// Drops everything queued and closes; returns how many frames were dropped.
    pub fn abort(&self) -> usize {
        let mut st = self.state.lock();
        st.closed = true;
        let n = st.queue.len();
        st.queue.clear();
        st.oldest = None;
        st.bytes = 0;
        self.ready.notify_one();
        self.room.notify_waiters();
        n
    }

    /// Bytes of data frames queued now (a gauge for the metrics).
    pub fn queued_bytes(&self) -> usize {
        self.state.lock().bytes
    }

    /// Moves all queued frames into `batch` without waiting; `None` when there were none,
    /// else when the oldest of them was queued if this batch is one sampled for latency.
    pub fn try_take(&self, batch: &mut Vec<Bytes>) -> Option<Option<Instant>> {
        let mut st = self.state.lock();
        if st.queue.is_empty() {
            return None;
        }
        batch.extend(st.queue.drain(..));
        st.bytes = 0;
        if st.full_since.take().is_some() {
            self.room.notify_waiters();
        }
        Some(st.oldest.take())
    }

    /// Waits for frames and moves all queued ones into `batch` (with [`Outbox::try_take`]'s
    /// sampled time). `None` once the outbox is closed and drained: the writer then shuts
    /// the connection down.
    pub async fn next_batch(&self, batch: &mut Vec<Bytes>) -> Option<Option<Instant>> {
        loop {
            if let Some(since) = self.try_take(batch) {
                return Some(since);
            }
            {
                let mut st = self.state.lock();
                if st.closed {
                    drop(st);
                    // Frames pushed just before the close are still taken.
                    return self.try_take(batch);
                }
                // Caught up: the written batches kept what they needed of the chunk, and
                // an idle outbox keeps none.
                st.arena = BytesMut::new();
            }
            self.ready.notified().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(b: Bytes) -> Compact {
        Compact::new(b, 1)
    }

    #[test]
    fn a_frame_behind_others_no_longer_points_into_the_read_buffer() {
        let o = Outbox::new(1 << 20);
        let read = Bytes::from(vec![7u8; 256 * 1024]);
        let within = |b: &Bytes| read.as_ptr_range().contains(&b.as_ptr());
        o.push(&mut f(read.slice(0..100))).unwrap();
        o.push(&mut f(read.slice(100..200))).unwrap();
        o.push(&mut f(read.slice(200..200 + ARENA_FRAME_MAX + 1)))
            .unwrap();
        let mut batch = Vec::new();
        o.try_take(&mut batch).unwrap();
        assert!(within(&batch[0]), "the first goes out at once, shared");
        assert!(!within(&batch[1]), "one that waited is a copy");
        assert!(!within(&batch[2]), "a large one too");
        assert_eq!(batch[1], read.slice(100..200));
        assert_eq!(batch[2], read.slice(200..200 + ARENA_FRAME_MAX + 1));
        // Copies fill one chunk, then the next.
        o.state.lock().arena = BytesMut::new();
        o.push(&mut f(read.slice(0..1))).unwrap();
        let per_chunk = ARENA_CHUNK / 1000;
        for _ in 0..per_chunk + 1 {
            o.push(&mut f(read.slice(0..1000))).unwrap();
        }
        batch.clear();
        o.try_take(&mut batch).unwrap();
        let base = batch[1].as_ptr();
        assert_eq!(
            batch[per_chunk].as_ptr(),
            base.wrapping_add(1000 * (per_chunk - 1))
        );
        let next = batch[per_chunk + 1].as_ptr();
        assert_ne!(
            next,
            base.wrapping_add(1000 * per_chunk),
            "a full chunk is not grown"
        );
        assert!(batch[1..].iter().all(|b| b == &read.slice(0..1000)));
    }

    #[test]
    fn a_frame_behind_in_many_outboxes_is_copied_once_for_all() {
        let read = Bytes::from(vec![7u8; 64 * 1024]);
        let outboxes: Vec<Outbox> = (0..4).map(|_| Outbox::new(1 << 20)).collect();
        for o in &outboxes {
            o.push(&mut f(Bytes::from_static(b"ahead"))).unwrap();
        }
        let mut frame = Compact::new(read.slice(0..100), outboxes.len());
        for o in &outboxes {
            o.push(&mut frame).unwrap();
        }
        let taken: Vec<Bytes> = outboxes
            .iter()
            .map(|o| {
                let mut batch = Vec::new();
                o.try_take(&mut batch).unwrap();
                batch.pop().unwrap()
            })
            .collect();
        assert!(taken.iter().all(|b| b == &read.slice(0..100)));
        assert!(taken.iter().all(|b| !read.as_ptr_range().contains(&b.as_ptr())));
        assert!(outboxes.iter().all(|o| o.state.lock().arena.capacity() == 0));
        assert_eq!(taken[0].as_ptr(), taken[1].as_ptr());
        assert_eq!(taken[1].as_ptr(), taken[2].as_ptr());
        assert_eq!(taken[2].as_ptr(), taken[3].as_ptr());
    }

    #[test]
    fn bound_is_in_bytes() {
        let o = Outbox::new(10);
        assert_eq!(o.push(&mut f(Bytes::from_static(b"123456"))), Ok(()));
        assert_eq!(o.push(&mut f(Bytes::from_static(b"12345"))), Err(PushError::Full));
        assert_eq!(o.push(&mut f(Bytes::from_static(b"1234"))), Ok(()));
        assert_eq!(o.queued_bytes(), 10);
        assert_eq!(o.push_control(Bytes::from_static(b"error")), Ok(()));
    }

    #[test]
    fn delivered_counts_data_frames_only_and_resets() {
        let o = Outbox::new(100);
        o.push(&mut f(Bytes::from_static(b"abc"))).unwrap();
        o.push_drop_oldest(&mut f(Bytes::from_static(b"de"))).unwrap();
        o.push_control(Bytes::from_static(b"error")).unwrap();
        assert_eq!(o.push(&mut f(Bytes::from(vec![0; 200]))), Err(PushError::Full));
        assert_eq!(o.take_delivered(), (2, 5));
        assert_eq!(o.take_delivered(), (0, 0));
    }

    #[test]
    fn drop_oldest_makes_room() {
        let o = Outbox::new(10);
        o.push(&mut f(Bytes::from_static(b"aaaaa"))).unwrap();
        o.push(&mut f(Bytes::from_static(b"bbbbb"))).unwrap();
        assert_eq!(o.push_drop_oldest(&mut f(Bytes::from_static(b"cc"))), Ok(1));
        assert_eq!(o.queued_bytes(), 7);
        assert_eq!(
            o.push_drop_oldest(&mut f(Bytes::from(vec![0; 11]))),
            Err(PushError::Full)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_push_goes_in_when_the_writer_takes_a_batch() {
        let o = std::sync::Arc::new(Outbox::new(4));
        o.push(&mut f(Bytes::from_static(b"abcd"))).unwrap();
        let waiter = {
            let o = std::sync::Arc::clone(&o);
            tokio::spawn(async move {
                o.push_waiting(&mut f(Bytes::from_static(b"ef")), Duration::from_secs(5), || true)
                    .await
            })
        };
        tokio::time::sleep(Duration::from_secs(4)).await;
        let mut batch = Vec::new();
        assert!(o.try_take(&mut batch).is_some());
        assert_eq!(waiter.await.unwrap(), Ok(true));
        assert_eq!(o.queued_bytes(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn every_waiter_shares_one_deadline_from_when_the_outbox_filled() {
        let o = std::sync::Arc::new(Outbox::new(4));
        o.push(&mut f(Bytes::from_static(b"abcd"))).unwrap();
        let start = Instant::now();
        let first = {
            let o = std::sync::Arc::clone(&o);
            tokio::spawn(async move {
                o.push_waiting(&mut f(Bytes::from_static(b"e")), Duration::from_secs(5), || true)
                    .await
            })
        };
        tokio::time::sleep(Duration::from_secs(3)).await;
        // A later waiter does not get a fresh five seconds.
        let r = o
            .push_waiting(&mut f(Bytes::from_static(b"f")), Duration::from_secs(5), || true)
            .await;
        assert_eq!(r, Err(PushError::Stalled));
        assert_eq!(start.elapsed(), Duration::from_secs(5));
        assert_eq!(first.await.unwrap(), Err(PushError::Stalled));
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_push_asks_whether_it_is_still_wanted() {
        let o = std::sync::Arc::new(Outbox::new(4));
        o.push(&mut f(Bytes::from_static(b"abcd"))).unwrap();
        let waiter = {
            let o = std::sync::Arc::clone(&o);
            tokio::spawn(async move {
                o.push_waiting(&mut f(Bytes::from_static(b"e")), Duration::from_secs(5), || false)
                    .await
            })
        };
        tokio::task::yield_now().await;
        let mut batch = Vec::new();
        assert!(o.try_take(&mut batch).is_some());
        assert_eq!(waiter.await.unwrap(), Ok(false));
        assert_eq!(o.queued_bytes(), 0);
        o.close();
        let r = o
            .push_waiting(&mut f(Bytes::from_static(b"e")), Duration::from_secs(5), || true)
            .await;
        assert_eq!(r, Err(PushError::Closed));
    }

    #[tokio::test]
    async fn an_outbox_whose_writer_caught_up_keeps_no_chunk() {
        let o = Outbox::new(1 << 20);
        o.push(&mut f(Bytes::from_static(b"a"))).unwrap();
        o.push(&mut f(Bytes::from_static(b"b"))).unwrap();
        let mut batch = Vec::new();
        o.next_batch(&mut batch).await.unwrap();
        assert!(o.state.lock().arena.capacity() > 0, "b was copied into a chunk");
        let idle = tokio::time::timeout(Duration::from_millis(10), o.next_batch(&mut batch)).await;
        assert!(idle.is_err(), "nothing more to take");
        assert_eq!(o.state.lock().arena.capacity(), 0);
    }

    #[tokio::test]
    async fn writer_drains_then_sees_close() {
        let o = Outbox::new(100);
        o.push(&mut f(Bytes::from_static(b"a"))).unwrap();
        o.push(&mut f(Bytes::from_static(b"b"))).unwrap();
        o.close();
        assert_eq!(o.push(&mut f(Bytes::from_static(b"c"))), Err(PushError::Closed));
        let mut batch = Vec::new();
        assert!(o.next_batch(&mut batch).await.is_some());
        assert_eq!(batch.len(), 2);
        assert!(o.next_batch(&mut batch).await.is_none());
    }
}
