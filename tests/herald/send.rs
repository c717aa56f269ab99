//! `herald send` against a real SMTP server in-process, with faults.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use herald::cli::SendArgs;
use herald::commands::send::run as send_issue;
use herald::config::Settings;
use herald::domain::SubscriberEmail;
use herald::store::subscribers::{self, NewSubscriber, Source, SubscriberState};
use herald::store::{deliveries, now_millis, Location, Store};

use crate::db::{self, Backend, TestDatabase};
use crate::helpers::repo_path;
use crate::smtp_server::{reserve_port, start_proxy, SmtpServer};

pub struct SendSetup {
    pub dir: tempfile::TempDir,
    pub settings: Settings,
    /// Kept for the test's duration: dropping it drops a PostgreSQL
    /// database.
    pub db: TestDatabase,
}

/// Settings for sending to `smtp_url` from a database on `backend` that
/// holds `subscribers` active subscribers.
pub fn setup(backend: &Backend, smtp_url: &str, subscribers: usize) -> SendSetup {
    let dir = tempfile::tempdir().unwrap();
    let db = backend.database(dir.path());
    let mut settings = Settings {
        root: dir.path().to_path_buf(),
        ..Settings::default()
    };
    settings.database.url = db.settings_url();
    settings.smtp.url = smtp_url.to_string();
    settings.smtp.timeout_secs = 5;
    settings.send.concurrency = 4;
    settings.send.retry_first_delay_secs = 0;
    settings.send.retry_max_delay_secs = 0;
    settings.send.failure_window = 10_000;
    settings.site.base_url = "https://news.example.com/".parse().unwrap();
    seed_subscribers(&db.location(), subscribers);
    SendSetup { dir, settings, db }
}

/// The store `settings` name, opened as Herald opens it.
pub async fn open_store(settings: &Settings) -> Store {
    let location = settings.database().expect("a valid [database] url");
    Store::connect(&location)
        .await
        .unwrap_or_else(|e| panic!("opening {location:?}: {e:#}"))
}

pub fn address(i: usize) -> String {
    format!("reader{i:05}@example.com")
}

pub fn seed_subscribers(database: &Location, count: usize) {
    block_on(async {
        let store = Store::connect(database).await.unwrap();
        let mut tx = store.begin().await.unwrap();
        for i in 0..count {
            let email = SubscriberEmail::parse(&address(i)).unwrap();
            let token = format!("token{i:05}abcdefghijklmnop");
            let new = NewSubscriber {
                email: &email,
                name: None,
                state: SubscriberState::Active,
                source: Source::Cli,
                consent: None,
                unsubscribe_token: &token,
            };
            subscribers::insert_subscriber(&mut tx, &new, now_millis())
                .await
                .unwrap();
        }
        tx.commit().await.unwrap();
        store.close().await;
    })
}

pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

fn issue() -> PathBuf {
    repo_path("examples/issues/vol-001.md")
}

fn args() -> SendArgs {
    SendArgs {
        issue: issue(),
        force_new: false,
        to: None,
        at: None,
        cancel: false,
        dry_run: false,
        concurrency: None,
        rate: None,
    }
}

fn delivery_counts(settings: &Settings) -> Vec<(String, i64)> {
    block_on(async {
        let store = open_store(settings).await;
        let mut tx = store.begin().await.unwrap();
        let campaign = herald::store::campaigns::find_latest_campaign(&mut tx)
            .await
            .unwrap();
        let counts = match campaign {
            Some(c) => crate::helpers::counts_by_name(
                &deliveries::count_deliveries_by_state(&mut tx, deliveries::Queue::Campaign(c.id))
                    .await
                    .unwrap(),
            ),
            None => Vec::new(),
        };
        tx.commit().await.unwrap();
        store.close().await;
        counts
    })
}

fn count(counts: &[(String, i64)], state: &str) -> i64 {
    counts
        .iter()
        .find(|(s, _)| s == state)
        .map_or(0, |(_, n)| *n)
}

