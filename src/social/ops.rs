//! The operations of the social model, each checking who may do it.
//!
//! Every operation acts as a user (`actor`) and fails with a [`SocialError`] saying why when
//! that user may not. Writes go through `store` in one transaction with an audit row; state
//! transitions are conditional there, so two racing answers cannot both win. The CLI and
//! the website call these, never the store's writers directly.

use super::model::{Grantee, ShareKind, ShareState};
use super::{GroupId, ShareId};
use crate::store::models::authkeys::NewAuthkey;
use crate::store::models::groups::{GroupInfo, ROLE_OWNER, STATE_ACTIVE, STATE_INVITED};
use crate::store::models::shares::ShareInfo;
use crate::store::models::users::User;
use crate::store::{Store, StoreError};
use crate::wire::{Channel, Ident, Secret};

/// Why an operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum SocialError {
    /// What was named does not exist (or is not visible to the actor).
    #[error("{0}")]
    NotFound(String),
    /// The actor may not do this.
    #[error("not allowed: {0}")]
    Forbidden(String),
    /// The request itself is wrong (bad name, sharing with oneself).
    #[error("{0}")]
    Invalid(String),
    /// It clashes with what exists (a duplicate, a share already answered).
    #[error("{0}")]
    Conflict(String),
    /// The database failed.
    #[error(transparent)]
    Store(StoreError),
    /// The operation could not run (its task died); nothing was changed by this layer.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<StoreError> for SocialError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(m) => Self::Conflict(m),
            StoreError::NotFound(m) => Self::NotFound(m),
            other => Self::Store(other),
        }
    }
}

type Result<T> = std::result::Result<T, SocialError>;

/// Who a share is offered to, by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GranteeName {
    /// A user by name.
    User(String),
    /// A group by name.
    Group(String),
    /// Everybody.
    Everyone,
}

/// Whether `name` can be a user or group name: 1–64 of letters, digits, '.', '_', '-'.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

fn user(store: &Store, name: &str) -> Result<User> {
    store
        .user_by_name(name)?
        .ok_or_else(|| SocialError::NotFound(format!("no user named {name:?}")))
}

fn group(store: &Store, name: &str) -> Result<(GroupId, super::UserId)> {
    store
        .group_by_name(name)?
        .ok_or_else(|| SocialError::NotFound(format!("no group named {name:?}")))
}

// ----- users -----

/// Registers a user (the operator's CLI, and later sign-up).
pub fn register(store: &Store, name: &str, email: &str, actor: &str) -> Result<User> {
    if !valid_name(name) {
        return Err(SocialError::Invalid(format!(
            "invalid user name {name:?}: use 1-64 letters, digits, '.', '_' or '-'"
        )));
    }
    let email = email.trim();
    if !email.contains('@') || email.len() > 254 || email.chars().any(char::is_whitespace) {
        return Err(SocialError::Invalid(format!("invalid email address {email:?}")));
    }
    Ok(store.add_user(name, email, actor)?)
}

/// The user who owns key `ident`, to act as them (operator tools).
pub fn key_owner(store: &Store, ident: &Ident) -> Result<User> {
    let missing = || SocialError::NotFound(format!("no authkey with ident {:?}", ident.as_str()));
    let owner = store.authkey_owner(ident)?.ok_or_else(missing)?;
    store.user_by_id(owner)?.ok_or_else(missing)
}

/// The user called `name`.
pub fn find_user(store: &Store, name: &str) -> Result<User> {
    user(store, name)
}

// ----- groups -----

/// Creates a group owned by `actor`.
pub fn create_group(store: &Store, actor: &User, name: &str, description: &str) -> Result<GroupId> {
    if !valid_name(name) {
        return Err(SocialError::Invalid(format!(
            "invalid group name {name:?}: use 1-64 letters, digits, '.', '_' or '-'"
        )));
    }
    Ok(store.create_group(actor.id, name, description, &actor.name)?)
}

