//! The hpfeeds wire protocol: frames, limits, codec and the auth challenge.
//!
//! This module owns every byte-level rule of hpfeeds and nothing else: it does no I/O
//! beyond the `tokio_util` codec and knows nothing about users, channels' owners or ACLs.

pub mod auth;
pub mod codec;
pub mod frame;
pub mod header;
pub mod limits;
pub mod names;
#[cfg(test)]
mod proptests;

pub use auth::{AuthHash, Nonce, Secret};
pub use codec::{FrameCodec, Received};
pub use frame::{Frame, Opcode, WireError};
pub use limits::Limits;
pub use names::{Channel, Ident, NameError};
