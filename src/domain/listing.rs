//! The entities as people read them (the website, the API, the CLI): names resolved, no
//! secrets or password material. The store hands these up; nothing here knows a table.

use crate::domain::model::{GroupRole, MemberState, Share, ShareState};
use crate::domain::{AuthkeyId, GroupId, UserId};
use crate::wire::{Channel, Ident, Secret};

/// A user as the CLI and the broker see it (no password material).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Database id.
    pub id: UserId,
    /// Unique login name.
    pub name: String,
    /// Unique email address.
    pub email: String,
    /// A disabled user's keys cannot authenticate.
    pub enabled: bool,
    /// Unix seconds.
    pub created_at: i64,
}

/// A group member as listed: (user name, role, state).
pub type Member = (String, GroupRole, MemberState);

/// A group as listed to a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupInfo {
    /// Database id.
    pub id: GroupId,
    /// Unique name.
    pub name: String,
    /// Owner's user name.
    pub owner: String,
    /// Free text.
    pub description: String,
    /// The first members by name, and always the user it is listed to: (user name, role,
    /// state).
    pub members: Vec<Member>,
    /// Members and invitees in all.
    pub member_count: usize,
    /// Active members in all.
    pub active_count: usize,
}

impl GroupInfo {
    /// `name`'s (role, state) in the group, if they are in it or invited.
    pub fn place_of(&self, name: &str) -> Option<(GroupRole, MemberState)> {
        self.members
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, role, state)| (*role, *state))
    }
}

/// A share as listed, with names resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareInfo {
    /// The edge.
    pub share: Share,
    /// Sharer's user name.
    pub from_name: String,
    /// "user NAME", "group NAME" or "everyone".
    pub to_name: String,
    /// For a public offer listed to a user: whether that user took it up.
    pub followed: bool,
    /// When it was offered (Unix seconds).
    pub created_at: i64,
    /// When its state last changed: accepted, declined, revoked (Unix seconds).
    pub updated_at: i64,
}

/// Which shares a list shows: a researcher with hundreds looks for the ones waiting for an
/// answer, the ones flowing, or the ended ones to clear.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ShareFilter {
    /// Every share not cleared, live first.
    #[default]
    All,
    /// Accepted: flowing (or a public offer open to take up).
    Active,
    /// Offered, waiting for an answer.
    Pending,
    /// Declined, revoked or left: carries nothing any more.
    Ended,
}

impl ShareFilter {
    /// Every filter, in the order the site offers them.
    pub const ALL: [ShareFilter; 4] = [Self::All, Self::Active, Self::Pending, Self::Ended];

    /// The word used in URLs (`?show=`) and the API (`?state=`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::Active => "active",
            Self::Pending => "pending",
            Self::Ended => "ended",
        }
    }

    /// From its word; `None` for anything else (an empty word is [`Self::All`]).
    pub fn parse(word: &str) -> Option<Self> {
        match word {
            "" => Some(Self::All),
            w => Self::ALL.into_iter().find(|f| f.as_str() == w),
        }
    }

    /// The states it shows, `None` for every state.
    pub fn states(self) -> Option<&'static [ShareState]> {
        match self {
            Self::All => None,
            Self::Active => Some(&[ShareState::Accepted]),
            Self::Pending => Some(&[ShareState::Offered]),
            Self::Ended => Some(&ENDED),
        }
    }
}

/// The states a share never leaves: it carries nothing, and its owner may clear it.
pub const ENDED: [ShareState; 3] = [ShareState::Declined, ShareState::Revoked, ShareState::Left];

/// A channel in the catalogue, with the users who publish on it (as the viewer may see them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogueEntry {
    /// The channel.
    pub channel: Channel,
    /// How many users with a key that publishes on it the viewer may see.
    pub count: usize,
    /// The names of the first of them (the viewer, then the oldest accounts), at most
    /// [`crate::config::limits::CATALOGUE_NAMES`].
    pub publishers: Vec<String>,
}

