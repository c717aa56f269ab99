//! The admin site over real HTTP: the router served on a free port by the
//! same `serve` as `herald serve`, a real database (SQLite, and PostgreSQL
//! behind the switch), and `herald serve` and `herald worker` as processes
//! where their wiring is what is tested.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use herald::config::Settings;
use herald::domain::AdminPasswordHash;
use herald::http::admin::{admin_router, AdminState, LoginLimits};
use herald::http::server::{serve, ServerLimits};
use herald::store::campaigns::{self, NewCampaign};
use herald::store::{clicks, now_millis, Store};
use reqwest::header::{HeaderMap, COOKIE, SET_COOKIE};
use reqwest::redirect::Policy;
use reqwest::StatusCode;

use crate::db::{self, Backend, TestDatabase};
use crate::send::seed_subscribers;

const PASSWORD: &str = "correct horse battery staple";

/// Hashed once: Argon2id is slow on purpose.
fn password_hash() -> AdminPasswordHash {
    static HASH: OnceLock<AdminPasswordHash> = OnceLock::new();
    HASH.get_or_init(|| AdminPasswordHash::hash(PASSWORD).unwrap())
        .clone()
}

struct Admin {
    address: SocketAddr,
    client: reqwest::Client,
    store: Store,
    halt: tokio::sync::watch::Sender<bool>,
    server: Option<tokio::task::JoinHandle<()>>,
    _db: TestDatabase,
    _dir: tempfile::TempDir,
}

/// A logged-in browser: its session cookie and the CSRF token its pages carry.
#[derive(Clone)]
struct Session {
    cookie: String,
    csrf: String,
}

async fn spawn_admin(backend: &Backend) -> Admin {
    spawn_admin_with(backend, LoginLimits::default()).await
}

async fn spawn_admin_with(backend: &Backend, limits: LoginLimits) -> Admin {
    let dir = tempfile::tempdir().unwrap();
    let database = backend.database(dir.path());
    spawn_admin_on(database, dir, limits).await
}

/// The admin site on a database other processes may use too.
async fn spawn_admin_on(
    database: TestDatabase,
    dir: tempfile::TempDir,
    limits: LoginLimits,
) -> Admin {
    let store = database.store().await;
    let mut settings = Settings {
        root: dir.path().to_path_buf(),
        ..Settings::default()
    };
    settings.database.url = database.settings_url();
    let (halt, halted) = tokio::sync::watch::channel(false);
    let state = AdminState::new(
        store.clone(),
        Arc::new(settings.clone()),
        password_hash(),
        false,
        halted.clone(),
    )
    .unwrap()
    .with_login_limits(limits);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let mut stop = halted;
    let shutdown = async move {
        let _ = stop.wait_for(|halt| *halt).await;
    };
    let limits = ServerLimits::from_settings(&settings.server);
    let server = tokio::spawn(serve(listener, admin_router(state), limits, shutdown));
    Admin {
        address,
        client: reqwest::Client::builder()
            .redirect(Policy::none())
            .build()
            .unwrap(),
        store,
        halt,
        server: Some(server),
        _db: database,
        _dir: dir,
    }
}

/// The value of cookie `name` that a response sets, with its attributes.
fn set_cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find(|value| value.starts_with(&format!("{name}=")))
}

fn cookie_value(set_cookie: &str) -> String {
    let pair = set_cookie.split(';').next().unwrap();
    pair.split_once('=').unwrap().1.to_string()
}

/// The hidden `csrf` field of a page's (first) form.
fn hidden_csrf(html: &str) -> String {
    let start = html.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    let end = start + html[start..].find('"').unwrap();
    html[start..end].to_string()
}

impl Admin {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// The login form: its double-submit cookie and the token in the form.
    async fn login_form(&self) -> (String, String) {
        let page = self.client.get(self.url("/login")).send().await.unwrap();
        assert_eq!(page.status(), 200);
        let cookie = cookie_value(set_cookie(page.headers(), "herald_login_csrf").unwrap());
        let csrf = hidden_csrf(&page.text().await.unwrap());
        assert_eq!(cookie, csrf);
        (cookie, csrf)
    }

