//! A campaign's life: started (or resumed) in one transaction, concluded
//! after a run. The command only says what happened.

use std::sync::Arc;

use anyhow::Context;

use super::envelope::{load_verp, EnvelopeSender};
use super::message::MessageFactory;
use super::relays::Relays;
use super::transport::Transport;
use super::worker::{run_relays, Counters, MessageSource, RunEnd, SendOptions};
use crate::config::Settings;
use crate::domain::ClickKey;
use crate::issue::Issue;
use crate::render::{
    render_email_with_links, EmailContext, LinkTable, Personalized, RenderedEmail, Templates,
};
use crate::store::campaigns::{self, Campaign, CampaignState, NewCampaign, ScheduledCampaign};
use crate::store::deliveries::{self, DeliveryCounts, Queue};
use crate::store::{clicks, Millis, Store, Tx};
use url::Url;

/// The issue a campaign sends. Its email is rendered only when the
/// campaign is created: a resumed campaign sends what was rendered then.
pub struct CampaignRequest<'a> {
    pub issue: &'a Issue,
    /// SHA-256 of the issue file: a resumed campaign warns when it changed.
    pub issue_hash: &'a str,
    pub context: &'a EmailContext<'a>,
    pub templates: &'a Templates,
    /// `[site] base_url` when `[tracking] clicks` is on: the item links
    /// then lead through `<base_url>l/<campaign>/<n>`.
    pub track_clicks: Option<&'a Url>,
    /// Retire the issue's campaigns and send it to everybody again.
    pub force_new: bool,
    /// The domain of the Message-IDs (the From address's).
    pub message_id_domain: &'a str,
}

/// What starting found.
pub enum Started {
    /// The issue was sent already; nothing to do.
    AlreadyFinished(Campaign),
    /// The issue is scheduled (for later, or `--force-new` was asked of a
    /// scheduled issue): nothing starts now; the editor cancels it first.
    Scheduled(Campaign),
    /// Ready to send: the campaign is `sending`.
    Ready {
        campaign: Campaign,
        /// Recipients queued, when the campaign was created (or its
        /// scheduled time came) now.
        created_with: Option<u64>,
        /// The issue file changed since the campaign began; what was
        /// rendered then is what goes out.
        changed_since: bool,
        /// Why it had paused, when it is being resumed.
        resumed_from_pause: Option<String>,
    },
}

/// Finds the issue's current campaign or creates it with one delivery per
/// active subscriber, gives back claims a killed run left, and marks it
/// sending: all in one write transaction, so whoever is active at that
/// instant gets the issue once. A scheduled campaign whose time has come
/// is started as a worker would start it. Call with the queue's lock held
/// (the orphaned claims are only safe to release then).
pub async fn start_or_resume(
    store: &Store,
    request: &CampaignRequest<'_>,
    now: Millis,
) -> anyhow::Result<Started> {
    let mut tx = store.begin().await?;
    campaigns::wait_for_campaign_starts(&mut tx).await?;
    let current = campaigns::find_current_campaign(&mut tx, request.issue.slug.as_str()).await?;
    if let Some(scheduled) = current.filter(|c| c.state == CampaignState::Scheduled) {
        let due = scheduled.scheduled_at.is_none_or(|at| at <= now);
        let recipients = if due && !request.force_new {
            start_scheduled(&mut tx, &scheduled, request.message_id_domain, now).await?
        } else {
            None
        };
        tx.commit().await?;
        return Ok(match recipients {
            None => Started::Scheduled(scheduled),
            Some(recipients) => Started::Ready {
                changed_since: scheduled.issue_hash != request.issue_hash,
                campaign: Campaign {
                    state: CampaignState::Sending,
                    ..scheduled
                },
                created_with: Some(recipients),
                resumed_from_pause: None,
            },
        });
    }
    if request.force_new {
        let retired = campaigns::retire_campaigns(&mut tx, request.issue.slug.as_str()).await?;
        if retired > 0 {
            tracing::info!(
                "--force-new: starting a new campaign; the previous one is kept for the record"
            );
        }
    }
    let slug = request.issue.slug.as_str();
    let (campaign, created_with) = match campaigns::find_current_campaign(&mut tx, slug).await? {
        Some(campaign) => (campaign, None),
        None => {
            let (id, message_nonce) = create_campaign(&mut tx, request, None, now).await?;
            let recipients = campaigns::snapshot_recipients(
                &mut tx,
                id,
                &message_nonce,
                request.message_id_domain,
                now,
            )
            .await?;
            let campaign = campaigns::find_current_campaign(&mut tx, slug)
                .await?
                .context("the campaign just created")?;
            (campaign, Some(recipients))
        }
    };
    if campaign.state == CampaignState::Finished {
        tx.commit().await?;
        return Ok(Started::AlreadyFinished(campaign));
    }
    let resumed_from_pause = (campaign.state == CampaignState::Paused).then(|| {
        campaign
            .pause_reason
            .clone()
            .unwrap_or_else(|| "no reason recorded".into())
    });
    campaigns::set_campaign_state(&mut tx, campaign.id, CampaignState::Sending, None, now).await?;
    tx.commit().await?;
    Ok(Started::Ready {
        changed_since: campaign.issue_hash != request.issue_hash,
        campaign,
        created_with,
        resumed_from_pause,
    })
}