fn subscriber_state(settings: &Settings, email: &str) -> String {
    block_on(async {
        let store = open_store(settings).await;
        let state = db::scalar_text(
            &store,
            &format!("SELECT state FROM subscribers WHERE email = '{email}'"),
        )
        .await;
        store.close().await;
        state
    })
}

fn assert_each_received_once(server: &SmtpServer, count: usize) {
    let copies = server.copies_by_recipient();
    assert_eq!(copies.len(), count, "distinct recipients");
    let twice: Vec<_> = copies.iter().filter(|(_, n)| **n != 1).collect();
    assert!(
        twice.is_empty(),
        "recipients with more than one copy: {twice:?}"
    );
}

#[test]
fn happy_path_delivers_once_to_each_with_list_headers_and_resumes_to_nothing() {
    crate::db::for_each_backend(|backend| {
        let server = SmtpServer::start();
        let s = setup(backend, &server.url(), 60);
        assert_eq!(
            send_issue(&s.settings, &args(), true).unwrap(),
            ExitCode::SUCCESS
        );
        assert_each_received_once(&server, 60);
        let counts = delivery_counts(&s.settings);
        assert_eq!(count(&counts, "sent"), 60, "{counts:?}");

        let message = server
            .messages()
            .into_iter()
            .find(|m| m.to == vec![address(7)])
            .unwrap();
        let parsed = mail_parser::MessageParser::default()
            .parse(&message.data)
            .unwrap();
        assert_eq!(parsed.subject(), Some("云原生生态周报 第 1 期"));
        let unsubscribe = parsed.header_raw("List-Unsubscribe").unwrap().trim();
        assert_eq!(
            unsubscribe,
            "<https://news.example.com/unsubscribe/token00007abcdefghijklmnop>"
        );
        assert_eq!(
            parsed.header_raw("List-Unsubscribe-Post").map(str::trim),
            Some("List-Unsubscribe=One-Click")
        );
        let html = parsed.body_html(0).unwrap();
        assert!(html.contains("https://news.example.com/unsubscribe/token00007abcdefghijklmnop"));
        assert!(html.contains(&address(7)));
        assert!(html.contains("https://news.example.com/issues/vol-001/"));
        let ids: std::collections::HashSet<String> = server
            .messages()
            .iter()
            .map(|m| {
                let p = mail_parser::MessageParser::default()
                    .parse(&m.data)
                    .unwrap();
                p.message_id().unwrap().to_string()
            })
            .collect();
        assert_eq!(ids.len(), 60, "Message-IDs are unique");

        // Sending the same issue again mails nobody.
        assert_eq!(
            send_issue(&s.settings, &args(), true).unwrap(),
            ExitCode::SUCCESS
        );
        assert_eq!(server.messages().len(), 60);

        // A deliberate resend does.
        let force = SendArgs {
            force_new: true,
            ..args()
        };
        assert_eq!(
            send_issue(&s.settings, &force, true).unwrap(),
            ExitCode::SUCCESS
        );
        assert_eq!(server.messages().len(), 120);
    });
}

#[test]
fn ten_percent_greylisting_still_delivers_exactly_one_copy_each() {
    crate::db::for_each_backend(|backend| {
        let server = SmtpServer::start();
        server.faults.lock().unwrap().rcpt_451_rate = 0.10;
        let s = setup(backend, &server.url(), 200);
        assert_eq!(
            send_issue(&s.settings, &args(), true).unwrap(),
            ExitCode::SUCCESS
        );
        assert_each_received_once(&server, 200);
        let counts = delivery_counts(&s.settings);
        assert_eq!(count(&counts, "sent"), 200, "{counts:?}");
        let retried: i64 = block_on(async {
            let store = open_store(&s.settings).await;
            let n =
                db::scalar_i64(&store, "SELECT COUNT(*) FROM deliveries WHERE attempts > 1").await;
            store.close().await;
            n
        });
        assert!(
            retried >= 5,
            "some deliveries must have needed a retry, got {retried}"
        );
    });
}

