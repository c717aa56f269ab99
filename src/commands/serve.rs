use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;

use crate::bounce::imap::{run_poller, ImapConfig};
use crate::bounce::Recorder;
use crate::config::Settings;
use crate::http::server::{serve, ServerLimits};
use crate::http::subscribers::{subscriber_routes, SubscriberWeb};
use crate::http::webhooks::{webhook_routes, WebhookState};
use crate::http::{router, AppState};
use crate::render::Templates;
use crate::send::lock::join;
use crate::send::outbox::{run_transactional_worker, OutboxSignal};
use crate::send::worker::SendOptions;
use crate::send::AnyTransport;
use crate::store::deliveries::Queue;
use crate::store::Store;
use crate::subscription::{SubscriberMail, Subscriptions};

use super::{success, user_error};

/// Serves the built site until Ctrl-C (or SIGTERM). The CLI stays
/// synchronous; the runtime lives only as long as this command.
pub fn run(settings: Settings, listen: Option<&str>) -> anyhow::Result<ExitCode> {
    let listen = listen.unwrap_or(&settings.server.listen).to_string();
    let output = settings.output_dir();
    if !output.join("index.html").is_file() {
        eprintln!(
            "warning: {} has no index.html yet; run `herald build` (the server picks it up without a restart)",
            output.display()
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .map_err(|e| user_error(format!("cannot listen on {listen}: {e}")))?;
        let address = listener.local_addr()?;
        let store = Store::connect(&settings.database()?).await?;
        let templates = Arc::new(Templates::load(&settings.templates_dir())?);
        let outbox = OutboxSignal::default();
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let subscriptions = Arc::new(Subscriptions::new(Arc::new(settings.clone()), &templates)?);
        let mail = Arc::new(SubscriberMail::new(store.clone(), subscriptions));
        let poller = start_imap_poller(&settings, &store, stopped.clone()).await?;
        let worker = start_outbox_worker(&settings, &store, mail, outbox.clone(), stopped).await?;
        let web = SubscriberWeb::new(store.clone(), Arc::new(settings.clone()), templates, outbox)?;
        let webhooks = WebhookState::new(store.clone(), Arc::new(settings.clone()))?;
        let limits = ServerLimits::from_settings(&settings.server);
        let app = router(AppState::new(settings))
            .merge(subscriber_routes(web))
            .merge(webhook_routes(webhooks));
        println!("serving {} on http://{address}/", output.display());
        serve(listener, app, limits, shutdown_signal()).await;
        let _ = stop.send(true);
        if let Some(worker) = worker {
            let _ = worker.await;
        }
        if let Some(poller) = poller {
            let _ = poller.await;
        }
        store.close().await;
        anyhow::Ok(())
    })?;
    println!("stopped");
    success()
}

/// Confirmation mail goes out from here, beside the web server, with the
/// same queue and retries as issues. One worker per database: a second
/// `herald serve` on the same list serves pages but leaves the mail to the
/// first.
async fn start_outbox_worker(
    settings: &Settings,
    store: &Store,
    mail: Arc<SubscriberMail>,
    signal: OutboxSignal,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
    let Some(membership) = join(store, "outbox").await? else {
        tracing::warn!(
            "another herald serve sends this database's confirmation mail; this one will not"
        );
        return Ok(None);
    };
    membership
        .release_orphans(store, Queue::Transactional)
        .await?;
    let transport = AnyTransport::from_settings(settings)?;
    let from = crate::send::envelope::EnvelopeSender::new(
        settings.from_mailbox()?.email,
        crate::send::envelope::load_verp(settings, store).await?,
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

/// The bounce mailbox, when `[bounces] imap_url` is set. One poller per
/// database, like the outbox: two would fetch the same messages.
async fn start_imap_poller(
    settings: &Settings,
    store: &Store,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
    let Some(config) =
        ImapConfig::from_settings(settings).map_err(|e| user_error(format!("{e:#}")))?
    else {
        return Ok(None);
    };
    let Some(lock) = store.try_lock("imap").await? else {
        tracing::warn!(
            "another herald serve polls this database's bounce mailbox; this one will not"
        );
        return Ok(None);
    };
    let recorder = Recorder::new(store.clone(), Arc::new(settings.clone()));
    Ok(Some(tokio::spawn(async move {
        let _lock = lock;
        let shutdown = async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        };
        run_poller(config, recorder, shutdown).await;
    })))
}

/// Resolves on Ctrl-C, or on SIGTERM where there is one (service managers
/// and `kill` stop servers that way).
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
