//! The durable per-recipient queue: claiming due rows under a lease and
//! recording what the SMTP server said.

use super::{query, Row};

use super::{json_rows, Backend, JsonArray, Millis, Tx};
use crate::domain::Reply;

/// Which rows a worker serves: one campaign's issue mail, or the
/// transactional mail (confirmations, welcomes) that has no campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queue {
    Campaign(i64),
    Transactional,
}

impl Queue {
    /// A condition selecting this queue's rows, with the one value it binds
    /// (a NULL for transactional mail keeps the bind count the same).
    fn condition(self) -> (&'static str, Option<i64>) {
        match self {
            Queue::Campaign(id) => ("campaign_id = $1", Some(id)),
            Queue::Transactional => ("campaign_id IS NULL AND $1 IS NULL", None),
        }
    }
}

/// A row a worker now owns until `lease_until`.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    pub id: i64,
    /// `issue`, `confirmation` or `welcome`.
    pub kind: String,
    pub subscriber_id: Option<i64>,
    pub recipient: String,
    /// The finished message of transactional mail.
    pub payload: Option<Vec<u8>>,
    /// Including the one about to be made.
    pub attempts: i64,
    pub first_attempt_at: Millis,
    pub message_id: String,
    /// Filled in by [`unsubscribe_tokens_for`] for issue mail.
    pub unsubscribe_token: Option<String>,
}

