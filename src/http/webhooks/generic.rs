//! `POST /webhooks/generic`: Herald's own signed JSON, for a relay or a
//! script that none of the provider endpoints fits.
//!
//! Signing: `X-Herald-Timestamp: <Unix seconds>` and
//! `X-Herald-Signature: sha256=<hex HMAC-SHA256(HERALD_WEBHOOK_SECRET,
//! timestamp + "." + body)>`, the timestamp within `[webhooks]
//! max_age_secs` of Herald's clock. The body is one event or an array of
//! them:
//!
//! ```json
//! {"id": "evt-1", "event": "bounce", "recipient": "jane@example.com",
//!  "status": "5.1.1", "class": "hard", "diagnostic": "550 5.1.1 no such user",
//!  "message_id": "<id@example.com>", "envelope_sender": "bounces+TAG@example.com"}
//! ```
//!
//! `id` (required) names the event, so sending it twice records it once.
//! `event` is `bounce`, `complaint` or `delay`. `class` (`hard`|`soft`)
//! defaults from `status`: 4.x.x soft, otherwise hard. Unknown fields are
//! refused, so a misspelt field is an error, not a silent default.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;

use super::verify::{self, Refusal, ReplayKey};
use super::{header_text, record_events, refuse_replay, WebhookError, WebhookEvent, WebhookState};
use crate::bounce::{FailureClass, ParsedReport, Provider, ReportKind};
use crate::store::now_millis;

pub const TIMESTAMP_HEADER: &str = "x-herald-timestamp";
pub const SIGNATURE_HEADER: &str = "x-herald-signature";

