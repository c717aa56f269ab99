//! Any sequence of sign-ups, confirmations, unsubscribes, re-subscribes and
//! erasures leaves the list valid. A small model says what each address's
//! state must be; the database must agree after every step, and a few
//! invariants hold whatever the model says.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use herald::config::Settings;
use herald::domain::Reply;
use herald::domain::{SubscriberEmail, Token};
use herald::render::Templates;
use herald::send::worker::{send_next_batch, Counters, MessageSource, Outcome, SendOptions};
use herald::send::{Connection, SendError, Transport};
use herald::store::deliveries::Queue;
use herald::store::subscribers::{self, Source, SubscriberState};
use herald::store::{now_millis, Store};
use herald::subscription::{suppression_hash, SubscribeRequest, SubscriberMail, Subscriptions};
use lettre::address::Envelope;
use mail_parser::MessageParser;
use proptest::prelude::*;

use crate::db::{self, Backend};

// Domains unlike the sender's, so no Message-ID can contain an address.
const ADDRESSES: [&str; 3] = ["ann@one.test", "bob@two.test", "cy@three.test"];
const CONFIRMATIONS_PER_HOUR: u32 = 3;

#[derive(Debug, Clone)]
enum Op {
    /// The web form (also how someone who left comes back).
    Form(usize),
    /// `herald subscribers add`, with or without `--confirmed`.
    CliAdd(usize, bool),
    /// Confirms with the k-th link ever mailed to the address (any age).
    Confirm(usize, usize),
    /// A forged link.
    ConfirmForged,
    Unsubscribe(usize),
    /// The send stage saw a permanent "no such mailbox".
    Bounce(usize),
    Erase(usize),
}

fn op() -> impl Strategy<Value = Op> {
    let who = 0..ADDRESSES.len();
    prop_oneof![
        3 => who.clone().prop_map(Op::Form),
        1 => (who.clone(), any::<bool>()).prop_map(|(a, c)| Op::CliAdd(a, c)),
        4 => (who.clone(), 0..6usize).prop_map(|(a, k)| Op::Confirm(a, k)),
        1 => Just(Op::ConfirmForged),
        2 => who.clone().prop_map(Op::Unsubscribe),
        1 => who.clone().prop_map(Op::Bounce),
        1 => who.prop_map(Op::Erase),
    ]
}

/// What the rules say about one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expected {
    Absent,
    In(SubscriberState),
    Erased,
}

#[derive(Debug, Default)]
struct Model {
    state: HashMap<usize, Expected>,
    /// Every link mailed to an address, oldest first: spent or not.
    links: HashMap<usize, Vec<bool>>,
}

impl Model {
    fn get(&self, a: usize) -> Expected {
        self.state.get(&a).copied().unwrap_or(Expected::Absent)
    }

    fn set(&mut self, a: usize, state: SubscriberState) {
        self.state.insert(a, Expected::In(state));
    }

    fn mail_link(&mut self, a: usize) {
        self.links.entry(a).or_default().push(false);
    }

    /// A pending address gets another link unless it had its share this
    /// hour (a test run is well within one hour).
    fn resend_link(&mut self, a: usize) {
        if self.links.get(&a).map_or(0, Vec::len) < CONFIRMATIONS_PER_HOUR as usize {
            self.mail_link(a);
        }
    }

    fn spend_all_links(&mut self, a: usize) {
        for spent in self.links.entry(a).or_default() {
            *spent = true;
        }
    }

