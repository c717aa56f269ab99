//! `herald worker`: a long-running sender. It sends whatever is due, the
//! campaigns that are sending and the transactional mail (confirmations,
//! welcomes) with their retries, until it is told to stop. On PostgreSQL any
//! number of workers, on any machine, share the work through their claims;
//! on SQLite a worker leaves a queue to whichever process already sends it.
//! Scheduled campaigns start here when their time comes (or on the next
//! start, late, if nothing was running then); `herald serve` runs the same
//! loop for scheduled campaigns only.

use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::any::AnyTransport;
use super::campaign::{deliver, sending_campaigns, start_due_campaigns, ScheduledStart};
use super::envelope::{load_verp, EnvelopeSender};
use super::lock::join;
use super::outbox::{run_transactional_worker, OutboxSignal};
use super::relays::Relays;
use super::worker::{Counters, RunEnd, SendOptions, TransactionalMail};
use crate::config::Settings;
use crate::domain::{describe_delay, describe_millis};
use crate::store::campaigns::Campaign;
use crate::store::deliveries::Queue;
use crate::store::{now_millis, Millis, Store};

/// How often an idle worker looks for campaigns to send, and for scheduled
/// campaigns whose time has come.
const CAMPAIGN_POLL: Duration = Duration::from_secs(2);

/// A scheduled campaign that starts later than this after its time is
/// reported as late: a poll or a busy moment costs seconds, so more means
/// nothing was running then (or a long send held this worker).
const LATE_AFTER_MILLIS: Millis = 30_000;

/// Which campaigns a sending loop serves.
#[derive(Debug, Clone)]
pub enum CampaignScope {
    /// Every sending campaign (`herald worker`).
    All,
    /// Only campaigns that were scheduled (`herald serve`): a campaign
    /// started by `herald send` stays with it, so stopping that send with
    /// Ctrl-C stops it, and a server does not take it over unasked. Those
    /// the editor resumed on this server's dashboard were asked for.
    Scheduled(AdoptedCampaigns),
}

impl CampaignScope {
    fn covers(&self, campaign: &Campaign) -> bool {
        match self {
            CampaignScope::All => true,
            CampaignScope::Scheduled(adopted) => {
                campaign.scheduled_at.is_some() || adopted.contains(campaign.id)
            }
        }
    }
}

/// Campaigns a `herald serve` sends although `herald send` started them:
/// the editor resumed them on its dashboard. Kept in memory: after a
/// restart `herald worker` (or `herald send ISSUE`) carries them on.
#[derive(Debug, Clone, Default)]
pub struct AdoptedCampaigns(Arc<std::sync::Mutex<std::collections::HashSet<i64>>>);

impl AdoptedCampaigns {
    pub fn adopt(&self, campaign_id: i64) {
        self.set().insert(campaign_id);
    }

    pub fn contains(&self, campaign_id: i64) -> bool {
        self.set().contains(&campaign_id)
    }

