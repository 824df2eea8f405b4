//! A subscriber's bounded queue of frames waiting to be written.
//!
//! Publishers push cheap `Bytes` clones of one shared frame; the connection's writer takes
//! everything queued in one batch and writes it with vectored writes, so one syscall carries
//! many frames. The queue is bounded in bytes: a full outbox is a slow consumer, handled by
//! the configured policy, never by growing memory. Under backpressure a publisher waits
//! for room ([`Outbox::push_waiting`]); every waiter shares one deadline, counted from when
//! the outbox filled and reset whenever the writer takes a batch, so a subscriber that
//! reads (however slowly) is waited for and one that stopped reading is cut once.

use std::collections::VecDeque;

use bytes::Bytes;
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

    /// Queues a data frame unless that would pass the byte bound.
    pub fn push(&self, frame: Bytes) -> Result<(), PushError> {
        let mut st = self.state.lock();
        if st.closed {
            return Err(PushError::Closed);
        }
        if st.bytes + frame.len() > self.limit {
            return Err(PushError::Full);
        }
        st.delivered.0 += 1;
        st.delivered.1 += frame.len() as u64;
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
        frame: Bytes,
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
                if st.queue.is_empty() || st.bytes + frame.len() <= self.limit {
                    if !wanted() {
                        return Ok(false);
                    }
                    st.delivered.0 += 1;
                    st.delivered.1 += frame.len() as u64;
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
    pub fn push_drop_oldest(&self, frame: Bytes) -> Result<usize, PushError> {
        let mut st = self.state.lock();
        if st.closed {
            return Err(PushError::Closed);
        }
        if frame.len() > self.limit {
            return Err(PushError::Full);
        }
        let mut dropped = 0;
        while st.bytes + frame.len() > self.limit {
            match st.queue.pop_front() {
                Some(old) => {
                    st.bytes -= old.len();
                    dropped += 1;
                }
                None => break,
            }
        }
        st.delivered.0 += 1;
        st.delivered.1 += frame.len() as u64;
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
            if self.state.lock().closed {
                // Frames pushed just before the close are still taken.
                return self.try_take(batch);
            }
            self.ready.notified().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bound_is_in_bytes() {
        let o = Outbox::new(10);
        assert_eq!(o.push(Bytes::from_static(b"123456")), Ok(()));
        assert_eq!(o.push(Bytes::from_static(b"12345")), Err(PushError::Full));
        assert_eq!(o.push(Bytes::from_static(b"1234")), Ok(()));
        assert_eq!(o.queued_bytes(), 10);
        assert_eq!(o.push_control(Bytes::from_static(b"error")), Ok(()));
    }

    #[test]
    fn delivered_counts_data_frames_only_and_resets() {
        let o = Outbox::new(100);
        o.push(Bytes::from_static(b"abc")).unwrap();
        o.push_drop_oldest(Bytes::from_static(b"de")).unwrap();
        o.push_control(Bytes::from_static(b"error")).unwrap();
        assert_eq!(o.push(Bytes::from(vec![0; 200])), Err(PushError::Full));
        assert_eq!(o.take_delivered(), (2, 5));
        assert_eq!(o.take_delivered(), (0, 0));
    }

    #[test]
    fn drop_oldest_makes_room() {
        let o = Outbox::new(10);
        o.push(Bytes::from_static(b"aaaaa")).unwrap();
        o.push(Bytes::from_static(b"bbbbb")).unwrap();
        assert_eq!(o.push_drop_oldest(Bytes::from_static(b"cc")), Ok(1));
        assert_eq!(o.queued_bytes(), 7);
        assert_eq!(o.push_drop_oldest(Bytes::from(vec![0; 11])), Err(PushError::Full));
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_push_goes_in_when_the_writer_takes_a_batch() {
        let o = std::sync::Arc::new(Outbox::new(4));
        o.push(Bytes::from_static(b"abcd")).unwrap();
        let waiter = {
            let o = std::sync::Arc::clone(&o);
            tokio::spawn(async move {
                o.push_waiting(Bytes::from_static(b"ef"), Duration::from_secs(5), || true)
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
        o.push(Bytes::from_static(b"abcd")).unwrap();
        let start = Instant::now();
        let first = {
            let o = std::sync::Arc::clone(&o);
            tokio::spawn(async move {
                o.push_waiting(Bytes::from_static(b"e"), Duration::from_secs(5), || true)
                    .await
            })
        };
        tokio::time::sleep(Duration::from_secs(3)).await;
        // A later waiter does not get a fresh five seconds.
        let r = o
            .push_waiting(Bytes::from_static(b"f"), Duration::from_secs(5), || true)
            .await;
        assert_eq!(r, Err(PushError::Stalled));
        assert_eq!(start.elapsed(), Duration::from_secs(5));
        assert_eq!(first.await.unwrap(), Err(PushError::Stalled));
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_push_asks_whether_it_is_still_wanted() {
        let o = std::sync::Arc::new(Outbox::new(4));
        o.push(Bytes::from_static(b"abcd")).unwrap();
        let waiter = {
            let o = std::sync::Arc::clone(&o);
            tokio::spawn(async move {
                o.push_waiting(Bytes::from_static(b"e"), Duration::from_secs(5), || false)
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
            .push_waiting(Bytes::from_static(b"e"), Duration::from_secs(5), || true)
            .await;
        assert_eq!(r, Err(PushError::Closed));
    }

    #[tokio::test]
    async fn writer_drains_then_sees_close() {
        let o = Outbox::new(100);
        o.push(Bytes::from_static(b"a")).unwrap();
        o.push(Bytes::from_static(b"b")).unwrap();
        o.close();
        assert_eq!(o.push(Bytes::from_static(b"c")), Err(PushError::Closed));
        let mut batch = Vec::new();
        assert!(o.next_batch(&mut batch).await.is_some());
        assert_eq!(batch.len(), 2);
        assert!(o.next_batch(&mut batch).await.is_none());
    }
}
