//! Persistence: the diesel schema, a pooled connection, embedded migrations, and one model
//! file per table with its queries as methods.
//!
//! Diesel types stay in here: callers get domain types (`domain::acl::KeyRecord`, ids) and a
//! [`StoreError`]. Every call is blocking; async callers use `spawn_blocking`.

mod connection;
pub mod foreign;
pub mod generate;
mod interning;
pub(crate) use interning::ChannelNames;
pub mod listen;
pub mod models;
pub mod schema;
pub mod scratch;
pub mod sealing;
mod statistics;

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use diesel::prelude::*;
use diesel::r2d2::{Pool, PooledConnection};
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::sqlite::SqliteConnection;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

pub(crate) use connection::{AnyConnection, AsAny, on_backend};
use connection::{Manager, SqlitePragmas};

/// The SQLite schema, compiled into the binary so `serve` and `migrate` need no files.
pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");

/// The PostgreSQL schema: the same tables, constraints and change-log triggers as
/// [`SQLITE_MIGRATIONS`], migration for migration.
pub const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// The PostgreSQL advisory lock key migrations hold (the ASCII of "hpfmigr"), so that only
/// one node migrates at a time.
const MIGRATION_LOCK: i64 = 0x0068_7066_6d69_6772;

/// Default database: a SQLite file in the working directory.
pub const DEFAULT_DB: &str = crate::config::DEFAULT_DB;

/// Connections the pool holds when the caller does not say (`db_pool_size`).
pub const DEFAULT_POOL_SIZE: u32 = crate::config::DEFAULT_DB_POOL_SIZE;

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

/// Ids a whole-table read covers per query: the rows of a page are turned into domain
/// values before the next is read, so neither backend holds a million raw rows at once
/// (libpq buffers a whole result set; peak memory stays with the server afterwards).
pub(crate) const ID_RANGE: i64 = 50_000;

/// Reads ids `1..=max` in ranges `(lo, hi]` of `step` and hands each page to `take`: the
/// way every whole-table read of the graph goes.
pub(crate) fn by_id_ranges<T>(
    max: Option<i64>,
    step: i64,
    load: impl FnMut(i64, i64) -> diesel::QueryResult<Vec<T>>,
    take: impl FnMut(Vec<T>),
) -> diesel::QueryResult<()> {
    by_id_ranges_after(0, max, step, load, take)
}

/// [`by_id_ranges`] for the ids past `after` only.
pub(crate) fn by_id_ranges_after<T>(
    after: i64,
    max: Option<i64>,
    step: i64,
    mut load: impl FnMut(i64, i64) -> diesel::QueryResult<Vec<T>>,
    mut take: impl FnMut(Vec<T>),
) -> diesel::QueryResult<()> {
    let (Some(max), step) = (max, step.max(1)) else {
        return Ok(());
    };
    let mut lo = after;
    while lo < max {
        let hi = lo.saturating_add(step);
        take(load(lo, hi)?);
        lo = hi;
    }
    Ok(())
}

/// `LIMIT` for a page of `per`: one row more, to tell whether more follow.
pub(crate) fn page_limit(per: usize) -> i64 {
    i64::try_from(per.saturating_add(1)).unwrap_or(i64::MAX)
}

/// `OFFSET` of page `page` (from 0) of `per`.
pub(crate) fn page_offset(page: usize, per: usize) -> i64 {
    i64::try_from(page.saturating_mul(per)).unwrap_or(i64::MAX)
}

/// A page read with [`page_limit`]: its rows, and whether more follow.
pub(crate) fn page_rows<T>(mut rows: Vec<T>, per: usize) -> (Vec<T>, bool) {
    let more = rows.len() > per;
    rows.truncate(per);
    (rows, more)
}

/// What can go wrong talking to the database, worded for the operator.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL names a backend this build does not include.
    #[error(
        "unsupported database URL {0:?}: use a SQLite file (a path or sqlite://PATH) or postgres://USER@HOST:PORT/DATABASE"
    )]
    Unsupported(String),
    /// The operation is not one this backend offers (a file backup of PostgreSQL).
    #[error("{0}")]
    NotOnThisBackend(String),
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
    /// Any other database error, as the driver worded it (diesel's types stay in `store`).
    #[error("database error: {0}")]
    Query(String),
    /// A connection could not be had from the pool in time.
    #[error("database unavailable: {0}")]
    Pool(String),
    /// Authkey secrets cannot be sealed or opened (no key, wrong key, unreadable key file).
    #[error("{0}")]
    Sealing(String),
}