/// Traffic on a channel in one bucket of [`crate::config::limits::TRAFFIC_BUCKET_SECS`],
/// summed over every node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Unix seconds at the bucket's start.
    pub bucket: i64,
    /// Messages published.
    pub messages: i64,
    /// Bytes of those publish frames.
    pub bytes: i64,
    /// Frames delivered to subscribers.
    pub deliveries: i64,
}

/// Where a request for access stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestState {
    /// Waiting for the publisher.
    Open,
    /// The publisher shares the channel with the requester.
    Granted,
    /// The publisher said no.
    Declined,
    /// The requester took it back.
    Withdrawn,
}

impl RequestState {
    /// The word stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Granted => "granted",
            Self::Declined => "declined",
            Self::Withdrawn => "withdrawn",
        }
    }

    /// From its stored word.
    pub fn parse(word: &str) -> Option<Self> {
        [Self::Open, Self::Granted, Self::Declined, Self::Withdrawn]
            .into_iter()
            .find(|s| s.as_str() == word)
    }
}

/// A researcher's request to a publisher for a channel, as listed to either of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessRequest {
    /// Its id.
    pub id: crate::domain::RequestId,
    /// Who asks.
    pub from: UserId,
    /// Their name.
    pub from_name: String,
    /// The publisher asked.
    pub to: UserId,
    /// Their name.
    pub to_name: String,
    /// The channel asked for.
    pub channel: Channel,
    /// What the requester wrote.
    pub note: String,
    /// Where it stands.
    pub state: RequestState,
    /// The share that granted it.
    pub share: Option<crate::domain::ShareId>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds of the answer.
    pub answered_at: Option<i64>,
}

/// A key to create.
#[derive(Debug, Clone)]
pub struct NewAuthkey {
    /// Owning user.
    pub owner: UserId,
    /// Public name, unique.
    pub ident: Ident,
    /// Shared secret.
    pub secret: Secret,
    /// Channels it may publish on.
    pub publish: Vec<Channel>,
    /// Channels it may subscribe to.
    pub subscribe: Vec<Channel>,
    /// Free text for its owner ("dionaea on sensor-3").
    pub comment: String,
}

/// A key as listed to operators (no secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthkeyInfo {
    /// Database id.
    pub id: AuthkeyId,
    /// Public name.
    pub ident: Ident,
    /// Owner's user name.
    pub owner: String,
    /// Whether it may authenticate.
    pub enabled: bool,
    /// Channels listed for publish.
    pub publish: Vec<Channel>,
    /// Channels listed for subscribe.
    pub subscribe: Vec<Channel>,
    /// Free text.
    pub comment: String,
    /// Unix seconds.
    pub created_at: i64,
}

/// Counters of one key, as added by the broker and as read by the website.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyUsage {
    /// Publishes accepted from the key.
    pub messages_published: i64,
    /// Bytes of those publish frames.
    pub bytes_published: i64,
    /// Frames delivered to the key's subscriptions.
    pub messages_received: i64,
    /// Bytes of those frames.
    pub bytes_received: i64,
    /// Unix seconds of the last use.
    pub last_seen_at: Option<i64>,
    /// The client address of the last use.
    pub last_peer: Option<String>,
    /// Times a session of the key was cut as a slow subscriber.
    pub slow_cuts: i64,
}

/// A key's traffic in one bucket of [`crate::config::limits::TRAFFIC_BUCKET_SECS`], summed
/// over every node: its feed health.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyTraffic {
    /// Unix seconds at the bucket's start.
    pub bucket: i64,
    /// Publishes accepted.
    pub published: i64,
    /// Their bytes.
    pub published_bytes: i64,
    /// Frames delivered to the key.
    pub received: i64,
    /// Their bytes.
    pub received_bytes: i64,
    /// Times a session of the key was cut as a slow subscriber.
    pub slow_cuts: i64,
}
