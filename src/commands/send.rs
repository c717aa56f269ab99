//! `herald send`: deliver an issue to every active subscriber, once.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use sha2::{Digest, Sha256};

use super::check::load_one;
use super::{user_error, UserError};
use crate::cli::SendArgs;
use crate::config::Settings;
use crate::domain::{describe_millis, parse_send_time, IssueSlug};
use crate::render::{self, EmailContext, RenderedEmail, Templates};
use crate::send::campaign::{
    cancel_scheduled_issue, deliver, schedule, start_or_resume, CampaignRequest, Cancellation,
    Conclusion, Scheduling, Started,
};
use crate::send::lock::join;
use crate::send::message::MessageFactory;
use crate::send::progress::Progress;
use crate::send::relays::Relays;
use crate::send::test_copy;
use crate::send::transport::Transport;
use crate::send::worker::{Counters, RunEnd, SendOptions};
use crate::send::{AnyTransport, Connection};
use crate::store::campaigns::{self, Campaign};
use crate::store::deliveries::{self, Queue};
use crate::store::{now_millis, Location, Store};

pub fn send_options(settings: &Settings, args: &SendArgs) -> SendOptions {
    let mut options = SendOptions::from_settings(&settings.send);
    if let Some(concurrency) = args.concurrency {
        options.concurrency = usize::from(concurrency);
    }
    if let Some(rate) = args.rate {
        options.rate = rate;
    }
    options
}

