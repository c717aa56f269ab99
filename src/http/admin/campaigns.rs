//! The campaigns pages: the list, one campaign with its live progress, and
//! the pause, resume and cancel buttons.

use std::convert::Infallible;
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use futures_util::Stream;
use serde::Serialize;

use super::{internal_error, AdminState, CsrfToken};
use crate::domain::describe_millis;
use crate::render::Nav;
use crate::send::campaign::{cancel_campaign, pause_campaign, resume_campaign, Cancellation};
use crate::send::overview::{
    campaign_list, campaign_overview, campaign_progress, CampaignOverview, Progress, RateMeter,
};
use crate::store::campaigns::{CampaignState, CampaignSummary};
use crate::store::deliveries::DeliveryCounts;
use crate::store::now_millis;

/// Campaigns the list shows, newest first.
const LISTED: i64 = 100;
/// How often a live page hears of its campaign's progress.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);
/// The span over which the live rate is measured.
const RATE_WINDOW: Duration = Duration::from_secs(30);

pub fn routes() -> Router<AdminState> {
    Router::new()
        .route("/campaigns", get(list))
        .route("/campaigns/{id}", get(detail))
        .route("/campaigns/{id}/events", get(events))
        .route("/campaigns/{id}/pause", post(pause))
        .route("/campaigns/{id}/resume", post(resume))
        .route("/campaigns/{id}/cancel", post(cancel))
}

#[derive(Serialize)]
struct ListView {
    campaigns: Vec<ListRow>,
}

#[derive(Serialize)]
struct ListRow {
    id: i64,
    slug: String,
    subject: String,
    state: &'static str,
    /// When it was scheduled for, started, or was created.
    when: String,
    sent: i64,
    total: i64,
}

async fn list(State(state): State<AdminState>, Extension(csrf): Extension<CsrfToken>) -> Response {
    let campaigns = match campaign_list(&state.store, LISTED).await {
        Ok(campaigns) => campaigns,
        Err(error) => return internal_error(&error),
    };
    let zone = state
        .settings
        .time_zone()
        .unwrap_or(jiff::tz::TimeZone::UTC);
    let rows = campaigns
        .into_iter()
        .map(|(campaign, counts)| ListRow {
            when: describe_millis(campaign.scheduled_at.unwrap_or(campaign.created_at), &zone),
            id: campaign.id,
            slug: campaign.issue_slug,
            subject: campaign.subject,
            state: campaign.state.as_str(),
            sent: counts.sent,
            total: total(&counts),
        })
        .collect();
    let view = ListView { campaigns: rows };
    state.render(
        "Campaigns",
        Nav::Campaigns,
        csrf.as_str(),
        "campaigns",
        &view,
    )
}

fn total(counts: &DeliveryCounts) -> i64 {
    counts.sent + counts.failed + counts.skipped + counts.remaining()
}

#[derive(Serialize)]
struct DetailView<'a> {
    csrf: &'a str,
    id: i64,
    slug: &'a str,
    subject: &'a str,
    state: &'static str,
    pause_reason: Option<&'a str>,
    scheduled_at: Option<String>,
    created_at: String,
    finished_at: Option<String>,
    progress: &'a Progress,
    eta: String,
    bounce_rate: String,
    complaint_rate: String,
    hard_bounces: i64,
    soft_bounces: i64,
    complaints: i64,
    warnings: &'a [String],
    unsubscribes_7d: String,
    links: Vec<LinkRow<'a>>,
    can_pause: bool,
    can_resume: bool,
    can_cancel: bool,
}

#[derive(Serialize)]
struct LinkRow<'a> {
    rank: usize,
    url: &'a str,
    human_clicks: i64,
    bot_clicks: i64,
}

async fn detail(
    State(state): State<AdminState>,
    Extension(csrf): Extension<CsrfToken>,
    Path(id): Path<i64>,
) -> Response {
    let overview = match campaign_overview(&state.store, id).await {
        Ok(Some(overview)) => overview,
        Ok(None) => return (StatusCode::NOT_FOUND, "no such campaign").into_response(),
        Err(error) => return internal_error(&error),
    };
    let zone = state
        .settings
        .time_zone()
        .unwrap_or(jiff::tz::TimeZone::UTC);
    let view = detail_view(&overview, csrf.as_str(), &zone);
    let title = format!("Campaign {}: {}", id, overview.campaign.issue_slug);
    state.render(&title, Nav::Campaigns, csrf.as_str(), "campaign", &view)
}

