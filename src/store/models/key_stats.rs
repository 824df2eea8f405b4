//! `key_stats`: what each key has sent and received, and where it was last used from, for
//! its owner's Authkeys page. The broker adds to it in batches, off the hot path.

use std::collections::HashMap;

use diesel::prelude::*;

use crate::config::limits::TRAFFIC_KEEP_SECS;
use crate::domain::listing::{KeyTraffic, KeyUsage};

use crate::store::on_backend;

use crate::domain::UserId;
use crate::store::schema::{authkeys, key_stats, key_traffic};
use crate::store::{Store, StoreError};

impl Store {
    /// Adds each key's counters to its row (creating it) and to its traffic in `bucket`
    /// (see [`crate::store::models::catalogue::bucket_of`]); unknown idents are skipped.
    pub fn add_key_usage(&self, bucket: i64, batch: &[(String, KeyUsage)]) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        // The keys' ids are read first, outside the transaction: on SQLite a transaction that
        // reads before it writes must upgrade its lock, and a busy upgrade fails at once
        // ("database is locked") instead of waiting out the busy timeout. Starting with a
        // write, it waits like any writer.
        let mut ids = Vec::with_capacity(batch.len());
        for (ident, u) in batch {
            if let Some(id) = authkeys::table
                .filter(authkeys::ident.eq(ident))
                .select(authkeys::id)
                .first::<i64>(&mut conn)
                .optional()?
            {
                ids.push((id, u));
            }
        }
        crate::store::connection::patiently(&mut conn, |conn| {
            conn.transaction(|conn| {
                for (id, u) in ids {
                    on_backend!(conn, |c| diesel::insert_into(key_stats::table)
                        .values(key_stats::authkey_id.eq(id))
                        .on_conflict_do_nothing()
                        .execute(c))?;
                    diesel::update(key_stats::table.find(id))
                        .set((
                            key_stats::messages_published
                                .eq(key_stats::messages_published + u.messages_published),
                            key_stats::bytes_published.eq(key_stats::bytes_published + u.bytes_published),
                            key_stats::messages_received
                                .eq(key_stats::messages_received + u.messages_received),
                            key_stats::bytes_received.eq(key_stats::bytes_received + u.bytes_received),
                        ))
                        .execute(conn)?;
                    // An idle key's flush adds nothing to its traffic: no row for it.
                    let idle = u.messages_published == 0 && u.messages_received == 0 && u.slow_cuts == 0;
                    if !idle {
                        on_backend!(conn, |c| diesel::insert_into(key_traffic::table)
                            .values((key_traffic::authkey_id.eq(id), key_traffic::bucket.eq(bucket)))
                            .on_conflict_do_nothing()
                            .execute(c))?;
                        diesel::update(key_traffic::table.find((id, bucket)))
                            .set((
                                key_traffic::published.eq(key_traffic::published + u.messages_published),
                                key_traffic::published_bytes
                                    .eq(key_traffic::published_bytes + u.bytes_published),
                                key_traffic::received.eq(key_traffic::received + u.messages_received),
                                key_traffic::received_bytes
                                    .eq(key_traffic::received_bytes + u.bytes_received),
                                key_traffic::slow_cuts.eq(key_traffic::slow_cuts + u.slow_cuts),
                            ))
                            .execute(conn)?;
                    }
                    if u.last_seen_at.is_some() {
                        diesel::update(key_stats::table.find(id))
                            .set((
                                key_stats::last_seen_at.eq(u.last_seen_at),
                                key_stats::last_peer.eq(&u.last_peer),
                            ))
                            .execute(conn)?;
                    }
                }
                diesel::delete(key_traffic::table.filter(key_traffic::bucket.lt(bucket - TRAFFIC_KEEP_SECS)))
                    .execute(conn)?;
                Ok(())
            })
        })
    }

    /// The traffic of every key `owner` owns since unix second `since`, by ident, oldest
    /// bucket first.
    pub fn key_traffic_of(
        &self,
        owner: UserId,
        since: i64,
    ) -> Result<HashMap<String, Vec<KeyTraffic>>, StoreError> {
        let mut conn = self.conn()?;
        type Row = (String, i64, i64, i64, i64, i64, i64);
        let rows: Vec<Row> = key_traffic::table
            .inner_join(authkeys::table)
            .filter(authkeys::owner_id.eq(owner.0))
            .filter(key_traffic::bucket.ge(since))
            .order((authkeys::ident, key_traffic::bucket))
            .select((
                authkeys::ident,
                key_traffic::bucket,
                key_traffic::published,
                key_traffic::published_bytes,
                key_traffic::received,
                key_traffic::received_bytes,
                key_traffic::slow_cuts,
            ))
            .load(&mut conn)?;
        let mut out: HashMap<String, Vec<KeyTraffic>> = HashMap::new();
        for (ident, bucket, published, published_bytes, received, received_bytes, slow_cuts) in rows {
            out.entry(ident).or_default().push(KeyTraffic {
                bucket,
                published,
                published_bytes,
                received,
                received_bytes,
                slow_cuts,
            });
        }
        Ok(out)
    }

    /// The stored counters of every key `owner` owns, by ident.
    pub fn key_usage_of(&self, owner: UserId) -> Result<HashMap<String, KeyUsage>, StoreError> {
        let mut conn = self.conn()?;
        type Row = (String, i64, i64, i64, i64, Option<i64>, Option<String>);
        let rows: Vec<Row> = key_stats::table
            .inner_join(authkeys::table)
            .filter(authkeys::owner_id.eq(owner.0))
            .select((
                authkeys::ident,
                key_stats::messages_published,
                key_stats::bytes_published,
                key_stats::messages_received,
                key_stats::bytes_received,
                key_stats::last_seen_at,
                key_stats::last_peer,
            ))
            .load(&mut conn)?;
        Ok(rows
            .into_iter()
            .map(|(ident, mp, bp, mr, br, at, peer)| {
                (
                    ident,
                    KeyUsage {
                        messages_published: mp,
                        bytes_published: bp,
                        messages_received: mr,
                        bytes_received: br,
                        last_seen_at: at,
                        last_peer: peer,
                        // Cuts are kept per bucket only: see `key_traffic_of`.
                        slow_cuts: 0,
                    },
                )
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;
    use crate::social::ops;
    use crate::wire::{Channel, Ident};

    /// The usage writer shares the SQLite file with every other writer: an operator's
    /// import in another process may hold the write lock for longer than a page waits (the
    /// 5 s busy timeout). A flush, off every hot path, waits it out and lands rather than
    /// failing with "database is locked".
    #[test]
    fn a_usage_flush_waits_out_a_long_writer() {
        let db = crate::store::scratch::ScratchDb::new().unwrap();
        let store = Store::open(db.url()).unwrap();
        let owner = store.add_user("o", "o@x.org", "t").unwrap();
        let ident = Ident::new("k").unwrap();
        ops::create_key(
            &store,
            &owner,
            Some(ident.clone()),
            None,
            vec![Channel::new("c").unwrap()],
            vec![],
            String::new(),
        )
        .unwrap();
        let other = Store::open(db.url()).unwrap();
        let (locked, go) = mpsc::channel();
        let long = std::thread::spawn(move || {
            other.in_one_transaction(|tx| -> Result<(), StoreError> {
                tx.add_user("importing", "i@x.org", "t")?;
                locked.send(()).unwrap();
                std::thread::sleep(std::time::Duration::from_secs(7));
                Ok(())
            })
        });
        go.recv().unwrap();
        let usage = KeyUsage {
            messages_published: 1,
            ..KeyUsage::default()
        };
        store.add_key_usage(1000, &[("k".into(), usage)]).unwrap();
        long.join().unwrap().unwrap();
        assert_eq!(store.key_usage_of(owner.id).unwrap()["k"].messages_published, 1);
    }
}
