//! hpfeeds frames: `u32 BE total length | u8 opcode | body`.
//!
//! Decoding is two steps, as in mini-redis: [`check`] looks only at the 5-byte header and
//! says whether a whole frame is buffered (refusing oversize lengths before anything is
//! reserved), then [`Frame::parse`] builds the frame from exactly those bytes. Every fault
//! is its own [`WireError`] variant so that the broker can tell the client what was wrong.

use bytes::{BufMut, Bytes, BytesMut};

use super::auth::{AuthHash, HASH_LEN, NONCE_LEN, Nonce};
use super::limits::Limits;
use super::names::{Channel, Ident, NameCache, NameError};

pub use super::header::{HEADER_LEN, Opcode};

/// Why bytes are not a valid hpfeeds frame. Each variant reads as a sentence for the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The length prefix counts the 5-byte header, so anything smaller is corrupt.
    #[error("frame length {len} is shorter than the 5-byte header")]
    TooShort {
        /// The announced total length.
        len: usize,
    },
    /// Announced length over the per-opcode limit; refused before buffering the body.
    #[error("{} frame of {len} bytes exceeds the limit of {max} bytes", op.name())]
    TooLarge {
        /// Opcode of the frame.
        op: Opcode,
        /// The announced total length.
        len: usize,
        /// The limit for this opcode.
        max: usize,
    },
    /// The opcode byte is not one of 0–5.
    #[error("unknown opcode {0}")]
    UnknownOpcode(u8),
    /// A u8-prefixed string announced more bytes than the frame holds.
    #[error("{} frame: the {field} length runs past the end of the frame", op.name())]
    Truncated {
        /// Opcode of the frame.
        op: Opcode,
        /// The field whose length prefix overran.
        field: &'static str,
    },
    /// A fixed-size field (nonce, hash) has the wrong size: bytes missing or left over.
    #[error("{} frame: {field} must be exactly {expected} bytes, got {got}", op.name())]
    BadLength {
        /// Opcode of the frame.
        op: Opcode,
        /// The fixed-size field.
        field: &'static str,
        /// Its required size.
        expected: usize,
        /// The size found.
        got: usize,
    },
    /// An ident or channel that is empty, too long or not UTF-8.
    #[error("{} frame: {source}", op.name())]
    Name {
        /// Opcode of the frame.
        op: Opcode,
        /// What is wrong with the name.
        source: NameError,
    },
}

/// One decoded hpfeeds frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Error message from the broker.
    Error(String),
    /// Broker name and the per-connection nonce.
    Info {
        /// Broker name (informational).
        name: String,
        /// Challenge for the auth hash.
        nonce: Nonce,
    },
    /// Authentication: ident and sha1(nonce ‖ secret).
    Auth {
        /// Which key.
        ident: Ident,
        /// Proof of the secret.
        hash: AuthHash,
    },
    /// A message on a channel; forwarded unchanged to subscribers.
    Publish {
        /// The publishing key's ident.
        ident: Ident,
        /// The channel tag.
        channel: Channel,
        /// Opaque payload, shared with the receive buffer.
        payload: Bytes,
    },
    /// Start receiving a channel.
    Subscribe {
        /// The subscribing key's ident.
        ident: Ident,
        /// The channel (rest of the frame, not length-prefixed).
        channel: Channel,
    },
    /// Stop receiving a channel.
    Unsubscribe {
        /// The key's ident.
        ident: Ident,
        /// The channel (rest of the frame).
        channel: Channel,
    },
}

/// Looks at the header in `buf` and, when a whole frame is buffered, returns its opcode
/// and total length. `Ok(None)` means more bytes are needed. Allocates nothing.
pub fn check(buf: &[u8], limits: &Limits) -> Result<Option<(Opcode, usize)>, WireError> {
    let Some(header) = buf.get(..HEADER_LEN) else {
        return Ok(None);
    };
    let len = usize::try_from(u32::from_be_bytes([header[0], header[1], header[2], header[3]]))
        .unwrap_or(usize::MAX);
    let op = Opcode::from_u8(header[4]).ok_or(WireError::UnknownOpcode(header[4]))?;
    if len < HEADER_LEN {
        return Err(WireError::TooShort { len });
    }
    let max = limits.max_frame(op);
    if len > max {
        return Err(WireError::TooLarge { op, len, max });
    }
    Ok((buf.len() >= len).then_some((op, len)))
}

/// Splits a u8-length-prefixed string off the front of `body`.
fn take_str<'a>(body: &'a [u8], op: Opcode, field: &'static str) -> Result<(&'a [u8], &'a [u8]), WireError> {
    let (&n, rest) = body.split_first().ok_or(WireError::Truncated { op, field })?;
    let n = usize::from(n);
    if rest.len() < n {
        return Err(WireError::Truncated { op, field });
    }
    Ok(rest.split_at(n))
}

fn name<T>(r: Result<T, NameError>, op: Opcode) -> Result<T, WireError> {
    r.map_err(|source| WireError::Name { op, source })
}

