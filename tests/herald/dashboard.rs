//! The dashboard's data over HTTP: `/metrics` (token, format, values equal
//! to the database) and the HTTP request counter's labels.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use herald::config::Secret;
use herald::http::metrics::{metrics_routes, HttpMetrics, Listener, MetricsState};
use herald::store::Store;

use crate::db;
use crate::send::seed_subscribers;

const TOKEN: &str = "scrape-me-0123456789";

/// Serves `router` on a free loopback port; the base URL.
async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    format!("http://{address}")
}

/// The samples of an OpenMetrics text: `name{labels}` to value. Fails on
/// any line that is neither a comment nor `name{labels} value`, and on a
/// text that does not end with `# EOF`.
fn parse_samples(text: &str) -> BTreeMap<String, f64> {
    assert!(text.ends_with("# EOF\n"), "ends with # EOF: {text}");
    let mut samples = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("not a sample: {line:?}"));
        let name_end = series.find('{').unwrap_or(series.len());
        let name = &series[..name_end];
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "metric name {name:?} in {line:?}"
        );
        if name_end < series.len() {
            assert!(series.ends_with('}'), "labels close: {line:?}");
        }
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("value of {line:?}"));
        samples.insert(series.to_string(), value);
    }
    samples
}

async fn get_metrics(base: &str, token: Option<&str>) -> reqwest::Response {
    let mut request = reqwest::Client::new().get(format!("{base}/metrics"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_need_the_token_and_match_the_database() {
    db::for_each_backend_async(|backend| async move {
        let dir = tempfile::tempdir().unwrap();
        let database = backend.database(dir.path());
        let location = database.location();
        tokio::task::spawn_blocking(move || seed_subscribers(&location, 7))
            .await
            .unwrap();
        let store: Store = database.store().await;
        db::execute(
            &store,
            "UPDATE subscribers SET state = 'unsubscribed' WHERE id IN (1, 2)",
        )
        .await;

        db::execute(
            &store,
            "INSERT INTO campaigns (id, issue_slug, issue_number, issue_hash, subject, html, text, state, created_at)
             VALUES (1, 'vol-001', 1, 'h', 's', 'h', 't', 'finished', 0)",
        )
        .await;
        db::execute(
            &store,
            "INSERT INTO deliveries (campaign_id, subscriber_id, kind, recipient, state, next_attempt_at, message_id, created_at, last_code)
             VALUES (1, 3, 'issue', 'a', 'sent', 0, 'm1', 0, 250),
                    (1, 4, 'issue', 'b', 'sent', 0, 'm2', 0, 250),
                    (1, 5, 'issue', 'c', 'failed', 0, 'm3', 0, 550),
                    (NULL, 6, 'confirmation', 'd', 'queued', 0, 'm4', 0, NULL)",
        )
        .await;

        let http = HttpMetrics::default();
        // A route with a parameter, to see the label is its pattern, and a
        // fallback as the public site has.
        let public = http.track(
            Router::new()
                .route("/items/{id}", get(|| async { "item" }))
                .fallback(|| async { (axum::http::StatusCode::NOT_FOUND, "no such page") }),
            Listener::Public,
        );
        let state = MetricsState {
            store: store.clone(),
            token: Some(Arc::new(Secret::new(TOKEN))),
            http: http.clone(),
        };
        let base = serve(public.merge(metrics_routes(state))).await;

        assert_eq!(get_metrics(&base, None).await.status(), 401);
        assert_eq!(get_metrics(&base, Some("wrong")).await.status(), 401);
        let basic = reqwest::Client::new()
            .get(format!("{base}/metrics"))
            .basic_auth("x", Some(TOKEN))
            .send()
            .await
            .unwrap();
        assert_eq!(basic.status(), 401, "only a bearer token");

        for id in [41, 42, 43] {
            let item = reqwest::get(format!("{base}/items/{id}")).await.unwrap();
            assert_eq!(item.status(), 200);
        }
        let _ = reqwest::get(format!("{base}/nowhere")).await.unwrap();

        let response = get_metrics(&base, Some(TOKEN)).await;
        assert_eq!(response.status(), 200);
        let content_type = response.headers()["content-type"].to_str().unwrap().to_string();
        assert!(content_type.starts_with("application/openmetrics-text"), "{content_type}");
        let text = response.text().await.unwrap();
        let samples = parse_samples(&text);
        let sample = |series: &str| -> f64 {
            *samples
                .get(series)
                .unwrap_or_else(|| panic!("{series} missing from:\n{text}"))
        };

        for state in ["active", "unsubscribed", "pending", "bounced", "complained"] {
            let real = db::scalar_i64(
                &store,
                &format!("SELECT COUNT(*) FROM subscribers WHERE state = '{state}'"),
            )
            .await;
            assert_eq!(
                sample(&format!("herald_subscribers{{state=\"{state}\"}}")),
                real as f64,
                "{state}"
            );
        }
        assert_eq!(sample("herald_subscribers{state=\"active\"}"), 5.0);
        assert_eq!(sample("herald_signups_total"), 7.0);
        for (kind, state) in [("issue", "sent"), ("issue", "failed"), ("confirmation", "queued")] {
            let real = db::scalar_i64(
                &store,
                &format!(
                    "SELECT COUNT(*) FROM deliveries WHERE kind = '{kind}' AND state = '{state}'"
                ),
            )
            .await;
            assert_eq!(
                sample(&format!("herald_deliveries{{kind=\"{kind}\",state=\"{state}\"}}")),
                real as f64,
                "{kind} {state}"
            );
        }
        assert_eq!(sample("herald_messages_sent_total"), 2.0);
        assert_eq!(sample("herald_smtp_replies_total{class=\"2xx\"}"), 2.0);
        assert_eq!(sample("herald_smtp_replies_total{class=\"5xx\"}"), 1.0);
        assert_eq!(sample("herald_smtp_replies_total{class=\"4xx\"}"), 0.0);
        assert_eq!(sample("herald_complaints_total"), 0.0);
        assert_eq!(
            sample(
                "herald_http_requests_total{listener=\"public\",route=\"/items/{id}\",status=\"200\"}"
            ),
            3.0
        );
        assert!(
            !text.contains("/items/42"),
            "never the raw path as a label:\n{text}"
        );
        assert_eq!(
            sample("herald_http_requests_total{listener=\"public\",route=\"(fallback)\",status=\"404\"}"),
            1.0
        );

        // Without the token configured, /metrics is not there at all.
        let off = MetricsState {
            store: store.clone(),
            token: None,
            http,
        };
        let base = serve(metrics_routes(off)).await;
        assert_eq!(get_metrics(&base, Some(TOKEN)).await.status(), 404);
        store.close().await;
    })
    .await;
}

// The Subscribers and Issues pages, through the admin router with a session.

use herald::http::admin::LoginLimits;

use crate::admin::spawn_admin_configured;
use crate::helpers::repo_path;
use crate::smtp_server::SmtpServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_pages_show_counts_growth_search_and_history() {
    db::for_each_backend_async(|backend| async move {
        let dir = tempfile::tempdir().unwrap();
        let database = backend.database(dir.path());
        let location = database.location();
        tokio::task::spawn_blocking(move || seed_subscribers(&location, 7))
            .await
            .unwrap();
        let admin = spawn_admin_configured(database, dir, LoginLimits::default(), |_| {}).await;
        let now = herald::store::now_millis();
        db::execute(
            &admin.store,
            &format!(
                "INSERT INTO subscriber_events (subscriber_id, state, reason, at) VALUES
                 (1, 'active', 'confirmed <by link>', {now}),
                 (2, 'active', 'confirmed', {now}),
                 (2, 'unsubscribed', 'one-click', {now})"
            ),
        )
        .await;
        db::execute(
            &admin.store,
            "UPDATE subscribers SET state = 'unsubscribed' WHERE id = 2",
        )
        .await;

        // No session: to the login page.
        let anonymous = admin.get(None, "/subscribers").await;
        assert_eq!(anonymous.status(), 303);
        assert_eq!(anonymous.headers()["location"], "/login");

        let session = admin.log_in().await;
        let page = admin.get(Some(&session), "/subscribers").await;
        assert_eq!(page.status(), 200);
        let html = page.text().await.unwrap();
        assert!(html.contains("id=\"growth-chart\""), "{html}");
        let chart_start = html.find("<svg").expect("an inline SVG chart");
        let chart_end = html.find("</svg>").expect("the chart ends") + "</svg>".len();
        let chart = roxmltree::Document::parse(&html[chart_start..chart_end]).expect("SVG parses");
        let confirmed: Vec<_> = chart
            .descendants()
            .filter(|n| n.attribute("class") == Some("bar confirmed"))
            .collect();
        assert_eq!(confirmed.len(), 1, "this week's bar");
        assert_eq!(confirmed[0].attribute("data-count"), Some("2"));
        assert!(
            html.contains("<tr data-state=\"active\"><td>active</td><td class=\"num\">6</td>"),
            "{html}"
        );
        assert!(html.contains(
            "<tr data-state=\"unsubscribed\"><td>unsubscribed</td><td class=\"num\">1</td>"
        ));
        assert!(html.contains("id=\"counts-by-source\""));
        assert!(html.contains("<tr data-source=\"cli\"><td>cli</td><td class=\"num\">7</td>"));
        assert!(html.contains("<form id=\"search\" method=\"get\""));
        assert!(!html.contains("id=\"results\""), "no search, no results");

        let found = admin
            .get(Some(&session), "/subscribers?q=reader0000")
            .await
            .text()
            .await
            .unwrap();
        assert!(found.contains("id=\"results\""), "{found}");
        for i in 0..7 {
            assert!(found.contains(&format!("reader{i:05}@example.com")), "{i}");
        }
        let one = admin
            .get(Some(&session), "/subscribers?q=reader00003")
            .await
            .text()
            .await
            .unwrap();
        assert_eq!(one.matches("data-subscriber-id=").count(), 1, "{one}");
        let none = admin
            .get(Some(&session), "/subscribers?q=%3Cscript%3E")
            .await
            .text()
            .await
            .unwrap();
        assert!(!none.contains("id=\"results\""));
        assert!(
            none.contains("&lt;script&gt;") && !none.contains("<script>"),
            "escaped"
        );

        let subscriber = admin.get(Some(&session), "/subscribers/1").await;
        assert_eq!(subscriber.status(), 200);
        let html = subscriber.text().await.unwrap();
        assert!(html.contains("id=\"subscriber\""));
        assert!(html.contains("reader00000@example.com"));
        assert!(html.contains("<table id=\"history\">"));
        assert!(html.contains("confirmed &lt;by link&gt;"), "{html}");
        for missing in ["/subscribers/999", "/subscribers/abc"] {
            assert_eq!(
                admin.get(Some(&session), missing).await.status(),
                404,
                "{missing}"
            );
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issues_page_checks_previews_and_sends_rate_limited_test_copies() {
    let dir = tempfile::tempdir().unwrap();
    let issues = dir.path().join("issues");
    std::fs::create_dir(&issues).unwrap();
    std::fs::copy(
        repo_path("examples/issues/vol-001.md"),
        issues.join("vol-001.md"),
    )
    .unwrap();
    std::fs::write(
        issues.join("broken.md"),
        "+++\ntitle = \"x\"\n+++\nno number\n",
    )
    .unwrap();
    let server = SmtpServer::start();
    let smtp_url = server.url();
    let database = db::Backend::Sqlite.database(dir.path());
    let admin = spawn_admin_configured(database, dir, LoginLimits::default(), |settings| {
        settings.smtp.url = smtp_url;
        settings.site.base_url = "https://news.example.com/".parse().unwrap();
        settings.metrics_token = Some(Secret::new(TOKEN));
    })
    .await;
    let session = admin.log_in().await;

    let page = admin.get(Some(&session), "/issues").await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("<table id=\"issues\">"), "{html}");
    assert!(html.contains("<tr data-slug=\"vol-001\""));
    assert!(
        html.contains("<td class=\"check-status ok\">ok</td>"),
        "{html}"
    );
    assert!(
        html.contains("<td class=\"check-status errors\">errors</td>"),
        "{html}"
    );
    assert!(html.contains("href=\"/issues/vol-001/preview\""));
    assert!(html.contains(
        "<form class=\"test-copy\" method=\"post\" action=\"/issues/vol-001/test-copy\">"
    ));
    assert!(html.contains("sandbox"), "the preview frame is sandboxed");

    let preview = admin.get(Some(&session), "/issues/vol-001/preview").await;
    assert_eq!(preview.status(), 200);
    let csp = preview.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.contains("frame-ancestors 'self'"), "{csp}");
    assert_eq!(preview.headers()["x-frame-options"], "SAMEORIGIN");
    assert!(preview.text().await.unwrap().contains("</html>"));
    assert_eq!(
        admin
            .get(Some(&session), "/issues/nope/preview")
            .await
            .status(),
        404
    );

    let send = |to: &'static str| {
        let session = session.clone();
        let admin = &admin;
        async move {
            admin
                .post(
                    Some(&session),
                    "/issues/vol-001/test-copy",
                    &[("csrf", session.csrf.as_str()), ("to", to)],
                )
                .await
        }
    };
    // Without the CSRF token: refused before anything is sent.
    let forged = admin
        .post(
            Some(&session),
            "/issues/vol-001/test-copy",
            &[("to", "editor@example.com")],
        )
        .await;
    assert_eq!(forged.status(), 403);
    let bad = send("not an address").await;
    assert_eq!(bad.status(), 400);
    assert!(bad
        .text()
        .await
        .unwrap()
        .contains("id=\"test-copy-result\""));
    assert!(server.messages().is_empty());

    let sent = send("editor@example.com").await;
    assert_eq!(sent.status(), 200);
    assert!(sent
        .text()
        .await
        .unwrap()
        .contains("sent to editor@example.com"));
    let messages = server.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].to, ["editor@example.com"]);
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(send("editor@example.com").await.status().as_u16());
    }
    assert_eq!(statuses.last(), Some(&429), "rate-limited: {statuses:?}");
    assert!(server.messages().len() <= 6);

    // /metrics on the admin router: the session does not open it; the
    // token does, and the pages above were counted by route pattern.
    assert_eq!(admin.get(Some(&session), "/metrics").await.status(), 401);
    let metrics = reqwest::Client::new()
        .get(admin.url("/metrics"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), 200);
    let text = metrics.text().await.unwrap();
    let samples = parse_samples(&text);
    assert!(
        samples.contains_key(
            "herald_http_requests_total{listener=\"admin\",route=\"/issues/{slug}/preview\",status=\"200\"}"
        ),
        "{text}"
    );
}
