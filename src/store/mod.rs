//! Persistence: the diesel schema, a pooled connection, embedded migrations, and one model
//! file per table with its queries as methods.
//!
//! Diesel types stay in here: callers get domain types (`domain::acl::KeyRecord`, ids) and a
//! [`StoreError`]. Every call is blocking; async callers use `spawn_blocking`.

pub mod generate;
pub mod models;
pub mod schema;
pub mod sealing;

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool, PooledConnection};
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::sqlite::SqliteConnection;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

/// The SQLite schema, compiled into the binary so `serve` and `migrate` need no files.
pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");

/// Default database: a SQLite file in the working directory.
pub const DEFAULT_DB: &str = crate::config::DEFAULT_DB;

/// How long a connection waits on a locked SQLite file before failing.
const BUSY_TIMEOUT_MS: u32 = 5000;

/// At most this many ids in one `IN (…)` list: SQLite binds at most 32,766 parameters.
pub(crate) const IN_CHUNK: usize = 500;

/// Runs `load` over `ids` [`IN_CHUNK`] at a time and gathers the rows: every look-up of a
/// list of ids goes through here, so none binds a parameter per row of a large list.
pub(crate) fn in_chunks<T>(
    ids: &[i64],
    mut load: impl FnMut(&[i64]) -> diesel::QueryResult<Vec<T>>,
) -> diesel::QueryResult<Vec<T>> {
    let mut rows = Vec::new();
    for chunk in ids.chunks(IN_CHUNK) {
        rows.extend(load(chunk)?);
    }
    Ok(rows)
}

/// What can go wrong talking to the database, worded for the operator.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL names a backend this build does not include.
    #[error("unsupported database URL {0:?}: this build supports SQLite files (a path or sqlite://PATH)")]
    Unsupported(String),
    /// The pool could not open or hand out a connection.
    #[error("cannot open database {url}: {message}")]
    Open {
        /// The database URL.
        url: String,
        /// What the driver said.
        message: String,
    },
    /// A pending migration failed.
    #[error("database migration failed: {0}")]
    Migration(String),
    /// A uniqueness rule would be broken (a name or ident already taken).
    #[error("{0}")]
    Conflict(String),
    /// What was named does not exist.
    #[error("{0}")]
    NotFound(String),
    /// Any other database error.
    #[error("database error: {0}")]
    Query(#[from] DieselError),
    /// A connection could not be had from the pool in time.
    #[error("database unavailable: {0}")]
    Pool(#[from] diesel::r2d2::PoolError),
    /// Authkey secrets cannot be sealed or opened (no key, wrong key, unreadable key file).
    #[error("{0}")]
    Sealing(String),
}

/// Sets the per-connection PRAGMAs SQLite needs for a server: WAL so readers never block
/// the writer, a busy timeout so concurrent writers (the CLI beside `serve`) wait instead of
/// failing, and enforced foreign keys.
#[derive(Debug, Clone, Copy)]
struct SqlitePragmas;

impl CustomizeConnection<SqliteConnection, diesel::r2d2::Error> for SqlitePragmas {
    fn on_acquire(&self, conn: &mut SqliteConnection) -> Result<(), diesel::r2d2::Error> {
        // busy_timeout first: the journal-mode switch itself needs a lock on a new file.
        conn.batch_execute(&format!(
            "PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}; PRAGMA journal_mode = WAL; \
             PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;"
        ))
        .map_err(diesel::r2d2::Error::QueryError)
    }
}

/// A pooled handle on the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: Pool<ConnectionManager<SqliteConnection>>,
    url: String,
    path: PathBuf,
    sealer: Option<sealing::Sealer>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("url", &self.url).finish()
    }
}

/// A connection checked out of the pool.
pub(crate) type Conn = PooledConnection<ConnectionManager<SqliteConnection>>;

/// Turns `--db` (a path, `sqlite://PATH` or `sqlite:PATH`) into a SQLite file path.
pub fn sqlite_path(url: &str) -> Result<PathBuf, StoreError> {
    if url.contains("://") && !url.starts_with("sqlite://") {
        return Err(StoreError::Unsupported(url.to_owned()));
    }
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    if path.is_empty() {
        return Err(StoreError::Unsupported(url.to_owned()));
    }
    Ok(PathBuf::from(path))
}

impl Store {
    /// Opens (creating if needed) the database at `url` and runs pending migrations.
    pub fn open(url: &str) -> Result<Store, StoreError> {
        let store = Self::open_unmigrated(url)?;
        store.migrate()?;
        Ok(store)
    }

