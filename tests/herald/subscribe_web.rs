//! The subscriber web side end to end: real HTTP, a real database (SQLite,
//! and PostgreSQL behind the switch), a real SMTP server, and the send
//! stage's worker between them.

use herald::domain::{SubscriberEmail, Token};
use herald::store::subscribers::{self, SubscriberState};
use herald::store::suppressions;
use herald::subscription::suppression_hash;
use mail_parser::MessageParser;

use crate::subscriber_app::{spawn_app, spawn_app_with, AppOptions};

const ONE_CLICK: &str = "List-Unsubscribe=One-Click";

#[tokio::test]
async fn sign_up_confirm_by_post_only_and_become_active() {
    crate::db::for_each_backend_async(|backend| async move {
        let app = spawn_app(&backend).await;
        let form = app.client.get(app.url("subscribe")).send().await.unwrap();
        assert_eq!(form.status(), 200);
        let html = form.text().await.unwrap();
        assert!(html.contains("name=\"email\"") && html.contains("name=\"website\""));

        let response = app
            .client
            .post(app.url("subscribe"))
            .header("User-Agent", "test-browser/1.0")
            .form(&[("email", "Alice@Example.com"), ("name", "Alice")])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert!(response.text().await.unwrap().contains("Check your inbox"));
        let alice = app.subscriber("alice@example.com").await.unwrap();
        assert_eq!(alice.state, SubscriberState::Pending);
        assert_eq!(alice.consent_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(
            alice.consent_user_agent.as_deref(),
            Some("test-browser/1.0")
        );
        assert!(alice.consent_at.is_some());

        // The confirmation goes through the queue, the send stage's worker and
        // the real SMTP server.
        assert_eq!(app.mail_queued_for("alice@example.com").await, 1);
        let mail = app.wait_for_mail("alice@example.com", 1).await;
        app.wait_for_queue(&[("sent", 1)]).await;
        assert_eq!(mail.len(), 1);
        assert_eq!(mail[0].from, "newsletter@example.com");
        let parsed = MessageParser::default().parse(&mail[0].data).unwrap();
        assert_eq!(
            parsed.subject(),
            Some("Confirm your subscription to Herald Weekly")
        );
        let raw = mail[0].raw();
        assert!(raw.contains("\r\nTo: alice@example.com\r\n"), "{raw}");
        assert!(!raw.contains("Alice\r\n") && !raw.contains("\"Alice\""));
        let link = app.confirmation_link("alice@example.com");
        assert!(mail[0].html_body().contains(&format!("href=\"{link}\"")));

        // A GET (a mail scanner, a link preview) shows a button and changes nothing.
        for _ in 0..3 {
            let page = app.client.get(&link).send().await.unwrap();
            assert_eq!(page.status(), 200);
            let html = page.text().await.unwrap();
            assert!(html.contains("method=\"post\"") && html.contains("Confirm subscription"));
        }
        let alice = app.subscriber("alice@example.com").await.unwrap();
        assert_eq!(alice.state, SubscriberState::Pending);

        let confirmed = app.client.post(&link).send().await.unwrap();
        assert_eq!(confirmed.status(), 200);
        assert!(confirmed
            .text()
            .await
            .unwrap()
            .contains("You are subscribed"));
        let alice = app.subscriber("alice@example.com").await.unwrap();
        assert_eq!(alice.state, SubscriberState::Active);

        // Confirming again is a friendly no-op.
        let again = app.client.post(&link).send().await.unwrap();
        assert_eq!(again.status(), 200);
        assert!(again.text().await.unwrap().contains("already confirmed"));

        let mut tx = app.store.begin().await.unwrap();
        let events = subscribers::list_events(&mut tx, alice.id).await.unwrap();
        tx.commit().await.unwrap();
        let trail: Vec<_> = events
            .iter()
            .map(|e| (e.state, e.reason.as_str()))
            .collect();
        assert_eq!(
            trail,
            [
                (SubscriberState::Pending, "form"),
                (SubscriberState::Active, "confirmed by link")
            ]
        );
    })
    .await;
}

#[tokio::test]
async fn json_requests_get_json_answers() {
    crate::db::for_each_backend_async(|backend| async move {
        let app = spawn_app(&backend).await;
        let ok = app
            .client
            .post(app.url("subscribe"))
            .json(&serde_json::json!({ "email": "json@example.com" }))
            .send()
            .await
            .unwrap();
        assert_eq!(ok.status(), 200);
        let body: serde_json::Value = ok.json().await.unwrap();
        assert!(body["message"]
            .as_str()
            .unwrap()
            .contains("confirmation link"));
        assert_eq!(
            app.subscriber("json@example.com").await.unwrap().state,
            SubscriberState::Pending
        );

        let bad = app
            .client
            .post(app.url("subscribe"))
            .json(&serde_json::json!({ "email": "not an address" }))
            .send()
            .await
            .unwrap();
        assert_eq!(bad.status(), 422);
        let body: serde_json::Value = bad.json().await.unwrap();
        assert!(body["error"].as_str().unwrap().contains("valid email"));
    })
    .await;
}

#[tokio::test]
async fn the_answer_is_the_same_for_new_pending_and_active_addresses() {
    crate::db::for_each_backend_async(|backend| async move {
        let app = spawn_app(&backend).await;
        let answer = |response: reqwest::Response| async move {
            (response.status(), response.text().await.unwrap())
        };
        let new = answer(app.subscribe_form(&[("email", "carol@example.com")]).await).await;
        let pending = answer(app.subscribe_form(&[("email", "carol@example.com")]).await).await;
        assert_eq!(new, pending);
        // The pending address got a fresh confirmation.
        assert_eq!(app.mail_queued_for("carol@example.com").await, 2);
        app.wait_for_mail("carol@example.com", 2).await;
        let link = app.confirmation_link("carol@example.com");
        assert_eq!(app.client.post(&link).send().await.unwrap().status(), 200);

        // Confirming queues the welcome mail.
        assert_eq!(app.mail_queued_for("carol@example.com").await, 3);
        app.wait_for_queue(&[("sent", 3)]).await;
        let mail = app.wait_for_mail("carol@example.com", 3).await;
        let welcome = String::from_utf8_lossy(&mail.last().unwrap().data).replace("=\r\n", "");
        assert!(welcome.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"));
        assert!(
            welcome.contains("/unsubscribe/"),
            "the welcome carries the unsubscribe link"
        );

        let active = answer(app.subscribe_form(&[("email", "carol@example.com")]).await).await;
        assert_eq!(new, active);
        // ... and the active one nothing new.
        assert_eq!(app.mail_queued_for("carol@example.com").await, 3);
        app.wait_for_queue(&[("sent", 3)]).await;
        assert_eq!(app.mail_to("carol@example.com").len(), 3);
        assert_eq!(
            app.subscriber("carol@example.com").await.unwrap().state,
            SubscriberState::Active
        );

        // An address erased on request: the same answer, and nothing happens.
        let erased = SubscriberEmail::parse("zoe@example.com").unwrap();
        let mut tx = app.store.begin().await.unwrap();
        suppressions::insert_suppression(
            &mut tx,
            &suppression_hash(&erased),
            "erased on request",
            0,
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        let suppressed = answer(app.subscribe_form(&[("email", "zoe@example.com")]).await).await;
        assert_eq!(new, suppressed);
        assert!(app.subscriber("zoe@example.com").await.is_none());
        assert_eq!(app.mail_queued_for("zoe@example.com").await, 0);
    })
    .await;
}

#[tokio::test]
async fn confirmations_per_address_are_limited_silently() {
    crate::db::for_each_backend_async(|backend| async move {
        let app = spawn_app_with(AppOptions {
            confirmations_per_hour: 2,
            backend: backend.clone(),
            ..AppOptions::default()
        })
        .await;
        for _ in 0..5 {
            let response = app.subscribe_form(&[("email", "dave@example.com")]).await;
            assert_eq!(response.status(), 200);
        }
        assert_eq!(app.mail_queued_for("dave@example.com").await, 2);
        app.wait_for_queue(&[("sent", 2)]).await;
        assert_eq!(app.mail_to("dave@example.com").len(), 2);
    })
    .await;
}

#[tokio::test]
async fn unsubscribe_get_changes_nothing_and_one_click_post_unsubscribes() {
    crate::db::for_each_backend_async(|backend| async move {
        let app = spawn_app(&backend).await;
        let link = app.subscribe_and_get_link("erin@example.com").await;
        app.client.post(&link).send().await.unwrap();
        let erin = app.subscriber("erin@example.com").await.unwrap();
        assert_eq!(erin.state, SubscriberState::Active);
        let unsubscribe = app.url(&format!("unsubscribe/{}", erin.unsubscribe_token));

        let page = app.client.get(&unsubscribe).send().await.unwrap();
        assert_eq!(page.status(), 200);
        let html = page.text().await.unwrap();
        assert!(html.contains("method=\"post\"") && html.contains("erin@example.com"));
        assert_eq!(
            app.subscriber("erin@example.com").await.unwrap().state,
            SubscriberState::Active
        );

        // RFC 8058: what Gmail and Yahoo send. No cookies, no redirect, 200.
        for _ in 0..2 {
            let response = app
                .client
                .post(&unsubscribe)
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(ONE_CLICK)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
            assert!(response.headers().get("location").is_none());
            assert!(response.headers().get("set-cookie").is_none());
        }
        let erin = app.subscriber("erin@example.com").await.unwrap();
        assert_eq!(erin.state, SubscriberState::Unsubscribed);
        let mut tx = app.store.begin().await.unwrap();
        let events = subscribers::list_events(&mut tx, erin.id).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(events.len(), 3, "one unsubscribe event, however many POSTs");
        assert_eq!(events[2].reason, "one-click unsubscribe (RFC 8058)");

        let after = app.client.get(&unsubscribe).send().await.unwrap();
        assert_eq!(after.status(), 200);
        assert!(after.text().await.unwrap().contains("You are unsubscribed"));

        let forged = Token::generate();
        for url in [
            app.url(&format!("unsubscribe/{}", forged.as_str())),
            app.url("unsubscribe/not%20a%20token"),
        ] {
            assert_eq!(app.client.get(&url).send().await.unwrap().status(), 404);
            let post = app.client.post(&url).body(ONE_CLICK).send().await.unwrap();
            assert_eq!(post.status(), 404);
        }
    })
    .await;
}

#[tokio::test]
async fn forged_expired_and_reused_confirmation_links_get_a_clear_page() {
    crate::db::for_each_backend_async(|backend| async move {
        let app = spawn_app(&backend).await;
        let forged = app.url(&format!("confirm/{}", Token::generate().as_str()));
        for url in [forged, app.url("confirm/short")] {
            let get = app.client.get(&url).send().await.unwrap();
            assert_eq!(get.status(), 400);
            let post = app.client.post(&url).send().await.unwrap();
            assert_eq!(post.status(), 400);
            let html = post.text().await.unwrap();
            assert!(
                html.contains("not valid")
                    && html.contains(&format!("href=\"{}\"", app.url("subscribe")))
            );
        }

        // Reused: confirmed, then unsubscribed, then the old link again.
        let link = app.subscribe_and_get_link("frank@example.com").await;
        assert_eq!(app.client.post(&link).send().await.unwrap().status(), 200);
        let frank = app.subscriber("frank@example.com").await.unwrap();
        app.client
            .post(app.url(&format!("unsubscribe/{}", frank.unsubscribe_token)))
            .send()
            .await
            .unwrap();
        let reused = app.client.post(&link).send().await.unwrap();
        assert_eq!(reused.status(), 410);
        let html = reused.text().await.unwrap();
        assert!(html.contains("already been used") && html.contains("Subscribe again"));
        assert_eq!(
            app.subscriber("frank@example.com").await.unwrap().state,
            SubscriberState::Unsubscribed
        );
        // Signing up again works (a fresh link), and the old link stays dead.
        let fresh = app.subscribe_and_get_link("frank@example.com").await;
        assert_ne!(fresh, link);
        assert_eq!(app.client.post(&link).send().await.unwrap().status(), 410);
        assert_eq!(
            app.subscriber("frank@example.com").await.unwrap().state,
            SubscriberState::Pending
        );
        assert_eq!(app.client.post(&fresh).send().await.unwrap().status(), 200);
        assert_eq!(
            app.subscriber("frank@example.com").await.unwrap().state,
            SubscriberState::Active
        );
    })
    .await;
}

#[tokio::test]
async fn an_expired_link_confirms_nobody() {
    crate::db::for_each_backend_async(|backend| async move {
        // A lifetime of zero hours: every link is expired when it arrives.
        let app = spawn_app_with(AppOptions {
            confirm_ttl_hours: 0,
            backend: backend.clone(),
            ..AppOptions::default()
        })
        .await;
        let link = app.subscribe_and_get_link("gina@example.com").await;
        let get = app.client.get(&link).send().await.unwrap();
        assert_eq!(get.status(), 410);
        let post = app.client.post(&link).send().await.unwrap();
        assert_eq!(post.status(), 410);
        assert!(post.text().await.unwrap().contains("expired"));
        assert_eq!(
            app.subscriber("gina@example.com").await.unwrap().state,
            SubscriberState::Pending
        );
    })
    .await;
}

#[tokio::test]
async fn too_many_requests_from_one_address_get_429() {
    crate::db::for_each_backend_async(|backend| async move {
        let app = spawn_app_with(AppOptions {
            per_ip_per_minute: 3,
            backend: backend.clone(),
            ..AppOptions::default()
        })
        .await;
        for i in 0..3 {
            let response = app
                .subscribe_form(&[("email", &format!("h{i}@example.com"))])
                .await;
            assert_eq!(response.status(), 200);
        }
        let limited = app.subscribe_form(&[("email", "h3@example.com")]).await;
        assert_eq!(limited.status(), 429);
        assert!(limited.text().await.unwrap().contains("Too many requests"));
        assert!(app.subscriber("h3@example.com").await.is_none());
        let json = app
            .client
            .post(app.url("subscribe"))
            .json(&serde_json::json!({ "email": "h4@example.com" }))
            .send()
            .await
            .unwrap();
        assert_eq!(json.status(), 429);
    })
    .await;
}

#[tokio::test]
async fn too_many_sign_ups_for_one_address_get_429_from_any_ip() {
    crate::db::for_each_backend_async(|backend| async move {
        let app = spawn_app(&backend).await;
        // The default allows 10 an hour for one address, whatever its state.
        for _ in 0..10 {
            let response = app.subscribe_form(&[("email", "target@example.com")]).await;
            assert_eq!(response.status(), 200);
        }
        let limited = app.subscribe_form(&[("email", "Target@Example.com")]).await;
        assert_eq!(limited.status(), 429, "the same address, however written");
        let other = app
            .subscribe_form(&[("email", "someone.else@example.com")])
            .await;
        assert_eq!(other.status(), 200, "other addresses are not affected");
    })
    .await;
}

#[tokio::test]
async fn the_honeypot_drops_bots_silently() {
    crate::db::for_each_backend_async(|backend| async move {
        let app = spawn_app(&backend).await;
        let human = app.subscribe_form(&[("email", "ivan@example.com")]).await;
        let human = (human.status(), human.text().await.unwrap());
        let bot = app
            .subscribe_form(&[
                ("email", "bot@example.com"),
                ("website", "http://spam.example"),
            ])
            .await;
        assert_eq!((bot.status(), bot.text().await.unwrap()), human);
        assert!(app.subscriber("bot@example.com").await.is_none());
        assert_eq!(app.mail_queued_for("bot@example.com").await, 0);
        // Only the human's mail went out.
        app.wait_for_queue(&[("sent", 1)]).await;
        assert_eq!(app.wait_for_mail("ivan@example.com", 1).await.len(), 1);
    })
    .await;
}

#[tokio::test]
async fn smtp_down_during_sign_up_still_succeeds_and_mail_arrives_later() {
    crate::db::for_each_backend_async(|backend| async move {
        let app = spawn_app_with(AppOptions {
            smtp_running: false,
            backend: backend.clone(),
            ..AppOptions::default()
        })
        .await;
        let started = std::time::Instant::now();
        let response = app.subscribe_form(&[("email", "judy@example.com")]).await;
        assert_eq!(response.status(), 200);
        assert!(started.elapsed() < std::time::Duration::from_secs(2));

        // The worker finds no server: the mail is deferred, not lost.
        app.wait_for_queue(&[("deferred", 1)]).await;

        app.start_smtp();
        app.wait_for_mail("judy@example.com", 1).await;
        app.wait_for_queue(&[("sent", 1)]).await;
        let link = app.confirmation_link("judy@example.com");
        assert_eq!(app.client.post(&link).send().await.unwrap().status(), 200);
        assert_eq!(
            app.subscriber("judy@example.com").await.unwrap().state,
            SubscriberState::Active
        );
    })
    .await;
}

#[tokio::test]
async fn bad_input_is_refused_and_never_echoed_raw() {
    crate::db::for_each_backend_async(|backend| async move {
        let app = spawn_app(&backend).await;
        let xss = "\"><script>alert(1)</script>";
        let response = app
            .subscribe_form(&[("email", xss), ("name", "<b>Mallory</b>")])
            .await;
        assert_eq!(response.status(), 422);
        let html = response.text().await.unwrap();
        assert!(html.contains("Please enter a valid email address"));
        assert!(!html.contains("<script>alert") && !html.contains("<b>Mallory"));
        assert!(html.contains("&lt;b&gt;Mallory&lt;/b&gt;"));

        let control = app
            .subscribe_form(&[
                ("email", "kim@example.com"),
                ("name", "Kim\r\nBcc: x@example.com"),
            ])
            .await;
        assert_eq!(control.status(), 422);
        let long = app
            .subscribe_form(&[("email", "kim@example.com"), ("name", &"k".repeat(101))])
            .await;
        assert_eq!(long.status(), 422);
        let header_injection = app
            .subscribe_form(&[("email", "kim@example.com\r\nBcc: x@example.com")])
            .await;
        assert_eq!(header_injection.status(), 422);
        assert!(app.subscriber("kim@example.com").await.is_none());

        let huge = app
            .subscribe_form(&[("email", "kim@example.com"), ("name", &"k".repeat(20_000))])
            .await;
        assert_eq!(huge.status(), 413);
    })
    .await;
}

#[tokio::test]
async fn a_name_with_markup_never_reaches_the_mail() {
    crate::db::for_each_backend_async(|backend| async move {
        let app = spawn_app(&backend).await;
        let response = app
            .subscribe_form(&[
                ("email", "leo@example.com"),
                ("name", "Leo <leo@evil.example>, \"Buy now\""),
            ])
            .await;
        assert_eq!(response.status(), 200);
        let mail = &app.wait_for_mail("leo@example.com", 1).await[0];
        let raw = mail.raw();
        assert!(
            !raw.contains("evil.example") && !raw.contains("Buy now"),
            "{raw}"
        );
        assert_eq!(
            app.subscriber("leo@example.com")
                .await
                .unwrap()
                .name
                .as_deref(),
            Some("Leo <leo@evil.example>, \"Buy now\"")
        );
    })
    .await;
}

#[tokio::test]
async fn chinese_sites_get_chinese_pages_and_mail() {
    crate::db::for_each_backend_async(|backend| async move {
        let app = spawn_app_with(AppOptions {
            language: "zh-CN",
            backend: backend.clone(),
            ..AppOptions::default()
        })
        .await;
        let html = app
            .client
            .get(app.url("subscribe"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(html.contains("<html lang=\"zh-CN\">") && html.contains("邮箱地址"));
        let link = app.subscribe_and_get_link("mei@example.com").await;
        let mail = &app.mail_to("mei@example.com")[0];
        let parsed = MessageParser::default().parse(&mail.data).unwrap();
        assert_eq!(parsed.subject(), Some("请确认订阅「Herald Weekly」"));
        assert!(mail.text_body().contains("确认订阅"));
        let page = app
            .client
            .get(&link)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(page.contains("确认订阅"));
    })
    .await;
}

#[tokio::test]
async fn confirmation_and_welcome_mails_are_dkim_signed() {
    crate::db::for_each_backend_async(|backend| async move {
        let app = spawn_app_with(AppOptions {
            dkim: true,
            backend: backend.clone(),
            ..AppOptions::default()
        })
        .await;
        let link = app.subscribe_and_get_link("dana@example.com").await;
        let response = app.client.post(&link).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let mail = app.wait_for_mail("dana@example.com", 2).await;
        for message in &mail {
            let parsed = MessageParser::default().parse(&message.data).unwrap();
            let signature = parsed
                .header_raw("DKIM-Signature")
                .unwrap_or_else(|| panic!("unsigned: {:?}", parsed.subject()))
                .replace(['\r', '\n', ' ', '\t'], "");
            assert!(
                signature.contains("d=example.com") && signature.contains("s=herald"),
                "{signature}"
            );
            // And it verifies, as the receiving server would check it.
            crate::dkim_verify::verify(&message.data, &crate::dkim_verify::test_key())
                .unwrap_or_else(|e| panic!("{:?}: {e}", parsed.subject()));
        }
    })
    .await;
}
