//! `POST /webhooks/mailgun`: Mailgun's webhooks, signed as Mailgun
//! documents ("Securing Webhooks"): the hex HMAC-SHA256 of `timestamp` +
//! `token` under the account's webhook signing key.
//!
//! Two shapes arrive: the current event webhooks (JSON, a `signature`
//! object beside `event-data`) and the legacy webhooks (form fields
//! `timestamp`, `token`, `signature`, `event`, `recipient`, ...; only
//! `application/x-www-form-urlencoded` is read).
//!
//! Current events: `failed` with `severity: permanent` is a hard bounce,
//! except `reason: old` (Mailgun gave up retrying a temporary failure),
//! which is soft; `severity: temporary` means Mailgun will retry, so it is
//! a delay; `complained` is a complaint. Legacy: `bounced` is hard,
//! `dropped` is hard unless its reason is `old`, `complained` a complaint.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::Response;
use serde::Deserialize;
use serde_json::Value;

use super::verify::{self, Refusal, ReplayKey};
use super::{header_text, record_events, refuse_replay, WebhookError, WebhookEvent, WebhookState};
use crate::bounce::{FailureClass, ParsedReport, Provider, ReportKind};
use crate::store::now_millis;

/// The signed part of a Mailgun request.
#[derive(Debug, Clone, Deserialize)]
pub struct MailgunSignature {
    pub timestamp: String,
    pub token: String,
    pub signature: String,
}

