//! What a report says, independent of how it arrived (a mail, an IMAP
//! message, a provider's webhook event).

use serde::Serialize;

/// What kind of report a message is. Only `Bounce` and `Complaint` change
/// anything; a delay or an auto-reply is recognised so it is never taken
/// for a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReportKind {
    Bounce,
    Complaint,
    AutoReply,
    Delay,
    /// Not a report at all: ordinary mail to the bounce address.
    None,
}

impl ReportKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ReportKind::Bounce => "bounce",
            ReportKind::Complaint => "complaint",
            ReportKind::AutoReply => "auto-reply",
            ReportKind::Delay => "delay",
            ReportKind::None => "none",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            ReportKind::Bounce,
            ReportKind::Complaint,
            ReportKind::AutoReply,
            ReportKind::Delay,
            ReportKind::None,
        ]
        .into_iter()
        .find(|kind| kind.as_str() == s)
    }
}

/// Whether a failure is for good (the mailbox does not exist, the domain
/// is gone, a complaint) or may pass (a full mailbox, a greylisting
/// server, a temporary policy block).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FailureClass {
    Hard,
    Soft,
}

impl FailureClass {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureClass::Hard => "hard",
            FailureClass::Soft => "soft",
        }
    }
}

/// One recipient a report is about. For a complaint, the complaining
/// subscriber.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecipientReport {
    /// As the report gives it, lowercased; may be empty when a report names
    /// no address (the VERP tag or the returned Message-ID then matches).
    pub address: String,
    /// The enhanced status code (RFC 3463), e.g. `5.1.1`, when one was found
    /// or could be derived.
    pub status: Option<String>,
    pub class: FailureClass,
    /// What the remote server said, trimmed and length-capped.
    pub diagnostic: String,
}

/// The result of parsing one message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ParsedReport {
    pub kind: ReportKind,
    pub recipients: Vec<RecipientReport>,
    /// The Message-ID of the message that bounced or was complained about,
    /// without angle brackets, from the returned message or headers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub original_message_id: Option<String>,
    /// Addresses the report itself was delivered to (Delivered-To,
    /// X-Original-To, Envelope-To, To): where a VERP tag is found when the
    /// MTA does not pass the envelope recipient.
    #[serde(skip)]
    pub addressed_to: Vec<String>,
    /// ARF `Feedback-Type` of a complaint (`abuse`, `fraud`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub feedback_type: Option<String>,
}

impl ParsedReport {
    pub fn not_a_report() -> Self {
        ParsedReport {
            kind: ReportKind::None,
            recipients: Vec::new(),
            original_message_id: None,
            addressed_to: Vec::new(),
            feedback_type: None,
        }
    }
}
