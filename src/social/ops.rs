//! The operations of the social model, each checking who may do it.
//!
//! Every operation acts as a user (`actor`) and fails with a [`SocialError`] saying why when
//! that user may not. Writes go through `store` in one transaction with an audit row; state
//! transitions are conditional there, so two racing answers cannot both win. The CLI and
//! the website call these, never the store's writers directly.

use crate::config::limits::{
    MAX_GROUP_DESCRIPTION, MAX_GROUPS_OWNED, MAX_KEY_COMMENT, MAX_OPEN_INVITATIONS, MAX_OPEN_OFFERS,
    MAX_SECRET_LEN,
};
use crate::domain::listing::GroupInfo;
use crate::domain::listing::NewAuthkey;
use crate::domain::listing::ShareFilter;
use crate::domain::listing::ShareInfo;
use crate::domain::listing::User;
use crate::domain::model::{Grantee, ShareKind, ShareState};
use crate::domain::model::{GroupRole, MemberState};
use crate::domain::{GroupId, ShareId};
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

/// What a social operation answers.
pub type Result<T> = std::result::Result<T, SocialError>;

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

/// Whether `name` can be a user or group name: 1–64 of letters, digits, '.', '_', '-',
/// starting with a letter or digit, so that a name is safe in a URL path (never `.`, `..`
/// or hidden-file-like) and cannot carry control or format characters.
pub fn valid_name(name: &str) -> bool {
    name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

fn user(store: &Store, name: &str) -> Result<User> {
    store
        .user_by_name(name)?
        .ok_or_else(|| SocialError::NotFound(format!("no user named {name:?}")))
}

fn group(store: &Store, name: &str) -> Result<(GroupId, crate::domain::UserId)> {
    store
        .group_by_name(name)?
        .ok_or_else(|| SocialError::NotFound(format!("no group named {name:?}")))
}

// ----- users -----

/// Whether `email` (trimmed) may be a user's address as the CLI and import take it: an
/// `@`, at most 254 bytes, no white space, control or bidi characters (the website's
/// sign-up form is stricter still).
pub fn valid_email(email: &str) -> bool {
    email.contains('@')
        && email.len() <= 254
        && !email.chars().any(char::is_whitespace)
        && crate::domain::text::problem(email, 254, false).is_none()
}

/// Registers a user (the operator's CLI, and later sign-up).
pub fn register(store: &Store, name: &str, email: &str, actor: &str) -> Result<User> {
    if !valid_name(name) {
        return Err(SocialError::Invalid(format!(
            "invalid user name {name:?}: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )));
    }
    let email = email.trim();
    if !valid_email(email) {
        return Err(SocialError::Invalid(format!("invalid email address {email:?}")));
    }
    Ok(store.add_user(name, email, actor)?)
}

/// Enables or disables a user (the operator's CLI): a disabled user's keys stop working at
/// once and their live sessions close.
pub fn set_user_enabled(store: &Store, name: &str, enabled: bool, actor: &str) -> Result<()> {
    user(store, name)?;
    Ok(store.set_user_enabled(name, enabled, actor)?)
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
            "invalid group name {name:?}: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )));
    }
    if let Some(p) = crate::domain::text::problem(description, MAX_GROUP_DESCRIPTION, true) {
        return Err(SocialError::Invalid(format!("description: {p}")));
    }
    if store.open_invitations_and_groups_of(actor.id)?.1 >= MAX_GROUPS_OWNED {
        return Err(SocialError::Conflict(format!(
            "you own {MAX_GROUPS_OWNED} groups, the most one user may; delete one first"
        )));
    }
    Ok(store.create_group(actor.id, name, description, &actor.name)?)
}

/// The owner invites `who` into the group (unless `who` blocked the owner).
pub fn invite(store: &Store, actor: &User, group_name: &str, who: &str) -> Result<()> {
    let (g, owner) = group(store, group_name)?;
    if owner != actor.id {
        return Err(SocialError::Forbidden(format!(
            "only the owner of {group_name} can invite"
        )));
    }
    let invitee = user(store, who)?;
    // Someone who blocked the owner gets no invitation from them (and no mail); as with an
    // offer, nobody is told: the owner's answer is the same.
    if store.is_blocked(invitee.id, actor.id)? {
        return Ok(());
    }
    if store.open_invitations_and_groups_of(actor.id)?.0 >= MAX_OPEN_INVITATIONS {
        return Err(SocialError::Conflict(format!(
            "you have {MAX_OPEN_INVITATIONS} invitations waiting for an answer, the most one user may; \
             wait for answers or remove some first"
        )));
    }
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
        Some((_, MemberState::Invited)) => {
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
        Some((GroupRole::Owner, _)) => Err(SocialError::Forbidden(format!(
            "the owner cannot leave {group_name}"
        ))),
        Some((_, MemberState::Active)) => {
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

/// The groups the actor is in or invited to; to an invitee a group shows only its owner
/// and the invitee (its members are for its members to know).
pub fn my_groups(store: &Store, actor: &User) -> Result<Vec<GroupInfo>> {
    Ok(my_groups_page(store, actor, None)?.0)
}

/// Groups on a page of the Groups page and of `GET /api/v1/groups`.
pub const GROUPS_PER_PAGE: usize = crate::config::limits::PER_PAGE;

/// One page of [`my_groups`] (all for `None`), and whether more follow.
pub fn my_groups_page(store: &Store, actor: &User, page: Option<usize>) -> Result<(Vec<GroupInfo>, bool)> {
    let (mut groups, more) = match page {
        Some(p) => store.groups_page(actor.id, p, GROUPS_PER_PAGE)?,
        None => (store.groups_of(actor.id)?, false),
    };
    for g in &mut groups {
        if g.place_of(&actor.name)
            .is_some_and(|(_, state)| state == MemberState::Invited)
        {
            g.members
                .retain(|(n, role, _)| *n == actor.name || *role == GroupRole::Owner);
            g.member_count = g.members.len();
            g.active_count = g.members.iter().filter(|m| m.2 == MemberState::Active).count();
        }
    }
    Ok((groups, more))
}

/// Members listed on a page of a group's member list.
pub const MEMBERS_PER_PAGE: usize = crate::config::limits::PER_PAGE;

/// Page `page` of the members and invitees of `group_name`, for one of its active members
/// (an invitee sees the owner and themself only, as in [`my_groups`]); and whether more
/// follow.
pub fn group_members(
    store: &Store,
    actor: &User,
    group_name: &str,
    page: usize,
) -> Result<(Vec<crate::domain::listing::Member>, bool)> {
    let (g, _) = group(store, group_name)?;
    match store.membership(g, actor.id)? {
        Some((_, MemberState::Active)) => Ok(store.group_members_page(g, page, MEMBERS_PER_PAGE)?),
        Some((_, MemberState::Invited)) => {
            let mine = my_groups(store, actor)?
                .into_iter()
                .find(|x| x.id == g)
                .map(|x| x.members)
                .unwrap_or_default();
            Ok((if page == 0 { mine } else { Vec::new() }, false))
        }
        None => Err(SocialError::NotFound(format!(
            "you are not a member of {group_name}"
        ))),
    }
}

// ----- shares -----

/// The actor offers `channel` to a user, a group or everyone. Every offer waits for its
/// grantee: a user accepts, a group's owner accepts for the group, and a share to everyone
/// is a public offer each user takes up for themselves. `onward` says whether the grantee
/// may pass on what it receives through this share. An offer to a user who blocked the
/// actor is recorded as declined, and nobody is told.
pub fn offer_share(
    store: &Store,
    actor: &User,
    channel: &Channel,
    to: &GranteeName,
    kind: ShareKind,
    onward: bool,
) -> Result<ShareId> {
    // A group's owner answers the shares offered to it: their own share to it needs no
    // answer from themselves.
    let mut own_group = false;
    let to = match to {
        GranteeName::User(name) => {
            let u = user(store, name)?;
            if u.id == actor.id {
                return Err(SocialError::Invalid("you cannot share with yourself".into()));
            }
            Grantee::User(u.id)
        }
        GranteeName::Group(name) => {
            let (g, owner) = group(store, name)?;
            own_group = owner == actor.id;
            Grantee::Group(g)
        }
        GranteeName::Everyone => Grantee::Everyone,
    };
    if let Some(dup) = store.live_share(actor.id, channel, to)? {
        return Err(SocialError::Conflict(format!(
            "{channel} is already shared that way (share {}, {})",
            dup.id.0, dup.state
        )));
    }
    if !matches!(to, Grantee::Everyone) && !own_group && store.open_offers_from(actor.id)? >= MAX_OPEN_OFFERS
    {
        return Err(SocialError::Conflict(format!(
            "you have {MAX_OPEN_OFFERS} offers waiting for an answer, the most one user may; \
             wait for answers or withdraw some first"
        )));
    }
    // A public offer is open (accepted) from the start; it reaches each user only once they
    // take it up (a follow).
    let state = match to {
        Grantee::Everyone => ShareState::Accepted,
        Grantee::Group(_) if own_group => ShareState::Accepted,
        Grantee::User(u) if store.is_blocked(u, actor.id)? => ShareState::Declined,
        _ => ShareState::Offered,
    };
    Ok(store.add_share(actor.id, channel, to, (kind, onward), state, &actor.name)?)
}

fn public_offer(store: &Store, actor: &User, id: ShareId) -> Result<crate::domain::model::Share> {
    let s = share_for(store, id)?;
    if s.to != Grantee::Everyone || s.state != ShareState::Accepted || store.is_blocked(actor.id, s.from)? {
        return Err(SocialError::NotFound(format!("no public offer {}", id.0)));
    }
    if s.from == actor.id {
        return Err(SocialError::Invalid("this is your own offer".into()));
    }
    Ok(s)
}

/// The actor takes up a public offer (a share to everyone) for themselves.
pub fn follow_share(store: &Store, actor: &User, id: ShareId) -> Result<()> {
    public_offer(store, actor, id)?;
    if !store.follow_share(id, actor.id, &actor.name)? {
        return Err(SocialError::Conflict(format!("you already take share {}", id.0)));
    }
    Ok(())
}

/// The actor stops taking a public offer.
pub fn unfollow_share(store: &Store, actor: &User, id: ShareId) -> Result<()> {
    share_for(store, id)?;
    if !store.unfollow_share(id, actor.id, &actor.name)? {
        return Err(SocialError::Conflict(format!("you do not take share {}", id.0)));
    }
    Ok(())
}

/// The actor blocks `name`: nothing of theirs reaches the actor by any path, their pending
/// offers to the actor are declined and new ones are declined as they come.
pub fn block_user(store: &Store, actor: &User, name: &str) -> Result<()> {
    let other = user(store, name)?;
    if other.id == actor.id {
        return Err(SocialError::Invalid("you cannot block yourself".into()));
    }
    if !store.block_user(actor.id, other.id, &actor.name)? {
        return Err(SocialError::Conflict(format!("you already block {name}")));
    }
    Ok(())
}

/// The actor lifts a block (declined offers stay declined: the sharer may offer again).
pub fn unblock_user(store: &Store, actor: &User, name: &str) -> Result<()> {
    let other = user(store, name)?;
    if !store.unblock_user(actor.id, other.id, &actor.name)? {
        return Err(SocialError::Conflict(format!("you do not block {name}")));
    }
    Ok(())
}

/// The users the actor blocks, by name.
pub fn my_blocks(store: &Store, actor: &User) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for id in store.blocked_by(actor.id)? {
        if let Some(u) = store.user_by_id(id)? {
            names.push(u.name);
        }
    }
    names.sort();
    Ok(names)
}

/// Whether the actor answers for the grantee side of the share.
fn answers_for(store: &Store, actor: &User, to: Grantee) -> Result<bool> {
    Ok(match to {
        Grantee::User(u) => u == actor.id,
        Grantee::Group(g) => store
            .membership(g, actor.id)?
            .is_some_and(|(role, _)| role == GroupRole::Owner),
        Grantee::Everyone => false,
    })
}

fn share_for(store: &Store, id: ShareId) -> Result<crate::domain::model::Share> {
    store.share(id)?.ok_or_else(|| no_share(id))
}

fn no_share(id: ShareId) -> SocialError {
    SocialError::NotFound(format!("no share {}", id.0))
}

/// The share, if the actor may know of it (its sharer, its grantee, an active member of the
/// grantee group, anyone for a public offer); otherwise the same answer as an unknown id,
/// so that ids cannot be probed.
fn visible_share(store: &Store, actor: &User, id: ShareId) -> Result<crate::domain::model::Share> {
    let s = share_for(store, id)?;
    let sees = s.from == actor.id
        || match s.to {
            Grantee::User(u) => u == actor.id,
            Grantee::Group(g) => store
                .membership(g, actor.id)?
                .is_some_and(|(_, state)| state == MemberState::Active),
            Grantee::Everyone => true,
        };
    if sees { Ok(s) } else { Err(no_share(id)) }
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

/// The grantee (or the grantee group's owner) answers an offer; for a public offer,
/// accepting takes it up for the actor and declining is a no-op.
pub fn answer_share(store: &Store, actor: &User, id: ShareId, accept: bool) -> Result<()> {
    let s = visible_share(store, actor, id)?;
    if s.to == Grantee::Everyone {
        return if accept {
            follow_share(store, actor, id)
        } else {
            public_offer(store, actor, id).map(|_| ())
        };
    }
    if !answers_for(store, actor, s.to)? {
        return Err(SocialError::Forbidden(format!(
            "share {} is not offered to you",
            id.0
        )));
    }
    if accept && s.state == ShareState::Offered {
        // A grant (their own data, answering a request) may stand beside this offer; the
        // offer is at least as wide, so accepting it takes the grant's place.
        if let Some(grant) = store
            .live_share(s.from, &s.channel, s.to)?
            .filter(|g| g.id != id && g.state == ShareState::Accepted)
        {
            if store.accept_replacing(id, grant.id, &actor.name)? {
                return Ok(());
            }
            return Err(SocialError::Conflict(format!(
                "share {} changed meanwhile; look again before accepting",
                id.0
            )));
        }
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
    let s = visible_share(store, actor, id)?;
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

/// The grantee stops receiving an accepted share (or a public offer it took up).
pub fn leave_share(store: &Store, actor: &User, id: ShareId) -> Result<()> {
    let s = visible_share(store, actor, id)?;
    if s.to == Grantee::Everyone {
        return unfollow_share(store, actor, id);
    }
    if !answers_for(store, actor, s.to)? {
        return Err(SocialError::Forbidden(format!(
            "share {} is not offered to you",
            id.0
        )));
    }
    transition(store, actor, id, &[ShareState::Accepted], ShareState::Left)
}

/// Public offers listed a page at a time.
pub const OFFERS_PER_PAGE: usize = crate::config::limits::PER_PAGE;

/// Page `page` (from 0) of the open public offers the actor may take up, newest first, and
/// whether another page follows; offers of users the actor blocked are left out.
pub fn public_offers(store: &Store, actor: &User, page: usize) -> Result<(Vec<ShareInfo>, bool)> {
    let (offers, more) = store.public_offers_for(actor.id, page, OFFERS_PER_PAGE)?;
    Ok((store.describe_shares(offers)?, more))
}

/// Page `page` of the shares `actor` makes ([`OUTGOING_PER_PAGE`] a page, live first, then
/// by channel), described; and whether more follow.
pub fn my_outgoing(
    store: &Store,
    actor: &User,
    filter: ShareFilter,
    page: usize,
) -> Result<(Vec<ShareInfo>, bool)> {
    let (list, more) = store.shares_from_page(actor.id, filter, page, OUTGOING_PER_PAGE)?;
    Ok((store.describe_shares(list)?, more))
}

/// Outgoing shares on a page of the Shares page and of `GET /api/v1/shares`.
pub const OUTGOING_PER_PAGE: usize = crate::config::limits::PER_PAGE;

/// Page `page` ([`OUTGOING_PER_PAGE`] a page, live first, then by channel) of what reaches
/// `actor` (as the incoming half of [`my_shares`]), described; and whether more follow.
pub fn my_incoming(
    store: &Store,
    actor: &User,
    filter: ShareFilter,
    page: usize,
) -> Result<(Vec<ShareInfo>, bool)> {
    let (list, more) = store.shares_to_page(actor.id, filter, page, OUTGOING_PER_PAGE)?;
    let follows = store.follows_of(actor.id)?;
    let mut list = store.describe_shares(list)?;
    for s in &mut list {
        s.followed = follows.contains(&s.share.id);
    }
    Ok((list, more))
}

/// Clears the ended shares (declined, revoked, left) from the actor's outgoing
/// (`outgoing`) or incoming list; how many. Lists only: the graph does not change.
pub fn clear_ended(store: &Store, actor: &User, outgoing: bool) -> Result<usize> {
    Ok(store.clear_ended(actor.id, outgoing, &actor.name)?)
}

/// What the actor shares, and what is offered to the actor (directly, through a group the
/// actor is an active member of, or a public offer it took up); offers from users the
/// actor blocked are hidden. Open public offers are [`public_offers`], a page at a time.
pub fn my_shares(store: &Store, actor: &User) -> Result<(Vec<ShareInfo>, Vec<ShareInfo>)> {
    let groups: Vec<GroupId> = store
        .groups_of(actor.id)?
        .into_iter()
        .filter(|g| {
            g.place_of(&actor.name)
                .is_some_and(|(_, state)| state == MemberState::Active)
        })
        .map(|g| g.id)
        .collect();
    let blocked = store.blocked_by(actor.id)?;
    let follows = store.follows_of(actor.id)?;
    let followed: Vec<ShareId> = follows.iter().copied().collect();
    let (outgoing, others) = store.shares_around(actor.id, &groups, &followed)?;
    let incoming = others
        .into_iter()
        .filter(|s| !blocked.contains(&s.from))
        .filter(|s| match s.to {
            Grantee::User(u) => u == actor.id,
            Grantee::Group(g) => groups.contains(&g),
            Grantee::Everyone => s.state == ShareState::Accepted || follows.contains(&s.id),
        })
        .collect();
    let mut incoming = store.describe_shares(incoming)?;
    for s in &mut incoming {
        s.followed = follows.contains(&s.share.id);
    }
    Ok((store.describe_shares(outgoing)?, incoming))
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
    if let Some(p) = crate::domain::text::problem(&comment, MAX_KEY_COMMENT, false) {
        return Err(SocialError::Invalid(format!("comment: {p}")));
    }
    let secret = match secret {
        Some(s) if s.expose().is_empty() => {
            return Err(SocialError::Invalid("the secret must not be empty".into()));
        }
        Some(s) if s.expose().len() > MAX_SECRET_LEN => {
            return Err(SocialError::Invalid(format!(
                "the secret is {} bytes; use at most {MAX_SECRET_LEN}",
                s.expose().len()
            )));
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

/// Makes sure user `name` and its key `ident` exist, creating what is missing (the key
/// publishing and subscribing on `channel`), and returns the key's secret: `serve --demo`
/// seeds with it, so that a first run has a key to connect with, run after run.
pub fn ensure_key(
    store: &Store,
    name: &str,
    email: &str,
    ident: &Ident,
    channel: &Channel,
    comment: &str,
    actor: &str,
) -> Result<Secret> {
    let user = match store.user_by_name(name)? {
        Some(u) => u,
        None => register(store, name, email, actor)?,
    };
    match store.authkey_owner(ident)? {
        None => {}
        Some(owner) if owner == user.id => {
            return store
                .key_records()?
                .into_iter()
                .find(|k| k.ident == *ident)
                .map(|k| k.secret)
                .ok_or_else(|| {
                    SocialError::Invalid(format!("authkey {ident} exists but its secret does not open"))
                });
        }
        Some(_) => {
            return Err(SocialError::Conflict(format!(
                "authkey {ident} belongs to another user"
            )));
        }
    }
    let (_, secret) = create_key(
        store,
        &user,
        Some(ident.clone()),
        None,
        vec![channel.clone()],
        vec![channel.clone()],
        comment.to_owned(),
    )?;
    Ok(secret)
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
        _db: crate::store::scratch::ScratchDb,
        store: Store,
    }

    fn fixture() -> Fixture {
        let db = crate::store::scratch::ScratchDb::new().unwrap();
        let store = Store::open(db.url()).unwrap();
        Fixture { _db: db, store }
    }

    fn add(store: &Store, name: &str) -> User {
        store.add_user(name, &format!("{name}@x.org"), "test").unwrap()
    }

    fn ch(s: &str) -> Channel {
        Channel::new(s).unwrap()
    }

    #[test]
    fn ensure_key_creates_once_then_returns_the_same_secret() {
        let f = fixture();
        let (ident, c) = (Ident::new("demo").unwrap(), ch("demo.events"));
        let first = ensure_key(&f.store, "demo", "demo@localhost", &ident, &c, "seed", "test").unwrap();
        let again = ensure_key(&f.store, "demo", "demo@localhost", &ident, &c, "seed", "test").unwrap();
        assert_eq!(first.expose(), again.expose());
        assert_eq!(f.store.authkeys().unwrap().len(), 1);
        // Someone else's key of that ident is never handed out.
        add(&f.store, "mallory");
        let err = ensure_key(&f.store, "mallory", "m@x.org", &ident, &c, "seed", "test").unwrap_err();
        assert!(matches!(err, SocialError::Conflict(_)), "{err}");
    }

    #[test]
    fn share_life_and_who_may_do_what() {
        let f = fixture();
        let s = &f.store;
        let (a, b, c) = (add(s, "a"), add(s, "b"), add(s, "c"));
        let id = offer_share(
            s,
            &a,
            &ch("x"),
            &GranteeName::User("b".into()),
            ShareKind::Own,
            false,
        )
        .unwrap();
        assert!(matches!(
            offer_share(
                s,
                &a,
                &ch("x"),
                &GranteeName::User("b".into()),
                ShareKind::Own,
                false
            ),
            Err(SocialError::Conflict(_))
        ));
        assert!(matches!(
            offer_share(
                s,
                &a,
                &ch("x"),
                &GranteeName::User("a".into()),
                ShareKind::Own,
                false
            ),
            Err(SocialError::Invalid(_))
        ));
        // A stranger to the share gets the answer an unknown id gets.
        let unknown = answer_share(s, &c, ShareId(999), true).unwrap_err().to_string();
        let stranger = answer_share(s, &c, id, true).unwrap_err().to_string();
        assert_eq!(stranger.replace(&id.0.to_string(), "999"), unknown);
        assert!(matches!(revoke_share(s, &c, id), Err(SocialError::NotFound(_))));
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
        let everyone = offer_share(s, &a, &ch("x"), &GranteeName::Everyone, ShareKind::Own, false).unwrap();
        assert_eq!(s.share(everyone).unwrap().unwrap().state, ShareState::Accepted);
        revoke_share(s, &a, everyone).unwrap();
    }

    #[test]
    fn open_public_offers_are_listed_a_page_at_a_time_without_blocked_or_taken_ones() {
        let f = fixture();
        let s = &f.store;
        let (a, b, c) = (add(s, "a"), add(s, "b"), add(s, "c"));
        let mut ids = Vec::new();
        for i in 0..60 {
            let from = if i % 2 == 0 { &a } else { &c };
            let id = offer_share(
                s,
                from,
                &ch(&format!("x{i}")),
                &GranteeName::Everyone,
                ShareKind::Own,
                false,
            )
            .unwrap();
            ids.push(id);
        }
        let (first, more) = public_offers(s, &b, 0).unwrap();
        assert_eq!((first.len(), more), (OFFERS_PER_PAGE, true));
        assert_eq!(first[0].share.id, ids[59], "newest first");
        let (second, more) = public_offers(s, &b, 1).unwrap();
        assert_eq!((second.len(), more), (10, false));
        // Taken up: in my_shares, no longer among the open offers.
        answer_share(s, &b, ids[0], true).unwrap();
        assert!(
            my_shares(s, &b)
                .unwrap()
                .1
                .iter()
                .any(|x| x.share.id == ids[0] && x.followed)
        );
        assert_eq!(public_offers(s, &b, 1).unwrap().0.len(), 9);
        // Blocked: none of c's offers are listed; a's own offers are not offered to a.
        block_user(s, &b, "c").unwrap();
        let (all, more) = public_offers(s, &b, 0).unwrap();
        assert_eq!((all.len(), more), (29, false));
        assert!(all.iter().all(|x| x.share.from == a.id));
        assert!(
            public_offers(s, &a, 0)
                .unwrap()
                .0
                .iter()
                .all(|x| x.share.from == c.id)
        );
    }

    #[test]
    fn public_offers_are_taken_up_per_user_and_blocks_hide_and_decline() {
        let f = fixture();
        let s = &f.store;
        let (a, b, c) = (add(s, "a"), add(s, "b"), add(s, "c"));
        let public = offer_share(s, &a, &ch("x"), &GranteeName::Everyone, ShareKind::Own, false).unwrap();
        let graph = s.load_graph().unwrap();
        assert_eq!(
            crate::domain::acl::sources(&graph, b.id, "x").len(),
            1,
            "no consent yet"
        );
        assert!(matches!(
            follow_share(s, &a, public),
            Err(SocialError::Invalid(_))
        ));
        answer_share(s, &b, public, true).unwrap();
        assert!(matches!(
            follow_share(s, &b, public),
            Err(SocialError::Conflict(_))
        ));
        let graph = s.load_graph().unwrap();
        assert!(crate::domain::acl::sources(&graph, b.id, "x").contains(&a.id));
        assert!(!crate::domain::acl::sources(&graph, c.id, "x").contains(&a.id));
        assert!(my_shares(s, &b).unwrap().1[0].followed);
        leave_share(s, &b, public).unwrap();
        assert!(!s.load_graph().unwrap().follows.contains(&(public, b.id)));

        // c blocks a: a's pending offer is declined, a's offers are hidden, new ones are
        // declined on the spot, and the public offer cannot be taken up.
        let pending = offer_share(
            s,
            &a,
            &ch("y"),
            &GranteeName::User("c".into()),
            ShareKind::Own,
            false,
        )
        .unwrap();
        block_user(s, &c, "a").unwrap();
        assert!(matches!(block_user(s, &c, "a"), Err(SocialError::Conflict(_))));
        assert!(matches!(block_user(s, &c, "c"), Err(SocialError::Invalid(_))));
        assert_eq!(s.share(pending).unwrap().unwrap().state, ShareState::Declined);
        let later = offer_share(
            s,
            &a,
            &ch("z"),
            &GranteeName::User("c".into()),
            ShareKind::Own,
            false,
        )
        .unwrap();
        assert_eq!(s.share(later).unwrap().unwrap().state, ShareState::Declined);
        assert!(my_shares(s, &c).unwrap().1.is_empty(), "hidden");
        assert!(matches!(
            follow_share(s, &c, public),
            Err(SocialError::NotFound(_))
        ));
        assert_eq!(my_blocks(s, &c).unwrap(), vec!["a".to_owned()]);
        unblock_user(s, &c, "a").unwrap();
        assert!(my_blocks(s, &c).unwrap().is_empty());
        follow_share(s, &c, public).unwrap();
    }

    #[test]
    fn groups_and_group_shares() {
        let f = fixture();
        let s = &f.store;
        let (a, b, d) = (add(s, "a"), add(s, "b"), add(s, "d"));
        for bad in ["bad name", ".", "..", ".hidden", "a\u{202e}b", "tab\t", ""] {
            assert!(
                matches!(create_group(s, &b, bad, ""), Err(SocialError::Invalid(_))),
                "{bad:?}"
            );
            assert!(matches!(
                register(s, bad, "x@y.org", "t"),
                Err(SocialError::Invalid(_))
            ));
        }
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
            false,
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
        assert_eq!(
            g[0].members,
            vec![("b".into(), GroupRole::Owner, MemberState::Active)]
        );
        // An invitee sees the owner and themself, not the other members.
        invite(s, &b, "trusted", "a").unwrap();
        invite(s, &b, "trusted", "d").unwrap();
        accept_invitation(s, &d, "trusted").unwrap();
        let seen: Vec<String> = my_groups(s, &a).unwrap()[0]
            .members
            .iter()
            .map(|m| m.0.clone())
            .collect();
        assert_eq!(seen, vec!["a".to_owned(), "b".to_owned()]);
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

    #[test]
    fn paged_incoming_and_dashboard_counts_equal_the_whole_list() {
        let f = fixture();
        let s = &f.store;
        let shape = crate::store::generate::Shape {
            users: 300,
            shares_per_user: 20,
            ..Default::default()
        };
        s.generate(shape, 11).unwrap();
        for i in (0..300).step_by(7) {
            let me = s.user_by_name(&format!("u{i}")).unwrap().unwrap();
            let (out, inc) = my_shares(s, &me).unwrap();
            let mut paged = Vec::new();
            for page in 0.. {
                let (list, more) = my_incoming(s, &me, ShareFilter::All, page).unwrap();
                paged.extend(list);
                if !more {
                    break;
                }
            }
            let ids = |l: &[ShareInfo]| {
                let mut v: Vec<(i64, bool)> = l.iter().map(|x| (x.share.id.0, x.followed)).collect();
                v.sort_unstable();
                v
            };
            assert_eq!(ids(&paged), ids(&inc), "u{i}");
            let c = s.share_counts(me.id).unwrap();
            let count = |l: &[ShareInfo], st: ShareState| l.iter().filter(|x| x.share.state == st).count();
            assert_eq!(c.live_out, count(&out, ShareState::Accepted), "u{i}");
            assert_eq!(c.accepted_in, count(&inc, ShareState::Accepted), "u{i}");
            assert_eq!(c.pending_in, count(&inc, ShareState::Offered), "u{i}");
        }
    }
}
