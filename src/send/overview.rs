//! Where a campaign stands, assembled in one place for the admin site (its
//! pages and its live progress): counts by state, progress with a rate and
//! an ETA, bounce and complaint rates, unsubscribes in the week after it
//! started, and its links ranked by clicks.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::bounce::policy::{rates, Rates};
use crate::store::campaigns::{self, CampaignState, CampaignSummary};
use crate::store::clicks::{self, LinkClicks};
use crate::store::deliveries::{self, CampaignReportCounts, DeliveryCounts, Queue};
use crate::store::subscribers::{self, SubscriberState};
use crate::store::{Millis, Store, Tx};

/// The window after a campaign's start in which unsubscribes are counted
/// as its: most readers open a newsletter within days.
pub const UNSUBSCRIBE_WINDOW: Millis = 7 * 24 * 60 * 60 * 1000;

/// Links shown per campaign, most clicked first.
pub const TOP_LINKS: i64 = 50;

/// A campaign's page.
pub struct CampaignOverview {
    pub campaign: CampaignSummary,
    pub progress: Progress,
    pub reports: CampaignReportCounts,
    pub rates: Rates,
    /// Unsubscribes within [`UNSUBSCRIBE_WINDOW`] after it started; `None`
    /// for one that has not started.
    pub unsubscribes_7d: Option<i64>,
    pub links: Vec<LinkClicks>,
}

/// How far a campaign's sending is: what the live page shows and the event
/// stream sends, as JSON in exactly this shape.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Progress {
    /// The campaign's state, typed; `state` is its word, for the JSON.
    #[serde(skip)]
    pub campaign_state: CampaignState,
    pub state: &'static str,
    pub counts: DeliveryCounts,
    /// Rows with an outcome: sent, failed or skipped.
    pub done: i64,
    pub total: i64,
    /// Messages sent per minute, lately (or over the whole send so far).
    pub rate_per_min: f64,
    /// Seconds until the rest is sent at that rate; `None` when nothing is
    /// sending (paused, finished) or no rate is known yet.
    pub eta_secs: Option<u64>,
}

impl Progress {
    /// From the counts and the first and last send times.
    fn new(state: CampaignState, counts: DeliveryCounts, span: SentSpan) -> Progress {
        let done = counts.sent + counts.failed + counts.skipped;
        let total = done + counts.remaining();
        let rate_per_min = average_rate_per_min(span).unwrap_or(0.0);
        let mut progress = Progress {
            campaign_state: state,
            state: state.as_str(),
            counts,
            done,
            total,
            rate_per_min: 0.0,
            eta_secs: None,
        };
        progress.set_rate(state, rate_per_min);
        progress
    }

    fn set_rate(&mut self, state: CampaignState, rate_per_min: f64) {
        self.rate_per_min = (rate_per_min * 10.0).round() / 10.0;
        let remaining = self.total - self.done;
        self.eta_secs = (state == CampaignState::Sending && rate_per_min > 0.0 && remaining > 0)
            .then(|| (remaining as f64 * 60.0 / rate_per_min).ceil() as u64);
    }
}

/// The first and last send times and the number sent
/// (`deliveries::sent_time_span`).
pub type SentSpan = (Option<Millis>, Option<Millis>, i64);

/// Messages per minute over the whole send so far: what `herald status`
/// shows (per second) and the dashboard before it has a recent rate.
pub fn average_rate_per_min(span: SentSpan) -> Option<f64> {
    match span {
        (Some(first), Some(last), sent) if last > first => {
            Some(sent as f64 * 60_000.0 / (last - first) as f64)
        }
        _ => None,
    }
}

/// The newest campaigns with their counts, newest first.
pub async fn campaign_list(
    store: &Store,
    limit: i64,
) -> anyhow::Result<Vec<(CampaignSummary, DeliveryCounts)>> {
    let mut tx = store.begin_read().await?;
    let mut list = Vec::new();
    for campaign in campaigns::list_campaigns(&mut tx, limit).await? {
        let counts =
            deliveries::count_deliveries_by_state(&mut tx, Queue::Campaign(campaign.id)).await?;
        list.push((campaign, counts));
    }
    tx.commit().await?;
    Ok(list)
}

