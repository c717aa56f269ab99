//! What `check` accepts always renders: the email (MJML included), the
//! text part and the site with its feeds. Issues are generated from
//! Markdown and HTML fragments, hostile characters and deep nesting; for
//! every one that parses without error, rendering must succeed.

use std::path::Path;

use herald::config::Settings;
use herald::issue::parse_issue;
use herald::render::{rendering_problems, Templates};
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

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn an_issue_check_accepts_always_renders(text in issue_text()) {
        let settings = Settings::default();
        let templates = Templates::load(Path::new("/nonexistent")).expect("built-in templates");
        let checked = parse_issue(Path::new("gen.md"), text.as_bytes(), &settings.site.base_url);
        if let Some(issue) = checked.issue {
            let problems = rendering_problems(&[issue], &settings, &templates);
            prop_assert!(problems.is_empty(), "accepted but failed to render: {problems:?}\n{text}");
        }
    }
}