/// Creates the issue's campaign, `scheduled` for `scheduled_at` or else
/// `sending`, and renders its email: after the row exists, since tracked
/// links name the campaign, and once, however many recipients it has.
/// Returns its id and Message-ID nonce; the caller takes its recipients.
async fn create_campaign(
    tx: &mut Tx<'_>,
    request: &CampaignRequest<'_>,
    scheduled_at: Option<Millis>,
    now: Millis,
) -> anyhow::Result<(i64, String)> {
    let issue = request.issue;
    let message_nonce = uuid::Uuid::new_v4().simple().to_string();
    let new = NewCampaign {
        issue_slug: issue.slug.as_str(),
        issue_number: i64::from(issue.number),
        issue_hash: request.issue_hash,
        subject: &issue.title,
        // Filled in below, in this transaction, once the id is known.
        html: "",
        text: "",
        message_nonce: &message_nonce,
        scheduled_at,
    };
    let id = campaigns::insert_campaign(tx, &new, now).await?;
    let table = request
        .track_clicks
        .map(|base_url| LinkTable::for_issue(issue, base_url, id));
    let email = render_email_with_links(issue, request.context, request.templates, table.as_ref())?;
    for link in table.iter().flat_map(LinkTable::links) {
        clicks::insert_link(tx, id, link.index, link.url.as_str()).await?;
    }
    let (html, text) = (email.html.template(), email.text.template());
    campaigns::set_campaign_content(tx, id, &html, &text).await?;
    Ok((id, message_nonce))
}

/// Starts a scheduled campaign inside the caller's campaign-start
/// transaction: `sending`, one delivery per subscriber active now (not
/// when it was scheduled: who left since is not mailed, who joined is),
/// and the issue's earlier campaigns retired, as `--force-new` does.
/// `None` when it is no longer scheduled: another worker started it, or
/// the editor cancelled it, in between.
async fn start_scheduled(
    tx: &mut crate::store::Tx<'_>,
    campaign: &Campaign,
    message_id_domain: &str,
    now: Millis,
) -> anyhow::Result<Option<u64>> {
    if !campaigns::start_scheduled_campaign(tx, campaign.id).await? {
        return Ok(None);
    }
    let nonce = campaign
        .message_nonce
        .as_deref()
        .with_context(|| format!("scheduled campaign {} has no message nonce", campaign.id))?;
    campaigns::retire_other_campaigns(tx, &campaign.issue_slug, campaign.id).await?;
    let recipients =
        campaigns::snapshot_recipients(tx, campaign.id, nonce, message_id_domain, now).await?;
    Ok(Some(recipients))
}