impl Frame {
    /// The opcode this frame is sent with.
    pub fn opcode(&self) -> Opcode {
        match self {
            Self::Error(_) => Opcode::Error,
            Self::Info { .. } => Opcode::Info,
            Self::Auth { .. } => Opcode::Auth,
            Self::Publish { .. } => Opcode::Publish,
            Self::Subscribe { .. } => Opcode::Subscribe,
            Self::Unsubscribe { .. } => Opcode::Unsubscribe,
        }
    }

    /// Parses one whole frame (header included), as delimited by [`check`]. The publish
    /// payload is a zero-copy slice of `raw`.
    pub fn parse(raw: &Bytes) -> Result<Frame, WireError> {
        Self::parse_with(raw, &mut NameCache::default())
    }

    /// [`Frame::parse`], taking a publish's ident and channel from `names` when they are
    /// the ones the last publish named (see [`NameCache`]).
    pub fn parse_with(raw: &Bytes, names: &mut NameCache) -> Result<Frame, WireError> {
        let Some(header) = raw.get(..HEADER_LEN) else {
            return Err(WireError::TooShort { len: raw.len() });
        };
        let op = Opcode::from_u8(header[4]).ok_or(WireError::UnknownOpcode(header[4]))?;
        let body = &raw[HEADER_LEN..];
        Ok(match op {
            Opcode::Error => Frame::Error(String::from_utf8_lossy(body).into_owned()),
            Opcode::Info => {
                let (n, rest) = take_str(body, op, "name")?;
                let nonce = <[u8; NONCE_LEN]>::try_from(rest).map_err(|_| WireError::BadLength {
                    op,
                    field: "nonce",
                    expected: NONCE_LEN,
                    got: rest.len(),
                })?;
                Frame::Info {
                    name: String::from_utf8_lossy(n).into_owned(),
                    nonce: Nonce(nonce),
                }
            }
            Opcode::Auth => {
                let (ident, rest) = take_str(body, op, "ident")?;
                let hash = <[u8; HASH_LEN]>::try_from(rest).map_err(|_| WireError::BadLength {
                    op,
                    field: "hash",
                    expected: HASH_LEN,
                    got: rest.len(),
                })?;
                Frame::Auth {
                    ident: name(Ident::from_wire(ident), op)?,
                    hash: AuthHash(hash),
                }
            }
            Opcode::Publish => {
                let (ident, rest) = take_str(body, op, "ident")?;
                let (channel, payload) = take_str(rest, op, "channel")?;
                let ident = name(names.ident(ident), op)?;
                let channel = name(names.channel(channel), op)?;
                Frame::Publish {
                    ident,
                    channel,
                    payload: raw.slice_ref(payload),
                }
            }
            Opcode::Subscribe | Opcode::Unsubscribe => {
                let (ident, channel) = take_str(body, op, "ident")?;
                let ident = name(Ident::from_wire(ident), op)?;
                let channel = name(Channel::from_wire(channel), op)?;
                if op == Opcode::Subscribe {
                    Frame::Subscribe { ident, channel }
                } else {
                    Frame::Unsubscribe { ident, channel }
                }
            }
        })
    }

    /// Convenience for tests and fuzzing: decode the first frame of `buf`, returning it
    /// and its length, or `Ok(None)` if it is not complete yet.
    pub fn decode(buf: &[u8], limits: &Limits) -> Result<Option<(Frame, usize)>, WireError> {
        match check(buf, limits)? {
            None => Ok(None),
            Some((_, len)) => {
                let raw = Bytes::copy_from_slice(&buf[..len]);
                Ok(Some((Frame::parse(&raw)?, len)))
            }
        }
    }

    /// Length of the body once encoded.
    fn body_len(&self) -> usize {
        match self {
            Self::Error(m) => m.len(),
            Self::Info { name, .. } => 1 + name.len().min(255) + NONCE_LEN,
            Self::Auth { ident, .. } => 1 + ident.as_str().len() + HASH_LEN,
            Self::Publish {
                ident,
                channel,
                payload,
            } => 2 + ident.as_str().len() + channel.as_str().len() + payload.len(),
            Self::Subscribe { ident, channel } | Self::Unsubscribe { ident, channel } => {
                1 + ident.as_str().len() + channel.as_str().len()
            }
        }
    }

