//! The rendered email of every example, pinned. A change to a template or
//! the renderer shows up here as a reviewable diff (`cargo insta review`).

use herald::config::Settings;
use herald::issue;
use herald::render::{render_email, EmailContext, Templates};

use crate::helpers::example_issues;

#[test]
fn rendered_examples_match_their_snapshots() {
    let settings = Settings::default();
    let templates = Templates::builtin();
    for path in example_issues() {
        let issue = issue::read_issue(&path, &settings.site.base_url)
            .unwrap()
            .issue
            .unwrap();
        let context = EmailContext {
            site_title: "Herald Weekly",
            language: if issue.title.is_ascii() {
                "en"
            } else {
                "zh-CN"
            },
        };
        let email = render_email(&issue, &context, &templates).unwrap();
        // One tag a line, so a diff points at the change.
        let html = email.html.template().replace("><", ">\n<");
        insta::assert_snapshot!(format!("{}.html", issue.slug), html);
        insta::assert_snapshot!(format!("{}.txt", issue.slug), email.text.template());
    }
}
