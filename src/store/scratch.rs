//! Throw-away databases for tests and benchmarks, on the backend `TEST_DATABASE_URL` names.
//!
//! Unset (or a SQLite URL): a SQLite file in a fresh temporary folder. A PostgreSQL server
//! URL (`postgres://postgres@127.0.0.1:5432/`): a fresh database on that server, created
//! here and dropped when the [`ScratchDb`] is, so that every test starts empty and leaves
//! nothing behind, and the same suites run on either backend.

use std::sync::atomic::{AtomicU64, Ordering};

use diesel::pg::PgConnection;
use diesel::prelude::*;

use super::{Backend, StoreError};

/// The variable naming the backend tests run on.
pub const TEST_DATABASE_URL: &str = "TEST_DATABASE_URL";

/// A database that exists as long as this value does.
#[derive(Debug)]
pub struct ScratchDb {
    url: String,
    /// The server and the database to drop, for PostgreSQL.
    postgres: Option<(String, String)>,
    /// Holds the SQLite file's folder.
    _dir: Option<tempfile::TempDir>,
}

static NEXT: AtomicU64 = AtomicU64::new(0);

/// `base` (a server URL, with or without a database) pointing at `db` instead.
fn with_database(base: &str, db: &str) -> String {
    let (scheme, rest) = base.split_once("://").unwrap_or(("postgres", base));
    let (authority, tail) = rest.split_once('/').unwrap_or((rest, ""));
    let query = tail
        .split_once('?')
        .map(|(_, q)| format!("?{q}"))
        .unwrap_or_default();
    format!("{scheme}://{authority}/{db}{query}")
}

impl ScratchDb {
    /// A fresh database on the backend of `TEST_DATABASE_URL` (SQLite when unset).
    pub fn new() -> Result<ScratchDb, StoreError> {
        match std::env::var(TEST_DATABASE_URL) {
            Ok(url) if !url.trim().is_empty() => Self::on(url.trim()),
            _ => Self::sqlite(),
        }
    }

    /// A fresh SQLite file, whatever the environment says (tests of SQLite's own behaviour).
    pub fn sqlite() -> Result<ScratchDb, StoreError> {
        let dir = tempfile::tempdir().map_err(|e| StoreError::Open {
            url: "a temporary folder".into(),
            message: e.to_string(),
        })?;
        Ok(ScratchDb {
            url: dir.path().join("scratch.db").to_string_lossy().into_owned(),
            postgres: None,
            _dir: Some(dir),
        })
    }

    /// A fresh database on the server (or in the SQLite folder) `url` names.
    pub fn on(url: &str) -> Result<ScratchDb, StoreError> {
        match Backend::of(url)? {
            Backend::Sqlite(_) => Self::sqlite(),
            Backend::Postgres => {
                let name = format!(
                    "hpf_scratch_{}_{}_{}",
                    std::process::id(),
                    NEXT.fetch_add(1, Ordering::Relaxed),
                    super::now()
                );
                let mut admin = PgConnection::establish(url).map_err(|e| StoreError::Open {
                    url: super::redacted(url),
                    message: format!("{} (is PostgreSQL running?)", e.to_string().trim()),
                })?;
                diesel::sql_query(format!("CREATE DATABASE {name}")).execute(&mut admin)?;
                Ok(ScratchDb {
                    url: with_database(url, &name),
                    postgres: Some((url.to_owned(), name)),
                    _dir: None,
                })
            }
        }
    }

    /// The URL to open it with (`--db`, `Store::open`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Whether this is a PostgreSQL database.
    pub fn is_postgres(&self) -> bool {
        self.postgres.is_some()
    }
}

impl Drop for ScratchDb {
    fn drop(&mut self) {
        if let Some((server, name)) = &self.postgres
            && let Ok(mut admin) = PgConnection::establish(server)
        {
            // FORCE: a server under test may still hold connections when the test ends.
            let _ =
                diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut admin);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("postgres://h/old?sslmode=disable", "x"),
            "postgres://h/x?sslmode=disable"
        );
        assert_eq!(with_database("postgresql://h:1", "x"), "postgresql://h:1/x");
    }
}
