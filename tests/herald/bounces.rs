//! Bounces and complaints: the VERP envelope over real SMTP, reports
//! recorded into real SQLite files, and `herald bounces` as the real binary.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use herald::bounce::{
    Channel, FailureClass, Incoming, ParsedReport, RecipientReport, RecordOutcome, Recorder,
    ReportKind,
};
use herald::cli::SendArgs;
use herald::commands::send::run as send_issue;
use herald::config::Settings;
use herald::domain::{SubscriberEmail, Verp};
use herald::store::{now_millis, secrets, subscribers, Millis, Store};

use crate::db::{self, Backend, TestDatabase};
use crate::helpers::repo_path;
use crate::send::{address, block_on, open_store, seed_subscribers};
use crate::smtp_server::{Received, SmtpServer};

const DAY: Millis = 86_400_000;

struct Setup {
    dir: tempfile::TempDir,
    settings: Settings,
    server: SmtpServer,
    /// Kept for the test's duration: dropping it drops a PostgreSQL
    /// database.
    db: TestDatabase,
}

impl Setup {
    /// `subscribers` active readers, a real SMTP server, and a config file
    /// (so the binary and the library see the same settings) whose
    /// `[bounces]` section is `bounces`.
    fn new(backend: &Backend, subscribers: usize, bounces: &str) -> Setup {
        let server = SmtpServer::start();
        let dir = tempfile::tempdir().unwrap();
        let db = backend.database(dir.path());
        let config = format!(
            "{}[site]\nbase_url = \"https://news.example.com/\"\n\
             [smtp]\nurl = \"{}\"\ntimeout_secs = 5\n\
             [send]\nconcurrency = 2\nretry_first_delay_secs = 0\nretry_max_delay_secs = 0\nfailure_window = 10000\n\
             [bounces]\n{bounces}\n",
            db.config(),
            server.url()
        );
        std::fs::write(dir.path().join("herald.toml"), config).unwrap();
        let settings = Settings::load(&dir.path().join("herald.toml"), true).unwrap();
        seed_subscribers(&db.location(), subscribers);
        Setup {
            dir,
            settings,
            server,
            db,
        }
    }

    fn with_verp(backend: &Backend, subscribers: usize) -> Setup {
        Setup::new(
            backend,
            subscribers,
            "return_path = \"bounces@news.example.com\"",
        )
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("herald.toml")
    }

    /// Sends an example issue (1, 2 or 3) to everybody active.
    fn send(&self, issue: u32) {
        let args = SendArgs {
            issue: repo_path(&format!("examples/issues/vol-00{issue}.md")),
            force_new: false,
            to: None,
            at: None,
            cancel: false,
            dry_run: false,
            concurrency: None,
            rate: None,
        };
        assert_eq!(
            send_issue(&self.settings, &args, true).unwrap(),
            ExitCode::SUCCESS
        );
    }

    /// The copies `to` received, oldest first.
    fn mail_to(&self, to: &str) -> Vec<Received> {
        self.server
            .messages()
            .into_iter()
            .filter(|m| m.to.iter().any(|t| t == to))
            .collect()
    }

    async fn open(&self) -> Store {
        open_store(&self.settings).await
    }

    fn record(
        &self,
        report: ParsedReport,
        verp_address: Option<&str>,
        raw: &[u8],
    ) -> RecordOutcome {
        self.record_at(report, verp_address, raw, now_millis())
    }

    fn record_at(
        &self,
        report: ParsedReport,
        verp_address: Option<&str>,
        raw: &[u8],
        at: Millis,
    ) -> RecordOutcome {
        block_on(async {
            let store = open_store(&self.settings).await;
            let recorder = Recorder::new(store.clone(), Arc::new(self.settings.clone()));
            let incoming = Incoming {
                channel: Channel::Import,
                raw,
                verp_address,
                external_id: None,
                report,
            };
            let outcome = recorder.record(incoming, at).await.unwrap();
            store.close().await;
            outcome
        })
    }

    /// A subscriber's state and the reasons in their history.
    fn subscriber(&self, email: &str) -> (String, Vec<String>) {
        block_on(async {
            let store = open_store(&self.settings).await;
            let mut tx = store.begin().await.unwrap();
            let email = SubscriberEmail::parse(email).unwrap();
            let subscriber = subscribers::find_subscriber_by_email(&mut tx, &email)
                .await
                .unwrap()
                .unwrap();
            let events = subscribers::list_events(&mut tx, subscriber.id)
                .await
                .unwrap();
            tx.commit().await.unwrap();
            store.close().await;
            (
                subscriber.state.as_str().to_string(),
                events.into_iter().map(|e| e.reason).collect(),
            )
        })
    }

