//! Loads the whole social graph in one read transaction, for the ACL derivation.

use std::collections::{HashMap, HashSet};

use diesel::prelude::*;

use crate::social::model::Graph;
use crate::social::{GroupId, UserId};
use crate::store::schema::{group_members, users};
use crate::store::{Store, StoreError};

use super::groups::STATE_ACTIVE;

impl Store {
    /// Users, active group memberships, shares and keys, consistently.
    pub fn load_graph(&self) -> Result<Graph, StoreError> {
        // Reads run in one transaction so that the graph is a snapshot (SQLite WAL).
        let mut conn = self.conn()?;
        let (users, members) = conn.transaction(|conn| {
            let users: Vec<(i64, bool)> = users::table.select((users::id, users::enabled)).load(conn)?;
            let members: Vec<(i64, i64)> = group_members::table
                .filter(group_members::state.eq(STATE_ACTIVE))
                .select((group_members::group_id, group_members::user_id))
                .load(conn)?;
            Ok::<_, StoreError>((users, members))
        })?;
        drop(conn);
        let mut groups: HashMap<GroupId, HashSet<UserId>> = HashMap::new();
        for (g, u) in members {
            groups.entry(GroupId(g)).or_default().insert(UserId(u));
        }
        Ok(Graph {
            users: users.into_iter().map(|(u, e)| (UserId(u), e)).collect(),
            groups,
            shares: self.all_shares()?,
            keys: self.key_records()?,
        })
    }
}