pub fn run(settings: &Settings, args: &SendArgs, quiet: bool) -> anyhow::Result<ExitCode> {
    // One thread does the work of an unsigned send (about 80 µs of CPU a
    // message) with a third less CPU than a pool, whose threads wake each
    // other at every reply (bench/RESULTS.md, "PostgreSQL, claims and
    // commits"). RSA signing costs about a millisecond a message, so a
    // DKIM-signed send spreads over the cores.
    let mut builder = if settings.send.dkim_key_file.is_some() {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    let runtime = builder
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(send(settings, args, quiet))
}

async fn send(settings: &Settings, args: &SendArgs, quiet: bool) -> anyhow::Result<ExitCode> {
    if args.cancel {
        return cancel(settings, args).await;
    }
    // Read before the issue is rendered: a mistyped time fails at once.
    let at = match &args.at {
        Some(text) => Some(
            parse_send_time(text, &settings.time_zone()?, jiff::Timestamp::now())
                .map_err(|e| user_error(e.to_string()))?,
        ),
        None => None,
    };
    let source = std::fs::read(&args.issue).ok();
    let issue = load_one(settings, &args.issue)?;
    let templates = Templates::load(&settings.templates_dir())?;
    let context = EmailContext {
        site_title: &settings.site.title,
        language: &settings.site.language,
    };
    // Test copies and dry runs show the email as it is; a campaign renders
    // its own, once, when it is created (its tracked links name it).
    let untracked = || render::render_email(&issue, &context, &templates);
    let web_url = settings.issue_url(issue.slug.as_str()).to_string();
    let transport = if args.dry_run {
        AnyTransport::Stub
    } else {
        AnyTransport::from_settings(settings)?
    };

    if let Some(address) = &args.to {
        return send_test_copy(settings, untracked()?, web_url, &transport, address).await;
    }
    if let Some(at) = at {
        let issue_hash = hex::encode(Sha256::digest(source.unwrap_or_default()));
        let from = settings.from_mailbox()?;
        let request = campaign_request(
            settings,
            args,
            &issue,
            &issue_hash,
            (&context, &templates),
            from.email.domain(),
        );
        return schedule_send(settings, args, at, &request).await;
    }

    let location = settings.database()?;
    if let (true, Location::Sqlite(path)) = (args.dry_run, &location) {
        if !path.exists() {
            // A dry run changes nothing, not even by creating the database.
            println!(
                "dry run: no database at {}, so no subscribers: nothing would go out",
                path.display()
            );
            return Ok(ExitCode::SUCCESS);
        }
    }
    let store = Store::connect(&location).await?;
    if args.dry_run {
        let slug = issue.slug.to_string();
        return dry_run(settings, &store, untracked()?, web_url, &slug).await;
    }

    let Some(membership) = join(&store, "send").await? else {
        return Err(user_error(
            "another `herald send` is running on this database; wait for it to finish",
        ));
    };

    // Nothing is touched until the server has answered once: with the server
    // down, the run ends here with nothing marked sent.
    let probe = transport.connect().await.map_err(|e| {
        user_error(format!(
            "cannot reach the mail server ({}): {e}. Nothing was sent; run `herald send` again when it is reachable",
            transport.describe()
        ))
    })?;
    probe.close().await;

    let issue_hash = hex::encode(Sha256::digest(source.unwrap_or_default()));
    let from = settings.from_mailbox()?;
    let request = campaign_request(
        settings,
        args,
        &issue,
        &issue_hash,
        (&context, &templates),
        from.email.domain(),
    );
    let campaign = match start_or_resume(&store, &request, now_millis()).await? {
        Started::AlreadyFinished(campaign) => {
            let finished = campaign
                .finished_at
                .and_then(chrono::DateTime::from_timestamp_millis);
            println!(
                "{} was already sent (campaign {}, finished {}); nobody is mailed twice. \
                 `herald status {}` shows the details; `--force-new` sends it to everybody again",
                issue.slug,
                campaign.id,
                finished.map(|t| t.to_rfc3339()).unwrap_or_default(),
                issue.slug
            );
            return Ok(ExitCode::SUCCESS);
        }
        Started::Scheduled(campaign) => {
            return Err(scheduled_refusal(settings, args, &campaign, &issue_hash));
        }
        Started::Ready {
            campaign,
            created_with,
            changed_since,
            resumed_from_pause,
        } => {
            if let Some(recipients) = created_with {
                tracing::info!(
                    "campaign {}: {recipients} active subscriber(s) queued",
                    campaign.id
                );
            }
            if changed_since {
                eprintln!(
                    "warning: {} changed since this campaign began; resuming with the content rendered then \
                     (use --force-new to send the new version to everybody)",
                    args.issue.display()
                );
            }
            if let Some(reason) = resumed_from_pause {
                eprintln!("resuming paused campaign {} ({reason})", campaign.id);
            }
            campaign
        }
    };
    membership
        .release_orphans(&store, Queue::Campaign(campaign.id))
        .await?;

    run_campaign(settings, args, &store, &campaign, quiet).await
}

/// `herald send ISSUE.md` while the issue waits for its scheduled time
/// (or with `--force-new`): nothing starts early; the way out is named.
fn scheduled_refusal(
    settings: &Settings,
    args: &SendArgs,
    campaign: &Campaign,
    issue_hash: &str,
) -> anyhow::Error {
    let path = args.issue.display();
    if campaign.issue_hash != issue_hash {
        eprintln!(
            "warning: {path} changed since it was scheduled; the version rendered then is what \
             goes out (cancel and schedule it again to send the new one)"
        );
    }
    user_error(format!(
        "{} is scheduled for {} (campaign {}); `herald worker` or `herald serve` starts it then. \
         To send it now instead: `herald send --cancel {path}`, then `herald send {path}`",
        campaign.issue_slug,
        scheduled_time(settings, campaign),
        campaign.id,
    ))
}

/// When a campaign is (or was) scheduled, in the site's time zone.
fn scheduled_time(settings: &Settings, campaign: &Campaign) -> String {
    let zone = settings.time_zone().unwrap_or(jiff::tz::TimeZone::UTC);
    campaign
        .scheduled_at
        .map(|at| describe_millis(at, &zone))
        .unwrap_or_else(|| "no recorded time".into())
}

/// What a campaign of `issue` sends, the same whether it starts now or is
/// scheduled.
fn campaign_request<'a>(
    settings: &'a Settings,
    args: &SendArgs,
    issue: &'a crate::issue::Issue,
    issue_hash: &'a str,
    (context, templates): (&'a EmailContext<'a>, &'a Templates),
    message_id_domain: &'a str,
) -> CampaignRequest<'a> {
    CampaignRequest {
        issue,
        issue_hash,
        context,
        templates,
        track_clicks: settings.tracking.clicks.then_some(&settings.site.base_url),
        force_new: args.force_new,
        message_id_domain,
    }
}

