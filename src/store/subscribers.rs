//! Subscribers and their state.

use super::{query, Row};
use serde::Serialize;

use super::{json_rows, try_get_parsed, JsonArray, Millis, Tx};
use crate::domain::SubscriberEmail;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SubscriberState {
    Pending,
    Active,
    Unsubscribed,
    Bounced,
    Complained,
}

impl SubscriberState {
    pub const ALL: [SubscriberState; 5] = [
        SubscriberState::Pending,
        SubscriberState::Active,
        SubscriberState::Unsubscribed,
        SubscriberState::Bounced,
        SubscriberState::Complained,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SubscriberState::Pending => "pending",
            SubscriberState::Active => "active",
            SubscriberState::Unsubscribed => "unsubscribed",
            SubscriberState::Bounced => "bounced",
            SubscriberState::Complained => "complained",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|state| state.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Form,
    Import,
    Cli,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Form => "form",
            Source::Import => "import",
            Source::Cli => "cli",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Source::Form, Source::Import, Source::Cli]
            .into_iter()
            .find(|source| source.as_str() == s)
    }
}

/// One row of the list.
#[derive(Debug, Clone, Serialize)]
pub struct Subscriber {
    pub id: i64,
    pub email: String,
    pub name: Option<String>,
    pub state: SubscriberState,
    pub source: Source,
    #[serde(skip)]
    pub unsubscribe_token: String,
    pub consent_at: Option<Millis>,
    pub consent_ip: Option<String>,
    pub consent_user_agent: Option<String>,
    pub created_at: Millis,
    pub state_changed_at: Millis,
}

const SUBSCRIBER_COLUMNS: &str = "id, email, name, state, source, unsubscribe_token, consent_at, \
     consent_ip, consent_user_agent, created_at, state_changed_at";

fn subscriber_from_row(row: &Row) -> sqlx::Result<Subscriber> {
    Ok(Subscriber {
        id: row.try_get("id")?,
        email: row.try_get("email")?,
        name: row.try_get("name")?,
        // The CHECK constraints keep both columns to the known values; a
        // database that holds another is corrupt, and says so.
        state: try_get_parsed(row, "state", SubscriberState::parse)?,
        source: try_get_parsed(row, "source", Source::parse)?,
        unsubscribe_token: row.try_get("unsubscribe_token")?,
        consent_at: row.try_get("consent_at")?,
        consent_ip: row.try_get("consent_ip")?,
        consent_user_agent: row.try_get("consent_user_agent")?,
        created_at: row.try_get("created_at")?,
        state_changed_at: row.try_get("state_changed_at")?,
    })
}

/// Consent as given on the web form.
#[derive(Debug, Clone, Default)]
pub struct Consent {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

pub struct NewSubscriber<'a> {
    pub email: &'a SubscriberEmail,
    pub name: Option<&'a str>,
    pub state: SubscriberState,
    pub source: Source,
    pub consent: Option<&'a Consent>,
    pub unsubscribe_token: &'a str,
}

/// Inserts a subscriber; `None` when the address is already on the list.
pub async fn insert_subscriber(
    tx: &mut Tx<'_>,
    new: &NewSubscriber<'_>,
    now: Millis,
) -> sqlx::Result<Option<i64>> {
    let row = query(
        "INSERT INTO subscribers
             (email, name, state, source, unsubscribe_token, consent_at, consent_ip,
              consent_user_agent, created_at, state_changed_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         ON CONFLICT (email) DO NOTHING
         RETURNING id",
    )
    .bind(new.email.as_str())
    .bind(new.name)
    .bind(new.state.as_str())
    .bind(new.source.as_str())
    .bind(new.unsubscribe_token)
    .bind(new.consent.map(|_| now))
    .bind(new.consent.and_then(|c| c.ip.as_deref()))
    .bind(new.consent.and_then(|c| c.user_agent.as_deref()))
    .bind(now)
    .bind(now)
    .fetch_optional(tx)
    .await?;
    row.map(|r| r.try_get(0)).transpose()
}

/// Records a change of state in the audit trail.
pub async fn record_event(
    tx: &mut Tx<'_>,
    subscriber_id: i64,
    state: SubscriberState,
    reason: &str,
    now: Millis,
) -> sqlx::Result<()> {
    query(
        "INSERT INTO subscriber_events (subscriber_id, state, reason, at) VALUES ($1, $2, $3, $4)",
    )
    .bind(subscriber_id)
    .bind(state.as_str())
    .bind(reason)
    .bind(now)
    .execute(tx)
    .await?;
    Ok(())
}

/// Marks a subscriber bounced after a permanent "no such mailbox" reply, so
/// no later issue goes there. Returns whether a row changed.
pub async fn mark_bounced(tx: &mut Tx<'_>, subscriber_id: i64, now: Millis) -> sqlx::Result<bool> {
    let changed = query(
        "UPDATE subscribers SET state = 'bounced', state_changed_at = $1
         WHERE id = $2 AND state IN ('active', 'pending')",
    )
    .bind(now)
    .bind(subscriber_id)
    .execute(tx)
    .await?
    .rows_affected();
    Ok(changed > 0)
}

/// Marks a subscriber who complained (a spam report): from any state,
/// since nothing may ever be mailed to them again. Returns whether a row
/// changed.
pub async fn mark_complained(
    tx: &mut Tx<'_>,
    subscriber_id: i64,
    now: Millis,
) -> sqlx::Result<bool> {
    let changed = query(
        "UPDATE subscribers SET state = 'complained', state_changed_at = $1
         WHERE id = $2 AND state <> 'complained'",
    )
    .bind(now)
    .bind(subscriber_id)
    .execute(tx)
    .await?
    .rows_affected();
    Ok(changed > 0)
}

/// Subscribers in each state.
pub async fn count_by_state(tx: &mut Tx<'_>) -> sqlx::Result<Vec<(String, i64)>> {
    let rows = query("SELECT state, COUNT(*) AS n FROM subscribers GROUP BY state ORDER BY state")
        .fetch_all(tx)
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("state")?, r.try_get("n")?)))
        .collect()
}