/// A server's reply as the store keeps it. PostgreSQL's TEXT (and JSONB)
/// cannot hold a NUL, which a broken or hostile server may send; refused,
/// it would fail the whole batch's record and leave its rows to be sent
/// again when their lease lapsed. SQLite keeps the same text, so both
/// backends read back the same thing.
fn stored_text(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains('\0') {
        std::borrow::Cow::Owned(text.replace('\0', "\u{FFFD}"))
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

/// Claims up to `limit` due rows: queued rows, and deferred rows whose time
/// has come. Issue mail is only claimed while its subscriber is still
/// active, so someone who unsubscribes mid-send gets nothing more.
///
/// No ORDER BY: SQLite walks the (campaign_id, state) index and stops at the
/// limit. Ordering by due time would sort every due row on every claim,
/// which costs time and memory in proportion to the list.
pub async fn claim_due_deliveries(
    tx: &mut Tx<'_>,
    queue: Queue,
    now: Millis,
    lease_until: Millis,
    limit: i64,
    claimer: &str,
) -> sqlx::Result<Vec<ClaimedDelivery>> {
    let sql = match tx.backend() {
        Backend::Sqlite => sqlite_claim(queue),
        Backend::Postgres => postgres_claim(queue),
    };
    let campaign = match queue {
        Queue::Campaign(id) => Some(id),
        Queue::Transactional => None,
    };
    let rows = query(&sql)
        .bind(now)
        .bind(lease_until)
        .bind(limit)
        .bind(campaign)
        .bind(claimer)
        .fetch_all(tx)
        .await?;
    // A row that does not decode (a corrupt database) fails the whole claim
    // with an error naming the column; the caller's transaction is then
    // dropped, not committed, so no row is left 'sending' by it.
    let mut claimed = rows
        .iter()
        .map(|row| {
            Ok(ClaimedDelivery {
                id: row.try_get("id")?,
                kind: row.try_get("kind")?,
                subscriber_id: row.try_get("subscriber_id")?,
                recipient: row.try_get("recipient")?,
                payload: row.try_get("payload")?,
                attempts: row.try_get("attempts")?,
                first_attempt_at: row.try_get("first_attempt_at")?,
                message_id: row.try_get("message_id")?,
                unsubscribe_token: None,
            })
        })
        .collect::<sqlx::Result<Vec<_>>>()?;
    // RETURNING comes back in no particular order.
    claimed.sort_by_key(|d| d.id);
    Ok(claimed)
}

/// What a claim sets on each row it takes, and gives back.
const CLAIM_SET: &str = "UPDATE deliveries
    SET state = 'sending', lease_until = $2, claimed_by = $5, attempts = attempts + 1,
        first_attempt_at = COALESCE(first_attempt_at, $1)";
const CLAIM_RETURNING: &str =
    "RETURNING id, kind, subscriber_id, recipient, payload, attempts, first_attempt_at, message_id";
const TRANSACTIONAL: &str = "d.campaign_id IS NULL AND $4 IS NULL";

/// SQLite has one writer at a time and no row locks; its planner walks
/// `deliveries_by_campaign_sent_at` for this as it is.
fn sqlite_claim(queue: Queue) -> String {
    let filter = match queue {
        Queue::Campaign(_) => {
            "d.campaign_id = $4 AND EXISTS (SELECT 1 FROM subscribers s WHERE s.id = d.subscriber_id AND s.state = 'active')"
        }
        Queue::Transactional => TRANSACTIONAL,
    };
    format!(
        "{CLAIM_SET}
         WHERE id IN (
             SELECT d.id FROM deliveries d
             WHERE {filter}
               AND ((d.state IN ('queued', 'deferred') AND d.next_attempt_at <= $1)
                    OR (d.state = 'sending' AND d.lease_until < $1))
             LIMIT $3)
         {CLAIM_RETURNING}"
    )
}

/// On PostgreSQL several workers claim at once: SKIP LOCKED lets each take
/// rows the others are not taking, instead of queueing behind their locks
/// and then finding the rows gone. The shape keeps each claim's cost to
/// the rows it takes, however far the campaign has gone (it was a scan of
/// the whole campaign, 28 ms a claim at 50,000 rows, 6 ms now):
/// - the states as one list, the times in a CASE: an index scan on
///   (campaign, state) that stops at the LIMIT, where an OR of two state
///   conditions made a bitmap of every queued row;
/// - the subscriber's state as a scalar subquery: as EXISTS the planner
///   made it a merge join in subscriber order, walking the sent rows;
/// - `= ANY(ARRAY(...))`: the picked ids found through the primary key,
///   where `IN (...)` hash-joined them against a scan of the table.
fn postgres_claim(queue: Queue) -> String {
    let filter = match queue {
        Queue::Campaign(_) => {
            "d.campaign_id = $4 AND (SELECT s.state FROM subscribers s WHERE s.id = d.subscriber_id) = 'active'"
        }
        Queue::Transactional => TRANSACTIONAL,
    };
    format!(
        "{CLAIM_SET}
         WHERE id = ANY(ARRAY(
             SELECT d.id FROM deliveries d
             WHERE {filter}
               AND d.state IN ('queued', 'deferred', 'sending')
               AND CASE WHEN d.state = 'sending' THEN d.lease_until < $1
                        ELSE d.next_attempt_at <= $1 END
             LIMIT $3 FOR UPDATE OF d SKIP LOCKED))
         {CLAIM_RETURNING}"
    )
}

/// The unsubscribe tokens of the claimed rows' subscribers.
pub async fn unsubscribe_tokens_for(
    tx: &mut Tx<'_>,
    claimed: &mut [ClaimedDelivery],
) -> sqlx::Result<()> {
    let ids: Vec<i64> = claimed.iter().filter_map(|d| d.subscriber_id).collect();
    if ids.is_empty() {
        return Ok(());
    }
    // The ids are integers from our own rows, so joining them is safe; a
    // JSON array would do too but costs a parse per batch.
    let list = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
    let sql = format!("SELECT id, unsubscribe_token FROM subscribers WHERE id IN ({list})");
    // Not cached as a prepared statement: every batch has its own id list,
    // and a cache of them would grow with the list.
    let rows = query(&sql).persistent(false).fetch_all(tx).await?;
    let tokens = rows
        .iter()
        .map(|r| Ok((r.try_get("id")?, r.try_get("unsubscribe_token")?)))
        .collect::<sqlx::Result<std::collections::HashMap<i64, String>>>()?;
    for delivery in claimed {
        if let Some(id) = delivery.subscriber_id {
            delivery.unsubscribe_token = tokens.get(&id).cloned();
        }
    }
    Ok(())
}

/// Records many accepted messages in one statement: at thousands of
/// messages a second, one UPDATE per row would be the bottleneck.
pub async fn mark_sent_batch(
    tx: &mut Tx<'_>,
    sent: &[(i64, &Reply)],
    now: Millis,
    claimer: &str,
) -> sqlx::Result<()> {
    if sent.is_empty() {
        return Ok(());
    }
    match tx.backend() {
        Backend::Sqlite => mark_sent_values(tx, sent, now, claimer).await,
        Backend::Postgres => mark_sent_json(tx, sent, now, claimer).await,
    }
}

/// SQLite: the rows as a VALUES list. Its planner walks the list and looks
/// each id up by rowid; a table-valued json_each could be joined the other
/// way round, scanning the deliveries.
async fn mark_sent_values(
    tx: &mut Tx<'_>,
    sent: &[(i64, &Reply)],
    now: Millis,
    claimer: &str,
) -> sqlx::Result<()> {
    // SQLite allows 32766 bound parameters; 4 a row.
    for chunk in sent.chunks(1000) {
        let values = (0..chunk.len())
            .map(|i| {
                let first = 3 + 4 * i;
                format!("(${first}, ${}, ${}, ${})", first + 1, first + 2, first + 3)
            })
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "UPDATE deliveries SET state = 'sent', sent_at = $1, lease_until = NULL, claimed_by = NULL,
                 last_code = v.column2, last_enhanced_code = v.column3, last_reply = v.column4
             FROM (VALUES {values}) AS v
             WHERE deliveries.id = v.column1 AND deliveries.state = 'sending'
               AND deliveries.claimed_by = $2"
        );
        // Only full chunks repeat, so only they are worth a cached statement.
        let mut statement = query(&sql)
            .persistent(chunk.len() == 1000)
            .bind(now)
            .bind(claimer);
        for (id, reply) in chunk {
            statement = statement
                .bind(*id)
                .bind(reply.code)
                .bind(reply.enhanced_code.as_deref())
                .bind(stored_text(&reply.text));
        }
        statement.execute(tx).await?;
    }
    Ok(())
}

/// PostgreSQL: the rows as one JSON parameter, so the statement text never
/// changes and is parsed and planned once per connection. A VALUES list of
/// a new length each time (the recorder commits whatever arrived in the
/// last few milliseconds) cost a parse and a plan per commit, in the
/// server's CPU, which on one machine is the sender's CPU too.
async fn mark_sent_json(
    tx: &mut Tx<'_>,
    sent: &[(i64, &Reply)],
    now: Millis,
    claimer: &str,
) -> sqlx::Result<()> {
    let rows: Vec<_> = sent
        .iter()
        .map(|(id, reply)| {
            serde_json::json!({
                "id": id,
                "code": reply.code,
                "enhanced": reply.enhanced_code,
                "reply": stored_text(&reply.text),
            })
        })
        .collect();
    let json = serde_json::Value::Array(rows).to_string();
    // The guard (still this run's claim) is one row comparison, which no
    // index can answer, so each row is found by its primary key. Written as
    // `state = 'sending' AND claimed_by = $2`, the planner took either for
    // rare (the statistics were gathered before the send) and walked an
    // index of every claimed row, joined against the batch row by row:
    // 40 to 70 ms a batch late in a send.
    query(
        "UPDATE deliveries SET state = 'sent', sent_at = $1, lease_until = NULL, claimed_by = NULL,
             last_code = v.code, last_enhanced_code = v.enhanced, last_reply = v.reply
         FROM jsonb_to_recordset(CAST($3 AS JSONB))
             AS v(id BIGINT, code BIGINT, enhanced TEXT, reply TEXT)
         WHERE deliveries.id = v.id
           AND (deliveries.state, deliveries.claimed_by) IS NOT DISTINCT FROM ('sending', $2)",
    )
    .bind(now)
    .bind(claimer)
    .bind(json)
    .execute(tx)
    .await?;
    Ok(())
}

pub async fn mark_deferred(
    tx: &mut Tx<'_>,
    id: i64,
    reply: &Reply,
    next_attempt_at: Millis,
    claimer: &str,
) -> sqlx::Result<()> {
    query(
        "UPDATE deliveries SET state = 'deferred', next_attempt_at = $1, lease_until = NULL,
             claimed_by = NULL, last_code = $2, last_enhanced_code = $3, last_reply = $4
         WHERE id = $5 AND state = 'sending' AND claimed_by = $6",
    )
    .bind(next_attempt_at)
    .bind(reply.code)
    .bind(reply.enhanced_code.as_deref())
    .bind(stored_text(&reply.text))
    .bind(id)
    .bind(claimer)
    .execute(tx)
    .await?;
    Ok(())
}

pub async fn mark_failed(
    tx: &mut Tx<'_>,
    id: i64,
    reply: &Reply,
    claimer: &str,
) -> sqlx::Result<()> {
    query(
        "UPDATE deliveries SET state = 'failed', lease_until = NULL, claimed_by = NULL,
             last_code = $1, last_enhanced_code = $2, last_reply = $3
         WHERE id = $4 AND state = 'sending' AND claimed_by = $5",
    )
    .bind(reply.code)
    .bind(reply.enhanced_code.as_deref())
    .bind(stored_text(&reply.text))
    .bind(id)
    .bind(claimer)
    .execute(tx)
    .await?;
    Ok(())
}

/// Gives a claimed row back untouched (the run is stopping before sending
/// it): the attempt it was charged is refunded.
pub async fn release_claim(tx: &mut Tx<'_>, id: i64, claimer: &str) -> sqlx::Result<()> {
    query(
        "UPDATE deliveries
         SET state = CASE WHEN attempts > 1 THEN 'deferred' ELSE 'queued' END,
             attempts = attempts - 1, lease_until = NULL, claimed_by = NULL
         WHERE id = $1 AND state = 'sending' AND claimed_by = $2",
    )
    .bind(id)
    .bind(claimer)
    .execute(tx)
    .await?;
    Ok(())
}

/// Extends the lease of every row `claimer` still holds: a run renews its
/// claims while it works, so its rows are never taken from it; when it
/// dies, they return to the queue once the lease lapses, whatever machine
/// it ran on.
pub async fn renew_leases(
    tx: &mut Tx<'_>,
    claimer: &str,
    lease_until: Millis,
) -> sqlx::Result<u64> {
    Ok(
        query("UPDATE deliveries SET lease_until = $1 WHERE state = 'sending' AND claimed_by = $2")
            .bind(lease_until)
            .bind(claimer)
            .execute(tx)
            .await?
            .rows_affected(),
    )
}

/// When the earliest lease of a queue's rows held by other runs ends, if
/// any row is held by another: a run with nothing left to claim waits for
/// them (they finish, or their lease lapses and it takes them over).
pub async fn earliest_foreign_lease(
    tx: &mut Tx<'_>,
    queue: Queue,
    claimer: &str,
) -> sqlx::Result<Option<Millis>> {
    let (filter, campaign) = queue.condition();
    let sql = format!(
        "SELECT MIN(lease_until) FROM deliveries
         WHERE {filter} AND state = 'sending' AND claimed_by <> $2"
    );
    query(&sql)
        .bind(campaign)
        .bind(claimer)
        .fetch_one(tx)
        .await?
        .try_get(0)
}

/// Rows left 'sending' by a process that died. Only safe to call while
/// holding the queue's process lock, which proves no live worker owns them.
pub async fn release_orphaned_claims(tx: &mut Tx<'_>, queue: Queue) -> sqlx::Result<u64> {
    let (filter, campaign) = queue.condition();
    let sql = format!(
        "UPDATE deliveries SET state = CASE WHEN attempts > 1 THEN 'deferred' ELSE 'queued' END,
             lease_until = NULL, claimed_by = NULL
         WHERE state = 'sending' AND {filter}"
    );
    Ok(query(&sql)
        .bind(campaign)
        .execute(tx)
        .await?
        .rows_affected())
}

/// Issue mail whose subscriber left the list before it went out.
pub async fn skip_departed_recipients(tx: &mut Tx<'_>, campaign_id: i64) -> sqlx::Result<u64> {
    Ok(query(
        "UPDATE deliveries SET state = 'skipped', lease_until = NULL
         WHERE campaign_id = $1 AND state IN ('queued', 'deferred')
           AND NOT EXISTS (SELECT 1 FROM subscribers s
                           WHERE s.id = deliveries.subscriber_id AND s.state = 'active')",
    )
    .bind(campaign_id)
    .execute(tx)
    .await?
    .rows_affected())
}

/// Queues a transactional message (a confirmation, a welcome). Without a
/// payload the message is made when it is sent: a confirmation's token is
/// then created, stored as its hash, and put only in the mail, so the
/// database never holds a usable link.
pub async fn enqueue_transactional(
    tx: &mut Tx<'_>,
    kind: &str,
    subscriber_id: Option<i64>,
    recipient: &str,
    message_id: &str,
    payload: Option<&[u8]>,
    now: Millis,
) -> sqlx::Result<i64> {
    let row = query(
        "INSERT INTO deliveries
             (campaign_id, subscriber_id, kind, recipient, payload, state, next_attempt_at, message_id, created_at)
         VALUES (NULL, $1, $2, $3, $4, 'queued', $5, $6, $7)
         RETURNING id",
    )
    .bind(subscriber_id)
    .bind(kind)
    .bind(recipient)
    .bind(payload)
    .bind(now)
    .bind(message_id)
    .bind(now)
    .fetch_one(tx)
    .await?;
    row.try_get(0)
}

/// The same transactional mail queued for many subscribers at once (an
/// import): one statement, the rows as one JSON array of
/// `[subscriber_id, recipient, message_id]`.
pub async fn enqueue_transactional_many(
    tx: &mut Tx<'_>,
    kind: &str,
    rows: &[(i64, &str, String)],
    now: Millis,
) -> sqlx::Result<u64> {
    if rows.is_empty() {
        return Ok(0);
    }
    let json = serde_json::to_string(rows).expect("ids and strings serialise");
    let sql = format!(
        "INSERT INTO deliveries
             (subscriber_id, kind, recipient, state, next_attempt_at, message_id, created_at)
         SELECT CAST(value ->> 0 AS BIGINT), $1, value ->> 1, 'queued', $2, value ->> 2, $2
         FROM {}",
        json_rows(tx.backend(), 3, JsonArray::Arrays)
    );
    Ok(query(&sql)
        .bind(kind)
        .bind(now)
        .bind(json)
        .execute(tx)
        .await?
        .rows_affected())
}

/// Transactional mail of one kind queued for a subscriber since `since`:
/// the per-address limit on confirmation mails.
pub async fn count_transactional_since(
    tx: &mut Tx<'_>,
    subscriber_id: i64,
    kind: &str,
    since: Millis,
) -> sqlx::Result<i64> {
    let row = query(
        "SELECT COUNT(*) FROM deliveries
         WHERE campaign_id IS NULL AND subscriber_id = $1 AND kind = $2 AND created_at > $3",
    )
    .bind(subscriber_id)
    .bind(kind)
    .bind(since)
    .fetch_one(tx)
    .await?;
    row.try_get(0)
}

/// Where a delivery stands, as the `deliveries.state` column holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    Queued,
    /// Claimed by a worker until its lease ends.
    Sending,
    Sent,
    /// Failed for now; tried again at `next_attempt_at`.
    Deferred,
    Failed,
    /// The subscriber left the list before their copy went out.
    Skipped,
}

