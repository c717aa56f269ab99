//! Addresses erased on request, known only by the SHA-256 of the address,
//! so they are never added again.

use std::collections::HashSet;

use super::query;

use super::{json_rows, JsonArray, Millis, Tx};

pub async fn is_suppressed(tx: &mut Tx<'_>, email_hash: &str) -> sqlx::Result<bool> {
    let row = query("SELECT EXISTS (SELECT 1 FROM suppressions WHERE email_hash = $1)")
        .bind(email_hash)
        .fetch_one(tx)
        .await?;
    row.try_get(0)
}

/// Which of these hashes are suppressed: one query for an import chunk.
pub async fn suppressed_among(
    tx: &mut Tx<'_>,
    email_hashes: &[String],
) -> sqlx::Result<HashSet<String>> {
    if email_hashes.is_empty() {
        return Ok(HashSet::new());
    }
    let json = serde_json::to_string(email_hashes).expect("strings serialise");
    let sql = format!(
        "SELECT email_hash FROM suppressions WHERE email_hash IN (SELECT value FROM {})",
        json_rows(tx.backend(), 1, JsonArray::Scalars)
    );
    let rows = query(&sql).bind(json).fetch_all(tx).await?;
    rows.iter().map(|r| r.try_get(0)).collect()
}

/// Returns whether the hash was new.
pub async fn insert_suppression(
    tx: &mut Tx<'_>,
    email_hash: &str,
    reason: &str,
    now: Millis,
) -> sqlx::Result<bool> {
    let inserted = query(
        "INSERT INTO suppressions (email_hash, reason, at) VALUES ($1, $2, $3)
         ON CONFLICT (email_hash) DO NOTHING",
    )
    .bind(email_hash)
    .bind(reason)
    .bind(now)
    .execute(tx)
    .await?
    .rows_affected();
    Ok(inserted > 0)
}
