//! The per-connection session state machine, free of I/O.
//!
//! It takes one decoded frame at a time and returns what the I/O layer must do. Keeping it
//! pure lets every rule of PROTOCOL.md's session table be unit-tested without sockets, and
//! lets the fuzzer drive it with arbitrary frame sequences.

use std::ops::Deref;
use std::sync::Arc;

use bytes::Bytes;

use super::refusal::Refusal;
use crate::domain::UserId;
use crate::domain::acl::{KeyAcl, KeyTable};
use crate::wire::{Channel, Frame, Ident, Nonce};

/// What the I/O layer does after a frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// The client proved the key's secret: register the session under this ACL.
    Authenticated(Arc<KeyAcl>),
    /// Fan the frame out, unchanged, to the channel's receivers of `source`'s messages.
    Publish {
        /// Channel to route on.
        channel: Channel,
        /// The publishing key's owner: the source receivers are chosen by.
        source: UserId,
        /// The whole publish frame as received.
        frame: Bytes,
    },
    /// Add a subscription (already checked against the ACL).
    Subscribe(Channel),
    /// Drop a subscription, if there is one.
    Unsubscribe(Channel),
    /// Send the refusal as an error frame and, if it says so, close.
    Refuse(Refusal),
}

/// Where a connection is in its life.
#[derive(Debug)]
pub struct Session {
    nonce: Nonce,
    ident: Option<Ident>,
}

impl Session {
    /// A session that has sent its info frame with `nonce` and awaits auth.
    pub fn new(nonce: Nonce) -> Self {
        Self { nonce, ident: None }
    }

    /// The nonce the client must hash its secret with.
    pub fn nonce(&self) -> Nonce {
        self.nonce
    }

    /// The authenticated ident, once there is one.
    pub fn ident(&self) -> Option<&Ident> {
        self.ident.as_ref()
    }

