//! Workers: claim due deliveries, send them over reused connections, record
//! the outcomes in batched transactions.
//!
//! The pipeline for a campaign: one claimer feeds a bounded channel; one
//! task per SMTP connection takes jobs from it; one recorder commits the
//! results a batch at a time and wakes the claimer when retries come due.
//! [`send_next_batch`] is the same work done one batch at a time on one
//! connection: the step tests drive, and what the transactional mail
//! worker runs.

use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use futures_util::future::BoxFuture;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use lettre::address::Envelope;
use tokio::sync::{mpsc, Notify};

use super::breaker::Signal;
use super::envelope::EnvelopeSender;
use super::error::SendError;
use super::message::MessageFactory;
use super::relays::{store_transitions, Board, Relays};
use super::retry::{decide, Decision, RetryPolicy};
use super::transport::{Connection, Transport};
use crate::domain::Reply;
use crate::store::campaigns::{self, CampaignState};
use crate::store::deliveries::{self, ClaimedDelivery, Queue};
use crate::store::{now_millis, subscribers, Store};

/// Makes transactional mail when it is sent. The send stage owns this
/// interface; the subscription rules above it implement it (a confirmation
/// needs a fresh token stored as its hash, which only they know how to make).
pub trait TransactionalMail: Send + Sync + 'static {
    /// The finished message for a queued row that carries no payload.
    fn build<'a>(
        &'a self,
        delivery: &'a ClaimedDelivery,
    ) -> BoxFuture<'a, Result<Vec<u8>, SendError>>;
}

/// Turns a claimed row into the bytes to send.
pub enum MessageSource {
    /// Issue mail: personalised from the campaign's rendered email.
    Campaign(Box<MessageFactory>),
    /// Transactional mail: a finished payload, or made now by `mail`.
    Transactional {
        /// `[mail] from`, or the VERP return path.
        from: EnvelopeSender,
        mail: Option<Arc<dyn TransactionalMail>>,
    },
}

