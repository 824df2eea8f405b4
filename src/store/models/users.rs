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
