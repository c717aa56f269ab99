//! `herald worker` on each backend: it sends a confirmation queued by the
//! CLI, takes over a campaign whose `herald send` was killed and finishes
//! it, and stops cleanly on SIGTERM.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::db::{self, backends, Backend};
use crate::helpers::repo_path;
use crate::send::{address, block_on, open_store, setup};
use crate::smtp_server::SmtpServer;

const RECIPIENTS: usize = 300;

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

fn worker_takes_over(backend: &Backend) {
    let server = SmtpServer::start();
    let s = setup(backend, &server.url(), RECIPIENTS);
    // A short lease: on PostgreSQL the killed sender's rows come back when
    // it lapses.
    let config = s.dir.path().join("herald.toml");
    std::fs::write(
        &config,
        format!(
            "{}[site]\nbase_url = \"https://news.example.com/\"\n\
             [smtp]\nurl = \"{}\"\n\
             [send]\nconcurrency = 2\nrate = 200\nlease_secs = 2\nretry_first_delay_secs = 0\n",
            s.db.config(),
            server.url()
        ),
    )
    .unwrap();
    let issue = repo_path("examples/issues/vol-001.md");
    let settings = herald::config::Settings::load(&config, true).unwrap();
    let count = |sql: &str| {
        block_on(async {
            let store = open_store(&settings).await;
            let n = db::scalar_i64(&store, sql).await;
            store.close().await;
            n
        })
    };

    // A send that dies after its campaign began, part-way through (the
    // rate keeps it from finishing first).
    let mut sender = spawn(&config, &["-q", "send", issue.to_str().unwrap()]);
    wait_until("the first messages", Duration::from_secs(30), || {
        server.messages().len() >= 20
    });
    sender.kill().unwrap();
    sender.wait().unwrap();
    let before = server.messages().len();
    assert!(
        before < RECIPIENTS,
        "{}: the send was killed mid-way",
        backend.name()
    );

    let mut worker = spawn(&config, &["worker"]);
    // A confirmation queued while the worker runs goes out too.
    let added = crate::helpers::herald(
        &[
            "--config",
            config.to_str().unwrap(),
            "subscribers",
            "add",
            "late@example.com",
        ],
        s.dir.path(),
    );
    assert!(added.status.success());
    wait_until("the campaign to finish", Duration::from_secs(60), || {
        count("SELECT COUNT(*) FROM campaigns WHERE state = 'finished'") == 1
    });
    wait_until("the confirmation mail", Duration::from_secs(30), || {
        server
            .messages()
            .iter()
            .any(|m| m.to.iter().any(|to| to == "late@example.com"))
    });

    let copies = server.copies_by_recipient();
    for i in 0..RECIPIENTS {
        assert!(
            copies.contains_key(&address(i)),
            "{}: {} missed",
            backend.name(),
            address(i)
        );
    }
    assert_eq!(
        count("SELECT COUNT(*) FROM deliveries WHERE state = 'sent' AND campaign_id IS NOT NULL"),
        RECIPIENTS as i64,
        "{}",
        backend.name()
    );

    // SIGTERM: the worker stops by itself, promptly and cleanly.
    let stopped_at = Instant::now();
    let status = Command::new("kill")
        .args(["-TERM", &worker.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = loop {
        if let Some(exit) = worker.try_wait().unwrap() {
            break exit;
        }
        assert!(
            stopped_at.elapsed() < Duration::from_secs(15),
            "{}: the worker ignored SIGTERM",
            backend.name()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        exit.success(),
        "{}: worker exited with {exit}",
        backend.name()
    );
}

#[test]
fn a_worker_finishes_a_killed_send_and_sends_confirmations() {
    for backend in backends() {
        worker_takes_over(&backend);
    }
}