impl MessageSource {
    async fn build(&self, delivery: &ClaimedDelivery) -> Result<(Envelope, Vec<u8>), SendError> {
        match self {
            MessageSource::Campaign(factory) => {
                // No token: the subscriber was erased after the claim. A
                // message without a working unsubscribe link must not go.
                let token = delivery.unsubscribe_token.as_deref().ok_or_else(|| {
                    SendError::permanent("the subscriber is gone: no unsubscribe link to send")
                })?;
                factory
                    .build(
                        Some(delivery.id),
                        &delivery.recipient,
                        token,
                        &delivery.message_id,
                    )
                    .map_err(|e| SendError::permanent(format!("building the message: {e:#}")))
            }
            MessageSource::Transactional { from, mail } => {
                let payload = match (&delivery.payload, mail) {
                    (Some(payload), _) => payload.clone(),
                    (None, Some(mail)) => mail.build(delivery).await?,
                    (None, None) => {
                        return Err(SendError::permanent(format!(
                            "no way to make {} mail here",
                            delivery.kind
                        )))
                    }
                };
                let to: lettre::Address = delivery.recipient.parse().map_err(|e| {
                    SendError::permanent(format!("recipient {:?}: {e}", delivery.recipient))
                })?;
                let envelope = Envelope::new(Some(from.for_delivery(Some(delivery.id))?), vec![to])
                    .map_err(|e| SendError::permanent(format!("envelope: {e}")))?;
                Ok((envelope, payload))
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct SendOptions {
    pub concurrency: usize,
    /// Messages per second over all connections; 0 is unlimited.
    pub rate: u32,
    pub batch_size: i64,
    pub lease: Duration,
    pub retry: RetryPolicy,
    pub failure_window: usize,
    pub failure_threshold: f64,
    /// Who claims: `machine:pid:random`, new per set of options (one run),
    /// written on every row it claims, so that only this run's outcomes
    /// land on its rows and only its own leases are renewed; readable, so
    /// an operator can tell which worker holds a row.
    pub claimer: String,
}

fn claimer_id() -> String {
    let machine = match lettre::transport::smtp::extension::ClientId::default() {
        lettre::transport::smtp::extension::ClientId::Domain(name) => name,
        _ => "localhost".to_string(),
    };
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!(
        "{machine}:{}:{}",
        std::process::id(),
        random.get(..8).unwrap_or(&random)
    )
}

impl SendOptions {
    pub fn from_settings(send: &crate::config::SendSettings) -> Self {
        SendOptions {
            concurrency: send.concurrency.max(1),
            rate: send.rate,
            batch_size: i64::from(send.batch_size.max(1)),
            lease: Duration::from_secs(send.lease_secs.max(1)),
            retry: RetryPolicy::from_settings(send),
            failure_window: send.failure_window,
            failure_threshold: send.failure_threshold,
            claimer: claimer_id(),
        }
    }

    fn lease_from(&self, now: crate::store::Millis) -> crate::store::Millis {
        now.saturating_add(i64::try_from(self.lease.as_millis()).unwrap_or(i64::MAX / 2))
    }
}

/// Running totals of one run, shared with the progress display.
#[derive(Debug, Default)]
pub struct Counters {
    pub sent: AtomicU64,
    pub deferred: AtomicU64,
    pub failed: AtomicU64,
    pub bounced: AtomicU64,
}

impl Counters {
    fn add(&self, other: &Counters) {
        for (to, from) in [
            (&self.sent, &other.sent),
            (&self.deferred, &other.deferred),
            (&self.failed, &other.failed),
            (&self.bounced, &other.bounced),
        ] {
            to.fetch_add(from.load(Ordering::Relaxed), Ordering::Relaxed);
        }
    }

    pub fn snapshot(&self) -> (u64, u64, u64) {
        (
            self.sent.load(Ordering::Relaxed),
            self.deferred.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }
}

/// What one attempt came to.
#[derive(Debug)]
enum Attempt {
    Sent(Reply),
    Failed {
        error: SendError,
        step: Step,
    },
    /// Not attempted: the run is stopping, or the row's relay was taken
    /// out (its breaker opened) while the row waited for it. The claim is
    /// given back, and the row goes out through another relay.
    Released,
}

/// Where a failed attempt stopped: what it says about the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// The message could not be made; no relay was involved.
    Building,
    /// No connection: refused, timed out, TLS or AUTH failed.
    Connecting,
    /// Connected; the transaction failed.
    Sending,
}

/// What an attempt tells the relay's breaker; nothing when not attempted.
fn signal_of(attempt: &Attempt) -> Option<Signal> {
    Some(match attempt {
        Attempt::Sent(_) => Signal::Accepted,
        Attempt::Failed {
            step: Step::Building,
            ..
        } => Signal::Neutral,
        Attempt::Failed {
            step: Step::Connecting,
            ..
        } => Signal::Refused,
        Attempt::Failed { error, .. } if error.is_permanent() => Signal::Neutral,
        Attempt::Failed { .. } => Signal::Deferred,
        Attempt::Released => return None,
    })
}

struct AttemptResult {
    delivery: ClaimedDelivery,
    attempt: Attempt,
}

/// Why a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunEnd {
    /// Nothing is due any more (deferred rows may come due later).
    Drained,
    /// Too many failures in the window: the server looks broken.
    Paused(String),
    /// Stopped from outside (Ctrl-C).
    Interrupted,
}

/// Records a batch of results in one transaction and, once it commits,
/// adds them to `counters` (so a retried batch is counted once).
async fn record_results(
    store: &Store,
    results: &[AttemptResult],
    policy: &RetryPolicy,
    counters: &Counters,
    claimer: &str,
) -> anyhow::Result<()> {
    let now = now_millis();
    let shared = counters;
    let counters = &Counters::default();
    let mut tx = store.begin().await?;
    let mut sent = Vec::new();
    for result in results {
        let delivery = &result.delivery;
        match &result.attempt {
            Attempt::Sent(reply) => {
                sent.push((delivery.id, reply));
            }
            Attempt::Failed { error, .. } => {
                match decide(
                    error,
                    delivery.attempts,
                    delivery.first_attempt_at,
                    now,
                    policy,
                ) {
                    Decision::Defer { at } => {
                        deliveries::mark_deferred(&mut tx, delivery.id, &error.reply, at, claimer)
                            .await?;
                        counters.deferred.fetch_add(1, Ordering::Relaxed);
                    }
                    Decision::Fail { bounce, gave_up } => {
                        let mut reply = error.reply.clone();
                        if gave_up {
                            reply.text = format!("gave up retrying: {}", reply.text);
                        }
                        deliveries::mark_failed(&mut tx, delivery.id, &reply, claimer).await?;
                        counters.failed.fetch_add(1, Ordering::Relaxed);
                        if let (true, Some(subscriber)) = (bounce, delivery.subscriber_id) {
                            if subscribers::mark_bounced(&mut tx, subscriber, now).await? {
                                let reason = format!("bounced: {error}");
                                subscribers::record_event(
                                    &mut tx,
                                    subscriber,
                                    subscribers::SubscriberState::Bounced,
                                    &reason,
                                    now,
                                )
                                .await?;
                                counters.bounced.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                }
            }
            Attempt::Released => deliveries::release_claim(&mut tx, delivery.id, claimer).await?,
        }
    }
    deliveries::mark_sent_batch(&mut tx, &sent, now, claimer).await?;
    counters
        .sent
        .fetch_add(sent.len() as u64, Ordering::Relaxed);
    tx.commit().await.context("recording delivery outcomes")?;
    shared.add(counters);
    Ok(())
}

/// Claims the next due rows: queued ones, deferred ones whose time has
/// come, and rows whose lease lapsed (their run died). A run renews the
/// leases of the rows it holds, those waiting in its channel included, so
/// no live run's row is ever taken from it.
async fn claim_batch(
    store: &Store,
    queue: Queue,
    options: &SendOptions,
) -> anyhow::Result<Vec<ClaimedDelivery>> {
    let now = now_millis();
    let lease_until = options.lease_from(now);
    let mut tx = store.begin().await?;
    let mut claimed = deliveries::claim_due_deliveries(
        &mut tx,
        queue,
        now,
        lease_until,
        options.batch_size,
        &options.claimer,
    )
    .await
    // A row that does not decode (a corrupt database) ends up here;
    // the transaction is dropped uncommitted, so nothing is claimed.
    .context("claiming deliveries from the database")?;
    if matches!(queue, Queue::Campaign(_)) {
        deliveries::unsubscribe_tokens_for(&mut tx, &mut claimed).await?;
    }
    tx.commit().await.context("claiming deliveries")?;
    Ok(claimed)
}

async fn earliest_foreign_lease(
    store: &Store,
    queue: Queue,
    claimer: &str,
) -> anyhow::Result<Option<crate::store::Millis>> {
    let mut tx = store.begin_read().await?;
    let lease = deliveries::earliest_foreign_lease(&mut tx, queue, claimer).await?;
    tx.commit().await?;
    Ok(lease)
}

/// Sends one message on `connection`, opening it first if needed. A broken
/// connection is dropped so the next attempt opens a fresh one.
async fn attempt<T: Transport>(
    transport: &T,
    connection: &mut Option<T::Connection>,
    source: &MessageSource,
    delivery: &ClaimedDelivery,
) -> Attempt {
    let (envelope, bytes) = match source.build(delivery).await {
        Ok(built) => built,
        Err(error) => {
            return Attempt::Failed {
                error,
                step: Step::Building,
            }
        }
    };
    if connection.as_ref().is_none_or(|c| c.is_broken()) {
        *connection = None;
        match transport.connect().await {
            Ok(c) => *connection = Some(c),
            Err(error) => {
                return Attempt::Failed {
                    error,
                    step: Step::Connecting,
                }
            }
        }
    }
    let conn = connection.as_mut().expect("connected above");
    match conn.send(&envelope, &bytes).await {
        Ok(reply) => Attempt::Sent(reply),
        Err(error) => {
            if error.connection_lost {
                *connection = None;
            }
            Attempt::Failed {
                error,
                step: Step::Sending,
            }
        }
    }
}

/// What one [`send_next_batch`] step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Idle,
    Worked { sent: u64, failed_attempts: u64 },
}

/// Claims one batch, sends it on one connection, records the outcomes.
pub async fn send_next_batch<T: Transport>(
    store: &Store,
    transport: &T,
    connection: &mut Option<T::Connection>,
    source: &MessageSource,
    queue: Queue,
    options: &SendOptions,
    counters: &Counters,
) -> anyhow::Result<Outcome> {
    let claimed = claim_batch(store, queue, options).await?;
    if claimed.is_empty() {
        return Ok(Outcome::Idle);
    }
    let mut results = Vec::with_capacity(claimed.len());
    for delivery in claimed {
        let attempt = attempt(transport, connection, source, &delivery).await;
        results.push(AttemptResult { delivery, attempt });
    }
    record_results(store, &results, &options.retry, counters, &options.claimer).await?;
    let sent = results
        .iter()
        .filter(|r| matches!(r.attempt, Attempt::Sent(_)))
        .count() as u64;
    let failed_attempts = results
        .iter()
        .filter(|r| matches!(r.attempt, Attempt::Failed { .. }))
        .count() as u64;
    Ok(Outcome::Worked {
        sent,
        failed_attempts,
    })
}

/// Renews this run's leases every third of a lease, until aborted. A
/// renewal that fails (the database busy) is retried at the next tick;
/// two more remain before the lease could lapse.
async fn renew_leases_while_running(store: Store, options: SendOptions) {
    let every = (options.lease / 3).max(Duration::from_millis(100));
    loop {
        tokio::time::sleep(every).await;
        let renewed = async {
            let mut tx = store.begin().await?;
            let until = options.lease_from(now_millis());
            let n = deliveries::renew_leases(&mut tx, &options.claimer, until).await?;
            tx.commit().await?;
            anyhow::Ok(n)
        }
        .await;
        match renewed {
            Ok(n) => tracing::debug!("renewed the lease of {n} claimed deliveries"),
            Err(error) => tracing::warn!("renewing leases: {error:#}"),
        }
    }
}

/// The last `size` attempts: too many failures among them means the server
/// (or the route to it) is broken, and the run pauses instead of burning
/// through the list.
struct FailureWindow {
    recent: VecDeque<bool>,
    failures: usize,
    size: usize,
    threshold: f64,
}

impl FailureWindow {
    fn new(size: usize, threshold: f64) -> Self {
        FailureWindow {
            recent: VecDeque::with_capacity(size),
            failures: 0,
            size: size.max(1),
            threshold,
        }
    }

    /// Adds an attempt (true: accepted); the pause reason once the window
    /// is full and its failure share is over the threshold.
    fn push(&mut self, ok: bool) -> Option<String> {
        self.recent.push_back(ok);
        if !ok {
            self.failures += 1;
        }
        if self.recent.len() > self.size && self.recent.pop_front() == Some(false) {
            self.failures -= 1;
        }
        let full = self.recent.len() >= self.size;
        (full && self.failures as f64 / self.recent.len() as f64 > self.threshold).then(|| {
            format!(
                "{} of the last {} attempts failed (threshold {:.0}%)",
                self.failures,
                self.recent.len(),
                self.threshold * 100.0
            )
        })
    }
}

/// How long a run waits for the database to come back (a restart, a
/// failover) before it gives up; its claims then return to the queue when
/// their leases lapse.
const DATABASE_PATIENCE: Duration = Duration::from_secs(120);

/// Runs `operation` until it succeeds, trying again with backoff while the
/// database is unavailable. Safe for the claim and the recording: each is
/// one transaction, and an outcome lands only on a row this run still
/// holds, so repeating a batch changes nothing twice.
pub(crate) async fn patiently<T, F, Fut>(what: &str, mut operation: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let started = tokio::time::Instant::now();
    let mut delay = Duration::from_millis(100);
    loop {
        match operation().await {
            Ok(value) => return Ok(value),
            Err(error)
                if crate::store::is_transient_error(&error)
                    && started.elapsed() + delay < DATABASE_PATIENCE =>
            {
                tracing::warn!("{what}: {error:#}; trying again in {delay:?}");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Err(error) => return Err(error),
        }
    }
}

/// Shared between the claimer, the workers and the recorder of one run.
struct RunState {
    stop: AtomicBool,
    end: Mutex<Option<RunEnd>>,
    in_flight: AtomicUsize,
    recorded: Notify,
}

impl RunState {
    fn stop_with(&self, end: RunEnd) {
        let mut slot = self
            .end
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if slot.is_none() {
            *slot = Some(end);
        }
        self.stop.store(true, Ordering::SeqCst);
        self.recorded.notify_waiters();
    }
}

/// Runs a queue through one transport, until nothing is due, the failure
/// rate pauses it, or `interrupt` fires: [`run_relays`] with one relay.
pub async fn run_queue<T: Transport>(
    store: &Store,
    transport: Arc<T>,
    source: Arc<MessageSource>,
    queue: Queue,
    options: &SendOptions,
    counters: Arc<Counters>,
    interrupt: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<RunEnd> {
    let relays = Relays::single("relay", transport);
    run_relays(store, &relays, source, queue, options, counters, interrupt).await
}

/// A rate limiter for `rate` messages a second; none for 0.
fn rate_limiter(rate: u32) -> Option<Arc<DefaultDirectRateLimiter>> {
    // Clamped, so the period below is never shorter than a microsecond
    // (a zero period has no quota); the config refuses higher rates anyway.
    let rate = NonZeroU32::new(rate.min(crate::config::MAX_RATE))?;
    // A burst of 10 ms worth of messages (at least one): the rate holds
    // over any window longer than that. A burst of one would undershoot
    // high rates, since timers tick in milliseconds.
    let period = Duration::from_secs_f64(1.0 / f64::from(rate.get()));
    let burst = NonZeroU32::new(rate.get() / 100).unwrap_or(NonZeroU32::MIN);
    let quota = Quota::with_period(period)?.allow_burst(burst);
    Some(Arc::new(RateLimiter::direct(quota)))
}

/// One relay's side of a run: the rows handed to it, taken by its
/// workers, one connection each.
struct Lane<T> {
    relay: usize,
    transport: Arc<T>,
    jobs: Arc<tokio::sync::Mutex<mpsc::Receiver<ClaimedDelivery>>>,
    /// The relay's own rate, and the run's over all relays.
    own_rate: Option<Arc<DefaultDirectRateLimiter>>,
    run_rate: Option<Arc<DefaultDirectRateLimiter>>,
}

impl<T> Clone for Lane<T> {
    fn clone(&self) -> Self {
        Lane {
            relay: self.relay,
            transport: self.transport.clone(),
            jobs: self.jobs.clone(),
            own_rate: self.own_rate.clone(),
            run_rate: self.run_rate.clone(),
        }
    }
}

/// Everything a send worker shares with the rest of its run.
struct Crew {
    source: Arc<MessageSource>,
    results: mpsc::Sender<AttemptResult>,
    state: Arc<RunState>,
    board: Arc<Board>,
}

/// One worker of a lane: takes its rows one by one over one connection,
/// tells the relay's breaker how each went, and hands the outcome to the
/// recorder. A row whose relay was taken out while it waited is given
/// back, so that it goes through another relay.
async fn work_lane<T: Transport>(lane: Lane<T>, crew: Crew) {
    let mut connection: Option<T::Connection> = None;
    loop {
        let job = lane.jobs.lock().await.recv().await;
        let Some(delivery) = job else { break };
        let diverted = crew.board.should_divert(lane.relay, now_millis());
        let attempt = if crew.state.stop.load(Ordering::SeqCst) || diverted {
            Attempt::Released
        } else {
            for limiter in [&lane.own_rate, &lane.run_rate].into_iter().flatten() {
                limiter.until_ready().await;
            }
            let attempt = attempt(&*lane.transport, &mut connection, &crew.source, &delivery).await;
            if let Some(signal) = signal_of(&attempt) {
                crew.board.observe(lane.relay, signal, now_millis());
            }
            attempt
        };
        if crew
            .results
            .send(AttemptResult { delivery, attempt })
            .await
            .is_err()
        {
            break;
        }
    }
    if let Some(connection) = connection {
        connection.close().await;
    }
}

/// Starts each relay's workers; returns the senders that feed each
/// relay's rows to them, in the relays' order, and the workers.
fn start_lanes<T: Transport>(
    relays: &Relays<T>,
    options: &SendOptions,
    crew: &Crew,
) -> (
    Vec<mpsc::Sender<ClaimedDelivery>>,
    Vec<tokio::task::JoinHandle<()>>,
) {
    let run_rate = rate_limiter(options.rate);
    let mut senders = Vec::with_capacity(relays.routes.len());
    let mut workers = Vec::new();
    for (relay, route) in relays.routes.iter().enumerate() {
        let concurrency = relays.concurrency_of(relay, options.concurrency);
        // Room for a whole batch: the claimer hands one over at once and
        // claims the next while the workers send this one, so they never
        // wait on a claim's round trip and commit.
        let room = (options.batch_size.max(1) as usize).max(concurrency * 4);
        let (jobs_tx, jobs_rx) = mpsc::channel::<ClaimedDelivery>(room);
        senders.push(jobs_tx);
        let lane = Lane {
            relay,
            transport: route.transport.clone(),
            jobs: Arc::new(tokio::sync::Mutex::new(jobs_rx)),
            own_rate: rate_limiter(route.rate),
            run_rate: run_rate.clone(),
        };
        for _ in 0..concurrency {
            let crew = Crew {
                source: crew.source.clone(),
                results: crew.results.clone(),
                state: crew.state.clone(),
                board: crew.board.clone(),
            };
            workers.push(tokio::spawn(work_lane(lane.clone(), crew)));
        }
    }
    (senders, workers)
}

/// Stores the breakers' transitions; a failure is only logged, since the
/// stored state is for display and the next run's start, and never
/// decides a message's fate.
async fn store_board(store: &Store, board: &Board, claimer: &str) {
    let transitions = board.take_transitions();
    let stored = patiently("storing the relays' breaker states", || {
        store_transitions(store, &transitions, claimer)
    })
    .await;
    if let Err(error) = stored {
        tracing::warn!("storing the relays' breaker states: {error:#}");
    }
}

/// How long the recorder gathers outcomes after the first, and at most how
/// many it commits at once.
const RECORD_WINDOW: Duration = Duration::from_millis(50);
const RECORD_BATCH: usize = 500;

/// The recorder: commits outcomes a batch at a time, feeds the failure
/// window, stores breaker transitions, and wakes the claimer.
async fn record_loop(
    store: Store,
    mut results_rx: mpsc::Receiver<AttemptResult>,
    options: SendOptions,
    state: Arc<RunState>,
    board: Arc<Board>,
    counters: Arc<Counters>,
) -> anyhow::Result<()> {
    let mut window = FailureWindow::new(options.failure_window.max(1), options.failure_threshold);
    let mut buffer = Vec::new();
    // The window sees each outcome as it arrives, before the gathering
    // and the (slower) database write: otherwise the run would keep
    // failing for a whole gathering window, or a remote database's round
    // trip, after the threshold is crossed.
    let mut observe = |result: AttemptResult, buffer: &mut Vec<AttemptResult>| {
        let ok = match result.attempt {
            Attempt::Sent(_) => Some(true),
            Attempt::Failed { .. } => Some(false),
            Attempt::Released => None,
        };
        if let Some(reason) = ok.and_then(|ok| window.push(ok)) {
            state.stop_with(RunEnd::Paused(reason));
        }
        buffer.push(result);
    };
    while let Some(first) = results_rx.recv().await {
        observe(first, &mut buffer);
        // Gather what else is ready, up to a bounded batch, so one commit
        // covers many messages without delaying any for long. Each commit
        // costs the database a statement, its counter triggers and a WAL
        // flush: at 10 ms a batch held 24 rows and the commits cost
        // PostgreSQL more than the rows did.
        let deadline = tokio::time::Instant::now() + RECORD_WINDOW;
        while buffer.len() < RECORD_BATCH {
            match tokio::time::timeout_at(deadline, results_rx.recv()).await {
                Ok(Some(result)) => observe(result, &mut buffer),
                _ => break,
            }
        }
        let started = std::time::Instant::now();
        let recorded = patiently("recording delivery outcomes", || {
            record_results(&store, &buffer, &options.retry, &counters, &options.claimer)
        })
        .await;
        if let Err(error) = recorded {
            // Stop everyone, or the claimer waits for a wake-up that never
            // comes. The rows stay 'sending' until their lease lapses (or
            // the next run on SQLite releases them).
            state.stop_with(RunEnd::Interrupted);
            return Err(error);
        }
        store_board(&store, &board, &options.claimer).await;
        tracing::debug!(
            "recorded {} outcomes in {:?}",
            buffer.len(),
            started.elapsed()
        );
        state.in_flight.fetch_sub(buffer.len(), Ordering::SeqCst);
        buffer.clear();
        state.recorded.notify_waiters();
    }
    Ok(())
}

/// How often a campaign's claimer looks whether the campaign was paused:
/// a pause takes effect within about this long, at one primary-key read
/// per second instead of a condition in every claim.
const PAUSE_CHECK: Duration = Duration::from_secs(1);

async fn campaign_still_sending(store: &Store, campaign_id: i64) -> anyhow::Result<bool> {
    let mut tx = store.begin_read().await?;
    let campaign = campaigns::find_campaign_summary(&mut tx, campaign_id).await?;
    tx.commit().await?;
    Ok(campaign.is_some_and(|c| c.state == CampaignState::Sending))
}

/// The claimer: claims due rows a batch at a time and hands each to the
/// relay whose turn it is, until nothing is due or the run stops.
async fn claim_loop(
    store: &Store,
    queue: Queue,
    options: &SendOptions,
    state: &RunState,
    board: &Board,
    lanes: &[mpsc::Sender<ClaimedDelivery>],
) -> anyhow::Result<()> {
    let mut next_pause_check = std::time::Instant::now();
    loop {
        let recorded = state.recorded.notified();
        if state.stop.load(Ordering::SeqCst) {
            break;
        }
        if let Queue::Campaign(id) = queue {
            // Paused (by the editor on the dashboard): claim nothing more;
            // what was handed out still goes out and is recorded.
            if std::time::Instant::now() >= next_pause_check {
                next_pause_check = std::time::Instant::now() + PAUSE_CHECK;
                let sending = patiently("looking whether the campaign was paused", || {
                    campaign_still_sending(store, id)
                })
                .await?;
                if !sending {
                    break;
                }
            }
        }
        let batch = patiently("claiming deliveries", || claim_batch(store, queue, options)).await?;
        if batch.is_empty() {
            if state.in_flight.load(Ordering::SeqCst) > 0 {
                recorded.await;
                continue;
            }
            // Rows other runs hold (PostgreSQL): wait until they are done
            // or their lease lapses, so the campaign ends when this run
            // does, even when the other run died. Looked at five times a
            // second (a read of the rows in flight): the runs end together, where a
            // second's nap made the last of three exit up to a second late.
            let Some(lease_end) = patiently("looking for other runs' claims", || {
                earliest_foreign_lease(store, queue, &options.claimer)
            })
            .await?
            else {
                break;
            };
            let wait = u64::try_from(lease_end.saturating_sub(now_millis())).unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(wait.clamp(50, 200))).await;
            continue;
        }
        state.in_flight.fetch_add(batch.len(), Ordering::SeqCst);
        for delivery in batch {
            let relay = board.pick(now_millis());
            let lane = lanes.get(relay).context("a relay without workers")?;
            if lane.send(delivery).await.is_err() {
                anyhow::bail!("the send workers of relay {} stopped", board.name(relay));
            }
        }
    }
    Ok(())
}

/// Runs a queue until nothing is due, the failure rate pauses it, or
/// `interrupt` fires. Deliveries are claimed in batches, each handed to a
/// relay by weight (skipping relays whose breaker is open), sent over each
/// relay's reused connections, and recorded in batches.
pub async fn run_relays<T: Transport>(
    store: &Store,
    relays: &Relays<T>,
    source: Arc<MessageSource>,
    queue: Queue,
    options: &SendOptions,
    counters: Arc<Counters>,
    interrupt: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<RunEnd> {
    if relays.routes.is_empty() {
        anyhow::bail!("no relay to send through");
    }
    let state = Arc::new(RunState {
        stop: AtomicBool::new(false),
        end: Mutex::new(None),
        in_flight: AtomicUsize::new(0),
        recorded: Notify::new(),
    });
    let board = patiently("reading the relays' breaker states", || {
        Board::load(store, relays)
    })
    .await?;
    let board = Arc::new(board);
    let (results_tx, results_rx) =
        mpsc::channel::<AttemptResult>(options.batch_size.max(1) as usize * 2);

    let interrupt_state = state.clone();
    let interrupt_task = tokio::spawn(async move {
        interrupt.await;
        interrupt_state.stop_with(RunEnd::Interrupted);
    });
    let crew = Crew {
        source,
        results: results_tx,
        state: state.clone(),
        board: board.clone(),
    };
    let (lanes, workers) = start_lanes(relays, options, &crew);
    drop(crew);
    let recorder = tokio::spawn(record_loop(
        store.clone(),
        results_rx,
        options.clone(),
        state.clone(),
        board.clone(),
        counters,
    ));
    let renewer = tokio::spawn(renew_leases_while_running(store.clone(), options.clone()));

    let claim_result = claim_loop(store, queue, options, &state, &board, &lanes).await;
    drop(lanes);
    for worker in workers {
        worker.await.context("send worker panicked")?;
    }
    recorder.await.context("recorder panicked")??;
    renewer.abort();
    interrupt_task.abort();
    // What changed after the last batch (a relay gone half-open).
    store_board(store, &board, &options.claimer).await;
    claim_result?;
    let end = state
        .end
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    Ok(end.unwrap_or(RunEnd::Drained))
}

#[cfg(test)]
mod tests {
    use super::FailureWindow;

    #[test]
    fn the_window_pauses_only_when_full_and_over_the_threshold() {
        let mut window = FailureWindow::new(4, 0.5);
        // Not full yet: three failures say nothing.
        assert_eq!(window.push(false), None);
        assert_eq!(window.push(false), None);
        assert_eq!(window.push(true), None);
        // Full, 2 of 4 failed: not over half.
        assert_eq!(window.push(true), None);
        // The oldest failures slide out as new ones come in: still 2 of 4.
        assert_eq!(window.push(false), None);
        assert_eq!(window.push(false), None);
        // 3 of the last 4 failed.
        let reason = window.push(false).expect("a pause");
        assert!(
            reason.starts_with("3 of the last 4 attempts failed"),
            "{reason}"
        );
        // Successes bring it back under.
        window.push(true);
        assert_eq!(window.push(true), None);
    }
}
