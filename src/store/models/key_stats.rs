//! `key_stats`: what each key has sent and received, and where it was last used from, for
//! its owner's Authkeys page. The broker adds to it in batches, off the hot path.

use std::collections::HashMap;

use diesel::prelude::*;

use crate::domain::listing::KeyUsage;

use crate::store::on_backend;

use crate::domain::UserId;
use crate::store::schema::{authkeys, key_stats};
use crate::store::{Store, StoreError};

impl Store {
    /// Adds each key's counters to its row (creating it); unknown idents are skipped.
    pub fn add_key_usage(&self, batch: &[(String, KeyUsage)]) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        conn.transaction(|conn| {
            for (ident, u) in batch {
                let Some(id) = authkeys::table
                    .filter(authkeys::ident.eq(ident))
                    .select(authkeys::id)
                    .first::<i64>(conn)
                    .optional()?
                else {
                    continue;
                };
                on_backend!(conn, |c| diesel::insert_into(key_stats::table)
                    .values(key_stats::authkey_id.eq(id))
                    .on_conflict_do_nothing()
                    .execute(c))?;
                diesel::update(key_stats::table.find(id))
                    .set((
                        key_stats::messages_published
                            .eq(key_stats::messages_published + u.messages_published),
                        key_stats::bytes_published.eq(key_stats::bytes_published + u.bytes_published),
                        key_stats::messages_received.eq(key_stats::messages_received + u.messages_received),
                        key_stats::bytes_received.eq(key_stats::bytes_received + u.bytes_received),
                    ))
                    .execute(conn)?;
                if u.last_seen_at.is_some() {
                    diesel::update(key_stats::table.find(id))
                        .set((
                            key_stats::last_seen_at.eq(u.last_seen_at),
                            key_stats::last_peer.eq(&u.last_peer),
                        ))
                        .execute(conn)?;
                }
            }
            Ok(())
        })
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
                    },
                )
            })
            .collect())
    }
}
