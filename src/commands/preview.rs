use std::path::Path;
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::Context;

use crate::config::Settings;
use crate::render::{self, EmailContext, MessageHeaders, Recipient, Templates};

use super::check::load_one;
use super::{success, write_atomically};

/// The recipient shown in a preview; `example.com` never receives mail.
pub const PLACEHOLDER_RECIPIENT: &str = "subscriber@example.com";

pub fn run(settings: &Settings, issue_path: &Path, out: &Path) -> anyhow::Result<ExitCode> {
    let issue = load_one(settings, issue_path)?;
    let templates = Templates::load(&settings.templates_dir())?;
    let context = EmailContext {
        site_title: &settings.site.title,
        language: &settings.site.language,
    };
    let email = render::render_email(&issue, &context, &templates)?;
    let web_url = settings.issue_url(issue.slug.as_str());
    let unsubscribe_url = settings
        .site
        .base_url
        .join("unsubscribe/preview")
        .expect("static path");
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
        to: PLACEHOLDER_RECIPIENT.parse().expect("static address"),
        list_name: &settings.site.title,
        list_id: &settings.mail.list_id,
        unsubscribe_mailto: settings.mail.unsubscribe_mailto.as_deref(),
        message_id: format!("<preview.{}@{}>", issue.slug, from.email.domain()),
        date: SystemTime::now(),
    };
    let message = render::build_message(&email, &recipient, &headers)?;
    let slug = issue.slug.as_str();
    let files = [
        (
            out.join(format!("{slug}.html")),
            email.html.fill(&recipient).into_bytes(),
        ),
        (
            out.join(format!("{slug}.txt")),
            email.text.fill(&recipient).into_bytes(),
        ),
        (out.join(format!("{slug}.eml")), message.formatted()),
    ];
    for (path, contents) in &files {
        write_atomically(path, contents)
            .with_context(|| format!("writing preview {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    success()
}