impl DeliveryState {
    pub const ALL: [DeliveryState; 6] = [
        DeliveryState::Queued,
        DeliveryState::Sending,
        DeliveryState::Sent,
        DeliveryState::Deferred,
        DeliveryState::Failed,
        DeliveryState::Skipped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Queued => "queued",
            DeliveryState::Sending => "sending",
            DeliveryState::Sent => "sent",
            DeliveryState::Deferred => "deferred",
            DeliveryState::Failed => "failed",
            DeliveryState::Skipped => "skipped",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|state| state.as_str() == s)
    }
}

/// How many of a queue's deliveries are in each state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct DeliveryCounts {
    pub queued: i64,
    pub sending: i64,
    pub sent: i64,
    pub deferred: i64,
    pub failed: i64,
    pub skipped: i64,
}

impl DeliveryCounts {
    pub fn get(&self, state: DeliveryState) -> i64 {
        match state {
            DeliveryState::Queued => self.queued,
            DeliveryState::Sending => self.sending,
            DeliveryState::Sent => self.sent,
            DeliveryState::Deferred => self.deferred,
            DeliveryState::Failed => self.failed,
            DeliveryState::Skipped => self.skipped,
        }
    }

    fn slot(&mut self, state: DeliveryState) -> &mut i64 {
        match state {
            DeliveryState::Queued => &mut self.queued,
            DeliveryState::Sending => &mut self.sending,
            DeliveryState::Sent => &mut self.sent,
            DeliveryState::Deferred => &mut self.deferred,
            DeliveryState::Failed => &mut self.failed,
            DeliveryState::Skipped => &mut self.skipped,
        }
    }