/// What scheduling found.
pub enum Scheduling {
    /// Scheduled: the campaign waits, rendered, for its time.
    Scheduled(Campaign),
    /// The issue is scheduled already; cancel that first.
    AlreadyScheduled(Campaign),
    /// A campaign of the issue is sending or paused: finish it first.
    InProgress(Campaign),
    /// The issue was sent; `--force-new` schedules it again for everybody.
    AlreadySent(Campaign),
}

/// Records a scheduled campaign: the issue as rendered now, to start at
/// `at`. Its recipients are taken when it starts. Nothing is retired yet:
/// with `--force-new` the earlier campaign stays the issue's record until
/// the new one starts, and again if it is cancelled.
pub async fn schedule(
    store: &Store,
    request: &CampaignRequest<'_>,
    at: Millis,
    now: Millis,
) -> anyhow::Result<Scheduling> {
    let mut tx = store.begin().await?;
    campaigns::wait_for_campaign_starts(&mut tx).await?;
    let current = campaigns::find_current_campaign(&mut tx, request.issue.slug.as_str()).await?;
    let refusal = current.and_then(|campaign| match campaign.state {
        CampaignState::Scheduled => Some(Scheduling::AlreadyScheduled(campaign)),
        CampaignState::Sending | CampaignState::Paused => Some(Scheduling::InProgress(campaign)),
        CampaignState::Finished if !request.force_new => Some(Scheduling::AlreadySent(campaign)),
        CampaignState::Finished | CampaignState::Cancelled => None,
    });
    if let Some(refusal) = refusal {
        tx.commit().await?;
        return Ok(refusal);
    }
    let (id, _) = create_campaign(&mut tx, request, Some(at), now).await?;
    let campaign = campaigns::find_campaign(&mut tx, id)
        .await?
        .context("the campaign just scheduled")?;
    tx.commit().await?;
    Ok(Scheduling::Scheduled(campaign))
}

/// A scheduled campaign that has just started.
pub struct ScheduledStart {
    /// Now `sending`.
    pub campaign: Campaign,
    pub recipients: u64,
    /// How long after its time it started.
    pub late_by: Millis,
}

/// Starts every scheduled campaign whose time has come. Several workers
/// may call this at once: the campaign-start lock (PostgreSQL) or the one
/// writer (SQLite) makes them take turns, and a campaign moves out of
/// `scheduled` once, so exactly one of them starts each.
pub async fn start_due_campaigns(
    store: &Store,
    message_id_domain: &str,
    now: Millis,
) -> anyhow::Result<Vec<ScheduledStart>> {
    // A look first, without the write lock: nearly every poll finds nothing.
    let mut read = store.begin_read().await?;
    let due = campaigns::due_scheduled_campaigns(&mut read, now).await?;
    read.commit().await?;
    if due.is_empty() {
        return Ok(Vec::new());
    }
    let mut tx = store.begin().await?;
    campaigns::wait_for_campaign_starts(&mut tx).await?;
    let mut started = Vec::new();
    for campaign in campaigns::due_scheduled_campaigns(&mut tx, now).await? {
        if let Some(recipients) =
            start_scheduled(&mut tx, &campaign, message_id_domain, now).await?
        {
            started.push(ScheduledStart {
                late_by: now - campaign.scheduled_at.unwrap_or(now),
                campaign: Campaign {
                    state: CampaignState::Sending,
                    ..campaign
                },
                recipients,
            });
        }
    }
    tx.commit().await?;
    Ok(started)
}

/// What cancelling found.
pub enum Cancellation {
    /// Cancelled: it will not start, and the issue may be sent or
    /// scheduled again.
    Cancelled(Campaign),
    /// It has started (or finished): too late to cancel.
    AlreadyStarted(Campaign),
    /// It was cancelled before.
    AlreadyCancelled(Campaign),
    /// No such campaign, or the issue has none scheduled.
    NothingScheduled,
}