    /// Total encoded length, header included.
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + self.body_len()
    }

    /// Appends the encoded frame to `dst`. Fails only when the frame could not be described
    /// by a u32 length; the info name is cut to 255 bytes.
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), WireError> {
        let len = self.encoded_len();
        let len32 = u32::try_from(len).map_err(|_| WireError::TooLarge {
            op: self.opcode(),
            len,
            max: u32::MAX as usize,
        })?;
        dst.reserve(len);
        dst.put_u32(len32);
        dst.put_u8(self.opcode() as u8);
        match self {
            Self::Error(m) => dst.put_slice(m.as_bytes()),
            Self::Info { name, nonce } => {
                let n = &name.as_bytes()[..name.len().min(255)];
                put_str(dst, n);
                dst.put_slice(&nonce.0);
            }
            Self::Auth { ident, hash } => {
                put_str(dst, ident.as_str().as_bytes());
                dst.put_slice(&hash.0);
            }
            Self::Publish {
                ident,
                channel,
                payload,
            } => {
                put_str(dst, ident.as_str().as_bytes());
                put_str(dst, channel.as_str().as_bytes());
                dst.put_slice(payload);
            }
            Self::Subscribe { ident, channel } | Self::Unsubscribe { ident, channel } => {
                put_str(dst, ident.as_str().as_bytes());
                dst.put_slice(channel.as_str().as_bytes());
            }
        }
        Ok(())
    }

    /// Encodes into a fresh shared buffer, ready to be cloned onto many outboxes.
    pub fn to_bytes(&self) -> Result<Bytes, WireError> {
        let mut b = BytesMut::with_capacity(self.encoded_len());
        self.encode(&mut b)?;
        Ok(b.freeze())
    }

    /// Encodes an error frame; never fails because messages are short text.
    pub fn error_bytes(message: &str) -> Bytes {
        let mut b = BytesMut::with_capacity(HEADER_LEN + message.len());
        let len = u32::try_from(HEADER_LEN + message.len()).unwrap_or(u32::MAX);
        b.put_u32(len);
        b.put_u8(Opcode::Error as u8);
        b.put_slice(message.as_bytes());
        b.freeze()
    }
}

/// Names are at most 255 bytes by construction (`Ident`/`Channel`), so the cast is exact.
fn put_str(dst: &mut BytesMut, s: &[u8]) {
    let n = u8::try_from(s.len()).unwrap_or(u8::MAX);
    dst.put_u8(n);
    dst.put_slice(&s[..usize::from(n)]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits::default()
    }

    fn raw(len: u32, op: u8, body: &[u8]) -> Vec<u8> {
        let mut v = len.to_be_bytes().to_vec();
        v.push(op);
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn publish_roundtrip_shares_payload() {
        let f = Frame::Publish {
            ident: Ident::new("i").unwrap(),
            channel: Channel::new("c").unwrap(),
            payload: Bytes::from_static(b"hello"),
        };
        let b = f.to_bytes().unwrap();
        assert_eq!(&b[..], b"\x00\x00\x00\x0e\x03\x01i\x01chello");
        assert_eq!(Frame::parse(&b).unwrap(), f);
    }

    #[test]
    fn subscribe_channel_is_rest_of_frame() {
        let b = raw(5 + 1 + 1 + 3, 4, b"\x01iabc");
        let (f, n) = Frame::decode(&b, &limits()).unwrap().unwrap();
        assert_eq!(n, b.len());
        assert_eq!(
            f,
            Frame::Subscribe {
                ident: Ident::new("i").unwrap(),
                channel: Channel::new("abc").unwrap()
            }
        );
    }

    #[test]
    fn each_fault_has_its_variant() {
        let l = limits();
        assert_eq!(check(&raw(4, 3, b""), &l), Err(WireError::TooShort { len: 4 }));
        assert_eq!(check(&raw(0, 3, b""), &l), Err(WireError::TooShort { len: 0 }));
        assert_eq!(check(&raw(9, 6, b""), &l), Err(WireError::UnknownOpcode(6)));
        assert!(matches!(
            check(&raw(u32::MAX, 3, b""), &l),
            Err(WireError::TooLarge { .. })
        ));
        assert!(matches!(
            check(&raw(300, 2, b""), &l),
            Err(WireError::TooLarge { op: Opcode::Auth, .. })
        ));
        assert!(matches!(
            Frame::decode(&raw(8, 3, b"\x05ab"), &l),
            Err(WireError::Truncated { field: "ident", .. })
        ));
        assert!(matches!(
            Frame::decode(&raw(8, 3, b"\x01a\x05"), &l),
            Err(WireError::Truncated { field: "channel", .. })
        ));
        assert!(matches!(
            Frame::decode(&raw(5 + 2 + 21, 2, &[&b"\x01a"[..], &[0; 21]].concat()), &l),
            Err(WireError::BadLength {
                field: "hash",
                got: 21,
                ..
            })
        ));
        assert!(matches!(
            Frame::decode(&raw(5 + 1 + 5, 1, b"\x00abcde"), &l),
            Err(WireError::BadLength {
                field: "nonce",
                got: 5,
                ..
            })
        ));
        assert!(matches!(
            Frame::decode(&raw(5 + 3 + 1, 4, b"\x02\xff\xfex"), &l),
            Err(WireError::Name { .. })
        ));
        assert!(matches!(
            Frame::decode(&raw(5 + 2, 4, b"\x01i"), &l),
            Err(WireError::Name {
                source: NameError::Empty { what: "channel" },
                ..
            })
        ));
    }

    #[test]
    fn incomplete_frames_wait() {
        let b = raw(10, 3, b"\x01a\x01b");
        assert_eq!(check(&b[..3], &limits()), Ok(None));
        assert_eq!(check(&b, &limits()), Ok(None));
    }

    #[test]
    fn publish_limit_counts_whole_frame() {
        let l = Limits::with_max_payload(100);
        assert_eq!(check(&raw(105, 3, b""), &l), Ok(None));
        assert!(matches!(
            check(&raw(106, 3, b""), &l),
            Err(WireError::TooLarge { max: 105, .. })
        ));
    }
}
