//! Subscribers and their state.

use serde::Serialize;
use sqlx::Row;

use super::{Millis, Tx};
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
    let row = sqlx::query(
        "INSERT INTO subscribers
             (email, name, state, source, unsubscribe_token, consent_at, consent_ip,
              consent_user_agent, created_at, state_changed_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
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
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.map(|r| r.get(0)))
}

/// Records a change of state in the audit trail.
pub async fn record_event(
    tx: &mut Tx<'_>,
    subscriber_id: i64,
    state: SubscriberState,
    reason: &str,
    now: Millis,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO subscriber_events (subscriber_id, state, reason, at) VALUES (?, ?, ?, ?)",
    )
    .bind(subscriber_id)
    .bind(state.as_str())
    .bind(reason)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Marks a subscriber bounced after a permanent "no such mailbox" reply, so
/// no later issue goes there. Returns whether a row changed.
pub async fn mark_bounced(tx: &mut Tx<'_>, subscriber_id: i64, now: Millis) -> sqlx::Result<bool> {
    let changed = sqlx::query(
        "UPDATE subscribers SET state = 'bounced', state_changed_at = ?
         WHERE id = ? AND state IN ('active', 'pending')",
    )
    .bind(now)
    .bind(subscriber_id)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(changed > 0)
}

/// Subscribers in each state.
pub async fn count_by_state(tx: &mut Tx<'_>) -> sqlx::Result<Vec<(String, i64)>> {
    let rows = sqlx::query("SELECT state, COUNT(*) FROM subscribers GROUP BY state ORDER BY state")
        .fetch_all(&mut **tx)
        .await?;
    Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
}
