//! Loads the whole social graph in one read transaction, for the ACL derivation.

use std::collections::{HashMap, HashSet};

use diesel::prelude::*;

use crate::domain::model::Graph;
use crate::domain::{GroupId, ShareId, UserId};
use crate::store::schema::{group_members, share_follows, user_blocks, users};
use crate::store::{Store, StoreError};

use super::authkeys::key_records_in;
use super::groups::STATE_ACTIVE;
use super::shares::all_shares_in;

impl Store {
    /// Users, active group memberships, shares, keys, follows and blocks: one snapshot,
    /// read in one transaction on one connection (SQLite WAL), so that a change committed
    /// meanwhile is seen whole or not at all.
    pub fn load_graph(&self) -> Result<Graph, StoreError> {
        let sealer = self.sealer().cloned();
        let mut conn = self.conn()?;
        conn.transaction(|conn| {
            let users: Vec<(i64, bool)> = users::table.select((users::id, users::enabled)).load(conn)?;
            let members: Vec<(i64, i64)> = group_members::table
                .filter(group_members::state.eq(STATE_ACTIVE))
                .select((group_members::group_id, group_members::user_id))
                .load(conn)?;
            let follows: Vec<(i64, i64)> = share_follows::table
                .select((share_follows::share_id, share_follows::user_id))
                .load(conn)?;
            let blocks: Vec<(i64, i64)> = user_blocks::table
                .select((user_blocks::blocker_id, user_blocks::blocked_id))
                .load(conn)?;
            let mut groups: HashMap<GroupId, HashSet<UserId>> = HashMap::new();
            for (g, u) in members {
                groups.entry(GroupId(g)).or_default().insert(UserId(u));
            }
            Ok(Graph {
                users: users.into_iter().map(|(u, e)| (UserId(u), e)).collect(),
                groups,
                shares: all_shares_in(conn)?,
                keys: key_records_in(conn, sealer.as_ref())?,
                follows: follows
                    .into_iter()
                    .map(|(s, u)| (ShareId(s), UserId(u)))
                    .collect(),
                blocks: blocks.into_iter().map(|(a, b)| (UserId(a), UserId(b))).collect(),
            })
        })
    }
}