    async fn try_log_in(&self, password: &str) -> reqwest::Response {
        let (cookie, csrf) = self.login_form().await;
        self.client
            .post(self.url("/login"))
            .header(COOKIE, format!("herald_login_csrf={cookie}"))
            .form(&[("password", password), ("csrf", &csrf)])
            .send()
            .await
            .unwrap()
    }

    async fn log_in(&self) -> Session {
        let response = self.try_log_in(PASSWORD).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        assert_eq!(response.headers()["location"], "/campaigns");
        let cookie = cookie_value(set_cookie(response.headers(), "herald_admin").unwrap());
        let mut session = Session {
            cookie,
            csrf: String::new(),
        };
        let page = self.get(Some(&session), "/campaigns").await;
        assert_eq!(page.status(), 200);
        session.csrf = hidden_csrf(&page.text().await.unwrap());
        session
    }

    async fn get(&self, session: Option<&Session>, path: &str) -> reqwest::Response {
        let mut request = self.client.get(self.url(path));
        if let Some(session) = session {
            request = request.header(COOKIE, format!("herald_admin={}", session.cookie));
        }
        request.send().await.unwrap()
    }

    async fn post(
        &self,
        session: Option<&Session>,
        path: &str,
        form: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut request = self.client.post(self.url(path)).form(form);
        if let Some(session) = session {
            request = request.header(COOKIE, format!("herald_admin={}", session.cookie));
        }
        request.send().await.unwrap()
    }

    /// A POST with the session's token, as the page's form sends it.
    async fn submit(&self, session: &Session, path: &str) -> reqwest::Response {
        self.post(Some(session), path, &[("csrf", &session.csrf)])
            .await
    }

    async fn campaign_state(&self, id: i64) -> String {
        db::scalar_text(
            &self.store,
            &format!("SELECT state FROM campaigns WHERE id = {id}"),
        )
        .await
    }

    /// Stops the server as SIGTERM would; it must stop within its grace.
    async fn stop(&mut self) {
        let _ = self.halt.send(true);
        if let Some(server) = self.server.take() {
            tokio::time::timeout(Duration::from_secs(5), server)
                .await
                .expect("the admin server stops promptly")
                .unwrap();
        }
    }
}

/// A campaign of `recipients` queued deliveries (subscribers seeded first),
/// `sending` unless `scheduled_at` is given; with two tracked links.
async fn insert_campaign(store: &Store, slug: &str, scheduled_at: Option<i64>) -> i64 {
    let mut tx = store.begin().await.unwrap();
    let new = NewCampaign {
        issue_slug: slug,
        issue_number: 1,
        issue_hash: "hash",
        subject: "Vol. 1 <b>bold</b>",
        html: "<p>Hello</p>",
        text: "Hello",
        message_nonce: "nonce",
        scheduled_at,
    };
    let id = campaigns::insert_campaign(&mut tx, &new, now_millis())
        .await
        .unwrap();
    if scheduled_at.is_none() {
        campaigns::snapshot_recipients(&mut tx, id, "nonce", "example.com", now_millis())
            .await
            .unwrap();
    }
    clicks::insert_link(&mut tx, id, 1, "https://one.example/")
        .await
        .unwrap();
    clicks::insert_link(&mut tx, id, 2, "https://two.example/")
        .await
        .unwrap();
    tx.commit().await.unwrap();
    id
}

fn seed(backend_db: &TestDatabase, count: usize) {
    let location = backend_db.location();
    std::thread::spawn(move || seed_subscribers(&location, count))
        .join()
        .unwrap();
}

