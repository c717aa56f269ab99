//! The mail itself: the latest issue rendered and built exactly as
//! `herald send` builds each copy (the render stage, then the send stage's
//! `MessageFactory`, DKIM included), then weighed, its list headers looked
//! at, and its signature verified against the key DNS publishes.

use mail_auth::{AuthenticatedMessage, DkimResult};

use super::dns::Dns;
use super::Finding;
use crate::config::Settings;
use crate::domain::Token;
use crate::issue::{self, Issue};
use crate::render::{self, EmailContext, Recipient, Templates};
use crate::send::message::MessageFactory;

/// Gmail hides everything past the first 102 KB of a message's HTML
/// behind "[Message clipped]", the unsubscribe link at the bottom with it.
pub const GMAIL_CLIP_BYTES: usize = 102 * 1024;

/// The sample's recipient; `example.com` never receives mail.
const SAMPLE_RECIPIENT: &str = "subscriber@example.com";

/// One recipient's copy of the latest issue.
#[derive(Debug, Clone)]
pub struct Sample {
    pub slug: String,
    /// The HTML part as the reader's client gets it, before encoding.
    pub html_bytes: usize,
    /// The whole message as it would go to the relay.
    pub message: Vec<u8>,
    pub signed: bool,
}

impl Sample {
    /// Renders the latest issue (the highest number) of the issues folder.
    pub fn prepare(settings: &Settings) -> Result<Sample, Finding> {
        let issue = latest_issue(settings)?;
        build(settings, &issue).map_err(|e| {
            Finding::error(
                "mail",
                format!("{} does not render: {e:#}", issue.source.display()),
                "run `herald preview` on it and fix what it reports",
            )
        })
    }
}

fn latest_issue(settings: &Settings) -> Result<Issue, Finding> {
    let dir = settings.issues_dir();
    let no_issue = |why: String| {
        Finding::warning(
            "mail",
            format!("no issue to check the mail with: {why}"),
            format!(
                "write an issue in {} (`herald init` makes one)",
                dir.display()
            ),
        )
    };
    let files = issue::issue_files(&dir).map_err(|e| no_issue(format!("{e:#}")))?;
    let mut latest: Option<Issue> = None;
    for file in files {
        let checked = issue::read_issue(&file, &settings.site.base_url)
            .map_err(|e| no_issue(format!("{e:#}")))?;
        if let Some(issue) = checked.issue {
            if latest
                .as_ref()
                .is_none_or(|l| (issue.number, issue.date) > (l.number, l.date))
            {
                latest = Some(issue);
            }
        }
    }
    latest.ok_or_else(|| {
        no_issue(format!(
            "{} holds no valid issue (`herald check` says why)",
            dir.display()
        ))
    })
}

fn build(settings: &Settings, issue: &Issue) -> anyhow::Result<Sample> {
    let templates = Templates::load(&settings.templates_dir())?;
    let context = EmailContext {
        site_title: &settings.site.title,
        language: &settings.site.language,
    };
    let email = render::render_email(issue, &context, &templates)?;
    let web_url = settings.issue_url(issue.slug.as_str()).to_string();
    let factory = MessageFactory::new(settings, email.clone(), web_url.clone())?;
    let token = Token::generate();
    let unsubscribe_url = factory.unsubscribe_url(token.as_str());
    let recipient = Recipient {
        email: SAMPLE_RECIPIENT,
        unsubscribe_url: &unsubscribe_url,
        web_url: &web_url,
        click_query: "",
    };
    let html_bytes = email.html.fill(&recipient).len();
    let message_id = format!("<doctor.{}@{}>", issue.slug, factory.from().email.domain());
    let (_, message) = factory.build(None, SAMPLE_RECIPIENT, token.as_str(), &message_id)?;
    Ok(Sample {
        slug: issue.slug.to_string(),
        html_bytes,
        message,
        signed: settings.dkim()?.is_some(),
    })
}

pub async fn checks(dns: &Dns, sample: &Result<Sample, Finding>) -> Vec<Finding> {
    match sample {
        Ok(sample) => vec![
            size_check(sample.html_bytes, &sample.slug),
            list_headers_check(&sample.message),
            dkim_check(dns, sample).await,
        ],
        Err(finding) => vec![finding.clone()],
    }
}

pub fn size_check(html_bytes: usize, slug: &str) -> Finding {
    let kb = |n: usize| format!("{:.1} KB", n as f64 / 1024.0);
    if html_bytes > GMAIL_CLIP_BYTES {
        Finding::error(
            "mail-size",
            format!(
                "the HTML of {slug} is {}, over Gmail's {}: Gmail clips it, unsubscribe link included",
                kb(html_bytes),
                kb(GMAIL_CLIP_BYTES)
            ),
            "shorten the issue or split it in two",
        )
    } else if html_bytes > GMAIL_CLIP_BYTES * 9 / 10 {
        Finding::warning(
            "mail-size",
            format!(
                "the HTML of {slug} is {}, close to Gmail's clipping at {}",
                kb(html_bytes),
                kb(GMAIL_CLIP_BYTES)
            ),
            "keep the next issues shorter",
        )
    } else {
        Finding::ok(
            "mail-size",
            format!(
                "the HTML of {slug} is {}, under Gmail's clipping at {}",
                kb(html_bytes),
                kb(GMAIL_CLIP_BYTES)
            ),
        )
    }
}

