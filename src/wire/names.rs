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
    /// Control and format characters (NUL, newlines, right-to-left overrides, zero-width
    /// characters) let a name pass for another or forge lines in logs and mails.
    #[error("{what} contains the control or format character U+{code:04X}")]
    Unprintable {
        /// "ident" or "channel".
        what: &'static str,
        /// The character's code point.
        code: u32,
    },
    /// `"c "` and `"c"` would look the same everywhere a name is shown.
    #[error("{what} begins or ends with whitespace")]
    Whitespace {
        /// "ident" or "channel".
        what: &'static str,
    },
}

/// Unicode's format characters (general category Cf, Unicode 15.1): invisible, and able to
/// reorder or hide the text around them.
const FORMAT: &[(u32, u32)] = &[
    (0x00AD, 0x00AD),
    (0x0600, 0x0605),
    (0x061C, 0x061C),
    (0x06DD, 0x06DD),
    (0x070F, 0x070F),
    (0x0890, 0x0891),
    (0x08E2, 0x08E2),
    (0x180E, 0x180E),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x2064),
    (0x2066, 0x206F),
    (0xFEFF, 0xFEFF),
    (0xFFF9, 0xFFFB),
    (0x110BD, 0x110BD),
    (0x110CD, 0x110CD),
    (0x13430, 0x1343F),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0001, 0xE0001),
    (0xE0020, 0xE007F),
];

/// Whether `c` is a control (Cc) or format (Cf) character.
pub fn unprintable(c: char) -> bool {
    let u = u32::from(c);
    c.is_control() || FORMAT.iter().any(|(lo, hi)| (*lo..=*hi).contains(&u))
}

