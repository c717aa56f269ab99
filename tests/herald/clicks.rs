//! Link clicks (`[tracking]`): a real send through a real SMTP server,
//! then the real router over TCP, on every backend.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use herald::cli::SendArgs;
use herald::clicks::ClickCounter;
use herald::commands::send::run as send_issue;
use herald::config::Settings;
use herald::http::clicks::click_routes;
use herald::http::server::{serve, ServerLimits};
use herald::http::{router, AppState};
use herald::store::clicks::{ranked_links, LinkClicks};
use reqwest::header::{LOCATION, USER_AGENT};
use reqwest::StatusCode;

use crate::db::{self, for_each_backend};
use crate::helpers::{herald, repo_path};
use crate::send::{address, block_on, open_store, setup, SendSetup};
use crate::smtp_server::SmtpServer;

const BROWSER: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
/// The example issue's first and thirteenth (last) item links.
const FIRST: &str = "https://cloud.google.com/blog/products/serverless/announcing-cloud-run-the-newest-member-of-our-serverless-compute-stack";
const LAST: &str = "https://imroc.io/posts/istio/istio-cni/";
const LINKS: i64 = 13;
const THIRD: &str =
    "https://techcrunch.com/2019/04/11/the-6-biggest-announcements-from-google-cloud-next-2019/";

fn send(settings: &Settings) {
    let args = SendArgs {
        issue: repo_path("examples/issues/vol-001.md"),
        force_new: false,
        to: None,
        dry_run: false,
        concurrency: None,
        rate: None,
        at: None,
        cancel: false,
    };
    assert_eq!(
        send_issue(settings, &args, true).unwrap(),
        ExitCode::SUCCESS
    );
}

/// A send of the example issue to three readers with `tracking` applied.
fn sent(backend: &db::Backend, tracking: impl Fn(&mut Settings)) -> (SendSetup, SmtpServer) {
    let server = SmtpServer::start();
    let mut s = setup(backend, &server.url(), 3);
    tracking(&mut s.settings);
    send(&s.settings);
    assert_eq!(server.messages().len(), 3);
    (s, server)
}

fn parts(server: &SmtpServer, reader: usize) -> (String, String) {
    let message = server
        .messages()
        .into_iter()
        .find(|m| m.to == vec![address(reader)])
        .expect("a copy for the reader");
    let parsed = mail_parser::MessageParser::default()
        .parse(&message.data)
        .unwrap();
    (
        parsed.body_html(0).unwrap().into_owned(),
        parsed.body_text(0).unwrap().replace("\r\n", "\n"),
    )
}

/// The router `herald serve` runs, on a port of its own.
struct Router {
    runtime: tokio::runtime::Runtime,
    address: SocketAddr,
    client: reqwest::Client,
}

impl Router {
    fn start(settings: &Settings) -> Router {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let address = runtime.block_on(async {
            let store = open_store(settings).await;
            let counter = ClickCounter::new(store, settings.tracking.clone())
                .await
                .unwrap();
            let app = router(AppState::new(settings.clone())).merge(click_routes(counter));
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let address = listener.local_addr().unwrap();
            let limits = ServerLimits::from_settings(&settings.server);
            tokio::spawn(serve(listener, app, limits, std::future::pending()));
            address
        });
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Router {
            runtime,
            address,
            client,
        }
    }

    /// `path` requested with `method` and, if given, a User-Agent: the
    /// status and the Location header.
    fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        agent: Option<&str>,
    ) -> (StatusCode, Option<String>) {
        let url = format!("http://{}{path}", self.address);
        self.runtime.block_on(async {
            let mut request = self.client.request(method, &url);
            if let Some(agent) = agent {
                request = request.header(USER_AGENT, agent);
            }
            let response = request.send().await.unwrap();
            let location = response
                .headers()
                .get(LOCATION)
                .map(|v| v.to_str().unwrap().to_string());
            if response.status() == StatusCode::FOUND {
                let headers = response.headers();
                assert_eq!(headers["cache-control"], "no-store");
                assert_eq!(headers["referrer-policy"], "no-referrer");
            }
            (response.status(), location)
        })
    }

    fn get(&self, path: &str, agent: Option<&str>) -> (StatusCode, Option<String>) {
        self.request(reqwest::Method::GET, path, agent)
    }
}

