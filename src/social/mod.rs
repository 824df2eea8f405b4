//! The domain: users, authkeys and (later) groups and shares, and the ACL derived from them.
//!
//! Knows nothing of HTTP or frames. The broker consumes what [`acl`] derives.

pub mod acl;
pub mod graph;
pub mod model;
pub mod ops;

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

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "user#{}", self.0)
    }
}
