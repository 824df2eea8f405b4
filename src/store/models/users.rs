//! `users`: the accounts that own authkeys.

use diesel::prelude::*;

use crate::domain::listing::User;

use super::audit;
use crate::domain::UserId;
use crate::store::schema::users;
use crate::store::{Store, StoreError, conflict, now};

#[derive(Queryable, Selectable)]
#[diesel(table_name = users)]
struct UserRow {
    id: i64,
    name: String,
    email: String,
    enabled: bool,
    created_at: i64,
}

impl From<UserRow> for User {
    fn from(r: UserRow) -> Self {
        User {
            id: UserId(r.id),
            name: r.name,
            email: r.email,
            enabled: r.enabled,
            created_at: r.created_at,
        }
    }
}

impl Store {
    /// Creates a user; a taken name or email is a [`StoreError::Conflict`].
    pub fn add_user(&self, name: &str, email: &str, actor: &str) -> Result<User, StoreError> {
        let mut conn = self.conn()?;
        conn.transaction(|conn| {
            let row: UserRow = diesel::insert_into(users::table)
                .values((
                    users::name.eq(name),
                    users::email.eq(email),
                    users::created_at.eq(now()),
                ))
                .returning((
                    users::id,
                    users::name,
                    users::email,
                    users::enabled,
                    users::created_at,
                ))
                .get_result(conn)
                .map_err(|e| {
                    conflict(e, || {
                        format!("user name {name:?} or email {email:?} is already taken")
                    })
                })?;
            audit::record(conn, actor, "user.add", name, email)?;
            Ok(row.into())
        })
    }

    /// The user called `name`, if any; names are compared without regard to case (`DAVE`
    /// is `dave`, and the schema keeps them unique that way).
    pub fn user_by_name(&self, name: &str) -> Result<Option<User>, StoreError> {
        let mut conn = self.conn()?;
        Ok(users::table
            .filter(crate::store::lower(users::name).eq(name.to_lowercase()))
            .select(UserRow::as_select())
            .first(&mut conn)
            .optional()?
            .map(User::from))
    }

    /// The user with id `id`, if any.
    pub fn user_by_id(&self, id: UserId) -> Result<Option<User>, StoreError> {
        let mut conn = self.conn()?;
        Ok(users::table
            .find(id.0)
            .select(UserRow::as_select())
            .first(&mut conn)
            .optional()?
            .map(User::from))
    }

    /// `user`'s profile: (affiliation, about).
    pub fn profile(&self, user: UserId) -> Result<(String, String), StoreError> {
        let mut conn = self.conn()?;
        Ok(users::table
            .find(user.0)
            .select((users::affiliation, users::about))
            .first(&mut conn)
            .optional()?
            .unwrap_or_default())
    }

    /// Sets `user`'s profile.
    pub fn set_profile(
        &self,
        user: UserId,
        affiliation: &str,
        about: &str,
        actor: &str,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        conn.transaction(|conn| {
            diesel::update(users::table.find(user.0))
                .set((users::affiliation.eq(affiliation), users::about.eq(about)))
                .execute(conn)?;
            audit::record(conn, actor, "user.profile", actor, "")?;
            Ok(())
        })
    }

    /// The channels `user`'s enabled keys publish on, by name.
    pub fn published_channels(&self, user: UserId) -> Result<Vec<String>, StoreError> {
        use crate::store::schema::{authkey_channels, authkeys};
        let mut conn = self.conn()?;
        Ok(authkey_channels::table
            .inner_join(authkeys::table)
            .filter(authkeys::owner_id.eq(user.0))
            .filter(authkeys::enabled.eq(true))
            .filter(authkey_channels::can_publish.eq(true))
            .select(authkey_channels::channel)
            .distinct()
            .order(authkey_channels::channel)
            .load(&mut conn)?)
    }

    /// The names of `ids` (those that exist), read in chunks: a page naming a few of many
    /// users reads just those.
    pub fn user_names(
        &self,
        ids: &[UserId],
    ) -> Result<std::collections::HashMap<UserId, String>, StoreError> {
        let mut conn = self.conn()?;
        let mut out = std::collections::HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            let raw: Vec<i64> = chunk.iter().map(|u| u.0).collect();
            let rows: Vec<(i64, String)> = users::table
                .filter(users::id.eq_any(&raw))
                .select((users::id, users::name))
                .load(&mut conn)?;
            out.extend(rows.into_iter().map(|(id, n)| (UserId(id), n)));
        }
        Ok(out)
    }

    /// Every user, by name.
    pub fn users(&self) -> Result<Vec<User>, StoreError> {
        let mut conn = self.conn()?;
        Ok(users::table
            .order(users::name)
            .select(UserRow::as_select())
            .load(&mut conn)?
            .into_iter()
            .map(User::from)
            .collect())
    }

    /// Enables or disables a user; a disabled user's keys are cut off at once.
    pub fn set_user_enabled(&self, name: &str, enabled: bool, actor: &str) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        conn.transaction(|conn| {
            let n = diesel::update(users::table.filter(users::name.eq(name)))
                .set(users::enabled.eq(enabled))
                .execute(conn)?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("no user named {name:?}")));
            }
            let action = if enabled { "user.enable" } else { "user.disable" };
            audit::record(conn, actor, action, name, "")?;
            Ok(())
        })
    }
}
