//! `GET /metrics` on the admin listener, in the Prometheus (OpenMetrics)
//! text format, for a scraper holding `HERALD_METRICS_TOKEN`.
//!
//! What the database knows (deliveries, subscribers, sign-ups, replies,
//! bounces) is read at each scrape from the counters the store's triggers
//! keep, a few dozen rows however large the list, so that every process
//! sending for the list (`herald worker` on other machines too) is counted,
//! not only this one. HTTP requests are counted here, in the process, by a
//! middleware on the public and the admin routers.

use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::config::Secret;
use crate::http::webhooks::verify::secrets_equal;
use crate::store::{dashboard, subscribers::SubscriberState, Store};

/// Which listener served a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    Public,
    Admin,
}

impl Listener {
    fn as_str(self) -> &'static str {
        match self {
            Listener::Public => "public",
            Listener::Admin => "admin",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    /// `public` or `admin`.
    listener: String,
    /// The route pattern (`/confirm/{token}`), never the raw path: a path
    /// holds tokens, and one label per URL would grow without bound.
    route: String,
    status: u16,
}

/// HTTP requests by listener, route and status; shared by the routers'
/// middleware and `/metrics`. Cheap to clone.
#[derive(Clone, Default)]
pub struct HttpMetrics {
    requests: Family<RequestLabels, Counter>,
}

/// The route label of a request no route matched (the site's files, a 404).
const UNMATCHED_ROUTE: &str = "(fallback)";

impl HttpMetrics {
    /// Counts every response of `router` under `listener`.
    pub fn track(&self, router: Router, listener: Listener) -> Router {
        let metrics = self.clone();
        router.layer(axum::middleware::from_fn(
            move |request: Request, next: Next| {
                let metrics = metrics.clone();
                async move { metrics.count(listener, request, next).await }
            },
        ))
    }

    async fn count(&self, listener: Listener, request: Request, next: Next) -> Response {
        let route = request
            .extensions()
            .get::<MatchedPath>()
            .map_or(UNMATCHED_ROUTE, MatchedPath::as_str)
            .to_string();
        let response = next.run(request).await;
        let labels = RequestLabels {
            listener: listener.as_str().to_string(),
            route,
            status: response.status().as_u16(),
        };
        self.requests.get_or_create(&labels).inc();
        response
    }
}

/// What `/metrics` needs.
#[derive(Clone)]
pub struct MetricsState {
    pub store: Store,
    /// `HERALD_METRICS_TOKEN`; `None` turns `/metrics` off (404).
    pub token: Option<Arc<Secret>>,
    pub http: HttpMetrics,
}

/// `GET /metrics`, for the admin router to merge outside its session
/// check: a scraper has a token, not a session, and a session does not
/// open it.
pub fn metrics_routes(state: MetricsState) -> Router {
    if state.token.is_none() {
        tracing::info!("/metrics is off: set HERALD_METRICS_TOKEN to serve it to a scraper");
    }
    Router::new()
        .route("/metrics", get(serve_metrics))
        .with_state(state)
}

async fn serve_metrics(State(state): State<MetricsState>, headers: HeaderMap) -> Response {
    let Some(token) = &state.token else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if !bearer_matches(&headers, token) {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "a bearer token is required\n",
        )
            .into_response();
    }
    match render(&state).await {
        Ok(text) => (
            [
                (
                    header::CONTENT_TYPE,
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
                (header::CACHE_CONTROL, "no-store"),
            ],
            text,
        )
            .into_response(),
        Err(error) => {
            tracing::error!("/metrics: {error:#}");
            (StatusCode::INTERNAL_SERVER_ERROR, "metrics unavailable\n").into_response()
        }
    }
}

/// `Authorization: Bearer <token>`, compared in constant time.
fn bearer_matches(headers: &HeaderMap, token: &Secret) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .is_some_and(|given| secrets_equal(given.trim().as_bytes(), token.expose().as_bytes()))
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeliveryLabels {
    kind: String,
    state: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClassLabel {
    class: String,
}

/// One scrape: a registry made afresh from the counters, plus the HTTP
/// requests counted so far.
async fn render(state: &MetricsState) -> anyhow::Result<String> {
    let mut tx = state.store.begin_read().await?;
    let deliveries = dashboard::deliveries_by_kind_and_state(&mut tx).await?;
    let subscribers = dashboard::subscriber_counts(&mut tx).await?;
    let totals = dashboard::metric_totals(&mut tx).await?;
    tx.commit().await?;

    let mut registry = Registry::with_prefix("herald");
    let by_kind_and_state = Family::<DeliveryLabels, Gauge>::default();
    let sent = Counter::<u64>::default();
    for count in &deliveries {
        let labels = DeliveryLabels {
            kind: count.kind.clone(),
            state: count.state.as_str().to_string(),
        };
        by_kind_and_state.get_or_create(&labels).set(count.count);
        if count.state == crate::store::deliveries::DeliveryState::Sent {
            sent.inc_by(non_negative(count.count));
        }
    }
    registry.register(
        "deliveries",
        "Deliveries (issue mail, confirmations, welcomes) by kind and state",
        by_kind_and_state,
    );
    registry.register("messages_sent", "Messages accepted by a relay", sent);

    let by_state = Family::<StateLabel, Gauge>::default();
    for state in SubscriberState::ALL {
        // Every state, zero too, so a query never sees a series vanish.
        let total: i64 = subscribers
            .iter()
            .filter(|c| c.state == state)
            .map(|c| c.count)
            .sum();
        by_state
            .get_or_create(&StateLabel {
                state: state.as_str().to_string(),
            })
            .set(total);
    }
    registry.register("subscribers", "Subscribers by state", by_state);
    register_totals(&mut registry, &totals);
    registry.register(
        "http_requests",
        "HTTP requests by listener, route and status",
        state.http.requests.clone(),
    );

    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry)?;
    Ok(text)
}

fn register_totals(registry: &mut Registry, totals: &[(String, i64)]) {
    let total = |name: &str| {
        totals
            .iter()
            .find(|(n, _)| n == name)
            .map_or(0, |(_, value)| non_negative(*value))
    };
    let replies = Family::<ClassLabel, Counter>::default();
    let bounces = Family::<ClassLabel, Counter>::default();
    for class in ["2xx", "4xx", "5xx", "other"] {
        let labels = ClassLabel {
            class: class.to_string(),
        };
        replies
            .get_or_create(&labels)
            .inc_by(total(&format!("replies_{class}")));
    }
    for class in ["hard", "soft"] {
        let labels = ClassLabel {
            class: class.to_string(),
        };
        bounces
            .get_or_create(&labels)
            .inc_by(total(&format!("bounces_{class}")));
    }
    let complaints = Counter::<u64>::default();
    complaints.inc_by(total("complaints"));
    let signups = Counter::<u64>::default();
    signups.inc_by(total("signups"));
    registry.register(
        "smtp_replies",
        "SMTP replies that ended a delivery attempt, by class",
        replies,
    );
    registry.register(
        "bounces",
        "Bounces reported, by class (hard, soft)",
        bounces,
    );
    registry.register("complaints", "Spam complaints reported", complaints);
    registry.register(
        "signups",
        "Addresses added to the list (form, import, command line)",
        signups,
    );
}

/// Counters cannot go below zero; a counter row can only be negative if
/// the table was edited by hand, and then zero is the honest floor.
fn non_negative(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}
