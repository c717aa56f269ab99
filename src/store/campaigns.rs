//! Campaigns: one send of one issue, and the snapshot of its recipients.

use super::{query, Row};

use super::{try_get_parsed, Backend, Millis, Tx};

/// Where a campaign is in its life:
///
/// ```text
/// scheduled ──its time──▶ sending ◀──resume──▶ paused
///     │                      │
///     └──cancel──▶ cancelled └──last row──▶ finished
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CampaignState {
    /// Rendered and waiting for its `scheduled_at`; no recipients yet.
    Scheduled,
    Sending,
    Paused,
    Finished,
    /// Cancelled before it started; kept (retired) for the record.
    Cancelled,
}

impl CampaignState {
    pub fn as_str(self) -> &'static str {
        match self {
            CampaignState::Scheduled => "scheduled",
            CampaignState::Sending => "sending",
            CampaignState::Paused => "paused",
            CampaignState::Finished => "finished",
            CampaignState::Cancelled => "cancelled",
        }
    }

    /// None for anything else: the CHECK constraint allows only these, so
    /// another word means a corrupt database, and guessing `sending` would
    /// mail a paused or finished campaign again.
    fn parse(s: &str) -> Option<CampaignState> {
        match s {
            "scheduled" => Some(CampaignState::Scheduled),
            "sending" => Some(CampaignState::Sending),
            "paused" => Some(CampaignState::Paused),
            "finished" => Some(CampaignState::Finished),
            "cancelled" => Some(CampaignState::Cancelled),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Campaign {
    pub id: i64,
    pub issue_slug: String,
    pub issue_number: i64,
    pub issue_hash: String,
    pub subject: String,
    pub html: String,
    pub text: String,
    pub state: CampaignState,
    pub pause_reason: Option<String>,
    pub created_at: Millis,
    /// When it finished, or was cancelled.
    pub finished_at: Option<Millis>,
    /// When it was scheduled to start; `None` for one sent at once.
    pub scheduled_at: Option<Millis>,
    /// See [`NewCampaign::message_nonce`]; `None` only in campaigns older
    /// than the column.
    pub message_nonce: Option<String>,
}

pub struct NewCampaign<'a> {
    pub issue_slug: &'a str,
    pub issue_number: i64,
    pub issue_hash: &'a str,
    pub subject: &'a str,
    pub html: &'a str,
    pub text: &'a str,
    /// Random per campaign; part of every Message-ID of its mail (see
    /// [`snapshot_recipients`]), kept so a returned Message-ID finds it.
    pub message_nonce: &'a str,
    /// `Some`: the campaign waits, `scheduled`, until then, and takes its
    /// recipients when it starts. `None`: it is `sending` at once.
    pub scheduled_at: Option<Millis>,
}

const CAMPAIGN_COLUMNS: &str =
    "id, issue_slug, issue_number, issue_hash, subject, html, text, state, \
                                pause_reason, created_at, finished_at, scheduled_at, message_nonce";

fn campaign_from_row(row: &Row) -> sqlx::Result<Campaign> {
    Ok(Campaign {
        id: row.try_get("id")?,
        issue_slug: row.try_get("issue_slug")?,
        issue_number: row.try_get("issue_number")?,
        issue_hash: row.try_get("issue_hash")?,
        subject: row.try_get("subject")?,
        html: row.try_get("html")?,
        text: row.try_get("text")?,
        state: try_get_parsed(row, "state", CampaignState::parse)?,
        pause_reason: row.try_get("pause_reason")?,
        created_at: row.try_get("created_at")?,
        finished_at: row.try_get("finished_at")?,
        scheduled_at: row.try_get("scheduled_at")?,
        message_nonce: row.try_get("message_nonce")?,
    })
}

/// The live (not retired) campaign of an issue, if it was ever sent.
/// Makes concurrent starts of campaigns take turns until the transaction
/// ends, so that senders started together on one issue find one campaign
/// and join it, instead of each creating its own. SQLite's BEGIN IMMEDIATE
/// already lets one writer in at a time.
pub async fn wait_for_campaign_starts(tx: &mut Tx<'_>) -> sqlx::Result<()> {
    if tx.backend() == Backend::Postgres {
        query("SELECT pg_advisory_xact_lock(hashtext('herald:campaign-start'))")
            .fetch_one(tx)
            .await?;
    }
    Ok(())
}

pub async fn find_current_campaign(tx: &mut Tx<'_>, slug: &str) -> sqlx::Result<Option<Campaign>> {
    let sql = format!(
        "SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE issue_slug = $1 AND retired = 0 ORDER BY id DESC LIMIT 1"
    );
    let row = query(&sql).bind(slug).fetch_optional(tx).await?;
    row.as_ref().map(campaign_from_row).transpose()
}

/// Campaigns in one state, oldest first: a worker serves the oldest
/// sending campaign first.
pub async fn campaigns_in_state(
    tx: &mut Tx<'_>,
    state: CampaignState,
) -> sqlx::Result<Vec<Campaign>> {
    let sql = format!("SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE state = $1 ORDER BY id");
    let rows = query(&sql).bind(state.as_str()).fetch_all(tx).await?;
    rows.iter().map(campaign_from_row).collect()
}

/// The most recent campaign that started (of any issue), for `herald
/// status`: one still scheduled, or cancelled, has nothing to report yet.
pub async fn find_latest_campaign(tx: &mut Tx<'_>) -> sqlx::Result<Option<Campaign>> {
    let sql = format!(
        "SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE state NOT IN ($1, $2) ORDER BY id DESC LIMIT 1"
    );
    let row = query(&sql)
        .bind(CampaignState::Scheduled.as_str())
        .bind(CampaignState::Cancelled.as_str())
        .fetch_optional(tx)
        .await?;
    row.as_ref().map(campaign_from_row).transpose()
}

pub async fn insert_campaign(
    tx: &mut Tx<'_>,
    new: &NewCampaign<'_>,
    now: Millis,
) -> sqlx::Result<i64> {
    let state = match new.scheduled_at {
        Some(_) => CampaignState::Scheduled,
        None => CampaignState::Sending,
    };
    let row = query(
        "INSERT INTO campaigns (issue_slug, issue_number, issue_hash, subject, html, text, state,
                                created_at, message_nonce, scheduled_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         RETURNING id",
    )
    .bind(new.issue_slug)
    .bind(new.issue_number)
    .bind(new.issue_hash)
    .bind(new.subject)
    .bind(new.html)
    .bind(new.text)
    .bind(state.as_str())
    .bind(now)
    .bind(new.message_nonce)
    .bind(new.scheduled_at)
    .fetch_one(tx)
    .await?;
    row.try_get(0)
}

/// Stores the email a campaign sends, rendered after the campaign's row
/// exists: with tracked clicks its links name the campaign's id.
pub async fn set_campaign_content(
    tx: &mut Tx<'_>,
    campaign_id: i64,
    html: &str,
    text: &str,
) -> sqlx::Result<()> {
    query("UPDATE campaigns SET html = $1, text = $2 WHERE id = $3")
        .bind(html)
        .bind(text)
        .bind(campaign_id)
        .execute(tx)
        .await?;
    Ok(())
}

/// Retires the live campaign of an issue, so `--force-new` starts afresh.
pub async fn retire_campaigns(tx: &mut Tx<'_>, slug: &str) -> sqlx::Result<u64> {
    Ok(
        query("UPDATE campaigns SET retired = 1 WHERE issue_slug = $1 AND retired = 0")
            .bind(slug)
            .execute(tx)
            .await?
            .rows_affected(),
    )
}

/// One delivery row per active subscriber, taken in the same transaction
/// as the campaign: whoever is active at that instant gets the issue, once.
/// The Message-ID is fixed here, so every retry of a delivery carries it.
/// `campaign_nonce` (random per campaign) keeps Message-IDs unique across
/// databases: ids alone repeat in every new list, and receivers drop a
/// message whose Message-ID they have seen.
pub async fn snapshot_recipients(
    tx: &mut Tx<'_>,
    campaign_id: i64,
    campaign_nonce: &str,
    message_id_domain: &str,
    now: Millis,
) -> sqlx::Result<u64> {
    Ok(query(
        "INSERT INTO deliveries
             (campaign_id, subscriber_id, kind, recipient, state, next_attempt_at, message_id, created_at)
         SELECT $1, id, 'issue', email, 'queued', $2,
                '<herald.' || $4 || '.' || id || '@' || $3 || '>', $2
         FROM subscribers WHERE state = 'active' ORDER BY id",
    )
    .bind(campaign_id)
    .bind(now)
    .bind(message_id_domain)
    .bind(campaign_nonce)
    .execute(tx)
    .await?
    .rows_affected())
}

pub async fn set_campaign_state(
    tx: &mut Tx<'_>,
    campaign_id: i64,
    state: CampaignState,
    reason: Option<&str>,
    now: Millis,
) -> sqlx::Result<()> {
    query(
        "UPDATE campaigns SET state = $1, pause_reason = $2,
             finished_at = CASE WHEN $3 = 'finished' THEN $4 ELSE NULL END
         WHERE id = $5",
    )
    .bind(state.as_str())
    .bind(reason)
    .bind(state.as_str())
    .bind(now)
    .bind(campaign_id)
    .execute(tx)
    .await?;
    Ok(())
}

/// A campaign waiting for its time: what `herald status` and the admin
/// dashboard list, without the rendered mail.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ScheduledCampaign {
    pub id: i64,
    pub issue_slug: String,
    pub issue_number: i64,
    pub subject: String,
    /// SHA-256 of the issue file when it was scheduled.
    pub issue_hash: String,
    pub scheduled_at: Millis,
    pub created_at: Millis,
}

