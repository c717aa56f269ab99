//! RFC 5965 complaint reports (ARF, `message/feedback-report`), and the
//! two complaint shapes that are not ARF but mean the same thing to a
//! sender: Microsoft's JMRP (a plain forward from `staff@hotmail.com`), and
//! Apple Mail's unsubscribe-by-mail (`X-Apple-Unsubscribe: true`).

use super::dsn::fields;
use super::text::find_addresses;

/// What the machine-readable part of a complaint says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Feedback {
    pub feedback_type: Option<String>,
    /// Original-Rcpt-To, or else Removal-Recipient: the subscriber who
    /// complained, when the provider does not redact it.
    pub recipients: Vec<String>,
}

pub fn feedback(text: &str, max_lines: usize) -> Feedback {
    let mut out = Feedback::default();
    let mut removal = Vec::new();
    for (name, value) in fields(text, max_lines) {
        match name.as_str() {
            "feedback-type" if out.feedback_type.is_none() => {
                let kind = value.split_whitespace().next().unwrap_or_default();
                if !kind.is_empty() {
                    out.feedback_type = Some(kind.to_ascii_lowercase());
                }
            }
            "original-rcpt-to" => out
                .recipients
                .extend(find_addresses(&value).into_iter().map(|a| a.address)),
            "removal-recipient" => {
                removal.extend(find_addresses(&value).into_iter().map(|a| a.address))
            }
            _ => {}
        }
    }
    if out.recipients.is_empty() {
        out.recipients = removal;
    }
    out.recipients.dedup();
    out
}

/// Microsoft's Junk Mail Reporting Program forwards the complained-about
/// message as an attachment from this address, with this subject.
pub fn is_jmrp(from: Option<&str>, subject: &str) -> bool {
    from == Some("staff@hotmail.com") && subject.to_lowercase().contains("complaint about message")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complaint_fields() {
        let text = "Feedback-Type: Abuse\nUser-Agent: x/1\nVersion: 1\n\
                    Original-Rcpt-To: a@example.com\nOriginal-Rcpt-To: <b@example.org>\n\
                    Removal-Recipient: c@example.net\n";
        let got = feedback(text, 100);
        assert_eq!(got.feedback_type.as_deref(), Some("abuse"));
        assert_eq!(got.recipients, ["a@example.com", "b@example.org"]);
        let only_removal = feedback(
            "Feedback-Type: abuse\nRemoval-Recipient: c@example.net\n",
            100,
        );
        assert_eq!(only_removal.recipients, ["c@example.net"]);
    }
}