#[tokio::test]
async fn nothing_but_the_login_page_without_a_session() {
    let admin = spawn_admin(&Backend::Sqlite).await;
    for path in [
        "/",
        "/campaigns",
        "/campaigns/1",
        "/subscribers",
        "/issues",
        "/nope",
    ] {
        let response = admin.get(None, path).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "GET {path}");
        assert_eq!(response.headers()["location"], "/login", "GET {path}");
    }
    let events = admin.get(None, "/campaigns/1/events").await;
    assert_eq!(events.status(), StatusCode::UNAUTHORIZED);
    for path in [
        "/campaigns/1/pause",
        "/campaigns/1/resume",
        "/campaigns/1/cancel",
        "/logout",
    ] {
        let response = admin.post(None, path, &[("csrf", "x")]).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "POST {path}");
    }
    // A made-up cookie is no session either.
    let forged = Session {
        cookie: "00".repeat(32),
        csrf: String::new(),
    };
    let response = admin.get(Some(&forged), "/campaigns").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);

    // The open pages carry the security headers too.
    let login = admin.get(None, "/login").await;
    let headers = login.headers();
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"));
    let html = login.text().await.unwrap();
    for id in [
        "id=\"login-form\"",
        "id=\"password\"",
        "id=\"login-submit\"",
    ] {
        assert!(html.contains(id), "{id}");
    }
    assert!(!html.contains("<script>"), "no inline script");
    let css = admin.get(None, "/static/admin.css").await;
    assert_eq!(css.status(), 200);
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");
    let js = admin.get(None, "/static/admin.js").await;
    assert_eq!(js.status(), 200);
    assert!(js.text().await.unwrap().contains("EventSource"));
}

#[tokio::test]
async fn a_wrong_password_is_refused_and_the_right_one_opens_a_session() {
    let admin = spawn_admin(&Backend::Sqlite).await;
    let wrong = admin.try_log_in("hunter2").await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(set_cookie(wrong.headers(), "herald_admin").is_none());
    assert!(wrong.text().await.unwrap().contains("id=\"login-error\""));

    let right = admin.try_log_in(PASSWORD).await;
    assert_eq!(right.status(), StatusCode::SEE_OTHER);
    let cookie = set_cookie(right.headers(), "herald_admin").unwrap();
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/;"] {
        assert!(cookie.contains(flag), "{flag} in {cookie}");
    }
    // On loopback (plain http) a Secure cookie would be dropped.
    assert!(!cookie.contains("Secure"), "{cookie}");
    assert_eq!(cookie_value(cookie).len(), 64, "256 bits, hex");

    let session = admin.log_in().await;
    let page = admin.get(Some(&session), "/campaigns").await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    for id in [
        "id=\"admin-nav\"",
        "id=\"nav-campaigns\"",
        "id=\"nav-subscribers\"",
        "id=\"nav-issues\"",
        "id=\"logout-form\"",
        "id=\"logout\"",
        "id=\"campaigns\"",
    ] {
        assert!(html.contains(id), "{id}");
    }
    let root = admin.get(Some(&session), "/").await;
    assert_eq!(root.status(), StatusCode::SEE_OTHER);
    assert_eq!(root.headers()["location"], "/campaigns");
    let login_again = admin.get(Some(&session), "/login").await;
    assert_eq!(login_again.headers()["location"], "/campaigns");
}

