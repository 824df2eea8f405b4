//! The query planner's statistics: without them a planner may take an index that matches
//! most of a large table (see [`Store::optimize`]); a server checks them at start and hourly.

use diesel::RunQueryDsl;

use super::{AnyConnection, Store, StoreError};

impl Store {
    /// Brings the query planner's statistics up to date where a table grew or shrank since
    /// they were taken: without them the planner may pick an index that matches most of a
    /// large table (finding a live share by sharer and grantee through the index of public
    /// offers scanned 85% of `shares` at 100,000 users: 150 ms per accept on SQLite, and on
    /// PostgreSQL 54 ms for the shares to one user). SQLite: `PRAGMA optimize` (every
    /// table, each sampled on ~400 rows). PostgreSQL: `ANALYZE` of each table never
    /// analyzed, or changed by more than a tenth since, which autovacuum does too when it
    /// runs, but a database freshly imported (or a server with autovacuum off) has none.
    /// Cheap when nothing changed. Returns the tables analyzed (PostgreSQL).
    pub fn optimize(&self) -> Result<Vec<String>, StoreError> {
        use diesel::connection::SimpleConnection;
        let mut conn = self.conn()?;
        match &mut *conn {
            AnyConnection::Sqlite(c) => {
                c.batch_execute("PRAGMA optimize = 0x10002")?;
                Ok(Vec::new())
            }
            AnyConnection::Postgresql(c) => {
                #[derive(diesel::QueryableByName)]
                struct Stale {
                    #[diesel(sql_type = diesel::sql_types::Text)]
                    relname: String,
                }
                let stale: Vec<Stale> = diesel::sql_query(
                    "SELECT relname::text AS relname FROM pg_stat_user_tables \
                     WHERE schemaname = current_schema() AND n_live_tup + n_mod_since_analyze > 0 \
                     AND ((last_analyze IS NULL AND last_autoanalyze IS NULL) \
                          OR n_mod_since_analyze > GREATEST(n_live_tup / 10, 1000)) \
                     ORDER BY relname",
                )
                .load(c)?;
                let names: Vec<String> = stale.into_iter().map(|s| s.relname).collect();
                for t in &names {
                    // A name from the catalogue, quoted as an identifier.
                    c.batch_execute(&format!("ANALYZE \"{}\"", t.replace('"', "\"\"")))?;
                }
                Ok(names)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{generate, scratch};

    /// How SQLite finds a live share by sharer, channel and grantee (`Store::live_share`).
    fn live_share_plan(s: &Store) -> String {
        #[derive(diesel::QueryableByName)]
        struct Step {
            #[diesel(sql_type = diesel::sql_types::Text)]
            detail: String,
        }
        let mut conn = s.conn().unwrap();
        let AnyConnection::Sqlite(c) = &mut *conn else {
            panic!("a SQLite file was opened")
        };
        let steps: Vec<Step> = diesel::sql_query(
            "EXPLAIN QUERY PLAN SELECT id FROM shares WHERE from_user_id = 5 AND channel = 'sensor.1' \
             AND state IN ('offered', 'accepted') AND to_kind = 'user' AND to_user_id = 7 \
             ORDER BY state LIMIT 1",
        )
        .load(c)
        .unwrap();
        steps.into_iter().map(|s| s.detail).collect::<Vec<_>>().join("; ")
    }

    #[test]
    fn planner_statistics_keep_a_live_share_lookup_off_the_public_offers_index() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("plan.db").to_string_lossy()).unwrap();
        let shape = generate::Shape {
            users: 300,
            ..Default::default()
        };
        s.generate(shape, 7).unwrap();
        // Without statistics SQLite takes the index of public offers (`to_kind, state`),
        // which matches most shares: 150 ms per accept at 100,000 users.
        let before = live_share_plan(&s);
        assert!(before.contains("shares_public"), "{before}");
        s.optimize().unwrap();
        let after = live_share_plan(&s);
        assert!(
            !after.contains("shares_public") && after.contains("from_user_id=?"),
            "{after}"
        );
        // Nothing changed since: checking again is cheap and keeps the plan.
        s.optimize().unwrap();
        assert_eq!(live_share_plan(&s), after);
    }

    #[test]
    fn postgres_analyzes_the_tables_that_never_were_and_then_leaves_them() {
        let db = scratch::ScratchDb::new().unwrap();
        if !db.is_postgres() {
            return; // the PostgreSQL pass runs it; SQLite's own test is the one above
        }
        let s = Store::open(db.url()).unwrap();
        s.generate(
            generate::Shape {
                users: 300,
                ..Default::default()
            },
            7,
        )
        .unwrap();
        // The server's statistics of the inserts arrive within a second or so.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let first = loop {
            let analyzed = s.optimize().unwrap();
            if analyzed.iter().any(|t| t == "shares") || std::time::Instant::now() > deadline {
                break analyzed;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        };
        assert!(first.iter().any(|t| t == "shares"), "{first:?}");
        let again = s.optimize().unwrap();
        assert!(!again.iter().any(|t| t == "shares"), "{again:?}");
    }
}
