//! `Ident` and `Channel`: the two names that travel on the wire.
//!
//! Both are u8-length-prefixed strings in most frames, so at most 255 bytes, and UTF-8 in
//! every known client. They are cheap to clone (`Arc<str>`) because the broker keeps them
//! as keys of its routing tables and in every session.

use std::borrow::Borrow;
use std::fmt;
use std::sync::Arc;

/// Longest ident or channel: a u8 length prefix cannot say more.
pub const MAX_NAME_LEN: usize = 255;

/// Why a byte string is not a valid ident or channel name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Names must be non-empty so that they can be told apart and listed.
    #[error("{what} is empty")]
    Empty {
        /// "ident" or "channel".
        what: &'static str,
    },
    /// A u8 length prefix cannot carry more than 255 bytes.
    #[error("{what} is {len} bytes long; at most 255 are allowed")]
    TooLong {
        /// "ident" or "channel".
        what: &'static str,
        /// The length seen.
        len: usize,
    },
    /// Every known client sends UTF-8; anything else is refused with this message.
    #[error("{what} is not valid UTF-8")]
    NotUtf8 {
        /// "ident" or "channel".
        what: &'static str,
    },
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Arc<str>);

        impl $name {
            /// Validates a name given as text (CLI, config, database).
            pub fn new(s: &str) -> Result<Self, NameError> {
                Self::check_len(s.len())?;
                Ok(Self(Arc::from(s)))
            }

            /// Validates a name read from the wire: length, then UTF-8.
            pub fn from_wire(b: &[u8]) -> Result<Self, NameError> {
                Self::check_len(b.len())?;
                let s = std::str::from_utf8(b).map_err(|_| NameError::NotUtf8 { what: $what })?;
                Ok(Self(Arc::from(s)))
            }

            fn check_len(len: usize) -> Result<(), NameError> {
                if len == 0 {
                    return Err(NameError::Empty { what: $what });
                }
                if len > MAX_NAME_LEN {
                    return Err(NameError::TooLong { what: $what, len });
                }
                Ok(())
            }

            /// The name as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&*self.0, f)
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl std::str::FromStr for $name {
            type Err = NameError;
            fn from_str(s: &str) -> Result<Self, NameError> {
                Self::new(s)
            }
        }
    };
}

name_type!(
    /// The public half of an authkey: names the key in auth, publish and subscribe frames.
    Ident,
    "ident"
);
name_type!(
    /// A channel name: a tag on a message, not an owned room (see ARCHITECTURE.md).
    Channel,
    "channel"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(Ident::new("a").is_ok());
        assert_eq!(Ident::new(""), Err(NameError::Empty { what: "ident" }));
        assert!(Channel::new(&"x".repeat(255)).is_ok());
        assert_eq!(
            Channel::new(&"x".repeat(256)),
            Err(NameError::TooLong {
                what: "channel",
                len: 256
            })
        );
        assert_eq!(
            Channel::from_wire(&[0xff, 0xfe]),
            Err(NameError::NotUtf8 { what: "channel" })
        );
    }
}
