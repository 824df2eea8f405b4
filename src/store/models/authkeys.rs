//! `authkeys` and `authkey_channels`: the keys that touch the feed, and the channel names
//! each lists for publish and for subscribe.

use std::collections::{BTreeMap, HashMap};

use crate::store::AnyConnection;
use diesel::prelude::*;

use crate::domain::listing::{AuthkeyInfo, NewAuthkey};

use super::audit;
use crate::domain::acl::KeyRecord;
use crate::domain::{AuthkeyId, UserId};
use crate::store::schema::{authkey_channels, authkeys, users};
use crate::store::{ID_RANGE, Store, StoreError, by_id_ranges, conflict, in_chunks, now};
use crate::wire::{Channel, Ident, Secret};

#[derive(Queryable)]
struct ChannelRow {
    authkey_id: i64,
    channel: String,
    can_publish: bool,
    can_subscribe: bool,
}

/// Both lists of every key, by key id. Rows with a name that is no longer valid (edited by
/// hand) are skipped with a warning rather than failing every key.
/// A key's (publish, subscribe) channel lists.
type ChannelLists = (Vec<Channel>, Vec<Channel>);

fn channel_lists(conn: &mut AnyConnection, only: Option<&[i64]>) -> QueryResult<HashMap<i64, ChannelLists>> {
    let query = || {
        authkey_channels::table
            .order((authkey_channels::authkey_id, authkey_channels::channel))
            .select((
                authkey_channels::authkey_id,
                authkey_channels::channel,
                authkey_channels::can_publish,
                authkey_channels::can_subscribe,
            ))
    };
    let mut out: HashMap<i64, ChannelLists> = HashMap::new();
    let mut names = crate::store::ChannelNames::default();
    let mut take = |rows: Vec<ChannelRow>| {
        for r in rows {
            let Ok(ch) = names.channel(&r.channel) else {
                tracing::warn!(authkey_id = r.authkey_id, channel = %r.channel, "skipping invalid channel name in database");
                continue;
            };
            let e = out.entry(r.authkey_id).or_default();
            if r.can_publish {
                e.0.push(ch.clone());
            }
            if r.can_subscribe {
                e.1.push(ch);
            }
        }
    };
    match only {
        None => {
            let max: Option<i64> = authkeys::table
                .select(diesel::dsl::max(authkeys::id))
                .first(conn)?;
            // Keys list a few channels each: a range of key ids is several rows per id.
            by_id_ranges(
                max,
                ID_RANGE / 5,
                |lo, hi| {
                    query()
                        .filter(authkey_channels::authkey_id.gt(lo))
                        .filter(authkey_channels::authkey_id.le(hi))
                        .load(conn)
                },
                &mut take,
            )?;
        }
        Some(ids) => take(in_chunks(ids, |c| {
            query().filter(authkey_channels::authkey_id.eq_any(c)).load(conn)
        })?),
    }
    Ok(out)
}

/// Replaces the channel lists of key `id`.
fn write_channels(
    conn: &mut AnyConnection,
    id: i64,
    publish: &[Channel],
    subscribe: &[Channel],
) -> QueryResult<()> {
    diesel::delete(authkey_channels::table.filter(authkey_channels::authkey_id.eq(id))).execute(conn)?;
    let mut merged: BTreeMap<&str, (bool, bool)> = BTreeMap::new();
    for c in publish {
        merged.entry(c.as_str()).or_default().0 = true;
    }
    for c in subscribe {
        merged.entry(c.as_str()).or_default().1 = true;
    }
    for (channel, (p, s)) in merged {
        diesel::insert_into(authkey_channels::table)
            .values((
                authkey_channels::authkey_id.eq(id),
                authkey_channels::channel.eq(channel),
                authkey_channels::can_publish.eq(p),
                authkey_channels::can_subscribe.eq(s),
            ))
            .execute(conn)?;
    }
    Ok(())
}

fn describe(publish: &[Channel], subscribe: &[Channel]) -> String {
    let list = |v: &[Channel]| v.iter().map(Channel::as_str).collect::<Vec<_>>().join(",");
    format!("publish=[{}] subscribe=[{}]", list(publish), list(subscribe))
}

impl Store {
    /// What the `secret` column holds for a secret: sealed when a server key is configured.
    /// Without a server key, a database whose secrets are sealed refuses a plaintext one
    /// (a CLI run without `secret_key_file` would otherwise leave a readable secret in a
    /// database its operator believes sealed).
    fn stored_secret(&self, ident: &Ident, secret: &Secret) -> Result<String, StoreError> {
        match self.sealer() {
            Some(s) => s.seal(ident.as_str(), secret.expose()),
            None => {
                let mut conn = self.conn()?;
                let sealed: Option<String> = authkeys::table
                    .filter(authkeys::secret.like(format!("{}%", crate::store::sealing::PREFIX)))
                    .select(authkeys::ident)
                    .first(&mut conn)
                    .optional()?;
                if sealed.is_some() {
                    return Err(StoreError::Sealing(
                        "this database keeps authkey secrets encrypted: configure secret_key_file \
                         (HPFRIENDS_SECRET_KEY_FILE) to write one"
                            .into(),
                    ));
                }
                Ok(secret.expose().to_owned())
            }
        }
    }

