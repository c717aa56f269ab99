//! Provider webhooks over real HTTP: the webhook routes served on a free
//! port against a real SQLite file, each provider's documented payload
//! shape signed with keys made here (an RSA certificate from rcgen served
//! by a local HTTP server for SNS, a P-256 key for SendGrid, HMAC keys for
//! Mailgun and the generic endpoint, basic auth for Postmark).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use base64::Engine;
use hmac::{Hmac, Mac};
use p256::ecdsa::signature::{SignatureEncoding, Signer};
use p256::pkcs8::EncodePublicKey;
use reqwest::StatusCode;
use rsa::pkcs8::{EncodePrivateKey, LineEnding};
use serde_json::json;
use sha2::Sha256;

use herald::config::{Secret, Settings};
use herald::domain::{ReturnPath, SubscriberEmail, Token, Verp};
use herald::http::webhooks::{sns_string_to_sign, webhook_routes, SnsMessage, WebhookState};
use herald::store::campaigns::{self, NewCampaign};
use herald::store::secrets;
use herald::store::subscribers::{self, NewSubscriber, Source, SubscriberState};
use herald::store::Store;

use crate::db::{self, Backend, TestDatabase};

const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:herald-bounces";
const MAILGUN_KEY: &str = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0";
const GENERIC_SECRET: &str = "generic-webhook-secret";
const POSTMARK_USER: &str = "herald";
const POSTMARK_PASSWORD: &str = "postmark-hook-password";

fn b64(bytes: impl AsRef<[u8]>) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn hmac_hex(key: &str, parts: &[&[u8]]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
    for part in parts {
        mac.update(part);
    }
    hex::encode(mac.finalize().into_bytes())
}

/// The SNS side: an RSA key, its self-signed certificate, and a local HTTP
/// server that serves the certificate and takes subscription confirmations,
/// counting both.
struct SnsFake {
    key: rsa::RsaPrivateKey,
    base_url: String,
    certificate_fetches: Arc<AtomicUsize>,
    confirmations: Arc<AtomicUsize>,
}

