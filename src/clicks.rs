//! Counting clicks on tracked item links (`[tracking] clicks`; README
//! "Link clicks"). Below `http`, which only parses the request and answers:
//! [`ClickCounter::follow`] finds where a link leads, decides whether a
//! person or a program clicked ([`classify`]), and counts it, in one write
//! transaction.
//!
//! The redirect leads only to a URL stored when Herald rewrote the link:
//! nothing in the request is ever sent back as a location, so the route
//! cannot be made into an open redirect.

use anyhow::Context;
use url::Url;

use crate::config::TrackingSettings;
use crate::domain::ClickKey;
use crate::store::clicks::{self, ClickKind, ClickedDelivery};
use crate::store::{Millis, Store};

/// User-Agent fragments of mail scanners, link previewers and scripts,
/// compared without case. Short on purpose (README "Link clicks" lists
/// them): security gateways that pass for browsers are caught by the
/// time window instead, and a long list mostly misfires.
pub const SCANNER_AGENTS: &[&str] = &[
    "bot",
    "crawler",
    "spider",
    "preview",
    "barracuda",
    "proofpoint",
    "mimecast",
    "urldefense",
    "safelinks",
    "zscaler",
    "trendmicro",
    "python-requests",
    "curl/",
    "wget/",
    "go-http-client",
    "headlesschrome",
];

/// What the request says about who is clicking.
#[derive(Debug, Clone, Copy)]
pub struct ClickRequest<'a> {
    /// HEAD: a program checking the link; people's browsers GET.
    pub head: bool,
    pub user_agent: Option<&'a str>,
    /// The `s` parameter of a per-subscriber link, as received.
    pub token: Option<&'a str>,
}