/// The owner invites `who` into the group.
pub fn invite(store: &Store, actor: &User, group_name: &str, who: &str) -> Result<()> {
    let (g, owner) = group(store, group_name)?;
    if owner != actor.id {
        return Err(SocialError::Forbidden(format!(
            "only the owner of {group_name} can invite"
        )));
    }
    let invitee = user(store, who)?;
    store.invite_member(
        g,
        invitee.id,
        actor.id,
        &actor.name,
        &format!("{group_name}:{who}"),
    )?;
    Ok(())
}

/// The invitee joins.
pub fn accept_invitation(store: &Store, actor: &User, group_name: &str) -> Result<()> {
    let (g, _) = group(store, group_name)?;
    if !store.activate_member(g, actor.id, &actor.name, group_name)? {
        return Err(SocialError::NotFound(format!("no invitation to {group_name}")));
    }
    Ok(())
}

/// The invitee says no.
pub fn decline_invitation(store: &Store, actor: &User, group_name: &str) -> Result<()> {
    let (g, _) = group(store, group_name)?;
    match store.membership(g, actor.id)? {
        Some((_, state)) if state == STATE_INVITED => {
            store.remove_member(g, actor.id, &actor.name, "group.decline", group_name)?;
            Ok(())
        }
        _ => Err(SocialError::NotFound(format!("no invitation to {group_name}"))),
    }
}

/// A member leaves; the owner cannot (the group would have nobody to answer for it).
pub fn leave_group(store: &Store, actor: &User, group_name: &str) -> Result<()> {
    let (g, _) = group(store, group_name)?;
    match store.membership(g, actor.id)? {
        Some((role, _)) if role == ROLE_OWNER => Err(SocialError::Forbidden(format!(
            "the owner cannot leave {group_name}"
        ))),
        Some((_, state)) if state == STATE_ACTIVE => {
            store.remove_member(g, actor.id, &actor.name, "group.leave", group_name)?;
            Ok(())
        }
        _ => Err(SocialError::NotFound(format!(
            "you are not a member of {group_name}"
        ))),
    }
}

/// The owner removes a member (or withdraws an invitation).
pub fn remove_member(store: &Store, actor: &User, group_name: &str, who: &str) -> Result<()> {
    let (g, owner) = group(store, group_name)?;
    if owner != actor.id {
        return Err(SocialError::Forbidden(format!(
            "only the owner of {group_name} can remove members"
        )));
    }
    let member = user(store, who)?;
    if member.id == owner {
        return Err(SocialError::Invalid(format!(
            "the owner cannot be removed from {group_name}"
        )));
    }
    if !store.remove_member(
        g,
        member.id,
        &actor.name,
        "group.remove",
        &format!("{group_name}:{who}"),
    )? {
        return Err(SocialError::NotFound(format!("{who} is not in {group_name}")));
    }
    Ok(())
}

/// The groups the actor is in or invited to.
pub fn my_groups(store: &Store, actor: &User) -> Result<Vec<GroupInfo>> {
    Ok(store.groups_of(actor.id)?)
}

// ----- shares -----

/// The actor offers `channel` to a user, a group or everyone. Shares to everyone need no
/// acceptance; the others wait for the grantee (a group's owner answers for the group).
pub fn offer_share(
    store: &Store,
    actor: &User,
    channel: &Channel,
    to: &GranteeName,
    kind: ShareKind,
) -> Result<ShareId> {
    let to = match to {
        GranteeName::User(name) => {
            let u = user(store, name)?;
            if u.id == actor.id {
                return Err(SocialError::Invalid("you cannot share with yourself".into()));
            }
            Grantee::User(u.id)
        }
        GranteeName::Group(name) => Grantee::Group(group(store, name)?.0),
        GranteeName::Everyone => Grantee::Everyone,
    };
    let live = [ShareState::Offered, ShareState::Accepted];
    if let Some(dup) = store
        .all_shares()?
        .into_iter()
        .find(|s| s.from == actor.id && s.channel == *channel && s.to == to && live.contains(&s.state))
    {
        return Err(SocialError::Conflict(format!(
            "{channel} is already shared that way (share {}, {})",
            dup.id.0, dup.state
        )));
    }
    let state = if to == Grantee::Everyone {
        ShareState::Accepted
    } else {
        ShareState::Offered
    };
    Ok(store.add_share(actor.id, channel, to, kind, state, &actor.name)?)
}

