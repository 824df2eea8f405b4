//! A run of one channel's publishes carried in one JetStream message. Storing and
//! acknowledging every hpfeeds frame on its own would cost a stream write and an ack each;
//! a node instead sends what queued for a channel while its previous message was on the
//! way as one message: `[i64 BE source][frame]` repeated, each frame self-delimited by its
//! own `u32` length. Nothing about a frame changes: the receiver hands each one on as the
//! publisher sent it.

use bytes::{Buf, Bytes};

use crate::domain::UserId;

/// Bytes of a batch past which a new one starts (a NATS server's default `max_payload` is
/// 1 MiB; headers and a frame over the line fit beside it). One frame is never split: a
/// frame larger than this travels alone.
pub const BATCH_BYTES: usize = 256 << 10;

/// Bytes a record adds to its frame (the source).
pub const RECORD_OVERHEAD: usize = 8;

/// Appends one record (`source`, `frame`) to `body`.
pub fn push(body: &mut Vec<u8>, source: UserId, frame: &[u8]) {
    body.extend_from_slice(&source.0.to_be_bytes());
    body.extend_from_slice(frame);
}

/// Why a batch could not be read to its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// A record stops before its source or its frame's length.
    #[error("a record is cut short")]
    Truncated,
    /// A frame's length is below the frame header or past the batch's end.
    #[error("a frame's length does not fit the batch")]
    BadLength,
}

/// The records of a batch, in order: `(source, frame)`, each frame a slice of the batch.
pub fn records(body: &Bytes) -> Records {
    Records {
        rest: body.clone(),
        failed: false,
    }
}

/// Iterator over a batch's records; after an error it ends.
pub struct Records {
    rest: Bytes,
    failed: bool,
}

impl Iterator for Records {
    type Item = Result<(UserId, Bytes), BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.rest.is_empty() {
            return None;
        }
        let out = self.take();
        self.failed = out.is_err();
        Some(out)
    }
}

impl Records {
    fn take(&mut self) -> Result<(UserId, Bytes), BatchError> {
        if self.rest.len() < RECORD_OVERHEAD + 4 {
            return Err(BatchError::Truncated);
        }
        let source = UserId(self.rest.get_i64());
        let len = u32::from_be_bytes([self.rest[0], self.rest[1], self.rest[2], self.rest[3]]);
        let len = usize::try_from(len).map_err(|_| BatchError::BadLength)?;
        if len < crate::wire::header::HEADER_LEN || len > self.rest.len() {
            return Err(BatchError::BadLength);
        }
        Ok((source, self.rest.split_to(len)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Channel, Frame, Ident};

    fn frame(channel: &str, payload: &[u8]) -> Vec<u8> {
        Frame::Publish {
            ident: Ident::new("ident").unwrap(),
            channel: Channel::new(channel).unwrap(),
            payload: Bytes::copy_from_slice(payload),
        }
        .to_bytes()
        .unwrap()
        .to_vec()
    }

    #[test]
    fn records_come_back_as_they_went_in() {
        let frames = [frame("c", b"one"), frame("c", b""), frame("c", &[7u8; 3000])];
        let mut body = Vec::new();
        for (i, f) in (-1i64..).zip(&frames) {
            push(&mut body, UserId(i), f);
        }
        let body = Bytes::from(body);
        let got: Vec<_> = records(&body).collect::<Result<_, _>>().unwrap();
        assert_eq!(got.len(), 3);
        for ((i, (source, f)), sent) in (-1i64..).zip(&got).zip(&frames) {
            assert_eq!(*source, UserId(i));
            assert_eq!(f.as_ref(), sent.as_slice());
        }
    }

    #[test]
    fn a_cut_or_lying_batch_ends_with_an_error_never_a_panic() {
        let mut body = Vec::new();
        push(&mut body, UserId(1), &frame("c", b"x"));
        let whole = body.len();
        for cut in 1..whole {
            let b = Bytes::copy_from_slice(&body[..cut]);
            let got: Vec<_> = records(&b).collect();
            assert_eq!(got.len(), 1, "cut at {cut}");
            assert!(got[0].is_err(), "cut at {cut}");
        }
        // A length below the header, and one past the end.
        for len in [0u32, 4, 1 << 30] {
            let mut b = 9i64.to_be_bytes().to_vec();
            b.extend_from_slice(&len.to_be_bytes());
            b.extend_from_slice(&[3u8; 16]);
            let got: Vec<_> = records(&Bytes::from(b)).collect();
            assert_eq!(got, vec![Err(BatchError::BadLength)]);
        }
    }
}
