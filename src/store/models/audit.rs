//! `audit_log`: who changed what, when. Written in the same transaction as the change.

use crate::store::AnyConnection;
use diesel::prelude::*;

use crate::store::schema::audit_log;
use crate::store::{Store, StoreError, now};

/// One recorded change.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = audit_log)]
pub struct AuditEntry {
    /// Row id, increasing with time.
    pub id: i64,
    /// Unix seconds.
    pub at: i64,
    /// The acting user, when the change came from a user (website) rather than the CLI.
    pub actor_user_id: Option<i64>,
    /// Who acted, as text ("cli", a user name).
    pub actor: String,
    /// What was done ("user.add", "authkey.add", …).
    pub action: String,
    /// What it was done to.
    pub subject: String,
    /// Details worth keeping (channels, new values); never secrets.
    pub detail: String,
}

/// Appends an audit row on `conn`, inside the caller's transaction.
pub(crate) fn record(
    conn: &mut AnyConnection,
    actor: &str,
    action: &str,
    subject: &str,
    detail: &str,
) -> QueryResult<usize> {
    diesel::insert_into(audit_log::table)
        .values((
            audit_log::at.eq(now()),
            audit_log::actor.eq(actor),
            audit_log::action.eq(action),
            audit_log::subject.eq(subject),
            audit_log::detail.eq(detail),
        ))
        .execute(conn)
}

impl Store {
    /// The newest `limit` audit entries, newest first.
    pub fn audit_entries(&self, limit: i64) -> Result<Vec<AuditEntry>, StoreError> {
        let mut conn = self.conn()?;
        Ok(audit_log::table
            .order(audit_log::id.desc())
            .limit(limit)
            .select(AuditEntry::as_select())
            .load(&mut conn)?)
    }
}
