//! SIGKILL `herald send` at random moments and run it again until it
//! finishes: nobody is missed, and the only duplicates are messages the
//! server had accepted but the dead process had not yet recorded.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::db::{self, TestDatabase};
use crate::helpers::repo_path;
use crate::send::{address, block_on, seed_subscribers};
use crate::smtp_server::SmtpServer;

const RECIPIENTS: usize = 5_000;
/// Short, so that a killed run's claims come back within the test.
const LEASE: Duration = Duration::from_secs(2);
/// Kills before the runs are left to finish. A kill lands 100 to 800 ms
/// into a run, and on a loaded machine a run may spend most of that
/// starting up, so killing every run could starve the send; past this
/// many kills, runs go on until they end by themselves.
const KILLS: u32 = 10;

fn sent_rows(database: &TestDatabase) -> i64 {
    block_on(async {
        let store = database.store().await;
        let n = db::scalar_i64(
            &store,
            "SELECT COUNT(*) FROM deliveries WHERE state = 'sent'",
        )
        .await;
        store.close().await;
        n
    })
}

#[test]
fn killed_sends_resume_without_missing_anyone() {
    crate::db::for_each_backend(|backend| {
        let server = SmtpServer::start();
        let dir = tempfile::tempdir().unwrap();
        let database = backend.database(dir.path());
        seed_subscribers(&database.location(), RECIPIENTS);
        let config = dir.path().join("herald.toml");
        std::fs::write(
            &config,
            format!(
                "{}[site]\nbase_url = \"https://news.example.com/\"\n\
             [smtp]\nurl = \"{}\"\n\
             [send]\nconcurrency = 4\nretry_first_delay_secs = 0\nlease_secs = {}\n",
                database.config(),
                server.url(),
                LEASE.as_secs()
            ),
        )
        .unwrap();
        let issue = repo_path("examples/issues/vol-001.md");

        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos() as u64;
        let mut random = seed;
        let mut next_delay = || {
            random = random
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            Duration::from_millis(100 + (random >> 33) % 700)
        };

        let mut kills = 0;
        let mut unrecorded_at_kills = 0i64;
        let mut finished = false;
        for _run in 0..40 {
            let mut child = Command::new(env!("CARGO_BIN_EXE_herald"))
                .args([
                    "-q",
                    "--config",
                    config.to_str().unwrap(),
                    "send",
                    issue.to_str().unwrap(),
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let deadline = (kills < KILLS).then(|| Instant::now() + next_delay());
            let status = loop {
                if let Some(status) = child.try_wait().unwrap() {
                    break Some(status);
                }
                if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                    break None;
                }
                std::thread::sleep(Duration::from_millis(10));
            };
            match status {
                Some(status) => {
                    assert!(status.success(), "herald send failed: {status}");
                    // On PostgreSQL a run that ends leaves a dead run's
                    // claims to their lease (another machine may still be
                    // sending them): once it lapses, the next run sends them.
                    if sent_rows(&database) == RECIPIENTS as i64 {
                        finished = true;
                        break;
                    }
                    std::thread::sleep(LEASE + Duration::from_millis(500));
                }
                None => {
                    child.kill().unwrap(); // SIGKILL
                    child.wait().unwrap();
                    kills += 1;
                    // Let the server finish reading what was already on the wire.
                    std::thread::sleep(Duration::from_millis(200));
                    // Recipients the server has a copy for but the dead process
                    // had not recorded: the most this kill can duplicate.
                    // Distinct recipients, so earlier kills' duplicates are not
                    // counted again.
                    let accepted = server.copies_by_recipient().len() as i64;
                    let recorded = sent_rows(&database);
                    unrecorded_at_kills += accepted - recorded.min(accepted);
                }
            }
        }
        assert!(finished, "herald send never finished (seed {seed})");
        assert!(
            kills >= 1,
            "the run must have been killed at least once (seed {seed})"
        );

        let copies = server.copies_by_recipient();
        let missed: Vec<String> = (0..RECIPIENTS)
            .map(address)
            .filter(|a| !copies.contains_key(a))
            .collect();
        assert!(
            missed.is_empty(),
            "{} recipients never got the issue (seed {seed})",
            missed.len()
        );
        let duplicates = server.messages().len() as i64 - RECIPIENTS as i64;
        assert!(
        duplicates <= unrecorded_at_kills,
        "{duplicates} duplicates but only {unrecorded_at_kills} messages were in flight at {kills} kills (seed {seed})"
    );
        assert_eq!(sent_rows(&database), RECIPIENTS as i64);
        eprintln!("{}: {kills} kills, {unrecorded_at_kills} in flight at kills, {duplicates} duplicates (seed {seed})", backend.name());
    });
}
