//! `herald preview` and the email it renders.

use herald::config::Settings;
use herald::issue;
use herald::render::{render_email, EmailContext, Templates};
use mail_parser::{MessageParser, MimeHeaders};

use crate::helpers::{example_issues, herald, stderr};

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

#[test]
fn preview_writes_html_text_and_a_real_multipart_eml_for_every_example() {
    let settings = Settings::default();
    for path in example_issues() {
        let parsed = issue::read_issue(&path, &settings.site.base_url).unwrap();
        let issue = parsed.issue.expect("example is valid");
        let out = tempfile::tempdir().unwrap();
        let output = herald(
            &[
                "preview",
                path.to_str().unwrap(),
                "--out",
                out.path().to_str().unwrap(),
            ],
            out.path(),
        );
        assert!(output.status.success(), "{}", stderr(&output));
        let slug = issue.slug.as_str();
        let html = std::fs::read_to_string(out.path().join(format!("{slug}.html"))).unwrap();
        let text = std::fs::read_to_string(out.path().join(format!("{slug}.txt"))).unwrap();
        let eml = std::fs::read(out.path().join(format!("{slug}.eml"))).unwrap();

        assert!(html.contains("@media"), "{slug}: no media query");
        assert!(html.contains("PingFang SC"), "{slug}: no CJK font stack");
        if let Some(summary) = &issue.summary {
            assert!(html.contains(&escape(summary)), "{slug}: preheader missing");
        }
        assert!(html.contains(&escape(&issue.title)), "{slug}: title");
        for item in issue.items() {
            assert!(
                html.contains(&escape(&item.title)),
                "{slug}: item title {:?}",
                item.title
            );
            let first_word = item.title.split_whitespace().next().unwrap();
            assert!(text.contains(first_word), "{slug}: text lacks {first_word}");
            if let Some(url) = &item.url {
                let href = format!("href=\"{}\"", escape(url.as_str()));
                assert!(html.contains(&href), "{slug}: {href}");
                assert!(text.contains(url.as_str()), "{slug}: text lacks {url}");
            }
        }
        // Per-recipient values are filled in, none of the markers is left.
        assert!(!html.contains("%%herald:") && !text.contains("%%herald:"));
        assert!(html.contains("subscriber@example.com"));
        assert!(html.contains(&settings.issue_url(slug).to_string()));

        let message = MessageParser::default().parse(&eml).expect("eml parses");
        assert_eq!(
            message.subject(),
            Some(issue.title.as_str()),
            "{slug}: subject"
        );
        let raw = String::from_utf8_lossy(&eml);
        if !issue.title.is_ascii() {
            // The header may be folded over several lines.
            let start = raw.find("\r\nSubject:").unwrap() + 2;
            let end = start + raw[start..].find("\r\n").unwrap();
            let mut end = end;
            while raw[end + 2..].starts_with(' ') {
                end += 2 + raw[end + 2..].find("\r\n").unwrap();
            }
            let subject_line = &raw[start..end];
            assert!(
                subject_line.contains("=?utf-8?"),
                "{slug}: subject not RFC 2047: {subject_line}"
            );
        }
        assert!(raw.is_ascii(), "{slug}: raw message must be 7-bit");
        let root = message.root_part();
        assert_eq!(root.content_type().unwrap().c_type, "multipart");
        assert_eq!(root.content_type().unwrap().subtype(), Some("alternative"));
        assert_eq!(message.text_body_count(), 1);
        assert_eq!(message.html_body_count(), 1);
        // MIME text is CRLF on the wire; the files on disk are LF.
        let unwire = |s: &str| s.replace("\r\n", "\n").trim().to_string();
        assert!(
            unwire(&message.body_html(0).unwrap()) == html.trim(),
            "{slug}: HTML part differs from the .html"
        );
        assert!(
            unwire(&message.body_text(0).unwrap()) == text.trim(),
            "{slug}: text part differs from the .txt"
        );
        for header in [
            "List-Unsubscribe",
            "List-Unsubscribe-Post",
            "List-Id",
            "Message-ID",
            "Date",
            "From",
            "To",
        ] {
            assert!(message.header(header).is_some(), "{slug}: no {header}");
        }
        assert_eq!(
            message.header_raw("List-Unsubscribe-Post").map(str::trim),
            Some("List-Unsubscribe=One-Click")
        );
    }
}

