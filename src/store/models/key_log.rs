//! `key_log`: misuse of a key (failed auth, refused channel), for its owner to read when a
//! feed is silent.

use diesel::prelude::*;

use crate::domain::UserId;
use crate::domain::log::KeyLogEntry;
use crate::store::schema::{authkeys, key_log};
use crate::store::{Store, StoreError};

/// A key-log entry as stored: (at, ident, event, channel, peer, detail).
type Row = (i64, String, String, Option<String>, Option<String>, String);

fn entry((at, ident, event, channel, peer, detail): Row) -> KeyLogEntry {
    KeyLogEntry {
        at,
        ident,
        event,
        channel,
        peer,
        detail,
    }
}

impl Store {
    /// Appends entries in one transaction; each is tied to its key when the ident exists.
    pub fn append_key_log(&self, entries: &[KeyLogEntry]) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        conn.transaction(|conn| {
            for e in entries {
                let key: Option<i64> = authkeys::table
                    .filter(authkeys::ident.eq(&e.ident))
                    .select(authkeys::id)
                    .first(conn)
                    .optional()?;
                diesel::insert_into(key_log::table)
                    .values((
                        key_log::at.eq(e.at),
                        key_log::authkey_id.eq(key),
                        key_log::ident.eq(&e.ident),
                        key_log::event.eq(&e.event),
                        key_log::channel.eq(&e.channel),
                        key_log::peer.eq(&e.peer),
                        key_log::detail.eq(&e.detail),
                    ))
                    .execute(conn)?;
            }
            Ok(())
        })
    }

    /// The newest `limit` entries about keys `owner` owns, newest first.
    pub fn key_log_of(&self, owner: UserId, limit: i64) -> Result<Vec<KeyLogEntry>, StoreError> {
        let mut conn = self.conn()?;
        Ok(key_log::table
            .inner_join(authkeys::table)
            .filter(authkeys::owner_id.eq(owner.0))
            .order(key_log::id.desc())
            .limit(limit)
            .select((
                key_log::at,
                key_log::ident,
                key_log::event,
                key_log::channel,
                key_log::peer,
                key_log::detail,
            ))
            .load::<Row>(&mut conn)?
            .into_iter()
            .map(entry)
            .collect())
    }
}
