//! Secrets Herald makes for itself and keeps in the database.

use super::query;

use super::{Millis, Tx};
use crate::domain::VerpKey;

/// The key that signs VERP tags: made on first use (random, 32 bytes) and
/// the same ever after. One statement: an upsert that leaves an existing
/// key alone and returns whichever key is stored, so two processes racing
/// to make it agree on one. Needs a write transaction.
pub async fn verp_key(tx: &mut Tx<'_>, now: Millis) -> sqlx::Result<VerpKey> {
    let fresh = VerpKey::generate();
    let row = query(
        "INSERT INTO secrets (name, value, created_at) VALUES ('verp', $1, $2)
         ON CONFLICT (name) DO UPDATE SET name = excluded.name
         RETURNING value",
    )
    .bind(fresh.as_bytes())
    .bind(now)
    .fetch_one(tx)
    .await?;
    let stored: Vec<u8> = row.try_get(0)?;
    VerpKey::from_bytes(&stored).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}
