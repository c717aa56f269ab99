//! Everything Herald keeps, on SQLite (embedded, the default) or
//! PostgreSQL (a shared server, for several workers), through sqlx. All SQL
//! lives in this module, one statement per function named for what it
//! does; callers own the transaction and commit it, and never learn which
//! backend they run on.
//!
//! Each function runs its statement through [`on_tx!`], which compiles the
//! same code once per backend. The statements use `$1`-style parameters,
//! which both accept, and BIGINT columns on PostgreSQL, so most text is
//! shared; where the dialects differ (claims with `FOR UPDATE SKIP LOCKED`,
//! JSON arrays, transaction modes), the two versions sit side by side in
//! one function.

pub mod bounce_reports;
pub mod campaigns;
pub mod clicks;
pub mod confirmation_tokens;
pub mod copy;
pub mod dashboard;
pub mod deliveries;
pub mod relay_states;
pub mod secrets;
pub mod subscribers;
pub mod suppressions;
pub mod webhook_replays;

mod query;

pub(crate) use query::{query, query_scalar, Row};

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, PgPool, Postgres, Sqlite, SqlitePool, Transaction};

/// Milliseconds since the Unix epoch: every time column.
pub type Millis = i64;

pub fn now_millis() -> Millis {
    chrono::Utc::now().timestamp_millis()
}

/// Where the database is: what `[database] url` names, already validated.
#[derive(Clone)]
pub enum Location {
    Sqlite(PathBuf),
    Postgres {
        /// Without a password; safe to print.
        url: String,
        /// From `HERALD_DATABASE_PASSWORD`; when absent, the URL's own
        /// fallbacks (`PGPASSWORD`, `~/.pgpass`) apply.
        password: Option<String>,
    },
}

impl std::fmt::Debug for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl Location {
    /// For messages: the file, or the URL without its password.
    pub fn describe(&self) -> String {
        match self {
            Location::Sqlite(path) => path.display().to_string(),
            Location::Postgres { url, .. } => url.clone(),
        }
    }
}

/// Which kind of server a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// An open transaction on either backend. Commit it to keep its work;
/// dropping it rolls back.
pub enum Tx<'a> {
    Sqlite(Transaction<'a, Sqlite>),
    Postgres(Transaction<'a, Postgres>),
}

impl Tx<'_> {
    pub async fn commit(self) -> sqlx::Result<()> {
        match self {
            Tx::Sqlite(tx) => tx.commit().await,
            Tx::Postgres(tx) => tx.commit().await,
        }
    }

    pub async fn rollback(self) -> sqlx::Result<()> {
        match self {
            Tx::Sqlite(tx) => tx.rollback().await,
            Tx::Postgres(tx) => tx.rollback().await,
        }
    }

    pub fn backend(&self) -> Backend {
        match self {
            Tx::Sqlite(_) => Backend::Sqlite,
            Tx::Postgres(_) => Backend::Postgres,
        }
    }
}

/// A value both drivers decode the same way.
pub(crate) trait Value:
    for<'r> sqlx::Decode<'r, Sqlite>
    + sqlx::Type<Sqlite>
    + for<'r> sqlx::Decode<'r, Postgres>
    + sqlx::Type<Postgres>
{
}

impl<T> Value for T where
    T: for<'r> sqlx::Decode<'r, Sqlite>
        + sqlx::Type<Sqlite>
        + for<'r> sqlx::Decode<'r, Postgres>
        + sqlx::Type<Postgres>
{
}

/// What a JSON array parameter holds, for [`json_rows`].
#[derive(Debug, Clone, Copy)]
pub(crate) enum JsonArray {
    /// Strings or numbers: `value` is each one as text (or SQLite's own
    /// type), so `CAST(value AS BIGINT)` reads a number.
    Scalars,
    /// Arrays: `value ->> 0` reads an element's first item as text.
    Arrays,
}

/// A table expression yielding one row, with a `value` column, per element
/// of the JSON array bound as parameter `$param`. Bulk statements bind one
/// JSON array instead of thousands of parameters; the table functions that
/// unpack it differ between the backends.
pub(crate) fn json_rows(backend: Backend, param: u32, array: JsonArray) -> String {
    match (backend, array) {
        (Backend::Sqlite, _) => format!("json_each(${param})"),
        (Backend::Postgres, JsonArray::Scalars) => {
            format!("jsonb_array_elements_text(CAST(${param} AS JSONB))")
        }
        (Backend::Postgres, JsonArray::Arrays) => {
            format!("jsonb_array_elements(CAST(${param} AS JSONB))")
        }
    }
}

/// Reads a column the schema keeps to a few known words (a state, a
/// source) and parses it. Anything else means the database was corrupted or
/// edited by hand: an error naming the column, never a guessed default,
/// which could mail someone who left or skip someone who did not.
pub(crate) fn try_get_parsed<T>(
    row: &Row,
    column: &str,
    parse: impl FnOnce(&str) -> Option<T>,
) -> sqlx::Result<T> {
    let value: String = row.try_get(column)?;
    parse(&value).ok_or_else(|| sqlx::Error::ColumnDecode {
        index: format!("{column:?}"),
        // Capped: a corrupt value can be arbitrarily long.
        source: format!(
            "unknown value {:?}",
            value.chars().take(40).collect::<String>()
        )
        .into(),
    })
}