    fn verp(&self) -> Verp {
        block_on(async {
            let store = open_store(&self.settings).await;
            let mut tx = store.begin().await.unwrap();
            let key = secrets::verp_key(&mut tx, now_millis()).await.unwrap();
            tx.commit().await.unwrap();
            store.close().await;
            Verp::new(self.settings.return_path().unwrap().unwrap(), key)
        })
    }

    fn herald(&self, args: &[&str], stdin: &[u8]) -> Output {
        run_herald(&self.config(), args, stdin, &[])
    }
}

/// The real binary with `stdin` written to it (from a thread, so a child
/// that stops reading early cannot deadlock the test).
fn run_herald(config: &Path, args: &[&str], stdin: &[u8], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_herald"));
    command
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("ORIGINAL_RECIPIENT")
        .env_remove("RECIPIENT")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command.spawn().expect("herald runs");
    let mut pipe = child.stdin.take().unwrap();
    let input = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = pipe.write_all(&input);
    });
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap();
    output
}

fn text(output: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A header of a received message, as the receiver would read it.
fn header(message: &Received, name: &str) -> String {
    let parsed = mail_parser::MessageParser::default()
        .parse(&message.data)
        .unwrap();
    parsed
        .header_raw(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .trim()
        .to_string()
}

/// The returned message's Message-ID, as a parser gives it: no brackets.
fn message_id(message: &Received) -> String {
    header(message, "Message-ID")
        .trim_matches(|c| c == '<' || c == '>')
        .to_string()
}

fn failure(
    kind: ReportKind,
    address: &str,
    status: &str,
    class: FailureClass,
    message_id: Option<String>,
) -> ParsedReport {
    ParsedReport {
        kind,
        recipients: vec![RecipientReport {
            address: address.to_string(),
            status: Some(status.to_string()),
            class,
            diagnostic: format!("{status} something about {address}"),
        }],
        original_message_id: message_id,
        ..ParsedReport::not_a_report()
    }
}

/// A plain RFC 3464 delivery status notification, as Postfix writes one.
fn dsn(recipient: &str, status: &str, action: &str, original_id: &str, own_id: &str) -> Vec<u8> {
    format!(
        "Return-Path: <>\r\n\
         From: MAILER-DAEMON@mx.example.org (Mail Delivery System)\r\n\
         To: bounces@news.example.com\r\n\
         Subject: Undelivered Mail Returned to Sender\r\n\
         Message-ID: <{own_id}@mx.example.org>\r\n\
         Date: Sat, 28 Nov 2026 10:00:00 +0000\r\n\
         Auto-Submitted: auto-replied\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"B0UND\"\r\n\
         \r\n\
         --B0UND\r\n\
         Content-Type: text/plain; charset=us-ascii\r\n\
         \r\n\
         This is the mail system at host mx.example.org.\r\n\
         I'm sorry to have to inform you that your message could not\r\n\
         be delivered to one or more recipients.\r\n\
         \r\n\
         --B0UND\r\n\
         Content-Type: message/delivery-status\r\n\
         \r\n\
         Reporting-MTA: dns; mx.example.org\r\n\
         Arrival-Date: Sat, 28 Nov 2026 09:59:59 +0000\r\n\
         \r\n\
         Final-Recipient: rfc822; {recipient}\r\n\
         Original-Recipient: rfc822;{recipient}\r\n\
         Action: {action}\r\n\
         Status: {status}\r\n\
         Remote-MTA: dns; mail.example.com\r\n\
         Diagnostic-Code: smtp; 550 {status} <{recipient}>: Recipient address rejected: User unknown in local recipient table\r\n\
         \r\n\
         --B0UND\r\n\
         Content-Type: text/rfc822-headers\r\n\
         \r\n\
         From: Herald Weekly <newsletter@example.com>\r\n\
         To: {recipient}\r\n\
         Subject: Cloud Native Weekly\r\n\
         Message-ID: <{original_id}>\r\n\
         \r\n\
         --B0UND--\r\n"
    )
    .into_bytes()
}

fn delivery_report(
    setup: &Setup,
    delivery_id: i64,
) -> (Option<String>, Option<String>, Option<String>) {
    block_on(async {
        let store = setup.open().await;
        let column = |name: &str| format!("SELECT {name} FROM deliveries WHERE id = {delivery_id}");
        let row = (
            db::scalar(&store, &column("report_kind")).await,
            db::scalar(&store, &column("report_class")).await,
            db::scalar(&store, &column("report_status")).await,
        );
        store.close().await;
        row
    })
}

fn report_count(setup: &Setup) -> i64 {
    block_on(async {
        let store = setup.open().await;
        let n = db::scalar_i64(&store, "SELECT COUNT(*) FROM bounce_reports").await;
        store.close().await;
        n
    })
}

#[test]
fn verp_envelope_names_each_delivery_and_a_forged_tag_matches_nothing() {
    crate::db::for_each_backend(|backend| {
        let setup = Setup::with_verp(backend, 3);
        setup.send(1);
        let verp = setup.verp();
        let messages = setup.server.messages();
        assert_eq!(messages.len(), 3);
        let mut ids = Vec::new();
        for message in &messages {
            assert!(
                message.from.starts_with("bounces+") && message.from.ends_with("@news.example.com"),
                "MAIL FROM {}",
                message.from
            );
            assert_eq!(message.from, message.from.to_ascii_lowercase());
            let id = verp
                .delivery_of(&message.from)
                .expect("a tag this list signed");
            let recipient: String = block_on(async {
                let store = setup.open().await;
                let r = db::scalar_text(
                    &store,
                    &format!("SELECT recipient FROM deliveries WHERE id = {id}"),
                )
                .await;
                store.close().await;
                r
            });
            assert_eq!(vec![recipient], message.to, "the tag names this copy's row");
            ids.push(id);
        }

        // Another row's id under this copy's MAC: refused, so nobody is hit.
        let genuine = &messages[0].from;
        let mac = genuine
            .rsplit_once('-')
            .unwrap()
            .1
            .split_once('@')
            .unwrap()
            .0;
        let other_id = ids
            .iter()
            .find(|id| genuine != &verp.address_for(**id))
            .unwrap();
        let forged = format!("bounces+{other_id}-{mac}@news.example.com");
        assert_eq!(verp.delivery_of(&forged), None);
        let nameless = ParsedReport {
            kind: ReportKind::Bounce,
            ..ParsedReport::not_a_report()
        };
        let outcome = setup.record(nameless.clone(), Some(&forged), b"forged");
        assert_eq!((outcome.matched, outcome.unmatched), (0, 1));
        for i in 0..3 {
            assert_eq!(setup.subscriber(&address(i)).0, "active");
        }

        // The genuine tag matches even when the body names nobody.
        let outcome = setup.record(nameless, Some(genuine), b"genuine");
        assert_eq!((outcome.matched, outcome.unmatched), (1, 0));
        let owner = &messages[0].to[0];
        let (_, history) = setup.subscriber(owner);
        assert!(
            history
                .iter()
                .any(|r| r.starts_with("soft bounce (1 of 3)")),
            "{history:?}"
        );
    });
}

#[test]
fn transactional_mail_carries_the_tag_too() {
    crate::db::for_each_backend(|backend| {
        use herald::send::envelope::EnvelopeSender;
        use herald::send::worker::{send_next_batch, Counters, MessageSource, SendOptions};
        use herald::store::deliveries::{self, Queue};

        let setup = Setup::with_verp(backend, 1);
        let verp = setup.verp();
        block_on(async {
            let store = setup.open().await;
            let mut tx = store.begin().await.unwrap();
            let id = deliveries::enqueue_transactional(
                &mut tx,
                "confirmation",
                None,
                "someone@example.org",
                "<herald.confirm.x@example.com>",
                Some(b"Subject: hi\r\n\r\nhello\r\n"),
                now_millis(),
            )
            .await
            .unwrap();
            tx.commit().await.unwrap();
            let transport = herald::send::AnyTransport::from_settings(&setup.settings).unwrap();
            let source = MessageSource::Transactional {
                from: EnvelopeSender::new(
                    "newsletter@example.com".parse().unwrap(),
                    Some(verp.clone()),
                ),
                mail: None,
            };
            let mut connection = None;
            send_next_batch(
                &store,
                &transport,
                &mut connection,
                &source,
                Queue::Transactional,
                &SendOptions::from_settings(&setup.settings.send),
                &Counters::default(),
            )
            .await
            .unwrap();
            store.close().await;
            let messages = setup.server.messages();
            assert_eq!(messages.len(), 1);
            assert_eq!(verp.delivery_of(&messages[0].from), Some(id));
        });
    });
}

#[test]
fn without_a_return_path_the_envelope_sender_is_from() {
    crate::db::for_each_backend(|backend| {
        let setup = Setup::new(backend, 2, "");
        setup.send(1);
        for message in setup.server.messages() {
            assert_eq!(message.from, "newsletter@example.com");
        }
    });
}

#[test]
fn soft_bounces_count_distinct_deliveries_across_campaigns() {
    crate::db::for_each_backend(|backend| {
        let setup = Setup::new(backend, 2, "soft_bounce_limit = 3\nsoft_bounce_days = 30");
        for issue in 1..=3 {
            setup.send(issue);
        }
        let (reader0, reader1) = (address(0), address(1));
        let copies0 = setup.mail_to(&reader0);
        let copies1 = setup.mail_to(&reader1);
        assert_eq!((copies0.len(), copies1.len()), (3, 3));
        let soft = |to: &str, copy: &Received| {
            failure(
                ReportKind::Bounce,
                to,
                "4.2.2",
                FailureClass::Soft,
                Some(message_id(copy)),
            )
        };

        // Campaign 1's copy reported twice (two different messages): once.
        setup.record(soft(&reader0, &copies0[0]), None, b"first report of copy 1");
        setup.record(
            soft(&reader0, &copies0[0]),
            None,
            b"second report of copy 1",
        );
        setup.record(soft(&reader0, &copies0[1]), None, b"report of copy 2");
        let (state, history) = setup.subscriber(&reader0);
        assert_eq!(state, "active", "{history:?}");
        assert!(
            history
                .iter()
                .any(|r| r.starts_with("soft bounce (2 of 3)")),
            "{history:?}"
        );
        assert!(
            !history.iter().any(|r| r.starts_with("soft bounce (3")),
            "{history:?}"
        );

        setup.record(soft(&reader0, &copies0[2]), None, b"report of copy 3");
        let (state, history) = setup.subscriber(&reader0);
        assert_eq!(state, "bounced");
        let last = history.last().unwrap();
        assert!(
            last.contains("3 soft bounces within 30 days") && last.contains("4.2.2"),
            "{last}"
        );

        // A soft bounce older than the window does not count.
        let now = now_millis();
        setup.record_at(soft(&reader1, &copies1[0]), None, b"old", now - 31 * DAY);
        setup.record_at(soft(&reader1, &copies1[1]), None, b"new 2", now);
        setup.record_at(soft(&reader1, &copies1[2]), None, b"new 3", now);
        assert_eq!(setup.subscriber(&reader1).0, "active");
    });
}

#[test]
fn a_hard_bounce_through_the_pipe_marks_bounced_with_the_reason_once() {
    crate::db::for_each_backend(|backend| {
        let setup = Setup::with_verp(backend, 3);
        setup.send(1);
        let reader = address(1);
        let copy = setup.mail_to(&reader).remove(0);
        let verp_id = setup.verp().delivery_of(&copy.from).unwrap();
        let bounce = dsn(&reader, "5.1.1", "failed", &message_id(&copy), "dsn-1");

        // Postfix's local(8) passes the envelope recipient in the environment.
        let output = run_herald(
            &setup.config(),
            &["bounces", "process"],
            &bounce,
            &[("ORIGINAL_RECIPIENT", &copy.from)],
        );
        assert_eq!(output.status.code(), Some(0), "{}", text(&output));
        let (state, history) = setup.subscriber(&reader);
        assert_eq!(state, "bounced");
        let reason = history.last().unwrap();
        assert!(
            reason.contains("hard bounce") && reason.contains("5.1.1"),
            "{reason}"
        );
        assert_eq!(
            delivery_report(&setup, verp_id),
            (
                Some("bounce".into()),
                Some("hard".into()),
                Some("5.1.1".into())
            )
        );
        assert_eq!(setup.subscriber(&address(0)).0, "active");
        // Matched by the tag in $ORIGINAL_RECIPIENT, before the Message-ID.
        let listed = setup.herald(&["bounces", "list", "--json"], b"");
        let report: serde_json::Value = serde_json::from_str(
            String::from_utf8_lossy(&listed.stdout)
                .lines()
                .next()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(report["recipients"][0]["matched_by"], "verp", "{report}");
        assert_eq!(report["recipients"][0]["delivery_id"], verp_id);

        // The same message again: recorded before, nothing changes.
        let again = setup.herald(&["bounces", "process", "--recipient", &copy.from], &bounce);
        assert_eq!(again.status.code(), Some(0), "{}", text(&again));
        assert!(String::from_utf8_lossy(&again.stdout).contains("recorded before"));
        // A second bounce for the same copy: kept, but the history is unchanged.
        let second = dsn(&reader, "5.1.1", "failed", &message_id(&copy), "dsn-2");
        let output = setup.herald(&["bounces", "process", "--recipient", &copy.from], &second);
        assert_eq!(output.status.code(), Some(0), "{}", text(&output));
        assert_eq!(setup.subscriber(&reader).1, history);
        assert_eq!(report_count(&setup), 2);
    });
}

#[test]
fn a_delay_and_an_auto_reply_change_nothing() {
    crate::db::for_each_backend(|backend| {
        let setup = Setup::with_verp(backend, 1);
        setup.send(1);
        let reader = address(0);
        let copy = setup.mail_to(&reader).remove(0);
        let delay = dsn(&reader, "4.4.7", "delayed", &message_id(&copy), "delay-1");
        let output = setup.herald(&["bounces", "process", "--recipient", &copy.from], &delay);
        assert_eq!(output.status.code(), Some(0), "{}", text(&output));
        let reply = failure(
            ReportKind::AutoReply,
            &reader,
            "2.0.0",
            FailureClass::Soft,
            None,
        );
        setup.record(reply, Some(&copy.from), b"on holiday");
        let (state, history) = setup.subscriber(&reader);
        assert_eq!(state, "active");
        assert_eq!(history.len(), 0, "{history:?}");
    });
}

#[test]
fn a_complaint_stops_every_later_mail_to_that_subscriber() {
    crate::db::for_each_backend(|backend| {
        use herald::render::Templates;
        use herald::store::deliveries::{self, Queue};
        use herald::subscription::{
            SubscribeOutcome, SubscribeRequest, SubscriberMail, Subscriptions,
        };

        let setup = Setup::new(backend, 3, "");
        setup.send(1);
        let complainer = address(2);
        let copy = setup.mail_to(&complainer).remove(0);
        let complaint = failure(
            ReportKind::Complaint,
            &complainer,
            "",
            FailureClass::Hard,
            Some(message_id(&copy)),
        );
        let outcome = setup.record(complaint, None, b"an ARF report");
        assert_eq!(outcome.matched, 1);
        let (state, history) = setup.subscriber(&complainer);
        assert_eq!(state, "complained");
        assert!(
            history.last().unwrap().starts_with("complained"),
            "{history:?}"
        );

        setup.send(2);
        assert_eq!(
            setup.mail_to(&complainer).len(),
            1,
            "no copy of the next issue"
        );
        assert_eq!(setup.mail_to(&address(0)).len(), 2);

        // Signing up again changes nothing, and a welcome queued before the
        // complaint is never sent.
        let settings = Arc::new(setup.settings.clone());
        let subscriptions =
            Arc::new(Subscriptions::new(settings.clone(), &Templates::builtin()).unwrap());
        block_on(async {
            let store = setup.open().await;
            let email = SubscriberEmail::parse(&complainer).unwrap();
            let mut tx = store.begin().await.unwrap();
            let request = SubscribeRequest {
                email: &email,
                name: None,
                source: subscribers::Source::Form,
                consent: None,
                confirmed: false,
            };
            let outcome = subscriptions
                .subscribe(&mut tx, &request, now_millis())
                .await
                .unwrap();
            assert_eq!(
                outcome,
                SubscribeOutcome::Unchanged(subscribers::SubscriberState::Complained)
            );
            let id = subscribers::find_subscriber_by_email(&mut tx, &email)
                .await
                .unwrap()
                .unwrap()
                .id;
            deliveries::enqueue_transactional(
                &mut tx,
                "welcome",
                Some(id),
                &complainer,
                "<herald.welcome.1@example.com>",
                None,
                now_millis(),
            )
            .await
            .unwrap();
            tx.commit().await.unwrap();
            let before = setup.server.messages().len();
            let source = herald::send::worker::MessageSource::Transactional {
                from: "newsletter@example.com"
                    .parse::<lettre::Address>()
                    .unwrap()
                    .into(),
                mail: Some(Arc::new(SubscriberMail::new(
                    store.clone(),
                    subscriptions.clone(),
                ))),
            };
            let transport = herald::send::AnyTransport::from_settings(&setup.settings).unwrap();
            let mut connection = None;
            herald::send::worker::send_next_batch(
                &store,
                &transport,
                &mut connection,
                &source,
                Queue::Transactional,
                &herald::send::worker::SendOptions::from_settings(&setup.settings.send),
                &herald::send::worker::Counters::default(),
            )
            .await
            .unwrap();
            assert_eq!(setup.server.messages().len(), before, "nothing mailed");
            store.close().await;
        });
    });
}

#[test]
fn unmatched_reports_and_non_reports_are_kept_and_listed() {
    crate::db::for_each_backend(|backend| {
        let setup = Setup::with_verp(backend, 1);
        let stranger = failure(
            ReportKind::Bounce,
            "nobody@elsewhere.example",
            "5.1.1",
            FailureClass::Hard,
            Some("not-ours@elsewhere.example".into()),
        );
        let outcome = setup.record(
            stranger,
            Some("bounces@news.example.com"),
            b"a stranger's bounce",
        );
        assert_eq!(
            (outcome.matched, outcome.unmatched, outcome.duplicate),
            (0, 1, false)
        );
        let output = setup.herald(
            &["bounces", "process"],
            b"Subject: hello\r\n\r\nJust a note.\r\n",
        );
        assert_eq!(output.status.code(), Some(0), "{}", text(&output));

        let listed = setup.herald(&["bounces", "list", "--json"], b"");
        assert!(listed.status.success(), "{}", text(&listed));
        let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&listed.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert_eq!(lines[0]["kind"], "none");
        assert_eq!(lines[0]["channel"], "pipe");
        assert_eq!(lines[1]["kind"], "bounce");
        assert_eq!(lines[1]["unmatched"], 1);
        assert_eq!(
            lines[1]["recipients"][0]["address"],
            "nobody@elsewhere.example"
        );
        assert_eq!(
            lines[1]["recipients"][0]["matched_by"],
            serde_json::Value::Null
        );
        let table = setup.herald(&["bounces", "list"], b"");
        let table = String::from_utf8_lossy(&table.stdout);
        assert!(
            table.contains("nobody@elsewhere.example 5.1.1 hard"),
            "{table}"
        );
    });
}

#[test]
fn the_same_report_recorded_twice_is_a_duplicate() {
    crate::db::for_each_backend(|backend| {
        let setup = Setup::new(backend, 1, "");
        let report = || {
            failure(
                ReportKind::Bounce,
                &address(0),
                "5.1.1",
                FailureClass::Hard,
                None,
            )
        };
        let first = setup.record(report(), None, b"one message");
        let second = setup.record(report(), None, b"one message");
        assert!(!first.duplicate && second.duplicate);
        assert_eq!(second.report_id, first.report_id);
        assert_eq!(report_count(&setup), 1);
        let (state, history) = setup.subscriber(&address(0));
        assert_eq!((state.as_str(), history.len()), ("bounced", 1));
    });
}

#[test]
fn process_exits_75_while_the_database_is_locked_and_records_on_the_retry() {
    // SQLite only: it holds SQLite's database-wide EXCLUSIVE lock, which
    // PostgreSQL has no counterpart of (it locks rows).
    use sqlx::Connection;
    let setup = Setup::with_verp(&Backend::Sqlite, 1);
    setup.send(1);
    let reader = address(0);
    let copy = setup.mail_to(&reader).remove(0);
    let bounce = dsn(&reader, "5.1.1", "failed", &message_id(&copy), "locked-1");

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut lock = runtime.block_on(async {
        let url = setup.db.url.clone();
        let mut connection = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::query("BEGIN EXCLUSIVE")
            .execute(&mut connection)
            .await
            .unwrap();
        connection
    });
    let started = Instant::now();
    let output = setup.herald(&["bounces", "process", "--recipient", &copy.from], &bounce);
    assert_eq!(output.status.code(), Some(75), "{}", text(&output));
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "held the MTA too long"
    );
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("retries"),
        "{}",
        text(&output)
    );
    runtime.block_on(async {
        sqlx::query("ROLLBACK").execute(&mut lock).await.unwrap();
        lock.close().await.unwrap();
    });
    assert_eq!(report_count(&setup), 0, "nothing was half-recorded");
    assert_eq!(setup.subscriber(&reader).0, "active");

    // The MTA's retry.
    let output = setup.herald(&["bounces", "process", "--recipient", &copy.from], &bounce);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert_eq!(setup.subscriber(&reader).0, "bounced");
}

#[test]
fn process_takes_huge_and_garbage_input_without_harm() {
    crate::db::for_each_backend(|backend| {
        let setup = Setup::new(backend, 1, "");
        // 50 MB: read to the end (the MTA sees it taken), only 25 MB kept.
        let huge: Vec<u8> = (0..50 * 1024 * 1024u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
            .collect();
        let started = Instant::now();
        let output = setup.herald(&["bounces", "process"], &huge);
        assert_eq!(output.status.code(), Some(0), "{}", text(&output));
        assert!(String::from_utf8_lossy(&output.stderr).contains("only its first 25 MB"));
        assert!(started.elapsed() < Duration::from_secs(60));
        for garbage in [
            &b""[..],
            b"\xff\xfe\x00\x01not mail at all\x80",
            b"Content-Type: multipart/report; boundary=\"x\"\r\n\r\n--x\r\n",
        ] {
            let output = setup.herald(&["bounces", "process"], garbage);
            assert_eq!(output.status.code(), Some(0), "{}", text(&output));
        }
        let (kept, longest): (i64, i64) = block_on(async {
            let store = setup.open().await;
            let none = "FROM bounce_reports WHERE kind = 'none'";
            let row = (
                db::scalar_i64(&store, &format!("SELECT COUNT(*) {none}")).await,
                // length() of a BYTEA is an INT4 on PostgreSQL.
                db::scalar_i64(
                    &store,
                    &format!("SELECT CAST(MAX(length(raw)) AS BIGINT) {none}"),
                )
                .await,
            );
            store.close().await;
            row
        });
        assert_eq!((kept, longest), (4, 25 * 1024 * 1024));
    });
}

#[test]
fn import_reads_maildirs_mbox_files_and_single_messages() {
    crate::db::for_each_backend(|backend| {
        let setup = Setup::with_verp(backend, 4);
        setup.send(1);
        let copies: Vec<Received> = (0..4)
            .map(|i| setup.mail_to(&address(i)).remove(0))
            .collect();
        let dsn_for = |i: usize, status: &str| {
            dsn(
                &address(i),
                status,
                "failed",
                &message_id(&copies[i]),
                &format!("import-{i}"),
            )
        };
        let backlog = tempfile::tempdir().unwrap();
        let maildir = backlog.path().join("Maildir");
        for folder in ["new", "cur", "tmp"] {
            std::fs::create_dir_all(maildir.join(folder)).unwrap();
        }
        std::fs::write(maildir.join("new/1.host"), dsn_for(0, "5.1.1")).unwrap();
        std::fs::write(maildir.join("cur/2.host:2,S"), dsn_for(1, "5.1.1")).unwrap();
        std::fs::write(maildir.join("tmp/3.host"), dsn_for(2, "5.1.1")).unwrap();
        // Names neither the subscriber nor their copy; only the tag in the
        // Delivered-To the MTA added says whose it is.
        let tagged = setup
            .verp()
            .address_for(setup.verp().delivery_of(&copies[3].from).unwrap());
        let mut forwarded = format!("Delivered-To: {tagged}\r\n").into_bytes();
        forwarded.extend(dsn(
            "old-alias@elsewhere.example",
            "5.1.1",
            "failed",
            "unrelated@elsewhere.example",
            "import-3",
        ));
        std::fs::write(maildir.join("new/4.host"), forwarded).unwrap();
        let mut mbox = Vec::new();
        for (i, message) in [
            dsn_for(2, "5.1.1"),
            b"Subject: not a bounce\r\n\r\n>From the editor, hello.\r\n".to_vec(),
        ]
        .iter()
        .enumerate()
        {
            mbox.extend_from_slice(
                format!("From MAILER-DAEMON Sat Nov 28 10:0{i}:00 2026\n").as_bytes(),
            );
            mbox.extend_from_slice(
                &message
                    .iter()
                    .copied()
                    .filter(|b| *b != b'\r')
                    .collect::<Vec<_>>(),
            );
            mbox.extend_from_slice(b"\n");
        }
        let mbox_path = backlog.path().join("bounces.mbox");
        std::fs::write(&mbox_path, mbox).unwrap();
        let eml = backlog.path().join("one.eml");
        std::fs::write(
            &eml,
            dsn(
                "stranger@elsewhere.example",
                "5.1.1",
                "failed",
                "x@y",
                "import-x",
            ),
        )
        .unwrap();

        let paths = [
            maildir.to_str().unwrap(),
            mbox_path.to_str().unwrap(),
            eml.to_str().unwrap(),
        ];
        let mut args = vec!["bounces", "import"];
        args.extend(paths);
        let output = setup.herald(&args, b"");
        assert!(output.status.success(), "{}", text(&output));
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            stdout.contains("6 message(s) read: 5 bounce, 1 none"),
            "{stdout}"
        );
        assert!(stdout.contains("4 matched, 1 unmatched"), "{stdout}");
        assert!(
            stdout.contains("duplicates (recorded before, skipped): 0"),
            "{stdout}"
        );
        for i in 0..4 {
            assert_eq!(setup.subscriber(&address(i)).0, "bounced", "reader {i}");
        }

        let again = setup.herald(&args, b"");
        let stdout = String::from_utf8_lossy(&again.stdout);
        assert!(
            stdout.contains("duplicates (recorded before, skipped): 6"),
            "{stdout}"
        );

        let missing = setup.herald(&["bounces", "import", "/nonexistent/folder"], b"");
        assert_eq!(missing.status.code(), Some(1), "{}", text(&missing));
        assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/folder"));
    });
}

#[test]
fn status_shows_rates_and_warns_past_the_providers_levels() {
    crate::db::for_each_backend(|backend| {
        let setup = Setup::new(backend, 10, "");
        setup.send(1);
        let copy = setup.mail_to(&address(4)).remove(0);
        setup.record(
            failure(
                ReportKind::Complaint,
                &address(4),
                "",
                FailureClass::Hard,
                Some(message_id(&copy)),
            ),
            None,
            b"complaint",
        );
        let output = setup.herald(&["status", "--json"], b"");
        assert!(output.status.success(), "{}", text(&output));
        let status: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        let reports = &status["reports"][0];
        assert_eq!(
            (reports["sent"].as_i64(), reports["complaints"].as_i64()),
            (Some(10), Some(1))
        );
        assert_eq!(reports["complaint_rate"].as_f64(), Some(0.1));
        let output = setup.herald(&["status"], b"");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            stdout.contains("WARNING: campaign 1 (vol-001): complaints at 10.00% of sent"),
            "{stdout}"
        );
        assert!(stdout.contains("1 (10.00%)"), "{stdout}");
    });
}

