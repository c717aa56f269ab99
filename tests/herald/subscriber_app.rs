//! `spawn_app()`: the subscriber routes served over real HTTP on a free
//! port, a real SQLite file in a temporary folder, the send stage's
//! transactional mail worker, and a real SMTP server (mailin) in-process
//! that keeps what it receives.

use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use herald::config::Settings;
use herald::domain::SubscriberEmail;
use herald::http::subscribers::{subscriber_routes, SubscriberWeb};
use herald::render::Templates;
use herald::send::outbox::{run_transactional_worker, OutboxSignal};
use herald::send::retry::RetryPolicy;
use herald::send::smtp::SmtpTarget;
use herald::send::worker::SendOptions;
use herald::send::AnyTransport;
use herald::store::deliveries::{self, Queue};
use herald::store::subscribers::{self, Subscriber};
use herald::store::Store;
use herald::subscription::{SubscriberMail, Subscriptions};
use mail_parser::MessageParser;
use mailin_embedded::{Handler, Response, Server, SslConfig};

use crate::db::{self, Backend, TestDatabase};

/// One message as the SMTP server received it.
#[derive(Debug, Clone)]
pub struct ReceivedMail {
    pub from: String,
    pub to: Vec<String>,
    pub data: Vec<u8>,
}

impl ReceivedMail {
    pub fn text_body(&self) -> String {
        let message = MessageParser::default()
            .parse(&self.data)
            .expect("a parsable message");
        message.body_text(0).expect("a text part").into_owned()
    }

    pub fn html_body(&self) -> String {
        let message = MessageParser::default()
            .parse(&self.data)
            .expect("a parsable message");
        message.body_html(0).expect("an HTML part").into_owned()
    }

    pub fn raw(&self) -> String {
        String::from_utf8_lossy(&self.data).into_owned()
    }
}

type Inbox = Arc<Mutex<Vec<ReceivedMail>>>;

/// mailin's callbacks, collecting each message into the shared inbox.
#[derive(Clone)]
struct CapturingHandler {
    inbox: Inbox,
    from: String,
    to: Vec<String>,
    data: Vec<u8>,
}

impl Handler for CapturingHandler {
    fn data_start(&mut self, _domain: &str, from: &str, _is8bit: bool, to: &[String]) -> Response {
        self.from = from.to_string();
        self.to = to.to_vec();
        self.data.clear();
        mailin_embedded::response::OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.data.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        self.inbox.lock().unwrap().push(ReceivedMail {
            from: std::mem::take(&mut self.from),
            to: std::mem::take(&mut self.to),
            data: std::mem::take(&mut self.data),
        });
        mailin_embedded::response::OK
    }
}

/// How a test wants the app set up.
pub struct AppOptions {
    pub smtp_running: bool,
    pub per_ip_per_minute: u32,
    pub confirmations_per_hour: u32,
    pub confirm_ttl_hours: u64,
    pub language: &'static str,
    /// DKIM-sign with an Ed25519 key as `herald._domainkey.example.com`.
    pub dkim: bool,
    pub backend: Backend,
}

impl Default for AppOptions {
    fn default() -> Self {
        AppOptions {
            smtp_running: true,
            per_ip_per_minute: 1000,
            confirmations_per_hour: 3,
            confirm_ttl_hours: 72,
            language: "en",
            dkim: false,
            backend: Backend::Sqlite,
        }
    }
}

pub struct TestApp {
    /// `http://127.0.0.1:PORT/`, also the site's base URL.
    pub base_url: String,
    pub store: Store,
    pub client: reqwest::Client,
    smtp_port: u16,
    inbox: Inbox,
    /// The web server and the outbox worker, stopped with the app so that
    /// a test running on each backend in turn leaves none behind.
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Kept for the test's duration: dropping it drops a PostgreSQL
    /// database.
    _db: TestDatabase,
    _dir: tempfile::TempDir,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

pub async fn spawn_app(backend: &Backend) -> TestApp {
    spawn_app_with(AppOptions {
        backend: backend.clone(),
        ..AppOptions::default()
    })
    .await
}

pub async fn spawn_app_with(options: AppOptions) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let base_url = format!("http://127.0.0.1:{port}/");

    let mut settings = Settings {
        root: dir.path().to_path_buf(),
        ..Settings::default()
    };
    let db = options.backend.database(dir.path());
    settings.database.url = db.settings_url();
    settings.site.base_url = base_url.parse().unwrap();
    settings.site.language = options.language.into();
    settings.mail.from = "Herald Weekly <newsletter@example.com>".into();
    settings.server.subscribe_per_ip_per_minute = options.per_ip_per_minute;
    settings.server.confirmations_per_address_per_hour = options.confirmations_per_hour;
    settings.server.confirm_token_ttl_hours = options.confirm_ttl_hours;
    if options.dkim {
        use base64::Engine;
        let key = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        std::fs::write(dir.path().join("dkim.key"), key).unwrap();
        settings.send.dkim_selector = Some("herald".into());
        settings.send.dkim_domain = Some("example.com".into());
        settings.send.dkim_key_file = Some("dkim.key".into());
    }
    let settings = Arc::new(settings);

