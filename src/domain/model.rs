//! The social graph as data: users, groups, share edges and keys, loaded from the store and
//! handed to the ACL derivation. Plain values, no I/O.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::str::FromStr;

use super::{AuthkeyId, GroupId, ShareId, UserId};
use crate::wire::{Channel, Ident, Secret};

/// Who a share is offered to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Grantee {
    /// One user.
    User(UserId),
    /// Every active member of a group (accepted by the group's owner).
    Group(GroupId),
    /// A public offer: reaches each user who takes it up (follows it).
    Everyone,
}

/// What a share passes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ShareKind {
    /// Only messages the sharer's own keys publish.
    Own,
    /// Also everything the sharer itself receives on the channel.
    Redistribute,
}

/// Where a share is in its life; only `Accepted` shares carry data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ShareState {
    /// Offered, waiting for the grantee.
    Offered,
    /// Accepted by the grantee: live.
    Accepted,
    /// Declined by the grantee.
    Declined,
    /// Withdrawn by the sharer.
    Revoked,
    /// Left by the grantee after accepting.
    Left,
}

macro_rules! text_enum {
    ($t:ty { $($v:ident => $s:literal),+ $(,)? }) => {
        impl $t {
            /// The name stored in the database and shown to users.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$v => $s),+ }
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(self.as_str())
            }
        }
        impl FromStr for $t {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($s => Ok(Self::$v),)+
                    other => Err(format!("unknown value {other:?}")),
                }
            }
        }
    };
}

/// A member's role in a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupRole {
    /// Created the group: invites, removes, answers shares offered to the group.
    Owner,
    /// An ordinary member.
    Member,
}

/// Where a membership is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MemberState {
    /// Invited, not yet accepted: receives nothing through the group.
    Invited,
    /// A full member.
    Active,
}

text_enum!(GroupRole { Owner => "owner", Member => "member" });
text_enum!(MemberState { Invited => "invited", Active => "active" });
text_enum!(ShareKind { Own => "own", Redistribute => "redistribute" });
text_enum!(ShareState {
    Offered => "offered",
    Accepted => "accepted",
    Declined => "declined",
    Revoked => "revoked",
    Left => "left",
});

/// One share edge: `from —channel→ to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share {
    /// Database id.
    pub id: ShareId,
    /// The sharing user.
    pub from: UserId,
    /// The channel shared.
    pub channel: Channel,
    /// Who receives.
    pub to: Grantee,
    /// Own data only, or redistribution.
    pub kind: ShareKind,
    /// Only accepted shares carry data.
    pub state: ShareState,
    /// Whether the grantee may pass on, through its own redistribute shares, what it
    /// receives through this one (the sharer decides; default no).
    pub onward: bool,
}

/// An authkey as stored.
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
    /// Channels listed for publish.
    pub publish: Vec<Channel>,
    /// Channels listed for subscribe.
    pub subscribe: Vec<Channel>,
}

/// Everything the ACL derivation reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Graph {
    /// Every user and whether their account is enabled.
    pub users: HashMap<UserId, bool>,
    /// Every group's active members (invited ones do not count).
    pub groups: HashMap<GroupId, HashSet<UserId>>,
    /// Every share edge, in any state.
    pub shares: Vec<Share>,
    /// Every authkey.
    pub keys: Vec<KeyRecord>,
    /// (public offer, user who took it up).
    pub follows: HashSet<(ShareId, UserId)>,
    /// (blocker, blocked): nothing of the blocked user's reaches the blocker.
    pub blocks: HashSet<(UserId, UserId)>,
}

impl Graph {
    /// Whether a user exists and is enabled.
    pub fn enabled(&self, u: UserId) -> bool {
        self.users.get(&u).copied().unwrap_or(false)
    }

    /// Whether `blocker` blocked `blocked`.
    pub fn blocked(&self, blocker: UserId, blocked: UserId) -> bool {
        self.blocks.contains(&(blocker, blocked))
    }

    /// Whether `user` took `share` up, so that it carries data to them: accepted, from an
    /// enabled sharer the user has not blocked, and reaching the user with their consent
    /// (an invitation they accepted, a group they joined whose owner accepted, or a public
    /// offer they follow).
    pub fn reaches(&self, share: &Share, user: UserId) -> bool {
        share.state == ShareState::Accepted
            && self.enabled(share.from)
            && !self.blocked(user, share.from)
            && match share.to {
                Grantee::User(u) => u == user,
                Grantee::Group(g) => self.groups.get(&g).is_some_and(|m| m.contains(&user)),
                Grantee::Everyone => self.follows.contains(&(share.id, user)),
            }
    }
}
