//! `POST /webhooks/sendgrid`: SendGrid's Signed Event Webhook. SendGrid
//! signs `timestamp + raw body` with ECDSA P-256 / SHA-256 and sends the
//! base64 DER signature and the timestamp in
//! `X-Twilio-Email-Event-Webhook-Signature` and `-Timestamp`; the public key
//! (base64 DER SubjectPublicKeyInfo, as SendGrid's settings page shows it)
//! is `HERALD_SENDGRID_VERIFICATION_KEY`.
//!
//! A request is a batch: one report per event that is one. `bounce` with
//! `type: bounce` is hard, with `type: blocked` soft (SendGrid's "blocked"
//! is a receiving server's temporary refusal); `dropped` is a hard bounce
//! when SendGrid dropped the address for bouncing or being invalid, and a
//! complaint when for a spam report (other drops, e.g. an unsubscribed
//! address, say nothing about the mailbox); `spamreport` is a complaint;
//! `deferred` a delay.

use anyhow::Context;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use base64::Engine;
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey;
use serde_json::Value;

use super::verify::{self, Refusal, ReplayKey};
use super::{header_text, record_events, refuse_replay, WebhookError, WebhookEvent, WebhookState};
use crate::bounce::{FailureClass, ParsedReport, Provider, ReportKind};
use crate::store::now_millis;

pub const SIGNATURE_HEADER: &str = "x-twilio-email-event-webhook-signature";
pub const TIMESTAMP_HEADER: &str = "x-twilio-email-event-webhook-timestamp";

/// SendGrid's verification key as its console shows it: base64 of the DER
/// SubjectPublicKeyInfo (PEM armour is tolerated).
pub fn parse_verification_key(text: &str) -> anyhow::Result<VerifyingKey> {
    let base64: String = text
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .flat_map(|line| line.chars())
        .filter(|c| !c.is_whitespace())
        .collect();
    // The decoder's error would quote the offending character: a piece of
    // the secret. A fixed message says enough.
    let der = base64::engine::general_purpose::STANDARD
        .decode(base64)
        .map_err(|_| anyhow::anyhow!("the key is not base64"))?;
    VerifyingKey::from_public_key_der(&der).context("the key is not a P-256 public key")
}

/// Whether `signature_b64` is the key's signature of `timestamp + body`.
pub fn signature_matches(
    key: &VerifyingKey,
    timestamp: &str,
    body: &[u8],
    signature_b64: &str,
) -> bool {
    let Ok(der) = base64::engine::general_purpose::STANDARD.decode(signature_b64.trim()) else {
        return false;
    };
    let Ok(signature) = Signature::from_der(&der) else {
        return false;
    };
    // SendGrid's signer may produce either of the two equivalent `s`
    // values; the replay key does not depend on the signature's bytes.
    let signature = signature.normalize_s().unwrap_or(signature);
    let mut signed = Vec::with_capacity(timestamp.len() + body.len());
    signed.extend_from_slice(timestamp.as_bytes());
    signed.extend_from_slice(body);
    key.verify(&signed, &signature).is_ok()
}