    fn apply(&mut self, op: &Op, link_index: Option<usize>) {
        match *op {
            Op::Form(a) => match self.get(a) {
                Expected::Absent => {
                    self.set(a, SubscriberState::Pending);
                    self.mail_link(a);
                }
                Expected::In(SubscriberState::Pending) => self.resend_link(a),
                Expected::In(SubscriberState::Unsubscribed | SubscriberState::Bounced) => {
                    self.set(a, SubscriberState::Pending);
                    self.spend_all_links(a);
                    self.mail_link(a);
                }
                _ => {}
            },
            Op::CliAdd(a, confirmed) => match (self.get(a), confirmed) {
                (Expected::Absent, true) => self.set(a, SubscriberState::Active),
                (Expected::Absent, false) => {
                    self.set(a, SubscriberState::Pending);
                    self.mail_link(a);
                }
                (Expected::In(SubscriberState::Pending), true) => {
                    self.set(a, SubscriberState::Active)
                }
                (Expected::In(SubscriberState::Pending), false) => self.resend_link(a),
                _ => {}
            },
            Op::Confirm(a, _) => {
                let Some(k) = link_index else { return };
                let links = self.links.entry(a).or_default();
                if links[k] {
                    return; // a spent link never works again
                }
                links[k] = true;
                if self.get(a) == Expected::In(SubscriberState::Pending) {
                    self.set(a, SubscriberState::Active);
                    self.spend_all_links(a);
                }
            }
            Op::ConfirmForged => {}
            Op::Unsubscribe(a) => {
                if matches!(
                    self.get(a),
                    Expected::In(SubscriberState::Pending | SubscriberState::Active)
                ) {
                    self.set(a, SubscriberState::Unsubscribed);
                }
            }
            Op::Bounce(a) => {
                if matches!(
                    self.get(a),
                    Expected::In(SubscriberState::Pending | SubscriberState::Active)
                ) {
                    self.set(a, SubscriberState::Bounced);
                }
            }
            Op::Erase(a) => {
                self.state.insert(a, Expected::Erased);
            }
        }
    }
}

/// A transport that keeps every message: the confirmation links come from
/// the mail itself (the database keeps only their hashes).
#[derive(Clone, Default)]
struct Inbox(Arc<Mutex<Vec<Mailed>>>);

/// A recipient and the message they got.
type Mailed = (String, Vec<u8>);

impl Transport for Inbox {
    type Connection = Inbox;
    async fn connect(&self) -> Result<Inbox, SendError> {
        Ok(self.clone())
    }
}

