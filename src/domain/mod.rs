//! The domain: users, authkeys, groups and shares as values, and each key's ACL derived
//! from them as a pure function. Below `store` (which persists it) and below `social`
//! (which checks permissions and keeps it live); it names nothing of ours but `wire`.

pub mod acl;
pub mod listing;
pub mod live;
pub mod log;
pub mod model;
pub mod snippet;
pub mod text;

use std::fmt;

/// Database id of a user; a newtype so that it cannot be swapped with a key's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(pub i64);

/// Database id of an authkey.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AuthkeyId(pub i64);

/// Database id of a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupId(pub i64);

/// Database id of a share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShareId(pub i64);

/// Database id of a request for access.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub i64);

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "user#{}", self.0)
    }
}