fn campaign_id(settings: &Settings) -> i64 {
    block_on(async {
        let store = open_store(settings).await;
        db::scalar_i64(&store, "SELECT MAX(id) FROM campaigns").await
    })
}

fn ranked(settings: &Settings, campaign: i64) -> Vec<LinkClicks> {
    block_on(async {
        let store = open_store(settings).await;
        let mut tx = store.begin_read().await.unwrap();
        let links = ranked_links(&mut tx, campaign, 100).await.unwrap();
        tx.commit().await.unwrap();
        links
    })
}

fn counts_of(links: &[LinkClicks], index: i64) -> (i64, i64) {
    let link = links.iter().find(|l| l.link_index == index).unwrap();
    (link.human_clicks, link.bot_clicks)
}

fn scalar(settings: &Settings, sql: &str) -> i64 {
    block_on(async {
        let store = open_store(settings).await;
        db::scalar_i64(&store, sql).await
    })
}

/// A config file naming the test's database, for the CLI.
fn config_file(s: &SendSetup) -> PathBuf {
    let path = s.dir.path().join("herald.toml");
    std::fs::write(&path, s.db.config()).unwrap();
    path
}

#[test]
fn tracked_links_redirect_count_and_rank() {
    for_each_backend(|backend| {
        let (s, server) = sent(backend, |settings| {
            settings.tracking.clicks = true;
            settings.tracking.bot_window_secs = 0;
        });
        let campaign = campaign_id(&s.settings);
        let (html, text) = parts(&server, 1);
        for index in 1..=LINKS {
            let tracked = format!("https://news.example.com/l/{campaign}/{index}");
            assert!(
                html.contains(&format!("href=\"{tracked}\"")),
                "link {index} in {html}"
            );
            assert!(
                text.contains(&format!("{tracked}\n")),
                "link {index} in {text}"
            );
        }
        let past = format!("https://news.example.com/l/{campaign}/{}", LINKS + 1);
        assert!(!html.contains(&past) && !text.contains(&past));
        for original in [FIRST, LAST] {
            assert!(
                !html.contains(original) && !text.contains(original),
                "{original}"
            );
        }
        // No open pixel, no token without per_subscriber.
        assert!(!html.contains("?s=") && !text.contains("?s="));
        assert!(!html.to_lowercase().contains("<img"), "{html}");

        let router = Router::start(&s.settings);
        let first = format!("/l/{campaign}/1");
        assert_eq!(
            router.get(&first, Some(BROWSER)),
            (StatusCode::FOUND, Some(FIRST.into()))
        );
        assert_eq!(
            router.get(&format!("/l/{campaign}/13"), Some(BROWSER)),
            (StatusCode::FOUND, Some(LAST.into()))
        );
        assert_eq!(
            router.get(&format!("/l/{campaign}/13"), Some(BROWSER)).0,
            StatusCode::FOUND
        );
        // Programs: HEAD, a scanner's User-Agent, none at all.
        let head = router.request(reqwest::Method::HEAD, &first, Some(BROWSER));
        assert_eq!(head, (StatusCode::FOUND, Some(FIRST.into())));
        let scanner = "Mozilla/5.0 (compatible; Mimecast URL Protect)";
        assert_eq!(router.get(&first, Some(scanner)).0, StatusCode::FOUND);
        assert_eq!(router.get(&first, None).0, StatusCode::FOUND);
        // A query cannot choose where the redirect goes.
        assert_eq!(
            router.get(
                &format!("{first}?url=https://evil.example/&s=1-0"),
                Some(BROWSER)
            ),
            (StatusCode::FOUND, Some(FIRST.into()))
        );

        let links = ranked(&s.settings, campaign);
        assert_eq!(links.len(), LINKS as usize);
        assert_eq!(counts_of(&links, 1), (2, 3));
        assert_eq!(counts_of(&links, 13), (2, 0));
        assert_eq!(counts_of(&links, 2), (0, 0));
        // People first, then bots, then the email's order.
        let order: Vec<i64> = links.iter().take(3).map(|l| l.link_index).collect();
        assert_eq!(order, [1, 13, 2]);
        assert_eq!(scalar(&s.settings, "SELECT COUNT(*) FROM click_events"), 0);

        // Only pairs Herald made lead anywhere.
        for path in [
            format!("/l/{campaign}/999"),
            format!("/l/{campaign}/14"),
            format!("/l/{campaign}/0"),
            format!("/l/{campaign}/-1"),
            format!("/l/{campaign}/+1"),
            format!("/l/{campaign}/1.0"),
            format!("/l/{campaign}/01e3"),
            format!("/l/{campaign}/%2F%2Fevil.com"),
            format!("/l/{campaign}/https:%2F%2Fevil.com"),
            format!("/l/{campaign}/1%2F..%2F..%2Fevil"),
            format!("/l/{campaign}/99999999999999999999"),
            format!("/l/{}/1", campaign + 1),
            "/l/1/999".to_string(),
            "/l//1".to_string(),
            "/l/%2F%2Fevil.com/1".to_string(),
            "/l/1/%FF".to_string(),
        ] {
            let (status, location) = router.get(&path, Some(BROWSER));
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
            assert_eq!(location, None, "{path}");
        }
        assert_eq!(ranked(&s.settings, campaign), links, "a 404 counts nothing");

        let config = config_file(&s);
        let status = herald(
            &["--config", config.to_str().unwrap(), "status"],
            s.dir.path(),
        );
        let stdout = String::from_utf8_lossy(&status.stdout);
        assert!(status.status.success(), "{stdout}");
        assert!(stdout.contains("most clicked links"), "{stdout}");
        assert!(
            stdout.contains(&format!("   1       2       3  {FIRST}")),
            "{stdout}"
        );
        let json = herald(
            &["--config", config.to_str().unwrap(), "status", "--json"],
            s.dir.path(),
        );
        let json: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
        assert_eq!(json["links"].as_array().unwrap().len(), 10);
        assert_eq!(json["links"][0]["url"], FIRST);
    });
}