    /// Not done yet: waiting, claimed, or to be retried.
    pub fn remaining(&self) -> i64 {
        self.queued + self.sending + self.deferred
    }
}

/// Delivery counts by state for a queue. A state the code does not know
/// is an error, never counted as another.
///
/// Read from `delivery_counts`, which triggers keep as rows change (see the
/// migration `dashboard_counters`): a status line or a dashboard refresh
/// reads a few rows, not a million. Transactional mail is queue key 0; the
/// sum adds up its kinds (confirmations, welcomes).
pub async fn count_deliveries_by_state(
    tx: &mut Tx<'_>,
    queue: Queue,
) -> sqlx::Result<DeliveryCounts> {
    let campaign_key = match queue {
        Queue::Campaign(id) => id,
        Queue::Transactional => 0,
    };
    let rows = query(
        "SELECT state, CAST(SUM(n) AS BIGINT) AS n FROM delivery_counts
         WHERE campaign_key = $1 GROUP BY state",
    )
    .bind(campaign_key)
    .fetch_all(tx)
    .await?;
    let mut counts = DeliveryCounts::default();
    for row in &rows {
        let state = super::try_get_parsed(row, "state", DeliveryState::parse)?;
        *counts.slot(state) = row.try_get("n")?;
    }
    Ok(counts)
}