/// Whether the actor answers for the grantee side of the share.
fn answers_for(store: &Store, actor: &User, to: Grantee) -> Result<bool> {
    Ok(match to {
        Grantee::User(u) => u == actor.id,
        Grantee::Group(g) => store
            .membership(g, actor.id)?
            .is_some_and(|(role, _)| role == ROLE_OWNER),
        Grantee::Everyone => false,
    })
}

fn share_for(store: &Store, id: ShareId) -> Result<super::model::Share> {
    store
        .share(id)?
        .ok_or_else(|| SocialError::NotFound(format!("no share {}", id.0)))
}

fn transition(store: &Store, actor: &User, id: ShareId, from: &[ShareState], to: ShareState) -> Result<()> {
    if store.transition_share(id, from, to, &actor.name)? {
        return Ok(());
    }
    let now = share_for(store, id)?.state;
    Err(SocialError::Conflict(format!(
        "share {} is {now}; it cannot become {to}",
        id.0
    )))
}

/// The grantee (or the grantee group's owner) answers an offer.
pub fn answer_share(store: &Store, actor: &User, id: ShareId, accept: bool) -> Result<()> {
    let s = share_for(store, id)?;
    if !answers_for(store, actor, s.to)? {
        return Err(SocialError::Forbidden(format!(
            "share {} is not offered to you",
            id.0
        )));
    }
    let to = if accept {
        ShareState::Accepted
    } else {
        ShareState::Declined
    };
    transition(store, actor, id, &[ShareState::Offered], to)
}

/// The sharer withdraws a share, offered or accepted.
pub fn revoke_share(store: &Store, actor: &User, id: ShareId) -> Result<()> {
    let s = share_for(store, id)?;
    if s.from != actor.id {
        return Err(SocialError::Forbidden(format!(
            "share {} is not yours to revoke",
            id.0
        )));
    }
    transition(
        store,
        actor,
        id,
        &[ShareState::Offered, ShareState::Accepted],
        ShareState::Revoked,
    )
}

/// The grantee stops receiving an accepted share.
pub fn leave_share(store: &Store, actor: &User, id: ShareId) -> Result<()> {
    let s = share_for(store, id)?;
    if !answers_for(store, actor, s.to)? {
        return Err(SocialError::Forbidden(format!(
            "share {} is not offered to you",
            id.0
        )));
    }
    transition(store, actor, id, &[ShareState::Accepted], ShareState::Left)
}

/// What the actor shares, and what is shared with the actor (directly, through a group the
/// actor is in, or with everyone).
pub fn my_shares(store: &Store, actor: &User) -> Result<(Vec<ShareInfo>, Vec<ShareInfo>)> {
    let all = store.all_shares()?;
    let groups: Vec<GroupId> = store.groups_of(actor.id)?.into_iter().map(|g| g.id).collect();
    let (outgoing, others): (Vec<_>, Vec<_>) = all.into_iter().partition(|s| s.from == actor.id);
    let incoming = others
        .into_iter()
        .filter(|s| match s.to {
            Grantee::User(u) => u == actor.id,
            Grantee::Group(g) => groups.contains(&g),
            Grantee::Everyone => true,
        })
        .collect();
    Ok((store.describe_shares(outgoing)?, store.describe_shares(incoming)?))
}

// ----- authkeys -----

fn own_key(store: &Store, actor: &User, ident: &Ident) -> Result<()> {
    // Another user's key is reported as missing, so that idents cannot be probed.
    match store.authkey_owner(ident)? {
        Some(owner) if owner == actor.id => Ok(()),
        _ => Err(SocialError::NotFound(format!("you have no authkey {ident}"))),
    }
}

