//! The social graph for the ACL derivation: read whole at start, then followed through the
//! change log (`graph_changes`, filled by triggers in the writing transaction) as deltas.

use std::collections::{BTreeSet, HashMap, HashSet};

use diesel::prelude::*;

use crate::domain::live::Delta;
use crate::domain::model::{Graph, Share};
use crate::domain::{AuthkeyId, GroupId, ShareId, UserId};
use crate::store::schema::{
    graph_changes, graph_log, group_members, share_follows, shares, user_blocks, users,
};
use crate::store::{AnyConnection, IN_CHUNK, Store, StoreError, in_chunks};

use super::applied::LIVE_WITHIN;
use super::authkeys::key_records_in;
use super::shares::{shares_by_id_range, shares_in};
use crate::domain::model::MemberState;

/// At most this many change-log rows are read at once (a caller reads on until `Current`).
const CHANGES_PER_READ: i64 = 20_000;

/// What the change log holds past the version a server applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GraphChanges {
    /// Nothing new.
    Current,
    /// These deltas (each entity as it is now) bring the graph to `version`.
    Deltas {
        /// The last change read.
        version: i64,
        /// What changed.
        deltas: Vec<Delta>,
    },
    /// The log was pruned past the version asked for: read the whole graph again.
    Reload,
}

/// The ACL version inside a transaction: the last change logged.
fn version_in(conn: &mut AnyConnection) -> QueryResult<i64> {
    let last: Option<i64> = graph_changes::table
        .select(diesel::dsl::max(graph_changes::id))
        .first(conn)?;
    match last {
        Some(v) => Ok(v),
        None => graph_log::table
            .select(graph_log::pruned_through)
            .first(conn)
            .optional()
            .map(Option::unwrap_or_default),
    }
}

fn pairs_in(
    conn: &mut AnyConnection,
    wanted: &BTreeSet<(i64, i64)>,
    load: impl Fn(&mut AnyConnection, &[i64], &[i64]) -> QueryResult<Vec<(i64, i64)>>,
) -> QueryResult<HashSet<(i64, i64)>> {
    let wanted: Vec<(i64, i64)> = wanted.iter().copied().collect();
    let mut found = HashSet::new();
    for chunk in wanted.chunks(IN_CHUNK) {
        let a: Vec<i64> = chunk.iter().map(|p| p.0).collect();
        let b: Vec<i64> = chunk.iter().map(|p| p.1).collect();
        found.extend(load(conn, &a, &b)?.into_iter().filter(|p| chunk.contains(p)));
    }
    Ok(found)
}

/// Everything of the graph but the keys, read on `conn` (inside the caller's transaction),
/// with the shares up to `shares_through` (`None`: all of them).
fn graph_without_keys_in(conn: &mut AnyConnection, shares_through: Option<i64>) -> Result<Graph, StoreError> {
    let users: Vec<(i64, bool)> = users::table.select((users::id, users::enabled)).load(conn)?;
    let members: Vec<(i64, i64)> = group_members::table
        .filter(group_members::state.eq(MemberState::Active.as_str()))
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
        shares: match shares_through {
            None => shares_in(conn, None)?,
            Some(through) => shares_by_id_range(conn, 0, Some(through))?,
        },
        keys: Vec::new(),
        follows: follows
            .into_iter()
            .map(|(s, u)| (ShareId(s), UserId(u)))
            .collect(),
        blocks: blocks.into_iter().map(|(a, b)| (UserId(a), UserId(b))).collect(),
    })
}

impl Store {
    /// The counter every ACL-relevant change moves: the id of the last logged change.
    pub fn acl_version(&self) -> Result<i64, StoreError> {
        let mut conn = self.conn()?;
        Ok(version_in(&mut conn)?)
    }

    /// Users, active group memberships, shares, keys, follows and blocks: one snapshot,
    /// read in one transaction on one connection (SQLite WAL), so that a change committed
    /// meanwhile is seen whole or not at all.
    pub fn load_graph(&self) -> Result<Graph, StoreError> {
        let sealer = self.sealer().cloned();
        let mut conn = self.conn()?;
        conn.transaction(|conn| {
            let mut graph = graph_without_keys_in(conn, None)?;
            graph.keys = key_records_in(conn, sealer.as_ref(), None)?;
            Ok(graph)
        })
    }

