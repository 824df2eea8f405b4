//! Each authkey's effective ACL, derived as a pure function of what the store holds.
//!
//! The broker never asks the database: it holds an immutable [`KeyTable`] snapshot, and a
//! session checks a publish or subscribe against its key's `Arc<KeyAcl>`. The rule is
//! ARCHITECTURE.md's `deliver`: a message on channel `c` published by a key of user `P`
//! reaches a subscriber key `k` when `k` lists `c` for subscribe and `P ∈ sources(owner(k), c)`.
//! Until shares exist, `sources` is the owner alone, or every user in open (plain hpfeeds)
//! mode, which deployments migrating from another broker rely on.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use super::{AuthkeyId, UserId};
use crate::wire::{Channel, Ident, Secret};

/// Whose messages a subscription receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sources {
    /// Every publisher on the channel (open mode, shares to everyone).
    Everyone,
    /// Only messages published by keys of these users.
    Users(BTreeSet<UserId>),
}

impl Sources {
    /// Whether a message published by a key of `user` is delivered.
    pub fn admits(&self, user: UserId) -> bool {
        match self {
            Self::Everyone => true,
            Self::Users(u) => u.contains(&user),
        }
    }
}

/// What one authkey may do on the feed, as the broker checks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyAcl {
    /// Database id of the key.
    pub id: AuthkeyId,
    /// The key's public name.
    pub ident: Ident,
    /// For the auth hash.
    pub secret: Secret,
    /// The user whose key this is: the source its publishes are tagged with.
    pub owner: UserId,
    /// Channels it may publish on.
    pub publish: HashSet<Channel>,
    /// Channels it may subscribe to, each with whose messages it receives there.
    pub subscribe: HashMap<Channel, Sources>,
}

impl KeyAcl {
    /// Whether the key may publish on `channel`.
    pub fn may_publish(&self, channel: &str) -> bool {
        self.publish.contains(channel)
    }

    /// Whose messages the key receives on `channel`; `None` when it may not subscribe.
    pub fn sources(&self, channel: &str) -> Option<&Sources> {
        self.subscribe.get(channel)
    }
}

/// Every usable key by ident: the immutable snapshot sessions authenticate against.
pub type KeyTable = HashMap<Ident, Arc<KeyAcl>>;

/// An authkey as stored, with what the derivation needs of its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    /// Database id.
    pub id: AuthkeyId,
    /// Public name.
    pub ident: Ident,
    /// Shared secret.
    pub secret: Secret,
    /// Owning user.
    pub owner: UserId,
    /// Whether the key itself is enabled.
    pub enabled: bool,
    /// Whether its owner's account is enabled.
    pub owner_enabled: bool,
    /// Channels listed for publish.
    pub publish: Vec<Channel>,
    /// Channels listed for subscribe.
    pub subscribe: Vec<Channel>,
}

/// How receivers are chosen when no share says otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// hpfriends: a key receives only its own owner's messages until shares say more.
    #[default]
    Social,
    /// Plain hpfeeds: a key receives every publisher on the channels it lists.
    Open,
}

/// Derives the key table: disabled keys and keys of disabled users are left out, so they
/// can neither authenticate nor keep a session.
pub fn derive(keys: &[KeyRecord], mode: Mode) -> KeyTable {
    keys.iter()
        .filter(|k| k.enabled && k.owner_enabled)
        .map(|k| {
            let sources = match mode {
                Mode::Open => Sources::Everyone,
                Mode::Social => Sources::Users(BTreeSet::from([k.owner])),
            };
            let acl = KeyAcl {
                id: k.id,
                ident: k.ident.clone(),
                secret: k.secret.clone(),
                owner: k.owner,
                publish: k.publish.iter().cloned().collect(),
                subscribe: k.subscribe.iter().map(|c| (c.clone(), sources.clone())).collect(),
            };
            (k.ident.clone(), Arc::new(acl))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: i64, owner: i64, enabled: bool, owner_enabled: bool) -> KeyRecord {
        KeyRecord {
            id: AuthkeyId(id),
            ident: Ident::new(&format!("k{id}")).unwrap(),
            secret: Secret::new("s"),
            owner: UserId(owner),
            enabled,
            owner_enabled,
            publish: vec![Channel::new("p").unwrap()],
            subscribe: vec![Channel::new("s").unwrap()],
        }
    }

    #[test]
    fn social_mode_receives_own_owner_only() {
        let t = derive(&[key(1, 7, true, true)], Mode::Social);
        let acl = &t[&Ident::new("k1").unwrap()];
        assert!(acl.may_publish("p"));
        assert!(!acl.may_publish("s"));
        let s = acl.sources("s").unwrap();
        assert!(s.admits(UserId(7)));
        assert!(!s.admits(UserId(8)));
        assert!(acl.sources("p").is_none());
    }

    #[test]
    fn open_mode_receives_everyone() {
        let t = derive(&[key(1, 7, true, true)], Mode::Open);
        assert!(
            t[&Ident::new("k1").unwrap()]
                .sources("s")
                .unwrap()
                .admits(UserId(99))
        );
    }

    #[test]
    fn disabled_keys_and_owners_are_left_out() {
        let t = derive(
            &[
                key(1, 7, false, true),
                key(2, 7, true, false),
                key(3, 7, true, true),
            ],
            Mode::Social,
        );
        assert_eq!(t.len(), 1);
        assert!(t.contains_key("k3"));
    }
}