/// Creates a key for the actor; ident and secret are random unless given.
pub fn create_key(
    store: &Store,
    actor: &User,
    ident: Option<Ident>,
    secret: Option<Secret>,
    publish: Vec<Channel>,
    subscribe: Vec<Channel>,
    comment: String,
) -> Result<(Ident, Secret)> {
    let ident = match ident {
        Some(i) => i,
        None => random_ident()?,
    };
    let secret = match secret {
        Some(s) if s.expose().is_empty() => {
            return Err(SocialError::Invalid("the secret must not be empty".into()));
        }
        Some(s) => s,
        None => Secret::random().map_err(|e| SocialError::Invalid(format!("no randomness: {e}")))?,
    };
    store.add_authkey(
        &NewAuthkey {
            owner: actor.id,
            ident: ident.clone(),
            secret: secret.clone(),
            publish,
            subscribe,
            comment,
        },
        &actor.name,
    )?;
    Ok((ident, secret))
}

/// A random 16-hex-character ident.
pub fn random_ident() -> Result<Ident> {
    let mut b = [0u8; 8];
    getrandom::getrandom(&mut b).map_err(|e| SocialError::Invalid(format!("no randomness: {e}")))?;
    Ident::new(&hex::encode(b)).map_err(|e| SocialError::Invalid(e.to_string()))
}

/// Replaces the channel lists of one of the actor's keys.
pub fn set_key_channels(
    store: &Store,
    actor: &User,
    ident: &Ident,
    publish: &[Channel],
    subscribe: &[Channel],
) -> Result<()> {
    own_key(store, actor, ident)?;
    Ok(store.set_authkey_channels(ident, publish, subscribe, &actor.name)?)
}

/// Gives one of the actor's keys a new random secret and returns it.
pub fn rotate_key(store: &Store, actor: &User, ident: &Ident) -> Result<Secret> {
    own_key(store, actor, ident)?;
    let secret = Secret::random().map_err(|e| SocialError::Invalid(format!("no randomness: {e}")))?;
    store.rotate_secret(ident, &secret, &actor.name)?;
    Ok(secret)
}

/// Enables or disables one of the actor's keys.
pub fn set_key_enabled(store: &Store, actor: &User, ident: &Ident, enabled: bool) -> Result<()> {
    own_key(store, actor, ident)?;
    Ok(store.set_authkey_enabled(ident, enabled, &actor.name)?)
}

