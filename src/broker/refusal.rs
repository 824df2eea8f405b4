//! Every error text the broker sends, in one place, mapped from typed refusals.
//!
//! Texts marked "3.1.0" are byte-for-byte those of the PyPI `hpfeeds` 3.1.0 broker
//! (`hpfeeds/broker/connection.py`), because operators grep their logs for them and some
//! clients match on them. The rest are hpfriends' own and say what to do.

use std::time::Duration;

use crate::wire::{Channel, Ident, Opcode, WireError};

/// Why the broker refuses something a client did.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// 3.1.0: the first frame must be auth.
    #[error("First message was not AUTH")]
    FirstNotAuth,
    /// 3.1.0: unknown ident or wrong hash (the two are not told apart).
    #[error("Authentication failed for {ident}")]
    AuthFailed {
        /// The ident the client claimed.
        ident: Ident,
    },
    /// 3.1.0: a frame names an ident other than the authenticated one.
    #[error("Invalid authkey in message, ident={ident}")]
    IdentMismatch {
        /// The ident in the frame (what the client claimed).
        ident: Ident,
        /// The ident the session authenticated as: the key the misuse is recorded against.
        actor: Ident,
    },
    /// 3.1.0: publish outside the key's publish list.
    #[error("Authkey not allowed to pub here. ident={ident}, chan={channel}")]
    PublishDenied {
        /// The session's ident.
        ident: Ident,
        /// The refused channel.
        channel: Channel,
    },
    /// 3.1.0: subscribe outside the key's subscribe list (3.1.0 then subscribes anyway; we don't).
    #[error("Authkey not allowed to sub here. ident={ident}, chan={channel}")]
    SubscribeDenied {
        /// The session's ident.
        ident: Ident,
        /// The refused channel.
        channel: Channel,
    },
    /// A live subscription lost its right (original broker's `accessfail.`); the connection stays.
    #[error("accessfail: {channel}")]
    AccessLost {
        /// The channel no longer received.
        channel: Channel,
    },
    /// The key was deleted or disabled, or its owner disabled, while connected.
    #[error("Authkey revoked or disabled, ident={ident}")]
    KeyRevoked {
        /// The session's ident.
        ident: Ident,
    },
    /// The key's secret was rotated while connected: whoever held the old one (the reason
    /// people rotate) keeps nothing, so every session of the key ends, as on a disable.
    #[error("Authkey secret changed, ident={ident}: authenticate again with the new secret")]
    SecretRotated {
        /// The session's ident.
        ident: Ident,
    },
    /// Bytes that are not hpfeeds.
    #[error("Protocol error: {0}")]
    Protocol(WireError),
    /// A frame only the broker may send.
    #[error("Protocol error: clients may not send {} frames", .0.name())]
    UnexpectedOpcode(Opcode),
    /// A second auth on an authenticated connection.
    #[error("Protocol error: already authenticated")]
    AlreadyAuthenticated,
    /// No auth frame in time (slowloris defence).
    #[error("Authentication timeout: no AUTH within {} s", .0.as_secs())]
    AuthTimeout(Duration),
    /// The broker's connection limit is reached.
    #[error("Too many connections to this broker; try again later")]
    TooManyConnections,
    /// The per-address connection limit is reached.
    #[error("Too many connections from your address; close some and try again")]
    TooManyFromAddress,
    /// The per-connection subscription limit is reached.
    #[error("Too many subscriptions on one connection (limit {0})")]
    TooManySubscriptions(usize),
    /// The key's subscriptions over all its connections reached the per-key limit.
    #[error("Too many subscriptions for this authkey over all its connections (limit {0})")]
    TooManyKeySubscriptions(usize),
    /// A frame was started and not finished in time (a client trickling bytes).
    #[error("Frame timeout: a frame was not completed within {} s", .0.as_secs())]
    FrameTimeout(Duration),
    /// The broker is stopping; reconnect later.
    #[error("Broker shutting down")]
    ShuttingDown,
}

impl Refusal {
    /// Whether the connection is closed after the error frame. Only a lost subscription
    /// keeps it open (the key's other channels go on).
    pub fn closes(&self) -> bool {
        !matches!(self, Self::AccessLost { .. })
    }

    /// Short stable name for logs and counters.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::FirstNotAuth => "first-not-auth",
            Self::AuthFailed { .. } => "auth-failed",
            Self::IdentMismatch { .. } => "ident-mismatch",
            Self::PublishDenied { .. } => "publish-denied",
            Self::SubscribeDenied { .. } => "subscribe-denied",
            Self::AccessLost { .. } => "access-lost",
            Self::KeyRevoked { .. } | Self::SecretRotated { .. } => "key-revoked",
            Self::Protocol(_) | Self::UnexpectedOpcode(_) | Self::AlreadyAuthenticated => "protocol",
            Self::AuthTimeout(_) => "auth-timeout",
            Self::TooManyConnections | Self::TooManyFromAddress => "connection-limit",
            Self::TooManySubscriptions(_) | Self::TooManyKeySubscriptions(_) => "subscription-limit",
            Self::FrameTimeout(_) => "frame-timeout",
            Self::ShuttingDown => "shutdown",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_match_hpfeeds_3_1_0() {
        let i = Ident::new("k").unwrap();
        let c = Channel::new("c").unwrap();
        assert_eq!(Refusal::FirstNotAuth.to_string(), "First message was not AUTH");
        assert_eq!(
            Refusal::AuthFailed { ident: i.clone() }.to_string(),
            "Authentication failed for k"
        );
        assert_eq!(
            Refusal::IdentMismatch {
                ident: i.clone(),
                actor: i.clone()
            }
            .to_string(),
            "Invalid authkey in message, ident=k"
        );
        assert_eq!(
            Refusal::PublishDenied {
                ident: i.clone(),
                channel: c.clone()
            }
            .to_string(),
            "Authkey not allowed to pub here. ident=k, chan=c"
        );
        assert_eq!(
            Refusal::SubscribeDenied {
                ident: i,
                channel: c.clone()
            }
            .to_string(),
            "Authkey not allowed to sub here. ident=k, chan=c"
        );
        let lost = Refusal::AccessLost { channel: c };
        assert_eq!(lost.to_string(), "accessfail: c");
        assert!(!lost.closes());
    }
}