/// Every scheduled campaign, the next to start first.
pub async fn list_scheduled_campaigns(tx: &mut Tx<'_>) -> sqlx::Result<Vec<ScheduledCampaign>> {
    let rows = query(
        "SELECT id, issue_slug, issue_number, subject, issue_hash, scheduled_at, created_at
         FROM campaigns WHERE state = $1 ORDER BY scheduled_at, id",
    )
    .bind(CampaignState::Scheduled.as_str())
    .fetch_all(tx)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(ScheduledCampaign {
                id: row.try_get("id")?,
                issue_slug: row.try_get("issue_slug")?,
                issue_number: row.try_get("issue_number")?,
                subject: row.try_get("subject")?,
                issue_hash: row.try_get("issue_hash")?,
                // The column is NULL only for campaigns sent at once;
                // a scheduled one without a time is a corrupt row.
                scheduled_at: row
                    .try_get::<Option<Millis>>("scheduled_at")?
                    .ok_or_else(|| sqlx::Error::ColumnDecode {
                        index: "\"scheduled_at\"".into(),
                        source: "a scheduled campaign without a time".into(),
                    })?,
                created_at: row.try_get("created_at")?,
            })
        })
        .collect()
}

/// Scheduled campaigns whose time has come (`scheduled_at <= now`), the
/// earliest first.
pub async fn due_scheduled_campaigns(tx: &mut Tx<'_>, now: Millis) -> sqlx::Result<Vec<Campaign>> {
    let sql = format!(
        "SELECT {CAMPAIGN_COLUMNS} FROM campaigns
         WHERE state = $1 AND retired = 0 AND scheduled_at <= $2 ORDER BY scheduled_at, id"
    );
    let rows = query(&sql)
        .bind(CampaignState::Scheduled.as_str())
        .bind(now)
        .fetch_all(tx)
        .await?;
    rows.iter().map(campaign_from_row).collect()
}

