//! Database access: one diesel `MultiConnection` over SQLite and PostgreSQL, an r2d2
//! pool built by our own connection manager, and the embedded migrations.
//!
//! Rules: models use the shared diesel DSL; only where the dialects differ (upserts,
//! row locks, batch inserts) a model branches on the backend with [`with_conn!`].
//! Timestamps are UTC `NaiveDateTime` bound from Rust, never `now()` in SQL.

mod any;
mod cached;
pub mod schema;
mod ts;

pub use any::{InAny, in_any, in_many};
pub use cached::{Cached, StaticSql, cached, static_sql};
pub use ts::{OptTs, Ts};

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sqlite::SqliteConnection;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const PG_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// What a database hop changed that a per-process cache holds (see
/// [`crate::services::Versions`]).
#[derive(Debug, Default, Clone, Copy)]
pub struct Written {
    /// A row of `users`.
    pub users: bool,
    /// A row of the desk's reference tables: `partners`, `ageing_thresholds`.
    pub reference: bool,
}

thread_local! {
    static WRITTEN: std::cell::Cell<Written> = const { std::cell::Cell::new(Written { users: false, reference: false }) };
}

/// Notes on this thread that a row of `users` changed, so that the helper running the
/// closure ([`crate::services::Services::db`]) can, once the closure has returned
/// (committed), tell this process's cache of signed-in users to reload them.
pub fn note_users_written() {
    WRITTEN.with(|c| c.set(Written { users: true, ..c.get() }));
}

/// As [`note_users_written`], for the desk's reference tables.
pub fn note_reference_written() {
    WRITTEN.with(|c| c.set(Written { reference: true, ..c.get() }));
}

/// Takes the notes (clearing them).
pub fn take_written() -> Written {
    WRITTEN.with(|c| c.take())
}

/// A connection to either backend; the shared DSL works on it unchanged.
#[derive(diesel::MultiConnection)]
pub enum DbConn {
    Pg(PgConnection),
    Sqlite(SqliteConnection),
}

/// Runs the same diesel expression against the concrete connection: for the few
/// queries whose SQL differs between backends, and for the reads of the busiest pages.
/// Through [`DbConn`] itself, diesel's `MultiConnection` wraps a query in a
/// `SerializedQuery` that writes its whole SQL text out on every pass diesel makes
/// over it (whether it may be cached, its binds, and a boxed query's cache key). On a
/// request's page, eleven small reads, that was 16% of the samples under `perf` and
/// the page cost 346–353 µs of CPU; with its reads here, 229–261 µs (issue 17).
#[macro_export]
macro_rules! with_conn {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::db::DbConn::Pg($c) => $body,
            $crate::db::DbConn::Sqlite($c) => $body,
        }
    };
}

/// Runs `f` in a write transaction. On SQLite it begins `IMMEDIATE`: a deferred
/// transaction that reads and then writes fails at once with "database is locked"
/// when another connection committed in between (WAL cannot upgrade a stale
/// snapshot, and no busy timeout helps), while an immediate one waits its turn.
/// Inside an open transaction it is a savepoint, as diesel's own.
pub fn tx<T, E, F>(conn: &mut DbConn, f: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConn) -> Result<T, E>,
    E: From<diesel::result::Error>,
{
    use diesel::connection::{AnsiTransactionManager, TransactionManager};
    let outermost = match conn {
        DbConn::Sqlite(lite) => {
            AnsiTransactionManager::transaction_manager_status_mut(lite).transaction_depth()?.is_none()
        }
        DbConn::Pg(_) => false,
    };
    if !outermost {
        return conn.transaction(f);
    }
    if let DbConn::Sqlite(lite) = conn {
        AnsiTransactionManager::begin_transaction_sql(lite, "BEGIN IMMEDIATE")?;
    }
    let result = f(conn);
    if let DbConn::Sqlite(lite) = conn {
        match &result {
            Ok(_) => AnsiTransactionManager::commit_transaction(lite)?,
            Err(_) => AnsiTransactionManager::rollback_transaction(lite)?,
        }
    }
    result
}

pub type Pool = r2d2::Pool<Manager>;
pub type PooledConn = r2d2::PooledConnection<Manager>;

/// Which backend a URL points to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn of(url: &str) -> Self {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            Backend::Sqlite
        }
    }
}