    fn set(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<i64>> {
        // One insert or lookup at a time: a poisoned set is still whole.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Runs until `shutdown` resolves; then finishes the messages in flight,
/// gives back the rest of its claims and returns.
pub async fn run_worker(
    settings: Arc<Settings>,
    store: Store,
    mail: Arc<dyn TransactionalMail>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let signal = OutboxSignal::default();
    let outbox = start_outbox(&settings, &store, mail, signal, stopped.clone()).await?;
    let campaigns = tokio::spawn(serve_campaigns(
        settings.clone(),
        store.clone(),
        CampaignScope::All,
        stopped,
    ));
    shutdown.await;
    tracing::info!("stopping: finishing the messages in flight");
    let _ = stop.send(true);
    if let Some(outbox) = outbox {
        let _ = outbox.await;
    }
    campaigns.await??;
    Ok(())
}

/// Sends the transactional queue until `stopped`, unless another process
/// has it (SQLite). `signal` wakes it when something was queued.
pub async fn start_outbox(
    settings: &Settings,
    store: &Store,
    mail: Arc<dyn TransactionalMail>,
    signal: OutboxSignal,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
    let Some(membership) = join(store, "outbox").await? else {
        tracing::warn!(
            "another process sends this database's confirmation mail; this one will not"
        );
        return Ok(None);
    };
    membership
        .release_orphans(store, Queue::Transactional)
        .await?;
    let transport = AnyTransport::from_settings(settings)?;
    let from = EnvelopeSender::new(
        settings.from_mailbox()?.email,
        load_verp(settings, store).await?,
    );
    let options = SendOptions::from_settings(&settings.send);
    let store = store.clone();
    Ok(Some(tokio::spawn(async move {
        let _membership = membership;
        let shutdown = async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        };
        run_transactional_worker(store, transport, from, mail, options, signal, shutdown).await;
    })))
}

/// Starts scheduled campaigns whose time has come and sends every sending
/// campaign in `scope`, oldest first, looking again every
/// [`CAMPAIGN_POLL`], until `stopped`. A campaign that pauses (its server
/// failing) stays paused until the editor resumes it with `herald send`.
pub async fn serve_campaigns(
    settings: Arc<Settings>,
    store: Store,
    scope: CampaignScope,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let relays = Relays::from_settings(&settings)?;
    let options = SendOptions::from_settings(&settings.send);
    let message_id_domain = settings.from_mailbox()?.email.domain().to_string();
    loop {
        if *stopped.borrow() {
            return Ok(());
        }
        match start_due_campaigns(&store, &message_id_domain, now_millis()).await {
            Ok(started) => started.iter().for_each(|s| report_start(&settings, s)),
            Err(error) => tracing::warn!("starting scheduled campaigns: {error:#}"),
        }
        let sending = send_due_campaigns(&settings, &store, &relays, &options, &scope, &stopped);
        match sending.await {
            Ok(true) => continue,
            Ok(false) => {}
            Err(error) => tracing::warn!("sending campaigns: {error:#}"),
        }
        tokio::select! {
            _ = stopped.wait_for(|stop| *stop) => return Ok(()),
            _ = tokio::time::sleep(CAMPAIGN_POLL) => {}
        }
    }
}

/// One pass over the sending campaigns: whether anything was sent.
async fn send_due_campaigns(
    settings: &Settings,
    store: &Store,
    relays: &Relays<AnyTransport>,
    options: &SendOptions,
    scope: &CampaignScope,
    stopped: &tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<bool> {
    let mut worked = false;
    let in_scope = |campaign: &Campaign| scope.covers(campaign);
    for campaign in sending_campaigns(store).await?.into_iter().filter(in_scope) {
        // On SQLite, a `herald send` of this database may be running: it
        // has the queue, and this worker leaves it alone.
        let Some(membership) = join(store, "send").await? else {
            return Ok(worked);
        };
        membership
            .release_orphans(store, Queue::Campaign(campaign.id))
            .await?;
        let counters = Arc::new(Counters::default());
        let mut stop = stopped.clone();
        let interrupt = async move {
            let _ = stop.wait_for(|stop| *stop).await;
        };
        let (end, conclusion) = deliver(
            settings,
            store,
            &campaign,
            relays,
            options,
            counters.clone(),
            interrupt,
        )
        .await?;
        let (sent, deferred, failed) = counters.snapshot();
        if sent + deferred + failed > 0 {
            worked = true;
            tracing::info!(
                "campaign {}: this worker sent {sent}, deferred {deferred}, failed {failed}; \
                 {} still to go",
                campaign.id,
                conclusion.counts.remaining()
            );
        }
        match end {
            RunEnd::Paused(reason) => {
                tracing::warn!("campaign {} paused: {reason}", campaign.id)
            }
            RunEnd::Interrupted => return Ok(worked),
            RunEnd::Drained => {}
        }
    }
    Ok(worked)
}

/// Logs a scheduled campaign's start: late, and by how much, when it
/// started well after its time; with a warning when its issue file has
/// changed since it was scheduled (what was rendered then goes out).
fn report_start(settings: &Settings, start: &ScheduledStart) {
    let campaign = &start.campaign;
    let zone = settings.time_zone().unwrap_or(jiff::tz::TimeZone::UTC);
    let due = describe_millis(campaign.scheduled_at.unwrap_or_default(), &zone);
    if start.late_by > LATE_AFTER_MILLIS {
        tracing::warn!(
            "campaign {} ({}) was scheduled for {due} and starts now, {} late \
             (no `herald worker` or `herald serve` was sending then); {} recipient(s) queued",
            campaign.id,
            campaign.issue_slug,
            describe_delay(start.late_by),
            start.recipients
        );
    } else {
        tracing::info!(
            "campaign {} ({}) scheduled for {due} starts: {} recipient(s) queued",
            campaign.id,
            campaign.issue_slug,
            start.recipients
        );
    }
    if let Some(path) = changed_issue_file(settings, campaign) {
        tracing::warn!(
            "{} changed since campaign {} was scheduled; sending the version rendered then",
            path.display(),
            campaign.id
        );
    }
}

/// The issue file of `campaign` in the issues folder, when it no longer
/// has the bytes the campaign was rendered from. `None` when it is
/// unchanged or cannot be found (a worker on another machine may have no
/// issues folder at all).
fn changed_issue_file(settings: &Settings, campaign: &Campaign) -> Option<std::path::PathBuf> {
    let files = crate::issue::issue_files(&settings.issues_dir()).ok()?;
    let unchanged = files.iter().any(|path| {
        std::fs::read(path)
            .is_ok_and(|bytes| hex::encode(Sha256::digest(bytes)) == campaign.issue_hash)
    });
    if unchanged {
        return None;
    }
    files.into_iter().find(|path| {
        crate::issue::read_issue(path, &settings.site.base_url)
            .ok()
            .and_then(|checked| checked.issue)
            .is_some_and(|issue| issue.slug.as_str() == campaign.issue_slug)
    })
}