/// Cancels the issue's scheduled campaign (`herald send --cancel`).
pub async fn cancel_scheduled_issue(
    store: &Store,
    slug: &str,
    now: Millis,
) -> anyhow::Result<Cancellation> {
    let mut tx = store.begin_read().await?;
    let current = campaigns::find_current_campaign(&mut tx, slug).await?;
    tx.commit().await?;
    match current {
        Some(campaign) if campaign.state == CampaignState::Scheduled => {
            cancel_campaign(store, campaign.id, now).await
        }
        Some(campaign)
            if campaign.state == CampaignState::Finished && campaign.scheduled_at.is_none() =>
        {
            // Sent at once long ago (or current again after a scheduled
            // `--force-new` resend was cancelled): nothing is scheduled.
            Ok(Cancellation::NothingScheduled)
        }
        Some(campaign) => Ok(Cancellation::AlreadyStarted(campaign)),
        None => Ok(Cancellation::NothingScheduled),
    }
}

/// Cancels a scheduled campaign by its id (the admin dashboard's cancel
/// button). Safe against a worker starting it at the same moment: only a
/// campaign still `scheduled` is cancelled, so it is either cancelled or
/// started, never both.
pub async fn cancel_campaign(store: &Store, id: i64, now: Millis) -> anyhow::Result<Cancellation> {
    let mut tx = store.begin().await?;
    campaigns::wait_for_campaign_starts(&mut tx).await?;
    let cancelled = campaigns::cancel_scheduled_campaign(&mut tx, id, now).await?;
    let campaign = campaigns::find_campaign(&mut tx, id).await?;
    tx.commit().await?;
    Ok(match campaign {
        None => Cancellation::NothingScheduled,
        Some(campaign) if cancelled => Cancellation::Cancelled(campaign),
        Some(campaign) if campaign.state == CampaignState::Cancelled => {
            Cancellation::AlreadyCancelled(campaign)
        }
        Some(campaign) => Cancellation::AlreadyStarted(campaign),
    })
}

/// Every scheduled campaign, the next to start first.
pub async fn scheduled_campaigns(store: &Store) -> anyhow::Result<Vec<ScheduledCampaign>> {
    let mut tx = store.begin_read().await?;
    let scheduled = campaigns::list_scheduled_campaigns(&mut tx).await?;
    tx.commit().await?;
    Ok(scheduled)
}

/// Where a campaign stands after a run.
pub struct Conclusion {
    pub counts: DeliveryCounts,
    /// When the next deferred delivery comes due, if any.
    pub next_due: Option<Millis>,
    /// Why it is paused, when the run ended with the campaign paused: by
    /// its failure rate, or by the editor from the dashboard (workers then
    /// stop claiming its rows, and the run drains).
    pub paused: Option<String>,
}

/// Records how a run ended: subscribers who left are skipped once nothing
/// more is due, a paused run pauses the campaign, and a campaign with
/// nothing left to do is finished, whichever run does its last row.
pub async fn conclude(
    store: &Store,
    campaign_id: i64,
    end: &RunEnd,
    now: Millis,
) -> anyhow::Result<Conclusion> {
    super::worker::patiently("concluding the campaign", || {
        conclude_once(store, campaign_id, end, now)
    })
    .await
}

async fn conclude_once(
    store: &Store,
    campaign_id: i64,
    end: &RunEnd,
    now: Millis,
) -> anyhow::Result<Conclusion> {
    let queue = Queue::Campaign(campaign_id);
    let mut tx = store.begin().await?;
    if *end == RunEnd::Drained {
        deliveries::skip_departed_recipients(&mut tx, campaign_id).await?;
    }
    let counts = deliveries::count_deliveries_by_state(&mut tx, queue).await?;
    match end {
        RunEnd::Paused(reason) => {
            campaigns::set_campaign_state(
                &mut tx,
                campaign_id,
                CampaignState::Paused,
                Some(reason),
                now,
            )
            .await?
        }
        _ if counts.remaining() == 0 => {
            campaigns::set_campaign_state(&mut tx, campaign_id, CampaignState::Finished, None, now)
                .await?
        }
        _ => {}
    }
    let next_due = deliveries::next_due_time(&mut tx, campaign_id).await?;
    let now_state = campaigns::find_campaign_summary(&mut tx, campaign_id).await?;
    tx.commit().await?;
    let paused = now_state
        .filter(|campaign| campaign.state == CampaignState::Paused)
        .map(|campaign| {
            campaign
                .pause_reason
                .unwrap_or_else(|| "no reason recorded".into())
        });
    Ok(Conclusion {
        counts,
        next_due,
        paused,
    })
}