#[test]
fn no_such_mailbox_fails_at_once_and_bounces_the_subscriber() {
    crate::db::for_each_backend(|backend| {
        let server = SmtpServer::start();
        server.faults.lock().unwrap().no_such_user =
            [address(3), address(11)].into_iter().collect();
        let s = setup(backend, &server.url(), 20);
        assert_eq!(
            send_issue(&s.settings, &args(), true).unwrap(),
            ExitCode::SUCCESS
        );
        let counts = delivery_counts(&s.settings);
        assert_eq!(
            (count(&counts, "sent"), count(&counts, "failed")),
            (18, 2),
            "{counts:?}"
        );
        assert_eq!(subscriber_state(&s.settings, &address(3)), "bounced");
        assert_eq!(subscriber_state(&s.settings, &address(4)), "active");
        let (code, enhanced, attempts): (i64, String, i64) = block_on(async {
            let store = open_store(&s.settings).await;
            let recipient = format!("WHERE recipient = '{}'", address(3));
            let row = (
                db::scalar_i64(
                    &store,
                    &format!("SELECT last_code FROM deliveries {recipient}"),
                )
                .await,
                db::scalar_text(
                    &store,
                    &format!("SELECT last_enhanced_code FROM deliveries {recipient}"),
                )
                .await,
                db::scalar_i64(
                    &store,
                    &format!("SELECT attempts FROM deliveries {recipient}"),
                )
                .await,
            );
            store.close().await;
            row
        });
        assert_eq!((code, enhanced.as_str(), attempts), (550, "5.1.1", 1));

        // The next issue does not go to the bounced address.
        let next = SendArgs {
            issue: repo_path("examples/issues/vol-002.md"),
            ..args()
        };
        server.faults.lock().unwrap().no_such_user.clear();
        let before = server.messages().len();
        send_issue(&s.settings, &next, true).unwrap();
        let new: Vec<_> = server.messages()[before..]
            .iter()
            .flat_map(|m| m.to.clone())
            .collect();
        assert_eq!(new.len(), 18);
        assert!(!new.contains(&address(3)));
    });
}

#[test]
fn a_connection_dropped_mid_data_is_retried() {
    crate::db::for_each_backend(|backend| {
        let server = SmtpServer::start();
        let proxy = start_proxy(server.addr, 3, false);
        let s = setup(backend, &format!("smtp://{}?tls=none", proxy.addr), 30);
        assert_eq!(
            send_issue(&s.settings, &args(), true).unwrap(),
            ExitCode::SUCCESS
        );
        assert_each_received_once(&server, 30);
        let counts = delivery_counts(&s.settings);
        assert_eq!(count(&counts, "sent"), 30, "{counts:?}");
    });
}

#[test]
fn server_down_at_the_start_is_a_clear_error_and_a_later_run_delivers_all() {
    crate::db::for_each_backend(|backend| {
        let addr = reserve_port();
        let s = setup(backend, &format!("smtp://{addr}?tls=none"), 25);
        let error = send_issue(&s.settings, &args(), true).unwrap_err();
        let message = format!("{error:#}");
        assert!(
            message.contains("cannot reach the mail server"),
            "{message}"
        );
        assert!(message.contains("Nothing was sent"), "{message}");
        assert!(error.chain().any(|e| e.is::<herald::commands::UserError>()));
        assert!(
            delivery_counts(&s.settings).is_empty(),
            "no campaign, no rows"
        );

        let server = SmtpServer::start_on(std::net::TcpListener::bind(addr).unwrap());
        assert_eq!(
            send_issue(&s.settings, &args(), true).unwrap(),
            ExitCode::SUCCESS
        );
        assert_each_received_once(&server, 25);
    });
}

