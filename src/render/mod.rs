//! Pure rendering: an [`Issue`](crate::issue::Issue) in, strings out. No
//! function here touches the file system or the network; commands write
//! what these return.

pub mod admin;
mod clicks;
mod confirmation;
mod email;
pub mod feed;
mod labels;
mod message;
mod personalize;
mod preview;
mod preview_page;
mod subscriber_pages;
mod subscription_texts;
mod templates;
mod text;
mod web;
mod welcome;

pub use admin::{AdminPages, Nav, PageView};
pub use clicks::{LinkTable, TrackedLink};
pub use confirmation::{
    build_confirmation_message, render_confirmation, ConfirmationContext, ConfirmationEmail,
    TransactionalHeaders,
};
pub use email::{render_email, render_email_with_links, EmailContext, RenderedEmail};
pub use labels::Labels;
pub use message::{build_message, MessageHeaders};
pub use personalize::{Personalized, Recipient};
pub use preview::{
    render_preview, ClipSize, InboxLine, Preview, PreviewEmail, GMAIL_CLIP_BYTES,
    PLACEHOLDER_RECIPIENT,
};
pub use preview_page::{render_preview_page, PreviewPage};
pub use subscriber_pages::{render_subscriber_page, PageContext, SubscriberPage};
pub use subscription_texts::SubscriptionTexts;
pub use templates::Templates;
pub use text::{blocks_to_text, wrap_text, TEXT_WIDTH};
pub use web::render_site;
pub use welcome::{
    build_welcome_message, render_welcome, ListIdentity, WelcomeContext, WelcomeEmail,
};

/// One file of the static site: where it goes under the output folder
/// ('/'-separated, relative) and what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteFile {
    pub path: String,
    pub bytes: Vec<u8>,
}

/// Renders each issue every way it is used (the email and the site with
/// its feeds) and reports any failure as a diagnostic of that issue: what
/// `check` accepts, `preview`, `build` and `send` can render.
pub fn rendering_problems(
    issues: &[crate::issue::Issue],
    settings: &crate::config::Settings,
    templates: &Templates,
) -> Vec<crate::issue::Diagnostic> {
    let context = EmailContext {
        site_title: &settings.site.title,
        language: &settings.site.language,
    };
    issues
        .iter()
        .filter_map(|issue| {
            let rendered = render_email(issue, &context, templates)
                .and_then(|_| render_site(std::slice::from_ref(issue), settings, templates));
            rendered.err().map(|error| crate::issue::Diagnostic {
                path: issue.source.clone(),
                line: 1,
                column: 1,
                severity: crate::issue::Severity::Error,
                message: format!("the issue cannot be rendered: {error:#}"),
                snippet: String::new(),
            })
        })
        .collect()
}
