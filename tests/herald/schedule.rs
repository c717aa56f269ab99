//! Scheduled sends: `herald send --at` and `--cancel` through the real
//! binary on real SQLite files, `herald status` listing them, `herald
//! worker` and `herald serve` starting one that came due while nothing ran
//! (mailing everybody once, over real SMTP), several starters on one
//! database starting it once, and the migration that made room for it.

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use herald::issue::{read_issue, Issue};
use herald::render::{EmailContext, Templates};
use herald::send::campaign::{
    cancel_campaign, schedule, scheduled_campaigns, start_due_campaigns, CampaignRequest,
    Cancellation, Scheduling,
};
use herald::store::campaigns::CampaignState;
use herald::store::{now_millis, Store};

use crate::db::{self, for_each_backend, for_each_backend_async, Backend};
use crate::helpers::{herald, repo_path, stderr, Workspace};
use crate::send::{address, block_on, seed_subscribers};
use crate::smtp_server::SmtpServer;

/// 2099-12-07T00:00:00Z: far enough ahead never to be in the past.
const DEC_7_2099_UTC: i64 = 4_100_284_800_000;

fn run(ws: &Workspace, args: &[&str]) -> Output {
    let config = ws.config();
    let mut all = vec!["--config", config.to_str().unwrap()];
    all.extend_from_slice(args);
    herald(&all, ws.path())
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A workspace whose site is in Shanghai, with the example subscribers
/// confirmed and mail going to a file outbox.
fn shanghai() -> Workspace {
    let ws = Workspace::with_examples(
        "[site]\ntimezone = \"Asia/Shanghai\"\n[smtp]\nurl = \"file://outbox\"\n",
    );
    let csv = repo_path("examples/subscribers.csv");
    let import = run(
        &ws,
        &[
            "subscribers",
            "import",
            csv.to_str().unwrap(),
            "--confirmed",
        ],
    );
    assert!(import.status.success(), "{}", stderr(&import));
    ws
}

fn issue(ws: &Workspace, name: &str) -> String {
    ws.issues().join(name).to_str().unwrap().to_string()
}

fn sql_i64(ws: &Workspace, sql: &str) -> i64 {
    block_on(async {
        let store = Store::connect(&ws.settings().database().unwrap())
            .await
            .unwrap();
        let n = db::scalar_i64(&store, sql).await;
        store.close().await;
        n
    })
}

fn sql(ws: &Workspace, statement: &str) {
    block_on(async {
        let store = Store::connect(&ws.settings().database().unwrap())
            .await
            .unwrap();
        db::execute(&store, statement).await;
        store.close().await;
    })
}

#[test]
fn send_at_reads_the_site_zone_or_rfc3339_and_refuses_the_past_and_garbage() {
    let ws = shanghai();
    let vol1 = issue(&ws, "vol-001.md");

    // 08:00 in Shanghai is midnight UTC.
    let scheduled = run(&ws, &["send", &vol1, "--at", "2099-12-07 08:00"]);
    assert!(scheduled.status.success(), "{}", stderr(&scheduled));
    let said = stdout(&scheduled);
    assert!(
        said.contains("vol-001 is scheduled for 2099-12-07 08:00 +08:00 (Asia/Shanghai)"),
        "{said}"
    );
    assert_eq!(
        sql_i64(
            &ws,
            "SELECT scheduled_at FROM campaigns WHERE state = 'scheduled'"
        ),
        DEC_7_2099_UTC
    );
    // Nothing is queued or sent until it starts.
    assert_eq!(sql_i64(&ws, "SELECT COUNT(*) FROM deliveries"), 0);
    assert!(!ws.path().join("outbox").exists());

    let cancelled = run(&ws, &["send", "--cancel", &vol1]);
    assert!(cancelled.status.success(), "{}", stderr(&cancelled));

    // RFC 3339 carries its own offset, whatever the site's zone.
    let rfc = run(&ws, &["send", &vol1, "--at", "2099-12-06T19:00:00-05:00"]);
    assert!(rfc.status.success(), "{}", stderr(&rfc));
    assert_eq!(
        sql_i64(
            &ws,
            "SELECT scheduled_at FROM campaigns WHERE state = 'scheduled'"
        ),
        DEC_7_2099_UTC
    );

    let vol2 = issue(&ws, "vol-002.md");
    for (at, expected) in [
        ("2020-01-01 08:00", "in the past"),
        ("2020-01-01T00:00:00Z", "in the past"),
        ("next tuesday", "not a time"),
        ("2099-12-07", "not a time"),
        ("2099-02-30 08:00", "not a time"),
    ] {
        let refused = run(&ws, &["send", &vol2, "--at", at]);
        assert_eq!(refused.status.code(), Some(1), "{at}: {}", stderr(&refused));
        let message = stderr(&refused);
        assert!(message.contains(expected), "{at}: {message}");
        if expected == "not a time" {
            assert!(message.contains("Asia/Shanghai"), "{message}");
            assert!(message.contains("RFC 3339"), "{message}");
        }
    }
    // Only the one scheduled campaign of vol-001, and the cancelled one.
    assert_eq!(
        sql_i64(
            &ws,
            "SELECT COUNT(*) FROM campaigns WHERE issue_slug = 'vol-002'"
        ),
        0
    );

    // --at makes no sense beside flags of a send that runs now.
    let conflict = run(
        &ws,
        &["send", &vol2, "--at", "2099-12-07 08:00", "--dry-run"],
    );
    assert_eq!(conflict.status.code(), Some(2), "{}", stderr(&conflict));
}

#[test]
fn an_unknown_site_time_zone_is_refused_when_the_config_loads() {
    let ws = Workspace::with_examples("[site]\ntimezone = \"Asia/Atlantis\"\n");
    let vol1 = issue(&ws, "vol-001.md");
    let refused = run(&ws, &["send", &vol1, "--at", "2099-12-07 08:00"]);
    assert_eq!(refused.status.code(), Some(1));
    let message = stderr(&refused);
    assert!(message.contains("[site] timezone"), "{message}");
    assert!(message.contains("\"Asia/Atlantis\""), "{message}");
    assert!(message.contains("IANA name"), "{message}");
}

#[test]
fn a_scheduled_issue_is_refused_a_second_schedule_and_an_early_send_and_cancels_once() {
    let ws = shanghai();
    let vol1 = issue(&ws, "vol-001.md");
    assert!(run(&ws, &["send", &vol1, "--at", "2099-12-07 08:00"])
        .status
        .success());

    // Scheduling again names the way out instead of making a second one.
    let again = run(&ws, &["send", &vol1, "--at", "2099-12-08 08:00"]);
    assert_eq!(again.status.code(), Some(1));
    let message = stderr(&again);
    assert!(message.contains("already scheduled"), "{message}");
    assert!(message.contains("herald send --cancel"), "{message}");
    let force = run(
        &ws,
        &["send", &vol1, "--at", "2099-12-08 08:00", "--force-new"],
    );
    assert_eq!(force.status.code(), Some(1), "{}", stderr(&force));
    assert_eq!(sql_i64(&ws, "SELECT COUNT(*) FROM campaigns"), 1);

    // A plain send does not start it early, and warns that the file
    // changed since it was rendered.
    let path = ws.issues().join("vol-001.md");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, format!("{text}\nA late addition.\n")).unwrap();
    let early = run(&ws, &["send", &vol1]);
    assert_eq!(early.status.code(), Some(1));
    let message = stderr(&early);
    assert!(
        message.contains("is scheduled for 2099-12-07 08:00"),
        "{message}"
    );
    assert!(
        message.contains("changed since it was scheduled"),
        "{message}"
    );
    assert_eq!(sql_i64(&ws, "SELECT COUNT(*) FROM deliveries"), 0);

    // Cancelled by slug as well as by file; then there is nothing left.
    let cancelled = run(&ws, &["send", "--cancel", "vol-001"]);
    assert!(cancelled.status.success(), "{}", stderr(&cancelled));
    assert!(stdout(&cancelled).contains("nothing was sent"));
    assert_eq!(
        sql_i64(
            &ws,
            "SELECT COUNT(*) FROM campaigns WHERE state = 'cancelled' AND retired = 1"
        ),
        1
    );
    let twice = run(&ws, &["send", "--cancel", &vol1]);
    assert_eq!(twice.status.code(), Some(1));
    assert!(stderr(&twice).contains("no scheduled send to cancel"));
    let nonsense = run(&ws, &["send", "--cancel", "No Such Issue!"]);
    assert_eq!(nonsense.status.code(), Some(1));
    assert!(stderr(&nonsense).contains("neither an issue file nor a slug"));

    // After the cancel it can be scheduled again: with the new text.
    assert!(run(&ws, &["send", &vol1, "--at", "2099-12-07 09:00"])
        .status
        .success());
}

