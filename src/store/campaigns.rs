//! Campaigns: one send of one issue, and the snapshot of its recipients.

use super::{query, Row};

use super::{try_get_parsed, Backend, Millis, Tx};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CampaignState {
    Sending,
    Paused,
    Finished,
}

impl CampaignState {
    pub fn as_str(self) -> &'static str {
        match self {
            CampaignState::Sending => "sending",
            CampaignState::Paused => "paused",
            CampaignState::Finished => "finished",
        }
    }

    /// None for anything else: the CHECK constraint allows only these, so
    /// another word means a corrupt database, and guessing `sending` would
    /// mail a paused or finished campaign again.
    fn parse(s: &str) -> Option<CampaignState> {
        match s {
            "sending" => Some(CampaignState::Sending),
            "paused" => Some(CampaignState::Paused),
            "finished" => Some(CampaignState::Finished),
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
    pub finished_at: Option<Millis>,
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
}

const CAMPAIGN_COLUMNS: &str =
    "id, issue_slug, issue_number, issue_hash, subject, html, text, state, \
                                pause_reason, created_at, finished_at";

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

/// The most recent campaign of any issue, for `herald status`.
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

pub async fn find_latest_campaign(tx: &mut Tx<'_>) -> sqlx::Result<Option<Campaign>> {
    let sql = format!("SELECT {CAMPAIGN_COLUMNS} FROM campaigns ORDER BY id DESC LIMIT 1");
    let row = query(&sql).fetch_optional(tx).await?;
    row.as_ref().map(campaign_from_row).transpose()
}

pub async fn insert_campaign(
    tx: &mut Tx<'_>,
    new: &NewCampaign<'_>,
    now: Millis,
) -> sqlx::Result<i64> {
    let row = query(
        "INSERT INTO campaigns (issue_slug, issue_number, issue_hash, subject, html, text, state, created_at, message_nonce)
         VALUES ($1, $2, $3, $4, $5, $6, 'sending', $7, $8)
         RETURNING id",
    )
    .bind(new.issue_slug)
    .bind(new.issue_number)
    .bind(new.issue_hash)
    .bind(new.subject)
    .bind(new.html)
    .bind(new.text)
    .bind(now)
    .bind(new.message_nonce)
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
