//! The frame decoder fed arbitrary bytes as a stream, split at an arbitrary point: it must
//! never panic, never buffer more than one frame's limit, and every client frame it accepts
//! (auth, publish, subscribe, unsubscribe) must encode back to exactly the bytes received:
//! publishes are forwarded unchanged. (Error and info frames only ever come from brokers;
//! their text is read leniently, so they need not round-trip.)
#![no_main]

use bytes::BytesMut;
use hpfriends::wire::{Frame, FrameCodec, Limits};
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let limits = Limits::with_max_payload(64 * 1024);
    let mut codec = FrameCodec::new(limits.clone());
    let mut buf = BytesMut::new();
    let cut = usize::from(split).min(rest.len());
    for chunk in [&rest[..cut], &rest[cut..]] {
        buf.extend_from_slice(chunk);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(rx)) => {
                    assert_eq!(Frame::parse(&rx.raw).expect("parses again"), rx.frame);
                    if !matches!(rx.frame, Frame::Error(_) | Frame::Info { .. }) {
                        let again = rx.frame.to_bytes().expect("a decoded frame encodes");
                        assert_eq!(again, rx.raw, "re-encoding changed the frame");
                    }
                }
                Ok(None) => break,
                Err(_) => return,
            }
            // Never more than the largest frame plus what arrived is reserved.
            assert!(buf.capacity() <= 5 + 64 * 1024 + rest.len() + 64 * 1024);
        }
    }
});
