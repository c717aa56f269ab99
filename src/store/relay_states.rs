//! Each relay's circuit breaker as last changed: written by sending runs on
//! every transition, read by `herald status` and by the next run.

use super::{query, try_get_parsed, Millis, Row, Tx};

/// A breaker's state, as stored and shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Circuit {
    /// The relay takes its share.
    Closed,
    /// Out for a cool-down; its share goes to the others.
    Open,
    /// The cool-down is over; one probe message decides.
    HalfOpen,
}

impl Circuit {
    pub const ALL: [Circuit; 3] = [Circuit::Closed, Circuit::Open, Circuit::HalfOpen];

    pub fn as_str(self) -> &'static str {
        match self {
            Circuit::Closed => "closed",
            Circuit::Open => "open",
            Circuit::HalfOpen => "half-open",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|state| state.as_str() == s)
    }
}

/// One relay's row.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RelayState {
    pub relay: String,
    pub state: Circuit,
    pub reason: String,
    pub changed_at: Millis,
    pub open_until: Option<Millis>,
    pub changed_by: String,
}

fn relay_state_from_row(row: &Row) -> sqlx::Result<RelayState> {
    Ok(RelayState {
        relay: row.try_get("relay")?,
        state: try_get_parsed(row, "state", Circuit::parse)?,
        reason: row.try_get("reason")?,
        changed_at: row.try_get("changed_at")?,
        open_until: row.try_get("open_until")?,
        changed_by: row.try_get("changed_by")?,
    })
}

/// Records a transition, unless a newer one for the relay is stored
/// already (another worker's, on PostgreSQL). Returns whether it landed.
pub async fn record_relay_state(tx: &mut Tx<'_>, state: &RelayState) -> sqlx::Result<bool> {
    let changed = query(
        "INSERT INTO relay_states (relay, state, reason, changed_at, open_until, changed_by)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (relay) DO UPDATE SET
             state = excluded.state, reason = excluded.reason,
             changed_at = excluded.changed_at, open_until = excluded.open_until,
             changed_by = excluded.changed_by
         WHERE relay_states.changed_at <= excluded.changed_at",
    )
    .bind(state.relay.as_str())
    .bind(state.state.as_str())
    .bind(state.reason.as_str())
    .bind(state.changed_at)
    .bind(state.open_until)
    .bind(state.changed_by.as_str())
    .execute(tx)
    .await?
    .rows_affected();
    Ok(changed > 0)
}

/// Every relay's row, by name.
pub async fn relay_states(tx: &mut Tx<'_>) -> sqlx::Result<Vec<RelayState>> {
    query(
        "SELECT relay, state, reason, changed_at, open_until, changed_by
         FROM relay_states ORDER BY relay",
    )
    .fetch_all(tx)
    .await?
    .iter()
    .map(relay_state_from_row)
    .collect()
}
