//! The counters the dashboard and /metrics read (delivery_counts,
//! subscriber_counts, subscriber_event_weeks, metric_totals) stay equal to
//! a real GROUP BY of the rows they count, through everything that changes
//! those rows: import, add, send with retries and failures, a pause and a
//! resume, skips, bounce reports, unsubscribes, erasure, and `herald db
//! copy`. On both backends (SQLite row triggers, PostgreSQL statement
//! triggers).

use std::path::Path;

use herald::store::{Location, Store};

use crate::db::{self, Backend};
use crate::helpers::{herald, repo_path, stderr};
use crate::smtp_server::SmtpServer;

/// `(real, counted)` pairs of sorted lines `key=count`, one pair per
/// counter table; zero counters are left out (a counter may stay at 0
/// after its rows are gone).
const COMPARISONS: [(&str, &str, &str); 3] = [
    (
        "delivery_counts",
        "SELECT CAST(COALESCE(campaign_id, 0) AS TEXT) || '/' || kind || '/' || state || '=' || CAST(COUNT(*) AS TEXT)
         FROM deliveries GROUP BY COALESCE(campaign_id, 0), kind, state",
        "SELECT CAST(campaign_key AS TEXT) || '/' || kind || '/' || state || '=' || CAST(n AS TEXT)
         FROM delivery_counts WHERE n <> 0",
    ),
    (
        "subscriber_counts",
        "SELECT state || '/' || source || '=' || CAST(COUNT(*) AS TEXT)
         FROM subscribers GROUP BY state, source",
        "SELECT state || '/' || source || '=' || CAST(n AS TEXT) FROM subscriber_counts WHERE n <> 0",
    ),
    (
        "subscriber_event_weeks",
        "SELECT CAST((at - 345600000) / 604800000 * 604800000 + 345600000 AS TEXT) || '/' || state
             || '=' || CAST(COUNT(*) AS TEXT)
         FROM subscriber_events GROUP BY (at - 345600000) / 604800000, state",
        "SELECT CAST(week_start AS TEXT) || '/' || state || '=' || CAST(n AS TEXT)
         FROM subscriber_event_weeks WHERE n <> 0",
    ),
];

async fn sorted(store: &Store, sql: &str) -> Vec<String> {
    let mut lines = db::texts(store, sql).await;
    lines.sort();
    lines
}

/// Every counter table equals the GROUP BY it stands for; `after` names
/// the step, for the failure message.
pub async fn assert_counters_exact(store: &Store, after: &str) {
    for (table, real, counted) in COMPARISONS {
        let real = sorted(store, real).await;
        let counted = sorted(store, counted).await;
        assert_eq!(counted, real, "{table} after {after}");
    }
}

async fn total(store: &Store, name: &str) -> i64 {
    db::scalar_i64(
        store,
        &format!("SELECT COALESCE(MAX(n), 0) FROM metric_totals WHERE name = '{name}'"),
    )
    .await
}

fn run(dir: &Path, args: &[&str]) {
    let output = herald(args, dir);
    assert!(
        output.status.success(),
        "herald {args:?}: {}",
        stderr(&output)
    );
}

