use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;

use crate::bounce::imap::{run_poller, ImapConfig};
use crate::bounce::Recorder;
use crate::cli::ServeArgs;
use crate::clicks::ClickCounter;
use crate::config::Settings;
use crate::domain::AdminPasswordHash;
use crate::http::admin::{admin_router, AdminState};
use crate::http::clicks::click_routes;
use crate::http::server::{serve, ServerLimits};
use crate::http::subscribers::{subscriber_routes, SubscriberWeb};
use crate::http::webhooks::{webhook_routes, WebhookState};
use crate::http::{router, AppState};
use crate::render::Templates;
use crate::send::daemon::{serve_campaigns, start_outbox, AdoptedCampaigns, CampaignScope};
use crate::send::outbox::OutboxSignal;
use crate::store::Store;
use crate::subscription::{SubscriberMail, Subscriptions};

use super::{shutdown_signal, success, user_error};

/// Serves the built site until Ctrl-C (or SIGTERM). The CLI stays
/// synchronous; the runtime lives only as long as this command.
pub fn run(settings: Settings, args: &ServeArgs) -> anyhow::Result<ExitCode> {
    let listen = args
        .listen
        .as_deref()
        .unwrap_or(&settings.server.listen)
        .to_string();
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
        // Campaigns the editor resumes on the dashboard, for this server's
        // campaign loop to send; none with --web-only (a worker sends them).
        let adopted = (!args.web_only).then(AdoptedCampaigns::default);
        let (worker, scheduled) = if args.web_only {
            (None, None)
        } else {
            // Scheduled campaigns start (and are sent) here when their time
            // comes, so one `herald serve` is enough to schedule an issue.
            let campaigns = serve_campaigns(
                Arc::new(settings.clone()),
                store.clone(),
                CampaignScope::Scheduled(adopted.clone().unwrap_or_default()),
                stopped.clone(),
            );
            let scheduled = tokio::spawn(async move {
                if let Err(error) = campaigns.await {
                    tracing::error!("scheduled campaigns will not be sent: {error:#}");
                }
            });
            let outbox = start_outbox(&settings, &store, mail, outbox.clone(), stopped).await?;
            (outbox, Some(scheduled))
        };
        let web = SubscriberWeb::new(store.clone(), Arc::new(settings.clone()), templates, outbox)?;
        let webhooks = WebhookState::new(store.clone(), Arc::new(settings.clone()))?;
        let clicks = ClickCounter::new(store.clone(), settings.tracking.clone()).await?;
        let limits = ServerLimits::from_settings(&settings.server);
        // One signal stops both listeners; event streams on the admin site
        // end on it too, so they do not hold the grace period up.
        let (halt, halted) = tokio::sync::watch::channel(false);
        let admin = start_admin(&settings, &store, limits, adopted, halted.clone()).await?;
        let app = router(AppState::new(settings))
            .merge(click_routes(clicks))
            .merge(subscriber_routes(web))
            .merge(webhook_routes(webhooks));
        println!("serving {} on http://{address}/", output.display());
        tokio::spawn(async move {
            shutdown_signal().await;
            let _ = halt.send(true);
        });
        serve(listener, app, limits, until_halted(halted)).await;
        if let Some(admin) = admin {
            let _ = admin.await;
        }
        let _ = stop.send(true);
        if let Some(worker) = worker {
            let _ = worker.await;
        }
        if let Some(scheduled) = scheduled {
            let _ = scheduled.await;
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

/// Resolves once `halted` turns true (or its sender is gone).
async fn until_halted(mut halted: tokio::sync::watch::Receiver<bool>) {
    let _ = halted.wait_for(|halt| *halt).await;
}

/// The admin site on `[admin] listen`, when HERALD_ADMIN_PASSWORD_HASH is
/// set; without it, one line says it is off and how to turn it on.
async fn start_admin(
    settings: &Settings,
    store: &Store,
    limits: ServerLimits,
    adopted: Option<AdoptedCampaigns>,
    halted: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
    let Some(hash) = &settings.admin_password_hash else {
        println!(
            "admin site off: set HERALD_ADMIN_PASSWORD_HASH (from `herald admin hash-password`) to serve it on {}",
            settings.admin.listen
        );
        return Ok(None);
    };
    let password = AdminPasswordHash::parse(hash.expose()).map_err(|e| user_error(e.0))?;
    let listen = &settings.admin.listen;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| user_error(format!("cannot listen on [admin] listen = {listen}: {e}")))?;
    let address = listener.local_addr()?;
    let state = AdminState::new(
        store.clone(),
        Arc::new(settings.clone()),
        password,
        !address.ip().is_loopback(),
        halted.clone(),
    )?
    .with_adopter(adopted);
    if !address.ip().is_loopback() {
        eprintln!("warning: the admin site listens beyond loopback; serve it over https only (its cookie is Secure)");
    }
    println!("admin site on http://{address}/");
    let app = admin_router(state);
    Ok(Some(tokio::spawn(serve(
        listener,
        app,
        limits,
        until_halted(halted),
    ))))
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
