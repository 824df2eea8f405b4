//! Frame size limits, checked on the 5-byte header before a single body byte is buffered.
//!
//! The defaults are those of the PyPI `hpfeeds` 3.1.0 broker (`protocol.py`, `SIZES`), except
//! for subscribe and unsubscribe, which 3.1.0 lets grow to 1 MiB: a channel longer than 255
//! bytes can never be published to (publish prefixes it with a u8), so we refuse such frames.

use super::header::{HEADER_LEN, Opcode};
use super::names::MAX_NAME_LEN;

/// Payload bytes a publish may carry by default, as 3.1.0's `MAXBUF`.
pub const DEFAULT_MAX_PAYLOAD: usize = 1024 * 1024;

/// Largest info or auth frame: header + name/ident (≤ 256 with prefix) + 20-byte hash, as 3.1.0.
pub const MAX_HANDSHAKE_FRAME: usize = HEADER_LEN + 256 + 20;

/// Largest subscribe or unsubscribe frame: header + prefixed ident + a 255-byte channel.
pub const MAX_SUBSCRIBE_FRAME: usize = HEADER_LEN + 1 + MAX_NAME_LEN + MAX_NAME_LEN;

/// Per-opcode maximum total frame lengths (header included).
///
/// When a header announces more, the decoder fails with `WireError::TooLarge` before
/// reserving memory, and the broker closes the connection with an error frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest publish or error frame, header included.
    pub max_publish_frame: usize,
}

impl Limits {
    /// Limits for a maximum payload of `max_payload` bytes, counted as 3.1.0 does: the whole
    /// publish frame may be `5 + max_payload` bytes long (ident and channel included).
    pub fn with_max_payload(max_payload: usize) -> Self {
        Self {
            max_publish_frame: HEADER_LEN.saturating_add(max_payload),
        }
    }

    /// The largest total length accepted for a frame with this opcode.
    pub fn max_frame(&self, op: Opcode) -> usize {
        match op {
            Opcode::Error | Opcode::Publish => self.max_publish_frame,
            Opcode::Info | Opcode::Auth => MAX_HANDSHAKE_FRAME,
            Opcode::Subscribe | Opcode::Unsubscribe => MAX_SUBSCRIBE_FRAME,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self::with_max_payload(DEFAULT_MAX_PAYLOAD)
    }
}
