//! Property tests of the decoder: it round-trips every frame it can encode, and no byte
//! string makes it panic or buffer more than the frame limit.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use tokio_util::codec::Decoder;

use super::{AuthHash, Channel, Frame, FrameCodec, Ident, Limits, Nonce};

fn name() -> impl Strategy<Value = String> + Clone {
    // Any valid name: UTF-8 of 1..=255 bytes (a char is up to 4 bytes, so cap at 63 chars
    // first), without control or format characters or surrounding whitespace.
    "\\PC{1,63}".prop_filter("a valid name", |s| {
        !s.is_empty() && s.len() <= 255 && super::names::check_text("name", s).is_ok()
    })
}

fn frame() -> impl Strategy<Value = Frame> {
    let ident = name().prop_map(|s| Ident::new(&s).unwrap()).boxed();
    let channel = name().prop_map(|s| Channel::new(&s).unwrap()).boxed();
    let payload = proptest::collection::vec(any::<u8>(), 0..2048).prop_map(Bytes::from);
    prop_oneof![
        ".{0,200}".prop_map(Frame::Error),
        (
            ".{0,60}".prop_filter("255 bytes", |s: &String| s.len() <= 255),
            any::<[u8; 4]>()
        )
            .prop_map(|(name, n)| Frame::Info {
                name,
                nonce: Nonce(n)
            }),
        (ident.clone(), any::<[u8; 20]>()).prop_map(|(ident, h)| Frame::Auth {
            ident,
            hash: AuthHash(h)
        }),
        (ident.clone(), channel.clone(), payload).prop_map(|(ident, channel, payload)| Frame::Publish {
            ident,
            channel,
            payload
        }),
        (ident.clone(), channel.clone()).prop_map(|(ident, channel)| Frame::Subscribe { ident, channel }),
        (ident, channel).prop_map(|(ident, channel)| Frame::Unsubscribe { ident, channel }),
    ]
}

proptest! {
    #[test]
    fn decode_inverts_encode(f in frame()) {
        let bytes = f.to_bytes().unwrap();
        let (g, n) = Frame::decode(&bytes, &Limits::default()).unwrap().unwrap();
        prop_assert_eq!(n, bytes.len());
        prop_assert_eq!(g, f);
    }

    #[test]
    fn several_frames_in_one_buffer_decode_in_order(fs in proptest::collection::vec(frame(), 1..8)) {
        let mut buf = BytesMut::new();
        for f in &fs {
            f.encode(&mut buf).unwrap();
        }
        let mut codec = FrameCodec::new(Limits::default());
        let mut out = Vec::new();
        while let Some(rx) = codec.decode(&mut buf).unwrap() {
            prop_assert_eq!(rx.raw, rx.frame.to_bytes().unwrap());
            out.push(rx.frame);
        }
        prop_assert!(buf.is_empty());
        prop_assert_eq!(out, fs);
    }

    #[test]
    fn arbitrary_bytes_never_panic_nor_overallocate(
        data in proptest::collection::vec(any::<u8>(), 0..600),
        max_payload in 0usize..512,
    ) {
        let limits = Limits::with_max_payload(max_payload);
        let mut codec = FrameCodec::new(limits);
        // Feed in two pieces, as a socket would.
        let split = data.len() / 2;
        let mut buf = BytesMut::new();
        for piece in [&data[..split], &data[split..]] {
            buf.extend_from_slice(piece);
            let biggest = limits.max_publish_frame.max(super::limits::MAX_SUBSCRIBE_FRAME);
            while let Ok(Some(rx)) = codec.decode(&mut buf) {
                prop_assert!(rx.raw.len() <= biggest);
            }
            // The decoder reserves at most one frame's worth beyond what it was given.
            prop_assert!(buf.capacity() <= data.len() + limits.max_publish_frame.max(super::limits::MAX_SUBSCRIBE_FRAME) + 64);
        }
    }

    #[test]
    fn huge_length_prefixes_are_refused_before_buffering(len in 2_000_000u32.., op in 0u8..6) {
        let mut buf = BytesMut::from(&[&len.to_be_bytes()[..], &[op][..]].concat()[..]);
        let mut codec = FrameCodec::new(Limits::default());
        prop_assert!(codec.decode(&mut buf).is_err());
        prop_assert!(buf.capacity() < 4096);
    }
}
