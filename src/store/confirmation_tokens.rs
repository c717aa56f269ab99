//! Confirmation tokens of the double opt-in, kept only as SHA-256 hashes.

use super::query;

use super::subscribers::SubscriberState;
use super::{try_get_parsed, Millis, Tx};

pub async fn insert_confirmation_token(
    tx: &mut Tx<'_>,
    token_hash: &[u8],
    subscriber_id: i64,
    now: Millis,
    expires_at: Millis,
) -> sqlx::Result<()> {
    query(
        "INSERT INTO confirmation_tokens (token_hash, subscriber_id, created_at, expires_at)
         VALUES ($1, $2, $3, $4)",
    )
    .bind(token_hash)
    .bind(subscriber_id)
    .bind(now)
    .bind(expires_at)
    .execute(tx)
    .await?;
    Ok(())
}

/// Marks an unused, unexpired token used and returns its subscriber. The
/// check and the mark are one statement, so two concurrent confirms cannot
/// both succeed.
pub async fn use_confirmation_token(
    tx: &mut Tx<'_>,
    token_hash: &[u8],
    now: Millis,
) -> sqlx::Result<Option<i64>> {
    let row = query(
        "UPDATE confirmation_tokens SET used_at = $1
         WHERE token_hash = $2 AND used_at IS NULL AND expires_at > $1
         RETURNING subscriber_id",
    )
    .bind(now)
    .bind(token_hash)
    .fetch_optional(tx)
    .await?;
    row.map(|r| r.try_get(0)).transpose()
}

/// Spends every other outstanding token of a subscriber once one has
/// confirmed, so an older mail's link cannot confirm a later sign-up.
pub async fn use_all_confirmation_tokens(
    tx: &mut Tx<'_>,
    subscriber_id: i64,
    now: Millis,
) -> sqlx::Result<u64> {
    Ok(query(
        "UPDATE confirmation_tokens SET used_at = $1 WHERE subscriber_id = $2 AND used_at IS NULL",
    )
    .bind(now)
    .bind(subscriber_id)
    .execute(tx)
    .await?
    .rows_affected())
}

/// What is known about a token, for explaining why it does not work.
#[derive(Debug, Clone)]
pub struct TokenStatus {
    pub subscriber_id: i64,
    pub subscriber_state: SubscriberState,
    pub expires_at: Millis,
    pub used_at: Option<Millis>,
}

pub async fn find_confirmation_token(
    tx: &mut Tx<'_>,
    token_hash: &[u8],
) -> sqlx::Result<Option<TokenStatus>> {
    let row = query(
        "SELECT t.subscriber_id, s.state, t.expires_at, t.used_at
         FROM confirmation_tokens t JOIN subscribers s ON s.id = t.subscriber_id
         WHERE t.token_hash = $1",
    )
    .bind(token_hash)
    .fetch_optional(tx)
    .await?;
    row.map(|r| {
        Ok(TokenStatus {
            subscriber_id: r.try_get("subscriber_id")?,
            subscriber_state: try_get_parsed(&r, "state", SubscriberState::parse)?,
            expires_at: r.try_get("expires_at")?,
            used_at: r.try_get("used_at")?,
        })
    })
    .transpose()
}
