//! The session state machine driven by arbitrary frame sequences (decoded from the input
//! as a client's byte stream) against a small key table: it must never panic, never
//! authenticate without the right hash, and never let a key publish or subscribe outside
//! its ACL (a channel it receives, or that channel's presence channel) or under another
//! ident. A refusal that closes ends the session, as the I/O layer does. The seed corpus
//! starts with a valid auth for nonce 00000000 and secret "s".
#![no_main]

use std::collections::HashMap;
use std::sync::Arc;

use bytes::BytesMut;
use hpfriends::broker::session::{Action, Session};
use hpfriends::domain::acl::{KeyAcl, KeyTable, Sources};
use hpfriends::domain::{AuthkeyId, UserId};
use hpfriends::wire::{Channel, FrameCodec, Ident, Limits, Nonce, Secret};
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;

fn table() -> KeyTable {
    let ch = |s: &str| Channel::new(s).expect("channel");
    let acl = KeyAcl {
        id: AuthkeyId(1),
        ident: Ident::new("k").expect("ident"),
        secret: Secret::new("s"),
        owner: UserId(7),
        publish: [ch("pub")].into_iter().collect(),
        subscribe: HashMap::from([(ch("sub"), Sources::Users(std::sync::Arc::new([UserId(7)].into())))]),
    };
    KeyTable::from_iter([(acl.ident.clone(), Arc::new(acl))])
}

fuzz_target!(|data: &[u8]| {
    let keys = Arc::new(table());
    let acl = Arc::clone(&keys[&Ident::new("k").expect("ident")]);
    let mut session = Session::new(Nonce([0; 4]));
    let mut codec = FrameCodec::new(Limits::with_max_payload(64 * 1024));
    let mut buf = BytesMut::from(data);
    let mut authed = false;
    while let Ok(Some(rx)) = codec.decode(&mut buf) {
        let current = authed.then(|| acl.as_ref());
        let action = session.on_frame(rx.frame.clone(), rx.raw.clone(), || Arc::clone(&keys), current);
        match action {
            Action::Authenticated(a) => {
                assert!(!authed, "authenticated twice");
                assert_eq!(a.ident.as_str(), "k");
                authed = true;
            }
            Action::Publish {
                channel,
                source,
                frame,
            } => {
                assert!(authed, "publish before auth");
                assert_eq!(channel.as_str(), "pub");
                assert_eq!(source, UserId(7));
                assert_eq!(frame, rx.raw, "forwarded unchanged");
            }
            Action::Subscribe(channel) => {
                assert!(authed);
                // The presence channel of a channel the key receives is open to it too.
                assert!(
                    matches!(channel.as_str(), "sub" | "sub..broker"),
                    "subscribed to {:?}",
                    channel.as_str()
                );
            }
            Action::Unsubscribe(_) => assert!(authed),
            Action::Refuse(r) => {
                if r.closes() {
                    return;
                }
            }
        }
    }
});
