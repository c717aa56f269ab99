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