/// The connections of one backend.
#[derive(Clone, Debug)]
enum Pools {
    Sqlite {
        path: PathBuf,
        /// For reads outside a transaction and read-only transactions:
        /// WAL lets them run beside the writer.
        pool: SqlitePool,
        /// One connection for every write transaction. SQLite allows one
        /// writer at a time anyway; queueing writers here, in the process,
        /// avoids SQLite's busy handler, which sleeps for milliseconds when
        /// two of our own connections collide (the claimer and the recorder
        /// of a send).
        writer: SqlitePool,
    },
    Postgres(PgPool),
}

#[derive(Clone, Debug)]
pub struct Store {
    pools: Pools,
}

/// Blocks until this process alone may migrate the database at `path`.
/// Not the database file itself: SQLite holds POSIX locks on it, which a
/// second descriptor of ours would release when it closes.
async fn lock_migrations(path: &Path) -> anyhow::Result<std::fs::File> {
    let (file, lock_path) = open_lock_file(path, "migrate")?;
    tokio::task::spawn_blocking(move || file.lock().map(|()| file))
        .await
        .context("waiting for the migration lock")?
        .with_context(|| format!("locking {}", lock_path.display()))
}

/// The lock file called `name` beside the SQLite database at `path`.
fn open_lock_file(path: &Path, name: &str) -> anyhow::Result<(std::fs::File, PathBuf)> {
    let lock_path = path.with_extension(format!("{name}.lock"));
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("opening lock file {}", lock_path.display()))?;
    Ok((file, lock_path))
}

/// SQLite's primary result codes worth a retry: BUSY, LOCKED, IOERR,
/// FULL (someone may free space), CANTOPEN.
const TRANSIENT_SQLITE_CODES: [i64; 5] = [5, 6, 10, 13, 14];

/// Whether a database error may go away by itself, so the work is worth
/// trying again: a busy SQLite file, or a PostgreSQL server that restarts,
/// fails over or drops the connection.
pub fn is_transient(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            if db
                .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                .is_some()
            {
                // SQLSTATE classes 08 (connection exception), 57P
                // (operator intervention: shutdown, restart), 53 (out of
                // resources, e.g. too many connections), and 40001/40P01
                // (serialization failure, deadlock: retry the transaction).
                code.starts_with("08")
                    || code.starts_with("57P")
                    || code.starts_with("53")
                    || code == "40001"
                    || code == "40P01"
            } else {
                code.parse::<i64>()
                    .ok()
                    // Extended codes carry the primary code in the low byte.
                    .is_some_and(|code| TRANSIENT_SQLITE_CODES.contains(&(code & 0xff)))
            }
        }
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        _ => false,
    }
}

/// [`is_transient`] anywhere in an error's chain.
pub fn is_transient_error(error: &anyhow::Error) -> bool {
    error
        .chain()
        .filter_map(|e| e.downcast_ref::<sqlx::Error>())
        .any(is_transient)
}

/// Held by one process at a time; see [`Store::try_lock`].
pub enum StoreLock {
    File(std::fs::File),
    Postgres(sqlx::PgConnection),
}

/// sqlx warns about any statement over a second, but some take longer by
/// design (a campaign's snapshot of a large list, waiting for another
/// sender's campaign start): at debug level they stay visible with `-v`
/// without reading like faults.
const SLOW_STATEMENT: Duration = Duration::from_secs(1);
const SLOW_STATEMENT_LEVEL: log::LevelFilter = log::LevelFilter::Debug;

/// How long a SQLite statement waits for another process's write lock.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

impl Store {
    /// Opens (creating a SQLite file if needed) the database and applies
    /// every migration.
    pub async fn connect(location: &Location) -> anyhow::Result<Store> {
        Self::connect_with_busy_timeout(location, SQLITE_BUSY_TIMEOUT).await
    }

    /// [`Store::connect`], waiting at most `busy_timeout` for the database:
    /// for SQLite, another process's write lock; for PostgreSQL, a
    /// connection from the pool.
    pub async fn connect_with_busy_timeout(
        location: &Location,
        busy_timeout: Duration,
    ) -> anyhow::Result<Store> {
        match location {
            Location::Sqlite(path) => Self::open_sqlite(path, busy_timeout).await,
            Location::Postgres { url, password } => {
                Self::open_postgres(url, password.as_deref(), busy_timeout).await
            }
        }
    }

    /// [`Store::connect`] for a SQLite file.
    pub async fn open(path: &Path) -> anyhow::Result<Store> {
        Self::open_sqlite(path, SQLITE_BUSY_TIMEOUT).await
    }

