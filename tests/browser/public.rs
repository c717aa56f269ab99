//! The reader's side: the archive's subscribe form, the confirmation mail's
//! link, the welcome mail's unsubscribe link, each page's button clicked in
//! Chromium against a real `herald serve` with a file outbox, on every
//! backend the run tests.

use crate::db::{for_each_backend_async, Backend};
use crate::driver::{browser_tests_on, free_port, Browser};
use crate::helpers::Workspace;
use crate::processes::{herald_ok, subscriber_state, wait_for_link, Serve};

const READER: &str = "browser.reader@example.com";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_subscribes_confirms_and_unsubscribes_by_clicking_through_real_pages() {
    if !browser_tests_on("a_reader_subscribes_confirms_and_unsubscribes") {
        return;
    }
    for_each_backend_async(|backend| async move { subscribe_confirm_unsubscribe(&backend).await })
        .await;
}

async fn subscribe_confirm_unsubscribe(backend: &Backend) {
    let port = free_port();
    let scratch = tempfile::tempdir().expect("a temporary folder");
    let database = backend.database(scratch.path());
    let ws = Workspace::with_examples(&format!(
        "[site]\nbase_url = \"http://127.0.0.1:{port}/\"\nlanguage = \"en\"\n{}",
        database.config()
    ));
    herald_ok(&ws, &["build"]);
    let serve = Serve::start(&ws, port, &[], port);
    let browser = Browser::start().await;
    let shot = |page: &str| format!("public-{}-{page}", backend.name());

    // The archive's front page, then an issue in it.
    browser.goto(&serve.url("/")).await;
    browser.wait_for("form.subscribe").await;
    browser.check_widths(&shot("archive")).await;
    browser.click("ol.issues li:first-child h3 a").await;
    browser.wait_for("main").await;
    browser.check_widths(&shot("issue")).await;

    // The sign-up form on the front page, filled in and submitted.
    browser.goto(&serve.url("/")).await;
    browser
        .fill("form.subscribe input[name=email]", READER)
        .await;
    browser
        .fill("form.subscribe input[name=name]", "Browser Reader")
        .await;
    browser.click("form.subscribe button[type=submit]").await;
    browser.wait_for_text("h1", "Check your inbox").await;
    browser.check_widths(&shot("check-inbox")).await;
    assert_eq!(subscriber_state(&ws, READER).as_deref(), Some("pending"));

    // The confirmation mail's link shows a page; only its button confirms.
    let confirm = wait_for_link(&ws, READER, &serve.url("/confirm/"));
    browser.goto(&confirm).await;
    browser
        .wait_for_text("h1", "Confirm your subscription")
        .await;
    browser.check_widths(&shot("confirm")).await;
    assert_eq!(
        subscriber_state(&ws, READER).as_deref(),
        Some("pending"),
        "opening the link confirms nothing"
    );
    browser.click("main form button[type=submit]").await;
    browser.wait_for_text("h1", "You are subscribed").await;
    browser.check_widths(&shot("confirmed")).await;
    assert_eq!(subscriber_state(&ws, READER).as_deref(), Some("active"));

    // The welcome mail's unsubscribe link, likewise.
    let unsubscribe = wait_for_link(&ws, READER, &serve.url("/unsubscribe/"));
    browser.goto(&unsubscribe).await;
    browser.wait_for_text("h1", "Unsubscribe").await;
    browser.check_widths(&shot("unsubscribe")).await;
    assert_eq!(
        subscriber_state(&ws, READER).as_deref(),
        Some("active"),
        "opening the link unsubscribes nobody"
    );
    browser.click("main form button[type=submit]").await;
    browser.wait_for_text("h1", "You are unsubscribed").await;
    browser.check_widths(&shot("unsubscribed")).await;
    assert_eq!(
        subscriber_state(&ws, READER).as_deref(),
        Some("unsubscribed"),
        "{}",
        serve.log()
    );

    browser.close().await;
    drop(serve);
    drop(database);
}