#[test]
fn a_broken_server_pauses_the_campaign_and_a_later_run_resumes_it() {
    crate::db::for_each_backend(|backend| {
        let server = SmtpServer::start();
        server.faults.lock().unwrap().always_451 = true;
        let mut s = setup(backend, &server.url(), 300);
        s.settings.send.failure_window = 20;
        s.settings.send.failure_threshold = 0.5;
        // Real backoff, so the paused rows are not all due again at once.
        s.settings.send.retry_first_delay_secs = 300;
        s.settings.send.retry_max_delay_secs = 300;
        let error = send_issue(&s.settings, &args(), true).unwrap_err();
        assert!(format!("{error:#}").contains("paused"), "{error:#}");
        let counts = delivery_counts(&s.settings);
        assert_eq!(count(&counts, "sent"), 0);
        assert!(
            count(&counts, "queued") >= 200,
            "most of the list untouched: {counts:?}"
        );
        assert_eq!(
            count(&counts, "sending"),
            0,
            "claims were given back: {counts:?}"
        );

        server.faults.lock().unwrap().always_451 = false;
        assert_eq!(
            send_issue(&s.settings, &args(), true).unwrap(),
            ExitCode::SUCCESS
        );
        let counts = delivery_counts(&s.settings);
        assert_eq!(
            count(&counts, "sent") + count(&counts, "deferred"),
            300,
            "{counts:?}"
        );
        // The window fills at 20 failures; attempts already on the wire then
        // finish too, but the rest of the list was never tried.
        assert!(
            count(&counts, "deferred") <= 100,
            "only the attempts before the pause wait: {counts:?}"
        );
    });
}

#[test]
fn a_rate_limit_is_honoured_within_ten_percent() {
    crate::db::for_each_backend(|backend| {
        let server = SmtpServer::start();
        let mut s = setup(backend, &server.url(), 41);
        s.settings.send.rate = 20;
        assert_eq!(
            send_issue(&s.settings, &args(), true).unwrap(),
            ExitCode::SUCCESS
        );
        let mut times: Vec<_> = server.messages().iter().map(|m| m.at).collect();
        times.sort();
        let span = times.last().unwrap().duration_since(times[0]).as_secs_f64();
        let rate = 40.0 / span;
        // Never more than 10% over the limit. Under it, only by scheduling
        // delay: the tests run in parallel on two cores, so the floor is looser
        // (the bench measures 499/s for 500 and 1,992/s for 2,000 on an idle
        // machine).
        assert!(
            (14.0..=22.0).contains(&rate),
            "measured {rate:.1} messages/s for a limit of 20"
        );
    });
}

#[test]
fn subscribers_who_leave_mid_campaign_are_skipped() {
    crate::db::for_each_backend(|backend| {
        let server = SmtpServer::start();
        server.faults.lock().unwrap().always_451 = true;
        let mut s = setup(backend, &server.url(), 10);
        s.settings.send.failure_window = 5;
        let _ = send_issue(&s.settings, &args(), true).unwrap_err();
        block_on(async {
            let store = open_store(&s.settings).await;
            db::execute(
                &store,
                &format!(
                    "UPDATE subscribers SET state = 'unsubscribed' WHERE email = '{}'",
                    address(9)
                ),
            )
            .await;
            store.close().await;
        });
        server.faults.lock().unwrap().always_451 = false;
        assert_eq!(
            send_issue(&s.settings, &args(), true).unwrap(),
            ExitCode::SUCCESS
        );
        let copies = server.copies_by_recipient();
        assert_eq!(copies.len(), 9);
        assert!(!copies.contains_key(&address(9)));
        assert_eq!(count(&delivery_counts(&s.settings), "skipped"), 1);
    });
}

#[test]
fn dry_run_and_test_copy_record_nothing() {
    crate::db::for_each_backend(|backend| {
        let server = SmtpServer::start();
        let s = setup(backend, &server.url(), 5);
        let dry = SendArgs {
            dry_run: true,
            ..args()
        };
        assert_eq!(
            send_issue(&s.settings, &dry, true).unwrap(),
            ExitCode::SUCCESS
        );
        let test_copy = SendArgs {
            to: Some("editor@example.com".into()),
            ..args()
        };
        assert_eq!(
            send_issue(&s.settings, &test_copy, true).unwrap(),
            ExitCode::SUCCESS
        );
        let messages = server.messages();
        assert_eq!(messages.len(), 1);
        assert_eq!(messages[0].to, vec!["editor@example.com".to_string()]);
        assert!(
            delivery_counts(&s.settings).is_empty(),
            "no campaign was recorded"
        );
    });
}

