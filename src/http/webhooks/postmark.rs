//! `POST /webhooks/postmark`: Postmark's bounce and spam complaint
//! webhooks, authenticated by HTTP basic auth in the webhook URL
//! (`https://USER:PASSWORD@host/webhooks/postmark`), the way Postmark
//! documents protecting a webhook. Both halves are compared in constant
//! time.
//!
//! Postmark signs nothing and sends no timestamp, so there is no freshness
//! check: the password is the whole protection, and Herald must be served
//! over HTTPS for it to stay secret. A replay is still refused: each
//! record's `RecordType` and `ID` are remembered for a week, longer than
//! Postmark retries a webhook.
//!
//! `RecordType: Bounce` by `Type`: HardBounce and BadEmailAddress are hard;
//! SoftBounce, DnsError and Blocked soft; Transient is a delay;
//! AutoResponder an auto-reply; SpamComplaint a complaint; the other types
//! (subscribe requests, challenge verifications, ...) are kept as not a
//! report. `RecordType: SpamComplaint` is a complaint.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::Response;
use base64::Engine;
use serde_json::Value;

use super::verify::{self, Refusal, ReplayKey};
use super::{header_text, record_events, refuse_replay, WebhookError, WebhookEvent, WebhookState};
use crate::bounce::{FailureClass, ParsedReport, Provider, ReportKind};
use crate::store::now_millis;

/// How long a Postmark record is remembered against replays.
const REPLAY_MEMORY_MILLIS: i64 = 7 * 24 * 3600 * 1000;

pub async fn receive(
    State(state): State<WebhookState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, WebhookError> {
    let settings = state.settings();
    let (Some(username), Some(password)) = (
        settings.webhooks.postmark_username.as_deref(),
        settings.webhook_secrets.postmark_password.as_ref(),
    ) else {
        return Err(WebhookError::Off);
    };
    let authorization =
        header_text(&headers, header::AUTHORIZATION.as_str()).ok_or(Refusal::Unsigned)?;
    if !basic_auth_matches(authorization, username, password.expose()) {
        return Err(Refusal::BadSignature.into());
    }
    let record: Value = serde_json::from_slice(&body)
        .map_err(|e| WebhookError::Malformed(format!("not JSON: {e}")))?;
    let record_id = replay_identity(&record)
        .ok_or_else(|| WebhookError::Malformed("a record without RecordType and ID".into()))?;
    let now = now_millis();
    let replay = ReplayKey::until("postmark", record_id.as_bytes(), now + REPLAY_MEMORY_MILLIS);
    refuse_replay(&state, &replay, now).await?;
    let event = postmark_event(&record).map_err(WebhookError::Malformed)?;
    record_events(
        &state,
        Provider::Postmark,
        &replay,
        event.into_iter().collect(),
    )
    .await
}

/// Whether an `Authorization: Basic ...` header carries this user and
/// password. Both are always compared, so the time does not tell which
/// one was wrong.
pub fn basic_auth_matches(authorization: &str, username: &str, password: &str) -> bool {
    let Some((scheme, encoded)) = authorization.split_once(' ') else {
        return false;
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return false;
    }
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
        return false;
    };
    let Some(colon) = decoded.iter().position(|&b| b == b':') else {
        return false;
    };
    let (given_user, given_password) = (&decoded[..colon], &decoded[colon + 1..]);
    let user_ok = verify::secrets_equal(given_user, username.as_bytes());
    let password_ok = verify::secrets_equal(given_password, password.as_bytes());
    user_ok & password_ok
}

/// `RecordType:ID`, what Postmark keeps the same on a retry.
fn replay_identity(record: &Value) -> Option<String> {
    let record_type = record.get("RecordType")?.as_str()?;
    let id = match record.get("ID")? {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        _ => return None,
    };
    Some(format!("{record_type}:{id}"))
}

/// The report a Postmark record makes; `None` for record types that are
/// not about bounces or complaints (deliveries, opens, clicks).
pub fn postmark_event(record: &Value) -> Result<Option<WebhookEvent>, String> {
    let text = |name: &str| record.get(name).and_then(Value::as_str);
    let (kind, class) = match text("RecordType").ok_or("a record without RecordType")? {
        "Bounce" => bounce_kind(text("Type").unwrap_or("Unknown")),
        "SpamComplaint" => (ReportKind::Complaint, FailureClass::Hard),
        _ => return Ok(None),
    };
    let address = text("Email").ok_or("a record without Email")?;
    let diagnostic = text("Details")
        .filter(|d| !d.trim().is_empty())
        .or(text("Description"));
    let recipient = verify::recipient(address, None, class, diagnostic);
    let id = replay_identity(record).ok_or("a record without ID")?;
    Ok(Some(WebhookEvent {
        raw: serde_json::to_vec(record).map_err(|e| e.to_string())?,
        verp_address: None,
        external_id: verify::event_id(&id),
        report: ParsedReport {
            kind,
            recipients: if kind == ReportKind::None {
                Vec::new()
            } else {
                vec![recipient]
            },
            // Postmark's MessageID is its own id, not the Message-ID
            // header; the recipient's address is what matches.
            original_message_id: None,
            ..ParsedReport::not_a_report()
        },
    }))
}