#[test]
fn a_click_right_after_the_campaign_starts_counts_as_a_scanner() {
    for_each_backend(|backend| {
        let (s, _server) = sent(backend, |settings| {
            settings.tracking.clicks = true;
            settings.tracking.bot_window_secs = 3600;
        });
        let campaign = campaign_id(&s.settings);
        let router = Router::start(&s.settings);
        assert_eq!(
            router.get(&format!("/l/{campaign}/2"), Some(BROWSER)).0,
            StatusCode::FOUND
        );
        assert_eq!(counts_of(&ranked(&s.settings, campaign), 2), (0, 1));
    });
}

#[test]
fn tracking_off_leaves_links_untouched() {
    for_each_backend(|backend| {
        let (s, server) = sent(backend, |_| {});
        let (html, text) = parts(&server, 0);
        assert!(html.contains(&format!("href=\"{FIRST}\"")), "{html}");
        assert!(text.contains(&format!("{LAST}\n")), "{text}");
        assert!(!html.contains("news.example.com/l/") && !text.contains("news.example.com/l/"));
        assert_eq!(
            scalar(&s.settings, "SELECT COUNT(*) FROM campaign_links"),
            0
        );
        let campaign = campaign_id(&s.settings);
        let router = Router::start(&s.settings);
        assert_eq!(
            router.get(&format!("/l/{campaign}/1"), Some(BROWSER)).0,
            StatusCode::NOT_FOUND
        );
    });
}

/// The token in a reader's copy of link `index`.
fn token_in(html: &str, campaign: i64, index: i64) -> String {
    let prefix = format!("https://news.example.com/l/{campaign}/{index}?s=");
    let at = html.find(&prefix).expect("a tokened link") + prefix.len();
    html[at..].split('"').next().unwrap().to_string()
}

