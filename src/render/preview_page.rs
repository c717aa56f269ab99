//! The page `herald preview --watch` serves: the email at phone and desktop
//! widths, its text part, its line in an inbox, its size against Gmail's
//! clipping limit, and `herald check`'s diagnostics. Pure: a view in, HTML
//! out; every value is HTML-escaped by the template registry.
//!
//! The page is a tool for the editor, not part of the newsletter, so its
//! template is not among those a templates folder overrides: a broken
//! override must not break the page that reports it.

use std::path::Path;
use std::sync::OnceLock;

use handlebars::Handlebars;
use serde::Serialize;

use super::preview::{ClipSize, PreviewEmail};
use super::templates::escape_html;
use crate::issue::{Diagnostic, Severity};

const TEMPLATE: &str = include_str!("../../templates/preview_page.html.hbs");

/// One rendering of the watched files.
#[derive(Debug, Clone)]
pub struct PreviewPage<'a> {
    /// The issue file, as given on the command line.
    pub source: &'a Path,
    /// Which rendering this is; the page reloads when the server has a newer one.
    pub generation: u64,
    /// `herald check`'s findings, with their lines.
    pub diagnostics: &'a [Diagnostic],
    /// What stopped the rendering and has no line of the issue to point at:
    /// the config or a template that does not load.
    pub failures: &'a [String],
    /// The email, when it rendered (no error above).
    pub email: Option<&'a PreviewEmail>,
}

#[derive(Serialize)]
struct PageView<'a> {
    source: String,
    generation: u64,
    state: &'static str,
    errors: usize,
    warnings: usize,
    problems: Vec<ProblemView<'a>>,
    email: Option<EmailView<'a>>,
}

#[derive(Serialize)]
struct ProblemView<'a> {
    severity: &'static str,
    /// Empty for a failure outside the issue file.
    path: String,
    /// 0 for a failure outside the issue file.
    line: usize,
    column: usize,
    message: &'a str,
    snippet: &'a str,
}

#[derive(Serialize)]
struct EmailView<'a> {
    from_name: &'a str,
    subject: &'a str,
    snippet: &'a str,
    html: &'a str,
    text: &'a str,
    size: SizeView,
}

#[derive(Serialize)]
struct SizeView {
    bytes: usize,
    limit: usize,
    /// Where the meter turns to a warning colour: 90 % of the limit.
    high: usize,
    percent: usize,
    kilobytes: String,
    clipped: bool,
}

fn severity_name(severity: Severity) -> &'static str {
    match severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    }
}

fn registry() -> &'static Handlebars<'static> {
    static REGISTRY: OnceLock<Handlebars<'static>> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let mut registry = Handlebars::new();
        registry.register_escape_fn(escape_html);
        registry
            .register_template_string("preview_page", TEMPLATE)
            .expect("the built-in preview page compiles");
        registry
    })
}