/// The largest batch read in one request.
const MAX_EVENTS: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GenericEventKind {
    Bounce,
    Complaint,
    Delay,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GenericClass {
    Hard,
    Soft,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenericEvent {
    pub id: String,
    pub event: GenericEventKind,
    pub recipient: String,
    pub status: Option<String>,
    pub class: Option<GenericClass>,
    pub diagnostic: Option<String>,
    pub message_id: Option<String>,
    pub envelope_sender: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(Box<GenericEvent>),
    Many(Vec<GenericEvent>),
}

pub async fn receive(
    State(state): State<WebhookState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, WebhookError> {
    let Some(secret) = state.settings().webhook_secrets.generic_secret.clone() else {
        return Err(WebhookError::Off);
    };
    let timestamp_text = header_text(&headers, TIMESTAMP_HEADER).ok_or(Refusal::Unsigned)?;
    let signature = header_text(&headers, SIGNATURE_HEADER)
        .and_then(|s| s.strip_prefix("sha256="))
        .ok_or(Refusal::Unsigned)?;
    let timestamp = verify::parse_unix_secs(timestamp_text).ok_or(Refusal::Unsigned)?;
    if !verify::hmac_sha256_matches(
        secret.expose().as_bytes(),
        &[timestamp_text.as_bytes(), b".", &body],
        signature,
    ) {
        return Err(Refusal::BadSignature.into());
    }
    let now = now_millis();
    verify::check_fresh(timestamp, now, state.max_age_secs())?;
    // The signature was checked to be valid hex; decoded, it is the same
    // key whatever the letter case.
    let signature_bytes = hex::decode(signature).map_err(|_| Refusal::BadSignature)?;
    let replay =
        ReplayKey::until_stale("generic", &signature_bytes, timestamp, state.max_age_secs());
    refuse_replay(&state, &replay, now).await?;
    let events = generic_events(&body).map_err(WebhookError::Malformed)?;
    record_events(&state, Provider::Generic, &replay, events).await
}

/// The events of a generic request's body.
pub fn generic_events(body: &[u8]) -> Result<Vec<WebhookEvent>, String> {
    let events = match serde_json::from_slice(body).map_err(|e| e.to_string())? {
        OneOrMany::One(event) => vec![*event],
        OneOrMany::Many(events) => events,
    };
    if events.len() > MAX_EVENTS {
        return Err(format!("more than {MAX_EVENTS} events in one request"));
    }
    events.iter().map(to_webhook_event).collect()
}

fn to_webhook_event(event: &GenericEvent) -> Result<WebhookEvent, String> {
    if event.id.trim().is_empty() {
        return Err("an event with an empty id".into());
    }
    if event.recipient.trim().is_empty() {
        return Err("an event with an empty recipient".into());
    }
    let status = event.status.as_deref().map(str::trim);
    if let Some(status) = status.filter(|s| !verify::valid_enhanced_status(s)) {
        return Err(format!(
            "status {status:?} is not an enhanced status code like 5.1.1"
        ));
    }
    let class = match (event.class, event.event) {
        (Some(GenericClass::Hard), _) => FailureClass::Hard,
        (Some(GenericClass::Soft), _) => FailureClass::Soft,
        (None, GenericEventKind::Delay) => FailureClass::Soft,
        (None, _) if status.is_some_and(|s| s.starts_with('4')) => FailureClass::Soft,
        (None, _) => FailureClass::Hard,
    };
    let kind = match event.event {
        GenericEventKind::Bounce => ReportKind::Bounce,
        GenericEventKind::Complaint => ReportKind::Complaint,
        GenericEventKind::Delay => ReportKind::Delay,
    };
    let recipient = verify::recipient(&event.recipient, status, class, event.diagnostic.as_deref());
    let raw = serde_json::json!({
        "id": event.id, "event": kind.as_str(), "recipient": event.recipient,
        "status": event.status, "class": class.as_str(), "diagnostic": event.diagnostic,
        "message_id": event.message_id, "envelope_sender": event.envelope_sender,
    });
    Ok(WebhookEvent {
        raw: serde_json::to_vec(&raw).map_err(|e| e.to_string())?,
        verp_address: event
            .envelope_sender
            .as_deref()
            .map(verify::clean_envelope_sender),
        external_id: verify::event_id(&event.id),
        report: ParsedReport {
            kind,
            recipients: vec![recipient],
            original_message_id: event
                .message_id
                .as_deref()
                .and_then(verify::clean_message_id),
            ..ParsedReport::not_a_report()
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_event_or_a_batch() {
        let one = br#"{"id":"e1","event":"bounce","recipient":"Jane@Example.com","status":"5.1.1",
                       "diagnostic":"550 no such user","message_id":"<m1@example.com>"}"#;
        let events = generic_events(one).unwrap();
        assert_eq!(events.len(), 1);
        let r = &events[0].report.recipients[0];
        assert_eq!(
            (r.address.as_str(), r.class),
            ("jane@example.com", FailureClass::Hard)
        );
        assert_eq!(
            events[0].report.original_message_id.as_deref(),
            Some("m1@example.com")
        );
        assert_eq!(events[0].external_id.as_deref(), Some("e1"));

        let batch = br#"[{"id":"e2","event":"bounce","recipient":"a@example.com","status":"4.2.2"},
                         {"id":"e3","event":"complaint","recipient":"b@example.com"},
                         {"id":"e4","event":"delay","recipient":"c@example.com"},
                         {"id":"e5","event":"bounce","recipient":"d@example.com","class":"soft"}]"#;
        let events = generic_events(batch).unwrap();
        let summary: Vec<(ReportKind, FailureClass)> = events
            .iter()
            .map(|e| (e.report.kind, e.report.recipients[0].class))
            .collect();
        assert_eq!(
            summary,
            vec![
                (ReportKind::Bounce, FailureClass::Soft),
                (ReportKind::Complaint, FailureClass::Hard),
                (ReportKind::Delay, FailureClass::Soft),
                (ReportKind::Bounce, FailureClass::Soft),
            ]
        );
    }

    #[test]
    fn bad_events_are_refused_with_a_reason() {
        for bad in [
            &br#"{"id":"e1","event":"bounced","recipient":"a@example.com"}"#[..],
            br#"{"id":"e1","event":"bounce","recipent":"a@example.com"}"#,
            br#"{"id":"","event":"bounce","recipient":"a@example.com"}"#,
            br#"{"id":"e1","event":"bounce","recipient":"a@example.com","status":"550"}"#,
            b"not json",
        ] {
            assert!(
                generic_events(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
