//! Leases on a real database (SQLite, and PostgreSQL behind the switch): a
//! run's claims are its own until their lease lapses; then anyone may
//! claim them, and the first run's late outcome lands on nothing. A renewed
//! lease keeps the rows.

use herald::domain::Reply;
use herald::store::deliveries::{self, DeliveryState, Queue};
use herald::store::Store;

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

async fn queue_mail(store: &Store, count: usize) {
    let mut tx = store.begin().await.unwrap();
    for i in 0..count {
        deliveries::enqueue_transactional(
            &mut tx,
            "confirmation",
            None,
            &format!("r{i}@example.com"),
            &format!("<m{i}@example.com>"),
            Some(b"message"),
            0,
        )
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
}

async fn claim(store: &Store, now: i64, lease_until: i64, claimer: &str) -> usize {
    let mut tx = store.begin().await.unwrap();
    let claimed = deliveries::claim_due_deliveries(
        &mut tx,
        Queue::Transactional,
        now,
        lease_until,
        100,
        claimer,
    )
    .await
    .unwrap();
    let ids: Vec<i64> = claimed.iter().map(|d| d.id).collect();
    tx.commit().await.unwrap();
    ids.len()
}

async fn mark_all_sent(store: &Store, count: i64, claimer: &str) {
    let reply = Reply {
        code: Some(250),
        enhanced_code: None,
        text: "ok".into(),
    };
    let sent: Vec<(i64, &Reply)> = (1..=count).map(|id| (id, &reply)).collect();
    let mut tx = store.begin().await.unwrap();
    deliveries::mark_sent_batch(&mut tx, &sent, 1, claimer)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

async fn counts(store: &Store) -> deliveries::DeliveryCounts {
    let mut tx = store.begin().await.unwrap();
    let counts = deliveries::count_deliveries_by_state(&mut tx, Queue::Transactional)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    counts
}

#[test]
fn a_lapsed_lease_returns_the_rows_and_the_dead_run_outcome_lands_on_nothing() {
    crate::db::for_each_backend(|backend| {
        let dir = tempfile::tempdir().unwrap();
        block_on(async {
            let database = backend.database(dir.path());
            let store = database.store().await;
            queue_mail(&store, 3).await;
            // Run A claims everything with a lease ending at t=1000.
            assert_eq!(claim(&store, 10, 1_000, "run-a").await, 3);
            // Before the lease ends nobody else gets them.
            assert_eq!(claim(&store, 999, 2_000, "run-b").await, 0);
            // After it (run A died, on whatever machine), run B takes them.
            assert_eq!(claim(&store, 1_001, 5_000, "run-b").await, 3);
            // Run A's late outcome lands on nothing: the rows are B's now.
            mark_all_sent(&store, 3, "run-a").await;
            assert_eq!(counts(&store).await.get(DeliveryState::Sending), 3);
            mark_all_sent(&store, 3, "run-b").await;
            assert_eq!(counts(&store).await.sent, 3);
            store.close().await;
        });
    });
}

#[test]
fn a_renewed_lease_keeps_the_rows() {
    crate::db::for_each_backend(|backend| {
        let dir = tempfile::tempdir().unwrap();
        block_on(async {
            let database = backend.database(dir.path());
            let store = database.store().await;
            queue_mail(&store, 2).await;
            assert_eq!(claim(&store, 10, 1_000, "run-a").await, 2);
            let mut tx = store.begin().await.unwrap();
            assert_eq!(
                deliveries::renew_leases(&mut tx, "run-a", 9_000)
                    .await
                    .unwrap(),
                2
            );
            // Another run's renewal touches none of A's rows.
            assert_eq!(
                deliveries::renew_leases(&mut tx, "run-b", 99_000)
                    .await
                    .unwrap(),
                0
            );
            tx.commit().await.unwrap();
            assert_eq!(claim(&store, 5_000, 10_000, "run-b").await, 0);
            assert_eq!(claim(&store, 9_001, 10_000, "run-b").await, 2);
            store.close().await;
        });
    });
}

/// A transport that takes its time and keeps who got what.
#[derive(Clone, Default)]
struct SlowInbox(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl herald::send::Transport for SlowInbox {
    type Connection = SlowInbox;
    async fn connect(&self) -> Result<SlowInbox, herald::send::SendError> {
        Ok(self.clone())
    }
}

impl herald::send::Connection for SlowInbox {
    async fn send(
        &mut self,
        envelope: &lettre::address::Envelope,
        _message: &[u8],
    ) -> Result<Reply, herald::send::SendError> {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        self.0.lock().unwrap().push(envelope.to()[0].to_string());
        Ok(Reply {
            code: Some(250),
            enhanced_code: None,
            text: "kept".into(),
        })
    }
    fn is_broken(&self) -> bool {
        false
    }
    async fn close(self) {}
}

/// Two runs on one queue, with leases far shorter than the time their
/// claimed rows wait in their channels: each renews its own, so no row is
/// taken from a live run and everybody gets exactly one copy. Without the
/// renewal, the second run takes rows the first still holds, and sends
/// them again.
#[test]
fn two_runs_with_short_leases_send_each_message_once() {
    crate::db::for_each_backend(|backend| {
        use herald::send::worker::{run_queue, Counters, MessageSource, SendOptions};
        use std::sync::Arc;
        let dir = tempfile::tempdir().unwrap();
        block_on(async {
            let database = backend.database(dir.path());
            let store = database.store().await;
            queue_mail(&store, 40).await;
            let inbox = SlowInbox::default();
            let source = Arc::new(MessageSource::Transactional {
                from: "news@example.com".parse().unwrap(),
                mail: None,
            });
            let run = |name: &str| {
                let mut options =
                    SendOptions::from_settings(&herald::config::Settings::default().send);
                options.concurrency = 2;
                options.batch_size = 10;
                options.lease = std::time::Duration::from_millis(1_000);
                options.claimer = name.to_string();
                let (store, inbox, source) = (store.clone(), inbox.clone(), source.clone());
                tokio::spawn(async move {
                    run_queue(
                        &store,
                        Arc::new(inbox),
                        source,
                        Queue::Transactional,
                        &options,
                        Arc::new(Counters::default()),
                        std::future::pending(),
                    )
                    .await
                    .unwrap()
                })
            };
            let (a, b) = (run("run-a"), run("run-b"));
            a.await.unwrap();
            b.await.unwrap();
            let mut got = inbox.0.lock().unwrap().clone();
            got.sort();
            let before = got.len();
            got.dedup();
            assert_eq!(before, got.len(), "some recipients got two copies");
            assert_eq!(got.len(), 40);
            assert_eq!(counts(&store).await.sent, 40);
            store.close().await;
        });
    });
}

/// The lock `herald send` takes is one holder's at a time across two
/// stores on one database (two processes, or on PostgreSQL two machines),
/// and free again once its holder lets go.
#[test]
fn a_store_lock_has_one_holder_at_a_time() {
    crate::db::for_each_backend(|backend| {
        let dir = tempfile::tempdir().unwrap();
        let database = backend.database(dir.path());
        block_on(async {
            let (one, two) = (database.store().await, database.store().await);
            let held = one.try_lock("send").await.unwrap();
            assert!(held.is_some(), "a free lock is taken");
            assert!(
                two.try_lock("send").await.unwrap().is_none(),
                "held elsewhere"
            );
            assert!(
                two.try_lock("other").await.unwrap().is_some(),
                "another name is free"
            );
            drop(held);
            assert!(two.try_lock("send").await.unwrap().is_some(), "let go");
            one.close().await;
            two.close().await;
        });
    });
}

/// A reply with a NUL in it (a broken or hostile server) is recorded on
/// both backends; PostgreSQL's text cannot hold one, and a refused record
/// would leave the batch to be sent again.
#[test]
fn a_reply_with_a_nul_is_recorded() {
    crate::db::for_each_backend(|backend| {
        let dir = tempfile::tempdir().unwrap();
        block_on(async {
            let database = backend.database(dir.path());
            let store = database.store().await;
            queue_mail(&store, 3).await;
            assert_eq!(claim(&store, 10, 1_000, "run-a").await, 3);
            let sent = Reply {
                code: Some(250),
                enhanced_code: Some("2.0.0".into()),
                text: "queued\0as 42".into(),
            };
            let deferred = Reply {
                code: Some(451),
                enhanced_code: None,
                text: "try\0later".into(),
            };
            let mut tx = store.begin().await.unwrap();
            deliveries::mark_sent_batch(&mut tx, &[(1, &sent)], 20, "run-a")
                .await
                .unwrap();
            deliveries::mark_deferred(&mut tx, 2, &deferred, 5_000, "run-a")
                .await
                .unwrap();
            deliveries::mark_failed(&mut tx, 3, &deferred, "run-a")
                .await
                .unwrap();
            tx.commit().await.unwrap();
            let counts = counts(&store).await;
            assert_eq!(
                (
                    counts.sent,
                    counts.get(DeliveryState::Deferred),
                    counts.get(DeliveryState::Failed)
                ),
                (1, 1, 1)
            );
            let replies =
                crate::db::texts(&store, "SELECT last_reply FROM deliveries ORDER BY id").await;
            assert_eq!(
                replies,
                [
                    "queued\u{FFFD}as 42",
                    "try\u{FFFD}later",
                    "try\u{FFFD}later"
                ]
            );
            store.close().await;
        });
    });
}
