//! Bounce and complaint reports, the recipients each names, and what they
//! matched. The enum columns are bound and read as the bounce stage's
//! `as_str` spellings; the CHECK constraints keep them to those.

use super::{query, query_scalar};

use super::{Backend, Millis, Tx};

pub struct NewReport<'a> {
    pub received_at: Millis,
    pub channel: &'static str,
    pub provider: Option<&'static str>,
    pub kind: &'static str,
    pub dedupe_key: &'a str,
    /// The parse result as JSON.
    pub parsed: &'a str,
    pub raw: &'a [u8],
}

/// Stores a report unless one with the same dedupe key is stored already:
/// `None` then (a duplicate), and nothing is written.
pub async fn insert_report(tx: &mut Tx<'_>, new: &NewReport<'_>) -> sqlx::Result<Option<i64>> {
    let row = query(
        "INSERT INTO bounce_reports
             (received_at, channel, provider, kind, dedupe_key, parsed, raw, matched, unmatched)
         VALUES ($1, $2, $3, $4, $5, $6, $7, 0, 0)
         ON CONFLICT (dedupe_key) DO NOTHING
         RETURNING id",
    )
    .bind(new.received_at)
    .bind(new.channel)
    .bind(new.provider)
    .bind(new.kind)
    .bind(new.dedupe_key)
    .bind(new.parsed)
    .bind(new.raw)
    .fetch_optional(tx)
    .await?;
    row.map(|r| r.try_get(0)).transpose()
}

pub async fn find_report_id_by_dedupe_key(
    tx: &mut Tx<'_>,
    dedupe_key: &str,
) -> sqlx::Result<Option<i64>> {
    query_scalar("SELECT id FROM bounce_reports WHERE dedupe_key = $1")
        .bind(dedupe_key)
        .fetch_optional(tx)
        .await
}

pub async fn set_report_counts(
    tx: &mut Tx<'_>,
    report_id: i64,
    matched: usize,
    unmatched: usize,
) -> sqlx::Result<()> {
    query("UPDATE bounce_reports SET matched = $1, unmatched = $2 WHERE id = $3")
        .bind(i64::try_from(matched).unwrap_or(i64::MAX))
        .bind(i64::try_from(unmatched).unwrap_or(i64::MAX))
        .bind(report_id)
        .execute(tx)
        .await?;
    Ok(())
}

pub struct NewReportRecipient<'a> {
    pub report_id: i64,
    pub kind: &'static str,
    pub address: &'a str,
    pub status: Option<&'a str>,
    pub class: &'static str,
    pub diagnostic: &'a str,
    /// `verp`, `message-id` or `address`; `None`: matched nothing.
    pub matched_by: Option<&'static str>,
    pub delivery_id: Option<i64>,
    pub subscriber_id: Option<i64>,
    pub at: Millis,
}

pub async fn insert_report_recipient(
    tx: &mut Tx<'_>,
    new: &NewReportRecipient<'_>,
) -> sqlx::Result<()> {
    query(
        "INSERT INTO bounce_recipients
             (report_id, kind, address, status, class, diagnostic, matched_by, delivery_id, subscriber_id, at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(new.report_id)
    .bind(new.kind)
    .bind(new.address)
    .bind(new.status)
    .bind(new.class)
    .bind(new.diagnostic)
    .bind(new.matched_by)
    .bind(new.delivery_id)
    .bind(new.subscriber_id)
    .bind(new.at)
    .execute(tx)
    .await?;
    Ok(())
}

/// A subscriber's soft-bounced deliveries since `since`, each counted once
/// however many reports name it. A report matched by address alone names
/// no delivery and counts as its own.
pub async fn count_soft_bounced_deliveries(
    tx: &mut Tx<'_>,
    subscriber_id: i64,
    since: Millis,
) -> sqlx::Result<i64> {
    query_scalar(
        "SELECT COUNT(DISTINCT COALESCE(delivery_id, -report_id)) FROM bounce_recipients
         WHERE subscriber_id = $1 AND kind = 'bounce' AND class = 'soft' AND at >= $2",
    )
    .bind(subscriber_id)
    .bind(since)
    .fetch_one(tx)
    .await
}

/// Empties the raw messages of reports received before `before`; the parse
/// result and the matches stay. Walks only rows still holding one (a
/// partial index), so it is cheap to run on every report.
pub async fn purge_raw_messages(tx: &mut Tx<'_>, before: Millis) -> sqlx::Result<u64> {
    Ok(
        query("UPDATE bounce_reports SET raw = NULL WHERE raw IS NOT NULL AND received_at < $1")
            .bind(before)
            .execute(tx)
            .await?
            .rows_affected(),
    )
}

/// One report as `herald bounces list` shows it.
#[derive(Debug, Clone)]
pub struct ReportRow {
    pub id: i64,
    pub received_at: Millis,
    pub channel: String,
    pub provider: Option<String>,
    pub kind: String,
    pub matched: i64,
    pub unmatched: i64,
    pub raw_kept: bool,
    /// A JSON array of `{address, status, class, diagnostic, matched_by,
    /// delivery_id, subscriber_id}`.
    pub recipients_json: String,
}

/// The newest reports first, each with its recipients.
pub async fn list_reports(tx: &mut Tx<'_>, limit: i64) -> sqlx::Result<Vec<ReportRow>> {
    // The recipients as one JSON array per report: SQLite's JSON1 and
    // PostgreSQL's functions differ in name, and json_agg over no rows is
    // NULL where json_group_array gives [].
    let recipients = match tx.backend() {
        Backend::Sqlite => {
            "json_group_array(json_object(
                 'address', b.address, 'status', b.status, 'class', b.class,
                 'diagnostic', b.diagnostic, 'matched_by', b.matched_by,
                 'delivery_id', b.delivery_id, 'subscriber_id', b.subscriber_id))"
        }
        Backend::Postgres => {
            "CAST(COALESCE(json_agg(json_build_object(
                 'address', b.address, 'status', b.status, 'class', b.class,
                 'diagnostic', b.diagnostic, 'matched_by', b.matched_by,
                 'delivery_id', b.delivery_id, 'subscriber_id', b.subscriber_id)
                 ORDER BY b.id), '[]') AS TEXT)"
        }
    };
    let sql = format!(
        "SELECT r.id, r.received_at, r.channel, r.provider, r.kind, r.matched, r.unmatched,
                r.raw IS NOT NULL AS raw_kept,
                (SELECT {recipients}
                 FROM bounce_recipients b WHERE b.report_id = r.id) AS recipients_json
         FROM bounce_reports r ORDER BY r.id DESC LIMIT $1"
    );
    let rows = query(&sql).bind(limit).fetch_all(tx).await?;
    // By name, so a column that does not decode is named in the error.
    rows.iter()
        .map(|r| {
            Ok(ReportRow {
                id: r.try_get("id")?,
                received_at: r.try_get("received_at")?,
                channel: r.try_get("channel")?,
                provider: r.try_get("provider")?,
                kind: r.try_get("kind")?,
                matched: r.try_get("matched")?,
                unmatched: r.try_get("unmatched")?,
                raw_kept: r.try_get("raw_kept")?,
                recipients_json: r.try_get("recipients_json")?,
            })
        })
        .collect()
}