    /// Seals every secret still stored in plaintext and checks that the sealed ones open;
    /// returns how many were sealed. Without a sealer, only checks that none is sealed.
    pub fn seal_plaintext_secrets(&self) -> Result<usize, StoreError> {
        let mut conn = self.conn()?;
        let sealer = self.sealer().cloned();
        let sealed = conn.transaction(|conn| {
            let rows: Vec<(i64, String, String)> = authkeys::table
                .select((authkeys::id, authkeys::ident, authkeys::secret))
                .load(conn)?;
            let mut sealed = 0;
            for (id, ident, stored) in rows {
                let secret = crate::store::sealing::open(sealer.as_ref(), &ident, &stored)?;
                if let (Some(s), false) = (&sealer, crate::store::sealing::is_sealed(&stored)) {
                    diesel::update(authkeys::table.find(id))
                        .set(authkeys::secret.eq(s.seal(&ident, &secret)?))
                        .execute(conn)?;
                    sealed += 1;
                }
            }
            Ok::<_, StoreError>(sealed)
        })?;
        // The pages that held plaintext are replaced in the file now, not at some later
        // checkpoint (a process that exits without one would leave them there).
        if sealed > 0
            && let AnyConnection::Sqlite(c) = &mut *conn
            && let Err(e) =
                diesel::connection::SimpleConnection::batch_execute(c, "PRAGMA wal_checkpoint(TRUNCATE);")
        {
            tracing::warn!("cannot checkpoint after sealing secrets: {e}");
        }
        Ok(sealed)
    }

    /// Creates a key with its channel lists; a taken ident is a [`StoreError::Conflict`].
    pub fn add_authkey(&self, new: &NewAuthkey, actor: &str) -> Result<AuthkeyId, StoreError> {
        let stored = self.stored_secret(&new.ident, &new.secret)?;
        let mut conn = self.conn()?;
        conn.transaction(|conn| {
            let t = now();
            let id: i64 = diesel::insert_into(authkeys::table)
                .values((
                    authkeys::ident.eq(new.ident.as_str()),
                    authkeys::secret.eq(&stored),
                    authkeys::owner_id.eq(new.owner.0),
                    authkeys::comment.eq(&new.comment),
                    authkeys::created_at.eq(t),
                    authkeys::updated_at.eq(t),
                ))
                .returning(authkeys::id)
                .get_result(conn)
                .map_err(|e| conflict(e, || format!("ident {:?} is already taken", new.ident.as_str())))?;
            write_channels(conn, id, &new.publish, &new.subscribe)?;
            audit::record(
                conn,
                actor,
                "authkey.add",
                new.ident.as_str(),
                &describe(&new.publish, &new.subscribe),
            )?;
            Ok(AuthkeyId(id))
        })
    }

    /// Replaces a key's channel lists.
    pub fn set_authkey_channels(
        &self,
        ident: &Ident,
        publish: &[Channel],
        subscribe: &[Channel],
        actor: &str,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        conn.transaction(|conn| {
            let id = key_id(conn, ident)?;
            write_channels(conn, id, publish, subscribe)?;
            diesel::update(authkeys::table.find(id))
                .set(authkeys::updated_at.eq(now()))
                .execute(conn)?;
            audit::record(
                conn,
                actor,
                "authkey.set",
                ident.as_str(),
                &describe(publish, subscribe),
            )?;
            Ok(())
        })
    }

    /// Replaces a key's secret (live sessions stay; new connections need the new one).
    pub fn rotate_secret(&self, ident: &Ident, secret: &Secret, actor: &str) -> Result<(), StoreError> {
        let stored = self.stored_secret(ident, secret)?;
        let mut conn = self.conn()?;
        conn.transaction(|conn| {
            let id = key_id(conn, ident)?;
            diesel::update(authkeys::table.find(id))
                .set((authkeys::secret.eq(&stored), authkeys::updated_at.eq(now())))
                .execute(conn)?;
            audit::record(conn, actor, "authkey.rotate", ident.as_str(), "")?;
            Ok(())
        })
    }

