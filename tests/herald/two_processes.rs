//! Two processes on one database: `herald serve` making confirmation mail
//! (a transaction that reads, then writes) while `herald send` writes its
//! campaign as fast as it can. No confirmation may be deferred for "database
//! is locked": every transaction that may write takes the lock up front.
//! On PostgreSQL, which locks rows, the same load must not defer any either.

use std::time::{Duration, Instant};

use crate::db;
use crate::helpers::{herald, start_serve, stderr, Workspace};

#[test]
fn confirmations_made_while_a_send_runs_are_never_deferred_for_a_lock() {
    crate::db::for_each_backend(|backend| {
        let ws = Workspace::with_examples(
            "[server]\nsubscribe_per_ip_per_minute = 0\nsubscribe_per_address_per_hour = 0\n",
        );
        let database = backend.database(ws.path());
        let mut config = std::fs::read_to_string(ws.config()).unwrap();
        config.push_str(&database.config());
        std::fs::write(ws.config(), config).unwrap();
        let mut csv = String::from("email\n");
        for i in 0..3_000 {
            csv.push_str(&format!("reader{i}@example.com\n"));
        }
        std::fs::write(ws.path().join("list.csv"), csv).unwrap();
        let config = ws.config();
        let config = config.to_str().unwrap();
        let imported = herald(
            &[
                "--config",
                config,
                "subscribers",
                "import",
                "list.csv",
                "--confirmed",
            ],
            ws.path(),
        );
        assert!(imported.status.success(), "{}", stderr(&imported));

        let (mut serve, address) = start_serve(&ws, &[]);
        let send = std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
            .args(["--config", config, "-q", "send", "issues/vol-001.md"])
            .current_dir(ws.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        const SIGN_UPS: usize = 150;
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                let client = reqwest::Client::new();
                for i in 0..SIGN_UPS {
                    let status = client
                        .post(format!("http://{address}/subscribe"))
                        .form(&[
                            ("email", format!("new{i}@example.com")),
                            ("website", String::new()),
                        ])
                        .send()
                        .await
                        .unwrap()
                        .status();
                    assert!(status.is_success(), "{status}");
                }
            });
        let sent = send.wait_with_output().unwrap();
        assert!(sent.status.success(), "{}", stderr(&sent));

        let count = |state: &str| -> i64 {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async {
                    let store = database.store().await;
                    let n = db::scalar_i64(
                        &store,
                        &format!(
                            "SELECT COUNT(*) FROM deliveries \
                         WHERE kind = 'confirmation' AND state = '{state}'"
                        ),
                    )
                    .await;
                    store.close().await;
                    n
                })
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while count("sent") + count("deferred") + count("failed") < SIGN_UPS as i64
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(200));
        }
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &serve.id().to_string()])
            .status();
        let _ = serve.wait();
        assert_eq!(count("deferred"), 0, "confirmations deferred");
        assert_eq!(count("sent"), SIGN_UPS as i64);
    });
}