fn check(location: &Location, after: &str) {
    block_on(async {
        let store = Store::connect(location).await.unwrap();
        assert_counters_exact(&store, after).await;
        store.close().await;
    });
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

fn reader(i: usize) -> String {
    format!("reader{i}@example.com")
}

const READERS: usize = 20;

/// A list with every kind of history, made through the real commands,
/// with the counters checked after each step.
fn make_history(dir: &Path, server: &SmtpServer, database_url: &str, location: &Location) {
    std::fs::create_dir(dir.join("issues")).unwrap();
    for issue in ["vol-001.md", "vol-002.md"] {
        std::fs::copy(
            repo_path(&format!("examples/issues/{issue}")),
            dir.join("issues").join(issue),
        )
        .unwrap();
    }
    let configure = |failure_window: usize| {
        let config = format!(
            "[site]\nbase_url = \"https://news.example.com/\"\n\
             [smtp]\nurl = \"{}\"\ntimeout_secs = 5\n\
             [send]\nconcurrency = 2\nretry_first_delay_secs = 1\nretry_max_delay_secs = 1\n\
             failure_window = {failure_window}\nfailure_threshold = 0.5\n\
             [bounces]\nreturn_path = \"bounces@example.com\"\n\
             [database]\nurl = {database_url:?}\n",
            server.url()
        );
        std::fs::write(dir.join("herald.toml"), config).unwrap();
    };
    configure(10_000);

    let csv: String = std::iter::once("email\n".to_string())
        .chain((0..READERS).map(|i| format!("{}\n", reader(i))))
        .collect();
    std::fs::write(dir.join("list.csv"), csv).unwrap();
    run(dir, &["subscribers", "import", "list.csv", "--confirmed"]);
    check(location, "import");
    run(dir, &["subscribers", "add", "pending@example.com"]);
    check(location, "add (pending, a confirmation queued)");

    // Retries and a permanent failure, which bounces its subscriber.
    {
        let mut faults = server.faults.lock().unwrap();
        faults.rcpt_451_rate = 0.2;
        faults.no_such_user = [reader(3)].into_iter().collect();
    }
    run(dir, &["send", "issues/vol-001.md"]);
    check(location, "a send with retries and a failure");

    // A relay that defers everybody: with a failure window of 5 at
    // threshold 0.5 the campaign pauses, rows deferred and queued; one of
    // their readers leaves; the resumed run skips that copy.
    configure(5);
    {
        let mut faults = server.faults.lock().unwrap();
        faults.rcpt_451_rate = 0.0;
        faults.no_such_user.clear();
        faults.always_451 = true;
    }
    let paused = herald(&["send", "issues/vol-002.md"], dir);
    assert!(
        !paused.status.success() || String::from_utf8_lossy(&paused.stdout).contains("pause"),
        "the campaign pauses: {}",
        stderr(&paused)
    );
    check(location, "a send that paused");
    run(dir, &["subscribers", "remove", &reader(7)]);
    check(location, "an unsubscribe");
    server.faults.lock().unwrap().always_451 = false;
    std::thread::sleep(std::time::Duration::from_millis(1_100));
    run(dir, &["send", "issues/vol-002.md"]);
    check(location, "the resumed send (a departed reader skipped)");

    // A hard bounce reported afterwards changes a delivery and a subscriber.
    let dsn = format!(
        "From: MAILER-DAEMON@mx.example.com\nTo: bounces@example.com\n\
        Subject: Undelivered\nContent-Type: multipart/report; report-type=delivery-status; boundary=b\n\n\
        --b\nContent-Type: text/plain\n\nfailed\n--b\nContent-Type: message/delivery-status\n\n\
        Reporting-MTA: dns; mx.example.com\n\nFinal-Recipient: rfc822; {}\n\
        Action: failed\nStatus: 5.1.1\nDiagnostic-Code: smtp; 550 5.1.1 no such user\n--b--\n",
        reader(0)
    );
    std::fs::write(dir.join("dsn.eml"), dsn).unwrap();
    run(dir, &["bounces", "import", "dsn.eml"]);
    check(location, "a bounce report");

    run(dir, &["subscribers", "remove", "--erase", &reader(1)]);
    check(location, "an erase");
}

#[test]
fn counters_equal_a_group_by_after_every_kind_of_change() {
    crate::db::for_each_backend(|backend| {
        let dir = tempfile::tempdir().unwrap();
        let database = backend.database(dir.path());
        let location = database.location();
        let server = SmtpServer::start();
        make_history(dir.path(), &server, &database.url, &location);

        block_on(async {
            let store = Store::connect(&location).await.unwrap();
            // The totals /metrics reports: every address ever added, one
            // reply per attempt (by class), the reported hard bounce.
            let added = READERS as i64 + 1;
            assert_eq!(total(&store, "signups").await, added);
            let sent = db::scalar_i64(
                &store,
                "SELECT COUNT(*) FROM deliveries WHERE state = 'sent'",
            )
            .await;
            assert_eq!(total(&store, "replies_2xx").await, sent);
            assert_eq!(
                total(&store, "replies_5xx").await,
                1,
                "the one unknown user"
            );
            let attempts = db::scalar_i64(
                &store,
                "SELECT CAST(COALESCE(SUM(attempts), 0) AS BIGINT) FROM deliveries",
            )
            .await;
            let replies = total(&store, "replies_2xx").await
                + total(&store, "replies_4xx").await
                + total(&store, "replies_5xx").await;
            assert_eq!(replies, attempts, "one reply per attempt");
            assert!(
                total(&store, "replies_4xx").await > 0,
                "some attempts deferred"
            );
            assert_eq!(total(&store, "bounces_hard").await, 1);
            let skipped = db::scalar_i64(
                &store,
                "SELECT COUNT(*) FROM deliveries WHERE state = 'skipped'",
            )
            .await;
            assert!(skipped >= 1, "the departed reader's copy was skipped");
            store.close().await;
        });

        // The same history copied into PostgreSQL: the destination's
        // triggers count the copied rows once, as a GROUP BY there would.
        if let (Backend::Sqlite, Some(postgres)) = (backend, db::postgres_only()) {
            let target = postgres.database(dir.path());
            run(dir.path(), &["db", "copy", "--to", &target.url]);
            check(&target.location(), "db copy");
        }
    });
}