impl From<DieselError> for StoreError {
    fn from(e: DieselError) -> Self {
        StoreError::Query(e.to_string())
    }
}

impl From<diesel::r2d2::PoolError> for StoreError {
    fn from(e: diesel::r2d2::PoolError) -> Self {
        StoreError::Pool(one_line(&e.to_string()))
    }
}

/// Which database a URL names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file at this path.
    Sqlite(PathBuf),
    /// A PostgreSQL server; the URL is handed to libpq as it is.
    Postgres,
}

impl Backend {
    /// Reads `--db`: `postgres://…` or `postgresql://…` is PostgreSQL; a path, `sqlite://PATH`
    /// or `sqlite:PATH` is a SQLite file; any other scheme is refused in one line.
    pub fn of(url: &str) -> Result<Backend, StoreError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Backend::Postgres);
        }
        sqlite_path(url).map(Backend::Sqlite)
    }

    /// A short name for logs and messages.
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// A pooled handle on the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: Pool<Manager>,
    url: String,
    backend: Backend,
    sealer: Option<sealing::Sealer>,
    /// Set by [`Store::close`], seen by every clone.
    closed: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Checkouts that failed (timeout, dead database), seen by every clone.
    checkout_failures: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

/// How the connection pool is used now, for the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolUse {
    /// Connections the pool may open.
    pub max: u32,
    /// Connections open.
    pub open: u32,
    /// Of those, not checked out.
    pub idle: u32,
    /// Checkouts that failed since start.
    pub checkout_failures: u64,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("url", &self.url).finish()
    }
}

