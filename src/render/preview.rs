//! An issue as one subscriber would get it, for `herald preview`: the email
//! filled in for a placeholder recipient, the whole MIME message, and the
//! line an inbox shows for it. Pure: the caller reads the files and writes
//! (or serves) what this returns.

use std::time::SystemTime;

use super::email::{render_email, EmailContext};
use super::message::{build_message, MessageHeaders};
use super::personalize::Recipient;
use super::templates::Templates;
use crate::config::Settings;
use crate::issue::Issue;

/// The recipient shown in a preview; `example.com` never receives mail.
pub const PLACEHOLDER_RECIPIENT: &str = "subscriber@example.com";

/// Gmail shows "[Message clipped]" and hides the rest of a message whose
/// HTML is larger than this: 102 KB, counted by the email industry's
/// testing tools as 102 × 1024 bytes of HTML source.
pub const GMAIL_CLIP_BYTES: usize = 102 * 1024;

/// How many characters of the preheader an inbox list shows at most (Gmail
/// on a wide screen shows about this many after the subject; phones fewer).
const SNIPPET_CHARS: usize = 140;

/// What an inbox list shows before the message is opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxLine {
    /// The From display name, or the address when there is none.
    pub from_name: String,
    pub subject: String,
    /// The preheader (the issue's summary), or the start of the text part
    /// when there is none, which is what mail clients fall back to.
    pub snippet: String,
}

/// What a reader sees of one issue's email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviewEmail {
    pub inbox: InboxLine,
    /// The HTML part, per-recipient values filled in.
    pub html: String,
    /// The text part, filled in the same way.
    pub text: String,
}

/// One issue rendered for the placeholder recipient.
#[derive(Debug, Clone)]
pub struct Preview {
    pub email: PreviewEmail,
    /// The complete message, every header a real send carries.
    pub message: lettre::Message,
}

/// Renders `issue` as `herald send` would for one recipient, with `date` in
/// its Date header.
pub fn render_preview(
    issue: &Issue,
    settings: &Settings,
    templates: &Templates,
    date: SystemTime,
) -> anyhow::Result<Preview> {
    let context = EmailContext {
        site_title: &settings.site.title,
        language: &settings.site.language,
    };
    let email = render_email(issue, &context, templates)?;
    let web_url = settings.issue_url(issue.slug.as_str());
    let unsubscribe_url = settings.site.base_url.join("unsubscribe/preview")?;
    let recipient = Recipient {
        email: PLACEHOLDER_RECIPIENT,
        unsubscribe_url: unsubscribe_url.as_str(),
        web_url: web_url.as_str(),
        click_query: "",
    };
    let from = settings.from_mailbox()?;
    let reply_to = settings.reply_to_mailbox()?;
    let headers = MessageHeaders {
        from: &from,
        reply_to: reply_to.as_ref(),
        to: PLACEHOLDER_RECIPIENT.parse()?,
        list_name: &settings.site.title,
        list_id: &settings.mail.list_id,
        unsubscribe_mailto: settings.mail.unsubscribe_mailto.as_deref(),
        message_id: format!("<preview.{}@{}>", issue.slug, from.email.domain()),
        date,
    };
    let message = build_message(&email, &recipient, &headers)?;
    let html = email.html.fill(&recipient);
    let text = email.text.fill(&recipient);
    let from_name = match &from.name {
        Some(name) if !name.trim().is_empty() => name.clone(),
        _ => from.email.to_string(),
    };
    let snippet = snippet(issue.summary.as_deref().unwrap_or(&text));
    Ok(Preview {
        email: PreviewEmail {
            inbox: InboxLine {
                from_name,
                subject: email.subject,
                snippet,
            },
            html,
            text,
        },
        message,
    })
}

/// The start of `text` on one line, as an inbox list shows it: runs of
/// whitespace (line breaks included) become one space, and anything past
/// [`SNIPPET_CHARS`] is cut with an ellipsis.
fn snippet(text: &str) -> String {
    let words: Vec<&str> = text.split_whitespace().collect();
    let line = words.join(" ");
    if line.chars().count() <= SNIPPET_CHARS {
        return line;
    }
    let mut cut: String = line.chars().take(SNIPPET_CHARS).collect();
    cut.push('…');
    cut
}

/// The HTML part's size against Gmail's clipping limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClipSize {
    pub bytes: usize,
    pub limit: usize,
}

impl ClipSize {
    pub fn of_html(html: &str) -> Self {
        ClipSize {
            bytes: html.len(),
            limit: GMAIL_CLIP_BYTES,
        }
    }

    /// Gmail would clip the message.
    pub fn is_clipped(&self) -> bool {
        self.bytes > self.limit
    }

    /// The share of the limit used, in whole percent, rounded down.
    pub fn percent(&self) -> usize {
        self.bytes.saturating_mul(100) / self.limit.max(1)
    }

    /// `12.3 KB`, in the same 1024-byte kilobytes as the limit.
    pub fn kilobytes(&self) -> String {
        format!("{:.1} KB", self.bytes as f64 / 1024.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippets_are_one_line_and_cut_with_an_ellipsis() {
        assert_eq!(snippet("  Hello,\n\n  world  "), "Hello, world");
        let long = "字".repeat(SNIPPET_CHARS + 10);
        let cut = snippet(&long);
        assert_eq!(cut.chars().count(), SNIPPET_CHARS + 1);
        assert!(cut.ends_with('…'));
        assert_eq!(snippet(""), "");
    }

    #[test]
    fn clip_size_counts_bytes_against_102_kilobytes() {
        let small = ClipSize::of_html("中文");
        assert_eq!(small.bytes, 6, "UTF-8 bytes, not characters");
        assert!(!small.is_clipped());
        assert_eq!(small.percent(), 0);
        let at = ClipSize {
            bytes: GMAIL_CLIP_BYTES,
            limit: GMAIL_CLIP_BYTES,
        };
        assert!(!at.is_clipped());
        assert_eq!(at.percent(), 100);
        assert_eq!(at.kilobytes(), "102.0 KB");
        let over = ClipSize {
            bytes: GMAIL_CLIP_BYTES + 1,
            ..at
        };
        assert!(over.is_clipped());
    }
}