fn bounce_kind(bounce_type: &str) -> (ReportKind, FailureClass) {
    match bounce_type {
        "HardBounce" | "BadEmailAddress" => (ReportKind::Bounce, FailureClass::Hard),
        "SoftBounce" | "DnsError" | "Blocked" => (ReportKind::Bounce, FailureClass::Soft),
        "Transient" => (ReportKind::Delay, FailureClass::Soft),
        "AutoResponder" => (ReportKind::AutoReply, FailureClass::Soft),
        "SpamComplaint" => (ReportKind::Complaint, FailureClass::Hard),
        _ => (ReportKind::None, FailureClass::Soft),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(credentials: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(credentials)
        )
    }

    #[test]
    fn basic_auth_needs_both_halves() {
        assert!(basic_auth_matches(
            &basic("herald:s3cret"),
            "herald",
            "s3cret"
        ));
        assert!(basic_auth_matches(
            &basic("herald:s3:cret"),
            "herald",
            "s3:cret"
        ));
        assert!(!basic_auth_matches(
            &basic("herald:wrong"),
            "herald",
            "s3cret"
        ));
        assert!(!basic_auth_matches(
            &basic("other:s3cret"),
            "herald",
            "s3cret"
        ));
        assert!(!basic_auth_matches(&basic("herald"), "herald", "s3cret"));
        assert!(!basic_auth_matches("Bearer abc", "herald", "s3cret"));
        assert!(!basic_auth_matches("Basic !!!", "herald", "s3cret"));
    }

    /// Shaped like the bounce webhook example in Postmark's documentation.
    const HARD_BOUNCE: &str = r#"{"RecordType":"Bounce","MessageStream":"outbound","ID":4323372036854775807,
      "Type":"HardBounce","TypeCode":1,"Name":"Hard bounce","Tag":"Test",
      "MessageID":"883953f4-6105-42a2-a16a-77a8eac79483","Metadata":{"a_key":"a_value"},"ServerID":23,
      "Description":"The server was unable to deliver your message (ex: unknown user, mailbox not found).",
      "Details":"smtp;550 5.1.1 The email account that you tried to reach does not exist.",
      "Email":"John@Example.com","From":"sender@example.com","BouncedAt":"2019-11-05T16:33:54.9070259Z",
      "DumpAvailable":true,"Inactive":true,"CanActivate":true,"Subject":"Test subject","Content":"<Full dump of bounce>"}"#;

    #[test]
    fn bounce_types_decide_kind_and_class() {
        let record: Value = serde_json::from_str(HARD_BOUNCE).unwrap();
        let event = postmark_event(&record).unwrap().unwrap();
        assert_eq!(event.report.kind, ReportKind::Bounce);
        let r = &event.report.recipients[0];
        assert_eq!(
            (r.address.as_str(), r.class),
            ("john@example.com", FailureClass::Hard)
        );
        assert_eq!(r.status.as_deref(), Some("5.1.1"));
        assert_eq!(
            event.external_id.as_deref(),
            Some("Bounce:4323372036854775807")
        );
        for (bounce_type, kind, class) in [
            ("SoftBounce", ReportKind::Bounce, FailureClass::Soft),
            ("Transient", ReportKind::Delay, FailureClass::Soft),
            ("AutoResponder", ReportKind::AutoReply, FailureClass::Soft),
            ("SpamComplaint", ReportKind::Complaint, FailureClass::Hard),
        ] {
            let record: Value =
                serde_json::from_str(&HARD_BOUNCE.replace("HardBounce", bounce_type)).unwrap();
            let event = postmark_event(&record).unwrap().unwrap();
            assert_eq!(
                (event.report.kind, event.report.recipients[0].class),
                (kind, class),
                "{bounce_type}"
            );
        }
        let record: Value =
            serde_json::from_str(&HARD_BOUNCE.replace("HardBounce", "SubscriptionChange")).unwrap();
        assert!(postmark_event(&record)
            .unwrap()
            .unwrap()
            .report
            .recipients
            .is_empty());
        let delivery: Value = serde_json::from_str(r#"{"RecordType":"Delivery","ID":1}"#).unwrap();
        assert!(postmark_event(&delivery).unwrap().is_none());
    }
}