/// Error from opening or checking a connection; keeps the backend's own message
/// (the derived `MultiConnection::establish` would hide it).
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    #[error("cannot connect to the database: {0}")]
    Connect(#[from] diesel::ConnectionError),
    #[error("database query failed: {0}")]
    Query(#[from] diesel::result::Error),
    #[error("cannot create the database directory {0}: {1}")]
    Dir(String, std::io::Error),
}

/// r2d2 manager choosing the backend from the URL prefix.
#[derive(Debug, Clone)]
pub struct Manager {
    url: String,
}

impl Manager {
    pub fn new(url: &str) -> Self {
        Self { url: url.to_string() }
    }

    fn sqlite_path(&self) -> &str {
        self.url.strip_prefix("sqlite://").unwrap_or(&self.url)
    }
}

impl r2d2::ManageConnection for Manager {
    type Connection = DbConn;
    type Error = ConnError;

    fn connect(&self) -> Result<DbConn, ConnError> {
        match Backend::of(&self.url) {
            Backend::Postgres => Ok(DbConn::Pg(PgConnection::establish(&self.url)?)),
            Backend::Sqlite => {
                let path = self.sqlite_path();
                if let Some(parent) = std::path::Path::new(path).parent()
                    && !parent.as_os_str().is_empty()
                {
                    std::fs::create_dir_all(parent).map_err(|e| ConnError::Dir(parent.display().to_string(), e))?;
                }
                let mut conn = SqliteConnection::establish(path)?;
                // busy_timeout first: the WAL switch itself may wait for another writer.
                // The database file is read through a memory map: with the default 2 MB
                // page cache per connection, a list over 100,000 requests spent most of
                // its time copying pages from the kernel (perf: `_copy_to_iter`) on
                // every request. The map is the OS page cache, shared by every connection.
                conn.batch_execute(
                    "PRAGMA busy_timeout = 10000; PRAGMA journal_mode = WAL; \
                     PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; \
                     PRAGMA mmap_size = 1073741824;",
                )?;
                Ok(DbConn::Sqlite(conn))
            }
        }
    }

    /// r2d2 asks on every checkout. A PostgreSQL connection may have lost its server
    /// (a restart) and is tried with a round trip. A SQLite connection is an open file
    /// with no server to lose: the `SELECT 1` it ran was parsed anew on every checkout,
    /// 2% of a list page's CPU (perf, issue 17).
    fn is_valid(&self, conn: &mut DbConn) -> Result<(), ConnError> {
        if let DbConn::Pg(pg) = conn {
            pg.batch_execute("SELECT 1")?;
        }
        Ok(())
    }

    /// As diesel's own manager: a connection given back while its thread unwinds, or
    /// still inside a transaction, is dropped rather than handed to the next caller,
    /// who would otherwise write into a transaction that never commits.
    fn has_broken(&self, conn: &mut DbConn) -> bool {
        std::thread::panicking() || diesel::r2d2::R2D2Connection::is_broken(conn)
    }
}

/// Builds the pool; fails with the real connection error when the database is unreachable.
pub fn pool(url: &str, size: u32) -> anyhow::Result<Pool> {
    pool_keeping(url, size, 1)
}

/// A pool that keeps `min_idle` connections open. A one-shot command keeps none: r2d2
/// opens a replacement for a taken connection on a thread of its own, and a process
/// that exits while that thread is in libpq's TLS handshake can die in OpenSSL's exit
/// handlers, after its work is done, with no message.
pub fn pool_keeping(url: &str, size: u32, min_idle: u32) -> anyhow::Result<Pool> {
    let manager = Manager::new(url);
    // Open one connection up front so a wrong URL or password is reported as such.
    r2d2::ManageConnection::connect(&manager)?;
    let pool = r2d2::Pool::builder()
        .max_size(size)
        .min_idle(Some(min_idle))
        .connection_timeout(std::time::Duration::from_secs(10))
        .build(manager)?;
    Ok(pool)
}

/// Applies the pending migrations of the connection's backend; returns their names.
/// The domains' data steps that follow are [`crate::app::migrate`]'s.
pub fn migrate(conn: &mut DbConn) -> anyhow::Result<Vec<String>> {
    let applied = match conn {
        DbConn::Pg(c) => c.run_pending_migrations(PG_MIGRATIONS),
        DbConn::Sqlite(c) => c.run_pending_migrations(SQLITE_MIGRATIONS),
    }
    .map_err(|e| anyhow::anyhow!("migration failed: {e}"))?;
    Ok(applied.iter().map(|v| v.to_string()).collect())
}

/// The current time in UTC, as stored in every timestamp column.
pub fn now() -> chrono::NaiveDateTime {
    chrono::Utc::now().naive_utc()
}