impl SnsFake {
    async fn start() -> SnsFake {
        let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).unwrap();
        let key_pem = key.to_pkcs8_pem(LineEnding::LF).unwrap();
        let key_pair =
            rcgen::KeyPair::from_pem_and_sign_algo(&key_pem, &rcgen::PKCS_RSA_SHA256).unwrap();
        let certificate = rcgen::CertificateParams::new(vec!["sns.us-east-1.amazonaws.com".into()])
            .unwrap()
            .self_signed(&key_pair)
            .unwrap()
            .pem();
        // The same key in a certificate that expired long ago.
        let mut expired =
            rcgen::CertificateParams::new(vec!["sns.us-east-1.amazonaws.com".into()]).unwrap();
        expired.not_before = rcgen::date_time_ymd(2000, 1, 1);
        expired.not_after = rcgen::date_time_ymd(2001, 1, 1);
        let expired = expired.self_signed(&key_pair).unwrap().pem();
        let certificate_fetches = Arc::new(AtomicUsize::new(0));
        let confirmations = Arc::new(AtomicUsize::new(0));
        let (fetches, confirmed) = (certificate_fetches.clone(), confirmations.clone());
        let app = Router::new()
            .route(
                "/SimpleNotificationService-test.pem",
                get(move || {
                    fetches.fetch_add(1, Ordering::SeqCst);
                    let certificate = certificate.clone();
                    async move { certificate }
                }),
            )
            .route(
                "/SimpleNotificationService-expired.pem",
                get(move || async move { expired }),
            )
            .route(
                "/confirm",
                get(move || {
                    confirmed.fetch_add(1, Ordering::SeqCst);
                    async { "<ConfirmSubscriptionResponse/>" }
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        SnsFake {
            key,
            base_url: format!("http://127.0.0.1:{port}"),
            certificate_fetches,
            confirmations,
        }
    }

    fn cert_url(&self) -> String {
        format!("{}/SimpleNotificationService-test.pem", self.base_url)
    }

    /// An SNS message of `kind` carrying `message`, signed with
    /// SignatureVersion `version` ("1": SHA-1, "2": SHA-256).
    fn message(
        &self,
        kind: &str,
        message: &str,
        version: &str,
        timestamp: chrono::DateTime<chrono::Utc>,
    ) -> serde_json::Value {
        let mut envelope = json!({
            "Type": kind,
            "MessageId": uuid::Uuid::new_v4().to_string(),
            "TopicArn": TOPIC,
            "Message": message,
            "Timestamp": timestamp.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "SignatureVersion": version,
            "Signature": "",
            "SigningCertURL": self.cert_url(),
            "UnsubscribeURL": format!("{}/unsubscribe", self.base_url),
        });
        if kind == "SubscriptionConfirmation" {
            envelope["Token"] = json!("2336412f37fb687f5d51e6e2425dacbba");
            envelope["SubscribeURL"] = json!(format!(
                "{}/confirm?Action=ConfirmSubscription&Token=2336412f37fb687f5d51e6e2425dacbba",
                self.base_url
            ));
        }
        self.sign(&mut envelope);
        envelope
    }

    /// (Re)computes `Signature` over the envelope's current fields.
    fn sign(&self, envelope: &mut serde_json::Value) {
        let parsed: SnsMessage = serde_json::from_value(envelope.clone()).unwrap();
        let text = sns_string_to_sign(&parsed).unwrap();
        let signature = match parsed.signature_version.as_str() {
            "1" => rsa::pkcs1v15::SigningKey::<sha1::Sha1>::new(self.key.clone())
                .sign(text.as_bytes())
                .to_vec(),
            _ => rsa::pkcs1v15::SigningKey::<Sha256>::new(self.key.clone())
                .sign(text.as_bytes())
                .to_vec(),
        };
        envelope["Signature"] = json!(b64(signature));
    }
}

/// The SES notification for a bounce (shaped like the SES developer
/// guide's example) of `recipient`.
fn ses_bounce(recipient: &str, bounce_type: &str) -> String {
    json!({
        "notificationType": "Bounce",
        "bounce": {
            "bounceType": bounce_type, "bounceSubType": "General",
            "bouncedRecipients": [{"emailAddress": recipient, "action": "failed", "status": "5.1.1",
                                   "diagnosticCode": "smtp; 550 5.1.1 user unknown"}],
            "timestamp": "2026-01-27T14:59:38.237Z", "feedbackId": "0000013811122-33322211-cccc-000000",
            "reportingMTA": "dsn; a27-23.smtp-out.us-west-2.amazonses.com"
        },
        "mail": {
            "timestamp": "2026-01-27T14:59:38.237Z", "source": "bounces@example.com",
            "sourceArn": "arn:aws:ses:us-east-1:123456789012:identity/example.com",
            "messageId": "0000013811122aa-33322211-cccc-cccc-cccc-ddddaaaa0680-000000",
            "destination": [recipient], "headersTruncated": false,
            "headers": [{"name": "Message-ID", "value": "<issue-1.abc@example.com>"}],
            "commonHeaders": {"messageId": "<issue-1.abc@example.com>", "subject": "Weekly"}
        }
    })
    .to_string()
}

fn ses_complaint(recipient: &str) -> String {
    json!({
        "notificationType": "Complaint",
        "complaint": {
            "userAgent": "AnyCompany Feedback Loop (V0.01)",
            "complainedRecipients": [{"emailAddress": recipient}],
            "complaintFeedbackType": "abuse", "arrivalDate": "2026-01-27T14:59:38.237Z",
            "timestamp": "2026-01-27T14:59:38.237Z", "feedbackId": "000001378603177f-18c07c78-000000"
        },
        "mail": {"timestamp": "2026-01-27T14:59:38.237Z", "source": "bounces@example.com",
                 "messageId": "000001378603177f-7a5433e7", "destination": [recipient]}
    })
    .to_string()
}

struct WebhookApp {
    base_url: String,
    settings: Arc<Settings>,
    store: Store,
    client: reqwest::Client,
    sns: SnsFake,
    sendgrid_key: p256::ecdsa::SigningKey,
    /// Kept for the test's duration: dropping it drops a PostgreSQL
    /// database.
    _db: TestDatabase,
    _dir: tempfile::TempDir,
}

/// How the app's settings differ from "every endpoint on".
#[derive(Default)]
struct Setup {
    every_endpoint_off: bool,
    /// `[bounces] return_path`: VERP envelope senders.
    return_path: Option<&'static str>,
}

async fn spawn_webhooks(backend: &Backend, setup: Setup) -> WebhookApp {
    let dir = tempfile::tempdir().unwrap();
    let sns = SnsFake::start().await;
    let sendgrid_key = p256::ecdsa::SigningKey::random(&mut rsa::rand_core::OsRng);
    let mut settings = Settings {
        root: dir.path().to_path_buf(),
        ..Settings::default()
    };
    let db = backend.database(dir.path());
    settings.database.url = db.settings_url();
    settings.bounces.return_path = setup.return_path.map(String::from);
    if !setup.every_endpoint_off {
        settings.webhooks.ses_topic_arns = vec![TOPIC.into()];
        // The AWS pattern stays; the local certificate server is the one
        // loopback host named outright, which alone may use plain HTTP.
        settings.webhooks.ses_certificate_hosts =
            vec!["sns.*.amazonaws.com".into(), "127.0.0.1".into()];
        settings.webhooks.postmark_username = Some(POSTMARK_USER.into());
        let public = sendgrid_key.verifying_key().to_public_key_der().unwrap();
        settings.webhook_secrets.mailgun_signing_key = Some(Secret::new(MAILGUN_KEY));
        settings.webhook_secrets.sendgrid_verification_key =
            Some(Secret::new(b64(public.as_bytes())));
        settings.webhook_secrets.postmark_password = Some(Secret::new(POSTMARK_PASSWORD));
        settings.webhook_secrets.generic_secret = Some(Secret::new(GENERIC_SECRET));
    }
    let settings = Arc::new(settings);
    let (base_url, store) = serve_front_end(&settings).await;
    WebhookApp {
        base_url,
        settings,
        store,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
        sns,
        sendgrid_key,
        _db: db,
        _dir: dir,
    }
}

/// One web front end: its own store (connection pools) on the database
/// database, the webhook routes on a free port. Returns its base URL.
async fn serve_front_end(settings: &Arc<Settings>) -> (String, Store) {
    let store = crate::send::open_store(settings).await;
    let app = webhook_routes(WebhookState::new(store.clone(), settings.clone()).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    (format!("http://127.0.0.1:{port}"), store)
}

/// An active subscriber, as if added with `subscribers add --confirmed`.
async fn add_active_subscriber(store: &Store, email: &str) {
    let email = SubscriberEmail::parse(email).unwrap();
    let token = Token::generate();
    let mut tx = store.begin().await.unwrap();
    subscribers::insert_subscriber(
        &mut tx,
        &NewSubscriber {
            email: &email,
            name: None,
            state: SubscriberState::Active,
            source: Source::Cli,
            consent: None,
            unsubscribe_token: token.as_str(),
        },
        herald::store::now_millis(),
    )
    .await
    .unwrap()
    .unwrap();
    tx.commit().await.unwrap();
}

impl WebhookApp {
    async fn add_subscriber(&self, email: &str) {
        add_active_subscriber(&self.store, email).await;
    }

    async fn state_of(&self, email: &str) -> String {
        db::scalar_text(
            &self.store,
            &format!("SELECT state FROM subscribers WHERE email = '{email}'"),
        )
        .await
    }

    /// Every table's row count and every subscriber's state: what a
    /// refused request must leave as it was.
    async fn snapshot(&self) -> BTreeMap<String, String> {
        let tables_sql = match self.store.backend() {
            herald::store::Backend::Sqlite => {
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            }
            herald::store::Backend::Postgres => {
                "SELECT CAST(table_name AS TEXT) FROM information_schema.tables \
                 WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
            }
        };
        let tables = db::texts(&self.store, tables_sql).await;
        assert!(tables.iter().any(|t| t == "subscribers"), "{tables:?}");
        let mut snapshot = BTreeMap::new();
        for table in tables {
            let count =
                db::scalar_i64(&self.store, &format!("SELECT COUNT(*) FROM \"{table}\"")).await;
            snapshot.insert(format!("rows in {table}"), count.to_string());
        }
        let rows = db::texts(
            &self.store,
            "SELECT email || ' ' || state || ' at ' || CAST(state_changed_at AS TEXT) \
             FROM subscribers",
        )
        .await;
        for row in rows {
            let (email, state) = row.split_once(' ').unwrap();
            snapshot.insert(email.to_string(), state.to_string());
        }
        snapshot
    }

    /// (provider, kind) of every report recorded, oldest first.
    async fn reports(&self) -> Vec<(String, String)> {
        db::texts(
            &self.store,
            "SELECT provider || ' ' || kind FROM bounce_reports ORDER BY id",
        )
        .await
        .into_iter()
        .map(|row| {
            let (provider, kind) = row.split_once(' ').unwrap();
            (provider.to_string(), kind.to_string())
        })
        .collect()
    }

    async fn post(
        &self,
        path: &str,
        headers: &[(&str, String)],
        body: impl Into<reqwest::Body>,
    ) -> StatusCode {
        let mut request = self
            .client
            .post(format!("{}{path}", self.base_url))
            .body(body);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        request.send().await.unwrap().status()
    }

    async fn post_sns(&self, envelope: &serde_json::Value) -> StatusCode {
        let headers = [
            ("content-type", "text/plain; charset=UTF-8".to_string()),
            (
                "x-amz-sns-message-type",
                envelope["Type"].as_str().unwrap().to_string(),
            ),
        ];
        self.post("/webhooks/ses", &headers, envelope.to_string())
            .await
    }

    /// A refused request: 401, and nothing in the database changed.
    async fn assert_refused(
        &self,
        what: &str,
        status: StatusCode,
        before: &BTreeMap<String, String>,
    ) {
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}");
        assert_eq!(
            &self.snapshot().await,
            before,
            "{what} changed the database"
        );
    }
}

#[tokio::test]
async fn ses_through_sns_confirms_verifies_and_records() {
    crate::db::for_each_backend_async(|backend| async move {
        let app = spawn_webhooks(&backend, Setup::default()).await;
        app.add_subscriber("jane@example.com").await;
        app.add_subscriber("richard@example.com").await;
        let now = chrono::Utc::now();

        let confirmation = app.sns.message(
            "SubscriptionConfirmation",
            "You have chosen to subscribe.",
            "1",
            now,
        );
        assert_eq!(app.post_sns(&confirmation).await, StatusCode::OK);
        assert_eq!(app.sns.confirmations.load(Ordering::SeqCst), 1);

        // Forged: a notification whose Message was changed after signing.
        let mut forged = app.sns.message(
            "Notification",
            &ses_bounce("jane@example.com", "Permanent"),
            "1",
            now,
        );
        forged["Message"] = json!(ses_bounce("richard@example.com", "Permanent"));
        let before = app.snapshot().await;
        app.assert_refused("a forged SNS message", app.post_sns(&forged).await, &before)
            .await;

        // Stale: signed, but an hour old.
        let stale = app.sns.message(
            "Notification",
            &ses_bounce("jane@example.com", "Permanent"),
            "2",
            now - chrono::Duration::hours(1),
        );
        app.assert_refused("a stale SNS message", app.post_sns(&stale).await, &before)
            .await;

        // A certificate from a host not on the allow-list is never fetched,
        // whatever it would say; nor is plain HTTP to a host matched only by
        // a pattern.
        let fetches = app.sns.certificate_fetches.load(Ordering::SeqCst);
        for foreign_url in [
        app.sns.cert_url().replace("127.0.0.1", "127.0.0.2"),
        "https://sns.us-east-1.amazonaws.com.attacker.example/SimpleNotificationService-test.pem"
            .to_string(),
        "http://sns.us-east-1.amazonaws.com/SimpleNotificationService-test.pem".to_string(),
    ] {
        let mut foreign = app.sns.message(
            "Notification",
            &ses_bounce("jane@example.com", "Permanent"),
            "1",
            now,
        );
        foreign["SigningCertURL"] = json!(foreign_url);
        app.sns.sign(&mut foreign);
        app.assert_refused(
            "a certificate URL off the allow-list",
            app.post_sns(&foreign).await,
            &before,
        )
        .await;
    }
        assert_eq!(app.sns.certificate_fetches.load(Ordering::SeqCst), fetches);

        // On an allowed host, but no certificate there, or an expired one.
        for (path, what) in [
            ("/missing.pem", "a certificate URL with no certificate"),
            (
                "/SimpleNotificationService-expired.pem",
                "an expired certificate",
            ),
        ] {
            let mut message = app.sns.message(
                "Notification",
                &ses_bounce("jane@example.com", "Permanent"),
                "2",
                now,
            );
            message["SigningCertURL"] = json!(format!("{}{path}", app.sns.base_url));
            app.sns.sign(&mut message);
            app.assert_refused(what, app.post_sns(&message).await, &before)
                .await;
        }

        // A subscription confirmation whose SubscribeURL leaves the allow-list
        // is refused and the URL is not fetched.
        let mut foreign_confirmation =
            app.sns
                .message("SubscriptionConfirmation", "again", "1", now);
        foreign_confirmation["SubscribeURL"] = json!("http://127.0.0.2:9/confirm");
        app.sns.sign(&mut foreign_confirmation);
        app.assert_refused(
            "a SubscribeURL off the allow-list",
            app.post_sns(&foreign_confirmation).await,
            &before,
        )
        .await;

        // Authentic, from a topic that is not ours: refused.
        let mut other_topic = app.sns.message(
            "Notification",
            &ses_bounce("jane@example.com", "Permanent"),
            "1",
            now,
        );
        other_topic["TopicArn"] = json!("arn:aws:sns:us-east-1:999999999999:someone-else");
        app.sns.sign(&mut other_topic);
        assert_eq!(app.post_sns(&other_topic).await, StatusCode::FORBIDDEN);
        assert_eq!(app.snapshot().await, before);

        // Accepted: a permanent bounce (SHA-1) and a complaint (SHA-256).
        let bounce = app.sns.message(
            "Notification",
            &ses_bounce("jane@example.com", "Permanent"),
            "1",
            now,
        );
        assert_eq!(app.post_sns(&bounce).await, StatusCode::OK);
        assert_eq!(app.state_of("jane@example.com").await, "bounced");
        assert_eq!(app.state_of("richard@example.com").await, "active");
        let complaint = app.sns.message(
            "Notification",
            &ses_complaint("richard@example.com"),
            "2",
            now,
        );
        assert_eq!(app.post_sns(&complaint).await, StatusCode::OK);
        assert_eq!(app.state_of("richard@example.com").await, "complained");

        // Replayed: the same signed message again.
        let after = app.snapshot().await;
        app.assert_refused(
            "a replayed SNS message",
            app.post_sns(&bounce).await,
            &after,
        )
        .await;

        // Delivery events are accepted and change nothing.
        let delivery =
            json!({"notificationType": "Delivery", "mail": {"source": "bounces@example.com"},
                          "delivery": {"recipients": ["jane@example.com"]}})
            .to_string();
        let delivered = app.sns.message("Notification", &delivery, "2", now);
        assert_eq!(app.post_sns(&delivered).await, StatusCode::OK);
        let mut expected = after.clone();
        expected.insert(
            "rows in webhook_replays".into(),
            (after["rows in webhook_replays"].parse::<i64>().unwrap() + 1).to_string(),
        );
        assert_eq!(app.snapshot().await, expected);
        assert_eq!(
            app.reports().await,
            vec![
                ("ses".to_string(), "bounce".to_string()),
                ("ses".to_string(), "complaint".to_string())
            ]
        );

        // One certificate fetch served every message.
        assert_eq!(app.sns.certificate_fetches.load(Ordering::SeqCst), 1);
    })
    .await;
}

/// With a VERP return path, SES reports the envelope sender
/// (`mail.source`), and that alone finds the delivery: here the bounce
/// names an address the list does not have (a forward) and carries no
/// Message-ID.
#[tokio::test]
async fn an_ses_bounce_finds_its_delivery_by_the_verp_envelope_sender() {
    crate::db::for_each_backend_async(|backend| async move {
    let app = spawn_webhooks(&backend, Setup {
        return_path: Some("bounces@example.com"),
        ..Setup::default()
    })
    .await;
    app.add_subscriber("jane@example.com").await;
    app.add_subscriber("john@example.com").await;
    let now = herald::store::now_millis();
    let mut tx = app.store.begin().await.unwrap();
    let campaign = campaigns::insert_campaign(
        &mut tx,
        &NewCampaign {
            issue_slug: "vol-001",
            issue_number: 1,
            issue_hash: "hash",
            subject: "Weekly #1",
            html: "<p>Weekly</p>",
            text: "Weekly",
            message_nonce: "n0nce",
            scheduled_at: None,
        },
        now,
    )
    .await
    .unwrap();
    campaigns::snapshot_recipients(&mut tx, campaign, "n0nce", "example.com", now)
        .await
        .unwrap();
    let key = secrets::verp_key(&mut tx, now).await.unwrap();
    tx.commit().await.unwrap();
    let jane_delivery = db::scalar_i64(
        &app.store,
        "SELECT id FROM deliveries WHERE recipient = 'jane@example.com'",
    )
    .await;
    let verp = Verp::new(ReturnPath::parse("bounces@example.com").unwrap(), key);

    let notification = json!({
        "notificationType": "Bounce",
        "bounce": {"bounceType": "Permanent", "bounceSubType": "General",
                   "bouncedRecipients": [{"emailAddress": "jane.doe@forwarded.example", "action": "failed",
                                          "status": "5.1.1", "diagnosticCode": "smtp; 550 5.1.1 user unknown"}],
                   "timestamp": "2026-01-27T14:59:38.237Z", "feedbackId": "feedback-verp-1"},
        "mail": {"timestamp": "2026-01-27T14:59:38.237Z", "source": verp.address_for(jane_delivery),
                 "messageId": "ses-id-1", "destination": ["jane@example.com"], "headersTruncated": false,
                 "headers": [], "commonHeaders": {"subject": "Weekly #1"}}
    })
    .to_string();
    let message = app
        .sns
        .message("Notification", &notification, "2", chrono::Utc::now());
    assert_eq!(app.post_sns(&message).await, StatusCode::OK);
    assert_eq!(app.state_of("jane@example.com").await, "bounced");
    assert_eq!(app.state_of("john@example.com").await, "active");
    let column = |name: &str| format!("SELECT {name} FROM deliveries WHERE id = {jane_delivery}");
    let kind: Option<String> = db::scalar(&app.store, &column("report_kind")).await;
    let status: Option<String> = db::scalar(&app.store, &column("report_status")).await;
    assert_eq!(kind.as_deref(), Some("bounce"));
    assert_eq!(status.as_deref(), Some("5.1.1"));
    })
    .await;
}

#[tokio::test]
async fn mailgun_signed_events_current_and_legacy() {
    crate::db::for_each_backend_async(|backend| async move {
    let app = spawn_webhooks(&backend, Setup::default()).await;
    app.add_subscriber("alice@example.com").await;
    app.add_subscriber("carol@example.com").await;
    let json_headers = [("content-type", "application/json".to_string())];
    let failed = |timestamp: i64, token: &str, key: &str, event_id: &str| {
        let timestamp = timestamp.to_string();
        json!({
            "signature": {"timestamp": timestamp, "token": token,
                          "signature": hmac_hex(key, &[timestamp.as_bytes(), token.as_bytes()])},
            "event-data": {
                "event": "failed", "id": event_id, "timestamp": 1521233123.501324,
                "severity": "permanent", "reason": "bounce", "recipient": "alice@example.com",
                "envelope": {"sender": "bounces@example.com", "transport": "smtp", "targets": "alice@example.com"},
                "message": {"headers": {"to": "Alice <alice@example.com>", "message-id": "issue-1.abc@example.com",
                                        "from": "Herald <newsletter@example.com>", "subject": "Weekly"}},
                "delivery-status": {"code": 550, "attempt-no": 1, "description": "",
                                    "message": "550 5.1.1 The email account that you tried to reach does not exist"}
            }
        })
        .to_string()
    };
    let before = app.snapshot().await;
    let forged = failed(
        unix_now(),
        "token-forged-0123456789abcdef0123456789abcdef01",
        "not-the-key",
        "ev-forged",
    );
    app.assert_refused(
        "a forged Mailgun event",
        app.post("/webhooks/mailgun", &json_headers, forged).await,
        &before,
    )
    .await;
    let stale = failed(
        unix_now() - 3600,
        "token-stale-0123456789abcdef0123456789abcdef012",
        MAILGUN_KEY,
        "ev-stale",
    );
    app.assert_refused(
        "a stale Mailgun event",
        app.post("/webhooks/mailgun", &json_headers, stale).await,
        &before,
    )
    .await;
    let unsigned = json!({"event-data": {"event": "failed", "severity": "permanent", "recipient": "alice@example.com"}});
    app.assert_refused(
        "an unsigned Mailgun event",
        app.post("/webhooks/mailgun", &json_headers, unsigned.to_string())
            .await,
        &before,
    )
    .await;

    let good = failed(
        unix_now(),
        "token-good-0123456789abcdef0123456789abcdef0123",
        MAILGUN_KEY,
        "ev-good",
    );
    assert_eq!(
        app.post("/webhooks/mailgun", &json_headers, good.clone())
            .await,
        StatusCode::OK
    );
    assert_eq!(app.state_of("alice@example.com").await, "bounced");
    let after = app.snapshot().await;
    app.assert_refused(
        "a replayed Mailgun event",
        app.post("/webhooks/mailgun", &json_headers, good).await,
        &after,
    )
    .await;
    // Mailgun's own retry of the same event comes with a new token and
    // signature: accepted, and recorded once (the event id).
    let retried = failed(
        unix_now(),
        "token-retry-0123456789abcdef0123456789abcdef012",
        MAILGUN_KEY,
        "ev-good",
    );
    assert_eq!(
        app.post("/webhooks/mailgun", &json_headers, retried).await,
        StatusCode::OK
    );
    let mut expected = after.clone();
    expected.insert(
        "rows in webhook_replays".into(),
        (after["rows in webhook_replays"].parse::<i64>().unwrap() + 1).to_string(),
    );
    assert_eq!(
        app.snapshot().await,
        expected,
        "a retried event counted twice"
    );
    assert_eq!(
        app.reports().await,
        vec![("mailgun".to_string(), "bounce".to_string())]
    );

    // The legacy form webhook: a complaint.
    let timestamp = unix_now().to_string();
    let token = "legacy-token-0123456789abcdef0123456789abcdef0123";
    let form = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("event", "complained")
        .append_pair("recipient", "carol@example.com")
        .append_pair("domain", "example.com")
        .append_pair("Message-Id", "<issue-1.abc@example.com>")
        .append_pair("timestamp", &timestamp)
        .append_pair("token", token)
        .append_pair(
            "signature",
            &hmac_hex(MAILGUN_KEY, &[timestamp.as_bytes(), token.as_bytes()]),
        )
        .finish();
    let form_headers = [(
        "content-type",
        "application/x-www-form-urlencoded".to_string(),
    )];
    assert_eq!(
        app.post("/webhooks/mailgun", &form_headers, form).await,
        StatusCode::OK
    );
    assert_eq!(app.state_of("carol@example.com").await, "complained");
    })
    .await;
}

#[tokio::test]
async fn sendgrid_signed_event_batches() {
    crate::db::for_each_backend_async(|backend| async move {
    let app = spawn_webhooks(&backend, Setup::default()).await;
    app.add_subscriber("gone@example.com").await;
    app.add_subscriber("spam@example.com").await;
    app.add_subscriber("late@example.com").await;
    let batch = json!([
        {"email": "gone@example.com", "timestamp": unix_now(), "smtp-id": "<issue-1.abc@example.com>",
         "event": "bounce", "category": ["weekly"], "sg_event_id": "sg-bounce-1",
         "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
         "reason": "550 5.1.1 The email account that you tried to reach does not exist",
         "status": "5.1.1", "type": "bounce"},
        {"email": "spam@example.com", "timestamp": unix_now(), "event": "spamreport",
         "sg_event_id": "sg-spam-1", "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0"},
        {"email": "late@example.com", "timestamp": unix_now(), "event": "deferred",
         "response": "400 try again later", "attempt": "5", "sg_event_id": "sg-deferred-1"},
        {"email": "late@example.com", "timestamp": unix_now(), "event": "delivered",
         "response": "250 OK", "sg_event_id": "sg-delivered-1"}
    ])
    .to_string();
    let signed = |timestamp: i64, body: &str, key: &p256::ecdsa::SigningKey| {
        let timestamp = timestamp.to_string();
        let signature: p256::ecdsa::Signature = key.sign(format!("{timestamp}{body}").as_bytes());
        vec![
            ("content-type", "application/json".to_string()),
            (
                "X-Twilio-Email-Event-Webhook-Signature",
                b64(signature.to_der().as_bytes()),
            ),
            ("X-Twilio-Email-Event-Webhook-Timestamp", timestamp),
        ]
    };
    let before = app.snapshot().await;
    let other_key = p256::ecdsa::SigningKey::random(&mut rsa::rand_core::OsRng);
    app.assert_refused(
        "a batch signed by another key",
        app.post(
            "/webhooks/sendgrid",
            &signed(unix_now(), &batch, &other_key),
            batch.clone(),
        )
        .await,
        &before,
    )
    .await;
    let tampered = batch.replace("spamreport", "open");
    app.assert_refused(
        "a batch changed after signing",
        app.post(
            "/webhooks/sendgrid",
            &signed(unix_now(), &batch, &app.sendgrid_key),
            tampered,
        )
        .await,
        &before,
    )
    .await;
    app.assert_refused(
        "a stale batch",
        app.post(
            "/webhooks/sendgrid",
            &signed(unix_now() - 3600, &batch, &app.sendgrid_key),
            batch.clone(),
        )
        .await,
        &before,
    )
    .await;
    app.assert_refused(
        "an unsigned batch",
        app.post(
            "/webhooks/sendgrid",
            &[("content-type", "application/json".to_string())],
            batch.clone(),
        )
        .await,
        &before,
    )
    .await;

    let headers = signed(unix_now(), &batch, &app.sendgrid_key);
    assert_eq!(
        app.post("/webhooks/sendgrid", &headers, batch.clone())
            .await,
        StatusCode::OK
    );
    assert_eq!(app.state_of("gone@example.com").await, "bounced");
    assert_eq!(app.state_of("spam@example.com").await, "complained");
    assert_eq!(
        app.state_of("late@example.com").await,
        "active",
        "a deferral is only a delay"
    );
    // One report per event that is one; the delivered event is none.
    let sendgrid = |kind: &str| ("sendgrid".to_string(), kind.to_string());
    assert_eq!(
        app.reports().await,
        vec![sendgrid("bounce"), sendgrid("complaint"), sendgrid("delay")]
    );
    let after = app.snapshot().await;
    app.assert_refused(
        "a replayed batch",
        app.post("/webhooks/sendgrid", &headers, batch).await,
        &after,
    )
    .await;
    })
    .await;
}

#[tokio::test]
async fn postmark_basic_auth_bounces_and_complaints() {
    crate::db::for_each_backend_async(|backend| async move {
    let app = spawn_webhooks(&backend, Setup::default()).await;
    app.add_subscriber("john@example.com").await;
    app.add_subscriber("mary@example.com").await;
    let record = |record_type: &str, bounce_type: &str, id: u64, email: &str| {
        json!({
            "RecordType": record_type, "MessageStream": "outbound", "ID": id, "Type": bounce_type,
            "TypeCode": 1, "Name": "Hard bounce", "Tag": "Test",
            "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483", "Metadata": {}, "ServerID": 23,
            "Description": "The server was unable to deliver your message (ex: unknown user, mailbox not found).",
            "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist.",
            "Email": email, "From": "newsletter@example.com", "BouncedAt": "2026-11-05T16:33:54.9070259Z",
            "DumpAvailable": true, "Inactive": true, "CanActivate": true, "Subject": "Weekly"
        })
        .to_string()
    };
    let auth = |credentials: &str| {
        vec![
            ("content-type", "application/json".to_string()),
            ("authorization", format!("Basic {}", b64(credentials))),
        ]
    };
    let good_auth = auth(&format!("{POSTMARK_USER}:{POSTMARK_PASSWORD}"));
    let bounce = record(
        "Bounce",
        "HardBounce",
        4323372036854775807,
        "john@example.com",
    );
    let before = app.snapshot().await;
    app.assert_refused(
        "a wrong password",
        app.post(
            "/webhooks/postmark",
            &auth(&format!("{POSTMARK_USER}:guess")),
            bounce.clone(),
        )
        .await,
        &before,
    )
    .await;
    app.assert_refused(
        "a wrong user",
        app.post(
            "/webhooks/postmark",
            &auth(&format!("admin:{POSTMARK_PASSWORD}")),
            bounce.clone(),
        )
        .await,
        &before,
    )
    .await;
    app.assert_refused(
        "no credentials",
        app.post(
            "/webhooks/postmark",
            &[("content-type", "application/json".to_string())],
            bounce.clone(),
        )
        .await,
        &before,
    )
    .await;

    assert_eq!(
        app.post("/webhooks/postmark", &good_auth, bounce.clone())
            .await,
        StatusCode::OK
    );
    assert_eq!(app.state_of("john@example.com").await, "bounced");
    let after = app.snapshot().await;
    app.assert_refused(
        "a replayed record",
        app.post("/webhooks/postmark", &good_auth, bounce).await,
        &after,
    )
    .await;

    let complaint = record("SpamComplaint", "SpamComplaint", 42, "mary@example.com");
    assert_eq!(
        app.post("/webhooks/postmark", &good_auth, complaint).await,
        StatusCode::OK
    );
    assert_eq!(app.state_of("mary@example.com").await, "complained");
    })
    .await;
}

#[tokio::test]
async fn generic_endpoint_signed_json() {
    crate::db::for_each_backend_async(|backend| async move {
        let app = spawn_webhooks(&backend, Setup::default()).await;
        app.add_subscriber("jane@example.com").await;
        app.add_subscriber("bob@example.com").await;
        let signed = |timestamp: i64, body: &str, secret: &str| {
            let timestamp = timestamp.to_string();
            vec![
                ("content-type", "application/json".to_string()),
                (
                    "X-Herald-Signature",
                    format!(
                        "sha256={}",
                        hmac_hex(secret, &[timestamp.as_bytes(), b".", body.as_bytes()])
                    ),
                ),
                ("X-Herald-Timestamp", timestamp),
            ]
        };
        let bounce =
            json!({"id": "relay-evt-1", "event": "bounce", "recipient": "jane@example.com",
                        "status": "5.1.1", "class": "hard", "diagnostic": "550 5.1.1 no such user",
                        "message_id": "<issue-1.abc@example.com>"})
            .to_string();
        let before = app.snapshot().await;
        app.assert_refused(
            "a wrong secret",
            app.post(
                "/webhooks/generic",
                &signed(unix_now(), &bounce, "guess"),
                bounce.clone(),
            )
            .await,
            &before,
        )
        .await;
        app.assert_refused(
            "a stale request",
            app.post(
                "/webhooks/generic",
                &signed(unix_now() - 3600, &bounce, GENERIC_SECRET),
                bounce.clone(),
            )
            .await,
            &before,
        )
        .await;
        app.assert_refused(
            "an unsigned request",
            app.post(
                "/webhooks/generic",
                &[("content-type", "application/json".to_string())],
                bounce.clone(),
            )
            .await,
            &before,
        )
        .await;
        // Signed, but not the documented body: 400, and nothing changes.
        let misspelt = r#"{"id": "x", "event": "bounce", "recipent": "jane@example.com"}"#;
        assert_eq!(
            app.post(
                "/webhooks/generic",
                &signed(unix_now(), misspelt, GENERIC_SECRET),
                misspelt
            )
            .await,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(app.snapshot().await, before);

        let headers = signed(unix_now(), &bounce, GENERIC_SECRET);
        assert_eq!(
            app.post("/webhooks/generic", &headers, bounce.clone())
                .await,
            StatusCode::OK
        );
        assert_eq!(app.state_of("jane@example.com").await, "bounced");
        let after = app.snapshot().await;
        app.assert_refused(
            "a replayed request",
            app.post("/webhooks/generic", &headers, bounce).await,
            &after,
        )
        .await;

        let complaint =
            json!([{"id": "relay-evt-2", "event": "complaint", "recipient": "bob@example.com"}])
                .to_string();
        assert_eq!(
            app.post(
                "/webhooks/generic",
                &signed(unix_now(), &complaint, GENERIC_SECRET),
                complaint
            )
            .await,
            StatusCode::OK
        );
        assert_eq!(app.state_of("bob@example.com").await, "complained");
    })
    .await;
}

#[tokio::test]
async fn endpoints_without_a_secret_are_off_and_bodies_are_capped() {
    crate::db::for_each_backend_async(|backend| async move {
        let off = spawn_webhooks(
            &backend,
            Setup {
                every_endpoint_off: true,
                ..Setup::default()
            },
        )
        .await;
        for path in [
            "/webhooks/ses",
            "/webhooks/mailgun",
            "/webhooks/sendgrid",
            "/webhooks/postmark",
            "/webhooks/generic",
        ] {
            assert_eq!(
                off.post(path, &[], "{}").await,
                StatusCode::NOT_FOUND,
                "{path}"
            );
        }

        let on = spawn_webhooks(&backend, Setup::default()).await;
        let huge = vec![b' '; 2 * 1024 * 1024];
        assert_eq!(
            on.post(
                "/webhooks/generic",
                &[("content-type", "application/json".to_string())],
                huge
            )
            .await,
            StatusCode::PAYLOAD_TOO_LARGE
        );
    })
    .await;
}

/// `herald serve` itself serves the webhooks, with the secret from its
/// environment and the list in its own database file.
#[tokio::test]
async fn the_serve_command_serves_the_webhooks() {
    crate::db::for_each_backend_async(|backend| async move {
    let ws = crate::helpers::Workspace::with_examples("");
    let database = backend.database(ws.path());
    std::fs::write(ws.config(), database.config()).unwrap();
    let store = database.store().await;
    add_active_subscriber(&store, "jane@example.com").await;

    let (mut child, address) =
        crate::helpers::start_serve(&ws, &[("HERALD_WEBHOOK_SECRET", GENERIC_SECRET)]);
    let client = reqwest::Client::new();
    let url = format!("http://{address}/webhooks/generic");
    let body = json!({"id": "serve-1", "event": "bounce", "recipient": "jane@example.com", "status": "5.1.1"})
        .to_string();
    let unsigned = client
        .post(&url)
        .body(body.clone())
        .send()
        .await
        .unwrap()
        .status();
    let timestamp = unix_now().to_string();
    let signature = hmac_hex(
        GENERIC_SECRET,
        &[timestamp.as_bytes(), b".", body.as_bytes()],
    );
    let signed = client
        .post(&url)
        .header("X-Herald-Timestamp", &timestamp)
        .header("X-Herald-Signature", format!("sha256={signature}"))
        .body(body)
        .send()
        .await
        .unwrap()
        .status();
    let mailgun_off = client
        .post(format!("http://{address}/webhooks/mailgun"))
        .body("{}")
        .send()
        .await
        .unwrap()
        .status();
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    assert_eq!(unsigned, StatusCode::UNAUTHORIZED);
    assert_eq!(signed, StatusCode::OK);
    assert_eq!(mailgun_off, StatusCode::NOT_FOUND);
    let state = db::scalar_text(
        &store,
        "SELECT state FROM subscribers WHERE email = 'jane@example.com'",
    )
    .await;
    assert_eq!(state, "bounced");
    })
    .await;
}

/// A secret that cannot be used stops `herald serve` at once, naming the
/// variable and never printing its value.
#[test]
fn a_bad_sendgrid_key_stops_serve_without_printing_it() {
    let ws = crate::helpers::Workspace::with_examples("");
    let secret = "not-a-key-but-secret-all-the-same";
    let (mut child, _) =
        crate::helpers::start_serve(&ws, &[("HERALD_SENDGRID_VERIFICATION_KEY", secret)]);
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(!status.success());
    assert!(
        stderr.contains("HERALD_SENDGRID_VERIFICATION_KEY"),
        "{stderr}"
    );
    assert!(!stderr.contains(secret), "{stderr}");
    assert!(!stderr.contains("not-a-key"), "{stderr}");
}

/// Replays are remembered in the database, so a second front end on the
/// same list refuses a request the first one accepted.
#[tokio::test]
async fn a_replay_is_refused_by_another_front_end_on_the_same_database() {
    crate::db::for_each_backend_async(|backend| async move {
        let app = spawn_webhooks(&backend, Setup::default()).await;
        app.add_subscriber("jane@example.com").await;
        let (second, _second_store) = serve_front_end(&app.settings).await;
        let body =
            json!({"id": "relay-evt-9", "event": "complaint", "recipient": "jane@example.com"})
                .to_string();
        let timestamp = unix_now().to_string();
        let signature = hmac_hex(
            GENERIC_SECRET,
            &[timestamp.as_bytes(), b".", body.as_bytes()],
        );
        let headers = [
            ("X-Herald-Timestamp", timestamp),
            ("X-Herald-Signature", format!("sha256={signature}")),
        ];
        assert_eq!(
            app.post("/webhooks/generic", &headers, body.clone()).await,
            StatusCode::OK
        );
        assert_eq!(app.state_of("jane@example.com").await, "complained");
        let after = app.snapshot().await;
        let mut replay = app
            .client
            .post(format!("{second}/webhooks/generic"))
            .body(body);
        for (name, value) in &headers {
            replay = replay.header(*name, value);
        }
        app.assert_refused(
            "a replay sent to the other front end",
            replay.send().await.unwrap().status(),
            &after,
        )
        .await;
    })
    .await;
}