/// A person's click or a program's: HEAD requests, a missing or known
/// scanner User-Agent, and clicks within `window_secs` after `sent_at`
/// (when the mail went out) are programs'.
pub fn classify(
    request: &ClickRequest,
    sent_at: Millis,
    now: Millis,
    window_secs: u64,
) -> ClickKind {
    let agent = request.user_agent.map(str::trim).unwrap_or_default();
    let agent = agent.to_ascii_lowercase();
    let window = i64::try_from(window_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
    if request.head
        || agent.is_empty()
        || SCANNER_AGENTS
            .iter()
            .any(|fragment| agent.contains(fragment))
        || now.saturating_sub(sent_at) < window
    {
        ClickKind::Bot
    } else {
        ClickKind::Human
    }
}

/// Follows and counts clicks for `herald serve`. Cheap to clone.
#[derive(Clone)]
pub struct ClickCounter {
    store: Store,
    tracking: TrackingSettings,
    /// Checks per-subscriber tokens; `None` unless `per_subscriber`.
    key: Option<ClickKey>,
}

impl ClickCounter {
    /// Loads (or makes) the token key when `per_subscriber` is on.
    pub async fn new(store: Store, tracking: TrackingSettings) -> anyhow::Result<ClickCounter> {
        let key = if tracking.per_subscriber {
            let mut tx = store.begin().await?;
            let key = crate::store::secrets::click_key(&mut tx, crate::store::now_millis())
                .await
                .context("loading the click token key")?;
            tx.commit().await?;
            Some(key)
        } else {
            None
        };
        Ok(ClickCounter {
            store,
            tracking,
            key,
        })
    }

    /// Where link `link_index` of campaign `campaign_id` leads, counting
    /// the click; `None` when Herald never made that link. Links already
    /// mailed keep working after `[tracking] clicks` is turned off, but
    /// are no longer counted.
    pub async fn follow(
        &self,
        campaign_id: i64,
        link_index: i64,
        request: &ClickRequest<'_>,
        now: Millis,
    ) -> anyhow::Result<Option<Url>> {
        // Looked up before any write: requests for links that do not exist
        // (probes, mangled URLs) never queue for SQLite's one writer.
        let mut read = self.store.begin_read().await?;
        let found = clicks::find_link(&mut read, campaign_id, link_index).await?;
        read.commit().await?;
        let Some(link) = found else {
            return Ok(None);
        };
        // Checked again here: a row edited by hand must not redirect to
        // `javascript:` or a relative path.
        let url = Url::parse(&link.url)
            .ok()
            .filter(|url| matches!(url.scheme(), "http" | "https"))
            .with_context(|| {
                format!("campaign {campaign_id} link {link_index} is not an http(s) URL")
            })?;
        let mut tx = self.store.begin().await?;
        if self.tracking.clicks {
            let delivery = self.delivery(&mut tx, campaign_id, request).await?;
            let sent_at = delivery
                .and_then(|d| d.sent_at)
                .unwrap_or(link.campaign_started_at);
            let kind = classify(request, sent_at, now, self.tracking.bot_window_secs);
            clicks::count_click(&mut tx, link.id, kind).await?;
            if let Some(subscriber_id) = delivery.and_then(|d| d.subscriber_id) {
                clicks::insert_click_event(&mut tx, link.id, subscriber_id, kind, now).await?;
            }
        }
        // Whatever the mode now, per-subscriber clicks past their time go.
        let days = i64::try_from(self.tracking.per_subscriber_days).unwrap_or(i64::MAX / 2);
        let cutoff = now.saturating_sub(days.saturating_mul(86_400_000));
        clicks::delete_click_events_before(&mut tx, cutoff).await?;
        tx.commit().await?;
        Ok(Some(url))
    }

    /// The copy a valid token names, in per-subscriber mode only.
    async fn delivery(
        &self,
        tx: &mut crate::store::Tx<'_>,
        campaign_id: i64,
        request: &ClickRequest<'_>,
    ) -> anyhow::Result<Option<ClickedDelivery>> {
        let (Some(key), Some(token)) = (&self.key, request.token) else {
            return Ok(None);
        };
        let Some(delivery_id) = key.delivery_of(token) else {
            return Ok(None);
        };
        Ok(clicks::clicked_delivery(tx, delivery_id, campaign_id).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BROWSER: &str =
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15";

    fn request(head: bool, user_agent: Option<&str>) -> ClickRequest<'_> {
        ClickRequest {
            head,
            user_agent,
            token: None,
        }
    }

    #[test]
    fn people_and_programs_are_told_apart() {
        let sent = 1_000_000;
        let later = sent + 3_600_000;
        let cases: &[(bool, Option<&str>, Millis, ClickKind)] = &[
            (false, Some(BROWSER), later, ClickKind::Human),
            (true, Some(BROWSER), later, ClickKind::Bot),
            (false, None, later, ClickKind::Bot),
            (false, Some("  "), later, ClickKind::Bot),
            (
                false,
                Some("Mozilla/5.0 (compatible; Barracuda Sentinel)"),
                later,
                ClickKind::Bot,
            ),
            (false, Some("python-requests/2.31"), later, ClickKind::Bot),
            (
                false,
                Some("Slackbot-LinkExpanding 1.0"),
                later,
                ClickKind::Bot,
            ),
            // Too soon after the mail went out, whoever says they are.
            (false, Some(BROWSER), sent + 29_999, ClickKind::Bot),
            (false, Some(BROWSER), sent + 30_000, ClickKind::Human),
            // A clock behind the send time is "soon", not an overflow.
            (false, Some(BROWSER), sent - 5_000, ClickKind::Bot),
        ];
        for (head, agent, now, expected) in cases {
            assert_eq!(
                classify(&request(*head, *agent), sent, *now, 30),
                *expected,
                "head={head} agent={agent:?} now={now}"
            );
        }
        assert_eq!(
            classify(&request(false, Some(BROWSER)), sent, later, u64::MAX),
            ClickKind::Bot
        );
        assert_eq!(
            classify(&request(false, Some(BROWSER)), sent, sent, 0),
            ClickKind::Human
        );
    }
}