    /// Enables or disables a key; a disabled key's sessions are closed.
    pub fn set_authkey_enabled(&self, ident: &Ident, enabled: bool, actor: &str) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        conn.transaction(|conn| {
            let id = key_id(conn, ident)?;
            diesel::update(authkeys::table.find(id))
                .set((authkeys::enabled.eq(enabled), authkeys::updated_at.eq(now())))
                .execute(conn)?;
            let action = if enabled {
                "authkey.enable"
            } else {
                "authkey.disable"
            };
            audit::record(conn, actor, action, ident.as_str(), "")?;
            Ok(())
        })
    }

    /// The owner of the key `ident`, if it exists.
    pub fn authkey_owner(&self, ident: &Ident) -> Result<Option<UserId>, StoreError> {
        let mut conn = self.conn()?;
        Ok(authkeys::table
            .filter(authkeys::ident.eq(ident.as_str()))
            .select(authkeys::owner_id)
            .first::<i64>(&mut conn)
            .optional()?
            .map(UserId))
    }

    /// Deletes a key; its live sessions are closed by the broker within a second.
    pub fn remove_authkey(&self, ident: &Ident, actor: &str) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        conn.transaction(|conn| {
            let id = key_id(conn, ident)?;
            diesel::delete(authkeys::table.find(id)).execute(conn)?;
            audit::record(conn, actor, "authkey.rm", ident.as_str(), "")?;
            Ok(())
        })
    }

    /// Every key with its owner's name, by ident.
    pub fn authkeys(&self) -> Result<Vec<AuthkeyInfo>, StoreError> {
        Ok(self.authkeys_where(None, None)?.0)
    }

    /// The keys of one user (read by owner in SQL, not filtered from every key).
    pub fn authkeys_of(&self, owner: UserId) -> Result<Vec<AuthkeyInfo>, StoreError> {
        Ok(self.authkeys_where(Some(owner), None)?.0)
    }

    /// Page `page` (`per` a page, by ident) of one user's keys, and whether more follow.
    pub fn authkeys_page(
        &self,
        owner: UserId,
        page: usize,
        per: usize,
    ) -> Result<(Vec<AuthkeyInfo>, bool), StoreError> {
        self.authkeys_where(Some(owner), Some((page, per)))
    }

    fn authkeys_where(
        &self,
        owner: Option<UserId>,
        window: Option<(usize, usize)>,
    ) -> Result<(Vec<AuthkeyInfo>, bool), StoreError> {
        let mut conn = self.conn()?;
        conn.transaction(|conn| {
            let mut q = authkeys::table.inner_join(users::table).into_boxed();
            if let Some(o) = owner {
                q = q.filter(authkeys::owner_id.eq(o.0));
            }
            if let Some((page, per)) = window {
                q = q
                    .limit(crate::store::page_limit(per))
                    .offset(crate::store::page_offset(page, per));
            }
            let mut rows: Vec<(i64, String, String, bool, String, i64)> = q
                .order(authkeys::ident)
                .select((
                    authkeys::id,
                    authkeys::ident,
                    users::name,
                    authkeys::enabled,
                    authkeys::comment,
                    authkeys::created_at,
                ))
                .load(conn)?;
            let more = match window {
                Some((_, per)) => {
                    let (page, more) = crate::store::page_rows(rows, per);
                    rows = page;
                    more
                }
                None => false,
            };
            let ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
            let mut lists = channel_lists(conn, owner.map(|_| ids.as_slice()))?;
            let list = rows
                .into_iter()
                .filter_map(|(id, ident, owner, enabled, comment, created_at)| {
                    let ident = Ident::new(&ident).ok()?;
                    let (publish, subscribe) = lists.remove(&id).unwrap_or_default();
                    Some(AuthkeyInfo {
                        id: AuthkeyId(id),
                        ident,
                        owner,
                        enabled,
                        publish,
                        subscribe,
                        comment,
                        created_at,
                    })
                })
                .collect();
            Ok((list, more))
        })
    }

    /// One key with its secret opened, by ident (`authkey snippet --with-secret`).
    pub fn key_record(&self, ident: &Ident) -> Result<Option<KeyRecord>, StoreError> {
        let sealer = self.sealer().cloned();
        let mut conn = self.conn()?;
        let id: Option<i64> = authkeys::table
            .filter(authkeys::ident.eq(ident.as_str()))
            .select(authkeys::id)
            .first(&mut conn)
            .optional()?;
        let Some(id) = id else { return Ok(None) };
        Ok(key_records_in(&mut conn, sealer.as_ref(), Some(&[id]))?
            .into_iter()
            .next())
    }

    /// Everything the ACL derivation needs, read in one transaction so it is consistent.
    pub fn key_records(&self) -> Result<Vec<KeyRecord>, StoreError> {
        let sealer = self.sealer().cloned();
        let mut conn = self.conn()?;
        conn.transaction(|conn| key_records_in(conn, sealer.as_ref(), None))
    }
}