pub async fn find_campaign(tx: &mut Tx<'_>, id: i64) -> sqlx::Result<Option<Campaign>> {
    let sql = format!("SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE id = $1");
    let row = query(&sql).bind(id).fetch_optional(tx).await?;
    row.as_ref().map(campaign_from_row).transpose()
}

/// Moves a scheduled campaign to `sending`; false when it is no longer
/// scheduled (another worker started it, or it was cancelled), so that of
/// several starters exactly one goes on to take its recipients.
pub async fn start_scheduled_campaign(tx: &mut Tx<'_>, id: i64) -> sqlx::Result<bool> {
    let done = query("UPDATE campaigns SET state = $1 WHERE id = $2 AND state = $3")
        .bind(CampaignState::Sending.as_str())
        .bind(id)
        .bind(CampaignState::Scheduled.as_str())
        .execute(tx)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Cancels a campaign that has not started: it becomes `cancelled` and
/// retired, so the issue can be sent or scheduled again. False when it is
/// not scheduled (it started already, or there is no such campaign).
pub async fn cancel_scheduled_campaign(
    tx: &mut Tx<'_>,
    id: i64,
    now: Millis,
) -> sqlx::Result<bool> {
    let done = query(
        "UPDATE campaigns SET state = $1, retired = 1, finished_at = $2 WHERE id = $3 AND state = $4",
    )
    .bind(CampaignState::Cancelled.as_str())
    .bind(now)
    .bind(id)
    .bind(CampaignState::Scheduled.as_str())
    .execute(tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Retires an issue's other live campaigns when a scheduled `--force-new`
/// one starts: the earlier send is kept for the record, as `--force-new`
/// does when it sends at once.
pub async fn retire_other_campaigns(tx: &mut Tx<'_>, slug: &str, keep: i64) -> sqlx::Result<u64> {
    Ok(
        query(
            "UPDATE campaigns SET retired = 1 WHERE issue_slug = $1 AND retired = 0 AND id <> $2",
        )
        .bind(slug)
        .bind(keep)
        .execute(tx)
        .await?
        .rows_affected(),
    )
}

/// A campaign as the dashboard lists it, without its rendered mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CampaignSummary {
    pub id: i64,
    pub issue_slug: String,
    pub subject: String,
    pub state: CampaignState,
    pub pause_reason: Option<String>,
    pub created_at: Millis,
    pub scheduled_at: Option<Millis>,
    pub finished_at: Option<Millis>,
}

impl CampaignSummary {
    /// When it started sending: its scheduled time for a scheduled one
    /// that has started, else when it was created (sent at once).
    pub fn started_at(&self) -> Option<Millis> {
        match self.state {
            CampaignState::Scheduled | CampaignState::Cancelled => None,
            _ => Some(self.scheduled_at.unwrap_or(self.created_at)),
        }
    }
}

const SUMMARY_COLUMNS: &str =
    "id, issue_slug, subject, state, pause_reason, created_at, scheduled_at, finished_at";

fn summary_from_row(row: &Row) -> sqlx::Result<CampaignSummary> {
    Ok(CampaignSummary {
        id: row.try_get("id")?,
        issue_slug: row.try_get("issue_slug")?,
        subject: row.try_get("subject")?,
        state: try_get_parsed(row, "state", CampaignState::parse)?,
        pause_reason: row.try_get("pause_reason")?,
        created_at: row.try_get("created_at")?,
        scheduled_at: row.try_get("scheduled_at")?,
        finished_at: row.try_get("finished_at")?,
    })
}

/// The newest campaigns first, scheduled and cancelled ones included, at
/// most `limit` (the primary key's order: no sort).
pub async fn list_campaigns(tx: &mut Tx<'_>, limit: i64) -> sqlx::Result<Vec<CampaignSummary>> {
    let sql = format!("SELECT {SUMMARY_COLUMNS} FROM campaigns ORDER BY id DESC LIMIT $1");
    let rows = query(&sql).bind(limit).fetch_all(tx).await?;
    rows.iter().map(summary_from_row).collect()
}

/// One campaign without its rendered mail.
pub async fn find_campaign_summary(
    tx: &mut Tx<'_>,
    id: i64,
) -> sqlx::Result<Option<CampaignSummary>> {
    let sql = format!("SELECT {SUMMARY_COLUMNS} FROM campaigns WHERE id = $1");
    let row = query(&sql).bind(id).fetch_optional(tx).await?;
    row.as_ref().map(summary_from_row).transpose()
}

/// Pauses a campaign that is sending (the editor's pause button): workers
/// stop claiming its rows (see `deliveries::claim_due_deliveries`). False
/// when it was not sending.
pub async fn pause_sending_campaign(tx: &mut Tx<'_>, id: i64, reason: &str) -> sqlx::Result<bool> {
    Ok(query(
        "UPDATE campaigns SET state = 'paused', pause_reason = $1 WHERE id = $2 AND state = 'sending'",
    )
    .bind(reason)
    .bind(id)
    .execute(tx)
    .await?
    .rows_affected()
        > 0)
}

/// Resumes a paused campaign: `sending` again, for any worker to pick up.
/// False when it was not paused.
pub async fn resume_paused_campaign(tx: &mut Tx<'_>, id: i64) -> sqlx::Result<bool> {
    Ok(query(
        "UPDATE campaigns SET state = 'sending', pause_reason = NULL WHERE id = $1 AND state = 'paused'",
    )
    .bind(id)
    .execute(tx)
    .await?
    .rows_affected()
        > 0)
}