#[test]
fn chinese_text_survives_intact() {
    let settings = Settings::default();
    let path = crate::helpers::repo_path("examples/issues/vol-001.md");
    let issue = issue::read_issue(&path, &settings.site.base_url)
        .unwrap()
        .issue
        .unwrap();
    let email = render_email(
        &issue,
        &EmailContext {
            site_title: "云原生生态周报",
            language: "zh-CN",
        },
        &Templates::builtin(),
    )
    .unwrap();
    let html = email.html.template();
    for phrase in [
        "业界要闻",
        "上游重要进展",
        "开源项目推荐",
        "本周阅读推荐",
        "木环",
        "张磊",
        "本期作者",
    ] {
        assert!(html.contains(phrase), "{phrase}");
    }
    assert_eq!(issue.sections.len(), 4);
    assert_eq!(issue.authors.len(), 5);
}

#[test]
fn text_part_wraps_by_display_width() {
    use unicode_width::UnicodeWidthStr;
    let settings = Settings::default();
    for path in example_issues() {
        let issue = issue::read_issue(&path, &settings.site.base_url)
            .unwrap()
            .issue
            .unwrap();
        let email = render_email(
            &issue,
            &EmailContext {
                site_title: "Herald",
                language: "en",
            },
            &Templates::builtin(),
        )
        .unwrap();
        let text = email.text.template();
        for line in text.lines() {
            // Only a single unbreakable word (a URL) may overflow.
            if line.width() > 72 {
                assert!(
                    !line.trim().contains(' ') || line.contains("://"),
                    "{}: {line:?}",
                    path.display()
                );
            }
        }
    }
}

#[test]
fn edge_case_issue_is_escaped_and_cleaned() {
    let settings = Settings::default();
    let path = crate::helpers::repo_path("examples/issues/vol-003.md");
    let issue = issue::read_issue(&path, &settings.site.base_url)
        .unwrap()
        .issue
        .unwrap();
    let email = render_email(
        &issue,
        &EmailContext {
            site_title: "Herald",
            language: "en",
        },
        &Templates::builtin(),
    )
    .unwrap();
    let html = email.html.template();
    assert!(!html.contains("<script"), "script survived");
    assert!(!html.contains("onclick"), "event handler survived");
    assert!(html.contains("bold but harmless"));
    assert!(
        html.contains("href=\"http://127.0.0.1:8080/about/\""),
        "relative link not absolute"
    );
    assert!(
        html.contains("src=\"http://127.0.0.1:8080/images/diagram.png\""),
        "relative image not absolute"
    );
    assert!(html.contains("https://example.com/search?q=a&amp;b=2&amp;lang=zh-CN#top"));
    assert!(html.contains("🎉"));
    assert!(
        html.contains("let s = \"&lt;html&gt; &amp; \\\"quotes\\\"\";"),
        "code block not escaped"
    );
    let text = email.text.template();
    assert!(text.contains("https://example.com/search?q=a&b=2&lang=zh-CN#top"));
    assert!(
        text.contains("    fn main() {"),
        "code block indented in text"
    );
}

/// WCAG 2 contrast ratio of two `#rrggbb` colours.
fn contrast(a: &str, b: &str) -> f64 {
    let luminance = |hex: &str| {
        let channel = |at: usize| {
            let value = f64::from(u8::from_str_radix(&hex[at..at + 2], 16).unwrap()) / 255.0;
            if value <= 0.03928 {
                value / 12.92
            } else {
                ((value + 0.055) / 1.055).powf(2.4)
            }
        };
        0.2126 * channel(1) + 0.7152 * channel(3) + 0.0722 * channel(5)
    };
    let (la, lb) = (luminance(a), luminance(b));
    (la.max(lb) + 0.05) / (la.min(lb) + 0.05)
}

/// The colour an inline `style` sets for text (not a background).
fn text_colour(style: &str) -> Option<String> {
    style
        .split(';')
        .filter_map(|rule| rule.split_once(':'))
        .find(|(property, _)| property.trim() == "color")
        .map(|(_, value)| value.trim().to_ascii_lowercase())
}