/// Everything about one campaign; `None` when there is no such campaign.
pub async fn campaign_overview(store: &Store, id: i64) -> anyhow::Result<Option<CampaignOverview>> {
    let mut tx = store.begin_read().await?;
    let Some(campaign) = campaigns::find_campaign_summary(&mut tx, id).await? else {
        tx.commit().await?;
        return Ok(None);
    };
    let progress = read_progress(&mut tx, &campaign).await?;
    let reports = deliveries::report_counts_of_campaign(&mut tx, id).await?;
    let unsubscribes_7d = match campaign.started_at() {
        Some(start) => Some(
            subscribers::count_events_between(
                &mut tx,
                SubscriberState::Unsubscribed,
                start,
                start + UNSUBSCRIBE_WINDOW,
            )
            .await?,
        ),
        None => None,
    };
    let links = clicks::ranked_links(&mut tx, id, TOP_LINKS).await?;
    tx.commit().await?;
    let rates = rates(
        reports.sent,
        reports.hard_bounces,
        reports.soft_bounces,
        reports.complaints,
    );
    Ok(Some(CampaignOverview {
        campaign,
        progress,
        reports,
        rates,
        unsubscribes_7d,
        links,
    }))
}

/// A campaign's progress now; `None` when there is no such campaign.
pub async fn campaign_progress(store: &Store, id: i64) -> anyhow::Result<Option<Progress>> {
    let mut tx = store.begin_read().await?;
    let campaign = campaigns::find_campaign_summary(&mut tx, id).await?;
    let progress = match &campaign {
        Some(campaign) => Some(read_progress(&mut tx, campaign).await?),
        None => None,
    };
    tx.commit().await?;
    Ok(progress)
}

async fn read_progress(tx: &mut Tx<'_>, campaign: &CampaignSummary) -> anyhow::Result<Progress> {
    let counts = deliveries::count_deliveries_by_state(tx, Queue::Campaign(campaign.id)).await?;
    let span = deliveries::sent_time_span(tx, campaign.id).await?;
    Ok(Progress::new(campaign.state, counts, span))
}

/// The recent rate of a send, from what was done at successive looks: the
/// whole send's average hides a relay that slowed down a minute ago.
pub struct RateMeter {
    samples: VecDeque<(Instant, i64)>,
    window: Duration,
}

impl RateMeter {
    pub fn new(window: Duration) -> RateMeter {
        RateMeter {
            samples: VecDeque::new(),
            window,
        }
    }

    /// Notes `progress` seen now and puts the recent rate (and the ETA
    /// from it) in it, once the window holds a few seconds of movement;
    /// until then the whole send's average stands.
    pub fn update(&mut self, progress: &mut Progress, now: Instant) {
        let state = progress.campaign_state;
        self.samples.push_back((now, progress.done));
        while self
            .samples
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > self.window)
        {
            self.samples.pop_front();
        }
        let Some(&(first_at, first_done)) = self.samples.front() else {
            return;
        };
        let elapsed = now.duration_since(first_at);
        if elapsed >= Duration::from_secs(3) && progress.done > first_done {
            let per_min = (progress.done - first_done) as f64 * 60.0 / elapsed.as_secs_f64();
            progress.set_rate(state, per_min);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(queued: i64, sent: i64) -> DeliveryCounts {
        DeliveryCounts {
            queued,
            sent,
            ..DeliveryCounts::default()
        }
    }

    #[test]
    fn progress_has_a_rate_and_an_eta_only_while_sending() {
        // 60 sent over one minute: 60 per minute, 120 to go: two minutes.
        let span = (Some(0), Some(60_000), 60);
        let sending = Progress::new(CampaignState::Sending, counts(120, 60), span);
        assert_eq!((sending.done, sending.total), (60, 180));
        assert_eq!(sending.rate_per_min, 60.0);
        assert_eq!(sending.eta_secs, Some(120));
        let paused = Progress::new(CampaignState::Paused, counts(120, 60), span);
        assert_eq!(paused.eta_secs, None);
        let fresh = Progress::new(CampaignState::Sending, counts(10, 0), (None, None, 0));
        assert_eq!((fresh.rate_per_min, fresh.eta_secs), (0.0, None));
    }

    #[test]
    fn the_meter_follows_the_recent_rate() {
        let mut meter = RateMeter::new(Duration::from_secs(30));
        let start = Instant::now();
        let state = CampaignState::Sending;
        // Fast at first (over the whole send), then 10 per second lately.
        let mut progress = Progress::new(state, counts(1000, 100), (Some(0), Some(1_000), 100));
        meter.update(&mut progress, start);
        for second in 1..=10 {
            let mut now = Progress::new(
                state,
                counts(1000 - 10 * second, 100 + 10 * second),
                (Some(0), Some(1_000), 100),
            );
            meter.update(&mut now, start + Duration::from_secs(second as u64));
            progress = now;
        }
        assert_eq!(progress.rate_per_min, 600.0);
        assert_eq!(progress.eta_secs, Some(90));
    }
}