/// A connection checked out of the pool.
pub(crate) type Conn = PooledConnection<Manager>;

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
    /// Opens (creating a SQLite file if needed) the database at `url` and runs pending
    /// migrations.
    pub fn open(url: &str) -> Result<Store, StoreError> {
        Self::open_pooled(url, DEFAULT_POOL_SIZE)
    }

    /// [`Store::open`] with a pool of `pool_size` connections (`db_pool_size`).
    pub fn open_pooled(url: &str, pool_size: u32) -> Result<Store, StoreError> {
        let store = Self::open_unmigrated_pooled(url, pool_size, true)?;
        store.migrate()?;
        Ok(store)
    }

    /// [`Store::open_pooled`] for a database that must exist already: a SQLite path that
    /// names no file is an error (a typo in `--db` must not answer from a new, empty
    /// database), never created.
    pub fn open_existing(url: &str, pool_size: u32) -> Result<Store, StoreError> {
        let store = Self::open_unmigrated_pooled(url, pool_size, false)?;
        store.migrate()?;
        Ok(store)
    }

    /// Opens the pool without migrating (for `migrate` itself and for tests).
    pub fn open_unmigrated(url: &str) -> Result<Store, StoreError> {
        Self::open_unmigrated_pooled(url, DEFAULT_POOL_SIZE, true)
    }

    fn open_unmigrated_pooled(url: &str, pool_size: u32, create: bool) -> Result<Store, StoreError> {
        let backend = Backend::of(url)?;
        let open_err = |message: String| StoreError::Open {
            url: redacted(url),
            message: one_line(&message),
        };
        let target = match &backend {
            Backend::Sqlite(path) => {
                if !create && !path.exists() {
                    return Err(open_err(format!(
                        "there is no database file {} (a typo? serve, migrate and import create one)",
                        path.display()
                    )));
                }
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|e| open_err(e.to_string()))?;
                }
                // Created here, once; the pool opens it without the create flag, so a file
                // that vanishes while we run is an outage to report, not an empty database.
                if !path.exists() {
                    SqliteConnection::establish(&path.to_string_lossy())
                        .map_err(|e| open_err(e.to_string()))?;
                }
                no_create_uri(path)
            }
            Backend::Postgres => {
                // libpq's TLS is OpenSSL's: initialised here first, without the clean-up
                // OpenSSL would otherwise run at process exit, under pool threads that still
                // hold connections (a segmentation fault after a CLI command had answered).
                openssl_sys::init();
                let target = with_connect_timeout(url);
                // Once, directly: an unreachable server is an error now, not after the pool's
                // ten-second wait.
                diesel::pg::PgConnection::establish(&target).map_err(|e| open_err(e.to_string()))?;
                target
            }
        };
        let pool = Pool::builder()
            .max_size(pool_size.max(1))
            // Open connections on demand: eight opened at once race for the WAL switch.
            .min_idle(Some(1))
            .connection_timeout(match backend {
                // A writer may hold the SQLite file for seconds (the busy timeout is 5 s).
                Backend::Sqlite(_) => Duration::from_secs(10),
                // A server that refuses connections is down: say so soon (a 503, not a hang).
                Backend::Postgres => Duration::from_secs(3),
            })
            .connection_customizer(Box::new(SqlitePragmas))
            // The pool's own log would repeat every failed attempt; callers report outages.
            .error_handler(Box::new(diesel::r2d2::NopErrorHandler))
            .build(Manager {
                backend: backend.clone(),
                target,
            })
            .map_err(|e| open_err(e.to_string()))?;
        Ok(Store {
            pool,
            url: url.to_owned(),
            backend,
            sealer: None,
            closed: Default::default(),
            checkout_failures: Default::default(),
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

    /// Runs `f` against a store whose every statement is in one transaction: committed when
    /// `f` succeeds, rolled back (nothing written) when it fails. For bulk work made of many
    /// single-record operations (an import) that must land whole or not at all. The
    /// transaction lives on the one connection of a private one-connection pool, so every
    /// operation's own transaction nests in it as a savepoint. Other writers wait for it
    /// (SQLite: up to the busy timeout), so keep it to operator commands.
    pub fn in_one_transaction<T, E>(&self, f: impl FnOnce(&Store) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        use diesel::connection::TransactionManager;
        type Tm = <AnyConnection as diesel::Connection>::TransactionManager;
        let mut tx = Self::open_unmigrated_pooled(&self.url, 1, false)?;
        tx.sealer.clone_from(&self.sealer);
        {
            let mut conn = tx.conn()?;
            // A "test" transaction, to diesel: one it does not close by itself, and one the
            // pool does not count as a broken connection when it is handed back.
            conn.begin_test_transaction().map_err(StoreError::from)?;
        }
        let out = f(&tx);
        let mut conn = tx.conn()?;
        let depth = Tm::transaction_manager_status_mut(&mut *conn)
            .transaction_depth()
            .ok()
            .flatten()
            .map_or(0, |d| d.get());
        if depth != 1 {
            // The connection was replaced (it broke): what ran after is not in the
            // transaction. Say so rather than claim all or nothing.
            tx.close();
            return Err(StoreError::Query(format!(
                "the transaction was lost (depth {depth}); check what was written"
            ))
            .into());
        }
        match out {
            Ok(v) => {
                Tm::commit_transaction(&mut *conn).map_err(StoreError::from)?;
                Ok(v)
            }
            Err(e) => {
                let _ = Tm::rollback_transaction(&mut *conn);
                Err(e)
            }
        }
    }

    /// The sealer in use, if any.
    pub fn sealer(&self) -> Option<&sealing::Sealer> {
        self.sealer.as_ref()
    }

    /// Applies every embedded migration not yet applied; returns how many ran. Idempotent.
    pub fn migrate(&self) -> Result<usize, StoreError> {
        use diesel::connection::SimpleConnection;
        let failed = |e: Box<dyn std::error::Error + Send + Sync>| StoreError::Migration(e.to_string());
        let mut conn = self.conn()?;
        match &mut *conn {
            // One writer at a time on SQLite: the whole run in one immediate transaction,
            // so a second process waits (busy timeout), then finds nothing pending.
            AnyConnection::Sqlite(c) => c.immediate_transaction(|c| {
                c.run_pending_migrations(SQLITE_MIGRATIONS)
                    .map(|r| r.len())
                    .map_err(failed)
            }),
            // Nodes of a cluster may start together on a fresh database: one migrates while
            // the others wait on the lock, then find nothing pending. (A session lock,
            // released below, or with the connection should this fail.)
            AnyConnection::Postgresql(c) => {
                c.batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"))
                    .map_err(|e| StoreError::Migration(format!("cannot take the migration lock: {e}")))?;
                let ran = c.run_pending_migrations(POSTGRES_MIGRATIONS).map(|r| r.len());
                let _ = c.batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"));
                ran.map_err(failed)
            }
        }
    }

    /// The pool's use now.
    pub fn pool_use(&self) -> PoolUse {
        let st = self.pool.state();
        PoolUse {
            max: self.pool.max_size(),
            open: st.connections,
            idle: st.idle_connections,
            checkout_failures: self.checkout_failures.load(std::sync::atomic::Ordering::Relaxed),
        }
    }

    /// A connection from the pool; an error when the database file is gone (pooled
    /// connections would otherwise go on with the deleted file).
    pub(crate) fn conn(&self) -> Result<Conn, StoreError> {
        if self.closed.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(StoreError::Open {
                url: redacted(&self.url),
                message: "the store was closed".into(),
            });
        }
        if let Backend::Sqlite(path) = &self.backend
            && !path.exists()
        {
            return Err(StoreError::Open {
                url: redacted(&self.url),
                message: "the database file is gone".into(),
            });
        }
        self.pool.get().map_err(|e| {
            self.checkout_failures
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            StoreError::from(e)
        })
    }

    /// Refuses every later call on this store and its clones at once (a database about to
    /// be dropped: whatever still runs fails fast instead of waiting on the pool).
    pub fn close(&self) {
        self.closed.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// The URL this store was opened with.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Which backend this store talks to.
    pub fn backend(&self) -> &Backend {
        &self.backend
    }
}

/// libpq's messages span lines ("… failed: Connection refused\n\tIs the server running…"):
/// the operator gets one.
fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// A PostgreSQL URL with bounded waits on every path to the server, each added unless the
/// URL sets it: `connect_timeout` (5 s), TCP keepalives (a dead idle connection is noticed
/// within ~11 s), `tcp_user_timeout` (sent data unacknowledged for 5 s fails the call), and
/// a `statement_timeout` of 30 s. A server that drops packets (a silent partition) then
/// costs a request a few seconds and a 503, never the kernel's TCP timeout of minutes.
fn with_connect_timeout(url: &str) -> String {
    const BOUNDS: [(&str, &str); 7] = [
        ("connect_timeout", "5"),
        ("keepalives", "1"),
        ("keepalives_idle", "5"),
        ("keepalives_interval", "2"),
        ("keepalives_count", "3"),
        ("tcp_user_timeout", "5000"),
        // `-c statement_timeout=30000`, percent-encoded for a URI.
        ("options", "-c%20statement_timeout%3D30000"),
    ];
    let mut out = url.to_owned();
    for (key, value) in BOUNDS {
        if url.contains(&format!("{key}=")) {
            continue;
        }
        let sep = if out.contains('?') { '&' } else { '?' };
        out = format!("{out}{sep}{key}={value}");
    }
    out
}

/// `url` without a password, for messages and logs.
pub fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
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
        other => StoreError::from(other),
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
    fn backends_by_url() {
        assert_eq!(Backend::of("postgres://u@h:5432/d").unwrap(), Backend::Postgres);
        assert_eq!(Backend::of("postgresql://h/d").unwrap(), Backend::Postgres);
        assert_eq!(
            Backend::of("sqlite:///tmp/a.db").unwrap(),
            Backend::Sqlite(PathBuf::from("/tmp/a.db"))
        );
        let e = Backend::of("mysql://h/d").unwrap_err().to_string();
        assert!(e.contains("unsupported database URL") && !e.contains('\n'), "{e}");
        assert_eq!(redacted("postgres://u:pw@h/d"), "postgres://u:***@h/d");
        assert_eq!(redacted("postgres://u@h/d"), "postgres://u@h/d");
        let bounds = "keepalives=1&keepalives_idle=5&keepalives_interval=2&keepalives_count=3\
                      &tcp_user_timeout=5000&options=-c%20statement_timeout%3D30000";
        assert_eq!(
            with_connect_timeout("postgres://h/d"),
            format!("postgres://h/d?connect_timeout=5&{bounds}")
        );
        assert_eq!(
            with_connect_timeout("postgres://h/d?sslmode=disable"),
            format!("postgres://h/d?sslmode=disable&connect_timeout=5&{bounds}")
        );
        // What the operator set stays as set.
        assert!(
            with_connect_timeout("postgres://h/d?connect_timeout=1&tcp_user_timeout=9")
                .starts_with("postgres://h/d?connect_timeout=1&tcp_user_timeout=9&keepalives=1")
        );
        assert_eq!(one_line("a\n\tb\n"), "a; b");
    }

    #[test]
    fn one_transaction_lands_whole_or_not_at_all() {
        let db = crate::store::scratch::ScratchDb::new().unwrap();
        let s = Store::open(db.url()).unwrap();
        // A failure midway: nothing of it is written.
        let r: Result<(), StoreError> = s.in_one_transaction(|tx| {
            tx.add_user("first", "first@x.org", "test")?;
            tx.add_user("second", "second@x.org", "test")?;
            // A clash, as a bad row would cause.
            tx.add_user("first", "again@x.org", "test")?;
            Ok(())
        });
        assert!(matches!(r, Err(StoreError::Conflict(_))), "{r:?}");
        assert!(s.user_by_name("first").unwrap().is_none());
        assert!(s.user_by_name("second").unwrap().is_none());
        // Success: all of it, seen by others once committed.
        s.in_one_transaction(|tx| -> Result<(), StoreError> {
            tx.add_user("third", "third@x.org", "test")?;
            tx.add_user("fourth", "fourth@x.org", "test")?;
            assert!(tx.user_by_name("third")?.is_some());
            Ok(())
        })
        .unwrap();
        assert!(s.user_by_name("third").unwrap().is_some());
        assert!(s.user_by_name("fourth").unwrap().is_some());
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
    fn both_backends_have_the_same_migrations_tables_and_columns() {
        let dirs = |backend: &str| -> Vec<String> {
            let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("migrations")
                .join(backend);
            let mut names: Vec<String> = std::fs::read_dir(root)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        };
        assert_eq!(dirs("sqlite"), dirs("postgres"), "migrations pair up");

        #[derive(QueryableByName, PartialEq, Eq, PartialOrd, Ord, Debug)]
        struct Column {
            #[diesel(sql_type = diesel::sql_types::Text)]
            t: String,
            #[diesel(sql_type = diesel::sql_types::Text)]
            c: String,
        }
        let columns = |s: &Store| -> Vec<Column> {
            let mut conn = s.conn().unwrap();
            let sql = match s.backend() {
                Backend::Sqlite(_) => {
                    "SELECT m.name AS t, p.name AS c FROM sqlite_master m JOIN pragma_table_info(m.name) p \
                     WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name <> '__diesel_schema_migrations'"
                }
                Backend::Postgres => {
                    "SELECT table_name::TEXT AS t, column_name::TEXT AS c FROM information_schema.columns \
                     WHERE table_schema = 'public' AND table_name <> '__diesel_schema_migrations'"
                }
            };
            let mut cols: Vec<Column> = diesel::sql_query(sql).load(&mut conn).unwrap();
            cols.sort();
            cols
        };
        let lite = scratch::ScratchDb::sqlite().unwrap();
        let lite = Store::open(lite.url()).unwrap();
        let other = scratch::ScratchDb::new().unwrap();
        if !other.is_postgres() {
            return; // the PostgreSQL pass compares the two
        }
        let pg = Store::open(other.url()).unwrap();
        assert_eq!(columns(&lite), columns(&pg));
        pg.close();
    }

    #[test]
    fn migrations_are_idempotent() {
        let db = scratch::ScratchDb::new().unwrap();
        let s = Store::open(db.url()).unwrap();
        assert_eq!(s.migrate().unwrap(), 0);
        assert_eq!(s.acl_version().unwrap(), 0);
    }
}
