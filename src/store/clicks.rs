//! Link clicks (`[tracking] clicks`): the links each campaign's email was
//! given, their counters, and, only with `[tracking] per_subscriber`, who
//! clicked. README "Link clicks" says what is kept and for how long.

use serde::Serialize;

use super::{query, Millis, Row, Tx};

/// Who a click is taken to come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ClickKind {
    /// Someone reading the mail, as far as Herald can tell.
    Human,
    /// A mail scanner, link previewer or other program (a HEAD request, a
    /// known User-Agent, or too soon after the mail went out).
    Bot,
}

impl ClickKind {
    fn as_flag(self) -> i64 {
        match self {
            ClickKind::Human => 0,
            ClickKind::Bot => 1,
        }
    }
}

/// Records that item link `link_index` (from 1) of campaign `campaign_id`
/// leads to `url`: the only places the redirect sends anyone.
pub async fn insert_link(
    tx: &mut Tx<'_>,
    campaign_id: i64,
    link_index: i64,
    url: &str,
) -> sqlx::Result<()> {
    query("INSERT INTO campaign_links (campaign_id, link_index, url) VALUES ($1, $2, $3)")
        .bind(campaign_id)
        .bind(link_index)
        .bind(url)
        .execute(tx)
        .await?;
    Ok(())
}

/// A link Herald rewrote, as the redirect needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackedLink {
    pub id: i64,
    pub url: String,
    /// When its campaign began: in aggregate mode, clicks soon after are
    /// taken for scanners.
    pub campaign_started_at: Millis,
}

/// The link `/l/<campaign_id>/<link_index>` names, if Herald made it.
pub async fn find_link(
    tx: &mut Tx<'_>,
    campaign_id: i64,
    link_index: i64,
) -> sqlx::Result<Option<TrackedLink>> {
    let row = query(
        "SELECT l.id, l.url, c.created_at
         FROM campaign_links l JOIN campaigns c ON c.id = l.campaign_id
         WHERE l.campaign_id = $1 AND l.link_index = $2",
    )
    .bind(campaign_id)
    .bind(link_index)
    .fetch_optional(tx)
    .await?;
    row.map(|row| {
        Ok(TrackedLink {
            id: row.try_get(0)?,
            url: row.try_get(1)?,
            campaign_started_at: row.try_get(2)?,
        })
    })
    .transpose()
}

/// Adds one click to a link's counter of its kind.
pub async fn count_click(tx: &mut Tx<'_>, link_id: i64, kind: ClickKind) -> sqlx::Result<()> {
    query(
        "UPDATE campaign_links
         SET human_clicks = human_clicks + $1, bot_clicks = bot_clicks + $2
         WHERE id = $3",
    )
    .bind(1 - kind.as_flag())
    .bind(kind.as_flag())
    .bind(link_id)
    .execute(tx)
    .await?;
    Ok(())
}

/// The copy a per-subscriber token names: whose it was (none once they
/// were erased) and when it was accepted by the mail server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClickedDelivery {
    pub subscriber_id: Option<i64>,
    pub sent_at: Option<Millis>,
}

/// Delivery `delivery_id`, if it was campaign `campaign_id`'s: a token of
/// one campaign's copy says nothing about another campaign's links.
pub async fn clicked_delivery(
    tx: &mut Tx<'_>,
    delivery_id: i64,
    campaign_id: i64,
) -> sqlx::Result<Option<ClickedDelivery>> {
    let row =
        query("SELECT subscriber_id, sent_at FROM deliveries WHERE id = $1 AND campaign_id = $2")
            .bind(delivery_id)
            .bind(campaign_id)
            .fetch_optional(tx)
            .await?;
    row.map(|row| {
        Ok(ClickedDelivery {
            subscriber_id: row.try_get(0)?,
            sent_at: row.try_get(1)?,
        })
    })
    .transpose()
}

/// One subscriber's click (per-subscriber mode only).
pub async fn insert_click_event(
    tx: &mut Tx<'_>,
    link_id: i64,
    subscriber_id: i64,
    kind: ClickKind,
    now: Millis,
) -> sqlx::Result<()> {
    query(
        "INSERT INTO click_events (link_id, subscriber_id, bot, clicked_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(link_id)
    .bind(subscriber_id)
    .bind(kind.as_flag())
    .bind(now)
    .execute(tx)
    .await?;
    Ok(())
}

/// Deletes the per-subscriber clicks older than `cutoff`: they are kept
/// only for `[tracking] per_subscriber_days`.
pub async fn delete_click_events_before(tx: &mut Tx<'_>, cutoff: Millis) -> sqlx::Result<u64> {
    Ok(query("DELETE FROM click_events WHERE clicked_at < $1")
        .bind(cutoff)
        .execute(tx)
        .await?
        .rows_affected())
}

/// Deletes every click recorded of one subscriber (erasure). The foreign
/// key would cascade when the subscriber row goes; this says it outright
/// and does not depend on it.
pub async fn delete_click_events_of(tx: &mut Tx<'_>, subscriber_id: i64) -> sqlx::Result<u64> {
    Ok(query("DELETE FROM click_events WHERE subscriber_id = $1")
        .bind(subscriber_id)
        .execute(tx)
        .await?
        .rows_affected())
}

/// One link of a campaign with its counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LinkClicks {
    /// Its number in the email, from 1, as in `/l/<campaign>/<link>`.
    pub link_index: i64,
    pub url: String,
    pub human_clicks: i64,
    pub bot_clicks: i64,
}

fn link_clicks_from_row(row: &Row) -> sqlx::Result<LinkClicks> {
    Ok(LinkClicks {
        link_index: row.try_get("link_index")?,
        url: row.try_get("url")?,
        human_clicks: row.try_get("human_clicks")?,
        bot_clicks: row.try_get("bot_clicks")?,
    })
}

/// A campaign's links, most clicked by people first (then by bots, then
/// in the email's order), at most `limit`: what `herald status` and the
/// dashboard show.
pub async fn ranked_links(
    tx: &mut Tx<'_>,
    campaign_id: i64,
    limit: i64,
) -> sqlx::Result<Vec<LinkClicks>> {
    let rows = query(
        "SELECT link_index, url, human_clicks, bot_clicks FROM campaign_links
         WHERE campaign_id = $1
         ORDER BY human_clicks DESC, bot_clicks DESC, link_index
         LIMIT $2",
    )
    .bind(campaign_id)
    .bind(limit)
    .fetch_all(tx)
    .await?;
    rows.iter().map(link_clicks_from_row).collect()
}
