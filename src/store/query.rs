//! One statement for either backend. The store's functions build a
//! [`Query`] once, with `$1`-style parameters (which SQLite accepts too),
//! and run it on whichever transaction they are given; rows come back as a
//! [`Row`] that reads the same way from both. This is sqlx's `Any` driver
//! in miniature, kept here because `Any` converts every row into an owned
//! intermediate form and decodes only a narrower set of types.

use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{ColumnIndex, Postgres, Sqlite};

use super::{Tx, Value};

/// A bound parameter: the few types the schema uses.
#[derive(Debug, Clone)]
pub(crate) enum Arg<'q> {
    Int(Option<i64>),
    Text(Option<&'q str>),
    OwnedText(Option<String>),
    Blob(Option<&'q [u8]>),
    OwnedBlob(Option<Vec<u8>>),
}

impl From<i64> for Arg<'_> {
    fn from(value: i64) -> Self {
        Arg::Int(Some(value))
    }
}

impl From<Option<i64>> for Arg<'_> {
    fn from(value: Option<i64>) -> Self {
        Arg::Int(value)
    }
}

/// An SMTP reply code.
impl From<Option<u16>> for Arg<'_> {
    fn from(value: Option<u16>) -> Self {
        Arg::Int(value.map(i64::from))
    }
}

impl<'q> From<&'q str> for Arg<'q> {
    fn from(value: &'q str) -> Self {
        Arg::Text(Some(value))
    }
}

impl<'q> From<Option<&'q str>> for Arg<'q> {
    fn from(value: Option<&'q str>) -> Self {
        Arg::Text(value)
    }
}

impl<'q> From<&'q String> for Arg<'q> {
    fn from(value: &'q String) -> Self {
        Arg::Text(Some(value))
    }
}

impl From<String> for Arg<'_> {
    fn from(value: String) -> Self {
        Arg::OwnedText(Some(value))
    }
}

impl<'q> From<std::borrow::Cow<'q, str>> for Arg<'q> {
    fn from(value: std::borrow::Cow<'q, str>) -> Self {
        match value {
            std::borrow::Cow::Borrowed(text) => Arg::Text(Some(text)),
            std::borrow::Cow::Owned(text) => Arg::OwnedText(Some(text)),
        }
    }
}

impl From<Option<String>> for Arg<'_> {
    fn from(value: Option<String>) -> Self {
        Arg::OwnedText(value)
    }
}

impl<'q> From<&'q [u8]> for Arg<'q> {
    fn from(value: &'q [u8]) -> Self {
        Arg::Blob(Some(value))
    }
}

impl<'q> From<Option<&'q [u8]>> for Arg<'q> {
    fn from(value: Option<&'q [u8]>) -> Self {
        Arg::Blob(value)
    }
}

impl<'q> From<&'q Vec<u8>> for Arg<'q> {
    fn from(value: &'q Vec<u8>) -> Self {
        Arg::Blob(Some(value))
    }
}

/// What `execute` reports.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Done {
    rows_affected: u64,
}

impl Done {
    pub(crate) fn rows_affected(&self) -> u64 {
        self.rows_affected
    }
}

/// A row of either backend.
pub(crate) enum Row {
    Sqlite(SqliteRow),
    Postgres(PgRow),
}

/// A column named or numbered, on either backend.
pub(crate) trait Index: ColumnIndex<SqliteRow> + ColumnIndex<PgRow> {}

impl<I: ColumnIndex<SqliteRow> + ColumnIndex<PgRow>> Index for I {}

impl Row {
    pub(crate) fn try_get<T: Value>(&self, index: impl Index) -> sqlx::Result<T> {
        match self {
            Row::Sqlite(row) => sqlx::Row::try_get(row, index),
            Row::Postgres(row) => sqlx::Row::try_get(row, index),
        }
    }
}

pub(crate) fn query(sql: &str) -> Query<'_> {
    Query {
        sql,
        args: Vec::new(),
        persistent: true,
    }
}

/// A query whose rows are one value each.
pub(crate) fn query_scalar<T: Value>(sql: &str) -> QueryScalar<'_, T> {
    QueryScalar {
        query: query(sql),
        output: std::marker::PhantomData,
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Query<'q> {
    sql: &'q str,
    args: Vec<Arg<'q>>,
    persistent: bool,
}

