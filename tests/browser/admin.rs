//! The editor's desk in Chromium: logging in (and being refused), cancelling
//! a scheduled send from its campaign page, and a running campaign's
//! progress moving on the open page, all against a real `herald serve` with
//! its admin listener.

use std::io::Write;
use std::process::{Child, Stdio};

use serde_json::{json, Value};

use crate::driver::{browser_tests_on, free_port, Browser};
use crate::helpers::Workspace;
use crate::processes::{herald_command, herald_ok, Serve};

const PASSWORD: &str = "correct horse battery staple";

/// A newsletter with `readers` confirmed subscribers, its admin site on a
/// port of its own, and the Argon2id hash of [`PASSWORD`] that turns it on.
struct Desk {
    ws: Workspace,
    /// Kept for its drop, which stops the server.
    _serve: Serve,
    admin: String,
}

impl Desk {
    fn open(readers: usize, extra_config: &str) -> Desk {
        let port = free_port();
        let admin_port = free_port();
        let ws = Workspace::with_examples(&format!(
            "[site]\nbase_url = \"http://127.0.0.1:{port}/\"\n\
             [admin]\nlisten = \"127.0.0.1:{admin_port}\"\n{extra_config}"
        ));
        add_readers(&ws, readers);
        let hash = hash_password(&ws, PASSWORD);
        let serve = Serve::start(
            &ws,
            port,
            &[("HERALD_ADMIN_PASSWORD_HASH", hash.as_str())],
            admin_port,
        );
        Desk {
            ws,
            _serve: serve,
            admin: format!("http://127.0.0.1:{admin_port}"),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.admin)
    }

    /// Logs in through the login form and lands on the campaigns page.
    async fn log_in(&self, browser: &Browser) {
        browser.goto(&self.url("/login")).await;
        browser.fill("#password", PASSWORD).await;
        browser.click("#login-submit").await;
        browser.wait_for("table#campaigns").await;
    }
}

