//! Several relays: a campaign split by weight over two real SMTP servers,
//! one of which dies (or defers everything) mid-send; its breaker takes it
//! out, the other takes its share, and everybody gets exactly one copy.

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use herald::cli::SendArgs;
use herald::commands::send::run as send_issue;
use herald::config::Settings;
use herald::doctor::Level;

use crate::db::{Backend, TestDatabase};
use crate::helpers::repo_path;
use crate::send::{address, block_on, open_store, seed_subscribers};
use crate::smtp_server::{reserve_port, start_killable, SmtpServer};

struct Setup {
    dir: tempfile::TempDir,
    config: std::path::PathBuf,
    settings: Settings,
    _db: TestDatabase,
}

/// A newsletter of `subscribers` on `backend` whose config ends with
/// `relays` (the `[[smtp.relays]]` tables); retries come due at once, so a
/// row a dead relay deferred goes out again in the same run.
fn setup(backend: &Backend, subscribers: usize, smtp: &str, relays: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let db = backend.database(dir.path());
    let config = dir.path().join("herald.toml");
    let text = format!(
        "[site]\nbase_url = \"https://news.example.com/\"\n{}\
         [smtp]\ntimeout_secs = 5\n{smtp}\n\
         [send]\nconcurrency = 4\nretry_first_delay_secs = 0\nretry_max_delay_secs = 0\n\
         failure_window = 10000\n{relays}",
        db.config()
    );
    std::fs::write(&config, text).unwrap();
    seed_subscribers(&db.location(), subscribers);
    let settings = Settings::load(&config, true).expect("the config loads");
    Setup {
        dir,
        config,
        settings,
        _db: db,
    }
}

fn relay(name: &str, url: &str, weight: u32, extra: &str) -> String {
    format!("[[smtp.relays]]\nname = \"{name}\"\nurl = \"{url}\"\nweight = {weight}\n{extra}\n")
}

fn args() -> SendArgs {
    SendArgs {
        issue: repo_path("examples/issues/vol-001.md"),
        force_new: false,
        to: None,
        dry_run: false,
        concurrency: None,
        rate: None,
        at: None,
        cancel: false,
    }
}

/// Copies per recipient, over every server.
fn copies(servers: &[&SmtpServer]) -> HashMap<String, usize> {
    let mut all = HashMap::new();
    for server in servers {
        for (to, n) in server.copies_by_recipient() {
            *all.entry(to).or_insert(0) += n;
        }
    }
    all
}

fn assert_each_received_once(servers: &[&SmtpServer], count: usize) {
    let copies = copies(servers);
    let wrong: Vec<_> = copies.iter().filter(|(_, n)| **n != 1).collect();
    assert!(
        wrong.is_empty(),
        "recipients with other than one copy: {wrong:?}"
    );
    assert_eq!(copies.len(), count, "distinct recipients");
    for i in 0..count {
        assert!(
            copies.contains_key(&address(i)),
            "{} got nothing",
            address(i)
        );
    }
}

fn sent_count(settings: &Settings) -> i64 {
    block_on(async {
        let store = open_store(settings).await;
        let sent = crate::db::scalar_i64(
            &store,
            "SELECT COUNT(*) FROM deliveries WHERE state = 'sent'",
        )
        .await;
        store.close().await;
        sent
    })
}

