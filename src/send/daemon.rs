//! `herald worker`: a long-running sender. It sends whatever is due, the
//! campaigns that are sending and the transactional mail (confirmations,
//! welcomes) with their retries, until it is told to stop. On PostgreSQL any
//! number of workers, on any machine, share the work through their claims;
//! on SQLite a worker leaves a queue to whichever process already sends it.

use std::sync::Arc;
use std::time::Duration;

use super::any::AnyTransport;
use super::campaign::{deliver, sending_campaigns};
use super::envelope::{load_verp, EnvelopeSender};
use super::lock::join;
use super::outbox::{run_transactional_worker, OutboxSignal};
use super::relays::Relays;
use super::worker::{Counters, RunEnd, SendOptions, TransactionalMail};
use crate::config::Settings;
use crate::store::deliveries::Queue;
use crate::store::Store;

/// How often an idle worker looks for campaigns to send.
const CAMPAIGN_POLL: Duration = Duration::from_secs(2);

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
    let campaigns = tokio::spawn(serve_campaigns(settings.clone(), store.clone(), stopped));
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

/// Sends every sending campaign, oldest first, and looks again every
/// [`CAMPAIGN_POLL`]. A campaign that pauses (its server failing) stays
/// paused until the editor resumes it with `herald send`.
async fn serve_campaigns(
    settings: Arc<Settings>,
    store: Store,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let relays = Relays::from_settings(&settings)?;
    let options = SendOptions::from_settings(&settings.send);
    loop {
        if *stopped.borrow() {
            return Ok(());
        }
        match send_due_campaigns(&settings, &store, &relays, &options, &stopped).await {
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
    stopped: &tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<bool> {
    let mut worked = false;
    for campaign in sending_campaigns(store).await? {
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
