//! Everything Herald keeps: SQLite through sqlx. All SQL lives in this
//! module, one statement per function named for what it does; callers own
//! the transaction and commit it. A PostgreSQL backend (several send workers
//! claiming rows with `FOR UPDATE SKIP LOCKED`) can be added here without
//! touching the stages.

pub mod bounce_reports;
pub mod campaigns;
pub mod confirmation_tokens;
pub mod deliveries;
pub mod secrets;
pub mod subscribers;
pub mod suppressions;
pub mod webhook_replays;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool, Transaction};

pub type Tx<'a> = Transaction<'a, Sqlite>;

/// Milliseconds since the Unix epoch: every time column.
pub type Millis = i64;

/// Reads a column the schema keeps to a few known words (a state, a
/// source) and parses it. Anything else means the database was corrupted or
/// edited by hand: an error naming the column, never a guessed default,
/// which could mail someone who left or skip someone who did not.
pub(crate) fn try_get_parsed<T>(
    row: &sqlx::sqlite::SqliteRow,
    column: &str,
    parse: impl FnOnce(&str) -> Option<T>,
) -> sqlx::Result<T> {
    use sqlx::Row;
    let value: &str = row.try_get(column)?;
    parse(value).ok_or_else(|| sqlx::Error::ColumnDecode {
        index: format!("{column:?}"),
        // Capped: a corrupt value can be arbitrarily long.
        source: format!(
            "unknown value {:?}",
            value.chars().take(40).collect::<String>()
        )
        .into(),
    })
}

pub fn now_millis() -> Millis {
    chrono::Utc::now().timestamp_millis()
}

#[derive(Clone, Debug)]
pub struct Store {
    /// For reads outside a transaction (tests, reports): WAL lets them run
    /// beside the writer. Transactions, reading or not, go through `writer`,
    /// which keeps every read in them consistent with their writes.
    pool: SqlitePool,
    /// One connection for every write transaction. SQLite allows one writer
    /// at a time anyway; queueing writers here, in the process, avoids
    /// SQLite's busy handler, which sleeps for milliseconds when two of our
    /// own connections collide (the claimer and the recorder of a send).
    writer: SqlitePool,
}

/// Blocks until this process alone may migrate the database at `path`.
/// Not the database file itself: SQLite holds POSIX locks on it, which a
/// second descriptor of ours would release when it closes.
async fn lock_migrations(path: &Path) -> anyhow::Result<std::fs::File> {
    let lock_path = path.with_extension("migrate.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("opening lock file {}", lock_path.display()))?;
    tokio::task::spawn_blocking(move || file.lock().map(|()| file))
        .await
        .context("waiting for the migration lock")?
        .with_context(|| format!("locking {}", lock_path.display()))
}

impl Store {
    /// Opens (creating if needed) the database and applies every migration.
    pub async fn open(path: &Path) -> anyhow::Result<Store> {
        Self::open_with_busy_timeout(path, Duration::from_secs(10)).await
    }

    /// [`Store::open`], waiting at most `busy_timeout` for another
    /// process's write lock before a statement fails with SQLITE_BUSY.
    pub async fn open_with_busy_timeout(
        path: &Path,
        busy_timeout: Duration,
    ) -> anyhow::Result<Store> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        let options = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .create_if_missing(true)
            // WAL: the web server reads while `herald send` writes.
            .journal_mode(SqliteJournalMode::Wal)
            // NORMAL is durable across a process crash in WAL mode (only an
            // OS crash can lose the last commits), and much faster than FULL.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(busy_timeout)
            // 1 MiB of page cache per connection (SQLite's default is 2):
            // a send touches a narrow moving window of the table, and a
            // fixed cache keeps memory flat however long the list.
            .pragma("cache_size", "-1024")
            .foreign_keys(true);
        let migrating = lock_migrations(path).await?;
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await
            .with_context(|| format!("opening database {}", path.display()))?;
        // sqlx's SQLite migrator takes no lock of its own: two processes
        // opening a new database at once would both create its tables
        // ("table subscribers already exists"). A lock file beside the
        // database makes them take turns; the second finds nothing to do.
        sqlx::migrate!("./migrations")
            .run(&writer)
            .await
            .with_context(|| format!("migrating database {}", path.display()))?;
        drop(migrating);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .with_context(|| format!("opening database {}", path.display()))?;
        Ok(Store { pool, writer })
    }

    /// A transaction that may write, on the writer connection: it takes
    /// the write lock at once (BEGIN IMMEDIATE), waiting out another
    /// process's writer under the busy timeout. A deferred transaction that
    /// reads and then writes would have to upgrade its snapshot, which
    /// fails at once ("database is locked", no busy wait) when another
    /// process wrote in between; so there is no other way to begin one.
    /// Commit it to keep its work.
    pub async fn begin(&self) -> sqlx::Result<Tx<'static>> {
        self.writer.begin_with("BEGIN IMMEDIATE").await
    }

    /// A read-only transaction on the reader pool: one consistent snapshot
    /// (WAL), taking no write lock, for reports such as `herald status`.
    pub async fn begin_read(&self) -> sqlx::Result<Tx<'static>> {
        self.pool.begin().await
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    pub async fn close(&self) {
        self.pool.close().await;
        self.writer.close().await;
    }
}