/// `herald status --json` of the workspace.
fn status(s: &Setup) -> serde_json::Value {
    let output = crate::helpers::herald(
        &["--config", s.config.to_str().unwrap(), "status", "--json"],
        s.dir.path(),
    );
    assert!(
        output.status.success(),
        "{}",
        crate::helpers::stderr(&output)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn with_both_relays_healthy_the_split_follows_the_weights() {
    crate::db::for_each_backend(|backend| {
        let (a, b) = (SmtpServer::start(), SmtpServer::start());
        let relays = relay("a", &a.url(), 3, "") + &relay("b", &b.url(), 1, "concurrency = 2");
        let s = setup(backend, 400, "", &relays);
        assert_eq!(
            send_issue(&s.settings, &args(), true).unwrap(),
            ExitCode::SUCCESS
        );
        assert_each_received_once(&[&a, &b], 400);
        let share = a.messages().len() as f64 / 400.0;
        assert!(
            (0.65..=0.85).contains(&share),
            "weights 3:1 sent {:.0}% through a",
            share * 100.0
        );
        assert_eq!(sent_count(&s.settings), 400);
        let status = status(&s);
        let states: Vec<(&str, &str)> = status["relays"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["relay"].as_str().unwrap(), r["state"].as_str().unwrap()))
            .collect();
        assert_eq!(states, [("a", "closed"), ("b", "closed")], "{status}");
    });
}

/// Waits (polling) until `done`, or fails after `limit`.
fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_relay_that_dies_mid_send_is_taken_out_and_everybody_gets_one_copy() {
    crate::db::for_each_backend(|backend| {
        let (a, b) = (SmtpServer::start(), SmtpServer::start());
        let front = start_killable(a.addr);
        // A bounded rate per relay, so that the send is still going when
        // a dies.
        let relays =
            relay("a", &front.url(), 1, "rate = 150") + &relay("b", &b.url(), 1, "rate = 150");
        let s = setup(backend, 300, "breaker_cooldown_secs = 600", &relays);
        let killer = {
            let received = a.received.clone();
            std::thread::spawn(move || {
                wait_until(
                    "relay a's first 40 messages",
                    Duration::from_secs(60),
                    || received.lock().unwrap().len() >= 40,
                );
                front.kill();
            })
        };
        assert_eq!(
            send_issue(&s.settings, &args(), true).unwrap(),
            ExitCode::SUCCESS
        );
        killer.join().unwrap();
        let through_a = a.messages().len();
        assert!(
            (40..150).contains(&through_a),
            "a took {through_a} before it died"
        );
        assert_each_received_once(&[&a, &b], 300);
        assert_eq!(sent_count(&s.settings), 300, "nothing lost");

        // Status, another process, shows a taken out and why.
        let status = status(&s);
        let relays = status["relays"].as_array().unwrap();
        assert_eq!(relays[0]["relay"], "a", "{status}");
        assert_eq!(relays[0]["state"], "open", "{status}");
        let reason = relays[0]["reason"].as_str().unwrap();
        assert!(reason.contains("connections in a row refused"), "{reason}");
        assert!(relays[0]["open_until"].is_string(), "{status}");
        assert_eq!(relays[1]["state"], "closed", "{status}");
        let text = crate::helpers::herald(
            &["--config", s.config.to_str().unwrap(), "status"],
            s.dir.path(),
        );
        let text = String::from_utf8_lossy(&text.stdout);
        assert!(
            text.contains("relays:") && text.contains(" open until "),
            "{text}"
        );
    });
}

#[test]
fn a_relay_that_defers_most_attempts_is_taken_out_and_its_share_goes_to_the_other() {
    crate::db::for_each_backend(|backend| {
        let (a, b) = (SmtpServer::start(), SmtpServer::start());
        a.faults.lock().unwrap().always_451 = true;
        let relays = relay("a", &a.url(), 3, "") + &relay("b", &b.url(), 1, "");
        let s = setup(backend, 200, "breaker_window = 10", &relays);
        assert_eq!(
            send_issue(&s.settings, &args(), true).unwrap(),
            ExitCode::SUCCESS
        );
        assert!(a.messages().is_empty());
        assert_each_received_once(&[&b], 200);
        assert_eq!(sent_count(&s.settings), 200);
        let status = status(&s);
        let reason = status["relays"][0]["reason"].as_str().unwrap_or_default();
        assert_eq!(status["relays"][0]["state"], "open", "{status}");
        assert!(reason.contains("attempts deferred"), "{reason}");
    });
}

#[test]
fn doctor_checks_each_relay_and_names_it() {
    let good = SmtpServer::start();
    let dead = reserve_port();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("herald.toml");
    let text = relay("good", &good.url(), 1, "")
        + &relay("dead", &format!("smtp://{dead}?tls=none"), 1, "");
    std::fs::write(&config, text).unwrap();
    let settings = Settings::load(&config, true).unwrap();
    let findings = block_on(herald::doctor::relay::checks(&settings, None));
    let level_of = |prefix: &str| {
        findings
            .iter()
            .filter(|f| f.check == "relay" && f.message.starts_with(prefix))
            .map(|f| f.level)
            .collect::<Vec<_>>()
    };
    assert_eq!(level_of("relay good: "), [Level::Ok], "{findings:#?}");
    assert_eq!(level_of("relay dead: "), [Level::Error], "{findings:#?}");
    let tls = findings
        .iter()
        .find(|f| f.check == "relay-tls")
        .expect("the good relay's TLS finding");
    assert!(tls.message.starts_with("relay good: "), "{tls:?}");
}