#[test]
fn links_look_like_links_and_small_text_is_readable_on_its_background() {
    let settings = Settings::default();
    let style_of = regex::Regex::new(r#"<a href="([^"]*)" style="([^"]*)""#).unwrap();
    let page_background =
        regex::Regex::new(r#"<body style="[^"]*background-color:(#[0-9a-fA-F]{6})"#).unwrap();
    for path in example_issues() {
        let issue = issue::read_issue(&path, &settings.site.base_url)
            .unwrap()
            .issue
            .unwrap();
        let email = render_email(
            &issue,
            &EmailContext {
                site_title: "Herald",
                language: "en",
            },
            &Templates::builtin(),
        )
        .unwrap();
        let html = email.html.template();
        let slug = issue.slug.as_str();
        let page = page_background
            .captures(&html)
            .map(|c| c[1].to_ascii_lowercase())
            .unwrap_or_else(|| panic!("{slug}: no page background"));
        let body_text = "#1f2328";
        let links: Vec<(String, String)> = style_of
            .captures_iter(&html)
            .map(|c| (c[1].to_string(), c[2].to_string()))
            .collect();
        // Item titles: underlined, in a colour of their own.
        for item in issue.items() {
            let Some(url) = &item.url else { continue };
            let href = escape(url.as_str());
            let style = links
                .iter()
                .find(|(h, _)| *h == href)
                .map(|(_, s)| s.as_str())
                .unwrap_or_else(|| panic!("{slug}: the title link to {href} has no style"));
            assert!(
                style.contains("text-decoration:underline"),
                "{slug}: {style}"
            );
            let colour = text_colour(style).unwrap_or_else(|| panic!("{slug}: {style}"));
            assert_ne!(colour, body_text, "{slug}: a title link looks like text");
            assert!(contrast(&colour, "#ffffff") >= 4.5, "{slug}: {colour}");
        }
        // The links on the page's own background (the unsubscribe link in
        // the footer, "view in browser" at the top), and the footer's text.
        let footer_div = html
            .rfind("%%herald:recipient%%")
            .and_then(|at| {
                html[..at]
                    .rfind("<div style=\"")
                    .map(|start| &html[start..at])
            })
            .unwrap_or_else(|| panic!("{slug}: no footer"));
        let footer_style = footer_div.split('"').nth(1).unwrap_or_default();
        let mut on_page: Vec<String> = text_colour(footer_style).into_iter().collect();
        on_page.extend(
            links
                .iter()
                .filter(|(href, _)| href.starts_with("%%herald:"))
                .filter_map(|(_, style)| text_colour(style)),
        );
        assert!(on_page.len() >= 3, "{slug}: {on_page:?}");
        for colour in on_page {
            let ratio = contrast(&colour, &page);
            assert!(ratio >= 4.5, "{slug}: {colour} on {page} is {ratio:.2}:1");
        }
    }
    assert!(
        contrast("#6a737d", "#f4f5f7") < 4.5,
        "the colour the issue found"
    );
}

#[test]
fn a_wrapped_item_title_stays_flush_left_in_the_text_part() {
    let settings = Settings::default();
    let title = "Kubernetes 1.14 release notes: Windows nodes, kubectl and Kustomize, \
                 persistent local volumes and a great deal more for every operator";
    let text = format!(
        "+++\ntitle = \"T\"\nnumber = 1\ndate = 2019-06-01\n+++\n## Section\n\n\
         ### [{title}](https://example.com/notes)\n\nBody.\n"
    );
    let issue = issue::parse_issue(
        std::path::Path::new("t.md"),
        text.as_bytes(),
        &settings.site.base_url,
    )
    .issue
    .expect("a valid issue");
    let email = render_email(
        &issue,
        &EmailContext {
            site_title: "Herald",
            language: "en",
        },
        &Templates::builtin(),
    )
    .unwrap();
    let part = email.text.template();
    let lines: Vec<&str> = part.lines().collect();
    let first = lines
        .iter()
        .position(|l| l.starts_with("### Kubernetes"))
        .unwrap_or_else(|| panic!("{part}"));
    let wrapped: Vec<&str> = lines[first + 1..]
        .iter()
        .take_while(|l| !l.starts_with("https://"))
        .copied()
        .collect();
    assert!(!wrapped.is_empty(), "the title did not wrap: {part}");
    for line in &wrapped {
        assert!(
            !line.starts_with(' '),
            "indented, so it reads as code: {line:?}"
        );
    }
    let joined = std::iter::once(&lines[first][4..])
        .chain(wrapped.iter().copied())
        .collect::<Vec<_>>()
        .join(" ");
    assert_eq!(joined, title);
}