/// `herald send --at`: records the issue, rendered now, as a campaign that
/// starts at `at`; sends nothing.
async fn schedule_send(
    settings: &Settings,
    args: &SendArgs,
    at: jiff::Timestamp,
    request: &CampaignRequest<'_>,
) -> anyhow::Result<ExitCode> {
    let store = Store::connect(&settings.database()?).await?;
    let scheduling = schedule(&store, request, at.as_millisecond(), now_millis()).await;
    store.close().await;
    let path = args.issue.display();
    match scheduling? {
        Scheduling::Scheduled(campaign) => {
            println!(
                "{} is scheduled for {} (campaign {}): `herald worker` or `herald serve` starts \
                 it then, with whoever is subscribed at that moment. `herald send --cancel {path}` \
                 cancels it",
                campaign.issue_slug,
                scheduled_time(settings, &campaign),
                campaign.id
            );
            Ok(ExitCode::SUCCESS)
        }
        Scheduling::AlreadyScheduled(campaign) => Err(user_error(format!(
            "{} is already scheduled for {} (campaign {}); to change the time, cancel it first \
             with `herald send --cancel {path}`, then schedule it again",
            campaign.issue_slug,
            scheduled_time(settings, &campaign),
            campaign.id
        ))),
        Scheduling::InProgress(campaign) => Err(user_error(format!(
            "{} is being sent (campaign {} is {}); `herald send {path}` resumes it, and it \
             cannot be scheduled as well",
            campaign.issue_slug,
            campaign.id,
            campaign.state.as_str()
        ))),
        Scheduling::AlreadySent(campaign) => Err(user_error(format!(
            "{} was already sent (campaign {}); nobody is mailed twice. `--force-new --at TIME` \
             schedules it for everybody again",
            campaign.issue_slug, campaign.id
        ))),
    }
}

/// `herald send --cancel ISSUE`: the issue's scheduled send will not start.
async fn cancel(settings: &Settings, args: &SendArgs) -> anyhow::Result<ExitCode> {
    let given = args.issue.to_string_lossy();
    let slug = super::status::slug_of(settings, &given)?;
    let slug = IssueSlug::parse(&slug).map_err(|e| {
        user_error(format!(
            "--cancel {}: neither an issue file nor a slug: {e}",
            crate::domain::quote_input(&given)
        ))
    })?;
    let location = settings.database()?;
    if let Location::Sqlite(path) = &location {
        if !path.exists() {
            // Nothing was ever scheduled, and cancelling creates nothing.
            return Err(user_error(format!(
                "{slug} has no scheduled send to cancel"
            )));
        }
    }
    let store = Store::connect(&location).await?;
    let cancellation = cancel_scheduled_issue(&store, slug.as_str(), now_millis()).await;
    store.close().await;
    match cancellation? {
        Cancellation::Cancelled(campaign) => {
            println!(
                "cancelled: {slug} will not be sent at {} (campaign {}); nothing was sent",
                scheduled_time(settings, &campaign),
                campaign.id
            );
            Ok(ExitCode::SUCCESS)
        }
        Cancellation::AlreadyStarted(campaign) => Err(user_error(format!(
            "{slug} cannot be cancelled: campaign {} has started (it is {}); `herald status {slug}` \
             shows where it stands",
            campaign.id,
            campaign.state.as_str()
        ))),
        Cancellation::AlreadyCancelled(_) | Cancellation::NothingScheduled => Err(user_error(
            format!("{slug} has no scheduled send to cancel"),
        )),
    }
}