    let store = db.store().await;
    let outbox = OutboxSignal::default();
    let web = SubscriberWeb::new(
        store.clone(),
        settings.clone(),
        Arc::new(Templates::builtin()),
        outbox.clone(),
    )
    .unwrap();
    let app = subscriber_routes(web);
    let web_task = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });

    // Reserve a port for SMTP: bind it, note it, let it go. A test that
    // starts with the server down starts it on this port later.
    let smtp_port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let subscriptions =
        Arc::new(Subscriptions::new(settings.clone(), &Templates::builtin()).unwrap());
    let worker = tokio::spawn(run_transactional_worker(
        store.clone(),
        smtp_transport(smtp_port),
        "newsletter@example.com".parse().unwrap(),
        Arc::new(SubscriberMail::new(store.clone(), subscriptions)),
        worker_options(),
        outbox,
        std::future::pending(),
    ));
    let app = TestApp {
        base_url,
        store,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap(),
        smtp_port,
        inbox: Arc::default(),
        tasks: vec![web_task, worker],
        _db: db,
        _dir: dir,
    };
    if options.smtp_running {
        app.start_smtp();
    }
    app
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path.trim_start_matches('/'))
    }

    /// Starts the SMTP server on the reserved port. It serves on its own
    /// thread until the test binary exits.
    pub fn start_smtp(&self) {
        let listener = TcpListener::bind(("127.0.0.1", self.smtp_port)).unwrap();
        let handler = CapturingHandler {
            inbox: self.inbox.clone(),
            from: String::new(),
            to: Vec::new(),
            data: Vec::new(),
        };
        let mut server = Server::new(handler);
        server
            .with_name("smtp.test")
            .with_ssl(SslConfig::None)
            .unwrap()
            .with_num_threads(2)
            .with_tcp_listener(listener);
        std::thread::spawn(move || {
            if let Err(e) = server.serve() {
                eprintln!("test SMTP server stopped: {e}");
            }
        });
    }

    /// The mail received for `address`, once there are at least `count`
    /// (the worker delivers in the background).
    pub async fn wait_for_mail(&self, address: &str, count: usize) -> Vec<ReceivedMail> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let mail = self.mail_to(address);
            if mail.len() >= count {
                return mail;
            }
            assert!(
                Instant::now() < deadline,
                "{count} mail(s) to {address} never arrived (got {})",
                mail.len()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Deliveries queued for `address` so far (whatever their state): what
    /// the request decided to send, known as soon as it answered.
    pub async fn mail_queued_for(&self, address: &str) -> usize {
        let count = db::scalar_i64(
            &self.store,
            &format!("SELECT COUNT(*) FROM deliveries WHERE recipient = '{address}'"),
        )
        .await;
        count as usize
    }

    /// Waits until the delivery states of the transactional queue are
    /// exactly `expected`, e.g. `[("sent", 2)]`.
    pub async fn wait_for_queue(&self, expected: &[(&str, i64)]) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let mut tx = self.store.begin().await.unwrap();
            let states = deliveries::count_deliveries_by_state(&mut tx, Queue::Transactional)
                .await
                .unwrap();
            tx.commit().await.unwrap();
            let states = crate::helpers::counts_by_name(&states);
            let states: Vec<(&str, i64)> = states.iter().map(|(s, n)| (s.as_str(), *n)).collect();
            if states == expected {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "queue is {states:?}, not {expected:?}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub fn mail_to(&self, address: &str) -> Vec<ReceivedMail> {
        self.inbox
            .lock()
            .unwrap()
            .iter()
            .filter(|m| m.to.iter().any(|t| t == address))
            .cloned()
            .collect()
    }

    /// The confirmation link in the latest mail to `address`.
    pub fn confirmation_link(&self, address: &str) -> String {
        let prefix = self.url("confirm/");
        // The newest mail with a link (a welcome mail has none).
        let text = self
            .mail_to(address)
            .iter()
            .rev()
            .map(ReceivedMail::text_body)
            .find(|text| text.contains(&prefix))
            .expect("a mail with a confirm link to the address");
        let start = text.find(&prefix).expect("a confirm link in the mail");
        text[start..].split_whitespace().next().unwrap().to_string()
    }

    pub async fn subscriber(&self, address: &str) -> Option<Subscriber> {
        let email = SubscriberEmail::parse(address).unwrap();
        let mut tx = self.store.begin().await.unwrap();
        let found = subscribers::find_subscriber_by_email(&mut tx, &email)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        found
    }

    pub async fn subscribe_form(&self, fields: &[(&str, &str)]) -> reqwest::Response {
        self.client
            .post(self.url("subscribe"))
            .form(fields)
            .send()
            .await
            .unwrap()
    }

    /// Signs up, waits for the confirmation mail and returns its link.
    /// Signs up and returns the link of the confirmation that sign-up
    /// caused. Counting confirmations, not mails: a welcome mail from an
    /// earlier confirmation may arrive in between.
    pub async fn subscribe_and_get_link(&self, address: &str) -> String {
        let prefix = self.url("confirm/");
        let confirmations = || {
            self.mail_to(address)
                .iter()
                .filter(|mail| mail.text_body().contains(&prefix))
                .count()
        };
        let before = confirmations();
        let response = self.subscribe_form(&[("email", address)]).await;
        assert_eq!(response.status(), 200);
        let deadline = Instant::now() + Duration::from_secs(20);
        while confirmations() <= before {
            assert!(
                Instant::now() < deadline,
                "no new confirmation to {address}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        self.confirmation_link(address)
    }
}

fn smtp_transport(port: u16) -> AnyTransport {
    let url = format!("smtp://127.0.0.1:{port}?tls=none").parse().unwrap();
    let target = SmtpTarget::from_url(&url, None, None, Duration::from_secs(5)).unwrap();
    AnyTransport::Smtp(Arc::new(target))
}

/// Retries after about a second, so a test that brings SMTP back sees its
/// mail soon without the worker spinning while the server is away.
fn worker_options() -> SendOptions {
    SendOptions {
        concurrency: 1,
        rate: 0,
        batch_size: 100,
        lease: Duration::from_secs(60),
        retry: RetryPolicy {
            first_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(1),
            give_up_after: Duration::from_secs(3600),
        },
        failure_window: 100,
        failure_threshold: 1.0,
        claimer: "test-worker".into(),
    }
}