pub async fn receive(
    State(state): State<WebhookState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, WebhookError> {
    let Some(key) = state.inner.sendgrid_key.as_ref() else {
        return Err(WebhookError::Off);
    };
    let signature = header_text(&headers, SIGNATURE_HEADER).ok_or(Refusal::Unsigned)?;
    let timestamp_text = header_text(&headers, TIMESTAMP_HEADER).ok_or(Refusal::Unsigned)?;
    let timestamp = verify::parse_unix_secs(timestamp_text).ok_or(Refusal::Unsigned)?;
    let now = now_millis();
    verify::check_fresh(timestamp, now, state.max_age_secs())?;
    if !signature_matches(key, timestamp_text, &body, signature) {
        return Err(Refusal::BadSignature.into());
    }
    // What was signed identifies the request; the signature's bytes would
    // not (ECDSA signatures are randomised and malleable).
    let mut signed = timestamp_text.as_bytes().to_vec();
    signed.push(0);
    signed.extend_from_slice(&body);
    let replay = ReplayKey::until_stale("sendgrid", &signed, timestamp, state.max_age_secs());
    refuse_replay(&state, &replay, now).await?;
    let events = sendgrid_events(&body).map_err(WebhookError::Malformed)?;
    record_events(&state, Provider::SendGrid, &replay, events).await
}

/// The reports in a batch, in order; events that are not reports are left
/// out.
pub fn sendgrid_events(body: &[u8]) -> Result<Vec<WebhookEvent>, String> {
    let batch: Vec<Value> = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let mut events = Vec::new();
    for event in &batch {
        if let Some(report) = sendgrid_event(event)? {
            events.push(report);
        }
    }
    Ok(events)
}

fn sendgrid_event(event: &Value) -> Result<Option<WebhookEvent>, String> {
    let text = |name: &str| event.get(name).and_then(Value::as_str);
    let (kind, class) = match text("event").ok_or("an event without `event`")? {
        "bounce" if text("type") == Some("blocked") => (ReportKind::Bounce, FailureClass::Soft),
        "bounce" => (ReportKind::Bounce, FailureClass::Hard),
        "dropped" => match text("reason") {
            Some("Bounced Address" | "Invalid") => (ReportKind::Bounce, FailureClass::Hard),
            Some("Spam Reporting Address") => (ReportKind::Complaint, FailureClass::Hard),
            _ => return Ok(None),
        },
        "spamreport" => (ReportKind::Complaint, FailureClass::Hard),
        "deferred" => (ReportKind::Delay, FailureClass::Soft),
        _ => return Ok(None),
    };
    let address = text("email").ok_or("an event without `email`")?;
    let diagnostic = text("reason").or(text("response"));
    let recipient = verify::recipient(address, text("status"), class, diagnostic);
    Ok(Some(WebhookEvent {
        raw: serde_json::to_vec(event).map_err(|e| e.to_string())?,
        verp_address: None,
        external_id: text("sg_event_id").and_then(verify::event_id),
        report: ParsedReport {
            kind,
            recipients: vec![recipient],
            original_message_id: text("smtp-id").and_then(verify::clean_message_id),
            ..ParsedReport::not_a_report()
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::Signer;
    use p256::ecdsa::SigningKey;
    use p256::pkcs8::EncodePublicKey;

    /// Shaped like the examples of SendGrid's Event Webhook reference.
    const BATCH: &str = r#"[
      {"email":"bounce@example.com","timestamp":1513299569,"smtp-id":"<14c5d75ce93.dfd.64b469@ismtpd-555>",
       "event":"bounce","category":"cat facts","sg_event_id":"6g4ZI7SA-xmRDv57GoPIPw==",
       "sg_message_id":"14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
       "reason":"500 unknown recipient","status":"5.0.0","type":"bounce"},
      {"email":"blocked@example.com","timestamp":1513299569,"event":"bounce","type":"blocked",
       "reason":"421 4.7.0 try later","status":"4.7.0","sg_event_id":"b1"},
      {"email":"spam@example.com","timestamp":1513299569,"event":"spamreport","sg_event_id":"s1"},
      {"email":"late@example.com","timestamp":1513299569,"event":"deferred","response":"400 try again later","attempt":"5","sg_event_id":"d1"},
      {"email":"gone@example.com","timestamp":1513299569,"event":"dropped","reason":"Bounced Address","status":"5.0.0","sg_event_id":"x1"},
      {"email":"left@example.com","timestamp":1513299569,"event":"dropped","reason":"Unsubscribed Address","sg_event_id":"x2"},
      {"email":"ok@example.com","timestamp":1513299569,"event":"delivered","response":"250 OK","sg_event_id":"o1"}
    ]"#;

    #[test]
    fn a_batch_gives_one_report_per_reporting_event() {
        let events = sendgrid_events(BATCH.as_bytes()).unwrap();
        let summary: Vec<(ReportKind, &str, FailureClass)> = events
            .iter()
            .map(|e| {
                (
                    e.report.kind,
                    e.report.recipients[0].address.as_str(),
                    e.report.recipients[0].class,
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                (ReportKind::Bounce, "bounce@example.com", FailureClass::Hard),
                (
                    ReportKind::Bounce,
                    "blocked@example.com",
                    FailureClass::Soft
                ),
                (
                    ReportKind::Complaint,
                    "spam@example.com",
                    FailureClass::Hard
                ),
                (ReportKind::Delay, "late@example.com", FailureClass::Soft),
                (ReportKind::Bounce, "gone@example.com", FailureClass::Hard),
            ]
        );
        assert_eq!(
            events[0].report.original_message_id.as_deref(),
            Some("14c5d75ce93.dfd.64b469@ismtpd-555")
        );
        assert_eq!(
            events[0].external_id.as_deref(),
            Some("6g4ZI7SA-xmRDv57GoPIPw==")
        );
        assert!(sendgrid_events(b"{}").is_err());
    }

    #[test]
    fn the_signature_covers_timestamp_and_body() {
        let signing = SigningKey::from_slice(&[7u8; 32]).unwrap();
        let public = signing.verifying_key().to_public_key_der().unwrap();
        let key_text = base64::engine::general_purpose::STANDARD.encode(public.as_bytes());
        let key = parse_verification_key(&key_text).unwrap();
        let sign = |message: &[u8]| {
            let signature: Signature = signing.sign(message);
            base64::engine::general_purpose::STANDARD.encode(signature.to_der().as_bytes())
        };
        let good = sign(b"1600000000[]");
        assert!(signature_matches(&key, "1600000000", b"[]", &good));
        assert!(!signature_matches(&key, "1600000001", b"[]", &good));
        assert!(!signature_matches(&key, "1600000000", b"[ ]", &good));
        assert!(!signature_matches(&key, "1600000000", b"[]", "AAAA"));
        assert!(parse_verification_key("bm90IGEga2V5").is_err());
    }
}
