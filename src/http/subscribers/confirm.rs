//! `GET /confirm/{token}` shows a Confirm button and changes nothing;
//! `POST /confirm/{token}` confirms.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;

use crate::domain::Token;
use crate::render::SubscriberPage;
use crate::store::now_millis;
use crate::subscription::ConfirmOutcome;

use super::pages::page;
use super::{SubscriberWeb, SubscriberWebError};

pub(super) async fn show_confirm_page(
    State(web): State<SubscriberWeb>,
    Path(raw): Path<String>,
) -> Result<Response, SubscriberWebError> {
    let outcome = match Token::parse(&raw) {
        Ok(token) => {
            // A plain (deferred) read: nothing is written on a GET.
            let mut tx = web.store().begin().await?;
            let outcome = web
                .subscriptions()
                .check_confirmation(&mut tx, &token, now_millis())
                .await?;
            tx.commit().await?;
            outcome
        }
        Err(_) => ConfirmOutcome::Unknown,
    };
    confirm_page(&web, outcome)
}

pub(super) async fn confirm_subscription(
    State(web): State<SubscriberWeb>,
    Path(raw): Path<String>,
) -> Result<Response, SubscriberWebError> {
    let outcome = match Token::parse(&raw) {
        Ok(token) => {
            let mut tx = web.store().begin().await?;
            let outcome = web
                .subscriptions()
                .confirm(&mut tx, &token, now_millis())
                .await?;
            tx.commit().await?;
            outcome
        }
        Err(_) => ConfirmOutcome::Unknown,
    };
    tracing::info!(?outcome, "confirmation");
    if outcome == ConfirmOutcome::Confirmed {
        // The welcome mail was queued with the confirmation.
        web.inner.outbox.queued();
    }
    confirm_page(&web, outcome)
}

/// Unknown links are the visitor's mistake (400); expired and used ones are
/// gone for good (410). Both pages link back to the form.
fn confirm_page(
    web: &SubscriberWeb,
    outcome: ConfirmOutcome,
) -> Result<Response, SubscriberWebError> {
    let (status, shown) = match outcome {
        ConfirmOutcome::Ready => (StatusCode::OK, SubscriberPage::ConfirmPrompt),
        ConfirmOutcome::Confirmed => (StatusCode::OK, SubscriberPage::Confirmed),
        ConfirmOutcome::AlreadyConfirmed => (StatusCode::OK, SubscriberPage::AlreadyConfirmed),
        ConfirmOutcome::Expired => (StatusCode::GONE, SubscriberPage::ConfirmLinkExpired),
        ConfirmOutcome::Used => (StatusCode::GONE, SubscriberPage::ConfirmLinkUsed),
        ConfirmOutcome::Unknown => (StatusCode::BAD_REQUEST, SubscriberPage::ConfirmLinkUnknown),
    };
    page(web, status, shown)
}
