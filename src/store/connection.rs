//! The connection to either backend and the pool's handling of it.
//!
//! `AnyConnection` is diesel's `MultiConnection` over PostgreSQL and SQLite: queries are
//! written once against it. The derive's generated items carry no docs of their own.
#![allow(missing_docs)]

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::r2d2::{CustomizeConnection, ManageConnection, R2D2Connection};
use diesel::sqlite::SqliteConnection;

use super::{Backend, Conn};

/// How long a connection waits on a locked SQLite file before failing.
const BUSY_TIMEOUT_MS: u32 = 5000;

/// How long a background writer (usage and traffic counters) waits on a locked SQLite
/// file: nobody waits for its answer, and an operator's import may hold the lock longer
/// than a page should wait.
const PATIENT_BUSY_TIMEOUT_MS: u32 = 60_000;

/// Runs `f` on `conn` waiting up to [`PATIENT_BUSY_TIMEOUT_MS`] for a locked SQLite file
/// (PostgreSQL waits on row locks anyway), then gives the connection back its usual wait.
pub(crate) fn patiently<T>(
    conn: &mut AnyConnection,
    f: impl FnOnce(&mut AnyConnection) -> Result<T, super::StoreError>,
) -> Result<T, super::StoreError> {
    let AnyConnection::Sqlite(c) = conn else {
        return f(conn);
    };
    c.batch_execute(&format!("PRAGMA busy_timeout = {PATIENT_BUSY_TIMEOUT_MS}"))?;
    let out = f(conn);
    if let AnyConnection::Sqlite(c) = conn {
        // A connection that cannot be set back is a broken one: the pool drops it.
        let _ = c.batch_execute(&format!("PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}"));
    }
    out
}

/// One connection to either backend: every query is written once against it (diesel's
/// `MultiConnection`); the few statements the two dialects spell differently match on it.
#[derive(diesel::MultiConnection)]
pub(crate) enum AnyConnection {
    /// A PostgreSQL server.
    Postgresql(PgConnection),
    /// A SQLite file.
    Sqlite(SqliteConnection),
}

/// Runs the same diesel statement on whichever backend `$conn` (a `&mut AnyConnection`) is,
/// for the statements `MultiConnection` cannot express (upserts): `$c` is the inner
/// connection in `$body`.
macro_rules! on_backend {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $crate::store::AsAny::any($conn) {
            $crate::store::AnyConnection::Postgresql($c) => $body,
            $crate::store::AnyConnection::Sqlite($c) => $body,
        }
    };
}
pub(crate) use on_backend;

/// The [`AnyConnection`] under a pooled or plain connection, for [`on_backend!`].
pub(crate) trait AsAny {
    /// The connection itself.
    fn any(&mut self) -> &mut AnyConnection;
}

impl AsAny for AnyConnection {
    fn any(&mut self) -> &mut AnyConnection {
        self
    }
}

impl AsAny for Conn {
    fn any(&mut self) -> &mut AnyConnection {
        self
    }
}

/// Opens the pool's connections as the backend the URL named (never by trying one driver
/// after another, which would let SQLite create a file named like a PostgreSQL URL).
#[derive(Debug)]
pub(crate) struct Manager {
    pub(crate) backend: Backend,
    /// What the driver is given: a no-create SQLite URI, or the PostgreSQL URL.
    pub(crate) target: String,
}

impl ManageConnection for Manager {
    type Connection = AnyConnection;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<AnyConnection, Self::Error> {
        let conn = match self.backend {
            Backend::Sqlite(_) => SqliteConnection::establish(&self.target).map(AnyConnection::Sqlite),
            Backend::Postgres => PgConnection::establish(&self.target).map(AnyConnection::Postgresql),
        };
        conn.map_err(diesel::r2d2::Error::ConnectionError)
    }

    fn is_valid(&self, conn: &mut AnyConnection) -> Result<(), Self::Error> {
        conn.ping().map_err(diesel::r2d2::Error::QueryError)
    }

    fn has_broken(&self, conn: &mut AnyConnection) -> bool {
        std::thread::panicking() || conn.is_broken()
    }
}

/// Sets the per-connection PRAGMAs SQLite needs for a server: WAL so readers never block
/// the writer, a busy timeout so concurrent writers (the CLI beside `serve`) wait instead of
/// failing, enforced foreign keys, and secure delete (freed space is zeroed, so a secret
/// replaced by its sealed form, rotated or deleted does not linger in the file). PostgreSQL
/// needs none of it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SqlitePragmas;

impl CustomizeConnection<AnyConnection, diesel::r2d2::Error> for SqlitePragmas {
    fn on_acquire(&self, conn: &mut AnyConnection) -> Result<(), diesel::r2d2::Error> {
        let AnyConnection::Sqlite(conn) = conn else {
            return Ok(());
        };
        // busy_timeout first: the journal-mode switch itself needs a lock on a new file.
        conn.batch_execute(&format!(
            "PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}; PRAGMA journal_mode = WAL; \
             PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA secure_delete = ON;"
        ))
        .map_err(diesel::r2d2::Error::QueryError)
    }
}