fn detail_view<'a>(
    overview: &'a CampaignOverview,
    csrf: &'a str,
    zone: &jiff::tz::TimeZone,
) -> DetailView<'a> {
    let campaign: &CampaignSummary = &overview.campaign;
    let percent = |share: f64| format!("{:.2}%", share * 100.0);
    DetailView {
        csrf,
        id: campaign.id,
        slug: &campaign.issue_slug,
        subject: &campaign.subject,
        state: campaign.state.as_str(),
        pause_reason: campaign.pause_reason.as_deref(),
        scheduled_at: campaign.scheduled_at.map(|at| describe_millis(at, zone)),
        created_at: describe_millis(campaign.created_at, zone),
        finished_at: campaign.finished_at.map(|at| describe_millis(at, zone)),
        progress: &overview.progress,
        eta: overview
            .progress
            .eta_secs
            .map(describe_secs)
            .unwrap_or_else(|| "–".into()),
        bounce_rate: percent(overview.rates.hard_bounce_rate),
        complaint_rate: percent(overview.rates.complaint_rate),
        hard_bounces: overview.reports.hard_bounces,
        soft_bounces: overview.reports.soft_bounces,
        complaints: overview.reports.complaints,
        warnings: &overview.rates.warnings,
        unsubscribes_7d: overview
            .unsubscribes_7d
            .map(|n| n.to_string())
            .unwrap_or_else(|| "–".into()),
        links: overview
            .links
            .iter()
            .enumerate()
            .map(|(rank, link)| LinkRow {
                rank: rank + 1,
                url: &link.url,
                human_clicks: link.human_clicks,
                bot_clicks: link.bot_clicks,
            })
            .collect(),
        can_pause: campaign.state == CampaignState::Sending,
        can_resume: campaign.state == CampaignState::Paused,
        can_cancel: campaign.state == CampaignState::Scheduled,
    }
}

/// As admin.js shows it.
fn describe_secs(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs} s"),
        60..3600 => format!("{} min", (secs + 30) / 60),
        _ => format!("{:.1} h", secs as f64 / 3600.0),
    }
}

/// `GET /campaigns/{id}/events`: a `progress` event about every second
/// while the campaign is not final; one last event when it becomes final;
/// and the stream ends when the server stops.
async fn events(State(state): State<AdminState>, Path(id): Path<i64>) -> Response {
    match campaign_progress(&state.store, id).await {
        Ok(Some(_)) => {}
        Ok(None) => return (StatusCode::NOT_FOUND, "no such campaign").into_response(),
        Err(error) => return internal_error(&error),
    }
    Sse::new(progress_stream(state, id))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

fn progress_stream(state: AdminState, id: i64) -> impl Stream<Item = Result<Event, Infallible>> {
    struct Looking {
        state: AdminState,
        meter: RateMeter,
        first: bool,
        over: bool,
    }
    let start = Looking {
        state,
        meter: RateMeter::new(RATE_WINDOW),
        first: true,
        over: false,
    };
    futures_util::stream::unfold(start, move |mut looking| async move {
        if looking.over {
            return None;
        }
        if !looking.first {
            let mut stopping = looking.state.stopping.clone();
            tokio::select! {
                _ = stopping.wait_for(|stop| *stop) => return None,
                () = tokio::time::sleep(PROGRESS_EVERY) => {}
            }
        }
        looking.first = false;
        if *looking.state.stopping.borrow() {
            return None;
        }
        let mut progress = match campaign_progress(&looking.state.store, id).await {
            Ok(Some(progress)) => progress,
            Ok(None) => return None,
            Err(error) => {
                tracing::warn!("admin site: campaign {id}'s progress: {error:#}");
                return None;
            }
        };
        looking.meter.update(&mut progress, Instant::now());
        looking.over = matches!(
            progress.campaign_state,
            CampaignState::Finished | CampaignState::Cancelled
        );
        let event = Event::default()
            .event("progress")
            .json_data(&progress)
            .unwrap_or_else(|_| Event::default().event("progress"));
        Some((Ok(event), looking))
    })
}

/// Back to the campaign's page, which shows what the action did.
fn back_to(id: i64) -> Response {
    Redirect::to(&format!("/campaigns/{id}")).into_response()
}

async fn pause(State(state): State<AdminState>, Path(id): Path<i64>) -> Response {
    match pause_campaign(&state.store, id).await {
        Ok(paused) => {
            if paused {
                tracing::info!("admin site: campaign {id} paused");
            }
            back_to(id)
        }
        Err(error) => internal_error(&error),
    }
}

async fn resume(State(state): State<AdminState>, Path(id): Path<i64>) -> Response {
    match resume_campaign(&state.store, id).await {
        Ok(resumed) => {
            if resumed {
                tracing::info!("admin site: campaign {id} resumed");
                if let Some(adopted) = &state.adopted {
                    adopted.adopt(id);
                }
            }
            back_to(id)
        }
        Err(error) => internal_error(&error),
    }
}

async fn cancel(State(state): State<AdminState>, Path(id): Path<i64>) -> Response {
    match cancel_campaign(&state.store, id, now_millis()).await {
        Ok(Cancellation::Cancelled(_)) => {
            tracing::info!("admin site: scheduled campaign {id} cancelled");
            back_to(id)
        }
        Ok(Cancellation::NothingScheduled) => {
            (StatusCode::NOT_FOUND, "no such campaign").into_response()
        }
        Ok(Cancellation::AlreadyStarted(_) | Cancellation::AlreadyCancelled(_)) => back_to(id),
        Err(error) => internal_error(&error),
    }
}
