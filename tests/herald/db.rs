//! The databases the integration tests run on, and raw SQL to look inside
//! them, for either backend.
//!
//! SQLite always. PostgreSQL too when `HERALD_TEST_POSTGRES` names a server
//! (`postgres://root@127.0.0.1:5432/test`; `.ci/run` sets it): each test
//! then gets a database of its own on that server, dropped afterwards. With
//! the switch on and the server unreachable, a test fails; it never passes
//! without having run.

use std::panic::AssertUnwindSafe;
use std::path::Path;

use futures_util::FutureExt;
use herald::store::{Location, Store};
use sqlx::Connection;

pub const POSTGRES_SWITCH: &str = "HERALD_TEST_POSTGRES";

#[derive(Debug, Clone)]
pub enum Backend {
    Sqlite,
    /// The server's URL, naming a database the tests may connect to in
    /// order to create their own.
    Postgres(String),
}

/// Every backend this run tests.
pub fn backends() -> Vec<Backend> {
    let mut all = vec![Backend::Sqlite];
    match std::env::var(POSTGRES_SWITCH) {
        Ok(url) if !url.is_empty() => all.push(Backend::Postgres(url)),
        _ => eprintln!("{POSTGRES_SWITCH} is not set: PostgreSQL not tested here"),
    }
    all
}

/// Runs `test` once on every backend this run tests. A failure names the
/// backend it happened on, since the assertion itself cannot say.
pub fn for_each_backend(test: impl Fn(&Backend)) {
    for backend in backends() {
        if let Err(panic) = std::panic::catch_unwind(AssertUnwindSafe(|| test(&backend))) {
            fail_on(&backend, panic);
        }
    }
}

/// [`for_each_backend`] for async test bodies.
pub async fn for_each_backend_async<F, Fut>(test: F)
where
    F: Fn(Backend) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for backend in backends() {
        let outcome = AssertUnwindSafe(test(backend.clone())).catch_unwind().await;
        if let Err(panic) = outcome {
            fail_on(&backend, panic);
        }
    }
}

fn fail_on(backend: &Backend, panic: Box<dyn std::any::Any + Send>) -> ! {
    let message = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("(a panic without a message)");
    panic!("on {}: {message}", backend.name())
}

/// The PostgreSQL server the switch names, for tests that only make sense
/// there; `None` (with a line on stderr) when the switch is off.
pub fn postgres_only() -> Option<Backend> {
    match std::env::var(POSTGRES_SWITCH) {
        Ok(url) if !url.is_empty() => Some(Backend::Postgres(url)),
        _ => {
            eprintln!("{POSTGRES_SWITCH} is not set: skipping a PostgreSQL-only test");
            None
        }
    }
}

/// One test's database: a file in the test's folder, or a fresh database
/// on the PostgreSQL server.
pub struct TestDatabase {
    /// For `[database] url`.
    pub url: String,
    /// The server URL and the database's name, to drop it afterwards.
    postgres: Option<(String, String)>,
}

impl Backend {
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// A new, empty database for one test; `dir` holds a SQLite file.
    pub fn database(&self, dir: &Path) -> TestDatabase {
        match self {
            Backend::Sqlite => TestDatabase {
                url: format!("sqlite://{}", dir.join("herald.db").display()),
                postgres: None,
            },
            Backend::Postgres(server) => {
                let name = format!("herald_test_{}", uuid::Uuid::new_v4().simple());
                let statement = format!("CREATE DATABASE {name}");
                on_server(server, &statement).unwrap_or_else(|e| {
                    panic!("{POSTGRES_SWITCH}={server}: cannot create a test database: {e}")
                });
                let mut url = url::Url::parse(server).expect("the switch holds a URL");
                url.set_path(&name);
                TestDatabase {
                    url: url.to_string(),
                    postgres: Some((server.clone(), name)),
                }
            }
        }
    }
}

impl TestDatabase {
    /// `[database]` as a config file says it.
    pub fn config(&self) -> String {
        format!("[database]\nurl = {:?}\n", self.url)
    }

    pub fn settings_url(&self) -> Option<String> {
        Some(self.url.clone())
    }

    /// Where the store is, as `Settings::database` would say.
    pub fn location(&self) -> Location {
        match self.url.strip_prefix("sqlite://") {
            Some(path) => Location::Sqlite(path.into()),
            None => Location::Postgres {
                url: self.url.clone(),
                password: None,
            },
        }
    }

    /// The store, opened (and migrated) as Herald opens it.
    pub async fn store(&self) -> Store {
        Store::connect(&self.location())
            .await
            .unwrap_or_else(|e| panic!("opening {}: {e:#}", self.url))
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some((server, name)) = &self.postgres {
            // WITH (FORCE): a killed worker's connection may linger.
            let statement = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
            if let Err(e) = on_server(server, &statement) {
                eprintln!("could not drop test database {name}: {e}");
            }
        }
    }
}

/// Runs one statement on the server, from a thread of its own so that it
/// works inside and outside a test's async runtime.
fn on_server(server: &str, statement: &str) -> Result<(), String> {
    let server = server.to_string();
    let statement = statement.to_string();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        runtime.block_on(async {
            let mut connection = sqlx::PgConnection::connect(&server)
                .await
                .map_err(|e| e.to_string())?;
            sqlx::query(&statement)
                .execute(&mut connection)
                .await
                .map_err(|e| e.to_string())?;
            connection.close().await.map_err(|e| e.to_string())
        })
    })
    .join()
    .map_err(|_| "the thread panicked".to_string())?
}

/// One value of any type both drivers decode (`Option<String>`,
/// `Option<Vec<u8>>`, ...), on either backend.
pub async fn scalar<T>(store: &Store, sql: &str) -> T
where
    T: Send + Unpin,
    (T,): for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
        + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>,
{
    if let Some(pool) = store.sqlite_pool() {
        sqlx::query_scalar(sql).fetch_one(pool).await
    } else {
        let pool = store.postgres_pool().expect("one backend or the other");
        sqlx::query_scalar(sql).fetch_one(pool).await
    }
    .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Raw SQL on either backend, for tests that look at (or into) the tables.
/// Values are written into the SQL by the test itself.
pub async fn scalar_i64(store: &Store, sql: &str) -> i64 {
    if let Some(pool) = store.sqlite_pool() {
        sqlx::query_scalar(sql).fetch_one(pool).await
    } else {
        let pool = store.postgres_pool().expect("one backend or the other");
        sqlx::query_scalar(sql).fetch_one(pool).await
    }
    .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

pub async fn scalar_text(store: &Store, sql: &str) -> String {
    if let Some(pool) = store.sqlite_pool() {
        sqlx::query_scalar(sql).fetch_one(pool).await
    } else {
        let pool = store.postgres_pool().expect("one backend or the other");
        sqlx::query_scalar(sql).fetch_one(pool).await
    }
    .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

pub async fn texts(store: &Store, sql: &str) -> Vec<String> {
    if let Some(pool) = store.sqlite_pool() {
        sqlx::query_scalar(sql).fetch_all(pool).await
    } else {
        let pool = store.postgres_pool().expect("one backend or the other");
        sqlx::query_scalar(sql).fetch_all(pool).await
    }
    .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

pub async fn execute(store: &Store, sql: &str) -> u64 {
    if let Some(pool) = store.sqlite_pool() {
        sqlx::query(sql)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
    } else {
        let pool = store.postgres_pool().expect("one backend or the other");
        sqlx::query(sql)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
    }
    .unwrap_or_else(|e| panic!("{sql}: {e}"))
}
