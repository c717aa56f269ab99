//! What `check` accepts always renders: the email (MJML included), the
//! text part, the site with its feeds, and the MIME message a send hands
//! the relay. Issues are generated from Markdown and HTML fragments,
//! hostile characters and deep nesting; for every one that parses without
//! error, rendering must succeed.

use std::path::Path;

use herald::config::Settings;
use herald::issue::parse_issue;
use herald::render::{
    build_message, render_email, rendering_problems, EmailContext, MessageHeaders, Recipient,
    Templates,
};
use proptest::prelude::*;

/// Pieces an editor (or an attacker) might put in a heading or a body.
fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9 ]{0,12}",
        Just("中文标题，带标点。".to_string()),
        Just("Tom & Jerry <test> \"quoted\" 'single'".to_string()),
        Just("]]> <![CDATA[ x ]]>".to_string()),
        Just("<div><table><tr><td>cell</td></tr></table></div>".to_string()),
        Just("<mj-text>raw mjml</mj-text>".to_string()),
        Just("<script>alert(1)</script><style>p{}</style>".to_string()),
        Just("{{handlebars}} {{{triple}}}".to_string()),
        Just("[link](https://example.com/?a=1&b=<2>)".to_string()),
        Just("![alt <x> & y](https://example.com/i.png)".to_string()),
        Just("`code` **bold** _em_ ~~strike~~".to_string()),
        Just("\u{202e}rtl\u{2028}sep\u{feff}bom\u{200b}zw".to_string()),
        Just("\u{8}\u{0}\u{c}\u{1b}[31m".to_string()),
        Just("\u{85}\u{9f}\u{7f}".to_string()),
        (1usize..60).prop_map(|n| "- ".repeat(n) + "deep"),
        (1usize..60).prop_map(|n| "> ".repeat(n) + "quoted"),
        (1usize..60).prop_map(|n| "<div>".repeat(n) + "x"),
        Just("| a | b |\n|---|---|\n| 1 | 2 |".to_string()),
        Just("```\nfn main() {}\n```".to_string()),
        Just("- [ ] task\n- [x] done".to_string()),
    ]
}

fn issue_text() -> impl Strategy<Value = String> {
    (
        fragment(),
        fragment(),
        proptest::collection::vec((fragment(), fragment()), 1..4),
    )
        .prop_map(|(intro, section, items)| {
            let mut text = format!(
                "+++\ntitle = \"Generated\"\nnumber = 1\ndate = 2026-11-29\n+++\n{intro}\n\n## {section}\n\n"
            );
            for (title, body) in items {
                text.push_str(&format!("### {title}\n\n{body}\n\n"));
            }
            text
        })
}

/// The bytes `herald send` would hand the relay for one recipient.
fn sent_message(
    issue: &herald::issue::Issue,
    settings: &Settings,
    templates: &Templates,
) -> Vec<u8> {
    let context = EmailContext {
        site_title: &settings.site.title,
        language: &settings.site.language,
    };
    let email = render_email(issue, &context, templates).expect("rendered above");
    let from = settings.from_mailbox().expect("the default From");
    let headers = MessageHeaders {
        from: &from,
        reply_to: None,
        to: "reader@example.com".parse().expect("an address"),
        list_name: &settings.site.title,
        list_id: &settings.mail.list_id,
        unsubscribe_mailto: None,
        message_id: "<prop.1@example.com>".to_string(),
        date: std::time::SystemTime::UNIX_EPOCH,
    };
    let recipient = Recipient {
        email: "reader@example.com",
        unsubscribe_url: "https://example.com/unsubscribe/t",
        web_url: "https://example.com/issues/x/",
        click_query: "",
    };
    build_message(&email, &recipient, &headers)
        .expect("a message is built")
        .formatted()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn an_issue_check_accepts_always_renders(text in issue_text()) {
        let settings = Settings::default();
        let templates = Templates::load(Path::new("/nonexistent")).expect("built-in templates");
        let checked = parse_issue(Path::new("gen.md"), text.as_bytes(), &settings.site.base_url);
        if let Some(issue) = checked.issue {
            let problems = rendering_problems(std::slice::from_ref(&issue), &settings, &templates);
            prop_assert!(problems.is_empty(), "accepted but failed to render: {problems:?}\n{text}");
            // And it sends: the MIME message a recipient gets is built and
            // reads back with the issue's subject.
            let message = sent_message(&issue, &settings, &templates);
            let parsed = mail_parser::MessageParser::default().parse(&message);
            let subject = parsed.as_ref().and_then(|m| m.subject());
            prop_assert_eq!(subject, Some(issue.title.as_str()), "{}", text);
        }
    }
}