/// New subscribers in one statement: the CSV import's fast path. Every row
/// shares `state` and `source`; rows whose address is already on the list
/// are left alone. Returns the id and address of each row inserted.
pub async fn insert_subscribers(
    tx: &mut Tx<'_>,
    rows: &[(&SubscriberEmail, Option<&str>, &str)],
    state: SubscriberState,
    source: Source,
    now: Millis,
) -> sqlx::Result<Vec<(i64, String)>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    // One JSON array instead of thousands of bound parameters; SQLite reads
    // it back with json_each. `WHERE true` resolves the parsing ambiguity
    // between INSERT ... SELECT and ON CONFLICT that SQLite documents.
    let json: Vec<(&str, Option<&str>, &str)> = rows
        .iter()
        .map(|(email, name, token)| (email.as_str(), *name, *token))
        .collect();
    let json = serde_json::to_string(&json).expect("strings serialise");
    let sql = format!(
        "INSERT INTO subscribers (email, name, state, source, unsubscribe_token, created_at, state_changed_at)
         SELECT value ->> 0, value ->> 1, $1, $2, value ->> 2, $3, $3
         FROM {} WHERE true
         ON CONFLICT (email) DO NOTHING
         RETURNING id, email",
        json_rows(tx.backend(), 4, JsonArray::Arrays)
    );
    let rows = query(&sql)
        .bind(state.as_str())
        .bind(source.as_str())
        .bind(now)
        .bind(json)
        .fetch_all(tx)
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("id")?, r.try_get("email")?)))
        .collect()
}

/// The same change recorded for many subscribers at once.
pub async fn record_events(
    tx: &mut Tx<'_>,
    subscriber_ids: &[i64],
    state: SubscriberState,
    reason: &str,
    now: Millis,
) -> sqlx::Result<()> {
    if subscriber_ids.is_empty() {
        return Ok(());
    }
    let ids = serde_json::to_string(subscriber_ids).expect("integers serialise");
    let sql = format!(
        "INSERT INTO subscriber_events (subscriber_id, state, reason, at)
         SELECT CAST(value AS BIGINT), $1, $2, $3 FROM {}",
        json_rows(tx.backend(), 4, JsonArray::Scalars)
    );
    query(&sql)
        .bind(state.as_str())
        .bind(reason)
        .bind(now)
        .bind(ids)
        .execute(tx)
        .await?;
    Ok(())
}

pub async fn find_subscriber_by_email(
    tx: &mut Tx<'_>,
    email: &SubscriberEmail,
) -> sqlx::Result<Option<Subscriber>> {
    let sql = format!("SELECT {SUBSCRIBER_COLUMNS} FROM subscribers WHERE email = $1");
    let row = query(&sql).bind(email.as_str()).fetch_optional(tx).await?;
    row.as_ref().map(subscriber_from_row).transpose()
}

pub async fn find_subscriber_by_id(tx: &mut Tx<'_>, id: i64) -> sqlx::Result<Option<Subscriber>> {
    let sql = format!("SELECT {SUBSCRIBER_COLUMNS} FROM subscribers WHERE id = $1");
    let row = query(&sql).bind(id).fetch_optional(tx).await?;
    row.as_ref().map(subscriber_from_row).transpose()
}

pub async fn find_subscriber_by_unsubscribe_token(
    tx: &mut Tx<'_>,
    token: &str,
) -> sqlx::Result<Option<Subscriber>> {
    let sql = format!("SELECT {SUBSCRIBER_COLUMNS} FROM subscribers WHERE unsubscribe_token = $1");
    let row = query(&sql).bind(token).fetch_optional(tx).await?;
    row.as_ref().map(subscriber_from_row).transpose()
}

/// The list in order of arrival, optionally only one state.
pub async fn list_subscribers(
    tx: &mut Tx<'_>,
    state: Option<SubscriberState>,
) -> sqlx::Result<Vec<Subscriber>> {
    let sql = format!(
        "SELECT {SUBSCRIBER_COLUMNS} FROM subscribers WHERE $1 IS NULL OR state = $1 ORDER BY id"
    );
    let rows = query(&sql)
        .bind(state.map(SubscriberState::as_str))
        .fetch_all(tx)
        .await?;
    rows.iter().map(subscriber_from_row).collect()
}

