//! `herald subscribers ...` through the real binary and a real database.

use std::path::Path;

use crate::db::{self, Backend, TestDatabase};
use crate::helpers::{herald, stderr};

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A folder whose `herald.toml` names a database on one backend.
struct Cli {
    dir: tempfile::TempDir,
    /// Kept for the test's duration: dropping it drops a PostgreSQL
    /// database.
    db: TestDatabase,
}

impl Cli {
    fn path(&self) -> &Path {
        self.dir.path()
    }
}

fn setup(backend: &Backend) -> Cli {
    let dir = tempfile::tempdir().unwrap();
    let db = backend.database(dir.path());
    std::fs::write(
        dir.path().join("herald.toml"),
        format!(
            "{}[site]\nlanguage = \"en\"\nbase_url = \"https://news.example.com/\"\n",
            db.config()
        ),
    )
    .unwrap();
    Cli { dir, db }
}

fn run(dir: &Path, args: &[&str]) -> std::process::Output {
    herald(args, dir)
}

fn list_json(dir: &Path) -> Vec<serde_json::Value> {
    let output = run(dir, &["subscribers", "list", "--json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    serde_json::from_slice(&output.stdout).unwrap()
}

fn queued_confirmations(cli: &Cli) -> usize {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = cli.db.store().await;
        let mut tx = store.begin().await.unwrap();
        let counts = herald::store::deliveries::count_deliveries_by_state(
            &mut tx,
            herald::store::deliveries::Queue::Transactional,
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        store.close().await;
        counts.queued as usize
    })
}

#[test]
fn add_list_count_and_remove() {
    crate::db::for_each_backend(|backend| {
        let dir = setup(backend);
        let d = dir.path();
        let added = run(
            d,
            &["subscribers", "add", "Ann@Example.com", "--name", "Ann"],
        );
        assert!(added.status.success(), "{}", stderr(&added));
        assert!(stdout(&added).contains("added ann@example.com (pending)"));
        assert_eq!(queued_confirmations(&dir), 1);
        let confirmed = run(d, &["subscribers", "add", "ben@example.com", "--confirmed"]);
        assert!(stdout(&confirmed).contains("added ben@example.com (active)"));
        assert_eq!(queued_confirmations(&dir), 1, "--confirmed sends nothing");

        let list = list_json(d);
        assert_eq!(list.len(), 2);
        assert_eq!(list[0]["email"], "ann@example.com");
        assert_eq!(list[0]["name"], "Ann");
        assert_eq!(list[0]["state"], "pending");
        assert_eq!(list[0]["source"], "cli");
        assert_eq!(list[1]["state"], "active");
        let table = stdout(&run(d, &["subscribers", "list", "--state", "active"]));
        assert!(table.contains("ben@example.com") && !table.contains("ann@example.com"));

        let count = stdout(&run(d, &["subscribers", "count"]));
        assert!(
            count.contains("pending       1") && count.contains("total         2"),
            "{count}"
        );

        let removed = run(d, &["subscribers", "remove", "ben@example.com"]);
        assert!(stdout(&removed).contains("unsubscribed ben@example.com"));
        let again = run(d, &["subscribers", "remove", "ben@example.com"]);
        assert!(again.status.success());
        assert!(stdout(&again).contains("already unsubscribed"));
        let unknown = run(d, &["subscribers", "remove", "nobody@example.com"]);
        assert_eq!(unknown.status.code(), Some(1));
        assert!(stderr(&unknown).contains("not on the list"));

        let bad = run(d, &["subscribers", "add", "not-an-address"]);
        assert_eq!(bad.status.code(), Some(1));
        assert!(stderr(&bad).contains("not a valid email address"));
        let bad_state = run(d, &["subscribers", "list", "--state", "gone"]);
        assert_eq!(bad_state.status.code(), Some(2));
    });
}

#[test]
fn erase_keeps_only_a_hash_and_refuses_the_address_forever() {
    crate::db::for_each_backend(|backend| {
        let dir = setup(backend);
        let d = dir.path();
        run(
            d,
            &["subscribers", "add", "cat@example.com", "--name", "Cat"],
        );
        assert_eq!(queued_confirmations(&dir), 1);
        let erased = run(d, &["subscribers", "remove", "--erase", "cat@example.com"]);
        assert!(erased.status.success(), "{}", stderr(&erased));
        assert!(list_json(d).is_empty());
        assert_eq!(
            queued_confirmations(&dir),
            0,
            "unsent mail to them is dropped"
        );

        // Nothing in the database file names them any more.
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let store = dir.db.store().await;
            let recipients = db::texts(&store, "SELECT recipient FROM deliveries").await;
            assert_eq!(recipients, ["erased"]);
            let payloads = db::scalar_i64(
                &store,
                "SELECT COUNT(*) FROM deliveries WHERE payload IS NOT NULL",
            )
            .await;
            assert_eq!(payloads, 0);
            let events = db::scalar_i64(&store, "SELECT COUNT(*) FROM subscriber_events").await;
            let tokens = db::scalar_i64(&store, "SELECT COUNT(*) FROM confirmation_tokens").await;
            assert_eq!((events, tokens), (0, 0));
            let hashes = db::texts(&store, "SELECT email_hash FROM suppressions").await;
            assert_eq!(hashes.len(), 1);
            assert_eq!(hashes[0].len(), 64);
            store.close().await;
        });

        let again = run(d, &["subscribers", "add", "CAT@example.com"]);
        assert_eq!(again.status.code(), Some(1));
        assert!(stderr(&again).contains("erased on request"));
        std::fs::write(
            d.join("list.csv"),
            "email\ndog@example.com\ncat@example.com\n",
        )
        .unwrap();
        let import = run(d, &["subscribers", "import", "list.csv"]);
        assert_eq!(import.status.code(), Some(1));
        assert!(
            stderr(&import).contains("list.csv:3: refused"),
            "{}",
            stderr(&import)
        );
        let emails: Vec<_> = list_json(d).iter().map(|s| s["email"].clone()).collect();
        assert_eq!(emails, ["dog@example.com"]);
    });
}

