//! The Subscribers pages: growth per week as a chart drawn on the server,
//! counts by state and by source, search by address, and one subscriber
//! with their history. Every number comes from the counters the store's
//! triggers keep, and the search is a range on the address index, so the
//! pages cost the same on a list of a million.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use serde::{Deserialize, Serialize};

use super::{internal_error, AdminState, CsrfToken};
use crate::render::chart::growth_chart_svg;
use crate::render::Nav;
use crate::store::dashboard::{self, week_start, SubscriberCount, WEEK_MILLIS};
use crate::store::subscribers::{self, Source, Subscriber, SubscriberState};
use crate::store::{now_millis, Millis};

/// Weeks the growth chart shows.
const CHART_WEEKS: usize = 52;
/// Search results shown at most; more means "type more of the address".
const SEARCH_LIMIT: i64 = 50;
/// Longer queries are cut: no address is longer (RFC 5321 path limit).
const MAX_QUERY_CHARS: usize = 254;

pub fn subscriber_pages() -> Router<AdminState> {
    Router::new()
        .route("/subscribers", get(list))
        .route("/subscribers/{id}", get(show))
}

#[derive(Debug, Deserialize)]
struct SearchQuery {
    q: Option<String>,
}

#[derive(Serialize)]
struct Count {
    name: &'static str,
    count: i64,
}

#[derive(Serialize)]
struct Row {
    id: i64,
    email: String,
    state: &'static str,
    source: &'static str,
    created: String,
    created_iso: String,
}

#[derive(Serialize)]
struct ListView {
    chart_svg: String,
    by_state: Vec<Count>,
    by_source: Vec<Count>,
    total: i64,
    query: String,
    searched: bool,
    result_count: usize,
    results: Vec<Row>,
    truncated: bool,
    limit: i64,
}

async fn list(
    State(state): State<AdminState>,
    Extension(csrf): Extension<CsrfToken>,
    Query(search): Query<SearchQuery>,
) -> Response {
    match list_view(&state, search).await {
        Ok(view) => state.render(
            "Subscribers",
            Nav::Subscribers,
            csrf.as_str(),
            "subscribers",
            &view,
        ),
        Err(error) => internal_error(&error),
    }
}

async fn list_view(state: &AdminState, search: SearchQuery) -> anyhow::Result<ListView> {
    let query: String = search
        .q
        .as_deref()
        .unwrap_or_default()
        .trim()
        .chars()
        .take(MAX_QUERY_CHARS)
        .collect();
    let this_week = week_start(now_millis());
    let first_week = this_week - WEEK_MILLIS * (CHART_WEEKS as i64 - 1);
    let mut tx = state.store.begin_read().await?;
    let counts = dashboard::subscriber_counts(&mut tx).await?;
    let weeks = dashboard::weekly_events(&mut tx, first_week).await?;
    // One more than shown, to know whether there are more.
    let found = if query.is_empty() {
        Vec::new()
    } else {
        dashboard::search_by_address(&mut tx, &query, SEARCH_LIMIT + 1).await?
    };
    tx.commit().await?;
    let truncated = found.len() as i64 > SEARCH_LIMIT;
    let results: Vec<Row> = found.iter().take(SEARCH_LIMIT as usize).map(row).collect();
    Ok(ListView {
        chart_svg: growth_chart_svg(&weeks, this_week, CHART_WEEKS),
        by_state: by_state(&counts),
        by_source: by_source(&counts),
        total: counts.iter().map(|c| c.count).sum(),
        searched: !query.is_empty(),
        query,
        result_count: results.len(),
        results,
        truncated,
        limit: SEARCH_LIMIT,
    })
}

fn by_state(counts: &[SubscriberCount]) -> Vec<Count> {
    SubscriberState::ALL
        .into_iter()
        .map(|state| Count {
            name: state.as_str(),
            count: counts
                .iter()
                .filter(|c| c.state == state)
                .map(|c| c.count)
                .sum(),
        })
        .collect()
}

fn by_source(counts: &[SubscriberCount]) -> Vec<Count> {
    [Source::Form, Source::Import, Source::Cli]
        .into_iter()
        .map(|source| Count {
            name: source.as_str(),
            count: counts
                .iter()
                .filter(|c| c.source == source)
                .map(|c| c.count)
                .sum(),
        })
        .collect()
}

fn row(subscriber: &Subscriber) -> Row {
    Row {
        id: subscriber.id,
        email: subscriber.email.clone(),
        state: subscriber.state.as_str(),
        source: subscriber.source.as_str(),
        created: when(subscriber.created_at),
        created_iso: iso(subscriber.created_at),
    }
}

#[derive(Serialize)]
struct HistoryRow {
    at: String,
    at_iso: String,
    state: &'static str,
    reason: String,
}

#[derive(Serialize)]
struct SubscriberView {
    id: i64,
    email: String,
    name: Option<String>,
    state: &'static str,
    source: &'static str,
    created: String,
    created_iso: String,
    changed: String,
    changed_iso: String,
    consent_at: Option<String>,
    consent_ip: Option<String>,
    consent_user_agent: Option<String>,
    history: Vec<HistoryRow>,
}

async fn show(
    State(state): State<AdminState>,
    Extension(csrf): Extension<CsrfToken>,
    Path(id): Path<String>,
) -> Response {
    // A malformed id is as unknown as a missing one.
    let Ok(id) = id.parse::<i64>() else {
        return not_found();
    };
    match subscriber_view(&state, id).await {
        Ok(Some(view)) => {
            let title = view.email.clone();
            state.render(&title, Nav::Subscribers, csrf.as_str(), "subscriber", &view)
        }
        Ok(None) => not_found(),
        Err(error) => internal_error(&error),
    }
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "no such subscriber").into_response()
}

async fn subscriber_view(state: &AdminState, id: i64) -> anyhow::Result<Option<SubscriberView>> {
    let mut tx = state.store.begin_read().await?;
    let Some(subscriber) = subscribers::find_subscriber_by_id(&mut tx, id).await? else {
        return Ok(None);
    };
    let events = subscribers::list_events(&mut tx, id).await?;
    tx.commit().await?;
    Ok(Some(SubscriberView {
        id: subscriber.id,
        email: subscriber.email.clone(),
        name: subscriber.name.clone(),
        state: subscriber.state.as_str(),
        source: subscriber.source.as_str(),
        created: when(subscriber.created_at),
        created_iso: iso(subscriber.created_at),
        changed: when(subscriber.state_changed_at),
        changed_iso: iso(subscriber.state_changed_at),
        consent_at: subscriber.consent_at.map(when),
        consent_ip: subscriber.consent_ip.clone(),
        consent_user_agent: subscriber.consent_user_agent.clone(),
        history: events
            .iter()
            .map(|event| HistoryRow {
                at: when(event.at),
                at_iso: iso(event.at),
                state: event.state.as_str(),
                reason: event.reason.clone(),
            })
            .collect(),
    }))
}

/// A time for people: UTC, to the minute.
fn when(at: Millis) -> String {
    chrono::DateTime::from_timestamp_millis(at)
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default()
}

fn iso(at: Millis) -> String {
    chrono::DateTime::from_timestamp_millis(at)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}