impl Connection for Inbox {
    async fn send(&mut self, envelope: &Envelope, message: &[u8]) -> Result<Reply, SendError> {
        let to = envelope.to()[0].to_string();
        self.0.lock().unwrap().push((to, message.to_vec()));
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

/// Sends every queued confirmation through the real worker step, which
/// makes each one's token as it goes.
async fn deliver_queued_mail(store: &Store, inbox: &Inbox, source: &MessageSource) {
    let options = SendOptions::from_settings(&Settings::default().send);
    let counters = Counters::default();
    let mut connection = None;
    while let Outcome::Worked { .. } = send_next_batch(
        store,
        inbox,
        &mut connection,
        source,
        Queue::Transactional,
        &options,
        &counters,
    )
    .await
    .unwrap()
    {}
}

/// The confirmation links mailed to an address, oldest first.
fn links_mailed_to(inbox: &Inbox, address: &str) -> Vec<Token> {
    inbox
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|(to, _)| to == address)
        .filter_map(|(_, message)| {
            let message = MessageParser::default().parse(message).unwrap();
            let text = message.body_text(0).unwrap();
            // Welcome mails carry no confirmation link.
            let start = text.find("/confirm/")? + "/confirm/".len();
            Some(Token::parse(&text[start..start + 43]).unwrap())
        })
        .collect()
}

async fn run_sequence(backend: &Backend, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let database = backend.database(dir.path());
    let mut settings = Settings::default();
    settings.database.url = database.settings_url();
    settings.server.confirmations_per_address_per_hour = CONFIRMATIONS_PER_HOUR;
    let settings = Arc::new(settings);
    let store = database.store().await;
    let subscriptions = Subscriptions::new(settings.clone(), &Templates::builtin()).unwrap();
    let emails: Vec<SubscriberEmail> = ADDRESSES
        .iter()
        .map(|a| SubscriberEmail::parse(a).unwrap())
        .collect();
    let mut model = Model::default();

    let inbox = Inbox::default();
    let source = MessageSource::Transactional {
        from: "list@herald.test".parse().unwrap(),
        mail: Some(Arc::new(SubscriberMail::new(
            store.clone(),
            Arc::new(Subscriptions::new(settings.clone(), &Templates::builtin()).unwrap()),
        ))),
    };

    for op in &ops {
        deliver_queued_mail(&store, &inbox, &source).await;
        let now = now_millis();
        let mut tx = store.begin().await.unwrap();
        let mut link_index = None;
        match *op {
            Op::Form(a) | Op::CliAdd(a, _) => {
                let (source, confirmed) = match *op {
                    Op::CliAdd(_, confirmed) => (Source::Cli, confirmed),
                    _ => (Source::Form, false),
                };
                let request = SubscribeRequest {
                    email: &emails[a],
                    name: None,
                    source,
                    consent: None,
                    confirmed,
                };
                subscriptions
                    .subscribe(&mut tx, &request, now)
                    .await
                    .unwrap();
            }
            Op::Confirm(a, k) => {
                let links = links_mailed_to(&inbox, ADDRESSES[a]);
                if !links.is_empty() {
                    let k = k % links.len();
                    link_index = Some(k);
                    subscriptions
                        .confirm(&mut tx, &links[k], now)
                        .await
                        .unwrap();
                }
            }
            Op::ConfirmForged => {
                subscriptions
                    .confirm(&mut tx, &Token::generate(), now)
                    .await
                    .unwrap();
            }
            Op::Unsubscribe(a) => {
                if let Some(s) = subscribers::find_subscriber_by_email(&mut tx, &emails[a])
                    .await
                    .unwrap()
                {
                    subscriptions
                        .unsubscribe(&mut tx, &s.unsubscribe_token, "test", now)
                        .await
                        .unwrap();
                }
            }
            Op::Bounce(a) => {
                if let Some(s) = subscribers::find_subscriber_by_email(&mut tx, &emails[a])
                    .await
                    .unwrap()
                {
                    // As the send stage's worker records it.
                    if subscribers::mark_bounced(&mut tx, s.id, now).await.unwrap() {
                        subscribers::record_event(
                            &mut tx,
                            s.id,
                            SubscriberState::Bounced,
                            "bounced: 550 5.1.1",
                            now,
                        )
                        .await
                        .unwrap();
                    }
                }
            }
            Op::Erase(a) => {
                subscriptions.erase(&mut tx, &emails[a], now).await.unwrap();
            }
        }
        tx.commit().await.unwrap();
        model.apply(op, link_index);
        check(&store, &emails, &model, op).await?;
    }
    store.close().await;
    Ok(())
}

async fn check(
    store: &Store,
    emails: &[SubscriberEmail],
    model: &Model,
    op: &Op,
) -> Result<(), TestCaseError> {
    for (a, email) in emails.iter().enumerate() {
        // Addresses here are plain ASCII without quotes: safe to write
        // into the SQL.
        let rows = db::scalar_i64(
            store,
            &format!("SELECT COUNT(*) FROM subscribers WHERE email = '{email}'"),
        )
        .await;
        prop_assert!(rows <= 1, "two rows for {email}");
        let mut tx = store.begin().await.unwrap();
        let found = subscribers::find_subscriber_by_email(&mut tx, email)
            .await
            .unwrap();
        let actual = match &found {
            Some(s) => Expected::In(s.state),
            None => {
                let suppressed = db::scalar_i64(
                    store,
                    &format!(
                        "SELECT COUNT(*) FROM suppressions WHERE email_hash = '{}'",
                        suppression_hash(email)
                    ),
                )
                .await;
                if suppressed > 0 {
                    Expected::Erased
                } else {
                    Expected::Absent
                }
            }
        };
        prop_assert_eq!(actual, model.get(a), "{} after {:?}", email, op);

        if let Some(s) = found {
            // Active only through a confirmation or an editor's --confirmed.
            let events = subscribers::list_events(&mut tx, s.id).await.unwrap();
            let last = events.last().expect("every subscriber has an event");
            prop_assert_eq!(last.state, s.state);
            if s.state == SubscriberState::Active {
                prop_assert!(
                    last.reason == "confirmed by link" || last.reason.ends_with("--confirmed"),
                    "active by {:?}",
                    last.reason
                );
            }
        } else {
            // The address anywhere in a stored message, in each dialect.
            let in_payload = match store.backend() {
                herald::store::Backend::Sqlite => {
                    format!("instr(payload, CAST('{email}' AS BLOB)) > 0")
                }
                herald::store::Backend::Postgres => {
                    format!("position(convert_to('{email}', 'UTF8') in payload) > 0")
                }
            };
            let mentions = db::scalar_i64(
                store,
                &format!(
                    "SELECT COUNT(*) FROM deliveries WHERE recipient = '{email}' OR {in_payload}"
                ),
            )
            .await;
            prop_assert_eq!(mentions, 0, "{} left in deliveries", email);
        }
        tx.commit().await.unwrap();
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn any_sequence_leaves_the_list_valid(ops in proptest::collection::vec(op(), 1..30)) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        for backend in db::backends() {
            runtime
                .block_on(run_sequence(&backend, ops.clone()))
                .map_err(|e| TestCaseError::fail(format!("on {}: {e}", backend.name())))?;
        }
    }
}
