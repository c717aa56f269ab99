//! What the webhook endpoints accepted, remembered until it would be
//! refused as stale anyway: a replayed request is refused with 401.
//!
//! Keys are opaque (the caller hashes what makes a request unique); a row
//! whose `expires_at` has passed counts as absent even before it is deleted.

use super::query;

use super::{Millis, Tx};

/// Whether `replay_key` was accepted before and is still remembered.
pub async fn is_remembered(tx: &mut Tx<'_>, replay_key: &str, now: Millis) -> sqlx::Result<bool> {
    let row = query(
        "SELECT EXISTS (SELECT 1 FROM webhook_replays WHERE replay_key = $1 AND expires_at > $2)",
    )
    .bind(replay_key)
    .bind(now)
    .fetch_one(tx)
    .await?;
    row.try_get(0)
}

/// Remembers `replay_key` until `expires_at`. Returns false when it was
/// already remembered (a replay that raced the first request); an expired
/// row is taken over, since it no longer stands for anything.
pub async fn remember(
    tx: &mut Tx<'_>,
    replay_key: &str,
    expires_at: Millis,
    now: Millis,
) -> sqlx::Result<bool> {
    let changed = query(
        "INSERT INTO webhook_replays (replay_key, expires_at) VALUES ($1, $2)
         ON CONFLICT (replay_key) DO UPDATE SET expires_at = excluded.expires_at
         WHERE webhook_replays.expires_at <= $3",
    )
    .bind(replay_key)
    .bind(expires_at)
    .bind(now)
    .execute(tx)
    .await?
    .rows_affected();
    Ok(changed > 0)
}

/// Deletes what has aged out; returns how many rows went.
pub async fn forget_expired(tx: &mut Tx<'_>, now: Millis) -> sqlx::Result<u64> {
    let deleted = query("DELETE FROM webhook_replays WHERE expires_at <= $1")
        .bind(now)
        .execute(tx)
        .await?
        .rows_affected();
    Ok(deleted)
}
