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
use crate::render::{Personalized, RenderedEmail};
use crate::store::campaigns::{self, Campaign, CampaignState, NewCampaign};
use crate::store::deliveries::{self, DeliveryCounts, Queue};
use crate::store::{Millis, Store};

/// The issue a campaign sends, rendered.
pub struct CampaignRequest<'a> {
    pub issue_slug: &'a str,
    pub issue_number: u32,
    /// SHA-256 of the issue file: a resumed campaign warns when it changed.
    pub issue_hash: &'a str,
    pub email: &'a RenderedEmail,
    /// Retire the issue's campaigns and send it to everybody again.
    pub force_new: bool,
    /// The domain of the Message-IDs (the From address's).
    pub message_id_domain: &'a str,
}

/// What starting found.
pub enum Started {
    /// The issue was sent already; nothing to do.
    AlreadyFinished(Campaign),
    /// Ready to send: the campaign is `sending`.
    Ready {
        campaign: Campaign,
        /// Recipients queued, when the campaign was created now.
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
/// instant gets the issue once. Call with the queue's lock held (the
/// orphaned claims are only safe to release then).
pub async fn start_or_resume(
    store: &Store,
    request: &CampaignRequest<'_>,
    now: Millis,
) -> anyhow::Result<Started> {
    let mut tx = store.begin().await?;
    campaigns::wait_for_campaign_starts(&mut tx).await?;
    if request.force_new {
        let retired = campaigns::retire_campaigns(&mut tx, request.issue_slug).await?;
        if retired > 0 {
            tracing::info!(
                "--force-new: starting a new campaign; the previous one is kept for the record"
            );
        }
    }
    let (campaign, created_with) =
        match campaigns::find_current_campaign(&mut tx, request.issue_slug).await? {
            Some(campaign) => (campaign, None),
            None => {
                let message_nonce = uuid::Uuid::new_v4().simple().to_string();
                let (html, text) = (request.email.html.template(), request.email.text.template());
                let new = NewCampaign {
                    issue_slug: request.issue_slug,
                    issue_number: i64::from(request.issue_number),
                    issue_hash: request.issue_hash,
                    subject: &request.email.subject,
                    html: &html,
                    text: &text,
                    message_nonce: &message_nonce,
                };
                let id = campaigns::insert_campaign(&mut tx, &new, now).await?;
                let recipients = campaigns::snapshot_recipients(
                    &mut tx,
                    id,
                    &message_nonce,
                    request.message_id_domain,
                    now,
                )
                .await?;
                let campaign = campaigns::find_current_campaign(&mut tx, request.issue_slug)
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

/// Where a campaign stands after a run.
pub struct Conclusion {
    pub counts: DeliveryCounts,
    /// When the next deferred delivery comes due, if any.
    pub next_due: Option<Millis>,
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
    tx.commit().await?;
    Ok(Conclusion { counts, next_due })
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
    let factory = factory.with_envelope_sender(sender);
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

/// The campaigns now sending, for a worker to join.
pub async fn sending_campaigns(store: &Store) -> anyhow::Result<Vec<Campaign>> {
    let mut tx = store.begin_read().await?;
    let sending = campaigns::campaigns_in_state(&mut tx, CampaignState::Sending).await?;
    tx.commit().await?;
    Ok(sending)
}
