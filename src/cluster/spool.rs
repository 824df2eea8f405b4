//! Local publishes on their way to the relay task, kept in one growing buffer. A queue of
//! one message per publish cost every publish an allocation (its copy), a free on another
//! thread and often a wake-up of the relay task: together about as much as delivering the
//! frame to ten local subscribers. Here a publish is one copy into the buffer under a short
//! lock, and the relay task is woken only when the buffer was empty; it takes the whole
//! buffer at once (swapping in its spare, so neither side allocates once warm).
//!
//! A record is `[u16 BE channel length][channel][i64 BE source][frame]`; the frame carries
//! its own length, as every hpfeeds frame does.

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::domain::UserId;

/// Capacity a drained buffer keeps for the next round; a larger one (after a burst) is
/// given back, so an idle node does not hold its peak.
const KEEP_CAPACITY: usize = 4 << 20;

/// The buffer of publishes waiting for the relay task.
#[derive(Default)]
pub(crate) struct Spool {
    inner: Mutex<Inner>,
    ready: Notify,
}

#[derive(Default)]
struct Inner {
    buf: Vec<u8>,
    frames: usize,
}

impl Spool {
    /// Appends a publish; false (nothing appended) when `max_frames` already wait or the
    /// channel's name is too long for a record.
    pub(crate) fn push(&self, channel: &str, source: UserId, frame: &[u8], max_frames: usize) -> bool {
        let Ok(name_len) = u16::try_from(channel.len()) else {
            return false;
        };
        let was_empty = {
            let mut inner = self.inner.lock();
            if inner.frames >= max_frames {
                return false;
            }
            let buf = &mut inner.buf;
            buf.reserve(2 + channel.len() + 8 + frame.len());
            buf.extend_from_slice(&name_len.to_be_bytes());
            buf.extend_from_slice(channel.as_bytes());
            buf.extend_from_slice(&source.0.to_be_bytes());
            buf.extend_from_slice(frame);
            inner.frames += 1;
            inner.frames == 1
        };
        if was_empty {
            // A permit is stored when the relay task is not waiting yet: never lost.
            self.ready.notify_one();
        }
        true
    }

    /// Publishes waiting now.
    pub(crate) fn frames(&self) -> usize {
        self.inner.lock().frames
    }

    /// Takes everything waiting into `spare` (which must be empty) and says how many
    /// publishes it holds; `spare`'s old buffer stays behind for the next pushes.
    pub(crate) fn take(&self, spare: &mut Vec<u8>) -> usize {
        debug_assert!(spare.is_empty());
        if spare.capacity() > KEEP_CAPACITY {
            *spare = Vec::new();
        }
        let mut inner = self.inner.lock();
        std::mem::swap(&mut inner.buf, spare);
        std::mem::take(&mut inner.frames)
    }

    /// Waits until something may wait (returns at once when a push came since the last
    /// wait).
    pub(crate) async fn ready(&self) {
        self.ready.notified().await;
    }
}

/// One publish of a taken buffer.
pub(crate) struct Record<'a> {
    /// The channel's name, as the publisher's session checked it.
    pub channel: &'a str,
    /// The publishing key's owner.
    pub source: UserId,
    /// The frame as the publisher sent it: offset and length in the taken buffer.
    pub frame: std::ops::Range<usize>,
}

/// The publishes of a buffer [`Spool::take`] filled, in order. Only this module writes such
/// buffers; a record that does not parse ends the iteration (never expected).
pub(crate) fn records(buf: &[u8]) -> impl Iterator<Item = Record<'_>> {
    let mut at = 0usize;
    std::iter::from_fn(move || {
        let rest = buf.get(at..)?;
        let name_len = usize::from(u16::from_be_bytes(rest.get(..2)?.try_into().ok()?));
        let channel = std::str::from_utf8(rest.get(2..2 + name_len)?).ok()?;
        let source_at = 2 + name_len;
        let source = i64::from_be_bytes(rest.get(source_at..source_at + 8)?.try_into().ok()?);
        let frame_at = source_at + 8;
        let frame_len = u32::from_be_bytes(rest.get(frame_at..frame_at + 4)?.try_into().ok()?);
        let frame_len = usize::try_from(frame_len).ok()?;
        rest.get(frame_at..frame_at + frame_len)?;
        let start = at + frame_at;
        at = start + frame_len;
        Some(Record {
            channel,
            source: UserId(source),
            frame: start..at,
        })
    })
}

/// A taken buffer as shared bytes, so frames can be handed on as slices of it.
pub(crate) fn freeze(buf: &mut Vec<u8>) -> Bytes {
    Bytes::from(std::mem::take(buf))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Channel, Frame, Ident};

    fn frame(channel: &str, payload: &[u8]) -> Bytes {
        Frame::Publish {
            ident: Ident::new("k").unwrap(),
            channel: Channel::new(channel).unwrap(),
            payload: Bytes::copy_from_slice(payload),
        }
        .to_bytes()
        .unwrap()
    }

    #[test]
    fn publishes_come_out_in_order_with_their_channel_and_source() {
        let spool = Spool::default();
        let a = frame("a", b"one");
        let b = frame("bb", &[7u8; 300]);
        assert!(spool.push("a", UserId(1), &a, 10));
        assert!(spool.push("bb", UserId(-2), &b, 10));
        assert!(spool.push("a", UserId(3), &a, 10));
        assert_eq!(spool.frames(), 3);
        let mut buf = Vec::new();
        assert_eq!(spool.take(&mut buf), 3);
        assert_eq!(spool.frames(), 0);
        let got: Vec<_> = records(&buf)
            .map(|r| (r.channel.to_owned(), r.source, buf[r.frame].to_vec()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("a".to_owned(), UserId(1), a.to_vec()),
                ("bb".to_owned(), UserId(-2), b.to_vec()),
                ("a".to_owned(), UserId(3), a.to_vec()),
            ]
        );
    }

    #[test]
    fn a_full_spool_refuses_and_takes_again_once_drained() {
        let spool = Spool::default();
        let f = frame("c", b"x");
        assert!(spool.push("c", UserId(1), &f, 2));
        assert!(spool.push("c", UserId(1), &f, 2));
        assert!(!spool.push("c", UserId(1), &f, 2));
        let mut buf = Vec::new();
        assert_eq!(spool.take(&mut buf), 2);
        buf.clear();
        assert!(spool.push("c", UserId(1), &f, 2));
        assert_eq!(spool.take(&mut buf), 1);
        assert_eq!(records(&buf).count(), 1);
    }

    #[test]
    fn a_cut_buffer_ends_the_records_without_a_panic() {
        let spool = Spool::default();
        let f = frame("c", b"payload");
        spool.push("c", UserId(1), &f, 10);
        spool.push("c", UserId(1), &f, 10);
        let mut buf = Vec::new();
        spool.take(&mut buf);
        for cut in 0..buf.len() {
            assert!(records(&buf[..cut]).count() <= 1);
        }
    }

    #[tokio::test]
    async fn a_push_before_the_wait_is_not_missed() {
        let spool = Spool::default();
        spool.push("c", UserId(1), &frame("c", b"x"), 10);
        tokio::time::timeout(std::time::Duration::from_secs(1), spool.ready())
            .await
            .unwrap();
    }
}