/// RFC 2369 and RFC 8058: what Gmail and Yahoo require for one-click
/// unsubscribe.
pub fn list_headers_check(message: &[u8]) -> Finding {
    let parsed = mail_parser::MessageParser::default().parse_headers(message);
    let header = |name: &str| {
        parsed
            .as_ref()
            .and_then(|m| m.header_raw(name))
            .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
    };
    let unsubscribe = header("List-Unsubscribe");
    let post = header("List-Unsubscribe-Post");
    let has_https = unsubscribe
        .as_deref()
        .is_some_and(|v| v.contains("<https://"));
    let one_click = post.as_deref() == Some("List-Unsubscribe=One-Click");
    match (unsubscribe, one_click) {
        (Some(_), true) if has_https => Finding::ok(
            "mail-list-unsubscribe",
            "List-Unsubscribe (https) and List-Unsubscribe-Post: List-Unsubscribe=One-Click are present",
        ),
        (Some(value), true) => Finding::error(
            "mail-list-unsubscribe",
            format!("List-Unsubscribe has no https link ({value}): one-click unsubscribe needs one"),
            "set [site] base_url to an https:// address",
        ),
        (None, _) => Finding::error(
            "mail-list-unsubscribe",
            "the message has no List-Unsubscribe header",
            "report this as a bug: Herald adds it to every issue",
        ),
        (Some(_), false) => Finding::error(
            "mail-list-unsubscribe",
            "the message lacks List-Unsubscribe-Post: List-Unsubscribe=One-Click",
            "report this as a bug: Herald adds it to every issue",
        ),
    }
}

async fn dkim_check(dns: &Dns, sample: &Sample) -> Finding {
    if !sample.signed {
        return Finding::error(
            "mail-dkim",
            "the message carries no DKIM signature",
            "set [send] dkim_selector, dkim_domain and dkim_key_file",
        );
    }
    let authenticator = match dns.authenticator() {
        Ok(a) => a,
        Err(e) => {
            return Finding::error(
                "mail-dkim",
                format!("cannot verify the signature: {e}"),
                "check the resolver ([doctor] nameserver, or /etc/resolv.conf)",
            )
        }
    };
    let Some(parsed) = AuthenticatedMessage::parse(&sample.message) else {
        return Finding::error(
            "mail-dkim",
            "the built message does not parse as mail",
            "report this as a bug",
        );
    };
    let outputs = authenticator.verify_dkim(&parsed).await;
    match outputs.first().map(|o| o.result()) {
        Some(DkimResult::Pass) => Finding::ok(
            "mail-dkim",
            format!(
                "the DKIM signature of {} verifies against the key in DNS",
                sample.slug
            ),
        ),
        Some(DkimResult::TempError(e)) => Finding::error(
            "mail-dkim",
            format!("the DKIM key could not be fetched: {e}"),
            "check the resolver, then that the DKIM record is published",
        ),
        Some(DkimResult::Fail(e) | DkimResult::PermError(e) | DkimResult::Neutral(e)) => {
            Finding::error(
                "mail-dkim",
                format!("the DKIM signature does not verify against the key in DNS: {e}"),
                "publish the public half of [send] dkim_key_file (the dkim line above says how)",
            )
        }
        Some(DkimResult::None) | None => Finding::error(
            "mail-dkim",
            "the verifier found no DKIM signature in the message",
            "report this as a bug",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::Level;

    #[test]
    fn the_html_is_weighed_against_gmails_clipping() {
        assert_eq!(size_check(20_000, "v").level, Level::Ok);
        assert_eq!(
            size_check(GMAIL_CLIP_BYTES - 100, "v").level,
            Level::Warning
        );
        assert_eq!(size_check(GMAIL_CLIP_BYTES + 1, "v").level, Level::Error);
    }

    #[test]
    fn both_list_headers_are_needed() {
        let good = b"From: a@example.com\r\nList-Unsubscribe: <https://x.example/u/t>,\r\n <mailto:u@x.example>\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n\r\nbody";
        assert_eq!(list_headers_check(good).level, Level::Ok);
        let no_post =
            b"From: a@example.com\r\nList-Unsubscribe: <https://x.example/u/t>\r\n\r\nbody";
        assert_eq!(list_headers_check(no_post).level, Level::Error);
        let http = b"List-Unsubscribe: <http://x.example/u/t>\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n\r\n";
        assert_eq!(list_headers_check(http).level, Level::Error);
        assert_eq!(
            list_headers_check(b"Subject: x\r\n\r\n").level,
            Level::Error
        );
    }
}
