//! What the dashboard and `/metrics` read: the counters the triggers of the
//! `dashboard_counters` migration keep, and index-friendly lookups of the
//! list. Nothing here scans deliveries or subscribers, so a page costs the
//! same with a thousand subscribers as with a million.

use serde::Serialize;

use super::subscribers::{Source, Subscriber, SubscriberState};
use super::{query, try_get_parsed, Millis, Tx};
use crate::store::deliveries::DeliveryState;

/// One cell of the subscriber counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SubscriberCount {
    pub state: SubscriberState,
    pub source: Source,
    pub count: i64,
}

/// Subscribers by state and source (at most fifteen rows): by state alone
/// or by source alone is a sum over the other.
pub async fn subscriber_counts(tx: &mut Tx<'_>) -> sqlx::Result<Vec<SubscriberCount>> {
    let rows = query("SELECT state, source, n FROM subscriber_counts ORDER BY state, source")
        .fetch_all(tx)
        .await?;
    rows.iter()
        .map(|row| {
            Ok(SubscriberCount {
                state: try_get_parsed(row, "state", SubscriberState::parse)?,
                source: try_get_parsed(row, "source", Source::parse)?,
                count: row.try_get("n")?,
            })
        })
        .collect()
}

/// How many subscriber events of one state a week saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct WeekCount {
    /// Monday 00:00 UTC, Unix milliseconds.
    pub week_start: Millis,
    pub state: SubscriberState,
    pub count: i64,
}

/// A week in milliseconds, and the first Monday after the epoch: the weeks
/// the counters are kept by (the migration computes them the same way).
pub const WEEK_MILLIS: Millis = 604_800_000;
const FIRST_MONDAY_MILLIS: Millis = 345_600_000;

/// Monday 00:00 UTC of the week holding `at`.
pub fn week_start(at: Millis) -> Millis {
    (at - FIRST_MONDAY_MILLIS).div_euclid(WEEK_MILLIS) * WEEK_MILLIS + FIRST_MONDAY_MILLIS
}

/// Subscriber events per week and state from the week starting
/// `since_week` on, oldest first; weeks without events are absent.
pub async fn weekly_events(tx: &mut Tx<'_>, since_week: Millis) -> sqlx::Result<Vec<WeekCount>> {
    let rows = query(
        "SELECT week_start, state, n FROM subscriber_event_weeks
         WHERE week_start >= $1 AND n <> 0 ORDER BY week_start, state",
    )
    .bind(since_week)
    .fetch_all(tx)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(WeekCount {
                week_start: row.try_get("week_start")?,
                state: try_get_parsed(row, "state", SubscriberState::parse)?,
                count: row.try_get("n")?,
            })
        })
        .collect()
}

/// The largest code point: every address that starts with a prefix sorts
/// below the prefix followed by it, in SQLite's byte order and in
/// PostgreSQL's C (and C.UTF-8) collation.
const AFTER_PREFIX: char = char::MAX;

/// Up to `limit` subscribers whose address starts with `prefix`, in
/// address order. A range on the UNIQUE index of `email`: no LIKE, which
/// SQLite's case-insensitive LIKE would not serve from that index.
pub async fn search_by_address(
    tx: &mut Tx<'_>,
    prefix: &str,
    limit: i64,
) -> sqlx::Result<Vec<Subscriber>> {
    let upper = format!("{prefix}{AFTER_PREFIX}");
    let sql = format!(
        "SELECT {} FROM subscribers WHERE email >= $1 AND email < $2 ORDER BY email LIMIT $3",
        super::subscribers::SUBSCRIBER_COLUMNS
    );
    let rows = query(&sql)
        .bind(prefix)
        .bind(upper.as_str())
        .bind(limit)
        .fetch_all(tx)
        .await?;
    rows.iter()
        .map(super::subscribers::subscriber_from_row)
        .collect()
}

/// Deliveries of every queue added up by kind and state, for `/metrics`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KindStateCount {
    /// `issue`, `confirmation` or `welcome`.
    pub kind: String,
    pub state: DeliveryState,
    pub count: i64,
}

/// The counters summed over campaigns (a row per campaign, kind and state:
/// a few hundred rows for years of campaigns).
pub async fn deliveries_by_kind_and_state(tx: &mut Tx<'_>) -> sqlx::Result<Vec<KindStateCount>> {
    let rows = query(
        "SELECT kind, state, CAST(SUM(n) AS BIGINT) AS n FROM delivery_counts
         GROUP BY kind, state ORDER BY kind, state",
    )
    .fetch_all(tx)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(KindStateCount {
                kind: row.try_get("kind")?,
                state: try_get_parsed(row, "state", DeliveryState::parse)?,
                count: row.try_get("n")?,
            })
        })
        .collect()
}

/// The totals that only grow (sign-ups, SMTP replies by class, bounces,
/// complaints), by name; see the migration for the names.
pub async fn metric_totals(tx: &mut Tx<'_>) -> sqlx::Result<Vec<(String, i64)>> {
    let rows = query("SELECT name, n FROM metric_totals ORDER BY name")
        .fetch_all(tx)
        .await?;
    rows.iter()
        .map(|row| Ok((row.try_get("name")?, row.try_get("n")?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weeks_start_on_monday_midnight_utc() {
        // 2026-11-29 is a Sunday; its week began on Monday 2026-11-23.
        let sunday = chrono::DateTime::parse_from_rfc3339("2026-11-29T23:59:59Z")
            .map(|t| t.timestamp_millis())
            .unwrap_or_default();
        let monday = chrono::DateTime::parse_from_rfc3339("2026-11-23T00:00:00Z")
            .map(|t| t.timestamp_millis())
            .unwrap_or_default();
        assert_eq!(week_start(sunday), monday);
        assert_eq!(week_start(monday), monday);
        assert_eq!(week_start(monday - 1), monday - WEEK_MILLIS);
    }
}
