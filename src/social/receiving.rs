//! Which of a user's keys receive a channel: the answer to accepting a share, taking up a
//! public offer or joining a group. Accepting changes what a user may receive, never what
//! their keys subscribe to, so a share accepted with no key subscribing delivers nothing;
//! the answer names the keys, says so when there are none, and one call adds the channel
//! to a key.

use crate::domain::ShareId;
use crate::domain::listing::User;
use crate::domain::model::Grantee;
use crate::store::Store;
use crate::wire::{Channel, Ident};

use super::ops::{Result, SocialError, set_key_channels};

/// One channel and the user's enabled keys that subscribe to it (none: nothing arrives).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receiving {
    /// The channel.
    pub channel: Channel,
    /// Idents of the user's enabled keys whose subscribe list names it.
    pub receiving_keys: Vec<Ident>,
}

/// For each of `channels`, the keys of `user` that receive it.
pub fn receiving(store: &Store, user: &User, channels: &[Channel]) -> Result<Vec<Receiving>> {
    let keys = store.authkeys_of(user.id)?;
    Ok(channels
        .iter()
        .map(|c| Receiving {
            channel: c.clone(),
            receiving_keys: keys
                .iter()
                .filter(|k| k.enabled && k.subscribe.contains(c))
                .map(|k| k.ident.clone())
                .collect(),
        })
        .collect())
}

impl Receiving {
    /// As the API answers it and the pages read it.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "channel": self.channel.as_str(),
            "receiving_keys": self.receiving_keys.iter().map(Ident::as_str).collect::<Vec<_>>(),
        })
    }
}

/// The keys of `user` that receive share `id`'s channel; a share that is neither to the
/// user, to a group of theirs nor public is not found (its channel is not theirs to learn).
pub fn of_share(store: &Store, user: &User, id: ShareId) -> Result<Receiving> {
    let missing = || SocialError::NotFound(format!("no share {} for you", id.0));
    let share = store.share(id)?.ok_or_else(missing)?;
    let visible = match share.to {
        Grantee::User(u) => u == user.id,
        Grantee::Everyone => true,
        Grantee::Group(g) => store.membership(g, user.id)?.is_some(),
    };
    if !visible {
        return Err(missing());
    }
    let mut found = receiving(store, user, std::slice::from_ref(&share.channel))?;
    found.pop().ok_or_else(missing)
}

/// The keys of `user` that receive each channel shared with group `name` (accepted).
pub fn of_group(store: &Store, user: &User, name: &str) -> Result<Vec<Receiving>> {
    let missing = || SocialError::NotFound(format!("no group named {name:?}"));
    let (group, _) = store.group_by_name(name)?.ok_or_else(missing)?;
    if store.membership(group, user.id)?.is_none() {
        return Err(missing());
    }
    receiving(store, user, &store.group_channels(group)?)
}

/// Adds `channel` to the subscribe list of the actor's key `ident` (the one-click answer
/// to "none of your keys receives it"); false when it was there already.
pub fn subscribe_key(store: &Store, actor: &User, ident: &Ident, channel: &Channel) -> Result<bool> {
    let key = store
        .authkeys_of(actor.id)?
        .into_iter()
        .find(|k| &k.ident == ident)
        .ok_or_else(|| SocialError::NotFound(format!("you have no authkey {:?}", ident.as_str())))?;
    if key.subscribe.contains(channel) {
        return Ok(false);
    }
    let mut subscribe = key.subscribe.clone();
    subscribe.push(channel.clone());
    set_key_channels(store, actor, ident, &key.publish, &subscribe)?;
    Ok(true)
}

/// "reader1 and reader2 receive it now" or what to do when none does, for a command's
/// answer (the website and the API carry the same facts as fields).
pub fn say(owner: &str, r: &Receiving) -> String {
    let c = r.channel.as_str();
    match r.receiving_keys.as_slice() {
        [] => format!(
            "none of {owner}'s keys subscribes to {c}, so nothing arrives yet: \
             hpfriends authkey subscribe IDENT {c} adds it to one of their keys"
        ),
        keys => format!(
            "{c} reaches {owner}'s key(s) {} now",
            keys.iter().map(Ident::as_str).collect::<Vec<_>>().join(", ")
        ),
    }
}