pub async fn receive(
    State(state): State<WebhookState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, WebhookError> {
    let Some(key) = state.settings().webhook_secrets.mailgun_signing_key.clone() else {
        return Err(WebhookError::Off);
    };
    let is_json = header_text(&headers, header::CONTENT_TYPE.as_str())
        .is_some_and(|t| t.to_ascii_lowercase().starts_with("application/json"));
    let request = if is_json {
        MailgunRequest::from_json(&body)
    } else {
        MailgunRequest::from_form(&body)
    }
    .ok_or(Refusal::Unsigned)?;
    let signed = &request.signature;
    let now = now_millis();
    let timestamp = verify::parse_unix_secs(&signed.timestamp).ok_or(Refusal::Unsigned)?;
    if !verify::hmac_sha256_matches(
        key.expose().as_bytes(),
        &[signed.timestamp.as_bytes(), signed.token.as_bytes()],
        &signed.signature,
    ) {
        return Err(Refusal::BadSignature.into());
    }
    verify::check_fresh(timestamp, now, state.max_age_secs())?;
    let replay = ReplayKey::until_stale(
        "mailgun",
        signed.token.as_bytes(),
        timestamp,
        state.max_age_secs(),
    );
    refuse_replay(&state, &replay, now).await?;
    let event = request.event().map_err(WebhookError::Malformed)?;
    record_events(
        &state,
        Provider::Mailgun,
        &replay,
        event.into_iter().collect(),
    )
    .await
}

/// A request whose signature could be found, with what it carries.
#[derive(Debug, Clone)]
pub struct MailgunRequest {
    pub signature: MailgunSignature,
    body: MailgunBody,
}

#[derive(Debug, Clone)]
enum MailgunBody {
    Current(Value),
    /// The legacy form's fields, in order.
    Legacy(Vec<(String, String)>),
}

#[derive(Deserialize)]
struct CurrentWebhook {
    signature: MailgunSignature,
    #[serde(rename = "event-data")]
    event_data: Value,
}

impl MailgunRequest {
    pub fn from_json(body: &[u8]) -> Option<MailgunRequest> {
        let webhook: CurrentWebhook = serde_json::from_slice(body).ok()?;
        Some(MailgunRequest {
            signature: webhook.signature,
            body: MailgunBody::Current(webhook.event_data),
        })
    }

    pub fn from_form(body: &[u8]) -> Option<MailgunRequest> {
        let fields: Vec<(String, String)> =
            url::form_urlencoded::parse(body).into_owned().collect();
        let field = |name: &str| {
            fields
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        let signature = MailgunSignature {
            timestamp: field("timestamp")?,
            token: field("token")?,
            signature: field("signature")?,
        };
        Some(MailgunRequest {
            signature,
            body: MailgunBody::Legacy(fields),
        })
    }

    /// The report the event makes; `None` for events that are not reports
    /// (delivered, opened, ...).
    pub fn event(&self) -> Result<Option<WebhookEvent>, String> {
        match &self.body {
            MailgunBody::Current(data) => current_event(data),
            MailgunBody::Legacy(fields) => legacy_event(fields),
        }
    }
}

fn current_event(data: &Value) -> Result<Option<WebhookEvent>, String> {
    let text = |pointer: &str| data.pointer(pointer).and_then(Value::as_str);
    let event = text("/event").ok_or("event-data without an event")?;
    let (kind, class) = match event {
        "failed" => match (text("/severity"), text("/reason")) {
            (Some("permanent"), Some("old")) => (ReportKind::Bounce, FailureClass::Soft),
            (Some("permanent"), _) => (ReportKind::Bounce, FailureClass::Hard),
            (Some("temporary"), _) => (ReportKind::Delay, FailureClass::Soft),
            _ => return Err("a failed event without a known severity".into()),
        },
        "complained" => (ReportKind::Complaint, FailureClass::Hard),
        _ => return Ok(None),
    };
    let address = text("/recipient").ok_or("an event without a recipient")?;
    let diagnostic = ["/delivery-status/message", "/delivery-status/description"]
        .iter()
        .filter_map(|p| text(p))
        .find(|t| !t.trim().is_empty());
    let status = text("/delivery-status/enhanced-code")
        .map(str::to_string)
        .or_else(|| diagnostic.and_then(verify::enhanced_status_in))
        .or_else(|| {
            data.pointer("/delivery-status/code")
                .and_then(smtp_class_status)
        });
    let recipient = verify::recipient(address, status.as_deref(), class, diagnostic);
    Ok(Some(WebhookEvent {
        raw: serde_json::to_vec(data).map_err(|e| e.to_string())?,
        verp_address: text("/envelope/sender").map(verify::clean_envelope_sender),
        external_id: text("/id").and_then(verify::event_id),
        report: ParsedReport {
            kind,
            recipients: vec![recipient],
            original_message_id: text("/message/headers/message-id")
                .and_then(verify::clean_message_id),
            ..ParsedReport::not_a_report()
        },
    }))
}

/// `5.0.0` or `4.0.0` from a bare SMTP reply code: the class is all the
/// code says. Mailgun's own codes (605: a suppressed address) say nothing.
fn smtp_class_status(code: &Value) -> Option<String> {
    let code = code
        .as_u64()
        .or_else(|| code.as_str()?.trim().parse().ok())?;
    match code {
        400..=499 => Some("4.0.0".into()),
        500..=599 => Some("5.0.0".into()),
        _ => None,
    }
}

fn legacy_event(fields: &[(String, String)]) -> Result<Option<WebhookEvent>, String> {
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let event = field("event").ok_or("a legacy webhook without an event")?;
    let (kind, class) = match event {
        "bounced" => (ReportKind::Bounce, FailureClass::Hard),
        "dropped" if field("reason") == Some("old") => (ReportKind::Bounce, FailureClass::Soft),
        "dropped" => (ReportKind::Bounce, FailureClass::Hard),
        "complained" => (ReportKind::Complaint, FailureClass::Hard),
        _ => return Ok(None),
    };
    let address = field("recipient").ok_or("a legacy webhook without a recipient")?;
    let diagnostic = ["error", "description", "notification"]
        .iter()
        .filter_map(|name| field(name))
        .find(|t| !t.trim().is_empty());
    let status = diagnostic
        .and_then(verify::enhanced_status_in)
        .or_else(|| field("code").and_then(|code| smtp_class_status(&Value::from(code))));
    let recipient = verify::recipient(address, status.as_deref(), class, diagnostic);
    // The signature fields are left out of what is kept: they are no use
    // once checked.
    let kept: serde_json::Map<String, Value> = fields
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "signature" | "token"))
        .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
        .collect();
    Ok(Some(WebhookEvent {
        raw: serde_json::to_vec(&kept).map_err(|e| e.to_string())?,
        verp_address: None,
        external_id: None,
        report: ParsedReport {
            kind,
            recipients: vec![recipient],
            original_message_id: field("Message-Id").and_then(verify::clean_message_id),
            ..ParsedReport::not_a_report()
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Shaped like the "failed" (permanent) example of Mailgun's webhook
    /// documentation.
    const PERMANENT_FAILURE: &str = r#"{
      "signature": {"timestamp": "1529006854", "token": "a8ce0edb2dd8301dee6c2405235584e45aa91d1e9f979f3de0",
                    "signature": "d2271d12299f6592d9d44cd9d250f0704e4674c30d79d07c47a66f95ce71cf55"},
      "event-data": {
        "event": "failed", "id": "G9Bn5sl1TC6nu79C8C0bwg", "timestamp": 1521233123.501324,
        "severity": "permanent", "reason": "bounce", "recipient": "Alice@Example.com",
        "envelope": {"sender": "bob@sandbox.mailgun.org", "transport": "smtp", "targets": "alice@example.com"},
        "message": {"headers": {"to": "Alice <alice@example.com>",
                                "message-id": "20130503192659.13651.20287@sandbox.mailgun.org",
                                "from": "Bob <bob@sandbox.mailgun.org>", "subject": "Test permanent_fail webhook"}},
        "delivery-status": {"code": 550, "attempt-no": 1, "session-seconds": 0.1,
                            "message": "550 5.1.1 The email account that you tried to reach does not exist",
                            "description": ""}}}"#;

    #[test]
    fn a_permanent_failure_is_a_hard_bounce() {
        let request = MailgunRequest::from_json(PERMANENT_FAILURE.as_bytes()).unwrap();
        assert_eq!(request.signature.timestamp, "1529006854");
        let event = request.event().unwrap().unwrap();
        assert_eq!(event.report.kind, ReportKind::Bounce);
        let r = &event.report.recipients[0];
        assert_eq!(
            (r.address.as_str(), r.class),
            ("alice@example.com", FailureClass::Hard)
        );
        assert_eq!(r.status.as_deref(), Some("5.1.1"));
        assert_eq!(
            event.report.original_message_id.as_deref(),
            Some("20130503192659.13651.20287@sandbox.mailgun.org")
        );
        assert_eq!(event.external_id.as_deref(), Some("G9Bn5sl1TC6nu79C8C0bwg"));
    }

    #[test]
    fn severity_and_reason_decide_the_class() {
        let temporary = PERMANENT_FAILURE.replace("\"permanent\"", "\"temporary\"");
        let event = MailgunRequest::from_json(temporary.as_bytes())
            .unwrap()
            .event()
            .unwrap()
            .unwrap();
        assert_eq!(event.report.kind, ReportKind::Delay);
        let old = PERMANENT_FAILURE.replace("\"reason\": \"bounce\"", "\"reason\": \"old\"");
        let event = MailgunRequest::from_json(old.as_bytes())
            .unwrap()
            .event()
            .unwrap()
            .unwrap();
        assert_eq!(event.report.recipients[0].class, FailureClass::Soft);
        let delivered = PERMANENT_FAILURE.replace("\"failed\"", "\"delivered\"");
        assert!(MailgunRequest::from_json(delivered.as_bytes())
            .unwrap()
            .event()
            .unwrap()
            .is_none());
    }

    #[test]
    fn the_legacy_form_carries_its_signature_and_event() {
        let form = "event=bounced&recipient=alice%40example.com&code=550&error=5.1.1+No+such+user\
                    &Message-Id=%3Cabc%40example.com%3E&timestamp=1529006854&token=tok&signature=00";
        let request = MailgunRequest::from_form(form.as_bytes()).unwrap();
        assert_eq!(request.signature.token, "tok");
        let event = request.event().unwrap().unwrap();
        assert_eq!(event.report.kind, ReportKind::Bounce);
        assert_eq!(event.report.recipients[0].status.as_deref(), Some("5.1.1"));
        assert_eq!(
            event.report.original_message_id.as_deref(),
            Some("abc@example.com")
        );
        assert!(!String::from_utf8_lossy(&event.raw).contains("signature"));
        assert!(MailgunRequest::from_form(b"event=bounced&recipient=a%40b.c").is_none());
    }
}
