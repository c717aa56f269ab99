//! Three `herald send` processes on one PostgreSQL database work one
//! campaign together while they are SIGKILLed at random moments (and
//! restarted), and while PostgreSQL itself restarts once: nobody is missed,
//! and the only duplicates are messages a killed worker had claimed but not
//! recorded.
//!
//! A test binary of its own: restarting the server would break the
//! PostgreSQL tests of the main suite, and cargo runs test binaries one
//! after another. Behind `HERALD_TEST_POSTGRES`, like every PostgreSQL test;
//! it also needs to restart the server (`pg_ctlcluster`, as root).

#[allow(dead_code)]
#[path = "herald/db.rs"]
mod db;
#[allow(dead_code)]
#[path = "herald/smtp_server.rs"]
mod smtp_server;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use herald::domain::SubscriberEmail;
use herald::store::subscribers::{self, Source, SubscriberState};
use herald::store::{now_millis, Location, Store};

use db::{postgres_only, TestDatabase};
use smtp_server::SmtpServer;

const RECIPIENTS: usize = 5_000;
const WORKERS: usize = 3;

fn address(i: usize) -> String {
    format!("reader{i:05}@example.com")
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

fn location(database: &TestDatabase) -> Location {
    Location::Postgres {
        url: database.url.clone(),
        password: None,
    }
}

fn seed(database: &TestDatabase) {
    block_on(async {
        let store = Store::connect(&location(database)).await.unwrap();
        let emails: Vec<SubscriberEmail> = (0..RECIPIENTS)
            .map(|i| SubscriberEmail::parse(&address(i)).unwrap())
            .collect();
        let tokens: Vec<String> = (0..RECIPIENTS)
            .map(|i| format!("token{i:05}abcdefghijklmnop"))
            .collect();
        let rows: Vec<(&SubscriberEmail, Option<&str>, &str)> = emails
            .iter()
            .zip(&tokens)
            .map(|(email, token)| (email, None, token.as_str()))
            .collect();
        let mut tx = store.begin().await.unwrap();
        subscribers::insert_subscribers(
            &mut tx,
            &rows,
            SubscriberState::Active,
            Source::Cli,
            now_millis(),
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        store.close().await;
    })
}

/// Runs SQL against the test database from a fresh connection: the store's
/// pool would not survive the server restart in between.
fn count(database: &TestDatabase, sql: &str) -> i64 {
    block_on(async {
        let store = Store::connect(&location(database)).await.unwrap();
        let n = db::scalar_i64(&store, sql).await;
        store.close().await;
        n
    })
}

fn start_worker(config: &Path, issue: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["-q", "--config"])
        .arg(config)
        .arg("send")
        .arg(issue)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Restarts the local PostgreSQL cluster; returns once it accepts
/// connections again.
fn restart_postgres() {
    let versions: Vec<String> = std::fs::read_dir("/etc/postgresql")
        .expect("a Debian PostgreSQL cluster under /etc/postgresql")
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .collect();
    let version = versions.first().expect("one PostgreSQL version");
    let status = Command::new("pg_ctlcluster")
        .args(["--skip-systemctl-redirect", version, "main", "restart"])
        .status()
        .expect("pg_ctlcluster runs");
    assert!(status.success(), "restarting PostgreSQL failed: {status}");
}

struct Random(u64);

impl Random {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

#[test]
fn three_workers_survive_kills_and_a_database_restart() {
    let Some(backend) = postgres_only() else {
        return;
    };
    let server = SmtpServer::start();
    let dir = tempfile::tempdir().unwrap();
    let database = backend.database(dir.path());
    seed(&database);
    let config = dir.path().join("herald.toml");
    std::fs::write(
        &config,
        format!(
            "{}[site]\nbase_url = \"https://news.example.com/\"\n\
             [smtp]\nurl = \"{}\"\n\
             [send]\nconcurrency = 4\nrate = 400\nretry_first_delay_secs = 0\nlease_secs = 3\n",
            database.config(),
            server.url()
        ),
    )
    .unwrap();
    let issue: PathBuf = [env!("CARGO_MANIFEST_DIR"), "examples/issues/vol-001.md"]
        .iter()
        .collect();

    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    let mut random = Random(seed);
    let mut workers: Vec<Child> = (0..WORKERS)
        .map(|_| start_worker(&config, &issue))
        .collect();
    let mut kills = 0;
    let mut restarted = false;
    // What the killed workers held when they died: the most that can go
    // out twice.
    let mut held_at_kills = 0i64;
    let deadline = Instant::now() + Duration::from_secs(300);
    let finished = loop {
        assert!(
            Instant::now() < deadline,
            "the campaign never finished (seed {seed})"
        );
        std::thread::sleep(Duration::from_millis(200 + random.below(400)));
        // A finished worker is replaced while the campaign is not done: it
        // may have found nothing claimable while others held the rest.
        for worker in &mut workers {
            if let Some(status) = worker.try_wait().unwrap() {
                assert!(
                    status.success(),
                    "a herald send failed: {status} (seed {seed})"
                );
                *worker = start_worker(&config, &issue);
            }
        }
        let sent = count(
            &database,
            "SELECT COUNT(*) FROM deliveries WHERE state = 'sent'",
        );
        let campaigns_finished = count(
            &database,
            "SELECT COUNT(*) FROM campaigns WHERE state = 'finished'",
        );
        if campaigns_finished == 1 {
            // Counted again: `sent` was read before the campaign finished.
            break count(
                &database,
                "SELECT COUNT(*) FROM deliveries WHERE state = 'sent'",
            );
        }
        // A kill first, then the restart once a third is sent, then more
        // kills while the campaign lasts.
        if kills > 0 && !restarted && sent > RECIPIENTS as i64 / 3 {
            restart_postgres();
            restarted = true;
            continue;
        }
        if kills < 8 {
            let victim = random.below(WORKERS as u64) as usize;
            let pid = workers[victim].id();
            workers[victim].kill().unwrap(); // SIGKILL
            workers[victim].wait().unwrap();
            kills += 1;
            // A commit the dead process had sent settles first.
            std::thread::sleep(Duration::from_millis(200));
            held_at_kills += count(
                &database,
                &format!(
                    "SELECT COUNT(*) FROM deliveries \
                     WHERE state = 'sending' AND claimed_by LIKE '%:{pid}:%'"
                ),
            );
            workers[victim] = start_worker(&config, &issue);
        }
    };
    for mut worker in workers {
        // The rest exit by themselves once nothing is left; none may fail.
        let status = worker.wait().unwrap();
        assert!(
            status.success(),
            "a herald send failed: {status} (seed {seed})"
        );
    }
    assert!(
        restarted,
        "PostgreSQL was never restarted mid-send (seed {seed})"
    );
    assert!(kills >= 1, "no worker was killed (seed {seed})");
    assert_eq!(finished, RECIPIENTS as i64, "rows sent (seed {seed})");
    assert_eq!(
        count(&database, "SELECT COUNT(*) FROM campaigns"),
        1,
        "the workers joined one campaign (seed {seed})"
    );

    let copies = server.copies_by_recipient();
    let missed = (0..RECIPIENTS)
        .map(address)
        .filter(|a| !copies.contains_key(a))
        .count();
    assert_eq!(missed, 0, "recipients never mailed (seed {seed})");
    let duplicates = server.messages().len() as i64 - RECIPIENTS as i64;
    assert!(
        duplicates <= held_at_kills,
        "{duplicates} duplicates, but the killed workers held only {held_at_kills} rows \
         at {kills} kills (seed {seed})"
    );
    eprintln!(
        "{kills} kills holding {held_at_kills} rows, one PostgreSQL restart, \
         {duplicates} duplicates (seed {seed})"
    );
}