async fn run_campaign(
    settings: &Settings,
    args: &SendArgs,
    store: &Store,
    campaign: &Campaign,
    quiet: bool,
) -> anyhow::Result<ExitCode> {
    let options = send_options(settings, args);
    let mut relays = Relays::from_settings(settings)?;
    if let Some(concurrency) = args.concurrency {
        // --concurrency is every relay's connection count, its own included.
        relays = relays.with_concurrency(usize::from(concurrency));
    }
    let due = pending_count(store, Queue::Campaign(campaign.id)).await?;
    let counters = Arc::new(Counters::default());
    let progress = Progress::start(counters.clone(), due, quiet);
    let started = Instant::now();
    let connections: usize = (0..relays.routes.len())
        .map(|relay| relays.concurrency_of(relay, options.concurrency))
        .sum();
    tracing::info!(
        "sending {:?} to {due} recipient(s) via {}, {connections} connection(s)",
        campaign.subject,
        relays.describe(),
    );
    let delivered = deliver(
        settings,
        store,
        campaign,
        &relays,
        &options,
        counters.clone(),
        async {
            let _ = tokio::signal::ctrl_c().await;
        },
    )
    .await;
    progress.finish().await;
    let (
        end,
        Conclusion {
            counts,
            next_due,
            paused,
        },
    ) = delivered?;
    let elapsed = started.elapsed();
    let remaining = counts.remaining();

    let (sent, deferred, failed) = counters.snapshot();
    let rate = sent as f64 / elapsed.as_secs_f64().max(0.001);
    println!(
        "this run: sent {sent}, deferred {deferred}, failed {failed} ({} bounced) in {:.1} s ({rate:.0}/s)",
        counters.bounced.load(std::sync::atomic::Ordering::Relaxed),
        elapsed.as_secs_f64()
    );
    println!(
        "campaign {}: {} sent, {} failed, {} skipped (left the list), {} still to go",
        campaign.id, counts.sent, counts.failed, counts.skipped, remaining
    );
    for relay in settings.relays() {
        if let Some(dir) = relay.url.trim().strip_prefix("file://") {
            println!(
                "messages are in {}",
                settings.resolve(std::path::Path::new(dir)).display()
            );
        }
    }
    match end {
        RunEnd::Paused(reason) => {
            eprintln!(
                "paused: {reason}. The mail server looks broken; check `herald status`, then run `herald send` again to resume"
            );
            Err(anyhow::Error::new(UserError(format!(
                "campaign {} paused",
                campaign.id
            ))))
        }
        RunEnd::Interrupted => {
            eprintln!("interrupted: run `herald send` again to continue where this run stopped");
            Ok(ExitCode::from(130))
        }
        // Paused from the dashboard: the workers stopped claiming.
        RunEnd::Drained if remaining > 0 && paused.is_some() => {
            let reason = paused.unwrap_or_default();
            println!("paused ({reason}); resume it from the dashboard, or run `herald send` again");
            Ok(ExitCode::SUCCESS)
        }
        RunEnd::Drained if remaining > 0 => {
            if let Some(at) = next_due.and_then(chrono::DateTime::from_timestamp_millis) {
                println!("{remaining} deferred; the next retry is due at {at}; run `herald send` again then");
            }
            Ok(ExitCode::SUCCESS)
        }
        RunEnd::Drained => {
            println!("finished");
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn pending_count(store: &Store, queue: Queue) -> anyhow::Result<u64> {
    let mut tx = store.begin_read().await?;
    let counts = deliveries::count_deliveries_by_state(&mut tx, queue).await?;
    tx.commit().await?;
    Ok(u64::try_from(counts.remaining()).unwrap_or(0))
}

async fn send_test_copy(
    settings: &Settings,
    email: RenderedEmail,
    web_url: String,
    transport: &AnyTransport,
    address: &str,
) -> anyhow::Result<ExitCode> {
    let recipient =
        crate::domain::SubscriberEmail::parse(address).map_err(|e| user_error(e.to_string()))?;
    let reply = test_copy::send_test_copy(settings, email, web_url, transport, &recipient)
        .await
        .map_err(|e| match e {
            test_copy::TestCopyError::Unexpected(e) => e,
            refused => user_error(refused.to_string()),
        })?;
    println!(
        "test copy sent to {recipient}: {} {}",
        reply.code.unwrap_or(250),
        reply.text
    );
    Ok(ExitCode::SUCCESS)
}

async fn dry_run(
    settings: &Settings,
    store: &Store,
    email: RenderedEmail,
    web_url: String,
    slug: &str,
) -> anyhow::Result<ExitCode> {
    let mut tx = store.begin().await?;
    let counts = crate::store::subscribers::count_by_state(&mut tx).await?;
    let existing = campaigns::find_current_campaign(&mut tx, slug).await?;
    tx.commit().await?;
    let active = counts
        .iter()
        .find(|(s, _)| s == "active")
        .map_or(0, |(_, n)| *n);
    let subject = email.subject.clone();
    let factory = MessageFactory::new(settings, email, web_url)?;
    let (_, sample) = factory.build(
        None,
        "subscriber@example.com",
        "dry-run",
        "<dry-run@example.com>",
    )?;
    match existing {
        Some(campaign) if campaign.state == campaigns::CampaignState::Scheduled => println!(
            "dry run: {slug} is scheduled for {} (campaign {}); `herald send` would not start it early",
            scheduled_time(settings, &campaign),
            campaign.id
        ),
        Some(campaign) => println!(
            "dry run: campaign {} for {slug} exists ({}); `herald send` would resume it",
            campaign.id,
            campaign.state.as_str()
        ),
        None => println!("dry run: `herald send` would queue {active} message(s) for {slug}"),
    }
    println!(
        "each about {} KB, subject {:?}, via {}",
        sample.len() / 1024,
        subject,
        AnyTransport::from_settings(settings)?.describe()
    );
    Ok(ExitCode::SUCCESS)
}