/// Builds the driver's own query from ours; a macro because the two
/// drivers' query types share no trait that `bind` is on.
macro_rules! driver_query {
    ($db:ty, $query:expr) => {{
        let query = $query;
        let mut built = sqlx::query::<$db>(query.sql).persistent(query.persistent);
        for arg in &query.args {
            built = match arg {
                Arg::Int(value) => built.bind(*value),
                Arg::Text(value) => built.bind(*value),
                Arg::OwnedText(value) => built.bind(value.as_deref()),
                Arg::Blob(value) => built.bind(*value),
                Arg::OwnedBlob(value) => built.bind(value.as_deref()),
            };
        }
        built
    }};
}

impl<'q> Query<'q> {
    pub(crate) fn bind(mut self, value: impl Into<Arg<'q>>) -> Self {
        self.args.push(value.into());
        self
    }

    /// [`Query::bind`] for a value already made an [`Arg`], of any
    /// lifetime that outlives the query.
    pub(crate) fn bind_arg(mut self, value: Arg<'q>) -> Self {
        self.args.push(value);
        self
    }

    /// Whether the driver caches the prepared statement: not for text
    /// made per call (an id list), whose cache would grow without bound.
    pub(crate) fn persistent(mut self, persistent: bool) -> Self {
        self.persistent = persistent;
        self
    }

    pub(crate) async fn execute(&self, tx: &mut Tx<'_>) -> sqlx::Result<Done> {
        let rows_affected = match tx {
            Tx::Sqlite(tx) => driver_query!(Sqlite, self)
                .execute(&mut **tx)
                .await?
                .rows_affected(),
            Tx::Postgres(tx) => driver_query!(Postgres, self)
                .execute(&mut **tx)
                .await?
                .rows_affected(),
        };
        Ok(Done { rows_affected })
    }

    pub(crate) async fn fetch_all(&self, tx: &mut Tx<'_>) -> sqlx::Result<Vec<Row>> {
        Ok(match tx {
            Tx::Sqlite(tx) => driver_query!(Sqlite, self)
                .fetch_all(&mut **tx)
                .await?
                .into_iter()
                .map(Row::Sqlite)
                .collect(),
            Tx::Postgres(tx) => driver_query!(Postgres, self)
                .fetch_all(&mut **tx)
                .await?
                .into_iter()
                .map(Row::Postgres)
                .collect(),
        })
    }

    pub(crate) async fn fetch_optional(&self, tx: &mut Tx<'_>) -> sqlx::Result<Option<Row>> {
        Ok(match tx {
            Tx::Sqlite(tx) => driver_query!(Sqlite, self)
                .fetch_optional(&mut **tx)
                .await?
                .map(Row::Sqlite),
            Tx::Postgres(tx) => driver_query!(Postgres, self)
                .fetch_optional(&mut **tx)
                .await?
                .map(Row::Postgres),
        })
    }

    pub(crate) async fn fetch_one(&self, tx: &mut Tx<'_>) -> sqlx::Result<Row> {
        self.fetch_optional(tx)
            .await?
            .ok_or(sqlx::Error::RowNotFound)
    }

    /// Streams the rows into `each`, one at a time: for results that may
    /// be long, where only a summary is kept.
    pub(crate) async fn for_each(
        &self,
        tx: &mut Tx<'_>,
        mut each: impl FnMut(Row) -> sqlx::Result<()>,
    ) -> sqlx::Result<()> {
        use futures_util::TryStreamExt;
        match tx {
            Tx::Sqlite(tx) => {
                let mut rows = driver_query!(Sqlite, self).fetch(&mut **tx);
                while let Some(row) = rows.try_next().await? {
                    each(Row::Sqlite(row))?;
                }
            }
            Tx::Postgres(tx) => {
                let mut rows = driver_query!(Postgres, self).fetch(&mut **tx);
                while let Some(row) = rows.try_next().await? {
                    each(Row::Postgres(row))?;
                }
            }
        }
        Ok(())
    }
}

pub(crate) struct QueryScalar<'q, T> {
    query: Query<'q>,
    output: std::marker::PhantomData<T>,
}

impl<'q, T: Value> QueryScalar<'q, T> {
    pub(crate) fn bind(mut self, value: impl Into<Arg<'q>>) -> Self {
        self.query = self.query.bind(value);
        self
    }

    pub(crate) async fn fetch_one(&self, tx: &mut Tx<'_>) -> sqlx::Result<T> {
        self.query.fetch_one(tx).await?.try_get(0)
    }

    pub(crate) async fn fetch_optional(&self, tx: &mut Tx<'_>) -> sqlx::Result<Option<T>> {
        self.query
            .fetch_optional(tx)
            .await?
            .map(|row| row.try_get(0))
            .transpose()
    }
}
