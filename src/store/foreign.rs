//! Other brokers' stores, read for `hpfriends import` (the PyPI hpfeeds broker's SQLite
//! auth database), and consistent copies of our own SQLite file for `hpfriends backup`.

use std::path::Path;

use diesel::prelude::*;
use diesel::sql_types::Text;
use diesel::sqlite::SqliteConnection;

use super::{AnyConnection, AsAny, Backend, Store, StoreError};

/// One authkey as another broker stores it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub struct ForeignKey {
    /// Who owns it there (3.1.0's `owner`; MHN's `owner`, else the ident).
    pub owner: String,
    /// The ident clients send.
    pub ident: String,
    /// The secret clients hash.
    pub secret: String,
    /// Channels it may publish on.
    pub publish: Vec<String>,
    /// Channels it may subscribe to.
    pub subscribe: Vec<String>,
}

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = diesel::sql_types::Nullable<Text>)]
    owner: Option<String>,
    #[diesel(sql_type = Text)]
    ident: String,
    #[diesel(sql_type = Text)]
    secret: String,
    #[diesel(sql_type = diesel::sql_types::Nullable<Text>)]
    pubchans: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Nullable<Text>)]
    subchans: Option<String>,
}

fn err(path: &Path, what: impl std::fmt::Display) -> StoreError {
    StoreError::Open {
        url: path.display().to_string(),
        message: what.to_string(),
    }
}

/// Reads the `authkeys` table of a PyPI hpfeeds broker's SQLite store (`--auth sqlite:PATH`:
/// owner, ident, secret, and channel lists as JSON arrays), read-only.
pub fn read_hpfeeds_sqlite(path: &Path) -> Result<Vec<ForeignKey>, StoreError> {
    if !path.is_file() {
        return Err(err(path, "no such file"));
    }
    let url = format!("file:{}?mode=ro", path.display());
    let mut conn = SqliteConnection::establish(&url).map_err(|e| err(path, e))?;
    let rows: Vec<Row> =
        diesel::sql_query("SELECT owner, ident, secret, pubchans, subchans FROM authkeys ORDER BY id")
            .load(&mut conn)
            .map_err(|e| err(path, format!("not an hpfeeds auth store: {e}")))?;
    rows.into_iter()
        .map(|r| {
            let list = |field: &str, v: Option<String>| -> Result<Vec<String>, StoreError> {
                match v.as_deref().map(str::trim) {
                    None | Some("") => Ok(Vec::new()),
                    Some(text) => serde_json::from_str(text).map_err(|e| {
                        err(
                            path,
                            format!("{field} of {:?} is not a JSON list of channels: {e}", r.ident),
                        )
                    }),
                }
            };
            Ok(ForeignKey {
                publish: list("pubchans", r.pubchans.clone())?,
                subscribe: list("subchans", r.subchans.clone())?,
                owner: r
                    .owner
                    .clone()
                    .filter(|o| !o.is_empty())
                    .unwrap_or_else(|| r.ident.clone()),
                ident: r.ident,
                secret: r.secret,
            })
        })
        .collect()
}

impl Store {
    /// Writes a consistent copy of this SQLite database to `to` while it is in use
    /// (`VACUUM INTO`: one read transaction, so writers are not stopped and the copy is
    /// a single point in time). `to` must not exist.
    pub fn backup_to(&self, to: &Path) -> Result<(), StoreError> {
        if !matches!(self.backend, Backend::Sqlite(_)) {
            return Err(StoreError::NotOnThisBackend(
                "backup copies SQLite files; for PostgreSQL use pg_dump (see the README)".into(),
            ));
        }
        if to.exists() {
            return Err(StoreError::Conflict(format!(
                "{} exists; backup never overwrites",
                to.display()
            )));
        }
        let target = to.to_str().ok_or_else(|| err(to, "the path is not UTF-8"))?;
        let mut conn = self.conn()?;
        match conn.any() {
            AnyConnection::Sqlite(c) => {
                diesel::sql_query("VACUUM INTO ?")
                    .bind::<Text, _>(target)
                    .execute(c)?;
                Ok(())
            }
            AnyConnection::Postgresql(_) => Err(StoreError::NotOnThisBackend(
                "backup copies SQLite files; for PostgreSQL use pg_dump (see the README)".into(),
            )),
        }
    }
}