/// Deletes one of the actor's keys.
pub fn delete_key(store: &Store, actor: &User, ident: &Ident) -> Result<()> {
    own_key(store, actor, ident)?;
    Ok(store.remove_authkey(ident, &actor.name)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixture {
        _dir: tempfile::TempDir,
        store: Store,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db").to_string_lossy()).unwrap();
        Fixture { _dir: dir, store }
    }

    fn add(store: &Store, name: &str) -> User {
        store.add_user(name, &format!("{name}@x.org"), "test").unwrap()
    }

    fn ch(s: &str) -> Channel {
        Channel::new(s).unwrap()
    }

    #[test]
    fn share_life_and_who_may_do_what() {
        let f = fixture();
        let s = &f.store;
        let (a, b, c) = (add(s, "a"), add(s, "b"), add(s, "c"));
        let id = offer_share(s, &a, &ch("x"), &GranteeName::User("b".into()), ShareKind::Own).unwrap();
        assert!(matches!(
            offer_share(s, &a, &ch("x"), &GranteeName::User("b".into()), ShareKind::Own),
            Err(SocialError::Conflict(_))
        ));
        assert!(matches!(
            offer_share(s, &a, &ch("x"), &GranteeName::User("a".into()), ShareKind::Own),
            Err(SocialError::Invalid(_))
        ));
        assert!(matches!(
            answer_share(s, &c, id, true),
            Err(SocialError::Forbidden(_))
        ));
        assert!(matches!(revoke_share(s, &b, id), Err(SocialError::Forbidden(_))));
        assert!(
            matches!(leave_share(s, &b, id), Err(SocialError::Conflict(_))),
            "not accepted yet"
        );
        answer_share(s, &b, id, true).unwrap();
        assert!(matches!(
            answer_share(s, &b, id, false),
            Err(SocialError::Conflict(_))
        ));
        let (out, inc) = my_shares(s, &b).unwrap();
        assert!(out.is_empty());
        assert_eq!(inc[0].from_name, "a");
        leave_share(s, &b, id).unwrap();
        assert!(matches!(revoke_share(s, &a, id), Err(SocialError::Conflict(_))));
        assert_eq!(s.share(id).unwrap().unwrap().state, ShareState::Left);
        let everyone = offer_share(s, &a, &ch("x"), &GranteeName::Everyone, ShareKind::Own).unwrap();
        assert_eq!(s.share(everyone).unwrap().unwrap().state, ShareState::Accepted);
        revoke_share(s, &a, everyone).unwrap();
    }

    #[test]
    fn groups_and_group_shares() {
        let f = fixture();
        let s = &f.store;
        let (a, b, d) = (add(s, "a"), add(s, "b"), add(s, "d"));
        assert!(matches!(
            create_group(s, &b, "bad name", ""),
            Err(SocialError::Invalid(_))
        ));
        create_group(s, &b, "trusted", "").unwrap();
        assert!(matches!(
            create_group(s, &a, "trusted", ""),
            Err(SocialError::Conflict(_))
        ));
        assert!(matches!(
            invite(s, &a, "trusted", "d"),
            Err(SocialError::Forbidden(_))
        ));
        invite(s, &b, "trusted", "d").unwrap();
        assert!(matches!(
            invite(s, &b, "trusted", "d"),
            Err(SocialError::Conflict(_))
        ));
        assert!(
            matches!(leave_group(s, &d, "trusted"), Err(SocialError::NotFound(_))),
            "only invited"
        );
        accept_invitation(s, &d, "trusted").unwrap();
        assert!(matches!(
            accept_invitation(s, &d, "trusted"),
            Err(SocialError::NotFound(_))
        ));
        assert!(matches!(
            leave_group(s, &b, "trusted"),
            Err(SocialError::Forbidden(_))
        ));
        // A shares with the group; its owner answers for it.
        let id = offer_share(
            s,
            &a,
            &ch("x"),
            &GranteeName::Group("trusted".into()),
            ShareKind::Own,
        )
        .unwrap();
        assert!(matches!(
            answer_share(s, &d, id, true),
            Err(SocialError::Forbidden(_))
        ));
        answer_share(s, &b, id, true).unwrap();
        assert_eq!(my_shares(s, &d).unwrap().1.len(), 1, "members see group shares");
        remove_member(s, &b, "trusted", "d").unwrap();
        assert!(my_shares(s, &d).unwrap().1.is_empty());
        let g = my_groups(s, &b).unwrap();
        assert_eq!(g[0].members, vec![("b".into(), "owner".into(), "active".into())]);
        let graph = s.load_graph().unwrap();
        assert_eq!(graph.shares.len(), 1);
        let actions: Vec<String> = s
            .audit_entries(100)
            .unwrap()
            .into_iter()
            .map(|e| e.action)
            .collect();
        for a in [
            "group.create",
            "group.invite",
            "group.accept",
            "share.offer",
            "share.accepted",
            "group.remove",
        ] {
            assert!(actions.iter().any(|x| x == a), "{a} missing from the audit log");
        }
    }

    #[test]
    fn keys_belong_to_their_owner() {
        let f = fixture();
        let s = &f.store;
        let (a, b) = (add(s, "a"), add(s, "b"));
        let (ident, secret) = create_key(s, &a, None, None, vec![ch("x")], vec![], String::new()).unwrap();
        assert_eq!(secret.expose().len(), 64);
        for r in [
            set_key_channels(s, &b, &ident, &[], &[]),
            set_key_enabled(s, &b, &ident, false),
            delete_key(s, &b, &ident),
        ] {
            assert!(matches!(r, Err(SocialError::NotFound(_))));
        }
        assert!(matches!(rotate_key(s, &b, &ident), Err(SocialError::NotFound(_))));
        let new = rotate_key(s, &a, &ident).unwrap();
        assert_ne!(new, secret);
        set_key_enabled(s, &a, &ident, false).unwrap();
        assert!(!s.key_records().unwrap()[0].enabled);
        delete_key(s, &a, &ident).unwrap();
    }
}