/// When the next deferred row of a queue comes due, if any.
pub async fn next_due_time(tx: &mut Tx<'_>, campaign_id: i64) -> sqlx::Result<Option<Millis>> {
    let row = query(
        "SELECT MIN(next_attempt_at) FROM deliveries WHERE campaign_id = $1 AND state IN ('queued', 'deferred')",
    )
    .bind(campaign_id)
    .fetch_one(tx)
    .await?;
    row.try_get(0)
}

/// The first and last send times and the number sent, for the send rate.
pub async fn sent_time_span(
    tx: &mut Tx<'_>,
    campaign_id: i64,
) -> sqlx::Result<(Option<Millis>, Option<Millis>, i64)> {
    // Each end from the (campaign_id, state, sent_at) index, the count
    // from the counters: nothing here walks the campaign's sent rows.
    let row = query(
        "SELECT (SELECT MIN(sent_at) FROM deliveries WHERE campaign_id = $1 AND state = 'sent'),
                (SELECT MAX(sent_at) FROM deliveries WHERE campaign_id = $1 AND state = 'sent'),
                (SELECT CAST(COALESCE(SUM(n), 0) AS BIGINT) FROM delivery_counts
                 WHERE campaign_key = $1 AND state = 'sent')",
    )
    .bind(campaign_id)
    .fetch_one(tx)
    .await?;
    Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?))
}

/// Deferred and failed rows grouped by the server's reply, most common first.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct ErrorGroup {
    pub state: String,
    pub code: Option<i64>,
    pub enhanced_code: Option<String>,
    /// The reply with what differs per message taken out (see
    /// [`normalise_reply`]), so it names the group, not one row.
    pub reply: Option<String>,
    pub count: i64,
}

/// The `limit` most common errors of a campaign, grouped by code, enhanced
/// code and normalised reply. Replies carry queue ids and addresses, so
/// grouping by their exact text gave one group per row.
///
/// SQL groups by the exact text first (identical replies become one row),
/// then the rows are streamed and merged by their normalised text here:
/// memory stays with the number of groups, however many distinct replies
/// a large campaign collected. Normalising in SQL would need a function
/// registered with SQLite (and again for PostgreSQL).
pub async fn error_groups(
    tx: &mut Tx<'_>,
    campaign_id: i64,
    limit: usize,
) -> sqlx::Result<Vec<ErrorGroup>> {
    type Key = (String, Option<i64>, Option<String>, Option<String>);
    let mut counts: std::collections::HashMap<Key, i64> = std::collections::HashMap::new();
    query(
        "SELECT state, last_code, last_enhanced_code, last_reply, COUNT(*) AS n
         FROM deliveries WHERE campaign_id = $1 AND state IN ('deferred', 'failed')
         GROUP BY state, last_code, last_enhanced_code, last_reply",
    )
    .bind(campaign_id)
    .for_each(tx, |r| {
        let reply: Option<String> = r.try_get("last_reply")?;
        let key = (
            r.try_get("state")?,
            r.try_get("last_code")?,
            r.try_get("last_enhanced_code")?,
            reply.as_deref().map(normalise_reply),
        );
        *counts.entry(key).or_default() += r.try_get::<i64>("n")?;
        Ok(())
    })
    .await?;
    let mut groups: Vec<ErrorGroup> = counts
        .into_iter()
        .map(|((state, code, enhanced_code, reply), count)| ErrorGroup {
            state,
            code,
            enhanced_code,
            reply,
            count,
        })
        .collect();
    // Most common first; ties in a fixed order, so the output is stable.
    groups.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.cmp(b)));
    groups.truncate(limit);
    Ok(groups)
}

/// An SMTP reply's text with what differs from message to message replaced
/// by placeholders, so that replies meaning the same thing group together:
/// addresses become `<address>`; queue ids, message ids, long numbers, long
/// hex strings, IP addresses and times `<id>`; bracketed tokens (`<…>`,
/// `[…]`) `<address>` or `<id>`; file paths `<path>`; whitespace is
/// collapsed. Words, codes (`550`, `5.1.1`) and URLs are kept: they say
/// what went wrong.
pub fn normalise_reply(text: &str) -> String {
    let mut words: Vec<String> = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(|c: char| !c.is_whitespace()) {
        rest = &rest[start..];
        // A bracketed token may hold spaces (Outlook's "[host time id]"),
        // so it is taken whole before splitting on whitespace.
        if let Some((token, after)) = bracketed(rest) {
            // Glued to what follows ("<a@b>:"): keep the punctuation.
            let end = after.find(char::is_whitespace).unwrap_or(after.len());
            let tail = normalise_word(&after[..end]);
            words.push(format!("{token}{tail}"));
            rest = &after[end..];
            continue;
        }
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let word = &rest[..end];
        // A bracket glued to a word: Postfix's "mx.example.net[192.0.2.1]",
        // Exim's "RCPT TO:<a@b.example>".
        match word
            .find(['<', '['])
            .and_then(|at| bracketed(&rest[at..]).map(|(token, after)| (at, token, after)))
        {
            Some((at, token, after)) if at > 0 => {
                let end = after.find(char::is_whitespace).unwrap_or(after.len());
                words.push(format!(
                    "{}{token}{}",
                    normalise_word(&word[..at]),
                    normalise_word(&after[..end])
                ));
                rest = &after[end..];
            }
            _ => {
                words.push(normalise_word(word));
                rest = &rest[end..];
            }
        }
    }
    words.join(" ")
}