pub fn render_preview_page(page: &PreviewPage) -> anyhow::Result<String> {
    let errors = page.diagnostics.iter().filter(|d| d.is_error()).count() + page.failures.len();
    let warnings = page.diagnostics.len() + page.failures.len() - errors;
    let mut problems: Vec<ProblemView> = page
        .failures
        .iter()
        .map(|message| ProblemView {
            severity: "error",
            path: String::new(),
            line: 0,
            column: 0,
            message,
            snippet: "",
        })
        .collect();
    problems.extend(page.diagnostics.iter().map(|d| ProblemView {
        severity: severity_name(d.severity),
        path: d.path.display().to_string(),
        line: d.line,
        column: d.column,
        message: &d.message,
        snippet: &d.snippet,
    }));
    let email = page.email.map(|email| {
        let size = ClipSize::of_html(&email.html);
        EmailView {
            from_name: &email.inbox.from_name,
            subject: &email.inbox.subject,
            snippet: &email.inbox.snippet,
            html: &email.html,
            text: &email.text,
            size: SizeView {
                bytes: size.bytes,
                limit: size.limit,
                high: size.limit / 10 * 9,
                percent: size.percent(),
                kilobytes: size.kilobytes(),
                clipped: size.is_clipped(),
            },
        }
    });
    let view = PageView {
        source: page.source.display().to_string(),
        generation: page.generation,
        state: if email.is_some() {
            "rendered"
        } else {
            "failed"
        },
        errors,
        warnings,
        problems,
        email,
    };
    Ok(registry().render("preview_page", &view)?)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::render::preview::InboxLine;

    fn email(html: &str) -> PreviewEmail {
        PreviewEmail {
            inbox: InboxLine {
                from_name: "Herald <Weekly>".into(),
                subject: "Issue & \"friends\"".into(),
                snippet: "What's new".into(),
            },
            html: html.into(),
            text: "Text <part>\n".into(),
        }
    }

    #[test]
    fn the_email_is_escaped_into_both_frames_and_every_field_is_escaped() {
        let email = email("<p class=\"x\">Hi & bye</p>");
        let page = render_preview_page(&PreviewPage {
            source: Path::new("issues/a.md"),
            generation: 7,
            diagnostics: &[],
            failures: &[],
            email: Some(&email),
        })
        .unwrap();
        let srcdoc = "srcdoc=\"&lt;p class=&quot;x&quot;&gt;Hi &amp; bye&lt;/p&gt;\"";
        assert_eq!(page.matches(srcdoc).count(), 2, "{page}");
        assert!(page.contains("id=\"phone\"") && page.contains("id=\"desktop\""));
        assert!(page.contains("<span id=\"from\">Herald &lt;Weekly&gt;</span>"));
        assert!(page.contains("<span id=\"subject\">Issue &amp; &quot;friends&quot;</span>"));
        assert!(page.contains("<span id=\"preheader\">What&#39;s new</span>"));
        assert!(page.contains("<pre id=\"text\">Text &lt;part&gt;\n</pre>"));
        assert!(page.contains("data-generation=\"7\""));
        assert!(page.contains("class=\"fits\" data-bytes=\"25\""), "{page}");
        assert!(page.contains("data-errors=\"0\""));
    }

    #[test]
    fn errors_replace_the_email_and_point_at_their_line() {
        let diagnostics = [Diagnostic {
            path: PathBuf::from("issues/a.md"),
            line: 12,
            column: 3,
            severity: Severity::Error,
            message: "a `#` heading <here>".into(),
            snippet: "# Title".into(),
        }];
        let failures = ["reading config herald.toml: bad".to_string()];
        let page = render_preview_page(&PreviewPage {
            source: Path::new("issues/a.md"),
            generation: 1,
            diagnostics: &diagnostics,
            failures: &failures,
            email: None,
        })
        .unwrap();
        assert!(page.contains("data-line=\"12\" data-column=\"3\""));
        assert!(page.contains("issues/a.md:12:3"));
        assert!(page.contains("a `#` heading &lt;here&gt;"));
        assert!(page.contains("reading config herald.toml: bad"));
        assert!(page.contains("data-errors=\"2\" data-warnings=\"0\""));
        assert!(!page.contains("id=\"phone\"") && !page.contains("id=\"subject\""));
        assert!(page.contains("id=\"diagnostics\""));
    }

    #[test]
    fn an_html_part_over_102_kilobytes_is_flagged() {
        let email = email(&"x".repeat(super::super::preview::GMAIL_CLIP_BYTES + 1));
        let page = render_preview_page(&PreviewPage {
            source: Path::new("a.md"),
            generation: 1,
            diagnostics: &[],
            failures: &[],
            email: Some(&email),
        })
        .unwrap();
        assert!(page.contains("class=\"clipped\" data-bytes=\"104449\""));
        assert!(page.contains("Gmail will clip this message"));
    }
}
