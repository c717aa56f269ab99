//! `GET /unsubscribe/{token}` shows a button and changes nothing;
//! `POST /unsubscribe/{token}` unsubscribes. The POST is also RFC 8058's
//! one-click target: Gmail and Yahoo send `List-Unsubscribe=One-Click`
//! form-encoded, with no cookies, and expect a 2xx without a redirect.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;

use crate::render::SubscriberPage;
use crate::store::now_millis;
use crate::store::subscribers::{self, SubscriberState};
use crate::subscription::UnsubscribeOutcome;

use super::pages::page;
use super::{SubscriberWeb, SubscriberWebError};

/// Unsubscribe tokens are made by `Token::generate`, but the check here is
/// looser (any URL-safe string up to this length), so rows written by other
/// tools keep working links.
const MAX_TOKEN_CHARS: usize = 128;

fn plausible_token(raw: &str) -> bool {
    !raw.is_empty()
        && raw.len() <= MAX_TOKEN_CHARS
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

pub(super) async fn show_unsubscribe_page(
    State(web): State<SubscriberWeb>,
    Path(token): Path<String>,
) -> Result<Response, SubscriberWebError> {
    if !plausible_token(&token) {
        return page(
            &web,
            StatusCode::NOT_FOUND,
            SubscriberPage::UnsubscribeLinkUnknown,
        );
    }
    let mut tx = web.store().begin().await?;
    let subscriber = subscribers::find_subscriber_by_unsubscribe_token(&mut tx, &token).await?;
    tx.commit().await?;
    match subscriber {
        None => page(
            &web,
            StatusCode::NOT_FOUND,
            SubscriberPage::UnsubscribeLinkUnknown,
        ),
        Some(s) if matches!(s.state, SubscriberState::Pending | SubscriberState::Active) => page(
            &web,
            StatusCode::OK,
            SubscriberPage::UnsubscribePrompt { email: &s.email },
        ),
        Some(_) => page(&web, StatusCode::OK, SubscriberPage::Unsubscribed),
    }
}

pub(super) async fn unsubscribe(
    State(web): State<SubscriberWeb>,
    Path(token): Path<String>,
    body: Bytes,
) -> Result<Response, SubscriberWebError> {
    if !plausible_token(&token) {
        return page(
            &web,
            StatusCode::NOT_FOUND,
            SubscriberPage::UnsubscribeLinkUnknown,
        );
    }
    // Either way the subscriber leaves; the reason only tells the audit
    // trail whether a mail client's button or our page did it.
    let reason = if body.windows(26).any(|w| w == b"List-Unsubscribe=One-Click") {
        "one-click unsubscribe (RFC 8058)"
    } else {
        "unsubscribe page"
    };
    let mut tx = web.store().begin().await?;
    let outcome = web
        .subscriptions()
        .unsubscribe(&mut tx, &token, reason, now_millis())
        .await?;
    tx.commit().await?;
    tracing::info!(?outcome, "unsubscribe");
    match outcome {
        UnsubscribeOutcome::Unknown => page(
            &web,
            StatusCode::NOT_FOUND,
            SubscriberPage::UnsubscribeLinkUnknown,
        ),
        UnsubscribeOutcome::Unsubscribed | UnsubscribeOutcome::AlreadyOff(_) => {
            page(&web, StatusCode::OK, SubscriberPage::Unsubscribed)
        }
    }
}