/// `herald admin hash-password`, with the password on its standard input
/// (not a terminal, so it reads one line).
fn hash_password(ws: &Workspace, password: &str) -> String {
    let mut child = herald_command(ws)
        .args(["admin", "hash-password"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("herald admin hash-password starts");
    child
        .stdin
        .take()
        .expect("a piped stdin")
        .write_all(format!("{password}\n").as_bytes())
        .expect("writing the password");
    let output = child.wait_with_output().expect("hash-password runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let hash = String::from_utf8_lossy(&output.stdout).trim().to_string();
    assert!(hash.starts_with("$argon2id$"), "not a PHC hash: {hash:?}");
    hash
}

/// Imports `count` confirmed readers.
fn add_readers(ws: &Workspace, count: usize) {
    if count == 0 {
        return;
    }
    let mut csv = String::from("email,name\n");
    for i in 0..count {
        csv.push_str(&format!("reader{i:04}@example.com,Reader {i}\n"));
    }
    let file = ws.path().join("readers.csv");
    std::fs::write(&file, csv).expect("writing the CSV");
    herald_ok(
        ws,
        &[
            "subscribers",
            "import",
            file.to_str().expect("a UTF-8 path"),
            "--confirmed",
        ],
    );
}

/// The id of the newest campaign in the campaigns table, once there is one.
async fn newest_campaign(browser: &Browser, desk: &Desk) -> String {
    let deadline = std::time::Instant::now() + crate::driver::DEADLINE;
    loop {
        browser.goto(&desk.url("/campaigns")).await;
        browser.wait_for("table#campaigns").await;
        let found = browser
            .eval(
                "var row = document.querySelector('#campaigns tr[data-campaign-id]'); \
                 return row ? row.getAttribute('data-campaign-id') : null;",
            )
            .await;
        if let Value::String(id) = found {
            return id;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no campaign in the campaigns table"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

async fn campaign_state(browser: &Browser) -> Value {
    browser
        .eval(
            "var c = document.querySelector('#campaign'); \
             return c ? c.getAttribute('data-state') : null;",
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_editor_logs_in_after_a_wrong_password_is_refused_and_logs_out() {
    if !browser_tests_on("the_editor_logs_in_after_a_wrong_password_is_refused_and_logs_out") {
        return;
    }
    let desk = Desk::open(2, "");
    let browser = Browser::start().await;

    // Without a session, the site sends the browser to the login page.
    browser.goto(&desk.url("/")).await;
    browser.wait_for("form#login-form").await;
    assert!(
        browser.url().await.ends_with("/login"),
        "{}",
        browser.url().await
    );
    browser.check_widths("admin-login").await;

    browser.fill("#password", "not the password").await;
    browser.click("#login-submit").await;
    browser.wait_for("#login-error").await;
    assert_eq!(browser.response_status().await, 401);
    assert!(browser
        .client
        .get_named_cookie("herald_admin")
        .await
        .is_err());
    browser.check_widths("admin-login-refused").await;

    browser.fill("#password", PASSWORD).await;
    browser.click("#login-submit").await;
    browser.wait_for("table#campaigns").await;
    assert!(
        browser.url().await.ends_with("/campaigns"),
        "{}",
        browser.url().await
    );
    let cookie = browser
        .client
        .get_named_cookie("herald_admin")
        .await
        .expect("a session cookie after logging in");
    assert_eq!(cookie.http_only(), Some(true));
    assert_eq!(
        cookie.same_site().map(|s| s.to_string()).as_deref(),
        Some("Strict")
    );
    assert_eq!(cookie.path(), Some("/"));
    assert_ne!(cookie.secure(), Some(true), "not Secure on loopback");
    for id in [
        "#admin-nav",
        "#nav-campaigns",
        "#nav-subscribers",
        "#nav-issues",
    ] {
        browser.wait_for(id).await;
    }
    browser.check_widths("admin-campaigns-empty").await;

    // The other two pages, through the navigation, at both widths.
    browser.click("#nav-subscribers").await;
    browser.wait_for("#growth-chart").await;
    browser.wait_for("#counts-by-state").await;
    browser
        .fill("#search input[name=\"q\"]", "reader0001")
        .await;
    browser.click("#search button").await;
    browser
        .wait_for_text("#results tbody a", "reader0001@example.com")
        .await;
    browser.check_widths("admin-subscribers").await;
    browser.click("#nav-issues").await;
    browser
        .wait_for("#issues tr[data-slug=\"vol-001\"] td.check-status")
        .await;
    browser.check_widths("admin-issues").await;

    browser.click("#logout").await;
    browser.wait_for("form#login-form").await;
    browser.goto(&desk.url("/campaigns")).await;
    browser.wait_for("form#login-form").await;
    assert!(browser.url().await.ends_with("/login"), "logged out");

    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_send_is_cancelled_from_its_campaign_page() {
    if !browser_tests_on("a_scheduled_send_is_cancelled_from_its_campaign_page") {
        return;
    }
    let desk = Desk::open(3, "");
    let tomorrow = (chrono::Utc::now() + chrono::Duration::days(1)).to_rfc3339();
    herald_ok(&desk.ws, &["send", "issues/vol-002.md", "--at", &tomorrow]);
    let browser = Browser::start().await;
    desk.log_in(&browser).await;

    let id = newest_campaign(&browser, &desk).await;
    let row = format!("#campaigns tr[data-campaign-id=\"{id}\"]");
    browser
        .wait_for_text(&format!("{row} td.state"), "scheduled")
        .await;
    browser.check_widths("admin-campaigns-scheduled").await;
    browser
        .click(&format!("{row} a[href=\"/campaigns/{id}\"]"))
        .await;
    browser.wait_for("section#campaign").await;
    assert_eq!(campaign_state(&browser).await, json!("scheduled"));
    assert!(
        browser.text_of("#pause").await.is_none(),
        "no pause before it starts"
    );
    browser.check_widths("admin-campaign-scheduled").await;

    browser.click("#cancel").await;
    browser
        .wait_until("the campaign page to say cancelled", || async {
            campaign_state(&browser).await == json!("cancelled")
        })
        .await;
    assert!(
        browser.url().await.ends_with(&format!("/campaigns/{id}")),
        "back on the campaign's page: {}",
        browser.url().await
    );
    assert!(
        browser.text_of("#cancel").await.is_none(),
        "nothing to cancel"
    );
    browser.check_widths("admin-campaign-cancelled").await;
    browser.goto(&desk.url("/campaigns")).await;
    browser
        .wait_for_text(&format!("{row} td.state"), "cancelled")
        .await;

    // The command line agrees: nothing is scheduled any more.
    let output = herald_command(&desk.ws)
        .args(["send", "--cancel", "vol-002"])
        .output()
        .expect("herald runs");
    assert_eq!(output.status.code(), Some(1), "already cancelled");

    browser.close().await;
}

/// A `herald send` running beside the server, killed on drop.
struct RunningSend(Child);

impl Drop for RunningSend {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_campaign_s_progress_moves_on_the_open_page() {
    if !browser_tests_on("a_running_campaign_s_progress_moves_on_the_open_page") {
        return;
    }
    // 200 readers at 10 a second: the send runs for 20 s, long past the
    // moments the test watches.
    let desk = Desk::open(200, "");
    let send = RunningSend(
        herald_command(&desk.ws)
            .args(["send", "issues/vol-002.md", "--rate", "10"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("herald send starts"),
    );
    let browser = Browser::start().await;
    desk.log_in(&browser).await;
    let id = newest_campaign(&browser, &desk).await;
    browser.goto(&desk.url(&format!("/campaigns/{id}"))).await;
    browser.wait_for("progress#progress").await;
    browser
        .wait_until("the campaign to be sending", || async {
            campaign_state(&browser).await == json!("sending")
        })
        .await;
    browser.wait_for("#pause").await;
    // A mark on this window: still there at the end, the page was never
    // reloaded; the numbers moved by the event stream alone.
    browser
        .eval("window.heraldTestMark = true; return null;")
        .await;
    let progress = || async {
        browser
            .eval("return document.querySelector('#progress').value;")
            .await
            .as_f64()
    };
    let sent = || async {
        browser
            .text_of("#count-sent")
            .await
            .and_then(|text| text.replace(',', "").parse::<u64>().ok())
    };
    let first = progress().await.expect("a progress value");
    let first_sent = sent().await.expect("a sent count");
    browser
        .wait_until("#progress to move", || async {
            progress().await.is_some_and(|value| value > first + 5.0)
        })
        .await;
    let later_sent = sent().await.expect("a sent count");
    assert!(later_sent > first_sent, "{later_sent} after {first_sent}");
    let max = browser
        .eval("return document.querySelector('#progress').max;")
        .await;
    assert_eq!(max.as_f64(), Some(200.0));
    assert_eq!(
        browser.eval("return window.heraldTestMark === true;").await,
        json!(true),
        "the page reloaded"
    );
    let rate = browser.text_of("#rate").await.unwrap_or_default();
    assert!(!rate.is_empty(), "a rate while sending");
    browser.check_widths("admin-campaign-sending").await;

    browser.close().await;
    drop(send);
}