#[test]
fn process_keeps_the_message_queued_when_the_config_is_broken() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("herald.toml");
    std::fs::write(
        &config,
        "[bounces]\nreturn_path = \"bounces+x@example.com\"\n",
    )
    .unwrap();
    let output = run_herald(
        &config,
        &["bounces", "process"],
        b"Subject: hi\r\n\r\nhello\r\n",
        &[],
    );
    assert_eq!(output.status.code(), Some(75), "{}", text(&output));
    assert!(String::from_utf8_lossy(&output.stderr).contains("[bounces] return_path"));
}

#[test]
fn raw_messages_are_emptied_after_keep_days_and_the_rest_stays() {
    crate::db::for_each_backend(|backend| {
        let setup = Setup::new(backend, 1, "keep_days = 90");
        let report = || {
            failure(
                ReportKind::Delay,
                &address(0),
                "4.4.7",
                FailureClass::Soft,
                None,
            )
        };
        let now = now_millis();
        let old = setup.record_at(report(), None, b"an old delay notice", now - 91 * DAY);
        let recent = setup.record_at(report(), None, b"a recent one", now - 89 * DAY);
        setup.record_at(report(), None, b"today's", now);
        let kept: Vec<(i64, Option<Vec<u8>>, String)> = block_on(async {
            let store = setup.open().await;
            let ids = db::texts(
                &store,
                "SELECT CAST(id AS TEXT) FROM bounce_reports ORDER BY id",
            )
            .await;
            let mut rows = Vec::new();
            for id in ids {
                let column =
                    |name: &str| format!("SELECT {name} FROM bounce_reports WHERE id = {id}");
                rows.push((
                    id.parse::<i64>().unwrap(),
                    db::scalar::<Option<Vec<u8>>>(&store, &column("raw")).await,
                    db::scalar_text(&store, &column("parsed")).await,
                ));
            }
            store.close().await;
            rows
        });
        assert_eq!(kept[0].0, old.report_id);
        assert_eq!(kept[0].1, None, "past keep_days: emptied");
        assert!(kept[0].2.contains("4.4.7"), "the parse result stays");
        assert_eq!(kept[1].0, recent.report_id);
        assert_eq!(kept[1].1.as_deref(), Some(&b"a recent one"[..]));
    });
}

