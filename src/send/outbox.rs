//! The transactional mail worker: confirmations and welcomes, queued by the
//! web handlers in the same transaction as the change that caused them and
//! delivered here with the same retry rules as issues. A subscribe request
//! never waits on SMTP; if the server is down, the mail goes when it is back.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use super::any::AnyTransport;
use super::transport::Transport;
use super::worker::{
    send_next_batch, Counters, MessageSource, Outcome, SendOptions, TransactionalMail,
};
use crate::store::deliveries::Queue;
use crate::store::Store;

/// Wakes the worker at once when something was queued (instead of at the
/// next poll).
#[derive(Clone, Default)]
pub struct OutboxSignal(Arc<Notify>);

impl OutboxSignal {
    pub fn queued(&self) {
        self.0.notify_one();
    }
}

/// How often an idle worker looks for deferred mail that has come due.
const POLL: Duration = Duration::from_secs(2);

/// Runs until `shutdown` resolves. Errors (a locked database, a broken
/// server) are logged and retried after a pause: this loop must not die.
pub async fn run_transactional_worker(
    store: Store,
    transport: AnyTransport,
    from: super::envelope::EnvelopeSender,
    mail: Arc<dyn TransactionalMail>,
    options: SendOptions,
    signal: OutboxSignal,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let source = MessageSource::Transactional {
        from,
        mail: Some(mail),
    };
    let counters = Counters::default();
    let mut connection: Option<<AnyTransport as Transport>::Connection> = None;
    tokio::pin!(shutdown);
    loop {
        let wait = match send_next_batch(
            &store,
            &transport,
            &mut connection,
            &source,
            Queue::Transactional,
            &options,
            &counters,
        )
        .await
        {
            Ok(Outcome::Worked { .. }) => None,
            Ok(Outcome::Idle) => Some(POLL),
            Err(error) => {
                tracing::warn!("transactional mail: {error:#}");
                Some(POLL)
            }
        };
        if wait.is_none() && futures_util::FutureExt::now_or_never(&mut shutdown).is_some() {
            break;
        }
        if let Some(wait) = wait {
            // An idle connection would only time out on the server side.
            if let Some(conn) = connection.take() {
                use super::transport::Connection;
                conn.close().await;
            }
            tokio::select! {
                _ = &mut shutdown => break,
                _ = signal.0.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
    if let Some(conn) = connection {
        use super::transport::Connection;
        conn.close().await;
    }
}