/// Checks a name people will read: no control or format characters, no surrounding
/// whitespace. Shared by channels and idents here and by user and group names above.
pub fn check_text(what: &'static str, s: &str) -> Result<(), NameError> {
    // Nearly every name is ASCII: its only unprintables are C0 controls and DEL.
    let bad = if s.is_ascii() {
        s.bytes().find(|b| *b < 0x20 || *b == 0x7f).map(char::from)
    } else {
        s.chars().find(|c| unprintable(*c))
    };
    if let Some(c) = bad {
        return Err(NameError::Unprintable {
            what,
            code: u32::from(c),
        });
    }
    if s.starts_with(char::is_whitespace) || s.ends_with(char::is_whitespace) {
        return Err(NameError::Whitespace { what });
    }
    Ok(())
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
                check_text($what, s)?;
                Ok(Self(Arc::from(s)))
            }

            /// Validates a name read from the wire: length, then UTF-8.
            pub fn from_wire(b: &[u8]) -> Result<Self, NameError> {
                Self::check_len(b.len())?;
                let s = std::str::from_utf8(b).map_err(|_| NameError::NotUtf8 { what: $what })?;
                check_text($what, s)?;
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

/// The last ident and channel a connection's frames named, so that a stream of publishes
/// on one channel costs no allocation or validation per frame: the name is compared with
/// the last one and its `Arc` shared.
#[derive(Debug, Default, Clone)]
pub struct NameCache {
    ident: Option<Ident>,
    channel: Option<Channel>,
}

impl NameCache {
    /// `b` as an ident, reusing the last one when it is the same.
    pub fn ident(&mut self, b: &[u8]) -> Result<Ident, NameError> {
        match &self.ident {
            Some(i) if i.as_str().as_bytes() == b => Ok(i.clone()),
            _ => {
                let i = Ident::from_wire(b)?;
                self.ident = Some(i.clone());
                Ok(i)
            }
        }
    }

    /// `b` as a channel, reusing the last one when it is the same.
    pub fn channel(&mut self, b: &[u8]) -> Result<Channel, NameError> {
        match &self.channel {
            Some(c) if c.as_str().as_bytes() == b => Ok(c.clone()),
            _ => {
                let c = Channel::from_wire(b)?;
                self.channel = Some(c.clone());
                Ok(c)
            }
        }
    }
}

/// Suffix of a presence channel: `CHAN..broker` carries the broker's `join`/`leave`
/// notices for `CHAN` (as the original hpfeeds broker did); nobody may publish on it.
pub const PRESENCE_SUFFIX: &str = "..broker";

/// Punctuation a channel name typed on the site, the API or the command line may hold
/// besides letters and digits (any existing client's names, and URL-ish ones, fit).
pub const TYPED_CHANNEL_PUNCTUATION: &str = "._-:/+#&?@=~";

impl Channel {
    /// A channel name as a person types it when making a key, a share or a request: one
    /// word that begins with a letter or digit, of letters, digits and
    /// [`TYPED_CHANNEL_PUNCTUATION`]. The wire keeps accepting whatever an old client sends
    /// ([`Channel::new`]); what hpfriends itself creates is held to this, everywhere alike.
    pub fn typed(s: &str) -> Result<Channel, String> {
        let c = Channel::new(s).map_err(|e| e.to_string())?;
        if !s.starts_with(char::is_alphanumeric) {
            return Err(format!("{s:?} must begin with a letter or digit"));
        }
        if let Some(bad) = s
            .chars()
            .find(|c| !c.is_alphanumeric() && !TYPED_CHANNEL_PUNCTUATION.contains(*c))
        {
            let what = if bad.is_whitespace() {
                "white space".to_owned()
            } else {
                format!("{bad:?}")
            };
            return Err(format!(
                "{s:?} may not hold {what}: a channel is one word of letters, digits and {TYPED_CHANNEL_PUNCTUATION}"
            ));
        }
        Ok(c)
    }

    /// For a presence channel `CHAN..broker`, the channel `CHAN` it reports on.
    pub fn presence_of(&self) -> Option<&str> {
        self.as_str()
            .strip_suffix(PRESENCE_SUFFIX)
            .filter(|base| !base.is_empty())
    }

    /// The presence channel of this one (`CHAN..broker`); `None` for a presence channel
    /// itself or when the name would be too long to travel.
    pub fn presence(&self) -> Option<Channel> {
        if self.presence_of().is_some() {
            return None;
        }
        Channel::new(&format!("{}{PRESENCE_SUFFIX}", self.as_str())).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_channels_are_one_word_everywhere() {
        for ok in [
            "dionaea.capture",
            "mwbinary.dionaea.sensorunique",
            "a&b/c?d#e+f",
            "ews:json",
            "été.events",
        ] {
            assert!(Channel::typed(ok).is_ok(), "{ok}");
        }
        for bad in [
            "cowrie sessions",
            "sessions!!",
            "../etc",
            ".hidden",
            "a\"b",
            "x;y",
            "",
        ] {
            assert!(Channel::typed(bad).is_err(), "{bad}");
        }
        // The wire keeps what old clients send.
        assert!(Channel::new("cowrie sessions").is_ok());
    }

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

    #[test]
    fn names_that_pass_for_others_are_refused() {
        for (bad, code) in [
            ("invoice\u{202e}fdp.exe", 0x202E),
            ("a\0b", 0),
            ("a\nb", 0x0A),
            ("zero\u{200b}width", 0x200B),
            ("bom\u{feff}", 0xFEFF),
            ("tag\u{e0041}", 0xE0041),
        ] {
            assert_eq!(
                Channel::new(bad),
                Err(NameError::Unprintable {
                    what: "channel",
                    code
                }),
                "{bad:?}"
            );
            assert!(
                Channel::from_wire(bad.as_bytes()).is_err(),
                "{bad:?} from the wire"
            );
            assert!(Ident::new(bad).is_err());
        }
        for bad in [" c", "c ", "\u{3000}c"] {
            assert_eq!(Channel::new(bad), Err(NameError::Whitespace { what: "channel" }));
        }
        for good in ["dionaea.capture", "a b", "каналы", "日本語", "emoji🙂"] {
            assert!(Channel::new(good).is_ok(), "{good:?}");
        }
    }
}