#[test]
fn a_due_scheduled_campaign_started_by_send_cannot_be_cancelled() {
    let ws = shanghai();
    let vol1 = issue(&ws, "vol-001.md");
    assert!(run(&ws, &["send", &vol1, "--at", "2099-12-07 08:00"])
        .status
        .success());
    // Its time came while nothing ran: `herald send` starts it now, with
    // what was rendered when it was scheduled.
    sql(&ws, "UPDATE campaigns SET scheduled_at = 1000");
    let sent = run(&ws, &["-q", "send", &vol1]);
    assert!(sent.status.success(), "{}", stderr(&sent));
    assert_eq!(
        sql_i64(&ws, "SELECT COUNT(*) FROM deliveries WHERE state = 'sent'"),
        12
    );
    assert_eq!(
        std::fs::read_dir(ws.path().join("outbox")).unwrap().count(),
        12
    );

    let late = run(&ws, &["send", "--cancel", &vol1]);
    assert_eq!(late.status.code(), Some(1));
    let message = stderr(&late);
    assert!(message.contains("cannot be cancelled"), "{message}");
    assert!(
        message.contains("has started (it is finished)"),
        "{message}"
    );
}

#[test]
fn status_lists_the_scheduled_campaigns_next_first() {
    let ws = shanghai();
    let nothing = run(&ws, &["status"]);
    assert_eq!(nothing.status.code(), Some(1));
    assert!(run(
        &ws,
        &[
            "send",
            &issue(&ws, "vol-002.md"),
            "--at",
            "2099-12-08 08:00"
        ]
    )
    .status
    .success());
    assert!(run(
        &ws,
        &[
            "send",
            &issue(&ws, "vol-001.md"),
            "--at",
            "2099-12-07 08:00"
        ]
    )
    .status
    .success());

    let text = run(&ws, &["status"]);
    assert!(text.status.success(), "{}", stderr(&text));
    let text = stdout(&text);
    assert!(text.starts_with("scheduled:\n"), "{text}");
    let first = text.find("vol-001").expect("vol-001 listed");
    let second = text.find("vol-002").expect("vol-002 listed");
    assert!(first < second, "next first: {text}");
    assert!(
        text.contains("2099-12-07T08:00:00+08:00 (Asia/Shanghai; 2099-12-07 00:00 UTC)"),
        "{text}"
    );

    let json = run(&ws, &["status", "--json"]);
    assert!(json.status.success(), "{}", stderr(&json));
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let scheduled = report["scheduled"].as_array().unwrap();
    assert_eq!(scheduled.len(), 2);
    assert_eq!(scheduled[0]["issue"], "vol-001");
    assert_eq!(scheduled[0]["scheduled_at"], "2099-12-07T08:00:00+08:00");
    assert_eq!(scheduled[0]["time_zone"], "Asia/Shanghai");
    assert_eq!(scheduled[1]["issue"], "vol-002");
    assert!(
        report.get("campaign").is_none(),
        "nothing started: {report}"
    );

    // One issue: its scheduled campaign, in the usual form.
    let one = run(&ws, &["status", "vol-002", "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&one.stdout).unwrap();
    assert_eq!(report["state"], "scheduled");
    assert_eq!(report["scheduled_at"], "2099-12-08T08:00:00+08:00");
    assert_eq!(report["scheduled"].as_array().unwrap().len(), 1);
}

fn spawn(config: &std::path::Path, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_herald"))
        .arg("--config")
        .arg(config)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// SIGTERM, and what the process logged; it must stop cleanly.
fn stop(child: Child) -> String {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    stderr(&output)
}

const RECIPIENTS: usize = 40;

fn late_start(backend: &Backend) {
    let server = SmtpServer::start();
    let dir = tempfile::tempdir().unwrap();
    let database = backend.database(dir.path());
    seed_subscribers(&database.location(), RECIPIENTS);
    let config = dir.path().join("herald.toml");
    std::fs::write(
        &config,
        format!(
            "{}[site]\nbase_url = \"https://news.example.com/\"\ntimezone = \"Europe/Berlin\"\n\
             [smtp]\nurl = \"{}\"\n[send]\nretry_first_delay_secs = 0\n",
            database.config(),
            server.url()
        ),
    )
    .unwrap();
    let settings = herald::config::Settings::load(&config, true).unwrap();
    let count = |sql: &str| {
        block_on(async {
            let store = Store::connect(&settings.database().unwrap()).await.unwrap();
            let n = db::scalar_i64(&store, sql).await;
            store.close().await;
            n
        })
    };
    let execute = |sql: &str| {
        block_on(async {
            let store = Store::connect(&settings.database().unwrap()).await.unwrap();
            db::execute(&store, sql).await;
            store.close().await;
        })
    };
    let herald_cli = |args: &[&str]| {
        let mut all = vec!["--config", config.to_str().unwrap()];
        all.extend_from_slice(args);
        herald(&all, dir.path())
    };

    let vol1 = repo_path("examples/issues/vol-001.md");
    let scheduled = herald_cli(&["send", vol1.to_str().unwrap(), "--at", "2099-12-07 08:00"]);
    assert!(scheduled.status.success(), "{}", stderr(&scheduled));
    // Between scheduling and the start one reader leaves and one joins:
    // the start, not the scheduling, decides who gets the issue.
    let left = herald_cli(&["subscribers", "remove", &address(0)]);
    assert!(left.status.success(), "{}", stderr(&left));
    let joined = herald_cli(&["subscribers", "add", "joined@example.com", "--confirmed"]);
    assert!(joined.status.success(), "{}", stderr(&joined));
    // The time came an hour and a half ago, while nothing ran.
    execute(&format!(
        "UPDATE campaigns SET scheduled_at = {}",
        now_millis() - 90 * 60 * 1000
    ));

    let worker = spawn(&config, &["worker"]);
    wait_until("the campaign to finish", Duration::from_secs(60), || {
        count("SELECT COUNT(*) FROM campaigns WHERE state = 'finished'") == 1
    });
    // A second worker, and the first one a while longer, find nothing more.
    let second = spawn(&config, &["worker"]);
    std::thread::sleep(Duration::from_secs(3));
    let second_log = stop(second);
    let log = stop(worker);
    assert!(
        log.contains("starts now, 1h 30m") && log.contains("late"),
        "{}: the late start is logged: {log}",
        backend.name()
    );
    assert!(!second_log.contains("starts now"), "{second_log}");

    let copies = server.copies_by_recipient();
    assert_eq!(
        copies.get(&address(0)),
        None,
        "{}: left before",
        backend.name()
    );
    assert_eq!(copies.get("joined@example.com"), Some(&1));
    for i in 1..RECIPIENTS {
        assert_eq!(copies.get(&address(i)), Some(&1), "{}", address(i));
    }
    assert_eq!(server.messages().len(), RECIPIENTS);

    // `herald serve` starts a due scheduled campaign too.
    let vol2 = repo_path("examples/issues/vol-002.md");
    let scheduled = herald_cli(&["send", vol2.to_str().unwrap(), "--at", "2099-12-07 08:00"]);
    assert!(scheduled.status.success(), "{}", stderr(&scheduled));
    execute("UPDATE campaigns SET scheduled_at = 1000 WHERE state = 'scheduled'");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let serve = spawn(
        &config,
        &["serve", "--listen", &format!("127.0.0.1:{port}")],
    );
    wait_until(
        "the served campaign to finish",
        Duration::from_secs(60),
        || count("SELECT COUNT(*) FROM campaigns WHERE state = 'finished'") == 2,
    );
    let log = stop(serve);
    assert!(log.contains("late"), "{log}");
    let copies = server.copies_by_recipient();
    for i in 1..RECIPIENTS {
        assert_eq!(copies.get(&address(i)), Some(&2), "{}", address(i));
    }
    assert_eq!(server.messages().len(), 2 * RECIPIENTS);
}

#[test]
fn a_worker_or_server_started_after_the_time_sends_the_scheduled_issue_once() {
    for_each_backend(late_start);
}

/// An example issue, read as `herald send` reads it.
fn example_issue(name: &str) -> Issue {
    let base = url::Url::parse("https://news.example.com/").unwrap();
    read_issue(&repo_path(&format!("examples/issues/{name}")), &base)
        .unwrap()
        .issue
        .expect("a valid example issue")
}

const CONTEXT: EmailContext<'static> = EmailContext {
    site_title: "Herald",
    language: "en",
};

fn request<'a>(issue: &'a Issue, templates: &'a Templates) -> CampaignRequest<'a> {
    CampaignRequest {
        issue,
        issue_hash: "hash",
        context: &CONTEXT,
        templates,
        track_clicks: None,
        force_new: false,
        message_id_domain: "example.com",
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn several_starters_start_a_scheduled_campaign_once_and_cancel_is_by_id() {
    for_each_backend_async(|backend| async move {
        let dir = tempfile::tempdir().unwrap();
        let database = backend.database(dir.path());
        let location = database.location();
        tokio::task::spawn_blocking({
            let location = location.clone();
            move || seed_subscribers(&location, 25)
        })
        .await
        .unwrap();
        let store = database.store().await;
        let templates = Templates::builtin();
        let (one, two) = (example_issue("vol-001.md"), example_issue("vol-002.md"));
        let now = now_millis();
        let Scheduling::Scheduled(first) =
            schedule(&store, &request(&one, &templates), now + 50, now)
                .await
                .unwrap()
        else {
            panic!("scheduled")
        };
        let again = schedule(&store, &request(&one, &templates), now + 50, now).await;
        assert!(matches!(again.unwrap(), Scheduling::AlreadyScheduled(_)));
        assert_eq!(scheduled_campaigns(&store).await.unwrap().len(), 1);
        // Not yet due: nothing starts.
        assert!(start_due_campaigns(&store, "example.com", now)
            .await
            .unwrap()
            .is_empty());

        // Four workers, each with its own connections, race for it.
        let mut racers = Vec::new();
        for _ in 0..4 {
            let location = location.clone();
            racers.push(tokio::spawn(async move {
                let store = Store::connect(&location).await.unwrap();
                let started = start_due_campaigns(&store, "example.com", now + 60)
                    .await
                    .unwrap();
                store.close().await;
                started.len()
            }));
        }
        let mut started = 0;
        for racer in racers {
            started += racer.await.unwrap();
        }
        assert_eq!(started, 1, "exactly one starter");
        assert_eq!(
            db::scalar_i64(&store, "SELECT COUNT(*) FROM deliveries").await,
            25
        );
        match cancel_campaign(&store, first.id, now).await.unwrap() {
            Cancellation::AlreadyStarted(c) => assert_eq!(c.state, CampaignState::Sending),
            _ => panic!("a started campaign is not cancelled"),
        }

        // The dashboard's cancel, by id: once, and then never started.
        let Scheduling::Scheduled(second) =
            schedule(&store, &request(&two, &templates), now + 50, now)
                .await
                .unwrap()
        else {
            panic!("scheduled")
        };
        assert!(matches!(
            cancel_campaign(&store, second.id, now).await.unwrap(),
            Cancellation::Cancelled(_)
        ));
        assert!(matches!(
            cancel_campaign(&store, second.id, now).await.unwrap(),
            Cancellation::AlreadyCancelled(_)
        ));
        assert!(matches!(
            cancel_campaign(&store, 9_999, now).await.unwrap(),
            Cancellation::NothingScheduled
        ));
        assert!(start_due_campaigns(&store, "example.com", now + 60)
            .await
            .unwrap()
            .is_empty());
        assert!(scheduled_campaigns(&store).await.unwrap().is_empty());
        store.close().await;
    })
    .await;
}

/// A database made before scheduling, with a sent campaign, keeps its
/// campaigns, their ids and its deliveries' references through the
/// migration that rebuilds the campaigns table, and still enforces them.
#[test]
fn the_campaigns_table_is_rebuilt_without_losing_a_row_or_a_reference() {
    block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let before = dir.path().join("migrations");
        std::fs::create_dir(&before).unwrap();
        for entry in std::fs::read_dir(repo_path("migrations/sqlite")).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_str().unwrap().to_string();
            if name.as_str() < "20261129200000" {
                std::fs::copy(&path, before.join(&name)).unwrap();
            }
        }
        let file = dir.path().join("herald.db");
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&file)
            .create_if_missing(true)
            .foreign_keys(true);
        let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
        sqlx::migrate::Migrator::new(before.as_path())
            .await
            .unwrap()
            .run(&pool)
            .await
            .unwrap();
        for statement in [
            "INSERT INTO subscribers (id, email, state, source, unsubscribe_token, created_at,
                                      state_changed_at)
             VALUES (1, 'a@example.com', 'active', 'cli', 'tok-a', 1, 1)",
            "INSERT INTO campaigns (id, issue_slug, issue_number, issue_hash, subject, html, text,
                                    state, created_at, finished_at, message_nonce)
             VALUES (7, 'vol-001', 1, 'h', 'S', '<p>', 't', 'finished', 1, 2, 'nonce')",
            "INSERT INTO deliveries (campaign_id, subscriber_id, kind, recipient, state,
                                     next_attempt_at, message_id, created_at)
             VALUES (7, 1, 'issue', 'a@example.com', 'sent', 1, '<m>', 1)",
        ] {
            sqlx::query(statement).execute(&pool).await.unwrap();
        }
        pool.close().await;

        let store = Store::open(&file).await.unwrap();
        assert_eq!(
            db::scalar_text(
                &store,
                "SELECT state || ':' || message_nonce FROM campaigns WHERE id = 7"
            )
            .await,
            "finished:nonce"
        );
        assert_eq!(
            db::scalar_i64(&store, "SELECT COUNT(*) FROM pragma_foreign_key_check").await,
            0
        );
        let pool = store.sqlite_pool().unwrap();
        let dangling = sqlx::query(
            "INSERT INTO deliveries (campaign_id, subscriber_id, kind, recipient, state,
                                     next_attempt_at, message_id, created_at)
             VALUES (8, 1, 'issue', 'a@example.com', 'queued', 1, '<n>', 1)",
        )
        .execute(pool)
        .await;
        assert!(dangling.is_err(), "the reference is still enforced");
        let bad_state = sqlx::query("UPDATE campaigns SET state = 'sideways' WHERE id = 7")
            .execute(pool)
            .await;
        assert!(bad_state.is_err(), "the state is still checked");
        sqlx::query("UPDATE campaigns SET state = 'cancelled' WHERE id = 7")
            .execute(pool)
            .await
            .unwrap();
        store.close().await;
    });
}