#[test]
fn a_bounced_confirmation_is_found_by_its_message_id() {
    crate::db::for_each_backend(|backend| {
        use herald::render::Templates;
        use herald::store::deliveries::Queue;
        use herald::subscription::{SubscribeRequest, SubscriberMail, Subscriptions};

        let setup = Setup::new(backend, 0, "");
        let settings = Arc::new(setup.settings.clone());
        let subscriptions =
            Arc::new(Subscriptions::new(settings.clone(), &Templates::builtin()).unwrap());
        let newcomer = "typo@example.org";
        block_on(async {
            let store = setup.open().await;
            let email = SubscriberEmail::parse(newcomer).unwrap();
            let mut tx = store.begin().await.unwrap();
            let request = SubscribeRequest {
                email: &email,
                name: None,
                source: subscribers::Source::Form,
                consent: None,
                confirmed: false,
            };
            subscriptions
                .subscribe(&mut tx, &request, now_millis())
                .await
                .unwrap();
            tx.commit().await.unwrap();
            let source = herald::send::worker::MessageSource::Transactional {
                from: "newsletter@example.com".parse().unwrap(),
                mail: Some(Arc::new(SubscriberMail::new(
                    store.clone(),
                    subscriptions.clone(),
                ))),
            };
            let transport = herald::send::AnyTransport::from_settings(&setup.settings).unwrap();
            let mut connection = None;
            herald::send::worker::send_next_batch(
                &store,
                &transport,
                &mut connection,
                &source,
                Queue::Transactional,
                &herald::send::worker::SendOptions::from_settings(&setup.settings.send),
                &herald::send::worker::Counters::default(),
            )
            .await
            .unwrap();
            store.close().await;
        });
        let confirmation = setup.mail_to(newcomer).remove(0);
        // The body names no address (mangled); the returned Message-ID does.
        let report = ParsedReport {
            kind: ReportKind::Bounce,
            recipients: vec![RecipientReport {
                address: String::new(),
                status: Some("5.1.1".into()),
                class: FailureClass::Hard,
                diagnostic: "no such user".into(),
            }],
            original_message_id: Some(message_id(&confirmation)),
            ..ParsedReport::not_a_report()
        };
        let outcome = setup.record(report, None, b"bounced confirmation");
        assert_eq!((outcome.matched, outcome.unmatched), (1, 0));
        let (state, history) = setup.subscriber(newcomer);
        assert_eq!(state, "bounced", "{history:?}");
    });
}

#[test]
fn a_dmarc_failure_report_is_kept_but_marks_nobody_complained() {
    crate::db::for_each_backend(|backend| {
        let setup = Setup::new(backend, 1, "");
        setup.send(1);
        let reader = address(0);
        let copy = setup.mail_to(&reader).remove(0);
        let mut report = failure(
            ReportKind::Complaint,
            &reader,
            "",
            FailureClass::Hard,
            Some(message_id(&copy)),
        );
        report.feedback_type = Some("auth-failure".into());
        let outcome = setup.record(report, None, b"an RFC 6591 report");
        assert!(!outcome.duplicate);
        let (state, history) = setup.subscriber(&reader);
        assert_eq!(state, "active");
        assert!(history.is_empty(), "{history:?}");
        assert_eq!(report_count(&setup), 1, "the report is kept");
    });
}
