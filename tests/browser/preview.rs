//! `herald preview --watch` in Chromium: the open page reloads itself when
//! the issue file changes, through its own EventSource, with nobody
//! pressing reload.

use crate::driver::{browser_tests_on, Browser};
use crate::helpers::Workspace;
use crate::processes::Preview;

const TITLE: &str = "Cloud Native Weekly #2: Kubernetes 1.14 settles in";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_open_preview_reloads_itself_when_the_issue_file_changes() {
    if !browser_tests_on("the_open_preview_reloads_itself_when_the_issue_file_changes") {
        return;
    }
    let ws = Workspace::with_examples("");
    let issue = ws.issues().join("vol-002.md");
    let original = std::fs::read_to_string(&issue).expect("the example issue");
    let preview = Preview::start(&ws, &issue);
    let browser = Browser::start().await;

    browser.goto(&format!("{}/", preview.base)).await;
    browser.wait_for_text("#subject", TITLE).await;
    browser.wait_for("#phone").await;
    browser.wait_for("#desktop").await;
    browser.check_widths("preview").await;
    let first = generation(&browser).await;
    // A mark on this page's window: a reload makes a new window object, so
    // the mark's absence later proves the page reloaded rather than being
    // patched in place.
    // Whether the edit lands before or after the page's EventSource
    // connects, the page reloads: the stream's first event names the
    // newest generation.
    browser
        .eval("window.heraldTestMark = true; return null;")
        .await;

    let title = "Kubernetes 1.14, week two & counting";
    std::fs::write(&issue, original.replace(TITLE, title)).expect("editing the issue");
    browser.wait_for_text("#subject", title).await;
    let second = generation(&browser).await;
    assert!(second > first, "generation {second} after {first}");
    let mark = browser.eval("return window.heraldTestMark === true;").await;
    assert_eq!(mark, serde_json::json!(false), "the page was not reloaded");
    assert!(
        browser.url().await.starts_with(&preview.base),
        "the page stayed on the preview"
    );

    // An error replaces the email on the open page, and fixing it brings
    // the email back, both without a hand on the page.
    std::fs::write(&issue, format!("{original}\n# A level-one heading\n")).expect("editing");
    browser
        .wait_until("the diagnostics to show one error", || async {
            browser
                .eval("var d = document.querySelector('#diagnostics'); return d ? d.getAttribute('data-errors') : null;")
                .await
                == serde_json::json!("1")
        })
        .await;
    browser.check_widths("preview-error").await;
    assert!(
        browser.text_of("#phone").await.is_none(),
        "no email with an error"
    );
    std::fs::write(&issue, &original).expect("restoring the issue");
    browser.wait_for_text("#subject", TITLE).await;
    browser.wait_for("#phone").await;

    browser.close().await;
}

/// The generation the page shows (`body[data-generation]`).
async fn generation(browser: &Browser) -> u64 {
    let value = browser
        .eval("return document.body.getAttribute('data-generation');")
        .await;
    value
        .as_str()
        .and_then(|text| text.parse().ok())
        .unwrap_or_else(|| panic!("no generation on the page: {value}"))
}