    /// Opens the pool without migrating (for `migrate` itself and for tests).
    pub fn open_unmigrated(url: &str) -> Result<Store, StoreError> {
        let path = sqlite_path(url)?;
        let open_err = |message: String| StoreError::Open {
            url: url.to_owned(),
            message,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| open_err(e.to_string()))?;
        }
        // Created here, once; the pool opens it without the create flag, so a file that
        // vanishes while we run is an outage to report, not an empty database to fill.
        if !path.exists() {
            SqliteConnection::establish(&path.to_string_lossy()).map_err(|e| open_err(e.to_string()))?;
        }
        let manager = ConnectionManager::<SqliteConnection>::new(no_create_uri(&path));
        let pool = Pool::builder()
            .max_size(8)
            // Open connections on demand: eight opened at once race for the WAL switch.
            .min_idle(Some(1))
            .connection_timeout(Duration::from_secs(10))
            .connection_customizer(Box::new(SqlitePragmas))
            .build(manager)
            .map_err(|e| open_err(e.to_string()))?;
        Ok(Store {
            pool,
            url: url.to_owned(),
            path,
            sealer: None,
        })
    }

    /// Seals authkey secrets with `sealer` from now on, seals those still in plaintext, and
    /// checks that every sealed one opens (a wrong key is an error here, not a silent
    /// failure of every auth later).
    pub fn with_sealer(mut self, sealer: Option<sealing::Sealer>) -> Result<Store, StoreError> {
        self.sealer = sealer;
        if self.sealer.is_some() {
            let sealed = self.seal_plaintext_secrets()?;
            if sealed > 0 {
                tracing::info!(sealed, "authkey secrets encrypted at rest");
            }
        }
        Ok(self)
    }

    /// The sealer in use, if any.
    pub fn sealer(&self) -> Option<&sealing::Sealer> {
        self.sealer.as_ref()
    }

    /// Applies every embedded migration not yet applied; returns how many ran. Idempotent.
    pub fn migrate(&self) -> Result<usize, StoreError> {
        let mut conn = self.conn()?;
        let ran = conn
            .run_pending_migrations(SQLITE_MIGRATIONS)
            .map_err(|e| StoreError::Migration(e.to_string()))?;
        Ok(ran.len())
    }

    /// A connection from the pool; an error when the database file is gone (pooled
    /// connections would otherwise go on with the deleted file).
    pub(crate) fn conn(&self) -> Result<Conn, StoreError> {
        if !self.path.exists() {
            return Err(StoreError::Open {
                url: self.url.clone(),
                message: "the database file is gone".into(),
            });
        }
        Ok(self.pool.get()?)
    }

    /// The URL this store was opened with.
    pub fn url(&self) -> &str {
        &self.url
    }
}

/// A SQLite URI opening `path` read-write without creating it (`?`, `#` and `%` escaped).
fn no_create_uri(path: &std::path::Path) -> String {
    let mut p = String::new();
    for c in path.to_string_lossy().chars() {
        match c {
            '?' => p.push_str("%3f"),
            '#' => p.push_str("%23"),
            '%' => p.push_str("%25"),
            c => p.push(c),
        }
    }
    format!("file:{p}?mode=rw")
}

diesel::define_sql_function! {
    /// SQL `lower()`: names and addresses are compared without regard to case.
    fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text;
}

/// Seconds since the epoch, for the schema's BIGINT times.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Maps a unique-constraint violation to a readable [`StoreError::Conflict`].
pub(crate) fn conflict(e: DieselError, message: impl FnOnce() -> String) -> StoreError {
    match e {
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => StoreError::Conflict(message()),
        other => StoreError::Query(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(sqlite_path("a.db").unwrap(), PathBuf::from("a.db"));
        assert_eq!(
            sqlite_path("sqlite:///tmp/a.db").unwrap(),
            PathBuf::from("/tmp/a.db")
        );
        assert_eq!(sqlite_path("sqlite:x.db").unwrap(), PathBuf::from("x.db"));
        assert!(matches!(
            sqlite_path("postgres://localhost/x"),
            Err(StoreError::Unsupported(_))
        ));
    }

    #[test]
    fn a_vanished_file_is_an_outage_not_a_new_database() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("odd?name#1%.db");
        let s = Store::open(&path.to_string_lossy()).unwrap();
        assert_eq!(s.acl_version().unwrap(), 0);
        let moved = dir.path().join("moved.db");
        std::fs::rename(&path, &moved).unwrap();
        let e = s.acl_version().unwrap_err().to_string();
        assert!(e.contains("the database file is gone"), "{e}");
        assert!(!path.exists(), "nothing re-created it");
        std::fs::rename(&moved, &path).unwrap();
        assert_eq!(s.acl_version().unwrap(), 0, "back when the file is back");
    }

    #[test]
    fn migrations_are_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let url = dir.path().join("t.db").to_string_lossy().into_owned();
        let s = Store::open(&url).unwrap();
        assert_eq!(s.migrate().unwrap(), 0);
        assert_eq!(s.acl_version().unwrap(), 0);
    }
}