/// Pending to active: the double opt-in's second step, or an editor's
/// `--confirmed`. Returns whether the subscriber was pending.
pub async fn activate_pending_subscriber(
    tx: &mut Tx<'_>,
    subscriber_id: i64,
    now: Millis,
) -> sqlx::Result<bool> {
    let changed = query(
        "UPDATE subscribers SET state = 'active', state_changed_at = $1
         WHERE id = $2 AND state = 'pending'",
    )
    .bind(now)
    .bind(subscriber_id)
    .execute(tx)
    .await?
    .rows_affected();
    Ok(changed > 0)
}

/// Someone who left (or whose mail bounced) asks again on the form: back to
/// `pending` with the new consent, to be confirmed like anyone new.
/// Returns whether the subscriber was in a state that allows it.
pub async fn resubscribe(
    tx: &mut Tx<'_>,
    subscriber_id: i64,
    consent: Option<&Consent>,
    now: Millis,
) -> sqlx::Result<bool> {
    let changed = query(
        "UPDATE subscribers
         SET state = 'pending', state_changed_at = $1, consent_at = $2, consent_ip = $3,
             consent_user_agent = $4
         WHERE id = $5 AND state IN ('unsubscribed', 'bounced')",
    )
    .bind(now)
    .bind(consent.map(|_| now))
    .bind(consent.and_then(|c| c.ip.as_deref()))
    .bind(consent.and_then(|c| c.user_agent.as_deref()))
    .bind(subscriber_id)
    .execute(tx)
    .await?
    .rows_affected();
    Ok(changed > 0)
}

/// Unsubscribes whoever holds this link, if they are pending or active.
/// Returns their id when this call changed something.
pub async fn unsubscribe_by_token(
    tx: &mut Tx<'_>,
    token: &str,
    now: Millis,
) -> sqlx::Result<Option<i64>> {
    let row = query(
        "UPDATE subscribers SET state = 'unsubscribed', state_changed_at = $1
         WHERE unsubscribe_token = $2 AND state IN ('pending', 'active')
         RETURNING id",
    )
    .bind(now)
    .bind(token)
    .fetch_optional(tx)
    .await?;
    row.map(|r| r.try_get(0)).transpose()
}

/// `herald subscribers remove`: like the link, by address.
pub async fn unsubscribe_by_email(
    tx: &mut Tx<'_>,
    email: &SubscriberEmail,
    now: Millis,
) -> sqlx::Result<Option<i64>> {
    let row = query(
        "UPDATE subscribers SET state = 'unsubscribed', state_changed_at = $1
         WHERE email = $2 AND state IN ('pending', 'active')
         RETURNING id",
    )
    .bind(now)
    .bind(email.as_str())
    .fetch_optional(tx)
    .await?;
    row.map(|r| r.try_get(0)).transpose()
}

/// Deletes a subscriber; their events and confirmation tokens go with them
/// (ON DELETE CASCADE), their deliveries lose the link (SET NULL).
pub async fn delete_subscriber(tx: &mut Tx<'_>, subscriber_id: i64) -> sqlx::Result<bool> {
    let deleted = query("DELETE FROM subscribers WHERE id = $1")
        .bind(subscriber_id)
        .execute(tx)
        .await?
        .rows_affected();
    Ok(deleted > 0)
}

/// One entry of a subscriber's audit trail.
#[derive(Debug, Clone, Serialize)]
pub struct SubscriberEvent {
    pub state: SubscriberState,
    pub reason: String,
    pub at: Millis,
}

/// A subscriber's changes of state, oldest first.
pub async fn list_events(
    tx: &mut Tx<'_>,
    subscriber_id: i64,
) -> sqlx::Result<Vec<SubscriberEvent>> {
    let rows = query(
        "SELECT state, reason, at FROM subscriber_events WHERE subscriber_id = $1 ORDER BY at, id",
    )
    .bind(subscriber_id)
    .fetch_all(tx)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(SubscriberEvent {
                state: try_get_parsed(r, "state", SubscriberState::parse)?,
                reason: r.try_get("reason")?,
                at: r.try_get("at")?,
            })
        })
        .collect()
}

/// How many changes to `state` were recorded in `[from, until)`: e.g. the
/// unsubscribes in the week after a campaign started. Reads the
/// (state, at) index, so it costs the matching rows, not the table.
pub async fn count_events_between(
    tx: &mut Tx<'_>,
    state: SubscriberState,
    from: Millis,
    until: Millis,
) -> sqlx::Result<i64> {
    let row =
        query("SELECT COUNT(*) FROM subscriber_events WHERE state = $1 AND at >= $2 AND at < $3")
            .bind(state.as_str())
            .bind(from)
            .bind(until)
            .fetch_one(tx)
            .await?;
    row.try_get(0)
}
