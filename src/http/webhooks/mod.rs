//! Provider webhooks: bounce and complaint events from Amazon SES (through
//! SNS), Mailgun, SendGrid, Postmark and a generic signed JSON endpoint,
//! recorded through [`Recorder::record`] like every other way in.
//!
//! Every endpoint follows one order: off (404) unless configured; then the
//! request is authenticated (signature, or Postmark's basic auth), its
//! signed timestamp must be fresh and its replay key unseen (else 401,
//! nothing recorded); only then is the body read as events. The replay key
//! is remembered in the database after the events were recorded, so a
//! crash in between loses nothing: the provider's retry is accepted and the
//! recorder's idempotency (the event's `external_id`) keeps it from
//! counting twice.
//!
//! Nothing from a payload reaches a response header or a log line: the log
//! gets fixed reasons and counts, and a payload's text goes only into the
//! report, cleaned (`verify::clean_text`).

mod generic;
mod mailgun;
mod postmark;
mod sendgrid;
mod ses;
mod sns;
pub mod verify;

use std::sync::Arc;

use anyhow::Context;
use axum::extract::DefaultBodyLimit;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;

use crate::bounce::{Channel, Incoming, ParsedReport, Provider, RecordError, Recorder};
use crate::config::Settings;
use crate::store::{now_millis, webhook_replays, Millis, Store};

use verify::{Refusal, ReplayKey};

pub use sns::{sns_string_to_sign, SnsMessage};

/// The largest webhook body accepted. A SendGrid batch or an SES
/// notification with its headers is a few kilobytes; 1 MiB leaves room
/// for big batches and stops a client from making the server buffer more.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Everything the webhook handlers share. Cheap to clone.
#[derive(Clone)]
pub struct WebhookState {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    settings: Arc<Settings>,
    recorder: Recorder,
    sns: sns::SnsVerifier,
    sendgrid_key: Option<p256::ecdsa::VerifyingKey>,
}

impl WebhookState {
    /// Fails when a configured secret cannot be used (SendGrid's key is not
    /// a base64 P-256 public key), naming the variable, never its value.
    pub fn new(store: Store, settings: Arc<Settings>) -> anyhow::Result<WebhookState> {
        let sendgrid_key = settings
            .webhook_secrets
            .sendgrid_verification_key
            .as_ref()
            .map(|key| sendgrid::parse_verification_key(key.expose()))
            .transpose()
            .context("HERALD_SENDGRID_VERIFICATION_KEY")?;
        if settings.webhook_secrets.postmark_password.is_some()
            && settings.webhooks.postmark_username.is_none()
        {
            tracing::warn!(
                "HERALD_POSTMARK_WEBHOOK_PASSWORD is set but [webhooks] postmark_username is not; /webhooks/postmark stays off"
            );
        }
        let sns = sns::SnsVerifier::new(&settings.webhooks.ses_certificate_hosts)?;
        Ok(WebhookState {
            inner: Arc::new(Inner {
                recorder: Recorder::new(store.clone(), settings.clone()),
                store,
                settings,
                sns,
                sendgrid_key,
            }),
        })
    }

    fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    fn max_age_secs(&self) -> u64 {
        self.inner.settings.webhooks.max_age_secs
    }
}

/// `POST /webhooks/{ses,mailgun,sendgrid,postmark,generic}`, with their
/// state and a body limit.
pub fn webhook_routes(state: WebhookState) -> Router {
    Router::new()
        .route("/webhooks/ses", post(ses::receive))
        .route("/webhooks/mailgun", post(mailgun::receive))
        .route("/webhooks/sendgrid", post(sendgrid::receive))
        .route("/webhooks/postmark", post(postmark::receive))
        .route("/webhooks/generic", post(generic::receive))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// One provider event, read and cleaned, ready for the recorder.
#[derive(Debug, Clone)]
pub struct WebhookEvent {
    /// The event's own JSON (one element of a batch), kept as the report's
    /// raw text.
    pub raw: Vec<u8>,
    /// The envelope sender the provider reports, which may carry our VERP
    /// tag.
    pub verp_address: Option<String>,
    /// The provider's id for the event, for the recorder's idempotency.
    pub external_id: Option<String>,
    pub report: ParsedReport,
}

/// What goes wrong in a webhook request. The body of each response is
/// fixed text: nothing of the request is echoed.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The endpoint is not configured.
    #[error("not configured")]
    Off,
    #[error("refused: {}", .0.as_str())]
    Refused(Refusal),
    /// Authentic, but from an SNS topic that is not ours to accept.
    #[error("topic not accepted")]
    ForeignTopic,
    /// Authentic but unreadable; the detail is for the log only.
    #[error("malformed body: {0}")]
    Malformed(String),
    /// Something Herald needs is down (the database is busy, the SNS
    /// certificate cannot be fetched): the provider should retry.
    #[error("unavailable: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<Refusal> for WebhookError {
    fn from(refusal: Refusal) -> Self {
        WebhookError::Refused(refusal)
    }
}

