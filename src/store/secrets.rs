//! Secrets Herald makes for itself and keeps in the database.

use super::query;

use super::{Millis, Tx};
use crate::domain::{ClickKey, VerpKey};

/// The key stored under `name`, made from `fresh` on first use and the
/// same ever after. One statement: an upsert that leaves an existing key
/// alone and returns whichever key is stored, so two processes racing to
/// make it agree on one. Needs a write transaction.
async fn stored_key(
    tx: &mut Tx<'_>,
    name: &str,
    fresh: &[u8],
    now: Millis,
) -> sqlx::Result<Vec<u8>> {
    let row = query(
        "INSERT INTO secrets (name, value, created_at) VALUES ($1, $2, $3)
         ON CONFLICT (name) DO UPDATE SET name = excluded.name
         RETURNING value",
    )
    .bind(name)
    .bind(fresh)
    .bind(now)
    .fetch_one(tx)
    .await?;
    row.try_get(0)
}

/// The key that signs VERP tags (random, 32 bytes).
pub async fn verp_key(tx: &mut Tx<'_>, now: Millis) -> sqlx::Result<VerpKey> {
    let stored = stored_key(tx, "verp", VerpKey::generate().as_bytes(), now).await?;
    VerpKey::from_bytes(&stored).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

/// The key that signs per-subscriber click tokens (random, 32 bytes).
pub async fn click_key(tx: &mut Tx<'_>, now: Millis) -> sqlx::Result<ClickKey> {
    let stored = stored_key(tx, "clicks", ClickKey::generate().as_bytes(), now).await?;
    ClickKey::from_bytes(&stored).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}
