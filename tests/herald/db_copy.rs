//! `herald db copy`: a SQLite list with history moves into PostgreSQL
//! whole, verified, and keeps working there. Behind HERALD_TEST_POSTGRES.

use std::path::Path;

use herald::store::{Location, Store};

use crate::db::{self, postgres_only};
use crate::helpers::{herald, repo_path, stderr};

fn run(dir: &Path, args: &[&str]) -> String {
    let output = herald(args, dir);
    assert!(
        output.status.success(),
        "herald {args:?}: {}",
        stderr(&output)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn outbox_has(dir: &Path, text: &str) -> bool {
    std::fs::read_dir(dir.join("outbox"))
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .any(|e| std::fs::read_to_string(e.path()).is_ok_and(|m| m.contains(text)))
        })
        .unwrap_or(false)
}

async fn count(location: &Location, table: &str) -> i64 {
    let store = Store::connect(location).await.unwrap();
    let n = db::scalar_i64(&store, &format!("SELECT COUNT(*) FROM {table}")).await;
    store.close().await;
    n
}

#[test]
fn a_sqlite_list_moves_to_postgres_whole() {
    let Some(postgres) = postgres_only() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let target = postgres.database(dir.path());
    std::fs::create_dir(dir.path().join("issues")).unwrap();
    std::fs::copy(
        repo_path("examples/issues/vol-001.md"),
        dir.path().join("issues/vol-001.md"),
    )
    .unwrap();
    let sqlite_config = "[site]\nbase_url = \"https://news.example.com/\"\n\
         [smtp]\nurl = \"file://outbox\"\n\
         [bounces]\nreturn_path = \"bounces@example.com\"\n\
         [tracking]\nclicks = true\n";
    std::fs::write(dir.path().join("herald.toml"), sqlite_config).unwrap();
    // History in every kind of table: pending (with a token), active,
    // unsubscribed, a campaign with deliveries, a bounce report.
    run(dir.path(), &["subscribers", "add", "pending@example.com"]);
    for i in 0..5 {
        run(
            dir.path(),
            &[
                "subscribers",
                "add",
                "--confirmed",
                &format!("reader{i}@example.com"),
            ],
        );
    }
    run(
        dir.path(),
        &["subscribers", "remove", "reader4@example.com"],
    );
    run(dir.path(), &["send", "issues/vol-001.md"]);
    assert!(
        outbox_has(dir.path(), "To: reader0@example.com"),
        "reader0's copy is in the outbox"
    );
    // The confirmation (and its token) is made when a worker sends it.
    let mut worker = std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .arg("--config")
        .arg(dir.path().join("herald.toml"))
        .arg("worker")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !outbox_has(dir.path(), "To: pending@example.com") {
        assert!(std::time::Instant::now() < deadline, "no confirmation mail");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    worker.kill().unwrap();
    worker.wait().unwrap();
    let dsn = "From: MAILER-DAEMON@mx.example.com\nTo: bounces@example.com\n\
        Subject: Undelivered\nContent-Type: multipart/report; report-type=delivery-status; boundary=b\n\n\
        --b\nContent-Type: text/plain\n\nfailed\n--b\nContent-Type: message/delivery-status\n\n\
        Reporting-MTA: dns; mx.example.com\n\nFinal-Recipient: rfc822; reader0@example.com\n\
        Action: failed\nStatus: 5.1.1\nDiagnostic-Code: smtp; 550 5.1.1 no such user\n--b--\n";
    let dsn_file = dir.path().join("dsn.eml");
    std::fs::write(&dsn_file, dsn).unwrap();
    run(
        dir.path(),
        &["bounces", "import", dsn_file.to_str().unwrap()],
    );

    let settings = herald::config::Settings::load(&dir.path().join("herald.toml"), true).unwrap();
    let sqlite = settings.database().unwrap();
    let destination = settings.database_at(&target.url).unwrap();
    let out = run(dir.path(), &["db", "copy", "--to", &target.url]);
    let tables = [
        "subscribers",
        "subscriber_events",
        "confirmation_tokens",
        "campaigns",
        "campaign_links",
        "deliveries",
        "secrets",
        "bounce_reports",
        "bounce_recipients",
    ];
    let runtime = tokio::runtime::Runtime::new().unwrap();
    for table in tables {
        let (from, to) = runtime.block_on(async {
            (
                count(&sqlite, table).await,
                count(&destination, table).await,
            )
        });
        assert!(from > 0, "{table}: the SQLite list has rows to copy");
        assert_eq!(from, to, "{table} copied whole");
        assert!(out.contains(table), "{table} reported: {out}");
    }

    // A second copy into the same database refuses and changes nothing.
    let again = herald(&["db", "copy", "--to", &target.url], dir.path());
    assert_eq!(again.status.code(), Some(1));
    assert!(stderr(&again).contains("not empty"), "{}", stderr(&again));

    // The list works from PostgreSQL: the bounced reader stays bounced, the
    // confirmation link still confirms, and new rows get new ids.
    std::fs::write(
        dir.path().join("herald.toml"),
        format!("{sqlite_config}{}", target.config()),
    )
    .unwrap();
    let list = run(dir.path(), &["subscribers", "list"]);
    assert!(
        list.lines()
            .any(|l| l.starts_with("reader0@example.com") && l.contains("bounced")),
        "{list}"
    );
    run(
        dir.path(),
        &["subscribers", "add", "--confirmed", "new@example.com"],
    );
    let status = run(dir.path(), &["status"]);
    assert!(status.contains("sent      4"), "{status}");
}