#[test]
fn file_outbox_is_the_embedded_default() {
    crate::db::for_each_backend(|backend| {
        let s = setup(backend, "file://outbox", 3);
        assert_eq!(
            send_issue(&s.settings, &args(), true).unwrap(),
            ExitCode::SUCCESS
        );
        let outbox = s.dir.path().join("outbox");
        let files: Vec<_> = std::fs::read_dir(&outbox).unwrap().collect();
        assert_eq!(files.len(), 3);
    });
}

/// Rows in this test carry their message; nothing is made at send time.
struct NoMail;

impl herald::send::worker::TransactionalMail for NoMail {
    fn build<'a>(
        &'a self,
        _: &'a deliveries::ClaimedDelivery,
    ) -> futures_util::future::BoxFuture<'a, Result<Vec<u8>, herald::send::SendError>> {
        Box::pin(async { Err(herald::send::SendError::permanent("not in this test")) })
    }
}

#[test]
fn transactional_mail_waits_out_an_smtp_outage() {
    crate::db::for_each_backend(|backend| {
        use herald::send::outbox::{run_transactional_worker, OutboxSignal};
        let addr = reserve_port();
        let mut s = setup(backend, &format!("smtp://{addr}?tls=none"), 0);
        s.settings.send.retry_first_delay_secs = 1;
        s.settings.send.retry_max_delay_secs = 1;
        let settings = s.settings.clone();
        block_on(async move {
            let store = open_store(&settings).await;
            let mut tx = store.begin().await.unwrap();
            let message =
                b"From: a@example.com\r\nTo: new@example.com\r\nSubject: confirm\r\n\r\nclick\r\n";
            deliveries::enqueue_transactional(
                &mut tx,
                "confirmation",
                None,
                "new@example.com",
                "<c1@example.com>",
                Some(message),
                now_millis(),
            )
            .await
            .unwrap();
            tx.commit().await.unwrap();
            let transport = herald::send::AnyTransport::from_settings(&settings).unwrap();
            let options = herald::commands::send::send_options(&settings, &args());
            let signal = OutboxSignal::default();
            let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
            let worker = tokio::spawn(run_transactional_worker(
                store.clone(),
                transport,
                "a@example.com".parse().unwrap(),
                Arc::new(NoMail),
                options,
                signal.clone(),
                async {
                    let _ = stop_rx.await;
                },
            ));
            // Down: the attempt is deferred, nothing lost.
            // Polled, not slept: a loaded CI machine may take a while.
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            let state = loop {
                let state = db::scalar_text(&store, "SELECT state FROM deliveries").await;
                if state != "queued" && state != "sending" || std::time::Instant::now() > deadline {
                    break state;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            };
            assert_eq!(state, "deferred");
            // Back up: it arrives on a later attempt.
            let server = SmtpServer::start_on(std::net::TcpListener::bind(addr).unwrap());
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while server.messages().is_empty() && std::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            assert_eq!(server.messages().len(), 1);
            assert_eq!(server.messages()[0].to, vec!["new@example.com".to_string()]);
            stop_tx.send(()).unwrap();
            worker.await.unwrap();
            let state = db::scalar_text(&store, "SELECT state FROM deliveries").await;
            assert_eq!(state, "sent");
        });
    });
}

#[test]
fn dkim_signs_both_list_unsubscribe_headers() {
    crate::db::for_each_backend(|backend| {
        use base64::Engine;
        let server = SmtpServer::start();
        let mut s = setup(backend, &server.url(), 2);
        let key = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        std::fs::write(s.dir.path().join("dkim.key"), key).unwrap();
        s.settings.send.dkim_selector = Some("herald".into());
        s.settings.send.dkim_domain = Some("example.com".into());
        s.settings.send.dkim_key_file = Some("dkim.key".into());
        assert_eq!(
            send_issue(&s.settings, &args(), true).unwrap(),
            ExitCode::SUCCESS
        );
        let message = &server.messages()[0];
        let parsed = mail_parser::MessageParser::default()
            .parse(&message.data)
            .unwrap();
        let signature = parsed
            .header_raw("DKIM-Signature")
            .expect("signed")
            .replace(['\r', '\n', ' ', '\t'], "");
        assert!(signature.contains("d=example.com"), "{signature}");
        assert!(signature.contains("s=herald"), "{signature}");
        crate::dkim_verify::verify(&message.data, &crate::dkim_verify::test_key())
            .expect("the signature verifies");
        // A verifier that cannot fail proves nothing: one changed byte in the
        // body, or in a signed header, and it must not verify.
        let text = String::from_utf8(message.data.clone()).unwrap();
        let body_at = text.find("\r\n\r\n").unwrap() + 4;
        let mut tampered_body = text.clone();
        tampered_body.insert(body_at, 'x');
        assert!(crate::dkim_verify::verify(
            tampered_body.as_bytes(),
            &crate::dkim_verify::test_key()
        )
        .is_err());
        let subject = parsed.subject().unwrap().to_string();
        let raw_subject = text
            .lines()
            .find(|l| l.starts_with("Subject:"))
            .unwrap()
            .to_string();
        let tampered_header = text.replacen(&raw_subject, "Subject: Win a prize", 1);
        assert_ne!(tampered_header, text, "{subject}");
        assert!(crate::dkim_verify::verify(
            tampered_header.as_bytes(),
            &crate::dkim_verify::test_key()
        )
        .is_err());
        let signed: Vec<String> = signature
            .split(';')
            .find_map(|tag| tag.strip_prefix("h="))
            .unwrap()
            .split(':')
            .map(str::to_ascii_lowercase)
            .collect();
        for header in [
            "from",
            "subject",
            "list-unsubscribe",
            "list-unsubscribe-post",
            "list-id",
        ] {
            assert!(
                signed.iter().any(|h| h == header),
                "{header} not signed: {signed:?}"
            );
        }
    });
}

#[test]
fn status_reports_counts_rate_and_grouped_errors() {
    crate::db::for_each_backend(|backend| {
        let server = SmtpServer::start();
        server.faults.lock().unwrap().no_such_user = [address(1), address(2)].into_iter().collect();
        let s = setup(backend, &server.url(), 10);
        send_issue(&s.settings, &args(), true).unwrap();
        let config = s.dir.path().join("herald.toml");
        std::fs::write(&config, s.db.config()).unwrap();
        let output = crate::helpers::herald(
            &[
                "--config",
                config.to_str().unwrap(),
                "status",
                "vol-001",
                "--json",
            ],
            s.dir.path(),
        );
        assert!(
            output.status.success(),
            "{}",
            crate::helpers::stderr(&output)
        );
        let status: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(status["state"], "finished");
        assert_eq!(status["counts"]["sent"], 8);
        assert_eq!(status["counts"]["failed"], 2);
        // The two replies differ by the address they name, and are still one
        // group.
        assert_eq!(status["errors"].as_array().unwrap().len(), 1, "{status}");
        assert_eq!(status["errors"][0]["count"], 2);
        assert_eq!(status["errors"][0]["code"], 550);
        assert_eq!(status["errors"][0]["enhanced_code"], "5.1.1");
        assert_eq!(
            status["errors"][0]["reply"],
            "<address>: Recipient address rejected: User unknown in virtual mailbox table"
        );
        let text = crate::helpers::herald(
            &["--config", config.to_str().unwrap(), "status"],
            s.dir.path(),
        );
        let text = String::from_utf8_lossy(&text.stdout);
        assert!(text.contains("state: finished"), "{text}");
        assert!(text.contains("2 × failed 550 5.1.1"), "{text}");
    });
}

#[test]
fn pipelined_transactions_deliver_and_fail_like_sequential_ones() {
    crate::db::for_each_backend(|backend| {
        let server = SmtpServer::start();
        {
            let mut faults = server.faults.lock().unwrap();
            faults.rcpt_451_rate = 0.10;
            faults.no_such_user = [address(5)].into_iter().collect();
        }
        let proxy = start_proxy(server.addr, 0, true);
        let s = setup(backend, &format!("smtp://{}?tls=none", proxy.addr), 100);
        assert_eq!(
            send_issue(&s.settings, &args(), true).unwrap(),
            ExitCode::SUCCESS
        );
        assert!(
            proxy
                .pipelined_writes
                .load(std::sync::atomic::Ordering::SeqCst)
                >= 99,
            "MAIL, RCPT and DATA went out together"
        );
        let copies = server.copies_by_recipient();
        assert_eq!(copies.len(), 99);
        assert!(copies.values().all(|n| *n == 1), "{copies:?}");
        assert!(!copies.contains_key(&address(5)));
        let counts = delivery_counts(&s.settings);
        assert_eq!(
            (count(&counts, "sent"), count(&counts, "failed")),
            (99, 1),
            "{counts:?}"
        );
        assert_eq!(subscriber_state(&s.settings, &address(5)), "bounced");
    });
}

#[test]
fn a_refused_sender_bounces_nobody_and_pauses() {
    crate::db::for_each_backend(|backend| {
        for pipelining in [false, true] {
            let server = SmtpServer::start();
            server.faults.lock().unwrap().reject_sender = true;
            let proxy = start_proxy(server.addr, 0, pipelining);
            let mut s = setup(backend, &format!("smtp://{}?tls=none", proxy.addr), 60);
            s.settings.send.failure_window = 10;
            s.settings.send.retry_first_delay_secs = 300;
            let error = send_issue(&s.settings, &args(), true).unwrap_err();
            assert!(format!("{error:#}").contains("paused"), "{error:#}");
            let counts = delivery_counts(&s.settings);
            assert_eq!(
                count(&counts, "failed"),
                0,
                "nobody failed for our sender: {counts:?}"
            );
            for i in 0..60 {
                assert_eq!(subscriber_state(&s.settings, &address(i)), "active");
            }
            assert!(server.messages().is_empty());
        }
    });
}

#[test]
fn a_data_accepted_after_a_refused_recipient_is_ended_and_the_run_finishes() {
    crate::db::for_each_backend(|backend| {
        let (addr, ended) = crate::smtp_server::start_data_after_refusal_server();
        let mut s = setup(backend, &format!("smtp://{addr}?tls=none"), 3);
        s.settings.smtp.timeout_secs = 3;
        let started = std::time::Instant::now();
        assert_eq!(
            send_issue(&s.settings, &args(), true).unwrap(),
            ExitCode::SUCCESS
        );
        assert!(started.elapsed() < Duration::from_secs(10), "the run hung");
        // Each refused transaction's DATA was closed with an empty message.
        assert_eq!(ended.load(std::sync::atomic::Ordering::SeqCst), 3);
        let counts = delivery_counts(&s.settings);
        assert_eq!(count(&counts, "failed"), 3, "{counts:?}");
        assert_eq!(subscriber_state(&s.settings, &address(0)), "bounced");
    });
}

/// A disk that fills mid-message (here a file-size limit, EFBIG, which
/// fails the write just as ENOSPC does) leaves no empty or truncated
/// message in the outbox, and no temporary file either.
#[test]
fn a_write_that_fails_midway_leaves_nothing_in_the_outbox() {
    let dir = tempfile::tempdir().unwrap();
    let issue = crate::helpers::repo_path("examples/issues/vol-001.md");
    let output = std::process::Command::new("sh")
        .arg("-c")
        // Ignored signals stay ignored across exec: the write fails with
        // EFBIG instead of SIGXFSZ killing the process.
        .arg("trap '' XFSZ; ulimit -f 16; exec \"$0\" send --to reader@example.com \"$1\"")
        .arg(env!("CARGO_BIN_EXE_herald"))
        .arg(&issue)
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("File too large"), "{stderr}");
    let left: Vec<_> = std::fs::read_dir(dir.path().join("outbox"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
