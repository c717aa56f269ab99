//! The issue email: Handlebars makes MJML, mrml makes responsive HTML.

use anyhow::Context;
use serde::Serialize;

use super::clicks::{email_links, LinkTable};
use super::labels::Labels;
use super::personalize::{marker_values, Personalized, QuotedPrintable};
use super::templates::Templates;
use super::text::{blocks_to_text, wrap_text, TEXT_WIDTH};
use crate::issue::{Body, Issue};

/// What the email needs to know beyond the issue itself.
#[derive(Debug, Clone)]
pub struct EmailContext<'a> {
    pub site_title: &'a str,
    pub language: &'a str,
}

/// An issue rendered once, ready to be personalised per recipient.
#[derive(Debug, Clone)]
pub struct RenderedEmail {
    pub subject: String,
    pub html: Personalized,
    pub text: Personalized,
    /// The HTML part's transfer encoding, done once (see `QuotedPrintable`).
    pub html_encoded: QuotedPrintable,
    /// The text part's, when quoted-printable suits it: not for text that
    /// is mostly outside ASCII (Chinese, say), which quoted-printable would
    /// triple; lettre then picks base64 for each copy.
    pub text_encoded: Option<QuotedPrintable>,
}

impl RenderedEmail {
    pub fn new(subject: String, html: Personalized, text: Personalized) -> Self {
        let html_encoded = html.to_quoted_printable();
        let text_quoted = text.to_quoted_printable();
        // Base64 makes 4 bytes of every 3.
        let text_encoded =
            (text_quoted.literal_len() * 3 <= text.literal_len() * 4).then_some(text_quoted);
        RenderedEmail {
            subject,
            html,
            text,
            html_encoded,
            text_encoded,
        }
    }
}

#[derive(Serialize)]
struct EmailView<'a> {
    site_title: &'a str,
    language: &'a str,
    labels: &'static Labels,
    title: &'a str,
    text_title: String,
    number: u32,
    date: String,
    preheader: Option<&'a str>,
    authors: String,
    editor: Option<&'a str>,
    has_credits: bool,
    intro_html: &'a str,
    intro_text: String,
    sections: Vec<SectionView<'a>>,
    web_url: &'static str,
    unsubscribe_url: &'static str,
    recipient: &'static str,
}

#[derive(Serialize)]
struct SectionView<'a> {
    title: &'a str,
    intro_html: &'a str,
    intro_text: String,
    items: Vec<ItemView<'a>>,
}

#[derive(Serialize)]
struct ItemView<'a> {
    title: &'a str,
    /// The title wrapped for the text part.
    text_title: String,
    /// The item's link, or its redirect when clicks are tracked.
    url: Option<String>,
    body_html: &'a str,
    body_text: String,
}

fn text_of(body: &Body) -> String {
    blocks_to_text(&body.text, TEXT_WIDTH)
}

/// The issue's email with its item links as they are: for previews, test
/// copies and campaigns that do not track clicks.
pub fn render_email(
    issue: &Issue,
    context: &EmailContext,
    templates: &Templates,
) -> anyhow::Result<RenderedEmail> {
    render_email_with_links(issue, context, templates, None)
}

/// The issue's email for a campaign: with `links`, each item link is the
/// table's redirect (text part included), followed by the marker where a
/// recipient's click token goes. Still rendered once, not per recipient.
pub fn render_email_with_links(
    issue: &Issue,
    context: &EmailContext,
    templates: &Templates,
    links: Option<&LinkTable>,
) -> anyhow::Result<RenderedEmail> {
    let (unsubscribe_url, web_url, recipient) = marker_values();
    let mut item_links = email_links(issue, links).into_iter();
    let labels = Labels::for_language(context.language);
    let view = EmailView {
        site_title: context.site_title,
        language: context.language,
        labels,
        title: &issue.title,
        text_title: wrap_text(&issue.title, TEXT_WIDTH, "", ""),
        number: issue.number,
        date: issue.date.format("%Y-%m-%d").to_string(),
        preheader: issue.summary.as_deref(),
        authors: issue.authors.join(labels.list_separator),
        editor: issue.editor.as_deref(),
        has_credits: !issue.authors.is_empty() || issue.editor.is_some(),
        intro_html: &issue.intro.html,
        intro_text: text_of(&issue.intro),
        sections: issue
            .sections
            .iter()
            .map(|section| SectionView {
                title: &section.title,
                intro_html: &section.intro.html,
                intro_text: text_of(&section.intro),
                items: section
                    .items
                    .iter()
                    .map(|item| ItemView {
                        title: &item.title,
                        text_title: wrap_text(&item.title, TEXT_WIDTH - 4, "", ""),
                        url: item_links.next().flatten(),
                        body_html: &item.body.html,
                        body_text: text_of(&item.body),
                    })
                    .collect(),
            })
            .collect(),
        web_url,
        unsubscribe_url,
        recipient,
    };
    let mjml = templates.render("email.mjml.hbs", &view)?;
    let html = mjml_to_html(&mjml)
        .with_context(|| format!("rendering the email of {}", issue.source.display()))?;
    let text = templates.render("email.txt.hbs", &view)?;
    Ok(RenderedEmail::new(
        issue.title.clone(),
        Personalized::new(&html, true),
        Personalized::new(&normalise_text(&text), false),
    ))
}

pub fn mjml_to_html(mjml: &str) -> anyhow::Result<String> {
    let parsed = mrml::parse(mjml).map_err(|e| anyhow::anyhow!("invalid MJML: {e}"))?;
    let options = mrml::prelude::render::RenderOptions {
        // mrml would otherwise add a Google Fonts <link>; our stack is local.
        fonts: Default::default(),
        ..Default::default()
    };
    let html = parsed
        .element
        .render(&options)
        .map_err(|e| anyhow::anyhow!("MJML render failed: {e}"))?;
    // mrml mixes CRLF into its <style> blocks; one line ending everywhere.
    Ok(html.replace("\r\n", "\n"))
}

/// Trims trailing spaces and runs of blank lines left by template logic.
fn normalise_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank_run = 0;
    for line in text.lines() {
        let line = line.trim_end();
        if line.is_empty() {
            blank_run += 1;
            if blank_run > 2 {
                continue;
            }
        } else {
            blank_run = 0;
        }
        out.push_str(line);
        out.push('\n');
    }
    out.trim_start_matches('\n').to_string()
}