#[tokio::test]
async fn a_login_without_its_form_token_is_refused() {
    let admin = spawn_admin(&Backend::Sqlite).await;
    let (cookie, csrf) = admin.login_form().await;
    let cases: [(Option<String>, &str); 3] = [
        (None, csrf.as_str()),
        (Some(cookie.clone()), ""),
        (Some(cookie.clone()), "0000"),
    ];
    for (cookie, token) in cases {
        let mut request = admin
            .client
            .post(admin.url("/login"))
            .form(&[("password", PASSWORD), ("csrf", token)]);
        if let Some(cookie) = &cookie {
            request = request.header(COOKIE, format!("herald_login_csrf={cookie}"));
        }
        let response = request.send().await.unwrap();
        assert_eq!(
            response.status(),
            StatusCode::FORBIDDEN,
            "{cookie:?} {token}"
        );
        assert!(set_cookie(response.headers(), "herald_admin").is_none());
    }
    // From another site, even with both tokens right.
    let response = admin
        .client
        .post(admin.url("/login"))
        .header(COOKIE, format!("herald_login_csrf={cookie}"))
        .header("Origin", "https://evil.example")
        .form(&[("password", PASSWORD), ("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn login_attempts_are_rate_limited() {
    let admin = spawn_admin(&Backend::Sqlite).await;
    // Five a minute from one address: the sixth is refused, even with the
    // right password.
    for attempt in 1..=5 {
        let response = admin.try_log_in("wrong").await;
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "attempt {attempt}"
        );
    }
    let limited = admin.try_log_in(PASSWORD).await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(set_cookie(limited.headers(), "herald_admin").is_none());
    assert!(limited.text().await.unwrap().contains("id=\"login-error\""));

    // The global limit holds whatever the address.
    let one = NonZeroU32::new(1).unwrap();
    let limits = LoginLimits {
        per_ip_per_minute: NonZeroU32::new(100).unwrap(),
        global_per_minute: one,
    };
    let admin = spawn_admin_with(&Backend::Sqlite, limits).await;
    assert_eq!(
        admin.try_log_in("wrong").await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        admin.try_log_in(PASSWORD).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn logout_ends_the_session_on_the_server() {
    let admin = spawn_admin(&Backend::Sqlite).await;
    let session = admin.log_in().await;
    let other = admin.log_in().await;
    // Logging out needs the token too.
    let forged = admin
        .post(Some(&session), "/logout", &[("csrf", "nope")])
        .await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let out = admin.submit(&session, "/logout").await;
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    assert_eq!(out.headers()["location"], "/login");
    let cleared = set_cookie(out.headers(), "herald_admin").unwrap();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    // The old cookie, replayed, no longer works; the other session does.
    let replayed = admin.get(Some(&session), "/campaigns").await;
    assert_eq!(replayed.status(), StatusCode::SEE_OTHER);
    assert_eq!(replayed.headers()["location"], "/login");
    assert_eq!(admin.get(Some(&other), "/campaigns").await.status(), 200);
}

#[tokio::test]
async fn actions_refuse_a_missing_or_wrong_token_and_cross_site_posts() {
    let admin = spawn_admin(&Backend::Sqlite).await;
    let database = &admin._db;
    seed(database, 3);
    let id = insert_campaign(&admin.store, "vol-001", None).await;
    let session = admin.log_in().await;
    let pause = format!("/campaigns/{id}/pause");
    let missing = admin.post(Some(&session), &pause, &[]).await;
    assert_eq!(missing.status(), StatusCode::FORBIDDEN);
    let wrong = admin
        .post(Some(&session), &pause, &[("csrf", "0".repeat(64).as_str())])
        .await;
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN);
    // Another session's token is not this one's.
    let other = admin.log_in().await;
    let swapped = admin
        .post(Some(&session), &pause, &[("csrf", &other.csrf)])
        .await;
    assert_eq!(swapped.status(), StatusCode::FORBIDDEN);
    for (header, value) in [
        ("Origin", "https://evil.example"),
        ("Origin", "null"),
        ("Sec-Fetch-Site", "cross-site"),
    ] {
        let response = admin
            .client
            .post(admin.url(&pause))
            .header(COOKIE, format!("herald_admin={}", session.cookie))
            .header(header, value)
            .form(&[("csrf", &session.csrf)])
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::FORBIDDEN,
            "{header}: {value}"
        );
    }
    assert_eq!(admin.campaign_state(id).await, "sending", "nothing changed");
    // The same form from the admin site's own page goes through.
    let ok = admin
        .client
        .post(admin.url(&pause))
        .header(COOKIE, format!("herald_admin={}", session.cookie))
        .header("Origin", format!("http://{}", admin.address))
        .header("Sec-Fetch-Site", "same-origin")
        .form(&[("csrf", &session.csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::SEE_OTHER);
    assert_eq!(admin.campaign_state(id).await, "paused");
}

#[tokio::test]
async fn campaign_pages_and_buttons_on_every_backend() {
    db::for_each_backend_async(|backend| async move {
        let admin = spawn_admin(&backend).await;
        seed(&admin._db, 4);
        let sending = insert_campaign(&admin.store, "vol-001", None).await;
        let later = now_millis() + 3_600_000;
        let scheduled = insert_campaign(&admin.store, "vol-002", Some(later)).await;
        // Two sent, one clicked link; an unsubscribe the day after.
        db::execute(
            &admin.store,
            &format!(
                "UPDATE deliveries SET state = 'sent', sent_at = {} WHERE campaign_id = {sending} AND subscriber_id IN (1, 2)",
                now_millis()
            ),
        )
        .await;
        db::execute(
            &admin.store,
            &format!("UPDATE campaign_links SET human_clicks = 7, bot_clicks = 2 WHERE campaign_id = {sending} AND link_index = 2"),
        )
        .await;
        db::execute(
            &admin.store,
            &format!(
                "INSERT INTO subscriber_events (subscriber_id, state, reason, at) VALUES (3, 'unsubscribed', 'test', {})",
                now_millis() + 86_400_000
            ),
        )
        .await;
        let session = admin.log_in().await;

        let list = admin.get(Some(&session), "/campaigns").await.text().await.unwrap();
        let newest = list.find(&format!("data-campaign-id=\"{scheduled}\"")).unwrap();
        let older = list.find(&format!("data-campaign-id=\"{sending}\"")).unwrap();
        assert!(newest < older, "newest first");
        assert!(list.contains("<td class=\"state state-scheduled\">scheduled</td>"));
        assert!(list.contains(&format!("href=\"/campaigns/{sending}\"")));
        assert!(list.contains("Vol. 1 &lt;b&gt;bold&lt;/b&gt;"), "escaped");

        let page = admin.get(Some(&session), &format!("/campaigns/{sending}")).await;
        assert_eq!(page.status(), 200);
        let html = page.text().await.unwrap();
        assert!(html.contains(&format!("data-campaign-id=\"{sending}\" data-state=\"sending\"")));
        assert!(html.contains("<dd id=\"count-queued\">2</dd>"), "{html}");
        assert!(html.contains("<dd id=\"count-sent\">2</dd>"));
        assert!(html.contains("<progress id=\"progress\" value=\"2\" max=\"4\">"));
        assert!(html.contains("<dd id=\"unsubscribes-7d\">1</dd>"));
        assert!(html.contains("<dd id=\"bounce-rate\">0.00%</dd>"));
        assert!(html.contains("id=\"complaint-rate\""));
        let two = html.find("https://two.example/").unwrap();
        let one = html.find("https://one.example/").unwrap();
        assert!(two < one, "the clicked link ranks first");
        assert!(html.contains("id=\"pause\"") && !html.contains("id=\"resume\""));
        assert!(!html.contains("id=\"cancel\""));

        assert_eq!(admin.submit(&session, &format!("/campaigns/{sending}/pause")).await.status(), StatusCode::SEE_OTHER);
        assert_eq!(admin.campaign_state(sending).await, "paused");
        let html = admin.get(Some(&session), &format!("/campaigns/{sending}")).await.text().await.unwrap();
        assert!(html.contains("id=\"resume\"") && !html.contains("id=\"pause\""));
        assert!(html.contains("paused by the editor"));
        assert_eq!(admin.submit(&session, &format!("/campaigns/{sending}/resume")).await.status(), StatusCode::SEE_OTHER);
        assert_eq!(admin.campaign_state(sending).await, "sending");
        // Cancel works on a scheduled campaign only.
        admin.submit(&session, &format!("/campaigns/{sending}/cancel")).await;
        assert_eq!(admin.campaign_state(sending).await, "sending");
        let html = admin.get(Some(&session), &format!("/campaigns/{scheduled}")).await.text().await.unwrap();
        assert!(html.contains("id=\"cancel\""));
        let cancelled = admin.submit(&session, &format!("/campaigns/{scheduled}/cancel")).await;
        assert_eq!(cancelled.status(), StatusCode::SEE_OTHER);
        assert_eq!(cancelled.headers()["location"], format!("/campaigns/{scheduled}").as_str());
        assert_eq!(admin.campaign_state(scheduled).await, "cancelled");

        assert_eq!(admin.get(Some(&session), "/campaigns/999").await.status(), 404);
        assert_eq!(admin.get(Some(&session), "/campaigns/x").await.status(), 400);
    })
    .await;
}

#[tokio::test]
async fn the_event_stream_sends_progress_and_ends_on_shutdown() {
    let mut admin = spawn_admin(&Backend::Sqlite).await;
    seed(&admin._db, 3);
    let id = insert_campaign(&admin.store, "vol-001", None).await;
    let session = admin.log_in().await;
    let mut stream = admin
        .get(Some(&session), &format!("/campaigns/{id}/events"))
        .await;
    assert_eq!(stream.status(), 200);
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    let mut seen = String::new();
    let first = read_event(&mut stream, &mut seen).await;
    assert_eq!(first["state"], "sending");
    assert_eq!(first["counts"]["queued"], 3);
    assert_eq!(
        (first["done"].as_i64(), first["total"].as_i64()),
        (Some(0), Some(3))
    );
    assert!(first["rate_per_min"].is_number() && first["eta_secs"].is_null());
    // A row sent: the next event says so.
    db::execute(&admin.store, &format!("UPDATE deliveries SET state = 'sent', sent_at = 1 WHERE campaign_id = {id} AND subscriber_id = 1")).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let event = read_event(&mut stream, &mut seen).await;
        if event["counts"]["sent"] == 1 {
            assert_eq!(event["done"], 1);
            break;
        }
        assert!(Instant::now() < deadline, "no progress event");
    }
    // Stopping the server ends the open stream instead of waiting for it.
    let stopped = Instant::now();
    admin.stop().await;
    assert!(
        stopped.elapsed() < Duration::from_secs(3),
        "{:?}",
        stopped.elapsed()
    );
    let rest = tokio::time::timeout(Duration::from_secs(3), async {
        while let Ok(Some(_)) = stream.chunk().await {}
    })
    .await;
    assert!(rest.is_ok(), "the stream ended");
}

/// The next `progress` event's JSON.
async fn read_event(stream: &mut reqwest::Response, buffer: &mut String) -> serde_json::Value {
    loop {
        if let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            if let Some(data) = event.lines().find_map(|line| line.strip_prefix("data: ")) {
                assert!(event.contains("event: progress"), "{event}");
                return serde_json::from_str(data).unwrap();
            }
            continue;
        }
        let chunk = tokio::time::timeout(Duration::from_secs(5), stream.chunk())
            .await
            .expect("an event within 5 s")
            .unwrap()
            .expect("the stream is open");
        buffer.push_str(&String::from_utf8_lossy(&chunk));
    }
}

#[test]
fn the_admin_site_defaults_to_loopback() {
    let settings = Settings::parse("").unwrap();
    let address: SocketAddr = settings.admin.listen.parse().unwrap();
    assert!(address.ip().is_loopback(), "{address}");
    assert_eq!(address.port(), 8081);
    let error = Settings::parse("[admin]\nlisten = \"everywhere\"\n").unwrap_err();
    assert!(format!("{error:#}").contains("[admin] listen"), "{error:#}");
}

/// A free port on loopback, for a config.
fn free_port() -> u16 {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    probe.local_addr().unwrap().port()
}

/// A plain HTTP/1.0 GET; the status line's code.
fn http_status(address: SocketAddr, path: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n").ok()?;
    let mut reply = String::new();
    let _ = stream.read_to_string(&mut reply);
    reply.split(' ').nth(1)?.parse().ok()
}

fn terminate(child: &mut std::process::Child) -> std::process::Output {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "herald serve ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut stdout = String::new();
    let mut stderr = String::new();
    use std::io::Read;
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    std::process::Output {
        status: child.wait().unwrap(),
        stdout: stdout.into_bytes(),
        stderr: stderr.into_bytes(),
    }
}

#[test]
fn herald_serve_starts_the_admin_site_only_with_a_password_hash() {
    let port = free_port();
    let ws = crate::helpers::Workspace::with_examples(&format!(
        "[admin]\nlisten = \"127.0.0.1:{port}\"\n"
    ));
    let admin: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();

    // No hash: the public site runs, the admin site does not, and says so.
    let (mut child, public) =
        crate::helpers::start_serve(&ws, &[("HERALD_ADMIN_PASSWORD_HASH", "")]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while http_status(public, "/healthz") != Some(200) {
        assert!(Instant::now() < deadline, "herald serve did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        http_status(admin, "/login"),
        None,
        "nothing on the admin port"
    );
    let output = terminate(&mut child);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("admin site off") && stdout.contains("herald admin hash-password"),
        "{stdout}"
    );

    // With the hash: both listeners, and SIGTERM stops both.
    let hash = password_hash();
    let (mut child, _) =
        crate::helpers::start_serve(&ws, &[("HERALD_ADMIN_PASSWORD_HASH", hash.as_phc())]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while http_status(admin, "/login") != Some(200) {
        assert!(Instant::now() < deadline, "the admin site did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(http_status(admin, "/campaigns"), Some(303));
    let output = terminate(&mut child);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(&format!("admin site on http://{admin}/")),
        "{stdout}"
    );
    assert!(!stdout.contains(hash.as_phc()), "the hash is never printed");

    // A hash that is not one: a clear error, exit 1.
    let (mut child, _) =
        crate::helpers::start_serve(&ws, &[("HERALD_ADMIN_PASSWORD_HASH", "hunter2")]);
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "herald serve ran with a bad hash"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(1));
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(stderr.contains("HERALD_ADMIN_PASSWORD_HASH"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

#[test]
fn hash_password_reads_stdin_and_prints_an_argon2id_hash() {
    use std::io::Write;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["admin", "hash-password"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"demo\n").unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed = String::from_utf8(output.stdout).unwrap();
    let hash = AdminPasswordHash::parse(printed.trim()).unwrap();
    assert!(printed.starts_with("$argon2id$"));
    assert!(hash.verify("demo") && !hash.verify("demo\n"));

    let empty = std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["admin", "hash-password"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(empty.status.code(), Some(1));
    assert!(empty.stdout.is_empty());
}

/// A campaign sent by a real `herald worker` to a real SMTP server: a pause
/// on the dashboard stops it mid-way (the worker keeps running, its rows
/// stay queued), and a resume lets the same worker finish it, everyone
/// mailed once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_stops_a_running_worker_and_resume_lets_it_finish() {
    db::for_each_backend_async(|backend| async move {
        const RECIPIENTS: usize = 150;
        let server = crate::smtp_server::SmtpServer::start();
        let (smtp_url, on) = (server.url(), backend.clone());
        // Seeding runs a runtime of its own: not inside this one.
        let setup = std::thread::spawn(move || crate::send::setup(&on, &smtp_url, RECIPIENTS))
            .join()
            .unwrap();
        let config = setup.dir.path().join("herald.toml");
        // A slow rate, so that the pause lands mid-send.
        std::fs::write(
            &config,
            format!(
                "{}[site]\nbase_url = \"https://news.example.com/\"\n\
                 [smtp]\nurl = \"{}\"\n[send]\nconcurrency = 2\nrate = 25\nbatch_size = 5\n",
                setup.db.config(),
                server.url()
            ),
        )
        .unwrap();
        let admin = spawn_admin_on(setup.db, setup.dir, LoginLimits::default()).await;
        let id = insert_campaign(&admin.store, "vol-001", None).await;
        let session = admin.log_in().await;
        let sent = || async {
            db::scalar_i64(
                &admin.store,
                &format!(
                    "SELECT COUNT(*) FROM deliveries WHERE campaign_id = {id} AND state = 'sent'"
                ),
            )
            .await
        };
        let mut worker = std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
            .arg("--config")
            .arg(&config)
            .arg("worker")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while sent().await < 10 {
            assert!(Instant::now() < deadline, "the worker sent nothing");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let paused = admin
            .submit(&session, &format!("/campaigns/{id}/pause"))
            .await;
        assert_eq!(paused.status(), StatusCode::SEE_OTHER);
        // What it held goes out; then nothing more.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let held = sent().await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let after = sent().await;
        assert_eq!(held, after, "sending went on after the pause");
        assert!(
            after < RECIPIENTS as i64,
            "the pause came too late to test ({after} sent)"
        );
        assert_eq!(server.messages().len() as i64, after);
        assert_eq!(admin.campaign_state(id).await, "paused");
        assert!(
            worker.try_wait().unwrap().is_none(),
            "the worker keeps running"
        );

        let resumed = admin
            .submit(&session, &format!("/campaigns/{id}/resume"))
            .await;
        assert_eq!(resumed.status(), StatusCode::SEE_OTHER);
        let deadline = Instant::now() + Duration::from_secs(60);
        while admin.campaign_state(id).await != "finished" {
            assert!(
                Instant::now() < deadline,
                "the resumed campaign did not finish"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let copies = server.copies_by_recipient();
        assert_eq!(copies.len(), RECIPIENTS);
        assert!(copies.values().all(|n| *n == 1), "everyone mailed once");
        let _ = worker.kill();
        let _ = worker.wait();
    })
    .await;
}

/// `herald serve` leaves a campaign that `herald send` started alone, but
/// one the editor resumes on its dashboard is then its to send.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn herald_serve_sends_a_campaign_resumed_on_its_dashboard() {
    const RECIPIENTS: usize = 20;
    let server = crate::smtp_server::SmtpServer::start();
    let smtp_url = server.url();
    let setup =
        std::thread::spawn(move || crate::send::setup(&Backend::Sqlite, &smtp_url, RECIPIENTS))
            .join()
            .unwrap();
    let port = free_port();
    let ws = crate::helpers::Workspace::with_examples(&format!(
        "{}[site]\nbase_url = \"https://news.example.com/\"\n[smtp]\nurl = \"{}\"\n\
         [admin]\nlisten = \"127.0.0.1:{port}\"\n",
        setup.db.config(),
        server.url()
    ));
    let store = setup.db.store().await;
    let id = insert_campaign(&store, "vol-001", None).await;
    // Paused, as a `herald send` that the editor paused leaves it.
    db::execute(
        &store,
        &format!("UPDATE campaigns SET state = 'paused' WHERE id = {id}"),
    )
    .await;

    let hash = password_hash();
    let (mut child, _) =
        crate::helpers::start_serve(&ws, &[("HERALD_ADMIN_PASSWORD_HASH", hash.as_phc())]);
    let address: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while http_status(address, "/login") != Some(200) {
        assert!(Instant::now() < deadline, "the admin site did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (halt, _) = tokio::sync::watch::channel(false);
    let admin = Admin {
        address,
        client: reqwest::Client::builder()
            .redirect(Policy::none())
            .build()
            .unwrap(),
        store: store.clone(),
        halt,
        server: None,
        _db: setup.db,
        _dir: setup.dir,
    };
    let session = admin.log_in().await;
    let resumed = admin
        .submit(&session, &format!("/campaigns/{id}/resume"))
        .await;
    assert_eq!(resumed.status(), StatusCode::SEE_OTHER);
    let deadline = Instant::now() + Duration::from_secs(30);
    while admin.campaign_state(id).await != "finished" {
        assert!(
            Instant::now() < deadline,
            "herald serve did not send the resumed campaign"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(server.copies_by_recipient().len(), RECIPIENTS);
    let output = terminate(&mut child);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
