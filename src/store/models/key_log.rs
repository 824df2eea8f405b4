//! `key_log`: misuse of a key (failed auth, refused channel), for its owner to read when a
//! feed is silent.

use diesel::prelude::*;

use crate::domain::UserId;
use crate::domain::log::KeyLogEntry;
use crate::store::schema::{authkeys, key_log};
use crate::store::{Backend, Store, StoreError, lower};

diesel::define_sql_function! {
    /// SQL `coalesce()` for an optional text column and a fallback.
    fn coalesce(x: diesel::sql_types::Nullable<diesel::sql_types::Text>, y: diesel::sql_types::Text) -> diesel::sql_types::Text;
}

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

    /// Page `page` (`per` entries, newest first) of the entries about keys `owner` owns,
    /// only those with `q` in their ident, event, channel, peer or detail (any case) when
    /// given; and whether more follow. Filtered and cut in SQL, never read whole.
    pub fn key_log_page(
        &self,
        owner: UserId,
        q: Option<&str>,
        page: usize,
        per: usize,
    ) -> Result<(Vec<KeyLogEntry>, bool), StoreError> {
        let mut conn = self.conn()?;
        let mut query = key_log::table
            .inner_join(authkeys::table)
            .filter(authkeys::owner_id.eq(owner.0))
            .into_boxed();
        if let Some(q) = q {
            let q = match self.backend() {
                Backend::Postgres => q.to_lowercase(),
                Backend::Sqlite(_) => q.to_ascii_lowercase(),
            };
            let p = super::accounts::like_pattern(&q);
            query = query.filter(
                lower(key_log::ident)
                    .like(p.clone())
                    .escape('\\')
                    .or(lower(key_log::event).like(p.clone()).escape('\\'))
                    .or(lower(coalesce(key_log::channel, "")).like(p.clone()).escape('\\'))
                    .or(lower(coalesce(key_log::peer, "")).like(p.clone()).escape('\\'))
                    .or(lower(key_log::detail).like(p).escape('\\')),
            );
        }
        let rows = query
            .order(key_log::id.desc())
            .limit(crate::store::page_limit(per))
            .offset(crate::store::page_offset(page, per))
            .select((
                key_log::at,
                key_log::ident,
                key_log::event,
                key_log::channel,
                key_log::peer,
                key_log::detail,
            ))
            .load::<Row>(&mut conn)?;
        let (rows, more) = crate::store::page_rows(rows, per);
        Ok((rows.into_iter().map(entry).collect(), more))
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
