//! The confirmation mail of the double opt-in: rendered once (MJML is the
//! slow part), then filled per recipient with their address and link.

use std::time::SystemTime;

use lettre::message::{Mailbox, MultiPart};
use serde::Serialize;

use super::email::mjml_to_html;
use super::subscription_texts::SubscriptionTexts;
use super::templates::{escape_html, Templates};

const CONFIRM_URL_MARKER: &str = "%%herald:confirm_url%%";
const RECIPIENT_MARKER: &str = "%%herald:recipient%%";

#[derive(Debug, Clone)]
pub struct ConfirmationContext<'a> {
    pub site_title: &'a str,
    pub language: &'a str,
    /// How long the link stays valid, told to the reader.
    pub ttl_hours: u64,
}

/// The confirmation mail with per-recipient markers left in.
#[derive(Debug, Clone)]
pub struct ConfirmationEmail {
    pub subject: String,
    html: String,
    text: String,
}

#[derive(Serialize)]
struct ConfirmationView<'a> {
    site_title: &'a str,
    language: &'a str,
    subject: &'a str,
    texts: &'static SubscriptionTexts,
    ttl_hours: u64,
    confirm_url: &'static str,
    recipient: &'static str,
}

/// The subscriber's name is deliberately absent: whoever fills in the form
/// chooses it, and a confirmation goes to an address that has not yet
/// agreed to anything, so a name there would let anyone put their words
/// into a mail sent from the newsletter's domain.
pub fn render_confirmation(
    context: &ConfirmationContext,
    templates: &Templates,
) -> anyhow::Result<ConfirmationEmail> {
    let texts = SubscriptionTexts::for_language(context.language);
    let subject = texts.confirm_subject.replace("{site}", context.site_title);
    let view = ConfirmationView {
        site_title: context.site_title,
        language: context.language,
        subject: &subject,
        texts,
        ttl_hours: context.ttl_hours,
        confirm_url: CONFIRM_URL_MARKER,
        recipient: RECIPIENT_MARKER,
    };
    let mjml = templates.render("confirm.mjml.hbs", &view)?;
    let html = mjml_to_html(&mjml)?;
    let text = templates.render("confirm.txt.hbs", &view)?;
    Ok(ConfirmationEmail {
        subject,
        html,
        text,
    })
}

impl ConfirmationEmail {
    /// The HTML and text parts for one recipient.
    pub fn fill(&self, recipient: &str, confirm_url: &str) -> (String, String) {
        let html = self
            .html
            .replace(CONFIRM_URL_MARKER, &escape_html(confirm_url))
            .replace(RECIPIENT_MARKER, &escape_html(recipient));
        let text = self
            .text
            .replace(CONFIRM_URL_MARKER, confirm_url)
            .replace(RECIPIENT_MARKER, recipient);
        (html, text)
    }
}

/// The headers of a transactional mail (a confirmation).
#[derive(Debug, Clone)]
pub struct TransactionalHeaders<'a> {
    pub from: &'a Mailbox,
    pub reply_to: Option<&'a Mailbox>,
    pub message_id: String,
    pub date: SystemTime,
}

/// The whole MIME message. It is addressed to the bare address: the name
/// someone typed into a form never goes into a header.
pub fn build_confirmation_message(
    email: &ConfirmationEmail,
    to: &lettre::Address,
    confirm_url: &str,
    headers: &TransactionalHeaders,
) -> anyhow::Result<lettre::Message> {
    let (html, text) = email.fill(to.as_ref(), confirm_url);
    Ok(transactional_builder(headers, to, &email.subject)
        .multipart(MultiPart::alternative_plain_html(text, html))?)
}

/// From, To (the bare address), Subject, Date, Message-ID and Reply-To of a
/// transactional mail.
pub(super) fn transactional_builder(
    headers: &TransactionalHeaders,
    to: &lettre::Address,
    subject: &str,
) -> lettre::message::MessageBuilder {
    let builder = lettre::Message::builder()
        .from(headers.from.clone())
        .to(Mailbox::new(None, to.clone()))
        .subject(subject.to_string())
        .date(headers.date)
        .message_id(Some(headers.message_id.clone()));
    match headers.reply_to {
        Some(reply_to) => builder.reply_to(reply_to.clone()),
        None => builder,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::subscription_texts::{mixed_punctuation, visible_text};

    #[test]
    fn renders_both_parts_in_the_site_language_with_the_link() {
        let templates = Templates::builtin();
        for (language, words) in [("en", "Confirm subscription"), ("zh-CN", "确认订阅")] {
            let email = render_confirmation(
                &ConfirmationContext {
                    site_title: "Weekly & Co",
                    language,
                    ttl_hours: 72,
                },
                &templates,
            )
            .unwrap();
            let (html, text) = email.fill("a@example.com", "https://s.example/confirm/abc?x=1&y=2");
            assert!(html.contains("href=\"https://s.example/confirm/abc?x=1&amp;y=2\""));
            assert!(html.contains(words) && text.contains(words), "{language}");
            assert!(html.contains("Weekly &amp; Co"));
            assert!(text.contains("https://s.example/confirm/abc?x=1&y=2"));
            assert!(text.contains("72"));
            assert!(!html.contains("%%herald:") && !text.contains("%%herald:"));
        }
    }

    #[test]
    fn the_chinese_mail_uses_full_width_punctuation_throughout() {
        let email = render_confirmation(
            &ConfirmationContext {
                site_title: "云原生周报",
                language: "zh-CN",
                ttl_hours: 72,
            },
            &Templates::builtin(),
        )
        .unwrap();
        let (html, text) = email.fill("user@example.com", "https://s.example/confirm/abc");
        // The page's markup and the CSS are not text.
        let visible = visible_text(&html);
        for (part, words) in [
            ("subject", &email.subject),
            ("text", &text),
            ("html", &visible),
        ] {
            assert_eq!(mixed_punctuation(words), Vec::<String>::new(), "{part}");
        }
        assert_eq!(mixed_punctuation("请确认: 链接"), ["请确认: 链接"]);
    }
}