/// `<…>` or `[…]` at the start of `text` (at most 200 characters, no
/// nesting): its placeholder and the text after it.
fn bracketed(text: &str) -> Option<(&'static str, &str)> {
    let close = match text.chars().next()? {
        '<' => '>',
        '[' => ']',
        _ => return None,
    };
    let end = text[1..].find(close)? + 1;
    if end > 200 {
        return None;
    }
    let inner = &text[1..end];
    let placeholder = match (close, inner) {
        // The null sender "<>" says something; keep it.
        (_, "") => return None,
        ('>', inner) if inner.contains('@') => "<address>",
        ('>', _) => "<id>",
        _ => "[<id>]",
    };
    Some((placeholder, &text[end + 1..]))
}

/// One whitespace-free word: its core (without surrounding punctuation)
/// replaced if it varies per message.
fn normalise_word(word: &str) -> String {
    let is_punctuation = |c: char| {
        matches!(
            c,
            '(' | ')' | '"' | '\'' | ',' | ';' | ':' | '.' | '!' | '?'
        )
    };
    let core = word.trim_start_matches(is_punctuation);
    let lead = &word[..word.len() - core.len()];
    let trimmed = core.trim_end_matches(is_punctuation);
    let trail = &core[trimmed.len()..];
    let core = trimmed;
    let placeholder = if core.is_empty() {
        None
    } else if is_address(core) {
        Some("<address>")
    } else if core.starts_with('/') && core[1..].contains('/') {
        Some("<path>")
    } else if is_identifier(core) {
        Some("<id>")
    } else {
        None
    };
    match placeholder {
        Some(placeholder) => format!("{lead}{placeholder}{trail}"),
        None => word.to_string(),
    }
}

fn is_address(word: &str) -> bool {
    match word.rsplit_once('@') {
        Some((local, domain)) => !local.is_empty() && domain.contains('.') && !word.contains("://"),
        None => false,
    }
}

/// A queue id ("4F3A2B1C"), an Exim or Gmail message id, a long number, an
/// IP address, a timestamp. Not an enhanced status code ("5.1.10"), not a
/// short number ("in 300 seconds" is as good as a word), not a word.
fn is_identifier(word: &str) -> bool {
    let allowed =
        |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':' | '=' | '+');
    if !word.chars().all(allowed) || is_enhanced_code(word) {
        return false;
    }
    let digits = word.chars().filter(char::is_ascii_digit).count();
    let all_digits = digits == word.len();
    let all_hex = word.chars().all(|c| c.is_ascii_hexdigit());
    (all_digits && digits >= 4) || (all_hex && word.len() >= 8) || (word.len() >= 6 && digits >= 3)
}

/// "5.1.1", "4.7.28": RFC 3463's class.subject.detail.
fn is_enhanced_code(word: &str) -> bool {
    let parts: Vec<&str> = word.split('.').collect();
    parts.len() == 3
        && matches!(parts[0], "2" | "4" | "5")
        && parts[1..]
            .iter()
            .all(|p| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()))
}

/// Erasing a subscriber: their address and any finished message that holds
/// it are removed from the delivery history, which keeps only counts and
/// replies, and the rows no longer name them (PostgreSQL's deliveries have
/// no foreign key to do that). Mail not yet sent to them is skipped.
pub async fn scrub_deliveries_of(
    tx: &mut Tx<'_>,
    subscriber_id: i64,
    placeholder: &str,
) -> sqlx::Result<u64> {
    Ok(query(
        "UPDATE deliveries
         SET recipient = $1, payload = NULL,
             state = CASE WHEN state IN ('queued', 'deferred', 'sending') THEN 'skipped' ELSE state END,
             lease_until = NULL, subscriber_id = NULL
         WHERE subscriber_id = $2",
    )
    .bind(placeholder)
    .bind(subscriber_id)
    .execute(tx)
    .await?
    .rows_affected())
}

/// A delivery a bounce or complaint report was matched to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportedDelivery {
    pub id: i64,
    pub campaign_id: Option<i64>,
    pub subscriber_id: Option<i64>,
    pub recipient: String,
}

fn reported_delivery_from_row(row: &Row) -> sqlx::Result<ReportedDelivery> {
    Ok(ReportedDelivery {
        id: row.try_get("id")?,
        campaign_id: row.try_get("campaign_id")?,
        subscriber_id: row.try_get("subscriber_id")?,
        recipient: row.try_get("recipient")?,
    })
}

/// The delivery a VERP tag names.
pub async fn find_delivery_by_id(
    tx: &mut Tx<'_>,
    id: i64,
) -> sqlx::Result<Option<ReportedDelivery>> {
    let row =
        query("SELECT id, campaign_id, subscriber_id, recipient FROM deliveries WHERE id = $1")
            .bind(id)
            .fetch_optional(tx)
            .await?;
    row.as_ref().map(reported_delivery_from_row).transpose()
}