    /// The whole graph and a version to follow the change log from, for a server starting:
    /// the version is read first, then the keys, the upper half of the shares and the rest
    /// on three connections at once. The reads may see different moments, but every change after the version is in
    /// the log, and each logged change is applied as its entity is when the log is read,
    /// so following the log from the version makes the whole consistent again.
    pub fn load_graph_versioned(&self) -> Result<(i64, Graph), StoreError> {
        let version = self.acl_version()?;
        let mut conn = self.conn()?;
        if self.pool_use().max < 3 {
            // Too few connections to read on three at once: one read after the other.
            let sealer = self.sealer().cloned();
            let mut graph = conn.transaction(|conn| graph_without_keys_in(conn, None))?;
            graph.keys = conn.transaction(|conn| key_records_in(conn, sealer.as_ref(), None))?;
            return Ok((version, graph));
        }
        // Reading is most of a start: the keys alone take half as long as the rest.
        let max: Option<i64> = shares::table
            .select(diesel::dsl::max(shares::id))
            .first(&mut conn)?;
        let half = max.map(|m| m / 2);
        let store = self.clone();
        let keys = std::thread::spawn(move || store.key_records());
        let store = self.clone();
        let upper = std::thread::spawn(move || -> Result<Vec<Share>, StoreError> {
            let mut conn = store.conn()?;
            conn.transaction(|conn| shares_by_id_range(conn, half.unwrap_or(0), max))
        });
        let mut graph = conn.transaction(|conn| graph_without_keys_in(conn, Some(half.unwrap_or(0))))?;
        let panicked = |what: &str| StoreError::NotFound(format!("the {what} reader panicked"));
        graph
            .shares
            .extend(upper.join().map_err(|_| panicked("shares"))??);
        graph.keys = keys.join().map_err(|_| panicked("key"))??;
        Ok((version, graph))
    }

    /// The changes logged after `after`, each entity read as it is now (in one
    /// transaction), at most [`CHANGES_PER_READ`] log rows at a time.
    pub fn graph_changes_since(&self, after: i64) -> Result<GraphChanges, StoreError> {
        self.graph_changes_between(after, i64::MAX)
    }

    /// [`Self::graph_changes_since`], of the rows up to `through` only (a change of this
    /// process applied ahead of others logged before it; see `social::graph`).
    pub fn graph_changes_between(&self, after: i64, through: i64) -> Result<GraphChanges, StoreError> {
        let sealer = self.sealer().cloned();
        let mut conn = self.conn()?;
        conn.transaction(|conn| {
            let pruned: i64 = graph_log::table
                .select(graph_log::pruned_through)
                .first(conn)
                .optional()?
                .unwrap_or_default();
            if after < pruned {
                return Ok(GraphChanges::Reload);
            }
            let rows: Vec<(i64, String, i64, i64)> = graph_changes::table
                .filter(graph_changes::id.gt(after))
                .filter(graph_changes::id.le(through))
                .order(graph_changes::id)
                .limit(CHANGES_PER_READ)
                .select((
                    graph_changes::id,
                    graph_changes::kind,
                    graph_changes::a,
                    graph_changes::b,
                ))
                .load(conn)?;
            let Some(version) = rows.last().map(|r| r.0) else {
                return Ok(GraphChanges::Current);
            };
            let mut wanted: HashMap<&str, BTreeSet<(i64, i64)>> = HashMap::new();
            for (_, kind, a, b) in &rows {
                wanted.entry(kind.as_str()).or_default().insert((*a, *b));
            }
            let ids =
                |kind: &str| -> Vec<i64> { wanted.get(kind).into_iter().flatten().map(|p| p.0).collect() };
            let mut deltas = Vec::new();

            let user_ids = ids("user");
            let found: HashMap<i64, bool> = in_chunks(&user_ids, |c| {
                users::table
                    .filter(users::id.eq_any(c))
                    .select((users::id, users::enabled))
                    .load(conn)
            })?
            .into_iter()
            .collect();
            deltas.extend(
                user_ids
                    .iter()
                    .map(|u| Delta::User(UserId(*u), found.get(u).copied())),
            );

            let key_ids = ids("key");
            let mut keys: HashMap<i64, _> = key_records_in(conn, sealer.as_ref(), Some(&key_ids))?
                .into_iter()
                .map(|k| (k.id.0, k))
                .collect();
            deltas.extend(key_ids.iter().map(|k| Delta::Key(AuthkeyId(*k), keys.remove(k))));

            let share_ids = ids("share");
            let mut shares: HashMap<i64, _> = shares_in(conn, Some(&share_ids))?
                .into_iter()
                .map(|s| (s.id.0, s))
                .collect();
            deltas.extend(
                share_ids
                    .iter()
                    .map(|s| Delta::Share(ShareId(*s), shares.remove(s))),
            );

            // Memberships, follows and blocks before shares' grantees are looked at again:
            // order within one batch does not matter, every delta carries the state now.
            let empty = BTreeSet::new();
            let members = wanted.get("member").unwrap_or(&empty);
            let active = pairs_in(conn, members, |conn, g, u| {
                group_members::table
                    .filter(group_members::group_id.eq_any(g))
                    .filter(group_members::user_id.eq_any(u))
                    .filter(group_members::state.eq(MemberState::Active.as_str()))
                    .select((group_members::group_id, group_members::user_id))
                    .load(conn)
            })?;
            deltas.extend(members.iter().map(|p| Delta::Member {
                group: GroupId(p.0),
                user: UserId(p.1),
                active: active.contains(p),
            }));
            let follows = wanted.get("follow").unwrap_or(&empty);
            let on = pairs_in(conn, follows, |conn, s, u| {
                share_follows::table
                    .filter(share_follows::share_id.eq_any(s))
                    .filter(share_follows::user_id.eq_any(u))
                    .select((share_follows::share_id, share_follows::user_id))
                    .load(conn)
            })?;
            deltas.extend(follows.iter().map(|p| Delta::Follow {
                share: ShareId(p.0),
                user: UserId(p.1),
                on: on.contains(p),
            }));
            let blocks = wanted.get("block").unwrap_or(&empty);
            let on = pairs_in(conn, blocks, |conn, a, b| {
                user_blocks::table
                    .filter(user_blocks::blocker_id.eq_any(a))
                    .filter(user_blocks::blocked_id.eq_any(b))
                    .select((user_blocks::blocker_id, user_blocks::blocked_id))
                    .load(conn)
            })?;
            deltas.extend(blocks.iter().map(|p| Delta::Block {
                blocker: UserId(p.0),
                blocked: UserId(p.1),
                on: on.contains(p),
            }));
            Ok(GraphChanges::Deltas { version, deltas })
        })
    }

