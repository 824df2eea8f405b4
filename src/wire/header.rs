//! The 5-byte frame header every hpfeeds frame starts with: its length and the opcode,
//! the only things known about a frame before its body is read (and its size limit
//! checked, `limits.rs`).

/// Length of the frame header: u32 length + u8 opcode.
pub const HEADER_LEN: usize = 5;

/// The six hpfeeds opcodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Opcode {
    /// Broker → client: an error message, UTF-8 text.
    Error = 0,
    /// Broker → client once on connect: broker name and auth nonce.
    Info = 1,
    /// Client → broker: ident and sha1(nonce ‖ secret).
    Auth = 2,
    /// Both ways: ident, channel, payload.
    Publish = 3,
    /// Client → broker: ident, channel.
    Subscribe = 4,
    /// Client → broker: ident, channel.
    Unsubscribe = 5,
}

impl Opcode {
    /// The opcode for a wire byte, if there is one.
    pub fn from_u8(b: u8) -> Option<Self> {
        Some(match b {
            0 => Self::Error,
            1 => Self::Info,
            2 => Self::Auth,
            3 => Self::Publish,
            4 => Self::Subscribe,
            5 => Self::Unsubscribe,
            _ => return None,
        })
    }

    /// Lower-case name used in error messages and logs.
    pub fn name(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Info => "info",
            Self::Auth => "auth",
            Self::Publish => "publish",
            Self::Subscribe => "subscribe",
            Self::Unsubscribe => "unsubscribe",
        }
    }
}
