//! A database whose rows do not decode (corrupted, or edited by hand): the
//! commands fail with an error naming the column, never a panic, and leave
//! nothing half done.
//!
//! SQLite only: the damage is done with what SQLite alone allows (a BLOB in
//! a TEXT column, `PRAGMA ignore_check_constraints`); PostgreSQL refuses it
//! at write time, so there is nothing to read back.

use herald::store::campaigns::{self, NewCampaign};
use herald::store::{now_millis, Location, Store};

use crate::helpers::{herald, repo_path, stderr};
use crate::send::{block_on, seed_subscribers};

/// A newsletter whose live campaign for vol-001 has `recipients` queued
/// rows, written to a file outbox. Returns the folder and the config.
fn campaign_in_progress(recipients: usize) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("herald.db");
    seed_subscribers(&Location::Sqlite(database.clone()), recipients);
    let config = dir.path().join("herald.toml");
    std::fs::write(
        &config,
        "[site]\nbase_url = \"https://news.example.com/\"\n\
         [database]\nurl = \"sqlite://herald.db\"\n\
         [smtp]\nurl = \"file://outbox\"\n",
    )
    .unwrap();
    // The campaign as `herald send` would have begun it, so the run below
    // resumes it (with the content stored here) instead of starting one.
    block_on(async {
        let store = Store::open(&database).await.unwrap();
        let mut tx = store.begin().await.unwrap();
        let new = NewCampaign {
            issue_slug: "vol-001",
            issue_number: 1,
            issue_hash: "not the file's hash",
            subject: "Vol. 1",
            html: "<p>Hello</p>",
            text: "Hello",
            message_nonce: "corruptnonce",
            scheduled_at: None,
        };
        let id = campaigns::insert_campaign(&mut tx, &new, now_millis())
            .await
            .unwrap();
        campaigns::snapshot_recipients(&mut tx, id, "corruptnonce", "example.com", now_millis())
            .await
            .unwrap();
        tx.commit().await.unwrap();
        store.close().await;
    });
    (dir, config)
}

fn run_sql(database: &std::path::Path, sql: &str) {
    block_on(async {
        let store = Store::open(database).await.unwrap();
        sqlx::query(sql)
            .execute(store.sqlite_pool().unwrap())
            .await
            .unwrap();
        store.close().await;
    })
}

fn delivery_states(database: &std::path::Path) -> Vec<(i64, String)> {
    block_on(async {
        let store = Store::open(database).await.unwrap();
        let rows = sqlx::query_as("SELECT id, state FROM deliveries ORDER BY id")
            .fetch_all(store.sqlite_pool().unwrap())
            .await
            .unwrap();
        store.close().await;
        rows
    })
}

#[test]
fn send_with_an_undecodable_recipient_fails_cleanly() {
    let (dir, config) = campaign_in_progress(3);
    let database = dir.path().join("herald.db");
    // Not UTF-8, stored as a BLOB in a TEXT column: SQLite allows it.
    run_sql(
        &database,
        "UPDATE deliveries SET recipient = x'ff00fe' WHERE id = (SELECT MIN(id) FROM deliveries)",
    );
    let bad_message_id: String = block_on(async {
        let store = Store::open(&database).await.unwrap();
        let id = sqlx::query_scalar("SELECT message_id FROM deliveries ORDER BY id LIMIT 1")
            .fetch_one(store.sqlite_pool().unwrap())
            .await
            .unwrap();
        store.close().await;
        id
    });

    let issue = repo_path("examples/issues/vol-001.md");
    let output = herald(
        &[
            "-q",
            "--config",
            config.to_str().unwrap(),
            "send",
            issue.to_str().unwrap(),
        ],
        dir.path(),
    );
    let err = stderr(&output);
    assert_ne!(output.status.code(), Some(101), "panicked: {err}");
    assert_eq!(output.status.code(), Some(3), "an internal fault: {err}");
    assert!(err.contains("recipient"), "names the column: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(
        err.matches("mismatched types").count(),
        1,
        "said once: {err}"
    );

    let states = delivery_states(&database);
    assert!(
        states.iter().all(|(_, state)| state != "sending"),
        "no row left claimed: {states:?}"
    );
    assert_eq!(states[0].1, "queued", "the bad row is untouched");
    // Nothing went out for the bad row: no copy in the outbox names it.
    let outbox = dir.path().join("outbox");
    if outbox.exists() {
        for entry in std::fs::read_dir(&outbox).unwrap() {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            assert!(
                !String::from_utf8_lossy(&bytes).contains(&bad_message_id),
                "a copy was written for the bad row"
            );
        }
    }
}

#[test]
fn status_with_an_unknown_campaign_or_delivery_state_is_an_error_not_a_guess() {
    for table in ["campaigns", "deliveries"] {
        let (dir, config) = campaign_in_progress(1);
        let database = dir.path().join("herald.db");
        // The CHECK constraint forbids this; a hand-edited database may not
        // have it. Guessing `sending` would let `herald send` mail it again,
        // and a count under an unknown name would hide rows from `send`.
        block_on(async {
            let store = Store::open(&database).await.unwrap();
            let mut conn = store.sqlite_pool().unwrap().acquire().await.unwrap();
            sqlx::query("PRAGMA ignore_check_constraints = ON")
                .execute(&mut *conn)
                .await
                .unwrap();
            sqlx::query(&format!("UPDATE {table} SET state = 'exploded'"))
                .execute(&mut *conn)
                .await
                .unwrap();
            drop(conn);
            store.close().await;
        });
        let output = herald(
            &["--config", config.to_str().unwrap(), "status", "--json"],
            dir.path(),
        );
        let err = stderr(&output);
        assert_eq!(output.status.code(), Some(3), "{table}: {err}");
        assert!(
            err.contains("state") && err.contains("exploded"),
            "{table}: names the column and the value: {err}"
        );
    }
}