#[test]
fn per_subscriber_clicks_name_the_reader_until_erased_or_stale() {
    for_each_backend(|backend| {
        let (s, server) = sent(backend, |settings| {
            settings.tracking.clicks = true;
            settings.tracking.per_subscriber = true;
            settings.tracking.bot_window_secs = 0;
        });
        let campaign = campaign_id(&s.settings);
        let (html, text) = parts(&server, 1);
        let token = token_in(&html, campaign, 3);
        assert_eq!(token, token_in(&html, campaign, 4), "one token per copy");
        assert!(
            text.contains(&format!("/l/{campaign}/3?s={token}\n")),
            "{text}"
        );
        let (other_html, _) = parts(&server, 2);
        assert_ne!(token, token_in(&other_html, campaign, 3));

        let router = Router::start(&s.settings);
        let path = format!("/l/{campaign}/3?s={token}");
        assert_eq!(router.get(&path, Some(BROWSER)).0, StatusCode::FOUND);
        let reader = scalar(
            &s.settings,
            &format!("SELECT id FROM subscribers WHERE email = '{}'", address(1)),
        );
        assert_eq!(scalar(&s.settings, "SELECT COUNT(*) FROM click_events"), 1);
        assert_eq!(
            scalar(&s.settings, "SELECT MIN(subscriber_id) FROM click_events"),
            reader
        );
        // A forged or altered token still leads to the item, but names nobody.
        let (id, mac) = token.split_once('-').unwrap();
        let forged_id = id.parse::<i64>().unwrap() + 1;
        for forged in [
            format!("{forged_id}-{mac}"),
            format!("{id}-0000000000000000"),
            "x".into(),
        ] {
            let (status, location) =
                router.get(&format!("/l/{campaign}/3?s={forged}"), Some(BROWSER));
            assert_eq!(
                (status, location.as_deref()),
                (StatusCode::FOUND, Some(THIRD))
            );
        }
        assert_eq!(scalar(&s.settings, "SELECT COUNT(*) FROM click_events"), 1);
        assert_eq!(counts_of(&ranked(&s.settings, campaign), 3), (4, 0));

        // Erasing the reader deletes their clicks; the totals stay.
        let config = config_file(&s);
        let erased = herald(
            &[
                "--config",
                config.to_str().unwrap(),
                "subscribers",
                "remove",
                "--erase",
                &address(1),
            ],
            s.dir.path(),
        );
        assert!(
            erased.status.success(),
            "{}",
            crate::helpers::stderr(&erased)
        );
        assert_eq!(scalar(&s.settings, "SELECT COUNT(*) FROM click_events"), 0);
        assert_eq!(counts_of(&ranked(&s.settings, campaign), 3), (4, 0));
        // Their old link still works, and now names nobody.
        assert_eq!(router.get(&path, Some(BROWSER)).0, StatusCode::FOUND);
        assert_eq!(scalar(&s.settings, "SELECT COUNT(*) FROM click_events"), 0);

        // A click older than per_subscriber_days (30: 31 days back here) goes
        // with the next click.
        let other = token_in(&other_html, campaign, 5);
        assert_eq!(
            router
                .get(&format!("/l/{campaign}/5?s={other}"), Some(BROWSER))
                .0,
            StatusCode::FOUND
        );
        assert_eq!(scalar(&s.settings, "SELECT COUNT(*) FROM click_events"), 1);
        block_on(async {
            let store = open_store(&s.settings).await;
            db::execute(
                &store,
                "UPDATE click_events SET clicked_at = clicked_at - 2678400000",
            )
            .await;
        });
        assert_eq!(
            router
                .get(&format!("/l/{campaign}/6?s={other}"), Some(BROWSER))
                .0,
            StatusCode::FOUND
        );
        assert_eq!(scalar(&s.settings, "SELECT COUNT(*) FROM click_events"), 1);
        assert_eq!(
            scalar(&s.settings, "SELECT MIN(l.link_index) FROM click_events e JOIN campaign_links l ON l.id = e.link_id"),
            6
        );
    });
}
