//! `acl_applied`: the ACL version each running server has made live on its connections, so
//! that the CLI, which writes beside `serve`, answers only once its change is live.

use std::time::{Duration, Instant};

use diesel::prelude::*;

use crate::store::on_backend;

use crate::store::schema::acl_applied;
use crate::store::{Store, StoreError, now};

/// A server not seen for this long (it heartbeats every 2 s) is taken for dead.
pub const LIVE_WITHIN: i64 = 10;

/// A server not seen for longer than [`LIVE_WITHIN`] but within this long, which had not
/// applied a change, is named beside the answer as silent (down, or cut off from the
/// database: then failing closed), so that the answer never passes over it in silence. A
/// server stopped cleanly removes its record and is never named.
pub const SILENT_WITHIN: i64 = 600;

/// What waiting for the running servers found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Live {
    /// Every running server applied the version (or none runs).
    Applied {
        /// The servers that applied it (a cluster node's `node_id`, else pid-random), sorted.
        nodes: Vec<String>,
    },
    /// Some running server had not applied it when the wait ended.
    Pending {
        /// The version waited for.
        version: i64,
        /// Servers still behind.
        behind: usize,
        /// Their names (a cluster node's `node_id`, else pid-random), sorted.
        nodes: Vec<String>,
        /// The servers that had applied it, sorted.
        applied: Vec<String>,
    },
}

impl Store {
    /// Records that `node` has applied `version` (and is alive now).
    pub fn record_applied(&self, node: &str, version: i64) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        let at = now();
        on_backend!(&mut conn, |c| diesel::insert_into(acl_applied::table)
            .values((
                acl_applied::node.eq(node),
                acl_applied::version.eq(version),
                acl_applied::seen_at.eq(at),
            ))
            .on_conflict(acl_applied::node)
            .do_update()
            .set((acl_applied::version.eq(version), acl_applied::seen_at.eq(at)))
            .execute(c))?;
        Ok(())
    }

    /// When `node` last said it was alive (Unix seconds), if it has a row.
    pub fn node_seen_at(&self, node: &str) -> Result<Option<i64>, StoreError> {
        let mut conn = self.conn()?;
        Ok(acl_applied::table
            .filter(acl_applied::node.eq(node))
            .select(acl_applied::seen_at)
            .first(&mut conn)
            .optional()?)
    }

    /// The servers not seen within [`LIVE_WITHIN`] but within [`SILENT_WITHIN`] that had
    /// not applied `version`, with how long ago each was last seen (seconds), by name;
    /// `waited` is what the wait for `version` found, and a server it named as behind (its
    /// heartbeat aged in between) is not named again. On SQLite none: the file is shared by
    /// local processes alone, so one that stopped beating has died (and delivers nothing).
    pub fn silent_nodes(&self, version: i64, waited: &Live) -> Result<Vec<(String, i64)>, StoreError> {
        if !matches!(self.backend(), crate::store::Backend::Postgres) {
            return Ok(Vec::new());
        }
        let mut conn = self.conn()?;
        let at = now();
        let rows: Vec<(String, i64)> = acl_applied::table
            .filter(acl_applied::seen_at.lt(at - LIVE_WITHIN))
            .filter(acl_applied::seen_at.ge(at - SILENT_WITHIN))
            .filter(acl_applied::version.lt(version))
            .select((acl_applied::node, acl_applied::seen_at))
            .order(acl_applied::node)
            .load(&mut conn)?;
        let behind: &[String] = match waited {
            Live::Pending { nodes, .. } => nodes,
            Live::Applied { .. } => &[],
        };
        Ok(rows
            .into_iter()
            .filter(|(n, _)| !behind.contains(n))
            .map(|(n, seen)| (n, at - seen))
            .collect())
    }

    /// `node` stopped.
    pub fn forget_applied(&self, node: &str) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        diesel::delete(acl_applied::table.filter(acl_applied::node.eq(node))).execute(&mut conn)?;
        Ok(())
    }

    /// Waits (polling, at most `limit`) until every server seen alive has applied the
    /// current ACL version.
    pub fn wait_applied(&self, limit: Duration) -> Result<Live, StoreError> {
        self.wait_applied_at(self.acl_version()?, limit)
    }

    /// Waits (polling, at most `limit`) until every server seen alive has applied
    /// `version`: a change's own id, so that changes committed meanwhile by others (which
    /// a node may not reach before this wait ends) do not hold it up.
    pub fn wait_applied_at(&self, version: i64, limit: Duration) -> Result<Live, StoreError> {
        let deadline = Instant::now() + limit;
        loop {
            let mut conn = self.conn()?;
            let live: Vec<(String, i64)> = acl_applied::table
                .filter(acl_applied::seen_at.ge(now() - LIVE_WITHIN))
                .select((acl_applied::node, acl_applied::version))
                .load(&mut conn)?;
            drop(conn);
            let mut nodes: Vec<String> = live
                .iter()
                .filter(|(_, v)| *v < version)
                .map(|(n, _)| n.clone())
                .collect();
            if nodes.is_empty() {
                let mut nodes: Vec<String> = live.into_iter().map(|(n, _)| n).collect();
                nodes.sort();
                return Ok(Live::Applied { nodes });
            }
            if Instant::now() >= deadline {
                nodes.sort();
                let mut applied: Vec<String> = live
                    .into_iter()
                    .filter(|(_, v)| *v >= version)
                    .map(|(n, _)| n)
                    .collect();
                applied.sort();
                return Ok(Live::Pending {
                    version,
                    behind: nodes.len(),
                    nodes,
                    applied,
                });
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}