/// The campaign delivery a returned Message-ID names: its campaign by the
/// nonce, then the row by (campaign, subscriber), the snapshot's UNIQUE
/// index. The whole Message-ID must match too, so a made-up one with a
/// real nonce finds nothing.
pub async fn find_campaign_delivery_by_message_id(
    tx: &mut Tx<'_>,
    campaign_nonce: &str,
    subscriber_id: i64,
    message_id: &str,
) -> sqlx::Result<Option<ReportedDelivery>> {
    let row = query(
        "SELECT d.id, d.campaign_id, d.subscriber_id, d.recipient
         FROM campaigns c JOIN deliveries d ON d.campaign_id = c.id AND d.subscriber_id = $2
         WHERE c.message_nonce = $1 AND d.message_id = $3",
    )
    .bind(campaign_nonce)
    .bind(subscriber_id)
    .bind(message_id)
    .fetch_optional(tx)
    .await?;
    row.as_ref().map(reported_delivery_from_row).transpose()
}

/// A confirmation or welcome by its Message-ID (a partial index holds only
/// transactional rows).
pub async fn find_transactional_delivery_by_message_id(
    tx: &mut Tx<'_>,
    message_id: &str,
) -> sqlx::Result<Option<ReportedDelivery>> {
    let row = query(
        "SELECT id, campaign_id, subscriber_id, recipient FROM deliveries
         WHERE campaign_id IS NULL AND message_id = $1",
    )
    .bind(message_id)
    .fetch_optional(tx)
    .await?;
    row.as_ref().map(reported_delivery_from_row).transpose()
}

/// How grave a report is, as SQL over a kind and a class expression: a
/// delivery keeps its gravest report (a later delay notice must not hide
/// an earlier hard bounce).
fn report_severity(kind: &str, class: &str) -> String {
    format!(
        "CASE WHEN {kind} IS NULL THEN 0 WHEN {kind} = 'complaint' THEN 4
              WHEN {kind} = 'bounce' AND {class} = 'hard' THEN 3
              WHEN {kind} = 'bounce' THEN 2 ELSE 1 END"
    )
}

/// What a report said about a delivery after its hand-off, unless the
/// delivery already holds a graver one.
pub struct DeliveryReport<'a> {
    pub kind: &'static str,
    pub class: &'static str,
    pub status: Option<&'a str>,
    pub diagnostic: &'a str,
    pub at: Millis,
}

pub async fn record_delivery_report(
    tx: &mut Tx<'_>,
    delivery_id: i64,
    report: &DeliveryReport<'_>,
) -> sqlx::Result<bool> {
    let sql = format!(
        "UPDATE deliveries SET report_kind = $2, report_class = $3, report_status = $4,
             report_diagnostic = $5, reported_at = $6
         WHERE id = $1 AND {} >= {}",
        report_severity("$2", "$3"),
        report_severity("report_kind", "report_class"),
    );
    Ok(query(&sql)
        .bind(delivery_id)
        .bind(report.kind)
        .bind(report.class)
        .bind(report.status)
        .bind(report.diagnostic)
        .bind(report.at)
        .execute(tx)
        .await?
        .rows_affected()
        > 0)
}

/// One campaign's reports against what it sent, for `herald status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct CampaignReportCounts {
    pub campaign_id: i64,
    pub issue_slug: String,
    pub sent: i64,
    pub hard_bounces: i64,
    pub soft_bounces: i64,
    pub complaints: i64,
}

/// A campaign's sent count (from the counters) and its report counts
/// (from the small partial index of reported rows), for `herald status` and
/// the dashboard: fast on a million-row campaign.
const REPORT_COUNTS: &str = "SELECT c.id, c.issue_slug,
     (SELECT CAST(COALESCE(SUM(n), 0) AS BIGINT) FROM delivery_counts
      WHERE campaign_key = c.id AND state = 'sent') AS sent,
     (SELECT COUNT(*) FROM deliveries d WHERE d.campaign_id = c.id
          AND d.report_kind = 'bounce' AND d.report_class = 'hard') AS hard_bounces,
     (SELECT COUNT(*) FROM deliveries d WHERE d.campaign_id = c.id
          AND d.report_kind = 'bounce' AND d.report_class = 'soft') AS soft_bounces,
     (SELECT COUNT(*) FROM deliveries d WHERE d.campaign_id = c.id
          AND d.report_kind = 'complaint') AS complaints
 FROM campaigns c";

fn report_counts_from_row(row: &Row) -> sqlx::Result<CampaignReportCounts> {
    Ok(CampaignReportCounts {
        campaign_id: row.try_get("id")?,
        issue_slug: row.try_get("issue_slug")?,
        sent: row.try_get("sent")?,
        hard_bounces: row.try_get("hard_bounces")?,
        soft_bounces: row.try_get("soft_bounces")?,
        complaints: row.try_get("complaints")?,
    })
}

/// The newest campaigns' sent, bounced and complained counts.
pub async fn campaign_report_counts(
    tx: &mut Tx<'_>,
    limit: i64,
) -> sqlx::Result<Vec<CampaignReportCounts>> {
    // Only campaigns that started: one scheduled or cancelled has sent
    // nothing, and would push a real one out of the newest.
    let sql = format!(
        "{REPORT_COUNTS} WHERE c.state NOT IN ('scheduled', 'cancelled') ORDER BY c.id DESC LIMIT $1"
    );
    let rows = query(&sql).bind(limit).fetch_all(tx).await?;
    rows.iter().map(report_counts_from_row).collect()
}