/// Every key (`only: None`) or the keys of these ids, read on `conn` (inside the caller's
/// transaction); keys that cannot be used (a bad ident, a secret that does not open) are
/// left out and logged.
pub(crate) fn key_records_in(
    conn: &mut AnyConnection,
    sealer: Option<&crate::store::sealing::Sealer>,
    only: Option<&[i64]>,
) -> Result<Vec<KeyRecord>, StoreError> {
    type Row = (i64, String, String, i64, bool);
    let query = || {
        authkeys::table.select((
            authkeys::id,
            authkeys::ident,
            authkeys::secret,
            authkeys::owner_id,
            authkeys::enabled,
        ))
    };
    let mut lists = channel_lists(conn, only)?;
    let mut out = Vec::new();
    let mut take = |rows: Vec<Row>| {
        out.extend(
            rows.into_iter()
                .filter_map(|(id, ident, secret, owner, enabled)| {
                    let Ok(ident) = Ident::new(&ident) else {
                        tracing::warn!(authkey_id = id, "skipping authkey with an invalid ident");
                        return None;
                    };
                    let secret = match crate::store::sealing::open(sealer, ident.as_str(), &secret) {
                        Ok(s) => s,
                        Err(e) => {
                            tracing::warn!(authkey_id = id, "skipping authkey: {e}");
                            return None;
                        }
                    };
                    let (publish, subscribe) = lists.remove(&id).unwrap_or_default();
                    Some(KeyRecord {
                        id: AuthkeyId(id),
                        ident,
                        secret: Secret::new(secret),
                        owner: UserId(owner),
                        enabled,
                        publish,
                        subscribe,
                    })
                }),
        )
    };
    match only {
        None => {
            let max: Option<i64> = authkeys::table
                .select(diesel::dsl::max(authkeys::id))
                .first(conn)?;
            by_id_ranges(
                max,
                ID_RANGE,
                |lo, hi| {
                    query()
                        .filter(authkeys::id.gt(lo))
                        .filter(authkeys::id.le(hi))
                        .load(conn)
                },
                &mut take,
            )?;
        }
        Some(ids) => take(in_chunks(ids, |c| {
            query().filter(authkeys::id.eq_any(c)).load(conn)
        })?),
    }
    Ok(out)
}

fn key_id(conn: &mut AnyConnection, ident: &Ident) -> Result<i64, StoreError> {
    authkeys::table
        .filter(authkeys::ident.eq(ident.as_str()))
        .select(authkeys::id)
        .first(conn)
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("no authkey with ident {:?}", ident.as_str())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ch(s: &str) -> Channel {
        Channel::new(s).unwrap()
    }

    #[test]
    fn keys_roundtrip_and_bump_acl_version() {
        let db = crate::store::scratch::ScratchDb::new().unwrap();
        let store = Store::open(db.url()).unwrap();
        let u = store.add_user("alice", "a@example.org", "test").unwrap();
        assert!(matches!(
            store.add_user("alice", "b@example.org", "test"),
            Err(StoreError::Conflict(_))
        ));
        let v0 = store.acl_version().unwrap();
        let new = NewAuthkey {
            owner: u.id,
            ident: Ident::new("k1").unwrap(),
            secret: Secret::new("s1"),
            publish: vec![ch("a"), ch("b")],
            subscribe: vec![ch("b")],
            comment: String::new(),
        };
        store.add_authkey(&new, "test").unwrap();
        assert!(matches!(
            store.add_authkey(&new, "test"),
            Err(StoreError::Conflict(_))
        ));
        assert!(store.acl_version().unwrap() > v0);
        let recs = store.key_records().unwrap();
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0].publish, vec![ch("a"), ch("b")]);
        assert_eq!(recs[0].subscribe, vec![ch("b")]);
        assert_eq!(recs[0].secret, Secret::new("s1"));
        let list = store.authkeys().unwrap();
        assert_eq!(list[0].owner, "alice");
        store
            .set_authkey_channels(&new.ident, &[], &[ch("c")], "test")
            .unwrap();
        assert_eq!(store.key_records().unwrap()[0].subscribe, vec![ch("c")]);
        store.remove_authkey(&new.ident, "test").unwrap();
        assert!(matches!(
            store.remove_authkey(&new.ident, "test"),
            Err(StoreError::NotFound(_))
        ));
        assert!(store.key_records().unwrap().is_empty());
        let actions: Vec<String> = store
            .audit_entries(10)
            .unwrap()
            .into_iter()
            .map(|e| e.action)
            .collect();
        assert_eq!(actions, ["authkey.rm", "authkey.set", "authkey.add", "user.add"]);
    }
}