    /// Decides what one frame means. `keys` gives the table to authenticate against (asked
    /// only for an auth frame); `acl` is the session key's current ACL (`None` before auth,
    /// or once the key is gone).
    pub fn on_frame<K: Deref<Target = KeyTable>>(
        &mut self,
        frame: Frame,
        raw: Bytes,
        keys: impl FnOnce() -> K,
        acl: Option<&KeyAcl>,
    ) -> Action {
        let Some(me) = &self.ident else {
            return match frame {
                Frame::Auth { ident, hash } => match keys().get(&ident) {
                    Some(key) if hash.verifies(&self.nonce, &key.secret) => {
                        self.ident = Some(ident);
                        Action::Authenticated(Arc::clone(key))
                    }
                    _ => Action::Refuse(Refusal::AuthFailed { ident }),
                },
                _ => Action::Refuse(Refusal::FirstNotAuth),
            };
        };
        let Some(acl) = acl else {
            return Action::Refuse(Refusal::KeyRevoked { ident: me.clone() });
        };
        match frame {
            Frame::Publish { ident, channel, .. } => {
                if ident != *me {
                    Action::Refuse(Refusal::IdentMismatch {
                        ident,
                        actor: me.clone(),
                    })
                } else if !acl.may_publish(channel.as_str()) {
                    Action::Refuse(Refusal::PublishDenied { ident, channel })
                } else {
                    Action::Publish {
                        channel,
                        source: acl.owner,
                        frame: raw,
                    }
                }
            }
            Frame::Subscribe { ident, channel } => {
                if ident != *me {
                    Action::Refuse(Refusal::IdentMismatch {
                        ident,
                        actor: me.clone(),
                    })
                } else if acl.sources(channel.as_str()).is_none() {
                    Action::Refuse(Refusal::SubscribeDenied { ident, channel })
                } else {
                    Action::Subscribe(channel)
                }
            }
            Frame::Unsubscribe { ident, channel } => {
                if ident != *me {
                    Action::Refuse(Refusal::IdentMismatch {
                        ident,
                        actor: me.clone(),
                    })
                } else {
                    Action::Unsubscribe(channel)
                }
            }
            Frame::Auth { .. } => Action::Refuse(Refusal::AlreadyAuthenticated),
            other @ (Frame::Error(_) | Frame::Info { .. }) => {
                Action::Refuse(Refusal::UnexpectedOpcode(other.opcode()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::AuthkeyId;
    use crate::domain::acl::{KeyRecord, Mode, derive};
    use crate::domain::model::Graph;
    use crate::wire::{AuthHash, Secret};

    fn keys() -> KeyTable {
        let graph = Graph {
            users: [(UserId(7), true)].into(),
            keys: vec![KeyRecord {
                id: AuthkeyId(1),
                ident: Ident::new("k").unwrap(),
                secret: Secret::new("s"),
                owner: UserId(7),
                enabled: true,
                publish: vec![Channel::new("p").unwrap()],
                subscribe: vec![Channel::new("s").unwrap()],
            }],
            ..Graph::default()
        };
        derive(&graph, Mode::Social)
    }

    fn auth(s: &mut Session, keys: &KeyTable, secret: &str) -> Action {
        let hash = AuthHash::compute(&s.nonce(), &Secret::new(secret));
        s.on_frame(
            Frame::Auth {
                ident: Ident::new("k").unwrap(),
                hash,
            },
            Bytes::new(),
            || keys,
            None,
        )
    }

    fn i(s: &str) -> Ident {
        Ident::new(s).unwrap()
    }
    fn c(s: &str) -> Channel {
        Channel::new(s).unwrap()
    }

    #[test]
    fn first_frame_must_be_auth() {
        let mut s = Session::new(Nonce([1, 2, 3, 4]));
        let a = s.on_frame(
            Frame::Subscribe {
                ident: i("k"),
                channel: c("s"),
            },
            Bytes::new(),
            || Box::new(keys()),
            None,
        );
        assert_eq!(a, Action::Refuse(Refusal::FirstNotAuth));
    }

    #[test]
    fn wrong_secret_and_unknown_ident_fail_alike() {
        let k = keys();
        let mut s = Session::new(Nonce([9, 9, 9, 9]));
        assert_eq!(
            auth(&mut s, &k, "bad"),
            Action::Refuse(Refusal::AuthFailed { ident: i("k") })
        );
        assert!(s.ident().is_none());
        let mut s = Session::new(Nonce([9, 9, 9, 9]));
        assert!(matches!(
            auth(&mut s, &KeyTable::new(), "s"),
            Action::Refuse(Refusal::AuthFailed { .. })
        ));
    }

    #[test]
    fn authenticated_session_rules() {
        let k = keys();
        let mut s = Session::new(Nonce([0, 1, 2, 3]));
        let Action::Authenticated(acl) = auth(&mut s, &k, "s") else {
            panic!("auth failed")
        };
        let raw = Bytes::from_static(b"frame");
        let publish = |ident: &str, ch: &str| Frame::Publish {
            ident: i(ident),
            channel: c(ch),
            payload: Bytes::new(),
        };
        assert_eq!(
            s.on_frame(publish("k", "p"), raw.clone(), || &k, Some(&acl)),
            Action::Publish {
                channel: c("p"),
                source: UserId(7),
                frame: raw.clone()
            }
        );
        assert_eq!(
            s.on_frame(publish("other", "p"), raw.clone(), || &k, Some(&acl)),
            Action::Refuse(Refusal::IdentMismatch {
                ident: i("other"),
                actor: i("k")
            })
        );
        assert_eq!(
            s.on_frame(publish("k", "s"), raw.clone(), || &k, Some(&acl)),
            Action::Refuse(Refusal::PublishDenied {
                ident: i("k"),
                channel: c("s")
            })
        );
        assert_eq!(
            s.on_frame(
                Frame::Subscribe {
                    ident: i("k"),
                    channel: c("s")
                },
                raw.clone(),
                || &k,
                Some(&acl)
            ),
            Action::Subscribe(c("s"))
        );
        assert_eq!(
            s.on_frame(
                Frame::Subscribe {
                    ident: i("k"),
                    channel: c("p")
                },
                raw.clone(),
                || &k,
                Some(&acl)
            ),
            Action::Refuse(Refusal::SubscribeDenied {
                ident: i("k"),
                channel: c("p")
            })
        );
        assert_eq!(
            s.on_frame(
                Frame::Unsubscribe {
                    ident: i("k"),
                    channel: c("x")
                },
                raw.clone(),
                || &k,
                Some(&acl)
            ),
            Action::Unsubscribe(c("x"))
        );
        assert_eq!(
            s.on_frame(Frame::Error("x".into()), raw.clone(), || &k, Some(&acl)),
            Action::Refuse(Refusal::UnexpectedOpcode(crate::wire::Opcode::Error))
        );
        let again = Frame::Auth {
            ident: i("k"),
            hash: AuthHash::compute(&s.nonce(), &Secret::new("s")),
        };
        assert_eq!(
            s.on_frame(again, raw.clone(), || &k, Some(&acl)),
            Action::Refuse(Refusal::AlreadyAuthenticated)
        );
        assert_eq!(
            s.on_frame(publish("k", "p"), raw, || &k, None),
            Action::Refuse(Refusal::KeyRevoked { ident: i("k") })
        );
    }
}