    async fn open_sqlite(path: &Path, busy_timeout: Duration) -> anyhow::Result<Store> {
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
            .foreign_keys(true)
            .log_slow_statements(SLOW_STATEMENT_LEVEL, SLOW_STATEMENT);
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
        sqlx::migrate!("./migrations/sqlite")
            .run(&writer)
            .await
            .with_context(|| format!("migrating database {}", path.display()))?;
        drop(migrating);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .with_context(|| format!("opening database {}", path.display()))?;
        Ok(Store {
            pools: Pools::Sqlite {
                path: path.to_path_buf(),
                pool,
                writer,
            },
        })
    }

    async fn open_postgres(
        url: &str,
        password: Option<&str>,
        acquire_timeout: Duration,
    ) -> anyhow::Result<Store> {
        let mut options = PgConnectOptions::from_str(url)
            .with_context(|| format!("reading database url {url}"))?
            .application_name("herald")
            // Herald's statements are short and run thousands of times;
            // JIT compiling one whose cost estimate is high (the claim's,
            // whose LIMIT the planner cannot price) costs it 20 ms each time.
            .options([("jit", "off")])
            .log_slow_statements(SLOW_STATEMENT_LEVEL, SLOW_STATEMENT);
        if let Some(password) = password {
            options = options.password(password);
        }
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(acquire_timeout)
            .connect_with(options)
            .await
            .with_context(|| format!("connecting to {url}"))?;
        // sqlx's PostgreSQL migrator holds an advisory lock while it runs,
        // so several processes starting at once take turns.
        sqlx::migrate!("./migrations/postgres")
            .run(&pool)
            .await
            .with_context(|| format!("migrating database {url}"))?;
        Ok(Store {
            pools: Pools::Postgres(pool),
        })
    }

    pub fn backend(&self) -> Backend {
        match self.pools {
            Pools::Sqlite { .. } => Backend::Sqlite,
            Pools::Postgres(_) => Backend::Postgres,
        }
    }

    /// A transaction that may write. On SQLite it runs on the writer
    /// connection and takes the write lock at once (BEGIN IMMEDIATE),
    /// waiting out another process's writer under the busy timeout: a
    /// deferred transaction that reads and then writes would have to
    /// upgrade its snapshot, which fails at once ("database is locked", no
    /// busy wait) when another process wrote in between. PostgreSQL locks
    /// rows, not the database, so a plain BEGIN is right there.
    pub async fn begin(&self) -> sqlx::Result<Tx<'static>> {
        match &self.pools {
            Pools::Sqlite { writer, .. } => {
                Ok(Tx::Sqlite(writer.begin_with("BEGIN IMMEDIATE").await?))
            }
            Pools::Postgres(pool) => Ok(Tx::Postgres(pool.begin().await?)),
        }
    }

    /// A read-only transaction: one consistent snapshot taking no write
    /// lock, for reports such as `herald status`.
    pub async fn begin_read(&self) -> sqlx::Result<Tx<'static>> {
        match &self.pools {
            Pools::Sqlite { pool, .. } => Ok(Tx::Sqlite(pool.begin().await?)),
            Pools::Postgres(pool) => Ok(Tx::Postgres(
                pool.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                    .await?,
            )),
        }
    }

    /// Takes the lock called `name` unless another process holds it
    /// (`Ok(None)`). It is held until the [`StoreLock`] is dropped, or the
    /// process dies: on SQLite a lock file beside the database (so within
    /// one machine), on PostgreSQL a session advisory lock on a connection
    /// of its own (so across every machine using the database).
    pub async fn try_lock(&self, name: &str) -> anyhow::Result<Option<StoreLock>> {
        match &self.pools {
            Pools::Sqlite { path, .. } => {
                let (file, lock_path) = open_lock_file(path, name)?;
                match file.try_lock() {
                    Ok(()) => Ok(Some(StoreLock::File(file))),
                    Err(std::fs::TryLockError::WouldBlock) => Ok(None),
                    Err(std::fs::TryLockError::Error(e)) => {
                        Err(e).with_context(|| format!("locking {}", lock_path.display()))
                    }
                }
            }
            Pools::Postgres(pool) => {
                // Detached: returned to the pool, the connection would
                // keep the lock for whoever borrowed it next.
                let mut connection = pool.acquire().await?.detach();
                let key = format!("herald:{name}");
                let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtext($1))")
                    .bind(&key)
                    .fetch_one(&mut connection)
                    .await?;
                Ok(locked.then_some(StoreLock::Postgres(connection)))
            }
        }
    }

    /// The SQLite pool, for tests that inspect or damage the file.
    pub fn sqlite_pool(&self) -> Option<&SqlitePool> {
        match &self.pools {
            Pools::Sqlite { pool, .. } => Some(pool),
            Pools::Postgres(_) => None,
        }
    }

    /// The PostgreSQL pool, for tests that inspect the database.
    pub fn postgres_pool(&self) -> Option<&PgPool> {
        match &self.pools {
            Pools::Sqlite { .. } => None,
            Pools::Postgres(pool) => Some(pool),
        }
    }

    pub async fn close(&self) {
        match &self.pools {
            Pools::Sqlite { pool, writer, .. } => {
                pool.close().await;
                writer.close().await;
            }
            Pools::Postgres(pool) => pool.close().await,
        }
    }
}