#[test]
fn import_reports_bad_rows_by_line_keeps_the_good_and_reruns_change_nothing() {
    crate::db::for_each_backend(|backend| {
        let dir = setup(backend);
        let d = dir.path();
        let csv = "Name,Email,Extra\n\
               Eva,eva@example.com,x\n\
               ,not-an-address,\n\
               \"Lee, Jr.\",lee@example.com,\n\
               Bad\u{7},bad-name@example.com,\n\
               ,EVA@example.com,\n\
               ,\n\
               Fay,fay@example.com,\n";
        std::fs::write(d.join("list.csv"), csv).unwrap();
        let first = run(d, &["subscribers", "import", "list.csv"]);
        assert_eq!(first.status.code(), Some(1), "bad rows make it exit 1");
        let err = stderr(&first);
        assert!(
            err.contains("list.csv:3: error:") && err.contains("not-an-address"),
            "{err}"
        );
        assert!(
            err.contains("list.csv:5: error:") && err.contains("control character"),
            "{err}"
        );
        assert!(
            err.contains("list.csv:7: error:") && err.contains("empty"),
            "{err}"
        );
        let out = stdout(&first);
        assert!(out.contains("imported 3 (pending"), "{out}");
        assert!(out.contains("1 already on the list"), "{out}");
        assert_eq!(queued_confirmations(&dir), 3, "a confirmation each");

        let list = list_json(d);
        let emails: Vec<_> = list.iter().map(|s| s["email"].as_str().unwrap()).collect();
        assert_eq!(
            emails,
            ["eva@example.com", "lee@example.com", "fay@example.com"]
        );
        assert_eq!(list[1]["name"], "Lee, Jr.");
        assert!(list
            .iter()
            .all(|s| s["source"] == "import" && s["state"] == "pending"));

        let second = run(d, &["subscribers", "import", "list.csv"]);
        assert!(
            stdout(&second).contains("imported 0"),
            "{}",
            stdout(&second)
        );
        assert_eq!(list_json(d), list, "a rerun changes nothing");
        assert_eq!(queued_confirmations(&dir), 3, "and sends nothing");

        let missing = run(d, &["subscribers", "import", "nope.csv"]);
        assert_eq!(missing.status.code(), Some(1));
        std::fs::write(d.join("no-email.csv"), "address\na@example.com\n").unwrap();
        let no_column = run(d, &["subscribers", "import", "no-email.csv"]);
        assert_eq!(no_column.status.code(), Some(1));
        assert!(stderr(&no_column).contains("no `email` column"));
    });
}

#[test]
fn export_writes_csv_that_imports_elsewhere() {
    crate::db::for_each_backend(|backend| {
        let dir = setup(backend);
        let d = dir.path();
        run(
            d,
            &[
                "subscribers",
                "add",
                "gil@example.com",
                "--name",
                "Gil, \"G\"",
                "--confirmed",
            ],
        );
        run(d, &["subscribers", "add", "hal@example.com"]);
        let export = run(d, &["subscribers", "export", "--state", "active"]);
        assert!(export.status.success(), "{}", stderr(&export));
        let csv = stdout(&export);
        let mut reader = csv::Reader::from_reader(csv.as_bytes());
        assert_eq!(&reader.headers().unwrap()[0], "email");
        let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        assert_eq!(rows.len(), 1);
        assert_eq!(&rows[0][0], "gil@example.com");
        assert_eq!(&rows[0][1], "Gil, \"G\"");

        let other = setup(backend);
        std::fs::write(other.path().join("in.csv"), &csv).unwrap();
        let import = run(
            other.path(),
            &["subscribers", "import", "in.csv", "--confirmed"],
        );
        assert!(import.status.success(), "{}", stderr(&import));
        let list = list_json(other.path());
        assert_eq!(list.len(), 1);
        assert_eq!(list[0]["name"], "Gil, \"G\"");
        assert_eq!(list[0]["state"], "active");
    });
}