/// Sends a campaign's due deliveries, as it was rendered when it started,
/// until none is due, the failure rate pauses it or `interrupt` fires; then
/// concludes it, spreading the messages over `relays`. Other runs, on
/// other machines, may be sending it too.
pub async fn deliver<T: Transport>(
    settings: &Settings,
    store: &Store,
    campaign: &Campaign,
    relays: &Relays<T>,
    options: &SendOptions,
    counters: Arc<Counters>,
    interrupt: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<(RunEnd, Conclusion)> {
    let email = RenderedEmail::new(
        campaign.subject.clone(),
        Personalized::new(&campaign.html, true),
        Personalized::new(&campaign.text, false),
    );
    let web_url = settings.issue_url(&campaign.issue_slug).to_string();
    let factory = MessageFactory::new(settings, email, web_url)?;
    let sender = EnvelopeSender::new(
        factory.from().email.clone(),
        load_verp(settings, store).await?,
    );
    let mut factory = factory.with_envelope_sender(sender);
    if settings.tracking.per_subscriber {
        factory = factory.with_click_key(load_click_key(store).await?);
    }
    let end = run_relays(
        store,
        relays,
        Arc::new(MessageSource::Campaign(Box::new(factory))),
        Queue::Campaign(campaign.id),
        options,
        counters,
        interrupt,
    )
    .await?;
    let conclusion = conclude(store, campaign.id, &end, crate::store::now_millis()).await?;
    Ok((end, conclusion))
}

/// The key of per-subscriber click tokens, made on first use.
async fn load_click_key(store: &Store) -> anyhow::Result<ClickKey> {
    let mut tx = store.begin().await?;
    let key = crate::store::secrets::click_key(&mut tx, crate::store::now_millis()).await?;
    tx.commit().await?;
    Ok(key)
}

/// The campaigns now sending, for a worker to join.
pub async fn sending_campaigns(store: &Store) -> anyhow::Result<Vec<Campaign>> {
    let mut tx = store.begin_read().await?;
    let sending = campaigns::campaigns_in_state(&mut tx, CampaignState::Sending).await?;
    tx.commit().await?;
    Ok(sending)
}

/// Why a campaign paused from the dashboard is paused.
pub const PAUSED_BY_EDITOR: &str = "paused by the editor";

/// Pauses a sending campaign (the dashboard's pause button). Workers stop
/// claiming its rows at their next claim, finish what they hold, and
/// conclude their run; it stays paused until resumed. False when it was
/// not sending.
pub async fn pause_campaign(store: &Store, id: i64) -> anyhow::Result<bool> {
    let mut tx = store.begin().await?;
    let paused = campaigns::pause_sending_campaign(&mut tx, id, PAUSED_BY_EDITOR).await?;
    tx.commit().await?;
    Ok(paused)
}

/// Resumes a paused campaign (the dashboard's resume button, as `herald
/// send ISSUE` does): it is sending again, for `herald worker` (or the
/// `herald serve` whose dashboard resumed it) to pick up. False when it
/// was not paused.
pub async fn resume_campaign(store: &Store, id: i64) -> anyhow::Result<bool> {
    let mut tx = store.begin().await?;
    let resumed = campaigns::resume_paused_campaign(&mut tx, id).await?;
    tx.commit().await?;
    Ok(resumed)
}