impl From<sqlx::Error> for WebhookError {
    fn from(error: sqlx::Error) -> Self {
        WebhookError::Unavailable(format!("database: {error}"))
    }
}

impl From<RecordError> for WebhookError {
    fn from(error: RecordError) -> Self {
        match error {
            RecordError::Unavailable(why) => WebhookError::Unavailable(why),
            RecordError::Other(e) => WebhookError::Unexpected(e),
        }
    }
}

impl IntoResponse for WebhookError {
    fn into_response(self) -> Response {
        let (status, body) = match &self {
            WebhookError::Off => (StatusCode::NOT_FOUND, "not found\n"),
            WebhookError::Refused(refusal) => {
                tracing::warn!(reason = refusal.as_str(), "webhook request refused");
                (StatusCode::UNAUTHORIZED, "unauthorized\n")
            }
            WebhookError::ForeignTopic => {
                tracing::warn!("SNS message from a topic not in [webhooks] ses_topic_arns");
                (StatusCode::FORBIDDEN, "topic not accepted\n")
            }
            WebhookError::Malformed(detail) => {
                // Debug formatting escapes whatever of the payload the
                // parser quoted.
                tracing::warn!(detail = ?detail, "webhook body not understood");
                (StatusCode::BAD_REQUEST, "malformed body\n")
            }
            WebhookError::Unavailable(detail) => {
                tracing::error!(detail = ?detail, "webhook not recorded; the provider will retry");
                (StatusCode::SERVICE_UNAVAILABLE, "try again later\n")
            }
            WebhookError::Unexpected(error) => {
                tracing::error!(error = ?format!("{error:#}"), "webhook failed");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal error\n")
            }
        };
        (
            status,
            [
                (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            body,
        )
            .into_response()
    }
}

/// Refuses a request whose key was accepted before. Checked before the
/// events are read so that a replay costs one indexed lookup.
async fn refuse_replay(
    state: &WebhookState,
    key: &ReplayKey,
    now: Millis,
) -> Result<(), WebhookError> {
    let mut tx = state.inner.store.begin().await?;
    let seen = webhook_replays::is_remembered(&mut tx, &key.key, now).await?;
    tx.commit().await?;
    if seen {
        return Err(Refusal::Replayed.into());
    }
    Ok(())
}

/// Remembers an accepted request's key (and forgets the aged-out ones).
/// Returns false when another front end accepted the same request in the
/// meantime: the recorder saw it as a duplicate, and this one is a replay.
async fn remember(
    state: &WebhookState,
    key: &ReplayKey,
    now: Millis,
) -> Result<bool, WebhookError> {
    let mut tx = state.inner.store.begin().await?;
    webhook_replays::forget_expired(&mut tx, now).await?;
    let first = webhook_replays::remember(&mut tx, &key.key, key.expires_at, now).await?;
    tx.commit().await?;
    Ok(first)
}

/// Records an authenticated request's events and remembers its key; the
/// answer counts what was new. The request was checked against replays
/// (`refuse_replay`) before its body was read.
async fn record_events(
    state: &WebhookState,
    provider: Provider,
    key: &ReplayKey,
    events: Vec<WebhookEvent>,
) -> Result<Response, WebhookError> {
    let now = now_millis();
    let mut recorded = 0usize;
    let mut duplicates = 0usize;
    for event in &events {
        let incoming = Incoming {
            channel: Channel::Webhook(provider),
            raw: &event.raw,
            verp_address: event.verp_address.as_deref(),
            external_id: event.external_id.clone(),
            report: event.report.clone(),
        };
        let outcome = state.inner.recorder.record(incoming, now).await?;
        if outcome.duplicate {
            duplicates += 1;
        } else {
            recorded += 1;
        }
    }
    if !remember(state, key, now).await? {
        return Err(Refusal::Replayed.into());
    }
    tracing::info!(
        provider = provider_name(provider),
        events = events.len(),
        recorded,
        duplicates,
        "webhook accepted"
    );
    let body = serde_json::json!({ "recorded": recorded, "duplicates": duplicates });
    Ok((
        StatusCode::OK,
        [(header::CACHE_CONTROL, "no-store")],
        axum::Json(body),
    )
        .into_response())
}

fn provider_name(provider: Provider) -> &'static str {
    match provider {
        Provider::Ses => "ses",
        Provider::Mailgun => "mailgun",
        Provider::SendGrid => "sendgrid",
        Provider::Postmark => "postmark",
        Provider::Generic => "generic",
    }
}

/// A header's value as text; `None` when absent or not visible ASCII.
fn header_text<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name)?.to_str().ok().map(str::trim)
}
