//! Amazon SES notifications that arrive as mail: an SNS email subscription
//! delivers the JSON event (`notificationType: Bounce | Complaint`) as the
//! body, sometimes wrapped in the SNS envelope with the event as a string.

use serde_json::Value;

use super::text::first_address;

/// What one SES event says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SesEvent {
    Bounce {
        /// `bounceType` is not `Permanent`: SES says a retry may work.
        transient: bool,
        /// (address, status, diagnostic)
        recipients: Vec<(String, Option<String>, String)>,
    },
    Complaint {
        feedback_type: Option<String>,
        recipients: Vec<String>,
    },
}

fn event(text: &str) -> Option<Value> {
    // Mail transports wrap long lines, even inside a JSON string; JSON
    // needs no line breaks, so they all go.
    let text: String = text.chars().filter(|c| !matches!(c, '\r' | '\n')).collect();
    let value: Value = serde_json::from_str(text.trim()).ok()?;
    if value.get("notificationType").is_some() || value.get("eventType").is_some() {
        return Some(value);
    }
    // The SNS envelope: the event is a JSON string in "Message".
    let inner = value.get("Message")?.as_str()?;
    serde_json::from_str(inner).ok()
}

fn text_field<'a>(value: &'a Value, name: &str) -> Option<&'a str> {
    value.get(name).and_then(Value::as_str)
}

/// Reads an SES event from a notice that is JSON; `None` for anything else.
pub fn read(notice: &str) -> Option<SesEvent> {
    let trimmed = notice.trim_start();
    if !trimmed.starts_with('{') || !notice.contains("Type") {
        return None;
    }
    let event = event(notice)?;
    let kind =
        text_field(&event, "notificationType").or_else(|| text_field(&event, "eventType"))?;
    match kind {
        "Bounce" => {
            let bounce = event.get("bounce")?;
            let recipients = bounce
                .get("bouncedRecipients")?
                .as_array()?
                .iter()
                .filter_map(|r| {
                    let address = first_address(text_field(r, "emailAddress")?)?;
                    let status = text_field(r, "status").map(str::to_string);
                    let diagnostic = text_field(r, "diagnosticCode").unwrap_or_default();
                    let diagnostic = diagnostic
                        .split_once(';')
                        .filter(|(kind, _)| !kind.contains(' '))
                        .map_or(diagnostic, |(_, rest)| rest);
                    Some((address, status, diagnostic.trim().to_string()))
                })
                .collect();
            Some(SesEvent::Bounce {
                transient: text_field(bounce, "bounceType") != Some("Permanent"),
                recipients,
            })
        }
        "Complaint" => {
            let complaint = event.get("complaint")?;
            let recipients = complaint
                .get("complainedRecipients")?
                .as_array()?
                .iter()
                .filter_map(|r| first_address(text_field(r, "emailAddress")?))
                .collect();
            Some(SesEvent::Complaint {
                feedback_type: text_field(complaint, "complaintFeedbackType")
                    .map(str::to_ascii_lowercase),
                recipients,
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapped_and_bare_events() {
        let bare = r#"{"notificationType":"Bounce","bounce":{"bounceType":"Permanent","bouncedRecipients":[{"emailAddress":"a@example.com","status":"5.1.1","diagnosticCode":"smtp; 550 5.1.1 user unknown"}]}}"#;
        let wrapped = serde_json::json!({"Type": "Notification", "Message": bare}).to_string();
        for text in [bare.to_string(), wrapped] {
            assert_eq!(
                read(&text),
                Some(SesEvent::Bounce {
                    transient: false,
                    recipients: vec![(
                        "a@example.com".into(),
                        Some("5.1.1".into()),
                        "550 5.1.1 user unknown".into()
                    )],
                })
            );
        }
        let complaint = r#"{"notificationType":"Complaint","complaint":{"complaintFeedbackType":"abuse","complainedRecipients":[{"emailAddress":"B@example.com"}]}}"#;
        assert_eq!(
            read(complaint),
            Some(SesEvent::Complaint {
                feedback_type: Some("abuse".into()),
                recipients: vec!["b@example.com".into()]
            })
        );
        assert_eq!(read("{not json"), None);
        assert_eq!(read("Hello"), None);
    }
}