    /// Drops change-log rows older than `keep_secs` that every live server has applied
    /// (always keeping the last, which is the version); returns how many went.
    pub fn prune_graph_changes(&self, keep_secs: i64) -> Result<usize, StoreError> {
        use crate::store::schema::acl_applied;
        let mut conn = self.conn()?;
        conn.transaction(|conn| {
            let now = crate::store::now();
            let live: Option<i64> = acl_applied::table
                .filter(acl_applied::seen_at.ge(now - LIVE_WITHIN))
                .select(diesel::dsl::min(acl_applied::version))
                .first(conn)?;
            let last = version_in(conn)?;
            let through = live.unwrap_or(last).min(last - 1);
            let doomed: Option<i64> = graph_changes::table
                .filter(graph_changes::id.le(through))
                .filter(graph_changes::at.lt(now - keep_secs))
                .select(diesel::dsl::max(graph_changes::id))
                .first(conn)?;
            let Some(doomed) = doomed else {
                return Ok(0);
            };
            let n =
                diesel::delete(graph_changes::table.filter(graph_changes::id.le(doomed))).execute(conn)?;
            diesel::update(graph_log::table.filter(graph_log::pruned_through.lt(doomed)))
                .set(graph_log::pruned_through.eq(doomed))
                .execute(conn)?;
            Ok(n)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::model::{Grantee, ShareKind, ShareState};
    use crate::wire::Channel;

    #[test]
    fn the_change_log_gives_each_touched_entity_as_it_is_now_and_prunes_what_all_applied() {
        let db = crate::store::scratch::ScratchDb::new().unwrap();
        let store = Store::open(db.url()).unwrap();
        let v0 = store.acl_version().unwrap();
        let a = store.add_user("a", "a@x.org", "t").unwrap();
        let b = store.add_user("b", "b@x.org", "t").unwrap();
        let users_made = store.acl_version().unwrap();
        let c = Channel::new("c").unwrap();
        let s = store
            .add_share(
                a.id,
                &c,
                Grantee::User(b.id),
                (ShareKind::Own, false),
                ShareState::Offered,
                "t",
            )
            .unwrap();
        assert!(
            store
                .transition_share(s, &[ShareState::Offered], ShareState::Accepted, "t")
                .unwrap()
        );
        let GraphChanges::Deltas { version, deltas } = store.graph_changes_since(v0).unwrap() else {
            panic!("no deltas");
        };
        assert_eq!(version, store.acl_version().unwrap());
        assert!(deltas.contains(&Delta::User(a.id, Some(true))));
        assert!(deltas.contains(&Delta::User(b.id, Some(true))));
        // Logged twice (offer, accept), delivered once, as it is now.
        let shares: Vec<_> = deltas.iter().filter(|d| matches!(d, Delta::Share(..))).collect();
        assert_eq!(shares.len(), 1);
        assert!(
            matches!(shares[0], Delta::Share(id, Some(sh)) if *id == s && sh.state == ShareState::Accepted)
        );
        assert_eq!(store.graph_changes_since(version).unwrap(), GraphChanges::Current);
        // Read only up to a change: the users, not the share made after them.
        let GraphChanges::Deltas {
            version: upto,
            deltas,
        } = store.graph_changes_between(v0, users_made).unwrap()
        else {
            panic!("no deltas");
        };
        assert_eq!(upto, users_made);
        assert!(deltas.contains(&Delta::User(b.id, Some(true))));
        assert!(!deltas.iter().any(|d| matches!(d, Delta::Share(..))));
        assert_eq!(
            store.graph_changes_between(users_made, users_made).unwrap(),
            GraphChanges::Current
        );

        // Pruned once every live server applied it: a server further behind must reload.
        store.record_applied("n1", version).unwrap();
        assert!(store.prune_graph_changes(-10).unwrap() > 0);
        assert_eq!(store.graph_changes_since(v0).unwrap(), GraphChanges::Reload);
        assert_eq!(store.graph_changes_since(version).unwrap(), GraphChanges::Current);
        assert_eq!(
            store.acl_version().unwrap(),
            version,
            "the version survives pruning"
        );
        // A server that has not applied the last change keeps it from being pruned.
        store.record_applied("n2", v0).unwrap();
        store.add_user("c", "c@x.org", "t").unwrap();
        assert_eq!(store.prune_graph_changes(-10).unwrap(), 0);
    }
}
