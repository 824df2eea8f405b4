//! `tokio_util` codec over [`Frame`]: the only place bytes from a socket become frames.
//!
//! The decoder hands out each whole frame's raw bytes beside the parsed frame, because a
//! valid publish is forwarded to subscribers unchanged: the broker shares those bytes and
//! never re-encodes.

use bytes::{Buf, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use super::frame::{Frame, Opcode, WireError, check};
use super::limits::Limits;
use super::names::NameCache;

/// A decoded frame and the exact bytes it arrived as.
#[derive(Debug, Clone)]
pub struct Received {
    /// The parsed frame.
    pub frame: Frame,
    /// The whole frame, header included, as received.
    pub raw: Bytes,
}

/// Errors of the codec: a protocol fault or the socket's own error.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The peer sent bytes that are not hpfeeds.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// Reading or writing the socket failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// hpfeeds framing with per-opcode size limits.
#[derive(Debug, Clone, Default)]
pub struct FrameCodec {
    limits: Limits,
    /// Boxed and made on the first publish: a connection that never publishes (an idle
    /// subscriber) holds one pointer for it.
    names: Option<Box<NameCache>>,
}

impl FrameCodec {
    /// A codec that refuses frames over `limits`.
    pub fn new(limits: Limits) -> Self {
        Self { limits, names: None }
    }
}

impl Decoder for FrameCodec {
    type Item = Received;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Received>, CodecError> {
        match check(src, &self.limits)? {
            Some((op, len)) => {
                let raw = src.split_to(len).freeze();
                let frame = if op == Opcode::Publish {
                    Frame::parse_with(&raw, self.names.get_or_insert_default())?
                } else {
                    Frame::parse(&raw)?
                };
                Ok(Some(Received { frame, raw }))
            }
            None => {
                // The header was validated, so reserving the announced length is bounded.
                if src.len() >= 5 {
                    let len =
                        usize::try_from(u32::from_be_bytes([src[0], src[1], src[2], src[3]])).unwrap_or(0);
                    src.reserve(len.saturating_sub(src.len()));
                }
                Ok(None)
            }
        }
    }
}

impl Encoder<&Frame> for FrameCodec {
    type Error = CodecError;

    fn encode(&mut self, item: &Frame, dst: &mut BytesMut) -> Result<(), CodecError> {
        item.encode(dst)?;
        Ok(())
    }
}

impl Encoder<Bytes> for FrameCodec {
    type Error = CodecError;

    fn encode(&mut self, item: Bytes, dst: &mut BytesMut) -> Result<(), CodecError> {
        dst.extend_from_slice(item.chunk());
        Ok(())
    }
}