#[test]
fn an_export_neutralises_formulas_and_imports_as_it_was() {
    crate::db::for_each_backend(|backend| {
        let dir = setup(backend);
        let d = dir.path();
        let formula = "=HYPERLINK(\"https://evil.example/\",\"click\")";
        let added = run(
            d,
            &[
                "subscribers",
                "add",
                "--name",
                formula,
                "--confirmed",
                "--",
                "-x@example.com",
            ],
        );
        assert!(added.status.success(), "{}", stderr(&added));
        let export = run(d, &["subscribers", "export"]);
        assert!(export.status.success(), "{}", stderr(&export));
        let csv = stdout(&export);
        let mut reader = csv::Reader::from_reader(csv.as_bytes());
        let row = reader.records().next().unwrap().unwrap();
        assert_eq!(&row[0], "'-x@example.com", "{csv}");
        assert_eq!(&row[1], format!("'{formula}"), "{csv}");

        let other = setup(backend);
        std::fs::write(other.path().join("list.csv"), &csv).unwrap();
        let imported = run(
            other.path(),
            &["subscribers", "import", "list.csv", "--confirmed"],
        );
        assert!(imported.status.success(), "{}", stderr(&imported));
        let list = list_json(other.path());
        assert_eq!(list[0]["email"], "-x@example.com");
        assert_eq!(list[0]["name"], formula);
    });
}

#[test]
fn addresses_and_names_that_hide_or_reorder_text_are_refused() {
    crate::db::for_each_backend(|backend| {
        let dir = setup(backend);
        let d = dir.path();
        for address in [
            "zw@exa\u{200b}mple.com",
            "rtl\u{202e}@example.com",
            "lost\u{fffd}@example.com",
        ] {
            let output = run(d, &["subscribers", "add", address]);
            assert_eq!(output.status.code(), Some(1), "{address:?} was accepted");
        }
        let output = run(
            d,
            &[
                "subscribers",
                "add",
                "a@example.com",
                "--name",
                "evil\u{202e}txt.exe",
            ],
        );
        assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
        let output = run(d, &["subscribers", "add", "user@例子.中国", "--confirmed"]);
        assert!(output.status.success(), "{}", stderr(&output));
        assert_eq!(list_json(d)[0]["email"], "user@xn--fsqu00a.xn--fiqs8s");
    });
}

#[test]
fn a_megabyte_field_in_an_import_is_quoted_briefly() {
    // Input handling, before any database work: SQLite is enough.
    let dir = setup(&Backend::Sqlite);
    let d = dir.path();
    let long_address = format!("{}@example.com", "x".repeat(1_000_000));
    let long_name = "名".repeat(400_000);
    let csv =
        format!("email,name\n{long_address},Ann\nbo@example.com,{long_name}\ncy@example.com,Cy\n");
    std::fs::write(d.join("big.csv"), csv).unwrap();
    let output = run(d, &["subscribers", "import", "big.csv"]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let err = stderr(&output);
    assert!(
        err.contains("big.csv:2: error:"),
        "{}",
        &err[..err.len().min(500)]
    );
    assert!(
        err.contains("big.csv:3: error:"),
        "{}",
        &err[..err.len().min(500)]
    );
    assert!(err.len() < 2_000, "{} bytes on stderr", err.len());
    assert_eq!(list_json(d).len(), 1, "the good row is imported");
}

#[test]
fn a_name_that_reorders_text_is_escaped_when_listed() {
    // A stored name is put back by hand, as an old database may hold one:
    // SQLite only.
    let dir = setup(&Backend::Sqlite);
    let d = dir.path();
    let output = run(
        d,
        &["subscribers", "add", "eve@example.com", "--name", "Eve"],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    // Names with these are refused now; a database from before may hold one.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = herald::store::Store::open(&d.join("herald.db"))
            .await
            .unwrap();
        sqlx::query("UPDATE subscribers SET name = ? WHERE email = 'eve@example.com'")
            .bind("evil\u{202e}exe.txt\u{2028}next")
            .execute(store.sqlite_pool().expect("a SQLite store"))
            .await
            .unwrap();
        store.close().await;
    });
    let output = run(d, &["subscribers", "list"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let out = stdout(&output);
    assert!(
        !out.contains('\u{202e}') && !out.contains('\u{2028}'),
        "printed raw: {out:?}"
    );
    assert!(out.contains("evil\\u{202e}exe.txt\\u{2028}next"), "{out}");
}