/// One campaign's report counts, as [`campaign_report_counts`] gives them;
/// all zero for a campaign that does not exist.
pub async fn report_counts_of_campaign(
    tx: &mut Tx<'_>,
    campaign_id: i64,
) -> sqlx::Result<CampaignReportCounts> {
    let sql = format!("{REPORT_COUNTS} WHERE c.id = $1");
    let row = query(&sql).bind(campaign_id).fetch_optional(tx).await?;
    match row {
        Some(row) => report_counts_from_row(&row),
        None => Ok(CampaignReportCounts {
            campaign_id,
            ..CampaignReportCounts::default()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::normalise_reply;

    /// Real-looking replies (the text after the code and enhanced code, as
    /// the send stage stores it) and what they group under.
    #[test]
    fn replies_lose_what_differs_per_message() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "Postfix: unknown user",
                "<reader00017@example.com>: Recipient address rejected: User unknown in virtual mailbox table",
                "<address>: Recipient address rejected: User unknown in virtual mailbox table",
            ),
            (
                "Postfix: accepted",
                "Ok: queued as 4F3A2B1C",
                "Ok: queued as <id>",
            ),
            (
                "Postfix: long queue id",
                "Ok: queued as 4ZKq8X3Gm9z1xYv",
                "Ok: queued as <id>",
            ),
            (
                "Postfix: relayed bounce",
                "host mx.example.net[203.0.113.7] said: 550 5.1.1 <bob@example.net>: Recipient address rejected: User unknown (in reply to RCPT TO command)",
                "host mx.example.net[<id>] said: 550 5.1.1 <address>: Recipient address rejected: User unknown (in reply to RCPT TO command)",
            ),
            (
                "Postfix: greylisting",
                "<jane@example.org>: Recipient address rejected: Greylisted, see http://postgrey.schweikert.ch/help/example.org.html",
                "<address>: Recipient address rejected: Greylisted, see http://postgrey.schweikert.ch/help/example.org.html",
            ),
            (
                "Gmail: no such user, folded lines",
                "The email account that you tried to reach does not exist. Please try 5.1.1 double-checking the recipient's email address for typos or 5.1.1 unnecessary spaces. For more information, go to 5.1.1  https://support.google.com/mail/?p=NoSuchUser 41be03b00d2f7-b8f3a51d3f1si1234567a.205 - gsmtp",
                "The email account that you tried to reach does not exist. Please try 5.1.1 double-checking the recipient's email address for typos or 5.1.1 unnecessary spaces. For more information, go to 5.1.1 https://support.google.com/mail/?p=NoSuchUser <id> - gsmtp",
            ),
            (
                "Gmail: rate limited",
                "[203.0.113.7      15] Our system has detected an unusual rate of unsolicited mail originating from your IP address. 6a1803df08f44-6f0a3c1e2b3si987654d.100 - gsmtp",
                "[<id>] Our system has detected an unusual rate of unsolicited mail originating from your IP address. <id> - gsmtp",
            ),
            (
                "Outlook: mailbox unavailable",
                "Requested action not taken: mailbox unavailable (S2017062302). [AM0PR10MB1234.EURPRD10.PROD.OUTLOOK.COM 2026-11-29T02:50:00.123Z 08DE0A1B2C3D4E5F]",
                "Requested action not taken: mailbox unavailable (<id>). [<id>]",
            ),
            (
                "Outlook: recipient not found",
                "RESOLVER.ADR.RecipNotFound; not found",
                "RESOLVER.ADR.RecipNotFound; not found",
            ),
            (
                "Exim: verification",
                "Verification failed for <x@y.example> Unrouteable address Sender verify failed",
                "Verification failed for <address> Unrouteable address Sender verify failed",
            ),
            (
                "Exim: after RCPT",
                "SMTP error from remote mail server after RCPT TO:<bob@example.org>: host mx.example.org [192.0.2.25]: 550 Unrouteable address",
                "SMTP error from remote mail server after RCPT TO:<address>: host mx.example.org [<id>]: 550 Unrouteable address",
            ),
            (
                "Exim: accepted",
                "OK id=1tQ2Xy-000Abc-3F",
                "OK <id>",
            ),
            (
                "Exim: greylisted, a short number kept",
                "Greylisted, please try again in 300 seconds",
                "Greylisted, please try again in 300 seconds",
            ),
            (
                "bare address and enhanced code in the text",
                "mailbox   jane.doe+news@mail.example.co.uk is full\t(4.2.2)",
                "mailbox <address> is full (4.2.2)",
            ),
            (
                "file outbox",
                "written to /tmp/herald/outbox/1732849200123-4242-000001.eml",
                "written to <path>",
            ),
            (
                "null sender kept",
                "MAIL FROM:<> accepted",
                "MAIL FROM:<> accepted",
            ),
            ("empty", "   ", ""),
        ];
        for (what, reply, expected) in cases {
            assert_eq!(normalise_reply(reply), *expected, "{what}");
        }
    }

    #[test]
    fn replies_differing_only_by_queue_id_or_address_are_equal() {
        assert_eq!(
            normalise_reply("<a@b.example>: Recipient address rejected"),
            normalise_reply("<someone.else@c.example>: Recipient address rejected"),
        );
        assert_eq!(
            normalise_reply("Ok: queued as 4F3A2B1C"),
            normalise_reply("Ok: queued as 9D8E7F6A5B"),
        );
    }
}
