//! `POST /webhooks/ses`: Amazon SES notifications through an SNS topic.
//!
//! SES sends the same objects two ways: "notifications" (the identity's
//! bounce and complaint topics; `notificationType`) and "event publishing"
//! (a configuration set's SNS destination; `eventType`). Both are read.
//! Bounce: Permanent is hard; Transient and Undetermined are soft (SES
//! could not say it is for good, so it is counted, not final). Complaint:
//! a complaint, unless the feedback type says `not-spam`. DeliveryDelay: a
//! delay. Delivery, Send, Open and the rest are not reports and change
//! nothing.

use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::sns::{SnsKind, SnsMessage};
use super::verify::{self, Refusal, ReplayKey};
use super::{record_events, refuse_replay, remember, WebhookError, WebhookEvent, WebhookState};
use crate::bounce::{FailureClass, ParsedReport, Provider, RecipientReport, ReportKind};
use crate::store::now_millis;

pub async fn receive(
    State(state): State<WebhookState>,
    body: Bytes,
) -> Result<Response, WebhookError> {
    let settings = &state.settings().webhooks;
    if settings.ses_topic_arns.is_empty() {
        return Err(WebhookError::Off);
    }
    // Not even the SNS envelope: nothing that could carry a signature.
    let message: SnsMessage = serde_json::from_slice(&body).map_err(|_| Refusal::Unsigned)?;
    if !settings.ses_topic_arns.contains(&message.topic_arn) {
        return Err(WebhookError::ForeignTopic);
    }
    let now = now_millis();
    let timestamp = message.timestamp_secs().ok_or(Refusal::Unsigned)?;
    verify::check_fresh(timestamp, now, settings.max_age_secs)?;
    state.inner.sns.verify(&message, now).await?;
    let key = ReplayKey::until_stale(
        "ses",
        message.message_id.as_bytes(),
        timestamp,
        settings.max_age_secs,
    );
    refuse_replay(&state, &key, now).await?;
    match message.kind().ok_or(Refusal::Unsigned)? {
        SnsKind::SubscriptionConfirmation => {
            let url = message.subscribe_url.as_deref().ok_or(Refusal::Unsigned)?;
            state.inner.sns.confirm_subscription(url).await?;
            remember(&state, &key, now).await?;
            tracing::info!("SNS subscription confirmed");
            Ok("subscription confirmed\n".into_response())
        }
        SnsKind::UnsubscribeConfirmation => {
            // Nothing to do: unsubscribing is the topic owner's decision,
            // and re-subscribing would need their SubscribeURL anyway.
            remember(&state, &key, now).await?;
            tracing::warn!("SNS says this endpoint was unsubscribed from a topic");
            Ok("noted\n".into_response())
        }
        SnsKind::Notification => {
            let events = ses_events(&message.message, &message.message_id)
                .map_err(|e| WebhookError::Malformed(format!("SES notification: {e}")))?;
            record_events(&state, Provider::Ses, &key, events.into_iter().collect()).await
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SesNotification {
    notification_type: Option<String>,
    event_type: Option<String>,
    bounce: Option<SesBounce>,
    complaint: Option<SesComplaint>,
    delivery_delay: Option<SesDelay>,
    mail: Option<SesMail>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SesBounce {
    bounce_type: String,
    #[serde(default)]
    bounced_recipients: Vec<SesRecipient>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SesComplaint {
    #[serde(default)]
    complained_recipients: Vec<SesRecipient>,
    complaint_feedback_type: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SesDelay {
    #[serde(default)]
    delayed_recipients: Vec<SesRecipient>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SesRecipient {
    email_address: String,
    status: Option<String>,
    diagnostic_code: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SesMail {
    /// The envelope sender (MAIL FROM): our VERP address.
    source: Option<String>,
    #[serde(default)]
    headers: Vec<SesHeader>,
    common_headers: Option<SesCommonHeaders>,
}

#[derive(Debug, Deserialize)]
struct SesHeader {
    name: String,
    value: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SesCommonHeaders {
    message_id: Option<String>,
}

/// The report an SES notification (SNS `Message`) makes; `None` for the
/// event types that are not reports. `sns_message_id` is the event's id.
pub fn ses_events(message: &str, sns_message_id: &str) -> Result<Option<WebhookEvent>, String> {
    let notification: SesNotification = serde_json::from_str(message).map_err(|e| e.to_string())?;
    let event_type = notification
        .notification_type
        .as_deref()
        .or(notification.event_type.as_deref())
        .ok_or("neither notificationType nor eventType")?;
    let (kind, recipients) = match event_type {
        "Bounce" => {
            let bounce = notification.bounce.ok_or("a Bounce without `bounce`")?;
            let class = if bounce.bounce_type == "Permanent" {
                FailureClass::Hard
            } else {
                FailureClass::Soft
            };
            (
                ReportKind::Bounce,
                recipients(&bounce.bounced_recipients, class),
            )
        }
        "Complaint" => {
            let complaint = notification
                .complaint
                .ok_or("a Complaint without `complaint`")?;
            if complaint.complaint_feedback_type.as_deref() == Some("not-spam") {
                return Ok(None);
            }
            (
                ReportKind::Complaint,
                recipients(&complaint.complained_recipients, FailureClass::Hard),
            )
        }
        "DeliveryDelay" => {
            let delay = notification
                .delivery_delay
                .ok_or("a DeliveryDelay without `deliveryDelay`")?;
            (
                ReportKind::Delay,
                recipients(&delay.delayed_recipients, FailureClass::Soft),
            )
        }
        _ => return Ok(None),
    };
    let mail = notification.mail.unwrap_or_default();
    let header_message_id = mail
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("message-id"))
        .map(|h| h.value.as_str());
    let original_message_id = header_message_id
        .or(mail
            .common_headers
            .as_ref()
            .and_then(|h| h.message_id.as_deref()))
        .and_then(verify::clean_message_id);
    Ok(Some(WebhookEvent {
        raw: message.as_bytes().to_vec(),
        verp_address: mail.source.as_deref().map(verify::clean_envelope_sender),
        external_id: verify::event_id(sns_message_id),
        report: ParsedReport {
            kind,
            recipients,
            original_message_id,
            ..ParsedReport::not_a_report()
        },
    }))
}

fn recipients(list: &[SesRecipient], class: FailureClass) -> Vec<RecipientReport> {
    list.iter()
        .map(|r| {
            verify::recipient(
                &r.email_address,
                r.status.as_deref(),
                class,
                r.diagnostic_code.as_deref(),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bounce example from the SES developer guide ("Amazon SNS
    /// notification examples for Amazon SES").
    const BOUNCE: &str = r#"{
      "notificationType":"Bounce",
      "bounce":{
        "bounceType":"Permanent","reportingMTA":"dns; email.example.com",
        "bouncedRecipients":[{"emailAddress":"jane@example.com","status":"5.1.1","action":"failed",
          "diagnosticCode":"smtp; 550 5.1.1 <jane@example.com>... User"}],
        "bounceSubType":"General","timestamp":"2016-01-27T14:59:38.237Z",
        "feedbackId":"00000138111222aa-33322211-cccc-cccc-cccc-ddddaaaa068a-000000","remoteMtaIp":"127.0.2.0"},
      "mail":{
        "timestamp":"2016-01-27T14:59:38.237Z","source":"bounces+Abc123@example.com",
        "sourceArn":"arn:aws:ses:us-east-1:888888888888:identity/example.com",
        "sourceIp":"127.0.3.0","sendingAccountId":"123456789012",
        "messageId":"00000138111222aa-33322211-cccc-cccc-cccc-ddddaaaa0680-000000",
        "destination":["jane@example.com"],"headersTruncated":false,
        "headers":[{"name":"From","value":"\"John Doe\" <john@example.com>"},
                   {"name":"Message-ID","value":"<custom-message-ID@example.com>"}],
        "commonHeaders":{"from":["John Doe <john@example.com>"],"messageId":"custom-message-ID"}}}"#;

    #[test]
    fn a_permanent_bounce_is_hard_with_the_envelope_sender_and_message_id() {
        let event = ses_events(BOUNCE, "sns-1").unwrap().unwrap();
        assert_eq!(event.report.kind, ReportKind::Bounce);
        assert_eq!(event.report.recipients.len(), 1);
        let r = &event.report.recipients[0];
        assert_eq!(r.address, "jane@example.com");
        assert_eq!(r.class, FailureClass::Hard);
        assert_eq!(r.status.as_deref(), Some("5.1.1"));
        assert_eq!(r.diagnostic, "smtp; 550 5.1.1 <jane@example.com>... User");
        assert_eq!(
            event.verp_address.as_deref(),
            Some("bounces+Abc123@example.com")
        );
        assert_eq!(
            event.report.original_message_id.as_deref(),
            Some("custom-message-ID@example.com")
        );
        assert_eq!(event.external_id.as_deref(), Some("sns-1"));
    }

    #[test]
    fn transient_bounces_are_soft_and_event_publishing_is_read_too() {
        let transient = BOUNCE
            .replace("\"Permanent\"", "\"Transient\"")
            .replace("\"notificationType\"", "\"eventType\"");
        let event = ses_events(&transient, "sns-2").unwrap().unwrap();
        assert_eq!(event.report.recipients[0].class, FailureClass::Soft);
    }

    #[test]
    fn complaints_delays_and_deliveries() {
        let complaint = r#"{"notificationType":"Complaint","complaint":{"userAgent":"AnyCompany Feedback Loop (V0.01)",
            "complainedRecipients":[{"emailAddress":"richard@example.com"}],"complaintFeedbackType":"abuse",
            "arrivalDate":"2016-01-27T14:59:38.237Z","timestamp":"2016-01-27T14:59:38.237Z",
            "feedbackId":"000001378603177f-18c07c78-fa81-4a58-9dd1-fedc3cb8f49a-000000"},
            "mail":{"source":"john@example.com","commonHeaders":{"messageId":"<m-1@example.com>"}}}"#;
        let event = ses_events(complaint, "sns-3").unwrap().unwrap();
        assert_eq!(event.report.kind, ReportKind::Complaint);
        assert_eq!(event.report.recipients[0].address, "richard@example.com");
        assert_eq!(
            event.report.original_message_id.as_deref(),
            Some("m-1@example.com")
        );

        let delay = r#"{"eventType":"DeliveryDelay","deliveryDelay":{"delayType":"TransientCommunicationFailure",
            "delayedRecipients":[{"emailAddress":"a@example.com","status":"4.4.1","diagnosticCode":"smtp; 421 4.4.1 Unable to connect"}]},
            "mail":{}}"#;
        let event = ses_events(delay, "sns-4").unwrap().unwrap();
        assert_eq!(event.report.kind, ReportKind::Delay);
        assert_eq!(event.report.recipients[0].status.as_deref(), Some("4.4.1"));

        let delivery = r#"{"notificationType":"Delivery","delivery":{"recipients":["a@example.com"]},"mail":{}}"#;
        assert!(ses_events(delivery, "sns-5").unwrap().is_none());
        assert!(ses_events("{}", "sns-6").is_err());
        assert!(ses_events(r#"{"notificationType":"Bounce"}"#, "sns-7").is_err());
    }
}
